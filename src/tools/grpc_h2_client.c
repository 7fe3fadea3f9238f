/*
 * The gRPC client on libnghttp2; see grpc_h2_client.h.
 *
 * nghttp2 keeps the HTTP/2 state and this file moves the bytes: each
 * connection reads with one recv per readiness (epoll is level-triggered,
 * so what a short read leaves is reported again) and writes what
 * nghttp2_session_mem_send produces, gathered into one buffer, so a call's
 * HEADERS and DATA, and everything the other calls of the same pass queued,
 * go out in one send. A call's body is a queue of borrowed, already framed
 * messages that the data provider copies into DATA frames; with nothing
 * queued it defers, and the next send resumes it.
 *
 * Calls end in nghttp2's stream-close callback, which turns what the
 * response carried (grpc-status, grpc-message, or a reset or a failure
 * found here) into one status for on_close. A connection that fails ends
 * all its calls with UNAVAILABLE and takes no new ones.
 */
#include "tools/grpc_h2_client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/mem.h"

enum {
  /* Large windows, so a stream of big answers (ResNet-50's) or a connection
   * of many streams never waits for a WINDOW_UPDATE round trip. */
  STREAM_WINDOW = 4 << 20,
  CONNECTION_WINDOW = 64 << 20,
  CONNECT_TIMEOUT_MS = 10000,
  READ_CHUNK = 64 << 10,
  /* Frames gathered before a send; more waits for the next pass. */
  WRITE_BATCH = 256 << 10,
  FRAME_PREFIX = 5,
  MESSAGE_TEXT = 256,
};

typedef struct queued_message {
  const uint8_t *bytes;
  size_t size;
} queued_message;

typedef struct h2_connection h2_connection;

struct grpc_h2_call {
  h2_connection *connection;
  int32_t stream_id;
  const grpc_h2_call_handlers *handlers;
  void *user;
  grpc_h2_call *prev, *next; /* the connection's open calls */
  /* Sending: queue[head..tail) waits, `offset` bytes of queue[head] are out. */
  queued_message *queue;
  size_t head, tail, capacity, offset;
  bool send_closed;
  bool deferred; /* the data provider deferred: a send must resume it */
  /* Receiving. */
  int http_status;
  int grpc_status; /* -1 until the server sends one */
  bool failed;     /* a failure found here, which wins over what the server says */
  int failed_status;
  char message[MESSAGE_TEXT];
  uint8_t *partial; /* a response message split over DATA frames */
  size_t partial_size, partial_capacity;
};

struct h2_connection {
  grpc_h2_client *client;
  int fd;
  nghttp2_session *session;
  uint8_t *out; /* frames not yet taken by the socket */
  size_t out_size, out_capacity;
  bool waiting_writable; /* EPOLLOUT registered */
  bool dirty;            /* on the client's list of connections to flush */
  bool failed;
  char protocol_error[MESSAGE_TEXT]; /* nghttp2's words for what the peer got wrong */
  grpc_h2_call *calls;
};

struct grpc_h2_client {
  char *target;
  int epoll_fd;
  h2_connection *connections;
  int n_connections;
  h2_connection **dirty; /* connections with frames to write */
  int n_dirty;
  uint8_t *read_buffer;
};

/* ---- calls -------------------------------------------------------------- */

static int hex_digit(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
  return -1;
}

/* grpc-message is percent-encoded; what does not fit is cut. */
static void decode_grpc_message(char *out, const uint8_t *in, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n && k + 1 < MESSAGE_TEXT; i++) {
    const int hi = in[i] == '%' && i + 2 < n ? hex_digit(in[i + 1]) : -1;
    const int lo = hi >= 0 ? hex_digit(in[i + 2]) : -1;
    if (lo >= 0) {
      out[k++] = (char)(hi << 4 | lo);
      i += 2;
    } else {
      out[k++] = (char)in[i];
    }
  }
  out[k] = '\0';
}

static void connection_mark_dirty(h2_connection *c) {
  if (c->dirty || c->failed) return;
  c->dirty = true;
  c->client->dirty[c->client->n_dirty++] = c;
}

static void call_unlink(grpc_h2_call *call) {
  h2_connection *c = call->connection;
  if (call->prev) call->prev->next = call->next;
  else c->calls = call->next;
  if (call->next) call->next->prev = call->prev;
}

static void call_free(grpc_h2_call *call) {
  free(call->queue);
  free(call->partial);
  free(call);
}

/* Ends the call: on_close with the status it came to, then frees it. */
static void call_finish(grpc_h2_call *call, int status, const char *message) {
  call_unlink(call);
  call->handlers->on_close(call->user, status, message);
  call_free(call);
}

/* A failure found on this side: the stream is reset and, when it closes,
 * ends the call with this status instead of the server's. */
static void call_fail(grpc_h2_call *call, int status, const char *message) {
  if (call->failed) return;
  call->failed = true;
  call->failed_status = status;
  snprintf(call->message, sizeof(call->message), "%s", message);
  nghttp2_submit_rst_stream(call->connection->session, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
}

static uint32_t read_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Cuts the response body into messages: a message that lies whole in one
 * chunk is handed over in place, one split over chunks is gathered first. */
static void call_receive(grpc_h2_call *call, const uint8_t *p, size_t n) {
  while (n > 0 && !call->failed) {
    if (call->partial_size == 0 && n >= FRAME_PREFIX && n - FRAME_PREFIX >= read_be32(p + 1) && p[0] == 0) {
      const size_t size = read_be32(p + 1);
      call->handlers->on_message(call->user, p + FRAME_PREFIX, size);
      p += FRAME_PREFIX + size;
      n -= FRAME_PREFIX + size;
      continue;
    }
    size_t want = FRAME_PREFIX;
    if (call->partial_size >= FRAME_PREFIX) want += read_be32(call->partial + 1);
    if (want > call->partial_capacity) {
      uint8_t *grown = mem_try_realloc(call->partial, want, 1);
      if (!grown) {
        call_fail(call, GRPC_H2_STATUS_RESOURCE_EXHAUSTED, "no memory for a response message");
        return;
      }
      call->partial = grown;
      call->partial_capacity = want;
    }
    const size_t take = want - call->partial_size < n ? want - call->partial_size : n;
    memcpy(call->partial + call->partial_size, p, take);
    call->partial_size += take;
    p += take;
    n -= take;
    if (call->partial_size >= FRAME_PREFIX && call->partial[0] != 0) {
      call_fail(call, GRPC_H2_STATUS_INTERNAL, "compressed response message (this client asks for none)");
    } else if (call->partial_size >= FRAME_PREFIX &&
               call->partial_size == FRAME_PREFIX + (size_t)read_be32(call->partial + 1)) {
      call->handlers->on_message(call->user, call->partial + FRAME_PREFIX, call->partial_size - FRAME_PREFIX);
      call->partial_size = 0;
    }
  }
}

/* The data provider: copies queued messages into a DATA frame; defers while
 * the queue is empty and the client's side is open. */
static ssize_t call_read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                              uint32_t *flags, nghttp2_data_source *source, void *user_data) {
  (void)session;
  (void)stream_id;
  (void)user_data;
  grpc_h2_call *call = source->ptr;
  size_t n = 0;
  while (n < length && call->head < call->tail) {
    const queued_message *m = &call->queue[call->head];
    size_t take = m->size - call->offset;
    if (take > length - n) take = length - n;
    memcpy(buf + n, m->bytes + call->offset, take);
    n += take;
    call->offset += take;
    if (call->offset == m->size) {
      call->head++;
      call->offset = 0;
    }
  }
  if (call->head == call->tail) {
    call->head = call->tail = 0;
    if (call->send_closed) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    } else if (n == 0) {
      call->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return (ssize_t)n;
}

static void call_resume(grpc_h2_call *call) {
  if (call->deferred) {
    call->deferred = false;
    nghttp2_session_resume_data(call->connection->session, call->stream_id);
  }
  connection_mark_dirty(call->connection);
}

/* Names and values outlive the HEADERS frame (literals, the client's
 * target, the caller's path), so nghttp2 need not copy them. */
static nghttp2_nv header(const char *name, const char *value) {
  return (nghttp2_nv){.name = (uint8_t *)name, .value = (uint8_t *)value, .namelen = strlen(name),
                      .valuelen = strlen(value), .flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
}

grpc_h2_call *grpc_h2_call_start(grpc_h2_client *client, int connection, const char *path,
                                 const grpc_h2_call_handlers *handlers, void *user) {
  h2_connection *c = &client->connections[connection];
  if (c->failed || !nghttp2_session_check_request_allowed(c->session)) return NULL;
  grpc_h2_call *call = mem_zalloc(sizeof(*call));
  *call = (grpc_h2_call){.connection = c, .handlers = handlers, .user = user, .grpc_status = -1};
  const nghttp2_nv headers[] = {
      header(":method", "POST"),
      header(":scheme", "http"),
      header(":path", path),
      header(":authority", client->target),
      header("content-type", "application/grpc"),
      header("te", "trailers"),
      header("user-agent", "inferd-perf/" INFERD_VERSION),
  };
  const nghttp2_data_provider body = {.source.ptr = call, .read_callback = call_read_body};
  call->stream_id =
      nghttp2_submit_request(c->session, NULL, headers, sizeof(headers) / sizeof(headers[0]), &body, call);
  if (call->stream_id < 0) {
    call_free(call);
    return NULL;
  }
  call->next = c->calls;
  if (c->calls) c->calls->prev = call;
  c->calls = call;
  connection_mark_dirty(c);
  return call;
}

void grpc_h2_call_send(grpc_h2_call *call, const uint8_t *framed, size_t size) {
  MEM_GROW(call->queue, call->capacity, call->tail + 1);
  call->queue[call->tail++] = (queued_message){framed, size};
  call_resume(call);
}

void grpc_h2_call_close_send(grpc_h2_call *call) {
  call->send_closed = true;
  call_resume(call);
}

uint8_t *grpc_h2_frame(const ProtobufCMessage *message, size_t *size) {
  const size_t n = protobuf_c_message_get_packed_size(message);
  if (n > UINT32_MAX) return NULL;
  uint8_t *out = mem_try_alloc(FRAME_PREFIX + n, 1);
  if (!out) return NULL;
  out[0] = 0;
  out[1] = (uint8_t)(n >> 24);
  out[2] = (uint8_t)(n >> 16);
  out[3] = (uint8_t)(n >> 8);
  out[4] = (uint8_t)n;
  protobuf_c_message_pack(message, out + FRAME_PREFIX);
  *size = FRAME_PREFIX + n;
  return out;
}

/* ---- nghttp2 callbacks ---------------------------------------------------- */

static grpc_h2_call *stream_call(nghttp2_session *session, int32_t stream_id) {
  return nghttp2_session_get_stream_user_data(session, stream_id);
}

static bool name_is(const uint8_t *name, size_t len, const char *want) {
  return len == strlen(want) && !memcmp(name, want, len);
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
  (void)flags;
  (void)user_data;
  grpc_h2_call *call = stream_call(session, frame->hd.stream_id);
  if (!call || frame->hd.type != NGHTTP2_HEADERS) return 0;
  char number[16];
  const size_t digits = valuelen < sizeof(number) ? valuelen : sizeof(number) - 1;
  if (name_is(name, namelen, ":status")) {
    memcpy(number, value, digits);
    number[digits] = '\0';
    call->http_status = atoi(number);
  } else if (name_is(name, namelen, "grpc-status")) {
    memcpy(number, value, digits);
    number[digits] = '\0';
    call->grpc_status = atoi(number);
  } else if (name_is(name, namelen, "grpc-message") && !call->failed) {
    decode_grpc_message(call->message, value, valuelen);
  }
  return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data) {
  (void)flags;
  (void)user_data;
  grpc_h2_call *call = stream_call(session, stream_id);
  if (call && call->handlers->on_message) call_receive(call, data, len);
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data) {
  (void)user_data;
  grpc_h2_call *call = stream_call(session, stream_id);
  if (!call) return 0;
  char text[MESSAGE_TEXT + 64];
  if (call->failed) {
    call_finish(call, call->failed_status, call->message);
  } else if (call->grpc_status == 0 && call->partial_size) {
    call_finish(call, GRPC_H2_STATUS_INTERNAL, "the response ended inside a message");
  } else if (call->grpc_status >= 0) {
    call_finish(call, call->grpc_status, call->message);
  } else if (error_code != NGHTTP2_NO_ERROR) {
    snprintf(text, sizeof(text), "stream reset (HTTP/2 %s)", nghttp2_http2_strerror(error_code));
    call_finish(call, error_code == NGHTTP2_REFUSED_STREAM ? GRPC_H2_STATUS_UNAVAILABLE : GRPC_H2_STATUS_INTERNAL,
                text);
  } else if (call->http_status != 200) {
    snprintf(text, sizeof(text), "HTTP status %d without grpc-status", call->http_status);
    call_finish(call, GRPC_H2_STATUS_UNKNOWN, text);
  } else {
    call_finish(call, GRPC_H2_STATUS_INTERNAL, "the response ended without grpc-status");
  }
  return 0;
}

/* A request whose HEADERS could not go (the server sent GOAWAY, or stream
 * ids ran out). When nghttp2 had opened the stream it closes it next, and
 * on_stream_close reports the failure; else no stream exists to close and
 * the call ends here. */
static int on_frame_not_send(nghttp2_session *session, const nghttp2_frame *frame, int lib_error_code,
                             void *user_data) {
  h2_connection *c = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  char text[MESSAGE_TEXT];
  snprintf(text, sizeof(text), "request not sent: %s", nghttp2_strerror(lib_error_code));
  grpc_h2_call *call = stream_call(session, frame->hd.stream_id);
  if (call) {
    call->failed = true;
    call->failed_status = GRPC_H2_STATUS_UNAVAILABLE;
    snprintf(call->message, sizeof(call->message), "%s", text);
    return 0;
  }
  for (call = c->calls; call && call->stream_id != frame->hd.stream_id; call = call->next) {
  }
  if (call) call_finish(call, GRPC_H2_STATUS_UNAVAILABLE, text);
  return 0;
}

/* nghttp2 ends a connection whose peer broke the protocol (an HTTP/1 server
 * answering the preface, say) with a GOAWAY of its own; its explanation
 * says more than the GOAWAY. */
static int on_error(nghttp2_session *session, int lib_error_code, const char *message, size_t len, void *user_data) {
  (void)session;
  (void)lib_error_code;
  h2_connection *c = user_data;
  snprintf(c->protocol_error, sizeof(c->protocol_error), "%.*s", (int)len, message);
  return 0;
}

/* ---- connections ---------------------------------------------------------- */

/* Ends every call of a connection that cannot go on, and closes it. */
static void connection_fail(h2_connection *c, const char *why) {
  if (c->failed) return;
  c->failed = true;
  char text[MESSAGE_TEXT];
  snprintf(text, sizeof(text), "connection to %s: %s", c->client->target, why);
  while (c->calls) call_finish(c->calls, GRPC_H2_STATUS_UNAVAILABLE, text);
  nghttp2_session_del(c->session);
  c->session = NULL;
  epoll_ctl(c->client->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
}

static void connection_watch_writable(h2_connection *c, bool writable) {
  if (c->waiting_writable == writable) return;
  c->waiting_writable = writable;
  struct epoll_event ev = {.events = EPOLLIN | (writable ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(c->client->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Appends nghttp2's next frames to the output until about `limit` bytes wait
 * there or nghttp2 has none left; false when the session failed. */
static bool connection_gather(h2_connection *c, size_t limit) {
  while (c->out_size < limit) {
    const uint8_t *frames;
    const ssize_t n = nghttp2_session_mem_send(c->session, &frames);
    if (n < 0) {
      connection_fail(c, nghttp2_strerror((int)n));
      return false;
    }
    if (n == 0) break;
    MEM_GROW(c->out, c->out_capacity, c->out_size + (size_t)n);
    memcpy(c->out + c->out_size, frames, (size_t)n);
    c->out_size += (size_t)n;
  }
  return true;
}

/* Sends gathered frames until nghttp2 has none left or the socket takes no
 * more (then EPOLLOUT says when to go on). */
static void connection_flush(h2_connection *c) {
  while (!c->failed) {
    if (!connection_gather(c, WRITE_BATCH)) return;
    if (c->out_size == 0) break;
    const ssize_t sent = send(c->fd, c->out, c->out_size, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (sent < 0) {
      connection_fail(c, strerror(errno));
      return;
    }
    memmove(c->out, c->out + sent, c->out_size - (size_t)sent);
    c->out_size -= (size_t)sent;
  }
  if (c->failed) return;
  connection_watch_writable(c, c->out_size > 0);
  if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session) && c->out_size == 0)
    connection_fail(c, *c->protocol_error ? c->protocol_error : "closed by the server (GOAWAY)");
}

static void connection_read(h2_connection *c) {
  const ssize_t n = recv(c->fd, c->client->read_buffer, READ_CHUNK, 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) {
    connection_fail(c, n == 0 ? "closed by the server" : strerror(errno));
    return;
  }
  const ssize_t used = nghttp2_session_mem_recv(c->session, c->client->read_buffer, (size_t)n);
  if (used < 0) {
    connection_fail(c, *c->protocol_error ? c->protocol_error : nghttp2_strerror((int)used));
    return;
  }
  /* Acknowledgements and window updates, and the calls the callbacks started. */
  connection_mark_dirty(c);
}

static void flush_dirty(grpc_h2_client *client) {
  /* A flush can end calls whose handlers dirty other connections: the list
   * is taken from the end until it stays empty. */
  while (client->n_dirty > 0) {
    h2_connection *c = client->dirty[--client->n_dirty];
    c->dirty = false;
    connection_flush(c);
  }
}

void grpc_h2_client_poll(grpc_h2_client *client, int timeout_ms) {
  flush_dirty(client);
  struct epoll_event events[32];
  const int n = epoll_wait(client->epoll_fd, events, 32, timeout_ms);
  for (int i = 0; i < n; i++) {
    h2_connection *c = events[i].data.ptr;
    if (!c->failed && (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) connection_read(c);
    if (!c->failed && (events[i].events & EPOLLOUT)) connection_mark_dirty(c);
  }
  flush_dirty(client);
}

/* A non-blocking TCP connection to one of the addresses, within the timeout. */
static int connect_tcp(const struct addrinfo *addresses, int *error) {
  *error = ECONNREFUSED;
  for (const struct addrinfo *a = addresses; a; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      *error = errno;
      continue;
    }
    int e = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (e == EINPROGRESS) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      socklen_t len = sizeof(e);
      if (poll(&p, 1, CONNECT_TIMEOUT_MS) == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len);
      else e = ETIMEDOUT;
    }
    if (e == 0) {
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      return fd;
    }
    *error = e;
    close(fd);
  }
  return -1;
}

static inferd_error *connection_open(grpc_h2_client *client, h2_connection *c, const struct addrinfo *addresses,
                                     const nghttp2_session_callbacks *callbacks) {
  *c = (h2_connection){.client = client, .fd = -1, .failed = true};
  int error;
  c->fd = connect_tcp(addresses, &error);
  if (c->fd < 0) return err_new(INFERD_ERROR_UNAVAILABLE, "cannot connect to %s: %s", client->target, strerror(error));
  if (nghttp2_session_client_new(&c->session, callbacks, c) != 0)
    return err_new(INFERD_ERROR_INTERNAL, "cannot create an HTTP/2 session");
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
  };
  nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, sizeof(settings) / sizeof(settings[0]));
  nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, CONNECTION_WINDOW);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  if (epoll_ctl(client->epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
    return err_new(INFERD_ERROR_INTERNAL, "epoll: %s", strerror(errno));
  c->failed = false;
  connection_mark_dirty(c); /* the preface and SETTINGS */
  return NULL;
}

/* Splits "host:port" or "[v6]:port" and resolves it. */
static inferd_error *resolve(const char *target, struct addrinfo **addresses) {
  const char *colon = strrchr(target, ':');
  if (!colon || colon == target || !colon[1])
    return err_new(INFERD_ERROR_INVALID_ARG, "'%s' is not HOST:PORT", target);
  size_t host_len = (size_t)(colon - target);
  const char *host = target;
  if (host[0] == '[' && host[host_len - 1] == ']') {
    host++;
    host_len -= 2;
  }
  char *name = mem_strndup(host, host_len);
  const struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  const int rc = getaddrinfo(name, colon + 1, &hints, addresses);
  free(name);
  if (rc != 0) return err_new(INFERD_ERROR_UNAVAILABLE, "cannot resolve %s: %s", target, gai_strerror(rc));
  return NULL;
}

inferd_error *grpc_h2_client_connect(const char *target, int connections, grpc_h2_client **out) {
  *out = NULL;
  struct addrinfo *addresses;
  ERR_TRY(resolve(target, &addresses));
  grpc_h2_client *client = mem_zalloc(sizeof(*client));
  client->target = mem_strdup(target);
  client->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  client->connections = mem_zalloc((size_t)connections * sizeof(*client->connections));
  client->dirty = mem_alloc((size_t)connections * sizeof(*client->dirty));
  client->read_buffer = mem_alloc(READ_CHUNK);
  nghttp2_session_callbacks *callbacks;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks, on_frame_not_send);
  nghttp2_session_callbacks_set_error_callback2(callbacks, on_error);
  inferd_error *err = client->epoll_fd < 0 ? err_new(INFERD_ERROR_INTERNAL, "epoll: %s", strerror(errno)) : NULL;
  for (int i = 0; i < connections && !err; i++) {
    err = connection_open(client, &client->connections[i], addresses, callbacks);
    client->n_connections = i + 1;
  }
  nghttp2_session_callbacks_del(callbacks);
  freeaddrinfo(addresses);
  if (err) {
    grpc_h2_client_delete(client);
    return err;
  }
  *out = client;
  return NULL;
}

void grpc_h2_client_delete(grpc_h2_client *client) {
  if (!client) return;
  for (int i = 0; i < client->n_connections; i++) {
    h2_connection *c = &client->connections[i];
    /* A GOAWAY where no call is open and the socket takes it at once:
     * nothing waits for it, and with calls open the session could still
     * read from their queues, so those are just dropped. */
    if (!c->failed && !c->calls) {
      nghttp2_session_terminate_session(c->session, NGHTTP2_NO_ERROR);
      if (connection_gather(c, SIZE_MAX) && c->out_size && send(c->fd, c->out, c->out_size, MSG_NOSIGNAL) < 0) {
        /* The server has gone already: nothing to tell it. */
      }
    }
    while (c->calls) {
      grpc_h2_call *call = c->calls;
      call_unlink(call);
      call_free(call);
    }
    nghttp2_session_del(c->session);
    if (c->fd >= 0) close(c->fd);
    free(c->out);
  }
  if (client->epoll_fd >= 0) close(client->epoll_fd);
  free(client->connections);
  free(client->dirty);
  free(client->read_buffer);
  free(client->target);
  free(client);
}

/* ---- one call that waits for its answer ------------------------------------ */

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

inferd_error *grpc_h2_unary(grpc_h2_client *client, const char *path, const uint8_t *framed, size_t size,
                           int timeout_s, uint8_t **reply, size_t *reply_size) {
  static const grpc_h2_call_handlers handlers = {.on_message = unary_on_message, .on_close = unary_on_close};
  unary_reply r = {0};
  grpc_h2_call *call = grpc_h2_call_start(client, 0, path, &handlers, &r);
  if (!call) return err_new(INFERD_ERROR_UNAVAILABLE, "cannot start a call to %s", path);
  grpc_h2_call_send(call, framed, size);
  grpc_h2_call_close_send(call);
  const uint64_t deadline = clock_now_ns() + (uint64_t)timeout_s * 1000000000u;
  while (!r.done && clock_now_ns() < deadline) grpc_h2_client_poll(client, 100);
  if (!r.done) return err_new(INFERD_ERROR_TIMEOUT, "%s: no answer in %d s", path, timeout_s);
  if (r.status != 0 || !r.bytes) {
    free(r.bytes);
    return err_new(INFERD_ERROR_UNAVAILABLE, "%s: status %d: %s", path, r.status, r.message);
  }
  *reply = r.bytes;
  *reply_size = r.size;
  return NULL;
}
