// chunk.cpp: one branch's share of the channels in `split { ... }` (torch.chunk along channels).
//
//   forward:  the Slice kernel of concat.cpp: x[Ctot,...] -> channels [start, start + C)
//   ChunkBack dy[C,...] -> dx[Ctot,...]: dy in channels [start, start + C), 0 elsewhere; the
//             branches' shares add up to the input's gradient
#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

struct ChunkFuncs {
  Func out;
  std::vector<Argument> args;
};

// k.in: the chunk's shape (dy); k.out: the whole input's; attrs.size: the chunk's first channel.
ChunkFuncs chunkBackAlgorithm(const KernelSpec& k) {
  ChunkFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", k.in);
  f.args = p.args();
  int start = (int)k.attrs.size, C = (int)k.in[0];
  bool spatial = k.out.size() == 3;
  Var ch = spatial ? v.c : v.f;
  Expr local = clamp(ch - start, 0, C - 1);
  Expr inside = ch >= start && ch < start + C;
  f.out = Func("chunk_dx");
  if (spatial) f.out(v.x, v.y, v.c, v.n) = select(inside, dy(v.x, v.y, local, v.n), 0.0f);
  else f.out(v.f, v.n) = select(inside, dy(local, v.n), 0.0f);
  return f;
}

void chunkCpu(ChunkFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.out.size() == 3) scheduleSpatial(f.out, k, v);
  else scheduleFlat(f.out, k, v);
}

KernelSpec sliceOf(const Dims& in, const Node& n) {
  KernelSpec s;
  s.kind = KernelKind::Slice;
  s.in = in;
  s.out = n.shape;
  s.attrs.size = n.attrs.size;
  return s;
}

}  // namespace

ArgNames chunkBackArgs(const KernelSpec&) { return {"dy"}; }

Lowered lowerChunkBack(const KernelSpec& k) { return lowerWithSchedules(k, chunkBackAlgorithm(k), chunkCpu); }

// ---- Plan steps (plan_builder.h) ----

void chunkPlan(InferenceBuilder& b, const Node& n) { b.emit(sliceOf(b.g.nodes[n.inputs[0]].shape, n), {{"dy", b.act(n.inputs[0])}}, n, n.name); }

void chunkForward(TrainingBuilder& b, const Node& n) {
  std::string label = n.name;
  int y = b.finishGroup(Group::of(n), label, false);
  KernelSpec s = sliceOf(b.g.nodes[n.inputs[0]].shape, n);
  b.call(s, {{"dy", b.act(b.tensorOf[n.inputs[0]])}}, b.act(y), label, n.id);
}

void chunkBackward(TrainingBuilder& b, const BackStep& st) {
  Attrs a;
  a.size = st.head.attrs.size;
  b.giveInput(st, KernelKind::ChunkBack, {{"dy", b.act(st.dPre)}}, a);
}

}  // namespace cnnc::codegen
