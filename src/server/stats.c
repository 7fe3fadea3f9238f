#include "server/stats.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

void stats_init(model_stats *s, int max_batch) {
  memset(s, 0, sizeof(*s));
  s->max_batch = max_batch > 0 ? max_batch : 1;
  s->batch_stats = mem_zalloc(((size_t)s->max_batch + 1) * sizeof(batch_stat));
}

enum { WINDOWED_COUNT = 5 };

/* The durations that have latency summaries. */
static void windowed_durations(model_stats *s, stat_duration *out[WINDOWED_COUNT]) {
  out[0] = &s->success;
  out[1] = &s->queue;
  out[2] = &s->request_compute_input;
  out[3] = &s->request_compute_infer;
  out[4] = &s->request_compute_output;
}

void stats_free(model_stats *s) {
  free(s->batch_stats);
  s->batch_stats = NULL;
  stat_duration *windowed[WINDOWED_COUNT];
  windowed_durations(s, windowed);
  for (int i = 0; i < WINDOWED_COUNT; i++) {
    free(windowed[i]->window);
    windowed[i]->window = NULL;
  }
}

void stats_enable_summaries(model_stats *s) {
  stat_duration *windowed[WINDOWED_COUNT];
  windowed_durations(s, windowed);
  for (int i = 0; i < WINDOWED_COUNT; i++)
    if (!windowed[i]->window) windowed[i]->window = mem_zalloc(sizeof(latency_window));
}

const char *stat_failure_reason_name(stat_failure_reason reason) {
  static const char *const names[STAT_FAILURE_REASON_COUNT] = {
      [STAT_FAILURE_REJECTED] = "REJECTED",
      [STAT_FAILURE_CANCELED] = "CANCELED",
      [STAT_FAILURE_BACKEND] = "BACKEND",
      [STAT_FAILURE_OTHER] = "OTHER",
  };
  return (unsigned)reason < STAT_FAILURE_REASON_COUNT ? names[reason] : "OTHER";
}
