/*
 * The REST route parser (http_route_parse) on request targets as a client
 * sends them: split by libevent's URI parser as evhttp does (path, query
 * and fragment; EVHTTP_URI_NONCONFORMANT), and also taken whole as a path.
 *
 * Checks: the route is one the parser can return, with the method its
 * endpoint takes; a model or region is present exactly on the routes that
 * name one, and is the percent-decoding of one segment of the path (so it
 * lies within the URL and holds no NUL); and a route found, written back as
 * a path with every byte of its names percent-escaped, parses to the same
 * route.
 *
 * Input: the request target (bytes after a NUL are not part of it, as
 * evhttp hands the parser a C string).
 */
#include <event2/http.h>
#include <inttypes.h>

#include "frontends/http/http_route.h"
#include "inferd.h"
#include "fuzz/fuzz_util.h"

static bool is_shm_route(http_route_kind k) {
  return k == HTTP_ROUTE_SHM_STATUS || k == HTTP_ROUTE_SHM_REGISTER || k == HTTP_ROUTE_SHM_UNREGISTER;
}

/* Routes that must carry a model name (MODEL_STATS may, or not: every model). */
static bool needs_model(http_route_kind k) {
  return k == HTTP_ROUTE_MODEL_METADATA || k == HTTP_ROUTE_MODEL_READY || k == HTTP_ROUTE_MODEL_CONFIG ||
         k == HTTP_ROUTE_INFER || k == HTTP_ROUTE_MODEL_LOAD || k == HTTP_ROUTE_MODEL_UNLOAD;
}

static bool takes_post(http_route_kind k) {
  return k == HTTP_ROUTE_INFER || k == HTTP_ROUTE_REPOSITORY_INDEX || k == HTTP_ROUTE_MODEL_LOAD ||
         k == HTTP_ROUTE_MODEL_UNLOAD || k == HTTP_ROUTE_SHM_REGISTER || k == HTTP_ROUTE_SHM_UNREGISTER;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Whether `name` is the percent-decoding of one '/'-separated segment of
 * `path` (a "%" not followed by two hex digits stands for itself). */
static bool is_decoded_segment_of(const char *name, const char *path) {
  const size_t name_len = strlen(name);
  for (const char *p = path; *p;) {
    if (*p == '/') {
      p++;
      continue;
    }
    const char *end = strchr(p, '/');
    if (!end) end = p + strlen(p);
    size_t n = 0;
    bool same = true;
    for (const char *q = p; q < end && same; q++, n++) {
      char c = *q;
      if (c == '%' && end - q > 2 && hex_digit(q[1]) >= 0 && hex_digit(q[2]) >= 0) {
        c = (char)(hex_digit(q[1]) << 4 | hex_digit(q[2]));
        q += 2;
      }
      same = n < name_len && name[n] == c;
    }
    if (same && n == name_len) return true;
    p = end;
  }
  return false;
}

/* Appends "/" and `name` with every byte escaped as %XX. */
static void append_escaped(char *out, size_t cap, size_t *len, const char *name) {
  *len += (size_t)snprintf(out + *len, cap - *len, "/");
  for (const unsigned char *c = (const unsigned char *)name; *c; c++)
    *len += (size_t)snprintf(out + *len, cap - *len, "%%%02X", *c);
  FUZZ_CHECK(*len < cap);
}

/* The path a found route is reached by, every name escaped (so that no name
 * reads as one of the protocol's words); NULL for NOT_FOUND and BAD_VERSION. */
static char *route_path(const http_route *r) {
  static const char *const tails[HTTP_ROUTE_KIND_COUNT_] = {
      [HTTP_ROUTE_MODEL_READY] = "/ready",       [HTTP_ROUTE_MODEL_CONFIG] = "/config",
      [HTTP_ROUTE_MODEL_STATS] = "/stats",       [HTTP_ROUTE_INFER] = "/infer",
      [HTTP_ROUTE_MODEL_LOAD] = "/load",         [HTTP_ROUTE_MODEL_UNLOAD] = "/unload",
      [HTTP_ROUTE_SHM_STATUS] = "/status",       [HTTP_ROUTE_SHM_REGISTER] = "/register",
      [HTTP_ROUTE_SHM_UNREGISTER] = "/unregister",
  };
  const char *fixed = NULL;
  switch (r->kind) {
    case HTTP_ROUTE_NOT_FOUND:
    case HTTP_ROUTE_BAD_VERSION:
    case HTTP_ROUTE_KIND_COUNT_:
      return NULL;
    case HTTP_ROUTE_SERVER_METADATA:
      fixed = "/v2";
      break;
    case HTTP_ROUTE_HEALTH_LIVE:
      fixed = "/v2/health/live";
      break;
    case HTTP_ROUTE_HEALTH_READY:
      fixed = "/v2/health/ready";
      break;
    case HTTP_ROUTE_REPOSITORY_INDEX:
      fixed = "/v2/repository/index";
      break;
    default:
      break;
  }
  if (fixed) return fuzz_strndup((const uint8_t *)fixed, strlen(fixed));
  if (r->kind == HTTP_ROUTE_MODEL_STATS && !r->model) return fuzz_strndup((const uint8_t *)"/v2/models/stats", 16);
  const size_t names = (r->model ? strlen(r->model) : 0) + (r->region ? strlen(r->region) : 0);
  const size_t cap = 3 * names + 128;
  char *out = malloc(cap);
  FUZZ_CHECK(out != NULL);
  size_t len = 0;
  if (r->kind == HTTP_ROUTE_MODEL_LOAD || r->kind == HTTP_ROUTE_MODEL_UNLOAD) {
    len += (size_t)snprintf(out, cap, "/v2/repository/models");
    append_escaped(out, cap, &len, r->model);
  } else if (is_shm_route(r->kind)) {
    len += (size_t)snprintf(out, cap, "/v2/%s", r->shm_kind == INFERD_SHM_CUDA ? "cudasharedmemory" : "systemsharedmemory");
    if (r->region) {
      len += (size_t)snprintf(out + len, cap - len, "/region");
      append_escaped(out, cap, &len, r->region);
    }
  } else {
    len += (size_t)snprintf(out, cap, "/v2/models");
    append_escaped(out, cap, &len, r->model);
    if (r->version >= 0) len += (size_t)snprintf(out + len, cap - len, "/versions/%" PRId64, r->version);
  }
  snprintf(out + len, cap - len, "%s", tails[r->kind] ? tails[r->kind] : "");
  return out;
}

static bool same_name(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static void check_route(const char *path, const http_route *r) {
  FUZZ_CHECK((unsigned)r->kind < HTTP_ROUTE_KIND_COUNT_);
  FUZZ_CHECK(r->method == HTTP_METHOD_GET || r->method == HTTP_METHOD_POST);
  FUZZ_CHECK(r->version >= -1 && r->version < INT64_C(1000000000000000000));
  if (r->kind == HTTP_ROUTE_NOT_FOUND || r->kind == HTTP_ROUTE_BAD_VERSION) {
    FUZZ_CHECK(r->model == NULL && r->region == NULL);
    return;
  }
  FUZZ_CHECK((r->method == HTTP_METHOD_POST) == takes_post(r->kind));
  if (needs_model(r->kind)) FUZZ_CHECK(r->model != NULL);
  if (!needs_model(r->kind) && r->kind != HTTP_ROUTE_MODEL_STATS) FUZZ_CHECK(r->model == NULL);
  if (r->version >= 0) FUZZ_CHECK(r->model != NULL);
  if (!is_shm_route(r->kind)) FUZZ_CHECK(r->region == NULL && r->shm_kind == 0);
  if (r->kind == HTTP_ROUTE_SHM_REGISTER) FUZZ_CHECK(r->region != NULL);
  if (is_shm_route(r->kind)) FUZZ_CHECK(r->shm_kind == INFERD_SHM_SYSTEM || r->shm_kind == INFERD_SHM_CUDA);
  for (int i = 0; i < 2; i++) {
    const char *name = i ? r->region : r->model;
    if (!name) continue;
    FUZZ_CHECK(name[0] != '\0' && strlen(name) <= strlen(path));
    FUZZ_CHECK(is_decoded_segment_of(name, path));
  }

  char *again_path = route_path(r);
  FUZZ_CHECK(again_path != NULL);
  http_route again;
  http_route_parse(again_path, &again);
  FUZZ_CHECK(again.kind == r->kind && again.method == r->method && again.version == r->version);
  FUZZ_CHECK(again.shm_kind == r->shm_kind && same_name(again.model, r->model) && same_name(again.region, r->region));
  http_route_free(&again);
  FUZZ_CHECK(again.model == NULL && again.region == NULL);
  free(again_path);
}

static void parse_and_check(const char *path) {
  http_route r;
  http_route_parse(path, &r);
  if (path) check_route(path, &r);
  else FUZZ_CHECK(r.kind == HTTP_ROUTE_NOT_FOUND && !r.model && !r.region);
  http_route_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *target = fuzz_strndup(data, size);
  struct evhttp_uri *uri = evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT);
  if (uri) {
    parse_and_check(evhttp_uri_get_path(uri));
    evhttp_uri_free(uri);
  }
  parse_and_check(target);
  free(target);
  return 0;
}
