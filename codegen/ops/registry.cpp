// registry.cpp: the table from kernel kinds to the op files' entry points (ops.h), and
// KernelParams, which holds an algorithm to its kind's argument list.
#include "registry.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "ops.h"  // includes lower.h
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

using K = KernelKind;

// In KernelKind's order, so a kind's row is its index.
const KernelEntry kTable[] = {
    {K::Conv, "conv", true, lowerConv, convArgs, convFlops},
    {K::Linear, "linear", true, lowerLinear, linearArgs, linearFlops},
    {K::Affine, "affine", true, lowerAffine, affineArgs},
    {K::Activation, "act", true, lowerActivation, activationArgs},
    {K::Add, "add", true, lowerAdd, addArgs},
    {K::MaxPool, "maxpool", true, lowerMaxPool, poolArgs},
    {K::AvgPool, "avgpool", true, lowerAvgPool, poolArgs},
    {K::AdaptiveAvgPool, "adaptavg", true, lowerAdaptiveAvgPool, poolArgs},
    {K::LRN, "lrn", true, lowerLrn, lrnArgs},
    {K::Softmax, "softmax", true, lowerSoftmax, softmaxArgs},
    {K::Concat, "concat", true, lowerConcat, concatArgs},
    {K::BNStats, "bnstats", false, lowerBNStats, bnStatsArgs},
    {K::BNApply, "bnapply", true, lowerBNApply, bnApplyArgs},
    {K::BNBackParams, "bnbackparams", false, lowerBNBackParams, bnBackParamsArgs},
    {K::BNBackData, "bnbackdata", true, lowerBNBackData, bnBackDataArgs},
    {K::ConvBackData, "convbackdata", true, lowerConvBackData, convBackDataArgs, convFlops},
    {K::ConvBackWeight, "convbackweight", false, lowerConvBackWeight, convBackWeightArgs, convFlops},
    {K::BiasGrad, "biasgrad", false, lowerBiasGrad, biasGradArgs},
    {K::LinearBackData, "linearbackdata", true, lowerLinearBackData, linearBackDataArgs, linearFlops},
    {K::LinearBackWeight, "linearbackweight", false, lowerLinearBackWeight, linearBackWeightArgs, linearFlops},
    {K::ActGrad, "actgrad", true, lowerActGrad, actGradArgs},
    {K::MaxPoolBack, "maxpoolback", true, lowerMaxPoolBack, maxPoolBackArgs},
    {K::AvgPoolBack, "avgpoolback", true, lowerAvgPoolBack, avgPoolBackArgs},
    {K::AdaptiveAvgBack, "adaptavgback", true, lowerAdaptiveAvgBack, avgPoolBackArgs},
    {K::SoftmaxBack, "softmaxback", true, lowerSoftmaxBack, softmaxBackArgs},
    {K::LrnBack, "lrnback", true, lowerLrnBack, lrnBackArgs},
    {K::Slice, "slice", true, lowerSlice, sliceArgs},
    {K::DropoutFwd, "dropout", true, lowerDropout, dropoutArgs},
    {K::DropoutBack, "dropoutback", true, lowerDropout, dropoutArgs},
    {K::CELoss, "celoss", true, lowerCrossEntropy, crossEntropyArgs},
    {K::CEGrad, "cegrad", true, lowerCrossEntropy, crossEntropyArgs},
    {K::Mul, "mul", true, lowerMul, mulArgs},
    {K::BroadcastBack, "broadcastback", true, lowerBroadcastBack, broadcastBackArgs},
    {K::Scale, "scale", true, lowerScale, scaleArgs},
    {K::ScaleBackParam, "scalebackparam", false, lowerScaleBackParam, scaleBackParamArgs},
    {K::PRelu, "prelu", true, lowerPRelu, preluArgs},
    {K::PReluBackData, "prelubackdata", true, lowerPReluBackData, preluBackDataArgs},
    {K::PReluBackWeight, "prelubackweight", false, lowerPReluBackWeight, preluBackWeightArgs},
    {K::ChunkBack, "chunkback", true, lowerChunkBack, chunkBackArgs},
    {K::ChannelShuffle, "channelshuffle", true, lowerChannelShuffle, channelShuffleArgs},
    {K::Upsample, "upsample", true, lowerUpsample, upsampleArgs},
    {K::UpsampleBack, "upsampleback", true, lowerUpsampleBack, upsampleBackArgs},
    {K::Pad, "pad", true, lowerPad, padArgs},
    {K::Crop, "crop", true, lowerCrop, cropArgs},
    {K::ConvTranspose, "convtranspose", true, lowerConvTranspose, convTransposeArgs, convFlops},
    {K::GNStats, "gnstats", true, lowerGNStats, gnStatsArgs},
    {K::GNApply, "gnapply", true, lowerGNApply, gnApplyArgs},
    {K::GNBackData, "gnbackdata", true, lowerGNBackData, gnBackDataArgs},
    {K::GNBackGamma, "gnbackgamma", false, lowerGNBackGamma, gnBackGammaArgs},
    {K::AdaptiveMaxPool, "adaptmax", true, lowerAdaptiveMaxPool, poolArgs},
    {K::AdaptiveMaxBack, "adaptmaxback", true, lowerAdaptiveMaxBack, maxPoolBackArgs},
};

constexpr size_t kRows = sizeof(kTable) / sizeof(kTable[0]);

// The plan steps of each op that makes kernels; input and flatten (no kernels)
// have no row: the plan builders handle them.
#define CNNC_OP_ROW(kind, op) {OpKind::kind, op##Plan, op##Forward, op##Backward}
const OpPlanEntry kOpTable[] = {
    CNNC_OP_ROW(Conv, conv),
    CNNC_OP_ROW(Linear, linear),
    CNNC_OP_ROW(BatchNorm, batchnorm),
    CNNC_OP_ROW(Activation, activation),
    CNNC_OP_ROW(MaxPool, maxPool),
    CNNC_OP_ROW(AvgPool, avgPool),
    CNNC_OP_ROW(AdaptiveAvgPool, adaptiveAvgPool),
    CNNC_OP_ROW(AdaptiveMaxPool, adaptiveMaxPool),
    CNNC_OP_ROW(Dropout, dropout),
    CNNC_OP_ROW(LRN, lrn),
    CNNC_OP_ROW(Softmax, softmax),
    CNNC_OP_ROW(Concat, concat),
    CNNC_OP_ROW(Add, add),
    CNNC_OP_ROW(Mul, mul),
    CNNC_OP_ROW(Scale, scale),
    CNNC_OP_ROW(PReLU, prelu),
    CNNC_OP_ROW(Chunk, chunk),
    CNNC_OP_ROW(ChannelShuffle, channelShuffle),
    CNNC_OP_ROW(Upsample, upsample),
    CNNC_OP_ROW(ConvTranspose, convTranspose),
    CNNC_OP_ROW(Pad, pad),
    CNNC_OP_ROW(GroupNorm, groupNorm),
};
#undef CNNC_OP_ROW

}  // namespace

const KernelEntry& kernelEntry(KernelKind k) {
  // A missing or misplaced row is a bug in this table, never the user's input.
  size_t i = (size_t)k;
  if (i >= kRows || kTable[i].kind != k) throw std::logic_error("codegen/ops/registry.cpp: no row in place for kernel kind " + std::to_string(i));
  return kTable[i];
}

Lowered lowerKernel(const KernelSpec& k) { return kernelEntry(k.kind).lower(k); }

const OpPlanEntry& opPlanEntry(OpKind op) {
  for (const auto& e : kOpTable)
    if (e.op == op) return e;
  throw std::logic_error(std::string("codegen/ops/registry.cpp: no plan steps for op ") + opName(op));
}

KernelParams::KernelParams(const KernelSpec& k) : k_(k), names_(kernelArgNames(k)) {}

ImageParam KernelParams::add(ImageParam p) {
  for (const auto& d : declared_)
    if (d.name() == p.name()) throw std::logic_error("codegen/ops: kernel " + k_.signature() + " declares '" + p.name() + "' twice");
  declared_.push_back(p);
  return p;
}

ImageParam KernelParams::tensor(const std::string& name, const Dims& d) { return add(tensorParam(name, d)); }

ImageParam KernelParams::fixed(const std::string& name, const Dims& d, Type t) { return add(fixedParam(name, d, t)); }

ImageParam KernelParams::declared(const std::string& name, Type t, int dims) { return add(ImageParam(t, dims, name)); }

std::vector<Argument> KernelParams::args() const {
  std::vector<Argument> out;
  for (const auto& n : names_) {
    auto it = std::find_if(declared_.begin(), declared_.end(), [&](const ImageParam& p) { return p.name() == n; });
    // A listed argument the algorithm never declared: the kind's args function and its algorithm disagree.
    if (it == declared_.end()) throw std::logic_error("codegen/ops: kernel " + k_.signature() + " lists argument '" + n + "' but its algorithm does not declare it");
    out.push_back(*it);
  }
  return out;
}

}  // namespace cnnc::codegen
