/*
 * inferd public C API.
 *
 * Every handle is opaque. Every call that can fail returns an inferd_error
 * pointer: NULL means success, anything else is owned by the caller and must be
 * released with inferd_error_delete(). Each function's comment says who owns
 * what it returns and for how long.
 *
 * Names: an object is made by inferd_<object>_create and ended by
 * inferd_<object>_delete; the two that come from elsewhere say so instead
 * (inferd_plan_load reads a model file, inferd_model_inspect reads one
 * without compiling it; both are ended by _delete); memory is taken with
 * _alloc and given back with _free.
 *
 * This first part is the engine: load an ONNX model into a compiled plan, make
 * execution contexts from it, and run inferences. The server API (requests,
 * responses, shared memory, statistics) builds on it.
 */
#ifndef INFERD_H
#define INFERD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define INFERD_API __attribute__((visibility("default")))
#else
#define INFERD_API
#endif

/* ---- errors ------------------------------------------------------------
 * One table gives each code its name, the HTTP status a frontend answers with
 * and the gRPC status code (numbers from grpc/status.h). Codes are only ever
 * appended.
 */
#define INFERD_ERROR_MAP(X)                                                     \
  X(UNKNOWN, "unknown error", 500, 2)                                           \
  X(INTERNAL, "internal error", 500, 13)                                        \
  X(NOT_FOUND, "not found", 404, 5)                                             \
  X(INVALID_ARG, "invalid argument", 400, 3)                                    \
  X(UNAVAILABLE, "unavailable", 503, 14)                                        \
  X(UNSUPPORTED, "unsupported", 400, 12)                                        \
  X(ALREADY_EXISTS, "already exists", 409, 6)                                   \
  X(NO_MEMORY, "out of memory", 500, 8)                                         \
  X(IO, "I/O error", 500, 13)                                                   \
  X(TOO_LARGE, "too large", 413, 8)                                             \
  X(CANCELLED, "cancelled", 499, 1)                                             \
  X(TIMEOUT, "deadline exceeded", 504, 4)                                       \
  X(PERMISSION_DENIED, "permission denied", 403, 7)                            \
  X(OVERLOADED, "overloaded, retry later", 503, 14)

typedef enum inferd_error_code {
#define INFERD_ERROR_ENUM_(name, text, http, grpc) INFERD_ERROR_##name,
  INFERD_ERROR_MAP(INFERD_ERROR_ENUM_)
#undef INFERD_ERROR_ENUM_
      INFERD_ERROR_CODE_COUNT_
} inferd_error_code;

typedef struct inferd_error inferd_error;

/* Makes a new error; the message is copied. */
INFERD_API inferd_error *inferd_error_create(inferd_error_code code, const char *message);
INFERD_API inferd_error_code inferd_error_code_of(const inferd_error *error);
/* The message, valid until the error is deleted. */
INFERD_API const char *inferd_error_message(const inferd_error *error);
/* Short name of a code, e.g. "INVALID_ARG". Static storage. */
INFERD_API const char *inferd_error_code_name(inferd_error_code code);
INFERD_API int inferd_error_code_http_status(inferd_error_code code);
INFERD_API int inferd_error_code_grpc_status(inferd_error_code code);
/* How long a client should wait before it retries a request refused with
 * this code, in ms: the HTTP frontend sends it as Retry-After (in whole
 * seconds) and the gRPC frontend as grpc-retry-pushback-ms. 0 for codes
 * that carry no retry hint. OVERLOADED (a bound on queued or in-flight
 * work is reached, or the server is stopping: the request itself is fine,
 * later or elsewhere it may be served) is the code that has one. */
INFERD_API int inferd_error_code_retry_after_ms(inferd_error_code code);
INFERD_API void inferd_error_delete(inferd_error *error);

/* ---- data types ---------------------------------------------------------
 * The KServe v2 tensor data types. Values are only ever appended.
 */
typedef enum inferd_datatype {
  INFERD_TYPE_INVALID = 0,
  INFERD_TYPE_BOOL,
  INFERD_TYPE_UINT8,
  INFERD_TYPE_UINT16,
  INFERD_TYPE_UINT32,
  INFERD_TYPE_UINT64,
  INFERD_TYPE_INT8,
  INFERD_TYPE_INT16,
  INFERD_TYPE_INT32,
  INFERD_TYPE_INT64,
  INFERD_TYPE_FP16,
  INFERD_TYPE_FP32,
  INFERD_TYPE_FP64,
  INFERD_TYPE_BYTES,
  INFERD_TYPE_BF16,
  INFERD_TYPE_COUNT_
} inferd_datatype;

/* KServe name ("FP32", "INT64", "BYTES", ...); "INVALID" for anything else. */
INFERD_API const char *inferd_datatype_name(inferd_datatype type);
/* Parses a KServe name; INFERD_TYPE_INVALID when unknown. */
INFERD_API inferd_datatype inferd_datatype_from_name(const char *name);
/* Bytes per element; 0 for BYTES (variable length) and INVALID. */
INFERD_API size_t inferd_datatype_size(inferd_datatype type);

/* ---- engine: plans and execution contexts --------------------------------
 * A plan is a model compiled for one backend: the optimized graph, its weights
 * in the backend's layouts, and the per-batch-size programs made from them. It
 * is immutable once loaded and may be shared by any number of contexts. A
 * context owns the memory one inference needs (activations, scratch) and the
 * threads it runs on; one context runs one inference at a time.
 */
#define INFERD_MAX_RANK 8

typedef struct inferd_plan inferd_plan;
typedef struct inferd_context inferd_context;

/* Where a plan runs. Values are only ever appended. */
typedef enum inferd_device_kind {
  INFERD_DEVICE_CPU = 0,
  INFERD_DEVICE_CUDA,
} inferd_device_kind;

typedef struct inferd_device {
  inferd_device_kind kind;
  int ordinal; /* GPU index for CUDA; 0 for the CPU */
} inferd_device;

/* Where a tensor's bytes live, as Triton's TRITONSERVER_MemoryType: plain
 * host memory, page-locked host memory (copies to a GPU run asynchronously
 * from it) and GPU memory. Values are only ever appended. */
typedef enum inferd_memory_kind {
  INFERD_MEMORY_CPU = 0,
  INFERD_MEMORY_CPU_PINNED,
  INFERD_MEMORY_GPU,
} inferd_memory_kind;

/* Arithmetic a plan computes in. DEFAULT is FP32 on the CPU and TF32 (FP32
 * storage, tensor-core products) on a GPU; FP32 there means strict FP32.
 * FP16 and BF16 store activations and weights in 16 bits and accumulate in
 * FP32; a model's inputs and outputs keep their own datatypes. INT8 (the
 * CPU) runs convolutions on 8-bit integers: weights with a symmetric scale
 * per output channel, activations with the per-tensor scales of a
 * calibration cache (inferd_plan_options.calibration_cache, made by
 * `inferd calibrate`); layers without a threshold there stay FP32. */
typedef enum inferd_precision {
  INFERD_PRECISION_DEFAULT = 0,
  INFERD_PRECISION_FP32,
  INFERD_PRECISION_TF32,
  INFERD_PRECISION_FP16,
  INFERD_PRECISION_BF16,
  INFERD_PRECISION_INT8,
} inferd_precision;

/* "fp32", "tf32", "fp16", "bf16", "int8" ("default" for DEFAULT). Static storage. */
INFERD_API const char *inferd_precision_name(inferd_precision precision);
/* Parses those names; false when unknown. */
INFERD_API bool inferd_precision_from_name(const char *name, inferd_precision *precision);
/* Parses "cpu", "cuda" or "cuda:N"; false when malformed. */
INFERD_API bool inferd_device_from_name(const char *name, inferd_device *device);

/* Devices of a kind this build can use right now (1 for the CPU; the GPUs
 * the CUDA driver shows, 0 without a driver or without the CUDA backend). */
INFERD_API int inferd_device_count(inferd_device_kind kind);
/* One line about the device, e.g. "NVIDIA H200 (sm_90, 139.8 GiB), CUDA 13.0,
 * cuDNN 9.19" or "oneDNN 2.6 on 2 cores, AVX-512+AMX", into buf (always
 * NUL-terminated when size > 0). Returns the length it wanted. */
INFERD_API size_t inferd_device_describe(inferd_device device, char *buf, size_t size);
/* The compute capability of GPU `ordinal` (9.0 for an H100 or H200); false
 * when there is no such GPU or the backend cannot tell. */
INFERD_API bool inferd_device_compute_capability(int ordinal, int *major, int *minor);

typedef struct inferd_plan_options {
  /* Backend name: "cpu" (default when NULL) or "cuda". */
  const char *backend;
  /* Largest batch the plan must run; contexts size their memory for it. 0 means
   * the model's own batch size when static, else 1. */
  int max_batch_size;
  /* Comma-separated optimization passes to leave out (see `inferd bench
   * --help`), or NULL. */
  const char *disabled_passes;
  /* Threads each context uses by default; 0 means all cores. */
  int threads;
  /* Inputs with a default value that stay inputs: ONNX graph inputs that
   * are also initializers (the default). Every name must be one; other such
   * initializers are weights, folded like constants. A run still takes
   * every input: a caller that has no value passes the default
   * (inferd_plan_input_default), as the server does for requests that
   * leave an `optional` input out. */
  const char *const *optional_inputs;
  int optional_input_count;
  /* Where the plan runs; zero is the CPU. The backend follows from it when
   * `backend` is NULL ("cpu" or "cuda"). */
  inferd_device device;
  inferd_precision precision;
  /* File of autotuning choices (a GPU plan's timed kernel choices per layer
   * and batch size), read at load when it matches the device and library
   * versions and rewritten after new timings; NULL: time at every load. */
  const char *tactic_cache;
  /* Prepare every batch size at load (a GPU plan builds, autotunes and
   * captures each batch bucket then) instead of on first use. */
  bool build_all_batch_sizes;
  /* For INT8 calibration: the activation each convolution and matrix
   * product reads (after optimization, where fused layers have already
   * absorbed their activations) becomes an extra output, after the model's
   * own, named as the value is. Graph inputs are not repeated (the caller
   * has them), nor are values already outputs. */
  bool calibration_outputs;
  /* INT8: the calibration cache file (`inferd calibrate`) with the
   * activation thresholds; it must have been made for this model file (its
   * SHA-256 is checked). Required for INT8, refused otherwise. */
  const char *calibration_cache;
  /* INT8: convolutions kept in FP32, comma-separated node names; "first"
   * names every convolution that reads a graph input (the image). NULL:
   * every convolution with a threshold runs in INT8. */
  const char *int8_keep;
} inferd_plan_options;

typedef struct inferd_tensor_info {
  const char *name;       /* valid for the plan's lifetime */
  inferd_datatype datatype;
  int rank;
  int64_t dims[INFERD_MAX_RANK]; /* -1 for the dynamic batch dimension */
} inferd_tensor_info;

/* Loads an ONNX model file and compiles it. *plan is owned by the caller and
 * released with inferd_plan_delete(). */
INFERD_API inferd_error *inferd_plan_load(const char *model_path, const inferd_plan_options *options,
                                         inferd_plan **plan);
INFERD_API void inferd_plan_delete(inferd_plan *plan);
INFERD_API int inferd_plan_input_count(const inferd_plan *plan);
INFERD_API int inferd_plan_output_count(const inferd_plan *plan);
/* Fills *info for input/output `index`; the strings stay valid as long as the plan. */
INFERD_API inferd_error *inferd_plan_input(const inferd_plan *plan, int index, inferd_tensor_info *info);
INFERD_API inferd_error *inferd_plan_output(const inferd_plan *plan, int index, inferd_tensor_info *info);
/* True when the first dimension of every input and output is the batch. */
INFERD_API bool inferd_plan_has_dynamic_batch(const inferd_plan *plan);
INFERD_API int inferd_plan_max_batch_size(const inferd_plan *plan);
/* The default value of optional input `index`, for one batch item (the
 * whole tensor when the model does not batch); false when it has none. */
INFERD_API bool inferd_plan_input_default(const inferd_plan *plan, int index, const void **data, size_t *byte_size);
/* Bytes of weights the plan holds after optimization. */
INFERD_API size_t inferd_plan_weight_bytes(const inferd_plan *plan);
/* The device and precision the plan was compiled for, and the backend's name. */
INFERD_API inferd_device inferd_plan_device(const inferd_plan *plan);
INFERD_API inferd_precision inferd_plan_precision(const inferd_plan *plan);
INFERD_API const char *inferd_plan_backend_name(const inferd_plan *plan);
/* Memory of `kind` on the plan's device (pinned host memory registered
 * with its GPU, or GPU memory), for staging buffers and tensors handed to
 * runs. Kinds the backend has no allocator for fall back to host memory
 * (CPU_PINNED on a CPU plan is plain memory). Freed with
 * inferd_plan_memory_free with the same kind; the plan must outlive it. */
INFERD_API inferd_error *inferd_plan_memory_alloc(const inferd_plan *plan, inferd_memory_kind kind, size_t size,
                                                 void **ptr);
INFERD_API void inferd_plan_memory_free(const inferd_plan *plan, inferd_memory_kind kind, void *ptr);
/* Copies `size` bytes between memory of any kinds the plan's device can
 * reach (host, pinned, its GPU's), returning when the copy is done. */
INFERD_API inferd_error *inferd_plan_memory_copy(const inferd_plan *plan, void *dst, inferd_memory_kind dst_kind,
                                                const void *src, inferd_memory_kind src_kind, size_t size);

/* A model's inputs and outputs without compiling it (import and shape
 * inference only: milliseconds where a plan takes a second). */
typedef struct inferd_model_info inferd_model_info;
INFERD_API inferd_error *inferd_model_inspect(const char *model_path, inferd_model_info **info);
/* Same, listing the named inputs with default values among the inputs (see
 * inferd_plan_options.optional_inputs). */
INFERD_API inferd_error *inferd_model_inspect_with_defaults(const char *model_path, const char *const *optional_inputs,
                                                          int optional_input_count, inferd_model_info **info);
INFERD_API void inferd_model_info_delete(inferd_model_info *info);
INFERD_API int inferd_model_info_input_count(const inferd_model_info *info);
INFERD_API int inferd_model_info_output_count(const inferd_model_info *info);
/* The returned array stays valid as long as info. */
INFERD_API const inferd_tensor_info *inferd_model_info_inputs(const inferd_model_info *info);
INFERD_API const inferd_tensor_info *inferd_model_info_outputs(const inferd_model_info *info);
INFERD_API bool inferd_model_info_has_dynamic_batch(const inferd_model_info *info);

typedef struct inferd_context_options {
  int threads; /* 0: the plan's default */
} inferd_context_options;

/* Makes an execution context; the plan must outlive it. Its activation memory
 * for max_batch_size is allocated here, so runs do not allocate. */
INFERD_API inferd_error *inferd_context_create(inferd_plan *plan, const inferd_context_options *options,
                                              inferd_context **context);
INFERD_API void inferd_context_delete(inferd_context *context);
/* Bytes of activation and scratch memory the context holds. */
INFERD_API size_t inferd_context_memory_bytes(const inferd_context *context);

/* A tensor handed to or from a run. `data` is borrowed for the call's
 * duration; for outputs the caller provides `data` with room for `byte_size`
 * bytes, and the run fills dims and rank.
 *
 * BYTES tensors are serialized: per element a 4-byte little-endian length,
 * then its bytes (KServe's binary form). A BYTES output is the one
 * exception to caller-provided memory: the run points `data` at the
 * serialized result in memory the context owns, valid until its next run
 * or deletion, and sets `byte_size`; whatever `data` held is ignored (and
 * not freed). The engine runs BYTES through data-movement ops only
 * (Identity, Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat,
 * Gather, Slice, Pad). */
typedef struct inferd_tensor {
  const char *name;
  inferd_datatype datatype;
  int rank;
  int64_t dims[INFERD_MAX_RANK];
  void *data;
  size_t byte_size;
  /* Where data lives; zero is host memory. GPU memory must be on the plan's
   * GPU (memory_id is its ordinal). */
  inferd_memory_kind memory;
  int memory_id;
} inferd_tensor;

/* Runs one inference of `batch` items (1 when the model has no batch
 * dimension). Inputs are matched by name and checked against the model;
 * outputs[i].name selects which outputs to produce. */
INFERD_API inferd_error *inferd_context_run(inferd_context *context, int batch, const inferd_tensor *inputs,
                                           int input_count, inferd_tensor *outputs, int output_count);
/* The same, returning once the work is queued on the context's device
 * stream: inputs and outputs stay borrowed, unread and unwritten, until
 * inferd_context_wait returns. On the CPU it runs to completion. An error
 * from either call leaves the outputs undefined. */
INFERD_API inferd_error *inferd_context_run_async(inferd_context *context, int batch, const inferd_tensor *inputs,
                                                 int input_count, inferd_tensor *outputs, int output_count);
INFERD_API inferd_error *inferd_context_wait(inferd_context *context);

/* One copy of a batch's gather or scatter (inferd_context_copy_async). */
typedef struct inferd_copy {
  void *dst;
  const void *src;
  size_t size;
} inferd_copy;
/* Queues `count` copies on the context's device stream, in order with its
 * runs: copies queued before inferd_context_run_async can fill its inputs,
 * copies queued after it read its outputs, and all are done when the next
 * inferd_context_wait returns (which they need even without a run). Every
 * pointer is GPU memory of the plan's GPU or pinned host memory from
 * inferd_plan_memory_alloc; the memory stays borrowed until that wait, and
 * copies must not overlap each other. A plan without device memory copies
 * at once. The server gathers requests whose tensors are in CUDA shared
 * memory this way, many copies in one launch. */
INFERD_API inferd_error *inferd_context_copy_async(inferd_context *context, const inferd_copy *copies, int count);

/* Says that the calling thread, which runs `context`, will not run it for a
 * while. The CPU backend then ends the thread's OpenMP workers: workers kept
 * by idle threads count against the CPUs, and when a process keeps more
 * than it has CPUs, every team's workers sleep between kernels and runs take
 * up to twice as long. The next run on the thread starts them again (tens
 * of microseconds). A server calls this when an instance has had no work
 * for a moment; GPU contexts keep nothing per thread. */
INFERD_API void inferd_context_idle(inferd_context *context);

/* Per-step timings of the last run, for profiling. Returns the number of steps
 * and fills up to `capacity` entries. */
typedef struct inferd_profile_entry {
  const char *name;   /* node name, valid for the plan's lifetime */
  const char *kind;   /* e.g. "conv+sum+relu", "reorder" */
  double milliseconds;
  double gflop;       /* floating-point work of the step, 0 when not counted */
} inferd_profile_entry;
INFERD_API void inferd_context_set_profiling(inferd_context *context, bool enabled);
INFERD_API int inferd_context_profile(const inferd_context *context, inferd_profile_entry *entries, int capacity);

/* Library version string, e.g. "0.1.0". */
INFERD_API const char *inferd_version(void);
/* The C API's version: the major number changes when a call, type or
 * constant changes incompatibly (the shared library's SONAME is
 * libinferd.so.<major>), the minor when something is added. A program
 * checks at start that inferd_api_version() gives the major it was built
 * with and a minor no lower than its own. */
#define INFERD_API_VERSION_MAJOR 0
#define INFERD_API_VERSION_MINOR 1
INFERD_API void inferd_api_version(int *major, int *minor);

/* ---- logging ----
 * inferd logs model loads, refusals and failures. By default lines of level
 * INFO and below go to stderr, each with a time prefix. An embedder may
 * lower or raise the level and take the lines itself. Both settings are
 * process-wide; make them before creating servers or plans (they are read
 * without locks). Errors and warnings are rate-limited per place in the
 * code (10 per 10 s, the rest counted in the next line). */
typedef enum inferd_log_level {
  INFERD_LOG_ERROR = 0,
  INFERD_LOG_WARN,
  INFERD_LOG_INFO,
  INFERD_LOG_VERBOSE,
} inferd_log_level;
/* Lines of a level above `level` are dropped (INFERD_LOG_INFO by default). */
INFERD_API void inferd_log_set_level(inferd_log_level level);
/* Called for every line instead of writing it to stderr, on the thread
 * that logs (any of the server's, or the caller's within a call); `message`
 * is the line without its time prefix, valid during the call only. The
 * sink must not call back into inferd. NULL: stderr again. */
typedef void (*inferd_log_fn)(inferd_log_level level, const char *message, void *userp);
INFERD_API void inferd_log_set_sink(inferd_log_fn sink, void *userp);
/* Version, CPU kernels and instruction set, CUDA runtime and GPUs found, one
 * per line. Static storage; the first call probes the devices. */
INFERD_API const char *inferd_build_info(void);

/* ---- server: model repository, scheduling, inference requests -------------
 * The server owns a model repository: it loads models (each version a plan
 * and one execution context per instance), queues requests per model, forms
 * batches, runs them, and keeps statistics. Frontends (HTTP, gRPC) and
 * embedders reach it only through these calls. Metadata, configuration,
 * statistics and the repository index are returned as JSON text in the
 * shapes of the KServe v2 / Triton protocol, so every frontend answers the
 * same way.
 *
 * Threads: every call may be made from any thread. A response callback
 * (and a release callback) runs either on one of the server's threads or
 * on the caller's own, within inferd_server_infer, before it returns (a
 * request the server runs at once, when its model's instance is idle and
 * nothing else waits); so a callback must not block, and must not wait
 * for anything the caller of inferd_server_infer holds.
 */
typedef struct inferd_server inferd_server;
typedef struct inferd_request inferd_request;
typedef struct inferd_response inferd_response;

typedef enum inferd_model_control_mode {
  INFERD_MODEL_CONTROL_NONE = 0, /* load everything at start, never change */
  INFERD_MODEL_CONTROL_POLL,     /* also reload what changes on disk */
  INFERD_MODEL_CONTROL_EXPLICIT, /* load and unload only when asked */
} inferd_model_control_mode;

/* One GPU's memory pool size (Triton's --cuda-memory-pool-byte-size). */
typedef struct inferd_cuda_memory_pool {
  int gpu;
  uint64_t byte_size;
} inferd_cuda_memory_pool;

typedef struct inferd_server_options {
  const char *model_repository; /* folder of <model>/<version>/model.onnx + config.pbtxt */
  inferd_model_control_mode model_control_mode;
  const char *const *startup_models; /* explicit mode: models to load at start ("*" for all) */
  int startup_model_count;
  int repository_poll_secs;  /* poll mode: seconds between scans (default 15) */
  bool strict_model_config;  /* true: config.pbtxt must be complete */
  const char *server_id;     /* reported by server metadata (default "inferd") */
  int threads_per_instance;  /* CPU threads of each model instance; 0 = cores / instances */
  /* Keep sliding-window latency histograms per version, for the metrics'
   * quantile summaries (inferd_metrics). Costs five atomic increments per
   * request; off by default, as Triton's summary_latencies. */
  bool latency_summaries;
  /* Triton's GPU memory settings, kept for the engine's pools: bytes of GPU
   * memory per GPU (--cuda-memory-pool-byte-size=<gpu>:<bytes>; GPUs not
   * listed get Triton's 64 MiB), and bytes of page-locked host memory for
   * staging (--pinned-memory-pool-byte-size; 0 here means no pool, and
   * `inferd serve` passes Triton's 256 MiB unless told otherwise). */
  const inferd_cuda_memory_pool *cuda_memory_pools;
  int cuda_memory_pool_count;
  uint64_t pinned_memory_pool_byte_size;
  /* GPUs below this compute capability are not used (0: Triton's 6.0). */
  double min_compute_capability;
  /* Bound on the bytes of tensors the server holds for requests accepted
   * and not yet answered, over every model and frontend: a request's input
   * tensors (those not in shared memory) and the outputs it will get back
   * whose size is known before the run. A request that would cross it is
   * refused OVERLOADED, one larger than the bound alone TOO_LARGE. 0: no
   * bound (`inferd serve` passes --max-inflight-bytes, whose default is
   * 2 GiB or a quarter of the physical memory, whichever is less). */
  uint64_t max_inflight_bytes;
  /* Triton's --exit-on-error: a startup model that fails to load fails
   * inferd_server_create with its reason (false: it is reported, and the
   * others serve). `inferd serve` sets it, as Triton does, unless
   * --exit-on-error=false. */
  bool exit_on_error;
  /* Triton's --strict-readiness: ready only while no model the server
   * tried to load is unavailable or still loading (false: ready once the
   * startup loads are done, whatever they gave). `inferd serve` sets it
   * unless --strict-readiness=false. */
  bool strict_readiness;
} inferd_server_options;

/* Creates the server and loads the startup models. A model that fails to
 * load is reported (log, repository index) and the others still serve,
 * unless options.exit_on_error; else only an unusable repository path is
 * an error here. */
INFERD_API inferd_error *inferd_server_create(const inferd_server_options *options, inferd_server **server);
/* Stops accepting requests, waits for those in flight (the queued ones run
 * at once, without waiting out their model's batching delay), frees
 * everything. */
INFERD_API void inferd_server_delete(inferd_server *server);

INFERD_API bool inferd_server_is_live(const inferd_server *server);
/* Ready: live, not shutting down, the startup loads done and, with
 * strict_readiness, no model unavailable or loading. */
INFERD_API bool inferd_server_is_ready(const inferd_server *server);
/* Begins a graceful stop: readiness turns false and new requests are
 * refused (OVERLOADED: retry elsewhere); queued and running requests
 * complete. */
INFERD_API void inferd_server_stop_accepting(inferd_server *server);
/* Waits until no request is queued or running, at most timeout_ms; returns
 * the number still pending (0 when drained). */
INFERD_API int inferd_server_drain(inferd_server *server, int timeout_ms);
/* The end of a drain that ran out of time: answers every request still
 * queued, on every model, with OVERLOADED (saying the server is stopping);
 * batches already running are left to finish. Returns how many were
 * answered. */
INFERD_API int inferd_server_cancel_queued(inferd_server *server);

/* JSON answers; *json is malloc'd and the caller frees it. version is a
 * version number, or -1 for the model's latest ready version. */
INFERD_API inferd_error *inferd_server_metadata(inferd_server *server, char **json);
INFERD_API inferd_error *inferd_server_model_ready(inferd_server *server, const char *model, int64_t version,
                                                   bool *ready);
INFERD_API inferd_error *inferd_server_model_metadata(inferd_server *server, const char *model, int64_t version,
                                                      char **json);
INFERD_API inferd_error *inferd_server_model_config(inferd_server *server, const char *model, int64_t version,
                                                    char **json);
/* model NULL: every loaded model. */
INFERD_API inferd_error *inferd_server_model_statistics(inferd_server *server, const char *model, int64_t version,
                                                        char **json);
INFERD_API inferd_error *inferd_server_repository_index(inferd_server *server, bool ready_only, char **json);
/* Loads (or reloads) a model; config_json, when not NULL, replaces its
 * config.pbtxt (Triton's JSON form of the model configuration). Returns when
 * the model is ready or has failed. */
INFERD_API inferd_error *inferd_server_load_model(inferd_server *server, const char *model, const char *config_json);
INFERD_API inferd_error *inferd_server_unload_model(inferd_server *server, const char *model);

/* ---- requests ----
 * A request is built step by step, then handed to inferd_server_infer. From
 * then on the server owns it; it calls the release callback once it no
 * longer reads the input buffers (the caller may free them then), and the
 * response callback exactly once with the response. If inferd_server_infer
 * returns an error, the server took nothing: neither callback is called and
 * the caller still owns the request.
 */
typedef void (*inferd_request_release_fn)(inferd_request *request, void *userp);
/* Owns `response`: delete it with inferd_response_delete (possibly later,
 * from another thread, e.g. once its bytes are sent). flags: a set of
 * INFERD_RESPONSE_*. FINAL marks a request's last response: no callback
 * for it follows. Every model answers once today, so its one response
 * carries FINAL; a caller that checks the flag is ready for models that
 * answer more than once. */
#define INFERD_RESPONSE_FINAL 1u
typedef void (*inferd_response_fn)(inferd_response *response, uint32_t flags, void *userp);

/* model version -1: the latest ready version. */
INFERD_API inferd_error *inferd_request_create(inferd_server *server, const char *model, int64_t version,
                                            inferd_request **request);
INFERD_API void inferd_request_delete(inferd_request *request);
INFERD_API inferd_error *inferd_request_set_id(inferd_request *request, const char *id);
/* 0 is the model's default priority level; 1 the highest. */
INFERD_API inferd_error *inferd_request_set_priority(inferd_request *request, uint64_t priority);
/* 0: the model's default queue timeout. */
INFERD_API inferd_error *inferd_request_set_timeout_us(inferd_request *request, uint64_t timeout_us);
/* Adds an input; data is borrowed until the release callback. The shape
 * includes the batch dimension when the model batches. BYTES tensors use the
 * KServe layout: each element a 4-byte little-endian length then the bytes. */
INFERD_API inferd_error *inferd_request_add_input(inferd_request *request, const char *name,
                                                  inferd_datatype datatype, const int64_t *shape, int rank,
                                                  const void *data, size_t byte_size);
/* Asks for one output (none asked: all outputs). classification_count > 0
 * returns the top-k classes of that output as BYTES "score:index[:label]"
 * instead of the tensor (Triton's classification extension). */
INFERD_API inferd_error *inferd_request_add_requested_output(inferd_request *request, const char *name,
                                                             int classification_count);
/* Adds an input whose bytes are in shared memory: byte_size bytes at
 * `offset` in registered region `region` (see the shared-memory section
 * below). The request holds a reference on the region until it is deleted,
 * so an unregister meanwhile does not unmap it; the bytes are read when the
 * request runs. INVALID_ARG for an unknown region or a span outside it. */
INFERD_API inferd_error *inferd_request_add_input_shm(inferd_request *request, const char *name,
                                                      inferd_datatype datatype, const int64_t *shape, int rank,
                                                      const char *region, uint64_t offset, uint64_t byte_size);
/* Asks for an output to be written into shared memory: at most byte_size
 * bytes at `offset` in region `region` (reference held as above). The
 * response then carries the output's shape and datatype and where its bytes
 * went (inferd_response_output_shm), but no data; an output larger than
 * the span fails the request with INVALID_ARG naming both. */
INFERD_API inferd_error *inferd_request_add_requested_output_shm(inferd_request *request, const char *name,
                                                                 int classification_count, const char *region,
                                                                 uint64_t offset, uint64_t byte_size);
INFERD_API void inferd_request_set_callbacks(inferd_request *request, inferd_request_release_fn release,
                                             void *release_userp, inferd_response_fn respond, void *respond_userp);
/* Checks the request against the model and queues it (or runs it at once).
 * Refusals: NOT_FOUND / UNAVAILABLE for a model that is unknown or not
 * ready, INVALID_ARG for tensors that do not match it, OVERLOADED when the
 * model's queue is full, the server's in-flight bytes would cross their
 * bound (inferd_server_options.max_inflight_bytes) or the server is
 * stopping. */
INFERD_API inferd_error *inferd_server_infer(inferd_server *server, inferd_request *request);
/* Bytes of tensors held for requests accepted and not yet answered, and
 * their bound (0: none). */
INFERD_API uint64_t inferd_server_inflight_bytes(inferd_server *server, uint64_t *limit);
/* Cancellation: `flag` (borrowed; it must outlive the request's response)
 * is read by the server while the request waits in a queue. Once the
 * caller sets it (its client has gone), the request is not run: it is
 * answered CANCELLED when it is next looked at, or at once after
 * inferd_server_cancel_flagged. A request already running completes. */
INFERD_API void inferd_request_set_cancel_flag(inferd_request *request, const atomic_bool *flag);
/* Answers CANCELLED every queued request whose cancel flag is set, without
 * running it; returns how many. */
INFERD_API int inferd_server_cancel_flagged(inferd_server *server);
/* Output buffers from the caller (optional). For each output of the request
 * whose bytes go into the response (not to shared memory), once its size is
 * known, the server calls alloc on the thread that answers the request (a
 * server thread, or the caller's within inferd_server_infer). alloc sets
 * *buffer to at least byte_size bytes of memory of *kind (preset to
 * INFERD_MEMORY_CPU): host or pinned host memory, or memory of GPU
 * *memory_id when the instance answering runs on that GPU; it may set
 * *buffer_userp. The server then writes the output there (a device copy for
 * GPU memory) instead of into a buffer of its own, inferd_response_output
 * gives that buffer, and release (if not NULL) gets it back when the
 * response is deleted. *buffer left NULL: the server allocates as it does
 * without an allocator. An error from alloc (its ownership passes to the
 * server) fails the request with it, naming the output; so does GPU memory
 * the answering instance cannot write. */
typedef inferd_error *(*inferd_output_alloc_fn)(const char *name, size_t byte_size, void *userp, void **buffer,
                                                inferd_memory_kind *kind, int *memory_id, void **buffer_userp);
typedef void (*inferd_output_release_fn)(void *buffer, size_t byte_size, inferd_memory_kind kind, int memory_id,
                                         void *buffer_userp, void *userp);
INFERD_API void inferd_request_set_output_allocator(inferd_request *request, inferd_output_alloc_fn alloc,
                                                    inferd_output_release_fn release, void *userp);
/* Cancels one request. Before inferd_server_infer, that call then refuses
 * it (CANCELLED; the caller still owns it). Once submitted, a request still
 * queued is not run: it is answered CANCELLED by the server's thread when
 * an instance next looks at the queue (at once when one is idle); one
 * already running completes as usual. The request must still exist: the
 * server frees it when its response callback returns, so a caller that
 * cancels from another thread makes this call and its response callback
 * exclusive (one lock held around both); calling it twice is harmless.
 * Error only for a NULL request. */
INFERD_API inferd_error *inferd_request_cancel(inferd_request *request);

/* ---- responses ---- */
/* NULL on success; else the request's error (owned by the response). */
INFERD_API const inferd_error *inferd_response_error(const inferd_response *response);
INFERD_API const char *inferd_response_id(const inferd_response *response);
INFERD_API const char *inferd_response_model(const inferd_response *response);
INFERD_API int64_t inferd_response_model_version(const inferd_response *response);
INFERD_API int inferd_response_output_count(const inferd_response *response);
/* Output i; every pointer stays valid until the response is deleted. */
INFERD_API inferd_error *inferd_response_output(const inferd_response *response, int index, const char **name,
                                                inferd_datatype *datatype, const int64_t **shape, int *rank,
                                                const void **data, size_t *byte_size);
/* Where output `index` was written when it was asked for in shared
 * memory: the region's name (valid until the response is deleted), with
 * the offset and the bytes written; NULL for an output whose bytes are in
 * the response (then data and byte_size of inferd_response_output hold
 * them; for a shared-memory output data is NULL). */
INFERD_API const char *inferd_response_output_shm(const inferd_response *response, int index, uint64_t *offset,
                                                  uint64_t *byte_size);
/* The memory output `index`'s bytes are in: INFERD_MEMORY_CPU, unless the
 * request's output allocator gave other memory (then *memory_id, if not
 * NULL, is its GPU). */
INFERD_API inferd_memory_kind inferd_response_output_memory(const inferd_response *response, int index,
                                                            int *memory_id);
/* Gives the caller-allocated output buffers back (the release function of
 * inferd_request_set_output_allocator) and frees the rest. */
INFERD_API void inferd_response_delete(inferd_response *response);

/* ---- shared memory: Triton's system and CUDA shared-memory extensions ----
 * A client registers a region (a name for a span of a POSIX shared memory
 * object, or of GPU memory it exported with cudaIpcGetMemHandle), then
 * names it in requests for inputs to read and outputs to write, so tensors
 * do not travel through the socket. Names are one namespace over both
 * kinds. At most 256 regions are registered at a time.
 */
typedef enum inferd_shm_kind {
  INFERD_SHM_SYSTEM = 0,
  INFERD_SHM_CUDA,
} inferd_shm_kind;

/* Maps bytes [offset, offset + byte_size) of shared memory object `key`
 * (a shm_open name, e.g. "/input_data") read-write as region `name`.
 * INVALID_ARG for a bad name or key, an object that cannot be opened or a
 * range beyond its size; ALREADY_EXISTS when the name is taken;
 * TOO_LARGE when the table is full. */
INFERD_API inferd_error *inferd_server_shm_register_system(inferd_server *server, const char *name,
                                                           const char *key, uint64_t offset, uint64_t byte_size);
/* Opens a CUDA IPC memory handle (the 64 bytes of a cudaIpcMemHandle_t,
 * copied here) made on GPU device_id, as region `name` of byte_size bytes.
 * UNSUPPORTED when this build has no CUDA or no GPU can be used (the
 * message says which, with CUDA's own words); INVALID_ARG for a bad handle,
 * device or size. Tensors in such a region reach the engine as GPU memory;
 * a model whose backend cannot read GPU memory fails those requests. */
INFERD_API inferd_error *inferd_server_shm_register_cuda(inferd_server *server, const char *name,
                                                         const void *raw_handle, size_t handle_size,
                                                         int64_t device_id, uint64_t byte_size);
/* Unregisters region `name` of `kind`; NULL or "" unregisters every region
 * of that kind. A name not registered is no error. Requests already holding
 * the region keep it mapped until they are done. */
INFERD_API inferd_error *inferd_server_shm_unregister(inferd_server *server, inferd_shm_kind kind, const char *name);
/* Status of `kind`'s regions (name NULL or "": all) as a JSON array of
 * {"name", "key", "offset", "byte_size"} (system) or {"name", "device_id",
 * "byte_size"} (CUDA), the shape of Triton's HTTP answer; *json is malloc'd
 * and the caller frees it. NOT_FOUND for a name not registered. */
INFERD_API inferd_error *inferd_server_shm_status(inferd_server *server, inferd_shm_kind kind, const char *name,
                                                  char **json);

/* The client's half of CUDA shared memory, for a process that hands GPU
 * tensors to a server (`inferd perf --shared-memory cuda` uses it): GPU
 * memory it allocates and exports as a CUDA IPC handle, which it then
 * registers with inferd_server_shm_register_cuda or the register endpoints.
 * These need only the CUDA runtime, not the CUDA backend. */
#define INFERD_CUDA_IPC_HANDLE_SIZE 64
/* Allocates `size` bytes on GPU `device` and writes the allocation's
 * cudaIpcMemHandle_t (INFERD_CUDA_IPC_HANDLE_SIZE bytes) to `handle`.
 * *device_ptr belongs to the caller, who frees it with
 * inferd_cuda_ipc_free once no server uses it (unregister first).
 * UNSUPPORTED when this build has no CUDA or no GPU can be used (the
 * message says which, with CUDA's words), INVALID_ARG for a GPU that does
 * not exist, NO_MEMORY when the GPU lacks the room. */
INFERD_API inferd_error *inferd_cuda_ipc_export(int device, size_t size, void **device_ptr, void *handle);
/* Copies `size` bytes of host memory `src` to `device_ptr` (memory from
 * inferd_cuda_ipc_export), returning when the copy is done. */
INFERD_API inferd_error *inferd_cuda_ipc_upload(void *device_ptr, const void *src, size_t size);
/* Frees memory from inferd_cuda_ipc_export; NULL is ignored. */
INFERD_API void inferd_cuda_ipc_free(void *device_ptr);

/* ---- metrics: Prometheus exposition ----
 * A metrics object renders the server's per-model counters (Triton's
 * nv_inference_* families, labelled model and version; failures also by
 * reason), latency summaries when the server keeps them, and, when asked,
 * GPU figures from NVML and CPU figures from /proc, in the Prometheus text
 * exposition format 0.0.4. GPU and CPU figures are polled by a thread of
 * the metrics object every interval_ms; the per-model counters are read
 * when rendering. A frontend serves the text (inferd serve: GET /metrics on
 * --metrics-port).
 */
typedef struct inferd_metrics inferd_metrics;

typedef struct inferd_metrics_options {
  /* GPU families (nv_gpu_*, nv_energy_consumption). Without NVML
   * (libnvidia-ml.so.1) or a GPU they are absent and creation logs why. */
  bool gpu;
  bool cpu;               /* CPU families (nv_cpu_*) from /proc */
  bool counter_latencies; /* the nv_inference_*_duration_us counters */
  /* Quantiles of the latency summaries as "q:error,...", e.g.
   * "0.5:0.05,0.9:0.01,0.99:0.001" (NULL: that list). The summaries appear
   * only when the server keeps latency windows (latency_summaries). */
  const char *summary_quantiles;
  int interval_ms; /* GPU/CPU polling period; <= 0: 2000 */
} inferd_metrics_options;

/* Makes the metrics of a server, which must outlive it, and starts its
 * polling thread. INVALID_ARG for a malformed quantile list. */
INFERD_API inferd_error *inferd_metrics_create(inferd_server *server, const inferd_metrics_options *options,
                                               inferd_metrics **metrics);
/* Renders every family now. *text is malloc'd, NUL-terminated, *length
 * bytes long; the caller frees it. Safe from any thread. */
INFERD_API inferd_error *inferd_metrics_render(inferd_metrics *metrics, char **text, size_t *length);
/* Stops the polling thread and frees the metrics. */
INFERD_API void inferd_metrics_delete(inferd_metrics *metrics);

#ifdef __cplusplus
}
#endif
#endif /* INFERD_H */
