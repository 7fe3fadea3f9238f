/*
 * Convolutions through cuDNN's graph API. A convolution node with its bias
 * and fused post-ops (residual add, ReLU or clip, sigmoid, tanh) becomes one
 * operation graph: conv -> add bias -> [add residual] -> [activation], the
 * intermediates virtual in fp32 and the result stored in the compute type.
 * cuDNN's heuristics list the engine configurations for it; each one that
 * finalizes is timed on the build stream and the fastest is kept (strict
 * FP32 drops configurations that round through tensor cores). When no
 * engine takes the fused graph, the convolution runs alone followed by one
 * epilogue kernel; when none takes even that, the direct kernel runs it.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/clock.h"
#include "engine/cuda/cuda.h"

enum { UID_X = 1, UID_W, UID_B, UID_Z, UID_Y, UID_VIRTUAL = 100 };
enum { MAX_CANDIDATES = 10 };

typedef struct graph_builder {
  const cuda_libs *l;
  cudnnBackendDescriptor_t descs[48];
  int n_descs;
  int64_t next_virtual;
} graph_builder;

static void builder_free(graph_builder *b) {
  for (int i = b->n_descs - 1; i >= 0; i--) b->l->cudnnBackendDestroyDescriptor(b->descs[i]);
  b->n_descs = 0;
}

static inferd_error *new_desc(graph_builder *b, cudnnBackendDescriptorType_t type, cudnnBackendDescriptor_t *out) {
  if (b->n_descs == (int)(sizeof(b->descs) / sizeof(b->descs[0])))
    return err_new(INFERD_ERROR_INTERNAL, "too many cuDNN descriptors in one graph");
  CUDNN_TRY(b->l, b->l->cudnnBackendCreateDescriptor(type, out), "creating a cuDNN descriptor");
  b->descs[b->n_descs++] = *out;
  return NULL;
}

#define SET(b, d, attr, type, n, ptr, what) \
  CUDNN_TRY((b)->l, (b)->l->cudnnBackendSetAttribute(d, attr, type, n, ptr), what)

static cudnnDataType_t dnn_type(cuda_dtype t) {
  return t == CUDA_F16 ? CUDNN_DATA_HALF : t == CUDA_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

static inferd_error *tensor(graph_builder *b, int64_t uid, cudnnDataType_t type, const int64_t dims[4],
                            const int64_t strides[4], bool is_virtual, cudnnBackendDescriptor_t *out) {
  cudnnBackendDescriptor_t d;
  ERR_TRY(new_desc(b, CUDNN_BACKEND_TENSOR_DESCRIPTOR, &d));
  const int64_t alignment = 16;
  SET(b, d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, "tensor type");
  SET(b, d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims, "tensor dimensions");
  SET(b, d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides, "tensor strides");
  SET(b, d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor id");
  SET(b, d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment, "tensor alignment");
  SET(b, d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual, "tensor virtual");
  CUDNN_TRY(b->l, b->l->cudnnBackendFinalize(d), "finalizing a tensor descriptor");
  *out = d;
  return NULL;
}

/* A pointwise op y = f(x[, other]); other NULL for unary modes. */
static inferd_error *pointwise(graph_builder *b, cudnnPointwiseMode_t mode, const cuda_epilogue_op *act,
                               cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t other,
                               cudnnBackendDescriptor_t y, cudnnBackendDescriptor_t *op) {
  cudnnBackendDescriptor_t pw;
  ERR_TRY(new_desc(b, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, &pw));
  const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
  SET(b, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise mode");
  SET(b, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, "pointwise precision");
  if (act && act->act == CUDA_ACT_CLIP) {
    const double lo = act->alpha, hi = act->beta;
    SET(b, pw, CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP, CUDNN_TYPE_DOUBLE, 1, &lo, "relu lower clip");
    SET(b, pw, CUDNN_ATTR_POINTWISE_RELU_UPPER_CLIP, CUDNN_TYPE_DOUBLE, 1, &hi, "relu upper clip");
  } else if (act && act->act == CUDA_ACT_LEAKY_RELU) {
    const double slope = act->alpha;
    SET(b, pw, CUDNN_ATTR_POINTWISE_RELU_LOWER_CLIP_SLOPE, CUDNN_TYPE_DOUBLE, 1, &slope, "relu slope");
  }
  CUDNN_TRY(b->l, b->l->cudnnBackendFinalize(pw), "finalizing a pointwise descriptor");
  cudnnBackendDescriptor_t d;
  ERR_TRY(new_desc(b, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, &d));
  SET(b, d, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw, "pointwise desc");
  SET(b, d, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "pointwise x");
  if (other) SET(b, d, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &other, "pointwise b");
  SET(b, d, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "pointwise y");
  CUDNN_TRY(b->l, b->l->cudnnBackendFinalize(d), "finalizing a pointwise operation");
  *op = d;
  return NULL;
}

static bool act_fusable(cuda_act a) {
  return a == CUDA_ACT_RELU || a == CUDA_ACT_CLIP || a == CUDA_ACT_LEAKY_RELU || a == CUDA_ACT_SIGMOID ||
         a == CUDA_ACT_TANH;
}

/* The operation graph of a convolution, fused with its bias and epilogue
 * when `fused`, else the convolution alone writing y. */
static inferd_error *build_graph(graph_builder *b, cudnnHandle_t dnn, const cuda_plan *plan, const cuda_step *s,
                                 bool fused, cudnnBackendDescriptor_t *graph) {
  const cuda_conv_desc *c = &s->conv.desc;
  const cudnnDataType_t t = dnn_type(plan->dtype), f32 = CUDNN_DATA_FLOAT;
  const int64_t cg = c->c / c->groups;
  const int64_t xd[4] = {c->n, c->c, c->h, c->w}, xs[4] = {c->h * c->w * c->c, 1, c->w * c->c, c->c};
  const int64_t wd[4] = {c->k, cg, c->r, c->s}, ws[4] = {c->r * c->s * cg, 1, c->s * cg, cg};
  const int64_t yd[4] = {c->n, c->k, c->oh, c->ow}, ys[4] = {c->oh * c->ow * c->k, 1, c->ow * c->k, c->k};
  const int64_t bd[4] = {1, c->k, 1, 1}, bs[4] = {c->k, 1, c->k, c->k};
  cudnnBackendDescriptor_t x, w, ops[8];
  int n_ops = 0;
  ERR_TRY(tensor(b, UID_X, t, xd, xs, false, &x));
  ERR_TRY(tensor(b, UID_W, t, wd, ws, false, &w));
  const bool has_bias = fused && s->bias >= 0;
  const int n_post = fused ? s->epilogue.n_ops : 0;
  const bool chain = has_bias || n_post > 0;
  cudnnBackendDescriptor_t cur;
  if (chain) ERR_TRY(tensor(b, UID_VIRTUAL, f32, yd, ys, true, &cur));
  else ERR_TRY(tensor(b, UID_Y, t, yd, ys, false, &cur));

  cudnnBackendDescriptor_t conv;
  ERR_TRY(new_desc(b, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, &conv));
  const int64_t nd = 2, pre[2] = {c->pad_t, c->pad_l};
  const int64_t post[2] = {(c->oh - 1) * c->sh + (int64_t)(c->r - 1) * c->dh + 1 - c->h - c->pad_t,
                           (c->ow - 1) * c->sw + (int64_t)(c->s - 1) * c->dw + 1 - c->w - c->pad_l};
  const int64_t post_clamped[2] = {post[0] > 0 ? post[0] : 0, post[1] > 0 ? post[1] : 0};
  const int64_t dil[2] = {c->dh, c->dw}, str[2] = {c->sh, c->sw};
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  SET(b, conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "conv compute type");
  SET(b, conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode, "conv mode");
  SET(b, conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &nd, "conv dims");
  SET(b, conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pre, "conv pre paddings");
  SET(b, conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, post_clamped, "conv post paddings");
  SET(b, conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dil, "conv dilations");
  SET(b, conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, str, "conv strides");
  CUDNN_TRY(b->l, b->l->cudnnBackendFinalize(conv), "finalizing the convolution descriptor");

  cudnnBackendDescriptor_t op;
  ERR_TRY(new_desc(b, CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR, &op));
  const float alpha = 1.0f, beta = 0.0f;
  SET(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "conv x");
  SET(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w, "conv w");
  SET(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cur, "conv y");
  SET(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv, "conv desc");
  SET(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha, "conv alpha");
  SET(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta, "conv beta");
  CUDNN_TRY(b->l, b->l->cudnnBackendFinalize(op), "finalizing the convolution operation");
  ops[n_ops++] = op;

  /* The chain: each stage reads `cur` and writes a new virtual tensor, the
   * last one writes y. */
  const int stages = (has_bias ? 1 : 0) + n_post;
  int stage = 0;
  for (int i = -1; i < n_post; i++) {
    if (i < 0 && !has_bias) continue;
    const bool last = ++stage == stages;
    cudnnBackendDescriptor_t next, other = NULL;
    if (last) ERR_TRY(tensor(b, UID_Y, t, yd, ys, false, &next));
    else ERR_TRY(tensor(b, UID_VIRTUAL + stage, f32, yd, ys, true, &next));
    cudnnPointwiseMode_t pm = CUDNN_POINTWISE_ADD;
    const cuda_epilogue_op *act = NULL;
    if (i < 0) {
      ERR_TRY(tensor(b, UID_B, t, bd, bs, false, &other));
    } else if (s->epilogue.ops[i].is_sum) {
      ERR_TRY(tensor(b, UID_Z, t, yd, ys, false, &other));
    } else {
      act = &s->epilogue.ops[i];
      if (!act_fusable(act->act)) return err_new(INFERD_ERROR_UNSUPPORTED, "activation not fusable");
      pm = act->act == CUDA_ACT_SIGMOID ? CUDNN_POINTWISE_SIGMOID_FWD
           : act->act == CUDA_ACT_TANH  ? CUDNN_POINTWISE_TANH_FWD
                                        : CUDNN_POINTWISE_RELU_FWD;
    }
    ERR_TRY(pointwise(b, pm, act, cur, other, next, &ops[n_ops++]));
    cur = next;
  }

  cudnnBackendDescriptor_t g;
  ERR_TRY(new_desc(b, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &g));
  SET(b, g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n_ops, ops, "graph ops");
  SET(b, g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &dnn, "graph handle");
  CUDNN_TRY(b->l, b->l->cudnnBackendFinalize(g), "finalizing the operation graph");
  *graph = g;
  return NULL;
}

/* Whether an engine configuration computes as the plan's precision allows. */
static bool config_allowed(graph_builder *b, const cuda_plan *plan, cudnnBackendDescriptor_t cfg, int64_t *engine_id) {
  cudnnBackendDescriptor_t engine;
  if (new_desc(b, CUDNN_BACKEND_ENGINE_DESCRIPTOR, &engine)) return false;
  int64_t n = 0;
  if (b->l->cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n,
                                     &engine) != CUDNN_STATUS_SUCCESS)
    return false;
  *engine_id = -1;
  b->l->cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, engine_id);
  /* Plans that keep FP32 activations (tf32, fp32) never take cuDNN engine 4
   * (cuDNN 9.19 on the H200, where it took the convolutions with the
   * residual add): TF32 plans whose choices had it next to engine 51 gave
   * row 0 of the bucket of 8 wrong or different from run to run, in 5 of 5
   * runs with one such tactic cache and about half of the fresh loads;
   * waiting for the stream after every convolution made them right, and
   * nothing else tried did (bench/results/engine_gpu.md). With engine 4 kept
   * out, 4 of 4 fresh loads passed (so did 4 of 4 with engine 51 kept out).
   * INFERD_CUDA_ALL_ENGINES=1 takes it back, to look further. */
  const char *all = getenv("INFERD_CUDA_ALL_ENGINES");
  if (*engine_id == 4 && plan->dtype == CUDA_F32 && !(all && *all == '1')) return false;
  /* Diagnostic: INFERD_CUDA_DENY_ENGINES=3,17 keeps those cuDNN engines out
   * (with their cached choices deleted from the tactic cache, the layers
   * that took them are timed again without them). */
  const char *deny = getenv("INFERD_CUDA_DENY_ENGINES");
  for (const char *d = deny; d && *d;) {
    char *end;
    const long long id = strtoll(d, &end, 10);
    if (end == d) break;
    if (id == *engine_id) return false;
    d = *end == ',' ? end + 1 : end;
  }
  cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  if (b->l->cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                     CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &n, notes) != CUDNN_STATUS_SUCCESS)
    return false;
  const bool strict = plan->dtype == CUDA_F32 && !plan->tf32;
  for (int64_t i = 0; i < n; i++) {
    /* Runs are reproducible: engines that reduce with atomics are not
     * taken. Such a TF32 engine was seen on the H200 to differ between
     * runs by rounding, and now and then by a large part of the logits'
     * range. */
    if (notes[i] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) return false;
    if (strict && (notes[i] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE || notes[i] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS))
      return false;
  }
  return true;
}

typedef struct timed_conv {
  cuda_plan *plan;
  const cuda_tuner *tuner;
  const cuda_program *p;
  cuda_step *s;
  void *arena, *workspace;
} timed_conv;

static inferd_error *run_timed(void *arg) {
  timed_conv *t = arg;
  return cuda_conv_run(t->plan, t->tuner->dnn, t->tuner->stream, t->p, t->s, t->arena, t->workspace);
}

static void conv_key(const cuda_plan *plan, const cuda_step *s, bool fused, char *key, size_t size) {
  const cuda_conv_desc *c = &s->conv.desc;
  int n = snprintf(key, size, "conv%s n%lld h%lld w%lld c%lld k%lld r%ds%d g%d s%d,%d d%d,%d p%d,%d o%lldx%lld t%d%s b%d",
                   fused ? "+fused" : "", (long long)c->n, (long long)c->h, (long long)c->w, (long long)c->c,
                   (long long)c->k, c->r, c->s, c->groups, c->sh, c->sw, c->dh, c->dw, c->pad_t, c->pad_l,
                   (long long)c->oh, (long long)c->ow, (int)plan->dtype, plan->tf32 ? "tf32" : "", s->bias >= 0);
  /* A fused graph holds its whole epilogue: every operation, with its
   * parameters (a Clip's bounds, a LeakyRelu's slope), tells graphs apart. */
  for (int i = 0; fused && i < s->epilogue.n_ops && n > 0 && (size_t)n < size; i++) {
    const cuda_epilogue_op *op = &s->epilogue.ops[i];
    n += snprintf(key + n, size - (size_t)n, " e%s%d:%g:%g", op->is_sum ? "+" : "", (int)op->act, op->alpha, op->beta);
  }
}

/* One candidate's execution plan, finalized with a handle of its own. */
typedef struct finalize_job {
  cudnnBackendDescriptor_t cfg;
  int index;                      /* in the heuristics' list */
  int64_t engine_id;
  cudnnBackendDescriptor_t xplan; /* NULL when it did not finalize */
} finalize_job;

typedef struct finalize_worker {
  const cuda_libs *l;
  const cuda_tuner *tuner;
  cudnnHandle_t dnn;
  finalize_job *jobs;
  int n_jobs, first, step;
} finalize_worker;

static void finalize_one(const cuda_libs *l, cudnnHandle_t dnn, finalize_job *j) {
  cudnnBackendDescriptor_t xplan;
  j->xplan = NULL;
  if (l->cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &xplan)) return;
  if (l->cudnnBackendSetAttribute(xplan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &dnn) ||
      l->cudnnBackendSetAttribute(xplan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                  &j->cfg) ||
      l->cudnnBackendFinalize(xplan)) {
    l->cudnnBackendDestroyDescriptor(xplan);
    return;
  }
  j->xplan = xplan;
}

static void *finalize_worker_main(void *arg) {
  finalize_worker *w = arg;
  if (cudaSetDevice(w->tuner->device) != cudaSuccess) return NULL; /* its jobs stay unfinalized */
  for (int i = w->first; i < w->n_jobs; i += w->step) finalize_one(w->l, w->dnn, &w->jobs[i]);
  return NULL;
}

/* Finalizes every job: on the building thread with the tuner's handle when
 * there is one job or one finalizer, else spread over the tuner's
 * finalizer handles, one thread each (this thread takes the first share). */
static void finalize_all(const cuda_libs *l, const cuda_tuner *tuner, finalize_job *jobs, int n_jobs) {
  int n_threads = n_jobs < tuner->n_finalizers ? n_jobs : tuner->n_finalizers;
  if (n_threads < 2) {
    for (int i = 0; i < n_jobs; i++) finalize_one(l, tuner->dnn, &jobs[i]);
    return;
  }
  finalize_worker workers[CUDA_MAX_FINALIZERS];
  pthread_t threads[CUDA_MAX_FINALIZERS];
  bool started[CUDA_MAX_FINALIZERS] = {false};
  for (int k = 0; k < n_threads; k++)
    workers[k] = (finalize_worker){.l = l, .tuner = tuner, .dnn = tuner->finalizers[k], .jobs = jobs,
                                   .n_jobs = n_jobs, .first = k, .step = n_threads};
  for (int k = 1; k < n_threads; k++) started[k] = pthread_create(&threads[k], NULL, finalize_worker_main, &workers[k]) == 0;
  finalize_worker_main(&workers[0]);
  cudaSetDevice(tuner->device);
  for (int k = 1; k < n_threads; k++) {
    if (started[k]) pthread_join(threads[k], NULL);
    else finalize_worker_main(&workers[k]); /* no thread: this one does its share */
  }
}

/* Tries one graph (fused or not): heuristics, then every candidate timed.
 * Leaves the winner in s->conv and returns true, or false when none ran. */
static bool try_graph(cuda_plan *plan, const cuda_tuner *tuner, const cuda_program *p, cuda_step *s, bool fused,
                      void *arena, void *workspace, size_t workspace_cap) {
  const cuda_libs *l = plan->libs;
  cuda_load_stats *stats = &plan->stats;
  uint64_t t0 = clock_now_ns();
  graph_builder b = {.l = l};
  cudnnBackendDescriptor_t graph;
  inferd_error *e = build_graph(&b, tuner->dnn, plan, s, fused, &graph);
  if (e) {
    log_verbose("conv '%s': %s graph not built: %s", s->name, fused ? "fused" : "plain", inferd_error_message(e));
    inferd_error_delete(e);
    builder_free(&b);
    return false;
  }
  char key[sizeof(s->conv.key)];
  conv_key(plan, s, fused, key, sizeof(key));
  char cached_text[32];
  const char *cached = cuda_tactics_find(plan->tactics, key, cached_text, sizeof(cached_text)) ? cached_text : NULL;
  int want_index = -1;
  if (cached && sscanf(cached, "%d", &want_index) != 1) want_index = -1;
  if (cached && want_index < 0) { /* recorded: no engine takes this graph */
    builder_free(&b);
    stats->heuristics_ms += (double)(clock_now_ns() - t0) * 1e-6;
    return false;
  }

  cudnnBackendDescriptor_t heur, cfgs[MAX_CANDIDATES];
  int64_t n_cfgs = 0;
  bool ok = !new_desc(&b, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur);
  const cudnnBackendHeurMode_t modes[2] = {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK};
  for (int m = 0; ok && m < 2 && n_cfgs == 0; m++) {
    if (m == 1 && new_desc(&b, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur)) break;
    if (l->cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                    &graph) ||
        l->cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &modes[m]) ||
        l->cudnnBackendFinalize(heur))
      continue;
    int n_made = 0;
    for (; n_made < MAX_CANDIDATES; n_made++)
      if (new_desc(&b, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfgs[n_made])) break;
    if (l->cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n_made,
                                    &n_cfgs, cfgs) != CUDNN_STATUS_SUCCESS)
      n_cfgs = 0;
    if (n_cfgs > n_made) n_cfgs = n_made;
  }

  stats->heuristics_ms += (double)(clock_now_ns() - t0) * 1e-6;
  if (cached) stats->cached++;
  else stats->timed++;
  double best_ms = -1;
  int best_index = -1;
  cudnnBackendDescriptor_t best_plan = NULL;
  char best_engine[48] = "";
  timed_conv timed = {.plan = plan, .tuner = tuner, .p = p, .s = s, .arena = arena, .workspace = workspace};
  s->conv.mode = fused ? CUDA_CONV_FUSED : CUDA_CONV_PLAIN;
  if (want_index >= 0 && want_index < n_cfgs && !config_allowed(&b, plan, cfgs[want_index], &(int64_t){0})) {
    /* A cached choice this build no longer takes: time the layer afresh. */
    log_info("conv '%s': the cached choice is an engine now kept out; timing the layer again", s->name);
    want_index = -1;
    stats->cached--;
    stats->timed++;
  }
  finalize_job jobs[MAX_CANDIDATES];
  int n_jobs = 0;
  for (int i = 0; i < n_cfgs; i++) {
    if (want_index >= 0 && i != want_index) continue;
    int64_t engine_id = -1;
    if (!config_allowed(&b, plan, cfgs[i], &engine_id)) continue;
    jobs[n_jobs++] = (finalize_job){.cfg = cfgs[i], .index = i, .engine_id = engine_id};
  }
  t0 = clock_now_ns();
  finalize_all(l, tuner, jobs, n_jobs);
  stats->finalize_ms += (double)(clock_now_ns() - t0) * 1e-6;
  for (int j = 0; j < n_jobs; j++) {
    cudnnBackendDescriptor_t xplan = jobs[j].xplan;
    if (!xplan) continue;
    stats->finalized++;
    int64_t ws = 0, n = 0;
    if (l->cudnnBackendGetAttribute(xplan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &ws) ||
        ws < 0 || (size_t)ws > workspace_cap) {
      l->cudnnBackendDestroyDescriptor(xplan);
      continue;
    }
    s->conv.plan = xplan;
    s->conv.workspace = (size_t)ws;
    /* With a cached choice there is nothing to compare: one run checks it. */
    t0 = clock_now_ns();
    double ms = want_index >= 0 ? (run_timed(&timed) ? -1 : 0) : cuda_time_ms(tuner, run_timed, &timed);
    stats->timing_ms += (double)(clock_now_ns() - t0) * 1e-6;
    if (ms >= 0 && (best_ms < 0 || ms < best_ms)) {
      if (best_plan) l->cudnnBackendDestroyDescriptor(best_plan);
      best_plan = xplan;
      best_ms = ms;
      best_index = jobs[j].index;
      snprintf(best_engine, sizeof(best_engine), "cudnn engine %lld", (long long)jobs[j].engine_id);
    } else {
      l->cudnnBackendDestroyDescriptor(xplan);
    }
  }
  if (!best_plan) {
    cuda_tactics_put(plan->tactics, key, "none");
    builder_free(&b);
    return false;
  }
  int64_t n = 0, ws = 0;
  l->cudnnBackendGetAttribute(best_plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &ws);
  s->conv.plan = best_plan;
  s->conv.workspace = (size_t)ws;
  snprintf(s->conv.engine, sizeof(s->conv.engine), "%s", best_engine);
  /* The candidate's index, then (for whoever reads the file) its engine. */
  char choice[48];
  snprintf(choice, sizeof(choice), "%d %s", best_index, best_engine);
  cuda_tactics_put(plan->tactics, key, choice);
  /* The plan may refer to the graph: keep its descriptors with it. */
  s->conv.n_keep = 0;
  for (int i = 0; i < b.n_descs && s->conv.n_keep < (int)(sizeof(s->conv.keep) / sizeof(s->conv.keep[0])); i++)
    s->conv.keep[s->conv.n_keep++] = b.descs[i];
  for (int i = s->conv.n_keep; i < b.n_descs; i++) l->cudnnBackendDestroyDescriptor(b.descs[i]);
  return true;
}

inferd_error *cuda_conv_prepare(cuda_plan *plan, const cuda_tuner *tuner, const cuda_program *p, cuda_step *s,
                                void *arena, void *workspace, size_t workspace_cap) {
  /* A layer equal to an earlier one (ResNet repeats its blocks) takes its plan. */
  conv_key(plan, s, true, s->conv.key, sizeof(s->conv.key));
  for (const cuda_step *o = p->steps; o < s; o++)
    if (o->kind == CUDA_STEP_CONV && strcmp(o->conv.key, s->conv.key) == 0) {
      s->conv.mode = o->conv.mode;
      s->conv.plan = o->conv.plan;
      s->conv.workspace = o->conv.workspace;
      s->conv.borrowed = o->conv.plan != NULL;
      memcpy(s->conv.engine, o->conv.engine, sizeof(s->conv.engine));
      return NULL;
    }
  if (try_graph(plan, tuner, p, s, true, arena, workspace, workspace_cap)) return NULL;
  if (try_graph(plan, tuner, p, s, false, arena, workspace, workspace_cap)) return NULL;
  log_info("conv '%s': no cuDNN engine takes it, running the direct kernel", s->name);
  s->conv.mode = CUDA_CONV_DIRECT;
  s->conv.plan = NULL;
  s->conv.workspace = 0;
  snprintf(s->conv.engine, sizeof(s->conv.engine), "direct kernel");
  return NULL;
}

inferd_error *cuda_conv_run(cuda_plan *plan, cudnnHandle_t dnn, cudaStream_t stream, const cuda_program *p,
                            const cuda_step *s, void *arena, void *workspace) {
  const cuda_libs *l = plan->libs;
  void *x = cuda_tensor_ptr(p, s->x, arena), *w = cuda_tensor_ptr(p, s->w, arena), *y = cuda_tensor_ptr(p, s->y, arena);
  void *bias = s->bias >= 0 ? cuda_tensor_ptr(p, s->bias, arena) : NULL;
  void *sum = s->sum >= 0 ? cuda_tensor_ptr(p, s->sum, arena) : NULL;
  if (s->conv.mode == CUDA_CONV_DIRECT) {
    KERNEL_TRY(cuda_launch_conv_direct((cuda_stream_t)stream, p->tensors[s->y].dtype, &s->conv.desc, x, w, bias, sum,
                                       y, &s->epilogue),
               "the direct convolution kernel");
    return NULL;
  }
  int64_t uids[5];
  void *ptrs[5];
  int n = 0;
  uids[n] = UID_X, ptrs[n++] = x;
  uids[n] = UID_W, ptrs[n++] = w;
  uids[n] = UID_Y, ptrs[n++] = y;
  const bool fused = s->conv.mode == CUDA_CONV_FUSED;
  if (fused && bias) uids[n] = UID_B, ptrs[n++] = bias;
  if (fused && sum) uids[n] = UID_Z, ptrs[n++] = sum;
  cudnnBackendDescriptor_t pack;
  CUDNN_TRY(l, l->cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack), "variant pack");
  cudnnStatus_t st = l->cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
  if (!st) st = l->cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
  if (!st) st = l->cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  if (!st) st = l->cudnnBackendFinalize(pack);
  if (!st) st = l->cudnnSetStream(dnn, stream);
  if (!st) {
    pthread_mutex_lock(&plan->exec_lock);
    st = l->cudnnBackendExecute(dnn, s->conv.plan, pack);
    pthread_mutex_unlock(&plan->exec_lock);
  }
  l->cudnnBackendDestroyDescriptor(pack);
  if (st) return cuda_dnn_error(l, st, "running a convolution");
  if (!fused && (bias || s->epilogue.n_ops))
    KERNEL_TRY(cuda_launch_bias_epilogue((cuda_stream_t)stream, p->tensors[s->y].dtype, y,
                                         s->conv.desc.n * s->conv.desc.oh * s->conv.desc.ow, s->conv.desc.k, bias, sum,
                                         &s->epilogue),
               "the convolution epilogue kernel");
  return NULL;
}

void cuda_conv_release(const cuda_libs *l, cuda_conv *c) {
  if (c->borrowed) {
    c->plan = NULL;
    return;
  }
  if (c->plan) l->cudnnBackendDestroyDescriptor(c->plan);
  for (int i = c->n_keep - 1; i >= 0; i--) l->cudnnBackendDestroyDescriptor(c->keep[i]);
  c->plan = NULL;
  c->n_keep = 0;
}
