/*
 * Latency quantiles over a sliding time window, for the metrics' summaries
 * (nv_inference_*_summary_us). Recording is lock-free: one relaxed atomic
 * increment of a histogram bucket, plus, once per slot period, a
 * compare-and-swap that claims the slot for the new period and clears it.
 *
 * The window is LATENCY_WINDOW_SLOTS slots of LATENCY_SLOT_SECS each; a
 * reader sums the slots of the current and previous periods, so quantiles
 * cover the last 50 to 60 seconds. Buckets are log-linear over microseconds
 * (exact below 32 us, then 16 per power of two), so a quantile is known to
 * within about 3% of its value. A sample recorded while its slot is being
 * cleared for a new period may be lost; that is the price of taking no lock,
 * and it only touches the edge of a period.
 */
#ifndef INFERD_SERVER_LATENCY_WINDOW_H
#define INFERD_SERVER_LATENCY_WINDOW_H

#include <stdatomic.h>
#include <stdint.h>

enum {
  LATENCY_WINDOW_SLOTS = 6,
  LATENCY_SLOT_SECS = 10,
  LATENCY_SUB_BITS = 4,                                   /* 16 buckets per power of two */
  LATENCY_MAX_BIT = 40,                                   /* values clamp at 2^41 - 1 us (25 days) */
  LATENCY_BUCKETS = (LATENCY_MAX_BIT - LATENCY_SUB_BITS + 2) << LATENCY_SUB_BITS,
};

typedef struct latency_slot {
  _Atomic uint64_t period; /* which slot period the counts belong to; 0: never used */
  _Atomic uint32_t counts[LATENCY_BUCKETS];
} latency_slot;

typedef struct latency_window {
  latency_slot slots[LATENCY_WINDOW_SLOTS];
} latency_window;

/* Bucket of a value in microseconds, and the range of values a bucket holds. */
int latency_bucket_of(uint64_t us);
void latency_bucket_range(int bucket, uint64_t *low_us, uint64_t *high_us);

/* The period number of a monotonic time; periods start at 1. */
static inline uint64_t latency_period_of(uint64_t now_ns) {
  return now_ns / ((uint64_t)LATENCY_SLOT_SECS * 1000000000ull) + 1;
}

/* Records `count` samples of one duration (ns) at monotonic time now_ns. */
void latency_window_record(latency_window *w, uint64_t now_ns, uint64_t duration_ns, uint32_t count);

/* Adds the counts of every slot still in the window at now_ns into
 * histogram[LATENCY_BUCKETS]; returns the number of samples added. */
uint64_t latency_window_collect(const latency_window *w, uint64_t now_ns, uint64_t *histogram);

/* The q-quantile (0..1) of a histogram of `total` samples, in microseconds:
 * the middle of the bucket holding the sample of rank ceil(q * total).
 * NaN when total is 0. */
double latency_histogram_quantile(const uint64_t *histogram, uint64_t total, double q);

/* The monotonic clock the window uses: coarse (a few ms), as slot periods
 * are seconds long and this one costs no system call. */
uint64_t latency_clock_ns(void);

#endif
