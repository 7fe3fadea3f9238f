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
      if (ev.success && s->status == GRPC_STATUS_OK) {
        if (n_lat == cap) lat = mem_realloc(lat, (cap *= 2) * sizeof(*lat));
        lat[n_lat++] = (t - s->started) * 1e6;
      } else {
        if (!r->errors) {
          char *details = grpc_slice_to_c_string(s->details);
          snprintf(r->first_error, sizeof(r->first_error), "status %d: %s", (int)s->status, details);
          gpr_free(details);
        }
        r->errors++;
      }
    }
    slot_finish(s);
    running--;
    if (t < end && slot_start(s, channels[s->channel], methods[s->channel], cq, request)) running++;
  }
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  qsort(lat, n_lat, sizeof(*lat), compare_double);
  double sum = 0;
  for (size_t i = 0; i < n_lat; i++) sum += lat[i];
  r->requests = n_lat;
  r->seconds = o->duration_s;
  r->requests_per_sec = (double)n_lat / o->duration_s;
  r->mean_us = n_lat ? sum / (double)n_lat : 0;
  r->p50_us = percentile(lat, n_lat, 50);
  r->p90_us = percentile(lat, n_lat, 90);
  r->p99_us = percentile(lat, n_lat, 99);
  free(lat);
  free(slots);
  free(methods);
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
  if (!err) {
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
