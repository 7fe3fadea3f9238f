/*
 * The gRPC frontend's unary endpoints, each answered through the public
 * server API. Health, metadata, configuration, statistics and the index are
 * quick calls answered on the connection's loop thread; their JSON answers
 * become the protocol's messages through grpc_json. Loads and unloads can
 * take seconds, so they run on a short-lived thread that ends the call
 * itself. Inferences are decoded here and answered from the server's
 * response callback, which encodes the response on the thread that produced
 * it and hands the bytes to the connection's loop.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "base/mem.h"
#include "frontends/grpc/grpc_internal.h"
#include "frontends/grpc/grpc_json.h"
#include "frontends/grpc/grpc_service.pb-c.h"

/* ---- health and metadata ---------------------------------------------------- */

static void handle_server_live(grpc_unary *c) {
  Inference__ServerLiveResponse r = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
  r.live = inferd_server_is_live(c->server);
  grpc_unary_reply(c, &r.base);
}

static void handle_server_ready(grpc_unary *c) {
  Inference__ServerReadyResponse r = INFERENCE__SERVER_READY_RESPONSE__INIT;
  r.ready = inferd_server_is_ready(c->server);
  grpc_unary_reply(c, &r.base);
}

/* Answers with the message converted from a JSON answer of the server. */
static void reply_json(grpc_unary *c, inferd_error *err, char *json, const ProtobufCMessageDescriptor *descriptor,
                       const char *wrap_field) {
  ProtobufCMessage *m = NULL;
  if (!err) err = grpc_json_parse_message(json, descriptor, wrap_field, &m);
  free(json);
  if (err) {
    grpc_unary_fail(c, err);
    return;
  }
  grpc_unary_reply(c, m);
  protobuf_c_message_free_unpacked(m, NULL);
}

static void handle_server_metadata(grpc_unary *c) {
  char *json = NULL;
  inferd_error *err = inferd_server_metadata(c->server, &json);
  reply_json(c, err, json, &inference__server_metadata_response__descriptor, NULL);
}

/* The (name, version) of a request naming a model; NULL when the call was
 * answered with an error. */
static Inference__ModelReadyRequest *model_request(grpc_unary *c, int64_t *version) {
  /* ModelReady, ModelMetadata, ModelConfig and ModelStatistics requests are
   * the same two fields; one descriptor reads them all. */
  ProtobufCMessage *m = grpc_unary_request(c, &inference__model_ready_request__descriptor);
  if (!m) return NULL;
  Inference__ModelReadyRequest *r = (Inference__ModelReadyRequest *)m;
  inferd_error *err = grpc_parse_version(r->version, version);
  if (err) {
    protobuf_c_message_free_unpacked(m, NULL);
    grpc_unary_fail(c, err);
    return NULL;
  }
  return r;
}

static void handle_model_ready(grpc_unary *c) {
  int64_t version;
  Inference__ModelReadyRequest *q = model_request(c, &version);
  if (!q) return;
  bool ready = false;
  inferd_error *err = inferd_server_model_ready(c->server, q->name, version, &ready);
  protobuf_c_message_free_unpacked(&q->base, NULL);
  /* As Triton's: a model (or version) that is not there is not ready; the
   * call itself succeeds. */
  if (err && (inferd_error_code_of(err) == INFERD_ERROR_NOT_FOUND || inferd_error_code_of(err) == INFERD_ERROR_UNAVAILABLE)) {
    inferd_error_delete(err);
    err = NULL;
    ready = false;
  }
  if (err) {
    grpc_unary_fail(c, err);
    return;
  }
  Inference__ModelReadyResponse r = INFERENCE__MODEL_READY_RESPONSE__INIT;
  r.ready = ready;
  grpc_unary_reply(c, &r.base);
}

static void handle_model_metadata(grpc_unary *c) {
  int64_t version;
  Inference__ModelReadyRequest *q = model_request(c, &version);
  if (!q) return;
  char *json = NULL;
  inferd_error *err = inferd_server_model_metadata(c->server, q->name, version, &json);
  protobuf_c_message_free_unpacked(&q->base, NULL);
  reply_json(c, err, json, &inference__model_metadata_response__descriptor, NULL);
}

static void handle_model_config(grpc_unary *c) {
  int64_t version;
  Inference__ModelReadyRequest *q = model_request(c, &version);
  if (!q) return;
  char *json = NULL;
  inferd_error *err = inferd_server_model_config(c->server, q->name, version, &json);
  protobuf_c_message_free_unpacked(&q->base, NULL);
  reply_json(c, err, json, &inference__model_config_response__descriptor, "config");
}

static void handle_model_statistics(grpc_unary *c) {
  int64_t version;
  Inference__ModelReadyRequest *q = model_request(c, &version);
  if (!q) return;
  char *json = NULL;
  inferd_error *err = inferd_server_model_statistics(c->server, *q->name ? q->name : NULL, version, &json);
  protobuf_c_message_free_unpacked(&q->base, NULL);
  reply_json(c, err, json, &inference__model_statistics_response__descriptor, NULL);
}

/* ---- repository ------------------------------------------------------------- */

static void handle_repository_index(grpc_unary *c) {
  ProtobufCMessage *m = grpc_unary_request(c, &inference__repository_index_request__descriptor);
  if (!m) return;
  const Inference__RepositoryIndexRequest *q = (const Inference__RepositoryIndexRequest *)m;
  inferd_error *err = NULL;
  if (*q->repository_name)
    err = err_new(INFERD_ERROR_UNSUPPORTED, "repository '%s': inferd serves one repository; leave the name empty",
                  q->repository_name);
  char *json = NULL;
  if (!err) err = inferd_server_repository_index(c->server, q->ready, &json);
  protobuf_c_message_free_unpacked(m, NULL);
  reply_json(c, err, json, &inference__repository_index_response__descriptor, "models");
}

static void load_unload_done(void *arg, inferd_error *err) {
  grpc_unary *c = arg;
  if (err) {
    grpc_unary_fail(c, err);
  } else if (c->load) {
    Inference__RepositoryModelLoadResponse r = INFERENCE__REPOSITORY_MODEL_LOAD_RESPONSE__INIT;
    grpc_unary_reply(c, &r.base);
  } else {
    Inference__RepositoryModelUnloadResponse r = INFERENCE__REPOSITORY_MODEL_UNLOAD_RESPONSE__INIT;
    grpc_unary_reply(c, &r.base);
  }
}

/* Load and unload requests have the same layout; the load descriptor reads
 * both (the unload's parameters are ignored, as they carry nothing inferd
 * uses). */
static void handle_load_unload(grpc_unary *c, bool load) {
  ProtobufCMessage *m = grpc_unary_request(c, &inference__repository_model_load_request__descriptor);
  if (!m) return;
  const Inference__RepositoryModelLoadRequest *q = (const Inference__RepositoryModelLoadRequest *)m;
  inferd_error *err = NULL;
  if (!*q->model_name) err = err_new(INFERD_ERROR_INVALID_ARG, "the request names no model (model_name is empty)");
  for (size_t i = 0; load && !err && i < q->n_parameters; i++) {
    const char *key = q->parameters[i]->key;
    const Inference__ModelRepositoryParameter *v = q->parameters[i]->value;
    if (strcmp(key, "config") == 0) {
      if (!v || v->parameter_choice_case != INFERENCE__MODEL_REPOSITORY_PARAMETER__PARAMETER_CHOICE_STRING_PARAM)
        err = err_new(INFERD_ERROR_INVALID_ARG, "load parameter 'config' must be a string of JSON");
      else
        c->config_json = mem_strdup(v->string_param);
    } else if (strncmp(key, "file:", 5) == 0) {
      err = err_new(INFERD_ERROR_UNSUPPORTED, "load parameter '%s': file overrides are not supported", key);
    }
  }
  if (!err) c->model = mem_strdup(q->model_name);
  protobuf_c_message_free_unpacked(m, NULL);
  if (err) {
    grpc_unary_fail(c, err);
    return;
  }
  c->load = load;
  if (!frontend_model_job(c->server, c->model, load, c->config_json, load_unload_done, c))
    grpc_unary_fail(c, err_new(INFERD_ERROR_INTERNAL, "cannot start a thread for the model %s",
                               load ? "load" : "unload"));
}

static void handle_load(grpc_unary *c) { handle_load_unload(c, true); }
static void handle_unload(grpc_unary *c) { handle_load_unload(c, false); }

/* ---- shared memory ------------------------------------------------------------ */

/* The status requests, and the unregister ones, of both kinds are one
 * string field `name`; the system status request's descriptor reads them
 * all. */
static Inference__SystemSharedMemoryStatusRequest *shm_name_request(grpc_unary *c) {
  return (Inference__SystemSharedMemoryStatusRequest *)grpc_unary_request(
      c, &inference__system_shared_memory_status_request__descriptor);
}

/* The server's status array as the response's map, keyed by region name. */
static void handle_shm_status(grpc_unary *c, inferd_shm_kind kind, const ProtobufCMessageDescriptor *descriptor) {
  Inference__SystemSharedMemoryStatusRequest *q = shm_name_request(c);
  if (!q) return;
  char *json = NULL;
  inferd_error *err = inferd_server_shm_status(c->server, kind, q->name, &json);
  protobuf_c_message_free_unpacked(&q->base, NULL);
  json_t *list = err ? NULL : json_loads(json, 0, NULL);
  free(json);
  if (!err && !list) err = err_new(INFERD_ERROR_INTERNAL, "the shared memory status is not JSON");
  json_t *wrap = NULL;
  if (!err) {
    json_t *regions = json_object();
    size_t i;
    json_t *region;
    json_array_foreach(list, i, region) {
      json_object_set(regions, json_string_value(json_object_get(region, "name")), region);
    }
    wrap = json_pack("{s:o}", "regions", regions);
  }
  json_decref(list);
  ProtobufCMessage *m = NULL;
  if (!err) {
    m = mem_zalloc(descriptor->sizeof_message);
    descriptor->message_init(m);
    err = grpc_json_to_message(wrap, m);
  }
  json_decref(wrap);
  if (err) {
    if (m) protobuf_c_message_free_unpacked(m, NULL);
    grpc_unary_fail(c, err);
    return;
  }
  grpc_unary_reply(c, m);
  protobuf_c_message_free_unpacked(m, NULL);
}

static void handle_system_shm_status(grpc_unary *c) {
  handle_shm_status(c, INFERD_SHM_SYSTEM, &inference__system_shared_memory_status_response__descriptor);
}

static void handle_cuda_shm_status(grpc_unary *c) {
  handle_shm_status(c, INFERD_SHM_CUDA, &inference__cuda_shared_memory_status_response__descriptor);
}

static void handle_system_shm_register(grpc_unary *c) {
  ProtobufCMessage *m = grpc_unary_request(c, &inference__system_shared_memory_register_request__descriptor);
  if (!m) return;
  const Inference__SystemSharedMemoryRegisterRequest *q = (const Inference__SystemSharedMemoryRegisterRequest *)m;
  inferd_error *err = inferd_server_shm_register_system(c->server, q->name, q->key, q->offset, q->byte_size);
  protobuf_c_message_free_unpacked(m, NULL);
  if (err) {
    grpc_unary_fail(c, err);
    return;
  }
  Inference__SystemSharedMemoryRegisterResponse r = INFERENCE__SYSTEM_SHARED_MEMORY_REGISTER_RESPONSE__INIT;
  grpc_unary_reply(c, &r.base);
}

static void handle_cuda_shm_register(grpc_unary *c) {
  ProtobufCMessage *m = grpc_unary_request(c, &inference__cuda_shared_memory_register_request__descriptor);
  if (!m) return;
  const Inference__CudaSharedMemoryRegisterRequest *q = (const Inference__CudaSharedMemoryRegisterRequest *)m;
  inferd_error *err = inferd_server_shm_register_cuda(c->server, q->name, q->raw_handle.data, q->raw_handle.len,
                                                      q->device_id, q->byte_size);
  protobuf_c_message_free_unpacked(m, NULL);
  if (err) {
    grpc_unary_fail(c, err);
    return;
  }
  Inference__CudaSharedMemoryRegisterResponse r = INFERENCE__CUDA_SHARED_MEMORY_REGISTER_RESPONSE__INIT;
  grpc_unary_reply(c, &r.base);
}

static void handle_shm_unregister(grpc_unary *c, inferd_shm_kind kind) {
  Inference__SystemSharedMemoryStatusRequest *q = shm_name_request(c);
  if (!q) return;
  inferd_error *err = inferd_server_shm_unregister(c->server, kind, q->name);
  protobuf_c_message_free_unpacked(&q->base, NULL);
  if (err) {
    grpc_unary_fail(c, err);
    return;
  }
  /* Both kinds' unregister responses are the empty message. */
  Inference__SystemSharedMemoryUnregisterResponse r = INFERENCE__SYSTEM_SHARED_MEMORY_UNREGISTER_RESPONSE__INIT;
  grpc_unary_reply(c, &r.base);
}

static void handle_system_shm_unregister(grpc_unary *c) { handle_shm_unregister(c, INFERD_SHM_SYSTEM); }
static void handle_cuda_shm_unregister(grpc_unary *c) { handle_shm_unregister(c, INFERD_SHM_CUDA); }

/* ---- inference -------------------------------------------------------------- */

static void on_release(inferd_request *request, void *userp) {
  (void)request;
  grpc_unary_unref(userp);
}

static void on_response(inferd_response *response, uint32_t flags, void *userp) {
  (void)flags; /* one response per request, FINAL */
  grpc_unary *c = userp;
  const inferd_error *rerr = inferd_response_error(response);
  if (rerr) {
    grpc_unary_fail(c, inferd_error_create(inferd_error_code_of(rerr), inferd_error_message(rerr)));
    inferd_response_delete(response);
    return;
  }
  uint8_t *bytes;
  size_t size;
  inferd_error *err = grpc_infer_encode_response(response, &c->decoded, false, &bytes, &size);
  inferd_response_delete(response);
  if (err)
    grpc_unary_fail(c, err);
  else
    grpc_unary_reply_bytes(c, bytes, size);
}

static void handle_infer(grpc_unary *c) {
  inferd_error *err = grpc_infer_decode(c->payload, c->payload_size, &c->decoded);
  inferd_request *r = NULL;
  if (!err) err = grpc_infer_build_request(c->server, &c->decoded, &r);
  if (err) {
    grpc_unary_fail(c, err);
    return;
  }
  /* The release callback holds the call (and the inputs in c->decoded). */
  atomic_fetch_add(&c->refs, 1);
  inferd_request_set_callbacks(r, on_release, c, on_response, c);
  inferd_request_set_cancel_flag(r, c->cancel);
  err = inferd_server_infer(c->server, r);
  if (err) {
    /* Nothing was taken: neither callback will come. */
    atomic_fetch_sub(&c->refs, 1);
    inferd_request_delete(r);
    grpc_unary_fail(c, err);
  }
}

/* ---- the method table --------------------------------------------------------- */

#define SERVICE "/inference.GRPCInferenceService/"

/* The stream's index (grpc_server.c handles it) is GRPC_METHOD_STREAM. */
const grpc_method_info grpc_methods[] = {
    {SERVICE "ModelInfer", false, handle_infer},
    {SERVICE "ModelStreamInfer", true, NULL},
    {SERVICE "ServerLive", false, handle_server_live},
    {SERVICE "ServerReady", false, handle_server_ready},
    {SERVICE "ModelReady", false, handle_model_ready},
    {SERVICE "ServerMetadata", false, handle_server_metadata},
    {SERVICE "ModelMetadata", false, handle_model_metadata},
    {SERVICE "ModelConfig", false, handle_model_config},
    {SERVICE "ModelStatistics", false, handle_model_statistics},
    {SERVICE "RepositoryIndex", false, handle_repository_index},
    {SERVICE "RepositoryModelLoad", false, handle_load},
    {SERVICE "RepositoryModelUnload", false, handle_unload},
    {SERVICE "SystemSharedMemoryStatus", false, handle_system_shm_status},
    {SERVICE "SystemSharedMemoryRegister", false, handle_system_shm_register},
    {SERVICE "SystemSharedMemoryUnregister", false, handle_system_shm_unregister},
    {SERVICE "CudaSharedMemoryStatus", false, handle_cuda_shm_status},
    {SERVICE "CudaSharedMemoryRegister", false, handle_cuda_shm_register},
    {SERVICE "CudaSharedMemoryUnregister", false, handle_cuda_shm_unregister},
};
const int grpc_method_count = (int)(sizeof(grpc_methods) / sizeof(grpc_methods[0]));
