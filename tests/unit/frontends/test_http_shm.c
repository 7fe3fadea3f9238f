/*
 * The register bodies of the shared-memory extension: every field's type
 * checked with a message naming it; base64 strict (padding, alphabet,
 * length); and, fuzz-style, every truncation and many byte mutations of
 * valid bodies parse or fail cleanly (run under the ASan build too).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/http/http_shm.h"

static void system_fails(const char *body, const char *needle) {
  http_shm_system_register r;
  inferd_error *err = http_shm_parse_system_register(body, strlen(body), &r);
  if (!err) fail_msg("parsing %s should fail", body);
  assert_int_equal(inferd_error_code_of(err), INFERD_ERROR_INVALID_ARG);
  if (!strstr(inferd_error_message(err), needle)) fail_msg("message '%s' lacks '%s'", inferd_error_message(err), needle);
  assert_null(r.key);
  inferd_error_delete(err);
}

static void cuda_fails(const char *body, const char *needle) {
  http_shm_cuda_register r;
  inferd_error *err = http_shm_parse_cuda_register(body, strlen(body), &r);
  if (!err) fail_msg("parsing %s should fail", body);
  assert_int_equal(inferd_error_code_of(err), INFERD_ERROR_INVALID_ARG);
  if (!strstr(inferd_error_message(err), needle)) fail_msg("message '%s' lacks '%s'", inferd_error_message(err), needle);
  inferd_error_delete(err);
}

/* base64 of the bytes 0, 1, ..., 63. */
static const char HANDLE_B64[] =
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";

static void test_system_register(void **state) {
  (void)state;
  const char *ok = "{\"key\":\"/input_data\",\"offset\":16,\"byte_size\":64}";
  http_shm_system_register r;
  assert_null(http_shm_parse_system_register(ok, strlen(ok), &r));
  assert_string_equal(r.key, "/input_data");
  assert_int_equal(r.offset, 16);
  assert_int_equal(r.byte_size, 64);
  http_shm_system_register_free(&r);
  const char *no_offset = "{\"key\":\"/k\",\"byte_size\":1}";
  assert_null(http_shm_parse_system_register(no_offset, strlen(no_offset), &r));
  assert_int_equal(r.offset, 0);
  http_shm_system_register_free(&r);
  system_fails("", "has no body");
  system_fails("[1]", "must be a JSON object");
  system_fails("{\"key\":", "malformed register JSON");
  system_fails("{\"byte_size\":1}", "no 'key'");
  system_fails("{\"key\":5,\"byte_size\":1}", "'key' must be a string");
  system_fails("{\"key\":\"/a\\u0000b\",\"byte_size\":1}", "NUL");
  system_fails("{\"key\":\"/k\"}", "no 'byte_size'");
  system_fails("{\"key\":\"/k\",\"byte_size\":\"64\"}", "'byte_size' must be a non-negative integer");
  system_fails("{\"key\":\"/k\",\"byte_size\":1.5}", "'byte_size' must be a non-negative integer");
  system_fails("{\"key\":\"/k\",\"byte_size\":1,\"offset\":-1}", "'offset' must be a non-negative integer");
  system_fails("{\"key\":\"/k\",\"byte_size\":1,\"offset\":null}", "'offset' must be");
  system_fails("{\"key\":\"/k\",\"key\":\"/j\",\"byte_size\":1}", "duplicate");
  system_fails("{\"key\":\"/k\",\"byte_size\":99999999999999999999}", "malformed");
}

static void test_cuda_register(void **state) {
  (void)state;
  char ok[256];
  snprintf(ok, sizeof(ok), "{\"raw_handle\":{\"b64\":\"%s\"},\"device_id\":1,\"byte_size\":4096}", HANDLE_B64);
  http_shm_cuda_register r;
  assert_null(http_shm_parse_cuda_register(ok, strlen(ok), &r));
  for (int i = 0; i < 64; i++) assert_int_equal(r.raw_handle[i], i);
  assert_int_equal(r.device_id, 1);
  assert_int_equal(r.byte_size, 4096);
  cuda_fails("{\"device_id\":0,\"byte_size\":1}", "no 'raw_handle'");
  cuda_fails("{\"raw_handle\":\"AAAA\",\"device_id\":0,\"byte_size\":1}", "'raw_handle' must be an object");
  cuda_fails("{\"raw_handle\":{},\"device_id\":0,\"byte_size\":1}", "'raw_handle' has no 'b64'");
  cuda_fails("{\"raw_handle\":{\"b64\":[]},\"device_id\":0,\"byte_size\":1}", "'raw_handle.b64' must be a string");
  cuda_fails("{\"raw_handle\":{\"b64\":\"AAAA\"},\"device_id\":0,\"byte_size\":1}", "decodes to 3 bytes");
  cuda_fails("{\"raw_handle\":{\"b64\":\"A!AA\"},\"device_id\":0,\"byte_size\":1}", "not base64");
  char body[512];
  snprintf(body, sizeof(body), "{\"raw_handle\":{\"b64\":\"%s\"},\"byte_size\":1}", HANDLE_B64);
  cuda_fails(body, "no 'device_id'");
  snprintf(body, sizeof(body), "{\"raw_handle\":{\"b64\":\"%s\"},\"device_id\":-1,\"byte_size\":1}", HANDLE_B64);
  cuda_fails(body, "'device_id' must be a non-negative integer");
  snprintf(body, sizeof(body), "{\"raw_handle\":{\"b64\":\"%s\"},\"device_id\":true,\"byte_size\":1}", HANDLE_B64);
  cuda_fails(body, "'device_id' must be");
  snprintf(body, sizeof(body), "{\"raw_handle\":{\"b64\":\"%s\"},\"device_id\":0}", HANDLE_B64);
  cuda_fails(body, "no 'byte_size'");
  snprintf(body, sizeof(body), "{\"raw_handle\":{\"b64\":\"%s%s\"},\"device_id\":0,\"byte_size\":1}", "AAAA",
           HANDLE_B64);
  cuda_fails(body, "decodes to 67 bytes");
  snprintf(body, sizeof(body), "{\"raw_handle\":{\"b64\":\"%s%s\"},\"device_id\":0,\"byte_size\":1}", "AA==",
           HANDLE_B64);
  cuda_fails(body, "not base64"); /* '=' before the end */
  snprintf(body, sizeof(body), "{\"raw_handle\":{\"b64\":\"%s%s\"},\"device_id\":0,\"byte_size\":1}", "AAAAAAAA",
           HANDLE_B64);
  cuda_fails(body, "not base64 of at most 64 bytes"); /* 70 bytes do not fit */
}

static void test_base64(void **state) {
  (void)state;
  unsigned char out[8];
  size_t n;
  assert_true(http_base64_decode("", 0, out, sizeof(out), &n));
  assert_int_equal(n, 0);
  assert_true(http_base64_decode("TWFu", 4, out, sizeof(out), &n));
  assert_int_equal(n, 3);
  assert_memory_equal(out, "Man", 3);
  assert_true(http_base64_decode("TWE=", 4, out, sizeof(out), &n));
  assert_int_equal(n, 2);
  assert_true(http_base64_decode("TQ==", 4, out, sizeof(out), &n));
  assert_int_equal(n, 1);
  assert_true(http_base64_decode("+/+/", 4, out, sizeof(out), &n));
  assert_memory_equal(out, "\xfb\xff\xbf", 3);
  assert_false(http_base64_decode("TWF", 3, out, sizeof(out), &n));      /* not a multiple of 4 */
  assert_false(http_base64_decode("T===", 4, out, sizeof(out), &n));     /* '=' too early */
  assert_false(http_base64_decode("TQ=a", 4, out, sizeof(out), &n));     /* data after '=' */
  assert_false(http_base64_decode("TQ==TWFu", 8, out, sizeof(out), &n)); /* '=' not at the end */
  assert_false(http_base64_decode("TW-u", 4, out, sizeof(out), &n));     /* URL alphabet */
  assert_false(http_base64_decode("TWFuTWFuTWFu", 12, out, sizeof(out), &n)); /* 9 bytes into 8 */
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 11);
}

/* Each parse either succeeds or fails with an error; nothing else (ASan
 * and the leak checker see the rest). */
static void parse_both(const char *body, size_t size) {
  http_shm_system_register s;
  inferd_error *err = http_shm_parse_system_register(body, size, &s);
  if (err)
    inferd_error_delete(err);
  else
    http_shm_system_register_free(&s);
  http_shm_cuda_register c;
  inferd_error_delete(http_shm_parse_cuda_register(body, size, &c));
}

static void test_truncations_and_mutations(void **state) {
  (void)state;
  char cuda[256];
  snprintf(cuda, sizeof(cuda), "{\"raw_handle\":{\"b64\":\"%s\"},\"device_id\":0,\"byte_size\":4096}", HANDLE_B64);
  const char *bodies[] = {"{\"key\":\"/input_data\",\"offset\":16,\"byte_size\":64}", cuda};
  static const char alphabet[] = "{}[]\":,0123456789-.eE=+/\\u tnfrlsA\x00\xff";
  for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
    const size_t len = strlen(bodies[b]);
    char *copy = malloc(len + 1);
    for (size_t cut = 0; cut <= len; cut++) {
      memcpy(copy, bodies[b], cut);
      parse_both(copy, cut);
    }
    for (int round = 0; round < 3000; round++) {
      memcpy(copy, bodies[b], len);
      const int edits = 1 + (int)(next_random() % 4);
      for (int e = 0; e < edits; e++) copy[next_random() % len] = alphabet[next_random() % (sizeof(alphabet) - 1)];
      parse_both(copy, len);
    }
    free(copy);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_system_register),
      cmocka_unit_test(test_cuda_register),
      cmocka_unit_test(test_base64),
      cmocka_unit_test(test_truncations_and_mutations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
