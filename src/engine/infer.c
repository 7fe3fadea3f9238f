/* Graph-wide shape inference: every live node in topological order. */
#include "engine/ir.h"

inferd_error *ir_infer_node(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  const ir_op_info *info = ir_op_get(n->op);
  if (!info) return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "unknown operator");
  if (n->n_inputs < info->min_inputs || n->n_inputs > info->max_inputs)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "has %d inputs, expected %d to %d", n->n_inputs,
                         info->min_inputs, info->max_inputs);
  if (n->n_outputs < info->min_outputs || n->n_outputs > info->max_outputs)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "has %d outputs, expected %d to %d", n->n_outputs,
                         info->min_outputs, info->max_outputs);
  for (int i = 0; i < n->n_inputs && i < info->required_inputs; i++)
    if (n->inputs[i] < 0)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG,
                           "input %d is required, and it is absent (given as the empty name)", i);
  for (int i = 0; i < n->n_inputs; i++) {
    int v = n->inputs[i];
    if (v >= 0 && !g->values[v].has_shape)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "input '%s' has no known shape", g->values[v].name);
  }
  return info->infer(g, node);
}

inferd_error *ir_infer_shapes(ir_graph *g) {
  for (int i = 0; i < g->n_nodes; i++) {
    if (g->nodes[i].dead) continue;
    ERR_TRY(ir_infer_node(g, i));
  }
  return NULL;
}
