/*
 * The oneDNN CPU backend, inside.
 *
 * A plan holds the optimized graph, oneDNN's engine and, per node, the
 * weights reordered into the layouts its primitives chose. For each batch
 * size it is run at, it builds a program once: a list of steps (oneDNN
 * primitives, or reference kernels for the ops oneDNN lacks) over slots.
 *
 * A slot is one tensor in one memory layout. Activations flow between oneDNN
 * primitives in whatever blocked layout the convolutions pick (nChw8c on
 * AVX2); a slot in plain row-major layout is made, with a reorder step, only
 * where a plain-only consumer, a graph output, or a view (Reshape, Flatten...)
 * needs it. Views and the in-place residual sum share their source's buffer,
 * so slots form alias trees whose roots own memory: the caller's input or
 * output buffers, constants, or an offset in the context's arena, placed by
 * the memory planner from the steps' lifetimes.
 *
 * A context binds a program to its own arena and scratchpad: it creates the
 * oneDNN memory objects once per batch size, and a run only rebinds the
 * caller's input and output pointers.
 */
#ifndef INFERD_ENGINE_CPU_CPU_H
#define INFERD_ENGINE_CPU_CPU_H

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>

#include "engine/backend.h"

typedef struct cpu_plan cpu_plan;
typedef struct cpu_context cpu_context;

typedef enum cpu_storage {
  CPU_STORAGE_ARENA = 0,
  CPU_STORAGE_INPUT,  /* graph input ext_index */
  CPU_STORAGE_OUTPUT, /* graph output ext_index; the arena slot when the caller passes NULL */
  CPU_STORAGE_CONST,  /* read-only data owned by the graph or the plan */
} cpu_storage;

typedef struct cpu_slot {
  dnnl_memory_desc_t md;
  size_t size;
  int value;    /* the graph value it holds */
  int alias_of; /* slot whose memory it shares (a view), -1 for a root */
  /* Root slots only: */
  cpu_storage storage;
  int ext_index;
  const void *const_data;
  size_t offset; /* in the arena, for ARENA and OUTPUT */
  int first, last; /* steps that write first and read last */
  int last_node;   /* last node reading any value in this alias tree */
  bool pinned;     /* visible outside (graph input/output/const): never written in place */
} cpu_slot;

typedef enum cpu_step_kind { CPU_STEP_PRIMITIVE = 0, CPU_STEP_REF, CPU_STEP_COPY } cpu_step_kind;

enum { CPU_MAX_ARGS = 24 };

typedef struct cpu_arg {
  int arg;  /* DNNL_ARG_* */
  int slot; /* -1 with `memory` set for plan-owned memory (weights) */
  dnnl_memory_desc_t md;
  dnnl_memory_t memory; /* shared, read-only (weights, bias); NULL for slot args */
} cpu_arg;

typedef struct cpu_step {
  cpu_step_kind kind;
  const char *name;
  const char *what; /* "conv+sum+relu", "reorder", ... for profiles */
  double gflop;
  /* PRIMITIVE */
  dnnl_primitive_t primitive;
  int n_args;
  cpu_arg args[CPU_MAX_ARGS];
  size_t scratch_size;
  dnnl_memory_desc_t scratch_md;
  /* REF: the node, slots of its inputs (-1 omitted) and outputs, and the
   * tensors with dims at this batch; data pointers are filled per run. */
  const ir_node *node;
  int n_in, n_out;
  int *in_slots, *out_slots;
  ir_tensor *in_tensors, *out_tensors;
  /* COPY: bytes from slot in_slots[0] to out_slots[0] */
  size_t copy_bytes;
} cpu_step;

typedef struct cpu_program {
  int batch;
  cpu_slot *slots;
  int n_slots;
  size_t cap_slots;
  cpu_step *steps;
  int n_steps;
  size_t cap_steps;
  int *output_slots; /* per graph output: the slot whose root holds it */
  size_t arena_size;
  size_t scratch_size;
  size_t lower_bound; /* memplan_lower_bound, reported by --verbose */
} cpu_program;

/* Weights of one node in the layout one of its primitives asked for. */
typedef struct cpu_weights {
  struct cpu_weights *next;
  int value; /* the constant it was made from */
  dnnl_memory_desc_t md;
  void *data;
  dnnl_memory_t memory;
  size_t size;
} cpu_weights;

struct cpu_plan {
  const ir_graph *g;
  backend_plan_config config;
  dnnl_engine_t engine;
  pthread_mutex_t lock; /* guards programs and weights */
  cpu_program **programs; /* [max_batch_size + 1], built on first use */
  cpu_weights **weights;  /* per node id */
  int *last_node;         /* per value: last live node reading it (INT_MAX for graph outputs) */
  /* Per value: the plan copied the constant (CPU_CONST_COPIED) and/or a
   * program reads the graph's data at run time (CPU_CONST_READ). Constants
   * only ever copied are handed back to the engine to free. */
  unsigned char *const_use;
};

enum { CPU_CONST_COPIED = 1, CPU_CONST_READ = 2 };

struct cpu_context {
  cpu_plan *plan;
  int threads;
  dnnl_stream_t stream;
  void *arena;
  size_t arena_size;
  void *scratch;
  size_t scratch_size;
  struct cpu_binding **bindings; /* per batch size */
  bool profiling;
  double *step_ms;
  int profiled_batch;
};

/* The CPU and oneDNN in words (cpu_device.c). */
size_t cpu_describe(int ordinal, char *buf, size_t size);
/* Whether oneDNN's INT8 kernels have a u8 x s8 dot product with 32-bit
 * sums here (VNNI or AMX). Without it they add pairs of products in 16
 * bits, which saturate unless the u8 side stays below 128. */
bool cpu_has_int8_dot(void);
/* Whether the CPU has BF16 dot products (AVX-512 BF16 or AMX). Without them
 * oneDNN emulates BF16 convolutions, slower than its FP32 ones. */
bool cpu_has_bf16_dot(void);
/* The instruction set oneDNN uses here, e.g. "AVX-512+AMX". */
const char *cpu_isa_name(void);

/* Building programs (program.c). */
inferd_error *cpu_program_build(cpu_plan *plan, int batch, cpu_program **out);
void cpu_program_free(cpu_program *p);

/* Helpers shared by the op builders. */
typedef struct cpu_builder {
  cpu_plan *plan;
  const ir_graph *g;
  cpu_program *p;
  int batch;
  int node_index;
  int *value_slot;       /* per value: the slot holding it (any layout), -1 none yet */
  int *value_plain_slot; /* per value: a plain-layout slot, -1 none yet */
  int *value_lowp_slot;  /* per value: its INT8-quantized or BF16 slot, -1 none yet */
} cpu_builder;

#define DNNL_TRY(call, what)                                                                            \
  do {                                                                                                  \
    dnnl_status_t dnnl_try_st_ = (call);                                                                \
    if (dnnl_try_st_ != dnnl_success) return cpu_dnnl_error(dnnl_try_st_, what);                       \
  } while (0)

inferd_error *cpu_dnnl_error(dnnl_status_t status, const char *what);
dnnl_data_type_t cpu_dnnl_type(inferd_datatype t);
/* Dense row-major md of `value` at the builder's batch; scalars become [1]. */
void cpu_plain_md(const cpu_builder *b, int value, dnnl_memory_desc_t *md);
void cpu_plain_md_dims(int rank, const int64_t *dims, dnnl_data_type_t type, dnnl_memory_desc_t *md);
bool cpu_md_is_plain(const dnnl_memory_desc_t *md);
int cpu_value_dims(const cpu_builder *b, int value, int64_t *dims);

/* Slots and steps. */
int cpu_slot_new(cpu_builder *b, int value, const dnnl_memory_desc_t *md);
int cpu_slot_view(cpu_builder *b, int source_slot, int value, const dnnl_memory_desc_t *md);
int cpu_slot_root(const cpu_program *p, int slot);
/* The slot of `value` in any layout (constants get a CONST slot). */
inferd_error *cpu_value_slot(cpu_builder *b, int value, int *slot);
/* The slot of `value` in plain layout, adding a reorder when needed. */
inferd_error *cpu_plain_slot(cpu_builder *b, int value, int *slot);
/* The slot of `value` in layout `md`, adding a reorder when needed. */
inferd_error *cpu_slot_in_layout(cpu_builder *b, int value, const dnnl_memory_desc_t *md, int *slot);
cpu_step *cpu_step_new(cpu_builder *b, cpu_step_kind kind, const char *what);
void cpu_step_arg(cpu_step *s, int arg, int slot, const dnnl_memory_desc_t *md);
/* Creates the primitive from pd, records the scratchpad size; takes pd. */
inferd_error *cpu_step_set_primitive(cpu_step *s, dnnl_primitive_desc_t pd);
/* A reorder step from one slot to another (layouts may differ). */
inferd_error *cpu_add_reorder(cpu_builder *b, int from, int to);
/* A reorder step that multiplies by `scale` on the way (f32 to u8/s8
 * rounds to nearest and saturates). */
inferd_error *cpu_add_scaled_reorder(cpu_builder *b, int from, int to, float scale);
/* Marks a slot as used by the newest step (extends its buffer's lifetime). */
void cpu_slot_touch_last(cpu_builder *b, int slot);
/* Pads of a Conv or pool node per spatial dimension (auto_pad resolved). */
void cpu_node_pads(const cpu_builder *b, const ir_node *node, int spatial, const int64_t *kernel,
                   const int64_t *strides, const int64_t *dilations, int64_t *pad_l, int64_t *pad_r);
/* A primitive_attr with user scratchpad and the node's post-ops. The caller
 * destroys it. */
inferd_error *cpu_attr_for_node(const ir_node *node, dnnl_primitive_attr_t *attr);
/* The same with the residual sum's operand multiplied by sum_scale (from a
 * u8 residual back to real values) and the last post-op's result by
 * last_scale (the output scale of an INT8 destination, applied after the
 * activations). */
inferd_error *cpu_attr_for_node_scaled(const ir_node *node, float sum_scale, float last_scale,
                                       dnnl_primitive_attr_t *attr);
/* Makes the primitive descriptor of `desc` with a user scratchpad and the
 * post-ops of `post_ops_of` (NULL: none). False when oneDNN has no
 * implementation for it, so the caller falls back to the reference kernel. */
bool cpu_pd_create(cpu_builder *b, const_dnnl_op_desc_t desc, const ir_node *post_ops_of, dnnl_primitive_desc_t *pd);
/* The implementation oneDNN picked, e.g. "jit:avx2". */
const char *cpu_pd_impl(const_dnnl_primitive_desc_t pd);
/* Weights of `value` (a constant) reordered to `md`, cached per node. */
inferd_error *cpu_weights_get(cpu_builder *b, int value, const dnnl_memory_desc_t *src_md,
                              const dnnl_memory_desc_t *md, dnnl_memory_t *memory);
/* The same for data the caller made (INT8 weights and scaled biases): `key`
 * names it in the node's cache (a value id, or another number the caller
 * keeps apart from the value ids); data in src_md's layout is copied. */
inferd_error *cpu_weights_from(cpu_builder *b, int key, const void *data, const dnnl_memory_desc_t *src_md,
                               const dnnl_memory_desc_t *md, dnnl_memory_t *memory);
/* Step that runs the node's reference kernel over plain slots. */
inferd_error *cpu_build_ref(cpu_builder *b, const ir_node *node);

/* Op builders: each returns NULL after adding its steps, or an error. When
 * oneDNN cannot run the node as configured they fall back to cpu_build_ref. */
inferd_error *cpu_build_conv(cpu_builder *b, const ir_node *node);
inferd_error *cpu_build_pool(cpu_builder *b, const ir_node *node);
inferd_error *cpu_build_eltwise(cpu_builder *b, const ir_node *node);
inferd_error *cpu_build_binary(cpu_builder *b, const ir_node *node);
inferd_error *cpu_build_batchnorm(cpu_builder *b, const ir_node *node);
inferd_error *cpu_build_matmul(cpu_builder *b, const ir_node *node);
inferd_error *cpu_build_view(cpu_builder *b, const ir_node *node);
inferd_error *cpu_build_concat(cpu_builder *b, const ir_node *node);
inferd_error *cpu_build_softmax(cpu_builder *b, const ir_node *node);
inferd_error *cpu_build_reduce(cpu_builder *b, const ir_node *node);
inferd_error *cpu_build_transpose(cpu_builder *b, const ir_node *node);

#endif
