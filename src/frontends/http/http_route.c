/* REST path parsing; see http_route.h. */
#include "frontends/http/http_route.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "inferd.h"

enum { MAX_SEGMENTS = 8 };

typedef struct segment {
  const char *p;
  size_t n;
} segment;

static bool seg_is(segment s, const char *word) { return s.n == strlen(word) && !memcmp(s.p, word, s.n); }

static int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes a segment; NULL for an empty or NUL-containing name. */
static char *decode_segment(segment s) {
  char *out = mem_try_alloc(s.n + 1, 1);
  if (!out) return NULL;
  size_t n = 0;
  for (size_t i = 0; i < s.n; i++) {
    if (s.p[i] == '%' && i + 2 < s.n && hex(s.p[i + 1]) >= 0 && hex(s.p[i + 2]) >= 0) {
      out[n++] = (char)(hex(s.p[i + 1]) << 4 | hex(s.p[i + 2]));
      i += 2;
    } else {
      out[n++] = s.p[i];
    }
  }
  out[n] = '\0';
  if (n == 0 || strlen(out) != n) {
    free(out);
    return NULL;
  }
  return out;
}

static bool parse_version(segment s, int64_t *v) {
  if (s.n == 0 || s.n > 18) return false;
  int64_t x = 0;
  for (size_t i = 0; i < s.n; i++) {
    if (s.p[i] < '0' || s.p[i] > '9') return false;
    x = x * 10 + (s.p[i] - '0');
  }
  *v = x;
  return true;
}

/* Routes under /v2/models/{m}[/versions/{v}]: seg[0] is the model. */
static void route_model(const segment *seg, int n, http_route *r) {
  int i = 1;
  if (n >= 3 && seg_is(seg[1], "versions")) {
    if (!parse_version(seg[2], &r->version)) {
      r->kind = HTTP_ROUTE_BAD_VERSION;
      return;
    }
    i = 3;
  }
  if (i == n) {
    r->kind = HTTP_ROUTE_MODEL_METADATA;
  } else if (i + 1 == n && seg_is(seg[i], "ready")) {
    r->kind = HTTP_ROUTE_MODEL_READY;
  } else if (i + 1 == n && seg_is(seg[i], "config")) {
    r->kind = HTTP_ROUTE_MODEL_CONFIG;
  } else if (i + 1 == n && seg_is(seg[i], "stats")) {
    r->kind = HTTP_ROUTE_MODEL_STATS;
  } else if (i + 1 == n && seg_is(seg[i], "infer")) {
    r->kind = HTTP_ROUTE_INFER;
    r->method = HTTP_METHOD_POST;
  } else {
    return;
  }
  r->model = decode_segment(seg[0]);
  if (!r->model) r->kind = HTTP_ROUTE_NOT_FOUND;
}

/* Routes under /v2/{system,cuda}sharedmemory: seg[0] is the word after it. */
static void route_shm(const segment *seg, int n, http_route *r) {
  if (n == 1 && seg_is(seg[0], "status")) {
    r->kind = HTTP_ROUTE_SHM_STATUS;
  } else if (n == 1 && seg_is(seg[0], "unregister")) {
    r->kind = HTTP_ROUTE_SHM_UNREGISTER;
    r->method = HTTP_METHOD_POST;
  } else if (n == 3 && seg_is(seg[0], "region")) {
    if (seg_is(seg[2], "status")) {
      r->kind = HTTP_ROUTE_SHM_STATUS;
    } else if (seg_is(seg[2], "register")) {
      r->kind = HTTP_ROUTE_SHM_REGISTER;
      r->method = HTTP_METHOD_POST;
    } else if (seg_is(seg[2], "unregister")) {
      r->kind = HTTP_ROUTE_SHM_UNREGISTER;
      r->method = HTTP_METHOD_POST;
    } else {
      return;
    }
    r->region = decode_segment(seg[1]);
    if (!r->region) r->kind = HTTP_ROUTE_NOT_FOUND;
  }
}

void http_route_parse(const char *path, http_route *r) {
  *r = (http_route){.kind = HTTP_ROUTE_NOT_FOUND, .method = HTTP_METHOD_GET, .version = -1};
  if (!path) return;
  segment seg[MAX_SEGMENTS];
  int n = 0;
  const char *p = path;
  while (*p) {
    while (*p == '/') p++;
    if (!*p) break;
    const char *end = strchr(p, '/');
    if (!end) end = p + strlen(p);
    if (n == MAX_SEGMENTS) return;
    seg[n++] = (segment){p, (size_t)(end - p)};
    p = end;
  }
  if (n == 0 || !seg_is(seg[0], "v2")) return;
  if (n == 1) {
    r->kind = HTTP_ROUTE_SERVER_METADATA;
  } else if (n == 3 && seg_is(seg[1], "health") && seg_is(seg[2], "live")) {
    r->kind = HTTP_ROUTE_HEALTH_LIVE;
  } else if (n == 3 && seg_is(seg[1], "health") && seg_is(seg[2], "ready")) {
    r->kind = HTTP_ROUTE_HEALTH_READY;
  } else if (seg_is(seg[1], "models")) {
    if (n == 3 && seg_is(seg[2], "stats")) {
      r->kind = HTTP_ROUTE_MODEL_STATS; /* every model */
    } else if (n >= 3) {
      route_model(seg + 2, n - 2, r);
    }
  } else if (n >= 3 && (seg_is(seg[1], "systemsharedmemory") || seg_is(seg[1], "cudasharedmemory"))) {
    r->shm_kind = seg_is(seg[1], "cudasharedmemory") ? INFERD_SHM_CUDA : INFERD_SHM_SYSTEM;
    route_shm(seg + 2, n - 2, r);
  } else if (seg_is(seg[1], "repository")) {
    r->method = HTTP_METHOD_POST;
    if (n == 3 && seg_is(seg[2], "index")) {
      r->kind = HTTP_ROUTE_REPOSITORY_INDEX;
    } else if (n == 5 && seg_is(seg[2], "models") && (seg_is(seg[4], "load") || seg_is(seg[4], "unload"))) {
      r->model = decode_segment(seg[3]);
      if (r->model) r->kind = seg_is(seg[4], "load") ? HTTP_ROUTE_MODEL_LOAD : HTTP_ROUTE_MODEL_UNLOAD;
    }
  }
}

void http_route_free(http_route *r) {
  free(r->model);
  r->model = NULL;
  free(r->region);
  r->region = NULL;
}
