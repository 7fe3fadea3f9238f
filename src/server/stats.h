/*
 * Statistics of one model version, in Triton's terms: inference_count
 * (items, a batch of 8 counts 8), execution_count (runs), and cumulative
 * count/ns for success, fail, queue, compute_input, compute_infer,
 * compute_output, plus the same per batch size. Counters are atomics
 * updated on the request path without a lock; a reader sees each counter
 * exactly, and the JSON snapshot is taken counter by counter.
 *
 * Failures are also counted by reason, as Triton's metrics label them:
 * REJECTED (refused by the scheduler: queue full, queue timeout, model
 * stopping), CANCELED, BACKEND (the execution failed) and OTHER (the request
 * did not fit the model).
 *
 * compute_* count executions (a batch once), as the statistics API reports
 * them; request_compute_* count each request of a batch with the batch's
 * time, which is what Triton's metrics report (so that a rate divided by the
 * request rate is the compute time a request saw). When latency summaries
 * are enabled, the request (success), queue and request_compute durations
 * also feed sliding-window histograms (latency_window.h) for the metrics'
 * quantiles.
 */
#ifndef INFERD_SERVER_STATS_H
#define INFERD_SERVER_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "inferd.h"
#include "server/latency_window.h"

typedef struct stat_duration {
  _Atomic uint64_t count;
  _Atomic uint64_t ns;
  latency_window *window; /* NULL unless latency summaries are enabled */
} stat_duration;

/* Values are Triton's `reason` label order; only ever appended. */
typedef enum stat_failure_reason {
  STAT_FAILURE_REJECTED = 0,
  STAT_FAILURE_CANCELED,
  STAT_FAILURE_BACKEND,
  STAT_FAILURE_OTHER,
  STAT_FAILURE_REASON_COUNT
} stat_failure_reason;

typedef struct batch_stat {
  stat_duration compute_input, compute_infer, compute_output;
} batch_stat;

typedef struct model_stats {
  _Atomic uint64_t inference_count;
  _Atomic uint64_t execution_count;
  _Atomic uint64_t last_inference_ms; /* wall clock, ms since the epoch */
  stat_duration success, fail, queue, compute_input, compute_infer, compute_output;
  _Atomic uint64_t failures[STAT_FAILURE_REASON_COUNT]; /* fail.count by reason */
  stat_duration request_compute_input, request_compute_infer, request_compute_output;
  int max_batch; /* batch_stats has max_batch + 1 entries, index = batch size */
  batch_stat *batch_stats;
} model_stats;

void stats_init(model_stats *s, int max_batch);
void stats_free(model_stats *s);
/* Gives success, queue and the request_compute durations their windows. Called
 * once, before the stats are shared with other threads. */
void stats_enable_summaries(model_stats *s);

/* Adds `requests` samples of `ns` each. */
static inline void stat_add_n(stat_duration *d, uint64_t ns, uint32_t requests) {
  atomic_fetch_add_explicit(&d->count, requests, memory_order_relaxed);
  atomic_fetch_add_explicit(&d->ns, ns * requests, memory_order_relaxed);
  if (d->window) latency_window_record(d->window, latency_clock_ns(), ns, requests);
}

static inline void stat_add(stat_duration *d, uint64_t ns) { stat_add_n(d, ns, 1); }

/* The compute phases of one execution of `requests` requests, counted once
 * per request (request_compute_*). */
static inline void stats_add_request_compute(model_stats *s, uint32_t requests, uint64_t input_ns, uint64_t infer_ns,
                                             uint64_t output_ns) {
  stat_add_n(&s->request_compute_input, input_ns, requests);
  stat_add_n(&s->request_compute_infer, infer_ns, requests);
  stat_add_n(&s->request_compute_output, output_ns, requests);
}

/* Counts a failed request: the fail duration and its reason. */
static inline void stat_fail(model_stats *s, stat_failure_reason reason, uint64_t ns) {
  stat_add(&s->fail, ns);
  atomic_fetch_add_explicit(&s->failures[reason], 1, memory_order_relaxed);
}

/* The reason of a request that failed once it was running: cancelled, or
 * the execution's own failure. */
static inline stat_failure_reason stat_failure_of_run(inferd_error_code code) {
  return code == INFERD_ERROR_CANCELLED ? STAT_FAILURE_CANCELED : STAT_FAILURE_BACKEND;
}

/* Triton's label for a reason ("REJECTED", ...). */
const char *stat_failure_reason_name(stat_failure_reason reason);

#endif
