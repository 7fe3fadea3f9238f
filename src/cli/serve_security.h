/*
 * inferd serve's security flags, kept apart from the other flags: Triton's
 * restricted APIs (--http-restricted-api, --grpc-restricted-protocol) and
 * TLS on HTTP and on the metrics endpoint (inferd's own flags, named after
 * Triton's --grpc-use-ssl family). gRPC's TLS flags are Triton's and stay
 * with the other gRPC flags in cmd_serve.c.
 *
 * The restricted-API values are secrets: no message printed here repeats
 * them (frontend_restricted.h), and nothing logs the flags.
 */
#ifndef INFERD_CLI_SERVE_SECURITY_H
#define INFERD_CLI_SERVE_SECURITY_H

#include <stdbool.h>

#include "frontends/frontend_restricted.h"
#include "frontends/frontend_tls.h"

/* The rows of inferd serve's option table. */
#define SERVE_SECURITY_OPTIONS                                                                                    \
  {"http-restricted-api", "API[,API...]:HEADER=VALUE",                                                            \
   "requests to these categories (health, metadata, inference, shared-memory, model-config, "                     \
   "model-repository, statistics, trace, logging) need HEADER: VALUE, else 403; repeatable, each category once"}, \
  {"grpc-restricted-protocol", "API[,API...]:KEY=VALUE",                                                          \
   "gRPC calls of these categories need metadata KEY: VALUE, else PERMISSION_DENIED; repeatable, "                \
   "each category once"},                                                                                         \
  {"http-use-ssl", "BOOL",                                                                                        \
   "serve HTTP over TLS (default false; needs --http-server-cert and --http-server-key)"},                        \
  {"http-use-ssl-mutual", "BOOL",                                                                                 \
   "HTTPS with client certificates verified against --http-root-cert (default false; implies "                    \
   "--http-use-ssl)"},                                                                                            \
  {"http-server-cert", "FILE",                                                                                    \
   "PEM certificate (chain) of the HTTP server"},                                                                 \
  {"http-server-key", "FILE",                                                                                     \
   "PEM private key of the HTTP server"},                                                                         \
  {"http-root-cert", "FILE",                                                                                      \
   "PEM CA certificate that HTTP client certificates must chain to"},                                             \
  {"metrics-use-ssl", "BOOL",                                                                                     \
   "serve /metrics over TLS (default false), with --metrics-server-cert and --metrics-server-key, "               \
   "or else the HTTP ones"},                                                                                      \
  {"metrics-server-cert", "FILE",                                                                                 \
   "PEM certificate (chain) of the metrics endpoint (default: --http-server-cert)"},                              \
  {"metrics-server-key", "FILE",                                                                                  \
   "PEM private key of the metrics endpoint (default: --http-server-key)"}

typedef struct serve_security {
  frontend_restrictions http_restricted, grpc_restricted;
  frontend_tls_options http_tls, metrics_tls;
} serve_security;

void serve_security_init(serve_security *s);
/* One flag: 1 when it is one of these and valid, 0 when it is not one of
 * these, -1 when it is invalid (the message, naming the flag, printed). */
int serve_security_option(serve_security *s, const char *name, const char *value);
/* After the last flag: the metrics endpoint's files default to HTTP's. */
void serve_security_finish(serve_security *s);
void serve_security_free(serve_security *s);

#endif
