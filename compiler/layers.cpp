// layers.cpp: the built-in layers. Each has a table of arguments (positional order, types,
// defaults); binding checks them, then the layer's shape rule gives the output shape and its
// parameters get their PyTorch names and shapes.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "elaborator.h"
#include "shape_rules.h"

namespace cnnc {
namespace {

// Padding: an integer, [h, w], per side [top, bottom, left, right], or one of the spec's strings.
enum class ArgType { Int, IntPair, Float, Bool, FloatList, Choice, Padding };

struct ArgSpec {
  const char* name;
  ArgType type;
  bool required;
  double def = 0;  // an activation's Float argument when not given (other layers default in code)
  const char* choices = nullptr;  // a Choice argument's strings, "a|b|c"; the first is its default
};

std::vector<std::string> choicesOf(const ArgSpec& as) {
  std::vector<std::string> v;
  std::string cur;
  for (const char* p = as.choices; *p; ++p)
    if (*p == '|') v.push_back(cur), cur.clear();
    else cur += *p;
  v.push_back(cur);
  return v;
}

struct LayerSpec {
  const char* name;
  OpKind op;
  std::vector<ArgSpec> args;
};

// Limits on sizes: far above any real network, low enough that products cannot overflow.
constexpr int64_t kMaxChannels = 1 << 24;
constexpr int64_t kMaxSpatial = 1 << 20;
constexpr int64_t kMaxWindow = 1 << 12;
constexpr int64_t kMaxTensorElems = int64_t(1) << 36;

const std::vector<LayerSpec>& specs() {
  static const std::vector<LayerSpec> s = {
      {"input", OpKind::Input, {{"c", ArgType::Int, true}, {"h", ArgType::Int, false}, {"w", ArgType::Int, false},
                                {"mean", ArgType::FloatList, false}, {"std", ArgType::FloatList, false}}},
      {"conv", OpKind::Conv, {{"out", ArgType::Int, true}, {"kernel", ArgType::IntPair, true}, {"stride", ArgType::IntPair, false},
                              {"padding", ArgType::Padding, false, 0, "same|valid"}, {"dilation", ArgType::IntPair, false}, {"groups", ArgType::Int, false},
                              {"bias", ArgType::Bool, false}, {"in_channels", ArgType::Int, false}}},
      {"convtranspose", OpKind::ConvTranspose, {{"out", ArgType::Int, true}, {"kernel", ArgType::IntPair, true}, {"stride", ArgType::IntPair, false},
                                                {"padding", ArgType::IntPair, false}, {"output_padding", ArgType::IntPair, false},
                                                {"dilation", ArgType::IntPair, false}, {"groups", ArgType::Int, false},
                                                {"bias", ArgType::Bool, false}, {"in_channels", ArgType::Int, false}}},
      // Resampling: nn.Upsample by a scale factor or to a size; zero padding per side (F.pad).
      {"upsample", OpKind::Upsample, {{"scale", ArgType::Float, false}, {"size", ArgType::IntPair, false},
                                      {"mode", ArgType::Choice, false, 0, "nearest|bilinear"}, {"align_corners", ArgType::Bool, false}}},
      {"pad", OpKind::Pad, {{"padding", ArgType::Padding, true}}},
      {"linear", OpKind::Linear, {{"out", ArgType::Int, true}, {"bias", ArgType::Bool, false}, {"in_features", ArgType::Int, false}, {"per_pixel", ArgType::Bool, false}}},
      {"batchnorm", OpKind::BatchNorm, {{"eps", ArgType::Float, false}, {"momentum", ArgType::Float, false}, {"affine", ArgType::Bool, false}}},
      // Per-image normalisation (group_norm.cpp): statistics of each image's own groups of channels.
      {"groupnorm", OpKind::GroupNorm, {{"groups", ArgType::Int, true}, {"eps", ArgType::Float, false}, {"affine", ArgType::Bool, false}}},
      {"instancenorm", OpKind::GroupNorm, {{"eps", ArgType::Float, false}, {"affine", ArgType::Bool, false}}},
      {"layernorm", OpKind::GroupNorm, {{"eps", ArgType::Float, false}, {"affine", ArgType::Bool, false}}},
      // Activations: each is also a row of codegen/ops/activation.cpp; Float arguments only.
      {"relu", OpKind::Activation, {}},
      {"tanh", OpKind::Activation, {}},
      {"sigmoid", OpKind::Activation, {}},
      {"leakyrelu", OpKind::Activation, {{"slope", ArgType::Float, false, 0.01}}},
      {"relu6", OpKind::Activation, {}},
      {"hardtanh", OpKind::Activation, {{"min", ArgType::Float, false, -1.0}, {"max", ArgType::Float, false, 1.0}}},
      {"hardsigmoid", OpKind::Activation, {}},
      {"hardswish", OpKind::Activation, {}},
      {"elu", OpKind::Activation, {{"alpha", ArgType::Float, false, 1.0}}},
      {"silu", OpKind::Activation, {}},
      {"swish", OpKind::Activation, {}},  // silu's other name
      {"gelu", OpKind::Activation, {{"approximate", ArgType::Choice, false, 0, "none|tanh"}}},
      {"mish", OpKind::Activation, {}},
      // Elementwise with a learned parameter per channel (or one for all: prelu's default).
      {"prelu", OpKind::PReLU, {{"num_parameters", ArgType::Int, false}, {"init", ArgType::Float, false}}},
      {"scale", OpKind::Scale, {{"init", ArgType::Float, false}}},
      {"channelshuffle", OpKind::ChannelShuffle, {{"groups", ArgType::Int, true}}},
      // Channels [start, start + length) (torch.narrow(x, 1, start, length)): what `split` feeds each
      // branch, as a layer of its own (an imported ONNX Slice on the channels).
      {"narrow", OpKind::Chunk, {{"start", ArgType::Int, true}, {"length", ArgType::Int, true}}},
      {"softmax", OpKind::Softmax, {}},
      {"flatten", OpKind::Flatten, {}},
      {"identity", OpKind::Input, {}},  // no node: passes its input through
      {"maxpool", OpKind::MaxPool, {{"kernel", ArgType::IntPair, true}, {"stride", ArgType::IntPair, false}, {"padding", ArgType::IntPair, false},
                                    {"dilation", ArgType::IntPair, false}, {"ceil", ArgType::Bool, false}}},
      {"avgpool", OpKind::AvgPool, {{"kernel", ArgType::IntPair, true}, {"stride", ArgType::IntPair, false}, {"padding", ArgType::IntPair, false},
                                    {"ceil", ArgType::Bool, false}, {"count_include_pad", ArgType::Bool, false}}},
      {"adaptiveavgpool", OpKind::AdaptiveAvgPool, {{"out", ArgType::IntPair, true}}},
      {"globalavgpool", OpKind::AdaptiveAvgPool, {}},
      // Max pools whose window follows from the input size (maxpool kernels; see the shape rule).
      {"globalmaxpool", OpKind::MaxPool, {}},
      {"adaptivemaxpool", OpKind::MaxPool, {{"out", ArgType::IntPair, true}}},
      {"dropout", OpKind::Dropout, {{"p", ArgType::Float, false}}},
      {"dropout2d", OpKind::Dropout, {{"p", ArgType::Float, false}}},
      {"droppath", OpKind::Dropout, {{"p", ArgType::Float, true}}},
      {"lrn", OpKind::LRN, {{"size", ArgType::Int, true}, {"alpha", ArgType::Float, false}, {"beta", ArgType::Float, false}, {"k", ArgType::Float, false}}},
  };
  return s;
}

const LayerSpec* findSpec(const std::string& n) {
  for (const auto& s : specs()) if (n == s.name) return &s;
  return nullptr;
}

const char* typeName(ArgType t) {
  switch (t) {
    case ArgType::Int: return "an integer";
    case ArgType::IntPair: return "an integer or a pair [h, w]";  // conv's padding also takes "same" / "valid"
    case ArgType::Float: return "a number";
    case ArgType::Bool: return "true or false";
    case ArgType::FloatList: return "a list of numbers";
    case ArgType::Choice: return "a string";
    case ArgType::Padding: return "an integer, a pair [h, w] or four sides [top, bottom, left, right]";
  }
  return "?";
}

}  // namespace

bool Elaborator::isBuiltin(const std::string& name) const { return name != "input" && findSpec(name) != nullptr; }

std::vector<std::string> builtinLayerNames() {
  std::vector<std::string> v;
  for (const auto& s : specs()) if (std::string(s.name) != "input") v.push_back(s.name);
  return v;
}

std::string layerForPyTorchName(const std::string& name) {
  std::string low;
  for (char ch : name) low += (char)std::tolower((unsigned char)ch);
  if (low.rfind("nn.", 0) == 0) low = low.substr(3);
  static const std::pair<const char*, const char*> kModules[] = {
      {"conv2d", "conv"}, {"linear", "linear"}, {"batchnorm2d", "batchnorm"}, {"batchnorm1d", "batchnorm"}, {"maxpool2d", "maxpool"},
      {"avgpool2d", "avgpool"}, {"adaptiveavgpool2d", "adaptiveavgpool"}, {"localresponsenorm", "lrn"}, {"relu", "relu"}, {"relu6", "relu6"},
      {"leaky_relu", "leakyrelu"}, {"hard_swish", "hardswish"}, {"hard_sigmoid", "hardsigmoid"}, {"swish", "silu"}, {"dropout", "dropout"},
  };
  for (const auto& [torch, ours] : kModules)
    if (low == torch) return ours;
  for (const auto& s : specs())
    if (low == s.name && std::string(s.name) != "input") return s.name;
  return "";
}

std::vector<std::string> Elaborator::builtinNames() const { return builtinLayerNames(); }

// Arguments of one layer call after binding and type checks.
struct BoundArgs {
  std::map<std::string, Value> v;
  std::map<std::string, SourceLoc> loc;
  bool has(const char* n) const { return v.count(n) > 0; }
};

Tensor Elaborator::layer(const Call& c, Tensor x, Scope& s, ModuleCtx& m, const std::string& seg) {
  const LayerSpec& spec = *findSpec(c.callee);
  const Tensor poison{-1, {}, true};
  BoundArgs a;
  bool ok = true;
  size_t pos = 0;
  bool sawKeyword = false;
  for (const auto& arg : c.args) {
    const ArgSpec* as = nullptr;
    if (arg.name.empty()) {
      if (sawKeyword) { error(arg.loc, "positional argument after a keyword argument"); ok = false; continue; }
      if (pos >= spec.args.size()) {
        std::string list;
        for (const auto& x : spec.args) list += (list.empty() ? "" : ", ") + std::string(x.name);
        if (spec.args.empty())
          error(arg.loc, std::string(spec.name) + " takes no arguments", std::string("write it as '") + spec.name + "'");
        else
          error(arg.loc, std::string(spec.name) + " takes at most " + std::to_string(spec.args.size()) + " argument" +
                             (spec.args.size() == 1 ? "" : "s") + " (" + list + ")");
        ok = false;
        continue;
      }
      as = &spec.args[pos++];
    } else {
      sawKeyword = true;
      for (const auto& x : spec.args) if (arg.name == x.name) as = &x;
      if (!as) {
        std::vector<std::string> names;
        for (const auto& x : spec.args) names.push_back(x.name);
        std::string best = closest(arg.name, names);
        std::string list;
        for (auto& n : names) list += (list.empty() ? "" : ", ") + n;
        error(arg.loc, std::string(spec.name) + " has no argument '" + arg.name + "'",
              !best.empty() ? "did you mean '" + best + "'?" : list.empty() ? std::string(spec.name) + " takes no arguments" : "its arguments are: " + list);
        ok = false;
        continue;
      }
      if (a.has(as->name)) { error(arg.loc, "argument '" + arg.name + "' is given twice"); ok = false; continue; }
    }
    Value v = eval(*arg.value, s);
    if (v.kind == Value::None) { ok = false; continue; }
    SourceLoc vloc = arg.value->loc;
    bool typeOk = true;
    switch (as->type) {
      case ArgType::Int: typeOk = v.kind == Value::Int; break;
      case ArgType::IntPair:
        typeOk = v.kind == Value::Int || (v.kind == Value::List && v.list.size() == 2 && v.list[0].kind == Value::Int && v.list[1].kind == Value::Int) ||
                 (as->choices && v.kind == Value::String);  // conv's padding="same" / "valid"
        break;
      case ArgType::Padding:
        typeOk = v.kind == Value::Int || (as->choices && v.kind == Value::String);
        if (v.kind == Value::List && (v.list.size() == 2 || v.list.size() == 4)) {
          typeOk = true;
          for (auto& e : v.list) typeOk &= e.kind == Value::Int;
        }
        break;
      case ArgType::Float: typeOk = v.isNumber(); break;
      case ArgType::Bool: typeOk = v.kind == Value::Bool; break;
      case ArgType::FloatList:
        typeOk = v.kind == Value::List;
        for (auto& e : v.list) typeOk &= e.isNumber();
        break;
      case ArgType::Choice: typeOk = v.kind == Value::String; break;
    }
    if (!typeOk) {
      error(vloc, "argument '" + std::string(as->name) + "' of " + spec.name + " must be " + typeName(as->type) + ", got " + kindName(v.kind) + " (" + valueStr(v) + ")");
      ok = false;
      continue;
    }
    if (as->type == ArgType::Choice || (as->choices && v.kind == Value::String)) {
      std::vector<std::string> cs = choicesOf(*as);
      if (std::find(cs.begin(), cs.end(), v.s) == cs.end()) {
        std::string list;
        for (auto& x : cs) list += (list.empty() ? "\"" : ", \"") + x + "\"";
        error(vloc, std::string(spec.name) + " " + as->name + " = \"" + v.s + "\" is not one of its choices", "write one of " + list);
        ok = false;
        continue;
      }
    }
    a.v[as->name] = v;
    a.loc[as->name] = vloc;
  }
  for (const auto& as : spec.args)
    if (as.required && !a.has(as.name) && ok) {
      std::string list;
      for (const auto& x : spec.args) if (x.required) list += (list.empty() ? "" : ", ") + std::string(x.name);
      error(c.loc, std::string(spec.name) + " needs argument '" + as.name + "'", std::string("e.g. ") + spec.name + "(" + list + ")");
      ok = false;
    }

  auto getInt = [&](const char* n, int64_t def) { return a.has(n) ? a.v[n].i : def; };
  auto getPair = [&](const char* n, int64_t def, int64_t out[2]) {
    if (!a.has(n)) { out[0] = out[1] = def; return; }
    const Value& v = a.v[n];
    if (v.kind == Value::Int) out[0] = out[1] = v.i;
    else { out[0] = v.list[0].i; out[1] = v.list[1].i; }
  };
  // A Padding argument as (top, left) and (bottom, right).
  auto getSides = [&](const char* n, int64_t begin[2], int64_t end[2]) {
    begin[0] = begin[1] = end[0] = end[1] = 0;
    if (!a.has(n)) return;
    const Value& v = a.v[n];
    if (v.kind == Value::Int) begin[0] = begin[1] = end[0] = end[1] = v.i;
    else if (v.list.size() == 2) begin[0] = end[0] = v.list[0].i, begin[1] = end[1] = v.list[1].i;
    else begin[0] = v.list[0].i, end[0] = v.list[1].i, begin[1] = v.list[2].i, end[1] = v.list[3].i;
  };
  auto getFloat = [&](const char* n, double def) { return a.has(n) ? a.v[n].asDouble() : def; };
  auto getBool = [&](const char* n, bool def) { return a.has(n) ? a.v[n].b : def; };
  // Range check of one argument; reports at the argument.
  auto inRange = [&](const char* n, int64_t lo, int64_t hi, const std::string& why = "") {
    if (!a.has(n)) return true;
    const Value& v = a.v[n];
    std::vector<int64_t> xs;
    if (v.kind == Value::Int) xs.push_back(v.i);
    for (const auto& e : v.list) xs.push_back(e.i);
    for (auto x : xs)
      if (x < lo || x > hi) {
        std::string msg = std::string(spec.name) + " " + n + " = " + std::to_string(x) + " is out of range";
        msg += x < lo ? " (it must be at least " + std::to_string(lo) + ")" : " (the limit is " + std::to_string(hi) + ")";
        error(a.loc[n], msg, x < lo ? why : "");
        ok = false;
        return false;
      }
    return true;
  };

  Attrs at;
  switch (spec.op) {
    case OpKind::Input:
      if (c.callee == "input") {
        inRange("c", 1, kMaxChannels);
        inRange("h", 1, kMaxSpatial);
        inRange("w", 1, kMaxSpatial);
      }
      break;
    case OpKind::Conv:
      inRange("out", 1, kMaxChannels, "a conv needs at least one output channel");
      inRange("kernel", 1, kMaxWindow);
      inRange("stride", 1, kMaxWindow);
      if (!(a.has("padding") && a.v["padding"].kind == Value::String)) inRange("padding", 0, kMaxWindow);
      inRange("dilation", 1, kMaxWindow);
      inRange("groups", 1, kMaxChannels);
      at.out = getInt("out", 1);
      getPair("kernel", 1, at.kernel);
      getPair("stride", 1, at.stride);
      getPair("dilation", 1, at.dilation);
      if (a.has("padding") && a.v["padding"].kind == Value::String) {
        // PyTorch's padding="valid" is 0; "same" keeps H and W at stride 1 with d (k - 1) / 2 on
        // each side; an odd total puts the extra row and column at the end, as PyTorch does.
        at.pad[0] = at.pad[1] = 0;
        if (a.v["padding"].s == "same") {
          if (at.stride[0] != 1 || at.stride[1] != 1) {
            error(a.loc["padding"], "conv padding=\"same\" needs stride 1, as in PyTorch", "give the padding as numbers: padding=(kernel - 1) / 2 for an odd kernel");
            ok = false;
          }
          for (int i = 0; i < 2 && ok; ++i) {
            int64_t total = at.dilation[i] * (at.kernel[i] - 1);
            at.pad[i] = total / 2;
            at.padEnd[i] = total - total / 2;
          }
        }
      } else {
        getSides("padding", at.pad, at.padEnd);
      }
      at.groups = getInt("groups", 1);
      at.bias = getBool("bias", true);
      break;
    case OpKind::ConvTranspose:
      inRange("out", 1, kMaxChannels, "a transposed conv needs at least one output channel");
      inRange("kernel", 1, kMaxWindow);
      inRange("stride", 1, kMaxWindow);
      inRange("padding", 0, kMaxWindow);
      inRange("output_padding", 0, kMaxWindow);
      inRange("dilation", 1, kMaxWindow);
      inRange("groups", 1, kMaxChannels);
      at.out = getInt("out", 1);
      getPair("kernel", 1, at.kernel);
      getPair("stride", 1, at.stride);
      getPair("dilation", 1, at.dilation);
      getPair("padding", 0, at.pad);
      getPair("output_padding", 0, at.outPad);
      at.groups = getInt("groups", 1);
      at.bias = getBool("bias", true);
      for (int i = 0; i < 2 && ok; ++i)
        if (at.outPad[i] >= at.stride[i] && at.outPad[i] >= at.dilation[i]) {
          error(a.loc["output_padding"], "convtranspose output_padding = " + std::to_string(at.outPad[i]) + " must be smaller than its stride (" +
                                             std::to_string(at.stride[i]) + ") or its dilation (" + std::to_string(at.dilation[i]) + ")",
                "PyTorch's rule: output_padding only picks among the output sizes a stride allows");
          ok = false;
        }
      break;
    case OpKind::Upsample: {
      if (a.has("scale") == a.has("size")) {
        error(c.loc, "upsample needs either a scale factor or an output size, not " + std::string(a.has("scale") ? "both" : "neither"),
              "e.g. upsample(2) or upsample(size=[56, 56])");
        ok = false;
        break;
      }
      inRange("size", 1, kMaxSpatial);
      if (a.has("scale")) {
        double sc = getFloat("scale", 1);
        if (!(sc > 0 && sc <= kMaxWindow)) {
          error(a.loc["scale"], "upsample scale = " + valueStr(a.v["scale"]) + " must be positive (at most " + std::to_string(kMaxWindow) + ")");
          ok = false;
        }
        at.upScale[0] = at.upScale[1] = 1.0 / sc;  // PyTorch maps output to input coordinates by 1 / scale_factor
      }
      getPair("size", 0, at.outHW);
      std::string mode = a.has("mode") ? a.v["mode"].s : "nearest";
      at.resample = mode == "bilinear" ? Attrs::Resample::Bilinear : Attrs::Resample::Nearest;
      at.alignCorners = getBool("align_corners", false);
      if (a.has("align_corners") && at.resample == Attrs::Resample::Nearest) {
        error(a.loc["align_corners"], "upsample align_corners applies to mode=\"bilinear\" only", "drop it, or add mode=\"bilinear\"");
        ok = false;
      }
      break;
    }
    case OpKind::Pad:
      inRange("padding", 0, kMaxWindow, "cropping with negative padding is not supported");
      getSides("padding", at.pad, at.padEnd);
      break;
    case OpKind::Linear:
      inRange("out", 1, kMaxChannels, "a linear layer needs at least one output feature");
      at.out = getInt("out", 1);
      at.bias = getBool("bias", true);
      break;
    case OpKind::BatchNorm:
      at.eps = getFloat("eps", 1e-5);
      at.momentum = getFloat("momentum", 0.1);
      if (!(at.eps > 0 && at.eps < 1)) { error(a.loc["eps"], "batchnorm eps must be in (0, 1)"); ok = false; }
      if (!(at.momentum >= 0 && at.momentum <= 1)) { error(a.loc["momentum"], "batchnorm momentum must be in [0, 1]"); ok = false; }
      break;
    case OpKind::GroupNorm:
      inRange("groups", 1, kMaxChannels);
      at.groups = getInt("groups", 1);
      at.eps = getFloat("eps", 1e-5);
      at.bias = getBool("affine", c.callee != "instancenorm");  // nn.InstanceNorm2d's default: affine=False
      if (!(at.eps > 0 && at.eps < 1)) { error(a.loc["eps"], std::string(spec.name) + " eps must be in (0, 1)"); ok = false; }
      break;
    case OpKind::MaxPool:
    case OpKind::AvgPool:
      inRange("kernel", 1, kMaxWindow);
      inRange("stride", 1, kMaxWindow);
      inRange("padding", 0, kMaxWindow);
      inRange("dilation", 1, kMaxWindow);
      getPair("kernel", 1, at.kernel);
      if (a.has("stride")) getPair("stride", 1, at.stride);
      else { at.stride[0] = at.kernel[0]; at.stride[1] = at.kernel[1]; }
      getPair("padding", 0, at.pad);
      getPair("dilation", 1, at.dilation);
      at.ceil = getBool("ceil", false);
      at.countIncludePad = getBool("count_include_pad", true);
      if (ok)
        for (int i = 0; i < 2; ++i)
          if (at.pad[i] * 2 > at.dilation[i] * (at.kernel[i] - 1) + 1) {
            error(a.loc["padding"], std::string(spec.name) + " padding " + std::to_string(at.pad[i]) + " is more than half of the kernel " + std::to_string(at.kernel[i]),
                  "PyTorch requires padding <= kernel / 2");
            ok = false;
            break;
          }
      break;
    case OpKind::AdaptiveAvgPool:
      inRange("out", 1, kMaxSpatial);
      getPair("out", 1, at.outHW);
      break;
    case OpKind::Dropout:
      at.p = getFloat("p", 0.5);
      if (c.callee == "dropout2d") at.dropUnit = Attrs::DropUnit::Channel;
      if (c.callee == "droppath") at.dropUnit = Attrs::DropUnit::Sample;
      if (!(at.p >= 0 && at.p <= 1)) { error(a.loc["p"], std::string(spec.name) + " p = " + valueStr(a.v["p"]) + " must be between 0 and 1"); ok = false; }
      break;
    case OpKind::Activation:
      at.act.name = c.callee == "swish" ? "silu" : spec.name;  // one layer, two names (PyTorch: SiLU)
      // gelu's tanh approximation is a row of its own.
      if (at.act.is("gelu") && a.has("approximate") && a.v["approximate"].s == "tanh") at.act.name = "gelu_tanh";
      for (const auto& as : spec.args)
        if (as.type == ArgType::Float) at.act.args.push_back({as.name, getFloat(as.name, as.def)});
      if (at.act.is("hardtanh") && !(at.act.arg(0) < at.act.arg(1))) {
        char msg[128];
        snprintf(msg, sizeof msg, "hardtanh min = %g must be below max = %g", at.act.arg(0), at.act.arg(1));
        error(a.has("max") ? a.loc["max"] : a.has("min") ? a.loc["min"] : c.loc, msg, "e.g. hardtanh(-1, 1), PyTorch's default");
        ok = false;
      }
      break;
    case OpKind::PReLU:
      inRange("num_parameters", 1, kMaxChannels);
      at.out = getInt("num_parameters", 1);
      at.init = getFloat("init", 0.25);
      break;
    case OpKind::Scale:
      at.init = getFloat("init", 1.0);
      break;
    case OpKind::ChannelShuffle:
      inRange("groups", 1, kMaxChannels);
      at.groups = getInt("groups", 1);
      break;
    case OpKind::Chunk:
      inRange("start", 0, kMaxChannels);
      inRange("length", 1, kMaxChannels);
      at.size = getInt("start", 0);
      at.out = getInt("length", 1);
      break;
    case OpKind::LRN:
      inRange("size", 1, kMaxWindow);
      at.size = getInt("size", 5);
      at.alpha = getFloat("alpha", 1e-4);
      at.beta = getFloat("beta", 0.75);
      at.k = getFloat("k", 1.0);
      break;
    default: break;
  }
  if (!ok) return poison;

  SourceLoc loc = c.loc;
  std::string path = m.path.empty() ? seg : m.path + "." + seg;

  if (c.callee == "input") {
    Dims d{getInt("c", 1)};
    if (a.has("h") != a.has("w")) { error(c.loc, "input needs both h and w, or neither (a flat input)"); return poison; }
    if (a.has("h")) { d.push_back(getInt("h", 1)); d.push_back(getInt("w", 1)); }
    if (!opts_.inputShape.empty()) {
      const Dims& o = opts_.inputShape;
      if (o.size() != d.size() || o[0] != d[0]) {
        diags_.error({}, "--input-shape " + dimsStr(o) + " does not fit input" + dimsStr(d) + " of " + g_->name + " (declared at " + sm_.where(c.loc) + ")",
                     "keep the channel count and the rank; only the image size can change");
        return poison;
      }
      for (auto v : o)
        if (v < 1 || v > kMaxSpatial) { diags_.error({}, "--input-shape " + dimsStr(o) + ": sizes must be between 1 and " + std::to_string(kMaxSpatial)); return poison; }
      d = o;
    }
    int64_t n;
    if (!mulOk(d[0], d.size() == 3 ? d[1] : 1, n) || !mulOk(n, d.size() == 3 ? d[2] : 1, n) || n > kMaxTensorElems) {
      error(c.loc, "input " + dimsStr(d) + " is too large");
      return poison;
    }
    for (const char* key : {"mean", "std"}) {
      if (!a.has(key)) continue;
      std::vector<double>& dst = std::string(key) == "mean" ? g_->mean : g_->std;
      for (auto& e : a.v[key].list) dst.push_back(e.asDouble());
      if ((int64_t)dst.size() != d[0]) {
        error(a.loc[key], std::string(key) + " has " + std::to_string(dst.size()) + " values but the input has " + std::to_string(d[0]) + " channels");
        return poison;
      }
      if (std::string(key) == "std")
        for (double v : dst) if (!(v > 0)) { error(a.loc[key], "std values must be positive"); return poison; }
    }
    int id = addNode(OpKind::Input, "input", {}, d, loc, 0);
    return Tensor{id, d, false};
  }
  if (c.callee == "identity") return x;
  if (x.poison) return poison;

  const Dims& in = x.shape;
  Dims outShape;
  auto needSpatial = [&]() {
    if (in.size() == 3) return true;
    error(loc, std::string(spec.name) + " needs a [C,H,W] input, got " + dimsStr(in),
          "it comes after 'flatten' or a linear layer; move it before them");
    return false;
  };
  auto spatialOut = [&](bool pool) -> bool {
    outShape = {in[0], 0, 0};
    for (int i = 0; i < 2; ++i) {
      int64_t o = pool ? poolOutSize(in[1 + i], at.kernel[i], at.stride[i], at.pad[i], at.dilation[i], at.ceil)
                       : convOutSizeSides(in[1 + i], at.kernel[i], at.stride[i], at.pad[i], at.padEnd[i], at.dilation[i]);
      outShape[1 + i] = std::max<int64_t>(o, 0);
    }
    if (outShape[1] < 1 || outShape[2] < 1) {
      Dims shown = outShape;
      if (spec.op == OpKind::Conv) shown[0] = at.out;
      error(loc, std::string(spec.name) + " output would be " + dimsStr(shown) + ": the input " + dimsStr(in) + " is smaller than the " +
                     std::to_string(at.dilation[0] * (at.kernel[0] - 1) + 1) + "x" + std::to_string(at.dilation[1] * (at.kernel[1] - 1) + 1) + " window",
            "use padding, a smaller kernel or stride, or a larger input");
      return false;
    }
    return true;
  };

  // conv and convtranspose: the optional in_channels check, and groups dividing both channel counts.
  auto channelsFit = [&]() {
    if (a.has("in_channels") && getInt("in_channels", 0) != in[0]) {
      error(a.loc["in_channels"], std::string(spec.name) + " expects " + std::to_string(getInt("in_channels", 0)) + " input channels (in_channels), but its input is " +
                                      dimsStr(in),
            "set in_channels=" + std::to_string(in[0]) + ", or change the layers before it");
      return false;
    }
    if (in[0] % at.groups || at.out % at.groups) {
      error(a.has("groups") ? a.loc["groups"] : loc, std::string(spec.name) + " groups = " + std::to_string(at.groups) + " must divide both the input channels (" +
                                                         std::to_string(in[0]) + ") and the output channels (" + std::to_string(at.out) + ")");
      return false;
    }
    return true;
  };

  int64_t macs = 0;
  std::vector<std::pair<std::string, std::pair<Dims, ParamRole>>> params;
  OpKind op = spec.op;  // a layer may run as another op (linear per_pixel=true: a 1x1 conv)
  switch (spec.op) {
    case OpKind::Conv: {
      if (!needSpatial()) return poison;
      if (!channelsFit()) return poison;
      if (!spatialOut(false)) return poison;
      outShape[0] = at.out;
      int64_t w;
      if (!mulOk(at.out, in[0] / at.groups, w) || !mulOk(w, at.kernel[0] * at.kernel[1], w) || w > kMaxTensorElems) {
        error(loc, "conv weight [" + std::to_string(at.out) + "," + std::to_string(in[0] / at.groups) + "," + std::to_string(at.kernel[0]) + "," +
                       std::to_string(at.kernel[1]) + "] is too large");
        return poison;
      }
      params.push_back({"weight", {{at.out, in[0] / at.groups, at.kernel[0], at.kernel[1]}, ParamRole::Weight}});
      if (at.bias) params.push_back({"bias", {{at.out}, ParamRole::Bias}});
      int64_t o = numel(outShape);
      if (!mulOk(o, in[0] / at.groups * at.kernel[0] * at.kernel[1], macs)) macs = INT64_MAX / 4;
      break;
    }
    case OpKind::ConvTranspose: {
      if (!needSpatial()) return poison;
      if (!channelsFit()) return poison;
      outShape = {at.out, 0, 0};
      for (int i = 0; i < 2; ++i) outShape[1 + i] = convTransposeOutSize(in[1 + i], at.kernel[i], at.stride[i], at.pad[i], at.dilation[i], at.outPad[i]);
      if (outShape[1] < 1 || outShape[2] < 1 || outShape[1] > kMaxSpatial || outShape[2] > kMaxSpatial) {
        error(loc, "convtranspose output would be " + dimsStr(outShape) + " from the input " + dimsStr(in),
              outShape[1] < 1 || outShape[2] < 1 ? "its padding removes more than the kernel adds; use less padding" : "use a smaller stride or kernel");
        return poison;
      }
      int64_t w;
      if (!mulOk(in[0], at.out / at.groups, w) || !mulOk(w, at.kernel[0] * at.kernel[1], w) || w > kMaxTensorElems) {
        error(loc, "convtranspose weight is too large");
        return poison;
      }
      // PyTorch's layout: [in, out / groups, kh, kw] (the conv it is the gradient of has them swapped).
      params.push_back({"weight", {{in[0], at.out / at.groups, at.kernel[0], at.kernel[1]}, ParamRole::Weight}});
      if (at.bias) params.push_back({"bias", {{at.out}, ParamRole::Bias}});
      if (!mulOk(numel(in), at.out / at.groups * at.kernel[0] * at.kernel[1], macs)) macs = INT64_MAX / 4;
      break;
    }
    case OpKind::Upsample: {
      if (!needSpatial()) return poison;
      outShape = {in[0], at.outHW[0], at.outHW[1]};
      if (at.upScale[0] > 0) {
        for (int i = 0; i < 2; ++i) outShape[1 + i] = upsampleOutSize(in[1 + i], 1.0 / at.upScale[i]);
        if (outShape[1] < 1 || outShape[2] < 1 || outShape[1] > kMaxSpatial || outShape[2] > kMaxSpatial) {
          error(a.loc["scale"], "upsample output would be " + dimsStr(outShape) + " from the input " + dimsStr(in), "use a scale that keeps every side between 1 and " + std::to_string(kMaxSpatial));
          return poison;
        }
      }
      break;
    }
    case OpKind::Pad:
      if (!needSpatial()) return poison;
      outShape = {in[0], in[1] + at.pad[0] + at.padEnd[0], in[2] + at.pad[1] + at.padEnd[1]};
      if (outShape[1] > kMaxSpatial || outShape[2] > kMaxSpatial) {
        error(a.loc["padding"], "pad output would be " + dimsStr(outShape) + ", larger than " + std::to_string(kMaxSpatial) + " per side");
        return poison;
      }
      break;
    case OpKind::Linear: {
      if (getBool("per_pixel", false)) {
        // nn.Linear on a channels-last image (ConvNeXt's block: Permute, Linear, Permute): the same
        // numbers as a 1x1 conv, which is what it runs as; only its weight keeps Linear's [out, C].
        if (in.size() != 3) {
          error(a.loc["per_pixel"], "linear per_pixel=true applies to each pixel of a [C,H,W] input, got " + dimsStr(in), "drop per_pixel for a flat input");
          return poison;
        }
        if (a.has("in_features") && getInt("in_features", 0) != in[0]) {
          error(a.loc["in_features"], "linear expects " + std::to_string(getInt("in_features", 0)) + " input features (in_features), but each pixel of " + dimsStr(in) +
                                          " has " + std::to_string(in[0]));
          return poison;
        }
        op = OpKind::Conv;
        outShape = {at.out, in[1], in[2]};
        params.push_back({"weight", {{at.out, in[0]}, ParamRole::Weight}});
        if (at.bias) params.push_back({"bias", {{at.out}, ParamRole::Bias}});
        if (!mulOk(numel(outShape), in[0], macs)) macs = INT64_MAX / 4;
        break;
      }
      if (in.size() != 1) {
        error(loc, "linear expects a flat input, got " + dimsStr(in),
              "insert 'flatten' before it; it would give [" + std::to_string(numel(in)) + "] (or per_pixel=true for a linear over each pixel's channels)");
        return poison;
      }
      if (a.has("in_features") && getInt("in_features", 0) != in[0]) {
        error(a.loc["in_features"], "linear expects " + std::to_string(getInt("in_features", 0)) + " input features (in_features), but its input is " + dimsStr(in),
              "set in_features=" + std::to_string(in[0]) + ", or change the layers before it so they produce " + std::to_string(getInt("in_features", 0)));
        return poison;
      }
      int64_t w;
      if (!mulOk(at.out, in[0], w) || w > kMaxTensorElems) {
        error(loc, "linear weight [" + std::to_string(at.out) + "," + std::to_string(in[0]) + "] is too large");
        return poison;
      }
      outShape = {at.out};
      params.push_back({"weight", {{at.out, in[0]}, ParamRole::Weight}});
      if (at.bias) params.push_back({"bias", {{at.out}, ParamRole::Bias}});
      macs = w;
      break;
    }
    case OpKind::BatchNorm:
      outShape = in;
      if (getBool("affine", true)) {  // nn.BatchNorm2d(C, affine=False) has no weight or bias
        params.push_back({"weight", {{in[0]}, ParamRole::Weight}});
        params.push_back({"bias", {{in[0]}, ParamRole::Bias}});
      }
      params.push_back({"running_mean", {{in[0]}, ParamRole::RunningMean}});
      params.push_back({"running_var", {{in[0]}, ParamRole::RunningVar}});
      params.push_back({"num_batches_tracked", {{}, ParamRole::NumBatchesTracked}});
      break;
    case OpKind::GroupNorm:
      if (c.callee == "instancenorm") {
        if (!needSpatial()) return poison;
        at.groups = in[0];
      } else if (c.callee == "layernorm") {
        // [F]: nn.LayerNorm(F). [C,H,W]: over each pixel's C channels, as torchvision's LayerNorm2d
        // (ConvNeXt) computes it (channels last, then nn.LayerNorm(C)).
        at.groups = 1;
        at.normChannels = in.size() == 3;
      } else if (in[0] % at.groups) {
        error(a.loc["groups"], "groupnorm groups = " + std::to_string(at.groups) + " must divide the input's " + std::to_string(in[0]) + " channels");
        return poison;
      }
      outShape = in;
      if (at.bias) {
        params.push_back({"weight", {{in[0]}, ParamRole::Weight}});
        params.push_back({"bias", {{in[0]}, ParamRole::Bias}});
      }
      break;
    case OpKind::MaxPool:
    case OpKind::AvgPool:
      if (c.callee == "globalmaxpool" || c.callee == "adaptivemaxpool") {
        // nn.AdaptiveMaxPool2d's windows are [floor(i H / o), ceil((i + 1) H / o)). Where o divides
        // H they are the tiles of a maxpool with kernel = stride = H / o, which keeps the max pool's
        // fast paths (the tiled backward, the fold into a batch norm before it); other sizes have
        // windows of two lengths that may overlap, an op of their own.
        if (!needSpatial()) return poison;
        int64_t o[2] = {1, 1};
        if (c.callee == "adaptivemaxpool") {
          if (!inRange("out", 1, kMaxSpatial)) return poison;
          getPair("out", 1, o);
        }
        if (in[1] % o[0] || in[2] % o[1]) {
          op = OpKind::AdaptiveMaxPool;
          at.outHW[0] = o[0];
          at.outHW[1] = o[1];
          outShape = {in[0], o[0], o[1]};
          break;
        }
        for (int i = 0; i < 2; ++i) at.kernel[i] = at.stride[i] = in[1 + i] / o[i];
      }
      if (!needSpatial() || !spatialOut(true)) return poison;
      break;
    case OpKind::AdaptiveAvgPool:
      if (!needSpatial()) return poison;
      outShape = {in[0], at.outHW[0], at.outHW[1]};
      break;
    case OpKind::LRN:
      if (!needSpatial()) return poison;
      outShape = in;
      break;
    case OpKind::Dropout:
      if (at.dropUnit == Attrs::DropUnit::Channel && !needSpatial()) return poison;
      outShape = in;
      break;
    case OpKind::PReLU:
      if (at.out != 1 && at.out != in[0]) {
        error(a.loc["num_parameters"], "prelu num_parameters = " + std::to_string(at.out) + " must be 1 or the input's " + std::to_string(in[0]) +
                                           (in.size() == 3 ? " channels" : " features"),
              "prelu(" + std::to_string(in[0]) + ") learns a slope per channel; prelu one for all");
        return poison;
      }
      outShape = in;
      params.push_back({"weight", {{at.out}, ParamRole::Weight}});
      break;
    case OpKind::Chunk:
      if (!needSpatial()) return poison;
      if (at.size + at.out > in[0]) {
        error(a.loc["length"], "narrow(" + std::to_string(at.size) + ", " + std::to_string(at.out) + ") reaches channel " + std::to_string(at.size + at.out) +
                                   " of an input with " + std::to_string(in[0]),
              "start + length must be at most the input's channels");
        return poison;
      }
      outShape = in;
      outShape[0] = at.out;
      break;
    case OpKind::ChannelShuffle:
      if (!needSpatial()) return poison;
      if (in[0] % at.groups) {
        error(a.loc["groups"], "channelshuffle groups = " + std::to_string(at.groups) + " must divide the input's " + std::to_string(in[0]) + " channels");
        return poison;
      }
      outShape = in;
      break;
    case OpKind::Scale:
      // torchvision's ConvNeXt: `layer_scale`, a [C,1,1] tensor named by its module's attribute,
      // so the parameter is the layer's own name (label it layer_scale), not NAME.weight.
      outShape = in;
      params.push_back({"", {in.size() == 3 ? Dims{in[0], 1, 1} : Dims{in[0]}, ParamRole::Weight}});
      break;
    case OpKind::Flatten:
      outShape = {numel(in)};
      break;
    default:
      outShape = in;
      break;
  }
  int id = addNode(op, path, {x.node}, outShape, loc, m.module);
  Node& n = g_->nodes[id];
  n.attrs = at;
  n.macs = macs;
  for (auto& [suffix, info] : params) {
    ParamInfo p;
    p.name = suffix.empty() ? path : path + "." + suffix;
    p.shape = info.first;
    p.role = info.second;
    p.node = id;
    if (spec.op == OpKind::Scale || spec.op == OpKind::PReLU) p.hasFill = true, p.fill = at.init;
    n.params.push_back((int)g_->params.size());
    g_->params.push_back(std::move(p));
  }
  if (!params.empty() && n.name != path) {
    error(c.loc, "name '" + path + "' is already used by another layer with parameters", "give this layer its own label");
    return poison;
  }
  return Tensor{id, outShape, false};
}

}  // namespace cnnc
