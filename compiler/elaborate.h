// elaborate.h: the semantic pass. Runs the network's statements (blocks, repetition, conditions,
// loops), resolves names, checks arguments and types, infers every tensor shape and produces the
// graph IR with PyTorch state_dict names.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "diagnostics.h"
#include "graph.h"
#include "parser.h"

namespace cnnc {

struct ElabOptions {
  std::string network;                          // empty: the only network of the main file
  std::map<std::string, std::string> overrides;  // -D name=value for network parameters
  std::vector<int64_t> inputShape;               // --input-shape: replaces input(...)'s C,H,W
  int64_t maxNodes = 200000;
  int maxBlockDepth = 64;
};

// The names of the built-in layers (the layer table of layers.cpp), without `input`.
std::vector<std::string> builtinLayerNames();

// For a name that is not a layer: the built-in layer a PyTorch user likely meant ("Conv2d",
// "ReLU6", "LeakyReLU", "nn.GELU": by PyTorch's module name, or in another case), or "".
std::string layerForPyTorchName(const std::string& name);

// Returns false when any error was reported; `out` is then incomplete.
bool elaborate(const Program& prog, const SourceManager& sm, Diagnostics& diags, const ElabOptions& opts, Graph& out);

}  // namespace cnnc
