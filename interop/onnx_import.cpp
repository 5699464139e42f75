// onnx_import.cpp: see onnx_import.h. The algorithm:
//  1. Read and parse the file; load external data (relative to the model's folder); run ONNX's checker
//     (topological order, single assignment, known ops) and shape inference with data propagation.
//  2. The graph input (the one input that is not an initializer) must be [N, C, H, W] or [N, F] with
//     every dimension but the batch static.
//  3. Fold what exporters leave around the real ops: Identity and Dropout alias their input (or an
//     initializer); Constant nodes become initializers; a Reshape whose inferred output is [N, F] of
//     an image is a flatten (its Shape/Gather/Unsqueeze/Concat chain is then dead and dropped); a Pad
//     of zeros is dropped.
//  4. Each remaining node becomes one .cnn statement by its op's row (translate()); an op without a
//     row is an error that names the node and lists the ops import knows.
//  5. Names: a layer's parameters keep their initializer names when those are PATH.weight, PATH.bias,
//     ... with one PATH per layer (what PyTorch's exporter writes with its constant folding off);
//     otherwise the layer is named after its node and the weights are renamed (a note says so). PATH's
//     segments become nested `seq`s with labels, so that cnnc derives the same names.
//  6. The chain: statements in the model's (topological) order; a value used other than by the next
//     statement is kept (`keep tN`) and read back with `from tN` (as a branch of add, mul and concat, or
//     to continue the chain from it).
#include "onnx_import.h"

#include "onnx_patterns.h"

#include <onnx/checker.h>
#include <onnx/defs/tensor_proto_util.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>
#include <onnx/version_converter/convert.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <list>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

namespace cnnc::interop {

namespace fs = std::filesystem;

const std::vector<std::string>& importableOps() {
  static const std::vector<std::string> ops = {
      "Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Constant", "Conv", "ConvTranspose", "Dropout", "Elu", "Flatten",
      "Gemm", "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization", "LRN", "LeakyRelu", "MatMul", "MaxPool", "Mul", "PRelu",
      "Pad", "ReduceMax", "ReduceMean", "Relu", "Reshape", "Resize", "Sigmoid", "Slice", "Softmax", "Tanh", "Transpose"};
  return ops;
}

namespace {

struct Fail {
  std::string msg;
};

std::string fmt(double v) {
  std::ostringstream s;
  s.precision(9);
  s << v;
  std::string t = s.str();
  if (t.find_first_of(".e") == std::string::npos && t != "inf" && t != "-inf") t += ".0";
  return t;
}

// The shortest decimal that `stored` (a float32 attribute) is the rounding of: 1e-05 for BN's eps,
// not 9.99999975e-06. With `oneMinus`, the decimal d whose 1 - d was stored (BN's momentum).
std::string shortest(float stored, bool oneMinus = false) {
  double approx = oneMinus ? 1.0 - (double)stored : (double)stored;
  for (int digits = 1; digits <= 9; ++digits) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.*g", digits, approx);
    double d = strtod(buf, nullptr);
    if ((float)(oneMinus ? 1.0 - d : d) == stored) return fmt(d);
  }
  return fmt(approx);
}

// A translated node: one .cnn statement.
struct Stmt {
  std::string text;                   // "conv(64, 3, padding=1)" or a combinator's name
  std::vector<std::string> inputs;    // ONNX values it reads (branches, for add/mul/concat)
  std::string output;
  bool combinator = false;            // add, mul, concat: inputs are branches
  std::vector<std::pair<std::string, std::string>> params;  // (cnnc suffix, initializer name)
  std::string path;                   // its module path, for a layer with parameters
  bool hasParams() const { return !params.empty(); }
  std::string node;                   // the ONNX node's name, for names and errors
};

class Importer {
 public:
  Importer(onnx::ModelProto& m, std::string dir) : m_(m), dir_(std::move(dir)) {}

  // External data into the initializers, before the checker sees them.
  void loadExternals() {
    for (auto& t : *m_.mutable_graph()->mutable_initializer()) loadExternal(t);
  }

  void run(const std::string& netName, ImportResult& out) {
    onnx::GraphProto& g = *m_.mutable_graph();
    for (const auto& op : m_.opset_import())
      if (op.domain().empty() || op.domain() == "ai.onnx") opset_ = (int)op.version();
    if (opset_ < 9 || opset_ > 17) throw Fail{"the model uses ONNX opset " + std::to_string(opset_) + "; import reads opsets 9 to 17"};
    for (auto& t : *g.mutable_initializer()) consts_[t.name()] = &t;
    for (auto& vi : g.value_info()) shapes_[vi.name()] = dimsOf(vi);
    for (auto& vi : g.output()) shapes_[vi.name()] = dimsOf(vi);
    findInput(g);
    shapeValues_.insert(shapeConstants_.begin(), shapeConstants_.end());
    std::vector<onnx::NodeProto> rest;
    for (const auto& n : g.node())
      if (!foldConstant(n)) rest.push_back(n);
    PatternEnv env{[this](const std::string& v) { return constant(v); }, [this](const std::string& v) { return inferred(v); },
                   [this](const onnx::TensorProto& t) { return floats(t); }, {}};
    for (const auto& o : g.output()) env.graphOutputs.push_back(o.name());
    fusePatterns(rest, env);
    for (const auto& n : rest) translate(n);
    if (g.output_size() != 1) throw Fail{"the model has " + std::to_string(g.output_size()) + " outputs; import reads models with one"};
    if (nhwc_.count(g.output(0).name()))
      throw Fail{"the model's output '" + g.output(0).name() + "' is channels last (a Transpose to 0, 2, 3, 1 not undone); cnnc's outputs are [N, C, H, W]"};
    output_ = resolve(g.output(0).name());
    emit(netName, out);
  }

 private:
  // ---- values, constants and shapes ----

  void loadExternal(onnx::TensorProto& t) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL) return;
    std::string loc;
    int64_t offset = 0, length = -1;
    for (const auto& kv : t.external_data()) {
      if (kv.key() == "location") loc = kv.value();
      else if (kv.key() == "offset") offset = std::stoll(kv.value());
      else if (kv.key() == "length") length = std::stoll(kv.value());
    }
    fs::path p = fs::path(dir_) / loc;
    if (loc.empty() || fs::path(loc).is_absolute() || loc.find("..") != std::string::npos)
      throw Fail{"initializer '" + t.name() + "' refers to external data '" + loc + "' outside the model's folder"};
    std::ifstream f(p, std::ios::binary);
    if (!f) throw Fail{"initializer '" + t.name() + "' keeps its data in '" + p.string() + "', which cannot be read: put it next to the model"};
    f.seekg(0, std::ios::end);
    int64_t size = f.tellg();
    if (length < 0) length = size - offset;
    if (offset < 0 || offset + length > size)
      throw Fail{"initializer '" + t.name() + "': external data '" + p.string() + "' is " + std::to_string(size) + " bytes, too short for offset " +
                 std::to_string(offset) + " + length " + std::to_string(length)};
    std::string buf((size_t)length, '\0');
    f.seekg(offset);
    f.read(buf.data(), length);
    t.set_raw_data(buf);
    t.clear_external_data();
    t.set_data_location(onnx::TensorProto::DEFAULT);
  }

  static std::vector<int64_t> dimsOf(const onnx::ValueInfoProto& vi) {
    std::vector<int64_t> d;
    if (!vi.type().has_tensor_type() || !vi.type().tensor_type().has_shape()) return d;
    for (const auto& dim : vi.type().tensor_type().shape().dim()) d.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
    return d;
  }

  void findInput(const onnx::GraphProto& g) {
    for (const auto& in : g.input()) {
      if (consts_.count(in.name())) continue;
      if (!input_.empty()) throw Fail{"the model has more than one input ('" + input_ + "', '" + in.name() + "'); import reads models with one"};
      input_ = in.name();
      auto d = dimsOf(in);
      if (d.size() != 4 && d.size() != 2) throw Fail{"input '" + in.name() + "' has rank " + std::to_string(d.size()) + "; import reads [N, C, H, W] or [N, F]"};
      for (size_t i = 1; i < d.size(); ++i)
        if (d[i] <= 0)
          throw Fail{"input '" + in.name() + "' has a dynamic dimension " + std::to_string(i) +
                     "; cnnc compiles for static image sizes: export with a fixed input size (only the batch may be dynamic)"};
      inputDims_.assign(d.begin() + 1, d.end());
      shapes_[in.name()] = d;
    }
    if (input_.empty()) throw Fail{"the model has no input that is not an initializer"};
    alias_[input_] = input_;
  }

  // What a value really is after folding (Identity and Dropout are aliases).
  std::string resolve(const std::string& v) const {
    auto it = alias_.find(v);
    if (it == alias_.end()) throw Fail{"value '" + v + "' is read before anything computes it"};
    return it->second;
  }

  const onnx::TensorProto* constant(const std::string& v) const {
    auto it = consts_.find(v);
    return it == consts_.end() ? nullptr : it->second;
  }

  std::vector<float> floats(const onnx::TensorProto& t) const {
    if (t.data_type() == onnx::TensorProto::FLOAT) return onnx::ParseData<float>(&t);
    if (t.data_type() == onnx::TensorProto::DOUBLE) {
      auto d = onnx::ParseData<double>(&t);
      return std::vector<float>(d.begin(), d.end());
    }
    throw Fail{"tensor '" + t.name() + "' is of ONNX data type " + std::to_string(t.data_type()) + "; import reads float32 weights"};
  }
  std::vector<int64_t> ints(const onnx::TensorProto& t) const {
    if (t.data_type() == onnx::TensorProto::INT64) return onnx::ParseData<int64_t>(&t);
    if (t.data_type() == onnx::TensorProto::BOOL) {  // one byte each in raw_data, else int32_data
      std::vector<int64_t> v;
      if (t.has_raw_data())
        for (char c : t.raw_data()) v.push_back(c != 0);
      else
        for (int32_t x : t.int32_data()) v.push_back(x != 0);
      return v;
    }
    if (t.data_type() == onnx::TensorProto::INT32) {
      auto d = onnx::ParseData<int32_t>(&t);
      return std::vector<int64_t>(d.begin(), d.end());
    }
    throw Fail{"tensor '" + t.name() + "' is not an integer tensor"};
  }

  // ---- attributes ----

  static const onnx::AttributeProto* attr(const onnx::NodeProto& n, const std::string& name) {
    for (const auto& a : n.attribute())
      if (a.name() == name) return &a;
    return nullptr;
  }
  static int64_t attrInt(const onnx::NodeProto& n, const std::string& name, int64_t def) {
    auto* a = attr(n, name);
    return a ? a->i() : def;
  }
  static double attrFloat(const onnx::NodeProto& n, const std::string& name, double def) {
    auto* a = attr(n, name);
    return a ? a->f() : def;
  }
  static std::vector<int64_t> attrInts(const onnx::NodeProto& n, const std::string& name, std::vector<int64_t> def) {
    auto* a = attr(n, name);
    return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : def;
  }
  static std::string attrStr(const onnx::NodeProto& n, const std::string& name, const std::string& def) {
    auto* a = attr(n, name);
    return a ? a->s() : def;
  }

  std::string where(const onnx::NodeProto& n) const {
    return "node '" + n.name() + "' (" + n.op_type() + ", opset " + std::to_string(opset_) + ")";
  }
  [[noreturn]] void unsupported(const onnx::NodeProto& n, const std::string& why) const { throw Fail{where(n) + ": " + why}; }

  // Pads [top, left, bottom, right] as a .cnn padding argument; auto_pad other than NOTSET is refused.
  std::string padding(const onnx::NodeProto& n) const {
    std::string ap = attrStr(n, "auto_pad", "NOTSET");
    if (ap != "NOTSET") unsupported(n, "auto_pad=" + ap + " is not supported; export with explicit pads");
    auto p = attrInts(n, "pads", {0, 0, 0, 0});
    if (p.size() != 4) unsupported(n, "pads of " + std::to_string(p.size()) + " values; import reads 2-D windows");
    if (p[0] == p[2] && p[1] == p[3]) return p[0] == p[1] ? std::to_string(p[0]) : "[" + std::to_string(p[0]) + ", " + std::to_string(p[1]) + "]";
    return "[" + std::to_string(p[0]) + ", " + std::to_string(p[2]) + ", " + std::to_string(p[1]) + ", " + std::to_string(p[3]) + "]";
  }
  static std::string pair(const std::vector<int64_t>& v) {
    return v[0] == v[1] ? std::to_string(v[0]) : "[" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + "]";
  }

  // ---- step 4: one node ----

  void add(Stmt s, const onnx::NodeProto& n) {
    s.node = n.name().empty() ? n.op_type() + "_" + std::to_string(stmts_.size()) : n.name();
    s.output = n.output(0);
    alias_[n.output(0)] = n.output(0);
    stmts_.push_back(std::move(s));
  }

  // Constants and what only rearranges them, computed here (step 3). True when `n` was one.
  bool foldConstant(const onnx::NodeProto& n) {
    const std::string& op = n.op_type();
    if (!n.domain().empty() && n.domain() != "ai.onnx") return false;
    if (op == "Constant") {
      auto* v = attr(n, "value");
      if (!v || !v->has_t()) unsupported(n, "a Constant without a tensor 'value'");
      folded_.push_back(v->t());
      folded_.back().set_name(n.output(0));
      consts_[n.output(0)] = &folded_.back();
      return true;
    }
    // A constant reshaped (PyTorch unsqueezes PReLU's slope to [C,1,1]): the same data, the original
    // tensor's name (that is the parameter's name).
    if ((op == "Unsqueeze" || op == "Squeeze" || op == "Reshape" || op == "Transpose") && constant(n.input(0))) {
      auto d = inferred(n.output(0));
      if (d.empty() || std::find(d.begin(), d.end(), -1) != d.end()) unsupported(n, "a reshaped constant whose shape is not known");
      folded_.push_back(*constant(n.input(0)));
      if (op == "Transpose") transposeData(n, folded_.back());
      folded_.back().clear_dims();
      for (int64_t x : d) folded_.back().add_dims(x);
      consts_[n.output(0)] = &folded_.back();
      return true;
    }
    if ((op == "Identity" || op == "Dropout") && constant(n.input(0))) {
      consts_[n.output(0)] = constant(n.input(0));
      return true;
    }
    // A Concat of float constants (PyTorch builds an upsample's scales so); shape values go to foldShapes.
    if (op == "Concat" && n.input_size() > 0 && std::all_of(n.input().begin(), n.input().end(), [&](const std::string& v) {
          const onnx::TensorProto* c = constant(v);
          return c && c->dims_size() == 1 && (c->data_type() == onnx::TensorProto::FLOAT || c->data_type() == onnx::TensorProto::DOUBLE);
        })) {
      onnx::TensorProto t;
      t.set_name(n.output(0));
      t.set_data_type(onnx::TensorProto::FLOAT);
      for (const auto& v : n.input())
        for (float x : floats(*constant(v))) t.add_float_data(x);
      t.add_dims(t.float_data_size());
      folded_.push_back(t);
      consts_[n.output(0)] = &folded_.back();
      return true;
    }
    return false;
  }

  // A constant's data permuted by a Transpose's perm (a linear weight exported as W^T).
  void transposeData(const onnx::NodeProto& n, onnx::TensorProto& t) {
    std::vector<int64_t> dims(t.dims().begin(), t.dims().end()), perm = attrInts(n, "perm", {});
    if (perm.empty())
      for (int64_t k = (int64_t)dims.size() - 1; k >= 0; --k) perm.push_back(k);
    std::vector<float> in = floats(t), out(in.size());
    size_t r = dims.size();
    std::vector<int64_t> outDims(r), inStride(r, 1), idx(r, 0);
    for (size_t k = 0; k < r; ++k) outDims[k] = dims[perm[k]];
    for (int64_t k = (int64_t)r - 2; k >= 0; --k) inStride[k] = inStride[k + 1] * dims[k + 1];
    for (size_t o = 0; o < out.size(); ++o) {  // idx: the output's multi-index, in row-major order
      int64_t src = 0;
      for (size_t k = 0; k < r; ++k) src += idx[k] * inStride[perm[k]];
      out[o] = in[src];
      for (int64_t k = (int64_t)r - 1; k >= 0 && ++idx[k] == outDims[k]; --k) idx[k] = 0;
    }
    setFloats(t, out);
  }

  // `t`'s data replaced by `v` as float32 (its dims are the caller's).
  static void setFloats(onnx::TensorProto& t, const std::vector<float>& v) {
    t.clear_raw_data();
    t.clear_float_data();
    t.clear_double_data();
    t.set_data_type(onnx::TensorProto::FLOAT);
    for (float x : v) t.add_float_data(x);
  }

  // A node fusePatterns() made (onnx_patterns.h lists them).
  void translateFused(const onnx::NodeProto& n) {
    const std::string& op = n.op_type();
    Stmt s;
    s.inputs = {resolve(n.input(0))};
    auto src = inferred(n.input(0));
    bool cl = channelsLast(n);  // checks that nothing but what reads each pixel's channels sees such a tensor
    int64_t C = cl ? src.back() : src.size() >= 2 ? src[1] : -1;
    bool perPixel = op == "Gelu" || op == "Silu" || op == "Mish" || op == "HardSwish" || op == "LastLinear" || (op == "Norm" && attrInt(n, "last", 0));
    if (cl && !perPixel) unsupported(n, "an op on a channels-last tensor (after a Transpose to 0, 2, 3, 1) other than layer norm, linear and activations");
    if (op == "Gelu") s.text = attrInt(n, "approximate", 0) ? "gelu(approximate=\"tanh\")" : "gelu";
    else if (op == "Silu") s.text = "silu";
    else if (op == "Mish") s.text = "mish";
    else if (op == "HardSwish") s.text = "hardswish";
    else if (op == "ChannelShuffle") s.text = "channelshuffle(" + std::to_string(attrInt(n, "groups", 1)) + ")";
    else if (op == "Norm") {
      bool affine = n.input_size() == 3;
      std::string eps = "eps=" + shortest((float)attrFloat(n, "eps", 1e-5));
      int64_t G = attrInt(n, "groups", 1);
      if (attrInt(n, "last", 0) && !cl) unsupported(n, "a layer norm over the last axis (the width) of an image");
      if (attrStr(n, "kind", "") == "layer") s.text = "layernorm(" + eps + (affine ? "" : ", affine=false") + ")";
      else if (G == C) s.text = "instancenorm(" + eps + (affine ? ", affine=true" : "") + ")";
      else s.text = "groupnorm(" + std::to_string(G) + ", " + eps + (affine ? "" : ", affine=false") + ")";
      if (affine) {
        s.params = {{"weight", n.input(1)}, {"bias", n.input(2)}};
        reshape_[n.input(1)] = reshape_[n.input(2)] = {C};
      }
    } else if (op == "AdaptivePool") {
      auto out = attrInts(n, "out", {});
      s.text = std::string(attrStr(n, "kind", "") == "max" ? "adaptivemaxpool(" : "adaptiveavgpool(") + pair(out) + ")";
    } else if (op == "LastLinear") {
      linearOverLast(n, s, src, cl);
    } else {
      unsupported(n, "an internal pattern without a translation");
    }
    add(std::move(s), n);
    if (cl) nhwc_.insert(n.output(0));
  }

  // x @ W^T [C, O] (+ bias): `linear` over the features of [N, C], `linear(per_pixel=true)` over each
  // pixel's channels of a channels-last image.
  void linearOverLast(const onnx::NodeProto& n, Stmt& s, const std::vector<int64_t>& src, bool cl) {
    const onnx::TensorProto* w = constant(n.input(1));
    if (!w || w->dims_size() != 2) unsupported(n, "a matrix product with a computed or non-matrix operand");
    if (!(src.size() == 2 || cl)) unsupported(n, "a matrix product over the last axis (the width) of an image");
    if (src.empty() || src.back() != w->dims(0)) unsupported(n, "a matrix product whose sizes do not match");
    bool bias = n.input_size() == 3;
    s.text = "linear(" + std::to_string(w->dims(1)) + (cl ? ", per_pixel=true" : "") + (bias ? "" : ", bias=false") + ")";
    s.params = {{"weight^T", w->name().empty() ? n.input(1) : w->name()}};
    if (!w->name().empty()) consts_[w->name()] = w;
    if (bias) s.params.push_back({"bias", n.input(2)});
  }

  // Whether node n reads a channels-last tensor (a Transpose(0, 2, 3, 1) of an image, or what only
  // per-pixel layers made of one). Only those may read one: they are the same layer in NCHW.
  bool channelsLast(const onnx::NodeProto& n) const {
    for (const auto& v : n.input())
      if (nhwc_.count(v)) return true;
    return false;
  }

  void translate(const onnx::NodeProto& n) {
    const std::string& op = n.op_type();
    if (n.domain() == "cnnc") return translateFused(n);
    if (!n.domain().empty() && n.domain() != "ai.onnx") unsupported(n, "ops of domain '" + n.domain() + "' are not supported");
    auto in = [&](int i) { return resolve(n.input(i)); };
    // Channels last and back (PyTorch's permute around ConvNeXt's layer norms and linears): the same
    // tensor in cnnc, tagged so that only per-pixel layers may read it.
    if (op == "Transpose") {
      auto perm = attrInts(n, "perm", {});
      bool cl = channelsLast(n);
      if (!cl && perm == std::vector<int64_t>{0, 2, 3, 1} && inferred(n.input(0)).size() == 4) nhwc_.insert(n.output(0));
      else if (!(cl && perm == std::vector<int64_t>{0, 3, 1, 2}))
        unsupported(n, "a transpose other than to channels last (0, 2, 3, 1) and back (0, 3, 1, 2) around per-pixel layers");
      alias_[n.output(0)] = in(0);
      return;
    }
    if (channelsLast(n)) {
      static const std::set<std::string> perPixel = {"Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "HardSigmoid", "HardSwish", "Clip", "Identity", "Dropout", "MatMul"};
      if (!perPixel.count(op))
        unsupported(n, "an op on a channels-last tensor (after a Transpose to 0, 2, 3, 1) other than layer norm, linear and activations");
      if (op == "Identity" || op == "Dropout") nhwc_.insert(n.output(0));
    }
    if (op == "MatMul") {
      Stmt s;
      s.inputs = {in(0)};
      bool cl = channelsLast(n);
      linearOverLast(n, s, inferred(n.input(0)), cl);
      add(std::move(s), n);
      if (cl) nhwc_.insert(n.output(0));
      return;
    }
    auto optionalIn = [&](int i) { return i < n.input_size() && !n.input(i).empty(); };
    if (op == "Identity" || op == "Dropout") {
      // Dropout is the identity at inference; with training_mode true it drops at random.
      if (op == "Dropout" && n.input_size() > 2 && !n.input(2).empty()) {
        auto* t = constant(n.input(2));
        if (!t || ints(*t).at(0) != 0) unsupported(n, "training_mode is true or computed: export the model in eval mode");
      }
      if (constant(n.input(0))) consts_[n.output(0)] = constant(n.input(0));
      else alias_[n.output(0)] = in(0);
      return;
    }
    // Shape arithmetic (what exporters leave for a flatten: Shape, Gather, Unsqueeze, Concat, ...) is
    // only ever read by a Reshape, which is translated from its inferred output shape: skip it.
    if (op == "Shape" || (op != "Reshape" && readsOnlyShapes(n))) {
      shapeValues_.insert(n.output(0));
      return;
    }
    Stmt s;
    std::vector<int64_t> dims = inferred(n.output(0));
    if (op == "Conv" || op == "ConvTranspose") {
      // One row for both: a transposed conv's weight is [in, out / groups, kh, kw], and it adds
      // output_padding and refuses pads that differ per side (cnnc's convtranspose pads both alike).
      bool tr = op == "ConvTranspose";
      auto* w = constant(n.input(1));
      if (!w) unsupported(n, "its weight is computed, not an initializer");
      if (w->dims_size() != 4)
        unsupported(n, std::string("only 2-D ") + (tr ? "transposed " : "") + "convolutions are supported (its weight has rank " + std::to_string(w->dims_size()) + ")");
      if (tr && attr(n, "output_shape")) unsupported(n, "output_shape (give pads and output_padding instead)");
      auto k = attrInts(n, "kernel_shape", {w->dims(2), w->dims(3)});
      if (k.size() != 2 || k[0] != w->dims(2) || k[1] != w->dims(3)) unsupported(n, "kernel_shape disagrees with its weight's shape");
      int64_t g = attrInt(n, "group", 1);
      std::string t = std::string(tr ? "convtranspose(" : "conv(") + std::to_string(tr ? w->dims(1) * g : w->dims(0)) + ", " + pair(k);
      auto st = attrInts(n, "strides", {1, 1}), dl = attrInts(n, "dilations", {1, 1}), outPad = attrInts(n, "output_padding", {0, 0});
      if (st != std::vector<int64_t>{1, 1}) t += ", stride=" + pair(st);
      std::string p = padding(n);
      if (tr && p.find('[') != std::string::npos) unsupported(n, "pads that differ between the two sides");
      if (p != "0") t += ", padding=" + p;
      if (tr && outPad != std::vector<int64_t>{0, 0}) t += ", output_padding=" + pair(outPad);
      if (dl != std::vector<int64_t>{1, 1}) t += ", dilation=" + pair(dl);
      if (g != 1) t += ", groups=" + std::to_string(g);
      bool bias = optionalIn(2);
      if (!bias) t += ", bias=false";
      s.text = t + ")";
      s.inputs = {in(0)};
      s.params = {{"weight", n.input(1)}};
      if (bias) s.params.push_back({"bias", n.input(2)});
    } else if (op == "BatchNormalization") {
      for (int i = 1; i < 5; ++i)
        if (!constant(n.input(i))) unsupported(n, "its parameters are computed, not initializers");
      if (attrInt(n, "training_mode", 0)) unsupported(n, "training_mode=1: export the model in eval mode");
      // ONNX's momentum weighs the running value, PyTorch's the new one: PyTorch's is 1 - it.
      std::string t = "batchnorm(eps=" + shortest((float)attrFloat(n, "epsilon", 1e-5)) +
                      ", momentum=" + shortest((float)attrFloat(n, "momentum", 0.9), true) + ")";
      s.inputs = {in(0)};
      // batchnorm(affine=false) is exported with a scale of ones and a shift of zeros that are not
      // parameters (not named PATH.weight and PATH.bias): read back as such.
      auto all = [&](int i, float v) {
        for (float x : floats(*constant(n.input(i))))
          if (x != v) return false;
        return true;
      };
      auto endsWith = [](const std::string& a, const std::string& b) { return a.size() > b.size() && a.compare(a.size() - b.size(), b.size(), b) == 0; };
      std::string wn = paramName(n.input(1)), bn = paramName(n.input(2));
      if (!endsWith(wn, ".weight") && !endsWith(bn, ".bias") && all(1, 1.0f) && all(2, 0.0f)) {
        s.text = t.substr(0, t.size() - 1) + ", affine=false)";
        s.params = {{"running_mean", n.input(3)}, {"running_var", n.input(4)}};
      } else {
        s.text = t;
        s.params = {{"weight", n.input(1)}, {"bias", n.input(2)}, {"running_mean", n.input(3)}, {"running_var", n.input(4)}};
      }
    } else if (op == "Gemm") {
      auto* w = constant(n.input(1));
      if (!w) unsupported(n, "its weight is computed, not an initializer");
      if (w->dims_size() != 2) unsupported(n, "its weight has rank " + std::to_string(w->dims_size()) + ", not 2");
      if (attrInt(n, "transA", 0) || attrFloat(n, "alpha", 1.0) != 1.0 || attrFloat(n, "beta", 1.0) != 1.0)
        unsupported(n, "transA, alpha or beta other than 0, 1, 1 (not a linear layer)");
      bool transB = attrInt(n, "transB", 0);
      int64_t outF = transB ? w->dims(0) : w->dims(1);
      bool bias = optionalIn(2);
      if (bias && !constant(n.input(2))) unsupported(n, "its bias is computed, not an initializer");
      if (bias) {  // Gemm's C broadcasts: [O] and [1, O] are linear's bias, one value is that value O times
        const onnx::TensorProto& c = *constant(n.input(2));
        int64_t count = 1;
        for (int64_t d : c.dims()) count *= d;
        if (count == 1 && outF != 1) {
          folded_.push_back(c);
          auto& t = folded_.back();
          setFloats(t, std::vector<float>((size_t)outF, floats(c).at(0)));
          t.clear_dims();
          t.add_dims(outF);
          consts_[n.input(2)] = &t;
        } else if (count != outF || c.dims_size() > 2 || (c.dims_size() == 2 && c.dims(0) != 1)) {
          unsupported(n, "a bias that is not one value per output ([" + std::to_string(outF) + "] or [1, " + std::to_string(outF) + "])");
        }
        reshape_[n.input(2)] = {outF};
      }
      s.text = "linear(" + std::to_string(outF) + (bias ? "" : ", bias=false") + ")";
      s.inputs = {in(0)};
      s.params = {{transB ? "weight" : "weight^T", n.input(1)}};
      if (bias) s.params.push_back({"bias", n.input(2)});
    } else if (op == "Relu" || op == "Sigmoid" || op == "Tanh" || op == "HardSwish") {
      s.text = op == "Relu" ? "relu" : op == "Sigmoid" ? "sigmoid" : op == "Tanh" ? "tanh" : "hardswish";
      s.inputs = {in(0)};
    } else if (op == "LeakyRelu") {
      s.text = "leakyrelu(" + shortest((float)attrFloat(n, "alpha", 0.01)) + ")";
      s.inputs = {in(0)};
    } else if (op == "Elu") {
      s.text = "elu(" + shortest((float)attrFloat(n, "alpha", 1.0)) + ")";
      s.inputs = {in(0)};
    } else if (op == "HardSigmoid") {
      double a = attrFloat(n, "alpha", 0.2), b = attrFloat(n, "beta", 0.5);
      if (std::fabs(a - 1.0 / 6.0) > 1e-6 || std::fabs(b - 0.5) > 1e-6) unsupported(n, "alpha " + fmt(a) + " and beta " + fmt(b) + " (cnnc's hardsigmoid is PyTorch's: 1/6 and 0.5)");
      s.text = "hardsigmoid";
      s.inputs = {in(0)};
    } else if (op == "Clip") {
      double lo = -INFINITY, hi = INFINITY;
      if (opset_ < 11) {
        lo = attrFloat(n, "min", -INFINITY);
        hi = attrFloat(n, "max", INFINITY);
      } else {
        for (int i = 1; i <= 2; ++i) {
          if (!optionalIn(i)) continue;
          auto* c = constant(n.input(i));
          if (!c) unsupported(n, "its bounds are computed, not constants");
          (i == 1 ? lo : hi) = floats(*c).at(0);
        }
      }
      if (lo == 0 && hi == 6) s.text = "relu6";
      else if (std::isfinite(lo) && std::isfinite(hi)) s.text = "hardtanh(" + fmt(lo) + ", " + fmt(hi) + ")";
      else if (lo == 0 && !std::isfinite(hi)) s.text = "relu";
      else if (!std::isfinite(lo) && !std::isfinite(hi)) {  // no bounds: the identity
        alias_[n.output(0)] = in(0);
        return;
      }
      else unsupported(n, "a one-sided clip other than at 0");
      s.inputs = {in(0)};
    } else if (op == "MaxPool" || op == "AveragePool") {
      auto k = attrInts(n, "kernel_shape", {});
      if (k.size() != 2) unsupported(n, "only 2-D pools are supported");
      auto st = attrInts(n, "strides", {1, 1});
      auto pads = attrInts(n, "pads", {0, 0, 0, 0});
      for (size_t i = 0; i < pads.size() && i < 4; ++i)
        if (2 * pads[i] > k[i % 2]) unsupported(n, "pads of more than half the window (" + std::to_string(pads[i]) + " for a window of " + std::to_string(k[i % 2]) + "), which PyTorch and cnnc do not allow");
      std::string t = std::string(op == "MaxPool" ? "maxpool(" : "avgpool(") + pair(k) + ", stride=" + pair(st);
      std::string p = padding(n);
      if (p != "0") t += ", padding=" + p;
      if (op == "MaxPool" && attrInts(n, "dilations", {1, 1}) != std::vector<int64_t>{1, 1}) t += ", dilation=" + pair(attrInts(n, "dilations", {1, 1}));
      if (attrInt(n, "ceil_mode", 0)) t += ", ceil=true";
      if (op == "AveragePool" && p != "0") t += attrInt(n, "count_include_pad", 0) ? ", count_include_pad=true" : ", count_include_pad=false";
      if (op == "MaxPool" && n.output_size() > 1 && !n.output(1).empty()) unsupported(n, "the indices output is not supported");
      s.text = t + ")";
      s.inputs = {in(0)};
    } else if (op == "GlobalAveragePool" || op == "GlobalMaxPool") {
      s.text = op == "GlobalAveragePool" ? "globalavgpool" : "globalmaxpool";
      s.inputs = {in(0)};
    } else if (op == "ReduceMean" || op == "ReduceMax") {
      // Over the whole plane (x.mean([2, 3])): a global pool, flattened when the axes are dropped.
      auto src = inferred(n.input(0));
      auto axes = attrInts(n, "axes", {});
      for (auto& a : axes) a = a < 0 ? a + (int64_t)src.size() : a;
      std::sort(axes.begin(), axes.end());
      if (src.size() != 4 || axes != std::vector<int64_t>{2, 3}) unsupported(n, "a reduction other than over height and width of an image");
      s.text = op == "ReduceMean" ? "globalavgpool" : "globalmaxpool";
      s.inputs = {in(0)};
      if (!attrInt(n, "keepdims", 1)) {
        Stmt pooled = s;
        pooled.node = (n.name().empty() ? op : n.name()) + "/pool";
        pooled.output = n.output(0) + "/pool";
        alias_[pooled.output] = pooled.output;
        stmts_.push_back(pooled);
        s.text = "flatten";
        s.inputs = {pooled.output};
      }
    } else if (op == "Flatten" || op == "Reshape") {
      auto src = inferred(n.input(0));
      if (op == "Flatten" && attrInt(n, "axis", 1) != 1) unsupported(n, "axis other than 1");
      if (op == "Reshape" && !(dims.size() == 2 && src.size() == 4 && dims[1] > 0)) {
        if (dims == src && !dims.empty()) {  // a reshape to the same shape
          alias_[n.output(0)] = in(0);
          return;
        }
        unsupported(n, "a reshape other than a flatten of an image (to [N, C*H*W])");
      }
      if (src.size() == 2) {  // already flat
        alias_[n.output(0)] = in(0);
        return;
      }
      s.text = "flatten";
      s.inputs = {in(0)};
    } else if (op == "Mul" && n.input_size() == 2 && (constant(n.input(0)) != nullptr) != (constant(n.input(1)) != nullptr)) {
      // A learned per-channel factor: `scale` (ConvNeXt's layer_scale), its parameter named as the layer.
      int xi = constant(n.input(0)) ? 1 : 0;
      auto src = inferred(n.input(xi));
      auto* c = constant(n.input(1 - xi));
      int64_t C = src.size() >= 2 ? src[1] : -1;
      bool perChannel = C > 0 && channelCount(*c, src) == C;
      if (!perChannel) unsupported(n, "a product with a constant that is not one factor per channel");
      s.text = "scale";
      s.inputs = {in(xi)};
      s.params = {{"", paramName(n.input(1 - xi))}};
      reshape_[s.params[0].second] = src.size() == 4 ? std::vector<int64_t>{C, 1, 1} : std::vector<int64_t>{C};
    } else if (op == "PRelu") {
      auto* c = constant(n.input(1));
      if (!c) unsupported(n, "its slope is computed, not an initializer");
      int64_t count = channelCount(*c, inferred(n.input(0)));
      if (count < 0) unsupported(n, "a slope that is not one value or one per channel ([C, 1, 1] over an image, [F] over features)");
      s.text = count == 1 ? "prelu" : "prelu(" + std::to_string(count) + ")";
      s.inputs = {in(0)};
      s.params = {{"weight", paramName(n.input(1))}};
      reshape_[s.params[0].second] = {count};
    } else if (op == "Resize") {
      std::string mode = attrStr(n, "mode", "nearest"), coord = attrStr(n, "coordinate_transformation_mode", "half_pixel");
      auto src = inferred(n.input(0));
      if (src.size() != 4 || dims.size() != 4 || dims[2] <= 0 || dims[3] <= 0) unsupported(n, "a resize whose output size is not known");
      std::string how;
      if (mode == "nearest" && coord == "asymmetric" && attrStr(n, "nearest_mode", "round_prefer_floor") == "floor") how = "mode=\"nearest\"";
      else if (mode == "linear" && coord == "align_corners") how = "mode=\"bilinear\", align_corners=true";
      else if (mode == "linear" && (coord == "pytorch_half_pixel" || coord == "half_pixel")) how = "mode=\"bilinear\"";
      else unsupported(n, "mode " + mode + " with coordinate_transformation_mode " + coord + " (import reads PyTorch's nearest and bilinear)");
      // A constant scale keeps PyTorch's scale_factor semantics (coordinates mapped by 1 / scale);
      // otherwise the output size (coordinates mapped by in / out).
      std::vector<float> sc;
      if (n.input_size() > 2 && !n.input(2).empty())
        if (auto* c = constant(n.input(2))) sc = floats(*c);
      // Where ONNX's coordinates differ from PyTorch's: pytorch_half_pixel maps an output of size 1 to
      // the first pixel (PyTorch: the centre), and align_corners with scales divides by the unrounded
      // size in x scale - 1 (PyTorch: by the output size - 1).
      if (coord == "pytorch_half_pixel" && (dims[2] == 1 || dims[3] == 1))
        unsupported(n, "pytorch_half_pixel with an output of size 1, which ONNX maps to the first pixel and PyTorch to the centre");
      if (coord == "align_corners" && sc.size() == 4)
        for (int i = 2; i < 4; ++i)
          if ((double)src[i] * sc[i] != (double)dims[i])
            unsupported(n, "align_corners with a scale whose output size " + fmt(src[i] * (double)sc[i]) + " is not whole (ONNX then maps coordinates by that size, PyTorch by the rounded one)");
      if (sc.size() == 4 && sc[2] == sc[3] && sc[0] == 1 && sc[1] == 1) s.text = "upsample(scale=" + shortest(sc[2]) + ", " + how + ")";
      else s.text = "upsample(size=[" + std::to_string(dims[2]) + ", " + std::to_string(dims[3]) + "], " + how + ")";
      s.inputs = {in(0)};
    } else if (op == "Add" || op == "Mul" || op == "Concat") {
      if (op == "Concat" && attrInt(n, "axis", 1) != 1) unsupported(n, "concatenation along axis " + std::to_string(attrInt(n, "axis", 1)) + " (cnnc concatenates channels)");
      for (int i = 0; i < n.input_size(); ++i)
        if (constant(n.input(i))) unsupported(n, "an operand that is a constant tensor (a learned or fixed bias)");
      s.text = op == "Add" ? "add" : op == "Mul" ? "mul" : "concat";
      s.combinator = true;
      for (int i = 0; i < n.input_size(); ++i) s.inputs.push_back(in(i));
    } else if (op == "InstanceNormalization") {
      // Of an image, with a scale and shift per channel (fusePatterns() has taken the group norms).
      auto src = inferred(n.input(0));
      if (src.size() != 4) unsupported(n, "an instance norm of other than an image [N, C, H, W]");
      for (int k = 1; k < 3; ++k)
        if (!constant(n.input(k))) unsupported(n, "its scale or shift is computed, not an initializer");
      s.text = "instancenorm(eps=" + shortest((float)attrFloat(n, "epsilon", 1e-5)) + ", affine=true)";
      s.inputs = {in(0)};
      s.params = {{"weight", n.input(1)}, {"bias", n.input(2)}};
    } else if (op == "Slice") {
      // Channels [start, end) of an image: narrow(start, end - start).
      auto src = inferred(n.input(0));
      std::vector<int64_t> v[4];
      for (int k = 1; k < 5 && k < n.input_size(); ++k) {
        if (n.input(k).empty()) continue;
        auto* c = constant(n.input(k));
        if (!c) unsupported(n, "its starts, ends, axes or steps are computed, not constants");
        v[k - 1] = ints(*c);
      }
      if (opset_ < 10) v[0] = attrInts(n, "starts", {}), v[1] = attrInts(n, "ends", {}), v[2] = attrInts(n, "axes", {});
      if (v[2].empty())
        for (size_t k = 0; k < v[0].size(); ++k) v[2].push_back((int64_t)k);
      bool steps1 = std::all_of(v[3].begin(), v[3].end(), [](int64_t x) { return x == 1; });
      if (src.size() != 4 || v[0].size() != 1 || v[1].size() != 1 || v[2].size() != 1 || (v[2][0] != 1 && v[2][0] != -3) || !steps1)
        unsupported(n, "a slice other than of channels (axis 1, step 1) of an image");
      int64_t C = src[1], b = v[0][0] < 0 ? v[0][0] + C : v[0][0], e = v[1][0] < 0 ? v[1][0] + C : v[1][0];
      b = std::clamp(b, (int64_t)0, C);
      e = std::clamp(e, (int64_t)0, C);
      if (e <= b) unsupported(n, "an empty slice");
      s.text = "narrow(" + std::to_string(b) + ", " + std::to_string(e - b) + ")";
      s.inputs = {in(0)};
    } else if (op == "Softmax") {
      auto src = inferred(n.input(0));
      int64_t axis = attrInt(n, "axis", opset_ < 13 ? 1 : -1);
      if (!(src.size() == 2 && (axis == 1 || axis == -1))) unsupported(n, "softmax other than over the features of [N, F]");
      s.text = "softmax";
      s.inputs = {in(0)};
    } else if (op == "LRN") {
      s.text = "lrn(" + std::to_string(attrInt(n, "size", 5)) + ", alpha=" + shortest((float)attrFloat(n, "alpha", 1e-4)) +
               ", beta=" + shortest((float)attrFloat(n, "beta", 0.75)) + ", k=" + shortest((float)attrFloat(n, "bias", 1.0)) + ")";
      s.inputs = {in(0)};
    } else if (op == "Pad") {
      std::vector<int64_t> p = opset_ < 11 ? attrInts(n, "pads", {}) : std::vector<int64_t>{};
      if (opset_ >= 11) {
        auto* c = constant(n.input(1));
        if (!c) unsupported(n, "its pads are computed, not constants");
        p = ints(*c);
      }
      if (attrStr(n, "mode", "constant") != "constant") unsupported(n, "mode " + attrStr(n, "mode", "constant") + " (cnnc pads with zeros)");
      if (optionalIn(2)) {
        auto* v = constant(n.input(2));
        if (!v || floats(*v).at(0) != 0.0f) unsupported(n, "a pad value other than 0");
      }
      if (p.size() != 8 || p[0] || p[1] || p[4] || p[5]) unsupported(n, "padding other than of height and width");
      bool none = true;
      for (int64_t v : p) none &= v == 0;
      if (none) {
        alias_[n.output(0)] = in(0);
        return;
      }
      s.text = "pad([" + std::to_string(p[2]) + ", " + std::to_string(p[6]) + ", " + std::to_string(p[3]) + ", " + std::to_string(p[7]) + "])";
      s.inputs = {in(0)};
    } else {
      std::string known;
      for (const auto& o : importableOps()) known += (known.empty() ? "" : ", ") + o;
      unsupported(n, "this op is not supported by import (it reads: " + known + ")");
    }
    add(std::move(s), n);
    if (channelsLast(n)) nhwc_.insert(n.output(0));
  }

  // The name a parameter is known by: the value's own when it reads PATH.suffix (an exporter's Identity
  // gives each user of a shared tensor its own name), else the initializer's (under a folded reshape).
  std::string paramName(const std::string& v) const {
    if (v.find('.') != std::string::npos && v.find("::") == std::string::npos) return v;
    auto* c = constant(v);
    return c && !c->name().empty() ? c->name() : v;
  }

  // Whether every input is a constant or shape arithmetic, and at least one is shape arithmetic.
  bool readsOnlyShapes(const onnx::NodeProto& n) const {
    bool any = false;
    for (const auto& i : n.input()) {
      if (shapeValues_.count(i)) any = true;
      else if (!i.empty() && !constant(i)) return false;
    }
    return any;
  }

  std::vector<int64_t> inferred(const std::string& v) const {
    auto it = shapes_.find(v);
    return it == shapes_.end() ? std::vector<int64_t>{} : it->second;
  }

  // ---- steps 5 and 6: names and the chain ----

  static bool isIdent(const std::string& s) {
    if (s.empty() || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
    for (char c : s)
      if (!(isalnum((unsigned char)c) || c == '_')) return false;
    static const std::set<std::string> reserved = {"import", "block", "network", "let", "if", "else", "for", "in", "residual", "shortcut", "concat",
                                                   "add", "mul", "split", "use", "seq", "keep", "from", "true", "false"};
    return !reserved.count(s);
  }
  static std::string label(const std::string& seg) { return isIdent(seg) ? seg : "\"" + seg + "\""; }
  static bool segmentOk(const std::string& s) {
    if (s.empty()) return false;
    for (char c : s)
      if (!(isalnum((unsigned char)c) || c == '_' || c == '-')) return false;
    return true;
  }
  static std::string sanitize(const std::string& s) {
    std::string o;
    for (char c : s) o += isalnum((unsigned char)c) || c == '_' || c == '-' ? c : '_';
    while (!o.empty() && o[0] == '_') o.erase(0, 1);
    return o.empty() ? "layer" : o;
  }

  // The module path of a layer with parameters: PATH when every parameter is PATH.<suffix> (its
  // cnnc suffix), else a name made from the node's.
  std::string pathOf(Stmt& s, ImportResult& out) {
    std::string path;
    bool ok = true;
    for (auto& [suffix, init] : s.params) {
      if (suffix.empty()) {  // scale: the parameter is named as its layer
        path = init;
        continue;
      }
      std::string want = suffix == "weight^T" ? "weight" : suffix;
      if (init.size() <= want.size() + 1 || init.compare(init.size() - want.size(), want.size(), want) != 0 || init[init.size() - want.size() - 1] != '.') {
        ok = false;
        break;
      }
      std::string p = init.substr(0, init.size() - want.size() - 1);
      if (path.empty()) path = p;
      else if (p != path) ok = false;
    }
    if (ok) {
      std::stringstream ss(path);
      std::string seg;
      while (std::getline(ss, seg, '.')) ok &= segmentOk(seg);
    }
    if (ok && !usedPaths_.count(path)) {
      usedPaths_.insert(path);
      return path;
    }
    std::string base = sanitize(s.node), p = base;
    for (int i = 2; usedPaths_.count(p); ++i) p = base + "_" + std::to_string(i);
    usedPaths_.insert(p);
    out.notes.push_back("layer '" + s.node + "': its parameters (" + s.params[0].second + ", ...) are not named PATH.weight, PATH.bias, ...; they are now " + p + ".*");
    return p;
  }

  void emit(const std::string& netName, ImportResult& out) {
    // Which values must be kept: read by any statement but the next one, or by two.
    std::map<std::string, int> uses;
    for (const Stmt& s : stmts_)
      for (const auto& v : s.inputs) uses[v]++;
    uses[output_]++;
    std::set<std::string> kept;
    std::string prev = input_;
    for (size_t i = 0; i < stmts_.size(); ++i) {
      const Stmt& s = stmts_[i];
      for (const auto& v : s.inputs)
        if (v != prev || uses[v] > 1) kept.insert(v);
      prev = s.output;
    }
    if (output_ != prev) kept.insert(output_);
    std::map<std::string, std::string> keepName;
    auto nameOf = [&](const std::string& v) {
      auto it = keepName.find(v);
      if (it != keepName.end()) return it->second;
      std::string k = "t" + std::to_string(keepName.size());
      keepName[v] = k;
      return k;
    };

    std::ostringstream o;
    o << "# Imported by `cnnc import` from " << fs::path(path_).filename().string() << " (ONNX opset " << opset_;
    if (!m_.producer_name().empty()) o << ", written by " << m_.producer_name() << " " << m_.producer_version();
    o << ").\n# Its weights are in the safetensors file written beside it, under the names this file gives the layers.\n";
    o << "network " << netName << " {\n";
    o << "  input(";
    for (size_t i = 0; i < inputDims_.size(); ++i) o << (i ? ", " : "") << inputDims_[i];
    o << ")\n";
    if (kept.count(input_)) o << "  keep " << nameOf(input_) << "\n";

    // Module paths first. A module with numeric labels ("0": a Sequential's child) would clash with
    // the positions its unlabelled statements are named by, so those get labels "_N" there.
    std::set<std::string> numericModules;
    for (Stmt& s : stmts_) {
      if (!s.hasParams()) continue;
      s.path = pathOf(s, out);
      std::string parent;
      std::stringstream ss(s.path);
      std::string seg;
      while (std::getline(ss, seg, '.')) {
        if (std::all_of(seg.begin(), seg.end(), [](char c) { return isdigit((unsigned char)c); })) numericModules.insert(parent);
        parent += (parent.empty() ? "" : ".") + seg;
      }
    }
    std::map<std::string, int> extraLabels;
    auto labelFor = [&](const std::vector<std::string>& openSegs) -> std::string {
      std::string m;
      for (size_t i = 0; i < openSegs.size(); ++i) m += (i ? "." : "") + openSegs[i];
      if (!numericModules.count(m)) return "";
      return "\"_" + std::to_string(extraLabels[m]++) + "\": ";
    };

    std::vector<std::string> open;  // the open seqs' segments
    auto indent = [&]() { return std::string(2 * (open.size() + 1), ' '); };
    std::set<std::string> openedPaths;  // a seq label may not open twice in one module
    std::string cur = input_;
    for (Stmt& s : stmts_) {
      std::vector<std::string> segs;
      if (s.hasParams()) {
        const std::string& path = s.path;
        std::stringstream ss(path);
        std::string seg;
        while (std::getline(ss, seg, '.')) segs.push_back(seg);
        std::vector<std::string> parents(segs.begin(), segs.end() - 1);
        size_t common = 0;
        while (common < open.size() && common < parents.size() && open[common] == parents[common]) ++common;
        while (open.size() > common) {
          open.pop_back();
          o << indent() << "}\n";
        }
        for (size_t i = common; i < parents.size(); ++i) {
          std::string full;
          for (size_t j = 0; j <= i; ++j) full += (j ? "." : "") + parents[j];
          if (!openedPaths.insert(full).second) throw Fail{"module '" + full + "' is not contiguous in the model's node order; import cannot nest it (node '" + s.node + "')"};
          o << indent() << label(parents[i]) << ": seq {\n";
          open.push_back(parents[i]);
        }
        for (auto& [suffix, init] : s.params)
          paramOrder_.push_back({suffix.empty() ? path : path + "." + (suffix == "weight^T" ? "weight" : suffix), init, suffix == "weight^T"});
        if (s.text.rfind("batchnorm", 0) == 0) paramOrder_.push_back({path + ".num_batches_tracked", "", false});
      }
      std::string ind = indent();
      if (s.combinator) {
        // A combinator takes no label: where one is needed it goes on a seq around it.
        std::string lab = labelFor(open);
        o << ind << (lab.empty() ? "" : lab + "seq { ") << s.text << " {";
        for (size_t i = 0; i < s.inputs.size(); ++i) o << (i ? "; " : " ") << (s.inputs[i] == cur ? "identity" : "from " + nameOf(s.inputs[i]));
        o << (lab.empty() ? " }\n" : " } }\n");
      } else {
        if (s.inputs[0] != cur) o << ind << "from " << nameOf(s.inputs[0]) << "\n";
        o << ind << (segs.empty() ? labelFor(open) : label(segs.back()) + ": ") << s.text << "\n";
      }
      cur = s.output;
      if (kept.count(cur)) o << ind << "keep " << nameOf(cur) << "\n";
    }
    while (!open.empty()) {
      open.pop_back();
      o << indent() << "}\n";
    }
    if (cur != output_) o << "  from " << nameOf(output_) << "\n";
    o << "}\n";
    out.cnn = o.str();

    std::map<std::string, int> initUses;  // parameters per initializer: one that is shared is copied
    for (const auto& p : paramOrder_) ++initUses[p.init];
    for (const auto& p : paramOrder_) {
      ImportedTensor t;
      t.name = p.name;
      if (p.init.empty()) {
        t.isInt64 = true;
        out.weights.push_back(t);
        continue;
      }
      const onnx::TensorProto* c = constant(p.init);
      if (!c) throw Fail{"parameter '" + p.init + "' is not an initializer"};
      t.shape.assign(c->dims().begin(), c->dims().end());
      if (auto r = reshape_.find(p.init); r != reshape_.end()) t.shape = r->second;  // cnnc's shape, same data
      int64_t count = 1;
      for (int64_t d : t.shape) count *= d;
      // float32 raw_data is taken over as it is (moved out of the model, which is not read again,
      // unless another parameter shares the initializer): converting it to floats and back cost 4
      // of VGG-11's 9 s of import, in page faults and copies of its 531 MB.
      static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "raw_data and safetensors are little-endian");
      if (c->data_type() == onnx::TensorProto::FLOAT && c->has_raw_data() && !p.transpose && initUses[p.init] == 1) {
        t.f32.swap(*const_cast<onnx::TensorProto*>(c)->mutable_raw_data());
      } else {
        std::vector<float> v = floats(*c);
        if (p.transpose && (int64_t)v.size() == count) {  // Gemm with transB = 0 stores [F, O]; linear's weight is [O, F]
          int64_t F = t.shape[0], O = t.shape[1];
          std::vector<float> tr(v.size());
          for (int64_t f = 0; f < F; ++f)
            for (int64_t oo = 0; oo < O; ++oo) tr[oo * F + f] = v[f * O + oo];
          v = std::move(tr);
          t.shape = {O, F};
        }
        t.f32.assign(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
      }
      if (t.f32.size() != (size_t)count * sizeof(float))
        throw Fail{"initializer '" + p.init + "' holds " + std::to_string(t.f32.size() / sizeof(float)) + " values for a shape of " +
                   std::to_string(count) + " (a corrupt model)"};
      out.weights.push_back(std::move(t));
    }
  }

 public:
  std::string path_;
  std::set<std::string> shapeConstants_;  // Shape nodes computed before import (importOnnx)

 private:
  struct ParamOut {
    std::string name, init;
    bool transpose;
  };
  onnx::ModelProto& m_;
  std::string dir_;
  int opset_ = 0;
  std::map<std::string, const onnx::TensorProto*> consts_;
  std::list<onnx::TensorProto> folded_;
  std::map<std::string, std::vector<int64_t>> shapes_;
  std::map<std::string, std::string> alias_;
  std::set<std::string> shapeValues_;
  std::set<std::string> nhwc_;  // values that are channels-last views of an image (channelsLast())
  std::string input_, output_;
  std::vector<int64_t> inputDims_;
  std::vector<Stmt> stmts_;
  std::set<std::string> usedPaths_;
  std::vector<ParamOut> paramOrder_;
  std::map<std::string, std::vector<int64_t>> reshape_;  // parameter -> the shape cnnc gives it
};

// Shape(x) of a known shape, and Slice, Concat, Gather, Unsqueeze, Squeeze, Cast, integer
// Add/Sub/Mul/Div, ConstantOfShape, Reshape and Transpose of such integer vectors (what PyTorch
// writes for a flatten, a channel shuffle's view, F.pad to a computed size), and Concats of float
// vectors (an upsample's scales), become Constant nodes (their outputs go to `folded`). True when any node changed.
bool foldShapes(onnx::ModelProto& m, std::set<std::string>& folded) {
  struct Ints {
    std::vector<int64_t> v;
    bool scalar = false;
    std::vector<int64_t> dims2;  // [rows, cols] for a matrix (F.pad's pads, mid-way); else empty
  };
  std::map<std::string, std::vector<float>> floatVecs;  // 1-D float constants (an upsample's scales)
  std::map<std::string, Ints> known;
  auto intsOf = [](const onnx::TensorProto& t, Ints& out) {
    if (t.data_type() != onnx::TensorProto::INT64 && t.data_type() != onnx::TensorProto::INT32) return false;
    out.v = t.data_type() == onnx::TensorProto::INT64 ? onnx::ParseData<int64_t>(&t) : [&] {
      auto d = onnx::ParseData<int32_t>(&t);
      return std::vector<int64_t>(d.begin(), d.end());
    }();
    out.scalar = t.dims_size() == 0;
    if (t.dims_size() == 2) out.dims2 = {t.dims(0), t.dims(1)};
    return t.dims_size() <= 2;
  };
  auto noteFloats = [&](const std::string& name, const onnx::TensorProto& t) {
    if (t.data_type() == onnx::TensorProto::FLOAT && t.dims_size() == 1) floatVecs[name] = onnx::ParseData<float>(&t);
  };
  for (const auto& t : m.graph().initializer()) {
    Ints i;
    if (intsOf(t, i)) known[t.name()] = i;
    noteFloats(t.name(), t);
  }
  std::map<std::string, const onnx::TypeProto*> types;
  for (const auto& vi : m.graph().value_info()) types[vi.name()] = &vi.type();
  for (const auto& vi : m.graph().input()) types[vi.name()] = &vi.type();
  bool changed = false;
  for (auto& n : *m.mutable_graph()->mutable_node()) {
    if (!(n.domain().empty() || n.domain() == "ai.onnx")) continue;
    const std::string& op = n.op_type();
    auto attrI = [&](const char* name, int64_t def) {
      for (const auto& a : n.attribute())
        if (a.name() == name) return a.i();
      return def;
    };
    if (op == "Constant") {
      for (const auto& a : n.attribute()) {
        Ints i;
        if (a.name() == "value" && a.has_t() && intsOf(a.t(), i)) known[n.output(0)] = i;
        if (a.name() == "value" && a.has_t()) noteFloats(n.output(0), a.t());
      }
      continue;
    }
    auto makeConstant = [&](const onnx::TensorProto& value) {
      n.set_op_type("Constant");
      n.clear_input();
      n.clear_attribute();
      auto* a = n.add_attribute();
      a->set_name("value");
      a->set_type(onnx::AttributeProto::TENSOR);
      *a->mutable_t() = value;
      folded.insert(n.output(0));
      changed = true;
    };
    if (op == "Concat" && n.input_size() > 0 &&
        std::all_of(n.input().begin(), n.input().end(), [&](const std::string& v) { return floatVecs.count(v) > 0; })) {
      onnx::TensorProto value;
      value.set_data_type(onnx::TensorProto::FLOAT);
      std::vector<float> all;
      for (const auto& v : n.input()) all.insert(all.end(), floatVecs[v].begin(), floatVecs[v].end());
      for (float x : all) value.add_float_data(x);
      value.add_dims((int64_t)all.size());
      floatVecs[n.output(0)] = all;
      makeConstant(value);
      folded.erase(n.output(0));  // a float constant, not shape arithmetic: import reads it as a constant
      continue;
    }
    auto has = [&](int k) { return k < n.input_size() && known.count(n.input(k)); };
    Ints r;
    if (op == "Shape" && n.attribute_size() == 0 && types.count(n.input(0))) {
      const onnx::TypeProto* t = types[n.input(0)];
      if (!t->has_tensor_type() || !t->tensor_type().has_shape()) continue;
      bool full = true;
      for (const auto& d : t->tensor_type().shape().dim()) {
        full &= d.has_dim_value();
        r.v.push_back(d.dim_value());
      }
      if (!full) continue;
    } else if (op == "Concat" && attrI("axis", 0) == 0 && n.input_size() > 0) {
      bool all = true;
      for (int k = 0; k < n.input_size(); ++k) all &= has(k);
      if (!all) continue;
      for (int k = 0; k < n.input_size(); ++k) r.v.insert(r.v.end(), known[n.input(k)].v.begin(), known[n.input(k)].v.end());
    } else if (op == "Gather" && attrI("axis", 0) == 0 && has(0) && has(1)) {
      const auto& d = known[n.input(0)].v;
      r.scalar = known[n.input(1)].scalar;
      bool ok = true;
      for (int64_t k : known[n.input(1)].v) {
        if (k < 0) k += (int64_t)d.size();
        if (k < 0 || k >= (int64_t)d.size()) ok = false;
        else r.v.push_back(d[k]);
      }
      if (!ok) continue;
    } else if (op == "ConstantOfShape" && has(0) && known[n.input(0)].v.size() == 1) {
      // F.pad's zeros for the dimensions it does not pad: [count] of the value attribute (0).
      int64_t fill = 0, count = known[n.input(0)].v[0];
      for (const auto& a : n.attribute()) {
        Ints i;
        if (a.name() == "value" && a.has_t()) {
          if (!intsOf(a.t(), i) || i.v.size() != 1) count = -1;
          else fill = i.v[0];
        }
      }
      if (count < 0) continue;
      r.v.assign((size_t)count, fill);
    } else if (op == "Reshape" && has(0) && has(1) && known[n.input(0)].dims2.empty()) {
      // A vector to [-1, 2] and back to [-1] (F.pad's pairs of pads).
      auto target = known[n.input(1)].v;
      int64_t total = (int64_t)known[n.input(0)].v.size();
      r.v = known[n.input(0)].v;
      if (target.size() == 1 && (target[0] == -1 || target[0] == total)) {
      } else if (target.size() == 2 && (target[1] > 0 || target[0] > 0)) {
        int64_t c = target[1] > 0 ? target[1] : total / target[0], rows = total / c;
        if (c <= 0 || rows * c != total) continue;
        r.dims2 = {rows, c};
      } else {
        continue;
      }
    } else if (op == "Reshape" && has(0) && has(1) && !known[n.input(0)].dims2.empty()) {
      auto target = known[n.input(1)].v;
      if (target.size() != 1) continue;
      r.v = known[n.input(0)].v;  // a matrix flattened row by row
    } else if (op == "Transpose" && has(0) && known[n.input(0)].dims2.size() == 2) {
      const Ints& x = known[n.input(0)];
      int64_t R = x.dims2[0], C = x.dims2[1];
      for (int64_t c = 0; c < C; ++c)
        for (int64_t rr = 0; rr < R; ++rr) r.v.push_back(x.v[rr * C + c]);
      r.dims2 = {C, R};
    } else if (op == "Slice" && has(0) && has(1) && has(2) && (n.input_size() < 4 || n.input(3).empty() || (has(3) && known[n.input(3)].v == std::vector<int64_t>{0})) &&
               (n.input_size() < 5 || n.input(4).empty() || (has(4) && known[n.input(4)].v.size() == 1 && known[n.input(4)].v[0] != 0))) {
      // Along the first axis, with any step (F.pad reverses its pairs with step -1), of a vector or rows.
      const Ints& x = known[n.input(0)];
      int64_t rows = x.dims2.empty() ? (int64_t)x.v.size() : x.dims2[0], width = x.dims2.empty() ? 1 : x.dims2[1];
      int64_t step = n.input_size() >= 5 && !n.input(4).empty() ? known[n.input(4)].v[0] : 1;
      if (known[n.input(1)].v.size() != 1 || known[n.input(2)].v.size() != 1) continue;
      int64_t b = known[n.input(1)].v[0], e = known[n.input(2)].v[0];
      if (b < 0) b += rows;
      if (e < 0 && e > -rows - 1) e += rows;
      if (step > 0) {
        b = std::clamp(b, (int64_t)0, rows);
        e = std::clamp(e, (int64_t)0, rows);
      } else {
        b = std::clamp(b, (int64_t)-1, rows - 1);
        e = std::clamp(e, (int64_t)-1, rows - 1);
      }
      int64_t count = 0;
      for (int64_t k = b; step > 0 ? k < e : k > e; k += step, ++count)
        for (int64_t c = 0; c < width; ++c) r.v.push_back(x.v[k * width + c]);
      if (!x.dims2.empty()) r.dims2 = {count, width};
    } else if ((op == "Add" || op == "Sub" || op == "Mul" || op == "Div") && has(0) && has(1)) {
      // Integer arithmetic of shapes (U-Net's padding to the skip's size, a channel count / groups),
      // elementwise, a one-value operand broadcast.
      const Ints &x = known[n.input(0)], &y = known[n.input(1)];
      size_t len = std::max(x.v.size(), y.v.size());
      if ((x.v.size() != len && x.v.size() != 1) || (y.v.size() != len && y.v.size() != 1)) continue;
      bool ok = true;
      for (size_t k = 0; k < len; ++k) {
        int64_t p = x.v[x.v.size() == 1 ? 0 : k], q = y.v[y.v.size() == 1 ? 0 : k];
        if (op == "Div" && q == 0) ok = false;
        else r.v.push_back(op == "Add" ? p + q : op == "Sub" ? p - q : op == "Mul" ? p * q : p / q);
      }
      if (!ok) continue;
      r.scalar = x.scalar && y.scalar;
    } else if ((op == "Unsqueeze" || op == "Squeeze" || op == "Cast") && has(0)) {
      if (op == "Cast" && attrI("to", 0) != onnx::TensorProto::INT64) continue;
      r.v = known[n.input(0)].v;
      r.scalar = op == "Cast" ? known[n.input(0)].scalar : op == "Squeeze" && r.v.size() == 1;
      if (op == "Unsqueeze" && !known[n.input(0)].scalar) continue;  // only a scalar to [1]
    } else {
      continue;
    }
    onnx::TensorProto value;
    value.set_data_type(onnx::TensorProto::INT64);
    if (!r.dims2.empty()) value.add_dims(r.dims2[0]), value.add_dims(r.dims2[1]);
    else if (!r.scalar) value.add_dims((int64_t)r.v.size());
    for (int64_t d : r.v) value.add_int64_data(d);
    known[n.output(0)] = r;
    makeConstant(value);
  }
  return changed;
}

}  // namespace

bool importOnnx(const std::string& path, const std::string& netName, ImportResult& out, std::string& err) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    err = path + ": cannot open: " + strerror(errno);
    return false;
  }
  // One read of the whole file: an istreambuf_iterator copied it a byte at a time, growing the
  // string as it went (VGG-11's 531 MB: 5.9 of the import's 13 s).
  std::string bytes;
  f.seekg(0, std::ios::end);
  std::streamoff size = f.tellg();
  f.seekg(0, std::ios::beg);
  if (size > 0) {
    bytes.resize((size_t)size);
    if (!f.read(bytes.data(), size)) {
      err = path + ": cannot read: " + strerror(errno);
      return false;
    }
  }
  onnx::ModelProto m;
  if (bytes.empty() || !m.ParseFromString(bytes) || !m.has_graph()) {
    err = path + ": not an ONNX model (the file does not parse as an ONNX ModelProto; truncated or another format?)";
    return false;
  }
  try {
    std::string dir = fs::path(path).parent_path().string();
    Importer imp(m, dir.empty() ? "." : dir);
    imp.path_ = path;
    // The checker (topological order, single assignment, valid ops and attributes), then shapes.
    imp.loadExternals();
    // A model older than opset 9 is upgraded by ONNX's own version converter (which knows each op's
    // changes), then imported as opset 13.
    int64_t opset = 0;
    for (const auto& op : m.opset_import())
      if (op.domain().empty() || op.domain() == "ai.onnx") opset = op.version();
    if (opset >= 1 && opset < 9) {
      onnx::checker::check_model(m);
      try {
        m = onnx::version_conversion::ConvertVersion(m, 13);
      } catch (const std::exception& e) {
        throw Fail{"the model uses ONNX opset " + std::to_string(opset) + " and ONNX's version converter cannot upgrade it to 13 (" +
                   std::string(e.what()).substr(0, 200) + "); import reads opsets 9 to 17"};
      }
      out.notes.push_back("the model's opset " + std::to_string(opset) + " was upgraded to 13 by ONNX's version converter");
    }
    onnx::checker::check_model(m);
    // Shapes are inferred at batch 1: with a symbolic batch, ONNX's data propagation cannot compute
    // Shape(x) and so loses every shape after a Reshape to it (group norm's, an upsample's size).
    std::set<std::string> inits;
    for (const auto& t : m.graph().initializer()) inits.insert(t.name());
    for (auto& in : *m.mutable_graph()->mutable_input()) {
      if (inits.count(in.name()) || !in.type().has_tensor_type() || in.type().tensor_type().shape().dim_size() == 0) continue;
      auto* d0 = in.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0);
      if (!d0->has_dim_value()) d0->set_dim_value(1);
    }
    // ONNX 1.12's data propagation does not carry Shape(x) into a Reshape or a Resize: the shape
    // arithmetic is computed here (foldShapes) and inference runs again, until nothing changes.
    // (Each round starts afresh: a dimension left symbolic by the last round would stay so.)
    do {
      m.mutable_graph()->clear_value_info();
      onnx::shape_inference::InferShapes(m, onnx::OpSchemaRegistry::Instance(), onnx::ShapeInferenceOptions(false, 0, true));
    } while (foldShapes(m, imp.shapeConstants_));
    imp.run(netName, out);
  } catch (const Fail& e) {
    err = path + ": " + e.msg;
    return false;
  } catch (const std::exception& e) {
    // ONNX's messages span lines ("...of node: \nname: r1 OpType: Relu\n is not..."): one line here.
    std::string msg;
    for (char c : std::string(e.what())) {
      if (c == '\n') c = ' ';
      if (!(c == ' ' && !msg.empty() && msg.back() == ' ')) msg += c;
    }
    while (!msg.empty() && msg.back() == ' ') msg.pop_back();
    err = path + ": the model is not valid ONNX: " + msg;
    return false;
  }
  return true;
}

}  // namespace cnnc::interop
