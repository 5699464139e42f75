// machine_peak.h: this machine's limits, measured in the running process, so that `bench --profile`
// states each kernel's distance to them with numbers taken side by side with the kernels' own.
#pragma once
#include <string>

namespace cnnc::rt {

struct MachinePeak {
  double gflops = 0;  // FP32 FMA GFLOP/s over the threads, at the vector width named by `isa`
  double gbs = 0;     // memory GB/s over the threads (STREAM triad, write-allocate not counted)
  std::string isa;    // "avx512", "avx2", "sse", "neon": the widest the kernels' target allows
};

// Measures both over `threads` threads (about 0.3 s). `target` is the plan's Halide target: an
// AVX2 build on an AVX-512 machine is held to AVX2's peak, since its kernels cannot use more.
MachinePeak measureMachinePeak(int threads, const std::string& target);

}  // namespace cnnc::rt
