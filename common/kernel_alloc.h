// kernel_alloc.h: the memory the kernels allocate for themselves (Halide's halide_malloc): their
// intermediates, such as a weight gradient's partial sums or a linear layer's transposed weights.
// The executables install it (runtime/executor.cpp), and `cnnc tune` installs it in the Halide
// runtime it times candidates with (codegen/tune.cpp), so that a candidate is timed on the memory
// it gets in the net.
//
// Why: Halide's default halide_malloc is malloc, and glibc maps each block past 32 MiB afresh and
// unmaps it on free. A kernel that needs such a block every call, VGG-11's first linear layer
// (its 25088 x 4096 weights transposed per call, 411 MB), then took a page fault per 4 KiB page
// on every call, and its matrix multiply walked that copy through a TLB miss per weight row: 750
// ms at batch 8 for a layer whose weights stream from memory in about 20. Big blocks here sit on
// 2 MiB pages (allocHuge) and are kept when freed, so the next call (or the next kernel) reuses
// them without faults.
// Blocks from 64 KiB are kept too: below 32 MiB glibc's own choice (map afresh, or grow and trim
// the heap) depends on what the process allocated before, down to the length of its argv[0]
// (CLI11 copies it). MobileNetV2's stem with one tuned schedule (AMD Zen 5, batch 1), whose padded
// input copy is 607 KB, read 0.2-0.3 ms per call when run as ./variant1 and 2.0-2.9 ms as
// /tmp/cnnc-tune-net-XXXXXX/variant1, the path `cnnc tune` runs it by: 200 page faults per call
// more, for the first dozen calls; glibc's mmap threshold fixed by MALLOC_MMAP_THRESHOLD_ made both
// read 0.2-0.3. These start on a page boundary, so where their data sits within a page (what 4 KiB
// aliasing between buffers depends on) does not depend on the heap either.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "common/huge_alloc.h"

namespace cnnc {

// Bytes of freed blocks kept for reuse at most.
constexpr size_t kKernelCacheBytes = size_t(2) << 30;

namespace kernel_alloc_detail {

// Each block starts with this header, kHeader bytes before the pointer handed out.
struct Header {
  size_t capacity;  // usable bytes after the header (kept blocks: what a later request may take)
  uint32_t magic;
  uint32_t kept;    // from kKeptBlock: kept for reuse when freed
};
constexpr size_t kHeader = 128;  // keeps the data 128-byte aligned
constexpr size_t kSlack = 64;    // readable bytes past the end
constexpr uint32_t kMagic = 0xC0DEB10C;
constexpr size_t kKeptBlock = size_t(64) << 10;  // blocks from this size on are kept when freed
constexpr size_t kPage = 4096;

// One pool per program (inline variables have a single definition across translation units).
inline std::mutex gMu;
inline std::vector<Header*> gFree;  // freed blocks kept for reuse
inline size_t gCached = 0;

inline void* dataOf(Header* h) { return reinterpret_cast<char*>(h) + kHeader; }
inline Header* headerOf(void* p) { return reinterpret_cast<Header*>(static_cast<char*>(p) - kHeader); }

}  // namespace kernel_alloc_detail

// Blocks from 64 KiB start on a page boundary (from kBigBlock on 2 MiB pages) and, when freed, are
// kept for the next allocation of a size they hold (at most twice it), up to kKernelCacheBytes in
// all; smaller ones are plain malloc. Every block is 128-byte aligned, and 64 bytes past either end
// are readable, as Halide asks of halide_malloc. The signatures are Halide's halide_malloc_t and
// halide_free_t.
inline void* kernelMalloc(void*, size_t bytes) {
  using namespace kernel_alloc_detail;
  size_t need = bytes + kSlack;
  if (need + kHeader < kKeptBlock) {
    size_t total = (kHeader + need + 127) / 128 * 128;
    auto* h = static_cast<Header*>(std::aligned_alloc(128, total));
    if (!h) return nullptr;
    *h = Header{need, kMagic, 0};
    return dataOf(h);
  }
  {
    // The smallest kept block that holds it, if it is at most twice the size: a kernel's buffers
    // recur every call with the same sizes.
    std::lock_guard<std::mutex> l(gMu);
    size_t best = gFree.size();
    for (size_t i = 0; i < gFree.size(); ++i)
      if (gFree[i]->capacity >= need && gFree[i]->capacity <= 2 * need && (best == gFree.size() || gFree[i]->capacity < gFree[best]->capacity)) best = i;
    if (best < gFree.size()) {
      Header* h = gFree[best];
      gFree.erase(gFree.begin() + (std::ptrdiff_t)best);
      gCached -= h->capacity;
      return dataOf(h);
    }
  }
  bool huge = need + kHeader >= kBigBlock;
  size_t unit = huge ? kHugePage : kPage;
  size_t total = (kHeader + need + unit - 1) / unit * unit;
  auto* h = static_cast<Header*>(huge ? allocHuge(total) : std::aligned_alloc(kPage, total));
  if (!h) return nullptr;
  *h = Header{total - kHeader, kMagic, 1};
  return dataOf(h);
}

inline void kernelFree(void*, void* p) {
  using namespace kernel_alloc_detail;
  if (!p) return;
  Header* h = headerOf(p);
  if (h->magic != kMagic) std::abort();  // not ours: a heap corruption, not a recoverable error
  if (h->kept) {
    std::lock_guard<std::mutex> l(gMu);
    if (gCached + h->capacity <= kKernelCacheBytes) {
      gFree.push_back(h);
      gCached += h->capacity;
      return;
    }
  }
  std::free(h);
}

// Bytes of freed blocks kept for reuse now (tests).
inline size_t kernelCachedBytes() {
  std::lock_guard<std::mutex> l(kernel_alloc_detail::gMu);
  return kernel_alloc_detail::gCached;
}

}  // namespace cnnc
