// Executor: CNNC_CHECK_WRITES catches a kernel that stores outside its output, and names where.
#include <gtest/gtest.h>

#include <cstdlib>

#include "executor.h"

using namespace cnnc::rt;

namespace {
// Two activation tensors of 4 floats per image in separate storages: input `a`, then output `b`
// (the last in the arena). The kernel is one of the fakes below.
Plan twoTensorPlan() {
  Plan p;
  p.net = "n";
  p.target = "x86-64-linux";
  p.acts = {{{4}, 0, "a"}, {{4}, 1, "b"}};
  p.storages = {{0, 4}, {4, 4}};
  p.arenaPerImage = 8;
  p.input = 0;
  p.output = 1;
  p.kernels = {{"k", "fake"}};
  p.calls = {{0, {{false, 0}, {false, 1}}, "layer.b"}};
  return p;
}

float* out(void** argv) { return reinterpret_cast<float*>(static_cast<halide_buffer_t*>(argv[1])->host); }
int64_t count(void** argv) {
  auto* b = static_cast<halide_buffer_t*>(argv[1]);
  return (int64_t)b->dim[0].extent * b->dim[1].extent;
}
int exact(void** argv) {
  for (int64_t i = 0; i < count(argv); ++i) out(argv)[i] = 1.0f;
  return 0;
}
int pastTheEnd(void** argv) {  // one vector's tail too far, as Halide 14's dropped guard did
  for (int64_t i = 0; i < count(argv) + 3; ++i) out(argv)[i] = 1.0f;
  return 0;
}
int beforeTheStart(void** argv) {  // into the input's storage
  out(argv)[-2] = 7.0f;
  return 0;
}

bool runWith(int (*fn)(void**), std::string& err) {
  setenv("CNNC_CHECK_WRITES", "1", 1);
  Plan p = twoTensorPlan();
  KernelEntry table[] = {{"k", fn}};
  Executor ex;
  if (!ex.init(p, table, 1, err)) return false;
  std::vector<float> in(3 * 4, 0.5f), result;
  bool ok = ex.run(in.data(), 3, result, err);
  unsetenv("CNNC_CHECK_WRITES");
  return ok;
}
}  // namespace

TEST(Executor, CheckWritesPassesAKernelThatWritesOnlyItsOutput) {
  std::string err;
  EXPECT_TRUE(runWith(exact, err)) << err;
}

TEST(Executor, CheckWritesCatchesAStorePastTheArenasEnd) {
  std::string err;
  ASSERT_FALSE(runWith(pastTheEnd, err));
  EXPECT_NE(err.find("kernel k for layer.b wrote outside its output b"), std::string::npos) << err;
  EXPECT_NE(err.find("arena float 24, past the arena's end"), std::string::npos) << err;
}

TEST(Executor, CheckWritesNamesTheTensorAKernelOverwrote) {
  std::string err;
  ASSERT_FALSE(runWith(beforeTheStart, err));
  EXPECT_NE(err.find("arena float 10, in the storage of a"), std::string::npos) << err;
}
