// profile.h: the roofline report of `X bench [--train] --profile`: per kernel, its calls, time,
// GFLOP/s and GB/s, and how close it runs to the limit that binds it (the FMA peak or the memory
// bandwidth, both measured in the same process), split into forward and backward.
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include "machine_peak.h"
#include "plan.h"

namespace cnnc::rt {

// Bytes a call reads and writes at least once: every argument's size (activations for `batch`
// images). A lower bound of its memory traffic.
double callBytes(const Plan& p, size_t call, int64_t batch);

struct ProfileInput {
  const Plan* plan = nullptr;
  int64_t batch = 1;
  std::vector<std::vector<double>> runs;  // per profiled run, each call's ms (0 for calls not run)
  MachinePeak peak;
  int threads = 1;
};

// The report for a person.
void printRoofline(const ProfileInput& in, FILE* f);
// The same as one JSON object: {"runs", "threads", "peak_gflops", "mem_gbs", "isa", "total_ms",
// "calls": [{"label", "kernel", "phase", "ms", "flops", "bytes"}]}, each call's ms the median over runs.
std::string rooflineJson(const ProfileInput& in);

}  // namespace cnnc::rt
