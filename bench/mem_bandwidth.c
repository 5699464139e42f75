/* mem_bandwidth.c: this machine's memory bandwidth in GB/s over N threads, as STREAM measures it:
 * copy (a = b) and triad (a = b + s * c) over arrays far larger than the caches (3 x 256 MiB), each
 * thread on its own contiguous slice, best of 5 passes. Bytes counted as STREAM counts them (copy:
 * 8 per element, triad: 12; write-allocate traffic not counted). bench/depthwise.py compiles and runs
 * it to state what share of it the depthwise convs reach.
 * Usage: mem_bandwidth THREADS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define N (64L * 1024 * 1024) /* floats per array: 256 MiB */

static float *a, *b, *c;
static int threads;
static int mode; /* 0 copy, 1 triad */

static void* run(void* arg) {
  long t = (long)arg, lo = N / threads * t, hi = t == threads - 1 ? N : N / threads * (t + 1);
  if (mode == 0)
    for (long i = lo; i < hi; ++i) a[i] = b[i];
  else
    for (long i = lo; i < hi; ++i) a[i] = b[i] + 3.0f * c[i];
  return NULL;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double best(int m) {
  mode = m;
  double bestS = 1e30;
  for (int pass = 0; pass < 5; ++pass) {
    pthread_t th[256];
    double t0 = now();
    for (long i = 0; i < threads; ++i) pthread_create(&th[i], NULL, run, (void*)i);
    for (int i = 0; i < threads; ++i) pthread_join(th[i], NULL);
    double s = now() - t0;
    if (s < bestS) bestS = s;
  }
  return bestS;
}

int main(int argc, char** argv) {
  threads = argc > 1 ? atoi(argv[1]) : 1;
  if (threads < 1 || threads > 256) {
    fprintf(stderr, "usage: mem_bandwidth THREADS (1 to 256)\n");
    return 2;
  }
  a = malloc(N * sizeof(float));
  b = malloc(N * sizeof(float));
  c = malloc(N * sizeof(float));
  if (!a || !b || !c) {
    fprintf(stderr, "mem_bandwidth: out of memory (needs 768 MiB)\n");
    return 1;
  }
  for (long i = 0; i < N; ++i) a[i] = 0, b[i] = 1, c[i] = 2; /* touch every page first */
  double copy = 8.0 * N / best(0) / 1e9, triad = 12.0 * N / best(1) / 1e9;
  printf("copy %.1f GB/s, triad %.1f GB/s (%d threads)\n", copy, triad, threads);
  if (a[N / 2] != 7.0f) { /* b + 3c: also keeps the stores live */
    fprintf(stderr, "mem_bandwidth: wrong triad result %g\n", a[N / 2]);
    return 1;
  }
  return 0;
}
