// pool.h: the rules of the pool op (pool.cpp) that the training plan follows.
#pragma once
#include "kernel.h"

namespace cnnc::codegen {

// Whether a max pool's windows tile its input of per-image shape `in` exactly: window = stride,
// no padding or dilation, sizes divisible (VGG's 2x2 pools). Pixel (x, y) is then tap
// (x % s, y % s) of window (x / s, y / s) and nothing else, which the tiled backward kernel and a
// pool folded into the batch norm before it (batchnormForward in batchnorm.cpp) rely on.
inline bool poolTilesInput(const Attrs& a, const Dims& in) {
  if (a.kernel[0] != a.stride[0] || a.kernel[1] != a.stride[1] || a.pad[0] || a.pad[1] || a.dilation[0] != 1 || a.dilation[1] != 1) return false;
  return in.size() == 3 && in[1] % a.kernel[0] == 0 && in[2] % a.kernel[1] == 0;
}

}  // namespace cnnc::codegen
