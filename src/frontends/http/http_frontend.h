/*
 * The HTTP/REST frontend: KServe v2 and Triton's HTTP extensions (binary
 * tensor data, classification, statistics, repository) over HTTP/1.1 with
 * keep-alive, served by libevent's evhttp on `threads` network threads that
 * share one listening socket. It reaches the server only through the public
 * API in inferd.h.
 *
 * Shutdown, gracefully: http_frontend_stop_listening (no new connections),
 * then the server's stop_accepting and drain, then http_frontend_delete,
 * which waits for every response still owed to be written before it joins
 * the threads.
 */
#ifndef INFERD_FRONTENDS_HTTP_FRONTEND_H
#define INFERD_FRONTENDS_HTTP_FRONTEND_H

#include <stddef.h>

#include "frontends/frontend_restricted.h"
#include "frontends/frontend_tls.h"
#include "inferd.h"

typedef struct http_frontend http_frontend;

typedef struct http_frontend_options {
  const char *address;     /* NULL: "0.0.0.0" */
  int port;                /* 0: any free port (see http_frontend_port) */
  int threads;             /* network threads; <= 0: 1 */
  size_t max_input_size;   /* bytes a request body may have, after inflating too; 0: 64 MiB */
  size_t max_header_bytes; /* bytes a header block may have, request line included; 0: 64 KiB */
  int max_headers;         /* header lines a request may have; <= 0: 100 */
  /* A connection silent this long is closed: between requests (keep-alive)
   * or while one arrives (evhttp's timeout, also the write timeout of a
   * reader that stalls); 0: 60 s, < 0: never. */
  int idle_timeout_secs;
  /* A request must arrive whole, headers and body, within this long of its
   * first byte, or the connection is closed (slow clients holding a
   * connection with a trickle); 0: 30 s, < 0: never. */
  int read_timeout_secs;
  /* HTTP connections open at once over the network threads (counted apart
   * from gRPC's); past it a new connection is answered 503 (plain HTTP) and
   * closed as soon as it is accepted. 0: 10000. */
  int max_connections;
  /* Categories that need a header (--http-restricted-api); NULL: all open.
   * Borrowed: it must outlive the frontend. */
  const frontend_restrictions *restricted;
  frontend_tls_options tls; /* HTTPS, with client certificates optionally */
} http_frontend_options;

/* Binds address:port (an error naming both when it cannot) and starts the
 * network threads. The server must outlive the frontend. */
inferd_error *http_frontend_start(inferd_server *server, const http_frontend_options *options, http_frontend **out);
/* The port bound, useful when options->port was 0. */
int http_frontend_port(const http_frontend *f);
/* Graceful drain, step 1: stop accepting new connections. Open connections
 * keep being served. */
void http_frontend_stop_listening(http_frontend *f);
/* Sets how long delete waits for responses still being written (a client
 * that reads slowly) before it closes their connections to `ms` (<= 0: 1 ms;
 * 10 s unless set), for a caller that counts it from a deadline of its own
 * (inferd serve: what is left of the exit timeout). Called before delete. */
void http_frontend_set_shutdown_grace(http_frontend *f, int ms);
/* Waits for the responses in flight to be sent (those still with the server
 * included), closes every connection, joins the threads and frees f. */
void http_frontend_delete(http_frontend *f);

#endif
