/*
 * Inference requests and responses inside the server. A request is built by
 * a frontend through the public API, checked against the model when it is
 * submitted, queued by the model's scheduler, and answered with exactly one
 * response. Requests link into scheduler queues through `next`, so queueing
 * never allocates.
 */
#ifndef INFERD_SERVER_REQUEST_H
#define INFERD_SERVER_REQUEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "inferd.h"
#include "server/shm_registry.h"

typedef struct request_input {
  char *name;
  inferd_datatype datatype;
  int rank;
  int64_t shape[INFERD_MAX_RANK];
  const void *data; /* borrowed until the release callback, or into `region` */
  size_t byte_size;
  shm_region *region;        /* referenced while the request lives; NULL: data is the caller's */
  inferd_memory_kind memory; /* GPU for an input in a CUDA region */
  int memory_id;
} request_input;

typedef struct requested_output {
  char *name;
  int classification_count; /* 0: the tensor itself */
  /* Shared memory the output goes to (referenced while the request lives),
   * the span's address and its size; region NULL: into the response. */
  shm_region *region;
  uint64_t shm_offset, shm_byte_size;
  void *shm_data;
} requested_output;

struct model_version;

struct inferd_request {
  inferd_server *server;
  char *model_name;
  int64_t version; /* as asked; -1 latest */
  char *id;
  uint64_t priority;
  uint64_t timeout_us;
  request_input *inputs;
  int n_inputs;
  size_t cap_inputs;
  requested_output *outputs;
  int n_outputs;
  size_t cap_outputs;
  inferd_request_release_fn release;
  void *release_userp;
  inferd_response_fn respond;
  void *respond_userp;
  inferd_output_alloc_fn output_alloc; /* the caller's output buffers, or NULL */
  inferd_output_release_fn output_release;
  void *output_userp;
  const atomic_bool *cancel; /* the caller's: set once nobody waits for the answer */
  atomic_bool cancel_asked;  /* inferd_request_cancel */
  /* Set when submitted: */
  struct model_version *mv; /* holds a reference while the request lives */
  int batch;                /* items along the batch dimension; 1 when the model does not batch */
  bool gpu_tensors;         /* a tensor is in GPU memory (a CUDA region): see the scheduler's run_batch */
  int priority_level;       /* queue index */
  uint64_t enqueue_ns, deadline_ns;
  uint64_t seq;            /* admission order, for preserve_ordering */
  uint64_t flight_bytes;   /* counted against the server's in-flight bound until answered */
  inferd_response *answer; /* held back until earlier requests are answered */
  inferd_request *next;
};

typedef struct response_output {
  char *name;
  inferd_datatype datatype;
  int rank;
  int64_t shape[INFERD_MAX_RANK];
  void *data; /* owned (or the caller's, see caller_buffer); NULL when the bytes went to shared memory */
  size_t byte_size;
  /* From the request's output allocator: given back to it, not freed. */
  bool caller_buffer;
  inferd_memory_kind memory;
  int memory_id;
  void *buffer_userp;
  char *shm_region; /* owned; the region the bytes were written to, or NULL */
  uint64_t shm_offset;
} response_output;

struct inferd_response {
  inferd_error *error;
  char *id;
  char *model;
  int64_t version;
  response_output *outputs;
  int n_outputs;
  inferd_output_release_fn output_release; /* the request's, for caller_buffer outputs */
  void *output_userp;
};

/* A response for `request` with room for n outputs (filled by the caller). */
inferd_response *response_new(const inferd_request *request, int64_t version, int n_outputs);
/* Answers the request: calls release (inputs no longer read), then respond
 * with the response (ownership passes), then frees the request. */
void request_complete(inferd_request *request, inferd_response *response);
/* A response carrying only `error` (taken) for the request. */
inferd_response *response_for_error(const inferd_request *request, inferd_error *error);

#endif
