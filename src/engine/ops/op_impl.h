/*
 * Declarations of the per-op shape-inference rules and reference kernels,
 * one op family per file in this folder, collected by registry.c.
 */
#ifndef INFERD_ENGINE_OPS_OP_IMPL_H
#define INFERD_ENGINE_OPS_OP_IMPL_H

#include "engine/ir.h"

#define OP_DECLARE_INFER(name) inferd_error *op_infer_##name(ir_graph *g, int node);
#define OP_DECLARE_REF(name)                                                                            \
  inferd_error *op_ref_##name(const ir_graph *g, const ir_node *node, const ir_tensor *in, ir_tensor *out);
IR_OP_LIST(OP_DECLARE_INFER)
IR_OP_LIST(OP_DECLARE_REF)
#undef OP_DECLARE_INFER
#undef OP_DECLARE_REF

#endif
