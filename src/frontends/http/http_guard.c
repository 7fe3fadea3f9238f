/*
 * The body-size guard (see http_guard.h).
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
 * always still in the buffer.
 */
#include "frontends/http/http_guard.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { MAX_LINE = 8192 };

typedef enum conn_state {
  GUARD_HEADERS, /* next bytes are a header block */
  GUARD_BODY,    /* `remaining` body bytes pass */
  GUARD_DISCARD, /* `remaining` body bytes are dropped */
  GUARD_OFF,     /* framing unknown: evhttp alone */
} conn_state;

struct http_guard_conn {
  http_guard_head head; /* GUARD_HEADERS: the block so far */
  uint64_t remaining;
  size_t scanned;
  conn_state state;
  bool busy; /* the guard is editing the buffer */
};

/* The guard of the thread whose loop is running (set by the bufferevent
 * callback, which runs on that loop before any input callback). */
static _Thread_local http_guard *tls_guard;

/* ---- framing ------------------------------------------------------------ */

static bool name_is(const char *line, size_t name_len, const char *name) {
  return name_len == strlen(name) && !strncasecmp(line, name, name_len);
}

/* Methods evhttp reads a body for. */
static bool method_has_body(const char *line, size_t len) {
  static const char *const methods[] = {"POST ", "PUT ", "PATCH "};
  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
    const size_t n = strlen(methods[i]);
    if (len >= n && !memcmp(line, methods[i], n)) return true;
  }
  return false;
}

http_guard_action http_guard_line(http_guard_head *h, const char *line, size_t len, uint64_t limit, char *out,
                                  size_t *out_len) {
  if (len > 0 && line[len - 1] == '\r') len--; /* a bare LF ends a line for evhttp too */
  if (h->lines == 0) {
    if (len == 0) return HTTP_GUARD_KEEP; /* evhttp refuses the connection */
    h->lines = 1;
    h->has_body = method_has_body(line, len);
    return HTTP_GUARD_KEEP;
  }
  if (len == 0) return HTTP_GUARD_END;
  h->lines++;
  const char *colon = memchr(line, ':', len);
  if (!colon) return HTTP_GUARD_KEEP;
  const size_t name_len = (size_t)(colon - line);
  if (name_is(line, name_len, HTTP_GUARD_HEADER)) return HTTP_GUARD_DROP;
  if (name_is(line, name_len, "transfer-encoding")) {
    h->chunked = true;
    return HTTP_GUARD_KEEP;
  }
  if (!h->has_body || !name_is(line, name_len, "content-length")) return HTTP_GUARD_KEEP;
  const char *v = colon + 1, *end = line + len;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
  const size_t vn = (size_t)(end - v);
  uint64_t n = 0;
  bool ok = vn > 0 && vn <= 19;
  for (size_t i = 0; ok && i < vn; i++) {
    ok = v[i] >= '0' && v[i] <= '9';
    n = n * 10 + (uint64_t)(v[i] - '0');
  }
  if (!ok || (h->have_length && n != h->length)) {
    h->unknown = true; /* evhttp refuses it */
    return HTTP_GUARD_KEEP;
  }
  if (h->have_length) return h->refused ? HTTP_GUARD_DROP : HTTP_GUARD_KEEP; /* the same length again */
  h->have_length = true;
  h->length = n;
  if (n <= limit) return HTTP_GUARD_KEEP;
  h->refused = true;
  *out_len = (size_t)snprintf(out, HTTP_GUARD_REPLACE_MAX, "Content-Length: 0\r\n" HTTP_GUARD_HEADER ": %llu\r\n",
                              (unsigned long long)n);
  return HTTP_GUARD_REPLACE;
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

/* Judges the complete line at c->scanned (`len` bytes with its end of
 * line): read in place when `in_place` points at it, else copied out. */
static void take_line(struct evbuffer *buf, http_guard_conn *c, const char *in_place, size_t len, size_t eol_len,
                      uint64_t limit) {
  char copy[MAX_LINE];
  const char *line = in_place;
  struct evbuffer_ptr at;
  if (!line) {
    if (len > sizeof(copy) || evbuffer_ptr_set(buf, &at, c->scanned, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(buf, &at, copy, len) != (ev_ssize_t)len) {
      c->state = GUARD_OFF; /* evhttp judges lines this long */
      return;
    }
    line = copy;
  }
  char out[HTTP_GUARD_REPLACE_MAX];
  size_t out_len = 0;
  switch (http_guard_line(&c->head, line, len - eol_len, limit, out, &out_len)) {
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
  case HTTP_GUARD_END: {
    c->scanned += len;
    const http_guard_head h = c->head;
    c->head = (http_guard_head){0};
    if (h.unknown || h.chunked) {
      c->state = GUARD_OFF;
    } else if (h.refused) {
      c->state = GUARD_DISCARD;
      c->remaining = h.length;
    } else if (h.has_body && h.length > 0) {
      c->state = GUARD_BODY;
      c->remaining = h.length;
    }
    break;
  }
  }
}

static void frame(struct evbuffer *buf, http_guard_conn *c, uint64_t limit) {
  for (;;) {
    const size_t len = evbuffer_get_length(buf);
    if (c->state == GUARD_OFF || c->scanned >= len) return;
    const size_t avail = len - c->scanned;
    if (c->state == GUARD_BODY || c->state == GUARD_DISCARD) {
      const size_t k = c->remaining < avail ? (size_t)c->remaining : avail;
      if (c->state == GUARD_BODY) c->scanned += k;
      else if (!splice(buf, c->scanned, k, NULL, 0)) {
        c->state = GUARD_OFF;
        return;
      }
      c->remaining -= k;
      if (c->remaining == 0) c->state = GUARD_HEADERS;
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
        const size_t len = (size_t)(nl - p) + 1;
        take_line(buf, c, p, len, len >= 2 && nl[-1] == '\r' ? 2 : 1, limit);
        continue;
      }
    }
    const struct evbuffer_ptr eol = evbuffer_search_eol(buf, &start, &eol_len, EVBUFFER_EOL_CRLF);
    if (eol.pos < 0) {
      if (avail > MAX_LINE) c->state = GUARD_OFF; /* evhttp judges such lines */
      return;
    }
    take_line(buf, c, NULL, (size_t)eol.pos + eol_len - c->scanned, eol_len, limit);
  }
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
  frame(buf, c, g->limit);
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
  *c = (http_guard_conn){.state = GUARD_HEADERS, .busy = true};
  frame(buf, c, g->limit);
  c->busy = false;
}

struct bufferevent *http_guard_bufferevent(struct event_base *base, void *guard) {
  tls_guard = guard;
  struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  if (bev && !evbuffer_add_cb(bufferevent_get_input(bev), on_first_input, bev)) {
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
