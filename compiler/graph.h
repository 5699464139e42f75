// graph.h: the graph IR, the single input of code generation. Ops are typed, every tensor shape is
// static (per image: [C,H,W] or [F]; the batch is left to run time) and every node keeps the source
// location of the statement that made it plus the chain of block instantiations around it.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/recipe.h"
#include "common/shape.h"  // Dims, numel, dimsStr
#include "source.h"

namespace cnnc {

enum class OpKind {
  Input, Conv, Linear, BatchNorm, Activation, MaxPool, AvgPool, AdaptiveAvgPool,
  Flatten, Dropout, LRN, Softmax, Concat, Add, Mul, Scale, PReLU,
  Chunk,           // channels [attrs.size, attrs.size + C) of its input (a branch of `split`)
  ChannelShuffle,  // attrs.groups: PyTorch's channel_shuffle
  Upsample,        // nn.Upsample: attrs.resample, alignCorners, upScale
  ConvTranspose,   // nn.ConvTranspose2d: conv's attributes, outPad
  Pad,             // F.pad with zeros: attrs.pad (top, left), padEnd (bottom, right)
  GroupNorm,       // groupnorm, instancenorm, layernorm on [F]: attrs.groups, eps, bias (= affine)
  AdaptiveMaxPool  // nn.AdaptiveMaxPool2d to attrs.outHW where windows overlap (else a MaxPool)
};

const char* opName(OpKind k);

// An elementwise activation (OpKind::Activation): the layer's name, which is also its row in
// codegen's activation table (codegen/ops/activation.cpp), and its arguments in the layer table's
// order, e.g. leakyrelu {slope: 0.01}. An empty name is no activation.
struct Activation {
  std::string name;
  std::vector<std::pair<std::string, double>> args;
  bool none() const { return name.empty(); }
  bool is(const char* n) const { return name == n; }
  double arg(size_t i) const { return args.at(i).second; }
  // "none", "relu", "leakyrelu(slope=0.01)": stable text, part of kernel signatures.
  std::string str() const;
  bool operator==(const Activation& o) const { return name == o.name && args == o.args; }
  bool operator!=(const Activation& o) const { return !(*this == o); }
};

struct Attrs {
  int64_t out = 0;                // conv/linear output channels or features
  int64_t kernel[2] = {1, 1};
  int64_t stride[2] = {1, 1};
  int64_t pad[2] = {0, 0};
  int64_t dilation[2] = {1, 1};
  int64_t groups = 1;
  bool bias = true;
  bool ceil = false;              // pools
  bool countIncludePad = true;    // avgpool
  int64_t outHW[2] = {1, 1};      // adaptive pool
  int64_t size = 0;               // lrn
  double eps = 1e-5, momentum = 0.1;  // batchnorm
  double p = 0.5;                 // dropout
  // What one random draw of a dropout keeps or zeroes: an element (dropout), a channel of an image
  // (dropout2d, nn.Dropout2d) or a whole image (droppath, torchvision's StochasticDepth "row").
  enum class DropUnit { Element, Channel, Sample } dropUnit = DropUnit::Element;
  double alpha = 1e-4, beta = 0.75, k = 1.0;  // lrn
  double init = 1.0;              // scale, prelu: their parameter's initial value (prelu's count: out)
  Activation act;                 // activation layers
  // upsample: PyTorch's modes; the coordinate scale per axis (its scale_factor's inverse), or 0 when
  // the output size was given (the scale is then in / out)
  enum class Resample { Nearest, Bilinear } resample = Resample::Nearest;
  bool alignCorners = false;
  double upScale[2] = {0, 0};
  int64_t outPad[2] = {0, 0};     // convtranspose: output_padding
  int64_t padEnd[2] = {0, 0};     // pad: rows at the bottom, columns at the right (pad: top, left)
  bool normChannels = false;      // groupnorm op as layernorm on [C,H,W]: over each pixel's channels
};

enum class ParamRole { Weight, Bias, RunningMean, RunningVar, NumBatchesTracked };

struct ParamInfo {
  std::string name;   // state_dict key
  Dims shape;
  ParamRole role;
  int node = -1;
  bool hasFill = false;  // initialised to `fill` everywhere (scale, prelu), not by fan-in
  double fill = 0;
  bool trainable() const { return role == ParamRole::Weight || role == ParamRole::Bias; }
  bool isInt64() const { return role == ParamRole::NumBatchesTracked; }
  int64_t numel() const;
};

struct Graph;
// Puts g.params in the order of PyTorch's state_dict: a module's own parameters (by name: a.b.w is
// module a.b's own w) before its submodules', modules in order of first appearance. For nets whose
// parameters all belong to leaf layers that is the order they were declared in; a `scale` layer's
// parameter (torchvision's layer_scale, the module's own) moves ahead of its siblings' submodules.
void orderParamsAsPyTorch(Graph& g);

struct Node;
// What the graph's text forms call a node's op: opName, or an activation's own name.
std::string nodeOpName(const Node& n);

struct Node {
  int id = -1;
  OpKind op = OpKind::Input;
  std::string name;               // dotted module path, unique in the graph
  std::vector<int> inputs;
  Dims shape;
  Attrs attrs;
  std::vector<int> params;        // indices into Graph::params
  SourceLoc loc;
  std::vector<SourceLoc> callStack;  // innermost instantiation site first
  int module = 0;                 // index into Graph::modules
  int64_t macs = 0;               // multiply-accumulates per image (conv, linear)
};

// A module: the network, a block instance or a seq; used to draw clusters and summaries.
struct ModuleInfo {
  std::string path;   // "" for the network itself
  std::string kind;   // block name, "seq" or "network"
  int parent = -1;
};

struct Graph {
  std::string name;
  std::string file;
  std::vector<Node> nodes;        // in topological order; nodes[0] is the input
  std::vector<ParamInfo> params;  // in state_dict order
  std::vector<ModuleInfo> modules;
  int output = -1;
  std::vector<double> mean, std;  // input normalisation, may be empty
  std::vector<recipe::Value> recipe;  // the training recipe, in the order written; empty without one

  int64_t totalParams() const;     // trainable parameters
  int64_t bufferElems() const;     // BN running mean + var
  int64_t totalMacs() const;
  int64_t activationBytes() const; // sum of all node outputs, batch 1, float32
};

// Text forms for tests and tools.
std::string printGraph(const Graph& g, const SourceManager& sm);
std::string printParams(const Graph& g);
std::string printSummary(const Graph& g);
std::string printDot(const Graph& g);
std::string withCommas(int64_t v);

}  // namespace cnnc
