/* The framing guard, line by line: which header lines announce a body over
 * the limit and how they are rewritten; which framing is refused (two
 * lengths, a length with Transfer-Encoding, lengths that are not numbers or
 * too long, codings other than chunked) and what the refused request becomes;
 * the limits on a header block's bytes and lines; the refusal header's
 * format. (The guard on a live connection is tested in test_http_server,
 * headers arriving in pieces and chunked bodies included.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/http/http_guard.h"

static const http_guard_limits limits = {.body = 100, .header_bytes = 200, .headers = 4};

/* Feeds the block's lines ("\r\n"-separated, ending with the blank line) and
 * returns the rewritten block; *refused tells whether the guard refused it
 * (the block then ends with the guard's replacement). */
static char *feed(http_guard_head *h, const char *block, bool *refused) {
  static char rewritten[4096];
  size_t n = 0;
  *h = (http_guard_head){0};
  *refused = false;
  const char *p = block;
  for (;;) {
    const char *eol = strstr(p, "\r\n");
    assert_non_null(eol);
    char out[HTTP_GUARD_REPLACE_MAX];
    size_t out_len = 0;
    const size_t len = (size_t)(eol - p) + 1; /* with the CR */
    const http_guard_action a = http_guard_line(h, p, len, len + 1, &limits, out, &out_len);
    if (a == HTTP_GUARD_KEEP || (a == HTTP_GUARD_END && !out_len)) {
      memcpy(rewritten + n, p, len + 1);
      n += len + 1;
    } else if (a != HTTP_GUARD_DROP) {
      memcpy(rewritten + n, out, out_len);
      n += out_len;
    }
    p = eol + 2;
    *refused = a == HTTP_GUARD_REFUSE;
    if (a == HTTP_GUARD_END || a == HTTP_GUARD_REFUSE) break;
  }
  rewritten[n] = '\0';
  return rewritten;
}

static char *feed_ok(http_guard_head *h, const char *block) {
  bool refused;
  char *out = feed(h, block, &refused);
  if (refused) fail_msg("refused: %s", out);
  return out;
}

/* Expects the block refused with `status` and a message containing
 * `needle`; returns the rewritten block. */
static char *feed_refused(const char *block, int status, const char *needle) {
  http_guard_head h;
  bool refused;
  char *out = feed(&h, block, &refused);
  if (!refused) fail_msg("not refused: %s", block);
  char want[64];
  snprintf(want, sizeof(want), HTTP_GUARD_HEADER ": %d close ", status);
  if (!strstr(out, want)) fail_msg("'%s' lacks '%s'", out, want);
  if (!strstr(out, needle)) fail_msg("'%s' lacks '%s'", out, needle);
  return out;
}

static void test_body_over_the_limit(void **state) {
  (void)state;
  http_guard_head h;
  /* The length goes to evhttp only with the end of the block, so that a
   * refusal before it leaves evhttp no body to wait for. */
  assert_string_equal(feed_ok(&h, "POST /a HTTP/1.1\r\nContent-Length: 100\r\nHost: x\r\n\r\n"),
                      "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
  assert_true(h.has_body && h.have_length && !h.refused);
  assert_int_equal(h.length, 100);
  /* Over the limit: no length (no body) and the guard's 413, which keeps the
   * connection. */
  assert_string_equal(feed_ok(&h, "POST /a HTTP/1.1\r\ncontent-length:101\r\nExpect: 100-continue\r\n\r\n"),
                      "POST /a HTTP/1.1\r\nExpect: 100-continue\r\n" HTTP_GUARD_HEADER
                      ": 413 keep request body of 101 bytes is over the limit of 100 bytes (--http-max-input-size)"
                      "\r\n\r\n");
  assert_true(h.refused);
  assert_int_equal(h.length, 101);
  feed_ok(&h, "PUT /a HTTP/1.1\r\nCONTENT-LENGTH:  700 \r\n\r\n");
  assert_true(h.refused);
  assert_int_equal(h.length, 700);
  /* evhttp reads a body for GET too, so the guard judges its length. */
  feed_ok(&h, "GET /a HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n");
  assert_true(h.has_body && h.refused);
  /* The same length twice becomes one. */
  assert_string_equal(feed_ok(&h, "POST /a HTTP/1.1\r\nContent-Length: 30\r\nContent-Length: 30\r\n\r\n"),
                      "POST /a HTTP/1.1\r\nContent-Length: 30\r\n\r\n");
  /* No length: no body. HEAD has none whatever it says. */
  feed_ok(&h, "POST /a HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_false(h.have_length);
  feed_ok(&h, "HEAD /a HTTP/1.1\r\nContent-Length: 999\r\n\r\n");
  assert_false(h.has_body || h.refused);
  feed_ok(&h, "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
  assert_true(h.chunked);
  /* The guard's own header from a client is dropped, whatever the method. */
  assert_string_equal(feed_ok(&h, "POST /a HTTP/1.1\r\n" HTTP_GUARD_HEADER ": 413 keep x\r\nContent-Length: 3\r\n\r\n"),
                      "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\n");
  assert_string_equal(feed_ok(&h, "GET /a HTTP/1.1\r\n" HTTP_GUARD_HEADER ": 9\r\n\r\n"), "GET /a HTTP/1.1\r\n\r\n");
}

/* What evhttp would frame its own way (the first of two lengths, a length
 * next to chunked) is refused, and the refused request evhttp then reads
 * ends with an empty chunked body, which it prefers to any length it saw. */
static void test_ambiguous_framing_is_refused(void **state) {
  (void)state;
  char *out = feed_refused("POST /a HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\nHost: x\r\n\r\n", 400,
                           "two different Content-Length headers (5 and 7)");
  assert_int_equal(strncmp(out, "POST /a HTTP/1.1\r\n" HTTP_GUARD_HEADER, 18 + strlen(HTTP_GUARD_HEADER)), 0);
  assert_null(strstr(out, "Content-Length:") && strstr(out, "Host"));
  assert_int_equal(strlen(out) - (size_t)(strstr(out, "\r\n\r\n") - out), 4); /* no body follows */
  /* After the client's chunked went on, the refused request gets an empty
   * chunked body. */
  out = feed_refused("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400,
                     "Content-Length together with Transfer-Encoding");
  assert_non_null(strstr(out, "Transfer-Encoding: chunked\r\n" HTTP_GUARD_HEADER));
  assert_int_equal(strcmp(out + strlen(out) - 9, "\r\n\r\n0\r\n\r\n"), 0);
  feed_refused("POST /a HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
               "Content-Length together with Transfer-Encoding");
  feed_refused("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
               "more than one Transfer-Encoding");
  feed_refused("POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
               "Transfer-Encoding 'gzip, chunked' is not supported");
  feed_refused("POST /a HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400, "Content-Length '12x' is not a number");
  feed_refused("POST /a HTTP/1.1\r\nContent-Length: \r\n\r\n", 400, "Content-Length '' is not a number");
  feed_refused("POST /a HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", 400, "is not a number");
  feed_refused("POST /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "is not a number");
  /* 20 digits cannot be counted down: 413 at once, and the connection closes. */
  feed_refused("POST /a HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 413,
               "Content-Length of 20 digits is over the limit of 100 bytes");
  feed_refused("HEAD /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "two different");
}

static void test_header_block_limits(void **state) {
  (void)state;
  http_guard_head h;
  /* Four headers pass, a fifth is refused. */
  feed_ok(&h, "GET /a HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
  feed_refused("GET /a HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", 431,
               "more than 4 headers (--http-max-headers)");
  /* 200 bytes in all: the line that crosses it is refused. */
  char block[512];
  snprintf(block, sizeof(block), "GET /a HTTP/1.1\r\nA: %0150d\r\nB: %030d\r\n\r\n", 0, 0);
  char *out = feed_refused(block, 431, "over 200 bytes (--http-max-header-bytes)");
  assert_non_null(strstr(out, "A: 000"));
  assert_null(strstr(out, "B: "));
  /* A request line over the limit alone: the refused request gets one. */
  snprintf(block, sizeof(block), "GET /%0250d HTTP/1.1\r\n\r\n", 0);
  out = feed_refused(block, 431, "over 200 bytes");
  assert_int_equal(strncmp(out, "GET / HTTP/1.1\r\n" HTTP_GUARD_HEADER, 16 + strlen(HTTP_GUARD_HEADER)), 0);
  /* A line not complete yet is refused once what came passes the limit. */
  h = (http_guard_head){0};
  char rep[HTTP_GUARD_REPLACE_MAX];
  size_t n;
  assert_int_equal(http_guard_line(&h, "GET /a HTTP/1.1", 15, 17, &limits, rep, &n), HTTP_GUARD_KEEP);
  assert_int_equal(http_guard_partial(&h, 183, &limits, rep, &n), HTTP_GUARD_KEEP);
  assert_int_equal(http_guard_partial(&h, 184, &limits, rep, &n), HTTP_GUARD_REFUSE);
  assert_non_null(strstr(rep, ": 431 close "));
  assert_int_equal(http_guard_partial(&h, SIZE_MAX, &limits, rep, &n), HTTP_GUARD_REFUSE);
  /* A line judged from its first bytes counts whole. */
  h = (http_guard_head){0};
  assert_int_equal(http_guard_line(&h, "GET /a HTTP/1.1", 15, 17, &limits, rep, &n), HTTP_GUARD_KEEP);
  assert_int_equal(http_guard_line(&h, "Cookie: x", 9, 1 << 20, &limits, rep, &n), HTTP_GUARD_REFUSE);
  /* Trailers count toward the limits and frame nothing. */
  h = (http_guard_head){.trailer = true};
  assert_int_equal(http_guard_line(&h, "Content-Length: 9", 17, 19, &limits, rep, &n), HTTP_GUARD_KEEP);
  assert_int_equal(http_guard_line(&h, "", 0, 2, &limits, rep, &n), HTTP_GUARD_END);
  assert_false(h.have_length);
}

static void test_bare_lf_and_empty_first_line(void **state) {
  (void)state;
  http_guard_head h = {0};
  char out[HTTP_GUARD_REPLACE_MAX];
  size_t n;
  /* An empty line before the request line keeps waiting for it. */
  assert_int_equal(http_guard_line(&h, "", 0, 1, &limits, out, &n), HTTP_GUARD_KEEP);
  assert_int_equal(h.lines, 0);
  assert_int_equal(http_guard_line(&h, "POST /a HTTP/1.1", 16, 17, &limits, out, &n), HTTP_GUARD_KEEP);
  assert_int_equal(http_guard_line(&h, "Content-Length: 500", 19, 20, &limits, out, &n), HTTP_GUARD_DROP);
  assert_int_equal(http_guard_line(&h, "", 0, 1, &limits, out, &n), HTTP_GUARD_END);
  assert_true(h.refused);
  assert_non_null(strstr(out, ": 413 keep request body of 500 bytes"));
}

static void test_refusal_header(void **state) {
  (void)state;
  int status;
  bool close;
  const char *message;
  assert_true(http_guard_refusal("431 close too many headers", &status, &close, &message));
  assert_int_equal(status, 431);
  assert_true(close);
  assert_string_equal(message, "too many headers");
  assert_true(http_guard_refusal("413 keep body", &status, &close, &message));
  assert_false(close);
  assert_false(http_guard_refusal("200 close fine", &status, &close, &message));
  assert_false(http_guard_refusal("413 maybe x", &status, &close, &message));
  assert_false(http_guard_refusal("x", &status, &close, &message));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_body_over_the_limit),
      cmocka_unit_test(test_ambiguous_framing_is_refused),
      cmocka_unit_test(test_header_block_limits),
      cmocka_unit_test(test_bare_lf_and_empty_first_line),
      cmocka_unit_test(test_refusal_header),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
