// gpu_schedule.cpp: GPU schedules. Each kernel's algorithm is written once (lower.cpp,
// lower_train.cpp) together with its CPU schedule; for a GPU target the CPU schedule is replaced:
//
//  1. Every Func of the pipeline gets Halide's default schedule back (resetSchedule): inlined,
//     loops in definition order, no splits or specialisations. The algorithm, including Funcs
//     that rfactor made, is untouched, so the GPU kernel computes what the CPU kernel computes.
//  2. Funcs with update definitions (reductions) are computed at root; pure Funcs stay inlined
//     into their consumers, so elementwise chains fuse into one GPU kernel.
//  3. Every computed stage maps its two innermost pure loops to a 2-D block of threads and the
//     remaining pure loops to the block grid (mapStage). Reduction loops run inside each thread,
//     in their original order, so every thread sums in the CPU kernel's order.
//     Reductions to one value per channel over a large domain are reduced across a block of
//     threads through shared memory instead (blockReduce).
//  4. Direct convolutions and their input gradients (convSchedule) keep a register tile per
//     thread: 2x2 pixels x 4 output channels, accumulated over all taps and input channels before
//     one write; neighbouring threads read neighbouring pixels, so input loads coalesce and each
//     weight is one broadcast read per warp.
//
// Every stage runs on the device: a stage left on the host would need its inputs copied back,
// and the executor keeps tensors on the device between kernels (runtime/executor.cpp).
#include "gpu_schedule.h"

#include <set>

namespace cnnc::codegen {

using namespace Halide;
using namespace Halide::Internal;

bool isGpuTarget(const std::string& target) {
  Target t(target);
  return t.has_feature(Target::CUDA) || t.has_feature(Target::OpenCL);
}

Schedule gpuDefaultSchedule() {
  Schedule s;
  s.vec = 1;
  s.lanes = 16;
  s.gpu = true;
  return s;
}

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

// The reduction domain of definition `d`, found in its arguments and values.
ReductionDomain rdomOf(const Definition& d) {
  FindRDom find;
  for (const Expr& e : d.args()) e.accept(&find);
  for (const Expr& e : d.values()) e.accept(&find);
  return find.rdom;
}

// Halide's default loop nest of one definition: reduction variables innermost (in the domain's
// order), then the pure arguments, then the outermost dummy loop.
void resetStage(Definition& d, const std::vector<std::string>& pureArgs) {
  ReductionDomain rdom = rdomOf(d);
  StageSchedule& s = d.schedule();
  s.splits().clear();
  s.prefetches().clear();
  s.fused_pairs().clear();
  s.fuse_level() = FuseLoopLevel();
  s.allow_race_conditions() = false;
  s.atomic() = false;
  std::vector<Dim> dims;
  s.rvars().clear();
  if (rdom.defined()) {
    s.rvars() = rdom.domain();
    // Marking every reduction variable impure only forbids reordering them, which no GPU
    // schedule here does.
    for (const auto& rv : rdom.domain()) dims.push_back({rv.var, ForType::Serial, DeviceAPI::None, DimType::ImpureRVar});
  }
  for (size_t i = 0; i < d.args().size() && i < pureArgs.size(); ++i) {
    const Variable* v = d.args()[i].as<Variable>();
    if (v && !v->reduction_domain.defined() && !v->param.defined() && v->name == pureArgs[i])
      dims.push_back({v->name, ForType::Serial, DeviceAPI::None, DimType::PureVar});
  }
  dims.push_back({Var::outermost().name(), ForType::Serial, DeviceAPI::None, DimType::PureVar});
  s.dims() = dims;
  d.specializations().clear();
}

void resetSchedule(Function f) {
  FuncSchedule& fs = f.schedule();
  fs.compute_level() = LoopLevel::inlined();
  fs.store_level() = LoopLevel::inlined();
  fs.bounds().clear();
  fs.estimates().clear();
  fs.wrappers().clear();
  fs.memory_type() = MemoryType::Auto;
  fs.async() = false;
  fs.memoized() = false;
  std::vector<StorageDim> sd;
  for (const auto& a : f.args()) sd.push_back(StorageDim{a, Expr(), Expr(), Expr(), false});
  fs.storage_dims() = sd;
  resetStage(f.definition(), f.args());
  for (size_t i = 0; i < f.updates().size(); ++i) resetStage(f.update((int)i), f.args());
}

// The pure loops of stage `s` of `f` after resetStage, innermost first.
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
  Var bx("gbx"), by("gby"), tx("gtx"), ty("gty"), rest("grest");
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

// Step 4: the register-tiled convolution (see the header comment).
void convSchedule(Func out, Func acc, const KernelSpec& k) {
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
  RDom r(rdomOf(acc.function().update(0)));
  acc.update().reorder(ax, ay, ac, r.x, r.y, r.z).unroll(ax).unroll(ay).unroll(ac);
}

}  // namespace

void gpuSchedule(Lowered& l, const KernelSpec& k) {
  Func out = l.pipeline.outputs()[0];
  std::map<std::string, Function> env = find_transitive_calls(out.function());
  for (auto& [name, f] : env) resetSchedule(f);
  bool conv = (k.kind == KernelKind::Conv || k.kind == KernelKind::ConvBackData) && env.count("conv_acc") + env.count("convbd_acc") == 1 &&
              (env.count("conv_out") || env.count("conv_dx"));
  for (auto& [name, f] : env) {
    if (f.updates().empty() || name == out.name()) continue;
    if (conv && (name == "conv_acc" || name == "convbd_acc")) continue;
    Func F(f);
    if (blockReduce(F, false)) continue;
    F.compute_root();
    for (int s = 0; s <= (int)f.updates().size(); ++s) mapStage(s == 0 ? Stage(F) : F.update(s - 1), pureLoops(f, s), 0, 0);
  }
  if (conv) {
    convSchedule(out, Func(env.count("conv_acc") ? env.at("conv_acc") : env.at("convbd_acc")), k);
    return;
  }
  bool spatial = k.out.size() == 3 && outputIsBatched(k.kind);
  int64_t e0 = spatial ? k.out[2] : k.out.empty() ? 0 : k.out.back();
  int64_t e1 = spatial ? k.out[1] : 0;
  Function of = out.function();
  if (blockReduce(out, true)) return;
  for (int s = 0; s <= (int)of.updates().size(); ++s) mapStage(s == 0 ? Stage(out) : out.update(s - 1), pureLoops(of, s), s == 0 ? e0 : 0, s == 0 ? e1 : 0);
}

}  // namespace cnnc::codegen
