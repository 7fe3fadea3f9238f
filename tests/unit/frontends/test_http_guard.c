/* The body-size guard's framing, line by line: which header lines announce
 * a body over the limit, how they are rewritten, and what the end of a block
 * decides. (The guard on a live connection is tested in test_http_server,
 * headers arriving in pieces included.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/http/http_guard.h"

enum { LIMIT = 100 };

/* Feeds the block's lines ("\r\n"-separated, ending with the blank line) and
 * returns the rewritten block. */
static char *feed(http_guard_head *h, const char *block) {
  static char rewritten[1024];
  size_t n = 0;
  *h = (http_guard_head){0};
  const char *p = block;
  for (;;) {
    const char *eol = strstr(p, "\r\n");
    assert_non_null(eol);
    char out[HTTP_GUARD_REPLACE_MAX];
    size_t out_len = 0;
    const http_guard_action a = http_guard_line(h, p, (size_t)(eol - p) + 1 /* with the CR */, LIMIT, out, &out_len);
    if (a == HTTP_GUARD_KEEP || a == HTTP_GUARD_END) {
      memcpy(rewritten + n, p, (size_t)(eol + 2 - p));
      n += (size_t)(eol + 2 - p);
    } else if (a == HTTP_GUARD_REPLACE) {
      memcpy(rewritten + n, out, out_len);
      n += out_len;
    }
    p = eol + 2;
    if (a == HTTP_GUARD_END) break;
  }
  rewritten[n] = '\0';
  return rewritten;
}

static void test_lines(void **state) {
  (void)state;
  http_guard_head h;
  assert_string_equal(feed(&h, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"),
                      "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
  assert_true(h.has_body && h.have_length && !h.refused);
  assert_int_equal(h.length, 100);
  /* Over the limit: only the length line changes. */
  assert_string_equal(feed(&h, "POST /a HTTP/1.1\r\ncontent-length:101\r\nExpect: 100-continue\r\n\r\n"),
                      "POST /a HTTP/1.1\r\nContent-Length: 0\r\n" HTTP_GUARD_HEADER ": 101\r\nExpect: 100-continue\r\n\r\n");
  assert_true(h.refused);
  assert_int_equal(h.length, 101);
  feed(&h, "PUT /a HTTP/1.1\r\nCONTENT-LENGTH:  700 \r\n\r\n");
  assert_true(h.refused);
  assert_int_equal(h.length, 700);
  feed(&h, "PATCH /a HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n");
  assert_true(h.refused);
  /* The same length twice: the copy goes too once refused. */
  assert_string_equal(feed(&h, "POST /a HTTP/1.1\r\nContent-Length: 300\r\nContent-Length: 300\r\n\r\n"),
                      "POST /a HTTP/1.1\r\nContent-Length: 0\r\n" HTTP_GUARD_HEADER ": 300\r\n\r\n");
  /* No length: no body. evhttp reads no body for GET: neither does the guard. */
  feed(&h, "POST /a HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_false(h.have_length);
  assert_string_equal(feed(&h, "GET /a HTTP/1.1\r\nContent-Length: 999\r\n\r\n"),
                      "GET /a HTTP/1.1\r\nContent-Length: 999\r\n\r\n");
  assert_false(h.has_body || h.refused);
  /* Framing left to evhttp. */
  feed(&h, "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
  assert_true(h.chunked);
  feed(&h, "POST /a HTTP/1.1\r\nContent-Length: 12x\r\n\r\n");
  assert_true(h.unknown);
  feed(&h, "POST /a HTTP/1.1\r\nContent-Length: \r\n\r\n");
  assert_true(h.unknown);
  feed(&h, "POST /a HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n");
  assert_true(h.unknown);
  feed(&h, "POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n");
  assert_true(h.unknown);
  /* The guard's own header from a client is dropped, whatever the method. */
  assert_string_equal(feed(&h, "POST /a HTTP/1.1\r\n" HTTP_GUARD_HEADER ": 9\r\nContent-Length: 3\r\n\r\n"),
                      "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\n");
  assert_string_equal(feed(&h, "GET /a HTTP/1.1\r\n" HTTP_GUARD_HEADER ": 9\r\n\r\n"), "GET /a HTTP/1.1\r\n\r\n");
}

static void test_bare_lf_and_empty_first_line(void **state) {
  (void)state;
  http_guard_head h = {0};
  char out[HTTP_GUARD_REPLACE_MAX];
  size_t n;
  /* An empty line before the request line keeps waiting for it. */
  assert_int_equal(http_guard_line(&h, "", 0, LIMIT, out, &n), HTTP_GUARD_KEEP);
  assert_int_equal(h.lines, 0);
  assert_int_equal(http_guard_line(&h, "POST /a HTTP/1.1", 16, LIMIT, out, &n), HTTP_GUARD_KEEP);
  assert_int_equal(http_guard_line(&h, "Content-Length: 500", 19, LIMIT, out, &n), HTTP_GUARD_REPLACE);
  assert_int_equal(http_guard_line(&h, "", 0, LIMIT, out, &n), HTTP_GUARD_END);
  assert_true(h.refused);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lines),
      cmocka_unit_test(test_bare_lf_and_empty_first_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
