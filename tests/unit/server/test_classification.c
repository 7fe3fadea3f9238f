/*
 * The classification extension's elements (server/classification.h): the
 * k highest scores in order, ties to the lower index, labels where the
 * configuration has them, k above the class count, and the counting pass
 * (no buffer) giving the bytes the writing pass writes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "server/classification.h"

/* The i-th element of a KServe BYTES buffer, as a C string. */
static const char *element(const char *buf, size_t bytes, int i, char *text, size_t cap) {
  size_t at = 0;
  for (int e = 0; at + 4 <= bytes; e++) {
    uint32_t len;
    memcpy(&len, buf + at, 4);
    if (e == i) {
      const size_t n = len < cap - 1 ? len : cap - 1;
      memcpy(text, buf + at + 4, n);
      text[n] = 0;
      return text;
    }
    at += 4 + len;
  }
  return NULL;
}

static void test_top_k_in_order_with_ties_and_labels(void **state) {
  (void)state;
  const float scores[] = {0.5f, 2.0f, 0.5f, -1.0f};
  char *labels[] = {"cat", "dog"}; /* classes 2 and 3 have none */
  const size_t bytes = classification_write(scores, 4, 3, labels, 2, NULL);
  char *buf = malloc(bytes);
  assert_int_equal(classification_write(scores, 4, 3, labels, 2, buf), bytes);
  char text[64];
  assert_string_equal(element(buf, bytes, 0, text, sizeof(text)), "2.000000:1:dog");
  assert_string_equal(element(buf, bytes, 1, text, sizeof(text)), "0.500000:0:cat");
  assert_string_equal(element(buf, bytes, 2, text, sizeof(text)), "0.500000:2");
  assert_null(element(buf, bytes, 3, text, sizeof(text)));
  free(buf);
}

static void test_k_above_the_class_count_gives_every_class(void **state) {
  (void)state;
  const float scores[] = {1.0f, 3.0f};
  char buf[64];
  const size_t bytes = classification_write(scores, 2, 10, NULL, 0, buf);
  char text[32];
  assert_string_equal(element(buf, bytes, 0, text, sizeof(text)), "3.000000:1");
  assert_string_equal(element(buf, bytes, 1, text, sizeof(text)), "1.000000:0");
  assert_null(element(buf, bytes, 2, text, sizeof(text)));
  assert_int_equal(classification_write(scores, 2, 0, NULL, 0, NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_top_k_in_order_with_ties_and_labels),
      cmocka_unit_test(test_k_above_the_class_count_gives_every_class),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
