#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdlib.h>

#include "engine/memplan.h"

/* No two buffers live at the same step may overlap in memory. */
static void assert_no_overlap(const memplan_buffer *b, int n) {
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++) {
      bool time = b[i].first <= b[j].last && b[j].first <= b[i].last;
      bool space = b[i].offset < b[j].offset + b[j].size && b[j].offset < b[i].offset + b[i].size;
      assert_false(time && space);
    }
}

static void test_chain_reuses_memory(void **state) {
  (void)state;
  /* A chain a->b->c->d: each buffer dies after the next is made. */
  memplan_buffer b[4] = {{100, 0, 1, 0}, {100, 1, 2, 0}, {100, 2, 3, 0}, {100, 3, 4, 0}};
  size_t total = memplan_assign(b, 4, 1);
  assert_no_overlap(b, 4);
  assert_int_equal(total, 200);
  assert_int_equal(memplan_lower_bound(b, 4), 200);
}

static void test_alignment_and_disjoint(void **state) {
  (void)state;
  memplan_buffer b[3] = {{10, 0, 5, 0}, {20, 0, 5, 0}, {30, 0, 5, 0}};
  size_t total = memplan_assign(b, 3, 64);
  assert_no_overlap(b, 3);
  for (int i = 0; i < 3; i++) assert_int_equal(b[i].offset % 64, 0);
  assert_true(total >= 60);
  assert_int_equal(total % 64, 0);
}

static void test_random_plans_are_valid(void **state) {
  (void)state;
  srand(7);
  for (int round = 0; round < 50; round++) {
    memplan_buffer b[60];
    int n = 1 + rand() % 60;
    for (int i = 0; i < n; i++) {
      int first = rand() % 100;
      b[i] = (memplan_buffer){.size = 1 + (size_t)(rand() % 5000), .first = first, .last = first + rand() % 20};
    }
    size_t total = memplan_assign(b, n, 16);
    assert_no_overlap(b, n);
    size_t lb = memplan_lower_bound(b, n);
    assert_true(total >= lb);
    /* Greedy-by-size is not optimal but stays near the bound. */
    assert_true(total <= 2 * lb + 16 * (size_t)n);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chain_reuses_memory),
      cmocka_unit_test(test_alignment_and_disjoint),
      cmocka_unit_test(test_random_plans_are_valid),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
