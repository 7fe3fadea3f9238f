/*
 * Matrix products: Gemm (2-D, optional transposes, alpha/beta, C broadcast to
 * the result) and MatMul (numpy semantics: 1-D operands promoted and the
 * added dim removed again, leading batch dims broadcast). FP32.
 */
#include <inttypes.h>
#include <string.h>

#include "engine/ops/op_util.h"

static const inferd_datatype fp32_only[] = {INFERD_TYPE_FP32};

inferd_error *op_infer_Gemm(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  const ir_value *a = ops_input(g, n, 0), *b = ops_input(g, n, 1), *c = ops_input(g, n, 2);
  for (int i = 0; i < 3; i++) ERR_TRY(ops_check_dtype(g, n, i, fp32_only, 1));
  char sa[160], sb[160];
  if (a->shape.rank != 2 || b->shape.rank != 2)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "A %s and B %s must be 2-D",
                         ir_shape_str(&a->shape, sa, sizeof(sa)), ir_shape_str(&b->shape, sb, sizeof(sb)));
  int64_t trans_a = ir_node_attr_int(n, "transA", 0), trans_b = ir_node_attr_int(n, "transB", 0);
  if ((trans_a != 0 && trans_a != 1) || (trans_b != 0 && trans_b != 1))
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "transA and transB must be 0 or 1");
  ir_dim m = a->shape.dims[trans_a ? 1 : 0], k = a->shape.dims[trans_a ? 0 : 1];
  ir_dim kb = b->shape.dims[trans_b ? 1 : 0], nn = b->shape.dims[trans_b ? 0 : 1];
  if (k != kb)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "inner dimensions differ: A %s%s and B %s%s",
                         ir_shape_str(&a->shape, sa, sizeof(sa)), trans_a ? " (transposed)" : "",
                         ir_shape_str(&b->shape, sb, sizeof(sb)), trans_b ? " (transposed)" : "");
  ir_shape out = {.rank = 2, .dims = {m, nn}};
  if (c) {
    /* C broadcasts one way, to [M, N]. Before opset 7 that needed
     * broadcast=1; without it C had to be [M, N] already. */
    bool legacy_exact = g->opset < 7 && ir_node_attr_int(n, "broadcast", 0) == 0;
    bool ok = c->shape.rank <= 2;
    for (int i = 0; ok && i < c->shape.rank; i++) {
      ir_dim want = out.dims[2 - c->shape.rank + i];
      ok = c->shape.dims[i] == want || (!legacy_exact && c->shape.dims[i] == 1);
    }
    if (ok && legacy_exact) ok = c->shape.rank == 2;
    if (!ok)
      return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "C %s does not broadcast to the result %s",
                           ir_shape_str(&c->shape, sa, sizeof(sa)), ir_shape_str(&out, sb, sizeof(sb)));
  }
  ops_set_output(g, n, 0, INFERD_TYPE_FP32, &out);
  return NULL;
}

/* y[m x n] = sum_k a[i,k] b[k,j] with element strides for a and b, so the
 * transposes need no copies. The loop order keeps y's rows and, when b is
 * not transposed, b's rows unit-stride in the inner loop. */
static void matmul_strided(int64_t m, int64_t n, int64_t k, const float *a, int64_t a_row, int64_t a_col,
                           const float *b, int64_t b_row, int64_t b_col, float *y) {
  if (b_col == 1) {
    for (int64_t i = 0; i < m; i++) {
      float *yr = y + i * n;
      for (int64_t j = 0; j < n; j++) yr[j] = 0;
      for (int64_t p = 0; p < k; p++) {
        float av = a[i * a_row + p * a_col];
        const float *br = b + p * b_row;
        for (int64_t j = 0; j < n; j++) yr[j] += av * br[j];
      }
    }
    return;
  }
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      float sum = 0;
      for (int64_t p = 0; p < k; p++) sum += a[i * a_row + p * a_col] * b[p * b_row + j * b_col];
      y[i * n + j] = sum;
    }
}

inferd_error *op_ref_Gemm(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g;
  const ir_tensor *a = &in[0], *b = &in[1], *c = &in[2];
  bool ta = ir_node_attr_int(n, "transA", 0), tb = ir_node_attr_int(n, "transB", 0);
  float alpha = ir_node_attr_float(n, "alpha", 1.0f), beta = ir_node_attr_float(n, "beta", 1.0f);
  int64_t m = out[0].dims[0], nn = out[0].dims[1], k = ta ? a->dims[0] : a->dims[1];
  float *y = out[0].data;
  matmul_strided(m, nn, k, a->data, ta ? 1 : a->dims[1], ta ? a->dims[1] : 1, b->data, tb ? 1 : b->dims[1],
                 tb ? b->dims[1] : 1, y);
  int64_t cs[2] = {0, 0};
  const float *cd = ops_in_data(n, in, 2);
  if (cd) ops_broadcast_strides(c, 2, out[0].dims, cs);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < nn; j++) {
      float v = alpha * y[i * nn + j];
      if (cd) v += beta * cd[i * cs[0] + j * cs[1]];
      y[i * nn + j] = v;
    }
  return NULL;
}

/* MatMul's operands with 1-D ones promoted: a [K] -> [1,K], b [K] -> [K,1]. */
static void matmul_promote(const ir_shape *a, const ir_shape *b, ir_shape *pa, ir_shape *pb) {
  *pa = *a;
  *pb = *b;
  if (a->rank == 1) *pa = (ir_shape){.rank = 2, .dims = {1, a->dims[0]}};
  if (b->rank == 1) *pb = (ir_shape){.rank = 2, .dims = {b->dims[0], 1}};
}

inferd_error *op_infer_MatMul(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  const ir_value *a = ops_input(g, n, 0), *b = ops_input(g, n, 1);
  for (int i = 0; i < 2; i++) ERR_TRY(ops_check_dtype(g, n, i, fp32_only, 1));
  char sa[160], sb[160];
  if (a->shape.rank < 1 || b->shape.rank < 1)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "operands must have at least one dimension");
  ir_shape pa, pb;
  matmul_promote(&a->shape, &b->shape, &pa, &pb);
  if (pa.dims[pa.rank - 1] != pb.dims[pb.rank - 2])
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "inner dimensions of %s and %s differ",
                         ir_shape_str(&a->shape, sa, sizeof(sa)), ir_shape_str(&b->shape, sb, sizeof(sb)));
  ir_shape ba = {.rank = pa.rank - 2}, bb = {.rank = pb.rank - 2}, batch;
  memcpy(ba.dims, pa.dims, (size_t)ba.rank * sizeof(ir_dim));
  memcpy(bb.dims, pb.dims, (size_t)bb.rank * sizeof(ir_dim));
  ERR_TRY(ops_broadcast(g, n, &ba, &bb, &batch));
  ir_shape out = batch;
  if (a->shape.rank > 1) out.dims[out.rank++] = pa.dims[pa.rank - 2];
  if (b->shape.rank > 1) out.dims[out.rank++] = pb.dims[pb.rank - 1];
  if (out.rank > IR_MAX_RANK) return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "result rank too large");
  ops_set_output(g, n, 0, INFERD_TYPE_FP32, &out);
  return NULL;
}

inferd_error *op_ref_MatMul(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  (void)g;
  (void)n;
  /* Promote as the rule did, then view the batch dims as broadcast tensors. */
  ir_tensor a = in[0], b = in[1];
  if (a.rank == 1) a = (ir_tensor){.dtype = a.dtype, .rank = 2, .dims = {1, in[0].dims[0]}, .data = a.data};
  if (b.rank == 1) b = (ir_tensor){.dtype = b.dtype, .rank = 2, .dims = {in[1].dims[0], 1}, .data = b.data};
  int64_t m = a.dims[a.rank - 2], k = a.dims[a.rank - 1], nn = b.dims[b.rank - 1];
  ir_tensor a_batch = {.rank = a.rank - 2}, b_batch = {.rank = b.rank - 2};
  memcpy(a_batch.dims, a.dims, (size_t)a_batch.rank * sizeof(int64_t));
  memcpy(b_batch.dims, b.dims, (size_t)b_batch.rank * sizeof(int64_t));
  int rank = a_batch.rank > b_batch.rank ? a_batch.rank : b_batch.rank;
  int64_t dims[IR_MAX_RANK] = {0}, as[IR_MAX_RANK], bs[IR_MAX_RANK], total = 1;
  for (int i = 0; i < rank; i++) {
    int ia = i - (rank - a_batch.rank), ib = i - (rank - b_batch.rank);
    int64_t da = ia >= 0 ? a_batch.dims[ia] : 1, db = ib >= 0 ? b_batch.dims[ib] : 1;
    dims[i] = da == 1 ? db : da;
    total *= dims[i];
  }
  ops_broadcast_strides(&a_batch, rank, dims, as);
  ops_broadcast_strides(&b_batch, rank, dims, bs);
  const float *ad = a.data, *bd = b.data;
  float *y = out[0].data;
  int64_t idx[IR_MAX_RANK] = {0};
  for (int64_t t = 0; t < total; t++) {
    int64_t ao = 0, bo = 0;
    for (int i = 0; i < rank; i++) {
      ao += idx[i] * as[i];
      bo += idx[i] * bs[i];
    }
    matmul_strided(m, nn, k, ad + ao * m * k, k, 1, bd + bo * k * nn, nn, 1, y + t * m * nn);
    for (int i = rank - 1; i >= 0 && ++idx[i] == dims[i]; i--) idx[i] = 0;
  }
  return NULL;
}
