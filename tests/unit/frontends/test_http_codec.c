/*
 * The HTTP frontend's request and response codecs: inference request JSON
 * (envelope plus fast data arrays, the binary tensor extension and every
 * validation error), response JSON and binary outputs, and gzip/deflate
 * bodies including bombs that inflate past the size limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "frontends/http/http_compress.h"
#include "frontends/http/http_infer_request.h"
#include "frontends/http/http_infer_response.h"
#include "frontends/http/http_json_scan.h"

static void decode_ok(const void *body, size_t size, const char *header, http_infer_request *r) {
  inferd_error *err = http_infer_request_decode(body, size, header, r);
  if (err) fail_msg("decode: %s", inferd_error_message(err));
}

static void decode_fails(const void *body, size_t size, const char *header, inferd_error_code code,
                         const char *needle) {
  http_infer_request r;
  inferd_error *err = http_infer_request_decode(body, size, header, &r);
  if (!err) fail_msg("decoding %.*s should fail", (int)size, (const char *)body);
  assert_int_equal(inferd_error_code_of(err), code);
  if (!strstr(inferd_error_message(err), needle))
    fail_msg("message '%s' lacks '%s'", inferd_error_message(err), needle);
  assert_null(r.inputs);
  assert_null(r.root);
  inferd_error_delete(err);
}

static void decode_text_fails(const char *json, const char *needle) {
  decode_fails(json, strlen(json), NULL, INFERD_ERROR_INVALID_ARG, needle);
}

static void test_scanner_finds_data_arrays(void **state) {
  (void)state;
  const char *text =
      "{\"id\":\"a]\\\"[\",\"inputs\":[{\"name\":\"x\",\"data\":[[1,2],[3]],\"shape\":[3]},"
      "{\"data\":\"s\"},{\"d\\u0061ta\":[1]}],\"outputs\":[{\"data\":[9]}]}";
  http_json_scan scan;
  assert_int_equal(http_json_scan_data(text, strlen(text), &scan), HTTP_JSON_SCANNED);
  assert_int_equal(scan.span_count, 3);
  assert_memory_equal(text + scan.spans[0].begin, "[[1,2],[3]]", scan.spans[0].end - scan.spans[0].begin);
  assert_int_equal(scan.spans[1].begin, scan.spans[1].end);
  assert_int_equal(scan.spans[2].begin, scan.spans[2].end);
  assert_non_null(strstr(scan.envelope, "\"data\":0,\"shape\""));
  assert_non_null(strstr(scan.envelope, "\"outputs\":[{\"data\":[9]}]"));
  http_json_scan_free(&scan);
  assert_int_equal(http_json_scan_data("{\"inputs\":[{\"data\":[1,2}", 24, &scan), HTTP_JSON_UNSCANNABLE);
  assert_int_equal(http_json_scan_data("[1]", 3, &scan), HTTP_JSON_UNSCANNABLE);
}

/* A request whose input 0 has a data array of `levels` brackets around one
 * number: the document is levels + 3 deep (root, inputs, the input). */
static char *nested_data_request(int levels, const char *datatype) {
  char *text = malloc((size_t)levels * 2 + 256);
  int n = sprintf(text, "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"%s\",\"data\":", datatype);
  for (int i = 0; i < levels; i++) text[n++] = '[';
  text[n++] = '1';
  for (int i = 0; i < levels; i++) text[n++] = ']';
  strcpy(text + n, "}]}");
  return text;
}

/* Triton's depth limit of 100, counted by the scanner over the data arrays
 * and the rest alike: 100 levels decode, 101 are refused naming the limit. */
static void test_scanner_depth_limit(void **state) {
  (void)state;
  http_json_scan scan;
  char *at_limit = nested_data_request(HTTP_JSON_MAX_DEPTH - 3, "FP32");
  assert_int_equal(http_json_scan_data(at_limit, strlen(at_limit), &scan), HTTP_JSON_SCANNED);
  http_json_scan_free(&scan);
  http_infer_request r;
  decode_ok(at_limit, strlen(at_limit), NULL, &r);
  assert_int_equal(r.input_count, 1);
  http_infer_request_free(&r);
  free(at_limit);
  char *over = nested_data_request(HTTP_JSON_MAX_DEPTH - 2, "FP32");
  assert_int_equal(http_json_scan_data(over, strlen(over), &scan), HTTP_JSON_TOO_DEEP);
  decode_text_fails(over, "more than 100 levels deep");
  free(over);
  /* Deep elsewhere than in data (parameters, outputs), and deep text the
   * scanner cannot walk (it falls back to jansson) are refused alike. */
  char deep[512];
  int n = sprintf(deep, "{\"parameters\":{\"p\":");
  for (int i = 0; i < 100; i++) deep[n++] = '[';
  for (int i = 0; i < 100; i++) deep[n++] = ']';
  strcpy(deep + n, "},\"inputs\":[]}");
  assert_int_equal(http_json_scan_data(deep, strlen(deep), &scan), HTTP_JSON_TOO_DEEP);
  decode_text_fails(deep, "more than 100 levels deep");
  n = sprintf(deep, "[");
  for (int i = 0; i < 101; i++) deep[n++] = '{';
  deep[n] = '\0';
  assert_int_equal(http_json_scan_data(deep, strlen(deep), &scan), HTTP_JSON_UNSCANNABLE);
  decode_text_fails(deep, "more than 100 levels deep");
}

/* The count for bodies the scanner does not walk: brackets in strings (with
 * escaped quotes) are text, and a stray closing bracket lowers nothing. */
static void test_json_depth_over(void **state) {
  (void)state;
  char text[256];
  for (int levels = 1; levels <= 100; levels++) {
    int n = 0;
    for (int i = 0; i < levels; i++) text[n++] = i % 2 ? '[' : '{';
    text[n] = '\0';
    assert_false(http_json_depth_over(text, (size_t)n, levels));
    assert_true(http_json_depth_over(text, (size_t)n, levels - 1));
  }
  const char *strings = "{\"a\":\"[[[[\\\"{{{{\",\"b\":[1]}";
  assert_false(http_json_depth_over(strings, strlen(strings), 2));
  assert_true(http_json_depth_over(strings, strlen(strings), 1));
  assert_false(http_json_depth_over("]]]][[", 6, 2));
  assert_true(http_json_depth_over("]]]][[[", 7, 2));
  assert_false(http_json_depth_over("[\"[[[", 5, 1)); /* an unterminated string ends the count */
}

/* Non-objects before an object leave more entries than the first capacity
 * without a span; the decoder then names the first of them. */
static void test_scanner_many_non_objects_before_an_object(void **state) {
  (void)state;
  char text[512];
  int n = snprintf(text, sizeof(text), "{\"inputs\":[");
  for (int i = 0; i < 40; i++) n += snprintf(text + n, sizeof(text) - (size_t)n, "%s,", i % 2 ? "[1]" : "0");
  snprintf(text + n, sizeof(text) - (size_t)n, "{\"data\":[7,8]}]}");
  http_json_scan scan;
  assert_int_equal(http_json_scan_data(text, strlen(text), &scan), HTTP_JSON_SCANNED);
  assert_int_equal(scan.span_count, 41);
  for (int i = 0; i < 40; i++) assert_int_equal(scan.spans[i].begin, scan.spans[i].end);
  assert_memory_equal(text + scan.spans[40].begin, "[7,8]", scan.spans[40].end - scan.spans[40].begin);
  http_json_scan_free(&scan);
  decode_text_fails("{\"inputs\":[0,0,0,0,0,0,0,0,0,{}]}", "inputs[0] must be an object");
  decode_text_fails(text, "inputs[0] must be an object");
}

static void test_decode_json_request(void **state) {
  (void)state;
  const char *body =
      "{\"id\":\"req-1\",\"parameters\":{\"priority\":2,\"timeout\":500,\"custom\":\"x\"},"
      "\"inputs\":[{\"name\":\"IN0\",\"shape\":[2,2],\"datatype\":\"FP32\",\"data\":[[1,2],[3,4.5]]},"
      "{\"name\":\"IN1\",\"shape\":[2],\"datatype\":\"BYTES\",\"data\":[\"ab\",\"\"]},"
      "{\"name\":\"IN2\",\"shape\":[1],\"datatype\":\"INT64\",\"d\\u0061ta\":[-7]}],"
      "\"outputs\":[{\"name\":\"OUT0\",\"parameters\":{\"binary_data\":true}},"
      "{\"name\":\"OUT1\",\"parameters\":{\"classification\":3}}]}";
  http_infer_request r;
  decode_ok(body, strlen(body), NULL, &r);
  assert_string_equal(r.id, "req-1");
  assert_int_equal(r.priority, 2);
  assert_int_equal(r.timeout_us, 500);
  assert_false(r.binary_data_output);
  assert_int_equal(r.input_count, 3);
  assert_string_equal(r.inputs[0].name, "IN0");
  assert_int_equal(r.inputs[0].datatype, INFERD_TYPE_FP32);
  assert_int_equal(r.inputs[0].rank, 2);
  assert_int_equal(r.inputs[0].byte_size, 16);
  const float *f = r.inputs[0].data;
  assert_true(f[0] == 1 && f[3] == 4.5f);
  assert_int_equal(r.inputs[1].byte_size, 10);
  assert_memory_equal(r.inputs[1].data, "\x02\0\0\0ab\0\0\0\0", 10);
  assert_int_equal(*(const int64_t *)r.inputs[2].data, -7); /* through the DOM fallback */
  assert_int_equal(r.output_count, 2);
  assert_true(r.outputs[0].binary);
  assert_int_equal(r.outputs[0].classification, 0);
  assert_false(r.outputs[1].binary);
  assert_int_equal(r.outputs[1].classification, 3);
  http_infer_request_free(&r);
}

/* Builds JSON + binary like tritonclient does; returns the body. */
static unsigned char *binary_body(const char *json, const void *bin, size_t bin_size, size_t *size, char *header) {
  const size_t n = strlen(json);
  unsigned char *b = malloc(n + bin_size);
  memcpy(b, json, n);
  memcpy(b + n, bin, bin_size);
  *size = n + bin_size;
  sprintf(header, "%zu", n);
  return b;
}

static void test_decode_binary_request(void **state) {
  (void)state;
  const char *json =
      "{\"inputs\":[{\"name\":\"A\",\"shape\":[3],\"datatype\":\"FP32\",\"parameters\":"
      "{\"binary_data_size\":12}},{\"name\":\"B\",\"shape\":[1],\"datatype\":\"BYTES\","
      "\"parameters\":{\"binary_data_size\":7}}],\"parameters\":{\"binary_data_output\":true}}";
  const unsigned char bin[19] = {0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 3, 0, 0, 0, 'x', 'y', 'z'};
  size_t size;
  char header[32];
  unsigned char *body = binary_body(json, bin, sizeof(bin), &size, header);
  http_infer_request r;
  decode_ok(body, size, header, &r);
  assert_true(r.binary_data_output);
  assert_int_equal(r.inputs[0].byte_size, 12);
  float f[3];
  memcpy(f, r.inputs[0].data, 12);
  assert_true(f[0] == 1 && f[1] == 2 && f[2] == 3);
  assert_int_equal((uintptr_t)r.inputs[0].data % 4, 0); /* copied when misaligned */
  assert_int_equal(r.inputs[1].byte_size, 7);
  assert_memory_equal(r.inputs[1].data, bin + 12, 7);
  http_infer_request_free(&r);

  /* Header length past the body, sizes that do not add up, bad BYTES framing. */
  decode_fails(body, size, "100000", INFERD_ERROR_INVALID_ARG, "is larger than the");
  decode_fails(body, size, "12x", INFERD_ERROR_INVALID_ARG, "is not a number");
  decode_fails(body, size - 1, header, INFERD_ERROR_INVALID_ARG, "input 'B': binary_data_size 7 exceeds the 6 bytes");
  free(body);
  unsigned char extra[20];
  memcpy(extra, bin, 19);
  extra[19] = 0;
  body = binary_body(json, extra, 20, &size, header);
  decode_fails(body, size, header, INFERD_ERROR_INVALID_ARG, "1 bytes of binary data after the JSON header belong");
  free(body);
  const char *json2 =
      "{\"inputs\":[{\"name\":\"A\",\"shape\":[2],\"datatype\":\"FP32\",\"parameters\":"
      "{\"binary_data_size\":12}}]}";
  body = binary_body(json2, bin, 12, &size, header);
  decode_fails(body, size, header, INFERD_ERROR_INVALID_ARG,
               "input 'A': binary_data_size is 12 bytes but shape [2] of FP32 needs 8");
  decode_fails(body, size, NULL, INFERD_ERROR_INVALID_ARG, "malformed request JSON");
  free(body);
  const char *json3 =
      "{\"inputs\":[{\"name\":\"S\",\"shape\":[2],\"datatype\":\"BYTES\",\"parameters\":"
      "{\"binary_data_size\":7}}]}";
  body = binary_body(json3, bin + 12, 7, &size, header);
  decode_fails(body, size, header, INFERD_ERROR_INVALID_ARG, "input 'S': BYTES binary data ends in element 1");
  free(body);
  const unsigned char bad_len[8] = {9, 0, 0, 0, 'a', 'b', 'c', 'd'};
  const char *json4 =
      "{\"inputs\":[{\"name\":\"S\",\"shape\":[1],\"datatype\":\"BYTES\",\"parameters\":"
      "{\"binary_data_size\":8}}]}";
  body = binary_body(json4, bad_len, 8, &size, header);
  decode_fails(body, size, header, INFERD_ERROR_INVALID_ARG, "element 0 claims 9 bytes but only 4 remain");
  free(body);
  const char *json5 =
      "{\"inputs\":[{\"name\":\"A\",\"shape\":[3],\"datatype\":\"FP32\",\"parameters\":"
      "{\"binary_data_size\":12}}]}";
  decode_fails(json5, strlen(json5), NULL, INFERD_ERROR_INVALID_ARG,
               "input 'A' has 'binary_data_size' but the request has no Inference-Header-Content-Length");
}

static void test_decode_validation_errors(void **state) {
  (void)state;
  decode_text_fails("{\"inputs\":[", "malformed request JSON");
  decode_text_fails("[]", "must be an object");
  decode_text_fails("{}", "no 'inputs' array");
  decode_text_fails("{\"inputs\":[], \"inputs\":[]}", "malformed request JSON");
  decode_text_fails("{\"id\":5,\"inputs\":[]}", "'id' must be a string");
  decode_text_fails("{\"inputs\":[],\"parameters\":{\"priority\":-1}}", "'priority' must be a non-negative");
  decode_text_fails("{\"inputs\":[],\"parameters\":{\"binary_data_output\":1}}", "must be a boolean");
  decode_text_fails("{\"inputs\":[1]}", "inputs[0] must be an object");
  decode_text_fails("{\"inputs\":[{\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}", "inputs[0] has no 'name'");
  decode_text_fails("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"data\":[1]}]}", "input 'x' has no 'datatype'");
  decode_text_fails("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP8\",\"data\":[1]}]}",
                    "input 'x': unknown datatype 'FP8'");
  decode_text_fails("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"data\":[1]}]}", "input 'x' has no 'shape'");
  decode_text_fails("{\"inputs\":[{\"name\":\"x\",\"shape\":[-1],\"datatype\":\"FP32\",\"data\":[1]}]}",
                    "shape dimension 0 is not a non-negative integer");
  decode_text_fails("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,1,1,1,1,1,1,1,1],\"datatype\":\"FP32\",\"data\":[1]}]}",
                    "shape has 9 dimensions");
  decode_text_fails(
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[4294967296,4294967296],\"datatype\":\"FP32\",\"data\":[1]}]}",
      "shape is too large");
  decode_text_fails("{\"inputs\":[{\"name\":\"x\",\"shape\":[3],\"datatype\":\"FP32\",\"data\":[1,2]}]}",
                    "input 'x': shape has 3 elements but 'data' has 2");
  decode_text_fails("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"INT8\",\"data\":[300]}]}",
                    "input 'x': element 0 is out of range for INT8");
  decode_text_fails("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\"}]}",
                    "input 'x' has neither 'data' nor a 'binary_data_size'");
  decode_text_fails("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":5}]}",
                    "input 'x': 'data' must be an array");
  decode_text_fails(
      "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1],"
      "\"parameters\":{\"binary_data_size\":4}}]}",
      "input 'x' has both 'data' and 'binary_data_size'");
  decode_text_fails("{\"inputs\":[],\"outputs\":{}}", "'outputs' must be an array");
  decode_text_fails("{\"inputs\":[],\"outputs\":[{\"name\":\"y\",\"parameters\":{\"classification\":\"3\"}}]}",
                    "output 'y': 'classification' must be a non-negative integer");
  decode_text_fails("{\"inputs\":[],\"outputs\":[{\"parameters\":{}}]}", "outputs[0] has no 'name'");
#define SHM_INPUT(params) \
  "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\"," params "}]}"
  decode_text_fails(SHM_INPUT("\"data\":[1],\"parameters\":{\"shared_memory_region\":\"r\","
                              "\"shared_memory_byte_size\":4}"),
                    "input 'x' has both 'data' and 'shared_memory_region'");
  decode_text_fails(SHM_INPUT("\"parameters\":{\"shared_memory_region\":\"r\"}"),
                    "input 'x': parameter 'shared_memory_byte_size' is missing");
  decode_text_fails(SHM_INPUT("\"parameters\":{\"shared_memory_region\":7,\"shared_memory_byte_size\":4}"),
                    "'shared_memory_region' must be a non-empty string");
  decode_text_fails(SHM_INPUT("\"parameters\":{\"shared_memory_region\":\"r\",\"shared_memory_byte_size\":-4}"),
                    "'shared_memory_byte_size' must be a non-negative integer");
  decode_text_fails(SHM_INPUT("\"parameters\":{\"shared_memory_region\":\"r\",\"shared_memory_byte_size\":4,"
                              "\"shared_memory_offset\":\"8\"}"),
                    "'shared_memory_offset' must be a non-negative integer");
  decode_text_fails(SHM_INPUT("\"parameters\":{\"shared_memory_offset\":8}"),
                    "no shared_memory_region");
  decode_text_fails("{\"inputs\":[],\"outputs\":[{\"name\":\"y\",\"parameters\":{\"shared_memory_region\":\"r\"}}]}",
                    "output 'y': parameter 'shared_memory_byte_size' is missing");
}

/* An input and an output in shared memory: the region, offset and size
 * come through, the input has no data. */
static void test_decode_shared_memory(void **state) {
  (void)state;
  const char *text = SHM_INPUT("\"parameters\":{\"shared_memory_region\":\"in\",\"shared_memory_byte_size\":4,"
                               "\"shared_memory_offset\":16}")
      ;
  http_infer_request r;
  decode_ok(text, strlen(text), NULL, &r);
  assert_int_equal(r.input_count, 1);
  assert_string_equal(r.inputs[0].shm_region, "in");
  assert_int_equal(r.inputs[0].shm_offset, 16);
  assert_int_equal(r.inputs[0].shm_byte_size, 4);
  assert_null(r.inputs[0].data);
  http_infer_request_free(&r);
  const char *out = "{\"inputs\":[],\"outputs\":[{\"name\":\"y\",\"parameters\":{\"shared_memory_region\":\"o\","
                    "\"shared_memory_byte_size\":64}}]}";
  decode_ok(out, strlen(out), NULL, &r);
  assert_string_equal(r.outputs[0].shm_region, "o");
  assert_int_equal(r.outputs[0].shm_offset, 0);
  assert_int_equal(r.outputs[0].shm_byte_size, 64);
  http_infer_request_free(&r);
}

static int cleanups;
static void count_cleanup(const void *data, size_t len, void *arg);

/* An output written to shared memory: its parameters, no data, no binary
 * bytes after the JSON. */
static void test_encode_shared_memory_output(void **state) {
  (void)state;
  const int64_t shape[1] = {4};
  http_output_view views[2] = {
      {.name = "S", .datatype = INFERD_TYPE_FP32, .shape = shape, .rank = 1, .byte_size = 16, .shm_region = "out",
       .shm_offset = 32},
      {.name = "T", .datatype = INFERD_TYPE_FP32, .shape = shape, .rank = 1, .byte_size = 16, .shm_region = "o2"},
  };
  struct evbuffer *out = evbuffer_new();
  size_t json_len;
  int refs;
  assert_null(http_infer_response_encode("m", 1, NULL, views, 2, out, count_cleanup, &cleanups, &json_len, &refs));
  assert_int_equal(refs, 0);
  assert_int_equal(evbuffer_get_length(out), json_len);
  json_error_t jerr;
  json_t *root = json_loadb((const char *)evbuffer_pullup(out, -1), json_len, 0, &jerr);
  assert_non_null(root);
  json_t *o = json_array_get(json_object_get(root, "outputs"), 0);
  assert_null(json_object_get(o, "data"));
  json_t *p = json_object_get(o, "parameters");
  assert_string_equal(json_string_value(json_object_get(p, "shared_memory_region")), "out");
  assert_int_equal(json_integer_value(json_object_get(p, "shared_memory_byte_size")), 16);
  assert_int_equal(json_integer_value(json_object_get(p, "shared_memory_offset")), 32);
  assert_null(json_object_get(p, "binary_data_size"));
  p = json_object_get(json_array_get(json_object_get(root, "outputs"), 1), "parameters");
  assert_null(json_object_get(p, "shared_memory_offset")); /* 0 is left out */
  json_decref(root);
  evbuffer_free(out);
}

static void count_cleanup(const void *data, size_t len, void *arg) {
  (void)data, (void)len;
  assert_ptr_equal(arg, &cleanups);
  cleanups++;
}

static void test_encode_response(void **state) {
  (void)state;
  const int64_t shape_a[2] = {2, 2}, shape_b[1] = {2}, shape_c[1] = {3};
  const float a[4] = {1.0f, -0.5f, 0.1f, 3e38f};
  const unsigned char b[11] = {3, 0, 0, 0, 'a', '"', 'c', 0, 0, 0, 0};
  const int32_t c[3] = {7, -8, 9};
  http_output_view views[3] = {
      {.name = "A", .datatype = INFERD_TYPE_FP32, .shape = shape_a, .rank = 2, .data = a, .byte_size = 16},
      {.name = "B", .datatype = INFERD_TYPE_BYTES, .shape = shape_b, .rank = 1, .data = b, .byte_size = 11},
      {.name = "C",
       .datatype = INFERD_TYPE_INT32,
       .shape = shape_c,
       .rank = 1,
       .data = c,
       .byte_size = 12,
       .binary = true},
  };
  struct evbuffer *out = evbuffer_new();
  size_t json_len;
  int refs;
  cleanups = 0;
  inferd_error *err =
      http_infer_response_encode("m\"1", 3, "rid", views, 3, out, count_cleanup, &cleanups, &json_len, &refs);
  assert_null(err);
  assert_int_equal(refs, 1);
  assert_int_equal(evbuffer_get_length(out), json_len + 12);
  unsigned char *all = evbuffer_pullup(out, -1);
  json_error_t jerr;
  json_t *root = json_loadb((const char *)all, json_len, 0, &jerr);
  assert_non_null(root);
  assert_string_equal(json_string_value(json_object_get(root, "model_name")), "m\"1");
  assert_string_equal(json_string_value(json_object_get(root, "model_version")), "3");
  assert_string_equal(json_string_value(json_object_get(root, "id")), "rid");
  json_t *outs = json_object_get(root, "outputs");
  assert_int_equal(json_array_size(outs), 3);
  json_t *oa = json_array_get(outs, 0);
  assert_string_equal(json_string_value(json_object_get(oa, "datatype")), "FP32");
  json_t *da = json_object_get(oa, "data");
  assert_int_equal(json_array_size(da), 4);
  assert_true((float)json_real_value(json_array_get(da, 2)) == 0.1f);
  assert_true((float)json_real_value(json_array_get(da, 3)) == 3e38f);
  json_t *ob = json_array_get(outs, 1);
  assert_string_equal(json_string_value(json_array_get(json_object_get(ob, "data"), 0)), "a\"c");
  assert_string_equal(json_string_value(json_array_get(json_object_get(ob, "data"), 1)), "");
  json_t *oc = json_array_get(outs, 2);
  assert_null(json_object_get(oc, "data"));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(oc, "parameters"), "binary_data_size")), 12);
  assert_memory_equal(all + json_len, c, 12);
  json_decref(root);
  evbuffer_free(out);
  assert_int_equal(cleanups, 1);

  /* A BYTES output whose layout does not match its shape is an error. */
  http_output_view bad = {
      .name = "B", .datatype = INFERD_TYPE_BYTES, .shape = shape_c, .rank = 1, .data = b, .byte_size = 11};
  out = evbuffer_new();
  err = http_infer_response_encode("m", 1, NULL, &bad, 1, out, count_cleanup, &cleanups, &json_len, &refs);
  assert_non_null(err);
  assert_int_equal(inferd_error_code_of(err), INFERD_ERROR_INTERNAL);
  inferd_error_delete(err);
  evbuffer_free(out);

  size_t n;
  char *e = http_error_json("bad \"thing\"\n", &n);
  assert_string_equal(e, "{\"error\":\"bad \\\"thing\\\"\\n\"}");
  free(e);
}

static void test_accept_encoding(void **state) {
  (void)state;
  assert_int_equal(http_encoding_accepted(NULL), HTTP_ENCODING_IDENTITY);
  assert_int_equal(http_encoding_accepted("gzip"), HTTP_ENCODING_GZIP);
  assert_int_equal(http_encoding_accepted("deflate"), HTTP_ENCODING_DEFLATE);
  assert_int_equal(http_encoding_accepted("deflate, gzip;q=0.5"), HTTP_ENCODING_GZIP);
  assert_int_equal(http_encoding_accepted("gzip;q=0, deflate"), HTTP_ENCODING_DEFLATE);
  assert_int_equal(http_encoding_accepted("br, identity"), HTTP_ENCODING_IDENTITY);
  http_encoding e;
  assert_true(http_encoding_from_header(NULL, &e) && e == HTTP_ENCODING_IDENTITY);
  assert_true(http_encoding_from_header("GZIP", &e) && e == HTTP_ENCODING_GZIP);
  assert_true(http_encoding_from_header(" deflate ", &e) && e == HTTP_ENCODING_DEFLATE);
  assert_false(http_encoding_from_header("br", &e));
}

static void round_trip(http_encoding enc, size_t size) {
  unsigned char *data = malloc(size + 1);
  for (size_t i = 0; i < size; i++) data[i] = (unsigned char)((i * 7919) % 251 < 100 ? 'a' : i);
  struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
  /* Several chunks, as responses are built. */
  evbuffer_add(in, data, size / 2);
  evbuffer_add(in, data + size / 2, size - size / 2);
  assert_null(http_deflate(in, enc, out));
  assert_int_equal(evbuffer_get_length(in), size);
  const size_t clen = evbuffer_get_length(out);
  unsigned char *c = evbuffer_pullup(out, -1);
  void *back;
  size_t back_size;
  inferd_error *err = http_inflate(c, clen, enc, size, &back, &back_size);
  if (err) fail_msg("%s", inferd_error_message(err));
  assert_int_equal(back_size, size);
  assert_memory_equal(back, data, size);
  free(back);
  if (size > 0) {
    /* One byte under the inflated size is over the limit. */
    err = http_inflate(c, clen, enc, size - 1, &back, &back_size);
    assert_non_null(err);
    assert_int_equal(inferd_error_code_of(err), INFERD_ERROR_TOO_LARGE);
    inferd_error_delete(err);
    /* Truncated. */
    err = http_inflate(c, clen - 1, enc, size, &back, &back_size);
    if (!err) fail_msg("%s of %zu bytes truncated: no error", http_encoding_name(enc), size);
    assert_int_equal(inferd_error_code_of(err), INFERD_ERROR_INVALID_ARG);
    inferd_error_delete(err);
  }
  evbuffer_free(in);
  evbuffer_free(out);
  free(data);
}

static void test_compression_round_trips(void **state) {
  (void)state;
  const size_t sizes[] = {0, 1, 1000, 200000, 3000000};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    round_trip(HTTP_ENCODING_GZIP, sizes[i]);
    round_trip(HTTP_ENCODING_DEFLATE, sizes[i]);
  }
}

static void test_compression_bombs_and_garbage(void **state) {
  (void)state;
  /* 64 MiB of zeros compresses to about 64 KiB; a 1 MiB limit stops it
   * without inflating it all. */
  const size_t big = 64u << 20;
  unsigned char *zeros = calloc(1, big);
  uLongf clen = compressBound(big);
  unsigned char *c = malloc(clen);
  assert_int_equal(compress2(c, &clen, zeros, big, 9), Z_OK);
  void *out;
  size_t out_size;
  inferd_error *err = http_inflate(c, clen, HTTP_ENCODING_DEFLATE, 1u << 20, &out, &out_size);
  assert_non_null(err);
  assert_int_equal(inferd_error_code_of(err), INFERD_ERROR_TOO_LARGE);
  assert_non_null(strstr(inferd_error_message(err), "1048576-byte limit"));
  inferd_error_delete(err);
  free(c);
  free(zeros);
  /* Raw deflate (no zlib header) is accepted as "deflate". */
  const char *text = "hello hello hello";
  z_stream zs = {0};
  unsigned char raw[128];
  deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
  zs.next_in = (unsigned char *)text;
  zs.avail_in = (uInt)strlen(text);
  zs.next_out = raw;
  zs.avail_out = sizeof(raw);
  assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
  const size_t raw_len = sizeof(raw) - zs.avail_out;
  deflateEnd(&zs);
  assert_null(http_inflate(raw, raw_len, HTTP_ENCODING_DEFLATE, 100, &out, &out_size));
  assert_int_equal(out_size, strlen(text));
  assert_memory_equal(out, text, out_size);
  free(out);
  err = http_inflate("not compressed at all", 21, HTTP_ENCODING_GZIP, 100, &out, &out_size);
  assert_non_null(err);
  assert_int_equal(inferd_error_code_of(err), INFERD_ERROR_INVALID_ARG);
  inferd_error_delete(err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scanner_finds_data_arrays), cmocka_unit_test(test_scanner_depth_limit),
      cmocka_unit_test(test_json_depth_over),
      cmocka_unit_test(test_scanner_many_non_objects_before_an_object), cmocka_unit_test(test_decode_json_request),
      cmocka_unit_test(test_decode_binary_request),     cmocka_unit_test(test_decode_validation_errors),
      cmocka_unit_test(test_encode_response),           cmocka_unit_test(test_accept_encoding),
      cmocka_unit_test(test_compression_round_trips),   cmocka_unit_test(test_compression_bombs_and_garbage),
      cmocka_unit_test(test_decode_shared_memory),      cmocka_unit_test(test_encode_shared_memory_output),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
