// scratch_alloc.h: halide_malloc for the kernels' scratch buffers, with large blocks kept for reuse.
#pragma once
#include <cstddef>

namespace cnnc::rt {

// Halide's allocator in every executable (Executor::init installs it). Blocks of 1 MiB and more go
// back to a small cache when freed, so the next call of the same kernel finds its buffer already
// mapped: ResNet-18's 512-channel weight gradients allocated and page-faulted tens of MiB per call.
void* scratchMalloc(void* user_context, size_t bytes);
void scratchFree(void* user_context, void* ptr);
// Bytes held by the cache (freed blocks waiting for reuse).
size_t scratchCachedBytes();

}  // namespace cnnc::rt
