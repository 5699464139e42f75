// tune_model.cpp: the tuner's cost model and candidate order (tune_model.h). The algorithm:
//  1. Each database record's kernel key is parsed back into a shape (kind, channels, sizes, kernel,
//     stride, groups); its schedule becomes a feature vector (scheduleFeatures): which family
//     (vectors along x, along channels, Winograd; for weight gradients their own block), how many
//     accumulators the register tile holds against the registers the target has (and how far past
//     them it spills), the share of each tile dimension wasted at the edges of the layer, the tile's
//     dimensions in log2, and the family crossed with the layer's widths (vectors along x suit wide
//     rows, along channels narrow ones), and for vectors along x the loop order against the size of
//     an image's input. Weight gradients and depthwise convs (memory-bound, with
//     their own flat forms) have feature blocks of their own.
//  2. The target is log(ms) minus the mean log(ms) of the same kernel's records, and the features
//     are centered the same way: a per-kernel intercept absorbs each layer's size, so records of
//     every kernel of every tuned net train one model of what makes a schedule faster than its
//     siblings. Ridge regression (normal equations, lambda 1) fits it; a few dozen records suffice.
//  3. A kernel's candidates are then measured in this order: the default; the fastest schedules on
//     record for the nearest kernels of the same kind, kernel size and stride (seeds: a second net
//     that shares shapes starts where the first ended); the rest by predicted time.
#include "tune_model.h"

#include "kernel.h"
#include "ops/conv.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

namespace cnnc::codegen {

namespace {

// "[64,56,56]" at `p` (past "name="): its numbers; p moves past the ']'.
std::vector<int> readDims(const std::string& s, size_t& p) {
  std::vector<int> d;
  if (p >= s.size() || s[p] != '[') return d;
  ++p;
  while (p < s.size() && s[p] != ']') {
    char* end = nullptr;
    long v = strtol(s.c_str() + p, &end, 10);
    if (end == s.c_str() + p) return {};
    d.push_back((int)v);
    p = (size_t)(end - s.c_str());
    if (p < s.size() && s[p] == ',') ++p;
  }
  ++p;
  return d;
}

// "k=3x3" -> (3, 3); false when absent.
bool readPair(const std::string& s, const char* name, int& a, int& b) {
  size_t p = s.find(std::string(" ") + name + "=");
  return p != std::string::npos && sscanf(s.c_str() + p + strlen(name) + 2, "%dx%d", &a, &b) == 2;
}

double lg(double x) { return std::log2(std::max(x, 1.0)); }

// Share of `n` that whole tiles of `t` cover beyond it (1: no waste), in log2.
double waste(int n, int t) {
  if (n <= 0 || t <= 0) return 0;
  return std::log2((double)((n + t - 1) / t * t) / n);
}

constexpr int kFeatures = 53;

}  // namespace

KernelShape parseKernelKey(const std::string& key) {
  KernelShape k;
  k.kind = key.substr(0, key.find(' '));
  if (k.kind != kernelKindName(KernelKind::Conv) && k.kind != kernelKindName(KernelKind::ConvBackData) &&
      k.kind != kernelKindName(KernelKind::ConvBackWeight))
    return k;
  size_t p = key.find(" in=");
  if (p == std::string::npos) return k;
  p += 4;
  std::vector<int> in = readDims(key, p), extra;
  if (p < key.size() && key[p] == '+') ++p, extra = readDims(key, p);
  size_t q = key.find(" out=");
  if (q == std::string::npos) return k;
  q += 5;
  std::vector<int> out = readDims(key, q);
  size_t g = key.find(" g=");
  if (g != std::string::npos) k.groups = atoi(key.c_str() + g + 3);
  if (!readPair(key, "k", k.kh, k.kw) || !readPair(key, "s", k.sh, k.sw) || in.size() != 3) return k;
  k.C = in[0], k.H = in[1], k.W = in[2];
  if (k.kind == kernelKindName(KernelKind::ConvBackWeight)) {  // x [C,H,W] + dy [O,OH,OW] -> dw
    if (extra.size() != 3) return k;
    k.O = extra[0], k.OH = extra[1], k.OW = extra[2];
  } else {
    if (out.size() != 3) return k;
    k.O = out[0], k.OH = out[1], k.OW = out[2];
  }
  k.ok = k.C > 0 && k.O > 0 && k.OH > 0 && k.OW > 0;
  return k;
}

std::vector<double> scheduleFeatures(const KernelShape& k, const Schedule& s) {
  std::vector<double> f(kFeatures, 0.0);
  int lanes = s.lanes > 0 ? s.lanes : 16, budget = lanes == 8 ? 12 : 24;
  int vec = std::max(1, s.vec), tx = std::max(1, s.tileX), ty = std::max(1, s.tileY), tc = std::max(1, s.tileC);
  int cv = std::max(1, s.chanVec);
  if (k.kind == kernelKindName(KernelKind::ConvBackWeight)) {
    // Slots 46-48: the Winograd form, its tileX x tileC accumulators and its block of tile rows.
    if (s.winograd) {
      f[46] = 1;
      f[47] = (double)tx * tc / budget;
      f[48] = lg(ty);
      return f;
    }
    // Slots 20-29: chanVec 0 is conv.cpp's own tile (a family of its own), else cv vectors x kw x
    // tileY tap rows x tileC input channels.
    if (s.chanVec == 0) { f[20] = 1; return f; }
    double acc = (double)cv * k.kw * ty * tc;
    f[21] = 1;
    f[22] = acc / budget;
    f[23] = f[22] * f[22];
    f[24] = std::max(0.0, acc - budget) / budget;
    f[25] = std::log2((double)vec / lanes);
    f[26] = lg(cv);
    f[27] = ty == k.kh ? 1 : 0;
    f[28] = lg(tc);
    f[29] = 1.0 / acc;
    return f;
  }
  if (k.depthwise()) {
    // Slots 30-39, depthwise: rows (vectors along x, tx x ty x tc accumulators) or the flat walk
    // (stores fused or by row, channels per task, vector width).
    if (s.flat == 4) {  // the direct form: slot 43, its vector's width and waste along the row, its tasks
      f[43] = 1;
      f[32] = lg(depthwiseFlatTask(s, k.O, (int64_t)k.OH * k.OW));
      f[33] = std::log2((double)vec / lanes);
      f[34] = waste(k.OW, vec);
      return f;
    }
    if (s.flat) {
      bool fused = depthwiseFlatFused(s, k.OW, (int64_t)k.OH * k.OW, vec);
      f[30] = 1;
      f[31] = fused;
      f[32] = lg(depthwiseFlatTask(s, k.O, (int64_t)k.OH * k.OW));
      f[33] = std::log2((double)vec / lanes);
      f[34] = waste(k.OH * k.OW, vec) * fused + waste(k.OW, vec) * !fused;
      return f;
    }
    double acc = (double)tx * ty * tc * std::max(1, vec / lanes);
    f[35] = acc / budget;
    f[36] = std::max(0.0, acc - budget) / budget;
    f[37] = waste(k.OW, vec * tx);
    f[38] = lg(tc) + lg(ty);
    f[39] = std::log2((double)vec / lanes);
    return f;
  }
  bool wino = s.winograd > 0, cvec = !wino && s.chanVec > 0, xvec = !wino && !cvec;
  double acc, wx, wy, wc;
  if (wino && s.chanVec > 0) {
    int TW = (k.OW + 1) / 2, TH = (k.OH + 1) / 2;
    acc = (double)cv * tx * ty;
    wx = waste(TW, tx), wy = waste(TH, ty), wc = waste(k.O, lanes * cv);
  } else if (wino) {
    int TW = (k.OW + 1) / 2, TH = (k.OH + 1) / 2;
    acc = (double)tx * tc;
    wx = waste(TW, vec * tx), wy = waste(TH, ty), wc = waste(k.O, tc);
  } else if (cvec) {
    acc = (double)cv * tx * ty;
    wx = waste(k.OW, tx), wy = waste(k.OH, ty), wc = waste(k.O, lanes * cv);
  } else {
    acc = (double)tx * ty * tc * std::max(1, vec / lanes);
    wx = waste(k.OW, vec * tx), wy = waste(k.OH, ty), wc = waste(k.O, tc);
  }
  f[0] = xvec, f[1] = cvec, f[2] = wino;
  f[3] = acc / budget;
  f[4] = f[3] * f[3];
  f[5] = std::max(0.0, acc - budget) / budget;
  f[6] = wx, f[7] = wy, f[8] = wc;
  f[9] = std::log2((double)vec / lanes);
  f[10] = lg(tx), f[11] = lg(ty), f[12] = lg(tc), f[13] = lg(cv);
  f[14] = xvec * lg(k.OW), f[15] = cvec * lg(k.OW), f[16] = wino * lg(k.OW);
  f[17] = xvec * lg(k.C), f[18] = cvec * lg(k.C), f[19] = 1.0 / acc;
  // Slots 40-42: the loop order of x-vector tiles, and how far one image's input (C x H x W floats)
  // is past what stays in cache when the channel tiles come outermost.
  f[40] = xvec && s.order == 1, f[41] = xvec && s.order == 2;
  f[42] = xvec * (s.order ? -1.0 : 1.0) * lg((double)k.C * k.H * k.W / 65536.0);
  // Slots 44-45: channel vectors' blocks inside row strips, and how the image compares with the
  // weights that the strips read once each (conv.cpp's channelBlocksInStrips).
  f[44] = cvec && s.order == 1;
  f[45] = f[44] * lg((double)k.H * k.W / ((double)k.O * k.kh * k.kw));
  // Slots 49-52: Winograd with channel vectors (a family of its own), its loop order, its group of
  // images, and how a group's transformed inputs (16 x tiles x C floats per image) compare with L2.
  bool wcv = wino && s.chanVec > 0;
  f[49] = wcv, f[50] = wcv && s.order == 1, f[51] = wcv * lg(s.task > 0 ? s.task : 8);
  f[52] = wcv * lg(16.0 * ((k.OW + 1) / 2) * ((k.OH + 1) / 2) * k.C * (s.task > 0 ? s.task : 8) * 4 / (1 << 20));
  return f;
}

bool CostModel::fit(const std::vector<TuningRecord>& records) {
  w_.clear();
  samples_ = 0;
  // Records per kernel; a kernel with one record says nothing about schedules.
  std::map<std::string, std::vector<const TuningRecord*>> byKernel;
  for (const auto& r : records)
    if (r.medianMs > 0 && r.schedule.autoBatch == 0) byKernel[r.kernel].push_back(&r);
  std::vector<std::vector<double>> X;
  std::vector<double> y;
  int kernels = 0;
  for (const auto& [key, rs] : byKernel) {
    KernelShape k = parseKernelKey(key);
    if (!k.ok || rs.size() < 2) continue;
    std::vector<std::vector<double>> xs;
    std::vector<double> ys;
    std::vector<double> mx(kFeatures, 0.0);
    double my = 0;
    for (const auto* r : rs) {
      xs.push_back(scheduleFeatures(k, r->schedule));
      ys.push_back(std::log(r->medianMs));
      for (int j = 0; j < kFeatures; ++j) mx[j] += xs.back()[j] / rs.size();
      my += ys.back() / rs.size();
    }
    ++kernels;
    for (size_t i = 0; i < xs.size(); ++i) {
      for (int j = 0; j < kFeatures; ++j) xs[i][j] -= mx[j];
      X.push_back(xs[i]);
      y.push_back(ys[i] - my);
    }
  }
  samples_ = (int)y.size();
  if (samples_ < 16 || kernels < 2) return false;
  // (X'X + lambda I) w = X'y, by Gaussian elimination with partial pivoting.
  const int d = kFeatures;
  std::vector<std::vector<double>> A(d, std::vector<double>(d + 1, 0.0));
  for (size_t i = 0; i < X.size(); ++i)
    for (int a = 0; a < d; ++a) {
      for (int b = 0; b < d; ++b) A[a][b] += X[i][a] * X[i][b];
      A[a][d] += X[i][a] * y[i];
    }
  for (int a = 0; a < d; ++a) A[a][a] += 1.0;
  for (int c = 0; c < d; ++c) {
    int piv = c;
    for (int r = c + 1; r < d; ++r)
      if (std::fabs(A[r][c]) > std::fabs(A[piv][c])) piv = r;
    std::swap(A[c], A[piv]);
    for (int r = 0; r < d; ++r) {
      if (r == c) continue;
      double m = A[r][c] / A[c][c];
      for (int j = c; j <= d; ++j) A[r][j] -= m * A[c][j];
    }
  }
  w_.assign(d, 0.0);
  for (int a = 0; a < d; ++a) w_[a] = A[a][d] / A[a][a];
  return true;
}

double CostModel::predict(const KernelShape& k, const Schedule& s) const {
  std::vector<double> f = scheduleFeatures(k, s);
  double p = 0;
  for (size_t j = 0; j < w_.size(); ++j) p += w_[j] * f[j];
  return p;
}

std::vector<Schedule> similarKernelsBest(const KernelShape& k, const std::string& key, const TuningDb& db, const std::string& target, size_t n) {
  // Only kernels tuned for real seed: a best among fewer than 4 records is mostly its default.
  std::map<std::string, int> count;
  for (const auto& r : db.records)
    if (r.target == target) ++count[r.kernel];
  std::vector<std::pair<double, Schedule>> near;
  for (const auto& [kt, r] : db.best) {
    if (kt.second != target || kt.first == key || count[kt.first] < 4) continue;
    KernelShape o = parseKernelKey(kt.first);
    // Depthwise convs of any width are alike (groups = channels); other groups must match.
    bool sameGroups = o.groups == k.groups || (o.depthwise() && k.depthwise());
    if (!o.ok || o.kind != k.kind || o.kh != k.kh || o.kw != k.kw || o.sh != k.sh || o.sw != k.sw || !sameGroups) continue;
    double dist = std::fabs(lg(o.C) - lg(k.C)) + std::fabs(lg(o.O) - lg(k.O)) + std::fabs(lg(o.OH) - lg(k.OH)) + std::fabs(lg(o.OW) - lg(k.OW));
    near.push_back({dist, r.schedule});
  }
  std::stable_sort(near.begin(), near.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Schedule> out;
  for (size_t i = 0; i < near.size() && out.size() < n; ++i) out.push_back(near[i].second);
  return out;
}

std::vector<Schedule> orderCandidates(const KernelShape& k, const std::vector<Schedule>& candidates, const std::vector<Schedule>& seeds,
                                      const CostModel& model) {
  if (candidates.empty()) return {};
  std::vector<Schedule> out{candidates[0]};
  std::set<std::string> taken{candidates[0].str()};
  std::map<std::string, const Schedule*> byStr;
  for (const auto& c : candidates) byStr[c.str()] = &c;
  for (Schedule s : seeds) {
    s.lanes = candidates[0].lanes;
    auto it = byStr.find(s.str());
    if (it != byStr.end() && taken.insert(s.str()).second) out.push_back(*it->second);
  }
  std::vector<std::pair<double, const Schedule*>> rest;
  for (size_t i = 1; i < candidates.size(); ++i)
    if (!taken.count(candidates[i].str())) rest.push_back({model.ready() ? model.predict(k, candidates[i]) : (double)i, &candidates[i]});
  std::stable_sort(rest.begin(), rest.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& r : rest) out.push_back(*r.second);
  return out;
}

bool neighbours(const Schedule& a, const Schedule& b) {
  auto family = [](const Schedule& s) { return s.winograd > 0 ? 2 : s.chanVec > 0 ? 1 : 0; };
  if (family(a) != family(b) || a.autoBatch || b.autoBatch) return false;
  int diff = (a.vec != b.vec) + (a.tileX != b.tileX) + (a.tileY != b.tileY) + (a.tileC != b.tileC) + (a.chanVec != b.chanVec) +
             (a.order != b.order) + (a.flat != b.flat) + (a.task != b.task);
  return diff == 1;
}

}  // namespace cnnc::codegen
