/*
 * gRPC message framing; see grpc_frame.h.
 */
#include "frontends/grpc/grpc_frame.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/error.h"
#include "base/mem.h"
#include "frontends/frontend_zlib.h"

const char *grpc_encoding_name(grpc_encoding e) {
  return e == GRPC_ENCODING_GZIP ? "gzip" : e == GRPC_ENCODING_DEFLATE ? "deflate" : "identity";
}

size_t grpc_frame_length(const uint8_t *p) {
  return (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
}

inferd_error *grpc_frame_check_length(const uint8_t *p, size_t max) {
  const size_t len = grpc_frame_length(p);
  return len > max ? err_new(INFERD_ERROR_TOO_LARGE, "received message larger than max (%zu vs. %zu)", len, max)
                   : NULL;
}

inferd_error *grpc_frame_inflate(const uint8_t *data, size_t size, grpc_encoding e, size_t limit, uint8_t **out,
                                 size_t *out_size) {
  void *buf = NULL;
  ERR_TRY(frontend_inflate(data, size, e == GRPC_ENCODING_GZIP ? 16 + MAX_WBITS : MAX_WBITS, limit, "message", &buf,
                           out_size, NULL));
  *out = buf;
  return NULL;
}

bool grpc_frame_take(const uint8_t *p, size_t avail, grpc_encoding encoding, size_t max, size_t *consumed,
                     const uint8_t **msg, size_t *size, uint8_t **owned, inferd_error **error) {
  *owned = NULL;
  *error = NULL;
  if (avail < GRPC_FRAME_PREFIX) return false;
  if ((*error = grpc_frame_check_length(p, max))) return true;
  const size_t len = grpc_frame_length(p);
  if (avail - GRPC_FRAME_PREFIX < len) return false;
  *consumed = GRPC_FRAME_PREFIX + len;
  if (p[0] == 0) {
    *msg = p + GRPC_FRAME_PREFIX;
    *size = len;
    return true;
  }
  if (p[0] != 1) {
    *error = err_new(INFERD_ERROR_INVALID_ARG, "bad gRPC message flag %u", p[0]);
    return true;
  }
  if (encoding == GRPC_ENCODING_IDENTITY || encoding == GRPC_ENCODING_UNKNOWN) {
    *error = err_new(INFERD_ERROR_INVALID_ARG, "a compressed message without a known grpc-encoding");
    return true;
  }
  *error = grpc_frame_inflate(p + GRPC_FRAME_PREFIX, len, encoding, max, owned, size);
  *msg = *owned;
  return true;
}

/* ---- a call's input ---------------------------------------------------------------- */

void grpc_frame_input_compact(grpc_frame_input *in) {
  if (!in->taken) return;
  memmove(in->data, in->data + in->taken, in->len - in->taken);
  in->len -= in->taken;
  in->taken = 0;
}

bool grpc_frame_input_append(grpc_frame_input *in, const uint8_t *data, size_t len) {
  if (len == 0) return true;
  grpc_frame_input_compact(in);
  size_t need;
  if (!mem_add_ok(in->len, len, &need)) return false;
  if (need > in->cap) {
    const size_t most = in->len >= GRPC_FRAME_PREFIX ? GRPC_FRAME_PREFIX + grpc_frame_length(in->data) : SIZE_MAX;
    uint8_t *grown = mem_try_grow(in->data, &in->cap, need, 1, 1024, most);
    if (!grown) return false;
    in->data = grown;
  }
  memcpy(in->data + in->len, data, len);
  in->len = need;
  return true;
}

size_t grpc_frame_input_pending(const grpc_frame_input *in) { return in->len - in->taken; }

bool grpc_frame_input_take(grpc_frame_input *in, grpc_encoding encoding, size_t max, const uint8_t **msg,
                           size_t *size, uint8_t **owned, inferd_error **error) {
  size_t consumed = 0;
  if (!in->data) { /* nothing came yet (and no offset may be added to NULL) */
    *owned = NULL;
    *error = NULL;
    return false;
  }
  if (!grpc_frame_take(in->data + in->taken, in->len - in->taken, encoding, max, &consumed, msg, size, owned, error))
    return false;
  if (!*error) in->taken += consumed;
  return true;
}

inferd_error *grpc_frame_input_take_unary(grpc_frame_input *in, grpc_encoding encoding, size_t max,
                                          const uint8_t **msg, size_t *size, uint8_t **owned) {
  inferd_error *err;
  *owned = NULL;
  const size_t avail = grpc_frame_input_pending(in);
  if (!grpc_frame_input_take(in, encoding, max, msg, size, owned, &err)) {
    if (avail < GRPC_FRAME_PREFIX) return err_new(INFERD_ERROR_INVALID_ARG, "the call carries no request message");
    return err_new(INFERD_ERROR_INVALID_ARG, "the request message is cut short: %zu of its %zu bytes came",
                   avail - GRPC_FRAME_PREFIX, grpc_frame_length(in->data + in->taken));
  }
  if (!err && grpc_frame_input_pending(in)) err = err_new(INFERD_ERROR_INVALID_ARG, "a unary call carries one message");
  if (err) {
    free(*owned);
    *owned = NULL;
  }
  return err;
}

inferd_error *grpc_frame_input_check_unary(const grpc_frame_input *in, grpc_encoding encoding, size_t max) {
  const size_t avail = grpc_frame_input_pending(in);
  if (avail < GRPC_FRAME_PREFIX) return NULL;
  const uint8_t *head = in->data + in->taken;
  inferd_error *err = grpc_frame_check_length(head, max);
  if (err || avail - GRPC_FRAME_PREFIX <= grpc_frame_length(head)) return err;
  /* More than one message came: the answer is what taking it would say. */
  grpc_frame_input whole = *in;
  const uint8_t *msg;
  size_t size;
  uint8_t *owned;
  err = grpc_frame_input_take_unary(&whole, encoding, max, &msg, &size, &owned);
  free(owned);
  return err;
}

void grpc_frame_input_free(grpc_frame_input *in) {
  free(in->data);
  *in = (grpc_frame_input){0};
}
