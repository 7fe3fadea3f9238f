/*
 * Convolution on oneDNN, with the node's fused bias, activations and
 * residual sum as post-ops. Layouts are oneDNN's choice ("any"): the source
 * is reordered only when the producer's layout differs from the one the
 * fastest kernel wants, and the weights are reordered once per plan.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "engine/cpu/cpu.h"
#include "engine/quant/calibration.h"

void cpu_node_pads(const cpu_builder *b, const ir_node *node, int spatial, const int64_t *kernel,
                   const int64_t *strides, const int64_t *dilations, int64_t *pad_l, int64_t *pad_r) {
  int n_pads;
  const int64_t *pads = ir_node_attr_ints(node, "pads", &n_pads);
  const char *auto_pad = ir_node_attr_string(node, "auto_pad", "NOTSET");
  dnnl_dims_t in, out;
  cpu_value_dims(b, node->inputs[0], in);
  cpu_value_dims(b, node->outputs[0], out);
  for (int i = 0; i < spatial; i++) {
    pad_l[i] = pad_r[i] = 0;
    if (strcmp(auto_pad, "SAME_UPPER") == 0 || strcmp(auto_pad, "SAME_LOWER") == 0) {
      int64_t extent = (kernel[i] - 1) * dilations[i] + 1;
      int64_t total = (out[2 + i] - 1) * strides[i] + extent - in[2 + i];
      if (total < 0) total = 0;
      int64_t small = total / 2, big = total - small;
      pad_l[i] = strcmp(auto_pad, "SAME_UPPER") == 0 ? small : big;
      pad_r[i] = total - pad_l[i];
    } else if (strcmp(auto_pad, "VALID") != 0 && pads && n_pads == 2 * spatial) {
      pad_l[i] = pads[i];
      pad_r[i] = pads[spatial + i];
    }
    /* oneDNN derives nothing: the right pad must make the output size it is
     * given exact (ceil_mode and SAME leave a remainder the kernel skips). */
    int64_t extent = (kernel[i] - 1) * dilations[i] + 1;
    int64_t need = (out[2 + i] - 1) * strides[i] + extent - in[2 + i] - pad_l[i];
    pad_r[i] = need;
  }
}

static bool conv_pd(cpu_builder *b, const ir_node *n, const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *w,
                    const dnnl_memory_desc_t *bias, const dnnl_memory_desc_t *dst, const int64_t *strides,
                    const int64_t *dil, const int64_t *pl, const int64_t *pr, dnnl_primitive_desc_t *pd) {
  dnnl_convolution_desc_t cd;
  if (dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_auto, src, w, bias,
                                                 dst, strides, dil, pl, pr) != dnnl_success)
    return false;
  return cpu_pd_create(b, &cd, n, pd);
}

static bool impl_is_reference(const_dnnl_primitive_desc_t pd) { return strstr(cpu_pd_impl(pd), "ref") != NULL; }

/* A reduced-precision form is worth having only on a real kernel: drops
 * *pd (and says false) when oneDNN gave its reference one. */
static bool lowp_kernel_is_real(dnnl_primitive_desc_t *pd) {
  if (!impl_is_reference(*pd)) return true;
  dnnl_primitive_desc_destroy(*pd);
  *pd = NULL;
  return false;
}

/* Whether value v is never negative: the output of a ReLU (alone or as the
 * last post-op of a fused node), or of pooling, padding-free reshaping or
 * concatenation of such values. */
static bool nonnegative(const ir_graph *g, int v, int depth) {
  if (v < 0 || depth > 16) return false;
  const int p = g->values[v].producer;
  if (p < 0) return false;
  const ir_node *n = &g->nodes[p];
  if (n->n_post_ops > 0) {
    const ir_post_op *last = &n->post_ops[n->n_post_ops - 1];
    if (last->kind == IR_POST_ELTWISE &&
        ((last->alg == IR_ELTWISE_RELU && last->alpha == 0) ||
         (last->alg == IR_ELTWISE_CLIP && last->alpha >= 0) || last->alg == IR_ELTWISE_SIGMOID ||
         last->alg == IR_ELTWISE_HARD_SIGMOID))
      return true;
    if (last->kind == IR_POST_ELTWISE) return false;
  }
  switch (n->op) {
    case IR_OP_Relu: return true;
    case IR_OP_MaxPool:
    case IR_OP_AveragePool:
    case IR_OP_GlobalAveragePool:
    case IR_OP_GlobalMaxPool:
    case IR_OP_Reshape:
    case IR_OP_Flatten: return n->n_post_ops == 0 && nonnegative(g, n->inputs[0], depth + 1);
    default: return false;
  }
}

/* Whether the INT8 plan keeps node n in FP32: its name is in the
 * comma-separated list, or the list says "first" and n reads a graph
 * input. */
static bool kept_in_fp32(const char *list, const ir_graph *g, const ir_node *n) {
  for (const char *p = list; p && *p;) {
    const char *end = strchr(p, ',');
    const size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == 5 && strncmp(p, "first", 5) == 0) {
      for (int i = 0; i < g->n_inputs; i++)
        if (g->inputs[i] == n->inputs[0]) return true;
    } else if (n->name && strlen(n->name) == len && strncmp(p, n->name, len) == 0) {
      return true;
    }
    p = end ? end + 1 : p + len;
  }
  return false;
}

/* A convolution in reduced precision (INT8 or BF16), as its builder made
 * it: *pd stays NULL, and the caller builds the FP32 form, when the layer
 * cannot run so (no threshold, or only oneDNN's reference kernel). */
typedef struct lowp_conv {
  dnnl_primitive_desc_t pd;
  int src_slot;
  dnnl_memory_t w_mem, b_mem;
  dnnl_memory_desc_t bias_md;
  bool lowp_out; /* the output is u8 at its consumers' scale, or bf16 */
} lowp_conv;

/* The calibrated threshold of value v: its own, or, for a value read only
 * by max poolings (the stem's output, which no convolution reads), their
 * output's, which is the same range; a max pooling's output whose input
 * has one takes its input's, so the u8 form passes through it unchanged.
 * Negative when there is none. */
static double int8_threshold(const cpu_builder *b, int v, int depth) {
  const ir_graph *g = b->g;
  const calib_cache *cal = b->plan->config.calibration;
  if (!cal || depth > 4) return -1;
  const int p = g->values[v].producer;
  if (p >= 0 && g->nodes[p].op == IR_OP_MaxPool && g->nodes[p].n_post_ops == 0) {
    const double t = int8_threshold(b, g->nodes[p].inputs[0], depth + 1);
    if (t >= 0) return t;
  }
  const double own = calib_cache_find(cal, g->values[v].name);
  if (own >= 0 || g->values[v].is_output) return own;
  double pooled = -1;
  for (int i = 0; i < g->n_nodes; i++) {
    const ir_node *c = &g->nodes[i];
    if (c->dead) continue;
    for (int k = 0; k < c->n_inputs; k++) {
      if (c->inputs[k] != v) continue;
      if (c->op != IR_OP_MaxPool || k != 0 || c->n_post_ops != 0) return -1;
      const double t = calib_cache_find(cal, g->values[c->outputs[0]].name);
      if (t < 0 || (pooled >= 0 && t != pooled)) return -1;
      pooled = t;
    }
  }
  return pooled;
}

/* The INT8 quantization of the input x of a convolution: false when the
 * calibration has no threshold for it; else u8 (cannot be negative) or s8,
 * and the multiplier from real values to integers. u8 uses its whole range
 * only where the products are summed in 32 bits; s8 sources oneDNN shifts
 * to u8 itself, halving the weights. */
static bool int8_input(const cpu_builder *b, int x, bool *is_unsigned, float *scale) {
  const double threshold = int8_threshold(b, x, 0);
  if (threshold < 0) return false;
  *is_unsigned = nonnegative(b->g, x, 0);
  const double levels = *is_unsigned && cpu_has_int8_dot() ? 255.0 : 127.0;
  *scale = threshold > 0 ? (float)(levels / threshold) : 1.0f;
  return true;
}

/* Whether an INT8 plan may keep value y as u8 (at int8_input's scale): y
 * cannot be negative, is no graph output, and only INT8 convolutions (none
 * kept in FP32) read it, as their input or their residual sum, or max
 * poolings whose outputs are such values. */
static bool u8_value(const cpu_builder *b, int y, int depth) {
  const ir_graph *g = b->g;
  bool is_unsigned;
  float scale;
  if (depth > 3 || g->values[y].is_output || g->values[y].shape.rank != 4 || !int8_input(b, y, &is_unsigned, &scale) ||
      !is_unsigned)
    return false;
  int readers = 0;
  for (int i = 0; i < g->n_nodes; i++) {
    const ir_node *c = &g->nodes[i];
    if (c->dead) continue;
    for (int k = 0; k < c->n_inputs; k++) {
      if (c->inputs[k] != y) continue;
      const bool conv = c->op == IR_OP_Conv && (k == 0 || k == c->sum_input) && g->values[c->inputs[1]].data &&
                        !kept_in_fp32(b->plan->config.int8_keep, g, c);
      const bool pool = c->op == IR_OP_MaxPool && k == 0 && c->n_outputs == 1 && c->n_post_ops == 0 &&
                        u8_value(b, c->outputs[0], depth + 1);
      if (!conv && !pool) return false;
      readers++;
    }
  }
  return readers > 0;
}

/* Whether convolution n may write its output as u8 for its consumers
 * (u8_value); a residual n adds itself must be a tensor that has a u8 form
 * too (it is summed from that). */
static bool int8_output(const cpu_builder *b, const ir_node *n) {
  bool is_unsigned;
  float scale;
  if (!u8_value(b, n->outputs[0], 0)) return false;
  return n->sum_input < 0 || (int8_input(b, n->inputs[n->sum_input], &is_unsigned, &scale) && is_unsigned);
}

/* The INT8 form of a convolution whose input has a calibrated threshold:
 * the input quantized per tensor (u8 when it cannot be negative, else s8),
 * weights per output channel (s8, symmetric), the bias and the output
 * (FP32, in the layout the fp32 form would give) rescaled by the products
 * of the two scales, the node's post-ops after. */
static inferd_error *conv_int8(cpu_builder *b, const ir_node *n, const dnnl_memory_desc_t *w_plain, int wrank,
                               const dnnl_memory_desc_t *dst_want, const int64_t *strides, const int64_t *dil,
                               const int64_t *pl, const int64_t *pr, lowp_conv *out) {
  const ir_graph *g = b->g;
  *out = (lowp_conv){.pd = NULL, .src_slot = -1};
  const int x = n->inputs[0], w = n->inputs[1], bias = ir_node_input(n, 2);
  bool is_unsigned, out_unsigned;
  float sx, sy = 1.0f;
  if (!g->values[w].data || kept_in_fp32(b->plan->config.int8_keep, g, n) || !int8_input(b, x, &is_unsigned, &sx))
    return NULL;
  out->lowp_out = int8_output(b, n) && int8_input(b, n->outputs[0], &out_unsigned, &sy);
  /* A u8 output sums a u8 residual, scaled back to real values first. */
  float sum_scale = 1.0f;
  const int sum = n->sum_input >= 0 ? n->inputs[n->sum_input] : -1;
  if (out->lowp_out && sum >= 0) {
    bool sum_unsigned;
    float ss;
    int8_input(b, sum, &sum_unsigned, &ss);
    sum_scale = 1.0f / ss;
  }

  dnnl_dims_t xd, yd, wd;
  cpu_value_dims(b, x, xd);
  cpu_value_dims(b, n->outputs[0], yd);
  const int rank = cpu_value_dims(b, w, wd);
  const int64_t oc = wd[0];
  size_t per_oc = 1;
  for (int i = 1; i < rank; i++) per_oc *= (size_t)wd[i];
  const float *wf = g->values[w].data;
  const float *bf = bias >= 0 ? g->values[bias].data : NULL;
  if (bias >= 0 && !bf) return NULL;
  int8_t *wq = mem_alloc((size_t)oc * per_oc + 1);
  float *scales = mem_alloc((size_t)oc * sizeof(float));
  float *bq = mem_alloc((size_t)oc * sizeof(float));
  for (int64_t o = 0; o < oc; o++) {
    float m = 0;
    for (size_t i = 0; i < per_oc; i++) m = fmaxf(m, fabsf(wf[(size_t)o * per_oc + i]));
    const float sw = m > 0 ? 127.0f / m : 1.0f;
    for (size_t i = 0; i < per_oc; i++) {
      float q = nearbyintf(wf[(size_t)o * per_oc + i] * sw);
      wq[(size_t)o * per_oc + i] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
    }
    /* oneDNN adds the bias to the integer sums before the output scale. */
    scales[o] = 1.0f / (sx * sw);
    bq[o] = bf ? bf[o] * sx * sw : 0.0f;
  }

  dnnl_memory_desc_t src_any, w_any, w_q_plain, dst_md = *dst_want;
  const dnnl_data_type_t out_type = out->lowp_out ? dnnl_u8 : dnnl_f32;
  if (sum >= 0 && out->lowp_out && b->value_lowp_slot[sum] >= 0 && dst_want->format_kind != dnnl_format_kind_any)
    dst_md = b->p->slots[b->value_lowp_slot[sum]].md; /* the residual's u8 form: summed in place */
  if (dst_md.data_type != out_type)
    dnnl_memory_desc_init_by_tag(&dst_md, dst_want->ndims, dst_want->dims, out_type, dnnl_format_tag_any);
  dnnl_memory_desc_init_by_tag(&src_any, g->values[x].shape.rank, xd, is_unsigned ? dnnl_u8 : dnnl_s8,
                               dnnl_format_tag_any);
  dnnl_memory_desc_init_by_tag(&w_any, wrank, w_plain->dims, dnnl_s8, dnnl_format_tag_any);
  cpu_plain_md_dims(wrank, w_plain->dims, dnnl_s8, &w_q_plain);
  cpu_plain_md_dims(1, &oc, dnnl_f32, &out->bias_md);
  (void)yd;

  inferd_error *e = NULL;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_convolution_desc_t cd;
  const dnnl_memory_desc_t *bias_arg = bias >= 0 ? &out->bias_md : NULL;
  if (dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &src_any,
                                                 &w_any, bias_arg, &dst_md, strides, dil, pl, pr) != dnnl_success)
    goto done;
  /* A u8 output takes its consumers' scale after the activations. */
  e = cpu_attr_for_node_scaled(n, sum_scale, sy, &attr);
  if (e) goto done;
  if (dnnl_primitive_attr_set_output_scales(attr, oc, 1 << 1, scales) != dnnl_success) goto done;
  if (dnnl_primitive_desc_create(&out->pd, &cd, attr, b->plan->engine, NULL) != dnnl_success) {
    out->pd = NULL;
    goto done;
  }
  if (!lowp_kernel_is_real(&out->pd)) goto done;
  const dnnl_memory_desc_t src_md = *dnnl_primitive_desc_query_md(out->pd, dnnl_query_src_md, 0);
  const dnnl_memory_desc_t w_md = *dnnl_primitive_desc_query_md(out->pd, dnnl_query_weights_md, 0);
  /* Weights and scaled bias are cached under keys apart from value ids. */
  e = cpu_weights_from(b, -2 - 2 * w, wq, &w_q_plain, &w_md, &out->w_mem);
  if (!e && bias >= 0) e = cpu_weights_from(b, -3 - 2 * w, bq, &out->bias_md, &out->bias_md, &out->b_mem);
  /* The quantized input, shared by the convolutions that read it alike. */
  if (!e) {
    const int q = b->value_lowp_slot[x];
    if (q >= 0 && dnnl_memory_desc_equal(&b->p->slots[q].md, &src_md)) {
      out->src_slot = q;
    } else {
      int from;
      e = cpu_value_slot(b, x, &from);
      if (!e) {
        /* From FP32, quantized; from its producer's u8, only relaid. */
        const bool quantized = b->p->slots[from].md.data_type != dnnl_f32;
        out->src_slot = cpu_slot_new(b, x, &src_md);
        e = quantized ? cpu_add_reorder(b, from, out->src_slot) : cpu_add_scaled_reorder(b, from, out->src_slot, sx);
        if (!quantized) b->value_lowp_slot[x] = out->src_slot;
      }
    }
  }
  if (e) {
    dnnl_primitive_desc_destroy(out->pd);
    out->pd = NULL;
  }
done:
  if (attr) dnnl_primitive_attr_destroy(attr);
  free(wq);
  free(scales);
  free(bq);
  return e;
}

/* Whether a BF16 plan may keep value y in bf16: it is no graph output and
 * only convolutions read it, as their input or their residual sum, or a
 * max pooling (exact in bf16, at depth < 4) whose output is such a value,
 * or a global average pooling (which writes FP32). */
static bool bf16_value(const cpu_builder *b, int y, int depth) {
  const ir_graph *g = b->g;
  if (g->values[y].is_output || depth > 3) return false;
  int readers = 0;
  for (int i = 0; i < g->n_nodes; i++) {
    const ir_node *c = &g->nodes[i];
    if (c->dead) continue;
    for (int k = 0; k < c->n_inputs; k++) {
      if (c->inputs[k] != y) continue;
      const bool conv = c->op == IR_OP_Conv && (k == 0 || k == c->sum_input) &&
                        g->values[c->inputs[1]].kind == IR_VALUE_CONST;
      const bool pool = c->op == IR_OP_MaxPool && k == 0 && c->n_outputs == 1 && c->n_post_ops == 0 &&
                        bf16_value(b, c->outputs[0], depth + 1);
      /* A global average reads bf16 and writes FP32 (sums in FP32). */
      const bool mean = c->op == IR_OP_GlobalAveragePool && k == 0 && c->n_post_ops == 0;
      if (!conv && !pool && !mean) return false;
      readers++;
    }
  }
  return readers > 0;
}

/* The BF16 form of a convolution: source and weights in bf16, products
 * summed in FP32 by oneDNN's kernels (AMX or AVX-512 BF16), the bias FP32,
 * the output bf16 when only convolutions read it (cpu_bf16_value), else FP32.
 * With a residual sum, the output takes the sum operand's memory when their
 * types agree. */
static inferd_error *conv_bf16(cpu_builder *b, const ir_node *n, const dnnl_memory_desc_t *w_plain, int wrank,
                               const dnnl_memory_desc_t *dst_want, const dnnl_memory_desc_t *bias_md,
                               const int64_t *strides, const int64_t *dil, const int64_t *pl, const int64_t *pr,
                               lowp_conv *out) {
  *out = (lowp_conv){.pd = NULL, .src_slot = -1};
  const int x = n->inputs[0], w = n->inputs[1], bias = ir_node_input(n, 2);
  out->lowp_out = bf16_value(b, n->outputs[0], 0);
  const dnnl_data_type_t out_type = out->lowp_out ? dnnl_bf16 : dnnl_f32;
  dnnl_dims_t xd;
  const int rank = cpu_value_dims(b, x, xd);
  dnnl_memory_desc_t src_any, w_any, dst_md = *dst_want;
  dnnl_memory_desc_init_by_tag(&src_any, rank, xd, dnnl_bf16, dnnl_format_tag_any);
  dnnl_memory_desc_init_by_tag(&w_any, wrank, w_plain->dims, dnnl_bf16, dnnl_format_tag_any);
  if (n->sum_input < 0 || dst_want->data_type != out_type)
    dnnl_memory_desc_init_by_tag(&dst_md, rank, dst_want->dims, out_type, dnnl_format_tag_any);
  out->bias_md = *bias_md;
  if (!conv_pd(b, n, &src_any, &w_any, bias >= 0 ? bias_md : NULL, &dst_md, strides, dil, pl, pr, &out->pd)) {
    out->pd = NULL;
    return NULL;
  }
  if (!lowp_kernel_is_real(&out->pd)) return NULL;
  const dnnl_memory_desc_t src_md = *dnnl_primitive_desc_query_md(out->pd, dnnl_query_src_md, 0);
  const dnnl_memory_desc_t w_md = *dnnl_primitive_desc_query_md(out->pd, dnnl_query_weights_md, 0);
  inferd_error *e = cpu_weights_get(b, w, w_plain, &w_md, &out->w_mem);
  if (!e && bias >= 0) e = cpu_weights_get(b, bias, bias_md, bias_md, &out->b_mem);
  /* The input in bf16: the producer's own slot, or one conversion shared by
   * the convolutions that read it alike. */
  if (!e) {
    const int q = b->value_lowp_slot[x];
    if (q >= 0 && dnnl_memory_desc_equal(&b->p->slots[q].md, &src_md)) {
      out->src_slot = q;
    } else {
      e = cpu_slot_in_layout(b, x, &src_md, &out->src_slot);
      if (!e && out->src_slot != b->value_slot[x]) b->value_lowp_slot[x] = out->src_slot;
    }
  }
  if (e) {
    dnnl_primitive_desc_destroy(out->pd);
    out->pd = NULL;
  }
  return e;
}

/* Copies residual v from its slot into the destination `to` that the
 * convolution sums into, converting between the real values (FP32, BF16)
 * and v's u8 form (at v's own INT8 scale) when the two types differ. */
static inferd_error *residual_into(cpu_builder *b, int v, int from, int to) {
  const bool from_u8 = b->p->slots[from].md.data_type == dnnl_u8;
  const bool to_u8 = b->p->slots[to].md.data_type == dnnl_u8;
  if (from_u8 == to_u8) return cpu_add_reorder(b, from, to);
  bool is_unsigned;
  float scale = 1.0f;
  if (!int8_input(b, v, &is_unsigned, &scale))
    return err_new(INFERD_ERROR_INTERNAL, "residual '%s' has a u8 form but no INT8 scale", b->g->values[v].name);
  return cpu_add_scaled_reorder(b, from, to, from_u8 ? 1.0f / scale : scale);
}

inferd_error *cpu_build_conv(cpu_builder *b, const ir_node *n) {
  const ir_graph *g = b->g;
  int x = n->inputs[0], w = n->inputs[1], bias = ir_node_input(n, 2);
  int sum = n->sum_input >= 0 ? n->inputs[n->sum_input] : -1;
  int y = n->outputs[0];
  const ir_value *wv = &g->values[w];
  int rank = g->values[x].shape.rank;
  if (g->values[x].dtype != INFERD_TYPE_FP32 || wv->kind != IR_VALUE_CONST || rank < 3 || rank > 5 ||
      (bias >= 0 && g->values[bias].kind != IR_VALUE_CONST))
    return cpu_build_ref(b, n);
  int spatial = rank - 2;
  int64_t group = ir_node_attr_int(n, "group", 1);
  dnnl_dims_t xd, yd, wd;
  cpu_value_dims(b, x, xd);
  cpu_value_dims(b, y, yd);
  cpu_value_dims(b, w, wd);
  dnnl_dims_t kernel, strides, dil, dil_dnnl, pl, pr;
  int n_attr;
  const int64_t *s_attr = ir_node_attr_ints(n, "strides", &n_attr);
  const int64_t *d_attr = ir_node_attr_ints(n, "dilations", &n_attr);
  for (int i = 0; i < spatial; i++) {
    kernel[i] = wd[2 + i];
    strides[i] = s_attr ? s_attr[i] : 1;
    dil[i] = d_attr ? d_attr[i] : 1;
    dil_dnnl[i] = dil[i] - 1;
  }
  cpu_node_pads(b, n, spatial, kernel, strides, dil, pl, pr);

  /* Weights as stored: [OC, IC/G, k...], viewed as [G, OC/G, IC/G, k...]
   * when grouped (same bytes). */
  int64_t wdims[6];
  int wrank = 0;
  if (group > 1) wdims[wrank++] = group;
  wdims[wrank++] = wd[0] / group;
  for (int i = 1; i < rank; i++) wdims[wrank++] = wd[i];
  dnnl_memory_desc_t w_plain, w_any, src_any, dst_any, bias_md, x_md;
  cpu_plain_md_dims(wrank, wdims, dnnl_f32, &w_plain);
  dnnl_memory_desc_init_by_tag(&w_any, wrank, w_plain.dims, dnnl_f32, dnnl_format_tag_any);
  dnnl_memory_desc_init_by_tag(&src_any, rank, xd, dnnl_f32, dnnl_format_tag_any);
  dnnl_memory_desc_init_by_tag(&dst_any, rank, yd, dnnl_f32, dnnl_format_tag_any);
  int64_t oc = yd[1];
  cpu_plain_md_dims(1, &oc, dnnl_f32, &bias_md);

  int x_slot;
  ERR_TRY(cpu_value_slot(b, x, &x_slot));
  x_md = b->p->slots[x_slot].md;

  /* With a residual sum, the convolution writes into the other operand's
   * layout so it can accumulate in place. */
  int sum_slot = -1;
  dnnl_memory_desc_t dst_want = dst_any;
  if (sum >= 0) {
    ERR_TRY(cpu_value_slot(b, sum, &sum_slot));
    dst_want = b->p->slots[sum_slot].md;
  }

  lowp_conv q = {.pd = NULL};
  const inferd_precision precision = b->plan->config.precision;
  if (precision == INFERD_PRECISION_INT8) {
    ERR_TRY(conv_int8(b, n, &w_plain, wrank, &dst_want, strides, dil_dnnl, pl, pr, &q));
    if (!q.pd && sum >= 0) ERR_TRY(conv_int8(b, n, &w_plain, wrank, &dst_any, strides, dil_dnnl, pl, pr, &q));
  } else if (precision == INFERD_PRECISION_BF16 && cpu_has_bf16_dot()) {
    ERR_TRY(conv_bf16(b, n, &w_plain, wrank, &dst_want, &bias_md, strides, dil_dnnl, pl, pr, &q));
  }
  dnnl_primitive_desc_t pd = q.pd;
  int src_slot = q.src_slot;
  dnnl_memory_t w_mem = q.w_mem, b_mem = q.b_mem;
  if (q.pd) bias_md = q.bias_md;
  inferd_error *e = NULL;
  if (!q.pd) {
    const dnnl_memory_desc_t *bias_arg = bias >= 0 ? &bias_md : NULL;
    /* An FP32 form writes FP32 (a bf16 sum operand is converted into it). */
    if (dst_want.data_type != dnnl_f32) dst_want = dst_any;
    bool ok = conv_pd(b, n, &src_any, &w_any, bias_arg, &dst_want, strides, dil_dnnl, pl, pr, &pd);
    if (!ok && sum >= 0) ok = conv_pd(b, n, &src_any, &w_any, bias_arg, &dst_any, strides, dil_dnnl, pl, pr, &pd);
    if (!ok) return cpu_build_ref(b, n);
    /* Prefer the producer's layout when a kernel as good exists for it: the
     * first convolution reads the plain input directly that way. */
    const dnnl_memory_desc_t *src_pref = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    if (x_md.data_type == dnnl_f32 && !dnnl_memory_desc_equal(src_pref, &x_md)) {
      dnnl_primitive_desc_t pd2 = NULL;
      const dnnl_memory_desc_t *dst_chosen = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
      bool ok2 = conv_pd(b, n, &x_md, &w_any, bias_arg, dst_chosen, strides, dil_dnnl, pl, pr, &pd2);
      if (ok2 && !impl_is_reference(pd2) && strcmp(cpu_pd_impl(pd2), cpu_pd_impl(pd)) == 0) {
        dnnl_primitive_desc_destroy(pd);
        pd = pd2;
      } else if (ok2) {
        dnnl_primitive_desc_destroy(pd2);
      }
    }
    const dnnl_memory_desc_t src_fp32 = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t w_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (b->p->slots[x_slot].md.data_type == dnnl_u8) {
      /* Written as u8 by its producer for INT8 readers: back to FP32. */
      bool is_unsigned;
      float sx = 1.0f;
      int8_input(b, x, &is_unsigned, &sx);
      src_slot = cpu_slot_new(b, x, &src_fp32);
      e = cpu_add_scaled_reorder(b, x_slot, src_slot, 1.0f / sx);
    } else {
      e = cpu_slot_in_layout(b, x, &src_fp32, &src_slot);
    }
    if (!e) e = cpu_weights_get(b, w, &w_plain, &w_md, &w_mem);
    if (!e && bias >= 0) e = cpu_weights_get(b, bias, &bias_md, &bias_md, &b_mem);
    if (e) {
      dnnl_primitive_desc_destroy(pd);
      return e;
    }
  }
  const dnnl_memory_desc_t src_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
  const dnnl_memory_desc_t w_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  dnnl_memory_desc_t dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);

  int out_slot;
  if (sum >= 0) {
    /* A u8 destination sums the residual's u8 form, made for the
     * convolutions that read it (or made here). */
    const int sum_u8 = b->value_lowp_slot[sum];
    if (dst_md.data_type == dnnl_u8 && sum_u8 >= 0 && b->p->slots[sum_u8].md.data_type == dnnl_u8) sum_slot = sum_u8;
    int r = cpu_slot_root(b->p, sum_slot);
    const cpu_slot *root = &b->p->slots[r];
    bool in_place = root->storage == CPU_STORAGE_ARENA && !root->pinned && root->last_node <= b->node_index &&
                    dnnl_memory_desc_equal(&b->p->slots[sum_slot].md, &dst_md) && root->size == b->p->slots[sum_slot].size;
    if (in_place) {
      out_slot = cpu_slot_view(b, sum_slot, y, &dst_md);
    } else {
      out_slot = cpu_slot_new(b, y, &dst_md);
      e = residual_into(b, sum, sum_slot, out_slot);
      if (e) {
        dnnl_primitive_desc_destroy(pd);
        return e;
      }
    }
  } else {
    out_slot = cpu_slot_new(b, y, &dst_md);
  }

  static const char *names[] = {"conv", "conv+relu", "conv+sum", "conv+sum+relu", "conv+act", "conv+sum+act"};
  static const char *names8[] = {"conv int8",     "conv+relu int8", "conv+sum int8",
                                 "conv+sum+relu int8", "conv+act int8",  "conv+sum+act int8"};
  static const char *names16[] = {"conv bf16",     "conv+relu bf16", "conv+sum bf16",
                                  "conv+sum+relu bf16", "conv+act bf16",  "conv+sum+act bf16"};
  bool has_sum = n->sum_input >= 0;
  bool has_relu = false, has_other = false;
  for (int i = 0; i < n->n_post_ops; i++)
    if (n->post_ops[i].kind == IR_POST_ELTWISE) {
      if (n->post_ops[i].alg == IR_ELTWISE_RELU) has_relu = true;
      else has_other = true;
    }
  const int name_at = has_other ? (has_sum ? 5 : 4) : (has_sum ? 2 : 0) + (has_relu ? 1 : 0);
  const char *what = !q.pd ? names[name_at] : precision == INFERD_PRECISION_BF16 ? names16[name_at] : names8[name_at];
  cpu_step *s = cpu_step_new(b, CPU_STEP_PRIMITIVE, what);
  cpu_step_arg(s, DNNL_ARG_SRC, src_slot, &src_md);
  s->args[s->n_args++] = (cpu_arg){.arg = DNNL_ARG_WEIGHTS, .slot = -1, .md = w_md, .memory = w_mem};
  if (b_mem) s->args[s->n_args++] = (cpu_arg){.arg = DNNL_ARG_BIAS, .slot = -1, .md = bias_md, .memory = b_mem};
  cpu_step_arg(s, DNNL_ARG_DST, out_slot, &dst_md);
  cpu_slot_touch_last(b, src_slot);
  cpu_slot_touch_last(b, out_slot);
  int64_t macs = 1;
  for (int i = 0; i < rank; i++) macs *= yd[i];
  macs *= wd[1];
  for (int i = 0; i < spatial; i++) macs *= kernel[i];
  s->gflop = 2.0 * (double)macs * 1e-9;
  b->value_slot[y] = out_slot;
  if (q.lowp_out) b->value_lowp_slot[y] = out_slot;
  else if (cpu_md_is_plain(&dst_md) && dst_md.data_type == dnnl_f32) b->value_plain_slot[y] = out_slot;
  return cpu_step_set_primitive(s, pd);
}
