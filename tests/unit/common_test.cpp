// common_test.cpp: the shared header-only utilities of common/ (atomic file write, FNV-1a, shapes,
// UTF-8 check, packed conv weight layout, the plan schema's tables).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "common/fnv1a.h"
#include "common/packed_layout.h"
#include "common/plan_schema.h"
#include "common/shape.h"
#include "common/utf8.h"
#include "common/winograd_weights.h"

namespace fs = std::filesystem;
using namespace cnnc;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/cnnc-common-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::vector<std::string> entries() const {
    std::set<std::string> s;
    for (const auto& e : fs::directory_iterator(path)) s.insert(e.path().filename().string());
    return {s.begin(), s.end()};
  }
};

std::string readAll(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

TEST(AtomicFile, WritesAndReplacesLeavingNoTemporary) {
  TempDir d;
  std::string p = (d.path / "out.txt").string();
  ASSERT_TRUE(writeFileAtomically(p, std::string("old")));
  EXPECT_EQ(readAll(p), "old");
  // While the new content is being written, readers still see the old file whole.
  std::string seen;
  AtomicWrite w = writeFileAtomically(p, [&](std::FILE* f) {
    std::fputs("new content", f);
    std::fflush(f);
    seen = readAll(p);
    return true;
  });
  ASSERT_TRUE(w);
  EXPECT_EQ(seen, "old");
  EXPECT_EQ(readAll(p), "new content");
  EXPECT_EQ(d.entries(), std::vector<std::string>{"out.txt"});
}

TEST(AtomicFile, FailureKeepsTheOldFileAndRemovesTheTemporary) {
  TempDir d;
  std::string p = (d.path / "out.txt").string();
  ASSERT_TRUE(writeFileAtomically(p, std::string("old")));
  AtomicWrite w = writeFileAtomically(p, [](std::FILE* f) {
    std::fputs("half", f);
    errno = ENOSPC;
    return false;
  });
  EXPECT_FALSE(w);
  EXPECT_EQ(w.error, ENOSPC);
  EXPECT_EQ(readAll(p), "old");
  EXPECT_EQ(d.entries(), std::vector<std::string>{"out.txt"});
  // A writer that fails without saying why is an I/O error.
  w = writeFileAtomically(p, [](std::FILE*) {
    errno = 0;
    return false;
  });
  EXPECT_EQ(w.error, EIO);
  EXPECT_EQ(d.entries(), std::vector<std::string>{"out.txt"});
}

TEST(AtomicFile, ReportsMissingFoldersAndFolderTargets) {
  TempDir d;
  EXPECT_EQ(writeFileAtomically((d.path / "no" / "x").string(), std::string("x")).error, ENOENT);
  fs::create_directory(d.path / "sub");
  EXPECT_EQ(writeFileAtomically((d.path / "sub").string(), std::string("x")).error, EISDIR);
  EXPECT_EQ(writeFileAtomically(d.path.string() + "/", std::string("x")).error, EISDIR);
  EXPECT_EQ(d.entries(), std::vector<std::string>{"sub"});
  EXPECT_TRUE(writeFileAtomically((d.path / "synced").string(), std::string("x"), /*syncFolder=*/true));
}

TEST(AtomicFile, MoveIntoPlaceRemovesTheTemporaryOnFailure) {
  TempDir d;
  std::string p = (d.path / "lib.a").string();
  std::string tmp = tempPathFor(p);
  EXPECT_EQ(tmp, p + ".tmp." + std::to_string(getpid()));
  std::ofstream(tmp) << "built";
  EXPECT_EQ(moveIntoPlace(tmp, p), 0);
  EXPECT_EQ(readAll(p), "built");
  std::ofstream(tmp) << "again";
  EXPECT_EQ(moveIntoPlace(tmp, (d.path / "no" / "lib.a").string()), ENOENT);
  EXPECT_EQ(d.entries(), std::vector<std::string>{"lib.a"});
}

TEST(Fnv1a, KnownVectors) {
  // The published FNV-1a 64 test vectors, from the standard offset basis.
  static_assert(fnv1a("", kFnvOffsetBasis) == 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a("a", kFnvOffsetBasis), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a("foobar", kFnvOffsetBasis), 0x85944171f73967e8ull);
  EXPECT_EQ(fnv1aHex("a", kFnvOffsetBasis), "af63dc4c8601ec8c");
  // cnnc's own basis (what kernel names, cache entries and tuning checksums have always used).
  EXPECT_EQ(fnv1a(""), 1469598103934665603ull);
  EXPECT_EQ(fnv1aHex(""), "14650fb0739d0383");
  EXPECT_EQ(fnv1aHex("a"), "44bd8ad473cd9906");
  EXPECT_EQ(fnv1aHex("foobar"), "88fad7c0a8ff07f2");
  // Bytes above 0x7f hash as unsigned bytes, whatever the signedness of char.
  EXPECT_EQ(fnv1a("\xff", kFnvOffsetBasis), 0xaf64724c8602eb6eull);
  EXPECT_EQ(fnv1a("\xff"), (kCnncHashBasis ^ 0xffull) * kFnvPrime);
}

TEST(Shape, NumelAndText) {
  EXPECT_EQ(numel({}), 1);
  EXPECT_EQ(numel({2, 3, 4}), 24);
  EXPECT_EQ(numel({5, 0}), 0);
  EXPECT_EQ(dimsStr({}), "[]");
  EXPECT_EQ(dimsStr({64, 56, 56}), "[64,56,56]");
}

TEST(Utf8, ValidAndInvalidSequences) {
  auto check = [](const std::string& s, size_t& at) {
    Utf8Fault f;
    at = firstBadUtf8((const unsigned char*)s.data(), s.size(), &f);
    return f;
  };
  size_t at = 0;
  EXPECT_EQ(check("plain ascii", at), Utf8Fault::None);
  EXPECT_EQ(at, 11u);
  EXPECT_EQ(check("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", at), Utf8Fault::None);  // é € 😀
  EXPECT_EQ(check(std::string("a\0b", 3), at), Utf8Fault::None);                     // NUL is valid UTF-8
  EXPECT_EQ(check("ab\xff", at), Utf8Fault::BadByte);
  EXPECT_EQ(at, 2u);
  EXPECT_EQ(check("x\x80", at), Utf8Fault::BadByte);  // a continuation byte with no lead
  EXPECT_EQ(at, 1u);
  EXPECT_EQ(check("\xe2\x82", at), Utf8Fault::BadByte);  // cut off by the end
  EXPECT_EQ(at, 0u);
  EXPECT_EQ(check("\xc3(", at), Utf8Fault::BadSequence);  // bad continuation
  EXPECT_EQ(check("\xc0\x80", at), Utf8Fault::BadSequence);  // overlong NUL
  EXPECT_EQ(check("\xe0\x80\xaf", at), Utf8Fault::BadSequence);  // overlong '/'
  EXPECT_EQ(check("\xed\xa0\x80", at), Utf8Fault::BadSequence);  // surrogate U+D800
  EXPECT_EQ(check("\xf4\x90\x80\x80", at), Utf8Fault::BadSequence);  // above U+10FFFF
  EXPECT_EQ(check("\xf4\x8f\xbf\xbf", at), Utf8Fault::None);  // U+10FFFF itself
  EXPECT_TRUE(isValidUtf8((const unsigned char*)"", 0));
}

TEST(PlanSchema, EveryConstKindHasOneSpellingThatReadsBack) {
  using namespace plan_schema;
  std::set<std::string> names;
  for (int i = 0; i <= (int)kLastConstKind; ++i)
    for (bool foldBias : {false, true}) {
      ConstKind k = (ConstKind)i, back;
      bool backFold = !foldBias;
      std::string name = constKindName(k, foldBias);
      ASSERT_NE(name, "?") << i;
      ASSERT_TRUE(constKindFromName(name, back, backFold)) << name;
      EXPECT_EQ(back, k) << name;
      EXPECT_EQ(backFold, k == ConstKind::FoldConvBN && foldBias) << name;
      names.insert(name);
    }
  EXPECT_EQ(names.size(), std::size(kConstKindNames));  // no two kinds share a spelling
  EXPECT_STREQ(constKindName(ConstKind::FoldConvBN, true), "fold_bias");
  EXPECT_STREQ(constKindName(ConstKind::FoldConvBN), "fold_weight");
  ConstKind k;
  bool fb;
  EXPECT_FALSE(constKindFromName("fold", k, fb));
}

TEST(PlanSchema, EveryConstPackHasOneSpellingThatReadsBack) {
  using namespace plan_schema;
  std::set<std::string> names;
  for (int i = 0; i <= (int)kLastConstPack; ++i) {
    ConstPack p = (ConstPack)i, back = ConstPack::None;
    std::string name = constPackName(p);
    ASSERT_TRUE(constPackFromName(name, back)) << name;
    EXPECT_EQ(back, p) << name;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), std::size(kConstPackNames));
  EXPECT_STREQ(constPackName(ConstPack::Winograd), "winograd");
  ConstPack p;
  EXPECT_FALSE(constPackFromName("true", p));  // the old boolean spelling is not a layout
}

// U = G g G^T, [16, C, O], against the matrix products in double: every coefficient is a power of
// two, so the float sums may differ from it only by their own rounding.
TEST(WinogradWeights, TransformIsGgGtInTheKernelsLayout) {
  const int64_t O = 3, C = 2;
  EXPECT_EQ(winogradWeightShape(O, C), (std::vector<int64_t>{16, C, O}));
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> w(O * C * 9), U(16 * C * O, NAN);
  for (float& x : w) x = u(rng);
  transformWinogradWeights(w.data(), U.data(), O, C);
  double worst = 0;
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int q = 0; q < 4; ++q)
        for (int p = 0; p < 4; ++p) {
          double ref = 0;  // (G g G^T)[q][p], g[row][col] = w[o][c][row][col]
          for (int j = 0; j < 3; ++j)
            for (int i = 0; i < 3; ++i) ref += (double)kWinogradG[q * 3 + j] * w[(o * C + c) * 9 + j * 3 + i] * kWinogradG[p * 3 + i];
          float got = U[((p + 4 * q) * C + c) * O + o];
          worst = std::max(worst, std::fabs(got - ref));
        }
  printf("max |U - G g G^T| = %.3g (tolerance 1e-6)\n", worst);
  EXPECT_LE(worst, 1e-6);
  for (float x : U) EXPECT_FALSE(std::isnan(x));  // every element written
}

TEST(PackedLayout, ShapeAndIndexMappingRoundTrip) {
  const int64_t O = 8, C = 3, kh = 2, kw = 2, T = 4, rest = C * kh * kw;
  EXPECT_EQ(packedWeightShape({O, C, kh, kw}, T), (std::vector<int64_t>{O / T, C, kh, kw, T}));
  // Every element lands in its own place, and the packed coordinates lead back to it.
  std::set<int64_t> offsets;
  for (int64_t o = 0; o < O; ++o)
    for (int64_t j = 0; j < rest; ++j) {
      int64_t off = packedWeightOffset(o, j, rest, T);
      offsets.insert(off);
      int64_t block = off / (rest * T), jj = off / T % rest, t = off % T;
      EXPECT_EQ(packedWeightChannel(block, t, T), o);
      EXPECT_EQ(block, packedBlockOf(o, T));
      EXPECT_EQ(t, packedLaneOf(o, T));
      EXPECT_EQ(jj, j);
    }
  EXPECT_EQ((int64_t)offsets.size(), O * rest);
  EXPECT_EQ(*offsets.begin(), 0);
  EXPECT_EQ(*offsets.rbegin(), O * rest - 1);
  // packWeightBlocks puts a block's T output channels of one tap side by side.
  std::vector<float> w(O * rest), p(O * rest);
  for (int64_t o = 0; o < O; ++o)
    for (int64_t j = 0; j < rest; ++j) w[o * rest + j] = float(o * 100 + j);
  packWeightBlocks(w.data(), p.data(), O, rest, T);
  EXPECT_EQ(p[0], 0.0f);    // o=0, j=0
  EXPECT_EQ(p[1], 100.0f);  // o=1, j=0
  EXPECT_EQ(p[T], 1.0f);    // o=0, j=1
  EXPECT_EQ(p[rest * T], 400.0f);  // o=4 (block 1), j=0
}

TEST(PackedLayout, LastBlockPaddedWithZerosWhereTDoesNotDivideO) {
  const int64_t O = 6, C = 2, T = 4, rest = C;
  EXPECT_EQ(packedWeightShape({O, C, 1, 1}, T), (std::vector<int64_t>{2, C, 1, 1, T}));
  // A per-pixel linear layer's [O, C] weight (ConvNeXt's, run as a 1x1 conv).
  EXPECT_EQ(packedWeightShape({O, C}, T), (std::vector<int64_t>{2, C, 1, 1, T}));
  std::vector<float> w(O * rest, 7.0f), p(2 * rest * T, -1.0f);
  packWeightBlocks(w.data(), p.data(), O, rest, T);
  for (int64_t j = 0; j < rest; ++j)
    for (int64_t t = 0; t < T; ++t) {
      EXPECT_EQ(p[j * T + t], 7.0f);                                 // block 0: channels 0-3
      EXPECT_EQ(p[(rest + j) * T + t], t < O - T ? 7.0f : 0.0f);    // block 1: channels 4, 5, then zeros
    }
}
