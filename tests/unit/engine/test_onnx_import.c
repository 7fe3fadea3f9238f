/* The importer on hand-made ModelProtos: graph structure, Constant nodes,
 * input shapes, and every structural error it must report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit/engine/onnx_test_util.h"

enum { FLOAT = 1, INT64 = 7, STRING = 8 };

static const float w_data[4] = {1, 2, 3, 4};

/* input x FP32 [N,4] (dims given), initializer w, Add(x, w) -> y, output y. */
static void base_model(test_model *m, const int64_t *x_dims) {
  tm_init(m);
  tm_input(m, "x", FLOAT, 2, x_dims ? x_dims : (const int64_t[]){-1, 4});
  tm_initializer(m, "w", FLOAT, 1, (const int64_t[]){4}, w_data, sizeof(w_data));
  static const char *in[] = {"x", "w"}, *out[] = {"y"};
  tm_node(m, "Add", "add", 2, in, 1, out);
  tm_output(m, "y");
}

static ir_graph *import_ok(const char *path) {
  ir_graph *g = NULL;
  inferd_error *e = onnx_import_file(path, &g);
  if (e) fail_msg("%s", inferd_error_message(e));
  return g;
}

static void test_basic_graph(void **state) {
  (void)state;
  test_model m;
  base_model(&m, NULL);
  ir_graph *g = import_ok(tm_write(&m, "basic.onnx"));
  assert_int_equal(g->opset, 13);
  assert_string_equal(g->name, "test");
  assert_int_equal(g->n_inputs, 1);
  assert_int_equal(g->n_nodes, 1);
  assert_int_equal(g->nodes[0].op, IR_OP_Add);
  assert_string_equal(g->values[g->nodes[0].inputs[1]].name, "w");
  assert_int_equal(g->values[g->nodes[0].inputs[1]].kind, IR_VALUE_CONST);
  assert_int_equal(g->values[g->outputs[0]].producer, 0);
  assert_int_equal(g->values[g->outputs[0]].use_count, 1);
  ir_graph_delete(g);
  tm_free(&m);
}

static void test_dynamic_dims(void **state) {
  (void)state;
  /* dim_param and a dimension without value on dim 0 are both the batch. */
  for (int64_t first = -3; first <= -1; first += 2) {
    test_model m;
    base_model(&m, (const int64_t[]){first, 4});
    ir_graph *g = import_ok(tm_write(&m, "dyn.onnx"));
    assert_int_equal(g->values[g->inputs[0]].shape.dims[0], IR_DIM_BATCH);
    ir_graph_delete(g);
    tm_free(&m);
  }
  test_model m;
  base_model(&m, (const int64_t[]){-1, -2});
  const char *msg = import_error(tm_write(&m, "dyn2.onnx"), INFERD_ERROR_UNSUPPORTED);
  assert_contains(msg, "'x'");
  assert_contains(msg, "dimension 1");
  assert_contains(msg, "only the first dimension may be dynamic");
  tm_free(&m);
}

static void test_input_without_shape(void **state) {
  (void)state;
  test_model m;
  tm_init(&m);
  tm_input(&m, "x", FLOAT, -1, NULL);
  static const char *in[] = {"x"}, *out[] = {"y"};
  tm_node(&m, "Relu", "r", 1, in, 1, out);
  tm_output(&m, "y");
  assert_contains(import_error(tm_write(&m, "noshape.onnx"), INFERD_ERROR_INVALID_ARG), "input 'x' has no shape");
  tm_free(&m);
}

static void test_initializer_listed_as_input(void **state) {
  (void)state;
  test_model m;
  base_model(&m, NULL);
  tm_input(&m, "w", FLOAT, 1, (const int64_t[]){4}); /* IR version 3 style */
  ir_graph *g = import_ok(tm_write(&m, "oldir.onnx"));
  assert_int_equal(g->n_inputs, 1);
  assert_int_equal(g->values[ir_graph_find_value(g, "w")].kind, IR_VALUE_CONST);
  ir_graph_delete(g);
  tm_free(&m);
}

static void test_constant_nodes(void **state) {
  (void)state;
  test_model m;
  tm_init(&m);
  tm_input(&m, "x", FLOAT, 1, (const int64_t[]){2});
  static const char *c_out[][1] = {{"c_tensor"}, {"c_float"}, {"c_floats"}, {"c_int"}, {"c_ints"}};
  Onnx__NodeProto *n = tm_node(&m, "Constant", "k0", 0, NULL, 1, c_out[0]);
  static const float two[2] = {7, 8};
  tm_attr(&m, n, "value", 4)->t = tm_tensor(&m, "", FLOAT, 1, (const int64_t[]){2}, two, sizeof(two));
  n = tm_node(&m, "Constant", "k1", 0, NULL, 1, c_out[1]);
  Onnx__AttributeProto *a = tm_attr(&m, n, "value_float", 1);
  a->has_f = 1, a->f = 2.5f;
  n = tm_node(&m, "Constant", "k2", 0, NULL, 1, c_out[2]);
  static float floats[3] = {1, 2, 3};
  a = tm_attr(&m, n, "value_floats", 6);
  a->n_floats = 3, a->floats = floats;
  n = tm_node(&m, "Constant", "k3", 0, NULL, 1, c_out[3]);
  a = tm_attr(&m, n, "value_int", 2);
  a->has_i = 1, a->i = -4;
  n = tm_node(&m, "Constant", "k4", 0, NULL, 1, c_out[4]);
  static int64_t ints[2] = {10, 20};
  a = tm_attr(&m, n, "value_ints", 7);
  a->n_ints = 2, a->ints = ints;
  static const char *in[] = {"x", "c_tensor"}, *out[] = {"y"};
  tm_node(&m, "Mul", "mul", 2, in, 1, out);
  tm_output(&m, "y");
  ir_graph *g = import_ok(tm_write(&m, "const.onnx"));
  assert_int_equal(g->n_nodes, 1); /* only Mul: Constant nodes become values */
  const ir_value *v = &g->values[ir_graph_find_value(g, "c_tensor")];
  assert_int_equal(v->kind, IR_VALUE_CONST);
  assert_memory_equal(v->data, two, sizeof(two));
  v = &g->values[ir_graph_find_value(g, "c_float")];
  assert_int_equal(v->shape.rank, 0);
  assert_true(*(const float *)v->data == 2.5f);
  v = &g->values[ir_graph_find_value(g, "c_floats")];
  assert_int_equal(v->shape.dims[0], 3);
  assert_memory_equal(v->data, floats, sizeof(floats));
  v = &g->values[ir_graph_find_value(g, "c_int")];
  assert_int_equal(v->dtype, INFERD_TYPE_INT64);
  assert_int_equal(*(const int64_t *)v->data, -4);
  v = &g->values[ir_graph_find_value(g, "c_ints")];
  assert_memory_equal(v->data, ints, sizeof(ints));
  ir_graph_delete(g);
  tm_free(&m);

  tm_init(&m);
  n = tm_node(&m, "Constant", "kstr", 0, NULL, 1, c_out[0]);
  tm_attr(&m, n, "value_string", 3)->has_s = 1;
  tm_output(&m, "c_tensor");
  const char *msg = import_error(tm_write(&m, "conststr.onnx"), INFERD_ERROR_UNSUPPORTED);
  assert_contains(msg, "kstr");
  assert_contains(msg, "value_string");
  tm_free(&m);
}

static void test_unsupported_op(void **state) {
  (void)state;
  test_model m;
  base_model(&m, NULL);
  static const char *in[] = {"y"}, *out[] = {"z"};
  tm_node(&m, "FancyAttention", "my_node", 1, in, 1, out);
  const char *msg = import_error(tm_write(&m, "op.onnx"), INFERD_ERROR_UNSUPPORTED);
  assert_contains(msg, "node 'my_node' uses operator 'FancyAttention', which inferd does not support");
  tm_free(&m);

  base_model(&m, NULL);
  tm_node(&m, "Relu", "custom", 1, in, 1, out)->domain = "com.microsoft";
  msg = import_error(tm_write(&m, "domain.onnx"), INFERD_ERROR_UNSUPPORTED);
  assert_contains(msg, "custom");
  assert_contains(msg, "com.microsoft");
  tm_free(&m);
}

static void test_unsupported_attribute(void **state) {
  (void)state;
  test_model m;
  base_model(&m, NULL);
  tm_attr(&m, m.nodes[0], "body", 5); /* GRAPH */
  const char *msg = import_error(tm_write(&m, "graphattr.onnx"), INFERD_ERROR_UNSUPPORTED);
  assert_contains(msg, "'add'");
  assert_contains(msg, "'body'");
  assert_contains(msg, "GRAPH");
  tm_free(&m);
}

static void test_unknown_input_reference(void **state) {
  (void)state;
  test_model m;
  base_model(&m, NULL);
  static const char *in[] = {"y", "later"}, *out[] = {"z"};
  tm_node(&m, "Add", "uses_later", 2, in, 1, out);
  static const char *in2[] = {"y"}, *out2[] = {"later"};
  tm_node(&m, "Relu", "defines_later", 1, in2, 1, out2);
  const char *msg = import_error(tm_write(&m, "order.onnx"), INFERD_ERROR_INVALID_ARG);
  assert_contains(msg, "uses_later");
  assert_contains(msg, "'later'");
  tm_free(&m);
}

static void test_duplicate_names(void **state) {
  (void)state;
  test_model m;
  base_model(&m, NULL);
  tm_initializer(&m, "w", FLOAT, 1, (const int64_t[]){4}, w_data, sizeof(w_data));
  assert_contains(import_error(tm_write(&m, "dup1.onnx"), INFERD_ERROR_INVALID_ARG),
                  "initializer 'w' is defined twice");
  tm_free(&m);

  base_model(&m, NULL);
  static const char *in[] = {"y"}, *out[] = {"x"};
  tm_node(&m, "Relu", "redefines", 1, in, 1, out);
  const char *msg = import_error(tm_write(&m, "dup2.onnx"), INFERD_ERROR_INVALID_ARG);
  assert_contains(msg, "redefines");
  assert_contains(msg, "'x' is already defined");
  tm_free(&m);
}

static void test_missing_output_and_opset(void **state) {
  (void)state;
  test_model m;
  base_model(&m, NULL);
  tm_output(&m, "nowhere");
  assert_contains(import_error(tm_write(&m, "out.onnx"), INFERD_ERROR_INVALID_ARG), "'nowhere'");
  tm_free(&m);

  base_model(&m, NULL);
  m.opset.domain = "ai.onnx.ml";
  assert_contains(import_error(tm_write(&m, "opset.onnx"), INFERD_ERROR_INVALID_ARG), "opset");
  tm_free(&m);

  base_model(&m, NULL);
  m.opset.domain = "ai.onnx";
  m.opset.version = 11;
  ir_graph *g = import_ok(tm_write(&m, "opset11.onnx"));
  assert_int_equal(g->opset, 11);
  ir_graph_delete(g);
  tm_free(&m);
}

static void test_omitted_inputs_and_outputs(void **state) {
  (void)state;
  test_model m;
  base_model(&m, NULL);
  static const char *in[] = {"y", "", "w"}, *out[] = {"z", ""};
  tm_node(&m, "Clip", "clip", 3, in, 2, out);
  ir_graph *g = import_ok(tm_write(&m, "omit.onnx"));
  const ir_node *n = &g->nodes[1];
  assert_int_equal(n->n_inputs, 3);
  assert_int_equal(n->inputs[1], -1);
  assert_int_equal(n->outputs[1], -1);
  ir_graph_delete(g);
  tm_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic_graph),
      cmocka_unit_test(test_dynamic_dims),
      cmocka_unit_test(test_input_without_shape),
      cmocka_unit_test(test_initializer_listed_as_input),
      cmocka_unit_test(test_constant_nodes),
      cmocka_unit_test(test_unsupported_op),
      cmocka_unit_test(test_unsupported_attribute),
      cmocka_unit_test(test_unknown_input_reference),
      cmocka_unit_test(test_duplicate_names),
      cmocka_unit_test(test_missing_output_and_opset),
      cmocka_unit_test(test_omitted_inputs_and_outputs),
  };
  return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
