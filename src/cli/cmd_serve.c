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
#include <stddef.h>
#include <stdint.h>
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

typedef struct serve_flag serve_flag;
enum { IGNORED_FLAGS_MAX = 32 };

/* Everything the flags set. */
typedef struct serve_config {
  inferd_server_options so;
  http_frontend_options ho;
  grpc_frontend_options go;
  inferd_metrics_options mo;
  metrics_frontend_options fo;
  bool allow_http, allow_grpc, allow_metrics;
  long exit_timeout, verbose;
  log_format format;
  bool log_info, log_warning, log_error;
  const char *log_file;
  const char **startup; /* --load-model, argc of room */
  int n_startup;
  inferd_cuda_memory_pool *pools; /* --cuda-memory-pool-byte-size, argc of room */
  int n_pools;
  const serve_flag *ignored[IGNORED_FLAGS_MAX]; /* accepted and ignored, warned about once logging is set */
  int n_ignored;
} serve_config;

/* How a flag's value is read into its field of serve_config: text kept as
 * given, an integer in [min, max] (stored at the field's width), a bool, one
 * of `choices` (its index, into an int-sized field), or a call of its own. */
typedef enum flag_kind { FLAG_TEXT, FLAG_INT, FLAG_BOOL, FLAG_CHOICE, FLAG_CALL, FLAG_IGNORED } flag_kind;

struct serve_flag {
  cli_option option; /* name, placeholder and help, as --help prints them */
  flag_kind kind;
  size_t offset, size; /* the field */
  long min, max;
  const char *const *choices; /* NULL-terminated */
  bool (*call)(serve_config *c, const char *name, const char *value);
  const char *why; /* FLAG_IGNORED: why it has no meaning here */
};

/* The rows' bindings. */
#define FIELD_(f) .offset = offsetof(serve_config, f), .size = sizeof(((serve_config *)0)->f)
#define TEXT(f) .kind = FLAG_TEXT, FIELD_(f)
#define BOOL(f) .kind = FLAG_BOOL, FIELD_(f)
#define INT(f, lo, hi) .kind = FLAG_INT, FIELD_(f), .min = (lo), .max = (hi)
#define CHOICE(f, names) .kind = FLAG_CHOICE, FIELD_(f), .choices = (names)
#define CALL(fn) .kind = FLAG_CALL, .call = (fn)
#define IGNORED(reason) .kind = FLAG_IGNORED, .why = (reason)

static const char *const control_modes[] = {"none", "poll", "explicit", NULL}; /* inferd_model_control_mode's order */
static const char *const compression_levels[] = {"none", "low", "medium", "high", NULL};
static const char *const log_formats[] = {"default", "ISO8601", NULL}; /* log_format's order */

static bool add_startup_model(serve_config *c, const char *name, const char *value);
static bool set_timeout(serve_config *c, const char *name, const char *value);
static bool set_max_connections(serve_config *c, const char *name, const char *value);
static bool parse_metrics_config(serve_config *c, const char *name, const char *value);
static bool parse_cuda_pool(serve_config *c, const char *name, const char *value);
static bool parse_compute_capability(serve_config *c, const char *name, const char *value);

/* Every flag but the security ones (serve_security.h), one row each. */
static const serve_flag serve_flags[] = {
    {{"model-repository", "DIR", "model repository folder (required; also --model-store)"}, TEXT(so.model_repository)},
    {{"model-store", "DIR", "same as --model-repository"}, TEXT(so.model_repository)},
    {{"model-control-mode", "MODE", "none (load all at start), poll (also reload changes), explicit (load/unload API)"}, CHOICE(so.model_control_mode, control_modes)},
    {{"load-model", "NAME", "explicit mode: model to load at start; repeatable; '*' loads all"}, CALL(add_startup_model)},
    {{"repository-poll-secs", "N", "poll mode: seconds between repository scans (default 15)"}, INT(so.repository_poll_secs, 1, 86400)},
    {{"exit-on-error", "BOOL",
      "true (default): a model that fails to load at startup stops the server, exit status 1; false: it is "
      "reported (log, repository index) and the others serve"}, BOOL(so.exit_on_error)},
    {{"strict-readiness", "BOOL",
      "true (default): /v2/health/ready is 200 only while no model is unavailable or loading; false: once the "
      "startup loads are done"}, BOOL(so.strict_readiness)},
    {{"strict-model-config", "BOOL", "true: config.pbtxt must be complete; false (default): completed from the model"}, BOOL(so.strict_model_config)},
    {{"http-port", "PORT", "HTTP port (default 8000)"}, INT(ho.port, 0, 65535)},
    {{"http-address", "ADDR", "HTTP address to bind (default 0.0.0.0)"}, TEXT(ho.address)},
    {{"http-thread-count", "N", "HTTP network threads (default 8 or the core count, whichever is smaller)"}, INT(ho.threads, 1, 256)},
    {{"http-max-input-size", "BYTES", "largest request body accepted, compressed or not (default 64 MiB)"}, INT(ho.max_input_size, 1, 1L << 40)},
    {{"http-max-header-bytes", "BYTES",
     "largest HTTP header block, request line included; over it: 431 and the connection closes (default 65536)"}, INT(ho.max_header_bytes, 1024, 1L << 30)},
    {{"http-max-headers", "N", "most header lines an HTTP request may have; over it: 431 (default 100)"}, INT(ho.max_headers, 1, 1 << 20)},
    {{"http-idle-timeout-secs", "N",
     "an HTTP connection silent this long (between requests, or within one) is closed (default 60; 0: never)"}, CALL(set_timeout)},
    {{"http-read-timeout-secs", "N",
     "an HTTP request must arrive whole, headers and body, within N s of its first byte, or its connection is closed "
     "(default 30; 0: never)"}, CALL(set_timeout)},
    {{"allow-http", "BOOL", "serve HTTP (default true)"}, BOOL(allow_http)},
    {{"grpc-port", "PORT", "gRPC port (default 8001)"}, INT(go.port, 0, 65535)},
    {{"grpc-address", "ADDR", "gRPC address to bind (default 0.0.0.0)"}, TEXT(go.address)},
    {{"allow-grpc", "BOOL", "serve gRPC (default true)"}, BOOL(allow_grpc)},
    {{"grpc-thread-count", "N", "gRPC network threads (default: half the cores, 1 to 8)"}, INT(go.threads, 1, 256)},
    {{"grpc-idle-timeout-secs", "N",
     "a gRPC connection with no call open and nothing received for N s gets GOAWAY and is closed (default 300; 0: "
     "never); one that does not complete the HTTP/2 preface and settings within --http-read-timeout-secs is closed"}, CALL(set_timeout)},
    {{"grpc-max-inflight-per-connection", "N",
     "inference requests one gRPC connection may have with the server; past it the connection is not read until "
     "answers come back (default 256)"}, INT(go.max_inflight_per_connection, 1, 1 << 20)},
    {{"max-inflight-bytes", "BYTES",
     "bytes of tensors held for requests accepted and not yet answered, over all models, HTTP and gRPC (inputs, "
     "and outputs whose size is known); a request past it gets 503 / UNAVAILABLE with a retry hint (default 2 GiB "
     "or a quarter of the physical memory, whichever is less; 0: no bound)"}, INT(so.max_inflight_bytes, 0, LONG_MAX)},
    {{"max-connections", "N",
     "connections open at once on each of HTTP and gRPC (counted apart); past it a new one is accepted and closed "
     "at once, over plain HTTP after a 503 JSON error (default 10000)"}, CALL(set_max_connections)},
    {{"grpc-infer-allocation-pool-size", "N", "gRPC call objects kept for reuse (default 8)"}, INT(go.infer_allocation_pool_size, 0, 1 << 20)},
    {{"grpc-keepalive-time", "MS", "gRPC keepalive ping period in ms (default 7200000)"}, INT(go.keepalive_time_ms, 1, INT_MAX)},
    {{"grpc-keepalive-timeout", "MS", "gRPC keepalive ping answer timeout in ms (default 20000)"}, INT(go.keepalive_timeout_ms, 1, INT_MAX)},
    {{"grpc-use-ssl", "BOOL", "serve gRPC over TLS (default false; needs --grpc-server-cert and --grpc-server-key)"}, BOOL(go.use_ssl)},
    {{"grpc-use-ssl-mutual", "BOOL", "TLS with client certificates verified against --grpc-root-cert (default false)"}, BOOL(go.use_ssl_mutual)},
    {{"grpc-server-cert", "FILE", "PEM certificate (chain) of the gRPC server"}, TEXT(go.server_cert)},
    {{"grpc-server-key", "FILE", "PEM private key of the gRPC server"}, TEXT(go.server_key)},
    {{"grpc-root-cert", "FILE", "PEM CA certificate that client certificates must chain to"}, TEXT(go.root_cert)},
    {{"grpc-max-message-size", "BYTES", "largest gRPC message, each way (default 2147483647)"}, INT(go.max_message_size, 1, INT_MAX)},
    {{"grpc-infer-response-compression-level", "LEVEL",
     "none (default), low, medium or high: inference responses compressed with an algorithm the client accepts"}, CHOICE(go.response_compression_level, compression_levels)},
    {{"allow-metrics", "BOOL", "serve Prometheus metrics at GET /metrics (default true)"}, BOOL(allow_metrics)},
    {{"allow-gpu-metrics", "BOOL", "GPU metrics from NVML, when a GPU and libnvidia-ml.so.1 are found (default true)"}, BOOL(mo.gpu)},
    {{"allow-cpu-metrics", "BOOL", "CPU utilization and memory metrics from /proc (default true)"}, BOOL(mo.cpu)},
    {{"metrics-port", "PORT", "metrics port (default 8002)"}, INT(fo.port, 0, 65535)},
    {{"metrics-address", "ADDR", "metrics address to bind (default: the --http-address, or 0.0.0.0 without HTTP)"}, TEXT(fo.address)},
    {{"metrics-interval-ms", "MS", "how often GPU and CPU metrics are polled (default 2000)"}, INT(mo.interval_ms, 1, 3600000)},
    {{"metrics-config", "KEY=VALUE",
     "summary_latencies=true (latency quantile summaries), summary_quantiles=0.5:0.05,0.9:0.01,0.99:0.001, "
     "counter_latencies=false (no *_duration_us counters); repeatable"}, CALL(parse_metrics_config)},
    {{"exit-timeout-secs", "N",
     "on SIGTERM/SIGINT, how long to wait for requests in flight (default 30); then queued ones are answered "
     "UNAVAILABLE, gRPC streams still open and HTTP answers still being read are closed (at least 1 s after the "
     "last answer), running batches get up to 5 s more, and the process exits 0"}, INT(exit_timeout, 0, 86400)},
    {{"instance-threads", "N", "CPU threads per model instance (default: cores / CPU instances)"}, INT(so.threads_per_instance, 1, 1024)},
    {{"cuda-memory-pool-byte-size", "GPU:BYTES",
     "GPU memory pool of GPU number GPU, in bytes (default 67108864 per GPU); repeatable, one per GPU"}, CALL(parse_cuda_pool)},
    {{"pinned-memory-pool-byte-size", "BYTES", "page-locked host memory pool, in bytes (default 268435456; 0: none)"}, INT(so.pinned_memory_pool_byte_size, 0, LONG_MAX)},
    {{"min-supported-compute-capability", "CC",
     "GPUs below this CUDA compute capability are not used (default 6.0); KIND_AUTO models go to the CPU then"}, CALL(parse_compute_capability)},
    {{"log-info", "BOOL", "write info lines (default true)"}, BOOL(log_info)},
    {{"log-warning", "BOOL", "write warnings (default true)"}, BOOL(log_warning)},
    {{"log-error", "BOOL", "write errors (default true)"}, BOOL(log_error)},
    {{"log-file", "FILE", "append the log to FILE instead of writing it to stderr"}, TEXT(log_file)},
    {{"log-verbose", "N", "verbose logging at level N (0 = off)"}, INT(verbose, 0, 100)},
    {{"log-format", "FORMAT", "default or ISO8601"}, CHOICE(format, log_formats)},
    {{"id", "ID", "server id reported by server metadata (default inferd)"}, TEXT(so.server_id)},
    /* tritonserver's flags that mean nothing here: accepted, with a warning. */
    {{"backend-directory", "DIR", "accepted and ignored (the ONNX engine is built in)"},
     IGNORED("inferd has no backend libraries: its ONNX engine is built in")},
    {{"backend-config", "BACKEND,KEY=VALUE", "accepted and ignored (the engine takes its settings from config.pbtxt)"},
     IGNORED("the engine's settings come from each model's config.pbtxt")},
    {{"repoagent-directory", "DIR", "accepted and ignored (no repository agents)"},
     IGNORED("inferd has no repository agents")},
    {{"model-load-thread-count", "N", "accepted and ignored (models load one after another)"},
     IGNORED("models load one after another")},
    {{"buffer-manager-thread-count", "N", "accepted and ignored"}, IGNORED("inferd has no buffer manager threads")},
};
enum { N_SERVE_FLAGS = sizeof(serve_flags) / sizeof(serve_flags[0]) };

static const cli_option security_options[] = {SERVE_SECURITY_OPTIONS};
enum { N_SECURITY_OPTIONS = sizeof(security_options) / sizeof(security_options[0]) };

/* The option table the parser and --help read: the flags, then the security
 * flags; NULL-terminated. */
static void serve_option_table(cli_option *out) {
  for (int i = 0; i < N_SERVE_FLAGS; i++) out[i] = serve_flags[i].option;
  for (int i = 0; i < N_SECURITY_OPTIONS; i++) out[N_SERVE_FLAGS + i] = security_options[i];
  out[N_SERVE_FLAGS + N_SECURITY_OPTIONS] = (cli_option){NULL, NULL, NULL};
}

/* Reads one flag's value into c as its row says. */
static bool apply_flag(serve_config *c, const serve_flag *f, const char *value) {
  char *field = (char *)c + f->offset;
  const char *name = f->option.name;
  switch (f->kind) {
    case FLAG_TEXT: *(const char **)field = value; return true;
    case FLAG_BOOL: return cli_parse_bool(name, value, (bool *)field);
    case FLAG_INT: {
      long v;
      if (!cli_parse_int(name, value, f->min, f->max, &v)) return false;
      if (f->size == sizeof(int)) *(int *)field = (int)v;
      else if (f->size == sizeof(int64_t)) *(int64_t *)field = (int64_t)v; /* long, size_t and uint64_t alike */
      else return false;
      return true;
    }
    case FLAG_CHOICE:
      if (f->size != sizeof(int)) return false;
      for (int i = 0; f->choices[i]; i++)
        if (!strcmp(value, f->choices[i])) {
          *(int *)field = i;
          return true;
        }
      fprintf(stderr, "inferd serve: --%s: '%s' is not ", name, value);
      for (int i = 0; f->choices[i]; i++)
        fprintf(stderr, "%s%s", i == 0 ? "" : f->choices[i + 1] ? ", " : " or ", f->choices[i]);
      fprintf(stderr, "\n");
      return false;
    case FLAG_CALL: return f->call(c, name, value);
    case FLAG_IGNORED:
      if (c->n_ignored < IGNORED_FLAGS_MAX) c->ignored[c->n_ignored++] = f;
      return true;
  }
  return false;
}

static bool add_startup_model(serve_config *c, const char *name, const char *value) {
  (void)name;
  c->startup[c->n_startup++] = value;
  return true;
}

/* The idle and read timeouts: 0 means never here; the frontends take 0 as
 * their default, and -1 as never. The read timeout also bounds gRPC's
 * HTTP/2 handshake. */
static bool set_timeout(serve_config *c, const char *name, const char *value) {
  long v;
  if (!cli_parse_int(name, value, 0, 86400, &v)) return false;
  const int secs = v ? (int)v : -1;
  if (!strcmp(name, "http-idle-timeout-secs")) c->ho.idle_timeout_secs = secs;
  else if (!strcmp(name, "http-read-timeout-secs")) c->ho.read_timeout_secs = c->go.handshake_timeout_secs = secs;
  else c->go.idle_timeout_secs = secs;
  return true;
}

/* One bound for each of HTTP and gRPC (counted apart). */
static bool set_max_connections(serve_config *c, const char *name, const char *value) {
  long v;
  if (!cli_parse_int(name, value, 1, 1 << 24, &v)) return false;
  c->go.max_connections = c->ho.max_connections = (int)v;
  return true;
}

/* One --metrics-config KEY=VALUE, with Triton's keys. */
static bool parse_metrics_config(serve_config *c, const char *name, const char *text) {
  (void)name;
  const char *eq = strchr(text, '=');
  if (!eq || eq == text) {
    fprintf(stderr, "inferd serve: --metrics-config: '%s' is not KEY=VALUE\n", text);
    return false;
  }
  size_t klen = (size_t)(eq - text);
  const char *value = eq + 1;
  if (klen == strlen("summary_latencies") && !strncmp(text, "summary_latencies", klen))
    return cli_parse_bool("metrics-config summary_latencies", value, &c->so.latency_summaries);
  if (klen == strlen("counter_latencies") && !strncmp(text, "counter_latencies", klen))
    return cli_parse_bool("metrics-config counter_latencies", value, &c->mo.counter_latencies);
  if (klen == strlen("summary_quantiles") && !strncmp(text, "summary_quantiles", klen)) {
    c->mo.summary_quantiles = value; /* checked when the metrics are made */
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
static bool parse_cuda_pool(serve_config *c, const char *option, const char *text) {
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
  for (int i = 0; i < c->n_pools; i++)
    if (c->pools[i].gpu == gpu) {
      fprintf(stderr, "inferd serve: --%s: GPU %ld is given twice\n", option, gpu);
      return false;
    }
  c->pools[c->n_pools++] = (inferd_cuda_memory_pool){.gpu = (int)gpu, .byte_size = (uint64_t)bytes};
  return true;
}

/* Triton's --min-supported-compute-capability: a number such as 7.5. */
static bool parse_compute_capability(serve_config *c, const char *name, const char *text) {
  (void)name;
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (errno || end == text || *end || !isfinite(v) || v < 0 || v > 100) {
    fprintf(stderr, "inferd serve: --min-supported-compute-capability: '%s' is not a compute capability such as "
                    "7.5 (a number from 0 to 100)\n",
            text);
    return false;
  }
  c->so.min_compute_capability = v;
  return true;
}

/* The --log-file, given back to stderr's place before it is closed. */
static void close_log(FILE *log_file) {
  if (!log_file) return;
  log_set_output(NULL);
  fclose(log_file);
}

static int serve(int argc, char **argv, serve_security *security) {
  serve_config c = {
      .so = {.repository_poll_secs = 15,
             .pinned_memory_pool_byte_size = 256u << 20,
             .max_inflight_bytes = default_max_inflight_bytes(),
             .exit_on_error = true,
             .strict_readiness = true},
      .ho = {.address = "0.0.0.0", .port = 8000, .threads = 0, .max_input_size = 64u << 20},
      .go = {.address = "0.0.0.0", .port = 8001, .infer_allocation_pool_size = 8},
      .mo = {.gpu = true, .cpu = true, .counter_latencies = true, .interval_ms = 2000},
      .fo = {.address = NULL, .port = 8002},
      .allow_http = true,
      .allow_grpc = true,
      .allow_metrics = true,
      .exit_timeout = 30,
      .format = LOG_FORMAT_DEFAULT,
      .log_info = true,
      .log_warning = true,
      .log_error = true,
      .startup = mem_zalloc((size_t)(argc + 1) * sizeof(char *)),
      .pools = mem_zalloc((size_t)(argc + 1) * sizeof(inferd_cuda_memory_pool)),
  };
  cli_option options[N_SERVE_FLAGS + N_SECURITY_OPTIONS + 1];
  serve_option_table(options);
  cli_parser p;
  cli_parser_init(&p, "serve", options, argc, argv);
  const char *name, *value;
  int r;
  while ((r = cli_next(&p, &name, &value)) > 0) {
    bool ok = true;
    const serve_flag *f = NULL;
    for (int i = 0; i < N_SERVE_FLAGS && !f; i++)
      if (!strcmp(name, serve_flags[i].option.name)) f = &serve_flags[i];
    if (!strcmp(name, "help")) {
      cli_print_help(stdout, "inferd serve --model-repository=DIR [options]",
                     "Serves the models of a Triton-style repository over HTTP/REST and gRPC (KServe v2 protocol with\n"
                     "Triton's extensions), batching requests dynamically as each model's config.pbtxt says. Prometheus\n"
                     "metrics (Triton's names and labels) are served at GET /metrics on --metrics-port. Instance groups\n"
                     "of kind KIND_GPU run on the GPUs they list (all when none), KIND_AUTO on the GPUs when there are\n"
                     "any, else on the CPU; docs/gpu.md describes GPU serving and precisions.",
                     options);
      free(c.startup);
      free(c.pools);
      return 0;
    } else if (f) {
      ok = apply_flag(&c, f, value);
    } else {
      ok = serve_security_option(security, name, value) >= 0;
    }
    if (!ok) {
      free(c.startup);
      free(c.pools);
      return 2;
    }
  }
  if (r < 0 || !c.so.model_repository) {
    if (r >= 0) fprintf(stderr, "inferd serve: --model-repository is required (see --help)\n");
    free(c.startup);
    free(c.pools);
    return 2;
  }
  if (c.n_startup && c.so.model_control_mode != INFERD_MODEL_CONTROL_EXPLICIT) {
    fprintf(stderr, "inferd serve: --load-model needs --model-control-mode=explicit\n");
    free(c.startup);
    free(c.pools);
    return 2;
  }
  /* Triton's --grpc-use-ssl-mutual implies TLS. */
  if (c.go.use_ssl_mutual) c.go.use_ssl = true;
  serve_security_finish(security);
  c.ho.restricted = &security->http_restricted;
  c.ho.tls = security->http_tls;
  c.go.restricted = &security->grpc_restricted;
  c.fo.tls = security->metrics_tls;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (!c.ho.threads) c.ho.threads = cores < 1 ? 1 : cores > 8 ? 8 : (int)cores;
  if (!c.go.threads) c.go.threads = cores < 4 ? 1 : cores / 2 > 8 ? 8 : (int)(cores / 2);
  if (!c.fo.address) c.fo.address = c.allow_http ? c.ho.address : "0.0.0.0";
  c.so.startup_models = c.startup;
  c.so.startup_model_count = c.n_startup;
  c.so.cuda_memory_pools = c.pools;
  c.so.cuda_memory_pool_count = c.n_pools;
  FILE *log_file = NULL;
  if (c.log_file) {
    log_file = fopen(c.log_file, "a");
    if (!log_file) {
      fprintf(stderr, "inferd serve: --log-file: cannot open '%s': %s\n", c.log_file, strerror(errno));
      free(c.startup);
      free(c.pools);
      return 2;
    }
    setvbuf(log_file, NULL, _IOLBF, 0); /* each line reaches the file as it is written */
    log_set_output(log_file);
  }
  log_configure(c.verbose > 0 ? LOG_VERBOSE : LOG_INFO, c.format);
  log_enable(LOG_INFO, c.log_info);
  log_enable(LOG_WARN, c.log_warning);
  log_enable(LOG_ERROR, c.log_error);
  for (int i = 0; i < c.n_ignored; i++)
    log_warn("--%s is accepted and ignored: %s", c.ignored[i]->option.name, c.ignored[i]->why);

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
  inferd_error *e = inferd_server_create(&c.so, &server);
  if (!e && c.allow_http) e = http_frontend_start(server, &c.ho, &http);
  if (!e && c.allow_grpc) e = grpc_frontend_start(server, &c.go, &grpc);
  if (!e && c.allow_metrics) e = inferd_metrics_create(server, &c.mo, &metrics);
  if (!e && c.allow_metrics) e = metrics_frontend_start(metrics, &c.fo, &metrics_http);
  if (e) {
    log_error("%s", inferd_error_message(e));
    inferd_error_delete(e);
    metrics_frontend_delete(metrics_http);
    inferd_metrics_delete(metrics);
    grpc_frontend_delete(grpc);
    http_frontend_delete(http);
    inferd_server_delete(server);
    free(c.startup);
    free(c.pools);
    close_log(log_file);
    return 1;
  }
  int sig = 0;
  sigwait(&stop, &sig);
  const uint64_t stop_ns = clock_now_ns();
  log_info("received %s: no new requests; waiting up to %ld s for those in flight", sig == SIGINT ? "SIGINT" : "SIGTERM",
           c.exit_timeout);
  inferd_server_stop_accepting(server);
  if (http) http_frontend_stop_listening(http);
  if (grpc) grpc_frontend_stop_listening(grpc);
  int left = inferd_server_drain(server, (int)c.exit_timeout * 1000);
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
  const int64_t left_ms = c.exit_timeout * 1000 - spent_ms;
  const int64_t floor_ms = c.exit_timeout >= 1 ? 1000 : 1;
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
  free(c.startup);
  free(c.pools);
  log_flush_suppressed();
  log_info("stopped");
  close_log(log_file);
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
