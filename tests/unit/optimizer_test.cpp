// Optimizers and LR schedules against torch.optim trajectories (tests/unit/optim_ref.json, written by
// tests/torch/optim_ref.py with PyTorch 1.13). Tolerance: 1e-6 * (1 + |ref|) per value over 5 steps.
#include "optimizer.h"

#include "lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

using namespace cnnc::rt;

namespace {
nlohmann::json reference() {
  std::ifstream f(CNNC_SOURCE_DIR "/tests/unit/optim_ref.json");
  return nlohmann::json::parse(f);
}
}  // namespace

TEST(Optimizer, MatchesTorchOptim) {
  auto ref = reference();
  std::vector<float> w0 = ref["w0"].get<std::vector<float>>();
  auto grads = ref["grads"].get<std::vector<std::vector<float>>>();
  for (auto& [name, c] : ref["cases"].items()) {
    OptimizerConfig cfg;
    cfg.kind = c["kind"];
    auto& k = c["config"];
    double lr = k["lr"];
    cfg.momentum = k.value("momentum", 0.0);
    cfg.dampening = k.value("dampening", 0.0);
    cfg.weightDecay = k.value("weight_decay", 0.0);
    cfg.nesterov = k.value("nesterov", false);
    cfg.amsgrad = k.value("amsgrad", false);
    std::string err;
    ASSERT_TRUE(validateOptimizer(cfg, err)) << name << ": " << err;
    Optimizer opt(cfg);
    std::vector<float> w = w0;
    double worst = 0;
    for (size_t s = 0; s < grads.size(); ++s) {
      opt.update("p", w, grads[s], lr);
      opt.finishStep();
      auto want = c["trajectory"][s].get<std::vector<float>>();
      for (size_t i = 0; i < w.size(); ++i) {
        double d = std::fabs((double)w[i] - want[i]);
        worst = std::max(worst, d);
        EXPECT_LE(d, 1e-6 * (1 + std::fabs(want[i]))) << name << " step " << s + 1 << " value " << i;
      }
    }
    printf("%-18s max abs diff over 5 steps: %.3g\n", name.c_str(), worst);
  }
}

TEST(Optimizer, StateRoundTripContinuesTheTrajectory) {
  OptimizerConfig cfg;
  cfg.kind = "adam";
  Optimizer a(cfg), b(cfg);
  std::vector<float> w{1, 2, 3}, g{0.1f, -0.2f, 0.3f};
  a.update("p", w, g, 0.01);
  a.finishStep();
  std::string err;
  ASSERT_TRUE(b.loadState(a.state(), a.steps(), err)) << err;
  std::vector<float> w2 = w;
  a.update("p", w, g, 0.01);
  b.update("p", w2, g, 0.01);
  EXPECT_EQ(w, w2);
}

TEST(Optimizer, RejectsInvalidSettings) {
  OptimizerConfig c;
  c.nesterov = true;
  std::string err;
  EXPECT_FALSE(validateOptimizer(c, err));
  EXPECT_NE(err.find("Nesterov"), std::string::npos);
  c = OptimizerConfig();
  c.kind = "rmsprop";
  EXPECT_FALSE(validateOptimizer(c, err));
}

// LR schedules against torch.optim.lr_scheduler over 30 epochs (tests/unit/lr_ref.json).
TEST(LrSchedule, MatchesTorchSchedulers) {
  std::ifstream f(CNNC_SOURCE_DIR "/tests/unit/lr_ref.json");
  auto ref = nlohmann::json::parse(f);
  std::map<std::string, LrSchedule> cases;
  LrSchedule s;
  s.lr = 0.1;
  s.kind = "step"; s.stepSize = 10; s.gamma = 0.1; cases["step"] = s;
  s = LrSchedule(); s.lr = 0.1; s.kind = "multistep"; s.milestones = {5, 15}; s.gamma = 0.5; cases["multistep"] = s;
  s = LrSchedule(); s.lr = 0.1; s.kind = "cosine"; s.tMax = 30; s.etaMin = 1e-4; cases["cosine"] = s;
  s = LrSchedule(); s.lr = 0.1; s.kind = "cosine"; s.tMax = 27; s.etaMin = 1e-4; s.warmup = 3; s.warmupStart = 0.1; cases["warmup_cosine"] = s;
  for (auto& [name, sched] : cases) {
    std::string err;
    ASSERT_TRUE(sched.validate(err)) << err;
    auto want = ref[name].get<std::vector<double>>();
    for (size_t e = 0; e < want.size(); ++e) EXPECT_NEAR(sched.at((int)e), want[e], 1e-9 * (1 + want[e])) << name << " epoch " << e;
  }
}
