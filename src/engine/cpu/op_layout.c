/*
 * Ops that move or regroup data: views (Reshape, Flatten, Squeeze,
 * Unsqueeze, Identity, Dropout) cost nothing — they relabel a plain buffer —
 * and Concat, Transpose, Softmax and ReduceMean run on oneDNN.
 */
#include <string.h>

#include "engine/cpu/cpu.h"

inferd_error *cpu_build_view(cpu_builder *b, const ir_node *n) {
  if (n->n_outputs > 1 && n->outputs[1] >= 0 && b->g->values[n->outputs[1]].use_count > 0)
    return cpu_build_ref(b, n); /* Dropout's mask is a real output */
  int x = n->inputs[0], y = n->outputs[0];
  int in;
  ERR_TRY(cpu_plain_slot(b, x, &in));
  dnnl_memory_desc_t md;
  cpu_plain_md(b, y, &md);
  int out = cpu_slot_view(b, in, y, &md);
  b->value_slot[y] = b->value_plain_slot[y] = out;
  return NULL;
}

static int normalize_axis(int64_t axis, int rank) { return (int)(axis < 0 ? axis + rank : axis); }

inferd_error *cpu_build_concat(cpu_builder *b, const ir_node *n) {
  const ir_graph *g = b->g;
  int y = n->outputs[0];
  int rank = g->values[y].shape.rank;
  if (g->values[y].dtype != INFERD_TYPE_FP32 || rank == 0 || n->n_inputs > CPU_MAX_ARGS - 1)
    return cpu_build_ref(b, n);
  int axis = normalize_axis(ir_node_attr_int(n, "axis", 0), rank);
  dnnl_memory_desc_t srcs[CPU_MAX_ARGS];
  int slots[CPU_MAX_ARGS];
  int count = 0;
  for (int k = 0; k < n->n_inputs; k++) {
    int v = n->inputs[k];
    if (v < 0) continue;
    dnnl_dims_t d;
    cpu_value_dims(b, v, d);
    if (d[axis] == 0) continue; /* empty pieces add nothing */
    for (int i = 0; i < rank; i++)
      if (d[i] == 0) return cpu_build_ref(b, n);
    ERR_TRY(cpu_value_slot(b, v, &slots[count]));
    srcs[count] = b->p->slots[slots[count]].md;
    if (srcs[count].ndims != rank) return cpu_build_ref(b, n);
    count++;
  }
  if (count == 0) return cpu_build_ref(b, n);
  dnnl_dims_t yd;
  cpu_value_dims(b, y, yd);
  dnnl_memory_desc_t dst_any;
  dnnl_memory_desc_init_by_tag(&dst_any, rank, yd, dnnl_f32, dnnl_format_tag_any);
  dnnl_primitive_attr_t attr;
  ERR_TRY(cpu_attr_for_node(NULL, &attr));
  dnnl_primitive_desc_t pd;
  dnnl_status_t st = dnnl_concat_primitive_desc_create(&pd, &dst_any, count, axis, srcs, attr, b->plan->engine);
  dnnl_primitive_attr_destroy(attr);
  if (st != dnnl_success) return cpu_build_ref(b, n);
  dnnl_memory_desc_t dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
  int out = cpu_slot_new(b, y, &dst_md);
  cpu_step *s = cpu_step_new(b, CPU_STEP_PRIMITIVE, "concat");
  for (int i = 0; i < count; i++) {
    cpu_step_arg(s, DNNL_ARG_MULTIPLE_SRC + i, slots[i], &srcs[i]);
    cpu_slot_touch_last(b, slots[i]);
  }
  cpu_step_arg(s, DNNL_ARG_DST, out, &dst_md);
  cpu_slot_touch_last(b, out);
  b->value_slot[y] = out;
  if (cpu_md_is_plain(&dst_md)) b->value_plain_slot[y] = out;
  return cpu_step_set_primitive(s, pd);
}

/* One primitive (taking pd) reading value x in plain layout as in_md and
 * writing a new plain slot of value y seen as out_md. */
static inferd_error *plain_step(cpu_builder *b, int x, const dnnl_memory_desc_t *in_md, int y,
                                const dnnl_memory_desc_t *out_md, dnnl_primitive_desc_t pd, const char *what) {
  int in;
  inferd_error *e = cpu_plain_slot(b, x, &in);
  if (e) {
    dnnl_primitive_desc_destroy(pd);
    return e;
  }
  dnnl_memory_desc_t y_md;
  cpu_plain_md(b, y, &y_md);
  int out = cpu_slot_new(b, y, &y_md);
  cpu_step *s = cpu_step_new(b, CPU_STEP_PRIMITIVE, what);
  cpu_step_arg(s, DNNL_ARG_SRC, in, in_md);
  cpu_step_arg(s, DNNL_ARG_DST, out, out_md);
  cpu_slot_touch_last(b, in);
  cpu_slot_touch_last(b, out);
  b->value_slot[y] = b->value_plain_slot[y] = out;
  return cpu_step_set_primitive(s, pd);
}

inferd_error *cpu_build_softmax(cpu_builder *b, const ir_node *n) {
  const ir_graph *g = b->g;
  int x = n->inputs[0], y = n->outputs[0];
  int rank = g->values[x].shape.rank;
  if (g->values[x].dtype != INFERD_TYPE_FP32 || rank == 0) return cpu_build_ref(b, n);
  dnnl_dims_t d;
  cpu_value_dims(b, x, d);
  dnnl_memory_desc_t md;
  int axis;
  if (g->opset < 13) {
    /* Softmax before opset 13 flattens to [outer, inner] at `axis`. */
    axis = normalize_axis(ir_node_attr_int(n, "axis", 1), rank);
    int64_t dims2[2] = {1, 1};
    for (int i = 0; i < rank; i++) dims2[i < axis ? 0 : 1] *= d[i];
    cpu_plain_md_dims(2, dims2, dnnl_f32, &md);
    axis = 1;
  } else {
    axis = normalize_axis(ir_node_attr_int(n, "axis", -1), rank);
    cpu_plain_md_dims(rank, d, dnnl_f32, &md);
  }
  for (int i = 0; i < md.ndims; i++)
    if (md.dims[i] == 0) return cpu_build_ref(b, n);
  dnnl_softmax_v2_desc_t sd;
  DNNL_TRY(dnnl_softmax_v2_forward_desc_init(&sd, dnnl_forward_inference, dnnl_softmax_accurate, &md, &md, axis),
           "softmax descriptor");
  dnnl_primitive_desc_t pd;
  if (!cpu_pd_create(b, &sd, NULL, &pd)) return cpu_build_ref(b, n);
  return plain_step(b, x, &md, y, &md, pd, "softmax");
}

inferd_error *cpu_build_reduce(cpu_builder *b, const ir_node *n) {
  const ir_graph *g = b->g;
  int x = n->inputs[0], y = n->outputs[0];
  int rank = g->values[x].shape.rank;
  if (g->values[x].dtype != INFERD_TYPE_FP32 || rank == 0) return cpu_build_ref(b, n);
  int n_axes = -1;
  const int64_t *axes = NULL;
  dnnl_dims_t axes_buf;
  if (g->opset < 18) {
    axes = ir_node_attr_ints(n, "axes", &n_axes);
  } else if (ir_node_input(n, 1) >= 0) {
    const ir_value *av = &g->values[n->inputs[1]];
    if (av->kind != IR_VALUE_CONST || av->dtype != INFERD_TYPE_INT64) return cpu_build_ref(b, n);
    n_axes = (int)ir_shape_numel(&av->shape, 1);
    if (n_axes > IR_MAX_RANK) return cpu_build_ref(b, n);
    memcpy(axes_buf, av->data, (size_t)n_axes * sizeof(int64_t));
    axes = axes_buf;
  }
  if (n_axes == 0 && ir_node_attr_int(n, "noop_with_empty_axes", 0)) return cpu_build_ref(b, n);
  dnnl_dims_t d, rd;
  cpu_value_dims(b, x, d);
  memcpy(rd, d, sizeof(d));
  if (n_axes <= 0) {
    for (int i = 0; i < rank; i++) rd[i] = 1;
  } else {
    for (int i = 0; i < n_axes; i++) rd[normalize_axis(axes[i], rank)] = 1;
  }
  for (int i = 0; i < rank; i++)
    if (d[i] == 0) return cpu_build_ref(b, n);
  dnnl_memory_desc_t src_md, dst_md;
  cpu_plain_md_dims(rank, d, dnnl_f32, &src_md);
  cpu_plain_md_dims(rank, rd, dnnl_f32, &dst_md);
  if (memcmp(d, rd, sizeof(int64_t) * (size_t)rank) == 0) return cpu_build_ref(b, n);
  dnnl_reduction_desc_t rdesc;
  DNNL_TRY(dnnl_reduction_desc_init(&rdesc, dnnl_reduction_mean, &src_md, &dst_md, 0.0f, 0.0f),
           "reduction descriptor");
  dnnl_primitive_desc_t pd;
  if (!cpu_pd_create(b, &rdesc, NULL, &pd)) return cpu_build_ref(b, n);
  return plain_step(b, x, &src_md, y, &dst_md, pd, "reducemean");
}

inferd_error *cpu_build_transpose(cpu_builder *b, const ir_node *n) {
  const ir_graph *g = b->g;
  int x = n->inputs[0], y = n->outputs[0];
  int rank = g->values[x].shape.rank;
  dnnl_data_type_t dt = cpu_dnnl_type(g->values[x].dtype);
  if (dt == dnnl_data_type_undef || dt == dnnl_u8 || rank == 0) return cpu_build_ref(b, n);
  dnnl_dims_t d, yd;
  cpu_value_dims(b, x, d);
  cpu_value_dims(b, y, yd);
  int n_perm;
  const int64_t *perm = ir_node_attr_ints(n, "perm", &n_perm);
  dnnl_dims_t in_strides;
  int64_t stride = 1;
  for (int i = rank - 1; i >= 0; i--) {
    in_strides[i] = stride;
    stride *= d[i];
    if (d[i] == 0) return cpu_build_ref(b, n);
  }
  dnnl_dims_t src_dims, src_strides;
  for (int i = 0; i < rank; i++) {
    int p = perm && n_perm == rank ? (int)perm[i] : rank - 1 - i;
    src_dims[i] = yd[i];
    src_strides[i] = in_strides[p];
  }
  dnnl_memory_desc_t src_md, dst_md;
  dnnl_memory_desc_init_by_strides(&src_md, rank, src_dims, dt, src_strides);
  cpu_plain_md_dims(rank, yd, dt, &dst_md);
  dnnl_primitive_attr_t attr;
  ERR_TRY(cpu_attr_for_node(NULL, &attr));
  dnnl_primitive_desc_t pd;
  dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, &src_md, b->plan->engine, &dst_md, b->plan->engine, attr);
  dnnl_primitive_attr_destroy(attr);
  if (st != dnnl_success) return cpu_build_ref(b, n);
  /* A reorder takes FROM/TO, which have the same numbers as SRC/DST. */
  return plain_step(b, x, &src_md, y, &dst_md, pd, "transpose");
}
