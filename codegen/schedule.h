// schedule.h: schedules as data. A kernel's loop structure is chosen from these few numbers, so a
// tuner only has to swap parameters; the defaults come from defaultSchedule().
#pragma once
#include <string>

namespace cnnc::codegen {

struct KernelSpec;

struct Schedule {
  int vec = 8;          // vector width over the innermost output dimension (x, or features)
  int tileC = 1;        // output channels per register tile (conv), unrolled
  int tileX = 1;        // vectors along x per register tile (conv)
  int tileY = 1;        // rows per register tile (conv)
  // Conv with small rows: vectors run along output channels instead of x (chanVec vectors of `vec`
  // channels per tile, tileX x tileY pixels); 0 keeps vectors along x. ConvBackWeight (set by the
  // tuner; 0 keeps conv.cpp's own tile): chanVec vectors of `vec` output channels x tileY tap rows x
  // tileC input channels.
  int chanVec = 0;
  // Floats per vector register of the target: 16 with AVX-512 (32 registers), 8 with AVX2 (16
  // registers), 4 on ARM NEON (32 registers) and on x86 without AVX2. Register tiles are sized so
  // that their accumulators leave room in the register file of that width.
  int lanes = 16;
  // 3x3 stride-1 conv as Winograd F(m x m, 3x3) with m = winograd (2; conv_winograd.cpp); 0 keeps
  // the direct form. Then vec runs along tiles, tileX is vectors of tiles per register tile, tileC
  // the output channels, and tileY the tile rows of one parallel task. With chanVec > 0 (small
  // planes) vectors run along output channels instead: chanVec vectors x tileX x tileY tiles, order
  // 1 walks the images inside each block of channels (0: blocks inside each image), and task is the
  // images per group (0: 8).
  int winograd = 0;
  // Conv: no hand schedule; Halide's Adams2019 autoscheduler schedules the kernel at compile time,
  // for batches of autoBatch images (its estimate). 0: the hand schedule above.
  int autoBatch = 0;
  // Depthwise stride-1 conv (or its input gradient) whose output rows are as long as the input's:
  // each plane walked as one flat row of H x W pixels (conv_depthwise.cpp). 0: rows. 1: the output
  // stored row by row, or as whole vectors over the fused plane when its rows are narrower than 8;
  // 2: always row by row; 3: always fused (set by the tuner, which measures both). 4: a depthwise
  // conv of any stride, or its stride-1 input gradient, read in place, vectors of vec along the row
  // (the direct form).
  // Memory-bound kinds (scheduleSpatial, ops/op_helpers.h): 1 vectorises the plane as one row
  // (set by the tuner).
  int flat = 0;
  // Flat depthwise forms: output channels per parallel task; 0: enough channels for 16K output floats.
  // Memory-bound kinds: channels of one image per parallel task; 0: the default's tasks.
  int task = 0;
  // Strided input gradient (split by phase, conv.cpp): 1: vec, tileX, tileY, tileC and chanVec
  // schedule every phase, as a conv of the phase grid's shape (set by the tuner); 0: each phase
  // derives its own default.
  int phase = 0;
  // Conv register tiles along x (chanVec 0, not Winograd): where the channel-tile loop sits among
  // the pixel-tile loops (conv.cpp's scheduleConvTile). 0: outermost, an image walked once per
  // channel tile; 1: inside each strip of tileY rows (the strip's inputs reused from L2); 2:
  // innermost (a pixel tile's inputs reused from L1 by every channel tile). With 1 and 2 the strips
  // are the parallel loop instead of the channel tiles. Set by the tuner.
  int order = 0;
  // A GPU target (gpu_schedule.cpp): lowering skips CPU-only transforms (lane sums), whose
  // rfactor Funcs would fix the GPU's reduction order and parallelism.
  bool gpu = false;
  std::string str() const;  // "vec=8 tileC=1", plus "tile=XxY" when not 1x1, "cvec=N", "lanes=N", "wino=N", "auto=N", "flat" (or "flat=N"), "task=N", "phase", "order=N", "gpu" when set
};

// The default schedule of a kernel: vectorised over x (or features) and parallel over batch and
// channels, with widths chosen so that no vector is wider than the dimension it covers.
// `lanes` is Schedule::lanes of the target (lanesOf).
Schedule defaultSchedule(const KernelSpec& k, int lanes = 16);

// Floats per vector register of a resolved Halide target string: 16 for x86 with AVX-512, 8 for
// x86 with AVX2, else 4 (arm, or x86 without AVX2).
int lanesOf(const std::string& target);

}  // namespace cnnc::codegen
