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

// A flat JPEG decodes (and resizes) to within this many grey levels of its value: lossy DCT rounding.
constexpr int kJpegLevelTol = 2;

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

// --- Folder format: root/<class>/<image>.{png,jpg,jpeg} ---------------------------------------------

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include <random>

namespace {

// An empty folder of its own under the test's temp dir, so each test starts clean.
std::string fresh(const std::string& name) {
  std::string p = dir() + "/" + name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// A PNG whose pixel (x, y) holds base + x in channel 0, base + 10 y in channel 1, base + 50 in channel 2
// and 200 in channel 3 (alpha), so every value tells where it came from.
void writePng(const std::string& path, int w, int h, int base, int comp = 3) {
  fs::create_directories(fs::path(path).parent_path());
  std::vector<uint8_t> px((size_t)w * h * comp);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < comp; ++c) px[((size_t)y * w + x) * comp + c] = (uint8_t)(c == 0 ? base + x : c == 1 ? base + 10 * y : c == 2 ? base + 50 : 200);
  ASSERT_TRUE(stbi_write_png(path.c_str(), w, h, comp, px.data(), w * comp)) << path;
}

// A flat-colour JPEG (JPEG is lossy: only a flat image decodes to known values).
void writeJpeg(const std::string& path, int w, int h, uint8_t value) {
  fs::create_directories(fs::path(path).parent_path());
  std::vector<uint8_t> px((size_t)w * h * 3, value);
  ASSERT_TRUE(stbi_write_jpg(path.c_str(), w, h, 3, px.data(), 95)) << path;
}

std::vector<uint8_t> readAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(DatasetFolder, ClassesLabelsOrderAndExactPixels) {
  std::string r = fresh("classes");
  // Made in reverse order: labels follow sorted names, not creation order.
  writePng(r + "/dog/b.png", 3, 2, 100);
  writePng(r + "/dog/a.PNG", 3, 2, 60);  // upper-case extension; sorts before b.png
  writePng(r + "/cat/x.png", 3, 2, 20);
  writePng(r + "/.hidden/h.png", 3, 2, 0);  // hidden folder: not a class
  std::ofstream(r + "/cat/notes.txt") << "not an image";
  std::ofstream(r + "/readme.txt") << "not a class";
  Dataset d;
  std::string err;
  ASSERT_TRUE(loadFolder(r, 0, 0, 0, d, err)) << err;
  EXPECT_EQ(d.count, 3);
  EXPECT_EQ(d.channels, 3);
  EXPECT_EQ(d.height, 2);
  EXPECT_EQ(d.width, 3);
  EXPECT_EQ(d.classes, 2);
  EXPECT_EQ(d.classNames, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(d.labels, (std::vector<int64_t>{0, 1, 1}));
  ASSERT_EQ(d.pixels.size(), 3u * 18);
  // Image 1 is dog/a.PNG (base 60), CHW: channel 0 = 60 + x, channel 1 = 60 + 10 y, channel 2 = 110.
  std::vector<uint8_t> want = {60, 61, 62, 60, 61, 62, /*c1*/ 60, 60, 60, 70, 70, 70, /*c2*/ 110, 110, 110, 110, 110, 110};
  EXPECT_EQ(std::vector<uint8_t>(d.pixels.begin() + 18, d.pixels.begin() + 36), want);
  EXPECT_EQ(d.pixels[0], 20);       // cat/x.png first
  EXPECT_EQ(d.pixels[36 + 2], 102);  // dog/b.png last: channel 0, x = 2
}

TEST(DatasetFolder, ClassOrderIsByteOrder) {
  std::string r = fresh("byteorder");
  writePng(r + "/b/1.png", 2, 2, 1);
  writePng(r + "/a/1.png", 2, 2, 2);
  writePng(r + "/B/1.png", 2, 2, 3);
  writePng(r + "/a10/1.png", 2, 2, 4);
  writePng(r + "/a2/1.png", 2, 2, 5);
  Dataset d;
  std::string err;
  ASSERT_TRUE(loadFolder(r, 0, 0, 0, d, err)) << err;
  EXPECT_EQ(d.classNames, (std::vector<std::string>{"B", "a", "a10", "a2", "b"}));
  EXPECT_EQ(d.pixels[0], 3);  // B/1.png is label 0
}

TEST(DatasetFolder, GreyToThreeChannelsResizeAndJpeg) {
  std::string r = fresh("convert");
  writePng(r + "/a/1.png", 4, 4, 10, 4);  // first image: RGBA 4x4 -> 3 channels (alpha dropped), 4x4
  writePng(r + "/b/1.png", 8, 8, 10, 1);  // grey 8x8 (value 10 + x): expanded to 3 channels and halved
  writeJpeg(r + "/b/2.JPEG", 16, 16, 128);
  writeJpeg(r + "/b/3.jpg", 4, 4, 40);
  Dataset d;
  std::string err;
  ASSERT_TRUE(loadFolder(r, 0, 0, 0, d, err)) << err;
  EXPECT_EQ(d.count, 4);
  EXPECT_EQ(d.channels, 3);
  EXPECT_EQ(d.height, 4);
  EXPECT_EQ(d.width, 4);
  EXPECT_EQ(d.labels, (std::vector<int64_t>{0, 1, 1, 1}));
  // RGBA: the three colour channels, no alpha (200) anywhere.
  EXPECT_EQ(d.pixels[0 * 16 + 1 * 4 + 3], 13);  // c0 at (x 3, y 1) = 10 + 3
  EXPECT_EQ(d.pixels[1 * 16 + 2 * 4 + 0], 30);  // c1 at y 2 = 10 + 20
  EXPECT_EQ(d.pixels[2 * 16 + 0], 60);
  // Halved with half-pixel centres: output x samples source 2x + 0.5, the mean of columns 2x and
  // 2x+1, that is 10 + 2x + 0.5, rounded half up: 10 + 2x + 1. The same in every row and channel.
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 4; ++x) EXPECT_EQ(d.pixels[48 + c * 16 + y * 4 + x], 10 + 2 * x + 1) << c << "," << y << "," << x;
  // JPEGs: a flat image decodes to about its value everywhere (16x16 resized, 4x4 as it is).
  for (int k = 0; k < 48; ++k) EXPECT_NEAR(d.pixels[96 + k], 128, kJpegLevelTol) << k;
  for (int k = 0; k < 48; ++k) EXPECT_NEAR(d.pixels[144 + k], 40, kJpegLevelTol) << k;
  // Forced: 1 channel, 2x6.
  ASSERT_TRUE(loadFolder(r, 1, 2, 6, d, err)) << err;
  EXPECT_EQ(d.channels, 1);
  EXPECT_EQ(d.height, 2);
  EXPECT_EQ(d.width, 6);
  EXPECT_EQ(d.pixels.size(), 4u * 12);
  for (int k = 0; k < 12; ++k) EXPECT_NEAR(d.pixels[24 + k], 128, kJpegLevelTol) << k;  // flat grey stays flat
}

TEST(DatasetFolder, ErrorsNameThePath) {
  std::string r = fresh("errors");
  Dataset d;
  std::string err;
  EXPECT_FALSE(loadFolder(r + "/none", 0, 0, 0, d, err));
  EXPECT_EQ(err, "data folder '" + r + "/none' does not exist");
  std::ofstream(r + "/file") << "x";
  EXPECT_FALSE(loadFolder(r + "/file", 0, 0, 0, d, err));
  EXPECT_EQ(err, "data folder '" + r + "/file' is not a folder");
  fs::remove(r + "/file");
  EXPECT_FALSE(loadFolder(r, 0, 0, 0, d, err));
  EXPECT_EQ(err, "data folder '" + r + "' has no class subfolders (expected one subfolder of PNG/JPEG images per class)");
  writePng(r + "/a/1.png", 4, 4, 10);
  fs::create_directories(r + "/b");
  std::ofstream(r + "/b/labels.csv") << "1,2";
  EXPECT_FALSE(loadFolder(r, 0, 0, 0, d, err));
  EXPECT_EQ(err, "class folder '" + r + "/b' contains no PNG or JPEG images (.png, .jpg, .jpeg)");
  std::ofstream(r + "/b/broken.png", std::ios::binary) << "\x89PNG\x01\x02\x03";
  EXPECT_FALSE(loadFolder(r, 0, 0, 0, d, err));
  EXPECT_TRUE(contains(err, "cannot read image '" + r + "/b/broken.png': ")) << err;
  EXPECT_TRUE(contains(err, "(not a readable PNG or JPEG file: replace or remove it)")) << err;
  // A real PNG cut after its header: the header reads, the pixels do not.
  auto png = readAll(r + "/a/1.png");
  std::ofstream(r + "/b/broken.png", std::ios::binary).write((const char*)png.data(), 40);
  EXPECT_FALSE(loadFolder(r, 0, 0, 0, d, err));
  EXPECT_TRUE(contains(err, "cannot read image '" + r + "/b/broken.png': ")) << err;
  EXPECT_TRUE(contains(err, "(the file is damaged or cut short: replace or remove it)")) << err;
  std::ofstream(r + "/b/broken.png", std::ios::binary).flush();  // empty
  EXPECT_FALSE(loadFolder(r, 0, 0, 0, d, err));
  EXPECT_EQ(err, "cannot read image '" + r + "/b/broken.png': the file is empty");
  // A header that claims 10000 x 10000 pixels (100 Mpixel) is refused before anything is allocated.
  auto huge = png;
  for (int k : {16, 20}) huge[k] = 0, huge[k + 1] = 0, huge[k + 2] = 0x27, huge[k + 3] = 0x10;  // IHDR width, height
  std::ofstream(r + "/b/broken.png", std::ios::binary).write((const char*)huge.data(), huge.size());
  EXPECT_FALSE(loadFolder(r, 0, 0, 0, d, err));
  EXPECT_TRUE(contains(err, "image '" + r + "/b/broken.png' is too large: 10000x10000 (at most 16384 pixels a side and 64 Mpixel)")) << err;
  // A JPEG whose first Huffman table declares 16 x 255 codes: stb 2.27 would write past its arrays.
  fs::remove(r + "/b/broken.png");
  writeJpeg(r + "/b/dht.jpg", 8, 8, 77);
  auto jpg = readAll(r + "/b/dht.jpg");
  size_t dht = 2;
  while (dht + 1 < jpg.size() && !(jpg[dht] == 0xFF && jpg[dht + 1] == 0xC4)) ++dht;
  ASSERT_LT(dht + 21, jpg.size());
  for (int k = 0; k < 16; ++k) jpg[dht + 5 + k] = 0xFF;  // after marker, length and table class/id
  std::ofstream(r + "/b/dht.jpg", std::ios::binary).write((const char*)jpg.data(), jpg.size());
  EXPECT_FALSE(loadFolder(r, 0, 0, 0, d, err));
  EXPECT_EQ(err, "cannot read image '" + r + "/b/dht.jpg': corrupt JPEG (a Huffman table declares more than 256 codes): replace or remove it");
  EXPECT_FALSE(loadFolder(r, 2, 0, 0, d, err));
  EXPECT_TRUE(contains(err, "channels must be 0 (as the first image), 1 or 3, got 2")) << err;
  EXPECT_FALSE(loadFolder(r, 0, 5, 0, d, err));
  EXPECT_TRUE(contains(err, "bad image size 5x0")) << err;
}

// Whatever the bytes, a folder loads or fails with a message naming the file; it never crashes
// (run under ASan by the sanitizer build).
TEST(DatasetFolder, MutatedImagesNeverCrash) {
  std::string r = fresh("mutated");
  writePng(r + "/a/1.png", 12, 9, 30);
  writeJpeg(r + "/b/1.jpg", 12, 9, 90);
  const std::vector<std::vector<uint8_t>> originals = {readAll(r + "/a/1.png"), readAll(r + "/b/1.jpg")};
  std::mt19937 rng(123);
  int failed = 0;
  for (int trial = 0; trial < 300; ++trial) {
    int which = trial % 2;
    std::string path = r + (which ? "/b/1.jpg" : "/a/1.png");
    auto bytes = originals[which];
    int edits = 1 + (int)(rng() % 8);
    for (int e = 0; e < edits; ++e) bytes[rng() % bytes.size()] = (uint8_t)rng();
    if (trial % 7 == 0) bytes.resize(rng() % bytes.size());
    std::ofstream(path, std::ios::binary).write((const char*)bytes.data(), bytes.size());
    Dataset d;
    std::string err;
    if (!loadFolder(r, 0, 0, 0, d, err)) {
      ++failed;
      EXPECT_TRUE(contains(err, path)) << err;
    } else {
      EXPECT_EQ(d.pixels.size(), (size_t)d.count * d.channels * d.height * d.width);
    }
    std::ofstream(path, std::ios::binary).write((const char*)originals[which].data(), originals[which].size());
  }
  EXPECT_GT(failed, 0);  // the mutations do break some files
}

TEST(DatasetFolder, TrainAndTestSplits) {
  std::string r = fresh("splits");
  writePng(r + "/train/x/1.png", 4, 4, 1);
  writePng(r + "/train/y/1.png", 4, 4, 2);
  writePng(r + "/test/x/1.png", 8, 8, 3, 1);  // grey 8x8: takes the train split's 3 channels and 4x4
  writePng(r + "/test/y/1.png", 8, 8, 4, 1);
  Dataset tr, te;
  std::string err;
  ASSERT_TRUE(loadFolderSplit(r, true, tr, err)) << err;
  ASSERT_TRUE(loadFolderSplit(r, false, te, err)) << err;
  EXPECT_EQ(tr.count, 2);
  EXPECT_EQ(te.count, 2);
  EXPECT_EQ(te.channels, 3);
  EXPECT_EQ(te.height, 4);
  EXPECT_EQ(te.width, 4);
  EXPECT_EQ(te.classNames, tr.classNames);
  EXPECT_EQ(te.labels, (std::vector<int64_t>{0, 1}));
  // Grey 8x8 (base + x) halved as in GreyToThreeChannelsResizeAndJpeg: base + 2x + 1, in all 3 channels.
  EXPECT_EQ(te.pixels[2 * 16 + 3], 3 + 6 + 1);  // image 0 (x/1.png, base 3), channel 2, x 3
  EXPECT_EQ(te.pixels[48 + 0], 4 + 0 + 1);      // image 1 (y/1.png, base 4), channel 0, x 0
  writePng(r + "/test/z/1.png", 4, 4, 5);
  EXPECT_FALSE(loadFolderSplit(r, false, te, err));
  EXPECT_EQ(err, "folder data '" + r + "': the classes of " + r + "/test (x, y, z) differ from those of " + r +
                     "/train (x, y); both splits need the same class subfolders");
  // val/ stands in for test/.
  std::string v = fresh("splits_val");
  writePng(v + "/train/x/1.png", 4, 4, 1);
  writePng(v + "/val/x/1.png", 4, 4, 1);
  ASSERT_TRUE(loadFolderSplit(v, false, te, err)) << err;
  EXPECT_EQ(te.count, 1);
  fs::remove_all(v + "/val");
  EXPECT_FALSE(loadFolderSplit(v, false, te, err));
  EXPECT_EQ(err, "folder data '" + v + "' has no test/ (or val/) subfolder (expected train/ and test/, each with one subfolder of PNG/JPEG images per class)");
  fs::remove_all(v + "/train");
  EXPECT_FALSE(loadFolderSplit(v, true, te, err));
  EXPECT_EQ(err, "folder data '" + v + "' has no train/ subfolder (expected train/ and test/, each with one subfolder of PNG/JPEG images per class)");
}
