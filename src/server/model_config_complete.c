/*
 * Completion of a configuration from the model (Triton's auto-complete, i.e.
 * --strict-model-config=false) and the check of a configuration against the
 * model, in both modes.
 *
 * The model describes its tensors with the batch dimension as -1; a config
 * that batches (max_batch_size > 0) describes them without it. So a model
 * input [-1,3,224,224] is config dims [3,224,224] when batching and
 * [-1,3,224,224] when not; a model input [-1] (one value per batch item) is
 * dims [1] with an empty reshape, Triton's way of writing a scalar.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dims.h"
#include "base/error.h"
#include "base/mem.h"
#include "server/model_config_internal.h"

static const char onnx_platform[] = "onnxruntime_onnx";
static const char onnx_backend[] = "onnxruntime";

static inferd_error *replace_string(model_config *c, char **field, const char *value) {
  char *s = model_config__strdup(value);
  if (!s) return model_config__no_memory(c);
  free(*field);
  *field = s;
  return NULL;
}

static const inferd_tensor_info *find_model_tensor(const inferd_tensor_info *t, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (t[i].name && strcmp(t[i].name, name) == 0) return &t[i];
  return NULL;
}

static bool configured(const model_config *c, bool input, const char *name) {
  if (!name) name = "";
  return input ? model_config_find_input(c, name) != NULL : model_config_find_output(c, name) != NULL;
}

/* "a, b, c" (truncated) for messages. */
static const char *tensor_names(const inferd_tensor_info *t, int n, char *buf, size_t size) {
  size_t len = 0;
  buf[0] = 0;
  for (int i = 0; i < n && len + 1 < size; i++)
    len += (size_t)snprintf(buf + len, size - len, "%s'%s'", i ? ", " : "", t[i].name ? t[i].name : "");
  if (n == 0) snprintf(buf, size, "none");
  return buf;
}

/* Sets t's dims from the model's shape (see the top of the file). */
static inferd_error *fill_dims(const model_config *c, model_tensor_config *t, const inferd_tensor_info *m,
                               const char *path, const char *what) {
  int skip = c->max_batch_size > 0 ? 1 : 0;
  int rank = m->rank - skip;
  if (rank < 0 || m->rank > INFERD_MAX_RANK)
    return model_config__error(c, path, "%s '%s': the model's rank %d cannot be described", what, t->name, m->rank);
  if (rank == 0) {
    t->rank = 1;
    t->dims[0] = 1;
    t->has_reshape = true;
    t->reshape_rank = 0;
    return NULL;
  }
  t->rank = rank;
  for (int k = 0; k < rank; k++) t->dims[k] = m->dims[k + skip] < 0 ? -1 : m->dims[k + skip];
  return NULL;
}

/* The config's view must name the model's shape: same rank once the batch
 * dimension is added back, and each dimension equal unless the model's is -1
 * (any size; the config may narrow it). A config -1 against a fixed model
 * dimension is refused: requests of other sizes would fail at run time. */
static inferd_error *check_against_model(const model_config *c, const model_tensor_config *t,
                                         const inferd_tensor_info *m, const char *path, const char *what) {
  char p[96], a[160], b[160], d[160];
  if (m->rank < 0 || m->rank > INFERD_MAX_RANK)
    return model_config__error(c, path, "%s '%s': the model's rank %d is not supported", what, t->name, m->rank);
  if (t->datatype != m->datatype) {
    snprintf(p, sizeof(p), "%s.data_type", path);
    return model_config__error(c, p, "%s '%s': data_type %s does not match the model's %s", what, t->name,
                               model_config_datatype_name(t->datatype), model_config_datatype_name(m->datatype));
  }
  const int64_t *shape = t->has_reshape ? t->reshape : t->dims;
  int rank = t->has_reshape ? t->reshape_rank : t->rank;
  int batch = c->max_batch_size > 0 ? 1 : 0;
  int64_t full[INFERD_MAX_RANK + 1];
  full[0] = -1;
  for (int k = 0; k < rank; k++) full[k + batch] = shape[k];
  bool match = rank + batch == m->rank;
  for (int k = 0; match && k < m->rank; k++) match = m->dims[k] < 0 || full[k] == m->dims[k];
  if (match) return NULL;
  snprintf(p, sizeof(p), "%s.%s", path, t->has_reshape ? "reshape" : "dims");
  if (batch)
    snprintf(d, sizeof(d), " (%s with the batch dimension)", dims_text(full, rank + batch, a, sizeof(a)));
  else
    d[0] = 0;
  return model_config__error(c, p, "%s '%s': %s %s%s does not match the model's shape %s", what, t->name,
                             t->has_reshape ? "reshape" : "dims", dims_text(shape, rank, b, sizeof(b)),
                             d, dims_text(m->dims, m->rank, a, sizeof(a)));
}

static inferd_error *complete_tensors(model_config *c, bool input, const inferd_tensor_info *model, int model_count,
                                      bool strict) {
  const char *what = input ? "input" : "output";
  int n;
  model_tensor_config *t = model_config__tensors(c, input, &n);
  char path[64], names[512];
  if (n == 0 && strict && model_count > 0)
    return model_config__error(c, NULL,
                               "the configuration lists no %ss; with --strict-model-config=true every input and "
                               "output must be described",
                               what);
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof(path), "%s[%d]", what, i);
    const inferd_tensor_info *m = find_model_tensor(model, model_count, t[i].name);
    if (!m)
      return model_config__error(c, path, "%s '%s' is not an %s of the model (its %ss are %s)", what, t[i].name, what,
                                 what, tensor_names(model, model_count, names, sizeof(names)));
    if (t[i].datatype == INFERD_TYPE_INVALID) {
      if (strict) return model_config__error(c, path, "%s '%s' must specify 'data_type'", what, t[i].name);
      t[i].datatype = m->datatype;
    }
    if (t[i].rank == 0) {
      if (strict || t[i].has_reshape)
        return model_config__error(c, path, "%s '%s' must specify 'dims'", what, t[i].name);
      ERR_TRY(fill_dims(c, &t[i], m, path, what));
    }
    ERR_TRY(check_against_model(c, &t[i], m, path, what));
  }

  /* Every model input must be fed, so missing ones are added (or refused in
   * strict mode); outputs are added only when none are listed, since listing
   * a subset is how a configuration hides the others. */
  int missing = 0;
  for (int k = 0; k < model_count; k++) missing += !configured(c, input, model[k].name);
  if (missing == 0 || (!input && n > 0)) return NULL;
  if (strict) {
    for (int k = 0; k < model_count; k++)
      if (!configured(c, input, model[k].name))
        return model_config__error(c, NULL, "model %s '%s' is missing from the configuration", what,
                                   model[k].name ? model[k].name : "");
  }
  model_tensor_config *grown = mem_try_realloc(t, (size_t)n + (size_t)missing, sizeof(*t));
  if (!grown) return model_config__no_memory(c);
  if (input)
    c->inputs = grown;
  else
    c->outputs = grown;
  for (int k = 0; k < model_count; k++) {
    if (configured(c, input, model[k].name)) continue;
    model_tensor_config *e = &grown[n];
    *e = (model_tensor_config){.datatype = model[k].datatype};
    e->name = model_config__strdup(model[k].name ? model[k].name : "");
    e->label_filename = model_config__strdup("");
    n++;
    if (input)
      c->input_count = n;
    else
      c->output_count = n;
    if (!e->name || !e->label_filename) return model_config__no_memory(c);
    snprintf(path, sizeof(path), "%s[%d]", what, n - 1);
    ERR_TRY(fill_dims(c, e, &model[k], path, what));
  }
  return NULL;
}

static inferd_error *complete_instance_groups(model_config *c) {
  if (c->instance_group_count == 0) {
    c->instance_groups = mem_try_zalloc(1, sizeof(*c->instance_groups));
    if (!c->instance_groups) return model_config__no_memory(c);
    c->instance_groups[0] = (model_instance_group){.kind = MODEL_KIND_CPU, .count = 1};
    c->instance_group_count = 1;
    ERR_TRY(replace_string(c, &c->instance_groups[0].name, ""));
  }
  for (int i = 0; i < c->instance_group_count; i++) {
    model_instance_group *g = &c->instance_groups[i];
    if (g->name[0]) continue;
    size_t size = strlen(c->name) + 16;
    char *name = mem_try_alloc(size, 1);
    if (!name) return model_config__no_memory(c);
    snprintf(name, size, "%s_%d", c->name, i);
    free(g->name);
    g->name = name;
  }
  return NULL;
}

/* Same message, code UNSUPPORTED: the config is valid Triton, inferd just
 * cannot serve it. */
static inferd_error *as_unsupported(inferd_error *e) {
  inferd_error *u = inferd_error_create(INFERD_ERROR_UNSUPPORTED, inferd_error_message(e));
  inferd_error_delete(e);
  return u;
}

/* Triton's other platforms and backends, named in the refusal so that a
 * repository made for them says what it holds. */
static const struct {
  const char *name, *what;
} foreign[] = {
    {"tensorflow_savedmodel", "a TensorFlow SavedModel"}, {"tensorflow_graphdef", "a TensorFlow GraphDef"},
    {"tensorflow", "TensorFlow models"},                  {"tensorrt_plan", "a TensorRT engine"},
    {"tensorrt", "TensorRT engines"},                     {"pytorch_libtorch", "a TorchScript model"},
    {"pytorch", "TorchScript models"},                    {"openvino", "OpenVINO models"},
    {"python", "Python models"},                          {"ensemble", "an ensemble of models"},
};

static inferd_error *foreign_error(model_config *c, const char *field, const char *value, const char *ours) {
  const char *what = NULL;
  for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]) && !what; i++)
    if (strcmp(foreign[i].name, value) == 0) what = foreign[i].what;
  return as_unsupported(model_config__error(c, field, "%s '%s'%s%s%s is not supported: inferd serves %s models%s",
                                            field, value, what ? " (" : "", what ? what : "", what ? ")" : "", ours,
                                            what ? " (convert the model to ONNX)" : ""));
}

inferd_error *model_config_check_platform(model_config *c) {
  if (c->platform[0] && strcmp(c->platform, onnx_platform) != 0)
    return foreign_error(c, "platform", c->platform, onnx_platform);
  if (c->backend[0] && strcmp(c->backend, onnx_backend) != 0)
    return foreign_error(c, "backend", c->backend, onnx_backend);
  return NULL;
}

static inferd_error *complete_platform(model_config *c) {
  ERR_TRY(model_config_check_platform(c));
  if (!c->platform[0]) ERR_TRY(replace_string(c, &c->platform, onnx_platform));
  if (!c->backend[0]) ERR_TRY(replace_string(c, &c->backend, onnx_backend));
  return NULL;
}

static inferd_error *check_warmups(const model_config *c) {
  char p[256];
  for (int i = 0; i < c->warmup_count; i++) {
    const model_warmup *w = &c->warmups[i];
    for (int k = 0; k < w->input_count; k++) {
      const model_tensor_config *in = model_config_find_input(c, w->inputs[k].name);
      snprintf(p, sizeof(p), "model_warmup[%d].inputs[%.100s]", i, w->inputs[k].name);
      if (!in)
        return model_config__error(c, p, "model_warmup '%s': '%s' is not an input of the model", w->name,
                                   w->inputs[k].name);
      if (in->datatype != w->inputs[k].datatype)
        return model_config__error(c, p, "model_warmup '%s': input '%s' has data_type %s but the model takes %s",
                                   w->name, w->inputs[k].name, model_config_datatype_name(w->inputs[k].datatype),
                                   model_config_datatype_name(in->datatype));
    }
  }
  return NULL;
}

inferd_error *model_config_complete(model_config *c, const char *model_name, const model_io_info *model,
                                    bool strict) {
  if (!model) return err_new(INFERD_ERROR_INVALID_ARG, "model_config_complete: no model information");
  if (model_name && model_name[0]) {
    if (!c->name[0])
      ERR_TRY(replace_string(c, &c->name, model_name));
    else if (strcmp(c->name, model_name) != 0)
      return model_config__error(c, "name", "the configuration names the model '%s' but its folder is '%s'", c->name,
                                 model_name);
  }
  ERR_TRY(complete_platform(c));

  if (!c->has_max_batch_size) {
    c->max_batch_size = (!strict && model->dynamic_batch) ? MODEL_CONFIG_DEFAULT_MAX_BATCH_SIZE : 0;
    c->has_max_batch_size = true;
  }
  if (c->max_batch_size > 0 && !model->dynamic_batch)
    return model_config__error(c, "max_batch_size",
                               "max_batch_size is %d but the model has no dynamic batch dimension (the first "
                               "dimension of every input and output must be -1); use max_batch_size: 0",
                               c->max_batch_size);

  ERR_TRY(complete_tensors(c, true, model->inputs, model->input_count, strict));
  ERR_TRY(complete_tensors(c, false, model->outputs, model->output_count, strict));
  ERR_TRY(complete_instance_groups(c));
  /* Triton's auto-complete turns the dynamic batcher on when the model can
   * batch and the config chose no scheduler; strict mode takes the config as
   * written. */
  if (!strict && c->max_batch_size > 1 && !c->dynamic_batching.enabled && !c->has_other_scheduler)
    c->dynamic_batching.enabled = true;
  ERR_TRY(check_warmups(c));
  return model_config__validate(c, true);
}

static bool gpu_usable(const model_gpu_set *gpus, int ordinal) {
  for (int i = 0; i < gpus->count; i++)
    if (gpus->ordinals[i] == ordinal) return true;
  return false;
}

inferd_error *model_config_place_instances(model_config *c, const model_gpu_set *gpus) {
  char path[96];
  const char *usable = gpus->description && *gpus->description ? gpus->description : "no GPU is usable";
  for (int i = 0; i < c->instance_group_count; i++) {
    model_instance_group *g = &c->instance_groups[i];
    if (g->kind == MODEL_KIND_AUTO) {
      bool all_there = gpus->count > 0;
      for (int k = 0; k < g->gpu_count && all_there; k++) all_there = gpu_usable(gpus, g->gpus[k]);
      g->kind = all_there ? MODEL_KIND_GPU : MODEL_KIND_CPU;
      if (!all_there) g->gpu_count = 0;
    }
    if (g->kind != MODEL_KIND_GPU) continue;
    if (g->gpu_count == 0) {
      if (gpus->count == 0) {
        snprintf(path, sizeof(path), "instance_group[%d].kind", i);
        return model_config__error(c, path, "instance group '%s' of model '%s' has kind KIND_GPU but no GPU is usable: %s",
                                   g->name, c->name, usable);
      }
      int *all = mem_try_alloc((size_t)gpus->count, sizeof(int));
      if (!all) return model_config__no_memory(c);
      memcpy(all, gpus->ordinals, (size_t)gpus->count * sizeof(int));
      free(g->gpus);
      g->gpus = all;
      g->gpu_count = gpus->count;
      continue;
    }
    for (int k = 0; k < g->gpu_count; k++) {
      if (gpu_usable(gpus, g->gpus[k])) continue;
      snprintf(path, sizeof(path), "instance_group[%d].gpus[%d]", i, k);
      return model_config__error(c, path, "instance group '%s' of model '%s' asks for GPU %d, which is not usable: %s",
                                 g->name, c->name, g->gpus[k], usable);
    }
  }
  return NULL;
}
