// safetensors reading and writing: round trips, a file byte-for-byte as Python's struct+json writer
// makes it, every rejection the reference loader makes (with its message), the atomic writer's
// failure behaviour, and truncated or corrupted files (which must load or fail cleanly, never crash).
#include "safetensors.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>

using namespace cnnc::rt;

namespace {

// A fresh empty folder per test, removed (with its files) afterwards.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "st_test_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    EXPECT_NE(mkdtemp(buf.data()), nullptr);
    path_ = buf.data();
  }
  ~TempDir() { removeAll(path_); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  std::vector<std::string> entries() const { return list(path_); }

  static std::vector<std::string> list(const std::string& dir) {
    std::vector<std::string> r;
    if (DIR* d = opendir(dir.c_str())) {
      while (dirent* e = readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") r.push_back(e->d_name);
      closedir(d);
    }
    std::sort(r.begin(), r.end());
    return r;
  }

 private:
  std::string path_;
  static void removeAll(const std::string& p) {
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
      for (const auto& e : list(p)) removeAll(p + "/" + e);
      rmdir(p.c_str());
    } else {
      unlink(p.c_str());
    }
  }
};

std::vector<uint8_t> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void writeFile(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), (std::streamsize)b.size());
}

// What Python's `struct.pack('<Q', len(h)) + h + data` produces.
std::vector<uint8_t> stFile(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> b;
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) b.push_back((uint8_t)(n >> (8 * i)));
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

std::vector<uint8_t> zeros(size_t n) { return std::vector<uint8_t>(n, 0); }

template <class T>
std::vector<uint8_t> bytesOf(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!b.empty()) memcpy(b.data(), v.data(), b.size());
  return b;
}

// Parses `b` as "f.safetensors"; expects failure and returns the message.
std::string rejectMsg(const std::vector<uint8_t>& b) {
  SafeTensors st;
  std::string err;
  EXPECT_FALSE(st.parse(b, "f.safetensors", err));
  EXPECT_TRUE(st.tensors().empty());
  EXPECT_EQ(err.rfind("f.safetensors: ", 0), 0u) << err;
  return err;
}

std::string reject(const std::string& header, size_t dataBytes) { return rejectMsg(stFile(header, zeros(dataBytes))); }

// A header entry.
std::string ent(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t b, uint64_t e) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" + std::to_string(b) +
         "," + std::to_string(e) + "]}";
}

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

// Produced by (Python 3.11, no padding, ", " and ": " separators):
//   hdr = {"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
//          "b": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]},
//          "h": {"dtype": "F16", "shape": [2], "data_offsets": [40, 44]}}
//   data = struct.pack('<6f', *[0.5*i-1 for i in range(6)]) + struct.pack('<2q', -3, 7) + struct.pack('<2e', 1.0, -2.0)
//   h = json.dumps(hdr).encode(); open(p, 'wb').write(struct.pack('<Q', len(h)) + h + data)
const std::vector<uint8_t> kPythonFile = {
    0xe1, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x22, 0x5f, 0x5f, 0x6d, 0x65, 0x74, 0x61,
    0x64, 0x61, 0x74, 0x61, 0x5f, 0x5f, 0x22, 0x3a, 0x20, 0x7b, 0x22, 0x66, 0x6f, 0x72, 0x6d, 0x61,
    0x74, 0x22, 0x3a, 0x20, 0x22, 0x70, 0x74, 0x22, 0x7d, 0x2c, 0x20, 0x22, 0x77, 0x22, 0x3a, 0x20,
    0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x20, 0x22, 0x46, 0x33, 0x32, 0x22, 0x2c,
    0x20, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x20, 0x5b, 0x32, 0x2c, 0x20, 0x33, 0x5d,
    0x2c, 0x20, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22,
    0x3a, 0x20, 0x5b, 0x30, 0x2c, 0x20, 0x32, 0x34, 0x5d, 0x7d, 0x2c, 0x20, 0x22, 0x62, 0x22, 0x3a,
    0x20, 0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x20, 0x22, 0x49, 0x36, 0x34, 0x22,
    0x2c, 0x20, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x20, 0x5b, 0x32, 0x5d, 0x2c, 0x20,
    0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x20,
    0x5b, 0x32, 0x34, 0x2c, 0x20, 0x34, 0x30, 0x5d, 0x7d, 0x2c, 0x20, 0x22, 0x68, 0x22, 0x3a, 0x20,
    0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x20, 0x22, 0x46, 0x31, 0x36, 0x22, 0x2c,
    0x20, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x20, 0x5b, 0x32, 0x5d, 0x2c, 0x20, 0x22,
    0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x20, 0x5b,
    0x34, 0x30, 0x2c, 0x20, 0x34, 0x34, 0x5d, 0x7d, 0x7d, 0x00, 0x00, 0x80, 0xbf, 0x00, 0x00, 0x00,
    0xbf, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0xc0,
    0x3f, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x3c, 0x00, 0xc0,
};

void checkPythonFile(const SafeTensors& st) {
  ASSERT_EQ(st.tensors().size(), 3u);
  EXPECT_EQ(st.tensors()[0].name, "w");  // header order, not sorted
  EXPECT_EQ(st.tensors()[1].name, "b");
  EXPECT_EQ(st.tensors()[2].name, "h");
  const TensorView* w = st.find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, DType::F32);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{2, 3}));
  ASSERT_EQ(w->bytes, 24u);
  float f[6];
  memcpy(f, w->data, 24);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(f[i], 0.5f * i - 1);
  const TensorView* b = st.find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::I64);
  EXPECT_EQ(b->shape, (std::vector<int64_t>{2}));
  int64_t l[2];
  memcpy(l, b->data, 16);
  EXPECT_EQ(l[0], -3);
  EXPECT_EQ(l[1], 7);
  const TensorView* h = st.find("h");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->dtype, DType::F16);
  ASSERT_EQ(h->bytes, 4u);
  EXPECT_EQ(h->data[0], 0x00);  // 1.0 = 0x3c00, -2.0 = 0xc000
  EXPECT_EQ(h->data[1], 0x3c);
  EXPECT_EQ(h->data[2], 0x00);
  EXPECT_EQ(h->data[3], 0xc0);
  for (const auto& t : st.tensors()) EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 64, 0u) << t.name;
  EXPECT_EQ(st.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  EXPECT_EQ(st.find("nope"), nullptr);
}

}  // namespace

TEST(SafeTensors, DTypes) {
  const std::pair<DType, size_t> all[] = {{DType::F32, 4}, {DType::I64, 8}, {DType::F64, 8}, {DType::I32, 4}, {DType::F16, 2},
                                          {DType::BF16, 2}, {DType::U8, 1}, {DType::I8, 1}, {DType::I16, 2}, {DType::U16, 2},
                                          {DType::BOOL, 1}, {DType::U32, 4}, {DType::U64, 8}};
  for (auto [t, size] : all) {
    EXPECT_EQ(dtypeSize(t), size) << dtypeName(t);
    DType back;
    ASSERT_TRUE(dtypeFromName(dtypeName(t), back)) << dtypeName(t);
    EXPECT_EQ(back, t);
  }
  EXPECT_STREQ(dtypeName(DType::BF16), "BF16");
  EXPECT_STREQ(dtypeName(DType::BOOL), "BOOL");
  DType x;
  EXPECT_FALSE(dtypeFromName("f32", x));
  EXPECT_FALSE(dtypeFromName("F8_E4M3", x));
}

TEST(SafeTensors, RoundTrip) {
  TempDir dir;
  std::vector<float> w(6 * 1 * 5 * 5);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.25f * (float)i - 3.0f;
  std::vector<float> bias = {1.5f, -2.5f, 0.0f, 4.0f, 5.0f, 6.0f};
  int64_t nbt = 12345678901234LL;
  std::vector<uint16_t> half = {0x3c00, 0xc000, 0x7bff};
  std::vector<uint16_t> bf = {0x3f80, 0xbf80};
  std::vector<double> dbl = {3.141592653589793};
  std::vector<int32_t> i32 = {-1, 2, -3, 4};
  std::vector<uint8_t> u8 = {0, 127, 255};
  std::vector<int8_t> i8 = {-128, 127};
  std::vector<int16_t> i16 = {-32768};
  std::vector<uint16_t> u16 = {65535, 1};
  std::vector<uint8_t> bools = {1, 0, 1};
  std::vector<uint32_t> u32 = {4000000000u};
  std::vector<uint64_t> u64 = {18000000000000000000ull, 5};
  std::vector<TensorOut> out = {
      {"conv1.weight", DType::F32, {6, 1, 5, 5}, w.data(), w.size() * 4},
      {"conv1.bias", DType::F32, {6}, bias.data(), 24},
      {"bn1.num_batches_tracked", DType::I64, {}, &nbt, 8},
      {"half", DType::F16, {3}, half.data(), 6},
      {"bf", DType::BF16, {2, 1}, bf.data(), 4},
      {"dbl", DType::F64, {1}, dbl.data(), 8},
      {"empty", DType::F32, {0, 5}, nullptr, 0},
      {"i32", DType::I32, {2, 2}, i32.data(), 16},
      {"u8", DType::U8, {3}, u8.data(), 3},
      {"i8", DType::I8, {2}, i8.data(), 2},
      {"i16", DType::I16, {1}, i16.data(), 2},
      {"u16", DType::U16, {2}, u16.data(), 4},
      {"mask", DType::BOOL, {3}, bools.data(), 3},
      {"u32", DType::U32, {1}, u32.data(), 4},
      {"u64", DType::U64, {2}, u64.data(), 16},
      {"gr\xc3\xb6\xc3\x9f" "e \"quoted\"", DType::U8, {1}, u8.data(), 1},  // UTF-8 and JSON escapes in a name
  };
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"cnnc.net", "LeNet5"}, {"note", "a \"b\"\nc"}};
  std::string path = dir / "weights.safetensors", err;
  ASSERT_TRUE(writeSafeTensors(path, out, meta, err)) << err;
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"weights.safetensors"});  // no temporary left behind

  // The header is padded with spaces to a multiple of 8 and starts with __metadata__.
  std::vector<uint8_t> raw = readFile(path);
  ASSERT_GE(raw.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | raw[i];
  EXPECT_EQ(n % 8, 0u);
  std::string header(raw.begin() + 8, raw.begin() + 8 + n);
  EXPECT_EQ(header.rfind("{\"__metadata__\":", 0), 0u) << header;

  SafeTensors st;
  ASSERT_TRUE(st.load(path, err)) << err;
  ASSERT_EQ(st.tensors().size(), out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const TensorView& t = st.tensors()[i];
    EXPECT_EQ(t.name, out[i].name);
    EXPECT_EQ(t.dtype, out[i].dtype) << t.name;
    EXPECT_EQ(t.shape, out[i].shape) << t.name;
    ASSERT_EQ(t.bytes, out[i].bytes) << t.name;
    ASSERT_NE(t.data, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 64, 0u) << t.name;
    if (t.bytes) {
      EXPECT_EQ(memcmp(t.data, out[i].data, t.bytes), 0) << t.name;
    }
    EXPECT_EQ(st.find(t.name), &t);
  }
  EXPECT_EQ(st.metadata(), meta);

  // The same from memory, and after a move.
  SafeTensors st2;
  ASSERT_TRUE(st2.parse(raw, "mem", err)) << err;
  SafeTensors st3 = std::move(st2);
  ASSERT_EQ(st3.tensors().size(), out.size());
  EXPECT_EQ(memcmp(st3.find("conv1.weight")->data, w.data(), w.size() * 4), 0);
  EXPECT_EQ(st3.find("conv1.weight"), &st3.tensors()[0]);

  // No metadata: no __metadata__ entry; an empty file of tensors is valid too.
  ASSERT_TRUE(writeSafeTensors(path, {}, {}, err)) << err;
  raw = readFile(path);
  EXPECT_EQ(std::string(raw.begin() + 8, raw.end()), "{}      ");
  ASSERT_TRUE(st.load(path, err)) << err;
  EXPECT_TRUE(st.tensors().empty());
  EXPECT_TRUE(st.metadata().empty());
}

TEST(SafeTensors, ManyTensorsKeepHeaderOrder) {
  // Header order survives without quadratic lookups (ResNet-152 has about 900 tensors; LLMs more).
  TempDir dir;
  const int n = 20000;
  std::vector<int32_t> vals(n);
  std::vector<TensorOut> out;
  for (int i = 0; i < n; ++i) {
    vals[i] = i;
    out.push_back({"t" + std::to_string((i * 7919) % n), DType::I32, {1}, &vals[i], 4});
  }
  std::string path = dir / "many.safetensors", err;
  ASSERT_TRUE(writeSafeTensors(path, out, {}, err)) << err;
  SafeTensors st;
  ASSERT_TRUE(st.load(path, err)) << err;
  ASSERT_EQ(st.tensors().size(), (size_t)n);
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(st.tensors()[i].name, out[i].name);
    int32_t v;
    memcpy(&v, st.find(out[i].name)->data, 4);
    ASSERT_EQ(v, i);
  }
}

TEST(SafeTensors, OverwriteReplacesTheFile) {
  TempDir dir;
  std::string path = dir / "w.safetensors", err;
  float a = 1.0f, b[2] = {2.0f, 3.0f};
  ASSERT_TRUE(writeSafeTensors(path, {{"a", DType::F32, {1}, &a, 4}}, {}, err)) << err;
  ASSERT_TRUE(writeSafeTensors(path, {{"b", DType::F32, {2}, b, 8}}, {}, err)) << err;
  SafeTensors st;
  ASSERT_TRUE(st.load(path, err)) << err;
  ASSERT_EQ(st.tensors().size(), 1u);
  EXPECT_EQ(st.tensors()[0].name, "b");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"w.safetensors"});
}

TEST(SafeTensors, ReadsWhatPythonWrites) {
  SafeTensors st;
  std::string err;
  ASSERT_TRUE(st.parse(kPythonFile, "py.safetensors", err)) << err;
  checkPythonFile(st);
  TempDir dir;
  writeFile(dir / "py.safetensors", kPythonFile);
  SafeTensors st2;
  ASSERT_TRUE(st2.load(dir / "py.safetensors", err)) << err;
  checkPythonFile(st2);
  // Trailing padding spaces in the header (as the Rust writer adds) and a null __metadata__ are fine.
  std::string h = "{\"__metadata__\":null," + ent("x", "U8", "[2]", 0, 2) + "}";
  while (h.size() % 8) h += ' ';
  ASSERT_TRUE(st.parse(stFile(h, {7, 9}), "pad", err)) << err;
  EXPECT_EQ(st.find("x")->data[1], 9);
  // Data stored in another order than the header's.
  h = "{" + ent("first", "U8", "[1]", 1, 2) + "," + ent("second", "U8", "[1]", 0, 1) + "}";
  ASSERT_TRUE(st.parse(stFile(h, {5, 6}), "order", err)) << err;
  EXPECT_EQ(st.tensors()[0].name, "first");
  EXPECT_EQ(st.tensors()[0].data[0], 6);
  EXPECT_EQ(st.tensors()[1].data[0], 5);
  // Zero-sized tensors may share an offset with a neighbour.
  h = "{" + ent("a", "F32", "[0]", 0, 0) + "," + ent("b", "U8", "[1]", 0, 1) + "," + ent("c", "I64", "[2,0]", 1, 1) + "}";
  ASSERT_TRUE(st.parse(stFile(h, {1}), "zero", err)) << err;
  EXPECT_EQ(st.tensors().size(), 3u);
}

TEST(SafeTensors, RejectsShortFilesAndBadHeaderLengths) {
  EXPECT_EQ(rejectMsg({1, 2, 3, 4, 5}), "f.safetensors: file is 5 bytes long, too short for the 8-byte header length");
  EXPECT_HAS(rejectMsg({}), "file is 0 bytes long");
  std::vector<uint8_t> big = {0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0, '{', '}'};  // 100,000,001
  EXPECT_EQ(rejectMsg(big), "f.safetensors: header length 100000001 is larger than the limit of 100000000 bytes");
  std::vector<uint8_t> huge = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
  EXPECT_HAS(rejectMsg(huge), "header length 18446744073709551615 is larger than the limit");
  std::vector<uint8_t> past = {20, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
  EXPECT_EQ(rejectMsg(past), "f.safetensors: header length 20 reaches past the end of the file (10 bytes)");
}

TEST(SafeTensors, RejectsBadHeaderText) {
  EXPECT_HAS(reject("{\"a\xff\":1}", 0), "header is not valid UTF-8 (bad byte 0xff at header offset 3)");
  EXPECT_HAS(reject("{\"\xc0\xaf\":1}", 0), "not valid UTF-8");       // overlong '/'
  EXPECT_HAS(reject("{\"\xed\xa0\x80\":1}", 0), "not valid UTF-8");   // a surrogate
  EXPECT_HAS(reject("{\"\xe2\x82\":1}", 0), "not valid UTF-8");       // truncated sequence
  EXPECT_HAS(reject("{\"a\":", 0), "header is not valid JSON: parse error");
  EXPECT_HAS(reject("", 0), "header is not valid JSON");
  EXPECT_HAS(reject("{}x", 0), "header is not valid JSON");
  EXPECT_HAS(reject(std::string("{}\0\0", 4), 0), "header is not valid JSON: it contains a NUL byte at header offset 2");
  EXPECT_HAS(reject(std::string("{}\0junk", 6), 0), "NUL byte");
  EXPECT_EQ(reject("[1,2]", 0), "f.safetensors: header is not a JSON object (it is an array)");
  EXPECT_HAS(reject("\"s\"", 0), "header is not a JSON object (it is string)");
  EXPECT_HAS(reject(std::string(100, '[') + std::string(100, ']'), 0), "nests deeper than 64 levels");
}

TEST(SafeTensors, RejectsMalformedEntries) {
  EXPECT_EQ(reject("{\"a\":[1]}", 0),
            "f.safetensors: tensor 'a': entry must be a JSON object with dtype, shape and data_offsets, not array");
  EXPECT_EQ(reject("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "f.safetensors: tensor 'a': missing \"dtype\"");
  EXPECT_HAS(reject("{\"a\":{\"dtype\":1,\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "tensor 'a': \"dtype\" must be a string, not number");
  EXPECT_HAS(reject("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4), "tensor 'a': missing \"shape\"");
  EXPECT_HAS(reject("{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4), "tensor 'a': \"shape\" must be an array of integers, not number");
  EXPECT_HAS(reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4), "\"shape\" must be an array of integers, but it holds 1.5");
  EXPECT_HAS(reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4), "but it holds \"1\"");
  EXPECT_HAS(reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), "tensor 'a': missing \"data_offsets\"");
  EXPECT_HAS(reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4),
             "tensor 'a': \"data_offsets\" must be two non-negative integers [begin, end], not [0]");
  EXPECT_HAS(reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4), "must be two non-negative integers");
  EXPECT_HAS(reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4), "must be two non-negative integers");
  EXPECT_HAS(reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}}", 4), "must be two non-negative integers");
  EXPECT_HAS(reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"b\":0}}}", 4), "must be two non-negative integers");
  EXPECT_HAS(reject("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
             "tensor 'a': duplicate key 'dtype'");
}

TEST(SafeTensors, RejectsUnknownDTypeAndBadShapes) {
  EXPECT_HAS(reject("{" + ent("a", "F8_E4M3", "[1]", 0, 1) + "}", 1), "f.safetensors: tensor 'a': unknown dtype 'F8_E4M3' (known: F32");
  EXPECT_HAS(reject("{" + ent("a", "f32", "[1]", 0, 4) + "}", 4), "unknown dtype 'f32'");
  EXPECT_EQ(reject("{" + ent("a", "F32", "[2,-3]", 0, 4) + "}", 4), "f.safetensors: tensor 'a': negative dimension -3 in shape [2,-3]");
  // 2^62 elements of F32 overflow int64 only when multiplied by the dtype size.
  EXPECT_EQ(reject("{" + ent("a", "F32", "[4611686018427387904]", 0, 4) + "}", 4),
            "f.safetensors: tensor 'a': shape [4611686018427387904] of F32 is too large: its size in bytes overflows a 64-bit integer");
  EXPECT_HAS(reject("{" + ent("a", "U8", "[4294967296,4294967296]", 0, 4) + "}", 4), "overflows a 64-bit integer");
  EXPECT_HAS(reject("{" + ent("a", "U8", "[18446744073709551615]", 0, 4) + "}", 4), "overflows a 64-bit integer");
  // Element count x size differs from end - begin: the message the brief asks for, verbatim.
  SafeTensors st;
  std::string err;
  EXPECT_FALSE(st.parse(stFile("{" + ent("conv1.weight", "F32", "[6,1,5,5]", 0, 96) + "}", zeros(96)), "weights.safetensors", err));
  EXPECT_EQ(err, "weights.safetensors: tensor 'conv1.weight': data_offsets [0, 96] hold 96 bytes but shape [6,1,5,5] of F32 needs 600");
  EXPECT_HAS(reject("{" + ent("s", "I64", "[]", 0, 4) + "}", 4), "tensor 's': data_offsets [0, 4] hold 4 bytes but shape [] of I64 needs 8");
  EXPECT_EQ(reject("{" + ent("a", "U8", "[0]", 4, 0) + "}", 4), "f.safetensors: tensor 'a': data_offsets [4, 0] begin after they end");
}

TEST(SafeTensors, RejectsGapsOverlapsAndWrongDataLength) {
  // A gap at the start, and between two tensors.
  EXPECT_EQ(reject("{" + ent("a", "U8", "[4]", 4, 8) + "}", 8),
            "f.safetensors: tensor 'a': data_offsets [4, 8] leave a gap: bytes [0, 4) of the data belong to no tensor");
  EXPECT_HAS(reject("{" + ent("a", "U8", "[4]", 0, 4) + "," + ent("b", "U8", "[4]", 6, 10) + "}", 10),
             "tensor 'b': data_offsets [6, 10] leave a gap: bytes [4, 6)");
  // Overlap (also an exact alias).
  EXPECT_EQ(reject("{" + ent("a", "U8", "[4]", 0, 4) + "," + ent("b", "U8", "[4]", 2, 6) + "}", 6),
            "f.safetensors: tensor 'b': data_offsets [2, 6] overlap tensor 'a' at [0, 4]");
  EXPECT_HAS(reject("{" + ent("a", "U8", "[4]", 0, 4) + "," + ent("b", "U8", "[4]", 0, 4) + "}", 4), "overlap tensor");
  // A zero-sized tensor inside another one.
  EXPECT_HAS(reject("{" + ent("a", "U8", "[4]", 0, 4) + "," + ent("z", "U8", "[0]", 2, 2) + "}", 4), "tensor 'z': data_offsets [2, 2] overlap tensor 'a'");
  // Data past the end of the file, and data that stops before it.
  EXPECT_EQ(reject("{" + ent("a", "F32", "[2]", 0, 8) + "}", 6),
            "f.safetensors: tensor 'a': data_offsets [0, 8] reach past the end of the file (its data section has 6 bytes)");
  EXPECT_EQ(reject("{" + ent("a", "F32", "[2]", 0, 8) + "}", 9),
            "f.safetensors: the tensors' data ends at byte 8 of the data section, but the file has 1 more bytes after it "
            "(data must end exactly at end of file)");
  EXPECT_HAS(reject("{}", 3), "data ends at byte 0 of the data section, but the file has 3 more bytes");
}

TEST(SafeTensors, RejectsDuplicatesAndBadMetadata) {
  EXPECT_EQ(reject("{" + ent("a", "U8", "[1]", 0, 1) + "," + ent("a", "U8", "[1]", 1, 2) + "}", 2),
            "f.safetensors: duplicate tensor name 'a'");
  EXPECT_HAS(reject("{\"__metadata__\":{},\"__metadata__\":{}}", 0), "more than one __metadata__ entry");
  EXPECT_EQ(reject("{\"__metadata__\":[\"a\"]}", 0), "f.safetensors: __metadata__ must be a JSON object mapping strings to strings, not array");
  EXPECT_HAS(reject("{\"__metadata__\":\"x\"}", 0), "__metadata__ must be a JSON object mapping strings to strings, not string");
  EXPECT_EQ(reject("{\"__metadata__\":{\"epoch\":3}}", 0), "f.safetensors: __metadata__ value of 'epoch' must be a string, not number");
  EXPECT_HAS(reject("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0), "__metadata__ has duplicate key 'a'");
  EXPECT_EQ(reject("[{\"a\":1,\"a\":2}]", 0), "f.safetensors: header JSON has duplicate key 'a'");
  // Control characters in names are escaped in messages.
  EXPECT_HAS(reject("{\"a\\nb\":[]}", 0), "tensor 'a\\x0ab':");
}

TEST(SafeTensors, LoadReportsFileProblems) {
  TempDir dir;
  SafeTensors st;
  std::string err;
  EXPECT_FALSE(st.load(dir / "missing.safetensors", err));
  EXPECT_EQ(err, dir / "missing.safetensors" + ": cannot open: No such file or directory");
  EXPECT_FALSE(st.load(dir.path(), err));
  EXPECT_EQ(err, dir.path() + ": is a directory, not a safetensors file");
  writeFile(dir / "short", {1, 2});
  EXPECT_FALSE(st.load(dir / "short", err));
  EXPECT_EQ(err, dir / "short" + ": file is 2 bytes long, too short for the 8-byte header length");
  // A failed load leaves the object empty.
  ASSERT_TRUE(st.parse(kPythonFile, "py", err)) << err;
  EXPECT_FALSE(st.load(dir / "short", err));
  EXPECT_TRUE(st.tensors().empty());
  EXPECT_EQ(st.find("w"), nullptr);
  EXPECT_TRUE(st.metadata().empty());
}

TEST(SafeTensors, WriterRejectsBadArguments) {
  TempDir dir;
  std::string path = dir / "w.safetensors", err;
  float v[4] = {};
  EXPECT_FALSE(writeSafeTensors(path, {{"a", DType::F32, {3}, v, 16}}, {}, err));
  EXPECT_EQ(err, "cannot write '" + path + "': tensor 'a': shape [3] of F32 needs 12 bytes but 16 were given");
  EXPECT_FALSE(writeSafeTensors(path, {{"a", DType::F32, {1}, v, 4}, {"a", DType::F32, {1}, v, 4}}, {}, err));
  EXPECT_HAS(err, "duplicate tensor name 'a'");
  EXPECT_FALSE(writeSafeTensors(path, {{"__metadata__", DType::F32, {1}, v, 4}}, {}, err));
  EXPECT_HAS(err, "may not be named __metadata__");
  EXPECT_FALSE(writeSafeTensors(path, {{"a", DType::F32, {-1}, v, 4}}, {}, err));
  EXPECT_HAS(err, "negative dimension");
  EXPECT_FALSE(writeSafeTensors(path, {{"a", DType::F32, {1}, nullptr, 4}}, {}, err));
  EXPECT_HAS(err, "tensor 'a': no data");
  EXPECT_FALSE(writeSafeTensors(path, {{"bad\xff", DType::F32, {1}, v, 4}}, {}, err));
  EXPECT_HAS(err, "tensor name 'bad\xff' is not valid UTF-8");
  EXPECT_FALSE(writeSafeTensors(path, {}, {{"k", "v\xc0"}}, err));
  EXPECT_EQ(err, "cannot write '" + path + "': a metadata string is not valid UTF-8");
  EXPECT_TRUE(dir.entries().empty());
}

TEST(SafeTensors, WriterFailureLeavesOldFileIntact) {
  TempDir dir;
  std::string path = dir / "w.safetensors", err;
  float old = 42.0f;
  ASSERT_TRUE(writeSafeTensors(path, {{"old", DType::F32, {1}, &old, 4}}, {}, err)) << err;
  std::vector<uint8_t> before = readFile(path);
  float v = 1.0f;

  // Into a folder that does not exist.
  std::string missing = dir / "no/such/dir/w.safetensors";
  EXPECT_FALSE(writeSafeTensors(missing, {{"a", DType::F32, {1}, &v, 4}}, {}, err));
  EXPECT_EQ(err, "cannot write '" + missing + "': No such file or directory");

  // Onto a path that is a folder (with a file inside that must survive).
  ASSERT_EQ(mkdir((dir / "sub").c_str(), 0755), 0);
  writeFile(dir / "sub/keep", {1, 2, 3});
  EXPECT_FALSE(writeSafeTensors(dir / "sub", {{"a", DType::F32, {1}, &v, 4}}, {}, err));
  EXPECT_EQ(err, "cannot write '" + dir / "sub" + "': Is a directory");
  EXPECT_EQ(TempDir::list(dir / "sub"), std::vector<std::string>{"keep"});

  // A write that fails part way (the file size limit stands in for a full disk): the old file is
  // untouched and the temporary file is gone.
  std::vector<float> big(1 << 16, 3.0f);
  struct rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  struct rlimit lim = saved;
  lim.rlim_cur = 4096;
  auto oldHandler = signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
  bool ok = writeSafeTensors(path, {{"big", DType::F32, {(int64_t)big.size()}, big.data(), big.size() * 4}}, {}, err);
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, oldHandler);
  EXPECT_FALSE(ok);
  EXPECT_EQ(err, "cannot write '" + path + "': File too large");

  EXPECT_EQ(readFile(path), before);
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"sub", "w.safetensors"}));
  SafeTensors st;
  ASSERT_TRUE(st.load(path, err)) << err;
  EXPECT_EQ(st.tensors()[0].name, "old");
}

// Every truncation and many random corruptions of valid files: each must load or fail with a message;
// a file that loads must be self-consistent. Run under -fsanitize=address,undefined to catch
// over-reads.
namespace {
void checkConsistent(const SafeTensors& st) {
  uint64_t sum = 0;
  for (const auto& t : st.tensors()) {
    int64_t n = 1;
    for (int64_t d : t.shape) {
      ASSERT_GE(d, 0);
      n *= d;
    }
    ASSERT_EQ((uint64_t)n * dtypeSize(t.dtype), t.bytes);
    ASSERT_NE(t.data, nullptr);
    for (size_t i = 0; i < t.bytes; ++i) sum += t.data[i];  // touches every byte
  }
  (void)sum;
}

void tryBytes(const std::vector<uint8_t>& b, const std::string& what) {
  SafeTensors st;
  std::string err;
  if (st.parse(b, "fuzz", err)) {
    checkConsistent(st);
  } else {
    EXPECT_EQ(err.rfind("fuzz: ", 0), 0u) << what << ": " << err;
    EXPECT_GT(err.size(), 6u) << what;
    EXPECT_TRUE(st.tensors().empty()) << what;
  }
}
}  // namespace

TEST(SafeTensors, SurvivesTruncationAndCorruption) {
  TempDir dir;
  std::string err;
  std::vector<float> w(30);
  for (size_t i = 0; i < w.size(); ++i) w[i] = (float)i;
  int64_t s = 7;
  uint16_t h[3] = {1, 2, 3};
  ASSERT_TRUE(writeSafeTensors(dir / "v.safetensors",
                               {{"w", DType::F32, {5, 6}, w.data(), 120}, {"s", DType::I64, {}, &s, 8},
                                {"e", DType::BF16, {0}, nullptr, 0}, {"h", DType::F16, {3}, h, 6}},
                               {{"format", "pt"}}, err))
      << err;
  const std::vector<std::vector<uint8_t>> seeds = {readFile(dir / "v.safetensors"), kPythonFile};

  for (const auto& seed : seeds) {
    // Every truncation, from memory and (for the streaming reader) from a file.
    for (size_t len = 0; len < seed.size(); ++len) {
      std::vector<uint8_t> b(seed.begin(), seed.begin() + len);
      tryBytes(b, "truncated to " + std::to_string(len));
      SafeTensors st;
      writeFile(dir / "t", b);
      EXPECT_FALSE(st.load(dir / "t", err)) << len;
      EXPECT_EQ(err.rfind(dir / "t: ", 0), 0u) << err;
    }
    // Random byte flips, single and multiple, plus bytes set to JSON-significant characters.
    std::mt19937 rng(12345);
    const char special[] = "{}[],:\"0123456789-.e \\";
    for (int iter = 0; iter < 20000; ++iter) {
      std::vector<uint8_t> b = seed;
      int flips = 1 + (int)(rng() % 4);
      for (int k = 0; k < flips; ++k) {
        size_t pos = rng() % b.size();
        switch (rng() % 3) {
          case 0: b[pos] ^= (uint8_t)(1u << (rng() % 8)); break;
          case 1: b[pos] = (uint8_t)rng(); break;
          default: b[pos] = (uint8_t)special[rng() % (sizeof special - 1)]; break;
        }
      }
      if (rng() % 8 == 0) b.resize(rng() % (b.size() + 1));
      tryBytes(b, "iteration " + std::to_string(iter));
      if (::testing::Test::HasFailure()) return;
    }
  }
}
