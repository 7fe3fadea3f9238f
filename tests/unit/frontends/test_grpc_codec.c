/*
 * The gRPC frontend's pure pieces: the descriptor-driven JSON to protobuf
 * conversion (configuration with enums, a oneof, maps with string and
 * integer keys, repeated messages; statistics with 64-bit counters; a bare
 * array wrapped into a field; type errors), typed tensor contents both ways
 * for every datatype that has them, and ModelInferRequest decoding with its
 * validation errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "frontends/grpc/grpc_infer.h"
#include "frontends/grpc/grpc_json.h"
#include "frontends/grpc/grpc_service.pb-c.h"

static ProtobufCMessage *parse_ok(const char *json, const ProtobufCMessageDescriptor *d, const char *wrap) {
  ProtobufCMessage *m = NULL;
  inferd_error *err = grpc_json_parse_message(json, d, wrap, &m);
  if (err) fail_msg("parse: %s", inferd_error_message(err));
  return m;
}

static void test_config_json(void **state) {
  (void)state;
  const char *json =
      "{\"config\": {\"name\": \"m\", \"max_batch_size\": 8, \"unknown_field\": [1, 2],"
      " \"version_policy\": {\"specific\": {\"versions\": [1, \"3\"]}},"
      " \"input\": [{\"name\": \"x\", \"data_type\": \"TYPE_FP32\", \"format\": \"FORMAT_NCHW\", \"dims\": [3, -1],"
      "             \"reshape\": {\"shape\": [3]}}],"
      " \"output\": [{\"name\": \"y\", \"data_type\": \"TYPE_STRING\", \"dims\": [2], \"label_filename\": \"l.txt\"}],"
      " \"dynamic_batching\": {\"preferred_batch_size\": [2, 4], \"max_queue_delay_microseconds\": 100,"
      "   \"priority_queue_policy\": {\"2\": {\"timeout_action\": \"DELAY\", \"max_queue_size\": 5}}},"
      " \"instance_group\": [{\"name\": \"g\", \"kind\": \"KIND_CPU\", \"count\": 2, \"gpus\": []}],"
      " \"parameters\": {\"k\": {\"string_value\": \"v\"}}, \"metric_tags\": {},"
      " \"model_warmup\": [{\"name\": \"w\", \"batch_size\": 1, \"inputs\": {\"x\": {\"data_type\": \"TYPE_FP32\","
      "   \"dims\": [3], \"random_data\": true}}}]}}";
  Inference__ModelConfigResponse *r =
      (Inference__ModelConfigResponse *)parse_ok(json, &inference__model_config_response__descriptor, NULL);
  const Inference__ModelConfig *c = r->config;
  assert_non_null(c);
  assert_string_equal(c->name, "m");
  assert_int_equal(c->max_batch_size, 8);
  assert_int_equal(c->version_policy->policy_choice_case,
                   INFERENCE__MODEL_VERSION_POLICY__POLICY_CHOICE_SPECIFIC);
  assert_int_equal(c->version_policy->specific->n_versions, 2);
  assert_int_equal(c->version_policy->specific->versions[1], 3);
  assert_int_equal(c->n_input, 1);
  assert_int_equal(c->input[0]->data_type, INFERENCE__DATA_TYPE__TYPE_FP32);
  assert_int_equal(c->input[0]->format, INFERENCE__MODEL_INPUT__FORMAT__FORMAT_NCHW);
  assert_int_equal(c->input[0]->dims[1], -1);
  assert_int_equal(c->input[0]->reshape->shape[0], 3);
  assert_int_equal(c->output[0]->data_type, INFERENCE__DATA_TYPE__TYPE_STRING);
  assert_string_equal(c->output[0]->label_filename, "l.txt");
  assert_int_equal(c->scheduling_choice_case, INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_DYNAMIC_BATCHING);
  const Inference__ModelDynamicBatching *db = c->dynamic_batching;
  assert_int_equal(db->n_preferred_batch_size, 2);
  assert_int_equal(db->max_queue_delay_microseconds, 100);
  assert_int_equal(db->n_priority_queue_policy, 1);
  assert_int_equal(db->priority_queue_policy[0]->key, 2);
  assert_int_equal(db->priority_queue_policy[0]->value->timeout_action,
                   INFERENCE__MODEL_QUEUE_POLICY__TIMEOUT_ACTION__DELAY);
  assert_int_equal(db->priority_queue_policy[0]->value->max_queue_size, 5);
  assert_int_equal(c->instance_group[0]->kind, INFERENCE__MODEL_INSTANCE_GROUP__KIND__KIND_CPU);
  assert_int_equal(c->instance_group[0]->count, 2);
  assert_int_equal(c->n_parameters, 1);
  assert_string_equal(c->parameters[0]->key, "k");
  assert_string_equal(c->parameters[0]->value->string_value, "v");
  assert_int_equal(c->n_metric_tags, 0);
  const Inference__ModelWarmup__Input *wi = c->model_warmup[0]->inputs[0]->value;
  assert_string_equal(c->model_warmup[0]->inputs[0]->key, "x");
  assert_int_equal(wi->input_data_type_case, INFERENCE__MODEL_WARMUP__INPUT__INPUT_DATA_TYPE_RANDOM_DATA);
  assert_true(wi->random_data);
  /* The message packs (every pointer set is valid) and frees cleanly. */
  const size_t size = protobuf_c_message_get_packed_size(&r->base);
  uint8_t *bytes = malloc(size);
  protobuf_c_message_pack(&r->base, bytes);
  Inference__ModelConfigResponse *again = inference__model_config_response__unpack(NULL, size, bytes);
  assert_non_null(again);
  assert_string_equal(again->config->parameters[0]->value->string_value, "v");
  inference__model_config_response__free_unpacked(again, NULL);
  free(bytes);
  protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void test_statistics_and_index_json(void **state) {
  (void)state;
  Inference__ModelStatisticsResponse *s = (Inference__ModelStatisticsResponse *)parse_ok(
      "{\"model_stats\": [{\"name\": \"m\", \"version\": \"1\", \"last_inference\": 1795553685055,"
      " \"inference_count\": \"18446744073709551615\", \"inference_stats\": {\"success\": {\"count\": 3, \"ns\": 9}},"
      " \"batch_stats\": [{\"batch_size\": 4, \"compute_infer\": {\"count\": 1, \"ns\": 2}}]}]}",
      &inference__model_statistics_response__descriptor, NULL);
  assert_int_equal(s->n_model_stats, 1);
  assert_true(s->model_stats[0]->last_inference == 1795553685055ull);
  assert_true(s->model_stats[0]->inference_count == UINT64_MAX);
  assert_int_equal(s->model_stats[0]->inference_stats->success->count, 3);
  assert_null(s->model_stats[0]->inference_stats->fail);
  assert_int_equal(s->model_stats[0]->batch_stats[0]->batch_size, 4);
  protobuf_c_message_free_unpacked(&s->base, NULL);

  Inference__RepositoryIndexResponse *ix = (Inference__RepositoryIndexResponse *)parse_ok(
      "[{\"name\": \"a\", \"version\": \"1\", \"state\": \"READY\"}, {\"name\": \"b\", \"state\": \"UNAVAILABLE\","
      " \"reason\": \"broken\"}]",
      &inference__repository_index_response__descriptor, "models");
  assert_int_equal(ix->n_models, 2);
  assert_string_equal(ix->models[1]->reason, "broken");
  assert_string_equal(ix->models[1]->version, "");
  protobuf_c_message_free_unpacked(&ix->base, NULL);
}

static void test_json_type_errors(void **state) {
  (void)state;
  const char *bad[] = {
      "{\"config\": {\"max_batch_size\": \"eight\"}}",
      "{\"config\": {\"input\": [{\"data_type\": \"TYPE_NOPE\"}]}}",
      "{\"config\": {\"input\": {\"name\": 3}}}",
      "{\"config\": {\"max_batch_size\": 4294967296}}",
      "{\"config\": {\"name\": [\"a\"]}}",
      "[1, 2]",
      "{\"config\": ",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    ProtobufCMessage *m = NULL;
    inferd_error *err = grpc_json_parse_message(bad[i], &inference__model_config_response__descriptor, NULL, &m);
    if (!err) fail_msg("accepted: %s", bad[i]);
    assert_null(m);
    inferd_error_delete(err);
  }
}

static void test_contents_round_trip(void **state) {
  (void)state;
  const struct {
    inferd_datatype type;
    const char *bytes;
    size_t size;
  } cases[] = {
      {INFERD_TYPE_BOOL, "\1\0\1", 3},
      {INFERD_TYPE_UINT8, "\0\377\7", 3},
      {INFERD_TYPE_INT8, "\200\177\0", 3},
      {INFERD_TYPE_UINT16, "\377\377\0\0\1\0", 6},
      {INFERD_TYPE_INT16, "\0\200\377\177\1\0", 6},
      {INFERD_TYPE_INT32, "\0\0\0\200\1\0\0\0\377\377\377\377", 12},
      {INFERD_TYPE_UINT32, "\377\377\377\377\1\0\0\0\2\0\0\0", 12},
      {INFERD_TYPE_FP32, "\0\0\200\77\0\0\0\300\0\0\0\0", 12},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    Inference__InferTensorContents c;
    inferd_error *err = grpc_buffer_to_contents(cases[i].bytes, cases[i].size, cases[i].type, 3, "t", &c);
    if (err) fail_msg("%s: %s", inferd_datatype_name(cases[i].type), inferd_error_message(err));
    void *back;
    size_t size;
    err = grpc_contents_to_buffer(&c, cases[i].type, 3, "t", &back, &size);
    if (err) fail_msg("%s back: %s", inferd_datatype_name(cases[i].type), inferd_error_message(err));
    assert_int_equal(size, cases[i].size);
    assert_memory_equal(back, cases[i].bytes, size);
    free(back);
    grpc_contents_clear(&c);
  }
  /* BYTES: strings to the length-prefixed form and back. */
  const char serialized[] = "\2\0\0\0hi\0\0\0\0\3\0\0\0abc";
  Inference__InferTensorContents c;
  assert_null(grpc_buffer_to_contents(serialized, sizeof(serialized) - 1, INFERD_TYPE_BYTES, 3, "s", &c));
  assert_int_equal(c.n_bytes_contents, 3);
  assert_int_equal(c.bytes_contents[2].len, 3);
  void *back;
  size_t size;
  assert_null(grpc_contents_to_buffer(&c, INFERD_TYPE_BYTES, 3, "s", &back, &size));
  assert_int_equal(size, sizeof(serialized) - 1);
  assert_memory_equal(back, serialized, size);
  free(back);
  grpc_contents_clear(&c);
  /* A BYTES buffer that does not match its element count. */
  inferd_error *err = grpc_buffer_to_contents(serialized, sizeof(serialized) - 2, INFERD_TYPE_BYTES, 3, "s", &c);
  assert_non_null(err);
  inferd_error_delete(err);
}

static void test_contents_errors(void **state) {
  (void)state;
  Inference__InferTensorContents c = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
  uint32_t too_big[] = {1, 256};
  c.uint_contents = too_big;
  c.n_uint_contents = 2;
  void *buf;
  size_t size;
  inferd_error *err = grpc_contents_to_buffer(&c, INFERD_TYPE_UINT8, 2, "x", &buf, &size);
  assert_non_null(err);
  assert_non_null(strstr(inferd_error_message(err), "element 1"));
  inferd_error_delete(err);
  err = grpc_contents_to_buffer(&c, INFERD_TYPE_UINT32, 3, "x", &buf, &size);
  assert_non_null(strstr(inferd_error_message(err), "2 elements but the shape needs 3"));
  inferd_error_delete(err);
  err = grpc_contents_to_buffer(&c, INFERD_TYPE_FP16, 2, "x", &buf, &size);
  assert_int_equal(inferd_error_code_of(err), INFERD_ERROR_INVALID_ARG);
  assert_non_null(strstr(inferd_error_message(err), "raw_input_contents"));
  inferd_error_delete(err);
}

/* An empty tensor (a 0 in its shape) with no contents message once
 * dereferenced NULL; it is a valid tensor of 0 bytes, for every datatype
 * that has typed contents. */
static void test_empty_tensor_without_contents(void **state) {
  (void)state;
  const inferd_datatype types[] = {INFERD_TYPE_BOOL,  INFERD_TYPE_UINT8, INFERD_TYPE_UINT16, INFERD_TYPE_UINT32,
                                   INFERD_TYPE_UINT64, INFERD_TYPE_INT8,  INFERD_TYPE_INT16,  INFERD_TYPE_INT32,
                                   INFERD_TYPE_INT64,  INFERD_TYPE_FP32,  INFERD_TYPE_FP64,   INFERD_TYPE_BYTES};
  Inference__InferTensorContents empty = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
  for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
    for (int with_message = 0; with_message < 2; with_message++) {
      void *buf = NULL;
      size_t size = 7;
      inferd_error *err = grpc_contents_to_buffer(with_message ? &empty : NULL, types[i], 0, "x", &buf, &size);
      if (err) fail_msg("%s: %s", inferd_datatype_name(types[i]), inferd_error_message(err));
      assert_non_null(buf);
      assert_int_equal(size, 0);
      free(buf);
    }
  }
}

/* Packs a request and runs it through grpc_infer_decode. */
static inferd_error *decode_request(Inference__ModelInferRequest *req, grpc_infer_decoded *d) {
  const size_t size = protobuf_c_message_get_packed_size(&req->base);
  uint8_t *bytes = malloc(size ? size : 1);
  protobuf_c_message_pack(&req->base, bytes);
  inferd_error *err = grpc_infer_decode(bytes, size, d);
  free(bytes);
  if (err) {
    /* The message stays for the error's context (the request id). */
    assert_non_null(d->message);
    assert_string_equal(d->message->id, "r1");
    grpc_infer_decoded_free(d);
  }
  return err;
}

static void test_decode_request(void **state) {
  (void)state;
  Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
  Inference__ModelInferRequest__InferInputTensor in = INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
  Inference__ModelInferRequest__InferInputTensor *ins[] = {&in};
  Inference__ModelInferRequest__ParametersEntry prio = INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT;
  Inference__InferParameter prio_value = INFERENCE__INFER_PARAMETER__INIT;
  Inference__ModelInferRequest__ParametersEntry *params[] = {&prio};
  int64_t shape[] = {1, 2};
  float data[] = {1.5f, -2.0f};
  ProtobufCBinaryData raw[] = {{.len = sizeof(data), .data = (uint8_t *)data}};
  req.model_name = "m";
  req.model_version = "3";
  req.id = "r1";
  in.name = "x";
  in.datatype = "FP32";
  in.n_shape = 2;
  in.shape = shape;
  req.n_inputs = 1;
  req.inputs = ins;
  req.n_raw_input_contents = 1;
  req.raw_input_contents = raw;
  prio.key = "priority";
  prio.value = &prio_value;
  prio_value.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM;
  prio_value.uint64_param = 2;
  req.n_parameters = 1;
  req.parameters = params;
  grpc_infer_decoded d;
  inferd_error *err = decode_request(&req, &d);
  if (err) fail_msg("decode: %s", inferd_error_message(err));
  assert_int_equal(d.version, 3);
  assert_int_equal(d.priority, 2);
  assert_int_equal(d.input_count, 1);
  assert_int_equal(d.inputs[0].byte_size, sizeof(data));
  assert_memory_equal(d.inputs[0].data, data, sizeof(data));
  grpc_infer_decoded_free(&d);

  /* Each problem is an error that names it. */
  raw[0].len = 4;
  err = decode_request(&req, &d);
  assert_non_null(strstr(inferd_error_message(err), "raw_input_contents has 4 bytes but shape [1,2] of FP32 needs 8"));
  inferd_error_delete(err);
  raw[0].len = sizeof(data);
  in.datatype = "FLOAT";
  err = decode_request(&req, &d);
  assert_non_null(strstr(inferd_error_message(err), "unknown datatype 'FLOAT'"));
  inferd_error_delete(err);
  in.datatype = "FP32";
  req.model_version = "v2";
  err = decode_request(&req, &d);
  assert_non_null(strstr(inferd_error_message(err), "model version 'v2'"));
  inferd_error_delete(err);
  req.model_version = "";
  prio_value.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
  prio_value.string_param = "high";
  err = decode_request(&req, &d);
  assert_non_null(strstr(inferd_error_message(err), "'priority' must be a non-negative integer"));
  inferd_error_delete(err);
  req.n_parameters = 0;
  req.n_raw_input_contents = 0; /* neither raw nor typed contents */
  err = decode_request(&req, &d);
  assert_non_null(strstr(inferd_error_message(err), "fp32_contents holds 0 elements but the shape needs 2"));
  inferd_error_delete(err);
  int64_t empty_shape[] = {0};
  in.shape = empty_shape;
  in.n_shape = 1;
  err = decode_request(&req, &d); /* [0] with no contents message: a valid empty tensor */
  if (err) fail_msg("decode: %s", inferd_error_message(err));
  assert_int_equal(d.input_count, 1);
  assert_int_equal(d.inputs[0].byte_size, 0);
  grpc_infer_decoded_free(&d);
  in.shape = shape;
  in.n_shape = 2;
  err = grpc_infer_decode((const uint8_t *)"\377\377\377", 3, &d);
  assert_int_equal(inferd_error_code_of(err), INFERD_ERROR_INVALID_ARG);
  assert_null(d.message);
  grpc_infer_decoded_free(&d);
  inferd_error_delete(err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_json),         cmocka_unit_test(test_statistics_and_index_json),
      cmocka_unit_test(test_json_type_errors),    cmocka_unit_test(test_contents_round_trip),
      cmocka_unit_test(test_contents_errors),     cmocka_unit_test(test_decode_request),
      cmocka_unit_test(test_empty_tensor_without_contents),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
