// capi.cpp: the C API (capi.h) over the plan executor.
#include "capi.h"

#include <thread>

#include "executor.h"
#include "weights.h"

namespace cnnc::rt {
extern const KernelEntry kKernels[];
extern const int kNumKernels;
extern const unsigned char kPlanJson[];
extern const size_t kPlanJsonSize;
}  // namespace cnnc::rt

using namespace cnnc::rt;

struct cnnc_net {
  Plan plan;
  Executor ex;
  Weights weights;
  std::string error;
};

extern "C" {

cnnc_net* cnnc_create(int threads) {
  auto* n = new (std::nothrow) cnnc_net;
  if (!n) return nullptr;
  std::string err;
  if (!parsePlan(reinterpret_cast<const char*>(kPlanJson), kPlanJsonSize, n->plan, err) || !n->ex.init(n->plan, kKernels, kNumKernels, err)) {
    delete n;
    return nullptr;
  }
  halide_set_num_threads(threads > 0 ? threads : (int)std::max(1u, std::thread::hardware_concurrency()));
  initWeights(n->plan, 0, n->weights);
  n->ex.setWeights(n->weights);
  return n;
}

int cnnc_load_weights(cnnc_net* n, const char* path) {
  if (!n || !path) return -1;
  Weights w;
  if (!loadWeights(n->plan, path, w, n->error)) return 1;
  n->weights = std::move(w);
  n->ex.setWeights(n->weights);
  return 0;
}

int cnnc_forward(cnnc_net* n, const float* input, int64_t batch, float* output) {
  if (!n || !input || !output) return -1;
  std::vector<float> out;
  if (!n->ex.run(input, batch, out, n->error)) return 1;
  std::copy(out.begin(), out.end(), output);
  return 0;
}

int64_t cnnc_input_size(const cnnc_net* n) { return n ? numel(n->plan.inputShape()) : 0; }
int64_t cnnc_output_size(const cnnc_net* n) { return n ? numel(n->plan.outputShape()) : 0; }

int cnnc_input_shape(const cnnc_net* n, int64_t dims[3]) {
  if (!n) return -1;
  const Dims& d = n->plan.inputShape();
  for (size_t i = 0; i < d.size() && i < 3; ++i) dims[i] = d[i];
  return (int)d.size();
}

const char* cnnc_name(const cnnc_net* n) { return n ? n->plan.net.c_str() : ""; }
const char* cnnc_error(const cnnc_net* n) { return n ? n->error.c_str() : "no network"; }
void cnnc_free(cnnc_net* n) { delete n; }

}  // extern "C"
