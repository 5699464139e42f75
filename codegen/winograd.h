// winograd.h: the Winograd form of 3x3 stride-1 convolutions (winograd.cpp), chosen by
// Schedule::winograd.
#pragma once
#include "lower.h"

namespace cnnc::codegen {

// Whether `k` is a conv (or a conv's input gradient) the Winograd kernel computes: 3x3, stride 1,
// dilation 1, padding 1, ungrouped (same output size as input).
bool winogradApplies(const KernelSpec& k);

// The conv (or input gradient) of `k` as Winograd F(m x m, 3x3), m = k.schedule.winograd (2 or 4).
Lowered convWinograd(const KernelSpec& k);

}  // namespace cnnc::codegen
