// kernel.h: one kernel = one Halide pipeline. A KernelSpec holds everything that determines the
// generated code (op, static per-image shapes, fused epilogue, schedule), so two layers with equal
// specs share one compiled kernel, and the spec's text is the compile-cache key.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "graph.h"
#include "schedule.h"

namespace cnnc::codegen {

enum class KernelKind {
  Conv,          // direct convolution + bias (BN folded in) [+ residual] [+ activation]
  Linear,        // fully connected + bias [+ activation]
  Affine,        // per-channel scale and shift (a BN that could not be folded) [+ activation]
  Activation,    // relu / tanh / sigmoid alone
  Add,           // elementwise sum of two tensors [+ activation]
  MaxPool, AvgPool, AdaptiveAvgPool, LRN, Softmax,
  Concat,        // channel concatenation of 2..N inputs
};

enum class Act { None, Relu, Tanh, Sigmoid };

const char* kernelKindName(KernelKind k);
const char* actName(Act a);

struct KernelSpec {
  KernelKind kind = KernelKind::Conv;
  Dims in;                     // per-image input shape ([C,H,W] or [F])
  std::vector<Dims> extraIns;  // Concat: the other inputs; Add: the second operand
  Dims out;                    // per-image output shape
  Attrs attrs;                 // op attributes (kernel, stride, ...)
  Act act = Act::None;
  bool residual = false;       // Conv: adds a tensor of the output's shape before the activation
  Schedule schedule;

  // Canonical text of everything above: the identity of the generated code.
  std::string signature() const;
  // A short stable name for the compiled function: "k_conv_" + hash of the signature.
  std::string functionName() const;
};

}  // namespace cnnc::codegen
