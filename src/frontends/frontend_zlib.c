/* Bounded inflating for the frontends; see frontend_zlib.h. */
#include "frontends/frontend_zlib.h"

#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

#include "base/error.h"
#include "base/mem.h"

inferd_error *frontend_inflate(const void *data, size_t size, int window_bits, size_t limit, const char *what,
                              void **out, size_t *out_size, bool *data_error) {
  const unsigned char *in = data;
  const bool gzip = window_bits > MAX_WBITS;
  bool not_this_format = false;
  if (!data_error) data_error = &not_this_format;
  *data_error = false;
  if (limit > SIZE_MAX / 2) limit = SIZE_MAX / 2;
  z_stream zs = {0};
  if (inflateInit2(&zs, window_bits) != Z_OK) return err_new(INFERD_ERROR_NO_MEMORY, "cannot start zlib");
  size_t cap = size < limit / 4 ? size * 4 + 1024 : limit + 1;
  if (cap > limit + 1) cap = limit + 1;
  unsigned char *buf = mem_try_alloc(cap ? cap : 1, 1);
  inferd_error *err = NULL;
  size_t produced = 0;
  if (!buf) {
    err = err_new(INFERD_ERROR_NO_MEMORY, "cannot allocate %zu bytes to inflate the %s", cap, what);
    goto done;
  }
  zs.next_in = (unsigned char *)in;
  size_t in_left = size;
  for (;;) {
    if (produced == cap) {
      if (cap > limit) {
        err = err_new(INFERD_ERROR_TOO_LARGE, "the %s %s inflates to more than the %zu-byte limit",
                      gzip ? "gzip" : "deflate", what, limit);
        goto done;
      }
      size_t grown = cap * 2 > limit + 1 || cap * 2 < cap ? limit + 1 : cap * 2;
      unsigned char *b = mem_try_realloc(buf, grown, 1);
      if (!b) {
        err = err_new(INFERD_ERROR_NO_MEMORY, "cannot allocate %zu bytes to inflate the %s", grown, what);
        goto done;
      }
      buf = b;
      cap = grown;
    }
    /* zlib counts in uInt; feed and drain at most 1 GiB per call. */
    const uInt in_now = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
    const size_t room = cap - produced;
    const uInt out_now = room > (1u << 30) ? (1u << 30) : (uInt)room;
    zs.avail_in = in_now;
    zs.next_out = buf + produced;
    zs.avail_out = out_now;
    const int rc = inflate(&zs, Z_NO_FLUSH);
    in_left -= in_now - zs.avail_in;
    produced += out_now - zs.avail_out;
    if (rc == Z_STREAM_END) {
      /* gzip allows several members back to back. */
      if (gzip && in_left > 0) {
        inflateReset(&zs);
        continue;
      }
      if (in_left > 0) {
        err = err_new(INFERD_ERROR_INVALID_ARG, "%zu bytes after the end of the deflate stream", in_left);
        goto done;
      }
      if (produced > limit)
        err = err_new(INFERD_ERROR_TOO_LARGE, "the %s %s inflates to more than the %zu-byte limit",
                      gzip ? "gzip" : "deflate", what, limit);
      break;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && in_left == 0 && zs.avail_out > 0) {
      err = err_new(INFERD_ERROR_INVALID_ARG, "the %s %s is truncated", gzip ? "gzip" : "deflate", what);
      goto done;
    }
    if (rc == Z_BUF_ERROR) continue;
    if (rc == Z_MEM_ERROR) {
      err = err_new(INFERD_ERROR_NO_MEMORY, "zlib ran out of memory");
      goto done;
    }
    *data_error = produced == 0;
    err = err_new(INFERD_ERROR_INVALID_ARG, "the %s %s is corrupt: %s", gzip ? "gzip" : "deflate", what,
                  zs.msg ? zs.msg : "invalid data");
    goto done;
  }
done:
  inflateEnd(&zs);
  if (err) {
    free(buf);
    return err;
  }
  *out = buf;
  *out_size = produced;
  return NULL;
}

