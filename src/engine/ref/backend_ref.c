/*
 * The reference backend: an interpreter that runs each live node's reference
 * kernel (engine/ops) in graph order on dense row-major buffers. It is the
 * ground truth other backends are checked against, so it favours being
 * obviously right over being fast; it is also what runs models whose ops no
 * library backend supports.
 *
 * Memory is planned once per plan for max_batch_size: every activation gets
 * a slot, and a slot is reused by a later activation once every consumer of
 * the earlier one has run (graph outputs are kept to the end). A context
 * allocates the slots, so execute() never allocates. Activations a fused
 * node reads (its IR_POST_SUM operand) are ordinary inputs and so stay live.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "engine/backend.h"
#include "engine/ops/op_util.h"

typedef struct ref_plan {
  const ir_graph *g;
  int max_batch;
  int n_steps;
  int *steps;      /* live node ids, in order */
  int *value_slot; /* per value: slot of an activation, -1 otherwise */
  int n_slots;
  size_t *slot_bytes;
  int max_args; /* most inputs or outputs of one node */
} ref_plan;

typedef struct ref_context {
  ref_plan *plan;
  void **slots;
  size_t bytes;
  const void **data; /* per value, this run */
  ir_tensor *in, *out;
  bool profiling;
  double *step_ms;
} ref_context;

/* Bytes of value v at `batch`; false on overflow or a type with no size. */
static bool value_bytes(const ir_value *v, int64_t batch, size_t *bytes) {
  size_t n = ir_dtype_size(v->dtype);
  if (!n) return false;
  for (int d = 0; d < v->shape.rank; d++) {
    int64_t extent = ir_dim_eval(v->shape.dims[d], batch);
    if (extent < 0 || !mem_mul_ok(n, (size_t)extent, &n)) return false;
  }
  *bytes = n;
  return true;
}

static void ref_plan_delete(ref_plan *p) {
  if (!p) return;
  free(p->steps);
  free(p->value_slot);
  free(p->slot_bytes);
  free(p);
}

/* Checks that every node can run here and every value it reads will have
 * data: constants their bytes, activations an earlier producer. */
static inferd_error *check_graph(const ir_graph *g, const bool *produced_before, int node) {
  const ir_node *n = &g->nodes[node];
  const ir_op_info *info = ir_op_get(n->op);
  if (!info || !info->ref) return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "has no reference kernel");
  for (int k = 0; k < n->n_inputs; k++) {
    int v = n->inputs[k];
    if (v < 0) continue;
    const ir_value *val = &g->values[v];
    if (val->kind == IR_VALUE_CONST && !val->data && val->nbytes)
      return ir_node_error(g, n, INFERD_ERROR_INTERNAL, "constant '%s' has no data", val->name);
    if (val->kind == IR_VALUE_ACTIVATION && !produced_before[v])
      return ir_node_error(g, n, INFERD_ERROR_INTERNAL, "input '%s' is not produced before it is used", val->name);
  }
  for (int i = 0; i < n->n_post_ops; i++) {
    const ir_post_op *po = &n->post_ops[i];
    if (n->n_outputs < 1 || g->values[n->outputs[0]].dtype != INFERD_TYPE_FP32)
      return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "fused operations need an FP32 result");
    if (po->kind == IR_POST_SUM && (n->sum_input < 0 || n->sum_input >= n->n_inputs || n->inputs[n->sum_input] < 0))
      return ir_node_error(g, n, INFERD_ERROR_INTERNAL, "fused sum without its operand");
  }
  return NULL;
}

/* Assigns slots: best fit among free slots, growing the largest free one
 * when none fits, a new slot when none is free. */
static int take_slot(ref_plan *p, bool *slot_free, size_t need, size_t *cap_slots) {
  int best = -1, largest = -1;
  for (int s = 0; s < p->n_slots; s++) {
    if (!slot_free[s]) continue;
    if (p->slot_bytes[s] >= need && (best < 0 || p->slot_bytes[s] < p->slot_bytes[best])) best = s;
    if (largest < 0 || p->slot_bytes[s] > p->slot_bytes[largest]) largest = s;
  }
  if (best < 0 && largest >= 0) {
    best = largest;
    p->slot_bytes[best] = need;
  }
  if (best < 0) {
    MEM_GROW(p->slot_bytes, *cap_slots, (size_t)p->n_slots + 1);
    best = p->n_slots++;
    p->slot_bytes[best] = need;
  }
  slot_free[best] = false;
  return best;
}

static inferd_error *plan_memory(ref_plan *p) {
  const ir_graph *g = p->g;
  int *last_use = mem_alloc(((size_t)g->n_values + 1) * sizeof(int));
  bool *produced = mem_zalloc((size_t)g->n_values + 1);
  for (int v = 0; v < g->n_values; v++) {
    last_use[v] = -1;
    p->value_slot[v] = -1;
  }
  for (int s = 0; s < p->n_steps; s++) {
    const ir_node *n = &g->nodes[p->steps[s]];
    for (int k = 0; k < n->n_inputs; k++)
      if (n->inputs[k] >= 0) last_use[n->inputs[k]] = s;
  }
  for (int i = 0; i < g->n_outputs; i++) last_use[g->outputs[i]] = p->n_steps;
  bool *slot_free = NULL;
  size_t cap_slots = 0, cap_free = 0;
  inferd_error *err = NULL;
  for (int s = 0; s < p->n_steps && !err; s++) {
    int node = p->steps[s];
    const ir_node *n = &g->nodes[node];
    if ((err = check_graph(g, produced, node))) break;
    if (n->n_inputs > p->max_args) p->max_args = n->n_inputs;
    if (n->n_outputs > p->max_args) p->max_args = n->n_outputs;
    for (int k = 0; k < n->n_outputs; k++) {
      int v = n->outputs[k];
      if (v < 0) continue;
      size_t need;
      if (!value_bytes(&g->values[v], p->max_batch, &need)) {
        err = ir_node_error(g, n, INFERD_ERROR_TOO_LARGE, "output '%s' has no size or is too large", g->values[v].name);
        break;
      }
      MEM_GROW(slot_free, cap_free, (size_t)p->n_slots + 1);
      p->value_slot[v] = take_slot(p, slot_free, need, &cap_slots);
      produced[v] = true;
    }
    /* Release what this step read for the last time, and outputs nobody
     * reads (their slot was only scratch for the kernel). */
    for (int k = 0; k < n->n_inputs + n->n_outputs; k++) {
      int v = k < n->n_inputs ? n->inputs[k] : n->outputs[k - n->n_inputs];
      if (v >= 0 && p->value_slot[v] >= 0 && last_use[v] <= s) slot_free[p->value_slot[v]] = true;
    }
  }
  for (int i = 0; i < g->n_outputs && !err; i++) {
    const ir_value *v = &g->values[g->outputs[i]];
    if (v->kind == IR_VALUE_ACTIVATION && !produced[g->outputs[i]])
      err = err_new(INFERD_ERROR_INTERNAL, "graph output '%s' is not produced by any node", v->name);
  }
  free(slot_free);
  free(produced);
  free(last_use);
  return err;
}

static inferd_error *ref_plan_create(const ir_graph *g, const backend_plan_config *config, ref_plan **out) {
  *out = NULL;
  ref_plan *p = mem_zalloc(sizeof(*p));
  p->g = g;
  p->max_batch = config->max_batch_size > 0 ? config->max_batch_size : 1;
  p->steps = mem_alloc(((size_t)g->n_nodes + 1) * sizeof(int));
  for (int i = 0; i < g->n_nodes; i++)
    if (!g->nodes[i].dead) p->steps[p->n_steps++] = i;
  p->value_slot = mem_alloc(((size_t)g->n_values + 1) * sizeof(int));
  p->max_args = 1;
  inferd_error *err = plan_memory(p);
  if (err) {
    ref_plan_delete(p);
    return err;
  }
  *out = p;
  return NULL;
}

static size_t ref_plan_weight_bytes(const ref_plan *p) { return ir_graph_heap_bytes(p->g); }

static void ref_context_delete(ref_context *c) {
  if (!c) return;
  if (c->slots)
    for (int s = 0; s < c->plan->n_slots; s++) free(c->slots[s]);
  free(c->slots);
  free(c->data);
  free(c->in);
  free(c->out);
  free(c->step_ms);
  free(c);
}

static inferd_error *ref_context_create(ref_plan *p, int threads, ref_context **out) {
  (void)threads; /* the interpreter runs on the caller's thread */
  *out = NULL;
  ref_context *c = mem_zalloc(sizeof(*c));
  c->plan = p;
  c->slots = mem_zalloc(((size_t)p->n_slots + 1) * sizeof(void *));
  c->data = mem_zalloc(((size_t)p->g->n_values + 1) * sizeof(void *));
  c->in = mem_zalloc((size_t)p->max_args * sizeof(ir_tensor));
  c->out = mem_zalloc((size_t)p->max_args * sizeof(ir_tensor));
  c->step_ms = mem_zalloc(((size_t)p->n_steps + 1) * sizeof(double));
  for (int s = 0; s < p->n_slots; s++) {
    c->slots[s] = mem_try_aligned(p->slot_bytes[s]);
    if (!c->slots[s]) {
      ref_context_delete(c);
      return err_new(INFERD_ERROR_NO_MEMORY, "allocating %zu bytes of activations", p->slot_bytes[s]);
    }
    c->bytes += p->slot_bytes[s];
  }
  for (int v = 0; v < p->g->n_values; v++)
    if (p->value_slot[v] >= 0) c->data[v] = c->slots[p->value_slot[v]];
  *out = c;
  return NULL;
}

static size_t ref_context_memory_bytes(const ref_context *c) { return c->bytes; }

static void tensor_of(const ir_graph *g, const ref_context *c, int v, int64_t batch, ir_tensor *t) {
  *t = (ir_tensor){0};
  if (v < 0) return;
  const ir_value *val = &g->values[v];
  t->dtype = val->dtype;
  t->rank = val->shape.rank;
  for (int d = 0; d < t->rank; d++) t->dims[d] = ir_dim_eval(val->shape.dims[d], batch);
  t->data = (void *)c->data[v];
}

static inferd_error *ref_execute(ref_context *c, int batch, const void *const *inputs, void *const *outputs) {
  const ref_plan *p = c->plan;
  const ir_graph *g = p->g;
  if (batch < 1 || batch > p->max_batch)
    return err_new(INFERD_ERROR_INVALID_ARG, "batch %d is outside [1, %d]", batch, p->max_batch);
  for (int i = 0; i < g->n_inputs; i++) c->data[g->inputs[i]] = inputs[i];
  for (int v = 0; v < g->n_values; v++)
    if (g->values[v].kind == IR_VALUE_CONST) c->data[v] = g->values[v].data;
  for (int s = 0; s < p->n_steps; s++) {
    const ir_node *n = &g->nodes[p->steps[s]];
    for (int k = 0; k < n->n_inputs; k++) tensor_of(g, c, n->inputs[k], batch, &c->in[k]);
    for (int k = 0; k < n->n_outputs; k++) tensor_of(g, c, n->outputs[k], batch, &c->out[k]);
    uint64_t t0 = c->profiling ? clock_now_ns() : 0;
    ERR_TRY(ir_op_get(n->op)->ref(g, n, c->in, c->out));
    ERR_TRY(ops_apply_post_ops(g, n, c->in, &c->out[0]));
    if (c->profiling) c->step_ms[s] = (double)(clock_now_ns() - t0) / 1e6;
  }
  /* Outputs are copied out, which also covers an output that is an input or
   * a constant, or the same value named twice. */
  for (int i = 0; i < g->n_outputs; i++) {
    if (!outputs[i]) continue;
    const ir_value *v = &g->values[g->outputs[i]];
    size_t bytes;
    if (!value_bytes(v, batch, &bytes)) return err_new(INFERD_ERROR_INTERNAL, "output '%s' has no size", v->name);
    if (bytes) memcpy(outputs[i], c->data[g->outputs[i]], bytes);
  }
  return NULL;
}

static void ref_set_profiling(ref_context *c, bool enabled) { c->profiling = enabled; }

static int ref_profile(const ref_context *c, inferd_profile_entry *entries, int capacity) {
  const ref_plan *p = c->plan;
  for (int s = 0; s < p->n_steps && s < capacity; s++) {
    const ir_node *n = &p->g->nodes[p->steps[s]];
    entries[s] =
        (inferd_profile_entry){.name = n->name, .kind = ir_op_name(n->op), .milliseconds = c->step_ms[s], .gflop = 0};
  }
  return p->n_steps;
}

/* The interface's opaque handles are this backend's own types. */
static inferd_error *iface_plan_create(const ir_graph *g, const backend_plan_config *config, backend_plan **out) {
  return ref_plan_create(g, config, (ref_plan **)out);
}
static void iface_plan_delete(backend_plan *p) { ref_plan_delete((ref_plan *)p); }
static size_t iface_plan_weight_bytes(const backend_plan *p) { return ref_plan_weight_bytes((const ref_plan *)p); }
static inferd_error *iface_context_create(backend_plan *p, int threads, backend_context **out) {
  return ref_context_create((ref_plan *)p, threads, (ref_context **)out);
}
static void iface_context_delete(backend_context *c) { ref_context_delete((ref_context *)c); }
static size_t iface_context_memory_bytes(const backend_context *c) {
  return ref_context_memory_bytes((const ref_context *)c);
}
static inferd_error *iface_execute(backend_context *c, int batch, const backend_io *io) {
  return ref_execute((ref_context *)c, batch, io->inputs, io->outputs);
}
static void iface_set_profiling(backend_context *c, bool enabled) { ref_set_profiling((ref_context *)c, enabled); }
static int iface_profile(const backend_context *c, inferd_profile_entry *entries, int capacity) {
  return ref_profile((const ref_context *)c, entries, capacity);
}

/* The reference backend runs on the CPU but serves no device: it is looked
 * up by name only (tests, conformance, --backend ref). */
const inferd_backend_ops backend_ref_ops = {
    .name = "ref",
    .device_kind = INFERD_DEVICE_CPU,
    .plan_create = iface_plan_create,
    .plan_delete = iface_plan_delete,
    .plan_weight_bytes = iface_plan_weight_bytes,
    .context_create = iface_context_create,
    .context_delete = iface_context_delete,
    .context_memory_bytes = iface_context_memory_bytes,
    .execute = iface_execute,
    .set_profiling = iface_set_profiling,
    .profile = iface_profile,
};
