// onnx_import.h: an ONNX model as a readable .cnn file and its weights (`cnnc import MODEL.onnx`).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cnnc::interop {

struct ImportedTensor {
  std::string name;            // the .cnn's state_dict name
  std::vector<int64_t> shape;
  std::string f32;             // float parameters: float32 values, little-endian (ONNX's raw_data and
                               // safetensors' layout, so a model's weights are moved, not copied)
  bool isInt64 = false;        // num_batches_tracked (0)
};

struct ImportResult {
  std::string cnn;                      // the .cnn source
  std::vector<ImportedTensor> weights;  // in the order the .cnn declares them
  std::vector<std::string> notes;       // what the user should know (renamed parameters, folded nodes)
};

// The ops import maps, for error messages and the docs.
const std::vector<std::string>& importableOps();

// Reads the model at `path` (opsets 9 to 17; external data next to it) and translates it. `netName`:
// the network's name in the .cnn (a valid identifier). False with `err` naming the node (name, op
// type, opset) or the problem in the file; nothing is produced then.
bool importOnnx(const std::string& path, const std::string& netName, ImportResult& out, std::string& err);

}  // namespace cnnc::interop
