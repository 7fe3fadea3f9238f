/* Pooling on oneDNN, in whatever layout the producer left the tensor. */
#include <string.h>

#include "engine/cpu/cpu.h"

inferd_error *cpu_build_pool(cpu_builder *b, const ir_node *n) {
  const ir_graph *g = b->g;
  int x = n->inputs[0], y = n->outputs[0];
  int rank = g->values[x].shape.rank;
  if (g->values[x].dtype != INFERD_TYPE_FP32 || rank < 3 || rank > 5 || n->n_outputs > 1 ||
      ir_node_attr_int(n, "storage_order", 0) != 0)
    return cpu_build_ref(b, n);
  int spatial = rank - 2;
  dnnl_dims_t xd, yd;
  cpu_value_dims(b, x, xd);
  cpu_value_dims(b, y, yd);
  dnnl_dims_t kernel, strides, dil, dil_dnnl, pl, pr;
  bool global = n->op == IR_OP_GlobalAveragePool || n->op == IR_OP_GlobalMaxPool;
  int cnt;
  const int64_t *k_attr = ir_node_attr_ints(n, "kernel_shape", &cnt);
  const int64_t *s_attr = ir_node_attr_ints(n, "strides", &cnt);
  const int64_t *d_attr = ir_node_attr_ints(n, "dilations", &cnt);
  for (int i = 0; i < spatial; i++) {
    kernel[i] = global ? xd[2 + i] : (k_attr ? k_attr[i] : 1);
    strides[i] = (!global && s_attr) ? s_attr[i] : 1;
    dil[i] = (!global && d_attr) ? d_attr[i] : 1;
    dil_dnnl[i] = dil[i] - 1;
  }
  if (global) {
    for (int i = 0; i < spatial; i++) pl[i] = pr[i] = 0;
  } else {
    cpu_node_pads(b, n, spatial, kernel, strides, dil, pl, pr);
  }
  dnnl_alg_kind_t alg;
  if (n->op == IR_OP_MaxPool || n->op == IR_OP_GlobalMaxPool)
    alg = dnnl_pooling_max;
  else
    alg = ir_node_attr_int(n, "count_include_pad", 0) ? dnnl_pooling_avg_include_padding
                                                       : dnnl_pooling_avg_exclude_padding;
  /* With ceil_mode the last window may hang past the right pad; oneDNN
   * counts it as padding, which for an average that includes padding
   * differs from ONNX (which never counts the overhang). */
  for (int i = 0; i < spatial; i++) {
    int64_t declared = 0;
    int n_pads;
    const int64_t *pads = ir_node_attr_ints(n, "pads", &n_pads);
    if (pads && n_pads == 2 * spatial) declared = pads[spatial + i];
    if (alg == dnnl_pooling_avg_include_padding && pr[i] > declared) return cpu_build_ref(b, n);
  }

  int x_slot;
  ERR_TRY(cpu_value_slot(b, x, &x_slot));
  dnnl_memory_desc_t src_md = b->p->slots[x_slot].md, dst_any;
  /* A bf16 source (its producer knew only convolutions read this pooling's
   * output) pools to bf16: the maximum is exact in any type. */
  /* So does a u8 source (the INT8 form its producer wrote for the
   * convolutions after this pooling), at the same scale. */
  const bool u8 = src_md.data_type == dnnl_u8 && alg == dnnl_pooling_max && g->values[x].dtype == INFERD_TYPE_FP32;
  const bool bf16 = src_md.data_type == dnnl_bf16 && alg == dnnl_pooling_max;
  const bool bf16_mean = src_md.data_type == dnnl_bf16 && global && alg != dnnl_pooling_max;
  if (src_md.data_type != dnnl_f32 && !bf16 && !bf16_mean && !u8) {
    int plain;
    ERR_TRY(cpu_plain_slot(b, x, &plain));
    x_slot = plain;
    src_md = b->p->slots[plain].md;
  }
  dnnl_memory_desc_init_by_tag(&dst_any, rank, yd, bf16 ? dnnl_bf16 : u8 ? dnnl_u8 : dnnl_f32, dnnl_format_tag_any);
  dnnl_pooling_v2_desc_t pdesc;
  DNNL_TRY(dnnl_pooling_v2_forward_desc_init(&pdesc, dnnl_forward_inference, alg, &src_md, &dst_any, strides, kernel,
                                             dil_dnnl, pl, pr),
           "pooling descriptor");
  dnnl_primitive_desc_t pd;
  if (!cpu_pd_create(b, &pdesc, NULL, &pd)) {
    if (!bf16_mean) return cpu_build_ref(b, n);
    /* No kernel averages bf16 into FP32 here: from an FP32 copy. */
    int plain;
    ERR_TRY(cpu_plain_slot(b, x, &plain));
    x_slot = plain;
    src_md = b->p->slots[plain].md;
    DNNL_TRY(dnnl_pooling_v2_forward_desc_init(&pdesc, dnnl_forward_inference, alg, &src_md, &dst_any, strides, kernel,
                                               dil_dnnl, pl, pr),
             "pooling descriptor");
    if (!cpu_pd_create(b, &pdesc, NULL, &pd)) return cpu_build_ref(b, n);
  }
  dnnl_memory_desc_t dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
  int out = cpu_slot_new(b, y, &dst_md);
  cpu_step *s = cpu_step_new(b, CPU_STEP_PRIMITIVE, alg == dnnl_pooling_max ? "maxpool" : "avgpool");
  cpu_step_arg(s, DNNL_ARG_SRC, x_slot, &src_md);
  cpu_step_arg(s, DNNL_ARG_DST, out, &dst_md);
  cpu_slot_touch_last(b, x_slot);
  cpu_slot_touch_last(b, out);
  b->value_slot[y] = out;
  if (u8) b->value_lowp_slot[y] = out;
  else if (cpu_md_is_plain(&dst_md) && !bf16) b->value_plain_slot[y] = out;
  return cpu_step_set_primitive(s, pd);
}
