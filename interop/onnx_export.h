// onnx_export.h: a checked graph as an ONNX model (`cnnc NET.cnn --emit=onnx -o NET.onnx`).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "graph.h"

namespace cnnc::interop {

struct OnnxExportOptions {
  int opset = 13;        // 13 to 17
  std::string producerVersion;
};

// Every parameter of the graph by its state_dict name, float32 in PyTorch's layout (num_batches_tracked
// is not exported: ONNX inference has no use for it).
using NamedTensors = std::map<std::string, std::vector<float>>;

// The model's serialized bytes: one input "input" [N, C, H, W] (N symbolic), one output "output",
// initializers named as the .cnn names them, one ONNX node (or a few) per graph node, named after it.
// Checked with ONNX's checker and shape inference before it is returned. False with `err` naming
// the node when an op or attribute has no ONNX form at this opset.
bool exportOnnx(const Graph& g, const NamedTensors& weights, const OnnxExportOptions& opts, std::string& bytes, std::string& err);

}  // namespace cnnc::interop
