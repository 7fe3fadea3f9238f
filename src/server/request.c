/* Building, answering and freeing inference requests and responses. */
#include "server/request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/mem.h"
#include "server/model.h"
#include "server/server.h"

inferd_error *inferd_request_create(inferd_server *server, const char *model, int64_t version, inferd_request **out) {
  *out = NULL;
  if (!server || !model || !*model) return err_new(INFERD_ERROR_INVALID_ARG, "a request needs a model name");
  if (version < -1 || version == 0)
    return err_new(INFERD_ERROR_INVALID_ARG, "model version %lld is not valid (versions start at 1)",
                   (long long)version);
  inferd_request *r = mem_zalloc(sizeof(*r));
  r->server = server;
  r->model_name = mem_strdup(model);
  r->version = version;
  *out = r;
  return NULL;
}

void inferd_request_delete(inferd_request *r) {
  if (!r) return;
  for (int i = 0; i < r->n_inputs; i++) {
    free(r->inputs[i].name);
    shm_region_release(r->inputs[i].region);
  }
  for (int i = 0; i < r->n_outputs; i++) {
    free(r->outputs[i].name);
    shm_region_release(r->outputs[i].region);
  }
  free(r->inputs);
  free(r->outputs);
  free(r->model_name);
  free(r->id);
  if (r->mv) model_version_release(r->mv);
  free(r);
}

inferd_error *inferd_request_set_id(inferd_request *r, const char *id) {
  free(r->id);
  r->id = id ? mem_strdup(id) : NULL;
  return NULL;
}

inferd_error *inferd_request_set_priority(inferd_request *r, uint64_t priority) {
  r->priority = priority;
  return NULL;
}

inferd_error *inferd_request_set_timeout_us(inferd_request *r, uint64_t timeout_us) {
  r->timeout_us = timeout_us;
  return NULL;
}

/* Checks an input's description before it is added. */
static inferd_error *input_check(const inferd_request *r, const char *name, inferd_datatype datatype,
                                 const int64_t *shape, int rank) {
  if (!name || !*name) return err_new(INFERD_ERROR_INVALID_ARG, "an input needs a name");
  if (rank < 0 || rank > INFERD_MAX_RANK)
    return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' has rank %d; at most %d dimensions are supported", name,
                   rank, INFERD_MAX_RANK);
  if (datatype <= INFERD_TYPE_INVALID || datatype >= INFERD_TYPE_COUNT_)
    return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' has an invalid datatype", name);
  for (int i = 0; i < r->n_inputs; i++)
    if (strcmp(r->inputs[i].name, name) == 0)
      return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' is given twice", name);
  for (int d = 0; d < rank; d++)
    if (shape[d] < 0)
      return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' has a negative dimension %lld", name,
                     (long long)shape[d]);
  return NULL;
}

static request_input *input_append(inferd_request *r, const char *name, inferd_datatype datatype,
                                   const int64_t *shape, int rank) {
  MEM_GROW(r->inputs, r->cap_inputs, (size_t)r->n_inputs + 1);
  request_input *in = &r->inputs[r->n_inputs++];
  *in = (request_input){.name = mem_strdup(name), .datatype = datatype, .rank = rank};
  if (rank) memcpy(in->shape, shape, (size_t)rank * sizeof(int64_t));
  return in;
}

inferd_error *inferd_request_add_input(inferd_request *r, const char *name, inferd_datatype datatype,
                                       const int64_t *shape, int rank, const void *data, size_t byte_size) {
  ERR_TRY(input_check(r, name, datatype, shape, rank));
  request_input *in = input_append(r, name, datatype, shape, rank);
  in->data = data;
  in->byte_size = byte_size;
  return NULL;
}

/* Region `region` referenced, with the address of [offset, offset+size). */
static inferd_error *shm_span(inferd_request *r, const char *what, const char *region, uint64_t offset,
                              uint64_t size, shm_region **out, void **ptr) {
  inferd_error *e = shm_registry_acquire(r->server->shm, region, out);
  if (e) return err_wrap(e, "%s", what);
  if (size > SIZE_MAX) e = err_new(INFERD_ERROR_INVALID_ARG, "%s: shared_memory_byte_size is too large", what);
  if (!e) e = shm_region_span(*out, what, offset, size, ptr);
  if (e) {
    shm_region_release(*out);
    *out = NULL;
  }
  return e;
}

inferd_error *inferd_request_add_input_shm(inferd_request *r, const char *name, inferd_datatype datatype,
                                           const int64_t *shape, int rank, const char *region, uint64_t offset,
                                           uint64_t byte_size) {
  ERR_TRY(input_check(r, name, datatype, shape, rank));
  char what[300];
  snprintf(what, sizeof(what), "input '%s'", name);
  shm_region *reg;
  void *ptr;
  ERR_TRY(shm_span(r, what, region, offset, byte_size, &reg, &ptr));
  request_input *in = input_append(r, name, datatype, shape, rank);
  in->data = ptr;
  in->byte_size = (size_t)byte_size;
  in->region = reg;
  if (shm_region_kind(reg) == INFERD_SHM_CUDA) {
    in->memory = INFERD_MEMORY_GPU;
    in->memory_id = shm_region_device(reg);
  }
  return NULL;
}

static inferd_error *output_check(const inferd_request *r, const char *name, int classification_count) {
  if (!name || !*name) return err_new(INFERD_ERROR_INVALID_ARG, "a requested output needs a name");
  if (classification_count < 0)
    return err_new(INFERD_ERROR_INVALID_ARG, "output '%s': classification count %d is negative", name,
                   classification_count);
  for (int i = 0; i < r->n_outputs; i++)
    if (strcmp(r->outputs[i].name, name) == 0)
      return err_new(INFERD_ERROR_INVALID_ARG, "output '%s' is requested twice", name);
  return NULL;
}

static requested_output *output_append(inferd_request *r, const char *name, int classification_count) {
  MEM_GROW(r->outputs, r->cap_outputs, (size_t)r->n_outputs + 1);
  requested_output *o = &r->outputs[r->n_outputs++];
  *o = (requested_output){.name = mem_strdup(name), .classification_count = classification_count};
  return o;
}

inferd_error *inferd_request_add_requested_output(inferd_request *r, const char *name, int classification_count) {
  ERR_TRY(output_check(r, name, classification_count));
  output_append(r, name, classification_count);
  return NULL;
}

inferd_error *inferd_request_add_requested_output_shm(inferd_request *r, const char *name, int classification_count,
                                                      const char *region, uint64_t offset, uint64_t byte_size) {
  ERR_TRY(output_check(r, name, classification_count));
  char what[300];
  snprintf(what, sizeof(what), "output '%s'", name);
  shm_region *reg;
  void *ptr;
  ERR_TRY(shm_span(r, what, region, offset, byte_size, &reg, &ptr));
  requested_output *o = output_append(r, name, classification_count);
  o->region = reg;
  o->shm_offset = offset;
  o->shm_byte_size = byte_size;
  o->shm_data = ptr;
  return NULL;
}

void inferd_request_set_callbacks(inferd_request *r, inferd_request_release_fn release, void *release_userp,
                                  inferd_response_fn respond, void *respond_userp) {
  r->release = release;
  r->release_userp = release_userp;
  r->respond = respond;
  r->respond_userp = respond_userp;
}

void inferd_request_set_output_allocator(inferd_request *r, inferd_output_alloc_fn alloc,
                                         inferd_output_release_fn release, void *userp) {
  r->output_alloc = alloc;
  r->output_release = release;
  r->output_userp = userp;
}

void inferd_request_set_cancel_flag(inferd_request *r, const atomic_bool *flag) { r->cancel = flag; }

inferd_error *inferd_request_cancel(inferd_request *r) {
  if (!r) return err_new(INFERD_ERROR_INVALID_ARG, "inferd_request_cancel: no request");
  atomic_store(&r->cancel_asked, true);
  /* Submitted and queued: an idle instance answers it now. */
  if (r->mv) scheduler_wake(r->mv->sched);
  return NULL;
}

inferd_response *response_new(const inferd_request *request, int64_t version, int n_outputs) {
  inferd_response *resp = mem_zalloc(sizeof(*resp));
  resp->id = request->id ? mem_strdup(request->id) : NULL;
  resp->model = mem_strdup(request->model_name);
  resp->version = version;
  resp->n_outputs = n_outputs;
  resp->outputs = mem_zalloc((size_t)(n_outputs + 1) * sizeof(response_output));
  resp->output_release = request->output_release;
  resp->output_userp = request->output_userp;
  return resp;
}

void request_complete(inferd_request *request, inferd_response *response) {
  if (request->release) request->release(request, request->release_userp);
  if (request->respond)
    request->respond(response, INFERD_RESPONSE_FINAL, request->respond_userp);
  else
    inferd_response_delete(response);
  /* Only requests the server accepted (they hold a version) count as in
   * flight. */
  inferd_server *server = request->mv ? request->server : NULL;
  const uint64_t flight_bytes = request->flight_bytes;
  inferd_request_delete(request);
  if (server) server_request_done(server, flight_bytes);
}

inferd_response *response_for_error(const inferd_request *request, inferd_error *error) {
  int64_t version = request->version;
  if (request->mv) version = model_version_number(request->mv);
  inferd_response *resp = response_new(request, version, 0);
  resp->error = error;
  return resp;
}

const inferd_error *inferd_response_error(const inferd_response *r) { return r->error; }
const char *inferd_response_id(const inferd_response *r) { return r->id ? r->id : ""; }
const char *inferd_response_model(const inferd_response *r) { return r->model; }
int64_t inferd_response_model_version(const inferd_response *r) { return r->version; }
int inferd_response_output_count(const inferd_response *r) { return r->n_outputs; }

inferd_error *inferd_response_output(const inferd_response *r, int index, const char **name, inferd_datatype *datatype,
                                     const int64_t **shape, int *rank, const void **data, size_t *byte_size) {
  if (index < 0 || index >= r->n_outputs)
    return err_new(INFERD_ERROR_INVALID_ARG, "output index %d out of range (%d outputs)", index, r->n_outputs);
  const response_output *o = &r->outputs[index];
  if (name) *name = o->name;
  if (datatype) *datatype = o->datatype;
  if (shape) *shape = o->shape;
  if (rank) *rank = o->rank;
  if (data) *data = o->data;
  if (byte_size) *byte_size = o->byte_size;
  return NULL;
}

const char *inferd_response_output_shm(const inferd_response *r, int index, uint64_t *offset, uint64_t *byte_size) {
  if (index < 0 || index >= r->n_outputs || !r->outputs[index].shm_region) return NULL;
  if (offset) *offset = r->outputs[index].shm_offset;
  if (byte_size) *byte_size = r->outputs[index].byte_size;
  return r->outputs[index].shm_region;
}

inferd_memory_kind inferd_response_output_memory(const inferd_response *r, int index, int *memory_id) {
  if (index < 0 || index >= r->n_outputs || !r->outputs[index].caller_buffer) {
    if (memory_id) *memory_id = 0;
    return INFERD_MEMORY_CPU;
  }
  if (memory_id) *memory_id = r->outputs[index].memory_id;
  return r->outputs[index].memory;
}

void inferd_response_delete(inferd_response *r) {
  if (!r) return;
  for (int i = 0; i < r->n_outputs; i++) {
    response_output *o = &r->outputs[i];
    if (!o->caller_buffer) free(o->data);
    else if (r->output_release)
      r->output_release(o->data, o->byte_size, o->memory, o->memory_id, o->buffer_userp, r->output_userp);
    free(o->name);
    free(o->shm_region);
  }
  free(r->outputs);
  free(r->id);
  free(r->model);
  inferd_error_delete(r->error);
  free(r);
}
