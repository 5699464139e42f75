// The kernels' scratch allocator (runtime/scratch_alloc.h): aligned blocks, large ones reused by
// size, and a bounded cache.
#include "scratch_alloc.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

using namespace cnnc::rt;

TEST(ScratchAlloc, SmallBlocksAreAlignedAndNotCached) {
  size_t before = scratchCachedBytes();
  void* p = scratchMalloc(nullptr, 1000);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 128, 0u);
  std::memset(p, 1, 1000);
  scratchFree(nullptr, p);
  EXPECT_EQ(scratchCachedBytes(), before);
}

TEST(ScratchAlloc, LargeBlocksAreReusedBySize) {
  const size_t n = (size_t(3) << 20) + 100;
  void* a = scratchMalloc(nullptr, n);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 128, 0u);
  std::memset(a, 2, n);
  size_t before = scratchCachedBytes();
  scratchFree(nullptr, a);
  EXPECT_GT(scratchCachedBytes(), before);
  void* b = scratchMalloc(nullptr, n);  // the same size: the cached block comes back
  EXPECT_EQ(b, a);
  EXPECT_EQ(scratchCachedBytes(), before);
  void* c = scratchMalloc(nullptr, n);  // the cache is empty for that size now: a new block
  EXPECT_NE(c, b);
  scratchFree(nullptr, b);
  scratchFree(nullptr, c);
}

TEST(ScratchAlloc, CacheStaysBounded) {
  std::vector<void*> blocks;
  for (int i = 0; i < 40; ++i) blocks.push_back(scratchMalloc(nullptr, (size_t(1) << 20) * (1 + i % 20) + 4096 * i));
  for (void* p : blocks) scratchFree(nullptr, p);
  EXPECT_LE(scratchCachedBytes(), size_t(256) << 20);
}
