// median.h: the median of a list of timings (the statistic every speed figure of cnnc reports:
// one run's times swing by 2x on a shared machine, a median of several does not).
#pragma once
#include <algorithm>
#include <vector>

namespace cnnc::rt {

inline double medianOf(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace cnnc::rt
