#include "frontends/metrics/metrics_frontend.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/error.h"
#include "base/log.h"
#include "base/mem.h"

struct metrics_frontend {
  inferd_metrics *metrics;
  struct event_base *base;
  struct evhttp *http;
  SSL_CTX *tls; /* NULL: plain HTTP */
  int port;
  pthread_t thread;
  bool started;
};

static void free_text(const void *data, size_t len, void *arg) {
  (void)len;
  (void)arg;
  free((void *)data);
}

static void on_request(struct evhttp_request *req, void *arg) {
  metrics_frontend *f = arg;
  const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
  enum evhttp_cmd_type method = evhttp_request_get_command(req);
  struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
  if (!path || strcmp(path, "/metrics") != 0) {
    evhttp_send_error(req, 404, "only /metrics is served here");
    return;
  }
  if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
    evhttp_add_header(headers, "Allow", "GET, HEAD");
    evhttp_send_error(req, 405, "GET /metrics");
    return;
  }
  char *text = NULL;
  size_t len = 0;
  inferd_error *e = inferd_metrics_render(f->metrics, &text, &len);
  struct evbuffer *body = evbuffer_new();
  if (e || !body || evbuffer_add_reference(body, text, len, free_text, NULL) != 0) {
    log_warn("metrics: cannot render: %s", e ? inferd_error_message(e) : "out of memory");
    inferd_error_delete(e);
    if (body) evbuffer_free(body);
    free(text);
    evhttp_send_error(req, 500, "cannot render the metrics");
    return;
  }
  evhttp_add_header(headers, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  evhttp_send_reply(req, 200, "OK", body);
  evbuffer_free(body);
}

static void *thread_main(void *arg) {
  metrics_frontend *f = arg;
  event_base_loop(f->base, EVLOOP_NO_EXIT_ON_EMPTY);
  return NULL;
}

/* libevent's locking, so that another thread may stop the loop. */
static pthread_once_t process_once = PTHREAD_ONCE_INIT;
static void process_setup(void) { evthread_use_pthreads(); }

static void frontend_free(metrics_frontend *f) {
  if (f->http) evhttp_free(f->http);
  if (f->base) event_base_free(f->base);
  if (f->tls) SSL_CTX_free(f->tls);
  free(f);
}

inferd_error *metrics_frontend_start(inferd_metrics *metrics, const metrics_frontend_options *options,
                                     metrics_frontend **out) {
  *out = NULL;
  pthread_once(&process_once, process_setup);
  const char *address = options && options->address ? options->address : "0.0.0.0";
  const int port = options ? options->port : 8002;
  if (port < 0 || port > 65535) return err_new(INFERD_ERROR_INVALID_ARG, "invalid metrics port %d", port);
  SSL_CTX *tls = NULL;
  if (options) {
    frontend_tls_options o = options->tls;
    o.use_ssl_mutual = false;
    ERR_TRY(frontend_tls_context("metrics", &o, &tls));
  }
  metrics_frontend *f = mem_zalloc(sizeof(*f));
  f->metrics = metrics;
  f->tls = tls;
  f->base = event_base_new();
  f->http = f->base ? evhttp_new(f->base) : NULL;
  if (!f->http) {
    frontend_free(f);
    return err_new(INFERD_ERROR_INTERNAL, "cannot create the metrics HTTP server");
  }
  evhttp_set_gencb(f->http, on_request, f);
  if (f->tls) evhttp_set_bevcb(f->http, frontend_tls_evhttp_bufferevent, f->tls);
  evhttp_set_allowed_methods(f->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                          EVHTTP_REQ_DELETE);
  evhttp_set_max_body_size(f->http, 1 << 16);
  struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(f->http, address, (ev_uint16_t)port);
  if (!bound) {
    frontend_free(f);
    return err_new(INFERD_ERROR_IO, "cannot listen for metrics on %s:%d (in use, or not an address of this host?)",
                   address, port);
  }
  f->port = port;
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET) f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) f->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  if (pthread_create(&f->thread, NULL, thread_main, f) != 0) {
    frontend_free(f);
    return err_new(INFERD_ERROR_INTERNAL, "cannot start the metrics thread");
  }
  f->started = true;
  log_info("Started Metrics Service at %s:%d%s", address, f->port, f->tls ? " (TLS)" : "");
  *out = f;
  return NULL;
}

int metrics_frontend_port(const metrics_frontend *f) { return f->port; }

void metrics_frontend_delete(metrics_frontend *f) {
  if (!f) return;
  if (f->started) {
    event_base_loopexit(f->base, NULL);
    pthread_join(f->thread, NULL);
  }
  frontend_free(f);
}
