#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/mem.h"

static void test_error_table(void **state) {
  (void)state;
  assert_int_equal(inferd_error_code_http_status(INFERD_ERROR_NOT_FOUND), 404);
  assert_int_equal(inferd_error_code_grpc_status(INFERD_ERROR_NOT_FOUND), 5);
  assert_int_equal(inferd_error_code_http_status(INFERD_ERROR_UNAVAILABLE), 503);
  assert_int_equal(inferd_error_code_grpc_status(INFERD_ERROR_INVALID_ARG), 3);
  assert_string_equal(inferd_error_code_name(INFERD_ERROR_TOO_LARGE), "TOO_LARGE");
  assert_string_equal(inferd_error_code_name((inferd_error_code)999), "UNKNOWN");
  /* An overload refusal is a 503 / UNAVAILABLE that says when to retry;
   * nothing else carries a hint. */
  assert_int_equal(inferd_error_code_http_status(INFERD_ERROR_OVERLOADED), 503);
  assert_int_equal(inferd_error_code_grpc_status(INFERD_ERROR_OVERLOADED), 14);
  assert_int_equal(inferd_error_code_retry_after_ms(INFERD_ERROR_OVERLOADED), 1000);
  for (int c = 0; c < INFERD_ERROR_CODE_COUNT_; c++)
    if (c != INFERD_ERROR_OVERLOADED) assert_int_equal(inferd_error_code_retry_after_ms((inferd_error_code)c), 0);
}

static void test_error_format_and_wrap(void **state) {
  (void)state;
  inferd_error *e = err_new(INFERD_ERROR_INVALID_ARG, "bad %s %d", "dims", 3);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_INVALID_ARG);
  assert_string_equal(inferd_error_message(e), "bad dims 3");
  e = err_wrap(e, "loading '%s'", "m.onnx");
  assert_string_equal(inferd_error_message(e), "loading 'm.onnx': bad dims 3");
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_INVALID_ARG);
  inferd_error_delete(e);
  inferd_error_delete(NULL);
}

static void test_datatypes(void **state) {
  (void)state;
  assert_int_equal(inferd_datatype_from_name("FP32"), INFERD_TYPE_FP32);
  assert_int_equal(inferd_datatype_from_name("BF16"), INFERD_TYPE_BF16);
  assert_int_equal(inferd_datatype_from_name("FP33"), INFERD_TYPE_INVALID);
  assert_int_equal(inferd_datatype_size(INFERD_TYPE_INT64), 8);
  assert_int_equal(inferd_datatype_size(INFERD_TYPE_BYTES), 0);
  assert_string_equal(inferd_datatype_name(INFERD_TYPE_UINT16), "UINT16");
}

static void test_try_alloc_overflow(void **state) {
  (void)state;
  assert_null(mem_try_alloc(SIZE_MAX / 2, 4));
  void *p = mem_try_alloc(16, 4);
  assert_non_null(p);
  free(p);
  mem_pool *pool = mem_pool_new();
  char *s = mem_pool_strdup(pool, "hello");
  void *big = mem_pool_alloc(pool, 100000);
  char *t = mem_pool_strdup(pool, "world");
  assert_string_equal(s, "hello");
  assert_string_equal(t, "world");
  assert_non_null(big);
  mem_pool_delete(pool);
}

/* mem_try_grow covers the index asked for however far past the capacity it
 * is, keeps what was there, stops at `most` and fails without harm. */
static void test_try_grow(void **state) {
  (void)state;
  size_t cap = 0;
  int *a = mem_try_grow(NULL, &cap, 1, sizeof(int), 8, SIZE_MAX);
  assert_non_null(a);
  assert_int_equal(cap, 8);
  a[7] = 7;
  int *b = mem_try_grow(a, &cap, 1000, sizeof(int), 8, SIZE_MAX);
  assert_non_null(b);
  assert_int_equal(cap, 1024);
  assert_int_equal(b[7], 7);
  b[1023] = 1023;
  assert_ptr_equal(mem_try_grow(b, &cap, 10, sizeof(int), 8, SIZE_MAX), b); /* fits: unchanged */
  size_t small = 0;
  char *c = mem_try_grow(NULL, &small, 1, 1, 4096, 100);
  assert_non_null(c);
  assert_int_equal(small, 100); /* `most` under `first`: `most` wins */
  char *e = mem_try_grow(c, &small, 150, 1, 4096, 100);
  assert_non_null(e);
  assert_int_equal(small, 150); /* `need` past `most`: exactly `need` */
  free(e);
  assert_null(mem_try_grow(b, &cap, SIZE_MAX / 2, sizeof(int), 8, SIZE_MAX));
  assert_int_equal(cap, 1024);
  free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_table),
      cmocka_unit_test(test_error_format_and_wrap),
      cmocka_unit_test(test_datatypes),
      cmocka_unit_test(test_try_alloc_overflow),
      cmocka_unit_test(test_try_grow),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
