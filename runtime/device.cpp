// device.cpp: see device.h. The driver libraries are opened here only to check for a device and
// name it; the kernels' own device calls go through the Halide runtime linked into the executable,
// which opens the same libraries.
#include "device.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <string>

// Present only when the executable's Halide runtime was built for that GPU API.
extern "C" {
__attribute__((weak)) const halide_device_interface_t* halide_cuda_device_interface();
__attribute__((weak)) const halide_device_interface_t* halide_opencl_device_interface();
}

namespace cnnc::rt {

namespace {

// The capability NN of "cuda_capability_NN" in a target string (70, cnnc's default, when none is named).
int builtCapability(const std::string& target) {
  size_t p = target.find("cuda_capability_");
  return p == std::string::npos ? 70 : atoi(target.c_str() + p + 16);
}

bool openCuda(const std::string& target, std::string& err) {
  const char* again = "; run this executable on a machine with an NVIDIA GPU and its driver, or rebuild the network with --target host";
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
  if (!lib) lib = dlopen("libcuda.so", RTLD_NOW | RTLD_GLOBAL);
  if (!lib) { err = std::string("this executable runs on a CUDA GPU, but no NVIDIA driver was found (libcuda.so.1)") + again; return false; }
  using InitFn = int (*)(unsigned);
  using CountFn = int (*)(int*);
  using GetFn = int (*)(int*, int);
  using NameFn = int (*)(char*, int, int);
  using AttrFn = int (*)(int*, int, int);
  auto init = (InitFn)dlsym(lib, "cuInit");
  auto count = (CountFn)dlsym(lib, "cuDeviceGetCount");
  auto get = (GetFn)dlsym(lib, "cuDeviceGet");
  auto name = (NameFn)dlsym(lib, "cuDeviceGetName");
  auto attr = (AttrFn)dlsym(lib, "cuDeviceGetAttribute");
  if (!init || !count || !get || !name || !attr) { err = "the NVIDIA driver library lacks the CUDA driver API (cuInit)"; return false; }
  int rc = init(0), n = 0;
  if (rc != 0) { err = "the NVIDIA driver failed to start (cuInit returned " + std::to_string(rc) + ")" + again; return false; }
  if (count(&n) != 0 || n == 0) { err = std::string("the NVIDIA driver found no CUDA device") + again; return false; }
  const char* pick = getenv("CNNC_GPU");
  int index = pick && *pick ? atoi(pick) : 0;
  if (index < 0 || index >= n) {
    err = "CNNC_GPU=" + std::string(pick) + " names no device: this machine has " + std::to_string(n) + " (0 to " + std::to_string(n - 1) + ")";
    return false;
  }
  int dev = 0, major = 0, minor = 0;
  char devName[256] = "?";
  get(&dev, index);
  name(devName, sizeof devName, dev);
  attr(&major, 75, dev);  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
  attr(&minor, 76, dev);  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
  int want = builtCapability(target);
  if (major * 10 + minor < want) {
    char b[400];
    snprintf(b, sizeof b, "GPU %d (%s) has compute capability %d.%d, but the kernels were built for %d.%d: rebuild with --target host-cuda-cuda_capability_%d%d",
             index, devName, major, minor, want / 10, want % 10, major, minor);
    err = b;
    return false;
  }
  // Halide's CUDA runtime picks its device from HL_GPU_DEVICE (by default the last one).
  setenv("HL_GPU_DEVICE", std::to_string(index).c_str(), 1);
  fprintf(stderr, "GPU %d of %d: %s (compute capability %d.%d)\n", index, n, devName, major, minor);
  return true;
}

bool openOpenCL(std::string& err) {
  void* lib = dlopen("libOpenCL.so.1", RTLD_NOW | RTLD_GLOBAL);
  if (!lib) lib = dlopen("libOpenCL.so", RTLD_NOW | RTLD_GLOBAL);
  using PlatFn = int (*)(unsigned, void**, unsigned*);
  auto plats = lib ? (PlatFn)dlsym(lib, "clGetPlatformIDs") : nullptr;
  unsigned n = 0;
  if (!plats || plats(0, nullptr, &n) != 0 || n == 0) {
    err = "this executable runs on an OpenCL device, but no OpenCL driver was found (install one, for example pocl-opencl-icd for CPUs), or rebuild "
          "the network with --target host";
    return false;
  }
  fprintf(stderr, "OpenCL: %u platform%s found\n", n, n == 1 ? "" : "s");
  return true;
}

}  // namespace

bool openDevice(const std::string& target, const halide_device_interface_t*& iface, std::string& err) {
  iface = nullptr;
  bool cuda = target.find("-cuda") != std::string::npos, opencl = target.find("-opencl") != std::string::npos;
  if (!cuda && !opencl) return true;
  if (cuda && !halide_cuda_device_interface) { err = "internal error: a CUDA plan without the CUDA runtime"; return false; }
  if (opencl && !halide_opencl_device_interface) { err = "internal error: an OpenCL plan without the OpenCL runtime"; return false; }
  static bool opened = false;  // one check (and one line on stderr) per process
  if (!opened) {
    if (cuda ? !openCuda(target, err) : !openOpenCL(err)) return false;
    opened = true;
  }
  iface = cuda ? halide_cuda_device_interface() : halide_opencl_device_interface();
  return true;
}

}  // namespace cnnc::rt
