/*
 * Helpers for the op tests: build small graphs by hand with the ir.h API,
 * run one node's shape inference or reference kernel, and check results.
 * Include after cmocka.h.
 */
#ifndef INFERD_TESTS_OPS_TEST_H
#define INFERD_TESTS_OPS_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ir.h"
#include "engine/ops/op_impl.h"
#include "engine/ops/sym.h"

/* DIMS(1, 3, 224, 224) expands to the rank and a dims array; -k is k*N. */
#define DIMS(...)                                                                                                      \
  (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]) { __VA_ARGS__ }
#define SCALAR                                                                                                         \
  0, (int64_t[]) { 0 }
#define INS(...)                                                                                                       \
  (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)), (int[]) { __VA_ARGS__ }

static inline ir_graph *t_graph(int64_t opset) {
  ir_graph *g = ir_graph_new();
  g->opset = opset;
  return g;
}

static inline ir_shape t_shape(int rank, const int64_t *dims) {
  ir_shape s = {.rank = rank};
  for (int i = 0; i < rank; i++) s.dims[i] = dims[i];
  return s;
}

static inline int t_input(ir_graph *g, const char *name, inferd_datatype dt, int rank, const int64_t *dims) {
  int v = ir_graph_add_value(g, name, dt);
  g->values[v].shape = t_shape(rank, dims);
  g->values[v].has_shape = true;
  ir_graph_add_input(g, v);
  return v;
}

static inline int t_const(ir_graph *g, const char *name, inferd_datatype dt, int rank, const int64_t *dims,
                          const void *data) {
  int v;
  ir_shape s = t_shape(rank, dims);
  inferd_error *e = ir_graph_add_const_copy(g, name, dt, &s, data, &v);
  assert_null(e);
  return v;
}

static inline int t_const_i64(ir_graph *g, const char *name, int n, const int64_t *values) {
  return t_const(g, name, INFERD_TYPE_INT64, 1, (int64_t[]){n}, values);
}

/* A node named `name` with `n_out` new outputs named name:0, name:1... */
static inline int t_node(ir_graph *g, ir_op op, const char *name, int n_in, const int *ins, int n_out) {
  int outs[8];
  for (int k = 0; k < n_out; k++) {
    char buf[128];
    snprintf(buf, sizeof(buf), "%s:%d", name, k);
    outs[k] = ir_graph_add_value(g, buf, INFERD_TYPE_INVALID);
  }
  return ir_graph_add_node(g, op, name, n_in, ins, n_out, outs);
}

static inline int t_out(const ir_graph *g, int node, int k) { return g->nodes[node].outputs[k]; }

static inline void t_attr_int(ir_graph *g, int node, const char *name, int64_t v) {
  ir_node_add_attr(g, node, name, IR_ATTR_INT)->i = v;
}
static inline void t_attr_float(ir_graph *g, int node, const char *name, float v) {
  ir_node_add_attr(g, node, name, IR_ATTR_FLOAT)->f = v;
}
static inline void t_attr_string(ir_graph *g, int node, const char *name, const char *s) {
  ir_attr *a = ir_node_add_attr(g, node, name, IR_ATTR_STRING);
  a->s = mem_pool_strdup(g->pool, s);
  a->s_len = strlen(s);
}
static inline void t_attr_ints(ir_graph *g, int node, const char *name, int n, const int64_t *v) {
  ir_attr *a = ir_node_add_attr(g, node, name, IR_ATTR_INTS);
  a->n = n;
  a->ints = mem_pool_memdup(g->pool, v, (size_t)(n ? n : 1) * sizeof(int64_t));
}

static inline void t_expect_ok(ir_graph *g, int node) {
  inferd_error *e = ir_infer_node(g, node);
  if (e) {
    fprintf(stderr, "unexpected error: %s\n", inferd_error_message(e));
    inferd_error_delete(e);
    fail();
  }
}

/* Inference must fail with a message naming the node and containing `what`. */
static inline void t_expect_error(ir_graph *g, int node, const char *what) {
  inferd_error *e = ir_infer_node(g, node);
  if (!e) {
    fprintf(stderr, "node '%s': expected an error containing \"%s\"\n", g->nodes[node].name, what);
    fail();
  }
  const char *msg = inferd_error_message(e);
  char named[160];
  snprintf(named, sizeof(named), "node '%s'", g->nodes[node].name);
  if (!strstr(msg, named) || !strstr(msg, what)) {
    fprintf(stderr, "error \"%s\" lacks \"%s\" or \"%s\"\n", msg, named, what);
    inferd_error_delete(e);
    fail();
  }
  inferd_error_delete(e);
}

static inline void t_expect_shape(const ir_graph *g, int value, inferd_datatype dt, const char *text) {
  char buf[160];
  assert_true(g->values[value].has_shape);
  assert_string_equal(ir_shape_str(&g->values[value].shape, buf, sizeof(buf)), text);
  assert_int_equal(g->values[value].dtype, dt);
}

/* "3, N, 2N+1"-style text of a value's symbolic contents. */
static inline void t_expect_sym(const ir_graph *g, int value, const char *text) {
  ir_symint sym[IR_SYM_MAX];
  int n;
  char buf[512] = "";
  assert_true(ops_known_ints(g, value, sym, IR_SYM_MAX, &n));
  for (int i = 0; i < n; i++) {
    char item[64];
    if (sym[i].coef == 0)
      snprintf(item, sizeof(item), "%lld", (long long)sym[i].value);
    else if (sym[i].value == 0)
      snprintf(item, sizeof(item), "%lldN", (long long)sym[i].coef);
    else
      snprintf(item, sizeof(item), "%lldN%+lld", (long long)sym[i].coef, (long long)sym[i].value);
    strncat(buf, i ? ", " : "", sizeof(buf) - strlen(buf) - 1);
    strncat(buf, item, sizeof(buf) - strlen(buf) - 1);
  }
  assert_string_equal(buf, text);
}

/* Runs node's reference kernel at `batch`. in_data[k] is input k's data
 * (ignored for constants, which use their own); outputs are allocated from
 * the inferred shapes and returned in out_data (caller frees). */
static inline inferd_error *t_run(const ir_graph *g, int node, int64_t batch, const void *const *in_data,
                                  void **out_data) {
  const ir_node *n = &g->nodes[node];
  ir_tensor in[16] = {0}, out[4] = {0};
  for (int k = 0; k < n->n_inputs; k++) {
    int v = n->inputs[k];
    if (v < 0) continue;
    const ir_value *val = &g->values[v];
    in[k].dtype = val->dtype;
    in[k].rank = val->shape.rank;
    for (int d = 0; d < val->shape.rank; d++) in[k].dims[d] = ir_dim_eval(val->shape.dims[d], batch);
    in[k].data = val->kind == IR_VALUE_CONST ? (void *)val->data : (void *)in_data[k];
  }
  for (int k = 0; k < n->n_outputs; k++) {
    int v = n->outputs[k];
    out_data[k] = NULL;
    if (v < 0) continue;
    const ir_value *val = &g->values[v];
    out[k].dtype = val->dtype;
    out[k].rank = val->shape.rank;
    for (int d = 0; d < val->shape.rank; d++) out[k].dims[d] = ir_dim_eval(val->shape.dims[d], batch);
    size_t bytes = (size_t)ir_tensor_numel(&out[k]) * inferd_datatype_size(val->dtype);
    out[k].data = out_data[k] = calloc(1, bytes ? bytes : 1);
  }
  return ir_op_get(n->op)->ref(g, n, in, out);
}

/* Runs and checks output 0 against `want` (FP32) within a tolerance. */
static inline void t_run_check_f32(const ir_graph *g, int node, int64_t batch, const void *const *in_data,
                                   const float *want, int64_t count) {
  void *out[4];
  inferd_error *e = t_run(g, node, batch, in_data, out);
  if (e) {
    fprintf(stderr, "kernel error: %s\n", inferd_error_message(e));
    inferd_error_delete(e);
    fail();
  }
  const float *got = out[0];
  for (int64_t i = 0; i < count; i++) {
    if (!(fabsf(got[i] - want[i]) <= 1e-5f + 1e-5f * fabsf(want[i])) && !(isnan(got[i]) && isnan(want[i]))) {
      fprintf(stderr, "element %lld: got %.9g, want %.9g\n", (long long)i, got[i], want[i]);
      fail();
    }
  }
  for (int k = 0; k < 4 && k < g->nodes[node].n_outputs; k++) free(out[k]);
}

/* Runs and checks output 0 byte for byte. */
static inline void t_run_check_bytes(const ir_graph *g, int node, int64_t batch, const void *const *in_data,
                                     const void *want, size_t bytes) {
  void *out[4];
  inferd_error *e = t_run(g, node, batch, in_data, out);
  if (e) {
    fprintf(stderr, "kernel error: %s\n", inferd_error_message(e));
    inferd_error_delete(e);
    fail();
  }
  assert_memory_equal(out[0], want, bytes);
  for (int k = 0; k < 4 && k < g->nodes[node].n_outputs; k++) free(out[k]);
}

/* The kernel must fail with a message containing `what`. */
static inline void t_run_expect_error(const ir_graph *g, int node, int64_t batch, const void *const *in_data,
                                      const char *what) {
  void *out[4];
  inferd_error *e = t_run(g, node, batch, in_data, out);
  assert_non_null(e);
  if (!strstr(inferd_error_message(e), what)) {
    fprintf(stderr, "error \"%s\" lacks \"%s\"\n", inferd_error_message(e), what);
    fail();
  }
  inferd_error_delete(e);
  for (int k = 0; k < 4 && k < g->nodes[node].n_outputs; k++) free(out[k]);
}

#endif
