/*
 * inferd serve: the inference server. Flags are spelled as tritonserver's
 * so that deployments move over unchanged. SIGTERM or SIGINT starts a
 * graceful stop: readiness turns false, new inferences are refused, the
 * requests already accepted complete (up to --exit-timeout-secs; then those
 * still queued are answered UNAVAILABLE and running batches get a short
 * grace), then the process exits 0.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "cli/serve_security.h"
#include "frontends/grpc/grpc_frontend.h"
#include "frontends/http/http_frontend.h"
#include "frontends/metrics/metrics_frontend.h"
#include "inferd.h"

static const cli_option serve_options[] = {
    {"model-repository", "DIR", "model repository folder (required; also --model-store)"},
    {"model-store", "DIR", "same as --model-repository"},
    {"model-control-mode", "MODE", "none (load all at start), poll (also reload changes), explicit (load/unload API)"},
    {"load-model", "NAME", "explicit mode: model to load at start; repeatable; '*' loads all"},
    {"repository-poll-secs", "N", "poll mode: seconds between repository scans (default 15)"},
    {"strict-model-config", "BOOL", "true: config.pbtxt must be complete; false (default): completed from the model"},
    {"http-port", "PORT", "HTTP port (default 8000)"},
    {"http-address", "ADDR", "HTTP address to bind (default 0.0.0.0)"},
    {"http-thread-count", "N", "HTTP network threads (default 8 or the core count, whichever is smaller)"},
    {"http-max-input-size", "BYTES", "largest request body accepted, compressed or not (default 64 MiB)"},
    {"http-max-header-bytes", "BYTES",
     "largest HTTP header block, request line included; over it: 431 and the connection closes (default 65536)"},
    {"http-max-headers", "N", "most header lines an HTTP request may have; over it: 431 (default 100)"},
    {"http-idle-timeout-secs", "N",
     "an HTTP connection silent this long (between requests, or within one) is closed (default 60; 0: never)"},
    {"http-read-timeout-secs", "N",
     "an HTTP request must arrive whole, headers and body, within N s of its first byte, or its connection is closed "
     "(default 30; 0: never)"},
    {"allow-http", "BOOL", "serve HTTP (default true)"},
    {"grpc-port", "PORT", "gRPC port (default 8001)"},
    {"grpc-address", "ADDR", "gRPC address to bind (default 0.0.0.0)"},
    {"allow-grpc", "BOOL", "serve gRPC (default true)"},
    {"grpc-thread-count", "N", "gRPC network threads (default: half the cores, 1 to 8)"},
    {"grpc-idle-timeout-secs", "N",
     "a gRPC connection with no call open and nothing received for N s gets GOAWAY and is closed (default 300; 0: "
     "never); one that does not complete the HTTP/2 preface and settings within --http-read-timeout-secs is closed"},
    {"grpc-max-inflight-per-connection", "N",
     "inference requests one gRPC connection may have with the server; past it the connection is not read until "
     "answers come back (default 256)"},
    {"max-inflight-bytes", "BYTES",
     "bytes of tensors held for requests accepted and not yet answered, over all models, HTTP and gRPC (inputs, "
     "and outputs whose size is known); a request past it gets 503 / UNAVAILABLE with a retry hint (default 2 GiB "
     "or a quarter of the physical memory, whichever is less; 0: no bound)"},
    {"max-connections", "N",
     "connections open at once on each of HTTP and gRPC (counted apart); past it a new one is accepted and closed "
     "at once, over plain HTTP after a 503 JSON error (default 10000)"},
    {"grpc-infer-allocation-pool-size", "N", "gRPC call objects kept for reuse (default 8)"},
    {"grpc-keepalive-time", "MS", "gRPC keepalive ping period in ms (default 7200000)"},
    {"grpc-keepalive-timeout", "MS", "gRPC keepalive ping answer timeout in ms (default 20000)"},
    {"grpc-use-ssl", "BOOL", "serve gRPC over TLS (default false; needs --grpc-server-cert and --grpc-server-key)"},
    {"grpc-use-ssl-mutual", "BOOL", "TLS with client certificates verified against --grpc-root-cert (default false)"},
    {"grpc-server-cert", "FILE", "PEM certificate (chain) of the gRPC server"},
    {"grpc-server-key", "FILE", "PEM private key of the gRPC server"},
    {"grpc-root-cert", "FILE", "PEM CA certificate that client certificates must chain to"},
    {"grpc-max-message-size", "BYTES", "largest gRPC message, each way (default 2147483647)"},
    {"grpc-infer-response-compression-level", "LEVEL",
     "none (default), low, medium or high: inference responses compressed with an algorithm the client accepts"},
    {"allow-metrics", "BOOL", "serve Prometheus metrics at GET /metrics (default true)"},
    {"allow-gpu-metrics", "BOOL", "GPU metrics from NVML, when a GPU and libnvidia-ml.so.1 are found (default true)"},
    {"allow-cpu-metrics", "BOOL", "CPU utilization and memory metrics from /proc (default true)"},
    {"metrics-port", "PORT", "metrics port (default 8002)"},
    {"metrics-address", "ADDR", "metrics address to bind (default: the --http-address, or 0.0.0.0 without HTTP)"},
    {"metrics-interval-ms", "MS", "how often GPU and CPU metrics are polled (default 2000)"},
    {"metrics-config", "KEY=VALUE",
     "summary_latencies=true (latency quantile summaries), summary_quantiles=0.5:0.05,0.9:0.01,0.99:0.001, "
     "counter_latencies=false (no *_duration_us counters); repeatable"},
    {"exit-timeout-secs", "N",
     "on SIGTERM/SIGINT, how long to wait for requests in flight (default 30); then queued ones are answered "
     "UNAVAILABLE, gRPC streams still open and HTTP answers still being read are closed (at least 1 s after the "
     "last answer), running batches get up to 5 s more, and the process exits 0"},
    {"instance-threads", "N", "CPU threads per model instance (default: cores / CPU instances)"},
    {"cuda-memory-pool-byte-size", "GPU:BYTES",
     "GPU memory pool of GPU number GPU, in bytes (default 67108864 per GPU); repeatable, one per GPU"},
    {"pinned-memory-pool-byte-size", "BYTES", "page-locked host memory pool, in bytes (default 268435456; 0: none)"},
    {"min-supported-compute-capability", "CC",
     "GPUs below this CUDA compute capability are not used (default 6.0); KIND_AUTO models go to the CPU then"},
    {"log-verbose", "N", "verbose logging at level N (0 = off)"},
    {"log-format", "FORMAT", "default or ISO8601"},
    {"id", "ID", "server id reported by server metadata (default inferd)"},
    SERVE_SECURITY_OPTIONS,
    {NULL, NULL, NULL},
};

static bool parse_bool(const char *option, const char *text, bool *out) { return cli_parse_bool(option, text, out); }

/* One --metrics-config KEY=VALUE, with Triton's keys. */
static bool parse_metrics_config(const char *text, inferd_server_options *so, inferd_metrics_options *mo) {
  const char *eq = strchr(text, '=');
  if (!eq || eq == text) {
    fprintf(stderr, "inferd serve: --metrics-config: '%s' is not KEY=VALUE\n", text);
    return false;
  }
  size_t klen = (size_t)(eq - text);
  const char *value = eq + 1;
  if (klen == strlen("summary_latencies") && !strncmp(text, "summary_latencies", klen))
    return parse_bool("metrics-config summary_latencies", value, &so->latency_summaries);
  if (klen == strlen("counter_latencies") && !strncmp(text, "counter_latencies", klen))
    return parse_bool("metrics-config counter_latencies", value, &mo->counter_latencies);
  if (klen == strlen("summary_quantiles") && !strncmp(text, "summary_quantiles", klen)) {
    mo->summary_quantiles = value; /* checked when the metrics are made */
    return true;
  }
  fprintf(stderr,
          "inferd serve: --metrics-config: unknown key '%.*s' (summary_latencies, summary_quantiles, counter_latencies)\n",
          (int)klen, text);
  return false;
}

/* After --exit-timeout-secs, how long batches already running may take to
 * finish before the process exits without them. */
enum { EXIT_RUNNING_GRACE_SECS = 5 };

/* The default of --max-inflight-bytes: 2 GiB, or a quarter of the physical
 * memory on a smaller machine, so that a flood of large requests is
 * refused before it can take the memory the models need. */
static uint64_t default_max_inflight_bytes(void) {
  const uint64_t most = 2ull << 30;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return most;
  const uint64_t quarter = (uint64_t)pages / 4 * (uint64_t)page;
  return quarter < most ? quarter : most;
}

/* One --cuda-memory-pool-byte-size=<gpu>:<bytes>, as Triton spells it. */
static bool parse_cuda_pool(const char *text, inferd_cuda_memory_pool *pools, int *count) {
  static const char option[] = "cuda-memory-pool-byte-size";
  const char *colon = strchr(text, ':');
  char gpu_text[32];
  if (!colon || colon == text || (size_t)(colon - text) >= sizeof(gpu_text) || !colon[1]) {
    fprintf(stderr, "inferd serve: --%s: '%s' is not <gpu>:<bytes> (e.g. 0:268435456)\n", option, text);
    return false;
  }
  memcpy(gpu_text, text, (size_t)(colon - text));
  gpu_text[colon - text] = 0;
  long gpu, bytes;
  if (!cli_parse_int(option, gpu_text, 0, 1023, &gpu) || !cli_parse_int(option, colon + 1, 0, LONG_MAX, &bytes))
    return false;
  for (int i = 0; i < *count; i++)
    if (pools[i].gpu == gpu) {
      fprintf(stderr, "inferd serve: --%s: GPU %ld is given twice\n", option, gpu);
      return false;
    }
  pools[(*count)++] = (inferd_cuda_memory_pool){.gpu = (int)gpu, .byte_size = (uint64_t)bytes};
  return true;
}

/* Triton's --min-supported-compute-capability: a number such as 7.5. */
static bool parse_compute_capability(const char *text, double *out) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (errno || end == text || *end || !isfinite(v) || v < 0 || v > 100) {
    fprintf(stderr, "inferd serve: --min-supported-compute-capability: '%s' is not a compute capability such as "
                    "7.5 (a number from 0 to 100)\n",
            text);
    return false;
  }
  *out = v;
  return true;
}

static int serve(int argc, char **argv, serve_security *security) {
  inferd_server_options so = {.repository_poll_secs = 15,
                              .pinned_memory_pool_byte_size = 256u << 20,
                              .max_inflight_bytes = default_max_inflight_bytes()};
  inferd_cuda_memory_pool *pools = mem_zalloc((size_t)(argc + 1) * sizeof(*pools));
  int n_pools = 0;
  http_frontend_options ho = {.address = "0.0.0.0", .port = 8000, .threads = 0, .max_input_size = 64u << 20};
  const char **startup = mem_zalloc((size_t)(argc + 1) * sizeof(char *));
  int n_startup = 0;
  grpc_frontend_options go = {.address = "0.0.0.0", .port = 8001, .infer_allocation_pool_size = 8};
  bool allow_http = true, allow_grpc = true, allow_metrics = true;
  inferd_metrics_options mo = {.gpu = true, .cpu = true, .counter_latencies = true, .interval_ms = 2000};
  metrics_frontend_options fo = {.address = NULL, .port = 8002};
  long exit_timeout = 30, verbose = 0, value_long;
  log_format format = LOG_FORMAT_DEFAULT;
  cli_parser p;
  cli_parser_init(&p, "serve", serve_options, argc, argv);
  const char *name, *value;
  int r;
  while ((r = cli_next(&p, &name, &value)) > 0) {
    bool ok = true;
    if (!strcmp(name, "help")) {
      cli_print_help(stdout, "inferd serve --model-repository=DIR [options]",
                     "Serves the models of a Triton-style repository over HTTP/REST and gRPC (KServe v2 protocol with\n"
                     "Triton's extensions), batching requests dynamically as each model's config.pbtxt says. Prometheus\n"
                     "metrics (Triton's names and labels) are served at GET /metrics on --metrics-port. Instance groups\n"
                     "of kind KIND_GPU run on the GPUs they list (all when none), KIND_AUTO on the GPUs when there are\n"
                     "any, else on the CPU; docs/gpu.md describes GPU serving and precisions.",
                     serve_options);
      free(startup);
      free(pools);
      return 0;
    } else if (!strcmp(name, "model-repository") || !strcmp(name, "model-store")) {
      so.model_repository = value;
    } else if (!strcmp(name, "model-control-mode")) {
      if (!strcmp(value, "none")) so.model_control_mode = INFERD_MODEL_CONTROL_NONE;
      else if (!strcmp(value, "poll")) so.model_control_mode = INFERD_MODEL_CONTROL_POLL;
      else if (!strcmp(value, "explicit")) so.model_control_mode = INFERD_MODEL_CONTROL_EXPLICIT;
      else {
        fprintf(stderr, "inferd serve: --model-control-mode: '%s' is not none, poll or explicit\n", value);
        ok = false;
      }
    } else if (!strcmp(name, "load-model")) {
      startup[n_startup++] = value;
    } else if (!strcmp(name, "repository-poll-secs")) {
      ok = cli_parse_int(name, value, 1, 86400, &value_long);
      so.repository_poll_secs = (int)value_long;
    } else if (!strcmp(name, "strict-model-config")) {
      ok = parse_bool(name, value, &so.strict_model_config);
    } else if (!strcmp(name, "http-port")) {
      ok = cli_parse_int(name, value, 0, 65535, &value_long);
      ho.port = (int)value_long;
    } else if (!strcmp(name, "http-address")) {
      ho.address = value;
    } else if (!strcmp(name, "http-thread-count")) {
      ok = cli_parse_int(name, value, 1, 256, &value_long);
      ho.threads = (int)value_long;
    } else if (!strcmp(name, "http-max-input-size")) {
      ok = cli_parse_int(name, value, 1, 1L << 40, &value_long);
      ho.max_input_size = (size_t)value_long;
    } else if (!strcmp(name, "http-max-header-bytes")) {
      ok = cli_parse_int(name, value, 1024, 1L << 30, &value_long);
      ho.max_header_bytes = (size_t)value_long;
    } else if (!strcmp(name, "http-max-headers")) {
      ok = cli_parse_int(name, value, 1, 1 << 20, &value_long);
      ho.max_headers = (int)value_long;
    } else if (!strcmp(name, "http-idle-timeout-secs") || !strcmp(name, "http-read-timeout-secs") ||
               !strcmp(name, "grpc-idle-timeout-secs")) {
      /* 0 means never here; the frontends take 0 as their default. */
      ok = cli_parse_int(name, value, 0, 86400, &value_long);
      const int secs = value_long ? (int)value_long : -1;
      if (!strcmp(name, "http-idle-timeout-secs")) ho.idle_timeout_secs = secs;
      else if (!strcmp(name, "http-read-timeout-secs")) ho.read_timeout_secs = go.handshake_timeout_secs = secs;
      else go.idle_timeout_secs = secs;
    } else if (!strcmp(name, "grpc-max-inflight-per-connection")) {
      ok = cli_parse_int(name, value, 1, 1 << 20, &value_long);
      go.max_inflight_per_connection = (int)value_long;
    } else if (!strcmp(name, "max-inflight-bytes")) {
      ok = cli_parse_int(name, value, 0, LONG_MAX, &value_long);
      so.max_inflight_bytes = (uint64_t)value_long;
    } else if (!strcmp(name, "max-connections")) {
      ok = cli_parse_int(name, value, 1, 1 << 24, &value_long);
      go.max_connections = ho.max_connections = (int)value_long;
    } else if (!strcmp(name, "allow-http")) {
      ok = parse_bool(name, value, &allow_http);
    } else if (!strcmp(name, "grpc-port")) {
      ok = cli_parse_int(name, value, 0, 65535, &value_long);
      go.port = (int)value_long;
    } else if (!strcmp(name, "grpc-address")) {
      go.address = value;
    } else if (!strcmp(name, "grpc-thread-count")) {
      ok = cli_parse_int(name, value, 1, 256, &value_long);
      go.threads = (int)value_long;
    } else if (!strcmp(name, "allow-grpc")) {
      ok = parse_bool(name, value, &allow_grpc);
    } else if (!strcmp(name, "grpc-infer-allocation-pool-size")) {
      ok = cli_parse_int(name, value, 0, 1 << 20, &value_long);
      go.infer_allocation_pool_size = (int)value_long;
    } else if (!strcmp(name, "grpc-keepalive-time")) {
      ok = cli_parse_int(name, value, 1, INT_MAX, &value_long);
      go.keepalive_time_ms = (int)value_long;
    } else if (!strcmp(name, "grpc-keepalive-timeout")) {
      ok = cli_parse_int(name, value, 1, INT_MAX, &value_long);
      go.keepalive_timeout_ms = (int)value_long;
    } else if (!strcmp(name, "grpc-use-ssl")) {
      ok = parse_bool(name, value, &go.use_ssl);
    } else if (!strcmp(name, "grpc-use-ssl-mutual")) {
      ok = parse_bool(name, value, &go.use_ssl_mutual);
    } else if (!strcmp(name, "grpc-server-cert")) {
      go.server_cert = value;
    } else if (!strcmp(name, "grpc-server-key")) {
      go.server_key = value;
    } else if (!strcmp(name, "grpc-root-cert")) {
      go.root_cert = value;
    } else if (!strcmp(name, "grpc-infer-response-compression-level")) {
      static const char *const levels[] = {"none", "low", "medium", "high"};
      go.response_compression_level = -1;
      for (int i = 0; i < 4; i++)
        if (!strcmp(value, levels[i])) go.response_compression_level = i;
      if (go.response_compression_level < 0) {
        fprintf(stderr, "inferd serve: --%s: '%s' is not none, low, medium or high\n", name, value);
        ok = false;
      }
    } else if (!strcmp(name, "grpc-max-message-size")) {
      ok = cli_parse_int(name, value, 1, INT_MAX, &value_long);
      go.max_message_size = (int)value_long;
    } else if (!strcmp(name, "allow-metrics")) {
      ok = parse_bool(name, value, &allow_metrics);
    } else if (!strcmp(name, "allow-gpu-metrics")) {
      ok = parse_bool(name, value, &mo.gpu);
    } else if (!strcmp(name, "allow-cpu-metrics")) {
      ok = parse_bool(name, value, &mo.cpu);
    } else if (!strcmp(name, "metrics-port")) {
      ok = cli_parse_int(name, value, 0, 65535, &value_long);
      fo.port = (int)value_long;
    } else if (!strcmp(name, "metrics-address")) {
      fo.address = value;
    } else if (!strcmp(name, "metrics-interval-ms")) {
      ok = cli_parse_int(name, value, 1, 3600000, &value_long);
      mo.interval_ms = (int)value_long;
    } else if (!strcmp(name, "metrics-config")) {
      ok = parse_metrics_config(value, &so, &mo);
    } else if (!strcmp(name, "exit-timeout-secs")) {
      ok = cli_parse_int(name, value, 0, 86400, &exit_timeout);
    } else if (!strcmp(name, "instance-threads")) {
      ok = cli_parse_int(name, value, 1, 1024, &value_long);
      so.threads_per_instance = (int)value_long;
    } else if (!strcmp(name, "cuda-memory-pool-byte-size")) {
      ok = parse_cuda_pool(value, pools, &n_pools);
    } else if (!strcmp(name, "pinned-memory-pool-byte-size")) {
      ok = cli_parse_int(name, value, 0, LONG_MAX, &value_long);
      so.pinned_memory_pool_byte_size = (uint64_t)value_long;
    } else if (!strcmp(name, "min-supported-compute-capability")) {
      ok = parse_compute_capability(value, &so.min_compute_capability);
    } else if (!strcmp(name, "log-verbose")) {
      ok = cli_parse_int(name, value, 0, 100, &verbose);
    } else if (!strcmp(name, "log-format")) {
      if (!strcmp(value, "default")) format = LOG_FORMAT_DEFAULT;
      else if (!strcmp(value, "ISO8601")) format = LOG_FORMAT_ISO8601;
      else {
        fprintf(stderr, "inferd serve: --log-format: '%s' is not default or ISO8601\n", value);
        ok = false;
      }
    } else if (!strcmp(name, "id")) {
      so.server_id = value;
    } else {
      ok = serve_security_option(security, name, value) >= 0;
    }
    if (!ok) {
      free(startup);
      free(pools);
      return 2;
    }
  }
  if (r < 0 || !so.model_repository) {
    if (r >= 0) fprintf(stderr, "inferd serve: --model-repository is required (see --help)\n");
    free(startup);
    free(pools);
    return 2;
  }
  if (n_startup && so.model_control_mode != INFERD_MODEL_CONTROL_EXPLICIT) {
    fprintf(stderr, "inferd serve: --load-model needs --model-control-mode=explicit\n");
    free(startup);
    free(pools);
    return 2;
  }
  /* Triton's --grpc-use-ssl-mutual implies TLS. */
  if (go.use_ssl_mutual) go.use_ssl = true;
  serve_security_finish(security);
  ho.restricted = &security->http_restricted;
  ho.tls = security->http_tls;
  go.restricted = &security->grpc_restricted;
  fo.tls = security->metrics_tls;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (!ho.threads) ho.threads = cores < 1 ? 1 : cores > 8 ? 8 : (int)cores;
  if (!go.threads) go.threads = cores < 4 ? 1 : cores / 2 > 8 ? 8 : (int)(cores / 2);
  if (!fo.address) fo.address = allow_http ? ho.address : "0.0.0.0";
  so.startup_models = startup;
  so.startup_model_count = n_startup;
  so.cuda_memory_pools = pools;
  so.cuda_memory_pool_count = n_pools;
  log_configure(verbose > 0 ? LOG_VERBOSE : LOG_INFO, format);

  /* Block the stop signals in every thread; the main thread waits for them. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);
  signal(SIGPIPE, SIG_IGN);

  inferd_server *server = NULL;
  http_frontend *http = NULL;
  grpc_frontend *grpc = NULL;
  inferd_metrics *metrics = NULL;
  metrics_frontend *metrics_http = NULL;
  inferd_error *e = inferd_server_create(&so, &server);
  if (!e && allow_http) e = http_frontend_start(server, &ho, &http);
  if (!e && allow_grpc) e = grpc_frontend_start(server, &go, &grpc);
  if (!e && allow_metrics) e = inferd_metrics_create(server, &mo, &metrics);
  if (!e && allow_metrics) e = metrics_frontend_start(metrics, &fo, &metrics_http);
  if (e) {
    log_error("%s", inferd_error_message(e));
    inferd_error_delete(e);
    metrics_frontend_delete(metrics_http);
    inferd_metrics_delete(metrics);
    grpc_frontend_delete(grpc);
    http_frontend_delete(http);
    inferd_server_delete(server);
    free(startup);
    free(pools);
    return 1;
  }
  int sig = 0;
  sigwait(&stop, &sig);
  const uint64_t stop_ns = clock_now_ns();
  log_info("received %s: no new requests; waiting up to %ld s for those in flight", sig == SIGINT ? "SIGINT" : "SIGTERM",
           exit_timeout);
  inferd_server_stop_accepting(server);
  if (http) http_frontend_stop_listening(http);
  if (grpc) grpc_frontend_stop_listening(grpc);
  int left = inferd_server_drain(server, (int)exit_timeout * 1000);
  if (left) {
    /* The timeout is a bound: what has not started never will, and what
     * runs gets a short grace to finish, so that its answer still goes out. */
    int cancelled = inferd_server_cancel_queued(server);
    log_warn("exit timeout: %d requests still in flight; %d queued ones answered UNAVAILABLE, waiting up to %d s for "
             "the running ones",
             left, cancelled, EXIT_RUNNING_GRACE_SECS);
    left = inferd_server_drain(server, EXIT_RUNNING_GRACE_SECS * 1000);
    if (left) {
      /* A batch still running cannot be interrupted: leave it behind. */
      log_warn("exit timeout: abandoning %d running requests", left);
      log_flush_suppressed();
      fflush(NULL);
      _exit(0);
    }
  }
  /* gRPC calls a client keeps open (a stream, idle now: every answer is
   * given) and HTTP responses a client reads slowly end when the exit
   * timeout passes, counted from the signal, not 10 s after the drain (which
   * made a 10 s timeout 20 s), and never more than those 10 s; they get at
   * least 1 s (the whole timeout when it is shorter) for the last answers to
   * be written. */
  enum { FRONTEND_GRACE_MAX_MS = 10000 };
  const int64_t spent_ms = (int64_t)((clock_now_ns() - stop_ns) / 1000000u);
  const int64_t left_ms = exit_timeout * 1000 - spent_ms;
  const int64_t floor_ms = exit_timeout >= 1 ? 1000 : 1;
  const int grace_ms = (int)(left_ms > FRONTEND_GRACE_MAX_MS ? FRONTEND_GRACE_MAX_MS
                             : left_ms > floor_ms             ? left_ms
                                                              : floor_ms);
  if (grpc) grpc_frontend_set_shutdown_grace(grpc, grace_ms);
  if (http) http_frontend_set_shutdown_grace(http, grace_ms);
  grpc_frontend_delete(grpc);
  http_frontend_delete(http);
  /* Metrics stay served through the drain, so a scraper sees it. */
  metrics_frontend_delete(metrics_http);
  inferd_metrics_delete(metrics);
  inferd_server_delete(server);
  free(startup);
  free(pools);
  log_flush_suppressed();
  log_info("stopped");
  return 0;
}

int cmd_serve(int argc, char **argv) {
  /* The security flags' values (restricted-API keys) are freed, and wiped,
   * on every way out. */
  serve_security security;
  serve_security_init(&security);
  const int rc = serve(argc, argv, &security);
  serve_security_free(&security);
  return rc;
}
