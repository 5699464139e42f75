// weights.cpp: see weights.h.
#include "weights.h"

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <set>

#include "common/weight_packing.h"
#include "safetensors.h"

namespace cnnc::rt {

void initWeights(const Plan& p, uint64_t seed, Weights& w) {
  std::mt19937_64 rng(seed);
  w.f32.assign(p.params.size(), {});
  w.i64.assign(p.params.size(), 0);
  for (size_t i = 0; i < p.params.size(); ++i) {
    const ParamSpec& ps = p.params[i];
    if (ps.isInt64()) continue;
    std::vector<float>& v = w.f32[i];
    v.assign(numel(ps.shape), 0.0f);
    if (ps.hasFill) {  // scale (layer scale), prelu: a constant, as PyTorch initialises them
      std::fill(v.begin(), v.end(), (float)ps.fill);
      continue;
    }
    if (ps.op == "batchnorm") {
      if (ps.role == plan_schema::kRoleWeight || ps.role == plan_schema::kRoleRunningVar) std::fill(v.begin(), v.end(), 1.0f);
      continue;
    }
    double bound = 1.0 / std::sqrt((double)std::max<int64_t>(1, ps.fanIn));
    std::uniform_real_distribution<double> u(-bound, bound);
    for (auto& x : v) x = (float)u(rng);
  }
}

bool loadWeights(const Plan& p, const std::string& path, Weights& w, std::string& err) {
  SafeTensors st;
  if (!st.load(path, err)) return false;
  return weightsFromTensors(p, st, path, w, nullptr, err);
}

namespace {

std::string layerOf(const std::string& name) {
  size_t d = name.rfind('.');
  return d == std::string::npos ? name : name.substr(0, d);
}

std::string joinNames(const std::vector<std::string>& names, size_t most) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < most; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > most) s += ", ... (" + std::to_string(names.size() - most) + " more)";
  return s;
}

}  // namespace

bool loadWeightsForTransfer(const Plan& p, const std::string& path, bool reinitMismatched, uint64_t seed, Weights& w,
                            std::vector<bool>& reinitialised, std::vector<std::string>& notes, std::string& err) {
  SafeTensors st;
  if (!st.load(path, err)) return false;
  Weights out;
  initWeights(p, seed, out);  // what a re-initialised tensor gets: the same values as a run from scratch
  reinitialised.assign(p.params.size(), false);
  std::vector<std::string> hard, mismatched, layers, paramNames;
  std::map<std::string, std::vector<std::string>> perLayer;
  std::set<std::string> known;
  size_t matched = 0;
  for (size_t i = 0; i < p.params.size(); ++i) {
    const ParamSpec& ps = p.params[i];
    known.insert(ps.name);
    paramNames.push_back(ps.name);
    const TensorView* t = st.find(ps.name);
    std::string decl = " (declared at " + ps.where + ")";
    Dims fileShape = t ? Dims(t->shape.begin(), t->shape.end()) : Dims{};
    if (t && fileShape == ps.shape) {
      ++matched;
      if (ps.isInt64()) {
        if (t->dtype != DType::I64) { hard.push_back("tensor '" + ps.name + "' is " + dtypeName(t->dtype) + ", expected I64" + decl); continue; }
        memcpy(&out.i64[i], t->data, sizeof(int64_t));
        continue;
      }
      if (t->dtype != DType::F32) { hard.push_back("tensor '" + ps.name + "' is " + dtypeName(t->dtype) + ", expected F32" + decl); continue; }
      std::vector<float>& v = out.f32[i];
      memcpy(v.data(), t->data, v.size() * sizeof(float));
      for (float x : v)
        if (!std::isfinite(x)) { hard.push_back("tensor '" + ps.name + "' contains NaN or Inf" + decl); break; }
      continue;
    }
    reinitialised[i] = true;
    mismatched.push_back(t ? "'" + ps.name + "': the network needs " + dimsStr(ps.shape) + ", the file has " + dimsStr(fileShape) + decl
                           : "'" + ps.name + "' " + dimsStr(ps.shape) + ": missing from the file" + decl);
    std::string layer = layerOf(ps.name);
    if (!perLayer.count(layer)) layers.push_back(layer);
    perLayer[layer].push_back(ps.name + " " + dimsStr(ps.shape) + (t ? " (file: " + dimsStr(fileShape) + ")" : " (missing)"));
  }
  std::vector<std::string> ignored, fileNames;
  for (const auto& t : st.tensors()) {
    fileNames.push_back(t.name);
    if (!known.count(t.name)) ignored.push_back(t.name);
  }
  auto listed = [](const std::vector<std::string>& lines) {
    std::string s;
    for (size_t k = 0; k < lines.size(); ++k) {
      if (k == 20) { s += "\n  ... and " + std::to_string(lines.size() - 20) + " more"; break; }
      s += "\n  " + lines[k];
    }
    return s;
  };
  if (matched == 0) {
    err = path + ": none of its " + std::to_string(fileNames.size()) + " tensors matches a parameter of network " + p.net + " (" + p.source +
          ") by name and shape: is it the right file?\n  the file has: " + (fileNames.empty() ? std::string("(nothing)") : joinNames(fileNames, 6)) +
          "\n  the network has: " + joinNames(paramNames, 6);
    return false;
  }
  if (!hard.empty()) {
    err = path + ": the weights do not fit network " + p.net + " (" + p.source + "):" + listed(hard);
    return false;
  }
  if (!mismatched.empty() && !reinitMismatched) {
    err = path + ": " + std::to_string(mismatched.size()) + " tensor" + (mismatched.size() == 1 ? "" : "s") + " of network " + p.net + " (" + p.source +
          ") " + (mismatched.size() == 1 ? "is" : "are") + " missing from the file or shaped differently, in layer" + (layers.size() == 1 ? " " : "s ") +
          joinNames(layers, 12) + ":" + listed(mismatched) +
          "\npass --reinit-mismatched to re-initialise " + (mismatched.size() == 1 ? "it" : "them") + " at random (from --seed), e.g. for a new classification head";
    return false;
  }
  notes.push_back("loaded " + std::to_string(matched) + " of " + std::to_string(p.params.size()) + " tensors of network " + p.net + " from " + path);
  if (!ignored.empty())
    notes.push_back("ignored " + std::to_string(ignored.size()) + " tensor" + (ignored.size() == 1 ? "" : "s") + " of " + path + " that network " + p.net +
                    " does not have: " + joinNames(ignored, 8));
  for (size_t k = 0; k < layers.size(); ++k) {
    if (k == 20) { notes.push_back("... and " + std::to_string(layers.size() - 20) + " more re-initialised layers"); break; }
    std::string s;
    for (const auto& t : perLayer[layers[k]]) s += (s.empty() ? "" : ", ") + t;
    notes.push_back("re-initialised layer '" + layers[k] + "' at random (--reinit-mismatched, --seed " + std::to_string(seed) + "): " + s);
  }
  w = std::move(out);
  return true;
}

bool weightsFromTensors(const Plan& p, const SafeTensors& st, const std::string& path, Weights& w,
                        std::map<std::string, std::vector<float>>* extra, std::string& err) {
  std::vector<std::string> problems;
  std::set<std::string> expected;
  Weights out;
  out.f32.assign(p.params.size(), {});
  out.i64.assign(p.params.size(), 0);
  for (size_t i = 0; i < p.params.size(); ++i) {
    const ParamSpec& ps = p.params[i];
    expected.insert(ps.name);
    const TensorView* t = st.find(ps.name);
    std::string decl = " (declared at " + ps.where + ")";
    if (!t) { problems.push_back("missing tensor '" + ps.name + "' " + dimsStr(ps.shape) + decl); continue; }
    if (Dims(t->shape.begin(), t->shape.end()) != ps.shape) {
      problems.push_back("tensor '" + ps.name + "' has shape " + dimsStr(Dims(t->shape.begin(), t->shape.end())) + " in the file, but the network needs " +
                         dimsStr(ps.shape) + decl);
      continue;
    }
    if (ps.isInt64()) {
      if (t->dtype != DType::I64) { problems.push_back("tensor '" + ps.name + "' is " + dtypeName(t->dtype) + ", expected I64" + decl); continue; }
      int64_t v;
      memcpy(&v, t->data, sizeof v);
      out.i64[i] = v;
      continue;
    }
    if (t->dtype != DType::F32) { problems.push_back("tensor '" + ps.name + "' is " + dtypeName(t->dtype) + ", expected F32" + decl); continue; }
    std::vector<float>& v = out.f32[i];
    // One copy, not a zero fill and then a copy (VGG-11's 531 MB: the fill was a third of `infer`'s
    // start); tensors read from a regular file sit in aligned slots.
    if (reinterpret_cast<uintptr_t>(t->data) % alignof(float) == 0) {
      const float* src = reinterpret_cast<const float*>(t->data);
      v.assign(src, src + numel(ps.shape));
    } else {
      v.resize(numel(ps.shape));
      memcpy(v.data(), t->data, v.size() * sizeof(float));
    }
    for (float x : v)
      if (!std::isfinite(x)) { problems.push_back("tensor '" + ps.name + "' contains NaN or Inf" + decl); break; }
  }
  for (const auto& t : st.tensors()) {
    if (expected.count(t.name)) continue;
    if (!extra) {
      problems.push_back("unexpected tensor '" + t.name + "': network " + p.net + " has no such parameter");
    } else if (t.dtype != DType::F32) {
      problems.push_back("extra tensor '" + t.name + "' must be F32");
    } else {
      std::vector<float>& v = (*extra)[t.name];
      v.resize(t.bytes / sizeof(float));
      memcpy(v.data(), t.data, t.bytes);
    }
  }
  if (!problems.empty()) {
    err = path + ": the weights do not match network " + p.net + " (" + p.source + "):";
    size_t shown = 0;
    for (const auto& m : problems) {
      if (++shown > 20) { err += "\n  ... and " + std::to_string(problems.size() - 20) + " more"; break; }
      err += "\n  " + m;
    }
    return false;
  }
  w = std::move(out);
  return true;
}

bool saveWeights(const Plan& p, const Weights& w, const std::string& path, std::string& err) {
  std::vector<TensorOut> ts;
  for (size_t i = 0; i < p.params.size(); ++i) {
    const ParamSpec& ps = p.params[i];
    if (ps.isInt64()) ts.push_back({ps.name, DType::I64, ps.shape, &w.i64[i], sizeof(int64_t)});
    else ts.push_back({ps.name, DType::F32, ps.shape, w.f32[i].data(), w.f32[i].size() * sizeof(float)});
  }
  return writeSafeTensors(path, ts, {{"format", "pt"}, {"cnnc.net", p.net}}, err);
}

static std::vector<std::vector<float>> deriveUnpacked(const Plan& p, const Weights& w, Weights* movable);

static std::vector<std::vector<float>> derivePacked(const Plan& p, const Weights& w, Weights* movable) {
  std::vector<std::vector<float>> out = deriveUnpacked(p, w, movable);
  for (size_t i = 0; i < p.consts.size(); ++i) {
    if (p.consts[i].pack == plan_schema::ConstPack::None) continue;
    // Rearranged for its kernel (common/weight_packing.h): in blocks of output channels, or
    // transformed for Winograd.
    std::vector<float> t(numel(p.consts[i].shape));
    packConvWeight(p.consts[i].pack, out[i].data(), (int64_t)out[i].size(), t.data(), p.consts[i].shape);
    out[i].swap(t);
  }
  return out;
}

std::vector<std::vector<float>> deriveConsts(const Plan& p, const Weights& w) { return derivePacked(p, w, nullptr); }
std::vector<std::vector<float>> deriveConsts(const Plan& p, Weights&& w) { return derivePacked(p, w, &w); }

// The constants in their natural layout ([O,C,kh,kw] for conv weights). With `movable` (w itself,
// which the caller gives up), a parameter that is one constant and nothing else is moved, not copied.
static std::vector<std::vector<float>> deriveUnpacked(const Plan& p, const Weights& w, Weights* movable) {
  using plan_schema::ConstKind;
  std::vector<int> reads(w.f32.size(), 0);  // constants reading each parameter
  for (const ConstSpec& c : p.consts)
    for (int q : {c.kind == ConstKind::Param ? c.param : -1, c.bnMean, c.bnVar, c.bnW, c.bnB, c.convW, c.convB})
      if (q >= 0 && q < (int)reads.size()) ++reads[q];
  std::vector<std::vector<float>> out(p.consts.size());
  for (size_t i = 0; i < p.consts.size(); ++i) {
    const ConstSpec& c = p.consts[i];
    std::vector<float>& v = out[i];
    if (c.kind == ConstKind::Param) {
      if (movable && reads[c.param] == 1) v = std::move(movable->f32[c.param]);
      else v = w.f32[c.param];
      continue;
    }
    if (c.kind == ConstKind::Zeros) { v.assign(numel(c.shape), 0.0f); continue; }
    if (c.kind == ConstKind::Ones) { v.assign(numel(c.shape), 1.0f); continue; }
    // BN in inference: y = (x - mean) * gamma / sqrt(var + eps) + beta = x * scale + shift
    // (gamma 1 and beta 0 for batchnorm(affine=false), which has neither).
    const auto& m = w.f32[c.bnMean];
    const auto& var = w.f32[c.bnVar];
    size_t C = m.size();
    std::vector<double> scale(C), shift(C);
    for (size_t k = 0; k < C; ++k) {
      scale[k] = (c.bnW >= 0 ? w.f32[c.bnW][k] : 1.0) / std::sqrt((double)var[k] + c.eps);
      shift[k] = (c.bnB >= 0 ? w.f32[c.bnB][k] : 0.0) - m[k] * scale[k];
    }
    if (c.kind == ConstKind::BNScale) { v.assign(scale.begin(), scale.end()); continue; }
    if (c.kind == ConstKind::BNShift) { v.assign(shift.begin(), shift.end()); continue; }
    if (c.kind == ConstKind::FoldConvBN && !c.foldBias) {
      v = w.f32[c.convW];
      size_t per = v.size() / C;
      for (size_t k = 0; k < C; ++k)
        for (size_t j = 0; j < per; ++j) v[k * per + j] = (float)(v[k * per + j] * scale[k]);
      continue;
    }
    // fold_bias: conv bias (or 0) scaled, plus the BN shift.
    v.resize(C);
    for (size_t k = 0; k < C; ++k) v[k] = (float)((c.convB >= 0 ? w.f32[c.convB][k] : 0.0) * scale[k] + shift[k]);
  }
  return out;
}

}  // namespace cnnc::rt
