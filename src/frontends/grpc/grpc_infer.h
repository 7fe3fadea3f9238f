/*
 * The ModelInfer messages: a ModelInferRequest decoded into a description
 * the frontend hands to the server API, and a server response encoded as a
 * ModelInferResponse (or a ModelStreamInferResponse for the stream).
 *
 * Inputs come raw (raw_input_contents, one entry per input, used in place)
 * or typed (InferTensorContents, converted into one packed buffer of the
 * tensor's datatype; narrower integers arrive widened to 32 bits, BYTES
 * elements as separate strings). Outputs go raw unless every output asked
 * for typed contents (parameter binary_data false on the output, or
 * binary_data_output false on the request), as tritonclient reads either.
 *
 * Every problem is an INVALID_ARG (or UNSUPPORTED) error naming the input
 * or parameter; the server checks names, shapes and sizes against the model.
 */
#ifndef INFERD_FRONTENDS_GRPC_INFER_H
#define INFERD_FRONTENDS_GRPC_INFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frontends/frontend_tensors.h"
#include "frontends/grpc/grpc_service.pb-c.h"
#include "inferd.h"

/* A decoded input: data into the message (raw) or owned by the decoded
 * request (typed). */
typedef frontend_input grpc_infer_input;

/* A requested output; binary false asks for typed contents. */
typedef frontend_output grpc_infer_output;

typedef struct grpc_infer_decoded {
  Inference__ModelInferRequest *message; /* owned */
  int64_t version;                       /* -1: latest */
  uint64_t priority;
  uint64_t timeout_us;
  bool binary_outputs; /* the request's binary_data_output (default true) */
  grpc_infer_input *inputs;
  int input_count;
  grpc_infer_output *outputs; /* empty: every output */
  int output_count;
  void **owned;
  int owned_count;
  size_t raw_used; /* raw_input_contents entries taken so far (inputs in shared memory have none) */
} grpc_infer_decoded;

/* Parses a model version string: "" is the latest (-1). */
inferd_error *grpc_parse_version(const char *text, int64_t *version);

/* Unpacks and checks a serialized ModelInferRequest. Free *out with
 * grpc_infer_decoded_free whatever the outcome: on error it still holds the
 * message when it could be unpacked, so that a stream's error can carry the
 * request's id. */
inferd_error *grpc_infer_decode(const uint8_t *data, size_t size, grpc_infer_decoded *out);
void grpc_infer_decoded_free(grpc_infer_decoded *d);

/* Makes the server request (inputs borrowed from d until the request's
 * release callback). */
inferd_error *grpc_infer_build_request(inferd_server *server, const grpc_infer_decoded *d, inferd_request **out);

/* Serializes a successful response as a ModelInferResponse, or wrapped in a
 * ModelStreamInferResponse when `stream`. *bytes is malloc'd. */
inferd_error *grpc_infer_encode_response(const inferd_response *response, const grpc_infer_decoded *d, bool stream,
                                         uint8_t **bytes, size_t *size);
/* Serializes a ModelStreamInferResponse carrying an error message, and the
 * failed request's model and id when known (either may be NULL), so that a
 * client matches the error to its request. NULL when out of memory. */
uint8_t *grpc_stream_error_encode(const char *message, const char *model, const char *id, size_t *size);

/* Typed contents to a packed buffer of `datatype` holding `count` elements
 * (BYTES: the length-prefixed form). *buf is malloc'd. */
inferd_error *grpc_contents_to_buffer(const Inference__InferTensorContents *c, inferd_datatype datatype,
                                      size_t count, const char *name, void **buf, size_t *size);
/* A packed buffer into typed contents (arrays malloc'd into *c, which
 * grpc_contents_clear frees). */
inferd_error *grpc_buffer_to_contents(const void *data, size_t size, inferd_datatype datatype, size_t count,
                                      const char *name, Inference__InferTensorContents *c);
void grpc_contents_clear(Inference__InferTensorContents *c);

#endif
