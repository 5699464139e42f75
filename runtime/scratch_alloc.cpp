// scratch_alloc.cpp: see scratch_alloc.h. Kernels ask for the same sizes on every call, so the cache
// matches sizes exactly; it holds at most kMaxBlocks blocks and kMaxBytes in all, dropping the
// oldest first. Small blocks go straight to the C library.
#include "scratch_alloc.h"

#include <sys/mman.h>

#include <cstdlib>
#include <deque>
#include <mutex>
#include <unordered_map>

namespace cnnc::rt {
namespace {

constexpr size_t kAlign = 128;          // Halide's buffers need 128-byte alignment for its vectors
constexpr size_t kLarge = size_t(1) << 20;
constexpr size_t kHuge = size_t(2) << 20;
constexpr size_t kMaxBlocks = 16;
constexpr size_t kMaxBytes = size_t(256) << 20;

struct Cache {
  std::mutex m;
  std::unordered_map<void*, size_t> live;    // large blocks handed out, with their sizes
  std::deque<std::pair<void*, size_t>> free;  // large blocks freed, oldest first
  size_t freeBytes = 0;
};

Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: kernels may free after static destructors ran
  return *c;
}

}  // namespace

void* scratchMalloc(void*, size_t bytes) {
  size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  if (rounded < kLarge) return std::aligned_alloc(kAlign, rounded ? rounded : kAlign);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.m);
    for (auto it = c.free.begin(); it != c.free.end(); ++it)
      if (it->second == rounded) {
        void* p = it->first;
        c.freeBytes -= rounded;
        c.free.erase(it);
        c.live[p] = rounded;
        return p;
      }
  }
  void* p = std::aligned_alloc(rounded >= kHuge ? kHuge : kAlign, rounded >= kHuge ? (rounded + kHuge - 1) / kHuge * kHuge : rounded);
  if (!p) return nullptr;
#ifdef MADV_HUGEPAGE
  if (rounded >= kHuge) madvise(p, (rounded + kHuge - 1) / kHuge * kHuge, MADV_HUGEPAGE);
#endif
  std::lock_guard<std::mutex> lock(c.m);
  c.live[p] = rounded;
  return p;
}

void scratchFree(void*, void* ptr) {
  if (!ptr) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.m);
  auto it = c.live.find(ptr);
  if (it == c.live.end()) {
    std::free(ptr);  // a small block
    return;
  }
  size_t bytes = it->second;
  c.live.erase(it);
  c.free.emplace_back(ptr, bytes);
  c.freeBytes += bytes;
  while (c.free.size() > kMaxBlocks || c.freeBytes > kMaxBytes) {
    std::free(c.free.front().first);
    c.freeBytes -= c.free.front().second;
    c.free.pop_front();
  }
}

size_t scratchCachedBytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.m);
  return c.freeBytes;
}

}  // namespace cnnc::rt
