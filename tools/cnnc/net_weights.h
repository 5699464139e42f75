// net_weights.h: a network's parameters in the driver (for --emit=onnx), read and checked exactly as
// its executable reads them (runtime/weights.cpp), or its initial ones.
#pragma once
#include <string>

#include "onnx_export.h"  // interop::NamedTensors

namespace cnnc {

// Every float parameter of the plan (planJson: codegen's planToJson) by state_dict name: from the
// safetensors file `path`, or, when it is empty, the executable's initial weights for seed 0 (what
// `X infer` without --weights and `X export-weights` use). False with the runtime's error message.
bool netWeights(const std::string& planJson, const std::string& path, interop::NamedTensors& out, std::string& err);

}  // namespace cnnc
