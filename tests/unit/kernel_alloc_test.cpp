// The kernels' allocator (common/kernel_alloc.h): alignment, reuse of freed big blocks, and the
// bound on what it keeps.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "common/huge_alloc.h"
#include "common/kernel_alloc.h"

using namespace cnnc;

TEST(KernelAlloc, SmallBlocksAreAlignedAndWritableWithSlack) {
  for (size_t n : {size_t(1), size_t(100), size_t(4096), size_t(1) << 20}) {
    auto* p = static_cast<unsigned char*>(kernelMalloc(nullptr, n));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 128, 0u) << n;
    std::memset(p, 0xAB, n + 64);  // Halide may read past the end; the slack is ours
    kernelFree(nullptr, p);
  }
  kernelFree(nullptr, nullptr);
}

TEST(KernelAlloc, FreedBigBlocksAreReusedForTheSameSize) {
  size_t before = kernelCachedBytes();
  size_t n = 3 * kBigBlock + 12345;
  void* a = kernelMalloc(nullptr, n);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 128, 0u);
  std::memset(a, 1, n);
  kernelFree(nullptr, a);
  EXPECT_GT(kernelCachedBytes(), before);
  void* b = kernelMalloc(nullptr, n - 1000);  // the next call's buffer of (about) the same size
  EXPECT_EQ(a, b);
  EXPECT_EQ(kernelCachedBytes(), before);
  // A block more than twice the size asked for is not handed out for it.
  kernelFree(nullptr, b);
  void* small = kernelMalloc(nullptr, kBigBlock);
  EXPECT_NE(small, b);
  kernelFree(nullptr, small);
  void* again = kernelMalloc(nullptr, n);
  EXPECT_EQ(again, b);
  kernelFree(nullptr, again);
}

TEST(KernelAlloc, MediumBlocksAreKeptAndSitAtOneOffsetInTheirPage) {
  // A 607 KB padded copy, as MobileNetV2's stem makes per call: the next call gets the same block
  // back (no fresh pages), and where its data sits in a page does not depend on the heap.
  size_t n = 3 * 225 * 225 * 4;
  void* a = kernelMalloc(nullptr, n);
  ASSERT_NE(a, nullptr);
  size_t before = kernelCachedBytes();  // after: `a` may be a block an earlier test left kept
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 4096, 128u);
  std::memset(a, 1, n + 64);
  kernelFree(nullptr, a);
  EXPECT_GT(kernelCachedBytes(), before);
  void* b = kernelMalloc(nullptr, n);
  EXPECT_EQ(a, b);
  EXPECT_EQ(kernelCachedBytes(), before);
  kernelFree(nullptr, b);
  // Below 64 KiB blocks are plain malloc's, not kept.
  size_t kept = kernelCachedBytes();
  void* small = kernelMalloc(nullptr, 16 << 10);
  kernelFree(nullptr, small);
  EXPECT_EQ(kernelCachedBytes(), kept);
}

TEST(KernelAlloc, KeepsAtMostItsBound) {
  // Blocks freed past the bound go back to the system instead of the cache.
  size_t before = kernelCachedBytes();
  size_t n = kKernelCacheBytes / 2 + kBigBlock;
  void* a = kernelMalloc(nullptr, n);
  void* b = kernelMalloc(nullptr, n);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  kernelFree(nullptr, a);
  kernelFree(nullptr, b);
  EXPECT_LE(kernelCachedBytes(), kKernelCacheBytes);
  EXPECT_GE(kernelCachedBytes() - before, n);  // the first one kept, the second released
  EXPECT_LT(kernelCachedBytes() - before, 2 * n);
  void* c = kernelMalloc(nullptr, n);  // takes the one kept
  EXPECT_EQ(c, a);
  EXPECT_EQ(kernelCachedBytes(), before);
  void* d = kernelMalloc(nullptr, n);
  kernelFree(nullptr, c);
  kernelFree(nullptr, d);
  EXPECT_LE(kernelCachedBytes(), kKernelCacheBytes);
}
