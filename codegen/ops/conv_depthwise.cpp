// conv_depthwise.cpp: depthwise convs (one input channel per output channel) of stride 1 whose
// output rows are as long as their input's (MobileNet's, EfficientNet's and ConvNeXt's, "same"
// padding): forward, input gradient and weight gradient, each walking a whole H x W plane as one
// flat row (Schedule::flat 1-3; the general forms are in conv.cpp). Also the direct form of any
// depthwise conv and stride-1 input gradient (Schedule::flat 4), which reads its input in place.
//
//   Conv            x[C,H,W], w[C,1,kh,kw], b[C] (, residual) -> y[C,H',W]
//   ConvBackData    dy[C,H',W], w -> dx[C,H,W]: the same walk with the taps mirrored
//   ConvBackWeight  dy, x -> dw[C,1,kh,kw] (summed over the batch); also for grouped convs,
//                   dw[O,C/g,kh,kw], one input channel of the group at a time, and any stride
//                   (x split into stride x stride phases, each a stride-1 walk)
#include "conv.h"
#include "gpu.h"
#include "ops.h"

namespace cnnc::codegen {

bool depthwiseDirectApplies(const KernelSpec& k) {
  const Attrs& a = k.attrs;
  bool kind = k.kind == KernelKind::Conv || (k.kind == KernelKind::ConvBackData && a.stride[0] == 1 && a.stride[1] == 1);
  return kind && k.in.size() == 3 && isDepthwise(k.in[0], k.out[0], a.groups) && k.out[2] >= 4 && !k.schedule.gpu && !k.schedule.autoBatch;
}

bool depthwiseFlatApplies(const KernelSpec& k) {
  const Attrs& a = k.attrs;
  // Weight gradients of grouped convs too (RegNet's, ShuffleNet's): in is x, extraIns[0] is dy.
  if (k.kind == KernelKind::ConvBackWeight) return k.in.size() == 3 && !k.extraIns.empty() && a.groups > 1;
  return (k.kind == KernelKind::Conv || k.kind == KernelKind::ConvBackData) && k.in.size() == 3 && isDepthwise(k.in[0], k.out[0], a.groups) &&
         a.stride[0] == 1 && a.stride[1] == 1 && k.out[2] == k.in[2];
}

int depthwiseFlatTask(const Schedule& s, int64_t C, int64_t plane) {
  return (int)std::max<int64_t>(1, std::min<int64_t>(C, s.task > 0 ? s.task : 16384 / std::max<int64_t>(1, plane)));
}

// Fused by default only for rows narrower than 8 (see convDepthwiseFlatCpu); never for a plane
// smaller than one vector.
bool depthwiseFlatFused(const Schedule& s, int64_t W, int64_t plane, int vec) { return plane >= vec && (s.flat == 3 || (s.flat == 1 && W < 8)); }

namespace {

// ---- Conv and ConvBackData ----

// Rows of 7 or 14 pixels (MobileNet's and EfficientNet's late layers, 960 and 1152 channels) fill
// 7 or 14 of a vector's 16 lanes, and every row ends in a tail. When the output rows are as long
// as the input's (stride 1, "same" padding), output pixel i = y W + x reads, for tap (kx, ky), the
// input at flat index i + (ky dy - pt) W + (kx dx - pl): the whole plane is one row of H W pixels
// (49 for 7x7: 4 vectors instead of 7 part-filled ones). The algorithm, per (channel, image):
//  1. src: the plane copied flat, with pt rows (and pl pixels) of zeros before it and zeros after.
//  2. acc(i) = b + sum over taps of w * mask(i, kx) * src(i + ky dy W + kx dx), one expression (no
//     update), so its vectors stay in registers; mask(i, kx) is 0 where tap kx of pixel i would
//     read the row above or below through the flat index (the left and right padding), else 1.
//  3. out(x, y) = act(acc(y W + x) (+ residual)), stored row by row, or, for rows narrower than 8
//     (7x7 planes), over x and y fused, as full vectors (the tensors are dense, and Halide folds
//     (i / W) W + i % W back into i). The last vector of a row or plane is shifted inwards to end
//     at its end, so it rewrites a few pixels rather than needing a guarded tail.
// Why not a guarded tail: with 49 pixels (a tail of one lane) and an activation that reads its
// input twice (hardswish), Halide 14 dropped the guard and stored a whole vector: 15 floats past
// each plane, past the output's end in MobileNetV3 at 224x224, into a live tensor (found with
// CNNC_CHECK_WRITES, runtime/executor.cpp; reproduced alone for a row of 17 or 9 floats too, and
// gradcheck's row_tails and plane_tails keep those shapes under the check). The input copy in (1)
// stays row by row: Halide allows no shifted tail for an update's loop.
// Rows against fused: 960 channels at 7x7 and batch 32, 1.5-2.0 ms against 1.4-1.7 fused.
struct FlatConvFuncs {
  Func out{"conv_out"}, acc{"dwflat_acc"}, src{"dwflat_src"}, mask{"dwflat_mask"};
  std::vector<Argument> args;
};

FlatConvFuncs convDepthwiseFlat(const KernelSpec& k) {
  FlatConvFuncs f;
  Vars v;
  const Attrs& a = k.attrs;
  // The forward conv reads input (x + kx dx - pl, y + ky dy - pt); its input gradient (ConvBackData)
  // reads dy at (x + pl - kx dx, y + pt - ky dy), the same walk with the taps mirrored.
  bool back = k.kind == KernelKind::ConvBackData;
  int sign = back ? -1 : 1;
  int C = (int)k.in[0], H = (int)k.in[1], W = (int)k.in[2];
  int kh = (int)a.kernel[0], kw = (int)a.kernel[1], dy = (int)a.dilation[0], dx = (int)a.dilation[1], pt = (int)a.pad[0], pl = (int)a.pad[1];
  auto offX = [&](int kx) { return sign * (kx * dx - pl); };
  auto offY = [&](int ky) { return sign * (ky * dy - pt); };
  int S = 0;  // src's offset: no tap of pixel 0 reads before src(0)
  for (int ky = 0; ky < kh; ++ky)
    for (int kx = 0; kx < kw; ++kx) S = std::max(S, -(offY(ky) * W + offX(kx)));
  KernelParams p(k);
  ImageParam in = p.tensor(back ? "dy" : "input", k.in);
  ImageParam w = p.fixed("weight", {C, 1, kh, kw});
  Var i("i"), t("t");
  // Zeros, then the rows copied in. (A pure src(i) = in(q % W, q / W) with q = i - offset made a
  // gather of each vector: Halide rewrote the offset differently in the % and the /, and did not
  // fold them back into q.)
  RDom rows(0, W, 0, H, "rows");
  f.src(i, v.c, v.n) = 0.0f;
  f.src(S + rows.y * W + rows.x, v.c, v.n) = in(rows.x, rows.y, v.c, v.n);
  Expr col = i % W + sign * (t * dx - pl);
  f.mask(i, t) = select(col >= 0 && col < W, 1.0f, 0.0f);
  // Each tap is masked on its own. (Summing a column's taps first and masking once, 2 multiplies
  // per vector for 3x3 instead of 6, changed the rounding, and step.shufflenet_v2_x1_0 then failed
  // in its last unit and conv5 only, with the loss equal to 1e-7: the mark of a ReLU input near zero
  // deciding the other way. This order passes.)
  Expr sum = back ? Expr(0.0f) : Expr(p.fixed("bias", {C})(v.c));
  for (int ky = 0; ky < kh; ++ky)
    for (int kx = 0; kx < kw; ++kx) {
      Expr tap = f.src(i + S + offY(ky) * W + offX(kx), v.c, v.n) * w(kx, ky, 0, v.c);
      sum = sum + (offX(kx) != 0 ? tap * f.mask(i, kx) : tap);  // the centre column never leaves its row
    }
  f.acc(i, v.c, v.n) = sum;
  Expr val = f.acc(v.y * W + v.x, v.c, v.n);
  if (k.residual) val = val + p.tensor("residual", k.out)(v.x, v.y, v.c, v.n);
  f.args = p.args();
  f.out(v.x, v.y, v.c, v.n) = applyAct(val, k.act);
  return f;
}

// Channels in tasks of at least 16K output floats (or Schedule::task channels); src and acc per
// channel, in the core's cache.
void convDepthwiseFlatCpu(FlatConvFuncs& f, const KernelSpec& k) {
  Vars v;
  Var co("co"), ci("ci");
  const Schedule& sc = k.schedule;
  int64_t plane = k.out[1] * k.out[2];
  int vec = (sc.vec == 8 || sc.vec == 16) && sc.vec <= std::max(sc.lanes, 8) ? sc.vec : sc.lanes >= 16 ? 16 : 8;
  int tile = depthwiseFlatTask(sc, k.out[0], plane);
  f.out.split(v.c, co, ci, tile, TailStrategy::GuardWithIf).reorder(v.x, v.y, ci, co, v.n);
  int ow = k.out[2] >= 16 ? 16 : k.out[2] >= 8 ? 8 : 4;
  // Fused only for rows narrower than 8 (7x7 planes): rows of 8 to 15 already store an 8-lane
  // vector and a tail, and stored fused, MobileNetV2's 14x14 depthwise convs went 0.95-1.45 ->
  // 1.03-1.55 ms at batch 32 (A/B, same run), while its 7x7 ones gained (0.70-0.90 -> 0.67-0.74).
  bool fused = depthwiseFlatFused(sc, k.out[2], plane, vec);
  Var xy("xy");
  if (fused) f.out.fuse(v.x, v.y, xy).vectorize(xy, vec, TailStrategy::ShiftInwards);
  else f.out.vectorize(v.x, ow, k.out[2] >= ow ? TailStrategy::ShiftInwards : TailStrategy::GuardWithIf);
  f.out.specialize(f.out.output_buffer().dim(3).extent() >= 8).parallel(v.n);
  f.out.parallel(co);
  Var i = f.acc.args()[0];
  f.src.compute_at(f.out, ci).vectorize(f.src.args()[0], vec);
  RVar rx(f.src.update().get_schedule().rvars()[0].var);
  // Row y's pixels land at distinct flat indices (x < W), which Halide cannot see in y W + x.
  f.src.update().allow_race_conditions().vectorize(rx, ow, TailStrategy::GuardWithIf);
  f.acc.compute_at(f.out, ci).vectorize(i, vec);
  f.mask.compute_root().vectorize(f.mask.args()[0], vec);
}

// ---- ConvBackWeight ----

// The forward's flat walk (convDepthwiseFlat) as a reduction. For each output channel co (one task
// each) and input channel ci of its group (one for depthwise):
//  1. per image, src: x copied flat with the forward's zeros around it; dyf: dy copied flat, zeros
//     after it up to a whole vector;
//  2. part(u, t) = sum over images and vectors i = vec b + u of dyf(i) * mask(i, kx) * src(i + S +
//     off(t)): one vector accumulator per tap t = ky kw + kx, in registers;
//  3. dw(kx, ky) = the sum of part(., t)'s lanes.
// The general grouped form (conv.cpp) sums one float at a time with a boundary test per tap: 960
// channels at 7x7 and batch 32 took 15-22 ms, against about 1 ms for the forward. RegNetY-400MF's
// grouped weight gradients (training at batch 16 on 96x96) went 60 -> 11.8 ms, its step 217 -> 169 ms.
struct FlatWeightFuncs {
  Func out{"conv_dw"}, part{"dwflat_part"}, src{"dwflat_src"}, dyf{"dwflat_dy"}, mask{"dwflat_mask"};
  RDom r;
  Var u{"u"}, t{"t"};
  std::vector<Argument> args;
};

FlatWeightFuncs convBackWeightDepthwiseFlat(const KernelSpec& k) {
  FlatWeightFuncs f;
  Vars v;
  const Attrs& a = k.attrs;
  const Dims& xd = k.in;            // [C,H,W]
  const Dims& dyd = k.extraIns[0];  // [O,Ho,Wo]
  int H = (int)xd[1], W = (int)xd[2], Ho = (int)dyd[1], Wo = (int)dyd[2];
  int cig = (int)(xd[0] / a.groups), cog = (int)(dyd[0] / a.groups);
  int kh = (int)a.kernel[0], kw = (int)a.kernel[1], dly = (int)a.dilation[0], dlx = (int)a.dilation[1], pt = (int)a.pad[0], pl = (int)a.pad[1];
  int sx = (int)a.stride[1], sy = (int)a.stride[0];
  int vec = k.schedule.lanes >= 16 ? 16 : 8;
  // A strided conv's taps read x at (sx ox + ax, sy oy + ay): phase (ax mod sx, ay mod sy) of x,
  // x_p(qx, qy) = x(sx qx + px, sy qy + py), at (ox + floor(ax / sx), oy + floor(ay / sy)), a
  // stride-1 walk. Each phase (one for stride 1) is copied flat in rows of Wf, as are dy's rows.
  int Wp = (W + sx - 1) / sx, Hp = (H + sy - 1) / sy;  // the largest phase, (px, py) = (0, 0)
  int Wf = std::max(Wo, Wp);
  auto floorDiv = [](int n, int d) { return n >= 0 ? n / d : -((-n + d - 1) / d); };
  auto tapOff = [&](int kx, int ky) { return floorDiv(ky * dly - pt, sy) * Wf + floorDiv(kx * dlx - pl, sx); };
  int S = 0;  // no tap of pixel 0 reads before src(0)
  for (int ky = 0; ky < kh; ++ky)
    for (int kx = 0; kx < kw; ++kx) S = std::max(S, -tapOff(kx, ky));
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", dyd), x = p.tensor("x", xd);
  f.args = p.args();
  Var i("i"), ph("ph");
  RDom rows(0, Wp, 0, Hp, 0, sx * sy, "rows"), orows(0, Wo, 0, Ho, "orows");
  Expr px = rows.z % sx, py = rows.z / sx, xx = rows.x * sx + px, xy = rows.y * sy + py;
  f.src(i, ph, v.c, v.n) = 0.0f;
  f.src(S + rows.y * Wf + rows.x, rows.z, v.c, v.n) = select(xx < W && xy < H, x(min(xx, W - 1), min(xy, H - 1), v.c, v.n), 0.0f);
  f.dyf(i, v.c, v.n) = 0.0f;
  f.dyf(orows.y * Wf + orows.x, v.c, v.n) = dy(orows.x, orows.y, v.c, v.n);
  // mask(i, kx): whether tap column kx of output pixel i stays inside its phase's row.
  Var t2("t2");
  Expr ax = t2 * dlx - pl, qx = i % Wf + ax / sx;  // Halide's / floors and its % is never negative
  Expr phaseW = (W - ax % sx + sx - 1) / sx;
  f.mask(i, t2) = select(qx >= 0 && qx < phaseW, 1.0f, 0.0f);
  f.r = RDom(0, (Ho * Wf + vec - 1) / vec, 0, dy.dim(3).extent(), "r");
  Expr at = f.r.x * vec + f.u, kx = f.t % kw, ky = f.t / kw;
  Expr tx = kx * dlx - pl, ty = ky * dly - pt;
  Expr off = (ty / sy) * Wf + tx / sx, phase = (ty % sy) * sx + tx % sx;
  // part(u, t, ci, co): output channel co against input channel ci of its group.
  Var ci("ci"), co("co");
  Expr c = (co / cog) * cig + ci;
  f.part(f.u, f.t, ci, co) = 0.0f;
  f.part(f.u, f.t, ci, co) += f.dyf(at, co, f.r.y) * f.mask(at, kx) * f.src(at + S + off, phase, c, f.r.y);
  Var kxv("kx"), kyv("ky");
  RDom lanes(0, vec, "lanes");
  f.out(kxv, kyv, ci, co) = 0.0f;
  f.out(kxv, kyv, ci, co) += f.part(lanes, kxv + kyv * kw, ci, co);
  return f;
}

void convBackWeightDepthwiseFlatCpu(FlatWeightFuncs& f, const KernelSpec& k) {
  Var co = f.out.args()[3];
  int vec = k.schedule.lanes >= 16 ? 16 : 8;
  int taps = (int)(k.attrs.kernel[0] * k.attrs.kernel[1]);
  f.out.parallel(co);
  f.out.update().parallel(co);
  f.part.compute_at(f.out, co).vectorize(f.u);
  // Grouped: one input channel of the group at a time, over every image.
  Var ci = f.part.args()[2];
  f.part.update().reorder(f.u, f.t, f.r.x, f.r.y, ci).vectorize(f.u);
  // Up to 16 taps' accumulators stay in registers (3x3 and 5x5 kernels wholly; a 7x7 in four passes).
  if (taps <= 16) f.part.update().unroll(f.t);
  else {
    Var to("to"), ti("ti");
    f.part.update().split(f.t, to, ti, 13, TailStrategy::GuardWithIf).reorder(f.u, ti, f.r.x, f.r.y, to, ci).unroll(ti);
  }
  // The copies run row by row. Fused over x and y they would need a guarded tail (an update's
  // loop cannot shift its last vector inwards), and a one-lane guarded tail is what Halide 14
  // miscompiled in the forward's stores (see convDepthwiseFlat's header).
  for (Func* g : {&f.src, &f.dyf}) {
    g->compute_at(f.part, f.r.y).vectorize(g->args()[0], vec);
    RVar rx(g->update().get_schedule().rvars()[0].var);
    // Row y's pixels land at distinct flat indices (x < the row's width), which Halide cannot see.
    g->update().allow_race_conditions().vectorize(rx, 8, TailStrategy::GuardWithIf);
  }
  f.mask.compute_root().vectorize(f.mask.args()[0], vec);
}

// ---- Direct (Schedule::flat 4): convs and stride-1 input gradients, read in place ----

// The conv's taps read the input where it lies, without a padded copy:
//   out(x, y) = act(b + sum over taps of w(kx, ky) * (in(xi, yi) if (xi, yi) is inside, else 0)),
//   xi = x sx + kx dx - pl, yi = y sy + ky dy - pt,
// one expression per output vector of `vec` pixels along the row, stored once. yi is clamped (a
// scalar per row, so the loads stay dense); the select on xi makes the loads of a row's first and
// last vectors predicated (AVX-512 masked loads, which never touch the lanes they leave out: the
// lanes before x = 0 or past the row's end), so no vector reads outside the input buffer. Halide's
// loop partitioning (the `likely`) keeps the first and last rows and the last vector of each row
// apart, so most taps are plain loads.
// Why: the tiled form (conv.cpp) copies a tile of channels' padded planes and then walks them, so
// each thread reads memory only in the copy and writes it only in the walk; here every load feeds
// its FMAs directly. Why not clamp x too: a clamped vector index is a gather. Why 8-lane vectors
// (Schedule::vec, default 8; 4 on rows of 4 to 7): with 16 lanes, rows of 56 and 28 (not a whole
// number of 64-byte lines) ran 30-50% slower, and rows of 112 too.
// MobileNetV2 at batch 32, its 17 depthwise convs (AMD EPYC family 26 model 2, bench/depthwise.py):
// tiled and flat forms 31.4-33.7 ms; direct with 16 lanes 25.4-26.0 ms; with 8 lanes (4 on 7-wide
// rows) 21.6-22.4 ms. Per conv, tiled or flat -> direct with 8 lanes: 32x112x112 3.1-4.1 -> 2.9-3.0,
// 96x112x112 stride 2 5.1-8.5 -> 5.1-5.4, 144x56x56 3.9-4.8 -> 3.3-3.4, 192x28x28 1.5-1.8 -> 1.08-1.14,
// 192x28x28 stride 2 1.13-1.21 -> 0.42-0.50, 384x14x14 0.7-1.1 -> 0.56-0.64, 576x14x14 stride 2
// 1.0-1.3 -> 0.41-0.48, 960x7x7 0.6-0.86 -> 0.48-0.52 ms. Stride-1 input gradients take it too:
// MobileNetV2's training step at batch 32 on 3x96x96, its input-gradient kernels 30.8-31.6 ->
// 28.6-28.9 ms (profiled, alternating builds), the step 148-152 -> 146-150 ms.
struct DirectConvFuncs {
  Func out{"conv_out"};
  std::vector<Argument> args;
};

DirectConvFuncs convDepthwiseDirect(const KernelSpec& k) {
  DirectConvFuncs f;
  Vars v;
  const Attrs& a = k.attrs;
  int C = (int)k.in[0], H = (int)k.in[1], W = (int)k.in[2];
  int kh = (int)a.kernel[0], kw = (int)a.kernel[1], dy = (int)a.dilation[0], dx = (int)a.dilation[1], pt = (int)a.pad[0], pl = (int)a.pad[1];
  int sy = (int)a.stride[0], sx = (int)a.stride[1];
  // A stride-1 input gradient (ConvBackData) is the same walk over dy with the taps mirrored:
  // dx(x, y) = sum of w(kx, ky) * dy(x + pl - kx dx, y + pt - ky dy), no bias.
  bool back = k.kind == KernelKind::ConvBackData;
  int sign = back ? -1 : 1;
  KernelParams p(k);
  ImageParam in = p.tensor(back ? "dy" : "input", k.in);
  ImageParam w = p.fixed("weight", {C, 1, kh, kw});
  Expr sum = back ? Expr(0.0f) : Expr(p.fixed("bias", {C})(v.c));
  for (int ky = 0; ky < kh; ++ky)
    for (int kx = 0; kx < kw; ++kx) {
      Expr xi = v.x * sx + sign * (kx * dx - pl), yi = v.y * sy + sign * (ky * dy - pt);
      Expr tap = select(likely(xi >= 0 && xi < W && yi >= 0 && yi < H), in(xi, clamp(yi, 0, H - 1), v.c, v.n), 0.0f);
      sum = sum + tap * w(kx, ky, 0, v.c);
    }
  if (k.residual) sum = sum + p.tensor("residual", k.out)(v.x, v.y, v.c, v.n);
  f.args = p.args();
  f.out(v.x, v.y, v.c, v.n) = applyAct(sum, k.act);
  return f;
}

// Vectors of 8 along the row at batch 8 and above (Schedule::vec: 16, 8 or 4, no wider than the
// row), the last one shifted inwards (no guarded tail: see convDepthwiseFlat); images in parallel.
// Below batch 8: tasks of channels, 16-lane vectors on rows of 16 or more.
void convDepthwiseDirectCpu(DirectConvFuncs& f, const KernelSpec& k) {
  Vars v;
  int Wo = (int)k.out[2];
  int vec = k.schedule.vec == 4 || k.schedule.vec == 8 || k.schedule.vec == 16 ? k.schedule.vec : 8;
  while (vec > Wo) vec /= 2;
  Var xo("xo"), xi("xi"), co("co"), ci("ci");
  f.out.specialize(f.out.output_buffer().dim(3).extent() >= 8).split(v.x, xo, xi, vec, TailStrategy::ShiftInwards).vectorize(xi).parallel(v.n);
  // Below batch 8 the tensors sit in the caches and the FMAs count: 16 lanes on rows of 16 or more.
  // EfficientNet-B0's 12 depthwise convs at batch 1 with 8 lanes 1.89 ms, with 16 1.68 (the tiled and
  // flat forms 1.70).
  f.out.split(v.x, xo, xi, Wo >= 16 ? 16 : vec, TailStrategy::ShiftInwards).vectorize(xi);
  // Tasks of whole planes, at least 16K output floats each (Schedule::task channels): one plane per
  // task ran MobileNetV2's 17 at batch 1 in 2.1-2.3 ms, against 1.2 for the tiled form.
  int tile = depthwiseFlatTask(k.schedule, k.out[0], k.out[1] * k.out[2]);
  f.out.split(v.c, co, ci, tile, TailStrategy::GuardWithIf).parallel(co);
}

}  // namespace

Lowered lowerConvDepthwiseDirect(const KernelSpec& k) { return lowerWithSchedules(k, convDepthwiseDirect(k), convDepthwiseDirectCpu); }
Lowered lowerConvDepthwiseFlat(const KernelSpec& k) { return lowerWithSchedules(k, convDepthwiseFlat(k), convDepthwiseFlatCpu); }
Lowered lowerConvBackWeightDepthwiseFlat(const KernelSpec& k) {
  return lowerWithSchedules(k, convBackWeightDepthwiseFlat(k), convBackWeightDepthwiseFlatCpu);
}

}  // namespace cnnc::codegen
