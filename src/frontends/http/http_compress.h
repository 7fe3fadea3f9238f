/*
 * gzip and deflate for HTTP bodies (zlib): request bodies sent with
 * Content-Encoding are inflated under the same size limit as plain bodies,
 * so a small compressed bomb cannot become a large allocation, and responses
 * are compressed when Accept-Encoding asks. "deflate" is the zlib format, as
 * RFC 9110 and tritonclient mean it; a raw deflate stream is accepted too.
 */
#ifndef INFERD_FRONTENDS_HTTP_COMPRESS_H
#define INFERD_FRONTENDS_HTTP_COMPRESS_H

#include <event2/buffer.h>
#include <stdbool.h>
#include <stddef.h>

#include "inferd.h"

typedef enum http_encoding {
  HTTP_ENCODING_IDENTITY = 0,
  HTTP_ENCODING_GZIP,
  HTTP_ENCODING_DEFLATE,
} http_encoding;

/* A Content-Encoding value; NULL or "identity" is identity. False for an
 * encoding we cannot decode. */
bool http_encoding_from_header(const char *value, http_encoding *out);
/* The response encoding for an Accept-Encoding value: gzip when acceptable,
 * else deflate, else identity (q=0 excludes a coding). */
http_encoding http_encoding_accepted(const char *accept_encoding);
const char *http_encoding_name(http_encoding encoding);

/* Inflates `size` bytes into a new buffer (free() it). More than `limit`
 * bytes of output is a TOO_LARGE error; a corrupt or truncated stream is
 * INVALID_ARG. */
inferd_error *http_inflate(const void *data, size_t size, http_encoding encoding, size_t limit, void **out,
                           size_t *out_size);

/* Compresses everything in `in` (left as it is) and appends it to `out`. */
inferd_error *http_deflate(struct evbuffer *in, http_encoding encoding, struct evbuffer *out);

#endif
