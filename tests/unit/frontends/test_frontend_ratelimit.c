/*
 * The rate-limited log of the frontends' accept errors and refusals: at
 * most one line per interval, the lines held back in between counted and
 * handed to the next line printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "frontends/frontend_loop.h"

enum { SEC = 1000000000 };

static void test_one_line_per_interval_with_the_count_held_back(void **state) {
  (void)state;
  frontend_ratelimit r = {.interval_ns = SEC};
  uint64_t held = 99;
  assert_true(frontend_ratelimit_allow(&r, 5ull * SEC, &held));
  assert_int_equal(held, 0);
  /* A flood within the second: all held back. */
  for (int i = 0; i < 10000; i++) assert_false(frontend_ratelimit_allow(&r, 5ull * SEC + (uint64_t)i * 1000, &held));
  assert_false(frontend_ratelimit_allow(&r, 6ull * SEC - 1, &held));
  /* The next line after the interval says how many were held back. */
  assert_true(frontend_ratelimit_allow(&r, 6ull * SEC, &held));
  assert_int_equal(held, 10001);
  assert_false(frontend_ratelimit_allow(&r, 6ull * SEC + 1, &held));
  assert_true(frontend_ratelimit_allow(&r, 60ull * SEC, &held));
  assert_int_equal(held, 1);
}

static void test_first_line_at_time_zero_still_limits(void **state) {
  (void)state;
  frontend_ratelimit r = {.interval_ns = SEC};
  uint64_t held;
  assert_true(frontend_ratelimit_allow(&r, 0, &held));
  assert_false(frontend_ratelimit_allow(&r, 1, &held));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_line_per_interval_with_the_count_held_back),
      cmocka_unit_test(test_first_line_at_time_zero_still_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
