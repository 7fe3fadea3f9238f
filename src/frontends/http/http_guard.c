/*
 * The body-size guard (see http_guard.h).
 *
 * Each connection's input buffer has one callback. The first time bytes
 * arrive it finds the connection's socket, resets that socket's slot in the
 * thread's table and re-registers itself with the socket as its argument.
 * From then on every change to the buffer runs the framing below before
 * evhttp reads the bytes: evhttp only ever removes bytes from the front, so
 * `scanned`, the number of leading bytes already classified, moves back by
 * what it removed and forward by what the guard classifies.
 */
#include "frontends/http/http_guard.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { MAX_HEADER_BLOCK = 64 << 10, STACK_BLOCK = 4096 };

typedef enum conn_state {
  GUARD_HEADERS, /* next bytes are a header block */
  GUARD_BODY,    /* `remaining` body bytes pass */
  GUARD_DISCARD, /* `remaining` body bytes are dropped */
  GUARD_OFF,     /* framing unknown: evhttp alone */
} conn_state;

struct http_guard_conn {
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

static const char *line_end(const char *p, const char *end) {
  const char *q = memchr(p, '\n', (size_t)(end - p));
  return q ? q + 1 : end;
}

/* Header value between the colon and the line end, spaces trimmed. */
static void header_value(const char *line, const char *next, size_t name_len, const char **v, size_t *vn) {
  const char *a = line + name_len + 1, *b = next;
  while (a < b && (*a == ' ' || *a == '\t')) a++;
  while (b > a && (b[-1] == '\r' || b[-1] == '\n' || b[-1] == ' ' || b[-1] == '\t')) b--;
  *v = a;
  *vn = (size_t)(b - a);
}

/* Methods evhttp reads a body for. */
static bool method_has_body(const char *block, size_t len) {
  static const char *const methods[] = {"POST ", "PUT ", "PATCH "};
  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
    const size_t n = strlen(methods[i]);
    if (len >= n && !memcmp(block, methods[i], n)) return true;
  }
  return false;
}

http_guard_verdict http_guard_examine(const char *block, size_t len, uint64_t limit, uint64_t *length) {
  *length = 0;
  const bool has_body = method_has_body(block, len);
  const char *end = block + len, *p = line_end(block, end);
  bool have_length = false, forged = false;
  uint64_t value = 0;
  while (p < end && *p != '\r' && *p != '\n') {
    const char *next = line_end(p, end), *colon = memchr(p, ':', (size_t)(next - p));
    if (colon) {
      const size_t name_len = (size_t)(colon - p);
      const char *v;
      size_t vn;
      header_value(p, next, name_len, &v, &vn);
      if (name_is(p, name_len, "transfer-encoding")) return HTTP_GUARD_UNKNOWN;
      if (name_is(p, name_len, HTTP_GUARD_HEADER)) forged = true;
      if (has_body && name_is(p, name_len, "content-length")) {
        uint64_t n = 0;
        if (vn == 0 || vn > 19) return HTTP_GUARD_UNKNOWN;
        for (size_t i = 0; i < vn; i++) {
          if (v[i] < '0' || v[i] > '9') return HTTP_GUARD_UNKNOWN;
          n = n * 10 + (uint64_t)(v[i] - '0');
        }
        if (have_length && n != value) return HTTP_GUARD_UNKNOWN;
        have_length = true;
        value = n;
      }
    }
    p = next;
  }
  *length = value;
  return value > limit ? HTTP_GUARD_REFUSE : forged ? HTTP_GUARD_STRIP : HTTP_GUARD_PASS;
}

char *http_guard_rewrite(const char *block, size_t len, bool refuse, uint64_t length, size_t *out_len) {
  char extra[96];
  const int en = refuse ? snprintf(extra, sizeof(extra), "Content-Length: 0\r\n" HTTP_GUARD_HEADER ": %llu\r\n\r\n",
                                   (unsigned long long)length)
                        : snprintf(extra, sizeof(extra), "\r\n");
  char *out = malloc(len + (size_t)en + 1);
  if (!out) return NULL;
  const char *end = block + len, *p = line_end(block, end);
  size_t n = (size_t)(p - block);
  memcpy(out, block, n);
  while (p < end && *p != '\r' && *p != '\n') {
    const char *next = line_end(p, end), *colon = memchr(p, ':', (size_t)(next - p));
    const size_t name_len = colon ? (size_t)(colon - p) : 0;
    const bool drop = colon && (name_is(p, name_len, HTTP_GUARD_HEADER) ||
                                (refuse && (name_is(p, name_len, "content-length") || name_is(p, name_len, "expect"))));
    if (!drop) {
      memcpy(out + n, p, (size_t)(next - p));
      n += (size_t)(next - p);
    }
    p = next;
  }
  memcpy(out + n, extra, (size_t)en);
  *out_len = n + (size_t)en;
  return out;
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

static void pass_body(http_guard_conn *c, uint64_t length) {
  if (length > 0) {
    c->state = GUARD_BODY;
    c->remaining = length;
  }
}

/* Classifies the header block at c->scanned, which ends at `block_end`. */
static void take_header_block(struct evbuffer *buf, http_guard_conn *c, size_t block_len, uint64_t limit) {
  char stack[STACK_BLOCK];
  char *block = stack;
  bool owned = false;
  struct evbuffer_ptr at;
  struct evbuffer_iovec first;
  bool ok = evbuffer_ptr_set(buf, &at, c->scanned, EVBUFFER_PTR_SET) == 0;
  if (ok && evbuffer_peek(buf, (ev_ssize_t)block_len, &at, &first, 1) >= 1 && first.iov_len >= block_len) {
    block = first.iov_base; /* the usual case: the block lies in one chunk, read in place */
  } else if (ok) {
    if (block_len > sizeof(stack)) block = malloc(block_len);
    owned = block != stack;
    ok = block && evbuffer_copyout_from(buf, &at, block, block_len) == (ev_ssize_t)block_len;
  }
  if (!ok) {
    c->state = GUARD_OFF;
  } else {
    uint64_t length;
    const http_guard_verdict verdict = http_guard_examine(block, block_len, limit, &length);
    switch (verdict) {
    case HTTP_GUARD_PASS:
      c->scanned += block_len;
      pass_body(c, length);
      break;
    case HTTP_GUARD_STRIP:
    case HTTP_GUARD_REFUSE: {
      const bool refuse = verdict == HTTP_GUARD_REFUSE;
      size_t n;
      char *rewritten = http_guard_rewrite(block, block_len, refuse, length, &n);
      if (rewritten && splice(buf, c->scanned, block_len, rewritten, n)) {
        c->scanned += n;
        if (refuse) {
          c->state = GUARD_DISCARD;
          c->remaining = length;
        } else {
          pass_body(c, length);
        }
      } else {
        c->state = GUARD_OFF; /* evhttp's own limit still refuses a large body */
      }
      free(rewritten);
      break;
    }
    case HTTP_GUARD_UNKNOWN:
      c->state = GUARD_OFF;
      break;
    }
  }
  if (owned) free(block);
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
    if (evbuffer_ptr_set(buf, &start, c->scanned, EVBUFFER_PTR_SET) != 0) return;
    const struct evbuffer_ptr end = evbuffer_search(buf, "\r\n\r\n", 4, &start);
    if (end.pos < 0) {
      if (avail > MAX_HEADER_BLOCK) c->state = GUARD_OFF; /* evhttp judges such headers */
      return;
    }
    take_header_block(buf, c, (size_t)end.pos + 4 - c->scanned, limit);
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
