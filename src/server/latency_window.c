#include "server/latency_window.h"

#include <math.h>
#include <string.h>
#include <time.h>

enum { LINEAR_LIMIT = 2 << LATENCY_SUB_BITS }; /* values below this have a bucket each */

int latency_bucket_of(uint64_t us) {
  if (us < LINEAR_LIMIT) return (int)us;
  int msb = 63 - __builtin_clzll(us);
  if (msb > LATENCY_MAX_BIT) return LATENCY_BUCKETS - 1;
  /* msb >= SUB_BITS + 1: the top SUB_BITS bits under the leading one pick
   * the sub-bucket of this power of two. */
  int sub = (int)((us >> (msb - LATENCY_SUB_BITS)) & ((1u << LATENCY_SUB_BITS) - 1));
  return ((msb - LATENCY_SUB_BITS + 1) << LATENCY_SUB_BITS) + sub;
}

void latency_bucket_range(int bucket, uint64_t *low_us, uint64_t *high_us) {
  if (bucket < LINEAR_LIMIT) {
    *low_us = *high_us = (uint64_t)bucket;
    return;
  }
  int msb = (bucket >> LATENCY_SUB_BITS) + LATENCY_SUB_BITS - 1;
  uint64_t sub = (uint64_t)(bucket & ((1 << LATENCY_SUB_BITS) - 1));
  uint64_t width = 1ull << (msb - LATENCY_SUB_BITS);
  *low_us = (1ull << msb) + sub * width;
  *high_us = *low_us + width - 1;
}

void latency_window_record(latency_window *w, uint64_t now_ns, uint64_t duration_ns, uint32_t count) {
  uint64_t period = latency_period_of(now_ns);
  latency_slot *slot = &w->slots[period % LATENCY_WINDOW_SLOTS];
  uint64_t seen = atomic_load_explicit(&slot->period, memory_order_acquire);
  if (seen != period) {
    /* A thread whose clock read is older than a rotation already made
     * drops its sample rather than writing into a newer period. */
    if (seen > period) return;
    if (atomic_compare_exchange_strong_explicit(&slot->period, &seen, period, memory_order_acq_rel,
                                                memory_order_acquire)) {
      for (int b = 0; b < LATENCY_BUCKETS; b++) atomic_store_explicit(&slot->counts[b], 0, memory_order_relaxed);
    } else if (seen != period) {
      return;
    }
  }
  atomic_fetch_add_explicit(&slot->counts[latency_bucket_of(duration_ns / 1000)], count, memory_order_relaxed);
}

uint64_t latency_window_collect(const latency_window *w, uint64_t now_ns, uint64_t *histogram) {
  uint64_t period = latency_period_of(now_ns), total = 0;
  for (int i = 0; i < LATENCY_WINDOW_SLOTS; i++) {
    const latency_slot *slot = &w->slots[i];
    uint64_t p = atomic_load_explicit(&slot->period, memory_order_acquire);
    if (p == 0 || p > period || period - p >= LATENCY_WINDOW_SLOTS) continue;
    for (int b = 0; b < LATENCY_BUCKETS; b++) {
      uint64_t n = atomic_load_explicit(&slot->counts[b], memory_order_relaxed);
      histogram[b] += n;
      total += n;
    }
  }
  return total;
}

double latency_histogram_quantile(const uint64_t *histogram, uint64_t total, double q) {
  if (total == 0) return NAN;
  if (q < 0) q = 0;
  if (q > 1) q = 1;
  uint64_t rank = (uint64_t)ceil(q * (double)total);
  if (rank < 1) rank = 1;
  uint64_t seen = 0;
  for (int b = 0; b < LATENCY_BUCKETS; b++) {
    seen += histogram[b];
    if (seen >= rank) {
      uint64_t low, high;
      latency_bucket_range(b, &low, &high);
      return ((double)low + (double)high) / 2;
    }
  }
  return NAN; /* the histogram holds fewer samples than total says */
}

uint64_t latency_clock_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
