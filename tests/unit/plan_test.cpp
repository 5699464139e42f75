// Plans: fusion, kernel sharing and memory planning of inference and training plans.
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>

#include "common/packed_layout.h"
#include "lower.h"
#include "ops/activation.h"
#include "ops/registry.h"
#include "plan_builder.h"
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

// A net ending in a [K,H,W] map scores each pixel: a label per pixel, and the loss and its
// gradient over the whole map.
TEST(Plan, TrainingTakesPerPixelScores) {
  auto c = test::compile("network n { input(3, 8, 8)\n conv(4, 3) }");
  ASSERT_TRUE(c->ok);
  codegen::TrainPlan tp;
  std::string err;
  ASSERT_TRUE(codegen::buildTrainingPlan(c->graph, tp, err)) << err;
  EXPECT_EQ(tp.plan.acts[tp.labels].shape, (Dims{6, 6}));
  bool lossOverMap = false;
  for (const auto& s : tp.plan.specs)
    if (s.kind == codegen::KernelKind::CEGrad) lossOverMap = s.in == Dims{4, 6, 6} && s.out == Dims{4, 6, 6};
  EXPECT_TRUE(lossOverMap);
  EXPECT_EQ(codegen::verifyPlan(tp.plan), "");
}

// Every kernel kind has its row in the op registry (codegen/ops/registry.cpp), in place: a missing
// or misplaced row would lower one kind with another kind's code.
TEST(Registry, EveryKernelKindHasItsRow) {
  using cnnc::codegen::KernelKind;
  std::set<std::string> names;
  for (int i = 0; i <= (int)cnnc::codegen::kLastKernelKind; ++i) {
    const auto& e = cnnc::codegen::kernelEntry((KernelKind)i);
    EXPECT_EQ((int)e.kind, i);
    EXPECT_NE(e.lower, nullptr) << e.name;
    EXPECT_TRUE(names.insert(e.name).second) << "two kinds named " << e.name;
  }
  EXPECT_THROW(cnnc::codegen::kernelEntry((KernelKind)((int)cnnc::codegen::kLastKernelKind + 1)), std::logic_error);
}

// Every activation layer of the front end's table has its row in codegen's activation table,
// which lowers it (an activation layer without a row would compile, then fail in codegen).
TEST(Registry, EveryActivationLayerHasItsRow) {
  std::set<std::string> activations;
  for (const std::string& name : builtinLayerNames()) {
    auto c = test::compile("network n { input(4, 6, 6); " + name + " }");
    if (!c->ok || c->graph.nodes.back().op != OpKind::Activation) continue;  // needs arguments, or not an activation
    const std::string& row = c->graph.nodes.back().attrs.act.name;  // the layer's name, or the row it is another name of
    EXPECT_TRUE(codegen::activationKnown(row)) << name << " (" << row << ") is in compiler/layers.cpp but not in codegen/ops/activation.cpp";
    activations.insert(name);
  }
  for (const char* name : {"relu", "tanh", "sigmoid"}) EXPECT_TRUE(activations.count(name)) << name;
  EXPECT_FALSE(codegen::activationKnown("nosuch"));
}

// Plans bind inputs by name, in the order of the kernel's list; inputs it does not read are left out,
// and one it needs but was not offered is a plan builder's bug, reported with the kernel's signature.
TEST(Plan, BindArgsTakesTheKernelsOrder) {
  codegen::KernelSpec s;
  s.kind = codegen::KernelKind::BNBackData;
  s.in = s.out = {4, 6, 6};
  auto arg = [](int id) { return codegen::KernelArg{false, id}; };
  codegen::NamedArgs offered{{"beta", arg(7)}, {"y", arg(2)}, {"dparams", arg(6)}, {"gamma", arg(5)}, {"stats", arg(4)}, {"x", arg(3)}, {"dy", arg(1)}};
  std::vector<int> ids;
  for (const auto& a : codegen::bindArgs(s, offered)) ids.push_back(a.id);
  EXPECT_EQ(ids, (std::vector<int>{1, 3, 4, 5, 6}));  // no activation: neither y nor beta
  s.act.name = "tanh";
  ids.clear();
  for (const auto& a : codegen::bindArgs(s, offered)) ids.push_back(a.id);
  EXPECT_EQ(ids, (std::vector<int>{1, 2, 3, 4, 5, 6}));  // tanh's derivative reads y
  s.act.name = "relu";
  ids.clear();
  for (const auto& a : codegen::bindArgs(s, offered)) ids.push_back(a.id);
  EXPECT_EQ(ids, (std::vector<int>{1, 3, 4, 5, 6, 7}));  // ReLU's mask comes from x, gamma and beta
  EXPECT_EQ(codegen::argIndex(s, "gamma"), 3);
  EXPECT_EQ(codegen::argIndex(s, "y"), -1);
  offered.pop_back();  // no dy
  try {
    codegen::bindArgs(s, offered);
    ADD_FAILURE() << "a missing input was not reported";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("needs input 'dy'"), std::string::npos) << e.what();
  }
}

// Every kernel of these plans, inference and training, declares exactly the arguments its kind's
// list names, in that order: the lowered pipeline's arguments are the list.
TEST(Registry, EveryAlgorithmDeclaresItsListedArguments) {
  const char* nets[] = {kResidual, R"(network d { input(6)
    a: linear(8); tanh; dropout(0.3); b: linear(8); bn: batchnorm; sigmoid; c: linear(4); softmax; e: linear(3) })",
                        R"(network c { input(3, 9, 9)
    concat { a: conv(4, 1); seq { b: conv(2, 3, padding=1); bn: batchnorm; tanh } }
    lrn(3); maxpool(3, stride=2); leakyrelu(-0.5); avgpool(2); flatten; fc: linear(5) })"};
  int kernels = 0;
  std::set<int> kinds;
  for (const char* src : nets) {
    auto c = test::compile(src);
    ASSERT_TRUE(c->ok) << c->messages();
    codegen::TrainPlan tp;
    std::string err;
    ASSERT_TRUE(codegen::buildTrainingPlan(c->graph, tp, err)) << err;
    std::vector<codegen::KernelSpec> specs = codegen::buildInferencePlan(c->graph).specs;
    specs.insert(specs.end(), tp.plan.specs.begin(), tp.plan.specs.end());
    for (const auto& s : specs) {
      codegen::Lowered l = codegen::lowerKernel(s);
      std::vector<std::string> got;
      for (const auto& a : l.args) got.push_back(a.name);
      EXPECT_EQ(got, codegen::kernelArgNames(s)) << s.signature();
      for (const auto& call : tp.plan.calls)
        if (tp.plan.specs[call.spec].signature() == s.signature()) EXPECT_EQ(call.args.size(), got.size() + 1) << s.signature();
      kinds.insert((int)s.kind);
      ++kernels;
    }
  }
  EXPECT_GE(kinds.size(), 25u) << kernels << " kernels";
}

// Every op that makes kernels has its three plan steps; input and flatten (views) have none.
TEST(Registry, EveryOpWithKernelsHasItsPlanSteps) {
  for (int i = 0; i <= (int)OpKind::Add; ++i) {
    OpKind op = (OpKind)i;
    if (op == OpKind::Input || op == OpKind::Flatten) {
      EXPECT_THROW(codegen::opPlanEntry(op), std::logic_error) << opName(op);
      continue;
    }
    const auto& e = codegen::opPlanEntry(op);
    EXPECT_EQ(e.op, op);
    EXPECT_TRUE(e.infer && e.forward && e.backward) << opName(op);
  }
}

// Inference weights are rearranged at load for the kernels that read them: a Winograd conv's
// transformed ([16, C, O]), a channel-vectorised conv's in blocks of T output channels, others as
// they are; the plan records each layout with its shape.
TEST(Plan, PacksEachConvWeightForItsKernel) {
  auto c = test::compile(R"(network n { input(64, 32, 32)
    wino: conv(64, 3, padding=1); relu
    pool: maxpool(2)
    small: conv(64, 3, padding=1); relu
    globalavgpool; flatten; fc: linear(10) })");
  ASSERT_TRUE(c->ok) << c->messages();
  codegen::Plan p = codegen::buildInferencePlan(c->graph);
  codegen::applyTargetSchedules(p, "x86-64-linux-avx-avx2-avx512-f16c-fma-sse41");
  codegen::packConvWeights(p);
  using plan_schema::ConstPack;
  std::set<ConstPack> seen;
  for (const auto& call : p.calls) {
    const codegen::KernelSpec& s = p.specs[call.spec];
    if (s.kind != codegen::KernelKind::Conv) continue;
    const codegen::ConstTensor& w = p.consts[call.args.at(codegen::argIndex(s, "weight")).id];
    seen.insert(w.pack);
    if (s.schedule.winograd) {
      EXPECT_EQ(w.pack, ConstPack::Winograd) << s.signature();
      EXPECT_EQ(w.shape, (Dims{16, 64, 64}));
    } else if (s.schedule.chanVec) {
      EXPECT_EQ(w.pack, ConstPack::Blocked) << s.signature();
      EXPECT_EQ(w.shape, packedWeightShape({64, 64, 3, 3}, codegen::packedBlock(s.schedule)));
    }
  }
  // The 32-wide layer takes Winograd and the 16-wide one channel vectors (schedule.cpp's rules).
  EXPECT_EQ(seen, (std::set<ConstPack>{ConstPack::Winograd, ConstPack::Blocked}));
}
