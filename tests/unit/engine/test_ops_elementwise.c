/* Activations and the broadcasting arithmetic ops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit/engine/ops_test.h"

static const float act_in[] = {-3, -0.5f, 0, 0.5f, 3};

static int unary(ir_graph *g, ir_op op, const char *name, int x) {
  int n = t_node(g, op, name, INS(x), 1);
  return n;
}

static void test_activations(void **state) {
  (void)state;
  ir_graph *g = t_graph(14);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(5));
  int n = unary(g, IR_OP_Relu, "relu", x);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[5]");
  t_run_check_f32(g, n, 1, (const void *[]){act_in}, (const float[]){0, 0, 0, 0.5f, 3}, 5);
  n = unary(g, IR_OP_LeakyRelu, "leaky", x);
  t_attr_float(g, n, "alpha", 0.1f);
  t_expect_ok(g, n);
  t_run_check_f32(g, n, 1, (const void *[]){act_in}, (const float[]){-0.3f, -0.05f, 0, 0.5f, 3}, 5);
  n = unary(g, IR_OP_Sigmoid, "sigmoid", x);
  t_expect_ok(g, n);
  t_run_check_f32(g, n, 1, (const void *[]){act_in},
                  (const float[]){0.04742587f, 0.37754067f, 0.5f, 0.62245933f, 0.95257413f}, 5);
  n = unary(g, IR_OP_HardSigmoid, "hard_sigmoid", x);
  t_expect_ok(g, n);
  t_run_check_f32(g, n, 1, (const void *[]){act_in}, (const float[]){0, 0.4f, 0.5f, 0.6f, 1}, 5);
  n = unary(g, IR_OP_HardSwish, "hard_swish", x);
  t_expect_ok(g, n);
  t_run_check_f32(g, n, 1, (const void *[]){act_in},
                  (const float[]){0, -0.5f * (-0.5f / 6 + 0.5f), 0, 0.5f * (0.5f / 6 + 0.5f), 3}, 5);
  n = unary(g, IR_OP_Tanh, "tanh", x);
  t_expect_ok(g, n);
  t_run_check_f32(g, n, 1, (const void *[]){act_in},
                  (const float[]){-0.99505475f, -0.46211716f, 0, 0.46211716f, 0.99505475f}, 5);
  int xi = t_input(g, "xi", INFERD_TYPE_INT32, DIMS(5));
  n = unary(g, IR_OP_Relu, "int_relu", xi);
  t_expect_error(g, n, "INT32");
  ir_graph_delete(g);
}

static void test_clip(void **state) {
  (void)state;
  /* Opset 6: bounds as attributes. */
  ir_graph *g = t_graph(6);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(5));
  int n = unary(g, IR_OP_Clip, "clip6", x);
  t_attr_float(g, n, "min", -1);
  t_attr_float(g, n, "max", 1);
  t_expect_ok(g, n);
  t_run_check_f32(g, n, 1, (const void *[]){act_in}, (const float[]){-1, -0.5f, 0, 0.5f, 1}, 5);
  ir_graph_delete(g);

  /* Opset 13: bounds as optional scalar inputs, any numeric type. */
  g = t_graph(13);
  x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(5));
  int lo = t_const(g, "lo", INFERD_TYPE_FP32, SCALAR, (float[]){0});
  int vec = t_const(g, "vec", INFERD_TYPE_FP32, DIMS(2), (float[]){0, 1});
  n = t_node(g, IR_OP_Clip, "min_only", INS(x, lo), 1);
  t_expect_ok(g, n);
  t_run_check_f32(g, n, 1, (const void *[]){act_in}, (const float[]){0, 0, 0, 0.5f, 3}, 5);
  n = t_node(g, IR_OP_Clip, "max_only", INS(x, -1, lo), 1);
  t_expect_ok(g, n);
  t_run_check_f32(g, n, 1, (const void *[]){act_in}, (const float[]){-3, -0.5f, 0, 0, 0}, 5);
  n = t_node(g, IR_OP_Clip, "vector_bound", INS(x, vec), 1);
  t_expect_error(g, n, "single value");
  int xi8 = t_input(g, "xi8", INFERD_TYPE_INT8, DIMS(4));
  int lo8 = t_const(g, "lo8", INFERD_TYPE_INT8, SCALAR, (int8_t[]){-2});
  int hi8 = t_const(g, "hi8", INFERD_TYPE_INT8, SCALAR, (int8_t[]){5});
  n = t_node(g, IR_OP_Clip, "int8", INS(xi8, lo8, hi8), 1);
  t_expect_ok(g, n);
  t_run_check_bytes(g, n, 1, (const void *[]){(int8_t[]){-128, -1, 7, 127}}, (int8_t[]){-2, -1, 5, 5}, 4);
  n = t_node(g, IR_OP_Clip, "mixed", INS(xi8, lo), 1);
  t_expect_error(g, n, "same type");
  ir_graph_delete(g);
}

static void test_broadcast_arith(void **state) {
  (void)state;
  ir_graph *g = t_graph(14);
  int a = t_input(g, "a", INFERD_TYPE_FP32, DIMS(2, 3));
  int row = t_const(g, "row", INFERD_TYPE_FP32, DIMS(3), (float[]){10, 20, 30});
  int col = t_input(g, "col", INFERD_TYPE_FP32, DIMS(2, 1));
  const float ad[] = {1, 2, 3, 4, 5, 6};
  int n = t_node(g, IR_OP_Add, "add_row", INS(a, row), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[2,3]");
  t_run_check_f32(g, n, 1, (const void *[]){ad}, (const float[]){11, 22, 33, 14, 25, 36}, 6);
  n = t_node(g, IR_OP_Sub, "sub_col", INS(col, row), 1); /* [2,1] - [3] -> [2,3] */
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[2,3]");
  t_run_check_f32(g, n, 1, (const void *[]){(float[]){1, 2}}, (const float[]){-9, -19, -29, -8, -18, -28}, 6);
  n = t_node(g, IR_OP_Div, "div", INS(a, col), 1);
  t_expect_ok(g, n);
  t_run_check_f32(g, n, 1, (const void *[]){ad, (float[]){2, 4}}, (const float[]){0.5f, 1, 1.5f, 1, 1.25f, 1.5f}, 6);

  /* Dynamic batch against a fixed trailing shape. */
  int b = t_input(g, "b", INFERD_TYPE_FP32, DIMS(-1, 1, 3));
  n = t_node(g, IR_OP_Mul, "mul_batch", INS(b, col), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[N,2,3]");
  t_run_check_f32(g, n, 1, (const void *[]){(float[]){1, 2, 3}, (float[]){1, -1}}, (const float[]){1, 2, 3, -1, -2, -3},
                  6);

  int bad = t_input(g, "bad", INFERD_TYPE_FP32, DIMS(4));
  n = t_node(g, IR_OP_Add, "no_broadcast", INS(a, bad), 1);
  t_expect_error(g, n, "cannot be broadcast");
  int batch2 = t_input(g, "batch2", INFERD_TYPE_FP32, DIMS(-1, 3));
  n = t_node(g, IR_OP_Add, "batch_vs_two", INS(batch2, a), 1);
  t_expect_error(g, n, "cannot be broadcast");
  int i32 = t_input(g, "i32", INFERD_TYPE_INT32, DIMS(3));
  n = t_node(g, IR_OP_Add, "mixed_types", INS(a, i32), 1);
  t_expect_error(g, n, "same type");
  int flag = t_input(g, "flag", INFERD_TYPE_BOOL, DIMS(3));
  n = t_node(g, IR_OP_Add, "bool_add", INS(flag, flag), 1);
  t_expect_error(g, n, "BOOL");
  ir_graph_delete(g);
}

static void test_integer_arith(void **state) {
  (void)state;
  ir_graph *g = t_graph(14);
  int a = t_input(g, "a", INFERD_TYPE_INT32, DIMS(4));
  int b = t_input(g, "b", INFERD_TYPE_INT32, DIMS(4));
  int n = t_node(g, IR_OP_Div, "div_trunc", INS(a, b), 1);
  t_expect_ok(g, n);
  t_run_check_bytes(g, n, 1, (const void *[]){(int32_t[]){7, -7, INT32_MIN, 9}, (int32_t[]){2, 2, -1, -4}},
                    (int32_t[]){3, -3, INT32_MIN, -2}, 16);
  t_run_expect_error(g, n, 1, (const void *[]){(int32_t[]){1, 2, 3, 4}, (int32_t[]){1, 0, 1, 1}}, "division by zero");
  int u = t_input(g, "u", INFERD_TYPE_UINT8, DIMS(2));
  n = t_node(g, IR_OP_Add, "u8_wrap", INS(u, u), 1);
  t_expect_ok(g, n);
  t_run_check_bytes(g, n, 1, (const void *[]){(uint8_t[]){200, 3}, (uint8_t[]){200, 3}}, (uint8_t[]){144, 6}, 2);
  int l = t_input(g, "l", INFERD_TYPE_INT64, DIMS(2));
  n = t_node(g, IR_OP_Mul, "i64", INS(l, l), 1);
  t_expect_ok(g, n);
  t_run_check_bytes(g, n, 1, (const void *[]){(int64_t[]){3000000000LL, -3}, (int64_t[]){3000000000LL, -3}},
                    (int64_t[]){9000000000000000000LL, 9}, 16);
  int d = t_input(g, "d", INFERD_TYPE_FP64, DIMS(2));
  n = t_node(g, IR_OP_Sub, "f64", INS(d, d), 1);
  t_expect_ok(g, n);
  t_run_check_bytes(g, n, 1, (const void *[]){(double[]){1e300, 2}, (double[]){1, 0.5}}, (double[]){1e300, 1.5}, 16);
  ir_graph_delete(g);
}

/* Integer arithmetic on known shape values keeps N terms where it can. */
static void test_arith_sym(void **state) {
  (void)state;
  ir_graph *g = t_graph(14);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 6, 4));
  int sn = t_node(g, IR_OP_Shape, "shape", INS(x), 1);
  t_expect_ok(g, sn);
  int shape = t_out(g, sn, 0);
  int two = t_const(g, "two", INFERD_TYPE_INT64, SCALAR, (int64_t[]){2});
  int n = t_node(g, IR_OP_Mul, "times2", INS(shape, two), 1);
  t_expect_ok(g, n);
  t_expect_sym(g, t_out(g, n, 0), "2N, 12, 8");
  n = t_node(g, IR_OP_Div, "half", INS(shape, two), 1);
  t_expect_ok(g, n);
  /* N/2 is not of the form a + bN with integers: no symbolic result. */
  ir_symint sym[8];
  int count;
  assert_false(ops_known_ints(g, t_out(g, n, 0), sym, 8, &count));
  int m = t_node(g, IR_OP_Add, "plus", INS(shape, shape), 1);
  t_expect_ok(g, m);
  t_expect_sym(g, t_out(g, m, 0), "2N, 12, 8");
  n = t_node(g, IR_OP_Div, "exact_half", INS(t_out(g, m, 0), two), 1);
  t_expect_ok(g, n);
  t_expect_sym(g, t_out(g, n, 0), "1N, 6, 4");
  n = t_node(g, IR_OP_Mul, "square", INS(shape, shape), 1);
  t_expect_ok(g, n);
  assert_false(ops_known_ints(g, t_out(g, n, 0), sym, 8, &count));
  ir_graph_delete(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_activations),   cmocka_unit_test(test_clip),      cmocka_unit_test(test_broadcast_arith),
      cmocka_unit_test(test_integer_arith), cmocka_unit_test(test_arith_sym),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
