// import_cmd.cpp: see import_cmd.h. It sees runtime/ (for the safetensors writer), not codegen/.
#include "import_cmd.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/atomic_file.h"
#include "onnx_import.h"
#include "safetensors.h"

namespace fs = std::filesystem;

namespace cnnc {

namespace {

// The network's name: the .cnn file's stem as an identifier.
std::string netNameFor(const std::string& out) {
  std::string s;
  for (char c : fs::path(out).stem().string()) s += isalnum((unsigned char)c) || c == '_' ? c : '_';
  if (s.empty() || isdigit((unsigned char)s[0])) s = "net_" + s;
  return s;
}

}  // namespace

int runImport(int argc, char** argv) {
  CLI::App app{"cnnc import: an ONNX model as a .cnn file a person can read and edit, and its weights as safetensors", "cnnc import"};
  std::string model, out, weights, name;
  bool listOps = false;
  app.add_option("model", model, "the .onnx file (opsets 9 to 17)");
  app.add_option("-o,--output", out, "the .cnn file to write");
  app.add_flag("--list-ops", listOps, "print the ONNX ops import reads, one per line, and exit");
  app.add_option("--weights", weights, "the weights file to write (default: the -o name with .safetensors)");
  app.add_option("--name", name, "the network's name in the .cnn (default: from the -o file name)");
  app.footer("Exit status: 0 success, 1 a model that cannot be imported or an output that cannot be written, 2 bad command line.\n"
             "Example: cnnc import resnet18.onnx -o r18.cnn && cnnc r18.cnn -o r18 && ./r18 infer --weights r18.safetensors --input x.safetensors");
  try {
    app.parse(argc - 1, argv + 1);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (listOps) {
    for (const auto& op : interop::importableOps()) printf("%s\n", op.c_str());
    return 0;
  }
  if (model.empty() || out.empty()) {
    fprintf(stderr, "cnnc import: error: %s is required\nRun with --help for more information.\n", model.empty() ? "the model (an .onnx file)" : "-o NET.cnn");
    return 2;
  }
  if (weights.empty()) weights = (fs::path(out).parent_path() / fs::path(out).stem()).string() + ".safetensors";
  for (const std::string& f : {out, weights}) {
    fs::path dir = fs::path(f).parent_path();
    std::error_code ec;
    if (!dir.empty() && !fs::is_directory(dir, ec)) {
      fprintf(stderr, "cnnc: error: cannot write %s: folder '%s' does not exist\n", f.c_str(), dir.string().c_str());
      return 1;
    }
  }
  if (name.empty()) name = netNameFor(out);
  interop::ImportResult r;
  std::string err;
  if (!interop::importOnnx(model, name, r, err)) {
    fprintf(stderr, "cnnc: error: %s\n", err.c_str());
    return 1;
  }
  std::vector<rt::TensorOut> tensors;
  static const int64_t zero = 0;
  for (const auto& t : r.weights) {
    if (t.isInt64) tensors.push_back({t.name, rt::DType::I64, {}, &zero, sizeof zero});
    else tensors.push_back({t.name, rt::DType::F32, t.shape, t.f32.data(), t.f32.size()});
  }
  // Both files or neither: the weights under a temporary name until the .cnn is in place.
  std::string tmpWeights = tempPathFor(weights);
  if (!rt::writeSafeTensors(tmpWeights, tensors, {{"source", fs::path(model).filename().string()}}, err)) {
    fprintf(stderr, "cnnc: error: %s\n", err.c_str());
    return 1;
  }
  AtomicWrite w = writeFileAtomically(out, [&](std::FILE* f) { return fwrite(r.cnn.data(), 1, r.cnn.size(), f) == r.cnn.size(); });
  if (!w) {
    unlink(tmpWeights.c_str());
    fprintf(stderr, "cnnc: error: cannot write %s: %s\n", out.c_str(), strerror(w.error));
    return 1;
  }
  if (int e = moveIntoPlace(tmpWeights, weights)) {
    fprintf(stderr, "cnnc: error: cannot write %s: %s\n", weights.c_str(), strerror(e));
    return 1;
  }
  for (const auto& n : r.notes) fprintf(stderr, "cnnc: note: %s\n", n.c_str());
  fprintf(stderr, "cnnc: %s -> %s (network %s), %s: %zu tensors\n", model.c_str(), out.c_str(), name.c_str(), weights.c_str(), r.weights.size());
  return 0;
}

}  // namespace cnnc
