/*
 * A gRPC call's input as the transport buffers it (grpc_frame_input, as
 * grpc_server.c's on_data drives it): the bytes of a call's DATA, cut into
 * chunks at points the input chooses, appended one chunk at a time; a
 * stream takes every complete message after each chunk, a unary call is
 * checked after each chunk and takes its one message at the end.
 *
 * Checks: the messages and the error that come out are the same as when
 * the whole input comes in one chunk; no message is over the limit; a
 * stream holds less than one prefix and one message of the limit between
 * chunks, a unary call no more than its prefix and message; the buffer
 * never grows past twice the bytes held (a prefix's announced length is
 * never reserved); nothing leaks (LeakSanitizer).
 *
 * Input: byte 0 is the settings (bits 0-1: the grpc-encoding; bits 2-3:
 * the message limit; bit 4: a unary call, else a stream); byte 1 the
 * number of cuts (low 4 bits), followed by that many 2-byte cut points
 * (little-endian, taken modulo the payload's length plus one, in any
 * order, equal ones making empty chunks). The rest is the call's DATA.
 */
#include "base/error.h"
#include "frontends/grpc/grpc_frame.h"
#include "fuzz/fuzz_util.h"

enum { MAX_CUTS = 15 };

/* What a call's input gave: every message taken (each as a 4-byte length
 * and its bytes, in order), then the error that ended it, if one did, and
 * the bytes left untaken. */
typedef struct outcome {
  uint8_t *messages;
  size_t messages_len, messages_cap;
  int error_code; /* -1: none */
  char *error_message;
  size_t left;
} outcome;

static void record_message(outcome *o, const uint8_t *msg, size_t size) {
  const size_t need = o->messages_len + 4 + size;
  if (need > o->messages_cap) {
    o->messages_cap = need * 2;
    o->messages = realloc(o->messages, o->messages_cap);
    FUZZ_CHECK(o->messages != NULL);
  }
  uint8_t *p = o->messages + o->messages_len;
  p[0] = (uint8_t)size;
  p[1] = (uint8_t)(size >> 8);
  p[2] = (uint8_t)(size >> 16);
  p[3] = (uint8_t)(size >> 24);
  if (size) memcpy(p + 4, msg, size);
  o->messages_len = need;
}

static void record_error(outcome *o, inferd_error *err) {
  o->error_code = (int)inferd_error_code_of(err);
  const char *m = inferd_error_message(err);
  o->error_message = fuzz_strndup((const uint8_t *)m, strlen(m));
  inferd_error_delete(err);
}

typedef struct call {
  grpc_encoding encoding;
  size_t max;
  bool unary;
} call;

/* The buffer holds no more than twice the most bytes it has held (1 KiB
 * at first), whatever a prefix announced. */
static void check_growth(const grpc_frame_input *in, size_t *most_held) {
  if (in->len > *most_held) *most_held = in->len;
  FUZZ_CHECK(in->cap <= 1024 || in->cap <= 2 * *most_held);
  FUZZ_CHECK(in->len <= in->cap && in->taken <= in->len);
}

/* Takes every complete message of a stream's input; false once an error
 * ended the call. */
static bool take_stream(const call *c, grpc_frame_input *in, outcome *o) {
  for (;;) {
    const uint8_t *msg = NULL;
    size_t size = 0;
    uint8_t *owned;
    inferd_error *err;
    const size_t before = grpc_frame_input_pending(in);
    if (!grpc_frame_input_take(in, c->encoding, c->max, &msg, &size, &owned, &err)) {
      FUZZ_CHECK(owned == NULL && err == NULL && grpc_frame_input_pending(in) == before);
      break;
    }
    if (err) {
      FUZZ_CHECK(owned == NULL);
      record_error(o, err);
      return false;
    }
    FUZZ_CHECK(size <= c->max && msg != NULL);
    FUZZ_CHECK(grpc_frame_input_pending(in) + GRPC_FRAME_PREFIX <= before);
    if (!owned) FUZZ_CHECK(msg >= in->data && msg + size <= in->data + in->len);
    fuzz_touch(msg, size);
    record_message(o, msg, size);
    free(owned);
  }
  grpc_frame_input_compact(in);
  FUZZ_CHECK(in->taken == 0 && in->len < GRPC_FRAME_PREFIX + c->max);
  return true;
}

/* Feeds the payload to a call in the chunks that `cuts` (sorted offsets)
 * make, as on_data gets them, then ends the client's side. */
static void run_call(const call *c, const uint8_t *payload, size_t size, const size_t *cuts, int ncuts, outcome *o) {
  *o = (outcome){.error_code = -1};
  grpc_frame_input in = {0};
  size_t most_held = 0, start = 0;
  bool open = true;
  for (int i = 0; i <= ncuts && open; i++) {
    const size_t end = i < ncuts ? cuts[i] : size;
    FUZZ_CHECK(grpc_frame_input_append(&in, payload + start, end - start));
    check_growth(&in, &most_held);
    start = end;
    if (!c->unary) {
      open = take_stream(c, &in, o);
      continue;
    }
    inferd_error *err = grpc_frame_input_check_unary(&in, c->encoding, c->max);
    if (err) {
      record_error(o, err);
      open = false;
    } else if (grpc_frame_input_pending(&in) >= GRPC_FRAME_PREFIX) {
      FUZZ_CHECK(grpc_frame_input_pending(&in) <= GRPC_FRAME_PREFIX + grpc_frame_length(in.data + in.taken));
      FUZZ_CHECK(grpc_frame_input_pending(&in) <= GRPC_FRAME_PREFIX + c->max);
    }
  }
  if (open && c->unary) {
    const uint8_t *msg = NULL;
    size_t msg_size = 0;
    uint8_t *owned;
    inferd_error *err = grpc_frame_input_take_unary(&in, c->encoding, c->max, &msg, &msg_size, &owned);
    if (err) {
      FUZZ_CHECK(owned == NULL);
      record_error(o, err);
    } else {
      FUZZ_CHECK(msg_size <= c->max && grpc_frame_input_pending(&in) == 0);
      record_message(o, msg, msg_size);
      free(owned);
    }
  }
  o->left = grpc_frame_input_pending(&in);
  grpc_frame_input_free(&in);
  FUZZ_CHECK(in.data == NULL && in.len == 0 && in.cap == 0);
}

static void outcome_free(outcome *o) {
  free(o->messages);
  free(o->error_message);
}

static int compare_offsets(const void *a, const void *b) {
  const size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t limits[] = {0, 16, 4096, 1 << 20};
  if (size < 2) return 0;
  const call c = {
      .encoding = (grpc_encoding)(data[0] & 3),
      .max = limits[(data[0] >> 2) & 3],
      .unary = data[0] & 16,
  };
  int ncuts = data[1] & MAX_CUTS;
  data += 2;
  size -= 2;
  if (size < 2 * (size_t)ncuts) ncuts = (int)(size / 2);
  size_t cuts[MAX_CUTS];
  const uint8_t *payload = data + 2 * ncuts;
  const size_t payload_size = size - 2 * (size_t)ncuts;
  for (int i = 0; i < ncuts; i++) cuts[i] = (data[2 * i] | (size_t)data[2 * i + 1] << 8) % (payload_size + 1);
  qsort(cuts, (size_t)ncuts, sizeof(cuts[0]), compare_offsets);

  outcome whole, chunked;
  run_call(&c, payload, payload_size, NULL, 0, &whole);
  run_call(&c, payload, payload_size, cuts, ncuts, &chunked);
  FUZZ_CHECK(whole.messages_len == chunked.messages_len);
  FUZZ_CHECK(whole.messages_len == 0 || memcmp(whole.messages, chunked.messages, whole.messages_len) == 0);
  FUZZ_CHECK(whole.error_code == chunked.error_code);
  FUZZ_CHECK(!whole.error_message == !chunked.error_message);
  FUZZ_CHECK(!whole.error_message || strcmp(whole.error_message, chunked.error_message) == 0);
  /* Bytes left untaken: the same once nothing ended the call early. */
  if (whole.error_code < 0) FUZZ_CHECK(whole.left == chunked.left);
  outcome_free(&whole);
  outcome_free(&chunked);
  return 0;
}
