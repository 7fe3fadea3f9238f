/*
 * INT8 calibration: histograms that grow their range by merging bins, the
 * three threshold methods on distributions whose answer is known, and the
 * cache file's round trip and its errors (line and column).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/quant/calibration.h"

static uint32_t seed = 1;
static float uniform(void) { /* [0, 1) */
  seed = seed * 1664525u + 1013904223u;
  return (float)(seed >> 8) / 16777216.0f;
}
static float normal(void) { /* sum of 12 uniforms: mean 0, deviation 1 */
  float s = 0;
  for (int i = 0; i < 12; i++) s += uniform();
  return s - 6.0f;
}

static void test_range_grows_by_merging_exactly(void **state) {
  (void)state;
  /* Dyadic values, so binning at either range is exact. */
  float a[4] = {0.25f, -0.5f, 0.75f, 0.125f}, b[3] = {3.0f, -2.5f, 0.0f};
  calib_histogram once, twice;
  calib_histogram_init(&once);
  calib_histogram_init(&twice);
  float all[7];
  memcpy(all, b, sizeof(b));
  memcpy(all + 3, a, sizeof(a));
  calib_histogram_add(&once, all, 7);
  calib_histogram_add(&twice, a, 4);
  assert_true(twice.range == 1.0);
  calib_histogram_add(&twice, b, 3);
  assert_true(twice.range == 4.0 && once.range == 4.0);
  assert_memory_equal(once.bins, twice.bins, sizeof(once.bins));
  assert_int_equal(twice.count, 7);
  assert_true(twice.max_abs == 3.0f);
  /* Non-finite values are counted apart and change nothing else. */
  const float bad[3] = {NAN, INFINITY, -INFINITY};
  calib_histogram_add(&twice, bad, 3);
  assert_int_equal(twice.non_finite, 3);
  assert_int_equal(twice.count, 7);
  assert_true(twice.range == 4.0);
}

static void test_max_and_percentile(void **state) {
  (void)state;
  calib_histogram h;
  calib_histogram_init(&h);
  assert_true(calib_threshold(&h, CALIB_ENTROPY, 0) == 0); /* nothing seen */
  enum { N = 100000 };
  float *x = malloc(N * sizeof(float));
  for (int i = 0; i < N; i++) x[i] = uniform() * (i % 2 ? 1.0f : -1.0f);
  calib_histogram_add(&h, x, N);
  const double width = h.range / CALIB_BINS;
  assert_true(fabs(calib_threshold(&h, CALIB_MAX, 0) - h.max_abs) < 1e-12);
  assert_true(fabs(calib_threshold(&h, CALIB_PERCENTILE, 90) - 0.9) <= 2 * width);
  assert_true(fabs(calib_threshold(&h, CALIB_PERCENTILE, 50) - 0.5) <= 2 * width);
  /* One far outlier moves max, not the 99th percentile (beyond the bins
   * it coarsens: the range is now 128). */
  const float outlier = 100.0f;
  calib_histogram_add(&h, &outlier, 1);
  assert_true(calib_threshold(&h, CALIB_MAX, 0) == 100.0);
  const double p99 = calib_threshold(&h, CALIB_PERCENTILE, 99);
  assert_true(p99 <= 0.99 + 2 * h.range / CALIB_BINS && p99 >= 0.9);
  assert_true(calib_threshold(&h, CALIB_PERCENTILE, 100) == 100.0);
  free(x);
}

static void test_entropy_clips_outliers_and_keeps_a_bounded_range(void **state) {
  (void)state;
  enum { N = 200000 };
  float *x = malloc((N + 8) * sizeof(float));
  for (int i = 0; i < N; i++) x[i] = normal();
  for (int i = 0; i < 8; i++) x[N + i] = 40.0f + (float)i; /* rare, far out */
  calib_histogram h;
  calib_histogram_init(&h);
  calib_histogram_add(&h, x, N + 8);
  const double t = calib_threshold(&h, CALIB_ENTROPY, 0);
  /* Well past the bulk (3 deviations hold 99.7%), well short of the outliers. */
  assert_true(t > 2.5 && t < 12.0);
  assert_true(t < calib_threshold(&h, CALIB_MAX, 0) / 3);
  /* A uniform distribution has nothing to clip: the threshold is near its max. */
  calib_histogram u;
  calib_histogram_init(&u);
  for (int i = 0; i < N; i++) x[i] = uniform() * 3.0f;
  calib_histogram_add(&u, x, N);
  const double tu = calib_threshold(&u, CALIB_ENTROPY, 0);
  assert_true(tu > 0.9 * 3.0 && tu <= 3.0);
  /* After a ReLU6: half the values exactly zero, the rest spread to 6. The
   * zeros are exact at any scale and must not pull the threshold down (it
   * was 1 of 6 on EfficientNet-Lite0's layers when they counted). */
  calib_histogram r;
  calib_histogram_init(&r);
  for (int i = 0; i < N; i++) x[i] = i % 2 ? 0.0f : 6.0f * uniform() * uniform();
  calib_histogram_add(&r, x, N);
  assert_int_equal(r.zeros, N / 2);
  const double tr = calib_threshold(&r, CALIB_ENTROPY, 0);
  assert_true(tr > 3.0 && tr <= 6.0);
  free(x);
}

static void test_methods_by_name(void **state) {
  (void)state;
  calib_method m;
  for (int k = 0; k < 3; k++) {
    assert_null(calib_method_parse(calib_method_name((calib_method)k), &m));
    assert_int_equal(m, k);
  }
  inferd_error *e = calib_method_parse("kl", &m);
  assert_non_null(e);
  assert_non_null(strstr(inferd_error_message(e), "'kl'"));
  inferd_error_delete(e);
}

static void test_cache_round_trip_and_file(void **state) {
  (void)state;
  calib_cache c = {.method = CALIB_PERCENTILE, .percentile = 99.99};
  c.checksum = strdup("sha256:00ff");
  calib_cache_set(&c, "input", 2.5);
  calib_cache_set(&c, "layer 1/conv out", 0.1);
  calib_cache_set(&c, "tab\there", 1e-7);
  calib_cache_set(&c, "#hash", 3.0);
  calib_cache_set(&c, "input", 2.75); /* replaced */
  assert_int_equal(c.n, 4);
  size_t len;
  char *text = calib_cache_format(&c, &len);
  calib_cache back;
  assert_null(calib_cache_parse(text, len, &back));
  assert_string_equal(back.checksum, "sha256:00ff");
  assert_int_equal(back.method, CALIB_PERCENTILE);
  assert_true(back.percentile == 99.99);
  assert_int_equal(back.n, 4);
  assert_true(calib_cache_find(&back, "input") == 2.75);
  assert_true(calib_cache_find(&back, "#hash") == 3.0);
  assert_true(calib_cache_find(&back, "layer 1/conv out") == 0.1);
  assert_true(fabs(calib_cache_find(&back, "tab\there") - 1e-7) < 1e-15);
  assert_true(calib_cache_find(&back, "missing") < 0);
  char path[] = "/tmp/inferd_calib_XXXXXX";
  const int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_null(calib_cache_write(&back, path));
  calib_cache again;
  assert_null(calib_cache_read(path, &again));
  assert_int_equal(again.n, 4);
  unlink(path);
  calib_cache gone;
  inferd_error *e = calib_cache_read(path, &gone);
  assert_non_null(e);
  assert_non_null(strstr(inferd_error_message(e), path));
  inferd_error_delete(e);
  calib_cache_free(&again);
  calib_cache_free(&back);
  calib_cache_free(&c);
  free(text);
}

/* Each bad cache's error names this line and column and says `what`. */
static void bad(const char *text, int line, int column, const char *what) {
  calib_cache c;
  inferd_error *e = calib_cache_parse(text, strlen(text), &c);
  if (!e) {
    fprintf(stderr, "accepted: %s\n", text);
    fail();
  }
  char where[64];
  snprintf(where, sizeof(where), "line %d, column %d:", line, column);
  const char *msg = inferd_error_message(e);
  if (!strstr(msg, where) || !strstr(msg, what)) {
    fprintf(stderr, "for %s\ngot: %s\nwant %s ... %s\n", text, msg, where, what);
    fail();
  }
  inferd_error_delete(e);
}

#define HEAD "# inferd calibration cache v1\n"
static void test_cache_errors_say_where(void **state) {
  (void)state;
  bad("", 1, 1, "empty");
  bad("# something else\n", 1, 1, "not an inferd calibration cache");
  bad(HEAD "method max\n", 2, 1, "no 'model");
  bad(HEAD "model abc\n", 2, 1, "no 'method'");
  bad(HEAD "model abc\nmodel def\n", 3, 1, "a second 'model'");
  bad(HEAD "model x\r\r\nmethod max\n", 2, 8, "a control character in the model checksum");
  bad(HEAD "model abc\nmethod kl\n", 3, 8, "unknown method");
  bad(HEAD "model abc\nmethod percentile 101\n", 3, 19, "(0, 100]");
  bad(HEAD "model abc\nmethod percentile x\n", 3, 19, "(0, 100]");
  bad(HEAD "model abc\nmethod max\nx 1.0\n", 4, 1, "expected '<tensor name><TAB><threshold>'");
  bad(HEAD "model abc\nmethod max\n\t1.0\n", 4, 1, "empty tensor name");
  bad(HEAD "model abc\nmethod max\nconv\t-1\n", 4, 6, "finite number >= 0");
  bad(HEAD "model abc\nmethod max\nconv\tnan\n", 4, 6, "finite number >= 0");
  bad(HEAD "model abc\nmethod max\nconv\t1e999\n", 4, 6, "finite number >= 0");
  bad(HEAD "model abc\nmethod max\nconv\t1.0x\n", 4, 6, "finite number >= 0");
  bad(HEAD "model abc\nmethod max\nconv\t\n", 4, 6, "finite number >= 0");
  bad(HEAD "model abc\nmethod max\nconv\t\f-0\n", 4, 6, "finite number >= 0"); /* found by fuzzing */
  bad(HEAD "model abc\nmethod max\nconv\t1\nconv\t2\n", 5, 1, "earlier line");
  bad(HEAD "model abc\nmethod max\nkeep a\nkeep b\n", 5, 1, "a second 'keep'");
  bad(HEAD "model abc\nmethod max\nkeep a\x01b\n", 4, 7, "a control character in the keep list");
  const char with_nul[] = HEAD "model abc\nmethod max\nco\0nv\t1\n";
  calib_cache c;
  inferd_error *e = calib_cache_parse(with_nul, sizeof(with_nul) - 1, &c);
  assert_non_null(e);
  assert_non_null(strstr(inferd_error_message(e), "line 4, column 3: a NUL byte"));
  inferd_error_delete(e);
  /* Comments, blank lines, CRLF and a last line without a newline are fine. */
  const char *ok = "# inferd calibration cache v1\r\n# made by hand\n\nmodel abc\r\nmethod entropy\nconv\t0.5";
  assert_null(calib_cache_parse(ok, strlen(ok), &c));
  assert_int_equal(c.n, 1);
  assert_int_equal(c.method, CALIB_ENTROPY);
  assert_true(calib_cache_find(&c, "conv") == 0.5);
  assert_null(c.keep);
  calib_cache_free(&c);
  /* The keep list `inferd calibrate --auto-keep` writes, read back and
   * written again the same. */
  const char *kept = HEAD "model abc\nmethod max\nkeep conv_1,blocks.0/dw\nconv_1\t2\n";
  assert_null(calib_cache_parse(kept, strlen(kept), &c));
  assert_string_equal(c.keep, "conv_1,blocks.0/dw");
  size_t len;
  char *text = calib_cache_format(&c, &len);
  assert_string_equal(text, kept);
  free(text);
  calib_cache_free(&c);
}

static void test_collector_to_cache(void **state) {
  (void)state;
  calib_collector col = {0};
  const float a1[3] = {0.5f, -1.0f, 0.25f}, a2[2] = {2.0f, 0.0f}, b[2] = {0.0f, 0.0f};
  calib_collector_add(&col, "a", a1, 3);
  calib_collector_add(&col, "b", b, 2);
  calib_collector_add(&col, "a", a2, 2); /* same tensor, a later batch */
  assert_int_equal(col.n, 2);
  assert_int_equal(calib_collector_find(&col, "a")->count, 5);
  assert_null(calib_collector_find(&col, "c"));
  calib_cache cache;
  calib_collector_thresholds(&col, CALIB_MAX, 0, "sum", &cache);
  assert_true(calib_cache_find(&cache, "a") == 2.0);
  assert_true(calib_cache_find(&cache, "b") == 0.0);
  assert_string_equal(cache.checksum, "sum");
  assert_true(calib_scale(calib_cache_find(&cache, "a")) == (float)(2.0 / 127.0));
  assert_true(calib_scale(0) == 1.0f);
  calib_cache_free(&cache);
  calib_collector_free(&col);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_range_grows_by_merging_exactly),
      cmocka_unit_test(test_max_and_percentile),
      cmocka_unit_test(test_entropy_clips_outliers_and_keeps_a_bounded_range),
      cmocka_unit_test(test_methods_by_name),
      cmocka_unit_test(test_cache_round_trip_and_file),
      cmocka_unit_test(test_cache_errors_say_where),
      cmocka_unit_test(test_collector_to_cache),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
