/*
 * Triton's restricted APIs. Every endpoint of the HTTP and gRPC frontends
 * belongs to one of Triton's categories (health, metadata, inference, ...);
 * `--http-restricted-api=<api>[,<api>...]:<header>=<value>` and
 * `--grpc-restricted-protocol=<protocol>[,...]:<key>=<value>` make a
 * category answer only requests that carry that header (HTTP) or metadata
 * key (gRPC) with that value. Others are refused (403 / PERMISSION_DENIED)
 * with a message that names the category and the header, never the value.
 *
 * The value is a shared secret: it is compared in constant time (the time
 * depends on the length of the expected value only), and nothing here logs
 * it. The mapping of every HTTP route and gRPC RPC to its category is the
 * one table in frontend_restricted.c (docs/security.md shows it).
 */
#ifndef INFERD_FRONTENDS_FRONTEND_RESTRICTED_H
#define INFERD_FRONTENDS_FRONTEND_RESTRICTED_H

#include <stdbool.h>
#include <stddef.h>

#include "inferd.h"

/* Triton's categories, in Triton's order; NONE for what belongs to none
 * (an unknown path or method), which cannot be restricted. */
typedef enum frontend_api {
  FRONTEND_API_NONE = 0,
  FRONTEND_API_HEALTH,
  FRONTEND_API_METADATA,
  FRONTEND_API_INFERENCE,
  FRONTEND_API_SHARED_MEMORY,
  FRONTEND_API_MODEL_CONFIG,
  FRONTEND_API_MODEL_REPOSITORY,
  FRONTEND_API_STATISTICS,
  FRONTEND_API_TRACE,
  FRONTEND_API_LOGGING,
  FRONTEND_API_COUNT_
} frontend_api;

/* "health", "model-repository", ...; "none" for FRONTEND_API_NONE. */
const char *frontend_api_name(frontend_api api);

/* The category of an HTTP route (an http_route_kind). */
frontend_api frontend_api_of_http_route(int route_kind);
/* The category of a gRPC method, by its path
 * ("/inference.GRPCInferenceService/ModelInfer"); NONE when unknown. */
frontend_api frontend_api_of_grpc_method(const char *path);

typedef struct frontend_restriction {
  char *key;   /* header or metadata key; NULL: the category is open */
  char *value; /* the secret */
  size_t value_len;
} frontend_restriction;

typedef struct frontend_restrictions {
  frontend_restriction api[FRONTEND_API_COUNT_];
} frontend_restrictions;

/* Adds one flag's `<api>[,<api>...]:<key>=<value>` to r. `flag` names the
 * flag in errors ("--http-restricted-api"); an error never contains the
 * value. A category restricted already (by this or an earlier flag) is an
 * error naming it; so are an unknown category, a key that is not a header
 * name token, and an empty value. On error r is left as it was. */
inferd_error *frontend_restrictions_add(frontend_restrictions *r, const char *flag, const char *text);
/* Frees the keys and values, leaving every category open. */
void frontend_restrictions_free(frontend_restrictions *r);
/* The restriction of `api`, NULL when it is open (r NULL: all open). */
const frontend_restriction *frontend_restriction_of(const frontend_restrictions *r, frontend_api api);

/* Whether `given` (given_len bytes; NULL: absent) is the restriction's
 * value, in time that does not depend on where they differ. */
bool frontend_restriction_matches(const frontend_restriction *restriction, const char *given, size_t given_len);
/* The PERMISSION_DENIED error for a request to `api` without the right
 * `restriction->key`; `what` is "header" or "metadata key". */
inferd_error *frontend_restriction_denied(const frontend_restriction *restriction, frontend_api api,
                                          const char *what);

#endif
