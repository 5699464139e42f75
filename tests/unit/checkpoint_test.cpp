// Checkpoints: round trip, the previous one kept, a failed write (file size limit standing in for
// a full disk) leaving both intact, corrupt current -> previous, another network refused.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "checkpoint.h"

using namespace cnnc::rt;
namespace fs = std::filesystem;

namespace {

Plan tinyPlan(const std::string& net) {
  Plan p;
  p.net = net;
  p.params.push_back({"fc.weight", "F32", "weight", "linear", "t.cnn:3:3", {4, 8}, 8});
  p.params.push_back({"bn.num_batches_tracked", "I64", "num_batches_tracked", "batchnorm", "t.cnn:4:3", {}, 1});
  return p;
}

std::string tempDir() {
  std::string d = fs::temp_directory_path() / ("cnnc_ckpt_" + std::to_string(getpid()) + "_" + std::to_string(rand()));
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST(Checkpoint, RoundTripKeepsPreviousAndMetadata) {
  Plan p = tinyPlan("net_a");
  Weights w;
  initWeights(p, 1, w);
  w.i64[1] = 7;
  CheckpointState s;
  s.extra["optim.fc.weight.momentum_buffer"] = std::vector<float>(32, 0.5f);
  s.meta["epoch"] = "3";
  std::string dir = tempDir(), err;
  ASSERT_TRUE(saveCheckpoint(dir, p, w, s, err)) << err;
  Weights w2 = w;
  w2.f32[0][0] = 42.0f;
  ASSERT_TRUE(saveCheckpoint(dir, p, w2, s, err)) << err;
  ASSERT_TRUE(fs::exists(previousCheckpointPath(dir)));
  Weights back;
  CheckpointState sb;
  bool prev = true;
  ASSERT_TRUE(loadCheckpoint(dir, p, back, sb, prev, err)) << err;
  EXPECT_FALSE(prev);
  EXPECT_EQ(back.f32[0][0], 42.0f);
  EXPECT_EQ(back.i64[1], 7);
  EXPECT_EQ(sb.meta["epoch"], "3");
  EXPECT_EQ(sb.extra["optim.fc.weight.momentum_buffer"].size(), 32u);
  fs::remove_all(dir);
}

TEST(Checkpoint, FailedWriteLeavesBothCheckpointsIntact) {
  Plan p = tinyPlan("net_a");
  Weights w;
  initWeights(p, 1, w);
  std::string dir = tempDir(), err;
  CheckpointState s;
  ASSERT_TRUE(saveCheckpoint(dir, p, w, s, err)) << err;
  std::ifstream f(checkpointPath(dir), std::ios::binary);
  std::string before((std::istreambuf_iterator<char>(f)), {});
  // A large extra tensor under a small file-size limit: the write fails part-way, as on a full disk.
  s.extra["big"] = std::vector<float>(1 << 20, 1.0f);
  signal(SIGXFSZ, SIG_IGN);
  rlimit old{};
  getrlimit(RLIMIT_FSIZE, &old);
  rlimit lim = old;
  lim.rlim_cur = 64 * 1024;
  setrlimit(RLIMIT_FSIZE, &lim);
  bool ok = saveCheckpoint(dir, p, w, s, err);
  setrlimit(RLIMIT_FSIZE, &old);
  EXPECT_FALSE(ok);
  EXPECT_NE(err.find("cannot write"), std::string::npos) << err;
  std::ifstream g(checkpointPath(dir), std::ios::binary);
  std::string after((std::istreambuf_iterator<char>(g)), {});
  EXPECT_EQ(before, after);
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  fs::remove_all(dir);
}

TEST(Checkpoint, CorruptCurrentFallsBackToPrevious) {
  Plan p = tinyPlan("net_a");
  Weights w;
  initWeights(p, 1, w);
  std::string dir = tempDir(), err;
  CheckpointState s;
  ASSERT_TRUE(saveCheckpoint(dir, p, w, s, err));
  ASSERT_TRUE(saveCheckpoint(dir, p, w, s, err));
  fs::resize_file(checkpointPath(dir), 20);
  Weights back;
  bool prev = false;
  ASSERT_TRUE(loadCheckpoint(dir, p, back, s, prev, err)) << err;
  EXPECT_TRUE(prev);
  fs::remove_all(dir);
}

TEST(Checkpoint, AnotherNetworkIsRefusedByName) {
  Plan a = tinyPlan("lenet5"), b = tinyPlan("minivgg");
  Weights w;
  initWeights(a, 1, w);
  std::string dir = tempDir(), err;
  CheckpointState s;
  ASSERT_TRUE(saveCheckpoint(dir, a, w, s, err));
  bool prev;
  EXPECT_FALSE(loadCheckpoint(dir, b, w, s, prev, err));
  EXPECT_NE(err.find("checkpoint of network 'lenet5', but this executable is 'minivgg'"), std::string::npos) << err;
  fs::remove_all(dir);
}
