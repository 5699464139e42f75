// train_loop.cpp: see train_loop.h.
#include "train_loop.h"

#include <signal.h>
#include <unistd.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "checkpoint.h"
#include "curves.h"
#include "progress.h"
#include "train.h"

namespace cnnc::rt {

namespace fs = std::filesystem;

namespace {

std::atomic<bool> gStop{false};
void onSignal(int) { gStop = true; }

// Under mpirun, SIGTERM is mpirun ending the job: a rank died, or the user pressed Ctrl-C (mpirun
// kills every rank a second later, too soon for a checkpoint). The rank may be blocked in a
// collective with a dead peer, so it leaves at once; the checkpoint on disk is the last complete one.
char gTermMsg[512];
void onTermDistributed(int) {
  ssize_t r = write(2, gTermMsg, strlen(gTermMsg));
  (void)r;
  _exit(1);
}

// Whether every rank says yes (a failed write on rank 0 stops them all, not only rank 0).
bool allAgree(Comm& comm, bool mine, std::string& err) {
  double no = mine ? 0 : 1;
  if (!comm.allreduceSum(&no, 1, err)) return false;
  return no == 0;
}

// Data parallel: ranks other than 0 name themselves ("error: rank 1 of 2: ..."), so that a message
// every rank prints reads as one error seen N times, and one rank's own error says whose it is.
std::string gRankTag;

int fail(const std::string& m) {
  fprintf(stderr, "error: %s%s\n", gRankTag.c_str(), m.c_str());
  return 1;
}

Preprocess preprocessFor(const Plan& p, bool augment, bool resize, const Dataset& d) {
  Preprocess pre;
  const Dims& in = p.inputShape();
  pre.C = (int)in[0];
  pre.H = (int)in[1];
  pre.W = (int)in[2];
  pre.resize = resize;
  pre.mean = p.mean;
  pre.std = p.std;
  if (d.segmentation()) {
    // Labels at the output's size; a random crop would leave pixels without a label, so
    // segmentation augments by flipping only.
    const Dims& o = p.outputShape();
    pre.outH = (int)o[1];
    pre.outW = (int)o[2];
    pre.flip = augment;
    return pre;
  }
  if (augment) {
    pre.cropPad = std::max(2, pre.H / 8);
    pre.flip = d.channels == 3;  // mirror colour photos; clothes and digits keep their side
  }
  return pre;
}

struct EvalResult {
  double loss = 0, accuracy = 0;
};

// Inference-mode loss and accuracy over a whole split (BN running statistics, no dropout).
// Data parallel: each rank scores its slice of every batch of batch x ranks images; the sums are
// combined over the ranks.
bool evaluate(const Plan& p, Executor& ex, const Dataset& d, const Preprocess& pre, int64_t batch, Comm& comm, EvalResult& r, std::string& err) {
  BatchLoader loader(d, pre, batch * comm.size(), false, false, false, 0);
  loader.setShard(comm.rank(), comm.size());
  loader.start(0);
  std::vector<float> img, out;
  std::vector<int64_t> lab;
  double loss = 0;
  int64_t correct = 0, seen = 0;
  // Classifiers: K scores per image; segmentation: K scores per pixel ([K,H,W]), each pixel counted
  // as one sample (loss and accuracy are per pixel, as CrossEntropyLoss averages them).
  const Dims& o = p.outputShape();
  int64_t P = d.segmentation() ? o[1] * o[2] : 1, K = d.segmentation() ? o[0] : numel(o);
  int64_t per = numel(p.inputShape());
  while (loader.next(img, lab)) {
    int64_t n = (int64_t)img.size() / per;
    if (n == 0) continue;  // a short last batch can leave a rank nothing
    if (!ex.run(img.data(), n, out, err)) return false;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t q = 0; q < P; ++q) {
        const float* z = out.data() + i * K * P + q;  // score k at z[k * P]
        int64_t best = 0;
        for (int64_t k = 1; k < K; ++k) best = z[k * P] > z[best * P] ? k : best;
        float m = z[best * P];
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += std::exp((double)z[k * P] - m);
        int64_t y = lab[i * P + q];
        loss += std::log(s) + m - z[y * P];
        correct += best == y;
      }
    seen += n * P;
  }
  double sums[3] = {loss, (double)correct, (double)seen};
  if (!comm.allreduceSum(sums, 3, err)) return false;
  loss = sums[0];
  correct = (int64_t)sums[1];
  seen = (int64_t)sums[2];
  r.loss = loss / std::max<int64_t>(1, seen);
  r.accuracy = (double)correct / std::max<int64_t>(1, seen);
  return true;
}

std::string jnum(double v) {
  // %.17g: a resumed run continues its loss sum from this text, bit for bit.
  char b[32];
  snprintf(b, sizeof b, "%.17g", v);
  return std::isfinite(v) ? b : "null";
}

// The layouts `--format auto` recognises, listed when a folder fits none of them.
const char* kLayouts =
    "IDX files ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]), CIFAR-10 binary batches (data_batch_1.bin ... "
    "data_batch_5.bin, test_batch.bin), train/ and test/ (or val/) folders with one subfolder of PNG/JPEG images per class, or (segmentation) "
    "train/ and test/ folders each with images/ and masks/";

// Whether `data` holds IDX files, plain or gzip, of either split.
bool hasIdx(const std::string& data) {
  std::error_code ec;
  for (const char* base : {"/train-images-idx3-ubyte", "/t10k-images-idx3-ubyte"})
    if (fs::exists(data + base, ec) || fs::exists(data + base + ".gz", ec)) return true;
  return false;
}

// `auto`: guessed from the file names, in a fixed order, so one folder always means one format.
bool detectFormat(const std::string& data, std::string& fmt, std::string& err) {
  std::error_code ec;
  if (hasIdx(data)) fmt = "idx";
  else if (fs::exists(data + "/test_batch.bin", ec) || fs::exists(data + "/data_batch_1.bin", ec)) fmt = "cifar";
  else if (fs::is_directory(data + "/train", ec)) fmt = "folder";
  else {
    err = "cannot tell the format of data folder '" + data + "': expected " + kLayouts + " (or give --format)";
    return false;
  }
  return true;
}

// Every label must index one of the net's K outputs; a data set with more classes than that is
// named with both counts, since the fix is in the .cnn file (or the data), not in the images.
bool checkLabels(const Dataset& d, int64_t K, const std::string& net, std::string& err) {
  if (d.segmentation() && (int64_t)d.classNames.size() > K) {
    std::string vals;
    for (const auto& n : d.classNames) vals += (vals.empty() ? "" : ", ") + n;
    err = "the masks hold " + std::to_string(d.classNames.size()) + " values (" + vals + "), one class each, but network " + net + " scores " +
          std::to_string(K) + " classes per pixel: give its last layer " + std::to_string(d.classNames.size()) + " outputs";
    return false;
  }
  if ((int64_t)d.classNames.size() > K) {
    err = "the data set has " + std::to_string(d.classNames.size()) + " classes but network " + net + " has " + std::to_string(K) +
          " outputs: give its last layer " + std::to_string(d.classNames.size()) + " outputs, or use at most " + std::to_string(K) + " classes";
    return false;
  }
  for (int64_t i = 0; i < d.count && !d.segmentation(); ++i)
    if (d.labels[i] < 0 || d.labels[i] >= K) {
      err = "label " + std::to_string(d.labels[i]) + " of image " + std::to_string(i) + " does not fit the network's " + std::to_string(K) + " classes";
      return false;
    }
  return true;
}

// A classifier ([K] scores) takes a classification data set; a net that scores each pixel
// ([K,H,W]) takes a segmentation one (images/ and masks/). Either mismatch says which is which.
bool checkTask(const Plan& p, const Dataset& d, std::string& err) {
  bool perPixel = p.outputShape().size() == 3;
  if (perPixel && !d.segmentation()) {
    err = "network " + p.net + " scores each pixel (" + dimsStr(p.outputShape()) +
          ") and needs a segmentation data set: train/ and test/ folders each with images/ and masks/ (docs/training.md)";
    return false;
  }
  if (!perPixel && d.segmentation()) {
    err = "this is a segmentation data set (images/ and masks/), but network " + p.net + " gives one score vector " + dimsStr(p.outputShape()) +
          " per image: segmentation needs a net whose output is [K,H,W]";
    return false;
  }
  return checkLabels(d, perPixel ? p.outputShape()[0] : numel(p.outputShape()), p.net, err);
}

}  // namespace

bool loadSplit(const std::string& data, const std::string& format, bool train, Dataset& out, std::string& err) {
  if (format != "auto" && format != "idx" && format != "cifar" && format != "folder" && format != "segmentation") {
    err = "unknown data format '" + format + "': use auto, idx, cifar, folder or segmentation";
    return false;
  }
  if (data == "fashion-mnist") {
    if (format != "auto" && format != "idx") { err = "--data fashion-mnist is IDX data, not " + format + ": drop --format or give a folder with --data"; return false; }
    return loadFashionMnist("/usr/share/datasets/fashion-mnist", train, out, err);
  }
  std::error_code ec;
  if (!fs::exists(data, ec)) {
    err = "data folder '" + data + "' does not exist: give --data fashion-mnist or a folder holding " + kLayouts;
    return false;
  }
  if (!fs::is_directory(data, ec)) { err = "--data '" + data + "' is a file: give the folder that holds the data set"; return false; }
  std::string fmt = format;
  if (fmt == "auto" && isSegFolder(data)) fmt = "segmentation";
  if (fmt == "auto" && !detectFormat(data, fmt, err)) return false;
  if (fmt == "segmentation") return loadSegSplit(data, train, out, err);
  if (fmt == "folder") return loadFolderSplit(data, train, out, err);
  if (fmt == "cifar") {
    std::vector<std::string> files;
    if (train)
      for (int i = 1; i <= 5; ++i)
        if (fs::exists(data + "/data_batch_" + std::to_string(i) + ".bin")) files.push_back(data + "/data_batch_" + std::to_string(i) + ".bin");
    if (!train) files.push_back(data + "/test_batch.bin");
    if (files.empty()) { err = data + ": no data_batch_N.bin files (CIFAR-10 binary format)"; return false; }
    return loadCifar10(files, out, err);
  }
  std::string pre = data + "/" + (train ? "train" : "t10k");
  auto pick = [&](const std::string& base) { return fs::exists(base + ".gz") ? base + ".gz" : base; };
  return loadIdx(pick(pre + "-images-idx3-ubyte"), pick(pre + "-labels-idx1-ubyte"), out, err);
}

int runEval(const Plan& infer, const KernelEntry* table, int count, const std::string& weights, const std::string& data, const std::string& format,
            bool json, bool resize) {
  std::string err;
  Dataset test;
  if (!loadSplit(data, format, false, test, err) || !checkTask(infer, test, err)) return fail(err);
  Preprocess pre = preprocessFor(infer, false, resize, test);
  if (!checkFits(test, pre, err)) return fail(err);
  Weights w;
  if (!loadWeights(infer, weights, w, err)) return fail(err);
  Executor ex;
  if (!ex.init(infer, table, count, err)) return fail(err);
  ex.setWeights(w);
  EvalResult r;
  Comm single;
  if (!evaluate(infer, ex, test, pre, 500, single, r, err)) return fail(err);
  const char* what = test.segmentation() ? "pixel accuracy" : "accuracy";
  if (json) printf("{\"net\": \"%s\", \"images\": %lld, \"loss\": %s, \"accuracy\": %s}\n", infer.net.c_str(), (long long)test.count, jnum(r.loss).c_str(), jnum(r.accuracy).c_str());
  else printf("%s: %lld test images, loss %.4f, %s %.2f%%\n", infer.net.c_str(), (long long)test.count, r.loss, what, 100 * r.accuracy);
  return 0;
}

int runTrain(const Plan& infer, const Plan& tplan, const KernelEntry* table, int count, const TrainOptions& o, Comm& comm) {
  std::string err;
  const bool lead = comm.rank() == 0;  // prints, logs and writes files
  const int ranks = comm.size();
  if (!lead) gRankTag = "rank " + std::to_string(comm.rank()) + " of " + std::to_string(ranks) + ": ";
  if (!tplan.isTraining()) return fail(noTrainingMessage(infer));
  OptimConfig oc = o.optim;
  if (!parseOptimKind(o.optimizer, oc.kind, err) || !validateOptimConfig(oc, err) || !o.schedule.validate(err)) return fail(err);
  if (o.epochs < 1 || o.batch < 1) return fail("--epochs and --batch must be at least 1");
  if (o.limit < 0) return fail("--limit must be at least 1");
  if (o.batch % ranks != 0) {
    int64_t down = o.batch / ranks * ranks, up = down + ranks;
    return fail("--batch " + std::to_string(o.batch) + " is the global batch and must divide by the " + std::to_string(ranks) +
                " ranks: use " + (down > 0 ? std::to_string(down) + " or " : "") + std::to_string(up));
  }
  if (o.syncBn && ranks == 1 && lead) fprintf(stderr, "note: --sync-bn has no effect in a single process (its statistics are the whole batch's already)\n");
  if (o.bucketMiB <= 0) return fail("--bucket-mb must be positive");
  // Transfer learning: a bad --freeze is reported before the data set is read.
  std::vector<bool> frozen;
  std::string freezeKey;  // recorded in checkpoints: a resumed run must freeze the same tensors
  if (!o.freeze.empty()) {
    if (!resolveFreeze(tplan, o.freeze, frozen, err)) return fail(err);
    std::vector<std::string> sorted = o.freeze;  // the same prefixes in any order are the same run
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    for (const auto& f : sorted) freezeKey += (freezeKey.empty() ? "" : " ") + f;
  }
  if (lead && !o.recipeLine.empty()) fprintf(stderr, "%s: %s\n", infer.net.c_str(), o.recipeLine.c_str());
  Dataset train, test;
  if (!loadSplit(o.data, o.format, true, train, err) || !loadSplit(o.data, o.format, false, test, err)) return fail(err);
  std::string limitKey = o.limit > 0 ? std::to_string(o.limit) : "";  // recorded in checkpoints, as --freeze
  if (o.limit > 0) {
    int64_t all = train.count;
    train.truncate(o.limit);
    if (lead) fprintf(stderr, "--limit %lld: training on %lld of the %lld training images; the test split keeps all %lld\n", (long long)o.limit,
            (long long)train.count, (long long)all, (long long)test.count);
  }
  for (const Dataset* d : {&train, &test})
    if (!checkTask(infer, *d, err)) return fail(err);
  Preprocess pre = preprocessFor(infer, o.augment, o.resize, train);
  if (!checkFits(train, pre, err)) return fail(err);
  std::error_code ec;
  if (!o.resume && (fs::exists(checkpointPath(o.out)) || fs::exists(o.out + "/log.jsonl")))
    return fail(o.out + " already holds a training run: continue it with --resume, or choose another --out (nothing was overwritten)");
  fs::create_directories(o.out, ec);
  if (ec) return fail("cannot create '" + o.out + "': " + ec.message());

  Weights w;
  Optim opt;
  std::map<std::string, std::vector<float>> optimState;
  int64_t startEpoch = 0, startBatch = 0, step = 0, resumedSeen = 0;
  double resumedLossSum = 0;
  std::vector<std::string> history;
  if (o.resume) {
    CheckpointState cs;
    bool prev = false;
    if (!loadCheckpoint(o.out, tplan, w, cs, prev, err)) return fail(err);
    if (prev && lead) fprintf(stderr, "warning: the latest checkpoint was unreadable; resuming from the previous one\n");
    startEpoch = std::stoll(cs.meta["epoch"]);
    resumedLossSum = std::stod(cs.meta.count("loss_sum") ? cs.meta["loss_sum"] : "0");
    resumedSeen = std::stoll(cs.meta.count("seen") ? cs.meta["seen"] : "0");
    startBatch = std::stoll(cs.meta["batch"]);
    step = std::stoll(cs.meta["step"]);
    if (cs.meta["seed"] != std::to_string(o.seed)) return fail("the checkpoint was trained with --seed " + cs.meta["seed"] + "; resume with the same seed");
    std::string was = cs.meta.count("freeze") ? cs.meta["freeze"] : "";
    if (was != freezeKey)
      return fail(was.empty() ? "the checkpoint was trained without --freeze; resume without it"
                              : "the checkpoint was trained with --freeze " + was + "; resume with the same --freeze");
    std::string wasLimit = cs.meta.count("limit") ? cs.meta["limit"] : "";
    if (wasLimit != limitKey)
      return fail(wasLimit.empty() ? "the checkpoint was trained without --limit; resume without it"
                                   : "the checkpoint was trained with --limit " + wasLimit + "; resume with the same --limit");
    optimState = cs.extra;
    std::ifstream log(o.out + "/log.jsonl");
    for (std::string line; std::getline(log, line);) history.push_back(line);
    std::string wasRanks = cs.meta.count("ranks") ? cs.meta["ranks"] : "1";
    if (lead) {
      fprintf(stderr, "resuming %s at epoch %lld, batch %lld\n", infer.net.c_str(), (long long)startEpoch + 1, (long long)startBatch);
      // The global batch and its order do not depend on the ranks, so another count continues the
      // same run; only per-rank batch norm statistics (without --sync-bn) see other shards.
      if (wasRanks != std::to_string(ranks))
        fprintf(stderr, "note: the run was trained by %s process(es) and continues with %d; the global batch stays %lld\n", wasRanks.c_str(), ranks,
                (long long)o.batch);
    }
  } else if (!o.init.empty()) {
    std::vector<bool> reinit;
    std::vector<std::string> notes;
    if (!loadWeightsForTransfer(tplan, o.init, o.reinitMismatched, o.seed, w, reinit, notes, err)) return fail(err);
    for (const auto& n : notes)
      if (lead) fprintf(stderr, "note: %s\n", n.c_str());
    for (size_t i = 0; i < frozen.size(); ++i)
      if (frozen[i] && reinit[i] && lead) fprintf(stderr, "warning: '%s' is frozen but was re-initialised at random: it will stay random\n", tplan.params[i].name.c_str());
  } else {
    initWeights(tplan, o.seed, w);
  }

  Trainer tr;
  if (!tr.init(tplan, table, count, w, err, frozen)) return fail(err);
  if (!frozen.empty() && lead) fprintf(stderr, "%s\n", freezeSummary(tplan, frozen).c_str());
  std::vector<OptimParam> params;
  for (size_t i = 0; i < tplan.params.size(); ++i)
    if (!tr.grad(i).empty()) params.push_back({tplan.params[i].name, &w.f32[i], &tr.grad(i), true});
  if (!opt.init(oc, params, err)) return fail(err);
  if (o.resume && !opt.loadState(optimState, err)) return fail("the checkpoint's optimizer state does not fit --optimizer " + o.optimizer + ": " + err);
  if (comm.distributed()) {
    // Every rank starts from rank 0's parameters, buffers and optimizer state.
    for (size_t i = 0; i < w.f32.size(); ++i)
      if (!w.f32[i].empty() && !comm.broadcast(w.f32[i].data(), w.f32[i].size() * sizeof(float), err)) return fail(err);
    if (!w.i64.empty() && !comm.broadcast(w.i64.data(), w.i64.size() * sizeof(int64_t), err)) return fail(err);
    std::map<std::string, std::vector<float>> st;
    opt.state(st);
    for (auto& [name, v] : st)
      if (!v.empty() && !comm.broadcast(v.data(), v.size() * sizeof(float), err)) return fail(err);
    if (o.resume && !opt.loadState(st, err)) return fail(err);
    if (!tr.enableDataParallel(comm, o.syncBn, (size_t)(o.bucketMiB * 1048576), err)) return fail(err);
  }
  tr.labelSmoothing = o.labelSmoothing;
  Executor evalEx;
  if (!evalEx.init(infer, table, count, err)) return fail(err);
  BatchLoader loader(train, pre, o.batch, true, o.augment, true, o.seed);
  loader.setShard(comm.rank(), ranks);
  if (loader.batchesPerEpoch() < 1) return fail("the training set has fewer images than one batch");
  Preprocess evalPre = preprocessFor(infer, false, o.resize, test);

  signal(SIGINT, onSignal);
  signal(SIGTERM, onSignal);
  if (comm.distributed()) {
    snprintf(gTermMsg, sizeof gTermMsg,
             "error: rank %d of %d was ended by mpirun: another rank failed or the job was interrupted; the last checkpoint in %s is intact "
             "(to stop with a checkpoint, send SIGUSR1 to mpirun)\n",
             comm.rank(), ranks, o.out.c_str());
    signal(SIGTERM, onTermDistributed);
    signal(SIGUSR1, onSignal);  // mpirun forwards it to every rank: a checkpoint, then exit 130
  }
  // Tests interrupt at an exact step, as a Ctrl-C there would.
  const char* stopAt = getenv("CNNC_INTERRUPT_AT_STEP");
  int64_t interruptStep = stopAt ? atoll(stopAt) : -1;
  double lossSum = 0;
  int64_t seen = 0;
  auto save = [&](int64_t epoch, int64_t batch) {
    if (!lead) return allAgree(comm, true, err);
    CheckpointState cs;
    opt.state(cs.extra);
    cs.meta = {{"epoch", std::to_string(epoch)}, {"batch", std::to_string(batch)}, {"step", std::to_string(step)},
               {"seed", std::to_string(o.seed)}, {"freeze", freezeKey}, {"limit", limitKey},
               {"loss_sum", jnum(batch ? lossSum : 0)}, {"seen", std::to_string(batch ? seen : 0)}, {"ranks", std::to_string(ranks)}};
    std::string e;
    if (!saveCheckpoint(o.out, tplan, w, cs, e)) {
      fprintf(stderr, "error: %s\n(the previous checkpoint in %s is intact)\n", e.c_str(), o.out.c_str());
      allAgree(comm, false, err);
      return false;
    }
    return allAgree(comm, true, err);
  };

  std::vector<double> trLoss, teLoss, trAcc, teAcc;
  for (const auto& line : history) {
    auto num = [&](const std::string& key) {
      auto p = line.find("\"" + key + "\": ");
      return p == std::string::npos ? NAN : atof(line.c_str() + p + key.size() + 4);
    };
    trLoss.push_back(num("train_loss")); teLoss.push_back(num("test_loss"));
    trAcc.push_back(num("train_accuracy")); teAcc.push_back(num("test_accuracy"));
  }
  std::vector<float> img;
  std::vector<int64_t> lab;
  for (int64_t epoch = startEpoch; epoch < o.epochs; ++epoch) {
    double lr = o.schedule.at((int)epoch);
    loader.start(epoch, epoch == startEpoch ? startBatch : 0);
    Progress bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(o.epochs), loader.batchesPerEpoch() * o.batch, "img", lead ? stderr : nullptr);
    lossSum = epoch == startEpoch ? resumedLossSum : 0;
    seen = epoch == startEpoch ? resumedSeen : 0;
    auto t0 = std::chrono::steady_clock::now();
    double commMs = 0, blockedMs = 0;
    comm.takeTimes(commMs, blockedMs);  // from this epoch's first step on
    for (int64_t b = epoch == startEpoch ? startBatch : 0; loader.next(img, lab); ++b) {
      double loss = 0;
      int64_t n = (int64_t)img.size() / numel(infer.inputShape());
      if (!tr.step(img.data(), lab.data(), n, o.seed * 1000003ull + (uint64_t)step, loss, err)) return fail(err);
      if (comm.distributed()) {
        // The global batch's mean loss, and whether any rank was asked to stop: all stop together.
        double g[3] = {loss * (double)n, (double)n, gStop ? 1.0 : 0.0};
        if (!comm.allreduceSum(g, 3, err)) return fail(err);
        loss = g[0] / g[1];
        n = (int64_t)g[1];
        if (g[2] > 0) gStop = true;
      }
      if (!std::isfinite(loss)) {
        if (!lead) return 1;
        fprintf(stderr, "\nerror: the loss became %s at step %lld (epoch %lld, batch %lld); the last good checkpoint in %s is kept\n"
                        "hint: lower --lr, add warmup (--warmup 2), or check the inputs for NaN\n",
                std::isnan(loss) ? "NaN" : "infinite", (long long)step, (long long)epoch + 1, (long long)b, o.out.c_str());
        return 1;
      }
      if (!opt.step(lr, err)) return fail(err);
      ++step;
      lossSum += loss * n;
      seen += n;
      char extra[64];
      snprintf(extra, sizeof extra, "loss %.4f  lr %.3g", lossSum / seen, lr);
      bar.update((b + 1) * o.batch, extra);
      if (step == interruptStep) gStop = true;
      if (gStop) {
        if (lead) fprintf(stderr, "\ninterrupted: saving a checkpoint at epoch %lld, batch %lld\n", (long long)epoch + 1, (long long)b + 1);
        if (!save(epoch, b + 1)) return 1;
        if (lead) fprintf(stderr, "resume with: %s%s train ... --out %s --resume\n", ranks > 1 ? ("mpirun -np " + std::to_string(ranks) + " ").c_str() : "",
                          infer.net.c_str(), o.out.c_str());
        return 130;
      }
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    comm.takeTimes(commMs, blockedMs);
    evalEx.setWeights(w);
    EvalResult trainEval, testEval;
    if (!evaluate(infer, evalEx, test, evalPre, o.evalBatch, comm, testEval, err)) return fail(err);
    trainEval.loss = lossSum / std::max<int64_t>(1, seen);
    // Training accuracy on a 10,000-image sample in inference mode keeps epochs short.
    Dataset sample = train;
    sample.truncate(10000);
    EvalResult sampleEval;
    if (!evaluate(infer, evalEx, sample, evalPre, o.evalBatch, comm, sampleEval, err)) return fail(err);
    bar.finish("loss " + jnum(trainEval.loss));
    if (comm.distributed() && lead)
      fprintf(stderr, "  gradient sums (rank 0): %.1f ms of %.1f s in collectives, %.0f%% of it overlapped with the backward pass\n", commMs, secs,
              commMs > 0 ? 100.0 * std::max(0.0, 1.0 - blockedMs / commMs) : 0.0);
    if (lead) fprintf(stderr, "epoch %lld: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | %.1f s, %.0f img/s\n", (long long)epoch + 1,
            trainEval.loss, 100 * sampleEval.accuracy, testEval.loss, 100 * testEval.accuracy, secs, seen / secs);
    trLoss.push_back(trainEval.loss); teLoss.push_back(testEval.loss);
    trAcc.push_back(sampleEval.accuracy); teAcc.push_back(testEval.accuracy);
    if (!lead) {
      if (!save(epoch + 1, 0)) return 1;  // waits for rank 0's files
      continue;
    }
    std::string line = "{\"epoch\": " + std::to_string(epoch + 1) + ", \"lr\": " + jnum(lr) + ", \"train_loss\": " + jnum(trainEval.loss) +
                       ", \"train_accuracy\": " + jnum(sampleEval.accuracy) + ", \"test_loss\": " + jnum(testEval.loss) +
                       ", \"test_accuracy\": " + jnum(testEval.accuracy) + ", \"seconds\": " + jnum(secs) + "}";
    {
      std::ofstream log(o.out + "/log.jsonl", std::ios::app);
      log << line << "\n";
      if (!log) return fail("cannot write " + o.out + "/log.jsonl");
    }
    Panel lossPanel{"loss", "cross-entropy", {{"train", trLoss, "#2563eb"}, {"test", teLoss, "#d97706", true}}};
    Panel accPanel{train.segmentation() ? "pixel accuracy" : "accuracy", train.segmentation() ? "fraction of pixels correct" : "fraction correct",
                   {{"train", trAcc, "#2563eb"}, {"test", teAcc, "#d97706", true}}};
    std::ofstream(o.out + "/curves.svg") << renderCurves(infer.net + " on " + o.data, {lossPanel, accPanel});
    if (!save(epoch + 1, 0)) return 1;
  }
  if (!lead) return allAgree(comm, true, err) ? 0 : 1;
  bool saved = saveWeights(tplan, w, o.out + "/weights.safetensors", err);
  if (!allAgree(comm, saved, err) || !saved) return fail(err);
  printf("%s: test %saccuracy %.2f%% after %d epochs (log: %s/log.jsonl, curves: %s/curves.svg, weights: %s/weights.safetensors)\n",
         infer.net.c_str(), train.segmentation() ? "pixel " : "", 100 * teAcc.back(), o.epochs, o.out.c_str(), o.out.c_str(), o.out.c_str());
  return 0;
}

}  // namespace cnnc::rt
