/* Where instances run and what GPU plans compute in: instance_group kind and
 * gpus placed on a set of usable GPUs (given here, so every case runs without
 * a GPU), and precision from TensorRT's precision_mode or the model
 * parameter, with the errors bad values get. */
#include <jansson.h>

#include "unit/server/config_test_util.h"

static const inferd_tensor_info io_inputs[] = {
    {.name = "x", .datatype = INFERD_TYPE_FP32, .rank = 2, .dims = {-1, 4}},
};
static const inferd_tensor_info io_outputs[] = {
    {.name = "y", .datatype = INFERD_TYPE_FP32, .rank = 2, .dims = {-1, 4}},
};
static const model_io_info io_model = {io_inputs, 1, io_outputs, 1, true};

static const int two_gpus[] = {0, 1};
static const model_gpu_set no_gpu = {.ordinals = NULL, .count = 0, .description = "no GPU is visible"};
static const model_gpu_set gpus_0_1 = {.ordinals = two_gpus, .count = 2, .description = "usable GPUs: 0, 1"};

static model_config *completed(const char *text) {
  model_config *c = parse_ok(text);
  assert_no_error(model_config_complete(c, "m", &io_model, false));
  return c;
}

static model_config *placed(const char *text, const model_gpu_set *gpus) {
  model_config *c = completed(text);
  assert_no_error(model_config_place_instances(c, gpus));
  return c;
}

static void place_fails(const char *text, const model_gpu_set *gpus, const char *expected) {
  model_config *c = completed(text);
  assert_error_contains(model_config_place_instances(c, gpus), expected);
  model_config_free(c);
}

/* c written as JSON and read back, checked equal; the caller frees it. */
static model_config *json_round_trip(const model_config *c) {
  char *text = NULL;
  assert_no_error(model_config_to_json(c, &text));
  model_config *back = NULL;
  assert_no_error(model_config_parse_json(text, strlen(text), NULL, &back));
  assert_configs_equal(c, back);
  free(text);
  return back;
}

static void test_kind_and_gpus_are_parsed(void **state) {
  (void)state;
  model_config *c = parse_ok("instance_group [ { kind: KIND_GPU count: 2 gpus: [ 1, 3 ] },\n"
                             "                 { kind: KIND_AUTO }, { kind: KIND_CPU count: 3 } ]");
  assert_int_equal(c->instance_group_count, 3);
  assert_int_equal(c->instance_groups[0].kind, MODEL_KIND_GPU);
  assert_int_equal(c->instance_groups[0].count, 2);
  assert_int_equal(c->instance_groups[0].gpu_count, 2);
  assert_int_equal(c->instance_groups[0].gpus[0], 1);
  assert_int_equal(c->instance_groups[0].gpus[1], 3);
  assert_int_equal(c->instance_groups[1].kind, MODEL_KIND_AUTO);
  assert_int_equal(c->instance_groups[1].gpu_count, 0);
  assert_int_equal(c->instance_groups[2].kind, MODEL_KIND_CPU);
  model_config_free(c);
  parse_fails("instance_group { kind: KIND_TPU }", "config.pbtxt:1:24: unknown value 'KIND_TPU'");
  parse_fails("instance_group { kind: KIND_CPU gpus: [0] }",
              "config.pbtxt:1:33: instance_group 0: gpus can be given only with KIND_GPU or KIND_AUTO");
  parse_fails("instance_group { kind: KIND_GPU\n gpus: [0, -2] }", "config.pbtxt:2:12: instance_group 0: gpu ids");
}

static void test_auto_is_cpu_without_gpus_and_gpu_with_them(void **state) {
  (void)state;
  model_config *c = placed("instance_group { kind: KIND_AUTO count: 2 }", &no_gpu);
  assert_int_equal(c->instance_groups[0].kind, MODEL_KIND_CPU);
  assert_int_equal(c->instance_groups[0].gpu_count, 0);
  model_config_free(c);

  c = placed("instance_group { kind: KIND_AUTO count: 2 }", &gpus_0_1);
  assert_int_equal(c->instance_groups[0].kind, MODEL_KIND_GPU);
  assert_int_equal(c->instance_groups[0].gpu_count, 2);
  assert_int_equal(c->instance_groups[0].gpus[0], 0);
  assert_int_equal(c->instance_groups[0].gpus[1], 1);
  model_config_free(c);

  /* A listed GPU that is not there: the group falls back to the CPU whole. */
  c = placed("instance_group { kind: KIND_AUTO gpus: [ 1, 5 ] }", &gpus_0_1);
  assert_int_equal(c->instance_groups[0].kind, MODEL_KIND_CPU);
  assert_int_equal(c->instance_groups[0].gpu_count, 0);
  model_config_free(c);

  /* No instance_group at all stays one CPU instance, GPUs or not. */
  c = placed("", &gpus_0_1);
  assert_int_equal(c->instance_group_count, 1);
  assert_int_equal(c->instance_groups[0].kind, MODEL_KIND_CPU);
  model_config_free(c);
}

static void test_gpu_groups_are_placed_or_refused(void **state) {
  (void)state;
  model_config *c = placed("instance_group { kind: KIND_GPU count: 2 }", &gpus_0_1);
  assert_int_equal(c->instance_groups[0].gpu_count, 2); /* every usable GPU */
  model_config_free(c);
  c = placed("instance_group { kind: KIND_GPU gpus: [ 1 ] }", &gpus_0_1);
  assert_int_equal(c->instance_groups[0].gpu_count, 1);
  assert_int_equal(c->instance_groups[0].gpus[0], 1);
  model_config_free(c);

  place_fails("instance_group { kind: KIND_GPU }", &no_gpu,
              "config.pbtxt:1:18: instance group 'm_0' of model 'm' has kind KIND_GPU but no GPU is usable: no GPU "
              "is visible");
  place_fails("instance_group [ { kind: KIND_CPU }, { name: \"fast\"\n kind: KIND_GPU gpus: [ 0, 7 ] } ]", &gpus_0_1,
              "config.pbtxt:2:28: instance group 'fast' of model 'm' asks for GPU 7, which is not usable: usable "
              "GPUs: 0, 1");
  place_fails("instance_group { kind: KIND_GPU gpus: [ 7 ] }", &no_gpu, "asks for GPU 7, which is not usable");
  /* A JSON override has no line numbers, but the message is the same. */
  const char *json = "{\"instance_group\": [{\"kind\": \"KIND_GPU\", \"gpus\": [7]}]}";
  model_config *j = NULL;
  assert_no_error(model_config_parse_json(json, strlen(json), NULL, &j));
  assert_no_error(model_config_complete(j, "m", &io_model, false));
  assert_error_contains(model_config_place_instances(j, &gpus_0_1),
                        "config JSON: instance group 'm_0' of model 'm' asks for GPU 7");
  model_config_free(j);
}

/* /config reports the kind and the GPUs each group was placed on, as Triton
 * does after its normalization. */
static void test_config_json_reports_kind_and_gpus(void **state) {
  (void)state;
  model_config *c = placed("instance_group [ { kind: KIND_AUTO count: 2 }, { kind: KIND_CPU } ]", &gpus_0_1);
  char *text = NULL;
  assert_no_error(model_config_to_json(c, &text));
  json_t *root = json_loads(text, 0, NULL);
  assert_non_null(root);
  json_t *g0 = json_array_get(json_object_get(root, "instance_group"), 0);
  assert_string_equal(json_string_value(json_object_get(g0, "kind")), "KIND_GPU");
  assert_int_equal(json_integer_value(json_object_get(g0, "count")), 2);
  json_t *gpus = json_object_get(g0, "gpus");
  assert_int_equal(json_array_size(gpus), 2);
  assert_int_equal(json_integer_value(json_array_get(gpus, 1)), 1);
  json_t *g1 = json_array_get(json_object_get(root, "instance_group"), 1);
  assert_string_equal(json_string_value(json_object_get(g1, "kind")), "KIND_CPU");
  assert_int_equal(json_array_size(json_object_get(g1, "gpus")), 0);
  json_decref(root);
  free(text);
  model_config_free(c);
}

static const char tensorrt_fp16[] =
    "optimization { execution_accelerators { gpu_execution_accelerator : [ { name : \"tensorrt\"\n"
    "  parameters { key: \"precision_mode\" value: \"FP16\" }\n"
    "  parameters { key: \"max_workspace_size_bytes\" value: \"1073741824\" } } ] } }\n";

static void test_precision_from_tensorrt_precision_mode(void **state) {
  (void)state;
  model_config *c = parse_ok(tensorrt_fp16);
  assert_int_equal(c->precision, INFERD_PRECISION_FP16);
  assert_int_equal(c->gpu_accelerator_count, 1);
  assert_string_equal(c->gpu_accelerators[0].name, "tensorrt");
  assert_int_equal(c->gpu_accelerators[0].parameter_count, 2);
  assert_int_equal(c->warning_count, 1);
  assert_non_null(strstr(c->warnings[0], "config.pbtxt:3:3: parameter "));
  assert_non_null(strstr(c->warnings[0], "max_workspace_size_bytes"));
  model_config_free(c);

  /* FP32 is the GPU default (TF32 tensor cores), as TensorRT's FP32 is. */
  c = parse_ok("optimization { execution_accelerators { gpu_execution_accelerator [ { name: \"tensorrt\" "
               "parameters { key: \"precision_mode\" value: \"FP32\" } } ] } }");
  assert_int_equal(c->precision, INFERD_PRECISION_DEFAULT);
  model_config_free(c);

  c = parse_ok("");
  assert_int_equal(c->precision, INFERD_PRECISION_DEFAULT);
  model_config_free(c);

  /* Other GPU accelerators are kept for /config but read no further. */
  c = parse_ok("optimization { execution_accelerators { gpu_execution_accelerator [ { name: \"cuda\" } ] } }");
  assert_int_equal(c->precision, INFERD_PRECISION_DEFAULT);
  assert_int_equal(c->gpu_accelerator_count, 1);
  assert_int_equal(c->warning_count, 1);
  assert_non_null(strstr(c->warnings[0], "GPU accelerator 'cuda' is ignored"));
  model_config_free(c);
  /* A CPU accelerator inferd does not know is an error naming it. */
  parse_fails("optimization { execution_accelerators {\n  cpu_execution_accelerator [ { name: \"openvino\" } ] } }",
              "config.pbtxt:2:31: CPU accelerator 'openvino' is not known to inferd (only 'inferd')");

  parse_fails("optimization { execution_accelerators { gpu_execution_accelerator [ { name: \"tensorrt\"\n"
              "  parameters { key: \"precision_mode\" value: \"FP8\" } } ] } }",
              "config.pbtxt:2:45: unknown precision_mode 'FP8' (expected FP32 or FP16)");
  parse_fails("optimization { execution_accelerators { gpu_execution_accelerator [ { name: \"tensorrt\"\n"
              "  parameters { key: \"precision_mode\" value: \"INT8\" } } ] } }",
              "config.pbtxt:2:45: precision_mode INT8 is not supported by inferd yet");
  parse_fails("optimization { execution_accelerators { gpu_execution_accelerator [ { name: \"tensorrt\"\n"
              "  parameters { key: \"precision_mode\" value: 16 } } ] } }",
              "config.pbtxt:2:45: field 'optimization.execution_accelerators.gpu_execution_accelerator[0]"
              ".parameters[precision_mode]' expects a string");
  parse_fails("optimization { execution_accelerators { } }\noptimization { }",
              "config.pbtxt:2:1: field 'optimization' is given more than once");
}

static void test_precision_from_model_parameters(void **state) {
  (void)state;
  static const struct {
    const char *value;
    inferd_precision precision;
  } cases[] = {{"fp32", INFERD_PRECISION_FP32},
               {"tf32", INFERD_PRECISION_TF32},
               {"fp16", INFERD_PRECISION_FP16},
               {"bf16", INFERD_PRECISION_BF16}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char text[256];
    snprintf(text, sizeof(text), "parameters { key: \"precision\" value: { string_value: \"%s\" } }", cases[i].value);
    model_config *c = parse_ok(text);
    assert_int_equal(c->precision, cases[i].precision);
    model_config_free(c);
  }
  /* Strict FP32 next to TensorRT's FP32, under the namespaced key. */
  model_config *c = parse_ok("optimization { execution_accelerators { gpu_execution_accelerator [ { name: \"tensorrt\" "
                             "parameters { key: \"precision_mode\" value: \"FP32\" } } ] } }\n"
                             "parameters { key: \"inferd_precision\" value: { string_value: \"fp32\" } }");
  assert_int_equal(c->precision, INFERD_PRECISION_FP32);
  model_config_free(c);
  /* The same in JSON, where the precision survives the round trip. */
  const char *json = "{\"parameters\": {\"precision\": {\"string_value\": \"bf16\"}}}";
  assert_no_error(model_config_parse_json(json, strlen(json), NULL, &c));
  assert_int_equal(c->precision, INFERD_PRECISION_BF16);
  model_config_free(c);

  parse_fails("parameters {\n key: \"precision\" value: { string_value: \"FP16\" } }",
              "config.pbtxt:2:42: parameter 'precision': unknown precision 'FP16' (expected fp32, tf32, fp16 or "
              "bf16)");
  parse_fails("parameters { key: \"inferd_precision\" value: { string_value: \"int8\" } }",
              "config.pbtxt:1:61: parameter 'inferd_precision': int8 is not served on GPUs yet");
  parse_fails("parameters { key: \"precision\" value: { string_value: \"default\" } }", "unknown precision 'default'");
  /* A precision without its string_value (found by the fuzzer: its JSON did not read back). */
  parse_fails("parameters { key: \"precision\" value: { } }", "parameter 'precision': unknown precision ''");
  parse_fails("parameters { key: \"inferd_precision\" }", "parameter 'inferd_precision': unknown precision ''");
  json = "{\"parameters\": {\"precision\": {}}}";
  inferd_error *e = model_config_parse_json(json, strlen(json), NULL, &c);
  assert_non_null(e);
  assert_non_null(strstr(inferd_error_message(e), "unknown precision ''"));
  inferd_error_delete(e);
  parse_fails("parameters { key: \"precision\" value: { string_value: \"fp16\" } }\n"
              "parameters { key: \"inferd_precision\" value: { string_value: \"bf16\" } }",
              "config.pbtxt:2:1: parameters 'precision' (fp16) and 'inferd_precision' (bf16) disagree");
  char text[512];
  snprintf(text, sizeof(text), "%sparameters { key: \"precision\" value: { string_value: \"bf16\" } }", tensorrt_fp16);
  parse_fails(text, "config.pbtxt:4:1: parameter 'precision' is bf16 but the tensorrt accelerator's precision_mode "
                    "is FP16");
  snprintf(text, sizeof(text), "%sparameters { key: \"precision\" value: { string_value: \"fp16\" } }", tensorrt_fp16);
  c = parse_ok(text);
  assert_int_equal(c->precision, INFERD_PRECISION_FP16);
  model_config_free(c);
}

/* The inferd CPU accelerator picks the CPU plans' precision. */
static const char cpu_int8[] =
    "optimization { execution_accelerators { cpu_execution_accelerator [ { name: \"inferd\"\n"
    "  parameters { key: \"precision\" value: \"int8\" } parameters { key: \"calibration_cache\" value: \"c.cache\" }\n"
    "  parameters { key: \"int8_keep\" value: \"first\" } } ] } }";

static void test_cpu_int8_from_the_inferd_accelerator(void **state) {
  (void)state;
  model_config *c = parse_ok(cpu_int8);
  assert_int_equal(c->cpu_precision, INFERD_PRECISION_INT8);
  assert_string_equal(c->calibration_cache, "c.cache");
  assert_string_equal(c->int8_keep, "first");
  assert_int_equal(c->precision, INFERD_PRECISION_DEFAULT);
  model_config *back = json_round_trip(c);
  assert_string_equal(back->calibration_cache, "c.cache");
  model_config_free(back);
  model_config_free(c);

  c = parse_ok("optimization { execution_accelerators { cpu_execution_accelerator [ { name: \"inferd\"\n"
               "  parameters { key: \"precision\" value: \"fp32\" } } ] } }");
  assert_int_equal(c->cpu_precision, INFERD_PRECISION_DEFAULT);
  model_config_free(c);

  parse_fails("optimization { execution_accelerators { cpu_execution_accelerator [ { name: \"inferd\"\n"
              "  parameters { key: \"precision\" value: \"int8\" } } ] } }",
              "precision int8 needs the parameter calibration_cache");
  parse_fails("optimization { execution_accelerators { cpu_execution_accelerator [ { name: \"inferd\"\n"
              "  parameters { key: \"calibration_cache\" value: \"c.cache\" } } ] } }",
              "parameter 'calibration_cache' is only read with precision int8");
  c = parse_ok("optimization { execution_accelerators { cpu_execution_accelerator [ { name: \"inferd\"\n"
               "  parameters { key: \"precision\" value: \"bf16\" } } ] } }");
  assert_int_equal(c->cpu_precision, INFERD_PRECISION_BF16);
  model_config_free(c);
  parse_fails("optimization { execution_accelerators { cpu_execution_accelerator [ { name: \"inferd\"\n"
              "  parameters { key: \"precision\" value: \"fp16\" } } ] } }",
              "config.pbtxt:2:40: precision 'fp16' is not one the CPU runs (fp32, bf16 or int8)");
  parse_fails("optimization { execution_accelerators { cpu_execution_accelerator [ { name: \"inferd\"\n"
              "  parameters { key: \"precision\" value: \"bf16\" } parameters { key: \"int8_keep\" value: \"first\" } } ] } }",
              "parameter 'int8_keep' is only read with precision int8");
  parse_fails("optimization { execution_accelerators { cpu_execution_accelerator [ { name: \"inferd\"\n"
              "  parameters { key: \"threads\" value: \"2\" } } ] } }",
              "unknown parameter 'threads' of the inferd accelerator");
  parse_fails("optimization { execution_accelerators { cpu_execution_accelerator [ { name: \"inferd\"\n"
              "  parameters { key: \"int8_keep\" value: \"\" } } ] } }",
              "parameter 'int8_keep' is empty");
}

/* Where GPU plans keep their autotuning choices: TensorRT's engine cache
 * parameters, as Triton users give them to the onnxruntime backend. */
static void test_tactic_cache_from_the_tensorrt_engine_cache(void **state) {
  (void)state;
  model_config *c = parse_ok("");
  assert_null(c->tactic_cache_dir);
  assert_false(c->tactic_cache_off);
  model_config_free(c);

  c = parse_ok("optimization { execution_accelerators { gpu_execution_accelerator [ { name: \"tensorrt\"\n"
               "  parameters { key: \"trt_engine_cache_enable\" value: \"true\" }\n"
               "  parameters { key: \"trt_engine_cache_path\" value: \"/var/cache/inferd\" } } ] } }");
  assert_string_equal(c->tactic_cache_dir, "/var/cache/inferd");
  assert_false(c->tactic_cache_off);
  assert_int_equal(c->warning_count, 0);
  model_config *back = json_round_trip(c);
  assert_string_equal(back->tactic_cache_dir, "/var/cache/inferd");
  model_config_free(back);
  model_config_free(c);

  c = parse_ok("optimization { execution_accelerators { gpu_execution_accelerator [ { name: \"tensorrt\"\n"
               "  parameters { key: \"trt_engine_cache_enable\" value: \"False\" } } ] } }");
  assert_null(c->tactic_cache_dir);
  assert_true(c->tactic_cache_off);
  model_config_free(c);

  parse_fails("optimization { execution_accelerators { gpu_execution_accelerator [ { name: \"tensorrt\"\n"
              "  parameters { key: \"trt_engine_cache_enable\" value: \"yes\" } } ] } }",
              "config.pbtxt:2:54: trt_engine_cache_enable is 'yes' (expected true or false)");
  parse_fails("optimization { execution_accelerators { gpu_execution_accelerator [ { name: \"tensorrt\"\n"
              "  parameters { key: \"trt_engine_cache_path\" value: \"\" } } ] } }",
              "config.pbtxt:2:52: parameter 'trt_engine_cache_path' is empty");
  parse_fails("optimization { execution_accelerators { gpu_execution_accelerator [ { name: \"tensorrt\"\n"
              "  parameters { key: \"trt_engine_cache_enable\" value: \"0\" }\n"
              "  parameters { key: \"trt_engine_cache_path\" value: \"cache\" } } ] } }",
              "trt_engine_cache_path is given but trt_engine_cache_enable is false");
}

/* optimization.graph.level: -1 turns the engine's passes off. */
static void test_graph_optimization_level(void **state) {
  (void)state;
  model_config *c = parse_ok("optimization { graph { level: -1 } }");
  assert_true(c->has_graph_level);
  assert_int_equal(c->graph_level, -1);
  assert_int_equal(c->warning_count, 0);
  char *text = NULL;
  assert_no_error(model_config_to_json(c, &text));
  assert_non_null(strstr(text, "\"graph\":{\"level\":-1}"));
  model_config *back = NULL;
  assert_no_error(model_config_parse_json(text, strlen(text), NULL, &back));
  assert_true(back->has_graph_level);
  assert_int_equal(back->graph_level, -1);
  free(text);
  model_config_free(back);
  model_config_free(c);
  c = parse_ok("optimization { graph { level: 1 } }");
  assert_int_equal(c->graph_level, 1);
  model_config_free(c);
  c = parse_ok("name: \"m\"");
  assert_false(c->has_graph_level);
  model_config_free(c);
  parse_fails("optimization {\n  graph { level: -2 } }", "config.pbtxt:2:18: graph optimization level -2");
  parse_fails("optimization { graph { level: 1 level: 2 } }", "level");
}

/* The accelerators are written back under optimization and read again. */
static void test_accelerators_round_trip_through_json(void **state) {
  (void)state;
  model_config *c = completed(tensorrt_fp16);
  char *text = NULL;
  assert_no_error(model_config_to_json(c, &text));
  json_t *root = json_loads(text, 0, NULL);
  json_t *acc = json_array_get(
      json_object_get(json_object_get(json_object_get(root, "optimization"), "execution_accelerators"),
                      "gpu_execution_accelerator"),
      0);
  assert_string_equal(json_string_value(json_object_get(acc, "name")), "tensorrt");
  assert_string_equal(json_string_value(json_object_get(json_object_get(acc, "parameters"), "precision_mode")), "FP16");
  json_decref(root);
  model_config *back = NULL;
  assert_no_error(model_config_parse_json(text, strlen(text), NULL, &back));
  assert_configs_equal(c, back);
  free(text);
  model_config_free(back);
  model_config_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kind_and_gpus_are_parsed),
      cmocka_unit_test(test_auto_is_cpu_without_gpus_and_gpu_with_them),
      cmocka_unit_test(test_gpu_groups_are_placed_or_refused),
      cmocka_unit_test(test_config_json_reports_kind_and_gpus),
      cmocka_unit_test(test_precision_from_tensorrt_precision_mode),
      cmocka_unit_test(test_precision_from_model_parameters),
      cmocka_unit_test(test_accelerators_round_trip_through_json),
      cmocka_unit_test(test_cpu_int8_from_the_inferd_accelerator),
      cmocka_unit_test(test_graph_optimization_level),
      cmocka_unit_test(test_tactic_cache_from_the_tensorrt_engine_cache),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
