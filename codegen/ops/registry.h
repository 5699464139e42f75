// registry.h: one row per kernel kind: its name (in kernel function names and plans), whether its
// output has a batch dimension, and the op file's entry point that lowers it.
#pragma once
#include "kernel.h"

namespace cnnc::codegen {

struct Lowered;  // lower.h

struct KernelEntry {
  KernelKind kind;
  const char* name;
  bool batched;                         // false: a reduction over the batch (parameter gradients)
  Lowered (*lower)(const KernelSpec&);  // algorithm + the target's schedule (ops.h)
};

// The row of `k`; every KernelKind has one (tests/unit/plan_test.cpp checks them all).
const KernelEntry& kernelEntry(KernelKind k);

}  // namespace cnnc::codegen
