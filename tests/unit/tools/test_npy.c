/*
 * .npy reading and writing: round trips of every dtype and rank, files laid
 * out byte for byte as numpy writes them (versions 1.0 to 3.0), and every kind
 * of malformed file, each of which must be an error naming the file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "tools/npy.h"

static char tmp_dir[64];
static char tmp_path[128];

static int make_tmp_dir(void **state) {
  (void)state;
  snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/inferd-npy-XXXXXX");
  if (!mkdtemp(tmp_dir)) return -1;
  snprintf(tmp_path, sizeof(tmp_path), "%s/t.npy", tmp_dir);
  return 0;
}

static int remove_tmp_dir(void **state) {
  (void)state;
  unlink(tmp_path);
  rmdir(tmp_dir);
  return 0;
}

static void write_bytes(const void *bytes, size_t n) {
  FILE *f = fopen(tmp_path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(bytes, 1, n, f), n);
  fclose(f);
}

static size_t read_bytes(unsigned char *buf, size_t cap) {
  FILE *f = fopen(tmp_path, "rb");
  assert_non_null(f);
  size_t n = fread(buf, 1, cap, f);
  fclose(f);
  return n;
}

/* A version 1.0 file exactly as numpy lays it out: header padded with spaces
 * and a newline so that the data starts at a multiple of 64. `header_len`
 * overrides the stored length when not 0, and `data` follows the padding. */
static size_t npy_bytes(unsigned char *out, int major, const char *dict, const void *data, size_t data_len) {
  size_t pre = major == 1 ? 10 : 12;
  size_t dict_len = strlen(dict);
  size_t total = ((pre + dict_len + 1 + 63) / 64) * 64;
  size_t hlen = total - pre;
  memcpy(out, "\x93NUMPY", 6);
  out[6] = (unsigned char)major;
  out[7] = 0;
  if (major == 1) {
    out[8] = (unsigned char)(hlen & 0xff);
    out[9] = (unsigned char)(hlen >> 8);
  } else {
    for (int i = 0; i < 4; i++) out[8 + i] = (unsigned char)(hlen >> (8 * i));
  }
  memcpy(out + pre, dict, dict_len);
  memset(out + pre + dict_len, ' ', hlen - dict_len - 1);
  out[total - 1] = '\n';
  if (data_len) memcpy(out + total, data, data_len);
  return total + data_len;
}

/* Expects npy_read of the current bytes to fail with `code` and a message
 * that names the file and contains `words`. */
static void expect_read_error(inferd_error_code code, const char *words) {
  npy_array a;
  inferd_error *e = npy_read(tmp_path, &a);
  assert_non_null(e);
  const char *msg = inferd_error_message(e);
  if (inferd_error_code_of(e) != code || !strstr(msg, tmp_path) || !strstr(msg, words))
    fail_msg("expected %s with '%s', got %s: %s", inferd_error_code_name(code), words,
             inferd_error_code_name(inferd_error_code_of(e)), msg);
  assert_null(a.data);
  inferd_error_delete(e);
}

static void expect_read_error_bytes(const void *bytes, size_t n, inferd_error_code code, const char *words) {
  write_bytes(bytes, n);
  expect_read_error(code, words);
}

static void test_round_trip_every_dtype_and_rank(void **state) {
  (void)state;
  static const inferd_datatype types[] = {INFERD_TYPE_BOOL,   INFERD_TYPE_UINT8,  INFERD_TYPE_UINT16,
                                          INFERD_TYPE_UINT32, INFERD_TYPE_UINT64, INFERD_TYPE_INT8,
                                          INFERD_TYPE_INT16,  INFERD_TYPE_INT32,  INFERD_TYPE_INT64,
                                          INFERD_TYPE_FP16,   INFERD_TYPE_FP32,   INFERD_TYPE_FP64};
  /* Scalars, vectors, a zero-size dimension in front and in the middle, and
   * the largest rank the engine has. */
  static const struct {
    int rank;
    int64_t dims[INFERD_MAX_RANK];
  } shapes[] = {
      {0, {0}},          {1, {7}},          {1, {0}},    {2, {3, 5}}, {2, {0, 4}},
      {3, {2, 0, 3}},    {4, {2, 3, 4, 5}}, {8, {1, 2, 1, 3, 1, 2, 1, 2}},
  };
  for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
    size_t esize = inferd_datatype_size(types[t]);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
      size_t count = 1;
      for (int d = 0; d < shapes[s].rank; d++) count *= (size_t)shapes[s].dims[d];
      size_t nbytes = count * esize;
      unsigned char *data = malloc(nbytes ? nbytes : 1);
      for (size_t i = 0; i < nbytes; i++)
        data[i] = types[t] == INFERD_TYPE_BOOL ? (unsigned char)(i % 2) : (unsigned char)(i * 37 + t);
      assert_null(npy_write(tmp_path, types[t], shapes[s].rank, shapes[s].dims, data));

      unsigned char head[16];
      size_t got = read_bytes(head, sizeof(head));
      assert_true(got >= 10);
      assert_memory_equal(head, "\x93NUMPY\x01\x00", 8);
      size_t data_start = 10 + (size_t)(head[8] | head[9] << 8);
      assert_int_equal(data_start % 64, 0);

      npy_array a;
      inferd_error *e = npy_read(tmp_path, &a);
      if (e) fail_msg("%s", inferd_error_message(e));
      assert_int_equal(a.dtype, types[t]);
      assert_int_equal(a.rank, shapes[s].rank);
      for (int d = 0; d < a.rank; d++) assert_int_equal(a.dims[d], shapes[s].dims[d]);
      assert_int_equal(a.nbytes, nbytes);
      assert_non_null(a.data);
      if (nbytes) assert_memory_equal(a.data, data, nbytes);
      npy_free(&a);
      assert_null(a.data);
      free(data);
    }
  }
}

static void test_header_text_is_numpys(void **state) {
  (void)state;
  int64_t dims[] = {3};
  float v[3] = {1, 2, 3};
  assert_null(npy_write(tmp_path, INFERD_TYPE_FP32, 1, dims, v));
  unsigned char buf[256];
  size_t n = read_bytes(buf, sizeof(buf));
  /* numpy's own header for this array is 118 bytes, so data starts at 128. */
  assert_int_equal(n, 128 + 12);
  const char *want = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
  assert_memory_equal(buf + 10, want, strlen(want));
  assert_int_equal(buf[127], '\n');
  assert_int_equal(buf[126], ' ');

  int64_t none[1] = {0};
  assert_null(npy_write(tmp_path, INFERD_TYPE_INT64, 0, none, &(int64_t){42}));
  n = read_bytes(buf, sizeof(buf));
  const char *scalar = "{'descr': '<i8', 'fortran_order': False, 'shape': (), }";
  assert_memory_equal(buf + 10, scalar, strlen(scalar));
  assert_int_equal(n, 128 + 8);

  /* numpy 1.24+ leaves 21 - len("0") spaces for the first dimension to grow:
   * this header would fit in 128 bytes without them and takes 192 with them
   * (np.lib.format.write_array_header_1_0 gives 192 too). */
  int64_t wide[8] = {0, 100000, 100000, 100000, 100000, 100000, 100000, 100000};
  assert_null(npy_write(tmp_path, INFERD_TYPE_FP32, 8, wide, NULL));
  n = read_bytes(buf, sizeof(buf));
  assert_int_equal(n, 192);
  assert_int_equal(buf[191], '\n');
}

static void test_reads_numpy_variants(void **state) {
  (void)state;
  unsigned char buf[512];
  float v[6] = {0, 1, 2, 3, 4, 5};
  /* Versions 2.0 and 3.0 have a 32-bit header length. */
  for (int major = 1; major <= 3; major++) {
    size_t n = npy_bytes(buf, major, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", v, sizeof(v));
    write_bytes(buf, n);
    npy_array a;
    inferd_error *e = npy_read(tmp_path, &a);
    if (e) fail_msg("version %d: %s", major, inferd_error_message(e));
    assert_int_equal(a.rank, 2);
    assert_int_equal(a.dims[0], 2);
    assert_int_equal(a.dims[1], 3);
    assert_memory_equal(a.data, v, sizeof(v));
    npy_free(&a);
  }
  /* Keys in another order, double quotes, no trailing comma, '=' and '|'
   * byte orders, Python 2's long suffix. */
  static const struct {
    const char *dict;
    inferd_datatype type;
    size_t nbytes;
  } ok[] = {
      {"{\"shape\": (6,), \"fortran_order\": False, \"descr\": \"<f4\"}", INFERD_TYPE_FP32, 24},
      {"{'descr': '=i4', 'fortran_order': False, 'shape': (2,3)}", INFERD_TYPE_INT32, 24},
      {"{'descr': '|u1', 'fortran_order': False, 'shape': (24L,), }", INFERD_TYPE_UINT8, 24},
      {"{'descr': '<i1', 'fortran_order': False, 'shape': ( 4 , 6 ), }", INFERD_TYPE_INT8, 24},
      {"{'descr': '<u8', 'fortran_order': False, 'shape': (3,), }", INFERD_TYPE_UINT64, 24},
  };
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    size_t n = npy_bytes(buf, 1, ok[i].dict, v, ok[i].nbytes);
    write_bytes(buf, n);
    npy_array a;
    inferd_error *e = npy_read(tmp_path, &a);
    if (e) fail_msg("%s: %s", ok[i].dict, inferd_error_message(e));
    assert_int_equal(a.dtype, ok[i].type);
    assert_int_equal(a.nbytes, ok[i].nbytes);
    npy_free(&a);
  }
}

static void test_malformed_headers(void **state) {
  (void)state;
  unsigned char buf[512];
  float v[6] = {0};
  static const struct {
    const char *dict;
    inferd_error_code code;
    const char *words;
  } bad[] = {
      {"['descr', '<f4']", INFERD_ERROR_INVALID_ARG, "not a dict"},
      {"{'descr': '<f4', 'fortran_order': False}", INFERD_ERROR_INVALID_ARG, "missing 'shape'"},
      {"{'fortran_order': False, 'shape': (6,)}", INFERD_ERROR_INVALID_ARG, "missing 'descr'"},
      {"{'descr': '<f4', 'shape': (6,)}", INFERD_ERROR_INVALID_ARG, "missing 'fortran_order'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'extra': 1}", INFERD_ERROR_INVALID_ARG,
       "unexpected or repeated key 'extra'"},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", INFERD_ERROR_INVALID_ARG,
       "repeated key 'descr'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': [6]}", INFERD_ERROR_INVALID_ARG, "must be a tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (-6,)}", INFERD_ERROR_INVALID_ARG, "non-negative"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2 3)}", INFERD_ERROR_INVALID_ARG, "not a valid tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", INFERD_ERROR_INVALID_ARG,
       "too large"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}", INFERD_ERROR_INVALID_ARG,
       "more dimensions"},
      {"{'descr': '<f4', 'fortran_order': 0, 'shape': (6,)}", INFERD_ERROR_INVALID_ARG, "True or False"},
      {"{'descr': '<f4, 'fortran_order': False, 'shape': (6,)}", INFERD_ERROR_INVALID_ARG, "expected"},
      {"{'descr': '<f4' 'fortran_order': False, 'shape': (6,)}", INFERD_ERROR_INVALID_ARG, "expected ','"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,)} x", INFERD_ERROR_INVALID_ARG, "after the closing"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,)", INFERD_ERROR_INVALID_ARG, "malformed"},
      {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3)}", INFERD_ERROR_UNSUPPORTED, "Fortran"},
      {"{'descr': '>f4', 'fortran_order': False, 'shape': (6,)}", INFERD_ERROR_UNSUPPORTED, "big-endian"},
      {"{'descr': '>i8', 'fortran_order': False, 'shape': (3,)}", INFERD_ERROR_UNSUPPORTED, "big-endian"},
      {"{'descr': '<c8', 'fortran_order': False, 'shape': (3,)}", INFERD_ERROR_UNSUPPORTED, "'<c8' is not supported"},
      {"{'descr': '|S4', 'fortran_order': False, 'shape': (6,)}", INFERD_ERROR_UNSUPPORTED, "not supported"},
      {"{'descr': '|O', 'fortran_order': False, 'shape': (6,)}", INFERD_ERROR_UNSUPPORTED, "not supported"},
      {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,)}", INFERD_ERROR_UNSUPPORTED,
       "structured"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    size_t n = npy_bytes(buf, 1, bad[i].dict, v, sizeof(v));
    write_bytes(buf, n);
    npy_array a;
    inferd_error *e = npy_read(tmp_path, &a);
    if (!e) fail_msg("accepted: %s", bad[i].dict);
    const char *msg = inferd_error_message(e);
    if (inferd_error_code_of(e) != bad[i].code || !strstr(msg, bad[i].words) || !strstr(msg, tmp_path))
      fail_msg("%s: expected %s with '%s', got %s: %s", bad[i].dict, inferd_error_code_name(bad[i].code),
               bad[i].words, inferd_error_code_name(inferd_error_code_of(e)), msg);
    inferd_error_delete(e);
  }
}

static void test_malformed_files(void **state) {
  (void)state;
  unsigned char buf[512];
  float v[6] = {0};
  const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";

  expect_read_error_bytes("", 0, INFERD_ERROR_INVALID_ARG, "not a .npy file");
  expect_read_error_bytes("PK\x03\x04 this is a zip", 18, INFERD_ERROR_INVALID_ARG, "not a .npy file");
  expect_read_error_bytes("\x93NUMPY\x04\x00\x10\x00", 10, INFERD_ERROR_UNSUPPORTED, "version 4.0");
  expect_read_error_bytes("\x93NUMPY\x01\x01\x10\x00", 10, INFERD_ERROR_UNSUPPORTED, "version 1.1");
  expect_read_error_bytes("\x93NUMPY\x02\x00\x10\x00", 10, INFERD_ERROR_INVALID_ARG, "truncated in the header length");
  /* A v2 header that claims 4 GiB must not be allocated. */
  expect_read_error_bytes("\x93NUMPY\x02\x00\xff\xff\xff\xff{", 13, INFERD_ERROR_INVALID_ARG, "implausible");

  size_t n = npy_bytes(buf, 1, dict, v, sizeof(v));
  expect_read_error_bytes(buf, 40, INFERD_ERROR_INVALID_ARG, "truncated in the header");
  expect_read_error_bytes(buf, n - 1, INFERD_ERROR_INVALID_ARG, "truncated: its shape needs 24 bytes of data, it has 23");
  expect_read_error_bytes(buf, n - sizeof(v), INFERD_ERROR_INVALID_ARG, "it has 0");
  buf[n] = 0;
  expect_read_error_bytes(buf, n + 1, INFERD_ERROR_INVALID_ARG, "1 stray bytes");

  /* A shape whose byte count overflows size_t, and one that is merely far
   * larger than the file: neither may be allocated. */
  n = npy_bytes(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 8), }", NULL, 0);
  expect_read_error_bytes(buf, n, INFERD_ERROR_TOO_LARGE, "too large");
  n = npy_bytes(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }", NULL, 0);
  expect_read_error_bytes(buf, n, INFERD_ERROR_INVALID_ARG, "truncated");

  unsigned char bools[3] = {0, 1, 2};
  n = npy_bytes(buf, 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", bools, 3);
  expect_read_error_bytes(buf, n, INFERD_ERROR_INVALID_ARG, "bool element 2 has value 2");
}

static void test_missing_and_unreadable_paths(void **state) {
  (void)state;
  npy_array a;
  inferd_error *e = npy_read("/nonexistent/dir/x.npy", &a);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_NOT_FOUND);
  assert_non_null(strstr(inferd_error_message(e), "/nonexistent/dir/x.npy"));
  inferd_error_delete(e);

  e = npy_read(tmp_dir, &a);
  assert_non_null(e);
  assert_non_null(strstr(inferd_error_message(e), "directory"));
  inferd_error_delete(e);
}

static void test_write_errors(void **state) {
  (void)state;
  int64_t dims[] = {2};
  uint16_t bf16[2] = {0x3f80, 0x4000};
  inferd_error *e = npy_write(tmp_path, INFERD_TYPE_BF16, 1, dims, bf16);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_UNSUPPORTED);
  assert_non_null(strstr(inferd_error_message(e), "BF16 has no NumPy dtype"));
  inferd_error_delete(e);

  e = npy_write(tmp_path, INFERD_TYPE_BYTES, 1, dims, "ab");
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_UNSUPPORTED);
  inferd_error_delete(e);

  int64_t negative[] = {-1};
  e = npy_write(tmp_path, INFERD_TYPE_FP32, 1, negative, bf16);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_INVALID_ARG);
  inferd_error_delete(e);

  int64_t huge[] = {INT64_MAX, 4};
  e = npy_write(tmp_path, INFERD_TYPE_FP32, 2, huge, bf16);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_TOO_LARGE);
  inferd_error_delete(e);

  e = npy_write(tmp_path, INFERD_TYPE_FP32, 9, dims, bf16);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_INVALID_ARG);
  inferd_error_delete(e);

  e = npy_write("/nonexistent/dir/out.npy", INFERD_TYPE_FP32, 1, dims, bf16);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_IO);
  assert_non_null(strstr(inferd_error_message(e), "/nonexistent/dir/out.npy"));
  inferd_error_delete(e);

  /* A full disk: the write fails with an error, and only a regular file
   * would be removed. The test uses its own node of the /dev/full device
   * (char 1:7), made where root may, so nothing outside its folder is at
   * stake if that guard ever broke. */
  char full[160];
  snprintf(full, sizeof(full), "%s/full", tmp_dir);
  if (mknod(full, S_IFCHR | 0600, makedev(1, 7)) == 0) {
    const float floats[2] = {1, 2};
    e = npy_write(full, INFERD_TYPE_FP32, 1, dims, floats);
    assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_IO);
    assert_non_null(strstr(inferd_error_message(e), "writing failed"));
    inferd_error_delete(e);
    struct stat st;
    assert_int_equal(stat(full, &st), 0);
    unlink(full);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_every_dtype_and_rank),
      cmocka_unit_test(test_header_text_is_numpys),
      cmocka_unit_test(test_reads_numpy_variants),
      cmocka_unit_test(test_malformed_headers),
      cmocka_unit_test(test_malformed_files),
      cmocka_unit_test(test_missing_and_unreadable_paths),
      cmocka_unit_test(test_write_errors),
  };
  return cmocka_run_group_tests(tests, make_tmp_dir, remove_tmp_dir);
}
