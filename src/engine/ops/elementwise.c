/*
 * Unary activations: Relu, LeakyRelu, Clip, Sigmoid, HardSigmoid, HardSwish,
 * Tanh. FP32, and Clip on every numeric type (its bounds are inputs from
 * opset 11 on, attributes before).
 *
 * ops_eltwise_f32 is the same math by ir_eltwise_alg, which is how the
 * reference backend applies activations the optimizer fused into a node.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "engine/ops/op_util.h"

static const inferd_datatype fp32_only[] = {INFERD_TYPE_FP32};

static inferd_error *infer_unary_fp32(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  const ir_value *x = ops_input(g, n, 0);
  ERR_TRY(ops_check_dtype(g, n, 0, fp32_only, 1));
  ops_set_output(g, n, 0, x->dtype, &x->shape);
  return NULL;
}

inferd_error *op_infer_Relu(ir_graph *g, int node) { return infer_unary_fp32(g, node); }
inferd_error *op_infer_LeakyRelu(ir_graph *g, int node) { return infer_unary_fp32(g, node); }
inferd_error *op_infer_Sigmoid(ir_graph *g, int node) { return infer_unary_fp32(g, node); }
inferd_error *op_infer_HardSigmoid(ir_graph *g, int node) { return infer_unary_fp32(g, node); }
inferd_error *op_infer_HardSwish(ir_graph *g, int node) { return infer_unary_fp32(g, node); }
inferd_error *op_infer_Tanh(ir_graph *g, int node) { return infer_unary_fp32(g, node); }

static float hard_sigmoid(float x, float alpha, float beta) {
  float v = alpha * x + beta;
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

void ops_eltwise_f32(ir_eltwise_alg alg, float alpha, float beta, const float *x, float *y, int64_t count) {
  switch (alg) {
  case IR_ELTWISE_RELU:
    for (int64_t i = 0; i < count; i++) y[i] = x[i] > 0 ? x[i] : (x[i] != x[i] ? x[i] : 0.0f);
    break;
  case IR_ELTWISE_LEAKY_RELU:
    for (int64_t i = 0; i < count; i++) y[i] = x[i] >= 0 ? x[i] : alpha * x[i];
    break;
  case IR_ELTWISE_CLIP:
    /* numpy.clip order: the max bound wins when min > max. */
    for (int64_t i = 0; i < count; i++) {
      float v = x[i] < alpha ? alpha : x[i];
      y[i] = v > beta ? beta : v;
    }
    break;
  case IR_ELTWISE_SIGMOID:
    for (int64_t i = 0; i < count; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
    break;
  case IR_ELTWISE_HARD_SIGMOID:
    for (int64_t i = 0; i < count; i++) y[i] = hard_sigmoid(x[i], alpha, beta);
    break;
  case IR_ELTWISE_HARD_SWISH:
    for (int64_t i = 0; i < count; i++) y[i] = x[i] * hard_sigmoid(x[i], 1.0f / 6.0f, 0.5f);
    break;
  case IR_ELTWISE_TANH:
    for (int64_t i = 0; i < count; i++) y[i] = tanhf(x[i]);
    break;
  }
}

static inferd_error *ref_unary(const ir_tensor *in, ir_tensor *out, ir_eltwise_alg alg, float alpha, float beta) {
  ops_eltwise_f32(alg, alpha, beta, in[0].data, out[0].data, ir_tensor_numel(&in[0]));
  return NULL;
}

inferd_error *op_ref_Relu(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g, (void)n;
  return ref_unary(in, out, IR_ELTWISE_RELU, 0, 0);
}

inferd_error *op_ref_LeakyRelu(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g;
  return ref_unary(in, out, IR_ELTWISE_LEAKY_RELU, ir_node_attr_float(n, "alpha", 0.01f), 0);
}

inferd_error *op_ref_Sigmoid(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g, (void)n;
  return ref_unary(in, out, IR_ELTWISE_SIGMOID, 0, 0);
}

inferd_error *op_ref_HardSigmoid(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g;
  return ref_unary(in, out, IR_ELTWISE_HARD_SIGMOID, ir_node_attr_float(n, "alpha", 0.2f),
                   ir_node_attr_float(n, "beta", 0.5f));
}

inferd_error *op_ref_HardSwish(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g, (void)n;
  return ref_unary(in, out, IR_ELTWISE_HARD_SWISH, 0, 0);
}

inferd_error *op_ref_Tanh(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g, (void)n;
  return ref_unary(in, out, IR_ELTWISE_TANH, 0, 0);
}

/* Clip runs every numeric type; its bounds must be single values. */
static const inferd_datatype clip_types[] = {
    INFERD_TYPE_FP32,   INFERD_TYPE_FP64,  INFERD_TYPE_INT8,   INFERD_TYPE_UINT8, INFERD_TYPE_INT16,
    INFERD_TYPE_UINT16, INFERD_TYPE_INT32, INFERD_TYPE_UINT32, INFERD_TYPE_INT64, INFERD_TYPE_UINT64,
};

inferd_error *op_infer_Clip(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  const ir_value *x = ops_input(g, n, 0);
  ERR_TRY(ops_check_dtype(g, n, 0, clip_types, (int)(sizeof(clip_types) / sizeof(clip_types[0]))));
  if (g->opset < 11) {
    if (n->n_inputs > 1)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "before opset 11 min and max are attributes, not inputs");
    if (x->dtype != INFERD_TYPE_FP32)
      return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "before opset 11 Clip takes floating-point input");
  }
  for (int i = 1; i < 3; i++) {
    const ir_value *bound = ops_input(g, n, i);
    if (!bound) continue;
    ERR_TRY(ops_check_same_dtype(g, n, 0, i));
    if (!ir_shape_is_static(&bound->shape) || ir_shape_numel(&bound->shape, 1) != 1)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "%s ('%s') must be a single value", i == 1 ? "min" : "max",
                           bound->name);
  }
  ops_set_output(g, n, 0, x->dtype, &x->shape);
  return NULL;
}

inferd_error *op_ref_Clip(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  const ir_tensor *x = &in[0];
  int64_t count = ir_tensor_numel(x);
  const void *lo_data = ops_in_data(n, in, 1), *hi_data = ops_in_data(n, in, 2);
  if (x->dtype == INFERD_TYPE_FP32) {
    float lo = -INFINITY, hi = INFINITY;
    if (g->opset < 11) {
      lo = ir_node_attr_float(n, "min", -FLT_MAX);
      hi = ir_node_attr_float(n, "max", FLT_MAX);
    } else {
      if (lo_data) lo = *(const float *)lo_data;
      if (hi_data) hi = *(const float *)hi_data;
    }
    ops_eltwise_f32(IR_ELTWISE_CLIP, lo, hi, x->data, out[0].data, count);
    return NULL;
  }
  if (x->dtype == INFERD_TYPE_FP64) {
    double lo = lo_data ? *(const double *)lo_data : -INFINITY;
    double hi = hi_data ? *(const double *)hi_data : INFINITY;
    const double *xd = x->data;
    double *yd = out[0].data;
    for (int64_t i = 0; i < count; i++) {
      double v = xd[i] < lo ? lo : xd[i];
      yd[i] = v > hi ? hi : v;
    }
    return NULL;
  }
  /* Integers: compare as int64, or as uint64 for the unsigned types. */
  size_t esize = ir_dtype_size(x->dtype);
  bool is_unsigned = x->dtype == INFERD_TYPE_UINT8 || x->dtype == INFERD_TYPE_UINT16 ||
                     x->dtype == INFERD_TYPE_UINT32 || x->dtype == INFERD_TYPE_UINT64;
  for (int64_t i = 0; i < count; i++) {
    const void *pick = (const char *)x->data + (size_t)i * esize;
    int64_t v = ops_load_i64(x->data, x->dtype, i);
    for (int b = 1; b <= 2; b++) {
      const void *bound_data = b == 1 ? lo_data : hi_data;
      if (!bound_data) continue;
      int64_t bound = ops_load_i64(bound_data, x->dtype, 0);
      bool below = is_unsigned ? (uint64_t)v < (uint64_t)bound : v < bound;
      bool above = is_unsigned ? (uint64_t)v > (uint64_t)bound : v > bound;
      if (b == 1 ? below : above) {
        pick = bound_data;
        v = bound;
      }
    }
    memcpy((char *)out[0].data + (size_t)i * esize, pick, esize);
  }
  return NULL;
}

inferd_error *ops_apply_post_ops(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *y) {
  for (int i = 0; i < n->n_post_ops; i++) {
    const ir_post_op *po = &n->post_ops[i];
    if (po->kind == IR_POST_ELTWISE) {
      ops_eltwise_f32(po->alg, po->alpha, po->beta, y->data, y->data, ir_tensor_numel(y));
    } else {
      /* y += operand, element by element in place (same shape, or
       * broadcast to it), through the Add kernel. */
      ir_tensor args[2] = {*y, in[n->sum_input]};
      ERR_TRY(op_ref_Add(g, n, args, y));
    }
  }
  return NULL;
}
