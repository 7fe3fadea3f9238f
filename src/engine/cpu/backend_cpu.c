/*
 * The CPU backend's entry points: plans, contexts and runs. See cpu.h for
 * the model of programs, slots and steps.
 */
#include <limits.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "engine/cpu/cpu.h"
#include "engine/ops/op_util.h"

/* A program bound to one context's memory: ready-made argument lists for
 * every primitive, and the memory objects that point at the caller's
 * buffers, which each run re-aims. */
typedef struct cpu_binding {
  cpu_program *p;
  dnnl_exec_arg_t **args; /* per step */
  dnnl_memory_t *owned;
  int n_owned;
  dnnl_memory_t *ext_mem;
  int *ext_slot;
  int n_ext;
} cpu_binding;

static void plan_free(cpu_plan *plan) {
  if (!plan) return;
  if (plan->programs)
    for (int b = 0; b <= plan->config.max_batch_size; b++) cpu_program_free(plan->programs[b]);
  if (plan->weights)
    for (int i = 0; i < plan->g->n_nodes; i++)
      for (cpu_weights *w = plan->weights[i], *next; w; w = next) {
        next = w->next;
        if (w->memory) dnnl_memory_destroy(w->memory);
        free(w->data);
        free(w);
      }
  if (plan->engine) dnnl_engine_destroy(plan->engine);
  pthread_mutex_destroy(&plan->lock);
  free(plan->programs);
  free(plan->weights);
  free(plan->last_node);
  free(plan->const_use);
  free(plan);
}

static inferd_error *program_get(cpu_plan *plan, int batch, cpu_program **out) {
  pthread_mutex_lock(&plan->lock);
  inferd_error *e = NULL;
  if (!plan->programs[batch]) e = cpu_program_build(plan, batch, &plan->programs[batch]);
  *out = plan->programs[batch];
  pthread_mutex_unlock(&plan->lock);
  return e;
}

static inferd_error *cpu_plan_create(const ir_graph *g, const backend_plan_config *config, cpu_plan **out) {
  cpu_plan *plan = mem_zalloc(sizeof(*plan));
  plan->g = g;
  plan->config = *config;
  pthread_mutex_init(&plan->lock, NULL);
  plan->programs = mem_zalloc((size_t)(config->max_batch_size + 1) * sizeof(cpu_program *));
  plan->weights = mem_zalloc((size_t)(g->n_nodes + 1) * sizeof(cpu_weights *));
  plan->last_node = mem_zalloc((size_t)(g->n_values + 1) * sizeof(int));
  plan->const_use = mem_zalloc((size_t)g->n_values + 1);
  for (int v = 0; v < g->n_values; v++) plan->last_node[v] = -1;
  for (int i = 0; i < g->n_nodes; i++) {
    if (g->nodes[i].dead) continue;
    for (int k = 0; k < g->nodes[i].n_inputs; k++)
      if (g->nodes[i].inputs[k] >= 0) plan->last_node[g->nodes[i].inputs[k]] = i;
  }
  for (int j = 0; j < g->n_outputs; j++) plan->last_node[g->outputs[j]] = INT_MAX;
  dnnl_status_t st = dnnl_engine_create(&plan->engine, dnnl_cpu, 0);
  if (st != dnnl_success) {
    plan_free(plan);
    return cpu_dnnl_error(st, "creating the CPU engine");
  }
  if (config->precision == INFERD_PRECISION_BF16 && !cpu_has_bf16_dot())
    log_warn("precision bf16: this CPU (%s) has no BF16 instructions, and oneDNN's emulation of them is slower "
             "than FP32: the plan runs in FP32",
             cpu_isa_name());
  /* Build the largest batch now: every kernel and weight layout is chosen at
   * load, and a model the backend cannot run fails here, not at the first
   * request. */
  cpu_program *p;
  inferd_error *e = program_get(plan, config->max_batch_size, &p);
  if (!e && config->max_batch_size > 1) e = program_get(plan, 1, &p);
  if (e) {
    plan_free(plan);
    return e;
  }
  *out = plan;
  return NULL;
}

static bool cpu_owns_constant(const cpu_plan *plan, int value) {
  /* INT8 and BF16 programs convert the graph's FP32 weights for every
   * batch size they are built at (an FP32 layer among them must not read a
   * rounded copy): the graph keeps them. */
  if (plan->config.precision == INFERD_PRECISION_INT8 || plan->config.precision == INFERD_PRECISION_BF16) return false;
  return plan->const_use[value] == CPU_CONST_COPIED;
}

static size_t cpu_plan_weight_bytes(const cpu_plan *plan) {
  size_t total = 0;
  for (int i = 0; i < plan->g->n_nodes; i++)
    for (const cpu_weights *w = plan->weights[i]; w; w = w->next) total += w->size;
  return total;
}

static void binding_free(cpu_binding *bd) {
  if (!bd) return;
  for (int i = 0; i < bd->n_owned; i++) dnnl_memory_destroy(bd->owned[i]);
  if (bd->args)
    for (int i = 0; i < bd->p->n_steps; i++) free(bd->args[i]);
  free(bd->args);
  free(bd->owned);
  free(bd->ext_mem);
  free(bd->ext_slot);
  free(bd);
}

static void bindings_clear(cpu_context *ctx) {
  for (int b = 0; b <= ctx->plan->config.max_batch_size; b++) {
    binding_free(ctx->bindings[b]);
    ctx->bindings[b] = NULL;
  }
}

/* Where a slot's bytes are for this run. */
static void *slot_ptr(const cpu_context *ctx, const cpu_program *p, int slot, const void *const *inputs,
                      void *const *outputs) {
  const cpu_slot *r = &p->slots[cpu_slot_root(p, slot)];
  switch (r->storage) {
    case CPU_STORAGE_INPUT: return (void *)inputs[r->ext_index];
    case CPU_STORAGE_OUTPUT:
      if (outputs && outputs[r->ext_index]) return outputs[r->ext_index];
      return (char *)ctx->arena + r->offset;
    case CPU_STORAGE_CONST: return (void *)r->const_data;
    default: return (char *)ctx->arena + r->offset;
  }
}

static inferd_error *ensure_memory(cpu_context *ctx, const cpu_program *p) {
  if (p->arena_size > ctx->arena_size) {
    void *arena = mem_try_aligned(p->arena_size);
    if (!arena) return err_new(INFERD_ERROR_NO_MEMORY, "allocating a %zu-byte activation arena", p->arena_size);
    free(ctx->arena);
    ctx->arena = arena;
    ctx->arena_size = p->arena_size;
    bindings_clear(ctx);
  }
  if (p->scratch_size > ctx->scratch_size) {
    void *scratch = mem_try_aligned(p->scratch_size);
    if (!scratch) return err_new(INFERD_ERROR_NO_MEMORY, "allocating a %zu-byte scratchpad", p->scratch_size);
    free(ctx->scratch);
    ctx->scratch = scratch;
    ctx->scratch_size = p->scratch_size;
    bindings_clear(ctx);
  }
  return NULL;
}

static inferd_error *binding_create(cpu_context *ctx, cpu_program *p, cpu_binding **out) {
  ERR_TRY(ensure_memory(ctx, p));
  cpu_binding *bd = mem_zalloc(sizeof(*bd));
  bd->p = p;
  bd->args = mem_zalloc((size_t)(p->n_steps + 1) * sizeof(dnnl_exec_arg_t *));
  size_t cap_owned = 0, cap_ext = 0;
  dnnl_engine_t engine = ctx->plan->engine;
  for (int i = 0; i < p->n_steps; i++) {
    const cpu_step *s = &p->steps[i];
    if (s->kind != CPU_STEP_PRIMITIVE) continue;
    bd->args[i] = mem_alloc((size_t)(s->n_args + 1) * sizeof(dnnl_exec_arg_t));
    for (int k = 0; k < s->n_args; k++) {
      const cpu_arg *a = &s->args[k];
      dnnl_memory_t m = a->memory;
      if (!m) {
        const cpu_slot *r = &p->slots[cpu_slot_root(p, a->slot)];
        bool external = r->storage == CPU_STORAGE_INPUT || r->storage == CPU_STORAGE_OUTPUT;
        void *ptr = external ? DNNL_MEMORY_NONE : slot_ptr(ctx, p, a->slot, NULL, NULL);
        dnnl_status_t st = dnnl_memory_create(&m, &a->md, engine, ptr);
        if (st != dnnl_success) {
          binding_free(bd);
          return cpu_dnnl_error(st, "creating memory");
        }
        MEM_GROW(bd->owned, cap_owned, (size_t)bd->n_owned + 1);
        bd->owned[bd->n_owned++] = m;
        if (external) {
          MEM_GROW(bd->ext_mem, cap_ext, (size_t)bd->n_ext + 1);
          bd->ext_slot = mem_realloc(bd->ext_slot, cap_ext * sizeof(int));
          bd->ext_mem[bd->n_ext] = m;
          bd->ext_slot[bd->n_ext++] = a->slot;
        }
      }
      bd->args[i][k] = (dnnl_exec_arg_t){a->arg, m};
    }
    if (s->scratch_size) {
      dnnl_memory_t m;
      dnnl_status_t st = dnnl_memory_create(&m, &s->scratch_md, engine, ctx->scratch);
      if (st != dnnl_success) {
        binding_free(bd);
        return cpu_dnnl_error(st, "creating scratchpad memory");
      }
      MEM_GROW(bd->owned, cap_owned, (size_t)bd->n_owned + 1);
      bd->owned[bd->n_owned++] = m;
      bd->args[i][s->n_args] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, m};
    }
  }
  *out = bd;
  return NULL;
}

static inferd_error *cpu_context_create(cpu_plan *plan, int threads, cpu_context **out) {
  cpu_context *ctx = mem_zalloc(sizeof(*ctx));
  ctx->plan = plan;
  ctx->threads = threads > 0 ? threads : plan->config.threads;
  ctx->bindings = mem_zalloc((size_t)(plan->config.max_batch_size + 1) * sizeof(cpu_binding *));
  ctx->step_ms = NULL;
  ctx->profiled_batch = -1;
  inferd_error *e = NULL;
  dnnl_status_t st = dnnl_stream_create(&ctx->stream, plan->engine, dnnl_stream_default_flags);
  if (st != dnnl_success) e = cpu_dnnl_error(st, "creating a stream");
  /* Size the arena for the largest batch now so runs never allocate. */
  int batches[2] = {plan->config.max_batch_size, 1};
  int n_batches = plan->config.max_batch_size > 1 ? 2 : 1;
  for (int i = 0; i < n_batches && !e; i++) {
    cpu_program *p;
    e = program_get(plan, batches[i], &p);
    if (!e) e = binding_create(ctx, p, &ctx->bindings[batches[i]]);
  }
  if (e) {
    if (ctx->stream) dnnl_stream_destroy(ctx->stream);
    bindings_clear(ctx);
    free(ctx->bindings);
    free(ctx->arena);
    free(ctx->scratch);
    free(ctx);
    return e;
  }
  *out = ctx;
  return NULL;
}

static void cpu_context_delete(cpu_context *ctx) {
  if (!ctx) return;
  bindings_clear(ctx);
  free(ctx->bindings);
  if (ctx->stream) dnnl_stream_destroy(ctx->stream);
  free(ctx->arena);
  free(ctx->scratch);
  free(ctx->step_ms);
  free(ctx);
}

static size_t cpu_context_memory_bytes(const cpu_context *ctx) { return ctx->arena_size + ctx->scratch_size; }

static inferd_error *run_ref_step(cpu_context *ctx, const cpu_program *p, cpu_step *s, const void *const *inputs,
                                  void *const *outputs) {
  for (int k = 0; k < s->n_in; k++)
    s->in_tensors[k].data = s->in_slots[k] >= 0 ? slot_ptr(ctx, p, s->in_slots[k], inputs, outputs) : NULL;
  for (int k = 0; k < s->n_out; k++)
    s->out_tensors[k].data = s->out_slots[k] >= 0 ? slot_ptr(ctx, p, s->out_slots[k], inputs, outputs) : NULL;
  const ir_graph *g = ctx->plan->g;
  ERR_TRY(ir_op_get(s->node->op)->ref(g, s->node, s->in_tensors, s->out_tensors));
  /* A fused node that fell back to its reference kernel still owes its
   * post-ops. */
  if (s->node->n_post_ops) ERR_TRY(ops_apply_post_ops(g, s->node, s->in_tensors, &s->out_tensors[0]));
  return NULL;
}

static inferd_error *cpu_execute(cpu_context *ctx, int batch, const void *const *inputs, void *const *outputs) {
  cpu_plan *plan = ctx->plan;
  cpu_program *p;
  ERR_TRY(program_get(plan, batch, &p));
  if (!ctx->bindings[batch]) ERR_TRY(binding_create(ctx, p, &ctx->bindings[batch]));
  cpu_binding *bd = ctx->bindings[batch];
  for (int i = 0; i < bd->n_ext; i++)
    dnnl_memory_set_data_handle(bd->ext_mem[i], slot_ptr(ctx, p, bd->ext_slot[i], inputs, outputs));
  omp_set_num_threads(ctx->threads);
  if (ctx->profiling) {
    free(ctx->step_ms);
    ctx->step_ms = mem_zalloc((size_t)(p->n_steps + 1) * sizeof(double));
    ctx->profiled_batch = batch;
  }
  for (int i = 0; i < p->n_steps; i++) {
    cpu_step *s = &p->steps[i];
    uint64_t t0 = ctx->profiling ? clock_now_ns() : 0;
    switch (s->kind) {
      case CPU_STEP_PRIMITIVE: {
        int nargs = s->n_args + (s->scratch_size ? 1 : 0);
        dnnl_status_t st = dnnl_primitive_execute(s->primitive, ctx->stream, nargs, bd->args[i]);
        if (st != dnnl_success) return err_wrap(cpu_dnnl_error(st, s->what), "step '%s'", s->name);
        break;
      }
      case CPU_STEP_REF:
        /* The stream is in order and synchronous on CPU, but be explicit:
         * a C kernel reads what the previous primitive wrote. */
        dnnl_stream_wait(ctx->stream);
        ERR_TRY(run_ref_step(ctx, p, s, inputs, outputs));
        break;
      case CPU_STEP_COPY:
        dnnl_stream_wait(ctx->stream);
        memcpy(slot_ptr(ctx, p, s->out_slots[0], inputs, outputs), slot_ptr(ctx, p, s->in_slots[0], inputs, outputs),
               s->copy_bytes);
        break;
    }
    if (ctx->profiling) {
      dnnl_stream_wait(ctx->stream);
      ctx->step_ms[i] = (double)(clock_now_ns() - t0) * 1e-6;
    }
  }
  dnnl_status_t st = dnnl_stream_wait(ctx->stream);
  if (st != dnnl_success) return cpu_dnnl_error(st, "waiting for the stream");
  return NULL;
}

static void cpu_set_profiling(cpu_context *ctx, bool enabled) { ctx->profiling = enabled; }

static int cpu_profile(const cpu_context *ctx, inferd_profile_entry *entries, int capacity) {
  if (ctx->profiled_batch < 0 || !ctx->step_ms) return 0;
  const cpu_program *p = ctx->plan->programs[ctx->profiled_batch];
  for (int i = 0; i < p->n_steps && i < capacity; i++)
    entries[i] = (inferd_profile_entry){.name = p->steps[i].name,
                                        .kind = p->steps[i].what,
                                        .milliseconds = ctx->step_ms[i],
                                        .gflop = p->steps[i].gflop};
  return p->n_steps;
}

/* The interface's opaque handles are this backend's own types. */
static cpu_plan *as_plan(backend_plan *p) { return (cpu_plan *)p; }
static const cpu_plan *as_const_plan(const backend_plan *p) { return (const cpu_plan *)p; }
static cpu_context *as_context(backend_context *c) { return (cpu_context *)c; }

/* Plans are built on a thread of their own, which ends with the build.
 * oneDNN runs its reorders and kernels on the calling thread's OpenMP team,
 * and libgomp keeps a team's workers for the life of the thread that made
 * it; when more workers are kept than the process has CPUs, libgomp makes
 * every worker of every team sleep almost at once between parallel regions,
 * which doubles the time of a run made of many short kernels (a served
 * ResNet-50 in BF16 took 11.5 ms per image against 6.1 ms alone). A
 * server's loading thread lives on, so its team must not: the builder's
 * team goes with the builder, and the only teams left are those of the
 * threads that execute. */
typedef struct plan_build_job {
  const ir_graph *g;
  const backend_plan_config *config;
  cpu_plan *plan;
  inferd_error *err;
} plan_build_job;

static void *plan_build_main(void *arg) {
  plan_build_job *job = arg;
  if (job->config->threads > 0) omp_set_num_threads(job->config->threads);
  job->err = cpu_plan_create(job->g, job->config, &job->plan);
  return NULL;
}

static inferd_error *iface_plan_create(const ir_graph *g, const backend_plan_config *config, backend_plan **out) {
  plan_build_job job = {.g = g, .config = config};
  pthread_attr_t attr;
  pthread_t tid;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, (size_t)16 << 20);
  const int rc = pthread_create(&tid, &attr, plan_build_main, &job);
  pthread_attr_destroy(&attr);
  if (rc != 0) return err_new(INFERD_ERROR_INTERNAL, "starting the plan builder thread: %s", strerror(rc));
  pthread_join(tid, NULL);
  if (job.err) return job.err;
  *out = (backend_plan *)job.plan;
  return NULL;
}
static void iface_plan_delete(backend_plan *p) { plan_free(as_plan(p)); }
static bool iface_owns_constant(const backend_plan *p, int value) { return cpu_owns_constant(as_const_plan(p), value); }
static size_t iface_plan_weight_bytes(const backend_plan *p) { return cpu_plan_weight_bytes(as_const_plan(p)); }
static inferd_error *iface_context_create(backend_plan *p, int threads, backend_context **out) {
  return cpu_context_create(as_plan(p), threads, (cpu_context **)out);
}
static void iface_context_delete(backend_context *c) { cpu_context_delete(as_context(c)); }
static size_t iface_context_memory_bytes(const backend_context *c) {
  return cpu_context_memory_bytes((const cpu_context *)c);
}
static inferd_error *iface_execute(backend_context *c, int batch, const backend_io *io) {
  return cpu_execute(as_context(c), batch, io->inputs, io->outputs);
}
/* Ends the calling thread's OpenMP team (libgomp frees the thread's pool;
 * the next parallel region makes a new one). See inferd_context_idle. */
static void iface_thread_idle(backend_context *c) {
  (void)c;
  omp_pause_resource(omp_pause_soft, omp_get_initial_device());
}
static void iface_set_profiling(backend_context *c, bool enabled) { cpu_set_profiling(as_context(c), enabled); }
static int iface_profile(const backend_context *c, inferd_profile_entry *entries, int capacity) {
  return cpu_profile((const cpu_context *)c, entries, capacity);
}

const inferd_backend_ops backend_cpu_ops = {
    .name = "cpu",
    .device_kind = INFERD_DEVICE_CPU,
    .describe = cpu_describe,
    .plan_create = iface_plan_create,
    .plan_delete = iface_plan_delete,
    .owns_constant = iface_owns_constant,
    .plan_weight_bytes = iface_plan_weight_bytes,
    .context_create = iface_context_create,
    .context_delete = iface_context_delete,
    .context_memory_bytes = iface_context_memory_bytes,
    .execute = iface_execute,
    .thread_idle = iface_thread_idle,
    .set_profiling = iface_set_profiling,
    .profile = iface_profile,
};
