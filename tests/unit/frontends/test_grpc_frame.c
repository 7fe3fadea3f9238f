/*
 * gRPC message framing and a call's input buffer (grpc_frame.h): messages
 * of a stream cut across chunks anywhere, several in one chunk; a prefix
 * announcing 2 GiB reserves nothing; a unary call refused as soon as bytes
 * come past its one message (before, they were all held until the client
 * ended its side: fuzz_grpc_frame found it), with the error taking the
 * message at the end would give.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/grpc/grpc_frame.h"

/* Writes msg framed (uncompressed) at out; returns the bytes written. */
static size_t frame(uint8_t *out, const char *msg) {
  const size_t n = strlen(msg);
  out[0] = 0;
  out[1] = (uint8_t)(n >> 24);
  out[2] = (uint8_t)(n >> 16);
  out[3] = (uint8_t)(n >> 8);
  out[4] = (uint8_t)n;
  memcpy(out + 5, msg, n);
  return 5 + n;
}

/* Takes every complete message into `got` (joined by '|'); returns how many. */
static int take_all(grpc_frame_input *in, char *got, size_t cap) {
  int count = 0;
  const uint8_t *msg;
  size_t size;
  uint8_t *owned;
  inferd_error *err;
  while (grpc_frame_input_take(in, GRPC_ENCODING_IDENTITY, 1024, &msg, &size, &owned, &err)) {
    assert_null(err);
    assert_null(owned);
    const size_t used = strlen(got);
    assert_true(used + size + 2 <= cap);
    memcpy(got + used, msg, size);
    got[used + size] = '|';
    got[used + size + 1] = '\0';
    count++;
  }
  grpc_frame_input_compact(in);
  return count;
}

static void test_stream_cut_anywhere(void **state) {
  (void)state;
  uint8_t wire[64];
  size_t n = frame(wire, "alpha");
  n += frame(wire + n, "");
  n += frame(wire + n, "gamma ray");
  /* Every way of cutting the bytes in three gives the same messages. */
  for (size_t a = 0; a <= n; a++) {
    for (size_t b = a; b <= n; b++) {
      grpc_frame_input in = {0};
      char got[64] = "";
      int count = 0;
      const size_t cuts[] = {0, a, b, n};
      for (int i = 0; i < 3; i++) {
        assert_true(grpc_frame_input_append(&in, wire + cuts[i], cuts[i + 1] - cuts[i]));
        count += take_all(&in, got, sizeof(got));
      }
      assert_int_equal(count, 3);
      assert_string_equal(got, "alpha||gamma ray|");
      assert_int_equal(grpc_frame_input_pending(&in), 0);
      grpc_frame_input_free(&in);
    }
  }
}

static void test_announced_length_is_not_reserved(void **state) {
  (void)state;
  const uint8_t prefix[] = {0, 0x80, 0, 0, 0}; /* 2 GiB */
  grpc_frame_input in = {0};
  assert_true(grpc_frame_input_append(&in, prefix, sizeof(prefix)));
  const uint8_t some[100] = {0};
  assert_true(grpc_frame_input_append(&in, some, sizeof(some)));
  assert_true(in.cap <= 1024);
  const uint8_t *msg;
  size_t size;
  uint8_t *owned;
  inferd_error *err;
  /* Over the limit: refused from the prefix alone. */
  assert_true(grpc_frame_input_take(&in, GRPC_ENCODING_IDENTITY, 1 << 20, &msg, &size, &owned, &err));
  assert_non_null(err);
  assert_int_equal(inferd_error_code_of(err), INFERD_ERROR_TOO_LARGE);
  inferd_error_delete(err);
  err = grpc_frame_input_check_unary(&in, GRPC_ENCODING_IDENTITY, 1 << 20);
  assert_non_null(err);
  assert_int_equal(inferd_error_code_of(err), INFERD_ERROR_TOO_LARGE);
  inferd_error_delete(err);
  grpc_frame_input_free(&in);
}

static void test_unary_refuses_bytes_past_its_message(void **state) {
  (void)state;
  uint8_t wire[32];
  size_t n = frame(wire, "one");
  n += frame(wire + n, "two");
  grpc_frame_input in = {0};
  /* The whole first message and its prefix: fine so far. */
  assert_true(grpc_frame_input_append(&in, wire, 8));
  assert_null(grpc_frame_input_check_unary(&in, GRPC_ENCODING_IDENTITY, 1024));
  /* One byte more: refused at once, as taking the message would. */
  assert_true(grpc_frame_input_append(&in, wire + 8, 1));
  inferd_error *err = grpc_frame_input_check_unary(&in, GRPC_ENCODING_IDENTITY, 1024);
  assert_non_null(err);
  assert_int_equal(inferd_error_code_of(err), INFERD_ERROR_INVALID_ARG);
  assert_string_equal(inferd_error_message(err), "a unary call carries one message");
  inferd_error_delete(err);
  grpc_frame_input_free(&in);

  /* A bad first message is named before the extra bytes. */
  wire[0] = 2;
  assert_true(grpc_frame_input_append(&in, wire, n));
  err = grpc_frame_input_check_unary(&in, GRPC_ENCODING_IDENTITY, 1024);
  assert_non_null(err);
  assert_string_equal(inferd_error_message(err), "bad gRPC message flag 2");
  inferd_error_delete(err);
  grpc_frame_input_free(&in);
}

static void test_unary_take(void **state) {
  (void)state;
  uint8_t wire[32];
  const size_t n = frame(wire, "hello");
  const uint8_t *msg;
  size_t size;
  uint8_t *owned;
  grpc_frame_input in = {0};
  inferd_error *err = grpc_frame_input_take_unary(&in, GRPC_ENCODING_IDENTITY, 1024, &msg, &size, &owned);
  assert_non_null(err);
  assert_string_equal(inferd_error_message(err), "the call carries no request message");
  inferd_error_delete(err);

  assert_true(grpc_frame_input_append(&in, wire, n - 2));
  err = grpc_frame_input_take_unary(&in, GRPC_ENCODING_IDENTITY, 1024, &msg, &size, &owned);
  assert_non_null(err);
  assert_string_equal(inferd_error_message(err), "the request message is cut short: 3 of its 5 bytes came");
  inferd_error_delete(err);

  assert_true(grpc_frame_input_append(&in, wire + n - 2, 2));
  assert_null(grpc_frame_input_check_unary(&in, GRPC_ENCODING_IDENTITY, 1024));
  assert_null(grpc_frame_input_take_unary(&in, GRPC_ENCODING_IDENTITY, 1024, &msg, &size, &owned));
  assert_null(owned);
  assert_int_equal(size, 5);
  assert_memory_equal(msg, "hello", 5);
  grpc_frame_input_free(&in);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stream_cut_anywhere),
      cmocka_unit_test(test_announced_length_is_not_reserved),
      cmocka_unit_test(test_unary_refuses_bytes_past_its_message),
      cmocka_unit_test(test_unary_take),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
