/*
 * Checks of a model configuration that need no model: value ranges, names
 * given and unique, reshape element counts, batching and priority settings
 * consistent with max_batch_size. The rules are Triton's (model_config.proto
 * comments and its ValidateModelConfig), with one deliberate difference: an
 * empty reshape (a scalar) is accepted for a model that does not batch,
 * because inferd's engine runs rank-0 tensors and completion describes them
 * that way.
 *
 * Messages point at the field's line:column through the paths the reader
 * recorded; a field that was not written (a default) is reported at the
 * nearest enclosing entry that was.
 */
#include <stdio.h>
#include <string.h>

#include "base/dims.h"
#include "base/error.h"
#include "server/model_config_internal.h"

/* Element count of a shape: -1 when any dimension is -1, and an empty shape
 * counts 1 (a scalar). False on overflow. */
static bool element_count(const int64_t *dims, int rank, int64_t *count) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) {
    if (dims[i] == -1) {
      *count = -1;
      return true;
    }
    if (__builtin_mul_overflow(n, dims[i], &n)) return false;
  }
  *count = n;
  return true;
}

/* With -1 dims on both sides, the products between consecutive -1s must
 * match one for one: [2,4,-1,6] reshapes to [8,-1,1,6], not to [8,-1,3,2]. */
static bool wildcard_segments_match(const int64_t *a, int ra, const int64_t *b, int rb) {
  int ia = 0, ib = 0;
  for (;;) {
    int64_t pa = 1, pb = 1;
    for (; ia < ra && a[ia] != -1; ia++)
      if (__builtin_mul_overflow(pa, a[ia], &pa)) return false;
    for (; ib < rb && b[ib] != -1; ib++)
      if (__builtin_mul_overflow(pb, b[ib], &pb)) return false;
    if (pa != pb) return false;
    bool end_a = ia >= ra, end_b = ib >= rb;
    if (end_a || end_b) return end_a && end_b;
    ia++, ib++;
  }
}

/* A file a configuration names is a plain name inside the model's folder
 * (or its version or warmup folder): no separator, not "." or "..", so it
 * cannot climb out of it or point elsewhere. "" means none. Symlinks are
 * checked where the file is opened (model_settings_path). */
static inferd_error *check_plain_name(const model_config *c, const char *path, const char *field, const char *value) {
  if (!value[0]) return NULL;
  if (strchr(value, '/') || !strcmp(value, ".") || !strcmp(value, ".."))
    return model_config__error(c, path, "%s '%.200s' must be a plain file name in the model's folder (no '/', '.' or '..')",
                               field, value);
  return NULL;
}

static inferd_error *check_dims(const model_config *c, const char *path, const char *what, const char *name,
                                const char *field, const int64_t *dims, int rank) {
  for (int k = 0; k < rank; k++) {
    if (dims[k] < 1 && dims[k] != -1) {
      char p[200];
      snprintf(p, sizeof(p), "%s.%s[%d]", path, field, k);
      return model_config__error(c, p, "%s '%s': %s must be >= 1 or -1 for a dimension of any size, got %lld", what,
                                 name, field, (long long)dims[k]);
    }
  }
  return NULL;
}

static inferd_error *validate_tensors(const model_config *c, bool input, bool completed) {
  const char *what = input ? "input" : "output";
  int n;
  const model_tensor_config *t = model_config__tensors(c, input, &n);
  char path[64], p[128], buf[160], buf2[160];
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof(path), "%s[%d]", what, i);
    const char *name = t[i].name;
    if (!name[0]) return model_config__error(c, path, "%s %d must specify 'name'", what, i);
    for (int j = 0; j < i; j++) {
      if (strcmp(t[j].name, name) == 0) {
        snprintf(p, sizeof(p), "%s.name", path);
        return model_config__error(c, p, "%s '%s' is given more than once", what, name);
      }
    }
    if (completed && t[i].datatype == INFERD_TYPE_INVALID)
      return model_config__error(c, path, "%s '%s' must specify 'data_type'", what, name);
    if (completed && t[i].rank == 0)
      return model_config__error(c, path, "%s '%s' must specify 'dims'", what, name);
    ERR_TRY(check_dims(c, path, what, name, "dims", t[i].dims, t[i].rank));
    if (!input) {
      snprintf(p, sizeof(p), "%s.label_filename", path);
      ERR_TRY(check_plain_name(c, p, "label_filename", t[i].label_filename));
    }
    if (t[i].format != MODEL_FORMAT_NONE && t[i].rank > 0 && t[i].rank != 3) {
      snprintf(p, sizeof(p), "%s.format", path);
      return model_config__error(c, p, "%s '%s': %s needs 3 dims (without the batch dimension), got %d", what, name,
                                 model_config_format_name(t[i].format), t[i].rank);
    }
    if (!t[i].has_reshape) continue;
    snprintf(p, sizeof(p), "%s.reshape", path);
    ERR_TRY(check_dims(c, p, what, name, "shape", t[i].reshape, t[i].reshape_rank));
    if (t[i].rank == 0) continue; /* completion fills dims, or refuses */
    int64_t dims_count, reshape_count;
    if (!element_count(t[i].dims, t[i].rank, &dims_count) ||
        !element_count(t[i].reshape, t[i].reshape_rank, &reshape_count))
      return model_config__error(c, path, "%s '%s': dims or reshape have too many elements", what, name);
    bool same = dims_count == reshape_count &&
                (dims_count != -1 ||
                 wildcard_segments_match(t[i].dims, t[i].rank, t[i].reshape, t[i].reshape_rank));
    if (!same)
      return model_config__error(c, p, "%s '%s': reshape %s does not have the element count of dims %s", what, name,
                                 dims_text(t[i].reshape, t[i].reshape_rank, buf, sizeof(buf)),
                                 dims_text(t[i].dims, t[i].rank, buf2, sizeof(buf2)));
  }
  return NULL;
}

static inferd_error *validate_version_policy(const model_config *c) {
  const model_version_policy *v = &c->version_policy;
  if (v->kind == MODEL_VERSIONS_LATEST && v->num_versions < 1)
    return model_config__error(c, "version_policy.latest.num_versions",
                               "version_policy latest num_versions must be >= 1, got %u", v->num_versions);
  if (v->kind != MODEL_VERSIONS_SPECIFIC) return NULL;
  if (v->version_count == 0)
    return model_config__error(c, "version_policy.specific", "version_policy specific lists no versions");
  for (int k = 0; k < v->version_count; k++) {
    if (v->versions[k] < 1) {
      char p[80];
      snprintf(p, sizeof(p), "version_policy.specific.versions[%d]", k);
      return model_config__error(c, p, "version_policy specific versions must be >= 1, got %lld",
                                 (long long)v->versions[k]);
    }
  }
  return NULL;
}

static inferd_error *validate_instance_groups(const model_config *c) {
  char path[64], p[96];
  int total = 0;
  for (int i = 0; i < c->instance_group_count; i++) {
    const model_instance_group *g = &c->instance_groups[i];
    snprintf(path, sizeof(path), "instance_group[%d]", i);
    char label[160];
    if (g->name[0])
      snprintf(label, sizeof(label), "instance_group '%.120s'", g->name);
    else
      snprintf(label, sizeof(label), "instance_group %d", i);
    if (g->count < 1) {
      snprintf(p, sizeof(p), "%s.count", path);
      return model_config__error(c, p, "%s: count must be >= 1, got %d", label, g->count);
    }
    if (g->count > MODEL_CONFIG_MAX_INSTANCES - total) {
      snprintf(p, sizeof(p), "%s.count", path);
      return model_config__error(c, p, "%s: count %d brings the instances of all groups past %d", label, g->count,
                                 MODEL_CONFIG_MAX_INSTANCES);
    }
    total += g->count;
    if (g->gpu_count > 0 && (g->kind == MODEL_KIND_CPU || g->kind == MODEL_KIND_MODEL)) {
      snprintf(p, sizeof(p), "%s.gpus", path);
      return model_config__error(c, p, "%s: gpus can be given only with KIND_GPU or KIND_AUTO, not %s", label,
                                 model_config_kind_name(g->kind));
    }
    for (int k = 0; k < g->gpu_count; k++) {
      if (g->gpus[k] < 0) {
        snprintf(p, sizeof(p), "%s.gpus[%d]", path, k);
        return model_config__error(c, p, "%s: gpu ids must be >= 0, got %d", label, g->gpus[k]);
      }
    }
  }
  return NULL;
}

static inferd_error *validate_dynamic_batching(const model_config *c, bool max_batch_known) {
  const model_dynamic_batching *d = &c->dynamic_batching;
  if (!d->enabled) return NULL;
  char p[96];
  if (d->preferred_batch_size_count > MODEL_CONFIG_MAX_PREFERRED_SIZES)
    return model_config__error(c, "dynamic_batching.preferred_batch_size",
                               "dynamic_batching lists %d preferred_batch_size values, at most %d are allowed",
                               d->preferred_batch_size_count, MODEL_CONFIG_MAX_PREFERRED_SIZES);
  if (d->max_queue_delay_microseconds > MODEL_CONFIG_MAX_DELAY_US)
    return model_config__error(c, "dynamic_batching.max_queue_delay_microseconds",
                               "dynamic_batching max_queue_delay_microseconds %llu is over the limit of %llu (one hour)",
                               (unsigned long long)d->max_queue_delay_microseconds, MODEL_CONFIG_MAX_DELAY_US);
  if (d->default_queue_policy.default_timeout_microseconds > MODEL_CONFIG_MAX_TIMEOUT_US)
    return model_config__error(c, "dynamic_batching.default_queue_policy.default_timeout_microseconds",
                               "dynamic_batching default_timeout_microseconds %llu is over the limit of %llu (one day)",
                               (unsigned long long)d->default_queue_policy.default_timeout_microseconds,
                               MODEL_CONFIG_MAX_TIMEOUT_US);
  for (int k = 0; k < d->priority_queue_policy_count; k++)
    if (d->priority_queue_policies[k].policy.default_timeout_microseconds > MODEL_CONFIG_MAX_TIMEOUT_US) {
      snprintf(p, sizeof(p), "dynamic_batching.priority_queue_policy[%llu]",
               (unsigned long long)d->priority_queue_policies[k].priority_level);
      return model_config__error(c, p, "dynamic_batching priority_queue_policy default_timeout_microseconds %llu is "
                                 "over the limit of %llu (one day)",
                                 (unsigned long long)d->priority_queue_policies[k].policy.default_timeout_microseconds,
                                 MODEL_CONFIG_MAX_TIMEOUT_US);
    }
  for (int k = 0; k < d->preferred_batch_size_count; k++) {
    int size = d->preferred_batch_sizes[k];
    snprintf(p, sizeof(p), "dynamic_batching.preferred_batch_size[%d]", k);
    if (size < 1) return model_config__error(c, p, "dynamic_batching preferred_batch_size must be >= 1, got %d", size);
    if (max_batch_known && size > c->max_batch_size)
      return model_config__error(c, p, "dynamic_batching preferred_batch_size %d is larger than max_batch_size %d",
                                 size, c->max_batch_size);
  }
  unsigned long long levels = d->priority_levels, def = d->default_priority_level;
  if (levels > MODEL_CONFIG_MAX_PRIORITY_LEVELS)
    return model_config__error(c, "dynamic_batching.priority_levels",
                               "dynamic_batching priority_levels %llu is over the limit of %d", levels,
                               MODEL_CONFIG_MAX_PRIORITY_LEVELS);
  if (levels == 0 && def != 0)
    return model_config__error(c, "dynamic_batching.default_priority_level",
                               "dynamic_batching default_priority_level %llu is larger than priority_levels 0", def);
  if (levels > 0 && (def < 1 || def > levels))
    return model_config__error(c, def ? "dynamic_batching.default_priority_level" : "dynamic_batching",
                               "dynamic_batching default_priority_level must be between 1 and priority_levels "
                               "(%llu), got %llu",
                               levels, def);
  for (int k = 0; k < d->priority_queue_policy_count; k++) {
    unsigned long long level = d->priority_queue_policies[k].priority_level;
    if (level < 1 || level > levels) {
      snprintf(p, sizeof(p), "dynamic_batching.priority_queue_policy[%llu]", level);
      return model_config__error(c, p,
                                 "dynamic_batching priority_queue_policy is given for priority level %llu, "
                                 "outside 1 .. priority_levels (%llu)",
                                 level, levels);
    }
  }
  return NULL;
}

static inferd_error *validate_warmups(const model_config *c, bool max_batch_known) {
  char path[64], p[256];
  for (int i = 0; i < c->warmup_count; i++) {
    const model_warmup *w = &c->warmups[i];
    snprintf(path, sizeof(path), "model_warmup[%d]", i);
    if (!w->name[0]) return model_config__error(c, path, "model_warmup %d must specify 'name'", i);
    snprintf(p, sizeof(p), "%s.batch_size", path);
    if (w->batch_size < 1)
      return model_config__error(c, p, "model_warmup '%s': batch_size must be >= 1, got %u", w->name, w->batch_size);
    if (max_batch_known && c->max_batch_size == 0 && w->batch_size != 1)
      return model_config__error(c, p, "model_warmup '%s': batch_size must be 1 for a model that does not batch, got %u",
                                 w->name, w->batch_size);
    if (w->count > MODEL_CONFIG_MAX_WARMUP_COUNT) {
      snprintf(p, sizeof(p), "%s.count", path);
      return model_config__error(c, p, "model_warmup '%s': count %u is over the limit of %d", w->name, w->count,
                                 MODEL_CONFIG_MAX_WARMUP_COUNT);
    }
    if (max_batch_known && c->max_batch_size > 0 && w->batch_size > (uint32_t)c->max_batch_size)
      return model_config__error(c, p, "model_warmup '%s': batch_size %u is larger than max_batch_size %d", w->name,
                                 w->batch_size, c->max_batch_size);
    for (int k = 0; k < w->input_count; k++) {
      const model_warmup_input *in = &w->inputs[k];
      snprintf(p, sizeof(p), "%s.inputs[%.100s]", path, in->name);
      if (!in->name[0]) return model_config__error(c, p, "model_warmup '%s' has an input without a name", w->name);
      if (in->datatype == INFERD_TYPE_INVALID)
        return model_config__error(c, p, "model_warmup '%s': input '%s' must specify 'data_type'", w->name, in->name);
      for (int d = 0; d < in->rank; d++) {
        if (in->dims[d] < 1) {
          char pd[300];
          snprintf(pd, sizeof(pd), "%s.dims[%d]", p, d);
          return model_config__error(c, pd, "model_warmup '%s': input '%s': dims must be >= 1, got %lld", w->name,
                                     in->name, (long long)in->dims[d]);
        }
      }
      if (in->source == MODEL_WARMUP_INPUT_DATA_FILE && !in->input_data_file[0])
        return model_config__error(c, p, "model_warmup '%s': input '%s' has an empty input_data_file", w->name,
                                   in->name);
      char pf[300];
      snprintf(pf, sizeof(pf), "%s.input_data_file", p);
      ERR_TRY(check_plain_name(c, pf, "input_data_file", in->input_data_file));
    }
  }
  return NULL;
}

inferd_error *model_config__validate(const model_config *c, bool completed) {
  if (c->max_batch_size < 0 || c->max_batch_size > MODEL_CONFIG_MAX_BATCH_SIZE)
    return model_config__error(c, "max_batch_size", "max_batch_size must be between 0 and %d, got %d",
                               MODEL_CONFIG_MAX_BATCH_SIZE, c->max_batch_size);
  bool max_batch_known = completed || c->has_max_batch_size;
  ERR_TRY(check_plain_name(c, "default_model_filename", "default_model_filename", c->default_model_filename));
  ERR_TRY(validate_version_policy(c));
  ERR_TRY(validate_tensors(c, true, completed));
  ERR_TRY(validate_tensors(c, false, completed));
  ERR_TRY(validate_instance_groups(c));
  ERR_TRY(validate_dynamic_batching(c, max_batch_known));
  for (int i = 0; i < c->parameter_count; i++)
    if (!c->parameters[i].key[0]) return model_config__error(c, "parameters[]", "parameters has an entry with an empty key");
  ERR_TRY(validate_warmups(c, max_batch_known));
  return NULL;
}
