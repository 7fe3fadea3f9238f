/*
 * Ops that change only how a tensor's elements are viewed, not their order:
 * Flatten, Reshape, Squeeze, Unsqueeze, Identity, Dropout (inference); plus
 * Shape, which turns a shape into data, and Constant, which the importer
 * folds away. Their kernels are a copy, and they pass symbolic contents
 * (sym.h) through, which is how Shape -> ... -> Reshape chains fold.
 *
 * Reshape, Squeeze and Unsqueeze take their axes or target from an input
 * (from opset 13, resp. 5); those values must be known at load time.
 */
#include <inttypes.h>
#include <string.h>

#include "engine/ops/op_util.h"
#include "engine/ops/sym.h"

static inferd_error *ref_copy(const ir_tensor *in, ir_tensor *out) {
  size_t bytes = (size_t)ir_tensor_numel(&in[0]) * ir_dtype_size(in[0].dtype);
  if (out[0].data != in[0].data && bytes) memmove(out[0].data, in[0].data, bytes);
  return NULL;
}

/* Sets the output to `shape` with the input's type and contents. */
static void set_view_output(ir_graph *g, const ir_node *n, const ir_shape *shape) {
  const ir_value *x = ops_input(g, n, 0);
  ops_set_output(g, n, 0, x->dtype, shape);
  ops_forward_sym(g, n->inputs[0], n->outputs[0]);
}

/* ---- Flatten ---- */

inferd_error *op_infer_Flatten(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  ERR_TRY(ops_check_fixed_size(g, n, 0));
  const ir_value *x = ops_input(g, n, 0);
  int axis;
  ERR_TRY(ops_axis(g, n, ir_node_attr_int(n, "axis", 1), x->shape.rank, true, "axis", &axis));
  ir_shape out = {.rank = 2};
  if (!ops_dims_product(&x->shape, 0, axis, &out.dims[0]) ||
      !ops_dims_product(&x->shape, axis, x->shape.rank, &out.dims[1])) {
    char buf[160];
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "cannot flatten %s at axis %d",
                         ir_shape_str(&x->shape, buf, sizeof(buf)), axis);
  }
  set_view_output(g, n, &out);
  return NULL;
}

inferd_error *op_ref_Flatten(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g, (void)n;
  return ref_copy(in, out);
}

/* ---- Reshape ---- */

inferd_error *op_infer_Reshape(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  ERR_TRY(ops_check_fixed_size(g, n, 0));
  const ir_value *x = ops_input(g, n, 0);
  char sx[160], st[160];
  ir_symint target[IR_SYM_MAX];
  int count = 0;
  if (ir_node_input(n, 1) < 0) {
    /* Reshape-1 took the target as an attribute; later ones an input. */
    if (g->opset >= 5) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "input shape is required");
    int len;
    const int64_t *attr = ir_node_attr_ints(n, "shape", &len);
    if (!attr || len > IR_MAX_RANK)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "needs a target shape of at most %d dims", IR_MAX_RANK);
    for (int i = 0; i < len; i++) target[i] = (ir_symint){.value = attr[i]};
    count = len;
  } else {
    const ir_value *s = ops_input(g, n, 1);
    if (s->dtype != INFERD_TYPE_INT64)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "shape ('%s') must be INT64, not %s", s->name,
                           inferd_datatype_name(s->dtype));
    if (!ops_known_ints(g, n->inputs[1], target, IR_SYM_MAX, &count))
      return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "shape ('%s') must be known when the model is loaded",
                           s->name);
    if (count > IR_MAX_RANK)
      return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "target rank %d exceeds %d", count, IR_MAX_RANK);
  }
  bool allowzero = ir_node_attr_int(n, "allowzero", 0) != 0;
  ir_shape out = {.rank = count};
  int infer_at = -1;
  bool has_zero = false;
  for (int i = 0; i < count; i++) {
    ir_symint t = target[i];
    if (t.coef) {
      /* An element computed from the batch size: it must be a multiple of
       * N, which becomes a batch-dependent dim. */
      if (t.value != 0 || t.coef < 0)
        return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED,
                             "target dim %d is %" PRId64 "%+" PRId64 "*N, which inferd cannot represent", i, t.value,
                             t.coef);
      out.dims[i] = -t.coef;
    } else if (t.value == -1) {
      if (infer_at >= 0) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "target shape has more than one -1");
      infer_at = i;
      out.dims[i] = 1;
    } else if (t.value == 0 && !allowzero) {
      if (i >= x->shape.rank)
        return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG,
                             "target dim %d is 0 (copy the input's) but the input %s has rank %d", i,
                             ir_shape_str(&x->shape, sx, sizeof(sx)), x->shape.rank);
      out.dims[i] = x->shape.dims[i];
    } else if (t.value < 0) {
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "target dim %d is %" PRId64, i, t.value);
    } else {
      has_zero |= t.value == 0;
      out.dims[i] = t.value;
    }
  }
  if (allowzero && has_zero && infer_at >= 0)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "with allowzero=1 the target cannot hold both 0 and -1");
  ir_dim have, want;
  if (!ops_dims_product(&x->shape, 0, x->shape.rank, &have) || !ops_dims_product(&out, 0, out.rank, &want))
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "element count of %s or %s is not representable",
                         ir_shape_str(&x->shape, sx, sizeof(sx)), ir_shape_str(&out, st, sizeof(st)));
  if (infer_at >= 0) {
    int64_t h = have < 0 ? -have : have, w = want < 0 ? -want : want;
    bool h_batch = have < 0, w_batch = want < 0;
    if (w == 0 || h % w != 0 || (w_batch && !h_batch))
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "cannot reshape %s to %s: element counts do not divide",
                           ir_shape_str(&x->shape, sx, sizeof(sx)), ir_shape_str(&out, st, sizeof(st)));
    out.dims[infer_at] = h_batch && !w_batch ? -(h / w) : h / w;
  } else if (have != want) {
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "cannot reshape %s to %s: element counts differ",
                         ir_shape_str(&x->shape, sx, sizeof(sx)), ir_shape_str(&out, st, sizeof(st)));
  }
  set_view_output(g, n, &out);
  return NULL;
}

inferd_error *op_ref_Reshape(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g, (void)n;
  return ref_copy(in, out);
}

/* ---- Squeeze / Unsqueeze ---- */

/* The axes of Squeeze or Unsqueeze: attribute before opset 13, input after.
 * *count is -1 when there are none. */
static inferd_error *squeeze_axes(const ir_graph *g, const ir_node *n, int64_t *axes, int *count) {
  *count = -1;
  if (g->opset < 13) {
    int len;
    const int64_t *a = ir_node_attr_ints(n, "axes", &len);
    if (!a) return NULL;
    if (len > IR_MAX_RANK) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "too many axes (%d)", len);
    memcpy(axes, a, (size_t)len * sizeof(int64_t));
    *count = len;
    return NULL;
  }
  if (ir_node_input(n, 1) < 0) return NULL;
  return ops_require_ints(g, n, 1, "axes", axes, IR_MAX_RANK, count);
}

inferd_error *op_infer_Squeeze(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  ERR_TRY(ops_check_fixed_size(g, n, 0));
  const ir_value *x = ops_input(g, n, 0);
  int64_t axes[IR_MAX_RANK];
  int count;
  ERR_TRY(squeeze_axes(g, n, axes, &count));
  bool drop[IR_MAX_RANK] = {false};
  char buf[160];
  if (count < 0) {
    /* No axes: every dim that is 1. A batch-dependent dim is not, even
     * though N might be 1 at run time: the result must not depend on N. */
    for (int d = 0; d < x->shape.rank; d++) drop[d] = x->shape.dims[d] == 1;
  }
  for (int i = 0; i < count; i++) {
    int axis;
    ERR_TRY(ops_axis(g, n, axes[i], x->shape.rank, false, "axis", &axis));
    if (drop[axis]) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "axis %" PRId64 " appears twice", axes[i]);
    if (x->shape.dims[axis] != 1)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "cannot squeeze dim %d of %s: it is not 1", axis,
                           ir_shape_str(&x->shape, buf, sizeof(buf)));
    drop[axis] = true;
  }
  ir_shape out = {.rank = 0};
  for (int d = 0; d < x->shape.rank; d++)
    if (!drop[d]) out.dims[out.rank++] = x->shape.dims[d];
  set_view_output(g, n, &out);
  return NULL;
}

inferd_error *op_ref_Squeeze(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g, (void)n;
  return ref_copy(in, out);
}

inferd_error *op_infer_Unsqueeze(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  ERR_TRY(ops_check_fixed_size(g, n, 0));
  const ir_value *x = ops_input(g, n, 0);
  int64_t axes[IR_MAX_RANK];
  int count;
  ERR_TRY(squeeze_axes(g, n, axes, &count));
  if (count < 0) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "axes are required");
  int rank = x->shape.rank + count;
  if (rank > IR_MAX_RANK)
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "result rank %d exceeds %d", rank, IR_MAX_RANK);
  bool added[IR_MAX_RANK] = {false};
  for (int i = 0; i < count; i++) {
    int axis;
    ERR_TRY(ops_axis(g, n, axes[i], rank, false, "axis", &axis));
    if (added[axis]) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "axis %" PRId64 " appears twice", axes[i]);
    added[axis] = true;
  }
  ir_shape out = {.rank = rank};
  for (int d = 0, k = 0; d < rank; d++) out.dims[d] = added[d] ? 1 : x->shape.dims[k++];
  set_view_output(g, n, &out);
  return NULL;
}

inferd_error *op_ref_Unsqueeze(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g, (void)n;
  return ref_copy(in, out);
}

/* ---- Identity / Dropout ---- */

inferd_error *op_infer_Identity(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  ERR_TRY(ops_check_fixed_size(g, n, 0));
  set_view_output(g, n, &ops_input(g, n, 0)->shape);
  return NULL;
}

inferd_error *op_ref_Identity(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g, (void)n;
  return ref_copy(in, out);
}

/*
 * Dropout in inference is the identity and its mask all true. Opset 12 made
 * training a run-time input: it must be known at load, and training with a
 * ratio other than 0 is random, which inference does not do.
 */
inferd_error *op_infer_Dropout(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  ERR_TRY(ops_check_fixed_size(g, n, 0));
  const ir_value *x = ops_input(g, n, 0);
  bool training = false;
  double ratio = ir_node_attr_float(n, "ratio", 0.5f);
  if (g->opset < 7) {
    training = ir_node_attr_int(n, "is_test", 0) == 0;
  } else if (g->opset >= 12 && ir_node_input(n, 2) >= 0) {
    ir_symint t;
    int count;
    if (!ops_known_ints(g, n->inputs[2], &t, 1, &count) || count != 1)
      return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED,
                           "training_mode ('%s') must be known when the model is loaded", g->values[n->inputs[2]].name);
    training = t.value != 0;
    const ir_value *r = ops_input(g, n, 1);
    ratio = 0.5;
    if (r) {
      if (r->kind != IR_VALUE_CONST || !r->data || ir_shape_numel(&r->shape, 1) != 1 || !ops_dtype_is_float(r->dtype))
        ratio = -1; /* unknown */
      else
        ratio = ops_load_f64(r->data, r->dtype, 0);
    }
  }
  if (training && ratio != 0)
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED,
                         "training-mode dropout (random) is not supported; only inference or ratio 0");
  set_view_output(g, n, &x->shape);
  /* The mask is BOOL from opset 10 on, the data's type before. */
  ops_set_output(g, n, 1, g->opset >= 10 ? INFERD_TYPE_BOOL : x->dtype, &x->shape);
  return NULL;
}

inferd_error *op_ref_Dropout(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g, (void)n;
  ERR_TRY(ref_copy(in, out));
  if (n->n_outputs > 1 && out[1].data) {
    int64_t count = ir_tensor_numel(&out[1]);
    for (int64_t i = 0; i < count; i++) ops_store_f64(out[1].data, out[1].dtype, i, 1.0);
  }
  return NULL;
}

/* ---- Shape ---- */

/* Shape's [start, end) (opset 15), clamped to [0, rank]. */
static void shape_range(const ir_graph *g, const ir_node *n, int rank, int *start, int *end) {
  int64_t s = 0, e = rank;
  if (g->opset >= 15) {
    s = ir_node_attr_int(n, "start", 0);
    e = ir_node_attr_int(n, "end", rank);
  }
  if (s < 0) s += rank;
  if (e < 0) e += rank;
  s = s < 0 ? 0 : s > rank ? rank : s;
  e = e < 0 ? 0 : e > rank ? rank : e;
  *start = (int)s;
  *end = (int)(e > s ? e : s);
}

inferd_error *op_infer_Shape(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  const ir_value *x = ops_input(g, n, 0);
  int start, end;
  shape_range(g, n, x->shape.rank, &start, &end);
  ir_shape out = {.rank = 1, .dims = {end - start}};
  ops_set_output(g, n, 0, INFERD_TYPE_INT64, &out);
  ir_symint sym[IR_MAX_RANK];
  for (int d = start; d < end; d++) {
    ir_dim dim = x->shape.dims[d];
    sym[d - start] = dim < 0 ? (ir_symint){.coef = -dim} : (ir_symint){.value = dim};
  }
  ops_set_sym(g, n->outputs[0], sym, end - start);
  return NULL;
}

inferd_error *op_ref_Shape(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  int start, end;
  shape_range(g, n, in[0].rank, &start, &end);
  int64_t *y = out[0].data;
  for (int d = start; d < end; d++) y[d - start] = in[0].dims[d];
  return NULL;
}

/* ---- Constant ---- */

inferd_error *op_infer_Constant(ir_graph *g, int node) {
  return ir_node_error(g, &g->nodes[node], INFERD_ERROR_UNSUPPORTED,
                       "Constant nodes are turned into constants at import; this one was not (an unsupported "
                       "attribute form?)");
}

inferd_error *op_ref_Constant(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)in, (void)out;
  return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "Constant nodes are folded at import, not run");
}
