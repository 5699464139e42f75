// shape_rules.cpp: see shape_rules.h.
#include "shape_rules.h"

#include <cmath>
#include <cstddef>

namespace cnnc {

// Floor division that rounds towards negative infinity, as PyTorch's div_rtn does.
static int64_t divFloor(int64_t a, int64_t b) {
  int64_t q = a / b, r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? q - 1 : q;
}

int64_t convOutSize(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) { return convOutSizeSides(in, k, s, p, p, d); }

int64_t convOutSizeSides(int64_t in, int64_t k, int64_t s, int64_t p0, int64_t p1, int64_t d) {
  return divFloor(in + p0 + p1 - d * (k - 1) - 1, s) + 1;
}

int64_t convTransposeOutSize(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, int64_t outPad) {
  return (in - 1) * s - 2 * p + d * (k - 1) + outPad + 1;
}

int64_t upsampleOutSize(int64_t in, double scale) { return (int64_t)std::floor((double)in * scale); }

int64_t poolOutSize(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil) {
  int64_t out = divFloor(in + 2 * p - d * (k - 1) - 1 + (ceil ? s - 1 : 0), s) + 1;
  if (ceil && (out - 1) * s >= in + p) --out;
  return out;
}

bool mulOk(int64_t a, int64_t b, int64_t& out) { return !__builtin_mul_overflow(a, b, &out); }
bool addOk(int64_t a, int64_t b, int64_t& out) { return !__builtin_add_overflow(a, b, &out); }

int broadcastDims(const std::vector<int64_t>& a, const std::vector<int64_t>& b, std::vector<int64_t>& out) {
  out = a;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (a[i] == b[i] || b[i] == 1) continue;
    if (a[i] != 1) return (int)i;
    out[i] = b[i];
  }
  return -1;
}

}  // namespace cnnc
