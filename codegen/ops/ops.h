// ops.h: the entry points of the op files, one per kernel kind: each builds its kind's algorithm
// and places it with the CPU or GPU schedule (KernelSpec::schedule.gpu). registry.cpp maps kinds
// to them; nothing else calls them.
#pragma once
#include "op_helpers.h"

namespace cnnc::codegen {

// conv.cpp, conv_winograd.cpp
Lowered lowerConv(const KernelSpec& k);
Lowered lowerConvBackData(const KernelSpec& k);
Lowered lowerConvBackWeight(const KernelSpec& k);
Lowered lowerConvWinograd(const KernelSpec& k);
// bias.cpp
Lowered lowerBiasGrad(const KernelSpec& k);
// linear.cpp
Lowered lowerLinear(const KernelSpec& k);
Lowered lowerLinearBackData(const KernelSpec& k);
Lowered lowerLinearBackWeight(const KernelSpec& k);
// batchnorm.cpp
Lowered lowerAffine(const KernelSpec& k);
Lowered lowerBNStats(const KernelSpec& k);
Lowered lowerBNApply(const KernelSpec& k);
Lowered lowerBNBackParams(const KernelSpec& k);
Lowered lowerBNBackData(const KernelSpec& k);
// activation.cpp
Lowered lowerActivation(const KernelSpec& k);
Lowered lowerActGrad(const KernelSpec& k);
// add.cpp
Lowered lowerAdd(const KernelSpec& k);
// pool.cpp
Lowered lowerMaxPool(const KernelSpec& k);
Lowered lowerAvgPool(const KernelSpec& k);
Lowered lowerAdaptiveAvgPool(const KernelSpec& k);
Lowered lowerMaxPoolBack(const KernelSpec& k);
Lowered lowerAvgPoolBack(const KernelSpec& k);
Lowered lowerAdaptiveAvgBack(const KernelSpec& k);
// lrn.cpp
Lowered lowerLrn(const KernelSpec& k);
Lowered lowerLrnBack(const KernelSpec& k);
// softmax.cpp
Lowered lowerSoftmax(const KernelSpec& k);
Lowered lowerSoftmaxBack(const KernelSpec& k);
// concat.cpp
Lowered lowerConcat(const KernelSpec& k);
Lowered lowerSlice(const KernelSpec& k);
// dropout.cpp
Lowered lowerDropout(const KernelSpec& k);
// cross_entropy.cpp
Lowered lowerCrossEntropy(const KernelSpec& k);

}  // namespace cnnc::codegen
