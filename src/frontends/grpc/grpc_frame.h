/*
 * gRPC message framing: each message on a call's DATA frames is a 5-byte
 * prefix (a compressed flag, then the message's length as a 32-bit
 * big-endian number) and the message, inflated when the flag is set and the
 * call's grpc-encoding names gzip or deflate. Pure functions over bytes, so
 * a fuzzer or a unit test drives them without a connection. A call's input
 * (grpc_frame_input) is buffered here too, so that what the transport
 * (grpc_server.c) does with DATA as it comes, in chunks cut anywhere, is
 * tested the same way.
 */
#ifndef INFERD_FRONTENDS_GRPC_FRAME_H
#define INFERD_FRONTENDS_GRPC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inferd.h"

enum { GRPC_FRAME_PREFIX = 5 };

/* A call's grpc-encoding (unknown: a name we do not decode). */
typedef enum grpc_encoding {
  GRPC_ENCODING_IDENTITY = 0,
  GRPC_ENCODING_GZIP = 1,
  GRPC_ENCODING_DEFLATE = 2,
  GRPC_ENCODING_UNKNOWN = 3,
} grpc_encoding;

const char *grpc_encoding_name(grpc_encoding encoding);

/* The length the prefix at p (GRPC_FRAME_PREFIX bytes) announces. */
size_t grpc_frame_length(const uint8_t *p);
/* TOO_LARGE when the prefix at p announces more than `max` bytes. */
inferd_error *grpc_frame_check_length(const uint8_t *p, size_t max);

/* Takes the message at the head of `avail` bytes at p: false when it is not
 * complete yet; true with *error set when it is bad (over `max` bytes, a
 * flag other than 0 or 1, compressed without a known encoding, or not
 * inflating to at most `max` bytes), else with the message in *msg and
 * *size and the bytes it took in *consumed. *owned is set (free() it) when
 * the message was inflated into a new buffer, which *msg then points at. */
bool grpc_frame_take(const uint8_t *p, size_t avail, grpc_encoding encoding, size_t max, size_t *consumed,
                     const uint8_t **msg, size_t *size, uint8_t **owned, inferd_error **error);

/* Inflates a gzip or zlib ("deflate" in gRPC) message into a new buffer
 * (free() it) of at most `limit` bytes: TOO_LARGE past it, INVALID_ARG
 * for a corrupt or truncated stream, NO_MEMORY when the buffer cannot
 * grow. */
inferd_error *grpc_frame_inflate(const uint8_t *data, size_t size, grpc_encoding encoding, size_t limit,
                                 uint8_t **out, size_t *out_size);

/* A call's input: the DATA received and not yet taken as messages, which
 * are taken off its head. The buffer grows with the bytes that came,
 * doubling, and once the head message's prefix is in, not past that
 * message's end: what a prefix announces (anyone can send one) is never
 * reserved up front. Zero-initialized is empty. */
typedef struct grpc_frame_input {
  uint8_t *data;
  size_t len, cap;
  size_t taken; /* bytes at the front taken as messages, until compacted */
} grpc_frame_input;

/* Appends bytes of DATA (compacting first); false, with the input as it
 * was, when there is no memory for them. */
bool grpc_frame_input_append(grpc_frame_input *in, const uint8_t *data, size_t len);
/* The bytes not taken yet. */
size_t grpc_frame_input_pending(const grpc_frame_input *in);
/* Takes the message at the head (see grpc_frame_take) and moves past it.
 * *msg, when it is not *owned, points into the input until the next
 * append or compact. */
bool grpc_frame_input_take(grpc_frame_input *in, grpc_encoding encoding, size_t max, const uint8_t **msg,
                           size_t *size, uint8_t **owned, inferd_error **error);
/* Moves the bytes not taken to the front. */
void grpc_frame_input_compact(grpc_frame_input *in);

/* A unary call's input, checked as it comes: TOO_LARGE once the prefix
 * announces more than `max` bytes, and once bytes come past the end of
 * the one message, the error grpc_frame_input_take_unary would give for
 * it (so a unary call never holds more than its message and its prefix,
 * and the answer does not depend on where the DATA was cut). */
inferd_error *grpc_frame_input_check_unary(const grpc_frame_input *in, grpc_encoding encoding, size_t max);
/* Takes a unary call's one message once the client has ended its side: an
 * error when the input is not exactly one good message. */
inferd_error *grpc_frame_input_take_unary(grpc_frame_input *in, grpc_encoding encoding, size_t max,
                                          const uint8_t **msg, size_t *size, uint8_t **owned);

void grpc_frame_input_free(grpc_frame_input *in);

#endif
