// plan.h (runtime): the execution plan embedded in an executable by cnnc, parsed at start-up
// (its JSON: common/plan_schema.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/recipe.h"
#include "common/plan_schema.h"
#include "common/shape.h"

namespace cnnc::rt {

using cnnc::Dims;
using cnnc::dimsStr;
using cnnc::numel;

struct ParamSpec {
  std::string name, dtype, role, op, where;  // where: "file.cnn:line:col" of the declaring layer
  Dims shape;
  int64_t fanIn = 1;
  bool hasFill = false;  // initialised to `fill` (scale, prelu), not by fan-in
  double fill = 0;
  bool isInt64() const { return dtype == plan_schema::kDTypeI64; }  // num_batches_tracked; else F32
  // Weights and biases are trained; batch-norm running statistics are not.
  bool trainable() const { return role == plan_schema::kRoleWeight || role == plan_schema::kRoleBias; }
};

struct ActSpec { Dims shape; int storage; std::string name; };
struct StorageSpec { int64_t offset, size; };

struct ConstSpec {
  plan_schema::ConstKind kind = plan_schema::ConstKind::Param;
  bool foldBias = false;  // FoldConvBN: the folded bias (else the folded weight)
  Dims shape;
  int param = -1, convW = -1, convB = -1, bnW = -1, bnB = -1, bnMean = -1, bnVar = -1;
  double eps = 1e-5;
  plan_schema::ConstPack pack = plan_schema::ConstPack::None;  // a conv weight rearranged at load: `shape` is the rearranged one
};

struct CallArg { bool isConst; int id; };
struct CallSpec { int kernel; std::vector<CallArg> args; std::string label; };
struct KernelSpecRt {
  std::string fn, signature;
  double flops = 0;  // per image (0: a memory-bound kind)
};

struct BNSpec {
  int stats, dparams, gamma, beta, mean, var, tracked;
  double momentum;
  int64_t elemsPerImage;
};

struct Plan {
  std::string net, source, target;
  // Training plans only (mode == "train"): see codegen/train_plan.h.
  std::string mode = plan_schema::kModeInfer;
  int labels = -1, loss = -1, eps = -1, forwardCalls = 0;
  std::vector<int> paramGrad, seeds;
  std::vector<BNSpec> bns;
  std::vector<double> mean, std;
  std::vector<recipe::Value> recipe;  // the network's training recipe; empty without one
  std::string noTraining;             // inference plans: why the executable cannot train ("" when it can)
  int64_t arenaPerImage = 0;
  int input = -1, output = -1;
  std::vector<ParamSpec> params;
  std::vector<ActSpec> acts;
  std::vector<StorageSpec> storages;
  std::vector<ConstSpec> consts;
  std::vector<KernelSpecRt> kernels;
  std::vector<CallSpec> calls;
  const Dims& inputShape() const { return acts[input].shape; }
  const Dims& outputShape() const { return acts[output].shape; }
  bool isTraining() const { return mode == plan_schema::kModeTrain; }
};

// Why an executable has no training step, from the compiler (Plan::noTraining); and the error
// "network N has no training step: <why>".
std::string noTrainingReason(const Plan& infer);
std::string noTrainingMessage(const Plan& infer);

// Parses the embedded JSON; false with `err` if it is malformed (a build problem, not user input).
bool parsePlan(const char* json, size_t size, Plan& out, std::string& err);

}  // namespace cnnc::rt
