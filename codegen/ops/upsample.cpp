// upsample.cpp: nn.Upsample (F.interpolate) in modes nearest and bilinear, with align_corners,
// forward and input gradient.
//
//   Upsample      x[C,H,W] -> y[C,Ho,Wo]
//                 y(ox, oy) = sum over taps i, j of x(ix(ox, i), iy(oy, j)) * wx(ox, i) * wy(oy, j)
//   UpsampleBack  dy[C,Ho,Wo] -> dx[C,H,W]
//                 dx(x, y) = sum over (ox, a) with ix(ox, a) = x, (oy, b) with iy(oy, b) = y of
//                            dy(ox, oy) * wx(ox, a) * wy(oy, b)
//
// Both modes are separable: per axis, each output position reads 1 (nearest) or 2 (bilinear) input
// positions with fixed weights. Shapes are static, so those taps are computed here, once, in
// float32 by PyTorch's own formulas (aten/src/ATen/native/UpSample.h: area_pixel_compute_scale,
// area_pixel_compute_source_index, guard_index_and_lambda, nearest_idx) and embedded in the
// kernel as small tables: the indices then agree with PyTorch's bit for bit, including the
// float32 rounding of the scale. The gradient inverts the tables into a gather (each input
// position lists the outputs that read it), so it vectorises and never scatters.
#include <algorithm>
#include <cmath>

#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

// One axis: for each output position, `taps` (input index, weight) pairs.
struct AxisTaps {
  int taps = 1;
  std::vector<int> idx;     // [out][taps]
  std::vector<float> wt;
};

AxisTaps axisTaps(int in, int out, const Attrs& a, int axis) {
  AxisTaps t;
  bool bilinear = a.resample == Attrs::Resample::Bilinear;
  t.taps = bilinear ? 2 : 1;
  t.idx.assign((size_t)out * t.taps, 0);
  t.wt.assign((size_t)out * t.taps, 0.0f);
  // compute_scales_value: 1 / scale_factor when one was given, else in / out (float32).
  float scale = a.upScale[axis] > 0 ? (float)a.upScale[axis] : (float)in / (float)out;
  for (int o = 0; o < out; ++o) {
    if (!bilinear) {
      int i = out == in ? o : out == 2 * in ? o >> 1 : std::min((int)std::floor((float)o * scale), in - 1);
      t.idx[o] = i;
      t.wt[o] = 1.0f;
      continue;
    }
    float s = a.alignCorners ? (out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f) : scale;
    float real = a.alignCorners ? s * (float)o : std::max(s * ((float)o + 0.5f) - 0.5f, 0.0f);
    int i0 = std::min((int)std::floor(real), in - 1);
    float l1 = std::min(std::max(real - (float)i0, 0.0f), 1.0f);
    int i1 = i0 + (i0 < in - 1 ? 1 : 0);
    t.idx[2 * o] = i0, t.wt[2 * o] = 1.0f - l1;
    t.idx[2 * o + 1] = i1, t.wt[2 * o + 1] = l1;
  }
  return t;
}

// The transpose of `t`: for each input position, the (output index, weight) pairs that read it,
// padded to the largest count with weight 0 (index 0, a valid read).
AxisTaps invert(const AxisTaps& t, int in) {
  int out = (int)t.idx.size() / t.taps;
  std::vector<std::vector<std::pair<int, float>>> lists(in);
  for (int o = 0; o < out; ++o)
    for (int k = 0; k < t.taps; ++k) lists[t.idx[o * t.taps + k]].push_back({o, t.wt[o * t.taps + k]});
  AxisTaps r;
  r.taps = 1;
  for (auto& l : lists) r.taps = std::max(r.taps, (int)l.size());
  r.idx.assign((size_t)in * r.taps, 0);
  r.wt.assign((size_t)in * r.taps, 0.0f);
  for (int i = 0; i < in; ++i)
    for (size_t k = 0; k < lists[i].size(); ++k) r.idx[i * r.taps + k] = lists[i][k].first, r.wt[i * r.taps + k] = lists[i][k].second;
  return r;
}

// The tables as constant Halide buffers indexed (position, tap).
struct Tables {
  Buffer<int32_t> idx;
  Buffer<float> wt;
  int taps;
};

Tables tables(const AxisTaps& t, const std::string& name) {
  int n = (int)t.idx.size() / t.taps;
  Tables b{Buffer<int32_t>(n, t.taps, name + "_idx"), Buffer<float>(n, t.taps, name + "_wt"), t.taps};
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < t.taps; ++k) b.idx(i, k) = t.idx[i * t.taps + k], b.wt(i, k) = t.wt[i * t.taps + k];
  return b;
}

struct ResampleFuncs {
  Func out;
  std::vector<Argument> args;
};

// A table's index, clamped to [0, n) so that Halide can bound the reads (the values already are).
Expr at(const Tables& t, Expr pos, int tap, int n) { return clamp(t.idx(pos, tap), 0, n - 1); }

// out(x, y) = sum over (i, j) of src(X.idx(x, i), Y.idx(y, j)) * X.wt(x, i) * Y.wt(y, j), rows
// weighted last as PyTorch's bilinear kernel sums them.
Expr separable(ImageParam src, const Tables& X, const Tables& Y, int W, int H, Vars& v) {
  Expr total;
  for (int j = 0; j < Y.taps; ++j) {
    Expr row;
    for (int i = 0; i < X.taps; ++i) {
      Expr term = src(at(X, v.x, i, W), at(Y, v.y, j, H), v.c, v.n);
      if (X.taps > 1) term = term * X.wt(v.x, i);
      row = row.defined() ? row + term : term;
    }
    if (Y.taps > 1) row = row * Y.wt(v.y, j);
    total = total.defined() ? total + row : row;
  }
  return total;
}

ResampleFuncs upsampleAlgorithm(const KernelSpec& k) {
  ResampleFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam x = p.tensor("input", k.in);
  f.args = p.args();
  int H = (int)k.in[1], W = (int)k.in[2], Ho = (int)k.out[1], Wo = (int)k.out[2];
  Tables X = tables(axisTaps(W, Wo, k.attrs, 1), "upx"), Y = tables(axisTaps(H, Ho, k.attrs, 0), "upy");
  f.out = Func("upsample_out");
  f.out(v.x, v.y, v.c, v.n) = separable(x, X, Y, W, H, v);
  return f;
}

ResampleFuncs upsampleBackAlgorithm(const KernelSpec& k) {
  ResampleFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", k.in);  // [C,Ho,Wo]
  f.args = p.args();
  int Ho = (int)k.in[1], Wo = (int)k.in[2], H = (int)k.out[1], W = (int)k.out[2];
  Tables X = tables(invert(axisTaps(W, Wo, k.attrs, 1), W), "upbx"), Y = tables(invert(axisTaps(H, Ho, k.attrs, 0), H), "upby");
  // Padded entries carry weight 0, so every term is weighted here, also in nearest mode.
  Expr total;
  for (int j = 0; j < Y.taps; ++j)
    for (int i = 0; i < X.taps; ++i) {
      Expr term = dy(at(X, v.x, i, Wo), at(Y, v.y, j, Ho), v.c, v.n) * (X.wt(v.x, i) * Y.wt(v.y, j));
      total = total.defined() ? total + term : term;
    }
  f.out = Func("upsample_dx");
  f.out(v.x, v.y, v.c, v.n) = total;
  return f;
}

void resampleCpu(ResampleFuncs& f, const KernelSpec& k) {
  Vars v;
  scheduleSpatial(f.out, k, v);
}

}  // namespace

ArgNames upsampleArgs(const KernelSpec&) { return {"input"}; }
ArgNames upsampleBackArgs(const KernelSpec&) { return {"dy"}; }

Lowered lowerUpsample(const KernelSpec& k) { return lowerWithSchedules(k, upsampleAlgorithm(k), resampleCpu); }
Lowered lowerUpsampleBack(const KernelSpec& k) { return lowerWithSchedules(k, upsampleBackAlgorithm(k), resampleCpu); }

// ---- Plan steps (plan_builder.h) ----

void upsamplePlan(InferenceBuilder& b, const Node& n) { b.single(n, KernelKind::Upsample); }

void upsampleForward(TrainingBuilder& b, const Node& n) { b.singleForward(n, KernelKind::Upsample); }

void upsampleBackward(TrainingBuilder& b, const BackStep& st) { b.giveInput(st, KernelKind::UpsampleBack, {{"dy", b.act(st.dPre)}}, st.head.attrs); }

}  // namespace cnnc::codegen
