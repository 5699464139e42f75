// machine_peak.cpp: the FP32 FMA peak and the memory bandwidth, measured as bench/fma_peak.c and
// bench/mem_bandwidth.c measure them, but in-process and on the instruction set of the build.
//
// 1. FMA: each thread runs independent FMA chains on register-resident vectors: 24 with AVX-512's
//    32 registers, 12 with AVX2's or SSE's 16 (24 there spill to memory and measured 156 instead
//    of ~200 GFLOP/s with AVX2 on the Zen 5); 12 still cover the 4-cycle latency of two FMA pipes. The best
//    of 4 runs, so that a descheduled thread does not lower the peak.
// 2. Memory: a = b + s * c over three 64 MiB arrays (larger than any L3 this runs on), each
//    thread on the slice it first touched, so pages sit near it; the best of 3 passes; 12 bytes
//    per element, as STREAM counts (the write-allocate read of a is not counted).
#include "machine_peak.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace cnnc::rt {

namespace {

constexpr int kChains = 24, kChains16 = 12;  // for 32 and for 16 vector registers
constexpr long kFmaIters = 1 << 21;

// Every chain's result is stored here; volatile, or the compiler drops the loops as dead code.
volatile float g_sink[kChains];

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs fn on `threads` threads at once; returns the wall time of the slowest.
template <class F>
double timeOnThreads(int threads, F fn) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      fn(t);
    });
  while (ready.load() < threads) std::this_thread::yield();
  auto t0 = std::chrono::steady_clock::now();
  go.store(true);
  for (auto& t : ts) t.join();
  return secondsSince(t0);
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) void fmaChainsAvx512() {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps((float)i);
  __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < kFmaIters; ++it)
#pragma GCC unroll 24
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  alignas(64) float v[16];
  for (int i = 0; i < kChains; ++i) { _mm512_store_ps(v, acc[i]); g_sink[i] = v[0]; }
}

__attribute__((target("avx2,fma"))) void fmaChainsAvx2() {
  __m256 acc[kChains16];
  for (int i = 0; i < kChains16; ++i) acc[i] = _mm256_set1_ps((float)i);
  __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < kFmaIters; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < kChains16; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  alignas(32) float v[8];
  for (int i = 0; i < kChains16; ++i) { _mm256_store_ps(v, acc[i]); g_sink[i] = v[0]; }
}

// Without FMA a multiply and an add (2 FLOPs per lane, as an FMA counts).
void fmaChainsSse() {
  __m128 acc[kChains16];
  for (int i = 0; i < kChains16; ++i) acc[i] = _mm_set1_ps((float)i);
  __m128 a = _mm_set1_ps(0.999999f), b = _mm_set1_ps(1e-7f);
  for (long it = 0; it < kFmaIters; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < kChains16; ++i) acc[i] = _mm_add_ps(_mm_mul_ps(acc[i], a), b);
  for (int i = 0; i < kChains16; ++i) g_sink[i] = _mm_cvtss_f32(acc[i]);
}
#elif defined(__aarch64__)
void fmaChainsNeon() {
  float32x4_t acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = vdupq_n_f32((float)i);
  float32x4_t a = vdupq_n_f32(0.999999f), b = vdupq_n_f32(1e-7f);
  for (long it = 0; it < kFmaIters; ++it)
#pragma GCC unroll 24
    for (int i = 0; i < kChains; ++i) acc[i] = vfmaq_f32(b, acc[i], a);
  for (int i = 0; i < kChains; ++i) g_sink[i] = vgetq_lane_f32(acc[i], 0);
}
#endif

double measureFma(int threads, const std::string& isa) {
  int lanes = isa == "avx512" ? 16 : isa == "avx2" ? 8 : 4;
  void (*chains)() = nullptr;
#if defined(__x86_64__)
  chains = isa == "avx512" ? fmaChainsAvx512 : isa == "avx2" ? fmaChainsAvx2 : fmaChainsSse;
#elif defined(__aarch64__)
  chains = fmaChainsNeon;
#endif
  if (!chains) return 0;
  double best = 1e30;
  for (int rep = 0; rep < 4; ++rep) best = std::min(best, timeOnThreads(threads, [&](int) { chains(); }));
  int chainCount = isa == "avx512" || isa == "neon" ? kChains : kChains16;
  return threads * (double)kFmaIters * chainCount * lanes * 2 / best / 1e9;
}

double measureTriad(int threads) {
  const size_t n = 16u << 20;  // floats per array: 64 MiB
  std::unique_ptr<float[]> a(new float[n]), b(new float[n]), c(new float[n]);
  auto slice = [&](int t, size_t& lo, size_t& hi) {
    lo = n / threads * t;
    hi = t == threads - 1 ? n : n / threads * (t + 1);
  };
  timeOnThreads(threads, [&](int t) {
    size_t lo, hi;
    slice(t, lo, hi);
    for (size_t i = lo; i < hi; ++i) a[i] = 0, b[i] = 1, c[i] = 2;
  });
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep)
    best = std::min(best, timeOnThreads(threads, [&](int t) {
                      size_t lo, hi;
                      slice(t, lo, hi);
                      float* __restrict pa = a.get();
                      const float* __restrict pb = b.get();
                      const float* __restrict pc = c.get();
                      for (size_t i = lo; i < hi; ++i) pa[i] = pb[i] + 3.0f * pc[i];
                    }));
  g_sink[0] = a[n / 2];
  return 12.0 * n / best / 1e9;
}

}  // namespace

MachinePeak measureMachinePeak(int threads, const std::string& target) {
  MachinePeak m;
  threads = std::max(1, threads);
#if defined(__x86_64__)
  __builtin_cpu_init();
  bool t512 = target.find("avx512") != std::string::npos, t2 = target.find("avx2") != std::string::npos && target.find("fma") != std::string::npos;
  if (t512 && __builtin_cpu_supports("avx512f")) m.isa = "avx512";
  else if ((t512 || t2) && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) m.isa = "avx2";
  else m.isa = "sse";
#elif defined(__aarch64__)
  m.isa = "neon";
#endif
  m.gflops = measureFma(threads, m.isa);
  m.gbs = measureTriad(threads);
  return m;
}

}  // namespace cnnc::rt
