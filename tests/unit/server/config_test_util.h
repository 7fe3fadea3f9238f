/* Helpers shared by the model configuration tests. */
#ifndef INFERD_TESTS_CONFIG_TEST_UTIL_H
#define INFERD_TESTS_CONFIG_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/model_config.h"

/* Parses `text` that must succeed; fails the test with the message if not. */
static inline model_config *parse_ok(const char *text) {
  model_config *c = NULL;
  inferd_error *e = model_config_parse(text, strlen(text), "config.pbtxt", &c);
  if (e) fail_msg("unexpected error: %s", inferd_error_message(e));
  return c;
}

/* Parses `text` that must fail with a message containing `expected`. */
static inline void parse_fails(const char *text, const char *expected) {
  model_config *c = NULL;
  inferd_error *e = model_config_parse(text, strlen(text), "config.pbtxt", &c);
  if (!e) fail_msg("expected an error containing \"%s\" for:\n%s", expected, text);
  if (!strstr(inferd_error_message(e), expected))
    fail_msg("error \"%s\" does not contain \"%s\"", inferd_error_message(e), expected);
  assert_null(c);
  inferd_error_delete(e);
}

static inline void assert_error_contains(inferd_error *e, const char *expected) {
  if (!e) fail_msg("expected an error containing \"%s\"", expected);
  if (!strstr(inferd_error_message(e), expected))
    fail_msg("error \"%s\" does not contain \"%s\"", inferd_error_message(e), expected);
  inferd_error_delete(e);
}

static inline void assert_no_error(inferd_error *e) {
  if (e) fail_msg("unexpected error: %s", inferd_error_message(e));
}

static inline void assert_tensors_equal(const model_tensor_config *a, const model_tensor_config *b) {
  assert_string_equal(a->name, b->name);
  assert_int_equal(a->datatype, b->datatype);
  assert_int_equal(a->format, b->format);
  assert_int_equal(a->rank, b->rank);
  for (int k = 0; k < a->rank; k++) assert_int_equal(a->dims[k], b->dims[k]);
  assert_int_equal(a->has_reshape, b->has_reshape);
  assert_int_equal(a->reshape_rank, b->reshape_rank);
  for (int k = 0; k < a->reshape_rank; k++) assert_int_equal(a->reshape[k], b->reshape[k]);
  assert_string_equal(a->label_filename, b->label_filename);
  assert_int_equal(a->is_shape_tensor, b->is_shape_tensor);
  assert_int_equal(a->allow_ragged_batch, b->allow_ragged_batch);
  assert_int_equal(a->optional, b->optional);
}

static inline void assert_queue_policies_equal(const model_queue_policy *a, const model_queue_policy *b) {
  assert_int_equal(a->timeout_action, b->timeout_action);
  assert_int_equal(a->default_timeout_microseconds, b->default_timeout_microseconds);
  assert_int_equal(a->allow_timeout_override, b->allow_timeout_override);
  assert_int_equal(a->max_queue_size, b->max_queue_size);
}

/* Every field the struct holds, except warnings and where things came from. */
static inline void assert_accelerators_equal(const model_accelerator *a, const model_accelerator *b, int count) {
  for (int i = 0; i < count; i++) {
    assert_string_equal(a[i].name, b[i].name);
    assert_int_equal(a[i].parameter_count, b[i].parameter_count);
    for (int k = 0; k < a[i].parameter_count; k++) {
      assert_string_equal(a[i].parameters[k].key, b[i].parameters[k].key);
      assert_string_equal(a[i].parameters[k].string_value, b[i].parameters[k].string_value);
    }
  }
}

static inline void assert_configs_equal(const model_config *a, const model_config *b) {
  assert_string_equal(a->name, b->name);
  assert_string_equal(a->platform, b->platform);
  assert_string_equal(a->backend, b->backend);
  assert_string_equal(a->default_model_filename, b->default_model_filename);
  assert_int_equal(a->max_batch_size, b->max_batch_size);
  assert_int_equal(a->version_policy.kind, b->version_policy.kind);
  assert_int_equal(a->version_policy.num_versions, b->version_policy.num_versions);
  assert_int_equal(a->version_policy.version_count, b->version_policy.version_count);
  for (int i = 0; i < a->version_policy.version_count; i++)
    assert_int_equal(a->version_policy.versions[i], b->version_policy.versions[i]);
  assert_int_equal(a->input_count, b->input_count);
  for (int i = 0; i < a->input_count; i++) assert_tensors_equal(&a->inputs[i], &b->inputs[i]);
  assert_int_equal(a->output_count, b->output_count);
  for (int i = 0; i < a->output_count; i++) assert_tensors_equal(&a->outputs[i], &b->outputs[i]);
  assert_int_equal(a->instance_group_count, b->instance_group_count);
  for (int i = 0; i < a->instance_group_count; i++) {
    const model_instance_group *x = &a->instance_groups[i], *y = &b->instance_groups[i];
    assert_string_equal(x->name, y->name);
    assert_int_equal(x->kind, y->kind);
    assert_int_equal(x->count, y->count);
    assert_int_equal(x->gpu_count, y->gpu_count);
    for (int k = 0; k < x->gpu_count; k++) assert_int_equal(x->gpus[k], y->gpus[k]);
  }
  const model_dynamic_batching *d = &a->dynamic_batching, *e = &b->dynamic_batching;
  assert_int_equal(d->enabled, e->enabled);
  assert_int_equal(d->preferred_batch_size_count, e->preferred_batch_size_count);
  for (int k = 0; k < d->preferred_batch_size_count; k++)
    assert_int_equal(d->preferred_batch_sizes[k], e->preferred_batch_sizes[k]);
  assert_int_equal(d->max_queue_delay_microseconds, e->max_queue_delay_microseconds);
  assert_int_equal(d->preserve_ordering, e->preserve_ordering);
  assert_int_equal(d->priority_levels, e->priority_levels);
  assert_int_equal(d->default_priority_level, e->default_priority_level);
  assert_int_equal(d->has_default_queue_policy, e->has_default_queue_policy);
  assert_queue_policies_equal(&d->default_queue_policy, &e->default_queue_policy);
  assert_int_equal(d->priority_queue_policy_count, e->priority_queue_policy_count);
  for (int k = 0; k < d->priority_queue_policy_count; k++) {
    assert_int_equal(d->priority_queue_policies[k].priority_level, e->priority_queue_policies[k].priority_level);
    assert_queue_policies_equal(&d->priority_queue_policies[k].policy, &e->priority_queue_policies[k].policy);
  }
  assert_int_equal(a->parameter_count, b->parameter_count);
  for (int i = 0; i < a->parameter_count; i++) {
    assert_string_equal(a->parameters[i].key, b->parameters[i].key);
    assert_string_equal(a->parameters[i].string_value, b->parameters[i].string_value);
  }
  assert_int_equal(a->gpu_accelerator_count, b->gpu_accelerator_count);
  assert_accelerators_equal(a->gpu_accelerators, b->gpu_accelerators, a->gpu_accelerator_count);
  assert_int_equal(a->cpu_accelerator_count, b->cpu_accelerator_count);
  assert_accelerators_equal(a->cpu_accelerators, b->cpu_accelerators, a->cpu_accelerator_count);
  assert_int_equal(a->cpu_precision, b->cpu_precision);

  assert_int_equal(a->precision, b->precision);
  assert_int_equal(a->warmup_count, b->warmup_count);
  for (int i = 0; i < a->warmup_count; i++) {
    const model_warmup *x = &a->warmups[i], *y = &b->warmups[i];
    assert_string_equal(x->name, y->name);
    assert_int_equal(x->batch_size, y->batch_size);
    assert_int_equal(x->count, y->count);
    assert_int_equal(x->input_count, y->input_count);
    for (int k = 0; k < x->input_count; k++) {
      const model_warmup_input *p = &x->inputs[k], *q = &y->inputs[k];
      assert_string_equal(p->name, q->name);
      assert_int_equal(p->datatype, q->datatype);
      assert_int_equal(p->rank, q->rank);
      for (int j = 0; j < p->rank; j++) assert_int_equal(p->dims[j], q->dims[j]);
      assert_int_equal(p->source, q->source);
      assert_string_equal(p->input_data_file, q->input_data_file);
    }
  }
}

/* A ResNet-50 configuration in the style of Triton's documentation, using
 * every field inferd reads and most of the text format's syntax. */
static const char resnet50_config[] =
    "# ResNet-50 v1.5, exported from PyTorch, served by ONNX Runtime's platform name.\n"
    "name: \"resnet50\"\n"
    "platform: \"onnxruntime_onnx\"\n"
    "backend: 'onnxruntime'\n"
    "max_batch_size: 128\n"
    "version_policy: { specific: { versions: [1, 3] } }\n"
    "input [\n"
    "  {\n"
    "    name: \"input\"\n"
    "    data_type: TYPE_FP32\n"
    "    format: FORMAT_NCHW\n"
    "    dims: [ 3, 224, 224 ]\n"
    "  }\n"
    "]\n"
    "output [\n"
    "  {\n"
    "    name: \"output\"\n"
    "    data_type: TYPE_FP32\n"
    "    dims: [ 1000 ]\n"
    "    reshape: { shape: [ 1, 1000 ] }\n"
    "    label_filename: \"imagenet_labels.txt\"\n"
    "  },\n"
    "  {\n"
    "    name: \"features\"; data_type: TYPE_FP16; dims: -1; dims: 0x800; is_shape_tensor: false\n"
    "  }\n"
    "]\n"
    "instance_group [\n"
    "  { name: \"cpu\" count: 2 kind: KIND_CPU },\n"
    "  { count: 1, kind: KIND_GPU, gpus: [ 0, 1 ] }\n"
    "]\n"
    "dynamic_batching {\n"
    "  preferred_batch_size: [ 32, 64 ]\n"
    "  max_queue_delay_microseconds: 100\n"
    "  preserve_ordering: true\n"
    "  priority_levels: 3\n"
    "  default_priority_level: 2\n"
    "  default_queue_policy {\n"
    "    timeout_action: DELAY\n"
    "    default_timeout_microseconds: 5000\n"
    "    allow_timeout_override: true\n"
    "    max_queue_size: 64\n"
    "  }\n"
    "  priority_queue_policy { key: 1 value: { timeout_action: REJECT default_timeout_microseconds: 1000 "
    "max_queue_size: 8 } }\n"
    "  priority_queue_policy [ { key: 3 value { max_queue_size: 2 } } ]\n"
    "}\n"
    "parameters { key: \"intra_op_thread_count\" value: { string_value: \"2\" } }\n"
    "parameters [ { key: \"note\" value { string_value: \"tab\\there \\\"quoted\\\" \\u00e9\" } } ]\n"
    "model_warmup [\n"
    "  {\n"
    "    name: \"zeros\"\n"
    "    batch_size: 8\n"
    "    inputs { key: \"input\" value: { data_type: TYPE_FP32 dims: [3, 224, 224] zero_data: true } }\n"
    "    count: 2\n"
    "  },\n"
    "  <\n"
    "    name: 'from_file'\n"
    "    batch_size: 1\n"
    "    inputs { key: \"input\" value { data_type: TYPE_FP32, dims: [3, 224, 224], input_data_file: \"raw\" } }\n"
    "  >\n"
    "]\n"
    "default_model_filename: \"model.onnx\"\n";

#endif
