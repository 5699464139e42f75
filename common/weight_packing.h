// weight_packing.h: a conv weight rearranged at load for the kernel that reads it, in the layout
// the plan names (plan_schema::ConstPack). The runtime (weights at load) and the tuner (its test
// weights) both pack through packConvWeight, so a candidate is timed on what the net will pass.
#pragma once
#include <cstdint>
#include <vector>

#include "common/packed_layout.h"
#include "common/plan_schema.h"
#include "common/winograd_weights.h"

namespace cnnc {

// `w` is the weight [O, C, kh, kw] (`elems` floats), `packed` the rearranged shape the plan
// records, `dst` room for its elements: Blocked [ceil(O/T), C, kh, kw, T] (the last block
// zero-padded), Winograd [16, C, O]. Nothing for None.
inline void packConvWeight(plan_schema::ConstPack how, const float* w, int64_t elems, float* dst, const std::vector<int64_t>& packed) {
  if (how == plan_schema::ConstPack::Blocked) {
    int64_t T = packed.back(), rest = packed[1] * packed[2] * packed[3];
    packWeightBlocks(w, dst, elems / rest, rest, T);
  } else if (how == plan_schema::ConstPack::Winograd) {
    transformWinogradWeights(w, dst, packed[2], packed[1]);
  }
}

}  // namespace cnnc
