/*
 * Triton's JSON form of a model configuration, both ways.
 *
 * Out: what Triton's /v2/models/{m}/config returns, i.e. protobuf's JSON
 * printing of ModelConfig with field names kept and every primitive field
 * printed at its default, and (Triton's own fix-up) 64-bit integers as
 * numbers rather than strings. Repeated fields and maps print as [] and {}
 * when empty; message fields print only when set, so dynamic_batching
 * appears only when enabled and reshape only when given. Fields inferd does
 * not implement but Triton always prints (runtime, batch_input, ...) are
 * printed empty, so clients that index them find them.
 *
 * In: the same form, converted into the pbtxt tree that config.pbtxt parses
 * into, so that one reader applies the same rules, defaults and warnings to
 * both. Objects become messages, arrays become repeated fields, null members
 * are absent (as in protobuf's JSON mapping).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "server/model_config_internal.h"

/* ---- out ---- */

/* jansson reports allocation failure by returning NULL from constructors and
 * -1 from setters; `ok` collects it so the builders stay readable. */
typedef struct builder {
  bool ok;
} builder;

static json_t *take(builder *b, json_t *v) {
  if (!v) b->ok = false;
  return v;
}

static void set(builder *b, json_t *obj, const char *key, json_t *v) {
  if (!v || json_object_set_new(obj, key, v) != 0) b->ok = false;
}

static void append(builder *b, json_t *arr, json_t *v) {
  if (!v || json_array_append_new(arr, v) != 0) b->ok = false;
}

static json_t *int_array(builder *b, const int64_t *v, int n) {
  json_t *a = take(b, json_array());
  for (int i = 0; a && i < n; i++) append(b, a, json_integer((json_int_t)v[i]));
  return a;
}

static json_t *int32_array(builder *b, const int *v, int n) {
  json_t *a = take(b, json_array());
  for (int i = 0; a && i < n; i++) append(b, a, json_integer(v[i]));
  return a;
}

static json_t *tensor_json(builder *b, const model_tensor_config *t, bool input) {
  json_t *o = take(b, json_object());
  if (!o) return NULL;
  set(b, o, "name", json_string(t->name));
  set(b, o, "data_type", json_string(model_config_datatype_name(t->datatype)));
  if (input) set(b, o, "format", json_string(model_config_format_name(t->format)));
  set(b, o, "dims", int_array(b, t->dims, t->rank));
  if (t->has_reshape) {
    json_t *r = take(b, json_object());
    if (r) set(b, r, "shape", int_array(b, t->reshape, t->reshape_rank));
    set(b, o, "reshape", r);
  }
  if (!input) set(b, o, "label_filename", json_string(t->label_filename));
  set(b, o, "is_shape_tensor", json_boolean(t->is_shape_tensor));
  if (input) {
    set(b, o, "allow_ragged_batch", json_boolean(t->allow_ragged_batch));
    set(b, o, "optional", json_boolean(t->optional));
  }
  set(b, o, "is_non_linear_format_io", json_false());
  return o;
}

static json_t *tensors_json(builder *b, const model_config *c, bool input) {
  json_t *a = take(b, json_array());
  int n;
  const model_tensor_config *t = model_config__tensors(c, input, &n);
  for (int i = 0; a && i < n; i++) append(b, a, tensor_json(b, &t[i], input));
  return a;
}

static json_t *version_policy_json(builder *b, const model_version_policy *v) {
  json_t *o = take(b, json_object());
  json_t *inner = take(b, json_object());
  if (!o || !inner) {
    json_decref(o);
    json_decref(inner);
    return NULL;
  }
  switch (v->kind) {
    case MODEL_VERSIONS_LATEST:
      set(b, inner, "num_versions", json_integer(v->num_versions));
      set(b, o, "latest", inner);
      break;
    case MODEL_VERSIONS_ALL:
      set(b, o, "all", inner);
      break;
    case MODEL_VERSIONS_SPECIFIC:
      set(b, inner, "versions", int_array(b, v->versions, v->version_count));
      set(b, o, "specific", inner);
      break;
  }
  return o;
}

static json_t *queue_policy_json(builder *b, const model_queue_policy *q) {
  json_t *o = take(b, json_object());
  if (!o) return NULL;
  set(b, o, "timeout_action", json_string(q->timeout_action == MODEL_TIMEOUT_DELAY ? "DELAY" : "REJECT"));
  set(b, o, "default_timeout_microseconds", json_integer((json_int_t)q->default_timeout_microseconds));
  set(b, o, "allow_timeout_override", json_boolean(q->allow_timeout_override));
  set(b, o, "max_queue_size", json_integer(q->max_queue_size));
  return o;
}

static json_t *dynamic_batching_json(builder *b, const model_dynamic_batching *d) {
  json_t *o = take(b, json_object());
  if (!o) return NULL;
  set(b, o, "preferred_batch_size", int32_array(b, d->preferred_batch_sizes, d->preferred_batch_size_count));
  set(b, o, "max_queue_delay_microseconds", json_integer((json_int_t)d->max_queue_delay_microseconds));
  set(b, o, "preserve_ordering", json_boolean(d->preserve_ordering));
  set(b, o, "priority_levels", json_integer((json_int_t)d->priority_levels));
  set(b, o, "default_priority_level", json_integer((json_int_t)d->default_priority_level));
  if (d->has_default_queue_policy) set(b, o, "default_queue_policy", queue_policy_json(b, &d->default_queue_policy));
  /* JSON object keys are strings, so the uint64 levels are written as such
   * (Triton leaves them that way too). */
  json_t *pq = take(b, json_object());
  for (int i = 0; pq && i < d->priority_queue_policy_count; i++) {
    char key[32];
    snprintf(key, sizeof(key), "%llu", (unsigned long long)d->priority_queue_policies[i].priority_level);
    set(b, pq, key, queue_policy_json(b, &d->priority_queue_policies[i].policy));
  }
  set(b, o, "priority_queue_policy", pq);
  return o;
}

static json_t *instance_group_json(builder *b, const model_instance_group *g) {
  json_t *o = take(b, json_object());
  if (!o) return NULL;
  set(b, o, "name", json_string(g->name));
  set(b, o, "kind", json_string(model_config_kind_name(g->kind)));
  set(b, o, "count", json_integer(g->count));
  set(b, o, "gpus", int32_array(b, g->gpus, g->gpu_count));
  set(b, o, "secondary_devices", json_array());
  set(b, o, "profile", json_array());
  set(b, o, "passive", json_false());
  set(b, o, "host_policy", json_string(""));
  return o;
}

static json_t *string_map_json(builder *b, const model_parameter *p, int n) {
  json_t *o = take(b, json_object());
  for (int i = 0; o && i < n; i++) set(b, o, p[i].key, json_string(p[i].string_value));
  return o;
}

/* Only the accelerators and the graph level are read (the rest of
 * optimization is ignored), so only they are written back. */
static json_t *optimization_json(builder *b, const model_config *c) {
  json_t *o = take(b, json_object());
  json_t *ea = take(b, json_object());
  json_t *gpu = take(b, json_array());
  json_t *cpu = take(b, json_array());
  if (!o || !ea || !gpu || !cpu) {
    json_decref(o);
    json_decref(ea);
    json_decref(gpu);
    json_decref(cpu);
    return NULL;
  }
  for (int side = 0; side < 2; side++) {
    const model_accelerator *list = side ? c->cpu_accelerators : c->gpu_accelerators;
    const int count = side ? c->cpu_accelerator_count : c->gpu_accelerator_count;
    for (int i = 0; i < count; i++) {
      json_t *x = take(b, json_object());
      if (!x) break;
      set(b, x, "name", json_string(list[i].name));
      set(b, x, "parameters", string_map_json(b, list[i].parameters, list[i].parameter_count));
      append(b, side ? cpu : gpu, x);
    }
  }
  set(b, ea, "gpu_execution_accelerator", gpu);
  set(b, ea, "cpu_execution_accelerator", cpu);
  set(b, o, "execution_accelerators", ea);
  if (c->has_graph_level) {
    json_t *graph = take(b, json_object());
    set(b, graph, "level", json_integer(c->graph_level));
    set(b, o, "graph", graph);
  }
  return o;
}

static json_t *warmup_json(builder *b, const model_warmup *w) {
  json_t *o = take(b, json_object());
  json_t *inputs = take(b, json_object());
  if (!o || !inputs) {
    json_decref(o);
    json_decref(inputs);
    return NULL;
  }
  set(b, o, "name", json_string(w->name));
  set(b, o, "batch_size", json_integer(w->batch_size));
  for (int k = 0; k < w->input_count; k++) {
    const model_warmup_input *in = &w->inputs[k];
    json_t *i = take(b, json_object());
    if (!i) break;
    set(b, i, "data_type", json_string(model_config_datatype_name(in->datatype)));
    set(b, i, "dims", int_array(b, in->dims, in->rank));
    switch (in->source) {
      case MODEL_WARMUP_ZERO_DATA: set(b, i, "zero_data", json_true()); break;
      case MODEL_WARMUP_RANDOM_DATA: set(b, i, "random_data", json_true()); break;
      case MODEL_WARMUP_INPUT_DATA_FILE: set(b, i, "input_data_file", json_string(in->input_data_file)); break;
    }
    set(b, inputs, in->name, i);
  }
  set(b, o, "inputs", inputs);
  set(b, o, "count", json_integer(w->count));
  return o;
}

static json_t *config_json(builder *b, const model_config *c) {
  json_t *o = take(b, json_object());
  if (!o) return NULL;
  set(b, o, "name", json_string(c->name));
  set(b, o, "platform", json_string(c->platform));
  set(b, o, "backend", json_string(c->backend));
  set(b, o, "runtime", json_string(""));
  set(b, o, "version_policy", version_policy_json(b, &c->version_policy));
  set(b, o, "max_batch_size", json_integer(c->max_batch_size));
  set(b, o, "input", tensors_json(b, c, true));
  set(b, o, "output", tensors_json(b, c, false));
  set(b, o, "batch_input", json_array());
  set(b, o, "batch_output", json_array());
  if (c->dynamic_batching.enabled) set(b, o, "dynamic_batching", dynamic_batching_json(b, &c->dynamic_batching));
  json_t *groups = take(b, json_array());
  for (int i = 0; groups && i < c->instance_group_count; i++)
    append(b, groups, instance_group_json(b, &c->instance_groups[i]));
  set(b, o, "instance_group", groups);
  if (c->gpu_accelerator_count || c->cpu_accelerator_count || c->has_graph_level)
    set(b, o, "optimization", optimization_json(b, c));
  set(b, o, "default_model_filename", json_string(c->default_model_filename));
  set(b, o, "cc_model_filenames", json_object());
  set(b, o, "metric_tags", json_object());
  json_t *params = take(b, json_object());
  for (int i = 0; params && i < c->parameter_count; i++) {
    json_t *p = take(b, json_object());
    if (p) set(b, p, "string_value", json_string(c->parameters[i].string_value));
    set(b, params, c->parameters[i].key, p);
  }
  set(b, o, "parameters", params);
  json_t *warmups = take(b, json_array());
  for (int i = 0; warmups && i < c->warmup_count; i++) append(b, warmups, warmup_json(b, &c->warmups[i]));
  set(b, o, "model_warmup", warmups);
  return o;
}

inferd_error *model_config_to_json(const model_config *c, char **json) {
  *json = NULL;
  builder b = {.ok = true};
  json_t *root = config_json(&b, c);
  /* json_string refuses invalid UTF-8, so a name with such bytes lands here
   * as a failed build, not as broken JSON. */
  char *text = b.ok && root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(root);
  if (!text)
    return err_new(b.ok ? INFERD_ERROR_NO_MEMORY : INFERD_ERROR_INVALID_ARG,
                   "%s: the configuration cannot be written as JSON (out of memory, or a string that is not UTF-8)",
                   c->source);
  /* json_dumps allocates with jansson's allocator, malloc unless changed. */
  *json = text;
  return NULL;
}

/* ---- in ---- */

static inferd_error *convert(pbtxt_doc *doc, pbtxt_node *parent, const char *name, json_t *v, bool in_list,
                             int depth) {
  if (depth > PBTXT_MAX_DEPTH)
    return err_new(INFERD_ERROR_INVALID_ARG, "%s: objects nested deeper than %d levels", doc->source, PBTXT_MAX_DEPTH);
  char text[64];
  pbtxt_node *n = NULL;
  switch (json_typeof(v)) {
    case JSON_NULL: return NULL;
    case JSON_OBJECT: {
      n = pbtxt_add(doc, parent, name, PBTXT_MESSAGE, NULL, 0);
      const char *key;
      json_t *member;
      json_object_foreach(v, key, member) ERR_TRY(convert(doc, n, key, member, false, depth + 1));
      break;
    }
    case JSON_ARRAY: {
      if (in_list)
        return err_new(INFERD_ERROR_INVALID_ARG, "%s: field '%s' holds a list of lists", doc->source, name);
      size_t i;
      json_t *element;
      json_array_foreach(v, i, element) ERR_TRY(convert(doc, parent, name, element, true, depth + 1));
      return NULL;
    }
    case JSON_STRING:
      n = pbtxt_add(doc, parent, name, PBTXT_STRING, json_string_value(v), json_string_length(v));
      break;
    case JSON_INTEGER:
      snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
      n = pbtxt_add(doc, parent, name, PBTXT_NUMBER, text, strlen(text));
      break;
    case JSON_REAL:
      snprintf(text, sizeof(text), "%.17g", json_real_value(v));
      n = pbtxt_add(doc, parent, name, PBTXT_NUMBER, text, strlen(text));
      break;
    case JSON_TRUE:
    case JSON_FALSE:
      n = pbtxt_add(doc, parent, name, PBTXT_IDENT, json_is_true(v) ? "true" : "false", json_is_true(v) ? 4 : 5);
      break;
  }
  if (n) n->in_list = in_list;
  return NULL;
}

inferd_error *model_config_parse_json(const char *text, size_t len, const char *source, model_config **config) {
  *config = NULL;
  if (!source) source = "config JSON";
  if (len > PBTXT_MAX_INPUT_BYTES)
    return err_new(INFERD_ERROR_TOO_LARGE, "%s: %zu bytes is larger than the %u bytes a configuration may have",
                   source, len, PBTXT_MAX_INPUT_BYTES);
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) return err_new(INFERD_ERROR_INVALID_ARG, "%s:%d:%d: %s", source, jerr.line, jerr.column, jerr.text);
  if (!json_is_object(root)) {
    json_decref(root);
    return err_new(INFERD_ERROR_INVALID_ARG, "%s: the configuration must be a JSON object", source);
  }
  pbtxt_doc *doc = pbtxt_doc_new(source, true);
  inferd_error *err = NULL;
  const char *key;
  json_t *member;
  json_object_foreach(root, key, member) {
    err = convert(doc, doc->root, key, member, false, 1);
    if (err) break;
  }
  json_decref(root);
  if (!err) err = model_config__read(doc, config);
  pbtxt_free(doc);
  return err;
}
