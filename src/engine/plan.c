/*
 * The engine's public face: inferd_plan (import, optimize, compile for a
 * backend) and inferd_context (run). Everything model-specific is decided
 * here once, at load; a run only checks its arguments against the plan and
 * hands pointers to the backend.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/bytes_tensor.h"
#include "base/log.h"
#include "engine/backend.h"
#include "engine/onnx/onnx.h"
#include "engine/passes.h"
#include "engine/quant/calibration.h"

/* Every backend compiled in; the first of each device kind serves it. */
static const inferd_backend_ops *const all_backends[] = {
    &backend_cpu_ops,
#ifdef INFERD_HAVE_CUDA
    &backend_cuda_ops,
#endif
    &backend_ref_ops,
    NULL,
};

const inferd_backend_ops *const *backend_all(void) { return all_backends; }

const inferd_backend_ops *backend_find(const char *name) {
  for (int i = 0; name && all_backends[i]; i++)
    if (strcmp(all_backends[i]->name, name) == 0) return all_backends[i];
  return NULL;
}

const inferd_backend_ops *backend_for_device(inferd_device_kind kind) {
  for (int i = 0; all_backends[i]; i++)
    if (all_backends[i]->device_kind == kind) return all_backends[i];
  return NULL;
}

/* One batch item of an optional input's default value. */
typedef struct input_default {
  const char *name; /* the graph's string */
  void *data;
  size_t bytes;
} input_default;

struct inferd_plan {
  ir_graph *graph;
  const inferd_backend_ops *backend;
  backend_plan *impl;
  inferd_device device;
  inferd_precision precision;
  int max_batch_size;
  int threads;
  bool dynamic_batch;
  int n_inputs, n_outputs;
  inferd_tensor_info *inputs, *outputs;
  input_default *defaults; /* inputs with a default value, found by name (the passes may drop inputs) */
  int n_defaults;
  calib_cache *calibration; /* INT8 */
  char *int8_keep;          /* INT8: the caller's list, copied */
};

/* BYTES tensors cross the API serialized (per element a 4-byte
 * little-endian length, then the bytes) and run inside as ir_bytes views:
 * the context keeps, per BYTES input and output, a view array sized for the
 * largest batch, and per BYTES output the serialized result it hands out. */
typedef struct bytes_output {
  ir_bytes *views;
  uint8_t *data;
  size_t cap;
} bytes_output;

struct inferd_context {
  inferd_plan *plan;
  backend_context *impl;
  const void **input_ptrs;
  void **output_ptrs;
  inferd_memory_kind *input_kinds, *output_kinds;
  bool pending; /* an asynchronous run awaits inferd_context_wait */
  bool copies_pending; /* so do copies queued by inferd_context_copy_async */
  int pending_batch, pending_outputs; /* that run's batch and outputs, for the BYTES step after it */
  inferd_tensor *pending_tensors;
  ir_bytes **input_views; /* per input; NULL unless BYTES */
  bytes_output *outputs;  /* per output; views NULL unless BYTES */
};

static size_t info_count(const inferd_tensor_info *info, int batch, bool dynamic);

static void tensor_info_from_value(const ir_value *v, inferd_tensor_info *info) {
  info->name = v->name;
  info->datatype = v->dtype;
  info->rank = v->shape.rank;
  for (int i = 0; i < v->shape.rank; i++) info->dims[i] = v->shape.dims[i] < 0 ? -1 : v->shape.dims[i];
}

/* The batch is dynamic when every input and output has N (exactly) as its
 * first dimension and nowhere else; anything else runs at its fixed shape. */
static bool graph_has_dynamic_batch(const ir_graph *g) {
  bool any = false;
  for (int pass = 0; pass < 2; pass++) {
    int n = pass ? g->n_outputs : g->n_inputs;
    const int *ids = pass ? g->outputs : g->inputs;
    for (int i = 0; i < n; i++) {
      const ir_shape *s = &g->values[ids[i]].shape;
      if (s->rank == 0 || s->dims[0] != IR_DIM_BATCH) return false;
      for (int d = 1; d < s->rank; d++)
        if (s->dims[d] < 0) return false;
      any = true;
    }
  }
  return any;
}

static inferd_error *check_graph_inputs(const ir_graph *g) {
  for (int i = 0; i < g->n_inputs; i++) {
    const ir_value *v = &g->values[g->inputs[i]];
    if (!v->has_shape)
      return err_new(INFERD_ERROR_UNSUPPORTED, "input '%s' has no declared shape", v->name);
    if (!ir_dtype_size(v->dtype))
      return err_new(INFERD_ERROR_UNSUPPORTED, "input '%s' has type %s, which the engine does not run", v->name,
                     inferd_datatype_name(v->dtype));
  }
  for (int i = 0; i < g->n_outputs; i++) {
    const ir_value *v = &g->values[g->outputs[i]];
    if (!v->has_shape) return err_new(INFERD_ERROR_UNSUPPORTED, "output '%s' has no inferred shape", v->name);
  }
  return NULL;
}

static void defaults_free(input_default *d, int n) {
  for (int i = 0; i < n; i++) free(d[i].data);
  free(d);
}

/* Takes the default values of the inputs that have one off the graph (into
 * malloc'd copies), checking that each is one batch item (the whole tensor
 * without a batch) and that every optional input asked for has one. */
static inferd_error *take_defaults(ir_graph *g, const char *const *names, int n_names, input_default **out,
                                   int *n_out) {
  input_default *d = mem_zalloc((size_t)(g->n_inputs + 1) * sizeof(*d));
  int n = 0;
  *out = d;
  *n_out = 0;
  for (int i = 0; i < g->n_inputs; i++) {
    ir_value *v = &g->values[g->inputs[i]];
    if (!v->data) continue;
    const bool batched = v->has_shape && v->shape.rank > 0 && v->shape.dims[0] == IR_DIM_BATCH;
    int64_t want = 1;
    for (int k = batched ? 1 : 0; v->has_shape && k < v->shape.rank; k++) want *= v->shape.dims[k];
    if (!v->has_shape || !ir_shape_is_static(&v->default_shape) || ir_shape_numel(&v->default_shape, 1) != want)
      return err_new(INFERD_ERROR_UNSUPPORTED,
                     "input '%s': its default value (initializer) must hold %s (%lld elements), it holds %lld",
                     v->name, batched ? "one batch item" : "the whole input", (long long)want,
                     (long long)(ir_shape_is_static(&v->default_shape) ? ir_shape_numel(&v->default_shape, 1) : -1));
    d[n] = (input_default){.name = v->name, .data = mem_alloc(v->nbytes ? v->nbytes : 1), .bytes = v->nbytes};
    memcpy(d[n].data, v->data, v->nbytes);
    *n_out = ++n;
    v->data = NULL;
    v->nbytes = 0;
  }
  for (int k = 0; k < n_names; k++) {
    bool found = false;
    for (int i = 0; i < n && !found; i++) found = strcmp(d[i].name, names[k]) == 0;
    if (!found)
      return err_new(INFERD_ERROR_INVALID_ARG,
                     "input '%s' is optional, but the model gives it no default value (an initializer of the same "
                     "name that is also a graph input)",
                     names[k]);
  }
  return NULL;
}

/* The backend named, or the one serving the device asked for; the device
 * must exist, and a precision the device has no use for is refused. */
static inferd_error *plan_choose_backend(const inferd_plan_options *options, inferd_plan *plan) {
  plan->device = options ? options->device : (inferd_device){0};
  if (options && options->backend) {
    plan->backend = backend_find(options->backend);
    if (!plan->backend)
      return err_new(INFERD_ERROR_UNSUPPORTED, "backend '%s' is not built into this inferd", options->backend);
    if (plan->backend->device_kind != plan->device.kind) plan->device = (inferd_device){plan->backend->device_kind, 0};
  } else {
    plan->backend = backend_for_device(plan->device.kind);
    if (!plan->backend)
      return err_new(INFERD_ERROR_UNSUPPORTED, "this inferd was built without a %s backend",
                     plan->device.kind == INFERD_DEVICE_CUDA ? "CUDA" : "CPU");
  }
  const int count = plan->backend->device_count ? plan->backend->device_count() : 1;
  if (plan->device.ordinal < 0 || plan->device.ordinal >= count) {
    if (plan->device.kind == INFERD_DEVICE_CUDA)
      return err_new(INFERD_ERROR_UNAVAILABLE, "GPU %d does not exist (%d GPU%s visible)", plan->device.ordinal, count,
                     count == 1 ? "" : "s");
    return err_new(INFERD_ERROR_INVALID_ARG, "device ordinal %d does not exist", plan->device.ordinal);
  }
  plan->precision = options ? options->precision : INFERD_PRECISION_DEFAULT;
  if (plan->precision == INFERD_PRECISION_DEFAULT)
    plan->precision = plan->device.kind == INFERD_DEVICE_CUDA ? INFERD_PRECISION_TF32 : INFERD_PRECISION_FP32;
  const bool cpu = plan->device.kind == INFERD_DEVICE_CPU;
  if ((cpu && plan->precision != INFERD_PRECISION_FP32 && plan->precision != INFERD_PRECISION_INT8 &&
       plan->precision != INFERD_PRECISION_BF16) ||
      (!cpu && plan->precision == INFERD_PRECISION_INT8))
    return err_new(INFERD_ERROR_UNSUPPORTED, "precision %s is not available on the %s backend yet",
                   inferd_precision_name(plan->precision), plan->backend->name);
  const char *cache = options ? options->calibration_cache : NULL;
  if (plan->precision == INFERD_PRECISION_INT8 && !cache)
    return err_new(INFERD_ERROR_INVALID_ARG,
                   "precision int8 needs a calibration cache (made by `inferd calibrate`) for its activation scales");
  if (plan->precision != INFERD_PRECISION_INT8 && cache)
    return err_new(INFERD_ERROR_INVALID_ARG, "a calibration cache is only read at precision int8, not %s",
                   inferd_precision_name(plan->precision));
  return NULL;
}

/* inferd_plan_options.calibration_outputs: the data input of every live
 * Conv, Gemm and MatMul, when it is a floating-point activation (not a
 * constant, not a graph input) and not an output already. */
static void add_calibration_outputs(ir_graph *g) {
  for (int i = 0; i < g->n_nodes; i++) {
    const ir_node *n = &g->nodes[i];
    if (n->dead || n->n_inputs < 1 || (n->op != IR_OP_Conv && n->op != IR_OP_Gemm && n->op != IR_OP_MatMul)) continue;
    const int v = n->inputs[0];
    if (v < 0) continue;
    const ir_value *val = &g->values[v];
    if (val->kind == IR_VALUE_CONST || val->dtype != INFERD_TYPE_FP32) continue;
    bool listed = false;
    for (int k = 0; k < g->n_inputs && !listed; k++) listed = g->inputs[k] == v;
    for (int k = 0; k < g->n_outputs && !listed; k++) listed = g->outputs[k] == v;
    if (!listed) ir_graph_add_output(g, v);
  }
}

/* The INT8 plan's calibration cache, which must name this model file. */
static inferd_error *read_calibration(const char *model_path, const char *path, inferd_plan *plan) {
  plan->calibration = mem_zalloc(sizeof(*plan->calibration));
  ERR_TRY(calib_cache_read(path, plan->calibration));
  char checksum[96];
  ERR_TRY(calib_file_checksum(model_path, checksum, sizeof(checksum)));
  if (strcmp(checksum, plan->calibration->checksum) != 0)
    return err_new(INFERD_ERROR_INVALID_ARG,
                   "calibration cache '%s' was made for another model (%s; this one is %s): run `inferd calibrate` "
                   "on this model",
                   path, plan->calibration->checksum, checksum);
  return NULL;
}

static inferd_error *plan_build(const char *model_path, const inferd_plan_options *options, inferd_plan *plan) {
  ERR_TRY(plan_choose_backend(options, plan));
  if (plan->precision == INFERD_PRECISION_INT8) ERR_TRY(read_calibration(model_path, options->calibration_cache, plan));
  if (options && options->int8_keep) {
    if (plan->precision != INFERD_PRECISION_INT8)
      return err_new(INFERD_ERROR_INVALID_ARG, "layers to keep in FP32 are only named at precision int8, not %s",
                     inferd_precision_name(plan->precision));
    plan->int8_keep = mem_strdup(options->int8_keep);
  } else if (plan->precision == INFERD_PRECISION_INT8 && plan->calibration->keep) {
    /* The list `inferd calibrate --auto-keep` chose, unless the caller gives one. */
    plan->int8_keep = mem_strdup(plan->calibration->keep);
  }
  const char *disabled = options ? options->disabled_passes : NULL;
  ERR_TRY(passes_validate(disabled));

  const char *const *optional = options ? options->optional_inputs : NULL;
  const int n_optional = options && optional ? options->optional_input_count : 0;
  ERR_TRY(onnx_import_file_with_defaults(model_path, optional, n_optional, &plan->graph));
  ir_graph *g = plan->graph;
  ERR_TRY(take_defaults(g, optional, n_optional, &plan->defaults, &plan->n_defaults));
  ERR_TRY(ir_infer_shapes(g));
  ERR_TRY(passes_run(g, disabled));
  ERR_TRY(check_graph_inputs(g));
  if (options && options->calibration_outputs) add_calibration_outputs(g);
  if (plan->backend->supports_node) {
    for (int i = 0; i < g->n_nodes; i++)
      if (!g->nodes[i].dead && !plan->backend->supports_node(g, &g->nodes[i], plan->precision))
        return ir_node_error(g, &g->nodes[i], INFERD_ERROR_UNSUPPORTED, "not supported by the %s backend",
                             plan->backend->name);
  }

  plan->dynamic_batch = graph_has_dynamic_batch(g);
  int max_batch = options ? options->max_batch_size : 0;
  if (max_batch < 0) return err_new(INFERD_ERROR_INVALID_ARG, "max_batch_size %d is negative", max_batch);
  if (!plan->dynamic_batch) {
    if (max_batch > 1)
      return err_new(INFERD_ERROR_INVALID_ARG,
                     "max_batch_size %d asked for, but the model's inputs and outputs do not all have a dynamic "
                     "first (batch) dimension",
                     max_batch);
    max_batch = 1;
  }
  plan->max_batch_size = max_batch ? max_batch : 1;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  plan->threads = options && options->threads > 0 ? options->threads : (int)(cores > 0 ? cores : 1);

  plan->n_inputs = g->n_inputs;
  plan->n_outputs = g->n_outputs;
  plan->inputs = mem_zalloc((size_t)(g->n_inputs + 1) * sizeof(inferd_tensor_info));
  plan->outputs = mem_zalloc((size_t)(g->n_outputs + 1) * sizeof(inferd_tensor_info));
  for (int i = 0; i < g->n_inputs; i++) tensor_info_from_value(&g->values[g->inputs[i]], &plan->inputs[i]);
  for (int i = 0; i < g->n_outputs; i++) tensor_info_from_value(&g->values[g->outputs[i]], &plan->outputs[i]);

  /* Originals of folded weights are dead now: give their pages back before
   * the backend makes its own copies, which keeps the load's peak memory at
   * about two copies of the weights instead of three. */
  ir_graph_release_unused_consts(g);
  backend_plan_config config = {.max_batch_size = plan->max_batch_size,
                                .threads = plan->threads,
                                .device = plan->device,
                                .precision = plan->precision,
                                .tactic_cache = options ? options->tactic_cache : NULL,
                                .build_all_batch_sizes = options && options->build_all_batch_sizes,
                                .calibration = plan->calibration,
                                .int8_keep = plan->int8_keep};
  ERR_TRY(plan->backend->plan_create(g, &config, &plan->impl));
  if (plan->backend->owns_constant)
    for (int v = 0; v < g->n_values; v++)
      if (g->values[v].kind == IR_VALUE_CONST && g->values[v].data && plan->backend->owns_constant(plan->impl, v))
        ir_graph_release_const(g, v);
  return NULL;
}

struct inferd_model_info {
  ir_graph *graph;
  inferd_tensor_info *inputs, *outputs;
  int n_inputs, n_outputs;
  bool dynamic_batch;
};

inferd_error *inferd_model_inspect(const char *model_path, inferd_model_info **out) {
  return inferd_model_inspect_with_defaults(model_path, NULL, 0, out);
}

inferd_error *inferd_model_inspect_with_defaults(const char *model_path, const char *const *optional_inputs,
                                                 int optional_input_count, inferd_model_info **out) {
  *out = NULL;
  if (!model_path) return err_new(INFERD_ERROR_INVALID_ARG, "no model path");
  inferd_model_info *info = mem_zalloc(sizeof(*info));
  input_default *defaults = NULL;
  int n_defaults = 0;
  const int n_optional = optional_inputs ? optional_input_count : 0;
  inferd_error *e = onnx_import_file_with_defaults(model_path, optional_inputs, n_optional, &info->graph);
  if (!e) e = take_defaults(info->graph, optional_inputs, n_optional, &defaults, &n_defaults);
  defaults_free(defaults, n_defaults);
  if (!e) e = ir_infer_shapes(info->graph);
  if (!e) e = check_graph_inputs(info->graph);
  if (e) {
    inferd_model_info_delete(info);
    return err_wrap(e, "reading '%s'", model_path);
  }
  const ir_graph *g = info->graph;
  info->n_inputs = g->n_inputs;
  info->n_outputs = g->n_outputs;
  info->inputs = mem_zalloc((size_t)(g->n_inputs + 1) * sizeof(inferd_tensor_info));
  info->outputs = mem_zalloc((size_t)(g->n_outputs + 1) * sizeof(inferd_tensor_info));
  for (int i = 0; i < g->n_inputs; i++) tensor_info_from_value(&g->values[g->inputs[i]], &info->inputs[i]);
  for (int i = 0; i < g->n_outputs; i++) tensor_info_from_value(&g->values[g->outputs[i]], &info->outputs[i]);
  info->dynamic_batch = graph_has_dynamic_batch(g);
  *out = info;
  return NULL;
}

void inferd_model_info_delete(inferd_model_info *info) {
  if (!info) return;
  ir_graph_delete(info->graph);
  free(info->inputs);
  free(info->outputs);
  free(info);
}

int inferd_model_info_input_count(const inferd_model_info *info) { return info->n_inputs; }
int inferd_model_info_output_count(const inferd_model_info *info) { return info->n_outputs; }
const inferd_tensor_info *inferd_model_info_inputs(const inferd_model_info *info) { return info->inputs; }
const inferd_tensor_info *inferd_model_info_outputs(const inferd_model_info *info) { return info->outputs; }
bool inferd_model_info_has_dynamic_batch(const inferd_model_info *info) { return info->dynamic_batch; }

inferd_error *inferd_plan_load(const char *model_path, const inferd_plan_options *options, inferd_plan **out) {
  *out = NULL;
  if (!model_path) return err_new(INFERD_ERROR_INVALID_ARG, "no model path");
  inferd_plan *plan = mem_zalloc(sizeof(*plan));
  inferd_error *e = plan_build(model_path, options, plan);
  if (e) {
    inferd_plan_delete(plan);
    return err_wrap(e, "loading '%s'", model_path);
  }
  *out = plan;
  return NULL;
}

void inferd_plan_delete(inferd_plan *plan) {
  if (!plan) return;
  if (plan->impl) plan->backend->plan_delete(plan->impl);
  ir_graph_delete(plan->graph);
  defaults_free(plan->defaults, plan->n_defaults);
  if (plan->calibration) calib_cache_free(plan->calibration);
  free(plan->calibration);
  free(plan->int8_keep);
  free(plan->inputs);
  free(plan->outputs);
  free(plan);
}

int inferd_plan_input_count(const inferd_plan *plan) { return plan->n_inputs; }
int inferd_plan_output_count(const inferd_plan *plan) { return plan->n_outputs; }
bool inferd_plan_has_dynamic_batch(const inferd_plan *plan) { return plan->dynamic_batch; }
int inferd_plan_max_batch_size(const inferd_plan *plan) { return plan->max_batch_size; }

size_t inferd_plan_weight_bytes(const inferd_plan *plan) {
  return plan->backend->plan_weight_bytes ? plan->backend->plan_weight_bytes(plan->impl) : 0;
}

inferd_device inferd_plan_device(const inferd_plan *plan) { return plan->device; }
inferd_precision inferd_plan_precision(const inferd_plan *plan) { return plan->precision; }
const char *inferd_plan_backend_name(const inferd_plan *plan) { return plan->backend->name; }

static bool backend_takes(const inferd_backend_ops *b, inferd_memory_kind kind) {
  return kind == INFERD_MEMORY_CPU || (b->memory_kinds & (1u << kind)) != 0;
}

inferd_error *inferd_plan_memory_alloc(const inferd_plan *plan, inferd_memory_kind kind, size_t size, void **ptr) {
  *ptr = NULL;
  const inferd_backend_ops *b = plan->backend;
  if (kind != INFERD_MEMORY_CPU && b->memory_alloc && backend_takes(b, kind))
    return b->memory_alloc(plan->impl, kind, size, ptr);
  if (kind == INFERD_MEMORY_GPU)
    return err_new(INFERD_ERROR_UNSUPPORTED, "the %s backend has no GPU memory", b->name);
  *ptr = mem_try_aligned(size ? size : 64);
  return *ptr ? NULL : err_new(INFERD_ERROR_NO_MEMORY, "allocating %zu bytes of host memory", size);
}

void inferd_plan_memory_free(const inferd_plan *plan, inferd_memory_kind kind, void *ptr) {
  if (!ptr) return;
  const inferd_backend_ops *b = plan->backend;
  if (kind != INFERD_MEMORY_CPU && b->memory_free && backend_takes(b, kind)) b->memory_free(plan->impl, kind, ptr);
  else free(ptr);
}

inferd_error *inferd_plan_memory_copy(const inferd_plan *plan, void *dst, inferd_memory_kind dst_kind, const void *src,
                                      inferd_memory_kind src_kind, size_t size) {
  const bool device = dst_kind == INFERD_MEMORY_GPU || src_kind == INFERD_MEMORY_GPU;
  if (!device) {
    if (size) memmove(dst, src, size);
    return NULL;
  }
  if (!plan->backend->memory_copy || !backend_takes(plan->backend, INFERD_MEMORY_GPU))
    return err_new(INFERD_ERROR_UNSUPPORTED, "the %s backend has no GPU memory", plan->backend->name);
  return plan->backend->memory_copy(plan->impl, dst, src, size);
}

static const input_default *find_default(const inferd_plan *plan, int index) {
  for (int i = 0; index >= 0 && index < plan->n_inputs && i < plan->n_defaults; i++)
    if (strcmp(plan->defaults[i].name, plan->inputs[index].name) == 0) return &plan->defaults[i];
  return NULL;
}

bool inferd_plan_input_default(const inferd_plan *plan, int index, const void **data, size_t *byte_size) {
  const input_default *d = find_default(plan, index);
  if (!d) return false;
  *data = d->data;
  *byte_size = d->bytes;
  return true;
}

inferd_error *inferd_plan_input(const inferd_plan *plan, int index, inferd_tensor_info *info) {
  if (index < 0 || index >= plan->n_inputs)
    return err_new(INFERD_ERROR_INVALID_ARG, "input index %d out of range (%d inputs)", index, plan->n_inputs);
  *info = plan->inputs[index];
  return NULL;
}

inferd_error *inferd_plan_output(const inferd_plan *plan, int index, inferd_tensor_info *info) {
  if (index < 0 || index >= plan->n_outputs)
    return err_new(INFERD_ERROR_INVALID_ARG, "output index %d out of range (%d outputs)", index, plan->n_outputs);
  *info = plan->outputs[index];
  return NULL;
}

inferd_error *inferd_context_create(inferd_plan *plan, const inferd_context_options *options,
                                    inferd_context **out) {
  *out = NULL;
  int threads = options && options->threads > 0 ? options->threads : plan->threads;
  inferd_context *ctx = mem_zalloc(sizeof(*ctx));
  ctx->plan = plan;
  ctx->input_ptrs = mem_zalloc((size_t)(plan->n_inputs + 1) * sizeof(void *));
  ctx->output_ptrs = mem_zalloc((size_t)(plan->n_outputs + 1) * sizeof(void *));
  ctx->input_kinds = mem_zalloc((size_t)(plan->n_inputs + 1) * sizeof(inferd_memory_kind));
  ctx->output_kinds = mem_zalloc((size_t)(plan->n_outputs + 1) * sizeof(inferd_memory_kind));
  ctx->input_views = mem_zalloc((size_t)(plan->n_inputs + 1) * sizeof(ir_bytes *));
  ctx->outputs = mem_zalloc((size_t)(plan->n_outputs + 1) * sizeof(bytes_output));
  inferd_error *e = NULL;
  for (int k = 0; k < plan->n_inputs + plan->n_outputs && !e; k++) {
    const bool in = k < plan->n_inputs;
    const inferd_tensor_info *info = in ? &plan->inputs[k] : &plan->outputs[k - plan->n_inputs];
    if (info->datatype != INFERD_TYPE_BYTES) continue;
    size_t count = info_count(info, plan->max_batch_size, plan->dynamic_batch), bytes;
    ir_bytes *views = count != SIZE_MAX && mem_mul_ok(count ? count : 1, sizeof(ir_bytes), &bytes)
                          ? mem_try_alloc(bytes, 1)
                          : NULL;
    if (!views) e = err_new(INFERD_ERROR_NO_MEMORY, "allocating the element views of '%s'", info->name);
    else if (in) ctx->input_views[k] = views;
    else ctx->outputs[k - plan->n_inputs].views = views;
  }
  if (!e) e = plan->backend->context_create(plan->impl, threads, &ctx->impl);
  if (e) {
    inferd_context_delete(ctx);
    return e;
  }
  *out = ctx;
  return NULL;
}

void inferd_context_delete(inferd_context *ctx) {
  if (!ctx) return;
  if (ctx->impl) {
    /* A run still in flight writes into the caller's buffers: finish it. */
    if (ctx->pending && ctx->plan->backend->wait) inferd_error_delete(ctx->plan->backend->wait(ctx->impl));
    ctx->plan->backend->context_delete(ctx->impl);
  }
  free(ctx->input_ptrs);
  free(ctx->output_ptrs);
  free(ctx->input_kinds);
  free(ctx->output_kinds);
  for (int k = 0; ctx->input_views && k < ctx->plan->n_inputs; k++) free(ctx->input_views[k]);
  for (int k = 0; ctx->outputs && k < ctx->plan->n_outputs; k++) {
    free(ctx->outputs[k].views);
    free(ctx->outputs[k].data);
  }
  free(ctx->input_views);
  free(ctx->outputs);
  free(ctx);
}

size_t inferd_context_memory_bytes(const inferd_context *ctx) {
  const inferd_backend_ops *b = ctx->plan->backend;
  return b->context_memory_bytes ? b->context_memory_bytes(ctx->impl) : 0;
}

static int find_info(const inferd_tensor_info *infos, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (name && strcmp(infos[i].name, name) == 0) return i;
  return -1;
}

/* Elements of a tensor of `info` at `batch`; SIZE_MAX on overflow. */
static size_t info_count(const inferd_tensor_info *info, int batch, bool dynamic) {
  size_t n = 1;
  for (int d = 0; d < info->rank; d++) {
    size_t extent = (d == 0 && dynamic) ? (size_t)batch : (size_t)info->dims[d];
    if (!mem_mul_ok(n, extent, &n)) return SIZE_MAX;
  }
  return n;
}

/* Bytes of a tensor of fixed-size `info` at `batch`; 0 on overflow. */
static size_t info_bytes(const inferd_tensor_info *info, int batch, bool dynamic) {
  size_t count = info_count(info, batch, dynamic), n;
  return count != SIZE_MAX && mem_mul_ok(count, inferd_datatype_size(info->datatype), &n) ? n : 0;
}

/* Serializes a BYTES output's views into the context's buffer for it. */
static inferd_error *bytes_output_write(bytes_output *o, const inferd_tensor_info *info, size_t count,
                                        inferd_tensor *t) {
  size_t total = 0;
  for (size_t i = 0; i < count; i++) {
    if (o->views[i].len > UINT32_MAX)
      return err_new(INFERD_ERROR_TOO_LARGE, "output '%s': BYTES element %zu is over 4 GiB", info->name, i);
    if (!mem_add_ok(total, 4 + (size_t)o->views[i].len, &total))
      return err_new(INFERD_ERROR_TOO_LARGE, "output '%s' is too large", info->name);
  }
  if (total > o->cap) {
    uint8_t *grown = realloc(o->data, total);
    if (!grown) return err_new(INFERD_ERROR_NO_MEMORY, "allocating %zu bytes for output '%s'", total, info->name);
    o->data = grown;
    o->cap = total;
  }
  uint8_t *w = o->data;
  for (size_t i = 0; i < count; i++) {
    const uint32_t len = (uint32_t)o->views[i].len;
    w[0] = (uint8_t)len;
    w[1] = (uint8_t)(len >> 8);
    w[2] = (uint8_t)(len >> 16);
    w[3] = (uint8_t)(len >> 24);
    if (len) memcpy(w + 4, o->views[i].data, len);
    w += 4 + len;
  }
  t->data = o->data;
  t->byte_size = total;
  return NULL;
}

static inferd_error *check_input(const inferd_plan *plan, const inferd_tensor_info *info, const inferd_tensor *t,
                                 int batch) {
  if (t->datatype != info->datatype)
    return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' has datatype %s, the model expects %s", info->name,
                   inferd_datatype_name(t->datatype), inferd_datatype_name(info->datatype));
  bool shape_ok = t->rank == info->rank;
  for (int d = 0; shape_ok && d < info->rank; d++) {
    int64_t want = (d == 0 && plan->dynamic_batch) ? batch : info->dims[d];
    shape_ok = t->dims[d] == want;
  }
  if (!shape_ok) {
    char got[160], want[160];
    size_t n = 0, m = 0;
    for (int d = 0; d < t->rank && d < INFERD_MAX_RANK; d++)
      n += (size_t)snprintf(got + n, n < sizeof(got) ? sizeof(got) - n : 0, "%s%lld", d ? "," : "",
                            (long long)t->dims[d]);
    got[n < sizeof(got) ? n : sizeof(got) - 1] = 0;
    if (!t->rank) snprintf(got, sizeof(got), "scalar");
    for (int d = 0; d < info->rank; d++) {
      int64_t w = (d == 0 && plan->dynamic_batch) ? batch : info->dims[d];
      m += (size_t)snprintf(want + m, m < sizeof(want) ? sizeof(want) - m : 0, "%s%lld", d ? "," : "", (long long)w);
    }
    want[m < sizeof(want) ? m : sizeof(want) - 1] = 0;
    if (!info->rank) snprintf(want, sizeof(want), "scalar");
    return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' has shape [%s], the model expects [%s]", info->name, got,
                   want);
  }
  if (info->datatype == INFERD_TYPE_BYTES) return NULL; /* read by bytes_input */
  size_t need = info_bytes(info, batch, plan->dynamic_batch);
  if (!t->data || t->byte_size != need)
    return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' has %zu bytes of data, its shape needs %zu", info->name,
                   t->data ? t->byte_size : 0, need);
  return NULL;
}

/* Memory a run's tensor may be in: what the backend accepts, and a GPU
 * tensor only on the plan's own GPU. */
static inferd_error *check_memory(const inferd_plan *plan, const inferd_tensor *t, const char *what) {
  if (t->memory == INFERD_MEMORY_CPU || t->memory == INFERD_MEMORY_CPU_PINNED) return NULL;
  if (t->memory != INFERD_MEMORY_GPU)
    return err_new(INFERD_ERROR_INVALID_ARG, "%s '%s': unknown memory kind %d", what, t->name ? t->name : "",
                   (int)t->memory);
  if (!backend_takes(plan->backend, INFERD_MEMORY_GPU))
    return err_new(INFERD_ERROR_UNSUPPORTED, "%s '%s' is in GPU memory, which the %s backend cannot read", what,
                   t->name ? t->name : "", plan->backend->name);
  if (t->memory_id != plan->device.ordinal)
    return err_new(INFERD_ERROR_INVALID_ARG, "%s '%s' is in the memory of GPU %d, the plan runs on GPU %d", what,
                   t->name ? t->name : "", t->memory_id, plan->device.ordinal);
  if (t->datatype == INFERD_TYPE_BYTES)
    return err_new(INFERD_ERROR_UNSUPPORTED, "%s '%s': BYTES tensors must be in host memory", what, t->name);
  return NULL;
}

inferd_error *inferd_context_run_async(inferd_context *ctx, int batch, const inferd_tensor *inputs, int input_count,
                                       inferd_tensor *outputs, int output_count) {
  inferd_plan *plan = ctx->plan;
  if (ctx->pending)
    return err_new(INFERD_ERROR_INVALID_ARG, "the context's last run was not waited for (inferd_context_wait)");
  if (!plan->dynamic_batch && batch != 1)
    return err_new(INFERD_ERROR_INVALID_ARG, "the model has no batch dimension; batch must be 1, not %d", batch);
  if (batch < 1 || batch > plan->max_batch_size)
    return err_new(INFERD_ERROR_INVALID_ARG, "batch size %d is outside [1, %d]", batch, plan->max_batch_size);
  memset(ctx->input_ptrs, 0, (size_t)plan->n_inputs * sizeof(void *));
  memset(ctx->input_kinds, 0, (size_t)plan->n_inputs * sizeof(inferd_memory_kind));
  memset(ctx->output_kinds, 0, (size_t)plan->n_outputs * sizeof(inferd_memory_kind));
  memset(ctx->output_ptrs, 0, (size_t)plan->n_outputs * sizeof(void *));
  for (int i = 0; i < input_count; i++) {
    int k = find_info(plan->inputs, plan->n_inputs, inputs[i].name);
    if (k < 0)
      return err_new(INFERD_ERROR_INVALID_ARG, "the model has no input named '%s'",
                     inputs[i].name ? inputs[i].name : "");
    if (ctx->input_ptrs[k]) return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' given twice", inputs[i].name);
    ERR_TRY(check_input(plan, &plan->inputs[k], &inputs[i], batch));
    ERR_TRY(check_memory(plan, &inputs[i], "input"));
    ctx->input_kinds[k] = inputs[i].memory == INFERD_MEMORY_GPU ? INFERD_MEMORY_GPU : inputs[i].memory;
    if (ctx->input_views[k]) {
      if (!inputs[i].data && inputs[i].byte_size)
        return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' has no data", inputs[i].name);
      ERR_TRY(bytes_tensor_read(plan->inputs[k].name, "data", inputs[i].data, inputs[i].byte_size,
                                info_count(&plan->inputs[k], batch, plan->dynamic_batch), ctx->input_views[k]));
      ctx->input_ptrs[k] = ctx->input_views[k];
    } else {
      ctx->input_ptrs[k] = inputs[i].data;
    }
  }
  for (int k = 0; k < plan->n_inputs; k++)
    if (!ctx->input_ptrs[k])
      return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' is missing%s", plan->inputs[k].name,
                     find_default(plan, k) ? " (it is optional: pass its default, inferd_plan_input_default)" : "");
  for (int i = 0; i < output_count; i++) {
    int k = find_info(plan->outputs, plan->n_outputs, outputs[i].name);
    if (k < 0)
      return err_new(INFERD_ERROR_INVALID_ARG, "the model has no output named '%s'",
                     outputs[i].name ? outputs[i].name : "");
    const inferd_tensor_info *info = &plan->outputs[k];
    if (ctx->output_ptrs[k]) return err_new(INFERD_ERROR_INVALID_ARG, "output '%s' asked for twice", info->name);
    ERR_TRY(check_memory(plan, &outputs[i], "output"));
    ctx->output_kinds[k] = outputs[i].memory;
    size_t need = info_bytes(info, batch, plan->dynamic_batch);
    if (ctx->outputs[k].views) {
      need = 0;
      outputs[i].data = ctx->outputs[k].views; /* replaced by the serialized tensor after the run */
    } else if (!outputs[i].data || outputs[i].byte_size < need)
      return err_new(INFERD_ERROR_INVALID_ARG, "output '%s' needs %zu bytes, %zu given", info->name, need,
                     outputs[i].data ? outputs[i].byte_size : 0);
    outputs[i].datatype = info->datatype;
    outputs[i].rank = info->rank;
    for (int d = 0; d < info->rank; d++)
      outputs[i].dims[d] = (d == 0 && plan->dynamic_batch) ? batch : info->dims[d];
    outputs[i].byte_size = need;
    ctx->output_ptrs[k] = outputs[i].data;
  }
  const backend_io io = {.inputs = ctx->input_ptrs,
                         .outputs = ctx->output_ptrs,
                         .input_kinds = ctx->input_kinds,
                         .output_kinds = ctx->output_kinds};
  ERR_TRY(plan->backend->execute(ctx->impl, batch, &io));
  ctx->pending = true;
  ctx->pending_batch = batch;
  ctx->pending_tensors = outputs;
  ctx->pending_outputs = output_count;
  return NULL;
}

inferd_error *inferd_context_copy_async(inferd_context *ctx, const inferd_copy *copies, int count) {
  if (count < 0 || (count > 0 && !copies))
    return err_new(INFERD_ERROR_INVALID_ARG, "copy_async: %d copies, table %p", count, (const void *)copies);
  const inferd_backend_ops *b = ctx->plan->backend;
  if (b->copy_async && backend_takes(b, INFERD_MEMORY_GPU)) {
    if (count == 0) return NULL;
    ERR_TRY(b->copy_async(ctx->impl, copies, count));
    ctx->copies_pending = true;
    return NULL;
  }
  for (int i = 0; i < count; i++)
    if (copies[i].size) memmove(copies[i].dst, copies[i].src, copies[i].size);
  return NULL;
}

inferd_error *inferd_context_wait(inferd_context *ctx) {
  inferd_plan *plan = ctx->plan;
  if (!ctx->pending) {
    if (!ctx->copies_pending) return NULL;
    ctx->copies_pending = false;
    return plan->backend->wait ? plan->backend->wait(ctx->impl) : NULL;
  }
  ctx->pending = false;
  ctx->copies_pending = false;
  if (plan->backend->wait) ERR_TRY(plan->backend->wait(ctx->impl));
  inferd_tensor *outputs = ctx->pending_tensors;
  for (int i = 0; i < ctx->pending_outputs; i++) {
    int k = find_info(plan->outputs, plan->n_outputs, outputs[i].name);
    if (ctx->outputs[k].views)
      ERR_TRY(bytes_output_write(&ctx->outputs[k], &plan->outputs[k],
                                 info_count(&plan->outputs[k], ctx->pending_batch, plan->dynamic_batch), &outputs[i]));
  }
  return NULL;
}

inferd_error *inferd_context_run(inferd_context *ctx, int batch, const inferd_tensor *inputs, int input_count,
                                 inferd_tensor *outputs, int output_count) {
  ERR_TRY(inferd_context_run_async(ctx, batch, inputs, input_count, outputs, output_count));
  return inferd_context_wait(ctx);
}

void inferd_context_idle(inferd_context *ctx) {
  if (ctx->plan->backend->thread_idle) ctx->plan->backend->thread_idle(ctx->impl);
}

void inferd_context_set_profiling(inferd_context *ctx, bool enabled) {
  if (ctx->plan->backend->set_profiling) ctx->plan->backend->set_profiling(ctx->impl, enabled);
}

int inferd_context_profile(const inferd_context *ctx, inferd_profile_entry *entries, int capacity) {
  const inferd_backend_ops *b = ctx->plan->backend;
  return b->profile ? b->profile(ctx->impl, entries, capacity) : 0;
}
