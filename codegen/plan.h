// plan.h: the execution plan of a network: fused kernels in order, activation tensors placed in
// one arena, and constants derived from the weights (BN folded into convs). It is what the runtime
// executes; it travels inside the produced executable as JSON (planToJson).
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/plan_schema.h"
#include "graph.h"
#include "kernel.h"

namespace cnnc::codegen {

// An activation tensor: a view (shape) of a storage slot in the arena.
struct ActTensor {
  Dims shape;        // per image
  int storage = -1;
  std::string name;  // graph node that produced it
};

// A slot of the arena, in floats per image (the runtime multiplies by the batch size).
struct Storage {
  int64_t size = 0;
  int64_t offset = 0;
  int firstUse = 0, lastUse = 0;  // kernel indices (-1: before the first kernel)
};

// A constant kernel argument, computed from the weights at load time.
struct ConstTensor {
  // What it holds (common/plan_schema.h, which the runtime reads too).
  using Kind = plan_schema::ConstKind;
  static constexpr Kind Param = Kind::Param, FoldConvBN = Kind::FoldConvBN, BNScale = Kind::BNScale, BNShift = Kind::BNShift, Zeros = Kind::Zeros,
                        ParamRef = Kind::ParamRef, Grad = Kind::Grad, Stats = Kind::Stats, DParams = Kind::DParams, Eps = Kind::Eps, Seed = Kind::Seed,
                        Ones = Kind::Ones;
  Kind kind = Param;
  Dims shape;
  int param = -1;                  // Param: index into Graph::params
  int convW = -1, convB = -1;      // FoldConvBN: conv weight and bias (-1: none)
  int bnW = -1, bnB = -1, bnMean = -1, bnVar = -1;  // FoldConvBN, BNScale, BNShift (bnW, bnB -1: affine=false)
  double eps = 1e-5;
  bool foldBias = false;           // FoldConvBN: this constant is the folded bias (else the weight)
  plan_schema::ConstPack pack = plan_schema::ConstPack::None;  // a conv weight rearranged at load: `shape` is the rearranged one
};

struct KernelArg {
  bool isConst = false;
  int id = -1;  // ActTensor or ConstTensor index
};

// A kernel call's inputs by name (the names of the kernel's argument list, ops/registry.h).
using NamedArgs = std::vector<std::pair<std::string, KernelArg>>;

// The inputs of kernel s, taken from `named` in the order of its argument list, which is declared
// once, in its op file next to its algorithm; the caller appends the output. A plan may offer more
// than the kernel reads (every tensor a kernel of that kind can read: the op's list for this spec
// picks). Throws std::logic_error when a listed input is not offered (a bug in a plan builder,
// never the user's input).
std::vector<KernelArg> bindArgs(const KernelSpec& s, const NamedArgs& named);

// The position of input `name` in kernel s's argument list, or -1.
int argIndex(const KernelSpec& s, const std::string& name);

struct KernelCall {
  int spec = -1;                 // index into Plan::specs
  std::vector<KernelArg> args;   // inputs, constants, then the output (last)
  std::string label;             // the graph nodes it covers, for info and profiles
  int node = -1;                 // the graph node whose output it writes
};

struct Plan {
  std::vector<KernelSpec> specs;  // unique kernels
  std::vector<KernelCall> calls;
  std::vector<ActTensor> acts;
  std::vector<Storage> storages;
  std::vector<ConstTensor> consts;
  int input = -1, output = -1;    // ActTensor indices
  int64_t arenaPerImage = 0;      // floats
  std::vector<int> pinned;        // ActTensors the runtime reads or writes around the calls: live throughout
};

// Appends an activation tensor, in a new storage slot unless `storage` is given; returns its index.
int addActTensor(Plan& p, const Dims& shape, const std::string& name, int storage = -1);

// The index of kernel `s` (given its default schedule) in p.specs, added unless an identical
// kernel is there already; `index` maps signatures to indices.
int internSpec(Plan& p, KernelSpec s, std::map<std::string, int>& index);

// Groups the graph into kernels (conv+BN+add+activation fused, BN folded for inference), then
// plans memory. Never fails on a graph that elaboration accepted.
Plan buildInferencePlan(const Graph& g);

// Places storages in the arena by their live intervals over `p.calls` (see plan.cpp, step 5).
void planMemory(Plan& p);

// "" when no two storages that are live at the same call share arena space; else what overlaps.
std::string verifyPlan(const Plan& p);

// Readable form for tests (`cnnc --emit=plan`).
std::string planToText(const Plan& p, const Graph& g);

// Re-derives every kernel's default schedule for a resolved target (vector registers differ
// between x86 and NEON). Call before planToJson: kernel names depend on the schedule.
void applyTargetSchedules(Plan& p, const std::string& target);

// Inference: convs that vectorise over output channels get their weights packed once at load
// (output channels innermost), instead of transposing them in every call. Call after
// applyTargetSchedules.
void packConvWeights(Plan& p);

// packConvWeights' rule: an inference kernel takes its weights packed when it is a conv that
// vectorises over output channels, in blocks of packedBlock(schedule) channels (the T of
// common/packed_layout.h), or a Winograd conv, transformed (common/winograd_weights.h). The tuner
// applies the same rule to its candidates.
inline bool takesPackedWeights(const KernelSpec& s) { return s.kind == KernelKind::Conv && (s.schedule.chanVec > 0 || s.schedule.winograd); }
inline int packedBlock(const Schedule& s) { return s.vec * s.chanVec; }
inline plan_schema::ConstPack weightPacking(const KernelSpec& s) {
  using plan_schema::ConstPack;
  return !takesPackedWeights(s) ? ConstPack::None : s.schedule.winograd ? ConstPack::Winograd : ConstPack::Blocked;
}
// The shape of s's packed weight, given the unpacked one [O, C/g, kh, kw].
Dims packedWeightDims(const KernelSpec& s, const Dims& oihw);

// The plan as the JSON object the runtime reads (common/plan_schema.h); trainPlanToJson adds the
// training fields to it.
// `noTraining`: why the executable built from it has no training step ("" when it has one).
nlohmann::json planJsonObject(const Plan& p, const Graph& g, const SourceManager& sm, const std::string& target,
                              const std::string& noTraining = "");

// planJsonObject as text.
std::string planToJson(const Plan& p, const Graph& g, const SourceManager& sm, const std::string& target, const std::string& noTraining = "");

}  // namespace cnnc::codegen
