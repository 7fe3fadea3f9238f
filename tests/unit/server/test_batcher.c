/*
 * The dynamic batcher's rule (batcher_pick) on its own: the cases of its
 * contract, the filed hang (a request of 3 alone with preferred sizes 2 and
 * 6 took nothing), and random queues checked against the rule stated as
 * properties of the answer rather than as a second copy of the code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>

#include "server/batcher.h"
#include "unit/test_rng.h"

static int pick(int max, const int *preferred, int n_preferred, const int *sizes, int n, bool due) {
  batch_rules rules = {.max_batch_size = max, .preferred = preferred, .n_preferred = n_preferred};
  return batcher_pick(&rules, sizes, n, due);
}

static void test_lone_request_between_preferred_sizes_runs_when_due(void **state) {
  (void)state;
  const int preferred[] = {2, 6};
  const int queue[] = {3};
  assert_int_equal(pick(8, preferred, 2, queue, 1, false), 0); /* still waiting for company */
  assert_int_equal(pick(8, preferred, 2, queue, 1, true), 1);  /* the delay is over: it runs */
}

static void test_rule_cases(void **state) {
  (void)state;
  const int preferred[] = {2, 6};
  /* Full: max_batch_size items are taken at once. */
  assert_int_equal(pick(4, NULL, 0, (int[]){1, 3, 1}, 3, false), 2);
  /* The whole queue is a preferred size: taken at once. */
  assert_int_equal(pick(8, preferred, 2, (int[]){1, 1}, 2, false), 2);
  /* Cannot grow (the next request does not fit): ready now, longest preferred run. */
  assert_int_equal(pick(8, preferred, 2, (int[]){2, 1, 6}, 3, false), 1);
  assert_int_equal(pick(8, NULL, 0, (int[]){3, 6}, 2, false), 1);
  /* Due: the longest preferred run, else everything that fits. */
  assert_int_equal(pick(8, preferred, 2, (int[]){1, 1, 1}, 3, true), 2);
  assert_int_equal(pick(8, preferred, 2, (int[]){1, 4, 1, 1}, 4, true), 3);
  assert_int_equal(pick(8, preferred, 2, (int[]){3, 3}, 2, true), 2);
  assert_int_equal(pick(8, NULL, 0, (int[]){1, 1, 1}, 3, true), 3);
  /* Nothing queued: nothing to take. */
  assert_int_equal(pick(8, preferred, 2, NULL, 0, true), 0);
}

static uint32_t rng_state = 0x9e3779b9u;
static uint32_t next_random(void) { return test_rng_next(&rng_state); }

static bool in_list(const int *list, int n, int v) {
  for (int i = 0; i < n; i++)
    if (list[i] == v) return true;
  return false;
}

static void test_random_queues_follow_the_rule(void **state) {
  (void)state;
  for (int round = 0; round < 200000; round++) {
    int max = 1 + (int)(next_random() % 16);
    int preferred[4], n_preferred = (int)(next_random() % 5);
    for (int i = 0; i < n_preferred; i++) preferred[i] = 1 + (int)(next_random() % (uint32_t)max);
    int sizes[20], n = (int)(next_random() % 21);
    for (int i = 0; i < n; i++) sizes[i] = 1 + (int)(next_random() % (uint32_t)max);
    bool due = next_random() % 2;
    int got = pick(max, preferred, n_preferred, sizes, n, due);

    /* The candidate: the longest head run that fits, its items, and whether
     * a longer run has a preferred size. */
    int run = 0, items = 0;
    while (run < n && items + sizes[run] <= max) items += sizes[run++];
    int taken = 0;
    for (int i = 0; i < got; i++) taken += sizes[i];
    char where[96];
    snprintf(where, sizeof(where), "round %d: max %d, %d queued, due %d, took %d", round, max, n, due, got);

    if (n == 0) {
      assert_int_equal(got, 0);
      continue;
    }
    if (due && got == 0) fail_msg("%s: a due queue must run", where);
    if (got < 0 || got > run) fail_msg("%s: past the longest run that fits (%d)", where, run);
    if (got == 0) {
      /* Waiting is allowed only while the batch can still grow toward a
       * better one. */
      if (items == max || run < n || in_list(preferred, n_preferred, items))
        fail_msg("%s: waited although the batch was ready", where);
      continue;
    }
    bool full = items == max;
    if (full) {
      if (got != run) fail_msg("%s: a full batch takes all of it", where);
      continue;
    }
    if (in_list(preferred, n_preferred, taken)) {
      /* No longer run that fits has a preferred size. */
      for (int k = got + 1, sum = taken; k <= run; k++) {
        sum += sizes[k - 1];
        if (in_list(preferred, n_preferred, sum)) fail_msg("%s: a longer preferred run of %d exists", where, k);
      }
    } else {
      if (got != run) fail_msg("%s: without a preferred size the batch is everything that fits", where);
      for (int k = 1, sum = 0; k <= run; k++) {
        sum += sizes[k - 1];
        if (in_list(preferred, n_preferred, sum)) fail_msg("%s: missed the preferred run of %d", where, k);
      }
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lone_request_between_preferred_sizes_runs_when_due),
      cmocka_unit_test(test_rule_cases),
      cmocka_unit_test(test_random_queues_follow_the_rule),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
