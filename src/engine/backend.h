/*
 * The backend interface. A backend turns an optimized graph into something it
 * can execute on one kind of device; each backend is one struct of function
 * pointers (designated initializers, optional slots may be NULL with the
 * fallback the slot's comment names) and the engine never looks inside what
 * the backend returns: backend_plan and backend_context are opaque here, and
 * each backend defines its own (cpu_plan, cuda_plan, ...) and converts at its
 * entry points.
 *
 * Lifetimes: the engine keeps the graph alive for as long as the backend plan
 * exists, so a backend may keep pointers into it. A backend context belongs
 * to one plan and runs one inference at a time; several contexts of the same
 * plan may run at once on different threads.
 *
 * Memory: tensors reach execute() in host, pinned host or device memory
 * (inferd_memory_kind), each pointer with its kind. A backend that can
 * allocate pinned or device memory says so with memory_alloc, which the
 * engine offers to callers (the scheduler's staging buffers, shared-memory
 * regions) so a batch is gathered where the device reads it fastest.
 *
 * Asynchrony: execute() may return once the run is queued on the context's
 * stream; wait() blocks until it is done and reports failures the device
 * found meanwhile. A backend whose execute() is synchronous leaves wait NULL.
 */
#ifndef INFERD_ENGINE_BACKEND_H
#define INFERD_ENGINE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/ir.h"
#include "inferd.h"

typedef struct backend_plan backend_plan;
typedef struct backend_context backend_context;

typedef struct backend_plan_config {
  int max_batch_size; /* >= 1; the largest batch execute() is called with */
  int threads;        /* default threads per context, >= 1 */
  inferd_device device;
  inferd_precision precision;  /* never DEFAULT: the engine resolves it */
  const char *tactic_cache;    /* autotuning cache file, or NULL */
  bool build_all_batch_sizes;  /* prepare every batch size at load */
  /* INT8: activation thresholds by value name (the engine keeps it alive
   * for the plan's lifetime); NULL otherwise. */
  const struct calib_cache *calibration;
  const char *int8_keep; /* INT8: layers kept in FP32 (inferd_plan_options.int8_keep) */
} backend_plan_config;

/* The tensors of one run. Kinds may be NULL, meaning all host memory. */
typedef struct backend_io {
  const void *const *inputs;  /* per graph input, dense row-major */
  void *const *outputs;       /* per graph output; NULL when not wanted */
  const inferd_memory_kind *input_kinds;
  const inferd_memory_kind *output_kinds;
} backend_io;

typedef struct inferd_backend_ops {
  const char *name;
  inferd_device_kind device_kind;
  /* Devices of this kind present now. NULL means 1. */
  int (*device_count)(void);
  /* One line about device `ordinal` (GPU name and memory, or the CPU's
   * ISA), snprintf-style. */
  size_t (*describe)(int ordinal, char *buf, size_t size);
  /* Compute capability of device `ordinal`; false when unknown. NULL: the
   * backend's devices have none (inferd_device_compute_capability says
   * false). */
  bool (*compute_capability)(int ordinal, int *major, int *minor);
  /* The memory kinds execute() accepts for inputs and outputs, as a bit set
   * of (1 << inferd_memory_kind). 0 means host only. */
  unsigned memory_kinds;
  /* Whether the backend can execute this node of an optimized graph at the
   * given precision; the engine reports the first node it cannot run.
   * NULL means all. */
  bool (*supports_node)(const ir_graph *g, const ir_node *node, inferd_precision precision);
  /* Prepares weights and whatever is shared by all batch sizes and contexts. */
  inferd_error *(*plan_create)(const ir_graph *g, const backend_plan_config *config, backend_plan **plan);
  void (*plan_delete)(backend_plan *plan);
  /* Whether the plan keeps its own copy of constant `value` and will never
   * read the graph's data again; the engine then frees the graph's copy.
   * NULL means never. */
  bool (*owns_constant)(const backend_plan *plan, int value);
  /* Bytes of weights the plan holds in the backend's own layouts. */
  size_t (*plan_weight_bytes)(const backend_plan *plan);
  /* Pinned or device memory on the plan's device. NULL: the engine uses
   * plain host memory for every kind the backend does not accept. */
  inferd_error *(*memory_alloc)(const backend_plan *plan, inferd_memory_kind kind, size_t size, void **ptr);
  void (*memory_free)(const backend_plan *plan, inferd_memory_kind kind, void *ptr);
  /* Copies between any two kinds, synchronously. NULL: host memory only. */
  inferd_error *(*memory_copy)(const backend_plan *plan, void *dst, const void *src, size_t size);
  /* Allocates everything a run at up to max_batch_size needs. */
  inferd_error *(*context_create)(backend_plan *plan, int threads, backend_context **context);
  void (*context_delete)(backend_context *context);
  size_t (*context_memory_bytes)(const backend_context *context);
  /*
   * Runs the graph at `batch` on io's tensors (already checked against
   * their shapes, types and the memory kinds the backend accepts). May
   * return before the work is done when wait is not NULL.
   */
  inferd_error *(*execute)(backend_context *context, int batch, const backend_io *io);
  /* Queues copies between device and pinned memory on the context's stream
   * (see inferd_context_copy_async), done when wait() returns. NULL: the
   * engine copies synchronously. */
  inferd_error *(*copy_async)(backend_context *context, const inferd_copy *copies, int count);
  /* Blocks until the last execute() and the copies queued since are done.
   * NULL: execute is synchronous. */
  inferd_error *(*wait)(backend_context *context);
  /* The calling thread will not run this context for a while: the backend
   * may let go of what it keeps per thread (the CPU backend's OpenMP
   * workers) and make it again at the next execute. NULL: nothing kept. */
  void (*thread_idle)(backend_context *context);
  /* Optional per-step profiling of the last run (see inferd_context_profile). */
  void (*set_profiling)(backend_context *context, bool enabled);
  int (*profile)(const backend_context *context, inferd_profile_entry *entries, int capacity);
} inferd_backend_ops;

/* Backends compiled into this build, looked up by name; NULL when absent. */
const inferd_backend_ops *backend_find(const char *name);
/* The backend for a kind of device; NULL when none is built in. */
const inferd_backend_ops *backend_for_device(inferd_device_kind kind);
/* Every backend compiled in, NULL-terminated, in the order tests visit them. */
const inferd_backend_ops *const *backend_all(void);

extern const inferd_backend_ops backend_ref_ops; /* reference interpreter (engine/ref) */
extern const inferd_backend_ops backend_cpu_ops; /* oneDNN (engine/cpu) */
#ifdef INFERD_HAVE_CUDA
extern const inferd_backend_ops backend_cuda_ops; /* cuDNN and cuBLASLt (engine/cuda) */
#endif

#endif
