// batchnorm.h: the rules of the batchnorm op (batchnorm.cpp) that the training plan follows when it
// chooses the kernels' arguments.
#pragma once
#include "kernel.h"

namespace cnnc::codegen {

// The BN backward kernels with a fused ReLU recompute its mask from x (so they read gamma and beta,
// not y): one tensor less to read. Other activations' derivatives need y, an extra argument after dy.
inline bool bnMaskFromX(const Act& a) { return a.is("relu"); }

}  // namespace cnnc::codegen
