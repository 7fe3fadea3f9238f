/*
 * Indexing: Gather (elements along an axis by an index tensor, negative
 * indices counting from the end) and Slice (start/end/step per axis with
 * ONNX's clamping; bounds as attributes before opset 10, inputs after). All
 * fixed-size types. Both carry symbolic contents through, since exporters
 * take dims out of a Shape vector with them.
 */
#include <inttypes.h>
#include <string.h>

#include "engine/ops/op_util.h"
#include "engine/ops/sym.h"

/* ---- Gather ---- */

inferd_error *op_infer_Gather(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  ERR_TRY(ops_check_fixed_size(g, n, 0));
  const ir_value *x = ops_input(g, n, 0), *ind = ops_input(g, n, 1);
  static const inferd_datatype index_types[] = {INFERD_TYPE_INT32, INFERD_TYPE_INT64};
  ERR_TRY(ops_check_dtype(g, n, 1, index_types, 2));
  if (x->shape.rank < 1) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "data must have at least one dim");
  int axis;
  ERR_TRY(ops_axis(g, n, ir_node_attr_int(n, "axis", 0), x->shape.rank, false, "axis", &axis));
  int rank = x->shape.rank - 1 + ind->shape.rank;
  if (rank > IR_MAX_RANK)
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "result rank %d exceeds %d", rank, IR_MAX_RANK);
  ir_shape out = {.rank = 0};
  for (int d = 0; d < axis; d++) out.dims[out.rank++] = x->shape.dims[d];
  for (int d = 0; d < ind->shape.rank; d++) out.dims[out.rank++] = ind->shape.dims[d];
  for (int d = axis + 1; d < x->shape.rank; d++) out.dims[out.rank++] = x->shape.dims[d];
  ops_set_output(g, n, 0, x->dtype, &out);

  /* Indices known now are checked now; with known data the result is too. */
  ir_symint idx[IR_SYM_MAX], data[IR_SYM_MAX], res[IR_SYM_MAX];
  int n_idx, n_data;
  ir_dim extent = x->shape.dims[axis];
  if (!ops_known_ints(g, n->inputs[1], idx, IR_SYM_MAX, &n_idx) || !ops_sym_all_static(idx, n_idx) || extent < 0)
    return NULL;
  for (int i = 0; i < n_idx; i++) {
    if (idx[i].value < -extent || idx[i].value >= extent)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "index %" PRId64 " is out of range for extent %" PRId64,
                           idx[i].value, extent);
    if (idx[i].value < 0) idx[i].value += extent;
  }
  if (!ir_shape_is_static(&out) || !ops_known_ints(g, n->inputs[0], data, IR_SYM_MAX, &n_data)) return NULL;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; d++) outer *= x->shape.dims[d];
  for (int d = axis + 1; d < x->shape.rank; d++) inner *= x->shape.dims[d];
  /* Known contents only while they fit, and only from data whose known
   * elements cover its shape. */
  if (outer * extent * inner != n_data || outer * n_idx * inner > IR_SYM_MAX) return NULL;
  int total = 0;
  for (int64_t o = 0; o < outer; o++)
    for (int i = 0; i < n_idx; i++)
      for (int64_t k = 0; k < inner; k++) res[total++] = data[(o * extent + idx[i].value) * inner + k];
  ops_set_sym(g, n->outputs[0], res, total);
  return NULL;
}

inferd_error *op_ref_Gather(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  const ir_tensor *x = &in[0], *ind = &in[1];
  int64_t a = ir_node_attr_int(n, "axis", 0);
  int axis = (int)(a < 0 ? a + x->rank : a);
  size_t esize = ir_dtype_size(x->dtype);
  int64_t outer = 1, inner = 1, extent = x->dims[axis], count = ir_tensor_numel(ind);
  for (int d = 0; d < axis; d++) outer *= x->dims[d];
  for (int d = axis + 1; d < x->rank; d++) inner *= x->dims[d];
  for (int64_t i = 0; i < count; i++) {
    int64_t k = ops_load_i64(ind->data, ind->dtype, i);
    if (k < -extent || k >= extent)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "index %" PRId64 " is out of range for extent %" PRId64, k,
                           extent);
  }
  size_t chunk = (size_t)inner * esize;
  char *y = out[0].data;
  const char *src = x->data;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < count; i++) {
      int64_t k = ops_load_i64(ind->data, ind->dtype, i);
      if (k < 0) k += extent;
      memcpy(y, src + (size_t)(o * extent + k) * chunk, chunk);
      y += chunk;
    }
  return NULL;
}

/* ---- Slice ---- */

/* The per-axis arguments as given: starts and ends may carry N terms at load
 * time, axes and steps are plain. count is the number of sliced axes. */
typedef struct slice_args {
  int count;
  ir_symint starts[IR_MAX_RANK], ends[IR_MAX_RANK];
  int64_t axes[IR_MAX_RANK], steps[IR_MAX_RANK];
} slice_args;

/* Reads the arguments, at load (`in` NULL) or in the kernel. */
static inferd_error *slice_read(const ir_graph *g, const ir_node *n, const ir_tensor *in, slice_args *s) {
  int64_t starts[IR_MAX_RANK], ends[IR_MAX_RANK];
  int n_starts, n_ends, n_axes = -1, n_steps = -1;
  if (g->opset < 10) {
    const int64_t *a = ir_node_attr_ints(n, "starts", &n_starts), *b = ir_node_attr_ints(n, "ends", &n_ends);
    if (!a || !b) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "attributes starts and ends are required");
    if (n_starts > IR_MAX_RANK || n_ends > IR_MAX_RANK)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "more than %d starts/ends", IR_MAX_RANK);
    memcpy(starts, a, (size_t)n_starts * sizeof(int64_t));
    memcpy(ends, b, (size_t)n_ends * sizeof(int64_t));
    const int64_t *c = ir_node_attr_ints(n, "axes", &n_axes);
    if (c) {
      if (n_axes > IR_MAX_RANK) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "too many axes");
      memcpy(s->axes, c, (size_t)n_axes * sizeof(int64_t));
    }
    for (int i = 0; i < n_starts; i++) {
      s->starts[i] = (ir_symint){.value = starts[i]};
      s->ends[i] = (ir_symint){.value = i < n_ends ? ends[i] : 0};
    }
  } else if (in) {
    ERR_TRY(ops_read_ints(g, n, in, 1, "starts", starts, IR_MAX_RANK, &n_starts));
    ERR_TRY(ops_read_ints(g, n, in, 2, "ends", ends, IR_MAX_RANK, &n_ends));
    for (int i = 0; i < n_starts; i++) s->starts[i] = (ir_symint){.value = starts[i]};
    for (int i = 0; i < n_ends; i++) s->ends[i] = (ir_symint){.value = ends[i]};
  } else {
    /* Bounds may be computed from the batch size: known, not plain. */
    for (int k = 1; k <= 2; k++) {
      int v = ir_node_input(n, k), *count = k == 1 ? &n_starts : &n_ends;
      if (v < 0 || !ops_dtype_is_int(g->values[v].dtype) ||
          !ops_known_ints(g, v, k == 1 ? s->starts : s->ends, IR_MAX_RANK, count))
        return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "%s ('%s') must be known when the model is loaded",
                             k == 1 ? "starts" : "ends", v >= 0 ? g->values[v].name : "");
    }
  }
  if (g->opset >= 10) {
    ERR_TRY(ops_read_ints(g, n, in, 3, "axes", s->axes, IR_MAX_RANK, &n_axes));
    ERR_TRY(ops_read_ints(g, n, in, 4, "steps", s->steps, IR_MAX_RANK, &n_steps));
  }
  if (n_starts != n_ends || (n_axes >= 0 && n_axes != n_starts) || (n_steps >= 0 && n_steps != n_starts))
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "starts, ends, axes and steps differ in length");
  s->count = n_starts;
  for (int i = 0; i < s->count; i++) {
    if (n_axes < 0) s->axes[i] = i;
    if (n_steps < 0) s->steps[i] = 1;
    if (s->steps[i] == 0)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "step 0 along axis %" PRId64, s->axes[i]);
  }
  return NULL;
}

/* ONNX's clamping for one axis of extent `dim`: the first index and the
 * number of elements taken with `step`. */
static void slice_range(int64_t start, int64_t end, int64_t step, int64_t dim, int64_t *first, int64_t *len) {
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = start < 0 ? 0 : start > dim ? dim : start;
    end = end < 0 ? 0 : end > dim ? dim : end;
    *len = end > start ? (end - start - 1) / step + 1 : 0;
  } else {
    start = start < 0 ? 0 : start > dim - 1 ? dim - 1 : start;
    end = end < -1 ? -1 : end > dim - 1 ? dim - 1 : end;
    /* -step overflows for INT64_MIN, which takes one element at most. */
    *len = start > end ? (step == INT64_MIN ? 1 : (start - end - 1) / -step + 1) : 0;
  }
  *first = start;
}

/* Normalized per-dim view: first index, step and count for every dim. */
static inferd_error *slice_dims(const ir_graph *g, const ir_node *n, const slice_args *s, int rank, const int64_t *dims,
                                int64_t *first, int64_t *step, int64_t *len) {
  bool seen[IR_MAX_RANK] = {false};
  for (int d = 0; d < rank; d++) {
    first[d] = 0;
    step[d] = 1;
    len[d] = dims[d];
  }
  for (int i = 0; i < s->count; i++) {
    int axis;
    ERR_TRY(ops_axis(g, n, s->axes[i], rank, false, "axis", &axis));
    if (seen[axis]) return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "axis %" PRId64 " appears twice", s->axes[i]);
    seen[axis] = true;
    step[axis] = s->steps[i];
    slice_range(s->starts[i].value, s->ends[i].value, s->steps[i], dims[axis], &first[axis], &len[axis]);
  }
  return NULL;
}

inferd_error *op_infer_Slice(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  ERR_TRY(ops_check_fixed_size(g, n, 0));
  const ir_value *x = ops_input(g, n, 0);
  slice_args s;
  ERR_TRY(slice_read(g, n, NULL, &s));
  int rank = x->shape.rank;
  /* Batch-dependent dims can only be taken whole: start 0, step 1, and an
   * end at or past the dim (a huge constant, or kN + c with c >= 0). */
  int64_t dims[IR_MAX_RANK];
  for (int d = 0; d < rank; d++) dims[d] = x->shape.dims[d] < 0 ? 0 : x->shape.dims[d];
  slice_args plain = s;
  for (int i = 0; i < s.count; i++) {
    int axis;
    ERR_TRY(ops_axis(g, n, s.axes[i], rank, false, "axis", &axis));
    ir_dim dim = x->shape.dims[axis];
    if (dim < 0) {
      bool whole =
          s.starts[i].coef == 0 && s.starts[i].value == 0 && s.steps[i] == 1 &&
          ((s.ends[i].coef == -dim && s.ends[i].value >= 0) || (s.ends[i].coef == 0 && s.ends[i].value >= INT32_MAX));
      if (!whole)
        return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED,
                             "slicing part of axis %d, which depends on the batch size, is not supported", axis);
      plain.starts[i] = plain.ends[i] = (ir_symint){0, 0};
    } else if (s.starts[i].coef || s.ends[i].coef) {
      return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED,
                           "the bounds along axis %d depend on the batch size but the dim does not", axis);
    }
  }
  int64_t first[IR_MAX_RANK], step[IR_MAX_RANK], len[IR_MAX_RANK];
  ERR_TRY(slice_dims(g, n, &plain, rank, dims, first, step, len));
  ir_shape out = {.rank = rank};
  for (int d = 0; d < rank; d++) out.dims[d] = x->shape.dims[d] < 0 ? x->shape.dims[d] : len[d];
  ops_set_output(g, n, 0, x->dtype, &out);

  ir_symint data[IR_SYM_MAX], res[IR_SYM_MAX];
  int n_data;
  if (rank == 1 && x->shape.dims[0] >= 0 && ops_known_ints(g, n->inputs[0], data, IR_SYM_MAX, &n_data)) {
    for (int64_t i = 0; i < len[0]; i++) res[i] = data[first[0] + i * step[0]];
    ops_set_sym(g, n->outputs[0], res, (int)len[0]);
  }
  return NULL;
}

inferd_error *op_ref_Slice(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  const ir_tensor *x = &in[0];
  slice_args s;
  ERR_TRY(slice_read(g, n, in, &s));
  int64_t first[IR_MAX_RANK], step[IR_MAX_RANK], len[IR_MAX_RANK], strides[IR_MAX_RANK], src[IR_MAX_RANK];
  ERR_TRY(slice_dims(g, n, &s, x->rank, x->dims, first, step, len));
  ops_strides(x->rank, x->dims, strides);
  int64_t offset = 0;
  for (int d = 0; d < x->rank; d++) {
    if (len[d] != out[0].dims[d])
      return ir_node_error(g, n, INFERD_ERROR_INTERNAL, "slice extent %" PRId64 " differs from the planned %" PRId64,
                           len[d], out[0].dims[d]);
    offset += first[d] * strides[d];
    src[d] = step[d] * strides[d];
  }
  size_t esize = ir_dtype_size(x->dtype);
  ops_copy_strided(out[0].data, (const char *)x->data + offset * (int64_t)esize, x->rank, out[0].dims, src, esize);
  return NULL;
}
