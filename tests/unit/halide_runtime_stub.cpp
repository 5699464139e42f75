// The few Halide runtime entry points the executor references, for unit tests that run it with
// fake kernels on the CPU. Executables link the real runtime (compiled per target by cnnc); here
// the device calls fail, since no test opens a device.
#include "HalideRuntime.h"

extern "C" {
halide_error_handler_t halide_set_error_handler(halide_error_handler_t) { return nullptr; }
int halide_copy_to_host(void*, halide_buffer_t*) { return -1; }
int halide_copy_to_device(void*, halide_buffer_t*, const halide_device_interface_t*) { return -1; }
int halide_device_crop(void*, const halide_buffer_t*, halide_buffer_t*) { return -1; }
int halide_device_release_crop(void*, halide_buffer_t*) { return -1; }
int halide_device_sync(void*, halide_buffer_t*) { return -1; }
int halide_device_malloc(void*, halide_buffer_t*, const halide_device_interface_t*) { return -1; }
int halide_device_free(void*, halide_buffer_t*) { return -1; }
halide_malloc_t halide_set_custom_malloc(halide_malloc_t) { return nullptr; }
halide_free_t halide_set_custom_free(halide_free_t) { return nullptr; }
}
