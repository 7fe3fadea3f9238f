/*
 * The gRPC frontend's transport: gRPC over HTTP/2 on the project's own
 * loops. libevent runs `threads` loops that share the listening socket
 * (OpenSSL through libevent's bufferevents for TLS); nghttp2 does HTTP/2
 * (framing, HPACK, flow control, pings); this file does gRPC on top: the
 * 5-byte message framing, grpc-status and grpc-message trailers, message
 * compression, the size limit, keepalive pings and the calls' lifecycles.
 * gRPC's core library did this job before; its per-call cost was most of
 * a tiny model's round trip (docs/grpc-transport.md has the measurements).
 *
 * Unary calls. A call's DATA is gathered (grpc_frame_input) until the
 * client ends its side, and a byte past its one message ends the call at
 * once; the one message is then handed to the method's handler on the loop. The
 * answer (from any thread) is posted back to the loop, which writes HEADERS,
 * the framed reply and the trailers in one go, or a trailers-only answer for
 * an error.
 *
 * The stream (ModelStreamInfer). Each message is handed to the server as
 * soon as it is complete, so many requests of one stream are in flight
 * together. Answers come back on server threads in any order, carrying
 * their request's id, and are posted to the loop, which queues them on the
 * stream's output. A request that fails is answered in the stream with
 * error_message and the stream stays open. When the client has closed its
 * side and every request is answered, the stream ends with OK.
 *
 * Limits. A connection with no call open that has received nothing for the
 * idle timeout gets GOAWAY and is closed, and one that has not sent the
 * HTTP/2 preface and SETTINGS within the handshake timeout is closed; one
 * timer per connection does both. Requests of one connection the server
 * holds are bounded: past the bound the socket is not read (nghttp2 is fed
 * no more input, so a stream's client, which cannot send more than the
 * flow-control windows allow, waits) until answers come back. A stream the
 * client resets, or a connection that goes, flags its requests cancelled,
 * and those still queued are answered without being run.
 *
 * Lifetimes, all on the loop: an HTTP/2 stream object lives until nghttp2
 * closes the stream and every answer it waits for has come back (`holds`);
 * a connection lives until its socket is gone and its last stream object is
 * freed. A client that resets a stream or goes away only makes its answers
 * be dropped when they come.
 *
 * Shutdown. While the server drains, calls are still taken (the server
 * refuses new inferences itself). delete stops listening, sends GOAWAY on
 * every connection, lets open calls finish (closing what is left after a
 * grace period), waits for every answer to come back, and joins the loops.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/mem.h"
#include "frontends/frontend_loop.h"
#include "frontends/grpc/grpc_frame.h"
#include "frontends/frontend_tls.h"
#include "frontends/grpc/grpc_frontend.h"
#include "frontends/grpc/grpc_internal.h"

enum {
  GRPC_METHOD_INFER = 0,
  GRPC_METHOD_STREAM = 1,
  SHUTDOWN_GRACE_MS = 10000, /* default of grpc_frontend_options.shutdown_grace_ms */
  PREFIX = GRPC_FRAME_PREFIX,   /* gRPC message prefix: compressed flag, 32-bit big-endian length */
  STREAM_WINDOW = 4 << 20,      /* per-stream receive window: an image arrives without waiting */
  CONNECTION_WINDOW = 16 << 20, /* connection receive window */
  MAX_STREAMS = 1024,           /* concurrent streams per connection */
  OUTPUT_HIGH = 4 << 20,        /* output buffered per connection before nghttp2 waits */
  READ_SLICE = 16 << 10,        /* input handed to nghttp2 at once, between checks of the in-flight bound */
  DEFAULT_IDLE_TIMEOUT_SECS = 300,
  DEFAULT_HANDSHAKE_TIMEOUT_SECS = 30,
  DEFAULT_MAX_INFLIGHT = 256,
  DEFAULT_MAX_CONNECTIONS = 10000,
};

typedef struct h2_thread h2_thread;
typedef struct h2_conn h2_conn;
typedef struct h2_stream h2_stream;

struct h2_thread {
  struct grpc_frontend *frontend;
  pthread_t tid;
  bool started;
  struct event_base *base;
  struct evconnlistener *listener;
  struct event *wake;
  struct event *grace;
  frontend_acceptor acceptor;
  frontend_mailbox mailbox; /* answers from server threads, the order to stop */
  /* Loop only: */
  h2_conn *conns; /* every connection object, open or waiting for answers */
  bool stopping;
};

struct h2_conn {
  h2_thread *thread;
  h2_conn *prev, *next;
  struct bufferevent *bev; /* NULL once the socket is closed */
  nghttp2_session *session;
  h2_stream *streams; /* every stream object of the connection */
  struct event *ping_timer, *ping_timeout;
  struct event *idle_timer; /* the handshake's deadline, then the idle timeout */
  uint64_t last_active_ns;  /* bytes received or a call ended */
  int inflight;             /* requests the server holds for this connection */
  bool settings_received;   /* the client's preface and SETTINGS came */
  bool paused;              /* not read: inflight reached the bound */
  bool closing;  /* close once the output is written */
  bool in_close; /* conn_close is walking the streams */
};

/* A framed message waiting to be written. */
typedef struct h2_chunk {
  struct h2_chunk *next;
  size_t len, off;
  uint8_t data[];
} h2_chunk;

struct h2_stream {
  h2_conn *conn;
  h2_stream *prev, *next;
  int32_t id;
  int method; /* -1: not a method of the service */
  bool grpc_content_type;
  grpc_encoding request_encoding;
  bool accepts_gzip, accepts_deflate;
  /* The method's category is restricted: its metadata key was seen, with
   * the right value (only the verdict is kept, never the value). */
  bool restriction_seen, restriction_allowed;
  grpc_frame_input in; /* the DATA received and not yet taken as messages */
  bool discard_input; /* answered with an error already */
  bool remote_done;   /* the client ended its side */
  bool closed;        /* nghttp2 closed the stream (or the connection went) */
  /* Output. */
  h2_chunk *out_head, *out_tail;
  bool response_started; /* HEADERS with the data provider submitted */
  bool deferred;         /* the data provider waits for output */
  bool finishing;        /* the trailers follow the queued output */
  bool answered;         /* the end of the response is submitted */
  int status;
  char *message;
  int retry_ms; /* sent as grpc-retry-pushback-ms with the status (0: not sent) */
  grpc_encoding response_encoding; /* messages compressed with it (identity: not) */
  /* Set when the client resets the stream or the connection goes: the
   * server drops what it still has queued (see inferd_request_set_cancel_flag). */
  atomic_bool cancelled;
  /* Answers and requests still to come back from other threads. */
  int holds;
  int in_flight; /* the stream: requests the server holds */
};

struct grpc_frontend {
  inferd_server *server;
  evutil_socket_t fd;
  int port;
  size_t max_message;
  int compression_level; /* zlib level for inference answers; 0: off */
  int keepalive_time_ms, keepalive_timeout_ms;
  int shutdown_grace_ms;
  int idle_timeout_ms, handshake_timeout_ms; /* 0: none */
  int max_inflight, max_connections;
  atomic_int connections;
  SSL_CTX *tls;
  /* By method index: the restriction of its category, NULL when open. */
  const frontend_restriction **method_restrictions;
  h2_thread *threads;
  int thread_count;
  nghttp2_session_callbacks *callbacks;
  nghttp2_option *h2_options;
  pthread_mutex_t lock;
  /* Under lock: ended unary call objects kept for reuse. */
  grpc_unary **pool;
  int pool_count, pool_cap;
};

static void conn_flush(h2_conn *c);
static void conn_close(h2_conn *c);
static void conn_inflight_done(h2_conn *c);
static void stream_maybe_free(h2_stream *s);

/* ---- handing work to a loop ---------------------------------------------------- */

static void thread_post(h2_thread *t, grpc_post *p) { frontend_mailbox_post(&t->mailbox, &p->base); }

static void arm_ms(struct event *e, int ms) {
  const struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  evtimer_add(e, &tv);
}

/* ---- compression ----------------------------------------------------------------- */

/* A framed message of `bytes`, compressed with `e` unless identity. */
static h2_chunk *frame_message(const uint8_t *bytes, size_t size, grpc_encoding e, int level) {
  h2_chunk *k;
  if (e != GRPC_ENCODING_IDENTITY) {
    z_stream z = {0};
    if (deflateInit2(&z, level, Z_DEFLATED, e == GRPC_ENCODING_GZIP ? 16 + MAX_WBITS : MAX_WBITS, 8, Z_DEFAULT_STRATEGY) ==
        Z_OK) {
      const size_t bound = deflateBound(&z, (uLong)size);
      k = mem_alloc(sizeof(*k) + PREFIX + bound);
      z.next_in = (Bytef *)bytes;
      z.avail_in = (uInt)size;
      z.next_out = k->data + PREFIX;
      z.avail_out = (uInt)bound;
      const int rc = deflate(&z, Z_FINISH);
      const size_t out = bound - z.avail_out;
      deflateEnd(&z);
      if (rc == Z_STREAM_END) {
        k->data[0] = 1;
        k->data[1] = (uint8_t)(out >> 24), k->data[2] = (uint8_t)(out >> 16);
        k->data[3] = (uint8_t)(out >> 8), k->data[4] = (uint8_t)out;
        *k = (h2_chunk){.len = PREFIX + out};
        return k;
      }
      free(k);
    }
  }
  k = mem_alloc(sizeof(*k) + PREFIX + size);
  *k = (h2_chunk){.len = PREFIX + size};
  k->data[0] = 0;
  k->data[1] = (uint8_t)(size >> 24), k->data[2] = (uint8_t)(size >> 16);
  k->data[3] = (uint8_t)(size >> 8), k->data[4] = (uint8_t)size;
  if (size) memcpy(k->data + PREFIX, bytes, size);
  return k;
}

/* ---- responses ------------------------------------------------------------------- */

#define NV(name, value, vlen) \
  {(uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1, (vlen), NGHTTP2_NV_FLAG_NO_COPY_NAME}

/* grpc-message is percent-encoded outside printable ASCII. */
static char *percent_encode(const char *text) {
  static const char hex[] = "0123456789ABCDEF";
  const size_t n = strlen(text);
  char *out = mem_alloc(n * 3 + 1), *w = out;
  for (size_t i = 0; i < n; i++) {
    const unsigned char ch = (unsigned char)text[i];
    if (ch >= 0x20 && ch <= 0x7e && ch != '%') {
      *w++ = (char)ch;
    } else {
      *w++ = '%', *w++ = hex[ch >> 4], *w++ = hex[ch & 15];
    }
  }
  *w = '\0';
  return out;
}

/* The status trailers (or headers, trailers-only) of a stream. An overload
 * refusal also carries grpc-retry-pushback-ms, the trailer gRPC's retry
 * policy reads as the server's word on when to try again. */
static void submit_status(h2_stream *s, bool trailers_only) {
  char status[16], pushback[16];
  const int status_len = snprintf(status, sizeof(status), "%d", s->status);
  char *message = s->message && *s->message ? percent_encode(s->message) : NULL;
  nghttp2_nv nva[6];
  size_t n = 0;
  if (trailers_only) {
    nva[n++] = (nghttp2_nv)NV(":status", "200", 3);
    nva[n++] = (nghttp2_nv)NV("content-type", "application/grpc", 16);
  }
  nva[n++] = (nghttp2_nv)NV("grpc-status", status, (size_t)status_len);
  if (message) nva[n++] = (nghttp2_nv)NV("grpc-message", message, strlen(message));
  if (s->status != 0 && s->retry_ms > 0) {
    const int pushback_len = snprintf(pushback, sizeof(pushback), "%d", s->retry_ms);
    nva[n++] = (nghttp2_nv)NV("grpc-retry-pushback-ms", pushback, (size_t)pushback_len);
  }
  if (trailers_only)
    nghttp2_submit_response(s->conn->session, s->id, nva, n, NULL);
  else
    nghttp2_submit_trailer(s->conn->session, s->id, nva, n);
  free(message);
  s->answered = true;
}

static ssize_t read_output(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                           nghttp2_data_source *source, void *user_data) {
  (void)session;
  (void)id;
  (void)user_data;
  h2_stream *s = source->ptr;
  size_t n = 0;
  while (n < length && s->out_head) {
    h2_chunk *k = s->out_head;
    const size_t take = k->len - k->off < length - n ? k->len - k->off : length - n;
    memcpy(buf + n, k->data + k->off, take);
    k->off += take;
    n += take;
    if (k->off == k->len) {
      s->out_head = k->next;
      if (!s->out_head) s->out_tail = NULL;
      free(k);
    }
  }
  if (!s->out_head && s->finishing) {
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    submit_status(s, false);
    return (ssize_t)n;
  }
  if (n == 0) {
    s->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return (ssize_t)n;
}

static void start_response(h2_stream *s) {
  if (s->response_started) {
    if (s->deferred) {
      s->deferred = false;
      nghttp2_session_resume_data(s->conn->session, s->id);
    }
    return;
  }
  s->response_started = true;
  nghttp2_nv nva[3];
  size_t n = 0;
  nva[n++] = (nghttp2_nv)NV(":status", "200", 3);
  nva[n++] = (nghttp2_nv)NV("content-type", "application/grpc", 16);
  if (s->response_encoding != GRPC_ENCODING_IDENTITY) {
    const char *name = grpc_encoding_name(s->response_encoding);
    nva[n++] = (nghttp2_nv)NV("grpc-encoding", name, strlen(name));
  }
  nghttp2_data_provider provider = {.source.ptr = s, .read_callback = read_output};
  nghttp2_submit_response(s->conn->session, s->id, nva, n, &provider);
}

/* Queues a message (serialized, borrowed) on the stream's output. */
static void stream_write(h2_stream *s, const uint8_t *bytes, size_t size) {
  if (s->closed || s->answered || s->finishing) return;
  grpc_frontend *f = s->conn->thread->frontend;
  h2_chunk *k = frame_message(bytes, size, s->response_encoding, f->compression_level);
  if (s->out_tail)
    s->out_tail->next = k;
  else
    s->out_head = k;
  s->out_tail = k;
  start_response(s);
}

/* Ends the response with a status (0: OK) after what is queued, with a
 * retry hint in ms (0: none). */
static void stream_end(h2_stream *s, int status, const char *message, int retry_ms) {
  if (s->closed || s->answered || s->finishing) return;
  s->status = status;
  s->retry_ms = retry_ms;
  free(s->message);
  s->message = message ? mem_strdup(message) : NULL;
  if (!s->response_started) {
    submit_status(s, true);
    return;
  }
  s->finishing = true;
  start_response(s);
}

static void stream_fail(h2_stream *s, inferd_error *error) {
  const int status = inferd_error_code_grpc_status(inferd_error_code_of(error));
  log_verbose("grpc: %s: %s %s", s->method >= 0 ? grpc_methods[s->method].path : "(unknown method)",
              inferd_error_code_name(inferd_error_code_of(error)), inferd_error_message(error));
  stream_end(s, status ? status : 2, inferd_error_message(error),
             inferd_error_code_retry_after_ms(inferd_error_code_of(error)));
  s->discard_input = true;
  inferd_error_delete(error);
}

/* ---- unary calls ------------------------------------------------------------------ */

static grpc_unary *unary_new(grpc_frontend *f, h2_stream *s) {
  grpc_unary *c = NULL;
  pthread_mutex_lock(&f->lock);
  if (f->pool_count) c = f->pool[--f->pool_count];
  pthread_mutex_unlock(&f->lock);
  if (!c) c = mem_alloc(sizeof(*c));
  *c = (grpc_unary){.frontend = f, .stream = s, .server = f->server, .method = s->method, .cancel = &s->cancelled};
  atomic_init(&c->refs, 1);
  return c;
}

void grpc_unary_unref(grpc_unary *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1) return;
  grpc_frontend *f = c->frontend;
  free(c->reply);
  free(c->details);
  grpc_infer_decoded_free(&c->decoded);
  free(c->model);
  free(c->config_json);
  pthread_mutex_lock(&f->lock);
  if (f->pool_count < f->pool_cap) {
    f->pool[f->pool_count++] = c;
    c = NULL;
  }
  pthread_mutex_unlock(&f->lock);
  free(c);
}

/* On the loop: the answer goes out (unless the client has gone). */
static void unary_answer(grpc_post *p) {
  grpc_unary *c = (grpc_unary *)p;
  h2_stream *s = c->stream;
  h2_conn *conn = s->conn;
  grpc_frontend *f = conn->thread->frontend;
  if (c->status == 0 && c->reply_size > f->max_message) {
    char msg[128];
    snprintf(msg, sizeof(msg), "sent message larger than max (%zu vs. %zu)", c->reply_size, f->max_message);
    stream_end(s, 8 /* RESOURCE_EXHAUSTED */, msg, 0);
  } else if (c->status == 0) {
    stream_write(s, c->reply, c->reply_size);
    stream_end(s, 0, NULL, 0);
  } else {
    stream_end(s, c->status, c->details, c->retry_ms);
  }
  /* The hold keeps the stream, and so the connection, through the flush. */
  conn_flush(conn);
  conn_inflight_done(conn);
  s->holds--;
  stream_maybe_free(s);
  grpc_unary_unref(c);
}

void grpc_unary_reply_bytes(grpc_unary *c, uint8_t *bytes, size_t size) {
  c->status = 0;
  c->reply = bytes;
  c->reply_size = size;
  c->post.run = unary_answer;
  thread_post(c->stream->conn->thread, &c->post);
}

void grpc_unary_reply(grpc_unary *c, const ProtobufCMessage *reply) {
  const size_t size = protobuf_c_message_get_packed_size(reply);
  uint8_t *bytes = mem_alloc(size ? size : 1);
  protobuf_c_message_pack(reply, bytes);
  grpc_unary_reply_bytes(c, bytes, size);
}

void grpc_unary_fail(grpc_unary *c, inferd_error *error) {
  const int status = inferd_error_code_grpc_status(inferd_error_code_of(error));
  log_verbose("grpc: %s: %s %s", grpc_methods[c->method].path, inferd_error_code_name(inferd_error_code_of(error)),
              inferd_error_message(error));
  c->status = status ? status : 2 /* UNKNOWN */;
  c->details = mem_strdup(inferd_error_message(error));
  c->retry_ms = inferd_error_code_retry_after_ms(inferd_error_code_of(error));
  inferd_error_delete(error);
  c->post.run = unary_answer;
  thread_post(c->stream->conn->thread, &c->post);
}

ProtobufCMessage *grpc_unary_request(grpc_unary *c, const ProtobufCMessageDescriptor *descriptor) {
  ProtobufCMessage *m = protobuf_c_message_unpack(descriptor, NULL, c->payload_size, c->payload);
  if (!m) grpc_unary_fail(c, err_new(INFERD_ERROR_INVALID_ARG, "malformed %s message", descriptor->name));
  return m;
}

/* ---- messages in ------------------------------------------------------------------- */

static size_t max_message(const h2_stream *s) { return s->conn->thread->frontend->max_message; }

/* The unary call's one message, once the client has ended its side. */
static void unary_dispatch(h2_stream *s) {
  size_t size = 0;
  const uint8_t *msg = NULL;
  uint8_t *owned;
  inferd_error *err = grpc_frame_input_take_unary(&s->in, s->request_encoding, max_message(s), &msg, &size, &owned);
  if (err) {
    stream_fail(s, err);
    return;
  }
  grpc_unary *c = unary_new(s->conn->thread->frontend, s);
  c->payload = msg;
  c->payload_size = size;
  s->holds++;
  s->conn->inflight++;
  grpc_methods[s->method].handle(c);
  /* The message was needed only while the handler ran. */
  free(owned);
  grpc_frame_input_free(&s->in);
}

/* ---- the inference stream ------------------------------------------------------------ */

typedef struct stream_request {
  grpc_post post;
  h2_stream *stream;
  grpc_infer_decoded decoded;
  uint8_t *answer; /* a serialized ModelStreamInferResponse */
  size_t answer_size;
  atomic_int callbacks_left;
} stream_request;

static void stream_maybe_finish(h2_stream *s) {
  if (s->remote_done && s->in_flight == 0) stream_end(s, 0, NULL, 0);
}

static void stream_send_error(h2_stream *s, const char *message, const char *model, const char *id) {
  size_t size;
  uint8_t *bytes = grpc_stream_error_encode(message, model, id, &size);
  if (!bytes) {
    log_warn("grpc: out of memory for a stream error: %s", message);
    return;
  }
  stream_write(s, bytes, size);
  free(bytes);
}

static void stream_request_answer(grpc_post *p) {
  stream_request *r = (stream_request *)p;
  h2_stream *s = r->stream;
  if (r->answer) stream_write(s, r->answer, r->answer_size);
  free(r->answer);
  grpc_infer_decoded_free(&r->decoded);
  free(r);
  s->in_flight--;
  stream_maybe_finish(s);
  conn_flush(s->conn);
  conn_inflight_done(s->conn);
  s->holds--;
  stream_maybe_free(s);
}

static void stream_request_done(stream_request *r) {
  if (atomic_fetch_sub(&r->callbacks_left, 1) != 1) return;
  r->post.run = stream_request_answer;
  thread_post(r->stream->conn->thread, &r->post);
}

static void on_stream_release(inferd_request *request, void *userp) {
  (void)request;
  stream_request_done(userp);
}

static void on_stream_response(inferd_response *response, uint32_t flags, void *userp) {
  (void)flags; /* one response per request, FINAL */
  stream_request *r = userp;
  const inferd_error *rerr = inferd_response_error(response);
  if (rerr) {
    r->answer = grpc_stream_error_encode(inferd_error_message(rerr), inferd_response_model(response),
                                         inferd_response_id(response), &r->answer_size);
  } else {
    inferd_error *err = grpc_infer_encode_response(response, &r->decoded, true, &r->answer, &r->answer_size);
    if (err) {
      r->answer = grpc_stream_error_encode(inferd_error_message(err), inferd_response_model(response),
                                           inferd_response_id(response), &r->answer_size);
      inferd_error_delete(err);
    }
  }
  inferd_response_delete(response);
  stream_request_done(r);
}

/* One message of the stream: decoded and handed to the server. */
static void stream_handle(h2_stream *s, const uint8_t *msg, size_t size) {
  stream_request *r = mem_alloc(sizeof(*r));
  *r = (stream_request){.stream = s};
  inferd_error *err = grpc_infer_decode(msg, size, &r->decoded);
  inferd_request *request = NULL;
  grpc_frontend *f = s->conn->thread->frontend;
  if (!err) err = grpc_infer_build_request(f->server, &r->decoded, &request);
  if (!err) {
    atomic_init(&r->callbacks_left, 2);
    s->in_flight++;
    s->holds++;
    s->conn->inflight++;
    inferd_request_set_callbacks(request, on_stream_release, r, on_stream_response, r);
    inferd_request_set_cancel_flag(request, &s->cancelled);
    err = inferd_server_infer(f->server, request);
    if (!err) return;
    inferd_request_delete(request);
    s->in_flight--;
    s->holds--;
    s->conn->inflight--;
  }
  const Inference__ModelInferRequest *m = r->decoded.message;
  stream_send_error(s, inferd_error_message(err), m ? m->model_name : NULL, m ? m->id : NULL);
  log_verbose("grpc: stream request: %s", inferd_error_message(err));
  inferd_error_delete(err);
  grpc_infer_decoded_free(&r->decoded);
  free(r);
}

/* Hands every complete message of the stream's input to the server, then
 * moves what is left of the next one to the front, once. */
static void stream_take_messages(h2_stream *s) {
  for (;;) {
    size_t size = 0;
    const uint8_t *msg = NULL;
    uint8_t *owned;
    inferd_error *err;
    if (!grpc_frame_input_take(&s->in, s->request_encoding, max_message(s), &msg, &size, &owned, &err)) break;
    if (err) {
      /* The framing cannot be trusted past a bad message: the call ends. */
      free(owned);
      stream_fail(s, err);
      return;
    }
    stream_handle(s, msg, size);
    free(owned);
  }
  grpc_frame_input_compact(&s->in);
}

/* ---- HTTP/2 callbacks ------------------------------------------------------------------ */

static void stream_free(h2_stream *s) {
  h2_conn *c = s->conn;
  if (s->prev)
    s->prev->next = s->next;
  else
    c->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  for (h2_chunk *k = s->out_head; k;) {
    h2_chunk *next = k->next;
    free(k);
    k = next;
  }
  grpc_frame_input_free(&s->in);
  free(s->message);
  free(s);
  if (!c->bev && !c->streams && !c->in_close) conn_close(c);
}

static void stream_maybe_free(h2_stream *s) {
  if (s->closed && s->holds == 0) stream_free(s);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  h2_conn *c = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  h2_stream *s = mem_zalloc(sizeof(*s));
  s->conn = c;
  s->id = frame->hd.stream_id;
  s->method = -1;
  s->next = c->streams;
  if (c->streams) c->streams->prev = s;
  c->streams = s;
  nghttp2_session_set_stream_user_data(session, s->id, s);
  return 0;
}

static bool has_token(const uint8_t *list, size_t len, const char *token) {
  const size_t n = strlen(token);
  size_t i = 0;
  while (i < len) {
    while (i < len && (list[i] == ' ' || list[i] == ',')) i++;
    size_t j = i;
    while (j < len && list[j] != ',' && list[j] != ' ') j++;
    if (j - i == n && strncasecmp((const char *)list + i, token, n) == 0) return true;
    i = j;
  }
  return false;
}

static grpc_encoding encoding_of(const uint8_t *v, size_t len) {
  if (len == 8 && memcmp(v, "identity", 8) == 0) return GRPC_ENCODING_IDENTITY;
  if (len == 4 && memcmp(v, "gzip", 4) == 0) return GRPC_ENCODING_GZIP;
  if (len == 7 && memcmp(v, "deflate", 7) == 0) return GRPC_ENCODING_DEFLATE;
  return GRPC_ENCODING_UNKNOWN;
}

/* Whether a header is the metadata key the stream's method is restricted by
 * (names arrive lower-cased; the flag's may not be). */
static bool restriction_key_is(const h2_stream *s, const uint8_t *name, size_t namelen) {
  const frontend_restriction *r = s->conn->thread->frontend->method_restrictions[s->method];
  return r && strlen(r->key) == namelen && strncasecmp(r->key, (const char *)name, namelen) == 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
  (void)flags;
  (void)user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  h2_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!s) return 0;
  if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
    for (int m = 0; m < grpc_method_count; m++)
      if (strlen(grpc_methods[m].path) == valuelen && memcmp(grpc_methods[m].path, value, valuelen) == 0)
        s->method = m;
  } else if (s->method >= 0 && restriction_key_is(s, name, namelen)) {
    /* HTTP/2 sends pseudo-headers first, so :path is known here. The
     * first of repeated keys counts. */
    if (!s->restriction_seen)
      s->restriction_allowed =
          frontend_restriction_matches(s->conn->thread->frontend->method_restrictions[s->method],
                                       (const char *)value, valuelen);
    s->restriction_seen = true;
  } else if (namelen == 12 && memcmp(name, "content-type", 12) == 0) {
    s->grpc_content_type = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0;
  } else if (namelen == 13 && memcmp(name, "grpc-encoding", 13) == 0) {
    s->request_encoding = encoding_of(value, valuelen);
  } else if (namelen == 20 && memcmp(name, "grpc-accept-encoding", 20) == 0) {
    s->accepts_gzip = has_token(value, valuelen, "gzip");
    s->accepts_deflate = has_token(value, valuelen, "deflate");
  }
  return 0;
}

/* The request's headers are in: a call of the service or an error. */
static void stream_begin(h2_stream *s) {
  grpc_frontend *f = s->conn->thread->frontend;
  if (!s->grpc_content_type) {
    stream_fail(s, err_new(INFERD_ERROR_INVALID_ARG, "content-type is not application/grpc"));
    return;
  }
  if (s->method < 0) {
    stream_fail(s, err_new(INFERD_ERROR_UNSUPPORTED, "no such method in inference.GRPCInferenceService"));
    return;
  }
  const frontend_restriction *restriction = f->method_restrictions[s->method];
  if (restriction && !s->restriction_allowed) {
    stream_fail(s, frontend_restriction_denied(
                       restriction, frontend_api_of_grpc_method(grpc_methods[s->method].path), "metadata key"));
    return;
  }
  if (s->request_encoding == GRPC_ENCODING_UNKNOWN) {
    stream_fail(s, err_new(INFERD_ERROR_UNSUPPORTED, "unsupported grpc-encoding (identity, gzip and deflate are)"));
    return;
  }
  const bool inference = s->method == GRPC_METHOD_INFER || s->method == GRPC_METHOD_STREAM;
  if (inference && f->compression_level > 0)
    s->response_encoding = s->accepts_gzip ? GRPC_ENCODING_GZIP : s->accepts_deflate ? GRPC_ENCODING_DEFLATE : GRPC_ENCODING_IDENTITY;
}

static void stream_remote_done(h2_stream *s) {
  s->remote_done = true;
  if (s->discard_input) return;
  if (grpc_methods[s->method].streaming)
    stream_maybe_finish(s);
  else
    unary_dispatch(s);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  h2_conn *c = user_data;
  if (frame->hd.type == NGHTTP2_PING) {
    if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && c->ping_timeout) evtimer_del(c->ping_timeout);
    return 0;
  }
  if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK) && !c->settings_received) {
    /* The preface and SETTINGS are in: the idle timeout rules from now. */
    c->settings_received = true;
    grpc_frontend *f = c->thread->frontend;
    if (c->idle_timer) {
      evtimer_del(c->idle_timer);
      if (f->idle_timeout_ms) arm_ms(c->idle_timer, f->idle_timeout_ms);
    }
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  h2_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!s) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) stream_begin(s);
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) stream_remote_done(s);
  return 0;
}

static int on_data(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                   void *user_data) {
  (void)flags;
  (void)user_data;
  h2_stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
  if (!s || s->discard_input) return 0;
  if (!grpc_frame_input_append(&s->in, data, len)) {
    stream_fail(s, err_new(INFERD_ERROR_NO_MEMORY, "cannot buffer %zu more bytes of the request (%zu held)", len,
                           grpc_frame_input_pending(&s->in)));
    return 0;
  }
  if (grpc_methods[s->method].streaming) {
    stream_take_messages(s);
  } else {
    /* Refuse an oversized message from its prefix, before it is all in. */
    inferd_error *err = grpc_frame_input_check_unary(&s->in, s->request_encoding, max_message(s));
    if (err) stream_fail(s, err);
  }
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data) {
  (void)error_code;
  (void)user_data;
  h2_stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
  if (!s) return 0;
  nghttp2_session_set_stream_user_data(session, stream_id, NULL);
  h2_conn *c = s->conn;
  c->last_active_ns = clock_now_ns();
  s->closed = true;
  /* Reset before its answers were all sent: nobody waits for them. */
  const bool cut = s->holds > 0 && !s->answered;
  if (cut) atomic_store(&s->cancelled, true);
  stream_maybe_free(s);
  if (cut) inferd_server_cancel_flagged(c->thread->frontend->server);
  return 0;
}

static ssize_t on_send(nghttp2_session *session, const uint8_t *data, size_t length, int flags, void *user_data) {
  (void)session;
  (void)flags;
  h2_conn *c = user_data;
  struct evbuffer *out = bufferevent_get_output(c->bev);
  if (evbuffer_get_length(out) >= OUTPUT_HIGH) return NGHTTP2_ERR_WOULDBLOCK;
  if (evbuffer_add(out, data, length) != 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
  return (ssize_t)length;
}

/* ---- connections --------------------------------------------------------------------- */

static void thread_check_exit(h2_thread *t);

/* The socket goes; stream objects still waiting for answers keep the
 * connection object until they are freed. */
static void conn_close(h2_conn *c) {
  if (c->bev) {
    bufferevent_free(c->bev);
    c->bev = NULL;
    if (c->ping_timer) event_free(c->ping_timer);
    if (c->ping_timeout) event_free(c->ping_timeout);
    if (c->idle_timer) event_free(c->idle_timer);
    c->ping_timer = c->ping_timeout = c->idle_timer = NULL;
    frontend_acceptor_release(&c->thread->acceptor);
    /* Streams nghttp2 still had open are closed for good; what the server
     * still has queued for them is dropped. */
    bool cut = false;
    c->in_close = true;
    for (h2_stream *s = c->streams; s;) {
      h2_stream *next = s->next;
      if (s->holds > 0) {
        atomic_store(&s->cancelled, true);
        cut = true;
      }
      s->closed = true;
      stream_maybe_free(s);
      s = next;
    }
    c->in_close = false;
    if (cut) inferd_server_cancel_flagged(c->thread->frontend->server);
  }
  if (c->streams) return;
  h2_thread *t = c->thread;
  if (c->session) nghttp2_session_del(c->session);
  if (c->prev)
    c->prev->next = c->next;
  else
    t->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  free(c);
  thread_check_exit(t);
}

/* Sends what nghttp2 has; closes the connection when HTTP/2 is done with it. */
static void conn_flush(h2_conn *c) {
  if (!c->bev) return;
  if (nghttp2_session_send(c->session) != 0) {
    conn_close(c);
    return;
  }
  if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session)) {
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
      conn_close(c);
    else
      c->closing = true;
  }
}

static bool conn_over_inflight(const h2_conn *c) { return c->inflight >= c->thread->frontend->max_inflight; }

/* Hands the input to nghttp2 a slice at a time; stops, leaving the rest
 * in the buffer and the socket unread, once the in-flight bound is reached
 * (conn_inflight_done reads on). */
static void on_read(struct bufferevent *bev, void *arg) {
  h2_conn *c = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  c->last_active_ns = clock_now_ns();
  struct evbuffer_iovec v;
  while (!conn_over_inflight(c) && evbuffer_peek(in, READ_SLICE, NULL, &v, 1) >= 1) {
    const size_t len = v.iov_len < READ_SLICE ? v.iov_len : READ_SLICE;
    const ssize_t rv = nghttp2_session_mem_recv(c->session, v.iov_base, len);
    if (rv < 0) {
      log_verbose("grpc: closing a connection: %s", nghttp2_strerror((int)rv));
      conn_close(c);
      return;
    }
    evbuffer_drain(in, len);
    if (!c->bev) return;
  }
  if (conn_over_inflight(c) && !c->paused) {
    c->paused = true;
    bufferevent_disable(bev, EV_READ);
  }
  conn_flush(c);
}

static void conn_inflight_done(h2_conn *c) {
  c->inflight--;
  if (!c->paused || conn_over_inflight(c) || !c->bev) return;
  c->paused = false;
  bufferevent_enable(c->bev, EV_READ);
  /* What came before the pause is still in the buffer. */
  if (evbuffer_get_length(bufferevent_get_input(c->bev))) on_read(c->bev, c);
}

static void on_write(struct bufferevent *bev, void *arg) {
  (void)bev;
  h2_conn *c = arg;
  if (c->closing) {
    conn_close(c);
    return;
  }
  /* Output nghttp2 held back (OUTPUT_HIGH) can go now. */
  if (nghttp2_session_want_write(c->session)) conn_flush(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg) {
  (void)bev;
  h2_conn *c = arg;
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) conn_close(c);
}

static void on_ping_timeout(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  h2_conn *c = arg;
  log_verbose("grpc: closing a connection whose keepalive ping was not answered");
  conn_close(c);
}

static void on_ping_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  h2_conn *c = arg;
  grpc_frontend *f = c->thread->frontend;
  const struct timeval next = {f->keepalive_time_ms / 1000, (f->keepalive_time_ms % 1000) * 1000};
  if (c->paused) {
    /* The answer could not be read: wait for reading to go on. */
    evtimer_add(c->ping_timer, &next);
    return;
  }
  nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, NULL);
  const struct timeval period = {f->keepalive_time_ms / 1000, (f->keepalive_time_ms % 1000) * 1000};
  const struct timeval wait = {f->keepalive_timeout_ms / 1000, (f->keepalive_timeout_ms % 1000) * 1000};
  evtimer_add(c->ping_timer, &period);
  evtimer_add(c->ping_timeout, &wait);
  conn_flush(c);
}

static bool conn_has_open_call(const h2_conn *c) {
  for (const h2_stream *s = c->streams; s; s = s->next)
    if (!s->closed) return true;
  return false;
}

/* First the handshake's deadline, then the idle timeout: a connection with
 * no call open and nothing received that long is told GOAWAY and closed
 * (once the GOAWAY is written). */
static void on_idle_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  h2_conn *c = arg;
  grpc_frontend *f = c->thread->frontend;
  if (!c->settings_received) {
    log_verbose("grpc: closing a connection that did not complete the HTTP/2 preface within %d ms",
                f->handshake_timeout_ms);
    conn_close(c);
    return;
  }
  if (!f->idle_timeout_ms) return;
  const uint64_t idle_ns = (uint64_t)f->idle_timeout_ms * 1000000ull, now = clock_now_ns();
  if (conn_has_open_call(c) || c->inflight > 0 || now - c->last_active_ns < idle_ns) {
    const uint64_t left = conn_has_open_call(c) || c->inflight > 0 ? idle_ns : idle_ns - (now - c->last_active_ns);
    arm_ms(c->idle_timer, (int)(left / 1000000ull) + 1);
    return;
  }
  log_verbose("grpc: closing a connection idle for %d ms", f->idle_timeout_ms);
  nghttp2_session_terminate_session(c->session, NGHTTP2_NO_ERROR);
  conn_flush(c);
}

static void on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *addr, int len,
                      void *arg) {
  (void)listener;
  (void)addr;
  (void)len;
  h2_thread *t = arg;
  grpc_frontend *f = t->frontend;
  if (!frontend_acceptor_admit(&t->acceptor)) {
    evutil_closesocket(fd);
    return;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  struct bufferevent *bev;
  if (f->tls) {
    bev = frontend_tls_bufferevent(t->base, f->tls, fd);
  } else {
    bev = bufferevent_socket_new(t->base, fd, BEV_OPT_CLOSE_ON_FREE);
  }
  if (!bev) {
    frontend_acceptor_release(&t->acceptor);
    evutil_closesocket(fd);
    return;
  }
  h2_conn *c = mem_zalloc(sizeof(*c));
  c->thread = t;
  c->bev = bev;
  c->last_active_ns = clock_now_ns();
  if (nghttp2_session_server_new2(&c->session, f->callbacks, c, f->h2_options) != 0) {
    frontend_acceptor_release(&t->acceptor);
    bufferevent_free(bev);
    free(c);
    return;
  }
  c->next = t->conns;
  if (t->conns) t->conns->prev = c;
  t->conns = c;
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
  };
  nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, sizeof(settings) / sizeof(settings[0]));
  nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, CONNECTION_WINDOW);
  bufferevent_setcb(bev, on_read, on_write, on_event, c);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
  c->ping_timer = evtimer_new(t->base, on_ping_timer, c);
  c->ping_timeout = evtimer_new(t->base, on_ping_timeout, c);
  const struct timeval period = {f->keepalive_time_ms / 1000, (f->keepalive_time_ms % 1000) * 1000};
  if (c->ping_timer) evtimer_add(c->ping_timer, &period);
  c->idle_timer = evtimer_new(t->base, on_idle_timer, c);
  if (c->idle_timer && f->handshake_timeout_ms) arm_ms(c->idle_timer, f->handshake_timeout_ms);
  else if (!f->handshake_timeout_ms) c->settings_received = true; /* no deadline: idle rules from the start */
  if (c->idle_timer && !f->handshake_timeout_ms && f->idle_timeout_ms) arm_ms(c->idle_timer, f->idle_timeout_ms);
  if (t->stopping) nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
  conn_flush(c);
}

/* ---- threads ------------------------------------------------------------------------- */

static void thread_check_exit(h2_thread *t) {
  if (t->stopping && !t->conns) event_base_loopbreak(t->base);
}

static void on_grace_timeout(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  h2_thread *t = arg;
  if (t->conns) log_warn("grpc: closing the connections still open after %d ms", t->frontend->shutdown_grace_ms);
  for (h2_conn *c = t->conns; c;) {
    h2_conn *next = c->next;
    conn_close(c); /* may free c */
    c = next;
  }
  thread_check_exit(t);
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  h2_thread *t = arg;
  bool stop_listening, stop;
  frontend_post *list = frontend_mailbox_take(&t->mailbox, &stop_listening, &stop);
  while (list) {
    grpc_post *p = (grpc_post *)list;
    list = list->next;
    p->run(p);
  }
  if (stop && !t->stopping) {
    t->stopping = true;
    if (t->listener) {
      frontend_acceptor_destroy(&t->acceptor);
      evconnlistener_free(t->listener);
      t->listener = NULL;
    }
    for (h2_conn *c = t->conns; c;) {
      h2_conn *next = c->next;
      if (c->bev) {
        nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->session),
                              NGHTTP2_NO_ERROR, NULL, 0);
        conn_flush(c); /* may free c */
      }
      c = next;
    }
    const int ms = t->frontend->shutdown_grace_ms;
    const struct timeval grace = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(t->grace, &grace);
    thread_check_exit(t);
  }
}

static void *thread_main(void *arg) {
  h2_thread *t = arg;
  event_base_loop(t->base, EVLOOP_NO_EXIT_ON_EMPTY);
  return NULL;
}

static inferd_error *thread_init(grpc_frontend *f, h2_thread *t) {
  t->frontend = f;
  t->base = frontend_loop_base();
  if (!t->base) return err_new(INFERD_ERROR_INTERNAL, "cannot create an event base");
  t->wake = event_new(t->base, -1, 0, on_wake, t);
  if (t->wake) frontend_mailbox_init(&t->mailbox, t->wake);
  t->grace = evtimer_new(t->base, on_grace_timeout, t);
  /* The listener shares the socket: it must not close it when freed. */
  t->listener = evconnlistener_new(t->base, on_accept, t, LEV_OPT_CLOSE_ON_EXEC, 0, f->fd);
  if (!t->wake || !t->grace || !t->listener ||
      !frontend_acceptor_init(&t->acceptor, "grpc", t->base, t->listener, &f->connections, f->max_connections))
    return err_new(INFERD_ERROR_INTERNAL, "cannot start the gRPC loops");
  return NULL;
}

/* After the loop has ended, with every connection gone. */
static void thread_destroy(h2_thread *t) {
  frontend_acceptor_destroy(&t->acceptor);
  if (t->listener) evconnlistener_free(t->listener);
  if (t->wake) {
    frontend_mailbox_destroy(&t->mailbox);
    event_free(t->wake);
  }
  if (t->grace) event_free(t->grace);
  if (t->base) event_base_free(t->base);
}

/* ---- TLS --------------------------------------------------------------------------- */

static int select_h2(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                     unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  for (unsigned int i = 0; i < inlen;) {
    const unsigned int n = in[i];
    if (i + 1 + n > inlen) break;
    if (n == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
      *out = in + i + 1;
      *outlen = 2;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + n;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static inferd_error *make_tls(const grpc_frontend_options *o, SSL_CTX **out) {
  *out = NULL;
  if (!o->use_ssl && o->use_ssl_mutual)
    return err_new(INFERD_ERROR_INVALID_ARG, "--grpc-use-ssl-mutual needs --grpc-use-ssl=true");
  const frontend_tls_options tls = {.use_ssl = o->use_ssl,
                                    .use_ssl_mutual = o->use_ssl_mutual,
                                    .server_cert = o->server_cert,
                                    .server_key = o->server_key,
                                    .root_cert = o->root_cert,
                                    .cert_flag = "--grpc-server-cert",
                                    .key_flag = "--grpc-server-key",
                                    .root_flag = "--grpc-root-cert"};
  ERR_TRY(frontend_tls_context("gRPC", &tls, out));
  if (*out) SSL_CTX_set_alpn_select_cb(*out, select_h2, NULL);
  return NULL;
}

/* ---- the frontend ---------------------------------------------------------------------- */



static void frontend_free(grpc_frontend *f) {
  for (int i = 0; i < f->thread_count; i++) thread_destroy(&f->threads[i]);
  free(f->threads);
  if (f->fd >= 0) close(f->fd);
  if (f->tls) SSL_CTX_free(f->tls);
  free(f->method_restrictions);
  if (f->callbacks) nghttp2_session_callbacks_del(f->callbacks);
  if (f->h2_options) nghttp2_option_del(f->h2_options);
  for (int i = 0; i < f->pool_count; i++) free(f->pool[i]);
  free(f->pool);
  pthread_mutex_destroy(&f->lock);
  free(f);
}

inferd_error *grpc_frontend_start(inferd_server *server, const grpc_frontend_options *options, grpc_frontend **out) {
  *out = NULL;
  frontend_process_setup();
  const grpc_frontend_options defaults = {0};
  const grpc_frontend_options *o = options ? options : &defaults;
  const char *address = o->address && *o->address ? o->address : "0.0.0.0";
  if (o->port < 0 || o->port > 65535) return err_new(INFERD_ERROR_INVALID_ARG, "invalid gRPC port %d", o->port);
  SSL_CTX *tls;
  ERR_TRY(make_tls(o, &tls));
  grpc_frontend *f = mem_zalloc(sizeof(*f));
  f->server = server;
  f->fd = -1;
  f->tls = tls;
  pthread_mutex_init(&f->lock, NULL);
  f->max_message = o->max_message_size > 0 ? (size_t)o->max_message_size : (size_t)INT_MAX;
  static const int levels[] = {0, 1, 6, 9};
  f->compression_level = o->response_compression_level > 0 && o->response_compression_level <= 3
                             ? levels[o->response_compression_level]
                             : 0;
  f->keepalive_time_ms = o->keepalive_time_ms > 0 ? o->keepalive_time_ms : 7200000;
  f->keepalive_timeout_ms = o->keepalive_timeout_ms > 0 ? o->keepalive_timeout_ms : 20000;
  f->shutdown_grace_ms = o->shutdown_grace_ms > 0 ? o->shutdown_grace_ms : SHUTDOWN_GRACE_MS;
  const int idle = o->idle_timeout_secs, handshake = o->handshake_timeout_secs;
  f->idle_timeout_ms = (idle > 0 ? (idle > INT_MAX / 1000 ? INT_MAX / 1000 : idle) : idle == 0 ? DEFAULT_IDLE_TIMEOUT_SECS : 0) * 1000;
  f->handshake_timeout_ms =
      (handshake > 0 ? (handshake > INT_MAX / 1000 ? INT_MAX / 1000 : handshake) : handshake == 0 ? DEFAULT_HANDSHAKE_TIMEOUT_SECS : 0) * 1000;
  f->max_inflight = o->max_inflight_per_connection > 0 ? o->max_inflight_per_connection : DEFAULT_MAX_INFLIGHT;
  f->max_connections = o->max_connections > 0 ? o->max_connections : DEFAULT_MAX_CONNECTIONS;
  f->method_restrictions = mem_zalloc((size_t)grpc_method_count * sizeof(*f->method_restrictions));
  for (int m = 0; m < grpc_method_count; m++)
    f->method_restrictions[m] = frontend_restriction_of(o->restricted, frontend_api_of_grpc_method(grpc_methods[m].path));
  f->pool_cap = o->infer_allocation_pool_size > 0 ? o->infer_allocation_pool_size : 0;
  f->pool = mem_zalloc((size_t)(f->pool_cap ? f->pool_cap : 1) * sizeof(*f->pool));
  nghttp2_session_callbacks_new(&f->callbacks);
  nghttp2_session_callbacks_set_send_callback(f->callbacks, on_send);
  nghttp2_session_callbacks_set_on_begin_headers_callback(f->callbacks, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(f->callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(f->callbacks, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(f->callbacks, on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(f->callbacks, on_stream_close);
  nghttp2_option_new(&f->h2_options);
  nghttp2_option_set_peer_max_concurrent_streams(f->h2_options, MAX_STREAMS);
  inferd_error *err = frontend_listen("gRPC", address, o->port, &f->fd, &f->port);
  if (err) {
    frontend_free(f);
    return err;
  }
  f->thread_count = o->threads > 0 ? o->threads : 1;
  f->threads = mem_zalloc((size_t)f->thread_count * sizeof(*f->threads));
  for (int i = 0; i < f->thread_count && !err; i++) err = thread_init(f, &f->threads[i]);
  for (int i = 0; i < f->thread_count && !err; i++) {
    if (pthread_create(&f->threads[i].tid, NULL, thread_main, &f->threads[i]) != 0) {
      err = err_new(INFERD_ERROR_INTERNAL, "cannot start gRPC thread %d", i);
      break;
    }
    f->threads[i].started = true;
  }
  if (err) {
    for (int i = 0; i < f->thread_count; i++) {
      if (!f->threads[i].started) continue;
      frontend_mailbox_signal(&f->threads[i].mailbox, true);
      pthread_join(f->threads[i].tid, NULL);
    }
    frontend_free(f);
    return err;
  }
  log_info("Started GRPCInferenceService at %s:%d%s", address, f->port, o->use_ssl ? " (TLS)" : "");
  *out = f;
  return NULL;
}

int grpc_frontend_port(const grpc_frontend *f) { return f->port; }

void grpc_frontend_stop_listening(grpc_frontend *f) {
  /* Calls keep being taken while the server drains: the server refuses new
   * inferences with UNAVAILABLE (said in the stream for a stream) and
   * answers health calls with "not ready", which is what a client or a load
   * balancer should learn. */
  log_verbose("grpc: draining on port %d; new inferences are refused by the server", f->port);
}

void grpc_frontend_set_shutdown_grace(grpc_frontend *f, int ms) {
  /* The loops read it after delete's signal, which the mailbox's lock orders after this store. */
  f->shutdown_grace_ms = ms > 0 ? ms : 1;
}

void grpc_frontend_delete(grpc_frontend *f) {
  if (!f) return;
  for (int i = 0; i < f->thread_count; i++) frontend_mailbox_signal(&f->threads[i].mailbox, true);
  for (int i = 0; i < f->thread_count; i++)
    if (f->threads[i].started) pthread_join(f->threads[i].tid, NULL);
  frontend_free(f);
}
