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
  // FLOPs per image of its algorithm, for the roofline of `bench --profile`; null for the kinds
  // whose arithmetic is negligible next to their memory traffic (judged by bytes moved instead).
  double (*flops)(const KernelSpec&) = nullptr;
};

// The row of `k`; every KernelKind has one (tests/unit/plan_test.cpp checks them all).
const KernelEntry& kernelEntry(KernelKind k);

// The inputs of kernel `k`, in call order.
inline ArgNames kernelArgNames(const KernelSpec& k) { return kernelEntry(k.kind).args(k); }

// FLOPs per image of kernel `k` (0 for memory-bound kinds).
inline double kernelFlops(const KernelSpec& k) { auto f = kernelEntry(k.kind).flops; return f ? f(k) : 0.0; }

}  // namespace cnnc::codegen
