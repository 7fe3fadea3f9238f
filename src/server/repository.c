#include "server/repository.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/mem.h"
#include "server/model_config.h"
#include "server/model_settings.h"
#include "server/request.h"

/* snprintf for paths; a path too long for PATH_MAX comes back empty, which
 * every later stat or open rejects. */
__attribute__((format(printf, 3, 4))) static void path_fmt(char *buf, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, size, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= size) buf[0] = 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static bool is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

inferd_error *repository_list(const inferd_server *s, char ***names, int *count) {
  *names = NULL;
  *count = 0;
  DIR *d = opendir(s->repository);
  if (!d) return err_new(INFERD_ERROR_NOT_FOUND, "cannot read model repository '%s': %s", s->repository, strerror(errno));
  size_t cap = 0;
  struct dirent *ent;
  while ((ent = readdir(d))) {
    if (ent->d_name[0] == '.') continue;
    char path[PATH_MAX];
    path_fmt(path, sizeof(path), "%s/%s", s->repository, ent->d_name);
    if (!is_dir(path)) continue;
    MEM_GROW(*names, cap, (size_t)*count + 1);
    (*names)[(*count)++] = mem_strdup(ent->d_name);
  }
  closedir(d);
  if (*count) qsort(*names, (size_t)*count, sizeof(char *), cmp_str);
  return NULL;
}

/* Version folders (positive integers) holding the model file, ascending. */
static void list_versions(const char *model_dir, const char *filename, int64_t **out, int *count) {
  *out = NULL;
  *count = 0;
  DIR *d = opendir(model_dir);
  if (!d) return;
  size_t cap = 0;
  struct dirent *ent;
  while ((ent = readdir(d))) {
    char *end;
    errno = 0;
    long long v = strtoll(ent->d_name, &end, 10);
    if (errno || *end || end == ent->d_name || v < 1) continue;
    char path[PATH_MAX];
    struct stat st;
    path_fmt(path, sizeof(path), "%s/%s/%s", model_dir, ent->d_name, filename);
    if (stat(path, &st) != 0) continue;
    MEM_GROW(*out, cap, (size_t)*count + 1);
    (*out)[(*count)++] = v;
  }
  closedir(d);
  if (*count) qsort(*out, (size_t)*count, sizeof(int64_t), cmp_i64);
}

/* What Triton's other platforms keep in a version folder, for messages. */
static const struct {
  const char *file, *what;
} foreign_files[] = {
    {"model.savedmodel", "a TensorFlow SavedModel"}, {"model.graphdef", "a TensorFlow GraphDef"},
    {"model.plan", "a TensorRT engine"},             {"model.pt", "a TorchScript model"},
    {"model.py", "a Python model"},
};

/* "; version N holds F (what), ..." when a version folder of model_dir holds
 * one of foreign_files, else "". */
static void foreign_hint(const char *model_dir, char *out, size_t size) {
  out[0] = 0;
  DIR *d = opendir(model_dir);
  if (!d) return;
  struct dirent *ent;
  while (!out[0] && (ent = readdir(d))) {
    char *end;
    const long long v = strtoll(ent->d_name, &end, 10);
    if (*end || end == ent->d_name || v < 1) continue;
    for (size_t i = 0; i < sizeof(foreign_files) / sizeof(foreign_files[0]) && !out[0]; i++) {
      char path[PATH_MAX];
      struct stat st;
      path_fmt(path, sizeof(path), "%s/%s/%s", model_dir, ent->d_name, foreign_files[i].file);
      if (stat(path, &st) == 0)
        snprintf(out, size, "; version %lld holds %s (%s), which inferd does not serve (convert the model to ONNX)", v,
                 foreign_files[i].file, foreign_files[i].what);
    }
  }
  closedir(d);
}

/* A model file that is a folder is refused saying what it is (a TensorFlow
 * SavedModel, with its saved_model.pb) before anything tries to read it. */
static inferd_error *check_model_file(const char *name, const char *path) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
  char pb[PATH_MAX];
  path_fmt(pb, sizeof(pb), "%s/saved_model.pb", path);
  const bool saved_model = stat(pb, &st) == 0;
  return err_new(INFERD_ERROR_UNSUPPORTED,
                 "model '%s': '%s' is %s, which inferd does not serve: it serves ONNX models (platform "
                 "onnxruntime_onnx; convert the model to ONNX)",
                 name, path, saved_model ? "a TensorFlow SavedModel (a folder with saved_model.pb)" : "a folder");
}

/* The versions the policy serves among those on disk, ascending. */
static int choose_versions(const model_settings *ms, const int64_t *have, int n_have, int64_t *chosen) {
  int latest_n, n_specific, n = 0;
  const int64_t *specific;
  switch (model_settings_version_policy(ms, &latest_n, &specific, &n_specific)) {
    case VERSION_POLICY_ALL:
      for (int i = 0; i < n_have; i++) chosen[n++] = have[i];
      break;
    case VERSION_POLICY_SPECIFIC:
      for (int i = 0; i < n_have; i++)
        for (int j = 0; j < n_specific; j++)
          if (have[i] == specific[j]) chosen[n++] = have[i];
      break;
    default:
      for (int i = n_have - latest_n < 0 ? 0 : n_have - latest_n; i < n_have; i++) chosen[n++] = have[i];
      break;
  }
  return n;
}

/* What clients see of each tensor: the plan's shape, or the configuration's
 * dims where it reshapes (the bytes are the same); and the output labels. */
static inferd_error *client_shapes(const model_settings *ms, model_version *mv) {
  inferd_plan *plan = mv->plan;
  bool batching = model_settings_max_batch_size(ms) > 0 && inferd_plan_has_dynamic_batch(plan);
  int n_in = inferd_plan_input_count(plan), n_out = inferd_plan_output_count(plan);
  mv->client_inputs = mem_zalloc((size_t)(n_in + 1) * sizeof(inferd_tensor_info));
  mv->client_outputs = mem_zalloc((size_t)(n_out + 1) * sizeof(inferd_tensor_info));
  for (int pass = 0; pass < 2; pass++) {
    int n = pass ? n_out : n_in;
    for (int k = 0; k < n; k++) {
      inferd_tensor_info *info = pass ? &mv->client_outputs[k] : &mv->client_inputs[k];
      if (pass)
        inferd_plan_output(plan, k, info);
      else
        inferd_plan_input(plan, k, info);
      int rank;
      int64_t dims[INFERD_MAX_RANK];
      if (!model_settings_client_dims(ms, info->name, !pass, &rank, dims)) continue;
      int lead = batching ? 1 : 0;
      info->rank = lead + rank;
      for (int d = 0; d < rank; d++) info->dims[lead + d] = dims[d];
      if (pass) {
        scheduler_output_info *oi = &mv->outputs[k];
        oi->reshaped = true;
        oi->rank = rank;
        memcpy(oi->dims, dims, sizeof(int64_t) * (size_t)rank);
      }
    }
  }
  for (int k = 0; k < n_out; k++)
    ERR_TRY(model_settings_labels(ms, mv->client_outputs[k].name, &mv->outputs[k].labels, &mv->outputs[k].n_labels));
  return NULL;
}

/* Warmup: each sample of the configuration's model_warmup runs `count` times
 * through the version's scheduler before the version is served, as a
 * client's request would; a failing sample fails the load. */
typedef struct warmup_wait {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  inferd_error *error;
} warmup_wait;

static void warmup_respond(inferd_response *resp, uint32_t flags, void *userp) {
  (void)flags; /* one response per request */
  warmup_wait *w = userp;
  pthread_mutex_lock(&w->lock);
  const inferd_error *e = inferd_response_error(resp);
  if (e) w->error = err_new(inferd_error_code_of(e), "%s", inferd_error_message(e));
  w->done = true;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
  inferd_response_delete(resp);
}

static inferd_error *warmup_input(const model_settings *ms, const model_warmup *wu, const model_warmup_input *wi,
                                  size_t bytes, void **data) {
  *data = mem_try_zalloc(bytes ? bytes : 1, 1);
  if (!*data) return err_new(INFERD_ERROR_NO_MEMORY, "warmup '%s': %zu bytes for input '%s'", wu->name, bytes, wi->name);
  if (wi->source == MODEL_WARMUP_RANDOM_DATA) {
    uint64_t x = 0x2545f4914f6cdd1dull;
    unsigned char *p = *data;
    for (size_t i = 0; i < bytes; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      p[i] = (unsigned char)(x >> 56);
    }
    if (wi->datatype == INFERD_TYPE_FP32) /* finite values in [0,1) rather than arbitrary bit patterns */
      for (size_t i = 0; i + 4 <= bytes; i += 4) ((float *)*data)[i / 4] = (float)p[i] / 256.0f;
  } else if (wi->source == MODEL_WARMUP_INPUT_DATA_FILE) {
    char relative[PATH_MAX], path[PATH_MAX];
    path_fmt(relative, sizeof(relative), "warmup/%s", wi->input_data_file);
    ERR_TRY(err_wrap(model_settings_path(ms, relative, "input file", path), "warmup '%s'", wu->name));
    FILE *f = fopen(path, "rb");
    if (!f) return err_new(INFERD_ERROR_NOT_FOUND, "warmup '%s': cannot read input file '%s' (from the model's warmup/ folder)",
                           wu->name, wi->input_data_file);
    size_t got = fread(*data, 1, bytes, f);
    bool extra = fgetc(f) != EOF;
    fclose(f);
    if (got != bytes || extra)
      return err_new(INFERD_ERROR_INVALID_ARG, "warmup '%s': file '%s' must hold exactly %zu bytes for input '%s'",
                     wu->name, wi->input_data_file, bytes, wi->name);
  }
  return NULL;
}

static inferd_error *warmup_version(inferd_server *s, const model_settings *ms, model_version *mv) {
  const model_config *cfg = model_settings_config(ms);
  bool batching = cfg->max_batch_size > 0;
  for (int w = 0; w < cfg->warmup_count; w++) {
    const model_warmup *wu = &cfg->warmups[w];
    uint32_t runs = wu->count ? wu->count : 1;
    for (uint32_t run = 0; run < runs; run++) {
      inferd_request *r;
      ERR_TRY(inferd_request_create(s, mv->name, mv->number, &r));
      void **buffers = mem_zalloc((size_t)(wu->input_count + 1) * sizeof(void *));
      inferd_error *e = NULL;
      int batch = batching ? (int)(wu->batch_size ? wu->batch_size : 1) : 1;
      for (int i = 0; i < wu->input_count && !e; i++) {
        const model_warmup_input *wi = &wu->inputs[i];
        int64_t shape[INFERD_MAX_RANK + 1];
        int rank = 0;
        size_t bytes = inferd_datatype_size(wi->datatype);
        if (batching) shape[rank++] = batch;
        for (int d = 0; d < wi->rank && rank < INFERD_MAX_RANK; d++) shape[rank++] = wi->dims[d];
        for (int d = 0; d < rank && !e; d++)
          if (__builtin_mul_overflow(bytes, (size_t)shape[d], &bytes))
            e = err_new(INFERD_ERROR_INVALID_ARG, "warmup '%s': input '%s' has too many elements", wu->name, wi->name);
        if (!e) e = warmup_input(ms, wu, wi, bytes, &buffers[i]);
        if (!e) e = inferd_request_add_input(r, wi->name, wi->datatype, shape, rank, buffers[i], bytes);
      }
      warmup_wait wait = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
      inferd_request_set_callbacks(r, NULL, NULL, warmup_respond, &wait);
      /* The version is not served yet: submit straight to its scheduler. */
      if (!e) {
        model_version_retain(mv);
        e = server_submit(s, mv, cfg->max_batch_size, r, true);
        if (!e) {
          r = NULL; /* the scheduler answers and frees it */
          pthread_mutex_lock(&wait.lock);
          while (!wait.done) pthread_cond_wait(&wait.cond, &wait.lock);
          pthread_mutex_unlock(&wait.lock);
          e = wait.error;
        }
      }
      inferd_request_delete(r);
      for (int i = 0; i < wu->input_count; i++) free(buffers[i]);
      free(buffers);
      if (e) return err_wrap(e, "warmup sample '%s'", wu->name);
    }
  }
  return NULL;
}

/* The model file of a version: <model>/<version>/<default_model_filename>,
 * resolved inside the model folder. */
static inferd_error *version_model_path(const model_settings *ms, int64_t version, char *out) {
  char relative[PATH_MAX];
  path_fmt(relative, sizeof(relative), "%lld/%s", (long long)version, model_settings_model_filename(ms));
  return model_settings_path(ms, relative, "model file", out);
}

/* The folder of model `name` into dir[PATH_MAX]; NOT_FOUND unless `name` is
 * one of the folders repository_list lists (a plain name, not hidden, not
 * "." or ".."), so a name that cannot be in the repository never reaches
 * the file system or the model table. */
static inferd_error *model_folder(const inferd_server *s, const char *name, char *dir) {
  bool plain = name[0] && name[0] != '.' && !strchr(name, '/');
  path_fmt(dir, PATH_MAX, "%s/%s", s->repository, name);
  if (!plain || !dir[0] || !is_dir(dir))
    return err_new(INFERD_ERROR_NOT_FOUND, "model '%s' is not in the repository '%s'%s", name, s->repository,
                   plain ? "" : " (a model name is a folder name: not hidden, without '/')");
  return NULL;
}

static void set_unavailable(inferd_server *s, const char *name, const char *reason) {
  pthread_mutex_lock(&s->lock);
  model_entry *m = server_model_entry(s, name);
  m->state = MODEL_STATE_UNAVAILABLE;
  free(m->reason);
  m->reason = mem_strdup(reason);
  m->failed = true;
  pthread_mutex_unlock(&s->lock);
}

/* Compiles and starts every chosen version; on success installs them in the
 * entry (replacing what was served) and releases the old ones afterwards, so
 * requests in flight finish on the version they started on. */
static inferd_error *load_locked(inferd_server *s, const char *name, const char *config_json) {
  char dir[PATH_MAX];
  ERR_TRY(model_folder(s, name, dir));
  pthread_mutex_lock(&s->lock);
  model_entry *m = server_model_entry(s, name);
  if (m->state != MODEL_STATE_READY) m->state = MODEL_STATE_LOADING;
  pthread_mutex_unlock(&s->lock);

  model_settings *ms = NULL;
  int64_t *have = NULL, *chosen = NULL;
  int n_have = 0, n_chosen = 0;
  model_version **versions = NULL;
  inferd_model_info *info = NULL;
  const char **optional = NULL;
  int n_optional = 0;
  inferd_error *e = model_settings_read(dir, name, config_json, s->strict_config, &ms);
  if (!e) n_optional = model_settings_optional_inputs(ms, &optional);
  if (!e) {
    list_versions(dir, model_settings_model_filename(ms), &have, &n_have);
    chosen = mem_alloc((size_t)(n_have + 1) * sizeof(int64_t));
    n_chosen = choose_versions(ms, have, n_have, chosen);
    if (!n_chosen) {
      char hint[PATH_MAX + 160];
      foreign_hint(dir, hint, sizeof(hint));
      e = err_new(INFERD_ERROR_NOT_FOUND, "model '%s' has no version folder with %s that its version policy serves%s",
                  name, model_settings_model_filename(ms), hint);
    }
  }
  char path[PATH_MAX];
  if (!e) {
    /* The newest version's tensors complete the configuration. */
    e = version_model_path(ms, chosen[n_chosen - 1], path);
    if (!e) e = check_model_file(name, path);
    if (!e) e = inferd_model_inspect_with_defaults(path, optional, n_optional, &info);
  }
  if (!e)
    e = model_settings_complete(ms, inferd_model_info_inputs(info), inferd_model_info_input_count(info),
                                inferd_model_info_outputs(info), inferd_model_info_output_count(info),
                                inferd_model_info_has_dynamic_batch(info));
  model_instance_spec *instances = NULL;
  int n_instances = 0;
  if (!e) {
    model_gpu_set gpus = server_gpus_set(&s->gpus);
    e = model_settings_place(ms, &gpus, &instances, &n_instances);
  }
  scheduler_config sc;
  if (!e) {
    model_settings_scheduler(ms, s->threads_per_instance, &sc);
    sc.instance_count = n_instances; /* the same count, from the list the plans follow */
    sc.latency_summaries = s->latency_summaries;
    versions = mem_zalloc((size_t)(n_chosen + 1) * sizeof(*versions));
  }
  for (int i = 0; i < n_chosen && !e; i++) {
    e = version_model_path(ms, chosen[i], path);
    if (e) break;
    inferd_plan_options po = {.max_batch_size = sc.max_batch_size,
                              .threads = sc.threads_per_instance,
                              .disabled_passes = model_settings_disabled_passes(ms),
                              .optional_inputs = optional,
                              .optional_input_count = n_optional};
    e = model_version_load(name, chosen[i], path, &po, &sc, instances, &versions[i]);
    if (!e) e = client_shapes(ms, versions[i]);
    if (!e) e = warmup_version(s, ms, versions[i]);
  }
  inferd_model_info_delete(info);
  free(instances);
  free(optional);
  free(have);
  if (e) {
    for (int i = 0; versions && i < n_chosen; i++) model_version_retire(versions[i]);
    free(versions);
    free(chosen);
    model_settings_free(ms);
    return err_wrap(e, "loading model '%s'", name);
  }
  pthread_mutex_lock(&s->lock);
  m = server_model_entry(s, name);
  model_version **old = m->versions;
  int n_old = m->n_versions;
  m->versions = versions;
  m->n_versions = n_chosen;
  m->state = MODEL_STATE_READY;
  m->failed = false;
  free(m->reason);
  m->reason = NULL;
  free(m->config_json);
  m->config_json = model_settings_json(ms);
  free(m->platform);
  m->platform = mem_strdup(model_settings_platform(ms));
  m->max_batch_size = model_settings_max_batch_size(ms);
  pthread_mutex_unlock(&s->lock);
  for (int i = 0; i < n_old; i++) model_version_retire(old[i]);
  free(old);
  free(chosen);
  model_settings_free(ms);
  log_info("model '%s' ready (%d version%s)", name, n_chosen, n_chosen > 1 ? "s" : "");
  return NULL;
}

inferd_error *repository_load(inferd_server *s, const char *name, const char *config_json) {
  char dir[PATH_MAX];
  inferd_error *missing = model_folder(s, name, dir);
  if (missing) return missing; /* no table entry for what is not in the repository */
  pthread_mutex_lock(&s->load_lock);
  inferd_error *e = load_locked(s, name, config_json);
  if (e) {
    /* A failed reload keeps serving what was loaded before. */
    pthread_mutex_lock(&s->lock);
    model_entry *m = server_find_model(s, name);
    bool serving = m && m->n_versions > 0;
    pthread_mutex_unlock(&s->lock);
    if (!serving) set_unavailable(s, name, inferd_error_message(e));
    log_error("%s", inferd_error_message(e));
  }
  pthread_mutex_unlock(&s->load_lock);
  return e;
}

inferd_error *repository_unload(inferd_server *s, const char *name) {
  pthread_mutex_lock(&s->load_lock);
  pthread_mutex_lock(&s->lock);
  model_entry *m = server_find_model(s, name);
  if (!m) {
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&s->load_lock);
    char dir[PATH_MAX];
    return model_folder(s, name, dir); /* never loaded: nothing to do */
  }
  model_version **old = m->versions;
  int n_old = m->n_versions;
  m->versions = NULL;
  m->n_versions = 0;
  m->state = MODEL_STATE_UNAVAILABLE;
  m->failed = false;
  free(m->reason);
  m->reason = mem_strdup("unloaded");
  pthread_mutex_unlock(&s->lock);
  /* Releasing runs what is queued on them before they go. */
  for (int i = 0; i < n_old; i++) model_version_retire(old[i]);
  free(old);
  pthread_mutex_unlock(&s->load_lock);
  log_info("model '%s' unloaded", name);
  return NULL;
}

/* A cheap fingerprint of a model folder: names, sizes and modification
 * times of everything in it, two levels deep. */
static long long folder_digest(const char *dir, int depth) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  unsigned long long h = 1469598103934665603ull;
  struct dirent *ent;
  while ((ent = readdir(d))) {
    if (ent->d_name[0] == '.') continue;
    char path[PATH_MAX];
    path_fmt(path, sizeof(path), "%s/%s", dir, ent->d_name);
    struct stat st;
    if (stat(path, &st) != 0) continue;
    unsigned long long x = (unsigned long long)st.st_size * 31 + (unsigned long long)st.st_mtim.tv_sec * 1000003ull +
                           (unsigned long long)st.st_mtim.tv_nsec;
    for (const char *c = ent->d_name; *c; c++) x = x * 131 + (unsigned char)*c;
    if (S_ISDIR(st.st_mode) && depth > 0) x ^= (unsigned long long)folder_digest(path, depth - 1);
    h += x * 1099511628211ull; /* order-independent */
  }
  closedir(d);
  return (long long)h;
}

static void poll_once(inferd_server *s) {
  char **names;
  int count;
  inferd_error *e = repository_list(s, &names, &count);
  if (e) {
    log_error("repository poll: %s", inferd_error_message(e));
    inferd_error_delete(e);
    return;
  }
  for (int i = 0; i < count; i++) {
    char dir[PATH_MAX];
    path_fmt(dir, sizeof(dir), "%s/%s", s->repository, names[i]);
    long long digest = folder_digest(dir, 2);
    pthread_mutex_lock(&s->lock);
    model_entry *m = server_find_model(s, names[i]);
    bool changed = !m || m->snapshot != digest;
    if (m) m->snapshot = digest;
    pthread_mutex_unlock(&s->lock);
    if (changed && m) {
      log_info("repository poll: model '%s' changed, reloading", names[i]);
      inferd_error_delete(repository_load(s, names[i], NULL));
    } else if (!m) {
      log_info("repository poll: new model '%s'", names[i]);
      inferd_error_delete(repository_load(s, names[i], NULL));
      pthread_mutex_lock(&s->lock);
      server_model_entry(s, names[i])->snapshot = digest;
      pthread_mutex_unlock(&s->lock);
    }
  }
  /* Models whose folder disappeared are unloaded. */
  pthread_mutex_lock(&s->lock);
  int n_models = s->n_models;
  char **gone = mem_zalloc((size_t)(n_models + 1) * sizeof(char *));
  int n_gone = 0;
  for (int k = 0; k < n_models; k++) {
    bool present = false;
    for (int i = 0; i < count && !present; i++) present = strcmp(names[i], s->models[k]->name) == 0;
    if (!present && s->models[k]->n_versions) gone[n_gone++] = mem_strdup(s->models[k]->name);
  }
  pthread_mutex_unlock(&s->lock);
  for (int i = 0; i < n_gone; i++) {
    log_info("repository poll: model '%s' removed, unloading", gone[i]);
    inferd_error_delete(repository_unload(s, gone[i]));
    free(gone[i]);
  }
  free(gone);
  for (int i = 0; i < count; i++) free(names[i]);
  free(names);
}

static void *poll_main(void *arg) {
  inferd_server *s = arg;
  pthread_mutex_lock(&s->lock);
  while (!s->poll_stop) {
    struct timespec ts = clock_deadline_after((uint64_t)s->poll_secs * 1000000000ull);
    pthread_cond_timedwait(&s->poll_cond, &s->lock, &ts);
    if (s->poll_stop) break;
    pthread_mutex_unlock(&s->lock);
    poll_once(s);
    pthread_mutex_lock(&s->lock);
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

inferd_error *repository_start(inferd_server *s, const inferd_server_options *o) {
  if (!is_dir(s->repository))
    return err_new(INFERD_ERROR_NOT_FOUND, "model repository '%s' is not a readable folder", s->repository);
  char **names;
  int count;
  ERR_TRY(repository_list(s, &names, &count));
  inferd_error *failed = NULL; /* with exit_on_error: why the server does not start */
  for (int i = 0; i < count && !failed; i++) {
    bool wanted = s->control_mode != INFERD_MODEL_CONTROL_EXPLICIT;
    for (int k = 0; k < o->startup_model_count && !wanted; k++)
      wanted = !strcmp(o->startup_models[k], "*") || !strcmp(o->startup_models[k], names[i]);
    char dir[PATH_MAX];
    path_fmt(dir, sizeof(dir), "%s/%s", s->repository, names[i]);
    pthread_mutex_lock(&s->lock);
    server_model_entry(s, names[i])->snapshot = folder_digest(dir, 2);
    pthread_mutex_unlock(&s->lock);
    inferd_error *e = wanted ? repository_load(s, names[i], NULL) : NULL;
    if (e && o->exit_on_error) /* Triton's --exit-on-error: the server does not start */
      failed = err_wrap(e, "model '%s' failed to load and exit_on_error is set (--exit-on-error=false serves the "
                           "others)", names[i]);
    else
      inferd_error_delete(e);
  }
  /* Explicitly named startup models that are not in the repository. */
  for (int k = 0; k < o->startup_model_count && !failed; k++) {
    bool found = !strcmp(o->startup_models[k], "*");
    for (int i = 0; i < count && !found; i++) found = !strcmp(o->startup_models[k], names[i]);
    if (found) continue;
    if (o->exit_on_error)
      failed = err_new(INFERD_ERROR_NOT_FOUND, "--load-model=%s: no such model in '%s'", o->startup_models[k],
                       s->repository);
    else
      log_error("--load-model=%s: no such model in '%s'", o->startup_models[k], s->repository);
  }
  for (int i = 0; i < count; i++) free(names[i]);
  free(names);
  if (failed) return failed;
  if (s->control_mode == INFERD_MODEL_CONTROL_POLL) {
    if (pthread_create(&s->poll_thread, NULL, poll_main, s) != 0)
      return err_new(INFERD_ERROR_INTERNAL, "starting the repository poll thread");
    s->poll_started = true;
  }
  return NULL;
}

void repository_stop(inferd_server *s) {
  if (!s->poll_started) return;
  pthread_mutex_lock(&s->lock);
  s->poll_stop = true;
  pthread_cond_broadcast(&s->poll_cond);
  pthread_mutex_unlock(&s->lock);
  pthread_join(s->poll_thread, NULL);
  s->poll_started = false;
}
