/*
 * The gRPC frontend: the KServe v2 GRPCInferenceService (package
 * `inference`, see grpc_service.proto) over HTTP/2 (nghttp2 on libevent loops),
 * with `threads` loop threads. It reaches the server only through
 * the public API in inferd.h, so its requests queue and batch with the HTTP
 * frontend's.
 *
 * Shutdown, gracefully (the same order as HTTP's): grpc_frontend_stop_listening,
 * then the server's stop_accepting and drain, then grpc_frontend_delete. While
 * the server drains, calls are still taken and answered, so that a new
 * inference is refused with UNAVAILABLE (in the stream, for a stream) rather
 * than cut off; delete stops taking calls, waits for the calls still open to
 * finish (cancelling those left after a grace period), joins the threads and
 * frees everything.
 */
#ifndef INFERD_FRONTENDS_GRPC_FRONTEND_H
#define INFERD_FRONTENDS_GRPC_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>

#include "frontends/frontend_restricted.h"
#include "inferd.h"

typedef struct grpc_frontend grpc_frontend;

typedef struct grpc_frontend_options {
  const char *address; /* NULL: "0.0.0.0" */
  int port;            /* 0: any free port (see grpc_frontend_port) */
  int threads;         /* loop threads; <= 0: 1 */
  /* Call objects kept for reuse once their call ends (Triton's
   * --grpc-infer-allocation-pool-size); calls beyond it are allocated and
   * freed. 0: keep none. */
  int infer_allocation_pool_size;
  int keepalive_time_ms;    /* HTTP/2 keepalive ping period; 0: 2 hours */
  int keepalive_timeout_ms; /* wait for a ping's answer; 0: 20 s */
  /* How long delete lets calls still open (a stream its client keeps open)
   * go on before it closes their connections; 0: 10 s. */
  int shutdown_grace_ms;
  int max_message_size;     /* bytes a message may have, each way; 0: INT32_MAX */
  bool use_ssl;
  const char *server_cert; /* PEM files, needed with use_ssl */
  const char *server_key;
  const char *root_cert;   /* CA for client certificates, needed with use_ssl_mutual */
  bool use_ssl_mutual;     /* require and verify a client certificate */
  /* Inference responses (ModelInfer, the stream) compressed at this level
   * with an algorithm the client accepts (Triton's
   * --grpc-infer-response-compression-level): 0 none, 1 low, 2 medium,
   * 3 high. */
  int response_compression_level;
  /* A connection with no call open and nothing received for this long gets
   * GOAWAY and is closed; 0: 300 s, < 0: never. */
  int idle_timeout_secs;
  /* A connection that has not sent the HTTP/2 preface and its SETTINGS
   * (TLS handshake included) this long after it was accepted is closed;
   * 0: 30 s, < 0: never. */
  int handshake_timeout_secs;
  /* Inference requests of one connection the server may hold at once (the
   * stream's and unary calls'); past it the connection is not read until
   * answers come back, so a client that sends without reading is slowed,
   * not queued without bound. 0: 256. */
  int max_inflight_per_connection;
  /* Connections open at once over the loops; past it a new connection is
   * closed as soon as it is accepted. 0: 10000. */
  int max_connections;
  /* Categories that need a metadata key (--grpc-restricted-protocol);
   * NULL: all open. Borrowed: it must outlive the frontend. */
  const frontend_restrictions *restricted;
} grpc_frontend_options;

/* Binds address:port (an error naming both when it cannot) and starts the
 * threads. The server must outlive the frontend. */
inferd_error *grpc_frontend_start(inferd_server *server, const grpc_frontend_options *options, grpc_frontend **out);
/* The port bound, useful when options->port was 0. */
int grpc_frontend_port(const grpc_frontend *f);
/* Graceful drain, step 1. Calls go on being taken and answered (see above);
 * this only marks the start of the drain in the log. */
void grpc_frontend_stop_listening(grpc_frontend *f);
/* Sets the grace delete gives the calls still open (shutdown_grace_ms) to
 * `ms` (<= 0: 1 ms), for a caller that counts it from a deadline of its own
 * (inferd serve: what is left of the exit timeout). Called before delete. */
void grpc_frontend_set_shutdown_grace(grpc_frontend *f, int ms);
/* Waits for the open calls to end (cancelling those still open after a
 * grace period), joins the threads and frees f. NULL is ignored. */
void grpc_frontend_delete(grpc_frontend *f);

#endif
