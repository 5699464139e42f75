// train_parallel.cpp: Trainer's data-parallel step (train.h), in the manner of Horovod and PyTorch DDP.
//
//  1. Buckets. Trainable parameters are ordered by the backward call that writes their gradient
//     (the last layers' gradients come first) and grouped into buckets of about bucketBytes. After
//     the call that completes a bucket, its gradients are packed into one buffer and its sum over
//     the ranks is started; the backward pass goes on while the sum runs on the communication thread.
//  2. After the last call, step() waits for every bucket and unpacks it divided by the number of
//     ranks: each rank's loss is the mean over its shard, so the mean of the ranks' gradients is
//     the gradient of the mean loss over the global batch.
//  3. Batch norm, per rank (default, DDP): the statistics are the shard's; gamma and beta gradients
//     join their bucket; after the step the running statistics are broadcast from rank 0, as DDP's
//     broadcast_buffers does, so every rank holds rank 0's.
//  4. Batch norm, synchronised (--sync-bn): after a BNStats call the per-channel means are summed
//     over the ranks (in double), then each shard's variance plus its mean's squared distance from
//     the global mean; the statistics become the global batch's mean and biased variance (shards
//     are of equal size). After a BNBackParams call the [dgamma; dbeta] sums are summed over the ranks and divided
//     by their number: BNBackData divides them by the shard's element count M, so Σ/N over M is the
//     global sum over the global count, which is what SyncBatchNorm's input gradient uses.
#include <algorithm>
#include <cstring>

#include "train.h"

namespace cnnc::rt {

struct Trainer::Parallel {
  struct Bucket {
    std::vector<int> params;  // trainable parameter indices
    size_t readyAfter = 0;    // the call after which every gradient of the bucket is written
    std::vector<float> buf;
  };
  std::vector<Bucket> buckets;
  std::vector<std::vector<int>> bucketsAfter;  // per call: the buckets it completes
  std::vector<int> statsOf, dparamsOf;         // per call: the BN (index into plan.bns) whose stats / dparams it writes, or -1
  std::vector<double> scratch;
};

bool Trainer::enableDataParallel(Comm& comm, bool syncBn, size_t bucketBytes, std::string& err) {
  const Plan& p = *plan_;
  comm_ = &comm;
  syncBn_ = syncBn;
  if (!comm.distributed()) return true;
  if (ex_.onGpu()) {
    err = "distributed training runs on CPU targets in this version: compile the net for the host (cnnc without --target) to train it under mpirun";
    return false;
  }
  auto par = std::make_shared<Parallel>();
  // The call that writes each constant: every kernel writes its last argument.
  std::vector<int> writer(p.consts.size(), -1);
  for (size_t c = 0; c < p.calls.size(); ++c) {
    const CallArg& out = p.calls[c].args.back();
    if (out.isConst) writer[out.id] = (int)c;
  }
  par->statsOf.assign(p.calls.size(), -1);
  par->dparamsOf.assign(p.calls.size(), -1);
  std::vector<int> gradWriter(p.params.size(), -1);
  for (size_t k = 0; k < p.bns.size(); ++k) {
    const BNSpec& b = p.bns[k];
    if (writer[b.stats] < 0 || writer[b.dparams] < 0) {
      err = "internal error: a batch norm's statistics or gradient sums have no kernel writing them";
      return false;
    }
    par->statsOf[writer[b.stats]] = (int)k;
    par->dparamsOf[writer[b.dparams]] = (int)k;
    if (b.gamma >= 0) gradWriter[b.gamma] = writer[b.dparams];
    if (b.beta >= 0) gradWriter[b.beta] = writer[b.dparams];
  }
  std::vector<int> order;
  for (size_t i = 0; i < p.params.size(); ++i) {
    if (grads_[i].empty()) continue;  // buffers and frozen parameters
    if (gradWriter[i] < 0 && i < p.paramGrad.size() && p.paramGrad[i] >= 0) gradWriter[i] = writer[p.paramGrad[i]];
    // No writer: a gradient that is zero by construction (a conv bias right before batch norm),
    // zero on every rank alike.
    if (gradWriter[i] >= 0) order.push_back((int)i);
  }
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return gradWriter[a] < gradWriter[b]; });
  size_t bytes = 0;
  for (int i : order) {
    if (par->buckets.empty() || bytes >= bucketBytes) {
      par->buckets.emplace_back();
      bytes = 0;
    }
    Parallel::Bucket& bk = par->buckets.back();
    bk.params.push_back(i);
    bk.readyAfter = std::max(bk.readyAfter, (size_t)gradWriter[i]);
    bytes += grads_[i].size() * sizeof(float);
  }
  par->bucketsAfter.assign(p.calls.size(), {});
  for (size_t k = 0; k < par->buckets.size(); ++k) {
    Parallel::Bucket& bk = par->buckets[k];
    size_t total = 0;
    for (int i : bk.params) total += grads_[i].size();
    bk.buf.resize(total);
    par->bucketsAfter[bk.readyAfter].push_back((int)k);
  }
  par_ = par;
  ex_.afterCall = [this](size_t c, std::string& e) { return afterCall(c, e); };
  return true;
}

bool Trainer::afterCall(size_t c, std::string& err) {
  Parallel& par = *par_;
  const Plan& p = *plan_;
  double N = comm_->size();
  if (syncBn_ && par.statsOf[c] >= 0) {
    std::vector<float>& st = owned_[p.bns[par.statsOf[c]].stats];
    size_t C = st.size() / 2;
    std::vector<double>& s = par.scratch;
    // Two sums: the mean first, then each shard's variance plus its mean's squared distance from
    // the global mean. One sum of squared means would subtract two large numbers (a channel whose
    // mean is 100 standard deviations from 0 lost 3 digits of its variance that way).
    s.assign(st.begin(), st.begin() + (long)C);  // means, then (from C on) variances
    if (!comm_->allreduceSum(s.data(), C, err)) return false;
    s.resize(2 * C);
    for (size_t i = 0; i < C; ++i) {
      s[i] /= N;
      s[C + i] = (double)st[C + i] + ((double)st[i] - s[i]) * ((double)st[i] - s[i]);
    }
    if (!comm_->allreduceSum(s.data() + C, C, err)) return false;
    for (size_t i = 0; i < C; ++i) {
      st[i] = (float)s[i];
      st[C + i] = (float)(s[C + i] / N);
    }
  }
  if (par.dparamsOf[c] >= 0) {
    const BNSpec& b = p.bns[par.dparamsOf[c]];
    if (syncBn_) {
      std::vector<float>& dp = owned_[b.dparams];
      if (!comm_->allreduceSum(dp.data(), dp.size(), err)) return false;
      for (float& v : dp) v = (float)(v / N);
    }
    copyBnGrads(b);
  }
  for (int k : par.bucketsAfter[c]) {
    Parallel::Bucket& bk = par.buckets[k];
    float* dst = bk.buf.data();
    for (int i : bk.params) dst = std::copy(grads_[i].begin(), grads_[i].end(), dst);
    comm_->startAllreduce(bk.buf.data(), bk.buf.size());
  }
  return true;
}

bool Trainer::finishParallel(std::string& err) {
  Parallel& par = *par_;
  const Plan& p = *plan_;
  if (!comm_->waitAll(err)) return false;
  float N = (float)comm_->size();
  for (Parallel::Bucket& bk : par.buckets) {
    const float* src = bk.buf.data();
    for (int i : bk.params)
      for (float& g : grads_[i]) g = *src++ / N;
  }
  if (syncBn_) return true;  // every rank computed the same running statistics
  for (const BNSpec& b : p.bns) {
    if (!comm_->broadcast(w_->f32[b.mean].data(), w_->f32[b.mean].size() * sizeof(float), err) ||
        !comm_->broadcast(w_->f32[b.var].data(), w_->f32[b.var].size() * sizeof(float), err))
      return false;
  }
  return true;
}

}  // namespace cnnc::rt
