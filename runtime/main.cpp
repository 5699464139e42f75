// main.cpp (runtime): the command line of every executable cnnc produces.
//
//   X info | infer | predict | bench | export-weights   (each has --help)
// Exit status: 0 success, 1 a runtime error (bad weights, input, image, memory), 2 bad command line.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <random>
#include <thread>

#include <sched.h>
#include <unistd.h>

#include "HalideRuntime.h"
#include "comm.h"
#include "cores.h"
#include "median.h"
#include "executor.h"
#include "optim.h"
#include "machine_peak.h"
#include "profile.h"
#include "recipe.h"
#include "image.h"
#include "safetensors.h"
#include "train.h"
#include "train_loop.h"
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

namespace {

int fail(const std::string& msg) {
  fprintf(stderr, "error: %s\n", msg.c_str());
  return 1;
}

std::string human(double bytes) {
  char b[32];
  if (bytes >= 1 << 30) snprintf(b, sizeof b, "%.2f GiB", bytes / (1 << 30));
  else if (bytes >= 1 << 20) snprintf(b, sizeof b, "%.2f MiB", bytes / (1 << 20));
  else snprintf(b, sizeof b, "%.1f KiB", bytes / 1024);
  return b;
}

bool getWeights(const Plan& p, const std::string& path, uint64_t seed, Weights& w, std::string& err) {
  if (path.empty()) {
    initWeights(p, seed, w);
    return true;
  }
  return loadWeights(p, path, w, err);
}

// The F32 tensor 'input' [N, C, H, W] of a safetensors file, checked against the plan's input;
// null with `err` when it is missing or does not fit.
const float* inputBatch(const SafeTensors& st, const std::string& path, const Plan& p, int64_t& n, std::string& err) {
  const TensorView* t = st.find("input");
  Dims want = p.inputShape();
  if (!t) { err = path + ": no tensor named 'input' (expected F32 [N," + dimsStr(want).substr(1) + ")"; return nullptr; }
  Dims got(t->shape.begin(), t->shape.end());
  if (t->dtype != DType::F32) { err = path + ": tensor 'input' is " + dtypeName(t->dtype) + ", expected F32"; return nullptr; }
  if (got.size() != want.size() + 1 || !std::equal(want.begin(), want.end(), got.begin() + 1) || got[0] < 1) {
    err = path + ": tensor 'input' has shape " + dimsStr(got) + ", but " + p.net + " takes [N," + dimsStr(want).substr(1);
    return nullptr;
  }
  n = got[0];
  return reinterpret_cast<const float*>(t->data);
}

// recipe: what `X train` would use with the flags given to `info` ("" for a net that cannot train).
int cmdInfo(const Plan& p, const std::string& recipe) {
  int64_t params = 0;
  for (const auto& ps : p.params)
    if (ps.trainable()) params += numel(ps.shape);
  printf("network   %s (from %s)\n", p.net.c_str(), p.source.c_str());
  printf("target    %s\n", p.target.c_str());
  if (p.target.find("-cuda") != std::string::npos)
    printf("device    NVIDIA GPU through CUDA (CNNC_GPU=N picks one; tensors stay on it between kernels)\n");
  else if (p.target.find("-opencl") != std::string::npos)
    printf("device    OpenCL (the first device of the first platform; tensors stay on it between kernels)\n");
  printf("input     [N,%s]  output [N,%s]\n", dimsStr(p.inputShape()).substr(1, dimsStr(p.inputShape()).size() - 2).c_str(),
         dimsStr(p.outputShape()).substr(1, dimsStr(p.outputShape()).size() - 2).c_str());
  printf("params    %lld in %zu tensors\n", (long long)params, p.params.size());
  int64_t naive = 0;
  for (const auto& a : p.acts) naive += numel(a.shape);
  printf("memory    arena %s per image (%s without sharing), %zu slots\n", human(p.arenaPerImage * 4.0).c_str(), human(naive * 4.0).c_str(),
         p.storages.size());
  if (!recipe.empty()) printf("%s", recipe.c_str());
  else printf("training  none: %s\n", noTrainingReason(p).c_str());
  printf("kernels   %zu distinct, %zu calls\n", p.kernels.size(), p.calls.size());
  for (size_t i = 0; i < p.calls.size(); ++i) {
    const CallSpec& c = p.calls[i];
    const ActSpec& out = p.acts[c.args.back().id];
    printf("  %3zu  %-44s %-22s @%lld  %s\n", i, c.label.c_str(), dimsStr(out.shape).c_str(),
           (long long)p.storages[out.storage].offset, p.kernels[c.kernel].fn.c_str());
  }
  return 0;
}

int cmdInfer(const Plan& p, Executor& ex, const std::string& weights, const std::string& inPath, const std::string& outPath) {
  std::string err;
  Weights w;
  if (!loadWeights(p, weights, w, err)) return fail(err);
  SafeTensors st;
  if (!st.load(inPath, err)) return fail(err);
  int64_t n = 0;
  const float* input = inputBatch(st, inPath, p, n, err);
  if (!input) return fail(err);
  if (!ex.reserve(n, err)) return fail(err);
  ex.setWeights(std::move(w));  // w is not read again
  std::vector<float> out;
  if (!ex.run(input, n, out, err)) return fail(err);
  Dims oshape{n};
  for (auto d : p.outputShape()) oshape.push_back(d);
  if (!writeSafeTensors(outPath, {{"output", DType::F32, oshape, out.data(), out.size() * sizeof(float)}}, {}, err)) return fail(err);
  return 0;
}

int cmdPredict(const Plan& p, Executor& ex, const std::string& weights, const std::string& labelsPath, int top, std::vector<double> mean,
               std::vector<double> stdv, const std::vector<std::string>& images) {
  std::string err;
  const Dims& in = p.inputShape();
  if (in.size() != 3) return fail("network " + p.net + " takes a flat input, not images");
  if (mean.empty()) mean = p.mean;
  if (stdv.empty()) stdv = p.std;
  if ((!mean.empty() && (int64_t)mean.size() != in[0]) || (!stdv.empty() && (int64_t)stdv.size() != in[0]))
    return fail("--mean and --std need " + std::to_string(in[0]) + " values, one per input channel");
  std::vector<std::string> labels;
  if (!labelsPath.empty()) {
    std::ifstream f(labelsPath);
    if (!f) return fail("cannot read labels file '" + labelsPath + "'");
    for (std::string line; std::getline(f, line);) labels.push_back(line);
  }
  // Decode every image before the weights and the arena are touched.
  std::vector<float> batch;
  for (const auto& path : images) {
    std::vector<float> one;
    if (!loadImage(path, (int)in[0], (int)in[1], (int)in[2], mean, stdv, one, err)) return fail(err);
    batch.insert(batch.end(), one.begin(), one.end());
  }
  Weights w;
  if (!loadWeights(p, weights, w, err)) return fail(err);
  ex.setWeights(std::move(w));  // w is not read again
  std::vector<float> out;
  if (!ex.run(batch.data(), (int64_t)images.size(), out, err)) return fail(err);
  size_t k = numel(p.outputShape());
  for (size_t i = 0; i < images.size(); ++i) {
    const float* o = out.data() + i * k;
    float m = *std::max_element(o, o + k);
    std::vector<double> prob(k);
    double s = 0;
    for (size_t j = 0; j < k; ++j) s += prob[j] = std::exp((double)o[j] - m);
    std::vector<size_t> idx(k);
    std::iota(idx.begin(), idx.end(), 0);
    size_t shown = std::min<size_t>(std::max(top, 1), k);
    std::partial_sort(idx.begin(), idx.begin() + shown, idx.end(), [&](size_t a, size_t b) { return prob[a] > prob[b]; });
    printf("%s\n", images[i].c_str());
    for (size_t r = 0; r < shown; ++r) {
      size_t j = idx[r];
      std::string name = j < labels.size() ? labels[j] : "class " + std::to_string(j);
      printf("  %zu. %-24s %6.2f%%\n", r + 1, name.c_str(), 100.0 * prob[j] / s);
    }
  }
  return 0;
}

// `--profile`: `runs` more runs after the timed ones (so that timing each call cannot disturb
// the timed runs), each call's median, and the machine's roofs measured right after.
template <class RunOnce>
bool profileRuns(const Plan& p, Executor& ex, int64_t batch, int runs, int threads, ProfileInput& out, RunOnce runOnce, std::string& err) {
  out.plan = &p;
  out.batch = batch;
  out.threads = threads;
  ex.profile = true;
  for (int i = 0; i < runs; ++i) {
    if (!runOnce(err)) return false;
    out.runs.push_back(ex.callMs);
  }
  ex.profile = false;
  // The roofs of a GPU build are the device's, which this does not measure.
  if (p.target.find("cuda") == std::string::npos && p.target.find("opencl") == std::string::npos) out.peak = measureMachinePeak(threads, p.target);
  return true;
}

// The result line(s) of `bench` and `bench --train`: one JSON object, or two lines for a person.
void printBenchResult(const Plan& p, const char* mode, const char* what, int batch, int threads, int warmup, std::vector<double>& ms, bool json,
                      const ProfileInput* prof = nullptr) {
  std::sort(ms.begin(), ms.end());
  double median = medianOf(ms);
  int iters = (int)ms.size();
  if (json) {
    printf("{\"net\": \"%s\", \"mode\": \"%s\", \"batch\": %d, \"threads\": %d, \"iters\": %d, \"median_ms\": %.4f, \"min_ms\": %.4f, "
           "\"max_ms\": %.4f, \"images_per_s\": %.2f, \"target\": \"%s\"%s%s}\n",
           p.net.c_str(), mode, batch, threads, iters, median, ms.front(), ms.back(), batch * 1000.0 / median, p.target.c_str(),
           prof ? ", \"profile\": " : "", prof ? rooflineJson(*prof).c_str() : "");
  } else {
    printf("%s %s, batch %d, %d threads, %d iterations after %d warm-up\n", p.net.c_str(), what, batch, threads, iters, warmup);
    printf("  median %.3f ms   min %.3f ms   max %.3f ms   %.1f images/s\n", median, ms.front(), ms.back(), batch * 1000.0 / median);
  }
}

int cmdBench(const Plan& p, Executor& ex, const std::string& weights, int batch, int warmup, int iters, bool json, int threads, bool profile) {
  std::string err;
  if (batch < 1 || iters < 1 || warmup < 0) return fail("--batch and --iters must be at least 1, --warmup at least 0");
  if (!ex.reserve(batch, err)) return fail(err);
  Weights w;
  if (!getWeights(p, weights, 0, w, err)) return fail(err);
  ex.setWeights(std::move(w));  // w is not read again
  std::vector<float> input((size_t)(numel(p.inputShape()) * batch));
  std::mt19937 rng(0);
  std::normal_distribution<float> nd;
  for (auto& x : input) x = nd(rng);
  std::vector<float> out;
  std::vector<double> ms;
  for (int i = 0; i < warmup + iters; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    if (!ex.run(input.data(), batch, out, err)) return fail(err);
    double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= warmup) ms.push_back(dt);
  }
  ProfileInput prof;
  if (profile) {
    if (!profileRuns(p, ex, batch, iters, threads, prof, [&](std::string& e) { return ex.run(input.data(), batch, out, e); }, err)) return fail(err);
    if (!json) printRoofline(prof, stdout);
  }
  printBenchResult(p, "infer", "inference", batch, threads, warmup, ms, json, profile ? &prof : nullptr);
  return 0;
}

// `bench --train`: forward, backward and an SGD-momentum update on random data, timed per step.
int cmdBenchTrain(const Plan& tp, const std::string& weights, int batch, int warmup, int iters, bool json, int threads, bool profile) {
  std::string err;
  if (batch < 1 || iters < 1 || warmup < 0) return fail("--batch and --iters must be at least 1, --warmup at least 0");
  Weights w;
  if (!getWeights(tp, weights, 0, w, err)) return fail(err);
  Trainer tr;
  if (!tr.init(tp, kKernels, kNumKernels, w, err)) return fail(err);
  if (!tr.executor().reserve(batch, err)) return fail(err);
  OptimConfig oc;
  oc.momentum = 0.9;
  std::vector<OptimParam> params;
  for (size_t i = 0; i < tp.params.size(); ++i)
    if (!tr.grad(i).empty()) params.push_back({tp.params[i].name, &w.f32[i], &tr.grad(i), true});
  Optim opt;
  if (!opt.init(oc, params, err)) return fail(err);
  std::vector<float> input((size_t)(numel(tp.inputShape()) * batch));
  // A label per image, or per pixel for [K,H,W] scores.
  int64_t perImage = numel(tp.acts[tp.labels].shape);
  int64_t K = perImage == 1 ? numel(tp.outputShape()) : tp.outputShape()[0];
  std::vector<int64_t> labels((size_t)(batch * perImage));
  std::mt19937 rng(0);
  std::normal_distribution<float> nd;
  for (auto& x : input) x = nd(rng);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = (int64_t)i % K;
  std::vector<double> ms;
  double loss = 0;
  for (int i = 0; i < warmup + iters; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    if (!tr.step(input.data(), labels.data(), batch, (uint64_t)i, loss, err) || !opt.step(0.01, err)) return fail(err);
    double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= warmup) ms.push_back(dt);
  }
  ProfileInput prof;
  if (profile) {
    uint64_t i = warmup + iters;
    auto once = [&](std::string& e) { return tr.step(input.data(), labels.data(), batch, i++, loss, e) && opt.step(0.01, e); };
    if (!profileRuns(tp, tr.executor(), batch, iters, threads, prof, once, err)) return fail(err);
    if (!json) printRoofline(prof, stdout);
  }
  printBenchResult(tp, "train", "training step (SGD momentum)", batch, threads, warmup, ms, json, profile ? &prof : nullptr);
  return 0;
}

// Reads tensor `labels` of a safetensors file as int64 class labels (I64, I32 or integral F32):
// [N] for a classifier, [N,H,W] (one per pixel) for a net whose scores are [K,H,W].
bool readLabels(const SafeTensors& st, const std::string& path, int64_t n, const Dims& perImage, std::vector<int64_t>& out, std::string& err) {
  const TensorView* t = st.find("labels");
  if (!t) { err = path + ": no tensor named 'labels'"; return false; }
  Dims shape(t->shape.begin(), t->shape.end());
  Dims want{n};
  if (perImage != Dims{1}) want.insert(want.end(), perImage.begin(), perImage.end());
  if (shape != want) {
    err = path + ": tensor 'labels' has shape " + dimsStr(shape) + ", expected " + dimsStr(want) + (want.size() == 1 ? " (one per image)" : " (one per pixel)");
    return false;
  }
  int64_t total = numel(want);
  out.resize(total);
  for (int64_t i = 0; i < total; ++i) {
    if (t->dtype == DType::I64) memcpy(&out[i], t->data + 8 * i, 8);
    else if (t->dtype == DType::I32) { int32_t v; memcpy(&v, t->data + 4 * i, 4); out[i] = v; }
    else if (t->dtype == DType::F32) {
      float v;
      memcpy(&v, t->data + 4 * i, 4);
      if (v != std::floor(v)) { err = path + ": label " + std::to_string(i) + " is not a whole number"; return false; }
      out[i] = (int64_t)v;
    } else { err = path + ": tensor 'labels' must be I64, I32 or F32"; return false; }
  }
  return true;
}

int cmdStep(const Plan& trainPlan, const std::string& weights, const std::string& inPath, const std::string& labelsPath, double lr,
            double smoothing, uint64_t seed, const std::string& outPath, const std::vector<std::string>& freeze, Comm& comm, bool syncBn) {
  std::string err;
  std::vector<bool> frozen;
  if (!freeze.empty() && !resolveFreeze(trainPlan, freeze, frozen, err)) return fail(err);
  Weights w;
  if (!loadWeights(trainPlan, weights, w, err)) return fail(err);
  SafeTensors in, lab;
  if (!in.load(inPath, err) || !lab.load(labelsPath, err)) return fail(err);
  int64_t n = 0;
  const float* input = inputBatch(in, inPath, trainPlan, n, err);
  if (!input) return fail(err);
  std::vector<int64_t> labels;
  if (!readLabels(lab, labelsPath, n, trainPlan.acts[trainPlan.labels].shape, labels, err)) return fail(err);
  Trainer tr;
  if (!tr.init(trainPlan, kKernels, kNumKernels, w, err, frozen)) return fail(err);
  if (!frozen.empty() && comm.rank() == 0) fprintf(stderr, "%s\n", freezeSummary(trainPlan, frozen).c_str());
  tr.labelSmoothing = smoothing;
  // Under mpirun each rank steps on its slice of the batch (as `train` does) and rank 0 writes.
  int64_t lo = 0, count = n;
  if (comm.distributed()) {
    if (n % comm.size() != 0)
      return fail("the batch of " + std::to_string(n) + " images must divide by the " + std::to_string(comm.size()) + " ranks");
    count = n / comm.size();
    lo = count * comm.rank();
    if (!tr.enableDataParallel(comm, syncBn, (size_t)(TrainOptions{}.bucketMiB * 1048576), err)) return fail(err);  // train's default bucket
  }
  int64_t perLabel = numel(trainPlan.acts[trainPlan.labels].shape);
  double loss = 0;
  if (!tr.step(input + lo * numel(trainPlan.inputShape()), labels.data() + lo * perLabel, count, seed, loss, err)) return fail(err);
  double sum[1] = {loss * (double)count};
  if (!comm.allreduceSum(sum, 1, err)) return fail(err);
  loss = sum[0] / (double)n;
  sgdUpdate(trainPlan, w, tr.grads(), lr);
  if (comm.rank() != 0) return 0;
  std::vector<TensorOut> out;
  float lossF = (float)loss;
  out.push_back({"loss", DType::F32, {}, &lossF, sizeof(float)});
  for (size_t i = 0; i < trainPlan.params.size(); ++i) {
    const ParamSpec& ps = trainPlan.params[i];
    if (!tr.grad(i).empty()) out.push_back({"grad." + ps.name, DType::F32, ps.shape, tr.grad(i).data(), tr.grad(i).size() * sizeof(float)});
  }
  for (size_t i = 0; i < trainPlan.params.size(); ++i) {
    const ParamSpec& ps = trainPlan.params[i];
    if (ps.isInt64()) out.push_back({ps.name, DType::I64, ps.shape, &w.i64[i], sizeof(int64_t)});
    else out.push_back({ps.name, DType::F32, ps.shape, w.f32[i].data(), w.f32[i].size() * sizeof(float)});
  }
  if (!writeSafeTensors(outPath, out, {{"cnnc.step", "sgd"}}, err)) return fail(err);
  printf("loss %.6f\n", loss);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Plan plan;
  std::string err;
  if (!parsePlan(reinterpret_cast<const char*>(kPlanJson), kPlanJsonSize, plan, err)) return fail(err);
  Executor ex;
  if (!ex.init(plan, kKernels, kNumKernels, err)) return fail(err);
  Plan trainPlan;
  if (kTrainPlanJsonSize > 0 && !parsePlan(reinterpret_cast<const char*>(kTrainPlanJson), kTrainPlanJsonSize, trainPlan, err)) return fail(err);

  CLI::App app{plan.net + ": a network compiled by cnnc from " + plan.source, argv[0]};
  app.require_subcommand(1);
  app.set_version_flag("--version", plan.net + " built by cnnc for " + plan.target);
  int threads = allowedCores();
  app.add_option("--threads", threads, "worker threads (default: the cores this process may use)")->check(CLI::Range(1, 1024))->capture_default_str();

  auto* info = app.add_subcommand("info", "network summary, target, training recipe, kernels and memory plan (the recipe with any train flags given here applied)");
  TrainOptions infoTo;
  applyRecipe(plan, infoTo);
  addRecipeOptions(info, infoTo, plan);

  auto* infer = app.add_subcommand("infer", "run the tensor 'input' of a safetensors file and write 'output'");
  std::string weights, inPath, outPath;
  infer->add_option("--weights", weights, "weights (safetensors, PyTorch state_dict names)")->required();
  infer->add_option("--input", inPath, "safetensors file with tensor 'input' [N,C,H,W] float32")->required();
  infer->add_option("--output", outPath, "where to write tensor 'output'")->required();

  auto* predict = app.add_subcommand("predict", "classify PNG or JPEG images");
  std::string labels;
  int top = 5;
  std::vector<double> mean, stdv;
  std::vector<std::string> images;
  predict->add_option("--weights", weights, "weights (safetensors)")->required();
  predict->add_option("--labels", labels, "text file, one class name per line");
  predict->add_option("--top", top, "how many classes to show")->check(CLI::Range(1, 1000000));
  predict->add_option("--mean", mean, "per-channel mean (default: from the .cnn input)");
  predict->add_option("--std", stdv, "per-channel std (default: from the .cnn input)");
  predict->add_option("images", images, "image files")->required();

  auto* bench = app.add_subcommand("bench", "inference latency and throughput");
  int batch = 1, warmup = 3, iters = 10;
  bool json = false;
  bench->add_option("--batch", batch, "images per run");
  bench->add_option("--warmup", warmup, "untimed runs first");
  bench->add_option("--iters", iters, "timed runs");
  bench->add_flag("--json", json, "one JSON object: net, mode, batch, threads, median_ms, min_ms, ...");
  bench->add_option("--weights", weights, "weights (default: PyTorch-style random init)");
  bool profile = false;
  bench->add_flag("--profile", profile, "after the timed runs, as many profiled ones: per kernel, its median time, GFLOP/s, GB/s and distance to the FMA peak or memory bandwidth measured in the same run");
  bool benchTrain = false;
  bench->add_flag("--train", benchTrain, "time a training step (forward, backward, SGD momentum update) instead");

  auto* exportW = app.add_subcommand("export-weights", "write the initial weights (PyTorch's default init)");
  std::string exportPath;
  uint64_t seed = 0;
  exportW->add_option("output", exportPath, "safetensors file to write")->required();
  exportW->add_option("--seed", seed, "random seed");

  auto* stepCmd = app.add_subcommand("step", "one training step (plain SGD): writes the loss, every gradient and the updated weights");
  std::string labelsPath;
  double lr = 0.01, smoothing = 0.0;
  uint64_t stepSeed = 0;
  stepCmd->add_option("--weights", weights, "weights (safetensors)")->required();
  stepCmd->add_option("--input", inPath, "safetensors file with tensor 'input' [N,C,H,W]")->required();
  stepCmd->add_option("--labels", labelsPath, "safetensors file with tensor 'labels': class indices, [N], or [N,H,W] for per-pixel scores")->required();
  stepCmd->add_option("--lr", lr, "learning rate")->required();
  stepCmd->add_option("--output", outPath, "where to write loss, grad.<param> and the updated parameters")->required();
  stepCmd->add_option("--label-smoothing", smoothing, "cross-entropy label smoothing")->check(CLI::Range(0.0, 1.0));
  stepCmd->add_option("--seed", stepSeed, "dropout seed");
  bool stepSyncBn = false;
  stepCmd->add_flag("--sync-bn", stepSyncBn, "under mpirun: batch-norm statistics over the whole batch, not each rank's slice");
  std::vector<std::string> stepFreeze;
  stepCmd->add_option("--freeze", stepFreeze, "freeze the parameters under these layer names: no grad.<name>, unchanged weights");

  auto* trainCmd = app.add_subcommand("train", "train on a data set: progress bar, per-epoch log and curves, checkpoints");
  TrainOptions to;
  applyRecipe(plan, to);
  addRecipeOptions(trainCmd, to, plan);
  trainCmd->add_option("--seed", to.seed, "seed of initialisation, shuffling, augmentation and dropout")->capture_default_str();
  trainCmd->add_option("--out", to.out, "run folder: log.jsonl, curves.svg, checkpoint.safetensors, weights.safetensors")->capture_default_str();
  trainCmd->add_flag("--resume", to.resume, "continue the run in --out from its last checkpoint");
  auto* initOpt = trainCmd->add_option("--init", to.init, "start from these weights (safetensors): tensors that match by name and shape are loaded, others ignored");
  trainCmd->add_flag("--reinit-mismatched", to.reinitMismatched, "with --init: re-initialise at random the parameters the file lacks or shapes differently (e.g. a new head)")
      ->needs(initOpt);
  trainCmd->add_option("--limit", to.limit, "train on the first N images of the training split only (in file order); the test split is unchanged [default: all]")
      ->type_name("N")
      ->check(CLI::Validator([](std::string& v) {  // not a number: left to CLI11's conversion error
        char* end = nullptr;
        long long n = strtoll(v.c_str(), &end, 10);
        return end != v.c_str() && !*end && n < 1 ? "got " + v + ", but it must be at least 1 (the number of training images to use)" : std::string();
      }, ""));
  trainCmd->add_flag("--sync-bn", to.syncBn, "under mpirun: batch-norm statistics over the global batch (as SyncBatchNorm), not each rank's shard");
  trainCmd->add_option("--bucket-mb", to.bucketMiB, "under mpirun: gradients are summed over the ranks in buckets of this many MiB, overlapped with the backward pass")
      ->capture_default_str();
  trainCmd->add_option("--freeze", to.freeze, "train only the rest: parameters under these layer names (e.g. conv1 bn1 layer1) get no gradient and no update");

  auto* evalCmd = app.add_subcommand("eval", "test-set loss and accuracy");
  std::string evalData = "fashion-mnist", evalFormat = "auto";
  bool evalJson = false, evalResize = false;
  evalCmd->add_option("--weights", weights, "weights (safetensors)")->required();
  evalCmd->add_option("--data", evalData, "fashion-mnist (default), or a folder holding IDX files, CIFAR-10 binary batches, or train/ and test/ with one subfolder of PNG/JPEG images per class");
  evalCmd->add_option("--format", evalFormat, "auto, idx, cifar, folder or segmentation")->check(CLI::IsMember({"auto", "idx", "cifar", "folder", "segmentation"}));
  evalCmd->add_flag("--json", evalJson, "one JSON object with loss and accuracy");
  evalCmd->add_flag("--resize", evalResize, "resize images instead of zero-padding them");

  app.footer("Exit status: 0 success, 1 runtime error, 2 bad command line, 130 interrupted (checkpoint saved).");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  halide_set_num_threads(threads);
  if (*info)
    return cmdInfo(plan, kTrainPlanJsonSize == 0 ? std::string()
                                                 : "recipe    " + recipeSummary(infoTo, plan, info) + "\n" + describeRecipe(infoTo, plan, info));
  if (*infer) return cmdInfer(plan, ex, weights, inPath, outPath);
  if (*predict) return cmdPredict(plan, ex, weights, labels, top, mean, stdv, images);
  if (((*bench && benchTrain) || *trainCmd || *stepCmd) && !trainPlan.isTraining()) return fail(noTrainingMessage(plan));
  if (*bench && benchTrain) return cmdBenchTrain(trainPlan, weights, batch, warmup, iters, json, threads, profile);
  if (*bench) return cmdBench(plan, ex, weights, batch, warmup, iters, json, threads, profile);
  if (*trainCmd || *stepCmd) {
    to.schedule.tMax = to.epochs - to.schedule.warmup;
    to.recipeLine = recipeSummary(to, plan, trainCmd);
    std::unique_ptr<Comm> comm = makeComm(err);
    if (!comm) return fail(err);
    int rc = *trainCmd ? runTrain(plan, trainPlan, kKernels, kNumKernels, to, *comm)
                       : cmdStep(trainPlan, weights, inPath, labelsPath, lr, smoothing, stepSeed, outPath, stepFreeze, *comm, stepSyncBn);
    if (comm->distributed() && rc != 0 && rc != 130) {
      // Not MPI_Finalize: the other ranks may be waiting in a collective. mpirun sees the
      // failed rank and ends the job.
      fflush(stdout);
      fflush(stderr);
      _exit(rc);
    }
    return rc;
  }
  if (*evalCmd) return runEval(plan, kKernels, kNumKernels, weights, evalData, evalFormat, evalJson, evalResize);
  if (*exportW) {
    Weights w;
    initWeights(plan, seed, w);
    if (!saveWeights(plan, w, exportPath, err)) return fail(err);
    return 0;
  }
  return 2;
}
