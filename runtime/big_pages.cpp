// big_pages.cpp: the executables' operator new, which puts large blocks on 2 MiB pages.
//
// Loaded weights, gradients, optimizer state and the tensors a step writes out are std::vectors; a
// big model's are hundreds of megabytes, and on 4 KiB pages their first touch is a page fault per
// page (VGG-16's `step` at 3x33x35: 421,000 faults, 7.4 s of system time of 11.5 s; with 2 MiB
// pages 20,000 faults and 2.7-4.9 s in all). Only the executables' archive (cnnc_runtime) holds
// this file: a library (--emit=lib, --emit=python) leaves its host program's allocator alone.
#include <cstdlib>
#include <new>

#include "common/huge_alloc.h"

void* operator new(std::size_t n) {
  for (;;) {
    void* p = n >= cnnc::kBigBlock ? cnnc::allocHuge(n) : std::malloc(n == 0 ? 1 : n);
    if (p) return p;
    std::new_handler h = std::get_new_handler();
    if (!h) throw std::bad_alloc();
    h();
  }
}

// Both kinds of block are released by free(), as the default operator delete does; replaced with
// operator new as the standard asks.
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
