/* capi.h: the C API of a network library built with `cnnc FILE --emit=lib -o DIR` (a static
 * library) or `--emit=python` (a shared one, with the Python module runtime/python/cnnc_net.py).
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
int cnnc_output_shape(const cnnc_net* net, int64_t dims[3]);
const char* cnnc_name(const cnnc_net* net);
/* Writes the weights (safetensors, state_dict names), atomically. */
int cnnc_save_weights(cnnc_net* net, const char* path);
/* The state_dict: count, then per tensor its name, shape (rank returned, dims written, at most 8)
 * and, for float tensors, a copy of its values (numel floats); num_batches_tracked is an int64
 * scalar: cnnc_param_int. */
int64_t cnnc_param_count(const cnnc_net* net);
const char* cnnc_param_name(const cnnc_net* net, int64_t i);
int cnnc_param_shape(const cnnc_net* net, int64_t i, int64_t dims[8]);
int cnnc_param_is_float(const cnnc_net* net, int64_t i);
int cnnc_param_get(const cnnc_net* net, int64_t i, float* out);
int cnnc_param_int(const cnnc_net* net, int64_t i, int64_t* out);
/* 1 if the library carries a training step (the net ends in class scores [K] or [K,H,W]). */
int cnnc_can_train(const cnnc_net* net);
/* One training step, as `X step` runs it: forward, cross-entropy loss (mean over the batch),
 * backward, batch-norm running statistics, then plain SGD: w -= lr * grad. labels: batch class
 * indices (batch x H x W for per-pixel scores). The mean loss before the update goes to *loss. */
int cnnc_train_step(cnnc_net* net, const float* input, const int64_t* labels, int64_t batch, double lr, double* loss);
const char* cnnc_error(const cnnc_net* net);
void cnnc_free(cnnc_net* net);

#ifdef __cplusplus
}
#endif
#endif
