// ops.h: the entry points of the op files, two per kernel kind: lowerX builds its kind's algorithm
// and places it with the CPU or GPU schedule (KernelSpec::schedule.gpu); xArgs names its inputs in
// call order (KernelParams, op_helpers.h). registry.cpp maps kinds to them; nothing else calls them.
#pragma once
#include "op_helpers.h"
#include "registry.h"

namespace cnnc::codegen {

// conv.cpp, conv_winograd.cpp
Lowered lowerConv(const KernelSpec& k);
Lowered lowerConvBackData(const KernelSpec& k);
Lowered lowerConvBackWeight(const KernelSpec& k);
Lowered lowerConvWinograd(const KernelSpec& k);
Lowered lowerConvBackWeightWinograd(const KernelSpec& k);
// conv_depthwise.cpp (kernels whose schedule is flat)
Lowered lowerConvDepthwiseFlat(const KernelSpec& k);
Lowered lowerConvDepthwiseDirect(const KernelSpec& k);
Lowered lowerConvBackWeightDepthwiseFlat(const KernelSpec& k);
ArgNames convArgs(const KernelSpec& k);
ArgNames convBackDataArgs(const KernelSpec& k);
ArgNames convBackWeightArgs(const KernelSpec& k);
double convFlops(const KernelSpec& k);  // also ConvTranspose's
// bias.cpp
Lowered lowerBiasGrad(const KernelSpec& k);
ArgNames biasGradArgs(const KernelSpec& k);
// linear.cpp
Lowered lowerLinear(const KernelSpec& k);
Lowered lowerLinearBackData(const KernelSpec& k);
Lowered lowerLinearBackWeight(const KernelSpec& k);
ArgNames linearArgs(const KernelSpec& k);
ArgNames linearBackDataArgs(const KernelSpec& k);
ArgNames linearBackWeightArgs(const KernelSpec& k);
double linearFlops(const KernelSpec& k);
// batchnorm.cpp
Lowered lowerAffine(const KernelSpec& k);
Lowered lowerBNStats(const KernelSpec& k);
Lowered lowerBNApply(const KernelSpec& k);
Lowered lowerBNBackParams(const KernelSpec& k);
Lowered lowerBNBackData(const KernelSpec& k);
ArgNames affineArgs(const KernelSpec& k);
ArgNames bnStatsArgs(const KernelSpec& k);
ArgNames bnApplyArgs(const KernelSpec& k);
ArgNames bnBackParamsArgs(const KernelSpec& k);
ArgNames bnBackDataArgs(const KernelSpec& k);
// activation.cpp
Lowered lowerActivation(const KernelSpec& k);
Lowered lowerActGrad(const KernelSpec& k);
ArgNames activationArgs(const KernelSpec& k);
ArgNames actGradArgs(const KernelSpec& k);
// add.cpp
Lowered lowerAdd(const KernelSpec& k);
ArgNames addArgs(const KernelSpec& k);
// mul.cpp
Lowered lowerMul(const KernelSpec& k);
Lowered lowerBroadcastBack(const KernelSpec& k);
ArgNames mulArgs(const KernelSpec& k);
ArgNames broadcastBackArgs(const KernelSpec& k);
// scale.cpp
Lowered lowerScale(const KernelSpec& k);
Lowered lowerScaleBackParam(const KernelSpec& k);
ArgNames scaleArgs(const KernelSpec& k);
ArgNames scaleBackParamArgs(const KernelSpec& k);
// chunk.cpp
Lowered lowerChunkBack(const KernelSpec& k);
ArgNames chunkBackArgs(const KernelSpec& k);
// channel_shuffle.cpp
Lowered lowerChannelShuffle(const KernelSpec& k);
ArgNames channelShuffleArgs(const KernelSpec& k);
// upsample.cpp
Lowered lowerUpsample(const KernelSpec& k);
Lowered lowerUpsampleBack(const KernelSpec& k);
ArgNames upsampleArgs(const KernelSpec& k);
ArgNames upsampleBackArgs(const KernelSpec& k);
// pad.cpp
Lowered lowerPad(const KernelSpec& k);
Lowered lowerCrop(const KernelSpec& k);
ArgNames padArgs(const KernelSpec& k);
ArgNames cropArgs(const KernelSpec& k);
// conv.cpp: the transposed conv's kernel (its plan steps: conv_transpose.cpp)
Lowered lowerConvTranspose(const KernelSpec& k);
ArgNames convTransposeArgs(const KernelSpec& k);
// group_norm.cpp
Lowered lowerGNStats(const KernelSpec& k);
Lowered lowerGNApply(const KernelSpec& k);
Lowered lowerGNBackData(const KernelSpec& k);
Lowered lowerGNBackGamma(const KernelSpec& k);
ArgNames gnStatsArgs(const KernelSpec& k);
ArgNames gnApplyArgs(const KernelSpec& k);
ArgNames gnBackDataArgs(const KernelSpec& k);
ArgNames gnBackGammaArgs(const KernelSpec& k);
// prelu.cpp
Lowered lowerPRelu(const KernelSpec& k);
Lowered lowerPReluBackData(const KernelSpec& k);
Lowered lowerPReluBackWeight(const KernelSpec& k);
ArgNames preluArgs(const KernelSpec& k);
ArgNames preluBackDataArgs(const KernelSpec& k);
ArgNames preluBackWeightArgs(const KernelSpec& k);
// pool.cpp
Lowered lowerMaxPool(const KernelSpec& k);
Lowered lowerAvgPool(const KernelSpec& k);
Lowered lowerAdaptiveAvgPool(const KernelSpec& k);
Lowered lowerMaxPoolBack(const KernelSpec& k);
Lowered lowerAvgPoolBack(const KernelSpec& k);
Lowered lowerAdaptiveAvgBack(const KernelSpec& k);
Lowered lowerAdaptiveMaxPool(const KernelSpec& k);
Lowered lowerAdaptiveMaxBack(const KernelSpec& k);
ArgNames poolArgs(const KernelSpec& k);
ArgNames maxPoolBackArgs(const KernelSpec& k);
ArgNames avgPoolBackArgs(const KernelSpec& k);
// lrn.cpp
Lowered lowerLrn(const KernelSpec& k);
Lowered lowerLrnBack(const KernelSpec& k);
ArgNames lrnArgs(const KernelSpec& k);
ArgNames lrnBackArgs(const KernelSpec& k);
// softmax.cpp
Lowered lowerSoftmax(const KernelSpec& k);
Lowered lowerSoftmaxBack(const KernelSpec& k);
ArgNames softmaxArgs(const KernelSpec& k);
ArgNames softmaxBackArgs(const KernelSpec& k);
// concat.cpp
Lowered lowerConcat(const KernelSpec& k);
Lowered lowerSlice(const KernelSpec& k);
ArgNames concatArgs(const KernelSpec& k);
ArgNames sliceArgs(const KernelSpec& k);
// dropout.cpp
Lowered lowerDropout(const KernelSpec& k);
ArgNames dropoutArgs(const KernelSpec& k);
// cross_entropy.cpp
Lowered lowerCrossEntropy(const KernelSpec& k);
ArgNames crossEntropyArgs(const KernelSpec& k);

// The plan steps of each op with kernels (plan_builder.h): inference, training forward, training
// backward; in the op's file after its kernels.
struct InferenceBuilder;
struct TrainingBuilder;
struct BackStep;
#define CNNC_OP_PLAN_STEPS(op)                              \
  void op##Plan(InferenceBuilder& b, const Node& n);        \
  void op##Forward(TrainingBuilder& b, const Node& n);      \
  void op##Backward(TrainingBuilder& b, const BackStep& st);
CNNC_OP_PLAN_STEPS(conv)
CNNC_OP_PLAN_STEPS(linear)
CNNC_OP_PLAN_STEPS(batchnorm)
CNNC_OP_PLAN_STEPS(activation)
CNNC_OP_PLAN_STEPS(add)
CNNC_OP_PLAN_STEPS(mul)
CNNC_OP_PLAN_STEPS(scale)
CNNC_OP_PLAN_STEPS(prelu)
CNNC_OP_PLAN_STEPS(chunk)
CNNC_OP_PLAN_STEPS(channelShuffle)
CNNC_OP_PLAN_STEPS(upsample)
CNNC_OP_PLAN_STEPS(convTranspose)
CNNC_OP_PLAN_STEPS(pad)
CNNC_OP_PLAN_STEPS(groupNorm)
CNNC_OP_PLAN_STEPS(maxPool)
CNNC_OP_PLAN_STEPS(avgPool)
CNNC_OP_PLAN_STEPS(adaptiveAvgPool)
CNNC_OP_PLAN_STEPS(adaptiveMaxPool)
CNNC_OP_PLAN_STEPS(lrn)
CNNC_OP_PLAN_STEPS(softmax)
CNNC_OP_PLAN_STEPS(concat)
CNNC_OP_PLAN_STEPS(dropout)
#undef CNNC_OP_PLAN_STEPS

// mul.cpp: the gradient of operand node `operand` of the add or mul of step `st`, from the
// gradient st.dPre of its output: that gradient (times ActTensor `other`, the mul's other operand,
// unless -1), summed over the dimensions where the operand was broadcast. Returns an ActTensor
// (st.dPre itself when there is nothing to do).
int broadcastGrad(TrainingBuilder& b, const BackStep& st, int operand, int other);

}  // namespace cnnc::codegen
