/* config.pbtxt parsing: every field, the JSON form both ways, unknown fields. */
#include <jansson.h>
#include <unistd.h>

#include "unit/server/config_test_util.h"

static void test_resnet50_every_field(void **state) {
  (void)state;
  model_config *c = parse_ok(resnet50_config);
  assert_int_equal(c->warning_count, 0);
  assert_string_equal(c->name, "resnet50");
  assert_string_equal(c->platform, "onnxruntime_onnx");
  assert_string_equal(c->backend, "onnxruntime");
  assert_int_equal(c->max_batch_size, 128);
  assert_true(c->has_max_batch_size);
  assert_int_equal(c->version_policy.kind, MODEL_VERSIONS_SPECIFIC);
  assert_int_equal(c->version_policy.version_count, 2);
  assert_int_equal(c->version_policy.versions[0], 1);
  assert_int_equal(c->version_policy.versions[1], 3);

  assert_int_equal(c->input_count, 1);
  const model_tensor_config *in = model_config_find_input(c, "input");
  assert_non_null(in);
  assert_int_equal(in->datatype, INFERD_TYPE_FP32);
  assert_int_equal(in->format, MODEL_FORMAT_NCHW);
  assert_int_equal(in->rank, 3);
  assert_int_equal(in->dims[0], 3);
  assert_int_equal(in->dims[2], 224);
  assert_false(in->has_reshape);

  assert_int_equal(c->output_count, 2);
  const model_tensor_config *out = model_config_find_output(c, "output");
  assert_non_null(out);
  assert_int_equal(out->rank, 1);
  assert_int_equal(out->dims[0], 1000);
  assert_true(out->has_reshape);
  assert_int_equal(out->reshape_rank, 2);
  assert_int_equal(out->reshape[0], 1);
  assert_int_equal(out->reshape[1], 1000);
  assert_string_equal(out->label_filename, "imagenet_labels.txt");
  const model_tensor_config *f = model_config_find_output(c, "features");
  assert_int_equal(f->datatype, INFERD_TYPE_FP16);
  assert_int_equal(f->rank, 2);
  assert_int_equal(f->dims[0], -1);
  assert_int_equal(f->dims[1], 2048);
  assert_null(model_config_find_output(c, "input"));

  assert_int_equal(c->instance_group_count, 2);
  assert_string_equal(c->instance_groups[0].name, "cpu");
  assert_int_equal(c->instance_groups[0].kind, MODEL_KIND_CPU);
  assert_int_equal(c->instance_groups[0].count, 2);
  assert_string_equal(c->instance_groups[1].name, "");
  assert_int_equal(c->instance_groups[1].kind, MODEL_KIND_GPU);
  assert_int_equal(c->instance_groups[1].count, 1);
  assert_int_equal(c->instance_groups[1].gpu_count, 2);
  assert_int_equal(c->instance_groups[1].gpus[1], 1);

  const model_dynamic_batching *d = &c->dynamic_batching;
  assert_true(d->enabled);
  assert_int_equal(d->preferred_batch_size_count, 2);
  assert_int_equal(d->preferred_batch_sizes[1], 64);
  assert_int_equal(d->max_queue_delay_microseconds, 100);
  assert_true(d->preserve_ordering);
  assert_int_equal(d->priority_levels, 3);
  assert_int_equal(d->default_priority_level, 2);
  assert_true(d->has_default_queue_policy);
  assert_int_equal(d->default_queue_policy.timeout_action, MODEL_TIMEOUT_DELAY);
  assert_int_equal(d->default_queue_policy.default_timeout_microseconds, 5000);
  assert_true(d->default_queue_policy.allow_timeout_override);
  assert_int_equal(d->default_queue_policy.max_queue_size, 64);
  assert_int_equal(d->priority_queue_policy_count, 2);
  assert_int_equal(d->priority_queue_policies[0].priority_level, 1);
  assert_int_equal(d->priority_queue_policies[0].policy.timeout_action, MODEL_TIMEOUT_REJECT);
  assert_int_equal(d->priority_queue_policies[0].policy.default_timeout_microseconds, 1000);
  assert_int_equal(d->priority_queue_policies[0].policy.max_queue_size, 8);
  assert_int_equal(d->priority_queue_policies[1].priority_level, 3);
  assert_int_equal(d->priority_queue_policies[1].policy.max_queue_size, 2);

  assert_int_equal(c->parameter_count, 2);
  assert_string_equal(c->parameters[0].key, "intra_op_thread_count");
  assert_string_equal(c->parameters[0].string_value, "2");
  assert_string_equal(c->parameters[1].string_value, "tab\there \"quoted\" \xc3\xa9");

  assert_int_equal(c->warmup_count, 2);
  assert_string_equal(c->warmups[0].name, "zeros");
  assert_int_equal(c->warmups[0].batch_size, 8);
  assert_int_equal(c->warmups[0].count, 2);
  assert_int_equal(c->warmups[0].input_count, 1);
  assert_string_equal(c->warmups[0].inputs[0].name, "input");
  assert_int_equal(c->warmups[0].inputs[0].datatype, INFERD_TYPE_FP32);
  assert_int_equal(c->warmups[0].inputs[0].rank, 3);
  assert_int_equal(c->warmups[0].inputs[0].source, MODEL_WARMUP_ZERO_DATA);
  assert_string_equal(c->warmups[1].name, "from_file");
  assert_int_equal(c->warmups[1].inputs[0].source, MODEL_WARMUP_INPUT_DATA_FILE);
  assert_string_equal(c->warmups[1].inputs[0].input_data_file, "raw");
  assert_string_equal(c->default_model_filename, "model.onnx");
  assert_no_error(model_config_validate(c));
  model_config_free(c);
}

static void test_defaults_of_an_empty_file(void **state) {
  (void)state;
  model_config *c = parse_ok("# nothing but a comment\n");
  assert_string_equal(c->name, "");
  assert_string_equal(c->platform, "");
  assert_int_equal(c->max_batch_size, 0);
  assert_false(c->has_max_batch_size);
  assert_int_equal(c->version_policy.kind, MODEL_VERSIONS_LATEST);
  assert_int_equal(c->version_policy.num_versions, 1);
  assert_int_equal(c->input_count, 0);
  assert_false(c->dynamic_batching.enabled);
  model_config_free(c);

  c = parse_ok("version_policy { latest { } } instance_group { } dynamic_batching { }");
  assert_int_equal(c->version_policy.num_versions, 1);
  assert_int_equal(c->instance_group_count, 1);
  assert_int_equal(c->instance_groups[0].count, 1);
  assert_int_equal(c->instance_groups[0].kind, MODEL_KIND_AUTO);
  assert_true(c->dynamic_batching.enabled);
  assert_false(c->dynamic_batching.has_default_queue_policy);
  model_config_free(c);

  c = parse_ok("version_policy: { all: {} }");
  assert_int_equal(c->version_policy.kind, MODEL_VERSIONS_ALL);
  model_config_free(c);
}

static void test_syntax_variants(void **state) {
  (void)state;
  /* Repeated fields one by one, octal and hex, negative with a space, bools
   * spelled every way protobuf takes, enums by number, C-style string joins. */
  model_config *c = parse_ok(
      "name: \"a\" \"b\"; max_batch_size: 010\n"
      "input { name: 'x' data_type: 11 dims: 2 dims: - 1 dims: 0x3 optional: True allow_ragged_batch: t }\n"
      "input: { name: \"y\\x41\\101\\n\" data_type: TYPE_STRING dims: [1] is_shape_tensor: 1 }\n"
      "output < name: \"z\" data_type: TYPE_BOOL dims: [ ] dims: [4] >\n");
  assert_string_equal(c->name, "ab");
  assert_int_equal(c->max_batch_size, 8);
  assert_int_equal(c->inputs[0].datatype, INFERD_TYPE_FP32);
  assert_int_equal(c->inputs[0].rank, 3);
  assert_int_equal(c->inputs[0].dims[1], -1);
  assert_int_equal(c->inputs[0].dims[2], 3);
  assert_true(c->inputs[0].optional);
  assert_true(c->inputs[0].allow_ragged_batch);
  assert_string_equal(c->inputs[1].name, "yAA\n");
  assert_int_equal(c->inputs[1].datatype, INFERD_TYPE_BYTES);
  assert_true(c->inputs[1].is_shape_tensor);
  assert_int_equal(c->outputs[0].rank, 1);
  assert_int_equal(c->outputs[0].dims[0], 4);
  model_config_free(c);

  /* Map entries: the last of a key wins, as in protobuf. */
  c = parse_ok("parameters { key: \"k\" value { string_value: \"1\" } }\n"
               "parameters { key: \"k\" value { string_value: \"2\" } }\n"
               "parameters { key: \"empty_value\" }\n");
  assert_int_equal(c->parameter_count, 2);
  assert_string_equal(c->parameters[0].string_value, "2");
  assert_string_equal(c->parameters[1].key, "empty_value");
  assert_string_equal(c->parameters[1].string_value, "");
  model_config_free(c);

  c = parse_ok("dynamic_batching { priority_levels: 3 default_priority_level: 1\n"
               "  priority_queue_policy { key: 2 value { max_queue_size: 1 } }\n"
               "  priority_queue_policy { key: 1 value { } }\n"
               "  priority_queue_policy { key: 2 value { max_queue_size: 9 } } }\n"
               "model_warmup { name: \"w\" batch_size: 1\n"
               "  inputs { key: \"a\" value { data_type: TYPE_FP32 zero_data: true } }\n"
               "  inputs { key: \"b\" value { data_type: TYPE_FP32 zero_data: true } }\n"
               "  inputs { key: \"a\" value { data_type: TYPE_INT8 input_data_file: \"a.bin\" } } }\n");
  assert_int_equal(c->dynamic_batching.priority_queue_policy_count, 2);
  assert_int_equal(c->dynamic_batching.priority_queue_policies[0].priority_level, 1);
  assert_int_equal(c->dynamic_batching.priority_queue_policies[1].priority_level, 2);
  assert_int_equal(c->dynamic_batching.priority_queue_policies[1].policy.max_queue_size, 9);
  assert_int_equal(c->warmups[0].input_count, 2);
  assert_string_equal(c->warmups[0].inputs[0].name, "b");
  assert_string_equal(c->warmups[0].inputs[1].name, "a");
  assert_int_equal(c->warmups[0].inputs[1].datatype, INFERD_TYPE_INT8);
  assert_string_equal(c->warmups[0].inputs[1].input_data_file, "a.bin");
  model_config_free(c);
}

/* ---- JSON ---- */

static json_t *to_json_value(const model_config *c) {
  char *text = NULL;
  assert_no_error(model_config_to_json(c, &text));
  json_error_t err;
  json_t *v = json_loads(text, 0, &err);
  if (!v) fail_msg("model_config_to_json wrote invalid JSON: %s\n%s", err.text, text);
  free(text);
  return v;
}

static void test_json_form(void **state) {
  (void)state;
  model_config *c = parse_ok(resnet50_config);
  json_t *j = to_json_value(c);
  static const char *const top_keys[] = {"name", "platform", "backend", "runtime", "version_policy", "max_batch_size",
                                         "input", "output", "batch_input", "batch_output", "dynamic_batching",
                                         "instance_group", "default_model_filename", "cc_model_filenames",
                                         "metric_tags", "parameters", "model_warmup"};
  for (size_t i = 0; i < sizeof(top_keys) / sizeof(*top_keys); i++)
    if (!json_object_get(j, top_keys[i])) fail_msg("key '%s' missing", top_keys[i]);
  assert_int_equal(json_object_size(j), sizeof(top_keys) / sizeof(*top_keys));
  assert_string_equal(json_string_value(json_object_get(j, "name")), "resnet50");
  assert_int_equal(json_integer_value(json_object_get(j, "max_batch_size")), 128);
  json_t *versions = json_object_get(json_object_get(json_object_get(j, "version_policy"), "specific"), "versions");
  assert_int_equal(json_integer_value(json_array_get(versions, 1)), 3);

  json_t *in = json_array_get(json_object_get(j, "input"), 0);
  assert_string_equal(json_string_value(json_object_get(in, "data_type")), "TYPE_FP32");
  assert_string_equal(json_string_value(json_object_get(in, "format")), "FORMAT_NCHW");
  assert_true(json_is_integer(json_array_get(json_object_get(in, "dims"), 0)));
  assert_int_equal(json_integer_value(json_array_get(json_object_get(in, "dims"), 2)), 224);
  assert_true(json_is_false(json_object_get(in, "is_shape_tensor")));
  assert_true(json_is_false(json_object_get(in, "allow_ragged_batch")));
  assert_true(json_is_false(json_object_get(in, "optional")));
  assert_null(json_object_get(in, "reshape"));
  assert_null(json_object_get(in, "label_filename"));

  json_t *out = json_array_get(json_object_get(j, "output"), 0);
  assert_string_equal(json_string_value(json_object_get(out, "label_filename")), "imagenet_labels.txt");
  assert_int_equal(json_integer_value(json_array_get(json_object_get(json_object_get(out, "reshape"), "shape"), 1)),
                   1000);
  assert_null(json_object_get(out, "format"));
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "output"), 1), "data_type")),
                      "TYPE_FP16");

  json_t *g0 = json_array_get(json_object_get(j, "instance_group"), 0);
  assert_string_equal(json_string_value(json_object_get(g0, "kind")), "KIND_CPU");
  assert_int_equal(json_integer_value(json_object_get(g0, "count")), 2);
  assert_int_equal(json_array_size(json_object_get(g0, "gpus")), 0);
  json_t *g1 = json_array_get(json_object_get(j, "instance_group"), 1);
  assert_int_equal(json_integer_value(json_array_get(json_object_get(g1, "gpus"), 1)), 1);

  json_t *db = json_object_get(j, "dynamic_batching");
  assert_int_equal(json_integer_value(json_object_get(db, "max_queue_delay_microseconds")), 100);
  assert_int_equal(json_integer_value(json_array_get(json_object_get(db, "preferred_batch_size"), 0)), 32);
  assert_true(json_is_true(json_object_get(db, "preserve_ordering")));
  assert_int_equal(json_integer_value(json_object_get(db, "priority_levels")), 3);
  json_t *dq = json_object_get(db, "default_queue_policy");
  assert_string_equal(json_string_value(json_object_get(dq, "timeout_action")), "DELAY");
  assert_int_equal(json_integer_value(json_object_get(dq, "default_timeout_microseconds")), 5000);
  json_t *pq1 = json_object_get(json_object_get(db, "priority_queue_policy"), "1");
  assert_int_equal(json_integer_value(json_object_get(pq1, "max_queue_size")), 8);

  json_t *param = json_object_get(json_object_get(j, "parameters"), "intra_op_thread_count");
  assert_string_equal(json_string_value(json_object_get(param, "string_value")), "2");
  json_t *w0 = json_array_get(json_object_get(j, "model_warmup"), 0);
  assert_int_equal(json_integer_value(json_object_get(w0, "batch_size")), 8);
  json_t *wi = json_object_get(json_object_get(w0, "inputs"), "input");
  assert_true(json_is_true(json_object_get(wi, "zero_data")));
  assert_string_equal(json_string_value(json_object_get(wi, "data_type")), "TYPE_FP32");
  json_t *wf = json_object_get(json_object_get(json_array_get(json_object_get(j, "model_warmup"), 1), "inputs"),
                               "input");
  assert_string_equal(json_string_value(json_object_get(wf, "input_data_file")), "raw");
  json_decref(j);
  model_config_free(c);

  /* Without a dynamic_batching section there is no such key; the default
   * version policy prints as latest/1. */
  c = parse_ok("name: \"m\"");
  j = to_json_value(c);
  assert_null(json_object_get(j, "dynamic_batching"));
  json_t *latest = json_object_get(json_object_get(j, "version_policy"), "latest");
  assert_int_equal(json_integer_value(json_object_get(latest, "num_versions")), 1);
  json_decref(j);
  model_config_free(c);
}

static void test_round_trip_through_json(void **state) {
  (void)state;
  model_config *a = parse_ok(resnet50_config);
  char *text = NULL;
  assert_no_error(model_config_to_json(a, &text));
  model_config *b = NULL;
  assert_no_error(model_config_parse_json(text, strlen(text), NULL, &b));
  /* Everything Triton prints that inferd ignores is printed empty, so reading
   * our own JSON back warns about nothing. */
  for (int i = 0; i < b->warning_count; i++) print_message("warning: %s\n", b->warnings[i]);
  assert_int_equal(b->warning_count, 0);
  assert_configs_equal(a, b);
  char *again = NULL;
  assert_no_error(model_config_to_json(b, &again));
  assert_string_equal(text, again);
  free(text);
  free(again);
  model_config_free(a);
  model_config_free(b);
}

static void test_parse_json_forms(void **state) {
  (void)state;
  /* Protobuf's JSON mapping: 64-bit integers as strings, enums by number or
   * in any case (Triton parses them case-insensitively), nulls as absent. */
  const char *json =
      "{\"name\": \"m\", \"max_batch_size\": 4, \"platform\": null,"
      " \"input\": [{\"name\": \"x\", \"data_type\": 11, \"dims\": [\"3\", -1, 2.0, \"010\"]}],"
      " \"output\": [{\"name\": \"y\", \"data_type\": \"type_int64\", \"dims\": [1]}],"
      " \"dynamic_batching\": {\"max_queue_delay_microseconds\": \"250\", \"priority_levels\": 2,"
      "   \"default_priority_level\": 1, \"priority_queue_policy\": {\"2\": {\"max_queue_size\": 5}}},"
      " \"parameters\": {\"a\": {\"string_value\": \"b\"}},"
      " \"instance_group\": [{\"kind\": \"KIND_CPU\", \"count\": 3}],"
      " \"optimization\": {\"priority\": \"PRIORITY_DEFAULT\"}, \"runtime\": \"\", \"batch_input\": [],"
      " \"not_triton\": 1}";
  model_config *c = NULL;
  assert_no_error(model_config_parse_json(json, strlen(json), NULL, &c));
  assert_string_equal(c->platform, "");
  assert_int_equal(c->inputs[0].datatype, INFERD_TYPE_FP32);
  assert_int_equal(c->inputs[0].rank, 4);
  assert_int_equal(c->inputs[0].dims[0], 3);
  assert_int_equal(c->inputs[0].dims[1], -1);
  assert_int_equal(c->inputs[0].dims[2], 2);
  assert_int_equal(c->inputs[0].dims[3], 10); /* JSON numbers are decimal, even with a leading 0 */
  assert_int_equal(c->outputs[0].datatype, INFERD_TYPE_INT64);
  assert_int_equal(c->dynamic_batching.max_queue_delay_microseconds, 250);
  assert_int_equal(c->dynamic_batching.priority_queue_policies[0].priority_level, 2);
  assert_int_equal(c->dynamic_batching.priority_queue_policies[0].policy.max_queue_size, 5);
  assert_string_equal(c->parameters[0].key, "a");
  assert_int_equal(c->instance_groups[0].count, 3);
  assert_int_equal(c->warning_count, 2);
  assert_string_equal(c->warnings[0],
                      "config JSON: field 'optimization.priority' is not supported by inferd and is ignored");
  assert_string_equal(c->warnings[1],
                      "config JSON: field 'not_triton' is not a Triton model configuration field and is ignored");
  model_config_free(c);
}

static void json_fails(const char *json, const char *expected) {
  model_config *c = NULL;
  assert_error_contains(model_config_parse_json(json, strlen(json), NULL, &c), expected);
  assert_null(c);
}

static void test_parse_json_errors(void **state) {
  (void)state;
  json_fails("{\"name\": \"m\",\n \"max_batch_size\": }", "config JSON:2:20:");
  json_fails("[1, 2]", "config JSON: the configuration must be a JSON object");
  json_fails("{\"name\": \"a\", \"name\": \"b\"}", "duplicate object key");
  json_fails("{\"max_batch_size\": \"eight\"}", "field 'max_batch_size' expects an integer, got 'eight'");
  json_fails("{\"max_batch_size\": 1.5}", "field 'max_batch_size' expects an integer, got '1.5'");
  json_fails("{\"max_batch_size\": [1]}", "field 'max_batch_size' takes a single value, not a list");
  json_fails("{\"name\": 3}", "field 'name' expects a string, got a number");
  json_fails("{\"input\": [{\"name\": \"x\", \"dims\": [[1]]}]}", "holds a list of lists");
  json_fails("{\"input\": [{\"name\": \"x\", \"data_type\": \"TYPE_FP33\"}]}",
             "unknown value 'TYPE_FP33' for field 'input[0].data_type'");
  json_fails("{\"parameters\": [{\"key\": \"a\"}]}", "field 'parameters' is a map and expects an object");
  json_fails("{\"dynamic_batching\": {\"priority_levels\": 2, \"default_priority_level\": 1, "
             "\"priority_queue_policy\": {\"x\": {}}}}",
             "must be priority levels, got 'x'");
  json_fails("{\"max_batch_size\": -3}", "config JSON: max_batch_size must be between 0 and 65536, got -3");
}

/* ---- fields inferd ignores ---- */

static void test_unknown_fields_are_skipped_with_warnings(void **state) {
  (void)state;
  const char *text =
      "name: \"m\"\n"
      "optimization { execution_accelerators { gpu_execution_accelerator: [ { name: \"tensorrt\"\n"
      "  parameters { key: \"precision_mode\" value: \"FP16\" } } ] }\n"
      "  cuda { graphs: true graph_spec [ { batch_size: 1 input { key: \"x\" value: { dim: [1, 2] } } } ] } }\n"
      "sequence_batching { max_sequence_idle_microseconds: 5000000\n"
      "  control_input [ { name: \"START\" control [ { kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1.5e0 ] } ] } ]\n"
      "}\n"
      "response_cache { enable: true }\n"
      "model_transaction_policy { decoupled: false }\n"
      "runtime: \"\"\n"
      "instance_group { count: 1 rate_limiter { resources [ { name: \"R1\" count: 4 } ] } passive: false }\n"
      "input { name: \"x\" data_type: TYPE_FP32 dims: 1 is_non_linear_format_io: true label_filename: \"l\" }\n"
      "batch_input [ { kind: BATCH_ELEMENT_COUNT }, { kind: BATCH_ITEM_SHAPE } ]\n"
      "frobnicate: -inf\n";
  model_config *c = parse_ok(text);
  static const char *const expected[] = {
      "config.pbtxt:4:3: field 'optimization.cuda' is not supported by inferd and is ignored",
      "config.pbtxt:5:1: field 'sequence_batching' is not supported by inferd and is ignored",
      "config.pbtxt:8:1: field 'response_cache' is not supported by inferd and is ignored",
      "config.pbtxt:9:1: field 'model_transaction_policy' is not supported by inferd and is ignored",
      "config.pbtxt:11:27: field 'instance_group[0].rate_limiter' is not supported by inferd and is ignored",
      "config.pbtxt:12:48: field 'input[0].is_non_linear_format_io' is not supported by inferd and is ignored",
      "config.pbtxt:12:78: field 'input[0].label_filename' is not a Triton model configuration field and is "
      "ignored",
      "config.pbtxt:13:1: field 'batch_input' is not supported by inferd and is ignored",
      "config.pbtxt:14:1: field 'frobnicate' is not a Triton model configuration field and is ignored",
  };
  for (int i = 0; i < c->warning_count; i++) print_message("%s\n", c->warnings[i]);
  assert_int_equal(c->warning_count, sizeof(expected) / sizeof(*expected));
  for (int i = 0; i < c->warning_count; i++) assert_string_equal(c->warnings[i], expected[i]);
  assert_true(c->has_other_scheduler);
  assert_int_equal(c->precision, INFERD_PRECISION_FP16); /* optimization's accelerators are read */
  assert_int_equal(c->inputs[0].rank, 1);
  assert_int_equal(c->instance_groups[0].count, 1);
  model_config_free(c);
}

static void test_many_warnings_are_summed_up(void **state) {
  (void)state;
  char text[4096] = "";
  for (int i = 0; i < 100; i++) snprintf(text + strlen(text), sizeof(text) - strlen(text), "unknown_%d: 1\n", i);
  model_config *c = parse_ok(text);
  assert_int_equal(c->warning_count, 33);
  assert_string_equal(c->warnings[0],
                      "config.pbtxt:1:1: field 'unknown_0' is not a Triton model configuration field and is ignored");
  assert_string_equal(c->warnings[32], "config.pbtxt: 68 more ignored fields are not listed");
  model_config_free(c);
}

static void test_load_from_file(void **state) {
  (void)state;
  char path[] = "/tmp/inferd_config_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fputs("name: \"m\"\nmax_batch_size: x\n", f);
  fclose(f);
  model_config *c = NULL;
  inferd_error *e = model_config_load(path, &c);
  char expected[128];
  snprintf(expected, sizeof(expected), "%s:2:17: field 'max_batch_size' expects an integer, got an identifier", path);
  assert_non_null(e);
  assert_string_equal(inferd_error_message(e), expected);
  inferd_error_delete(e);
  f = fopen(path, "w");
  fputs("name: \"m\"\n", f);
  fclose(f);
  assert_no_error(model_config_load(path, &c));
  assert_string_equal(c->name, "m");
  model_config_free(c);
  unlink(path);
  e = model_config_load(path, &c);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_NOT_FOUND);
  inferd_error_delete(e);
}

static void test_labels(void **state) {
  (void)state;
  char path[] = "/tmp/inferd_labels_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fputs("tench\ngoldfish\r\n\ngreat white shark\n", f);
  fclose(f);
  char **labels = NULL;
  int count = 0;
  assert_no_error(model_config_load_labels(path, &labels, &count));
  assert_int_equal(count, 4);
  assert_string_equal(labels[0], "tench");
  assert_string_equal(labels[1], "goldfish");
  assert_string_equal(labels[2], "");
  assert_string_equal(labels[3], "great white shark");
  model_config_free_labels(labels, count);
  /* No newline at the end: the last line is still a label. */
  f = fopen(path, "w");
  fputs("a\nb", f);
  fclose(f);
  assert_no_error(model_config_load_labels(path, &labels, &count));
  assert_int_equal(count, 2);
  assert_string_equal(labels[1], "b");
  model_config_free_labels(labels, count);
  unlink(path);
  inferd_error *e = model_config_load_labels(path, &labels, &count);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_NOT_FOUND);
  assert_null(labels);
  assert_int_equal(count, 0);
  inferd_error_delete(e);
}

static void test_names(void **state) {
  (void)state;
  assert_string_equal(model_config_datatype_name(INFERD_TYPE_BYTES), "TYPE_STRING");
  assert_string_equal(model_config_datatype_name(INFERD_TYPE_BF16), "TYPE_BF16");
  assert_int_equal(model_config_datatype_from_name("TYPE_UINT16"), INFERD_TYPE_UINT16);
  assert_int_equal(model_config_datatype_from_name("FP32"), INFERD_TYPE_INVALID);
  assert_string_equal(model_config_kind_name(MODEL_KIND_MODEL), "KIND_MODEL");
  assert_string_equal(model_config_format_name(MODEL_FORMAT_NHWC), "FORMAT_NHWC");
}

/* The onnxruntime backend's thread parameters, as Triton users set them. */
static void test_onnxruntime_thread_parameters(void **state) {
  (void)state;
  model_config *c = parse_ok("parameters { key: \"intra_op_thread_count\" value: { string_value: \"3\" } }");
  assert_int_equal(c->intra_op_threads, 3);
  assert_int_equal(c->warning_count, 0);
  model_config_free(c);
  c = parse_ok("parameters { key: \"inter_op_thread_count\" value: { string_value: \"2\" } }\n"
               "parameters { key: \"execution_mode\" value: { string_value: \"1\" } }");
  assert_int_equal(c->intra_op_threads, 0);
  assert_int_equal(c->warning_count, 2);
  assert_non_null(strstr(c->warnings[0], "parameter 'inter_op_thread_count' is ignored by inferd"));
  model_config_free(c);
  c = parse_ok("parameters { key: \"intra_op_thread_count\" value: { string_value: \"\" } }");
  assert_int_equal(c->intra_op_threads, 0);
  model_config_free(c);
  parse_fails("parameters {\n  key: \"intra_op_thread_count\"\n  value: { string_value: \"many\" } }",
              "config.pbtxt:3:26: intra_op_thread_count is 'many' (expected a number of threads, 0 to 1024)");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_resnet50_every_field),
      cmocka_unit_test(test_defaults_of_an_empty_file),
      cmocka_unit_test(test_syntax_variants),
      cmocka_unit_test(test_json_form),
      cmocka_unit_test(test_round_trip_through_json),
      cmocka_unit_test(test_parse_json_forms),
      cmocka_unit_test(test_parse_json_errors),
      cmocka_unit_test(test_unknown_fields_are_skipped_with_warnings),
      cmocka_unit_test(test_many_warnings_are_summed_up),
      cmocka_unit_test(test_load_from_file),
      cmocka_unit_test(test_labels),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_onnxruntime_thread_parameters),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
