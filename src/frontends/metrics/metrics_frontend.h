/*
 * The metrics endpoint: GET /metrics answers with the Prometheus text
 * exposition of an inferd_metrics object (text/plain; version=0.0.4), on
 * its own port (Triton's 8002) and network thread, so that scrapes never
 * queue behind inference traffic. It reaches the server only through the
 * public API.
 */
#ifndef INFERD_FRONTENDS_METRICS_FRONTEND_H
#define INFERD_FRONTENDS_METRICS_FRONTEND_H

#include "frontends/frontend_tls.h"
#include "inferd.h"

typedef struct metrics_frontend metrics_frontend;

typedef struct metrics_frontend_options {
  const char *address; /* NULL: "0.0.0.0" */
  int port;            /* 0: any free port (see metrics_frontend_port) */
  frontend_tls_options tls; /* HTTPS (use_ssl_mutual is not offered here) */
} metrics_frontend_options;

/* Binds address:port (an error naming both when it cannot) and starts the
 * thread. The metrics must outlive the frontend. */
inferd_error *metrics_frontend_start(inferd_metrics *metrics, const metrics_frontend_options *options,
                                     metrics_frontend **out);
int metrics_frontend_port(const metrics_frontend *f);
/* Stops the thread, closes every connection and frees f. */
void metrics_frontend_delete(metrics_frontend *f);

#endif
