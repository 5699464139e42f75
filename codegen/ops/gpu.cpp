// gpu.cpp: GPU schedules. Each kernel's algorithm is written once, in its op file; on a GPU target
// the op's GPU schedule places its Funcs instead of the CPU schedule:
//
//  1. Pure Funcs stay inlined into their consumers (Halide's default), so elementwise chains fuse
//     into one GPU kernel.
//  2. Funcs with update definitions (reductions) are computed at root.
//  3. Every computed stage maps its two innermost pure loops to a 2-D block of threads and the
//     remaining pure loops to the block grid (mapStage). Reduction loops run inside each thread,
//     in their original order, so every thread sums in the CPU kernel's order.
//     Reductions to one value per channel over a large domain are reduced across a block of
//     threads through shared memory instead (blockReduce).
//  4. Direct convolutions and their input gradients (gpuConvSchedule) keep a register tile per
//     thread: 2x2 pixels x 4 output channels, accumulated over all taps and input channels before
//     one write; neighbouring threads read neighbouring pixels, so input loads coalesce and each
//     weight is one broadcast read per warp.
//
// Every stage runs on the device: a stage left on the host would need its inputs copied back,
// and the executor keeps tensors on the device between kernels (runtime/executor.cpp).
#include "gpu.h"

#include <map>

namespace cnnc::codegen {

using namespace Halide::Internal;

namespace {

// The reduction domain an update definition runs over (undefined for none).
class FindRDom : public IRGraphVisitor {
  using IRGraphVisitor::visit;
  void visit(const Variable* v) override {
    if (v->reduction_domain.defined()) rdom = v->reduction_domain;
  }

public:
  ReductionDomain rdom;
};

ReductionDomain rdomOf(const Definition& d) {
  FindRDom find;
  for (const Expr& e : d.args()) e.accept(&find);
  for (const Expr& e : d.values()) e.accept(&find);
  return find.rdom;
}

// The pure loops of stage `s` of `f` in Halide's default loop nest, innermost first.
std::vector<Var> pureLoops(const Function& f, int s) {
  const Definition& d = s == 0 ? f.definition() : f.update(s - 1);
  std::vector<Var> out;
  for (const Dim& dim : d.schedule().dims())
    if (dim.dim_type == DimType::PureVar && dim.var != Var::outermost().name()) out.push_back(Var(dim.var));
  return out;
}

int pow2AtMost(int64_t e, int cap) {
  int t = 1;
  while (t * 2 <= cap && t * 2 <= e) t *= 2;
  return t;
}

// Threads over the two innermost pure loops (tx x ty, 256 at most), blocks over the rest.
// `ext0`/`ext1`: the loops' extents where known (0: unknown).
void mapStage(Stage st, const std::vector<Var>& pure, int64_t ext0, int64_t ext1) {
  if (pure.empty()) {
    st.gpu_single_thread();
    return;
  }
  Var bx("gbx"), by("gby"), tx("gtx"), ty("gty");
  if (pure.size() == 1) {
    st.gpu_tile(pure[0], bx, tx, ext0 ? pow2AtMost(ext0, 256) : 256, TailStrategy::GuardWithIf);
    return;
  }
  int w = ext0 ? pow2AtMost(ext0, 32) : 16;
  int h = ext1 ? pow2AtMost(ext1, 256 / w) : 256 / w;
  st.gpu_tile(pure[0], pure[1], bx, by, tx, ty, w, h, TailStrategy::GuardWithIf);
  if (pure.size() >= 3) {
    Var fused = pure[2];
    for (size_t i = 3; i < pure.size(); ++i) {
      Var next("gf" + std::to_string(i));
      st.fuse(fused, pure[i], next);
      fused = next;
    }
    st.gpu_blocks(fused);
  }
}

// Step 3b: a reduction with one output per channel (BN statistics and parameter gradients, bias
// gradients) reduced across a block of threads, when its domain is large. One thread per output
// would leave most of the GPU idle: a BN over 64 channels is 64 threads, each summing N x H x W
// floats. Instead:
//  a. Two reduction variables are split and their inner parts factored out (rfactor): x by
//     tx = up to 32, so that neighbouring threads read neighbouring floats, and the largest other
//     variable (the batch where rows are few) by ty = 128 / tx. partial(c, tx, ty) sums the
//     elements whose x and other variable are tx and ty modulo the split factors.
//  b. Each output c is one block; its 128 partials are computed by 128 threads and staged in shared
//     memory (computed at the block's loop).
//  c. One thread of the block adds the partials in a fixed order.
// The order of the sums differs from the CPU kernels'; it depends only on the shapes, never on the
// launch, so results are reproducible.
constexpr int kBlockThreads = 128;

int64_t constExtent(const RVar& v, int64_t unknown) {
  const int64_t* e = as_const_int(v.extent());
  return e ? *e : unknown;
}

bool blockReduce(Func F, bool isOutput) {
  Function f = F.function();
  if (f.updates().size() != 1 || f.args().size() != 1 || pureLoops(f, 1).size() != 1) return false;
  ReductionDomain rdom = rdomOf(f.update(0));
  if (!rdom.defined()) return false;
  RDom r(rdom);
  // Non-constant extents are the batch: counted as 64 images.
  int64_t size = 1;
  for (int i = 0; i < r.dimensions(); ++i) size *= constExtent(r[i], 64);
  if (size < 4 * kBlockThreads) return false;
  Var c(f.args()[0]), cb("gcb"), ct("gct"), tx("gtx"), ty("gty");
  RVar xo("grxo"), xi("grxi"), yo("gryo"), yi("gryi");
  int other = -1;
  for (int i = 1; i < r.dimensions(); ++i)
    if (other < 0 || constExtent(r[i], 1 << 20) > constExtent(r[other], 1 << 20)) other = i;
  int64_t ex = constExtent(r[0], 1 << 20);
  Func partial;
  if (other >= 0 && ex >= 4) {
    int wx = pow2AtMost(ex, 32), wy = kBlockThreads / wx;
    partial = F.update().split(r[0], xo, xi, wx, TailStrategy::GuardWithIf).split(r[other], yo, yi, wy, TailStrategy::GuardWithIf)
                  .rfactor({{xi, tx}, {yi, ty}});
    partial.compute_at(F, cb).store_in(MemoryType::GPUShared).gpu_threads(tx, ty);
    partial.update().gpu_threads(tx, ty);
  } else {
    int big = other >= 0 && constExtent(r[other], 1 << 20) > ex ? other : 0;
    partial = F.update().split(r[big], xo, xi, kBlockThreads, TailStrategy::GuardWithIf).rfactor(xi, tx);
    partial.compute_at(F, cb).store_in(MemoryType::GPUShared).gpu_threads(tx);
    partial.update().gpu_threads(tx);
  }
  if (!isOutput) F.compute_root();
  mapStage(Stage(F), {c}, 0, 0);
  F.update().split(c, cb, ct, 1).gpu_blocks(cb).gpu_threads(ct);
  return true;
}

// Steps 2 and 3 for the reductions `out` calls, except those of `placed`.
void scheduleReductions(Func out, const std::vector<Func>& placed) {
  // Every Func the pipeline calls, including those Halide's inline reductions (sum, maximum,
  // argmax) create, which an op cannot name.
  std::map<std::string, Function> env = find_transitive_calls(out.function());
  for (auto& [name, f] : env) {
    if (f.updates().empty() || f.same_as(out.function())) continue;
    bool own = false;
    for (const Func& p : placed) own = own || f.same_as(p.function());
    if (own) continue;
    Func F(f);
    if (blockReduce(F, false)) continue;
    F.compute_root();
    for (int s = 0; s <= (int)f.updates().size(); ++s) mapStage(s == 0 ? Stage(F) : F.update(s - 1), pureLoops(f, s), 0, 0);
  }
}

}  // namespace

void gpuSchedule(Func out, const KernelSpec& k, const std::vector<Func>& placed) {
  scheduleReductions(out, placed);
  bool spatial = k.out.size() == 3 && outputIsBatched(k.kind);
  int64_t e0 = spatial ? k.out[2] : k.out.empty() ? 0 : k.out.back();
  int64_t e1 = spatial ? k.out[1] : 0;
  Function of = out.function();
  if (blockReduce(out, true)) return;
  for (int s = 0; s <= (int)of.updates().size(); ++s) mapStage(s == 0 ? Stage(out) : out.update(s - 1), pureLoops(of, s), s == 0 ? e0 : 0, s == 0 ? e1 : 0);
}

void gpuConvSchedule(Func out, Func acc, RDom r, const KernelSpec& k) {
  scheduleReductions(out, {acc});
  Var x = out.args()[0], y = out.args()[1], c = out.args()[2], n = out.args()[3];
  Var xo("cxo"), yo("cyo"), co("cco"), xi("cxi"), yi("cyi"), ci("cci"), xt("cxt"), yt("cyt"), cn("ccn");
  int64_t C = k.out[0];
  int tc = C % 4 == 0 ? 4 : C % 2 == 0 ? 2 : 1;
  // Threads: 16 x 8 tiles of 2x2 pixels (32 x 16 outputs per block), fewer where the image is smaller.
  int tw = pow2AtMost((k.out[2] + 1) / 2, 16), th = pow2AtMost((k.out[1] + 1) / 2, 128 / tw);
  out.split(x, xo, xi, 2 * tw, TailStrategy::GuardWithIf).split(y, yo, yi, 2 * th, TailStrategy::GuardWithIf)
      .split(c, co, ci, tc, TailStrategy::GuardWithIf)
      .split(xi, xt, xi, 2).split(yi, yt, yi, 2)
      .reorder(xi, yi, ci, xt, yt, xo, yo, co, n)
      .fuse(co, n, cn)
      .gpu_blocks(xo, yo, cn)
      .gpu_threads(xt, yt)
      .unroll(xi).unroll(yi).unroll(ci);
  acc.compute_at(out, xt).store_in(MemoryType::Register);
  Var ax = acc.args()[0], ay = acc.args()[1], ac = acc.args()[2];
  acc.unroll(ax).unroll(ay).unroll(ac);
  acc.update().reorder(ax, ay, ac, r.x, r.y, r.z).unroll(ax).unroll(ay).unroll(ac);
}

}  // namespace cnnc::codegen
