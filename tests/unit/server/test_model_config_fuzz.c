/* Robustness: truncated and mutated configurations, text and JSON, must give
 * a config or an error, never a crash, a leak or a read out of bounds (run
 * under the ASan build too). Whatever parses and completes must survive its
 * JSON form unchanged. */
#include "server/pbtxt.h"
#include "unit/server/config_test_util.h"

static const inferd_tensor_info fuzz_inputs[] = {
    {.name = "input", .datatype = INFERD_TYPE_FP32, .rank = 4, .dims = {-1, 3, 224, 224}},
};
static const inferd_tensor_info fuzz_outputs[] = {
    {.name = "output", .datatype = INFERD_TYPE_FP32, .rank = 3, .dims = {-1, 1, 1000}},
    {.name = "features", .datatype = INFERD_TYPE_FP16, .rank = 3, .dims = {-1, -1, 2048}},
};
static const model_io_info fuzz_model = {fuzz_inputs, 1, fuzz_outputs, 2, true};

static const char unknown_sections[] =
    "name: \"m\"\n"
    "optimization { cuda { graphs: true graph_spec [ { batch_size: 1 input { key: \"x\" value: { dim: [1, 2] } } } ] } }\n"
    "sequence_batching { control_input [ { name: \"S\" control [ { kind: CONTROL_SEQUENCE_START "
    "fp32_false_true: [ 0, 1.5e0, -inf ] } ] } ] }\n"
    "instance_group { count: 1 rate_limiter { resources [ { name: \"R1\" count: 4 } ] } }\n"
    "model_warmup [ { name: \"w\" batch_size: 1 inputs { key: \"input\" value { data_type: TYPE_FP32 dims: [3, 224, "
    "224] random_data: true } } } ]\n";

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t next_random(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}

static void check_json_round_trip(const model_config *c) {
  char *json = NULL;
  assert_no_error(model_config_to_json(c, &json));
  model_config *back = NULL;
  inferd_error *e = model_config_parse_json(json, strlen(json), NULL, &back);
  if (e) fail_msg("the JSON of a completed config does not parse: %s\n%s", inferd_error_message(e), json);
  assert_configs_equal(c, back);
  free(json);
  model_config_free(back);
}

/* Parses `len` bytes (not NUL-terminated: the copy is exact-sized so ASan
 * sees any read past the end), then exercises what a server would do. */
static void check_text(const char *text, size_t len, bool json) {
  char *copy = malloc(len ? len : 1);
  memcpy(copy, text, len);
  model_config *c = NULL;
  inferd_error *e = json ? model_config_parse_json(copy, len, NULL, &c) : model_config_parse(copy, len, "fuzz.pbtxt", &c);
  free(copy);
  if (e) {
    assert_null(c);
    assert_true(strncmp(inferd_error_message(e), json ? "config JSON" : "fuzz.pbtxt", json ? 11 : 10) == 0);
    inferd_error_delete(e);
    return;
  }
  char *out = NULL;
  assert_no_error(model_config_to_json(c, &out));
  free(out);
  e = model_config_complete(c, "m", &fuzz_model, false);
  if (e)
    inferd_error_delete(e);
  else
    check_json_round_trip(c);
  model_config_free(c);
}

static void test_truncations(void **state) {
  (void)state;
  const char *texts[] = {resnet50_config, unknown_sections};
  for (size_t t = 0; t < 2; t++)
    for (size_t len = 0; len <= strlen(texts[t]); len++) check_text(texts[t], len, false);
}

static void test_json_truncations(void **state) {
  (void)state;
  model_config *c = parse_ok(resnet50_config);
  char *json = NULL;
  assert_no_error(model_config_to_json(c, &json));
  for (size_t len = 0; len <= strlen(json); len++) check_text(json, len, true);
  free(json);
  model_config_free(c);
}

static void mutate(char *buf, size_t *len, size_t cap) {
  static const char alphabet[] = "{}[]<>:,;-\"'#\n \\x0123456789.eE_aTRUEfalse\xff";
  int edits = 1 + (int)(next_random() % 4);
  for (int i = 0; i < edits && *len > 0; i++) {
    size_t at = next_random() % *len;
    switch (next_random() % 5) {
      case 0: /* replace a byte */
        buf[at] = alphabet[next_random() % (sizeof(alphabet) - 1)];
        break;
      case 4: /* a NUL byte */
        buf[at] = 0;
        break;
      case 1: { /* delete a span */
        size_t n = 1 + next_random() % 16;
        if (at + n > *len) n = *len - at;
        memmove(buf + at, buf + at + n, *len - at - n);
        *len -= n;
        break;
      }
      case 2: { /* duplicate a span */
        size_t n = 1 + next_random() % 32;
        if (at + n > *len) n = *len - at;
        if (*len + n > cap) break;
        memmove(buf + at + n, buf + at, *len - at);
        *len += n;
        break;
      }
      default: /* insert a byte */
        if (*len + 1 > cap) break;
        memmove(buf + at + 1, buf + at, *len - at);
        buf[at] = alphabet[next_random() % (sizeof(alphabet) - 1)];
        (*len)++;
        break;
    }
  }
}

static void test_mutations(void **state) {
  (void)state;
  char *json = NULL;
  model_config *c = parse_ok(resnet50_config);
  assert_no_error(model_config_to_json(c, &json));
  model_config_free(c);
  const char *texts[] = {resnet50_config, unknown_sections, json};
  enum { CAP = 16384 };
  char *buf = malloc(CAP);
  for (int iter = 0; iter < 6000; iter++) {
    int t = iter % 3;
    size_t len = strlen(texts[t]);
    assert_true(len < CAP);
    memcpy(buf, texts[t], len);
    mutate(buf, &len, CAP);
    check_text(buf, len, t == 2);
  }
  free(buf);
  free(json);
}

static void test_large_inputs(void **state) {
  (void)state;
  /* Long lists and many fields stay linear and bounded. */
  size_t cap = PBTXT_MAX_INPUT_BYTES;
  char *buf = malloc(cap);
  size_t len = (size_t)snprintf(buf, cap, "version_policy { specific { versions: [");
  for (int i = 1; len + 32 < cap / 2; i++) len += (size_t)snprintf(buf + len, cap - len, "%s%d", i > 1 ? "," : "", i);
  len += (size_t)snprintf(buf + len, cap - len, "] } }\n");
  while (len + 64 < cap) len += (size_t)snprintf(buf + len, cap - len, "parameters { key: \"k%zu\" }\n", len);
  model_config *c = NULL;
  assert_no_error(model_config_parse(buf, len, "big.pbtxt", &c));
  assert_true(c->version_policy.version_count > 50000);
  model_config_free(c);
  free(buf);

  /* Past the cap the input is refused before parsing. */
  size_t huge = PBTXT_MAX_INPUT_BYTES + 1;
  char *big = malloc(huge);
  memset(big, ' ', huge);
  inferd_error *e = model_config_parse(big, huge, "huge.pbtxt", &c);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_TOO_LARGE);
  inferd_error_delete(e);
  e = model_config_parse_json(big, huge, NULL, &c);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_TOO_LARGE);
  inferd_error_delete(e);
  free(big);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_truncations),
      cmocka_unit_test(test_json_truncations),
      cmocka_unit_test(test_mutations),
      cmocka_unit_test(test_large_inputs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
