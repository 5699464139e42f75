// conv_winograd.cpp: 3x3 stride-1 convolutions (and their input and weight gradients) by Winograd's
// minimal filtering F(m x m, 3x3), m = 2
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). An m x m output tile
// is A^T [(G g G^T) . (B^T d B)] A over the (m+2) x (m+2) input patch d that covers it: (m+2)^2
// multiplies per tile and channel pair where the direct form needs 9 m^2 (16 against 36 for m = 2).
// The algorithm:
//  1. U(o, c, e) = G g G^T: the (m+2)^2 transformed taps of each filter, once per call in training;
//     in inference the runtime transforms the weights once at load (common/winograd_weights.h).
//  2. Per block of tile rows of one image: V(tx, ty, c, e) = B^T d B for every tile and input
//     channel, e = ex + (m+2) ey indexing the transformed patch.
//  3. M(tx, ty, o, e) = sum over c of U(o, c, e) V(tx, ty, c, e): (m+2)^2 independent matrix
//     products, each in register tiles of up to 2 vectors of tiles x tileC output channels.
//  4. Y = A^T M A + bias per output channel, then the residual and the activation, written out.
// Small planes (rows of fewer than 14 tiles) run steps 2-4 as whole stages with vectors along
// output channels instead (winogradChannelsCpu).
// m = 2: its transforms are adds only and it stays within 1e-6 of the direct sum in float32.
// (m = 4 saves more multiplies, but its constants, up to 8 and 1/24, lose about 10x more; no
// default schedule or tuning candidate ever chose it, so it was removed.)
#include "common/winograd_weights.h"
#include "conv.h"
#include "conv_weight.h"
#include "ops.h"

namespace cnnc::codegen {

namespace {

using namespace Halide;

// The transform matrices, row-major: B^T is a x a, G is a x 3, A^T is m x a, with a = m + 2.
// G is shared with the weights transformed at load (kWinogradG, common/winograd_weights.h).
const float kBT2[] = {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, 1, 0, -1};
const float kAT2[] = {1, 1, 1, 0, 0, 1, -1, -1};
// The weight gradient's transforms (lowerConvBackWeightWinograd): A (4 x 2), the transpose of A^T,
// and G^T (3 x 4).
const float kA2[] = {1, 0, 1, 1, 1, -1, 0, -1};
const float kGT2[] = {1, .5f, .5f, 0, 0, .5f, -.5f, 0, 0, .5f, .5f, 1};
struct Transform {
  int m, a;
  const float *BT, *G, *AT;
};

const Transform kF2x2{2, 4, kBT2, kWinogradG, kAT2};

// coef * v, without the multiply for +-1.
Expr scaled(float coef, Expr v) { return coef == 1 ? v : coef == -1 ? -v : v * coef; }

// select(e == 0, xs[0], e == 1, xs[1], ...): with e unrolled, each iteration keeps one arm.
Expr selectOver(Expr e, const std::vector<Expr>& xs) {
  Expr r = xs.back();
  for (int i = (int)xs.size() - 2; i >= 0; --i) r = select(e == i, xs[i], r);
  return r;
}

// sum over (i, j) of L[p][i] L[q][j] f(i, j) for each output (p, q), p fastest: the 2-D transform
// L f L^T with the zero coefficients dropped. L has `rows` rows of `cols` entries.
std::vector<Expr> transform2d(const float* L, int rows, int cols, const std::function<Expr(int, int)>& f) {
  std::vector<Expr> out;
  for (int q = 0; q < rows; ++q)
    for (int p = 0; p < rows; ++p) {
      Expr s;
      for (int j = 0; j < cols; ++j)
        for (int i = 0; i < cols; ++i) {
          float k = L[p * cols + i] * L[q * cols + j];
          if (k == 0) continue;
          Expr t = scaled(k, f(i, j));
          s = s.defined() ? s + t : t;
        }
      out.push_back(s.defined() ? s : Expr(0.0f));
    }
  return out;
}

}  // namespace

namespace {

// The conv the Winograd kernels compute: 3x3, stride 1, dilation 1, padding 1, ungrouped.
bool winogradConv(const Attrs& a) {
  return a.kernel[0] == 3 && a.kernel[1] == 3 && a.stride[0] == 1 && a.stride[1] == 1 && a.dilation[0] == 1 && a.dilation[1] == 1 &&
         a.groups == 1 && a.pad[0] == 1 && a.pad[1] == 1;
}

}  // namespace

bool winogradApplies(const KernelSpec& k) {
  return (k.kind == KernelKind::Conv || k.kind == KernelKind::ConvBackData) && winogradConv(k.attrs) && k.in[1] == k.out[1] &&
         k.in[2] == k.out[2];
}

bool winogradWeightApplies(const KernelSpec& k) {
  return k.kind == KernelKind::ConvBackWeight && !k.extraIns.empty() && winogradConv(k.attrs) && k.extraIns[0][1] == k.in[1] &&
         k.extraIns[0][2] == k.in[2];
}

int winogradWeightRows(const KernelSpec& k, int64_t bytes) {
  int64_t C = k.in[0], O = k.extraIns[0][0], TH = (k.in[1] + 1) / 2, TW = (k.in[2] + 1) / 2;
  int rows = 1;
  for (int d = 1; d <= TH; ++d)
    if (TH % d == 0 && d * TW * std::max(C, O) * kWinogradTaps * 4 <= bytes) rows = d;
  return rows;
}

namespace {

// The Funcs of the algorithm, steps 1-4 of the header: U, V, Macc and M, Y, out.
struct WinogradFuncs {
  Func out, src{"wino_src"}, taps{"wino_taps"}, U{"wino_u"}, V{"wino_v"}, Macc{"wino_macc"}, M{"wino_m"}, Y{"wino_y"};
  Var tx{"tx"}, ty{"ty"}, e{"e"}, o{"o"}, c{"c"}, dx{"dx"}, dy{"dy"};
  RDom r;
  std::vector<Argument> args;
  bool preTransformed = false;  // U is the weight argument itself, transformed at load (inference)
};

WinogradFuncs winogradAlgorithm(const KernelSpec& k) {
  WinogradFuncs f;
  Vars v;
  const Transform& t = kF2x2;
  int m = t.m, a = t.a;
  // The input gradient is the same conv of dy with each filter turned by 180 degrees and the
  // channel roles swapped: dx[c] = sum over o of dy[o] (x) w[o, c] flipped; it has no bias.
  bool backData = k.kind == KernelKind::ConvBackData;
  int C = (int)k.in[0], H = (int)k.in[1], W = (int)k.in[2], O = (int)k.out[0];
  // The arguments of the direct kernels of the same kinds (convArgs, convBackDataArgs in conv.cpp).
  KernelParams kp(k);
  ImageParam in = kp.tensor(backData ? "dy" : "input", k.in);
  // Inference kernels read U itself, [16, C, O], transformed at load: computed in every call, U
  // was written by both cores and each block read the other core's half from its cache again
  // (ResNet-18's 64-channel 56x56 convs at batch 1, 1.24 -> 0.90 ms per pair; Intel 6/207).
  f.preTransformed = k.packedWeights && !backData;
  ImageParam w = kp.fixed("weight", f.preTransformed ? winogradWeightShape(O, C) : backData ? Dims{C, O, 3, 3} : Dims{O, C, 3, 3});
  ImageParam b = kp.fixed("bias", {O});  // not an argument of the input gradient
  Var tx = f.tx, ty = f.ty, e = f.e, o = f.o, c = f.c, dx = f.dx, dy = f.dy;
  Func src = f.src;  // the input shifted by the padding of 1, zero outside
  src(v.x, v.y, v.c, v.n) = BoundaryConditions::constant_exterior(in, 0.0f, {{0, W}, {0, H}})(v.x - 1, v.y - 1, v.c, v.n);
  Func U = f.U, V = f.V, Macc = f.Macc, M = f.M, Y = f.Y;
  if (f.preTransformed) U(o, c, e) = w(o, c, e);
  else {
    // Channel-vector blocks that do not divide O compute past it: the last block reads channel O - 1.
    int T = k.schedule.vec * k.schedule.chanVec;
    Expr oc = k.schedule.chanVec > 0 && O % T ? min(o, O - 1) : Expr(o);
    f.taps(o, dx, dy, c) = backData ? w(2 - dx, 2 - dy, oc, c) : w(dx, dy, c, oc);  // tap(dx, dy, c, o)
    U(o, c, e) = selectOver(e, transform2d(t.G, a, 3, [&](int i, int j) { return f.taps(o, i, j, c); }));
  }
  V(tx, ty, c, e, v.n) = selectOver(e, transform2d(t.BT, a, a, [&](int i, int j) { return src(tx * m + i, ty * m + j, c, v.n); }));
  f.r = RDom(0, C, "r");
  RDom r = f.r;
  Macc(tx, ty, o, e, v.n) = 0.0f;
  Macc(tx, ty, o, e, v.n) += U(o, r, e) * V(tx, ty, r, e, v.n);
  M(tx, ty, o, e, v.n) = Macc(tx, ty, o, e, v.n);
  std::vector<Expr> ys = transform2d(t.AT, m, a, [&](int i, int j) { return M(tx, ty, o, i + a * j, v.n); });
  if (!backData)
    for (Expr& y : ys) y = y + b(o);
  Y(tx, dx, ty, dy, o, v.n) = selectOver(dx + m * dy, ys);
  Expr val = Y(v.x / m, v.x % m, v.y / m, v.y % m, v.c, v.n);
  if (k.residual) {
    ImageParam res = kp.tensor("residual", k.out);
    val = val + res(v.x, v.y, v.c, v.n);
  }
  f.args = kp.args();
  f.out = Func(backData ? "conv_dx" : "conv_out");
  f.out(v.x, v.y, v.c, v.n) = applyAct(val, k.act);
  return f;
}

// The CPU schedule (Winograd is never chosen for GPU targets). Tasks are blocks of tileY tile rows
// of one image (batch 1 still has H / (m tileY) of them); a block's V and M (tileY x TWp tiles x
// channels x a^2) stay in L2. The matrix products run along tiles: each V vector of `vec` tiles
// feeds tileC FMAs with U broadcast, each U broadcast feeds tileX vectors. Y is stored
// [ty][dy][tx][dx], so the output reads it as rows.
void winogradCpu(WinogradFuncs& f, const KernelSpec& k) {
  Vars v;
  const Schedule& sc = k.schedule;
  int m = kF2x2.m, W = (int)k.in[2], O = (int)k.out[0];
  int TW = (W + m - 1) / m, TWp = (TW + sc.vec - 1) / sc.vec * sc.vec;  // tiles per row, in whole vectors
  Func out = f.out, src = f.src, U = f.U, V = f.V, Macc = f.Macc, M = f.M, Y = f.Y;
  Var tx = f.tx, ty = f.ty, e = f.e, o = f.o, c = f.c, dx = f.dx, dy = f.dy;
  RDom r = f.r;
  Var yo("yo"), yi("yi"), blk("blk"), txo("txo"), txi("txi"), oo("oo"), oi("oi");
  int rows = m * sc.tileY;
  out.split(v.y, yo, yi, rows, TailStrategy::GuardWithIf).reorder(v.x, yi, v.c, yo, v.n).fuse(yo, v.n, blk).parallel(blk);
  out.vectorize(v.x, std::min(16, sc.vec * 2), TailStrategy::GuardWithIf);
  src.compute_at(out, blk).vectorize(v.x, sc.vec, TailStrategy::GuardWithIf);
  if (!f.preTransformed) U.compute_root().vectorize(o, std::min(16, O), TailStrategy::GuardWithIf).unroll(e).parallel(c);
  V.compute_at(out, blk).bound(tx, 0, TWp).reorder(tx, e, c, ty, v.n).vectorize(tx, sc.vec).unroll(e);
  int tc = std::min(sc.tileC, O);
  M.compute_at(out, blk).bound(tx, 0, TWp).bound(o, 0, O)
      .split(tx, txo, txi, sc.vec * sc.tileX).split(o, oo, oi, tc)
      .reorder(txi, oi, txo, oo, ty, e, v.n).vectorize(txi, sc.vec).unroll(oi);
  Var av("av"), ai("ai");
  Macc.compute_at(M, txo).split(tx, av, ai, sc.vec).reorder(ai, av, o).vectorize(ai).unroll(av).unroll(o);
  Macc.update().split(tx, av, ai, sc.vec).reorder(ai, av, o, r, ty, e, v.n).vectorize(ai).unroll(av).unroll(o);
  Y.compute_at(out, blk).bound(tx, 0, TWp).reorder_storage(dx, tx, dy, ty, o, v.n)
      .reorder(tx, dx, dy, ty, o, v.n).vectorize(tx, sc.vec).unroll(dx).unroll(dy);
}

// The CPU schedule for small planes (sc.chanVec > 0): rows of fewer than 14 tiles would leave most
// of a tile vector idle, so the matrix products run along output channels instead, each a GEMM over
// the tiles of a group of images (sc.task, 8 by default). Per group, stages made whole one after
// the other:
//  1. V for the group, parallel tasks of 16 (channel, image) planes, rows of tiles as vectors.
//  2. M per transformed position e (the parallel loop: 16 tasks at any batch), each task walking
//     its e's images and blocks of vec x chanVec output channels (order 1: the images inside each
//     block): register tiles of tileX x tileY tiles x chanVec vectors summing over all C input
//     channels, each U vector load feeding tileX x tileY FMAs and each V broadcast chanVec. A task
//     reads its e's slice of U (C x O floats) once per group, where the per-image tasks of the row
//     form would read all of U per image.
//  3. Y = A^T M A per image and block of vec output channels, vectors along channels; the output
//     gathers its rows from them.
// U in training: the taps of a block of 16 output channels gathered per input channel, then
// transformed (gathered per output channel and tap, 9 lanes from 16 rows of the weights, it took as
// long as the products at batch 1). U's rows and V's planes are padded to strides that are not a
// power of two: at 1 KiB (256 floats) the products' loads of a chunk of U mapped onto a quarter of
// L1's sets and stalled. Measurements: schedule.cpp.
void winogradChannelsCpu(WinogradFuncs& f, const KernelSpec& k) {
  Vars v;
  const Schedule& sc = k.schedule;
  int W = (int)k.in[2], H = (int)k.in[1], O = (int)k.out[0];
  int TW = (W + 1) / 2, TH = (H + 1) / 2, T = sc.vec * sc.chanVec;
  int tileX = std::min(sc.tileX, TW), tileY = std::min(sc.tileY, TH);
  int TWr = (TW + tileX - 1) / tileX * tileX, THr = (TH + tileY - 1) / tileY * tileY, Or = (O + T - 1) / T * T;
  int xv = std::min(sc.lanes, TWr <= 4 ? 4 : TWr <= 8 ? 8 : 16);  // V along rows of tiles, whole vectors
  int TWv = (TWr + xv - 1) / xv * xv;
  Func out = f.out, src = f.src, U = f.U, V = f.V, Macc = f.Macc, M = f.M, Y = f.Y;
  Var tx = f.tx, ty = f.ty, e = f.e, o = f.o, c = f.c, dx = f.dx, dy = f.dy;
  RDom r = f.r;
  Var cn("cn"), cno("cno"), cni("cni"), oo("oo"), oi("oi"), mv("mv"), ml("ml"), txo("txo"), txi("txi"), tyo("tyo"), tyi("tyi"), ov("ov"), ol("ol"), cb("cb"), cl("cl"), blk("blk");
  if (!f.preTransformed) {
    U.compute_root().bound(o, 0, Or).bound_storage(o, Or + sc.vec).split(o, oo, oi, sc.vec).reorder(oi, e, c, oo).vectorize(oi).unroll(e).parallel(oo);
    f.taps.compute_at(U, c).vectorize(o, sc.vec).unroll(dx).unroll(dy);
  }
  // Images in groups of G, one after the other: V and M of a group (G x 16 x tiles x channels
  // floats each) stay in L2/L3 where a whole batch's went through memory.
  int G = sc.task > 0 ? sc.task : 8;
  Var ng("ng"), ni("ni");
  out.split(v.n, ng, ni, G, TailStrategy::GuardWithIf);
  V.compute_at(out, ng).bound(tx, 0, TWv).bound(ty, 0, THr).bound_storage(ty, THr | 1).reorder(tx, e, ty, c, v.n).fuse(c, v.n, cn).split(cn, cno, cni, 16, TailStrategy::GuardWithIf)
      .parallel(cno).unroll(e);
  if (xv > 1) V.vectorize(tx, xv);
  src.compute_at(V, cni).vectorize(v.x, rowVectorWidth(W + 2, sc.lanes), TailStrategy::GuardWithIf);
  // Each register tile sums over all C input channels: chunks of the reduction (their sums kept
  // in memory between chunks) were slower.
  M.compute_at(out, ng).bound(tx, 0, TWr).bound(ty, 0, THr).bound(o, 0, Or).reorder_storage(o, tx, ty, e, v.n)
      .split(o, oo, oi, T).split(oi, mv, ml, sc.vec).split(tx, txo, txi, tileX).split(ty, tyo, tyi, tileY);
  if (sc.order == 1) M.reorder(ml, mv, txi, tyi, txo, tyo, oo, v.n, e);
  else M.reorder(ml, mv, txi, tyi, txo, tyo, v.n, oo, e);
  M.parallel(e).vectorize(ml).unroll(mv).unroll(txi).unroll(tyi);
  Macc.compute_at(M, txo).reorder_storage(o, tx, ty, e, v.n).split(o, ov, ol, sc.vec).reorder(ol, ov, tx, ty).vectorize(ol).unroll(ov).unroll(tx).unroll(ty);
  Macc.update().split(o, ov, ol, sc.vec).reorder(ol, ov, tx, ty, r, e, v.n).vectorize(ol).unroll(ov).unroll(tx).unroll(ty);
  out.split(v.c, cb, cl, sc.vec, TailStrategy::GuardWithIf).reorder(v.x, v.y, cl, cb, ni, ng).fuse(cb, ni, blk).parallel(blk);
  out.vectorize(v.x, rowVectorWidth(W, sc.lanes), TailStrategy::GuardWithIf);
  Y.compute_at(out, blk).reorder_storage(o, dx, tx, dy, ty, v.n).reorder(o, dx, dy, tx, ty, v.n)
      .vectorize(o, sc.vec, TailStrategy::GuardWithIf).unroll(dx).unroll(dy);
}

// The weight gradient by the transpose of F(2x2, 3x3). For each 2x2 tile of dy and the 4x4 patch
// d of the padded input under it, the tile's share of the 3x3 gradient is
// G^T [(A dy A^T) . (B^T d B)] G: 16 multiplies per tile and channel pair against 36 for the
// direct sum, and G^T ... G is linear, so it is applied once to the sums over all tiles. The
// algorithm:
//  1. Per image and block of tileY tile rows: D(o, tx, ty, e) = A dy A^T from dy transposed
//     channels-innermost (dyT), and X(tx, ty, c, e) = B^T d B from the zero-padded input (xpad).
//  2. S(o, c, e) = sum over the block's tiles of D(o, t, e) X(t, c, e): 16 matrix products, each
//     in register tiles of tileX vectors of output channels x tileC input channels (X broadcast),
//     added into the partial of the block's chunk of images.
//  3. The images are cut into up to 8 chunks (rfactor), a parallel task each; the partials are
//     summed in chunk order, so the result does not depend on the thread count.
//  4. dw = G^T S G per channel pair, transposed to PyTorch's [O, C, 3, 3].
// Where a chunk's sums outgrow L2, the 16 products are the parallel tasks instead
// (winogradWeightTasksCpu, Schedule::order 1).
// The transforms are adds and halvings, exact in binary but for the sums' rounding.
struct WinogradWeightFuncs {
  WeightGradSources src;
  Func D{"winow_d"}, X{"winow_x"}, acc{"winow_acc"}, S{"winow_sum"}, dwT{"winow_dwT"}, out{"conv_dw"};
  Var o{"o"}, c{"c"}, e{"e"}, tx{"tx"}, ty{"ty"}, n{"n"}, b{"b"}, u{"u"}, kx{"kx"}, ky{"ky"};
  RDom rt, rn;
  Expr N;
};

WinogradWeightFuncs winogradWeightAlgorithm(const KernelSpec& k) {
  WinogradWeightFuncs f;
  f.src = weightGradSources(k);
  WeightGradSources& s = f.src;
  int H = (int)k.in[1], W = (int)k.in[2];
  int TW = (W + 1) / 2, TH = (H + 1) / 2;
  int TR = k.schedule.tileY >= 1 && TH % k.schedule.tileY == 0 ? k.schedule.tileY : 1;  // a tile-row block
  Var o = f.o, c = f.c, e = f.e, tx = f.tx, ty = f.ty, n = f.n, b = f.b;
  // dy is zero past an odd edge (the last tiles' second row or column).
  auto dyAt = [&](int i, int j) -> Expr {
    Expr ox = tx * 2 + i, oy = ty * 2 + j;
    if (W % 2 == 0 && H % 2 == 0) return s.dyT(o, ox, oy, n);
    return select(ox < W && oy < H, s.dyT(o, min(ox, W - 1), min(oy, H - 1), n), 0.0f);
  };
  f.D(o, tx, ty, e, n) = selectOver(e, transform2d(kA2, 4, 2, dyAt));
  f.X(tx, ty, c, e, n) = selectOver(e, transform2d(kBT2, 4, 4, [&](int i, int j) { return s.xpad(tx * 2 + i, ty * 2 + j, c, n); }));
  f.rt = RDom(0, TW, 0, TR, "rt");
  RDom& rt = f.rt;
  Expr t = b * TR + rt.y;
  f.acc(o, c, e, b, n) = 0.0f;
  f.acc(o, c, e, b, n) += f.D(o, rt.x, t, e, n) * f.X(rt.x, t, c, e, n);
  f.N = s.dy.dim(3).extent();
  f.rn = RDom(0, TH / TR, 0, f.N, "rn");  // (block of tile rows, image)
  f.S(o, c, e) = 0.0f;
  f.S(o, c, e) += f.acc(o, c, e, f.rn.x, f.rn.y);
  f.dwT(o, f.kx, f.ky, c) = selectOver(f.kx + 3 * f.ky, transform2d(kGT2, 3, 4, [&](int i, int j) { return f.S(o, c, i + 4 * j); }));
  f.out(f.kx, f.ky, c, o) = f.dwT(o, f.kx, f.ky, c);
  return f;
}

// Both forms' register tile, computed where the caller puts acc: `vec`-wide vectors of output
// channels x the tile's input channels, summing over a block's tiles.
void scheduleWeightRegisterTile(WinogradWeightFuncs& f, int vec) {
  Var o = f.o, c = f.c, cvv("cvv"), cl("cl");
  f.acc.split(o, cvv, cl, vec).vectorize(cl).unroll(cvv).unroll(c);
  f.acc.update().split(o, cvv, cl, vec).reorder(cl, cvv, c, f.rt.x, f.rt.y).vectorize(cl).unroll(cvv).unroll(c);
}

// Both forms' output: dw = G^T S G per block of 16 output channels, transposed to [O, C, 3, 3].
void scheduleWinogradWeightOut(WinogradWeightFuncs& f, int vec) {
  Var blocks = scheduleWeightOut(f.out);
  f.dwT.compute_at(f.out, blocks).reorder(f.o, f.kx, f.ky, f.c).vectorize(f.o, vec, TailStrategy::RoundUp).unroll(f.kx).unroll(f.ky);
}

// Each image's block of tile rows: dyT, D and X are computed for it (L2), then every register tile
// runs over the block's tiles, each D vector load feeding tileC FMAs and each X broadcast tileX.
void winogradWeightCpu(WinogradWeightFuncs& f, const KernelSpec& k) {
  const Schedule& sc = k.schedule;
  int W = (int)k.in[2];
  int vec = sc.vec, cv = sc.tileX, cit = sc.tileC;
  Var o = f.o, c = f.c, e = f.e, tx = f.tx, ty = f.ty, u = f.u;
  RVar no("no"), ni("ni");
  f.S.update().split(f.rn.y, no, ni, (f.N + 7) / 8, TailStrategy::GuardWithIf);
  Func chunk = f.S.update().rfactor(no, u);
  chunk.compute_root().vectorize(o, vec, TailStrategy::RoundUp);
  Var coo("coo"), coi("coi"), cio("cio"), cii("cii"), cvo("cvo"), cvi("cvi");
  chunk.update().split(o, coo, coi, vec * cv, TailStrategy::RoundUp).split(coi, cvo, cvi, vec).split(c, cio, cii, cit)
      .reorder(cvi, cvo, cii, cio, coo, e, f.rn.x, ni, u).vectorize(cvi).parallel(u);
  f.acc.compute_at(chunk, cio).bound_extent(e, 1).bound_extent(f.b, 1).bound_extent(f.n, 1);
  scheduleWeightRegisterTile(f, vec);
  f.D.compute_at(chunk, f.rn.x).bound(e, 0, kWinogradTaps).reorder(o, e, tx, ty).vectorize(o, vec, TailStrategy::RoundUp).unroll(e);
  int xv = rowVectorWidth((W + 1) / 2, sc.lanes);
  f.X.compute_at(chunk, f.rn.x).bound(e, 0, kWinogradTaps).reorder(tx, e, c, ty).unroll(e);
  if (xv > 1) f.X.vectorize(tx, xv, TailStrategy::ShiftInwards);
  scheduleTranspose(f.src, chunk, f.rn.x, vec, W);
  scheduleWeightSource(f.src, k);
  f.src.xpad.compute_at(chunk, ni);
  f.S.compute_root().vectorize(o, vec, TailStrategy::RoundUp).parallel(c);
  f.S.update().vectorize(o, vec, TailStrategy::RoundUp).parallel(c);
  scheduleWinogradWeightOut(f, vec);
}

// Where a chunk's sums (16 x C x O floats) are past L2 (sc.order 1; ResNet's 256-channel 14x14
// layers): the 16 products are the parallel tasks, one per transformed position e, each summing
// over every image's tiles, in image order, into its own C x O slice of S, which stays in L2. dy's and x's
// transforms are made first for all images (D and X, 16 x tiles x channels floats per image each);
// a register tile of tileX vectors of output channels x tileC input channels sums over one image's
// tiles, then adds into S.
void winogradWeightTasksCpu(WinogradWeightFuncs& f, const KernelSpec& k) {
  const Schedule& sc = k.schedule;
  int W = (int)k.in[2];
  int vec = sc.vec, cv = sc.tileX, cit = sc.tileC;
  Var o = f.o, c = f.c, e = f.e, tx = f.tx, ty = f.ty, n = f.n;
  Var coo("coo"), coi("coi"), cio("cio"), cii("cii"), cvo("cvo"), cvi("cvi");
  f.S.compute_root().bound(e, 0, kWinogradTaps).vectorize(o, vec, TailStrategy::RoundUp).parallel(e);
  f.S.update().split(o, coo, coi, vec * cv, TailStrategy::RoundUp).split(coi, cvo, cvi, vec).split(c, cio, cii, cit)
      .reorder(cvi, cvo, cii, f.rn.x, f.rn.y, cio, coo, e).vectorize(cvi).unroll(cvo).unroll(cii).parallel(e);
  f.acc.compute_at(f.S, f.rn.x).bound_extent(e, 1).bound_extent(f.b, 1).bound_extent(n, 1);
  scheduleWeightRegisterTile(f, vec);
  // D's rows of O floats padded by a vector: at 1 KiB (256 channels) a block's loads, one row per
  // tile, fell on a quarter of L1's sets.
  int O = (int)k.extraIns[0][0];
  f.D.compute_root().bound(e, 0, kWinogradTaps).bound(o, 0, O).bound_storage(o, O + vec).reorder(o, e, tx, ty, n).vectorize(o, vec, TailStrategy::RoundUp).unroll(e).parallel(n);
  int xv = rowVectorWidth((W + 1) / 2, sc.lanes);
  f.X.compute_root().bound(e, 0, kWinogradTaps).reorder(tx, e, ty, c, n).unroll(e).parallel(n);
  if (xv > 1) f.X.vectorize(tx, xv, TailStrategy::ShiftInwards);
  scheduleTranspose(f.src, Func(), Var(), vec, W);
  scheduleWeightSource(f.src, k);
  f.src.xpad.compute_root().parallel(f.src.xpad.args()[3]);
  if (f.src.xpad.has_update_definition()) f.src.xpad.update().parallel(f.src.xpad.args()[3]);
  scheduleWinogradWeightOut(f, vec);
}

}  // namespace

Lowered lowerConvBackWeightWinograd(const KernelSpec& k) {
  WinogradWeightFuncs f = winogradWeightAlgorithm(k);
  if (k.schedule.order == 1) winogradWeightTasksCpu(f, k);
  else winogradWeightCpu(f, k);
  return finish(f.out, k, f.src.args);
}

Lowered lowerConvWinograd(const KernelSpec& k) {
  WinogradFuncs f = winogradAlgorithm(k);
  if (k.schedule.chanVec > 0) winogradChannelsCpu(f, k);
  else winogradCpu(f, k);
  return finish(f.out, k, f.args);
}

}  // namespace cnnc::codegen
