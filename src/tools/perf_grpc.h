/*
 * A gRPC load generator for inferd (or any KServe v2 gRPC server): it asks
 * the server for a model's inputs (ModelMetadata), builds one ModelInferRequest
 * with deterministic raw tensors, and keeps `concurrency` ModelInfer calls in
 * flight for a while on one thread (HTTP/2 by nghttp2 over its own epoll
 * loop, no gRPC library), the way wrk keeps its connections busy, so the
 * generator itself costs little CPU on a machine it shares with the server. Reports throughput and latency
 * percentiles of the calls that completed within the measured window (after
 * the warmup). With `streaming`, the requests travel on one ModelStreamInfer
 * stream per connection instead, as perf_analyzer --streaming does. With
 * `shared_memory`, the tensors are in regions registered with the server
 * and the requests name them, as perf_analyzer --shared-memory does.
 */
#ifndef INFERD_TOOLS_PERF_GRPC_H
#define INFERD_TOOLS_PERF_GRPC_H

#include <stdbool.h>
#include <stdint.h>

#include "inferd.h"
#include "tools/perf_shm.h"

typedef struct perf_grpc_options {
  const char *target;  /* host:port */
  const char *model;
  const char *version; /* NULL or "": latest */
  int concurrency;     /* calls in flight */
  int connections;     /* HTTP/2 connections the calls spread over (at most concurrency); 0: 1 */
  int batch;           /* substituted for variable (-1) dimensions */
  double warmup_s;     /* calls before this are not measured */
  double duration_s;   /* measured window */
  bool streaming;      /* ModelStreamInfer: one stream per connection carries the calls */
  /* Where the tensors travel: in the requests (NONE), or in system or
   * CUDA shared memory regions the run registers (see perf_shm.h). */
  perf_shm_kind shared_memory;
  size_t output_shm_size; /* bytes of each output's span; 0: its size from the metadata */
} perf_grpc_options;

typedef struct perf_grpc_result {
  uint64_t requests; /* completed with OK within the window */
  uint64_t errors;   /* completed with another status in the window */
  double seconds;    /* the window */
  double requests_per_sec;
  double mean_us, p50_us, p90_us, p99_us;
  char first_error[256];
} perf_grpc_result;

inferd_error *perf_grpc_run(const perf_grpc_options *options, perf_grpc_result *result);

#endif
