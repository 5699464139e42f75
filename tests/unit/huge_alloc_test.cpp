// Large blocks on 2 MiB pages (common/huge_alloc.h): the activation arena's allocator (MiniVGG's
// training step: 112 -> 104 ms), a loaded safetensors file's tensors, and the executables' operator
// new (runtime/big_pages.cpp, linked into this test as into every executable; VGG-16's `infer`:
// 4.4 -> 1.9 s, nearly all of it page faults on 4 KiB pages).
#include "common/huge_alloc.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "safetensors.h"

using cnnc::HugePageAllocator;

namespace {

// The AnonHugePages (kB) of the mapping of this process that contains `p`; -1 if not found.
long hugeKbAt(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  auto addr = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  while (std::getline(smaps, line)) {
    unsigned long lo, hi;
    if (sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      inside = addr >= lo && addr < hi;
      continue;
    }
    long kb;
    if (inside && sscanf(line.c_str(), "AnonHugePages: %ld kB", &kb) == 1) return kb;
  }
  return -1;
}

// "always [madvise] never": the mode in brackets.
std::string thpMode() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto a = s.find('['), b = s.find(']');
  return a == std::string::npos || b == std::string::npos ? "" : s.substr(a + 1, b - a - 1);
}

}  // namespace

TEST(HugePageAllocator, AlignedAndUsable) {
  std::vector<float, HugePageAllocator<float>> v(3 << 20, 1.0f);  // 12 MiB
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % (2u << 20), 0u);
  v.back() = 2.0f;
  EXPECT_EQ(v.front() + v.back(), 3.0f);
  v.assign(5, 0.5f);  // reuse after shrinking keeps the same storage semantics as std::vector
  EXPECT_EQ(v.size(), 5u);
  HugePageAllocator<float> a;
  float* p = a.allocate(0);  // an empty arena (a net without activations) still gets valid storage
  EXPECT_NE(p, nullptr);
  a.deallocate(p, 0);
}

TEST(HugePageAllocator, BackedByHugePagesWhereOffered) {
  std::string mode = thpMode();
  if (mode != "always" && mode != "madvise") GTEST_SKIP() << "transparent huge pages are '" << mode << "' here";
  std::vector<float, HugePageAllocator<float>> v(4 << 20, 0.0f);  // 16 MiB, touched by the fill
  long kb = hugeKbAt(v.data());
  ASSERT_GE(kb, 0) << "no mapping found for the arena";
  // The kernel may fall back to small pages under memory pressure; on an idle machine at least
  // one 2 MiB page of the 16 MiB is expected.
  EXPECT_GE(kb, 2048) << "AnonHugePages of the arena's mapping: " << kb << " kB";
}

TEST(HugePages, LoadedTensorsAndLargeNewBlocks) {
  std::string mode = thpMode();
  if (mode != "always" && mode != "madvise") GTEST_SKIP() << "transparent huge pages are '" << mode << "' here";
  std::vector<float> data(4 << 20, 0.25f);  // 16 MiB, from operator new (big_pages.cpp)
  long kb = hugeKbAt(data.data());
  ASSERT_GE(kb, 0);
  EXPECT_GE(kb, 2048) << "AnonHugePages of a 16 MiB std::vector's mapping: " << kb << " kB";
  EXPECT_EQ(reinterpret_cast<uintptr_t>(data.data()) % (2u << 20), 0u);

  std::string path = testing::TempDir() + "huge_pages_test.safetensors";
  std::string err;
  ASSERT_TRUE(cnnc::rt::writeSafeTensors(path, {{"w", cnnc::rt::DType::F32, {int64_t(data.size())}, data.data(), data.size() * 4}}, {}, err)) << err;
  cnnc::rt::SafeTensors st;
  ASSERT_TRUE(st.load(path, err)) << err;
  std::remove(path.c_str());
  const cnnc::rt::TensorView* t = st.find("w");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(reinterpret_cast<const float*>(t->data)[data.size() - 1], 0.25f);
  kb = hugeKbAt(t->data);
  EXPECT_GE(kb, 2048) << "AnonHugePages of a loaded 16 MiB tensor's mapping: " << kb << " kB";

  // Small blocks stay on malloc's heap: a few bytes are not rounded up to 2 MiB.
  auto small = std::make_unique<char[]>(100);
  EXPECT_NE(reinterpret_cast<uintptr_t>(small.get()) % (2u << 20), 0u);
}
