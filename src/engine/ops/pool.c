/*
 * Pooling: MaxPool and AveragePool over sliding windows (one to three
 * spatial dims, with pads, strides, dilations, ceil_mode and SAME/VALID
 * auto_pad), and the global forms that reduce each channel plane to one
 * value.
 *
 * MaxPool runs FP32 and the 8-bit integer types (opset 12); the others FP32.
 * MaxPool's optional Indices output is not supported: no model we serve uses
 * it and no backend library computes it in ONNX's layout.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "engine/ops/op_util.h"

enum { POOL_MAX_SPATIAL = 3 };

/* Checks the input of a pool and returns its spatial dims count. */
static inferd_error *pool_check_input(const ir_graph *g, const ir_node *n, int *nspatial) {
  const ir_value *x = ops_input(g, n, 0);
  char buf[160];
  int rank = x->shape.rank;
  if (rank < 3 || rank > 2 + POOL_MAX_SPATIAL)
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "input %s must have 1 to %d spatial dimensions",
                         ir_shape_str(&x->shape, buf, sizeof(buf)), POOL_MAX_SPATIAL);
  for (int d = 1; d < rank; d++)
    if (x->shape.dims[d] < 0)
      return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED,
                           "input %s: only the first dimension may depend on the batch size",
                           ir_shape_str(&x->shape, buf, sizeof(buf)));
  *nspatial = rank - 2;
  return NULL;
}

/* The window of a MaxPool or AveragePool node for input spatial extents `in`. */
static inferd_error *pool_window(const ir_graph *g, const ir_node *n, int nspatial, const int64_t *in, ops_window *w) {
  int64_t kernel[IR_MAX_RANK];
  if (!ir_node_attr(n, "kernel_shape"))
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "attribute kernel_shape is required");
  ERR_TRY(ops_attr_ints(g, n, "kernel_shape", nspatial, 0, kernel));
  int64_t ceil_mode = ir_node_attr_int(n, "ceil_mode", 0);
  if (ceil_mode != 0 && ceil_mode != 1)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "ceil_mode %" PRId64 " must be 0 or 1", ceil_mode);
  return ops_window_init(g, n, nspatial, in, kernel, ceil_mode == 1, w);
}

static inferd_error *infer_window_pool(ir_graph *g, int node, const inferd_datatype *types, int n_types) {
  ir_node *n = &g->nodes[node];
  const ir_value *x = ops_input(g, n, 0);
  ERR_TRY(ops_check_dtype(g, n, 0, types, n_types));
  int nspatial = 0;
  ERR_TRY(pool_check_input(g, n, &nspatial));
  ops_window w;
  ERR_TRY(pool_window(g, n, nspatial, &x->shape.dims[2], &w));
  ir_shape out = x->shape;
  for (int i = 0; i < nspatial; i++) out.dims[2 + i] = w.out[i];
  ops_set_output(g, n, 0, x->dtype, &out);
  return NULL;
}

inferd_error *op_infer_MaxPool(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  if (ops_has_output(n, 1))
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "the Indices output ('%s') is not supported",
                         g->values[n->outputs[1]].name);
  int64_t storage_order = ir_node_attr_int(n, "storage_order", 0);
  /* storage_order only changes Indices, which is never produced. */
  if (storage_order != 0 && storage_order != 1)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "storage_order %" PRId64 " must be 0 or 1", storage_order);
  static const inferd_datatype types[] = {INFERD_TYPE_FP32, INFERD_TYPE_UINT8, INFERD_TYPE_INT8};
  return infer_window_pool(g, node, types, 3);
}

inferd_error *op_infer_AveragePool(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  int64_t count_include_pad = ir_node_attr_int(n, "count_include_pad", 0);
  if (count_include_pad != 0 && count_include_pad != 1)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "count_include_pad %" PRId64 " must be 0 or 1",
                         count_include_pad);
  static const inferd_datatype types[] = {INFERD_TYPE_FP32};
  return infer_window_pool(g, node, types, 1);
}

static inferd_error *infer_global_pool(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  const ir_value *x = ops_input(g, n, 0);
  static const inferd_datatype fp32[] = {INFERD_TYPE_FP32};
  ERR_TRY(ops_check_dtype(g, n, 0, fp32, 1));
  char buf[160];
  if (x->shape.rank < 3)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "input %s needs at least one spatial dimension",
                         ir_shape_str(&x->shape, buf, sizeof(buf)));
  for (int d = 1; d < x->shape.rank; d++)
    if (x->shape.dims[d] < 0)
      return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED,
                           "input %s: only the first dimension may depend on the batch size",
                           ir_shape_str(&x->shape, buf, sizeof(buf)));
  ir_shape out = x->shape;
  for (int d = 2; d < out.rank; d++) out.dims[d] = 1;
  ops_set_output(g, n, 0, x->dtype, &out);
  return NULL;
}

inferd_error *op_infer_GlobalAveragePool(ir_graph *g, int node) { return infer_global_pool(g, node); }
inferd_error *op_infer_GlobalMaxPool(ir_graph *g, int node) { return infer_global_pool(g, node); }

/* One max-pool kernel per element type; the window walk is the same. */
#define MAXPOOL_KERNEL(NAME, T, LOWEST, IS_NAN)                                                                        \
  static void NAME(const ops_window3 *c, int64_t planes, const T *x, T *y) {                                           \
    int64_t in_plane = c->in[0] * c->in[1] * c->in[2];                                                                 \
    int64_t out_plane = c->out[0] * c->out[1] * c->out[2];                                                             \
    for (int64_t p = 0; p < planes; p++) {                                                                             \
      const T *xp = x + p * in_plane;                                                                                  \
      T *yp = y + p * out_plane;                                                                                       \
      for (int64_t od = 0; od < c->out[0]; od++)                                                                       \
        for (int64_t oh = 0; oh < c->out[1]; oh++)                                                                     \
          for (int64_t ow = 0; ow < c->out[2]; ow++) {                                                                 \
            T best = LOWEST;                                                                                           \
            for (int64_t kd = 0; kd < c->k[0]; kd++) {                                                                 \
              int64_t id = od * c->s[0] + kd * c->d[0] - c->p[0];                                                      \
              if (id < 0 || id >= c->in[0]) continue;                                                                  \
              for (int64_t kh = 0; kh < c->k[1]; kh++) {                                                               \
                int64_t ih = oh * c->s[1] + kh * c->d[1] - c->p[1];                                                    \
                if (ih < 0 || ih >= c->in[1]) continue;                                                                \
                for (int64_t kw = 0; kw < c->k[2]; kw++) {                                                             \
                  int64_t iw = ow * c->s[2] + kw * c->d[2] - c->p[2];                                                  \
                  if (iw < 0 || iw >= c->in[2]) continue;                                                              \
                  T v = xp[(id * c->in[1] + ih) * c->in[2] + iw];                                                      \
                  /* NaN wins, as in every framework's max pooling. */                                                 \
                  if (v > best || IS_NAN(v)) best = v;                                                                 \
                  if (IS_NAN(best)) goto done_##NAME;                                                                  \
                }                                                                                                      \
              }                                                                                                        \
            }                                                                                                          \
            done_##NAME : yp[(od * c->out[1] + oh) * c->out[2] + ow] = best;                                           \
          }                                                                                                            \
    }                                                                                                                  \
  }

#define NEVER_NAN(v) ((void)(v), 0)
MAXPOOL_KERNEL(maxpool_f32, float, -INFINITY, isnan)
MAXPOOL_KERNEL(maxpool_u8, uint8_t, 0, NEVER_NAN)
MAXPOOL_KERNEL(maxpool_i8, int8_t, INT8_MIN, NEVER_NAN)

inferd_error *op_ref_MaxPool(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  const ir_tensor *x = &in[0];
  int nspatial = x->rank - 2;
  ops_window w;
  ERR_TRY(pool_window(g, n, nspatial, &x->dims[2], &w));
  ops_window3 c;
  ops_window_pad3(&w, &c);
  int64_t planes = x->dims[0] * x->dims[1];
  switch (x->dtype) {
  case INFERD_TYPE_FP32: maxpool_f32(&c, planes, x->data, out[0].data); break;
  case INFERD_TYPE_UINT8: maxpool_u8(&c, planes, x->data, out[0].data); break;
  case INFERD_TYPE_INT8: maxpool_i8(&c, planes, x->data, out[0].data); break;
  default:
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "no reference kernel for %s", inferd_datatype_name(x->dtype));
  }
  return NULL;
}

inferd_error *op_ref_AveragePool(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  const ir_tensor *x = &in[0];
  int nspatial = x->rank - 2;
  ops_window w;
  ERR_TRY(pool_window(g, n, nspatial, &x->dims[2], &w));
  ops_window3 c;
  ops_window_pad3(&w, &c);
  bool include_pad = ir_node_attr_int(n, "count_include_pad", 0) == 1;
  int64_t planes = x->dims[0] * x->dims[1];
  int64_t in_plane = c.in[0] * c.in[1] * c.in[2], out_plane = c.out[0] * c.out[1] * c.out[2];
  const float *xd = x->data;
  float *yd = out[0].data;
  for (int64_t p = 0; p < planes; p++) {
    const float *xp = xd + p * in_plane;
    float *yp = yd + p * out_plane;
    for (int64_t od = 0; od < c.out[0]; od++)
      for (int64_t oh = 0; oh < c.out[1]; oh++)
        for (int64_t ow = 0; ow < c.out[2]; ow++) {
          int64_t o[3] = {od, oh, ow};
          /* Taps per dim inside the input, and inside input plus padding;
           * taps past the end padding (ceil_mode) never count. */
          int64_t inside[3], padded[3];
          for (int i = 0; i < 3; i++) {
            inside[i] = padded[i] = 0;
            for (int64_t k = 0; k < c.k[i]; k++) {
              int64_t pos = o[i] * c.s[i] + k * c.d[i] - c.p[i];
              inside[i] += pos >= 0 && pos < c.in[i];
              padded[i] += pos >= -c.p[i] && pos < c.in[i] + c.p_end[i];
            }
          }
          double sum = 0;
          for (int64_t kd = 0; kd < c.k[0]; kd++) {
            int64_t id = od * c.s[0] + kd * c.d[0] - c.p[0];
            if (id < 0 || id >= c.in[0]) continue;
            for (int64_t kh = 0; kh < c.k[1]; kh++) {
              int64_t ih = oh * c.s[1] + kh * c.d[1] - c.p[1];
              if (ih < 0 || ih >= c.in[1]) continue;
              for (int64_t kw = 0; kw < c.k[2]; kw++) {
                int64_t iw = ow * c.s[2] + kw * c.d[2] - c.p[2];
                if (iw >= 0 && iw < c.in[2]) sum += xp[(id * c.in[1] + ih) * c.in[2] + iw];
              }
            }
          }
          int64_t count = include_pad ? padded[0] * padded[1] * padded[2] : inside[0] * inside[1] * inside[2];
          yp[(od * c.out[1] + oh) * c.out[2] + ow] = count ? (float)(sum / (double)count) : 0.0f;
        }
  }
  return NULL;
}

static void global_pool(const ir_tensor *x, float *y, bool is_max) {
  int64_t planes = x->dims[0] * x->dims[1], plane = 1;
  for (int d = 2; d < x->rank; d++) plane *= x->dims[d];
  const float *xd = x->data;
  for (int64_t p = 0; p < planes; p++) {
    const float *xp = xd + p * plane;
    if (is_max) {
      float best = -INFINITY;
      for (int64_t i = 0; i < plane; i++)
        if (xp[i] > best || xp[i] != xp[i]) best = xp[i];
      y[p] = best;
    } else {
      double sum = 0;
      for (int64_t i = 0; i < plane; i++) sum += xp[i];
      y[p] = plane ? (float)(sum / (double)plane) : 0.0f;
    }
  }
}

inferd_error *op_ref_GlobalAveragePool(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g;
  (void)n;
  global_pool(&in[0], out[0].data, false);
  return NULL;
}

inferd_error *op_ref_GlobalMaxPool(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g;
  (void)n;
  global_pool(&in[0], out[0].data, true);
  return NULL;
}
