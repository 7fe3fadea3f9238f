#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit/engine/ops_test.h"

static int pool(ir_graph *g, ir_op op, const char *name, int x, int64_t k, int64_t stride, int64_t pad) {
  int n = t_node(g, op, name, INS(x), 1);
  t_attr_ints(g, n, "kernel_shape", 2, (int64_t[]){k, k});
  if (stride != 1) t_attr_ints(g, n, "strides", 2, (int64_t[]){stride, stride});
  if (pad) t_attr_ints(g, n, "pads", 4, (int64_t[]){pad, pad, pad, pad});
  return n;
}

static void test_maxpool(void **state) {
  (void)state;
  ir_graph *g = t_graph(12);
  int x4 = t_input(g, "x4", INFERD_TYPE_FP32, DIMS(-1, 1, 4, 4));
  int x5 = t_input(g, "x5", INFERD_TYPE_FP32, DIMS(1, 1, 5, 5));
  float in4[32], in5[25];
  for (int i = 0; i < 32; i++) in4[i] = (float)(i % 16 + 1);
  for (int i = 0; i < 25; i++) in5[i] = (float)(i + 1);

  int n = pool(g, IR_OP_MaxPool, "p2", x4, 2, 2, 0);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[N,1,2,2]");
  t_run_check_f32(g, n, 2, (const void *[]){in4}, (const float[]){6, 8, 14, 16, 6, 8, 14, 16}, 8);

  n = pool(g, IR_OP_MaxPool, "padded", x5, 5, 1, 2);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[1,1,5,5]");
  const float want[] = {13, 14, 15, 15, 15, 18, 19, 20, 20, 20, 23, 24, 25,
                        25, 25, 23, 24, 25, 25, 25, 23, 24, 25, 25, 25};
  t_run_check_f32(g, n, 1, (const void *[]){in5}, want, 25);

  n = pool(g, IR_OP_MaxPool, "ceil", x4, 3, 2, 0);
  t_attr_int(g, n, "ceil_mode", 1);
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[N,1,2,2]");
  t_run_check_f32(g, n, 1, (const void *[]){in4}, (const float[]){11, 12, 15, 16}, 4);

  n = pool(g, IR_OP_MaxPool, "dilated", x4, 2, 1, 0);
  t_attr_ints(g, n, "dilations", 2, (int64_t[]){2, 2});
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[N,1,2,2]");
  t_run_check_f32(g, n, 1, (const void *[]){in4}, (const float[]){11, 12, 15, 16}, 4);

  /* SAME_UPPER: 5 -> ceil(5/2) = 3 outputs, one padding element at the end. */
  n = pool(g, IR_OP_MaxPool, "same", x5, 2, 2, 0);
  t_attr_string(g, n, "auto_pad", "SAME_UPPER");
  t_expect_ok(g, n);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP32, "[1,1,3,3]");
  t_run_check_f32(g, n, 1, (const void *[]){in5}, (const float[]){7, 9, 10, 17, 19, 20, 22, 24, 25}, 9);

  int xu = t_input(g, "xu", INFERD_TYPE_UINT8, DIMS(1, 1, 2, 2));
  n = t_node(g, IR_OP_MaxPool, "u8", INS(xu), 1);
  t_attr_ints(g, n, "kernel_shape", 2, (int64_t[]){2, 2});
  t_expect_ok(g, n);
  t_run_check_bytes(g, n, 1, (const void *[]){(uint8_t[]){3, 250, 7, 9}}, (uint8_t[]){250}, 1);
  ir_graph_delete(g);
}

static void test_averagepool(void **state) {
  (void)state;
  ir_graph *g = t_graph(11);
  int x4 = t_input(g, "x4", INFERD_TYPE_FP32, DIMS(1, 1, 4, 4));
  int x5 = t_input(g, "x5", INFERD_TYPE_FP32, DIMS(1, 1, 5, 5));
  float in4[16], in5[25];
  for (int i = 0; i < 16; i++) in4[i] = (float)(i + 1);
  for (int i = 0; i < 25; i++) in5[i] = (float)(i + 1);

  int n = pool(g, IR_OP_AveragePool, "exclude_pad", x5, 5, 1, 2);
  t_expect_ok(g, n);
  const float excl[] = {7,     7.5f, 8,     8.5f, 9,     9.5f, 10,    10.5f, 11,    11.5f, 12,    12.5f, 13,
                        13.5f, 14,   14.5f, 15,   15.5f, 16,   16.5f, 17,    17.5f, 18,    18.5f, 19};
  t_run_check_f32(g, n, 1, (const void *[]){in5}, excl, 25);

  n = pool(g, IR_OP_AveragePool, "include_pad", x5, 5, 1, 2);
  t_attr_int(g, n, "count_include_pad", 1);
  t_expect_ok(g, n);
  const float incl[] = {2.52f, 3.6f, 4.8f,  4.08f, 3.24f, 4.56f,  6.4f,  8.4f,  7.04f, 5.52f, 7.2f,  10,   13,
                        10.8f, 8.4f, 6.96f, 9.6f,  12.4f, 10.24f, 7.92f, 6.12f, 8.4f,  10.8f, 8.88f, 6.84f};
  t_run_check_f32(g, n, 1, (const void *[]){in5}, incl, 25);

  /* ceil_mode's overhanging windows average only what they cover. */
  n = pool(g, IR_OP_AveragePool, "ceil", x4, 3, 2, 0);
  t_attr_int(g, n, "ceil_mode", 1);
  t_expect_ok(g, n);
  t_run_check_f32(g, n, 1, (const void *[]){in4}, (const float[]){6, 7.5f, 12, 13.5f}, 4);
  ir_graph_delete(g);
}

static void test_global_pools(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 2, 2, 2));
  int avg = t_node(g, IR_OP_GlobalAveragePool, "gap", INS(x), 1);
  int max = t_node(g, IR_OP_GlobalMaxPool, "gmp", INS(x), 1);
  t_expect_ok(g, avg);
  t_expect_ok(g, max);
  t_expect_shape(g, t_out(g, avg, 0), INFERD_TYPE_FP32, "[N,2,1,1]");
  const float in[] = {1, 2, 3, 4, -1, -2, -3, -4, 0, 0, 0, 8, 1, 1, 1, 1};
  t_run_check_f32(g, avg, 2, (const void *[]){in}, (const float[]){2.5f, -2.5f, 2, 1}, 4);
  t_run_check_f32(g, max, 2, (const void *[]){in}, (const float[]){4, -1, 8, 1}, 4);
  ir_graph_delete(g);
}

static void test_pool_rejections(void **state) {
  (void)state;
  ir_graph *g = t_graph(12);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(1, 1, 4, 4));
  int xi = t_input(g, "xi", INFERD_TYPE_INT32, DIMS(1, 1, 4, 4));
  int x2 = t_input(g, "x2", INFERD_TYPE_FP32, DIMS(4, 4));

  int n = t_node(g, IR_OP_MaxPool, "with_indices", INS(x), 2);
  t_attr_ints(g, n, "kernel_shape", 2, (int64_t[]){2, 2});
  t_expect_error(g, n, "Indices");
  n = t_node(g, IR_OP_MaxPool, "no_kernel", INS(x), 1);
  t_expect_error(g, n, "kernel_shape is required");
  n = pool(g, IR_OP_MaxPool, "ceil2", x, 2, 1, 0);
  t_attr_int(g, n, "ceil_mode", 2);
  t_expect_error(g, n, "ceil_mode");
  n = pool(g, IR_OP_MaxPool, "storage", x, 2, 1, 0);
  t_attr_int(g, n, "storage_order", 3);
  t_expect_error(g, n, "storage_order");
  n = pool(g, IR_OP_AveragePool, "cip", x, 2, 1, 0);
  t_attr_int(g, n, "count_include_pad", 3);
  t_expect_error(g, n, "count_include_pad");
  n = pool(g, IR_OP_AveragePool, "int_avg", xi, 2, 1, 0);
  t_expect_error(g, n, "INT32");
  n = t_node(g, IR_OP_MaxPool, "kernel_len", INS(x), 1);
  t_attr_ints(g, n, "kernel_shape", 3, (int64_t[]){2, 2, 2});
  t_expect_error(g, n, "kernel_shape has 3 values");
  n = t_node(g, IR_OP_GlobalAveragePool, "rank2", INS(x2), 1);
  t_expect_error(g, n, "spatial");
  ir_graph_delete(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_maxpool),
      cmocka_unit_test(test_averagepool),
      cmocka_unit_test(test_global_pools),
      cmocka_unit_test(test_pool_rejections),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
