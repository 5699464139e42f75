// lower.cpp: the algorithm of each kernel kind in Halide, followed by its default schedule.
#include "lower.h"

#include "lower_util.h"
#include "winograd.h"

#include <limits>

namespace cnnc::codegen {

using namespace Halide;

namespace {

Lowered conv(const KernelSpec& k) {
  if (k.schedule.winograd) return convWinograd(k);
  Vars v;
  const Attrs& a = k.attrs;
  int64_t C = k.in[0], H = k.in[1], W = k.in[2], O = k.out[0];
  int64_t cig = C / a.groups, cog = O / a.groups;
  ImageParam in = tensorParam("input", k.in);
  // Inference convs with channel vectors take their weights packed at load ([O/T,C,kh,kw,T]).
  int T = k.schedule.vec * k.schedule.chanVec;
  ImageParam w(Float(32), k.packedWeights ? 5 : 4, "weight");
  if (k.packedWeights) declareDense(w, {O / T, cig, a.kernel[0], a.kernel[1], T}, false);
  else declareDense(w, {O, cig, a.kernel[0], a.kernel[1]}, false);
  ImageParam b(Float(32), 1, "bias");
  declareDense(b, {O}, false);
  std::vector<Argument> args{in, w, b};
  Func src("src");
  if (a.pad[0] || a.pad[1]) src = zeroPadded(in, (int)W, (int)H, 0, 0, k.schedule, "src");
  else src(v.x, v.y, v.c, v.n) = in(v.x, v.y, v.c, v.n);
  RDom r(0, (int)a.kernel[1], 0, (int)a.kernel[0], 0, (int)cig, "r");
  Expr g = a.groups == 1 ? Expr(0) : v.c / (int)cog;
  Func acc("conv_acc");
  acc(v.x, v.y, v.c, v.n) = b(v.c);
  // With channel vectors the weights are read in blocks of T output channels: packed at load
  // (inference), or copied once per call (training, where weights change every step).
  Func wcopy, wt;
  if (k.schedule.chanVec) {
    if (!k.packedWeights) wcopy = blockedCopy(w, T, false);
    wt = blockedWeights(k.packedWeights ? Func(w) : wcopy, T);
  }
  Expr wv = k.schedule.chanVec ? wt(v.c, r.x, r.y, r.z) : w(r.x, r.y, r.z, v.c);
  acc(v.x, v.y, v.c, v.n) += wv *
      src(v.x * (int)a.stride[1] + r.x * (int)a.dilation[1] - (int)a.pad[1], v.y * (int)a.stride[0] + r.y * (int)a.dilation[0] - (int)a.pad[0],
          g * (int)cig + r.z, v.n);
  Expr val = acc(v.x, v.y, v.c, v.n);
  ImageParam res;
  if (k.residual) {
    res = tensorParam("residual", k.out);
    args.push_back(res);
    val = val + res(v.x, v.y, v.c, v.n);
  }
  Func out("conv_out");
  out(v.x, v.y, v.c, v.n) = applyAct(val, k.act);
  if (k.schedule.autoBatch) {  // scheduled by Adams2019 at compile time: estimates only
    int N = k.schedule.autoBatch;
    in.set_estimates(batchRegion(k.in, N));
    w.set_estimates(batchRegion({O, cig, a.kernel[0], a.kernel[1]}, 0));
    b.set_estimates({{0, (int)O}});
    if (k.residual) res.set_estimates(batchRegion(k.out, N));
    out.set_estimates(batchRegion(k.out, N));
    return finish(out, k, args);
  }
  if (k.schedule.chanVec) scheduleConvChannels(out, acc, k.packedWeights ? Func() : wcopy, r, k.schedule, v, a.pad[0] || a.pad[1] ? src : Func());
  else scheduleConvTile(out, acc, r, k.schedule, (int)k.out[0], v, a.pad[0] || a.pad[1] ? src : Func());
  return finish(out, k, args);
}

Lowered linear(const KernelSpec& k) {
  Vars v;
  int64_t F = k.in[0], O = k.out[0];
  ImageParam in = tensorParam("input", k.in);
  ImageParam w(Float(32), 2, "weight");
  declareDense(w, {O, F}, false);
  ImageParam b(Float(32), 1, "bias");
  declareDense(b, {O}, false);
  RDom r(0, (int)F, "r");
  Func dot("dot");
  dot(v.f, v.n) = b(v.f);
  dot(v.f, v.n) += w(r, v.f) * in(r, v.n);
  Func out("linear_out");
  if (O < 16) {
    out(v.f, v.n) = applyAct(dot(v.f, v.n), k.act);
  } else {
    // Batches of 8 or more run as a matrix multiply over a transposed copy of the weights
    // ([F][O], made once per call): a register tile of 16 outputs x 8 images takes one weight
    // vector and 8 broadcast inputs per step of the reduction. The row-by-row dot products below
    // wait on each add; LeNet-5's fc1 and fc2 ran at 11-33 GFLOP/s that way at batch 128.
    // The tiles shift inwards at the edges (O >= 16 and N >= 8 here): an element two tiles
    // share is summed in the same order by both, so both write the same float.
    Expr batched = in.dim(1).extent() >= 8;
    Func wT("linear_wT"), mm("linear_mm");
    wT(v.f, v.n) = w(v.n, v.f);  // (output, input)
    mm(v.f, v.n) = b(v.f);
    mm(v.f, v.n) += wT(v.f, r) * in(r, v.n);
    out(v.f, v.n) = applyAct(select(batched, mm(v.f, v.n), dot(v.f, v.n)), k.act);
    Var fo("fo"), fi("fi"), no("no"), ni("ni");
    out.specialize(batched)
        .split(v.f, fo, fi, 16, TailStrategy::ShiftInwards)
        .split(v.n, no, ni, 8, TailStrategy::ShiftInwards)
        .reorder(fi, ni, fo, no)
        .vectorize(fi)
        .unroll(ni)
        .parallel(no);
    mm.compute_at(out, fo).vectorize(v.f).unroll(v.n);
    mm.update().reorder(v.f, v.n, r).vectorize(v.f).unroll(v.n);
    wT.compute_root().parallel(v.n, 16);
  }
  // Blocks of outputs run in parallel; each output's dot product walks its weight row
  // contiguously. (Fusing f and n here would make bounds inference compute every output per
  // iteration.) The last block is guarded, not shifted inwards: shifted blocks overlap, two threads
  // then write the overlap, and LLVM may sum a dot product in another order in each block, so the
  // result depended on which thread wrote last (seen as 1-ulp differences between runs).
  Var fo("fo"), fi("fi");
  int blk = (int)std::min<int64_t>(16, O);
  out.split(v.f, fo, fi, blk, TailStrategy::GuardWithIf).reorder(fi, fo, v.n).parallel(fo);
  dot.compute_at(out, fo);
  dot.update().reorder(r, v.f, v.n);
  return finish(out, k, {in, w, b});
}

Lowered affine(const KernelSpec& k) {
  Vars v;
  ImageParam in = tensorParam("input", k.in);
  ImageParam sc(Float(32), 1, "scale"), sh(Float(32), 1, "shift");
  declareDense(sc, {k.in[0]}, false);
  declareDense(sh, {k.in[0]}, false);
  Func out("affine_out");
  if (k.in.size() == 3) {
    out(v.x, v.y, v.c, v.n) = applyAct(in(v.x, v.y, v.c, v.n) * sc(v.c) + sh(v.c), k.act);
    scheduleSpatial(out, k, v);
  } else {
    out(v.f, v.n) = applyAct(in(v.f, v.n) * sc(v.f) + sh(v.f), k.act);
    scheduleFlat(out, k, v);
  }
  return finish(out, k, {in, sc, sh});
}

// Elementwise kernels over any rank: activation alone, or a two-input add.
Lowered elementwise(const KernelSpec& k) {
  Vars v;
  ImageParam a = tensorParam("a", k.in);
  std::vector<Argument> args{a};
  bool spatial = k.in.size() == 3;
  std::vector<Var> idx = spatial ? std::vector<Var>{v.x, v.y, v.c, v.n} : std::vector<Var>{v.f, v.n};
  std::vector<Expr> ix(idx.begin(), idx.end());
  Expr val = a(ix);
  if (k.kind == KernelKind::Add) {
    ImageParam b = tensorParam("b", k.extraIns[0]);
    args.push_back(b);
    val = val + b(ix);
  }
  Func out(k.kind == KernelKind::Add ? "add_out" : "act_out");
  out(idx) = applyAct(val, k.act);
  if (spatial) scheduleSpatial(out, k, v);
  else scheduleFlat(out, k, v);
  return finish(out, k, args);
}

Lowered pool(const KernelSpec& k) {
  Vars v;
  const Attrs& a = k.attrs;
  int64_t H = k.in[1], W = k.in[2];
  ImageParam in = tensorParam("input", k.in);
  Func out(k.kind == KernelKind::MaxPool ? "maxpool_out" : "avgpool_out");
  RDom r(0, (int)a.kernel[1], 0, (int)a.kernel[0], "r");
  Expr x0 = v.x * (int)a.stride[1] - (int)a.pad[1], y0 = v.y * (int)a.stride[0] - (int)a.pad[0];
  if (k.kind == KernelKind::MaxPool) {
    Func src = BoundaryConditions::constant_exterior(in, -std::numeric_limits<float>::infinity(), {{0, (int)W}, {0, (int)H}});
    out(v.x, v.y, v.c, v.n) = maximum(src(x0 + r.x * (int)a.dilation[1], y0 + r.y * (int)a.dilation[0], v.c, v.n));
  } else {
    // PyTorch's divisor: the window clipped to the padded input (count_include_pad) or to the input.
    Func src = BoundaryConditions::constant_exterior(in, 0.0f, {{0, (int)W}, {0, (int)H}});
    Expr x1 = min(x0 + (int)a.kernel[1], (int)(W + a.pad[1])), y1 = min(y0 + (int)a.kernel[0], (int)(H + a.pad[0]));
    Expr padded = (x1 - x0) * (y1 - y0);
    Expr inside = (min(x1, (int)W) - max(x0, 0)) * (min(y1, (int)H) - max(y0, 0));
    Expr div = a.countIncludePad ? padded : inside;
    out(v.x, v.y, v.c, v.n) = sum(src(x0 + r.x, y0 + r.y, v.c, v.n)) / cast<float>(div);
  }
  scheduleSpatial(out, k, v);
  return finish(out, k, {in});
}

Lowered adaptiveAvg(const KernelSpec& k) {
  Vars v;
  int64_t H = k.in[1], W = k.in[2], OH = k.out[1], OW = k.out[2];
  ImageParam in = tensorParam("input", k.in);
  Expr y0 = (v.y * (int)H) / (int)OH, y1 = ((v.y + 1) * (int)H + (int)OH - 1) / (int)OH;
  Expr x0 = (v.x * (int)W) / (int)OW, x1 = ((v.x + 1) * (int)W + (int)OW - 1) / (int)OW;
  int kh = (int)((H + OH - 1) / OH + 1), kw = (int)((W + OW - 1) / OW + 1);
  RDom r(0, std::min<int>(kw, (int)W), 0, std::min<int>(kh, (int)H), "r");
  Expr xs = min(x0 + r.x, (int)W - 1), ys = min(y0 + r.y, (int)H - 1);
  Expr inWin = x0 + r.x < x1 && y0 + r.y < y1;
  Func out("adaptiveavg_out");
  out(v.x, v.y, v.c, v.n) = sum(select(inWin, in(xs, ys, v.c, v.n), 0.0f)) / cast<float>((x1 - x0) * (y1 - y0));
  // Tasks of at least 16K input floats: one task per (channel, image) plane was 16K tasks of 16
  // floats for MiniVGG's global pool at batch 128, 1.3 ms of task overhead.
  Var cno("cno"), cni("cni");
  int planes = (int)std::max<int64_t>(1, 16384 / (H * W));
  out.fuse(v.c, v.n, v.cn).split(v.cn, cno, cni, planes, TailStrategy::GuardWithIf).parallel(cno);
  return finish(out, k, {in});
}

Lowered lrn(const KernelSpec& k) {
  Vars v;
  const Attrs& a = k.attrs;
  int64_t C = k.in[0];
  ImageParam in = tensorParam("input", k.in);
  RDom r(0, (int)a.size, "r");
  Expr cc = v.c - (int)(a.size / 2) + r;
  Expr val = in(v.x, v.y, clamp(cc, 0, (int)C - 1), v.n);
  Func sq("lrn_sq");
  sq(v.x, v.y, v.c, v.n) = sum(select(cc >= 0 && cc < (int)C, val * val, 0.0f));
  Func out("lrn_out");
  Expr div = pow((float)a.k + (float)(a.alpha / a.size) * sq(v.x, v.y, v.c, v.n), (float)a.beta);
  out(v.x, v.y, v.c, v.n) = in(v.x, v.y, v.c, v.n) / div;
  scheduleSpatial(out, k, v);
  return finish(out, k, {in});
}

Lowered softmax(const KernelSpec& k) {
  Vars v;
  ImageParam in = tensorParam("input", k.in);
  Func out("softmax_out"), mx("softmax_max"), e("softmax_exp"), s("softmax_sum");
  RDom r(0, (int)k.in[0], "r");
  if (k.in.size() == 1) {
    mx(v.n) = maximum(in(r, v.n));
    e(v.f, v.n) = exp(in(v.f, v.n) - mx(v.n));
    s(v.n) = sum(e(r, v.n));
    out(v.f, v.n) = e(v.f, v.n) / s(v.n);
    out.parallel(v.n);
    mx.compute_at(out, v.n);
    e.compute_at(out, v.n);
    s.compute_at(out, v.n);
  } else {
    mx(v.x, v.y, v.n) = maximum(in(v.x, v.y, r, v.n));
    e(v.x, v.y, v.c, v.n) = exp(in(v.x, v.y, v.c, v.n) - mx(v.x, v.y, v.n));
    s(v.x, v.y, v.n) = sum(e(v.x, v.y, r, v.n));
    out(v.x, v.y, v.c, v.n) = e(v.x, v.y, v.c, v.n) / s(v.x, v.y, v.n);
    out.parallel(v.n);
    mx.compute_at(out, v.n);
    e.compute_at(out, v.n);
    s.compute_at(out, v.n);
  }
  return finish(out, k, {in});
}

Lowered concat(const KernelSpec& k) {
  Vars v;
  std::vector<Dims> shapes{k.in};
  shapes.insert(shapes.end(), k.extraIns.begin(), k.extraIns.end());
  std::vector<ImageParam> ins;
  std::vector<Argument> args;
  for (size_t i = 0; i < shapes.size(); ++i) {
    ins.push_back(tensorParam("in" + std::to_string(i), shapes[i]));
    args.push_back(ins.back());
  }
  bool spatial = k.in.size() == 3;
  Var ch = spatial ? v.c : v.f;
  // Walk the inputs backwards so the first matching range wins in the select chain.
  int64_t total = 0;
  std::vector<int64_t> starts;
  for (const auto& s : shapes) { starts.push_back(total); total += s[0]; }
  Expr val = 0.0f;
  for (int i = (int)shapes.size() - 1; i >= 0; --i) {
    Expr local = clamp(ch - (int)starts[i], 0, (int)shapes[i][0] - 1);
    Expr pick = spatial ? ins[i](v.x, v.y, local, v.n) : ins[i](local, v.n);
    val = i == (int)shapes.size() - 1 ? pick : select(ch < (int)(starts[i] + shapes[i][0]), pick, val);
  }
  Func out("concat_out");
  if (spatial) {
    out(v.x, v.y, v.c, v.n) = val;
    scheduleSpatial(out, k, v);
  } else {
    out(v.f, v.n) = val;
    out.parallel(v.n);
  }
  return finish(out, k, args);
}

}  // namespace

Lowered lowerKernel(const KernelSpec& k) {
  switch (k.kind) {
    case KernelKind::Conv: return conv(k);
    case KernelKind::Linear: return linear(k);
    case KernelKind::Affine: return affine(k);
    case KernelKind::Activation:
    case KernelKind::Add: return elementwise(k);
    case KernelKind::MaxPool:
    case KernelKind::AvgPool: return pool(k);
    case KernelKind::AdaptiveAvgPool: return adaptiveAvg(k);
    case KernelKind::LRN: return lrn(k);
    case KernelKind::Softmax: return softmax(k);
    case KernelKind::Concat: return concat(k);
    default: return lowerTrainingKernel(k);
  }
  throw std::runtime_error("unknown kernel kind");
}

}  // namespace cnnc::codegen
