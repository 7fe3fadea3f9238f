/*
 * A stand-in for the server API, for testing the HTTP frontend's network
 * part on its own. Its definitions are weak, so when the real server is
 * linked in as well they give way instead of clashing; the test only relies
 * on the behaviour below, which the real server shares.
 *
 * Models: "echo" answers each input as an output named "OUT_<input>" of the
 * same type and shape; "slow" does the same after 300 ms, or answers
 * CANCELLED then when the request's cancel flag was set meanwhile (as the
 * real server does for a request still queued). Responses come from a
 * thread of their own, as server responses do. Any other model is
 * NOT_FOUND.
 */
#ifndef INFERD_TESTS_FAKE_SERVER_H
#define INFERD_TESTS_FAKE_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inferd.h"

#define FAKE_WEAK __attribute__((weak))
enum { FAKE_MAX_TENSORS = 8 };

typedef struct fake_tensor {
  char name[64];
  inferd_datatype datatype;
  int rank;
  int64_t shape[INFERD_MAX_RANK];
  void *data;
  size_t byte_size;
} fake_tensor;

struct inferd_request {
  char model[64];
  int64_t version;
  char id[128];
  fake_tensor inputs[FAKE_MAX_TENSORS];
  int n_inputs;
  char outputs[FAKE_MAX_TENSORS][64];
  int n_outputs;
  inferd_request_release_fn release;
  void *release_userp;
  inferd_response_fn respond;
  void *respond_userp;
  const atomic_bool *cancel;
};

struct inferd_response {
  inferd_error *error;
  char id[128];
  char model[64];
  fake_tensor outputs[FAKE_MAX_TENSORS];
  int n_outputs;
};

static atomic_int fake_live_responses;
static atomic_int fake_requests_seen;
static bool fake_ready = true;

FAKE_WEAK bool inferd_server_is_live(const inferd_server *s) {
  (void)s;
  return true;
}
FAKE_WEAK bool inferd_server_is_ready(const inferd_server *s) {
  (void)s;
  return fake_ready;
}
static bool fake_known(const char *model) { return !strcmp(model, "echo") || !strcmp(model, "slow"); }
static inferd_error *fake_json(char **json, const char *text) {
  *json = strdup(text);
  return NULL;
}
FAKE_WEAK inferd_error *inferd_server_metadata(inferd_server *s, char **json) {
  (void)s;
  return fake_json(json, "{\"name\":\"inferd\",\"version\":\"0.1.0\",\"extensions\":[]}");
}
FAKE_WEAK inferd_error *inferd_server_model_ready(inferd_server *s, const char *m, int64_t v, bool *ready) {
  (void)s, (void)v;
  if (!fake_known(m)) return inferd_error_create(INFERD_ERROR_NOT_FOUND, "unknown model");
  *ready = true;
  return NULL;
}
FAKE_WEAK inferd_error *inferd_server_model_metadata(inferd_server *s, const char *m, int64_t v, char **json) {
  (void)s;
  if (!fake_known(m) || (v != -1 && v != 1)) return inferd_error_create(INFERD_ERROR_NOT_FOUND, "unknown model");
  return fake_json(json, "{\"name\":\"echo\",\"versions\":[\"1\"],\"platform\":\"onnx\",\"inputs\":[],\"outputs\":[]}");
}
FAKE_WEAK inferd_error *inferd_server_model_config(inferd_server *s, const char *m, int64_t v, char **json) {
  (void)s, (void)v;
  if (!fake_known(m)) return inferd_error_create(INFERD_ERROR_NOT_FOUND, "unknown model");
  return fake_json(json, "{\"name\":\"echo\",\"max_batch_size\":8}");
}
FAKE_WEAK inferd_error *inferd_server_model_statistics(inferd_server *s, const char *m, int64_t v, char **json) {
  (void)s, (void)v;
  if (m && !fake_known(m)) return inferd_error_create(INFERD_ERROR_NOT_FOUND, "unknown model");
  return fake_json(json, "{\"model_stats\":[]}");
}
FAKE_WEAK inferd_error *inferd_server_repository_index(inferd_server *s, bool ready_only, char **json) {
  (void)s;
  return fake_json(json, ready_only ? "[{\"name\":\"echo\",\"state\":\"READY\"}]"
                                    : "[{\"name\":\"echo\",\"state\":\"READY\"},{\"name\":\"other\"}]");
}
FAKE_WEAK inferd_error *inferd_server_load_model(inferd_server *s, const char *m, const char *config) {
  (void)s, (void)config;
  usleep(50000);
  if (!fake_known(m)) return inferd_error_create(INFERD_ERROR_NOT_FOUND, "no such model in the repository");
  return NULL;
}
FAKE_WEAK inferd_error *inferd_server_unload_model(inferd_server *s, const char *m) {
  (void)s;
  if (!fake_known(m)) return inferd_error_create(INFERD_ERROR_NOT_FOUND, "unknown model");
  return NULL;
}

FAKE_WEAK inferd_error *inferd_request_create(inferd_server *s, const char *m, int64_t v, inferd_request **out) {
  (void)s;
  if (!fake_known(m)) return inferd_error_create(INFERD_ERROR_NOT_FOUND, "unknown model");
  inferd_request *r = calloc(1, sizeof(*r));
  snprintf(r->model, sizeof(r->model), "%s", m);
  r->version = v < 0 ? 1 : v;
  *out = r;
  return NULL;
}
FAKE_WEAK void inferd_request_delete(inferd_request *r) { free(r); }
FAKE_WEAK inferd_error *inferd_request_set_id(inferd_request *r, const char *id) {
  snprintf(r->id, sizeof(r->id), "%s", id);
  return NULL;
}
FAKE_WEAK inferd_error *inferd_request_set_priority(inferd_request *r, uint64_t p) {
  (void)r, (void)p;
  return NULL;
}
FAKE_WEAK inferd_error *inferd_request_set_timeout_us(inferd_request *r, uint64_t t) {
  (void)r, (void)t;
  return NULL;
}
FAKE_WEAK inferd_error *inferd_request_add_input(inferd_request *r, const char *name, inferd_datatype dt,
                                                 const int64_t *shape, int rank, const void *data, size_t size) {
  if (r->n_inputs == FAKE_MAX_TENSORS) return inferd_error_create(INFERD_ERROR_INVALID_ARG, "too many inputs");
  fake_tensor *t = &r->inputs[r->n_inputs++];
  snprintf(t->name, sizeof(t->name), "%s", name);
  t->datatype = dt;
  t->rank = rank;
  memcpy(t->shape, shape, sizeof(int64_t) * (size_t)rank);
  t->data = (void *)data;
  t->byte_size = size;
  return NULL;
}
FAKE_WEAK inferd_error *inferd_request_add_requested_output(inferd_request *r, const char *name, int k) {
  (void)k;
  if (r->n_outputs == FAKE_MAX_TENSORS) return inferd_error_create(INFERD_ERROR_INVALID_ARG, "too many outputs");
  snprintf(r->outputs[r->n_outputs++], 64, "%s", name);
  return NULL;
}
/* Shared memory is not faked: defined here so that the frontends' calls do
 * not pull the real request and registry code into these tests. */
FAKE_WEAK inferd_error *inferd_request_add_input_shm(inferd_request *r, const char *name, inferd_datatype dt,
                                                     const int64_t *shape, int rank, const char *region,
                                                     uint64_t offset, uint64_t size) {
  (void)r, (void)name, (void)dt, (void)shape, (void)rank, (void)offset, (void)size;
  return inferd_error_create(INFERD_ERROR_INVALID_ARG, region);
}
FAKE_WEAK inferd_error *inferd_request_add_requested_output_shm(inferd_request *r, const char *name, int k,
                                                                const char *region, uint64_t offset,
                                                                uint64_t size) {
  (void)r, (void)name, (void)k, (void)offset, (void)size;
  return inferd_error_create(INFERD_ERROR_INVALID_ARG, region);
}
FAKE_WEAK inferd_error *inferd_server_shm_register_system(inferd_server *s, const char *name, const char *key,
                                                          uint64_t offset, uint64_t size) {
  (void)s, (void)name, (void)key, (void)offset, (void)size;
  return inferd_error_create(INFERD_ERROR_UNSUPPORTED, "no shared memory in the fake server");
}
FAKE_WEAK inferd_error *inferd_server_shm_register_cuda(inferd_server *s, const char *name, const void *handle,
                                                        size_t handle_size, int64_t device, uint64_t size) {
  (void)s, (void)name, (void)handle, (void)handle_size, (void)device, (void)size;
  return inferd_error_create(INFERD_ERROR_UNSUPPORTED, "no shared memory in the fake server");
}
FAKE_WEAK inferd_error *inferd_server_shm_unregister(inferd_server *s, inferd_shm_kind kind, const char *name) {
  (void)s, (void)kind, (void)name;
  return NULL;
}
FAKE_WEAK inferd_error *inferd_server_shm_status(inferd_server *s, inferd_shm_kind kind, const char *name,
                                                 char **json) {
  (void)s, (void)kind, (void)name;
  *json = strdup("[]");
  return NULL;
}
FAKE_WEAK void inferd_request_set_callbacks(inferd_request *r, inferd_request_release_fn rel, void *ru,
                                            inferd_response_fn resp, void *rp) {
  r->release = rel, r->release_userp = ru, r->respond = resp, r->respond_userp = rp;
}

FAKE_WEAK void inferd_request_set_cancel_flag(inferd_request *r, const atomic_bool *flag) { r->cancel = flag; }
FAKE_WEAK int inferd_server_cancel_flagged(inferd_server *s) {
  (void)s;
  return 0; /* "slow" looks at the flag once its delay is over */
}

static void *fake_run(void *arg) {
  inferd_request *r = arg;
  if (!strcmp(r->model, "slow")) usleep(300000);
  const bool cancelled = r->cancel && atomic_load(r->cancel);
  inferd_response *resp = calloc(1, sizeof(*resp));
  atomic_fetch_add(&fake_live_responses, 1);
  snprintf(resp->id, sizeof(resp->id), "%s", r->id);
  snprintf(resp->model, sizeof(resp->model), "%s", r->model);
  for (int i = 0; i < r->n_inputs && !cancelled; i++) {
    const fake_tensor *in = &r->inputs[i];
    char out_name[64];
    snprintf(out_name, sizeof(out_name), "OUT_%.59s", in->name);
    bool wanted = r->n_outputs == 0;
    for (int k = 0; k < r->n_outputs; k++) wanted |= !strcmp(r->outputs[k], out_name);
    if (!wanted) continue;
    fake_tensor *o = &resp->outputs[resp->n_outputs++];
    *o = *in;
    snprintf(o->name, sizeof(o->name), "%s", out_name);
    o->data = malloc(in->byte_size ? in->byte_size : 1);
    memcpy(o->data, in->data, in->byte_size);
  }
  if (cancelled)
    resp->error = inferd_error_create(INFERD_ERROR_CANCELLED, "request not run: its client has gone");
  else if (r->n_inputs == 0)
    resp->error = inferd_error_create(INFERD_ERROR_INVALID_ARG, "the model needs an input");
  atomic_fetch_add(&fake_requests_seen, 1);
  r->release(r, r->release_userp);
  r->respond(resp, INFERD_RESPONSE_FINAL, r->respond_userp);
  free(r);
  return NULL;
}

FAKE_WEAK inferd_error *inferd_server_infer(inferd_server *s, inferd_request *r) {
  (void)s;
  if (!fake_ready) return inferd_error_create(INFERD_ERROR_UNAVAILABLE, "the server is not accepting requests");
  pthread_t tid;
  if (pthread_create(&tid, NULL, fake_run, r) != 0) return inferd_error_create(INFERD_ERROR_UNAVAILABLE, "no thread");
  pthread_detach(tid);
  return NULL;
}

FAKE_WEAK const inferd_error *inferd_response_error(const inferd_response *r) { return r->error; }
FAKE_WEAK const char *inferd_response_id(const inferd_response *r) { return r->id; }
FAKE_WEAK const char *inferd_response_model(const inferd_response *r) { return r->model; }
FAKE_WEAK int64_t inferd_response_model_version(const inferd_response *r) {
  (void)r;
  return 1;
}
FAKE_WEAK int inferd_response_output_count(const inferd_response *r) { return r->n_outputs; }
FAKE_WEAK inferd_error *inferd_response_output(const inferd_response *r, int i, const char **name, inferd_datatype *dt,
                                               const int64_t **shape, int *rank, const void **data, size_t *size) {
  const fake_tensor *o = &r->outputs[i];
  *name = o->name, *dt = o->datatype, *shape = o->shape, *rank = o->rank, *data = o->data, *size = o->byte_size;
  return NULL;
}
FAKE_WEAK const char *inferd_response_output_shm(const inferd_response *r, int i, uint64_t *offset, uint64_t *size) {
  (void)r, (void)i, (void)offset, (void)size;
  return NULL;
}
FAKE_WEAK void inferd_response_delete(inferd_response *r) {
  if (!r) return;
  for (int i = 0; i < r->n_outputs; i++) free(r->outputs[i].data);
  if (r->error) inferd_error_delete(r->error);
  free(r);
  atomic_fetch_sub(&fake_live_responses, 1);
}

#endif
