/* Every error config.pbtxt can produce, with the line:column it names. */
#include "unit/server/config_test_util.h"

/* Like parse_fails, but reports every mismatch of a test before failing it,
 * which is what one wants when a message's wording changes. */
static int mismatches;

static void expect_error(const char *text, const char *expected) {
  model_config *c = NULL;
  inferd_error *e = model_config_parse(text, strlen(text), "config.pbtxt", &c);
  if (!e) {
    print_error("no error for:\n%s\n", text);
    mismatches++;
    model_config_free(c);
    return;
  }
  if (!strstr(inferd_error_message(e), expected)) {
    print_error("got      \"%s\"\nexpected \"%s\"\n", inferd_error_message(e), expected);
    mismatches++;
  }
  inferd_error_delete(e);
}

static int setup(void **state) {
  (void)state;
  mismatches = 0;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  assert_int_equal(mismatches, 0);
  return 0;
}

static void test_syntax_errors(void **state) {
  (void)state;
  expect_error("name: \"m\"\nmax_batch_size 8\n",
              "config.pbtxt:2:16: expected ':' or '{' after field name 'max_batch_size', got number 8");
  expect_error("input {\n  dims \"x\"\n}", "config.pbtxt:2:8: expected ':' or '{' after field name 'dims', got a string");
  expect_error("input { dims: [1, 2 }", "config.pbtxt:1:21: expected ',' or ']' in the list of field 'dims', got '}'");
  expect_error("input { dims: [1, ] }", "config.pbtxt:1:19: expected a value for field 'dims', got ']'");
  expect_error("name: \"abc\nmax_batch_size: 1", "config.pbtxt:1:7: unterminated string");
  expect_error("name: 'abc\"", "config.pbtxt:1:7: unterminated string");
  expect_error("input {\n  name: \"x\"\n", "config.pbtxt:3:1: unexpected end of file; expected '}'");
  expect_error("output < name: \"x\" }", "config.pbtxt:1:20: expected a field name, got '}'");
  expect_error("name: \"m\" }", "config.pbtxt:1:11: expected a field name, got '}'");
  expect_error("max_batch_size: 12abc", "config.pbtxt:1:17: invalid number '12abc'");
  expect_error("max_batch_size: 0x", "config.pbtxt:1:17: invalid number '0x'");
  expect_error("max_batch_size: 1e", "config.pbtxt:1:17: invalid number '1e'");
  expect_error("max_batch_size: -", "config.pbtxt:1:18: expected a number after '-', got end of file");
  expect_error("max_batch_size: -x", "config.pbtxt:1:18: expected a number after '-', got 'x'");
  expect_error("max_batch_size:", "config.pbtxt:1:16: expected a value for field 'max_batch_size', got end of file");
  expect_error("name: \"a\\qb\"", "config.pbtxt:1:9: invalid escape '\\q' in string");
  expect_error("name: \"a\\0b\"", "config.pbtxt:1:9: strings may not contain NUL bytes");
  expect_error("name: \"\\x\"", "config.pbtxt:1:8: \\x escape needs hex digits");
  expect_error("name: \"\\ud800\"", "config.pbtxt:1:8: invalid unicode escape in string");
  expect_error("name: \"\\u12\"", "config.pbtxt:1:8: \\u escape needs 4 hex digits");
  expect_error("name: \"m\"\n  @", "config.pbtxt:2:3: unexpected character '@'");
  expect_error("name: \"m\"\n\x01", "config.pbtxt:2:1: unexpected byte 0x01");
  expect_error("3: 4", "config.pbtxt:1:1: expected a field name, got number 3");
  expect_error("[ext.field]: 4", "config.pbtxt:1:1: expected a field name, got '['");

  /* A NUL byte in the text is a bad byte like any other. */
  model_config *c = NULL;
  assert_error_contains(model_config_parse("name: \"m\"\n\0x", 12, "config.pbtxt", &c),
                        "config.pbtxt:2:1: unexpected byte 0x00");
  assert_error_contains(model_config_parse("name: \"m\0\"", 10, "config.pbtxt", &c),
                        "config.pbtxt:1:9: strings may not contain NUL bytes");

  /* Nesting is bounded, not recursed into without end. */
  char deep[1024] = "";
  for (int i = 0; i < 70; i++) strcat(deep, "a{");
  expect_error(deep, "config.pbtxt:1:130: messages nested deeper than 64 levels");
}

static void test_type_errors(void **state) {
  (void)state;
  expect_error("max_batch_size: \"8\"", "config.pbtxt:1:17: field 'max_batch_size' expects an integer, got a string");
  expect_error("max_batch_size: 1.5", "config.pbtxt:1:17: field 'max_batch_size' expects an integer, got '1.5'");
  expect_error("max_batch_size { }", "config.pbtxt:1:16: field 'max_batch_size' expects an integer, got a message");
  expect_error("max_batch_size: 4294967296",
              "config.pbtxt:1:17: field 'max_batch_size' must be between -2147483648 and 2147483647, got 4294967296");
  expect_error("max_batch_size: 99999999999999999999",
              "config.pbtxt:1:17: field 'max_batch_size' expects an integer, got '99999999999999999999'");
  expect_error("name: m", "config.pbtxt:1:7: field 'name' expects a string, got an identifier");
  expect_error("name: \"\\xff\"", "config.pbtxt:1:7: field 'name' is not valid UTF-8");
  expect_error("input: 3", "config.pbtxt:1:8: field 'input[0]' expects a message { ... }, got a number");
  expect_error("input [ { name: \"a\" }, 4 ]", "config.pbtxt:1:24: field 'input[1]' expects a message { ... }, got a number");
  expect_error("input { name: \"a\"\n  data_type: TYPE_FP33 }",
              "config.pbtxt:2:14: unknown value 'TYPE_FP33' for field 'input[0].data_type' (expected TYPE_INVALID, "
              "TYPE_BOOL,");
  expect_error("input { data_type: \"TYPE_FP32\" }",
              "config.pbtxt:1:20: field 'input[0].data_type' expects a name such as TYPE_BOOL, got a string");
  expect_error("input { format: FORMAT_NCWH }", "config.pbtxt:1:17: unknown value 'FORMAT_NCWH' for field 'input[0].format'");
  expect_error("input { data_type: 99 }", "config.pbtxt:1:20: unknown value '99' for field 'input[0].data_type'");
  expect_error("instance_group [ { count: 1 }, { kind: KIND_TPU } ]",
              "config.pbtxt:1:40: unknown value 'KIND_TPU' for field 'instance_group[1].kind' (expected KIND_AUTO, "
              "KIND_GPU, KIND_CPU, KIND_MODEL)");
  expect_error("dynamic_batching { default_queue_policy { timeout_action: DROP } }",
              "config.pbtxt:1:59: unknown value 'DROP' for field 'dynamic_batching.default_queue_policy.timeout_action' "
              "(expected REJECT, DELAY)");
  expect_error("dynamic_batching { preserve_ordering: yes }",
              "config.pbtxt:1:39: field 'dynamic_batching.preserve_ordering' expects true or false, got 'yes'");
  expect_error("dynamic_batching { max_queue_delay_microseconds: -5 }",
              "config.pbtxt:1:50: field 'dynamic_batching.max_queue_delay_microseconds' must be between 0 and "
              "9223372036854775807, got -5");
  expect_error("version_policy { latest { num_versions: -1 } }",
              "config.pbtxt:1:41: field 'version_policy.latest.num_versions' must be between 0 and 4294967295");
  expect_error("max_batch_size: 1\nmax_batch_size: 2", "config.pbtxt:2:1: field 'max_batch_size' is given more than once");
  expect_error("max_batch_size: [1, 2]", "config.pbtxt:1:18: field 'max_batch_size' takes a single value, not a list");
  expect_error("input { name: \"a\" name: \"b\" }", "config.pbtxt:1:19: field 'input[0].name' is given more than once");
  expect_error("input { name: \"a\" dims: [1, 2, 3, 4, 5, 6, 7, 8, 9] }",
              "config.pbtxt:1:50: field 'input[0].dims' has more than 8 dimensions");
  expect_error("version_policy { latest { } all { } }",
              "config.pbtxt:1:29: version_policy takes one of latest, all or specific; 'latest' is already given");
  expect_error("dynamic_batching { }\nsequence_batching { }",
              "config.pbtxt:2:1: only one of dynamic_batching, sequence_batching and ensemble_scheduling may be given");
  expect_error("parameters { key: 1 value { string_value: \"x\" } }",
              "config.pbtxt:1:19: the key of map 'parameters' must be a string, got a number");
  expect_error("parameters { key: \"a\" other: 1 }",
              "config.pbtxt:1:23: an entry of map 'parameters' has a field 'other'; only key and value are allowed");
  expect_error("parameters { key: \"a\" value: \"x\" }",
              "config.pbtxt:1:30: field 'parameters[a]' expects a message { ... }, got a string");
  expect_error("dynamic_batching { priority_queue_policy { key: \"1\" } }",
              "config.pbtxt:1:49: field 'dynamic_batching.priority_queue_policy' expects an integer, got a string");
  expect_error("model_warmup { name: \"w\" batch_size: 1\n  inputs { key: \"x\" value { data_type: TYPE_FP32 dims: 1 "
              "zero_data: true random_data: true } } }",
              "config.pbtxt:2:74: warmup input 'x' takes one of zero_data, random_data or input_data_file; "
              "'zero_data' is already given");
  expect_error("model_warmup { name: \"w\" batch_size: 1\n  inputs { key: \"x\" value { data_type: TYPE_FP32 } } }",
              "config.pbtxt:2:3: warmup input 'x' must give one of zero_data, random_data or input_data_file");
}

static void test_validation_errors(void **state) {
  (void)state;
  expect_error("name: \"m\"\nmax_batch_size: -1", "config.pbtxt:2:1: max_batch_size must be between 0 and 65536, got -1");
  expect_error("instance_group [\n  { kind: KIND_CPU },\n  { name: \"g\"\n    count: 0 } ]",
              "config.pbtxt:4:5: instance_group 'g': count must be >= 1, got 0");
  expect_error("instance_group { count: -2 }", "config.pbtxt:1:18: instance_group 0: count must be >= 1, got -2");
  expect_error("instance_group { kind: KIND_CPU gpus: [0] }",
              "config.pbtxt:1:33: instance_group 0: gpus can be given only with KIND_GPU or KIND_AUTO, not KIND_CPU");
  expect_error("instance_group { kind: KIND_GPU gpus: [0, -1] }",
              "config.pbtxt:1:43: instance_group 0: gpu ids must be >= 0, got -1");
  expect_error("input { name: \"a\" dims: 1 }\ninput { name: \"b\" dims: 1 }\ninput {\n  name: \"a\" dims: 1 }",
              "config.pbtxt:4:3: input 'a' is given more than once");
  expect_error("output { name: \"o\" dims: 1 }\noutput { dims: 1 }", "config.pbtxt:2:1: output 1 must specify 'name'");
  expect_error("input { name: \"a\" dims: [3, -2, 4] }",
              "config.pbtxt:1:29: input 'a': dims must be >= 1 or -1 for a dimension of any size, got -2");
  expect_error("output [ { name: \"a\" dims: [0] } ]",
              "config.pbtxt:1:29: output 'a': dims must be >= 1 or -1 for a dimension of any size, got 0");
  expect_error("input { name: \"a\" dims: [2, 3] reshape { shape: [5] } }",
              "config.pbtxt:1:32: input 'a': reshape [5] does not have the element count of dims [2,3]");
  expect_error("input { name: \"a\" dims: [2, -1] reshape { shape: [-1, 2] } }",
              "config.pbtxt:1:33: input 'a': reshape [-1,2] does not have the element count of dims [2,-1]");
  expect_error("input { name: \"a\" dims: [2, 4] reshape { shape: [8, -1] } }",
              "config.pbtxt:1:32: input 'a': reshape [8,-1] does not have the element count of dims [2,4]");
  expect_error("input { name: \"a\" dims: [2] reshape { shape: [0] } }",
              "config.pbtxt:1:47: input 'a': shape must be >= 1 or -1 for a dimension of any size, got 0");
  expect_error("input { name: \"a\" format: FORMAT_NHWC dims: [224, 224] }",
              "config.pbtxt:1:19: input 'a': FORMAT_NHWC needs 3 dims (without the batch dimension), got 2");
  expect_error("max_batch_size: 8\ndynamic_batching { preferred_batch_size: [ 4, 16 ] }",
              "config.pbtxt:2:47: dynamic_batching preferred_batch_size 16 is larger than max_batch_size 8");
  expect_error("max_batch_size: 8\ndynamic_batching { preferred_batch_size: 0 }",
              "config.pbtxt:2:42: dynamic_batching preferred_batch_size must be >= 1, got 0");
  expect_error("dynamic_batching {\n  priority_levels: 2\n  default_priority_level: 3\n}",
              "config.pbtxt:3:3: dynamic_batching default_priority_level must be between 1 and priority_levels (2), "
              "got 3");
  expect_error("dynamic_batching { default_priority_level: 1 }",
              "config.pbtxt:1:20: dynamic_batching default_priority_level 1 is larger than priority_levels 0");
  expect_error("dynamic_batching {\n  priority_levels: 2 }",
              "config.pbtxt:1:1: dynamic_batching default_priority_level must be between 1 and priority_levels (2), "
              "got 0");
  expect_error("dynamic_batching { priority_levels: 2 default_priority_level: 1\n"
              "  priority_queue_policy { key: 3 value { } } }",
              "config.pbtxt:2:3: dynamic_batching priority_queue_policy is given for priority level 3, outside 1 .. "
              "priority_levels (2)");
  expect_error("version_policy { specific { versions: [2, 0] } }",
              "config.pbtxt:1:43: version_policy specific versions must be >= 1, got 0");
  expect_error("version_policy { specific { } }", "config.pbtxt:1:18: version_policy specific lists no versions");
  expect_error("version_policy { latest { num_versions: 0 } }",
              "config.pbtxt:1:27: version_policy latest num_versions must be >= 1, got 0");
  expect_error("parameters { value { string_value: \"x\" } }",
              "config.pbtxt:1:1: parameters has an entry with an empty key");
  expect_error("model_warmup { batch_size: 1 }", "config.pbtxt:1:1: model_warmup 0 must specify 'name'");
  expect_error("model_warmup [ { name: \"w\" } ]", "config.pbtxt:1:16: model_warmup 'w': batch_size must be >= 1, got 0");
  expect_error("max_batch_size: 0\nmodel_warmup { name: \"w\" batch_size: 2 }",
              "config.pbtxt:2:26: model_warmup 'w': batch_size must be 1 for a model that does not batch, got 2");
  expect_error("max_batch_size: 4\nmodel_warmup { name: \"w\" batch_size: 5 }",
              "config.pbtxt:2:26: model_warmup 'w': batch_size 5 is larger than max_batch_size 4");
  expect_error("model_warmup { name: \"w\" batch_size: 1 inputs { key: \"x\" value { dims: 1 zero_data: true } } }",
              "config.pbtxt:1:40: model_warmup 'w': input 'x' must specify 'data_type'");
  expect_error("model_warmup { name: \"w\" batch_size: 1\n  inputs { key: \"x\" value { data_type: TYPE_FP32 dims: "
              "[4, -1] zero_data: true } } }",
              "config.pbtxt:2:60: model_warmup 'w': input 'x': dims must be >= 1, got -1");

  /* Without max_batch_size the checks that need it wait for completion. */
  model_config *c = parse_ok("dynamic_batching { preferred_batch_size: 64 }\nmodel_warmup { name: \"w\" batch_size: 8 }");
  assert_error_contains(model_config_validate(c),
                        "config.pbtxt:1:42: dynamic_batching preferred_batch_size 64 is larger than max_batch_size 0");
  model_config_free(c);
}

static void test_counts_and_sizes_have_limits(void **state) {
  (void)state;
  expect_error("name: \"m\"\nmax_batch_size: 2147483647",
               "config.pbtxt:2:1: max_batch_size must be between 0 and 65536, got 2147483647");
  expect_error("max_batch_size: 100000000", "config.pbtxt:1:1: max_batch_size must be between 0 and 65536, got 100000000");
  expect_error("instance_group [ { count: 1000 }, { count: 1000 } ]",
               "config.pbtxt:1:37: instance_group 1: count 1000 brings the instances of all groups past 1024");
  expect_error("instance_group [ { count: 2147483647 }, { count: 2147483647 } ]",
               "config.pbtxt:1:20: instance_group 0: count 2147483647 brings the instances of all groups past 1024");
  expect_error("max_batch_size: 8\ndynamic_batching { preferred_batch_size: [1,2,3,4,5,6,7,8,1,2,3,4,5,6,7,8,1] }",
               "config.pbtxt:2:20: dynamic_batching lists 17 preferred_batch_size values, at most 16 are allowed");
  expect_error("max_batch_size: 8\ndynamic_batching { preferred_batch_size: [4, 16] }",
               "dynamic_batching preferred_batch_size 16 is larger than max_batch_size 8");
  expect_error("max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 9223372036854775807 }",
               "config.pbtxt:2:20: dynamic_batching max_queue_delay_microseconds 9223372036854775807 is over the limit");
  expect_error("max_batch_size: 8\ndynamic_batching { priority_levels: 1000000000000 default_priority_level: 1 }",
               "config.pbtxt:2:20: dynamic_batching priority_levels 1000000000000 is over the limit of 256");
  expect_error("max_batch_size: 8\ndynamic_batching {\n default_queue_policy { default_timeout_microseconds: "
               "9223372036854775807 } }",
               "config.pbtxt:3:25: dynamic_batching default_timeout_microseconds 9223372036854775807 is over the limit");
  expect_error("max_batch_size: 8\nmodel_warmup [ { name: \"w\" batch_size: 1 count: 4000000000 } ]",
               "config.pbtxt:2:42: model_warmup 'w': count 4000000000 is over the limit of 10000");
}

static void test_validate_wants_complete_tensors(void **state) {
  (void)state;
  model_config *c = parse_ok("input {\n  name: \"a\"\n  dims: 3\n}");
  assert_error_contains(model_config_validate(c), "config.pbtxt:1:1: input 'a' must specify 'data_type'");
  model_config_free(c);
  c = parse_ok("output [ { name: \"a\", data_type: TYPE_FP32 } ]");
  assert_error_contains(model_config_validate(c), "config.pbtxt:1:10: output 'a' must specify 'dims'");
  model_config_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_syntax_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_type_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_validation_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_counts_and_sizes_have_limits, setup, teardown),
      cmocka_unit_test(test_validate_wants_complete_tensors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
