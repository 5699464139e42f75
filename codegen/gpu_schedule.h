// gpu_schedule.h: GPU targets (CUDA, and OpenCL, which tests the GPU path on CPUs) and their
// default schedule (schedule.cpp). The GPU schedules themselves are in each op's file
// (codegen/ops/), with their shared helpers in codegen/ops/gpu.cpp.
#pragma once
#include <string>

#include "schedule.h"

namespace cnnc::codegen {

// True for a resolved Halide target string with a GPU feature (cuda or opencl).
bool isGpuTarget(const std::string& target);

// The schedule of every kernel on a GPU target: the plain algorithms (no channel vectors, no
// Winograd), whose loops the ops' GPU schedules map to blocks and threads.
Schedule gpuDefaultSchedule();

}  // namespace cnnc::codegen
