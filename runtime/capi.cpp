// capi.cpp: the C API (capi.h) over the plan executor.
#include "capi.h"

#include <cmath>
#include <memory>
#include <thread>

#include "executor.h"
#include "train.h"
#include "weights.h"

namespace cnnc::rt {
extern const KernelEntry kKernels[];
extern const int kNumKernels;
extern const unsigned char kPlanJson[];
extern const size_t kPlanJsonSize;
extern const unsigned char kTrainPlanJson[];
extern const size_t kTrainPlanJsonSize;
}  // namespace cnnc::rt

using namespace cnnc::rt;

struct cnnc_net {
  Plan plan, trainPlan;
  Executor ex;
  Weights weights;
  std::string error;
  std::unique_ptr<Trainer> trainer;  // made at the first training step
  bool stale = false;                // weights changed by training: the executor's copy is old
};

namespace {

// The executor holds its own copy of the weights (with BN folded in): renew it after training.
void refresh(cnnc_net* n) {
  if (!n->stale) return;
  n->ex.setWeights(n->weights);
  n->stale = false;
}

bool validParam(const cnnc_net* n, int64_t i) { return n && i >= 0 && i < (int64_t)n->plan.params.size(); }

// The shape queries: at most `room` dims written, the rank returned.
int copyDims(const Dims& d, int64_t* dims, size_t room) {
  for (size_t i = 0; i < d.size() && i < room; ++i) dims[i] = d[i];
  return (int)d.size();
}

}  // namespace

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
  if (kTrainPlanJsonSize > 0) {
    if (!parsePlan(reinterpret_cast<const char*>(kTrainPlanJson), kTrainPlanJsonSize, n->trainPlan, err) ||
        n->trainPlan.params.size() != n->plan.params.size()) {
      delete n;
      return nullptr;
    }
  }
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
  n->trainer.reset();  // it points at the old weights
  n->stale = false;
  return 0;
}

int cnnc_save_weights(cnnc_net* n, const char* path) {
  if (!n || !path) return -1;
  return saveWeights(n->plan, n->weights, path, n->error) ? 0 : 1;
}

int cnnc_forward(cnnc_net* n, const float* input, int64_t batch, float* output) {
  if (!n || !input || !output) return -1;
  if (batch < 1) { n->error = "batch must be at least 1"; return 1; }
  refresh(n);
  std::vector<float> out;
  if (!n->ex.run(input, batch, out, n->error)) return 1;
  std::copy(out.begin(), out.end(), output);
  return 0;
}

int64_t cnnc_input_size(const cnnc_net* n) { return n ? numel(n->plan.inputShape()) : 0; }
int64_t cnnc_output_size(const cnnc_net* n) { return n ? numel(n->plan.outputShape()) : 0; }

int cnnc_input_shape(const cnnc_net* n, int64_t dims[3]) { return n ? copyDims(n->plan.inputShape(), dims, 3) : -1; }

int cnnc_output_shape(const cnnc_net* n, int64_t dims[3]) { return n ? copyDims(n->plan.outputShape(), dims, 3) : -1; }

int64_t cnnc_param_count(const cnnc_net* n) { return n ? (int64_t)n->plan.params.size() : 0; }
const char* cnnc_param_name(const cnnc_net* n, int64_t i) { return validParam(n, i) ? n->plan.params[i].name.c_str() : ""; }

int cnnc_param_shape(const cnnc_net* n, int64_t i, int64_t dims[8]) { return validParam(n, i) ? copyDims(n->plan.params[i].shape, dims, 8) : -1; }

int cnnc_param_is_float(const cnnc_net* n, int64_t i) { return validParam(n, i) && !n->plan.params[i].isInt64(); }

int cnnc_param_get(const cnnc_net* n, int64_t i, float* out) {
  if (!validParam(n, i) || !out || n->plan.params[i].isInt64()) return -1;
  const std::vector<float>& v = n->weights.f32[i];
  std::copy(v.begin(), v.end(), out);
  return 0;
}

int cnnc_param_int(const cnnc_net* n, int64_t i, int64_t* out) {
  if (!validParam(n, i) || !out || !n->plan.params[i].isInt64()) return -1;
  *out = n->weights.i64[i];
  return 0;
}

int cnnc_can_train(const cnnc_net* n) { return n && n->trainPlan.isTraining() ? 1 : 0; }

int cnnc_train_step(cnnc_net* n, const float* input, const int64_t* labels, int64_t batch, double lr, double* loss) {
  if (!n || !input || !labels || !loss) return -1;
  if (!n->trainPlan.isTraining()) {
    n->error = noTrainingMessage(n->plan);
    return 1;
  }
  if (batch < 1) { n->error = "batch must be at least 1"; return 1; }
  if (!(lr >= 0) || !std::isfinite(lr)) { n->error = "lr must be a finite number >= 0"; return 1; }
  if (!n->trainer) {
    n->trainer = std::make_unique<Trainer>();
    if (!n->trainer->init(n->trainPlan, kKernels, kNumKernels, n->weights, n->error)) {
      n->trainer.reset();
      return 1;
    }
  }
  if (!n->trainer->step(input, labels, batch, 0, *loss, n->error)) return 1;
  sgdUpdate(n->trainPlan, n->weights, n->trainer->grads(), lr);
  n->stale = true;
  return 0;
}

const char* cnnc_name(const cnnc_net* n) { return n ? n->plan.net.c_str() : ""; }
const char* cnnc_error(const cnnc_net* n) { return n ? n->error.c_str() : "no network"; }
void cnnc_free(cnnc_net* n) { delete n; }

}  // extern "C"
