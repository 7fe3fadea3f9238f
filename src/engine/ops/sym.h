/*
 * Known integer contents of small tensors at load time.
 *
 * Some ops take their output shape from another tensor's values (Reshape's
 * target, Slice's bounds, the axes of Squeeze...). A static engine needs those
 * values when the model is loaded. They come either from constant data or
 * from the symbolic contents (ir_value.sym, each element value + coef*N) that
 * shape inference attaches to the small integer tensors exporters compute from
 * Shape. The optimizer uses the same accessor to fold such chains.
 */
#ifndef INFERD_ENGINE_OPS_SYM_H
#define INFERD_ENGINE_OPS_SYM_H

#include <stdbool.h>

#include "engine/ir.h"

/* The contents of integer (or BOOL) value `value` as symbolic integers, when
 * they are known: constant data of any integer dtype (coef 0), or the
 * value's sym. Fails when unknown, not integer, or more than `cap` elements;
 * *n gets the element count on success. */
bool ops_known_ints(const ir_graph *g, int value, ir_symint *out, int cap, int *n);

/* Attaches symbolic contents (copied into the graph's pool) to an integer
 * value of at most IR_SYM_MAX elements; larger ones are left without. */
void ops_set_sym(ir_graph *g, int value, const ir_symint *sym, int n);

/* Gives value `to` the known contents of value `from` (same elements in the
 * same order: Identity, Reshape, Squeeze...), when there are any and `to`
 * is an integer tensor. */
void ops_forward_sym(ir_graph *g, int from, int to);

/* Whether every element is a plain number (no N term). */
bool ops_sym_all_static(const ir_symint *sym, int n);

/* Like ops_known_ints for values that must be plain numbers, reported with
 * errors naming the node: "<what> must be known when the model is loaded"
 * when unknown, and an error when an element depends on the batch size. */
inferd_error *ops_require_ints(const ir_graph *g, const ir_node *node, int input, const char *what, int64_t *out,
                               int cap, int *n);

/* Integer input `i` of a node as plain numbers, in a kernel (`in` given:
 * read from the tensor, which must have at most `cap` elements) or at load
 * (`in` NULL: as ops_require_ints). *count is -1 when the input is omitted. */
inferd_error *ops_read_ints(const ir_graph *g, const ir_node *node, const ir_tensor *in, int i, const char *what,
                            int64_t *out, int cap, int *count);

#endif
