/*
 * inferd perf: loads a KServe v2 gRPC endpoint (inferd's, or any Triton's)
 * with ModelInfer calls and reports throughput and latency percentiles, for
 * the serving benchmarks (perf_analyzer's PyPI package is a placeholder).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "inferd.h"
#include "tools/perf_grpc.h"

static const cli_option perf_options[] = {
    {"url", "HOST:PORT", "gRPC endpoint (default 127.0.0.1:8001)"},
    {"model", "NAME", "model to load (required)"},
    {"model-version", "N", "model version (default: the latest)"},
    {"concurrency", "N", "calls in flight (default 1)"},
    {"connections", "N", "HTTP/2 connections the calls spread over, at most one per call (default 1, as one client)"},
    {"batch", "N", "batch size put in variable dimensions of the inputs (default 1)"},
    {"warmup", "SECONDS", "unmeasured calls first (default 1)"},
    {"duration", "SECONDS", "measured window (default 5)"},
    {"streaming", NULL, "send the requests on ModelStreamInfer streams (one per connection)"},
    {"shared-memory", "none|system|cuda",
     "where the tensors travel: in the requests (default), or in system or CUDA (GPU 0) shared memory regions "
     "registered with the server, each call its own spans"},
    {"output-shared-memory-size", "BYTES",
     "room of each output in shared memory (default: its size from the metadata)"},
    {"json", NULL, "print the result as JSON"},
    {NULL, NULL, NULL},
};

int cmd_perf(int argc, char **argv) {
  perf_grpc_options o = {.target = "127.0.0.1:8001", .concurrency = 1, .batch = 1, .warmup_s = 1, .duration_s = 5};
  bool json = false;
  long v;
  cli_parser p;
  cli_parser_init(&p, "perf", perf_options, argc, argv);
  const char *name, *value;
  int r;
  while ((r = cli_next(&p, &name, &value)) > 0) {
    bool ok = true;
    if (!strcmp(name, "help")) {
      cli_print_help(stdout, "inferd perf --model=NAME [options]",
                     "Keeps N ModelInfer calls in flight against a KServe v2 gRPC server, with inputs made from the\n"
                     "model's metadata, and reports requests/s and latency percentiles (one client thread).",
                     perf_options);
      return 0;
    } else if (!strcmp(name, "url")) {
      o.target = value;
    } else if (!strcmp(name, "model")) {
      o.model = value;
    } else if (!strcmp(name, "model-version")) {
      o.version = value;
    } else if (!strcmp(name, "concurrency")) {
      ok = cli_parse_int(name, value, 1, 4096, &v);
      o.concurrency = (int)v;
    } else if (!strcmp(name, "connections")) {
      ok = cli_parse_int(name, value, 1, 4096, &v);
      o.connections = (int)v;
    } else if (!strcmp(name, "batch")) {
      ok = cli_parse_int(name, value, 1, 1 << 20, &v);
      o.batch = (int)v;
    } else if (!strcmp(name, "warmup")) {
      ok = cli_parse_int(name, value, 0, 3600, &v);
      o.warmup_s = (double)v;
    } else if (!strcmp(name, "duration")) {
      ok = cli_parse_int(name, value, 1, 3600, &v);
      o.duration_s = (double)v;
    } else if (!strcmp(name, "streaming")) {
      o.streaming = true;
    } else if (!strcmp(name, "shared-memory")) {
      ok = perf_shm_kind_from_name(value, &o.shared_memory);
      if (!ok) fprintf(stderr, "inferd perf: --shared-memory: '%s' is not none, system or cuda\n", value);
    } else if (!strcmp(name, "output-shared-memory-size")) {
      ok = cli_parse_int(name, value, 1, 1L << 40, &v);
      o.output_shm_size = (size_t)v;
    } else if (!strcmp(name, "json")) {
      json = true;
    }
    if (!ok) return 2;
  }
  if (r < 0) return 2;
  if (!o.model) {
    fprintf(stderr, "inferd perf: --model is required (see --help)\n");
    return 2;
  }
  perf_grpc_result res;
  inferd_error *err = perf_grpc_run(&o, &res);
  if (err) {
    fprintf(stderr, "inferd perf: %s\n", inferd_error_message(err));
    inferd_error_delete(err);
    return 1;
  }
  if (json) {
    printf("{\"model\": \"%s\", \"concurrency\": %d, \"batch\": %d, \"shared_memory\": \"%s\", \"seconds\": %.3f, "
           "\"requests\": %llu, \"errors\": %llu, \"requests_per_sec\": %.2f, \"latency_us_mean\": %.1f, "
           "\"latency_us_p50\": %.1f, \"latency_us_p90\": %.1f, \"latency_us_p99\": %.1f}\n",
           o.model, o.concurrency, o.batch, perf_shm_kind_name(o.shared_memory), res.seconds,
           (unsigned long long)res.requests,
           (unsigned long long)res.errors, res.requests_per_sec, res.mean_us, res.p50_us, res.p90_us, res.p99_us);
  } else {
    printf("%s at concurrency %d%s%s: %.1f requests/s, latency mean %.1f us, p50 %.1f us, p90 %.1f us, p99 %.1f us "
           "(%llu requests, %llu errors in %.1f s)\n",
           o.model, o.concurrency, o.shared_memory ? ", shared memory " : "",
           o.shared_memory ? perf_shm_kind_name(o.shared_memory) : "", res.requests_per_sec, res.mean_us, res.p50_us,
           res.p90_us, res.p99_us, (unsigned long long)res.requests, (unsigned long long)res.errors, res.seconds);
  }
  if (res.errors) fprintf(stderr, "inferd perf: first error: %s\n", res.first_error);
  return res.errors && !res.requests ? 1 : 0;
}
