/*
 * The optimizer: graph-to-graph passes run after import and shape inference,
 * in the order of passes_table. Each can be switched off by name
 * (--no-opt=NAME) so its effect can be measured.
 */
#ifndef INFERD_ENGINE_PASSES_H
#define INFERD_ENGINE_PASSES_H

#include "engine/ir.h"

typedef struct pass_info {
  const char *name;
  const char *summary;
  inferd_error *(*run)(ir_graph *g, int *changes);
} pass_info;

/* NULL-terminated, in run order. */
extern const pass_info passes_table[];

/* Checks a comma-separated list of pass names; error naming an unknown one. */
inferd_error *passes_validate(const char *disabled);
/* Runs every pass not listed in `disabled` (NULL: none disabled). */
inferd_error *passes_run(ir_graph *g, const char *disabled);

/* The individual passes, for tests. */
inferd_error *pass_fold_constants(ir_graph *g, int *changes);
inferd_error *pass_simplify_shapes(ir_graph *g, int *changes);
inferd_error *pass_fold_batchnorm(ir_graph *g, int *changes);
inferd_error *pass_fuse_activation(ir_graph *g, int *changes);
inferd_error *pass_fuse_residual(ir_graph *g, int *changes);
inferd_error *pass_fuse_gemm_bias(ir_graph *g, int *changes);
inferd_error *pass_eliminate_dead(ir_graph *g, int *changes);

#endif
