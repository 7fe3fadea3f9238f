/*
 * The op table: input/output arity, the oldest opset each rule implements,
 * and the rule and reference kernel of each op (one op family per file in
 * this folder). Every op has both, so a missing one is a link error rather
 * than a surprise at load.
 */
#include <string.h>

#include "engine/ops/op_impl.h"

/* name, inputs min..max, outputs min..max, oldest opset. The first `in_lo`
 * inputs are required: ONNX lists optional inputs after the required ones.
 * A variadic op (OP_ROW_VARIADIC) needs every input it is given. Inputs a
 * later opset requires though an older one did not (Reshape's shape, Slice's
 * bounds, Pad's pads) are checked by their rules. */
static const ir_op_info op_table[IR_OP_COUNT_] = {
#define OP_ROW_REQUIRED(op, in_lo, in_hi, out_lo, out_hi, opset, required)                                            \
  [IR_OP_##op] = {.name = #op,                                                                                        \
                  .min_inputs = in_lo,                                                                                \
                  .max_inputs = in_hi,                                                                                \
                  .min_outputs = out_lo,                                                                              \
                  .max_outputs = out_hi,                                                                              \
                  .min_opset = opset,                                                                                 \
                  .required_inputs = required,                                                                        \
                  .infer = op_infer_##op,                                                                             \
                  .ref = op_ref_##op},
#define OP_ROW(op, in_lo, in_hi, out_lo, out_hi, opset) OP_ROW_REQUIRED(op, in_lo, in_hi, out_lo, out_hi, opset, in_lo)
#define OP_ROW_VARIADIC(op, in_lo, in_hi, out_lo, out_hi, opset)                                                      \
  OP_ROW_REQUIRED(op, in_lo, in_hi, out_lo, out_hi, opset, in_hi)
    OP_ROW(Conv, 2, 3, 1, 1, 1)
    OP_ROW(BatchNormalization, 5, 5, 1, 5, 6)
    OP_ROW(Relu, 1, 1, 1, 1, 6)
    OP_ROW(LeakyRelu, 1, 1, 1, 1, 6)
    OP_ROW(Clip, 1, 3, 1, 1, 6)
    OP_ROW(Sigmoid, 1, 1, 1, 1, 6)
    OP_ROW(HardSigmoid, 1, 1, 1, 1, 6)
    OP_ROW(HardSwish, 1, 1, 1, 1, 14)
    OP_ROW(Tanh, 1, 1, 1, 1, 6)
    OP_ROW(Add, 2, 2, 1, 1, 6)
    OP_ROW(Sub, 2, 2, 1, 1, 6)
    OP_ROW(Mul, 2, 2, 1, 1, 6)
    OP_ROW(Div, 2, 2, 1, 1, 6)
    OP_ROW(MaxPool, 1, 1, 1, 2, 1)
    OP_ROW(AveragePool, 1, 1, 1, 1, 1)
    OP_ROW(GlobalAveragePool, 1, 1, 1, 1, 1)
    OP_ROW(GlobalMaxPool, 1, 1, 1, 1, 1)
    OP_ROW(ReduceMean, 1, 2, 1, 1, 1)
    OP_ROW(Gemm, 2, 3, 1, 1, 6)
    OP_ROW(MatMul, 2, 2, 1, 1, 1)
    OP_ROW(Flatten, 1, 1, 1, 1, 1)
    OP_ROW(Reshape, 1, 2, 1, 1, 1)
    OP_ROW(Transpose, 1, 1, 1, 1, 1)
    OP_ROW_VARIADIC(Concat, 1, 1024, 1, 1, 1)
    OP_ROW(Softmax, 1, 1, 1, 1, 1)
    OP_ROW(Pad, 1, 4, 1, 1, 1)
    OP_ROW(Squeeze, 1, 2, 1, 1, 1)
    OP_ROW(Unsqueeze, 1, 2, 1, 1, 1)
    OP_ROW(Identity, 1, 1, 1, 1, 1)
    OP_ROW(Dropout, 1, 3, 1, 2, 6)
    OP_ROW(Cast, 1, 1, 1, 1, 6)
    OP_ROW(Constant, 0, 0, 1, 1, 1)
    OP_ROW(Shape, 1, 1, 1, 1, 1)
    OP_ROW(Gather, 2, 2, 1, 1, 1)
    OP_ROW(Slice, 1, 5, 1, 1, 1)
#undef OP_ROW
#undef OP_ROW_VARIADIC
#undef OP_ROW_REQUIRED
};

const ir_op_info *ir_op_get(ir_op op) {
  if (op <= IR_OP_INVALID || op >= IR_OP_COUNT_) return NULL;
  return &op_table[op];
}

ir_op ir_op_from_name(const char *name) {
  for (int op = IR_OP_INVALID + 1; op < IR_OP_COUNT_; op++)
    if (strcmp(op_table[op].name, name) == 0) return (ir_op)op;
  return IR_OP_INVALID;
}

const char *ir_op_name(ir_op op) {
  const ir_op_info *info = ir_op_get(op);
  return info ? info->name : "?";
}
