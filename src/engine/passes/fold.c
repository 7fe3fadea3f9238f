/*
 * Folding: nodes whose inputs are all known at load time are computed once
 * with the reference kernels and replaced by constants; integer tensors whose
 * contents shape inference already knows symbolically (the Shape -> Gather ->
 * Unsqueeze -> Concat chains exporters emit in front of Reshape) become
 * constants too, so the chains die and Reshape becomes a view.
 */
#include <string.h>

#include "base/log.h"
#include "engine/passes.h"

/* Folded tensors larger than this stay computed at run time: a constant that
 * big is usually an expanded broadcast that is cheaper to recompute than to
 * keep resident. */
enum { FOLD_MAX_BYTES = 64 << 20 };

static inferd_error *make_const_from_sym(ir_graph *g, int value, bool batch_as_minus_one, int *out) {
  const ir_value *v = &g->values[value];
  ir_shape shape = v->shape;
  int n = v->sym_len;
  int64_t data[IR_SYM_MAX];
  for (int i = 0; i < n; i++) data[i] = v->sym[i].coef ? (batch_as_minus_one ? -1 : 0) : v->sym[i].value;
  char name[256];
  snprintf(name, sizeof(name), "%s_folded", v->name);
  void *block;
  ERR_TRY(ir_graph_add_const_alloc(g, ir_graph_find_value(g, name) < 0 ? name : NULL, v->dtype, &shape, &block, out));
  /* The graph may have grown: reload. */
  v = &g->values[value];
  if (v->dtype == INFERD_TYPE_INT64) {
    memcpy(block, data, (size_t)n * sizeof(int64_t));
  } else {
    int32_t *d32 = block;
    for (int i = 0; i < n; i++) d32[i] = (int32_t)data[i];
  }
  /* Keep the symbolic view on the constant too, for later rules. */
  ir_value *c = &g->values[*out];
  c->sym = mem_pool_memdup(g->pool, v->sym, (size_t)n * sizeof(ir_symint));
  c->sym_len = n;
  return NULL;
}

static bool sym_is_concrete(const ir_value *v) {
  if (!v->sym || v->kind == IR_VALUE_CONST) return false;
  if (v->dtype != INFERD_TYPE_INT64 && v->dtype != INFERD_TYPE_INT32) return false;
  if (!ir_shape_is_static(&v->shape) || ir_shape_numel(&v->shape, 1) != v->sym_len) return false;
  for (int i = 0; i < v->sym_len; i++)
    if (v->sym[i].coef) return false;
  return true;
}

/* Exactly one element depends on the batch and it is a plain multiple of it,
 * so Reshape may infer it with -1. */
static bool sym_has_one_batch_element(const ir_value *v) {
  if (!v->sym || v->dtype != INFERD_TYPE_INT64 || ir_shape_numel(&v->shape, 1) != v->sym_len) return false;
  int with_batch = 0;
  for (int i = 0; i < v->sym_len; i++) {
    if (v->sym[i].coef && v->sym[i].value) return false;
    with_batch += v->sym[i].coef != 0;
  }
  return with_batch == 1;
}

static bool is_view_op(ir_op op) { return op == IR_OP_Identity || op == IR_OP_Dropout; }

inferd_error *pass_simplify_shapes(ir_graph *g, int *changes) {
  int n_nodes = g->n_nodes;
  for (int i = 0; i < n_nodes; i++) {
    if (g->nodes[i].dead) continue;
    /* Inputs with fully known contents become constants. */
    for (int k = 0; k < g->nodes[i].n_inputs; k++) {
      int v = g->nodes[i].inputs[k];
      if (v < 0) continue;
      int c = -1;
      if (sym_is_concrete(&g->values[v])) {
        ERR_TRY(make_const_from_sym(g, v, false, &c));
      } else if (g->nodes[i].op == IR_OP_Reshape && k == 1 && g->values[v].kind != IR_VALUE_CONST &&
                 sym_has_one_batch_element(&g->values[v])) {
        /* Reshape's output shape is already inferred; its target only has to
         * stay true at every batch size, which -1 in the batch slot does. */
        ERR_TRY(make_const_from_sym(g, v, true, &c));
      }
      if (c >= 0) {
        g->nodes[i].inputs[k] = c;
        (*changes)++;
      }
    }
    /* Identity and inference-mode Dropout are no-ops: route around them,
     * unless the graph's own output is the thing they produce from a graph
     * input or constant (then something must still copy it). */
    ir_node *n = &g->nodes[i];
    if (is_view_op(n->op) && n->n_outputs >= 1 && n->inputs[0] >= 0) {
      int in = n->inputs[0], out = n->outputs[0];
      bool out_is_graph_output = g->values[out].is_output;
      bool in_is_external = g->values[in].kind != IR_VALUE_ACTIVATION || g->values[in].is_output;
      bool mask_used = n->n_outputs > 1 && n->outputs[1] >= 0 && g->values[n->outputs[1]].use_count > 0;
      if (!mask_used && !(out_is_graph_output && in_is_external)) {
        if (out_is_graph_output) {
          /* Rename the producer's result instead, so the output keeps its name. */
          int p = g->values[in].producer;
          if (p < 0) continue;
          ir_graph_replace_uses(g, in, out);
          for (int k = 0; k < g->nodes[p].n_outputs; k++)
            if (g->nodes[p].outputs[k] == in) g->nodes[p].outputs[k] = out;
          g->values[out].producer = p;
        } else {
          ir_graph_replace_uses(g, out, in);
        }
        n->dead = true;
        (*changes)++;
        ir_graph_update_uses(g);
      }
    }
  }
  return NULL;
}

static bool node_inputs_constant(const ir_graph *g, const ir_node *n) {
  for (int k = 0; k < n->n_inputs; k++) {
    int v = n->inputs[k];
    if (v >= 0 && g->values[v].kind != IR_VALUE_CONST) return false;
  }
  return n->n_inputs > 0;
}

static inferd_error *fold_node(ir_graph *g, int node, bool *folded) {
  *folded = false;
  const ir_node *n = &g->nodes[node];
  const ir_op_info *info = ir_op_get(n->op);
  if (!info || !info->ref) return NULL;
  ir_tensor in[64], out[8];
  if (n->n_inputs > 64 || n->n_outputs > 8) return NULL;
  for (int k = 0; k < n->n_outputs; k++) {
    const ir_value *v = n->outputs[k] >= 0 ? &g->values[n->outputs[k]] : NULL;
    if (!v || !v->has_shape || !ir_shape_is_static(&v->shape) || !inferd_datatype_size(v->dtype)) return NULL;
    if ((size_t)ir_shape_numel(&v->shape, 1) * inferd_datatype_size(v->dtype) > FOLD_MAX_BYTES) return NULL;
  }
  for (int k = 0; k < n->n_inputs; k++) {
    int v = n->inputs[k];
    in[k] = (ir_tensor){0};
    if (v < 0) continue;
    const ir_value *val = &g->values[v];
    in[k].dtype = val->dtype;
    in[k].rank = val->shape.rank;
    memcpy(in[k].dims, val->shape.dims, sizeof(in[k].dims));
    in[k].data = (void *)val->data;
  }
  int new_ids[8];
  for (int k = 0; k < n->n_outputs; k++) {
    const ir_value *v = &g->values[g->nodes[node].outputs[k]];
    ir_shape shape = v->shape;
    char name[256];
    snprintf(name, sizeof(name), "%s_folded", v->name);
    void *data;
    ERR_TRY(ir_graph_add_const_alloc(g, ir_graph_find_value(g, name) < 0 ? name : NULL, v->dtype, &shape, &data,
                                     &new_ids[k]));
    out[k] = (ir_tensor){.dtype = shape.rank >= 0 ? g->values[new_ids[k]].dtype : INFERD_TYPE_INVALID,
                         .rank = shape.rank,
                         .data = data};
    memcpy(out[k].dims, shape.dims, sizeof(out[k].dims));
  }
  n = &g->nodes[node];
  inferd_error *e = info->ref(g, n, in, out);
  if (e) {
    /* An op without a reference kernel simply stays; the new constants are
     * unused and die with the graph. Anything else is the model's fault. */
    if (inferd_error_code_of(e) == INFERD_ERROR_UNSUPPORTED) {
      inferd_error_delete(e);
      return NULL;
    }
    return err_wrap(e, "folding constants");
  }
  for (int k = 0; k < n->n_outputs; k++) {
    int old = g->nodes[node].outputs[k];
    bool was_output = g->values[old].is_output;
    ir_value *c = &g->values[new_ids[k]];
    /* Carry symbolic contents over so later rules still see them. */
    c->sym = g->values[old].sym;
    c->sym_len = g->values[old].sym_len;
    ir_graph_replace_uses(g, old, new_ids[k]);
    if (was_output) {
      /* The graph output keeps its name: the constant takes it over. */
      ir_graph_swap_value_names(g, old, new_ids[k]);
    }
  }
  g->nodes[node].dead = true;
  *folded = true;
  return NULL;
}

inferd_error *pass_fold_constants(ir_graph *g, int *changes) {
  int n_nodes = g->n_nodes;
  for (int i = 0; i < n_nodes; i++) {
    if (g->nodes[i].dead || !node_inputs_constant(g, &g->nodes[i])) continue;
    bool folded;
    ERR_TRY(fold_node(g, i, &folded));
    if (folded) (*changes)++;
  }
  ir_graph_update_uses(g);
  return NULL;
}
