/* Transpose, Concat, Pad, Gather, Slice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit/engine/ops_test.h"

static int32_t iota24[24];

static void test_transpose(void **state) {
  (void)state;
  for (int i = 0; i < 24; i++) iota24[i] = i;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_INT32, DIMS(2, 3, 4));
  int n = t_node(g, IR_OP_Transpose, "perm", INS(x), 1);
  t_attr_ints(g, n, "perm", 3, (int64_t[]){2, 0, 1});
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_INT32, "[4,2,3]");
  const int32_t want[] = {0, 4, 8, 12, 16, 20, 1, 5, 9, 13, 17, 21, 2, 6, 10, 14, 18, 22, 3, 7, 11, 15, 19, 23};
  t_run_check_bytes(g, n, 1, (const void *[]){iota24}, want, sizeof(want));
  n = t_node(g, IR_OP_Transpose, "reverse", INS(x), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_INT32, "[4,3,2]");
  n = t_node(g, IR_OP_Transpose, "not_perm", INS(x), 1);
  t_attr_ints(g, n, "perm", 3, (int64_t[]){0, 0, 1});
  t_expect_error(g, n, "not a permutation");
  n = t_node(g, IR_OP_Transpose, "short", INS(x), 1);
  t_attr_ints(g, n, "perm", 2, (int64_t[]){0, 1});
  t_expect_error(g, n, "perm has 2 entries");
  ir_graph_delete(g);
}

static void test_concat(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int a = t_input(g, "a", INFERD_TYPE_FP32, DIMS(-1, 2));
  int b = t_input(g, "b", INFERD_TYPE_FP32, DIMS(-1, 1));
  int c = t_input(g, "c", INFERD_TYPE_FP32, DIMS(3, 2));
  int n = t_node(g, IR_OP_Concat, "cols", INS(a, b), 1);
  t_attr_int(g, n, "axis", -1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[N,3]");
  t_run_check_f32(g, n, 2, (const void *[]){(float[]){1, 2, 3, 4}, (float[]){9, 8}}, (const float[]){1, 2, 9, 3, 4, 8},
                  6);
  n = t_node(g, IR_OP_Concat, "batches", INS(a, a), 1);
  t_attr_int(g, n, "axis", 0);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[2N,2]");
  n = t_node(g, IR_OP_Concat, "mixed", INS(a, c), 1);
  t_attr_int(g, n, "axis", 0);
  t_expect_error(g, n, "batch-dependent and fixed");
  n = t_node(g, IR_OP_Concat, "mismatch", INS(a, b), 1);
  t_attr_int(g, n, "axis", 0);
  t_expect_error(g, n, "differ outside axis 0");
  n = t_node(g, IR_OP_Concat, "no_axis", INS(a, b), 1);
  t_expect_error(g, n, "axis is required");
  int i = t_input(g, "i", INFERD_TYPE_INT32, DIMS(-1, 2));
  n = t_node(g, IR_OP_Concat, "types", INS(a, i), 1);
  t_attr_int(g, n, "axis", 1);
  t_expect_error(g, n, "same type");
  ir_graph_delete(g);
}

static void test_pad(void **state) {
  (void)state;
  const float a[] = {0, 1, 2, 3, 4, 5};
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(2, 3));
  int pads = t_const_i64(g, "pads", 4, (int64_t[]){1, 2, 0, 1});
  int value = t_const(g, "value", INFERD_TYPE_FP32, SCALAR, (float[]){-1});
  int n = t_node(g, IR_OP_Pad, "constant", INS(x, pads, value), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[3,6]");
  t_run_check_f32(g, n, 1, (const void *[]){a},
                  (const float[]){-1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 2, -1, -1, -1, 3, 4, 5, -1}, 18);
  n = t_node(g, IR_OP_Pad, "reflect", INS(x, pads), 1);
  t_attr_string(g, n, "mode", "reflect");
  t_expect_ok(g, n);
  t_run_check_f32(g, n, 1, (const void *[]){a}, (const float[]){5, 4, 3, 4, 5, 4, 2, 1, 0, 1, 2, 1, 5, 4, 3, 4, 5, 4},
                  18);
  int pads2 = t_const_i64(g, "pads2", 4, (int64_t[]){0, 1, 1, 2});
  n = t_node(g, IR_OP_Pad, "edge", INS(x, pads2), 1);
  t_attr_string(g, n, "mode", "edge");
  t_expect_ok(g, n);
  t_run_check_f32(g, n, 1, (const void *[]){a}, (const float[]){0, 0, 1, 2, 2, 2, 3, 3, 4, 5, 5, 5, 3, 3, 4, 5, 5, 5},
                  18);
  /* Pads wider than the dim reflect back and forth, as numpy does. */
  int wide = t_const_i64(g, "wide", 4, (int64_t[]){0, 3, 0, 3});
  n = t_node(g, IR_OP_Pad, "wide_reflect", INS(x, wide), 1);
  t_attr_string(g, n, "mode", "reflect");
  t_expect_ok(g, n);
  t_run_check_f32(g, n, 1, (const void *[]){a}, (const float[]){1, 2, 1, 0, 1, 2, 1, 0, 1, 4, 5, 4, 3, 4, 5, 4, 3, 4},
                  18);
  /* Negative pads crop. */
  int crop = t_const_i64(g, "crop", 4, (int64_t[]){0, -1, -1, 0});
  n = t_node(g, IR_OP_Pad, "crop", INS(x, crop), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[1,2]");
  t_run_check_f32(g, n, 1, (const void *[]){a}, (const float[]){1, 2}, 2);

  n = t_node(g, IR_OP_Pad, "wrap", INS(x, pads), 1);
  t_attr_string(g, n, "mode", "wrap");
  t_expect_error(g, n, "mode 'wrap'");
  int runtime = t_input(g, "runtime_pads", INFERD_TYPE_INT64, DIMS(4));
  n = t_node(g, IR_OP_Pad, "unknown", INS(x, runtime), 1);
  t_expect_error(g, n, "must be known when the model is loaded");
  int short_pads = t_const_i64(g, "short_pads", 2, (int64_t[]){1, 1});
  n = t_node(g, IR_OP_Pad, "short", INS(x, short_pads), 1);
  t_expect_error(g, n, "2 pads for 2 axes");
  int xb = t_input(g, "xb", INFERD_TYPE_FP32, DIMS(-1, 3));
  n = t_node(g, IR_OP_Pad, "batch", INS(xb, pads), 1);
  t_expect_error(g, n, "depends on the batch size");
  ir_graph_delete(g);

  /* Opset 2: pads and value as attributes. */
  g = t_graph(2);
  x = t_input(g, "x", INFERD_TYPE_INT32, DIMS(2, 3));
  n = t_node(g, IR_OP_Pad, "old", INS(x), 1);
  t_attr_ints(g, n, "pads", 4, (int64_t[]){0, 1, 0, 0});
  t_attr_float(g, n, "value", 7);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_INT32, "[2,4]");
  t_run_check_bytes(g, n, 1, (const void *[]){(int32_t[]){0, 1, 2, 3, 4, 5}}, (int32_t[]){7, 0, 1, 2, 7, 3, 4, 5}, 32);
  ir_graph_delete(g);
}

static void test_gather(void **state) {
  (void)state;
  for (int i = 0; i < 24; i++) iota24[i] = i;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_INT32, DIMS(2, 3, 4));
  int idx = t_const_i64(g, "idx", 2, (int64_t[]){-1, 0});
  int idx2d = t_const(g, "idx2d", INFERD_TYPE_INT32, DIMS(2, 2), (int32_t[]){3, 0, 1, 1});
  int runtime = t_input(g, "runtime", INFERD_TYPE_INT64, DIMS(1));
  int n = t_node(g, IR_OP_Gather, "axis1_neg", INS(x, idx), 1);
  t_attr_int(g, n, "axis", 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_INT32, "[2,2,4]");
  t_run_check_bytes(g, n, 1, (const void *[]){iota24},
                    (int32_t[]){8, 9, 10, 11, 0, 1, 2, 3, 20, 21, 22, 23, 12, 13, 14, 15}, 64);
  n = t_node(g, IR_OP_Gather, "matrix", INS(x, idx2d), 1);
  t_attr_int(g, n, "axis", -1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_INT32, "[2,3,2,2]");
  n = t_node(g, IR_OP_Gather, "const_oob", INS(x, idx2d), 1);
  t_expect_error(g, n, "index 3 is out of range");
  n = t_node(g, IR_OP_Gather, "runtime_oob", INS(x, runtime), 1);
  t_expect_ok(g, n);
  t_run_expect_error(g, n, 1, (const void *[]){iota24, (int64_t[]){-3}}, "out of range");
  int fidx = t_input(g, "fidx", INFERD_TYPE_FP32, DIMS(1));
  n = t_node(g, IR_OP_Gather, "bad_index_type", INS(x, fidx), 1);
  t_expect_error(g, n, "supported: INT32, INT64");
  ir_graph_delete(g);
}

static void test_slice(void **state) {
  (void)state;
  for (int i = 0; i < 24; i++) iota24[i] = i;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_INT32, DIMS(2, 3, 4));
  int starts = t_const_i64(g, "starts", 3, (int64_t[]){1, -1, 3});
  int ends = t_const_i64(g, "ends", 3, (int64_t[]){1000, INT64_MIN, 0});
  int axes = t_const_i64(g, "axes", 3, (int64_t[]){0, 1, -1});
  int steps = t_const_i64(g, "steps", 3, (int64_t[]){1, -1, -2});
  int n = t_node(g, IR_OP_Slice, "negative_steps", INS(x, starts, ends, axes, steps), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_INT32, "[1,3,2]");
  t_run_check_bytes(g, n, 1, (const void *[]){iota24}, (int32_t[]){23, 21, 19, 17, 15, 13}, 24);
  int s2 = t_const_i64(g, "s2", 1, (int64_t[]){10});
  int e2 = t_const_i64(g, "e2", 1, (int64_t[]){20});
  n = t_node(g, IR_OP_Slice, "empty", INS(x, s2, e2), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_INT32, "[0,3,4]");
  int zero_step = t_const_i64(g, "zero_step", 1, (int64_t[]){0});
  n = t_node(g, IR_OP_Slice, "step0", INS(x, s2, e2, -1, zero_step), 1);
  t_expect_error(g, n, "step 0");
  int runtime = t_input(g, "runtime", INFERD_TYPE_INT64, DIMS(1));
  n = t_node(g, IR_OP_Slice, "unknown", INS(x, runtime, e2), 1);
  t_expect_error(g, n, "must be known when the model is loaded");
  int dup = t_const_i64(g, "dup", 2, (int64_t[]){0, 0});
  n = t_node(g, IR_OP_Slice, "dup_axes", INS(x, dup, dup, dup), 1);
  t_expect_error(g, n, "appears twice");

  /* The batch dim may only be taken whole. */
  int xb = t_input(g, "xb", INFERD_TYPE_FP32, DIMS(-1, 4));
  int zero = t_const_i64(g, "zero", 1, (int64_t[]){0});
  int big = t_const_i64(g, "big", 1, (int64_t[]){INT64_MAX});
  int one = t_const_i64(g, "one", 1, (int64_t[]){1});
  n = t_node(g, IR_OP_Slice, "whole_batch", INS(xb, zero, big), 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[N,4]");
  n = t_node(g, IR_OP_Slice, "part_batch", INS(xb, zero, one), 1);
  t_expect_error(g, n, "depends on the batch size");
  ir_graph_delete(g);

  /* Opset 9: attributes. */
  g = t_graph(9);
  x = t_input(g, "x", INFERD_TYPE_INT32, DIMS(2, 3, 4));
  n = t_node(g, IR_OP_Slice, "old", INS(x), 1);
  t_attr_ints(g, n, "starts", 2, (int64_t[]){1, 0});
  t_attr_ints(g, n, "ends", 2, (int64_t[]){3, -2});
  t_attr_ints(g, n, "axes", 2, (int64_t[]){1, 2});
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_INT32, "[2,2,2]");
  t_run_check_bytes(g, n, 1, (const void *[]){iota24}, (int32_t[]){4, 5, 8, 9, 16, 17, 20, 21}, 32);
  ir_graph_delete(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_transpose), cmocka_unit_test(test_concat), cmocka_unit_test(test_pad),
      cmocka_unit_test(test_gather),    cmocka_unit_test(test_slice),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
