/*
 * The body-size guard: refuses a request whose Content-Length is over the
 * limit before a byte of its body is buffered, with the frontend's own JSON
 * 413 rather than evhttp's HTML page, and keeps the connection usable.
 *
 * evhttp (libevent 2.1) offers no hook between a request's headers and its
 * body, so the guard watches each connection's input buffer instead: it
 * follows the request framing (header block, then Content-Length bytes of
 * body), and when a header block announces too large a body it rewrites that
 * block in place to a body-less request that carries the announced length in
 * HTTP_GUARD_HEADER, then drops the body's bytes as they arrive. evhttp sees
 * an ordinary request, the handler answers it 413, and the next request on
 * the connection is served as usual. A chunked body has no length up front;
 * evhttp's own limit stops it as it crosses the limit.
 *
 * The guard's state lives in a per-thread table indexed by socket, so a
 * connection costs no allocation of its own and nothing is left behind
 * when evhttp frees it.
 */
#ifndef INFERD_FRONTENDS_HTTP_GUARD_H
#define INFERD_FRONTENDS_HTTP_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct event_base;

/* Header the rewritten request carries: the refused Content-Length. */
#define HTTP_GUARD_HEADER "Inferd-Refused-Content-Length"

typedef struct http_guard_conn http_guard_conn;

typedef struct http_guard {
  uint64_t limit; /* bytes a body may have */
  http_guard_conn *conns;
  size_t conn_cap;
} http_guard;

/* evhttp's bufferevent callback (evhttp_set_bevcb, arg = the thread's
 * guard): a socket bufferevent whose input the guard watches. */
struct bufferevent *http_guard_bufferevent(struct event_base *base, void *guard);
/* Frees the table (the thread's connections must be gone). */
void http_guard_free(http_guard *g);

/* ---- framing, exposed for the unit tests -------------------------------- */

typedef enum http_guard_verdict {
  HTTP_GUARD_PASS,    /* body of *length bytes (maybe 0) passes */
  HTTP_GUARD_STRIP,   /* passes too, once the client's HTTP_GUARD_HEADER is dropped */
  HTTP_GUARD_REFUSE,  /* body of *length bytes is over the limit */
  HTTP_GUARD_UNKNOWN, /* chunked or unparsable: leave the connection to evhttp */
} http_guard_verdict;

/* Examines one complete header block (request line, headers, blank line). */
http_guard_verdict http_guard_examine(const char *block, size_t len, uint64_t limit, uint64_t *length);
/* The block without any HTTP_GUARD_HEADER the client sent; when `refuse`,
 * also without Content-Length and Expect, announcing no body and carrying
 * `length` in HTTP_GUARD_HEADER. Malloc'd; NULL when out of memory. */
char *http_guard_rewrite(const char *block, size_t len, bool refuse, uint64_t length, size_t *out_len);

#endif
