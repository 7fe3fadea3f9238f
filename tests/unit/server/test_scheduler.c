/*
 * The scheduler on a tiny model (y = Relu(x), x: [N,4]): requests submitted
 * together are batched (fewer executions than requests) and each gets its
 * own rows back; a full queue refuses with OVERLOADED; an expired request
 * is answered with an error, not run; a lone request that cannot make a
 * preferred size runs once its delay ends; cancelling answers what is
 * queued; and random configurations and request streams answer every
 * request exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/model.h"
#include "server/request.h"
#include "unit/server/tiny_model.h"
#include "unit/test_rng.h"

static char model_path[256];

static int setup(void **state) {
  (void)state;
  snprintf(model_path, sizeof(model_path), "/tmp/inferd_test_scheduler_%d.onnx", (int)getpid());
  assert_null(tiny_relu_model_write(model_path));
  return 0;
}

static int teardown(void **state) {
  (void)state;
  unlink(model_path);
  return 0;
}

typedef struct result {
  pthread_mutex_t lock;
  int done;
  int errors;
  int wrong;
  char last_error[256];
} result;

typedef struct call {
  result *res;
  float in[8 * 4];
  int rows;
  int answers;     /* responses received (under res->lock) */
  bool succeeded;  /* the last response was a success */
  char error[160]; /* the last response's error */
} call;

static void on_response(inferd_response *resp, uint32_t flags, void *userp) {
  assert_int_equal(flags, INFERD_RESPONSE_FINAL); /* a model answers once: its one response is the last */
  call *c = userp;
  result *res = c->res;
  pthread_mutex_lock(&res->lock);
  const inferd_error *e = inferd_response_error(resp);
  c->answers++;
  c->succeeded = !e;
  if (e) {
    res->errors++;
    snprintf(res->last_error, sizeof(res->last_error), "%s", inferd_error_message(e));
    snprintf(c->error, sizeof(c->error), "%s", inferd_error_message(e));
  } else {
    const float *data;
    size_t bytes;
    const int64_t *shape;
    int rank;
    inferd_response_output(resp, 0, NULL, NULL, &shape, &rank, (const void **)&data, &bytes);
    if (bytes != (size_t)c->rows * 4 * sizeof(float) || shape[0] != c->rows) res->wrong++;
    for (int i = 0; i < c->rows * 4 && bytes == (size_t)c->rows * 16; i++)
      if (data[i] != (c->in[i] > 0 ? c->in[i] : 0)) res->wrong++;
  }
  res->done++;
  pthread_mutex_unlock(&res->lock);
  inferd_response_delete(resp);
}

static inferd_request *make_request(call *c, int rows, float seed) {
  inferd_request *r = NULL;
  assert_null(inferd_request_create((inferd_server *)1, "relu", -1, &r));
  c->rows = rows;
  for (int i = 0; i < rows * 4; i++) c->in[i] = (float)(i % 3) - 1.0f + seed;
  int64_t shape[2] = {rows, 4};
  assert_null(inferd_request_add_input(r, "x", INFERD_TYPE_FP32, shape, 2, c->in, (size_t)rows * 16));
  inferd_request_set_callbacks(r, NULL, NULL, on_response, c);
  r->batch = rows;
  return r;
}

static void wait_done(result *res, int n) {
  for (int spins = 0; spins < 2000; spins++) {
    pthread_mutex_lock(&res->lock);
    int done = res->done;
    pthread_mutex_unlock(&res->lock);
    if (done >= n) return;
    usleep(1000);
  }
  fail_msg("only %d of %d responses arrived", res->done, n);
}

static void test_batches_and_splits(void **state) {
  (void)state;
  scheduler_config cfg = {.max_batch_size = 8, .dynamic_batching = true, .max_queue_delay_us = 200000,
                          .priority_levels = 1, .instance_count = 1, .threads_per_instance = 1};
  model_version *mv;
  inferd_plan_options po = {0};
  assert_null(model_version_load("relu", 1, model_path, &po, &cfg, NULL, &mv));
  result res = {.lock = PTHREAD_MUTEX_INITIALIZER};
  static call calls[6];
  int rows[6] = {1, 2, 1, 3, 1, 0};
  int n = 0;
  for (int i = 0; rows[i]; i++, n++) {
    calls[i].res = &res;
    inferd_request *r = make_request(&calls[i], rows[i], (float)i);
    assert_null(scheduler_enqueue(mv->sched, r));
  }
  wait_done(&res, n);
  assert_int_equal(res.errors, 0);
  assert_int_equal(res.wrong, 0);
  /* 8 items in 5 requests; one or two runs, never five. */
  uint64_t execs = atomic_load(&mv->stats.execution_count);
  assert_true(execs >= 1 && execs <= 2);
  assert_int_equal(atomic_load(&mv->stats.inference_count), 8);
  model_version_release(mv);
}

static void test_queue_full_and_timeout(void **state) {
  (void)state;
  /* A long batching delay keeps requests queued while we test the limits. */
  scheduler_config cfg = {.max_batch_size = 8, .dynamic_batching = true, .max_queue_delay_us = 300000,
                          .priority_levels = 1, .instance_count = 1, .threads_per_instance = 1,
                          .max_queue_size = 2, .default_timeout_us = 50000};
  model_version *mv;
  inferd_plan_options po = {0};
  assert_null(model_version_load("relu", 1, model_path, &po, &cfg, NULL, &mv));
  result res = {.lock = PTHREAD_MUTEX_INITIALIZER};
  static call calls[3];
  for (int i = 0; i < 2; i++) {
    calls[i].res = &res;
    assert_null(scheduler_enqueue(mv->sched, make_request(&calls[i], 1, 0)));
  }
  calls[2].res = &res;
  inferd_request *third = make_request(&calls[2], 1, 0);
  inferd_error *e = scheduler_enqueue(mv->sched, third);
  assert_non_null(e);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_OVERLOADED);
  assert_non_null(strstr(inferd_error_message(e), "full"));
  inferd_error_delete(e);
  inferd_request_delete(third); /* refused: still ours */
  /* Both queued requests time out (50 ms) before the 300 ms delay ends. */
  wait_done(&res, 2);
  assert_int_equal(res.errors, 2);
  assert_non_null(strstr(res.last_error, "timed out"));
  model_version_release(mv);
}

/* Timeouts near 2^63 microseconds once wrapped now + timeout * 1000 into
 * the past, so the request timed out at once; they must mean "never". */
static void test_huge_timeouts_never_expire(void **state) {
  (void)state;
  scheduler_config cfg = {.max_batch_size = 8, .dynamic_batching = true, .max_queue_delay_us = 1000,
                          .priority_levels = 1, .instance_count = 1, .threads_per_instance = 1,
                          .allow_timeout_override = true};
  model_version *mv;
  inferd_plan_options po = {0};
  assert_null(model_version_load("relu", 1, model_path, &po, &cfg, NULL, &mv));
  result res = {.lock = PTHREAD_MUTEX_INITIALIZER};
  static call calls[4];
  const uint64_t timeouts[4] = {UINT64_C(1) << 63, (UINT64_C(1) << 63) - 1, UINT64_MAX, UINT64_MAX / 1000 + 1};
  for (int i = 0; i < 4; i++) {
    calls[i].res = &res;
    inferd_request *r = make_request(&calls[i], 1, (float)i);
    assert_null(inferd_request_set_timeout_us(r, timeouts[i]));
    assert_null(scheduler_enqueue(mv->sched, r));
  }
  wait_done(&res, 4);
  if (res.errors) fail_msg("%d requests failed: %s", res.errors, res.last_error);
  assert_int_equal(res.wrong, 0);
  model_version_release(mv);
}

static void test_inline_fast_path(void **state) {
  (void)state;
  scheduler_config cfg = {.max_batch_size = 8, .dynamic_batching = true, .priority_levels = 1, .instance_count = 1,
                          .threads_per_instance = 1};
  model_version *mv;
  inferd_plan_options po = {0};
  assert_null(model_version_load("relu", 1, model_path, &po, &cfg, NULL, &mv));
  result res = {.lock = PTHREAD_MUTEX_INITIALIZER};
  static call calls[40];
  /* Until the model's run time is known, requests are queued. */
  calls[0].res = &res;
  inferd_request *first = make_request(&calls[0], 1, 0);
  assert_false(scheduler_try_inline(mv->sched, first));
  assert_null(scheduler_enqueue(mv->sched, first));
  wait_done(&res, 1);
  for (int i = 1; i < 20; i++) {
    calls[i].res = &res;
    assert_null(scheduler_enqueue(mv->sched, make_request(&calls[i], 1, (float)i)));
    wait_done(&res, i + 1);
  }
  /* Now the runs are known to be short: answered before the call returns. */
  calls[20].res = &res;
  inferd_request *r = make_request(&calls[20], 2, 5);
  assert_true(scheduler_try_inline(mv->sched, r));
  assert_int_equal(res.done, 21);
  assert_int_equal(res.wrong, 0);
  assert_int_equal(res.errors, 0);
  model_version_release(mv);

  /* A model that asks the batcher to wait never runs inline. */
  cfg.max_queue_delay_us = 1000;
  assert_null(model_version_load("relu", 1, model_path, &po, &cfg, NULL, &mv));
  for (int i = 21; i < 39; i++) {
    calls[i].res = &res;
    assert_null(scheduler_enqueue(mv->sched, make_request(&calls[i], 1, 0)));
    wait_done(&res, i + 1);
  }
  calls[39].res = &res;
  r = make_request(&calls[39], 1, 0);
  assert_false(scheduler_try_inline(mv->sched, r));
  inferd_request_delete(r);
  model_version_release(mv);
}

static void test_lone_request_between_preferred_sizes_is_answered(void **state) {
  (void)state;
  /* Filed as a hang: with preferred sizes 2 and 6, a request of 3 alone
   * took no request but marked the instance busy for good. */
  scheduler_config cfg = {.max_batch_size = 8, .dynamic_batching = true, .preferred = {2, 6}, .n_preferred = 2,
                          .max_queue_delay_us = 1000, .priority_levels = 1, .instance_count = 1,
                          .threads_per_instance = 1};
  model_version *mv;
  inferd_plan_options po = {0};
  assert_null(model_version_load("relu", 1, model_path, &po, &cfg, NULL, &mv));
  result res = {.lock = PTHREAD_MUTEX_INITIALIZER};
  static call calls[2];
  calls[0].res = &res;
  assert_null(scheduler_enqueue(mv->sched, make_request(&calls[0], 3, 1)));
  wait_done(&res, 1);
  /* And the instance is free afterwards. */
  calls[1].res = &res;
  assert_null(scheduler_enqueue(mv->sched, make_request(&calls[1], 1, 2)));
  wait_done(&res, 2);
  assert_int_equal(res.errors, 0);
  assert_int_equal(res.wrong, 0);
  model_version_release(mv);
}

static void test_cancel_queued_answers_every_queued_request(void **state) {
  (void)state;
  /* A delay far beyond the test keeps requests queued until cancelled. */
  scheduler_config cfg = {.max_batch_size = 8, .dynamic_batching = true, .max_queue_delay_us = 600000000,
                          .priority_levels = 1, .instance_count = 1, .threads_per_instance = 1};
  model_version *mv;
  inferd_plan_options po = {0};
  assert_null(model_version_load("relu", 1, model_path, &po, &cfg, NULL, &mv));
  result res = {.lock = PTHREAD_MUTEX_INITIALIZER};
  static call calls[3];
  for (int i = 0; i < 3; i++) {
    calls[i].res = &res;
    assert_null(scheduler_enqueue(mv->sched, make_request(&calls[i], 1, 0)));
  }
  assert_int_equal(scheduler_cancel_queued(mv->sched, "the server is stopping"), 3);
  assert_int_equal(res.done, 3); /* answered before the call returned */
  assert_int_equal(res.errors, 3);
  assert_non_null(strstr(res.last_error, "the server is stopping"));
  assert_int_equal(scheduler_queued(mv->sched), 0);
  model_version_release(mv);
  for (int i = 0; i < 3; i++) assert_int_equal(calls[i].answers, 1);
}

static uint32_t rng_state = 0x2545f491u;
static uint32_t next_random(void) { return test_rng_next(&rng_state); }

/* Random batcher settings (preferred sizes, max batch, delays, priorities,
 * queue timeouts and limits, instances, ordering) and a random request
 * stream, part of it on the inline path: every request the scheduler
 * accepts gets exactly one answer, a success with its own rows or a queue
 * timeout for a request that had one; refused ones get none; no batch is
 * larger than max_batch_size and every successful item is counted. */
static void test_random_streams_answer_every_request_once(void **state) {
  (void)state;
  enum { ROUNDS = 40, REQUESTS = 48 };
  static call calls[REQUESTS];
  for (int round = 0; round < ROUNDS; round++) {
    scheduler_config cfg = {.max_batch_size = 1 + (int)(next_random() % 8), .dynamic_batching = next_random() % 5 != 0,
                            .threads_per_instance = 1};
    cfg.n_preferred = (int)(next_random() % 4);
    for (int i = 0; i < cfg.n_preferred; i++) cfg.preferred[i] = 1 + (int)(next_random() % (uint32_t)cfg.max_batch_size);
    cfg.max_queue_delay_us = (next_random() % 4) * 700;
    cfg.priority_levels = 1 + (int)(next_random() % 3);
    cfg.default_priority_level = 1 + (int)(next_random() % (uint32_t)cfg.priority_levels);
    cfg.default_timeout_us = next_random() % 3 == 0 ? 200 + next_random() % 2000 : 0;
    cfg.allow_timeout_override = next_random() % 2;
    cfg.max_queue_size = next_random() % 3 == 0 ? 4 + next_random() % 12 : 0;
    cfg.preserve_ordering = next_random() % 2;
    cfg.instance_count = 1 + (int)(next_random() % 3);
    model_version *mv;
    inferd_plan_options po = {0};
    assert_null(model_version_load("relu", 1, model_path, &po, &cfg, NULL, &mv));
    result res = {.lock = PTHREAD_MUTEX_INITIALIZER};
    bool accepted[REQUESTS] = {0};
    bool had_timeout[REQUESTS] = {0};
    int n_accepted = 0;
    for (int i = 0; i < REQUESTS; i++) {
      calls[i] = (call){.res = &res};
      inferd_request *r = make_request(&calls[i], 1 + (int)(next_random() % (uint32_t)cfg.max_batch_size), (float)i);
      r->priority = next_random() % (uint32_t)(cfg.priority_levels + 1);
      r->timeout_us = next_random() % 4 == 0 ? 100 + next_random() % 3000 : 0;
      had_timeout[i] = cfg.default_timeout_us || r->timeout_us;
      if (next_random() % 4 == 0 && scheduler_try_inline(mv->sched, r)) {
        accepted[i] = true;
        n_accepted++;
        continue;
      }
      inferd_error *e = scheduler_enqueue(mv->sched, r);
      if (e) {
        assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_OVERLOADED);
        assert_non_null(strstr(inferd_error_message(e), "full"));
        inferd_error_delete(e);
        inferd_request_delete(r); /* refused: still ours */
      } else {
        accepted[i] = true;
        n_accepted++;
      }
      if (next_random() % 3 == 0) usleep(next_random() % 400);
    }
    wait_done(&res, n_accepted);
    /* Statistics are counted before answers go out, so they are final now. */
    uint64_t counted_items = atomic_load(&mv->stats.inference_count), batches = 0;
    for (int b = 1; b <= mv->stats.max_batch; b++) batches += atomic_load(&mv->stats.batch_stats[b].compute_infer.count);
    if (batches != atomic_load(&mv->stats.execution_count))
      fail_msg("round %d: %llu executions, %llu of them of 1 to %d items", round,
               (unsigned long long)atomic_load(&mv->stats.execution_count), (unsigned long long)batches,
               cfg.max_batch_size);
    model_version_release(mv); /* joins the instances: no answer can come later */
    uint64_t items = 0;
    for (int i = 0; i < REQUESTS; i++) {
      if (calls[i].answers != (accepted[i] ? 1 : 0))
        fail_msg("round %d: request %d (accepted %d) got %d answers", round, i, accepted[i], calls[i].answers);
      if (!accepted[i]) continue;
      if (calls[i].succeeded) {
        items += (uint64_t)calls[i].rows;
      } else if (!had_timeout[i] || !strstr(calls[i].error, "timed out")) {
        fail_msg("round %d: request %d failed: %s", round, i, calls[i].error);
      }
    }
    assert_int_equal(res.wrong, 0);
    assert_int_equal(items, counted_items);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batches_and_splits),
      cmocka_unit_test(test_queue_full_and_timeout),
      cmocka_unit_test(test_huge_timeouts_never_expire),
      cmocka_unit_test(test_inline_fast_path),
      cmocka_unit_test(test_lone_request_between_preferred_sizes_is_answered),
      cmocka_unit_test(test_cancel_queued_answers_every_queued_request),
      cmocka_unit_test(test_random_streams_answer_every_request_once),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
