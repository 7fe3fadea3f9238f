/*
 * The HTTP frontend's network part: one listening socket, `threads` network
 * threads each with its own event base and evhttp serving that socket, and
 * the exchange lifecycle.
 *
 * Threads. Every network thread accepts on the shared socket through its own
 * evconnlistener (the kernel hands each connection to one of them) and keeps
 * the connection for its life. Responses come back on server threads; the
 * server's callback only queues the exchange on its thread's locked list and
 * activates that thread's wakeup event (thread-safe once
 * evthread_use_pthreads has run), and the loop then encodes, sends and frees.
 * No evhttp object is ever touched off its loop.
 *
 * Connections. evhttp 2.1 says nothing of a connection before its first
 * request and has no connection limit, but it asks the bufferevent callback
 * for every connection it accepts. That callback makes the connection's
 * record (http_conn), counts it against --max-connections and holds a
 * reference on the bufferevent; on the loop's next turn, once evhttp has
 * set the connection up, the record is adopted: the bufferevent's callback
 * argument is then evhttp's connection object (bufferevent_getcb), whose
 * close callback the record takes for the connection's life, so every
 * close is counted. (A bufferevent evhttp already let go has its callbacks
 * cleared; the reference kept it valid to look at.) A connection past the
 * limit is answered 503 with a JSON error when it is plain HTTP (one
 * non-blocking write, best effort) and freed at adoption; the listener
 * pauses from the refusal to its close, so a flood costs one accept and one
 * close per turn of the loop and never more descriptors than the limit and
 * the one being refused.
 *
 * Disconnects. evhttp stops reading a connection while a request on it is
 * being answered, so it would notice a client that leaves only when the
 * answer fails to go out. While the server holds an inference, the socket
 * is therefore watched for its close (EV_CLOSED, epoll's RDHUP, and a read
 * peeked at, which also sees a reset): a client that closes has its request
 * flagged cancelled (the server drops it unrun if it is still queued) and
 * its connection freed at once. The connection's close callback clears the
 * exchange's request pointer (evhttp frees the request), and the response,
 * when it comes, is dropped and freed. A write that fails ends the same
 * way. A client that half-closes (shuts down its sending side) after its
 * request counts as gone, as with nginx.
 *
 * Shutdown. stop_listening removes each thread's listener on its loop, and
 * the last thread to do so closes the listening socket: a socket still open
 * but no longer accepted from would let the kernel complete new connections
 * into its backlog, unanswered through the whole drain and reset at exit,
 * where a closed one refuses them at once. Connections already in the
 * backlog would be reset by the close, so the last thread first holds new
 * handshakes off (a socket filter that drops SYNs) and goes on accepting
 * until the backlog is seen empty, at least 5 ms on (looked at every
 * millisecond, at most 200 times); from then on every answer says
 * "Connection: close" and closes its connection. delete then asks each loop to
 * stop: it waits until its exchanges are all written or dropped (those with
 * the server must come back first, the server answers every request), with
 * a grace period for slow readers after which their connections are closed
 * (10 s, or what http_frontend_set_shutdown_grace says), then frees its
 * evhttp and exits.
 *
 * Request bodies larger than max_input_size are refused from their
 * Content-Length before they are buffered: the guard (http_guard.h) turns
 * such a request into a body-less one the handler answers with a JSON 413,
 * and drops the body as it arrives, so the client, which sends the whole
 * body before it reads, sees the 413 and can go on using the connection.
 * The guard refuses ambiguous framing and oversized header blocks the same
 * way, and those answers close the connection.
 * A chunked body is stopped by evhttp as it crosses the limit (413 with
 * evhttp's own page), which then reads and discards the rest (lingering
 * close) so that the client sees the 413 rather than a reset.
 */
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <linux/filter.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/mem.h"
#include "frontends/frontend_loop.h"
#include "frontends/frontend_tls.h"
#include "frontends/http/http_frontend.h"
#include "frontends/http/http_guard.h"
#include "frontends/http/http_infer_response.h"
#include "frontends/http/http_internal.h"

/* Adoption reads evhttp's connection from its bufferevent's callback
 * argument, as evhttp 2.1 and 2.2 set it. */
#if LIBEVENT_VERSION_NUMBER < 0x02010100 || LIBEVENT_VERSION_NUMBER >= 0x02030000
#error "http_server.c adopts evhttp connections the way libevent 2.1 and 2.2 let it"
#endif

enum {
  DEFAULT_MAX_INPUT = 64 << 20,
  DEFAULT_MAX_HEADER_BYTES = 64 << 10,
  DEFAULT_MAX_HEADERS = 100,
  DEFAULT_IDLE_TIMEOUT_SECS = 60,
  DEFAULT_READ_TIMEOUT_SECS = 30,
  DEFAULT_MAX_CONNECTIONS = 10000,
  SHUTDOWN_GRACE_MS = 10000,
  BACKLOG_CHECK_MS = 1,   /* between looks at the backlog before the socket is closed */
  BACKLOG_CHECKS = 200,   /* at most this many: a client that keeps connecting cannot hold the stop */
  BACKLOG_QUIET_CHECKS = 5 /* with new handshakes held off, the wait for those under way */
};

/* One client connection, from evhttp's accept to its close callback (see
 * Connections above). */
struct http_conn {
  http_thread *thread;
  struct bufferevent *bev;         /* until adopted, with a reference held */
  struct evhttp_connection *evcon; /* once adopted */
  evutil_socket_t fd;
  bool admitted;           /* counted in the frontend's connections */
  http_exchange *exchange; /* the request being handled or answered; NULL: none */
  struct event *departure; /* watches the socket while the server holds the request */
  http_conn *next_pending;
};

struct http_thread {
  http_frontend *frontend;
  pthread_t tid;
  bool started;
  struct event_base *base;
  struct evhttp *http;
  struct evhttp_bound_socket *bound;
  struct event *wake;
  struct event *grace;
  struct event *finish;
  struct event *sweep; /* the guard's read deadlines (with a read timeout) */
  frontend_acceptor acceptor;
  http_guard guard;
  frontend_mailbox mailbox; /* answers from server threads, the orders to stop */
  struct event *adopt;      /* adopts the connections accepted this turn */
  struct event *backlog;    /* the last listener's looks at the backlog before the socket is closed */
  bool early_close;         /* the backend reports a peer's close apart from input (epoll) */
  /* Loop only: */
  size_t live;   /* exchanges not yet freed */
  bool draining; /* the listener is gone: answers close their connections */
  bool last_listener; /* this thread closes the socket once its backlog is empty */
  int backlog_checks;
  bool handshakes_held; /* the listening socket drops SYNs (see refuse_new_handshakes) */
  bool stopping;
  http_conn *pending; /* accepted, not adopted yet */
  http_conn **conns;  /* adopted connections by socket */
  size_t conn_cap;
  bool refusing; /* the listener pauses until the connections refused are closed */
};

struct http_frontend {
  inferd_server *server;
  size_t max_input_size;
  http_guard_limits limits;
  int idle_timeout_secs, read_timeout_secs; /* 0: none */
  int shutdown_grace_ms;                     /* see http_frontend_set_shutdown_grace */
  const frontend_restrictions *restricted;
  SSL_CTX *tls; /* NULL: plain HTTP */
  _Atomic evutil_socket_t fd; /* the listening socket; -1 once closed */
  atomic_int listening;        /* threads that still accept from fd */
  int port;
  int thread_count;
  http_thread *threads;
  int max_connections;
  atomic_int connections; /* open over the threads (admitted, not yet closed) */
  char refusal[256];      /* the 503 a connection past the limit is sent */
  size_t refusal_len;
};

/* ---- exchanges ---------------------------------------------------------- */

static void thread_check_exit(http_thread *t);

static void conn_unwatch(http_conn *c) {
  if (c->departure) event_del(c->departure);
}

static void exchange_free(http_exchange *ex) {
  http_thread *t = ex->thread;
  if (ex->conn) {
    conn_unwatch(ex->conn);
    ex->conn->exchange = NULL;
  }
  http_exchange_release_payload(ex);
  http_route_free(&ex->route);
  free(ex);
  t->live--;
  thread_check_exit(t);
}

static void on_request_complete(struct evhttp_request *req, void *arg) {
  (void)req;
  http_exchange *ex = arg;
  ex->req = NULL;
  exchange_free(ex);
}

void http_exchange_drop(http_exchange *ex) { exchange_free(ex); }

void http_exchange_send(http_exchange *ex, int status, struct evbuffer *body, const char *content_type,
                        size_t header_length, bool compress) {
  struct evhttp_request *req = ex->req;
  if (!req) {
    if (body) evbuffer_free(body);
    exchange_free(ex);
    return;
  }
  if (ex->conn) conn_unwatch(ex->conn);
  struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
  if (body && compress && ex->response_encoding != HTTP_ENCODING_IDENTITY && evbuffer_get_length(body) > 0) {
    struct evbuffer *z = evbuffer_new();
    inferd_error *err = z ? http_deflate(body, ex->response_encoding, z) : err_new(INFERD_ERROR_NO_MEMORY, "oom");
    if (err) {
      /* Uncompressed is still a correct answer. */
      log_warn("http: cannot compress a response: %s", inferd_error_message(err));
      inferd_error_delete(err);
      if (z) evbuffer_free(z);
    } else {
      evbuffer_free(body);
      body = z;
      evhttp_add_header(headers, "Content-Encoding", http_encoding_name(ex->response_encoding));
    }
  }
  if (content_type) evhttp_add_header(headers, "Content-Type", content_type);
  /* While the server drains, a kept-alive connection would only be closed
   * under a client that may be writing its next request on it (which then
   * gets no answer); telling the client with the answer makes it open a new
   * connection, which is refused at once, as nginx does when it stops. */
  if (ex->thread->draining && !evhttp_find_header(headers, "Connection"))
    evhttp_add_header(headers, "Connection", "close");
  if (header_length) {
    char num[32];
    snprintf(num, sizeof(num), "%zu", header_length);
    evhttp_add_header(headers, "Inference-Header-Content-Length", num);
  }
  struct evhttp_connection *conn = evhttp_request_get_connection(req);
  ex->state = HTTP_EXCHANGE_WRITING;
  if (!conn) {
    /* Detached from a connection that is gone: evhttp frees it on send. */
    ex->req = NULL;
    evhttp_send_reply(req, status, NULL, body);
    if (body) evbuffer_free(body);
    exchange_free(ex);
    return;
  }
  evhttp_request_set_on_complete_cb(req, on_request_complete, ex);
  evhttp_send_reply(req, status, NULL, body);
  if (body) evbuffer_free(body);
}

static void free_json(const void *data, size_t len, void *arg) {
  (void)len;
  (void)arg;
  free((void *)data);
}

void http_exchange_send_json(http_exchange *ex, int status, char *json, size_t len) {
  struct evbuffer *body = evbuffer_new();
  if (body && json && evbuffer_add_reference(body, json, len, free_json, NULL) == 0) {
    http_exchange_send(ex, status, body, "application/json", 0, false);
    return;
  }
  free(json);
  if (body) evbuffer_free(body);
  http_exchange_send(ex, 500, NULL, NULL, 0, false);
}

void http_exchange_send_empty(http_exchange *ex, int status) { http_exchange_send(ex, status, NULL, NULL, 0, false); }

void http_exchange_send_error(http_exchange *ex, inferd_error *error) {
  const inferd_error_code code = inferd_error_code_of(error);
  const int status = inferd_error_code_http_status(code);
  /* An overload refusal says when to come back: Retry-After counts whole
   * seconds (RFC 9110), rounded up so that it is never 0. */
  const int retry_ms = inferd_error_code_retry_after_ms(code);
  if (retry_ms > 0 && ex->req) {
    char seconds[16];
    snprintf(seconds, sizeof(seconds), "%d", (retry_ms + 999) / 1000);
    evhttp_add_header(evhttp_request_get_output_headers(ex->req), "Retry-After", seconds);
  }
  size_t len = 0;
  char *json = http_error_json(inferd_error_message(error), &len);
  log_verbose("http: %d %s", status, inferd_error_message(error));
  inferd_error_delete(error);
  http_exchange_send_json(ex, status, json, len);
}

void http_exchange_post(http_exchange *ex) { frontend_mailbox_post(&ex->thread->mailbox, &ex->post); }

/* ---- connections -------------------------------------------------------- */

static void conn_free(http_conn *c) {
  http_thread *t = c->thread;
  if (c->admitted) frontend_acceptor_release(&t->acceptor);
  if (c->fd >= 0 && (size_t)c->fd < t->conn_cap && t->conns[c->fd] == c) t->conns[c->fd] = NULL;
  if (c->departure) event_free(c->departure);
  free(c);
}

/* evhttp is freeing the connection (the client left, a timeout, a write
 * that failed, the shutdown). */
static void on_connection_close(struct evhttp_connection *evcon, void *arg) {
  (void)evcon;
  http_conn *c = arg;
  http_exchange *ex = c->exchange;
  http_thread *t = c->thread;
  conn_free(c);
  if (!ex) return;
  /* evhttp frees the request with the connection. */
  ex->req = NULL;
  ex->conn = NULL;
  if (ex->state == HTTP_EXCHANGE_WRITING) {
    exchange_free(ex);
  } else if (ex->state == HTTP_EXCHANGE_AWAITING && ex->cancellable) {
    /* Nobody waits for the answer: what is still queued is dropped unrun. */
    atomic_store(&ex->cancelled, true);
    inferd_server_cancel_flagged(t->frontend->server);
  }
}

static void conn_register(http_thread *t, http_conn *c) {
  if ((size_t)c->fd >= t->conn_cap) {
    size_t cap = t->conn_cap ? t->conn_cap : 64;
    while (cap <= (size_t)c->fd) cap *= 2;
    t->conns = mem_realloc(t->conns, cap * sizeof(*t->conns));
    memset(t->conns + t->conn_cap, 0, (cap - t->conn_cap) * sizeof(*t->conns));
    t->conn_cap = cap;
  }
  t->conns[c->fd] = c;
  evhttp_connection_set_closecb(c->evcon, on_connection_close, c);
}

static void listener_pause(http_thread *t, bool pause) {
  if (!t->bound || t->refusing == pause) return;
  t->refusing = pause;
  struct evconnlistener *listener = evhttp_bound_socket_get_listener(t->bound);
  if (pause)
    evconnlistener_disable(listener);
  else
    evconnlistener_enable(listener);
}

/* The connections accepted since the last adoption, now that evhttp has
 * set them up: each is tracked, refused, or forgotten when evhttp already
 * let it go. */
static void adopt_pending(http_thread *t) {
  while (t->pending) {
    http_conn *c = t->pending;
    t->pending = c->next_pending;
    c->next_pending = NULL;
    struct bufferevent *bev = c->bev;
    c->bev = NULL;
    void *owner = NULL;
    bufferevent_getcb(bev, NULL, NULL, NULL, &owner);
    struct evhttp_connection *evcon = owner;
    if (evcon && evhttp_connection_get_bufferevent(evcon) == bev && bufferevent_getfd(bev) >= 0) {
      c->evcon = evcon;
      if (c->admitted) {
        c->fd = bufferevent_getfd(bev);
        conn_register(t, c);
        c = NULL;
      } else {
        const http_frontend *f = t->frontend;
        /* Best effort: a client that already sent its request may see a
         * reset instead (the unread request makes the close one). */
        if (!f->tls) (void)send(bufferevent_getfd(bev), f->refusal, f->refusal_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        evhttp_connection_free(evcon);
      }
    }
    if (c) conn_free(c);
    bufferevent_decref(bev);
  }
  listener_pause(t, false);
}

static void on_adopt(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  adopt_pending(arg);
}

/* evhttp's bufferevent callback, once per accepted connection. */
static struct bufferevent *on_new_connection(struct event_base *base, void *arg) {
  http_thread *t = arg;
  struct bufferevent *bev;
  if (t->frontend->tls) {
    /* HTTPS: the guard watches the decrypted input. */
    bev = frontend_tls_evhttp_bufferevent(base, t->frontend->tls);
    if (bev && !http_guard_watch(&t->guard, bev)) log_warn("http: a TLS connection goes unguarded (out of memory)");
  } else {
    bev = http_guard_bufferevent(base, &t->guard);
  }
  /* Without one evhttp makes its own; conn_of then tracks the connection
   * from its first request, uncounted (memory is exhausted anyway). */
  if (!bev) return NULL;
  http_conn *c = mem_alloc(sizeof(*c));
  *c = (http_conn){.thread = t,
                   .bev = bev,
                   .fd = -1,
                   .admitted = frontend_acceptor_admit(&t->acceptor),
                   .next_pending = t->pending};
  t->pending = c;
  bufferevent_incref(bev);
  if (!c->admitted) listener_pause(t, true);
  event_active(t->adopt, EV_READ, 0);
  return bev;
}

/* The record of a request's connection. */
static http_conn *conn_of(http_thread *t, struct evhttp_connection *evcon) {
  if (!evcon) return NULL;
  const evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
  if (fd < 0) return NULL;
  for (int pass = 0; pass < 2; pass++) {
    if ((size_t)fd < t->conn_cap && t->conns[fd] && t->conns[fd]->evcon == evcon) return t->conns[fd];
    adopt_pending(t); /* accepted this very turn */
  }
  http_conn *c = mem_alloc(sizeof(*c));
  *c = (http_conn){.thread = t, .evcon = evcon, .fd = fd};
  conn_register(t, c);
  return c;
}

static void conn_watch(http_conn *c, short what);

static void on_departure(evutil_socket_t fd, short what, void *arg) {
  http_conn *c = arg;
  if (!(what & EV_CLOSED)) {
    char byte;
    const ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
      /* More bytes (a pipelined request): the client is still there, and
       * only its close can be watched now (without early close, nothing). */
      if (c->thread->early_close) conn_watch(c, EV_CLOSED);
      return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      conn_watch(c, what);
      return;
    }
  }
  /* An end of stream or a reset: on_connection_close cancels the request. */
  log_verbose("http: a client closed its connection while the server held its request; the request is dropped");
  evhttp_connection_free(c->evcon);
}

static void conn_watch(http_conn *c, short what) {
  if (c->departure && event_get_events(c->departure) != what) {
    event_free(c->departure);
    c->departure = NULL;
  }
  if (!c->departure) c->departure = event_new(c->thread->base, c->fd, what, on_departure, c);
  if (c->departure) event_add(c->departure, NULL);
}

void http_exchange_watch_departure(http_exchange *ex) {
  ex->cancellable = true;
  http_conn *c = ex->conn;
  if (c && ex->req && ex->state == HTTP_EXCHANGE_AWAITING)
    conn_watch(c, EV_READ | (c->thread->early_close ? EV_CLOSED : 0));
}

/* ---- network threads ---------------------------------------------------- */

/* One walk over the request headers instead of a search per name; the
 * first of repeated headers is taken, as evhttp_find_header does. */
static void find_headers(const struct evkeyvalq *headers, http_exchange *ex) {
  for (const struct evkeyval *h = headers->tqh_first; h; h = h->next.tqe_next) {
    const char **slot = !strcasecmp(h->key, HTTP_GUARD_HEADER)                  ? &ex->headers.refused
                        : !strcasecmp(h->key, "Content-Encoding")                ? &ex->headers.content_encoding
                        : !strcasecmp(h->key, "Accept-Encoding")                 ? &ex->headers.accept_encoding
                        : !strcasecmp(h->key, "Inference-Header-Content-Length") ? &ex->headers.header_length
                                                                                 : NULL;
    if (slot && !*slot) *slot = h->value;
  }
}

static void on_request(struct evhttp_request *req, void *arg) {
  http_thread *t = arg;
  http_exchange *ex = calloc(1, sizeof(*ex));
  if (!ex) {
    evhttp_send_error(req, 500, "out of memory");
    return;
  }
  *ex = (http_exchange){.thread = t,
                        .server = t->frontend->server,
                        .req = req,
                        .max_input_size = t->frontend->max_input_size,
                        .restricted = t->frontend->restricted,
                        .state = HTTP_EXCHANGE_HANDLING};
  t->live++;
  http_conn *conn = conn_of(t, evhttp_request_get_connection(req));
  if (conn) {
    conn->exchange = ex;
    ex->conn = conn;
  }
  find_headers(evhttp_request_get_input_headers(req), ex);
  int status;
  bool close;
  const char *message;
  if (ex->headers.refused && http_guard_refusal(ex->headers.refused, &status, &close, &message)) {
    /* The guard refused the request's framing (see http_guard.h). */
    log_verbose("http: %d %s", status, message);
    if (close) evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    size_t len = 0;
    char *json = http_error_json(message, &len);
    http_exchange_send_json(ex, status, json, len);
    return;
  }
  http_handle_request(ex, evhttp_request_get_command(req));
}

static void close_listening_socket(http_frontend *f) {
  const evutil_socket_t fd = atomic_exchange(&f->fd, -1);
  if (fd >= 0) close(fd);
}

static void release_listener(http_thread *t) {
  if (!t->bound) return;
  frontend_acceptor_destroy(&t->acceptor);
  evhttp_del_accept_socket(t->http, t->bound);
  t->bound = NULL;
}

/* Whether connections the kernel has completed wait in the backlog. */
static bool backlog_waiting(evutil_socket_t fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* A socket filter on the listening socket that drops every segment with
 * SYN set: no new handshake starts (its client's SYN goes unanswered and,
 * sent again, meets the closed socket and is refused), while those the
 * kernel has begun finish into the backlog. The filter sees the TCP header
 * first; byte 13 holds the flags, SYN is 0x02. */
static bool refuse_new_handshakes(evutil_socket_t fd) {
#ifdef SO_ATTACH_FILTER
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),
      BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x02),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 0xffffffffu), /* no SYN: kept */
      BPF_STMT(BPF_RET | BPF_K, 0),           /* SYN: dropped */
  };
  const struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
  return fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) == 0;
#else
  (void)fd;
  return false;
#endif
}

/* The last listener's end: the socket closed first, the listener removed
 * after, so that (without the filter) a connection completed after the
 * last look at the backlog has the least time to come in. libevent ignores
 * the removal's error for a socket already closed. */
static void close_listener(http_thread *t) {
  close_listening_socket(t->frontend);
  release_listener(t);
}

/* The last listener keeps accepting until the backlog is empty (what it
 * accepts now is answered as the drain answers), then closes the socket:
 * closing it with connections waiting would reset them. With new
 * handshakes held off by the filter, the backlog is closed only once it has
 * been empty at a look BACKLOG_QUIET_CHECKS milliseconds on, so that the
 * handshakes under way have landed in it. */
static void on_backlog_check(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  http_thread *t = arg;
  const evutil_socket_t listening = atomic_load(&t->frontend->fd);
  if (t->backlog_checks == 0) t->handshakes_held = refuse_new_handshakes(listening);
  const bool settled = !t->handshakes_held || t->backlog_checks >= BACKLOG_QUIET_CHECKS;
  if (t->bound && t->backlog_checks < BACKLOG_CHECKS && (!settled || backlog_waiting(listening))) {
    t->backlog_checks++;
    const struct timeval wait = {0, BACKLOG_CHECK_MS * 1000};
    evtimer_add(t->backlog, &wait);
    return;
  }
  close_listener(t);
}

/* at_once: the loop is ending, the backlog is not waited for. */
static void stop_listening_now(http_thread *t, bool at_once) {
  t->draining = true;
  if (!t->bound) return;
  if (!t->last_listener) {
    if (atomic_fetch_sub(&t->frontend->listening, 1) != 1) {
      release_listener(t);
      return;
    }
    t->last_listener = true;
  }
  if (!at_once) {
    if (!evtimer_pending(t->backlog, NULL)) on_backlog_check(-1, 0, t);
    return;
  }
  evtimer_del(t->backlog);
  close_listener(t);
}

static void close_connections(http_thread *t) {
  if (t->http) {
    stop_listening_now(t, true);
    /* Frees every connection; close callbacks end their exchanges. */
    struct evhttp *http = t->http;
    t->http = NULL;
    evhttp_free(http);
    adopt_pending(t); /* forgets those accepted this turn */
  }
}

/* Exchanges end inside evhttp's own callbacks, where freeing the evhttp
 * would pull the connection from under it: the exit runs as its own event. */
static void thread_check_exit(http_thread *t) {
  if (t->stopping && t->live == 0) event_active(t->finish, EV_READ, 0);
}

static void on_finish(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  http_thread *t = arg;
  if (t->live > 0) return;
  close_connections(t);
  /* Closing may have ended exchanges; they were all gone already. */
  event_base_loopbreak(t->base);
}

static void on_grace_timeout(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  http_thread *t = arg;
  if (t->live > 0) log_warn("http: closing connections with %zu responses still unwritten", t->live);
  close_connections(t);
  thread_check_exit(t);
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  http_thread *t = arg;
  bool stop_listening, stop;
  frontend_post *list = frontend_mailbox_take(&t->mailbox, &stop_listening, &stop);
  while (list) {
    http_exchange *ex = (http_exchange *)list;
    list = list->next;
    ex->complete(ex);
  }
  if (stop_listening) stop_listening_now(t, false);
  if (stop && !t->stopping) {
    t->stopping = true;
    const int ms = t->frontend->shutdown_grace_ms;
    const struct timeval grace = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(t->grace, &grace);
    thread_check_exit(t);
  }
}

static void on_sweep(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  http_thread *t = arg;
  const int cut = http_guard_sweep(&t->guard, clock_now_ns());
  if (cut) log_verbose("http: closed %d connections whose request did not arrive within %d s", cut,
                       t->frontend->read_timeout_secs);
}

static void *thread_main(void *arg) {
  http_thread *t = arg;
  event_base_loop(t->base, EVLOOP_NO_EXIT_ON_EMPTY);
  return NULL;
}

static void thread_signal(http_thread *t, bool stop) { frontend_mailbox_signal(&t->mailbox, stop); }

static inferd_error *thread_init(http_frontend *f, http_thread *t) {
  t->frontend = f;
  t->base = frontend_loop_base();
  if (!t->base) return err_new(INFERD_ERROR_INTERNAL, "cannot create an event base");
  t->http = evhttp_new(t->base);
  t->wake = event_new(t->base, -1, 0, on_wake, t);
  if (t->wake) frontend_mailbox_init(&t->mailbox, t->wake);
  t->grace = evtimer_new(t->base, on_grace_timeout, t);
  t->finish = event_new(t->base, -1, 0, on_finish, t);
  t->adopt = event_new(t->base, -1, 0, on_adopt, t);
  t->backlog = evtimer_new(t->base, on_backlog_check, t);
  t->early_close = (event_base_get_features(t->base) & EV_FEATURE_EARLY_CLOSE) != 0;
  if (!t->http || !t->wake || !t->grace || !t->finish || !t->adopt || !t->backlog)
    return err_new(INFERD_ERROR_INTERNAL, "cannot create the HTTP server");
  evhttp_set_gencb(t->http, on_request, t);
  t->guard.limits = f->limits;
  t->guard.read_timeout_ns = (uint64_t)f->read_timeout_secs * 1000000000ull;
  if (f->idle_timeout_secs) evhttp_set_timeout(t->http, f->idle_timeout_secs);
  if (f->read_timeout_secs) {
    /* A deadline is met to within a quarter of the timeout (at most 1 s). */
    const long ms = f->read_timeout_secs >= 4 ? 1000 : f->read_timeout_secs * 250L;
    const struct timeval period = {ms / 1000, (ms % 1000) * 1000};
    t->sweep = event_new(t->base, -1, EV_PERSIST, on_sweep, t);
    if (!t->sweep || event_add(t->sweep, &period) != 0)
      return err_new(INFERD_ERROR_INTERNAL, "cannot create the HTTP server");
  }
  evhttp_set_bevcb(t->http, on_new_connection, t);
  evhttp_set_max_body_size(t->http, (ev_ssize_t)f->max_input_size);
  evhttp_set_flags(t->http, EVHTTP_SERVER_LINGERING_CLOSE);
  evhttp_set_default_content_type(t->http, NULL);
  evhttp_set_allowed_methods(t->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                          EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
  /* The listener shares the socket: it must not close it when freed. */
  struct evconnlistener *listener = evconnlistener_new(t->base, NULL, NULL, LEV_OPT_CLOSE_ON_EXEC, 0, atomic_load(&f->fd));
  if (!listener) return err_new(INFERD_ERROR_INTERNAL, "cannot listen on the HTTP socket");
  t->bound = evhttp_bind_listener(t->http, listener);
  if (!t->bound) {
    evconnlistener_free(listener);
    return err_new(INFERD_ERROR_INTERNAL, "cannot listen on the HTTP socket");
  }
  atomic_fetch_add(&f->listening, 1);
  if (!frontend_acceptor_init(&t->acceptor, "http", t->base, listener, &f->connections, f->max_connections))
    return err_new(INFERD_ERROR_INTERNAL, "cannot listen on the HTTP socket");
  return NULL;
}

static void thread_destroy(http_thread *t) {
  frontend_acceptor_destroy(&t->acceptor);
  if (t->http) evhttp_free(t->http);
  if (t->sweep) event_free(t->sweep);
  if (t->wake) {
    frontend_mailbox_destroy(&t->mailbox);
    event_free(t->wake);
  }
  if (t->grace) event_free(t->grace);
  if (t->finish) event_free(t->finish);
  if (t->adopt) event_free(t->adopt);
  if (t->backlog) event_free(t->backlog);
  free(t->conns);
  if (t->base) event_base_free(t->base);
  http_guard_free(&t->guard);
}



/* --http-use-ssl-mutual asks for TLS too, as gRPC's flag does. */
static inferd_error *http_tls_context(const frontend_tls_options *o, SSL_CTX **out) {
  frontend_tls_options tls = *o;
  if (tls.use_ssl_mutual) tls.use_ssl = true;
  return frontend_tls_context("HTTP", &tls, out);
}

static void frontend_free(http_frontend *f) {
  for (int i = 0; i < f->thread_count; i++) thread_destroy(&f->threads[i]);
  free(f->threads);
  close_listening_socket(f);
  if (f->tls) SSL_CTX_free(f->tls);
  free(f);
}

/* The answer of a connection past --max-connections, made once. */
static void refusal_init(http_frontend *f) {
  char json[160];
  const int json_len =
      snprintf(json, sizeof(json),
               "{\"error\":\"too many HTTP connections: %d are open (--max-connections); retry later\"}",
               f->max_connections);
  f->refusal_len = (size_t)snprintf(f->refusal, sizeof(f->refusal),
                                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                    "Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s",
                                    json_len, json);
}

inferd_error *http_frontend_start(inferd_server *server, const http_frontend_options *options, http_frontend **out) {
  *out = NULL;
  frontend_process_setup();
  const char *address = options && options->address ? options->address : "0.0.0.0";
  const int port = options ? options->port : 8000;
  const int threads = options && options->threads > 0 ? options->threads : 1;
  if (port < 0 || port > 65535) return err_new(INFERD_ERROR_INVALID_ARG, "invalid HTTP port %d", port);
  http_frontend *f = mem_zalloc(sizeof(*f));
  f->server = server;
  f->fd = -1;
  f->shutdown_grace_ms = SHUTDOWN_GRACE_MS;
  f->max_input_size = options && options->max_input_size ? options->max_input_size : DEFAULT_MAX_INPUT;
  if (f->max_input_size > (size_t)INT64_MAX / 2) f->max_input_size = (size_t)INT64_MAX / 2;
  f->limits = (http_guard_limits){
      .body = f->max_input_size,
      .header_bytes = options && options->max_header_bytes ? options->max_header_bytes : DEFAULT_MAX_HEADER_BYTES,
      .headers = options && options->max_headers > 0 ? options->max_headers : DEFAULT_MAX_HEADERS};
  f->restricted = options ? options->restricted : NULL;
  const int idle = options ? options->idle_timeout_secs : 0, read = options ? options->read_timeout_secs : 0;
  f->idle_timeout_secs = idle > 0 ? idle : idle == 0 ? DEFAULT_IDLE_TIMEOUT_SECS : 0;
  f->read_timeout_secs = read > 0 ? read : read == 0 ? DEFAULT_READ_TIMEOUT_SECS : 0;
  f->max_connections = options && options->max_connections > 0 ? options->max_connections : DEFAULT_MAX_CONNECTIONS;
  refusal_init(f);
  inferd_error *err = options ? http_tls_context(&options->tls, &f->tls) : NULL;
  evutil_socket_t fd = -1;
  if (!err) err = frontend_listen("HTTP", address, port, &fd, &f->port);
  atomic_store(&f->fd, fd);
  if (err) {
    frontend_free(f);
    return err;
  }
  f->threads = mem_zalloc((size_t)threads * sizeof(*f->threads));
  f->thread_count = threads;
  for (int i = 0; i < threads && !err; i++) err = thread_init(f, &f->threads[i]);
  for (int i = 0; i < threads && !err; i++) {
    if (pthread_create(&f->threads[i].tid, NULL, thread_main, &f->threads[i]) != 0) {
      err = err_new(INFERD_ERROR_INTERNAL, "cannot start HTTP thread %d", i);
      break;
    }
    f->threads[i].started = true;
  }
  if (err) {
    for (int i = 0; i < threads; i++) {
      if (!f->threads[i].started) continue;
      thread_signal(&f->threads[i], true);
      pthread_join(f->threads[i].tid, NULL);
    }
    frontend_free(f);
    return err;
  }
  log_info("Started HTTPService at %s:%d%s", address, f->port,
           !f->tls ? "" : options->tls.use_ssl_mutual ? " (TLS, client certificates required)" : " (TLS)");
  *out = f;
  return NULL;
}

int http_frontend_port(const http_frontend *f) { return f->port; }

void http_frontend_stop_listening(http_frontend *f) {
  for (int i = 0; i < f->thread_count; i++) thread_signal(&f->threads[i], false);
}

void http_frontend_set_shutdown_grace(http_frontend *f, int ms) {
  /* The loops read it after delete's signal, which the mailbox's lock orders after this store. */
  f->shutdown_grace_ms = ms > 0 ? ms : 1;
}

void http_frontend_delete(http_frontend *f) {
  if (!f) return;
  for (int i = 0; i < f->thread_count; i++) thread_signal(&f->threads[i], true);
  for (int i = 0; i < f->thread_count; i++)
    if (f->threads[i].started) pthread_join(f->threads[i].tid, NULL);
  frontend_free(f);
}
