/*
 * Element-wise work on oneDNN: activations, binary arithmetic with
 * broadcasting, and inference-mode batch normalization. All run in the
 * producer's layout and, when nothing else needs the input afterwards,
 * in place.
 */
#include <math.h>
#include <string.h>

#include "engine/cpu/cpu.h"

/* The output may reuse the input's buffer: nobody reads the input later and
 * it is not memory the caller sees. */
static bool can_overwrite(const cpu_builder *b, int slot) {
  const cpu_slot *root = &b->p->slots[cpu_slot_root(b->p, slot)];
  return root->storage == CPU_STORAGE_ARENA && !root->pinned && root->last_node <= b->node_index &&
         root->size == b->p->slots[slot].size;
}

static bool const_float(const ir_graph *g, int v, float *out) {
  if (v < 0) return true;
  const ir_value *val = &g->values[v];
  if (val->kind != IR_VALUE_CONST || val->dtype != INFERD_TYPE_FP32 || ir_shape_numel(&val->shape, 1) != 1)
    return false;
  memcpy(out, val->data, sizeof(float));
  return true;
}

/* The step of a node with one data input and one output in the input's
 * layout, written in place when allowed; the caller adds any further
 * arguments and the primitive. */
static cpu_step *unary_step(cpu_builder *b, const ir_node *n, int in_slot, const char *what) {
  int y = n->outputs[0];
  const dnnl_memory_desc_t md = b->p->slots[in_slot].md;
  int out = can_overwrite(b, in_slot) ? cpu_slot_view(b, in_slot, y, &md) : cpu_slot_new(b, y, &md);
  cpu_step *s = cpu_step_new(b, CPU_STEP_PRIMITIVE, what);
  cpu_step_arg(s, DNNL_ARG_SRC, in_slot, &md);
  cpu_step_arg(s, DNNL_ARG_DST, out, &md);
  cpu_slot_touch_last(b, in_slot);
  cpu_slot_touch_last(b, out);
  b->value_slot[y] = out;
  if (cpu_md_is_plain(&md)) b->value_plain_slot[y] = out;
  return s;
}

inferd_error *cpu_build_eltwise(cpu_builder *b, const ir_node *n) {
  const ir_graph *g = b->g;
  int x = n->inputs[0];
  if (g->values[x].dtype != INFERD_TYPE_FP32 || n->n_post_ops) return cpu_build_ref(b, n);
  dnnl_alg_kind_t alg;
  float alpha = 0.0f, beta = 0.0f;
  switch (n->op) {
    case IR_OP_Relu: alg = dnnl_eltwise_relu; break;
    case IR_OP_LeakyRelu:
      alg = dnnl_eltwise_relu;
      alpha = ir_node_attr_float(n, "alpha", 0.01f);
      break;
    case IR_OP_Sigmoid: alg = dnnl_eltwise_logistic; break;
    case IR_OP_Tanh: alg = dnnl_eltwise_tanh; break;
    case IR_OP_HardSwish: alg = dnnl_eltwise_hardswish; break;
    case IR_OP_Clip:
      alg = dnnl_eltwise_clip_v2;
      alpha = -INFINITY;
      beta = INFINITY;
      if (g->opset < 11) {
        alpha = ir_node_attr_float(n, "min", -INFINITY);
        beta = ir_node_attr_float(n, "max", INFINITY);
      } else if (!const_float(g, ir_node_input(n, 1), &alpha) || !const_float(g, ir_node_input(n, 2), &beta)) {
        return cpu_build_ref(b, n);
      }
      /* ONNX clips to max when min > max; oneDNN's clip does the same order
       * (max applied last), but keep the reference for that corner. */
      if (alpha > beta) return cpu_build_ref(b, n);
      break;
    default: return cpu_build_ref(b, n);
  }
  int in;
  ERR_TRY(cpu_value_slot(b, x, &in));
  dnnl_memory_desc_t md = b->p->slots[in].md;
  dnnl_eltwise_desc_t ed;
  DNNL_TRY(dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_inference, alg, &md, alpha, beta), "eltwise descriptor");
  dnnl_primitive_desc_t pd;
  if (!cpu_pd_create(b, &ed, NULL, &pd)) return cpu_build_ref(b, n);
  return cpu_step_set_primitive(unary_step(b, n, in, ir_op_name(n->op)), pd);
}

/* dims of `value` left-padded with 1s to `rank`. */
static void padded_dims(const cpu_builder *b, int value, int rank, int64_t *dims) {
  dnnl_dims_t d;
  int r = cpu_value_dims(b, value, d);
  for (int i = 0; i < rank; i++) dims[i] = i < rank - r ? 1 : d[i - (rank - r)];
}

inferd_error *cpu_build_binary(cpu_builder *b, const ir_node *n) {
  const ir_graph *g = b->g;
  int a = n->inputs[0], c = n->inputs[1], y = n->outputs[0];
  if (g->values[a].dtype != INFERD_TYPE_FP32 || g->values[c].dtype != INFERD_TYPE_FP32 || n->n_post_ops)
    return cpu_build_ref(b, n);
  dnnl_dims_t yd, ad, cd;
  int rank = cpu_value_dims(b, y, yd);
  if (rank == 0) return cpu_build_ref(b, n);
  padded_dims(b, a, rank, ad);
  padded_dims(b, c, rank, cd);
  bool a_full = memcmp(ad, yd, (size_t)rank * sizeof(int64_t)) == 0;
  bool c_full = memcmp(cd, yd, (size_t)rank * sizeof(int64_t)) == 0;
  bool commutative = n->op == IR_OP_Add || n->op == IR_OP_Mul;
  if (!a_full) {
    if (!c_full || !commutative) return cpu_build_ref(b, n);
    int t = a;
    a = c;
    c = t;
    memcpy(ad, cd, sizeof(ad));
    padded_dims(b, c, rank, cd);
    c_full = memcmp(cd, yd, (size_t)rank * sizeof(int64_t)) == 0;
  }
  dnnl_alg_kind_t alg = n->op == IR_OP_Add   ? dnnl_binary_add
                        : n->op == IR_OP_Sub ? dnnl_binary_sub
                        : n->op == IR_OP_Mul ? dnnl_binary_mul
                                             : dnnl_binary_div;
  int a_slot, c_slot;
  ERR_TRY(cpu_value_slot(b, a, &a_slot));
  dnnl_memory_desc_t a_md = b->p->slots[a_slot].md, c_md;
  if (a_md.ndims != rank) {
    ERR_TRY(cpu_plain_slot(b, a, &a_slot));
    cpu_plain_md_dims(rank, ad, dnnl_f32, &a_md);
  }
  if (c_full && b->g->values[c].shape.rank == rank && a_md.ndims == rank && !cpu_md_is_plain(&a_md)) {
    /* Same shape, a in a blocked layout: read c in that layout too. */
    ERR_TRY(cpu_slot_in_layout(b, c, &b->p->slots[a_slot].md, &c_slot));
    c_md = a_md;
  } else {
    ERR_TRY(cpu_plain_slot(b, c, &c_slot));
    cpu_plain_md_dims(rank, cd, dnnl_f32, &c_md);
  }
  dnnl_binary_desc_t bd;
  DNNL_TRY(dnnl_binary_desc_init(&bd, alg, &a_md, &c_md, &a_md), "binary descriptor");
  dnnl_primitive_desc_t pd;
  if (!cpu_pd_create(b, &bd, NULL, &pd)) return cpu_build_ref(b, n);
  /* The output takes a's layout; a's dims are the output's (possibly after
   * rank padding of a plain tensor, which is the same bytes). */
  dnnl_memory_desc_t y_md = a_md;
  if (a_md.ndims != g->values[y].shape.rank) cpu_plain_md(b, y, &y_md);
  int out = can_overwrite(b, a_slot) && a != c ? cpu_slot_view(b, a_slot, y, &y_md) : cpu_slot_new(b, y, &y_md);
  cpu_step *s = cpu_step_new(b, CPU_STEP_PRIMITIVE, ir_op_name(n->op));
  cpu_step_arg(s, DNNL_ARG_SRC_0, a_slot, &a_md);
  cpu_step_arg(s, DNNL_ARG_SRC_1, c_slot, &c_md);
  cpu_step_arg(s, DNNL_ARG_DST, out, &a_md);
  cpu_slot_touch_last(b, a_slot);
  cpu_slot_touch_last(b, c_slot);
  cpu_slot_touch_last(b, out);
  b->value_slot[y] = out;
  if (cpu_md_is_plain(&y_md)) b->value_plain_slot[y] = out;
  return cpu_step_set_primitive(s, pd);
}

inferd_error *cpu_build_batchnorm(cpu_builder *b, const ir_node *n) {
  const ir_graph *g = b->g;
  int x = n->inputs[0];
  int rank = g->values[x].shape.rank;
  if (g->values[x].dtype != INFERD_TYPE_FP32 || rank < 2 || n->n_outputs != 1) return cpu_build_ref(b, n);
  for (int k = 1; k < 5; k++) {
    const ir_value *p = &g->values[n->inputs[k]];
    if (p->kind != IR_VALUE_CONST || p->dtype != INFERD_TYPE_FP32) return cpu_build_ref(b, n);
  }
  int in;
  ERR_TRY(cpu_value_slot(b, x, &in));
  dnnl_memory_desc_t md = b->p->slots[in].md;
  float eps = ir_node_attr_float(n, "epsilon", 1e-5f);
  dnnl_batch_normalization_desc_t bd;
  DNNL_TRY(dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_inference, &md, eps,
                                                      dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift),
           "batch normalization descriptor");
  dnnl_primitive_desc_t pd;
  if (!cpu_pd_create(b, &bd, NULL, &pd)) return cpu_build_ref(b, n);
  int64_t c = md.dims[1];
  dnnl_memory_desc_t cmd;
  cpu_plain_md_dims(1, &c, dnnl_f32, &cmd);
  static const int args[4] = {DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE};
  dnnl_memory_t mems[4];
  for (int k = 0; k < 4; k++) {
    inferd_error *e = cpu_weights_get(b, n->inputs[k + 1], &cmd, &cmd, &mems[k]);
    if (e) {
      dnnl_primitive_desc_destroy(pd);
      return e;
    }
  }
  cpu_step *s = unary_step(b, n, in, "batchnorm");
  for (int k = 0; k < 4; k++) s->args[s->n_args++] = (cpu_arg){.arg = args[k], .slot = -1, .md = cmd, .memory = mems[k]};
  return cpu_step_set_primitive(s, pd);
}
