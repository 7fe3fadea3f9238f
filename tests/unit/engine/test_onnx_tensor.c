/* TensorProto decoding: typed fields, size checks, external data, and the
 * reader of serialized tensors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/stat.h>

#include "unit/engine/onnx_test_util.h"

enum { T_FLOAT = 1, T_UINT8, T_INT8, T_UINT16, T_INT16, T_INT32, T_INT64, T_STRING, T_BOOL, T_FLOAT16, T_DOUBLE,
       T_UINT32, T_UINT64, T_COMPLEX64, T_COMPLEX128, T_BFLOAT16 };

static const int64_t two[] = {2};

static Onnx__TensorProto *typed(test_model *m, const char *name, int32_t type) {
  return tm_initializer(m, name, type, 1, two, NULL, 0);
}

static ir_graph *import_ok(const char *path) {
  ir_graph *g = NULL;
  inferd_error *e = onnx_import_file(path, &g);
  if (e) fail_msg("%s", inferd_error_message(e));
  return g;
}

static const void *const_data(const ir_graph *g, const char *name, inferd_datatype type) {
  int id = ir_graph_find_value(g, name);
  assert_true(id >= 0);
  assert_int_equal(g->values[id].kind, IR_VALUE_CONST);
  assert_int_equal(g->values[id].dtype, type);
  assert_true((uintptr_t)g->values[id].data % inferd_datatype_size(type) == 0);
  return g->values[id].data;
}

static void test_typed_fields(void **state) {
  (void)state;
  test_model m;
  tm_init(&m);
  static float f[] = {1.5f, -2};
  static int32_t i8[] = {-1, 127}, u8[] = {255, 0}, i16[] = {-2, 300}, u16[] = {65535, 1}, b[] = {0, 5},
                 h[] = {0x3c00, 0xc000}, bf[] = {0x3f80, 0x4000}, i32[] = {-5, 7};
  static int64_t i64[] = {-1, (int64_t)1 << 40};
  static double d[] = {0.25, -8};
  static uint64_t u32[] = {4000000000u, 1}, u64[] = {(uint64_t)1 << 63, 2};
  Onnx__TensorProto *t = typed(&m, "f", T_FLOAT);
  t->n_float_data = 2, t->float_data = f;
#define INT32_FIELD(name, type, array)                                                                  \
  t = typed(&m, name, type);                                                                            \
  t->n_int32_data = 2, t->int32_data = array;
  INT32_FIELD("i8", T_INT8, i8)
  INT32_FIELD("u8", T_UINT8, u8)
  INT32_FIELD("i16", T_INT16, i16)
  INT32_FIELD("u16", T_UINT16, u16)
  INT32_FIELD("b", T_BOOL, b)
  INT32_FIELD("h", T_FLOAT16, h)
  INT32_FIELD("bf", T_BFLOAT16, bf)
  INT32_FIELD("i32", T_INT32, i32)
  t = typed(&m, "i64", T_INT64);
  t->n_int64_data = 2, t->int64_data = i64;
  t = typed(&m, "d", T_DOUBLE);
  t->n_double_data = 2, t->double_data = d;
  t = typed(&m, "u32", T_UINT32);
  t->n_uint64_data = 2, t->uint64_data = u32;
  t = typed(&m, "u64", T_UINT64);
  t->n_uint64_data = 2, t->uint64_data = u64;
  ir_graph *g = import_ok(tm_write(&m, "typed.onnx"));
  assert_memory_equal(const_data(g, "f", INFERD_TYPE_FP32), f, 8);
  assert_memory_equal(const_data(g, "i8", INFERD_TYPE_INT8), ((const int8_t[]){-1, 127}), 2);
  assert_memory_equal(const_data(g, "u8", INFERD_TYPE_UINT8), ((const uint8_t[]){255, 0}), 2);
  assert_memory_equal(const_data(g, "i16", INFERD_TYPE_INT16), ((const int16_t[]){-2, 300}), 4);
  assert_memory_equal(const_data(g, "u16", INFERD_TYPE_UINT16), ((const uint16_t[]){65535, 1}), 4);
  assert_memory_equal(const_data(g, "b", INFERD_TYPE_BOOL), ((const uint8_t[]){0, 1}), 2);
  assert_memory_equal(const_data(g, "h", INFERD_TYPE_FP16), ((const uint16_t[]){0x3c00, 0xc000}), 4);
  assert_memory_equal(const_data(g, "bf", INFERD_TYPE_BF16), ((const uint16_t[]){0x3f80, 0x4000}), 4);
  assert_memory_equal(const_data(g, "i32", INFERD_TYPE_INT32), i32, 8);
  assert_memory_equal(const_data(g, "i64", INFERD_TYPE_INT64), i64, 16);
  assert_memory_equal(const_data(g, "d", INFERD_TYPE_FP64), d, 16);
  assert_memory_equal(const_data(g, "u32", INFERD_TYPE_UINT32), ((const uint32_t[]){4000000000u, 1}), 8);
  assert_memory_equal(const_data(g, "u64", INFERD_TYPE_UINT64), u64, 16);
  ir_graph_delete(g);
  tm_free(&m);
}

/* One initializer `name` made by `make`, expecting an error with `code`
 * whose message contains `needle`. */
static void expect_tensor_error(void (*make)(test_model *m), inferd_error_code code, const char *needle) {
  test_model m;
  tm_init(&m);
  make(&m);
  const char *msg = import_error(tm_write(&m, "bad_tensor.onnx"), code);
  assert_contains(msg, "'bad'");
  assert_contains(msg, needle);
  tm_free(&m);
}

static void make_float_count(test_model *m) {
  static float f[3] = {1, 2, 3};
  Onnx__TensorProto *t = typed(m, "bad", T_FLOAT);
  t->n_float_data = 3, t->float_data = f;
}
static void make_raw_size(test_model *m) {
  static const float f[3] = {1, 2, 3};
  tm_initializer(m, "bad", T_FLOAT, 1, (const int64_t[]){4}, f, sizeof(f));
}
static void make_no_data(test_model *m) { typed(m, "bad", T_INT64); }
static void make_string(test_model *m) { typed(m, "bad", T_STRING); }
static void make_complex(test_model *m) { typed(m, "bad", T_COMPLEX64); }
static void make_negative_dim(test_model *m) {
  tm_initializer(m, "bad", T_FLOAT, 2, (const int64_t[]){-1, 2}, NULL, 0);
}
static void make_huge(test_model *m) {
  tm_initializer(m, "bad", T_FLOAT, 3, (const int64_t[]){INT64_MAX / 4, INT64_MAX / 4, 8}, NULL, 0);
}
static void make_no_type(test_model *m) { typed(m, "bad", T_FLOAT)->has_data_type = 0; }

static void test_tensor_errors(void **state) {
  (void)state;
  expect_tensor_error(make_float_count, INFERD_ERROR_INVALID_ARG, "3 values in float_data");
  expect_tensor_error(make_raw_size, INFERD_ERROR_INVALID_ARG, "12 bytes in raw_data");
  expect_tensor_error(make_raw_size, INFERD_ERROR_INVALID_ARG, "need 16");
  expect_tensor_error(make_no_data, INFERD_ERROR_INVALID_ARG, "no data");
  expect_tensor_error(make_string, INFERD_ERROR_UNSUPPORTED, "STRING");
  expect_tensor_error(make_complex, INFERD_ERROR_UNSUPPORTED, "COMPLEX64");
  expect_tensor_error(make_negative_dim, INFERD_ERROR_INVALID_ARG, "negative");
  expect_tensor_error(make_huge, INFERD_ERROR_TOO_LARGE, "too");
  expect_tensor_error(make_no_type, INFERD_ERROR_INVALID_ARG, "no data type");
}

/* ---- external data ------------------------------------------------------- */

static Onnx__TensorProto *external(test_model *m, const char *name, int64_t n, const char *location,
                                   const char *offset, const char *length) {
  Onnx__TensorProto *t = tm_initializer(m, name, T_FLOAT, 1, (const int64_t[]){n}, NULL, 0);
  t->has_data_location = 1;
  t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
  t->external_data = tm_alloc(m, 3 * sizeof(*t->external_data));
  const char *keys[] = {"location", "offset", "length"}, *values[] = {location, offset, length};
  for (int i = 0; i < 3; i++) {
    if (!values[i]) continue;
    Onnx__StringStringEntryProto *kv = tm_alloc(m, sizeof(*kv));
    onnx__string_string_entry_proto__init(kv);
    kv->key = (char *)keys[i];
    kv->value = (char *)values[i];
    t->external_data[t->n_external_data++] = kv;
  }
  return t;
}

static float ext_values[2048];

static void write_weights(void) {
  for (int i = 0; i < 2048; i++) ext_values[i] = (float)i * 0.5f;
  write_bytes(test_path("weights.bin"), ext_values, sizeof(ext_values));
  mkdir(test_path("sub"), 0755);
  write_bytes(test_path("sub/more.bin"), ext_values, 64);
}

static void test_external_data(void **state) {
  (void)state;
  write_weights();
  test_model m;
  tm_init(&m);
  external(&m, "aligned", 16, "weights.bin", "4096", "64");  /* page-aligned: mapped in place */
  external(&m, "odd", 4, "weights.bin", "6", NULL);          /* unaligned: copied */
  external(&m, "nested", 16, "sub/more.bin", NULL, "64");
  const char *path = tm_write(&m, "ext.onnx");
  ir_graph *g = import_ok(path);
  const float *a = const_data(g, "aligned", INFERD_TYPE_FP32);
  assert_memory_equal(a, ext_values + 1024, 64);
  assert_true(pointer_in_file_mapping(a, test_path("weights.bin")));
  assert_memory_equal(const_data(g, "odd", INFERD_TYPE_FP32), (const uint8_t *)ext_values + 6, 16);
  assert_memory_equal(const_data(g, "nested", INFERD_TYPE_FP32), ext_values, 64);
  ir_graph_delete(g);

  /* From a buffer there is no folder to find the data in. */
  size_t len;
  uint8_t *bytes = read_bytes(path, &len);
  inferd_error *e = onnx_import_buffer(bytes, len, &g);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_INVALID_ARG);
  assert_contains(inferd_error_message(e), "external");
  inferd_error_delete(e);
  free(bytes);
  tm_free(&m);
}

static void expect_external_error(const char *location, const char *offset, const char *length,
                                  inferd_error_code code, const char *needle) {
  test_model m;
  tm_init(&m);
  external(&m, "bad", 16, location, offset, length);
  const char *msg = import_error(tm_write(&m, "ext_bad.onnx"), code);
  assert_contains(msg, "'bad'");
  assert_contains(msg, needle);
  tm_free(&m);
}

static void test_external_data_errors(void **state) {
  (void)state;
  write_weights();
  expect_external_error("weights.bin", "8190", "64", INFERD_ERROR_INVALID_ARG, "beyond the end");
  expect_external_error("weights.bin", "8192", NULL, INFERD_ERROR_INVALID_ARG, "beyond the end");
  expect_external_error("weights.bin", "18446744073709551615", NULL, INFERD_ERROR_INVALID_ARG, "beyond the end");
  expect_external_error("weights.bin", "-4", NULL, INFERD_ERROR_INVALID_ARG, "not a number");
  expect_external_error("weights.bin", "0", "60", INFERD_ERROR_INVALID_ARG, "60 bytes");
  expect_external_error("../weights.bin", NULL, NULL, INFERD_ERROR_INVALID_ARG, "leaves the model's folder");
  expect_external_error("sub/../../weights.bin", NULL, NULL, INFERD_ERROR_INVALID_ARG, "leaves the model's folder");
  expect_external_error("sub\\..\\..\\weights.bin", NULL, NULL, INFERD_ERROR_INVALID_ARG, "leaves");
  expect_external_error("/etc/passwd", NULL, NULL, INFERD_ERROR_INVALID_ARG, "absolute");
  expect_external_error("", NULL, NULL, INFERD_ERROR_INVALID_ARG, "empty");
  expect_external_error("nothere.bin", NULL, NULL, INFERD_ERROR_NOT_FOUND, "nothere.bin");
  expect_external_error("sub", NULL, NULL, INFERD_ERROR_IO, "not a regular file");
}

/* ---- serialized tensors -------------------------------------------------- */

static void test_read_tensor_file(void **state) {
  (void)state;
  test_model m;
  tm_init(&m);
  static const int64_t values[6] = {1, -2, 3, -4, 5, -6};
  Onnx__TensorProto *t = tm_tensor(&m, "t0", T_INT64, 2, (const int64_t[]){2, 3}, values, sizeof(values));
  size_t len = onnx__tensor_proto__get_packed_size(t);
  uint8_t *buf = malloc(len);
  onnx__tensor_proto__pack(t, buf);
  write_bytes(test_path("t.pb"), buf, len);
  free(buf);
  ir_tensor tensor;
  char *name;
  inferd_error *e = onnx_read_tensor_file(test_path("t.pb"), &tensor, &name);
  if (e) fail_msg("%s", inferd_error_message(e));
  assert_int_equal(tensor.dtype, INFERD_TYPE_INT64);
  assert_int_equal(tensor.rank, 2);
  assert_int_equal(tensor.dims[1], 3);
  assert_memory_equal(tensor.data, values, sizeof(values));
  assert_string_equal(name, "t0");
  free(tensor.data);
  free(name);
  tm_free(&m);

  write_bytes(test_path("junk.pb"), "\xff\xff\xff", 3);
  e = onnx_read_tensor_file(test_path("junk.pb"), &tensor, NULL);
  assert_non_null(e);
  assert_contains(inferd_error_message(e), "junk.pb");
  inferd_error_delete(e);
  write_bytes(test_path("empty.pb"), "", 0);
  e = onnx_read_tensor_file(test_path("empty.pb"), &tensor, NULL);
  assert_non_null(e);
  assert_contains(inferd_error_message(e), "no data type");
  inferd_error_delete(e);

  /* A file of the ONNX node tests, when the test data is installed. */
  const char *suite = "/usr/share/libonnx-testdata/data/node/test_abs/test_data_set_0/input_0.pb";
  if (access(suite, R_OK) == 0) {
    assert_null(onnx_read_tensor_file(suite, &tensor, &name));
    assert_int_equal(tensor.dtype, INFERD_TYPE_FP32);
    assert_int_equal(tensor.rank, 3);
    assert_int_equal(tensor.dims[2], 5);
    assert_string_equal(name, "x");
    free(tensor.data);
    free(name);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_typed_fields),
      cmocka_unit_test(test_tensor_errors),
      cmocka_unit_test(test_external_data),
      cmocka_unit_test(test_external_data_errors),
      cmocka_unit_test(test_read_tensor_file),
  };
  return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
