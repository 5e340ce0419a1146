/* Drives a compiled layer's run-time knobs and statistics snapshots through
 * the C API (test/AOT/knobs-stats.test). */
#include "model.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kTokens = 64, kHidden = 16 };
static float x[kTokens * kHidden], first[kTokens * kHidden],
    second[kTokens * kHidden];

static void report(const char *what, moe_status status) {
  printf("%s -> %d: %s\n", what, (int)status, moe_last_error());
}

static void run(moe_model *model, float *y) {
  moe_status status = moe_model_run_layer(model, 0, x, kTokens, y);
  if (status != MOE_OK) {
    printf("run failed: %s\n", moe_last_error());
    exit(1);
  }
}

static void print_layer(moe_model *model, const char *label) {
  moe_stats *stats = NULL;
  moe_layer_stats layer;
  if (moe_model_stats_snapshot(model, &stats) != MOE_OK ||
      moe_stats_layer(stats, 0, &layer) != MOE_OK) {
    printf("snapshot failed: %s\n", moe_last_error());
    exit(1);
  }
  int64_t dropped = 0;
  for (int64_t e = 0; e < layer.num_experts; ++e)
    dropped += layer.dropped[e];
  printf("%s: %s calls %lld tokens %lld experts/token %.4f dropped %lld "
         "drop_rate %.4f\n",
         label, layer.function, (long long)layer.calls,
         (long long)layer.tokens, layer.mean_experts_per_token,
         (long long)dropped, layer.drop_rate);
  moe_stats_free(stats);
}

static int differing(void) {
  int count = 0;
  for (int i = 0; i < kTokens * kHidden; ++i)
    count += first[i] != second[i];
  return count;
}

struct worker {
  moe_model *model;
  float y[kTokens * kHidden];
};

static void *work(void *arg) {
  struct worker *w = arg;
  for (int i = 0; i < 20; ++i)
    if (moe_model_run_layer(w->model, 0, x, kTokens, w->y) != MOE_OK)
      return "run failed";
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    printf("usage: knobs_stats CHECKPOINT\n");
    return 2;
  }
  for (int i = 0; i < kTokens * kHidden; ++i)
    x[i] = (float)sin(0.37 * i + 0.1) * 0.8f;
  moe_model *model = NULL;
  if (moe_model_load(argv[1], &model) != MOE_OK) {
    printf("load failed: %s\n", moe_last_error());
    return 1;
  }
  for (int64_t k = 0; k < moe_model_num_knobs(model); ++k) {
    const char *layer, *name;
    double value;
    moe_model_knob_info(model, k, &layer, &name, &value);
    printf("knob %lld: %s %s default %g\n", (long long)k, layer, name, value);
  }

  /* Defaults: tau 0 keeps both slots, factor 2 drops nothing. */
  run(model, first);
  print_layer(model, "defaults");

  /* tau 1: only each token's first slot survives. */
  moe_model_reset_stats(model);
  report("set tau 1", moe_model_set_knob(model, "moe_layer_0", "tau", 1.0));
  double tau = -1;
  moe_model_get_knob(model, "moe_layer_0", "tau", &tau);
  printf("tau now %g\n", tau);
  run(model, second);
  print_layer(model, "tau=1");
  printf("outputs that changed: %s\n", differing() > 0 ? "some" : "none");

  /* A small factor drops assignments. */
  moe_model_reset_stats(model);
  moe_model_set_knob(model, "moe_layer_0", "tau", 0.0);
  report("set factor 0.25",
         moe_model_set_knob(model, "moe_layer_0", "capacity_factor", 0.25));
  run(model, second);
  print_layer(model, "factor=0.25");

  /* Back to the defaults: bitwise the first result again. */
  moe_model_set_knob(model, "moe_layer_0", "capacity_factor", 2.0);
  run(model, second);
  printf("defaults again, outputs that changed: %d\n", differing());

  report("set tau NaN", moe_model_set_knob(model, "moe_layer_0", "tau", NAN));
  report("set factor 0",
         moe_model_set_knob(model, "moe_layer_0", "capacity_factor", 0.0));
  report("set top_p", moe_model_set_knob(model, "moe_layer_0", "top_p", 0.5));
  report("set NULL layer", moe_model_set_knob(model, NULL, "tau", 0.5));
  report("get NULL value",
         moe_model_get_knob(model, "moe_layer_0", "tau", NULL));
  report("knob info 9", moe_model_knob_info(model, 9, NULL, NULL, NULL));

  /* Controllers check what they are given. */
  moe_controller *controller = NULL;
  moe_controller_config config = {MOE_CONTROL_MAX_LOAD_RATIO, 1.5, 0.1, 1.0,
                                  4.0, 0.25, 0.0625, 1.0};
  report("controller of moe_layer_9",
         moe_controller_create(model, "moe_layer_9", &config, &controller));
  config.band = -1;
  report("controller band -1",
         moe_controller_create(model, "moe_layer_0", &config, &controller));
  config.band = 0.1;
  report("controller NULL config",
         moe_controller_create(model, "moe_layer_0", NULL, &controller));
  report("controller",
         moe_controller_create(model, "moe_layer_0", &config, &controller));
  report("controller step NULL", moe_controller_step(NULL, NULL, NULL, NULL));
  moe_controller_free(controller);

  /* Exports of one snapshot. */
  moe_stats *stats = NULL;
  moe_model_stats_snapshot(model, &stats);
  printf("json: %s\n", moe_stats_json(stats));
  printf("%s", moe_stats_prometheus(stats));
  moe_layer_stats layer;
  report("stats layer 1", moe_stats_layer(stats, 1, &layer));
  moe_stats_free(stats);
  report("snapshot NULL", moe_model_stats_snapshot(model, NULL));

  /* Knobs turned while two threads run the layer. */
  moe_model_reset_stats(model);
  struct worker workers[2] = {{model, {0}}, {model, {0}}};
  pthread_t threads[2];
  for (int i = 0; i < 2; ++i)
    pthread_create(&threads[i], NULL, work, &workers[i]);
  for (int i = 0; i < 200; ++i)
    moe_model_set_knob(model, "moe_layer_0", "tau", (i % 2) ? 1.0 : 0.0);
  for (int i = 0; i < 2; ++i) {
    void *result;
    pthread_join(threads[i], &result);
    if (result)
      printf("thread %d: %s\n", i, (const char *)result);
  }
  print_layer(model, "threads");
  moe_model_free(model);
  return 0;
}
