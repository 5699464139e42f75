// bias.cpp: the bias gradient of convs and linear layers.
//
//   BiasGrad  dy[C,H,W] or dy[C] -> db[C] = sum of dy over the batch and space (not batched)
#include "gpu.h"
#include "ops.h"

namespace cnnc::codegen {

namespace {

struct BiasGradFuncs {
  Func out{"bias_grad"};
  RDom r;
  std::vector<Argument> args;
};

BiasGradFuncs biasGradAlgorithm(const KernelSpec& k) {
  BiasGradFuncs f;
  Vars v;
  const Dims& d = k.in;
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", d);
  f.args = p.args();
  if (d.size() == 3) {
    f.r = RDom(0, (int)d[2], 0, (int)d[1], 0, dy.dim(3).extent(), "r");
    f.out(v.c) = 0.0f;
    f.out(v.c) += dy(f.r.x, f.r.y, v.c, f.r.z);
  } else {
    RDom r(0, dy.dim(1).extent(), "r");
    f.out(v.c) = sum(dy(v.c, r));
  }
  return f;
}

void biasGradCpu(BiasGradFuncs& f, const KernelSpec& k) {
  Vars v;
  if (k.in.size() == 3) {
    laneSum(f.out, f.r, (int)k.in[2], (int)k.in[1]);
    f.out.update().parallel(v.c);
  }
  f.out.parallel(v.c);
}

}  // namespace

ArgNames biasGradArgs(const KernelSpec&) { return {"dy"}; }

Lowered lowerBiasGrad(const KernelSpec& k) { return lowerWithSchedules(k, biasGradAlgorithm(k), biasGradCpu); }

}  // namespace cnnc::codegen
