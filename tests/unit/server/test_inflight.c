/*
 * The server's bound on in-flight bytes, on the tiny model (x, y: FP32
 * [N,4], so one row is 16 bytes in and 16 out) whose batching delay of an
 * hour keeps requests queued until the test answers them (as long as they
 * are fewer than a full batch of 8 rows, which runs at once): requests are
 * admitted while their tensors fit, the next one is refused OVERLOADED
 * naming the bytes and the limit, one larger than the bound alone is
 * TOO_LARGE, and the bytes come back exactly once however a request is
 * answered (cancelled, cancelled at the stop, refused by a full queue),
 * and inferd_request_cancel answers one queued request CANCELLED.
 * Every wait is on an observed count, bounded only against a hang.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "server/server.h"
#include "unit/server/tiny_model.h"

static char root[128], repo[192];

static int setup(void **state) {
  (void)state;
  snprintf(root, sizeof(root), "/tmp/inferd_test_inflight_%d", (int)getpid());
  assert_null(tiny_relu_repo_make(root, repo, sizeof(repo)));
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return tiny_test_dir_remove(root);
}

/* A server whose tensors in flight may take `limit` bytes, serving the
 * tiny model with requests held in its queue (at most `queue` of them). */
static inferd_server *start(uint64_t limit, int queue) {
  inferd_server_options o = {.model_repository = repo,
                             .model_control_mode = INFERD_MODEL_CONTROL_EXPLICIT,
                             .threads_per_instance = 1,
                             .max_inflight_bytes = limit};
  inferd_server *s = NULL;
  assert_null(inferd_server_create(&o, &s));
  char json[512];
  snprintf(json, sizeof(json),
           "{\"name\": \"relu\", \"max_batch_size\": 8,"
           " \"input\": [{\"name\": \"x\", \"data_type\": \"TYPE_FP32\", \"dims\": [4]}],"
           " \"output\": [{\"name\": \"y\", \"data_type\": \"TYPE_FP32\", \"dims\": [4]}],"
           " \"dynamic_batching\": {\"max_queue_delay_microseconds\": 3600000000,"
           " \"default_queue_policy\": {\"max_queue_size\": %d}}}",
           queue);
  assert_null(inferd_server_load_model(s, "relu", json));
  return s;
}

typedef struct answers {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int count;
  int cancelled, overloaded, other;
  char last[256];
} answers;

static answers got = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void on_response(inferd_response *response, uint32_t flags, void *userp) {
  assert_int_equal(flags, INFERD_RESPONSE_FINAL);
  (void)userp;
  const inferd_error *e = inferd_response_error(response);
  pthread_mutex_lock(&got.lock);
  got.count++;
  const inferd_error_code code = e ? inferd_error_code_of(e) : INFERD_ERROR_UNKNOWN;
  if (e && code == INFERD_ERROR_CANCELLED)
    got.cancelled++;
  else if (e && code == INFERD_ERROR_OVERLOADED)
    got.overloaded++;
  else
    got.other++;
  snprintf(got.last, sizeof(got.last), "%s", e ? inferd_error_message(e) : "");
  pthread_cond_broadcast(&got.cond);
  pthread_mutex_unlock(&got.lock);
  inferd_response_delete(response);
}

static void wait_answers(int n) {
  pthread_mutex_lock(&got.lock);
  const struct timespec bound = clock_deadline_after(60ull * 1000000000ull);
  while (got.count < n)
    if (pthread_cond_timedwait(&got.cond, &got.lock, &bound) != 0) break;
  const int count = got.count;
  pthread_mutex_unlock(&got.lock);
  if (count < n) fail_msg("only %d of %d answers came", count, n);
}

static void reset_answers(void) {
  pthread_mutex_lock(&got.lock);
  got.count = got.cancelled = got.overloaded = got.other = 0;
  got.last[0] = '\0';
  pthread_mutex_unlock(&got.lock);
}

static float rows[8 * 4];

/* A request of `batch` rows; its cancel flag is `cancel` (may be NULL). */
static inferd_request *request(inferd_server *s, int batch, const atomic_bool *cancel) {
  inferd_request *r = NULL;
  assert_null(inferd_request_create(s, "relu", -1, &r));
  const int64_t shape[2] = {batch, 4};
  assert_null(inferd_request_add_input(r, "x", INFERD_TYPE_FP32, shape, 2, rows, (size_t)batch * 16));
  inferd_request_set_callbacks(r, NULL, NULL, on_response, NULL);
  if (cancel) inferd_request_set_cancel_flag(r, cancel);
  return r;
}

/* Submits r and expects a refusal of `code` whose message has `words`;
 * a refused request is still the caller's. */
static void expect_refused(inferd_server *s, inferd_request *r, inferd_error_code code, const char *words) {
  inferd_error *e = inferd_server_infer(s, r);
  if (!e) fail_msg("the request was accepted; expected \"%s\"", words);
  if (inferd_error_code_of(e) != code || !strstr(inferd_error_message(e), words))
    fail_msg("got (%d) \"%s\", expected (%d) \"%s\"", inferd_error_code_of(e), inferd_error_message(e), code, words);
  inferd_error_delete(e);
  inferd_request_delete(r);
}

static uint64_t inflight(inferd_server *s) { return inferd_server_inflight_bytes(s, NULL); }

static void test_bound_refuses_overload_and_bytes_come_back_once(void **state) {
  (void)state;
  reset_answers();
  inferd_server *s = start(100, 100);
  uint64_t limit = 0;
  assert_int_equal(inferd_server_inflight_bytes(s, &limit), 0);
  assert_int_equal(limit, 100);
  static atomic_bool gone[3];
  for (int i = 0; i < 3; i++) {
    atomic_init(&gone[i], false);
    assert_null(inferd_server_infer(s, request(s, 1, &gone[i])));
  }
  /* Three requests of 16 bytes in and 16 out: 96 of the 100. */
  assert_int_equal(inflight(s), 96);
  expect_refused(s, request(s, 1, NULL), INFERD_ERROR_OVERLOADED,
                 "server overloaded: 96 bytes in flight, limit 100 (this request needs 32)");
  /* Larger than the bound alone: no retry would help. */
  expect_refused(s, request(s, 4, NULL), INFERD_ERROR_TOO_LARGE, "take 128 bytes, more than the server's in-flight");
  /* Refusals for other reasons leave the count alone. */
  inferd_request *bad = NULL;
  assert_null(inferd_request_create(s, "relu", -1, &bad));
  assert_null(inferd_request_add_input(bad, "x", INFERD_TYPE_FP32, (const int64_t[]){1, 3}, 2, rows, 12));
  expect_refused(s, bad, INFERD_ERROR_INVALID_ARG, "shape");
  assert_int_equal(inflight(s), 96);
  /* Their clients go: answered CANCELLED, once each, and the bytes are back. */
  for (int i = 0; i < 3; i++) atomic_store(&gone[i], true);
  inferd_server_cancel_flagged(s);
  wait_answers(3);
  assert_int_equal(got.cancelled, 3);
  assert_int_equal(inflight(s), 0);
  /* Room again: an output asked for by name counts, a classification of
   * it does not (its size is not known before the run, and is small). */
  reset_answers();
  inferd_request *named = request(s, 2, NULL);
  assert_null(inferd_request_add_requested_output(named, "y", 0));
  assert_null(inferd_server_infer(s, named));
  assert_int_equal(inflight(s), 64);
  inferd_request *top = request(s, 2, NULL);
  assert_null(inferd_request_add_requested_output(top, "y", 1));
  assert_null(inferd_server_infer(s, top));
  assert_int_equal(inflight(s), 96);
  /* The stop answers what is queued OVERLOADED (retry elsewhere) and
   * gives every byte back; new requests are refused the same way. */
  assert_int_equal(inferd_server_cancel_queued(s), 2);
  wait_answers(2);
  assert_int_equal(got.overloaded, 2);
  assert_non_null(strstr(got.last, "stopping"));
  assert_int_equal(inflight(s), 0);
  inferd_server_stop_accepting(s);
  expect_refused(s, request(s, 1, NULL), INFERD_ERROR_OVERLOADED, "shutting down");
  assert_int_equal(got.count, 2);
  inferd_server_delete(s);
}

static void test_full_queue_gives_the_bytes_back(void **state) {
  (void)state;
  reset_answers();
  inferd_server *s = start(1000, 2);
  assert_null(inferd_server_infer(s, request(s, 1, NULL)));
  assert_null(inferd_server_infer(s, request(s, 1, NULL)));
  expect_refused(s, request(s, 1, NULL), INFERD_ERROR_OVERLOADED, "is full (max_queue_size 2)");
  assert_int_equal(inflight(s), 64);
  assert_int_equal(inferd_server_cancel_queued(s), 2);
  wait_answers(2);
  assert_int_equal(inflight(s), 0);
  inferd_server_delete(s);
}

static void test_no_bound_admits_and_still_counts(void **state) {
  (void)state;
  reset_answers();
  inferd_server *s = start(0, 100);
  /* Seven rows: one short of a full batch, which would run at once. */
  for (int i = 0; i < 7; i++) assert_null(inferd_server_infer(s, request(s, 1, NULL)));
  uint64_t limit = 1;
  assert_int_equal(inferd_server_inflight_bytes(s, &limit), 7 * 32);
  assert_int_equal(limit, 0);
  assert_int_equal(inferd_server_cancel_queued(s), 7);
  wait_answers(7);
  assert_int_equal(inflight(s), 0);
  inferd_server_delete(s);
}

/* inferd_request_cancel: a queued request is answered CANCELLED without
 * running (its bytes back, the others still queued); one cancelled before
 * it is submitted is refused and stays the caller's. The call is made
 * under the lock the response callback takes, as the API asks of a caller
 * cancelling from another thread. */
static void test_request_cancel_answers_a_queued_request(void **state) {
  (void)state;
  reset_answers();
  inferd_server *s = start(1000, 100);
  inferd_request *queued[3];
  for (int i = 0; i < 3; i++) {
    queued[i] = request(s, 1, NULL);
    assert_null(inferd_server_infer(s, queued[i]));
  }
  assert_int_equal(inflight(s), 96);
  pthread_mutex_lock(&got.lock);
  assert_null(inferd_request_cancel(queued[1]));
  assert_null(inferd_request_cancel(queued[1])); /* twice: harmless */
  pthread_mutex_unlock(&got.lock);
  wait_answers(1); /* queued[1] is freed from here on */
  assert_int_equal(got.cancelled, 1);
  assert_non_null(strstr(got.last, "not run: cancelled by its caller"));
  /* Its bytes come back after its callback returns, on the instance's
   * thread: wait for the count to show it. */
  const uint64_t bound = clock_now_ns() + 60ull * 1000000000ull;
  while (inflight(s) != 64 && clock_now_ns() < bound) sched_yield();
  assert_int_equal(inflight(s), 64);
  inferd_request *early = request(s, 1, NULL);
  assert_null(inferd_request_cancel(early));
  expect_refused(s, early, INFERD_ERROR_CANCELLED, "cancelled before it was submitted");
  inferd_error *e = inferd_request_cancel(NULL);
  assert_non_null(e);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_INVALID_ARG);
  inferd_error_delete(e);
  /* The other two were left alone. */
  assert_int_equal(inferd_server_cancel_queued(s), 2);
  wait_answers(3);
  assert_int_equal(got.overloaded, 2);
  assert_int_equal(inflight(s), 0);
  inferd_server_delete(s);
}

/* inferd_server_delete with a request queued behind the model's hour of
 * batching delay: the request runs at once (nothing can join its batch any
 * more) and is answered, and the delete returns. */
static void test_delete_runs_what_is_queued(void **state) {
  (void)state;
  reset_answers();
  inferd_server *s = start(0, 100);
  assert_null(inferd_server_infer(s, request(s, 1, NULL)));
  assert_int_equal(got.count, 0);
  inferd_server_delete(s);
  assert_int_equal(got.count, 1);
  assert_int_equal(got.other, 1);
  assert_string_equal(got.last, ""); /* a success */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bound_refuses_overload_and_bytes_come_back_once),
      cmocka_unit_test(test_full_queue_gives_the_bytes_back),
      cmocka_unit_test(test_no_bound_admits_and_still_counts),
      cmocka_unit_test(test_request_cancel_answers_a_queued_request),
      cmocka_unit_test(test_delete_runs_what_is_queued),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
