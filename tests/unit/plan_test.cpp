// Plans: fusion, kernel sharing and memory planning of inference and training plans.
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>

#include "ops/activation.h"
#include "ops/registry.h"
#include "plan.h"
#include "test_util.h"
#include "train_plan.h"

using namespace cnnc;

namespace {
const char* kResidual = R"(
block basic(out, stride = 1) {
  residual {
    conv1: conv(out, 3, stride=stride, padding=1, bias=false); bn1: batchnorm; relu
    conv2: conv(out, 3, padding=1, bias=false); bn2: batchnorm
  } shortcut {
    if stride != 1 || in.c != out { downsample: seq { conv(out, 1, stride=stride, bias=false); batchnorm } }
  }
  relu
}
network n { input(3, 16, 16)
  stem: conv(8, 3, padding=1); relu
  a: basic(8); b: basic(8); c: basic(16, stride=2)
  globalavgpool; flatten; fc: linear(10) }
)";
}

TEST(Plan, FusesConvBatchNormResidualAndActivation) {
  auto c = test::compile(kResidual);
  ASSERT_TRUE(c->ok) << c->messages();
  codegen::Plan p = codegen::buildInferencePlan(c->graph);
  // stem; a: 2 convs; b: 2; c: 2 + projection; pool; fc.
  EXPECT_EQ(p.calls.size(), 10u);
  int residual = 0;
  for (const auto& call : p.calls) residual += p.specs[call.spec].residual;
  EXPECT_EQ(residual, 3);
  // Blocks a and b are the same shapes: their kernels are shared.
  EXPECT_LT(p.specs.size(), p.calls.size());
  EXPECT_EQ(codegen::verifyPlan(p), "");
}

TEST(Plan, SharesArenaBetweenDisjointLifetimes) {
  auto c = test::compile(kResidual);
  ASSERT_TRUE(c->ok);
  codegen::Plan p = codegen::buildInferencePlan(c->graph);
  int64_t naive = 0;
  for (const auto& s : p.storages) naive += s.size;
  EXPECT_LT(p.arenaPerImage, naive);
  EXPECT_EQ(p.arenaPerImage % 16, 0);
}

TEST(Plan, TrainingPlanHasGradientsForEveryTrainableParameter) {
  auto c = test::compile(kResidual);
  ASSERT_TRUE(c->ok);
  codegen::TrainPlan tp;
  std::string err;
  ASSERT_TRUE(codegen::buildTrainingPlan(c->graph, tp, err)) << err;
  for (size_t i = 0; i < c->graph.params.size(); ++i) {
    const ParamInfo& prm = c->graph.params[i];
    bool bnAffine = c->graph.nodes[prm.node].op == OpKind::BatchNorm;  // from dparams, in the runtime
    if (prm.trainable() && !bnAffine) EXPECT_GE(tp.paramGrad[i], 0) << prm.name;
  }
  EXPECT_EQ(tp.bns.size(), 7u);
  EXPECT_EQ(codegen::verifyPlan(tp.plan), "");
}

TEST(Plan, TrainingRejectsNonVectorOutputs) {
  auto c = test::compile("network n { input(3, 8, 8)\n conv(4, 3) }");
  ASSERT_TRUE(c->ok);
  codegen::TrainPlan tp;
  std::string err;
  EXPECT_FALSE(codegen::buildTrainingPlan(c->graph, tp, err));
  EXPECT_NE(err.find("not a vector of class scores"), std::string::npos) << err;
}

// Every kernel kind has its row in the op registry (codegen/ops/registry.cpp), in place: a missing
// or misplaced row would lower one kind with another kind's code.
TEST(Registry, EveryKernelKindHasItsRow) {
  using cnnc::codegen::KernelKind;
  std::set<std::string> names;
  for (int i = 0; i <= (int)KernelKind::CEGrad; ++i) {
    const auto& e = cnnc::codegen::kernelEntry((KernelKind)i);
    EXPECT_EQ((int)e.kind, i);
    EXPECT_NE(e.lower, nullptr) << e.name;
    EXPECT_TRUE(names.insert(e.name).second) << "two kinds named " << e.name;
  }
  EXPECT_THROW(cnnc::codegen::kernelEntry((KernelKind)((int)KernelKind::CEGrad + 1)), std::logic_error);
}

// Every activation layer of the front end's table has its row in codegen's activation table,
// which lowers it (an activation layer without a row would compile, then fail in codegen).
TEST(Registry, EveryActivationLayerHasItsRow) {
  std::set<std::string> activations;
  for (const std::string& name : builtinLayerNames()) {
    auto c = test::compile("network n { input(4, 6, 6); " + name + " }");
    if (!c->ok || c->graph.nodes.back().op != OpKind::Activation) continue;  // needs arguments, or not an activation
    EXPECT_EQ(c->graph.nodes.back().attrs.act.name, name);
    EXPECT_TRUE(codegen::activationKnown(name)) << name << " is in compiler/layers.cpp but not in codegen/ops/activation.cpp";
    activations.insert(name);
  }
  for (const char* name : {"relu", "tanh", "sigmoid"}) EXPECT_TRUE(activations.count(name)) << name;
  EXPECT_FALSE(codegen::activationKnown("nosuch"));
}
