/*
 * The gRPC load generator; see perf_grpc.h.
 *
 * Each slot is one call at a time: created on its connection (a registered
 * method, so the path is interned once), started as one batch of every op a
 * unary call needs, and on completion timed and restarted. The request
 * bytes are serialized once and each call sends a copy of the byte buffer,
 * which only takes references to the same slices.
 */
#include "tools/perf_grpc.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "base/mem.h"
#include "frontends/grpc/grpc_service.pb-c.h"

#define INFER_PATH "/inference.GRPCInferenceService/ModelInfer"
#define METADATA_PATH "/inference.GRPCInferenceService/ModelMetadata"
#define STREAM_PATH "/inference.GRPCInferenceService/ModelStreamInfer"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct slot {
  grpc_call *call;
  double started;
  grpc_byte_buffer *send;
  grpc_byte_buffer *recv;
  grpc_metadata_array initial, trailing;
  grpc_status_code status;
  grpc_slice details;
  int channel;
  bool running;
} slot;

static grpc_channel *open_channel(const char *target) {
  /* Each connection its own: without a local subchannel pool, channels to
   * the same target would share one HTTP/2 connection. */
  grpc_arg arg = {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1};
  grpc_channel_args args = {.num_args = 1, .args = &arg};
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  grpc_channel *ch = grpc_channel_create(target, creds, &args);
  grpc_channel_credentials_release(creds);
  return ch;
}

/* Starts a call: the ops of a whole unary call in one batch, tagged with its slot. */
static bool slot_start(slot *s, grpc_channel *ch, void *method, grpc_completion_queue *cq,
                       grpc_byte_buffer *request) {
  s->call = grpc_channel_create_registered_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method,
                                                gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  s->send = grpc_byte_buffer_copy(request);
  s->recv = NULL;
  grpc_metadata_array_init(&s->initial);
  grpc_metadata_array_init(&s->trailing);
  s->details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = s->send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &s->recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &s->trailing;
  ops[5].data.recv_status_on_client.status = &s->status;
  ops[5].data.recv_status_on_client.status_details = &s->details;
  s->started = now_s();
  s->running = grpc_call_start_batch(s->call, ops, 6, s, NULL) == GRPC_CALL_OK;
  return s->running;
}

static void slot_finish(slot *s) {
  grpc_byte_buffer_destroy(s->send);
  if (s->recv) grpc_byte_buffer_destroy(s->recv);
  grpc_metadata_array_destroy(&s->initial);
  grpc_metadata_array_destroy(&s->trailing);
  grpc_slice_unref(s->details);
  grpc_call_unref(s->call);
  s->call = NULL;
  s->running = false;
}

/* One blocking unary call (for the metadata); *reply malloc'd. */
static inferd_error *call_once(grpc_channel *ch, const char *path, const uint8_t *bytes, size_t size,
                               uint8_t **reply, size_t *reply_size) {
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  void *method = grpc_channel_register_call(ch, path, NULL, NULL);
  grpc_slice s = grpc_slice_from_copied_buffer((const char *)bytes, size);
  grpc_byte_buffer *request = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  slot sl = {0};
  inferd_error *err = NULL;
  if (!slot_start(&sl, ch, method, cq, request)) {
    err = err_new(INFERD_ERROR_INTERNAL, "cannot start a call to %s", path);
  } else {
    const grpc_event ev =
        grpc_completion_queue_next(cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_seconds(30, GPR_TIMESPAN)), NULL);
    if (ev.type != GRPC_OP_COMPLETE) {
      err = err_new(INFERD_ERROR_UNAVAILABLE, "%s: no answer in 30 s", path);
      grpc_call_cancel(sl.call, NULL);
      grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    } else if (sl.status != GRPC_STATUS_OK || !sl.recv) {
      char *details = grpc_slice_to_c_string(sl.details);
      err = err_new(INFERD_ERROR_UNAVAILABLE, "%s: status %d: %s", path, (int)sl.status, details);
      gpr_free(details);
    } else {
      grpc_byte_buffer_reader reader;
      grpc_byte_buffer_reader_init(&reader, sl.recv);
      grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
      grpc_byte_buffer_reader_destroy(&reader);
      *reply_size = GRPC_SLICE_LENGTH(all);
      *reply = mem_alloc(*reply_size ? *reply_size : 1);
      memcpy(*reply, GRPC_SLICE_START_PTR(all), *reply_size);
      grpc_slice_unref(all);
    }
    slot_finish(&sl);
  }
  grpc_byte_buffer_destroy(request);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  return err;
}

/* The serialized ModelInferRequest for the model's inputs. */
static inferd_error *build_request(grpc_channel *ch, const perf_grpc_options *o, uint8_t **bytes, size_t *size) {
  Inference__ModelMetadataRequest mq = INFERENCE__MODEL_METADATA_REQUEST__INIT;
  mq.name = (char *)o->model;
  mq.version = (char *)(o->version ? o->version : "");
  size_t qsize = protobuf_c_message_get_packed_size(&mq.base);
  uint8_t *q = mem_alloc(qsize ? qsize : 1);
  protobuf_c_message_pack(&mq.base, q);
  uint8_t *reply = NULL;
  size_t reply_size = 0;
  inferd_error *err = call_once(ch, METADATA_PATH, q, qsize, &reply, &reply_size);
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
    for (size_t k = 0; k < t->n_shape; k++) {
      tensors[i].shape[k] = t->shape[k] < 0 ? o->batch : t->shape[k];
      count *= (size_t)tensors[i].shape[k];
    }
    const inferd_datatype dt = inferd_datatype_from_name(t->datatype);
    const size_t elem = inferd_datatype_size(dt);
    if (!elem) {
      err = err_new(INFERD_ERROR_UNSUPPORTED, "input '%s': %s inputs are not generated", t->name, t->datatype);
      break;
    }
    raw[i].len = count * elem;
    raw[i].data = mem_zalloc(raw[i].len ? raw[i].len : 1);
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
    *size = protobuf_c_message_get_packed_size(&req.base);
    *bytes = mem_alloc(*size ? *size : 1);
    protobuf_c_message_pack(&req.base, *bytes);
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

/* Records one completed call: its latency when OK, else the error. */
static void record(perf_grpc_result *r, double **lat, size_t *n, size_t *cap, bool ok, double latency_us,
                   const char *error) {
  if (ok) {
    if (*n == *cap) *lat = mem_realloc(*lat, (*cap *= 2) * sizeof(**lat));
    (*lat)[(*n)++] = latency_us;
    return;
  }
  if (!r->errors) snprintf(r->first_error, sizeof(r->first_error), "%s", error);
  r->errors++;
}

static inferd_error *run_load(const perf_grpc_options *o, grpc_channel **channels, int n_channels,
                              grpc_byte_buffer *request, perf_grpc_result *r) {
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  void **methods = mem_alloc((size_t)n_channels * sizeof(*methods));
  for (int i = 0; i < n_channels; i++) methods[i] = grpc_channel_register_call(channels[i], INFER_PATH, NULL, NULL);
  slot *slots = mem_zalloc((size_t)o->concurrency * sizeof(*slots));
  size_t cap = 1 << 16, n_lat = 0;
  double *lat = mem_alloc(cap * sizeof(*lat));
  const double t0 = now_s(), measure_from = t0 + o->warmup_s, end = measure_from + o->duration_s;
  int running = 0;
  for (int i = 0; i < o->concurrency; i++) {
    slots[i].channel = i % n_channels;
    if (slot_start(&slots[i], channels[slots[i].channel], methods[slots[i].channel], cq, request)) running++;
  }
  while (running > 0) {
    const grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type != GRPC_OP_COMPLETE) break;
    slot *s = ev.tag;
    const double t = now_s();
    /* Completions inside the window count, whenever they started (as wrk
     * counts): with long calls, counting only those that also started in it
     * would under-report throughput by about latency / window. */
    if (t >= measure_from && t <= end) {
      const bool ok = ev.success && s->status == GRPC_STATUS_OK;
      char error[256] = "";
      if (!ok) {
        char *details = grpc_slice_to_c_string(s->details);
        snprintf(error, sizeof(error), "status %d: %s", (int)s->status, details);
        gpr_free(details);
      }
      record(r, &lat, &n_lat, &cap, ok, (t - s->started) * 1e6, error);
    }
    slot_finish(s);
    running--;
    if (t < end && slot_start(s, channels[s->channel], methods[s->channel], cq, request)) running++;
  }
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  summarize(lat, n_lat, o->duration_s, r);
  free(lat);
  free(slots);
  free(methods);
  return NULL;
}

/* ---- streaming: ModelStreamInfer ---------------------------------------------
 * One bidirectional call per connection carries every request: slot i's
 * request has id "i", and its answer, matched by id, starts its next send.
 * gRPC takes one write at a time per call, so ready slots wait their turn. */

typedef enum stream_op { STREAM_META, STREAM_READ, STREAM_WRITE, STREAM_CLOSE } stream_op;

typedef struct stream_tag {
  stream_op op;
  struct stream_conn *conn;
} stream_tag;

typedef struct stream_conn {
  grpc_call *call;
  stream_tag meta_tag, read_tag, write_tag, close_tag;
  grpc_metadata_array initial, trailing;
  grpc_status_code status;
  grpc_slice details;
  grpc_byte_buffer *recv;
  grpc_byte_buffer *sending;
  int *ready; /* slots waiting to be sent */
  int n_ready;
  bool writing, closing;
  int in_flight;
  int pending_ops;
} stream_conn;

/* A copy of the serialized request with id "slot". */
static grpc_byte_buffer *request_with_id(const uint8_t *bytes, size_t size, int slot) {
  Inference__ModelInferRequest *m = inference__model_infer_request__unpack(NULL, size, bytes);
  char id[24];
  snprintf(id, sizeof(id), "%d", slot);
  char *old = m->id;
  m->id = id;
  size_t n = protobuf_c_message_get_packed_size(&m->base);
  uint8_t *out = mem_alloc(n ? n : 1);
  protobuf_c_message_pack(&m->base, out);
  m->id = old;
  inference__model_infer_request__free_unpacked(m, NULL);
  grpc_slice sl = grpc_slice_new(out, n, free);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);
  return bb;
}

static bool stream_batch(stream_conn *c, grpc_op *ops, size_t n, stream_tag *tag) {
  if (grpc_call_start_batch(c->call, ops, n, tag, NULL) != GRPC_CALL_OK) return false;
  c->pending_ops++;
  return true;
}

static void stream_write_next(stream_conn *c, grpc_byte_buffer **requests) {
  if (c->writing || !c->n_ready) return;
  const int slot = c->ready[--c->n_ready];
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_SEND_MESSAGE;
  c->sending = grpc_byte_buffer_copy(requests[slot]);
  op.data.send_message.send_message = c->sending;
  c->writing = stream_batch(c, &op, 1, &c->write_tag);
  if (c->writing) c->in_flight++;
}

static void stream_read_next(stream_conn *c) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->recv;
  stream_batch(c, &op, 1, &c->read_tag);
}

static void stream_close(stream_conn *c) {
  if (c->closing) return;
  c->closing = true;
  grpc_op ops[2];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[1].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[1].data.recv_status_on_client.trailing_metadata = &c->trailing;
  ops[1].data.recv_status_on_client.status = &c->status;
  ops[1].data.recv_status_on_client.status_details = &c->details;
  stream_batch(c, ops, 2, &c->close_tag);
}

static inferd_error *run_stream(const perf_grpc_options *o, grpc_channel **channels, int n_channels,
                                const uint8_t *bytes, size_t size, perf_grpc_result *r) {
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  stream_conn *conns = mem_zalloc((size_t)n_channels * sizeof(*conns));
  grpc_byte_buffer **requests = mem_alloc((size_t)o->concurrency * sizeof(*requests));
  double *sent_at = mem_zalloc((size_t)o->concurrency * sizeof(*sent_at));
  for (int i = 0; i < o->concurrency; i++) requests[i] = request_with_id(bytes, size, i);
  size_t cap = 1 << 16, n_lat = 0;
  double *lat = mem_alloc(cap * sizeof(*lat));
  const double t0 = now_s(), measure_from = t0 + o->warmup_s, end = measure_from + o->duration_s;
  grpc_slice path = grpc_slice_from_static_string(STREAM_PATH);
  int open = 0;
  for (int k = 0; k < n_channels; k++) {
    stream_conn *c = &conns[k];
    c->meta_tag = (stream_tag){STREAM_META, c};
    c->read_tag = (stream_tag){STREAM_READ, c};
    c->write_tag = (stream_tag){STREAM_WRITE, c};
    c->close_tag = (stream_tag){STREAM_CLOSE, c};
    grpc_metadata_array_init(&c->initial);
    grpc_metadata_array_init(&c->trailing);
    c->details = grpc_empty_slice();
    c->ready = mem_alloc((size_t)o->concurrency * sizeof(int));
    for (int i = k; i < o->concurrency; i += n_channels) c->ready[c->n_ready++] = i;
    c->call = grpc_channel_create_call(channels[k], NULL, GRPC_PROPAGATE_DEFAULTS, cq, path, NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &c->initial;
    stream_batch(c, ops, 2, &c->meta_tag);
    stream_read_next(c);
    for (int i = 0; i < c->n_ready; i++) sent_at[c->ready[i]] = now_s();
    stream_write_next(c, requests);
    open++;
  }
  while (open > 0) {
    const grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type != GRPC_OP_COMPLETE) break;
    stream_tag *tag = ev.tag;
    stream_conn *c = tag->conn;
    c->pending_ops--;
    const double t = now_s();
    switch (tag->op) {
      case STREAM_META:
        break;
      case STREAM_WRITE:
        grpc_byte_buffer_destroy(c->sending);
        c->sending = NULL;
        c->writing = false;
        if (!ev.success) stream_close(c);
        else stream_write_next(c, requests);
        break;
      case STREAM_READ: {
        if (!ev.success || !c->recv) {
          stream_close(c);
          break;
        }
        grpc_byte_buffer_reader reader;
        grpc_byte_buffer_reader_init(&reader, c->recv);
        grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
        grpc_byte_buffer_reader_destroy(&reader);
        grpc_byte_buffer_destroy(c->recv);
        c->recv = NULL;
        Inference__ModelStreamInferResponse *m =
            inference__model_stream_infer_response__unpack(NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
        grpc_slice_unref(all);
        const char *id = m && m->infer_response ? m->infer_response->id : "";
        const int slot = atoi(id);
        c->in_flight--;
        if (t >= measure_from && t <= end)
          record(r, &lat, &n_lat, &cap, m && !*m->error_message, (t - sent_at[slot]) * 1e6,
                 m ? m->error_message : "malformed ModelStreamInferResponse");
        if (m) inference__model_stream_infer_response__free_unpacked(m, NULL);
        if (t < end && slot >= 0 && slot < o->concurrency) {
          sent_at[slot] = now_s();
          c->ready[c->n_ready++] = slot;
          stream_write_next(c, requests);
        }
        if (t >= end && c->in_flight == 0) stream_close(c);
        stream_read_next(c);
        break;
      }
      case STREAM_CLOSE:
        if (c->status != GRPC_STATUS_OK && !r->errors) {
          char *details = grpc_slice_to_c_string(c->details);
          snprintf(r->first_error, sizeof(r->first_error), "stream status %d: %s", (int)c->status, details);
          gpr_free(details);
          r->errors++;
        }
        break;
    }
    if (c->closing && c->pending_ops == 0 && c->call) {
      grpc_call_unref(c->call);
      c->call = NULL;
      open--;
    }
  }
  summarize(lat, n_lat, o->duration_s, r);
  for (int k = 0; k < n_channels; k++) {
    stream_conn *c = &conns[k];
    if (c->call) grpc_call_unref(c->call);
    if (c->recv) grpc_byte_buffer_destroy(c->recv);
    if (c->sending) grpc_byte_buffer_destroy(c->sending);
    grpc_metadata_array_destroy(&c->initial);
    grpc_metadata_array_destroy(&c->trailing);
    grpc_slice_unref(c->details);
    free(c->ready);
  }
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  for (int i = 0; i < o->concurrency; i++) grpc_byte_buffer_destroy(requests[i]);
  free(requests);
  free(sent_at);
  free(lat);
  free(conns);
  return NULL;
}

inferd_error *perf_grpc_run(const perf_grpc_options *o, perf_grpc_result *r) {
  *r = (perf_grpc_result){0};
  if (o->concurrency < 1 || o->duration_s <= 0 || o->batch < 1)
    return err_new(INFERD_ERROR_INVALID_ARG, "concurrency, duration and batch must be positive");
  grpc_init();
  const int n_channels = o->connections <= 0 ? 1 : o->connections < o->concurrency ? o->connections : o->concurrency;
  grpc_channel **channels = mem_alloc((size_t)n_channels * sizeof(*channels));
  for (int i = 0; i < n_channels; i++) channels[i] = open_channel(o->target);
  uint8_t *bytes = NULL;
  size_t size = 0;
  inferd_error *err = build_request(channels[0], o, &bytes, &size);
  if (!err && o->streaming) {
    err = run_stream(o, channels, n_channels, bytes, size, r);
    free(bytes);
  } else if (!err) {
    grpc_slice s = grpc_slice_new(bytes, size, free);
    grpc_byte_buffer *request = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    err = run_load(o, channels, n_channels, request, r);
    grpc_byte_buffer_destroy(request);
  }
  for (int i = 0; i < n_channels; i++) grpc_channel_destroy(channels[i]);
  free(channels);
  grpc_shutdown();
  return err;
}
