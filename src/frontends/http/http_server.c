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
 * Disconnects. evhttp stops reading a connection while a request on it is
 * being answered, so a client that leaves is noticed when its connection is
 * freed: the connection's close callback, set for the exchange's lifetime,
 * clears the exchange's request pointer (evhttp frees the request), and the
 * response, when it comes, is dropped and freed. A write that fails ends the
 * same way.
 *
 * Shutdown. stop_listening removes each thread's listener on its loop, and
 * the last thread to do so closes the listening socket: a socket still open
 * but no longer accepted from would let the kernel complete new connections
 * into its backlog, unanswered through the whole drain and reset at exit,
 * where a closed one refuses them at once; from then on every answer says
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
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
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

enum {
  DEFAULT_MAX_INPUT = 64 << 20,
  DEFAULT_MAX_HEADER_BYTES = 64 << 10,
  DEFAULT_MAX_HEADERS = 100,
  DEFAULT_IDLE_TIMEOUT_SECS = 60,
  DEFAULT_READ_TIMEOUT_SECS = 30,
  SHUTDOWN_GRACE_MS = 10000
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
  /* Loop only: */
  size_t live;   /* exchanges not yet freed */
  bool draining; /* the listener is gone: answers close their connections */
  bool stopping;
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
  atomic_int connections; /* the acceptors' count (no limit on HTTP: evhttp shows no closes) */
};

/* ---- exchanges ---------------------------------------------------------- */

static void thread_check_exit(http_thread *t);

static void exchange_free(http_exchange *ex) {
  http_thread *t = ex->thread;
  http_exchange_release_payload(ex);
  http_route_free(&ex->route);
  free(ex);
  t->live--;
  thread_check_exit(t);
}

static void on_connection_close(struct evhttp_connection *conn, void *arg) {
  (void)conn;
  http_exchange *ex = arg;
  /* evhttp frees the request with the connection. */
  ex->req = NULL;
  if (ex->state == HTTP_EXCHANGE_WRITING) exchange_free(ex);
}

static void on_request_complete(struct evhttp_request *req, void *arg) {
  http_exchange *ex = arg;
  struct evhttp_connection *conn = evhttp_request_get_connection(req);
  if (conn) evhttp_connection_set_closecb(conn, NULL, NULL);
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
  struct evhttp_connection *conn = evhttp_request_get_connection(req);
  if (conn) evhttp_connection_set_closecb(conn, on_connection_close, ex);
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

static void stop_listening_now(http_thread *t) {
  t->draining = true;
  if (t->bound) {
    frontend_acceptor_destroy(&t->acceptor);
    evhttp_del_accept_socket(t->http, t->bound);
    t->bound = NULL;
    if (atomic_fetch_sub(&t->frontend->listening, 1) == 1) close_listening_socket(t->frontend);
  }
}

static void close_connections(http_thread *t) {
  if (t->http) {
    stop_listening_now(t);
    /* Frees every connection; close callbacks end their exchanges. */
    struct evhttp *http = t->http;
    t->http = NULL;
    evhttp_free(http);
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
  if (stop_listening) stop_listening_now(t);
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

/* HTTPS: the guard watches the decrypted input. */
static struct bufferevent *tls_bufferevent(struct event_base *base, void *arg) {
  http_thread *t = arg;
  struct bufferevent *bev = frontend_tls_evhttp_bufferevent(base, t->frontend->tls);
  if (bev && !http_guard_watch(&t->guard, bev)) log_warn("http: a TLS connection goes unguarded (out of memory)");
  return bev;
}

static inferd_error *thread_init(http_frontend *f, http_thread *t) {
  t->frontend = f;
  t->base = frontend_loop_base();
  if (!t->base) return err_new(INFERD_ERROR_INTERNAL, "cannot create an event base");
  t->http = evhttp_new(t->base);
  t->wake = event_new(t->base, -1, 0, on_wake, t);
  if (t->wake) frontend_mailbox_init(&t->mailbox, t->wake);
  t->grace = evtimer_new(t->base, on_grace_timeout, t);
  t->finish = event_new(t->base, -1, 0, on_finish, t);
  if (!t->http || !t->wake || !t->grace || !t->finish)
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
  if (f->tls)
    evhttp_set_bevcb(t->http, tls_bufferevent, t);
  else
    evhttp_set_bevcb(t->http, http_guard_bufferevent, &t->guard);
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
  if (!frontend_acceptor_init(&t->acceptor, "http", t->base, listener, &f->connections, 0))
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
