/* The tiny model the server's unit tests serve: y = Relu(x), x FP32 [N,4]. */
#ifndef INFERD_TESTS_TINY_MODEL_H
#define INFERD_TESTS_TINY_MODEL_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "engine/ir.h"
#include "engine/onnx/onnx.h"

/* Removes a test's temporary folder `root` and what it holds: 0 when done,
 * -1 when not (cmocka's teardown convention). */
static inline int tiny_test_dir_remove(const char *root) {
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
  return system(cmd) == 0 ? 0 : -1;
}

/* Writes the model as an ONNX file at `path`. */
static inline inferd_error *tiny_relu_model_write(const char *path) {
  ir_graph *g = ir_graph_new();
  int x = ir_graph_add_value(g, "x", INFERD_TYPE_FP32), y = ir_graph_add_value(g, "y", INFERD_TYPE_FP32);
  g->values[x].has_shape = true;
  g->values[x].shape = (ir_shape){.rank = 2, .dims = {IR_DIM_BATCH, 4}};
  ir_graph_add_input(g, x);
  ir_graph_add_node(g, IR_OP_Relu, "relu", 1, &x, 1, &y);
  ir_graph_add_output(g, y);
  inferd_error *e = onnx_export_file(g, path);
  ir_graph_delete(g);
  return e;
}


/* Makes the folder `root` holding a repository `<root>/models` whose model
 * `relu` (version 1) is the tiny model; its path goes to repo. NULL when
 * done, else what failed. */
static inline inferd_error *tiny_relu_repo_make(const char *root, char *repo, size_t repo_size) {
  snprintf(repo, repo_size, "%s/models", root);
  char path[512];
  const char *const dirs[] = {"", "/models", "/models/relu", "/models/relu/1"};
  for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
    snprintf(path, sizeof(path), "%s%s", root, dirs[i]);
    if (mkdir(path, 0755) != 0) return inferd_error_create(INFERD_ERROR_INTERNAL, "mkdir failed");
  }
  snprintf(path, sizeof(path), "%s/models/relu/1/model.onnx", root);
  return tiny_relu_model_write(path);
}

#endif
