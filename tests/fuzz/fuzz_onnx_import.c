/*
 * ONNX models from untrusted bytes: the protobuf wire reader and importer
 * (onnx_import_buffer: initializers, attributes, the graph's names and
 * types) and shape inference over what imports (every op's shape rule,
 * constant folding included), as a model load runs them before any backend
 * sees the graph.
 */
#include "engine/onnx/onnx.h"
#include "fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ir_graph *g = NULL;
  inferd_error *err = onnx_import_buffer(data, size, &g);
  if (err) {
    FUZZ_CHECK(g == NULL);
    inferd_error_delete(err);
    return 0;
  }
  err = ir_infer_shapes(g);
  if (err) inferd_error_delete(err);
  ir_graph_delete(g);
  return 0;
}
