// executor.cpp: see executor.h.
#include "executor.h"
#include "common/kernel_alloc.h"

#include <unistd.h>

#include <chrono>
#include <cstdint>
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

// CNNC_CHECK_WRITES's guard zone after the arena: a kernel that stores past the last tensor's
// end changes it. (Halide 14 dropped the guard of a vectorised tail store in one schedule, so a
// kernel wrote 15 floats past its output into a live tensor: see conv_depthwise.cpp.)
static constexpr size_t kGuardFloats = 4096;
static constexpr float kGuardValue = -1.25e-38f;

// Kernel assertion failures become the caller's error message instead of text printed from
// inside a kernel.
static void onHalideError(void*, const char* msg) {
  std::lock_guard<std::mutex> l(gErrMu);
  gHalideError = msg ? msg : "";
}

bool Executor::init(const Plan& p, const KernelEntry* table, int count, std::string& err) {
  dumpDir_ = getenv("CNNC_DUMP_DIR");
  const char* check = getenv("CNNC_CHECK_WRITES");
  checkWrites_ = check && *check && std::string(check) != "0";
  halide_set_error_handler(onHalideError);
  // The kernels' own buffers from 64 KiB kept when freed, from 4 MiB on 2 MiB pages (common/kernel_alloc.h).
  halide_set_custom_malloc(kernelMalloc);
  halide_set_custom_free(kernelFree);
  plan_ = &p;
  fns_.clear();
  for (const auto& k : p.kernels) {
    int (*fn)(void**) = nullptr;
    for (int i = 0; i < count; ++i)
      if (k.fn == table[i].name) fn = table[i].fn;
    if (!fn) { err = "kernel " + k.fn + " is missing from this executable"; return false; }
    fns_.push_back(fn);
  }
  constWritten_.assign(p.consts.size(), false);
  for (const auto& c : p.calls)
    if (!c.args.empty() && c.args.back().isConst) constWritten_[c.args.back().id] = true;
  return true;
}

void Executor::setWeights(const Weights& w) {
  consts_ = deriveConsts(*plan_, w);
  constantsChanged();
}

void Executor::setWeights(Weights&& w) {
  consts_ = deriveConsts(*plan_, std::move(w));
  constantsChanged();
}

void Executor::constantsChanged() {
  constPtr_.clear();
  for (auto& c : consts_) constPtr_.push_back(c.data());
  constInt_.assign(consts_.size(), false);
  constsChange_ = false;
  batch_ = 0;  // buffers point at the old constants: rebuild them
}

void Executor::bindConstants(std::vector<void*> ptrs, std::vector<bool> isInt) {
  constPtr_ = std::move(ptrs);
  constInt_ = std::move(isInt);
  constsChange_ = true;
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
  // The GPU is opened at first use, so that --help and info work on machines without one.
  if (!deviceOpen_ && !openDevice(p.target, dev_, err)) return false;
  deviceOpen_ = true;
  releaseDevice();
  arena_.assign((size_t)(p.arenaPerImage * n), 0.0f);
  if (checkWrites_ && !dev_) arena_.insert(arena_.end(), kGuardFloats, kGuardValue);
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
  if (dev_ && !placeOnDevice(n, err)) {
    releaseDevice();
    batch_ = 0;
    return false;
  }
  return true;
}

// A 1-D float or int32 buffer of `count` elements at `data`, its element 0 at index `min`.
static void flatBuffer(halide_buffer_t& b, halide_dimension_t& d, void* data, int64_t min, int64_t count, bool isInt) {
  d = {(int32_t)min, (int32_t)count, 1, 0};
  b = halide_buffer_t{};
  b.host = reinterpret_cast<uint8_t*>(data);
  b.type = isInt ? halide_type_t(halide_type_int, 32) : halide_type_t(halide_type_float, 32);
  b.dimensions = 1;
  b.dim = &d;
}

bool Executor::placeOnDevice(int64_t n, std::string& err) {
  const Plan& p = *plan_;
  auto fail = [&](const std::string& what, int rc) {
    err = what + " failed (" + std::to_string(rc) + "): " + lastHalideError();
    return false;
  };
  flatBuffer(arenaDev_.b, arenaDev_.dims[0], arena_.data(), 0, (int64_t)arena_.size(), false);
  if (int rc = halide_device_malloc(nullptr, &arenaDev_.b, dev_)) {
    char b[160];
    snprintf(b, sizeof b, "allocating %.1f MiB of activations on the GPU (batch %lld; try a smaller one)", arena_.size() * 4.0 / (1 << 20), (long long)n);
    return fail(b, rc);
  }
  constDev_.clear();
  constDev_.resize(p.consts.size());
  for (size_t i = 0; i < p.consts.size(); ++i) {
    flatBuffer(constDev_[i].b, constDev_[i].dims[0], constPtr_[i], 0, numel(p.consts[i].shape), constInt_[i]);
    if (int rc = halide_device_malloc(nullptr, &constDev_[i].b, dev_)) return fail("allocating constant " + std::to_string(i) + " on the GPU", rc);
  }
  // Every call argument becomes a crop of the arena or of its constant: the kernels then read and
  // write device memory only, and a tensor written by one kernel is where the next one reads it.
  for (size_t c = 0; c < p.calls.size(); ++c)
    for (size_t a = 0; a < p.calls[c].args.size(); ++a) {
      const CallArg& arg = p.calls[c].args[a];
      Buf& b = callBufs_[c][a];
      halide_buffer_t& src = arg.isConst ? constDev_[arg.id].b : arenaDev_.b;
      int64_t count = arg.isConst ? numel(p.consts[arg.id].shape) : numel(p.acts[arg.id].shape) * n;
      int64_t min = arg.isConst ? 0 : (int64_t)(reinterpret_cast<float*>(b.b.host) - arena_.data());
      auto crop = std::make_unique<Buf>();
      flatBuffer(crop->b, crop->dims[0], b.b.host, min, count, arg.isConst && constInt_[arg.id]);
      if (int rc = halide_device_crop(nullptr, &src, &crop->b)) return fail("placing " + p.calls[c].label + " on the GPU", rc);
      b.b.device = crop->b.device;
      b.b.device_interface = crop->b.device_interface;
      crops_.push_back(std::move(crop));
    }
  constsOnDevice_ = false;
  return true;
}

bool Executor::copyRegion(halide_buffer_t& src, int64_t offset, int64_t count, bool toDev, std::string& err) {
  Buf view;
  bool isInt = src.type.code == halide_type_int;
  flatBuffer(view.b, view.dims[0], src.host + offset * 4, offset, count, isInt);
  int rc = halide_device_crop(nullptr, &src, &view.b);
  if (rc == 0) {
    view.b.flags = toDev ? halide_buffer_flag_host_dirty : halide_buffer_flag_device_dirty;
    rc = toDev ? halide_copy_to_device(nullptr, &view.b, dev_) : halide_copy_to_host(nullptr, &view.b);
    halide_device_release_crop(nullptr, &view.b);
  }
  if (rc != 0) err = std::string(toDev ? "copying to" : "copying from") + " the GPU failed (" + std::to_string(rc) + "): " + lastHalideError();
  return rc == 0;
}

bool Executor::toDevice(int t, int64_t n, std::string& err) {
  if (!dev_) return true;
  return copyRegion(arenaDev_.b, tensorData(t, n) - arena_.data(), numel(plan_->acts[t].shape) * n, true, err);
}

bool Executor::toHost(int t, int64_t n, std::string& err) {
  if (!dev_) return true;
  return copyRegion(arenaDev_.b, tensorData(t, n) - arena_.data(), numel(plan_->acts[t].shape) * n, false, err);
}

// Up: the constants kernels only read (weights, parameters the host optimiser updated); down: the
// ones kernels write (gradients, batch statistics), which the host reads after a step.
bool Executor::syncConstants(bool toDev, std::string& err) {
  for (size_t i = 0; i < constDev_.size(); ++i)
    if (constWritten_[i] != toDev && !copyRegion(constDev_[i].b, 0, constDev_[i].dims[0].extent, toDev, err)) return false;
  return true;
}

void Executor::releaseDevice() {
  for (auto& c : crops_) halide_device_release_crop(nullptr, &c->b);
  crops_.clear();
  for (auto& c : constDev_)
    if (c.b.device) halide_device_free(nullptr, &c.b);
  constDev_.clear();
  if (arenaDev_.b.device) halide_device_free(nullptr, &arenaDev_.b);
  arenaDev_.b = halide_buffer_t{};
}

bool Executor::checkWrites(size_t c, int64_t n, std::string& err) const {
  const Plan& p = *plan_;
  const CallArg& o = p.calls[c].args.back();
  size_t begin = 0, end = 0;  // the output's floats in the arena (none when it is a constant)
  if (!o.isConst) {
    begin = (size_t)(p.storages[p.acts[o.id].storage].offset * n);
    end = begin + (size_t)(numel(p.acts[o.id].shape) * n);
  }
  auto firstChange = [&](size_t from, size_t to) -> size_t {
    if (to <= from || memcmp(&arena_[from], &shadow_[from], (to - from) * sizeof(float)) == 0) return SIZE_MAX;
    for (size_t i = from; i < to; ++i)
      if (memcmp(&arena_[i], &shadow_[i], sizeof(float)) != 0) return i;
    return SIZE_MAX;
  };
  size_t at = firstChange(0, begin);
  if (at == SIZE_MAX) at = firstChange(end, arena_.size());
  if (at == SIZE_MAX) return true;
  std::string where = "past the arena's end";
  size_t arenaEnd = (size_t)(p.arenaPerImage * n);
  for (size_t t = 0; t < p.acts.size() && at < arenaEnd; ++t) {
    const StorageSpec& s = p.storages[p.acts[t].storage];
    size_t b = (size_t)(s.offset * n), e = b + (size_t)(s.size * n);
    if (at >= b && at < e) { where = "in the storage of " + p.acts[t].name; break; }
  }
  std::string out = o.isConst ? "a constant" : p.acts[o.id].name + " (arena floats " + std::to_string(begin) + ".." + std::to_string(end) + ")";
  err = "kernel " + p.kernels[p.calls[c].kernel].fn + " for " + p.calls[c].label + " wrote outside its output " + out + ": arena float " +
        std::to_string(at) + ", " + where + " (CNNC_CHECK_WRITES; a code generation bug: please report it with the .cnn file)";
  return false;
}

// Debugging aid: CNNC_DUMP_DIR=folder writes every call's output (raw float32) as it is produced.
void Executor::dumpCall(size_t c, int64_t n) {
  const CallArg& o = plan_->calls[c].args.back();
  std::string err;
  if (dev_ && !(o.isConst ? copyRegion(constDev_[o.id].b, 0, constDev_[o.id].dims[0].extent, false, err) : toHost(o.id, n, err))) return;
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
  if (dev_ && (!constsOnDevice_ || constsChange_)) {
    if (!syncConstants(true, err)) return false;
    constsOnDevice_ = true;
  }
  for (size_t c = 0; c < p.calls.size(); ++c) {
    if (!active.empty() && !active[c]) continue;
    argv.clear();
    for (auto& b : callBufs_[c]) {
      b.b.flags = 0;  // device memory is current: Halide must copy nothing
      argv.push_back(&b.b);
    }
    if (checkWrites_ && !dev_) shadow_.assign(arena_.begin(), arena_.end());
    auto t0 = std::chrono::steady_clock::now();
    int rc = fns_[p.calls[c].kernel](argv.data());
    if (rc == 0 && dev_ && profile) rc = halide_device_sync(nullptr, &callBufs_[c].back().b);
    if (profile) callMs[c] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (rc != 0) {
      err = "kernel for " + p.calls[c].label + " failed (" + std::to_string(rc) + "): " + lastHalideError();
      return false;
    }
    if (checkWrites_ && !dev_ && !checkWrites(c, n, err)) return false;
    if (dumpDir_) dumpCall(c, n);
    if (afterCall && !afterCall(c, err)) return false;
  }
  if (dev_ && !syncConstants(false, err)) return false;
  return true;
}

bool Executor::run(const float* input, int64_t n, std::vector<float>& output, std::string& err) {
  const Plan& p = *plan_;
  if (!prepare(n, err)) return false;
  memcpy(tensorData(p.input, n), input, (size_t)(numel(p.inputShape()) * n) * sizeof(float));
  if (!toDevice(p.input, n, err) || !runCalls(n, err) || !toHost(p.output, n, err)) return false;
  const float* src = tensorData(p.output, n);
  output.assign(src, src + numel(p.outputShape()) * n);
  return true;
}

}  // namespace cnnc::rt
