/*
 * Fusion: what TensorRT does to a CNN before it picks kernels. BatchNorm
 * after a convolution is folded into the convolution's weights; activations
 * and the residual addition become post-operations of the node that produces
 * their input, so the backend applies them while the result is still in
 * registers instead of reading and writing the tensor again.
 */
#include <math.h>
#include <string.h>

#include "engine/passes.h"

static bool is_fp32_const(const ir_graph *g, int v) {
  return v >= 0 && g->values[v].kind == IR_VALUE_CONST && g->values[v].dtype == INFERD_TYPE_FP32 &&
         g->values[v].data;
}

/* After a rewrite, the consumer lists are stale: rebuild them. */
static void uses_refresh(ir_graph *g, ir_uses *uses) {
  ir_uses_free(uses);
  ir_graph_update_uses(g);
  ir_uses_build(g, uses);
}

/* The single consumer of `value`, or -1 when it has zero or several or is a
 * graph output (then its memory must stay visible). */
static int sole_consumer(const ir_graph *g, const ir_uses *uses, int value) {
  if (g->values[value].is_output || g->values[value].use_count != 1) return -1;
  if (uses->start[value + 1] - uses->start[value] != 1) return -1;
  return uses->node[uses->start[value]];
}

static float const_scalar(const ir_graph *g, int v, float fallback) {
  if (v < 0) return fallback;
  const ir_value *val = &g->values[v];
  if (val->kind != IR_VALUE_CONST || ir_shape_numel(&val->shape, 1) != 1) return NAN;
  if (val->dtype == INFERD_TYPE_FP32) {
    float f;
    memcpy(&f, val->data, sizeof(f));
    return f;
  }
  return NAN;
}

inferd_error *pass_fold_batchnorm(ir_graph *g, int *changes) {
  ir_uses uses;
  ir_uses_build(g, &uses);
  for (int i = 0; i < g->n_nodes; i++) {
    ir_node *conv = &g->nodes[i];
    if (conv->dead || conv->op != IR_OP_Conv || conv->n_post_ops) continue;
    int y = conv->outputs[0];
    int b = sole_consumer(g, &uses, y);
    if (b < 0 || g->nodes[b].op != IR_OP_BatchNormalization || g->nodes[b].n_outputs != 1) continue;
    ir_node *bn = &g->nodes[b];
    int w = conv->inputs[1], bias = ir_node_input(conv, 2);
    if (!is_fp32_const(g, w) || (bias >= 0 && !is_fp32_const(g, bias))) continue;
    bool params_const = true;
    for (int k = 1; k < 5; k++) params_const &= is_fp32_const(g, bn->inputs[k]);
    if (!params_const) continue;
    const ir_shape *ws = &g->values[w].shape;
    int64_t cout = ws->dims[0];
    for (int k = 1; k < 5; k++)
      if (ir_shape_numel(&g->values[bn->inputs[k]].shape, 1) != cout) params_const = false;
    if (!params_const) continue;

    double eps = ir_node_attr_float(bn, "epsilon", 1e-5f);
    int64_t per_out = ir_shape_numel(ws, 1) / cout;
    ir_shape bshape = {.rank = 1, .dims = {cout}};
    float *new_w, *new_b;
    int new_w_id, new_b_id;
    char name[256];
    snprintf(name, sizeof(name), "%s_bnfolded_w", conv->name);
    ERR_TRY(ir_graph_add_const_alloc(g, ir_graph_find_value(g, name) < 0 ? name : NULL, INFERD_TYPE_FP32, ws,
                                     (void **)&new_w, &new_w_id));
    snprintf(name, sizeof(name), "%s_bnfolded_b", g->nodes[i].name);
    ERR_TRY(ir_graph_add_const_alloc(g, ir_graph_find_value(g, name) < 0 ? name : NULL, INFERD_TYPE_FP32, &bshape,
                                     (void **)&new_b, &new_b_id));
    conv = &g->nodes[i];
    bn = &g->nodes[b];
    const float *old_w = g->values[w].data;
    const float *old_b = bias >= 0 ? g->values[bias].data : NULL;
    const float *scale = g->values[bn->inputs[1]].data, *shift = g->values[bn->inputs[2]].data;
    const float *mean = g->values[bn->inputs[3]].data, *var = g->values[bn->inputs[4]].data;
    for (int64_t co = 0; co < cout; co++) {
      double s = scale[co] / sqrt((double)var[co] + eps);
      for (int64_t j = 0; j < per_out; j++) new_w[co * per_out + j] = (float)(old_w[co * per_out + j] * s);
      new_b[co] = (float)(((old_b ? old_b[co] : 0.0) - mean[co]) * s + shift[co]);
    }
    int inputs[3] = {conv->inputs[0], new_w_id, new_b_id};
    ir_node_set_inputs(g, i, 3, inputs);
    g->nodes[i].outputs[0] = bn->outputs[0];
    g->values[bn->outputs[0]].producer = i;
    bn->dead = true;
    (*changes)++;
  }
  ir_uses_free(&uses);
  ir_graph_update_uses(g);
  return NULL;
}

/* Describes an activation node as a post-op; false when it is not one the
 * backends can fuse (e.g. Clip bounds that are not load-time constants). */
static bool activation_post_op(const ir_graph *g, const ir_node *n, ir_post_op *po) {
  *po = (ir_post_op){.kind = IR_POST_ELTWISE};
  switch (n->op) {
    case IR_OP_Relu:
      po->alg = IR_ELTWISE_RELU;
      return true;
    case IR_OP_LeakyRelu:
      po->alg = IR_ELTWISE_LEAKY_RELU;
      po->alpha = ir_node_attr_float(n, "alpha", 0.01f);
      return true;
    case IR_OP_Sigmoid:
      po->alg = IR_ELTWISE_SIGMOID;
      return true;
    case IR_OP_Tanh:
      po->alg = IR_ELTWISE_TANH;
      return true;
    case IR_OP_HardSwish:
      po->alg = IR_ELTWISE_HARD_SWISH;
      return true;
    case IR_OP_HardSigmoid:
      po->alg = IR_ELTWISE_HARD_SIGMOID;
      po->alpha = ir_node_attr_float(n, "alpha", 0.2f);
      po->beta = ir_node_attr_float(n, "beta", 0.5f);
      return true;
    case IR_OP_Clip: {
      float lo, hi;
      if (g->opset < 11) {
        lo = ir_node_attr_float(n, "min", -INFINITY);
        hi = ir_node_attr_float(n, "max", INFINITY);
      } else {
        lo = const_scalar(g, ir_node_input(n, 1), -INFINITY);
        hi = const_scalar(g, ir_node_input(n, 2), INFINITY);
      }
      if (isnan(lo) || isnan(hi)) return false;
      if (lo == 0.0f && isinf(hi) && hi > 0) {
        po->alg = IR_ELTWISE_RELU;
      } else {
        po->alg = IR_ELTWISE_CLIP;
        po->alpha = lo;
        po->beta = hi;
      }
      return true;
    }
    default:
      return false;
  }
}

static bool can_take_post_ops(ir_op op) { return op == IR_OP_Conv || op == IR_OP_Gemm || op == IR_OP_MatMul; }

/* Absorbs the activation that is the sole consumer of node `p`'s output, if
 * any. Returns true when it did. */
static bool absorb_activation(ir_graph *g, const ir_uses *uses, int p) {
  ir_node *prod = &g->nodes[p];
  if (prod->n_post_ops >= IR_MAX_POST_OPS || prod->n_outputs != 1) return false;
  int y = prod->outputs[0];
  if (g->values[y].dtype != INFERD_TYPE_FP32) return false;
  int a = sole_consumer(g, uses, y);
  if (a < 0) return false;
  ir_node *act = &g->nodes[a];
  ir_post_op po;
  if (act->dead || act->inputs[0] != y || !activation_post_op(g, act, &po)) return false;
  prod->post_ops[prod->n_post_ops++] = po;
  prod->outputs[0] = act->outputs[0];
  g->values[act->outputs[0]].producer = p;
  act->dead = true;
  return true;
}

inferd_error *pass_fuse_activation(ir_graph *g, int *changes) {
  ir_uses uses;
  ir_uses_build(g, &uses);
  for (int i = 0; i < g->n_nodes; i++) {
    if (g->nodes[i].dead || !can_take_post_ops(g->nodes[i].op)) continue;
    /* The fused node's output changes, so uses must be rebuilt before the
     * next look-up. Activation chains (Relu after Clip) fuse one per sweep. */
    if (absorb_activation(g, &uses, i)) {
      (*changes)++;
      uses_refresh(g, &uses);
    }
  }
  ir_uses_free(&uses);
  return NULL;
}

/*
 * Add(conv(x), r) becomes conv(x) with a sum post-op reading r: the backend
 * lets the convolution accumulate into r's memory. r must be computed before
 * the convolution runs, so of two convolutions the later one takes the sum.
 */
inferd_error *pass_fuse_residual(ir_graph *g, int *changes) {
  ir_uses uses;
  ir_uses_build(g, &uses);
  for (int i = 0; i < g->n_nodes; i++) {
    ir_node *add = &g->nodes[i];
    if (add->dead || add->op != IR_OP_Add) continue;
    int out = add->outputs[0];
    if (g->values[out].dtype != INFERD_TYPE_FP32) continue;
    int best = -1, other = -1;
    for (int k = 0; k < 2; k++) {
      int x = add->inputs[k], o = add->inputs[1 - k];
      if (x < 0 || o < 0 || x == o) continue;
      if (!ir_shape_equal(&g->values[x].shape, &g->values[out].shape) ||
          !ir_shape_equal(&g->values[o].shape, &g->values[out].shape))
        continue;
      int p = g->values[x].producer;
      if (p < 0 || g->nodes[p].op != IR_OP_Conv || g->nodes[p].sum_input >= 0 ||
          g->nodes[p].n_post_ops >= IR_MAX_POST_OPS - 1 || sole_consumer(g, &uses, x) != i)
        continue;
      if (g->values[o].kind == IR_VALUE_CONST) continue;
      int op = g->values[o].producer;
      if (op >= p) continue; /* r not ready when the convolution runs */
      if (p > best) {
        best = p;
        other = o;
      }
    }
    if (best < 0) continue;
    ir_node *conv = &g->nodes[best];
    int inputs[4] = {conv->inputs[0], conv->inputs[1], ir_node_input(conv, 2), other};
    ir_node_set_inputs(g, best, 4, inputs);
    conv = &g->nodes[best];
    conv->sum_input = 3;
    conv->post_ops[conv->n_post_ops++] = (ir_post_op){.kind = IR_POST_SUM};
    conv->outputs[0] = out;
    g->values[out].producer = best;
    g->nodes[i].dead = true;
    (*changes)++;
    uses_refresh(g, &uses);
    if (absorb_activation(g, &uses, best)) {
      uses_refresh(g, &uses);
    }
  }
  ir_uses_free(&uses);
  return NULL;
}

/* MatMul(A, B) + C with A a matrix, B and C constants becomes Gemm(A, B, C),
 * which backends run as one inner product with bias. A Gemm without C absorbs
 * a following constant Add the same way. */
inferd_error *pass_fuse_gemm_bias(ir_graph *g, int *changes) {
  ir_uses uses;
  ir_uses_build(g, &uses);
  for (int i = 0; i < g->n_nodes; i++) {
    ir_node *mm = &g->nodes[i];
    if (mm->dead || mm->n_post_ops) continue;
    bool is_matmul = mm->op == IR_OP_MatMul, is_gemm = mm->op == IR_OP_Gemm && mm->n_inputs == 2;
    if (!is_matmul && !is_gemm) continue;
    int a = mm->inputs[0], b = mm->inputs[1], y = mm->outputs[0];
    if (g->values[y].dtype != INFERD_TYPE_FP32 || g->values[a].shape.rank != 2 || !is_fp32_const(g, b) ||
        g->values[b].shape.rank != 2)
      continue;
    if (is_gemm && (ir_node_attr_float(mm, "alpha", 1.0f) != 1.0f || ir_node_attr_float(mm, "beta", 1.0f) != 1.0f))
      continue;
    int s = sole_consumer(g, &uses, y);
    if (s < 0 || g->nodes[s].op != IR_OP_Add) continue;
    ir_node *add = &g->nodes[s];
    int c = add->inputs[0] == y ? add->inputs[1] : add->inputs[0];
    int64_t n = g->values[y].shape.dims[1];
    const ir_shape *cs = &g->values[c].shape;
    bool bias_shape = (cs->rank == 1 && cs->dims[0] == n) || (cs->rank == 2 && cs->dims[0] == 1 && cs->dims[1] == n);
    if (!is_fp32_const(g, c) || !bias_shape || !ir_shape_equal(&g->values[add->outputs[0]].shape, &g->values[y].shape))
      continue;
    int inputs[3] = {a, b, c};
    ir_node_set_inputs(g, i, 3, inputs);
    mm = &g->nodes[i];
    mm->op = IR_OP_Gemm;
    mm->outputs[0] = add->outputs[0];
    g->values[add->outputs[0]].producer = i;
    add->dead = true;
    (*changes)++;
    uses_refresh(g, &uses);
  }
  ir_uses_free(&uses);
  return NULL;
}
