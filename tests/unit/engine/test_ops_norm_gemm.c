/* BatchNormalization, Softmax, ReduceMean, Gemm, MatMul. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit/engine/ops_test.h"

static void test_batchnorm(void **state) {
  (void)state;
  ir_graph *g = t_graph(15);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 2, 1, 3));
  int s = t_const(g, "s", INFERD_TYPE_FP32, DIMS(2), (float[]){1, 1.5f});
  int b = t_const(g, "b", INFERD_TYPE_FP32, DIMS(2), (float[]){0, 1});
  int m = t_const(g, "m", INFERD_TYPE_FP32, DIMS(2), (float[]){0, 3});
  int v = t_const(g, "v", INFERD_TYPE_FP32, DIMS(2), (float[]){1, 1.5f});
  int v3 = t_const(g, "v3", INFERD_TYPE_FP32, DIMS(3), (float[]){1, 1, 1});
  int n = t_node(g, IR_OP_BatchNormalization, "bn", INS(x, s, b, m, v), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[N,2,1,3]");
  const float in[] = {-1, 0, 1, 2, 3, 4};
  t_run_check_f32(g, n, 1, (const void *[]){in}, (const float[]){-0.999995f, 0, 0.999995f, -0.22474074f, 1, 2.2247407f},
                  6);

  n = t_node(g, IR_OP_BatchNormalization, "training", INS(x, s, b, m, v), 3);
  t_expect_error(g, n, "training");
  n = t_node(g, IR_OP_BatchNormalization, "training_attr", INS(x, s, b, m, v), 1);
  t_attr_int(g, n, "training_mode", 1);
  t_expect_error(g, n, "training_mode");
  n = t_node(g, IR_OP_BatchNormalization, "var3", INS(x, s, b, m, v3), 1);
  t_expect_error(g, n, "must be [2]");
  ir_graph_delete(g);

  g = t_graph(7);
  x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(1, 2, 2));
  s = t_const(g, "s", INFERD_TYPE_FP32, DIMS(2), (float[]){1, 1});
  n = t_node(g, IR_OP_BatchNormalization, "spatial0", INS(x, s, s, s, s), 1);
  t_attr_int(g, n, "spatial", 0);
  t_expect_error(g, n, "spatial=0");
  ir_graph_delete(g);
}

/* Before opset 13 Softmax flattens to 2-D at the axis; from 13 on it
 * normalizes along that one axis. */
static void test_softmax_opsets(void **state) {
  (void)state;
  float in[8];
  for (int i = 0; i < 8; i++) in[i] = (float)i;
  ir_graph *g = t_graph(11);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(2, 2, 2));
  int n = t_node(g, IR_OP_Softmax, "old", INS(x), 1);
  t_expect_ok(g, n);
  const float flat[] = {0.032058604f, 0.08714432f, 0.23688281f, 0.6439143f,
                        0.032058604f, 0.08714432f, 0.23688281f, 0.6439143f};
  t_run_check_f32(g, n, 1, (const void *[]){in}, flat, 8);
  ir_graph_delete(g);

  g = t_graph(13);
  x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(2, 2, 2));
  n = t_node(g, IR_OP_Softmax, "new", INS(x), 1);
  t_attr_int(g, n, "axis", 1);
  t_expect_ok(g, n);
  const float axis1[] = {0.11920292f, 0.11920292f, 0.880797f, 0.880797f,
                         0.11920292f, 0.11920292f, 0.880797f, 0.880797f};
  t_run_check_f32(g, n, 1, (const void *[]){in}, axis1, 8);
  int d = t_node(g, IR_OP_Softmax, "default_last", INS(x), 1);
  t_expect_ok(g, d);
  const float last[] = {0.26894143f, 0.7310586f, 0.26894143f, 0.7310586f,
                        0.26894143f, 0.7310586f, 0.26894143f, 0.7310586f};
  t_run_check_f32(g, d, 1, (const void *[]){in}, last, 8);
  /* Large inputs must not overflow: the max is subtracted first. */
  int big = t_input(g, "big", INFERD_TYPE_FP32, DIMS(1, 2));
  int b = t_node(g, IR_OP_Softmax, "large", INS(big), 1);
  t_expect_ok(g, b);
  t_run_check_f32(g, b, 1, (const void *[]){(float[]){10000, 10000}}, (const float[]){0.5f, 0.5f}, 2);
  int bad = t_node(g, IR_OP_Softmax, "axis3", INS(x), 1);
  t_attr_int(g, bad, "axis", 3);
  t_expect_error(g, bad, "axis 3 is out of range");
  ir_graph_delete(g);
}

static void test_reduce_mean(void **state) {
  (void)state;
  const float in[] = {1, 2, 3, 4, 5, 6};
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 3));
  int n = t_node(g, IR_OP_ReduceMean, "rows", INS(x), 1);
  t_attr_ints(g, n, "axes", 1, (int64_t[]){-1});
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[N,1]");
  t_run_check_f32(g, n, 2, (const void *[]){in}, (const float[]){2, 5}, 2);
  n = t_node(g, IR_OP_ReduceMean, "cols", INS(x), 1);
  t_attr_ints(g, n, "axes", 1, (int64_t[]){0});
  t_attr_int(g, n, "keepdims", 0);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[3]");
  t_run_check_f32(g, n, 2, (const void *[]){in}, (const float[]){2.5f, 3.5f, 4.5f}, 3);
  n = t_node(g, IR_OP_ReduceMean, "all", INS(x), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[1,1]");
  t_run_check_f32(g, n, 2, (const void *[]){in}, (const float[]){3.5f}, 1);
  n = t_node(g, IR_OP_ReduceMean, "twice", INS(x), 1);
  t_attr_ints(g, n, "axes", 2, (int64_t[]){1, -1});
  t_expect_error(g, n, "appears twice");
  n = t_node(g, IR_OP_ReduceMean, "range", INS(x), 1);
  t_attr_ints(g, n, "axes", 1, (int64_t[]){2});
  t_expect_error(g, n, "out of range");
  ir_graph_delete(g);

  /* Opset 18: axes as an input, known at load; noop_with_empty_axes. */
  g = t_graph(18);
  x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(2, 3));
  int axes = t_const_i64(g, "axes", 1, (int64_t[]){1});
  int runtime_axes = t_input(g, "runtime_axes", INFERD_TYPE_INT64, DIMS(1));
  n = t_node(g, IR_OP_ReduceMean, "axes_input", INS(x, axes), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[2,1]");
  t_run_check_f32(g, n, 1, (const void *[]){in}, (const float[]){2, 5}, 2);
  n = t_node(g, IR_OP_ReduceMean, "noop", INS(x), 1);
  t_attr_int(g, n, "noop_with_empty_axes", 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[2,3]");
  t_run_check_f32(g, n, 1, (const void *[]){in}, in, 6);
  n = t_node(g, IR_OP_ReduceMean, "unknown_axes", INS(x, runtime_axes), 1);
  t_expect_error(g, n, "must be known when the model is loaded");
  ir_graph_delete(g);
}

static void test_gemm(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int a = t_input(g, "a", INFERD_TYPE_FP32, DIMS(-1, 3));
  int at = t_input(g, "at", INFERD_TYPE_FP32, DIMS(3, 2));
  int b = t_const(g, "b", INFERD_TYPE_FP32, DIMS(3, 2), (float[]){1, 0, 0, 1, 1, 1});
  int bt = t_const(g, "bt", INFERD_TYPE_FP32, DIMS(2, 3), (float[]){1, 0, 1, 0, 1, 1});
  int c = t_const(g, "c", INFERD_TYPE_FP32, DIMS(2), (float[]){1, -1});
  int c_bad = t_const(g, "c_bad", INFERD_TYPE_FP32, DIMS(3), (float[]){1, 1, 1});
  const float ad[] = {1, 2, 3, 4, 5, 6};
  const float want[] = {4, 0.5f, 7, 3.5f};

  int n = t_node(g, IR_OP_Gemm, "plain", INS(a, b, c), 1);
  t_attr_float(g, n, "alpha", 0.5f);
  t_attr_float(g, n, "beta", 2);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[N,2]");
  t_run_check_f32(g, n, 2, (const void *[]){ad}, want, 4);

  n = t_node(g, IR_OP_Gemm, "transposed", INS(at, bt, c), 1);
  t_attr_int(g, n, "transA", 1);
  t_attr_int(g, n, "transB", 1);
  t_attr_float(g, n, "alpha", 0.5f);
  t_attr_float(g, n, "beta", 2);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[2,2]");
  const float atd[] = {1, 4, 2, 5, 3, 6};
  t_run_check_f32(g, n, 1, (const void *[]){atd}, want, 4);

  n = t_node(g, IR_OP_Gemm, "inner", INS(a, bt), 1);
  t_expect_error(g, n, "inner dimensions differ");
  n = t_node(g, IR_OP_Gemm, "bias", INS(a, b, c_bad), 1);
  t_expect_error(g, n, "does not broadcast");
  int a3 = t_input(g, "a3", INFERD_TYPE_FP32, DIMS(1, 2, 3));
  n = t_node(g, IR_OP_Gemm, "rank3", INS(a3, b), 1);
  t_expect_error(g, n, "must be 2-D");
  ir_graph_delete(g);
}

static void test_matmul(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int a = t_input(g, "a", INFERD_TYPE_FP32, DIMS(2, 1, 1, 2));
  float bd[12];
  for (int i = 0; i < 12; i++) bd[i] = (float)(i - 5);
  int b = t_const(g, "b", INFERD_TYPE_FP32, DIMS(3, 2, 2), bd);
  int n = t_node(g, IR_OP_MatMul, "batched", INS(a, b), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[2,3,1,2]");
  t_run_check_f32(g, n, 1, (const void *[]){(float[]){0, 1, 2, 3}},
                  (const float[]){-3, -2, 1, 2, 5, 6, -19, -14, 1, 6, 21, 26}, 12);

  /* 1-D operands: the promoted dim is dropped again. */
  int v = t_input(g, "v", INFERD_TYPE_FP32, DIMS(2));
  int m = t_input(g, "m", INFERD_TYPE_FP32, DIMS(-1, 2));
  n = t_node(g, IR_OP_MatMul, "mat_vec", INS(m, v), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[N]");
  t_run_check_f32(g, n, 3, (const void *[]){(float[]){1, 2, 3, 4, 5, 6}, (float[]){1, -1}}, (const float[]){-1, -1, -1},
                  3);
  n = t_node(g, IR_OP_MatMul, "vec_vec", INS(v, v), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[]");
  t_run_check_f32(g, n, 1, (const void *[]){(float[]){3, 4}, (float[]){3, 4}}, (const float[]){25}, 1);

  int bad = t_input(g, "bad", INFERD_TYPE_FP32, DIMS(3, 3, 2));
  n = t_node(g, IR_OP_MatMul, "inner", INS(a, bad), 1);
  t_expect_error(g, n, "inner dimensions");
  int bb = t_input(g, "bb", INFERD_TYPE_FP32, DIMS(4, 2, 2));
  int aa = t_input(g, "aa", INFERD_TYPE_FP32, DIMS(3, 1, 2));
  n = t_node(g, IR_OP_MatMul, "batch", INS(aa, bb), 1);
  t_expect_error(g, n, "cannot be broadcast");
  ir_graph_delete(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batchnorm), cmocka_unit_test(test_softmax_opsets), cmocka_unit_test(test_reduce_mean),
      cmocka_unit_test(test_gemm),      cmocka_unit_test(test_matmul),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
