/*
 * Building a CUDA program for one batch bucket: tensors and steps from the
 * optimized graph (see cuda.h for the model), the arena placed by the
 * memory planner, then every convolution and product autotuned on scratch
 * memory holding pseudo-random data.
 */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/float16.h"
#include "base/log.h"
#include "base/clock.h"
#include "engine/cuda/cuda.h"
#include "engine/memplan.h"
#include "engine/ops/op_util.h"

enum { ARENA_ALIGN = 256 };
static const size_t AUTOTUNE_WORKSPACE = (size_t)256 << 20;

typedef struct builder {
  cuda_plan *plan;
  const ir_graph *g;
  cuda_program *p;
  int batch;
  const ir_node *node;
  int *value_t;     /* per value: its tensor in any layout, -1 none yet */
  int *value_plain; /* per value: a plain tensor in the compute type, -1 none yet */
} builder;

size_t cuda_dtype_size(cuda_dtype t) { return t == CUDA_F32 ? 4 : 2; }

static bool dtype_of(inferd_datatype t, cuda_dtype *out) {
  switch (t) {
    case INFERD_TYPE_FP32: *out = CUDA_F32; return true;
    case INFERD_TYPE_FP16: *out = CUDA_F16; return true;
    case INFERD_TYPE_BF16: *out = CUDA_BF16; return true;
    default: return false;
  }
}

int cuda_bucket_of(const cuda_plan *plan, int batch) {
  for (int i = 0; i < plan->n_buckets; i++)
    if (plan->buckets[i] >= batch) return i;
  return plan->n_buckets - 1;
}

static int root_of(const cuda_program *p, int t) {
  while (p->tensors[t].alias_of >= 0) t = p->tensors[t].alias_of;
  return t;
}

void *cuda_tensor_ptr(const cuda_program *p, int t, void *arena) {
  const cuda_tensor *r = &p->tensors[root_of(p, t)];
  return r->storage == CUDA_STORAGE_CONST ? (void *)r->const_ptr : (char *)arena + r->offset;
}

static int tensor_add(builder *b, int value, cuda_layout layout, cuda_dtype dtype, int rank, const int64_t *dims) {
  cuda_program *p = b->p;
  MEM_GROW(p->tensors, p->cap_tensors, (size_t)p->n_tensors + 1);
  cuda_tensor *t = &p->tensors[p->n_tensors];
  *t = (cuda_tensor){.value = value, .layout = layout, .dtype = dtype, .rank = rank, .alias_of = -1,
                     .first = INT_MAX, .last = -1};
  size_t n = 1;
  for (int d = 0; d < rank; d++) {
    t->dims[d] = dims[d];
    n *= (size_t)dims[d];
  }
  t->cphys = layout == CUDA_LAYOUT_NHWC ? dims[1] : 0;
  t->bytes = n * cuda_dtype_size(dtype);
  return p->n_tensors++;
}

static void value_dims(const builder *b, int v, int *rank, int64_t *dims) {
  const ir_value *val = &b->g->values[v];
  *rank = val->shape.rank;
  for (int d = 0; d < val->shape.rank; d++) dims[d] = ir_dim_eval(val->shape.dims[d], b->batch);
}

/* A new root for value v in the compute type. */
static int tensor_for_value(builder *b, int v, cuda_layout layout) {
  int rank;
  int64_t dims[IR_MAX_RANK];
  value_dims(b, v, &rank, dims);
  return tensor_add(b, v, layout, b->plan->dtype, rank, dims);
}

static int view_of(builder *b, int source, int value, cuda_layout layout, int rank, const int64_t *dims) {
  int t = tensor_add(b, value, layout, b->p->tensors[source].dtype, rank, dims);
  b->p->tensors[t].alias_of = source;
  b->p->tensors[t].cphys = b->p->tensors[source].cphys;
  return t;
}

static cuda_step *step_add(builder *b, cuda_step_kind kind, const char *what) {
  cuda_program *p = b->p;
  MEM_GROW(p->steps, p->cap_steps, (size_t)p->n_steps + 1);
  cuda_step *s = &p->steps[p->n_steps++];
  *s = (cuda_step){.kind = kind, .name = b->node ? b->node->name : "", .what = what,
                   .x = -1, .w = -1, .bias = -1, .sum = -1, .y = -1};
  return s;
}

/* Extends a tensor's root lifetime over the newest step. */
static void touch(builder *b, int t) {
  if (t < 0) return;
  cuda_tensor *r = &b->p->tensors[root_of(b->p, t)];
  const int step = b->p->n_steps - 1;
  if (step < r->first) r->first = step;
  if (step > r->last) r->last = step;
}

/* Element strides of tensor t along its logical dims. */
static void logical_strides(const cuda_tensor *t, int64_t *strides) {
  if (t->layout == CUDA_LAYOUT_NHWC) {
    const int64_t c = t->cphys, h = t->dims[2], w = t->dims[3];
    strides[0] = h * w * c;
    strides[1] = 1;
    strides[2] = w * c;
    strides[3] = c;
    return;
  }
  int64_t s = 1;
  for (int d = t->rank - 1; d >= 0; d--) {
    strides[d] = s;
    s *= t->dims[d];
  }
}

/* The index space of an element-wise step writing `out`: its logical dims
 * in the order its memory is laid out (NHWC walks channels innermost). */
static void space_for(const cuda_tensor *out, cuda_index_space *space, int *order) {
  space->rank = out->rank ? out->rank : 1;
  static const int nhwc[4] = {0, 2, 3, 1};
  for (int d = 0; d < space->rank; d++) order[d] = out->layout == CUDA_LAYOUT_NHWC ? nhwc[d] : d;
  for (int d = 0; d < space->rank; d++) space->dims[d] = out->rank ? out->dims[order[d]] : 1;
}

/* A view of tensor t broadcast (numpy rules, right-aligned) over the
 * output's logical dims, in the space's order. */
static void view_over(const builder *b, int t, const cuda_tensor *out, const int *order, int space_rank,
                      cuda_view *v) {
  const cuda_tensor *src = &b->p->tensors[t];
  int64_t ls[IR_MAX_RANK] = {0}, full[IR_MAX_RANK] = {0};
  logical_strides(src, ls);
  const int out_rank = out->rank ? out->rank : 1;
  for (int d = 0; d < out_rank; d++) {
    const int k = d - (out_rank - src->rank);
    full[d] = (k < 0 || src->dims[k] == 1) ? 0 : ls[k];
  }
  v->tensor = t;
  v->offset = 0;
  for (int d = 0; d < space_rank; d++) v->strides[d] = full[order[d]];
}

static cuda_epilogue epilogue_of(const ir_node *n) {
  cuda_epilogue e = {0};
  for (int i = 0; i < n->n_post_ops && i < CUDA_MAX_EPILOGUE; i++) {
    const ir_post_op *op = &n->post_ops[i];
    e.ops[e.n_ops++] = (cuda_epilogue_op){.is_sum = op->kind == IR_POST_SUM,
                                          .act = op->kind == IR_POST_ELTWISE ? (cuda_act)op->alg : CUDA_ACT_NONE,
                                          .alpha = op->alpha,
                                          .beta = op->beta};
  }
  return e;
}

/* Copy step from tensor `from` into tensor `to` (same logical dims). */
static void add_copy(builder *b, int from, int to, const char *what, const cuda_epilogue *e) {
  const cuda_tensor *out = &b->p->tensors[to];
  cuda_step *s = step_add(b, CUDA_STEP_COPY, what);
  int order[IR_MAX_RANK];
  space_for(out, &s->space, order);
  view_over(b, to, out, order, s->space.rank, &s->out);
  view_over(b, from, out, order, s->space.rank, &s->a);
  if (e) s->epilogue = *e;
  touch(b, from);
  touch(b, to);
}

/* ---- weights ----------------------------------------------------------- */

/* Weights are shared by every bucket's program (built under plan->lock). */
static const void *find_weight(const cuda_plan *plan, int value, int kind, int64_t cphys, cuda_dtype dtype) {
  for (const cuda_weight *w = plan->weights; w; w = w->next)
    if (w->value == value && w->kind == kind && w->cphys == cphys && w->dtype == dtype) return w->data;
  return NULL;
}

/* Uploads a weight converted on the host (the caller looked for it first). */
static inferd_error *upload(cuda_plan *plan, int value, int kind, int64_t cphys, const void *host,
                                   size_t bytes, cuda_dtype dtype, const void **device) {
  const uint64_t t0 = clock_now_ns();
  cuda_weight *w = mem_zalloc(sizeof(*w));
  w->value = value;
  w->kind = kind;
  w->cphys = cphys;
  w->dtype = dtype;
  cudaError_t st = cudaMalloc(&w->data, bytes ? bytes : 16);
  if (st == cudaSuccess) st = cudaMemcpy(w->data, host, bytes, cudaMemcpyHostToDevice);
  if (st != cudaSuccess) {
    if (w->data) cudaFree(w->data);
    free(w);
    return cuda_rt_error(st, "copying weights to the GPU");
  }
  w->next = plan->weights;
  plan->weights = w;
  plan->weight_bytes += bytes;
  *device = w->data;
  plan->stats.weights_ms += (double)(clock_now_ns() - t0) * 1e-6;
  return NULL;
}

static float read_float(const ir_value *v, size_t i) {
  switch (v->dtype) {
    case INFERD_TYPE_FP16: return f16_to_f32(((const uint16_t *)v->data)[i]);
    case INFERD_TYPE_BF16: return bf16_to_f32(((const uint16_t *)v->data)[i]);
    default: return ((const float *)v->data)[i];
  }
}

static void write_elem(void *dst, size_t i, cuda_dtype t, float x) {
  if (t == CUDA_F32) ((float *)dst)[i] = x;
  else if (t == CUDA_F16) ((uint16_t *)dst)[i] = f16_from_f64(x);
  else ((uint16_t *)dst)[i] = bf16_from_f64(x);
}

/* A constant as a tensor: kind PLAIN (its own shape), KRSC (a conv filter
 * [K,C/g,R,S] stored [K,R,S,cphys/g], channels past C zero) or NK (a [K,N]
 * or [N,K] matrix stored [N,K]; transposed = the constant is [K,N]). */
static inferd_error *const_tensor(builder *b, int value, int kind, int64_t cphys, bool transposed, int *out) {
  const ir_value *v = &b->g->values[value];
  if (v->kind != IR_VALUE_CONST || !v->data)
    return ir_node_error(b->g, b->node, INFERD_ERROR_UNSUPPORTED, "input '%s' must be a constant on the GPU",
                         v->name);
  const cuda_dtype t = b->plan->dtype;
  int rank = v->shape.rank;
  int64_t dims[IR_MAX_RANK];
  for (int d = 0; d < rank; d++) dims[d] = v->shape.dims[d];
  size_t count = (size_t)ir_shape_numel(&v->shape, 1);
  /* Every bucket's program uses the same weights: converted once. */
  const void *device = find_weight(b->plan, value, kind, cphys, t);
  const uint64_t t0 = clock_now_ns();
  void *host = NULL;
  size_t bytes = 0;
  if (kind == CUDA_WEIGHT_KRSC) {
    /* A 1-D filter [K,C,S] is a 2-D one with R = 1. */
    const int64_t k = dims[0], c = dims[1], r = rank == 4 ? dims[2] : 1, s = dims[rank - 1], cp = cphys;
    bytes = (size_t)(k * r * s * cp) * cuda_dtype_size(t);
    if (!device) {
      host = mem_zalloc(bytes);
      for (int64_t ki = 0; ki < k; ki++)
        for (int64_t ci = 0; ci < c; ci++)
          for (int64_t ri = 0; ri < r; ri++)
            for (int64_t si = 0; si < s; si++)
              write_elem(host, (size_t)(((ki * r + ri) * s + si) * cp + ci), t,
                         read_float(v, (size_t)(((ki * c + ci) * r + ri) * s + si)));
    }
    dims[1] = cp;
  } else if (kind == CUDA_WEIGHT_NK) {
    const int64_t rows = dims[0], cols = dims[1];
    bytes = count * cuda_dtype_size(t);
    if (!device) {
      host = mem_alloc(bytes ? bytes : 1);
      for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
          write_elem(host, transposed ? (size_t)(j * rows + i) : (size_t)(i * cols + j), t,
                     read_float(v, (size_t)(i * cols + j)));
    }
    if (transposed) dims[0] = cols, dims[1] = rows;
  } else {
    bytes = count * cuda_dtype_size(t);
    if (!device) {
      host = mem_alloc(bytes ? bytes : 1);
      for (size_t i = 0; i < count; i++) write_elem(host, i, t, read_float(v, i));
    }
  }
  if (!device) {
    b->plan->stats.weights_ms += (double)(clock_now_ns() - t0) * 1e-6;
    inferd_error *e = upload(b->plan, value, kind, cphys, host, bytes, t, &device);
    free(host);
    ERR_TRY(e);
  }
  int id = tensor_add(b, value, CUDA_LAYOUT_PLAIN, t, rank ? rank : 1, rank ? dims : (int64_t[]){1});
  b->p->tensors[id].storage = CUDA_STORAGE_CONST;
  b->p->tensors[id].const_ptr = device;
  *out = id;
  return NULL;
}

/* ---- getting values in a layout ----------------------------------------- */

static inferd_error *value_any(builder *b, int v, int *out) {
  if (b->value_t[v] < 0) {
    if (b->g->values[v].kind != IR_VALUE_CONST)
      return ir_node_error(b->g, b->node, INFERD_ERROR_INTERNAL, "value '%s' used before it is made",
                           b->g->values[v].name);
    int t;
    ERR_TRY(const_tensor(b, v, CUDA_WEIGHT_PLAIN, 0, false, &t));
    b->value_t[v] = b->value_plain[v] = t;
  }
  *out = b->value_t[v];
  return NULL;
}

static inferd_error *value_plain(builder *b, int v, int *out) {
  int t;
  ERR_TRY(value_any(b, v, &t));
  if (b->value_plain[v] >= 0) {
    *out = b->value_plain[v];
    return NULL;
  }
  const cuda_tensor *src = &b->p->tensors[t];
  if (src->layout == CUDA_LAYOUT_PLAIN) {
    *out = b->value_plain[v] = t;
    return NULL;
  }
  /* NHWC with one pixel and no padding is already row-major NCHW. */
  if (src->dims[2] * src->dims[3] == 1 && src->cphys == src->dims[1]) {
    *out = b->value_plain[v] = view_of(b, t, v, CUDA_LAYOUT_PLAIN, src->rank, src->dims);
    return NULL;
  }
  int plain = tensor_add(b, v, CUDA_LAYOUT_PLAIN, src->dtype, src->rank, src->dims);
  add_copy(b, t, plain, "nhwc->nchw", NULL);
  *out = b->value_plain[v] = plain;
  return NULL;
}

static inferd_error *value_nhwc(builder *b, int v, int *out) {
  int t;
  ERR_TRY(value_any(b, v, &t));
  const cuda_tensor *src = &b->p->tensors[t];
  if (src->layout == CUDA_LAYOUT_NHWC) {
    *out = t;
    return NULL;
  }
  if (src->rank != 4)
    return ir_node_error(b->g, b->node, INFERD_ERROR_UNSUPPORTED, "needs a 4-D input, '%s' has rank %d",
                         b->g->values[v].name, src->rank);
  int nhwc = tensor_add(b, v, CUDA_LAYOUT_NHWC, src->dtype, 4, src->dims);
  add_copy(b, t, nhwc, "nchw->nhwc", NULL);
  b->value_t[v] = nhwc;
  b->value_plain[v] = t;
  *out = nhwc;
  return NULL;
}

/* ---- op builders ---------------------------------------------------------- */

/* Input k is present but known only at run time (a graph input or the
 * output of another node). */
static bool runtime_input(const builder *b, const ir_node *n, int k) {
  const int v = ir_node_input(n, k);
  return v >= 0 && !(b->g->values[v].kind == IR_VALUE_CONST && b->g->values[v].data);
}

/* Window ops (convolutions, pools) run 2-D; a 1-D one as 2-D with H = 1.
 * Value v as an NHWC tensor: a 1-D (N,C,L) value through a copy into
 * [N,C,1,L], 4-D values as value_nhwc gives them. */
static inferd_error *value_nhwc_spatial(builder *b, int v, int *out) {
  if (b->g->values[v].shape.rank != 3) return value_nhwc(b, v, out);
  int t;
  ERR_TRY(value_plain(b, v, &t));
  const cuda_dtype dtype = b->p->tensors[t].dtype;
  const int64_t dims[4] = {b->p->tensors[t].dims[0], b->p->tensors[t].dims[1], 1, b->p->tensors[t].dims[2]};
  int as4 = view_of(b, t, v, CUDA_LAYOUT_PLAIN, 4, dims);
  int nhwc = tensor_add(b, v, CUDA_LAYOUT_NHWC, dtype, 4, dims);
  add_copy(b, as4, nhwc, "ncw->nhwc", NULL);
  *out = nhwc;
  return NULL;
}

/* The NHWC output tensor of a window op writing value v. */
static int spatial_output(builder *b, int v) {
  int rank;
  int64_t dims[IR_MAX_RANK];
  value_dims(b, v, &rank, dims);
  if (rank == 3) dims[3] = dims[2], dims[2] = 1, rank = 4;
  return tensor_add(b, v, CUDA_LAYOUT_NHWC, b->plan->dtype, rank, dims);
}

/* Records y as value v's tensor; a 1-D result goes back to (N,C,L) through
 * a copy, since its consumers index it with three dims. */
static void set_spatial_result(builder *b, int v, int y) {
  if (b->g->values[v].shape.rank != 3) {
    b->value_t[v] = y;
    return;
  }
  int64_t dims[4];
  memcpy(dims, b->p->tensors[y].dims, sizeof(dims));
  int plain = tensor_add(b, v, CUDA_LAYOUT_PLAIN, b->p->tensors[y].dtype, 4, dims);
  add_copy(b, y, plain, "nhwc->ncw", NULL);
  const int64_t d3[3] = {dims[0], dims[1], dims[3]};
  b->value_t[v] = b->value_plain[v] = view_of(b, plain, v, CUDA_LAYOUT_PLAIN, 3, d3);
}

/* The window of a node over `nsp` (1 or 2) spatial dims of the 4-D NHWC
 * tensor xt, as a 2-D window (a 1-D one moves to the width, the height
 * taking a window of 1). */
static inferd_error *window_2d(builder *b, const ir_node *n, const cuda_tensor *xt, int nsp, const int64_t *kernel,
                               bool ceil_mode, ops_window *w) {
  const int64_t in_sp[2] = {nsp == 2 ? xt->dims[2] : xt->dims[3], xt->dims[3]};
  ERR_TRY(ops_window_init(b->g, n, nsp, in_sp, kernel, ceil_mode, w));
  if (nsp == 1) {
    w->stride[1] = w->stride[0], w->dilation[1] = w->dilation[0];
    w->pad_begin[1] = w->pad_begin[0], w->pad_end[1] = w->pad_end[0];
    w->stride[0] = w->dilation[0] = 1;
    w->pad_begin[0] = w->pad_end[0] = 0;
  }
  return NULL;
}

/* A filter computed at run time, [K,C/g,(R,)S] plain in the compute type,
 * copied each run into the KRSC layout the convolution reads. */
static inferd_error *runtime_krsc(builder *b, const ir_node *n, int64_t cphys, int *out) {
  int src;
  ERR_TRY(value_plain(b, n->inputs[1], &src));
  const cuda_tensor *st = &b->p->tensors[src];
  const int64_t k = st->dims[0], c = st->dims[1], r = st->rank == 4 ? st->dims[2] : 1, s = st->dims[st->rank - 1];
  if (cphys != c)
    return ir_node_error(b->g, n, INFERD_ERROR_INTERNAL, "a filter computed at run time for a channel-padded input");
  int w = tensor_add(b, n->inputs[1], CUDA_LAYOUT_PLAIN, st->dtype, 4, (int64_t[]){k, r, s, c});
  cuda_step *cp = step_add(b, CUDA_STEP_COPY, "filter->krsc");
  cp->space = (cuda_index_space){.rank = 4, .dims = {k, r, s, c}};
  cp->out = (cuda_view){.tensor = w, .strides = {r * s * c, s * c, c, 1}};
  cp->a = (cuda_view){.tensor = src, .strides = {c * r * s, s, 1, r * s}};
  touch(b, src), touch(b, w);
  *out = w;
  return NULL;
}

static inferd_error *build_conv(builder *b, const ir_node *n) {
  int x;
  ERR_TRY(value_nhwc_spatial(b, n->inputs[0], &x));
  const cuda_tensor *xt = &b->p->tensors[x];
  const ir_value *wv = &b->g->values[n->inputs[1]];
  const int nsp = wv->shape.rank - 2;
  const int groups = (int)ir_node_attr_int(n, "group", 1);
  const int64_t k = wv->shape.dims[0], r = nsp == 2 ? wv->shape.dims[2] : 1, s = wv->shape.dims[wv->shape.rank - 1];
  /* A padded input (channels rounded up for the tensor cores) takes filters
   * padded alike; grouped filters keep their own channel count. */
  const int64_t cphys = groups == 1 ? xt->cphys : wv->shape.dims[1];
  int w;
  if (runtime_input(b, n, 1)) ERR_TRY(runtime_krsc(b, n, cphys, &w));
  else ERR_TRY(const_tensor(b, n->inputs[1], CUDA_WEIGHT_KRSC, cphys, false, &w));
  int bias = -1;
  if (ir_node_input(n, 2) >= 0 && n->sum_input != 2) {
    if (runtime_input(b, n, 2)) ERR_TRY(value_plain(b, n->inputs[2], &bias));
    else ERR_TRY(const_tensor(b, n->inputs[2], CUDA_WEIGHT_PLAIN, 0, false, &bias));
  }
  int sum = -1;
  if (n->sum_input >= 0) ERR_TRY(value_nhwc_spatial(b, n->inputs[n->sum_input], &sum));
  int y = spatial_output(b, n->outputs[0]);
  xt = &b->p->tensors[x];
  const cuda_tensor *yt = &b->p->tensors[y];
  ops_window win;
  const int64_t ker[2] = {nsp == 2 ? r : s, s};
  ERR_TRY(window_2d(b, n, xt, nsp, ker, false, &win));
  cuda_step *st = step_add(b, CUDA_STEP_CONV, n->sum_input >= 0 ? "conv+sum" : "conv");
  st->x = x, st->w = w, st->bias = bias, st->sum = sum, st->y = y;
  st->epilogue = epilogue_of(n);
  st->conv.desc = (cuda_conv_desc){.n = xt->dims[0], .h = xt->dims[2], .w = xt->dims[3], .c = xt->cphys,
                                   .k = k, .oh = yt->dims[2], .ow = yt->dims[3], .r = (int)r, .s = (int)s,
                                   .groups = groups, .sh = (int)win.stride[0], .sw = (int)win.stride[1],
                                   .dh = (int)win.dilation[0], .dw = (int)win.dilation[1],
                                   .pad_t = (int)win.pad_begin[0], .pad_l = (int)win.pad_begin[1]};
  if (groups > 1 && xt->cphys != xt->dims[1])
    return ir_node_error(b->g, n, INFERD_ERROR_INTERNAL, "grouped convolution of a channel-padded input");
  st->gflop = 2.0 * (double)(xt->dims[0] * yt->dims[2] * yt->dims[3] * k) * (double)(r * s * (xt->dims[1] / groups)) * 1e-9;
  touch(b, x), touch(b, w), touch(b, bias), touch(b, sum), touch(b, y);
  set_spatial_result(b, n->outputs[0], y);
  return NULL;
}

static inferd_error *build_pool(builder *b, const ir_node *n) {
  int x;
  ERR_TRY(value_nhwc_spatial(b, n->inputs[0], &x));
  int y = spatial_output(b, n->outputs[0]);
  const cuda_tensor *xt = &b->p->tensors[x], *yt = &b->p->tensors[y];
  cuda_step *s = step_add(b, CUDA_STEP_POOL, "pool");
  s->x = x, s->y = y;
  const bool global = n->op == IR_OP_GlobalAveragePool || n->op == IR_OP_GlobalMaxPool;
  s->pool = (cuda_pool_desc){.n = xt->dims[0], .h = xt->dims[2], .w = xt->dims[3], .c = xt->cphys,
                             .oh = yt->dims[2], .ow = yt->dims[3], .sh = 1, .sw = 1, .dh = 1, .dw = 1,
                             .is_max = n->op == IR_OP_MaxPool || n->op == IR_OP_GlobalMaxPool};
  if (xt->cphys != xt->dims[1])
    return ir_node_error(b->g, n, INFERD_ERROR_INTERNAL, "pooling of a channel-padded tensor");
  if (global) {
    s->pool.kh = (int)xt->dims[2], s->pool.kw = (int)xt->dims[3];
    s->what = s->pool.is_max ? "globalmaxpool" : "globalavgpool";
  } else {
    int nk;
    const int64_t *kernel = ir_node_attr_ints(n, "kernel_shape", &nk);
    const int nsp = b->g->values[n->inputs[0]].shape.rank - 2;
    if (!kernel || nk != nsp || nsp < 1 || nsp > 2)
      return ir_node_error(b->g, n, INFERD_ERROR_UNSUPPORTED, "only 1-D and 2-D pooling runs on the GPU");
    ops_window win;
    ERR_TRY(window_2d(b, n, xt, nsp, kernel, ir_node_attr_int(n, "ceil_mode", 0) != 0, &win));
    s->pool.kh = nsp == 2 ? (int)kernel[0] : 1, s->pool.kw = (int)kernel[nsp - 1];
    s->pool.sh = (int)win.stride[0], s->pool.sw = (int)win.stride[1];
    s->pool.dh = (int)win.dilation[0], s->pool.dw = (int)win.dilation[1];
    s->pool.pad_t = (int)win.pad_begin[0], s->pool.pad_l = (int)win.pad_begin[1];
    s->pool.pad_b = (int)win.pad_end[0], s->pool.pad_r = (int)win.pad_end[1];
    s->pool.count_include_pad = (int)ir_node_attr_int(n, "count_include_pad", 0);
    s->what = s->pool.is_max ? "maxpool" : "avgpool";
  }
  touch(b, x), touch(b, y);
  set_spatial_result(b, n->outputs[0], y);
  return NULL;
}

static cuda_act act_of(ir_op op) {
  switch (op) {
    case IR_OP_Relu: return CUDA_ACT_RELU;
    case IR_OP_LeakyRelu: return CUDA_ACT_LEAKY_RELU;
    case IR_OP_Clip: return CUDA_ACT_CLIP;
    case IR_OP_Sigmoid: return CUDA_ACT_SIGMOID;
    case IR_OP_HardSigmoid: return CUDA_ACT_HARD_SIGMOID;
    case IR_OP_HardSwish: return CUDA_ACT_HARD_SWISH;
    case IR_OP_Tanh: return CUDA_ACT_TANH;
    default: return CUDA_ACT_NONE;
  }
}

static float const_scalar(const builder *b, const ir_node *n, int k, float fallback) {
  const int v = ir_node_input(n, k);
  if (v < 0 || !b->g->values[v].data) return fallback;
  return read_float(&b->g->values[v], 0);
}

/* An element-wise step out = a op b over out's index space, a and b
 * broadcast to it. */
static cuda_step *add_binary(builder *b, cuda_binary_op op, int a, int bt, int out, const char *what) {
  const cuda_tensor *ot = &b->p->tensors[out];
  cuda_step *s = step_add(b, CUDA_STEP_BINARY, what);
  s->binary = op;
  int order[IR_MAX_RANK];
  space_for(ot, &s->space, order);
  view_over(b, out, ot, order, s->space.rank, &s->out);
  view_over(b, a, ot, order, s->space.rank, &s->a);
  view_over(b, bt, ot, order, s->space.rank, &s->b);
  touch(b, a), touch(b, bt), touch(b, out);
  return s;
}

static void epilogue_append(cuda_epilogue *e, const cuda_epilogue *more) {
  for (int i = 0; i < more->n_ops && e->n_ops < CUDA_MAX_EPILOGUE; i++)
    if (!more->ops[i].is_sum) e->ops[e->n_ops++] = more->ops[i];
}

/* Clip whose bounds are computed at run time: y = max(x, min) and then
 * y = min(y, max) as binary steps reading the bound as a broadcast scalar,
 * in that order so that min > max gives max, as ONNX says. A bound that is
 * a constant (or absent) rides in the first step's epilogue. */
static inferd_error *build_runtime_clip(builder *b, const ir_node *n, int x, int y) {
  const float lowest = -3.402823466e38f, highest = 3.402823466e38f;
  const bool lo_runtime = runtime_input(b, n, 1), hi_runtime = runtime_input(b, n, 2);
  cuda_epilogue first = {.n_ops = 1};
  first.ops[0] = (cuda_epilogue_op){.act = CUDA_ACT_CLIP,
                                    .alpha = lo_runtime ? lowest : const_scalar(b, n, 1, lowest),
                                    .beta = hi_runtime ? highest : const_scalar(b, n, 2, highest)};
  cuda_step *s;
  if (lo_runtime) {
    int lo;
    ERR_TRY(value_any(b, n->inputs[1], &lo));
    s = add_binary(b, CUDA_BIN_MAX, x, lo, y, "clip min");
  } else {
    add_copy(b, x, y, "clip", NULL);
    s = &b->p->steps[b->p->n_steps - 1];
  }
  s->epilogue = first;
  if (hi_runtime) {
    int hi;
    ERR_TRY(value_any(b, n->inputs[2], &hi));
    s = add_binary(b, CUDA_BIN_MIN, y, hi, y, "clip max");
  }
  const cuda_epilogue more = epilogue_of(n);
  epilogue_append(&s->epilogue, &more);
  b->value_t[n->outputs[0]] = y;
  return NULL;
}

static inferd_error *build_unary(builder *b, const ir_node *n) {
  int x;
  ERR_TRY(value_any(b, n->inputs[0], &x));
  const cuda_layout layout = b->p->tensors[x].layout;
  if (layout == CUDA_LAYOUT_NHWC && b->p->tensors[x].cphys != b->p->tensors[x].dims[1]) ERR_TRY(value_plain(b, n->inputs[0], &x));
  int y = tensor_for_value(b, n->outputs[0], b->p->tensors[x].layout);
  if (n->op == IR_OP_Clip && b->g->opset >= 11 && (runtime_input(b, n, 1) || runtime_input(b, n, 2)))
    return build_runtime_clip(b, n, x, y);
  cuda_epilogue e = {.n_ops = 1};
  cuda_epilogue_op *op = &e.ops[0];
  op->act = act_of(n->op);
  switch (n->op) {
    case IR_OP_LeakyRelu: op->alpha = ir_node_attr_float(n, "alpha", 0.01f); break;
    case IR_OP_HardSigmoid:
      op->alpha = ir_node_attr_float(n, "alpha", 0.2f);
      op->beta = ir_node_attr_float(n, "beta", 0.5f);
      break;
    case IR_OP_Clip:
      if (b->g->opset < 11) {
        op->alpha = ir_node_attr_float(n, "min", -3.402823466e38f);
        op->beta = ir_node_attr_float(n, "max", 3.402823466e38f);
      } else {
        op->alpha = const_scalar(b, n, 1, -3.402823466e38f);
        op->beta = const_scalar(b, n, 2, 3.402823466e38f);
      }
      break;
    default: break;
  }
  /* Post-ops fused into the node run after its own function. */
  const cuda_epilogue more = epilogue_of(n);
  epilogue_append(&e, &more);
  add_copy(b, x, y, ir_op_name(n->op), &e);
  b->value_t[n->outputs[0]] = y;
  return NULL;
}

static inferd_error *build_binary(builder *b, const ir_node *n) {
  int in[2];
  ERR_TRY(value_any(b, n->inputs[0], &in[0]));
  ERR_TRY(value_any(b, n->inputs[1], &in[1]));
  int rank;
  int64_t dims[IR_MAX_RANK];
  value_dims(b, n->outputs[0], &rank, dims);
  bool nhwc = false;
  for (int k = 0; k < 2; k++) {
    const cuda_tensor *t = &b->p->tensors[in[k]];
    if (t->layout == CUDA_LAYOUT_NHWC && rank == 4 && t->cphys == t->dims[1] && t->dims[0] == dims[0] &&
        t->dims[1] == dims[1] && t->dims[2] == dims[2] && t->dims[3] == dims[3])
      nhwc = true;
  }
  /* An NHWC operand under a plain output (or one broadcast) is read plain. */
  for (int k = 0; k < 2; k++) {
    const cuda_tensor *t = &b->p->tensors[in[k]];
    if (t->layout == CUDA_LAYOUT_NHWC && (!nhwc || t->cphys != t->dims[1])) ERR_TRY(value_plain(b, n->inputs[k], &in[k]));
  }
  int y = tensor_add(b, n->outputs[0], nhwc ? CUDA_LAYOUT_NHWC : CUDA_LAYOUT_PLAIN, b->plan->dtype, rank ? rank : 1,
                     rank ? dims : (int64_t[]){1});
  const cuda_binary_op op = n->op == IR_OP_Sub   ? CUDA_BIN_SUB
                            : n->op == IR_OP_Mul ? CUDA_BIN_MUL
                            : n->op == IR_OP_Div ? CUDA_BIN_DIV
                                                 : CUDA_BIN_ADD;
  cuda_step *s = add_binary(b, op, in[0], in[1], y, ir_op_name(n->op));
  s->epilogue = epilogue_of(n);
  for (int i = 0; i < s->epilogue.n_ops; i++)
    if (s->epilogue.ops[i].is_sum) return ir_node_error(b->g, n, INFERD_ERROR_UNSUPPORTED, "a fused sum after %s", ir_op_name(n->op));
  b->value_t[n->outputs[0]] = y;
  return NULL;
}

/* Elements in dims [0, rank - 2): a matrix operand's batch. */
static int64_t batch_count(const cuda_tensor *t) {
  int64_t n = 1;
  for (int d = 0; d + 2 < t->rank; d++) n *= t->dims[d];
  return n;
}

/* A batched product's operand t as strided matrices over the output's
 * batch (`out_rank` dims of extents `out_dims`, the last two its own
 * matrix): its own tensor when its batch is the whole batch, else a dense
 * copy with the broadcast batch dims repeated. */
static int batched_operand(builder *b, int t, int value, int out_rank, const int64_t *out_dims) {
  const cuda_tensor *src = &b->p->tensors[t];
  int64_t total = 1;
  for (int d = 0; d + 2 < out_rank; d++) total *= out_dims[d];
  if (batch_count(src) == total) return t;
  int64_t dims[IR_MAX_RANK];
  for (int d = 0; d + 2 < out_rank; d++) dims[d] = out_dims[d];
  dims[out_rank - 2] = src->dims[src->rank - 2];
  dims[out_rank - 1] = src->dims[src->rank - 1];
  int full = tensor_add(b, value, CUDA_LAYOUT_PLAIN, src->dtype, out_rank, dims);
  add_copy(b, t, full, "batch broadcast", NULL);
  return full;
}

/* Whether Gemm's C is a constant row of N, for the product's bias
 * epilogue; any other C is broadcast into y by a copy, which the product
 * then accumulates into with beta. */
static bool bias_is_row(const ir_value *c, int64_t n) {
  return c->kind == IR_VALUE_CONST && c->data && c->shape.rank >= 1 && c->shape.dims[c->shape.rank - 1] == n &&
         ir_shape_numel(&c->shape, 1) == n;
}

static inferd_error *build_gemm(builder *b, const ir_node *n) {
  const bool gemm = n->op == IR_OP_Gemm;
  int x;
  ERR_TRY(value_plain(b, n->inputs[0], &x));
  const ir_value *wv = &b->g->values[n->inputs[1]];
  const int xrank = b->p->tensors[x].rank;
  if (wv->shape.rank < 2 || xrank < 2)
    return ir_node_error(b->g, n, INFERD_ERROR_UNSUPPORTED, "a product with a 1-D operand");
  const bool trans_a = gemm && ir_node_attr_int(n, "transA", 0);
  const bool trans_b = gemm && ir_node_attr_int(n, "transB", 0);
  const float alpha = gemm ? ir_node_attr_float(n, "alpha", 1.0f) : 1.0f;
  const float beta = gemm ? ir_node_attr_float(n, "beta", 1.0f) : 1.0f;
  int rank;
  int64_t odims[IR_MAX_RANK];
  value_dims(b, n->outputs[0], &rank, odims);
  cuda_gemm gd = {.batch = 1, .alpha = alpha, .x_km = trans_a};
  int w;
  if (wv->shape.rank == 2 && !runtime_input(b, n, 1)) {
    /* Weights: [N,K] on the device, converted once. */
    ERR_TRY(const_tensor(b, n->inputs[1], CUDA_WEIGHT_NK, 0, !trans_b, &w));
  } else {
    ERR_TRY(value_plain(b, n->inputs[1], &w));
    gd.w_kn = !trans_b;
  }
  const cuda_tensor *wt = &b->p->tensors[w], *xt = &b->p->tensors[x];
  gd.n = gd.w_kn ? wt->dims[wt->rank - 1] : wt->dims[wt->rank - 2];
  gd.k = gd.w_kn ? wt->dims[wt->rank - 2] : wt->dims[wt->rank - 1];
  if (wt->rank == 2) {
    /* x's leading dims fold into M. */
    gd.m = 1;
    for (int d = 0; d < xt->rank - 1; d++) gd.m *= xt->dims[d];
    if (trans_a) gd.m = xt->dims[1];
    if ((trans_a ? xt->dims[0] : xt->dims[xt->rank - 1]) != gd.k)
      return ir_node_error(b->g, n, INFERD_ERROR_INTERNAL, "product dimensions disagree");
  } else {
    /* Batched MatMul: both operands as strided matrices over y's batch. */
    gd.m = xt->dims[xt->rank - 2];
    if (xt->dims[xt->rank - 1] != gd.k) return ir_node_error(b->g, n, INFERD_ERROR_INTERNAL, "product dimensions disagree");
    x = batched_operand(b, x, n->inputs[0], rank, odims);
    w = batched_operand(b, w, n->inputs[1], rank, odims);
    int64_t total = 1;
    for (int d = 0; d + 2 < rank; d++) total *= odims[d];
    if (total > INT32_MAX) return ir_node_error(b->g, n, INFERD_ERROR_UNSUPPORTED, "a batch of %lld products", (long long)total);
    gd.batch = (int)total;
    gd.stride_x = gd.m * gd.k, gd.stride_w = gd.k * gd.n, gd.stride_y = gd.m * gd.n;
  }
  int bias = -1;
  int y = tensor_for_value(b, n->outputs[0], CUDA_LAYOUT_PLAIN);
  if (gemm && ir_node_input(n, 2) >= 0 && beta != 0.0f) {
    const ir_value *cv = &b->g->values[n->inputs[2]];
    if (beta == 1.0f && bias_is_row(cv, gd.n)) {
      ERR_TRY(const_tensor(b, n->inputs[2], CUDA_WEIGHT_PLAIN, 0, false, &bias));
    } else {
      int c;
      ERR_TRY(value_plain(b, n->inputs[2], &c));
      add_copy(b, c, y, "gemm C", NULL);
      gd.beta = beta;
    }
  }
  cuda_step *s = step_add(b, CUDA_STEP_GEMM, gd.batch > 1 ? "batched gemm" : "gemm");
  s->x = x, s->w = w, s->bias = bias, s->y = y;
  s->epilogue = epilogue_of(n);
  for (int i = 0; i < s->epilogue.n_ops; i++)
    if (s->epilogue.ops[i].is_sum) return ir_node_error(b->g, n, INFERD_ERROR_UNSUPPORTED, "a fused sum after a product");
  s->gemm = gd;
  s->gflop = 2.0 * (double)gd.batch * (double)gd.m * (double)gd.n * (double)gd.k * 1e-9;
  touch(b, x), touch(b, w), touch(b, bias), touch(b, y);
  b->value_t[n->outputs[0]] = y;
  return NULL;
}

static inferd_error *build_view(builder *b, const ir_node *n) {
  const int v = n->inputs[0];
  int t;
  if (n->op == IR_OP_Identity || n->op == IR_OP_Dropout || n->op == IR_OP_Cast) {
    ERR_TRY(value_any(b, v, &t));
  } else {
    ERR_TRY(value_plain(b, v, &t));
  }
  int rank;
  int64_t dims[IR_MAX_RANK];
  value_dims(b, n->outputs[0], &rank, dims);
  const cuda_tensor *src = &b->p->tensors[t];
  int y = view_of(b, t, n->outputs[0], src->layout, rank ? rank : 1, rank ? dims : (int64_t[]){1});
  b->value_t[n->outputs[0]] = y;
  if (src->layout == CUDA_LAYOUT_PLAIN) b->value_plain[n->outputs[0]] = y;
  return NULL;
}

static inferd_error *build_softmax(builder *b, const ir_node *n) {
  int x;
  ERR_TRY(value_plain(b, n->inputs[0], &x));
  const cuda_tensor *xt = &b->p->tensors[x];
  int64_t axis = ir_node_attr_int(n, "axis", b->g->opset >= 13 ? -1 : 1);
  if (axis < 0) axis += xt->rank;
  /* Before opset 13 the input is flattened at `axis` (rows of the dims
   * from it on); from 13 the softmax runs along `axis` alone, its rows
   * `inner` elements apart. */
  int64_t rows = 1, cols = 1, inner = 1;
  for (int d = 0; d < xt->rank; d++) {
    if (d < axis) rows *= xt->dims[d];
    else if (d == axis || b->g->opset < 13) cols *= xt->dims[d];
    else inner *= xt->dims[d];
  }
  int y = tensor_for_value(b, n->outputs[0], CUDA_LAYOUT_PLAIN);
  cuda_step *s = step_add(b, CUDA_STEP_SOFTMAX, inner > 1 ? "softmax (strided)" : "softmax");
  s->x = x, s->y = y, s->rows = rows, s->cols = cols, s->inner = inner;
  touch(b, x), touch(b, y);
  b->value_t[n->outputs[0]] = y;
  return NULL;
}

/* Inference BatchNormalization, its four vectors constants or computed at
 * run time alike. (One after a convolution with constants is folded into
 * it before the backend sees the graph.) */
static inferd_error *build_batchnorm(builder *b, const ir_node *n) {
  int x;
  ERR_TRY(value_any(b, n->inputs[0], &x));
  if (b->p->tensors[x].layout == CUDA_LAYOUT_NHWC && b->p->tensors[x].cphys != b->p->tensors[x].dims[1])
    ERR_TRY(value_plain(b, n->inputs[0], &x));
  int params[4];
  for (int k = 0; k < 4; k++) ERR_TRY(value_plain(b, n->inputs[k + 1], &params[k]));
  const cuda_layout layout = b->p->tensors[x].layout;
  int y = tensor_for_value(b, n->outputs[0], layout);
  const cuda_tensor *xt = &b->p->tensors[x];
  cuda_step *s = step_add(b, CUDA_STEP_BATCHNORM, "batchnorm");
  s->x = x, s->y = y;
  memcpy(s->params, params, sizeof(params));
  s->epsilon = ir_node_attr_float(n, "epsilon", 1e-5f);
  s->rows = (int64_t)(xt->bytes / cuda_dtype_size(xt->dtype));
  s->cols = xt->rank > 1 ? xt->dims[1] : 1;
  s->inner = 1;
  if (layout == CUDA_LAYOUT_PLAIN)
    for (int d = 2; d < xt->rank; d++) s->inner *= xt->dims[d];
  touch(b, x), touch(b, y);
  for (int k = 0; k < 4; k++) touch(b, params[k]);
  b->value_t[n->outputs[0]] = y;
  return NULL;
}

static inferd_error *build_reduce(builder *b, const ir_node *n) {
  int x;
  ERR_TRY(value_plain(b, n->inputs[0], &x));
  const int rank = b->g->values[n->inputs[0]].shape.rank;
  bool mask[IR_MAX_RANK], noop = rank == 0;
  if (rank > 0) ERR_TRY(ops_reduce_mask(b->g, n, rank, mask, &noop));
  int y = tensor_for_value(b, n->outputs[0], CUDA_LAYOUT_PLAIN);
  if (noop) {
    add_copy(b, x, y, "reduce (identity)", NULL);
    b->value_t[n->outputs[0]] = b->value_plain[n->outputs[0]] = y;
    return NULL;
  }
  if (rank > CUDA_MAX_DIMS)
    return ir_node_error(b->g, n, INFERD_ERROR_UNSUPPORTED, "a reduction over a rank-%d tensor", rank);
  const cuda_tensor *xt = &b->p->tensors[x];
  int64_t ls[IR_MAX_RANK];
  logical_strides(xt, ls);
  cuda_step *s = step_add(b, CUDA_STEP_REDUCE, ir_op_name(n->op));
  s->x = x, s->y = y;
  s->reduce.mean = n->op == IR_OP_ReduceMean;
  for (int d = 0; d < rank; d++) {
    cuda_index_space *sp = mask[d] ? &s->reduce.reduced : &s->reduce.kept;
    int64_t *st = mask[d] ? s->reduce.reduced_strides : s->reduce.kept_strides;
    st[sp->rank] = ls[d];
    sp->dims[sp->rank++] = xt->dims[d];
  }
  touch(b, x), touch(b, y);
  b->value_t[n->outputs[0]] = b->value_plain[n->outputs[0]] = y;
  return NULL;
}

static inferd_error *build_pad(builder *b, const ir_node *n) {
  int x;
  ERR_TRY(value_plain(b, n->inputs[0], &x));
  const int rank = b->g->values[n->inputs[0]].shape.rank;
  if (rank > CUDA_MAX_DIMS) return ir_node_error(b->g, n, INFERD_ERROR_UNSUPPORTED, "Pad of a rank-%d tensor", rank);
  int64_t pads[2 * IR_MAX_RANK];
  ops_pad_mode mode;
  ERR_TRY(ops_pad_args(b->g, n, NULL, rank, pads, &mode));
  int fill = -1;
  float value = 0.0f;
  if (b->g->opset < 11) value = ir_node_attr_float(n, "value", 0.0f);
  else if (runtime_input(b, n, 2)) ERR_TRY(value_plain(b, n->inputs[2], &fill));
  else value = const_scalar(b, n, 2, 0.0f);
  int y = tensor_for_value(b, n->outputs[0], CUDA_LAYOUT_PLAIN);
  const cuda_tensor *xt = &b->p->tensors[x], *yt = &b->p->tensors[y];
  cuda_step *s = step_add(b, CUDA_STEP_PAD, "pad");
  s->x = x, s->y = y, s->params[0] = fill;
  s->pad = (cuda_pad_desc){.rank = rank,
                           .mode = mode == OPS_PAD_EDGE      ? CUDA_PAD_EDGE
                                   : mode == OPS_PAD_REFLECT ? CUDA_PAD_REFLECT
                                                             : CUDA_PAD_CONSTANT,
                           .value = value};
  for (int d = 0; d < rank; d++) {
    s->pad.in_dims[d] = xt->dims[d];
    s->pad.out_dims[d] = yt->dims[d];
    s->pad.pad_begin[d] = pads[d];
  }
  touch(b, x), touch(b, y), touch(b, fill);
  b->value_t[n->outputs[0]] = b->value_plain[n->outputs[0]] = y;
  return NULL;
}

/* Cast between floating-point types. Values live in the compute type, so
 * a Cast to it, or to fp32, which holds every compute type exactly, is a
 * view; a Cast to a narrower type rounds through a tensor of that type. */
static inferd_error *build_cast(builder *b, const ir_node *n) {
  cuda_dtype to;
  if (!dtype_of(b->g->values[n->outputs[0]].dtype, &to))
    return ir_node_error(b->g, n, INFERD_ERROR_UNSUPPORTED, "Cast to %s does not run on the GPU",
                         inferd_datatype_name(b->g->values[n->outputs[0]].dtype));
  if (to == b->plan->dtype || to == CUDA_F32) return build_view(b, n);
  int x;
  ERR_TRY(value_any(b, n->inputs[0], &x));
  if (b->p->tensors[x].layout == CUDA_LAYOUT_NHWC && b->p->tensors[x].cphys != b->p->tensors[x].dims[1])
    ERR_TRY(value_plain(b, n->inputs[0], &x));
  const cuda_layout layout = b->p->tensors[x].layout;
  int64_t dims[IR_MAX_RANK];
  memcpy(dims, b->p->tensors[x].dims, sizeof(dims));
  const int rank = b->p->tensors[x].rank;
  int narrow = tensor_add(b, n->outputs[0], layout, to, rank, dims);
  add_copy(b, x, narrow, "cast", NULL);
  int y = tensor_add(b, n->outputs[0], layout, b->plan->dtype, rank, dims);
  add_copy(b, narrow, y, "cast back", NULL);
  b->value_t[n->outputs[0]] = y;
  if (layout == CUDA_LAYOUT_PLAIN) b->value_plain[n->outputs[0]] = y;
  return NULL;
}

static inferd_error *build_transpose(builder *b, const ir_node *n) {
  int x;
  ERR_TRY(value_plain(b, n->inputs[0], &x));
  int y = tensor_for_value(b, n->outputs[0], CUDA_LAYOUT_PLAIN);
  const cuda_tensor *xt = &b->p->tensors[x], *yt = &b->p->tensors[y];
  int np;
  const int64_t *perm = ir_node_attr_ints(n, "perm", &np);
  cuda_step *s = step_add(b, CUDA_STEP_COPY, "transpose");
  int order[IR_MAX_RANK];
  space_for(yt, &s->space, order);
  view_over(b, y, yt, order, s->space.rank, &s->out);
  int64_t ls[IR_MAX_RANK];
  logical_strides(xt, ls);
  s->a.tensor = x;
  for (int d = 0; d < yt->rank; d++) s->a.strides[d] = ls[perm && np == yt->rank ? perm[d] : yt->rank - 1 - d];
  touch(b, x), touch(b, y);
  b->value_t[n->outputs[0]] = y;
  return NULL;
}

static inferd_error *build_concat(builder *b, const ir_node *n) {
  int y = tensor_for_value(b, n->outputs[0], CUDA_LAYOUT_PLAIN);
  int64_t axis = ir_node_attr_int(n, "axis", 0);
  const int rank = b->p->tensors[y].rank;
  if (axis < 0) axis += rank;
  int64_t ys[IR_MAX_RANK];
  logical_strides(&b->p->tensors[y], ys);
  int64_t at = 0;
  for (int k = 0; k < n->n_inputs; k++) {
    int x;
    ERR_TRY(value_plain(b, n->inputs[k], &x));
    const cuda_tensor *xt = &b->p->tensors[x];
    cuda_step *s = step_add(b, CUDA_STEP_COPY, "concat");
    s->space.rank = rank;
    for (int d = 0; d < rank; d++) s->space.dims[d] = xt->dims[d];
    s->out.tensor = y;
    s->out.offset = at * ys[axis];
    for (int d = 0; d < rank; d++) s->out.strides[d] = ys[d];
    logical_strides(xt, s->a.strides);
    s->a.tensor = x;
    at += xt->dims[axis];
    touch(b, x), touch(b, y);
  }
  b->value_t[n->outputs[0]] = y;
  return NULL;
}

static inferd_error *build_node(builder *b, const ir_node *n) {
  switch (n->op) {
    case IR_OP_Conv: return build_conv(b, n);
    case IR_OP_MaxPool:
    case IR_OP_AveragePool:
    case IR_OP_GlobalAveragePool:
    case IR_OP_GlobalMaxPool: return build_pool(b, n);
    case IR_OP_Relu:
    case IR_OP_LeakyRelu:
    case IR_OP_Clip:
    case IR_OP_Sigmoid:
    case IR_OP_HardSigmoid:
    case IR_OP_HardSwish:
    case IR_OP_Tanh: return build_unary(b, n);
    case IR_OP_Add:
    case IR_OP_Sub:
    case IR_OP_Mul:
    case IR_OP_Div: return build_binary(b, n);
    case IR_OP_Gemm:
    case IR_OP_MatMul: return build_gemm(b, n);
    case IR_OP_Flatten:
    case IR_OP_Reshape:
    case IR_OP_Squeeze:
    case IR_OP_Unsqueeze:
    case IR_OP_Identity:
    case IR_OP_Dropout: return build_view(b, n);
    case IR_OP_Softmax: return build_softmax(b, n);
    case IR_OP_BatchNormalization: return build_batchnorm(b, n);
    case IR_OP_ReduceMean: return build_reduce(b, n);
    case IR_OP_Pad: return build_pad(b, n);
    case IR_OP_Cast: return build_cast(b, n);
    case IR_OP_Transpose: return build_transpose(b, n);
    case IR_OP_Concat: return build_concat(b, n);
    default: return ir_node_error(b->g, n, INFERD_ERROR_UNSUPPORTED, "not supported by the cuda backend");
  }
}

/* Every consumer of graph input v is a dense 2-D convolution with constant
 * filters: its NHWC copy may carry channels padded to a multiple of 8, which
 * the tensor cores want (the filters are padded alike when uploaded). */
static bool only_dense_convs_read(const ir_graph *g, int v) {
  bool any = false;
  for (int i = 0; i < g->n_nodes; i++) {
    const ir_node *n = &g->nodes[i];
    if (n->dead) continue;
    for (int k = 0; k < n->n_inputs; k++)
      if (n->inputs[k] == v) {
        if (n->op != IR_OP_Conv || k != 0 || ir_node_attr_int(n, "group", 1) != 1 ||
            g->values[n->inputs[1]].kind != IR_VALUE_CONST)
          return false;
        any = true;
      }
  }
  for (int j = 0; j < g->n_outputs; j++)
    if (g->outputs[j] == v) return false;
  return any;
}

static inferd_error *build_io_and_nodes(builder *b) {
  const ir_graph *g = b->g;
  cuda_program *p = b->p;
  for (int i = 0; i < g->n_inputs; i++) {
    const int v = g->inputs[i];
    cuda_dtype raw_type;
    if (!dtype_of(g->values[v].dtype, &raw_type))
      return err_new(INFERD_ERROR_UNSUPPORTED, "input '%s' has type %s, which the cuda backend does not run",
                     g->values[v].name, inferd_datatype_name(g->values[v].dtype));
    int rank;
    int64_t dims[IR_MAX_RANK];
    value_dims(b, v, &rank, dims);
    int raw = tensor_add(b, v, CUDA_LAYOUT_PLAIN, raw_type, rank ? rank : 1, rank ? dims : (int64_t[]){1});
    p->tensors[raw].first = -1; /* written by the copy in */
    p->input_tensor[i] = raw;
    b->node = NULL;
    if (rank == 4) {
      int t = tensor_add(b, v, CUDA_LAYOUT_NHWC, b->plan->dtype, 4, dims);
      if (raw_type == CUDA_F32) {
        /* fp32 NCHW, the usual image input: one kernel converts and pads. */
        if (dims[1] % 8 && dims[1] < 8 && b->plan->dtype != CUDA_F32 && only_dense_convs_read(g, v)) {
          p->tensors[t].cphys = 8;
          p->tensors[t].bytes = (size_t)(dims[0] * dims[2] * dims[3] * 8) * cuda_dtype_size(b->plan->dtype);
        }
        cuda_step *s = step_add(b, CUDA_STEP_TO_NHWC, "input->nhwc");
        s->x = raw, s->y = t;
        touch(b, raw), touch(b, t);
      } else {
        add_copy(b, raw, t, "input->nhwc", NULL);
      }
      b->value_t[v] = t;
    } else if (raw_type == b->plan->dtype) {
      b->value_t[v] = b->value_plain[v] = raw;
    } else {
      int t = tensor_add(b, v, CUDA_LAYOUT_PLAIN, b->plan->dtype, rank ? rank : 1, rank ? dims : (int64_t[]){1});
      add_copy(b, raw, t, "input->compute", NULL);
      b->value_t[v] = b->value_plain[v] = t;
    }
  }
  for (int i = 0; i < g->n_nodes; i++) {
    if (g->nodes[i].dead) continue;
    b->node = &g->nodes[i];
    ERR_TRY(build_node(b, &g->nodes[i]));
  }
  b->node = NULL;
  for (int j = 0; j < g->n_outputs; j++) {
    const int v = g->outputs[j];
    cuda_dtype raw_type;
    if (!dtype_of(g->values[v].dtype, &raw_type))
      return err_new(INFERD_ERROR_UNSUPPORTED, "output '%s' has type %s, which the cuda backend does not run",
                     g->values[v].name, inferd_datatype_name(g->values[v].dtype));
    int src;
    ERR_TRY(value_plain(b, v, &src));
    const cuda_tensor *st = &p->tensors[src];
    int raw = tensor_add(b, v, CUDA_LAYOUT_PLAIN, raw_type, st->rank, st->dims);
    add_copy(b, src, raw, "output", NULL);
    p->output_tensor[j] = raw;
  }
  for (int j = 0; j < g->n_outputs; j++) p->tensors[p->output_tensor[j]].last = p->n_steps; /* read by the copy out */
  return NULL;
}

static inferd_error *place(cuda_program *p) {
  memplan_buffer *bufs = mem_zalloc((size_t)(p->n_tensors + 1) * sizeof(*bufs));
  int *which = mem_zalloc((size_t)(p->n_tensors + 1) * sizeof(int));
  int n = 0;
  for (int t = 0; t < p->n_tensors; t++) {
    cuda_tensor *r = &p->tensors[t];
    if (r->alias_of >= 0 || r->storage != CUDA_STORAGE_ARENA) continue;
    if (r->first == INT_MAX) r->first = r->last >= 0 ? r->last : 0;
    if (r->first < 0) r->first = 0;
    if (r->last < r->first) r->last = r->first;
    bufs[n] = (memplan_buffer){.size = r->bytes ? r->bytes : ARENA_ALIGN, .first = r->first, .last = r->last};
    which[n++] = t;
  }
  p->arena_size = memplan_assign(bufs, n, ARENA_ALIGN);
  for (int i = 0; i < n; i++) p->tensors[which[i]].offset = bufs[i].offset;
  free(bufs);
  free(which);
  return NULL;
}

static inferd_error *autotune(cuda_plan *plan, const cuda_tuner *tuner, cuda_program *p) {
  void *arena = NULL, *workspace = NULL;
  CUDA_TRY(cudaMalloc(&arena, p->arena_size ? p->arena_size : 256), "allocating the autotuning arena");
  cudaError_t st = cudaMalloc(&workspace, AUTOTUNE_WORKSPACE);
  if (st != cudaSuccess) {
    cudaFree(arena);
    return cuda_rt_error(st, "allocating the autotuning workspace");
  }
  inferd_error *e = NULL;
  if (cuda_launch_fill_random((cuda_stream_t)tuner->stream, CUDA_F16, arena, (int64_t)(p->arena_size / 2), 7))
    e = err_new(INFERD_ERROR_INTERNAL, "filling the autotuning arena failed");
  for (int i = 0; i < p->n_steps && !e; i++) {
    cuda_step *s = &p->steps[i];
    if (s->kind == CUDA_STEP_CONV) e = cuda_conv_prepare(plan, tuner, p, s, arena, workspace, AUTOTUNE_WORKSPACE);
    else if (s->kind == CUDA_STEP_GEMM) {
      const uint64_t t0 = clock_now_ns();
      e = cuda_gemm_prepare(plan, tuner, p, s, arena, workspace, AUTOTUNE_WORKSPACE);
      plan->stats.gemm_ms += (double)(clock_now_ns() - t0) * 1e-6;
    }
    if (e) break;
    const size_t ws = s->kind == CUDA_STEP_CONV ? s->conv.workspace : s->kind == CUDA_STEP_GEMM ? s->gemm.workspace : 0;
    if (ws > p->workspace_size) p->workspace_size = ws;
  }
  cudaError_t sync = cudaStreamSynchronize(tuner->stream);
  if (!e && sync != cudaSuccess) e = cuda_rt_error(sync, "autotuning");
  cudaFree(arena);
  cudaFree(workspace);
  return e;
}

inferd_error *cuda_program_build(cuda_plan *plan, const cuda_tuner *tuner, int bucket, cuda_program **out) {
  const ir_graph *g = plan->g;
  cuda_program *p = mem_zalloc(sizeof(*p));
  p->batch = plan->buckets[bucket];
  p->input_tensor = mem_zalloc((size_t)(g->n_inputs + 1) * sizeof(int));
  p->output_tensor = mem_zalloc((size_t)(g->n_outputs + 1) * sizeof(int));
  builder b = {.plan = plan, .g = g, .p = p, .batch = p->batch};
  b.value_t = mem_alloc((size_t)(g->n_values + 1) * sizeof(int));
  b.value_plain = mem_alloc((size_t)(g->n_values + 1) * sizeof(int));
  for (int v = 0; v < g->n_values; v++) b.value_t[v] = b.value_plain[v] = -1;
  inferd_error *e = build_io_and_nodes(&b);
  if (!e) e = place(p);
  if (!e) e = autotune(plan, tuner, p);
  free(b.value_t);
  free(b.value_plain);
  if (e) {
    cuda_program_free(plan, p);
    return e;
  }
  log_verbose("cuda program for batch %d: %d steps, %d tensors, arena %zu bytes, workspace %zu", p->batch,
              p->n_steps, p->n_tensors, p->arena_size, p->workspace_size);
  *out = p;
  return NULL;
}

void cuda_program_free(const cuda_plan *plan, cuda_program *p) {
  if (!p) return;
  for (int i = 0; i < p->n_steps; i++) {
    if (p->steps[i].kind == CUDA_STEP_CONV) cuda_conv_release(plan->libs, &p->steps[i].conv);
    if (p->steps[i].kind == CUDA_STEP_GEMM) cuda_gemm_release(plan->libs, &p->steps[i].gemm);
  }
  free(p->tensors);
  free(p->steps);
  free(p->input_tensor);
  free(p->output_tensor);
  free(p);
}

static void operand_of(const cuda_program *p, const cuda_view *v, void *arena, cuda_operand *o) {
  const cuda_tensor *t = &p->tensors[v->tensor];
  o->data = (char *)cuda_tensor_ptr(p, v->tensor, arena) + v->offset * (int64_t)cuda_dtype_size(t->dtype);
  o->dtype = t->dtype;
  memcpy(o->strides, v->strides, sizeof(o->strides));
}

static bool env_on(const char *name) {
  const char *v = getenv(name);
  return v && *v == '1';
}

/* Diagnostics for the TF32 runs that differ (bench/gpu/tf32_race.sh), read
 * once: INFERD_CUDA_CHECK_CONVS=1 (check_conv below); INFERD_CUDA_SYNC_CONVS=1
 * waits for the stream after every convolution, INFERD_CUDA_SYNC_STEPS=a-b
 * after those of steps a to b only. */
static struct {
  bool check_convs;
  int sync_from, sync_to;
} diagnostics;
static pthread_once_t diagnostics_once = PTHREAD_ONCE_INIT;

static void read_diagnostics(void) {
  diagnostics.check_convs = env_on("INFERD_CUDA_CHECK_CONVS");
  diagnostics.sync_from = -1;
  diagnostics.sync_to = -2;
  if (env_on("INFERD_CUDA_SYNC_CONVS")) diagnostics.sync_from = 0, diagnostics.sync_to = INT_MAX;
  else if (getenv("INFERD_CUDA_SYNC_STEPS"))
    sscanf(getenv("INFERD_CUDA_SYNC_STEPS"), "%d-%d", &diagnostics.sync_from, &diagnostics.sync_to);
}

/* Diagnostic (INFERD_CUDA_CHECK_CONVS=1, steps run directly): after each
 * convolution a cuDNN engine ran, the direct kernel computes the same step
 * from the same inputs into a buffer of its own, and the largest difference
 * over the output's range is logged (a warning past 2% of it), with the
 * engine's name: an engine that is wrong for one layer shows there. */
static void check_conv(cuda_context *ctx, const cuda_program *p, const cuda_step *s, void *arena) {
  cudaStream_t stream = ctx->stream;
  enum cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  if (s->conv.mode == CUDA_CONV_DIRECT || cudaStreamIsCapturing(stream, &capturing) != cudaSuccess ||
      capturing != cudaStreamCaptureStatusNone)
    return;
  const cuda_tensor *yt = &p->tensors[s->y];
  const size_t bytes = yt->bytes, size = cuda_dtype_size(yt->dtype);
  if (yt->dtype != CUDA_F32 && yt->dtype != CUDA_F16) return;
  void *ref = NULL;
  float *got = malloc(bytes + 1), *want = malloc(bytes + 1);
  void *bias = s->bias >= 0 ? cuda_tensor_ptr(p, s->bias, arena) : NULL;
  void *sum = s->sum >= 0 ? cuda_tensor_ptr(p, s->sum, arena) : NULL;
  if (!got || !want || cudaMalloc(&ref, bytes) != cudaSuccess ||
      cuda_launch_conv_direct((cuda_stream_t)stream, yt->dtype, &s->conv.desc, cuda_tensor_ptr(p, s->x, arena),
                              cuda_tensor_ptr(p, s->w, arena), bias, sum, ref, &s->epilogue) ||
      cudaStreamSynchronize(stream) != cudaSuccess ||
      cudaMemcpy(got, cuda_tensor_ptr(p, s->y, arena), bytes, cudaMemcpyDeviceToHost) != cudaSuccess ||
      cudaMemcpy(want, ref, bytes, cudaMemcpyDeviceToHost) != cudaSuccess) {
    log_warn("conv check of '%s' did not run", s->name);
    cudaGetLastError();
  } else {
    const size_t n = bytes / size;
    double range = 0, worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
      const double g = size == 4 ? got[i] : f16_to_f32(((const uint16_t *)got)[i]);
      const double w = size == 4 ? want[i] : f16_to_f32(((const uint16_t *)want)[i]);
      if (fabs(w) > range) range = fabs(w);
      if (!(fabs(g - w) <= worst)) worst = fabs(g - w), at = i;
    }
    const int64_t per_row = (int64_t)(n / (size_t)(yt->dims[0] > 0 ? yt->dims[0] : 1));
    if (!(worst <= 0.02 * range))
      log_warn("conv check: '%s' (batch %d, %s) differs from the direct kernel by %g over a range of %g, at "
               "element %zu (row %lld)",
               s->name, p->batch, s->conv.engine, worst, range, at, (long long)((int64_t)at / per_row));
    else
      log_verbose("conv check: '%s' (batch %d, %s) within %g of the direct kernel (range %g)", s->name, p->batch,
                  s->conv.engine, worst, range);
  }
  cudaFree(ref);
  free(got);
  free(want);
}

/* Queues steps [from, to) of p. */
static inferd_error *launch_range(cuda_context *ctx, const cuda_program *p, int from, int to, void *arena,
                                  void *workspace, bool profile, double *step_ms) {
  const cuda_libs *l = ctx->plan->libs;
  cudaStream_t stream = ctx->stream;
  cudaEvent_t ev[2] = {NULL, NULL};
  if (profile) {
    CUDA_TRY(cudaEventCreate(&ev[0]), "creating an event");
    CUDA_TRY(cudaEventCreate(&ev[1]), "creating an event");
  }
  inferd_error *e = NULL;
  pthread_once(&diagnostics_once, read_diagnostics);
  for (int i = from; i < to && !e; i++) {
    const cuda_step *s = &p->steps[i];
    if (profile) cudaEventRecord(ev[0], stream);
    cuda_operand out, a, bop;
    int rc = 0;
    switch (s->kind) {
      case CUDA_STEP_COPY:
        operand_of(p, &s->out, arena, &out);
        operand_of(p, &s->a, arena, &a);
        rc = cuda_launch_copy((cuda_stream_t)stream, &s->space, &out, &a, &s->epilogue);
        break;
      case CUDA_STEP_TO_NHWC: {
        const cuda_tensor *y = &p->tensors[s->y];
        rc = cuda_launch_nchw_to_nhwc((cuda_stream_t)stream, y->dtype, y->dims[0], y->dims[1], y->dims[2] * y->dims[3],
                                      y->cphys, cuda_tensor_ptr(p, s->x, arena), cuda_tensor_ptr(p, s->y, arena));
        break;
      }
      case CUDA_STEP_BINARY:
        operand_of(p, &s->out, arena, &out);
        operand_of(p, &s->a, arena, &a);
        operand_of(p, &s->b, arena, &bop);
        rc = cuda_launch_binary((cuda_stream_t)stream, s->binary, &s->space, &out, &a, &bop, &s->epilogue);
        break;
      case CUDA_STEP_CONV:
        e = cuda_conv_run(ctx->plan, ctx->dnn, stream, p, s, arena, workspace);
        if (!e && diagnostics.check_convs) check_conv(ctx, p, s, arena);
        if (!e && i >= diagnostics.sync_from && i <= diagnostics.sync_to) cudaStreamSynchronize(stream);
        break;
      case CUDA_STEP_GEMM: e = cuda_gemm_run(ctx->lt, l, stream, p, s, arena, workspace); break;
      case CUDA_STEP_POOL:
        rc = cuda_launch_pool((cuda_stream_t)stream, p->tensors[s->y].dtype, &s->pool, cuda_tensor_ptr(p, s->x, arena),
                              cuda_tensor_ptr(p, s->y, arena));
        break;
      case CUDA_STEP_SOFTMAX:
        if (s->inner > 1)
          rc = cuda_launch_softmax_strided((cuda_stream_t)stream, p->tensors[s->y].dtype, s->rows, s->cols, s->inner,
                                           cuda_tensor_ptr(p, s->x, arena), cuda_tensor_ptr(p, s->y, arena),
                                           s->log_softmax);
        else
          rc = cuda_launch_softmax((cuda_stream_t)stream, p->tensors[s->y].dtype, s->rows, s->cols,
                                   cuda_tensor_ptr(p, s->x, arena), cuda_tensor_ptr(p, s->y, arena), s->log_softmax);
        break;
      case CUDA_STEP_BATCHNORM:
        rc = cuda_launch_batchnorm((cuda_stream_t)stream, p->tensors[s->y].dtype, s->rows, s->cols, s->inner,
                                   cuda_tensor_ptr(p, s->x, arena), cuda_tensor_ptr(p, s->y, arena),
                                   cuda_tensor_ptr(p, s->params[0], arena), cuda_tensor_ptr(p, s->params[1], arena),
                                   cuda_tensor_ptr(p, s->params[2], arena), cuda_tensor_ptr(p, s->params[3], arena),
                                   s->epsilon);
        break;
      case CUDA_STEP_REDUCE:
        rc = cuda_launch_reduce((cuda_stream_t)stream, p->tensors[s->y].dtype, &s->reduce,
                                cuda_tensor_ptr(p, s->x, arena), cuda_tensor_ptr(p, s->y, arena));
        break;
      case CUDA_STEP_PAD:
        rc = cuda_launch_pad((cuda_stream_t)stream, p->tensors[s->y].dtype, &s->pad, cuda_tensor_ptr(p, s->x, arena),
                             cuda_tensor_ptr(p, s->y, arena),
                             s->params[0] >= 0 ? cuda_tensor_ptr(p, s->params[0], arena) : NULL);
        break;
    }
    if (rc) e = cuda_rt_error((cudaError_t)rc, s->what);
    if (e) e = err_wrap(e, "step %d ('%s')", i, s->name);
    if (profile && !e) {
      float ms = 0;
      cudaEventRecord(ev[1], stream);
      cudaEventSynchronize(ev[1]);
      cudaEventElapsedTime(&ms, ev[0], ev[1]);
      step_ms[i] = ms;
    }
  }
  if (ev[0]) cudaEventDestroy(ev[0]);
  if (ev[1]) cudaEventDestroy(ev[1]);
  return e;
}

double cuda_time_ms(const cuda_tuner *tuner, cuda_timed_fn run, void *arg) {
  cudaEvent_t a, b;
  if (cudaEventCreate(&a) != cudaSuccess) return -1;
  if (cudaEventCreate(&b) != cudaSuccess) {
    cudaEventDestroy(a);
    return -1;
  }
  double times[5];
  double result = -1;
  for (int i = 0; i < 3; i++) {
    inferd_error *e = run(arg);
    if (e) {
      inferd_error_delete(e);
      goto done;
    }
  }
  if (cudaStreamSynchronize(tuner->stream) != cudaSuccess) goto done;
  for (int i = 0; i < 5; i++) {
    cudaEventRecord(a, tuner->stream);
    inferd_error *e = run(arg);
    cudaEventRecord(b, tuner->stream);
    if (e) {
      inferd_error_delete(e);
      goto done;
    }
    float ms;
    if (cudaEventSynchronize(b) != cudaSuccess || cudaEventElapsedTime(&ms, a, b) != cudaSuccess) goto done;
    times[i] = ms;
  }
  for (int i = 1; i < 5; i++)
    for (int j = i; j > 0 && times[j] < times[j - 1]; j--) {
      double t = times[j];
      times[j] = times[j - 1];
      times[j - 1] = t;
    }
  result = times[2];
done:
  /* A failed launch leaves an error behind; clear it so the next candidate starts clean. */
  cudaGetLastError();
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return result;
}

inferd_error *cuda_program_launch(cuda_context *ctx, const cuda_program *p, void *arena, void *workspace,
                                  bool profile, double *step_ms) {
  return launch_range(ctx, p, 0, p->n_steps, arena, workspace, profile, step_ms);
}

inferd_error *cuda_program_launch_steps(cuda_context *ctx, const cuda_program *p, int from, int to, void *arena,
                                        void *workspace) {
  return launch_range(ctx, p, from, to, arena, workspace, false, NULL);
}

/* ---- the graph check (INFERD_CUDA_CHECK_GRAPHS) -------------------------- */

/* The tensor a step writes. */
static int step_output(const cuda_step *s) {
  return s->kind == CUDA_STEP_COPY || s->kind == CUDA_STEP_BINARY ? s->out.tensor : s->y;
}


/* Bytes of tensor t that differ between arenas a and b (host copies), and
 * the largest difference of an element read in its storage type. */
static size_t tensor_diff(const cuda_program *p, int t, const uint8_t *a, const uint8_t *b, double *max_diff) {
  const cuda_tensor *r = &p->tensors[root_of(p, t)];
  size_t n = 0;
  *max_diff = 0;
  if (r->storage != CUDA_STORAGE_ARENA) return 0;
  const uint8_t *x = a + r->offset, *y = b + r->offset;
  for (size_t i = 0; i < r->bytes; i++) n += x[i] != y[i];
  if (!n) return 0;
  const size_t es = cuda_dtype_size(r->dtype);
  for (size_t i = 0; i + es <= r->bytes; i += es) {
    double u, v;
    if (r->dtype == CUDA_F32) {
      float fu, fv;
      memcpy(&fu, x + i, 4), memcpy(&fv, y + i, 4);
      u = fu, v = fv;
    } else if (r->dtype == CUDA_F16 || r->dtype == CUDA_BF16) {
      uint16_t hu, hv;
      memcpy(&hu, x + i, 2), memcpy(&hv, y + i, 2);
      u = r->dtype == CUDA_F16 ? f16_to_f32(hu) : bf16_to_f32(hu);
      v = r->dtype == CUDA_F16 ? f16_to_f32(hv) : bf16_to_f32(hv);
    } else {
      continue;
    }
    const double d = fabs(u - v);
    if (!(d <= *max_diff)) *max_diff = d;
  }
  return n;
}

/* Runs [from, to) three times from one arena state: directly twice and once
 * through a graph captured from it, and copies the three results to host
 * buffers. */
static inferd_error *three_runs(cuda_context *ctx, const cuda_program *p, int from, int to, void *arenas[3],
                                uint8_t *host[3]) {
  const size_t size = p->arena_size;
  CUDA_TRY(cudaMemcpyAsync(arenas[1], arenas[0], size, cudaMemcpyDeviceToDevice, ctx->stream), "copying the arena");
  CUDA_TRY(cudaMemcpyAsync(arenas[2], arenas[0], size, cudaMemcpyDeviceToDevice, ctx->stream), "copying the arena");
  ERR_TRY(launch_range(ctx, p, from, to, arenas[0], ctx->workspace, false, NULL));
  ERR_TRY(launch_range(ctx, p, from, to, arenas[1], ctx->workspace, false, NULL));
  CUDA_TRY(cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeThreadLocal), "starting a capture");
  inferd_error *e = launch_range(ctx, p, from, to, arenas[2], ctx->workspace, false, NULL);
  cudaGraph_t graph = NULL;
  cudaError_t st = cudaStreamEndCapture(ctx->stream, &graph);
  if (e) {
    if (graph) cudaGraphDestroy(graph);
    return e;
  }
  cudaGraphExec_t exec = NULL;
  if (st == cudaSuccess) st = cudaGraphInstantiate(&exec, graph, 0);
  if (graph) cudaGraphDestroy(graph);
  if (st == cudaSuccess) st = cudaGraphLaunch(exec, ctx->stream);
  if (st == cudaSuccess) st = cudaStreamSynchronize(ctx->stream);
  if (exec) cudaGraphExecDestroy(exec);
  CUDA_TRY(st, "running the captured steps");
  for (int k = 0; k < 3; k++) CUDA_TRY(cudaMemcpy(host[k], arenas[k], size, cudaMemcpyDeviceToHost), "reading back");
  return NULL;
}

/* The tensors step s reads from the arena (up to 8). */
static int step_inputs(const cuda_step *s, int *t) {
  int n = 0;
  switch (s->kind) {
    case CUDA_STEP_COPY: t[n++] = s->a.tensor; break;
    case CUDA_STEP_BINARY: t[n++] = s->a.tensor, t[n++] = s->b.tensor; break;
    case CUDA_STEP_CONV:
    case CUDA_STEP_GEMM:
      t[n++] = s->x;
      if (s->w >= 0) t[n++] = s->w;
      if (s->sum >= 0) t[n++] = s->sum;
      break;
    case CUDA_STEP_BATCHNORM:
      t[n++] = s->x;
      for (int k = 0; k < 4; k++) t[n++] = s->params[k];
      break;
    case CUDA_STEP_PAD:
      t[n++] = s->x;
      if (s->params[0] >= 0) t[n++] = s->params[0];
      break;
    default: t[n++] = s->x; break;
  }
  return n;
}

/* Whether root tensor r holds one block of rows per batch item. */
static bool has_rows(const cuda_program *p, int r) {
  const cuda_tensor *x = &p->tensors[r];
  return x->storage == CUDA_STORAGE_ARENA && x->rank > 0 && x->dims[0] == p->batch && p->batch > 1 &&
         x->bytes % (size_t)p->batch == 0;
}

/* Fills the upper half of the rows of tensor t in `arena` with other values. */
static int perturb_rows(cuda_context *ctx, const cuda_program *p, int t, void *arena, uint32_t seed) {
  const int r = root_of(p, t);
  if (t < 0 || !has_rows(p, r)) return 0;
  const size_t row = p->tensors[r].bytes / (size_t)p->batch, lo = (size_t)(p->batch / 2) * row;
  uint8_t *base = (uint8_t *)arena + p->tensors[r].offset + lo;
  return cuda_launch_fill_random((cuda_stream_t)ctx->stream, CUDA_F16, base,
                                 (int64_t)((p->tensors[r].bytes - lo) / 2), seed);
}

/* Bytes of the lower half of the rows of tensor t that differ between two host arenas. */
static size_t lower_rows_diff(const cuda_program *p, int t, const uint8_t *a, const uint8_t *b) {
  const int r = root_of(p, t);
  if (!has_rows(p, r)) return 0;
  const size_t row = p->tensors[r].bytes / (size_t)p->batch, lo = (size_t)(p->batch / 2) * row;
  size_t n = 0;
  for (size_t i = 0; i < lo; i++) n += a[p->tensors[r].offset + i] != b[p->tensors[r].offset + i];
  return n;
}

/* The row check: runs [from, to) from `before` (a device arena, kept) and
 * from a copy of it where the upper half of the rows of tensors `perturb`
 * hold other values, and counts the bytes of the lower half of the written
 * tensors' rows that differ: a batch item's answer must not depend on
 * another's, nor on the rows past a batch smaller than the bucket. */
static inferd_error *row_check(cuda_context *ctx, const cuda_program *p, int from, int to, const int *perturb,
                               int n_perturb, void *before, void *arenas[2], uint8_t *host[2], size_t *n_diff) {
  const size_t size = p->arena_size;
  *n_diff = 0;
  CUDA_TRY(cudaMemcpyAsync(arenas[0], before, size, cudaMemcpyDeviceToDevice, ctx->stream), "copying the arena");
  CUDA_TRY(cudaMemcpyAsync(arenas[1], before, size, cudaMemcpyDeviceToDevice, ctx->stream), "copying the arena");
  for (int k = 0; k < n_perturb; k++)
    if (perturb_rows(ctx, p, perturb[k], arenas[1], 97u + (unsigned)k))
      return err_new(INFERD_ERROR_INTERNAL, "filling rows for the row check failed");
  ERR_TRY(launch_range(ctx, p, from, to, arenas[0], ctx->workspace, false, NULL));
  ERR_TRY(launch_range(ctx, p, from, to, arenas[1], ctx->workspace, false, NULL));
  CUDA_TRY(cudaStreamSynchronize(ctx->stream), "running the row check");
  for (int k = 0; k < 2; k++) CUDA_TRY(cudaMemcpy(host[k], arenas[k], size, cudaMemcpyDeviceToHost), "reading back");
  /* A whole program's intermediate tensors share memory with later ones:
   * only its outputs are still there at the end. */
  if (to - from > 1)
    for (int j = 0; j < ctx->plan->g->n_outputs; j++) *n_diff += lower_rows_diff(p, p->output_tensor[j], host[0], host[1]);
  else
    *n_diff = lower_rows_diff(p, step_output(&p->steps[from]), host[0], host[1]);
  return NULL;
}

inferd_error *cuda_program_check_graphs(cuda_context *ctx, const cuda_program *p) {
  const size_t size = p->arena_size ? p->arena_size : 256;
  void *arenas[4] = {NULL, NULL, NULL, NULL}; /* three runs' and the state before a step */
  uint8_t *host[3] = {NULL, NULL, NULL};
  inferd_error *e = NULL;
  for (int k = 0; k < 4 && !e; k++) {
    cudaError_t st = cudaMalloc(&arenas[k], size);
    if (st != cudaSuccess) e = cuda_rt_error(st, "allocating a check arena");
    if (k < 3) host[k] = mem_alloc(size);
  }
  if (!e && cuda_launch_fill_random((cuda_stream_t)ctx->stream, CUDA_F16, arenas[0], (int64_t)(size / 2), 3))
    e = err_new(INFERD_ERROR_INTERNAL, "filling the check arena failed");
  int bad_direct = 0, bad_graph = 0, bad_rows = 0;
  for (int i = 0; i < p->n_steps && !e; i++) {
    if (cudaMemcpyAsync(arenas[3], arenas[0], size, cudaMemcpyDeviceToDevice, ctx->stream) != cudaSuccess) {
      e = err_new(INFERD_ERROR_INTERNAL, "copying the check arena failed");
      break;
    }
    e = three_runs(ctx, p, i, i + 1, arenas, host);
    if (e) break;
    const cuda_step *s = &p->steps[i];
    const int t = step_output(s);
    double d_direct, d_graph;
    const size_t n_direct = tensor_diff(p, t, host[0], host[1], &d_direct);
    const size_t n_graph = tensor_diff(p, t, host[0], host[2], &d_graph);
    bad_direct += n_direct > 0;
    bad_graph += n_graph > 0;
    if (n_direct || n_graph)
      log_info("graph check, batch %d, step %d '%s' (%s%s%s): a second direct run differs in %zu of %zu bytes "
               "(largest %.4g), the captured graph in %zu (largest %.4g)",
               p->batch, i, s->name, s->what, s->kind == CUDA_STEP_CONV ? ", " : "",
               s->kind == CUDA_STEP_CONV ? s->conv.engine : "", n_direct, p->tensors[root_of(p, t)].bytes, d_direct,
               n_graph, d_graph);
    int in[8];
    const int n_in = step_inputs(s, in);
    size_t n_rows = 0;
    e = row_check(ctx, p, i, i + 1, in, n_in, arenas[3], arenas + 1, host + 1, &n_rows);
    if (e) break;
    if (n_rows) {
      bad_rows++;
      log_info("row check, batch %d, step %d '%s' (%s%s%s): other values in the upper %d rows of its inputs change "
               "%zu bytes of the lower %d rows of its output",
               p->batch, i, s->name, s->what, s->kind == CUDA_STEP_CONV ? ", " : "",
               s->kind == CUDA_STEP_CONV ? s->conv.engine : "", p->batch - p->batch / 2, n_rows, p->batch / 2);
    }
  }
  /* The whole program, from the state the steps left: its inputs' upper
   * rows changed, then run three times. */
  size_t whole_rows = 0;
  if (!e && cudaMemcpy(arenas[3], arenas[0], size, cudaMemcpyDeviceToDevice) != cudaSuccess)
    e = err_new(INFERD_ERROR_INTERNAL, "copying the check arena failed");
  if (!e)
    e = row_check(ctx, p, 0, p->n_steps, p->input_tensor, ctx->plan->g->n_inputs, arenas[3], arenas + 1, host + 1,
                  &whole_rows);
  if (!e)
    log_info("row check, batch %d: %d steps change their lower rows with their inputs' upper rows; the whole "
             "program, its inputs' upper rows changed: %zu bytes of the lower rows of its outputs differ",
             p->batch, bad_rows, whole_rows);
  if (!e) e = three_runs(ctx, p, 0, p->n_steps, arenas, host);
  if (!e) {
    double d_direct = 0, d_graph = 0, m;
    size_t n_direct = 0, n_graph = 0;
    for (int j = 0; j < p->n_steps; j++) {
      const int t = step_output(&p->steps[j]);
      n_direct += tensor_diff(p, t, host[0], host[1], &m);
      d_direct = m > d_direct ? m : d_direct;
      n_graph += tensor_diff(p, t, host[0], host[2], &m);
      d_graph = m > d_graph ? m : d_graph;
    }
    log_info("graph check, batch %d: %d steps; %d differ between two direct runs, %d between a direct run and its "
             "graph; the whole program: direct runs differ in %zu bytes (largest %.4g), the graph in %zu (largest "
             "%.4g)",
             p->batch, p->n_steps, bad_direct, bad_graph, n_direct, d_direct, n_graph, d_graph);
  }
  cudaStreamSynchronize(ctx->stream);
  for (int k = 0; k < 4; k++) cudaFree(arenas[k]);
  for (int k = 0; k < 3; k++) free(host[k]);
  return e;
}
