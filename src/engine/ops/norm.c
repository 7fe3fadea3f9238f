/*
 * Normalizations and reductions: BatchNormalization (inference form),
 * Softmax (both the pre-13 "flatten to 2-D at axis" semantics and the
 * single-axis one), ReduceMean (axes as attribute before opset 18, as input
 * after). FP32.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "engine/ops/op_util.h"
#include "engine/ops/sym.h"

static const inferd_datatype fp32_only[] = {INFERD_TYPE_FP32};

inferd_error *op_infer_BatchNormalization(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  for (int k = 1; k < n->n_outputs; k++)
    if (ops_has_output(n, k))
      return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED,
                           "training-mode outputs (running mean and variance) are not supported");
  if (ir_node_attr_int(n, "training_mode", 0) != 0)
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "training_mode=1 is not supported; only inference");
  if (g->opset < 9 && ir_node_attr_int(n, "spatial", 1) != 1)
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "spatial=0 (per-activation statistics) is not supported");
  const ir_value *x = ops_input(g, n, 0);
  char buf[160];
  for (int i = 0; i < 5; i++) {
    if (!ops_input(g, n, i)) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "input %d is required", i);
    ERR_TRY(ops_check_dtype(g, n, i, fp32_only, 1));
  }
  if (x->shape.rank < 2)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "input %s needs a channel dimension",
                         ir_shape_str(&x->shape, buf, sizeof(buf)));
  ir_dim channels = x->shape.dims[1];
  if (channels < 0)
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "the channel dimension must not depend on the batch size");
  for (int i = 1; i < 5; i++) {
    const ir_value *p = ops_input(g, n, i);
    if (p->shape.rank != 1 || p->shape.dims[0] != channels)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "input '%s' %s must be [%" PRId64 "]", p->name,
                           ir_shape_str(&p->shape, buf, sizeof(buf)), channels);
  }
  ops_set_output(g, n, 0, x->dtype, &x->shape);
  return NULL;
}

inferd_error *op_ref_BatchNormalization(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g;
  const ir_tensor *x = &in[0];
  const float *scale = in[1].data, *bias = in[2].data, *mean = in[3].data, *var = in[4].data;
  double eps = ir_node_attr_float(n, "epsilon", 1e-5f);
  int64_t batch = x->dims[0], channels = x->dims[1], plane = 1;
  for (int d = 2; d < x->rank; d++) plane *= x->dims[d];
  const float *xd = x->data;
  float *yd = out[0].data;
  for (int64_t c = 0; c < channels; c++) {
    /* y = (x - mean) / sqrt(var + eps) * scale + bias as one multiply-add. */
    double a = scale[c] / sqrt((double)var[c] + eps);
    float fa = (float)a, fb = (float)(bias[c] - mean[c] * a);
    for (int64_t b = 0; b < batch; b++) {
      const float *xp = xd + (b * channels + c) * plane;
      float *yp = yd + (b * channels + c) * plane;
      for (int64_t i = 0; i < plane; i++) yp[i] = xp[i] * fa + fb;
    }
  }
  return NULL;
}

/* Softmax's axis: before opset 13 the input is seen as 2-D [prod(dims[:axis]),
 * prod(dims[axis:])] with axis defaulting to 1; from 13 on it is one axis,
 * default -1. */
static int64_t softmax_axis_attr(const ir_graph *g, const ir_node *n) {
  return ir_node_attr_int(n, "axis", g->opset < 13 ? 1 : -1);
}

inferd_error *op_infer_Softmax(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  const ir_value *x = ops_input(g, n, 0);
  ERR_TRY(ops_check_dtype(g, n, 0, fp32_only, 1));
  int axis;
  ERR_TRY(ops_axis(g, n, softmax_axis_attr(g, n), x->shape.rank, false, "axis", &axis));
  if (x->shape.rank == 0)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "input must have at least one dimension");
  ops_set_output(g, n, 0, x->dtype, &x->shape);
  return NULL;
}

inferd_error *op_ref_Softmax(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  const ir_tensor *x = &in[0];
  int64_t a = softmax_axis_attr(g, n);
  int axis = (int)(a < 0 ? a + x->rank : a);
  int64_t outer = 1, len = 1, inner = 1;
  for (int d = 0; d < axis; d++) outer *= x->dims[d];
  if (g->opset < 13) {
    for (int d = axis; d < x->rank; d++) len *= x->dims[d];
  } else {
    len = x->dims[axis];
    for (int d = axis + 1; d < x->rank; d++) inner *= x->dims[d];
  }
  const float *xd = x->data;
  float *yd = out[0].data;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      const float *xp = xd + o * len * inner + i;
      float *yp = yd + o * len * inner + i;
      float max = -INFINITY;
      for (int64_t k = 0; k < len; k++)
        if (xp[k * inner] > max) max = xp[k * inner];
      double sum = 0;
      for (int64_t k = 0; k < len; k++) {
        float e = expf(xp[k * inner] - max);
        yp[k * inner] = e;
        sum += e;
      }
      float inv = (float)(1.0 / sum);
      for (int64_t k = 0; k < len; k++) yp[k * inner] *= inv;
    }
  return NULL;
}

inferd_error *ops_reduce_mask(const ir_graph *g, const ir_node *n, int rank, bool *mask, bool *noop) {
  int64_t axes[IR_MAX_RANK + 1];
  int count = 0;
  *noop = false;
  if (g->opset < 18) {
    int len;
    const int64_t *a = ir_node_attr_ints(n, "axes", &len);
    if (a) {
      if (len > rank) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "%d axes for a rank-%d input", len, rank);
      memcpy(axes, a, (size_t)len * sizeof(int64_t));
      count = len;
    }
  } else if (ir_node_input(n, 1) >= 0) {
    ERR_TRY(ops_require_ints(g, n, 1, "axes", axes, IR_MAX_RANK + 1, &count));
    if (count > rank) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "%d axes for a rank-%d input", count, rank);
  }
  for (int d = 0; d < rank; d++) mask[d] = count == 0;
  if (count == 0 && g->opset >= 18 && ir_node_attr_int(n, "noop_with_empty_axes", 0)) {
    *noop = true;
    for (int d = 0; d < rank; d++) mask[d] = false;
  }
  for (int i = 0; i < count; i++) {
    int axis;
    ERR_TRY(ops_axis(g, n, axes[i], rank, false, "axis", &axis));
    if (mask[axis]) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "axis %" PRId64 " appears twice", axes[i]);
    mask[axis] = true;
  }
  return NULL;
}

inferd_error *op_infer_ReduceMean(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  const ir_value *x = ops_input(g, n, 0);
  ERR_TRY(ops_check_dtype(g, n, 0, fp32_only, 1));
  bool mask[IR_MAX_RANK], noop;
  ERR_TRY(ops_reduce_mask(g, n, x->shape.rank, mask, &noop));
  bool keepdims = ir_node_attr_int(n, "keepdims", 1) != 0;
  ir_shape out = {.rank = 0};
  for (int d = 0; d < x->shape.rank; d++) {
    if (!mask[d])
      out.dims[out.rank++] = x->shape.dims[d];
    else if (keepdims)
      out.dims[out.rank++] = 1;
  }
  ops_set_output(g, n, 0, x->dtype, &out);
  return NULL;
}

inferd_error *op_ref_ReduceMean(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  const ir_tensor *x = &in[0];
  bool mask[IR_MAX_RANK], noop;
  ERR_TRY(ops_reduce_mask(g, n, x->rank, mask, &noop));
  int64_t strides[IR_MAX_RANK];
  ops_strides(x->rank, x->dims, strides);
  /* Split dims into kept (walked for each output element, in order) and
   * reduced (walked inside); the output is dense over the kept ones. */
  int kept[IR_MAX_RANK], red[IR_MAX_RANK], nk = 0, nr = 0;
  int64_t count = 1, total = 1;
  for (int d = 0; d < x->rank; d++) {
    if (mask[d]) {
      red[nr++] = d;
      count *= x->dims[d];
    } else {
      kept[nk++] = d;
      total *= x->dims[d];
    }
  }
  const float *xd = x->data;
  float *yd = out[0].data;
  int64_t ki[IR_MAX_RANK] = {0};
  for (int64_t o = 0; o < total; o++) {
    int64_t base = 0;
    for (int k = 0; k < nk; k++) base += ki[k] * strides[kept[k]];
    double sum = 0;
    int64_t ri[IR_MAX_RANK] = {0};
    for (int64_t r = 0; r < count; r++) {
      int64_t off = base;
      for (int k = 0; k < nr; k++) off += ri[k] * strides[red[k]];
      sum += xd[off];
      for (int k = nr - 1; k >= 0 && ++ri[k] == x->dims[red[k]]; k--) ri[k] = 0;
    }
    yd[o] = count ? (float)(sum / (double)count) : NAN;
    for (int k = nk - 1; k >= 0 && ++ki[k] == x->dims[kept[k]]; k--) ki[k] = 0;
  }
  return NULL;
}
