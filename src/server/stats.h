/*
 * Statistics of one model version, in Triton's terms: inference_count
 * (items, a batch of 8 counts 8), execution_count (runs), and cumulative
 * count/ns for success, fail, queue, compute_input, compute_infer,
 * compute_output, plus the same per batch size. Counters are atomics
 * updated on the request path without a lock; a reader sees each counter
 * exactly, and the JSON snapshot is taken counter by counter.
 */
#ifndef INFERD_SERVER_STATS_H
#define INFERD_SERVER_STATS_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct stat_duration {
  _Atomic uint64_t count;
  _Atomic uint64_t ns;
} stat_duration;

typedef struct batch_stat {
  stat_duration compute_input, compute_infer, compute_output;
} batch_stat;

typedef struct model_stats {
  _Atomic uint64_t inference_count;
  _Atomic uint64_t execution_count;
  _Atomic uint64_t last_inference_ms; /* wall clock, ms since the epoch */
  stat_duration success, fail, queue, compute_input, compute_infer, compute_output;
  int max_batch; /* batch_stats has max_batch + 1 entries, index = batch size */
  batch_stat *batch_stats;
} model_stats;

void stats_init(model_stats *s, int max_batch);
void stats_free(model_stats *s);

static inline void stat_add(stat_duration *d, uint64_t ns) {
  atomic_fetch_add_explicit(&d->count, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&d->ns, ns, memory_order_relaxed);
}

#endif
