#include "engine/ops/sym.h"

#include <inttypes.h>
#include <string.h>

#include "engine/ops/op_util.h"

bool ops_known_ints(const ir_graph *g, int value, ir_symint *out, int cap, int *n) {
  if (value < 0 || value >= g->n_values) return false;
  const ir_value *v = &g->values[value];
  if (!ops_dtype_is_int(v->dtype) && v->dtype != INFERD_TYPE_BOOL) return false;
  if (v->sym) {
    if (v->sym_len > cap) return false;
    memcpy(out, v->sym, (size_t)v->sym_len * sizeof(*out));
    *n = v->sym_len;
    return true;
  }
  if (v->kind != IR_VALUE_CONST || !v->data || !v->has_shape || !ir_shape_is_static(&v->shape)) return false;
  int64_t count = ir_shape_numel(&v->shape, 1);
  if (count > cap || (size_t)count * inferd_datatype_size(v->dtype) > v->nbytes) return false;
  for (int64_t i = 0; i < count; i++) out[i] = (ir_symint){.value = ops_load_i64(v->data, v->dtype, i)};
  *n = (int)count;
  return true;
}

void ops_set_sym(ir_graph *g, int value, const ir_symint *sym, int n) {
  if (value < 0 || value >= g->n_values) return; /* an output left unnamed */
  ir_value *v = &g->values[value];
  v->sym = NULL;
  v->sym_len = 0;
  if (n > IR_SYM_MAX || n < 0) return;
  /* A zero-element tensor is known too; keep a non-NULL pointer for it. */
  v->sym = mem_pool_alloc(g->pool, (size_t)(n ? n : 1) * sizeof(*sym));
  if (n) memcpy(v->sym, sym, (size_t)n * sizeof(*sym));
  v->sym_len = n;
}

void ops_forward_sym(ir_graph *g, int from, int to) {
  ir_symint sym[IR_SYM_MAX];
  int n;
  if (to < 0 || !ops_dtype_is_int(g->values[to].dtype)) return;
  if (ops_known_ints(g, from, sym, IR_SYM_MAX, &n)) ops_set_sym(g, to, sym, n);
}

bool ops_sym_all_static(const ir_symint *sym, int n) {
  for (int i = 0; i < n; i++)
    if (sym[i].coef) return false;
  return true;
}

inferd_error *ops_require_ints(const ir_graph *g, const ir_node *node, int input, const char *what, int64_t *out,
                               int cap, int *n) {
  ir_symint sym[IR_SYM_MAX];
  int v = ir_node_input(node, input);
  if (cap > IR_SYM_MAX) cap = IR_SYM_MAX;
  if (v >= 0 && !ops_dtype_is_int(g->values[v].dtype))
    return ir_node_error(g, node, INFERD_ERROR_INVALID_ARG, "%s ('%s') must be an integer tensor, not %s", what,
                         g->values[v].name, inferd_datatype_name(g->values[v].dtype));
  if (v < 0 || !ops_known_ints(g, v, sym, cap, n))
    return ir_node_error(g, node, INFERD_ERROR_UNSUPPORTED, "%s ('%s') must be known when the model is loaded", what,
                         v >= 0 ? g->values[v].name : "");
  for (int i = 0; i < *n; i++) {
    if (sym[i].coef)
      return ir_node_error(g, node, INFERD_ERROR_UNSUPPORTED, "%s ('%s') depends on the batch size", what,
                           g->values[v].name);
    out[i] = sym[i].value;
  }
  return NULL;
}

inferd_error *ops_read_ints(const ir_graph *g, const ir_node *node, const ir_tensor *in, int i, const char *what,
                            int64_t *out, int cap, int *count) {
  *count = -1;
  if (ir_node_input(node, i) < 0) return NULL;
  if (!in) return ops_require_ints(g, node, i, what, out, cap, count);
  const ir_tensor *t = &in[i];
  if (!t->data) return NULL;
  int64_t n = ir_tensor_numel(t);
  if (n > cap)
    return ir_node_error(g, node, INFERD_ERROR_INVALID_ARG, "%s has %" PRId64 " values, at most %d", what, n, cap);
  for (int64_t k = 0; k < n; k++) out[k] = ops_load_i64(t->data, t->dtype, k);
  *count = (int)n;
  return NULL;
}
