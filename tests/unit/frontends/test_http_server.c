/*
 * The HTTP frontend end to end over real sockets, against the stand-in
 * server of fake_server.h: every endpoint's status and body, inference with
 * JSON and binary tensors, compressed bodies both ways, the size limit (413
 * before the body is read, and for bodies that inflate past it), keep-alive,
 * many connections over several network threads, a client that leaves
 * before its response, and a graceful stop that still delivers the
 * responses in flight.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "fake_server.h"
#include "frontends/http/http_frontend.h"
#include "frontends/http/http_guard.h"

enum { INPUT_LIMIT = 64 * 1024 };

static http_frontend *frontend;
static int port;

static int start(void **state) {
  (void)state;
  http_frontend_options o = {.address = "127.0.0.1", .port = 0, .threads = 2, .max_input_size = INPUT_LIMIT};
  inferd_error *err = http_frontend_start((inferd_server *)&port, &o, &frontend);
  if (err) {
    fprintf(stderr, "%s\n", inferd_error_message(err));
    return -1;
  }
  port = http_frontend_port(frontend);
  return 0;
}

static int stop(void **state) {
  (void)state;
  http_frontend_delete(frontend);
  frontend = NULL;
  return 0;
}

static int connect_client(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

static void send_all(int fd, const void *p, size_t n) {
  while (n) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0) return;
    p = (const char *)p + k;
    n -= (size_t)k;
  }
}

typedef struct http_reply {
  int status;
  char headers[4096];
  unsigned char *body;
  size_t body_len;
} http_reply;

static const char *reply_header(const http_reply *r, const char *name) {
  static _Thread_local char value[256];
  const char *p = r->headers;
  const size_t n = strlen(name);
  while ((p = strstr(p, "\r\n"))) {
    p += 2;
    if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
      const char *v = p + n + 1;
      while (*v == ' ') v++;
      const char *e = strstr(v, "\r\n");
      snprintf(value, sizeof(value), "%.*s", (int)(e - v), v);
      return value;
    }
  }
  return NULL;
}

/* Reads one response (Content-Length framed); status 0 on EOF. */
static void read_reply(int fd, http_reply *r) {
  memset(r, 0, sizeof(*r));
  size_t have = 0;
  char *end = NULL;
  while (!end) {
    ssize_t k = recv(fd, r->headers + have, 1, 0);
    if (k <= 0) return;
    have += (size_t)k;
    r->headers[have] = '\0';
    end = strstr(r->headers, "\r\n\r\n");
    assert_true(have < sizeof(r->headers) - 1);
  }
  sscanf(r->headers, "HTTP/1.%*d %d", &r->status);
  const char *cl = reply_header(r, "Content-Length");
  r->body_len = cl ? (size_t)atol(cl) : 0;
  r->body = malloc(r->body_len + 1);
  size_t got = 0;
  while (got < r->body_len) {
    ssize_t k = recv(fd, r->body + got, r->body_len - got, 0);
    if (k <= 0) break;
    got += (size_t)k;
  }
  r->body[got] = '\0';
}

static void request(int fd, const char *method, const char *path, const char *extra_headers, const void *body,
                    size_t body_len, http_reply *r) {
  char head[1024];
  int n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %zu\r\n%s\r\n", method,
                   path, body_len, extra_headers ? extra_headers : "");
  send_all(fd, head, (size_t)n);
  if (body_len) send_all(fd, body, body_len);
  read_reply(fd, r);
}

static void once(const char *method, const char *path, const char *headers, const char *body, http_reply *r) {
  int fd = connect_client();
  request(fd, method, path, headers, body, body ? strlen(body) : 0, r);
  close(fd);
}

static json_t *reply_json(const http_reply *r) {
  json_error_t e;
  json_t *j = json_loadb((const char *)r->body, r->body_len, 0, &e);
  if (!j) fail_msg("reply is not JSON: %s", r->body);
  return j;
}

static void expect_error(const http_reply *r, int status, const char *needle) {
  if (r->status != status) fail_msg("status %d, want %d: %s", r->status, status, r->body);
  json_t *j = reply_json(r);
  const char *msg = json_string_value(json_object_get(j, "error"));
  assert_non_null(msg);
  if (!strstr(msg, needle)) fail_msg("error '%s' lacks '%s'", msg, needle);
  json_decref(j);
}

static void test_endpoints(void **state) {
  (void)state;
  http_reply r;
  once("GET", "/v2/health/live", NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, 0);
  free(r.body);
  fake_ready = false;
  once("GET", "/v2/health/ready", NULL, NULL, &r);
  assert_int_equal(r.status, 400);
  free(r.body);
  fake_ready = true;
  once("GET", "/v2/health/ready", NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  free(r.body);
  once("GET", "/v2", NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(reply_header(&r, "Content-Type"), "application/json");
  assert_non_null(strstr((char *)r.body, "\"name\":\"inferd\""));
  free(r.body);
  once("GET", "/v2/models/echo", NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  free(r.body);
  once("GET", "/v2/models/echo/versions/1", NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  free(r.body);
  once("GET", "/v2/models/echo/versions/7", NULL, NULL, &r);
  expect_error(&r, 404, "unknown model");
  free(r.body);
  once("GET", "/v2/models/echo/versions/x1/ready", NULL, NULL, &r);
  expect_error(&r, 400, "invalid model version");
  free(r.body);
  once("GET", "/v2/models/echo/ready", NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  free(r.body);
  once("GET", "/v2/models/nope/ready", NULL, NULL, &r);
  assert_int_equal(r.status, 404);
  free(r.body);
  once("GET", "/v2/models/echo/config", NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr((char *)r.body, "max_batch_size"));
  free(r.body);
  once("GET", "/v2/models/stats", NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  free(r.body);
  once("GET", "/v2/models/echo/versions/1/stats", NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  free(r.body);
  once("POST", "/v2/repository/index", NULL, "{\"ready\":true}", &r);
  assert_int_equal(r.status, 200);
  assert_null(strstr((char *)r.body, "other"));
  free(r.body);
  once("POST", "/v2/repository/index", NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr((char *)r.body, "other"));
  free(r.body);
  once("POST", "/v2/repository/models/echo/load", NULL, "{\"parameters\":{\"config\":\"{}\"}}", &r);
  assert_int_equal(r.status, 200);
  free(r.body);
  once("POST", "/v2/repository/models/nope/load", NULL, NULL, &r);
  expect_error(&r, 404, "no such model");
  free(r.body);
  once("POST", "/v2/repository/models/echo/load", NULL, "{\"parameters\":{\"file:1/model.onnx\":\"AAAA\"}}", &r);
  expect_error(&r, 400, "file overrides are not supported");
  free(r.body);
  once("POST", "/v2/repository/models/echo/unload", NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  free(r.body);
  once("GET", "/v2/nothing/here", NULL, NULL, &r);
  expect_error(&r, 404, "no endpoint at GET /v2/nothing/here");
  free(r.body);
  once("GET", "/v2/models/echo/infer", NULL, NULL, &r);
  expect_error(&r, 405, "GET is not allowed");
  free(r.body);
  once("POST", "/v2/health/live", NULL, NULL, &r);
  assert_int_equal(r.status, 405);
  free(r.body);
}

static const char *infer_json =
    "{\"id\":\"abc\",\"inputs\":[{\"name\":\"X\",\"shape\":[2,2],\"datatype\":\"FP32\",\"data\":[1,2.5,-3,0.1]},"
    "{\"name\":\"S\",\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[\"hi\"]}]}";

static void check_echo_json(const http_reply *r) {
  if (r->status != 200) fail_msg("status %d: %s", r->status, r->body);
  json_t *j = reply_json(r);
  assert_string_equal(json_string_value(json_object_get(j, "id")), "abc");
  assert_string_equal(json_string_value(json_object_get(j, "model_name")), "echo");
  json_t *outs = json_object_get(j, "outputs");
  assert_int_equal(json_array_size(outs), 2);
  json_t *x = json_array_get(outs, 0);
  assert_string_equal(json_string_value(json_object_get(x, "name")), "OUT_X");
  json_t *data = json_object_get(x, "data");
  assert_true((float)json_number_value(json_array_get(data, 1)) == 2.5f);
  assert_true((float)json_number_value(json_array_get(data, 3)) == 0.1f);
  json_t *s = json_array_get(outs, 1);
  assert_string_equal(json_string_value(json_array_get(json_object_get(s, "data"), 0)), "hi");
  json_decref(j);
}

static void test_infer_json_and_keep_alive(void **state) {
  (void)state;
  int fd = connect_client();
  http_reply r;
  for (int i = 0; i < 5; i++) {
    request(fd, "POST", "/v2/models/echo/infer", NULL, infer_json, strlen(infer_json), &r);
    check_echo_json(&r);
    free(r.body);
  }
  /* Errors keep the connection usable too. */
  request(fd, "POST", "/v2/models/echo/infer", NULL, "{\"inputs\":[", 11, &r);
  expect_error(&r, 400, "malformed request JSON");
  free(r.body);
  const char *bad = "{\"inputs\":[{\"name\":\"X\",\"shape\":[3],\"datatype\":\"INT8\",\"data\":[1,2,999]}]}";
  request(fd, "POST", "/v2/models/echo/infer", NULL, bad, strlen(bad), &r);
  expect_error(&r, 400, "input 'X': element 2 is out of range for INT8");
  free(r.body);
  request(fd, "POST", "/v2/models/none/infer", NULL, infer_json, strlen(infer_json), &r);
  expect_error(&r, 404, "unknown model");
  free(r.body);
  request(fd, "POST", "/v2/models/echo/infer", NULL, "{\"inputs\":[]}", 13, &r);
  expect_error(&r, 400, "the model needs an input");
  free(r.body);
  request(fd, "POST", "/v2/models/echo/versions/1/infer", NULL, infer_json, strlen(infer_json), &r);
  check_echo_json(&r);
  free(r.body);
  close(fd);
}

static void test_infer_binary(void **state) {
  (void)state;
  const char *json =
      "{\"inputs\":[{\"name\":\"A\",\"shape\":[3],\"datatype\":\"INT32\",\"parameters\":"
      "{\"binary_data_size\":12}},{\"name\":\"B\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,2]}],"
      "\"outputs\":[{\"name\":\"OUT_A\",\"parameters\":{\"binary_data\":true}},{\"name\":\"OUT_B\"}]}";
  const int32_t a[3] = {5, -6, 7};
  const size_t jl = strlen(json);
  unsigned char body[512];
  memcpy(body, json, jl);
  memcpy(body + jl, a, 12);
  char headers[128];
  snprintf(headers, sizeof(headers), "Inference-Header-Content-Length: %zu\r\n", jl);
  int fd = connect_client();
  http_reply r;
  request(fd, "POST", "/v2/models/echo/infer", headers, body, jl + 12, &r);
  if (r.status != 200) fail_msg("status %d: %s", r.status, r.body);
  const char *hl = reply_header(&r, "Inference-Header-Content-Length");
  assert_non_null(hl);
  const size_t json_len = (size_t)atol(hl);
  assert_int_equal(r.body_len, json_len + 12);
  assert_memory_equal(r.body + json_len, a, 12);
  json_error_t e;
  json_t *j = json_loadb((const char *)r.body, json_len, 0, &e);
  assert_non_null(j);
  json_t *oa = json_array_get(json_object_get(j, "outputs"), 0);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(oa, "parameters"), "binary_data_size")), 12);
  json_t *ob = json_array_get(json_object_get(j, "outputs"), 1);
  assert_int_equal(json_array_size(json_object_get(ob, "data")), 2);
  json_decref(j);
  free(r.body);
  /* A header length past the body. */
  request(fd, "POST", "/v2/models/echo/infer", "Inference-Header-Content-Length: 99999\r\n", body, jl + 12, &r);
  expect_error(&r, 400, "is larger than the");
  free(r.body);
  close(fd);
}

static size_t gzip_bytes(const void *in, size_t n, unsigned char *out, size_t cap, int bits) {
  z_stream zs = {0};
  deflateInit2(&zs, 6, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY);
  zs.next_in = (unsigned char *)in;
  zs.avail_in = (uInt)n;
  zs.next_out = out;
  zs.avail_out = (uInt)cap;
  assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
  const size_t len = cap - zs.avail_out;
  deflateEnd(&zs);
  return len;
}

static void test_compression(void **state) {
  (void)state;
  static unsigned char z[1 << 20];
  const size_t zn = gzip_bytes(infer_json, strlen(infer_json), z, sizeof(z), 15 + 16);
  http_reply r;
  int fd = connect_client();
  request(fd, "POST", "/v2/models/echo/infer", "Content-Encoding: gzip\r\nAccept-Encoding: gzip\r\n", z, zn, &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(reply_header(&r, "Content-Encoding"), "gzip");
  static unsigned char plain[1 << 16];
  z_stream zs = {0};
  inflateInit2(&zs, 15 + 16);
  zs.next_in = r.body;
  zs.avail_in = (uInt)r.body_len;
  zs.next_out = plain;
  zs.avail_out = sizeof(plain);
  assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
  http_reply inner = {.status = 200, .body = plain, .body_len = sizeof(plain) - zs.avail_out};
  inflateEnd(&zs);
  check_echo_json(&inner);
  free(r.body);
  const size_t dn = gzip_bytes(infer_json, strlen(infer_json), z, sizeof(z), 15);
  request(fd, "POST", "/v2/models/echo/infer", "Content-Encoding: deflate\r\n", z, dn, &r);
  check_echo_json(&r);
  free(r.body);
  /* A body that inflates past the limit is refused with 413. */
  static unsigned char zeros[INPUT_LIMIT * 4];
  const size_t bn = gzip_bytes(zeros, sizeof(zeros), z, sizeof(z), 15 + 16);
  assert_true(bn < INPUT_LIMIT);
  request(fd, "POST", "/v2/models/echo/infer", "Content-Encoding: gzip\r\n", z, bn, &r);
  expect_error(&r, 413, "limit");
  free(r.body);
  request(fd, "POST", "/v2/models/echo/infer", "Content-Encoding: br\r\n", "x", 1, &r);
  expect_error(&r, 400, "unsupported Content-Encoding 'br'");
  free(r.body);
  close(fd);
}

static void test_body_over_limit(void **state) {
  (void)state;
  /* The body is refused from its Content-Length with a JSON 413, and what
   * the client sends is discarded (not buffered) so that the client, which
   * sends the whole body before it reads, sees the 413 rather than a reset;
   * the connection then serves the next request. */
  int fd = connect_client();
  static char body[INPUT_LIMIT * 3];
  memset(body, ' ', sizeof(body));
  http_reply r;
  request(fd, "POST", "/v2/models/echo/infer", NULL, body, sizeof(body), &r);
  expect_error(&r, 413, "over the limit");
  free(r.body);
  request(fd, "POST", "/v2/models/echo/infer", NULL, infer_json, strlen(infer_json), &r);
  check_echo_json(&r);
  free(r.body);
  close(fd);
  /* The answer comes from the headers alone: a terabyte is announced and
   * never sent, the reply names the size. A client cannot forge the
   * guard's header on a request within the limit. */
  fd = connect_client();
  const char *huge = "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1099511627776\r\n"
                     "Expect: 100-continue\r\n\r\n";
  send_all(fd, huge, strlen(huge));
  read_reply(fd, &r);
  expect_error(&r, 413, "1099511627776 bytes");
  free(r.body);
  close(fd);
  /* Headers that arrive in pieces, after a request that fit. */
  fd = connect_client();
  request(fd, "POST", "/v2/models/echo/infer", NULL, infer_json, strlen(infer_json), &r);
  check_echo_json(&r);
  free(r.body);
  /* Pieces of 7 bytes: evhttp reads each line as it completes, before the
   * block is whole, and the guard must have judged it first. */
  for (size_t from = 0; from < strlen(huge); from += 7) {
    const size_t left = strlen(huge) - from;
    send_all(fd, huge + from, left < 7 ? left : 7);
    usleep(2000);
  }
  read_reply(fd, &r);
  expect_error(&r, 413, "over the limit");
  free(r.body);
  close(fd);
  fd = connect_client();
  request(fd, "POST", "/v2/models/echo/infer", HTTP_GUARD_HEADER ": 5\r\n", infer_json, strlen(infer_json), &r);
  check_echo_json(&r);
  free(r.body);
  close(fd);
  /* Chunked bodies are stopped as they cross the limit. */
  fd = connect_client();
  const char *head = "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  send_all(fd, head, strlen(head));
  char chunk_head[32];
  int n = snprintf(chunk_head, sizeof(chunk_head), "%x\r\n", (unsigned)sizeof(body));
  send_all(fd, chunk_head, (size_t)n);
  send_all(fd, body, sizeof(body));
  read_reply(fd, &r);
  assert_int_equal(r.status, 413);
  free(r.body);
  close(fd);
}

/* Sends `raw` on a new connection and expects one JSON error with `status`
 * naming `needle`, then the connection closed by the server: no second
 * answer to what followed the refused request. */
static void refused_then_closed(const char *raw, size_t len, int status, const char *needle) {
  int fd = connect_client();
  send_all(fd, raw, len);
  http_reply r;
  read_reply(fd, &r);
  expect_error(&r, status, needle);
  const char *conn = reply_header(&r, "Connection");
  if (!conn || strcasecmp(conn, "close")) fail_msg("no 'Connection: close' on the %d", status);
  free(r.body);
  char byte;
  if (recv(fd, &byte, 1, 0) != 0) fail_msg("the connection stayed open after the %d", status);
  close(fd);
}

static void test_ambiguous_framing_is_refused_and_closed(void **state) {
  (void)state;
  /* Two lengths: evhttp took the first and read the rest as a request. */
  const char *two = "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\n"
                    "12345GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
  refused_then_closed(two, strlen(two), 400, "two different Content-Length headers (5 and 40)");
  const char *both = "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
  refused_then_closed(both, strlen(both), 400, "Content-Length together with Transfer-Encoding");
  const char *coding = "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n";
  refused_then_closed(coding, strlen(coding), 501, "Transfer-Encoding 'gzip' is not supported");
  /* 20 digits: once no answer while the body was dropped forever. */
  const char *digits = "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000000000000\r\n\r\n";
  refused_then_closed(digits, strlen(digits), 413, "Content-Length of 21 digits is over the limit");
  /* GET bodies are framed by evhttp too. */
  const char *get = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
  refused_then_closed(get, strlen(get), 400, "two different Content-Length headers (1 and 2)");
  /* The server goes on serving. */
  http_reply r;
  once("POST", "/v2/models/echo/infer", NULL, infer_json, &r);
  check_echo_json(&r);
  free(r.body);
}

static void test_header_limits_are_431(void **state) {
  (void)state;
  /* 101 headers (the default allows 100). */
  static char block[200 * 1024];
  size_t n = (size_t)snprintf(block, sizeof(block), "GET /v2/health/live HTTP/1.1\r\n");
  for (int i = 0; i < 101; i++) n += (size_t)snprintf(block + n, sizeof(block) - n, "X-%d: %d\r\n", i, i);
  n += (size_t)snprintf(block + n, sizeof(block) - n, "\r\n");
  refused_then_closed(block, n, 431, "more than 100 headers (--http-max-headers)");
  /* 100 headers pass. */
  int fd = connect_client();
  n = (size_t)snprintf(block, sizeof(block), "GET /v2/health/live HTTP/1.1\r\n");
  for (int i = 0; i < 99; i++) n += (size_t)snprintf(block + n, sizeof(block) - n, "X-%d: %d\r\n", i, i);
  n += (size_t)snprintf(block + n, sizeof(block) - n, "Host: x\r\n\r\n");
  send_all(fd, block, n);
  http_reply r;
  read_reply(fd, &r);
  assert_int_equal(r.status, 200);
  free(r.body);
  /* A line of 10 KiB (longer than the guard reads at once) is fine, and the
   * guard still frames what follows it. */
  n = (size_t)snprintf(block, sizeof(block), "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nCookie: ");
  memset(block + n, 'c', 10240);
  n += 10240;
  n += (size_t)snprintf(block + n, sizeof(block) - n, "\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
  send_all(fd, block, n);
  read_reply(fd, &r);
  expect_error(&r, 400, "two different Content-Length headers");
  free(r.body);
  close(fd);
  /* Headers over 64 KiB in all, and one line over 64 KiB that never ends:
   * the answer comes as soon as the limit is crossed. */
  n = (size_t)snprintf(block, sizeof(block), "GET /v2/health/live HTTP/1.1\r\n");
  while (n < 70 * 1024) n += (size_t)snprintf(block + n, sizeof(block) - n, "X-Padding: %01000d\r\n", 0);
  n += (size_t)snprintf(block + n, sizeof(block) - n, "\r\n");
  refused_then_closed(block, n, 431, "over 65536 bytes (--http-max-header-bytes)");
  n = (size_t)snprintf(block, sizeof(block), "GET /v2/health/live HTTP/1.1\r\nX-Long: ");
  memset(block + n, 'a', 100 * 1024);
  refused_then_closed(block, n + 100 * 1024, 431, "over 65536 bytes");
  n = (size_t)snprintf(block, sizeof(block), "GET /");
  memset(block + n, 'a', 100 * 1024);
  refused_then_closed(block, n + 100 * 1024, 431, "over 65536 bytes");
}

/* The guard follows chunked bodies (trailers included), so the request
 * after one on the same connection is judged as well. */
static void test_chunked_body_then_next_request(void **state) {
  (void)state;
  int fd = connect_client();
  char head[256];
  int n = snprintf(head, sizeof(head),
                   "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n",
                   strlen(infer_json));
  send_all(fd, head, (size_t)n);
  send_all(fd, infer_json, strlen(infer_json));
  const char *rest = "\r\n0\r\nX-Trailer: 1\r\n\r\n"
                     "POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
  send_all(fd, rest, strlen(rest));
  http_reply r;
  read_reply(fd, &r);
  check_echo_json(&r);
  free(r.body);
  read_reply(fd, &r);
  expect_error(&r, 400, "two different Content-Length headers (3 and 4)");
  free(r.body);
  close(fd);
}

static void test_client_leaves_before_response(void **state) {
  (void)state;
  const int before = atomic_load(&fake_requests_seen);
  for (int i = 0; i < 4; i++) {
    int fd = connect_client();
    char head[256];
    const char *json = "{\"inputs\":[{\"name\":\"X\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}";
    int n = snprintf(head, sizeof(head), "POST /v2/models/slow/infer HTTP/1.1\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(json), json);
    send_all(fd, head, (size_t)n);
    usleep(20000);
    close(fd);
  }
  while (atomic_load(&fake_requests_seen) < before + 4) usleep(10000);
  usleep(100000);
  /* The dropped responses were freed, and the server still answers. */
  assert_int_equal(atomic_load(&fake_live_responses), 0);
  http_reply r;
  once("GET", "/v2/health/live", NULL, NULL, &r);
  assert_int_equal(r.status, 200);
  free(r.body);
}

typedef struct client_job {
  int requests;
  int ok;
} client_job;

static void *client_main(void *arg) {
  client_job *job = arg;
  int fd = connect_client();
  for (int i = 0; i < job->requests; i++) {
    http_reply r;
    request(fd, "POST", "/v2/models/echo/infer", NULL, infer_json, strlen(infer_json), &r);
    job->ok += r.status == 200 && strstr((char *)r.body, "OUT_X") != NULL;
    if (r.status != 200) fprintf(stderr, "status %d body %s\n", r.status, r.body ? (char *)r.body : "");
    free(r.body);
  }
  close(fd);
  return NULL;
}

static void test_many_connections(void **state) {
  (void)state;
  enum { CLIENTS = 16, EACH = 25 };
  pthread_t tids[CLIENTS];
  client_job jobs[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    jobs[i] = (client_job){.requests = EACH};
    pthread_create(&tids[i], NULL, client_main, &jobs[i]);
  }
  for (int i = 0; i < CLIENTS; i++) {
    pthread_join(tids[i], NULL);
    assert_int_equal(jobs[i].ok, EACH);
  }
}

static void *slow_client(void *arg) {
  http_reply *r = arg;
  const char *json = "{\"inputs\":[{\"name\":\"X\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[4]}]}";
  int fd = connect_client();
  request(fd, "POST", "/v2/models/slow/infer", NULL, json, strlen(json), r);
  close(fd);
  return NULL;
}

static void test_graceful_stop_delivers_in_flight(void **state) {
  (void)state;
  http_reply r;
  pthread_t tid;
  pthread_create(&tid, NULL, slow_client, &r);
  usleep(100000);
  http_frontend_stop_listening(frontend);
  usleep(20000);
  /* New connections are refused now. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
    /* The socket is still bound until delete: a queued connect is never served. */
    struct timeval tv = {0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    send_all(fd, "GET /v2 HTTP/1.1\r\n\r\n", 20);
    char c;
    assert_true(recv(fd, &c, 1, 0) <= 0);
  }
  close(fd);
  http_frontend_delete(frontend);
  frontend = NULL;
  pthread_join(tid, NULL);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr((char *)r.body, "OUT_X"));
  free(r.body);
  assert_int_equal(atomic_load(&fake_live_responses), 0);
}

static void test_bind_error_names_address(void **state) {
  (void)state;
  http_frontend *a, *b;
  http_frontend_options o = {.address = "127.0.0.1", .port = 0, .threads = 1};
  assert_null(http_frontend_start(NULL, &o, &a));
  o.port = http_frontend_port(a);
  inferd_error *err = http_frontend_start(NULL, &o, &b);
  assert_non_null(err);
  char want[64];
  snprintf(want, sizeof(want), "127.0.0.1:%d", o.port);
  if (!strstr(inferd_error_message(err), want)) fail_msg("'%s' lacks '%s'", inferd_error_message(err), want);
  inferd_error_delete(err);
  http_frontend_delete(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_endpoints),
      cmocka_unit_test(test_infer_json_and_keep_alive),
      cmocka_unit_test(test_infer_binary),
      cmocka_unit_test(test_compression),
      cmocka_unit_test(test_body_over_limit),
      cmocka_unit_test(test_ambiguous_framing_is_refused_and_closed),
      cmocka_unit_test(test_header_limits_are_431),
      cmocka_unit_test(test_chunked_body_then_next_request),
      cmocka_unit_test(test_client_leaves_before_response),
      cmocka_unit_test(test_many_connections),
      cmocka_unit_test_teardown(test_graceful_stop_delivers_in_flight, NULL),
      cmocka_unit_test_setup_teardown(test_bind_error_names_address, NULL, NULL),
  };
  return cmocka_run_group_tests(tests, start, stop);
}
