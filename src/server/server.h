/*
 * The server object: the model table and the request path's bookkeeping.
 * Model entries are created by the repository code (repository.c) and looked
 * up here for every request under the table lock, which is held only to
 * find and retain a version.
 */
#ifndef INFERD_SERVER_SERVER_H
#define INFERD_SERVER_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "inferd.h"
#include "server/gpus.h"
#include "server/model.h"
#include "server/shm_registry.h"

typedef enum model_state {
  MODEL_STATE_UNKNOWN = 0, /* in the repository, never loaded */
  MODEL_STATE_LOADING,
  MODEL_STATE_READY,
  MODEL_STATE_UNLOADING,
  MODEL_STATE_UNAVAILABLE, /* unloaded, or failed to load (reason says why) */
} model_state;

typedef struct model_entry {
  char *name;
  model_state state;
  char *reason;             /* why UNAVAILABLE */
  bool failed;              /* UNAVAILABLE because its last load failed (not unloaded) */
  model_version **versions; /* served versions, ascending by number */
  int n_versions;
  char *config_json;  /* the completed configuration, as /config returns it */
  char *platform;
  int max_batch_size;
  long long snapshot; /* repository poll: a digest of the model folder's files */
} model_entry;

struct inferd_server {
  char *repository;
  inferd_model_control_mode control_mode;
  bool strict_config;
  bool strict_readiness; /* ready only while no model is unavailable or loading */
  char *id;
  int threads_per_instance;
  int poll_secs;
  pthread_mutex_t lock; /* guards models */
  model_entry **models;
  int n_models;
  size_t cap_models;
  bool startup_complete;
  atomic_bool accepting;
  /* Requests submitted and not yet answered, for drain, and the bytes of
   * tensors they hold (see request_flight_bytes) against their bound
   * (0: none); in_flight_bytes <= max_inflight_bytes whenever there is one. */
  pthread_mutex_t flight_lock;
  pthread_cond_t flight_cond;
  int in_flight;
  uint64_t in_flight_bytes, max_inflight_bytes;
  /* Repository poll thread. */
  pthread_t poll_thread;
  bool poll_started;
  bool poll_stop;
  pthread_cond_t poll_cond;
  /* Serializes loads and unloads (one model change at a time). */
  pthread_mutex_t load_lock;
  bool latency_summaries; /* versions keep latency windows for the metrics */
  server_gpus gpus;       /* where GPU instances may go */
  /* Triton's memory pool settings, kept for the engine (not used yet). */
  inferd_cuda_memory_pool *cuda_memory_pools;
  int cuda_memory_pool_count;
  uint64_t pinned_memory_pool_byte_size;
  shm_registry *shm;      /* shared-memory regions clients registered */
};

/* Called once per answered request (request.c), with the bytes counted
 * for it when it was admitted. */
void server_request_done(inferd_server *server, uint64_t flight_bytes);

/* The bytes of tensors the server holds for request r while it is in
 * flight: its inputs, except those in shared memory, and the outputs it
 * will get back whose size is known before the run (fixed dims, not BYTES,
 * not classification, not into shared memory). Saturates at UINT64_MAX.
 * After server_check_request (r->batch set). */
uint64_t request_flight_bytes(const model_version *mv, int max_batch, const inferd_request *r);

/* Checks a request against a version's tensors (names, datatypes, shapes
 * with the batch as the first dimension when max_batch > 0, byte sizes) and
 * sets request->batch. */
inferd_error *server_check_request(const model_version *mv, int max_batch, inferd_request *request);

/* The one way a request enters a version: checked against mv's tensors,
 * counted in flight (its bytes against the server's bound, except for a
 * warmup request, which also never runs inline), then run inline or
 * queued. The caller's reference to mv passes to the request, or is
 * dropped on error (the caller still owns r then). inferd_server_infer and
 * the load's warmup both submit through it. */
inferd_error *server_submit(inferd_server *server, model_version *mv, int max_batch, inferd_request *r, bool warmup);

/* Every served version, each retained (a snapshot of the table: metrics
 * and the all-model calls read them outside the table's lock); *count of
 * them. server_release_versions gives them back and frees the array. */
model_version **server_retain_versions(inferd_server *server, int *count);
void server_release_versions(model_version **versions, int count);

/* The entry of `name`, or NULL; under server->lock. */
model_entry *server_find_model(inferd_server *server, const char *name);
/* The entry of `name`, created UNKNOWN when absent; under server->lock. */
model_entry *server_model_entry(inferd_server *server, const char *name);

#endif
