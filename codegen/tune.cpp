// tune.cpp: the schedule search of `cnnc tune` (tune.h). The algorithm:
//  1. Every kernel's default schedule is compiled and timed first: it is always a candidate (so a
//     tuned compile is never slower than an untuned one beyond noise), and default time x calls per
//     run is the kernel's weight.
//  2. Kernels are tuned heaviest first. Each gets the remaining budget in proportion to its weight
//     among the kernels left, so time a light kernel does not use flows on to the next. Candidates
//     go in the order of tune_model.cpp: seeds (the best on record of similar kernels), then the
//     cost model's ranking (refitted before each kernel, so later kernels learn from earlier ones);
//     when a candidate beats the best by 1%, its one-field neighbours move to the front
//     (evolutionary refinement). In an informed order (a model or seeds) a kernel stops after
//     `patience` measured candidates without such a gain, counting the candidates earlier tunes
//     measured since their best one: a kernel searched to its patience before (by this net or by
//     another with the same kernel) is not searched in the first pass, one cut off by a budget goes on.
//     While budget is left after a pass, the kernels that patience stopped go on in another pass,
//     with twice the patience, sharing what is left by weight as before.
//  3. Candidates (scheduleCandidates) are compiled in parallel batches through the kernel cache
//     (a rejected schedule is skipped), linked into shared objects against one Halide runtime, and
//     timed serially in this process: a warm-up call, then up to 7 calls alternating with calls of
//     the default; the candidate's median over the default's median, times the default's first
//     timing, is its time (so that what slows both in that moment cancels). A candidate whose
//     warm-up takes 5x the best so far is not timed further.
//  4. A candidate's output must match the default's (max difference within 1e-4 of the output's
//     magnitude): a schedule that computes something else is rejected, never recorded.
//  5. Each timed candidate is appended to the database at once (fsync), so a tune killed at any
//     moment keeps everything it measured; candidates the database holds are not measured again.
#include "tune.h"

#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <HalideBuffer.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <nlohmann/json.hpp>

#include "aot.h"
#include "common/install_paths.h"
#include "common/kernel_alloc.h"
#include "common/temp_dir.h"
#include "common/weight_packing.h"
#include "schedule.h"
#include "tune_model.h"
#include "tuning_db.h"
#include "ops/conv.h"
#include "ops/registry.h"

#ifndef CNNC_SOURCE_INCLUDE
#define CNNC_SOURCE_INCLUDE ""
#endif

namespace cnnc::codegen {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// One input channel per output channel (k.in is x for a conv, dy for its input gradient).
bool depthwise(const KernelSpec& k) { return k.in.size() == 3 && isDepthwise(k.in[0], k.out[0], k.attrs.groups); }

bool spatialTunable(const KernelSpec& k) {
  using K = KernelKind;
  static const std::set<K> kinds{K::Affine, K::BNApply, K::BNBackData, K::Activation, K::ActGrad, K::Add, K::Mul, K::MaxPool, K::AvgPool, K::AvgPoolBack};
  return kinds.count(k.kind) && k.out.size() == 3 && !k.schedule.gpu;
}

bool tunable(const KernelSpec& k) {
  if (spatialTunable(k)) return true;
  // Linears: images per register tile of the batched forms, outputs per task of the forward's
  // row-by-row form (linear.cpp).
  if ((k.kind == KernelKind::Linear || k.kind == KernelKind::LinearBackData) && !k.schedule.gpu) return true;
  // Depthwise convs, and the input gradients of those that walk flat (stride 1, "same"); a strided
  // one's input gradient is split by phase, each phase with its own derived schedule.
  if (depthwise(k)) return k.kind == KernelKind::Conv || (k.kind == KernelKind::ConvBackData && depthwiseFlatApplies(k));
  // Grouped convs and input gradients: row-vector tiles (channel vectors would gather across groups).
  if (k.kind == KernelKind::Conv) return true;
  // Weight gradients: the register tile (backWeightTile in conv.cpp), also of grouped convs that
  // take it (groupedWeightVec); the flat form has one.
  if (k.kind == KernelKind::ConvBackWeight) return !k.schedule.flat && !k.extraIns.empty();
  // Input gradients: stride 1, and strided ones split by phase (one schedule for every phase); a
  // strided dilated one runs over upsampled dy and keeps its default.
  return k.kind == KernelKind::ConvBackData && ((k.attrs.stride[0] == 1 && k.attrs.stride[1] == 1) || usesPhases(k));
}

std::vector<Schedule> scheduleCandidates(const KernelSpec& k, bool adams2019) {
  const Schedule d = k.schedule;
  // A flat output (a linear's [O]) has no rows: W = H = 1.
  int lanes = d.lanes, O = (int)k.out[0], H = k.out.size() == 3 ? (int)k.out[1] : 1, W = k.out.size() == 3 ? (int)k.out[2] : 1;
  std::vector<Schedule> out{d};
  std::set<std::string> seen{d.str()};
  auto add = [&](Schedule s) {
    s.lanes = lanes;
    if (seen.insert(s.str()).second) out.push_back(s);
  };
  // The default first, the rest in a fixed pseudo-random order, so a short budget samples every family.
  auto shuffled = [&] {
    std::mt19937 rng(12345);
    std::shuffle(out.begin() + 1, out.end(), rng);
    return out;
  };
  if (k.kind == KernelKind::Linear || k.kind == KernelKind::LinearBackData) {
    for (int images : {8, 4})
      for (int task : {0, 4, 8, 32, 64}) {
        if (task > O || (task && k.kind != KernelKind::Linear)) continue;
        Schedule s = d;
        s.tileY = images == 8 ? 1 : 4, s.task = task;
        add(s);
      }
    return out;
  }
  // Memory-bound kinds (scheduleSpatial): vectors of 4 to 32 floats (two registers at most) along
  // the row or along the whole plane (flat), no wider than either; tasks of the default's choice
  // (0), or of 1 to all channels of one image.
  if (spatialTunable(k)) {
    for (int flat : {0, 1})
      for (int vec : {4, 8, 16, 32}) {
        int row = flat ? W * H : W;
        if ((flat && H == 1) || vec > row || vec > 2 * std::max(lanes, 8) / (lanes == 4 ? 2 : 1)) continue;
        for (int task : {0, 1, 4, 16, 64, O}) {
          if (task > O) continue;
          Schedule s;
          s.vec = vec, s.flat = flat, s.task = task;
          add(s);
        }
      }
    return shuffled();
  }
  // Accumulators per register tile: 24 of AVX-512's (or NEON's) 32 registers, 12 of AVX2's 16.
  const int budget = lanes == 8 ? 12 : 24;
  // Weight gradients: cv vectors of vec output channels x kw x kyt taps x cit input channels
  // (Schedule fields chanVec, tileY, tileC; conv.cpp's backWeightTile), up to the budget and 4
  // more (the broadcast pixel can come from memory).
  if (k.kind == KernelKind::ConvBackWeight) {
    // Grouped: input channels of one group, vectors inside one group.
    int C = (int)(k.in[0] / k.attrs.groups), Od = (int)k.out[0], kh = (int)k.attrs.kernel[0], kw = (int)k.attrs.kernel[1];
    int cog = (int)(Od / k.attrs.groups);
    for (int vec : {16, 8, 4})
      for (int cv : {1, 2, 3, 4})
        for (int kyt : {1, kh})
          for (int cit : {1, 2, 4, 8}) {
            if (vec > lanes || 2 * vec < lanes || (cv > 1 && Od % (vec * cv)) || C % cit || cv * kw * kyt * cit > budget + 4) continue;
            if (k.attrs.groups > 1 && cog % vec) continue;
            Schedule s = d;
            s.vec = vec, s.chanVec = cv, s.tileY = kyt, s.tileC = cit, s.tileX = 1, s.winograd = 0;
            add(s);
          }
    // The Winograd form (conv_winograd.cpp, AVX-512 only): tileX vectors of 16 output channels x
    // tileC input channels, blocks of tileY tile rows (dividing them; transformed dy and x up to
    // 1 MiB); and its form with the 16 products as the tasks (order 1, whole images' tiles).
    if (winogradWeightApplies(k) && lanes == 16) {
      int TH = (int)(k.in[1] + 1) / 2;
      for (int order : {0, 1})
        for (int cv : {1, 2, 4})
          for (int cit : {4, 8, 16})
            for (int rows : {1, 2, 4, 7, 8, TH}) {
              if (Od % (16 * cv) || C % cit || cv * cit > budget || TH % rows) continue;
              if (order == 0 ? rows > winogradWeightRows(k, 1 << 20) || (rows == TH && TH > 8) : rows != TH) continue;
              Schedule s = d;
              s.winograd = 2, s.vec = 16, s.chanVec = 0, s.tileX = cv, s.tileC = cit, s.tileY = rows, s.order = order;
              add(s);
            }
    }
    return shuffled();
  }
  if (k.kind == KernelKind::ConvBackData && usesPhases(k)) {
    // The phases' schedule (Schedule::phase): a forward conv's candidates for the largest phase
    // grid, kept where they fit the smallest too (a phase is one column or row shorter when the
    // stride does not divide the size), as pixel tiles of channel vectors must divide it.
    int sx = (int)k.attrs.stride[1], sy = (int)k.attrs.stride[0];
    int Wq = (W + sx - 1) / sx, Hq = (H + sy - 1) / sy, Wq1 = W / sx, Hq1 = H / sy;
    KernelSpec g = k;
    g.kind = KernelKind::Conv;
    g.out = {k.out[0], Hq, Wq};
    g.schedule = defaultSchedule(g, lanes);
    for (Schedule s : scheduleCandidates(g)) {
      if (s.chanVec ? (Wq % s.tileX || Hq % s.tileY || Wq1 % s.tileX || Hq1 % s.tileY) : (s.vec * s.tileX > Wq1 || s.tileY > Hq1)) continue;
      if (s.chanVec && k.out[0] % (s.vec * s.chanVec)) continue;  // a forward conv's padded blocks; not for phases
      s.phase = 1;
      add(s);
    }
    return shuffled();
  }
  if (depthwise(k)) {
    // Rows: vectors along x, tx vectors x ty rows x tc channels (each its own input plane).
    for (int vec : {16, 8, 4}) {
      if (vec > W || (lanes < 16 && vec > 8)) continue;
      int regs = std::max(1, vec / lanes);
      for (int tx : {1, 2})
        for (int ty : {1, 2, 4})
          for (int tc : {1, 2, 4, 8})
            if (vec * tx <= W && ty <= H && tc <= O && tx * ty * tc * regs <= budget) {
              Schedule s;
              s.vec = vec, s.tileX = tx, s.tileY = ty, s.tileC = tc;
              add(s);
            }
    }
    // The direct form (conv_depthwise.cpp), vectors of 16, 8 or 4, on AVX-512 (masked loads), and
    // channels per task at small batches (0: the 16K-floats rule).
    if (depthwiseDirectApplies(k) && lanes >= 16)
      for (int vec : {16, 8, 4})
        for (int task : {0, 1, 8, 64}) {
          if (vec > W || task > O) continue;
          Schedule s;
          s.flat = 4, s.vec = vec, s.task = task;
          add(s);
        }
    // The flat walk (conv_depthwise.cpp): stores by row or fused over the plane, vectors of 8 or
    // 16, channels per task (0: the 16K-floats rule).
    if (depthwiseFlatApplies(k))
      for (int flat : {2, 3})
        for (int vec : {16, 8}) {
          if ((vec == 16 && lanes < 16) || (flat == 3 && H * W < vec)) continue;
          for (int task : {0, 1, 2, 4, 8, 16, 32, 64, 128, 256}) {
            if (task > O) continue;
            Schedule s;
            s.flat = flat, s.vec = vec, s.task = task;
            add(s);
          }
        }
    return shuffled();
  }
  // Vectors along x: tileX vectors x tileY rows x tileC channels of accumulators.
  for (int vec : {16, 8, 4}) {
    if (vec > W || (lanes < 16 && vec > 8)) continue;
    int regs = std::max(1, vec / lanes);
    for (int tx : {1, 2})
      for (int ty : {1, 2, 3, 4})
        for (int tc : {4, 8, 12, 16})
          if (vec * tx <= W && ty <= H && tc <= O && tx * ty * tc * regs <= budget)
            for (int order : {0, 1, 2}) {  // the channel tiles outermost, inside row strips, innermost
              Schedule s;
              s.vec = vec, s.tileX = tx, s.tileY = ty, s.tileC = tc, s.order = order;
              add(s);
            }
  }
  // Vectors along channels: chanVec vectors x tileX x tileY pixels, tiles that chanVecTileFits. The
  // blocks of a forward conv or a stride-1 input gradient need not divide the channels (the last
  // one is padded, conv.cpp) while that pads at most a quarter more; a strided input gradient's
  // phases must (filtered above, where they take these candidates as a conv's). A forward conv's
  // blocks also walk inside strips of rows (order 1).
  int orders = k.kind == KernelKind::Conv ? 2 : 1;
  for (int order = 0; order < orders; ++order)
    for (int cv : {1, 2, 4}) {
      int T = lanes * cv, padded = (O + T - 1) / T * T;
      bool pads = padsChannelBlocks(k) && lanes == 16 && (padded - O) * 4 <= O;
      if ((O % T && !pads) || (lanes == 16 && cv > 2) || k.attrs.groups != 1) continue;
      for (int tx = 1; tx <= std::min(W, 14); ++tx)
        for (int ty = 1; ty <= std::min(H, 8); ++ty)
          if (chanVecTileFits(k, W, tx) && chanVecTileFits(k, H, ty) && tx * ty <= 16 && tx * ty * cv <= budget + budget / 6) {
            Schedule s;
            s.vec = lanes, s.chanVec = cv, s.tileX = tx, s.tileY = ty, s.tileC = 1, s.order = order;
            add(s);
          }
    }
  // Winograd F(2x2, 3x3): vectors along 2x2 tiles.
  int TW = (W + 1) / 2;
  if (winogradApplies(k) && lanes >= 8 && TW >= 8) {
    int vec = TW >= 16 && lanes == 16 ? 16 : 8;
    int TWp = (TW + vec - 1) / vec * vec;
    for (int tx : {1, 2})
      for (int tc : {4, 6, 8, 12})
        for (int ty : {1, 2, 4})
          if (vec * tx <= TWp && tx * tc <= budget && tc <= O) {
            Schedule s;
            s.winograd = 2, s.vec = vec, s.tileX = tx, s.tileC = tc, s.tileY = ty;
            add(s);
          }
  }
  // Winograd with vectors along output channels (conv_winograd.cpp's winogradChannelsCpu; AVX-512)
  // at rows of 8 to 27: chanVec vectors x tileX x tileY tiles, both loop orders, groups (task) of 8
  // images; groups of 4 and 16 with 2 vectors x one row of tiles.
  if (winogradApplies(k) && lanes == 16 && W >= 8 && W < 28 && k.in[0] >= 32) {
    int TH = (H + 1) / 2;
    for (int order : {0, 1})
      for (int cv : {1, 2})
        for (int tx = 4; tx <= std::min(TW, 8); ++tx)
          for (int ty : {1, 2})
            for (int g : {4, 8, 16}) {
              if (O % (16 * cv) || ty > TH || tx * ty * cv > budget + budget / 6) continue;
              if (g != 8 && (cv != 2 || ty != 1 || order != 1)) continue;
              Schedule s;
              s.winograd = 2, s.vec = 16, s.chanVec = cv, s.tileX = tx, s.tileY = ty, s.tileC = 1, s.order = order, s.task = g;
              add(s);
            }
  }
  shuffled();
  // Halide's Adams2019 autoscheduler (REFERENCE.md: 226 GFLOP/s on a channels-innermost 56x56 conv,
  // 55 at 7x7), planned for the batch being tuned (the caller sets autoBatch). The user asked for it
  // by name, so it goes right after the default: a short budget, or a loaded machine that measures
  // few candidates, must still measure it (shuffled in, it was sometimes never reached).
  if (adams2019 && k.kind == KernelKind::Conv) {
    Schedule s;
    s.autoBatch = 1;
    size_t before = out.size();
    add(s);
    if (out.size() > before) std::rotate(out.begin() + 1, out.end() - 1, out.end());
  }
  return out;
}

namespace {

using KernelFn = int (*)(void**);

// The patience of a kernel whose search starts from seeds (similar kernels' best schedules).
int seededPatience(int patience) { return std::max(2, patience / 2); }


// The buffers of one call at `batch` images, in argument order, the output last.
struct CallBuffers {
  std::vector<Halide::Runtime::Buffer<float>> bufs;
};

// Halide shapes (innermost first) of an image tensor [C,H,W] at `batch`.
std::vector<int> imageShape(const Dims& d, int batch) {
  std::vector<int> s;
  for (int i = (int)d.size() - 1; i >= 0; --i) s.push_back((int)d[i]);
  s.push_back(batch);
  return s;
}

// The inputs of one call of `k` at `batch` images: each one's Halide shape (innermost first), with
// weights unpacked ([O, C/g, kh, kw]), and the scale of its random values; and the output's shape.
struct Shapes {
  std::vector<std::vector<int>> in;
  std::vector<float> scale;
  std::vector<bool> positive;  // values in [scale / 2, scale] (statistics, whose variance must be positive), else [-scale, scale]
  std::vector<int> out;
};

// The output of `k` at `batch` in Halide's order.
std::vector<int> outputShape(const KernelSpec& k, int batch) {
  return outputIsBatched(k.kind) ? imageShape(k.out, batch) : std::vector<int>(k.out.rbegin(), k.out.rend());
}

// Kinds other than convs (memory-bound ones, linears): the plan's shapes (TuneKernel::args);
// activations in [-1, 1], constants (statistics, scales, shifts, weights) in [0.5, 1].
Shapes planShapes(const KernelSpec& k, const std::vector<TuneArg>& args, int batch) {
  Shapes s;
  for (const auto& a : args) {
    s.in.push_back(a.batched ? imageShape(a.shape, batch) : std::vector<int>(a.shape.rbegin(), a.shape.rend()));
    s.scale.push_back(1.0f);
    s.positive.push_back(!a.batched);
  }
  s.out = outputShape(k, batch);
  return s;
}

Shapes shapesOf(const KernelSpec& k, int batch, const std::vector<TuneArg>& args) {
  if (k.kind != KernelKind::Conv && k.kind != KernelKind::ConvBackData && k.kind != KernelKind::ConvBackWeight) return planShapes(k, args, batch);
  const Attrs& a = k.attrs;
  if (k.kind == KernelKind::ConvBackWeight) {  // dy, x -> dw [O, C/g, kh, kw], summed over the batch
    Shapes s;
    for (const auto& name : kernelArgNames(k)) {
      s.in.push_back(imageShape(name == "dy" ? k.extraIns[0] : k.in, batch));
      s.scale.push_back(1.0f);
      s.positive.push_back(false);
    }
    s.out = std::vector<int>(k.out.rbegin(), k.out.rend());
    return s;
  }
  int kh = (int)a.kernel[0], kw = (int)a.kernel[1];
  bool fwd = k.kind == KernelKind::Conv;  // else ConvBackData: dy, weight
  int O = fwd ? (int)k.out[0] : (int)k.in[0], C = fwd ? (int)k.in[0] : (int)k.out[0], cig = C / (int)a.groups;
  // By name, in the order of the kernel's argument list (ops/registry.h).
  std::map<std::string, std::pair<std::vector<int>, float>> byName{
      {fwd ? "input" : "dy", {imageShape(k.in, batch), 1.0f}},
      {"weight", {{kw, kh, cig, O}, 1.0f / std::sqrt((float)((fwd ? cig : O) * kh * kw))}},
      {"bias", {{O}, 0.1f}},
      {"residual", {imageShape(k.out, batch), 1.0f}}};
  Shapes s;
  for (const auto& name : kernelArgNames(k)) {
    s.in.push_back(byName.at(name).first);
    s.scale.push_back(byName.at(name).second);
    s.positive.push_back(false);
  }
  s.out = imageShape(k.out, batch);
  return s;
}

// Random inputs for `k` (shapesOf); every candidate of the kernel runs on these, so their outputs
// can be compared.
CallBuffers canonicalInputs(const KernelSpec& k, int batch, const std::vector<TuneArg>& args) {
  Shapes sh = shapesOf(k, batch, args);
  CallBuffers c;
  std::mt19937 rng(7);
  for (size_t i = 0; i < sh.in.size(); ++i) {
    Halide::Runtime::Buffer<float> b(sh.in[i]);
    std::uniform_real_distribution<float> u(sh.positive[i] ? sh.scale[i] / 2 : -sh.scale[i], sh.scale[i]);
    b.for_each_value([&](float& v) { v = u(rng); });
    c.bufs.push_back(b);
  }
  return c;
}

// The arguments of candidate `k` on `in`: weights packed when it takes them packed (by the
// runtime's own packConvWeight), and a fresh output.
CallBuffers callBuffers(const KernelSpec& k, const CallBuffers& in, int batch) {
  CallBuffers c = in;
  if (k.packedWeights) {
    int wi = argIndex(k, "weight");
    const auto& w = in.bufs[wi];
    Dims oihw{w.dim(3).extent(), w.dim(2).extent(), w.dim(1).extent(), w.dim(0).extent()};
    Dims packed = packedWeightDims(k, oihw);
    Halide::Runtime::Buffer<float> p(std::vector<int>(packed.rbegin(), packed.rend()));  // Halide lists dimensions innermost first
    // Both buffers are dense and freshly made: w's data is [O, C kh kw] row-major, p's the packed order.
    packConvWeight(weightPacking(k), w.data(), (int64_t)w.number_of_elements(), p.data(), packed);
    c.bufs[wi] = p;
  }
  c.bufs.emplace_back(outputShape(k, batch));
  return c;
}

// The measurement program for remote targets: the kernel's shapes are built in; argv[1] is the
// weight block T when the candidate takes packed weights, -1 when it takes them transformed for
// Winograd (0: unpacked). It calls the candidate
// through the symbol cnnc_candidate_argv (the link aliases it to the candidate's entry point), and
// prints {"median_ms", "sum", "asum"} of the output on one line.
std::string harnessSource(const KernelSpec& k, int batch, const std::vector<TuneArg>& args) {
  Shapes sh = shapesOf(k, batch, args);
  auto vec = [](const std::vector<int>& v) {
    std::string t = "std::vector<int>{";
    for (size_t i = 0; i < v.size(); ++i) t += (i ? ", " : "") + std::to_string(v[i]);
    return t + "}";
  };
  std::ostringstream o;
  o << "// Generated by cnnc tune: times one candidate of " << k.key() << "\n"
    << "#include <HalideBuffer.h>\n#include <algorithm>\n#include <chrono>\n#include <cmath>\n#include <cstdio>\n#include <cstdlib>\n"
    << "#include <vector>\n#include \"common/kernel_alloc.h\"\n#include \"common/packed_layout.h\"\n#include \"common/winograd_weights.h\"\n"
    << "extern \"C\" int cnnc_candidate_argv(void**);\n"
    << "static unsigned seed = 12345u;\n"
    << "static float rnd(float a) { seed = seed * 1664525u + 1013904223u; return ((seed >> 8) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * a; }\n"
    << "int main(int argc, char** argv) {\n"
    << "  halide_set_custom_malloc(cnnc::kernelMalloc);  // the executables' kernel allocator\n"
    << "  halide_set_custom_free(cnnc::kernelFree);\n"
    << "  using B = Halide::Runtime::Buffer<float>;\n"
    << "  int T = argc > 1 ? atoi(argv[1]) : 0;\n"
    << "  std::vector<B> b;\n";
  for (size_t i = 0; i < sh.in.size(); ++i) {
    char scale[32];
    snprintf(scale, sizeof scale, "%.9ef", sh.scale[i]);  // a float literal whatever the value
    o << "  b.emplace_back(" << vec(sh.in[i]) << ");\n  b.back().for_each_value([](float& v) { v = "
      << (sh.positive[i] ? "0.75f * " + std::string(scale) + " + rnd(0.25f * " + scale + ")" : "rnd(" + std::string(scale) + ")") << "; });\n";
  }
  o << "  if (T) {  // the weights packed as the runtime packs them, by its own functions\n"
    << "    B& w = b[1];\n"
    << "    int O = w.dim(3).extent(), C = w.dim(2).extent(), rest = (int)(w.number_of_elements() / O);\n"
    << "    B p(T > 0 ? std::vector<int>{T, w.dim(0).extent(), w.dim(1).extent(), C, (O + T - 1) / T}\n"
    << "              : std::vector<int>{O, C, cnnc::kWinogradTaps});\n"
    << "    if (T > 0) cnnc::packWeightBlocks(w.data(), p.data(), O, rest, T);\n"
    << "    else cnnc::transformWinogradWeights(w.data(), p.data(), O, C);\n"
    << "    b[1] = p;\n"
    << "  }\n"
    << "  b.emplace_back(" << vec(sh.out) << ");\n"
    << "  std::vector<void*> a;\n  for (auto& x : b) a.push_back(x.raw_buffer());\n"
    << "  if (cnnc_candidate_argv(a.data()) != 0) return 1;\n"
    << "  std::vector<double> ts;\n  double total = 0;\n"
    << "  while (ts.size() < 7 && (ts.size() < 3 || total < 500)) {\n"
    << "    auto t0 = std::chrono::steady_clock::now();\n"
    << "    if (cnnc_candidate_argv(a.data()) != 0) return 1;\n"
    << "    ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());\n"
    << "    total += ts.back();\n  }\n"
    << "  std::sort(ts.begin(), ts.end());\n"
    << "  double sum = 0, asum = 0;\n"
    << "  b.back().for_each_value([&](float v) { sum += v; asum += std::fabs(v); });\n"
    << "  printf(\"{\\\"median_ms\\\": %.6f, \\\"sum\\\": %.9g, \\\"asum\\\": %.9g}\\n\", ts[ts.size() / 2], sum, asum);\n"
    << "  return 0;\n}\n";
  return o.str();
}

double maxAbsDiff(const Halide::Runtime::Buffer<float>& a, const Halide::Runtime::Buffer<float>& b, double& scale) {
  double d = 0;
  scale = 0;
  const float* pa = a.data();
  const float* pb = b.data();
  for (size_t i = 0; i < a.number_of_elements(); ++i) {
    d = std::max(d, (double)std::fabs(pa[i] - pb[i]));
    scale = std::max(scale, (double)std::fabs(pa[i]));
  }
  return std::isnan(d) ? INFINITY : d;
}

// The raw buffers of a call, in argument order.
std::vector<void*> callArgs(CallBuffers& c) {
  std::vector<void*> a;
  for (auto& b : c.bufs) a.push_back(b.raw_buffer());
  return a;
}

// One call's wall time in ms; -1 when the kernel fails.
double timeCall(KernelFn fn, std::vector<void*>& args) {
  auto t0 = Clock::now();
  int rc = fn(args.data());
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return rc == 0 ? ms : -1.0;
}

// A compiled candidate loaded into this process.
struct Loaded {
  void* handle = nullptr;
  KernelFn fn = nullptr;
  ~Loaded() {
    if (handle) dlclose(handle);
  }
};

std::string shortName(const KernelSpec& k) {
  std::string s = k.key();
  return s.size() > 70 ? s.substr(0, 67) + "..." : s;
}

// What one kernel's tuning keeps between candidates.
struct KernelState {
  const TuneKernel* k = nullptr;
  double defaultMs = 0, bestMs = 0;
  int measured = 0;
  std::unique_ptr<CallBuffers> inputs, ref;  // local: the kernel's inputs; the default's call (its output last)
  std::unique_ptr<Loaded> def;               // local: the default, timed again beside each candidate
  double drift = 0;                          // local: the default's latest time over its first (verbose)
  int sinceBetter = 0;                       // measured candidates since the last 1% gain (patience)
  double weight() const { return defaultMs * k->calls; }  // its default's share of a run of the net
  std::string harness;                       // remote: the measurement program's object
  double refSum = 0, refAsum = 0;            // remote: the default's output sums
};

class Tuner {
public:
  Tuner(const TuneOptions& o) : o_(o) {}
  // The temporary folder goes on every exit, error returns included.
  ~Tuner() {
    std::error_code ec;
    if (!work_.empty()) fs::remove_all(work_, ec);
  }

  bool run(const std::vector<TuneKernel>& kernels, std::string& err);

private:
  const TuneOptions& o_;
  std::string work_, runtimeObject_;
  Toolchain tc_;
  TuningDb db_;
  std::set<std::pair<std::string, std::string>> measured_;  // (key, schedule) in the database

  bool setup(std::string& err);
  bool load(const std::string& object, const KernelSpec& k, Loaded& l, std::string& err);
  // Times `l` on `c`; the first call's output is left in c's output buffer.
  double time(const Loaded& l, CallBuffers& c, double giveUpMs);
  // Times candidate `l` on `c` in alternation with the default of `s` and returns its median on
  // the scale of the default's first timing; the first call's output is left in c's output buffer.
  double timeBesideDefault(KernelState& s, const Loaded& l, CallBuffers& c, double giveUpMs);
  // Times candidate `c` (compiled to `object`) of kernel `s`: its median ms, or -1 with `why` when
  // it cannot run or its output differs from the default's. The default (`isDefault`) sets the
  // reference output.
  double measure(KernelState& s, const KernelSpec& c, const std::string& object, bool isDefault, std::string& why);
  double measureRemote(KernelState& s, const KernelSpec& c, const std::string& object, bool isDefault, std::string& why);
};

bool Tuner::setup(std::string& err) {
  std::vector<std::string> warnings;
  if (!readTuningDb(o_.dbPath, o_.version, db_, err, warnings)) return false;
  for (const auto& w : warnings) fprintf(stderr, "cnnc: warning: %s\n", w.c_str());
  for (const auto& r : db_.records)
    if (r.version == o_.version && r.target == o_.target && !r.inNet) measured_.insert({r.kernel, r.schedule.str()});
  if (!makeTempDir("cnnc-tune-", work_, err)) return false;
  AotOptions ao;
  ao.target = o_.target;
  ao.cacheDir = o_.cacheDir;
  std::vector<std::string> objects;
  AotStats st;
  if (!compileKernels({}, ao, objects, st, err)) return false;
  runtimeObject_ = objects.back();
  if (!toolchainFor(ao, tc_, err)) return false;
  if (!o_.remote.empty()) return true;  // candidates become programs for the target
  // One Halide runtime for every candidate, loaded globally so the candidates bind to it.
  std::string so = work_ + "/halide_runtime.so";
  std::string cmd = tc_.cxx + " -shared -o '" + so + "' '" + objects.back() + "' -ldl -lpthread";
  if (system(cmd.c_str()) != 0) { err = "cannot link the Halide runtime for timing: " + cmd; return false; }
  void* rt = dlopen(so.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!rt) { err = std::string("cannot load the Halide runtime: ") + dlerror(); return false; }
  // Candidates allocate what the executables' kernels do (common/kernel_alloc.h): blocks from
  // 64 KiB kept between calls, from 4 MiB on 2 MiB pages. With Halide's default (malloc) each block
  // past glibc's mmap threshold was mapped afresh and faulted in on every timed call: the Winograd
  // form of a 256-channel 14x14 conv at batch 8 (17 MiB of transforms and sums) read 90.7 ms alone
  // against 8.4 ms in the net, and the tuner ranked every candidate by those faults.
  using SetMalloc = halide_malloc_t (*)(halide_malloc_t);
  using SetFree = halide_free_t (*)(halide_free_t);
  auto setMalloc = (SetMalloc)dlsym(rt, "halide_set_custom_malloc");
  auto setFree = (SetFree)dlsym(rt, "halide_set_custom_free");
  if (!setMalloc || !setFree) { err = "the Halide runtime for timing has no halide_set_custom_malloc"; return false; }
  setMalloc(kernelMalloc);
  setFree(kernelFree);
  // A big block the runtime hands out must come back to this allocator's pool when freed.
  auto hMalloc = (halide_malloc_t)dlsym(rt, "halide_malloc");
  auto hFree = (halide_free_t)dlsym(rt, "halide_free");
  size_t pooled = kernelCachedBytes();
  void* probe = hMalloc ? hMalloc(nullptr, kBigBlock) : nullptr;
  if (probe && hFree) hFree(nullptr, probe);
  if (!probe || !hFree || kernelCachedBytes() <= pooled) {
    err = "the Halide runtime for timing did not take the executables' kernel allocator";
    return false;
  }
  if (o_.verbose)
    fprintf(stderr, "cnnc tune: candidates allocate as the executables' kernels do (a %zu MiB block came back to the kernel allocator's pool)\n",
            kBigBlock >> 20);
  return true;
}

bool Tuner::load(const std::string& object, const KernelSpec& k, Loaded& l, std::string& err) {
  std::string so = work_ + "/" + k.functionName() + ".so";
  std::string cmd = tc_.cxx + " -shared -o '" + so + "' '" + object + "' 2>/dev/null";
  if (system(cmd.c_str()) != 0) { err = "link failed"; return false; }
  l.handle = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  unlink(so.c_str());
  if (!l.handle) { err = dlerror(); return false; }
  l.fn = (KernelFn)dlsym(l.handle, (k.functionName() + "_argv").c_str());
  if (!l.fn) { err = "no entry point"; return false; }
  return true;
}

double Tuner::time(const Loaded& l, CallBuffers& c, double giveUpMs) {
  std::vector<void*> args = callArgs(c);
  auto once = [&] { return timeCall(l.fn, args); };
  double first = once();
  if (first < 0) return -1;
  if (first > giveUpMs) return first;
  std::vector<double> ts;
  double total = 0;
  while (ts.size() < 7 && (ts.size() < 3 || total < 500)) {
    double t = once();
    if (t < 0) return -1;
    ts.push_back(t);
    total += t;
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

double Tuner::timeBesideDefault(KernelState& s, const Loaded& l, CallBuffers& c, double giveUpMs) {
  std::vector<void*> ca = callArgs(c), da = callArgs(*s.ref);
  double first = timeCall(l.fn, ca);
  if (first < 0) return -1;
  if (first > giveUpMs) return first;
  // Pairs in alternating order, so that neither side always runs on the caches the other warmed.
  std::vector<double> cand, def;
  double total = 0;
  while (cand.size() < 7 && (cand.size() < 3 || total < 1000)) {
    bool defFirst = cand.size() % 2 == 0;
    double a = timeCall(defFirst ? s.def->fn : l.fn, defFirst ? da : ca);
    double b = timeCall(defFirst ? l.fn : s.def->fn, defFirst ? ca : da);
    if (a < 0 || b < 0) return -1;
    cand.push_back(defFirst ? b : a);
    def.push_back(defFirst ? a : b);
    total += a + b;
  }
  std::sort(cand.begin(), cand.end());
  std::sort(def.begin(), def.end());
  double dm = def[def.size() / 2];
  s.drift = dm / s.defaultMs;
  return cand[cand.size() / 2] * s.defaultMs / dm;
}

double Tuner::measure(KernelState& s, const KernelSpec& c, const std::string& object, bool isDefault, std::string& why) {
  if (!o_.remote.empty()) return measureRemote(s, c, object, isDefault, why);
  auto owned = std::make_unique<Loaded>();
  Loaded& l = *owned;
  if (!load(object, c, l, why)) return -1;
  if (isDefault) {
    s.inputs = std::make_unique<CallBuffers>(canonicalInputs(c, o_.batch, s.k->args));
    s.ref = std::make_unique<CallBuffers>(callBuffers(c, *s.inputs, o_.batch));
    // Timed twice, the first discarded: the first kernel of a tune also pays for starting the
    // thread pool. (ResNet-18's stem still reads 1.75 ms in isolation against 1.1 ms in the net,
    // for a reason not found yet; bench/tuned.py measures whole nets.)
    double ms = time(l, *s.ref, INFINITY);
    if (ms >= 0) ms = time(l, *s.ref, INFINITY);
    if (ms < 0) why = "it failed when run";
    s.def = std::move(owned);
    return ms;
  }
  // Timed beside the default: a candidate timed alone right after its batch compiled read up to 2x
  // its time in the net (TinyResNet's weight gradients at batch 32), while the default, timed alone
  // before, did not; the ratio of the two, measured in the same moments, is what both share.
  CallBuffers call = callBuffers(c, *s.inputs, o_.batch);
  double ms = timeBesideDefault(s, l, call, 5 * s.bestMs);
  if (ms < 0) { why = "it failed when run"; return -1; }
  double scale = 0, d = maxAbsDiff(s.ref->bufs.back(), call.bufs.back(), scale);
  if (!(d <= 1e-4 * std::max(1.0, scale))) {
    char b[96];
    snprintf(b, sizeof b, "its output differs from the default's by %.3g", d);
    why = b;
    return -1;
  }
  return ms;
}

double Tuner::measureRemote(KernelState& s, const KernelSpec& c, const std::string& object, bool isDefault, std::string& why) {
  if (s.harness.empty()) {  // the measurement program's main, once per kernel (its shapes built in)
    std::string src = work_ + "/harness_" + c.functionName() + ".cpp", obj = src + ".o";
    std::ofstream(src) << harnessSource(c, o_.batch, s.k->args);
    // The packing functions come from cnnc's own headers (common/), installed beside the C API.
    std::string own = installedOr(nullptr, "include/cnnc", CNNC_SOURCE_INCLUDE);
    std::string cmd = tc_.cxx + " -O2 -std=c++17 -isystem '" + CNNC_HALIDE_INCLUDE + "' -I'" + own + "' -c '" + src + "' -o '" + obj + "'";
    if (system(cmd.c_str()) != 0) { why = "the measurement program did not compile: " + cmd; return -1; }
    s.harness = obj;
  }
  std::string exe = work_ + "/" + c.functionName();
  std::string link = tc_.cxx + " -o '" + exe + "' '" + s.harness + "' '" + object + "' '" + runtimeObject_ + "' -Wl,--defsym=cnnc_candidate_argv=" +
                     c.functionName() + "_argv " + tc_.linkFlags + " -ldl 2>/dev/null";
  if (system(link.c_str()) != 0) { why = "link failed"; return -1; }
  int T = weightPacking(c) == plan_schema::ConstPack::Winograd ? -1 : c.packedWeights ? packedBlock(c.schedule) : 0;
  std::string cmd = o_.remote, args = std::to_string(T);
  size_t at = cmd.find("{exe}");
  if (at == std::string::npos) { why = "--remote has no {exe}"; return -1; }
  cmd.replace(at, 5, "'" + exe + "'");
  if ((at = cmd.find("{args}")) != std::string::npos) cmd.replace(at, 6, args);
  else cmd += " " + args;
  // A device that stops answering must not hang the tune: each measurement gets 5 minutes.
  std::string quoted;
  for (char ch : cmd) quoted += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  cmd = "timeout -k 5 300 sh -c '" + quoted + "'";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[512];
    while (fgets(buf, sizeof buf, p)) out += buf;
    int rc = pclose(p);
    unlink(exe.c_str());
    if (rc != 0) {
      int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
      why = (code == 124 ? "the remote command timed out after 300 s: " : "the remote command failed (exit " + std::to_string(code) + "): ") + o_.remote;
      return -1;
    }
  }
  size_t nl = out.find_last_not_of("\n");
  size_t start = out.rfind('\n', nl == std::string::npos ? 0 : nl);
  nlohmann::json j = nlohmann::json::parse(out.substr(start == std::string::npos ? 0 : start + 1), nullptr, false);
  if (j.is_discarded() || !j.contains("median_ms") || !j.contains("sum") || !j.contains("asum")) {
    why = "the remote command printed no measurement: " + out.substr(0, 200);
    return -1;
  }
  double ms = j["median_ms"].get<double>(), sum = j["sum"].get<double>(), asum = j["asum"].get<double>();
  if (isDefault) {
    s.refSum = sum, s.refAsum = asum;
    return ms;
  }
  double tol = 1e-4 * s.refAsum + 1e-6;
  if (!(std::fabs(asum - s.refAsum) <= tol && std::fabs(sum - s.refSum) <= tol)) {
    why = "its output sums differ from the default's";
    return -1;
  }
  return ms;
}

bool Tuner::run(const std::vector<TuneKernel>& kernels, std::string& err) {
  auto start = Clock::now();
  if (!setup(err)) return false;
  double spent = 0;
  if (o_.resume)
    for (const auto& r : db_.records)
      if (r.net == o_.net && r.target == o_.target && r.version == o_.version) spent += r.tuneSeconds;
  double budget = o_.budgetSeconds - spent;
  if (o_.resume) fprintf(stderr, "cnnc tune: resuming %s: %.0f s of the budget spent earlier, %.0f s left\n", o_.net.c_str(), spent, std::max(0.0, budget));
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };

  AotOptions ao;
  ao.target = o_.target;
  ao.cacheDir = o_.cacheDir;
  ao.jobs = o_.jobs;
  ao.keepGoing = true;
  int jobs = o_.jobs > 0 ? o_.jobs : (int)std::max<long>(1, sysconf(_SC_NPROCESSORS_ONLN));

  std::vector<KernelState> st;
  for (const auto& k : kernels)
    if (tunable(k.spec)) {
      st.emplace_back();
      st.back().k = &k;
    }
  if (st.empty()) { fprintf(stderr, "cnnc tune: no tunable kernels (convolutions, batch norms, pools, elementwise ops) in %s\n", o_.net.c_str()); return true; }

  // Appends one measured candidate; false stops the tune (the database cannot be written).
  TuningRecord last;  // the latest record appended
  auto record = [&](const KernelSpec& s, double ms, double cost) {
    TuningRecord& r = last;
    r = TuningRecord{};
    r.kernel = s.key(), r.target = o_.target, r.schedule = s.schedule, r.medianMs = ms, r.batch = o_.batch;
    r.version = o_.version, r.date = tuningDateNow(), r.net = o_.net, r.tuneSeconds = cost;
    measured_.insert({r.kernel, r.schedule.str()});
    return appendTuningRecord(o_.dbPath, r, err);
  };

  // 1. Defaults: compiled together, then timed one by one.
  fprintf(stderr, "cnnc tune: %s: %zu tunable kernels, budget %.0f s, batch %d, target %s\n", o_.net.c_str(), st.size(), budget, o_.batch,
          o_.target.c_str());
  // The kernel with schedule `sc`, its weights packed as the compiled net would pass them.
  auto withSchedule = [](const TuneKernel& k, const Schedule& sc) {
    KernelSpec c = k.spec;
    c.schedule = sc;
    c.packedWeights = k.inference && takesPackedWeights(c);
    return c;
  };
  std::vector<KernelSpec> defaults;
  for (auto& s : st) defaults.push_back(withSchedule(*s.k, s.k->spec.schedule));
  std::vector<std::string> objects;
  AotStats as;
  auto t0 = Clock::now();
  if (!compileKernels(defaults, ao, objects, as, err)) return false;
  double compileCost = std::chrono::duration<double>(Clock::now() - t0).count() / std::max<size_t>(1, st.size());
  for (size_t i = 0; i < st.size(); ++i) {
    const KernelSpec& k = defaults[i];
    if (objects[i].empty()) { err = "the default schedule of " + k.signature() + " did not compile"; return false; }
    auto t1 = Clock::now();
    std::string why;
    double ms = measure(st[i], k, objects[i], true, why);
    if (ms < 0) { err = "cannot time the default schedule of " + k.signature() + ": " + why; return false; }
    st[i].defaultMs = st[i].bestMs = ms;
    double cost = compileCost + std::chrono::duration<double>(Clock::now() - t1).count();
    if (!measured_.count({k.key(), k.schedule.str()})) {
      if (!record(k, ms, cost)) return false;
      addTuningRecord(db_, last, o_.version);  // the cost model below learns from the defaults too
    }
    // The fastest already on record for this kernel (an earlier tune, another net).
    auto it = db_.best.find({k.key(), o_.target});
    if (it != db_.best.end() && !it->second.inNet) st[i].bestMs = std::min(ms, it->second.medianMs);
  }

  // The cost model, from every record of this target and version (the defaults just timed too).
  std::vector<TuningRecord> onRecord;
  for (const auto& r : db_.records)
    if (r.version == o_.version && r.target == o_.target && !r.inNet) onRecord.push_back(r);
  CostModel model;
  if (model.fit(onRecord)) fprintf(stderr, "cnnc tune: cost model fitted to %d records; candidates measured in its order\n", model.samples());
  else if (o_.verbose) fprintf(stderr, "cnnc tune: %d records on file are too few for a cost model; candidates in a fixed shuffled order\n", model.samples());
  int searchedBefore = 0;  // kernels an earlier tune searched to their patience
  // Later kernels learn from the earlier ones of this tune too: the model is refitted before each.
  auto recordAndLearn = [&](const KernelSpec& k, double ms, double cost) {
    if (!record(k, ms, cost)) return false;
    onRecord.push_back(last);
    return true;
  };

  // 2. Heaviest first; each kernel's share of what is left. One kernel's search: up to `mine`
  // seconds, and, in an informed order, `patience` measured candidates without a 1% gain.
  enum class Stop { Exhausted, Patience, Budget };
  auto search = [&](KernelState* s, double mine, int patience0, bool firstPass, Stop& why) -> bool {
    const KernelSpec& base = s->k->spec;
    auto kStart = Clock::now();
    auto kElapsed = [&] { return std::chrono::duration<double>(Clock::now() - kStart).count(); };
    // 3. Order: seeds from similar kernels on record, then the model's ranking (tune_model.cpp).
    model.fit(onRecord);  // this tune's records so far, the previous kernel's and passes' included
    KernelShape shape = parseKernelKey(base.key());
    std::vector<Schedule> seeds = shape.ok ? similarKernelsBest(shape, base.key(), db_, o_.target, 3) : std::vector<Schedule>{};
    std::vector<Schedule> cands = scheduleCandidates(base, o_.adams2019);
    if (shape.ok) cands = orderCandidates(shape, cands, seeds, model);
    bool informed = shape.ok && (model.ready() || !seeds.empty());
    // Seeded, half the patience: a similar kernel's best, measured first, is most of what a search
    // finds (ResNet-18 at 192 after 224: 186 candidates with the full patience against 328 from scratch).
    const int patience = seeds.empty() || !firstPass ? patience0 : seededPatience(patience0);
    std::vector<KernelSpec> todo;
    for (Schedule sc : cands) {
      if (sc.autoBatch) sc.autoBatch = o_.batch;
      KernelSpec c = withSchedule(*s->k, sc);
      if (!measured_.count({c.key(), sc.str()})) todo.push_back(c);
    }
    size_t next = 0;
    int& sinceBetter = s->sinceBetter;
    if (firstPass) {
      sinceBetter = sinceBestOnRecord(db_, base.key(), o_.target, o_.version, o_.batch);
      if (informed && patience > 0 && sinceBetter >= patience) ++searchedBefore;
    }
    Schedule bestSchedule = base.schedule;
    why = Stop::Exhausted;
    while (next < todo.size()) {
      if (kElapsed() >= mine || elapsed() >= budget) { why = Stop::Budget; break; }
      if (informed && patience > 0 && sinceBetter >= patience) { why = Stop::Patience; break; }
      bool improved = false;
      std::vector<KernelSpec> batch(todo.begin() + next, todo.begin() + std::min(todo.size(), next + (size_t)jobs));
      next += batch.size();
      std::vector<std::string> objs;
      auto tc = Clock::now();
      if (!compileKernels(batch, ao, objs, as, err)) return false;
      double cc = std::chrono::duration<double>(Clock::now() - tc).count() / batch.size();
      for (size_t j = 0; j < batch.size(); ++j) {
        if (objs[j].empty()) continue;  // Halide rejected this schedule
        auto t1 = Clock::now();
        std::string whyNot;
        double ms = measure(*s, batch[j], objs[j], false, whyNot);
        if (ms < 0) {
          if (whyNot.find("differ") != std::string::npos)
            fprintf(stderr, "cnnc tune: warning: rejected %s [%s]: %s\n", shortName(batch[j]).c_str(), batch[j].schedule.str().c_str(), whyNot.c_str());
          continue;
        }
        s->measured++;
        if (ms < 0.99 * s->bestMs) sinceBetter = 0, bestSchedule = batch[j].schedule, improved = true;
        else ++sinceBetter;
        s->bestMs = std::min(s->bestMs, ms);
        if (!recordAndLearn(batch[j], ms, cc + std::chrono::duration<double>(Clock::now() - t1).count())) return false;
      }
      // Evolutionary refinement: the best's one-field neighbours move to the front, in model order.
      if (improved)
        std::stable_partition(todo.begin() + (long)next, todo.end(), [&](const KernelSpec& c) { return neighbours(c.schedule, bestSchedule); });
    }
    if (o_.verbose)
      fprintf(stderr,
              "cnnc tune: %-70s x%d  default %.3f ms  best %.3f ms  (%.2fx, %d new candidates, %zu seeds, %s order; the default's last "
              "timing %.2fx its first)\n",
              shortName(base).c_str(), s->k->calls, s->defaultMs, s->bestMs, s->defaultMs / s->bestMs, s->measured, seeds.size(),
              shape.ok && model.ready() ? "model" : "shuffled", s->drift);
    return true;
  };
  // Passes: the first gives every kernel its share and its patience. A budget is a budget, so while
  // time is left the kernels that patience stopped go on, heaviest first, each pass with twice the
  // patience (ResNet-50 at batch 8 from an empty database: the first pass took 137 s of 20 minutes,
  // its model fitted to two kernels' records, and stopped 22 of 24 kernels after 8 candidates).
  std::vector<KernelState*> order;
  for (auto& s : st) order.push_back(&s);
  std::stable_sort(order.begin(), order.end(), [](KernelState* a, KernelState* b) { return a->weight() > b->weight(); });
  int patience = o_.patience, passes = 0, lastStops = 0, lastPatience = 0;
  for (int pass = 0; !order.empty(); ++pass, patience *= 2) {
    if (pass > 0) {
      if (elapsed() >= budget - 1) break;
      fprintf(stderr, "cnnc tune: %.0f s of the budget left: pass %d over the %zu kernels that --patience stopped, now with patience %d\n",
              budget - elapsed(), pass + 1, order.size(), patience);
    }
    if (o_.progress) o_.progress(0, (int)order.size(), 1.0, std::max(0.0, budget - elapsed()));
    double weightLeft = 0;
    for (auto* s : order) weightLeft += s->weight();
    std::vector<KernelState*> stopped;
    int i = 0;
    for (auto* s : order) {
      double weight = s->weight();
      double left = budget - elapsed();
      double mine = left > 0 ? left * weight / std::max(weightLeft, 1e-9) : 0;
      weightLeft -= weight;
      Stop why;
      if (!search(s, mine, patience, pass == 0, why)) return false;
      if (why == Stop::Patience) stopped.push_back(s);
      ++i;
      if (o_.progress) o_.progress(i, (int)order.size(), s->defaultMs / s->bestMs, std::max(0.0, budget - elapsed()));
    }
    passes = pass + 1, lastStops = (int)stopped.size(), lastPatience = patience;
    if (patience <= 0) break;  // --patience 0: each kernel already measured until its share ran out
    order = stopped;
  }

  // Summary: the net's time in these kernels, default against best.
  double def = 0, best = 0;
  int newRecords = 0;
  for (auto& s : st) { def += s.weight(); best += s.bestMs * s.k->calls; newRecords += s.measured; }
  if (searchedBefore)
    fprintf(stderr, "cnnc tune: %d kernels were searched to their patience by an earlier tune (this net or another with the same kernels)%s\n",
            searchedBefore, passes > 1 ? "" : ": not searched again");
  if (lastStops && passes == 1)
    fprintf(stderr, "cnnc tune: %d kernels stopped after %d candidates without a better one (--patience; %d for a kernel with seeds)\n", lastStops,
            lastPatience, seededPatience(lastPatience));
  else if (lastStops)
    fprintf(stderr, "cnnc tune: after %d passes, %d kernels stopped after %d candidates without a better one (--patience %d, doubled each pass)\n",
            passes, lastStops, lastPatience, o_.patience);
  // Timed in isolation: a kernel inside the net can run faster or slower (bench/tuned.py measures the net).
  fprintf(stderr,
          "cnnc tune: %s: %d candidates measured in %.0f s; per run of the net, the tunable kernels take %.2f ms with the defaults and "
          "%.2f ms with the best on record (%.2fx, timed in isolation); database %s\n",
          o_.net.c_str(), newRecords, elapsed(), def, best, def / std::max(best, 1e-9), o_.dbPath.c_str());
  return true;
}

}  // namespace

bool tuneKernels(const std::vector<TuneKernel>& kernels, const TuneOptions& o, std::string& err) {
  Tuner t(o);
  return t.run(kernels, err);
}

}  // namespace cnnc::codegen
