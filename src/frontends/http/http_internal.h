/*
 * What the HTTP frontend's network part (http_server.c: threads, listening,
 * cross-thread wakeups, exchanges) and its endpoint part (http_handlers.c)
 * share. An exchange is one request and its response. It lives on the
 * network thread that read the request; server threads touch it only
 * through the wakeup queue, and the loop alone sends and frees.
 */
#ifndef INFERD_FRONTENDS_HTTP_INTERNAL_H
#define INFERD_FRONTENDS_HTTP_INTERNAL_H

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "frontends/frontend_loop.h"
#include "frontends/frontend_restricted.h"
#include "frontends/http/http_compress.h"
#include "frontends/http/http_infer_request.h"
#include "frontends/http/http_route.h"
#include "inferd.h"

typedef struct http_thread http_thread;
typedef struct http_exchange http_exchange;
typedef struct http_conn http_conn;

typedef enum http_exchange_state {
  HTTP_EXCHANGE_HANDLING, /* in the request callback */
  HTTP_EXCHANGE_AWAITING, /* the server or a worker thread holds it */
  HTTP_EXCHANGE_WRITING,  /* the response is queued on the connection */
} http_exchange_state;

/* Runs on the loop when an exchange handed away comes back. */
typedef void (*http_exchange_complete_fn)(http_exchange *ex);

struct http_exchange {
  frontend_post post; /* first: handed back to the loop */
  http_thread *thread;
  inferd_server *server;
  size_t max_input_size;
  const frontend_restrictions *restricted; /* NULL: every API open */
  struct evhttp_request *req; /* NULL once the client is gone */
  http_conn *conn;            /* the connection it came on; NULL once gone */
  http_exchange_state state;
  http_route route;
  http_encoding response_encoding;
  /* Request headers the handlers read, found in one pass (NULL: absent). */
  struct {
    const char *refused; /* the guard's HTTP_GUARD_HEADER */
    const char *content_encoding, *accept_encoding, *header_length;
  } headers;
  /* Handed away: */
  http_exchange_complete_fn complete;
  atomic_int callbacks_left;
  /* Inference: */
  struct evbuffer *body; /* the request body, owned */
  void *inflated;        /* the inflated body when it was compressed */
  http_infer_request decoded;
  inferd_request *request;
  inferd_response *response;
  /* The request's cancel flag (inferd_request_set_cancel_flag), set when its
   * client goes while the server holds it; `cancellable` once submitted. */
  atomic_bool cancelled;
  bool cancellable;
  /* Worker jobs (load, unload): */
  char *config_json;
  inferd_error *job_error;
};

/* Hands an exchange back to its loop from any thread; `complete` runs there. */
void http_exchange_post(http_exchange *ex);

/* Sends a response and ends the exchange's handling (the exchange is freed
 * once the bytes are written or the client is gone). Each takes ownership
 * of what it is given. */
void http_exchange_send(http_exchange *ex, int status, struct evbuffer *body, const char *content_type,
                        size_t header_length, bool compress);
void http_exchange_send_json(http_exchange *ex, int status, char *json, size_t len);
void http_exchange_send_empty(http_exchange *ex, int status);
void http_exchange_send_error(http_exchange *ex, inferd_error *error);
/* Frees an exchange whose client is gone (nothing to send). */
void http_exchange_drop(http_exchange *ex);
/* An inference the server now holds (its cancel flag set to ex->cancelled):
 * until its answer is sent, the connection is watched, and a client that
 * closes it has the request cancelled and the connection freed at once
 * (see http_server.c). */
void http_exchange_watch_departure(http_exchange *ex);

/* The endpoint part: handles a routed request (http_handlers.c). */
void http_handle_request(http_exchange *ex, enum evhttp_cmd_type method);
/* Frees what the handlers attached to an exchange. */
void http_exchange_release_payload(http_exchange *ex);

#endif
