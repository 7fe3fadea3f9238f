/*
 * The CUDA backend's entry points: devices, memory, plans, contexts and
 * runs. See cuda.h for the model of buckets, programs and graphs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "engine/cuda/cuda.h"

/* ---- devices -------------------------------------------------------------- */

static int cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

static size_t cuda_describe(int ordinal, char *buf, size_t size) {
  int runtime = 0, driver = 0, count = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  cudaError_t err = cudaGetDeviceCount(&count);
  size_t n = 0;
#define PUT(...) n += (size_t)snprintf(buf + (n < size ? n : size), n < size ? size - n : 0, __VA_ARGS__)
  if (err != cudaSuccess || count == 0) {
    cudaGetLastError();
    const char *why = driver == 0 ? "no NVIDIA driver found" : err != cudaSuccess ? cudaGetErrorString(err) : "no devices";
    PUT("CUDA runtime %d.%d, no GPU (%s)", runtime / 1000, (runtime % 1000) / 10, why);
    return n;
  }
  const cuda_libs *l = NULL;
  inferd_error *e = cuda_libs_get(&l);
  char libs[96];
  if (e) snprintf(libs, sizeof(libs), "cuDNN unavailable");
  else {
    size_t v = l->cudnnGetVersion();
    size_t lt = l->cublasLtGetVersion();
    snprintf(libs, sizeof(libs), "cuDNN %zu.%zu.%zu, cuBLASLt %zu.%zu.%zu", v / 10000, (v % 10000) / 100, v % 100,
             lt / 10000, (lt % 10000) / 100, lt % 100);
  }
  inferd_error_delete(e);
  const int first = ordinal >= 0 ? ordinal : 0, last = ordinal >= 0 ? ordinal : count - 1;
  if (ordinal < 0) PUT("CUDA runtime %d.%d, driver %d.%d, %s, %d GPU%s:", runtime / 1000, (runtime % 1000) / 10,
                       driver / 1000, (driver % 1000) / 10, libs, count, count > 1 ? "s" : "");
  for (int i = first; i <= last && i < count; i++) {
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    PUT("%s%s (sm_%d%d, %.1f GiB, %d SMs)", ordinal < 0 ? " " : "", prop.name, prop.major, prop.minor,
        (double)prop.totalGlobalMem / (1 << 30), prop.multiProcessorCount);
    if (ordinal < 0) PUT(" [%d]", i);
  }
  if (ordinal >= 0) PUT(", CUDA %d.%d, driver %d.%d, %s", runtime / 1000, (runtime % 1000) / 10, driver / 1000,
                        (driver % 1000) / 10, libs);
#undef PUT
  return n;
}

static bool cuda_compute_capability(int ordinal, int *major, int *minor) {
  struct cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, ordinal) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  *major = prop.major;
  *minor = prop.minor;
  return true;
}

/* ---- what runs -------------------------------------------------------------- */

static bool float_type(inferd_datatype t) {
  return t == INFERD_TYPE_FP32 || t == INFERD_TYPE_FP16 || t == INFERD_TYPE_BF16;
}

static bool cuda_supports_node(const ir_graph *g, const ir_node *n, inferd_precision precision) {
  (void)precision;
  switch (n->op) {
    /* Window ops run 2-D, a 1-D one with a height of 1; 3-D ones are not done. */
    case IR_OP_Conv:
    case IR_OP_MaxPool:
    case IR_OP_AveragePool:
    case IR_OP_GlobalAveragePool:
    case IR_OP_GlobalMaxPool: {
      const int rank = g->values[n->inputs[0]].shape.rank;
      if (rank != 3 && rank != 4) return false;
      break;
    }
    /* Products of matrices, batched (numpy broadcasting) past two dims; a
     * 1-D operand is not done. */
    case IR_OP_Gemm:
    case IR_OP_MatMul:
      if (g->values[n->inputs[0]].shape.rank < 2 || g->values[n->inputs[1]].shape.rank < 2) return false;
      break;
    case IR_OP_Relu: case IR_OP_LeakyRelu: case IR_OP_Clip: case IR_OP_Sigmoid: case IR_OP_HardSigmoid:
    case IR_OP_HardSwish: case IR_OP_Tanh: case IR_OP_Add: case IR_OP_Sub: case IR_OP_Mul: case IR_OP_Div:
    case IR_OP_Flatten: case IR_OP_Reshape: case IR_OP_Squeeze:
    case IR_OP_Unsqueeze: case IR_OP_Identity: case IR_OP_Dropout: case IR_OP_Softmax: case IR_OP_Transpose:
    case IR_OP_Concat: case IR_OP_ReduceMean: case IR_OP_Pad: case IR_OP_Cast:
      break;
    /* Inference only: one output, per-channel (spatial) statistics. */
    case IR_OP_BatchNormalization:
      if (ir_node_attr_int(n, "training_mode", 0) != 0 || ir_node_attr_int(n, "spatial", 1) != 1) return false;
      for (int k = 1; k < n->n_outputs; k++)
        if (n->outputs[k] >= 0 && g->values[n->outputs[k]].use_count > 0) return false;
      break;
    default: return false;
  }
  /* Data inputs are floating point. Shapes, axes and pads (integers) and
   * Dropout's ratio and training mode are constants read at build time;
   * Clip's bounds and Pad's value have the input's type and may be computed
   * at run time. */
  for (int k = 0; k < n->n_inputs; k++) {
    const int v = n->inputs[k];
    if (v < 0) continue;
    if ((n->op == IR_OP_Reshape || n->op == IR_OP_Squeeze || n->op == IR_OP_Unsqueeze ||
         n->op == IR_OP_ReduceMean || n->op == IR_OP_Dropout) && k > 0)
      continue;
    if (n->op == IR_OP_Pad && (k == 1 || k == 3)) continue;
    if (!float_type(g->values[v].dtype)) return false;
  }
  for (int k = 0; k < n->n_outputs; k++)
    if (n->outputs[k] >= 0 && g->values[n->outputs[k]].use_count > 0 && !float_type(g->values[n->outputs[k]].dtype))
      return false;
  return true;
}

/* ---- memory ----------------------------------------------------------------- */

static cuda_plan *as_plan(backend_plan *p) { return (cuda_plan *)p; }
static const cuda_plan *as_const_plan(const backend_plan *p) { return (const cuda_plan *)p; }
static cuda_context *as_context(backend_context *c) { return (cuda_context *)c; }

static inferd_error *cuda_memory_alloc(const backend_plan *bp, inferd_memory_kind kind, size_t size, void **ptr) {
  const cuda_plan *plan = as_const_plan(bp);
  CUDA_TRY(cudaSetDevice(plan->device), "selecting the GPU");
  if (kind == INFERD_MEMORY_GPU) CUDA_TRY(cudaMalloc(ptr, size ? size : 16), "allocating GPU memory");
  else CUDA_TRY(cudaHostAlloc(ptr, size ? size : 16, cudaHostAllocPortable), "allocating pinned host memory");
  return NULL;
}

static void cuda_memory_free(const backend_plan *bp, inferd_memory_kind kind, void *ptr) {
  (void)bp;
  if (kind == INFERD_MEMORY_GPU) cudaFree(ptr);
  else cudaFreeHost(ptr);
}

static inferd_error *cuda_memory_copy(const backend_plan *bp, void *dst, const void *src, size_t size) {
  CUDA_TRY(cudaSetDevice(as_const_plan(bp)->device), "selecting the GPU");
  CUDA_TRY(cudaMemcpy(dst, src, size, cudaMemcpyDefault), "copying memory");
  return NULL;
}

/* ---- plans -------------------------------------------------------------------- */

/* How many threads finalize a layer's candidates: INFERD_CUDA_FINALIZE_THREADS,
 * or one per online CPU up to CUDA_MAX_FINALIZERS. 1 finalizes them on the
 * building thread. */
static int finalize_threads(void) {
  const char *env = getenv("INFERD_CUDA_FINALIZE_THREADS");
  long n = env && *env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  return n > CUDA_MAX_FINALIZERS ? CUDA_MAX_FINALIZERS : (int)n;
}

static inferd_error *tuner_open(const cuda_libs *l, int device, cuda_tuner *t) {
  t->device = device;
  CUDA_TRY(cudaStreamCreateWithFlags(&t->stream, cudaStreamNonBlocking), "creating a stream");
  CUDNN_TRY(l, l->cudnnCreate(&t->dnn), "creating a cuDNN handle");
  CUDNN_TRY(l, l->cudnnSetStream(t->dnn, t->stream), "setting the cuDNN stream");
  CUBLASLT_TRY(l->cublasLtCreate(&t->lt), "creating a cuBLASLt handle");
  const int want = finalize_threads();
  for (; want > 1 && t->n_finalizers < want; t->n_finalizers++)
    CUDNN_TRY(l, l->cudnnCreate(&t->finalizers[t->n_finalizers]), "creating a cuDNN handle");
  return NULL;
}

static void tuner_close(const cuda_libs *l, cuda_tuner *t) {
  for (int i = 0; i < t->n_finalizers; i++) l->cudnnDestroy(t->finalizers[i]);
  if (t->dnn) l->cudnnDestroy(t->dnn);
  if (t->lt) l->cublasLtDestroy(t->lt);
  if (t->stream) cudaStreamDestroy(t->stream);
  *t = (cuda_tuner){0};
}

static void plan_free(cuda_plan *plan) {
  if (!plan) return;
  if (plan->libs) cudaSetDevice(plan->device);
  for (int i = 0; i < plan->n_buckets; i++) cuda_program_free(plan, plan->programs[i]);
  for (cuda_weight *w = plan->weights, *next; w; w = next) {
    next = w->next;
    cudaFree(w->data);
    free(w);
  }
  cuda_tactics_close(plan->tactics);
  if (plan->libs) tuner_close(plan->libs, &plan->tuner);
  pthread_mutex_destroy(&plan->lock);
  pthread_mutex_destroy(&plan->exec_lock);
  pthread_mutex_destroy(&plan->order_lock);
  free(plan);
}

static inferd_error *program_get(cuda_plan *plan, int bucket, cuda_program **out) {
  pthread_mutex_lock(&plan->lock);
  inferd_error *e = NULL;
  if (!plan->programs[bucket]) {
    e = cuda_program_build(plan, &plan->tuner, bucket, &plan->programs[bucket]);
    if (!e) cuda_tactics_save(plan->tactics);
  }
  *out = plan->programs[bucket];
  pthread_mutex_unlock(&plan->lock);
  return e;
}

/* Builds buckets `which[0..n)` one after another, the largest first. A
 * build on several threads (a stream and handles each, timings taken one
 * at a time) was tried and gave wrong answers on the GPU in a batched run
 * that was not explained, so builds stay serial. */
static inferd_error *build_buckets(cuda_plan *plan, const int *which, int n) {
  cuda_program *p;
  for (int i = 0; i < n; i++) ERR_TRY(program_get(plan, which[i], &p));
  return NULL;
}

static inferd_error *plan_init(cuda_plan *plan, const ir_graph *g, const backend_plan_config *config) {
  plan->g = g;
  plan->config = *config;
  plan->device = config->device.ordinal;
  ERR_TRY(cuda_libs_get(&plan->libs));
  const int count = cuda_device_count();
  if (plan->device < 0 || plan->device >= count)
    return err_new(INFERD_ERROR_UNAVAILABLE, "GPU %d does not exist (%d GPU%s visible)", plan->device, count,
                   count == 1 ? "" : "s");
  CUDA_TRY(cudaSetDevice(plan->device), "selecting the GPU");
  CUDA_TRY(cudaGetDeviceProperties(&plan->prop, plan->device), "reading the GPU's properties");
  switch (config->precision) {
    case INFERD_PRECISION_FP16: plan->dtype = CUDA_F16; break;
    case INFERD_PRECISION_BF16: plan->dtype = CUDA_BF16; break;
    case INFERD_PRECISION_FP32: plan->dtype = CUDA_F32; break;
    default: plan->dtype = CUDA_F32, plan->tf32 = true; break;
  }
  ERR_TRY(tuner_open(plan->libs, plan->device, &plan->tuner));
  const char *order = getenv("INFERD_CUDA_ORDER_FROM");
  plan->order_from = order && *order ? atoi(order) : CUDA_ORDER_FROM;
  plan->tactics = cuda_tactics_open(plan, config->tactic_cache);
  for (int b = 1; b < config->max_batch_size && plan->n_buckets < CUDA_MAX_BUCKETS - 1; b *= 2)
    plan->buckets[plan->n_buckets++] = b;
  plan->buckets[plan->n_buckets++] = config->max_batch_size;
  /* The largest and the smallest bucket now (all of them when asked): a
   * model the backend cannot run fails at load, and the first requests
   * need no autotuning. */
  int which[CUDA_MAX_BUCKETS], n = 0;
  which[n++] = plan->n_buckets - 1;
  if (plan->n_buckets > 1) which[n++] = 0;
  for (int b = 1; config->build_all_batch_sizes && b < plan->n_buckets - 1; b++) which[n++] = b;
  const uint64_t t0 = clock_now_ns();
  ERR_TRY(build_buckets(plan, which, n));
  cuda_tactics_save(plan->tactics);
  const cuda_load_stats *st = &plan->stats;
  log_info("cuda plan: %d of %d batch buckets built in %.0f ms (cuDNN graphs and heuristics %.0f ms, %d execution "
           "plans finalized in %.0f ms, kernels timed or checked %.0f ms, cuBLASLt %.0f ms, weights %.0f ms; %d "
           "convolutions chosen from the tactic cache, %d timed)",
           n, plan->n_buckets, (double)(clock_now_ns() - t0) * 1e-6, st->heuristics_ms, st->finalized,
           st->finalize_ms, st->timing_ms, st->gemm_ms, st->weights_ms, st->cached, st->timed);
  return NULL;
}

static inferd_error *iface_plan_create(const ir_graph *g, const backend_plan_config *config, backend_plan **out) {
  cuda_plan *plan = mem_zalloc(sizeof(*plan));
  pthread_mutex_init(&plan->lock, NULL);
  pthread_mutex_init(&plan->exec_lock, NULL);
  pthread_mutex_init(&plan->order_lock, NULL);
  inferd_error *e = plan_init(plan, g, config);
  if (e) {
    plan_free(plan);
    return e;
  }
  *out = (backend_plan *)plan;
  return NULL;
}

static void iface_plan_delete(backend_plan *p) { plan_free(as_plan(p)); }

static size_t iface_plan_weight_bytes(const backend_plan *p) { return as_const_plan(p)->weight_bytes; }

/* ---- contexts ------------------------------------------------------------------- */

static void graphs_clear(cuda_context *ctx) {
  for (int i = 0; i < CUDA_MAX_BUCKETS; i++) {
    if (ctx->graphs[i]) cudaGraphExecDestroy(ctx->graphs[i]);
    ctx->graphs[i] = NULL;
    ctx->runs[i] = 0;
  }
}

static inferd_error *ensure_memory(cuda_context *ctx, const cuda_program *p) {
  if (p->arena_size <= ctx->arena_size && p->workspace_size <= ctx->workspace_size) return NULL;
  /* Graphs point into the old buffers: they go with them. */
  CUDA_TRY(cudaStreamSynchronize(ctx->stream), "waiting for the stream");
  graphs_clear(ctx);
  if (p->arena_size > ctx->arena_size) {
    cudaFree(ctx->arena);
    ctx->arena = NULL;
    ctx->arena_size = 0;
    CUDA_TRY(cudaMalloc(&ctx->arena, p->arena_size), "allocating the activation arena");
    ctx->arena_size = p->arena_size;
  }
  if (p->workspace_size > ctx->workspace_size) {
    cudaFree(ctx->workspace);
    ctx->workspace = NULL;
    ctx->workspace_size = 0;
    CUDA_TRY(cudaMalloc(&ctx->workspace, p->workspace_size), "allocating the workspace");
    ctx->workspace_size = p->workspace_size;
  }
  return NULL;
}

static void context_free(cuda_context *ctx) {
  if (!ctx) return;
  cudaSetDevice(ctx->plan->device);
  if (ctx->stream) cudaStreamSynchronize(ctx->stream);
  graphs_clear(ctx);
  if (ctx->dnn) ctx->plan->libs->cudnnDestroy(ctx->dnn);
  if (ctx->lt) ctx->plan->libs->cublasLtDestroy(ctx->lt);
  cudaFree(ctx->arena);
  cudaFree(ctx->workspace);
  if (ctx->copies) cudaFreeHost(ctx->copies);
  if (ctx->done) cudaEventDestroy(ctx->done);
  if (ctx->ordered) {
    pthread_mutex_lock(&ctx->plan->order_lock);
    if (ctx->plan->last_ordered == ctx->ordered) ctx->plan->last_ordered = NULL;
    pthread_mutex_unlock(&ctx->plan->order_lock);
    cudaEventDestroy(ctx->ordered);
  }
  if (ctx->stream) cudaStreamDestroy(ctx->stream);
  free(ctx->step_ms);
  free(ctx);
}

static inferd_error *run_program(cuda_context *ctx, int bucket, const cuda_program *p);

static inferd_error *context_init(cuda_context *ctx) {
  cuda_plan *plan = ctx->plan;
  CUDA_TRY(cudaSetDevice(plan->device), "selecting the GPU");
  CUDA_TRY(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking), "creating a stream");
  /* A server thread waiting for its batch yields its core to the network
   * threads instead of spinning on it. */
  CUDA_TRY(cudaEventCreateWithFlags(&ctx->done, cudaEventBlockingSync | cudaEventDisableTiming), "creating an event");
  CUDA_TRY(cudaEventCreateWithFlags(&ctx->ordered, cudaEventDisableTiming), "creating an event");
  CUDNN_TRY(plan->libs, plan->libs->cudnnCreate(&ctx->dnn), "creating a cuDNN handle");
  CUDNN_TRY(plan->libs, plan->libs->cudnnSetStream(ctx->dnn, ctx->stream), "setting the cuDNN stream");
  CUBLASLT_TRY(plan->libs->cublasLtCreate(&ctx->lt), "creating a cuBLASLt handle");
  for (int i = 0; i < plan->n_buckets; i++)
    if (plan->programs[i]) ERR_TRY(ensure_memory(ctx, plan->programs[i]));
  /* A server's context runs each bucket twice now, so its CUDA graph is
   * captured before the first request (on whatever the arena holds). */
  const uint64_t t0 = clock_now_ns();
  for (int i = 0; plan->config.build_all_batch_sizes && i < plan->n_buckets; i++)
    for (int k = 0; k < 2 && plan->programs[i]; k++) ERR_TRY(run_program(ctx, i, plan->programs[i]));
  CUDA_TRY(cudaStreamSynchronize(ctx->stream), "warming up the CUDA graphs");
  if (plan->config.build_all_batch_sizes)
    log_verbose("cuda context: %d CUDA graphs captured and run in %.0f ms", plan->n_buckets,
                (double)(clock_now_ns() - t0) * 1e-6);
  return NULL;
}

static inferd_error *iface_context_create(backend_plan *p, int threads, backend_context **out) {
  (void)threads;
  cuda_context *ctx = mem_zalloc(sizeof(*ctx));
  ctx->plan = as_plan(p);
  ctx->profiled_bucket = -1;
  inferd_error *e = context_init(ctx);
  if (e) {
    context_free(ctx);
    return e;
  }
  *out = (backend_context *)ctx;
  return NULL;
}

static void iface_context_delete(backend_context *c) { context_free(as_context(c)); }

static size_t iface_context_memory_bytes(const backend_context *c) {
  const cuda_context *ctx = (const cuda_context *)c;
  return ctx->arena_size + ctx->workspace_size;
}

/* ---- runs ------------------------------------------------------------------------- */

/* Bytes of graph tensor t (an input's or output's raw tensor) for `batch`
 * rows of a program built for p->batch. */
static size_t rows_bytes(const cuda_plan *plan, const cuda_program *p, int value, int t, int batch) {
  const cuda_tensor *ct = &p->tensors[t];
  const ir_value *v = &plan->g->values[value];
  if (v->shape.rank > 0 && v->shape.dims[0] == IR_DIM_BATCH && p->batch > 0) return ct->bytes / (size_t)p->batch * (size_t)batch;
  return ct->bytes;
}

/* Whether the plan's runs replay CUDA graphs. Not for plans that keep FP32
 * activations (tf32, fp32): on the H200 a TF32 context replaying its
 * graphs now and then gave row 0 of the largest bucket wrong (by up to 1.1
 * over a logit range of 4, in about a third of the repeated runs of
 * tests/unit/engine/test_cuda_concurrency.c), also with only the first 27
 * steps captured, while running the same steps directly never did; FP16
 * never did either way. INFERD_CUDA_GRAPHS=1 replays them anyway (to look
 * into it), INFERD_CUDA_NO_GRAPHS=1 never. */
static bool graphs_wanted(const cuda_plan *plan) {
  if (getenv("INFERD_CUDA_NO_GRAPHS")) return false;
  if (getenv("INFERD_CUDA_GRAPHS")) return true;
  return plan->dtype != CUDA_F32;
}

/* Runs the program, through its CUDA graph when there is one: captured on
 * the bucket's second run, so the first one checks the steps directly. */
static inferd_error *run_program(cuda_context *ctx, int bucket, const cuda_program *p) {
  if (ctx->profiling) {
    free(ctx->step_ms);
    ctx->step_ms = mem_zalloc((size_t)(p->n_steps + 1) * sizeof(double));
    ctx->profiled_bucket = bucket;
    return cuda_program_launch(ctx, p, ctx->arena, ctx->workspace, true, ctx->step_ms);
  }
  /* Diagnostic: INFERD_CUDA_GRAPH_STEPS=k captures only the first k steps
   * (k < 0: all but the last -k), the rest run directly at every run. */
  int split = p->n_steps;
  if (getenv("INFERD_CUDA_GRAPH_STEPS")) {
    const int k = atoi(getenv("INFERD_CUDA_GRAPH_STEPS"));
    split = k < 0 ? p->n_steps + k : k;
    split = split < 0 ? 0 : split > p->n_steps ? p->n_steps : split;
  }
  if (ctx->graphs[bucket]) {
    CUDA_TRY(cudaGraphLaunch(ctx->graphs[bucket], ctx->stream), "launching the CUDA graph");
    return split < p->n_steps ? cuda_program_launch_steps(ctx, p, split, p->n_steps, ctx->arena, ctx->workspace)
                              : NULL;
  }
  if (ctx->runs[bucket] == 0 && getenv("INFERD_CUDA_CHECK_GRAPHS")) ERR_TRY(cuda_program_check_graphs(ctx, p));
  if (ctx->runs[bucket]++ == 0 || !graphs_wanted(ctx->plan))
    return cuda_program_launch(ctx, p, ctx->arena, ctx->workspace, false, NULL);
  CUDA_TRY(cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeThreadLocal), "starting a CUDA graph capture");
  inferd_error *e = cuda_program_launch_steps(ctx, p, 0, split, ctx->arena, ctx->workspace);
  cudaGraph_t graph = NULL;
  cudaError_t st = cudaStreamEndCapture(ctx->stream, &graph);
  if (e) {
    if (graph) cudaGraphDestroy(graph);
    return err_wrap(e, "capturing the CUDA graph");
  }
  if (st == cudaSuccess) st = cudaGraphInstantiate(&ctx->graphs[bucket], graph, 0);
  if (graph) cudaGraphDestroy(graph);
  if (st != cudaSuccess) {
    /* Some library call refused capture: run the steps directly from now on. */
    cudaGetLastError();
    ctx->graphs[bucket] = NULL;
    log_warn("CUDA graph capture failed (%s); running steps directly", cudaGetErrorString(st));
    return cuda_program_launch(ctx, p, ctx->arena, ctx->workspace, false, NULL);
  }
  CUDA_TRY(cudaGraphLaunch(ctx->graphs[bucket], ctx->stream), "launching the CUDA graph");
  return split < p->n_steps ? cuda_program_launch_steps(ctx, p, split, p->n_steps, ctx->arena, ctx->workspace) : NULL;
}

/* run_program, after the plan's previous ordered run when this one is to
 * be ordered (see cuda_plan.order_from). The inputs' copies, queued before,
 * overlap that run's compute. */
static inferd_error *ordered_run(cuda_context *ctx, int bucket, const cuda_program *p, int batch) {
  cuda_plan *plan = ctx->plan;
  if (plan->order_from <= 0 || batch < plan->order_from) return run_program(ctx, bucket, p);
  pthread_mutex_lock(&plan->order_lock);
  inferd_error *e = NULL;
  cudaError_t st = cudaSuccess;
  if (plan->last_ordered && plan->last_ordered != ctx->ordered)
    st = cudaStreamWaitEvent(ctx->stream, plan->last_ordered, 0);
  if (st != cudaSuccess) e = cuda_rt_error(st, "ordering the run after the previous one");
  if (!e) e = run_program(ctx, bucket, p);
  if (!e && (st = cudaEventRecord(ctx->ordered, ctx->stream)) != cudaSuccess)
    e = cuda_rt_error(st, "recording the run's end");
  if (!e) plan->last_ordered = ctx->ordered;
  pthread_mutex_unlock(&plan->order_lock);
  return e;
}

static inferd_error *iface_execute(backend_context *c, int batch, const backend_io *io) {
  cuda_context *ctx = as_context(c);
  cuda_plan *plan = ctx->plan;
  const ir_graph *g = plan->g;
  if (batch < 1 || batch > plan->config.max_batch_size)
    return err_new(INFERD_ERROR_INVALID_ARG, "batch %d is outside [1, %d]", batch, plan->config.max_batch_size);
  CUDA_TRY(cudaSetDevice(plan->device), "selecting the GPU");
  const int bucket = cuda_bucket_of(plan, batch);
  cuda_program *p;
  ERR_TRY(program_get(plan, bucket, &p));
  ctx->last_bucket = bucket;
  ctx->started_ns = clock_now_ns();
  ERR_TRY(ensure_memory(ctx, p));
  for (int i = 0; i < g->n_inputs; i++) {
    const int t = p->input_tensor[i];
    void *dst = cuda_tensor_ptr(p, t, ctx->arena);
    CUDA_TRY(cudaMemcpyAsync(dst, io->inputs[i], rows_bytes(plan, p, g->inputs[i], t, batch), cudaMemcpyDefault,
                             ctx->stream),
             "copying an input to the GPU");
    /* Diagnostic: the rows past a batch smaller than its bucket zeroed. */
    const size_t used = rows_bytes(plan, p, g->inputs[i], t, batch), all = p->tensors[t].bytes;
    if (used < all && getenv("INFERD_CUDA_ZERO_PADDING"))
      CUDA_TRY(cudaMemsetAsync((char *)dst + used, 0, all - used, ctx->stream), "zeroing the padding rows");
  }
  ERR_TRY(ordered_run(ctx, bucket, p, batch));
  for (int j = 0; j < g->n_outputs; j++) {
    if (!io->outputs[j]) continue;
    const int t = p->output_tensor[j];
    CUDA_TRY(cudaMemcpyAsync(io->outputs[j], cuda_tensor_ptr(p, t, ctx->arena),
                             rows_bytes(plan, p, g->outputs[j], t, batch), cudaMemcpyDefault, ctx->stream),
             "copying an output from the GPU");
  }
  return NULL;
}

/* Copies from and to device-readable memory, queued on the stream: one
 * plain copy alone, else one launch of the copy kernel over the entries
 * appended to the context's table. The table grows (after the stream has
 * drained what still reads it) and is reused after each wait. */
static inferd_error *iface_copy_async(backend_context *c, const inferd_copy *copies, int count) {
  cuda_context *ctx = as_context(c);
  CUDA_TRY(cudaSetDevice(ctx->plan->device), "selecting the GPU");
  if (count == 1) {
    if (copies[0].size)
      CUDA_TRY(cudaMemcpyAsync(copies[0].dst, copies[0].src, copies[0].size, cudaMemcpyDefault, ctx->stream),
               "queueing a copy");
    return NULL;
  }
  if (ctx->n_copies + count > ctx->cap_copies) {
    CUDA_TRY(cudaStreamSynchronize(ctx->stream), "waiting for the stream");
    int cap = ctx->cap_copies ? ctx->cap_copies : 256;
    while (cap < ctx->n_copies + count) cap *= 2;
    cuda_copy_entry *table = NULL;
    CUDA_TRY(cudaHostAlloc((void **)&table, (size_t)cap * sizeof(*table),
                           cudaHostAllocMapped | cudaHostAllocPortable),
             "allocating the copy table");
    if (ctx->copies) cudaFreeHost(ctx->copies);
    ctx->copies = table;
    ctx->cap_copies = cap;
    ctx->n_copies = 0; /* what was queued has run */
  }
  cuda_copy_entry *entries = ctx->copies + ctx->n_copies;
  uint64_t max_size = 0;
  int n = 0;
  for (int i = 0; i < count; i++) {
    if (!copies[i].size) continue;
    entries[n++] = (cuda_copy_entry){.dst = copies[i].dst, .src = copies[i].src, .size = copies[i].size};
    if (copies[i].size > max_size) max_size = copies[i].size;
  }
  if (n == 0) return NULL;
  cuda_copy_entry *device_table = NULL;
  CUDA_TRY(cudaHostGetDevicePointer((void **)&device_table, entries, 0), "mapping the copy table");
  KERNEL_TRY(cuda_launch_copies((cuda_stream_t)ctx->stream, device_table, n, max_size), "the copy kernel");
  ctx->n_copies += n;
  return NULL;
}

static inferd_error *iface_wait(backend_context *c) {
  cuda_context *ctx = as_context(c);
  ctx->n_copies = 0; /* the table is free again once the stream is waited for below */
  CUDA_TRY(cudaEventRecord(ctx->done, ctx->stream), "recording the end of a run");
  /* Runs of a few milliseconds or more are waited for asleep, so a server's
   * instance threads leave their cores to the network threads; shorter ones
   * are polled, since waking a sleeper costs about as long as they run. */
  double *expected = &ctx->expected_ms[ctx->last_bucket];
  if (*expected > 0 && *expected < 2.0) {
    cudaError_t st;
    while ((st = cudaEventQuery(ctx->done)) == cudaErrorNotReady) {
    }
    CUDA_TRY(st, "running on the GPU");
  } else {
    CUDA_TRY(cudaEventSynchronize(ctx->done), "running on the GPU");
  }
  const double ms = (double)(clock_now_ns() - ctx->started_ns) * 1e-6;
  *expected = *expected > 0 ? 0.9 * *expected + 0.1 * ms : ms;
  return NULL;
}

static void iface_set_profiling(backend_context *c, bool enabled) { as_context(c)->profiling = enabled; }

static int iface_profile(const backend_context *c, inferd_profile_entry *entries, int capacity) {
  const cuda_context *ctx = (const cuda_context *)c;
  if (ctx->profiled_bucket < 0 || !ctx->step_ms) return 0;
  const cuda_program *p = ctx->plan->programs[ctx->profiled_bucket];
  for (int i = 0; i < p->n_steps && i < capacity; i++) {
    const cuda_step *s = &p->steps[i];
    entries[i] = (inferd_profile_entry){.name = s->name,
                                        .kind = s->kind == CUDA_STEP_CONV ? s->conv.engine : s->what,
                                        .milliseconds = ctx->step_ms[i],
                                        .gflop = s->gflop};
  }
  return p->n_steps;
}

/* No owns_constant: buckets built on first use convert the graph's weights
 * then, so the graph keeps them. */
const inferd_backend_ops backend_cuda_ops = {
    .name = "cuda",
    .device_kind = INFERD_DEVICE_CUDA,
    .device_count = cuda_device_count,
    .describe = cuda_describe,
    .compute_capability = cuda_compute_capability,
    .memory_kinds = (1u << INFERD_MEMORY_CPU_PINNED) | (1u << INFERD_MEMORY_GPU),
    .supports_node = cuda_supports_node,
    .plan_create = iface_plan_create,
    .plan_delete = iface_plan_delete,
    .plan_weight_bytes = iface_plan_weight_bytes,
    .memory_alloc = cuda_memory_alloc,
    .memory_free = cuda_memory_free,
    .memory_copy = cuda_memory_copy,
    .context_create = iface_context_create,
    .context_delete = iface_context_delete,
    .context_memory_bytes = iface_context_memory_bytes,
    .execute = iface_execute,
    .copy_async = iface_copy_async,
    .wait = iface_wait,
    .set_profiling = iface_set_profiling,
    .profile = iface_profile,
};
