// winograd_weights.h: conv weights transformed for Winograd F(2x2, 3x3) (codegen/ops/conv_winograd.cpp),
// U = G g G^T for each filter g (3x3) of output channel o and input channel c: 16 values, stored
// [16, C, O], so that a kernel's register tile reads the transformed taps of consecutive output
// channels from consecutive floats. Inference kernels take U transformed once at load (the runtime
// and the tuner call transformWinogradWeights); training kernels compute it in every call from
// the same table, since the weights change every step.
#pragma once
#include <cstdint>
#include <vector>

namespace cnnc {

inline constexpr int kWinogradTaps = 16;  // (m + 2)^2 for m = 2
// G, 4 x 3, row-major.
inline constexpr float kWinogradG[12] = {1, 0, 0, .5f, .5f, .5f, .5f, -.5f, .5f, 0, 0, 1};

// [O, C, 3, 3] -> [16, C, O].
inline std::vector<int64_t> winogradWeightShape(int64_t O, int64_t C) { return {kWinogradTaps, C, O}; }

// U[e][c][o] for e = p + 4 q: the sum over j (rows of g) and i (columns) of G[p][i] G[q][j] g[j][i],
// in that order, terms with a zero coefficient left out. The kernels that compute U themselves
// (transform2d in conv_winograd.cpp) sum in the same order; the coefficients are powers of two, so
// no product rounds and both give the same floats.
template <class F>
void transformWinogradWeights(const F* w, F* U, int64_t O, int64_t C) {
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c) {
      const F* g = w + (o * C + c) * 9;
      for (int q = 0; q < 4; ++q)
        for (int p = 0; p < 4; ++p) {
          F s = 0;
          bool any = false;
          for (int j = 0; j < 3; ++j)
            for (int i = 0; i < 3; ++i) {
              float k = kWinogradG[p * 3 + i] * kWinogradG[q * 3 + j];
              if (k == 0) continue;
              F t = k == 1 ? g[j * 3 + i] : k == -1 ? -g[j * 3 + i] : g[j * 3 + i] * F(k);
              s = any ? s + t : t;
              any = true;
            }
          U[((p + 4 * q) * C + c) * O + o] = s;
        }
    }
}

}  // namespace cnnc
