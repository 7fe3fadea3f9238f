/*
 * What the HTTP and gRPC frontends share between decoding a request and
 * handing it to the server: a decoded input tensor (a BYTES tensor's layout
 * is checked with bytes_tensor_read), a shape printed for error messages, and the
 * building of the server request from the decoded parts. Only the public
 * API is used here, as in the frontends themselves.
 */
#ifndef INFERD_FRONTENDS_FRONTEND_TENSORS_H
#define INFERD_FRONTENDS_FRONTEND_TENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inferd.h"

typedef struct frontend_input {
  const char *name; /* valid while the decoded request lives */
  inferd_datatype datatype;
  int rank;
  int64_t shape[INFERD_MAX_RANK];
  const void *data; /* into the request body, or owned by the decoded request */
  size_t byte_size;
  /* Parameter shared_memory_region: the bytes are in that region instead,
   * shm_byte_size of them at shm_offset (data is NULL). */
  const char *shm_region;
  uint64_t shm_offset, shm_byte_size;
} frontend_input;

typedef struct frontend_output {
  const char *name;   /* valid while the decoded request lives */
  bool binary;        /* HTTP: binary data after the JSON; gRPC: raw rather than typed contents */
  int classification; /* top-k classes asked for; 0 for the tensor itself */
  const char *shm_region; /* write the output into this region (binary is then moot) */
  uint64_t shm_offset, shm_byte_size;
} frontend_output;

/* Adds p (malloc'd) to a list of buffers to free with the decoded request;
 * false when out of memory (p is then the caller's). */
bool frontend_keep_owned(void ***owned, int *count, void *p);

/* A new server request for model/version with the id (NULL or "" for none),
 * priority and timeout (0 for the model's defaults), the inputs (borrowed
 * until the request's release callback) and the requested outputs (none:
 * every output). */
inferd_error *frontend_request_new(inferd_server *server, const char *model, int64_t version, const char *id,
                                   uint64_t priority, uint64_t timeout_us, const frontend_input *inputs,
                                   int input_count, const frontend_output *outputs, int output_count,
                                   inferd_request **out);

#endif
