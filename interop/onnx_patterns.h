// onnx_patterns.h: the multi-node forms that exporters write for one cnnc layer (gelu as Div-Erf-Add-
// Mul-Mul, layer norm as a ReduceMean chain, group norm around InstanceNormalization, channel shuffle
// as Reshape-Transpose-Reshape, a linear as MatMul-Add), found and replaced
// by one node of the internal domain "cnnc" that onnx_import.cpp translates like any other.
#pragma once
#include <onnx/onnx_pb.h>

#include <functional>
#include <string>
#include <vector>

namespace cnnc::interop {

// What the matcher may ask of the importer: a value's constant tensor (nullptr if computed) and its
// inferred shape (empty if unknown).
struct PatternEnv {
  std::function<const onnx::TensorProto*(const std::string&)> constant;
  std::function<std::vector<int64_t>(const std::string&)> shape;
  std::function<std::vector<float>(const onnx::TensorProto&)> floats;
  std::vector<std::string> graphOutputs;  // values read from outside the node list
};

// The fused ops, their inputs and attributes:
//   Gelu(x) approximate=0|1; Silu(x); Mish(x); HardSwish(x) (opset < 14's x * HardSigmoid(x))
//   Norm(x[, weight, bias]) kind="layer"|"group", groups, eps, last: normalised over the channels of
//     each pixel or feature vector (layer; over the last axis when last=1, of a channels-last tensor)
//     or over groups of channels and the whole plane (group), then scaled and shifted per channel
//     when weight and bias are given;
//   AdaptivePool(x) kind="avg"|"max", out=[oh, ow]: PyTorch's adaptive pool (unequal windows);
//   ChannelShuffle(x) groups; LastLinear(x, weightT, bias): x @ weightT + bias over x's last axis,
//     weightT [C, O].
void fusePatterns(std::vector<onnx::NodeProto>& nodes, const PatternEnv& env);

// How many values constant `c` gives when broadcast over `src` ([N, C, H, W] or [N, F]): 1 (all its
// dimensions 1), C (one per channel), else -1. Shared by the matcher and the importer's scale/PRelu.
int64_t channelCount(const onnx::TensorProto& c, const std::vector<int64_t>& src);

}  // namespace cnnc::interop
