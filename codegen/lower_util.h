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

inline ImageParam tensorParam(const std::string& name, const Dims& d) {
  ImageParam p(Float(32), (int)d.size() + 1, name);
  declareDense(p, d);
  return p;
}

inline Expr applyAct(Expr v, Act a) {
  switch (a) {
    case Act::Relu: return max(v, 0.0f);
    case Act::Tanh: return tanh(v);
    case Act::Sigmoid: return 1.0f / (1.0f + exp(-v));
    default: return v;
  }
}

struct Vars {
  Var x{"x"}, y{"y"}, c{"c"}, n{"n"}, f{"f"}, cn{"cn"};
};

// Spatial outputs: parallel over (channel, batch), vectorised along the row.
inline void scheduleSpatial(Func out, const KernelSpec& k, Vars& v) {
  out.fuse(v.c, v.n, v.cn).parallel(v.cn);
  if (k.schedule.vec > 1) out.vectorize(v.x, k.schedule.vec);
}

inline void scheduleFlat(Func out, const KernelSpec& k, Vars& v) {
  if (k.schedule.vec > 1) out.vectorize(v.f, k.schedule.vec);
  out.parallel(v.n);
}

// Schedule of direct convolutions (forward and input gradient): a register tile of `vec`
// columns x `tileC` output channels. Each input vector loaded for a tap feeds tileC FMAs (weights
// broadcast), and the tileC accumulators stay in vector registers for the whole reduction over
// input channels and taps. The output splits shift inwards at the right and bottom edges (rows and
// channel counts need only be at least one tile), so the accumulator tile always has exactly the
// tile's extent.
inline void scheduleConvTile(Func out, Func acc, RDom r, const Schedule& sc, int channels, Vars& v) {
  Var xo("xo"), xi("xi"), co("co"), ci("ci"), t("t");
  int tc = std::min(sc.tileC, channels);
  out.split(v.x, xo, xi, sc.vec).split(v.c, co, ci, tc).reorder(xi, ci, xo, v.y, co, v.n).fuse(co, v.n, t).parallel(t);
  if (sc.vec > 1) out.vectorize(xi);
  out.unroll(ci);
  acc.compute_at(out, xo);
  if (sc.vec > 1) acc.vectorize(v.x);
  acc.unroll(v.c);
  acc.update().reorder(v.x, v.c, r.x, r.y, r.z, v.y, v.n);
  if (sc.vec > 1) acc.update().vectorize(v.x);
  acc.update().unroll(v.c);
}

inline Lowered finish(Func out, const KernelSpec& k, std::vector<Argument> args) {
  declareDense(out.output_buffer(), k.out, outputIsBatched(k.kind));
  return {Pipeline(out), std::move(args)};
}

}  // namespace cnnc::codegen
