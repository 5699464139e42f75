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
  // Training (forward in training mode, then backward). Shapes in comments are per image.
  BNStats,       // x[C,H,W] -> stats[2,C]: batch mean and biased variance (not batched)
  BNApply,       // x, stats, gamma, beta -> y [+ activation]
  BNBackParams,  // dy, x, stats -> [2,C]: dgamma, dbeta (not batched)
  BNBackData,    // dy, x, stats, gamma, dparams -> dx
                 // (BN kinds with extraIns = {pooled}: a k x k max pool, attrs.kernel, that tiles
                 // the BN's ReLU output is folded in: BNApply writes the pooled output, and dy of
                 // the backward kinds is the pooled gradient; see lower_train.cpp)
  ConvBackData,  // dy[O,Ho,Wo], w -> dx[C,H,W]
  ConvBackWeight,// dy, x -> dw[O,C/g,kh,kw] (not batched)
  BiasGrad,      // dy -> db[C] (sum over batch and space; not batched)
  LinearBackData,   // dy[O], w -> dx[F]
  LinearBackWeight, // dy, x -> dw[O,F] (not batched)
  ActGrad,       // dy, y -> dx through the activation `act`
  MaxPoolBack,   // dy, x -> dx
  AvgPoolBack,   // dy -> dx
  AdaptiveAvgBack, // dy -> dx
  SoftmaxBack,   // dy, y -> dx
  LrnBack,       // dy, x -> dx (x: the lrn's input; the window sums are recomputed)
  Slice,         // dy[Ctot,...] -> dx: channels [attrs.size, attrs.size + out[0])
  DropoutFwd,    // x, seed(i32[2]) -> y
  DropoutBack,   // dy, seed -> dx
  CELoss,        // logits[K], labels[1] (class index as float), eps[1] -> loss[1]
  CEGrad,        // logits, labels, eps -> dlogits[K] (mean over the batch)
  Mul,           // a, b -> act(a * b), each broadcast to out (extraIns: b's shape) [inference and training]
  BroadcastBack, // dy[out], [other] -> d[operand]: dy (times the other operand of a mul), summed
                 // over the dimensions where the operand was broadcast (extraIns: the other's shape)
  Scale,         // x, gamma[C,1,1] or [C] -> act(x * gamma) (also the input gradient: dy * gamma)
  ScaleBackParam,// dy, x -> dgamma (sum over batch and space; not batched)
  PRelu,         // x, weight[1 or C] -> x > 0 ? x : weight * x
  PReluBackData, // dy, x, weight -> dx
  PReluBackWeight, // dy, x -> dweight (sum over batch and space; not batched)
  ChunkBack,     // dy[C,...] -> dx[Ctot,...]: dy at channels [attrs.size, attrs.size + C), 0 elsewhere
  ChannelShuffle,// x -> y, channels permuted as PyTorch's channel_shuffle(x, attrs.groups)
  Upsample,      // x[C,H,W] -> y[C,Ho,Wo]: nearest or bilinear (attrs.resample, alignCorners, upScale)
  UpsampleBack,  // dy[C,Ho,Wo] -> dx[C,H,W]
  Pad,           // x -> y with attrs.pad (top, left) zero rows and columns before it, the rest after
  Crop,          // dy -> dx = dy from (attrs.pad[1], attrs.pad[0]): Pad's gradient
  ConvTranspose, // x[Cin,H,W], w[Cin,Cout/g,kh,kw], b[Cout] -> y: ConvBackData's algorithm plus a bias
  GNStats,       // x[C,H,W] or [F] -> st[G,2] per image: mean, 1 / sqrt(var + eps) (attrs.groups = G)
  GNApply,       // x, st (, gamma, beta: attrs.bias) -> act(normalised x)
  GNBackData,    // dy, x, st (, gamma) -> dx
  GNBackGamma,   // dy, x, st -> dgamma[C] (sum over batch and space; not batched)
  AdaptiveMaxPool, // x[C,H,W] -> y[C,OH,OW]: the maximum of each adaptive window (they may overlap)
  AdaptiveMaxBack, // dy[C,OH,OW], x -> dx: each window's gradient to its first maximum
};
// The last kind: ops/registry.cpp has a row for each kind up to it.
constexpr KernelKind kLastKernelKind = KernelKind::AdaptiveMaxBack;

// Kernels whose output has no batch dimension (reductions over the batch).
bool outputIsBatched(KernelKind k);

// An activation fused into a kernel or applied alone: the graph's (graph.h), looked up by name in
// the activation table of ops/activation.cpp. Default-constructed: none.
using Act = Activation;

const char* kernelKindName(KernelKind k);
// The activation node `n` applies (none for nodes that are not activations).
Act actOf(const Node& n);

struct KernelSpec {
  KernelKind kind = KernelKind::Conv;
  Dims in;                     // per-image input shape ([C,H,W] or [F])
  std::vector<Dims> extraIns;  // Concat: the other inputs; Add: the second operand
  Dims out;                    // per-image output shape
  Attrs attrs;                 // op attributes (kernel, stride, ...)
  Act act;
  bool residual = false;       // Conv, BNApply: adds a tensor of the output's shape before the activation
  bool packedWeights = false;  // Conv (inference): weights arrive as [C/g,kh,kw,O], packed at load
  Schedule schedule;

  // Canonical text of everything above: the identity of the generated code.
  std::string signature() const;
  // The kernel without its schedule or weight packing: what a tuning record is keyed by.
  std::string key() const;
  // A short stable name for the compiled function: "k_conv_" + hash of the signature.
  std::string functionName() const;
};

}  // namespace cnnc::codegen
