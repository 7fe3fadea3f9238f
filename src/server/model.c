#include "server/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/files.h"
#include "base/log.h"
#include "base/mem.h"

static void device_name(inferd_device d, char *buf, size_t size) {
  if (d.kind == INFERD_DEVICE_CUDA)
    snprintf(buf, size, "cuda:%d", d.ordinal);
  else
    snprintf(buf, size, "cpu");
}

/* A file the configuration names, relative to the model's directory (the
 * one with config.pbtxt: the model file's folder's parent) unless absolute. */
static char *beside_config(const char *model_path, const char *name) {
  if (name[0] == '/') return mem_strdup(name);
  const char *slash = strrchr(model_path, '/');
  size_t up = slash ? (size_t)(slash - model_path) : 0;
  while (up > 0 && model_path[up - 1] != '/') up--;
  const size_t len = up + strlen(name) + 1;
  char *path = mem_alloc(len);
  snprintf(path, len, "%.*s%s", (int)up, model_path, name);
  return path;
}

/* A GPU plan's tactic cache: "<model file>.tactics" beside the model file,
 * or under the folder the configuration names (made if missing), where
 * models of one name share it (its choices are keyed by layer). */
static inferd_error *tactic_cache_path(const char *model_path, const char *dir, char **path) {
  const char *slash = strrchr(model_path, '/');
  if (!dir) {
    *path = mem_alloc(strlen(model_path) + sizeof(".tactics"));
    sprintf(*path, "%s.tactics", model_path);
    return NULL;
  }
  char *folder = beside_config(model_path, dir);
  inferd_error *e = files_make_dirs(folder);
  if (e) {
    e = err_wrap(e, "trt_engine_cache_path '%s'", dir);
  } else {
    const char *file = slash ? slash + 1 : model_path;
    const size_t len = strlen(folder) + strlen(file) + sizeof("/.tactics");
    *path = mem_alloc(len);
    snprintf(*path, len, "%s/%s.tactics", folder, file);
  }
  free(folder);
  return e;
}

/* The plan of every instance: one compiled per distinct device and
 * precision, in the order instances first ask for them. */
static inferd_error *load_plans(model_version *mv, const char *model_path, const inferd_plan_options *opts,
                                const model_instance_spec *instances, int n_instances, inferd_plan **instance_plans) {
  mv->plans = mem_zalloc((size_t)(n_instances + 1) * sizeof(*mv->plans));
  inferd_device *devices = mem_zalloc((size_t)(n_instances + 1) * sizeof(*devices));
  inferd_precision *precisions = mem_zalloc((size_t)(n_instances + 1) * sizeof(*precisions));
  inferd_error *e = NULL;
  for (int i = 0; i < n_instances && !e; i++) {
    inferd_plan_options o = *opts;
    char *cache = NULL;
    if (instances) {
      o.device = instances[i].device;
      o.precision = instances[i].precision;
      o.int8_keep = instances[i].int8_keep;
      const char *name = instances[i].calibration_cache;
      if (name) o.calibration_cache = cache = beside_config(model_path, name);
    }
    int p = 0;
    while (p < mv->n_plans && !(devices[p].kind == o.device.kind && devices[p].ordinal == o.device.ordinal &&
                                 precisions[p] == o.precision))
      p++;
    if (p == mv->n_plans) {
      char where[32];
      device_name(o.device, where, sizeof(where));
      /* A GPU plan times its kernels once per batch bucket, at load (so no
       * request waits for it), and keeps the winners next to the model so
       * the next load skips the timing. */
      char *tactics = NULL;
      if (o.device.kind == INFERD_DEVICE_CUDA) {
        o.build_all_batch_sizes = true;
        if (!o.tactic_cache && !(instances && instances[i].tactic_cache_off)) {
          e = tactic_cache_path(model_path, instances ? instances[i].tactic_cache_dir : NULL, &tactics);
          o.tactic_cache = tactics;
        }
      }
      if (!e) e = inferd_plan_load(model_path, &o, &mv->plans[p]);
      free(tactics);
      free(cache);
      cache = NULL;
      if (e) {
        e = err_wrap(e, "instance %s on %s", instances ? instances[i].name : "0", where);
        break;
      }
      devices[p] = o.device;
      precisions[p] = o.precision;
      mv->n_plans++;
      char threads[40] = "";
      if (o.device.kind == INFERD_DEVICE_CPU && o.threads > 0)
        snprintf(threads, sizeof(threads), ", %d thread%s per instance", o.threads, o.threads == 1 ? "" : "s");
      log_info("model '%s' version %lld: plan on %s (%s backend, %s%s)", mv->name, (long long)mv->number, where,
               inferd_plan_backend_name(mv->plans[p]), inferd_precision_name(inferd_plan_precision(mv->plans[p])),
               threads);
    }
    free(cache);
    instance_plans[i] = mv->plans[p];
    if (instances) log_verbose("model '%s' version %lld: instance %s", mv->name, (long long)mv->number, instances[i].name);
  }
  free(devices);
  free(precisions);
  if (!e) mv->plan = mv->plans[0];
  return e;
}

inferd_error *model_version_load(const char *name, int64_t number, const char *model_path,
                                 const inferd_plan_options *plan_options, const scheduler_config *config,
                                 const model_instance_spec *instances, model_version **out) {
  *out = NULL;
  model_version *mv = mem_zalloc(sizeof(*mv));
  atomic_init(&mv->refs, 1);
  atomic_init(&mv->retiring, false);
  pthread_mutex_init(&mv->retire_lock, NULL);
  pthread_cond_init(&mv->released, NULL);
  mv->name = mem_strdup(name);
  mv->number = number;
  inferd_plan_options opts = *plan_options;
  if (config->max_batch_size > 0) opts.max_batch_size = config->max_batch_size;
  int n_instances = config->instance_count > 0 ? config->instance_count : 1;
  inferd_plan **instance_plans = mem_zalloc((size_t)(n_instances + 1) * sizeof(*instance_plans));
  inferd_error *e = load_plans(mv, model_path, &opts, instances, n_instances, instance_plans);
  if (!e) {
    mv->n_outputs = inferd_plan_output_count(mv->plan);
    mv->outputs = mem_zalloc((size_t)(mv->n_outputs + 1) * sizeof(scheduler_output_info));
    stats_init(&mv->stats, config->max_batch_size);
    if (config->latency_summaries) stats_enable_summaries(&mv->stats);
    e = scheduler_create(instance_plans, config, mv->outputs, &mv->stats, number, &mv->sched);
  }
  free(instance_plans);
  if (e) {
    model_version_release(mv);
    return err_wrap(e, "model '%s' version %lld", name, (long long)number);
  }
  *out = mv;
  return NULL;
}

void model_version_retain(model_version *mv) { atomic_fetch_add_explicit(&mv->refs, 1, memory_order_relaxed); }

void model_version_release(model_version *mv) {
  if (!mv) return;
  /* Sequentially consistent, with the flag's store and load: the release
   * that leaves the retiring thread alone either sees the flag and
   * signals, or came before the retiring thread looked at the count. */
  const int was = atomic_fetch_sub(&mv->refs, 1);
  if (was == 2 && atomic_load(&mv->retiring)) {
    pthread_mutex_lock(&mv->retire_lock);
    pthread_cond_signal(&mv->released);
    pthread_mutex_unlock(&mv->retire_lock);
  }
  if (was != 1) return;
  scheduler_delete(mv->sched);
  for (int i = 0; i < mv->n_plans; i++) inferd_plan_delete(mv->plans[i]);
  free(mv->plans);
  for (int i = 0; mv->outputs && i < mv->n_outputs; i++) {
    for (int l = 0; l < mv->outputs[i].n_labels; l++) free(mv->outputs[i].labels[l]);
    free(mv->outputs[i].labels);
  }
  free(mv->outputs);
  free(mv->client_inputs);
  free(mv->client_outputs);
  stats_free(&mv->stats);
  free(mv->name);
  pthread_cond_destroy(&mv->released);
  pthread_mutex_destroy(&mv->retire_lock);
  free(mv);
}

void model_version_retire(model_version *mv) {
  if (!mv) return;
  /* Queued requests still run (the scheduler is alive until the end), so
   * this wait ends: the release that leaves this reference alone signals. */
  atomic_store(&mv->retiring, true);
  pthread_mutex_lock(&mv->retire_lock);
  while (atomic_load(&mv->refs) > 1) pthread_cond_wait(&mv->released, &mv->retire_lock);
  pthread_mutex_unlock(&mv->retire_lock);
  model_version_release(mv);
}

int64_t model_version_number(const model_version *mv) { return mv->number; }
