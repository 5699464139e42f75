// op_helpers.h: what the op files (codegen/ops/*.cpp) share: tensor declarations, activations, the
// zero-padded copy, and the few schedules that several ops use. Buffers are NCHW as in PyTorch, so
// Halide's dimensions are (x, y, c, n) for images and (f, n) for flat tensors.
#pragma once
#include <algorithm>
#include <string>
#include <vector>

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

// A batched activation tensor of per-image shape `d`.
inline ImageParam tensorParam(const std::string& name, const Dims& d) {
  ImageParam p(Float(32), (int)d.size() + 1, name);
  declareDense(p, d);
  return p;
}

// A fixed-size parameter tensor (no batch dimension), dims outermost first.
inline ImageParam fixedParam(const std::string& name, const Dims& d, Type t = Float(32)) {
  ImageParam p(t, (int)d.size(), name);
  declareDense(p, d, false);
  return p;
}

// A kernel's inputs, declared by name against its argument list: the `args` of its registry row,
// written next to its algorithm in the op's file. The list alone sets their order, and the plans
// bind calls to it by name (bindArgs, plan.h), so the two cannot disagree on positions. A parameter
// the list leaves out for this spec may be declared but not used (Halide rejects a use of it).
class KernelParams {
 public:
  explicit KernelParams(const KernelSpec& k);
  // A batched activation tensor of per-image shape `d` (tensorParam).
  ImageParam tensor(const std::string& name, const Dims& d);
  // A tensor without a batch dimension (fixedParam).
  ImageParam fixed(const std::string& name, const Dims& d, Type t = Float(32));
  // A parameter whose layout the algorithm sets itself.
  ImageParam declared(const std::string& name, Type t, int dims);
  // The listed arguments in order; throws std::logic_error naming one the algorithm did not declare.
  std::vector<Argument> args() const;

 private:
  ImageParam add(ImageParam p);
  const KernelSpec& k_;
  std::vector<std::string> names_;
  std::vector<ImageParam> declared_;
};

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

// `a` applied to v, by its row in activation.cpp (v itself when a is none).
Expr applyAct(Expr v, const Act& a);

// The derivative of `a` at x, where v is its output y when gradReadsOutput(a) (activation.h), else
// x itself (1 when a is none).
Expr actDeriv(Expr v, const Act& a);

// Whether zeroPadded builds the copy form (a zero fill, then the interior) for this schedule.
inline bool padAsCopy(const Schedule& sc) { return !sc.gpu && !sc.autoBatch; }

// `in` zero-extended beyond its W x H plane and shifted by (sx, sy): pad(x + sx, y + sy, c, n) =
// in(x, y, c, n). On CPU schedules (padAsCopy) it is a zero fill and then a dense copy of the
// interior, which vectorise as plain loads and stores (schedulePadded); constant_exterior's clamped
// index turned every vector of the copy into 16 scalar loads, 10-23% of a conv's time (perf,
// MiniVGG's 32x32 layers, 2-core Xeon, Sapphire Rapids class). GPU and autoscheduled kernels keep
// the pure form, which they inline into the conv. `asCopy` false asks for the pure form on the CPU
// too (depthwise convs: see depthwisePurePad in conv.cpp).
inline Func zeroPadded(Func in, int W, int H, int sx, int sy, const Schedule& sc, const std::string& name, bool asCopy = true) {
  Func pad(name);
  Var x("px"), y("py"), c("pc"), n("pn");
  if (!padAsCopy(sc) || !asCopy) {
    pad(x, y, c, n) = BoundaryConditions::constant_exterior(in, 0.0f, {{0, W}, {0, H}})(x - sx, y - sy, c, n);
    return pad;
  }
  RDom r(0, W, 0, H, name + "_r");
  pad(x, y, c, n) = 0.0f;
  pad(r.x + sx, r.y + sy, c, n) = in(r.x, r.y, c, n);
  return pad;
}

// The vector width of a copy along rows of W floats: the widest of 16 (AVX-512 only), 8, 4 that the
// row fills, so a vector shifted inwards at its end stays inside it; 1 below 4.
inline int rowVectorWidth(int64_t W, int lanes) { return W >= 16 && lanes >= 16 ? 16 : W >= 8 ? 8 : W >= 4 ? 4 : 1; }

// The CPU schedule of zeroPadded's copy form: vectors along the row; the copy walks rows across
// channels, so many pages are in flight at once.
inline void schedulePadded(Func pad, int W, const Schedule& sc) {
  if (!pad.has_update_definition()) return;
  const auto& rv = pad.update().get_schedule().rvars();  // zeroPadded's RDom over the interior
  RVar rx(rv[0].var), ry(rv[1].var);
  Var x = pad.args()[0], c = pad.args()[2], n = pad.args()[3];
  int vec = rowVectorWidth(W, sc.lanes);
  if (vec > 1) {
    pad.vectorize(x, vec);
    pad.update().vectorize(rx, vec);
  }
  pad.update().reorder(rx, c, ry, n);
}

struct Vars {
  Var x{"x"}, y{"y"}, c{"c"}, n{"n"}, f{"f"}, cn{"cn"};
};

// The element index of a batched tensor of per-image shape `d`: (x, y, c, n), or (f, n) when flat.
inline std::vector<Var> elementVars(const Dims& d, const Vars& v) {
  return d.size() == 3 ? std::vector<Var>{v.x, v.y, v.c, v.n} : std::vector<Var>{v.f, v.n};
}

// `idx` (an element of a tensor of shape `out`, elementVars order) as the element of an operand of
// shape `d` that add or mul broadcast to `out`: 0 in each dimension where d has 1 and out more.
inline std::vector<Expr> broadcastIndex(const Dims& d, const Dims& out, std::vector<Expr> e) {
  for (size_t i = 0; i < d.size(); ++i)
    if (d[i] == 1 && out[i] != 1) e[d.size() - 1 - i] = 0;
  return e;
}
inline std::vector<Expr> broadcastIndex(const Dims& d, const Dims& out, const std::vector<Var>& idx) {
  return broadcastIndex(d, out, std::vector<Expr>(idx.begin(), idx.end()));
}

// Parallel over (channel, image) planes, and at batch 8 and above over whole images: one task per
// plane was 4096 tasks of 4 KiB for MiniVGG's first block, and the per-task cost outweighed the work.
inline void parallelOverPlanes(Func out, Vars& v) {
  out.specialize(out.output_buffer().dim(3).extent() >= 8).parallel(v.n);
  out.fuse(v.c, v.n, v.cn).parallel(v.cn);
}

// Spatial outputs: parallel over (channel, batch) as parallelOverPlanes, vectorised along the row.
// Two choices are the tuner's (tune.cpp, spatialTunable): Schedule::flat 1 vectorises the plane as
// one row of H x W pixels (rows of 7 or 14 fill 4- or 8-wide vectors, each ending in a tail); and
// Schedule::task > 0 makes each parallel task `task` channels of one image, at any batch. Both are
// off in the defaults. The vector's last position shifts inwards, so it needs vec <= the row.
inline void scheduleSpatial(Func out, const KernelSpec& k, Vars& v) {
  const Schedule& s = k.schedule;
  if (s.flat && !s.gpu) {
    Var xy("xy");
    out.fuse(v.x, v.y, xy);
    if (s.vec > 1) out.vectorize(xy, s.vec);
  } else if (s.vec > 1) {
    out.vectorize(v.x, s.vec);
  }
  if (s.task > 0 && !s.gpu) {
    Var co("co"), ci("ci");
    out.split(v.c, co, ci, s.task).fuse(co, v.n, v.cn).parallel(v.cn);
    return;
  }
  parallelOverPlanes(out, v);
}

// Outputs whose pixels each read a window of a grid with strides sx, sy (a max pool's gradient, a BN
// gradient behind a folded pool): x and y split by the strides, the phases unrolled and the window
// index vectorised, so each pixel's windows are that index plus constants and their loads are dense.
// Returns the loop over rows of windows.
inline Var splitByWindow(Func out, Vars& v, int sx, int sy, int vec) {
  Var qx("qx"), qy("qy"), tx("tx"), ty("ty");
  out.split(v.x, qx, tx, sx).split(v.y, qy, ty, sy).reorder(tx, qx, ty, qy, v.c, v.n).unroll(tx).unroll(ty);
  if (vec > 1) out.vectorize(qx, vec, TailStrategy::GuardWithIf);
  return qy;
}

inline void scheduleFlat(Func out, const KernelSpec& k, Vars& v) {
  if (k.schedule.vec > 1) out.vectorize(v.f, k.schedule.vec);
  out.parallel(v.n);
}

// Sums over (x, y, n) of a per-channel reduction `f` (pure in `c`, one update over `r`) in vector
// lanes: lane i adds up the columns x = i (mod L), each in a fixed order, and the lanes are added at
// the end. A scalar sum waits for each add to finish (4 cycles) and ran at a few percent of the
// vector units. The order depends only on W and H, never on threads, so results are reproducible.
// Where W x H has more lanes to give than W (rows of 6, 12 or 14; MobileNetV2's late BNs summed
// 576 x 6 x 6 planes one float at a time), r.x and r.y are fused first: lane i then adds up the
// plane's pixels i (mod L) in row order (the tensors are dense, so the loads stay dense vectors).
// `keepRows`: no fusing where a row has 8 lanes already. The batch-norm gradients behind a folded
// 2x2 max pool read x at twice the pooled coordinates, so over the fused plane every vector was a
// gather: MiniVGG's 64-channel one (8x8 pooled planes, batch 128) 1.3 -> 0.55 ms (AMD EPYC 26/2).
// CPU schedules only: GPU schedules reduce these sums across a thread block (gpu.h).
inline void laneSum(Func f, RDom r, int W, int H = 1, bool keepRows = false) {
  auto lanesOf = [](int n) { return n % 16 == 0 ? 16 : n % 8 == 0 ? 8 : n % 4 == 0 ? 4 : 1; };
  int L = lanesOf(W);
  bool fused = lanesOf(W * H) > L && !(keepRows && L >= 8);
  if (fused) L = lanesOf(W * H);
  // Where no lane count divides the plane (SqueezeNet's 55x55, 27x27 and 13x13, ResNet's 7x7) or
  // only 4 does (14x14), lanes over the fused plane all the same, 16 of them from 64 pixels up, the
  // last vector of each plane guarded. SqueezeNet's 26 bias gradients in its step at batch 16 (AMD
  // EPYC 26/2, profiled): 14.8 -> 4.3 ms, 27% -> 92% of the memory rate; ResNet-18's BN parameter
  // gradients at batch 8 (4 lanes at 14x14 before) 4.7-5.0 -> 4.3-4.4 ms.
  bool guarded = (L == 1 && W * H >= 8) || (L < 8 && W * H >= 64);
  if (guarded) L = W * H >= 64 ? 16 : 8, fused = H > 1;
  if (L == 1) return;
  RVar rxo("rxo"), rxi("rxi"), rxy("rxy");
  Var u("u");
  Stage s = f.update();
  TailStrategy tail = guarded ? TailStrategy::GuardWithIf : TailStrategy::Auto;
  if (fused) s.fuse(r.x, r.y, rxy).split(rxy, rxo, rxi, L, tail);
  else s.split(r.x, rxo, rxi, L, tail);
  Func lanes = s.rfactor(rxi, u);
  lanes.compute_at(f, f.args()[0]).vectorize(u);
  lanes.update().vectorize(u);
}

// The kernel: `out` with its output buffer declared dense (batched unless the kind reduces over
// the batch), and its arguments in call order.
inline Lowered finish(Func out, const KernelSpec& k, std::vector<Argument> args) {
  declareDense(out.output_buffer(), k.out, outputIsBatched(k.kind));
  return {Pipeline(out), std::move(args)};
}

}  // namespace cnnc::codegen
