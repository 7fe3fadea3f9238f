/*
 * The gRPC frontend's transport: a gRPC core server, `threads` completion
 * queues each drained by its own thread, and the lifecycles of unary calls
 * and of the inference stream.
 *
 * Calls. For every method each queue keeps a request for a new call posted
 * (two for ModelInfer, so a burst does not wait for a re-post); when one
 * arrives it is replaced at once and handled. Unary calls arrive with their
 * message and end with one batch: initial metadata, the reply, the status,
 * and the receipt of the client's close. A call is freed when that batch is
 * done and, for an inference, when the server has released the request.
 * Ended call objects go back to a pool of --grpc-infer-allocation-pool-size
 * entries for the next call.
 *
 * The stream (ModelStreamInfer). A read is always posted while the client
 * sends; each message is decoded and handed to the server, so many requests
 * of one stream are in flight together. Responses come back on server
 * threads in any order, carrying their request's id; gRPC allows one write
 * in flight per call, so they queue under the stream's lock and each write's
 * completion starts the next. A request that fails (bad input, unknown
 * model, server stopping) is answered in the stream with error_message and
 * the stream stays open. When the client has closed its side, every request
 * is answered and every write done, the stream ends with OK. References
 * (each posted operation, each request in flight) keep the stream alive; the
 * last one frees it.
 *
 * Shutdown. While the server drains, calls are still taken (it refuses new
 * inferences itself, see grpc_frontend_stop_listening). delete shuts the
 * core server down: no new calls, clients are sent GOAWAY, the posted
 * requests for new calls come back failed; it waits (up to a grace period,
 * then cancels what is left) for the open calls, then for every call object
 * to be freed (an inference the server still holds keeps its call), and
 * destroys the server and queues.
 */
#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "base/log.h"
#include "base/mem.h"
#include "frontends/grpc/grpc_frontend.h"
#include "frontends/grpc/grpc_internal.h"

enum {
  GRPC_METHOD_INFER = 0,
  GRPC_METHOD_STREAM = 1,
  SHUTDOWN_GRACE_SECS = 10,
  MAX_PEM_BYTES = 1 << 20,
};

typedef struct grpc_worker {
  struct grpc_frontend *frontend;
  grpc_completion_queue *cq;
  pthread_t tid;
  bool started;
} grpc_worker;

struct grpc_frontend {
  inferd_server *server;
  grpc_server *core;
  void *methods[16];
  grpc_worker *workers;
  int worker_count;
  int port;
  int pool_cap;
  grpc_compression_level response_compression; /* GRPC_COMPRESS_LEVEL_NONE: off */
  grpc_tag shutdown_tag;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  /* Under lock: */
  size_t live;          /* call objects not yet freed (posted requests included) */
  bool stopping;        /* shutdown asked: no new requests are posted */
  bool shutdown_done;   /* the core server's shutdown has completed */
  grpc_unary **pool;    /* ended unary calls kept for reuse */
  int pool_count;
};

/* ---- small helpers ------------------------------------------------------------ */

static void live_add(grpc_frontend *f, long delta) {
  pthread_mutex_lock(&f->lock);
  f->live = (size_t)((long)f->live + delta);
  if (f->live == 0) pthread_cond_broadcast(&f->changed);
  pthread_mutex_unlock(&f->lock);
}

static bool is_stopping(grpc_frontend *f) {
  pthread_mutex_lock(&f->lock);
  const bool stopping = f->stopping;
  pthread_mutex_unlock(&f->lock);
  return stopping;
}

/* The whole message of a byte buffer in one slice (the reader inflates a
 * compressed message). */
static bool read_message(grpc_byte_buffer *bb, grpc_slice *out) {
  grpc_byte_buffer_reader reader;
  if (!grpc_byte_buffer_reader_init(&reader, bb)) return false;
  *out = grpc_byte_buffer_reader_readall(&reader);
  grpc_byte_buffer_reader_destroy(&reader);
  return true;
}

static void free_bytes(void *p) { free(p); }

/* A byte buffer owning `bytes` (malloc'd) without copying them. */
static grpc_byte_buffer *buffer_of(uint8_t *bytes, size_t size) {
  grpc_slice s = grpc_slice_new(bytes, size, free_bytes);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

static uint8_t *pack_message(const ProtobufCMessage *m, size_t *size) {
  *size = protobuf_c_message_get_packed_size(m);
  uint8_t *bytes = mem_alloc(*size ? *size : 1);
  protobuf_c_message_pack(m, bytes);
  return bytes;
}

/* ---- unary calls -------------------------------------------------------------- */

static void unary_post(grpc_worker *w, int method);
static void stream_post(grpc_worker *w);

static grpc_unary *unary_new(grpc_worker *w, int method) {
  grpc_frontend *f = w->frontend;
  grpc_unary *c = NULL;
  pthread_mutex_lock(&f->lock);
  if (f->pool_count) c = f->pool[--f->pool_count];
  f->live++;
  pthread_mutex_unlock(&f->lock);
  if (!c) c = mem_alloc(sizeof(*c));
  *c = (grpc_unary){.frontend = f, .worker = w, .server = f->server, .method = method};
  grpc_metadata_array_init(&c->metadata);
  c->details = grpc_empty_slice();
  atomic_init(&c->refs, 1);
  return c;
}

static void unary_free(grpc_unary *c) {
  grpc_frontend *f = c->frontend;
  if (c->call) grpc_call_unref(c->call);
  grpc_metadata_array_destroy(&c->metadata);
  if (c->payload) grpc_byte_buffer_destroy(c->payload);
  if (c->reply) grpc_byte_buffer_destroy(c->reply);
  grpc_slice_unref(c->details);
  grpc_infer_decoded_free(&c->decoded);
  free(c->model);
  free(c->config_json);
  pthread_mutex_lock(&f->lock);
  if (f->pool_count < f->pool_cap) {
    f->pool[f->pool_count++] = c;
    c = NULL;
  }
  f->live--;
  if (f->live == 0) pthread_cond_broadcast(&f->changed);
  pthread_mutex_unlock(&f->lock);
  free(c);
}

void grpc_unary_unref(grpc_unary *c) {
  if (atomic_fetch_sub(&c->refs, 1) == 1) unary_free(c);
}

static void on_unary_done(grpc_tag *tag, bool ok) {
  (void)ok; /* a failed batch means the client is gone; nothing to do */
  grpc_unary_unref((grpc_unary *)tag);
}

/* The initial metadata op of an inference answer: compressed as configured
 * (gRPC core picks an algorithm the client accepts at that level). */
static void initial_metadata(grpc_frontend *f, bool inference, grpc_op *op) {
  op->op = GRPC_OP_SEND_INITIAL_METADATA;
  if (inference && f->response_compression != GRPC_COMPRESS_LEVEL_NONE) {
    op->data.send_initial_metadata.maybe_compression_level.is_set = 1;
    op->data.send_initial_metadata.maybe_compression_level.level = f->response_compression;
  }
}

/* Starts the final batch: the reply (when status is OK), the status, and the
 * receipt of the client's close. */
static void unary_finish(grpc_unary *c, grpc_status_code status) {
  grpc_op ops[4];
  memset(ops, 0, sizeof(ops));
  size_t n = 0;
  initial_metadata(c->frontend, c->method == GRPC_METHOD_INFER, &ops[n++]);
  if (status == GRPC_STATUS_OK && c->reply) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = c->reply;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = status;
  ops[n++].data.send_status_from_server.status_details = status == GRPC_STATUS_OK ? NULL : &c->details;
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
  c->tag.done = on_unary_done;
  const grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->tag, NULL);
  if (e != GRPC_CALL_OK) {
    log_warn("grpc: cannot answer a call (%s)", grpc_call_error_to_string(e));
    grpc_unary_unref(c);
  }
}

void grpc_unary_reply_bytes(grpc_unary *c, uint8_t *bytes, size_t size) {
  c->reply = buffer_of(bytes, size);
  unary_finish(c, GRPC_STATUS_OK);
}

void grpc_unary_reply(grpc_unary *c, const ProtobufCMessage *reply) {
  size_t size;
  uint8_t *bytes = pack_message(reply, &size);
  grpc_unary_reply_bytes(c, bytes, size);
}

void grpc_unary_fail(grpc_unary *c, inferd_error *error) {
  const grpc_status_code status = (grpc_status_code)inferd_error_code_grpc_status(inferd_error_code_of(error));
  log_verbose("grpc: %s: %s %s", grpc_methods[c->method].path, inferd_error_code_name(inferd_error_code_of(error)),
              inferd_error_message(error));
  grpc_slice_unref(c->details);
  c->details = grpc_slice_from_copied_string(inferd_error_message(error));
  inferd_error_delete(error);
  unary_finish(c, status == GRPC_STATUS_OK ? GRPC_STATUS_UNKNOWN : status);
}

bool grpc_unary_payload(grpc_unary *c, grpc_slice *out) {
  if (!c->payload) {
    grpc_unary_fail(c, err_new(INFERD_ERROR_INVALID_ARG, "the call carries no request message"));
    return false;
  }
  if (!read_message(c->payload, out)) {
    grpc_unary_fail(c, err_new(INFERD_ERROR_INVALID_ARG, "the request message cannot be read (bad compression?)"));
    return false;
  }
  return true;
}

ProtobufCMessage *grpc_unary_request(grpc_unary *c, const ProtobufCMessageDescriptor *descriptor) {
  grpc_slice payload;
  if (!grpc_unary_payload(c, &payload)) return NULL;
  ProtobufCMessage *m =
      protobuf_c_message_unpack(descriptor, NULL, GRPC_SLICE_LENGTH(payload), GRPC_SLICE_START_PTR(payload));
  grpc_slice_unref(payload);
  if (!m) grpc_unary_fail(c, err_new(INFERD_ERROR_INVALID_ARG, "malformed %s message", descriptor->name));
  return m;
}

static void on_unary_new(grpc_tag *tag, bool ok) {
  grpc_unary *c = (grpc_unary *)tag;
  if (!ok) {
    /* The server is shutting down: this posted request ends unused. */
    grpc_unary_unref(c);
    return;
  }
  if (!is_stopping(c->frontend)) unary_post(c->worker, c->method);
  grpc_methods[c->method].handle(c);
}

static void unary_post(grpc_worker *w, int method) {
  grpc_unary *c = unary_new(w, method);
  c->tag.done = on_unary_new;
  const grpc_call_error e = grpc_server_request_registered_call(
      w->frontend->core, w->frontend->methods[method], &c->call, &c->deadline, &c->metadata, &c->payload, w->cq,
      w->cq, &c->tag);
  if (e != GRPC_CALL_OK) {
    log_warn("grpc: cannot wait for %s calls (%s)", grpc_methods[method].path, grpc_call_error_to_string(e));
    grpc_unary_unref(c);
  }
}

/* ---- the inference stream -------------------------------------------------------- */

typedef struct stream_write {
  struct stream_write *next;
  grpc_byte_buffer *message;
} stream_write;

typedef struct stream_call {
  grpc_frontend *frontend;
  grpc_worker *worker;
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array metadata;
  grpc_tag new_tag, read_tag, write_tag, close_tag, status_tag;
  grpc_byte_buffer *read_buffer;
  grpc_byte_buffer *writing_message;
  int cancelled;
  pthread_mutex_t lock;
  /* Under lock: */
  int refs;
  int in_flight;          /* requests the server holds */
  stream_write *queue_head, *queue_tail;
  bool writing;           /* a write batch is in flight */
  bool sent_metadata;     /* initial metadata went with a write */
  bool reads_done;        /* the client closed its side, or the call failed */
  bool broken;            /* a write failed or the call was cancelled: drop output */
  bool status_started;
} stream_call;

typedef struct stream_request {
  stream_call *stream;
  grpc_infer_decoded decoded;
  atomic_int callbacks_left;
} stream_request;

static void stream_free(stream_call *s) {
  stream_write *q = s->queue_head;
  while (q) {
    stream_write *next = q->next;
    grpc_byte_buffer_destroy(q->message);
    free(q);
    q = next;
  }
  if (s->call) grpc_call_unref(s->call);
  grpc_metadata_array_destroy(&s->metadata);
  if (s->read_buffer) grpc_byte_buffer_destroy(s->read_buffer);
  pthread_mutex_destroy(&s->lock);
  grpc_frontend *f = s->frontend;
  free(s);
  live_add(f, -1);
}

static void on_stream_status(grpc_tag *tag, bool ok);
static void on_stream_write(grpc_tag *tag, bool ok);

/* Under the lock: starts a batch of `op`, preceded by the initial metadata
 * when nothing has been sent yet. */
static bool stream_start_locked(stream_call *s, const grpc_op *op, grpc_tag *tag) {
  grpc_op ops[2];
  memset(ops, 0, sizeof(ops));
  size_t n = 0;
  if (!s->sent_metadata) initial_metadata(s->frontend, true, &ops[n++]);
  ops[n++] = *op;
  if (grpc_call_start_batch(s->call, ops, n, tag, NULL) != GRPC_CALL_OK) return false;
  s->sent_metadata = true;
  return true;
}

/* Under the lock: starts the next write, or ends the stream when it is all
 * done. Returns with the lock still held. */
static void stream_advance_locked(stream_call *s) {
  if (s->broken) {
    stream_write *q = s->queue_head;
    s->queue_head = s->queue_tail = NULL;
    while (q) {
      stream_write *next = q->next;
      grpc_byte_buffer_destroy(q->message);
      free(q);
      q = next;
    }
  }
  if (!s->writing && s->queue_head) {
    stream_write *q = s->queue_head;
    s->queue_head = q->next;
    if (!s->queue_head) s->queue_tail = NULL;
    s->writing_message = q->message;
    free(q);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = s->writing_message;
    s->write_tag.done = on_stream_write;
    if (stream_start_locked(s, &op, &s->write_tag)) {
      s->writing = true;
      s->refs++;
    } else {
      grpc_byte_buffer_destroy(s->writing_message);
      s->writing_message = NULL;
      s->broken = true;
    }
  }
  if (s->reads_done && s->in_flight == 0 && !s->writing && !s->queue_head && !s->status_started) {
    s->status_started = true;
    if (s->broken) return; /* the client is gone; nothing to tell it */
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    op.data.send_status_from_server.status = GRPC_STATUS_OK;
    s->status_tag.done = on_stream_status;
    if (stream_start_locked(s, &op, &s->status_tag)) s->refs++;
  }
}

/* Drops `n` references and frees the stream when none is left. */
static void stream_unref(stream_call *s, int n) {
  pthread_mutex_lock(&s->lock);
  s->refs -= n;
  stream_advance_locked(s);
  const bool last = s->refs == 0;
  pthread_mutex_unlock(&s->lock);
  if (last) stream_free(s);
}

static void on_stream_status(grpc_tag *tag, bool ok) {
  (void)ok;
  stream_call *s = (stream_call *)((char *)tag - offsetof(stream_call, status_tag));
  stream_unref(s, 1);
}

static void on_stream_close(grpc_tag *tag, bool ok) {
  (void)ok;
  stream_call *s = (stream_call *)((char *)tag - offsetof(stream_call, close_tag));
  pthread_mutex_lock(&s->lock);
  if (s->cancelled) s->broken = true;
  pthread_mutex_unlock(&s->lock);
  stream_unref(s, 1);
}

static void on_stream_write(grpc_tag *tag, bool ok) {
  stream_call *s = (stream_call *)((char *)tag - offsetof(stream_call, write_tag));
  pthread_mutex_lock(&s->lock);
  grpc_byte_buffer_destroy(s->writing_message);
  s->writing_message = NULL;
  s->writing = false;
  if (!ok) s->broken = true;
  pthread_mutex_unlock(&s->lock);
  stream_unref(s, 1);
}

/* Queues a message (malloc'd bytes, taken) for the client. */
static void stream_send(stream_call *s, uint8_t *bytes, size_t size) {
  if (!bytes) return;
  stream_write *q = mem_alloc(sizeof(*q));
  *q = (stream_write){.message = buffer_of(bytes, size)};
  pthread_mutex_lock(&s->lock);
  if (s->queue_tail)
    s->queue_tail->next = q;
  else
    s->queue_head = q;
  s->queue_tail = q;
  stream_advance_locked(s);
  pthread_mutex_unlock(&s->lock);
}

static void stream_send_error(stream_call *s, const char *message, const char *model, const char *id) {
  size_t size;
  uint8_t *bytes = grpc_stream_error_encode(message, model, id, &size);
  if (!bytes) {
    log_warn("grpc: out of memory for a stream error: %s", message);
    return;
  }
  stream_send(s, bytes, size);
}

static void stream_request_done(stream_request *r) {
  if (atomic_fetch_sub(&r->callbacks_left, 1) != 1) return;
  stream_call *s = r->stream;
  grpc_infer_decoded_free(&r->decoded);
  free(r);
  pthread_mutex_lock(&s->lock);
  s->in_flight--;
  pthread_mutex_unlock(&s->lock);
  stream_unref(s, 1);
}

static void on_stream_release(inferd_request *request, void *userp) {
  (void)request;
  stream_request_done(userp);
}

static void on_stream_response(inferd_response *response, void *userp) {
  stream_request *r = userp;
  const inferd_error *rerr = inferd_response_error(response);
  if (rerr) {
    stream_send_error(r->stream, inferd_error_message(rerr), inferd_response_model(response),
                      inferd_response_id(response));
  } else {
    uint8_t *bytes;
    size_t size;
    inferd_error *err = grpc_infer_encode_response(response, &r->decoded, true, &bytes, &size);
    if (err) {
      stream_send_error(r->stream, inferd_error_message(err), inferd_response_model(response),
                        inferd_response_id(response));
      inferd_error_delete(err);
    } else {
      stream_send(r->stream, bytes, size);
    }
  }
  inferd_response_delete(response);
  stream_request_done(r);
}

/* One message read from the stream: decode and hand it to the server. */
static void stream_handle(stream_call *s, grpc_byte_buffer *bb) {
  grpc_slice payload;
  if (!read_message(bb, &payload)) {
    stream_send_error(s, "the request message cannot be read (bad compression?)", NULL, NULL);
    return;
  }
  stream_request *r = mem_alloc(sizeof(*r));
  *r = (stream_request){.stream = s};
  inferd_error *err = grpc_infer_decode(GRPC_SLICE_START_PTR(payload), GRPC_SLICE_LENGTH(payload), &r->decoded);
  grpc_slice_unref(payload);
  inferd_request *request = NULL;
  if (!err) err = grpc_infer_build_request(s->frontend->server, &r->decoded, &request);
  if (!err) {
    atomic_init(&r->callbacks_left, 2);
    pthread_mutex_lock(&s->lock);
    s->in_flight++;
    s->refs++;
    pthread_mutex_unlock(&s->lock);
    inferd_request_set_callbacks(request, on_stream_release, r, on_stream_response, r);
    err = inferd_server_infer(s->frontend->server, request);
    if (!err) return;
    inferd_request_delete(request);
    pthread_mutex_lock(&s->lock);
    s->in_flight--;
    s->refs--;
    pthread_mutex_unlock(&s->lock);
  }
  const Inference__ModelInferRequest *m = r->decoded.message;
  stream_send_error(s, inferd_error_message(err), m ? m->model_name : NULL, m ? m->id : NULL);
  log_verbose("grpc: stream request: %s", inferd_error_message(err));
  inferd_error_delete(err);
  grpc_infer_decoded_free(&r->decoded);
  free(r);
}

static void stream_read(stream_call *s);

static void on_stream_read(grpc_tag *tag, bool ok) {
  stream_call *s = (stream_call *)((char *)tag - offsetof(stream_call, read_tag));
  grpc_byte_buffer *bb = s->read_buffer;
  s->read_buffer = NULL;
  if (!ok || !bb) {
    /* The client closed its side (or the call failed): no more reads. */
    if (bb) grpc_byte_buffer_destroy(bb);
    pthread_mutex_lock(&s->lock);
    s->reads_done = true;
    if (!ok) s->broken = true;
    pthread_mutex_unlock(&s->lock);
    stream_unref(s, 1);
    return;
  }
  stream_handle(s, bb);
  grpc_byte_buffer_destroy(bb);
  /* The read's reference passes to the next read. */
  stream_read(s);
}

static void stream_read(stream_call *s) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &s->read_buffer;
  s->read_tag.done = on_stream_read;
  if (grpc_call_start_batch(s->call, &op, 1, &s->read_tag, NULL) != GRPC_CALL_OK) {
    pthread_mutex_lock(&s->lock);
    s->reads_done = true;
    s->broken = true;
    pthread_mutex_unlock(&s->lock);
    stream_unref(s, 1);
  }
}

static void on_stream_new(grpc_tag *tag, bool ok) {
  stream_call *s = (stream_call *)((char *)tag - offsetof(stream_call, new_tag));
  if (!ok) {
    stream_free(s);
    return;
  }
  if (!is_stopping(s->frontend)) stream_post(s->worker);
  /* One reference for the close notice, one for the read loop. */
  pthread_mutex_lock(&s->lock);
  s->refs = 2;
  pthread_mutex_unlock(&s->lock);
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &s->cancelled;
  s->close_tag.done = on_stream_close;
  if (grpc_call_start_batch(s->call, &op, 1, &s->close_tag, NULL) != GRPC_CALL_OK) stream_unref(s, 1);
  stream_read(s);
}

static void stream_post(grpc_worker *w) {
  stream_call *s = mem_zalloc(sizeof(*s));
  s->frontend = w->frontend;
  s->worker = w;
  pthread_mutex_init(&s->lock, NULL);
  grpc_metadata_array_init(&s->metadata);
  s->new_tag.done = on_stream_new;
  live_add(w->frontend, 1);
  const grpc_call_error e =
      grpc_server_request_registered_call(w->frontend->core, w->frontend->methods[GRPC_METHOD_STREAM], &s->call,
                                          &s->deadline, &s->metadata, NULL, w->cq, w->cq, &s->new_tag);
  if (e != GRPC_CALL_OK) {
    log_warn("grpc: cannot wait for stream calls (%s)", grpc_call_error_to_string(e));
    stream_free(s);
  }
}

/* ---- threads and the server ------------------------------------------------------- */

static void *worker_main(void *arg) {
  grpc_worker *w = arg;
  for (;;) {
    const grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type == GRPC_OP_COMPLETE) {
      grpc_tag *tag = ev.tag;
      tag->done(tag, ev.success != 0);
    }
  }
  return NULL;
}

static void on_shutdown(grpc_tag *tag, bool ok) {
  (void)ok;
  grpc_frontend *f = (grpc_frontend *)((char *)tag - offsetof(grpc_frontend, shutdown_tag));
  pthread_mutex_lock(&f->lock);
  f->shutdown_done = true;
  pthread_cond_broadcast(&f->changed);
  pthread_mutex_unlock(&f->lock);
}

static inferd_error *read_pem(const char *what, const char *path, char **out) {
  *out = NULL;
  if (!path || !*path) return err_new(INFERD_ERROR_INVALID_ARG, "gRPC TLS needs %s (a PEM file)", what);
  FILE *fp = fopen(path, "rb");
  if (!fp) return err_new(INFERD_ERROR_IO, "gRPC TLS: cannot open %s '%s': %s", what, path, strerror(errno));
  char *text = mem_alloc(MAX_PEM_BYTES + 1);
  const size_t n = fread(text, 1, MAX_PEM_BYTES + 1, fp);
  const bool failed = ferror(fp);
  fclose(fp);
  if (failed || n == 0 || n > MAX_PEM_BYTES) {
    free(text);
    return err_new(INFERD_ERROR_IO, "gRPC TLS: %s '%s' is %s", what, path,
                   failed ? "unreadable" : n == 0 ? "empty" : "larger than 1 MiB");
  }
  text[n] = '\0';
  *out = text;
  return NULL;
}

static inferd_error *make_credentials(const grpc_frontend_options *o, grpc_server_credentials **out) {
  *out = NULL;
  if (!o->use_ssl) {
    if (o->use_ssl_mutual)
      return err_new(INFERD_ERROR_INVALID_ARG, "--grpc-use-ssl-mutual needs --grpc-use-ssl=true");
    *out = grpc_insecure_server_credentials_create();
    return NULL;
  }
  char *cert = NULL, *key = NULL, *root = NULL;
  inferd_error *err = read_pem("--grpc-server-cert", o->server_cert, &cert);
  if (!err) err = read_pem("--grpc-server-key", o->server_key, &key);
  if (!err && (o->use_ssl_mutual || (o->root_cert && *o->root_cert)))
    err = read_pem("--grpc-root-cert", o->root_cert, &root);
  if (!err) {
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
    *out = grpc_ssl_server_credentials_create_ex(
        root, &pair, 1,
        o->use_ssl_mutual ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                          : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        NULL);
    if (!*out) err = err_new(INFERD_ERROR_INVALID_ARG, "gRPC TLS: the certificate or key is not usable");
  }
  free(cert);
  free(key);
  free(root);
  return err;
}

static void frontend_free(grpc_frontend *f) {
  if (f->core) grpc_server_destroy(f->core);
  for (int i = 0; i < f->worker_count; i++) {
    grpc_worker *w = &f->workers[i];
    if (!w->cq) continue;
    grpc_completion_queue_shutdown(w->cq);
    if (w->started)
      pthread_join(w->tid, NULL);
    else
      while (grpc_completion_queue_next(w->cq, gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN) {
      }
    grpc_completion_queue_destroy(w->cq);
  }
  free(f->workers);
  for (int i = 0; i < f->pool_count; i++) free(f->pool[i]);
  free(f->pool);
  pthread_cond_destroy(&f->changed);
  pthread_mutex_destroy(&f->lock);
  free(f);
  grpc_shutdown();
}

static void shutdown_begin(grpc_frontend *f);

/* Waits, under f->lock, until `done` or the absolute deadline; false on timeout. */
static bool wait_until(grpc_frontend *f, const bool *done, const struct timespec *deadline) {
  while (!*done) {
    if (deadline) {
      if (pthread_cond_timedwait(&f->changed, &f->lock, deadline) == ETIMEDOUT) return *done;
    } else {
      pthread_cond_wait(&f->changed, &f->lock);
    }
  }
  return true;
}

/* Shuts the core server down and waits for its calls to end; the calls
 * still open after `grace_secs` are cancelled. */
static void shutdown_core(grpc_frontend *f, int grace_secs) {
  shutdown_begin(f);
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += grace_secs;
  pthread_mutex_lock(&f->lock);
  if (!wait_until(f, &f->shutdown_done, &deadline)) {
    pthread_mutex_unlock(&f->lock);
    log_warn("grpc: cancelling the calls still open after %d s", grace_secs);
    grpc_server_cancel_all_calls(f->core);
    pthread_mutex_lock(&f->lock);
    wait_until(f, &f->shutdown_done, NULL);
  }
  while (f->live > 0) pthread_cond_wait(&f->changed, &f->lock);
  pthread_mutex_unlock(&f->lock);
}

inferd_error *grpc_frontend_start(inferd_server *server, const grpc_frontend_options *options, grpc_frontend **out) {
  *out = NULL;
  const grpc_frontend_options defaults = {0};
  const grpc_frontend_options *o = options ? options : &defaults;
  const char *address = o->address && *o->address ? o->address : "0.0.0.0";
  if (o->port < 0 || o->port > 65535) return err_new(INFERD_ERROR_INVALID_ARG, "invalid gRPC port %d", o->port);
  grpc_server_credentials *creds;
  ERR_TRY(make_credentials(o, &creds));

  grpc_init();
  grpc_frontend *f = mem_zalloc(sizeof(*f));
  f->server = server;
  pthread_mutex_init(&f->lock, NULL);
  pthread_cond_init(&f->changed, NULL);
  f->pool_cap = o->infer_allocation_pool_size > 0 ? o->infer_allocation_pool_size : 0;
  static const grpc_compression_level levels[] = {GRPC_COMPRESS_LEVEL_NONE, GRPC_COMPRESS_LEVEL_LOW,
                                                  GRPC_COMPRESS_LEVEL_MED, GRPC_COMPRESS_LEVEL_HIGH};
  f->response_compression = o->response_compression_level > 0 && o->response_compression_level <= 3
                                ? levels[o->response_compression_level]
                                : GRPC_COMPRESS_LEVEL_NONE;
  f->pool = mem_zalloc((size_t)(f->pool_cap ? f->pool_cap : 1) * sizeof(*f->pool));
  f->worker_count = o->threads > 0 ? o->threads : 1;
  f->workers = mem_zalloc((size_t)f->worker_count * sizeof(*f->workers));

  const int max_message = o->max_message_size > 0 ? o->max_message_size : INT_MAX;
  grpc_arg args[] = {
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = max_message},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = max_message},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIME_MS,
       .value.integer = o->keepalive_time_ms > 0 ? o->keepalive_time_ms : 7200000},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
       .value.integer = o->keepalive_timeout_ms > 0 ? o->keepalive_timeout_ms : 20000},
      /* Channelz keeps per-call counters and traces nobody here reads; off,
       * a tiny-model call took about 10% less server CPU (measured with
       * inferd perf at concurrency 1). */
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ENABLE_CHANNELZ, .value.integer = 0},
      /* A 4 MiB stream window: with HTTP/2's default 64 KiB, a 600 KB image
       * waits for about ten window updates on its way in, which cost ResNet-50
       * about 5% of its throughput at concurrency 1 (inferd perf, 2 cores). */
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, .value.integer = 4 << 20},
  };
  const grpc_channel_args channel_args = {.num_args = sizeof(args) / sizeof(args[0]), .args = args};
  f->core = grpc_server_create(&channel_args, NULL);
  for (int m = 0; m < grpc_method_count; m++)
    f->methods[m] = grpc_server_register_method(
        f->core, grpc_methods[m].path, NULL,
        grpc_methods[m].streaming ? GRPC_SRM_PAYLOAD_NONE : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  for (int i = 0; i < f->worker_count; i++) {
    f->workers[i].frontend = f;
    f->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(f->core, f->workers[i].cq, NULL);
  }
  char target[300];
  const bool v6 = strchr(address, ':') != NULL;
  snprintf(target, sizeof(target), v6 ? "[%s]:%d" : "%s:%d", address, o->port);
  f->port = grpc_server_add_http2_port(f->core, target, creds);
  grpc_server_credentials_release(creds);
  if (f->port == 0) {
    frontend_free(f);
    return err_new(INFERD_ERROR_IO, "cannot listen for gRPC on %s:%d (address in use or invalid)", address, o->port);
  }
  /* The threads first: with no call posted yet they only wait, and a failure
   * here leaves nothing started to unwind. */
  for (int i = 0; i < f->worker_count; i++) {
    if (pthread_create(&f->workers[i].tid, NULL, worker_main, &f->workers[i]) != 0) {
      frontend_free(f);
      return err_new(INFERD_ERROR_INTERNAL, "cannot start gRPC thread %d", i);
    }
    f->workers[i].started = true;
  }
  grpc_server_start(f->core);
  for (int i = 0; i < f->worker_count; i++) {
    grpc_worker *w = &f->workers[i];
    for (int m = 0; m < grpc_method_count; m++) {
      if (grpc_methods[m].streaming) {
        stream_post(w);
        continue;
      }
      unary_post(w, m);
      if (m == GRPC_METHOD_INFER) unary_post(w, m);
    }
  }
  log_info("Started GRPCInferenceService at %s:%d%s", address, f->port, o->use_ssl ? " (TLS)" : "");
  *out = f;
  return NULL;
}

int grpc_frontend_port(const grpc_frontend *f) { return f->port; }

/* Shuts the core server down once: no new calls, GOAWAY to the clients,
 * the posted requests for new calls come back failed. */
static void shutdown_begin(grpc_frontend *f) {
  pthread_mutex_lock(&f->lock);
  const bool first = !f->stopping;
  f->stopping = true;
  pthread_mutex_unlock(&f->lock);
  if (!first) return;
  f->shutdown_tag.done = on_shutdown;
  grpc_server_shutdown_and_notify(f->core, f->workers[0].cq, &f->shutdown_tag);
}

void grpc_frontend_stop_listening(grpc_frontend *f) {
  /* Calls keep being taken while the server drains: the server refuses new
   * inferences with UNAVAILABLE (said in the stream for a stream) and
   * answers health calls with "not ready", which is what a client or a load
   * balancer should learn. Shutting the core server down here instead would
   * cancel the calls it had received but not yet handed over, and a client
   * would see CANCELLED where UNAVAILABLE is the truth. */
  log_verbose("grpc: draining on port %d; new inferences are refused by the server", f->port);
}

void grpc_frontend_delete(grpc_frontend *f) {
  if (!f) return;
  shutdown_core(f, SHUTDOWN_GRACE_SECS);
  frontend_free(f);
}
