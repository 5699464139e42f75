// Elaboration: naming, repetition, conditionals, joins and shapes.
#include <gtest/gtest.h>

#include "test_util.h"

using namespace cnnc;

static std::vector<std::string> paramNames(const Graph& g) {
  std::vector<std::string> v;
  for (const auto& p : g.params) v.push_back(p.name + " " + dimsStr(p.shape));
  return v;
}

TEST(Elaborate, SequencePositionsCountParameterlessLayers) {
  auto c = test::compile("network n { input(3, 8, 8)\n features: seq { conv(4, 3); relu; maxpool(2); conv(8, 1) } }");
  ASSERT_TRUE(c->ok) << c->messages();
  EXPECT_EQ(paramNames(c->graph), (std::vector<std::string>{"features.0.weight [4,3,3,3]", "features.0.bias [4]",
                                                             "features.3.weight [8,4,1,1]", "features.3.bias [8]"}));
  EXPECT_EQ(c->graph.nodes[c->graph.output].shape, (Dims{8, 3, 3}));
}

TEST(Elaborate, RepetitionAndConditionalShortcut) {
  auto c = test::compile(R"(
block basic(out, stride = 1) {
  residual { conv1: conv(out, 3, stride=stride, padding=1, bias=false) }
  shortcut { if stride != 1 || in.c != out { downsample: seq { conv(out, 1, stride=stride, bias=false) } } }
}
network n { input(4, 8, 8)
  layer: seq { basic(8, stride=2); basic(8) * 2 } }
)");
  ASSERT_TRUE(c->ok) << c->messages();
  EXPECT_EQ(paramNames(c->graph), (std::vector<std::string>{"layer.0.conv1.weight [8,4,3,3]", "layer.0.downsample.0.weight [8,4,1,1]",
                                                             "layer.1.conv1.weight [8,8,3,3]", "layer.2.conv1.weight [8,8,3,3]"}));
}

TEST(Elaborate, ConcatSumsChannelsOfBranches) {
  auto c = test::compile("network n { input(3, 8, 8)\n concat { a: conv(2, 1); b: conv(5, 3, padding=1); maxpool(3, stride=1, padding=1) } }");
  ASSERT_TRUE(c->ok) << c->messages();
  EXPECT_EQ(c->graph.nodes[c->graph.output].shape, (Dims{10, 8, 8}));
  EXPECT_EQ(c->graph.nodes[c->graph.output].op, OpKind::Concat);
}

TEST(Elaborate, BlockParametersAsValuesAndUse) {
  auto c = test::compile(R"(
block two(out) { conv(out, 1); relu }
block apply(unit, n) { unit(n) }
network n { input(3, 4, 4)
  use apply(two, 6)
  x: apply(two, 2) }
)");
  ASSERT_TRUE(c->ok) << c->messages();
  // `use` splices: two's conv sits at position 0 of the network; apply(two, 2) is module x.
  EXPECT_EQ(paramNames(c->graph), (std::vector<std::string>{"0.0.weight [6,3,1,1]", "0.0.bias [6]", "x.0.0.weight [2,6,1,1]", "x.0.0.bias [2]"}));
}

TEST(Elaborate, MacsCountConvAndLinearOnly) {
  auto c = test::compile("network n { input(1, 32, 32)\n c: conv(6, 5); relu; flatten; f: linear(10) }");
  ASSERT_TRUE(c->ok) << c->messages();
  EXPECT_EQ(c->graph.totalMacs(), 6 * 28 * 28 * 25 + 6 * 28 * 28 * 10);
  EXPECT_EQ(c->graph.totalParams(), 6 * 25 + 6 + 4704 * 10 + 10);
}

TEST(Elaborate, OverridesNetworkParameter) {
  ElabOptions o;
  o.overrides["classes"] = "7";
  auto c = test::compile("network n(classes = 10) { input(4)\n fc: linear(classes) }", o);
  ASSERT_TRUE(c->ok) << c->messages();
  EXPECT_EQ(c->graph.params[0].shape, (Dims{7, 4}));
}

TEST(Elaborate, ReportsEveryIndependentError) {
  auto c = test::compile("network n { input(3, 8, 8)\n conv(0, 3)\n conv(4, 3, stride=0)\n relu(1) }");
  EXPECT_FALSE(c->ok);
  EXPECT_EQ(c->diags->errors(), 3) << c->messages();
}

TEST(Elaborate, RecursionIsAnErrorNotACrash) {
  auto c = test::compile("block a(n) { b(n) }\nblock b(n) { a(n) }\nnetwork x { input(1)\n a(1) }");
  EXPECT_FALSE(c->ok);
  EXPECT_NE(c->messages().find("instantiates itself"), std::string::npos) << c->messages();
}

TEST(Elaborate, OverflowInParameterArithmetic) {
  auto c = test::compile("network x { input(1)\n linear(4611686018427387904 * 4) }");
  EXPECT_FALSE(c->ok);
  EXPECT_NE(c->messages().find("integer overflow"), std::string::npos) << c->messages();
}

TEST(Elaborate, HugeLoopsAreBounded) {
  auto c = test::compile("network x { input(1)\n for i in 100000 { for j in 100000 { let k = i } } }");
  EXPECT_FALSE(c->ok);
  EXPECT_NE(c->messages().find("steps"), std::string::npos) << c->messages();
}

TEST(Elaborate, InputShapeOverride) {
  ElabOptions o;
  o.inputShape = {3, 45, 67};
  auto c = test::compile("network n { input(3, 32, 32)\n c: conv(4, 3, stride=2) }", o);
  ASSERT_TRUE(c->ok) << c->messages();
  EXPECT_EQ(c->graph.nodes[c->graph.output].shape, (Dims{4, 22, 33}));
  o.inputShape = {1, 45, 67};  // the channel count may not change
  auto bad = test::compile("network n { input(3, 32, 32)\n c: conv(4, 3) }", o);
  EXPECT_FALSE(bad->ok);
  EXPECT_NE(bad->messages().find("does not fit"), std::string::npos) << bad->messages();
}
