/*
 * The shared-memory region registry: names and keys checked; a region's
 * range must lie within its object (offsets past the end and sums that
 * overflow 64 bits refused); spans checked against the region the same way;
 * names unique across kinds and the table bounded; a region stays mapped
 * and readable while a reference outlives its unregister; status answers
 * and unregister-all; CUDA registration without CUDA, or without a GPU,
 * fails with the reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "server/shm_registry.h"

enum { OBJECT_SIZE = 3 * 4096 + 100 };

typedef struct fixture {
  char key[64];
  shm_registry *reg;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  snprintf(f->key, sizeof(f->key), "/inferd_test_shm_%d", (int)getpid());
  int fd = shm_open(f->key, O_CREAT | O_RDWR | O_TRUNC, 0600);
  if (fd < 0 || ftruncate(fd, OBJECT_SIZE) != 0) return -1;
  unsigned char *p = mmap(NULL, OBJECT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return -1;
  for (int i = 0; i < OBJECT_SIZE; i++) p[i] = (unsigned char)(i * 7);
  munmap(p, OBJECT_SIZE);
  close(fd);
  f->reg = shm_registry_new(4);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  shm_registry_delete(f->reg);
  shm_unlink(f->key);
  free(f);
  return 0;
}

/* Asserts err is an error of `code` whose message holds `part`, and frees it. */
static void expect_error(inferd_error *err, inferd_error_code code, const char *part) {
  if (!err) fail_msg("expected an error containing '%s', got success", part);
  if (inferd_error_code_of(err) != code || !strstr(inferd_error_message(err), part))
    fail_msg("expected %s containing '%s', got %s: %s", inferd_error_code_name(code), part,
             inferd_error_code_name(inferd_error_code_of(err)), inferd_error_message(err));
  inferd_error_delete(err);
}

static void expect_ok(inferd_error *err) {
  if (err) fail_msg("unexpected error: %s", inferd_error_message(err));
}

static void test_names_are_checked(void **state) {
  (void)state;
  expect_ok(shm_name_check("input0_data"));
  expect_ok(shm_name_check("a.b-c:d"));
  expect_error(shm_name_check(""), INFERD_ERROR_INVALID_ARG, "needs a name");
  expect_error(shm_name_check(NULL), INFERD_ERROR_INVALID_ARG, "needs a name");
  expect_error(shm_name_check("a/b"), INFERD_ERROR_INVALID_ARG, "0x2f at 1");
  expect_error(shm_name_check("a b"), INFERD_ERROR_INVALID_ARG, "0x20 at 1");
  expect_error(shm_name_check("tab\there"), INFERD_ERROR_INVALID_ARG, "0x09");
  expect_error(shm_name_check("caf\xc3\xa9"), INFERD_ERROR_INVALID_ARG, "0xc3");
  char long_name[SHM_NAME_MAX + 2];
  memset(long_name, 'x', sizeof(long_name) - 1);
  long_name[SHM_NAME_MAX + 1] = '\0';
  expect_error(shm_name_check(long_name), INFERD_ERROR_INVALID_ARG, "longer than 255");
  long_name[SHM_NAME_MAX] = '\0';
  expect_ok(shm_name_check(long_name));
}

static void test_keys_are_checked(void **state) {
  fixture *f = *state;
  expect_error(shm_registry_add_system(f->reg, "r", "", 0, 1), INFERD_ERROR_INVALID_ARG, "needs a key");
  expect_error(shm_registry_add_system(f->reg, "r", "/", 0, 1), INFERD_ERROR_INVALID_ARG, "1 to");
  expect_error(shm_registry_add_system(f->reg, "r", "/a/b", 0, 1), INFERD_ERROR_INVALID_ARG, "further '/'");
  expect_error(shm_registry_add_system(f->reg, "r", "/inferd_no_such_key_xyz", 0, 1), INFERD_ERROR_INVALID_ARG,
               "cannot open key '/inferd_no_such_key_xyz'");
  expect_error(shm_registry_add_system(f->reg, "bad name", f->key, 0, 1), INFERD_ERROR_INVALID_ARG, "0x20");
  assert_int_equal(shm_registry_count(f->reg), 0);
}

static void test_range_within_the_object(void **state) {
  fixture *f = *state;
  expect_error(shm_registry_add_system(f->reg, "r", f->key, 0, OBJECT_SIZE + 1), INFERD_ERROR_INVALID_ARG,
               "beyond the 12388 bytes");
  expect_error(shm_registry_add_system(f->reg, "r", f->key, OBJECT_SIZE, 1), INFERD_ERROR_INVALID_ARG, "beyond");
  expect_error(shm_registry_add_system(f->reg, "r", f->key, OBJECT_SIZE + 1, 0), INFERD_ERROR_INVALID_ARG,
               "byte_size is 0");
  /* offset + byte_size wraps around 2^64 to a small number. */
  expect_error(shm_registry_add_system(f->reg, "r", f->key, UINT64_MAX - 10, 20), INFERD_ERROR_INVALID_ARG,
               "beyond");
  expect_error(shm_registry_add_system(f->reg, "r", f->key, 16, UINT64_MAX), INFERD_ERROR_INVALID_ARG, "beyond");
  assert_int_equal(shm_registry_count(f->reg), 0);
  /* The whole object, and a span at an offset that is not page-aligned. */
  expect_ok(shm_registry_add_system(f->reg, "whole", f->key, 0, OBJECT_SIZE));
  expect_ok(shm_registry_add_system(f->reg, "tail", f->key, 4096 + 5, OBJECT_SIZE - 4096 - 5));
  shm_region *r;
  expect_ok(shm_registry_acquire(f->reg, "tail", &r));
  void *p;
  expect_ok(shm_region_span(r, "input 'x'", 0, 1, &p));
  assert_int_equal(*(unsigned char *)p, (unsigned char)((4096 + 5) * 7));
  expect_ok(shm_region_span(r, "input 'x'", OBJECT_SIZE - 4096 - 6, 1, &p));
  assert_int_equal(*(unsigned char *)p, (unsigned char)((OBJECT_SIZE - 1) * 7));
  shm_region_release(r);
}

static void test_spans_within_the_region(void **state) {
  fixture *f = *state;
  expect_ok(shm_registry_add_system(f->reg, "r", f->key, 100, 64));
  shm_region *r;
  expect_ok(shm_registry_acquire(f->reg, "r", &r));
  void *p;
  expect_ok(shm_region_span(r, "input 'x'", 0, 64, &p));
  expect_ok(shm_region_span(r, "input 'x'", 64, 0, &p));
  expect_ok(shm_region_span(r, "input 'x'", 60, 4, &p));
  expect_error(shm_region_span(r, "input 'x'", 60, 5, &p), INFERD_ERROR_INVALID_ARG,
               "input 'x': shared_memory_offset 60 + shared_memory_byte_size 5 is beyond the 64 bytes of shared "
               "memory region 'r'");
  assert_null(p);
  expect_error(shm_region_span(r, "output 'y'", 65, 0, &p), INFERD_ERROR_INVALID_ARG, "output 'y'");
  expect_error(shm_region_span(r, "output 'y'", UINT64_MAX, 2, &p), INFERD_ERROR_INVALID_ARG, "beyond");
  expect_error(shm_region_span(r, "output 'y'", 8, UINT64_MAX - 4, &p), INFERD_ERROR_INVALID_ARG, "beyond");
  shm_region_release(r);
}

static void test_names_unique_and_table_bounded(void **state) {
  fixture *f = *state;
  expect_ok(shm_registry_add_system(f->reg, "a", f->key, 0, 8));
  expect_error(shm_registry_add_system(f->reg, "a", f->key, 0, 8), INFERD_ERROR_ALREADY_EXISTS,
               "'a' is already registered");
  /* One namespace: a CUDA registration of a taken name fails on the name. */
  unsigned char handle[64] = {0};
  expect_error(shm_registry_add_cuda(f->reg, "a", handle, sizeof(handle), 0, 8), INFERD_ERROR_ALREADY_EXISTS,
               "already registered");
  expect_ok(shm_registry_add_system(f->reg, "b", f->key, 0, 8));
  expect_ok(shm_registry_add_system(f->reg, "c", f->key, 0, 8));
  expect_ok(shm_registry_add_system(f->reg, "d", f->key, 0, 8));
  expect_error(shm_registry_add_system(f->reg, "e", f->key, 0, 8), INFERD_ERROR_TOO_LARGE,
               "4 regions are registered");
  shm_registry_remove(f->reg, INFERD_SHM_SYSTEM, "b");
  expect_ok(shm_registry_add_system(f->reg, "e", f->key, 0, 8));
  assert_int_equal(shm_registry_count(f->reg), 4);
}

static void test_unknown_regions(void **state) {
  fixture *f = *state;
  shm_region *r = (shm_region *)state; /* anything not NULL */
  expect_error(shm_registry_acquire(f->reg, "nope", &r), INFERD_ERROR_INVALID_ARG,
               "unknown shared memory region 'nope'");
  assert_null(r);
  char *json = NULL;
  expect_error(shm_registry_status(f->reg, INFERD_SHM_SYSTEM, "nope", &json), INFERD_ERROR_NOT_FOUND,
               "no system shared memory region named 'nope'");
  assert_null(json);
  /* Unregistering what is not there is no error, and changes nothing. */
  expect_ok(shm_registry_add_system(f->reg, "kept", f->key, 0, 8));
  shm_registry_remove(f->reg, INFERD_SHM_SYSTEM, "nope");
  shm_registry_remove(f->reg, INFERD_SHM_CUDA, "kept"); /* the other kind */
  shm_registry_remove(f->reg, INFERD_SHM_CUDA, NULL);
  assert_int_equal(shm_registry_count(f->reg), 1);
}

/* A reference taken before the unregister keeps the mapping: the bytes stay
 * readable and writable, and the name is free for a new registration. */
static void test_reference_outlives_unregister(void **state) {
  fixture *f = *state;
  expect_ok(shm_registry_add_system(f->reg, "r", f->key, 8, 32));
  shm_region *held;
  expect_ok(shm_registry_acquire(f->reg, "r", &held));
  shm_registry_remove(f->reg, INFERD_SHM_SYSTEM, "r");
  assert_int_equal(shm_registry_count(f->reg), 0);
  shm_region *again = NULL;
  expect_error(shm_registry_acquire(f->reg, "r", &again), INFERD_ERROR_INVALID_ARG, "unknown");
  unsigned char *p;
  expect_ok(shm_region_span(held, "input 'x'", 0, 32, (void **)&p));
  assert_int_equal(p[0], (unsigned char)(8 * 7));
  p[1] = 0xAB; /* still mapped read-write */
  expect_ok(shm_registry_add_system(f->reg, "r", f->key, 0, 16));
  expect_ok(shm_registry_acquire(f->reg, "r", &again));
  unsigned char *q;
  expect_ok(shm_region_span(again, "input 'x'", 9, 1, (void **)&q));
  assert_int_equal(*q, 0xAB); /* the same object, seen through the new region */
  shm_region_release(held);   /* the last reference: unmapped now */
  shm_region_release(again);
  shm_registry_delete(f->reg); /* drops the registry's reference to the new one */
  f->reg = shm_registry_new(4);
}

static void test_status_and_unregister_all(void **state) {
  fixture *f = *state;
  char *json;
  expect_ok(shm_registry_status(f->reg, INFERD_SHM_SYSTEM, NULL, &json));
  assert_string_equal(json, "[]");
  free(json);
  expect_ok(shm_registry_add_system(f->reg, "a", f->key, 16, 32));
  expect_ok(shm_registry_add_system(f->reg, "b", f->key, 0, 8));
  expect_ok(shm_registry_status(f->reg, INFERD_SHM_SYSTEM, "a", &json));
  char want[256];
  snprintf(want, sizeof(want), "[{\"name\":\"a\",\"key\":\"%s\",\"offset\":16,\"byte_size\":32}]", f->key);
  assert_string_equal(json, want);
  free(json);
  expect_ok(shm_registry_status(f->reg, INFERD_SHM_SYSTEM, "", &json));
  assert_non_null(strstr(json, "\"name\":\"a\""));
  assert_non_null(strstr(json, "\"name\":\"b\""));
  free(json);
  expect_ok(shm_registry_status(f->reg, INFERD_SHM_CUDA, NULL, &json));
  assert_string_equal(json, "[]");
  free(json);
  expect_error(shm_registry_status(f->reg, INFERD_SHM_CUDA, "a", &json), INFERD_ERROR_NOT_FOUND, "no CUDA");
  shm_registry_remove(f->reg, INFERD_SHM_SYSTEM, "");
  assert_int_equal(shm_registry_count(f->reg), 0);
}

/* Without CUDA in the build, or without a GPU, the reason is the message;
 * a handle of the wrong size is refused before CUDA is asked. */
static void test_cuda_without_gpu(void **state) {
  fixture *f = *state;
  unsigned char handle[64] = {0};
  expect_error(shm_registry_add_cuda(f->reg, "g", handle, 63, 0, 8), INFERD_ERROR_INVALID_ARG,
               "a CUDA IPC handle is 64 bytes, 63 given");
  expect_error(shm_registry_add_cuda(f->reg, "g", handle, 64, -1, 8), INFERD_ERROR_INVALID_ARG, "device_id -1");
  expect_error(shm_registry_add_cuda(f->reg, "g", handle, 64, 0, 0), INFERD_ERROR_INVALID_ARG, "byte_size is 0");
  inferd_error *err = shm_registry_add_cuda(f->reg, "g", handle, 64, 0, 8);
  assert_non_null(err); /* a zero handle opens nothing, GPU or not */
  const char *msg = inferd_error_message(err);
  if (!strstr(msg, "CUDA shared memory region 'g': ") ||
      !(strstr(msg, "built without CUDA") || strstr(msg, "no GPU: ") || strstr(msg, "cudaIpcOpenMemHandle failed")))
    fail_msg("unexpected message: %s", msg);
  inferd_error_delete(err);
  assert_int_equal(shm_registry_count(f->reg), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_names_are_checked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keys_are_checked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_range_within_the_object, setup, teardown),
      cmocka_unit_test_setup_teardown(test_spans_within_the_region, setup, teardown),
      cmocka_unit_test_setup_teardown(test_names_unique_and_table_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_regions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reference_outlives_unregister, setup, teardown),
      cmocka_unit_test_setup_teardown(test_status_and_unregister_all, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cuda_without_gpu, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
