/*
 * Decoding of a KServe v2 inference request body (JSON, or JSON followed by
 * binary tensors under Triton's binary tensor data extension) into a plain
 * description the frontend then hands to the server API.
 *
 * Every problem is an INVALID_ARG error that names it: which input, what was
 * expected and what came. Nothing here knows the model; the server checks
 * names, shapes and datatypes against it.
 */
#ifndef INFERD_FRONTENDS_HTTP_INFER_REQUEST_H
#define INFERD_FRONTENDS_HTTP_INFER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inferd.h"

typedef struct http_infer_input {
  const char *name; /* valid while the decoded request lives */
  inferd_datatype datatype;
  int rank;
  int64_t shape[INFERD_MAX_RANK];
  const void *data; /* into the body (binary inputs) or owned by the request */
  size_t byte_size;
} http_infer_input;

typedef struct http_infer_output {
  const char *name;
  bool binary;        /* its binary_data parameter, else the request's binary_data_output */
  int classification; /* top-k classes asked for; 0 for the tensor itself */
} http_infer_output;

typedef struct http_infer_request {
  const char *id; /* NULL when absent */
  uint64_t priority;
  uint64_t timeout_us;
  bool binary_data_output;
  http_infer_input *inputs;
  int input_count;
  http_infer_output *outputs; /* empty: all outputs, each binary as binary_data_output says */
  int output_count;
  /* private */
  void *root;   /* the jansson envelope, owning the strings */
  void **owned; /* buffers to free */
  int owned_count;
} http_infer_request;

/* Decodes `body` (size bytes). header_length is the value of the
 * Inference-Header-Content-Length header, or NULL. Binary inputs point into
 * body, which must outlive the decoded request; on error nothing is left
 * allocated. */
inferd_error *http_infer_request_decode(const void *body, size_t size, const char *header_length,
                                        http_infer_request *out);
void http_infer_request_free(http_infer_request *request);

/* Parses a non-negative decimal header value (digits only). */
bool http_parse_size(const char *text, size_t *value);

#endif
