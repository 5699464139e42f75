// pool.cpp: the pool ops (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d).
//
//   MaxPool, AvgPool   x[C,H,W] -> y[C,Ho,Wo]: the maximum or mean of each kh x kw window
//   AdaptiveAvgPool    x[C,H,W] -> y[C,OH,OW]: PyTorch's adaptive windows
//   AdaptiveMaxPool    x[C,H,W] -> y[C,OH,OW]: their maxima (only where they overlap; an adaptive
//                      max pool whose windows tile the input is a MaxPool, compiler/layers.cpp)
//   MaxPoolBack        dy[C,Ho,Wo], x -> dx: each window's gradient to its first maximum
//   AvgPoolBack        dy -> dx
//   AdaptiveAvgBack    dy -> dx
//   AdaptiveMaxBack    dy[C,OH,OW], x -> dx: as MaxPoolBack, over the adaptive windows
#include "pool.h"

#include <limits>

#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

struct PoolFuncs {
  Func out, am;  // am: the max-pool backward kernels' argmax of each window
  RDom w;        // the scatter form's windows
  Func planeSum;  // a global average pool's sum over each plane (CPU)
  RDom plane;
  std::vector<Argument> args;
};

// ---- MaxPool, AvgPool ----

PoolFuncs poolForward(const KernelSpec& k) {
  PoolFuncs f;
  Vars v;
  const Attrs& a = k.attrs;
  int64_t H = k.in[1], W = k.in[2];
  KernelParams p(k);
  ImageParam in = p.tensor("input", k.in);
  f.args = p.args();
  f.out = Func(k.kind == KernelKind::MaxPool ? "maxpool_out" : "avgpool_out");
  RDom r(0, (int)a.kernel[1], 0, (int)a.kernel[0], "r");
  Expr x0 = v.x * (int)a.stride[1] - (int)a.pad[1], y0 = v.y * (int)a.stride[0] - (int)a.pad[0];
  if (k.kind == KernelKind::MaxPool) {
    Func src = BoundaryConditions::constant_exterior(in, -std::numeric_limits<float>::infinity(), {{0, (int)W}, {0, (int)H}});
    f.out(v.x, v.y, v.c, v.n) = maximum(src(x0 + r.x * (int)a.dilation[1], y0 + r.y * (int)a.dilation[0], v.c, v.n));
  } else {
    // PyTorch's divisor: the window clipped to the padded input (count_include_pad) or to the input.
    Func src = BoundaryConditions::constant_exterior(in, 0.0f, {{0, (int)W}, {0, (int)H}});
    Expr x1 = min(x0 + (int)a.kernel[1], (int)(W + a.pad[1])), y1 = min(y0 + (int)a.kernel[0], (int)(H + a.pad[0]));
    Expr padded = (x1 - x0) * (y1 - y0);
    Expr inside = (min(x1, (int)W) - max(x0, 0)) * (min(y1, (int)H) - max(y0, 0));
    Expr div = a.countIncludePad ? padded : inside;
    f.out(v.x, v.y, v.c, v.n) = sum(src(x0 + r.x, y0 + r.y, v.c, v.n)) / cast<float>(div);
  }
  return f;
}

void spatialCpu(PoolFuncs& f, const KernelSpec& k) {
  Vars v;
  scheduleSpatial(f.out, k, v);
}

// ---- AdaptiveAvgPool ----

// Output (ox, oy)'s window, nn.AdaptiveMaxPool2d's and AdaptiveAvgPool2d's: rows
// [floor(oy H / OH), ceil((oy + 1) H / OH)), columns likewise; none is longer than kh x kw.
struct AdaptiveWindow {
  Expr x0, y0, x1, y1;
  int kw, kh;
};

AdaptiveWindow adaptiveWindow(Expr ox, Expr oy, const Dims& in, const Dims& out) {
  int H = (int)in[1], W = (int)in[2], OH = (int)out[1], OW = (int)out[2];
  return {(ox * W) / OW, (oy * H) / OH, ((ox + 1) * W + OW - 1) / OW, ((oy + 1) * H + OH - 1) / OH,
          std::min((W + OW - 1) / OW + 1, W), std::min((H + OH - 1) / OH + 1, H)};
}

// Window w's taps over RDom r (kw x kh): clamped so every tap can be read, the value `outside`
// where a tap is past a shorter window's end.
Expr adaptiveTap(ImageParam in, const AdaptiveWindow& w, const RDom& r, Vars& v, Expr outside) {
  Expr xs = min(w.x0 + r.x, w.x1 - 1), ys = min(w.y0 + r.y, w.y1 - 1);
  return select(w.x0 + r.x < w.x1 && w.y0 + r.y < w.y1, in(xs, ys, v.c, v.n), outside);
}

PoolFuncs adaptiveAvgForward(const KernelSpec& k) {
  PoolFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam in = p.tensor("input", k.in);
  f.args = p.args();
  AdaptiveWindow w = adaptiveWindow(v.x, v.y, k.in, k.out);
  RDom r(0, w.kw, 0, w.kh, "r");
  f.out = Func("adaptiveavg_out");
  int H = (int)k.in[1], W = (int)k.in[2];
  if (k.out[1] == 1 && k.out[2] == 1 && !k.schedule.gpu && H * W >= 256) {
    // A global pool (squeeze-and-excitation's, a classifier's) over planes of 256 pixels or more
    // sums them in vector lanes (laneSum) rather than one float at a time through the window's
    // clamped, tested taps, which read 5 GB/s (96 x 48 x 48 planes at batch 32: 5.4 ms for 28 MB).
    // Smaller planes keep PyTorch's order (row by row): RegNetY's training step at 67 x 45, batch 2,
    // whose batch norms see 12 values per channel in its last stage, moved 20x past its gradient
    // bound with the lane order in its first stage's 17 x 12 squeeze-and-excitation pools.
    f.plane = RDom(0, W, 0, H, "plane");
    f.planeSum = Func("adaptiveavg_sum");
    f.planeSum(v.c, v.n) = 0.0f;
    f.planeSum(v.c, v.n) += in(f.plane.x, f.plane.y, v.c, v.n);
    f.out(v.x, v.y, v.c, v.n) = f.planeSum(v.c, v.n) / (float)(H * W);
    return f;
  }
  f.out(v.x, v.y, v.c, v.n) = sum(adaptiveTap(in, w, r, v, 0.0f)) / cast<float>((w.x1 - w.x0) * (w.y1 - w.y0));
  return f;
}

// Tasks of at least 16K input floats: one task per (channel, image) plane was 16K tasks of 16
// floats for MiniVGG's global pool at batch 128, 1.3 ms of task overhead.
void adaptiveAvgCpu(PoolFuncs& f, const KernelSpec& k) {
  Vars v;
  Var cno("cno"), cni("cni");
  int planes = (int)std::max<int64_t>(1, 16384 / (k.in[1] * k.in[2]));
  f.out.fuse(v.c, v.n, v.cn).split(v.cn, cno, cni, planes, TailStrategy::GuardWithIf).parallel(cno);
  if (f.planeSum.defined()) {
    f.planeSum.compute_at(f.out, cni);
    laneSum(f.planeSum, f.plane, (int)k.in[2], (int)k.in[1]);
  }
}

// ---- AdaptiveMaxPool ----

PoolFuncs adaptiveMaxForward(const KernelSpec& k) {
  PoolFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam in = p.tensor("input", k.in);
  f.args = p.args();
  AdaptiveWindow w = adaptiveWindow(v.x, v.y, k.in, k.out);
  RDom r(0, w.kw, 0, w.kh, "r");
  f.out = Func("adaptivemax_out");
  f.out(v.x, v.y, v.c, v.n) = maximum(adaptiveTap(in, w, r, v, -std::numeric_limits<float>::infinity()));
  return f;
}

// The windows overlap, so the gradient is a scatter over the windows of each (channel, image)
// plane, in window order as PyTorch adds them, planes in parallel (maxPoolBackScatter's form).
// Each window's first maximum in scan order (rows, then columns) gets it, as in PyTorch.
PoolFuncs adaptiveMaxBack(const KernelSpec& k) {
  PoolFuncs f;
  Vars v;
  const Dims& dyd = k.in;   // [C,OH,OW]
  const Dims& dxd = k.out;  // [C,H,W]
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", dyd), x = p.tensor("x", dxd);
  f.args = p.args();
  Var px("px"), py("py");
  AdaptiveWindow q = adaptiveWindow(px, py, dxd, dyd);
  RDom r(0, q.kw, 0, q.kh, "q");
  f.am = Func("adaptivemax_argmax");
  Tuple best = argmax(r, adaptiveTap(x, q, r, v, -std::numeric_limits<float>::infinity()));
  f.am(px, py, v.c, v.n) = best[0] + best[1] * q.kw;
  f.w = RDom(0, (int)dyd[2], 0, (int)dyd[1], "w");
  Expr tap = f.am(f.w.x, f.w.y, v.c, v.n);
  AdaptiveWindow at = adaptiveWindow(f.w.x, f.w.y, dxd, dyd);
  // The clamps only tell bounds inference where the writes land (a maximum is inside its window).
  Expr tx = clamp(at.x0 + tap % q.kw, 0, (int)dxd[2] - 1), ty = clamp(at.y0 + tap / q.kw, 0, (int)dxd[1] - 1);
  f.out = Func("adaptivemax_dx");
  f.out(v.x, v.y, v.c, v.n) = 0.0f;
  f.out(tx, ty, v.c, v.n) += dy(f.w.x, f.w.y, v.c, v.n);
  return f;
}

void adaptiveMaxBackCpu(PoolFuncs& f, const KernelSpec& k) {
  Vars v;
  int W = (int)k.out[2];
  int vec = W >= 16 && k.schedule.lanes >= 16 ? 16 : W >= 8 ? 8 : 1;
  if (vec > 1) f.out.vectorize(v.x, vec, TailStrategy::GuardWithIf);
  f.out.fuse(v.c, v.n, v.cn).parallel(v.cn);
  f.out.update().reorder(f.w.x, f.w.y, v.c, v.n).fuse(v.c, v.n, v.cn).parallel(v.cn);
  f.am.compute_at(f.out, v.cn);
}

// ---- MaxPoolBack ----

// When the windows tile the input (poolTilesInput): pixel (x, y) is tap (x % s, y % s) of window
// (x / s, y / s) and nothing else. The window's first maximum (PyTorch's choice) is found per image,
// and the output runs over windows with the taps unrolled, so every load is a dense vector of
// windows. The general form gathered per pixel from an argmax buffer of the whole batch: 3.8 ms
// for MiniVGG's first pool at batch 128.
PoolFuncs maxPoolBackTiled(const KernelSpec& k) {
  PoolFuncs f;
  Vars v;
  const Attrs& a = k.attrs;
  int kw = (int)a.kernel[1], kh = (int)a.kernel[0];
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", k.in), x = p.tensor("x", k.out);
  f.args = p.args();
  RDom q(0, kw, 0, kh, "q");
  f.am = Func("maxpool_argmax");
  f.out = Func("maxpool_dx");
  Var px("px"), py("py");
  Tuple best = argmax(q, x(px * kw + q.x, py * kh + q.y, v.c, v.n));
  f.am(px, py, v.c, v.n) = best[0] + best[1] * kw;
  f.out(v.x, v.y, v.c, v.n) = select(f.am(v.x / kw, v.y / kh, v.c, v.n) == v.x % kw + (v.y % kh) * kw, dy(v.x / kw, v.y / kh, v.c, v.n), 0.0f);
  return f;
}

void maxPoolBackTiledCpu(PoolFuncs& f, const KernelSpec& k) {
  Vars v;
  int kw = (int)k.attrs.kernel[1], kh = (int)k.attrs.kernel[0];
  int64_t Wo = k.in[2];
  int vec = Wo >= 16 ? 16 : Wo >= 8 ? 8 : Wo >= 4 ? 4 : 1;
  Var qy = splitByWindow(f.out, v, kw, kh, vec);
  f.am.compute_at(f.out, qy);
  if (vec > 1) f.am.vectorize(f.am.args()[0], vec, TailStrategy::GuardWithIf);
  parallelOverPlanes(f.out, v);
}

// Max pools whose windows overlap or have padding (ResNet's 3x3 stride-2 stem pool, GoogLeNet's,
// AlexNet's). The window's first maximum in scan order (rows, then columns) gets the gradient, as
// in PyTorch, which also adds the windows' gradients in window order: here a scatter over the
// windows of each (channel, image) plane, planes in parallel. The gather form (each input summing
// the taps that might have chosen it, with a division and a gather per tap) took 33-37 ms of
// ResNet-18's step at batch 8 for its 3x3 stride-2 pool.
PoolFuncs maxPoolBackScatter(const KernelSpec& k) {
  PoolFuncs f;
  Vars v;
  const Attrs& a = k.attrs;
  const Dims& dyd = k.in;   // [C,Ho,Wo]
  const Dims& dxd = k.out;  // [C,H,W]
  int Ho = (int)dyd[1], Wo = (int)dyd[2], H = (int)dxd[1], W = (int)dxd[2];
  int sx = (int)a.stride[1], sy = (int)a.stride[0], kw = (int)a.kernel[1];
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", dyd), x = p.tensor("x", dxd);
  f.args = p.args();
  Func src = BoundaryConditions::constant_exterior(x, -std::numeric_limits<float>::infinity(), {{0, W}, {0, H}});
  RDom q(0, kw, 0, (int)a.kernel[0], "q");
  f.am = Func("maxpool_argmax");
  Var px("px"), py("py");
  Tuple best = argmax(q, src(px * sx - (int)a.pad[1] + q.x * (int)a.dilation[1], py * sy - (int)a.pad[0] + q.y * (int)a.dilation[0], v.c, v.n));
  f.am(px, py, v.c, v.n) = best[0] + best[1] * kw;
  f.w = RDom(0, Wo, 0, Ho, "w");
  RDom& w = f.w;
  Expr tap = f.am(w.x, w.y, v.c, v.n);
  // A window's maximum is never in its padding (PyTorch keeps every window's start inside), so
  // the clamps only tell bounds inference where the writes land.
  Expr tx = clamp(w.x * sx - (int)a.pad[1] + (tap % kw) * (int)a.dilation[1], 0, W - 1);
  Expr ty = clamp(w.y * sy - (int)a.pad[0] + (tap / kw) * (int)a.dilation[0], 0, H - 1);
  f.out = Func("maxpool_dx");
  f.out(v.x, v.y, v.c, v.n) = 0.0f;
  f.out(tx, ty, v.c, v.n) += dy(w.x, w.y, v.c, v.n);
  return f;
}

void maxPoolBackScatterCpu(PoolFuncs& f, const KernelSpec& k) {
  Vars v;
  int W = (int)k.out[2], Wo = (int)k.in[2];
  int vec = W >= 16 && k.schedule.lanes >= 16 ? 16 : W >= 8 ? 8 : 1;
  if (vec > 1) f.out.vectorize(v.x, vec, TailStrategy::GuardWithIf);
  f.out.fuse(v.c, v.n, v.cn).parallel(v.cn);
  f.out.update().reorder(f.w.x, f.w.y, v.c, v.n).fuse(v.c, v.n, v.cn).parallel(v.cn);
  f.am.compute_at(f.out, v.cn).vectorize(f.am.args()[0], Wo >= 16 && k.schedule.lanes >= 16 ? 16 : 8, TailStrategy::GuardWithIf);
}

// Overlapping windows on CPUs (ResNet's 3x3 stride-2 stem pool, 112x112): pixel x = s m + q - p lies
// in windows m - j, at tap q + j s, for j = 0, 1, ... while that tap is inside the window. With x
// split by s and its phase q unrolled, each window index is m plus a constant and each tap a
// constant, so the gradient is a gather from dense vectors:
//  1. x framed in -inf (xF), each plane once, so the windows' loads are dense (stride-s) vectors;
//  2. each window's first maximum (am) and its dy, both framed (-1 and 0) one window past each edge;
//  3. dx = the windows that chose the pixel, their dy added in PyTorch's window order (rows, then
//     columns), so the sums round as the scatter's did.
// The scatter form added one window at a time with scalar stores: 5.3 ms of ResNet-18's step at
// batch 8 (28% of the memory rate). Where the stride does not divide the input (SqueezeNet's ceil-
// mode pools over 111, 55 and 27) the gather holds too, as each pixel's phase and windows come from
// its own coordinate: SqueezeNet's three pool gradients in its step at batch 16 24.6-26.3 -> 15.2-20.2 ms
// against the scatter (AMD EPYC 26/2, profiled, alternating runs). The scatter stays for GPUs and
// dilated windows.
bool maxPoolBackGathers(const KernelSpec& k) {
  const Attrs& a = k.attrs;
  return !k.schedule.gpu && k.out.size() == 3 && a.dilation[0] == 1 && a.dilation[1] == 1;
}

struct GatherFuncs {
  Func out{"maxpool_dx"}, xF{"maxpool_xframed"}, am{"maxpool_argmax"}, dyF{"maxpool_dyframed"};
  std::vector<Argument> args;
};

GatherFuncs maxPoolBackGather(const KernelSpec& k) {
  GatherFuncs f;
  Vars v;
  const Attrs& a = k.attrs;
  int Ho = (int)k.in[1], Wo = (int)k.in[2], H = (int)k.out[1], W = (int)k.out[2];
  int sx = (int)a.stride[1], sy = (int)a.stride[0], kw = (int)a.kernel[1], kh = (int)a.kernel[0], px = (int)a.pad[1], py = (int)a.pad[0];
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", k.in), x = p.tensor("x", k.out);
  f.args = p.args();
  f.xF(v.x, v.y, v.c, v.n) = BoundaryConditions::constant_exterior(x, -std::numeric_limits<float>::infinity(), {{0, W}, {0, H}})(v.x, v.y, v.c, v.n);
  Var ox("ox"), oy("oy");
  // The first tap (rows, then columns) equal to the window's maximum: the maximum, then one
  // compare per tap, where a tuple argmax carried (index, value) pairs through 9 selects and spilled.
  // A window holding a NaN sends its gradient to its last tap (PyTorch's goes to the NaN); the loss
  // is NaN by then either way.
  std::vector<Expr> taps;
  Expr m;
  for (int ty = 0; ty < kh; ++ty)
    for (int tx = 0; tx < kw; ++tx) {
      taps.push_back(f.xF(ox * sx - px + tx, oy * sy - py + ty, v.c, v.n));
      m = m.defined() ? max(m, taps.back()) : taps.back();
    }
  Expr first = (int)taps.size() - 1;
  for (int i = (int)taps.size() - 2; i >= 0; --i) first = select(taps[i] == m, i, first);
  Expr inside = ox >= 0 && ox < Wo && oy >= 0 && oy < Ho;
  f.am(ox, oy, v.c, v.n) = select(likely(inside), first, -1);
  f.dyF(ox, oy, v.c, v.n) = BoundaryConditions::constant_exterior(dy, 0.0f, {{0, Wo}, {0, Ho}})(ox, oy, v.c, v.n);
  Expr g = 0.0f;
  for (int jy = (kh + sy - 1) / sy - 1; jy >= 0; --jy)
    for (int jx = (kw + sx - 1) / sx - 1; jx >= 0; --jx) {
      Expr tx = (v.x + px) % sx + jx * sx, ty = (v.y + py) % sy + jy * sy;
      Expr wx = (v.x + px) / sx - jx, wy = (v.y + py) / sy - jy;
      g = g + select(tx < kw && ty < kh && f.am(wx, wy, v.c, v.n) == tx + ty * kw, f.dyF(wx, wy, v.c, v.n), 0.0f);
    }
  f.out(v.x, v.y, v.c, v.n) = g;
  return f;
}

void maxPoolBackGatherCpu(GatherFuncs& f, const KernelSpec& k) {
  Vars v;
  const Attrs& a = k.attrs;
  int sx = (int)a.stride[1], sy = (int)a.stride[0];
  int vec = rowVectorWidth(k.out[2] / sx, k.schedule.lanes), wvec = rowVectorWidth(k.in[2], k.schedule.lanes);
  splitByWindow(f.out, v, sx, sy, vec);
  f.out.fuse(v.c, v.n, v.cn).parallel(v.cn);
  auto perPlane = [&](Func g, int gv) {
    g.compute_at(f.out, v.cn);
    if (gv > 1) g.vectorize(g.args()[0], gv, TailStrategy::GuardWithIf);
  };
  perPlane(f.xF, vec);
  perPlane(f.am, wvec);
  perPlane(f.dyF, wvec);
}

// ---- AvgPoolBack ----

// The output position whose window tap (r.x, r.y) lands on input pixel (x, y):
// o * stride = x + pad - tap * dilation, valid when that division is exact and o is in range.
// `ox`, `oy` are clamped, so they can index dy whatever `valid` says.
struct TapSource {
  Expr ox, oy, valid;
};

TapSource tapSource(Vars& v, const RDom& r, const Attrs& a, int64_t Ho, int64_t Wo) {
  Expr tx = v.x + (int)a.pad[1] - r.x * (int)a.dilation[1];
  Expr ty = v.y + (int)a.pad[0] - r.y * (int)a.dilation[0];
  int sx = (int)a.stride[1], sy = (int)a.stride[0];
  Expr ox = tx / sx, oy = ty / sy;  // Halide division floors, so negative tx fails the range test
  Expr valid = tx >= 0 && ty >= 0 && ox < (int)Wo && oy < (int)Ho;
  if (sx > 1) valid = valid && tx % sx == 0;
  if (sy > 1) valid = valid && ty % sy == 0;
  return {clamp(ox, 0, (int)Wo - 1), clamp(oy, 0, (int)Ho - 1), valid};
}

// Each input sums the windows that contain it, each divided by its count.
PoolFuncs avgPoolBack(const KernelSpec& k) {
  PoolFuncs f;
  Vars v;
  const Attrs& a = k.attrs;
  const Dims& dyd = k.in;   // [C,Ho,Wo]
  const Dims& dxd = k.out;  // [C,H,W]
  int64_t Ho = dyd[1], Wo = dyd[2], H = dxd[1], W = dxd[2];
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", dyd);
  f.args = p.args();
  int sx = (int)a.stride[1], sy = (int)a.stride[0];
  RDom r(0, (int)a.kernel[1], 0, (int)a.kernel[0], "r");
  TapSource t = tapSource(v, r, a, Ho, Wo);
  Expr valid = t.valid, cx = t.ox, cy = t.oy;
  Expr x0 = cx * sx - (int)a.pad[1], y0 = cy * sy - (int)a.pad[0];
  Expr x1 = min(x0 + (int)a.kernel[1], (int)(W + a.pad[1])), y1 = min(y0 + (int)a.kernel[0], (int)(H + a.pad[0]));
  Expr padded = (x1 - x0) * (y1 - y0);
  Expr inside = (min(x1, (int)W) - max(x0, 0)) * (min(y1, (int)H) - max(y0, 0));
  Expr div = a.countIncludePad ? padded : inside;
  f.out = Func("avgpool_dx");
  f.out(v.x, v.y, v.c, v.n) = sum(select(valid, dy(cx, cy, v.c, v.n) / cast<float>(div), 0.0f));
  return f;
}

// ---- AdaptiveAvgBack ----

PoolFuncs adaptiveAvgBack(const KernelSpec& k) {
  PoolFuncs f;
  Vars v;
  const Dims& dyd = k.in;
  const Dims& dxd = k.out;
  int64_t OH = dyd[1], OW = dyd[2], H = dxd[1], W = dxd[2];
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", dyd);
  f.args = p.args();
  // Output windows containing row y start at most 1 + OH / H positions before floor(y * OH / H).
  int cy = (int)((OH + H - 1) / H + 2), cx = (int)((OW + W - 1) / W + 2);
  RDom r(0, cx, 0, cy, "r");
  Expr oy = clamp(v.y * (int)OH / (int)H - 1 + r.y, 0, (int)OH - 1), ox = clamp(v.x * (int)OW / (int)W - 1 + r.x, 0, (int)OW - 1);
  Expr rawy = v.y * (int)OH / (int)H - 1 + r.y, rawx = v.x * (int)OW / (int)W - 1 + r.x;
  Expr y0 = (oy * (int)H) / (int)OH, y1 = ((oy + 1) * (int)H + (int)OH - 1) / (int)OH;
  Expr x0 = (ox * (int)W) / (int)OW, x1 = ((ox + 1) * (int)W + (int)OW - 1) / (int)OW;
  Expr inside = rawy == oy && rawx == ox && v.y >= y0 && v.y < y1 && v.x >= x0 && v.x < x1;
  f.out = Func("adaptiveavg_dx");
  f.out(v.x, v.y, v.c, v.n) = sum(select(inside, dy(ox, oy, v.c, v.n) / cast<float>((x1 - x0) * (y1 - y0)), 0.0f));
  return f;
}

}  // namespace

// The forward pools read their input; MaxPoolBack also reads it (x) to find each window's maximum.
ArgNames poolArgs(const KernelSpec&) { return {"input"}; }
ArgNames maxPoolBackArgs(const KernelSpec&) { return {"dy", "x"}; }
ArgNames avgPoolBackArgs(const KernelSpec&) { return {"dy"}; }

Lowered lowerMaxPool(const KernelSpec& k) { return lowerWithSchedules(k, poolForward(k), spatialCpu); }
Lowered lowerAvgPool(const KernelSpec& k) { return lowerWithSchedules(k, poolForward(k), spatialCpu); }
Lowered lowerAdaptiveAvgPool(const KernelSpec& k) { return lowerWithSchedules(k, adaptiveAvgForward(k), adaptiveAvgCpu); }

Lowered lowerMaxPoolBack(const KernelSpec& k) {
  if (poolTilesInput(k.attrs, k.out)) return lowerWithSchedules(k, maxPoolBackTiled(k), maxPoolBackTiledCpu);
  if (maxPoolBackGathers(k)) return lowerWithSchedules(k, maxPoolBackGather(k), maxPoolBackGatherCpu);
  return lowerWithSchedules(k, maxPoolBackScatter(k), maxPoolBackScatterCpu);
}

Lowered lowerAvgPoolBack(const KernelSpec& k) { return lowerWithSchedules(k, avgPoolBack(k), spatialCpu); }
Lowered lowerAdaptiveAvgBack(const KernelSpec& k) { return lowerWithSchedules(k, adaptiveAvgBack(k), spatialCpu); }
// The forward is scheduled as the adaptive average pool is (tasks of whole planes).
Lowered lowerAdaptiveMaxPool(const KernelSpec& k) { return lowerWithSchedules(k, adaptiveMaxForward(k), adaptiveAvgCpu); }
Lowered lowerAdaptiveMaxBack(const KernelSpec& k) { return lowerWithSchedules(k, adaptiveMaxBack(k), adaptiveMaxBackCpu); }

// ---- Plan steps (plan_builder.h) ----

// One kernel each (no fusion), forward and backward. A max pool that folded into the batch norm
// before it (batchnormForward) makes no kernel: its gradient goes to that BN's backward kernels.
void maxPoolPlan(InferenceBuilder& b, const Node& n) { b.single(n, KernelKind::MaxPool); }
void avgPoolPlan(InferenceBuilder& b, const Node& n) { b.single(n, KernelKind::AvgPool); }
void adaptiveAvgPoolPlan(InferenceBuilder& b, const Node& n) { b.single(n, KernelKind::AdaptiveAvgPool); }
void maxPoolForward(TrainingBuilder& b, const Node& n) { b.singleForward(n, KernelKind::MaxPool); }
void avgPoolForward(TrainingBuilder& b, const Node& n) { b.singleForward(n, KernelKind::AvgPool); }
void adaptiveAvgPoolForward(TrainingBuilder& b, const Node& n) { b.singleForward(n, KernelKind::AdaptiveAvgPool); }
void adaptiveMaxPoolPlan(InferenceBuilder& b, const Node& n) { b.single(n, KernelKind::AdaptiveMaxPool); }
void adaptiveMaxPoolForward(TrainingBuilder& b, const Node& n) { b.singleForward(n, KernelKind::AdaptiveMaxPool); }

void maxPoolBackward(TrainingBuilder& b, const BackStep& st) {
  if (b.foldedPools.count(st.m)) {
    if (b.needsGrad(st.xin)) {
      b.contrib[st.xin].push_back(st.dPre);
      b.pooledGrad[st.xin] = st.m;
    }
  } else {
    b.giveInput(st, KernelKind::MaxPoolBack, {{"dy", b.act(st.dPre)}, {"x", b.act(st.x)}}, st.head.attrs);
  }
}
void avgPoolBackward(TrainingBuilder& b, const BackStep& st) { b.giveInput(st, KernelKind::AvgPoolBack, {{"dy", b.act(st.dPre)}}, st.head.attrs); }
void adaptiveAvgPoolBackward(TrainingBuilder& b, const BackStep& st) {
  b.giveInput(st, KernelKind::AdaptiveAvgBack, {{"dy", b.act(st.dPre)}}, st.head.attrs);
}

void adaptiveMaxPoolBackward(TrainingBuilder& b, const BackStep& st) {
  b.giveInput(st, KernelKind::AdaptiveMaxBack, {{"dy", b.act(st.dPre)}, {"x", b.act(st.x)}}, st.head.attrs);
}

}  // namespace cnnc::codegen
