/* gzip/deflate bodies; see http_compress.h. */
#include "frontends/http/http_compress.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "base/error.h"
#include "base/mem.h"
#include "frontends/frontend_zlib.h"

/* Level 1: responses are compressed on the network thread, where speed
 * matters more than the last few percent of size. */
enum { DEFLATE_LEVEL = 1, OUT_CHUNK = 64 * 1024 };

const char *http_encoding_name(http_encoding e) {
  switch (e) {
    case HTTP_ENCODING_GZIP:
      return "gzip";
    case HTTP_ENCODING_DEFLATE:
      return "deflate";
    default:
      return "identity";
  }
}

static bool token_is(const char *p, size_t n, const char *word) {
  return n == strlen(word) && strncasecmp(p, word, n) == 0;
}

bool http_encoding_from_header(const char *value, http_encoding *out) {
  *out = HTTP_ENCODING_IDENTITY;
  if (!value) return true;
  while (*value == ' ' || *value == '\t') value++;
  size_t n = strlen(value);
  while (n && (value[n - 1] == ' ' || value[n - 1] == '\t')) n--;
  if (n == 0 || token_is(value, n, "identity")) return true;
  if (token_is(value, n, "gzip") || token_is(value, n, "x-gzip")) {
    *out = HTTP_ENCODING_GZIP;
    return true;
  }
  if (token_is(value, n, "deflate")) {
    *out = HTTP_ENCODING_DEFLATE;
    return true;
  }
  return false;
}

http_encoding http_encoding_accepted(const char *value) {
  bool gzip = false, deflate = false;
  if (!value) return HTTP_ENCODING_IDENTITY;
  const char *p = value;
  while (*p) {
    /* One element: coding [; q=value] up to the next comma. */
    const char *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    const char *c = p;
    while (c < end && (*c == ' ' || *c == '\t')) c++;
    const char *ce = c;
    while (ce < end && *ce != ';' && *ce != ' ' && *ce != '\t') ce++;
    bool acceptable = true;
    const char *q = memchr(ce, ';', (size_t)(end - ce));
    if (q) {
      const char *qv = strstr(q, "q=");
      if (qv && qv < end && strtod(qv + 2, NULL) <= 0.0) acceptable = false;
    }
    const size_t n = (size_t)(ce - c);
    if (token_is(c, n, "gzip") || token_is(c, n, "x-gzip")) gzip = acceptable;
    if (token_is(c, n, "deflate")) deflate = acceptable;
    if (token_is(c, n, "*") && acceptable) gzip = true;
    p = *end ? end + 1 : end;
  }
  return gzip ? HTTP_ENCODING_GZIP : deflate ? HTTP_ENCODING_DEFLATE : HTTP_ENCODING_IDENTITY;
}

inferd_error *http_inflate(const void *data, size_t size, http_encoding encoding, size_t limit, void **out,
                           size_t *out_size) {
  *out = NULL;
  *out_size = 0;
  bool data_error;
  if (encoding == HTTP_ENCODING_GZIP) return frontend_inflate(data, size, 15 + 16, limit, "body", out, out_size, NULL);
  inferd_error *err = frontend_inflate(data, size, 15, limit, "body", out, out_size, &data_error);
  if (err && data_error) {
    /* Not a zlib stream: some clients send raw deflate. */
    inferd_error *raw = frontend_inflate(data, size, -15, limit, "body", out, out_size, NULL);
    if (!raw) {
      inferd_error_delete(err);
      return NULL;
    }
    inferd_error_delete(raw);
  }
  return err;
}

inferd_error *http_deflate(struct evbuffer *in, http_encoding encoding, struct evbuffer *out) {
  z_stream zs = {0};
  const int bits = encoding == HTTP_ENCODING_GZIP ? 15 + 16 : 15;
  if (deflateInit2(&zs, DEFLATE_LEVEL, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return err_new(INFERD_ERROR_NO_MEMORY, "cannot start zlib");
  inferd_error *err = NULL;
  const int n_vec = evbuffer_peek(in, -1, NULL, NULL, 0);
  struct evbuffer_iovec *vec = mem_try_alloc(n_vec > 0 ? (size_t)n_vec : 1, sizeof(*vec));
  if (!vec) {
    deflateEnd(&zs);
    return err_new(INFERD_ERROR_NO_MEMORY, "cannot compress the response");
  }
  evbuffer_peek(in, -1, NULL, vec, n_vec);
  for (int i = 0; i <= n_vec && !err; i++) {
    const bool last = i == n_vec;
    const unsigned char *p = last ? NULL : vec[i].iov_base;
    size_t left = last ? 0 : vec[i].iov_len;
    int rc;
    do {
      const uInt now = left > (1u << 30) ? (1u << 30) : (uInt)left;
      zs.next_in = (unsigned char *)p;
      zs.avail_in = now;
      struct evbuffer_iovec space;
      if (evbuffer_reserve_space(out, OUT_CHUNK, &space, 1) < 1) {
        err = err_new(INFERD_ERROR_NO_MEMORY, "cannot compress the response");
        break;
      }
      zs.next_out = space.iov_base;
      zs.avail_out = (uInt)(space.iov_len > OUT_CHUNK ? OUT_CHUNK : space.iov_len);
      const uInt out_before = zs.avail_out;
      rc = deflate(&zs, last && now == left ? Z_FINISH : Z_NO_FLUSH);
      space.iov_len = out_before - zs.avail_out;
      evbuffer_commit_space(out, &space, 1);
      const size_t used = now - zs.avail_in;
      if (used) p += used;
      left -= used;
      if (rc == Z_STREAM_ERROR) {
        err = err_new(INFERD_ERROR_INTERNAL, "zlib deflate failed");
        break;
      }
    } while (last ? rc != Z_STREAM_END : (left > 0 || zs.avail_out == 0));
  }
  free(vec);
  deflateEnd(&zs);
  return err;
}
