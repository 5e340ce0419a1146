/*===- run_layer_npy.c - run one compiled layer on .npy files -------------===*\
|*                                                                            *|
|* Part of the moe-mlir project, under the Apache License v2.0 with LLVM      *|
|* Exceptions. See LICENSE for license information.                           *|
|* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception                    *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* Test driver of moe-compiled libraries: loads the model, runs LAYER on the  *|
|* hidden states of X.npy ([T, d], the layer's dtype) and writes Y.npy, so    *|
|* that moe-reference can compare the result with its f64 model. With        *|
|* THREADS, also runs the layer from that many threads at once and checks    *|
|* that each gives bitwise the first result. With `device` (CUDA libraries), *|
|* also runs the layer on device buffers (moe_model_run_layer_async) on     *|
|* THREADS streams at once and checks that each output is bitwise the first *|
|* result and that the statistics are THREADS times those of a host call.   *|
|* With RUN_LAYER_KNOBS="NAME=VALUE ..." in the environment, then sets each *|
|* knob of the layer in turn and checks both entry points again against    *|
|* the host's new output, which must differ from the one before (the       *|
|* device entry point reads tau and the capacity factor in GPU memory).    *|
|* With `graph` instead of `device`, also captures one device call in a     *|
|* CUDA graph before the knobs change, and replays it after each change:    *|
|* bitwise the host's output, and every replay counted.                    *|
|*                                                                            *|
|*   run_layer_npy LAYER CHECKPOINT_DIR X.npy Y.npy [THREADS [device|graph]]  *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#include "model.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of an element of the layer's rows. */
static size_t element_size(moe_dtype dtype) {
  return dtype == MOE_DTYPE_F32 ? 4 : 2;
}

static const char *descr(moe_dtype dtype) {
  return dtype == MOE_DTYPE_F32 ? "<f4" : dtype == MOE_DTYPE_F16 ? "<f2" : "<V2";
}

static int fail(const char *message, const char *detail) {
  fprintf(stderr, "run_layer_npy: %s%s\n", message, detail ? detail : "");
  return 1;
}

/* Reads a C-order 2-D .npy of the expected descr; returns its rows. */
static void *read_npy(const char *path, const char *want, int64_t cols,
                      size_t element, int64_t *rows) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  unsigned char preamble[10];
  if (fread(preamble, 1, 10, f) != 10 || memcmp(preamble, "\x93NUMPY", 6)) {
    fclose(f);
    return NULL;
  }
  size_t length = preamble[8] | (size_t)preamble[9] << 8;
  char *header = calloc(length + 1, 1);
  if (fread(header, 1, length, f) != length || !strstr(header, want)) {
    free(header);
    fclose(f);
    return NULL;
  }
  long long r = -1, c = -1;
  char *shape = strstr(header, "'shape': (");
  if (shape)
    sscanf(shape, "'shape': (%lld, %lld)", &r, &c);
  free(header);
  if (r < 0 || c != cols) {
    fclose(f);
    return NULL;
  }
  size_t bytes = (size_t)r * (size_t)cols * element;
  void *data = malloc(bytes + 1);
  if (fread(data, 1, bytes, f) != bytes) {
    free(data);
    fclose(f);
    return NULL;
  }
  fclose(f);
  *rows = r;
  return data;
}

static int write_npy(const char *path, const char *d, int64_t rows,
                     int64_t cols, const void *data, size_t element) {
  char header[128];
  int n = snprintf(header, sizeof header,
                   "{'descr': '%s', 'fortran_order': False, 'shape': (%lld, "
                   "%lld), }",
                   d, (long long)rows, (long long)cols);
  int padded = ((10 + n + 1 + 63) / 64) * 64 - 10;
  FILE *f = fopen(path, "wb");
  if (!f)
    return 1;
  unsigned char preamble[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                (unsigned char)(padded & 0xff),
                                (unsigned char)(padded >> 8)};
  fwrite(preamble, 1, 10, f);
  fwrite(header, 1, (size_t)n, f);
  for (int i = n; i < padded - 1; ++i)
    fputc(' ', f);
  fputc('\n', f);
  fwrite(data, element, (size_t)(rows * cols), f);
  return fclose(f) != 0;
}

struct call {
  moe_model *model;
  int64_t layer, tokens;
  const void *x;
  void *y;
  int status;
};

static void *run_call(void *arg) {
  struct call *c = arg;
  c->status = moe_model_run_layer(c->model, c->layer, c->x, c->tokens, c->y);
  return NULL;
}

/* Runs the layer from `threads` threads at once; 0 when every output is
   bitwise `want`. */
static int run_concurrently(moe_model *model, int64_t layer, const void *x,
                            int64_t tokens, const void *want, size_t bytes,
                            int threads) {
  struct call calls[16];
  pthread_t ids[16];
  if (threads < 1 || threads > 16)
    return fail("THREADS must be in [1, 16]", 0);
  for (int i = 0; i < threads; ++i) {
    calls[i] = (struct call){model, layer, tokens, x, malloc(bytes + 1), 0};
    pthread_create(&ids[i], NULL, run_call, &calls[i]);
  }
  int bad = 0;
  for (int i = 0; i < threads; ++i) {
    pthread_join(ids[i], NULL);
    bad |= calls[i].status != MOE_OK || memcmp(calls[i].y, want, bytes) != 0;
    free(calls[i].y);
  }
  if (bad)
    return fail("concurrent calls gave another result", 0);
  printf("%d threads at once: bitwise equal\n", threads);
  return 0;
}

/* One layer's statistics; `pairs` its co-activation counts when the
   library records them (`num_pairs` is 0 otherwise). */
#define MAX_PAIRS (128 * 127 / 2)
struct stats {
  int64_t assignments[1024], dropped[1024], tokens, calls;
  int64_t pairs[MAX_PAIRS], num_pairs;
};

/* The co-activation counts of `layer` from a snapshot, when it has them. */
static int read_pairs(moe_model *model, int64_t layer, struct stats *s) {
  moe_layer_info info;
  moe_stats *snapshot;
  if (moe_model_layer_info(model, layer, &info) != MOE_OK ||
      moe_model_stats_snapshot(model, &snapshot) != MOE_OK)
    return -1;
  int status = 0;
  for (int64_t i = 0; i < moe_stats_num_layers(snapshot); ++i) {
    moe_layer_stats l;
    if (moe_stats_layer(snapshot, i, &l) != MOE_OK) {
      status = -1;
      break;
    }
    if (strcmp(l.function, info.name) != 0 || !l.coactivation)
      continue;
    int64_t n = l.num_experts * (l.num_experts - 1) / 2;
    if (n > MAX_PAIRS) {
      fail("co-activation counts of more than 128 experts: raise MAX_PAIRS",
           0);
      status = -1;
      break;
    }
    memcpy(s->pairs, l.coactivation, (size_t)n * sizeof(int64_t));
    s->num_pairs = n;
  }
  moe_stats_free(snapshot);
  return status;
}

static int read_stats(moe_model *model, int64_t layer, struct stats *s) {
  memset(s, 0, sizeof *s);
  moe_status status = moe_model_layer_stats(model, layer, s->assignments,
                                            s->dropped, &s->tokens, &s->calls);
  if (status == MOE_OK && read_pairs(model, layer, s) != 0)
    return -1;
  return status == MOE_OK ? 0 : status == MOE_ERROR_NO_STATISTICS ? 1 : -1;
}

/* Whether `got` is `times` times `one`. */
static bool same_stats(const struct stats *got, const struct stats *one,
                       int64_t times, int64_t experts) {
  bool same = got->tokens == times * one->tokens &&
              got->calls == times * one->calls &&
              got->num_pairs == one->num_pairs;
  for (int64_t e = 0; e < experts; ++e)
    same = same && got->assignments[e] == times * one->assignments[e] &&
           got->dropped[e] == times * one->dropped[e];
  for (int64_t p = 0; same && p < one->num_pairs; ++p)
    same = got->pairs[p] == times * one->pairs[p];
  return same;
}

/* Prints one call's assignments and dropped assignments, and its
   co-activations when the library counts them. */
static void print_call(const struct stats *one, int64_t experts) {
  int64_t assigned = 0, dropped = 0, pairs = 0;
  for (int64_t e = 0; e < experts; ++e) {
    assigned += one->assignments[e];
    dropped += one->dropped[e];
  }
  for (int64_t p = 0; p < one->num_pairs; ++p)
    pairs += one->pairs[p];
  printf("(a call: %lld assignments, %lld dropped", (long long)assigned,
         (long long)dropped);
  if (one->num_pairs)
    printf(", %lld co-activations", (long long)pairs);
  printf(")\n");
}

/* One host call (moe_model_run_layer) into `y`, and its statistics alone
   in `one`: 0, 1 when the library counts none, -1 on an error. */
static int host_call(moe_model *model, int64_t layer, const void *x,
                     int64_t tokens, void *y, struct stats *one) {
  moe_model_reset_stats(model);
  if (moe_model_run_layer(model, layer, x, tokens, y) != MOE_OK)
    return -1;
  int counted = read_stats(model, layer, one);
  moe_model_reset_stats(model);
  return counted;
}

/* After calls that each should have counted `one` (`counted` as host_call
   returned it), `times` of them: whether they did; prints the line of
   `what` either way. The callers reset the statistics before the calls. */
static int check_counts(moe_model *model, int64_t layer,
                        const moe_layer_info *info, const struct stats *one,
                        int counted, int64_t times, const char *what) {
  if (counted != 0) {
    printf("%s: bitwise equal\n", what);
    return 0;
  }
  struct stats got;
  if (read_stats(model, layer, &got) != 0)
    return fail("stats: ", moe_last_error());
  if (!same_stats(&got, one, times, info->num_experts))
    return fail(what, ": other statistics than the host's");
  printf("%s: bitwise equal, the same statistics ", what);
  print_call(one, info->num_experts);
  return 0;
}

/* The mgpu* functions of the GPU runtime the library links
   (libmoe_cuda_runtime, or libmoe_cuda_emulator for cuda-emu): device
   buffers and streams standing in for an application's own. */
struct gpu {
  void *(*alloc)(uint64_t, void *, bool);
  void (*release)(void *, void *);
  void (*copy)(void *, void *, size_t, void *);
  void *(*create)(void);
  void (*sync)(void *);
  void (*destroy)(void *);
};

static int load_gpu(struct gpu *g) {
  g->alloc = dlsym(RTLD_DEFAULT, "mgpuMemAlloc");
  g->release = dlsym(RTLD_DEFAULT, "mgpuMemFree");
  g->copy = dlsym(RTLD_DEFAULT, "mgpuMemcpy");
  g->create = dlsym(RTLD_DEFAULT, "mgpuStreamCreate");
  g->sync = dlsym(RTLD_DEFAULT, "mgpuStreamSynchronize");
  g->destroy = dlsym(RTLD_DEFAULT, "mgpuStreamDestroy");
  if (!g->alloc || !g->release || !g->copy || !g->create || !g->sync ||
      !g->destroy)
    return fail("device: the library links no GPU runtime", 0);
  return 0;
}

/* The layer on device buffers, against `want` and `one` (host_call's
   output and statistics): `streams` calls at once, each on a stream of its
   own into its own output, adding to the same statistics. */
static int check_device(moe_model *model, int64_t layer,
                        const moe_layer_info *info, const struct gpu *gpu,
                        const void *x, int64_t tokens, const void *want,
                        const struct stats *one, int counted, int streams) {
  if (streams < 1 || streams > 16)
    return fail("THREADS must be in [1, 16]", 0);
  size_t xbytes =
      (size_t)(tokens * info->hidden_size) * element_size(info->dtype);
  size_t ybytes =
      (size_t)(tokens * info->output_size) * element_size(info->dtype);
  void *y = malloc(ybytes + 1);
  moe_model_reset_stats(model);
  void *stream[16], *dx[16], *dy[16];
  for (int i = 0; i < streams; ++i) {
    stream[i] = gpu->create();
    dx[i] = tokens ? gpu->alloc(xbytes, stream[i], false) : NULL;
    dy[i] = tokens ? gpu->alloc(ybytes, stream[i], false) : NULL;
    if (tokens)
      gpu->copy(dx[i], (void *)x, xbytes, stream[i]);
  }
  for (int i = 0; i < streams; ++i)
    if (moe_model_run_layer_async(model, layer, dx[i], tokens, dy[i],
                                  stream[i]) != MOE_OK)
      return fail("run on the device: ", moe_last_error());
  for (int i = 0; i < streams; ++i) {
    if (tokens)
      gpu->copy(y, dy[i], ybytes, stream[i]);
    gpu->sync(stream[i]);
    if (memcmp(y, want, ybytes) != 0)
      return fail("device buffers gave another result", 0);
    if (tokens) {
      gpu->release(dx[i], stream[i]);
      gpu->release(dy[i], stream[i]);
    }
    gpu->sync(stream[i]);
    gpu->destroy(stream[i]);
  }
  free(y);
  char what[64];
  snprintf(what, sizeof what, "device buffers, %d streams", streams);
  return check_counts(model, layer, info, one, counted, streams, what);
}

/* One device call of the layer captured in a CUDA graph (driver API: the
   emulator's, which the cuda-emu library links, or libcuda's). */
struct graph {
  int (*launch)(void *, void *);
  void *stream, *dx, *dy, *exec;
};

static int capture(moe_model *model, int64_t layer, const moe_layer_info *info,
                   const struct gpu *gpu, const void *x, int64_t tokens,
                   struct graph *g) {
  void *cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
  void *lib = cuda ? cuda : RTLD_DEFAULT;
  int (*begin)(void *, int) = dlsym(lib, "cuStreamBeginCapture_v2");
  int (*end)(void *, void **) = dlsym(lib, "cuStreamEndCapture");
  int (*instantiate)(void **, void *, unsigned long long) =
      dlsym(lib, "cuGraphInstantiateWithFlags");
  g->launch = dlsym(lib, "cuGraphLaunch");
  if (!begin || !end || !instantiate || !g->launch)
    return fail("graph: no CUDA driver API in the process", 0);
  if (moe_model_upload(model) != MOE_OK)
    return fail("upload: ", moe_last_error());
  size_t xbytes =
      (size_t)(tokens * info->hidden_size) * element_size(info->dtype);
  size_t ybytes =
      (size_t)(tokens * info->output_size) * element_size(info->dtype);
  g->stream = gpu->create();
  g->dx = gpu->alloc(xbytes, g->stream, false);
  g->dy = gpu->alloc(ybytes, g->stream, false);
  gpu->copy(g->dx, (void *)x, xbytes, g->stream);
  gpu->sync(g->stream);
  void *graph = NULL;
  if (begin(g->stream, /*CU_STREAM_CAPTURE_MODE_THREAD_LOCAL=*/1) != 0)
    return fail("graph: cannot begin a capture", 0);
  if (moe_model_run_layer_async(model, layer, g->dx, tokens, g->dy,
                                g->stream) != MOE_OK)
    return fail("run in a capture: ", moe_last_error());
  if (end(g->stream, &graph) != 0 || instantiate(&g->exec, graph, 0) != 0)
    return fail("graph: cannot end the capture", 0);
  return 0;
}

/* Replays of the captured call against `want` and `one` (host_call's
   output and statistics with the knobs as they are now). */
static int check_graph(moe_model *model, int64_t layer,
                       const moe_layer_info *info, const struct gpu *gpu,
                       int64_t tokens, const void *want,
                       const struct stats *one, int counted,
                       const struct graph *g) {
  enum { REPLAYS = 3 };
  size_t ybytes =
      (size_t)(tokens * info->output_size) * element_size(info->dtype);
  void *y = malloc(ybytes + 1);
  moe_model_reset_stats(model);
  for (int r = 0; r < REPLAYS; ++r)
    if (g->launch(g->exec, g->stream) != 0)
      return fail("graph: cannot launch", 0);
  gpu->copy(y, g->dy, ybytes, g->stream);
  gpu->sync(g->stream);
  if (memcmp(y, want, ybytes) != 0)
    return fail("the graph's replays gave another result", 0);
  free(y);
  char what[64];
  snprintf(what, sizeof what, "graph, %d replays", REPLAYS);
  return check_counts(model, layer, info, one, counted, REPLAYS, what);
}

int main(int argc, char **argv) {
  bool graph = argc == 7 && strcmp(argv[6], "graph") == 0;
  if (argc < 5 || argc > 7 ||
      (argc == 7 && !graph && strcmp(argv[6], "device") != 0))
    return fail("usage: run_layer_npy LAYER CHECKPOINT_DIR X.npy Y.npy "
                "[THREADS [device|graph]]",
                0);
  moe_model *model;
  if (moe_model_load(argv[2], &model) != MOE_OK)
    return fail("load: ", moe_last_error());
  int64_t layer = moe_model_find_layer(model, argv[1]);
  if (layer < 0)
    return fail("no layer named ", argv[1]);
  moe_layer_info info;
  if (moe_model_layer_info(model, layer, &info) != MOE_OK)
    return fail("info: ", moe_last_error());
  size_t element = element_size(info.dtype);
  int64_t tokens = 0;
  void *x = read_npy(argv[3], descr(info.dtype), info.hidden_size, element,
                     &tokens);
  if (!x)
    return fail("cannot read a [T, d] array of the layer's dtype from ",
                argv[3]);
  size_t ybytes = (size_t)(tokens * info.output_size) * element;
  void *y = malloc(ybytes + 1);
  struct stats one;
  int counted = host_call(model, layer, x, tokens, y, &one);
  if (counted < 0)
    return fail("run: ", moe_last_error());
  if (write_npy(argv[4], descr(info.dtype), tokens, info.output_size, y,
                element))
    return fail("cannot write ", argv[4]);
  printf("%s: %lld tokens\n", info.name, (long long)tokens);
  if (argc >= 6 &&
      run_concurrently(model, layer, x, tokens, y, ybytes, atoi(argv[5])))
    return 1;
  if (argc < 7) {
    free(x);
    free(y);
    moe_model_free(model);
    return 0;
  }
  struct gpu gpu;
  int streams = atoi(argv[5]);
  if (load_gpu(&gpu) || check_device(model, layer, &info, &gpu, x, tokens, y,
                                     &one, counted, streams))
    return 1;
  struct graph g;
  if (graph &&
      (capture(model, layer, &info, &gpu, x, tokens, &g) ||
       check_graph(model, layer, &info, &gpu, tokens, y, &one, counted, &g)))
    return 1;
  const char *knobs = getenv("RUN_LAYER_KNOBS");
  char setting[128];
  for (int used = 0; knobs && sscanf(knobs, " %127s%n", setting, &used) == 1;
       knobs += used) {
    char *value = strchr(setting, '=');
    if (!value)
      return fail("RUN_LAYER_KNOBS: expected NAME=VALUE, found ", setting);
    *value++ = 0;
    if (moe_model_set_knob(model, info.name, setting, atof(value)) != MOE_OK)
      return fail("set knob: ", moe_last_error());
    void *y2 = malloc(ybytes + 1);
    counted = host_call(model, layer, x, tokens, y2, &one);
    if (counted < 0)
      return fail("run: ", moe_last_error());
    if (tokens > 0 && !memcmp(y, y2, ybytes))
      return fail("the knob changed nothing: ", setting);
    printf("%s = %s:\n", setting, value);
    if (check_device(model, layer, &info, &gpu, x, tokens, y2, &one, counted,
                     streams))
      return 1;
    if (graph &&
        check_graph(model, layer, &info, &gpu, tokens, y2, &one, counted, &g))
      return 1;
    free(y);
    y = y2;
  }
  free(x);
  free(y);
  moe_model_free(model);
  return 0;
}
