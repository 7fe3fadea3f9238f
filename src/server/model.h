/*
 * A loaded model version: its compiled plan, its scheduler and instances,
 * and its statistics. Versions are reference counted: the repository holds
 * one reference while the version is served, and every request in flight
 * holds one, so unloading or reloading a model never frees what a running
 * request uses.
 */
#ifndef INFERD_SERVER_MODEL_H
#define INFERD_SERVER_MODEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "inferd.h"
#include "server/scheduler.h"
#include "server/stats.h"

/* One instance of a version: its name ("<group>_<k>" on the CPU,
 * "<group>_<k>_gpu<N>" on GPU N, after Triton's names) and what its plan is
 * compiled for. */
typedef struct model_instance_spec {
  char name[192];
  inferd_device device;
  inferd_precision precision;
  /* INT8 (CPU): the calibration cache as the configuration names it
   * (relative to the model's directory unless absolute) and the layers
   * kept in FP32; NULL otherwise. Point into the configuration. */
  const char *calibration_cache;
  const char *int8_keep;
  /* GPU: the tactic cache's folder as the configuration names it (NULL:
   * beside the model file), or no tactic cache at all. */
  const char *tactic_cache_dir;
  bool tactic_cache_off;
} model_instance_spec;

typedef struct model_version {
  _Atomic int refs;
  /* model_version_retire waits on `released` until it holds the last
   * reference; a release that leaves one reference signals it then. */
  atomic_bool retiring;
  pthread_mutex_t retire_lock;
  pthread_cond_t released;
  char *name;
  int64_t number;
  /* One plan per distinct device (and precision) of the instances: weights
   * live once per GPU, execution contexts once per instance. plan is
   * plans[0], whose inputs and outputs every plan shares. */
  inferd_plan *plan;
  inferd_plan **plans;
  int n_plans;
  scheduler *sched;
  model_stats stats;
  scheduler_output_info *outputs;
  int n_outputs;
  /* The shape clients see of each input and output (the plan's unless the
   * configuration reshapes it), batch dimension included as -1 when the
   * model batches. Set by the repository after loading. */
  inferd_tensor_info *client_inputs, *client_outputs;
} model_version;

/* Compiles the model file once per device of `instances`
 * (config->instance_count of them; NULL: all on the CPU at the options'
 * precision) and starts them. Takes one reference for the caller. */
inferd_error *model_version_load(const char *name, int64_t number, const char *model_path,
                                 const inferd_plan_options *plan_options, const scheduler_config *config,
                                 const model_instance_spec *instances, model_version **out);
void model_version_retain(model_version *mv);
/* Drops a reference; the last one stops the scheduler (running what is
 * queued) and frees the version. */
void model_version_release(model_version *mv);
/* Drops the owner's reference once every request has let go of the
 * version. Requests answer on the version's own instance threads; if one of
 * them dropped the last reference it would stop the scheduler from inside it
 * (joining itself), so owners retire versions instead of releasing them. */
void model_version_retire(model_version *mv);
int64_t model_version_number(const model_version *mv);

#endif
