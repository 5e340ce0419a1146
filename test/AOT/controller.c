/* The adaptive controller on a compiled threshold-routing layer, through
 * the C API (test/AOT/controller.test): the router's input scale drifts, so
 * the share of second choices above tau drifts with it; the controller
 * turns tau to hold the mean experts per token in its band. */
#include "model.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kTokens = 512, kHidden = 16, kPhaseSteps = 24 };
static const double kScales[] = {1.0, 4.0, 2.0};
static float x[kTokens * kHidden], y[kTokens * kHidden];

/* splitmix64 and Box-Muller: the same inputs everywhere. */
static uint64_t state;
static double uniform(void) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return ((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0);
}
static double normal(void) {
  double u = uniform(), v = uniform();
  if (u < 1e-300)
    u = 1e-300;
  return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Runs the drifting sequence; returns the controller's log (malloc'd). */
static char *drive(const char *checkpoint, int verbose) {
  moe_model *model = NULL;
  if (moe_model_load(checkpoint, &model) != MOE_OK) {
    printf("load failed: %s\n", moe_last_error());
    exit(1);
  }
  moe_controller_config config = {MOE_CONTROL_MEAN_EXPERTS_PER_TOKEN,
                                   /*setpoint=*/1.5, /*band=*/0.1,
                                   /*min_value=*/0.0, /*max_value=*/1.0,
                                   /*initial_step=*/0.02, /*min_step=*/0.0025,
                                   /*max_step=*/0.2};
  moe_controller *controller = NULL;
  if (moe_controller_create(model, "moe_layer_0", &config, &controller) !=
      MOE_OK) {
    printf("create failed: %s\n", moe_last_error());
    exit(1);
  }
  state = 7;
  int step = 0;
  for (int phase = 0; phase < 3; ++phase) {
    int settledAt = -1, excursions = 0, inside = 0;
    double tauAtEnd = 0;
    for (int i = 0; i < kPhaseSteps; ++i, ++step) {
      for (int j = 0; j < kTokens * kHidden; ++j)
        x[j] = (float)(kScales[phase] * normal());
      if (moe_model_run_layer(model, 0, x, kTokens, y) != MOE_OK) {
        printf("run failed: %s\n", moe_last_error());
        exit(1);
      }
      double quantity, tau;
      int changed;
      moe_controller_step(controller, &quantity, &tau, &changed);
      int in = fabs(quantity - config.setpoint) <= config.band;
      if (in && settledAt < 0)
        settledAt = i;
      else if (!in && settledAt >= 0 && inside)
        ++excursions;
      inside = in;
      tauAtEnd = tau;
      if (verbose > 1)
        printf("  step %d scale %g: experts/token %.4f tau %.4f%s\n", step,
               kScales[phase], quantity, tau, changed ? " (changed)" : "");
    }
    if (verbose)
      printf("phase %d (scale %g): in band after %d intervals, %d "
             "excursions, tau %s\n",
             phase, kScales[phase], settledAt, excursions,
             settledAt >= 0 && settledAt <= 12 && excursions <= 1 ? "ok"
                                                                   : "FAILED");
    (void)tauAtEnd;
  }
  char *log = strdup(moe_controller_log(controller));
  moe_controller_free(controller);
  moe_model_free(model);
  return log;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    printf("usage: controller CHECKPOINT [-v]\n");
    return 2;
  }
  int verbose = argc > 2 ? 2 : 1;
  char *first = drive(argv[1], verbose);
  char *second = drive(argv[1], 0);
  printf("%s", first);
  printf("same log on a second run: %s\n",
         strcmp(first, second) == 0 ? "yes" : "no");
  free(first);
  free(second);
  return 0;
}
