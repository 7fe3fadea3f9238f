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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_table),
      cmocka_unit_test(test_error_format_and_wrap),
      cmocka_unit_test(test_datatypes),
      cmocka_unit_test(test_try_alloc_overflow),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
