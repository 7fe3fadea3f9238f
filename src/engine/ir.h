/*
 * The graph IR every importer produces and every pass and backend consumes.
 *
 * A graph is two arrays: values (tensors: inputs, constants, activations) and
 * nodes (operators), both addressed by integer id, because passes append to
 * them and pointers would not survive the growth. Node order is a topological
 * order; passes that add nodes keep it so. Deleted nodes are only marked dead,
 * so ids stay stable; ir_graph_compact() squeezes them out when a pass
 * pipeline is done.
 *
 * Names, attribute arrays and node argument lists live in the graph's pool.
 * Constant data lives in blobs the graph owns: heap blocks, or read-only
 * mappings of the model file, so initializers are not copied at import.
 *
 * Dimensions are int64 with one twist for the dynamic batch: a negative
 * dimension -k means k times the batch size N. A model input [N,3,224,224]
 * has dims {-1, 3, 224, 224}; flattening [N,2,5] to one dimension gives {-10}.
 * This lets one optimized graph serve every batch size, and lets shape
 * arithmetic that involves N (the Shape/Gather/Concat chains exporters emit)
 * be folded at load time.
 */
#ifndef INFERD_ENGINE_IR_H
#define INFERD_ENGINE_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/bytes_tensor.h"
#include "base/error.h"
#include "base/mem.h"
#include "engine/ops.h"
#include "inferd.h"

enum { IR_MAX_RANK = INFERD_MAX_RANK };

typedef int64_t ir_dim;
#define IR_DIM_BATCH ((ir_dim)-1)

static inline bool ir_dim_has_batch(ir_dim d) { return d < 0; }
static inline int64_t ir_dim_eval(ir_dim d, int64_t batch) { return d < 0 ? -d * batch : d; }

typedef struct ir_shape {
  int rank;
  ir_dim dims[IR_MAX_RANK];
} ir_shape;

/* Elements at batch size `batch`. */
int64_t ir_shape_numel(const ir_shape *shape, int64_t batch);
/* True when no dimension depends on the batch. */
bool ir_shape_is_static(const ir_shape *shape);
bool ir_shape_equal(const ir_shape *a, const ir_shape *b);
/* "[N,3,224,224]"-style text into buf; returns buf. */
const char *ir_shape_str(const ir_shape *shape, char *buf, size_t size);

/*
 * A symbolic integer coef*N + value. Small integer tensors that describe
 * shapes (the outputs of Shape, Gather on them, Concat...) carry one per
 * element during shape inference, so Reshape targets computed from the input
 * shape are known even though N is not.
 */
typedef struct ir_symint {
  int64_t value;
  int64_t coef;
} ir_symint;

enum { IR_SYM_MAX = 64 };

typedef enum ir_value_kind {
  IR_VALUE_ACTIVATION = 0, /* produced by a node */
  IR_VALUE_INPUT,          /* fed by the caller */
  IR_VALUE_CONST,          /* initializer or folded constant */
} ir_value_kind;

typedef struct ir_value {
  const char *name;
  ir_value_kind kind;
  inferd_datatype dtype;
  bool has_shape; /* set by import (declared) or shape inference */
  ir_shape shape;
  /* IR_VALUE_CONST: the data, dense row-major, owned by a graph blob. An
   * input with a default value has it here, shaped default_shape, between
   * import and the plan taking it (see onnx_import_file_with_defaults). */
  const void *data;
  size_t nbytes;
  ir_shape default_shape;
  /* Symbolic contents of a small integer tensor, or NULL. sym_len elements. */
  ir_symint *sym;
  int sym_len;
  int producer;  /* node id, -1 for inputs and constants */
  int use_count; /* node inputs plus graph outputs referring to it */
  bool is_output;
} ir_value;

/* ONNX AttributeProto.AttributeType numbers. */
typedef enum ir_attr_type {
  IR_ATTR_UNDEFINED = 0,
  IR_ATTR_FLOAT = 1,
  IR_ATTR_INT = 2,
  IR_ATTR_STRING = 3,
  IR_ATTR_TENSOR = 4,
  IR_ATTR_GRAPH = 5,
  IR_ATTR_FLOATS = 6,
  IR_ATTR_INTS = 7,
  IR_ATTR_STRINGS = 8,
} ir_attr_type;

typedef struct ir_attr {
  const char *name;
  ir_attr_type type;
  int64_t i;
  float f;
  const char *s; /* STRING: s_len bytes, NUL-terminated too */
  size_t s_len;
  int n; /* FLOATS/INTS/STRINGS count */
  const int64_t *ints;
  const float *floats;
  const char **strings;
  int tensor; /* TENSOR: id of a constant value holding it */
} ir_attr;

/*
 * Operations fused into a node by the optimizer, applied in order to its
 * result: an activation, or the addition of another tensor (the residual
 * connection), which the node's input `sum_input` names.
 */
typedef enum ir_post_kind { IR_POST_ELTWISE = 1, IR_POST_SUM } ir_post_kind;

typedef enum ir_eltwise_alg {
  IR_ELTWISE_RELU = 1,
  IR_ELTWISE_LEAKY_RELU, /* alpha = slope */
  IR_ELTWISE_CLIP,       /* alpha = min, beta = max */
  IR_ELTWISE_SIGMOID,
  IR_ELTWISE_HARD_SIGMOID, /* alpha*x+beta clipped to [0,1] */
  IR_ELTWISE_HARD_SWISH,
  IR_ELTWISE_TANH,
} ir_eltwise_alg;

typedef struct ir_post_op {
  ir_post_kind kind;
  ir_eltwise_alg alg;
  float alpha, beta;
} ir_post_op;

enum { IR_MAX_POST_OPS = 4 };

typedef struct ir_node {
  ir_op op;
  const char *name;
  const char *domain;
  int n_inputs;
  int *inputs; /* value ids; -1 for an omitted optional input */
  int n_outputs;
  int *outputs;
  int n_attrs;
  ir_attr *attrs;
  int n_post_ops;
  ir_post_op post_ops[IR_MAX_POST_OPS];
  int sum_input; /* index into inputs of the IR_POST_SUM operand, or -1 */
  bool dead;
} ir_node;

typedef struct ir_blob ir_blob;

typedef struct ir_graph {
  mem_pool *pool;
  const char *name;
  int64_t opset; /* opset of the default ONNX domain */
  ir_value *values;
  int n_values;
  size_t cap_values;
  ir_node *nodes;
  int n_nodes;
  size_t cap_nodes;
  int *inputs; /* graph input value ids, in order */
  int n_inputs;
  size_t cap_inputs;
  int *outputs; /* graph output value ids, in order */
  int n_outputs;
  size_t cap_outputs;
  ir_blob *blobs;
  /* name -> value id, open addressing */
  int *name_index;
  size_t name_index_cap;
  int unique_counter;
} ir_graph;

ir_graph *ir_graph_new(void);
void ir_graph_delete(ir_graph *g);

/* Adds a value named `name` (copied; NULL or "" makes a unique name).
 * Returns its id. Names must be unique: ir_graph_find_value first. */
int ir_graph_add_value(ir_graph *g, const char *name, inferd_datatype dtype);
int ir_graph_find_value(const ir_graph *g, const char *name);
/* Swaps the names of two values (a folded constant taking over the name of
 * the graph output it replaces). */
void ir_graph_swap_value_names(ir_graph *g, int a, int b);

/* Hands a malloc'd block to the graph; freed with it. */
void ir_graph_own_heap(ir_graph *g, void *block);
/* Hands a mapping (from mmap) to the graph; unmapped with it. */
void ir_graph_own_mapping(ir_graph *g, void *addr, size_t length);
/* Gives back the memory of constant `value`'s data: a heap block is freed,
 * pages of the file mapping it alone covers are dropped. data becomes NULL;
 * dtype, shape and nbytes stay. For constants a backend has copied. */
void ir_graph_release_const(ir_graph *g, int value);
/* Releases every constant no live node or graph output uses any more (the
 * originals of folded weights). */
void ir_graph_release_unused_consts(ir_graph *g);
/* Bytes of constant data the graph owns on the heap (mappings not counted). */
size_t ir_graph_heap_bytes(const ir_graph *g);

/* Makes `value` a constant with borrowed data (owned by a graph blob). */
void ir_value_set_const(ir_graph *g, int value, inferd_datatype dtype, const ir_shape *shape, const void *data,
                        size_t nbytes);
/* Adds a constant whose data is copied into a new graph-owned block. */
inferd_error *ir_graph_add_const_copy(ir_graph *g, const char *name, inferd_datatype dtype, const ir_shape *shape,
                                      const void *data, int *value_id);
/* Adds a constant with a new zeroed graph-owned block; *data points to it. */
inferd_error *ir_graph_add_const_alloc(ir_graph *g, const char *name, inferd_datatype dtype, const ir_shape *shape,
                                       void **data, int *value_id);

void ir_graph_add_input(ir_graph *g, int value);
void ir_graph_add_output(ir_graph *g, int value);

/* Adds a node; inputs/outputs are copied. Returns its id. Sets the outputs'
 * producer. */
int ir_graph_add_node(ir_graph *g, ir_op op, const char *name, int n_inputs, const int *inputs, int n_outputs,
                      const int *outputs);
/* Appends an attribute to node `node` and returns it for filling (name copied). */
ir_attr *ir_node_add_attr(ir_graph *g, int node, const char *name, ir_attr_type type);
/* Replaces the node's inputs with a copy of `inputs`. */
void ir_node_set_inputs(ir_graph *g, int node, int n_inputs, const int *inputs);

const ir_attr *ir_node_attr(const ir_node *node, const char *name);
int64_t ir_node_attr_int(const ir_node *node, const char *name, int64_t fallback);
float ir_node_attr_float(const ir_node *node, const char *name, float fallback);
const char *ir_node_attr_string(const ir_node *node, const char *name, const char *fallback);
/* INTS attribute: count into *n, or -1 when absent (returns NULL then). */
const int64_t *ir_node_attr_ints(const ir_node *node, const char *name, int *n);

/* Input i's value id, or -1 when i is past the end or omitted. */
static inline int ir_node_input(const ir_node *node, int i) { return i < node->n_inputs ? node->inputs[i] : -1; }

/* An error naming the node: "node 'conv1' (Conv): <message>". */
inferd_error *ir_node_error(const ir_graph *g, const ir_node *node, inferd_error_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Recomputes producer, use_count and is_output from the live nodes. */
void ir_graph_update_uses(ir_graph *g);
/* Rewrites every use of value `from` (node inputs, graph outputs) to `to`. */
void ir_graph_replace_uses(ir_graph *g, int from, int to);
/* Drops dead nodes (renumbering node ids) and unused values are kept (ids stay). */
void ir_graph_compact(ir_graph *g);
/* Live node count. */
int ir_graph_live_nodes(const ir_graph *g);

/* Consumers of each value, as CSR arrays, for passes. */
typedef struct ir_uses {
  int *start; /* n_values+1 offsets into node */
  int *node;  /* consuming node ids (a node appears once per input slot) */
} ir_uses;
void ir_uses_build(const ir_graph *g, ir_uses *uses);
void ir_uses_free(ir_uses *uses);


/* A concrete dense tensor, for reference kernels and constant folding. */
typedef struct ir_tensor {
  inferd_datatype dtype;
  int rank;
  int64_t dims[IR_MAX_RANK];
  void *data;
} ir_tensor;

int64_t ir_tensor_numel(const ir_tensor *t);

/* A BYTES element inside the engine: a view of bytes that live in the run's
 * input (the plan layer turns the serialized form into views on the way in
 * and back on the way out). Data-movement ops copy views like any other
 * fixed-size element. */
typedef bytes_view ir_bytes;

/* Bytes of one element as the engine stores it: the type's size, and
 * sizeof(ir_bytes) for BYTES; 0 for INVALID. */
size_t ir_dtype_size(inferd_datatype t);

/* Shape inference over the whole graph (see ops.h for the per-op rules).
 * Fills dtype, shape and sym of every activation. */
inferd_error *ir_infer_shapes(ir_graph *g);
/* Shape inference of one node. */
inferd_error *ir_infer_node(ir_graph *g, int node);

#endif
