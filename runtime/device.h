// device.h: the GPU an executable built for host-cuda (or host-opencl) runs its kernels on.
#pragma once
#include <string>

#include "HalideRuntime.h"

namespace cnnc::rt {

// The Halide device interface of a plan's target: null for CPU targets.
// For GPU targets, opens the device first (CUDA: $CNNC_GPU or device 0) and says which one it
// found on stderr once; false with `err` saying what is missing (no driver, no device, a device
// older than the compute capability the kernels were built for).
bool openDevice(const std::string& target, const halide_device_interface_t*& iface, std::string& err);

}  // namespace cnnc::rt
