// Data sets: IDX and CIFAR-10 loading and their corruptions, preprocessing, seeded order and
// augmentation, and resuming a loader mid-epoch.
#include "dataset.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

using namespace cnnc::rt;
namespace fs = std::filesystem;

namespace {

std::string dir() {
  static std::string d = [] {
    std::string p = fs::temp_directory_path() / ("cnnc_data_" + std::to_string(getpid()));
    fs::create_directories(p);
    return p;
  }();
  return d;
}

std::vector<uint8_t> idx(uint32_t magic, std::vector<uint32_t> dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> b;
  auto put = [&](uint32_t v) { for (int s = 24; s >= 0; s -= 8) b.push_back((uint8_t)(v >> s)); };
  put(magic);
  for (auto d : dims) put(d);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

std::string write(const std::string& name, const std::vector<uint8_t>& bytes, bool gzip = false) {
  std::string p = dir() + "/" + name;
  if (gzip) {
    gzFile f = gzopen(p.c_str(), "wb");
    gzwrite(f, bytes.data(), (unsigned)bytes.size());
    gzclose(f);
  } else {
    std::ofstream(p, std::ios::binary).write((const char*)bytes.data(), bytes.size());
  }
  return p;
}

// 5 images of 4x3, pixel value = image index * 10 + position.
std::vector<uint8_t> pixels() {
  std::vector<uint8_t> v;
  for (int i = 0; i < 5; ++i)
    for (int k = 0; k < 12; ++k) v.push_back((uint8_t)(i * 10 + k));
  return v;
}

}  // namespace

TEST(Dataset, IdxPlainAndGzip) {
  for (bool gz : {false, true}) {
    std::string im = write(gz ? "i.gz" : "i", idx(0x803, {5, 4, 3}, pixels()), gz);
    std::string lb = write(gz ? "l.gz" : "l", idx(0x801, {5}, {0, 1, 2, 3, 9}), gz);
    Dataset d;
    std::string err;
    ASSERT_TRUE(loadIdx(im, lb, d, err)) << err;
    EXPECT_EQ(d.count, 5);
    EXPECT_EQ(d.height, 4);
    EXPECT_EQ(d.width, 3);
    EXPECT_EQ(d.labels[4], 9);
    EXPECT_EQ(d.pixels[12 * 2 + 1], 21);
  }
}

TEST(Dataset, IdxCorruptionsAreNamed) {
  std::string err;
  Dataset d;
  std::string lb = write("l5", idx(0x801, {5}, {0, 1, 2, 3, 4}));
  EXPECT_FALSE(loadIdx(write("bad_magic", idx(0x802, {5, 4, 3}, pixels())), lb, d, err));
  EXPECT_NE(err.find("not an IDX image file"), std::string::npos) << err;
  auto trunc = idx(0x803, {5, 4, 3}, pixels());
  trunc.resize(trunc.size() - 7);
  EXPECT_FALSE(loadIdx(write("trunc", trunc), lb, d, err));
  EXPECT_NE(err.find("header says 5 images"), std::string::npos) << err;
  EXPECT_FALSE(loadIdx(write("i6", idx(0x803, {5, 4, 3}, pixels())), write("l4", idx(0x801, {4}, {0, 1, 2, 3})), d, err));
  EXPECT_NE(err.find("has 5 images but"), std::string::npos) << err;
  // A gzip stream cut in half.
  std::string gz = write("full.gz", idx(0x803, {5, 4, 3}, pixels()), true);
  auto size = fs::file_size(gz);
  fs::resize_file(gz, size / 2);
  EXPECT_FALSE(loadIdx(gz, lb, d, err));
  EXPECT_NE(err.find("full.gz"), std::string::npos) << err;
  EXPECT_FALSE(loadIdx(dir() + "/missing", lb, d, err));
  EXPECT_NE(err.find("cannot open"), std::string::npos) << err;
}

TEST(Dataset, CifarRecordsAndErrors) {
  std::vector<uint8_t> rec(3073 * 2, 7);
  rec[0] = 3;
  rec[3073] = 9;
  Dataset d;
  std::string err;
  ASSERT_TRUE(loadCifar10({write("c.bin", rec)}, d, err)) << err;
  EXPECT_EQ(d.count, 2);
  EXPECT_EQ(d.channels, 3);
  EXPECT_EQ(d.labels[1], 9);
  rec.pop_back();
  EXPECT_FALSE(loadCifar10({write("c2.bin", rec)}, d, err));
  EXPECT_NE(err.find("not a whole number of CIFAR-10 records"), std::string::npos) << err;
  rec.push_back(0);
  rec[3073] = 11;
  EXPECT_FALSE(loadCifar10({write("c3.bin", rec)}, d, err));
  EXPECT_NE(err.find("record 1 has label 11"), std::string::npos) << err;
}

TEST(Dataset, PadsIntoTheCentreAndNormalises) {
  Dataset d;
  d.count = 1;
  d.height = d.width = 2;
  d.pixels = {255, 0, 0, 255};
  d.labels = {0};
  Preprocess p;
  p.C = 3;
  p.H = p.W = 4;
  p.mean = {0.5, 0.5, 0.5};
  p.std = {0.5, 0.5, 0.5};
  std::string err;
  ASSERT_TRUE(checkFits(d, p, err)) << err;
  std::vector<float> out(3 * 16);
  prepareImage(d, 0, p, false, 0, out.data());
  EXPECT_FLOAT_EQ(out[0], -1.0f);          // padding: 0 -> (0 - 0.5) / 0.5
  EXPECT_FLOAT_EQ(out[1 * 4 + 1], 1.0f);   // pixel (0,0) = 255 lands at (1,1)
  EXPECT_FLOAT_EQ(out[16 + 1 * 4 + 1], 1.0f);  // grey copied to channel 1
  p.H = p.W = 1;
  EXPECT_FALSE(checkFits(d, p, err));
  EXPECT_NE(err.find("padding cannot shrink"), std::string::npos) << err;
}

TEST(Dataset, SeededOrderAndExactResume) {
  Dataset d;
  d.count = 37;
  d.height = d.width = 6;
  d.pixels.resize(37 * 36);
  for (size_t i = 0; i < d.pixels.size(); ++i) d.pixels[i] = (uint8_t)(i * 13);
  for (int i = 0; i < 37; ++i) d.labels.push_back(i % 10);
  Preprocess p;
  p.H = p.W = 8;
  p.cropPad = 2;
  p.flip = true;
  EXPECT_EQ(epochOrder(37, 5, 0, true), epochOrder(37, 5, 0, true));
  EXPECT_NE(epochOrder(37, 5, 0, true), epochOrder(37, 5, 1, true));
  BatchLoader full(d, p, 8, true, true, false, 42);
  EXPECT_EQ(full.batchesPerEpoch(), 5);
  full.start(3);
  std::vector<std::vector<float>> all;
  std::vector<float> img;
  std::vector<int64_t> lab;
  while (full.next(img, lab)) all.push_back(img);
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all.back().size(), 5u * 64);  // 37 = 4 x 8 + 5
  BatchLoader resumed(d, p, 8, true, true, false, 42);
  resumed.start(3, 2);
  for (size_t b = 2; b < 5; ++b) {
    ASSERT_TRUE(resumed.next(img, lab));
    EXPECT_EQ(img, all[b]) << "batch " << b;
  }
  EXPECT_FALSE(resumed.next(img, lab));
}

TEST(Dataset, FashionMnistFromDebian) {
  const char* root = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(std::string(root) + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  Dataset train, test;
  std::string err;
  ASSERT_TRUE(loadFashionMnist(root, true, train, err)) << err;
  ASSERT_TRUE(loadFashionMnist(root, false, test, err)) << err;
  EXPECT_EQ(train.count, 60000);
  EXPECT_EQ(test.count, 10000);
  EXPECT_EQ(train.labels[0], 9);  // the first training image is an ankle boot
  EXPECT_EQ(train.classNames[9], "Ankle boot");
}
