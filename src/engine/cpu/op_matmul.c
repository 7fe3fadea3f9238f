/*
 * Gemm and MatMul on oneDNN's matmul primitive. Constant right-hand sides
 * (fully connected layers) are reordered once into the layout the kernel
 * prefers; transposes are expressed as strides, never copied.
 */
#include <string.h>

#include "engine/cpu/cpu.h"

static void strided_md(int rank, const int64_t *dims, bool swap_last, dnnl_data_type_t type, dnnl_memory_desc_t *md) {
  /* dims are the logical [.., R, C]; with swap_last the data is stored as
   * [.., C, R]. */
  dnnl_dims_t d, s;
  for (int i = 0; i < rank; i++) d[i] = dims[i];
  int64_t rows = dims[rank - 2], cols = dims[rank - 1];
  int64_t stride = rows * cols;
  for (int i = rank - 3; i >= 0; i--) {
    s[i] = stride;
    stride *= dims[i];
  }
  if (swap_last) {
    s[rank - 2] = 1;
    s[rank - 1] = rows;
  } else {
    s[rank - 2] = cols;
    s[rank - 1] = 1;
  }
  dnnl_memory_desc_init_by_strides(md, rank, d, type, s);
}

static bool bias_as_row(const ir_graph *g, int c, int64_t n) {
  if (c < 0) return true;
  const ir_value *v = &g->values[c];
  if (v->kind != IR_VALUE_CONST || v->dtype != INFERD_TYPE_FP32) return false;
  const ir_shape *s = &v->shape;
  return (s->rank == 1 && s->dims[0] == n) || (s->rank == 2 && s->dims[0] == 1 && s->dims[1] == n);
}

static inferd_error *build_matmul(cpu_builder *b, const ir_node *n, bool try_bf16) {
  const ir_graph *g = b->g;
  int a = n->inputs[0], w = n->inputs[1], c = ir_node_input(n, 2), y = n->outputs[0];
  int ra = g->values[a].shape.rank, rw = g->values[w].shape.rank;
  if (g->values[a].dtype != INFERD_TYPE_FP32 || g->values[w].dtype != INFERD_TYPE_FP32 || ra < 2 || rw < 2)
    return cpu_build_ref(b, n);
  bool gemm = n->op == IR_OP_Gemm;
  bool trans_a = gemm && ir_node_attr_int(n, "transA", 0);
  bool trans_b = gemm && ir_node_attr_int(n, "transB", 0);
  if (gemm && (ir_node_attr_float(n, "alpha", 1.0f) != 1.0f || (c >= 0 && ir_node_attr_float(n, "beta", 1.0f) != 1.0f)))
    return cpu_build_ref(b, n);
  dnnl_dims_t yd, ad_raw, wd_raw;
  int rank = cpu_value_dims(b, y, yd);
  cpu_value_dims(b, a, ad_raw);
  cpu_value_dims(b, w, wd_raw);
  int64_t nn = yd[rank - 1];
  if (!bias_as_row(g, c, nn)) return cpu_build_ref(b, n);

  /* Logical dims, left-padded with 1s to the output's rank. */
  dnnl_dims_t ad, wd;
  for (int i = 0; i < rank; i++) {
    ad[i] = i < rank - ra ? 1 : ad_raw[i - (rank - ra)];
    wd[i] = i < rank - rw ? 1 : wd_raw[i - (rank - rw)];
  }
  if (trans_a) {
    int64_t t = ad[rank - 1];
    ad[rank - 1] = ad[rank - 2];
    ad[rank - 2] = t;
  }
  if (trans_b) {
    int64_t t = wd[rank - 1];
    wd[rank - 1] = wd[rank - 2];
    wd[rank - 2] = t;
  }
  bool w_const = g->values[w].kind == IR_VALUE_CONST;
  /* BF16 plans multiply by constant weights in bf16 (FP32 sums and output). */
  const bool bf16 = try_bf16 && w_const && b->plan->config.precision == INFERD_PRECISION_BF16 && cpu_has_bf16_dot();
  const dnnl_data_type_t in_type = bf16 ? dnnl_bf16 : dnnl_f32;
  dnnl_memory_desc_t a_md, w_src_md, w_md, bias_md, y_md;
  strided_md(rank, ad, trans_a, in_type, &a_md);
  strided_md(rank, wd, trans_b, dnnl_f32, &w_src_md);
  cpu_plain_md_dims(rank, yd, dnnl_f32, &y_md);
  if (w_const)
    dnnl_memory_desc_init_by_tag(&w_md, rank, w_src_md.dims, in_type, dnnl_format_tag_any);
  else
    w_md = w_src_md;
  dnnl_dims_t bias_dims;
  for (int i = 0; i < rank; i++) bias_dims[i] = 1;
  bias_dims[rank - 1] = nn;
  cpu_plain_md_dims(rank, bias_dims, dnnl_f32, &bias_md);

  dnnl_matmul_desc_t md_desc;
  DNNL_TRY(dnnl_matmul_desc_init(&md_desc, &a_md, &w_md, c >= 0 ? &bias_md : NULL, &y_md), "matmul descriptor");
  dnnl_primitive_desc_t pd;
  if (!cpu_pd_create(b, &md_desc, n, &pd)) return bf16 ? build_matmul(b, n, false) : cpu_build_ref(b, n);
  if (bf16 && strstr(cpu_pd_impl(pd), "ref")) {
    dnnl_primitive_desc_destroy(pd);
    return build_matmul(b, n, false);
  }
  w_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);

  int a_slot, w_slot = -1;
  dnnl_memory_t w_mem = NULL, b_mem = NULL;
  /* A bf16 source is a converted copy in a_md's layout; an FP32 one is the
   * plain slot a_md describes (transposed or not). */
  inferd_error *e = bf16 ? cpu_slot_in_layout(b, a, &a_md, &a_slot) : cpu_plain_slot(b, a, &a_slot);
  if (!e && w_const) e = cpu_weights_get(b, w, &w_src_md, &w_md, &w_mem);
  if (!e && !w_const) e = cpu_plain_slot(b, w, &w_slot);
  if (!e && c >= 0) e = cpu_weights_get(b, c, &bias_md, &bias_md, &b_mem);
  if (e) {
    dnnl_primitive_desc_destroy(pd);
    return e;
  }
  int out = cpu_slot_new(b, y, &y_md);
  cpu_step *s = cpu_step_new(b, CPU_STEP_PRIMITIVE,
                             bf16 ? (n->n_post_ops ? "matmul+act bf16" : "matmul bf16")
                                  : (n->n_post_ops ? "matmul+act" : "matmul"));
  cpu_step_arg(s, DNNL_ARG_SRC, a_slot, &a_md);
  if (w_const)
    s->args[s->n_args++] = (cpu_arg){.arg = DNNL_ARG_WEIGHTS, .slot = -1, .md = w_md, .memory = w_mem};
  else
    cpu_step_arg(s, DNNL_ARG_WEIGHTS, w_slot, &w_md);
  if (b_mem) s->args[s->n_args++] = (cpu_arg){.arg = DNNL_ARG_BIAS, .slot = -1, .md = bias_md, .memory = b_mem};
  cpu_step_arg(s, DNNL_ARG_DST, out, &y_md);
  cpu_slot_touch_last(b, a_slot);
  if (w_slot >= 0) cpu_slot_touch_last(b, w_slot);
  cpu_slot_touch_last(b, out);
  double macs = 1;
  for (int i = 0; i < rank; i++) macs *= (double)yd[i];
  s->gflop = 2.0 * macs * (double)ad[rank - 1] * 1e-9;
  b->value_slot[y] = b->value_plain_slot[y] = out;
  return cpu_step_set_primitive(s, pd);
}

inferd_error *cpu_build_matmul(cpu_builder *b, const ir_node *n) { return build_matmul(b, n, true); }
