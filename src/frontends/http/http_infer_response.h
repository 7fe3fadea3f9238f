/*
 * Encoding of an inference response: the KServe v2 JSON
 *   {"model_name", "model_version", "id", "outputs": [{"name", "datatype",
 *    "shape", "data" | "parameters": {"binary_data_size": n}}]}
 * followed, under the binary tensor data extension, by the raw bytes of
 * every output sent as binary, in output order.
 */
#ifndef INFERD_FRONTENDS_HTTP_INFER_RESPONSE_H
#define INFERD_FRONTENDS_HTTP_INFER_RESPONSE_H

#include <event2/buffer.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inferd.h"

typedef struct http_output_view {
  const char *name;
  inferd_datatype datatype;
  const int64_t *shape;
  int rank;
  const void *data;
  size_t byte_size;
  bool binary; /* send as binary data after the JSON */
  /* Written to this shared-memory region (byte_size bytes at shm_offset):
   * the JSON carries the shared_memory_* parameters and no data. */
  const char *shm_region;
  uint64_t shm_offset;
} http_output_view;

/* Appends the response to `out`: the JSON, then binary outputs. Binary
 * bytes are added by reference, not copied: `cleanup(data, size, arg)`
 * runs once for each referenced output when `out` no longer needs it (on
 * the thread that drains or frees `out`); *references says how many were
 * made. *json_length is the JSON's length (the value of
 * Inference-Header-Content-Length when any output is binary). On error `out`
 * may hold part of the response and must be discarded; *references still
 * counts the references made, whose cleanups run when it is freed. */
inferd_error *http_infer_response_encode(const char *model, int64_t version, const char *id,
                                         const http_output_view *outputs, int count, struct evbuffer *out,
                                         evbuffer_ref_cleanup_cb cleanup, void *arg, size_t *json_length,
                                         int *references);

/* The JSON text of an error: {"error": "<message>"}. malloc'd; NULL only
 * when memory is exhausted. */
char *http_error_json(const char *message, size_t *len);

#endif
