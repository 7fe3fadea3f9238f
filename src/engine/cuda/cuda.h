/*
 * The CUDA backend, inside.
 *
 * A plan holds the optimized graph, the weights on its GPU (converted once
 * to the plan's precision and to the layouts the kernels read: KRSC filters
 * for NHWC convolutions, [N,K] matrices for products) and, per batch
 * bucket, a program. Buckets are powers of two up to max_batch_size (and it
 * itself): a run of batch b uses the smallest bucket >= b, its rows past b
 * computed on stale data and never copied out, so a handful of programs and
 * CUDA graphs serve every batch size.
 *
 * A program is a list of steps over tensors. A tensor is one value in one
 * layout and storage type: 4-D activations live in NHWC in the compute type
 * (fp16, bf16 or fp32), everything else dense row-major; a view (Reshape,
 * Flatten...) of a tensor whose layout the view keeps shares its buffer,
 * otherwise a conversion step makes a plain copy. Root tensors own a region
 * of the context's arena, placed by the memory planner from the steps'
 * lifetimes, or point at plan-owned constants on the device.
 *
 * Convolutions are cuDNN graphs (convolution, bias, residual add and
 * activation fused when an engine takes the whole graph; the convolution
 * alone plus one epilogue kernel otherwise; a direct kernel as the last
 * resort), products are cuBLASLt matmuls with a bias epilogue. Both are
 * autotuned: the candidates are timed once when the program is built, and
 * the winners recorded in the tactic cache.
 *
 * A context owns a stream, cuDNN and cuBLASLt handles, an arena for the
 * largest bucket, a workspace and a CUDA graph per bucket, captured on the
 * bucket's second run (the first one runs the steps directly) and replayed
 * from then on. A run copies the inputs into the arena, launches the graph
 * and copies the outputs back, all asynchronously on the stream.
 */
#ifndef INFERD_ENGINE_CUDA_CUDA_H
#define INFERD_ENGINE_CUDA_CUDA_H

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn_graph.h>
#include <pthread.h>

#include "engine/backend.h"
#include "engine/cuda/cuda_kernels.h"

typedef struct cuda_plan cuda_plan;
typedef struct cuda_context cuda_context;

/* ---- the vendor libraries, loaded at run time (cuda_libs.c) ------------ */
#define CUDA_CUDNN_FUNCS(X)                                                                              \
  X(cudnnCreate) X(cudnnDestroy) X(cudnnSetStream) X(cudnnGetErrorString) X(cudnnGetLastErrorString)    \
  X(cudnnGetVersion) X(cudnnBackendCreateDescriptor) X(cudnnBackendDestroyDescriptor)                   \
  X(cudnnBackendSetAttribute) X(cudnnBackendGetAttribute) X(cudnnBackendFinalize) X(cudnnBackendExecute)
#define CUDA_CUBLASLT_FUNCS(X)                                                                           \
  X(cublasLtCreate) X(cublasLtDestroy) X(cublasLtGetVersion) X(cublasLtMatmulDescCreate)                \
  X(cublasLtMatmulDescDestroy) X(cublasLtMatmulDescSetAttribute) X(cublasLtMatrixLayoutCreate)          \
  X(cublasLtMatrixLayoutDestroy) X(cublasLtMatrixLayoutSetAttribute) X(cublasLtMatmulPreferenceCreate) X(cublasLtMatmulPreferenceDestroy)   \
  X(cublasLtMatmulPreferenceSetAttribute) X(cublasLtMatmulAlgoGetHeuristic) X(cublasLtMatmul)

typedef struct cuda_libs {
#define CUDA_LIB_FIELD_(name) __typeof__(name) *name;
  CUDA_CUDNN_FUNCS(CUDA_LIB_FIELD_)
  CUDA_CUBLASLT_FUNCS(CUDA_LIB_FIELD_)
#undef CUDA_LIB_FIELD_
} cuda_libs;

/* The loaded libraries, or an error saying which could not be loaded. */
inferd_error *cuda_libs_get(const cuda_libs **libs);

/* Errors carrying the library's own message. */
inferd_error *cuda_rt_error(cudaError_t status, const char *what);
inferd_error *cuda_dnn_error(const cuda_libs *l, cudnnStatus_t status, const char *what);
inferd_error *cuda_lt_error(cublasStatus_t status, const char *what);

#define CUDA_TRY(call, what)                                         \
  do {                                                               \
    cudaError_t cuda_try_st_ = (call);                               \
    if (cuda_try_st_ != cudaSuccess) return cuda_rt_error(cuda_try_st_, what); \
  } while (0)
#define CUDNN_TRY(l, call, what)                                                  \
  do {                                                                            \
    cudnnStatus_t cudnn_try_st_ = (call);                                         \
    if (cudnn_try_st_ != CUDNN_STATUS_SUCCESS) return cuda_dnn_error(l, cudnn_try_st_, what); \
  } while (0)
#define CUBLASLT_TRY(call, what)                                                   \
  do {                                                                             \
    cublasStatus_t lt_try_st_ = (call);                                            \
    if (lt_try_st_ != CUBLAS_STATUS_SUCCESS) return cuda_lt_error(lt_try_st_, what); \
  } while (0)
#define KERNEL_TRY(call, what)                                                        \
  do {                                                                                \
    int kernel_try_st_ = (call);                                                      \
    if (kernel_try_st_) return cuda_rt_error((cudaError_t)kernel_try_st_, what);      \
  } while (0)

/* ---- programs ---------------------------------------------------------- */
typedef enum cuda_layout { CUDA_LAYOUT_PLAIN = 0, CUDA_LAYOUT_NHWC } cuda_layout;

typedef enum cuda_storage {
  CUDA_STORAGE_ARENA = 0,
  CUDA_STORAGE_CONST, /* plan-owned device memory */
} cuda_storage;

typedef struct cuda_tensor {
  int value;
  cuda_layout layout;
  cuda_dtype dtype;
  int rank;
  int64_t dims[IR_MAX_RANK]; /* logical (ONNX order) at the program's batch */
  int64_t cphys;             /* NHWC: channels as stored (>= dims[1], padded with zeros) */
  size_t bytes;
  int alias_of; /* root tensor whose buffer it shares, -1 for a root */
  /* Roots: */
  cuda_storage storage;
  const void *const_ptr;
  size_t offset;
  int first, last; /* steps writing first and reading last */
} cuda_tensor;

typedef enum cuda_step_kind {
  CUDA_STEP_COPY = 0, /* strided copy/convert (+ activations) */
  CUDA_STEP_BINARY,
  CUDA_STEP_CONV,
  CUDA_STEP_GEMM,
  CUDA_STEP_POOL,
  CUDA_STEP_SOFTMAX,
  CUDA_STEP_TO_NHWC, /* a model's fp32 NCHW input to NHWC, channels padded */
  CUDA_STEP_BATCHNORM,
  CUDA_STEP_REDUCE,
  CUDA_STEP_PAD,
} cuda_step_kind;

/* An operand of an element-wise step: a tensor, an element offset into it
 * and strides over the step's index space. */
typedef struct cuda_view {
  int tensor;
  int64_t offset;
  int64_t strides[CUDA_MAX_DIMS];
} cuda_view;

/* How a convolution runs: a cuDNN plan over the fused graph or over the
 * convolution alone (then the epilogue kernel), or the direct kernel. */
typedef enum cuda_conv_mode { CUDA_CONV_FUSED = 0, CUDA_CONV_PLAIN, CUDA_CONV_DIRECT } cuda_conv_mode;

typedef struct cuda_conv {
  cuda_conv_mode mode;
  cuda_conv_desc desc;
  cudnnBackendDescriptor_t plan; /* FUSED and PLAIN */
  cudnnBackendDescriptor_t keep[48]; /* the graph's descriptors, alive as long as the plan */
  int n_keep;
  size_t workspace;
  char engine[48]; /* chosen tactic, for profiles and the cache */
  char key[320];   /* layer signature: steps with equal keys share one plan */
  bool borrowed;   /* plan belongs to an earlier step */
} cuda_conv;

/* y[M,N] = alpha * x[M,K] * w[N,K]^T (+ bias[N]) (+ beta * y), `batch`
 * times over strided matrices. Weights stored [K,N] (a MatMul's right
 * operand computed at run time) have w_kn set, an x stored [K,M] (Gemm's
 * transA) x_km; both are read through cuBLASLt's transposes, no copies. */
typedef struct cuda_gemm {
  int64_t m, n, k;
  bool w_kn, x_km;
  int batch;
  int64_t stride_x, stride_w, stride_y; /* elements between matrices of a batch */
  float alpha;
  float beta; /* y holds C (copied in by an earlier step) when nonzero */
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t a, b, c;
  cublasLtMatmulAlgo_t algo;
  size_t workspace;
} cuda_gemm;

typedef struct cuda_step {
  cuda_step_kind kind;
  const char *name; /* node name */
  const char *what; /* "conv+bias+sum+relu", "copy", ... */
  double gflop;
  cuda_epilogue epilogue;
  /* element-wise: */
  cuda_index_space space;
  cuda_view out, a, b;
  cuda_binary_op binary;
  /* tensors read and written by the library steps: */
  int x, w, bias, sum, y;
  cuda_conv conv;
  cuda_gemm gemm;
  cuda_pool_desc pool;
  int64_t rows, cols; /* softmax: rows x cols; batchnorm: elements x channels */
  int64_t inner;      /* softmax and batchnorm: elements between neighbours along the axis */
  int log_softmax;
  int params[4];      /* batchnorm: scale, bias, mean, var; pad: params[0] the fill value or -1 */
  float epsilon;
  cuda_reduce_desc reduce;
  cuda_pad_desc pad;
} cuda_step;

typedef struct cuda_program {
  int batch;
  cuda_tensor *tensors;
  int n_tensors;
  size_t cap_tensors;
  cuda_step *steps;
  int n_steps;
  size_t cap_steps;
  int *input_tensor;  /* per graph input: its raw (model-typed, plain) tensor */
  int *output_tensor; /* per graph output: its raw tensor */
  size_t arena_size;
  size_t workspace_size;
} cuda_program;

/* A constant on the device in the plan's layout for one use. */
typedef struct cuda_weight {
  struct cuda_weight *next;
  int value;
  int kind; /* what layout: CUDA_WEIGHT_* */
  cuda_dtype dtype;
  int64_t cphys;
  void *data;
} cuda_weight;

enum { CUDA_WEIGHT_PLAIN = 0, CUDA_WEIGHT_KRSC, CUDA_WEIGHT_NK };

enum { CUDA_MAX_BUCKETS = 24 };
/* Runs of this many rows or more are ordered across contexts (see
 * cuda_plan.order_from); INFERD_CUDA_ORDER_FROM overrides it, 0 turns it off. */
enum { CUDA_ORDER_FROM = 32 };

/* What a program build times candidates with: a stream and library handles
 * of its own. */
enum { CUDA_MAX_FINALIZERS = 10 };

typedef struct cuda_tuner {
  cudaStream_t stream;
  cudnnHandle_t dnn;
  cublasLtHandle_t lt;
  int device;
  /* A layer's candidate execution plans are finalized at once, one thread
   * per candidate up to n_finalizers, each with its own cuDNN handle
   * (finalizing compiles the runtime-fusion kernels on the host: about 37
   * ms a plan on the H200's host). Timing them stays one at a time. */
  cudnnHandle_t finalizers[CUDA_MAX_FINALIZERS];
  int n_finalizers;
} cuda_tuner;

/* Where a plan's load time goes (ms), for the log line that ends it. */
typedef struct cuda_load_stats {
  double heuristics_ms; /* cuDNN graphs and engine heuristics */
  double finalize_ms;   /* cuDNN execution plans finalized */
  double timing_ms;     /* candidates timed, or a cached choice checked */
  double gemm_ms;       /* cuBLASLt algorithms chosen */
  double weights_ms;    /* weights converted and uploaded */
  int finalized;        /* execution plans finalized */
  int cached, timed;    /* layers whose choice came from the cache, or was timed */
} cuda_load_stats;

struct cuda_plan {
  const ir_graph *g;
  backend_plan_config config;
  const cuda_libs *libs;
  int device;
  cuda_dtype dtype; /* compute storage type */
  bool tf32;
  struct cudaDeviceProp prop;
  pthread_mutex_t lock; /* guards programs (built on first use) and weights */
  /* Held around every cudnnBackendExecute. The programs' cuDNN execution
   * plans are shared by the plan's contexts, and two threads executing one
   * at once (each with its own handle and stream) were seen to give wrong
   * answers on the H200; with CUDA graphs the execution happens only while
   * a bucket's graph is captured, so the lock costs nothing at steady
   * state. */
  pthread_mutex_t exec_lock;
  /* Runs of order_from rows or more (each fills the GPU alone) compute one
   * after another across the plan's contexts, in the order they were
   * queued: each waits on the stream for the one queued before it
   * (last_ordered, a context's order event), under order_lock. Run at once,
   * two instances' batches share the GPU and finish together, and the GPU
   * idles while both batches' answers travel; ordered, one computes while
   * the other's requests come and go. 0: never ordered. */
  pthread_mutex_t order_lock;
  cudaEvent_t last_ordered;
  int order_from;
  int buckets[CUDA_MAX_BUCKETS];
  int n_buckets;
  cuda_program *programs[CUDA_MAX_BUCKETS];
  cuda_weight *weights;
  size_t weight_bytes;
  /* Builds time candidates on this. */
  cuda_tuner tuner;
  /* Tactic cache (cuda_tactics.c). */
  struct cuda_tactics *tactics;
  cuda_load_stats stats; /* written by builds, under lock */
};

struct cuda_context {
  cuda_plan *plan;
  cudaStream_t stream;
  cudaEvent_t done; /* recorded after each run */
  cudaEvent_t ordered; /* recorded after each ordered run's compute (see cuda_plan.order_from) */
  /* How long each bucket's runs take (a moving average, ms): a wait for a
   * short run polls, a long one sleeps on the event. */
  double expected_ms[CUDA_MAX_BUCKETS];
  int last_bucket;
  uint64_t started_ns;
  cudnnHandle_t dnn;
  cublasLtHandle_t lt;
  void *arena;
  size_t arena_size;
  void *workspace;
  size_t workspace_size;
  cudaGraphExec_t graphs[CUDA_MAX_BUCKETS];
  int runs[CUDA_MAX_BUCKETS]; /* runs of each bucket so far */
  bool profiling;
  double *step_ms;
  int profiled_bucket;
  /* Copies queued by copy_async since the last wait, read by the copy
   * kernel from this mapped pinned table; used from the start again once
   * the stream is waited for. */
  cuda_copy_entry *copies;
  int n_copies, cap_copies;
};

/* cuda_program.c */
int cuda_bucket_of(const cuda_plan *plan, int batch);
inferd_error *cuda_program_build(cuda_plan *plan, const cuda_tuner *tuner, int bucket, cuda_program **out);
void cuda_program_free(const cuda_plan *plan, cuda_program *p);
/* Device address of tensor t in an arena. */
void *cuda_tensor_ptr(const cuda_program *p, int t, void *arena);
/* Queues the program's steps on the context's stream. */
inferd_error *cuda_program_launch(cuda_context *ctx, const cuda_program *p, void *arena, void *workspace,
                                  bool profile, double *step_ms);
/* Steps [from, to) only. */
inferd_error *cuda_program_launch_steps(cuda_context *ctx, const cuda_program *p, int from, int to, void *arena,
                                        void *workspace);
size_t cuda_dtype_size(cuda_dtype t);
/* Diagnostic (INFERD_CUDA_CHECK_GRAPHS=1): runs each step, then the whole
 * program, directly twice and through a captured graph from one arena
 * state, and logs every step whose results differ. */
inferd_error *cuda_program_check_graphs(cuda_context *ctx, const cuda_program *p);

/* cuda_conv.c: the cuDNN graph of step s (its tensors set), autotuned with
 * the scratch buffers given; falls back as cuda_conv_mode says. */
inferd_error *cuda_conv_prepare(cuda_plan *plan, const cuda_tuner *tuner, const cuda_program *p, cuda_step *s,
                                void *arena, void *workspace,
                                size_t workspace_cap);
/* Executions of cuDNN plans are serialized by plan->exec_lock (see there). */
inferd_error *cuda_conv_run(cuda_plan *plan, cudnnHandle_t dnn, cudaStream_t stream, const cuda_program *p,
                            const cuda_step *s, void *arena, void *workspace);
void cuda_conv_release(const cuda_libs *l, cuda_conv *c);

/* cuda_gemm.c */
inferd_error *cuda_gemm_prepare(cuda_plan *plan, const cuda_tuner *tuner, const cuda_program *p, cuda_step *s,
                                void *arena, void *workspace,
                                size_t workspace_cap);
inferd_error *cuda_gemm_run(cublasLtHandle_t lt, const cuda_libs *l, cudaStream_t stream, const cuda_program *p,
                            const cuda_step *s, void *arena, void *workspace);
void cuda_gemm_release(const cuda_libs *l, cuda_gemm *g);

/* cuda_tactics.c: chosen tactics per layer signature, kept in a file. */
struct cuda_tactics *cuda_tactics_open(const cuda_plan *plan, const char *path);
/* The recorded choice for `key`, or NULL. */
/* Copies the choice recorded for key into out; false when there is none.
 * The cache may be used from several threads. */
bool cuda_tactics_find(struct cuda_tactics *t, const char *key, char *out, size_t size);
void cuda_tactics_put(struct cuda_tactics *t, const char *key, const char *choice);
void cuda_tactics_save(struct cuda_tactics *t); /* writes the file if anything changed */
void cuda_tactics_close(struct cuda_tactics *t); /* saves, then frees */

/* Times `run` (3 warm-ups, then the median of 5) on the build stream, in ms;
 * a negative result means the run failed. */
typedef inferd_error *(*cuda_timed_fn)(void *arg);
double cuda_time_ms(const cuda_tuner *tuner, cuda_timed_fn run, void *arg);

#endif
