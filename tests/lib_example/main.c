/* main.c: a C program embedding a network built with `cnnc NET.cnn --emit=lib -o DIR`.
 *
 *   cc -I DIR main.c -L DIR -l<net> -lstdc++ -lz -lpthread -ldl -lm -DNET_HEADER='"<net>.h"' -o example
 *   ./example WEIGHTS.safetensors BATCH > output.txt
 *
 * It feeds BATCH images whose pixels are sin(0.01 i) and prints the outputs, one value a line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include NET_HEADER

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s WEIGHTS.safetensors BATCH\n", argv[0]);
    return 2;
  }
  int64_t batch = atoll(argv[2]);
  cnnc_net* net = cnnc_create(0);
  if (!net) {
    fprintf(stderr, "cnnc_create failed\n");
    return 1;
  }
  if (cnnc_load_weights(net, argv[1]) != 0) {
    fprintf(stderr, "error: %s\n", cnnc_error(net));
    cnnc_free(net);
    return 1;
  }
  int64_t in = cnnc_input_size(net), out = cnnc_output_size(net);
  float* x = malloc(sizeof(float) * in * batch);
  float* y = malloc(sizeof(float) * out * batch);
  for (int64_t i = 0; i < in * batch; ++i) x[i] = (float)sin(0.01 * (double)i);
  if (cnnc_forward(net, x, batch, y) != 0) {
    fprintf(stderr, "error: %s\n", cnnc_error(net));
    return 1;
  }
  fprintf(stderr, "%s: %lld x %lld -> %lld outputs\n", cnnc_name(net), (long long)batch, (long long)in, (long long)out);
  for (int64_t i = 0; i < out * batch; ++i) printf("%.9g\n", y[i]);
  free(x);
  free(y);
  cnnc_free(net);
  return 0;
}
