// Initial weights: the compiler's plan says how each parameter starts and the runtime follows it.
// prelu's slopes and scale's factors start at their `init` (PyTorch's constants), not at random.
#include <gtest/gtest.h>

#include "codegen/plan.h"
#include "runtime/weights.h"
#include "test_util.h"

using namespace cnnc;

TEST(InitWeights, PreluAndScaleStartAtTheirInit) {
  auto c = test::compile("network n { input(4, 5, 6); c: conv(4, 3); p: prelu(4, init=0.1); q: prelu; s: scale(0.5); flatten; t: scale }");
  ASSERT_TRUE(c->ok) << c->messages();
  codegen::Plan plan = codegen::buildInferencePlan(c->graph);
  std::string json = codegen::planToJson(plan, c->graph, c->sm, "host");
  rt::Plan rp;
  std::string err;
  ASSERT_TRUE(rt::parsePlan(json.data(), json.size(), rp, err)) << err;
  rt::Weights w;
  rt::initWeights(rp, 7, w);
  std::map<std::string, float> want{{"p.weight", 0.1f}, {"q.weight", 0.25f}, {"s", 0.5f}, {"t", 1.0f}};
  int seen = 0;
  for (size_t i = 0; i < rp.params.size(); ++i) {
    auto it = want.find(rp.params[i].name);
    if (it == want.end()) {
      // The conv's weights stay random (fan-in uniform): not all one value.
      if (rp.params[i].name == "c.weight") EXPECT_NE(w.f32[i].front(), w.f32[i].back());
      continue;
    }
    ++seen;
    ASSERT_FALSE(w.f32[i].empty()) << it->first;
    for (float v : w.f32[i]) ASSERT_EQ(v, it->second) << it->first;
  }
  EXPECT_EQ(seen, 4);
}
