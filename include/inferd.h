/*
 * inferd public C API.
 *
 * Every handle is opaque. Every call that can fail returns an inferd_error
 * pointer: NULL means success, anything else is owned by the caller and must be
 * released with inferd_error_delete(). Each function's comment says who owns
 * what it returns and for how long.
 *
 * This first part is the engine: load an ONNX model into a compiled plan, make
 * execution contexts from it, and run inferences. The server API (requests,
 * responses, allocators) builds on it.
 */
#ifndef INFERD_H
#define INFERD_H

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
  X(TIMEOUT, "deadline exceeded", 504, 4)

typedef enum inferd_error_code {
#define INFERD_ERROR_ENUM_(name, text, http, grpc) INFERD_ERROR_##name,
  INFERD_ERROR_MAP(INFERD_ERROR_ENUM_)
#undef INFERD_ERROR_ENUM_
      INFERD_ERROR_CODE_COUNT_
} inferd_error_code;

typedef struct inferd_error inferd_error;

/* Makes a new error; the message is copied. */
INFERD_API inferd_error *inferd_error_new(inferd_error_code code, const char *message);
INFERD_API inferd_error_code inferd_error_code_of(const inferd_error *error);
/* The message, valid until the error is deleted. */
INFERD_API const char *inferd_error_message(const inferd_error *error);
/* Short name of a code, e.g. "INVALID_ARG". Static storage. */
INFERD_API const char *inferd_error_code_name(inferd_error_code code);
INFERD_API int inferd_error_code_http_status(inferd_error_code code);
INFERD_API int inferd_error_code_grpc_status(inferd_error_code code);
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
/* Bytes of weights the plan holds after optimization. */
INFERD_API size_t inferd_plan_weight_bytes(const inferd_plan *plan);

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
 * bytes, and the run fills dims and rank. */
typedef struct inferd_tensor {
  const char *name;
  inferd_datatype datatype;
  int rank;
  int64_t dims[INFERD_MAX_RANK];
  void *data;
  size_t byte_size;
} inferd_tensor;

/* Runs one inference of `batch` items (1 when the model has no batch
 * dimension). Inputs are matched by name and checked against the model;
 * outputs[i].name selects which outputs to produce. */
INFERD_API inferd_error *inferd_context_run(inferd_context *context, int batch, const inferd_tensor *inputs,
                                           int input_count, inferd_tensor *outputs, int output_count);

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
/* Version, CPU kernels and instruction set, CUDA runtime and GPUs found, one
 * per line. Static storage; the first call probes the devices. */
INFERD_API const char *inferd_build_info(void);

#ifdef __cplusplus
}
#endif
#endif /* INFERD_H */
