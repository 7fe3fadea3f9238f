/*
 * Latency windows and failure reasons: every value falls in the range of
 * its bucket and buckets are ordered; quantiles of known distributions come
 * out within the bucket error; samples leave the window after its length
 * and a reused slot starts empty; concurrent recorders lose nothing within
 * one period; stat_fail counts the reason next to the fail duration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "server/latency_window.h"
#include "server/stats.h"

static const uint64_t SLOT_NS = (uint64_t)LATENCY_SLOT_SECS * 1000000000ull;

static void test_buckets_cover_values_in_order(void **state) {
  (void)state;
  int last = -1;
  for (uint64_t us = 0; us < 5000000; us += us < 4096 ? 1 : 997) {
    int b = latency_bucket_of(us);
    assert_true(b >= last);
    assert_true(b >= 0 && b < LATENCY_BUCKETS);
    uint64_t low, high;
    latency_bucket_range(b, &low, &high);
    assert_true(low <= us && us <= high);
    /* A bucket is at most 1/16 of its values wide. */
    assert_true((double)(high - low) <= (double)low / 16.0 + 1);
    last = b;
  }
  assert_int_equal(latency_bucket_of(UINT64_MAX), LATENCY_BUCKETS - 1);
}

static uint64_t *new_histogram(void) { return calloc(LATENCY_BUCKETS, sizeof(uint64_t)); }

static void test_quantiles_of_known_distributions(void **state) {
  (void)state;
  latency_window *w = calloc(1, sizeof(*w));
  uint64_t now = 5 * SLOT_NS + 123;
  for (uint64_t us = 1; us <= 10000; us++) latency_window_record(w, now, us * 1000, 1);
  uint64_t *h = new_histogram();
  assert_int_equal(latency_window_collect(w, now, h), 10000);
  const double qs[] = {0.5, 0.9, 0.99, 0.999};
  for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
    double got = latency_histogram_quantile(h, 10000, qs[i]), want = qs[i] * 10000;
    assert_true(fabs(got - want) / want < 0.035);
  }
  /* Exact below 32 us. */
  memset(h, 0, LATENCY_BUCKETS * sizeof(uint64_t));
  h[latency_bucket_of(7)] = 3;
  h[latency_bucket_of(20)] = 1;
  assert_true(latency_histogram_quantile(h, 4, 0.5) == 7);
  assert_true(latency_histogram_quantile(h, 4, 1.0) == 20);
  assert_true(isnan(latency_histogram_quantile(h, 0, 0.5)));
  free(h);
  free(w);
}

static void test_window_slides(void **state) {
  (void)state;
  latency_window *w = calloc(1, sizeof(*w));
  uint64_t t0 = 100 * SLOT_NS;
  latency_window_record(w, t0, 1000, 1);
  latency_window_record(w, t0 + 2 * SLOT_NS, 2000, 1);
  uint64_t *h = new_histogram();
  assert_int_equal(latency_window_collect(w, t0 + 2 * SLOT_NS, h), 2);
  memset(h, 0, LATENCY_BUCKETS * sizeof(uint64_t));
  /* Still inside the window at the last period that holds t0... */
  assert_int_equal(latency_window_collect(w, t0 + (LATENCY_WINDOW_SLOTS - 1) * SLOT_NS, h), 2);
  memset(h, 0, LATENCY_BUCKETS * sizeof(uint64_t));
  /* ...then gone. */
  assert_int_equal(latency_window_collect(w, t0 + LATENCY_WINDOW_SLOTS * SLOT_NS, h), 1);
  /* Recording into t0's slot for a new period clears it first. */
  latency_window_record(w, t0 + LATENCY_WINDOW_SLOTS * SLOT_NS, 5000, 1);
  memset(h, 0, LATENCY_BUCKETS * sizeof(uint64_t));
  assert_int_equal(latency_window_collect(w, t0 + LATENCY_WINDOW_SLOTS * SLOT_NS, h), 2);
  assert_int_equal(h[latency_bucket_of(1)], 0);
  assert_int_equal(h[latency_bucket_of(5)], 1);
  /* A late recorder holding an older time does not write into the newer period. */
  latency_window_record(w, t0, 1000, 1);
  memset(h, 0, LATENCY_BUCKETS * sizeof(uint64_t));
  assert_int_equal(latency_window_collect(w, t0 + LATENCY_WINDOW_SLOTS * SLOT_NS, h), 2);
  free(h);
  free(w);
}

enum { THREADS = 4, PER_THREAD = 100000 };

static void *record_many(void *arg) {
  latency_window *w = arg;
  for (int i = 0; i < PER_THREAD; i++) latency_window_record(w, 7 * SLOT_NS, (uint64_t)(i % 5000) * 1000, 1);
  return NULL;
}

static void test_concurrent_recorders_lose_nothing(void **state) {
  (void)state;
  latency_window *w = calloc(1, sizeof(*w));
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) assert_int_equal(pthread_create(&t[i], NULL, record_many, w), 0);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  uint64_t *h = new_histogram();
  assert_int_equal(latency_window_collect(w, 7 * SLOT_NS, h), (uint64_t)THREADS * PER_THREAD);
  free(h);
  free(w);
}

static void test_stats_failure_reasons(void **state) {
  (void)state;
  model_stats s;
  stats_init(&s, 4);
  assert_null(s.success.window);
  stats_enable_summaries(&s);
  assert_non_null(s.success.window);
  assert_non_null(s.request_compute_output.window);
  assert_null(s.compute_output.window);
  assert_null(s.fail.window);
  stat_fail(&s, STAT_FAILURE_REJECTED, 10);
  stat_fail(&s, STAT_FAILURE_REJECTED, 10);
  stat_fail(&s, stat_failure_of_run(INFERD_ERROR_INTERNAL), 5);
  stat_fail(&s, stat_failure_of_run(INFERD_ERROR_CANCELLED), 5);
  stat_fail(&s, STAT_FAILURE_OTHER, 0);
  assert_int_equal(atomic_load(&s.fail.count), 5);
  assert_int_equal(atomic_load(&s.fail.ns), 30);
  assert_int_equal(atomic_load(&s.failures[STAT_FAILURE_REJECTED]), 2);
  assert_int_equal(atomic_load(&s.failures[STAT_FAILURE_BACKEND]), 1);
  assert_int_equal(atomic_load(&s.failures[STAT_FAILURE_CANCELED]), 1);
  assert_int_equal(atomic_load(&s.failures[STAT_FAILURE_OTHER]), 1);
  assert_string_equal(stat_failure_reason_name(STAT_FAILURE_REJECTED), "REJECTED");
  assert_string_equal(stat_failure_reason_name(STAT_FAILURE_CANCELED), "CANCELED");
  assert_string_equal(stat_failure_reason_name(STAT_FAILURE_BACKEND), "BACKEND");
  assert_string_equal(stat_failure_reason_name(STAT_FAILURE_OTHER), "OTHER");
  /* Successes feed the request window. */
  stat_add(&s.success, 42000);
  uint64_t *h = new_histogram();
  assert_int_equal(latency_window_collect(s.success.window, latency_clock_ns(), h), 1);
  /* A batch of 3 requests counts its compute time once per request. */
  stats_add_request_compute(&s, 3, 1000, 20000, 3000);
  assert_int_equal(atomic_load(&s.request_compute_infer.count), 3);
  assert_int_equal(atomic_load(&s.request_compute_infer.ns), 60000);
  memset(h, 0, LATENCY_BUCKETS * sizeof(uint64_t));
  assert_int_equal(latency_window_collect(s.request_compute_infer.window, latency_clock_ns(), h), 3);
  assert_int_equal(h[latency_bucket_of(20)], 3);
  free(h);
  stats_free(&s);
  assert_null(s.success.window);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_buckets_cover_values_in_order),
      cmocka_unit_test(test_quantiles_of_known_distributions),
      cmocka_unit_test(test_window_slides),
      cmocka_unit_test(test_concurrent_recorders_lose_nothing),
      cmocka_unit_test(test_stats_failure_reasons),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
