/* Flatten, Reshape, Squeeze, Unsqueeze, Identity, Dropout, Shape, Constant,
 * and the symbolic shape chains exporters emit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit/engine/ops_test.h"

static void test_flatten(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 2, 3, 4));
  int n = t_node(g, IR_OP_Flatten, "default", INS(x), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[N,24]");
  n = t_node(g, IR_OP_Flatten, "axis0", INS(x), 1);
  t_attr_int(g, n, "axis", 0);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[1,24N]");
  n = t_node(g, IR_OP_Flatten, "axis_neg", INS(x), 1);
  t_attr_int(g, n, "axis", -1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[6N,4]");
  n = t_node(g, IR_OP_Flatten, "axis_end", INS(x), 1);
  t_attr_int(g, n, "axis", 4);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[24N,1]");
  n = t_node(g, IR_OP_Flatten, "axis5", INS(x), 1);
  t_attr_int(g, n, "axis", 5);
  t_expect_error(g, n, "axis 5 is out of range");
  ir_graph_delete(g);
}

static void test_reshape(void **state) {
  (void)state;
  ir_graph *g = t_graph(14);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 2, 3, 4));
  int s = t_const_i64(g, "s1", 3, (int64_t[]){0, -1, 4});
  int n = t_node(g, IR_OP_Reshape, "copy_infer", INS(x, s), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[N,6,4]");
  float in[48];
  for (int i = 0; i < 48; i++) in[i] = (float)i;
  t_run_check_f32(g, n, 2, (const void *[]){in}, in, 48);

  s = t_const_i64(g, "s2", 2, (int64_t[]){-1, 12});
  n = t_node(g, IR_OP_Reshape, "batch_infer", INS(x, s), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[2N,12]");

  s = t_const_i64(g, "s3", 2, (int64_t[]){5, -1});
  n = t_node(g, IR_OP_Reshape, "indivisible", INS(x, s), 1);
  t_expect_error(g, n, "do not divide");
  s = t_const_i64(g, "s4", 2, (int64_t[]){-1, -1});
  n = t_node(g, IR_OP_Reshape, "two_minus_one", INS(x, s), 1);
  t_expect_error(g, n, "more than one -1");
  s = t_const_i64(g, "s5", 2, (int64_t[]){2, 12});
  n = t_node(g, IR_OP_Reshape, "count", INS(x, s), 1);
  t_expect_error(g, n, "element counts differ");
  int runtime = t_input(g, "runtime_shape", INFERD_TYPE_INT64, DIMS(2));
  n = t_node(g, IR_OP_Reshape, "unknown", INS(x, runtime), 1);
  t_expect_error(g, n, "must be known when the model is loaded");

  /* allowzero: a 0 is a real zero-sized dim, not "copy". */
  int z = t_input(g, "z", INFERD_TYPE_FP32, DIMS(0, 3, 4));
  s = t_const_i64(g, "s6", 3, (int64_t[]){3, 4, 0});
  n = t_node(g, IR_OP_Reshape, "allowzero", INS(z, s), 1);
  t_attr_int(g, n, "allowzero", 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[3,4,0]");
  s = t_const_i64(g, "s7", 2, (int64_t[]){0, -1});
  n = t_node(g, IR_OP_Reshape, "allowzero_minus_one", INS(z, s), 1);
  t_attr_int(g, n, "allowzero", 1);
  t_expect_error(g, n, "both 0 and -1");
  ir_graph_delete(g);
}

static void test_squeeze_unsqueeze(void **state) {
  (void)state;
  /* Opset 11: axes as attributes. */
  ir_graph *g = t_graph(11);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 1, 3, 1));
  int n = t_node(g, IR_OP_Squeeze, "all_ones", INS(x), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[N,3]");
  n = t_node(g, IR_OP_Squeeze, "neg", INS(x), 1);
  t_attr_ints(g, n, "axes", 1, (int64_t[]){-1});
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[N,1,3]");
  n = t_node(g, IR_OP_Squeeze, "not_one", INS(x), 1);
  t_attr_ints(g, n, "axes", 1, (int64_t[]){2});
  t_expect_error(g, n, "not 1");
  n = t_node(g, IR_OP_Squeeze, "batch", INS(x), 1);
  t_attr_ints(g, n, "axes", 1, (int64_t[]){0});
  t_expect_error(g, n, "not 1");
  n = t_node(g, IR_OP_Unsqueeze, "unsq", INS(x), 1);
  t_attr_ints(g, n, "axes", 2, (int64_t[]){0, -1});
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[1,N,1,3,1,1]");
  n = t_node(g, IR_OP_Unsqueeze, "no_axes", INS(x), 1);
  t_expect_error(g, n, "axes are required");
  n = t_node(g, IR_OP_Unsqueeze, "dup", INS(x), 1);
  t_attr_ints(g, n, "axes", 2, (int64_t[]){1, 1});
  t_expect_error(g, n, "appears twice");
  ir_graph_delete(g);

  /* Opset 13: axes as an input that must be known at load. */
  g = t_graph(13);
  x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(3, 4));
  int axes = t_const_i64(g, "axes", 2, (int64_t[]){1, 3});
  int runtime = t_input(g, "runtime_axes", INFERD_TYPE_INT64, DIMS(1));
  n = t_node(g, IR_OP_Unsqueeze, "unsq13", INS(x, axes), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[3,1,4,1]");
  float in[12];
  for (int i = 0; i < 12; i++) in[i] = (float)i;
  t_run_check_f32(g, n, 1, (const void *[]){in}, in, 12);
  int sq = t_node(g, IR_OP_Squeeze, "sq13", INS(t_out(g, n, 0), axes), 1);
  t_expect_ok(g, sq);
  t_expect_shape(g, t_out(g, sq, 0), INFERD_TYPE_FP32, "[3,4]");
  n = t_node(g, IR_OP_Unsqueeze, "unknown", INS(x, runtime), 1);
  t_expect_error(g, n, "must be known when the model is loaded");
  ir_graph_delete(g);
}

static void test_identity_dropout(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_INT16, DIMS(-1, 2));
  int n = t_node(g, IR_OP_Identity, "id", INS(x), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_INT16, "[N,2]");
  t_run_check_bytes(g, n, 2, (const void *[]){(int16_t[]){1, -2, 3, -4}}, (int16_t[]){1, -2, 3, -4}, 8);

  int f = t_input(g, "f", INFERD_TYPE_FP32, DIMS(3));
  int ratio = t_const(g, "ratio", INFERD_TYPE_FP32, SCALAR, (float[]){0.5f});
  int zero = t_const(g, "zero", INFERD_TYPE_FP32, SCALAR, (float[]){0});
  int yes = t_const(g, "yes", INFERD_TYPE_BOOL, SCALAR, (uint8_t[]){1});
  int no = t_const(g, "no", INFERD_TYPE_BOOL, SCALAR, (uint8_t[]){0});
  int runtime = t_input(g, "runtime_flag", INFERD_TYPE_BOOL, SCALAR);
  n = t_node(g, IR_OP_Dropout, "inference", INS(f, ratio, no), 2);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 1), INFERD_TYPE_BOOL, "[3]");
  void *out[4];
  assert_null(t_run(g, n, 1, (const void *[]){(float[]){1, 2, 3}}, out));
  assert_memory_equal(out[0], ((float[]){1, 2, 3}), 12);
  assert_memory_equal(out[1], ((uint8_t[]){1, 1, 1}), 3);
  free(out[0]);
  free(out[1]);
  n = t_node(g, IR_OP_Dropout, "train_zero", INS(f, zero, yes), 1);
  t_expect_ok(g, n);
  n = t_node(g, IR_OP_Dropout, "train_random", INS(f, ratio, yes), 1);
  t_expect_error(g, n, "training-mode dropout");
  n = t_node(g, IR_OP_Dropout, "train_unknown", INS(f, ratio, runtime), 1);
  t_expect_error(g, n, "must be known when the model is loaded");
  ir_graph_delete(g);
}

static void test_shape_constant(void **state) {
  (void)state;
  ir_graph *g = t_graph(15);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-2, 3, 4));
  int n = t_node(g, IR_OP_Shape, "shape", INS(x), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_INT64, "[3]");
  t_expect_sym(g, t_out(g, n, 0), "2N, 3, 4");
  t_run_check_bytes(g, n, 5, (const void *[]){NULL}, (int64_t[]){10, 3, 4}, 24);
  n = t_node(g, IR_OP_Shape, "tail", INS(x), 1);
  t_attr_int(g, n, "start", -2);
  t_expect_ok(g, n);
  t_expect_sym(g, t_out(g, n, 0), "3, 4");
  t_run_check_bytes(g, n, 5, (const void *[]){NULL}, (int64_t[]){3, 4}, 16);
  n = t_node(g, IR_OP_Shape, "clipped", INS(x), 1);
  t_attr_int(g, n, "start", -10);
  t_attr_int(g, n, "end", 1);
  t_expect_ok(g, n);
  t_expect_sym(g, t_out(g, n, 0), "2N");
  n = t_node(g, IR_OP_Constant, "const", 0, NULL, 1);
  t_expect_error(g, n, "Constant");
  ir_graph_delete(g);
}

/*
 * The PyTorch export of x.view(x.size(0), -1):
 *   Shape -> Gather(0) -> Unsqueeze -> Concat([.., -1]) -> Reshape.
 * The target is [N, -1] symbolically, so the Reshape keeps the batch.
 */
static void test_pytorch_flatten_chain(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 2, 2, 3));
  int zero = t_const(g, "zero", INFERD_TYPE_INT64, SCALAR, (int64_t[]){0});
  int axes = t_const_i64(g, "axes", 1, (int64_t[]){0});
  int minus_one = t_const_i64(g, "minus_one", 1, (int64_t[]){-1});
  int shape = t_node(g, IR_OP_Shape, "shape", INS(x), 1);
  int gather = t_node(g, IR_OP_Gather, "gather", INS(t_out(g, shape, 0), zero), 1);
  int unsq = t_node(g, IR_OP_Unsqueeze, "unsqueeze", INS(t_out(g, gather, 0), axes), 1);
  int concat = t_node(g, IR_OP_Concat, "concat", INS(t_out(g, unsq, 0), minus_one), 1);
  t_attr_int(g, concat, "axis", 0);
  int cast = t_node(g, IR_OP_Cast, "cast", INS(t_out(g, concat, 0)), 1);
  t_attr_int(g, cast, "to", 7);
  int reshape = t_node(g, IR_OP_Reshape, "reshape", INS(x, t_out(g, cast, 0)), 1);
  assert_null(ir_infer_shapes(g));
  t_expect_shape(g, t_out(g, gather, 0), INFERD_TYPE_INT64, "[]");
  t_expect_sym(g, t_out(g, gather, 0), "1N");
  t_expect_sym(g, t_out(g, unsq, 0), "1N");
  t_expect_sym(g, t_out(g, concat, 0), "1N, -1");
  t_expect_sym(g, t_out(g, cast, 0), "1N, -1");
  t_expect_shape(g, t_out(g, reshape, 0), INFERD_TYPE_FP32, "[N,12]");

  /* The same chain building [N*4, 3] with arithmetic in the middle. */
  int four = t_const(g, "four", INFERD_TYPE_INT64, SCALAR, (int64_t[]){4});
  int mul = t_node(g, IR_OP_Mul, "mul", INS(t_out(g, gather, 0), four), 1);
  int unsq2 = t_node(g, IR_OP_Unsqueeze, "unsqueeze2", INS(t_out(g, mul, 0), axes), 1);
  int last = t_node(g, IR_OP_Slice, "last",
                    INS(t_out(g, shape, 0), minus_one, t_const_i64(g, "big", 1, (int64_t[]){INT64_MAX})), 1);
  int concat2 = t_node(g, IR_OP_Concat, "concat2", INS(t_out(g, unsq2, 0), t_out(g, last, 0)), 1);
  t_attr_int(g, concat2, "axis", 0);
  int reshape2 = t_node(g, IR_OP_Reshape, "reshape2", INS(x, t_out(g, concat2, 0)), 1);
  assert_null(ir_infer_shapes(g));
  t_expect_sym(g, t_out(g, last, 0), "3");
  t_expect_sym(g, t_out(g, concat2, 0), "4N, 3");
  t_expect_shape(g, t_out(g, reshape2, 0), INFERD_TYPE_FP32, "[4N,3]");

  /* N + 1 cannot be a dim. */
  int one = t_const(g, "one", INFERD_TYPE_INT64, SCALAR, (int64_t[]){1});
  int add = t_node(g, IR_OP_Add, "add", INS(t_out(g, gather, 0), one), 1);
  int unsq3 = t_node(g, IR_OP_Unsqueeze, "unsqueeze3", INS(t_out(g, add, 0), axes), 1);
  int bad = t_node(g, IR_OP_Reshape, "bad_reshape", INS(x, t_out(g, unsq3, 0)), 1);
  t_expect_ok(g, add);
  t_expect_ok(g, unsq3);
  t_expect_error(g, bad, "cannot represent");
  ir_graph_delete(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_flatten),           cmocka_unit_test(test_reshape),
      cmocka_unit_test(test_squeeze_unsqueeze), cmocka_unit_test(test_identity_dropout),
      cmocka_unit_test(test_shape_constant),    cmocka_unit_test(test_pytorch_flatten_chain),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
