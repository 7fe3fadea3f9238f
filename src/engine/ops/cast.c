/*
 * Cast between every fixed-size type: BOOL, the integers, FP16, BF16, FP32,
 * FP64. Floats are rounded to nearest even when narrowed (from the exact
 * double, so FP64 -> FP16 is rounded once); float -> integer truncates
 * toward zero and saturates (C leaves out-of-range undefined, ONNX does not
 * say); integer -> narrower integer wraps, as numpy's astype does.
 */
#include <inttypes.h>
#include <string.h>

#include "engine/ops/op_util.h"
#include "engine/ops/sym.h"

/* ONNX TensorProto.DataType numbers of the `to` attribute. */
static inferd_datatype datatype_from_onnx(int64_t t) {
  switch (t) {
  case 1: return INFERD_TYPE_FP32;
  case 2: return INFERD_TYPE_UINT8;
  case 3: return INFERD_TYPE_INT8;
  case 4: return INFERD_TYPE_UINT16;
  case 5: return INFERD_TYPE_INT16;
  case 6: return INFERD_TYPE_INT32;
  case 7: return INFERD_TYPE_INT64;
  case 9: return INFERD_TYPE_BOOL;
  case 10: return INFERD_TYPE_FP16;
  case 11: return INFERD_TYPE_FP64;
  case 12: return INFERD_TYPE_UINT32;
  case 13: return INFERD_TYPE_UINT64;
  case 16: return INFERD_TYPE_BF16;
  default: return INFERD_TYPE_INVALID; /* STRING, complex, float8 */
  }
}

static inferd_error *cast_target(const ir_graph *g, const ir_node *n, inferd_datatype *to) {
  const ir_attr *a = ir_node_attr(n, "to");
  if (!a || a->type != IR_ATTR_INT)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "attribute to (an ONNX data type number) is required");
  *to = datatype_from_onnx(a->i);
  if (*to == INFERD_TYPE_INVALID)
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "casting to ONNX data type %" PRId64 " is not supported",
                         a->i);
  return NULL;
}

inferd_error *op_infer_Cast(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  const ir_value *x = ops_input(g, n, 0);
  if (!inferd_datatype_size(x->dtype))
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "casting from %s is not supported",
                         inferd_datatype_name(x->dtype));
  inferd_datatype to;
  ERR_TRY(cast_target(g, n, &to));
  ops_set_output(g, n, 0, to, &x->shape);
  /* Shape arithmetic often passes through INT64 <-> INT32 casts. */
  ir_symint sym[IR_SYM_MAX];
  int count;
  if ((to == INFERD_TYPE_INT64 || to == INFERD_TYPE_INT32) && ops_dtype_is_int(x->dtype) &&
      ops_known_ints(g, n->inputs[0], sym, IR_SYM_MAX, &count)) {
    for (int i = 0; i < count; i++)
      if (to == INFERD_TYPE_INT32 && (sym[i].coef || sym[i].value < INT32_MIN || sym[i].value > INT32_MAX)) return NULL;
    ops_set_sym(g, n->outputs[0], sym, count);
  }
  return NULL;
}

static bool is_unsigned(inferd_datatype t) {
  return t == INFERD_TYPE_UINT8 || t == INFERD_TYPE_UINT16 || t == INFERD_TYPE_UINT32 || t == INFERD_TYPE_UINT64;
}

/* Integer (or BOOL) source element i into integer destination element j,
 * wrapping modulo the destination's width. */
static void store_int_bits(void *dst, inferd_datatype t, int64_t i, uint64_t bits) {
  switch (t) {
  case INFERD_TYPE_BOOL: ((uint8_t *)dst)[i] = bits != 0; break;
  case INFERD_TYPE_UINT8:
  case INFERD_TYPE_INT8: ((uint8_t *)dst)[i] = (uint8_t)bits; break;
  case INFERD_TYPE_UINT16:
  case INFERD_TYPE_INT16: ((uint16_t *)dst)[i] = (uint16_t)bits; break;
  case INFERD_TYPE_UINT32:
  case INFERD_TYPE_INT32: ((uint32_t *)dst)[i] = (uint32_t)bits; break;
  case INFERD_TYPE_UINT64:
  case INFERD_TYPE_INT64: ((uint64_t *)dst)[i] = bits; break;
  default: break;
  }
}

inferd_error *op_ref_Cast(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  const ir_tensor *x = &in[0];
  inferd_datatype to = out[0].dtype;
  (void)g, (void)n;
  int64_t count = ir_tensor_numel(x);
  if (to == x->dtype) {
    memcpy(out[0].data, x->data, (size_t)count * inferd_datatype_size(to));
    return NULL;
  }
  bool src_float = ops_dtype_is_float(x->dtype), dst_float = ops_dtype_is_float(to);
  for (int64_t i = 0; i < count; i++) {
    if (src_float) {
      /* Every float type is exact in double; one rounding to the target. */
      ops_store_f64(out[0].data, to, i, ops_load_f64(x->data, x->dtype, i));
    } else if (!dst_float) {
      store_int_bits(out[0].data, to, i, (uint64_t)ops_load_i64(x->data, x->dtype, i));
    } else if (to == INFERD_TYPE_FP32) {
      /* Integer -> float in one rounding, also past 2^53. */
      int64_t v = ops_load_i64(x->data, x->dtype, i);
      ((float *)out[0].data)[i] = is_unsigned(x->dtype) ? (float)(uint64_t)v : (float)v;
    } else {
      int64_t v = ops_load_i64(x->data, x->dtype, i);
      ops_store_f64(out[0].data, to, i, is_unsigned(x->dtype) ? (double)(uint64_t)v : (double)v);
    }
  }
  return NULL;
}
