// registry.h: one row per kernel kind: its name (in kernel function names and plans), whether its
// output has a batch dimension, and the op file's entry point that lowers it.
#pragma once
#include <string>
#include <vector>

#include "kernel.h"

namespace cnnc::codegen {

struct Lowered;  // lower.h

// The names of a kernel's inputs in call order; its output comes after them.
using ArgNames = std::vector<std::string>;

struct KernelEntry {
  KernelKind kind;
  const char* name;
  bool batched;                         // false: a reduction over the batch (parameter gradients)
  Lowered (*lower)(const KernelSpec&);  // algorithm + the target's schedule (ops.h)
  ArgNames (*args)(const KernelSpec&);  // its inputs, declared next to the algorithm (ops.h)
};

// The row of `k`; every KernelKind has one (tests/unit/plan_test.cpp checks them all).
const KernelEntry& kernelEntry(KernelKind k);

// The inputs of kernel `k`, in call order.
inline ArgNames kernelArgNames(const KernelSpec& k) { return kernelEntry(k.kind).args(k); }

}  // namespace cnnc::codegen
