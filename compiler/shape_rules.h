// shape_rules.h: output-size arithmetic of each op, exactly as PyTorch computes it. Pure functions,
// so they are unit-tested on their own.
#pragma once
#include <cstdint>
#include <vector>

namespace cnnc {

// Conv and floor-mode pooling: floor((in + 2p - d(k-1) - 1) / s) + 1. May return <= 0.
int64_t convOutSize(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation);

// The same with p0 rows (columns) before and p1 after: per-side padding.
int64_t convOutSizeSides(int64_t in, int64_t kernel, int64_t stride, int64_t p0, int64_t p1, int64_t dilation);

// Transposed conv (nn.ConvTranspose2d): (in - 1) s - 2p + d(k-1) + output_padding + 1.
int64_t convTransposeOutSize(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation, int64_t outPad);

// nn.Upsample with scale_factor: floor(in * scale), in double as PyTorch computes it.
int64_t upsampleOutSize(int64_t in, double scale);

// Pooling with PyTorch's ceil_mode rule: the last window must start inside the padded input.
int64_t poolOutSize(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation, bool ceil);

// The shape of an elementwise op on per-image shapes a and b (add, mul), NumPy's rule on equal
// ranks: each dimension equal, or 1 in one of them (which is repeated). Returns the index of the
// first dimension that breaks the rule, or -1 (then `out` holds the result). Ranks must be equal.
int broadcastDims(const std::vector<int64_t>& a, const std::vector<int64_t>& b, std::vector<int64_t>& out);

// Checked arithmetic; false on overflow of int64.
bool mulOk(int64_t a, int64_t b, int64_t& out);
bool addOk(int64_t a, int64_t b, int64_t& out);

}  // namespace cnnc
