// conv.h: the rules of the conv op (conv.cpp, conv_winograd.cpp) that the default schedules and
// the tuner read.
#pragma once
#include "kernel.h"

namespace cnnc::codegen {

// Whether `k` is a conv (or a conv's input gradient) the Winograd kernel computes: 3x3, stride 1,
// dilation 1, padding 1, ungrouped (same output size as input).
bool winogradApplies(const KernelSpec& k);
// Whether a conv or its input gradient can walk its planes as flat rows (Schedule::flat):
// depthwise (one input channel per output channel), stride 1, output rows as long as the input's.
bool depthwiseFlatApplies(const KernelSpec& k);

}  // namespace cnnc::codegen
