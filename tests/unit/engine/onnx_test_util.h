/*
 * Helpers for the ONNX tests: a temporary folder, and ModelProto messages
 * assembled from protobuf-c structs so each test can make exactly the
 * (often malformed) file it needs.
 */
#ifndef INFERD_TESTS_ONNX_TEST_UTIL_H
#define INFERD_TESTS_ONNX_TEST_UTIL_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "engine/onnx/onnx.h"
#include "engine/onnx/onnx.pb-c.h"

/* Not every test uses every helper. */
#define TEST_UTIL __attribute__((unused)) static

/* ---- files ------------------------------------------------------------- */

static char test_dir[256];

TEST_UTIL int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

TEST_UTIL int test_dir_setup(void **state) {
  (void)state;
  const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(test_dir, sizeof(test_dir), "%s/inferd_onnx_XXXXXX", base);
  return mkdtemp(test_dir) ? 0 : -1;
}

TEST_UTIL int test_dir_teardown(void **state) {
  (void)state;
  return nftw(test_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* test_dir/name, in a static rotating buffer. */
TEST_UTIL const char *test_path(const char *name) {
  static char bufs[4][512];
  static int next;
  char *b = bufs[next++ % 4];
  snprintf(b, 512, "%s/%s", test_dir, name);
  return b;
}

TEST_UTIL void write_bytes(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  if (len && fwrite(data, 1, len, f) != len) abort();
  fclose(f);
}

TEST_UTIL uint8_t *read_bytes(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) abort();
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *data = malloc(*len + 1);
  if (*len && fread(data, 1, *len, f) != *len) abort();
  fclose(f);
  return data;
}

/* True when `p` lies in a mapping of the file `path` (from /proc/self/maps). */
TEST_UTIL int pointer_in_file_mapping(const void *p, const char *path) {
  char real[4096];
  if (!realpath(path, real)) return 0;
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return 0;
  char line[8192];
  int found = 0;
  while (fgets(line, sizeof(line), f)) {
    unsigned long lo, hi;
    char file[4096] = "";
    if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %4095s", &lo, &hi, file) < 2) continue;
    if ((uintptr_t)p >= lo && (uintptr_t)p < hi) found = strcmp(file, real) == 0;
  }
  fclose(f);
  return found;
}

/* ---- ModelProto assembly ------------------------------------------------ */

enum { TM_MAX = 32 };

typedef struct test_model {
  mem_pool *pool;
  Onnx__ModelProto model;
  Onnx__GraphProto graph;
  Onnx__OperatorSetIdProto opset;
  Onnx__OperatorSetIdProto *opsets[1];
  Onnx__NodeProto *nodes[TM_MAX];
  Onnx__TensorProto *inits[TM_MAX];
  Onnx__ValueInfoProto *inputs[TM_MAX], *outputs[TM_MAX];
} test_model;

TEST_UTIL void tm_init(test_model *m) {
  memset(m, 0, sizeof(*m));
  m->pool = mem_pool_new();
  onnx__model_proto__init(&m->model);
  onnx__graph_proto__init(&m->graph);
  onnx__operator_set_id_proto__init(&m->opset);
  m->opset.domain = "";
  m->opset.has_version = 1;
  m->opset.version = 13;
  m->opsets[0] = &m->opset;
  m->model.has_ir_version = 1;
  m->model.ir_version = 8;
  m->model.n_opset_import = 1;
  m->model.opset_import = m->opsets;
  m->model.graph = &m->graph;
  m->graph.name = "test";
  m->graph.node = m->nodes;
  m->graph.initializer = m->inits;
  m->graph.input = m->inputs;
  m->graph.output = m->outputs;
}

TEST_UTIL void tm_free(test_model *m) { mem_pool_delete(m->pool); }

TEST_UTIL void *tm_alloc(test_model *m, size_t size) { return mem_pool_alloc(m->pool, size); }

/* Dims: >= 0 a value, -1 dim_param "N", -2 dim_param "H", -3 a dimension with neither. */
TEST_UTIL Onnx__ValueInfoProto *tm_value_info(test_model *m, const char *name, int32_t elem, int rank,
                                           const int64_t *dims) {
  Onnx__ValueInfoProto *vi = tm_alloc(m, sizeof(*vi));
  onnx__value_info_proto__init(vi);
  vi->name = (char *)name;
  Onnx__TypeProto *tp = tm_alloc(m, sizeof(*tp));
  onnx__type_proto__init(tp);
  Onnx__TypeProto__Tensor *tt = tm_alloc(m, sizeof(*tt));
  onnx__type_proto__tensor__init(tt);
  tt->has_elem_type = 1;
  tt->elem_type = elem;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  vi->type = tp;
  if (rank < 0) return vi; /* no shape */
  Onnx__TensorShapeProto *sp = tm_alloc(m, sizeof(*sp));
  onnx__tensor_shape_proto__init(sp);
  sp->n_dim = (size_t)rank;
  sp->dim = tm_alloc(m, (size_t)(rank + 1) * sizeof(*sp->dim));
  for (int i = 0; i < rank; i++) {
    Onnx__TensorShapeProto__Dimension *d = tm_alloc(m, sizeof(*d));
    onnx__tensor_shape_proto__dimension__init(d);
    if (dims[i] >= 0) {
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      d->dim_value = dims[i];
    } else if (dims[i] != -3) {
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      d->dim_param = dims[i] == -1 ? "N" : "H";
    }
    sp->dim[i] = d;
  }
  tt->shape = sp;
  return vi;
}

TEST_UTIL Onnx__ValueInfoProto *tm_input(test_model *m, const char *name, int32_t elem, int rank, const int64_t *dims) {
  return m->inputs[m->graph.n_input++] = tm_value_info(m, name, elem, rank, dims);
}

TEST_UTIL Onnx__ValueInfoProto *tm_output(test_model *m, const char *name) {
  Onnx__ValueInfoProto *vi = tm_alloc(m, sizeof(*vi));
  onnx__value_info_proto__init(vi);
  vi->name = (char *)name;
  return m->outputs[m->graph.n_output++] = vi;
}

/* A TensorProto (not yet added anywhere); data, when given, goes in raw_data. */
TEST_UTIL Onnx__TensorProto *tm_tensor(test_model *m, const char *name, int32_t type, int rank, const int64_t *dims,
                                    const void *raw, size_t nbytes) {
  Onnx__TensorProto *t = tm_alloc(m, sizeof(*t));
  onnx__tensor_proto__init(t);
  t->name = (char *)name;
  t->has_data_type = 1;
  t->data_type = type;
  t->n_dims = (size_t)rank;
  t->dims = tm_alloc(m, (size_t)(rank + 1) * sizeof(int64_t));
  if (rank) memcpy(t->dims, dims, (size_t)rank * sizeof(int64_t));
  if (raw) {
    t->has_raw_data = 1;
    t->raw_data.len = nbytes;
    t->raw_data.data = mem_pool_memdup(m->pool, raw, nbytes);
  }
  return t;
}

TEST_UTIL Onnx__TensorProto *tm_initializer(test_model *m, const char *name, int32_t type, int rank,
                                         const int64_t *dims, const void *raw, size_t nbytes) {
  return m->inits[m->graph.n_initializer++] = tm_tensor(m, name, type, rank, dims, raw, nbytes);
}

TEST_UTIL Onnx__NodeProto *tm_node(test_model *m, const char *op, const char *name, int n_in, const char *const *in,
                                int n_out, const char *const *out) {
  Onnx__NodeProto *n = tm_alloc(m, sizeof(*n));
  onnx__node_proto__init(n);
  n->op_type = (char *)op;
  n->name = (char *)name;
  n->n_input = (size_t)n_in;
  n->input = (char **)in;
  n->n_output = (size_t)n_out;
  n->output = (char **)out;
  n->attribute = tm_alloc(m, TM_MAX * sizeof(*n->attribute));
  return m->nodes[m->graph.n_node++] = n;
}

TEST_UTIL Onnx__AttributeProto *tm_attr(test_model *m, Onnx__NodeProto *n, const char *name, int type) {
  Onnx__AttributeProto *a = tm_alloc(m, sizeof(*a));
  onnx__attribute_proto__init(a);
  a->name = (char *)name;
  a->has_type = 1;
  a->type = (Onnx__AttributeProto__AttributeType)type;
  return n->attribute[n->n_attribute++] = a;
}

/* Packs the model into a malloc'd buffer. */
TEST_UTIL uint8_t *tm_pack(test_model *m, size_t *len) {
  *len = onnx__model_proto__get_packed_size(&m->model);
  uint8_t *buf = malloc(*len + 1);
  onnx__model_proto__pack(&m->model, buf);
  return buf;
}

/* Packs the model into test_dir/name and returns the path. */
TEST_UTIL const char *tm_write(test_model *m, const char *name) {
  size_t len;
  uint8_t *buf = tm_pack(m, &len);
  const char *path = test_path(name);
  write_bytes(path, buf, len);
  free(buf);
  return path;
}

/* Imports test_dir/name expecting failure with `code`; returns the message
 * (static copy) for the caller to check. */
TEST_UTIL const char *import_error(const char *path, inferd_error_code code) {
  static char msg[2048];
  ir_graph *g = NULL;
  inferd_error *e = onnx_import_file(path, &g);
  if (!e) {
    fprintf(stderr, "expected an error importing %s\n", path);
    ir_graph_delete(g);
    return NULL;
  }
  snprintf(msg, sizeof(msg), "%s", inferd_error_message(e));
  inferd_error_code got = inferd_error_code_of(e);
  inferd_error_delete(e);
  if (got != code) {
    fprintf(stderr, "expected %s, got %s: %s\n", inferd_error_code_name(code), inferd_error_code_name(got), msg);
    return NULL;
  }
  if (g) return NULL;
  return msg;
}

#define assert_contains(haystack, needle)                                                              \
  do {                                                                                                 \
    const char *h_ = (haystack);                                                                       \
    if (!h_ || !strstr(h_, (needle))) {                                                                \
      print_error("'%s' does not contain '%s'\n", h_ ? h_ : "(null)", (needle));                       \
      fail();                                                                                          \
    }                                                                                                  \
  } while (0)

#endif
