/*
 * Ops that move elements around: Transpose, Concat, Pad (constant, reflect,
 * edge; pads as attribute before opset 11, as input after). All fixed-size
 * types; kernels work on bytes through ops_copy_strided.
 */
#include <inttypes.h>
#include <string.h>

#include "engine/ops/op_util.h"
#include "engine/ops/sym.h"

/* ---- Transpose ---- */

/* The permutation: the attribute, or reversed dims by default. */
static inferd_error *transpose_perm(const ir_graph *g, const ir_node *n, int rank, int *perm) {
  int len;
  const int64_t *attr = ir_node_attr_ints(n, "perm", &len);
  if (!attr) {
    for (int i = 0; i < rank; i++) perm[i] = rank - 1 - i;
    return NULL;
  }
  if (len != rank)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "perm has %d entries for a rank-%d input", len, rank);
  bool seen[IR_MAX_RANK] = {false};
  for (int i = 0; i < rank; i++) {
    if (attr[i] < 0 || attr[i] >= rank || seen[attr[i]])
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "perm is not a permutation of 0..%d", rank - 1);
    seen[attr[i]] = true;
    perm[i] = (int)attr[i];
  }
  return NULL;
}

inferd_error *op_infer_Transpose(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  ERR_TRY(ops_check_fixed_size(g, n, 0));
  const ir_value *x = ops_input(g, n, 0);
  int perm[IR_MAX_RANK];
  ERR_TRY(transpose_perm(g, n, x->shape.rank, perm));
  ir_shape out = {.rank = x->shape.rank};
  for (int i = 0; i < out.rank; i++) out.dims[i] = x->shape.dims[perm[i]];
  ops_set_output(g, n, 0, x->dtype, &out);
  if (out.rank <= 1) ops_forward_sym(g, n->inputs[0], n->outputs[0]);
  return NULL;
}

inferd_error *op_ref_Transpose(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  const ir_tensor *x = &in[0];
  int perm[IR_MAX_RANK];
  ERR_TRY(transpose_perm(g, n, x->rank, perm));
  int64_t strides[IR_MAX_RANK], src[IR_MAX_RANK];
  ops_strides(x->rank, x->dims, strides);
  for (int i = 0; i < x->rank; i++) src[i] = strides[perm[i]];
  ops_copy_strided(out[0].data, x->data, x->rank, out[0].dims, src, ir_dtype_size(x->dtype));
  return NULL;
}

/* ---- Concat ---- */

static inferd_error *concat_axis(const ir_graph *g, const ir_node *n, int rank, int *axis) {
  const ir_attr *a = ir_node_attr(n, "axis");
  if (!a && g->opset >= 4) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "attribute axis is required");
  return ops_axis(g, n, a ? a->i : 1, rank, false, "axis", axis);
}

inferd_error *op_infer_Concat(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  const ir_value *first = ops_input(g, n, 0);
  char s0[160], s1[160];
  for (int i = 0; i < n->n_inputs; i++) {
    if (!ops_input(g, n, i)) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "input %d is omitted", i);
    ERR_TRY(ops_check_fixed_size(g, n, i));
    ERR_TRY(ops_check_same_dtype(g, n, 0, i));
  }
  if (first->shape.rank == 0) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "cannot concatenate scalars");
  int axis;
  ERR_TRY(concat_axis(g, n, first->shape.rank, &axis));
  ir_shape out = first->shape;
  out.dims[axis] = 0;
  bool any_batch = false, any_static = false;
  for (int i = 0; i < n->n_inputs; i++) {
    const ir_shape *s = &ops_input(g, n, i)->shape;
    bool same = s->rank == first->shape.rank;
    for (int d = 0; same && d < s->rank; d++) same = d == axis || s->dims[d] == first->shape.dims[d];
    if (!same)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "inputs %s and %s differ outside axis %d",
                           ir_shape_str(&first->shape, s0, sizeof(s0)), ir_shape_str(s, s1, sizeof(s1)), axis);
    /* Batch-dependent extents add up (N + 2N = 3N), and so do static ones;
     * a mix would be c + kN, which no dim can hold. Empty inputs add nothing. */
    ir_dim d = s->dims[axis];
    any_batch |= d < 0;
    any_static |= d > 0;
    if (__builtin_add_overflow(out.dims[axis], d, &out.dims[axis]))
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "concatenated extent overflows");
  }
  if (any_batch && any_static)
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED,
                         "concatenating batch-dependent and fixed extents along axis %d is not supported", axis);
  ops_set_output(g, n, 0, first->dtype, &out);
  /* Shape vectors built piecewise (Shape, Gather, Unsqueeze, constants). */
  if (first->shape.rank == 1 && ops_dtype_is_int(first->dtype)) {
    ir_symint sym[IR_SYM_MAX];
    int total = 0;
    for (int i = 0; i < n->n_inputs; i++) {
      int count;
      if (!ops_known_ints(g, n->inputs[i], sym + total, IR_SYM_MAX - total, &count)) return NULL;
      total += count;
    }
    ops_set_sym(g, n->outputs[0], sym, total);
  }
  return NULL;
}

inferd_error *op_ref_Concat(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  int axis;
  ERR_TRY(concat_axis(g, n, out[0].rank, &axis));
  size_t esize = ir_dtype_size(out[0].dtype);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; d++) outer *= out[0].dims[d];
  for (int d = axis + 1; d < out[0].rank; d++) inner *= out[0].dims[d];
  char *y = out[0].data;
  for (int64_t o = 0; o < outer; o++)
    for (int i = 0; i < n->n_inputs; i++) {
      size_t chunk = (size_t)(in[i].dims[axis] * inner) * esize;
      if (!chunk) continue;
      memcpy(y, (const char *)in[i].data + (size_t)o * chunk, chunk);
      y += chunk;
    }
  return NULL;
}

/* ---- Pad ---- */

inferd_error *ops_pad_args(const ir_graph *g, const ir_node *n, const ir_tensor *in, int rank, int64_t *pads,
                           ops_pad_mode *mode) {
  const char *m = ir_node_attr_string(n, "mode", "constant");
  if (strcmp(m, "constant") == 0)
    *mode = OPS_PAD_CONSTANT;
  else if (strcmp(m, "reflect") == 0)
    *mode = OPS_PAD_REFLECT;
  else if (strcmp(m, "edge") == 0)
    *mode = OPS_PAD_EDGE;
  else
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "mode '%s' is not supported (constant, reflect, edge)", m);
  int64_t given[2 * IR_MAX_RANK], axes[IR_MAX_RANK];
  int count, n_axes = -1;
  if (g->opset < 11) {
    int len;
    const int64_t *attr = ir_node_attr_ints(n, g->opset < 2 ? "paddings" : "pads", &len);
    if (!attr) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "attribute pads is required");
    if (len > 2 * IR_MAX_RANK) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "too many pads (%d)", len);
    memcpy(given, attr, (size_t)len * sizeof(int64_t));
    count = len;
  } else {
    ERR_TRY(ops_read_ints(g, n, in, 1, "pads", given, 2 * IR_MAX_RANK, &count));
    if (count < 0) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "input pads is required");
    ERR_TRY(ops_read_ints(g, n, in, 3, "axes", axes, IR_MAX_RANK, &n_axes));
  }
  if (n_axes < 0) {
    n_axes = rank;
    for (int i = 0; i < rank; i++) axes[i] = i;
  }
  if (count != 2 * n_axes)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "%d pads for %d axes; expected %d", count, n_axes, 2 * n_axes);
  for (int i = 0; i < 2 * rank; i++) pads[i] = 0;
  bool seen[IR_MAX_RANK] = {false};
  for (int i = 0; i < n_axes; i++) {
    int axis;
    ERR_TRY(ops_axis(g, n, axes[i], rank, false, "axis", &axis));
    if (seen[axis]) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "axis %" PRId64 " appears twice", axes[i]);
    seen[axis] = true;
    pads[axis] = given[i];
    pads[rank + axis] = given[n_axes + i];
  }
  return NULL;
}

inferd_error *op_infer_Pad(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  ERR_TRY(ops_check_fixed_size(g, n, 0));
  const ir_value *x = ops_input(g, n, 0), *value = ops_input(g, n, 2);
  int64_t pads[2 * IR_MAX_RANK];
  ops_pad_mode mode;
  ERR_TRY(ops_pad_args(g, n, NULL, x->shape.rank, pads, &mode));
  if (g->opset >= 11 && value) {
    ERR_TRY(ops_check_same_dtype(g, n, 0, 2));
    if (!ir_shape_is_static(&value->shape) || ir_shape_numel(&value->shape, 1) > 1)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "constant_value ('%s') must be a single value", value->name);
  }
  ir_shape out = x->shape;
  for (int d = 0; d < out.rank; d++) {
    int64_t begin = pads[d], end = pads[out.rank + d];
    ir_dim dim = x->shape.dims[d];
    if (begin == 0 && end == 0) continue;
    if (dim < 0)
      return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "padding dim %d, which depends on the batch size", d);
    if (begin > INT32_MAX || end > INT32_MAX || begin < -dim || end < -dim || dim + begin + end < 0)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG,
                           "pads %" PRId64 ", %" PRId64 " are invalid for dim %d (%" PRId64 ")", begin, end, d, dim);
    if (mode != OPS_PAD_CONSTANT && dim == 0)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "cannot %s-pad the empty dim %d",
                           mode == OPS_PAD_EDGE ? "edge" : "reflect", d);
    out.dims[d] = dim + begin + end;
  }
  ops_set_output(g, n, 0, x->dtype, &out);
  return NULL;
}

/* Source index for position i (may lie outside [0, size)) under reflect:
 * mirrored about the first and last element, repeatedly. */
static int64_t reflect_index(int64_t i, int64_t size) {
  if (size == 1) return 0;
  int64_t period = 2 * (size - 1);
  int64_t m = i % period;
  if (m < 0) m += period;
  return m < size ? m : period - m;
}

inferd_error *op_ref_Pad(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  const ir_tensor *x = &in[0];
  int rank = x->rank;
  int64_t pads[2 * IR_MAX_RANK];
  ops_pad_mode mode;
  ERR_TRY(ops_pad_args(g, n, in, rank, pads, &mode));
  size_t esize = ir_dtype_size(x->dtype);
  /* The fill value, converted once to the element type. */
  uint64_t fill = 0;
  if (g->opset < 11)
    ops_store_f64(&fill, x->dtype, 0, ir_node_attr_float(n, "value", 0.0f));
  else if (ops_in_data(n, in, 2) && ir_tensor_numel(&in[2]) == 1)
    memcpy(&fill, in[2].data, esize);
  int64_t strides[IR_MAX_RANK], idx[IR_MAX_RANK] = {0};
  ops_strides(rank, x->dims, strides);
  int64_t total = ir_tensor_numel(&out[0]);
  char *y = out[0].data;
  const char *src = x->data;
  for (int64_t o = 0; o < total; o++) {
    int64_t off = 0;
    bool inside = true;
    for (int d = 0; d < rank; d++) {
      int64_t i = idx[d] - pads[d];
      if (i < 0 || i >= x->dims[d]) {
        if (mode == OPS_PAD_CONSTANT) {
          inside = false;
          break;
        }
        i = mode == OPS_PAD_EDGE ? (i < 0 ? 0 : x->dims[d] - 1) : reflect_index(i, x->dims[d]);
      }
      off += i * strides[d];
    }
    memcpy(y + (size_t)o * esize, inside ? src + (size_t)off * esize : (const char *)&fill, esize);
    for (int d = rank - 1; d >= 0 && ++idx[d] == out[0].dims[d]; d--) idx[d] = 0;
  }
  return NULL;
}
