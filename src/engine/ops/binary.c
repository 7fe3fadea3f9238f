/*
 * Arithmetic: Add, Sub, Mul, Div with numpy broadcasting, on FP32, FP64 and
 * every integer type. Integer results wrap like two's complement hardware
 * (computed unsigned, so no undefined overflow) and Div truncates toward
 * zero, as C and ONNX Runtime do; division by zero is an error.
 *
 * On small integer tensors whose contents are known at load (the shape
 * arithmetic exporters emit, e.g. batch * 16), the rule also computes the
 * symbolic result, keeping the N terms when the operation allows.
 */
#include <inttypes.h>
#include <string.h>

#include "engine/ops/op_util.h"
#include "engine/ops/sym.h"

typedef enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV } bin_op;

static const inferd_datatype arith_types[] = {
    INFERD_TYPE_FP32,  INFERD_TYPE_FP64,  INFERD_TYPE_INT32,  INFERD_TYPE_INT64,  INFERD_TYPE_INT8,
    INFERD_TYPE_UINT8, INFERD_TYPE_INT16, INFERD_TYPE_UINT16, INFERD_TYPE_UINT32, INFERD_TYPE_UINT64,
};

/* One symbolic element operation; false when the result is not of the form
 * value + coef*N (a product of two N terms, an inexact division). */
static bool sym_apply(bin_op op, ir_symint a, ir_symint b, ir_symint *r) {
  bool overflow = false;
  switch (op) {
  case BIN_ADD:
    overflow = __builtin_add_overflow(a.value, b.value, &r->value);
    overflow |= __builtin_add_overflow(a.coef, b.coef, &r->coef);
    break;
  case BIN_SUB:
    overflow = __builtin_sub_overflow(a.value, b.value, &r->value);
    overflow |= __builtin_sub_overflow(a.coef, b.coef, &r->coef);
    break;
  case BIN_MUL: {
    if (a.coef && b.coef) return false;
    int64_t c1, c2;
    overflow = __builtin_mul_overflow(a.value, b.value, &r->value);
    overflow |= __builtin_mul_overflow(a.coef, b.value, &c1);
    overflow |= __builtin_mul_overflow(b.coef, a.value, &c2);
    overflow |= __builtin_add_overflow(c1, c2, &r->coef);
    break;
  }
  case BIN_DIV:
    if (b.coef || b.value == 0 || (b.value == -1 && (a.value == INT64_MIN || a.coef == INT64_MIN))) return false;
    if (a.coef && (a.coef % b.value || a.value % b.value)) return false;
    *r = (ir_symint){a.value / b.value, a.coef / b.value};
    break;
  }
  return !overflow;
}

/* Symbolic contents of the result when both operands are known. */
static void infer_sym(ir_graph *g, const ir_node *n, bin_op op, const ir_shape *out) {
  const ir_value *a = ops_input(g, n, 0), *b = ops_input(g, n, 1);
  if (!ops_dtype_is_int(a->dtype) || !ir_shape_is_static(out) || ir_shape_numel(out, 1) > IR_SYM_MAX) return;
  ir_symint sa[IR_SYM_MAX], sb[IR_SYM_MAX], r[IR_SYM_MAX];
  int na, nb;
  if (!ops_known_ints(g, n->inputs[0], sa, IR_SYM_MAX, &na) || !ops_known_ints(g, n->inputs[1], sb, IR_SYM_MAX, &nb))
    return;
  ir_tensor ta = {.rank = a->shape.rank}, tb = {.rank = b->shape.rank};
  memcpy(ta.dims, a->shape.dims, sizeof(ta.dims));
  memcpy(tb.dims, b->shape.dims, sizeof(tb.dims));
  int64_t as[IR_MAX_RANK], bs[IR_MAX_RANK], idx[IR_MAX_RANK] = {0};
  ops_broadcast_strides(&ta, out->rank, out->dims, as);
  ops_broadcast_strides(&tb, out->rank, out->dims, bs);
  int64_t total = ir_shape_numel(out, 1);
  for (int64_t i = 0; i < total; i++) {
    int64_t ia = 0, ib = 0;
    for (int d = 0; d < out->rank; d++) {
      ia += idx[d] * as[d];
      ib += idx[d] * bs[d];
    }
    if (!sym_apply(op, sa[ia], sb[ib], &r[i])) return;
    for (int d = out->rank - 1; d >= 0 && ++idx[d] == out->dims[d]; d--) idx[d] = 0;
  }
  ops_set_sym(g, n->outputs[0], r, (int)total);
}

static inferd_error *infer_binary(ir_graph *g, int node, bin_op op) {
  ir_node *n = &g->nodes[node];
  const ir_value *a = ops_input(g, n, 0), *b = ops_input(g, n, 1);
  ERR_TRY(ops_check_dtype(g, n, 0, arith_types, (int)(sizeof(arith_types) / sizeof(arith_types[0]))));
  ERR_TRY(ops_check_same_dtype(g, n, 0, 1));
  if (g->opset < 7 && ir_node_attr_int(n, "broadcast", 0)) {
    /* The old broadcast attribute aligned B at `axis`; only the alignment
     * numpy also uses (at the end) means the same thing. */
    const ir_attr *axis = ir_node_attr(n, "axis");
    if (axis && axis->i != a->shape.rank - b->shape.rank && axis->i != -b->shape.rank)
      return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "legacy broadcast with axis=%" PRId64 " is not supported",
                           axis->i);
  } else if (g->opset < 7 && !ir_shape_equal(&a->shape, &b->shape)) {
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "before opset 7 shapes must match without broadcast=1");
  }
  ir_shape out;
  ERR_TRY(ops_broadcast(g, n, &a->shape, &b->shape, &out));
  ops_set_output(g, n, 0, a->dtype, &out);
  infer_sym(g, n, op, &out);
  return NULL;
}

inferd_error *op_infer_Add(ir_graph *g, int node) { return infer_binary(g, node, BIN_ADD); }
inferd_error *op_infer_Sub(ir_graph *g, int node) { return infer_binary(g, node, BIN_SUB); }
inferd_error *op_infer_Mul(ir_graph *g, int node) { return infer_binary(g, node, BIN_MUL); }
inferd_error *op_infer_Div(ir_graph *g, int node) { return infer_binary(g, node, BIN_DIV); }

/* The loop over the broadcast output, one instance per element type and op.
 * The innermost dim runs as a strided loop (strides 0 or 1 in practice). */
#define BINARY_LOOP(T, EXPR)                                                                                           \
  do {                                                                                                                 \
    const T *pa = a->data, *pb = b->data;                                                                              \
    T *py = y->data;                                                                                                   \
    int64_t inner = rank ? y->dims[rank - 1] : 1;                                                                      \
    int64_t sa_in = rank ? as[rank - 1] : 0, sb_in = rank ? bs[rank - 1] : 0;                                          \
    int64_t idx[IR_MAX_RANK] = {0};                                                                                    \
    for (int64_t o = 0; o < outer; o++) {                                                                              \
      int64_t oa = 0, ob = 0;                                                                                          \
      for (int d = 0; d < rank - 1; d++) {                                                                             \
        oa += idx[d] * as[d];                                                                                          \
        ob += idx[d] * bs[d];                                                                                          \
      }                                                                                                                \
      T *row = py + o * inner;                                                                                         \
      for (int64_t i = 0; i < inner; i++) {                                                                            \
        T x1 = pa[oa + i * sa_in], x2 = pb[ob + i * sb_in];                                                            \
        row[i] = (EXPR);                                                                                               \
      }                                                                                                                \
      for (int d = rank - 2; d >= 0 && ++idx[d] == y->dims[d]; d--) idx[d] = 0;                                        \
    }                                                                                                                  \
  } while (0)

/* Float types: plain C arithmetic. */
#define BINARY_FLOAT(T)                                                                                                \
  switch (op) {                                                                                                        \
  case BIN_ADD: BINARY_LOOP(T, x1 + x2); break;                                                                        \
  case BIN_SUB: BINARY_LOOP(T, x1 - x2); break;                                                                        \
  case BIN_MUL: BINARY_LOOP(T, x1 *x2); break;                                                                         \
  case BIN_DIV: BINARY_LOOP(T, x1 / x2); break;                                                                        \
  }

/* Integer types: wrap by computing in uint64_t (no signed overflow, no
 * promotion of small types to int); division is checked by the caller for
 * zero, and the one overflowing signed quotient (MIN / -1) wraps to MIN. */
#define BINARY_INT(T, MIN)                                                                                             \
  switch (op) {                                                                                                        \
  case BIN_ADD: BINARY_LOOP(T, (T)((uint64_t)x1 + (uint64_t)x2)); break;                                               \
  case BIN_SUB: BINARY_LOOP(T, (T)((uint64_t)x1 - (uint64_t)x2)); break;                                               \
  case BIN_MUL: BINARY_LOOP(T, (T)((uint64_t)x1 * (uint64_t)x2)); break;                                               \
  case BIN_DIV: BINARY_LOOP(T, (MIN != 0 && x1 == (T)(MIN) && x2 == (T)-1) ? x1 : (T)(x1 / x2)); break;                \
  }

static bool has_zero(const ir_tensor *t) {
  int64_t count = ir_tensor_numel(t);
  for (int64_t i = 0; i < count; i++)
    if (ops_load_i64(t->data, t->dtype, i) == 0) return true;
  return false;
}

static inferd_error *ref_binary(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out, bin_op op) {
  const ir_tensor *a = &in[0], *b = &in[1];
  ir_tensor *y = &out[0];
  int rank = y->rank;
  int64_t as[IR_MAX_RANK], bs[IR_MAX_RANK];
  ops_broadcast_strides(a, rank, y->dims, as);
  ops_broadcast_strides(b, rank, y->dims, bs);
  int64_t outer = 1;
  for (int d = 0; d < rank - 1; d++) outer *= y->dims[d];
  if (ir_tensor_numel(y) == 0) return NULL;
  if (op == BIN_DIV && ops_dtype_is_int(b->dtype) && has_zero(b))
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "integer division by zero");
  switch (a->dtype) {
  case INFERD_TYPE_FP32: BINARY_FLOAT(float); break;
  case INFERD_TYPE_FP64: BINARY_FLOAT(double); break;
  case INFERD_TYPE_INT8: BINARY_INT(int8_t, INT8_MIN); break;
  case INFERD_TYPE_INT16: BINARY_INT(int16_t, INT16_MIN); break;
  case INFERD_TYPE_INT32: BINARY_INT(int32_t, INT32_MIN); break;
  case INFERD_TYPE_INT64: BINARY_INT(int64_t, INT64_MIN); break;
  case INFERD_TYPE_UINT8: BINARY_INT(uint8_t, 0); break;
  case INFERD_TYPE_UINT16: BINARY_INT(uint16_t, 0); break;
  case INFERD_TYPE_UINT32: BINARY_INT(uint32_t, 0); break;
  case INFERD_TYPE_UINT64: BINARY_INT(uint64_t, 0); break;
  default:
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "%s arithmetic is not supported",
                         inferd_datatype_name(a->dtype));
  }
  return NULL;
}

inferd_error *op_ref_Add(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  return ref_binary(g, n, in, out, BIN_ADD);
}
inferd_error *op_ref_Sub(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  return ref_binary(g, n, in, out, BIN_SUB);
}
inferd_error *op_ref_Mul(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  return ref_binary(g, n, in, out, BIN_MUL);
}
inferd_error *op_ref_Div(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  return ref_binary(g, n, in, out, BIN_DIV);
}
