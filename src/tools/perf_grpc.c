/*
 * The gRPC load generator; see perf_grpc.h.
 *
 * The transport is grpc_h2_client: nghttp2 over the connections' sockets
 * and one epoll loop on this thread. Each slot is one call at a time; its
 * end is timed in the close callback, which starts the slot's next call at
 * once, so an answer and the next request are handled in the same pass of
 * the loop. The request is framed once and every call queues the same
 * bytes.
 */
#include "tools/perf_grpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "base/mem.h"
#include "frontends/grpc/grpc_service.pb-c.h"
#include "tools/grpc_h2_client.h"

#define INFER_PATH "/inference.GRPCInferenceService/ModelInfer"
#define METADATA_PATH "/inference.GRPCInferenceService/ModelMetadata"
#define STREAM_PATH "/inference.GRPCInferenceService/ModelStreamInfer"

/* How long the metadata call may take, and how long answers are waited for
 * after the window before the run gives up on them. */
enum { ANSWER_WAIT_S = 30, POLL_MS = 1000 };

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- one call that waits for its answer (the metadata) ------------------- */

typedef struct unary_reply {
  bool done;
  int status;
  char message[256];
  uint8_t *bytes; /* the last message, malloc'd */
  size_t size;
} unary_reply;

static void unary_on_message(void *user, const uint8_t *message, size_t size) {
  unary_reply *r = user;
  free(r->bytes);
  r->bytes = mem_try_alloc(size ? size : 1, 1);
  r->size = size;
  if (r->bytes) memcpy(r->bytes, message, size);
}

static void unary_on_close(void *user, int status, const char *message) {
  unary_reply *r = user;
  r->done = true;
  r->status = status;
  snprintf(r->message, sizeof(r->message), "%s", message);
}

/* *reply malloc'd. On a timeout the call stays open, pointing at this
 * frame: the caller deletes the client, which drops it unanswered. */
static inferd_error *call_once(grpc_h2_client *client, const char *path, const uint8_t *framed, size_t size,
                               uint8_t **reply, size_t *reply_size) {
  static const grpc_h2_call_handlers handlers = {.on_message = unary_on_message, .on_close = unary_on_close};
  unary_reply r = {0};
  grpc_h2_call *call = grpc_h2_call_start(client, 0, path, &handlers, &r);
  if (!call) return err_new(INFERD_ERROR_UNAVAILABLE, "cannot start a call to %s", path);
  grpc_h2_call_send(call, framed, size);
  grpc_h2_call_close_send(call);
  const double deadline = now_s() + ANSWER_WAIT_S;
  for (double t = now_s(); !r.done && t < deadline; t = now_s()) grpc_h2_client_poll(client, POLL_MS);
  if (!r.done) return err_new(INFERD_ERROR_UNAVAILABLE, "%s: no answer in %d s", path, ANSWER_WAIT_S);
  if (r.status != 0 || !r.bytes) {
    free(r.bytes);
    return err_new(INFERD_ERROR_UNAVAILABLE, "%s: status %d: %s", path, r.status, r.message);
  }
  *reply = r.bytes;
  *reply_size = r.size;
  return NULL;
}

/* The framed ModelInferRequest for the model's inputs. */
static inferd_error *build_request(grpc_h2_client *client, const perf_grpc_options *o, uint8_t **framed,
                                   size_t *size) {
  Inference__ModelMetadataRequest mq = INFERENCE__MODEL_METADATA_REQUEST__INIT;
  mq.name = (char *)o->model;
  mq.version = (char *)(o->version ? o->version : "");
  size_t qsize = 0;
  uint8_t *q = grpc_h2_frame(&mq.base, &qsize);
  if (!q) return err_new(INFERD_ERROR_INVALID_ARG, "the model name is too long");
  uint8_t *reply = NULL;
  size_t reply_size = 0;
  inferd_error *err = call_once(client, METADATA_PATH, q, qsize, &reply, &reply_size);
  free(q);
  if (err) return err;
  Inference__ModelMetadataResponse *meta = inference__model_metadata_response__unpack(NULL, reply_size, reply);
  free(reply);
  if (!meta) return err_new(INFERD_ERROR_INTERNAL, "malformed ModelMetadataResponse");
  Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
  req.model_name = (char *)o->model;
  req.model_version = (char *)(o->version ? o->version : "");
  const size_t n = meta->n_inputs;
  Inference__ModelInferRequest__InferInputTensor *tensors = mem_zalloc((n ? n : 1) * sizeof(*tensors));
  Inference__ModelInferRequest__InferInputTensor **ptrs = mem_zalloc((n ? n : 1) * sizeof(*ptrs));
  ProtobufCBinaryData *raw = mem_zalloc((n ? n : 1) * sizeof(*raw));
  for (size_t i = 0; i < n && !err; i++) {
    const Inference__ModelMetadataResponse__TensorMetadata *t = meta->inputs[i];
    inference__model_infer_request__infer_input_tensor__init(&tensors[i]);
    tensors[i].name = t->name;
    tensors[i].datatype = t->datatype;
    tensors[i].n_shape = t->n_shape;
    tensors[i].shape = mem_zalloc((t->n_shape ? t->n_shape : 1) * sizeof(int64_t));
    ptrs[i] = &tensors[i];
    size_t count = 1;
    bool fits = true;
    for (size_t k = 0; k < t->n_shape; k++) {
      tensors[i].shape[k] = t->shape[k] < 0 ? o->batch : t->shape[k];
      fits = fits && mem_mul_ok(count, (size_t)tensors[i].shape[k], &count);
    }
    const inferd_datatype dt = inferd_datatype_from_name(t->datatype);
    const size_t elem = inferd_datatype_size(dt);
    if (!elem) {
      err = err_new(INFERD_ERROR_UNSUPPORTED, "input '%s': %s inputs are not generated", t->name, t->datatype);
      break;
    }
    if (fits) fits = mem_mul_ok(count, elem, &raw[i].len);
    if (fits) fits = (raw[i].data = mem_try_zalloc(raw[i].len ? raw[i].len : 1, 1)) != NULL;
    if (!fits) {
      err = err_new(INFERD_ERROR_INVALID_ARG, "input '%s': too large to generate at batch %d", t->name, o->batch);
      break;
    }
    /* Small non-negative values: no denormals, no NaNs, nothing that makes a
     * kernel take a slow path. */
    if (dt == INFERD_TYPE_FP32)
      for (size_t k = 0; k < count; k++) ((float *)raw[i].data)[k] = (float)(k % 97) / 97.0f;
  }
  if (!err) {
    req.n_inputs = n;
    req.inputs = ptrs;
    req.n_raw_input_contents = n;
    req.raw_input_contents = raw;
    *framed = grpc_h2_frame(&req.base, size);
    if (!*framed) err = err_new(INFERD_ERROR_INVALID_ARG, "the request is larger than a gRPC message can be");
  }
  for (size_t i = 0; i < n; i++) {
    free(tensors[i].shape);
    free(raw[i].data);
  }
  free(tensors);
  free(ptrs);
  free(raw);
  inference__model_metadata_response__free_unpacked(meta, NULL);
  return err;
}

static int compare_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, size_t n, double p) {
  if (!n) return 0;
  size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
  return sorted[i < n ? i : n - 1];
}

/* Throughput and percentiles of the latencies (µs) measured in the window. */
static void summarize(double *lat, size_t n, double seconds, perf_grpc_result *r) {
  qsort(lat, n, sizeof(*lat), compare_double);
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += lat[i];
  r->requests = n;
  r->seconds = seconds;
  r->requests_per_sec = (double)n / seconds;
  r->mean_us = n ? sum / (double)n : 0;
  r->p50_us = percentile(lat, n, 50);
  r->p90_us = percentile(lat, n, 90);
  r->p99_us = percentile(lat, n, 99);
}

/* What the measured window collects, for both kinds of run. */
typedef struct window {
  perf_grpc_result *result;
  double measure_from, end;
  double *latencies; /* µs of the calls that completed OK */
  size_t n, capacity;
} window;

static void window_init(window *w, const perf_grpc_options *o, perf_grpc_result *r) {
  const double t0 = now_s();
  *w = (window){.result = r, .measure_from = t0 + o->warmup_s, .end = t0 + o->warmup_s + o->duration_s,
                .capacity = 1 << 16};
  w->latencies = mem_alloc(w->capacity * sizeof(*w->latencies));
}

/* Records a call completed at `t`: its latency when OK, else the error.
 * Completions inside the window count, whenever they started (as wrk
 * counts): with long calls, counting only those that also started in it
 * would under-report throughput by about latency / window. */
static void window_record(window *w, double t, bool ok, double latency_us, const char *error) {
  if (t < w->measure_from || t > w->end) return;
  if (ok) {
    if (w->n == w->capacity) w->latencies = mem_realloc(w->latencies, (w->capacity *= 2) * sizeof(*w->latencies));
    w->latencies[w->n++] = latency_us;
    return;
  }
  perf_grpc_result *r = w->result;
  if (!r->errors) snprintf(r->first_error, sizeof(r->first_error), "%s", error);
  r->errors++;
}

static void window_finish(window *w, const perf_grpc_options *o) {
  summarize(w->latencies, w->n, o->duration_s, w->result);
  free(w->latencies);
}

/* ---- unary: ModelInfer ------------------------------------------------------ */

typedef struct load_run {
  grpc_h2_client *client;
  const uint8_t *request;
  size_t request_size;
  window window;
  int running;
} load_run;

typedef struct load_slot {
  load_run *run;
  int connection;
  double started;
} load_slot;

static void load_on_close(void *user, int status, const char *message);
static const grpc_h2_call_handlers load_handlers = {.on_close = load_on_close};

static void load_slot_start(load_slot *s) {
  load_run *run = s->run;
  s->started = now_s();
  grpc_h2_call *call = grpc_h2_call_start(run->client, s->connection, INFER_PATH, &load_handlers, s);
  if (!call) return;
  grpc_h2_call_send(call, run->request, run->request_size);
  grpc_h2_call_close_send(call);
  run->running++;
}

static void load_on_close(void *user, int status, const char *message) {
  load_slot *s = user;
  load_run *run = s->run;
  const double t = now_s();
  char error[256] = "";
  if (status != 0) snprintf(error, sizeof(error), "status %d: %s", status, message);
  window_record(&run->window, t, status == 0, (t - s->started) * 1e6, error);
  run->running--;
  if (t < run->window.end) load_slot_start(s);
}

static void run_load(const perf_grpc_options *o, grpc_h2_client *client, int n_connections, const uint8_t *request,
                     size_t request_size, perf_grpc_result *r) {
  load_run run = {.client = client, .request = request, .request_size = request_size};
  window_init(&run.window, o, r);
  load_slot *slots = mem_zalloc((size_t)o->concurrency * sizeof(*slots));
  for (int i = 0; i < o->concurrency; i++) {
    slots[i] = (load_slot){.run = &run, .connection = i % n_connections};
    load_slot_start(&slots[i]);
  }
  while (run.running > 0 && now_s() < run.window.end + ANSWER_WAIT_S) grpc_h2_client_poll(client, POLL_MS);
  window_finish(&run.window, o);
  free(slots);
}

/* ---- streaming: ModelStreamInfer ---------------------------------------------
 * One bidirectional call per connection carries every request: slot i's
 * request has id "i", and its answer, matched by id, queues its next send.
 * After the window each stream is closed once its last answer is in. */

typedef struct stream_run {
  int concurrency;
  uint8_t **requests; /* framed, per slot */
  size_t *sizes;
  double *sent_at;
  window window;
  int open;
} stream_run;

typedef struct stream_conn {
  stream_run *run;
  grpc_h2_call *call;
  int in_flight;
  bool closing;
} stream_conn;

/* A copy of the framed request with id "slot". */
static uint8_t *request_with_id(const uint8_t *framed, size_t size, int slot, size_t *out_size) {
  Inference__ModelInferRequest *m = inference__model_infer_request__unpack(NULL, size - 5, framed + 5);
  char id[24];
  snprintf(id, sizeof(id), "%d", slot);
  char *old = m->id;
  m->id = id;
  uint8_t *out = grpc_h2_frame(&m->base, out_size);
  m->id = old;
  inference__model_infer_request__free_unpacked(m, NULL);
  return out;
}

static void stream_send(stream_conn *c, int slot) {
  stream_run *run = c->run;
  run->sent_at[slot] = now_s();
  grpc_h2_call_send(c->call, run->requests[slot], run->sizes[slot]);
  c->in_flight++;
}

/* A stream that ended (or could not start) with an error is one error, when
 * it is the first. */
static void stream_record_end(stream_run *run, int status, const char *message) {
  perf_grpc_result *r = run->window.result;
  if (status == 0 || r->errors) return;
  snprintf(r->first_error, sizeof(r->first_error), "stream status %d: %s", status, message);
  r->errors++;
}

static void stream_on_message(void *user, const uint8_t *bytes, size_t size) {
  stream_conn *c = user;
  stream_run *run = c->run;
  const double t = now_s();
  Inference__ModelStreamInferResponse *m = inference__model_stream_infer_response__unpack(NULL, size, bytes);
  const char *id = m && m->infer_response ? m->infer_response->id : "";
  char *id_end;
  const long slot = strtol(id, &id_end, 10);
  const bool known = *id && !*id_end && slot >= 0 && slot < run->concurrency;
  char error[300] = "";
  if (!m) snprintf(error, sizeof(error), "malformed ModelStreamInferResponse");
  else if (*m->error_message) snprintf(error, sizeof(error), "%s", m->error_message);
  else if (!known) snprintf(error, sizeof(error), "an answer with an unknown id '%s'", id);
  c->in_flight--;
  window_record(&run->window, t, !*error, known ? (t - run->sent_at[slot]) * 1e6 : 0, error);
  if (m) inference__model_stream_infer_response__free_unpacked(m, NULL);
  if (t < run->window.end && known) stream_send(c, (int)slot);
  if (t >= run->window.end && c->in_flight == 0 && !c->closing) {
    c->closing = true;
    grpc_h2_call_close_send(c->call);
  }
}

static void stream_on_close(void *user, int status, const char *message) {
  stream_conn *c = user;
  c->call = NULL;
  c->run->open--;
  stream_record_end(c->run, status, message);
}

static inferd_error *run_stream(const perf_grpc_options *o, grpc_h2_client *client, int n_connections,
                                const uint8_t *request, size_t request_size, perf_grpc_result *r) {
  static const grpc_h2_call_handlers handlers = {.on_message = stream_on_message, .on_close = stream_on_close};
  stream_run run = {.concurrency = o->concurrency};
  run.requests = mem_zalloc((size_t)o->concurrency * sizeof(*run.requests));
  run.sizes = mem_zalloc((size_t)o->concurrency * sizeof(*run.sizes));
  run.sent_at = mem_zalloc((size_t)o->concurrency * sizeof(*run.sent_at));
  inferd_error *err = NULL;
  for (int i = 0; i < o->concurrency && !err; i++) {
    run.requests[i] = request_with_id(request, request_size, i, &run.sizes[i]);
    if (!run.requests[i]) err = err_new(INFERD_ERROR_INVALID_ARG, "the request is larger than a gRPC message can be");
  }
  stream_conn *conns = mem_zalloc((size_t)n_connections * sizeof(*conns));
  if (!err) {
    window_init(&run.window, o, r);
    for (int k = 0; k < n_connections; k++) {
      stream_conn *c = &conns[k];
      *c = (stream_conn){.run = &run, .call = grpc_h2_call_start(client, k, STREAM_PATH, &handlers, c)};
      if (!c->call) {
        stream_record_end(&run, GRPC_H2_STATUS_UNAVAILABLE, "the connection failed");
        continue;
      }
      run.open++;
      for (int i = k; i < o->concurrency; i += n_connections) stream_send(c, i);
    }
    while (run.open > 0 && now_s() < run.window.end + ANSWER_WAIT_S) grpc_h2_client_poll(client, POLL_MS);
    window_finish(&run.window, o);
  }
  for (int i = 0; i < o->concurrency; i++) free(run.requests[i]);
  free(run.requests);
  free(run.sizes);
  free(run.sent_at);
  free(conns);
  return err;
}

inferd_error *perf_grpc_run(const perf_grpc_options *o, perf_grpc_result *r) {
  *r = (perf_grpc_result){0};
  if (o->concurrency < 1 || o->duration_s <= 0 || o->batch < 1)
    return err_new(INFERD_ERROR_INVALID_ARG, "concurrency, duration and batch must be positive");
  const int n_connections =
      o->connections <= 0 ? 1 : o->connections < o->concurrency ? o->connections : o->concurrency;
  grpc_h2_client *client;
  ERR_TRY(grpc_h2_client_connect(o->target, n_connections, &client));
  uint8_t *request = NULL;
  size_t size = 0;
  inferd_error *err = build_request(client, o, &request, &size);
  if (!err && o->streaming) err = run_stream(o, client, n_connections, request, size, r);
  else if (!err) run_load(o, client, n_connections, request, size, r);
  /* Calls given up on after the window still point at the request. */
  grpc_h2_client_delete(client);
  free(request);
  return err;
}
