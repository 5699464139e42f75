/* fma_peak.c: the FP32 FMA peak of this machine, in GFLOP/s over N threads: each thread runs 24
 * independent AVX-512 FMA chains (enough to cover the FMA latency on every core this project meets)
 * on register-resident data. The standalone figure the docs name next to their timings; `X bench
 * --profile` measures the same in-process for the build's instruction set (runtime/machine_peak.cpp).
 * Usage: fma_peak THREADS */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ITERS 20000000L
#define CHAINS 24

float sink[64]; /* global: the result must not be dead code */

static void* run(void* arg) {
  (void)arg;
  __m512 acc[CHAINS];
  for (int i = 0; i < CHAINS; ++i) acc[i] = _mm512_set1_ps((float)i);
  __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < ITERS; ++it)
#pragma GCC unroll 24
    for (int i = 0; i < CHAINS; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < CHAINS; ++i) s = _mm512_add_ps(s, acc[i]);
  _mm512_storeu_ps(sink, s);
  return NULL;
}

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  if (threads < 1 || threads > 64) { fprintf(stderr, "usage: fma_peak THREADS (1-64)\n"); return 2; }
  pthread_t t[64];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < threads; ++i) pthread_create(&t[i], NULL, run, NULL);
  for (int i = 0; i < threads; ++i) pthread_join(t[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
  printf("%.1f\n", threads * (double)ITERS * CHAINS * 16 * 2 / s / 1e9);
  if (sink[0] == 12345.0f) puts("");  /* keeps the stores alive */
  return 0;
}
