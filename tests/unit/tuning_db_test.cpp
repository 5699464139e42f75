// The tuning database: round trip, the fastest record wins, and every kind of bad record is
// rejected with a message naming its line (corrupt, hand-edited, another format version), while a
// torn last line (a tune killed mid-write) is skipped with a warning and cut off by the next append.
// Also the schedule candidates of `cnnc tune`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <tuple>
#include <sstream>

#include <nlohmann/json.hpp>

#include "schedule.h"
#include "tune.h"
#include "tuning_db.h"
#include "ops/conv.h"

using namespace cnnc::codegen;

namespace {

std::string tempPath() {
  char tmpl[] = "/tmp/cnnc-tuning-test-XXXXXX";
  int fd = mkstemp(tmpl);
  close(fd);
  unlink(tmpl);
  return tmpl;
}

// A conv kernel of `kind` (ConvBackData: `in` is dy, `out` dx) with a square kernel, "same"
// padding for odd sizes, stride `stride`, and its default schedule for `lanes`.
KernelSpec convSpec(KernelKind kind, const cnnc::Dims& in, const cnnc::Dims& out, int kernel, int stride = 1, int lanes = 16) {
  KernelSpec k;
  k.kind = kind;
  k.in = in;
  k.out = out;
  k.attrs.kernel[0] = k.attrs.kernel[1] = kernel;
  k.attrs.pad[0] = k.attrs.pad[1] = kernel / 2;
  k.attrs.stride[0] = k.attrs.stride[1] = stride;
  k.schedule = defaultSchedule(k, lanes);
  return k;
}

// A 3x3 padding-1 conv's weight gradient: x of shape `in`, dy of shape `dy`, `groups` groups.
KernelSpec weightGradSpec(const cnnc::Dims& in, const cnnc::Dims& dy, int groups = 1) {
  KernelSpec w;
  w.kind = KernelKind::ConvBackWeight;
  w.in = in;
  w.extraIns = {dy};
  w.out = {dy[0], in[0] / groups, 3, 3};
  w.attrs.kernel[0] = w.attrs.kernel[1] = 3;
  w.attrs.pad[0] = w.attrs.pad[1] = 1;
  w.attrs.groups = groups;
  w.schedule = defaultSchedule(w, 16);
  return w;
}

// The channel blocks (vec x chanVec) of k's channel-vector candidates.
std::set<int> candidateBlocks(const KernelSpec& k) {
  std::set<int> blocks;
  for (const Schedule& s : scheduleCandidates(k))
    if (s.chanVec) blocks.insert(s.vec * s.chanVec);
  return blocks;
}

TuningRecord rec(const std::string& kernel, double ms, int tileC = 8) {
  TuningRecord r;
  r.kernel = kernel;
  r.target = "x86-64-linux-avx512";
  r.schedule.vec = 16;
  r.schedule.tileC = tileC;
  r.medianMs = ms;
  r.version = "1.0";
  r.date = "2026-11-27T10:00:00Z";
  r.net = "t/infer";
  r.tuneSeconds = 0.5;
  return r;
}

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void spit(const std::string& p, const std::string& text) { std::ofstream(p) << text; }

bool read(const std::string& p, TuningDb& db, std::string& err, std::vector<std::string>& warnings, const std::string& version = "1.0") {
  return readTuningDb(p, version, db, err, warnings);
}

TEST(TuningDb, MissingFileIsEmpty) {
  TuningDb db;
  std::string err;
  std::vector<std::string> w;
  EXPECT_TRUE(read("/nonexistent/tuning.jsonl", db, err, w)) << err;
  EXPECT_TRUE(db.records.empty());
}

TEST(TuningDb, RoundTripAndFastestWins) {
  std::string p = tempPath(), err;
  ASSERT_TRUE(appendTuningRecord(p, rec("conv a", 2.0, 8), err)) << err;
  ASSERT_TRUE(appendTuningRecord(p, rec("conv a", 1.5, 12), err)) << err;
  ASSERT_TRUE(appendTuningRecord(p, rec("conv b", 3.0, 4), err)) << err;
  TuningDb db;
  std::vector<std::string> w;
  ASSERT_TRUE(read(p, db, err, w)) << err;
  EXPECT_TRUE(w.empty());
  ASSERT_EQ(db.records.size(), 3u);
  auto best = db.best.at({"conv a", "x86-64-linux-avx512"});
  EXPECT_DOUBLE_EQ(best.medianMs, 1.5);
  EXPECT_EQ(best.schedule.tileC, 12);
  EXPECT_EQ(best.net, "t/infer");
  // A flat depthwise schedule keeps its store form and channels per task.
  TuningRecord dw = rec("conv dw", 0.7, 1);
  dw.schedule.flat = 3, dw.schedule.task = 32;
  ASSERT_TRUE(appendTuningRecord(p, dw, err)) << err;
  TuningDb db2;
  ASSERT_TRUE(read(p, db2, err, w)) << err;
  EXPECT_EQ(db2.best.at({"conv dw", "x86-64-linux-avx512"}).schedule.str(), dw.schedule.str());
  // So does a tile's loop order.
  TuningRecord ord = rec("conv o", 0.9, 8);
  ord.schedule.order = 2;
  ASSERT_TRUE(appendTuningRecord(p, ord, err)) << err;
  TuningDb db3;
  ASSERT_TRUE(read(p, db3, err, w)) << err;
  EXPECT_EQ(db3.best.at({"conv o", "x86-64-linux-avx512"}).schedule.order, 2);
  EXPECT_NE(ord.schedule.str().find("order=2"), std::string::npos) << ord.schedule.str();
  unlink(p.c_str());
}

// Records measured in the net (cnnc tune's last step) outrank isolated ones of the same kernel,
// however fast those read alone; among them the fastest wins; isolated records keep their
// checksums (no "situ" field), and a "situ" other than "net" is an error.
TEST(TuningDb, RecordsMeasuredInTheNetOutrankIsolatedOnes) {
  std::string p = tempPath(), err;
  TuningRecord fastAlone = rec("conv a", 0.5, 12), netDefault = rec("conv a", 1.1, 8), netTuned = rec("conv a", 1.3, 12);
  netDefault.inNet = netTuned.inNet = true;
  ASSERT_TRUE(appendTuningRecord(p, fastAlone, err)) << err;
  ASSERT_TRUE(appendTuningRecord(p, netDefault, err)) << err;
  ASSERT_TRUE(appendTuningRecord(p, netTuned, err)) << err;
  ASSERT_TRUE(appendTuningRecord(p, rec("conv b", 3.0, 4), err)) << err;
  TuningDb db;
  std::vector<std::string> w;
  ASSERT_TRUE(read(p, db, err, w)) << err;
  auto best = db.best.at({"conv a", "x86-64-linux-avx512"});
  EXPECT_TRUE(best.inNet);
  EXPECT_EQ(best.schedule.tileC, 8);  // the default won in the net, though 12 read faster alone
  EXPECT_DOUBLE_EQ(best.medianMs, 1.1);
  EXPECT_FALSE(db.best.at({"conv b", "x86-64-linux-avx512"}).inNet);
  EXPECT_EQ(recordToLine(fastAlone).find("situ"), std::string::npos);
  EXPECT_NE(recordToLine(netTuned).find("\"situ\":\"net\""), std::string::npos);
  std::string line = recordToLine(netTuned);
  line.replace(line.find("\"situ\":\"net\""), 12, "\"situ\":\"lab\"");
  spit(p, line + "\n");
  TuningDb bad;
  EXPECT_FALSE(read(p, bad, err, w));
  EXPECT_NE(err.find("field 'situ' must be \"net\""), std::string::npos) << err;
  unlink(p.c_str());
}

// A second tune picks up the patience count where the first left it: candidates after the last
// 1% gain count, others (another target, batch or version, in-net records) do not.
TEST(TuningDb, SinceBestOnRecordCountsFromTheLastOnePercentGain) {
  TuningDb db;
  auto add = [&](double ms, const std::string& kernel = "k", int batch = 1, bool inNet = false, const std::string& target = "t") {
    TuningRecord r;
    r.kernel = kernel, r.target = target, r.medianMs = ms, r.batch = batch, r.version = "v", r.inNet = inNet;
    addTuningRecord(db, r, "v");
  };
  EXPECT_EQ(sinceBestOnRecord(db, "k", "t", "v", 1), 0);
  add(10.0);   // the default
  add(9.5);    // a gain: resets
  add(9.46);   // within 1% of 9.5: counts
  add(12.0);
  add(9.0, "other");
  add(9.0, "k", 8);
  add(1.0, "k", 1, true);
  add(1.0, "k", 1, false, "t2");
  EXPECT_EQ(sinceBestOnRecord(db, "k", "t", "v", 1), 2);
  add(9.3);    // 2.1% below 9.5: a gain
  EXPECT_EQ(sinceBestOnRecord(db, "k", "t", "v", 1), 0);
  EXPECT_EQ(sinceBestOnRecord(db, "k", "t", "other-version", 1), 0);
}

TEST(TuningDb, ConcatenatedDatabasesAreADatabase) {
  std::string a = tempPath(), b = tempPath(), err;
  ASSERT_TRUE(appendTuningRecord(a, rec("conv a", 2.0), err));
  ASSERT_TRUE(appendTuningRecord(b, rec("conv a", 1.0, 16), err));
  spit(a, slurp(a) + slurp(b));
  TuningDb db;
  std::vector<std::string> w;
  ASSERT_TRUE(read(a, db, err, w)) << err;
  EXPECT_EQ(db.records.size(), 2u);
  EXPECT_EQ(db.best.at({"conv a", "x86-64-linux-avx512"}).schedule.tileC, 16);
  unlink(a.c_str());
  unlink(b.c_str());
}

TEST(TuningDb, RejectsCorruptLineWithItsNumber) {
  std::string p = tempPath(), err;
  ASSERT_TRUE(appendTuningRecord(p, rec("conv a", 2.0), err));
  spit(p, slurp(p) + "{\"v\":1, this is not json\n");
  ASSERT_TRUE(appendTuningRecord(p, rec("conv b", 2.0), err));
  TuningDb db;
  std::vector<std::string> w;
  EXPECT_FALSE(read(p, db, err, w));
  EXPECT_NE(err.find(p + ":2: bad tuning record: not a JSON object"), std::string::npos) << err;
  EXPECT_NE(err.find("run `cnnc tune` again"), std::string::npos) << err;
  unlink(p.c_str());
}

TEST(TuningDb, RejectsHandEditedRecord) {
  std::string p = tempPath(), err;
  ASSERT_TRUE(appendTuningRecord(p, rec("conv a", 2.0), err));
  std::string text = slurp(p);
  size_t at = text.find("\"median_ms\":2");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 13, "\"median_ms\":1");  // a faster time typed in by hand
  spit(p, text);
  TuningDb db;
  std::vector<std::string> w;
  EXPECT_FALSE(read(p, db, err, w));
  EXPECT_NE(err.find(":1: bad tuning record: checksum mismatch"), std::string::npos) << err;
  unlink(p.c_str());
}

// A record written by cnnc 0.1.0, whose schedules carried "par" (a field nothing read, since
// removed), still verifies and loads; a hand edit of it is still caught.
TEST(TuningDb, ReadsRecordsWithTheRemovedParField) {
  std::string p = tempPath(), err;
  ASSERT_TRUE(appendTuningRecord(p, rec("conv a", 2.0), err));
  nlohmann::json j = nlohmann::json::parse(slurp(p));
  j.erase("sum");
  j["schedule"]["par"] = 1;
  uint64_t h = 1469598103934665603ull;  // FNV-1a, as 0.1.0 summed the body
  for (unsigned char c : j.dump()) { h ^= c; h *= 1099511628211ull; }
  char sum[17];
  snprintf(sum, sizeof sum, "%016llx", (unsigned long long)h);
  j["sum"] = sum;
  spit(p, j.dump() + "\n");
  TuningDb db;
  std::vector<std::string> w;
  EXPECT_TRUE(read(p, db, err, w)) << err;
  EXPECT_EQ(db.records.size(), 1u);
  j["schedule"]["par"] = 0;  // edited after it was written
  spit(p, j.dump() + "\n");
  TuningDb db2;
  EXPECT_FALSE(read(p, db2, err, w));
  EXPECT_NE(err.find("checksum mismatch"), std::string::npos) << err;
  unlink(p.c_str());
}

TEST(TuningDb, RejectsAnotherFormatVersion) {
  std::string p = tempPath(), err;
  ASSERT_TRUE(appendTuningRecord(p, rec("conv a", 2.0), err));
  std::string text = slurp(p);
  size_t at = text.find("\"v\":1");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 5, "\"v\":7");
  spit(p, text);
  TuningDb db;
  std::vector<std::string> w;
  EXPECT_FALSE(read(p, db, err, w));
  EXPECT_NE(err.find("record format 7, this cnnc reads format 1"), std::string::npos) << err;
  unlink(p.c_str());
}

TEST(TuningDb, RejectsMissingAndOutOfRangeFields) {
  std::string p = tempPath(), err;
  spit(p, "{\"v\":1,\"sum\":\"0\"}\n");
  TuningDb db;
  std::vector<std::string> w;
  EXPECT_FALSE(read(p, db, err, w));
  EXPECT_NE(err.find("field 'kernel' missing or not a string"), std::string::npos) << err;
  std::string line = recordToLine(rec("conv a", 2.0));
  size_t at = line.find("\"tileC\":8");
  ASSERT_NE(at, std::string::npos);
  line.replace(at, 9, "\"tileC\":999");
  spit(p, line + "\n");
  TuningDb db2;
  EXPECT_FALSE(read(p, db2, err, w));
  EXPECT_NE(err.find("field 'tileC' out of range (999)"), std::string::npos) << err;
  unlink(p.c_str());
}

TEST(TuningDb, AutoschedulerRecordRoundTrips) {
  std::string p = tempPath(), err;
  TuningRecord r = rec("conv a", 1.0);
  r.schedule = Schedule();
  r.schedule.autoBatch = 8;
  ASSERT_TRUE(appendTuningRecord(p, r, err)) << err;
  EXPECT_NE(slurp(p).find("\"auto\":8"), std::string::npos);
  EXPECT_EQ(recordToLine(rec("conv a", 1.0)).find("auto"), std::string::npos);  // absent when unset
  TuningDb db;
  std::vector<std::string> w;
  ASSERT_TRUE(read(p, db, err, w)) << err;
  EXPECT_EQ(db.best.at({"conv a", r.target}).schedule.autoBatch, 8);
  unlink(p.c_str());
}

TEST(TuningDb, OtherCnncVersionIsIgnoredWithAWarning) {
  std::string p = tempPath(), err;
  ASSERT_TRUE(appendTuningRecord(p, rec("conv a", 2.0), err));
  TuningDb db;
  std::vector<std::string> w;
  ASSERT_TRUE(read(p, db, err, w, "2.0")) << err;
  EXPECT_TRUE(db.best.empty());
  EXPECT_EQ(db.otherVersion, 1);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("ignoring 1 record(s) measured by another cnnc version"), std::string::npos) << w[0];
  unlink(p.c_str());
}

TEST(TuningDb, TornLastLineIsSkippedThenCutOffByTheNextAppend) {
  std::string p = tempPath(), err;
  ASSERT_TRUE(appendTuningRecord(p, rec("conv a", 2.0), err));
  std::string whole = recordToLine(rec("conv b", 1.0));
  spit(p, slurp(p) + whole.substr(0, whole.size() / 2));  // killed mid-write
  TuningDb db;
  std::vector<std::string> w;
  ASSERT_TRUE(read(p, db, err, w)) << err;
  EXPECT_EQ(db.records.size(), 1u);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find(":2: skipping an incomplete last record"), std::string::npos) << w[0];
  ASSERT_TRUE(appendTuningRecord(p, rec("conv c", 3.0), err)) << err;
  TuningDb db2;
  std::vector<std::string> w2;
  ASSERT_TRUE(read(p, db2, err, w2)) << err;
  EXPECT_TRUE(w2.empty());
  ASSERT_EQ(db2.records.size(), 2u);
  EXPECT_EQ(db2.records[1].kernel, "conv c");
  unlink(p.c_str());
}

TEST(TuningDb, ApplyReplacesScheduleOfKnownKernelsOnly) {
  KernelSpec a = convSpec(KernelKind::Conv, {16, 8, 8}, {16, 8, 8}, 3);
  KernelSpec b = a;
  b.out = {32, 8, 8};
  b.schedule = defaultSchedule(b);
  TuningDb db;
  TuningRecord r = rec(a.key(), 1.0, 5);
  db.best[{a.key(), r.target}] = r;
  std::vector<KernelSpec> specs{a, b};
  EXPECT_EQ(applyTuning(specs, r.target, db), 1);
  EXPECT_EQ(specs[0].schedule.tileC, 5);
  EXPECT_EQ(specs[1].schedule.str(), b.schedule.str());
  EXPECT_EQ(applyTuning(specs, "arm-64-linux", db), 0);  // records are per target
}

TEST(TuneCandidates, DefaultFirstAllDistinctRegisterTilesFit) {
  KernelSpec k = convSpec(KernelKind::Conv, {64, 56, 56}, {64, 56, 56}, 3);
  ASSERT_TRUE(tunable(k));
  auto cs = scheduleCandidates(k, true);
  EXPECT_EQ(scheduleCandidates(k).size() + 1, cs.size());  // Adams2019 only when asked for
  ASSERT_GT(cs.size(), 10u);
  EXPECT_EQ(cs[0].str(), k.schedule.str());
  // Asked for by name, so measured right after the default even when the budget is short.
  EXPECT_EQ(cs[1].autoBatch, 1);
  std::set<std::string> seen;
  bool wino = false, chan = false, adams = false;
  int orders[3] = {0, 0, 0}, chanOrders[3] = {0, 0, 0};
  for (const auto& s : cs) {
    EXPECT_TRUE(seen.insert(s.str()).second) << s.str();
    // Loop orders: three for vectors along x, two for channel vectors (blocks outermost or inside
    // row strips), none for Winograd.
    if (s.winograd) EXPECT_EQ(s.order, 0) << s.str();
    else if (s.chanVec) ++chanOrders[s.order];
    else if (!s.autoBatch) ++orders[s.order];
    if (s.autoBatch) {
      adams = true;
    } else if (s.winograd) {
      wino = true;
      EXPECT_LE(s.tileX * s.tileC, 24) << s.str();
    } else if (s.chanVec) {
      chan = true;
      EXPECT_LE(s.tileX * s.tileY * s.chanVec, 28) << s.str();
      // A padded conv: whole tiles cover the 56 columns and rows with at most a tenth more.
      EXPECT_LE((56 + s.tileX - 1) / s.tileX * s.tileX, 61) << s.str();
      EXPECT_LE((56 + s.tileY - 1) / s.tileY * s.tileY, 61) << s.str();
    } else {
      EXPECT_LE(s.tileX * s.tileY * s.tileC, 24) << s.str();
    }
  }
  EXPECT_TRUE(wino);
  EXPECT_TRUE(chan);
  EXPECT_TRUE(adams);
  // Every x-vector tile in each of the three loop orders (the default's among them).
  EXPECT_GT(orders[0], 10);
  EXPECT_EQ(orders[1], orders[2]);
  EXPECT_GE(orders[0], orders[1]);
  EXPECT_GT(chanOrders[0], 5);
  EXPECT_EQ(chanOrders[0], chanOrders[1]);
  EXPECT_EQ(chanOrders[2], 0);
  // The default order: channel tiles outermost while an image's input fits in 1 MiB (64 x 56 x 56
  // floats: 0.8 MiB), inside the row strips past it (256 channels: 3.2 MiB); not for the channel-
  // vector family (7x7 rows) nor a single channel tile.
  EXPECT_EQ(k.schedule.order, 0) << k.schedule.str();
  KernelSpec big = k;
  big.in = {256, 56, 56};
  big.attrs.kernel[0] = big.attrs.kernel[1] = 1;
  big.attrs.pad[0] = big.attrs.pad[1] = 0;
  EXPECT_EQ(defaultSchedule(big).order, 1) << defaultSchedule(big).str();
  big.out = {8, 56, 56};
  EXPECT_EQ(defaultSchedule(big).order, 0) << defaultSchedule(big).str();
  big.in = {2048, 7, 7};
  big.out = {512, 7, 7};
  EXPECT_EQ(defaultSchedule(big).chanVec, 2);
  EXPECT_EQ(defaultSchedule(big).order, 0);
  // 1x1 convs at rows narrower than 16 tile up to 14 pixels (14 x 1 at 14x14, 13 x 1 at 13 columns);
  // 3x3 convs there, and 1x1 convs at 28x28 outputs, up to 8.
  big.in = {1024, 14, 14};
  big.out = {256, 14, 14};
  Schedule p = defaultSchedule(big);
  EXPECT_EQ(p.chanVec, 2) << p.str();
  EXPECT_EQ(p.tileX * p.tileY, 14) << p.str();
  big.out = {256, 9, 13};
  EXPECT_EQ(defaultSchedule(big).tileX, 13) << defaultSchedule(big).str();
  EXPECT_EQ(defaultSchedule(big).tileY, 1) << defaultSchedule(big).str();
  big.out = {256, 14, 14};
  big.attrs.kernel[0] = big.attrs.kernel[1] = 3;
  big.attrs.pad[0] = big.attrs.pad[1] = 1;
  EXPECT_EQ(defaultSchedule(big).tileX * defaultSchedule(big).tileY, 7) << defaultSchedule(big).str();
  big.attrs.kernel[0] = big.attrs.kernel[1] = 1;
  big.attrs.pad[0] = big.attrs.pad[1] = 0;
  big.attrs.stride[0] = big.attrs.stride[1] = 2;
  big.in = {256, 56, 56};
  big.out = {512, 28, 28};
  EXPECT_EQ(defaultSchedule(big).tileX * defaultSchedule(big).tileY, 7) << defaultSchedule(big).str();
  big.attrs.stride[0] = big.attrs.stride[1] = 1;
  // Forward convs whose channels are not a multiple of 16 take channel vectors where padding the
  // last block costs at most an eighth (440 -> 448), not 40 -> 48; input gradients and AVX2 keep
  // the old rule.
  big.in = {440, 7, 7};
  big.out = {440, 7, 7};
  EXPECT_EQ(defaultSchedule(big).chanVec, 2) << defaultSchedule(big).str();
  EXPECT_EQ(defaultSchedule(big, 8).chanVec, 0) << defaultSchedule(big, 8).str();
  big.kind = KernelKind::ConvBackData;  // stride 1: padded too; strided (phases): not
  EXPECT_EQ(defaultSchedule(big).chanVec, 2) << defaultSchedule(big).str();
  big.attrs.stride[0] = big.attrs.stride[1] = 2;
  big.in = {440, 4, 4};
  EXPECT_EQ(defaultSchedule(big).chanVec, 0) << defaultSchedule(big).str();
  big.attrs.stride[0] = big.attrs.stride[1] = 1;
  big.kind = KernelKind::Conv;
  big.in = {144, 28, 28};
  big.out = {40, 28, 28};
  EXPECT_EQ(defaultSchedule(big).chanVec, 0) << defaultSchedule(big).str();
  // 1x1 stride-1 convs with rows of 16-31 keep x vectors of 12 channels x 2 rows on AVX-512 (the
  // order by the input's size); 3x3 convs there, AVX2, and narrow outputs take channel vectors.
  big.in = {128, 28, 28};
  big.out = {512, 28, 28};
  Schedule r = defaultSchedule(big);
  EXPECT_EQ(r.chanVec, 0) << r.str();
  EXPECT_EQ(r.tileC, 12) << r.str();
  EXPECT_EQ(r.tileY, 2) << r.str();
  EXPECT_EQ(r.order, 0) << r.str();
  big.in = {512, 28, 28};
  big.out = {128, 28, 28};
  EXPECT_EQ(defaultSchedule(big).order, 1) << defaultSchedule(big).str();
  EXPECT_EQ(defaultSchedule(big, 8).chanVec, 2) << defaultSchedule(big, 8).str();
  big.out = {32, 28, 28};
  EXPECT_GT(defaultSchedule(big).chanVec, 0) << defaultSchedule(big).str();
  big.out = {128, 28, 28};
  big.attrs.kernel[0] = big.attrs.kernel[1] = 3;
  big.attrs.pad[0] = big.attrs.pad[1] = 1;
  EXPECT_EQ(defaultSchedule(big).chanVec, 2) << defaultSchedule(big).str();
  // 3x3 convs at rows of 32-47 take Winograd only while its weights (16 x C x O floats) are within
  // 1 MiB; past that, channel vectors (U-Net's 32x32 layers), forward and input gradient; at 56x56
  // Winograd either way; AVX2 keeps Winograd.
  big.in = {512, 32, 32};
  big.out = {256, 32, 32};
  Schedule w = defaultSchedule(big);
  EXPECT_EQ(w.winograd, 0) << w.str();
  EXPECT_EQ(w.chanVec, 2) << w.str();
  EXPECT_EQ(w.tileX * w.tileY, 8) << w.str();
  EXPECT_EQ(defaultSchedule(big, 8).winograd, 2) << defaultSchedule(big, 8).str();
  big.in = {128, 32, 32};
  big.out = {128, 32, 32};
  EXPECT_EQ(defaultSchedule(big).winograd, 2) << defaultSchedule(big).str();
  big.in = {256, 56, 56};
  big.out = {256, 56, 56};
  EXPECT_EQ(defaultSchedule(big).winograd, 2) << defaultSchedule(big).str();
  big.in = {512, 32, 32};
  big.out = {256, 32, 32};
  big.kind = KernelKind::ConvBackData;
  EXPECT_EQ(defaultSchedule(big).winograd, 0) << defaultSchedule(big).str();
  EXPECT_EQ(defaultSchedule(big).chanVec, 2) << defaultSchedule(big).str();
  big.kind = KernelKind::Conv;
  // A strided input gradient is split by phase: its candidates schedule every phase (Schedule::phase)
  // as a conv of the phase grid, and fit the smaller phases of an odd size (29x29 at stride 2: grids
  // of 15 and 14) -- channel-vector tiles dividing both, x-vector tiles no wider than the smaller.
  KernelSpec d = k;
  d.kind = KernelKind::ConvBackData;
  d.attrs.stride[0] = d.attrs.stride[1] = 2;
  d.in = {128, 15, 15};
  d.out = {64, 29, 29};
  d.schedule = defaultSchedule(d);
  ASSERT_TRUE(tunable(d));
  auto ds = scheduleCandidates(d);
  ASSERT_GT(ds.size(), 10u);
  EXPECT_EQ(ds[0].str(), d.schedule.str());
  EXPECT_EQ(ds[0].phase, 0);
  bool dchan = false;
  for (size_t i = 1; i < ds.size(); ++i) {
    const Schedule& s = ds[i];
    EXPECT_EQ(s.phase, 1) << s.str();
    EXPECT_EQ(s.winograd, 0) << s.str();
    if (s.chanVec) {
      dchan = true;
      EXPECT_EQ(15 % s.tileX + 14 % s.tileX + 15 % s.tileY + 14 % s.tileY, 0) << s.str();
    } else {
      EXPECT_LE(s.vec * s.tileX, 14) << s.str();
      EXPECT_LE(s.tileY, 14) << s.str();
    }
  }
  EXPECT_TRUE(dchan);
  d.attrs.dilation[0] = d.attrs.dilation[1] = 2;  // strided and dilated: over upsampled dy, not tuned
  EXPECT_FALSE(tunable(d));
}

// Channel blocks that do not divide the channels (the last one padded): candidates of a forward
// conv or a stride-1 input gradient while the padding is at most a quarter (440 in blocks of 16
// and 32), never of a strided input gradient (its phases' blocks are not padded).
TEST(TuneCandidates, PaddedChannelBlocksNotForPhases) {
  KernelSpec k = convSpec(KernelKind::Conv, {440, 7, 7}, {440, 7, 7}, 1);
  EXPECT_EQ(candidateBlocks(k), (std::set<int>{16, 32}));
  k = convSpec(KernelKind::Conv, {440, 7, 7}, {40, 7, 7}, 1);  // 48 pads a fifth: allowed; 64 would pad three fifths
  EXPECT_EQ(candidateBlocks(k), (std::set<int>{16}));
  KernelSpec d = convSpec(KernelKind::ConvBackData, {440, 7, 7}, {440, 7, 7}, 3);
  ASSERT_TRUE(tunable(d));
  EXPECT_EQ(d.schedule.chanVec, 2) << d.schedule.str();
  EXPECT_EQ(candidateBlocks(d), (std::set<int>{16, 32}));
  d = convSpec(KernelKind::ConvBackData, {440, 4, 4}, {440, 7, 7}, 3, 2);
  ASSERT_TRUE(tunable(d));
  for (const Schedule& s : scheduleCandidates(d)) EXPECT_EQ(s.chanVec, 0) << s.str();
}

// Channel-vector forward convs walk their blocks inside row strips (Schedule::order 1) where an
// image's source is at least 768 KiB and twice the weights: ResNet-18's strided 64 -> 128 3x3 conv
// and its 1x1 downsample, not a 128-channel 3x3 conv at 24x24 (weights 590 KiB, image 338 KiB;
// ResNet-18's own at 28x28 take Winograd on AVX-512). Input gradients keep their blocks outermost,
// default and candidates.
TEST(TuneCandidates, ChannelBlocksInStripsWhereTheImageOutweighsTheWeights) {
  KernelSpec k = convSpec(KernelKind::Conv, {64, 56, 56}, {128, 28, 28}, 3, 2);
  ASSERT_EQ(k.schedule.chanVec, 2) << k.schedule.str();
  EXPECT_EQ(k.schedule.order, 1) << k.schedule.str();
  k = convSpec(KernelKind::Conv, {64, 56, 56}, {128, 28, 28}, 1, 2);
  EXPECT_EQ(k.schedule.order, 1) << k.schedule.str();
  k = convSpec(KernelKind::Conv, {96, 24, 24}, {96, 24, 24}, 3);
  ASSERT_EQ(k.schedule.chanVec, 2) << k.schedule.str();
  EXPECT_EQ(k.schedule.winograd, 0) << k.schedule.str();
  EXPECT_EQ(k.schedule.order, 0) << k.schedule.str();
  EXPECT_EQ(convSpec(KernelKind::Conv, {128, 28, 28}, {128, 28, 28}, 3).schedule.winograd, 2);
  k = convSpec(KernelKind::Conv, {256, 28, 28}, {256, 14, 14}, 1, 2);  // 784 KiB against 256 KiB of weights
  EXPECT_EQ(k.schedule.order, 1) << k.schedule.str();
  k = convSpec(KernelKind::Conv, {128, 28, 28}, {256, 14, 14}, 1, 2);  // 392 KiB
  EXPECT_EQ(k.schedule.order, 0) << k.schedule.str();
  KernelSpec d = convSpec(KernelKind::ConvBackData, {96, 24, 24}, {96, 24, 24}, 3);
  ASSERT_EQ(d.schedule.chanVec, 2) << d.schedule.str();
  EXPECT_EQ(d.schedule.order, 0);
  for (const Schedule& s : scheduleCandidates(d))
    if (s.chanVec && !s.winograd) EXPECT_EQ(s.order, 0) << s.str();
}

// 3x3 stride-1 convs and input gradients at rows of 14 to 27 with 128 or more channels in and out
// take Winograd with channel vectors (2 vectors x a row of up to 8 tiles, images inside each block
// of channels); 64 channels, 32 outputs and 7x7 planes keep the direct form. The tuner's candidates
// of that form keep within the registers and whole blocks of channels.
TEST(TuneCandidates, WinogradChannelVectorsOnSmallPlanes) {
  for (KernelKind kind : {KernelKind::Conv, KernelKind::ConvBackData}) {
    KernelSpec k = convSpec(kind, {256, 14, 14}, {256, 14, 14}, 3);
    EXPECT_EQ(k.schedule.winograd, 2) << k.schedule.str();
    EXPECT_EQ(k.schedule.chanVec, 2) << k.schedule.str();
    EXPECT_EQ(k.schedule.tileX, 7) << k.schedule.str();
    EXPECT_EQ(k.schedule.order, 1) << k.schedule.str();
  }
  EXPECT_EQ(convSpec(KernelKind::Conv, {128, 25, 27}, {128, 25, 27}, 3).schedule.tileX, 7);  // 14 tiles per row
  EXPECT_EQ(convSpec(KernelKind::Conv, {128, 16, 16}, {128, 16, 16}, 3).schedule.tileX, 8);
  EXPECT_EQ(convSpec(KernelKind::Conv, {64, 16, 16}, {64, 16, 16}, 3).schedule.winograd, 0);
  EXPECT_EQ(convSpec(KernelKind::Conv, {128, 14, 14}, {32, 14, 14}, 3).schedule.winograd, 0);
  EXPECT_EQ(convSpec(KernelKind::Conv, {512, 7, 7}, {512, 7, 7}, 3).schedule.winograd, 0);
  KernelSpec k = convSpec(KernelKind::Conv, {256, 14, 14}, {256, 14, 14}, 3);
  auto cs = scheduleCandidates(k);
  EXPECT_EQ(cs[0].str(), k.schedule.str());
  std::set<std::string> seen;
  int wcv = 0;
  for (const Schedule& s : cs) {
    EXPECT_TRUE(seen.insert(s.str()).second) << s.str();
    if (!s.winograd || !s.chanVec) continue;
    ++wcv;
    EXPECT_LE(s.tileX * s.tileY * s.chanVec, 28) << s.str();
    EXPECT_EQ(256 % (16 * s.chanVec), 0) << s.str();
    EXPECT_TRUE(s.task == 0 || s.task == 4 || s.task == 8 || s.task == 16) << s.str();
  }
  EXPECT_GT(wcv, 10);
  // Their weight gradients: the Winograd form whose tasks are the 16 products (order 1), where a
  // chunk's sums (16 x 256 x 256 floats) are past L2; at 7x7 the direct form.
  Schedule ws = weightGradSpec({256, 14, 14}, {256, 14, 14}).schedule;
  EXPECT_EQ(ws.winograd, 2) << ws.str();
  EXPECT_EQ(ws.order, 1) << ws.str();
  EXPECT_EQ(ws.tileY, 7) << ws.str();
  EXPECT_EQ(weightGradSpec({512, 7, 7}, {512, 7, 7}).schedule.winograd, 0);
}

// Channel-vector tiles need not divide the image: ResNet-18's 13x13 layers (3x200x200 input) take
// 7x1 tiles over 14 columns, not 1x1, and SqueezeNet's unpadded 1x1 convs at 27x27 7x1 tiles over
// 28, not 3x1; strided input gradients' phases keep divisors, defaults and candidates.
TEST(TuneCandidates, ChannelVectorTilesRoundUpExceptInPhases) {
  KernelSpec k = convSpec(KernelKind::Conv, {256, 13, 13}, {256, 13, 13}, 3);
  ASSERT_EQ(k.schedule.chanVec, 2) << k.schedule.str();
  EXPECT_EQ(k.schedule.tileX, 7) << k.schedule.str();
  EXPECT_EQ(k.schedule.tileY, 1) << k.schedule.str();
  EXPECT_TRUE(chanVecTileFits(k, 13, 7));
  EXPECT_FALSE(chanVecTileFits(k, 13, 8));  // 16 columns: a fifth more
  KernelSpec d = convSpec(KernelKind::ConvBackData, {256, 13, 13}, {256, 13, 13}, 3);
  EXPECT_EQ(d.schedule.tileX, 7) << d.schedule.str();
  KernelSpec p = convSpec(KernelKind::Conv, {256, 27, 27}, {32, 27, 27}, 1);  // read in place, clamped
  ASSERT_EQ(p.schedule.chanVec, 2) << p.schedule.str();
  EXPECT_EQ(p.schedule.tileX, 7) << p.schedule.str();
  EXPECT_TRUE(chanVecTileFits(p, 27, 7));
  KernelSpec ph = convSpec(KernelKind::ConvBackData, {256, 13, 13}, {256, 26, 26}, 3, 2);
  ASSERT_TRUE(usesPhases(ph));
  EXPECT_FALSE(chanVecTileFits(ph, 13, 7));
  for (const Schedule& s : scheduleCandidates(ph))  // the phases' schedules, for 13 x 13 grids
    if (s.chanVec && s.phase) EXPECT_TRUE(13 % s.tileX == 0 && 13 % s.tileY == 0) << s.str();
}

// Weight gradients are tuned too: their register tile (vectors of output channels x tap rows x
// input channels) varies within the register budget, input channels dividing C, and vector blocks
// dividing O; the default (conv.cpp's own tile) comes first.
TEST(TuneCandidates, WeightGradientTilesVaryWithinTheRegisters) {
  for (int lanes : {16, 8}) {
    KernelSpec k;
    k.kind = KernelKind::ConvBackWeight;
    k.in = {96, 14, 14};
    k.out = {64, 96, 3, 3};
    k.extraIns = {{64, 14, 14}};
    k.attrs.kernel[0] = k.attrs.kernel[1] = 3;
    k.attrs.pad[0] = k.attrs.pad[1] = 1;
    k.schedule = defaultSchedule(k, lanes);
    ASSERT_TRUE(tunable(k));
    auto cs = scheduleCandidates(k);
    ASSERT_GT(cs.size(), 8u) << lanes;
    EXPECT_EQ(cs[0].str(), k.schedule.str());
    EXPECT_EQ(cs[0].chanVec, 0);  // the default keeps conv.cpp's tile
    std::set<std::string> seen;
    int winograd = 0;
    for (size_t i = 1; i < cs.size(); ++i) {
      const Schedule& s = cs[i];
      EXPECT_TRUE(seen.insert(s.str()).second) << s.str();
      EXPECT_LE(s.vec, lanes) << s.str();
      if (s.winograd) {  // conv_winograd.cpp's tile: tileX vectors of 16 outputs x tileC inputs, tileY of 7 tile rows
        ++winograd;
        EXPECT_EQ(s.winograd, 2);
        EXPECT_EQ(s.vec, 16) << s.str();
        EXPECT_EQ(s.chanVec, 0) << s.str();
        EXPECT_EQ(64 % (16 * s.tileX), 0) << s.str();
        EXPECT_EQ(96 % s.tileC, 0) << s.str();
        EXPECT_LE(s.tileX * s.tileC, 24) << s.str();
        EXPECT_EQ(7 % s.tileY, 0) << s.str();
        EXPECT_TRUE(s.order == 0 || s.tileY == 7) << s.str();  // the tasks form takes whole images
        continue;
      }
      EXPECT_TRUE(s.tileY == 1 || s.tileY == 3) << s.str();
      EXPECT_EQ(96 % s.tileC, 0) << s.str();
      EXPECT_TRUE(s.chanVec == 1 || 64 % (s.vec * s.chanVec) == 0) << s.str();
      EXPECT_LE(s.chanVec * 3 * s.tileY * s.tileC, (lanes == 8 ? 12 : 24) + 4) << s.str();
    }
    // The Winograd form is searched on AVX-512 only (3x3, stride 1, padding 1, ungrouped).
    if (lanes == 16) EXPECT_GT(winograd, 4);
    else EXPECT_EQ(winograd, 0);
  }
  KernelSpec flat;  // a depthwise weight gradient walks flat planes: nothing to tune
  flat.kind = KernelKind::ConvBackWeight;
  flat.schedule.flat = 1;
  flat.extraIns = {{8, 7, 7}};
  EXPECT_FALSE(tunable(flat));
}

// Depthwise forward convs and stride-1 input gradients default to the direct form on AVX-512
// (conv_depthwise.cpp), 8-lane vectors, 4 on rows of 4 to 7; AVX2, strided input gradients and rows
// narrower than 4 keep theirs.
TEST(DefaultSchedule, DepthwiseDirectForm) {
  auto spec = [](KernelKind kind, int64_t W, int stride) {
    KernelSpec k;
    k.kind = kind;
    k.in = {96, W, W};
    k.out = {96, W / stride, W / stride};
    k.attrs.kernel[0] = k.attrs.kernel[1] = 3;
    k.attrs.pad[0] = k.attrs.pad[1] = 1;
    k.attrs.stride[0] = k.attrs.stride[1] = stride;
    k.attrs.groups = 96;
    return k;
  };
  for (auto [W, stride, vec] : {std::tuple{112, 2, 8}, {112, 1, 8}, {28, 1, 8}, {14, 2, 4}, {7, 1, 4}}) {
    Schedule s = defaultSchedule(spec(KernelKind::Conv, W, stride), 16);
    EXPECT_EQ(s.flat, 4) << W << " " << stride;
    EXPECT_EQ(s.vec, vec) << W << " " << stride;
  }
  EXPECT_NE(defaultSchedule(spec(KernelKind::Conv, 3, 1), 16).flat, 4);  // rows of 3
  EXPECT_NE(defaultSchedule(spec(KernelKind::Conv, 112, 2), 8).flat, 4);
  EXPECT_EQ(defaultSchedule(spec(KernelKind::ConvBackData, 112, 1), 16).flat, 4);  // stride-1 input gradients too
  EXPECT_NE(defaultSchedule(spec(KernelKind::ConvBackData, 112, 2), 16).flat, 4);  // strided ones run by phase
}

// Depthwise convs are tuned: rows of x vectors (tx x ty x tc accumulators within the registers) and,
// where the plane can be walked flat (stride 1, "same"), the flat walk with its stores by row or
// fused, its vector width and its channels per task; the flat input gradient likewise; on AVX-512
// also the direct form. A strided depthwise conv has no flat walk, and its input gradient (split by
// phase) is not tuned.
TEST(TuneCandidates, DepthwiseRowsAndFlatWalks) {
  for (int lanes : {16, 8}) {
    KernelSpec k;
    k.kind = KernelKind::Conv;
    k.in = k.out = {96, 14, 14};
    k.attrs.kernel[0] = k.attrs.kernel[1] = 3;
    k.attrs.pad[0] = k.attrs.pad[1] = 1;
    k.attrs.groups = 96;
    k.schedule = defaultSchedule(k, lanes);
    EXPECT_EQ(k.schedule.flat, lanes == 16 ? 4 : 1);  // AVX-512: direct; AVX2: 14 < 16, the flat walk
    ASSERT_TRUE(tunable(k));
    auto cs = scheduleCandidates(k);
    EXPECT_EQ(cs[0].str(), k.schedule.str());
    std::set<std::string> seen;
    std::set<int> flats, tasks;
    for (const auto& s : cs) {
      EXPECT_TRUE(seen.insert(s.str()).second) << s.str();
      EXPECT_LE(s.vec, std::max(lanes, 8)) << s.str();
      flats.insert(s.flat);
      if (s.flat) {
        EXPECT_LE(s.task, 96) << s.str();
        tasks.insert(s.task);
      } else {
        EXPECT_EQ(s.chanVec, 0) << s.str();  // channel vectors would gather across planes
        EXPECT_LE(s.tileX * s.tileY * s.tileC * std::max(1, s.vec / lanes), lanes == 8 ? 12 : 24) << s.str();
      }
    }
    // 4, the direct form, on AVX-512 only (its row ends are masked loads), and its default there; 1
    // (the flat walk's own rule) is AVX2's default.
    EXPECT_EQ(flats, lanes == 16 ? (std::set<int>{0, 2, 3, 4}) : (std::set<int>{0, 1, 2, 3})) << lanes;
    EXPECT_GE(tasks.size(), 6u) << lanes;
    KernelSpec dx = k;  // its input gradient: dy [96,14,14] -> dx
    dx.kind = KernelKind::ConvBackData;
    EXPECT_TRUE(tunable(dx));
    KernelSpec s2 = k;
    s2.attrs.stride[0] = s2.attrs.stride[1] = 2;
    s2.out = {96, 7, 7};
    s2.schedule = defaultSchedule(s2, lanes);
    ASSERT_TRUE(tunable(s2));
    for (const auto& s : scheduleCandidates(s2)) EXPECT_TRUE(s.flat == 0 || s.flat == 4) << s.str();  // no flat walk: strided
    KernelSpec s2dx = s2;
    s2dx.kind = KernelKind::ConvBackData;
    s2dx.in = {96, 7, 7};
    s2dx.out = {96, 14, 14};
    EXPECT_FALSE(tunable(s2dx));
  }
  Schedule s;
  s.flat = 3, s.task = 8;
  EXPECT_NE(s.str().find("flat=3 task=8"), std::string::npos) << s.str();
}

// Grouped convs that are not depthwise (RegNet's groups of 8 channels) are tuned with row vectors
// only: a vector of output channels would span groups and gather its inputs.
TEST(TuneCandidates, GroupedRowTilesAndWeightVectorsInsideAGroup) {
  KernelSpec k = convSpec(KernelKind::Conv, {104, 28, 28}, {104, 28, 28}, 3);
  k.attrs.groups = 13;
  k.schedule = defaultSchedule(k, 16);
  ASSERT_TRUE(tunable(k));
  auto cs = scheduleCandidates(k);
  EXPECT_EQ(cs[0].str(), k.schedule.str());
  EXPECT_GT(cs.size(), 20u);
  std::set<int> tiles, orders;
  for (const auto& s : cs) {
    EXPECT_EQ(s.chanVec, 0) << s.str();
    EXPECT_EQ(s.winograd, 0) << s.str();
    tiles.insert(s.tileC);
    orders.insert(s.order);
  }
  EXPECT_EQ(tiles, (std::set<int>{4, 8, 12, 16}));
  EXPECT_EQ(orders, (std::set<int>{0, 1, 2}));
  // The input gradient likewise; the weight gradient's tiles keep each vector inside a group of 8.
  KernelSpec dx = convSpec(KernelKind::ConvBackData, {104, 28, 28}, {104, 28, 28}, 3);
  dx.attrs.groups = 13;
  dx.schedule = defaultSchedule(dx, 16);
  ASSERT_TRUE(tunable(dx));
  for (const auto& s : scheduleCandidates(dx)) EXPECT_EQ(s.chanVec, 0) << s.str();
  KernelSpec dw = weightGradSpec({104, 28, 28}, {104, 28, 28}, 13);
  ASSERT_TRUE(tunable(dw));
  auto ws = scheduleCandidates(dw);
  EXPECT_GT(ws.size(), 5u);
  for (size_t i = 1; i < ws.size(); ++i) {
    EXPECT_EQ(ws[i].vec, 8) << ws[i].str();
    EXPECT_EQ(8 % ws[i].tileC, 0) << ws[i].str();
  }
}

// Grouped weight gradients take the tiled form, with vectors of output channels inside one group,
// where the group's channel count is a multiple of 4 (RegNet's 8); other grouped and depthwise ones
// keep the flat walk.
TEST(DefaultSchedules, GroupedWeightGradientsTiledWithinAGroup) {
  auto wgrad = [](int C, int O, int groups, int lanes) {
    KernelSpec k;
    k.kind = KernelKind::ConvBackWeight;
    k.in = {C, 14, 14};
    k.extraIns = {{O, 14, 14}};
    k.out = {O, C / groups, 3, 3};
    k.attrs.kernel[0] = k.attrs.kernel[1] = 3;
    k.attrs.pad[0] = k.attrs.pad[1] = 1;
    k.attrs.groups = groups;
    k.schedule = defaultSchedule(k, lanes);
    return k;
  };
  KernelSpec regnet = wgrad(104, 104, 13, 16);  // 8 channels per group
  EXPECT_EQ(groupedWeightVec(regnet, 16), 8);
  EXPECT_EQ(regnet.schedule.flat, 0);
  EXPECT_EQ(groupedWeightVec(wgrad(64, 64, 2, 16), 16), 16);
  EXPECT_EQ(groupedWeightVec(wgrad(64, 64, 2, 8), 8), 8);   // AVX2: one register
  EXPECT_EQ(groupedWeightVec(wgrad(20, 20, 5, 16), 16), 4);
  KernelSpec odd = wgrad(20, 20, 4, 16);  // 5 channels per group: no vector fits
  EXPECT_EQ(groupedWeightVec(odd, 16), 0);
  EXPECT_EQ(odd.schedule.flat, 1);
  KernelSpec dw = wgrad(96, 96, 96, 16);  // depthwise
  EXPECT_EQ(groupedWeightVec(dw, 16), 0);
  EXPECT_EQ(dw.schedule.flat, 1);
  EXPECT_EQ(groupedWeightVec(wgrad(96, 96, 1, 16), 16), 0);  // ungrouped: its own tile
}

// Strided max pools whose windows reach past the input (padding or ceil mode) take 4-wide vectors
// (their reads are clamped, one float at a time); pools whose windows tile the input, and stride-1
// ones, keep full vectors.
TEST(DefaultSchedules, StridedMaxPoolsPastTheEdgeTakeFourWideVectors) {
  auto pool = [](int k, int s, int pad, bool ceil, int W, int Wo) {
    KernelSpec p;
    p.kind = KernelKind::MaxPool;
    p.in = {64, W, W};
    p.out = {64, Wo, Wo};
    p.attrs.kernel[0] = p.attrs.kernel[1] = k;
    p.attrs.stride[0] = p.attrs.stride[1] = s;
    p.attrs.pad[0] = p.attrs.pad[1] = pad;
    p.attrs.ceil = ceil;
    return defaultSchedule(p, 16);
  };
  EXPECT_EQ(pool(3, 2, 1, false, 112, 56).vec, 4);   // ResNet's stem pool
  EXPECT_EQ(pool(3, 2, 0, true, 112, 56).vec, 4);    // GoogLeNet's, ceil mode
  EXPECT_EQ(pool(2, 2, 0, false, 112, 56).vec, 16);  // windows tile the input
  EXPECT_EQ(pool(3, 1, 1, false, 56, 56).vec, 16);   // stride 1
}

// Batch norms, activations, adds and pools (scheduleSpatial) are tuned: vectors of 4 to 32 floats
// along the row or the whole plane, never wider than either, and tasks of 1 to all channels of an
// image; their defaults leave both choices off. Kinds without these choices are not tuned.
TEST(TuneCandidates, MemoryBoundKindsVectorsPlanesTasks) {
  KernelSpec k;
  k.kind = KernelKind::BNApply;
  k.in = k.out = {96, 7, 7};
  k.schedule = defaultSchedule(k, 16);
  EXPECT_EQ(k.schedule.flat, 0);
  EXPECT_EQ(k.schedule.task, 0);
  ASSERT_TRUE(spatialTunable(k));
  ASSERT_TRUE(tunable(k));
  auto cs = scheduleCandidates(k);
  EXPECT_EQ(cs[0].str(), k.schedule.str());
  std::set<int> vecs, tasks;
  bool flatWide = false;
  for (const auto& s : cs) {
    EXPECT_LE(s.vec, s.flat ? 49 : 7) << s.str();
    flatWide |= s.flat && s.vec == 32;
    vecs.insert(s.vec);
    tasks.insert(s.task);
  }
  EXPECT_TRUE(flatWide);
  EXPECT_EQ(vecs, (std::set<int>{4, 8, 16, 32}));
  EXPECT_EQ(tasks, (std::set<int>{0, 1, 4, 16, 64, 96}));
  for (int lanes : {8, 4}) {
    k.schedule = defaultSchedule(k, lanes);
    for (const auto& s : scheduleCandidates(k)) EXPECT_LE(s.vec, lanes * 2) << lanes << " " << s.str();
  }
  KernelSpec flatIn = k;  // a flat tensor (after flatten): not this family
  flatIn.in = flatIn.out = {96};
  EXPECT_FALSE(spatialTunable(flatIn));
  KernelSpec stats = k;
  stats.kind = KernelKind::BNStats;
  EXPECT_FALSE(tunable(stats));
  for (KernelKind kind : {KernelKind::BNBackData, KernelKind::Affine, KernelKind::ActGrad, KernelKind::Add, KernelKind::MaxPool, KernelKind::AvgPool}) {
    KernelSpec o = k;
    o.kind = kind;
    EXPECT_TRUE(spatialTunable(o)) << kernelKindName(kind);
  }
}

// Linears: 4 or 8 images per register tile of the batched forms, and 4 to 64 outputs per task of the
// forward's row-by-row form (never more than its outputs); the default first.
TEST(TuneCandidates, LinearImagesPerTileAndOutputsPerTask) {
  KernelSpec k;
  k.kind = KernelKind::Linear;
  k.in = {400};
  k.out = {40};
  k.schedule = defaultSchedule(k, 16);
  ASSERT_TRUE(tunable(k));
  auto cs = scheduleCandidates(k);
  EXPECT_EQ(cs[0].str(), k.schedule.str());
  std::set<std::pair<int, int>> seen;
  for (const auto& s : cs) {
    EXPECT_LE(s.task, 40) << s.str();
    EXPECT_TRUE(s.tileY == 1 || s.tileY == 4) << s.str();
    seen.insert({s.tileY, s.task});
  }
  EXPECT_EQ(seen.size(), 8u);  // {8, 4 images} x {default, 4, 8, 32 outputs}
  k.kind = KernelKind::LinearBackData;
  k.schedule = defaultSchedule(k, 16);
  ASSERT_TRUE(tunable(k));
  for (const auto& s : scheduleCandidates(k)) EXPECT_EQ(s.task, 0) << s.str();
  EXPECT_EQ(scheduleCandidates(k).size(), 2u);
}

// AVX2 has 16 vector registers of 8 floats: its defaults and candidates keep at most 12
// accumulators (14 with channel vectors, whose weights can come from memory), in one register per
// vector, and its Winograd kernels are among them.
TEST(TuneCandidates, Avx2TilesFitSixteenRegisters) {
  EXPECT_EQ(lanesOf("x86-64-linux-avx2-fma"), 8);
  EXPECT_EQ(lanesOf("x86-64-linux-avx-avx2-avx512-f16c-fma-sse41"), 16);
  EXPECT_EQ(lanesOf("arm-64-linux"), 4);
  EXPECT_EQ(lanesOf("x86-64-linux-sse41"), 4);
  bool wino = false, chan = false;
  for (int64_t side : {56, 28, 14, 7}) {
    KernelSpec k = convSpec(KernelKind::Conv, {64, side, side}, {64, side, side}, 3, 1, 8);
    for (const auto& s : scheduleCandidates(k)) {
      EXPECT_LE(s.vec, 8) << side << ": " << s.str();
      if (s.winograd) {
        wino = true;
        EXPECT_LE(s.tileX * s.tileC, 12) << s.str();
      } else if (s.chanVec) {
        chan = true;
        EXPECT_LE(s.tileX * s.tileY * s.chanVec, 14) << s.str();
      } else {
        EXPECT_LE(s.tileX * s.tileY * s.tileC, 12) << s.str();
      }
    }
    // The default: ResNet-18's 7x7 layers take 1 x 7 (a 2 x 1 tile ran at 30% of the peak).
    if (side == 7) EXPECT_EQ(k.schedule.tileX * k.schedule.tileY * k.schedule.chanVec, 7) << k.schedule.str();
    if (side == 56) EXPECT_EQ(k.schedule.winograd, 2) << k.schedule.str();
  }
  EXPECT_TRUE(wino);
  EXPECT_TRUE(chan);
}

}  // namespace
