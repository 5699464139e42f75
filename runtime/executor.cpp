// executor.cpp: see executor.h.
#include "executor.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <mutex>

namespace cnnc::rt {

namespace {
std::mutex gErrMu;
std::string gHalideError;
}  // namespace

std::string lastHalideError() {
  std::lock_guard<std::mutex> l(gErrMu);
  return gHalideError;
}

}  // namespace cnnc::rt

namespace cnnc::rt {

// Kernel assertion failures become the caller's error message instead of text printed from
// inside a kernel.
static void onHalideError(void*, const char* msg) {
  std::lock_guard<std::mutex> l(gErrMu);
  gHalideError = msg ? msg : "";
}

bool Executor::init(const Plan& p, const KernelEntry* table, int count, std::string& err) {
  dumpDir_ = getenv("CNNC_DUMP_DIR");
  halide_set_error_handler(onHalideError);
  plan_ = &p;
  fns_.clear();
  for (const auto& k : p.kernels) {
    int (*fn)(void**) = nullptr;
    for (int i = 0; i < count; ++i)
      if (k.fn == table[i].name) fn = table[i].fn;
    if (!fn) { err = "kernel " + k.fn + " is missing from this executable"; return false; }
    fns_.push_back(fn);
  }
  return true;
}

void Executor::setWeights(const Weights& w) {
  consts_ = deriveConsts(*plan_, w);
  constPtr_.clear();
  for (auto& c : consts_) constPtr_.push_back(c.data());
  constInt_.assign(consts_.size(), false);
  batch_ = 0;  // buffers point at the old constants: rebuild them
}

void Executor::bindConstants(std::vector<void*> ptrs, std::vector<bool> isInt) {
  constPtr_ = std::move(ptrs);
  constInt_ = std::move(isInt);
  batch_ = 0;
}

float* Executor::tensorData(int t, int64_t n) { return arena_.data() + plan_->storages[plan_->acts[t].storage].offset * n; }

bool Executor::reserve(int64_t n, std::string& err) {
  if (n <= 0) { err = "batch size must be at least 1"; return false; }
  double bytes = (double)plan_->arenaPerImage * 4.0 * (double)n;
  double avail = (double)sysconf(_SC_AVPHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
  long pages = sysconf(_SC_PHYS_PAGES);
  double total = (double)pages * (double)sysconf(_SC_PAGESIZE);
  if (bytes > total * 0.9 || (avail > 0 && bytes > avail * 2)) {
    char b[256];
    snprintf(b, sizeof b, "batch %lld needs %.1f GiB of activations, more than this machine can give (%.1f GiB free); use a smaller batch",
             (long long)n, bytes / (1 << 30), avail / (1 << 30));
    err = b;
    return false;
  }
  return true;
}

void Executor::makeBuffer(Buf& buf, void* data, const Dims& shape, int64_t n, bool isInt) {
  int rank = (int)shape.size() + (n > 0 ? 1 : 0);
  int64_t stride = 1;
  for (int i = 0; i < (int)shape.size(); ++i) {
    int64_t e = shape[shape.size() - 1 - i];
    buf.dims[i] = {0, (int32_t)e, (int32_t)stride, 0};
    stride *= e;
  }
  if (n > 0) buf.dims[shape.size()] = {0, (int32_t)n, (int32_t)stride, 0};
  buf.b = halide_buffer_t{};
  buf.b.host = reinterpret_cast<uint8_t*>(data);
  buf.b.type = isInt ? halide_type_t(halide_type_int, 32) : halide_type_t(halide_type_float, 32);
  buf.b.dimensions = rank;
  buf.b.dim = buf.dims;
}

bool Executor::prepare(int64_t n, std::string& err) {
  const Plan& p = *plan_;
  if (n == batch_) return true;
  if (!reserve(n, err)) return false;
  arena_.assign((size_t)(p.arenaPerImage * n), 0.0f);
  batch_ = n;
  callBufs_.assign(p.calls.size(), {});
  for (size_t c = 0; c < p.calls.size(); ++c) {
    const CallSpec& call = p.calls[c];
    callBufs_[c].resize(call.args.size());
    for (size_t a = 0; a < call.args.size(); ++a) {
      const CallArg& arg = call.args[a];
      Buf& b = callBufs_[c][a];
      if (arg.isConst) makeBuffer(b, constPtr_[arg.id], p.consts[arg.id].shape, 0, constInt_[arg.id]);
      else makeBuffer(b, tensorData(arg.id, n), p.acts[arg.id].shape, n);
    }
  }
  return true;
}

// Debugging aid: CNNC_DUMP_DIR=folder writes every call's output (raw float32) as it is produced.
void Executor::dumpCall(size_t c, int64_t n) {
  const CallArg& o = plan_->calls[c].args.back();
  size_t count = o.isConst ? (size_t)numel(plan_->consts[o.id].shape) : (size_t)(numel(plan_->acts[o.id].shape) * n);
  const void* data = o.isConst ? constPtr_[o.id] : (const void*)tensorData(o.id, n);
  std::string name = std::string(dumpDir_) + "/" + std::to_string(c) + ".bin";
  if (FILE* f = fopen(name.c_str(), "wb")) {
    fwrite(data, 4, count, f);
    fclose(f);
  }
}

bool Executor::runCalls(int64_t n, std::string& err) {
  const Plan& p = *plan_;
  std::vector<void*> argv;
  if (profile) callMs.assign(p.calls.size(), 0.0);
  for (size_t c = 0; c < p.calls.size(); ++c) {
    if (!active.empty() && !active[c]) continue;
    argv.clear();
    for (auto& b : callBufs_[c]) argv.push_back(&b.b);
    auto t0 = std::chrono::steady_clock::now();
    int rc = fns_[p.calls[c].kernel](argv.data());
    if (profile) callMs[c] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (rc != 0) {
      err = "kernel for " + p.calls[c].label + " failed (" + std::to_string(rc) + "): " + lastHalideError();
      return false;
    }
    if (dumpDir_) dumpCall(c, n);
  }
  return true;
}

bool Executor::run(const float* input, int64_t n, std::vector<float>& output, std::string& err) {
  const Plan& p = *plan_;
  if (!prepare(n, err)) return false;
  memcpy(tensorData(p.input, n), input, (size_t)(numel(p.inputShape()) * n) * sizeof(float));
  if (!runCalls(n, err)) return false;
  const float* src = tensorData(p.output, n);
  output.assign(src, src + numel(p.outputShape()) * n);
  return true;
}

}  // namespace cnnc::rt
