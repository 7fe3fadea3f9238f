/*
 * Building a program for one batch size: walk the optimized graph in order,
 * let each op's builder add steps and slots, bind graph outputs, then place
 * every arena buffer with the memory planner.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "engine/cpu/cpu.h"
#include "engine/memplan.h"

inferd_error *cpu_dnnl_error(dnnl_status_t status, const char *what) {
  const char *reason = status == dnnl_out_of_memory     ? "out of memory"
                       : status == dnnl_invalid_arguments ? "invalid arguments"
                       : status == dnnl_unimplemented     ? "no implementation for this configuration"
                                                          : "runtime error";
  return err_new(status == dnnl_out_of_memory ? INFERD_ERROR_NO_MEMORY : INFERD_ERROR_INTERNAL, "oneDNN %s: %s",
                 what, reason);
}

dnnl_data_type_t cpu_dnnl_type(inferd_datatype t) {
  switch (t) {
    case INFERD_TYPE_FP32: return dnnl_f32;
    case INFERD_TYPE_FP16: return dnnl_f16;
    case INFERD_TYPE_BF16: return dnnl_bf16;
    case INFERD_TYPE_INT32: return dnnl_s32;
    case INFERD_TYPE_INT8: return dnnl_s8;
    case INFERD_TYPE_UINT8:
    case INFERD_TYPE_BOOL: return dnnl_u8;
    default: return dnnl_data_type_undef;
  }
}

int cpu_value_dims(const cpu_builder *b, int value, int64_t *dims) {
  const ir_shape *s = &b->g->values[value].shape;
  for (int i = 0; i < s->rank; i++) dims[i] = ir_dim_eval(s->dims[i], b->batch);
  return s->rank;
}

void cpu_plain_md_dims(int rank, const int64_t *dims, dnnl_data_type_t type, dnnl_memory_desc_t *md) {
  dnnl_dims_t d, strides;
  if (rank == 0) {
    d[0] = 1;
    rank = 1;
  } else {
    for (int i = 0; i < rank; i++) d[i] = dims[i];
  }
  int64_t stride = 1;
  for (int i = rank - 1; i >= 0; i--) {
    strides[i] = stride;
    stride *= d[i] ? d[i] : 1;
  }
  /* Types oneDNN has no name for (int64, fp64...) are described as bytes of
   * the same size so that views and copies still work. */
  dnnl_memory_desc_init_by_strides(md, rank, d, type == dnnl_data_type_undef ? dnnl_u8 : type, strides);
}

void cpu_plain_md(const cpu_builder *b, int value, dnnl_memory_desc_t *md) {
  int64_t dims[IR_MAX_RANK];
  int rank = cpu_value_dims(b, value, dims);
  inferd_datatype t = b->g->values[value].dtype;
  dnnl_data_type_t dt = cpu_dnnl_type(t);
  if (dt == dnnl_data_type_undef) {
    /* Widen the innermost dimension by the element size, in u8. */
    size_t esize = ir_dtype_size(t);
    if (rank == 0) {
      dims[0] = 1;
      rank = 1;
    }
    dims[rank - 1] *= (int64_t)esize;
  }
  cpu_plain_md_dims(rank, dims, dt, md);
}

bool cpu_md_is_plain(const dnnl_memory_desc_t *md) {
  if (md->format_kind != dnnl_blocked || md->format_desc.blocking.inner_nblks != 0) return false;
  int64_t stride = 1;
  for (int i = md->ndims - 1; i >= 0; i--) {
    if (md->dims[i] != 1 && md->format_desc.blocking.strides[i] != stride) return false;
    stride *= md->dims[i];
  }
  for (int i = 0; i < md->ndims; i++)
    if (md->padded_dims[i] != md->dims[i] || md->padded_offsets[i] != 0) return false;
  return md->offset0 == 0;
}

int cpu_slot_root(const cpu_program *p, int slot) {
  while (p->slots[slot].alias_of >= 0) slot = p->slots[slot].alias_of;
  return slot;
}

static void slot_touch(cpu_builder *b, int slot, int step) {
  cpu_slot *r = &b->p->slots[cpu_slot_root(b->p, slot)];
  if (step < r->first) r->first = step;
  if (step > r->last) r->last = step;
}

static int slot_push(cpu_builder *b, const cpu_slot *init) {
  cpu_program *p = b->p;
  MEM_GROW(p->slots, p->cap_slots, (size_t)p->n_slots + 1);
  p->slots[p->n_slots] = *init;
  return p->n_slots++;
}

int cpu_slot_new(cpu_builder *b, int value, const dnnl_memory_desc_t *md) {
  cpu_slot s = {.md = *md,
                .size = dnnl_memory_desc_get_size(md),
                .value = value,
                .alias_of = -1,
                .storage = CPU_STORAGE_ARENA,
                .ext_index = -1,
                .first = INT_MAX,
                .last = -1,
                .last_node = value >= 0 ? b->plan->last_node[value] : -1,
                .pinned = value >= 0 && b->g->values[value].is_output};
  return slot_push(b, &s);
}

int cpu_slot_view(cpu_builder *b, int source_slot, int value, const dnnl_memory_desc_t *md) {
  int root = cpu_slot_root(b->p, source_slot);
  cpu_slot s = {.md = *md, .size = dnnl_memory_desc_get_size(md), .value = value, .alias_of = root};
  int id = slot_push(b, &s);
  cpu_slot *r = &b->p->slots[root];
  if (b->plan->last_node[value] > r->last_node) r->last_node = b->plan->last_node[value];
  if (b->g->values[value].is_output) r->pinned = true;
  return id;
}

void cpu_slot_touch_last(cpu_builder *b, int slot) { slot_touch(b, slot, b->p->n_steps - 1); }

cpu_step *cpu_step_new(cpu_builder *b, cpu_step_kind kind, const char *what) {
  cpu_program *p = b->p;
  MEM_GROW(p->steps, p->cap_steps, (size_t)p->n_steps + 1);
  cpu_step *s = &p->steps[p->n_steps++];
  *s = (cpu_step){.kind = kind, .what = what};
  s->name = b->node_index >= 0 ? b->g->nodes[b->node_index].name : "output";
  return s;
}

void cpu_step_arg(cpu_step *s, int arg, int slot, const dnnl_memory_desc_t *md) {
  s->args[s->n_args++] = (cpu_arg){.arg = arg, .slot = slot, .md = *md};
}

const char *cpu_pd_impl(const_dnnl_primitive_desc_t pd) {
  const char *impl = "?";
  dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
  return impl;
}

inferd_error *cpu_step_set_primitive(cpu_step *s, dnnl_primitive_desc_t pd) {
  const dnnl_memory_desc_t *scratch = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  if (scratch) {
    s->scratch_md = *scratch;
    s->scratch_size = dnnl_memory_desc_get_size(scratch);
  }
  dnnl_status_t st = dnnl_primitive_create(&s->primitive, pd);
  dnnl_primitive_desc_destroy(pd);
  if (st != dnnl_success) return cpu_dnnl_error(st, "creating a primitive");
  return NULL;
}

/* A reorder step from one slot to another, multiplying by *scale on the
 * way when scale is not NULL. */
static inferd_error *reorder_step(cpu_builder *b, int from, int to, const float *scale, const char *what) {
  dnnl_primitive_attr_t attr;
  DNNL_TRY(dnnl_primitive_attr_create(&attr), "attr");
  dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
  dnnl_status_t st = scale ? dnnl_primitive_attr_set_output_scales(attr, 1, 0, scale) : dnnl_success;
  dnnl_primitive_desc_t pd;
  if (st == dnnl_success)
    st = dnnl_reorder_primitive_desc_create(&pd, &b->p->slots[from].md, b->plan->engine, &b->p->slots[to].md,
                                            b->plan->engine, attr);
  dnnl_primitive_attr_destroy(attr);
  if (st != dnnl_success) return cpu_dnnl_error(st, scale ? "creating a quantizing reorder" : "creating a reorder");
  cpu_step *s = cpu_step_new(b, CPU_STEP_PRIMITIVE, what);
  cpu_step_arg(s, DNNL_ARG_FROM, from, &b->p->slots[from].md);
  cpu_step_arg(s, DNNL_ARG_TO, to, &b->p->slots[to].md);
  slot_touch(b, from, b->p->n_steps - 1);
  slot_touch(b, to, b->p->n_steps - 1);
  return cpu_step_set_primitive(s, pd);
}

inferd_error *cpu_add_reorder(cpu_builder *b, int from, int to) { return reorder_step(b, from, to, NULL, "reorder"); }

inferd_error *cpu_add_scaled_reorder(cpu_builder *b, int from, int to, float scale) {
  return reorder_step(b, from, to, &scale, "quantize");
}

inferd_error *cpu_value_slot(cpu_builder *b, int value, int *slot) {
  if (b->value_slot[value] >= 0) {
    *slot = b->value_slot[value];
    return NULL;
  }
  const ir_value *v = &b->g->values[value];
  if (v->kind != IR_VALUE_CONST)
    return err_new(INFERD_ERROR_INTERNAL, "value '%s' is read before any step produces it", v->name);
  dnnl_memory_desc_t md;
  cpu_plain_md(b, value, &md);
  const void *data = v->data;
  if (!data) {
    /* The engine freed the graph's copy after an earlier program only used
     * the constant as weights; a later program that reads it directly gets
     * a plain copy made from the plan's. */
    dnnl_memory_t memory;
    ERR_TRY(cpu_weights_get(b, value, NULL, &md, &memory));
    dnnl_memory_get_data_handle(memory, (void **)&data);
  } else {
    b->plan->const_use[value] |= CPU_CONST_READ;
  }
  int s = cpu_slot_new(b, value, &md);
  b->p->slots[s].storage = CPU_STORAGE_CONST;
  b->p->slots[s].const_data = data;
  b->p->slots[s].pinned = true;
  b->value_slot[value] = b->value_plain_slot[value] = s;
  *slot = s;
  return NULL;
}

/* The type of a value's own slots: its type, or u8 bytes for the types
 * oneDNN lacks (cpu_plain_md). */
static dnnl_data_type_t value_md_type(const cpu_builder *b, int value) {
  const dnnl_data_type_t t = cpu_dnnl_type(b->g->values[value].dtype);
  return t == dnnl_data_type_undef ? dnnl_u8 : t;
}

inferd_error *cpu_plain_slot(cpu_builder *b, int value, int *slot) {
  if (b->value_plain_slot[value] >= 0) {
    *slot = b->value_plain_slot[value];
    return NULL;
  }
  int s = -1;
  ERR_TRY(cpu_value_slot(b, value, &s));
  const dnnl_memory_desc_t *have = &b->p->slots[s].md;
  if (cpu_md_is_plain(have) && have->data_type == value_md_type(b, value)) {
    b->value_plain_slot[value] = *slot = s;
    return NULL;
  }
  dnnl_memory_desc_t md;
  cpu_plain_md(b, value, &md);
  int plain = cpu_slot_new(b, value, &md);
  ERR_TRY(cpu_add_reorder(b, s, plain));
  b->value_plain_slot[value] = *slot = plain;
  return NULL;
}

inferd_error *cpu_slot_in_layout(cpu_builder *b, int value, const dnnl_memory_desc_t *md, int *slot) {
  int s;
  ERR_TRY(cpu_value_slot(b, value, &s));
  if (dnnl_memory_desc_equal(&b->p->slots[s].md, md)) {
    *slot = s;
    return NULL;
  }
  int plain = b->value_plain_slot[value];
  if (plain >= 0 && dnnl_memory_desc_equal(&b->p->slots[plain].md, md)) {
    *slot = plain;
    return NULL;
  }
  int to = cpu_slot_new(b, value, md);
  ERR_TRY(cpu_add_reorder(b, s, to));
  /* Only the value's own type is its plain form (a bf16 or u8 copy of an
   * FP32 tensor in plain layout is not). */
  if (cpu_md_is_plain(md) && md->data_type == value_md_type(b, value))
    b->value_plain_slot[value] = to;
  *slot = to;
  return NULL;
}

inferd_error *cpu_attr_for_node(const ir_node *node, dnnl_primitive_attr_t *attr) {
  return cpu_attr_for_node_scaled(node, 1.0f, 1.0f, attr);
}

inferd_error *cpu_attr_for_node_scaled(const ir_node *node, float sum_scale, float last_scale,
                                       dnnl_primitive_attr_t *attr) {
  DNNL_TRY(dnnl_primitive_attr_create(attr), "attr");
  dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
  if (!node || !node->n_post_ops) return NULL;
  dnnl_post_ops_t po;
  DNNL_TRY(dnnl_post_ops_create(&po), "post-ops");
  for (int i = 0; i < node->n_post_ops; i++) {
    const ir_post_op *p = &node->post_ops[i];
    const float sc = i == node->n_post_ops - 1 ? last_scale : 1.0f;
    if (p->kind == IR_POST_SUM) {
      dnnl_post_ops_append_sum(po, sum_scale);
      continue;
    }
    switch (p->alg) {
      case IR_ELTWISE_RELU: dnnl_post_ops_append_eltwise(po, sc, dnnl_eltwise_relu, 0.0f, 0.0f); break;
      case IR_ELTWISE_LEAKY_RELU: dnnl_post_ops_append_eltwise(po, sc, dnnl_eltwise_relu, p->alpha, 0.0f); break;
      case IR_ELTWISE_CLIP: dnnl_post_ops_append_eltwise(po, sc, dnnl_eltwise_clip_v2, p->alpha, p->beta); break;
      case IR_ELTWISE_SIGMOID: dnnl_post_ops_append_eltwise(po, sc, dnnl_eltwise_logistic, 0.0f, 0.0f); break;
      case IR_ELTWISE_TANH: dnnl_post_ops_append_eltwise(po, sc, dnnl_eltwise_tanh, 0.0f, 0.0f); break;
      case IR_ELTWISE_HARD_SWISH: dnnl_post_ops_append_eltwise(po, sc, dnnl_eltwise_hardswish, 0.0f, 0.0f); break;
      case IR_ELTWISE_HARD_SIGMOID:
        /* oneDNN 2.6 has no hardsigmoid: alpha*x+beta, then clip to [0,1]. */
        dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_linear, p->alpha, p->beta);
        dnnl_post_ops_append_eltwise(po, sc, dnnl_eltwise_clip_v2, 0.0f, 1.0f);
        break;
    }
  }
  dnnl_status_t st = dnnl_primitive_attr_set_post_ops(*attr, po);
  dnnl_post_ops_destroy(po);
  if (st != dnnl_success) {
    dnnl_primitive_attr_destroy(*attr);
    return cpu_dnnl_error(st, "setting post-ops");
  }
  return NULL;
}

bool cpu_pd_create(cpu_builder *b, const_dnnl_op_desc_t desc, const ir_node *post_ops_of, dnnl_primitive_desc_t *pd) {
  dnnl_primitive_attr_t attr;
  inferd_error *e = cpu_attr_for_node(post_ops_of, &attr);
  if (e) {
    inferd_error_delete(e);
    return false;
  }
  dnnl_status_t st = dnnl_primitive_desc_create(pd, desc, attr, b->plan->engine, NULL);
  dnnl_primitive_attr_destroy(attr);
  return st == dnnl_success;
}

inferd_error *cpu_weights_get(cpu_builder *b, int value, const dnnl_memory_desc_t *src_md,
                              const dnnl_memory_desc_t *md, dnnl_memory_t *memory) {
  return cpu_weights_from(b, value, NULL, src_md, md, memory);
}

inferd_error *cpu_weights_from(cpu_builder *b, int key, const void *data, const dnnl_memory_desc_t *src_md,
                               const dnnl_memory_desc_t *md, dnnl_memory_t *memory) {
  cpu_plan *plan = b->plan;
  const int value = key;
  for (cpu_weights *w = plan->weights[b->node_index]; w; w = w->next)
    if (w->value == value && dnnl_memory_desc_equal(&w->md, md)) {
      *memory = w->memory;
      return NULL;
    }
  /* The source: the caller's data, the graph's, or (once the engine freed
   * it) a copy the plan already made in another layout; a reorder converts
   * any of them. */
  const void *src_data = data ? data : b->g->values[value].data;
  dnnl_memory_desc_t src_copy_md;
  if (!src_data) {
    const cpu_weights *from = NULL;
    for (int i = 0; i < b->g->n_nodes && !from; i++)
      for (const cpu_weights *c = plan->weights[i]; c && !from; c = c->next)
        if (c->value == value && c->md.ndims == md->ndims &&
            memcmp(c->md.dims, md->dims, sizeof(md->dims[0]) * (size_t)md->ndims) == 0)
          from = c;
    if (!from)
      return err_new(INFERD_ERROR_INTERNAL, "constant '%s' was released and no copy of it fits",
                     b->g->values[value].name);
    src_data = from->data;
    src_copy_md = from->md;
    src_md = &src_copy_md;
  }
  cpu_weights *w = mem_zalloc(sizeof(*w));
  w->value = value;
  w->md = *md;
  w->size = dnnl_memory_desc_get_size(md);
  w->data = mem_try_aligned(w->size);
  if (!w->data) {
    size_t size = w->size;
    free(w);
    return err_new(INFERD_ERROR_NO_MEMORY, "allocating %zu bytes of weights", size);
  }
  w->next = plan->weights[b->node_index];
  plan->weights[b->node_index] = w;
  DNNL_TRY(dnnl_memory_create(&w->memory, md, plan->engine, w->data), "weights memory");
  dnnl_memory_t src;
  DNNL_TRY(dnnl_memory_create(&src, src_md, plan->engine, (void *)src_data), "weights source");
  if (!data) plan->const_use[value] |= CPU_CONST_COPIED;
  dnnl_primitive_desc_t pd;
  dnnl_primitive_t reorder;
  dnnl_stream_t stream;
  dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, src_md, plan->engine, md, plan->engine, NULL);
  if (st == dnnl_success) {
    st = dnnl_primitive_create(&reorder, pd);
    dnnl_primitive_desc_destroy(pd);
  }
  if (st == dnnl_success && (st = dnnl_stream_create(&stream, plan->engine, dnnl_stream_default_flags)) ==
                                dnnl_success) {
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, w->memory}};
    st = dnnl_primitive_execute(reorder, stream, 2, args);
    if (st == dnnl_success) st = dnnl_stream_wait(stream);
    dnnl_stream_destroy(stream);
    dnnl_primitive_destroy(reorder);
  }
  dnnl_memory_destroy(src);
  if (st != dnnl_success) return cpu_dnnl_error(st, "reordering weights");
  *memory = w->memory;
  return NULL;
}

inferd_error *cpu_build_ref(cpu_builder *b, const ir_node *node) {
  const ir_op_info *info = ir_op_get(node->op);
  if (!info || !info->ref)
    return ir_node_error(b->g, node, INFERD_ERROR_UNSUPPORTED, "the CPU backend has no kernel for it");
  cpu_step tmp = {0};
  tmp.n_in = node->n_inputs;
  tmp.n_out = node->n_outputs;
  tmp.in_slots = mem_alloc((size_t)(tmp.n_in + 1) * sizeof(int));
  tmp.out_slots = mem_alloc((size_t)(tmp.n_out + 1) * sizeof(int));
  tmp.in_tensors = mem_zalloc((size_t)(tmp.n_in + 1) * sizeof(ir_tensor));
  tmp.out_tensors = mem_zalloc((size_t)(tmp.n_out + 1) * sizeof(ir_tensor));
  inferd_error *e = NULL;
  for (int k = 0; k < node->n_inputs && !e; k++) {
    int v = node->inputs[k];
    tmp.in_slots[k] = -1;
    if (v < 0) continue;
    /* Shape reads only dims; do not make a plain copy for it. */
    e = node->op == IR_OP_Shape ? cpu_value_slot(b, v, &tmp.in_slots[k]) : cpu_plain_slot(b, v, &tmp.in_slots[k]);
    ir_tensor *t = &tmp.in_tensors[k];
    t->dtype = b->g->values[v].dtype;
    t->rank = cpu_value_dims(b, v, t->dims);
  }
  for (int k = 0; k < node->n_outputs && !e; k++) {
    int v = node->outputs[k];
    tmp.out_slots[k] = -1;
    if (v < 0) continue;
    dnnl_memory_desc_t md;
    cpu_plain_md(b, v, &md);
    tmp.out_slots[k] = cpu_slot_new(b, v, &md);
    b->value_slot[v] = b->value_plain_slot[v] = tmp.out_slots[k];
    ir_tensor *t = &tmp.out_tensors[k];
    t->dtype = b->g->values[v].dtype;
    t->rank = cpu_value_dims(b, v, t->dims);
  }
  if (e) {
    free(tmp.in_slots);
    free(tmp.out_slots);
    free(tmp.in_tensors);
    free(tmp.out_tensors);
    return e;
  }
  cpu_step *s = cpu_step_new(b, CPU_STEP_REF, ir_op_name(node->op));
  tmp.kind = s->kind;
  tmp.name = s->name;
  tmp.what = s->what;
  tmp.node = node;
  *s = tmp;
  int step = b->p->n_steps - 1;
  for (int k = 0; k < s->n_in; k++)
    if (s->in_slots[k] >= 0) slot_touch(b, s->in_slots[k], step);
  for (int k = 0; k < s->n_out; k++)
    if (s->out_slots[k] >= 0) slot_touch(b, s->out_slots[k], step);
  return NULL;
}

static inferd_error *build_node(cpu_builder *b, const ir_node *n) {
  switch (n->op) {
    case IR_OP_Conv: return cpu_build_conv(b, n);
    case IR_OP_MaxPool:
    case IR_OP_AveragePool:
    case IR_OP_GlobalAveragePool:
    case IR_OP_GlobalMaxPool: return cpu_build_pool(b, n);
    case IR_OP_Relu:
    case IR_OP_LeakyRelu:
    case IR_OP_Clip:
    case IR_OP_Sigmoid:
    case IR_OP_HardSigmoid:
    case IR_OP_HardSwish:
    case IR_OP_Tanh: return cpu_build_eltwise(b, n);
    case IR_OP_Add:
    case IR_OP_Sub:
    case IR_OP_Mul:
    case IR_OP_Div: return cpu_build_binary(b, n);
    case IR_OP_BatchNormalization: return cpu_build_batchnorm(b, n);
    case IR_OP_Gemm:
    case IR_OP_MatMul: return cpu_build_matmul(b, n);
    case IR_OP_Flatten:
    case IR_OP_Reshape:
    case IR_OP_Squeeze:
    case IR_OP_Unsqueeze:
    case IR_OP_Identity:
    case IR_OP_Dropout: return cpu_build_view(b, n);
    case IR_OP_Concat: return cpu_build_concat(b, n);
    case IR_OP_Softmax: return cpu_build_softmax(b, n);
    case IR_OP_ReduceMean: return cpu_build_reduce(b, n);
    case IR_OP_Transpose: return cpu_build_transpose(b, n);
    default: return cpu_build_ref(b, n);
  }
}

/* Graph outputs end in plain layout in the caller's buffer: the producing
 * step writes there directly when the output owns its buffer, else a copy
 * step is added. */
static inferd_error *bind_outputs(cpu_builder *b) {
  const ir_graph *g = b->g;
  cpu_program *p = b->p;
  b->node_index = -1;
  for (int j = 0; j < g->n_outputs; j++) {
    int v = g->outputs[j];
    int s;
    ERR_TRY(cpu_plain_slot(b, v, &s));
    int r = cpu_slot_root(p, s);
    bool own = p->slots[r].storage == CPU_STORAGE_ARENA && p->slots[r].size == p->slots[s].size;
    /* Another value in the same tree that is a graph output claimed it. */
    if (own && p->slots[r].ext_index >= 0) own = false;
    if (own) {
      p->slots[r].storage = CPU_STORAGE_OUTPUT;
      p->slots[r].ext_index = j;
      p->output_slots[j] = s;
      continue;
    }
    dnnl_memory_desc_t md = p->slots[s].md;
    int to = cpu_slot_new(b, v, &md);
    p->slots[to].storage = CPU_STORAGE_OUTPUT;
    p->slots[to].ext_index = j;
    cpu_step *st = cpu_step_new(b, CPU_STEP_COPY, "copy");
    st->n_in = st->n_out = 1;
    st->in_slots = mem_alloc(sizeof(int));
    st->out_slots = mem_alloc(sizeof(int));
    st->in_slots[0] = s;
    st->out_slots[0] = to;
    st->copy_bytes = p->slots[s].size;
    slot_touch(b, s, p->n_steps - 1);
    slot_touch(b, to, p->n_steps - 1);
    p->output_slots[j] = to;
  }
  /* An output the caller does not want still lands in the arena, which must
   * then hold it to the end. */
  for (int j = 0; j < g->n_outputs; j++) {
    cpu_slot *r = &p->slots[cpu_slot_root(p, p->output_slots[j])];
    if (r->storage == CPU_STORAGE_OUTPUT) r->last = p->n_steps;
  }
  return NULL;
}

static void plan_memory(cpu_program *p) {
  int n = 0;
  int *roots = mem_alloc((size_t)(p->n_slots + 1) * sizeof(int));
  memplan_buffer *bufs = mem_alloc((size_t)(p->n_slots + 1) * sizeof(memplan_buffer));
  for (int s = 0; s < p->n_slots; s++) {
    cpu_slot *sl = &p->slots[s];
    if (sl->alias_of >= 0 || (sl->storage != CPU_STORAGE_ARENA && sl->storage != CPU_STORAGE_OUTPUT)) continue;
    if (sl->last < 0) continue; /* never touched */
    roots[n] = s;
    bufs[n++] = (memplan_buffer){.size = sl->size, .first = sl->first, .last = sl->last};
  }
  p->arena_size = memplan_assign(bufs, n, 64);
  p->lower_bound = memplan_lower_bound(bufs, n);
  for (int i = 0; i < n; i++) p->slots[roots[i]].offset = bufs[i].offset;
  for (int i = 0; i < p->n_steps; i++)
    if (p->steps[i].scratch_size > p->scratch_size) p->scratch_size = p->steps[i].scratch_size;
  free(roots);
  free(bufs);
}

inferd_error *cpu_program_build(cpu_plan *plan, int batch, cpu_program **out) {
  const ir_graph *g = plan->g;
  cpu_program *p = mem_zalloc(sizeof(*p));
  p->batch = batch;
  p->output_slots = mem_zalloc((size_t)(g->n_outputs + 1) * sizeof(int));
  cpu_builder b = {.plan = plan, .g = g, .p = p, .batch = batch, .node_index = -1};
  b.value_slot = mem_alloc((size_t)(g->n_values + 1) * sizeof(int));
  b.value_plain_slot = mem_alloc((size_t)(g->n_values + 1) * sizeof(int));
  b.value_lowp_slot = mem_alloc((size_t)(g->n_values + 1) * sizeof(int));
  memset(b.value_slot, 0xff, (size_t)(g->n_values + 1) * sizeof(int));
  memset(b.value_plain_slot, 0xff, (size_t)(g->n_values + 1) * sizeof(int));
  memset(b.value_lowp_slot, 0xff, (size_t)(g->n_values + 1) * sizeof(int));
  inferd_error *e = NULL;
  for (int i = 0; i < g->n_inputs; i++) {
    int v = g->inputs[i];
    dnnl_memory_desc_t md;
    cpu_plain_md(&b, v, &md);
    int s = cpu_slot_new(&b, v, &md);
    p->slots[s].storage = CPU_STORAGE_INPUT;
    p->slots[s].ext_index = i;
    p->slots[s].pinned = true;
    b.value_slot[v] = b.value_plain_slot[v] = s;
  }
  for (int i = 0; i < g->n_nodes && !e; i++) {
    if (g->nodes[i].dead) continue;
    b.node_index = i;
    e = build_node(&b, &g->nodes[i]);
  }
  if (!e) e = bind_outputs(&b);
  free(b.value_slot);
  free(b.value_plain_slot);
  free(b.value_lowp_slot);
  if (e) {
    cpu_program_free(p);
    return e;
  }
  plan_memory(p);
  log_verbose("cpu: program for batch %d: %d steps, %d slots, arena %zu bytes (lower bound %zu), scratch %zu", batch,
              p->n_steps, p->n_slots, p->arena_size, p->lower_bound, p->scratch_size);
  *out = p;
  return NULL;
}

void cpu_program_free(cpu_program *p) {
  if (!p) return;
  for (int i = 0; i < p->n_steps; i++) {
    cpu_step *s = &p->steps[i];
    if (s->primitive) dnnl_primitive_destroy(s->primitive);
    free(s->in_slots);
    free(s->out_slots);
    free(s->in_tensors);
    free(s->out_tensors);
  }
  free(p->steps);
  free(p->slots);
  free(p->output_slots);
  free(p);
}
