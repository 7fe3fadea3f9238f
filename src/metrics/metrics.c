/*
 * The metrics object (inferd_metrics_* in inferd.h): per-model counters and
 * summaries read from the server's statistics at render time, GPU and CPU
 * figures polled by a thread every interval.
 *
 * Snapshot. Rendering first retains every served version under the model
 * table lock (held only for that), then reads each version's counters with
 * the lock released, and writes the text from that copy, family by family.
 * Each counter is read once per scrape, so every series is monotonic across
 * scrapes; counters of one request that completes during the read may land
 * in this scrape or the next. Request threads never wait for a scrape: they
 * only bump atomics.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/mem.h"
#include "metrics/cpu_proc.h"
#include "metrics/exposition.h"
#include "metrics/gpu_nvml.h"
#include "metrics/metrics_internal.h"
#include "server/model.h"
#include "server/server.h"

enum { DEFAULT_INTERVAL_MS = 2000, PROC_TEXT_SIZE = 16384 };

/* The latency families, in stats order: request (successes), queue, and
 * the three compute phases. */
enum { DURATION_KINDS = 5 };
static const struct {
  const char *counter, *counter_help, *summary, *summary_help;
} durations[DURATION_KINDS] = {
    {"nv_inference_request_duration_us", "Cumulative inference request duration in microseconds (successful requests)",
     "nv_inference_request_summary_us", "Summary of inference request duration in microseconds (successful requests)"},
    {"nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds",
     "nv_inference_queue_summary_us", "Summary of inference queuing duration in microseconds"},
    {"nv_inference_compute_input_duration_us", "Cumulative compute input duration in microseconds",
     "nv_inference_compute_input_summary_us", "Summary of compute input duration in microseconds"},
    {"nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds",
     "nv_inference_compute_infer_summary_us", "Summary of compute inference duration in microseconds"},
    {"nv_inference_compute_output_duration_us", "Cumulative inference compute output duration in microseconds",
     "nv_inference_compute_output_summary_us", "Summary of inference compute output duration in microseconds"},
};

typedef struct version_snapshot {
  char *labels; /* model="...",version="..." */
  uint64_t success, inference_count, execution_count;
  uint64_t failures[STAT_FAILURE_REASON_COUNT];
  uint64_t count[DURATION_KINDS], ns[DURATION_KINDS];
  int pending;
  bool summaries;
  double *quantiles; /* [DURATION_KINDS][n_quantiles] */
} version_snapshot;

struct inferd_metrics {
  inferd_server *server;
  bool counter_latencies;
  metrics_quantiles quantiles;
  int interval_ms;
  gpu_monitor *gpu;
  bool cpu;
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  /* Under lock: */
  bool stop;
  gpu_sample *gpu_samples;
  bool cpu_ok, memory_ok;
  cpu_times cpu_last;
  double cpu_utilization;
  uint64_t memory_total, memory_used;
};

inferd_error *metrics_parse_quantiles(const char *text, metrics_quantiles *out) {
  *out = (metrics_quantiles){0};
  const char *p = text;
  while (*p) {
    if (out->count == METRICS_MAX_QUANTILES)
      return err_new(INFERD_ERROR_INVALID_ARG, "summary_quantiles: at most %d quantiles", METRICS_MAX_QUANTILES);
    char *end;
    double q = strtod(p, &end);
    if (end == p || *end != ':' || !(q >= 0 && q <= 1))
      return err_new(INFERD_ERROR_INVALID_ARG,
                     "summary_quantiles: '%s' is not a list of quantile:error pairs with quantiles in [0, 1] "
                     "(e.g. 0.5:0.05,0.9:0.01)", text);
    const char *e = end + 1;
    double err = strtod(e, &end);
    if (end == e || (*end != ',' && *end != '\0') || (*end == ',' && end[1] == '\0') || !(err >= 0 && err <= 1))
      return err_new(INFERD_ERROR_INVALID_ARG, "summary_quantiles: quantile %g needs an error in [0, 1] after ':'", q);
    out->q[out->count] = q;
    out->error[out->count] = err;
    out->count++;
    p = *end == ',' ? end + 1 : end;
  }
  if (out->count == 0) return err_new(INFERD_ERROR_INVALID_ARG, "summary_quantiles: the list is empty");
  return NULL;
}

/* ---- polling: GPU and CPU figures ---- */

static void poll_once(inferd_metrics *m) {
  gpu_sample *gpu = NULL;
  if (m->gpu) {
    gpu = mem_zalloc((size_t)gpu_monitor_count(m->gpu) * sizeof(*gpu));
    gpu_monitor_poll(m->gpu, gpu);
  }
  char *text = m->cpu ? mem_alloc(PROC_TEXT_SIZE) : NULL;
  cpu_times now = {0};
  bool cpu_ok = text && cpu_read_proc_file("/proc/stat", text, PROC_TEXT_SIZE) && cpu_parse_stat(text, &now);
  uint64_t total = 0, used = 0;
  bool memory_ok = text && cpu_read_proc_file("/proc/meminfo", text, PROC_TEXT_SIZE) &&
                   cpu_parse_meminfo(text, &total, &used);
  free(text);
  pthread_mutex_lock(&m->lock);
  if (gpu) {
    free(m->gpu_samples);
    m->gpu_samples = gpu;
  }
  if (cpu_ok) {
    /* The first reading covers the time since boot. */
    m->cpu_utilization = cpu_utilization(m->cpu_ok ? &m->cpu_last : &(cpu_times){0}, &now);
    m->cpu_last = now;
    m->cpu_ok = true;
  }
  if (memory_ok) {
    m->memory_total = total;
    m->memory_used = used;
    m->memory_ok = true;
  }
  pthread_mutex_unlock(&m->lock);
}

static void *poll_main(void *arg) {
  inferd_metrics *m = arg;
  pthread_mutex_lock(&m->lock);
  while (!m->stop) {
    struct timespec until = clock_deadline_after((uint64_t)m->interval_ms * 1000000ull);
    pthread_cond_timedwait(&m->wake, &m->lock, &until);
    if (m->stop) break;
    pthread_mutex_unlock(&m->lock);
    poll_once(m);
    pthread_mutex_lock(&m->lock);
  }
  pthread_mutex_unlock(&m->lock);
  return NULL;
}

inferd_error *metrics_create_with_gpu(inferd_server *server, const inferd_metrics_options *options,
                                      gpu_monitor *gpu, inferd_metrics **out) {
  *out = NULL;
  inferd_metrics_options o = options ? *options : (inferd_metrics_options){.counter_latencies = true};
  inferd_metrics *m = mem_zalloc(sizeof(*m));
  inferd_error *e = metrics_parse_quantiles(o.summary_quantiles ? o.summary_quantiles : METRICS_DEFAULT_QUANTILES,
                                            &m->quantiles);
  if (e) {
    gpu_monitor_close(gpu);
    free(m);
    return e;
  }
  m->server = server;
  m->counter_latencies = o.counter_latencies;
  m->interval_ms = o.interval_ms > 0 ? o.interval_ms : DEFAULT_INTERVAL_MS;
  m->cpu = o.cpu;
  m->gpu = gpu;
  pthread_mutex_init(&m->lock, NULL);
  pthread_cond_init(&m->wake, NULL);
  poll_once(m);
  if ((m->gpu || m->cpu) && pthread_create(&m->thread, NULL, poll_main, m) != 0) {
    inferd_metrics_delete(m);
    return err_new(INFERD_ERROR_INTERNAL, "cannot start the metrics polling thread");
  }
  m->thread_started = m->gpu || m->cpu;
  *out = m;
  return NULL;
}

inferd_error *inferd_metrics_create(inferd_server *server, const inferd_metrics_options *options,
                                    inferd_metrics **out) {
  gpu_monitor *gpu = NULL;
  if (options && options->gpu) {
    inferd_error *e = gpu_monitor_open(NULL, &gpu);
    if (e) {
      log_info("GPU metrics disabled: %s", inferd_error_message(e));
      inferd_error_delete(e);
    } else {
      log_info("GPU metrics: %d GPU%s through NVML", gpu_monitor_count(gpu), gpu_monitor_count(gpu) == 1 ? "" : "s");
    }
  }
  return metrics_create_with_gpu(server, options, gpu, out);
}

void inferd_metrics_delete(inferd_metrics *m) {
  if (!m) return;
  if (m->thread_started) {
    pthread_mutex_lock(&m->lock);
    m->stop = true;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
  }
  gpu_monitor_close(m->gpu);
  free(m->gpu_samples);
  pthread_mutex_destroy(&m->lock);
  pthread_cond_destroy(&m->wake);
  free(m);
}

/* ---- snapshot of the models ---- */

static void read_version(const inferd_metrics *m, model_version *mv, version_snapshot *v, uint64_t *histogram) {
  model_stats *st = &mv->stats;
  expo_buf labels = {0};
  char number[32];
  snprintf(number, sizeof(number), "%lld", (long long)mv->number);
  expo_label(&labels, "model", mv->name);
  expo_label(&labels, "version", number);
  size_t len;
  v->labels = expo_take(&labels, &len);
  v->success = atomic_load_explicit(&st->success.count, memory_order_relaxed);
  v->inference_count = atomic_load_explicit(&st->inference_count, memory_order_relaxed);
  v->execution_count = atomic_load_explicit(&st->execution_count, memory_order_relaxed);
  for (int r = 0; r < STAT_FAILURE_REASON_COUNT; r++)
    v->failures[r] = atomic_load_explicit(&st->failures[r], memory_order_relaxed);
  /* Compute times per request of each batch, as Triton's metrics count them. */
  const stat_duration *d[DURATION_KINDS] = {&st->success, &st->queue, &st->request_compute_input,
                                            &st->request_compute_infer, &st->request_compute_output};
  for (int k = 0; k < DURATION_KINDS; k++) {
    v->count[k] = atomic_load_explicit(&d[k]->count, memory_order_relaxed);
    v->ns[k] = atomic_load_explicit(&d[k]->ns, memory_order_relaxed);
  }
  v->pending = scheduler_queued(mv->sched);
  v->summaries = d[0]->window != NULL;
  if (!v->summaries) return;
  int nq = m->quantiles.count;
  v->quantiles = mem_alloc((size_t)DURATION_KINDS * (size_t)nq * sizeof(double));
  uint64_t now = latency_clock_ns();
  for (int k = 0; k < DURATION_KINDS; k++) {
    memset(histogram, 0, LATENCY_BUCKETS * sizeof(uint64_t));
    uint64_t total = d[k]->window ? latency_window_collect(d[k]->window, now, histogram) : 0;
    for (int q = 0; q < nq; q++)
      v->quantiles[k * nq + q] = latency_histogram_quantile(histogram, total, m->quantiles.q[q]);
  }
}

/* Every served version, read; *count of them. */
static version_snapshot *snapshot_versions(const inferd_metrics *m, int *count) {
  int n;
  model_version **held = server_retain_versions(m->server, &n);
  version_snapshot *versions = mem_zalloc((size_t)(n + 1) * sizeof(*versions));
  uint64_t *histogram = mem_alloc(LATENCY_BUCKETS * sizeof(uint64_t));
  for (int i = 0; i < n; i++) read_version(m, held[i], &versions[i], histogram);
  free(histogram);
  /* The owner retires a version only once no one else holds it, so this
   * never frees one on this thread. */
  server_release_versions(held, n);
  *count = n;
  return versions;
}

/* ---- rendering ---- */

static void render_models(const inferd_metrics *m, expo_buf *b, const version_snapshot *v, int n) {
  expo_family(b, "nv_inference_request_success", "counter",
              "Number of successful inference requests, all batch sizes");
  for (int i = 0; i < n; i++) expo_sample_u64(b, "nv_inference_request_success", v[i].labels, v[i].success);
  expo_family(b, "nv_inference_request_failure", "counter", "Number of failed inference requests, all batch sizes");
  for (int i = 0; i < n; i++)
    for (int r = 0; r < STAT_FAILURE_REASON_COUNT; r++) {
      expo_buf labels = {0};
      expo_printf(&labels, "%s", v[i].labels);
      expo_label(&labels, "reason", stat_failure_reason_name((stat_failure_reason)r));
      expo_sample_u64(b, "nv_inference_request_failure", labels.data, v[i].failures[r]);
      expo_free(&labels);
    }
  expo_family(b, "nv_inference_count", "counter", "Number of inferences performed (a batch of n counts n)");
  for (int i = 0; i < n; i++) expo_sample_u64(b, "nv_inference_count", v[i].labels, v[i].inference_count);
  expo_family(b, "nv_inference_exec_count", "counter", "Number of model executions performed (batches)");
  for (int i = 0; i < n; i++) expo_sample_u64(b, "nv_inference_exec_count", v[i].labels, v[i].execution_count);
  expo_family(b, "nv_inference_pending_request_count", "gauge",
              "Instantaneous number of pending requests awaiting execution per model");
  for (int i = 0; i < n; i++)
    expo_sample_u64(b, "nv_inference_pending_request_count", v[i].labels, (uint64_t)v[i].pending);
  if (m->counter_latencies)
    for (int k = 0; k < DURATION_KINDS; k++) {
      expo_family(b, durations[k].counter, "counter", durations[k].counter_help);
      for (int i = 0; i < n; i++) expo_sample_u64(b, durations[k].counter, v[i].labels, v[i].ns[k] / 1000);
    }
  bool any_summary = false;
  for (int i = 0; i < n; i++) any_summary |= v[i].summaries;
  if (!any_summary) return;
  const metrics_quantiles *mq = &m->quantiles;
  for (int k = 0; k < DURATION_KINDS; k++) {
    const char *name = durations[k].summary;
    expo_family(b, name, "summary", durations[k].summary_help);
    char count_name[96], sum_name[96];
    snprintf(count_name, sizeof(count_name), "%s_count", name);
    snprintf(sum_name, sizeof(sum_name), "%s_sum", name);
    for (int i = 0; i < n; i++) {
      if (!v[i].summaries) continue;
      for (int q = 0; q < mq->count; q++) {
        expo_buf labels = {0};
        char quantile[32];
        snprintf(quantile, sizeof(quantile), "%g", mq->q[q]);
        expo_printf(&labels, "%s", v[i].labels);
        expo_label(&labels, "quantile", quantile);
        expo_sample_double(b, name, labels.data, v[i].quantiles[k * mq->count + q]);
        expo_free(&labels);
      }
      expo_sample_u64(b, sum_name, v[i].labels, v[i].ns[k] / 1000);
      expo_sample_u64(b, count_name, v[i].labels, v[i].count[k]);
    }
  }
}

static void render_gpus(expo_buf *b, const gpu_sample *g, int n) {
  char (*labels)[GPU_UUID_SIZE + 32] = mem_zalloc((size_t)(n + 1) * sizeof(*labels));
  for (int i = 0; i < n; i++) {
    expo_buf l = {0};
    expo_label(&l, "gpu_uuid", g[i].uuid);
    snprintf(labels[i], sizeof(labels[i]), "%s", l.data);
    expo_free(&l);
  }
#define GPU_FAMILY(name, type, help, flag, expr)                                 \
  expo_family(b, name, type, help);                                               \
  for (int i = 0; i < n; i++)                                                     \
    if (g[i].flag) expo_sample_double(b, name, labels[i], (double)(expr));
  GPU_FAMILY("nv_gpu_utilization", "gauge", "GPU utilization rate [0.0 - 1.0]", has_utilization, g[i].utilization)
  GPU_FAMILY("nv_gpu_memory_total_bytes", "gauge", "GPU total memory, in bytes", has_memory, g[i].memory_total)
  GPU_FAMILY("nv_gpu_memory_used_bytes", "gauge", "GPU used memory, in bytes", has_memory, g[i].memory_used)
  GPU_FAMILY("nv_gpu_power_usage", "gauge", "GPU power usage in watts", has_power, g[i].power_watts)
  GPU_FAMILY("nv_gpu_power_limit", "gauge", "GPU power management limit in watts", has_power_limit,
             g[i].power_limit_watts)
  GPU_FAMILY("nv_energy_consumption", "counter", "GPU energy consumption in joules since the server started",
             has_energy, g[i].energy_joules)
#undef GPU_FAMILY
  free(labels);
}

inferd_error *inferd_metrics_render(inferd_metrics *m, char **text, size_t *length) {
  int n = 0;
  version_snapshot *versions = snapshot_versions(m, &n);
  expo_buf b = {0};
  render_models(m, &b, versions, n);
  for (int i = 0; i < n; i++) {
    free(versions[i].labels);
    free(versions[i].quantiles);
  }
  free(versions);
  pthread_mutex_lock(&m->lock);
  if (m->gpu && m->gpu_samples) render_gpus(&b, m->gpu_samples, gpu_monitor_count(m->gpu));
  if (m->cpu && m->cpu_ok) {
    expo_family(&b, "nv_cpu_utilization", "gauge", "CPU utilization rate [0.0 - 1.0], all cores, over the last interval");
    expo_sample_double(&b, "nv_cpu_utilization", "", m->cpu_utilization);
  }
  if (m->cpu && m->memory_ok) {
    expo_family(&b, "nv_cpu_memory_total_bytes", "gauge", "CPU total memory (RAM), in bytes");
    expo_sample_u64(&b, "nv_cpu_memory_total_bytes", "", m->memory_total);
    expo_family(&b, "nv_cpu_memory_used_bytes", "gauge", "CPU used memory (RAM), in bytes");
    expo_sample_u64(&b, "nv_cpu_memory_used_bytes", "", m->memory_used);
  }
  pthread_mutex_unlock(&m->lock);
  *text = expo_take(&b, length);
  return NULL;
}
