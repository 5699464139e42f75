// train_plan.h: the plan of one training step: forward in training mode (batch-statistics batch
// norm, dropout), cross-entropy loss, then the backward pass, every kernel in one sequence over
// one arena. Parameter updates (the optimizer) and BN running statistics are the runtime's work.
#pragma once
#include <string>
#include <vector>

#include "plan.h"

namespace cnnc::codegen {

struct BNInfo {
  int node = -1;
  int stats = -1, dparams = -1;               // ConstTensor ids ([2,C] each)
  int gamma = -1, beta = -1, mean = -1, var = -1, tracked = -1;  // Graph::params indices
  double momentum = 0.1;
  int64_t elemsPerImage = 1;                  // H*W (1 for a flat input)
};

struct TrainPlan {
  Plan plan;                 // calls: forward, loss, backward
  int labels = -1;           // ActTensor [1], or [H,W] for [K,H,W] scores: class index as float
  int loss = -1;             // ActTensor [1]: per-sample loss
  int eps = -1;              // ConstTensor: label smoothing
  std::vector<int> paramGrad;   // per Graph param: ConstTensor id of its gradient, or -1
  std::vector<BNInfo> bns;
  std::vector<int> seeds;    // ConstTensor ids of dropout seeds, in node order
  int forwardCalls = 0;      // calls [0, forwardCalls) are the forward pass
};

// Fails (with `err`) for a graph that cannot be trained: an output that is not a flat vector of
// class scores. (Every op has a backward kernel.)
bool buildTrainingPlan(const Graph& g, TrainPlan& out, std::string& err);

std::string trainPlanToJson(const TrainPlan& tp, const Graph& g, const SourceManager& sm, const std::string& target);

}  // namespace cnnc::codegen
