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

#include "frontends/frontend_tensors.h"
#include "inferd.h"

/* A decoded input (see frontends/frontend_tensors.h). */
typedef frontend_input http_infer_input;

/* A requested output: binary is its binary_data parameter, else the
 * request's binary_data_output. */
typedef frontend_output http_infer_output;

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
