/*
 * The REST paths of the KServe v2 protocol and Triton's extensions, parsed
 * into a route: which endpoint, which model and version, which method it
 * takes. Pure string work, so it is tested without a server.
 */
#ifndef INFERD_FRONTENDS_HTTP_ROUTE_H
#define INFERD_FRONTENDS_HTTP_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum http_route_kind {
  HTTP_ROUTE_NOT_FOUND = 0,
  HTTP_ROUTE_SERVER_METADATA,  /* GET /v2 */
  HTTP_ROUTE_HEALTH_LIVE,      /* GET /v2/health/live */
  HTTP_ROUTE_HEALTH_READY,     /* GET /v2/health/ready */
  HTTP_ROUTE_MODEL_METADATA,   /* GET /v2/models/{m}[/versions/{v}] */
  HTTP_ROUTE_MODEL_READY,      /* GET .../ready */
  HTTP_ROUTE_MODEL_CONFIG,     /* GET .../config */
  HTTP_ROUTE_MODEL_STATS,      /* GET /v2/models[/{m}[/versions/{v}]]/stats */
  HTTP_ROUTE_INFER,            /* POST .../infer */
  HTTP_ROUTE_REPOSITORY_INDEX, /* POST /v2/repository/index */
  HTTP_ROUTE_MODEL_LOAD,       /* POST /v2/repository/models/{m}/load */
  HTTP_ROUTE_MODEL_UNLOAD,     /* POST /v2/repository/models/{m}/unload */
  HTTP_ROUTE_BAD_VERSION,      /* a version segment that is not a number */
  /* Shared memory, under /v2/systemsharedmemory or /v2/cudasharedmemory
   * (route.shm_kind says which): */
  HTTP_ROUTE_SHM_STATUS,     /* GET .../status, GET .../region/{r}/status */
  HTTP_ROUTE_SHM_REGISTER,   /* POST .../region/{r}/register */
  HTTP_ROUTE_SHM_UNREGISTER, /* POST .../unregister, POST .../region/{r}/unregister */
  HTTP_ROUTE_KIND_COUNT_
} http_route_kind;

typedef enum http_method { HTTP_METHOD_GET = 1, HTTP_METHOD_POST = 2 } http_method;

typedef struct http_route {
  http_route_kind kind;
  http_method method; /* the one the endpoint takes */
  char *model;        /* percent-decoded; NULL when the route has none; free() */
  int64_t version;    /* -1: latest */
  char *region;       /* shared-memory routes: the region, percent-decoded; NULL for all; free() */
  int shm_kind;       /* shared-memory routes: an inferd_shm_kind */
} http_route;

/* Parses the path part of a request URI (no query). Never fails: unknown
 * paths are HTTP_ROUTE_NOT_FOUND. */
void http_route_parse(const char *path, http_route *route);
void http_route_free(http_route *route);

#endif
