/*
 * The framing guard: judges each request's header block before evhttp
 * reads it, so that what evhttp would accept wrongly or answer badly gets
 * the frontend's own JSON error instead.
 *
 * - A body over the limit is refused from its Content-Length before a byte
 *   of it is buffered (413); the body is dropped as it arrives and the
 *   connection goes on serving.
 * - Ambiguous framing is refused (400) and the connection closed: two
 *   different Content-Length headers, Content-Length together with
 *   Transfer-Encoding, a Content-Length that is not a number, a repeated
 *   Transfer-Encoding; one other than chunked is 501. evhttp takes the first
 *   of two lengths and would read the rest as another request (request
 *   smuggling). A length of 20 digits or more is 413 and closes.
 * - A header block over `header_bytes` (request line included) or with
 *   more than `headers` lines is refused (431) as soon as it crosses the
 *   limit, and the connection closed; evhttp had no count limit.
 *
 * evhttp (libevent 2.1) offers no hook between a request's headers and its
 * body, so the guard watches each connection's input buffer instead: it
 * follows the request framing (header block, then a Content-Length or
 * chunked body, then the next block). It holds a block's Content-Length
 * back and hands it to evhttp with the blank line that ends the block, so
 * evhttp never waits for a body the guard has not judged. A refusal
 * rewrites the buffer so that evhttp sees an ordinary request carrying
 * HTTP_GUARD_HEADER, which the request callback answers: for a body over
 * the limit, the block ends with the header and no length (the body's
 * bytes are dropped as they come); otherwise the offending line and all
 * after it become the header and the end of the block (and of an empty
 * chunked body when the client's Transfer-Encoding already went on), and
 * everything the client sends afterwards is dropped.
 *
 * The guard's state lives in a per-thread table indexed by socket, so a
 * connection costs no allocation of its own and nothing is left behind
 * when evhttp frees it.
 *
 * The read timeout. As the guard follows the framing it knows when a
 * request has begun to arrive and when its last byte came; a request must
 * arrive whole within `read_timeout_ns` of its first byte (evhttp's own
 * timeout only bounds the silence between two reads, which a client
 * sending a byte a second never reaches). The loop calls
 * http_guard_sweep now and then; a connection past its deadline is shut
 * down (both ways), so that evhttp reads the end of the stream and frees it
 * as it would for a client that left. evhttp tells the guard nothing when
 * it frees a connection, so a slot may outlive its socket: the sweep
 * touches a socket only when it is still the same one (its inode).
 */
#ifndef INFERD_FRONTENDS_HTTP_GUARD_H
#define INFERD_FRONTENDS_HTTP_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct event_base;

/* Header a refused request carries: "<status> <keep|close> <message>". A
 * client's own is dropped. */
#define HTTP_GUARD_HEADER "Inferd-Refused"

typedef struct http_guard_conn http_guard_conn;

typedef struct http_guard_limits {
  uint64_t body;       /* bytes a body may have */
  size_t header_bytes; /* bytes a header block may have, request line and ends of line included */
  int headers;         /* header lines a block may have */
} http_guard_limits;

typedef struct http_guard {
  http_guard_limits limits;
  uint64_t read_timeout_ns; /* 0: none */
  http_guard_conn *conns;
  size_t conn_cap;
} http_guard;

/* evhttp's bufferevent callback (evhttp_set_bevcb, arg = the thread's
 * guard): a socket bufferevent whose input the guard watches. */
struct bufferevent *http_guard_bufferevent(struct event_base *base, void *guard);
/* Shuts down the connections whose request has not arrived whole by its
 * deadline; returns how many. */
int http_guard_sweep(http_guard *g, uint64_t now_ns);

/* The same watch on a bufferevent made elsewhere (a TLS one: the guard
 * reads the decrypted input), on the guard's loop; false when it cannot. */
bool http_guard_watch(http_guard *guard, struct bufferevent *bev);
/* Frees the table (the thread's connections must be gone). */
void http_guard_free(http_guard *g);

/* ---- framing, exposed for the unit tests -------------------------------- */

/* What the guard knows of the header block being read. evhttp consumes a
 * block line by line as lines complete, so the guard judges each complete
 * line before evhttp sees it, and edits only that line and what follows. */
typedef struct http_guard_head {
  int lines;        /* lines of the block seen, request line included */
  size_t bytes;     /* bytes of the block seen */
  bool trailer;     /* a chunked body's trailer: no request line, no framing */
  bool has_body;    /* the method is one evhttp reads a body for */
  bool have_length; /* a Content-Length was seen */
  bool refused;     /* it was over the limit: the block ends with the guard's 413 */
  bool chunked;     /* Transfer-Encoding: chunked was seen */
  uint64_t length;
} http_guard_head;

typedef enum http_guard_action {
  HTTP_GUARD_KEEP,    /* the line stays */
  HTTP_GUARD_DROP,    /* the line (and its end of line) goes */
  HTTP_GUARD_REPLACE, /* the line (and its end of line) becomes out[0..*out_len) */
  HTTP_GUARD_END,     /* the blank line ending the block, replaced by out[0..*out_len) when
                         *out_len > 0 (the length held back): judge *h */
  HTTP_GUARD_REFUSE,  /* the line and all input after it become out[0..*out_len), a complete
                         request evhttp reads; later input is dropped and the connection closes */
} http_guard_action;

enum { HTTP_GUARD_REPLACE_MAX = 320 };

/* Judges one line of a header block: line[0..len) is the line without its
 * end of line (its first len bytes when it is longer), wire_len its whole
 * length with the end of line. `out` has room for HTTP_GUARD_REPLACE_MAX. */
http_guard_action http_guard_line(http_guard_head *h, const char *line, size_t len, size_t wire_len,
                                  const http_guard_limits *limits, char *out, size_t *out_len);
/* A block whose next line is not complete but already `pending` bytes
 * long: HTTP_GUARD_REFUSE when the block would be over the limit, else
 * HTTP_GUARD_KEEP (wait for more). */
http_guard_action http_guard_partial(http_guard_head *h, size_t pending, const http_guard_limits *limits, char *out,
                                     size_t *out_len);
/* Reads an HTTP_GUARD_HEADER value; false when it is not one. */
bool http_guard_refusal(const char *value, int *status, bool *close, const char **message);

#endif
