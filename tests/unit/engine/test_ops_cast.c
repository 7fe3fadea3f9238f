/* Cast: rounding to FP16/BF16, integer wrapping and saturation, BOOL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/ops/op_util.h"
#include "unit/engine/ops_test.h"

/* ONNX data type numbers for `to`. */
enum {
  TO_FLOAT = 1,
  TO_UINT8 = 2,
  TO_INT32 = 6,
  TO_INT64 = 7,
  TO_STRING = 8,
  TO_BOOL = 9,
  TO_FLOAT16 = 10,
  TO_DOUBLE = 11,
  TO_BFLOAT16 = 16
};

static int cast(ir_graph *g, const char *name, int x, int64_t to) {
  int n = t_node(g, IR_OP_Cast, name, INS(x), 1);
  t_attr_int(g, n, "to", to);
  t_expect_ok(g, n);
  return n;
}

static void test_to_half(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int f = t_input(g, "f", INFERD_TYPE_FP32, DIMS(8));
  int n = cast(g, "f32_to_f16", f, TO_FLOAT16);
  t_expect_shape(g, t_out(g, n, 0), INFERD_TYPE_FP16, "[8]");
  /* 1+2^-11 is a tie: to even (1.0); just above rounds up; 65520 ties to
   * the odd 65504 -> infinity; 2^-25 is a tie with 0 -> 0; 3*2^-26 -> 2^-24. */
  const float in[] = {1.0f, 1.0f + 0x1p-11f, 1.0f + 0x1p-11f + 0x1p-20f, 65519.0f, 65520.0f, 0x1p-25f, 3 * 0x1p-26f,
                      -2.0f};
  t_run_check_bytes(g, n, 1, (const void *[]){in},
                    (uint16_t[]){0x3C00, 0x3C00, 0x3C01, 0x7BFF, 0x7C00, 0x0000, 0x0001, 0xC000}, 16);

  /* FP64 -> FP16 rounds once: via float it would round twice and land on 1.0. */
  int d = t_input(g, "d", INFERD_TYPE_FP64, DIMS(2));
  n = cast(g, "f64_to_f16", d, TO_FLOAT16);
  t_run_check_bytes(g, n, 1, (const void *[]){(double[]){1.0 + 0x1p-11 + 0x1p-40, NAN}}, (uint16_t[]){0x3C01, 0x7E00},
                    4);

  n = cast(g, "f32_to_bf16", f, TO_BFLOAT16);
  const float bin[] = {1.0f,      1.0f + 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f, 1.0f + 3 * 0x1p-8f, -0.0f, INFINITY,
                       0x1p-130f, 3.0e38f};
  t_run_check_bytes(g, n, 1, (const void *[]){bin},
                    (uint16_t[]){0x3F80, 0x3F80, 0x3F81, 0x3F82, 0x8000, 0x7F80, 0x0008, 0x7F62}, 16);

  int h = t_input(g, "h", INFERD_TYPE_FP16, DIMS(4));
  n = cast(g, "f16_to_f32", h, TO_FLOAT);
  t_run_check_bytes(g, n, 1, (const void *[]){(uint16_t[]){0x3C00, 0xC000, 0x0001, 0x7C00}},
                    (float[]){1.0f, -2.0f, 0x1p-24f, INFINITY}, 16);
  int b = t_input(g, "b", INFERD_TYPE_BF16, DIMS(2));
  n = cast(g, "bf16_to_f64", b, TO_DOUBLE);
  t_run_check_bytes(g, n, 1, (const void *[]){(uint16_t[]){0x3F81, 0xC2F7}}, (double[]){1.0078125, -123.5}, 16);
  ir_graph_delete(g);
}

static void test_integers_and_bool(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int f = t_input(g, "f", INFERD_TYPE_FP32, DIMS(5));
  int n = cast(g, "f32_to_i32", f, TO_INT32);
  t_run_check_bytes(g, n, 1, (const void *[]){(float[]){-1.9f, 2.9f, 3e10f, -3e10f, NAN}},
                    (int32_t[]){-1, 2, INT32_MAX, INT32_MIN, 0}, 20);
  n = cast(g, "f32_to_bool", f, TO_BOOL);
  t_run_check_bytes(g, n, 1, (const void *[]){(float[]){0, -0.0f, 0.1f, NAN, -5}}, (uint8_t[]){0, 0, 1, 1, 1}, 5);
  int l = t_input(g, "l", INFERD_TYPE_INT64, DIMS(3));
  n = cast(g, "i64_to_u8", l, TO_UINT8);
  t_run_check_bytes(g, n, 1, (const void *[]){(int64_t[]){257, -1, 42}}, (uint8_t[]){1, 255, 42}, 3);
  n = cast(g, "i64_to_f32", l, TO_FLOAT);
  t_run_check_bytes(g, n, 1, (const void *[]){(int64_t[]){(1LL << 40) + 1, -3, 16777217}},
                    (float[]){0x1p40f, -3.0f, 16777216.0f}, 12);
  int flag = t_input(g, "flag", INFERD_TYPE_BOOL, DIMS(2));
  n = cast(g, "bool_to_f64", flag, TO_DOUBLE);
  t_run_check_bytes(g, n, 1, (const void *[]){(uint8_t[]){1, 0}}, (double[]){1.0, 0.0}, 16);

  n = t_node(g, IR_OP_Cast, "to_string", INS(f), 1);
  t_attr_int(g, n, "to", TO_STRING);
  t_expect_error(g, n, "data type 8");
  n = t_node(g, IR_OP_Cast, "no_to", INS(f), 1);
  t_expect_error(g, n, "attribute to");
  ir_graph_delete(g);
}

/* Shape values keep their symbolic form through INT64 <-> INT32 casts. */
static void test_cast_sym(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 7));
  int s = t_node(g, IR_OP_Shape, "shape", INS(x), 1);
  t_expect_ok(g, s);
  int n = cast(g, "to_i32", t_out(g, s, 0), TO_INT32);
  /* A batch-dependent value is not an int32 constant. */
  ir_symint sym[4];
  int count;
  assert_false(ops_known_ints(g, t_out(g, n, 0), sym, 4, &count));
  int c = t_const(g, "c", INFERD_TYPE_INT32, DIMS(2), (int32_t[]){3, -4});
  n = cast(g, "to_i64", c, TO_INT64);
  t_expect_sym(g, t_out(g, n, 0), "3, -4");
  n = cast(g, "keep_i64", t_out(g, s, 0), TO_INT64);
  t_expect_sym(g, t_out(g, n, 0), "1N, 7");
  ir_graph_delete(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_to_half),
      cmocka_unit_test(test_integers_and_bool),
      cmocka_unit_test(test_cast_sym),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
