/*
 * The server's public face: creation, health, the infer path and the JSON
 * answers (metadata, statistics, repository index). Loading and unloading
 * live in repository.c.
 */
#include "server/server.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/bytes_tensor.h"
#include "base/clock.h"
#include "base/dims.h"
#include "base/error.h"
#include "base/log.h"
#include "base/mem.h"
#include "server/repository.h"
#include "server/request.h"

model_entry *server_find_model(inferd_server *s, const char *name) {
  for (int i = 0; i < s->n_models; i++)
    if (strcmp(s->models[i]->name, name) == 0) return s->models[i];
  return NULL;
}

model_entry *server_model_entry(inferd_server *s, const char *name) {
  model_entry *m = server_find_model(s, name);
  if (m) return m;
  m = mem_zalloc(sizeof(*m));
  m->name = mem_strdup(name);
  MEM_GROW(s->models, s->cap_models, (size_t)s->n_models + 1);
  s->models[s->n_models++] = m;
  return m;
}

/* The GPU settings an embedder may get wrong (the command line checks its
 * own spelling of them first). */
static inferd_error *check_gpu_options(const inferd_server_options *o) {
  if (!(o->min_compute_capability >= 0) || !isfinite(o->min_compute_capability))
    return err_new(INFERD_ERROR_INVALID_ARG, "the minimum compute capability %g is not a number >= 0",
                   o->min_compute_capability);
  if (o->cuda_memory_pool_count < 0 || (o->cuda_memory_pool_count > 0 && !o->cuda_memory_pools))
    return err_new(INFERD_ERROR_INVALID_ARG, "cuda_memory_pool_count %d without pools", o->cuda_memory_pool_count);
  for (int i = 0; i < o->cuda_memory_pool_count; i++) {
    int gpu = o->cuda_memory_pools[i].gpu;
    if (gpu < 0) return err_new(INFERD_ERROR_INVALID_ARG, "CUDA memory pool for GPU %d: GPU ids are >= 0", gpu);
    for (int k = 0; k < i; k++)
      if (o->cuda_memory_pools[k].gpu == gpu)
        return err_new(INFERD_ERROR_INVALID_ARG, "the CUDA memory pool of GPU %d is given twice", gpu);
  }
  return NULL;
}

inferd_error *inferd_server_create(const inferd_server_options *options, inferd_server **out) {
  *out = NULL;
  if (!options || !options->model_repository || !*options->model_repository)
    return err_new(INFERD_ERROR_INVALID_ARG, "no model repository given (--model-repository)");
  ERR_TRY(check_gpu_options(options));
  inferd_server *s = mem_zalloc(sizeof(*s));
  s->repository = mem_strdup(options->model_repository);
  s->control_mode = options->model_control_mode;
  s->strict_config = options->strict_model_config;
  s->strict_readiness = options->strict_readiness;
  s->id = mem_strdup(options->server_id && *options->server_id ? options->server_id : "inferd");
  s->threads_per_instance = options->threads_per_instance;
  s->poll_secs = options->repository_poll_secs > 0 ? options->repository_poll_secs : 15;
  s->latency_summaries = options->latency_summaries;
  s->pinned_memory_pool_byte_size = options->pinned_memory_pool_byte_size;
  s->max_inflight_bytes = options->max_inflight_bytes;
  s->cuda_memory_pool_count = options->cuda_memory_pool_count;
  s->cuda_memory_pools = mem_zalloc((size_t)(s->cuda_memory_pool_count + 1) * sizeof(*s->cuda_memory_pools));
  if (s->cuda_memory_pool_count)
    memcpy(s->cuda_memory_pools, options->cuda_memory_pools, (size_t)s->cuda_memory_pool_count * sizeof(*s->cuda_memory_pools));
  server_gpus_find(options->min_compute_capability, &s->gpus);
  log_info("GPUs: %s", s->gpus.description);
  for (int i = 0; i < s->cuda_memory_pool_count; i++)
    if (s->cuda_memory_pools[i].gpu >= s->gpus.visible)
      log_warn("CUDA memory pool size given for GPU %d, which is not visible: it is not used",
               s->cuda_memory_pools[i].gpu);
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_init(&s->flight_lock, NULL);
  pthread_cond_init(&s->flight_cond, NULL);
  pthread_cond_init(&s->poll_cond, NULL);
  pthread_mutex_init(&s->load_lock, NULL);
  atomic_init(&s->accepting, true);
  s->shm = shm_registry_new(SHM_REGISTRY_DEFAULT_MAX_REGIONS);
  inferd_error *e = repository_start(s, options);
  if (e) {
    inferd_server_delete(s);
    return e;
  }
  s->startup_complete = true;
  *out = s;
  return NULL;
}

static void entry_free(model_entry *m) {
  for (int v = 0; v < m->n_versions; v++) model_version_retire(m->versions[v]);
  free(m->versions);
  free(m->name);
  free(m->reason);
  free(m->config_json);
  free(m->platform);
  free(m);
}

void inferd_server_delete(inferd_server *s) {
  if (!s) return;
  inferd_server_stop_accepting(s);
  repository_stop(s);
  /* Nothing new can fill a batch now: what is queued runs without waiting
   * out its model's batching delay (an hour's would hold the delete). */
  int n;
  model_version **versions = server_retain_versions(s, &n);
  for (int i = 0; i < n; i++) scheduler_flush(versions[i]->sched);
  server_release_versions(versions, n);
  inferd_server_drain(s, -1);
  for (int i = 0; i < s->n_models; i++) entry_free(s->models[i]);
  free(s->models);
  shm_registry_delete(s->shm); /* after the drain: no request holds a region now */
  pthread_mutex_destroy(&s->lock);
  pthread_mutex_destroy(&s->flight_lock);
  pthread_cond_destroy(&s->flight_cond);
  pthread_cond_destroy(&s->poll_cond);
  pthread_mutex_destroy(&s->load_lock);
  free(s->repository);
  free(s->id);
  free(s->cuda_memory_pools);
  server_gpus_free(&s->gpus);
  free(s);
}

bool inferd_server_is_live(const inferd_server *s) { return s != NULL; }

bool inferd_server_is_ready(const inferd_server *s) {
  if (!s || !s->startup_complete || !atomic_load(&((inferd_server *)s)->accepting)) return false;
  if (!s->strict_readiness) return true;
  inferd_server *w = (inferd_server *)s; /* the table's lock; nothing else changes */
  bool all = true;
  pthread_mutex_lock(&w->lock);
  for (int i = 0; i < w->n_models && all; i++) {
    const model_entry *m = w->models[i];
    /* Unloaded on request is fine; failed, or loading, is not. */
    all = m->state != MODEL_STATE_LOADING && !(m->state == MODEL_STATE_UNAVAILABLE && m->failed);
  }
  pthread_mutex_unlock(&w->lock);
  return all;
}

void inferd_server_stop_accepting(inferd_server *s) { atomic_store(&s->accepting, false); }

int inferd_server_drain(inferd_server *s, int timeout_ms) {
  uint64_t deadline = timeout_ms >= 0 ? clock_now_ns() + (uint64_t)timeout_ms * 1000000ull : 0;
  pthread_mutex_lock(&s->flight_lock);
  while (s->in_flight > 0) {
    if (timeout_ms < 0) {
      pthread_cond_wait(&s->flight_cond, &s->flight_lock);
      continue;
    }
    uint64_t now = clock_now_ns();
    if (now >= deadline) break;
    struct timespec ts = clock_deadline_after(deadline - now);
    pthread_cond_timedwait(&s->flight_cond, &s->flight_lock, &ts);
  }
  int left = s->in_flight;
  pthread_mutex_unlock(&s->flight_lock);
  return left;
}

model_version **server_retain_versions(inferd_server *s, int *count) {
  pthread_mutex_lock(&s->lock);
  int n = 0;
  for (int i = 0; i < s->n_models; i++) n += s->models[i]->n_versions;
  model_version **versions = mem_zalloc((size_t)(n + 1) * sizeof(*versions));
  n = 0;
  for (int i = 0; i < s->n_models; i++)
    for (int v = 0; v < s->models[i]->n_versions; v++) {
      versions[n] = s->models[i]->versions[v];
      model_version_retain(versions[n++]);
    }
  pthread_mutex_unlock(&s->lock);
  *count = n;
  return versions;
}

void server_release_versions(model_version **versions, int count) {
  for (int i = 0; i < count; i++) model_version_release(versions[i]);
  free(versions);
}

/* Runs cancel on the scheduler of every served version, outside the table
 * lock (answering runs response callbacks). */
static int cancel_in_every_version(inferd_server *s, int (*cancel)(scheduler *, const char *), const char *why) {
  int n;
  model_version **versions = server_retain_versions(s, &n);
  int cancelled = 0;
  for (int i = 0; i < n; i++) cancelled += cancel(versions[i]->sched, why);
  server_release_versions(versions, n);
  return cancelled;
}

int inferd_server_cancel_queued(inferd_server *s) {
  return cancel_in_every_version(s, scheduler_cancel_queued, "the server is stopping (its exit timeout passed)");
}

int inferd_server_cancel_flagged(inferd_server *s) {
  return cancel_in_every_version(s, scheduler_cancel_flagged, "its client has gone");
}

void server_request_done(inferd_server *s, uint64_t flight_bytes) {
  pthread_mutex_lock(&s->flight_lock);
  s->in_flight_bytes -= flight_bytes;
  if (--s->in_flight == 0) pthread_cond_broadcast(&s->flight_cond);
  pthread_mutex_unlock(&s->flight_lock);
}

uint64_t inferd_server_inflight_bytes(inferd_server *s, uint64_t *limit) {
  pthread_mutex_lock(&s->flight_lock);
  const uint64_t bytes = s->in_flight_bytes;
  if (limit) *limit = s->max_inflight_bytes;
  pthread_mutex_unlock(&s->flight_lock);
  return bytes;
}

static uint64_t add_sat(uint64_t a, uint64_t b) {
  uint64_t sum;
  return __builtin_add_overflow(a, b, &sum) ? UINT64_MAX : sum;
}

static uint64_t mul_sat(uint64_t a, uint64_t b) {
  uint64_t product;
  return __builtin_mul_overflow(a, b, &product) ? UINT64_MAX : product;
}

/* Bytes of output `info` for a request of `batch` items; 0 when its size
 * is known only after the run (BYTES, a dynamic dimension past the batch). */
static uint64_t output_bytes(const inferd_tensor_info *info, bool batching, int batch) {
  if (info->datatype == INFERD_TYPE_BYTES) return 0;
  uint64_t bytes = inferd_datatype_size(info->datatype);
  for (int d = 0; d < info->rank; d++) {
    int64_t dim = info->dims[d];
    if (dim < 0 && d == 0) dim = batching ? batch : 1;
    if (dim < 0) return 0;
    bytes = mul_sat(bytes, (uint64_t)dim);
  }
  return bytes;
}

uint64_t request_flight_bytes(const model_version *mv, int max_batch, const inferd_request *r) {
  const bool batching = max_batch > 0 && inferd_plan_has_dynamic_batch(mv->plan);
  uint64_t bytes = 0;
  for (int i = 0; i < r->n_inputs; i++)
    if (!r->inputs[i].region) bytes = add_sat(bytes, r->inputs[i].byte_size);
  for (int k = 0; k < inferd_plan_output_count(mv->plan); k++) {
    inferd_tensor_info info;
    inferd_plan_output(mv->plan, k, &info);
    /* Asked for none: every output comes back in the response. */
    bool returned = r->n_outputs == 0;
    for (int i = 0; i < r->n_outputs; i++)
      if (strcmp(r->outputs[i].name, info.name) == 0)
        returned = !r->outputs[i].region && !r->outputs[i].classification_count;
    if (returned) bytes = add_sat(bytes, output_bytes(&info, batching, r->batch));
  }
  return bytes;
}

/* Counts request r's tensors against the server's in-flight bound, or
 * says why it cannot be taken now (OVERLOADED) or ever (TOO_LARGE). */
static inferd_error *admit_flight(inferd_server *s, const model_version *mv, int max_batch, inferd_request *r) {
  const uint64_t need = request_flight_bytes(mv, max_batch, r);
  inferd_error *e = NULL;
  pthread_mutex_lock(&s->flight_lock);
  const uint64_t limit = s->max_inflight_bytes, held = s->in_flight_bytes;
  if (limit && need > limit) {
    e = err_new(INFERD_ERROR_TOO_LARGE,
                "the request's tensors take %llu bytes, more than the server's in-flight limit of %llu bytes "
                "(--max-inflight-bytes) allows for all requests together",
                (unsigned long long)need, (unsigned long long)limit);
  } else if (limit && need > limit - held) {
    e = err_new(INFERD_ERROR_OVERLOADED,
                "server overloaded: %llu bytes in flight, limit %llu (this request needs %llu); retry later",
                (unsigned long long)held, (unsigned long long)limit, (unsigned long long)need);
  } else {
    s->in_flight++;
    s->in_flight_bytes = held + need;
    r->flight_bytes = need;
  }
  pthread_mutex_unlock(&s->flight_lock);
  return e;
}

/* The version to serve: `version`, or the newest when -1; retained. With
 * max_batch, also the model's max_batch_size (one look-up under the lock). */
static inferd_error *find_version_batch(inferd_server *s, const char *name, int64_t version, model_version **out,
                                        int *max_batch) {
  pthread_mutex_lock(&s->lock);
  model_entry *m = server_find_model(s, name);
  inferd_error *e = NULL;
  model_version *found = NULL;
  if (!m || m->state == MODEL_STATE_UNKNOWN) {
    e = err_new(INFERD_ERROR_NOT_FOUND, "unknown model '%s'", name);
  } else if (m->n_versions == 0) {
    e = err_new(INFERD_ERROR_UNAVAILABLE, "model '%s' is not ready%s%s", name, m->reason ? ": " : "",
                m->reason ? m->reason : "");
  } else if (version < 0) {
    found = m->versions[m->n_versions - 1];
  } else {
    for (int v = 0; v < m->n_versions; v++)
      if (m->versions[v]->number == version) found = m->versions[v];
    if (!found) e = err_new(INFERD_ERROR_NOT_FOUND, "model '%s' has no ready version %lld", name, (long long)version);
  }
  if (found) model_version_retain(found);
  if (max_batch) *max_batch = m ? m->max_batch_size : 0;
  pthread_mutex_unlock(&s->lock);
  *out = found;
  return e;
}

static inferd_error *find_version(inferd_server *s, const char *name, int64_t version, model_version **out) {
  return find_version_batch(s, name, version, out, NULL);
}

/* An output asked for in shared memory: whether it can go there, and,
 * when its size is known before the run, whether it fits. */
static inferd_error *check_shm_output(const model_version *mv, bool batching, inferd_request *r,
                                      const requested_output *o) {
  inferd_tensor_info info = {0};
  for (int k = 0; k < inferd_plan_output_count(mv->plan); k++) {
    inferd_plan_output(mv->plan, k, &info);
    if (strcmp(info.name, o->name) == 0) break;
  }
  const char *region = shm_region_name(o->region);
  if (shm_region_kind(o->region) == INFERD_SHM_CUDA) {
    if (o->classification_count)
      return err_new(INFERD_ERROR_UNSUPPORTED,
                     "output '%s': classification results cannot be written to CUDA shared memory region '%s'",
                     o->name, region);
    if (info.datatype == INFERD_TYPE_BYTES)
      return err_new(INFERD_ERROR_UNSUPPORTED, "output '%s': BYTES tensors cannot be written to CUDA shared memory",
                     o->name);
    r->gpu_tensors = true;
  }
  if (o->classification_count || info.datatype == INFERD_TYPE_BYTES) return NULL; /* sized after the run */
  size_t need = inferd_datatype_size(info.datatype);
  for (int d = 0; d < info.rank; d++) {
    int64_t dim = info.dims[d];
    if (dim < 0 && d == 0) dim = batching ? r->batch : 1;
    if (dim < 0) return NULL;
    need *= (size_t)dim;
  }
  if (need > o->shm_byte_size)
    return err_new(INFERD_ERROR_INVALID_ARG,
                   "output '%s' needs %zu bytes but its span of shared memory region '%s' has %llu "
                   "(shared_memory_byte_size)",
                   o->name, need, region, (unsigned long long)o->shm_byte_size);
  return NULL;
}

/* Checks the request against the model and sets request->batch. */
inferd_error *server_check_request(const model_version *mv, int max_batch, inferd_request *r) {
  inferd_plan *plan = mv->plan;
  bool batching = max_batch > 0 && inferd_plan_has_dynamic_batch(plan);
  int n_in = inferd_plan_input_count(plan);
  int batch = -1;
  for (int i = 0; i < r->n_inputs; i++) {
    bool known = false;
    for (int k = 0; k < n_in && !known; k++) {
      inferd_tensor_info info;
      inferd_plan_input(plan, k, &info);
      known = strcmp(info.name, r->inputs[i].name) == 0;
    }
    if (!known) return err_new(INFERD_ERROR_INVALID_ARG, "model '%s' has no input named '%s'", mv->name, r->inputs[i].name);
  }
  for (int k = 0; k < n_in; k++) {
    inferd_tensor_info info = mv->client_inputs ? mv->client_inputs[k] : (inferd_tensor_info){0};
    if (!mv->client_inputs) inferd_plan_input(plan, k, &info);
    const request_input *in = NULL;
    for (int i = 0; i < r->n_inputs; i++)
      if (strcmp(r->inputs[i].name, info.name) == 0) in = &r->inputs[i];
    const void *default_data;
    size_t default_bytes;
    if (!in && inferd_plan_input_default(plan, k, &default_data, &default_bytes)) continue; /* optional */
    if (!in) return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' of model '%s' is missing", info.name, mv->name);
    if (in->datatype != info.datatype)
      return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' has datatype %s, model '%s' expects %s", info.name,
                     inferd_datatype_name(in->datatype), mv->name, inferd_datatype_name(info.datatype));
    /* Expected shape: the model's, with the request's batch first. */
    int64_t want[INFERD_MAX_RANK];
    int rank = info.rank;
    for (int d = 0; d < rank; d++) want[d] = info.dims[d];
    if (batching) {
      if (in->rank < 1 || in->shape[0] < 1 || in->shape[0] > max_batch) {
        char got[160];
        return err_new(INFERD_ERROR_INVALID_ARG,
                       "input '%s' has shape %s; its first dimension is the batch, which must be 1 to %d", info.name,
                       dims_text(in->shape, in->rank, got, sizeof(got)), max_batch);
      }
      want[0] = in->shape[0];
      if (batch >= 0 && in->shape[0] != batch)
        return err_new(INFERD_ERROR_INVALID_ARG, "inputs disagree on the batch size (%d and %lld)", batch,
                       (long long)in->shape[0]);
      batch = (int)in->shape[0];
    } else if (rank > 0 && want[0] < 0) {
      want[0] = 1; /* a dynamic dimension the configuration does not batch */
    }
    bool same = in->rank == rank;
    for (int d = 0; same && d < rank; d++) same = in->shape[d] == want[d];
    if (!same) {
      char got[160], exp[160];
      return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' has shape %s, model '%s' expects %s", info.name,
                     dims_text(in->shape, in->rank, got, sizeof(got)), mv->name, dims_text(want, rank, exp, sizeof(exp)));
    }
    if (in->memory == INFERD_MEMORY_GPU) {
      if (info.datatype == INFERD_TYPE_BYTES)
        return err_new(INFERD_ERROR_UNSUPPORTED, "input '%s': BYTES tensors cannot be read from CUDA shared memory",
                       info.name);
      r->gpu_tensors = true;
    }
    if (info.datatype == INFERD_TYPE_BYTES) {
      size_t count = 1;
      for (int d = 0; d < rank; d++) count *= (size_t)want[d];
      ERR_TRY(bytes_tensor_read(info.name, "data", in->data, in->byte_size, count, NULL));
      continue;
    }
    size_t need = inferd_datatype_size(info.datatype);
    for (int d = 0; d < rank; d++) need *= (size_t)want[d];
    if (in->byte_size != need)
      return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' has %zu bytes of data, shape %s of %s needs %zu", info.name,
                     in->byte_size, dims_text(want, rank, (char[160]){0}, 160), inferd_datatype_name(info.datatype),
                     need);
  }
  int n_out = inferd_plan_output_count(plan);
  for (int i = 0; i < r->n_outputs; i++) {
    bool known = false;
    for (int k = 0; k < n_out && !known; k++) {
      inferd_tensor_info info;
      inferd_plan_output(plan, k, &info);
      known = strcmp(info.name, r->outputs[i].name) == 0;
    }
    if (!known)
      return err_new(INFERD_ERROR_INVALID_ARG, "model '%s' has no output named '%s'", mv->name, r->outputs[i].name);
  }
  r->batch = batch > 0 ? batch : 1;
  for (int i = 0; i < r->n_outputs; i++)
    if (r->outputs[i].region) ERR_TRY(check_shm_output(mv, batching, r, &r->outputs[i]));
  return NULL;
}

inferd_error *server_submit(inferd_server *s, model_version *mv, int max_batch, inferd_request *r, bool warmup) {
  stat_failure_reason refused = STAT_FAILURE_OTHER;
  inferd_error *e = server_check_request(mv, max_batch, r);
  if (!e && warmup) {
    /* Counted as in flight (a stop waits for it), its bytes not. */
    pthread_mutex_lock(&s->flight_lock);
    s->in_flight++;
    pthread_mutex_unlock(&s->flight_lock);
  } else if (!e) {
    e = admit_flight(s, mv, max_batch, r);
    refused = STAT_FAILURE_REJECTED;
  }
  if (e) {
    if (!warmup) stat_fail(&mv->stats, refused, 0); /* a warmup's failure fails the load instead */
    model_version_release(mv);
    return e;
  }
  r->mv = mv;
  if (!warmup && scheduler_try_inline(mv->sched, r)) return NULL;
  e = scheduler_enqueue(mv->sched, r);
  if (e) {
    r->mv = NULL;
    model_version_release(mv);
    server_request_done(s, r->flight_bytes);
    r->flight_bytes = 0;
  }
  return e;
}

inferd_error *inferd_server_infer(inferd_server *s, inferd_request *r) {
  if (atomic_load(&r->cancel_asked))
    return err_new(INFERD_ERROR_CANCELLED, "request of model '%s' was cancelled before it was submitted", r->model_name);
  if (!atomic_load(&s->accepting))
    return err_new(INFERD_ERROR_OVERLOADED, "the server is shutting down and accepts no new requests");
  model_version *mv;
  int max_batch;
  ERR_TRY(find_version_batch(s, r->model_name, r->version, &mv, &max_batch));
  return server_submit(s, mv, max_batch, r, false);
}

/* ---- JSON answers ---- */

static inferd_error *dump(json_t *root, char **out) {
  *out = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  return *out ? NULL : err_new(INFERD_ERROR_NO_MEMORY, "formatting JSON");
}

inferd_error *inferd_server_metadata(inferd_server *s, char **json) {
  json_t *ext = json_array();
  static const char *const extensions[] = {"classification", "model_repository", "schedule_policy",
                                           "model_configuration", "statistics", "binary_tensor_data",
                                           "system_shared_memory", "cuda_shared_memory"};
  for (size_t i = 0; i < sizeof(extensions) / sizeof(extensions[0]); i++) json_array_append_new(ext, json_string(extensions[i]));
  /* Beyond KServe's three fields, which clients read by name (the gRPC
   * message has no room for the rest and leaves it out): the devices, and
   * the GPU line of `inferd --version` (the backend, or why there is none). */
  char gpu[512];
  inferd_device_describe((inferd_device){.kind = INFERD_DEVICE_CUDA, .ordinal = -1}, gpu, sizeof(gpu));
  return dump(json_pack("{s:s, s:s, s:o, s:o, s:s}", "name", s->id, "version", inferd_version(), "extensions", ext,
                        "devices", server_gpus_devices_json(&s->gpus), "gpu", gpu),
              json);
}

inferd_error *inferd_server_model_ready(inferd_server *s, const char *model, int64_t version, bool *ready) {
  model_version *mv;
  inferd_error *e = find_version(s, model, version, &mv);
  *ready = e == NULL;
  if (e && inferd_error_code_of(e) == INFERD_ERROR_UNAVAILABLE) {
    inferd_error_delete(e);
    return NULL;
  }
  if (mv) model_version_release(mv);
  return e;
}

static json_t *tensor_json(const inferd_tensor_info *info, bool batching) {
  json_t *shape = json_array();
  for (int d = 0; d < info->rank; d++) json_array_append_new(shape, json_integer(d == 0 && batching ? -1 : info->dims[d]));
  return json_pack("{s:s, s:s, s:o}", "name", info->name, "datatype", inferd_datatype_name(info->datatype), "shape", shape);
}

inferd_error *inferd_server_model_metadata(inferd_server *s, const char *model, int64_t version, char **json) {
  model_version *mv;
  ERR_TRY(find_version(s, model, version, &mv));
  json_t *versions = json_array();
  pthread_mutex_lock(&s->lock);
  model_entry *m = server_find_model(s, model);
  for (int v = 0; m && v < m->n_versions; v++) {
    char num[32];
    snprintf(num, sizeof(num), "%lld", (long long)m->versions[v]->number);
    json_array_append_new(versions, json_string(num));
  }
  const char *platform = m && m->platform ? m->platform : "onnxruntime_onnx";
  bool batching = m && m->max_batch_size > 0;
  json_t *root = json_pack("{s:s, s:o, s:s}", "name", model, "versions", versions, "platform", platform);
  pthread_mutex_unlock(&s->lock);
  json_t *inputs = json_array(), *outputs = json_array();
  for (int k = 0; k < inferd_plan_input_count(mv->plan); k++)
    json_array_append_new(inputs, tensor_json(&mv->client_inputs[k], batching));
  for (int k = 0; k < inferd_plan_output_count(mv->plan); k++)
    json_array_append_new(outputs, tensor_json(&mv->client_outputs[k], batching));
  json_object_set_new(root, "inputs", inputs);
  json_object_set_new(root, "outputs", outputs);
  model_version_release(mv);
  return dump(root, json);
}

inferd_error *inferd_server_model_config(inferd_server *s, const char *model, int64_t version, char **json) {
  model_version *mv;
  ERR_TRY(find_version(s, model, version, &mv));
  model_version_release(mv);
  pthread_mutex_lock(&s->lock);
  model_entry *m = server_find_model(s, model);
  *json = m && m->config_json ? mem_strdup(m->config_json) : NULL;
  pthread_mutex_unlock(&s->lock);
  return *json ? NULL : err_new(INFERD_ERROR_NOT_FOUND, "model '%s' has no configuration", model);
}

static json_t *duration_json(const stat_duration *d) {
  return json_pack("{s:I, s:I}", "count", (json_int_t)atomic_load(&d->count), "ns", (json_int_t)atomic_load(&d->ns));
}

static json_t *version_stats_json(const model_version *mv) {
  const model_stats *st = &mv->stats;
  char num[32];
  snprintf(num, sizeof(num), "%lld", (long long)mv->number);
  json_t *zero = json_pack("{s:i, s:i}", "count", 0, "ns", 0);
  json_t *inference = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "success", duration_json(&st->success),
                                "fail", duration_json(&st->fail), "queue", duration_json(&st->queue), "compute_input",
                                duration_json(&st->compute_input), "compute_infer", duration_json(&st->compute_infer),
                                "compute_output", duration_json(&st->compute_output), "cache_hit", json_deep_copy(zero),
                                "cache_miss", json_deep_copy(zero));
  json_decref(zero);
  json_t *batches = json_array();
  for (int b = 1; b <= st->max_batch; b++) {
    const batch_stat *bs = &st->batch_stats[b];
    if (!atomic_load(&bs->compute_infer.count)) continue;
    json_array_append_new(batches, json_pack("{s:i, s:o, s:o, s:o}", "batch_size", b, "compute_input",
                                             duration_json(&bs->compute_input), "compute_infer",
                                             duration_json(&bs->compute_infer), "compute_output",
                                             duration_json(&bs->compute_output)));
  }
  return json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:o}", "name", mv->name, "version", num, "last_inference",
                   (json_int_t)atomic_load(&st->last_inference_ms), "inference_count",
                   (json_int_t)atomic_load(&st->inference_count), "execution_count",
                   (json_int_t)atomic_load(&st->execution_count), "inference_stats", inference, "batch_stats", batches);
}

inferd_error *inferd_server_model_statistics(inferd_server *s, const char *model, int64_t version, char **json) {
  json_t *list = json_array();
  inferd_error *e = NULL;
  pthread_mutex_lock(&s->lock);
  if (model) {
    model_entry *m = server_find_model(s, model);
    if (!m || m->n_versions == 0) {
      e = err_new(m ? INFERD_ERROR_UNAVAILABLE : INFERD_ERROR_NOT_FOUND, "model '%s' is %s", model,
                  m ? "not ready" : "unknown");
    } else {
      bool found = false;
      for (int v = 0; v < m->n_versions; v++)
        if (version < 0 || m->versions[v]->number == version) {
          json_array_append_new(list, version_stats_json(m->versions[v]));
          found = true;
        }
      if (!found) e = err_new(INFERD_ERROR_NOT_FOUND, "model '%s' has no ready version %lld", model, (long long)version);
    }
  }
  pthread_mutex_unlock(&s->lock);
  if (!model) { /* every version, read outside the table's lock */
    int n;
    model_version **versions = server_retain_versions(s, &n);
    for (int i = 0; i < n; i++) json_array_append_new(list, version_stats_json(versions[i]));
    server_release_versions(versions, n);
  }
  if (e) {
    json_decref(list);
    return e;
  }
  return dump(json_pack("{s:o}", "model_stats", list), json);
}

static const char *state_name(model_state st) {
  switch (st) {
    case MODEL_STATE_LOADING: return "LOADING";
    case MODEL_STATE_READY: return "READY";
    case MODEL_STATE_UNLOADING: return "UNLOADING";
    case MODEL_STATE_UNAVAILABLE: return "UNAVAILABLE";
    default: return "";
  }
}

inferd_error *inferd_server_repository_index(inferd_server *s, bool ready_only, char **json) {
  char **names = NULL;
  int count = 0;
  ERR_TRY(repository_list(s, &names, &count));
  json_t *list = json_array();
  pthread_mutex_lock(&s->lock);
  for (int i = 0; i < count; i++) {
    model_entry *m = server_find_model(s, names[i]);
    if (m && m->n_versions) {
      for (int v = 0; v < m->n_versions; v++) {
        char num[32];
        snprintf(num, sizeof(num), "%lld", (long long)m->versions[v]->number);
        json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "name", names[i], "version", num, "state", "READY"));
      }
    } else if (!ready_only) {
      json_t *entry = json_pack("{s:s}", "name", names[i]);
      if (m && m->state != MODEL_STATE_UNKNOWN) {
        json_object_set_new(entry, "state", json_string(state_name(m->state)));
        json_object_set_new(entry, "reason", json_string(m->reason ? m->reason : ""));
      }
      json_array_append_new(list, entry);
    }
    free(names[i]);
  }
  pthread_mutex_unlock(&s->lock);
  free(names);
  return dump(list, json);
}

/* Triton's words for it (tools such as model_analyzer look for them), then
 * what to change. */
static inferd_error *not_explicit(const inferd_server *s) {
  return err_new(INFERD_ERROR_UNAVAILABLE,
                 "explicit model load / unload is not allowed if polling is enabled (the model control mode is %s; "
                 "start the server with --model-control-mode=explicit)",
                 s->control_mode == INFERD_MODEL_CONTROL_POLL ? "poll" : "none");
}

inferd_error *inferd_server_load_model(inferd_server *s, const char *model, const char *config_json) {
  if (!model || !*model) return err_new(INFERD_ERROR_INVALID_ARG, "no model name");
  if (s->control_mode != INFERD_MODEL_CONTROL_EXPLICIT) return not_explicit(s);
  return repository_load(s, model, config_json);
}

inferd_error *inferd_server_unload_model(inferd_server *s, const char *model) {
  if (!model || !*model) return err_new(INFERD_ERROR_INVALID_ARG, "no model name");
  if (s->control_mode != INFERD_MODEL_CONTROL_EXPLICIT) return not_explicit(s);
  return repository_unload(s, model);
}
