// checkpoint.h: training checkpoints that survive crashes, Ctrl-C and full disks.
//
// DIR/checkpoint.safetensors holds the parameters (PyTorch names), any extra state (optimizer
// buffers, under their own names) and string metadata (net, epoch, step, seed, ...). Before a new
// checkpoint is written, the current one is hard-linked to DIR/checkpoint.prev.safetensors; the
// new file is then written to a temporary name, fsynced and renamed over the old one, and the folder
// is fsynced. A failed write (ENOSPC, EDQUOT, a kill) leaves both files as they were.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "plan.h"
#include "weights.h"

namespace cnnc::rt {

struct CheckpointState {
  std::map<std::string, std::vector<float>> extra;   // e.g. "optim.conv1.weight.momentum_buffer"
  std::map<std::string, std::string> meta;           // "epoch", "step", "seed", ...
};

std::string checkpointPath(const std::string& dir);
std::string previousCheckpointPath(const std::string& dir);

bool saveCheckpoint(const std::string& dir, const Plan& p, const Weights& w, const CheckpointState& s, std::string& err);

// Loads DIR/checkpoint.safetensors, or the previous one if the current is unreadable (`usedPrevious`
// says so). A checkpoint of another network is an error that names both networks.
bool loadCheckpoint(const std::string& dir, const Plan& p, Weights& w, CheckpointState& s, bool& usedPrevious, std::string& err);

}  // namespace cnnc::rt
