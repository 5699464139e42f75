// channel_shuffle.cpp: PyTorch's channel_shuffle(x, groups) (ShuffleNet): the channels viewed as
// [groups, C/groups], transposed to [C/groups, groups] and flattened again.
//
//   ChannelShuffle  x[C,H,W] -> y, y[c] = x[(c % groups) * (C / groups) + c / groups]
//
// Its gradient is the inverse permutation, which is the same shuffle with C / groups groups.
#include "gpu.h"
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

namespace {

struct ShuffleFuncs {
  Func out;
  std::vector<Argument> args;
};

ShuffleFuncs shuffleAlgorithm(const KernelSpec& k) {
  ShuffleFuncs f;
  Vars v;
  KernelParams p(k);
  ImageParam x = p.tensor("x", k.in);
  f.args = p.args();
  int g = (int)k.attrs.groups, per = (int)(k.in[0] / k.attrs.groups);
  f.out = Func("shuffle_out");
  f.out(v.x, v.y, v.c, v.n) = x(v.x, v.y, (v.c % g) * per + v.c / g, v.n);
  return f;
}

void shuffleCpu(ShuffleFuncs& f, const KernelSpec& k) {
  Vars v;
  scheduleSpatial(f.out, k, v);
}

}  // namespace

ArgNames channelShuffleArgs(const KernelSpec&) { return {"x"}; }

Lowered lowerChannelShuffle(const KernelSpec& k) { return lowerWithSchedules(k, shuffleAlgorithm(k), shuffleCpu); }

// ---- Plan steps (plan_builder.h) ----

void channelShufflePlan(InferenceBuilder& b, const Node& n) {
  KernelSpec s = b.specOf(n);
  s.kind = KernelKind::ChannelShuffle;
  b.emit(s, {{"x", b.act(n.inputs[0])}}, n, n.name);
}

void channelShuffleForward(TrainingBuilder& b, const Node& n) {
  std::string label = n.name;
  int y = b.finishGroup(Group::of(n), label, false);
  b.call(b.spec(KernelKind::ChannelShuffle, n.shape, n.shape, n.attrs), {{"x", b.act(b.tensorOf[n.inputs[0]])}}, b.act(y), label, n.id);
}

void channelShuffleBackward(TrainingBuilder& b, const BackStep& st) {
  Attrs inverse;
  inverse.groups = st.head.shape[0] / st.head.attrs.groups;
  b.giveInput(st, KernelKind::ChannelShuffle, {{"x", b.act(st.dPre)}}, inverse);
}

}  // namespace cnnc::codegen
