/*
 * Saturating time arithmetic: sums and microsecond conversions that would
 * wrap give UINT64_MAX ("never"), and a deadline that far off is still a
 * valid timespec in the future.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/clock.h"

static void test_sums_and_conversions_saturate(void **state) {
  (void)state;
  assert_true(clock_add_sat(1, 2) == 3);
  assert_true(clock_add_sat(UINT64_MAX - 1, 1) == UINT64_MAX);
  assert_true(clock_add_sat(UINT64_MAX - 1, 2) == UINT64_MAX);
  assert_true(clock_us_to_ns(7) == 7000);
  assert_true(clock_us_to_ns(UINT64_MAX / 1000) == UINT64_MAX / 1000 * 1000);
  assert_true(clock_us_to_ns(UINT64_MAX / 1000 + 1) == UINT64_MAX);
  assert_true(clock_us_to_ns(UINT64_C(1) << 63) == UINT64_MAX);
}

static void test_far_deadline_is_in_the_future(void **state) {
  (void)state;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  const struct timespec far = clock_deadline_after(UINT64_MAX);
  assert_true(far.tv_sec > now.tv_sec);
  assert_true(far.tv_nsec >= 0 && far.tv_nsec < 1000000000L);
  const struct timespec soon = clock_deadline_after(1000000000ull);
  assert_true(soon.tv_sec >= now.tv_sec + 1 && soon.tv_sec < far.tv_sec);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sums_and_conversions_saturate),
      cmocka_unit_test(test_far_deadline_is_in_the_future),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
