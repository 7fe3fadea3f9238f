/*
 * The operator set the engine understands, one row per ONNX op (default
 * domain). Importers map op names to these ids; an op not in the table is
 * rejected at import with the node's name. Values are only ever appended.
 *
 * Each op has a shape-inference rule and, where one exists, a reference
 * kernel in plain C on dense row-major tensors. The reference kernels run the
 * ops no backend library provides (Gather, Slice, Cast...), fold constants at
 * load time, and are what backend kernels are checked against.
 */
#ifndef INFERD_ENGINE_OPS_H
#define INFERD_ENGINE_OPS_H

#include "inferd.h"

#define IR_OP_LIST(X)                                                                                   \
  X(Conv)                                                                                               \
  X(BatchNormalization)                                                                                 \
  X(Relu)                                                                                               \
  X(LeakyRelu)                                                                                          \
  X(Clip)                                                                                               \
  X(Sigmoid)                                                                                            \
  X(HardSigmoid)                                                                                        \
  X(HardSwish)                                                                                          \
  X(Tanh)                                                                                               \
  X(Add)                                                                                                \
  X(Sub)                                                                                                \
  X(Mul)                                                                                                \
  X(Div)                                                                                                \
  X(MaxPool)                                                                                            \
  X(AveragePool)                                                                                        \
  X(GlobalAveragePool)                                                                                  \
  X(GlobalMaxPool)                                                                                      \
  X(ReduceMean)                                                                                         \
  X(Gemm)                                                                                               \
  X(MatMul)                                                                                             \
  X(Flatten)                                                                                            \
  X(Reshape)                                                                                            \
  X(Transpose)                                                                                          \
  X(Concat)                                                                                             \
  X(Softmax)                                                                                            \
  X(Pad)                                                                                                \
  X(Squeeze)                                                                                            \
  X(Unsqueeze)                                                                                          \
  X(Identity)                                                                                           \
  X(Dropout)                                                                                            \
  X(Cast)                                                                                               \
  X(Constant)                                                                                           \
  X(Shape)                                                                                              \
  X(Gather)                                                                                             \
  X(Slice)

typedef enum ir_op {
  IR_OP_INVALID = 0,
#define IR_OP_ENUM_(name) IR_OP_##name,
  IR_OP_LIST(IR_OP_ENUM_)
#undef IR_OP_ENUM_
      IR_OP_COUNT_
} ir_op;

struct ir_graph;
struct ir_node;
struct ir_tensor;

/* Sets the node's output dtypes and shapes (and symbolic contents for shape
 * tensors) from its inputs; rejects unsupported attributes and inconsistent
 * shapes with an error naming the node. */
typedef inferd_error *(*ir_infer_fn)(struct ir_graph *g, int node);

/* Computes outputs from inputs. Output tensors arrive with dtype, dims and
 * data (allocated by the caller from shape inference). Omitted optional
 * inputs have data NULL. */
typedef inferd_error *(*ir_ref_fn)(const struct ir_graph *g, const struct ir_node *node,
                                   const struct ir_tensor *inputs, struct ir_tensor *outputs);

typedef struct ir_op_info {
  const char *name;
  int min_inputs, max_inputs;
  int min_outputs, max_outputs;
  int min_opset; /* oldest opset whose semantics the rules implement */
  /* Inputs 0 .. required_inputs-1 (of those the node has) must be present:
   * an absent one (the empty name in ONNX) is an error before the rule runs,
   * so rules only ever meet absent optional inputs. */
  int required_inputs;
  ir_infer_fn infer;
  ir_ref_fn ref; /* NULL when there is no reference kernel */
} ir_op_info;

const ir_op_info *ir_op_get(ir_op op);
/* Looks an ONNX op type up; IR_OP_INVALID when unknown. */
ir_op ir_op_from_name(const char *name);
const char *ir_op_name(ir_op op);

#endif
