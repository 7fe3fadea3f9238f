/*
 * A model's configuration from untrusted text: config.pbtxt (the text-format
 * parser and the reader that maps it onto model_config) and Triton's JSON
 * form (the load API's config override), then what the server does with
 * it: completion against a model, placement on GPUs, and the JSON the
 * configuration endpoints answer, which must parse back to the same JSON.
 *
 * Input: byte 0 chooses the form (bit 0: JSON, else text) and strict
 * completion (bit 1); the rest is the configuration.
 */
#include "fuzz/fuzz_util.h"
#include "server/model_config.h"

static const inferd_tensor_info model_inputs[] = {
    {.name = "input", .datatype = INFERD_TYPE_FP32, .rank = 4, .dims = {-1, 3, 224, 224}},
};
static const inferd_tensor_info model_outputs[] = {
    {.name = "output", .datatype = INFERD_TYPE_FP32, .rank = 3, .dims = {-1, 1, 1000}},
    {.name = "features", .datatype = INFERD_TYPE_FP16, .rank = 3, .dims = {-1, -1, 2048}},
};
static const model_io_info model = {model_inputs, 1, model_outputs, 2, true};

/* The configuration's JSON must read back as a configuration with the same
 * JSON. */
static void check_json_round_trip(const model_config *c) {
  char *json = NULL;
  inferd_error *err = model_config_to_json(c, &json);
  FUZZ_CHECK(err == NULL);
  model_config *back = NULL;
  err = model_config_parse_json(json, strlen(json), NULL, &back);
  if (err) fprintf(stderr, "the JSON of a completed config does not parse: %s\n%s\n", inferd_error_message(err), json);
  FUZZ_CHECK(err == NULL);
  char *again = NULL;
  FUZZ_CHECK(model_config_to_json(back, &again) == NULL);
  if (strcmp(json, again) != 0) fprintf(stderr, "JSON changed on reading it back:\n%s\n%s\n", json, again);
  FUZZ_CHECK(strcmp(json, again) == 0);
  free(again);
  free(json);
  model_config_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const bool json = data[0] & 1, strict = data[0] & 2;
  /* An exact-sized copy, not NUL-terminated, so ASan sees a read past it. */
  const size_t len = size - 1;
  char *text = malloc(len ? len : 1);
  FUZZ_CHECK(text != NULL);
  if (len) memcpy(text, data + 1, len);
  model_config *c = NULL;
  inferd_error *err =
      json ? model_config_parse_json(text, len, NULL, &c) : model_config_parse(text, len, "config.pbtxt", &c);
  free(text);
  if (err) {
    FUZZ_CHECK(c == NULL);
    inferd_error_delete(err);
    return 0;
  }
  char *out = NULL;
  FUZZ_CHECK(model_config_to_json(c, &out) == NULL);
  free(out);
  err = model_config_complete(c, "m", &model, strict);
  if (err) {
    inferd_error_delete(err);
    model_config_free(c);
    return 0;
  }
  FUZZ_CHECK(model_config_validate(c) == NULL);
  check_json_round_trip(c);
  static const int ordinals[] = {0, 1};
  const model_gpu_set gpus = {ordinals, 2, "GPUs 0, 1"};
  err = model_config_place_instances(c, &gpus);
  if (err) inferd_error_delete(err);
  model_config_free(c);
  return 0;
}
