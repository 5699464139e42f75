// The tuner's cost model and candidate order (codegen/tune_model.h): keys parse back into shapes,
// a model fitted to records whose times follow a known rule ranks unseen kernels' candidates by
// that rule, seeds come from the nearest similar kernel, and the default stays first.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "schedule.h"
#include "tune.h"
#include "tune_model.h"

using namespace cnnc::codegen;

namespace {

KernelSpec conv3x3(int C, int O, int H, int W) {
  KernelSpec k;
  k.kind = KernelKind::Conv;
  k.in = {C, H, W};
  k.out = {O, H, W};
  k.attrs.kernel[0] = k.attrs.kernel[1] = 3;
  k.attrs.pad[0] = k.attrs.pad[1] = 1;
  k.schedule = defaultSchedule(k);
  return k;
}

// The "machine" of these tests: time grows with the edge waste of the tile and falls with the
// accumulators up to the registers, as a real one roughly does; plus 3% noise.
double fakeMs(const KernelSpec& k, const Schedule& s, std::mt19937& rng) {
  KernelShape sh = parseKernelKey(k.key());
  std::vector<double> f = scheduleFeatures(sh, s);
  double base = 1e-6 * (double)k.in[0] * k.out[0] * k.out[1] * k.out[2];
  std::normal_distribution<double> noise(0, 0.03);
  return base * std::exp(1.5 * (f[6] + f[7] + f[8]) - 0.8 * std::min(f[3], 1.0) + 2.0 * f[5] + noise(rng));
}

}  // namespace

TEST(TuneModel, KeysParseBackIntoShapes) {
  KernelSpec k = conv3x3(32, 64, 28, 20);
  k.attrs.stride[0] = k.attrs.stride[1] = 2;
  k.out = {64, 14, 10};
  KernelShape s = parseKernelKey(k.key());
  ASSERT_TRUE(s.ok) << k.key();
  EXPECT_STREQ(s.kind.c_str(), kernelKindName(KernelKind::Conv));
  EXPECT_EQ(s.C, 32);
  EXPECT_EQ(s.H, 28);
  EXPECT_EQ(s.W, 20);
  EXPECT_EQ(s.O, 64);
  EXPECT_EQ(s.OH, 14);
  EXPECT_EQ(s.OW, 10);
  EXPECT_EQ(s.kh, 3);
  EXPECT_EQ(s.sh, 2);
  EXPECT_EQ(s.groups, 1);
  // Weight gradients: x, then dy (the output tile's shape), then dw.
  KernelSpec w = k;
  w.kind = KernelKind::ConvBackWeight;
  w.in = {32, 28, 20};
  w.extraIns = {{64, 14, 10}};
  w.out = {64, 32, 3, 3};
  s = parseKernelKey(w.key());
  ASSERT_TRUE(s.ok) << w.key();
  EXPECT_EQ(s.O, 64);
  EXPECT_EQ(s.OW, 10);
  EXPECT_FALSE(parseKernelKey("Linear in=[10] out=[5] act=none").ok);
  EXPECT_FALSE(parseKernelKey("Conv in=[3,x] out=").ok);
}

// Fitted to kernels of one net, the model ranks a kernel it has never seen: the true best of the
// fake machine is among its first 10% of candidates, where the fixed shuffled order puts it anywhere.
TEST(TuneModel, LearnsFromRecordsAndRanksAnUnseenKernel) {
  std::mt19937 rng(3);
  std::vector<TuningRecord> recs;
  for (auto [C, O, H, W] : std::vector<std::array<int, 4>>{{64, 64, 56, 56}, {128, 128, 28, 28}, {256, 256, 14, 14}, {32, 48, 30, 45}}) {
    KernelSpec k = conv3x3(C, O, H, W);
    for (const Schedule& s : scheduleCandidates(k)) {
      TuningRecord r;
      r.kernel = k.key(), r.schedule = s, r.medianMs = fakeMs(k, s, rng);
      recs.push_back(r);
    }
  }
  CostModel m;
  ASSERT_TRUE(m.fit(recs));
  EXPECT_EQ(m.samples(), (int)recs.size());
  KernelSpec u = conv3x3(96, 80, 20, 36);  // not among the records
  auto cands = scheduleCandidates(u);
  KernelShape sh = parseKernelKey(u.key());
  auto ordered = orderCandidates(sh, cands, {}, m);
  ASSERT_EQ(ordered.size(), cands.size());
  EXPECT_EQ(ordered[0].str(), cands[0].str());  // the default stays first
  std::mt19937 quiet(5);
  std::vector<double> truth;
  for (const auto& s : ordered) truth.push_back(fakeMs(u, s, quiet));
  size_t bestAt = std::min_element(truth.begin(), truth.end()) - truth.begin();
  double bestFirstTenth = *std::min_element(truth.begin(), truth.begin() + std::max<size_t>(2, ordered.size() / 10));
  printf("model: %d records; true best at rank %zu of %zu; best of the first 10%% within %.1f%% of it\n", m.samples(), bestAt, ordered.size(),
         100 * (bestFirstTenth / truth[bestAt] - 1));
  EXPECT_LT(bestAt, ordered.size() / 10);
  EXPECT_LE(bestFirstTenth, 1.02 * truth[bestAt]);
}

TEST(TuneModel, TooFewRecordsGiveNoModel) {
  std::vector<TuningRecord> recs(5);
  KernelSpec k = conv3x3(16, 16, 8, 8);
  for (auto& r : recs) r.kernel = k.key(), r.medianMs = 1;
  CostModel m;
  EXPECT_FALSE(m.fit(recs));
  EXPECT_FALSE(m.ready());
  // Without a model or seeds the order is the one given.
  auto cands = scheduleCandidates(k);
  auto ordered = orderCandidates(parseKernelKey(k.key()), cands, {}, m);
  for (size_t i = 0; i < cands.size(); ++i) EXPECT_EQ(ordered[i].str(), cands[i].str());
}

// Seeds: the best on record of the nearest kernel of the same kind, kernel size and stride goes
// right after the default; other kinds and strides do not seed.
TEST(TuneModel, NearestSimilarKernelSeedsTheSearch) {
  KernelSpec a = conv3x3(64, 64, 56, 56), b = conv3x3(64, 64, 28, 28), far = conv3x3(512, 512, 7, 7);
  KernelSpec strided = conv3x3(64, 64, 28, 28);
  strided.attrs.stride[0] = strided.attrs.stride[1] = 2;
  strided.out = {64, 14, 14};
  auto candsB = scheduleCandidates(b);
  TuningDb db;
  auto put = [&](const KernelSpec& k, const Schedule& s) {
    TuningRecord r;
    r.kernel = k.key(), r.target = "t", r.schedule = s, r.medianMs = 1;
    db.best[{r.kernel, r.target}] = r;
    for (int i = 0; i < 4; ++i) db.records.push_back(r);  // tuned, not only its default on record
  };
  put(a, candsB[5]);
  put(far, candsB[6]);
  put(strided, candsB[7]);
  auto seeds = similarKernelsBest(parseKernelKey(b.key()), b.key(), db, "t", 3);
  ASSERT_EQ(seeds.size(), 2u);  // a and far; the strided one differs in stride
  EXPECT_EQ(seeds[0].str(), candsB[5].str());
  auto ordered = orderCandidates(parseKernelKey(b.key()), candsB, seeds, CostModel());
  EXPECT_EQ(ordered[0].str(), candsB[0].str());
  EXPECT_EQ(ordered[1].str(), candsB[5].str());
  EXPECT_EQ(ordered[2].str(), candsB[6].str());
  EXPECT_TRUE(similarKernelsBest(parseKernelKey(b.key()), b.key(), db, "other", 3).empty());
  // A kernel with only its default on record does not seed.
  db.records.erase(std::remove_if(db.records.begin(), db.records.end(), [&](const TuningRecord& r) { return r.kernel == a.key(); }), db.records.end());
  db.records.push_back(db.best[{a.key(), "t"}]);
  seeds = similarKernelsBest(parseKernelKey(b.key()), b.key(), db, "t", 3);
  ASSERT_EQ(seeds.size(), 1u);
  EXPECT_EQ(seeds[0].str(), candsB[6].str());
}

TEST(TuneModel, NeighboursDifferInOneTileField) {
  Schedule a;
  a.vec = 16, a.tileX = 1, a.tileY = 2, a.tileC = 8;
  Schedule b = a;
  b.tileC = 12;
  EXPECT_TRUE(neighbours(a, b));
  b.tileY = 4;
  EXPECT_FALSE(neighbours(a, b));
  Schedule w = a;
  w.winograd = 2;
  EXPECT_FALSE(neighbours(a, w));  // another family
  EXPECT_FALSE(neighbours(a, a));
  Schedule o = a;  // the loop order is a field of its own
  o.order = 1;
  EXPECT_TRUE(neighbours(a, o));
  o.tileC = 12;
  EXPECT_FALSE(neighbours(a, o));
}
