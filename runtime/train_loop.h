// train_loop.h: `X train` and `X eval`: epochs over a data set with an optimizer and an LR schedule,
// a progress bar, per-epoch train/test loss and accuracy in DIR/log.jsonl, curves in DIR/curves.svg,
// and checkpoints at every epoch end and on SIGINT/SIGTERM (resumable to the exact batch).
#pragma once
#include <string>
#include <vector>

#include "comm.h"
#include "dataset.h"
#include "executor.h"
#include "lr_schedule.h"
#include "optim.h"
#include "plan.h"

namespace cnnc::rt {

struct TrainOptions {
  std::string data = "fashion-mnist", format = "auto", out = "run", init;
  int epochs = 10;
  int64_t batch = 128;
  std::string optimizer = "sgd";
  OptimConfig optim;
  LrSchedule schedule;
  double labelSmoothing = 0;
  uint64_t seed = 0;
  bool resume = false, augment = false, resize = false;
  // Transfer learning: --init loads what matches (see loadWeightsForTransfer); --reinit-mismatched
  // re-initialises what does not; --freeze PREFIX... trains only the rest (see resolveFreeze).
  bool reinitMismatched = false;
  std::vector<std::string> freeze;
  // --limit N: train on the first N images of the training split only (0: all of them); the test split is
  // unchanged. Recorded in checkpoints: a resumed run must give the same --limit.
  int64_t limit = 0;
  int evalBatch = 500;
  // Data parallel (under mpirun): `batch` is the global batch; --sync-bn; gradient bucket size.
  bool syncBn = false;
  double bucketMiB = 4;
  // Printed when the run starts: the recipe in effect and where it came from (runtime/recipe.h).
  std::string recipeLine;
};

// Loads the train or test split named by `data` ("fashion-mnist", or a folder of IDX files, CIFAR-10
// batches, or train/ and test/ with one subfolder of images per class); `format` auto, idx, cifar or folder.
bool loadSplit(const std::string& data, const std::string& format, bool train, Dataset& out, std::string& err);

// Under mpirun (comm.size() > 1) every rank runs this: rank 0 alone prints, logs and writes files.
int runTrain(const Plan& infer, const Plan& train, const KernelEntry* table, int count, const TrainOptions& o, Comm& comm);
int runEval(const Plan& infer, const KernelEntry* table, int count, const std::string& weights, const std::string& data,
            const std::string& format, bool json, bool resize);

}  // namespace cnnc::rt
