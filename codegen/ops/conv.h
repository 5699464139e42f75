// conv.h: the rules of the conv op (conv.cpp, conv_winograd.cpp) that the default schedules and
// the tuner read.
#pragma once
#include "kernel.h"

namespace cnnc::codegen {

// Whether `k` is a conv (or a conv's input gradient) the Winograd kernel computes: 3x3, stride 1,
// dilation 1, padding 1, ungrouped (same output size as input).
bool winogradApplies(const KernelSpec& k);

}  // namespace cnnc::codegen
