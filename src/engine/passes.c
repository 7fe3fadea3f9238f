/* The pass pipeline and its switches. */
#include <string.h>

#include "base/log.h"
#include "engine/passes.h"

const pass_info passes_table[] = {
    {"simplify-shapes", "turn shape arithmetic known at load (Shape/Gather/Concat chains) into constants; drop Identity",
     pass_simplify_shapes},
    {"fold-constants", "compute nodes whose inputs are all constants once, at load", pass_fold_constants},
    {"fold-batchnorm", "fold BatchNormalization into the preceding Conv's weights and bias", pass_fold_batchnorm},
    {"fuse-gemm-bias", "MatMul/Gemm followed by a constant Add becomes one Gemm with bias", pass_fuse_gemm_bias},
    {"fuse-activation", "apply Relu/Clip/Sigmoid/HardSwish/... inside the Conv/Gemm that produces their input",
     pass_fuse_activation},
    {"fuse-residual", "apply a residual Add (and the activation after it) inside the Conv producing one operand",
     pass_fuse_residual},
    {"dead-nodes", "remove nodes whose results nobody uses", pass_eliminate_dead},
    {NULL, NULL, NULL},
};

static bool list_contains(const char *list, const char *name) {
  if (!list) return false;
  size_t len = strlen(name);
  for (const char *s = list; *s;) {
    const char *comma = strchr(s, ',');
    size_t n = comma ? (size_t)(comma - s) : strlen(s);
    if ((n == len && strncmp(s, name, n) == 0) || (n == 3 && strncmp(s, "all", 3) == 0)) return true;
    s += n + (comma ? 1 : 0);
  }
  return false;
}

inferd_error *passes_validate(const char *disabled) {
  if (!disabled) return NULL;
  for (const char *s = disabled; *s;) {
    const char *comma = strchr(s, ',');
    size_t n = comma ? (size_t)(comma - s) : strlen(s);
    bool known = n == 0 || (n == 3 && strncmp(s, "all", 3) == 0);
    for (const pass_info *p = passes_table; p->name && !known; p++)
      known = strlen(p->name) == n && strncmp(p->name, s, n) == 0;
    if (!known) {
      char names[512] = "";
      for (const pass_info *p = passes_table; p->name; p++) {
        strncat(names, p->name, sizeof(names) - strlen(names) - 2);
        if (p[1].name) strncat(names, ", ", sizeof(names) - strlen(names) - 1);
      }
      return err_new(INFERD_ERROR_INVALID_ARG, "unknown optimization pass '%.*s' (passes: %s, or all)", (int)n, s,
                     names);
    }
    s += n + (comma ? 1 : 0);
  }
  return NULL;
}

inferd_error *passes_run(ir_graph *g, const char *disabled) {
  ERR_TRY(passes_validate(disabled));
  ir_graph_update_uses(g);
  /* Dead nodes go first too, so folding does not compute unused results. */
  if (!list_contains(disabled, "dead-nodes")) {
    int changes = 0;
    ERR_TRY(pass_eliminate_dead(g, &changes));
  }
  for (const pass_info *p = passes_table; p->name; p++) {
    if (list_contains(disabled, p->name)) {
      log_verbose("optimizer: pass %s disabled", p->name);
      continue;
    }
    int changes = 0;
    ERR_TRY(p->run(g, &changes));
    ir_graph_update_uses(g);
    log_verbose("optimizer: pass %s made %d changes, %d nodes left", p->name, changes, ir_graph_live_nodes(g));
  }
  ir_graph_compact(g);
  return NULL;
}

/* A node is dead when none of its outputs is used. Walking backwards lets a
 * whole chain die in one sweep. */
inferd_error *pass_eliminate_dead(ir_graph *g, int *changes) {
  ir_graph_update_uses(g);
  for (int i = g->n_nodes - 1; i >= 0; i--) {
    ir_node *n = &g->nodes[i];
    if (n->dead) continue;
    bool used = false;
    for (int k = 0; k < n->n_outputs; k++)
      if (n->outputs[k] >= 0 && g->values[n->outputs[k]].use_count > 0) used = true;
    if (used) continue;
    n->dead = true;
    (*changes)++;
    for (int k = 0; k < n->n_inputs; k++)
      if (n->inputs[k] >= 0) g->values[n->inputs[k]].use_count--;
  }
  return NULL;
}
