/*
 * ONNX conformance: runs the node and pytorch-converted tests of the ONNX
 * test suite (Debian's libonnx-testdata) through the public engine API and
 * compares every output with the reference values, with the tolerances of
 * ONNX's backend tests (rtol 1e-3, atol 1e-7; NaN equals NaN).
 *
 * A test applies when every node of its model is an op the engine knows
 * (IR_OP_LIST, default domain). Tests named in the exclusions file are
 * skipped; each line there gives the reason.
 *
 * The engine is static: inputs that decide output shapes (Reshape's target,
 * Slice's bounds, Pad's pads, Squeeze/Unsqueeze's axes, ...) must be known
 * when the model is loaded. The node tests feed those as graph inputs, so
 * for each data set the runner writes a copy of the model in which they are
 * initializers holding that data set's values ("frozen"), and loads that.
 * Everything else goes through inferd_plan_load and inferd_context_run
 * exactly as an embedder would call them.
 *
 * usage: onnx_conformance --data DIR [--exclusions FILE] [--backend NAME]
 *                         [--filter SUBSTR] [--verbose] [--run-excluded]
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/ir.h"
#include "engine/onnx/onnx.h"
#include "engine/onnx/onnx.pb-c.h"
#include "engine/ops/op_util.h"
#include "inferd.h"

enum { MAX_TENSORS = 32, REASON_MAX = 1024 };
static const double RTOL = 1e-3, ATOL = 1e-7;

typedef struct options {
  const char *data_dir;
  const char *exclusions_path;
  const char *backend;
  const char *filter;
  bool verbose;
  bool run_excluded;
} options;

typedef struct exclusions {
  char **names;
  int count;
} exclusions;

typedef struct counts {
  int applicable, passed, failed, excluded, not_applicable, frozen;
} counts;

/* ---- small utilities ------------------------------------------------------ */

static void *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  void *buf = len >= 0 ? malloc((size_t)len + 1) : NULL;
  if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  if (buf) *size = (size_t)len;
  return buf;
}

/* a + "/" + b into out; false when it does not fit. */
static bool path_join(char *out, size_t size, const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la + 1 + lb + 1 > size) {
    if (size) *out = 0;
    return false;
  }
  memcpy(out, a, la);
  out[la] = '/';
  memcpy(out + la + 1, b, lb + 1);
  return true;
}

static bool file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static int compare_strings(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names of the entries of `dir` that start with `prefix`. */
static char **list_dir(const char *dir, const char *prefix, int *count) {
  *count = 0;
  DIR *d = opendir(dir);
  if (!d) return NULL;
  char **names = NULL;
  int cap = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
    if (*count == cap) {
      cap = cap ? cap * 2 : 64;
      names = realloc(names, (size_t)cap * sizeof(char *));
    }
    names[(*count)++] = strdup(e->d_name);
  }
  closedir(d);
  if (*count) qsort(names, (size_t)*count, sizeof(char *), compare_strings);
  return names;
}

static void free_names(char **names, int count) {
  for (int i = 0; i < count; i++) free(names[i]);
  free(names);
}

static void set_reason(char *reason, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_reason(char *reason, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, REASON_MAX, fmt, ap);
  va_end(ap);
}

/* Takes the message of `e` as the reason and deletes it. */
static bool fail_with(char *reason, const char *what, inferd_error *e) {
  set_reason(reason, "%s: %s", what, inferd_error_message(e));
  inferd_error_delete(e);
  return false;
}

/* ---- exclusions ------------------------------------------------------------ */

/* One test name per line; '#' starts the reason (a comment). */
static bool exclusions_load(const char *path, exclusions *ex) {
  *ex = (exclusions){0};
  if (!path) return true;
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "onnx_conformance: cannot open exclusions '%s': %s\n", path, strerror(errno));
    return false;
  }
  char line[1024];
  while (fgets(line, sizeof(line), f)) {
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    char *s = line;
    while (*s == ' ' || *s == '\t') s++;
    size_t len = strcspn(s, " \t\r\n");
    if (!len) continue;
    s[len] = 0;
    ex->names = realloc(ex->names, (size_t)(ex->count + 1) * sizeof(char *));
    ex->names[ex->count++] = strdup(s);
  }
  fclose(f);
  return true;
}

static bool exclusions_has(const exclusions *ex, const char *name) {
  for (int i = 0; i < ex->count; i++)
    if (strcmp(ex->names[i], name) == 0) return true;
  return false;
}

/* ---- the model ------------------------------------------------------------- */

static bool is_default_domain(const char *d) { return !d || !*d || strcmp(d, "ai.onnx") == 0; }

static int64_t model_opset(const Onnx__ModelProto *m) {
  for (size_t i = 0; i < m->n_opset_import; i++)
    if (is_default_domain(m->opset_import[i]->domain)) return m->opset_import[i]->version;
  return 0;
}

/* Whether every node is an op the engine knows; names the first that is not. */
static bool model_applies(const Onnx__ModelProto *m, char *missing, size_t size) {
  if (!m->graph) return false;
  for (size_t i = 0; i < m->graph->n_node; i++) {
    const Onnx__NodeProto *n = m->graph->node[i];
    if (!is_default_domain(n->domain) || !n->op_type || ir_op_from_name(n->op_type) == IR_OP_INVALID) {
      snprintf(missing, size, "%s%s%s", n->domain && *n->domain ? n->domain : "", n->domain && *n->domain ? "." : "",
               n->op_type ? n->op_type : "?");
      return false;
    }
  }
  return true;
}

static bool is_initializer(const Onnx__GraphProto *g, const char *name) {
  for (size_t i = 0; i < g->n_initializer; i++)
    if (g->initializer[i]->name && strcmp(g->initializer[i]->name, name) == 0) return true;
  return false;
}

/* The graph inputs the test data feeds (inputs that are not initializers),
 * in order: input_k.pb belongs to the k-th. */
static int fed_inputs(const Onnx__GraphProto *g, const char **names) {
  int n = 0;
  for (size_t i = 0; i < g->n_input && n < MAX_TENSORS; i++)
    if (!is_initializer(g, g->input[i]->name)) names[n++] = g->input[i]->name;
  return n;
}

/* Whether input `k` of op `op` must be known when the model is loaded
 * (engine/ops rules: the ones read with ops_known_ints at load). */
static bool needs_load_time_value(const char *op, size_t k, int64_t opset) {
  if (k == 0) return false;
  if (strcmp(op, "Reshape") == 0) return k == 1;
  if (strcmp(op, "Slice") == 0) return opset >= 10;
  if (strcmp(op, "Pad") == 0) return opset >= 11 && (k == 1 || k == 3);
  if (strcmp(op, "Squeeze") == 0 || strcmp(op, "Unsqueeze") == 0) return opset >= 13 && k == 1;
  if (strcmp(op, "ReduceMean") == 0) return opset >= 18 && k == 1;
  if (strcmp(op, "Dropout") == 0) return opset >= 12; /* ratio and training_mode */
  return false;
}

static bool must_freeze(const Onnx__ModelProto *m, const char *input) {
  const Onnx__GraphProto *g = m->graph;
  int64_t opset = model_opset(m);
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *n = g->node[i];
    for (size_t k = 0; k < n->n_input; k++)
      if (n->input[k] && strcmp(n->input[k], input) == 0 && needs_load_time_value(n->op_type, k, opset)) return true;
  }
  return false;
}

/*
 * Writes `m` with the inputs in `frozen` (mask over fed inputs) turned into
 * initializers holding the data set's values, to a temporary file whose path
 * goes into `path`. The model is restored before returning.
 */
static bool write_frozen_model(Onnx__ModelProto *m, const char **fed, int n_fed, const bool *frozen,
                               const char *set_dir, char *path, size_t path_size, char *reason) {
  Onnx__GraphProto *g = m->graph;
  Onnx__TensorProto *extra[MAX_TENSORS];
  void *raw[MAX_TENSORS];
  int n_extra = 0;
  bool ok = true;
  for (int k = 0; k < n_fed && ok; k++) {
    if (!frozen[k]) continue;
    char file[4096], leaf[32];
    snprintf(leaf, sizeof(leaf), "input_%d.pb", k);
    path_join(file, sizeof(file), set_dir, leaf);
    size_t size;
    raw[n_extra] = read_file(file, &size);
    Onnx__TensorProto *t = raw[n_extra] ? onnx__tensor_proto__unpack(NULL, size, raw[n_extra]) : NULL;
    if (!t) {
      free(raw[n_extra]);
      set_reason(reason, "cannot read %s", file);
      ok = false;
      break;
    }
    free(t->name); /* protobuf-c's default allocator is malloc */
    t->name = strdup(fed[k]);
    extra[n_extra++] = t;
  }
  Onnx__TensorProto **saved = g->initializer;
  size_t saved_n = g->n_initializer;
  Onnx__TensorProto **all = NULL;
  if (ok) {
    all = malloc((saved_n + (size_t)n_extra + 1) * sizeof(*all));
    if (saved_n) memcpy(all, saved, saved_n * sizeof(*all));
    memcpy(all + saved_n, extra, (size_t)n_extra * sizeof(*all));
    g->initializer = all;
    g->n_initializer = saved_n + (size_t)n_extra;
    size_t size = onnx__model_proto__get_packed_size(m);
    uint8_t *buf = malloc(size ? size : 1);
    onnx__model_proto__pack(m, buf);
    const char *tmp = getenv("TMPDIR");
    snprintf(path, path_size, "%s/inferd_conformance_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, buf, size) != (ssize_t)size) {
      set_reason(reason, "cannot write a temporary model: %s", strerror(errno));
      ok = false;
    }
    if (fd >= 0) close(fd);
    free(buf);
    g->initializer = saved;
    g->n_initializer = saved_n;
  }
  free(all);
  for (int i = 0; i < n_extra; i++) {
    onnx__tensor_proto__free_unpacked(extra[i], NULL);
    free(raw[i]);
  }
  return ok;
}

/* ---- comparison ------------------------------------------------------------ */

static bool dims_equal(const ir_tensor *want, const inferd_tensor *got) {
  if (want->rank != got->rank) return false;
  for (int d = 0; d < want->rank; d++)
    if (want->dims[d] != got->dims[d]) return false;
  return true;
}

static void dims_text(int rank, const int64_t *dims, char *buf, size_t size) {
  size_t n = (size_t)snprintf(buf, size, "[");
  for (int d = 0; d < rank && n < size; d++)
    n += (size_t)snprintf(buf + n, size - n, "%s%lld", d ? "," : "", (long long)dims[d]);
  if (n < size) snprintf(buf + n, size - n, "]");
}

static bool compare_output(const char *name, const ir_tensor *want_in, const inferd_tensor *got, char *reason) {
  ir_tensor bf16_view = *want_in, *want = &bf16_view;
  if (want->dtype == INFERD_TYPE_UINT16 && got->datatype == INFERD_TYPE_BF16) want->dtype = INFERD_TYPE_BF16;
  if (want->dtype != got->datatype) {
    set_reason(reason, "output '%s' has type %s, expected %s", name, inferd_datatype_name(got->datatype),
               inferd_datatype_name(want->dtype));
    return false;
  }
  if (!dims_equal(want, got)) {
    char a[256], b[256];
    dims_text(got->rank, got->dims, a, sizeof(a));
    dims_text(want->rank, want->dims, b, sizeof(b));
    set_reason(reason, "output '%s' has shape %s, expected %s", name, a, b);
    return false;
  }
  int64_t count = ir_tensor_numel(want), bad = 0, first = -1;
  bool is_float = ops_dtype_is_float(want->dtype);
  double worst_got = 0, worst_want = 0;
  for (int64_t i = 0; i < count; i++) {
    bool ok;
    if (is_float) {
      double w = ops_load_f64(want->data, want->dtype, i), v = ops_load_f64(got->data, got->datatype, i);
      ok = (isnan(w) && isnan(v)) || w == v || fabs(v - w) <= ATOL + RTOL * fabs(w);
      if (!ok && first < 0) worst_got = v, worst_want = w;
    } else {
      size_t esize = inferd_datatype_size(want->dtype);
      ok =
          memcmp((const char *)want->data + (size_t)i * esize, (const char *)got->data + (size_t)i * esize, esize) == 0;
      if (!ok && first < 0) {
        worst_got = (double)ops_load_i64(got->data, got->datatype, i);
        worst_want = (double)ops_load_i64(want->data, want->dtype, i);
      }
    }
    if (!ok) {
      if (first < 0) first = i;
      bad++;
    }
  }
  if (bad) {
    set_reason(reason, "output '%s': %lld of %lld values differ; first at %lld: got %.9g, expected %.9g", name,
               (long long)bad, (long long)count, (long long)first, worst_got, worst_want);
    return false;
  }
  return true;
}

/* ---- one data set ---------------------------------------------------------- */

typedef struct data_set {
  int n_in, n_out;
  ir_tensor in[MAX_TENSORS], out[MAX_TENSORS];
  char *in_name[MAX_TENSORS], *out_name[MAX_TENSORS];
} data_set;

static void data_set_free(data_set *s) {
  for (int i = 0; i < s->n_in; i++) {
    free(s->in[i].data);
    free(s->in_name[i]);
  }
  for (int i = 0; i < s->n_out; i++) {
    free(s->out[i].data);
    free(s->out_name[i]);
  }
  *s = (data_set){0};
}

static bool data_set_read(const char *dir, data_set *s, char *reason) {
  *s = (data_set){0};
  for (int pass = 0; pass < 2; pass++) {
    for (int k = 0; k < MAX_TENSORS; k++) {
      char path[4096], leaf[32];
      snprintf(leaf, sizeof(leaf), "%s_%d.pb", pass ? "output" : "input", k);
      path_join(path, sizeof(path), dir, leaf);
      if (!file_exists(path)) break;
      ir_tensor *t = pass ? &s->out[k] : &s->in[k];
      char **name = pass ? &s->out_name[k] : &s->in_name[k];
      inferd_error *e = onnx_read_tensor_file(path, t, name);
      if (e) return fail_with(reason, path, e);
      if (pass)
        s->n_out = k + 1;
      else
        s->n_in = k + 1;
    }
  }
  return true;
}

static inferd_error *load_plan(const char *path, const char *backend, int max_batch, inferd_plan **plan) {
  inferd_plan_options o = {.backend = backend, .max_batch_size = max_batch, .threads = 1};
  return inferd_plan_load(path, &o, plan);
}

/* Loads, runs and checks one data set. */
static bool run_data_set(const options *opt, const char *model_path, const char **fed, int n_fed, const bool *frozen,
                         const data_set *s, char *reason) {
  static char empty_byte; /* a non-NULL pointer for empty tensors */
  if (s->n_in != n_fed) {
    set_reason(reason, "the data set has %d inputs, the model %d", s->n_in, n_fed);
    return false;
  }
  int batch = 1;
  for (int k = 0; k < n_fed; k++)
    if (!frozen[k]) {
      batch = s->in[k].rank > 0 && s->in[k].dims[0] > 0 ? (int)s->in[k].dims[0] : 1;
      break;
    }
  inferd_plan *plan = NULL;
  inferd_error *e = load_plan(model_path, opt->backend, 0, &plan);
  if (e) return fail_with(reason, "load", e);
  if (!inferd_plan_has_dynamic_batch(plan)) batch = 1;
  if (batch > inferd_plan_max_batch_size(plan)) {
    inferd_plan_delete(plan);
    if ((e = load_plan(model_path, opt->backend, batch, &plan))) return fail_with(reason, "load", e);
  }
  inferd_context *ctx = NULL;
  if ((e = inferd_context_create(plan, NULL, &ctx))) {
    inferd_plan_delete(plan);
    return fail_with(reason, "context", e);
  }
  inferd_tensor inputs[MAX_TENSORS], outputs[MAX_TENSORS] = {0};
  int n_inputs = 0;
  for (int k = 0; k < n_fed; k++) {
    if (frozen[k]) continue;
    const ir_tensor *t = &s->in[k];
    inferd_tensor *x = &inputs[n_inputs++];
    *x = (inferd_tensor){.name = fed[k], .datatype = t->dtype, .rank = t->rank};
    memcpy(x->dims, t->dims, sizeof(x->dims));
    x->byte_size = (size_t)ir_tensor_numel(t) * inferd_datatype_size(t->dtype);
    x->data = t->data ? t->data : &empty_byte;
  }
  /* ONNX's generator stores bfloat16 test data as UINT16 bit patterns
   * (numpy has no bfloat16): read those as the BF16 the model declares. */
  for (int i = 0; i < n_inputs; i++) {
    inferd_tensor_info info;
    for (int k = 0; k < inferd_plan_input_count(plan); k++)
      if (!inferd_plan_input(plan, k, &info) && strcmp(info.name, inputs[i].name) == 0 &&
          info.datatype == INFERD_TYPE_BF16 && inputs[i].datatype == INFERD_TYPE_UINT16)
        inputs[i].datatype = INFERD_TYPE_BF16;
  }
  int n_outputs = inferd_plan_output_count(plan);
  bool ok = true;
  if (n_outputs != s->n_out || n_outputs > MAX_TENSORS) {
    set_reason(reason, "the model has %d outputs, the data set %d", n_outputs, s->n_out);
    ok = false;
  }
  for (int j = 0; j < n_outputs && ok; j++) {
    inferd_tensor_info info;
    inferd_plan_output(plan, j, &info);
    size_t bytes = inferd_datatype_size(info.datatype);
    for (int d = 0; d < info.rank; d++) bytes *= (size_t)(info.dims[d] < 0 ? batch : info.dims[d]);
    outputs[j] = (inferd_tensor){.name = info.name, .byte_size = bytes, .data = calloc(1, bytes ? bytes : 1)};
  }
  if (ok && (e = inferd_context_run(ctx, batch, inputs, n_inputs, outputs, n_outputs)))
    ok = fail_with(reason, "run", e);
  for (int j = 0; j < n_outputs && ok; j++) ok = compare_output(outputs[j].name, &s->out[j], &outputs[j], reason);
  for (int j = 0; j < n_outputs && j < MAX_TENSORS; j++) free(outputs[j].data);
  inferd_context_delete(ctx);
  inferd_plan_delete(plan);
  return ok;
}

/* ---- one test -------------------------------------------------------------- */

typedef enum { TEST_PASS, TEST_FAIL, TEST_NOT_APPLICABLE } test_result;

static test_result run_test(const options *opt, const char *test_dir, char *reason, bool *used_freezing) {
  char path[4096];
  path_join(path, sizeof(path), test_dir, "model.onnx");
  size_t size;
  void *bytes = read_file(path, &size);
  Onnx__ModelProto *m = bytes ? onnx__model_proto__unpack(NULL, size, bytes) : NULL;
  free(bytes);
  if (!m || !m->graph) {
    if (m) onnx__model_proto__free_unpacked(m, NULL);
    set_reason(reason, "cannot parse %s", path);
    return TEST_FAIL;
  }
  char missing[256];
  if (!model_applies(m, missing, sizeof(missing))) {
    set_reason(reason, "op %s is not implemented", missing);
    onnx__model_proto__free_unpacked(m, NULL);
    return TEST_NOT_APPLICABLE;
  }
  const char *fed[MAX_TENSORS];
  bool frozen[MAX_TENSORS] = {false};
  int n_fed = fed_inputs(m->graph, fed);
  *used_freezing = false;
  for (int k = 0; k < n_fed; k++) *used_freezing |= frozen[k] = must_freeze(m, fed[k]);

  int n_sets;
  char **sets = list_dir(test_dir, "test_data_set_", &n_sets);
  test_result result = n_sets ? TEST_PASS : TEST_FAIL;
  if (!n_sets) set_reason(reason, "no test_data_set_* folders");
  for (int i = 0; i < n_sets && result == TEST_PASS; i++) {
    char set_dir[4096], model_path[4096];
    path_join(set_dir, sizeof(set_dir), test_dir, sets[i]);
    data_set s;
    if (!data_set_read(set_dir, &s, reason)) {
      data_set_free(&s);
      result = TEST_FAIL;
      break;
    }
    bool ok = true;
    snprintf(model_path, sizeof(model_path), "%s", path);
    if (*used_freezing) ok = write_frozen_model(m, fed, n_fed, frozen, set_dir, model_path, sizeof(model_path), reason);
    if (ok) ok = run_data_set(opt, model_path, fed, n_fed, frozen, &s, reason);
    if (*used_freezing && strcmp(model_path, path) != 0) unlink(model_path);
    if (!ok) {
      char prefixed[REASON_MAX];
      snprintf(prefixed, sizeof(prefixed), "%s: %s", sets[i], reason);
      memcpy(reason, prefixed, REASON_MAX);
      result = TEST_FAIL;
    }
    data_set_free(&s);
  }
  free_names(sets, n_sets);
  onnx__model_proto__free_unpacked(m, NULL);
  return result;
}

static void run_suite(const options *opt, const exclusions *ex, const char *suite, counts *c) {
  char dir[4096];
  path_join(dir, sizeof(dir), opt->data_dir, suite);
  int n_tests;
  char **tests = list_dir(dir, "test_", &n_tests);
  if (!tests) fprintf(stderr, "onnx_conformance: no tests in %s\n", dir);
  for (int i = 0; i < n_tests; i++) {
    const char *name = tests[i];
    if (opt->filter && !strstr(name, opt->filter)) continue;
    char test_dir[4096], reason[REASON_MAX] = "";
    path_join(test_dir, sizeof(test_dir), dir, name);
    bool excluded = exclusions_has(ex, name);
    if (excluded && !opt->run_excluded) {
      c->excluded++;
      if (opt->verbose) printf("EXCLUDED %s/%s\n", suite, name);
      continue;
    }
    bool frozen = false;
    test_result r = run_test(opt, test_dir, reason, &frozen);
    if (r == TEST_NOT_APPLICABLE) {
      c->not_applicable++;
      if (opt->verbose) printf("N/A  %s/%s: %s\n", suite, name, reason);
      continue;
    }
    if (excluded) {
      c->excluded++;
      printf("EXCLUDED %s/%s %s%s\n", suite, name,
             r == TEST_PASS ? "passes now" : "still fails: ", r == TEST_PASS ? "" : reason);
      continue;
    }
    c->applicable++;
    c->frozen += frozen;
    if (r == TEST_PASS) {
      c->passed++;
      if (opt->verbose) printf("PASS %s/%s%s\n", suite, name, frozen ? " (shape inputs frozen)" : "");
    } else {
      c->failed++;
      printf("FAIL %s/%s: %s\n", suite, name, reason);
    }
    fflush(stdout);
  }
  free_names(tests, n_tests);
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: onnx_conformance --data DIR [--exclusions FILE] [--backend NAME] [--filter SUBSTR]\n"
          "                        [--verbose] [--run-excluded]\n"
          "Runs the ONNX node and pytorch-converted tests in DIR (e.g. /usr/share/libonnx-testdata/data)\n"
          "on backend NAME (default cpu). --filter keeps tests whose name contains SUBSTR; --run-excluded\n"
          "runs excluded tests too and reports whether they still fail.\n");
}

int main(int argc, char **argv) {
  options opt = {.backend = "cpu"};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has_value = i + 1 < argc;
    if (strcmp(a, "--data") == 0 && has_value)
      opt.data_dir = argv[++i];
    else if (strcmp(a, "--exclusions") == 0 && has_value)
      opt.exclusions_path = argv[++i];
    else if (strcmp(a, "--backend") == 0 && has_value)
      opt.backend = argv[++i];
    else if (strcmp(a, "--filter") == 0 && has_value)
      opt.filter = argv[++i];
    else if (strcmp(a, "--verbose") == 0)
      opt.verbose = true;
    else if (strcmp(a, "--run-excluded") == 0)
      opt.run_excluded = true;
    else if (strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (!opt.data_dir) {
    usage(stderr);
    return 2;
  }
  exclusions ex;
  if (!exclusions_load(opt.exclusions_path, &ex)) return 2;
  counts c = {0};
  run_suite(&opt, &ex, "node", &c);
  run_suite(&opt, &ex, "pytorch-converted", &c);
  printf(
      "onnx conformance (backend %s): %d applicable, %d passed, %d failed, %d excluded (%d not applicable: ops not "
      "implemented); %d ran with shape inputs frozen as constants\n",
      opt.backend, c.applicable, c.passed, c.failed, c.excluded, c.not_applicable, c.frozen);
  printf("%d passed, %d failed\n", c.passed, c.failed);
  free_names(ex.names, ex.count);
  return c.failed ? 1 : 0;
}
