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
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "common/huge_alloc.h"

namespace cnnc {

// Bytes of freed big blocks kept for reuse at most.
constexpr size_t kKernelCacheBytes = size_t(2) << 30;

namespace kernel_alloc_detail {

// Each block starts with this header, kHeader bytes before the pointer handed out.
struct Header {
  size_t capacity;  // usable bytes after the header (big blocks: what a later request may take)
  uint32_t magic;
  uint32_t big;
};
constexpr size_t kHeader = 128;  // keeps the data 128-byte aligned
constexpr size_t kSlack = 64;    // readable bytes past the end
constexpr uint32_t kMagic = 0xC0DEB10C;

// One pool per program (inline variables have a single definition across translation units).
inline std::mutex gMu;
inline std::vector<Header*> gFree;  // freed big blocks
inline size_t gCached = 0;

inline void* dataOf(Header* h) { return reinterpret_cast<char*>(h) + kHeader; }
inline Header* headerOf(void* p) { return reinterpret_cast<Header*>(static_cast<char*>(p) - kHeader); }

}  // namespace kernel_alloc_detail

// Blocks from kBigBlock on sit on 2 MiB pages and, when freed, are kept for the next allocation
// of a size they hold (at most twice it), up to kKernelCacheBytes in all; smaller ones are plain
// malloc. Every block is 128-byte aligned, and 64 bytes past either end are readable, as Halide
// asks of halide_malloc. The signatures are Halide's halide_malloc_t and halide_free_t.
inline void* kernelMalloc(void*, size_t bytes) {
  using namespace kernel_alloc_detail;
  size_t need = bytes + kSlack;
  if (need + kHeader < kBigBlock) {
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
  size_t total = (kHeader + need + kHugePage - 1) / kHugePage * kHugePage;
  auto* h = static_cast<Header*>(allocHuge(total));
  if (!h) return nullptr;
  *h = Header{total - kHeader, kMagic, 1};
  return dataOf(h);
}

inline void kernelFree(void*, void* p) {
  using namespace kernel_alloc_detail;
  if (!p) return;
  Header* h = headerOf(p);
  if (h->magic != kMagic) std::abort();  // not ours: a heap corruption, not a recoverable error
  if (h->big) {
    std::lock_guard<std::mutex> l(gMu);
    if (gCached + h->capacity <= kKernelCacheBytes) {
      gFree.push_back(h);
      gCached += h->capacity;
      return;
    }
  }
  std::free(h);
}

// Bytes of freed big blocks kept for reuse now (tests).
inline size_t kernelCachedBytes() {
  std::lock_guard<std::mutex> l(kernel_alloc_detail::gMu);
  return kernel_alloc_detail::gCached;
}

}  // namespace cnnc
