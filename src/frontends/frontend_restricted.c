/* Restricted APIs; see frontend_restricted.h. */
#include "frontends/frontend_restricted.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "base/mem.h"
#include "frontends/http/http_route.h"

static const char *const api_names[FRONTEND_API_COUNT_] = {
    [FRONTEND_API_NONE] = "none",
    [FRONTEND_API_HEALTH] = "health",
    [FRONTEND_API_METADATA] = "metadata",
    [FRONTEND_API_INFERENCE] = "inference",
    [FRONTEND_API_SHARED_MEMORY] = "shared-memory",
    [FRONTEND_API_MODEL_CONFIG] = "model-config",
    [FRONTEND_API_MODEL_REPOSITORY] = "model-repository",
    [FRONTEND_API_STATISTICS] = "statistics",
    [FRONTEND_API_TRACE] = "trace",
    [FRONTEND_API_LOGGING] = "logging",
};

const char *frontend_api_name(frontend_api api) {
  return api >= 0 && api < FRONTEND_API_COUNT_ ? api_names[api] : api_names[FRONTEND_API_NONE];
}

/* ---- the table: every endpoint and its category ----------------------------------
 * As Triton groups them. A route or RPC added to a frontend gets its row
 * here (the unit test fails on one without a category); docs/security.md
 * shows the same table. inferd serves no trace or logging endpoint yet, so
 * those two categories hold only the RPCs of Triton's that it answers
 * UNIMPLEMENTED. */

static const frontend_api http_route_apis[HTTP_ROUTE_KIND_COUNT_] = {
    [HTTP_ROUTE_HEALTH_LIVE] = FRONTEND_API_HEALTH,             /* GET /v2/health/live */
    [HTTP_ROUTE_HEALTH_READY] = FRONTEND_API_HEALTH,            /* GET /v2/health/ready */
    [HTTP_ROUTE_MODEL_READY] = FRONTEND_API_HEALTH,             /* GET /v2/models/{m}[/versions/{v}]/ready */
    [HTTP_ROUTE_SERVER_METADATA] = FRONTEND_API_METADATA,       /* GET /v2 */
    [HTTP_ROUTE_MODEL_METADATA] = FRONTEND_API_METADATA,        /* GET /v2/models/{m}[/versions/{v}] */
    [HTTP_ROUTE_INFER] = FRONTEND_API_INFERENCE,                /* POST .../infer */
    [HTTP_ROUTE_SHM_STATUS] = FRONTEND_API_SHARED_MEMORY,       /* GET /v2/{system,cuda}sharedmemory/... */
    [HTTP_ROUTE_SHM_REGISTER] = FRONTEND_API_SHARED_MEMORY,     /* POST .../region/{r}/register */
    [HTTP_ROUTE_SHM_UNREGISTER] = FRONTEND_API_SHARED_MEMORY,   /* POST .../unregister */
    [HTTP_ROUTE_MODEL_CONFIG] = FRONTEND_API_MODEL_CONFIG,      /* GET .../config */
    [HTTP_ROUTE_REPOSITORY_INDEX] = FRONTEND_API_MODEL_REPOSITORY, /* POST /v2/repository/index */
    [HTTP_ROUTE_MODEL_LOAD] = FRONTEND_API_MODEL_REPOSITORY,    /* POST /v2/repository/models/{m}/load */
    [HTTP_ROUTE_MODEL_UNLOAD] = FRONTEND_API_MODEL_REPOSITORY,  /* POST /v2/repository/models/{m}/unload */
    [HTTP_ROUTE_MODEL_STATS] = FRONTEND_API_STATISTICS,         /* GET /v2/models[/{m}[/versions/{v}]]/stats */
    /* HTTP_ROUTE_NOT_FOUND and HTTP_ROUTE_BAD_VERSION: none (404, 400). */
};

static const struct {
  const char *rpc;
  frontend_api api;
} grpc_rpc_apis[] = {
    {"ServerLive", FRONTEND_API_HEALTH},
    {"ServerReady", FRONTEND_API_HEALTH},
    {"ModelReady", FRONTEND_API_HEALTH},
    {"ServerMetadata", FRONTEND_API_METADATA},
    {"ModelMetadata", FRONTEND_API_METADATA},
    {"ModelInfer", FRONTEND_API_INFERENCE},
    {"ModelStreamInfer", FRONTEND_API_INFERENCE},
    {"SystemSharedMemoryStatus", FRONTEND_API_SHARED_MEMORY},
    {"SystemSharedMemoryRegister", FRONTEND_API_SHARED_MEMORY},
    {"SystemSharedMemoryUnregister", FRONTEND_API_SHARED_MEMORY},
    {"CudaSharedMemoryStatus", FRONTEND_API_SHARED_MEMORY},
    {"CudaSharedMemoryRegister", FRONTEND_API_SHARED_MEMORY},
    {"CudaSharedMemoryUnregister", FRONTEND_API_SHARED_MEMORY},
    {"ModelConfig", FRONTEND_API_MODEL_CONFIG},
    {"RepositoryIndex", FRONTEND_API_MODEL_REPOSITORY},
    {"RepositoryModelLoad", FRONTEND_API_MODEL_REPOSITORY},
    {"RepositoryModelUnload", FRONTEND_API_MODEL_REPOSITORY},
    {"ModelStatistics", FRONTEND_API_STATISTICS},
    {"TraceSetting", FRONTEND_API_TRACE},
    {"LogSettings", FRONTEND_API_LOGGING},
};

#define GRPC_SERVICE_PREFIX "/inference.GRPCInferenceService/"

frontend_api frontend_api_of_http_route(int route_kind) {
  return route_kind >= 0 && route_kind < HTTP_ROUTE_KIND_COUNT_ ? http_route_apis[route_kind] : FRONTEND_API_NONE;
}

frontend_api frontend_api_of_grpc_method(const char *path) {
  const size_t prefix = strlen(GRPC_SERVICE_PREFIX);
  if (!path || strncmp(path, GRPC_SERVICE_PREFIX, prefix) != 0) return FRONTEND_API_NONE;
  for (size_t i = 0; i < sizeof(grpc_rpc_apis) / sizeof(grpc_rpc_apis[0]); i++)
    if (!strcmp(path + prefix, grpc_rpc_apis[i].rpc)) return grpc_rpc_apis[i].api;
  return FRONTEND_API_NONE;
}

/* ---- the flags ------------------------------------------------------------------------ */

#define FORM "<api>[,<api>...]:<header>=<value>"
#define API_LIST "health, metadata, inference, shared-memory, model-config, model-repository, statistics, trace, logging"

/* RFC 9110's token characters: what a header or metadata name may hold. */
static bool is_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Whether a word is safe to repeat in an error: a mistyped category, not
 * a misplaced secret (only letters, digits and '-', and short). */
static bool is_plain_word(const char *p, size_t n) {
  if (n == 0 || n > 32) return false;
  for (size_t i = 0; i < n; i++)
    if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9') ||
          p[i] == '-' || p[i] == '_'))
      return false;
  return true;
}

static frontend_api api_of_name(const char *p, size_t n) {
  for (int a = FRONTEND_API_NONE + 1; a < FRONTEND_API_COUNT_; a++)
    if (strlen(api_names[a]) == n && !strncmp(api_names[a], p, n)) return (frontend_api)a;
  return FRONTEND_API_NONE;
}

inferd_error *frontend_restrictions_add(frontend_restrictions *r, const char *flag, const char *text) {
  /* Nothing of the text after the ':' is ever repeated in an error: it
   * holds the secret, or, when mistyped, may. */
  const char *colon = strchr(text, ':');
  if (!colon) return err_new(INFERD_ERROR_INVALID_ARG, "%s: no ':' after the categories (the form is " FORM ")", flag);
  bool chosen[FRONTEND_API_COUNT_] = {false};
  if (colon == text) return err_new(INFERD_ERROR_INVALID_ARG, "%s: an empty category (the form is " FORM ")", flag);
  for (const char *p = text; p < colon;) {
    const char *end = memchr(p, ',', (size_t)(colon - p));
    if (!end) end = colon;
    const size_t n = (size_t)(end - p);
    const frontend_api api = api_of_name(p, n);
    if (api == FRONTEND_API_NONE) {
      if (n == 0) return err_new(INFERD_ERROR_INVALID_ARG, "%s: an empty category (the form is " FORM ")", flag);
      if (is_plain_word(p, n))
        return err_new(INFERD_ERROR_INVALID_ARG, "%s: '%.*s' is not a category (" API_LIST ")", flag, (int)n, p);
      return err_new(INFERD_ERROR_INVALID_ARG, "%s: a category before the ':' is not one of " API_LIST, flag);
    }
    if (chosen[api] || r->api[api].key)
      return err_new(INFERD_ERROR_INVALID_ARG,
                     "%s: category '%s' is restricted twice (each category may be given once over all %s flags)", flag,
                     api_names[api], flag);
    chosen[api] = true;
    p = end == colon ? colon : end + 1;
    if (end != colon && p == colon)
      return err_new(INFERD_ERROR_INVALID_ARG, "%s: an empty category (the form is " FORM ")", flag);
  }
  const char *key = colon + 1;
  const char *eq = strchr(key, '=');
  if (!eq) return err_new(INFERD_ERROR_INVALID_ARG, "%s: no '=' after the header name (the form is " FORM ")", flag);
  const size_t key_len = (size_t)(eq - key);
  if (key_len == 0) return err_new(INFERD_ERROR_INVALID_ARG, "%s: the header name is empty (the form is " FORM ")", flag);
  for (size_t i = 0; i < key_len; i++)
    if (!is_token_char(key[i]))
      return err_new(INFERD_ERROR_INVALID_ARG,
                     "%s: the header name holds a character a header name may not have (letters, digits and "
                     "!#$%%&'*+-.^_`|~ are allowed)",
                     flag);
  const char *value = eq + 1;
  const size_t value_len = strlen(value);
  if (value_len == 0) return err_new(INFERD_ERROR_INVALID_ARG, "%s: the value is empty (the form is " FORM ")", flag);
  for (size_t i = 0; i < value_len; i++)
    if ((unsigned char)value[i] < 0x20 || (unsigned char)value[i] > 0x7e)
      return err_new(INFERD_ERROR_INVALID_ARG, "%s: the value holds a character that is not printable ASCII", flag);
  if (value[0] == ' ' || value[value_len - 1] == ' ')
    return err_new(INFERD_ERROR_INVALID_ARG,
                   "%s: the value starts or ends with a space (clients' headers lose it, so it could never match)",
                   flag);
  for (int a = FRONTEND_API_NONE + 1; a < FRONTEND_API_COUNT_; a++) {
    if (!chosen[a]) continue;
    r->api[a] = (frontend_restriction){.key = mem_strndup(key, key_len), .value = mem_strdup(value), .value_len = value_len};
  }
  return NULL;
}

void frontend_restrictions_free(frontend_restrictions *r) {
  for (int a = 0; a < FRONTEND_API_COUNT_; a++) {
    if (r->api[a].value) OPENSSL_cleanse(r->api[a].value, r->api[a].value_len);
    free(r->api[a].key);
    free(r->api[a].value);
    r->api[a] = (frontend_restriction){0};
  }
}

const frontend_restriction *frontend_restriction_of(const frontend_restrictions *r, frontend_api api) {
  if (!r || api <= FRONTEND_API_NONE || api >= FRONTEND_API_COUNT_ || !r->api[api].key) return NULL;
  return &r->api[api];
}

bool frontend_restriction_matches(const frontend_restriction *restriction, const char *given, size_t given_len) {
  if (!given) return false;
  /* A length that differs is no secret (the client knows what it sent);
   * the bytes are compared in constant time all the same, against the
   * value itself, so that the time never depends on them. */
  const bool same_length = given_len == restriction->value_len;
  const int differ = CRYPTO_memcmp(restriction->value, same_length ? given : restriction->value, restriction->value_len);
  return same_length && differ == 0;
}

inferd_error *frontend_restriction_denied(const frontend_restriction *restriction, frontend_api api,
                                          const char *what) {
  return err_new(INFERD_ERROR_PERMISSION_DENIED,
                 "the '%s' API is restricted: this request lacks the right value of %s '%s'", frontend_api_name(api),
                 what, restriction->key);
}
