// shape.h: tensor shapes as lists of dimensions, shared by the graph (compiler/graph.h), the plan
// and the runtime's copy of it (runtime/plan.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cnnc {

using Dims = std::vector<int64_t>;

// The number of elements: the product of the dimensions (1 for a scalar, []).
inline int64_t numel(const Dims& d) {
  int64_t n = 1;
  for (auto x : d) n *= x;
  return n;
}

// "[64,56,56]"
inline std::string dimsStr(const Dims& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

}  // namespace cnnc
