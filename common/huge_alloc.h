// huge_alloc.h: large blocks on 2 MiB pages (the activation arena, loaded weights, and every large
// `new` in the executables: big_pages.cpp).
#pragma once
#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace cnnc {

constexpr size_t kHugePage = size_t(2) << 20;
// Blocks from this size on take 2 MiB pages; rounding them up to whole pages wastes at most a third.
constexpr size_t kBigBlock = size_t(4) << 20;

// A 2 MiB-aligned block of whole 2 MiB pages, advised to the kernel as huge-page memory (transparent
// huge pages are often in "madvise" mode). Each 4 KiB page is a page fault on first touch: copying
// VGG-16's 528 MB of weights twice on loading took 285,000 faults and 2.6 s of system time of `infer`'s
// 4.4 s on this project's 2-core VM; with 2 MiB pages (this and big_pages.cpp) 4,700 faults and
// 0.3-2.0 s in all. Null when out of memory; std::free releases it.
inline void* allocHuge(size_t bytes) {
  size_t rounded = std::max<size_t>(1, (bytes + kHugePage - 1) / kHugePage) * kHugePage;  // aligned_alloc(a, 0) may return null
  void* p = std::aligned_alloc(kHugePage, rounded);
#ifdef MADV_HUGEPAGE
  if (p) madvise(p, rounded, MADV_HUGEPAGE);
#endif
  return p;
}

template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}
  T* allocate(size_t n) {
    void* p = allocHuge(n * sizeof(T));
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { std::free(p); }
  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const HugePageAllocator<U>&) const { return false; }
};

}  // namespace cnnc
