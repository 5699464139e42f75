// onnx_export.cpp: see onnx_export.h.
//
// 1. The input becomes the graph input "input", [N, C, H, W] or [N, F] with a symbolic batch N.
// 2. Each graph node, in topological order, becomes one ONNX node named after it (its output value
//    too), or a short chain whose extra values are named "<node>/<step>": ops ONNX lacks at the
//    opset are written as the formula PyTorch computes (silu = x * Sigmoid(x), group norm as an
//    instance norm over groups, a channel shuffle as Reshape-Transpose-Reshape).
// 3. Parameters become initializers under their state_dict names. Where ONNX wants another shape
//    (PRelu's slope, a per-channel scale), the initializer keeps the name and data with the shape that
//    broadcasts; importers reshape it back.
// 4. The last node's value is the output "output". The model passes ONNX's checker and shape
//    inference here, before anything is written.
#include "onnx_export.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <cmath>
#include <set>

namespace cnnc::interop {

namespace {

struct Unsupported {
  std::string what;
};

class Builder {
 public:
  Builder(const Graph& g, const NamedTensors& w, int opset, onnx::GraphProto* gp) : g_(g), w_(w), opset_(opset), gp_(gp) {
    for (const ParamInfo& p : g.params) paramNames_.insert(p.name);
  }

  int opset() const { return opset_; }

  std::string value(int id) const {
    if (id == 0) return "input";
    if (id == g_.output) return "output";
    // A scale layer's parameter is named as the layer itself (torchvision's layer_scale).
    const std::string& n = g_.nodes[id].name;
    return paramNames_.count(n) ? n + "/out" : n;
  }

  onnx::NodeProto* node(const std::string& op, std::vector<std::string> ins, const std::string& out, const std::string& name) {
    onnx::NodeProto* n = gp_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (auto& i : ins) n->add_input(i);
    n->add_output(out);
    return n;
  }

  static void attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, double v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f((float)v);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, const std::string& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }

  // A parameter of node n as an initializer, under its state_dict name, reshaped to `shape` when given.
  std::string param(const Node& n, ParamRole role, Dims shape = {}) {
    for (int pi : n.params) {
      const ParamInfo& p = g_.params[pi];
      if (p.role != role) continue;
      auto it = w_.find(p.name);
      if (it == w_.end()) throw Unsupported{"no weights for parameter '" + p.name + "'"};
      tensor(p.name, shape.empty() ? p.shape : shape, it->second);
      return p.name;
    }
    return "";
  }
  bool hasParam(const Node& n, ParamRole role) const {
    for (int pi : n.params)
      if (g_.params[pi].role == role) return true;
    return false;
  }

  std::string tensor(const std::string& name, const Dims& shape, const std::vector<float>& data) {
    onnx::TensorProto* t = gp_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : shape) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float)));
    return name;
  }
  std::string ints(const std::string& name, const std::vector<int64_t>& v) {
    onnx::TensorProto* t = gp_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims((int64_t)v.size());
    for (int64_t x : v) t->add_int64_data(x);
    return name;
  }
  std::string scalar(const std::string& name, float v) {
    onnx::TensorProto* t = gp_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_float_data(v);
    return name;
  }

 private:
  const Graph& g_;
  const NamedTensors& w_;
  int opset_;
  onnx::GraphProto* gp_;
  std::set<std::string> paramNames_;
};

// Per-channel parameters broadcast over [N, C, H, W] as [C, 1, 1].
Dims channelShape(const Node& in, int64_t c) { return in.shape.size() == 3 ? Dims{c, 1, 1} : Dims{c}; }

// `x` normalised over `axes` (mean 0, variance 1, PyTorch's biased variance), as ReduceMean steps.
std::string normalise(Builder& b, const std::string& x, const std::string& base, const std::vector<int64_t>& axes, double eps) {
  auto* m = b.node("ReduceMean", {x}, base + "/mean", base + "/mean");
  Builder::attr(m, "axes", axes);
  b.node("Sub", {x, base + "/mean"}, base + "/centred", base + "/centred");
  b.node("Mul", {base + "/centred", base + "/centred"}, base + "/sq", base + "/sq");
  auto* v = b.node("ReduceMean", {base + "/sq"}, base + "/var", base + "/var");
  Builder::attr(v, "axes", axes);
  b.node("Add", {base + "/var", b.scalar(base + "/eps", (float)eps)}, base + "/var_eps", base + "/var_eps");
  b.node("Sqrt", {base + "/var_eps"}, base + "/std", base + "/std");
  b.node("Div", {base + "/centred", base + "/std"}, base + "/norm", base + "/norm");
  return base + "/norm";
}

void activation(Builder& b, const Node& n, const std::string& x, const std::string& out) {
  const Activation& a = n.attrs.act;
  const std::string& nm = n.name;
  auto one = [&](const std::string& op) { return b.node(op, {x}, out, nm); };
  auto times = [&](const std::string& op, onnx::NodeProto** inner = nullptr) {  // x * op(x)
    auto* p = b.node(op, {x}, nm + "/" + op, nm + "/" + op);
    if (inner) *inner = p;
    b.node("Mul", {x, nm + "/" + op}, out, nm);
  };
  if (a.is("relu")) one("Relu");
  else if (a.is("tanh")) one("Tanh");
  else if (a.is("sigmoid")) one("Sigmoid");
  else if (a.is("leakyrelu")) Builder::attr(one("LeakyRelu"), "alpha", a.arg(0));
  else if (a.is("elu")) Builder::attr(one("Elu"), "alpha", a.arg(0));
  else if (a.is("relu6") || a.is("hardtanh")) {
    float lo = a.is("relu6") ? 0.0f : (float)a.arg(0), hi = a.is("relu6") ? 6.0f : (float)a.arg(1);
    b.node("Clip", {x, b.scalar(nm + "/min", lo), b.scalar(nm + "/max", hi)}, out, nm);
  } else if (a.is("hardsigmoid")) {  // PyTorch's: relu6(x + 3) / 6
    auto* p = one("HardSigmoid");
    Builder::attr(p, "alpha", 1.0 / 6.0);
    Builder::attr(p, "beta", 0.5);
  } else if (a.is("hardswish")) {
    if (b.opset() >= 14) one("HardSwish");
    else {
      onnx::NodeProto* hs = nullptr;
      times("HardSigmoid", &hs);
      Builder::attr(hs, "alpha", 1.0 / 6.0);
      Builder::attr(hs, "beta", 0.5);
    }
  } else if (a.is("silu") || a.is("swish")) times("Sigmoid");
  else if (a.is("mish")) {
    b.node("Softplus", {x}, nm + "/Softplus", nm + "/Softplus");
    b.node("Tanh", {nm + "/Softplus"}, nm + "/Tanh", nm + "/Tanh");
    b.node("Mul", {x, nm + "/Tanh"}, out, nm);
  } else if (a.is("gelu") || a.is("gelu_tanh")) {
    std::string inner;
    if (a.is("gelu")) {  // 0.5 x (1 + erf(x / sqrt 2))
      b.node("Div", {x, b.scalar(nm + "/sqrt2", (float)std::sqrt(2.0))}, nm + "/scaled", nm + "/scaled");
      b.node("Erf", {nm + "/scaled"}, nm + "/Erf", nm + "/Erf");
      inner = nm + "/Erf";
    } else {  // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
      b.node("Mul", {x, x}, nm + "/x2", nm + "/x2");
      b.node("Mul", {nm + "/x2", x}, nm + "/x3", nm + "/x3");
      b.node("Mul", {nm + "/x3", b.scalar(nm + "/c", 0.044715f)}, nm + "/cx3", nm + "/cx3");
      b.node("Add", {x, nm + "/cx3"}, nm + "/poly", nm + "/poly");
      b.node("Mul", {nm + "/poly", b.scalar(nm + "/k", (float)std::sqrt(2.0 / M_PI))}, nm + "/arg", nm + "/arg");
      b.node("Tanh", {nm + "/arg"}, nm + "/Tanh", nm + "/Tanh");
      inner = nm + "/Tanh";
    }
    b.node("Add", {inner, b.scalar(nm + "/one", 1.0f)}, nm + "/onep", nm + "/onep");
    b.node("Mul", {x, nm + "/onep"}, nm + "/xp", nm + "/xp");
    b.node("Mul", {nm + "/xp", b.scalar(nm + "/half", 0.5f)}, out, nm);
  } else {
    throw Unsupported{"activation '" + a.name + "' has no ONNX form in cnnc's exporter"};
  }
}

// A conv's padding may differ per side (padding=[top, bottom, left, right], "same" with an even
// kernel: padEnd); pools and transposed convs pad both sides alike.
void window(onnx::NodeProto* p, const Attrs& a, bool dilation, bool perSide = false) {
  Builder::attr(p, "kernel_shape", std::vector<int64_t>{a.kernel[0], a.kernel[1]});
  Builder::attr(p, "strides", std::vector<int64_t>{a.stride[0], a.stride[1]});
  int64_t b0 = perSide ? a.padEnd[0] : a.pad[0], b1 = perSide ? a.padEnd[1] : a.pad[1];
  Builder::attr(p, "pads", std::vector<int64_t>{a.pad[0], a.pad[1], b0, b1});
  if (dilation) Builder::attr(p, "dilations", std::vector<int64_t>{a.dilation[0], a.dilation[1]});
}

void exportNode(Builder& b, const Graph& g, const Node& n) {
  const Attrs& a = n.attrs;
  std::vector<std::string> ins;
  for (int i : n.inputs) ins.push_back(b.value(i));
  std::string out = b.value(n.id), nm = n.name;
  const Node& in0 = g.nodes[n.inputs.empty() ? 0 : n.inputs[0]];
  switch (n.op) {
    case OpKind::Conv: {
      const ParamInfo* w = nullptr;
      for (int pi : n.params)
        if (g.params[pi].role == ParamRole::Weight) w = &g.params[pi];
      if (w && w->shape.size() == 2) {  // linear per_pixel: channels last, MatMul, channels first
        auto* t = b.node("Transpose", {ins[0]}, nm + "/nhwc", nm + "/nhwc");
        Builder::attr(t, "perm", std::vector<int64_t>{0, 2, 3, 1});
        auto* wt = b.node("Transpose", {b.param(n, ParamRole::Weight)}, nm + "/weight_t", nm + "/weight_t");
        Builder::attr(wt, "perm", std::vector<int64_t>{1, 0});
        std::string y = nm + "/matmul";
        b.node("MatMul", {nm + "/nhwc", nm + "/weight_t"}, y, y);
        if (b.hasParam(n, ParamRole::Bias)) {
          b.node("Add", {y, b.param(n, ParamRole::Bias)}, nm + "/biased", nm + "/biased");
          y = nm + "/biased";
        }
        auto* back = b.node("Transpose", {y}, out, nm);
        Builder::attr(back, "perm", std::vector<int64_t>{0, 3, 1, 2});
        break;
      }
      ins.push_back(b.param(n, ParamRole::Weight));
      if (b.hasParam(n, ParamRole::Bias)) ins.push_back(b.param(n, ParamRole::Bias));
      auto* p = b.node("Conv", ins, out, nm);
      window(p, a, true, true);
      Builder::attr(p, "group", a.groups);
      break;
    }
    case OpKind::ConvTranspose: {
      ins.push_back(b.param(n, ParamRole::Weight));
      if (b.hasParam(n, ParamRole::Bias)) ins.push_back(b.param(n, ParamRole::Bias));
      auto* p = b.node("ConvTranspose", ins, out, nm);
      window(p, a, true);
      Builder::attr(p, "group", a.groups);
      Builder::attr(p, "output_padding", std::vector<int64_t>{a.outPad[0], a.outPad[1]});
      break;
    }
    case OpKind::Linear: {
      ins.push_back(b.param(n, ParamRole::Weight));
      if (b.hasParam(n, ParamRole::Bias)) ins.push_back(b.param(n, ParamRole::Bias));
      Builder::attr(b.node("Gemm", ins, out, nm), "transB", (int64_t)1);
      break;
    }
    case OpKind::BatchNorm: {
      int64_t c = in0.shape[0];
      if (b.hasParam(n, ParamRole::Weight)) {
        ins.push_back(b.param(n, ParamRole::Weight));
        ins.push_back(b.param(n, ParamRole::Bias));
      } else {  // affine=false: a fixed unit scale and zero shift
        ins.push_back(b.tensor(nm + "/unit_scale", {c}, std::vector<float>(c, 1.0f)));
        ins.push_back(b.tensor(nm + "/zero_shift", {c}, std::vector<float>(c, 0.0f)));
      }
      ins.push_back(b.param(n, ParamRole::RunningMean));
      ins.push_back(b.param(n, ParamRole::RunningVar));
      auto* p = b.node("BatchNormalization", ins, out, nm);
      Builder::attr(p, "epsilon", a.eps);
      Builder::attr(p, "momentum", 1.0 - a.momentum);  // ONNX weighs the running value, PyTorch the new one
      break;
    }
    case OpKind::Activation: activation(b, n, ins[0], out); break;
    case OpKind::MaxPool: {
      auto* p = b.node("MaxPool", ins, out, nm);
      window(p, a, a.dilation[0] != 1 || a.dilation[1] != 1);
      Builder::attr(p, "ceil_mode", (int64_t)a.ceil);
      break;
    }
    case OpKind::AvgPool: {
      auto* p = b.node("AveragePool", ins, out, nm);
      window(p, a, false);
      Builder::attr(p, "ceil_mode", (int64_t)a.ceil);
      Builder::attr(p, "count_include_pad", (int64_t)a.countIncludePad);
      break;
    }
    case OpKind::AdaptiveAvgPool:
    case OpKind::AdaptiveMaxPool: {
      bool avg = n.op == OpKind::AdaptiveAvgPool;
      int64_t H = in0.shape[1], W = in0.shape[2], oh = a.outHW[0], ow = a.outHW[1];
      if (oh == 1 && ow == 1) {
        b.node(avg ? "GlobalAveragePool" : "GlobalMaxPool", ins, out, nm);
      } else if (H % oh == 0 && W % ow == 0) {  // equal windows: a plain pool
        auto* p = b.node(avg ? "AveragePool" : "MaxPool", ins, out, nm);
        Builder::attr(p, "kernel_shape", std::vector<int64_t>{H / oh, W / ow});
        Builder::attr(p, "strides", std::vector<int64_t>{H / oh, W / ow});
      } else {
        // Windows of different sizes (PyTorch's [floor(i H / o), ceil((i + 1) H / o))): no ONNX op
        // has them, but a max or a mean over a rectangle is one over its rows of one over its
        // columns, so each axis is a Slice and a Reduce per output index, then a Concat.
        std::string cur = ins[0];
        for (int axis = 2; axis <= 3; ++axis) {
          int64_t n = axis == 2 ? H : W, o = axis == 2 ? oh : ow;
          std::string ax = nm + (axis == 2 ? "/rows" : "/cols");
          std::vector<std::string> parts;
          for (int64_t i = 0; i < o; ++i) {
            int64_t s0 = i * n / o, s1 = ((i + 1) * n + o - 1) / o;
            std::string win = ax + "/" + std::to_string(i);
            b.node("Slice", {cur, b.ints(win + "/starts", {s0}), b.ints(win + "/ends", {s1}), b.ints(win + "/axes", {axis})}, win + "/window", win + "/window");
            auto* r = b.node(avg ? "ReduceMean" : "ReduceMax", {win + "/window"}, win, win);
            Builder::attr(r, "axes", std::vector<int64_t>{axis});
            parts.push_back(win);
          }
          std::string o2 = axis == 3 ? out : ax;
          Builder::attr(b.node("Concat", parts, o2, axis == 3 ? nm : ax), "axis", (int64_t)axis);
          cur = o2;
        }
      }
      break;
    }
    case OpKind::Flatten: Builder::attr(b.node("Flatten", ins, out, nm), "axis", (int64_t)1); break;
    case OpKind::Dropout: b.node("Identity", ins, out, nm); break;  // inference
    case OpKind::LRN: {
      auto* p = b.node("LRN", ins, out, nm);
      Builder::attr(p, "size", a.size);
      Builder::attr(p, "alpha", a.alpha);
      Builder::attr(p, "beta", a.beta);
      Builder::attr(p, "bias", a.k);
      break;
    }
    case OpKind::Softmax: Builder::attr(b.node("Softmax", ins, out, nm), "axis", (int64_t)1); break;
    case OpKind::Concat: Builder::attr(b.node("Concat", ins, out, nm), "axis", (int64_t)1); break;
    case OpKind::Add:
    case OpKind::Mul: {
      std::string op = n.op == OpKind::Add ? "Add" : "Mul", acc = ins[0];
      for (size_t i = 1; i < ins.size(); ++i) {
        std::string o = i + 1 == ins.size() ? out : nm + "/" + std::to_string(i);
        b.node(op, {acc, ins[i]}, o, i + 1 == ins.size() ? nm : o);
        acc = o;
      }
      break;
    }
    case OpKind::Scale: b.node("Mul", {ins[0], b.param(n, ParamRole::Weight)}, out, nm); break;
    case OpKind::PReLU: {
      int64_t c = a.out;
      b.node("PRelu", {ins[0], b.param(n, ParamRole::Weight, c == 1 ? Dims{1} : channelShape(in0, c))}, out, nm);
      break;
    }
    case OpKind::Chunk: {
      int64_t start = a.size, end = a.size + n.shape[0];
      b.node("Slice", {ins[0], b.ints(nm + "/starts", {start}), b.ints(nm + "/ends", {end}), b.ints(nm + "/axes", {1})}, out, nm);
      break;
    }
    case OpKind::ChannelShuffle: {
      int64_t C = in0.shape[0], H = in0.shape[1], W = in0.shape[2], G = a.groups;
      b.node("Reshape", {ins[0], b.ints(nm + "/split_shape", {0, G, C / G, H, W})}, nm + "/split", nm + "/split");
      auto* t = b.node("Transpose", {nm + "/split"}, nm + "/swapped", nm + "/swapped");
      Builder::attr(t, "perm", std::vector<int64_t>{0, 2, 1, 3, 4});
      b.node("Reshape", {nm + "/swapped", b.ints(nm + "/shape", {0, C, H, W})}, out, nm);
      break;
    }
    case OpKind::Upsample: {
      std::string scales, sizes;
      // align_corners with a scale is written as a size: ONNX would map its coordinates by the unrounded
      // size in x scale, PyTorch and cnnc by the output size.
      if (a.upScale[0] > 0 && !a.alignCorners) {
        scales = b.tensor(nm + "/scales", {4}, {1.0f, 1.0f, (float)(1.0 / a.upScale[0]), (float)(1.0 / a.upScale[1])});
      } else {  // a size: the batch and channels from the input, then H and W
        b.node("Shape", {ins[0]}, nm + "/in_shape", nm + "/in_shape");
        b.node("Slice", {nm + "/in_shape", b.ints(nm + "/nc_start", {0}), b.ints(nm + "/nc_end", {2})}, nm + "/nc", nm + "/nc");
        Builder::attr(b.node("Concat", {nm + "/nc", b.ints(nm + "/hw", {n.shape[1], n.shape[2]})}, nm + "/sizes", nm + "/sizes"), "axis", (int64_t)0);
        sizes = nm + "/sizes";
      }
      auto* p = b.node("Resize", {ins[0], "", scales}, out, nm);
      if (!sizes.empty()) p->add_input(sizes);
      bool nearest = a.resample == Attrs::Resample::Nearest;
      Builder::attr(p, "mode", std::string(nearest ? "nearest" : "linear"));
      // PyTorch's coordinate rules: nearest floors x_out / scale; bilinear maps pixel centres
      // (pytorch_half_pixel) or the corners.
      // An output of size 1 maps to the centre in PyTorch, to the first pixel under pytorch_half_pixel:
      // half_pixel (the same map without that exception) is PyTorch's then.
      bool one = n.shape.size() == 3 && (n.shape[1] == 1 || n.shape[2] == 1);
      Builder::attr(p, "coordinate_transformation_mode",
                    std::string(nearest ? "asymmetric" : a.alignCorners ? "align_corners" : one ? "half_pixel" : "pytorch_half_pixel"));
      if (nearest) Builder::attr(p, "nearest_mode", std::string("floor"));
      break;
    }
    case OpKind::Pad: {
      std::string pads = b.ints(nm + "/pads", {0, 0, a.pad[0], a.pad[1], 0, 0, a.padEnd[0], a.padEnd[1]});
      b.node("Pad", {ins[0], pads}, out, nm);
      break;
    }
    case OpKind::GroupNorm: {
      int64_t C = in0.shape[0];
      std::string y;
      if (in0.shape.size() == 1 || a.normChannels) {  // layernorm over the features or each pixel's channels
        y = normalise(b, ins[0], nm, {1}, a.eps);
      } else {  // over groups of channels: an instance norm of [N, G, C/G * H * W]
        int64_t G = a.groups;
        b.node("Reshape", {ins[0], b.ints(nm + "/group_shape", {0, G, -1})}, nm + "/grouped", nm + "/grouped");
        std::string unit = b.tensor(nm + "/unit_scale", {G}, std::vector<float>(G, 1.0f)), zero = b.tensor(nm + "/zero_shift", {G}, std::vector<float>(G, 0.0f));
        Builder::attr(b.node("InstanceNormalization", {nm + "/grouped", unit, zero}, nm + "/normed", nm + "/normed"), "epsilon", a.eps);
        b.node("Shape", {ins[0]}, nm + "/in_shape", nm + "/in_shape");
        b.node("Reshape", {nm + "/normed", nm + "/in_shape"}, nm + "/norm", nm + "/norm");
        y = nm + "/norm";
      }
      if (b.hasParam(n, ParamRole::Weight)) {
        b.node("Mul", {y, b.param(n, ParamRole::Weight, channelShape(in0, C))}, nm + "/scaled", nm + "/scaled");
        b.node("Add", {nm + "/scaled", b.param(n, ParamRole::Bias, channelShape(in0, C))}, out, nm);
      } else {
        b.node("Identity", {y}, out, nm);
      }
      break;
    }
    case OpKind::Input: throw Unsupported{"a second input node"};
  }
}

void valueInfo(onnx::ValueInfoProto* v, const std::string& name, const Dims& shape) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  auto* s = tt->mutable_shape();
  s->add_dim()->set_dim_param("N");
  for (int64_t d : shape) s->add_dim()->set_dim_value(d);
}

}  // namespace

bool exportOnnx(const Graph& g, const NamedTensors& weights, const OnnxExportOptions& opts, std::string& bytes, std::string& err) {
  if (opts.opset < 13 || opts.opset > 17) {
    err = "--opset " + std::to_string(opts.opset) + " is not supported: cnnc exports ONNX opsets 13 to 17";
    return false;
  }
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("cnnc");
  m.set_producer_version(opts.producerVersion);
  m.set_doc_string("exported by cnnc from " + g.file);
  m.add_opset_import()->set_version(opts.opset);
  onnx::GraphProto* gp = m.mutable_graph();
  gp->set_name(g.name);
  valueInfo(gp->add_input(), "input", g.nodes[0].shape);
  Builder b(g, weights, opts.opset, gp);
  for (const Node& n : g.nodes) {
    if (n.id == 0) continue;
    try {
      exportNode(b, g, n);
    } catch (const Unsupported& u) {
      err = "cannot export node '" + n.name + "' (" + nodeOpName(n) + ") to ONNX: " + u.what;
      return false;
    }
  }
  if (g.output == 0) b.node("Identity", {"input"}, "output", "output");
  valueInfo(gp->add_output(), "output", g.nodes[g.output].shape);
  try {
    onnx::checker::check_model(m);
    // On a copy, strictly: an op whose inferred shape contradicts the declared output throws.
    onnx::ModelProto inferred = m;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(), onnx::ShapeInferenceOptions(true, 1, true));
  } catch (const std::exception& e) {
    err = std::string("the exported model fails ONNX's checker (a cnnc bug; please report it with the .cnn file): ") + e.what();
    return false;
  }
  if (!m.SerializeToString(&bytes)) {
    err = "cannot serialize the ONNX model (over 2 GiB?)";
    return false;
  }
  return true;
}

}  // namespace cnnc::interop
