/* The repository's view of a model configuration, on model_config.c. */
#include "server/model_settings.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "base/mem.h"
#include "server/model.h"
#include "server/model_config.h"

struct model_settings {
  model_config *config;
  char *dir;
  char *real_dir; /* dir with every symlink resolved: the boundary of model_settings_path */
  char *name;
  bool strict;
};

void model_settings_free(model_settings *s) {
  if (!s) return;
  model_config_free(s->config);
  free(s->dir);
  free(s->real_dir);
  free(s->name);
  free(s);
}

inferd_error *model_settings_read(const char *model_dir, const char *name, const char *config_json, bool strict,
                                  model_settings **out) {
  *out = NULL;
  model_settings *s = mem_zalloc(sizeof(*s));
  s->dir = mem_strdup(model_dir);
  s->name = mem_strdup(name);
  s->strict = strict;
  s->real_dir = realpath(model_dir, NULL);
  char path[PATH_MAX];
  int n = snprintf(path, sizeof(path), "%s/config.pbtxt", model_dir);
  inferd_error *e = NULL;
  if (n < 0 || (size_t)n >= sizeof(path)) {
    e = err_new(INFERD_ERROR_INVALID_ARG, "model folder path too long");
  } else if (!s->real_dir) {
    e = err_new(INFERD_ERROR_NOT_FOUND, "model folder '%s': %s", model_dir, strerror(errno));
  } else if (config_json) {
    e = model_config_parse_json(config_json, strlen(config_json), "the load request's configuration", &s->config);
  } else {
    e = model_config_load(path, &s->config);
    if (e && inferd_error_code_of(e) == INFERD_ERROR_NOT_FOUND) {
      /* No config.pbtxt: everything comes from the model (or strict mode
       * refuses at completion). */
      inferd_error_delete(e);
      e = NULL;
      s->config = model_config_new(path);
    }
  }
  if (!e) e = model_config_check_platform(s->config);
  if (e) {
    model_settings_free(s);
    return e;
  }
  for (int i = 0; i < s->config->warning_count; i++) log_warn("model '%s': %s", name, s->config->warnings[i]);
  *out = s;
  return NULL;
}

version_policy_kind model_settings_version_policy(const model_settings *s, int *latest_n, const int64_t **versions,
                                                  int *n_versions) {
  const model_version_policy *p = &s->config->version_policy;
  *latest_n = p->num_versions ? (int)p->num_versions : 1;
  *versions = p->versions;
  *n_versions = p->version_count;
  switch (p->kind) {
    case MODEL_VERSIONS_ALL: return VERSION_POLICY_ALL;
    case MODEL_VERSIONS_SPECIFIC: return VERSION_POLICY_SPECIFIC;
    default: return VERSION_POLICY_LATEST;
  }
}

const char *model_settings_disabled_passes(const model_settings *s) {
  return s->config->has_graph_level && s->config->graph_level < 0 ? "all" : NULL;
}

const char *model_settings_model_filename(const model_settings *s) {
  const char *f = s->config->default_model_filename;
  return f && *f ? f : "model.onnx";
}

int model_settings_optional_inputs(const model_settings *s, const char ***names) {
  int n = 0;
  *names = mem_zalloc((size_t)(s->config->input_count + 1) * sizeof(char *));
  for (int i = 0; i < s->config->input_count; i++)
    if (s->config->inputs[i].optional) (*names)[n++] = s->config->inputs[i].name;
  return n;
}

inferd_error *model_settings_complete(model_settings *s, const inferd_tensor_info *inputs, int n_inputs,
                                      const inferd_tensor_info *outputs, int n_outputs, bool dynamic_batch) {
  model_io_info io = {.inputs = inputs,
                      .input_count = n_inputs,
                      .outputs = outputs,
                      .output_count = n_outputs,
                      .dynamic_batch = dynamic_batch};
  return model_config_complete(s->config, s->name, &io, s->strict);
}

/* Instances of a placed group: `count` on each of its GPUs, or `count` on
 * the CPU. */
static int group_instances(const model_instance_group *g) {
  return g->kind == MODEL_KIND_GPU ? g->count * g->gpu_count : g->count;
}

inferd_error *model_settings_place(model_settings *s, const model_gpu_set *gpus, model_instance_spec **instances,
                                   int *count) {
  *instances = NULL;
  *count = 0;
  model_config *m = s->config;
  ERR_TRY(model_config_place_instances(m, gpus));
  int n = 0;
  for (int g = 0; g < m->instance_group_count; g++) n += group_instances(&m->instance_groups[g]);
  model_instance_spec *list = mem_zalloc((size_t)(n + 1) * sizeof(*list));
  bool gpu_precision = m->precision != INFERD_PRECISION_DEFAULT && m->precision != INFERD_PRECISION_FP32;
  for (int g = 0; g < m->instance_group_count; g++) {
    const model_instance_group *grp = &m->instance_groups[g];
    if (grp->kind != MODEL_KIND_GPU) {
      if (gpu_precision)
        log_warn("model '%s': precision %s applies to GPU instances; instance group '%s' runs on the CPU in %s",
                 s->name, inferd_precision_name(m->precision), grp->name,
                 inferd_precision_name(m->cpu_precision == INFERD_PRECISION_DEFAULT ? INFERD_PRECISION_FP32
                                                                                    : m->cpu_precision));
      for (int k = 0; k < grp->count; k++) {
        model_instance_spec *spec = &list[(*count)++];
        snprintf(spec->name, sizeof(spec->name), "%.160s_%d", grp->name, k);
        spec->device = (inferd_device){.kind = INFERD_DEVICE_CPU};
        spec->precision = m->cpu_precision;
        if (m->cpu_precision == INFERD_PRECISION_INT8) {
          spec->calibration_cache = m->calibration_cache;
          spec->int8_keep = m->int8_keep;
        }
      }
      continue;
    }
    for (int d = 0; d < grp->gpu_count; d++)
      for (int k = 0; k < grp->count; k++) {
        model_instance_spec *spec = &list[(*count)++];
        snprintf(spec->name, sizeof(spec->name), "%.160s_%d_gpu%d", grp->name, k, grp->gpus[d]);
        spec->device = (inferd_device){.kind = INFERD_DEVICE_CUDA, .ordinal = grp->gpus[d]};
        spec->precision = m->precision;
        spec->tactic_cache_dir = m->tactic_cache_dir;
        spec->tactic_cache_off = m->tactic_cache_off;
      }
  }
  *instances = list;
  return NULL;
}

const char *model_settings_platform(const model_settings *s) { return s->config->platform; }
int model_settings_max_batch_size(const model_settings *s) { return s->config->max_batch_size; }

void model_settings_scheduler(const model_settings *s, int threads_per_instance, scheduler_config *c) {
  const model_config *m = s->config;
  const model_dynamic_batching *db = &m->dynamic_batching;
  *c = (scheduler_config){.max_batch_size = m->max_batch_size, .dynamic_batching = db->enabled};
  for (int i = 0; i < db->preferred_batch_size_count && i < SCHEDULER_MAX_PREFERRED; i++)
    c->preferred[c->n_preferred++] = db->preferred_batch_sizes[i];
  c->max_queue_delay_us = db->max_queue_delay_microseconds;
  c->preserve_ordering = db->preserve_ordering;
  c->priority_levels = db->priority_levels ? (int)db->priority_levels : 1;
  c->default_priority_level = db->default_priority_level ? (int)db->default_priority_level : c->priority_levels;
  const model_queue_policy *q = &db->default_queue_policy;
  c->default_timeout_us = q->default_timeout_microseconds;
  c->allow_timeout_override = q->allow_timeout_override;
  c->delay_on_timeout = q->timeout_action == MODEL_TIMEOUT_DELAY;
  c->max_queue_size = q->max_queue_size;
  c->instance_count = 0;
  int cpu_instances = 0;
  for (int g = 0; g < m->instance_group_count; g++) {
    c->instance_count += group_instances(&m->instance_groups[g]);
    if (m->instance_groups[g].kind != MODEL_KIND_GPU) cpu_instances += m->instance_groups[g].count;
  }
  if (c->instance_count < 1) c->instance_count = 1;
  if (m->intra_op_threads > 0) {
    c->threads_per_instance = m->intra_op_threads;
  } else if (threads_per_instance > 0) {
    c->threads_per_instance = threads_per_instance;
  } else {
    /* Share the cores among the CPU instances: oversubscribing a CPU with
     * OpenMP teams that spin makes every batch slower. (A GPU instance's
     * host work is one thread's.) */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int per = (int)(cores > 0 ? cores : 1) / (cpu_instances > 0 ? cpu_instances : 1);
    c->threads_per_instance = per > 0 ? per : 1;
  }
}

inferd_error *model_settings_path(const model_settings *s, const char *relative, const char *what, char *out) {
  char joined[PATH_MAX];
  int n = snprintf(joined, sizeof(joined), "%s/%s", s->real_dir, relative);
  if (n < 0 || (size_t)n >= sizeof(joined)) return err_new(INFERD_ERROR_INVALID_ARG, "%s '%s': path too long", what, relative);
  if (!realpath(joined, out))
    return err_new(INFERD_ERROR_NOT_FOUND, "%s '%s' in model folder '%s': %s", what, relative, s->dir, strerror(errno));
  size_t len = strlen(s->real_dir);
  if (strncmp(out, s->real_dir, len) != 0 || out[len] != '/')
    return err_new(INFERD_ERROR_INVALID_ARG, "%s '%s' resolves to '%s', outside the model folder '%s'", what, relative, out,
                   s->real_dir);
  return NULL;
}

inferd_error *model_settings_labels(const model_settings *s, const char *output, char ***labels, int *count) {
  *labels = NULL;
  *count = 0;
  const model_tensor_config *o = model_config_find_output(s->config, output);
  if (!o || !o->label_filename || !*o->label_filename) return NULL;
  char path[PATH_MAX];
  inferd_error *e = model_settings_path(s, o->label_filename, "label file", path);
  if (!e) e = model_config_load_labels(path, labels, count);
  return err_wrap(e, "output '%s'", output);
}

bool model_settings_client_dims(const model_settings *s, const char *name, bool input, int *rank, int64_t *dims) {
  const model_tensor_config *t = input ? model_config_find_input(s->config, name) : model_config_find_output(s->config, name);
  if (!t || !t->has_reshape) return false;
  *rank = t->rank;
  for (int d = 0; d < t->rank; d++) dims[d] = t->dims[d];
  return true;
}

const struct model_config *model_settings_config(const model_settings *s) { return s->config; }

char *model_settings_json(const model_settings *s) {
  char *json = NULL;
  inferd_error *e = model_config_to_json(s->config, &json);
  if (e) {
    log_error("model '%s': %s", s->name, inferd_error_message(e));
    inferd_error_delete(e);
    return NULL;
  }
  return json;
}
