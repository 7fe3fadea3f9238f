/* The zoo's table and the writer of Triton model repository entries. */
#include "engine/zoo/zoo.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/error.h"
#include "base/files.h"
#include "engine/onnx/onnx.h"

const zoo_model zoo_models[] = {
    {"resnet50", "ResNet-50 v1.5 (torchvision), FP32, input [N,3,224,224], 1000 classes", zoo_resnet50_build},
    {NULL, NULL, NULL},
};

const zoo_model *zoo_find(const char *id) {
  for (const zoo_model *m = zoo_models; m->id; m++)
    if (strcmp(m->id, id) == 0) return m;
  return NULL;
}

/* Triton's TYPE_ names are the KServe names, except BYTES is STRING. */
static const char *triton_type(inferd_datatype type) {
  static _Thread_local char buf[32];
  snprintf(buf, sizeof(buf), "TYPE_%s", type == INFERD_TYPE_BYTES ? "STRING" : inferd_datatype_name(type));
  return buf;
}

static inferd_error *write_tensor_configs(FILE *f, const ir_graph *g, bool outputs, int max_batch_size) {
  int n = outputs ? g->n_outputs : g->n_inputs;
  const int *ids = outputs ? g->outputs : g->inputs;
  fprintf(f, "%s [\n", outputs ? "output" : "input");
  for (int i = 0; i < n; i++) {
    const ir_value *v = &g->values[ids[i]];
    bool batched = v->shape.rank > 0 && v->shape.dims[0] == IR_DIM_BATCH;
    if (max_batch_size > 0 && !batched)
      return err_new(INFERD_ERROR_INVALID_ARG, "'%s' has no batch dimension, so max_batch_size must be 0", v->name);
    fprintf(f, "  {\n    name: \"%s\"\n    data_type: %s\n    dims: [ ", v->name, triton_type(v->dtype));
    int first = max_batch_size > 0 ? 1 : 0;
    for (int d = first; d < v->shape.rank; d++) {
      if (v->shape.dims[d] < 0 && d > 0)
        return err_new(INFERD_ERROR_INVALID_ARG, "'%s' dimension %d depends on the batch", v->name, d);
      fprintf(f, "%s%" PRId64, d > first ? ", " : "", v->shape.dims[d] < 0 ? -1 : v->shape.dims[d]);
    }
    fprintf(f, " ]\n  }%s\n", i + 1 < n ? "," : "");
  }
  fprintf(f, "]\n");
  return NULL;
}

static inferd_error *write_config(const char *path, const char *name, const ir_graph *g, int max_batch_size) {
  FILE *f = fopen(path, "w");
  if (!f) return err_new(INFERD_ERROR_IO, "cannot create '%s': %s", path, strerror(errno));
  fprintf(f, "name: \"%s\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: %d\n", name, max_batch_size);
  inferd_error *e = write_tensor_configs(f, g, false, max_batch_size);
  if (!e) e = write_tensor_configs(f, g, true, max_batch_size);
  if (!e) {
    fprintf(f, "instance_group [\n  {\n    count: 1\n    kind: KIND_CPU\n  }\n]\n");
    /* Triton rejects dynamic batching on a model that does not batch. */
    if (max_batch_size > 0) fprintf(f, "dynamic_batching { }\n");
  }
  if (fclose(f) != 0 && !e) e = err_new(INFERD_ERROR_IO, "writing '%s': %s", path, strerror(errno));
  return e;
}

inferd_error *zoo_write(const zoo_model *model, const char *dir, int max_batch_size, uint64_t seed,
                        zoo_write_result *result) {
  *result = (zoo_write_result){0};
  if (max_batch_size < 0) return err_new(INFERD_ERROR_INVALID_ARG, "max_batch_size %d is negative", max_batch_size);
  char version_dir[4096], config_path[4096];
  if (snprintf(version_dir, sizeof(version_dir), "%s/%s/1", dir, model->id) >= (int)sizeof(version_dir) ||
      snprintf(result->model_path, sizeof(result->model_path), "%s/model.onnx", version_dir) >=
          (int)sizeof(result->model_path) ||
      snprintf(config_path, sizeof(config_path), "%s/%s/config.pbtxt", dir, model->id) >= (int)sizeof(config_path))
    return err_new(INFERD_ERROR_INVALID_ARG, "output folder '%s' is too long a path", dir);
  ERR_TRY(files_make_dirs(version_dir));
  ir_graph *g;
  ERR_TRY(model->build(seed, &g));
  inferd_error *e = onnx_export_file(g, result->model_path);
  if (!e) e = write_config(config_path, model->id, g, max_batch_size);
  if (!e) {
    struct stat st;
    if (stat(result->model_path, &st) == 0) result->model_bytes = (size_t)st.st_size;
    for (int v = 0; v < g->n_values; v++)
      if (g->values[v].kind == IR_VALUE_CONST) result->parameters += ir_shape_numel(&g->values[v].shape, 1);
  }
  ir_graph_delete(g);
  return e;
}
