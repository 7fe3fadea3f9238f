/*
 * The backend interface. A backend turns an optimized graph into something it
 * can execute; each backend is one struct of function pointers (designated
 * initializers, optional slots may be NULL) and the engine never looks inside
 * what the backend returns.
 *
 * Lifetimes: the engine keeps the graph alive for as long as the backend plan
 * exists, so a backend may keep pointers into it. A backend context belongs
 * to one plan and runs one inference at a time; several contexts of the same
 * plan may run at once on different threads.
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
} backend_plan_config;

typedef struct inferd_backend_ops {
  const char *name;
  /* Whether the backend can execute this node of an optimized graph; the
   * engine reports the first node it cannot run. NULL means all. */
  bool (*supports_node)(const ir_graph *g, const ir_node *node);
  /* Prepares weights and whatever is shared by all batch sizes and contexts. */
  inferd_error *(*plan_create)(const ir_graph *g, const backend_plan_config *config, backend_plan **plan);
  void (*plan_delete)(backend_plan *plan);
  /* Whether the plan keeps its own copy of constant `value` and will never
   * read the graph's data again; the engine then frees the graph's copy.
   * NULL means never. */
  bool (*owns_constant)(const backend_plan *plan, int value);
  /* Bytes of weights the plan holds in the backend's own layouts. */
  size_t (*plan_weight_bytes)(const backend_plan *plan);
  /* Allocates everything a run at up to max_batch_size needs. */
  inferd_error *(*context_create)(backend_plan *plan, int threads, backend_context **context);
  void (*context_delete)(backend_context *context);
  size_t (*context_memory_bytes)(const backend_context *context);
  /*
   * Runs the graph at `batch`. inputs[i] is the dense row-major data of graph
   * input i (already checked against its shape and type); outputs[j] is where
   * graph output j goes, or NULL when the caller does not want it.
   */
  inferd_error *(*execute)(backend_context *context, int batch, const void *const *inputs, void *const *outputs);
  /* Optional per-step profiling of the last run (see inferd_context_profile). */
  void (*set_profiling)(backend_context *context, bool enabled);
  int (*profile)(const backend_context *context, inferd_profile_entry *entries, int capacity);
} inferd_backend_ops;

/* Backends compiled into this build, looked up by name; NULL when absent. */
const inferd_backend_ops *backend_find(const char *name);

extern const inferd_backend_ops backend_ref_ops; /* reference interpreter (engine/ref) */
extern const inferd_backend_ops backend_cpu_ops; /* oneDNN (engine/cpu) */


#endif
