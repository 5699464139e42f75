// packed_layout.h: the layout of conv weights packed for channel-vectorised kernels. A weight
// [O, C, kh, kw] is stored as [ceil(O/T), C, kh, kw, T]: blocks of T output channels, the T
// channels of a block innermost, so the kernel loads T output channels of one tap as one vector. T
// is the schedule's vec * chanVec. The plan records the packed shape (codegen), the runtime
// packs the weights at load, the tuner packs its test weights, lowering declares the buffer.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace cnnc {

// [O, C, kh, kw] -> [ceil(O/T), C, kh, kw, T]. Where T does not divide O (RegNet's 440 channels
// in blocks of 32), the last block's lanes past O hold zeros. A per-pixel linear layer runs as a
// 1x1 conv but keeps Linear's [O, C] weight: missing dimensions count as 1.
inline std::vector<int64_t> packedWeightShape(const std::vector<int64_t>& oihw, int64_t T) {
  auto dim = [&](size_t i) { return i < oihw.size() ? oihw[i] : int64_t(1); };
  return {(dim(0) + T - 1) / T, dim(1), dim(2), dim(3), T};
}

// Output channel o lies in lane o % T of block o / T, and lane t of block b holds channel b * T + t.
// Templates, so that the same three serve integers and Halide expressions (lowering).
template <class I, class J>
auto packedBlockOf(I o, J T) { return o / T; }
template <class I, class J>
auto packedLaneOf(I o, J T) { return o % T; }
template <class I, class J>
auto packedWeightChannel(I block, I t, J T) { return block * T + t; }

// Where element (o, j) of the unpacked weight, seen as [O, rest] (rest = C*kh*kw, j the flat index
// of (c, y, x)), lies in the packed one.
inline int64_t packedWeightOffset(int64_t o, int64_t j, int64_t rest, int64_t T) {
  return (packedBlockOf(o, T) * rest + j) * T + packedLaneOf(o, T);
}

// Packs `src` ([O, rest], row-major) into `dst` (ceil(O/T) x rest x T elements), zeros in the
// lanes past O.
template <class F>
void packWeightBlocks(const F* src, F* dst, int64_t O, int64_t rest, int64_t T) {
  std::fill(dst, dst + (O + T - 1) / T * T * rest, F(0));
  for (int64_t o = 0; o < O; ++o)
    for (int64_t j = 0; j < rest; ++j) dst[packedWeightOffset(o, j, rest, T)] = src[o * rest + j];
}

}  // namespace cnnc
