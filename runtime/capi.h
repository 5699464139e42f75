/* capi.h: the C API of a network library built with `cnnc FILE --emit=lib -o DIR`.
 * One network per program: the library holds that network's kernels and plan.
 * Every function returns 0 on success; on failure, cnnc_error() says why. */
#ifndef CNNC_CAPI_H
#define CNNC_CAPI_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct cnnc_net cnnc_net;

/* Creates the network with PyTorch-style random weights. threads <= 0: all cores. NULL on failure. */
cnnc_net* cnnc_create(int threads);
/* Loads weights from a safetensors file with PyTorch state_dict names; all or nothing. */
int cnnc_load_weights(cnnc_net* net, const char* path);
/* input: batch x input_size floats (NCHW); output: batch x output_size floats. */
int cnnc_forward(cnnc_net* net, const float* input, int64_t batch, float* output);
/* Per-image element counts and shapes (rank 1 or 3, written to dims). */
int64_t cnnc_input_size(const cnnc_net* net);
int64_t cnnc_output_size(const cnnc_net* net);
int cnnc_input_shape(const cnnc_net* net, int64_t dims[3]);
const char* cnnc_name(const cnnc_net* net);
const char* cnnc_error(const cnnc_net* net);
void cnnc_free(cnnc_net* net);

#ifdef __cplusplus
}
#endif
#endif
