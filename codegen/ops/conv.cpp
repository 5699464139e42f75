// conv.cpp: the conv op: 2-D convolution (nn.Conv2d) forward, its input gradient and its weight
// gradient, each as an algorithm (the Funcs it defines) and CPU and GPU schedules apart. The
// Winograd form of 3x3 stride-1 convs (forward, input and weight gradients) is in conv_winograd.cpp;
// the bias gradient in bias.cpp.
//
//   Conv            x[C,H,W], w[O,C/g,kh,kw], b[O] (, residual[O,Ho,Wo]) -> y[O,Ho,Wo]
//                   y = act(b + sum over (ci, ky, kx) of w * x at (oy*s + ky*d - p, ox*s + kx*d - p)
//                       (+ residual))
//   ConvBackData    dy[O,Ho,Wo], w -> dx[C,H,W]
//   ConvBackWeight  dy[O,Ho,Wo], x[C,H,W] -> dw[O,C/g,kh,kw] (summed over the batch)
//
// Depthwise stride-1 convs with rows as long as their input's take a flat form of all three
// (Schedule::flat), in conv_depthwise.cpp.
//
// Gradients are written by hand (REFERENCE.md: Halide's autodiff ran 10-30x below forward speed
// here, and left a stride-2 conv's input gradient as a serial scatter). Scatters are turned into
// gathers: each input element sums the outputs whose windows cover it.
#include <map>

#include "conv.h"
#include "conv_weight.h"

#include "common/packed_layout.h"
#include "plan.h"  // packedBlock
#include "gpu.h"
#include "plan_builder.h"
#include "ops.h"

namespace cnnc::codegen {

bool usesPhases(const KernelSpec& k) {
  const Attrs& a = k.attrs;
  return (a.stride[0] > 1 || a.stride[1] > 1) && a.dilation[0] == 1 && a.dilation[1] == 1;
}

bool padsChannelBlocks(const KernelSpec& k) {
  return k.kind == KernelKind::Conv || (k.kind == KernelKind::ConvBackData && !usesPhases(k));
}

// Grouped (not depthwise) convs whose groups hold a multiple of 4 output channels (RegNet's 8): their
// weight gradients take the tiled forms (convBackWeightPerImage, convBackWeightBatched) with vectors
// of output channels that never span two groups, so a vector's input channels are one group's, read
// as one broadcast per tap. Measurement: see defaultSchedule (schedule.cpp).
int groupedWeightVec(const KernelSpec& k, int lanes) {
  if (k.kind != KernelKind::ConvBackWeight || k.extraIns.empty() || k.attrs.groups == 1) return 0;
  int64_t cog = k.extraIns[0][0] / k.attrs.groups;
  for (int v : {16, 8, 4})
    if (v <= lanes && cog % v == 0) return v;
  return 0;
}

namespace {

// ---- Schedules shared by the direct convolutions (forward and input gradient) ----

// The parallel loop of a conv stage. A stage computed per image (`inner`: the phases of a strided
// input gradient) sits inside its kernel's loop over images, parallel from batch 8: there its own
// parallel loop only nested a thread-pool call per image and phase, so it runs only where
// `fewImages` holds. Measured in the nets' steps (AMD EPYC 26/2, medians of 6 alternating profiled
// runs, two sets): TinyResNet at batch 128, its 64- and 128-channel strided input gradients 5.0 ->
// 3.7 and 4.8 -> 3.7 ms, then 4.1 -> 3.5 and 3.9 -> 3.6 ms; ResNet-18 at batch 8, its 64 -> 128 one
// 4.0 -> 3.2 ms. The same bytes out (each channel block is computed alike on either thread).
void innerParallel(Func out, VarOrRVar loop, bool inner, Expr fewImages) {
  if (!inner) out.parallel(loop);
  else if (fewImages.defined()) out.specialize(fewImages).parallel(loop);
}

// A register tile of (tileX vectors of `vec` columns) x tileY rows x tileC output channels. Each
// input vector loaded for a tap feeds tileC FMAs (weights broadcast), each weight broadcast feeds
// tileX x tileY, and the accumulators stay in vector registers for the whole reduction over input
// channels and taps. The splits shift inwards at the right and bottom edges (the output needs only
// be at least one tile), so the accumulator tile always has exactly the tile's extent.
// With `inner`, `out` is not the pipeline's output but one stage computed per image by it (the
// phases of a strided input gradient): no padded source, no batch-parallel specialisation, and its
// own parallel loop only where `fewImages` holds (innerParallel).
void scheduleConvTile(Func out, Func acc, RDom r, const Schedule& sc, int channels, Vars& v, Func padded = Func(), bool inner = false,
                      bool padPerTile = false, Expr fewImages = Expr()) {
  Var xo("xo"), xi("xi"), xv("xv"), yo("yo"), yi("yi"), co("co"), ci("ci");
  int tc = std::min(sc.tileC, channels);
  // Schedule::order: where the channel tiles sit among the pixel tiles. Outermost, a tile's weights
  // are reused by every pixel tile but the image is read once per channel tile: a 1x1 conv of 256
  // channels at 56x56 (3.2 MB per image, past L2) read it 16 times from memory.
  out.split(v.x, xo, xi, sc.vec * sc.tileX).split(v.y, yo, yi, sc.tileY).split(v.c, co, ci, tc);
  if (sc.order == 2) out.reorder(xi, yi, ci, co, xo, yo, v.n);
  else if (sc.order == 1) out.reorder(xi, yi, ci, xo, co, yo, v.n);
  else out.reorder(xi, yi, ci, xo, yo, co, v.n);
  out.split(xi, xv, xi, sc.vec).reorder(xi, xv, yi, ci);
  if (sc.vec > 1) out.vectorize(xi);
  out.unroll(xv).unroll(yi).unroll(ci);
  // The zero-padded source is copied once per image: read in place, the border test turns every
  // vector load of the reduction into a gather of single floats.
  if (padded.defined()) {
    // A grouped (or depthwise) conv's channel tile reads only its own groups' input channels:
    // their padded copy, made per tile, stays in the core's cache and is made in parallel. Made
    // per image, at batch 1 it ran on one thread before the parallel loop: RegNetY-400MF's grouped
    // 3x3 convs (groups of 8 channels) took 1.67 ms of 5.8, 0.87 ms per tile (Intel 6/207,
    // alternating runs); their input gradients at batch 16 gained 10%.
    padded.compute_at(out, padPerTile ? co : v.n);
    // A pure (select) form rounded up to whole vectors was read through gathers: 6.3 -> 11.8 ms for
    // MobileNetV2's stride-2 96 x 112 x 112 depthwise conv at batch 32; a guarded tail keeps the
    // interior's loads dense.
    if (sc.vec > 1 && !padded.has_update_definition()) padded.vectorize(padded.args()[0], sc.vec, TailStrategy::GuardWithIf);
  }
  // Large batches: one image per task (the padded copy stays in its thread's cache); small ones:
  // the output channel tiles of an image in parallel.
  if (!inner) out.specialize(out.output_buffer().dim(3).extent() >= 8).parallel(v.n);
  innerParallel(out, sc.order ? yo : co, inner, fewImages);
  acc.compute_at(out, sc.order == 2 ? co : xo);
  Var ax("ax"), axv("axv");
  acc.split(v.x, axv, ax, sc.vec).reorder(ax, axv, v.y, v.c);
  if (sc.vec > 1) acc.vectorize(ax);
  acc.unroll(axv).unroll(v.y).unroll(v.c);
  acc.update().split(v.x, axv, ax, sc.vec).reorder(ax, axv, v.y, v.c, r.x, r.y, r.z, v.n);
  if (sc.vec > 1) acc.update().vectorize(ax);
  acc.update().unroll(axv).unroll(v.y).unroll(v.c);
}

// Conv weights for channel vectors, blocked: wt(c, kx, ky, k) reads block (c / T) of T = vec x
// chanVec channels, stored [blocks][K][kh][kw][T], so one tile's weights for a run of the reduction
// are contiguous (a stride of O floats between taps mapped them onto a few L1 sets). `w5` is the
// 5-D blocked tensor (cl, kx, ky, k, cb); it is either the packed ImageParam (inference) or a Func
// copied from the weights once per call (training).
Func blockedWeights(Func w5, int T) {
  Func wt("weight_t");
  Var c("wc"), x("wx"), y("wy"), z("wz");
  wt(c, x, y, z) = w5(packedLaneOf(c, T), x, y, z, packedBlockOf(c, T));
  return wt;
}

// The weights w (Halide dims kx, ky, ci, co) copied once per call into the blocked layout that
// blockedWeights reads: blocks of T output channels for a forward conv, of T input channels
// (`overInputs`) for an input gradient, whose outputs are the forward conv's inputs.
Func blockedCopy(ImageParam w, int T, bool overInputs, const std::string& name = "weight_blocked") {
  Func copy(name);
  Var l("bl"), x("tx"), y("ty"), z("tz"), b("cb");
  // A last block past the channels (T not dividing them) repeats the last channel; its lanes are
  // never stored.
  copy(l, x, y, z, b) = overInputs ? w(x, y, min(b * T + l, w.dim(2).extent() - 1), z) : w(x, y, z, min(b * T + l, w.dim(3).extent() - 1));
  return copy;
}

// Direct convolutions with small rows (sc.chanVec > 0): vectors run along output channels. For
// each image and block of T = vec x chanVec channels, the accumulators of the whole image live in a
// small buffer (W x H x T floats, W below 32). The reduction over input channels runs in chunks
// whose weights fit in L1 (about 16 KiB); within a chunk each register tile of tileX x tileY pixels
// x chanVec vectors sums over the chunk's taps: each tap loads chanVec weight vectors and broadcasts
// one source float per pixel into tileX * tileY * chanVec FMAs. (Without chunks every tile streamed
// all of the block's weights: ResNet-18's 7x7 layers read 9.4 MiB seven times per image and ran at
// a quarter of the 56x56 layers' rate.)
// `wcopy`, when defined, is the blocked copy of the weights made once per call.
// `inner` as for scheduleConvTile. `width`: the output's rows; `imageBytes`: what the sums read per
// image (convSourceBytes; 0: unknown). `height`: the number of output rows, given where Schedule::order 1
// may split them into strips (forward convs).
void scheduleConvChannels(Func out, Func acc, Func wcopy, RDom r, const Schedule& sc, Vars& v, Func padded = Func(), bool inner = false,
                          int channels = 0, int width = 0, int64_t imageBytes = 0, int height = 0, Expr fewImages = Expr()) {
  Var co("co"), ci("ci"), cv("cv"), cl("cl"), xo("xo"), xi("xi"), yo("yo"), yi("yi");
  RVar rzo("rzo"), rzi("rzi");
  int T = sc.vec * sc.chanVec;
  auto extent = [](RVar rv) { const int64_t* e = Internal::as_const_int(rv.extent()); return e ? (int)*e : 1; };
  int taps = extent(r.x) * extent(r.y), K = extent(r.z);
  // Weights past twice L2 with small images (ResNet's 512-channel 7x7 layers: 9.4 MiB of weights,
  // 166 KiB per image): the blocks of output channels are the parallel loop at every batch, each
  // over all images, and the reduction's chunks run outside the images, so a chunk's weights serve
  // every image from L1 and a block's are read from L3 once per call instead of once per image.
  // (The padded inputs are then made for all images first.) ResNet-18's step at batch 8 (Intel
  // 6/207, alternating runs, in the net): layer4's 3x3 convs 17.0 -> 15.3 ms, their input
  // gradients 18.4 -> 16.6 ms; inference at batch 8 10.1 -> 9.5 ms. Its strided 256 -> 512 conv
  // (4.7 MiB of weights, 8 images' inputs 2 MiB) was 15% slower this way and keeps the image loop.
  bool blocksOuter = !inner && (double)taps * K * channels * 4 > 4.0 * kCacheBudget && imageBytes > 0 && 8 * imageBytes < 2 * kCacheBudget;
  // Where T does not divide the channels (`channels`: a forward conv's or a stride-1 input
  // gradient's), the last block computes all T lanes and stores only the channels that exist.
  out.split(v.c, co, ci, T, channels % T ? TailStrategy::GuardWithIf : TailStrategy::Auto).reorder(v.x, v.y, ci, co, v.n);
  // Schedule::order 1 (below batch 8): four strips of rows are the parallel loop and each walks
  // every block of channels, so each thread reads its rows of the image once and the weights once
  // per strip, instead of the whole image once per block (channelBlocksInStrips says where).
  bool strips = sc.order == 1 && height > 0 && !inner && !blocksOuter;
  Var ys = v.y;
  if (strips) {
    int rows = sc.tileY * std::max(1, ((height + 3) / 4 + sc.tileY - 1) / sc.tileY);
    out.split(v.y, yo, yi, std::min(rows, height), TailStrategy::ShiftInwards).reorder(v.x, yi, ci, co, yo, v.n);
    ys = yi;
  }
  // The sums hold channels innermost and the output is x-innermost: each output vector gathers a
  // float from each of its pixels' channel vectors (insertps, one per float: a quarter of the
  // uops of a 1x1 conv of 64 inputs). Where rows hold 16 pixels and vectors are 16 wide, the
  // output is written in 16 x 16 blocks transposed through registers instead (shuffles of 16
  // channel vectors); a row of 28 writes its middle 4 pixels twice. In ResNet-18 and -50 at batch 1
  // (Intel 6/207, alternating runs, in the net): the 28x28 layers' 64 -> 128 1x1 downsample
  // 0.148 -> 0.133 ms, 256 -> 512 0.81 -> 0.73 ms, 3x3 convs 2-5% faster. Rows of 14 and 7 took
  // 8- and 4-wide blocks and were 3-8% slower; with K of 1152 or more (TinyResNet's training
  // steps) the stores are too few to matter.
  int B = width >= 16 && sc.vec >= 16 && channels % T == 0 && !inner ? 16 : 0;
  if (B) {
    Var xb("xb"), xl("xl"), cb("cb"), cn("cn");
    out.split(v.x, xb, xl, B, TailStrategy::ShiftInwards).split(ci, cb, cn, sc.vec).reorder(xl, cn, xb, ys, cb, co).vectorize(xl).unroll(cn);
    Func rows = acc.in(out);
    rows.compute_at(out, xb).store_in(MemoryType::Register).reorder(v.c, v.x, v.y, v.n).vectorize(v.c).unroll(v.x);
  } else if (sc.tileX >= 4) out.vectorize(v.x, 4, TailStrategy::GuardWithIf);
  if (blocksOuter) {
    out.reorder(v.n, co);
    if (padded.defined()) {
      padded.compute_root().parallel(padded.args()[3]);
      if (padded.has_update_definition()) padded.update().parallel(padded.args()[3]);
    }
  } else {
    if (padded.defined()) padded.compute_at(out, v.n);
    // Below batch 8 the channel blocks are the parallel loop and an image's padded input was
    // copied by one thread before it; where that copy is large (strided 3x3 convs reading 56x56
    // or 28x28 planes) it runs in parallel over channels. ResNet-18 b1's 64 -> 128 strided conv
    // (861 KiB) 0.376 -> 0.346 ms, ResNet-50's 128-channel one (1.7 MiB) 0.81 -> 0.73 ms, its
    // 256-channel one (920 KiB) 0.69 -> 0.66 ms; at 524 KiB (ResNet-50's 512-channel one) it was
    // 3% slower, and at batch 8, inside the parallel loop over images, 3-20% slower (Intel 6/207,
    // alternating runs, in the nets).
    if (padded.defined() && padded.has_update_definition() && !inner && imageBytes >= 768 * 1024) {
      Var px = padded.args()[0], py = padded.args()[1], pc = padded.args()[2], pn = padded.args()[3];
      RVar rx(padded.update().get_schedule().rvars()[0].var), ry(padded.update().get_schedule().rvars()[1].var);
      Expr few = out.output_buffer().dim(3).extent() < 8;
      padded.specialize(few).reorder(px, py, pc, pn).parallel(pc, 8);
      padded.update().specialize(few).reorder(rx, ry, pc, pn).parallel(pc, 8);
    }
    if (!inner) out.specialize(out.output_buffer().dim(3).extent() >= 8).parallel(v.n);
  }
  innerParallel(out, strips ? yo : co, inner, fewImages);
  if (wcopy.defined()) wcopy.compute_root().parallel(wcopy.args()[4]).vectorize(wcopy.args()[0], sc.vec);
  int chunk = std::max(1, 4096 / (taps * T));
  while (chunk > 1 && K % chunk) --chunk;
  acc.compute_at(out, co).reorder_storage(v.c, v.x, v.y, v.n);
  acc.vectorize(v.c, sc.vec);
  // Tiles that do not divide the image (chanVecTileFits) round the sums up to whole tiles; the
  // padded copy they read is computed over the rounded region.
  acc.update().split(v.x, xo, xi, sc.tileX, TailStrategy::RoundUp).split(v.y, yo, yi, sc.tileY, TailStrategy::RoundUp).split(v.c, cv, cl, sc.vec).split(r.z, rzo, rzi, chunk);
  if (blocksOuter) acc.update().reorder(cl, cv, xi, yi, r.x, r.y, rzi, xo, yo, v.n, rzo);
  else acc.update().reorder(cl, cv, xi, yi, r.x, r.y, rzi, xo, yo, rzo, v.n);
  acc.update().vectorize(cl).unroll(cv).unroll(xi).unroll(yi);
}

// ---- Conv: forward ----

struct ConvFuncs {
  Func out{"conv_out"}, acc{"conv_acc"}, src{"src"};
  Func wcopy;      // training with channel vectors: the weights copied into blocks of T channels
  RDom r;          // taps (x, y) and input channels of a group
  ImageParam in, w, b, res;
  std::vector<Argument> args;
  bool padded = false;
  bool subsampled = false;  // src is the input's every stride-th pixel, copied (convForward)
};

// A strided 1x1 conv without padding, with channel vectors on the CPU, whose image is past 2 MiB
// (this Xeon's L2) reads its input through a dense copy of every stride-th pixel, made once per
// image. In place, the input was read from L3 again for every block of output channels, and each
// register tile's broadcasts used every other float of the lines they loaded; the copy is a
// quarter of it. ResNet-50's 256 x 56 x 56 -> 512 x 28 x 28 (3.1 MiB; Intel 6/207, medians of
// alternating runs): batch 1 1.37 -> 0.87 ms, batch 8 9.95 -> 7.2 ms. Smaller inputs lose or tie:
// its 512 x 28 x 28 (1.6 MiB) at batch 8 5.2 -> 6.4 ms (0.73 -> 0.69 at batch 1), ResNet-18's
// 64 x 56 x 56 (0.8 MiB) forward at batch 8 in training 0.78 -> 1.05 ms.
bool subsampleInput(const KernelSpec& k) {
  const Attrs& a = k.attrs;
  return k.schedule.chanVec && padAsCopy(k.schedule) && a.kernel[0] == 1 && a.kernel[1] == 1 && (a.stride[0] > 1 || a.stride[1] > 1) &&
         !a.pad[0] && !a.pad[1] && a.groups == 1 && numel(k.in) * 4 > 2 * kCacheBudget;
}

// The bytes per image of what a direct conv's sums read: its input (a forward conv's, or an input
// gradient's dy) with the zero frame the taps reach, or every stride-th pixel where it reads a
// subsampled copy.
int64_t convSourceBytes(const KernelSpec& k) {
  const Attrs& a = k.attrs;
  int64_t C = k.in[0], H = k.in[1], W = k.in[2];
  if (k.kind == KernelKind::ConvBackData) {
    int64_t fy = a.dilation[0] * (a.kernel[0] - 1) - a.pad[0], fx = a.dilation[1] * (a.kernel[1] - 1) - a.pad[1];
    return C * (H + 2 * std::max<int64_t>(fy, 0)) * (W + 2 * std::max<int64_t>(fx, 0)) * 4;
  }
  if (subsampleInput(k)) return C * k.out[1] * k.out[2] * 4;
  return C * (H + 2 * a.pad[0]) * (W + 2 * a.pad[1]) * 4;
}

// Depthwise convs with row vectors (scheduleConvTile, padded per tile of channels) build their
// zero-padded source as one select per pixel, computed per tile and vectorised along the row
// (interior vectors are plain loads), instead of a zero fill of the tile's planes and then a copy
// of their interiors: every padded float is stored once, not twice. Depthwise convs at batch 32
// (AMD EPYC family 26 model 2): a two-conv net, alternating runs, 96 x 112 x 112 stride 2 6.8-7.1 ->
// 6.3 ms, 96 x 56 x 56 stride 1 2.8-2.9 -> 2.5-2.6 ms; MobileNetV2's 17 (bench/depthwise.py, one
// run after the other) 37.2 -> 33.0 ms, its stride-2 96 x 112 x 112 one 8.8 -> 7.4 ms. The
// same select computed per row strip (with or without Halide's sliding window) or inlined into the
// taps was slower (6.9-11.1 ms for the stride-2 one). Rows narrower than 8 keep the copy: 576 x 6 x
// 6 stride 2 (MobileNetV2's features.14 at 3x96x96) went 0.36 -> 0.72 ms as selects.
// The padded tensor is k.in in both callers (a forward conv's input, an input gradient's dy).
bool depthwisePurePad(const KernelSpec& k) {
  return k.in.size() == 3 && isDepthwise(k.in[0], k.out[0], k.attrs.groups) && !k.schedule.chanVec && k.in[2] >= 8;
}

ConvFuncs convForward(const KernelSpec& k) {
  ConvFuncs f;
  Vars v;
  const Attrs& a = k.attrs;
  int64_t C = k.in[0], H = k.in[1], W = k.in[2], O = k.out[0];
  int64_t cig = C / a.groups, cog = O / a.groups;
  KernelParams p(k);
  f.in = p.tensor("input", k.in);
  // Inference convs with channel vectors take their weights packed at load ([O/T,C,kh,kw,T]).
  int T = packedBlock(k.schedule);
  f.w = p.fixed("weight", k.packedWeights ? packedWeightShape({O, cig, a.kernel[0], a.kernel[1]}, T) : Dims{O, cig, a.kernel[0], a.kernel[1]});
  f.b = p.fixed("bias", {O});
  f.padded = a.pad[0] || a.pad[1];
  f.subsampled = subsampleInput(k);
  int sx = (int)a.stride[1], sy = (int)a.stride[0];
  // Channel-vector tiles that do not divide the output (chanVecTileFits) compute whole tiles past
  // its edge, whose reads of an input taken in place are clamped inside it (values never stored;
  // the clamp is per pixel, outside the reduction's loops). A padded copy is made over the region
  // they read instead.
  bool rounds = k.schedule.chanVec && (k.out[2] % k.schedule.tileX || k.out[1] % k.schedule.tileY);
  auto inside = [&](Expr x, Expr y) {
    return rounds ? f.in(min(x, (int)W - 1), min(y, (int)H - 1), v.c, v.n) : f.in(x, y, v.c, v.n);
  };
  if (f.padded) f.src = zeroPadded(f.in, (int)W, (int)H, 0, 0, k.schedule, "src", !depthwisePurePad(k));
  else if (f.subsampled) f.src(v.x, v.y, v.c, v.n) = inside(v.x * sx, v.y * sy), sx = sy = 1;
  else f.src(v.x, v.y, v.c, v.n) = inside(v.x, v.y);
  f.r = RDom(0, (int)a.kernel[1], 0, (int)a.kernel[0], 0, (int)cig, "r");
  RDom& r = f.r;
  Expr g = a.groups == 1 ? Expr(0) : v.c / (int)cog;
  f.acc(v.x, v.y, v.c, v.n) = f.b(k.schedule.chanVec && O % T ? min(v.c, (int)O - 1) : Expr(v.c));  // the lanes of a last block past O
  // With channel vectors the weights are read in blocks of T output channels: packed at load
  // (inference), or copied once per call (training, where weights change every step).
  Func wt;
  if (k.schedule.chanVec) {
    if (!k.packedWeights) f.wcopy = blockedCopy(f.w, T, false);
    wt = blockedWeights(k.packedWeights ? Func(f.w) : f.wcopy, T);
  }
  Expr wv = k.schedule.chanVec ? wt(v.c, r.x, r.y, r.z) : f.w(r.x, r.y, r.z, v.c);
  f.acc(v.x, v.y, v.c, v.n) += wv *
      f.src(v.x * sx + r.x * (int)a.dilation[1] - (int)a.pad[1], v.y * sy + r.y * (int)a.dilation[0] - (int)a.pad[0], g * (int)cig + r.z, v.n);
  Expr val = f.acc(v.x, v.y, v.c, v.n);
  if (k.residual) {
    f.res = p.tensor("residual", k.out);
    val = val + f.res(v.x, v.y, v.c, v.n);
  }
  f.args = p.args();
  f.out(v.x, v.y, v.c, v.n) = applyAct(val, k.act);
  return f;
}

void convForwardCpu(ConvFuncs& f, const KernelSpec& k) {
  Vars v;
  if (f.padded) schedulePadded(f.src, (int)k.in[2], k.schedule);
  if (f.subsampled) {
    // Vectors no wider than the row: ShiftInwards keeps every read inside the input.
    int Wo = (int)k.out[2], vec = Wo >= 16 ? 16 : Wo >= 8 ? 8 : Wo >= 4 ? 4 : 1;
    Var x = f.src.args()[0], c = f.src.args()[2];
    f.src.reorder(x, f.src.args()[1], c).parallel(c, 8);
    if (vec > 1) f.src.vectorize(x, vec, TailStrategy::ShiftInwards);
  }
  if (k.schedule.chanVec)
    scheduleConvChannels(f.out, f.acc, k.packedWeights ? Func() : f.wcopy, f.r, k.schedule, v, f.padded || f.subsampled ? f.src : Func(), false,
                         (int)k.out[0], (int)k.out[2], convSourceBytes(k), (int)k.out[1]);
  else scheduleConvTile(f.out, f.acc, f.r, k.schedule, (int)k.out[0], v, f.padded ? f.src : Func(), false,
                        k.attrs.groups > 1);
}

// Scheduled by Halide's Adams2019 autoscheduler at compile time (`cnnc tune --adams2019`): the
// kernel only declares the estimates it plans for, at a batch of autoBatch images.
void convForwardAuto(ConvFuncs& f, const KernelSpec& k) {
  const Attrs& a = k.attrs;
  int N = k.schedule.autoBatch;
  f.in.set_estimates(batchRegion(k.in, N));
  f.w.set_estimates(batchRegion({k.out[0], k.in[0] / a.groups, a.kernel[0], a.kernel[1]}, 0));
  f.b.set_estimates({{0, (int)k.out[0]}});
  if (k.residual) f.res.set_estimates(batchRegion(k.out, N));
  f.out.set_estimates(batchRegion(k.out, N));
}

// ---- ConvBackData: the input gradient ----

// Input gradient of a strided conv (dilation 1), split by phase. Input pixel (s*qx + px, s*qy + py)
// receives dy only from the taps kx = px + pad (mod s), ky likewise, at ox = qx + (px + pad - kx) / s.
// The algorithm:
//  1. dy is zero-extended and materialised once per image (dyz), shared by all phases.
//  2. Each of the s*s phases is a stride-1 conv of dyz with its sub-kernel of every s-th tap, over the
//     phase's grid of ceil((W - px) / s) x ceil((H - py) / s) pixels. It is computed per image and
//     scheduled like a conv of that grid's shape (channel vectors when the grid's rows are narrow).
//     A phase that no tap reaches (a 1x1 stride-2 conv's odd pixels) is zero.
//  3. The output interleaves the phase grids: x = s*qx + px, with px unrolled so the phase is known.
// The upsampled form (convBackDataUpsampled below) spent (s*s - 1) / (s*s) of its FMAs on inserted
// zeros: TinyResNet's three stride-2 3x3 input gradients took 13-15 ms each against 8 for a
// stride-1 layer.
// The input gradient's algorithms are also the forward pass of a transposed conv (its x is this
// dy, its weight [in, out/g, kh, kw] this w), which adds a bias: ConvTranspose kernels.
const char* backDataSource(const KernelSpec& k) { return k.kind == KernelKind::ConvTranspose ? "input" : "dy"; }

Func transposeBias(KernelParams& p, const KernelSpec& k, int C) {
  if (k.kind != KernelKind::ConvTranspose) return Func();
  ImageParam b = p.fixed("bias", {C});
  Func f("convt_bias");
  Var c("c");
  f(c) = b(c);
  return f;
}

struct PhaseFuncs {
  Func out{"conv_dx"}, dyz;
  struct Phase {
    Func f, acc, wcopy;  // acc undefined for a phase no tap reaches
    RDom r;
    Schedule sc;         // the phase's schedule, as a conv of its grid's shape
    int Wq = 0, Hq = 0;
  };
  std::vector<Phase> phases;
  std::vector<Argument> args;
};

PhaseFuncs convBackDataPhases(const KernelSpec& k) {
  PhaseFuncs f;
  Vars v;
  const Attrs& a = k.attrs;
  int O = (int)k.in[0], Ho = (int)k.in[1], Wo = (int)k.in[2];   // dy [O,Ho,Wo]
  int C = (int)k.out[0], H = (int)k.out[1], W = (int)k.out[2];  // dx [C,H,W]
  int cig = C / (int)a.groups, cog = O / (int)a.groups;
  int kh = (int)a.kernel[0], kw = (int)a.kernel[1], sy = (int)a.stride[0], sx = (int)a.stride[1];
  KernelParams p(k);
  ImageParam dy = p.tensor(backDataSource(k), k.in), w = p.fixed("weight", {O, cig, kh, kw});
  Func bias = transposeBias(p, k, C);
  f.args = p.args();
  // A 1x1 conv without padding reads dy at the phase grid's own positions, all inside it: in place,
  // rather than copied into a zero-filled frame per image.
  if (kh == 1 && kw == 1 && !a.pad[0] && !a.pad[1]) f.dyz(v.x, v.y, v.c, v.n) = dy(v.x, v.y, v.c, v.n);
  else f.dyz = zeroPadded(dy, Wo, Ho, 0, 0, k.schedule, "convbd_dyz");
  Expr g = a.groups == 1 ? Expr(0) : v.c / cig;
  Expr cl = a.groups == 1 ? Expr(v.c) : v.c % cig;
  std::map<int, Func> blocked;  // channel-vector phases read the weights blocked by T (one copy per T)
  for (int py = 0; py < sy; ++py)
    for (int px = 0; px < sx; ++px) {
      std::string tag = "_p" + std::to_string(px) + std::to_string(py);
      int k0x = (px + (int)a.pad[1]) % sx, k0y = (py + (int)a.pad[0]) % sy;  // first tap of the phase
      int nx = k0x < kw ? (kw - k0x + sx - 1) / sx : 0, ny = k0y < kh ? (kh - k0y + sy - 1) / sy : 0;
      int bx = (px + (int)a.pad[1] - k0x) / sx, by = (py + (int)a.pad[0] - k0y) / sy;
      PhaseFuncs::Phase ph;
      ph.Wq = (W - px + sx - 1) / sx;
      ph.Hq = (H - py + sy - 1) / sy;
      ph.f = Func("conv_dx" + tag);
      if (nx == 0 || ny == 0 || ph.Wq <= 0 || ph.Hq <= 0) {
        ph.f(v.x, v.y, v.c, v.n) = 0.0f;
        f.phases.push_back(ph);
        continue;
      }
      KernelSpec ks = k;
      ks.out = {C, ph.Hq, ph.Wq};
      ph.sc = k.schedule.phase ? k.schedule : defaultSchedule(ks, k.schedule.lanes);
      ph.r = RDom(0, nx, 0, ny, 0, cog, "r" + tag);
      RDom& r = ph.r;
      Expr co = g * cog + r.z, kx = k0x + sx * r.x, ky = k0y + sy * r.y;
      Expr wv = w(kx, ky, cl, co);
      if (ph.sc.chanVec) {
        int T = ph.sc.vec * ph.sc.chanVec;
        if (!blocked.count(T)) {
          blocked[T] = blockedCopy(w, T, true, "weight_blocked" + std::to_string(T));
          ph.wcopy = blocked[T];  // scheduled once, with the first phase that reads it
        }
        wv = blockedWeights(blocked[T], T)(v.c, kx, ky, co);
      }
      ph.acc = Func("convbd_acc" + tag);
      ph.acc(v.x, v.y, v.c, v.n) = 0.0f;
      ph.acc(v.x, v.y, v.c, v.n) += f.dyz(v.x + bx - r.x, v.y + by - r.y, co, v.n) * wv;
      ph.f(v.x, v.y, v.c, v.n) = ph.acc(v.x, v.y, v.c, v.n);
      f.phases.push_back(ph);
    }
  // A phase's grid is one pixel shorter than ceil(W / s) when s does not divide W; the guarded
  // tail of the interleave still asks for that pixel (its value unused), so the index is clamped.
  auto read = [&](int i) {
    int px = i % sx, py = i / sx, Wq = (W - px + sx - 1) / sx, Hq = (H - py + sy - 1) / sy;
    Expr qx = v.x / sx, qy = v.y / sy;
    if (Wq < (W + sx - 1) / sx) qx = min(qx, std::max(Wq - 1, 0));
    if (Hq < (H + sy - 1) / sy) qy = min(qy, std::max(Hq - 1, 0));
    return f.phases[i].f(qx, qy, v.c, v.n);
  };
  Expr val = read((int)f.phases.size() - 1);
  for (int i = (int)f.phases.size() - 2; i >= 0; --i) val = select(v.x % sx == i % sx && v.y % sy == i / sx, read(i), val);
  f.out(v.x, v.y, v.c, v.n) = bias.defined() ? val + bias(v.c) : val;
  return f;
}

void convBackDataPhasesCpu(PhaseFuncs& f, const KernelSpec& k) {
  Vars v;
  const Attrs& a = k.attrs;
  int C = (int)k.out[0], W = (int)k.out[2], sy = (int)a.stride[0], sx = (int)a.stride[1];
  schedulePadded(f.dyz, (int)k.in[2], k.schedule);
  Expr few = f.out.output_buffer().dim(3).extent() < 8;  // below this, the images' loop is serial
  for (auto& ph : f.phases) {
    if (!ph.acc.defined()) continue;
    ph.f.compute_at(f.out, v.n).bound(v.x, 0, ph.Wq).bound(v.y, 0, ph.Hq).bound(v.c, 0, C);
    if (ph.sc.chanVec) scheduleConvChannels(ph.f, ph.acc, ph.wcopy, ph.r, ph.sc, v, Func(), true, 0, 0, 0, 0, few);
    else scheduleConvTile(ph.f, ph.acc, ph.r, ph.sc, C, v, Func(), true, false, few);
  }
  Var qx("qx"), qy("qy"), ux("ux"), uy("uy");
  int vec = std::min(k.schedule.lanes, W >= 16 ? 16 : 8);
  if (W >= vec && W % sx == 0 && vec % sx == 0) {
    // Dense vectors of the output row, each an interleave of the phases' vectors (shuffles): with
    // the phase unrolled, each phase's pixels were a store of every sx-th float (a scatter).
    // Every vector starts at a multiple of sx (ShiftInwards moves the last one back by a multiple),
    // so its pattern of phases is known. ResNet-18's step at batch 8 (AMD EPYC 26/2, medians of 6
    // alternating profiled runs): its three strided 3x3 input gradients 3.68 -> 3.34, 3.28 -> 3.14,
    // 2.97 -> 2.70 ms, its 1x1 downsamples' 1.08 -> 0.85, 0.67 -> 0.53, 0.56 -> 0.44 ms;
    // TinyResNet's at batch 128 4.79 -> 4.65, 3.68 -> 3.58 and (1x1) 1.77 -> 1.58 ms. Same bytes.
    f.out.split(v.y, qy, uy, sy, TailStrategy::GuardWithIf).reorder(v.x, uy, qy, v.c, v.n).unroll(uy)
        .vectorize(v.x, vec, TailStrategy::ShiftInwards);
  } else {
    f.out.split(v.x, qx, ux, sx, TailStrategy::GuardWithIf).split(v.y, qy, uy, sy, TailStrategy::GuardWithIf)
        .reorder(qx, ux, uy, qy, v.c, v.n).unroll(ux).unroll(uy);
    if (k.schedule.lanes >= 8 && (W / sx) >= 8) f.out.vectorize(qx, 8, TailStrategy::GuardWithIf);
    else if ((W / sx) >= 4) f.out.vectorize(qx, 4, TailStrategy::GuardWithIf);
  }
  if (f.dyz.has_update_definition()) f.dyz.compute_at(f.out, v.n);  // the zero-padded copy; else inlined
  f.out.specialize(!few).parallel(v.n);
}

// Input gradient of a conv: input pixel (x, y) receives dy at every output position whose tap
// (kx, ky) lands on it, ox * s = x + p - kx * d; computed as a stride-1 conv over upsampled dy.
// Strided convs without dilation take convBackDataPhases instead.
struct BackDataFuncs {
  Func out{"conv_dx"}, acc{"convbd_acc"}, dyz{"convbd_dyz"}, wcopy;
  RDom r;
  std::vector<Argument> args;
};

BackDataFuncs convBackDataUpsampled(const KernelSpec& k) {
  BackDataFuncs f;
  Vars v;
  const Attrs& a = k.attrs;
  const Dims& dyd = k.in;   // [O,Ho,Wo]
  const Dims& dxd = k.out;  // [C,H,W]
  int64_t O = dyd[0], Ho = dyd[1], Wo = dyd[2], C = dxd[0];
  int64_t cig = C / a.groups, cog = O / a.groups;
  KernelParams p(k);
  ImageParam dy = p.tensor(backDataSource(k), dyd), w = p.fixed("weight", {O, cig, a.kernel[0], a.kernel[1]});
  Func bias = transposeBias(p, k, (int)C);
  f.args = p.args();
  f.r = RDom(0, (int)a.kernel[1], 0, (int)a.kernel[0], 0, (int)cog, "r");
  RDom& r = f.r;
  Expr g = a.groups == 1 ? Expr(0) : v.c / (int)cig;
  Expr co = g * (int)cog + r.z;
  f.acc(v.x, v.y, v.c, v.n) = 0.0f;
  // dy is zero-extended and, for strides above 1, zero-upsampled (dy[oy, ox] lands at (oy*s, ox*s)),
  // then materialised per image: the input gradient becomes a stride-1 conv with the flipped kernel
  // whose every tap is a dense vector load. Upsampling wastes (s*s - 1)/(s*s) of the FMAs; a gather
  // of single floats under a per-lane test, the alternative, was 5-10x slower here.
  int sx = (int)a.stride[1], sy = (int)a.stride[0];
  Var ux("ux"), uy("uy"), uc("uc"), un("un");
  Expr inside = ux >= 0 && uy >= 0 && ux < (int)Wo * sx && uy < (int)Ho * sy;
  if (sx > 1) inside = inside && ux % sx == 0;
  if (sy > 1) inside = inside && uy % sy == 0;
  if (sx == 1 && sy == 1) f.dyz = zeroPadded(dy, (int)Wo, (int)Ho, 0, 0, k.schedule, "convbd_dyz", !depthwisePurePad(k));
  else f.dyz(ux, uy, uc, un) = select(inside, dy(clamp(ux / sx, 0, (int)Wo - 1), clamp(uy / sy, 0, (int)Ho - 1), uc, un), 0.0f);
  // With channel vectors the weights are read through a copy in blocks of T input channels.
  Expr cl = a.groups == 1 ? Expr(v.c) : v.c % (int)cig;
  Expr wv = w(r.x, r.y, cl, co);
  if (k.schedule.chanVec) {
    int T = k.schedule.vec * k.schedule.chanVec;
    f.wcopy = blockedCopy(w, T, true);
    wv = blockedWeights(f.wcopy, T)(v.c, r.x, r.y, co);
  }
  f.acc(v.x, v.y, v.c, v.n) += f.dyz(v.x + (int)a.pad[1] - r.x * (int)a.dilation[1], v.y + (int)a.pad[0] - r.y * (int)a.dilation[0], co, v.n) * wv;
  f.out(v.x, v.y, v.c, v.n) = bias.defined() ? f.acc(v.x, v.y, v.c, v.n) + bias(v.c) : f.acc(v.x, v.y, v.c, v.n);
  return f;
}

void convBackDataUpsampledCpu(BackDataFuncs& f, const KernelSpec& k) {
  Vars v;
  schedulePadded(f.dyz, (int)k.in[2], k.schedule);
  if (k.schedule.chanVec) scheduleConvChannels(f.out, f.acc, f.wcopy, f.r, k.schedule, v, f.dyz, false, (int)k.out[0], (int)k.out[2], convSourceBytes(k));
  else scheduleConvTile(f.out, f.acc, f.r, k.schedule, (int)k.out[0], v, f.dyz, false, k.attrs.groups > 1);
}


// ---- ConvBackWeight: the weight gradient ----

// The register tile of the weight gradient: cv vectors of vec output channels x kw x kyt taps x cit
// input channels. At most ~24 accumulators of AVX-512's 32 registers, leaving room for the dy
// vectors and the broadcast pixel. 3x3: 2 vectors x 9 taps; 1x1: 2 vectors x 8 input channels.
// On NEON (4 lanes) a vector is one 4-float register, so the same count of vectors fits.
struct BackWeightTile {
  int vec, cv, kyt, cit;
};

BackWeightTile backWeightTile(const KernelSpec& k) {
  int C = (int)(k.in[0] / k.attrs.groups), O = (int)k.extraIns[0][0], kh = (int)k.attrs.kernel[0], kw = (int)k.attrs.kernel[1];
  BackWeightTile t;
  // AVX2 (8 lanes, 16 registers): 8-channel vectors, at most 12 accumulators.
  int lanes = k.schedule.lanes, budget = lanes == 8 ? 12 : 24;
  t.vec = lanes == 8 ? (O >= 8 ? 8 : 4) : lanes < 16 ? 4 : O >= 16 ? 16 : O >= 8 ? 8 : 4;
  if (k.attrs.groups > 1) t.vec = groupedWeightVec(k, lanes);
  t.cv = O >= 2 * t.vec ? 2 : 1;
  t.kyt = t.cv * kw * kh <= budget ? kh : 1;
  t.cit = 1;
  for (int c : {8, 4, 2})
    if (C % c == 0 && t.cv * kw * t.kyt * c <= budget) { t.cit = c; break; }
  // A tuned tile (cnnc tune, tune.cpp) overrides: chanVec vectors of vec channels, tileY tap rows
  // (1 or kh), tileC input channels (dividing C).
  const Schedule& sc = k.schedule;
  if (sc.chanVec > 0 && (k.attrs.groups == 1 || (O / k.attrs.groups) % sc.vec == 0) && (sc.tileY == 1 || sc.tileY == kh) && sc.tileC >= 1 && C % sc.tileC == 0)
    t.vec = sc.vec, t.cv = sc.chanVec, t.kyt = sc.tileY, t.cit = sc.tileC;
  return t;
}

// Other grouped convs: dw[co, ci, ky, kx] = sum over batch and output positions of dy * the input
// pixel under the tap, one task per output channel (a lane-varying group would make the tiled form
// gather).
struct GroupedWeightFuncs {
  Func out{"conv_dw"}, acc{"convbw_acc"};
  RDom r;
  Var kx{"kx"}, ky{"ky"}, ci{"ci"}, co{"co"};
  std::vector<Argument> args;
};

GroupedWeightFuncs convBackWeightGrouped(const KernelSpec& k) {
  GroupedWeightFuncs f;
  Vars v;
  const Attrs& a = k.attrs;
  const Dims& xd = k.in;            // [C,H,W]
  const Dims& dyd = k.extraIns[0];  // [O,Ho,Wo]
  int64_t C = xd[0], H = xd[1], W = xd[2], O = dyd[0];
  int64_t cig = C / a.groups, cog = O / a.groups;
  KernelParams p(k);
  ImageParam dy = p.tensor("dy", dyd), x = p.tensor("x", xd);
  f.args = p.args();
  Func src("convbw_src");
  if (a.pad[0] || a.pad[1]) src = BoundaryConditions::constant_exterior(x, 0.0f, {{0, (int)W}, {0, (int)H}});
  else src(v.x, v.y, v.c, v.n) = x(v.x, v.y, v.c, v.n);
  Var kx = f.kx, ky = f.ky, ci = f.ci, co = f.co;
  f.r = RDom(0, (int)dyd[2], 0, (int)dyd[1], 0, dy.dim(3).extent(), "r");
  RDom& r = f.r;
  Expr g = a.groups == 1 ? Expr(0) : co / (int)cog;
  f.acc(kx, ky, ci, co) = 0.0f;
  f.acc(kx, ky, ci, co) += dy(r.x, r.y, co, r.z) *
      src(r.x * (int)a.stride[1] + kx * (int)a.dilation[1] - (int)a.pad[1], r.y * (int)a.stride[0] + ky * (int)a.dilation[0] - (int)a.pad[0],
          g * (int)cig + ci, r.z);
  f.out(kx, ky, ci, co) = f.acc(kx, ky, ci, co);
  return f;
}

void convBackWeightGroupedCpu(GroupedWeightFuncs& f, const KernelSpec& k) {
  // Each task owns one output channel's weights: no two threads write the same gradient.
  f.out.parallel(f.co);
  f.acc.compute_at(f.out, f.co);
  f.acc.update().reorder(f.kx, f.ky, f.ci, f.r.x, f.r.y, f.r.z);
}

}  // namespace

WeightGradSources weightGradSources(const KernelSpec& k) {
  const Attrs& a = k.attrs;
  const Dims& xd = k.in;            // [C,H,W]
  const Dims& dyd = k.extraIns[0];  // [O,Ho,Wo]
  KernelParams p(k);
  WeightGradSources s{p.tensor("dy", dyd), p.tensor("x", xd), p.args()};  // in order: args() after both
  Var co("co"), ox("ox"), oy("oy"), n("n");
  s.dyRows(co, ox, oy, n) = s.dy(ox, oy, clamp(co, 0, (int)dyd[0] - 1), n);
  s.dyT(co, ox, oy, n) = s.dyRows(co, ox, oy, n);
  s.sx = (int)a.stride[1], s.sy = (int)a.stride[0];
  s.subsampled = a.kernel[0] == 1 && a.kernel[1] == 1 && !a.pad[0] && !a.pad[1] && (s.sx > 1 || s.sy > 1) && padAsCopy(k.schedule);
  if (s.subsampled) {
    Var x("sx"), y("sy"), c("sc");
    s.xpad(x, y, c, n) = s.x(x * s.sx, y * s.sy, c, n);
    s.sx = s.sy = 1;
  } else {
    s.xpad = zeroPadded(s.x, (int)xd[2], (int)xd[1], (int)a.pad[1], (int)a.pad[0], k.schedule, "convbw_xpad");
  }
  return s;
}

// The CPU schedule of xpad, computed where its caller puts it: the zero-padded copy's
// (schedulePadded), or the subsampled copy's, vectors along its rows of Wo pixels.
void scheduleWeightSource(WeightGradSources& s, const KernelSpec& k) {
  if (!s.subsampled) {
    schedulePadded(s.xpad, (int)k.in[2], k.schedule);
    return;
  }
  int vec = rowVectorWidth(k.extraIns[0][2], k.schedule.lanes);
  if (vec > 1) s.xpad.vectorize(s.xpad.args()[0], vec, TailStrategy::ShiftInwards);
}

// dyT computed at `at`, transposed in B x B blocks through registers: dyRows loads B rows of B
// columns as dense vectors into a register tile, and dyT stores B channel vectors read across
// them (shuffles). Without this, each transposed float was a scatter or gather lane: 1.4 cycles
// per float, a fifth of MiniVGG's 32-channel weight gradients and most of its 3-channel one.
// B = 16 where rows hold 16 columns and vectors are 16 wide, 8 at 8; otherwise channel vectors
// gathered from dy.
void scheduleTranspose(WeightGradSources& s, Func at, VarOrRVar where, int vec, int Wo) {
  if (!at.defined()) s.dyT.compute_root().parallel(s.dyT.args()[3]);  // every image's, in parallel
  else if (where.is_rvar) s.dyT.compute_at(at, where.rvar);
  else s.dyT.compute_at(at, where.var);
  int B = vec >= 16 && Wo >= 16 ? 16 : vec >= 8 && Wo >= 8 ? 8 : 0;
  if (!B) {
    s.dyT.vectorize(s.dyT.args()[0], vec, TailStrategy::RoundUp);
    return;
  }
  Var co = s.dyT.args()[0], ox = s.dyT.args()[1], coo("tco"), coi("tci"), oxo("tox"), oxi("txi");
  s.dyT.split(co, coo, coi, B, TailStrategy::RoundUp).split(ox, oxo, oxi, B, TailStrategy::ShiftInwards)
      .reorder(coi, oxi, coo, oxo).vectorize(coi).unroll(oxi);
  s.dyRows.compute_at(s.dyT, coo).store_in(MemoryType::Register).vectorize(s.dyRows.args()[1]).unroll(s.dyRows.args()[0]);
}

// The gradient leaves in PyTorch's [O, C, kh, kw] layout while the sums hold output channels
// innermost: a transpose of an O x (C kh kw) matrix. Element by element (parallel over co, kx
// innermost) every read touched another cache line: 14% of ResNet-18's 512-channel weight gradient
// (9.4 MiB) at batch 8. In blocks of 16 x 16, a block's 16 lines of each side stay in L1.
// `sum`, where given (the batched form's 2 to 8 partials added up), is computed per block of 16
// output channels, in parallel, into a buffer of 16 x C x taps floats (295 KiB at 512 channels)
// that the transpose reads from L2: summed once over the whole gradient by one thread, it wrote and
// reread 9.4 MiB, and the sum and the transpose were 29% of ResNet-18's 7x7 weight gradient at
// batch 8 (that kernel alone: 16.8 -> 14.4 ms, medians of 5 alternating runs, Intel 6/207).
Var scheduleWeightOut(Func out, Func sum, int vec) {
  Var kx = out.args()[0], ky = out.args()[1], ci = out.args()[2], co = out.args()[3];
  Var kxy("kxy"), f("f"), fo("fo"), fi("fi"), coo("coo"), coi("coi");
  out.fuse(kx, ky, kxy).fuse(kxy, ci, f)
      .split(f, fo, fi, 16, TailStrategy::GuardWithIf).split(co, coo, coi, 16, TailStrategy::GuardWithIf)
      .reorder(fi, coi, fo, coo).vectorize(fi).parallel(coo);
  if (!sum.defined()) return coo;
  Var sc = sum.args()[0];
  sum.compute_at(out, coo).vectorize(sc, vec, TailStrategy::RoundUp);
  sum.update().vectorize(sc, vec, TailStrategy::RoundUp);
  return coo;
}

namespace {

// The input channel that weight (co, ci) reads: ci of co's group.
Expr inputChannel(const KernelSpec& k, Expr co, Expr ci) {
  if (k.attrs.groups == 1) return ci;
  int64_t cig = k.in[0] / k.attrs.groups, cog = k.extraIns[0][0] / k.attrs.groups;
  return co / (int)cog * (int)cig + ci;
}

// The Funcs of the two tiled forms below (ungrouped convs, and grouped ones with groupedWeightVec).
struct WeightFuncs {
  WeightGradSources src;
  Func out{"conv_dw"}, sum{"convbw_sum"}, part{"convbw_part"}, acc{"convbw_acc"};
  RDom rp;   // per-image form: the output positions of one image
  RDom rn;   // per-image form: the images, split into chunks by the schedule (rfactor); block form: the chunks
  RDom rq;   // batched and block forms: the output positions of every image of a chunk
  Var co{"co"}, kx{"kx"}, ky{"ky"}, ci{"ci"}, u{"u"};
  Expr N;    // the batch
  std::vector<Argument> args;
};

// A WeightFuncs with its sources (dyT, xpad) and its arguments.
WeightFuncs weightFuncs(const KernelSpec& k) {
  WeightFuncs f;
  f.src = weightGradSources(k);
  f.args = f.src.args;
  return f;
}

// What a tile sums: dy at output position (ox, oy) of image `img` times the input pixel under the
// tap (kx, ky) of that position.
Expr tapProduct(const WeightFuncs& f, const KernelSpec& k, Expr ox, Expr oy, Expr img) {
  const Attrs& a = k.attrs;
  return f.src.dyT(f.co, ox, oy, img) *
         f.src.xpad(ox * f.src.sx + f.kx * (int)a.dilation[1], oy * f.src.sy + f.ky * (int)a.dilation[0], inputChannel(k, f.co, f.ci), img);
}

// The register tile of the three tiled forms below. `tile`, a stage of `tiles` (the Func a tile's
// sums are stored to), is cut into tiles of T = vec x cv output channels x kyt tap rows x cit input
// channels, `outer` naming its loops outside them (outermost last); `acc`, one tile's sums over the
// `positions` it reduces, lives in registers per tile: cv vectors x kw x kyt x cit, all unrolled.
void scheduleWeightTile(Func tiles, Stage tile, Func acc, const BackWeightTile& t, const WeightFuncs& w, std::vector<VarOrRVar> outer,
                        std::vector<VarOrRVar> positions) {
  Var coo("coo"), coi("coi"), kyo("kyo"), kyi("kyi"), cio("cio"), cii("cii"), cv_("cvv"), cl("cl");
  tile.split(w.co, coo, coi, t.vec * t.cv, TailStrategy::RoundUp).split(w.ky, kyo, kyi, t.kyt).split(w.ci, cio, cii, t.cit).vectorize(coi, t.vec);
  std::vector<VarOrRVar> order{coi, w.kx, kyi, cii, kyo, cio, coo};
  order.insert(order.end(), outer.begin(), outer.end());
  tile.reorder(order);
  acc.compute_at(tiles, kyo);
  acc.split(w.co, cv_, cl, t.vec).vectorize(cl).unroll(cv_).unroll(w.kx).unroll(w.ky).unroll(w.ci);
  std::vector<VarOrRVar> inner{cl, cv_, w.kx, w.ky, w.ci};
  inner.insert(inner.end(), positions.begin(), positions.end());
  acc.update().split(w.co, cv_, cl, t.vec).reorder(inner).vectorize(cl).unroll(cv_).unroll(w.kx).unroll(w.ky).unroll(w.ci);
}

// Weight gradient of an ungrouped conv with small outputs (Ho x Wo <= 64: TinyResNet's 8x8 and 4x4
// layers). The per-image form below adds each register tile into its chunk's partial after only
// Ho x Wo positions, so that partial (O x C x taps floats: 2.4 MiB at 256 channels) streamed through
// the caches once per image, and the 4x4 layers ran at half the rate of the 32x32 ones. Here:
//  1. The batch is cut into 2 to 8 chunks of at least 16 images (fewer when N < 32), each a parallel task.
//  2. Per chunk, dy is transposed channels-innermost (dyT) and x padded (xpad), all its images at once.
//  3. Each register tile (the same tiles as the per-image form) sums over the positions of every
//     image of the chunk, then is stored into the chunk's partial once.
//  4. The partials are summed in chunk order, so the result does not depend on the thread count.
// Also up to 256 positions (16x16 planes and smaller) on CPUs, whatever the sums' size: per image,
// the per-image form loads and stores every tile's sums after only Ho x Wo positions, and makes a
// transposed dy and a padded x per image where this form makes them once per chunk. Measured in the
// nets' steps (AMD EPYC family 26 model 2, medians of 4-6 alternating profiled runs): TinyResNet at
// batch 128, its 64-channel 16x16 gradients 26.3 -> 20.8 ms (3 calls) and the strided 32 -> 64 one
// 5.4 -> 4.5 ms; ResNet-50 at batch 8, layer3's 1x1 gradients (14x14, 256 <-> 1024) 30.3 -> 20.4 and
// 22.7 -> 14.5 ms; ResNet-18's 14x14 1x1 downsample 0.75 -> 0.50 ms; MiniVGG's 16x16 gradients at
// batch 128 7.6 -> 6.5 and 4.3 -> 3.4 ms. Past 256 positions it does not pay: TinyResNet's 32x32
// gradients 27.0 -> 28.8 ms, and at 28x28 ResNet-50's and ResNet-18's 1x1 and strided gradients at
// batch 8 went 5-15% either way. Past 1 MiB of sums the per-image form also reloads every tile's
// sums from L3: U-Net's up1 (1024 -> 512 at 12x12, 18.9 MiB of sums) ran at 24 GFLOP/s that way;
// in its step at batch 8 on 1x96x96 (Intel 6/207) its 12x12 weight gradients were 2-2.4x faster in
// this form (up1's first: 133-180 -> 82-89 ms). A GPU keeps the per-image form below 1 MiB of sums
// (not measured on one yet).
bool weightGradBatched(const KernelSpec& k) {
  int64_t HWo = k.extraIns[0][1] * k.extraIns[0][2];
  return HWo <= 64 || (HWo <= 256 && (!k.schedule.gpu || numel(k.out) * 4 > kCacheBudget));  // k.out: dw, the sums' shape
}

WeightFuncs convBackWeightBatched(const KernelSpec& k) {
  int Ho = (int)k.extraIns[0][1], Wo = (int)k.extraIns[0][2];  // dy [O,Ho,Wo]
  WeightFuncs f = weightFuncs(k);
  Var co = f.co, kx = f.kx, ky = f.ky, ci = f.ci, u = f.u;
  // At least 16 images per chunk, 2 to 8 chunks: each chunk's partial is O x C x taps floats,
  // 9.4 MiB for ResNet-18's 512-channel layers, and 8 chunks of one image each at batch 8 spent
  // more time writing and summing partials than multiplying. (One chunk below 32 images, parallel
  // over blocks of output channels, was 8% slower than two at batch 8: its dyT and xpad are then
  // made by one thread, and each thread reads every image's.)
  Expr N = f.src.dy.dim(3).extent(), chunks = clamp(N / 16, 2, 8), per = (N + chunks - 1) / chunks;
  f.rq = RDom(0, Wo, 0, Ho, 0, per, "rq");
  RDom& rq = f.rq;
  Expr img = u * per + rq.z;
  rq.where(img < N);
  img = min(img, N - 1);  // the same image; bounds inference cannot see the where clause
  f.acc(co, kx, ky, ci, u) = 0.0f;
  f.acc(co, kx, ky, ci, u) += tapProduct(f, k, rq.x, rq.y, img);
  f.part(co, kx, ky, ci, u) = f.acc(co, kx, ky, ci, u);
  RDom ru(0, chunks, "ru");
  f.sum(co, kx, ky, ci) = 0.0f;
  f.sum(co, kx, ky, ci) += f.part(co, kx, ky, ci, ru);
  f.out(kx, ky, ci, co) = f.sum(co, kx, ky, ci);
  return f;
}

void convBackWeightBatchedCpu(WeightFuncs& f, const KernelSpec& k) {
  int Wo = (int)k.extraIns[0][2];
  Var u = f.u;
  RDom& rq = f.rq;
  scheduleWeightSource(f.src, k);
  BackWeightTile t = backWeightTile(k);
  f.part.compute_root().parallel(u);
  // Blocks of output channels outermost: a block's dyT rows (T channels x the chunk's positions,
  // 25 KiB for ResNet-18's 7x7 layers at batch 8) stay in L1 over all input channels, where with
  // the input channels outermost each one streamed the whole chunk's dyT (400 KiB) from L2 again.
  // ResNet-18's 512-channel weight gradients at batch 8: 19.0-19.8 -> 18.5-18.8 ms (AMD EPYC 26/2,
  // profiled, alternating); TinyResNet's at batch 128 unchanged.
  scheduleWeightTile(f.part, f.part, f.acc, t, f, {u}, {rq.x, rq.y, rq.z});
  scheduleTranspose(f.src, f.part, u, t.vec, Wo);
  f.src.xpad.compute_at(f.part, u);
  scheduleWeightOut(f.out, f.sum, t.vec);
}

// Weight gradient of an ungrouped conv, dw[co, ci, ky, kx] = sum over n, oy, ox of
// dy[n, co, oy, ox] * x[n, ci, oy*s + ky*d - p, ox*s + kx*d - p]. The algorithm:
//  1. Per image, dy is transposed to channels-innermost (dyT) and x padded once (xpad), so the
//     reduction reads one contiguous vector of output channels and broadcasts one input pixel per tap.
//  2. A register tile `part` holds (cv x vec output channels) x (kx, ky, ci taps); it sums over the
//     image's output positions, then is added to a partial of its batch chunk.
//  3. The batch is cut into up to 8 chunks (rfactor, in both schedules), each a parallel task with
//     its own partial, so no two threads write one gradient; the partials are summed at the end and
//     transposed to PyTorch's [O, C, kh, kw] layout.
//  4. Where an image's dyT outgrows L2, its output positions are taken in blocks of R rows
//     (weightRowBlock), and every register tile of the image (all input channels, then all blocks
//     of output channels) runs over one block of rows before the next: that block's dyT rows
//     (R x Wo x vec x cv floats, at most 16 KiB) stay in L1 for all C input channels. Over the
//     whole image at once every tile streamed all of dyT from L3.
// The cost of steps 1 and 3 is O(O + C) per pixel against O(O x C x taps) for step 2.
// Step 4's R: the largest divisor of Ho whose R rows of one tile's dyT (R x Wo x T floats) fit in
// 16 KiB, a third of L1, beside the broadcast rows of x; but only where an image's dyT is past
// 1 MiB (half of L2). Below that dyT streams from L2 at the tiles' pace, and blocks of rows cost
// more than they save: every block of rows loads and stores each tile's sums again, and the sums
// of a 256-channel layer (2.4 MiB) then cycle through L3 once per block. Measured at batch 8 in
// ResNet-18 (Intel 6/207): conv1's gradient (64 x 112 x 112 dy, 3.2 MiB) 19.4 -> 8.5 ms with R = 1;
// the 56x56 to 14x14 layers (0.8 MiB and less) 8-12% slower with R = 2, 4, 7.
// A GPU block takes the whole image (R = Ho).
int weightRowBlock(const KernelSpec& k) {
  int Ho = (int)k.extraIns[0][1], Wo = (int)k.extraIns[0][2];
  if (k.schedule.gpu || numel(k.extraIns[0]) * 4 <= kCacheBudget) return Ho;
  BackWeightTile t = backWeightTile(k);
  int64_t row = (int64_t)Wo * t.vec * t.cv * 4;
  int R = 1;
  for (int d = 1; d <= Ho; ++d)
    if (Ho % d == 0 && d * row <= 16 * 1024) R = d;
  return R;
}

WeightFuncs convBackWeightPerImage(const KernelSpec& k) {
  int Ho = (int)k.extraIns[0][1], Wo = (int)k.extraIns[0][2];  // dy [O,Ho,Wo]
  WeightFuncs f = weightFuncs(k);
  Var co = f.co, kx = f.kx, ky = f.ky, ci = f.ci;
  Var n("n"), b("b");
  int R = weightRowBlock(k);
  f.rp = RDom(0, Wo, 0, R, "rp");
  RDom& rp = f.rp;
  Expr oy = b * R + rp.y;
  f.part(co, kx, ky, ci, b, n) = 0.0f;
  f.part(co, kx, ky, ci, b, n) += tapProduct(f, k, rp.x, oy, n);
  f.N = f.src.dy.dim(3).extent();
  f.rn = RDom(0, Ho / R, 0, f.N, "rn");  // (block of rows, image)
  f.sum(co, kx, ky, ci) = 0.0f;
  f.sum(co, kx, ky, ci) += f.part(co, kx, ky, ci, f.rn.x, f.rn.y);
  f.out(kx, ky, ci, co) = f.sum(co, kx, ky, ci);
  return f;
}

// Step 3's chunks: the images split into up to 8 chunks, each summed apart (rfactor over `u`).
// Returns the chunk Func; `ni` is the image within a chunk.
Func chunkImages(WeightFuncs& f, RVar& ni) {
  RVar no("no");
  f.sum.update().split(f.rn.y, no, ni, (f.N + 7) / 8, TailStrategy::GuardWithIf);
  return f.sum.update().rfactor(no, f.u);
}

void convBackWeightPerImageCpu(WeightFuncs& f, const KernelSpec& k) {
  int Wo = (int)k.extraIns[0][2];
  Var co = f.co, ci = f.ci, u = f.u;
  RDom& rp = f.rp;
  scheduleWeightSource(f.src, k);
  BackWeightTile t = backWeightTile(k);
  int vec = t.vec;
  RVar ni("ni");
  Func chunk = chunkImages(f, ni);
  chunk.compute_root().vectorize(co, vec, TailStrategy::RoundUp);
  chunk.update().parallel(u);
  scheduleWeightTile(chunk, chunk.update(), f.part, t, f, {f.rn.x, ni, u}, {rp.x, rp.y});
  // A tile's sums are one image's: without the bound, the image's extent inferred from the chunk's
  // split (GuardWithIf) was not a constant, so each tile's sums were a heap allocation (malloc and
  // free per tile and block of rows: 37,632 per step for ResNet-18's stem at batch 8, R = 1).
  // Its weight gradient at batch 8 9.4-9.9 -> 5.6-6.4 ms, TinyResNet's four 32x32 ones at batch 128
  // 26.6 -> 24.6 ms (AMD EPYC 26/2, alternating profiled runs).
  f.part.bound_extent(f.part.args()[5], 1);
  scheduleTranspose(f.src, chunk, ni, vec, Wo);
  f.src.xpad.compute_at(chunk, ni);
  // The chunks' partials summed in parallel over input channels (serial, this sum of 8 partials of
  // 2.4 MiB was a tenth of ResNet-18's 256-channel weight gradient at batch 8). Per block of output
  // channels, as the batched form does, it was 10-15% slower for ResNet-18's 56x56 to 14x14 layers.
  f.sum.compute_root().vectorize(co, vec, TailStrategy::RoundUp).parallel(ci);
  f.sum.update().vectorize(co, vec, TailStrategy::RoundUp).parallel(ci);
  scheduleWeightOut(f.out);
}

void convBackWeightPerImageGpu(WeightFuncs& f, const KernelSpec& k) {
  RVar ni("ni");
  Func chunk = chunkImages(f, ni);
  // rfactor leaves the chunk index innermost; output channels go innermost, so neighbouring
  // threads write neighbouring gradients.
  chunk.update().reorder(f.rn.x, ni, f.co, f.kx, f.ky, f.ci, f.u);
  gpuSchedule(f.out, k);
}

// Weight gradient of an ungrouped conv whose sums (dw, O x C x taps floats) pass 2 MiB, with blocks
// of output channels as the parallel tasks instead of chunks of the batch. The algorithm:
//  1. dy is transposed channels-innermost (dyT) and x padded (xpad) once for the whole batch, each
//     in parallel over images.
//  2. Each task owns T = vec x cv output channels and sums over every image, so no two tasks write
//     one gradient and there are no partials to add up: its sums (T x C x taps floats, 590 KiB at
//     512 channels) stay in L2, and it transposes them into PyTorch's layout itself.
//  3. Within a task the images are taken in chunks of about kBlockPositions output positions; each
//     register tile (the tiled forms' tile) sums over one chunk, then adds into the task's sums.
// The chunked forms (batched, per image) gave each of 2 to 8 chunks of the batch a partial of all
// O x C x taps sums, which streamed through memory twice (written, then read back for the sum and
// transpose): a quarter of ResNet-18's 512-channel 7x7 weight gradient at batch 8 (perf). Measured
// in the nets (AMD EPYC family 26 model 2, medians of 4 alternating profiled runs): ResNet-18's step
// at batch 8, its 512 x 512 gradients (3 calls) 19.6-19.7 -> 15.2-15.6 ms, 256 -> 512 3.2-3.3 ->
// 2.8-2.9 ms, 256 x 256 (2.4 MiB of sums) 14.8 -> 13.9 ms; U-Net's step at batch 8 on 1x96x96 1006
// -> 750 ms: up1's first 103 -> 27 ms (sums of 18.9 MiB), up2's first 145 -> 27 ms (4.7 MiB, 24x24:
// the per-image form ran it at 17% of the FMA peak); VGG-11's at batch 8, its 28x28 512-channel
// gradients 130 -> 77-81 and 65 -> 38-40 ms, the 56x56 256-channel one 133 -> 92 ms. Below 2 MiB the
// chunks stay ahead or level: TinyResNet's 128 -> 256 gradient at 4x4 (1.2 MiB) at batch 128 3.65
// -> 4.06 ms, its 8x8 ones 18.2 -> 20.6 ms, ResNet-18's 64-channel 56x56 ones 21.2 -> 23.4 ms.
// Where one task's rows of an image's dyT pass 512 KiB (the stems' 112x112 planes: 1.6 MiB at 32
// channels), the per-image form's row blocks stay.
bool weightGradByBlock(const KernelSpec& k) {
  BackWeightTile t = backWeightTile(k);
  int64_t blockRows = (int64_t)t.vec * t.cv * k.extraIns[0][1] * k.extraIns[0][2] * 4;  // one image's dyT rows of a task
  return !k.schedule.gpu && numel(k.out) * 4 > 2 * kCacheBudget && blockRows <= kCacheBudget / 2;
}

// Step 3's chunks: 128 positions keep a task's dyT rows for one chunk (32 channels x 128 positions,
// 16 KiB) in L1 beside the broadcast rows of x. All of ResNet-18's 7x7 batch at once (392
// positions) was as fast there; TinyResNet's 8x8 layers at batch 128 were 4%, 6% and 15% slower
// with 256, 512 and 1024 (measured with this form applied to them).
constexpr int kBlockPositions = 128;

WeightFuncs convBackWeightByBlock(const KernelSpec& k) {
  int Ho = (int)k.extraIns[0][1], Wo = (int)k.extraIns[0][2];  // dy [O,Ho,Wo]
  WeightFuncs f = weightFuncs(k);
  Var co = f.co, kx = f.kx, ky = f.ky, ci = f.ci;
  Expr N = f.src.dy.dim(3).extent();
  int per = std::max(1, kBlockPositions / (Ho * Wo));
  Expr chunks = (N + per - 1) / per;
  f.rq = RDom(0, Wo, 0, Ho, 0, per, "rq");
  RDom& rq = f.rq;
  Var u = f.u;
  Expr img = u * per + rq.z;
  rq.where(img < N);
  img = min(img, N - 1);
  f.acc(co, kx, ky, ci, u) = 0.0f;
  f.acc(co, kx, ky, ci, u) += tapProduct(f, k, rq.x, rq.y, img);
  f.rn = RDom(0, chunks, "rc");
  f.part(co, kx, ky, ci) = 0.0f;
  f.part(co, kx, ky, ci) += f.acc(co, kx, ky, ci, f.rn.x);
  f.out(kx, ky, ci, co) = f.part(co, kx, ky, ci);
  return f;
}

void convBackWeightByBlockCpu(WeightFuncs& f, const KernelSpec& k) {
  int Wo = (int)k.extraIns[0][2];
  Var co = f.co, kx = f.kx, ky = f.ky, ci = f.ci;
  RDom& rq = f.rq;
  scheduleWeightSource(f.src, k);
  BackWeightTile t = backWeightTile(k);
  int T = t.vec * t.cv;
  Var kxy("kxy"), fl("fl"), fo("fo"), fi("fi"), ob("ob"), oi("oi");
  f.out.fuse(kx, ky, kxy).fuse(kxy, ci, fl)
      .split(f.out.args()[3], ob, oi, T, TailStrategy::GuardWithIf)
      .split(fl, fo, fi, 16, TailStrategy::GuardWithIf)
      .reorder(fi, oi, fo, ob).vectorize(fi).parallel(ob);
  f.part.compute_at(f.out, ob).vectorize(co, t.vec, TailStrategy::RoundUp);
  scheduleWeightTile(f.part, f.part.update(), f.acc, t, f, {f.rn.x}, {rq.x, rq.y, rq.z});
  scheduleTranspose(f.src, Func(), Var(), t.vec, Wo);
  f.src.xpad.compute_root().parallel(f.src.xpad.args()[3]);
  if (f.src.xpad.has_update_definition()) f.src.xpad.update().parallel(f.src.xpad.args()[3]);
}

}  // namespace

bool chanVecTileFits(const KernelSpec& k, int64_t n, int t) {
  if (t < 1) return false;
  bool rounds = k.kind == KernelKind::Conv || (k.kind == KernelKind::ConvBackData && !usesPhases(k));
  return rounds ? (n + t - 1) / t * t * 10 <= n * 11 : n % t == 0;
}

// Channel blocks inside row strips where one image's source is large (768 KiB, as for the parallel
// padded copy) and at least twice the weights: strips read the image once and the weights four
// times, blocks the image once per block (4 to 8 blocks) and the weights once. ResNet-18 at batch 1
// (AMD EPYC family 26 model 2, medians of 5 alternating runs, in the net): the strided 64 -> 128
// 3x3 conv 0.431 -> 0.394 ms, its 1x1 downsample 0.108 -> 0.092 ms, the net 10.88 -> 10.74 ms;
// every chanVec conv in strips made the 14x14 and 7x7 layers (weights larger than their images)
// 5-40% slower, the 28x28 ones 1-4%; two strips matched four, seven were slower.
bool channelBlocksInStrips(const KernelSpec& k) {
  if (k.kind != KernelKind::Conv || !k.schedule.chanVec || k.attrs.groups != 1) return false;
  int64_t weights = k.in[0] * k.out[0] * k.attrs.kernel[0] * k.attrs.kernel[1] * 4, image = convSourceBytes(k);
  return image >= 768 * 1024 && image >= 2 * weights;
}

ArgNames convArgs(const KernelSpec& k) {
  ArgNames a{"input", "weight", "bias"};
  if (k.residual) a.push_back("residual");
  return a;
}
ArgNames convBackDataArgs(const KernelSpec&) { return {"dy", "weight"}; }
ArgNames convTransposeArgs(const KernelSpec&) { return {"input", "weight", "bias"}; }
ArgNames convBackWeightArgs(const KernelSpec&) { return {"dy", "x"}; }

// Work per image, as 2 x multiply-adds of the direct algorithm (Winograd kernels are credited
// with the same, so their rate can read above the peak). Every conv-like kind multiplies each
// element of its "big" operand by (channels per group x kh x kw) weights:
//   Conv                   out [O,Ho,Wo]   x (C/g) kh kw,  C = in[0]
//   ConvBackData, ConvTranspose   in = dy [O,Ho,Wo] (the transposed conv's x)  x (C/g) kh kw,  C = out[0]
//   ConvBackWeight         extraIns[0] = dy  x  numel(dw) / O,  dw = out [O,C/g,kh,kw]
double convFlops(const KernelSpec& k) {
  double taps = (double)k.attrs.kernel[0] * k.attrs.kernel[1] / k.attrs.groups;
  switch (k.kind) {
    case KernelKind::Conv: return 2.0 * numel(k.out) * k.in[0] * taps;
    case KernelKind::ConvBackData: case KernelKind::ConvTranspose: return 2.0 * numel(k.in) * k.out[0] * taps;
    case KernelKind::ConvBackWeight: return k.extraIns.empty() ? 0.0 : 2.0 * numel(k.extraIns[0]) * ((double)numel(k.out) / k.out[0]);
    default: return 0.0;
  }
}

Lowered lowerConv(const KernelSpec& k) {
  if (k.schedule.winograd) return lowerConvWinograd(k);
  if (k.schedule.flat == 4) return lowerConvDepthwiseDirect(k);
  if (k.schedule.flat) return lowerConvDepthwiseFlat(k);
  ConvFuncs f = convForward(k);
  if (k.schedule.autoBatch) convForwardAuto(f, k);
  else if (k.schedule.gpu) gpuConvSchedule(f.out, f.acc, f.r, k);
  else convForwardCpu(f, k);
  return finish(f.out, k, f.args);
}

Lowered lowerConvTranspose(const KernelSpec& k) { return lowerConvBackData(k); }

Lowered lowerConvBackData(const KernelSpec& k) {
  if (k.schedule.winograd) return lowerConvWinograd(k);
  if (k.schedule.flat == 4) return lowerConvDepthwiseDirect(k);
  if (k.schedule.flat) return lowerConvDepthwiseFlat(k);
  if (usesPhases(k)) return lowerWithSchedules(k, convBackDataPhases(k), convBackDataPhasesCpu);
  BackDataFuncs f = convBackDataUpsampled(k);
  if (k.schedule.gpu) gpuConvSchedule(f.out, f.acc, f.r, k);
  else convBackDataUpsampledCpu(f, k);
  return finish(f.out, k, f.args);
}

Lowered lowerConvBackWeight(const KernelSpec& k) {
  if (k.schedule.winograd && !k.schedule.gpu) return lowerConvBackWeightWinograd(k);
  if (k.schedule.flat) return lowerConvBackWeightDepthwiseFlat(k);
  if (k.attrs.groups != 1 && (k.schedule.gpu || !groupedWeightVec(k, k.schedule.lanes))) return lowerWithSchedules(k, convBackWeightGrouped(k), convBackWeightGroupedCpu);
  if (weightGradByBlock(k)) return lowerWithSchedules(k, convBackWeightByBlock(k), convBackWeightByBlockCpu);
  if (weightGradBatched(k)) return lowerWithSchedules(k, convBackWeightBatched(k), convBackWeightBatchedCpu);
  WeightFuncs f = convBackWeightPerImage(k);
  if (k.schedule.gpu) convBackWeightPerImageGpu(f, k);
  else convBackWeightPerImageCpu(f, k);
  return finish(f.out, k, f.args);
}

// ---- Plan steps (plan_builder.h) ----

// Inference: the conv absorbs, while each has a single consumer, a following batch norm (folded
// into its weights and bias at load), an add (the other operand as a residual input) and an
// activation. The group runs at its tail, where a residual computed after the conv (a projection
// shortcut) exists.
void convPlan(InferenceBuilder& b, const Node& n) {
  const Graph& g = b.g;
  KernelSpec s = b.specOf(n);
  s.kind = KernelKind::Conv;
  std::string label = n.name;
  int w = b.param(n, ParamRole::Weight), bias = b.param(n, ParamRole::Bias);
  int cur = n.id, wc, bc;
  int u = b.soleUser(cur);
  if (u >= 0 && g.nodes[u].op == OpKind::BatchNorm) {
    const Node& bn = g.nodes[u];
    ConstTensor fw;
    fw.kind = ConstTensor::FoldConvBN;
    fw.shape = g.params[w].shape;
    fw.convW = w;
    fw.convB = bias;
    fw.bnW = b.param(bn, ParamRole::Weight);
    fw.bnB = b.param(bn, ParamRole::Bias);
    fw.bnMean = b.param(bn, ParamRole::RunningMean);
    fw.bnVar = b.param(bn, ParamRole::RunningVar);
    fw.eps = bn.attrs.eps;
    ConstTensor fb = fw;
    fb.foldBias = true;
    fb.shape = {n.attrs.out};
    wc = b.newConst(fw);
    bc = b.newConst(fb);
    b.done[u] = true;
    label += "+" + bn.name;
    cur = u;
  } else {
    wc = b.constParam(w);
    bc = bias >= 0 ? b.constParam(bias) : b.zeros(n.attrs.out);
  }
  NamedArgs args{{"input", b.act(n.inputs[0])}, {"weight", {true, wc}}, {"bias", {true, bc}}};
  int residual = -1;
  u = b.soleUser(cur);
  if (u >= 0 && !b.done[u] && g.nodes[u].op == OpKind::Add && g.nodes[u].inputs.size() == 2) {  // one conv per add
    const Node& add = g.nodes[u];
    int other = add.inputs[0] == cur ? add.inputs[1] : add.inputs[0];
    // add(x, x) stays a separate kernel, and so does an add that broadcasts an operand.
    if (other != cur && g.nodes[other].shape == add.shape && g.nodes[cur].shape == add.shape) {
      s.residual = true;
      s.extraIns = {g.nodes[other].shape};
      residual = other;
      b.done[u] = true;
      label += "+" + add.name;
      cur = u;
    }
  }
  int tail = b.absorbAct(cur, s, label);
  b.deferTo(tail, n.id, [&b, s, args, residual, tail, label]() mutable {
    if (residual >= 0) args.push_back({"residual", b.act(residual)});
    s.out = b.g.nodes[tail].shape;
    b.emit(s, args, b.g.nodes[tail], label);
  });
}

// Training: conv (and linear) absorb a following activation, not a batch norm (its batch
// statistics are needed on their own). Backward: the input gradient (skipped for the network
// input), the weight gradient, and the bias gradient unless batch norms cancel it.
void convForward(TrainingBuilder& b, const Node& n) { b.weightedForward(n, KernelKind::Conv); }
void convBackward(TrainingBuilder& b, const BackStep& st) { b.weightedBackward(st, KernelKind::ConvBackData, KernelKind::ConvBackWeight); }

}  // namespace cnnc::codegen
