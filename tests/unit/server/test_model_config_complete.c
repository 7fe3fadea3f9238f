/* Completion of configurations from the model's IO, strict mode, and the
 * checks of a configuration against the model. */
#include "unit/server/config_test_util.h"

/* A ResNet-50-like model: one image input, logits and a per-item scalar. */
static const inferd_tensor_info resnet_inputs[] = {
    {.name = "data", .datatype = INFERD_TYPE_FP32, .rank = 4, .dims = {-1, 3, 224, 224}},
};
static const inferd_tensor_info resnet_outputs[] = {
    {.name = "prob", .datatype = INFERD_TYPE_FP32, .rank = 2, .dims = {-1, 1000}},
    {.name = "top1", .datatype = INFERD_TYPE_INT64, .rank = 1, .dims = {-1}},
};
static const model_io_info resnet = {resnet_inputs, 1, resnet_outputs, 2, true};

/* The same network exported with a fixed batch of 1. */
static const inferd_tensor_info static_inputs[] = {
    {.name = "data", .datatype = INFERD_TYPE_FP32, .rank = 4, .dims = {1, 3, 224, 224}},
};
static const inferd_tensor_info static_outputs[] = {
    {.name = "prob", .datatype = INFERD_TYPE_FP32, .rank = 2, .dims = {1, 1000}},
};
static const model_io_info static_model = {static_inputs, 1, static_outputs, 1, false};

/* Two inputs with dynamic non-batch dimensions (a text model). */
static const inferd_tensor_info bert_inputs[] = {
    {.name = "input_ids", .datatype = INFERD_TYPE_INT64, .rank = 2, .dims = {-1, -1}},
    {.name = "attention_mask", .datatype = INFERD_TYPE_INT64, .rank = 2, .dims = {-1, -1}},
};
static const inferd_tensor_info bert_outputs[] = {
    {.name = "logits", .datatype = INFERD_TYPE_FP32, .rank = 2, .dims = {-1, 2}},
};
static const model_io_info bert = {bert_inputs, 2, bert_outputs, 1, true};

static model_config *complete_ok(const char *text, const model_io_info *model, bool strict) {
  model_config *c = text ? parse_ok(text) : model_config_new("config.pbtxt");
  assert_no_error(model_config_complete(c, "resnet", model, strict));
  return c;
}

static void complete_fails(const char *text, const model_io_info *model, bool strict, const char *expected) {
  model_config *c = text ? parse_ok(text) : model_config_new("config.pbtxt");
  assert_error_contains(model_config_complete(c, "resnet", model, strict), expected);
  model_config_free(c);
}

static void test_complete_empty_config(void **state) {
  (void)state;
  model_config *c = complete_ok(NULL, &resnet, false);
  assert_string_equal(c->name, "resnet");
  assert_string_equal(c->platform, "onnxruntime_onnx");
  assert_string_equal(c->backend, "onnxruntime");
  assert_int_equal(c->max_batch_size, MODEL_CONFIG_DEFAULT_MAX_BATCH_SIZE);
  assert_int_equal(c->input_count, 1);
  assert_string_equal(c->inputs[0].name, "data");
  assert_int_equal(c->inputs[0].datatype, INFERD_TYPE_FP32);
  assert_int_equal(c->inputs[0].rank, 3);
  assert_int_equal(c->inputs[0].dims[0], 3);
  assert_int_equal(c->inputs[0].dims[2], 224);
  assert_int_equal(c->output_count, 2);
  assert_int_equal(c->outputs[0].rank, 1);
  assert_int_equal(c->outputs[0].dims[0], 1000);
  /* A per-item scalar is Triton's dims [1] with an empty reshape. */
  assert_string_equal(c->outputs[1].name, "top1");
  assert_int_equal(c->outputs[1].rank, 1);
  assert_int_equal(c->outputs[1].dims[0], 1);
  assert_true(c->outputs[1].has_reshape);
  assert_int_equal(c->outputs[1].reshape_rank, 0);
  assert_int_equal(c->instance_group_count, 1);
  assert_string_equal(c->instance_groups[0].name, "resnet_0");
  assert_int_equal(c->instance_groups[0].kind, MODEL_KIND_CPU);
  assert_int_equal(c->instance_groups[0].count, 1);
  assert_true(c->dynamic_batching.enabled);
  assert_int_equal(c->dynamic_batching.preferred_batch_size_count, 0);
  assert_int_equal(c->version_policy.kind, MODEL_VERSIONS_LATEST);

  /* The completed config is Triton-valid and survives its JSON form. */
  char *json = NULL;
  assert_no_error(model_config_to_json(c, &json));
  model_config *again = NULL;
  assert_no_error(model_config_parse_json(json, strlen(json), NULL, &again));
  assert_configs_equal(c, again);
  assert_no_error(model_config_complete(again, "resnet", &resnet, true));
  assert_configs_equal(c, again);
  free(json);
  model_config_free(again);
  model_config_free(c);
}

static void test_complete_static_batch_model(void **state) {
  (void)state;
  model_config *c = complete_ok(NULL, &static_model, false);
  assert_int_equal(c->max_batch_size, 0);
  assert_int_equal(c->inputs[0].rank, 4);
  assert_int_equal(c->inputs[0].dims[0], 1);
  assert_int_equal(c->outputs[0].dims[1], 1000);
  assert_false(c->dynamic_batching.enabled);
  model_config_free(c);
}

static void test_complete_partial_config(void **state) {
  (void)state;
  /* Listed tensors keep what they say and get what they lack; the missing
   * input is added; outputs, since some are listed, are left as listed. */
  model_config *c = complete_ok(
      "max_batch_size: 16\n"
      "input { name: \"attention_mask\" dims: [ 128 ] }\n"
      "output { name: \"logits\" }\n"
      "instance_group [ { count: 2 }, { name: \"spare\" kind: KIND_CPU } ]\n",
      &bert, false);
  assert_int_equal(c->max_batch_size, 16);
  assert_int_equal(c->input_count, 2);
  assert_string_equal(c->inputs[0].name, "attention_mask");
  assert_int_equal(c->inputs[0].datatype, INFERD_TYPE_INT64);
  assert_int_equal(c->inputs[0].rank, 1);
  assert_int_equal(c->inputs[0].dims[0], 128);
  assert_string_equal(c->inputs[1].name, "input_ids");
  assert_int_equal(c->inputs[1].dims[0], -1);
  assert_int_equal(c->output_count, 1);
  assert_int_equal(c->outputs[0].datatype, INFERD_TYPE_FP32);
  assert_int_equal(c->outputs[0].dims[0], 2);
  assert_string_equal(c->instance_groups[0].name, "resnet_0");
  assert_int_equal(c->instance_groups[0].kind, MODEL_KIND_AUTO);
  assert_int_equal(c->instance_groups[0].count, 2);
  assert_string_equal(c->instance_groups[1].name, "spare");
  assert_true(c->dynamic_batching.enabled);
  model_config_free(c);

  /* An explicit max_batch_size: 0 is kept: the batch dimension is then part
   * of the dims, and no batcher is added. */
  c = complete_ok("max_batch_size: 0", &resnet, false);
  assert_int_equal(c->max_batch_size, 0);
  assert_int_equal(c->inputs[0].rank, 4);
  assert_int_equal(c->inputs[0].dims[0], -1);
  assert_false(c->dynamic_batching.enabled);
  model_config_free(c);

  /* max_batch_size 1 batches but gains nothing from a batcher. */
  c = complete_ok("max_batch_size: 1", &resnet, false);
  assert_false(c->dynamic_batching.enabled);
  model_config_free(c);

  /* A config that asked for another scheduler does not get the batcher. */
  c = complete_ok("sequence_batching { max_sequence_idle_microseconds: 100 }", &resnet, false);
  assert_int_equal(c->warning_count, 1);
  assert_false(c->dynamic_batching.enabled);
  model_config_free(c);

  /* Settings of a given dynamic_batching are kept. */
  c = complete_ok("dynamic_batching { max_queue_delay_microseconds: 500 preferred_batch_size: 4 }", &resnet, false);
  assert_int_equal(c->dynamic_batching.max_queue_delay_microseconds, 500);
  assert_int_equal(c->dynamic_batching.preferred_batch_sizes[0], 4);
  model_config_free(c);
}

static void test_complete_checks_settings_that_needed_the_model(void **state) {
  (void)state;
  /* Preferred sizes are checked against the max_batch_size completion chose. */
  complete_fails("dynamic_batching {\n  preferred_batch_size: [ 2, 8 ] }", &resnet, false,
                 "config.pbtxt:2:30: dynamic_batching preferred_batch_size 8 is larger than max_batch_size 4");
  complete_fails("model_warmup { name: \"w\" batch_size: 2 inputs { key: \"data\" value { data_type: TYPE_FP32 "
                 "dims: [3, 224, 224] random_data: true } } }",
                 &static_model, false,
                 "config.pbtxt:1:26: model_warmup 'w': batch_size must be 1 for a model that does not batch, got 2");
  complete_fails("model_warmup { name: \"w\" batch_size: 1 inputs { key: \"image\" value { data_type: TYPE_FP32 "
                 "dims: 1 zero_data: true } } }",
                 &resnet, false, "config.pbtxt:1:40: model_warmup 'w': 'image' is not an input of the model");
  complete_fails("model_warmup { name: \"w\" batch_size: 1 inputs { key: \"data\" value { data_type: TYPE_FP16 "
                 "dims: 1 zero_data: true } } }",
                 &resnet, false,
                 "config.pbtxt:1:40: model_warmup 'w': input 'data' has data_type TYPE_FP16 but the model takes "
                 "TYPE_FP32");
  model_config *c = complete_ok("model_warmup { name: \"w\" batch_size: 4 inputs { key: \"data\" value { data_type: "
                                "TYPE_FP32 dims: [3, 224, 224] random_data: true } } }",
                                &resnet, false);
  assert_int_equal(c->warmups[0].inputs[0].source, MODEL_WARMUP_RANDOM_DATA);
  model_config_free(c);
}

static const char strict_resnet[] =
    "name: \"resnet\"\n"
    "platform: \"onnxruntime_onnx\"\n"
    "max_batch_size: 8\n"
    "input [ { name: \"data\" data_type: TYPE_FP32 format: FORMAT_NCHW dims: [ 3, 224, 224 ] } ]\n"
    "output [ { name: \"prob\" data_type: TYPE_FP32 dims: [ 1000 ] } ]\n";

static void test_strict_mode(void **state) {
  (void)state;
  /* A complete config passes as written: only the outputs it lists, no
   * batcher it did not ask for, but defaults that need no model. */
  model_config *c = complete_ok(strict_resnet, &resnet, true);
  assert_int_equal(c->output_count, 1);
  assert_false(c->dynamic_batching.enabled);
  assert_string_equal(c->backend, "onnxruntime");
  assert_string_equal(c->instance_groups[0].name, "resnet_0");
  model_config_free(c);

  complete_fails(NULL, &resnet, true,
                 "config.pbtxt: the configuration lists no inputs; with --strict-model-config=true every input and "
                 "output must be described");
  complete_fails("max_batch_size: 8\ninput [ { name: \"data\" data_type: TYPE_FP32 dims: [3, 224, 224] } ]", &resnet,
                 true, "config.pbtxt: the configuration lists no outputs");
  complete_fails("max_batch_size: 8\ninput [ { name: \"data\" dims: [3, 224, 224] } ]", &resnet, true,
                 "config.pbtxt:2:9: input 'data' must specify 'data_type'");
  complete_fails("max_batch_size: 8\ninput [ { name: \"data\" data_type: TYPE_FP32 } ]", &resnet, true,
                 "config.pbtxt:2:9: input 'data' must specify 'dims'");
  complete_fails("max_batch_size: 8\n"
                 "input { name: \"input_ids\" data_type: TYPE_INT64 dims: [ -1 ] }\n"
                 "output { name: \"logits\" data_type: TYPE_FP32 dims: [ 2 ] }",
                 &bert, true, "config.pbtxt: model input 'attention_mask' is missing from the configuration");
  /* Strict and without max_batch_size: the model does not batch, so the
   * batch dimension must be in the dims. */
  complete_fails("input [ { name: \"data\" data_type: TYPE_FP32 dims: [3, 224, 224] } ]\n"
                 "output [ { name: \"prob\" data_type: TYPE_FP32 dims: [1000] } ]",
                 &resnet, true,
                 "config.pbtxt:1:45: input 'data': dims [3,224,224] does not match the model's shape [-1,3,224,224]");
}

static void test_mismatches_with_the_model(void **state) {
  (void)state;
  complete_fails("name: \"resnet50\"", &resnet, false,
                 "config.pbtxt:1:1: the configuration names the model 'resnet50' but its folder is 'resnet'");
  complete_fails("platform: \"tensorrt_plan\"", &resnet, false,
                 "config.pbtxt:1:1: platform 'tensorrt_plan' (a TensorRT engine) is not supported: inferd serves "
                 "onnxruntime_onnx models (convert the model to ONNX)");
  complete_fails("platform: \"tensorflow_savedmodel\"", &resnet, false,
                 "platform 'tensorflow_savedmodel' (a TensorFlow SavedModel) is not supported");
  complete_fails("backend: \"python\"", &resnet, false, "config.pbtxt:1:1: backend 'python' (Python models) is not supported: inferd serves onnxruntime models");
  complete_fails("input { name: \"image\" }", &resnet, false,
                 "config.pbtxt:1:1: input 'image' is not an input of the model (its inputs are 'data')");
  complete_fails("output [ { name: \"prob\" }, { name: \"logits\" } ]", &resnet, false,
                 "config.pbtxt:1:28: output 'logits' is not an output of the model (its outputs are 'prob', 'top1')");
  complete_fails("input {\n  name: \"data\"\n  data_type: TYPE_FP16 }", &resnet, false,
                 "config.pbtxt:3:3: input 'data': data_type TYPE_FP16 does not match the model's TYPE_FP32");
  complete_fails("max_batch_size: 8\ninput { name: \"data\" dims: [3, 224, 225] }", &resnet, false,
                 "config.pbtxt:2:22: input 'data': dims [3,224,225] ([-1,3,224,225] with the batch dimension) does not "
                 "match the model's shape [-1,3,224,224]");
  complete_fails("max_batch_size: 8\ninput { name: \"data\" dims: [3, -1, -1] }", &resnet, false,
                 "input 'data': dims [3,-1,-1] ([-1,3,-1,-1] with the batch dimension) does not match");
  complete_fails("max_batch_size: 8\ninput { name: \"data\" dims: [150528] }", &resnet, false,
                 "does not match the model's shape [-1,3,224,224]");
  complete_fails("max_batch_size: 8\noutput { name: \"prob\" dims: [1000] reshape { shape: [10, 100] } }", &resnet,
                 false,
                 "config.pbtxt:2:36: output 'prob': reshape [10,100] ([-1,10,100] with the batch dimension) does not "
                 "match the model's shape [-1,1000]");
  complete_fails("max_batch_size: 4", &static_model, false,
                 "config.pbtxt:1:1: max_batch_size is 4 but the model has no dynamic batch dimension");

  /* What does match: a fixed size where the model has -1, a reshape that
   * gives the model its shape. */
  model_config *c = complete_ok("max_batch_size: 8\n"
                                "input { name: \"input_ids\" dims: [ 128 ] }\n"
                                "output { name: \"logits\" dims: [ 1, 2 ] reshape { shape: [ 2 ] } }",
                                &bert, false);
  assert_int_equal(c->inputs[0].dims[0], 128);
  assert_int_equal(c->outputs[0].rank, 2);
  model_config_free(c);

  /* A JSON override is checked the same way, without line numbers. */
  const char *json = "{\"input\": [{\"name\": \"data\", \"data_type\": \"TYPE_INT8\"}]}";
  assert_no_error(model_config_parse_json(json, strlen(json), NULL, &c));
  assert_error_contains(model_config_complete(c, "resnet", &resnet, false),
                        "config JSON: input 'data': data_type TYPE_INT8 does not match the model's TYPE_FP32");
  model_config_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_complete_empty_config),
      cmocka_unit_test(test_complete_static_batch_model),
      cmocka_unit_test(test_complete_partial_config),
      cmocka_unit_test(test_complete_checks_settings_that_needed_the_model),
      cmocka_unit_test(test_strict_mode),
      cmocka_unit_test(test_mismatches_with_the_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
