/*
 * zlib for the frontends: inflating what clients send (an HTTP body with
 * Content-Encoding, a compressed gRPC message) under a size limit, so that
 * a small compressed bomb cannot become a large allocation.
 */
#ifndef INFERD_FRONTENDS_FRONTEND_ZLIB_H
#define INFERD_FRONTENDS_FRONTEND_ZLIB_H

#include <stdbool.h>
#include <stddef.h>

#include "inferd.h"

/* Inflates `size` bytes into a new buffer (free() it) of at most `limit`
 * bytes. window_bits as zlib's inflateInit2 takes them: 15 the zlib format,
 * 31 gzip (members back to back are one stream), -15 raw deflate. More than
 * `limit` bytes is TOO_LARGE; a corrupt or truncated stream, or bytes after
 * its end, INVALID_ARG; a buffer that cannot grow NO_MEMORY. `what` names
 * the payload in the messages ("body", "message"). *data_error (may be
 * NULL) tells a stream that is not of this format at all from a damaged
 * one, so the caller may try another format. */
inferd_error *frontend_inflate(const void *data, size_t size, int window_bits, size_t limit, const char *what,
                              void **out, size_t *out_size, bool *data_error);

#endif
