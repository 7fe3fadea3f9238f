#include "server/model.h"

#include <stdlib.h>
#include <unistd.h>

#include "base/error.h"
#include "base/mem.h"

inferd_error *model_version_load(const char *name, int64_t number, const char *model_path,
                                 const inferd_plan_options *plan_options, const scheduler_config *config,
                                 model_version **out) {
  *out = NULL;
  model_version *mv = mem_zalloc(sizeof(*mv));
  atomic_init(&mv->refs, 1);
  mv->name = mem_strdup(name);
  mv->number = number;
  inferd_plan_options opts = *plan_options;
  if (config->max_batch_size > 0) opts.max_batch_size = config->max_batch_size;
  inferd_error *e = inferd_plan_load(model_path, &opts, &mv->plan);
  if (!e) {
    mv->n_outputs = inferd_plan_output_count(mv->plan);
    mv->outputs = mem_zalloc((size_t)(mv->n_outputs + 1) * sizeof(scheduler_output_info));
    stats_init(&mv->stats, config->max_batch_size);
    if (config->latency_summaries) stats_enable_summaries(&mv->stats);
    e = scheduler_create(mv->plan, config, mv->outputs, &mv->stats, number, &mv->sched);
  }
  if (e) {
    model_version_release(mv);
    return err_wrap(e, "model '%s' version %lld", name, (long long)number);
  }
  *out = mv;
  return NULL;
}

void model_version_retain(model_version *mv) { atomic_fetch_add_explicit(&mv->refs, 1, memory_order_relaxed); }

void model_version_release(model_version *mv) {
  if (!mv || atomic_fetch_sub_explicit(&mv->refs, 1, memory_order_acq_rel) != 1) return;
  scheduler_delete(mv->sched);
  inferd_plan_delete(mv->plan);
  for (int i = 0; mv->outputs && i < mv->n_outputs; i++) {
    for (int l = 0; l < mv->outputs[i].n_labels; l++) free(mv->outputs[i].labels[l]);
    free(mv->outputs[i].labels);
  }
  free(mv->outputs);
  free(mv->client_inputs);
  free(mv->client_outputs);
  stats_free(&mv->stats);
  free(mv->name);
  free(mv);
}

void model_version_retire(model_version *mv) {
  if (!mv) return;
  /* Queued requests still run (the scheduler is alive until the end), so
   * this wait ends; a millisecond poll keeps the request path free of any
   * extra signalling. */
  while (atomic_load_explicit(&mv->refs, memory_order_acquire) > 1) usleep(1000);
  model_version_release(mv);
}

int64_t model_version_number(const model_version *mv) { return mv->number; }
