// import_cmd.h: `cnnc import MODEL.onnx -o NET.cnn [--weights NET.safetensors] [--name NET]`: an ONNX
// model as a .cnn file and its weights (interop/onnx_import.h).
// Exit status: 0 success, 1 a model that cannot be imported or an unwritable output, 2 bad command line.
#pragma once

namespace cnnc {

// argv[1] is "import"; the options follow it.
int runImport(int argc, char** argv);

}  // namespace cnnc
