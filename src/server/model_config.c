/*
 * Model configuration: lifecycle, file loading, names of Triton's enums, the
 * location table behind file:line:column messages, and label files. Reading
 * the tree is in model_config_read.c, validation in model_config_validate.c,
 * completion in model_config_complete.c, JSON in model_config_json.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/error.h"
#include "base/mem.h"
#include "server/model_config_internal.h"

/* Label files are plain text, one class name a line; ImageNet's is 20 KB.
 * The cap only guards against reading something that is not a label file. */
#define MODEL_LABELS_MAX_BYTES (64u << 20)

/* Bounds on what a pathological file can make a config hold besides its
 * values. Real configurations have a few dozen fields; past these counts a
 * message points at an enclosing field instead, and warnings are summed up. */
#define MODEL_CONFIG_MAX_LOCATIONS 4096
#define MODEL_CONFIG_MAX_WARNINGS 32

typedef struct location {
  const char *path; /* in the pool */
  int line, column;
} location;

struct model_config_private {
  mem_pool *pool;
  location *locations;
  size_t location_count, location_capacity;
  int warnings_not_listed;
};

static model_config_private *private_of(model_config *c) {
  if (!c->private_data) {
    c->private_data = mem_zalloc(sizeof(*c->private_data));
    c->private_data->pool = mem_pool_new();
  }
  return c->private_data;
}

char *model_config__strndup(const char *s, size_t len) {
  if (len == SIZE_MAX) return NULL;
  char *d = mem_try_alloc(len + 1, 1);
  if (!d) return NULL;
  memcpy(d, s, len);
  d[len] = 0;
  return d;
}

char *model_config__strdup(const char *s) { return model_config__strndup(s, strlen(s)); }

inferd_error *model_config__no_memory(const model_config *config) {
  return err_new(INFERD_ERROR_NO_MEMORY, "%s: out of memory reading the model configuration",
                 config && config->source ? config->source : "config");
}

model_config *model_config_new(const char *source) {
  model_config *c = mem_zalloc(sizeof(*c));
  c->name = mem_strdup("");
  c->platform = mem_strdup("");
  c->backend = mem_strdup("");
  c->default_model_filename = mem_strdup("");
  c->source = mem_strdup(source ? source : "config");
  c->version_policy.kind = MODEL_VERSIONS_LATEST;
  c->version_policy.num_versions = 1;
  return c;
}

static void free_tensors(model_tensor_config *t, int n) {
  for (int i = 0; i < n; i++) {
    free(t[i].name);
    free(t[i].label_filename);
  }
  free(t);
}

static void accelerators_free(model_accelerator *list, int count) {
  for (int i = 0; i < count; i++) {
    model_accelerator *a = &list[i];
    free(a->name);
    for (int k = 0; k < a->parameter_count; k++) {
      free(a->parameters[k].key);
      free(a->parameters[k].string_value);
    }
    free(a->parameters);
  }
  free(list);
}

void model_config_free(model_config *c) {
  if (!c) return;
  free(c->name);
  free(c->platform);
  free(c->backend);
  free(c->default_model_filename);
  free(c->version_policy.versions);
  free_tensors(c->inputs, c->input_count);
  free_tensors(c->outputs, c->output_count);
  for (int i = 0; i < c->instance_group_count; i++) {
    free(c->instance_groups[i].name);
    free(c->instance_groups[i].gpus);
  }
  free(c->instance_groups);
  free(c->dynamic_batching.preferred_batch_sizes);
  free(c->dynamic_batching.priority_queue_policies);
  for (int i = 0; i < c->parameter_count; i++) {
    free(c->parameters[i].key);
    free(c->parameters[i].string_value);
  }
  free(c->parameters);
  accelerators_free(c->gpu_accelerators, c->gpu_accelerator_count);
  accelerators_free(c->cpu_accelerators, c->cpu_accelerator_count);
  for (int i = 0; i < c->warmup_count; i++) {
    model_warmup *w = &c->warmups[i];
    for (int k = 0; k < w->input_count; k++) {
      free(w->inputs[k].name);
      free(w->inputs[k].input_data_file);
    }
    free(w->inputs);
    free(w->name);
  }
  free(c->warmups);
  for (int i = 0; i < c->warning_count; i++) free(c->warnings[i]);
  free(c->warnings);
  free(c->source);
  if (c->private_data) {
    mem_pool_delete(c->private_data->pool);
    free(c->private_data->locations);
    free(c->private_data);
  }
  free(c);
}

/* ---- locations and messages ---- */

void model_config__locate(model_config *c, const char *path, int line, int column) {
  if (line <= 0) return;
  model_config_private *p = private_of(c);
  if (p->location_count >= MODEL_CONFIG_MAX_LOCATIONS) return;
  MEM_GROW(p->locations, p->location_capacity, p->location_count + 1);
  p->locations[p->location_count++] = (location){mem_pool_strdup(p->pool, path), line, column};
}

bool model_config__location(const model_config *c, const char *path, int *line, int *column) {
  const model_config_private *p = c->private_data;
  if (!p) return false;
  /* The first entry wins: it is where the field was first written. */
  for (size_t i = 0; i < p->location_count; i++) {
    if (strcmp(p->locations[i].path, path) == 0) {
      *line = p->locations[i].line;
      *column = p->locations[i].column;
      return true;
    }
  }
  return false;
}

inferd_error *model_config__error(const model_config *c, const char *path, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  /* A field left at its default was never written: fall back to the nearest
   * enclosing field or entry that was ("input[0].dims[2]" -> "input[0].dims"
   * -> "input[0]" -> "input"). */
  char p[512];
  snprintf(p, sizeof(p), "%s", path ? path : "");
  int line, column;
  while (p[0]) {
    if (model_config__location(c, p, &line, &column))
      return err_new(INFERD_ERROR_INVALID_ARG, "%s:%d:%d: %s", c->source, line, column, msg);
    char *dot = strrchr(p, '.'), *bracket = strrchr(p, '[');
    char *cut = !dot ? bracket : !bracket ? dot : (dot > bracket ? dot : bracket);
    if (!cut) break;
    *cut = 0;
  }
  return err_new(INFERD_ERROR_INVALID_ARG, "%s: %s", c->source, msg);
}

void model_config__warn(model_config *c, int line, int column, const char *fmt, ...) {
  if (c->warning_count >= MODEL_CONFIG_MAX_WARNINGS) {
    private_of(c)->warnings_not_listed++;
    return;
  }
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  char text[1200];
  if (line > 0)
    snprintf(text, sizeof(text), "%s:%d:%d: %s", c->source, line, column, msg);
  else
    snprintf(text, sizeof(text), "%s: %s", c->source, msg);
  /* There are at most MODEL_CONFIG_MAX_WARNINGS + 1: growing one at a time is fine. */
  c->warnings = mem_realloc(c->warnings, (size_t)(c->warning_count + 1) * sizeof(char *));
  c->warnings[c->warning_count++] = mem_strdup(text);
}

void model_config__finish_warnings(model_config *c) {
  int more = c->private_data ? c->private_data->warnings_not_listed : 0;
  if (more == 0) return;
  c->private_data->warnings_not_listed = 0;
  char text[256];
  snprintf(text, sizeof(text), "%s: %d more ignored field%s not listed", c->source, more, more == 1 ? " is" : "s are");
  c->warnings = mem_realloc(c->warnings, (size_t)(c->warning_count + 1) * sizeof(char *));
  c->warnings[c->warning_count++] = mem_strdup(text);
}

/* ---- parsing entry points ---- */

/* Reads a whole file into a NUL-terminated buffer of at most `max` bytes. */
static inferd_error *read_file(const char *path, size_t max, char **data, size_t *len) {
  *data = NULL;
  FILE *f = fopen(path, "rb");
  if (!f)
    return err_new(errno == ENOENT ? INFERD_ERROR_NOT_FOUND : INFERD_ERROR_IO, "%s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return err_new(INFERD_ERROR_IO, "%s: not a regular file", path);
  }
  if ((uint64_t)st.st_size > max) {
    fclose(f);
    return err_new(INFERD_ERROR_TOO_LARGE, "%s: %lld bytes is more than the %zu allowed", path,
                   (long long)st.st_size, max);
  }
  size_t size = (size_t)st.st_size;
  char *buf = mem_try_alloc(size + 1, 1);
  if (!buf) {
    fclose(f);
    return err_new(INFERD_ERROR_NO_MEMORY, "%s: out of memory reading %zu bytes", path, size);
  }
  size_t got = fread(buf, 1, size, f);
  bool failed = ferror(f);
  fclose(f);
  if (failed || got != size) {
    free(buf);
    return err_new(INFERD_ERROR_IO, "%s: read failed", path);
  }
  buf[size] = 0;
  *data = buf;
  *len = size;
  return NULL;
}

inferd_error *model_config_parse(const char *text, size_t len, const char *source, model_config **config) {
  *config = NULL;
  pbtxt_doc *doc;
  ERR_TRY(pbtxt_parse(text, len, source, &doc));
  inferd_error *err = model_config__read(doc, config);
  pbtxt_free(doc);
  return err;
}

inferd_error *model_config_load(const char *path, model_config **config) {
  *config = NULL;
  char *text;
  size_t len;
  ERR_TRY(read_file(path, PBTXT_MAX_INPUT_BYTES, &text, &len));
  inferd_error *err = model_config_parse(text, len, path, config);
  free(text);
  return err;
}

inferd_error *model_config_validate(const model_config *config) { return model_config__validate(config, true); }

/* ---- lookups and names ---- */

static const model_tensor_config *find_tensor(const model_tensor_config *t, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(t[i].name, name) == 0) return &t[i];
  return NULL;
}

const model_tensor_config *model_config_find_input(const model_config *c, const char *name) {
  return find_tensor(c->inputs, c->input_count, name);
}

const model_tensor_config *model_config_find_output(const model_config *c, const char *name) {
  return find_tensor(c->outputs, c->output_count, name);
}

const char *model_config_datatype_name(inferd_datatype type) {
  switch (type) {
    case INFERD_TYPE_BOOL: return "TYPE_BOOL";
    case INFERD_TYPE_UINT8: return "TYPE_UINT8";
    case INFERD_TYPE_UINT16: return "TYPE_UINT16";
    case INFERD_TYPE_UINT32: return "TYPE_UINT32";
    case INFERD_TYPE_UINT64: return "TYPE_UINT64";
    case INFERD_TYPE_INT8: return "TYPE_INT8";
    case INFERD_TYPE_INT16: return "TYPE_INT16";
    case INFERD_TYPE_INT32: return "TYPE_INT32";
    case INFERD_TYPE_INT64: return "TYPE_INT64";
    case INFERD_TYPE_FP16: return "TYPE_FP16";
    case INFERD_TYPE_FP32: return "TYPE_FP32";
    case INFERD_TYPE_FP64: return "TYPE_FP64";
    case INFERD_TYPE_BYTES: return "TYPE_STRING";
    case INFERD_TYPE_BF16: return "TYPE_BF16";
    default: return "TYPE_INVALID";
  }
}

inferd_datatype model_config_datatype_from_name(const char *name) {
  if (!name) return INFERD_TYPE_INVALID;
  for (int t = INFERD_TYPE_INVALID + 1; t < INFERD_TYPE_COUNT_; t++)
    if (strcmp(model_config_datatype_name((inferd_datatype)t), name) == 0) return (inferd_datatype)t;
  return INFERD_TYPE_INVALID;
}

const char *model_config_kind_name(model_instance_kind kind) {
  switch (kind) {
    case MODEL_KIND_AUTO: return "KIND_AUTO";
    case MODEL_KIND_GPU: return "KIND_GPU";
    case MODEL_KIND_CPU: return "KIND_CPU";
    case MODEL_KIND_MODEL: return "KIND_MODEL";
  }
  return "KIND_AUTO";
}

const char *model_config_format_name(model_format format) {
  switch (format) {
    case MODEL_FORMAT_NONE: return "FORMAT_NONE";
    case MODEL_FORMAT_NHWC: return "FORMAT_NHWC";
    case MODEL_FORMAT_NCHW: return "FORMAT_NCHW";
  }
  return "FORMAT_NONE";
}

/* ---- labels ---- */

void model_config_free_labels(char **labels, int count) {
  if (!labels) return;
  for (int i = 0; i < count; i++) free(labels[i]);
  free(labels);
}

inferd_error *model_config_load_labels(const char *path, char ***labels, int *count) {
  *labels = NULL;
  *count = 0;
  char *text;
  size_t len;
  ERR_TRY(read_file(path, MODEL_LABELS_MAX_BYTES, &text, &len));
  size_t lines = 0;
  for (size_t i = 0; i < len; i++)
    if (text[i] == '\n' || i + 1 == len) lines++;
  if (lines > INT32_MAX) {
    free(text);
    return err_new(INFERD_ERROR_TOO_LARGE, "%s: too many labels", path);
  }
  char **out = mem_try_zalloc(lines ? lines : 1, sizeof(char *));
  if (!out) {
    free(text);
    return err_new(INFERD_ERROR_NO_MEMORY, "%s: out of memory for %zu labels", path, lines);
  }
  int n = 0;
  for (size_t start = 0; start < len;) {
    size_t end = start;
    while (end < len && text[end] != '\n') end++;
    size_t stop = end;
    if (stop > start && text[stop - 1] == '\r') stop--;
    out[n] = model_config__strndup(text + start, stop - start);
    if (!out[n]) {
      model_config_free_labels(out, n);
      free(text);
      return err_new(INFERD_ERROR_NO_MEMORY, "%s: out of memory reading labels", path);
    }
    n++;
    start = end + 1;
  }
  free(text);
  *labels = out;
  *count = n;
  return NULL;
}
