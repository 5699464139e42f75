// kernel_alloc.h: the memory the kernels allocate for themselves (Halide's halide_malloc): their
// intermediates, such as a weight gradient's partial sums or a linear layer's transposed weights.
#pragma once
#include <cstddef>

namespace cnnc::rt {

// Routes the kernels' allocations through kernelMalloc / kernelFree (idempotent).
void installKernelAllocator();

// Blocks from kBigBlock on sit on 2 MiB pages and, when freed, are kept for the next allocation
// of a size they hold (at most twice it), up to kKernelCacheBytes in all; smaller ones are plain
// malloc. Every block is 128-byte aligned, and 64 bytes past either end are readable, as Halide
// asks of halide_malloc.
void* kernelMalloc(void* userContext, size_t bytes);
void kernelFree(void* userContext, void* p);

// Bytes of freed big blocks kept for reuse now (tests).
size_t kernelCachedBytes();

constexpr size_t kKernelCacheBytes = size_t(2) << 30;

}  // namespace cnnc::rt
