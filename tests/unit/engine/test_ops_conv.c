#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit/engine/ops_test.h"

static float x5x5[25], x7x5[35], ones9[9];

static void fill_inputs(void) {
  for (int i = 0; i < 25; i++) x5x5[i] = (float)i;
  for (int i = 0; i < 35; i++) x7x5[i] = (float)i;
  for (int i = 0; i < 9; i++) ones9[i] = 1;
}

/* A Conv of x [1,1,H,W] with a 3x3 all-ones weight (the ONNX spec's example). */
static int conv_ones(ir_graph *g, int64_t h, int64_t w) {
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(1, 1, h, w));
  int wt = t_const(g, "w", INFERD_TYPE_FP32, DIMS(1, 1, 3, 3), ones9);
  return t_node(g, IR_OP_Conv, "conv", INS(x, wt), 1);
}

static void test_conv_padding_and_strides(void **state) {
  (void)state;
  fill_inputs();
  ir_graph *g = t_graph(13);
  int n = conv_ones(g, 5, 5);
  t_attr_ints(g, n, "pads", 4, (int64_t[]){1, 1, 1, 1});
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[1,1,5,5]");
  const float padded[] = {12,  21, 27, 33,  24,  33,  54,  63, 72,  51,  63,  99, 108,
                          117, 81, 93, 144, 153, 162, 111, 72, 111, 117, 123, 84};
  t_run_check_f32(g, n, 1, (const void *[]){x5x5}, padded, 25);

  int m = conv_ones(g, 5, 5);
  t_expect_ok(g, m);
  t_expect_shape(g, t_out(g, m, 0), INFERD_TYPE_FP32, "[1,1,3,3]");
  t_run_check_f32(g, m, 1, (const void *[]){x5x5}, (const float[]){54, 63, 72, 99, 108, 117, 144, 153, 162}, 9);

  int s = conv_ones(g, 7, 5);
  t_attr_ints(g, s, "pads", 4, (int64_t[]){1, 1, 1, 1});
  t_attr_ints(g, s, "strides", 2, (int64_t[]){2, 2});
  t_expect_ok(g, s);
  t_expect_shape(g, t_out(g, s, 0), INFERD_TYPE_FP32, "[1,1,4,3]");
  t_run_check_f32(g, s, 1, (const void *[]){x7x5},
                  (const float[]){12, 27, 24, 63, 108, 81, 123, 198, 141, 112, 177, 124}, 12);

  int a = conv_ones(g, 7, 5);
  t_attr_ints(g, a, "pads", 4, (int64_t[]){1, 0, 1, 0});
  t_attr_ints(g, a, "strides", 2, (int64_t[]){2, 2});
  t_expect_ok(g, a);
  t_expect_shape(g, t_out(g, a, 0), INFERD_TYPE_FP32, "[1,1,4,2]");
  t_run_check_f32(g, a, 1, (const void *[]){x7x5}, (const float[]){21, 33, 99, 117, 189, 207, 171, 183}, 8);
  ir_graph_delete(g);
}

static void test_conv_groups_bias(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(1, 2, 2, 2));
  int w = t_const(g, "w", INFERD_TYPE_FP32, DIMS(2, 1, 1, 1), (float[]){2, -1});
  int b = t_const(g, "b", INFERD_TYPE_FP32, DIMS(2), (float[]){1, 0.5f});
  int n = t_node(g, IR_OP_Conv, "grouped", INS(x, w, b), 1);
  t_attr_int(g, n, "group", 2);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[1,2,2,2]");
  const float in[] = {1, 2, 3, 4, 5, 6, 7, 8};
  t_run_check_f32(g, n, 1, (const void *[]){in}, (const float[]){3, 5, 7, 9, -4.5f, -5.5f, -6.5f, -7.5f}, 8);
  ir_graph_delete(g);
}

static void test_conv_dilation(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(1, 1, 4, 4));
  int w = t_const(g, "w", INFERD_TYPE_FP32, DIMS(1, 1, 2, 2), (float[]){1, 1, 1, 1});
  int n = t_node(g, IR_OP_Conv, "dilated", INS(x, w), 1);
  t_attr_ints(g, n, "dilations", 2, (int64_t[]){2, 2});
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[1,1,2,2]");
  float in[16];
  for (int i = 0; i < 16; i++) in[i] = (float)i;
  t_run_check_f32(g, n, 1, (const void *[]){in}, (const float[]){20, 24, 36, 40}, 4);
  ir_graph_delete(g);
}

/* 1-D, dynamic batch, SAME_UPPER puts the odd padding at the end and
 * SAME_LOWER at the start. */
static void test_conv_auto_pad_dynamic_batch(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 1, 4));
  int w = t_const(g, "w", INFERD_TYPE_FP32, DIMS(1, 1, 2), (float[]){1, 10});
  int up = t_node(g, IR_OP_Conv, "upper", INS(x, w), 1);
  t_attr_string(g, up, "auto_pad", "SAME_UPPER");
  int lo = t_node(g, IR_OP_Conv, "lower", INS(x, w), 1);
  t_attr_string(g, lo, "auto_pad", "SAME_LOWER");
  int va = t_node(g, IR_OP_Conv, "valid", INS(x, w), 1);
  t_attr_string(g, va, "auto_pad", "VALID");
  t_attr_ints(g, va, "pads", 2, (int64_t[]){5, 5}); /* ignored under VALID */
  t_expect_ok(g, up);
  t_expect_ok(g, lo);
  t_expect_ok(g, va);
  t_expect_shape(g, t_out(g, up, 0), INFERD_TYPE_FP32, "[N,1,4]");
  t_expect_shape(g, t_out(g, va, 0), INFERD_TYPE_FP32, "[N,1,3]");
  const float in[] = {1, 2, 3, 4, 0, 0, 0, 1};
  t_run_check_f32(g, up, 2, (const void *[]){in}, (const float[]){21, 32, 43, 4, 0, 0, 10, 1}, 8);
  t_run_check_f32(g, lo, 2, (const void *[]){in}, (const float[]){10, 21, 32, 43, 0, 0, 0, 10}, 8);
  t_run_check_f32(g, va, 2, (const void *[]){in}, (const float[]){21, 32, 43, 0, 0, 10}, 6);
  ir_graph_delete(g);
}

static void test_conv_3d(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(1, 1, 2, 2, 2));
  float ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  int w = t_const(g, "w", INFERD_TYPE_FP32, DIMS(1, 1, 2, 2, 2), ones);
  int n = t_node(g, IR_OP_Conv, "c3", INS(x, w), 1);
  t_attr_ints(g, n, "pads", 6, (int64_t[]){0, 0, 1, 0, 0, 0});
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[1,1,1,1,2]");
  const float in[] = {1, 2, 3, 4, 5, 6, 7, 8};
  /* width padded at the start: window 0 sees column 0 only, window 1 all. */
  t_run_check_f32(g, n, 1, (const void *[]){in}, (const float[]){1 + 3 + 5 + 7, 36}, 2);
  ir_graph_delete(g);
}

static void test_conv_rejections(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 4, 8, 8));
  int xi = t_input(g, "xi", INFERD_TYPE_INT32, DIMS(1, 4, 8, 8));
  int x2 = t_input(g, "x2", INFERD_TYPE_FP32, DIMS(4, 8));
  int xb = t_input(g, "xb", INFERD_TYPE_FP32, DIMS(1, -4, 8, 8));
  static float wdata[4 * 4 * 9];
  int w = t_const(g, "w", INFERD_TYPE_FP32, DIMS(4, 4, 3, 3), wdata);
  int w2 = t_const(g, "w2", INFERD_TYPE_FP32, DIMS(4, 2, 3, 3), wdata);
  int bad_bias = t_const(g, "bias3", INFERD_TYPE_FP32, DIMS(3), wdata);

  int n = t_node(g, IR_OP_Conv, "chan_mismatch", INS(x, w2), 1);
  t_expect_error(g, n, "channels");
  n = t_node(g, IR_OP_Conv, "group3", INS(x, w), 1);
  t_attr_int(g, n, "group", 3);
  t_expect_error(g, n, "group 3");
  n = t_node(g, IR_OP_Conv, "bias_shape", INS(x, w, bad_bias), 1);
  t_expect_error(g, n, "bias");
  n = t_node(g, IR_OP_Conv, "bad_autopad", INS(x, w), 1);
  t_attr_string(g, n, "auto_pad", "SAME");
  t_expect_error(g, n, "auto_pad 'SAME'");
  n = t_node(g, IR_OP_Conv, "int_input", INS(xi, w), 1);
  t_expect_error(g, n, "INT32");
  n = t_node(g, IR_OP_Conv, "kernel_shape", INS(x, w), 1);
  t_attr_ints(g, n, "kernel_shape", 2, (int64_t[]){5, 5});
  t_expect_error(g, n, "kernel_shape");
  n = t_node(g, IR_OP_Conv, "neg_pads", INS(x, w), 1);
  t_attr_ints(g, n, "pads", 4, (int64_t[]){-1, 0, 0, 0});
  t_expect_error(g, n, "pads");
  n = t_node(g, IR_OP_Conv, "pads_len", INS(x, w), 1);
  t_attr_ints(g, n, "pads", 2, (int64_t[]){1, 1});
  t_expect_error(g, n, "pads has 2 values");
  n = t_node(g, IR_OP_Conv, "stride0", INS(x, w), 1);
  t_attr_ints(g, n, "strides", 2, (int64_t[]){0, 1});
  t_expect_error(g, n, "stride");
  n = t_node(g, IR_OP_Conv, "too_big", INS(x, w), 1);
  t_attr_ints(g, n, "dilations", 2, (int64_t[]){4, 4});
  t_expect_error(g, n, "larger than the padded input");
  n = t_node(g, IR_OP_Conv, "rank2", INS(x2, w), 1);
  t_expect_error(g, n, "spatial");
  n = t_node(g, IR_OP_Conv, "batch_channels", INS(xb, w), 1);
  t_expect_error(g, n, "only the first dimension");
  ir_graph_delete(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conv_padding_and_strides),
      cmocka_unit_test(test_conv_groups_bias),
      cmocka_unit_test(test_conv_dilation),
      cmocka_unit_test(test_conv_auto_pad_dynamic_batch),
      cmocka_unit_test(test_conv_3d),
      cmocka_unit_test(test_conv_rejections),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
