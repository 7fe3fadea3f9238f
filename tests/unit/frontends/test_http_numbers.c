/*
 * The HTTP frontend's number codec: JSON data arrays of every datatype, flat
 * and nested, the range and NaN/Infinity rules, element-count mismatches and
 * malformed arrays (each an error naming the input, never quoting the data),
 * and float printing that
 * reads back exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/float16.h"
#include "frontends/http/http_numbers.h"

/* Parses `text` as `count` elements, expecting success; returns the buffer. */
static void *parse_ok(const char *text, inferd_datatype type, size_t count, size_t *size) {
  void *data = NULL;
  size_t n = 0;
  inferd_error *err = http_numbers_parse(text, strlen(text), type, count, "x", &data, &n);
  if (err) fail_msg("parsing %s as %s: %s", text, inferd_datatype_name(type), inferd_error_message(err));
  if (size) *size = n;
  return data;
}

/* Expects an error whose message contains `needle`. */
static void parse_fails(const char *text, inferd_datatype type, size_t count, const char *needle) {
  void *data = (void *)1;
  size_t n = 7;
  inferd_error *err = http_numbers_parse(text, strlen(text), type, count, "x", &data, &n);
  if (!err) fail_msg("parsing %s as %s should fail", text, inferd_datatype_name(type));
  assert_null(data);
  assert_int_equal(n, 0);
  assert_int_equal(inferd_error_code_of(err), INFERD_ERROR_INVALID_ARG);
  const char *msg = inferd_error_message(err);
  if (!strstr(msg, needle)) fail_msg("message '%s' lacks '%s'", msg, needle);
  if (!strstr(msg, "'x'")) fail_msg("message '%s' does not name the input", msg);
  inferd_error_delete(err);
}

/* Refuses `text` with a message that does not contain `secret`: error
 * messages reach the log, and tensor data never may. */
static void fails_without_quoting(const char *text, inferd_datatype type, size_t count, const char *secret) {
  void *data = NULL;
  size_t n = 0;
  inferd_error *err = http_numbers_parse(text, strlen(text), type, count, "x", &data, &n);
  if (!err) fail_msg("parsing %s as %s should fail", text, inferd_datatype_name(type));
  if (strstr(inferd_error_message(err), secret))
    fail_msg("message '%s' quotes the data '%s'", inferd_error_message(err), secret);
  inferd_error_delete(err);
}

static void test_errors_never_quote_the_data(void **state) {
  (void)state;
  fails_without_quoting("[1, 9876543]", INFERD_TYPE_INT8, 2, "9876543");
  fails_without_quoting("[98765432109876543210987]", INFERD_TYPE_UINT64, 1, "98765432109876543210987");
  fails_without_quoting("[5.4321e99]", INFERD_TYPE_FP32, 1, "5.4321");
  fails_without_quoting("[3.14159]", INFERD_TYPE_INT32, 1, "3.14159");
  fails_without_quoting("[hunter2]", INFERD_TYPE_FP32, 1, "hunter2");
  fails_without_quoting("[yesplease]", INFERD_TYPE_BOOL, 1, "yesplease");
  fails_without_quoting("[31337]", INFERD_TYPE_BYTES, 1, "31337");
  fails_without_quoting("[1 24680]", INFERD_TYPE_FP32, 2, "24680");
  /* What was found is still said, by kind. */
  parse_fails("[\"1\"]", INFERD_TYPE_INT64, 1, "expected an integer, got a string");
  parse_fails("[1 2]", INFERD_TYPE_FP32, 2, "but got a malformed number");
  parse_fails("[1:2]", INFERD_TYPE_FP32, 2, "but got ':'");
}

static void test_fp32_flat_and_nested(void **state) {
  (void)state;
  size_t size;
  float *f = parse_ok(" [ 1, -2.5, 3e2, 0.125 , -0, 1E-3 ] ", INFERD_TYPE_FP32, 6, &size);
  assert_int_equal(size, 24);
  assert_true(f[0] == 1.0f && f[1] == -2.5f && f[2] == 300.0f && f[3] == 0.125f && f[5] == 1e-3f);
  assert_true(f[4] == 0.0f && signbit(f[4]));
  free(f);
  f = parse_ok("[[1,2,3],[4,5,6]]", INFERD_TYPE_FP32, 6, NULL);
  for (int i = 0; i < 6; i++) assert_true(f[i] == (float)(i + 1));
  free(f);
  f = parse_ok("[[[1],[2]],[],[[3]]]", INFERD_TYPE_FP32, 3, NULL);
  assert_true(f[0] == 1 && f[1] == 2 && f[2] == 3);
  free(f);
  free(parse_ok("[]", INFERD_TYPE_FP32, 0, &size));
  assert_int_equal(size, 0);
}

static void test_integers_every_type(void **state) {
  (void)state;
  int8_t *i8 = parse_ok("[-128, 127, 0, -0]", INFERD_TYPE_INT8, 4, NULL);
  assert_true(i8[0] == -128 && i8[1] == 127 && i8[2] == 0 && i8[3] == 0);
  free(i8);
  uint8_t *u8 = parse_ok("[0, 255]", INFERD_TYPE_UINT8, 2, NULL);
  assert_true(u8[0] == 0 && u8[1] == 255);
  free(u8);
  int16_t *i16 = parse_ok("[-32768, 32767]", INFERD_TYPE_INT16, 2, NULL);
  assert_true(i16[0] == -32768 && i16[1] == 32767);
  free(i16);
  uint16_t *u16 = parse_ok("[65535]", INFERD_TYPE_UINT16, 1, NULL);
  assert_true(u16[0] == 65535);
  free(u16);
  int32_t *i32 = parse_ok("[-2147483648, 2147483647]", INFERD_TYPE_INT32, 2, NULL);
  assert_true(i32[0] == INT32_MIN && i32[1] == INT32_MAX);
  free(i32);
  uint32_t *u32 = parse_ok("[4294967295]", INFERD_TYPE_UINT32, 1, NULL);
  assert_true(u32[0] == UINT32_MAX);
  free(u32);
  int64_t *i64 = parse_ok("[-9223372036854775808, 9223372036854775807]", INFERD_TYPE_INT64, 2, NULL);
  assert_true(i64[0] == INT64_MIN && i64[1] == INT64_MAX);
  free(i64);
  uint64_t *u64 = parse_ok("[18446744073709551615, 0]", INFERD_TYPE_UINT64, 2, NULL);
  assert_true(u64[0] == UINT64_MAX && u64[1] == 0);
  free(u64);
  uint8_t *b = parse_ok("[true, false, true]", INFERD_TYPE_BOOL, 3, NULL);
  assert_true(b[0] == 1 && b[1] == 0 && b[2] == 1);
  free(b);
}

static void test_integer_bounds(void **state) {
  (void)state;
  parse_fails("[1, 128]", INFERD_TYPE_INT8, 2, "element 1 is out of range for INT8");
  parse_fails("[-129]", INFERD_TYPE_INT8, 1, "element 0 is out of range for INT8");
  parse_fails("[-1]", INFERD_TYPE_UINT8, 1, "element 0 is out of range for UINT8");
  parse_fails("[256]", INFERD_TYPE_UINT8, 1, "out of range");
  parse_fails("[65536]", INFERD_TYPE_UINT16, 1, "out of range");
  parse_fails("[2147483648]", INFERD_TYPE_INT32, 1, "out of range for INT32");
  parse_fails("[-9223372036854775809]", INFERD_TYPE_INT64, 1, "out of range for INT64");
  parse_fails("[18446744073709551616]", INFERD_TYPE_UINT64, 1, "out of range for UINT64");
  parse_fails("[1.5]", INFERD_TYPE_INT32, 1, "expected an integer, got a fraction or an exponent");
  parse_fails("[1e3]", INFERD_TYPE_INT32, 1, "expected an integer");
  parse_fails("[01]", INFERD_TYPE_INT32, 1, "expected an integer");
  parse_fails("[NaN]", INFERD_TYPE_INT32, 1, "expected an integer");
  parse_fails("[\"1\"]", INFERD_TYPE_INT64, 1, "expected an integer");
  parse_fails("[1]", INFERD_TYPE_BOOL, 1, "true or false");
  parse_fails("[truex]", INFERD_TYPE_BOOL, 1, "expected ',' or ']'");
}

static void test_float_special_values(void **state) {
  (void)state;
  float *f = parse_ok("[NaN, Infinity, -Infinity, 3.4028234663852886e38, 1e-46]", INFERD_TYPE_FP32, 5, NULL);
  assert_true(isnan(f[0]) && f[1] == INFINITY && f[2] == -INFINITY && f[3] == 3.4028234663852886e38f);
  assert_true(f[4] == 0.0f);
  free(f);
  double *d = parse_ok("[NaN, -Infinity, 1e308, 4.9e-324]", INFERD_TYPE_FP64, 4, NULL);
  assert_true(isnan(d[0]) && d[1] == -INFINITY && d[2] == 1e308 && d[3] == 4.9e-324);
  free(d);
  parse_fails("[1e39]", INFERD_TYPE_FP32, 1, "element 0 is out of range for FP32");
  parse_fails("[-3.5e38]", INFERD_TYPE_FP32, 1, "out of range for FP32");
  parse_fails("[1e309]", INFERD_TYPE_FP64, 1, "out of range for FP64");
  parse_fails("[65520]", INFERD_TYPE_FP16, 1, "out of range for FP16");
  parse_fails("[4e38]", INFERD_TYPE_BF16, 1, "out of range for BF16");
  parse_fails("[nan]", INFERD_TYPE_FP32, 1, "expected a number, got a bare word");
  parse_fails("[.5]", INFERD_TYPE_FP32, 1, "expected a number");
  parse_fails("[1.]", INFERD_TYPE_FP32, 1, "expected a number");
  parse_fails("[1e]", INFERD_TYPE_FP32, 1, "expected a number");
  parse_fails("[+1]", INFERD_TYPE_FP32, 1, "expected a number");
}

/* Exponents beyond the power-of-ten table on both sides: tiny values round
 * to zero or a subnormal as strtod has them, huge ones are out of range. */
static void test_exponents_far_outside_the_table(void **state) {
  (void)state;
  double *d = parse_ok("[5e-648, -5e-648, 1e-100000000, 1e-343, 9999999999999999999e-343, 25e-325, "
                       "2.4703282292062328e-324, 1.5e-320]",
                       INFERD_TYPE_FP64, 8, NULL);
  assert_true(d[0] == 0.0 && !signbit(d[0]));
  assert_true(d[1] == 0.0 && signbit(d[1]));
  assert_true(d[2] == 0.0 && d[3] == 0.0 && d[4] == 0.0);
  assert_true(d[5] == 4.9e-324 && d[6] == 4.9e-324);
  assert_true(d[7] == strtod("1.5e-320", NULL));
  free(d);
  /* 700 leading zeros after the point put the exponent below -700. */
  char text[800] = "[0.";
  memset(text + 3, '0', 700);
  strcpy(text + 703, "5, 5e-648]");
  float *f = parse_ok(text, INFERD_TYPE_FP32, 2, NULL);
  assert_true(f[0] == 0.0f && f[1] == 0.0f);
  free(f);
  uint16_t *h = parse_ok("[5e-648, -5e-648]", INFERD_TYPE_FP16, 2, NULL);
  assert_true(h[0] == 0 && h[1] == 0x8000);
  free(h);
  h = parse_ok("[5e-648]", INFERD_TYPE_BF16, 1, NULL);
  assert_true(h[0] == 0);
  free(h);
  parse_fails("[1e400]", INFERD_TYPE_FP64, 1, "element 0 is out of range for FP64");
  parse_fails("[-1e400]", INFERD_TYPE_FP32, 1, "element 0 is out of range for FP32");
  parse_fails("[1e100000000]", INFERD_TYPE_FP64, 1, "out of range for FP64");
  parse_fails("[1e100000000]", INFERD_TYPE_FP16, 1, "out of range for FP16");
  d = parse_ok("[0e100000000]", INFERD_TYPE_FP64, 1, NULL);
  assert_true(d[0] == 0.0);
  free(d);
}

static void test_half_and_bfloat16(void **state) {
  (void)state;
  uint16_t *h = parse_ok("[1, -2, 65504, 6e-8, 0.1, 65519.99]", INFERD_TYPE_FP16, 6, NULL);
  assert_int_equal(h[0], 0x3c00);
  assert_int_equal(h[1], 0xc000);
  assert_int_equal(h[2], 0x7bff);
  assert_int_equal(h[3], 0x0001);
  assert_int_equal(h[4], 0x2e66);
  assert_int_equal(h[5], 0x7bff);
  free(h);
  uint16_t *b = parse_ok("[1, -2, 0.1, 3.3895313892515355e38]", INFERD_TYPE_BF16, 4, NULL);
  assert_int_equal(b[0], 0x3f80);
  assert_int_equal(b[1], 0xc000);
  assert_int_equal(b[2], 0x3dcd);
  assert_int_equal(b[3], 0x7f7f);
  free(b);
  /* Every finite half and bfloat16 prints and parses back to itself. */
  for (uint32_t bits = 0; bits < 0x10000; bits++) {
    const uint16_t v = (uint16_t)bits;
    char text[64] = "[";
    for (int type = 0; type < 2; type++) {
      const bool half = type == 0;
      const float f = half ? f16_to_f32(v) : bf16_to_f32(v);
      if (!isfinite(f)) continue;
      size_t n = http_format_element(half ? INFERD_TYPE_FP16 : INFERD_TYPE_BF16, &v, text + 1);
      text[n + 1] = ']';
      text[n + 2] = '\0';
      uint16_t *back = parse_ok(text, half ? INFERD_TYPE_FP16 : INFERD_TYPE_BF16, 1, NULL);
      if (*back != v) fail_msg("%s %04x printed as %s reads back as %04x", half ? "FP16" : "BF16", v, text, *back);
      free(back);
    }
  }
  /* Ties round to even. */
  assert_int_equal(f16_from_f64(1.00048828125), 0x3c00);
  assert_int_equal(f16_from_f64(1.00146484375), 0x3c02);
  assert_int_equal(f16_from_f64(2.98023223876953125e-8), 0x0000);
  assert_int_equal(f16_from_f64(nextafter(0x1p-25, 1.0)), 0x0001);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void test_float_printing_round_trips(void **state) {
  (void)state;
  char out[HTTP_NUMBER_MAX_CHARS + 1], ref[64];
  int differ = 0;
  const int trials = 400000;
  for (int i = 0; i < trials; i++) {
    const uint32_t bits = (uint32_t)rng();
    float f;
    memcpy(&f, &bits, 4);
    if (!isfinite(f)) continue;
    size_t n = http_format_f32(f, out);
    out[n] = '\0';
    assert_true(n <= HTTP_NUMBER_MAX_CHARS);
    const float back = strtof(out, NULL);
    if (memcmp(&back, &f, 4) != 0) fail_msg("%.9g printed as %s reads back as %.9g", f, out, back);
    snprintf(ref, sizeof(ref), "%.9g", f);
    differ += strcmp(ref, out) != 0;
  }
  /* Only rare near-ties may differ from printf in the last digit. */
  assert_true(differ < trials / 10000);
  const struct {
    float v;
    const char *text;
  } cases[] = {{0.0f, "0"},
               {-0.0f, "-0"},
               {1.0f, "1"},
               {0.5f, "0.5"},
               {100.0f, "100"},
               {1e9f, "1e+09"},
               {123456792.0f, "123456792"},
               {0.0001f, "9.99999975e-05"},
               {0.001f, "0.00100000005"},
               {0.1f, "0.100000001"},
               {-2.5f, "-2.5"},
               {3.4028234663852886e38f, "3.40282347e+38"},
               {1.4e-45f, "1.40129846e-45"},
               {NAN, "NaN"},
               {INFINITY, "Infinity"},
               {-INFINITY, "-Infinity"}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    size_t n = http_format_f32(cases[i].v, out);
    out[n] = '\0';
    assert_string_equal(out, cases[i].text);
  }
  int64_t ints[] = {0, -1, 42, INT64_MIN, INT64_MAX};
  const char *itexts[] = {"0", "-1", "42", "-9223372036854775808", "9223372036854775807"};
  for (int i = 0; i < 5; i++) {
    size_t n = http_format_i64(ints[i], out);
    out[n] = '\0';
    assert_string_equal(out, itexts[i]);
  }
  size_t n = http_format_u64(UINT64_MAX, out);
  out[n] = '\0';
  assert_string_equal(out, "18446744073709551615");
}

/* Numbers as clients write them (17-digit doubles of float32 values, short
 * decimals, long digit strings) parse exactly as strtof/strtod would. */
static void test_float_parsing_matches_strtod(void **state) {
  (void)state;
  char text[256];
  for (int i = 0; i < 200000; i++) {
    const uint64_t r = rng();
    const int form = (int)(r % 4);
    if (form == 0) {
      float f;
      uint32_t bits = (uint32_t)(r >> 32);
      memcpy(&f, &bits, 4);
      if (!isfinite(f)) continue;
      snprintf(text + 1, sizeof(text) - 2, "%.17g", (double)f);
    } else if (form == 1) {
      snprintf(text + 1, sizeof(text) - 2, "%d.%de%d", (int)(r % 100000) - 50000, (int)((r >> 20) % 1000000),
               (int)((r >> 40) % 80) - 40);
    } else if (form == 2) {
      /* Many digits: beyond the 19 kept. */
      snprintf(text + 1, sizeof(text) - 2, "%llu%llu.%llue%d", (unsigned long long)(r % 1000000000000ull),
               (unsigned long long)(rng() % 10000000000000ull), (unsigned long long)rng(), (int)((r >> 50) % 60) - 45);
    } else {
      double d;
      uint64_t bits = rng();
      memcpy(&d, &bits, 8);
      if (!isfinite(d)) continue;
      snprintf(text + 1, sizeof(text) - 2, "%.17g", d);
    }
    text[0] = '[';
    strcat(text, "]");
    const char *num = text + 1;
    const float want_f = strtof(num, NULL);
    const double want_d = strtod(num, NULL);
    if (isfinite(want_f)) {
      float *f = parse_ok(text, INFERD_TYPE_FP32, 1, NULL);
      if (memcmp(f, &want_f, 4) != 0) fail_msg("%s: FP32 %.9g, strtof %.9g", text, *f, want_f);
      free(f);
    }
    if (isfinite(want_d)) {
      double *d = parse_ok(text, INFERD_TYPE_FP64, 1, NULL);
      if (memcmp(d, &want_d, 8) != 0) fail_msg("%s: FP64 %.17g, strtod %.17g", text, *d, want_d);
      free(d);
      char out[64];
      size_t n = http_format_f64(want_d, out + 1);
      out[0] = '[';
      out[n + 1] = ']';
      out[n + 2] = '\0';
      d = parse_ok(out, INFERD_TYPE_FP64, 1, NULL);
      assert_memory_equal(d, &want_d, 8);
      free(d);
    }
  }
}

static void test_bytes_strings(void **state) {
  (void)state;
  size_t size;
  unsigned char *b = parse_ok("[\"abc\", \"\", \"\\u00e9\\n\\\"\\ud83d\\ude00\"]", INFERD_TYPE_BYTES, 3, &size);
  const unsigned char want[] = {3, 0, 0, 0,    'a',  'b',  'c', 0,    0,    0,    0,   8,
                                0, 0, 0, 0xc3, 0xa9, '\n', '"', 0xf0, 0x9f, 0x98, 0x80};
  assert_int_equal(size, sizeof(want));
  assert_memory_equal(b, want, sizeof(want));
  free(b);
  b = parse_ok("[[\"a\"],[\"b\"]]", INFERD_TYPE_BYTES, 2, &size);
  assert_int_equal(size, 10);
  free(b);
  parse_fails("[1]", INFERD_TYPE_BYTES, 1, "expected a string for BYTES");
  parse_fails("[\"abc]", INFERD_TYPE_BYTES, 1, "unterminated string");
  parse_fails("[\"\\x\"]", INFERD_TYPE_BYTES, 1, "invalid escape");
  parse_fails("[\"\\ud800\"]", INFERD_TYPE_BYTES, 1, "invalid escape");
  parse_fails("[\"a\tb\"]", INFERD_TYPE_BYTES, 1, "control character");
  parse_fails("[\"a\", \"b\"]", INFERD_TYPE_BYTES, 3, "shape has 3 elements but 'data' has 2");
}

static void test_counts_and_malformed_arrays(void **state) {
  (void)state;
  parse_fails("[1,2,3]", INFERD_TYPE_FP32, 4, "shape has 4 elements but 'data' has 3");
  parse_fails("[1,2,3]", INFERD_TYPE_FP32, 2, "shape has 2 elements but 'data' has 3");
  /* A shape far larger than the text could hold is refused without allocating. */
  parse_fails("[1,2,3]", INFERD_TYPE_FP64, (size_t)1 << 60, "has 3");
  parse_fails("[1,]", INFERD_TYPE_FP32, 1, "expected a number");
  parse_fails("[1 2]", INFERD_TYPE_FP32, 2, "expected ',' or ']'");
  parse_fails("[,1]", INFERD_TYPE_FP32, 1, "expected a number");
  parse_fails("[1,2", INFERD_TYPE_FP32, 2, "not terminated");
  parse_fails("[[1,2]", INFERD_TYPE_FP32, 2, "not terminated");
  parse_fails("[1]]", INFERD_TYPE_FP32, 1, "unexpected text");
  parse_fails("1", INFERD_TYPE_FP32, 1, "must be a JSON array");
  parse_fails("", INFERD_TYPE_FP32, 0, "must be a JSON array");
  parse_fails("{\"a\":1}", INFERD_TYPE_FP32, 1, "must be a JSON array");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fp32_flat_and_nested),
      cmocka_unit_test(test_integers_every_type),
      cmocka_unit_test(test_integer_bounds),
      cmocka_unit_test(test_float_special_values),
      cmocka_unit_test(test_exponents_far_outside_the_table),
      cmocka_unit_test(test_half_and_bfloat16),
      cmocka_unit_test(test_float_printing_round_trips),
      cmocka_unit_test(test_float_parsing_matches_strtod),
      cmocka_unit_test(test_bytes_strings),
      cmocka_unit_test(test_counts_and_malformed_arrays),
      cmocka_unit_test(test_errors_never_quote_the_data),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
