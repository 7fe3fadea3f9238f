/* Files that are not ONNX, or are ONNX cut short: always an error that names
 * the file, never a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit/engine/onnx_test_util.h"

/* A small valid model with a 1 KiB initializer, so cuts land in every part:
 * header, opset, nodes, the initializer's header and its raw_data. */
static const char *write_valid_model(const char *name) {
  ir_graph *g = ir_graph_new();
  g->name = mem_pool_strdup(g->pool, "cut");
  int x = ir_graph_add_value(g, "x", INFERD_TYPE_FP32);
  g->values[x].has_shape = true;
  g->values[x].shape = (ir_shape){.rank = 2, .dims = {IR_DIM_BATCH, 256}};
  ir_graph_add_input(g, x);
  float *w;
  int wid;
  assert_null(ir_graph_add_const_alloc(g, "w", INFERD_TYPE_FP32, &(ir_shape){.rank = 1, .dims = {256}}, (void **)&w,
                                       &wid));
  for (int i = 0; i < 256; i++) w[i] = (float)i;
  int y = ir_graph_add_value(g, "y", INFERD_TYPE_FP32);
  ir_graph_add_node(g, IR_OP_Add, "add", 2, (const int[]){x, wid}, 1, &y);
  ir_attr *note = ir_node_add_attr(g, 0, "note", IR_ATTR_STRING);
  note->s = "x";
  note->s_len = 1;
  ir_graph_add_output(g, y);
  const char *path = test_path(name);
  assert_null(onnx_export_file(g, path));
  ir_graph_delete(g);
  return path;
}

static void test_valid_model_imports(void **state) {
  (void)state;
  ir_graph *g;
  assert_null(onnx_import_file(write_valid_model("valid.onnx"), &g));
  ir_graph_delete(g);
}

static void test_truncated_everywhere(void **state) {
  (void)state;
  size_t len;
  uint8_t *bytes = read_bytes(write_valid_model("whole.onnx"), &len);
  const char *cut = test_path("cut.onnx");
  int truncated_messages = 0;
  for (size_t at = 1; at < len; at++) {
    write_bytes(cut, bytes, at);
    ir_graph *g = NULL;
    inferd_error *e = onnx_import_file(cut, &g);
    if (!e) fail_msg("the file cut at %zu of %zu bytes was accepted", at, len);
    assert_null(g);
    assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_INVALID_ARG);
    const char *msg = inferd_error_message(e);
    assert_contains(msg, cut);
    if (strstr(msg, "truncated")) {
      truncated_messages++;
      assert_contains(msg, "offset");
    }
    inferd_error_delete(e);
  }
  /* Most cuts land inside the graph, which reports the offset. */
  assert_true(truncated_messages > (int)len / 2);
  free(bytes);
}

static void test_not_onnx(void **state) {
  (void)state;
  const char *text = test_path("text.onnx");
  const char hello[] = "hello, this is not a model\n";
  write_bytes(text, hello, sizeof(hello) - 1);
  assert_contains(import_error(text, INFERD_ERROR_INVALID_ARG), "not an ONNX model");

  const char *empty = test_path("empty.onnx");
  write_bytes(empty, "", 0);
  assert_contains(import_error(empty, INFERD_ERROR_INVALID_ARG), "empty");

  /* A valid protobuf without a graph (a lone ir_version field). */
  const uint8_t no_graph[] = {0x08, 0x08};
  const char *ng = test_path("nograph.onnx");
  write_bytes(ng, no_graph, sizeof(no_graph));
  assert_contains(import_error(ng, INFERD_ERROR_INVALID_ARG), "no graph");

  /* Random bytes, many seeds: never accepted, never a crash. */
  uint64_t s = 42;
  uint8_t noise[512];
  const char *rnd = test_path("random.onnx");
  for (int round = 0; round < 200; round++) {
    for (size_t i = 0; i < sizeof(noise); i++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      noise[i] = (uint8_t)(s >> 56);
    }
    write_bytes(rnd, noise, 1 + (size_t)round * 2);
    ir_graph *g = NULL;
    inferd_error *e = onnx_import_file(rnd, &g);
    if (!e) ir_graph_delete(g);
    inferd_error_delete(e);
  }

  assert_int_equal(inferd_error_code_of(NULL), INFERD_ERROR_UNKNOWN);
  ir_graph *g = NULL;
  inferd_error *e = onnx_import_file(test_path("missing.onnx"), &g);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_NOT_FOUND);
  inferd_error_delete(e);

  e = onnx_import_buffer(hello, sizeof(hello) - 1, &g);
  assert_non_null(e);
  assert_contains(inferd_error_message(e), "not an ONNX model");
  inferd_error_delete(e);
}

static void test_corrupt_length_inside(void **state) {
  (void)state;
  /* Graph field claims more bytes than its enclosing model holds: the model
   * is {graph: {name: "g"}} with the graph length bumped past the file. */
  const uint8_t bad[] = {0x3a, 0x7f, 0x12, 0x01, 'g'};
  const char *path = test_path("badlen.onnx");
  write_bytes(path, bad, sizeof(bad));
  const char *msg = import_error(path, INFERD_ERROR_INVALID_ARG);
  assert_contains(msg, "truncated");
  assert_contains(msg, "offset 0");
  /* Inner name length too long for the graph, though the file is longer. */
  const uint8_t bad2[] = {0x3a, 0x03, 0x12, 0x09, 'g', 0x08, 0x08, 0x08, 0x08};
  write_bytes(path, bad2, sizeof(bad2));
  assert_contains(import_error(path, INFERD_ERROR_INVALID_ARG), "corrupt");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_model_imports),
      cmocka_unit_test(test_truncated_everywhere),
      cmocka_unit_test(test_not_onnx),
      cmocka_unit_test(test_corrupt_length_inside),
  };
  return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
