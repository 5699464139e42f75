// lower_util.h: helpers shared by the forward (lower.cpp) and training (lower_train.cpp) kernels.
#pragma once
#include <algorithm>

#include "lower.h"

namespace cnnc::codegen {
using namespace Halide;

// Declares a dense row-major layout with static extents `d` (outermost first, as PyTorch writes
// shapes). With `batch`, one more outer dimension of free extent holds the images.
template <typename T>
inline void declareDense(T&& b, const Dims& d, bool batch = true) {
  int rank = (int)d.size();
  int64_t stride = 1;
  for (int i = 0; i < rank; ++i) {
    int64_t extent = d[rank - 1 - i];
    b.dim(i).set_bounds(0, (int)extent).set_stride((int)stride);
    stride *= extent;
  }
  if (batch) b.dim(rank).set_min(0).set_stride((int)stride);
}

// The region of a tensor of shape `d` (outermost first) in Halide's order, plus a batch
// dimension of `batch` images when batch > 0: the estimates an autoscheduler plans for.
inline Region batchRegion(const Dims& d, int batch) {
  Region r;
  for (int i = (int)d.size() - 1; i >= 0; --i) r.push_back({0, (int)d[i]});
  if (batch > 0) r.push_back({0, batch});
  return r;
}

inline ImageParam tensorParam(const std::string& name, const Dims& d) {
  ImageParam p(Float(32), (int)d.size() + 1, name);
  declareDense(p, d);
  return p;
}

// tanh that vectorises: Halide 14 lowers tanh() to a scalar libm call per lane (LeNet-5's first
// conv spent most of its time there). Near 0 an odd Taylor polynomial (error below 1e-9 for
// |v| < 0.25); elsewhere (1 - e) / (1 + e) with e = exp(-2|v|), error about 1 ulp of the result.
inline Expr vectorTanh(Expr v) {
  Expr a = abs(v), v2 = v * v;
  Expr small = v * (1.0f + v2 * (-1.0f / 3 + v2 * (2.0f / 15 + v2 * (-17.0f / 315 + v2 * (62.0f / 2835)))));
  Expr e = exp(-2.0f * a);
  Expr big = (1.0f - e) / (1.0f + e);
  return select(a < 0.25f, small, select(v < 0.0f, -big, big));
}

inline Expr applyAct(Expr v, Act a) {
  switch (a) {
    case Act::Relu: return max(v, 0.0f);
    case Act::Tanh: return vectorTanh(v);
    case Act::Sigmoid: return 1.0f / (1.0f + exp(-v));
    default: return v;
  }
}

// `in` zero-extended beyond its W x H plane and shifted by (sx, sy): pad(x + sx, y + sy, c, n) =
// in(x, y, c, n). On CPU schedules it is a zero fill and then a dense copy of the interior, which
// vectorise as plain loads and stores; constant_exterior's clamped index turned every vector of
// the copy into 16 scalar loads, 10-23% of a conv's time here (perf, MiniVGG's 32x32 layers).
// GPU and autoscheduled kernels keep the pure form, which they inline into the conv.
inline Func zeroPadded(Func in, int W, int H, int sx, int sy, const Schedule& sc, const std::string& name) {
  Func pad(name);
  Var x("px"), y("py"), c("pc"), n("pn");
  if (sc.gpu || sc.autoBatch) {
    pad(x, y, c, n) = BoundaryConditions::constant_exterior(in, 0.0f, {{0, W}, {0, H}})(x - sx, y - sy, c, n);
    return pad;
  }
  RDom r(0, W, 0, H, name + "_r");
  pad(x, y, c, n) = 0.0f;
  pad(r.x + sx, r.y + sy, c, n) = in(r.x, r.y, c, n);
  int vec = W >= 16 && sc.lanes >= 16 ? 16 : W >= 8 ? 8 : W >= 4 ? 4 : 1;
  if (vec > 1) {
    pad.vectorize(x, vec);
    pad.update().vectorize(r.x, vec);
  }
  pad.update().reorder(r.x, c, r.y, n);
  return pad;
}

struct Vars {
  Var x{"x"}, y{"y"}, c{"c"}, n{"n"}, f{"f"}, cn{"cn"};
};

// Spatial outputs: parallel over (channel, batch), vectorised along the row.
// At batch 8 and above the tasks are whole images: one task per (channel, image) plane was 4096
// tasks of 4 KiB for MiniVGG's first block, and the per-task cost outweighed the work.
inline void scheduleSpatial(Func out, const KernelSpec& k, Vars& v) {
  if (k.schedule.vec > 1) out.vectorize(v.x, k.schedule.vec);
  out.specialize(out.output_buffer().dim(3).extent() >= 8).parallel(v.n);
  out.fuse(v.c, v.n, v.cn).parallel(v.cn);
}

inline void scheduleFlat(Func out, const KernelSpec& k, Vars& v) {
  if (k.schedule.vec > 1) out.vectorize(v.f, k.schedule.vec);
  out.parallel(v.n);
}

// Schedule of direct convolutions (forward and input gradient): a register tile of
// (tileX vectors of `vec` columns) x tileY rows x tileC output channels. Each input vector loaded
// for a tap feeds tileC FMAs (weights broadcast), each weight broadcast feeds tileX x tileY, and the
// accumulators stay in vector registers for the whole reduction over input channels and taps. The
// splits shift inwards at the right and bottom edges (the output needs only be at least one tile),
// so the accumulator tile always has exactly the tile's extent.
// With `inner`, `out` is not the pipeline's output but one stage computed per image by it (the
// phases of a strided input gradient): no padded source, no batch-parallel specialisation.
inline void scheduleConvTile(Func out, Func acc, RDom r, const Schedule& sc, int channels, Vars& v, Func padded = Func(), bool inner = false) {
  Var xo("xo"), xi("xi"), xv("xv"), yo("yo"), yi("yi"), co("co"), ci("ci");
  int tc = std::min(sc.tileC, channels);
  out.split(v.x, xo, xi, sc.vec * sc.tileX).split(v.y, yo, yi, sc.tileY).split(v.c, co, ci, tc)
      .reorder(xi, yi, ci, xo, yo, co, v.n);
  out.split(xi, xv, xi, sc.vec).reorder(xi, xv, yi, ci);
  if (sc.vec > 1) out.vectorize(xi);
  out.unroll(xv).unroll(yi).unroll(ci);
  // The zero-padded source is copied once per image: read in place, the border test turns every
  // vector load of the reduction into a gather of single floats.
  if (padded.defined()) {
    padded.compute_at(out, v.n);
    if (sc.vec > 1 && !padded.has_update_definition()) padded.vectorize(padded.args()[0], sc.vec);
  }
  // Large batches: one image per task (the padded copy stays in its thread's cache); small ones:
  // the output channel tiles of an image in parallel.
  if (!inner) out.specialize(out.output_buffer().dim(3).extent() >= 8).parallel(v.n);
  out.parallel(co);
  acc.compute_at(out, xo);
  Var ax("ax"), axv("axv");
  acc.split(v.x, axv, ax, sc.vec).reorder(ax, axv, v.y, v.c);
  if (sc.vec > 1) acc.vectorize(ax);
  acc.unroll(axv).unroll(v.y).unroll(v.c);
  acc.update().split(v.x, axv, ax, sc.vec).reorder(ax, axv, v.y, v.c, r.x, r.y, r.z, v.n);
  if (sc.vec > 1) acc.update().vectorize(ax);
  acc.update().unroll(axv).unroll(v.y).unroll(v.c);
}

// Conv weights for channel vectors, blocked: wt(c, kx, ky, k) reads block (c / T) of T = vec x
// chanVec channels, stored [blocks][K][kh][kw][T], so one tile's weights for a run of the reduction
// are contiguous (a stride of O floats between taps mapped them onto a few L1 sets). `w5` is the
// 5-D blocked tensor (cl, kx, ky, k, cb); it is either the packed ImageParam (inference) or a Func
// copied from the weights once per call (training).
inline Func blockedWeights(Func w5, int T) {
  Func wt("weight_t");
  Var c("wc"), x("wx"), y("wy"), z("wz");
  wt(c, x, y, z) = w5(c % T, x, y, z, c / T);
  return wt;
}

// The weights w (Halide dims kx, ky, ci, co) copied once per call into the blocked layout that
// blockedWeights reads: blocks of T output channels for a forward conv, of T input channels
// (`overInputs`) for an input gradient, whose outputs are the forward conv's inputs.
inline Func blockedCopy(ImageParam w, int T, bool overInputs, const std::string& name = "weight_blocked") {
  Func copy(name);
  Var l("bl"), x("tx"), y("ty"), z("tz"), b("cb");
  copy(l, x, y, z, b) = overInputs ? w(x, y, b * T + l, z) : w(x, y, z, b * T + l);
  return copy;
}

// Schedule of direct convolutions with small rows (sc.chanVec > 0): vectors run along output
// channels. For each image and block of T = vec x chanVec channels, the accumulators of the whole
// image live in a small buffer (W x H x T floats, W below 16). The reduction over input channels runs
// in chunks whose weights fit in L1 (about 16 KiB); within a chunk each register tile of
// tileX x tileY pixels x chanVec vectors sums over the chunk's taps: each tap loads chanVec
// weight vectors and broadcasts one source float per pixel into tileX * tileY * chanVec FMAs.
// (Without chunks every tile streamed all of the block's weights: ResNet-18's 7x7 layers read
// 9.4 MiB seven times per image and ran at a quarter of the 56x56 layers' rate.)
// `wcopy`, when defined, is the blocked copy of the weights made once per call.
// `inner` as for scheduleConvTile.
inline void scheduleConvChannels(Func out, Func acc, Func wcopy, RDom r, const Schedule& sc, Vars& v, Func padded = Func(), bool inner = false) {
  Var co("co"), ci("ci"), cv("cv"), cl("cl"), xo("xo"), xi("xi"), yo("yo"), yi("yi");
  RVar rzo("rzo"), rzi("rzi");
  int T = sc.vec * sc.chanVec;
  out.split(v.c, co, ci, T).reorder(v.x, v.y, ci, co, v.n);
  if (sc.tileX >= 4) out.vectorize(v.x, 4, TailStrategy::GuardWithIf);
  if (padded.defined()) padded.compute_at(out, v.n);
  if (!inner) out.specialize(out.output_buffer().dim(3).extent() >= 8).parallel(v.n);
  out.parallel(co);
  if (wcopy.defined()) wcopy.compute_root().parallel(wcopy.args()[4]).vectorize(wcopy.args()[0], sc.vec);
  auto extent = [](RVar rv) { const int64_t* e = Internal::as_const_int(rv.extent()); return e ? (int)*e : 1; };
  int taps = extent(r.x) * extent(r.y), K = extent(r.z);
  int chunk = std::max(1, 4096 / (taps * T));
  while (chunk > 1 && K % chunk) --chunk;
  acc.compute_at(out, co).reorder_storage(v.c, v.x, v.y, v.n);
  acc.vectorize(v.c, sc.vec);
  acc.update().split(v.x, xo, xi, sc.tileX).split(v.y, yo, yi, sc.tileY).split(v.c, cv, cl, sc.vec).split(r.z, rzo, rzi, chunk)
      .reorder(cl, cv, xi, yi, r.x, r.y, rzi, xo, yo, rzo, v.n)
      .vectorize(cl).unroll(cv).unroll(xi).unroll(yi);
}

// Sums over (x, y, n) of a per-channel reduction `f` (pure in `c`, one update over `r`) in vector
// lanes: lane i adds up the columns x = i (mod L), each in a fixed order, and the lanes are added at
// the end. A scalar sum waits for each add to finish (4 cycles) and ran at a few percent of the
// vector units here. The order depends only on W, never on threads, so results are reproducible.
// GPU schedules reduce these sums across a thread block instead (gpu_schedule.cpp).
inline void laneSum(Func f, RDom r, int W, const Schedule& sc) {
  if (sc.gpu) return;
  int L = W % 16 == 0 ? 16 : W % 8 == 0 ? 8 : W % 4 == 0 ? 4 : 1;
  if (L == 1) return;
  RVar rxo("rxo"), rxi("rxi");
  Var u("u");
  Func lanes = f.update().split(r.x, rxo, rxi, L).rfactor(rxi, u);
  lanes.compute_at(f, f.args()[0]).vectorize(u);
  lanes.update().vectorize(u);
}

inline Lowered finish(Func out, const KernelSpec& k, std::vector<Argument> args) {
  declareDense(out.output_buffer(), k.out, outputIsBatched(k.kind));
  return {Pipeline(out), std::move(args)};
}

}  // namespace cnnc::codegen
