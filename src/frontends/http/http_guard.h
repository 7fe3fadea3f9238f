/*
 * The body-size guard: refuses a request whose Content-Length is over the
 * limit before a byte of its body is buffered, with the frontend's own JSON
 * 413 rather than evhttp's HTML page, and keeps the connection usable.
 *
 * evhttp (libevent 2.1) offers no hook between a request's headers and its
 * body, so the guard watches each connection's input buffer instead: it
 * follows the request framing (header block, then Content-Length bytes of
 * body), and when a header block announces too large a body it rewrites the
 * Content-Length line in place so the request has no body and carries the
 * announced length in HTTP_GUARD_HEADER, then drops the body's bytes as they
 * arrive. evhttp sees
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

/* What the guard knows of the header block being read. evhttp consumes a
 * block line by line as lines complete, so the guard judges each complete
 * line before evhttp sees it, and edits only that line. */
typedef struct http_guard_head {
  int lines;        /* lines of the block seen */
  bool has_body;    /* the method is one evhttp reads a body for */
  bool have_length; /* a Content-Length was seen */
  bool refused;     /* it was over the limit, and rewritten */
  bool chunked;     /* a Transfer-Encoding was seen */
  bool unknown;     /* framing the guard cannot follow: leave it to evhttp */
  uint64_t length;
} http_guard_head;

typedef enum http_guard_action {
  HTTP_GUARD_KEEP,    /* the line stays */
  HTTP_GUARD_DROP,    /* the line (and its end of line) goes */
  HTTP_GUARD_REPLACE, /* the line (and its end of line) becomes out[0..*out_len) */
  HTTP_GUARD_END,     /* the blank line ending the block: judge *h */
} http_guard_action;

enum { HTTP_GUARD_REPLACE_MAX = 96 };

/* Judges one line of a header block (without its end of line). A
 * Content-Length over `limit` becomes "Content-Length: 0" plus
 * HTTP_GUARD_HEADER with the refused length; a client's own
 * HTTP_GUARD_HEADER is dropped. `out` has room for HTTP_GUARD_REPLACE_MAX. */
http_guard_action http_guard_line(http_guard_head *h, const char *line, size_t len, uint64_t limit, char *out,
                                  size_t *out_len);

#endif
