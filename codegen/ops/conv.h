// conv.h: the rules of the conv op (conv.cpp, conv_winograd.cpp, conv_depthwise.cpp) that the default schedules and
// the tuner read.
#pragma once
#include "kernel.h"

namespace cnnc::codegen {

// The working set that the conv schedules' cache rules keep within: half of the Intel 6/207's 2 MiB L2
// per core (all of a Zen 4's 1 MiB), for an image's input, dy or sums, or Winograd's weights. The
// rules that read it were each measured on that Intel only.
constexpr int64_t kCacheBudget = 1 << 20;

// One input channel per output channel: a depthwise conv of C input and O output channels in
// `groups` groups (the one test behind the kernel rules below and the tuner's).
inline bool isDepthwise(int64_t C, int64_t O, int64_t groups) { return groups > 1 && groups == C && O == C; }

// Whether `k` is a conv (or a conv's input gradient) the Winograd kernel computes: 3x3, stride 1,
// dilation 1, padding 1, ungrouped (same output size as input).
bool winogradApplies(const KernelSpec& k);
// Whether `k` is a weight gradient the Winograd kernel computes: of such a conv.
bool winogradWeightApplies(const KernelSpec& k);
// The Winograd weight gradient's block of tile rows (Schedule::tileY): the most rows dividing the
// tile rows whose transformed dy or x (16 floats per tile and channel) stay within `bytes`.
int winogradWeightRows(const KernelSpec& k, int64_t bytes);
// Whether a conv, its input gradient or its weight gradient can walk its planes as flat rows
// (Schedule::flat, conv_depthwise.cpp): convs and input gradients when depthwise, stride 1, output
// rows as long as the input's; weight gradients of any grouped conv.
bool depthwiseFlatApplies(const KernelSpec& k);
// Whether a conv can take the direct depthwise form (Schedule::flat 4, conv_depthwise.cpp): a
// depthwise conv or stride-1 input gradient on the CPU, output rows of at least 4.
bool depthwiseDirectApplies(const KernelSpec& k);
// The flat forward walk's choices (conv_depthwise.cpp), shared with the tuner's cost model: output
// channels per parallel task (of C), and whether the output is stored as vectors of `vec` over the
// fused plane of W-pixel rows rather than row by row.
int depthwiseFlatTask(const Schedule& s, int64_t C, int64_t plane);
bool depthwiseFlatFused(const Schedule& s, int64_t W, int64_t plane, int vec);

// The lanes of the weight gradient's output-channel vectors for a grouped, not depthwise, conv:
// the widest of 16, 8, 4 (within the target's vector) that divides the channels of a group; 0 where
// none does (then the flat form, conv_depthwise.cpp).
int groupedWeightVec(const KernelSpec& k, int lanes);

// Whether channel-vector tiles of `t` pixels suit `n` columns or rows of k's output: for a forward
// conv or a stride-1 input gradient, whole tiles covering n with at most a tenth more
// (scheduleConvChannels rounds the sums up to whole tiles; their reads stay inside a padded copy
// made over the rounded region, or are clamped into an input read in place); for a strided input
// gradient's phases, divisors of n. The defaults and the tuner take only such tiles.
bool chanVecTileFits(const KernelSpec& k, int64_t n, int t);

// Whether a forward conv with channel vectors (k.schedule chosen) walks its blocks of output channels
// inside strips of rows by default (Schedule::order 1, conv.cpp's scheduleConvChannels).
bool channelBlocksInStrips(const KernelSpec& k);

// A strided input gradient without dilation, computed per phase of the stride (convBackDataPhases).
bool usesPhases(const KernelSpec& k);

// Whether k's channel-vector form can pad its last block of channels (blocks that do not divide
// them): a forward conv, or an input gradient not split by phase (scheduleConvChannels' guarded
// tail, blockedCopy's clamped channel). The defaults and the tuner each bound the padding.
bool padsChannelBlocks(const KernelSpec& k);

}  // namespace cnnc::codegen
