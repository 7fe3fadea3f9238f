/*
 * The caller's output buffers (inferd_request_set_output_allocator) on the
 * tiny model (y = Relu(x), FP32 [N,4]): the server writes an output into
 * the buffer the allocator gives and hands it back to release when the
 * response is deleted; a NULL buffer leaves the allocation to the server;
 * an allocator's error, or GPU memory a CPU instance cannot write, fails
 * the request naming the output; a classification goes into the buffer too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "server/server.h"
#include "unit/server/tiny_model.h"

static char root[128], repo[192];
static inferd_server *server;

static int setup(void **state) {
  (void)state;
  snprintf(root, sizeof(root), "/tmp/inferd_test_output_alloc_%d", (int)getpid());
  assert_null(tiny_relu_repo_make(root, repo, sizeof(repo)));
  inferd_server_options o = {.model_repository = repo,
                             .model_control_mode = INFERD_MODEL_CONTROL_EXPLICIT,
                             .threads_per_instance = 1};
  assert_null(inferd_server_create(&o, &server));
  assert_null(inferd_server_load_model(server, "relu",
                                       "{\"name\": \"relu\", \"max_batch_size\": 8,"
                                       " \"input\": [{\"name\": \"x\", \"data_type\": \"TYPE_FP32\", \"dims\": [4]}],"
                                       " \"output\": [{\"name\": \"y\", \"data_type\": \"TYPE_FP32\", \"dims\": [4]}]}"));
  return 0;
}

static int teardown(void **state) {
  (void)state;
  inferd_server_delete(server);
  return tiny_test_dir_remove(root);
}

/* What the allocator does, and what it and release saw. */
typedef struct alloc_plan {
  enum { GIVE_HOST, GIVE_NULL, GIVE_ERROR, GIVE_GPU } mode;
  char buffer[256];
  int allocs, releases;
  size_t asked;
  char name[32];
  void *released;
  void *released_userp;
} alloc_plan;

static inferd_error *on_alloc(const char *name, size_t byte_size, void *userp, void **buffer,
                              inferd_memory_kind *kind, int *memory_id, void **buffer_userp) {
  alloc_plan *a = userp;
  a->allocs++;
  a->asked = byte_size;
  snprintf(a->name, sizeof(a->name), "%s", name);
  assert_int_equal(*kind, INFERD_MEMORY_CPU);
  assert_true(byte_size <= sizeof(a->buffer));
  switch (a->mode) {
    case GIVE_HOST: *buffer = a->buffer; break;
    case GIVE_NULL: break;
    case GIVE_ERROR: return inferd_error_create(INFERD_ERROR_NO_MEMORY, "the send buffer is full");
    case GIVE_GPU:
      *buffer = a->buffer; /* never written: the CPU instance refuses it */
      *kind = INFERD_MEMORY_GPU;
      *memory_id = 0;
      break;
  }
  *buffer_userp = &a->releases;
  return NULL;
}

static void on_release(void *buffer, size_t byte_size, inferd_memory_kind kind, int memory_id, void *buffer_userp,
                       void *userp) {
  (void)byte_size, (void)kind, (void)memory_id;
  alloc_plan *a = userp;
  a->releases++;
  a->released = buffer;
  a->released_userp = buffer_userp;
}

typedef struct answer {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  inferd_response *response;
} answer;

static void on_response(inferd_response *response, uint32_t flags, void *userp) {
  (void)flags;
  answer *a = userp;
  pthread_mutex_lock(&a->lock);
  a->response = response;
  pthread_cond_broadcast(&a->cond);
  pthread_mutex_unlock(&a->lock);
}

static const float x[2 * 4] = {-1, 2, -3, 4, 5, -6, 7, -8};

/* Runs two rows through the model with allocator `a`; `classes` > 0 asks
 * for that classification of y. Returns the response (the caller deletes). */
static inferd_response *infer(alloc_plan *a, int classes) {
  inferd_request *r = NULL;
  assert_null(inferd_request_create(server, "relu", -1, &r));
  const int64_t shape[2] = {2, 4};
  assert_null(inferd_request_add_input(r, "x", INFERD_TYPE_FP32, shape, 2, x, sizeof(x)));
  if (classes) assert_null(inferd_request_add_requested_output(r, "y", classes));
  answer got = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  inferd_request_set_callbacks(r, NULL, NULL, on_response, &got);
  inferd_request_set_output_allocator(r, on_alloc, on_release, a);
  assert_null(inferd_server_infer(server, r));
  pthread_mutex_lock(&got.lock);
  const struct timespec bound = clock_deadline_after(60ull * 1000000000ull);
  while (!got.response)
    if (pthread_cond_timedwait(&got.cond, &got.lock, &bound) != 0) break;
  pthread_mutex_unlock(&got.lock);
  if (!got.response) fail_msg("no answer came");
  return got.response;
}

/* The response's one output. */
typedef struct output_view {
  inferd_datatype type;
  const void *data;
  size_t bytes;
} output_view;

static output_view output_of(const inferd_response *resp) {
  output_view v;
  const char *name;
  const int64_t *shape;
  int rank;
  assert_null(inferd_response_output(resp, 0, &name, &v.type, &shape, &rank, &v.data, &v.bytes));
  assert_string_equal(name, "y");
  return v;
}

static void test_output_written_into_the_callers_buffer(void **state) {
  (void)state;
  alloc_plan a = {.mode = GIVE_HOST};
  inferd_response *resp = infer(&a, 0);
  assert_null(inferd_response_error(resp));
  assert_int_equal(a.allocs, 1);
  assert_string_equal(a.name, "y");
  assert_int_equal(a.asked, sizeof(x));
  const output_view v = output_of(resp);
  assert_ptr_equal(v.data, a.buffer);
  assert_int_equal(v.bytes, sizeof(x));
  const float want[8] = {0, 2, 0, 4, 5, 0, 7, 0};
  assert_memory_equal(a.buffer, want, sizeof(want));
  int id = -1;
  assert_int_equal(inferd_response_output_memory(resp, 0, &id), INFERD_MEMORY_CPU);
  assert_int_equal(id, 0);
  assert_int_equal(a.releases, 0);
  inferd_response_delete(resp);
  assert_int_equal(a.releases, 1);
  assert_ptr_equal(a.released, a.buffer);
  assert_ptr_equal(a.released_userp, &a.releases);
}

static void test_null_buffer_leaves_the_allocation_to_the_server(void **state) {
  (void)state;
  alloc_plan a = {.mode = GIVE_NULL};
  inferd_response *resp = infer(&a, 0);
  assert_null(inferd_response_error(resp));
  assert_int_equal(a.allocs, 1);
  const output_view v = output_of(resp);
  assert_ptr_not_equal(v.data, a.buffer);
  assert_int_equal(((const float *)v.data)[1], 2);
  inferd_response_delete(resp);
  assert_int_equal(a.releases, 0);
}

static void test_allocator_errors_fail_the_request(void **state) {
  (void)state;
  alloc_plan a = {.mode = GIVE_ERROR};
  inferd_response *resp = infer(&a, 0);
  const inferd_error *e = inferd_response_error(resp);
  assert_non_null(e);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_NO_MEMORY);
  assert_non_null(strstr(inferd_error_message(e), "the output allocator for output 'y'"));
  assert_non_null(strstr(inferd_error_message(e), "the send buffer is full"));
  inferd_response_delete(resp);

  alloc_plan g = {.mode = GIVE_GPU};
  resp = infer(&g, 0);
  e = inferd_response_error(resp);
  assert_non_null(e);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_INVALID_ARG);
  assert_non_null(strstr(inferd_error_message(e), "gave output 'y' memory of GPU 0; the instance answering runs on the CPU"));
  inferd_response_delete(resp);
  /* The buffer it gave went back to it with the failed response. */
  assert_int_equal(g.releases, 1);
  assert_ptr_equal(g.released, g.buffer);
}

static void test_classification_goes_into_the_buffer(void **state) {
  (void)state;
  alloc_plan a = {.mode = GIVE_HOST};
  inferd_response *resp = infer(&a, 1);
  assert_null(inferd_response_error(resp));
  const output_view v = output_of(resp);
  assert_int_equal(v.type, INFERD_TYPE_BYTES);
  assert_ptr_equal(v.data, a.buffer);
  assert_int_equal(v.bytes, a.asked);
  /* BYTES elements: a 4-byte length, then "score:index" for each row. */
  uint32_t len;
  memcpy(&len, a.buffer, 4);
  assert_true(len > 0 && 4 + len < v.bytes);
  assert_memory_equal(a.buffer + 4, "4.000000:3", len);
  inferd_response_delete(resp);
  assert_int_equal(a.releases, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_output_written_into_the_callers_buffer),
      cmocka_unit_test(test_null_buffer_leaves_the_allocation_to_the_server),
      cmocka_unit_test(test_allocator_errors_fail_the_request),
      cmocka_unit_test(test_classification_goes_into_the_buffer),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
