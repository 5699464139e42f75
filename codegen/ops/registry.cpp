// registry.cpp: the table from kernel kinds to the op files' entry points (ops.h).
#include "registry.h"

#include <stdexcept>
#include <string>

#include "ops.h"  // includes lower.h

namespace cnnc::codegen {

namespace {

using K = KernelKind;

// In KernelKind's order, so a kind's row is its index.
const KernelEntry kTable[] = {
    {K::Conv, "conv", true, lowerConv},
    {K::Linear, "linear", true, lowerLinear},
    {K::Affine, "affine", true, lowerAffine},
    {K::Activation, "act", true, lowerActivation},
    {K::Add, "add", true, lowerAdd},
    {K::MaxPool, "maxpool", true, lowerMaxPool},
    {K::AvgPool, "avgpool", true, lowerAvgPool},
    {K::AdaptiveAvgPool, "adaptavg", true, lowerAdaptiveAvgPool},
    {K::LRN, "lrn", true, lowerLrn},
    {K::Softmax, "softmax", true, lowerSoftmax},
    {K::Concat, "concat", true, lowerConcat},
    {K::BNStats, "bnstats", false, lowerBNStats},
    {K::BNApply, "bnapply", true, lowerBNApply},
    {K::BNBackParams, "bnbackparams", false, lowerBNBackParams},
    {K::BNBackData, "bnbackdata", true, lowerBNBackData},
    {K::ConvBackData, "convbackdata", true, lowerConvBackData},
    {K::ConvBackWeight, "convbackweight", false, lowerConvBackWeight},
    {K::BiasGrad, "biasgrad", false, lowerBiasGrad},
    {K::LinearBackData, "linearbackdata", true, lowerLinearBackData},
    {K::LinearBackWeight, "linearbackweight", false, lowerLinearBackWeight},
    {K::ActGrad, "actgrad", true, lowerActGrad},
    {K::MaxPoolBack, "maxpoolback", true, lowerMaxPoolBack},
    {K::AvgPoolBack, "avgpoolback", true, lowerAvgPoolBack},
    {K::AdaptiveAvgBack, "adaptavgback", true, lowerAdaptiveAvgBack},
    {K::SoftmaxBack, "softmaxback", true, lowerSoftmaxBack},
    {K::LrnBack, "lrnback", true, lowerLrnBack},
    {K::Slice, "slice", true, lowerSlice},
    {K::DropoutFwd, "dropout", true, lowerDropout},
    {K::DropoutBack, "dropoutback", true, lowerDropout},
    {K::CELoss, "celoss", true, lowerCrossEntropy},
    {K::CEGrad, "cegrad", true, lowerCrossEntropy},
};

constexpr size_t kRows = sizeof(kTable) / sizeof(kTable[0]);

}  // namespace

const KernelEntry& kernelEntry(KernelKind k) {
  // A missing or misplaced row is a bug in this table, never the user's input.
  size_t i = (size_t)k;
  if (i >= kRows || kTable[i].kind != k) throw std::logic_error("codegen/ops/registry.cpp: no row in place for kernel kind " + std::to_string(i));
  return kTable[i];
}

Lowered lowerKernel(const KernelSpec& k) { return kernelEntry(k.kind).lower(k); }

}  // namespace cnnc::codegen
