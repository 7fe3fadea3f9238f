/*
 * inferd bench: load a model on the engine, run it back to back at each
 * batch size, and report throughput, latency percentiles and memory. Uses the
 * public API only, as any embedder would.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "inferd.h"

enum { MAX_BATCHES = 16, MAX_PROFILE = 4096 };

static const cli_option bench_options[] = {
    {"model", "PATH", "ONNX model to load (required)"},
    {"batch", "LIST", "comma-separated batch sizes to measure (default 1)"},
    {"threads", "N", "threads per execution context (default: all cores)"},
    {"backend", "NAME", "engine backend: cpu (default) or ref; --device picks the backend of a GPU"},
    {"device", "DEVICE", "where the plan runs: cpu (default), cuda (GPU 0) or cuda:N"},
    {"precision", "P", "fp32, tf32, fp16, bf16 or int8 (CPU: fp32, bf16, int8; default: fp32 on the CPU, tf32 on a GPU)"},
    {"calibration-cache", "FILE", "INT8 activation thresholds from `inferd calibrate` (needed by --precision int8)"},
    {"int8-keep", "LIST", "INT8: convolutions kept in FP32, comma-separated node names; 'first' is the one reading the input"},
    {"duration", "SECONDS", "measuring time per batch size (default 10)"},
    {"iterations", "N", "measure exactly N runs per batch size instead of a duration"},
    {"warmup", "N", "untimed runs before measuring (default 3)"},
    {"no-opt", "PASS[,PASS]", "leave optimization passes out (see the list below)"},
    {"input-memory", "KIND",
     "where inputs and outputs live: host, pinned or device (default: pinned on a GPU, as the server stages "
     "batches; device measures the engine alone, as frameworks do with tensors already on the GPU)"},
    {"tactic-cache", "FILE", "GPU autotuning choices: read when they match the GPU and libraries, rewritten after new timings"},
    {"json", NULL, "print results as a JSON array instead of a table"},
    {"profile", NULL, "print the time of every step and a per-kind summary"},
    {NULL, NULL, NULL},
};

typedef struct bench_result {
  int batch;
  int iterations;
  double seconds;
  double p50, p90, p99, mean;
} bench_result;

static uint64_t peak_rss_bytes(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  uint64_t kb = 0;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "VmHWM: %" SCNu64, &kb) == 1) break;
  fclose(f);
  return kb * 1024;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double percentile(const double *sorted, int n, double q) {
  if (n == 0) return 0;
  double pos = q * (n - 1);
  int lo = (int)pos;
  int hi = lo + 1 < n ? lo + 1 : lo;
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

typedef struct io_buffers {
  const inferd_plan *plan;
  inferd_tensor *inputs, *outputs;
  int n_in, n_out;
} io_buffers;

static void io_free(io_buffers *io) {
  for (int i = 0; i < io->n_in; i++) inferd_plan_memory_free(io->plan, io->inputs[i].memory, io->inputs[i].data);
  for (int i = 0; i < io->n_out; i++) inferd_plan_memory_free(io->plan, io->outputs[i].memory, io->outputs[i].data);
  free(io->inputs);
  free(io->outputs);
}

/* Deterministic pseudo-random inputs in [0,1) (small integers for integer
 * inputs), so runs are repeatable. */
static inferd_error *io_make(const inferd_plan *plan, int batch, inferd_memory_kind kind, io_buffers *io) {
  memset(io, 0, sizeof(*io));
  io->plan = plan;
  io->n_in = inferd_plan_input_count(plan);
  io->n_out = inferd_plan_output_count(plan);
  io->inputs = mem_zalloc((size_t)(io->n_in + 1) * sizeof(inferd_tensor));
  io->outputs = mem_zalloc((size_t)(io->n_out + 1) * sizeof(inferd_tensor));
  bool dynamic = inferd_plan_has_dynamic_batch(plan);
  uint64_t state = 0x9e3779b97f4a7c15ull;
  for (int pass = 0; pass < 2; pass++) {
    int n = pass ? io->n_out : io->n_in;
    for (int i = 0; i < n; i++) {
      inferd_tensor_info info;
      inferd_error *e = pass ? inferd_plan_output(plan, i, &info) : inferd_plan_input(plan, i, &info);
      if (e) return e;
      inferd_tensor *t = pass ? &io->outputs[i] : &io->inputs[i];
      t->name = info.name;
      t->datatype = info.datatype;
      t->rank = info.rank;
      size_t count = 1;
      for (int d = 0; d < info.rank; d++) {
        t->dims[d] = (d == 0 && dynamic) ? batch : info.dims[d];
        count *= (size_t)t->dims[d];
      }
      size_t esize = inferd_datatype_size(info.datatype);
      t->byte_size = count * esize;
      if (pass) {
        inferd_error *ae = inferd_plan_memory_alloc(plan, kind, t->byte_size, &t->data);
        if (ae) return ae;
        t->memory = kind;
        t->memory_id = inferd_plan_device(plan).ordinal;
        continue;
      }
      t->data = mem_try_aligned(t->byte_size ? t->byte_size : 1);
      if (!t->data) return inferd_error_create(INFERD_ERROR_NO_MEMORY, "allocating benchmark tensors");
      for (size_t k = 0; k < count; k++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        double u = (double)(state >> 11) / 9007199254740992.0;
        switch (info.datatype) {
          case INFERD_TYPE_FP32: ((float *)t->data)[k] = (float)u; break;
          case INFERD_TYPE_FP64: ((double *)t->data)[k] = u; break;
          case INFERD_TYPE_INT64: ((int64_t *)t->data)[k] = (int64_t)(u * 4); break;
          case INFERD_TYPE_INT32: ((int32_t *)t->data)[k] = (int32_t)(u * 4); break;
          default: memset((char *)t->data + k * esize, 0, esize); break;
        }
      }
      if (kind != INFERD_MEMORY_CPU) {
        /* Filled on the host, then moved where the run will read it. */
        void *host = t->data;
        inferd_error *ae = inferd_plan_memory_alloc(plan, kind, t->byte_size, &t->data);
        if (!ae) ae = inferd_plan_memory_copy(plan, t->data, kind, host, INFERD_MEMORY_CPU, t->byte_size);
        free(host);
        if (ae) return ae;
        t->memory = kind;
        t->memory_id = inferd_plan_device(plan).ordinal;
      }
    }
  }
  return NULL;
}

static void print_profile(inferd_context *ctx, int batch) {
  static inferd_profile_entry entries[MAX_PROFILE];
  int n = inferd_context_profile(ctx, entries, MAX_PROFILE);
  if (n > MAX_PROFILE) n = MAX_PROFILE;
  double total = 0;
  for (int i = 0; i < n; i++) total += entries[i].milliseconds;
  printf("\nprofile at batch %d (one run, %.2f ms):\n", batch, total);
  printf("  %-6s %-16s %9s %7s %9s  %s\n", "step", "kind", "ms", "%", "GFLOP/s", "node");
  for (int i = 0; i < n; i++) {
    const inferd_profile_entry *e = &entries[i];
    double rate = e->milliseconds > 0 && e->gflop > 0 ? e->gflop / (e->milliseconds * 1e-3) : 0;
    printf("  %-6d %-16s %9.3f %6.1f%% %9.1f  %s\n", i, e->kind, e->milliseconds,
           total > 0 ? 100 * e->milliseconds / total : 0, rate, e->name);
  }
  /* Per kind: where the time goes. */
  printf("  by kind:\n");
  for (int i = 0; i < n; i++) {
    bool seen = false;
    for (int j = 0; j < i && !seen; j++) seen = strcmp(entries[j].kind, entries[i].kind) == 0;
    if (seen) continue;
    double ms = 0, gflop = 0;
    int count = 0;
    for (int j = i; j < n; j++)
      if (strcmp(entries[j].kind, entries[i].kind) == 0) {
        ms += entries[j].milliseconds;
        gflop += entries[j].gflop;
        count++;
      }
    printf("    %-16s %4d steps %9.3f ms %6.1f%%", entries[i].kind, count, ms, total > 0 ? 100 * ms / total : 0);
    if (gflop > 0) printf("  %.1f GFLOP/s", gflop / (ms * 1e-3));
    printf("\n");
  }
}

static inferd_error *measure(inferd_context *ctx, const inferd_plan *plan, int batch, inferd_memory_kind kind,
                             double duration, long iterations, long warmup, bool profile, bench_result *r) {
  io_buffers io;
  inferd_error *e = io_make(plan, batch, kind, &io);
  for (long i = 0; i < warmup && !e; i++) e = inferd_context_run(ctx, batch, io.inputs, io.n_in, io.outputs, io.n_out);
  size_t cap = 1024;
  double *lat = mem_alloc(cap * sizeof(double));
  int n = 0;
  uint64_t start = clock_now_ns();
  while (!e) {
    uint64_t t0 = clock_now_ns();
    if (iterations > 0 ? n >= iterations : (n > 0 && (double)(t0 - start) * 1e-9 >= duration)) break;
    e = inferd_context_run(ctx, batch, io.inputs, io.n_in, io.outputs, io.n_out);
    MEM_GROW(lat, cap, (size_t)n + 1);
    lat[n++] = (double)(clock_now_ns() - t0) * 1e-6;
  }
  r->seconds = (double)(clock_now_ns() - start) * 1e-9;
  r->batch = batch;
  r->iterations = n;
  if (!e && profile) {
    inferd_context_set_profiling(ctx, true);
    e = inferd_context_run(ctx, batch, io.inputs, io.n_in, io.outputs, io.n_out);
    inferd_context_set_profiling(ctx, false);
    if (!e) print_profile(ctx, batch);
  }
  double sum = 0;
  for (int i = 0; i < n; i++) sum += lat[i];
  qsort(lat, (size_t)n, sizeof(double), cmp_double);
  r->p50 = percentile(lat, n, 0.50);
  r->p90 = percentile(lat, n, 0.90);
  r->p99 = percentile(lat, n, 0.99);
  r->mean = n ? sum / n : 0;
  free(lat);
  io_free(&io);
  return e;
}

/* A JSON string of text the engine wrote (a device description). */
static void print_json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

static void usage(FILE *out) {
  cli_print_help(out, "inferd bench --model PATH [--batch 1,8] [--threads N] [--device cuda:N] [--json] [--profile]",
                 "Measures the engine alone on one model: images (batch items) per second, latency percentiles,\n"
                 "model load time and peak resident memory, on the CPU or a GPU (--device, --precision). Inputs\n"
                 "are deterministic pseudo-random data. The JSON names the device, backend and precision.",
                 bench_options);
  fprintf(out, "\noptimization passes (for --no-opt):\n  simplify-shapes, fold-constants, fold-batchnorm, "
               "fuse-gemm-bias, fuse-activation, fuse-residual, dead-nodes; all for every one\n");
}

int cmd_bench(int argc, char **argv) {
  const char *model = NULL, *backend = NULL, *no_opt = NULL;
  inferd_device device = {.kind = INFERD_DEVICE_CPU};
  inferd_precision precision = INFERD_PRECISION_DEFAULT;
  int batches[MAX_BATCHES] = {1}, n_batches = 1;
  long threads = 0, iterations = 0, warmup = 3, duration_s = 10;
  bool json = false, profile = false;
  const char *tactic_cache = NULL, *input_memory = NULL, *calibration_cache = NULL, *int8_keep = NULL;
  cli_parser p;
  cli_parser_init(&p, "bench", bench_options, argc, argv);
  const char *name, *value;
  int r;
  while ((r = cli_next(&p, &name, &value)) > 0) {
    if (!strcmp(name, "help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(name, "model")) {
      model = value;
    } else if (!strcmp(name, "batch")) {
      if (!cli_parse_int_list(name, value, batches, MAX_BATCHES, &n_batches)) return 2;
    } else if (!strcmp(name, "threads")) {
      if (!cli_parse_int(name, value, 1, 1024, &threads)) return 2;
    } else if (!strcmp(name, "backend")) {
      backend = value;
    } else if (!strcmp(name, "device")) {
      if (!cli_parse_device(value, &device)) return 2;
    } else if (!strcmp(name, "precision")) {
      if (!cli_parse_precision(value, &precision)) return 2;
    } else if (!strcmp(name, "duration")) {
      if (!cli_parse_int(name, value, 1, 3600, &duration_s)) return 2;
    } else if (!strcmp(name, "iterations")) {
      if (!cli_parse_int(name, value, 1, 100000000, &iterations)) return 2;
    } else if (!strcmp(name, "warmup")) {
      if (!cli_parse_int(name, value, 0, 100000, &warmup)) return 2;
    } else if (!strcmp(name, "no-opt")) {
      no_opt = value;
    } else if (!strcmp(name, "input-memory")) {
      if (strcmp(value, "host") && strcmp(value, "pinned") && strcmp(value, "device")) {
        fprintf(stderr, "inferd bench: --input-memory: '%s' is not host, pinned or device\n", value);
        return 2;
      }
      input_memory = value;
    } else if (!strcmp(name, "calibration-cache")) {
      calibration_cache = value;
    } else if (!strcmp(name, "int8-keep")) {
      int8_keep = value;
    } else if (!strcmp(name, "tactic-cache")) {
      tactic_cache = value;
    } else if (!strcmp(name, "json")) {
      json = true;
    } else if (!strcmp(name, "profile")) {
      profile = true;
    }
  }
  if (r < 0) return 2;
  if (!model) {
    fprintf(stderr, "inferd bench: --model is required (see --help)\n");
    return 2;
  }
  int max_batch = 1;
  for (int i = 0; i < n_batches; i++)
    if (batches[i] > max_batch) max_batch = batches[i];

  if (!cli_device_fits_backend("bench", device, backend)) return 2;
  inferd_error *e = cli_check_device(device);
  if (e) {
    fprintf(stderr, "inferd bench: %s\n", inferd_error_message(e));
    inferd_error_delete(e);
    return 1;
  }
  uint64_t t0 = clock_now_ns();
  inferd_plan_options options = {.backend = backend,
                                 .max_batch_size = max_batch,
                                 .disabled_passes = no_opt,
                                 .threads = (int)threads,
                                 .device = device,
                                 .precision = precision,
                                 .tactic_cache = tactic_cache,
                                 .calibration_cache = calibration_cache,
                                 .int8_keep = int8_keep};
  inferd_plan *plan = NULL;
  inferd_context *ctx = NULL;
  e = inferd_plan_load(model, &options, &plan);
  if (e && inferd_error_code_of(e) == INFERD_ERROR_INVALID_ARG && max_batch > 1 && strstr(inferd_error_message(e), "dynamic")) {
    /* A model with a fixed batch dimension runs only at its own batch. */
    fprintf(stderr, "inferd bench: %s\n", inferd_error_message(e));
    inferd_error_delete(e);
    return 1;
  }
  if (!e) e = cli_check_numeric(plan);
  if (!e) e = inferd_context_create(plan, &(inferd_context_options){.threads = (int)threads}, &ctx);
  double load_ms = (double)(clock_now_ns() - t0) * 1e-6;
  const bool on_gpu = plan && inferd_plan_device(plan).kind == INFERD_DEVICE_CUDA;
  inferd_memory_kind memory = on_gpu ? INFERD_MEMORY_CPU_PINNED : INFERD_MEMORY_CPU;
  if (input_memory && !strcmp(input_memory, "host")) memory = INFERD_MEMORY_CPU;
  if (input_memory && !strcmp(input_memory, "pinned")) memory = INFERD_MEMORY_CPU_PINNED;
  if (input_memory && !strcmp(input_memory, "device")) memory = INFERD_MEMORY_GPU;
  /* Load to first inference: one run at the first batch size. */
  double first_ms = 0;
  if (!e) {
    io_buffers io;
    e = io_make(plan, batches[0], memory, &io);
    if (!e) e = inferd_context_run(ctx, batches[0], io.inputs, io.n_in, io.outputs, io.n_out);
    first_ms = (double)(clock_now_ns() - t0) * 1e-6;
    io_free(&io);
  }
  bench_result results[MAX_BATCHES];
  for (int i = 0; i < n_batches && !e; i++)
    e = measure(ctx, plan, batches[i], memory, (double)duration_s, iterations, warmup, profile && !json, &results[i]);
  if (e) {
    fprintf(stderr, "inferd bench: %s\n", inferd_error_message(e));
    inferd_error_delete(e);
    inferd_context_delete(ctx);
    inferd_plan_delete(plan);
    return 1;
  }
  uint64_t rss = peak_rss_bytes();
  int used_threads = (int)threads;
  if (!used_threads) used_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
  char device_name[32], device_text[512];
  cli_device_name(inferd_plan_device(plan), device_name, sizeof(device_name));
  inferd_device_describe(inferd_plan_device(plan), device_text, sizeof(device_text));
  const char *precision_name = inferd_precision_name(inferd_plan_precision(plan));
  if (json) {
    printf("[");
    for (int i = 0; i < n_batches; i++) {
      const bench_result *b = &results[i];
      printf("%s\n  {\"batch\": %d, \"images_per_sec\": %.3f, \"latency_ms_p50\": %.3f, \"latency_ms_p90\": %.3f, "
             "\"latency_ms_p99\": %.3f, \"latency_ms_mean\": %.3f, \"iterations\": %d, \"peak_rss_bytes\": %" PRIu64
             ", \"load_ms\": %.1f, \"load_to_first_inference_ms\": %.1f, \"weight_bytes\": %zu, "
             "\"context_bytes\": %zu, \"threads\": %d, \"backend\": \"%s\", \"device\": \"%s\", "
             "\"precision\": \"%s\", \"input_memory\": \"%s\", \"device_description\": ",
             i ? "," : "", b->batch, b->iterations * b->batch / b->seconds, b->p50, b->p90, b->p99, b->mean,
             b->iterations, rss, load_ms, first_ms, inferd_plan_weight_bytes(plan), inferd_context_memory_bytes(ctx),
             used_threads, inferd_plan_backend_name(plan), device_name, precision_name,
             memory == INFERD_MEMORY_GPU ? "device" : memory == INFERD_MEMORY_CPU_PINNED ? "pinned" : "host");
      print_json_string(device_text);
      printf("}");
    }
    printf("\n]\n");
  } else {
    printf("model %s: loaded in %.1f ms, first inference done %.1f ms after start\n", model, load_ms, first_ms);
    printf("device %s (%s), %s backend, %s\n", device_name, device_text, inferd_plan_backend_name(plan),
           precision_name);
    printf("weights %.1f MiB, activation memory %.1f MiB per context, peak RSS %.1f MiB, %d threads\n",
           inferd_plan_weight_bytes(plan) / 1048576.0, inferd_context_memory_bytes(ctx) / 1048576.0, rss / 1048576.0,
           used_threads);
    printf("%6s %12s %10s %10s %10s %10s %8s\n", "batch", "images/s", "p50 ms", "p90 ms", "p99 ms", "mean ms", "runs");
    for (int i = 0; i < n_batches; i++) {
      const bench_result *b = &results[i];
      printf("%6d %12.2f %10.2f %10.2f %10.2f %10.2f %8d\n", b->batch, b->iterations * b->batch / b->seconds, b->p50,
             b->p90, b->p99, b->mean, b->iterations);
    }
  }
  inferd_context_delete(ctx);
  inferd_plan_delete(plan);
  return 0;
}
