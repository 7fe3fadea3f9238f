/*
 * The framing guard (see http_guard.h).
 *
 * Each connection's input buffer has one callback. The first time bytes
 * arrive it finds the connection's socket, resets that socket's slot in the
 * thread's table and re-registers itself with the socket as its argument.
 * From then on every change to the buffer runs the framing below before
 * evhttp reads the bytes: evhttp only ever removes bytes from the front, so
 * `scanned`, the number of leading bytes already classified, moves back by
 * what it removed and forward by what the guard classifies. evhttp reads a
 * header block line by line as each line completes, possibly before the
 * block is whole; the guard judges every complete line before evhttp reads
 * it (its callback runs as the bytes are added), so the lines it edits are
 * always still in the buffer. A refusal replaces the rest of the buffer, so
 * evhttp reads the refused request's end at once and nothing after it.
 */
#include "frontends/http/http_guard.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "base/clock.h"

/* Lines are judged from their first MAX_LINE bytes (a name, or a value
 * that is already too long); longer lines count whole toward the limit. */
enum { MAX_LINE = 8192, MAX_MESSAGE = 200 };

typedef enum conn_state {
  GUARD_HEADERS,    /* next bytes are a header block (or a chunked body's trailer) */
  GUARD_BODY,       /* `remaining` body bytes pass */
  GUARD_DISCARD,    /* `remaining` body bytes are dropped */
  GUARD_CHUNK_SIZE, /* next is a chunk-size line */
  GUARD_CHUNK_DATA, /* `remaining` bytes of a chunk pass */
  GUARD_CLOSING,    /* a refused request was handed on: all later bytes are dropped */
  GUARD_OFF,        /* framing unknown (evhttp refuses it and closes): evhttp alone */
} conn_state;

struct http_guard_conn {
  http_guard_head head; /* GUARD_HEADERS: the block so far */
  uint64_t remaining;
  size_t scanned;
  conn_state state;
  bool busy;           /* the guard is editing the buffer */
  uint64_t deadline_ns; /* a request is arriving: it must be whole by then (0: none) */
  ino_t socket_ino;     /* the socket's inode, to know it is still the same one */
};

/* The guard of the thread whose loop is running (set by the bufferevent
 * callback, which runs on that loop before any input callback). */
static _Thread_local http_guard *tls_guard;

/* ---- framing ------------------------------------------------------------ */

static bool name_is(const char *line, size_t name_len, const char *name) {
  return name_len == strlen(name) && !strncasecmp(line, name, name_len);
}

/* evhttp reads a body for every method it serves but HEAD. */
static bool method_has_body(const char *line, size_t len) { return !(len >= 5 && !memcmp(line, "HEAD ", 5)); }

/* Ends the block with the guard's header for `status` and `fmt`: a request
 * line first when the block has none yet, and the end of an empty chunked
 * body when the client's Transfer-Encoding already went to evhttp. No
 * Content-Length has (the guard holds it until the block ends), so evhttp
 * reads no other body. */
static http_guard_action refuse(const http_guard_head *h, int status, char *out, size_t *out_len, const char *fmt,
                                ...) __attribute__((format(printf, 5, 6)));
static http_guard_action refuse(const http_guard_head *h, int status, char *out, size_t *out_len, const char *fmt,
                                ...) {
  char message[MAX_MESSAGE];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof(message), fmt, ap);
  va_end(ap);
  const bool request_line = h->lines == 0 && !h->trailer;
  *out_len = (size_t)snprintf(out, HTTP_GUARD_REPLACE_MAX, "%s" HTTP_GUARD_HEADER ": %d close %s\r\n\r\n%s",
                              request_line ? "GET / HTTP/1.1\r\n" : "", status, message,
                              h->chunked && !h->trailer ? "0\r\n\r\n" : "");
  return HTTP_GUARD_REFUSE;
}

static http_guard_action refuse_block_size(const http_guard_head *h, const http_guard_limits *limits, char *out,
                                           size_t *out_len) {
  return refuse(h, 431, out, out_len, "the request line and headers are over %zu bytes (--http-max-header-bytes)",
                limits->header_bytes);
}

http_guard_action http_guard_partial(http_guard_head *h, size_t pending, const http_guard_limits *limits, char *out,
                                     size_t *out_len) {
  if (pending > limits->header_bytes || h->bytes > limits->header_bytes - pending)
    return refuse_block_size(h, limits, out, out_len);
  return HTTP_GUARD_KEEP;
}

/* The value of a header line, without the blanks around it. */
static void header_value(const char *colon, const char *end, const char **v, size_t *n) {
  const char *p = colon + 1;
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  while (end > p && (end[-1] == ' ' || end[-1] == '\t')) end--;
  *v = p;
  *n = (size_t)(end - p);
}

static http_guard_action content_length(http_guard_head *h, const char *v, size_t vn, const http_guard_limits *limits,
                                        char *out, size_t *out_len) {
  if (h->chunked)
    return refuse(h, 400, out, out_len, "Content-Length together with Transfer-Encoding is ambiguous");
  bool digits = vn > 0;
  for (size_t i = 0; i < vn; i++) digits &= v[i] >= '0' && v[i] <= '9';
  if (!digits)
    return refuse(h, 400, out, out_len, "Content-Length '%.*s' is not a number", (int)(vn < 32 ? vn : 32), v);
  if (vn > 19)
    return refuse(h, 413, out, out_len,
                  "Content-Length of %zu digits is over the limit of %llu bytes (--http-max-input-size)", vn,
                  (unsigned long long)limits->body);
  uint64_t n = 0;
  for (size_t i = 0; i < vn; i++) n = n * 10 + (uint64_t)(v[i] - '0');
  if (h->have_length && n != h->length)
    return refuse(h, 400, out, out_len, "two different Content-Length headers (%llu and %llu)",
                  (unsigned long long)h->length, (unsigned long long)n);
  h->have_length = true;
  h->length = n;
  h->refused = h->has_body && n > limits->body;
  return HTTP_GUARD_DROP; /* held until the block ends */
}

/* The line that ends the block: the Content-Length held, or for a body over
 * the limit no length (no body) and the guard's 413 that keeps the
 * connection. */
static http_guard_action block_ends(const http_guard_head *h, const http_guard_limits *limits, char *out,
                                    size_t *out_len) {
  *out_len = 0;
  if (h->refused)
    *out_len = (size_t)snprintf(out, HTTP_GUARD_REPLACE_MAX,
                                HTTP_GUARD_HEADER ": 413 keep request body of %llu bytes is over the limit of %llu "
                                "bytes (--http-max-input-size)\r\n\r\n",
                                (unsigned long long)h->length, (unsigned long long)limits->body);
  else if (h->have_length)
    *out_len = (size_t)snprintf(out, HTTP_GUARD_REPLACE_MAX, "Content-Length: %llu\r\n\r\n",
                                (unsigned long long)h->length);
  return HTTP_GUARD_END;
}

http_guard_action http_guard_line(http_guard_head *h, const char *line, size_t len, size_t wire_len,
                                  const http_guard_limits *limits, char *out, size_t *out_len) {
  if (len > 0 && line[len - 1] == '\r') len--; /* a bare LF ends a line for evhttp too */
  if (h->lines == 0 && !h->trailer && len == 0) return HTTP_GUARD_KEEP; /* evhttp refuses the connection */
  if (wire_len > limits->header_bytes || h->bytes > limits->header_bytes - wire_len)
    return refuse_block_size(h, limits, out, out_len);
  if (h->lines == 0 && !h->trailer) {
    h->bytes = wire_len;
    h->lines = 1;
    h->has_body = method_has_body(line, len);
    return HTTP_GUARD_KEEP;
  }
  if (len == 0) return block_ends(h, limits, out, out_len);
  if (h->lines - !h->trailer >= limits->headers)
    return refuse(h, 431, out, out_len, "the request has more than %d headers (--http-max-headers)", limits->headers);
  h->bytes += wire_len;
  h->lines++;
  const char *colon = memchr(line, ':', len);
  if (!colon) return HTTP_GUARD_KEEP; /* evhttp refuses the request */
  const size_t name_len = (size_t)(colon - line);
  if (name_is(line, name_len, HTTP_GUARD_HEADER)) return HTTP_GUARD_DROP;
  if (h->trailer) return HTTP_GUARD_KEEP; /* trailers do not frame anything */
  const char *v;
  size_t vn;
  header_value(colon, line + len, &v, &vn);
  if (name_is(line, name_len, "content-length")) return content_length(h, v, vn, limits, out, out_len);
  if (!name_is(line, name_len, "transfer-encoding")) return HTTP_GUARD_KEEP;
  if (h->have_length)
    return refuse(h, 400, out, out_len, "Content-Length together with Transfer-Encoding is ambiguous");
  if (h->chunked) return refuse(h, 400, out, out_len, "more than one Transfer-Encoding header");
  if (!(vn == 7 && !strncasecmp(v, "chunked", 7)))
    return refuse(h, 501, out, out_len, "Transfer-Encoding '%.*s' is not supported (only chunked)",
                  (int)(vn < 32 ? vn : 32), v);
  h->chunked = true;
  return HTTP_GUARD_KEEP;
}

bool http_guard_refusal(const char *value, int *status, bool *close, const char **message) {
  char *end;
  const long code = strtol(value, &end, 10);
  if (end == value || code < 400 || code > 599 || *end != ' ') return false;
  const char *word = end + 1;
  if (!strncmp(word, "keep ", 5))
    *close = false;
  else if (!strncmp(word, "close ", 6))
    *close = true;
  else
    return false;
  *status = (int)code;
  *message = word + (*close ? 6 : 5);
  return true;
}

/* A chunk-size line as evhttp reads it (hex digits, then nothing or a
 * space): false when evhttp would refuse it. Empty lines are skipped. */
static bool chunk_size(const char *line, size_t len, bool *empty, uint64_t *size) {
  if (len > 0 && line[len - 1] == '\r') len--;
  *empty = len == 0;
  *size = 0;
  size_t i = 0;
  for (; i < len && i < 16; i++) {
    const char c = line[i];
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) break;
    *size = *size * 16 + (uint64_t)d;
  }
  return *empty || (i > 0 && (i == len || line[i] == ' '));
}

/* ---- the input buffer --------------------------------------------------- */

/* Replaces `drop` bytes at `off` with `add`. False when out of memory. */
static bool splice(struct evbuffer *buf, size_t off, size_t drop, const char *add, size_t add_len) {
  struct evbuffer *head = NULL;
  if (off > 0) {
    head = evbuffer_new();
    if (!head || evbuffer_remove_buffer(buf, head, off) != (int)off) {
      if (head) {
        evbuffer_prepend_buffer(buf, head);
        evbuffer_free(head);
      }
      return false;
    }
  }
  evbuffer_drain(buf, drop);
  bool ok = add_len == 0 || evbuffer_prepend(buf, add, add_len) == 0;
  if (head) {
    evbuffer_prepend_buffer(buf, head);
    evbuffer_free(head);
  }
  return ok;
}

/* Hands a refused request on: `out` replaces every byte from c->scanned. */
static void hand_on_refusal(struct evbuffer *buf, http_guard_conn *c, const char *out, size_t out_len) {
  if (!splice(buf, c->scanned, evbuffer_get_length(buf) - c->scanned, out, out_len)) {
    c->state = GUARD_OFF; /* out of memory: evhttp's own limits still apply */
    return;
  }
  c->scanned += out_len;
  c->head = (http_guard_head){0};
  c->state = GUARD_CLOSING;
}

/* The state after a header block (or trailer) ends. */
static void block_end(http_guard_conn *c) {
  const http_guard_head h = c->head;
  c->head = (http_guard_head){0};
  c->state = GUARD_HEADERS;
  if (h.trailer) return;
  if (h.chunked) {
    c->state = GUARD_CHUNK_SIZE;
  } else if (h.refused) {
    c->state = GUARD_DISCARD;
    c->remaining = h.length;
  } else if (h.has_body && h.length > 0) {
    c->state = GUARD_BODY;
    c->remaining = h.length;
  }
}

/* Judges the complete line at c->scanned (`len` bytes with its end of
 * line): read in place when `in_place` points at it, else its first
 * MAX_LINE bytes copied out. */
static void take_line(struct evbuffer *buf, http_guard_conn *c, const char *in_place, size_t len, size_t eol_len,
                      const http_guard_limits *limits) {
  char copy[MAX_LINE];
  const char *line = in_place;
  size_t judged = len - eol_len;
  if (!line) {
    struct evbuffer_ptr at;
    if (judged > sizeof(copy)) judged = sizeof(copy);
    if (evbuffer_ptr_set(buf, &at, c->scanned, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(buf, &at, copy, judged) != (ev_ssize_t)judged) {
      c->state = GUARD_OFF;
      return;
    }
    line = copy;
  }
  if (c->state == GUARD_CHUNK_SIZE) {
    bool empty;
    uint64_t size;
    if (!chunk_size(line, judged, &empty, &size)) {
      c->state = GUARD_OFF; /* evhttp refuses the body and closes */
      return;
    }
    c->scanned += len;
    if (empty) return;
    if (size == 0) {
      c->head = (http_guard_head){.trailer = true};
      c->state = GUARD_HEADERS;
    } else {
      c->state = GUARD_CHUNK_DATA;
      c->remaining = size;
    }
    return;
  }
  char out[HTTP_GUARD_REPLACE_MAX];
  size_t out_len = 0;
  switch (http_guard_line(&c->head, line, judged, len, limits, out, &out_len)) {
  case HTTP_GUARD_KEEP:
    c->scanned += len;
    break;
  case HTTP_GUARD_DROP:
  case HTTP_GUARD_REPLACE:
    if (!splice(buf, c->scanned, len, out, out_len)) {
      c->state = GUARD_OFF; /* evhttp's own limit still refuses a large body */
      return;
    }
    c->scanned += out_len;
    break;
  case HTTP_GUARD_REFUSE:
    hand_on_refusal(buf, c, out, out_len);
    break;
  case HTTP_GUARD_END:
    if (out_len && !splice(buf, c->scanned, len, out, out_len)) {
      c->state = GUARD_OFF;
      return;
    }
    c->scanned += out_len ? out_len : len;
    block_end(c);
    break;
  }
}

/* Passes (or drops) up to `avail` bytes of a body. */
static bool take_body(struct evbuffer *buf, http_guard_conn *c, size_t avail) {
  const size_t k = c->remaining < avail ? (size_t)c->remaining : avail;
  if (c->state == GUARD_DISCARD && !splice(buf, c->scanned, k, NULL, 0)) return false;
  if (c->state != GUARD_DISCARD) c->scanned += k;
  c->remaining -= k;
  if (c->remaining == 0) c->state = c->state == GUARD_CHUNK_DATA ? GUARD_CHUNK_SIZE : GUARD_HEADERS;
  return true;
}

static void frame(struct evbuffer *buf, http_guard_conn *c, const http_guard_limits *limits) {
  for (;;) {
    const size_t len = evbuffer_get_length(buf);
    if (c->state == GUARD_OFF || c->scanned >= len) return;
    const size_t avail = len - c->scanned;
    if (c->state == GUARD_CLOSING) {
      if (!splice(buf, c->scanned, avail, NULL, 0)) c->state = GUARD_OFF;
      return;
    }
    if (c->state == GUARD_BODY || c->state == GUARD_DISCARD || c->state == GUARD_CHUNK_DATA) {
      if (!take_body(buf, c, avail)) {
        c->state = GUARD_OFF;
        return;
      }
      continue;
    }
    struct evbuffer_ptr start;
    size_t eol_len = 0;
    if (evbuffer_ptr_set(buf, &start, c->scanned, EVBUFFER_PTR_SET) != 0) return;
    /* The usual case: the line lies in the chunk at `start`, read in place. */
    struct evbuffer_iovec chunk;
    if (evbuffer_peek(buf, -1, &start, &chunk, 1) >= 1) {
      const char *p = chunk.iov_base, *nl = memchr(p, '\n', chunk.iov_len);
      if (nl) {
        const size_t n = (size_t)(nl - p) + 1;
        take_line(buf, c, p, n, n >= 2 && nl[-1] == '\r' ? 2 : 1, limits);
        continue;
      }
    }
    const struct evbuffer_ptr eol = evbuffer_search_eol(buf, &start, &eol_len, EVBUFFER_EOL_CRLF);
    if (eol.pos < 0) {
      /* A line not complete yet: a header block refuses it once it is over
       * the limit; a chunk-size line that long is not one. */
      char out[HTTP_GUARD_REPLACE_MAX];
      size_t out_len = 0;
      if (c->state == GUARD_CHUNK_SIZE) {
        if (avail > MAX_LINE) c->state = GUARD_OFF;
      } else if (http_guard_partial(&c->head, avail, limits, out, &out_len) == HTTP_GUARD_REFUSE) {
        hand_on_refusal(buf, c, out, out_len);
      }
      return;
    }
    take_line(buf, c, NULL, (size_t)eol.pos + eol_len - c->scanned, eol_len, limits);
  }
}

/* Frames what came and keeps the request's deadline: set when a request
 * starts arriving, cleared once its last byte is in. */
static void frame_timed(struct evbuffer *buf, http_guard_conn *c, const http_guard *g) {
  frame(buf, c, &g->limits);
  if (!g->read_timeout_ns) return;
  const bool arriving = c->state == GUARD_BODY || c->state == GUARD_DISCARD || c->state == GUARD_CHUNK_SIZE ||
                        c->state == GUARD_CHUNK_DATA ||
                        (c->state == GUARD_HEADERS &&
                         (c->head.lines > 0 || c->head.trailer || evbuffer_get_length(buf) > c->scanned));
  if (!arriving)
    c->deadline_ns = 0;
  else if (!c->deadline_ns)
    c->deadline_ns = clock_add_sat(clock_now_ns(), g->read_timeout_ns);
}

int http_guard_sweep(http_guard *g, uint64_t now_ns) {
  int cut = 0;
  for (size_t fd = 0; fd < g->conn_cap; fd++) {
    http_guard_conn *c = &g->conns[fd];
    if (!c->deadline_ns || now_ns < c->deadline_ns) continue;
    c->deadline_ns = 0;
    struct stat st;
    if (fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_ino != c->socket_ino) continue; /* gone */
    shutdown((int)fd, SHUT_RDWR);
    cut++;
  }
  return cut;
}

static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg) {
  http_guard *g = tls_guard;
  const size_t fd = (size_t)(intptr_t)arg;
  if (!g || fd >= g->conn_cap) return;
  http_guard_conn *c = &g->conns[fd];
  if (c->busy) return;
  c->scanned = c->scanned > info->n_deleted ? c->scanned - info->n_deleted : 0;
  if (info->n_added == 0) return;
  c->busy = true;
  frame_timed(buf, c, g);
  c->busy = false;
}

static void on_first_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg) {
  struct bufferevent *bev = arg;
  http_guard *g = tls_guard;
  const evutil_socket_t fd = bufferevent_getfd(bev);
  if (!g || fd < 0 || info->n_added == 0) return;
  if ((size_t)fd >= g->conn_cap) {
    size_t cap = g->conn_cap ? g->conn_cap : 64;
    while (cap <= (size_t)fd) cap *= 2;
    http_guard_conn *grown = realloc(g->conns, cap * sizeof(*grown));
    if (!grown) return; /* unguarded: evhttp's limit still applies */
    memset(grown + g->conn_cap, 0, (cap - g->conn_cap) * sizeof(*grown));
    g->conns = grown;
    g->conn_cap = cap;
  }
  /* Removing itself while running is allowed; the new entry does not run
   * for this change, which is framed here. */
  evbuffer_remove_cb(buf, on_first_input, arg);
  if (!evbuffer_add_cb(buf, on_input, (void *)(intptr_t)fd)) return;
  http_guard_conn *c = &g->conns[fd];
  struct stat st;
  *c = (http_guard_conn){.state = GUARD_HEADERS, .busy = true, .socket_ino = fstat(fd, &st) == 0 ? st.st_ino : 0};
  frame_timed(buf, c, g);
  c->busy = false;
}

bool http_guard_watch(http_guard *guard, struct bufferevent *bev) {
  tls_guard = guard;
  return evbuffer_add_cb(bufferevent_get_input(bev), on_first_input, bev) != NULL;
}

struct bufferevent *http_guard_bufferevent(struct event_base *base, void *guard) {
  struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  if (bev && !http_guard_watch(guard, bev)) {
    bufferevent_free(bev);
    return NULL;
  }
  return bev;
}

void http_guard_free(http_guard *g) {
  free(g->conns);
  g->conns = NULL;
  g->conn_cap = 0;
}
