// conv_weight.h: the sources and output of an ungrouped conv's weight gradient, shared by its
// direct forms (conv.cpp) and its Winograd form (conv_winograd.cpp).
#pragma once
#include "op_helpers.h"

namespace cnnc::codegen {

// The inputs of an ungrouped conv's weight gradient, arranged for its register tiles: dy transposed
// channels-innermost (dyT(co, ox, oy, n), channels clamped because tiles round O up) and x zero-padded
// (xpad(x, y, c, n), shifted by the padding).
struct WeightGradSources {
  Halide::ImageParam dy, x;
  std::vector<Halide::Argument> args;
  Halide::Func dyRows{"convbw_dyrows"}, dyT{"convbw_dyT"}, xpad{"convbw_xpad"};
  // The stride at which the sums read xpad: the conv's, or 1 where xpad is x subsampled (a strided
  // 1x1 conv without padding reads only every stride-th pixel: copied whole, 3 of every 4 copied
  // floats of a stride-2 one went unread).
  int sx = 1, sy = 1;
  bool subsampled = false;
};

WeightGradSources weightGradSources(const KernelSpec& k);
// xpad's CPU schedule, computed where the caller puts it.
void scheduleWeightSource(WeightGradSources& s, const KernelSpec& k);
// dyT computed at `at` (at `where`; every image's at the root when `at` is undefined), transposed
// through registers in blocks of up to 16 x 16 (conv.cpp says why).
void scheduleTranspose(WeightGradSources& s, Halide::Func at, Halide::VarOrRVar where, int vec, int Wo);
// The gradient's [O, C, kh, kw] output, sums held output-channels innermost, transposed in blocks
// of 16 x 16; `sum`, where given, computed per block of 16 output channels. Returns the loop over
// those blocks (parallel).
Halide::Var scheduleWeightOut(Halide::Func out, Halide::Func sum = Halide::Func(), int vec = 1);

}  // namespace cnnc::codegen
