#include "engine/ops/op_util.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

void ops_set_output(ir_graph *g, const ir_node *n, int k, inferd_datatype dtype, const ir_shape *shape) {
  if (!ops_has_output(n, k)) return;
  ir_value *v = &g->values[n->outputs[k]];
  v->dtype = dtype;
  v->shape = *shape;
  v->has_shape = true;
  v->sym = NULL;
  v->sym_len = 0;
}

inferd_error *ops_axis(const ir_graph *g, const ir_node *n, int64_t axis, int rank, bool inclusive, const char *what,
                       int *out) {
  int64_t hi = inclusive ? rank : rank - 1;
  if (axis < -(int64_t)rank || axis > hi)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "%s %" PRId64 " is out of range [%d, %" PRId64 "]", what, axis,
                         -rank, hi);
  *out = (int)(axis < 0 ? axis + rank : axis);
  return NULL;
}

inferd_error *ops_check_dtype(const ir_graph *g, const ir_node *n, int input, const inferd_datatype *allowed,
                              int count) {
  const ir_value *v = ops_input(g, n, input);
  if (!v) return NULL;
  for (int i = 0; i < count; i++)
    if (v->dtype == allowed[i]) return NULL;
  char list[256] = "";
  for (int i = 0; i < count; i++) {
    if (i) strncat(list, ", ", sizeof(list) - strlen(list) - 1);
    strncat(list, inferd_datatype_name(allowed[i]), sizeof(list) - strlen(list) - 1);
  }
  return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "input %d '%s' has type %s; supported: %s", input, v->name,
                       inferd_datatype_name(v->dtype), list);
}

inferd_error *ops_check_fixed_size(const ir_graph *g, const ir_node *n, int input) {
  const ir_value *x = ops_input(g, n, input);
  if (x && !ir_dtype_size(x->dtype))
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "input '%s' has type %s, which the engine does not run",
                         x->name, inferd_datatype_name(x->dtype));
  return NULL;
}

inferd_error *ops_check_same_dtype(const ir_graph *g, const ir_node *n, int i, int j) {
  const ir_value *a = ops_input(g, n, i), *b = ops_input(g, n, j);
  if (!a || !b || a->dtype == b->dtype) return NULL;
  return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "inputs '%s' (%s) and '%s' (%s) must have the same type",
                       a->name, inferd_datatype_name(a->dtype), b->name, inferd_datatype_name(b->dtype));
}

bool ops_dtype_is_int(inferd_datatype t) {
  switch (t) {
  case INFERD_TYPE_UINT8:
  case INFERD_TYPE_UINT16:
  case INFERD_TYPE_UINT32:
  case INFERD_TYPE_UINT64:
  case INFERD_TYPE_INT8:
  case INFERD_TYPE_INT16:
  case INFERD_TYPE_INT32:
  case INFERD_TYPE_INT64: return true;
  default: return false;
  }
}

bool ops_dtype_is_float(inferd_datatype t) {
  return t == INFERD_TYPE_FP16 || t == INFERD_TYPE_BF16 || t == INFERD_TYPE_FP32 || t == INFERD_TYPE_FP64;
}

bool ops_dim_mul(ir_dim a, ir_dim b, ir_dim *out) {
  if (a < 0 && b < 0) return false;
  int64_t m;
  int64_t ua = a < 0 ? -a : a, ub = b < 0 ? -b : b;
  if (__builtin_mul_overflow(ua, ub, &m)) return false;
  /* 0 times kN is 0 whatever N is, so the result is static then. */
  *out = (a < 0 || b < 0) && m != 0 ? -m : m;
  return true;
}

bool ops_dims_product(const ir_shape *s, int from, int to, ir_dim *out) {
  ir_dim p = 1;
  for (int i = from; i < to; i++)
    if (!ops_dim_mul(p, s->dims[i], &p)) return false;
  *out = p;
  return true;
}

inferd_error *ops_broadcast(const ir_graph *g, const ir_node *n, const ir_shape *a, const ir_shape *b, ir_shape *out) {
  int rank = a->rank > b->rank ? a->rank : b->rank;
  ir_shape r = {.rank = rank};
  for (int i = 0; i < rank; i++) {
    int ia = i - (rank - a->rank), ib = i - (rank - b->rank);
    ir_dim da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
    if (da == db || db == 1)
      r.dims[i] = da;
    else if (da == 1)
      r.dims[i] = db;
    else {
      char sa[160], sb[160];
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "shapes %s and %s cannot be broadcast together",
                           ir_shape_str(a, sa, sizeof(sa)), ir_shape_str(b, sb, sizeof(sb)));
    }
  }
  *out = r;
  return NULL;
}

inferd_error *ops_attr_ints(const ir_graph *g, const ir_node *n, const char *name, int count, int64_t fallback,
                            int64_t *out) {
  int len;
  const int64_t *v = ir_node_attr_ints(n, name, &len);
  if (!v) {
    if (ir_node_attr(n, name))
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "attribute %s must be a list of integers", name);
    for (int i = 0; i < count; i++) out[i] = fallback;
    return NULL;
  }
  if (len != count)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "attribute %s has %d values, expected %d", name, len, count);
  memcpy(out, v, (size_t)count * sizeof(int64_t));
  return NULL;
}

inferd_error *ops_window_init(const ir_graph *g, const ir_node *n, int nspatial, const int64_t *in,
                              const int64_t *kernel, bool ceil_mode, ops_window *w) {
  *w = (ops_window){.n = nspatial};
  int64_t pads[2 * IR_MAX_RANK];
  ERR_TRY(ops_attr_ints(g, n, "strides", nspatial, 1, w->stride));
  ERR_TRY(ops_attr_ints(g, n, "dilations", nspatial, 1, w->dilation));
  ERR_TRY(ops_attr_ints(g, n, "pads", 2 * nspatial, 0, pads));
  const char *auto_pad = ir_node_attr_string(n, "auto_pad", "NOTSET");
  bool same_upper = strcmp(auto_pad, "SAME_UPPER") == 0, same_lower = strcmp(auto_pad, "SAME_LOWER") == 0;
  bool valid = strcmp(auto_pad, "VALID") == 0;
  if (!same_upper && !same_lower && !valid && strcmp(auto_pad, "NOTSET") != 0)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG,
                         "auto_pad '%s' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID", auto_pad);
  for (int i = 0; i < nspatial; i++) {
    w->in[i] = in[i];
    w->kernel[i] = kernel[i];
    if (kernel[i] < 1)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "kernel extent %" PRId64 " along spatial dim %d", kernel[i],
                           i);
    if (w->stride[i] < 1)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "stride %" PRId64 " must be positive", w->stride[i]);
    if (w->dilation[i] < 1)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "dilation %" PRId64 " must be positive", w->dilation[i]);
    if (pads[i] < 0 || pads[i + nspatial] < 0)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "pads must not be negative");
    if (kernel[i] > INT32_MAX || w->dilation[i] > INT32_MAX || w->stride[i] > INT32_MAX || pads[i] > INT32_MAX ||
        pads[i + nspatial] > INT32_MAX)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "window attributes out of range");
    int64_t extent = (kernel[i] - 1) * w->dilation[i] + 1;
    if (same_upper || same_lower) {
      /* SAME keeps ceil(in / stride) outputs and pads just enough for the
       * last window; an odd total goes at the end (UPPER) or start (LOWER). */
      w->out[i] = (in[i] + w->stride[i] - 1) / w->stride[i];
      int64_t total = (w->out[i] - 1) * w->stride[i] + extent - in[i];
      if (total < 0) total = 0;
      w->pad_begin[i] = same_upper ? total / 2 : total - total / 2;
      w->pad_end[i] = total - w->pad_begin[i];
      continue;
    }
    w->pad_begin[i] = valid ? 0 : pads[i];
    w->pad_end[i] = valid ? 0 : pads[i + nspatial];
    int64_t span = in[i] + w->pad_begin[i] + w->pad_end[i] - extent;
    if (span < 0)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG,
                           "window extent %" PRId64 " is larger than the padded input (%" PRId64
                           ") along spatial dim %d",
                           extent, in[i] + w->pad_begin[i] + w->pad_end[i], i);
    if (ceil_mode) {
      w->out[i] = (span + w->stride[i] - 1) / w->stride[i] + 1;
      /* A window must start inside the input or its leading padding. */
      if ((w->out[i] - 1) * w->stride[i] >= in[i] + w->pad_begin[i]) w->out[i]--;
    } else {
      w->out[i] = span / w->stride[i] + 1;
    }
  }
  return NULL;
}

void ops_window_pad3(const ops_window *w, ops_window3 *c) {
  int shift = 3 - w->n;
  for (int i = 0; i < 3; i++) {
    int j = i - shift;
    c->in[i] = j >= 0 ? w->in[j] : 1;
    c->out[i] = j >= 0 ? w->out[j] : 1;
    c->k[i] = j >= 0 ? w->kernel[j] : 1;
    c->s[i] = j >= 0 ? w->stride[j] : 1;
    c->d[i] = j >= 0 ? w->dilation[j] : 1;
    c->p[i] = j >= 0 ? w->pad_begin[j] : 0;
    c->p_end[i] = j >= 0 ? w->pad_end[j] : 0;
  }
}

void ops_valid_range(int64_t offset, int64_t stride, int64_t in, int64_t out, int64_t *lo, int64_t *hi) {
  int64_t first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  int64_t last = in - 1 - offset < 0 ? -1 : (in - 1 - offset) / stride;
  *lo = first < out ? first : out;
  *hi = last + 1 < out ? last + 1 : out;
  if (*hi < *lo) *hi = *lo;
}

void ops_strides(int rank, const int64_t *dims, int64_t *strides) {
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; i--) {
    strides[i] = s;
    s *= dims[i];
  }
}

void ops_broadcast_strides(const ir_tensor *t, int out_rank, const int64_t *out_dims, int64_t *strides) {
  int64_t own[IR_MAX_RANK];
  ops_strides(t->rank, t->dims, own);
  for (int i = 0; i < out_rank; i++) {
    int k = i - (out_rank - t->rank);
    strides[i] = (k < 0 || (t->dims[k] == 1 && out_dims[i] != 1)) ? 0 : own[k];
  }
}

double ops_load_f64(const void *data, inferd_datatype t, int64_t i) {
  switch (t) {
  case INFERD_TYPE_BOOL: return ((const uint8_t *)data)[i] != 0;
  case INFERD_TYPE_UINT8: return ((const uint8_t *)data)[i];
  case INFERD_TYPE_UINT16: return ((const uint16_t *)data)[i];
  case INFERD_TYPE_UINT32: return ((const uint32_t *)data)[i];
  case INFERD_TYPE_UINT64: return (double)((const uint64_t *)data)[i];
  case INFERD_TYPE_INT8: return ((const int8_t *)data)[i];
  case INFERD_TYPE_INT16: return ((const int16_t *)data)[i];
  case INFERD_TYPE_INT32: return ((const int32_t *)data)[i];
  case INFERD_TYPE_INT64: return (double)((const int64_t *)data)[i];
  case INFERD_TYPE_FP16: return f16_to_f32(((const uint16_t *)data)[i]);
  case INFERD_TYPE_BF16: return bf16_to_f32(((const uint16_t *)data)[i]);
  case INFERD_TYPE_FP32: return ((const float *)data)[i];
  case INFERD_TYPE_FP64: return ((const double *)data)[i];
  default: return 0;
  }
}

int64_t ops_load_i64(const void *data, inferd_datatype t, int64_t i) {
  switch (t) {
  case INFERD_TYPE_BOOL: return ((const uint8_t *)data)[i] != 0;
  case INFERD_TYPE_UINT8: return ((const uint8_t *)data)[i];
  case INFERD_TYPE_UINT16: return ((const uint16_t *)data)[i];
  case INFERD_TYPE_UINT32: return ((const uint32_t *)data)[i];
  case INFERD_TYPE_UINT64: return (int64_t)((const uint64_t *)data)[i];
  case INFERD_TYPE_INT8: return ((const int8_t *)data)[i];
  case INFERD_TYPE_INT16: return ((const int16_t *)data)[i];
  case INFERD_TYPE_INT32: return ((const int32_t *)data)[i];
  case INFERD_TYPE_INT64: return ((const int64_t *)data)[i];
  default: {
    double d = ops_load_f64(data, t, i);
    if (!(d == d)) return 0;
    if (d >= 9.2233720368547758e18) return INT64_MAX;
    if (d <= -9.2233720368547758e18) return INT64_MIN;
    return (int64_t)d;
  }
  }
}

/* Saturating float -> integer conversion in [lo, hi]; C leaves the
 * out-of-range case undefined. */
static double clamp_trunc(double v, double lo, double hi) {
  if (v != v) return 0;
  v = trunc(v);
  return v < lo ? lo : v > hi ? hi : v;
}

void ops_store_f64(void *data, inferd_datatype t, int64_t i, double v) {
  switch (t) {
  case INFERD_TYPE_BOOL: ((uint8_t *)data)[i] = v != 0; break;
  case INFERD_TYPE_UINT8: ((uint8_t *)data)[i] = (uint8_t)clamp_trunc(v, 0, UINT8_MAX); break;
  case INFERD_TYPE_UINT16: ((uint16_t *)data)[i] = (uint16_t)clamp_trunc(v, 0, UINT16_MAX); break;
  case INFERD_TYPE_UINT32: ((uint32_t *)data)[i] = (uint32_t)clamp_trunc(v, 0, UINT32_MAX); break;
  case INFERD_TYPE_UINT64: {
    double c = clamp_trunc(v, 0, 18446744073709551615.0);
    ((uint64_t *)data)[i] = c >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)c;
    break;
  }
  case INFERD_TYPE_INT8: ((int8_t *)data)[i] = (int8_t)clamp_trunc(v, INT8_MIN, INT8_MAX); break;
  case INFERD_TYPE_INT16: ((int16_t *)data)[i] = (int16_t)clamp_trunc(v, INT16_MIN, INT16_MAX); break;
  case INFERD_TYPE_INT32: ((int32_t *)data)[i] = (int32_t)clamp_trunc(v, INT32_MIN, INT32_MAX); break;
  case INFERD_TYPE_INT64: {
    double c = clamp_trunc(v, -9223372036854775808.0, 9223372036854775808.0);
    ((int64_t *)data)[i] = c >= 9223372036854775808.0 ? INT64_MAX : (int64_t)c;
    break;
  }
  case INFERD_TYPE_FP16: ((uint16_t *)data)[i] = f16_from_f64(v); break;
  case INFERD_TYPE_BF16: ((uint16_t *)data)[i] = bf16_from_f64(v); break;
  case INFERD_TYPE_FP32: ((float *)data)[i] = (float)v; break;
  case INFERD_TYPE_FP64: ((double *)data)[i] = v; break;
  default: break;
  }
}

/* The inner loop of ops_copy_strided for one element size. */
#define COPY_ROW(T)                                                                                                    \
  do {                                                                                                                 \
    const T *s = (const T *)src + off;                                                                                 \
    T *d = (T *)out;                                                                                                   \
    for (int64_t i = 0; i < inner; i++) d[i] = s[i * step];                                                            \
  } while (0)

void ops_copy_strided(void *dst, const void *src, int rank, const int64_t *dims, const int64_t *src_strides,
                      size_t esize) {
  int64_t total = 1;
  for (int i = 0; i < rank; i++) total *= dims[i];
  if (total == 0) return;
  if (rank == 0) {
    memcpy(dst, src, esize);
    return;
  }
  int64_t inner = dims[rank - 1], step = src_strides[rank - 1];
  int64_t idx[IR_MAX_RANK] = {0};
  char *out = dst;
  for (int64_t row = 0; row < total / inner; row++) {
    int64_t off = 0;
    for (int i = 0; i < rank - 1; i++) off += idx[i] * src_strides[i];
    if (step == 1) {
      memcpy(out, (const char *)src + off * (int64_t)esize, (size_t)inner * esize);
    } else {
      switch (esize) {
      case 1: COPY_ROW(uint8_t); break;
      case 2: COPY_ROW(uint16_t); break;
      case 4: COPY_ROW(uint32_t); break;
      case 8: COPY_ROW(uint64_t); break;
      default:
        for (int64_t i = 0; i < inner; i++)
          memcpy(out + i * (int64_t)esize, (const char *)src + (off + i * step) * (int64_t)esize, esize);
      }
    }
    out += inner * (int64_t)esize;
    for (int i = rank - 2; i >= 0 && ++idx[i] == dims[i]; i--) idx[i] = 0;
  }
}

