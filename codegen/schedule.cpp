// schedule.cpp: default schedules. Vector width: AVX-512 holds 16 floats, but rows of 7 or 14
// (ResNet's late layers) waste most of a 16-wide vector, so the width is the largest of 16/8/4
// that the row fills. Parallelism: batch x channels gives both cores work even at batch 1.
#include "schedule.h"

#include <algorithm>
#include <vector>

#include "Halide.h"
#include "gpu_schedule.h"
#include "kernel.h"
#include "ops/conv.h"

namespace cnnc::codegen {

std::string Schedule::str() const {
  std::string t = "vec=" + std::to_string(vec) + " tileC=" + std::to_string(tileC);
  if (tileX != 1 || tileY != 1) t += " tile=" + std::to_string(tileX) + "x" + std::to_string(tileY);
  if (chanVec) t += " cvec=" + std::to_string(chanVec);
  if (lanes != 16) t += " lanes=" + std::to_string(lanes);
  if (winograd) t += " wino=" + std::to_string(winograd);
  if (autoBatch) t += " auto=" + std::to_string(autoBatch);
  if (flat) t += flat == 1 ? " flat" : " flat=" + std::to_string(flat);
  if (task) t += " task=" + std::to_string(task);
  if (phase) t += " phase";
  if (order) t += " order=" + std::to_string(order);
  if (gpu) t += " gpu";
  return t;
}

bool isGpuTarget(const std::string& target) {
  Halide::Target t(target);
  return t.has_feature(Halide::Target::CUDA) || t.has_feature(Halide::Target::OpenCL);
}

Schedule gpuDefaultSchedule() {
  Schedule s;
  s.vec = 1;
  s.lanes = 16;
  s.gpu = true;
  return s;
}

int lanesOf(const std::string& target) {
  if (target.rfind("arm-", 0) == 0) return 4;
  Halide::Target t(target);
  if (t.has_feature(Halide::Target::AVX512)) return 16;
  return t.has_feature(Halide::Target::AVX2) ? 8 : 4;
}

// Vectors are at most two registers wide on NEON (one x86 register elsewhere).
static int widthFor(int64_t extent, int lanes) {
  if (extent >= 16 && lanes >= 8) return 16;
  if (extent >= 8) return 8;
  if (extent >= 4) return 4;
  return 1;
}

Schedule defaultSchedule(const KernelSpec& k, int lanes) {
  Schedule s;
  s.lanes = lanes;
  int64_t inner = k.out.size() == 3 ? k.out[2] : k.out[0];
  s.vec = widthFor(inner, lanes);
  // Strided max pools whose windows reach past the input (padding, ceil mode) read it through the
  // boundary condition's clamped indices, which Halide loads one float at a time; 4-wide vectors
  // assemble them with less shuffling than 16-wide ones (found by `cnnc tune`; in the nets at batch 1,
  // Intel 6/207: ResNet-18's 3x3 stride-2 pool 0.193 -> 0.125 ms, 1.67 -> 1.35 ms in its step at
  // batch 8; GoogLeNet's first two 0.50 -> 0.12 ms, SqueezeNet's 0.123 -> 0.103 ms). Stride-1 ones
  // (GoogLeNet's branch pools) gained nothing.
  const Attrs& pa = k.attrs;
  if (k.kind == KernelKind::MaxPool && (pa.pad[0] || pa.pad[1] || pa.ceil) && (pa.stride[0] > 1 || pa.stride[1] > 1)) s.vec = std::min(s.vec, 4);
  int regsPerVec = std::max(1, s.vec / lanes);
  // Conv: up to 8 output channels share each input vector; 8 accumulators + input + weights fit
  // easily in AVX-512's 32 (or AVX2's 16) vector registers.
  s.tileC = 1;
  // Depthwise weight gradients, and grouped ones whose groups no vector of 4, 8 or 16 channels
  // divides: flat (conv_depthwise.cpp). Groups of a multiple of 4 channels take the tiled form of
  // ungrouped convs, a vector per group (groupedWeightVec): RegNetY-400MF's grouped weight
  // gradients in its step at batch 16 on 3x224x224 (Intel 6/207, alternating runs) 51.5 -> 24.2 ms
  // (the stride-2 one at 56x56 20.7 -> 6.6 ms; the flat walk ran them at 8-17% of the FMA peak),
  // the whole step 385 -> 362 ms.
  if (k.kind == KernelKind::ConvBackWeight && depthwiseFlatApplies(k) && !groupedWeightVec(k, lanes)) {
    s.flat = 1;
    s.vec = lanes == 16 ? 16 : 8;
    return s;
  }
  // Weight gradients of 3x3 stride-1 convs by Winograd F(2x2, 3x3) (conv_winograd.cpp) where 64 or
  // more channels go in and out, rows hold 16 or more pixels, and a chunk's sums (16 x C x O floats)
  // fit in 1 MiB. Register tile: 2 vectors of 16 output channels x 8 input channels; blocks of
  // tile rows whose transformed dy and x stay within 256 KiB each. Measured in the nets' steps (AMD
  // EPYC family 26 model 2, medians of alternating profiled runs): ResNet-18 at batch 8, its four
  // 64-channel 56x56 gradients 18.4 -> 13.9 ms and three 128-channel 28x28 ones 14.6 -> 12.6 ms;
  // TinyResNet at batch 128, its 64-channel 16x16 ones 21.0 -> 17.9 ms; MiniVGG's 64-channel one
  // 6.7 -> 5.8 ms. Slower where left out: 32 channels (MiniVGG's 32x32 gradient 6.9 -> 7.3 ms) and
  // 8x8 planes (TinyResNet's 128-channel ones 18.8 -> 20.6 ms). Tiles of 4 x 4 and 1 x 16 channels
  // and blocks of 1 or 4 tile rows were 2-17% slower than these on ResNet-18's 56x56 layer.
  if (k.kind == KernelKind::ConvBackWeight && lanes == 16 && winogradWeightApplies(k)) {
    int64_t C = k.in[0], H = k.in[1], W = k.in[2], O = k.extraIns[0][0];
    if (C >= 64 && O >= 64 && O % 32 == 0 && C % 8 == 0 && W >= 16 && H >= 16 && 16 * C * O * 4 <= kCacheBudget) {
      s.winograd = 2;
      s.vec = 16;
      s.tileX = 2;
      s.tileC = 8;
      s.tileY = winogradWeightRows(k, 256 * 1024);
      return s;
    }
    // Where a chunk's sums are past that (ResNet's 256-channel 14x14 layers): the form whose 16
    // products are the parallel tasks, each over every image's tiles (conv_winograd.cpp's
    // winogradWeightTasksCpu). AMD EPYC 26/2, medians of 5 alternating profiled runs: ResNet-18's
    // step at batch 8, layer3's three 256-channel weight gradients 17.0 -> 13.9 ms; a net of two
    // such convs, 12.5 -> 8.4 ms. At 7x7 (512 channels, 16 MiB of sums) slower: 10.8 -> 13.3 ms.
    if (C >= 128 && O >= 128 && O % 32 == 0 && C % 8 == 0 && W >= 14 && H >= 14) {
      s.winograd = 2;
      s.vec = 16;
      s.tileX = 2;
      s.tileC = 8;
      s.tileY = (int)(H + 1) / 2;  // one image's tiles per block
      s.order = 1;
      return s;
    }
  }
  if (k.kind == KernelKind::Conv || k.kind == KernelKind::ConvBackData || k.kind == KernelKind::ConvTranspose) {
    // NEON: 8-float vectors take two registers, so half the channels keep the tile in 32.
    s.tileC = (int)std::min<int64_t>(8 / regsPerVec, k.out[0]);
    int64_t W = k.out[2], H = k.out[1];
    // Rows narrower than a full vector (ResNet's 7x7 and 14x14, TinyResNet's 4x4 and 8x8) would
    // leave lanes idle: vectorise over output channels instead, and tile the pixels so that the
    // tile's accumulators leave registers for the weight vectors. On x86 this also wins below two
    // vectors (rows of 16 to 31, where two 16-lane vectors overlap or one runs alone): ResNet-18's
    // 28x28 convs went 1.02 -> 0.75 ms at batch 1, MiniVGG's forward convs 36 -> 29 ms at batch
    // 128 (its 16x16 layers). At 32x32 the row vectors stay ahead (29 -> 33 ms with channels there).
    // Depthwise convs and stride-1 input gradients on AVX-512, output rows of 4 or more: read in
    // place (the direct form, conv_depthwise.cpp, where the measurements are), 8-lane vectors (4 on
    // rows of 4 to 7). Elsewhere (AVX2, NEON), stride 1 and rows shorter than a 16-lane vector:
    // planes as flat rows. Alone, at batch 1 and 32 (medians of 40 runs, Zen 4): 960 channels at
    // 7x7 0.050 -> 0.040 ms and 2.47 -> 1.89 ms, 384 at 14x14 0.045 -> 0.042 and 2.36 -> 2.15 ms; at
    // 28x28 the rows were as fast or faster (b32 3.0-3.6 against 3.7-3.9 ms).
    if (lanes == 16 && depthwiseDirectApplies(k)) {
      s.flat = 4;
      s.vec = W >= 8 ? 8 : 4;
      s.tileC = 1;
      return s;
    }
    if (depthwiseFlatApplies(k) && W < 16) {
      s.flat = 1;
      s.vec = lanes == 16 ? 16 : 8;
      s.tileC = 1;
      return s;
    }
    // 1x1 stride-1 convs of 64 or more outputs with rows of 16 to 31 (ResNet-50's 28x28 layers) keep
    // vectors along x, 12 channels x 2 rows per tile (`cnnc tune` on the Intel 6/207, isolated, against
    // the channel vectors below: 128 -> 512 at batch 1 0.629 -> 0.469 ms, at batch 8 6.32 -> 4.60;
    // 512 -> 128 0.663 -> 0.561 and 6.54 -> 5.76, with the row-strip order below; 8 channels were
    // no faster than channel vectors there).
    bool rows1x1 = k.kind == KernelKind::Conv && lanes == 16 && k.attrs.kernel[0] == 1 && k.attrs.kernel[1] == 1 && k.attrs.stride[0] == 1 &&
                   k.attrs.stride[1] == 1 && k.attrs.pad[0] == 0 && k.attrs.pad[1] == 0 && k.attrs.groups == 1 && W >= 16 && W < 32 && k.out[0] >= 64;
    // 3x3 convs and their input gradients at rows of 28 to 47 whose Winograd weights (16 x C x O
    // floats) are past 1 MiB also take channel vectors: each Winograd task (two rows of 2x2 tiles)
    // streamed all of them from L3 for 2 x W tiles. Found by `cnnc tune` on U-Net's 32x32 layers
    // (isolated, batch 1, Intel 6/207): 1024 -> 512 118.3 -> 41.8 ms, 512 -> 512 35.8 -> 19.5,
    // 512 -> 256 17.3 -> 9.9, 256 -> 512 15.7 -> 8.8 (this tile: 2 vectors x 8 pixels); input
    // gradients in U-Net's step at batch 2: up1's first 109-122 -> 71 ms. At 56x56 (VGG's 256
    // channels) Winograd stays ahead (15.0 ms, 13.1 with 4 tile rows per task, against 14.8).
    bool winograd = winogradApplies(k) && lanes >= 8 && W >= 28 && k.in[0] >= 64;
    // 3x3 convs and their input gradients at rows of 14 to 27 with 128 or more channels in and out
    // (ResNet's 14x14 layers, VGG's, GoogLeNet's wider ones), AVX-512: Winograd F(2x2, 3x3) with
    // vectors along output channels (conv_winograd.cpp's winogradChannelsCpu), 2 vectors x a row of
    // up to 8 tiles, images walked inside each block of channels (order 1), groups of 8 images.
    // AMD EPYC 26/2, medians of 5-6 alternating profiled runs: ResNet-18's step at batch 8, layer3's
    // three 256-channel convs 15.2 -> 10.6 ms and their input gradients 15.4 -> 10.6 ms; at batch 1
    // ResNet-18 12.2 -> 11.3 ms, ResNet-50 26.8 -> 25.7, VGG-16 84.7 -> 79.7; GoogLeNet's 144 -> 288
    // and 160 -> 320 at 14x14 0.46 -> 0.42 and 0.56 -> 0.50 ms. Left direct: 64 channels (MiniVGG's
    // 16x16 conv at batch 128 6.1 -> 10.3 ms), DenseNet-121's 128 -> 32 (the net 20.3 -> 20.8 ms),
    // 7x7 planes (ResNet-18's 512-channel convs at batch 8 11.4 -> 12.0-14.7 ms for two: 4x4 tiles
    // cover 64 pixels for 49, and U is 16 MiB). Tiles of 1 vector, of 2 tile rows, of 4 vectors x 7
    // tiles were 5-15% slower on ResNet-18's 14x14 layer.
    if (lanes == 16 && winogradApplies(k) && W >= 14 && W < 28 && k.in[0] >= 128 && k.out[0] >= 128 && k.out[0] % 32 == 0) {
      s.winograd = 2;
      s.vec = 16;
      s.chanVec = 2;
      s.tileC = 1;
      s.tileY = 1;
      s.order = 1;
      // A row of tiles per register tile where it has 8 or fewer; else the tile of 4 to 8 that
      // leaves the fewest tiles idle.
      int TW = (int)(W + 1) / 2;
      s.tileX = 8;
      for (int t = 8; t >= 4; --t)
        if ((TW + t - 1) / t * t < (TW + s.tileX - 1) / s.tileX * s.tileX) s.tileX = t;
      if (TW <= 8) s.tileX = TW;
      return s;
    }
    bool wideWinograd = winograd && lanes == 16 && W < 48 && 16 * k.in[0] * k.out[0] * 4 > kCacheBudget;
    // Forward convs whose channels are not a multiple of 16 too, where padding them to one costs at
    // most an eighth more (RegNet's 440 -> 448, ShuffleNetV2's 58, 116, 232 and 464, MobileNetV3's
    // 72 and 120): their last block of channels is padded (common/packed_layout.h). RegNet-Y-400MF
    // at batch 1 (Intel 6/207, medians of 5 alternating runs) 9.36 -> 6.68 ms, its 440-channel 1x1
    // convs at 7x7 4x faster (15% of the FMA peak with 4-wide row vectors); ShuffleNetV2 5.52 ->
    // 4.97 ms; MobileNetV3 and EfficientNet unchanged. EfficientNet-B0's 40 channels (padded to 48)
    // at 28x28 were 20-30% slower than row vectors, so they keep them.
    int64_t O16 = (k.out[0] + 15) / 16 * 16;
    // Also input gradients of stride 1 (the phases of a strided one do not pad).
    bool padChannels = padsChannelBlocks(k) && lanes == 16 && k.out[0] >= 16 && (O16 - k.out[0]) * 8 <= k.out[0];
    if (rows1x1) s.tileC = 12;
    else if (((W < (lanes >= 8 ? 32 : 16) && !winograd) || wideWinograd) && k.attrs.groups == 1 && (k.out[0] % 16 == 0 || padChannels)) {
      // AVX-512: 2 vectors of 16 channels x up to 8 pixels (14 pixels' 28 accumulators ran the
      // 14x14 layers at two thirds of the speed), but up to 14 for 1x1 convs at rows narrower than
      // 16: each weight vector feeds 14 pixels' FMAs, and a tap has no neighbours to reuse the
      // broadcasts of. In ResNet-50 (Intel 6/207, alternating runs, per kernel in the net) its
      // 14x14 1x1 convs 3-7% faster at batch 1 (1024 -> 256: 1.85 -> 1.73 ms for 5 calls), 2-3% at
      // batch 8; at 28x28 (rows of 14 x 2 in place of 12-channel row vectors) 512 -> 128 went
      // 1.18 -> 1.92 ms, though `cnnc tune` had timed it 1.14x faster in isolation, and strided
      // ones with 28x28 outputs gained nothing. NEON: 4 vectors of 4 x up to 7 pixels. AVX2: at
      // most 12 accumulators of its 16 registers, as 2 vectors of 8 channels x up to 6 pixels or
      // 1 x up to 12, whichever tile is larger (ResNet-18's 7x7 layers: 1 x 7, as 2 x 1 they ran
      // at 30% of the peak; 2 x 7 spilled and ran its 28x28 and 14x14 layers at 45% against 76-81%).
      s.vec = lanes;
      s.tileC = 1;
      // Columns and rows per tile: the most columns, then rows, at most maxPixels pixels in all,
      // that chanVecTileFits (whole tiles covering the image with at most a tenth more; divisors
      // for a strided input gradient's phases). Divisors only, as before, left ResNet-18's 13x13
      // layers (3x200x200 input) a 1x1 tile at 29-38% of the FMA peak: 7x1 tiles over 14 columns
      // ran them 2.0-2.2x faster, the net 13.4 -> 10.75 ms (AMD EPYC 26/2, batch 1, medians of 3
      // alternating runs).
      auto tile = [&](int maxPixels, int& tx, int& ty) {
        tx = 1;
        for (int t = (int)std::min<int64_t>(W, maxPixels); t > 1; --t)
          if (chanVecTileFits(k, W, t)) { tx = t; break; }
        ty = 1;
        for (int t = (int)std::min<int64_t>(H, maxPixels / tx); t > 1; --t)
          if (chanVecTileFits(k, H, t)) { ty = t; break; }
      };
      bool pointwise = k.kind == KernelKind::Conv && k.attrs.kernel[0] == 1 && k.attrs.kernel[1] == 1;
      int bestAcc = 0;
      for (int cv : lanes == 8 ? std::vector<int>{2, 1} : std::vector<int>{lanes == 16 ? 2 : 4}) {
        int chanVec = cv;
        // Blocks of vec * chanVec channels tile the output; where no block size divides it
        // (padChannels), 2 vectors unless 1 pads fewer channels (440: 2, padded to 448; 72: 1, to 80).
        auto padded = [&](int c) { return (k.out[0] + s.vec * c - 1) / (s.vec * c) * (s.vec * c); };
        if (k.out[0] % s.vec) {
          while (chanVec > 1 && padded(chanVec) > padded(chanVec / 2)) chanVec /= 2;
        } else {
          while (k.out[0] % (s.vec * chanVec)) chanVec /= 2;
        }
        int maxPixels = lanes == 16 ? (pointwise && W < 16 ? 14 : 8) : lanes == 8 ? 12 / chanVec : 28 / chanVec;
        int tx, ty;
        tile(maxPixels, tx, ty);
        if (tx * ty * chanVec > bestAcc) bestAcc = tx * ty * chanVec, s.chanVec = chanVec, s.tileX = tx, s.tileY = ty;
      }
      KernelSpec withTile = k;
      withTile.schedule = s;
      if (channelBlocksInStrips(withTile)) s.order = 1;
      return s;
    }
    // Winograd F(2x2, 3x3) where rows hold at least a full vector of 2x2 tiles and 64 or more
    // channels feed each output (the transforms cost O(C) per tile against O(C x O) for the
    // products). Measured per ResNet-18 layer1 conv (64 channels, 56x56): batch 1 1.00 -> 0.78 ms,
    // batch 8 6.6 -> 4.1 ms, its input gradient at batch 8 6.2 -> 4.1 ms. MiniVGG's 32-channel
    // 32x32 conv at batch 128 was slower (9.3 against 7.1 ms). Rows of 28 to 31 (14-16 tiles, a
    // vector of 16 partly idle) take it since stop 50 (AMD EPYC 26/2, medians of 6
    // alternating runs, in the nets at batch 1): DenseNet-121's twelve 128 -> 32 convs at 28x28
    // 3.49 -> 1.96 ms (the net 36.9 -> 34.5 ms), ResNet-18's 128-channel ones 1.21 -> 1.08 and 0.62
    // -> 0.53 ms (the net 9.95 -> 9.70), ResNet-50's 1.85 -> 1.78 ms; ResNet-18's step at batch 8
    // level (forward 12.4 -> 12.7 ms, input gradients 12.5 -> 12.2). On AVX2, where those rows took
    // 8-lane channel vectors: ResNet-18's 28x28 convs at batch 1 4.96 -> 1.80 and 2.46 -> 0.89 ms,
    // its AVX2 build 24.8 -> 20.2 ms. This rule's first version had noted 128 channels at 28x28 as
    // slower, without the measurement.
    // Register tile: 2 vectors of 16 tiles x 8 channels; tasks of 2 tile rows (4 output rows).
    // AVX2: vectors of 8 tiles, 2 x 4 channels (8 of its 16 registers).
    if (winograd) {
      s.winograd = 2;
      s.vec = lanes;
      s.tileX = (W + 1) / 2 > lanes ? 2 : 1;
      s.tileC = lanes == 16 ? 8 : 4;
      s.tileY = 2;
      return s;
    }
    // AVX2: one register per vector, 4 channels x 2 vectors (AVX-512's 16-lane vectors would take
    // two registers each, and 8 channels x 2 of them all 16 registers).
    if (lanes == 8 && W >= 8) {
      s.vec = 8;
      s.tileC = (int)std::min<int64_t>(4, k.out[0]);
    }
    if (W >= 2 * s.vec) s.tileX = 2;
    else if (H >= 2) s.tileY = (int)std::min<int64_t>(H, s.vec <= 4 ? 3 : 2);
    // An image's input past 1 MiB (half of this Xeon's L2, all of a Zen 4's) was read from memory
    // once per channel tile: channel tiles inside each row strip instead (Schedule::order 1), found
    // by `cnnc tune`. ResNet-50's 1x1 convs of 256 channels at 56x56 on the Intel 6/207: 256 -> 128
    // at batch 8 15.2 -> 8.3 ms, 256 -> 64 at batch 1 0.97 -> 0.53 ms; 64 channels (0.8 MiB) gained
    // nothing.
    if (k.attrs.groups == 1 && numel(k.in) * 4 > kCacheBudget && k.out[0] > s.tileC) s.order = 1;
  }
  return s;
}

}  // namespace cnnc::codegen
