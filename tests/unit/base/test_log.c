/*
 * Rate-limited errors and warnings, on an injected clock (no sleeps): a
 * call site prints LOG_BURST lines per window and holds back the rest; the
 * next line after the window says how many were held back and over how
 * long, as does the flush at exit; sites are limited apart; info lines are
 * never limited.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "inferd.h"

enum { SEC = 1000000000 };

static void test_limiter_passes_a_burst_per_window_and_counts_the_rest(void **state) {
  (void)state;
  log_limiter l = {0};
  uint64_t held = 99, held_ns = 99;
  const uint64_t t0 = 0; /* a window may begin at time 0 */
  for (int i = 0; i < LOG_BURST; i++) {
    assert_true(log_limiter_allow(&l, t0 + (uint64_t)i, &held, &held_ns));
    assert_int_equal(held, 0);
    assert_int_equal(held_ns, 0);
  }
  /* The flood within the window is held back, counted. */
  for (int i = 0; i < 10000; i++) assert_false(log_limiter_allow(&l, 2ull * SEC + (uint64_t)i, &held, &held_ns));
  assert_false(log_limiter_allow(&l, (uint64_t)LOG_WINDOW_SECS * SEC - 1, &held, &held_ns));
  /* The first line of the next window carries the count and the span from
   * the first line held back. */
  const uint64_t t1 = (uint64_t)LOG_WINDOW_SECS * SEC;
  assert_true(log_limiter_allow(&l, t1, &held, &held_ns));
  assert_int_equal(held, 10001);
  assert_int_equal(held_ns, t1 - 2ull * SEC);
  /* A new burst, then held back again. */
  for (int i = 1; i < LOG_BURST; i++) assert_true(log_limiter_allow(&l, t1 + (uint64_t)i, &held, &held_ns));
  assert_int_equal(held, 0);
  assert_false(log_limiter_allow(&l, t1 + SEC, &held, &held_ns));
  /* Long after: passes, saying the one held back. */
  assert_true(log_limiter_allow(&l, t1 + 3600ull * SEC, &held, &held_ns));
  assert_int_equal(held, 1);
  assert_int_equal(held_ns, 3599ull * SEC);
}

static uint64_t fake_now;
static uint64_t fake_clock(void) { return fake_now; }

/* The log's output, captured in a temporary file. */
static FILE *captured;

static int capture(void **state) {
  (void)state;
  captured = tmpfile();
  if (!captured) return -1;
  log_set_output(captured);
  log_set_clock(fake_clock);
  log_configure(LOG_INFO, LOG_FORMAT_DEFAULT);
  fake_now = 1000ull * SEC;
  return 0;
}

static int release(void **state) {
  (void)state;
  log_set_output(NULL);
  log_set_clock(NULL);
  fclose(captured);
  return 0;
}

/* The lines written since the last call, in a malloc'd string (caller
 * frees), and their count. */
static char *take_output(int *lines) {
  fflush(captured);
  long size = ftell(captured);
  char *text = calloc(1, (size_t)size + 1);
  rewind(captured);
  if (size > 0) assert_int_equal(fread(text, 1, (size_t)size, captured), (size_t)size);
  rewind(captured);
  assert_int_equal(ftruncate(fileno(captured), 0), 0);
  *lines = 0;
  for (const char *p = text; *p; p++) *lines += *p == '\n';
  return text;
}

/* Two call sites of one format: each has its own limiter. */
static void bad_request_a(int i) { log_warn("bad request %d: %s", i, "nope"); }
static void bad_request_b(int i) { log_warn("bad request %d: %s", i, "nope"); }

static void test_site_flood_is_bounded_and_summarised(void **state) {
  (void)state;
  int lines;
  for (int i = 0; i < 10000; i++) bad_request_a(i);
  char *text = take_output(&lines);
  assert_int_equal(lines, LOG_BURST);
  assert_non_null(strstr(text, "bad request 0: nope"));
  assert_null(strstr(text, "suppressed"));
  free(text);
  /* Another site is not held back by the first one's flood. */
  bad_request_b(7);
  text = take_output(&lines);
  assert_int_equal(lines, 1);
  assert_non_null(strstr(text, "bad request 7: nope"));
  assert_null(strstr(text, "suppressed"));
  free(text);
  /* The window ends: the next line says what was held back. */
  fake_now += (uint64_t)LOG_WINDOW_SECS * SEC;
  bad_request_a(10000);
  text = take_output(&lines);
  assert_int_equal(lines, 1);
  char want[128];
  snprintf(want, sizeof(want), "bad request 10000: nope (%d similar messages suppressed in the last %d s)",
           10000 - LOG_BURST, LOG_WINDOW_SECS);
  assert_non_null(strstr(text, want));
  assert_int_equal(text[0], 'W');
  free(text);
  /* Held back again, then said by the flush at exit, naming the site. */
  for (int i = 0; i < 3 * LOG_BURST; i++) bad_request_a(i);
  free(take_output(&lines));
  assert_int_equal(lines, LOG_BURST - 1);
  fake_now += 2ull * SEC;
  log_flush_suppressed();
  text = take_output(&lines);
  assert_int_equal(lines, 1);
  snprintf(want, sizeof(want), "%d similar messages suppressed in the last 2 s (from test_log.c:", 2 * LOG_BURST + 1);
  assert_non_null(strstr(text, want));
  free(text);
  /* Said once: a second flush has nothing to say. */
  log_flush_suppressed();
  free(take_output(&lines));
  assert_int_equal(lines, 0);
}

static void test_info_lines_are_not_limited(void **state) {
  (void)state;
  for (int i = 0; i < 100; i++) log_info("model 'm%d' ready", i);
  int lines;
  free(take_output(&lines));
  assert_int_equal(lines, 100);
}


/* The embedder's settings (include/inferd.h): a sink gets each line's level
 * and message without the time prefix, the level drops what is above it,
 * and a NULL sink writes to the output again. */
typedef struct sunk {
  int count;
  inferd_log_level level;
  char message[256];
} sunk;

static void sink_line(inferd_log_level level, const char *message, void *userp) {
  sunk *s = userp;
  s->count++;
  s->level = level;
  snprintf(s->message, sizeof(s->message), "%s", message);
}

static void test_public_level_and_sink(void **state) {
  (void)state;
  const log_level before = log_current_level();
  sunk got = {0};
  inferd_log_set_sink(sink_line, &got);
  inferd_log_set_level(INFERD_LOG_WARN);
  log_info("not shown %d", 1);
  assert_int_equal(got.count, 0);
  log_write(LOG_WARN, "shown %d", 2);
  assert_int_equal(got.count, 1);
  assert_int_equal(got.level, INFERD_LOG_WARN);
  assert_string_equal(got.message, "shown 2");
  inferd_log_set_level(INFERD_LOG_VERBOSE);
  log_verbose("verbose %s", "too");
  assert_int_equal(got.count, 2);
  assert_int_equal(got.level, INFERD_LOG_VERBOSE);
  assert_string_equal(got.message, "verbose too");
  inferd_log_set_level((inferd_log_level)99); /* out of range: the nearest level */
  assert_int_equal(log_current_level(), LOG_VERBOSE);
  inferd_log_set_sink(NULL, NULL);
  log_write(LOG_WARN, "to the output");
  assert_int_equal(got.count, 2);
  inferd_log_set_level((inferd_log_level)before);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_limiter_passes_a_burst_per_window_and_counts_the_rest),
      cmocka_unit_test_setup_teardown(test_site_flood_is_bounded_and_summarised, capture, release),
      cmocka_unit_test_setup_teardown(test_info_lines_are_not_limited, capture, release),
      cmocka_unit_test_setup_teardown(test_public_level_and_sink, capture, release),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
