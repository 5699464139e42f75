// linear.cpp: the linear op (nn.Linear). Its bias gradient is bias.cpp's.
//
//   Linear            x[F], w[O,F], b[O] -> y[O] = act(b + w x)
//   LinearBackData    dy[O], w -> dx[F] = w^T dy
//   LinearBackWeight  dy[O], x[F] -> dw[O,F] = sum over the batch of dy x^T (not batched)
#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

// ---- Linear: forward ----

struct LinearFuncs {
  Func out{"linear_out"}, dot{"dot"}, wT{"linear_wT"}, mm{"linear_mm"};
  RDom r;
  Expr batched;  // O >= 16: the matrix-multiply form serves batches of 8 or more
  std::vector<Argument> args;
};

bool hasMatmulForm(const KernelSpec& k) { return k.out[0] >= 16; }

// The tuner's choices (tune.cpp; the defaults leave them 0 or 1): images per register tile of the
// batched forms, 4 or 8 (Schedule::tileY; default 8), and outputs per parallel block of the
// forward's row-by-row form (Schedule::task; default 16). Both divide the extents they split only
// where those are at least that large, so the shifted-inward tiles stay inside the buffers.
int imagesPerTile(const Schedule& s) { return s.tileY == 4 ? 4 : 8; }
int outputsPerBlock(const Schedule& s, int64_t O) { return (int)std::min<int64_t>(s.task > 0 ? s.task : 16, O); }

LinearFuncs linearForward(const KernelSpec& k) {
  LinearFuncs f;
  Vars v;
  int64_t F = k.in[0], O = k.out[0];
  KernelParams p(k);
  ImageParam in = p.tensor("input", k.in), w = p.fixed("weight", {O, F}), b = p.fixed("bias", {O});
  f.args = p.args();
  f.r = RDom(0, (int)F, "r");
  RDom& r = f.r;
  f.dot(v.f, v.n) = b(v.f);
  f.dot(v.f, v.n) += w(r, v.f) * in(r, v.n);
  if (!hasMatmulForm(k)) {
    f.out(v.f, v.n) = applyAct(f.dot(v.f, v.n), k.act);
    return f;
  }
  // Batches of 8 or more run as a matrix multiply over a transposed copy of the weights ([F][O],
  // made once per call). See linearCpu.
  f.batched = in.dim(1).extent() >= 8;
  f.wT(v.f, v.n) = w(v.n, v.f);  // (output, input)
  f.mm(v.f, v.n) = b(v.f);
  f.mm(v.f, v.n) += f.wT(v.f, r) * in(r, v.n);
  f.out(v.f, v.n) = applyAct(select(f.batched, f.mm(v.f, v.n), f.dot(v.f, v.n)), k.act);
  return f;
}

void linearCpu(LinearFuncs& f, const KernelSpec& k) {
  Vars v;
  int64_t O = k.out[0];
  if (hasMatmulForm(k)) {
    // A register tile of 16 outputs x 8 images takes one weight vector and 8 broadcast inputs per
    // step of the reduction. The row-by-row dot products below wait on each add; LeNet-5's fc1 and
    // fc2 ran at 11-33 GFLOP/s that way at batch 128. The tiles shift inwards at the edges
    // (O >= 16 and N >= 8 here): an element two tiles share is summed in the same order by both,
    // so both write the same float.
    Var fo("fo"), fi("fi"), no("no"), ni("ni");
    f.out.specialize(f.batched)
        .split(v.f, fo, fi, 16, TailStrategy::ShiftInwards)
        .split(v.n, no, ni, imagesPerTile(k.schedule), TailStrategy::ShiftInwards)
        .reorder(fi, ni, fo, no)
        .vectorize(fi)
        .unroll(ni)
        .parallel(fo)
        .parallel(no);
    f.mm.compute_at(f.out, fo).vectorize(v.f).unroll(v.n);
    f.mm.update().reorder(v.f, v.n, f.r).vectorize(v.f).unroll(v.n);
    // The transposed copy in blocks of 16 x 16: read row by row, each input row's float for the
    // next output was on another cache line (ResNet-50's fc at batch 8, 2048 x 1000 weights: the
    // kernel took 6.2 ms, 5% of the memory bound, and ran on one core with one block of images).
    Var to("to"), ti("ti"), ro("ro"), ri("ri");
    f.wT.compute_root()
        .split(v.f, to, ti, 16, TailStrategy::GuardWithIf)
        .split(v.n, ro, ri, 16, TailStrategy::GuardWithIf)
        .reorder(ti, ri, to, ro)
        .vectorize(ti)
        .unroll(ri)
        .parallel(ro);
  }
  // Blocks of outputs run in parallel; each output's dot product walks its weight row
  // contiguously. (Fusing f and n here would make bounds inference compute every output per
  // iteration.) The last block is guarded, not shifted inwards: shifted blocks overlap, two threads
  // then write the overlap, and LLVM may sum a dot product in another order in each block, so the
  // result depended on which thread wrote last (seen as 1-ulp differences between runs).
  Var fo("fo"), fi("fi");
  int blk = outputsPerBlock(k.schedule, O);
  f.out.split(v.f, fo, fi, blk, TailStrategy::GuardWithIf).reorder(fi, fo, v.n).parallel(fo);
  f.dot.compute_at(f.out, fo);
  f.dot.update().reorder(f.r, v.f, v.n);
}

// ---- LinearBackData ----

struct BackDataFuncs {
  Func out{"linear_dx"}, acc{"linear_dx_acc"};
  RDom r;
  std::vector<Argument> args;
};

BackDataFuncs linearBackDataAlgorithm(const KernelSpec& k) {
  BackDataFuncs f;
  Vars v;
  int64_t O = k.in[0], F = k.out[0];
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", k.in), w = p.fixed("weight", {O, F});
  f.args = p.args();
  f.r = RDom(0, (int)O, "r");
  f.acc(v.f, v.n) = 0.0f;
  f.acc(v.f, v.n) += w(v.f, f.r) * dy(f.r, v.n);
  f.out(v.f, v.n) = f.acc(v.f, v.n);
  return f;
}

// Batches of 8 and more: a register tile of one vector of inputs x 8 images, so each weight vector
// feeds 8 FMAs and 8 independent sums hide the FMA latency (one sum at a time waited 4 cycles per
// step: LeNet-5's fc1 input gradient took 0.9 ms). Each sum still runs over r in order.
void linearBackDataCpu(BackDataFuncs& f, const KernelSpec& k) {
  Vars v;
  Var fo("fo"), fi("fi"), no("no"), ni("ni");
  int vec = k.out[0] >= 16 ? 16 : 1;
  Expr N = f.out.output_buffer().dim(1).extent();
  f.out.specialize(N >= 8).split(v.f, fo, fi, vec).split(v.n, no, ni, imagesPerTile(k.schedule)).reorder(fi, ni, fo, no).vectorize(fi).unroll(ni).parallel(no);
  f.out.split(v.f, fo, fi, vec).vectorize(fi).parallel(fo);
  f.acc.compute_at(f.out, fo).vectorize(v.f, vec).unroll(v.n);
  f.acc.update().reorder(v.f, v.n, f.r).vectorize(v.f, vec).unroll(v.n);
}

// ---- LinearBackWeight ----

struct BackWeightFuncs {
  Func out{"linear_dw"};
  Var o{"o"};
  std::vector<Argument> args;
};

BackWeightFuncs linearBackWeightAlgorithm(const KernelSpec& k) {
  BackWeightFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", k.extraIns[0]), x = p.tensor("x", k.in);  // dy[O], x[F]
  f.args = p.args();
  RDom r(0, x.dim(1).extent(), "r");
  f.out(v.f, f.o) = sum(dy(f.o, r) * x(v.f, r));
  return f;
}

void linearBackWeightCpu(BackWeightFuncs& f, const KernelSpec& k) {
  Vars v;
  int vec = k.in[0] >= 16 ? 16 : 1;
  Var fo("fo"), fi("fi");
  f.out.split(v.f, fo, fi, vec).vectorize(fi).parallel(f.o);
}

}  // namespace

ArgNames linearArgs(const KernelSpec&) { return {"input", "weight", "bias"}; }
ArgNames linearBackDataArgs(const KernelSpec&) { return {"dy", "weight"}; }
ArgNames linearBackWeightArgs(const KernelSpec&) { return {"dy", "x"}; }

// Work per image, 2 x multiply-adds: F x O for the forward and the input gradient (in x out),
// and for the weight gradient's [O,F] output, one product per element and image.
double linearFlops(const KernelSpec& k) {
  return k.kind == KernelKind::LinearBackWeight ? 2.0 * numel(k.out) : 2.0 * numel(k.in) * numel(k.out);
}

Lowered lowerLinear(const KernelSpec& k) { return lowerWithSchedules(k, linearForward(k), linearCpu); }

Lowered lowerLinearBackData(const KernelSpec& k) { return lowerWithSchedules(k, linearBackDataAlgorithm(k), linearBackDataCpu); }

Lowered lowerLinearBackWeight(const KernelSpec& k) { return lowerWithSchedules(k, linearBackWeightAlgorithm(k), linearBackWeightCpu); }

// ---- Plan steps (plan_builder.h) ----

// Inference: the linear absorbs a following activation. Training: as conv (weightedForward).
void linearPlan(InferenceBuilder& b, const Node& n) {
  KernelSpec s = b.specOf(n);
  s.kind = KernelKind::Linear;
  std::string label = n.name;
  int w = b.param(n, ParamRole::Weight), bias = b.param(n, ParamRole::Bias);
  int bc = bias >= 0 ? b.constParam(bias) : b.zeros(n.attrs.out);
  NamedArgs args{{"input", b.act(n.inputs[0])}, {"weight", {true, b.constParam(w)}}, {"bias", {true, bc}}};
  int cur = b.absorbAct(n.id, s, label);
  b.emit(s, args, b.g.nodes[cur], label);
}

void linearForward(TrainingBuilder& b, const Node& n) { b.weightedForward(n, KernelKind::Linear); }
void linearBackward(TrainingBuilder& b, const BackStep& st) { b.weightedBackward(st, KernelKind::LinearBackData, KernelKind::LinearBackWeight); }

}  // namespace cnnc::codegen
