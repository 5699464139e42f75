// tune_model.h: what `cnnc tune` predicts before it measures: a cost model learned from the tuning
// database, and the order in which a kernel's candidates are measured (tune_model.cpp says how).
#pragma once
#include <string>
#include <vector>

#include "schedule.h"
#include "tuning_db.h"
#include "ops/conv.h"

namespace cnnc::codegen {

// What a record's kernel key (KernelSpec::key: "conv in=[64,56,56] out=[64,56,56] ... k=3x3 s=1x1
// ...") says about its shape. `ok` is false for keys of other kinds or that do not parse.
struct KernelShape {
  std::string kind;  // kernelKindName of Conv, ConvBackData or ConvBackWeight
  int C = 0, H = 0, W = 0, O = 0, OH = 0, OW = 0, kh = 0, kw = 0, sh = 1, sw = 1, groups = 1;
  bool ok = false;
  bool depthwise() const { return isDepthwise(C, O, groups); }
};
KernelShape parseKernelKey(const std::string& key);

// Ridge regression over schedule features (register tile, its share of the registers, the padding
// a tile wastes at the edges, vector family crossed with the layer's widths) fitted to each record's
// log time relative to the mean of its own kernel's records, so kernels of any size train one model.
class CostModel {
public:
  // Records of one target and cnnc version (the caller filters); false when too few to learn from.
  bool fit(const std::vector<TuningRecord>& records);
  bool ready() const { return !w_.empty(); }
  int samples() const { return samples_; }
  // Predicted log time of `s` on `k`, up to a constant per kernel: only comparisons within one
  // kernel mean anything.
  double predict(const KernelShape& k, const Schedule& s) const;

private:
  std::vector<double> w_;
  int samples_ = 0;
};

// The features the model weighs (exposed for tests).
std::vector<double> scheduleFeatures(const KernelShape& k, const Schedule& s);

// The fastest schedules on record for kernels like `k` (same kind, kernel size, stride and groups;
// other sizes; tuned, that is with at least 4 records), nearest first, at most `n`.
std::vector<Schedule> similarKernelsBest(const KernelShape& k, const std::string& key, const TuningDb& db, const std::string& target, size_t n);

// Measurement order for a kernel's candidates (the default, first, stays first): the schedules of
// `seeds` that are candidates, then the rest by the model's prediction (when ready), else as given.
std::vector<Schedule> orderCandidates(const KernelShape& k, const std::vector<Schedule>& candidates, const std::vector<Schedule>& seeds,
                                      const CostModel& model);

// Whether two schedules differ in exactly one tile field (vec, tileX, tileY, tileC, chanVec) and
// share the family (direct along x, along channels, Winograd): the neighbours evolutionary
// refinement tries next to the best so far.
bool neighbours(const Schedule& a, const Schedule& b);

}  // namespace cnnc::codegen
