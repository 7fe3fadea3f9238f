/*
 * Helpers shared by the op family files: reading a node's inputs, setting its
 * outputs, axis and dtype checks, dimension arithmetic in the IR's batch
 * encoding (see ir.h), numpy broadcasting, the sliding-window geometry Conv
 * and the pools share, and strided iteration for the reference kernels.
 *
 * Shape-inference rules and kernels both call these, so a rule and its kernel
 * cannot disagree about, say, how SAME_UPPER splits an odd padding.
 */
#ifndef INFERD_ENGINE_OPS_OP_UTIL_H
#define INFERD_ENGINE_OPS_OP_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/float16.h"
#include "engine/ops/op_impl.h"

/* ---- shape inference ---------------------------------------------------- */

/* Value of node input i, or NULL when the input is omitted. */
static inline const ir_value *ops_input(const ir_graph *g, const ir_node *n, int i) {
  int v = ir_node_input(n, i);
  return v >= 0 ? &g->values[v] : NULL;
}

/* Whether output k exists (present and not omitted). */
static inline bool ops_has_output(const ir_node *n, int k) { return k < n->n_outputs && n->outputs[k] >= 0; }

/* Sets output k's dtype and shape and clears any symbolic contents left by
 * an earlier inference; does nothing when output k is omitted. */
void ops_set_output(ir_graph *g, const ir_node *n, int k, inferd_datatype dtype, const ir_shape *shape);

/* Normalizes `axis` against `rank`: valid values are [-rank, rank) or, with
 * `inclusive`, [-rank, rank] (Flatten, Unsqueeze). `what` names the attribute
 * in the error. */
inferd_error *ops_axis(const ir_graph *g, const ir_node *n, int64_t axis, int rank, bool inclusive, const char *what,
                       int *out);

/* The input must have one of the `allowed` dtypes (an array of `count`). */
inferd_error *ops_check_dtype(const ir_graph *g, const ir_node *n, int input, const inferd_datatype *allowed,
                              int count);
/* Input `input` (when present) must have a type the data movement kernels
 * copy: any fixed-size type, or BYTES (as ir_bytes views). */
inferd_error *ops_check_fixed_size(const ir_graph *g, const ir_node *n, int input);
/* Inputs i and j must have the same dtype. */
inferd_error *ops_check_same_dtype(const ir_graph *g, const ir_node *n, int i, int j);

bool ops_dtype_is_int(inferd_datatype t);   /* signed and unsigned integers, not BOOL */
bool ops_dtype_is_float(inferd_datatype t); /* FP16, BF16, FP32, FP64 */

/* a*b in the batch encoding; false when the product would depend on N² or
 * overflow. */
bool ops_dim_mul(ir_dim a, ir_dim b, ir_dim *out);
/* Product of dims [from, to) of `s`, with the same failure cases. */
bool ops_dims_product(const ir_shape *s, int from, int to, ir_dim *out);

/* numpy broadcasting of a and b into out. Equal dims, or a static 1 against
 * anything; N-dependent dims only meet their equal or 1. */
inferd_error *ops_broadcast(const ir_graph *g, const ir_node *n, const ir_shape *a, const ir_shape *b, ir_shape *out);

/* Reads an INTS attribute of exactly `count` values into out, or fills it
 * with `fallback` when absent. Errors name the attribute. */
inferd_error *ops_attr_ints(const ir_graph *g, const ir_node *n, const char *name, int count, int64_t fallback,
                            int64_t *out);

/* ---- sliding windows: Conv and the pools ---------------------------------- */

typedef struct ops_window {
  int n; /* spatial dims */
  int64_t in[IR_MAX_RANK];
  int64_t kernel[IR_MAX_RANK];
  int64_t stride[IR_MAX_RANK];
  int64_t dilation[IR_MAX_RANK];
  int64_t pad_begin[IR_MAX_RANK];
  int64_t pad_end[IR_MAX_RANK];
  int64_t out[IR_MAX_RANK];
} ops_window;

/* Reads strides, dilations, pads and auto_pad for `nspatial` dims with input
 * extents `in` and kernel extents `kernel`, and computes the output extents.
 * `ceil_mode` rounds the output up (pools), dropping a last window that would
 * start in the end padding. */
inferd_error *ops_window_init(const ir_graph *g, const ir_node *n, int nspatial, const int64_t *in,
                              const int64_t *kernel, bool ceil_mode, ops_window *w);

/* The window padded to three spatial dims (depth, height, width) with
 * extent-1 dims in front, so one loop nest serves 1-D, 2-D and 3-D. */
typedef struct ops_window3 {
  int64_t in[3], out[3], k[3], s[3], d[3], p[3], p_end[3];
} ops_window3;
void ops_window_pad3(const ops_window *w, ops_window3 *c);

/* Output positions [*lo, *hi) of `out` whose input index o*stride + offset
 * lies inside [0, in). */
void ops_valid_range(int64_t offset, int64_t stride, int64_t in, int64_t out, int64_t *lo, int64_t *hi);

/* Which dims ReduceMean reduces: a mask over the input's `rank` dims. An
 * empty mask with *noop set means the op is the identity. Axes given as an
 * input must be known at load. */
inferd_error *ops_reduce_mask(const ir_graph *g, const ir_node *n, int rank, bool *mask, bool *noop);

/* Pad's pads per dim (begin in pads[d], end in pads[rank + d]) and mode. At
 * load `in` is NULL and the pads come from known values; in a kernel from
 * the tensors. */
typedef enum ops_pad_mode { OPS_PAD_CONSTANT, OPS_PAD_REFLECT, OPS_PAD_EDGE } ops_pad_mode;
inferd_error *ops_pad_args(const ir_graph *g, const ir_node *n, const ir_tensor *in, int rank, int64_t *pads,
                           ops_pad_mode *mode);

/* ---- reference kernels -------------------------------------------------- */

/* Kernel input k's data, or NULL when it is omitted or past the node's
 * inputs: callers size `in` by the node's input count, so a kernel must not
 * look at in[k] for an optional input without asking. */
static inline const void *ops_in_data(const ir_node *n, const ir_tensor *in, int k) {
  return ir_node_input(n, k) >= 0 ? in[k].data : NULL;
}

/* Dense row-major strides (in elements). */
void ops_strides(int rank, const int64_t *dims, int64_t *strides);

/* Strides of `t` as seen from an output of rank `out_rank` under numpy
 * broadcasting: aligned at the right, 0 along broadcast dims. */
void ops_broadcast_strides(const ir_tensor *t, int out_rank, const int64_t *out_dims, int64_t *strides);

/* Element i of a tensor of any numeric dtype as double / int64 (floats
 * truncated toward zero and saturated, NaN as 0). */
double ops_load_f64(const void *data, inferd_datatype t, int64_t i);
int64_t ops_load_i64(const void *data, inferd_datatype t, int64_t i);
/* Stores v as element i of a numeric dtype: floats rounded to nearest even,
 * integers truncated toward zero and saturated (NaN as 0), BOOL as v != 0. */
void ops_store_f64(void *data, inferd_datatype t, int64_t i, double v);

/* Copies the view of `src` with element strides `src_strides` (negative
 * allowed; src points at the view's first element) and extents `dims` into
 * dense row-major `dst`. */
void ops_copy_strided(void *dst, const void *src, int rank, const int64_t *dims, const int64_t *src_strides,
                      size_t esize);

/* y = activation(x) for `count` floats (x == y allowed): the math of the
 * activation ops, by the enum the optimizer uses for fused activations.
 * CLIP takes alpha = min, beta = max; LEAKY_RELU alpha; HARD_SIGMOID both. */
void ops_eltwise_f32(ir_eltwise_alg alg, float alpha, float beta, const float *x, float *y, int64_t count);
/* Applies the post-ops the optimizer fused into node `n` to its result `y`
 * in place; `in` are the node's input tensors (the sum operand among them).
 * For backends that run a fused node with its reference kernel. */
inferd_error *ops_apply_post_ops(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *y);

#endif
