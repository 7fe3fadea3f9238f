/* The body-size guard's framing: which header blocks announce a body over
 * the limit, and how a block is rewritten. (The guard on a live connection
 * is tested in test_http_server.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/http/http_guard.h"

static http_guard_verdict examine(const char *block, uint64_t limit, uint64_t *length) {
  return http_guard_examine(block, strlen(block), limit, length);
}

static void test_examine(void **state) {
  (void)state;
  uint64_t n;
  assert_int_equal(examine("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", 100, &n), HTTP_GUARD_PASS);
  assert_int_equal(n, 100);
  assert_int_equal(examine("POST /a HTTP/1.1\r\ncontent-length:101\r\n\r\n", 100, &n), HTTP_GUARD_REFUSE);
  assert_int_equal(n, 101);
  assert_int_equal(examine("PUT /a HTTP/1.1\r\nCONTENT-LENGTH:  7 \r\n\r\n", 5, &n), HTTP_GUARD_REFUSE);
  assert_int_equal(n, 7);
  assert_int_equal(examine("PATCH /a HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 5, &n), HTTP_GUARD_REFUSE);
  /* No length: no body. */
  assert_int_equal(examine("POST /a HTTP/1.1\r\nHost: x\r\n\r\n", 5, &n), HTTP_GUARD_PASS);
  assert_int_equal(n, 0);
  /* evhttp reads no body for GET, HEAD, DELETE: neither does the guard. */
  assert_int_equal(examine("GET /a HTTP/1.1\r\nContent-Length: 999\r\n\r\n", 5, &n), HTTP_GUARD_PASS);
  assert_int_equal(n, 0);
  /* Framing the guard leaves to evhttp. */
  assert_int_equal(examine("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 5, &n), HTTP_GUARD_UNKNOWN);
  assert_int_equal(examine("POST /a HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 5, &n), HTTP_GUARD_UNKNOWN);
  assert_int_equal(examine("POST /a HTTP/1.1\r\nContent-Length: \r\n\r\n", 5, &n), HTTP_GUARD_UNKNOWN);
  assert_int_equal(examine("POST /a HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 5, &n),
                   HTTP_GUARD_UNKNOWN);
  assert_int_equal(examine("POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 5, &n),
                   HTTP_GUARD_UNKNOWN);
  assert_int_equal(examine("POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 5, &n),
                   HTTP_GUARD_PASS);
  /* The guard's own header from a client is dropped, whatever the method. */
  assert_int_equal(examine("POST /a HTTP/1.1\r\n" HTTP_GUARD_HEADER ": 9\r\nContent-Length: 3\r\n\r\n", 5, &n),
                   HTTP_GUARD_STRIP);
  assert_int_equal(n, 3);
  assert_int_equal(examine("GET /a HTTP/1.1\r\n" HTTP_GUARD_HEADER ": 9\r\n\r\n", 5, &n), HTTP_GUARD_STRIP);
}

static void expect_rewrite(const char *block, bool refuse, uint64_t length, const char *want) {
  size_t n;
  char *out = http_guard_rewrite(block, strlen(block), refuse, length, &n);
  assert_non_null(out);
  assert_int_equal(n, strlen(want));
  assert_memory_equal(out, want, n);
  free(out);
}

static void test_rewrite(void **state) {
  (void)state;
  expect_rewrite("POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\nExpect: 100-continue\r\n"
                 "Content-Type: application/json\r\n\r\n",
                 true, 500,
                 "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: 0\r\n" HTTP_GUARD_HEADER ": 500\r\n\r\n");
  expect_rewrite("POST /a HTTP/1.1\r\n" HTTP_GUARD_HEADER ": 1\r\nContent-Length: 3\r\n\r\n", false, 3,
                 "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\n");
  expect_rewrite("POST /a HTTP/1.1\r\n" HTTP_GUARD_HEADER ": 1\r\nContent-Length: 900\r\n\r\n", true, 900,
                 "POST /a HTTP/1.1\r\nContent-Length: 0\r\n" HTTP_GUARD_HEADER ": 900\r\n\r\n");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_examine),
      cmocka_unit_test(test_rewrite),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
