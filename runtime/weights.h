// weights.h: a network's parameters in memory: default initialisation (PyTorch's rules), strict
// loading from safetensors with PyTorch state_dict names, saving, and the constants the kernels
// take (BN folded into conv weights).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "plan.h"

namespace cnnc::rt {

struct Weights {
  std::vector<std::vector<float>> f32;  // per plan param; empty for int64 params
  std::vector<int64_t> i64;             // per plan param; num_batches_tracked
};

// PyTorch's defaults: conv/linear weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform
// with a = sqrt(5)); BN weight 1, bias 0, running mean 0, running var 1.
void initWeights(const Plan& p, uint64_t seed, Weights& w);

// Loads every parameter; any missing, extra, wrongly typed or wrongly shaped tensor is an error
// naming the tensor and the .cnn line that declares it. Nothing is loaded partially.
bool loadWeights(const Plan& p, const std::string& path, Weights& w, std::string& err);

// Transfer learning (`train --init`): loads the parameters and BN buffers that the file has under the
// same name and shape, and ignores the file's other tensors (one line in `notes`, e.g. an ImageNet
// head 'fc.weight' the network names differently). A parameter the file lacks or shapes differently
// is an error that lists each one (name, the network's shape, the file's shape or "missing", the
// .cnn line) and suggests --reinit-mismatched; with `reinitMismatched` those get initWeights' values
// for `seed` instead and `notes` names each re-initialised layer. A wrong dtype or a NaN is always
// an error, and so is a file of which no tensor matches (the wrong file). `reinitialised` marks the
// parameters that did not come from the file.
bool loadWeightsForTransfer(const Plan& p, const std::string& path, bool reinitMismatched, uint64_t seed, Weights& w,
                            std::vector<bool>& reinitialised, std::vector<std::string>& notes, std::string& err);

// The same checks on tensors already read. With `extra`, tensors that are not parameters (e.g. a
// checkpoint's optimizer state, F32) are returned there instead of being errors.
class SafeTensors;
bool weightsFromTensors(const Plan& p, const SafeTensors& st, const std::string& path, Weights& w,
                        std::map<std::string, std::vector<float>>* extra, std::string& err);

bool saveWeights(const Plan& p, const Weights& w, const std::string& path, std::string& err);

// The kernels' constant arguments, in plan order.
std::vector<std::vector<float>> deriveConsts(const Plan& p, const Weights& w);
// The same, taking over w's storage where a parameter is one constant and nothing else.
std::vector<std::vector<float>> deriveConsts(const Plan& p, Weights&& w);

}  // namespace cnnc::rt
