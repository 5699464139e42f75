// activation.h: the rule of the activation table (activation.cpp) that the training plan follows
// when it groups kernels and chooses their arguments.
#pragma once
#include "kernel.h"

namespace cnnc::codegen {

// Whether `a`'s derivative is a function of its output y. Then backward kernels read the saved y,
// and the activation may fuse into the kernel before it (which stores only y). Otherwise they read
// the activation's input x, so the training plan keeps the activation a kernel of its own.
bool gradReadsOutput(const Act& a);

// Whether the activation table has a row named `name` (tests check it against the layer table).
bool activationKnown(const std::string& name);

}  // namespace cnnc::codegen
