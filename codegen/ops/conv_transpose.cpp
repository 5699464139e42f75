// conv_transpose.cpp: the convtranspose op (nn.ConvTranspose2d): the input gradient of a conv run
// forward. A transposed conv with weight w[in, out/g, kh, kw] is exactly the ConvBackData of the
// conv whose weight is w (that conv maps out channels to in channels), so it reuses that kernel's
// algorithms and schedules (conv.cpp), plus a bias: the ConvTranspose kernel kind.
//
//   ConvTranspose  x[Cin,H,W], w[Cin,Cout/g,kh,kw], b[Cout] -> y[Cout,Ho,Wo],
//                  Ho = (H - 1) s - 2p + d (kh - 1) + output_padding + 1
//   backward       dx = Conv(dy, w) (the conv it is the gradient of, no bias)
//                  dw = ConvBackWeight with the roles swapped: that conv's input is dy, its
//                       output gradient is x
//                  db = BiasGrad(dy)
//
// output_padding only adds rows and columns that no input pixel reaches past the padding; the
// conv's output size rule maps Ho back to H for any output_padding below the stride.
#include "ops.h"
#include "plan_builder.h"

namespace cnnc::codegen {

void convTransposePlan(InferenceBuilder& b, const Node& n) {
  KernelSpec s = b.specOf(n);
  s.kind = KernelKind::ConvTranspose;
  int w = b.param(n, ParamRole::Weight), bias = b.param(n, ParamRole::Bias);
  int bc = bias >= 0 ? b.constParam(bias) : b.zeros(n.attrs.out);
  b.emit(s, {{"input", b.act(n.inputs[0])}, {"weight", {true, b.constParam(w)}}, {"bias", {true, bc}}}, n, n.name);
}

void convTransposeForward(TrainingBuilder& b, const Node& n) {
  int w = b.param(n, ParamRole::Weight), bias = b.param(n, ParamRole::Bias);
  int bc = bias >= 0 ? b.paramRef(bias) : b.zeros(n.attrs.out);
  std::string label = n.name;
  int y = b.finishGroup(Group::of(n), label, false);
  b.call(b.spec(KernelKind::ConvTranspose, b.g.nodes[n.inputs[0]].shape, n.shape, n.attrs),
         {{"input", b.act(b.tensorOf[n.inputs[0]])}, {"weight", b.cst(b.paramRef(w))}, {"bias", b.cst(bc)}}, b.act(y), label, n.id);
}

void convTransposeBackward(TrainingBuilder& b, const BackStep& st) {
  const Node& head = st.head;
  int w = b.param(head, ParamRole::Weight), bias = b.param(head, ParamRole::Bias);
  Attrs conv = head.attrs;  // the conv this op is the input gradient of: out = this op's input channels
  conv.out = st.inShape[0];
  conv.bias = false;
  b.giveInput(st, KernelKind::Conv, {{"input", b.act(st.dPre)}, {"weight", b.cst(b.paramRef(w))}, {"bias", b.cst(b.zeros(conv.out))}}, conv);
  KernelSpec sw = b.spec(KernelKind::ConvBackWeight, head.shape, b.g.params[w].shape, conv);
  sw.extraIns = {st.inShape};
  b.call(sw, {{"dy", b.act(st.x)}, {"x", b.act(st.dPre)}}, b.cst(b.gradOfParam(w)), st.dl + " (weight)", st.m);
  if (bias >= 0 && b.biasCancels(st.m, st.gr)) b.gradOfParam(bias);  // listed, never written
  else if (bias >= 0) b.call(b.spec(KernelKind::BiasGrad, head.shape, {head.shape[0]}), {{"dy", b.act(st.dPre)}}, b.cst(b.gradOfParam(bias)), st.dl + " (bias)", st.m);
}

}  // namespace cnnc::codegen
