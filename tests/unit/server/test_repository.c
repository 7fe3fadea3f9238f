/*
 * The model repository's boundaries, on a temporary repository serving the
 * tiny model: a load of a name that is not a model folder is NOT_FOUND and
 * leaves the model table as it was; every file a configuration names
 * (labels, model file, warmup data) must be a plain name that resolves
 * inside the model's folder, symlinks included; a model folder that is
 * itself a symlink is served from where it points; counts and sizes past
 * their limits are load errors naming the field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/server.h"
#include "unit/server/tiny_model.h"

static char root[128], repo[192];

static void path_of(char *out, size_t size, const char *relative) { snprintf(out, size, "%s/%s", root, relative); }

static void write_text(const char *relative, const char *text) {
  char path[512];
  path_of(path, sizeof(path), relative);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void make_dir(const char *relative) {
  char path[512];
  path_of(path, sizeof(path), relative);
  assert_int_equal(mkdir(path, 0755), 0);
}

static int setup(void **state) {
  (void)state;
  snprintf(root, sizeof(root), "/tmp/inferd_test_repository_%d", (int)getpid());
  snprintf(repo, sizeof(repo), "%s/models", root);
  assert_int_equal(mkdir(root, 0755), 0);
  make_dir("models");
  make_dir("models/relu");
  make_dir("models/relu/1");
  char model[512];
  path_of(model, sizeof(model), "models/relu/1/model.onnx");
  assert_null(tiny_relu_model_write(model));
  write_text("models/relu/labels.txt", "a\nb\nc\nd\n");
  write_text("secret.txt", "root:x:0:0\n");
  /* The same model somewhere else, reached through a symlinked folder. */
  make_dir("elsewhere");
  make_dir("elsewhere/relu_linked");
  make_dir("elsewhere/relu_linked/1");
  path_of(model, sizeof(model), "elsewhere/relu_linked/1/model.onnx");
  assert_null(tiny_relu_model_write(model));
  char target[512], link[512];
  path_of(target, sizeof(target), "elsewhere/relu_linked");
  path_of(link, sizeof(link), "models/relu_linked");
  assert_int_equal(symlink(target, link), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return tiny_test_dir_remove(root);
}

static inferd_server *start(void) {
  inferd_server_options o = {.model_repository = repo,
                             .model_control_mode = INFERD_MODEL_CONTROL_EXPLICIT,
                             .threads_per_instance = 1};
  inferd_server *s = NULL;
  assert_null(inferd_server_create(&o, &s));
  return s;
}

static int model_entries(inferd_server *s) {
  pthread_mutex_lock(&s->lock);
  int n = s->n_models;
  pthread_mutex_unlock(&s->lock);
  return n;
}

static void expect_error(inferd_error *e, inferd_error_code code, const char *words) {
  if (!e) fail_msg("expected an error containing \"%s\"", words);
  if (inferd_error_code_of(e) != code || !strstr(inferd_error_message(e), words))
    fail_msg("got (%d) \"%s\", expected (%d) \"%s\"", inferd_error_code_of(e), inferd_error_message(e), code, words);
  inferd_error_delete(e);
}

static void test_load_of_unknown_names_is_not_found_and_adds_no_entry(void **state) {
  (void)state;
  inferd_server *s = start();
  int before = model_entries(s);
  static const char *const names[] = {"nope", "../models/relu", "..", ".", ".hidden", "relu/1", "/etc", "relu/../relu"};
  for (int round = 0; round < 50; round++)
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
      expect_error(inferd_server_load_model(s, names[i], NULL), INFERD_ERROR_NOT_FOUND, "is not in the repository");
  assert_int_equal(model_entries(s), before);
  /* Asked about afterwards, such a name is unknown, not "not ready". */
  bool ready = true;
  expect_error(inferd_server_model_ready(s, "../models/relu", -1, &ready), INFERD_ERROR_NOT_FOUND, "unknown model");
  char *json = NULL;
  expect_error(inferd_server_model_metadata(s, "nope", -1, &json), INFERD_ERROR_NOT_FOUND, "unknown model");
  expect_error(inferd_server_unload_model(s, "../x"), INFERD_ERROR_NOT_FOUND, "is not in the repository");
  assert_int_equal(model_entries(s), before);
  inferd_server_delete(s);
}

/* A configuration override of the tiny model with `extra` JSON members
 * spliced into its output (or, with top-level, into the configuration). */
static inferd_error *load_with(inferd_server *s, const char *output_extra, const char *top_extra) {
  char json[1024];
  snprintf(json, sizeof(json),
           "{\"name\": \"relu\", \"max_batch_size\": 4%s,"
           " \"input\": [{\"name\": \"x\", \"data_type\": \"TYPE_FP32\", \"dims\": [4]}],"
           " \"output\": [{\"name\": \"y\", \"data_type\": \"TYPE_FP32\", \"dims\": [4]%s}]}",
           top_extra, output_extra);
  return inferd_server_load_model(s, "relu", json);
}

static void test_config_paths_stay_inside_the_model_folder(void **state) {
  (void)state;
  inferd_server *s = start();
  assert_null(load_with(s, ", \"label_filename\": \"labels.txt\"", ""));
  expect_error(load_with(s, ", \"label_filename\": \"../../../etc/passwd\"", ""), INFERD_ERROR_INVALID_ARG,
               "label_filename '../../../etc/passwd' must be a plain file name");
  expect_error(load_with(s, ", \"label_filename\": \"/etc/passwd\"", ""), INFERD_ERROR_INVALID_ARG,
               "label_filename '/etc/passwd' must be a plain file name");
  expect_error(load_with(s, ", \"label_filename\": \"..\"", ""), INFERD_ERROR_INVALID_ARG, "label_filename '..'");
  expect_error(load_with(s, "", ", \"default_model_filename\": \"../../outside/x.onnx\""), INFERD_ERROR_INVALID_ARG,
               "default_model_filename '../../outside/x.onnx' must be a plain file name");
  expect_error(load_with(s, "", ", \"default_model_filename\": \"/tmp/x.onnx\""), INFERD_ERROR_INVALID_ARG,
               "default_model_filename '/tmp/x.onnx'");
  expect_error(load_with(s, "",
                         ", \"model_warmup\": [{\"name\": \"w\", \"batch_size\": 1, \"inputs\": {\"x\": {\"data_type\":"
                         " \"TYPE_FP32\", \"dims\": [4], \"input_data_file\": \"../../../secret.txt\"}}}]"),
               INFERD_ERROR_INVALID_ARG, "input_data_file '../../../secret.txt' must be a plain file name");
  /* A symlink inside the folder may not point out of it. */
  char target[512], link[512];
  path_of(target, sizeof(target), "secret.txt");
  path_of(link, sizeof(link), "models/relu/escape.txt");
  assert_int_equal(symlink(target, link), 0);
  expect_error(load_with(s, ", \"label_filename\": \"escape.txt\"", ""), INFERD_ERROR_INVALID_ARG,
               "outside the model folder");
  path_of(link, sizeof(link), "models/relu/1/escape.onnx");
  assert_int_equal(symlink(target, link), 0);
  expect_error(load_with(s, "", ", \"default_model_filename\": \"escape.onnx\""), INFERD_ERROR_INVALID_ARG,
               "outside the model folder");
  /* One that stays inside is followed. */
  path_of(link, sizeof(link), "models/relu/labels_link.txt");
  assert_int_equal(symlink("labels.txt", link), 0);
  assert_null(load_with(s, ", \"label_filename\": \"labels_link.txt\"", ""));
  /* The failed loads kept the version loaded before serving. */
  bool ready = false;
  assert_null(inferd_server_model_ready(s, "relu", -1, &ready));
  assert_true(ready);
  inferd_server_delete(s);
}

static void test_config_limits_are_load_errors(void **state) {
  (void)state;
  inferd_server *s = start();
  static const char *const overrides[][2] = {
      {"{\"max_batch_size\": 2147483647}", "max_batch_size must be between 0 and 65536, got 2147483647"},
      {"{\"max_batch_size\": 100000000}", "max_batch_size must be between 0 and 65536, got 100000000"},
      {"{\"instance_group\": [{\"count\": 2147483647}, {\"count\": 2147483647}]}",
       "instance_group 0: count 2147483647 brings the instances of all groups past 1024"},
      {"{\"max_batch_size\": 4, \"dynamic_batching\": {\"preferred_batch_size\": [2, 8]}}",
       "preferred_batch_size 8 is larger than max_batch_size 4"},
  };
  for (size_t i = 0; i < sizeof(overrides) / sizeof(overrides[0]); i++)
    expect_error(inferd_server_load_model(s, "relu", overrides[i][0]), INFERD_ERROR_INVALID_ARG, overrides[i][1]);
  /* At the limit the tiny model loads and answers. */
  assert_null(inferd_server_load_model(s, "relu", "{\"max_batch_size\": 65536}"));
  bool ready = false;
  assert_null(inferd_server_model_ready(s, "relu", -1, &ready));
  assert_true(ready);
  inferd_server_delete(s);
}

static void test_symlinked_model_folder_is_served(void **state) {
  (void)state;
  inferd_server *s = start();
  assert_null(inferd_server_load_model(s, "relu_linked", NULL));
  bool ready = false;
  assert_null(inferd_server_model_ready(s, "relu_linked", -1, &ready));
  assert_true(ready);
  inferd_server_delete(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load_of_unknown_names_is_not_found_and_adds_no_entry),
      cmocka_unit_test(test_config_paths_stay_inside_the_model_folder),
      cmocka_unit_test(test_config_limits_are_load_errors),
      cmocka_unit_test(test_symlinked_model_folder_is_served),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
