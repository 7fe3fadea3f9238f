/*
 * The HTTP frontend's endpoints: each route answered through the public
 * server API. Metadata, health, statistics and the repository index are
 * quick calls answered on the loop. Model loads and unloads can take
 * seconds, so they run on a short-lived worker thread and come back through
 * the exchange queue. Inferences are decoded here, handed to the server, and
 * encoded when the server's response comes back to the loop.
 */
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "base/mem.h"
#include "frontends/http/http_infer_response.h"
#include "frontends/http/http_json_scan.h"
#include "frontends/http/http_internal.h"
#include "frontends/http/http_shm.h"

void http_exchange_release_payload(http_exchange *ex) {
  http_infer_request_free(&ex->decoded);
  if (ex->body) evbuffer_free(ex->body);
  ex->body = NULL;
  free(ex->inflated);
  ex->inflated = NULL;
  if (ex->request) inferd_request_delete(ex->request);
  ex->request = NULL;
  if (ex->response) inferd_response_delete(ex->response);
  ex->response = NULL;
  free(ex->config_json);
  ex->config_json = NULL;
  if (ex->job_error) inferd_error_delete(ex->job_error);
  ex->job_error = NULL;
}

static void send_json_result(http_exchange *ex, inferd_error *err, char *json) {
  if (err) {
    free(json);
    http_exchange_send_error(ex, err);
    return;
  }
  http_exchange_send_json(ex, 200, json, json ? strlen(json) : 0);
}

/* The body as one contiguous block, moved out of evhttp's buffer. */
static const char *take_body(http_exchange *ex, size_t *size) {
  ex->body = evbuffer_new();
  if (!ex->body) return NULL;
  evbuffer_add_buffer(ex->body, evhttp_request_get_input_buffer(ex->req));
  *size = evbuffer_get_length(ex->body);
  if (*size == 0) return "";
  return (const char *)evbuffer_pullup(ex->body, -1);
}

/* A small optional JSON body (repository calls); NULL when there is none. */
static inferd_error *parse_small_body(http_exchange *ex, json_t **out) {
  *out = NULL;
  size_t size;
  const char *body = take_body(ex, &size);
  if (!body) return err_new(INFERD_ERROR_NO_MEMORY, "out of memory");
  if (size == 0) return NULL;
  if (http_json_depth_over(body, size, HTTP_JSON_MAX_DEPTH))
    return err_new(INFERD_ERROR_INVALID_ARG, "request JSON nests arrays and objects more than %d levels deep (the limit)",
                   HTTP_JSON_MAX_DEPTH);
  json_error_t jerr;
  *out = json_loadb(body, size, 0, &jerr);
  if (!*out) return err_new(INFERD_ERROR_INVALID_ARG, "malformed request JSON: %s", jerr.text);
  if (!json_is_object(*out)) {
    json_decref(*out);
    *out = NULL;
    return err_new(INFERD_ERROR_INVALID_ARG, "request JSON must be an object");
  }
  return NULL;
}

/* ---- repository --------------------------------------------------------- */

static void handle_repository_index(http_exchange *ex) {
  json_t *body;
  inferd_error *err = parse_small_body(ex, &body);
  if (err) {
    http_exchange_send_error(ex, err);
    return;
  }
  bool ready_only = false;
  const json_t *ready = body ? json_object_get(body, "ready") : NULL;
  if (ready && !json_is_boolean(ready)) err = err_new(INFERD_ERROR_INVALID_ARG, "'ready' must be a boolean");
  if (ready) ready_only = json_is_true(ready);
  if (body) json_decref(body);
  if (err) {
    http_exchange_send_error(ex, err);
    return;
  }
  char *json = NULL;
  err = inferd_server_repository_index(ex->server, ready_only, &json);
  send_json_result(ex, err, json);
}

static void job_complete(http_exchange *ex) {
  if (!ex->req) {
    http_exchange_drop(ex);
    return;
  }
  inferd_error *err = ex->job_error;
  ex->job_error = NULL;
  if (err) {
    http_exchange_send_error(ex, err);
    return;
  }
  http_exchange_send_empty(ex, 200);
}

static void job_done(void *arg, inferd_error *err) {
  http_exchange *ex = arg;
  ex->job_error = err;
  http_exchange_post(ex);
}

static void handle_load_unload(http_exchange *ex) {
  json_t *body;
  inferd_error *err = parse_small_body(ex, &body);
  if (err) {
    http_exchange_send_error(ex, err);
    return;
  }
  const json_t *params = body ? json_object_get(body, "parameters") : NULL;
  if (params && !json_is_object(params)) err = err_new(INFERD_ERROR_INVALID_ARG, "'parameters' must be an object");
  if (!err && params && ex->route.kind == HTTP_ROUTE_MODEL_LOAD) {
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)params, key, value) {
      if (strcmp(key, "config") == 0) {
        if (!json_is_string(value)) {
          err = err_new(INFERD_ERROR_INVALID_ARG, "load parameter 'config' must be a string of JSON");
          break;
        }
        /* The configuration is JSON too: the same depth limit. */
        if (http_json_depth_over(json_string_value(value), json_string_length(value), HTTP_JSON_MAX_DEPTH)) {
          err = err_new(INFERD_ERROR_INVALID_ARG,
                        "load parameter 'config' nests arrays and objects more than %d levels deep (the limit)",
                        HTTP_JSON_MAX_DEPTH);
          break;
        }
        ex->config_json = mem_strdup(json_string_value(value));
      } else if (strncmp(key, "file:", 5) == 0) {
        err = err_new(INFERD_ERROR_UNSUPPORTED, "load parameter '%s': file overrides are not supported", key);
        break;
      }
    }
  }
  if (body) json_decref(body);
  if (err) {
    http_exchange_send_error(ex, err);
    return;
  }
  ex->complete = job_complete;
  ex->state = HTTP_EXCHANGE_AWAITING;
  const bool load = ex->route.kind == HTTP_ROUTE_MODEL_LOAD;
  if (!frontend_model_job(ex->server, ex->route.model, load, load ? ex->config_json : NULL, job_done, ex)) {
    ex->state = HTTP_EXCHANGE_HANDLING;
    http_exchange_send_error(ex, err_new(INFERD_ERROR_INTERNAL, "cannot start a thread for the model %s",
                                         ex->route.kind == HTTP_ROUTE_MODEL_LOAD ? "load" : "unload"));
  }
}

/* ---- shared memory ---------------------------------------------------------- */

static void handle_shm_register(http_exchange *ex) {
  size_t size;
  const char *body = take_body(ex, &size);
  if (!body) {
    http_exchange_send_error(ex, err_new(INFERD_ERROR_NO_MEMORY, "out of memory"));
    return;
  }
  inferd_error *err;
  if (ex->route.shm_kind == INFERD_SHM_CUDA) {
    http_shm_cuda_register q;
    err = http_shm_parse_cuda_register(body, size, &q);
    if (!err)
      err = inferd_server_shm_register_cuda(ex->server, ex->route.region, q.raw_handle, sizeof(q.raw_handle),
                                            q.device_id, q.byte_size);
  } else {
    http_shm_system_register q;
    err = http_shm_parse_system_register(body, size, &q);
    if (!err) err = inferd_server_shm_register_system(ex->server, ex->route.region, q.key, q.offset, q.byte_size);
    http_shm_system_register_free(&q);
  }
  if (err)
    http_exchange_send_error(ex, err);
  else
    http_exchange_send_empty(ex, 200);
}

static void handle_shm(http_exchange *ex) {
  const inferd_shm_kind kind = (inferd_shm_kind)ex->route.shm_kind;
  inferd_error *err;
  char *json = NULL;
  switch (ex->route.kind) {
    case HTTP_ROUTE_SHM_STATUS:
      err = inferd_server_shm_status(ex->server, kind, ex->route.region, &json);
      send_json_result(ex, err, json);
      return;
    case HTTP_ROUTE_SHM_REGISTER:
      handle_shm_register(ex);
      return;
    default:
      err = inferd_server_shm_unregister(ex->server, kind, ex->route.region);
      if (err)
        http_exchange_send_error(ex, err);
      else
        http_exchange_send_empty(ex, 200);
      return;
  }
}

/* ---- inference ------------------------------------------------------------ */

/* Keeps a response alive while its binary outputs are referenced by the
 * send buffer; the loop runs every cleanup, so the count needs no atomics. */
typedef struct response_hold {
  inferd_response *response;
  int refs;
} response_hold;

static void hold_unref(response_hold *h) {
  if (--h->refs > 0) return;
  inferd_response_delete(h->response);
  free(h);
}

static void on_output_sent(const void *data, size_t len, void *arg) {
  (void)data;
  (void)len;
  hold_unref(arg);
}

static bool output_is_binary(const http_infer_request *r, const char *name) {
  for (int i = 0; i < r->output_count; i++)
    if (strcmp(r->outputs[i].name, name) == 0) return r->outputs[i].binary;
  return r->binary_data_output;
}

static void infer_complete(http_exchange *ex) {
  inferd_response *response = ex->response;
  ex->response = NULL;
  if (!ex->req) {
    inferd_response_delete(response);
    http_exchange_drop(ex);
    return;
  }
  const inferd_error *rerr = inferd_response_error(response);
  if (rerr) {
    inferd_error *err = inferd_error_create(inferd_error_code_of(rerr), inferd_error_message(rerr));
    inferd_response_delete(response);
    http_exchange_send_error(ex, err);
    return;
  }
  const int n = inferd_response_output_count(response);
  http_output_view *views = mem_try_zalloc(n > 0 ? (size_t)n : 1, sizeof(*views));
  inferd_error *err = views ? NULL : err_new(INFERD_ERROR_NO_MEMORY, "out of memory");
  bool any_binary = false;
  for (int i = 0; i < n && !err; i++) {
    http_output_view *v = &views[i];
    err = inferd_response_output(response, i, &v->name, &v->datatype, &v->shape, &v->rank, &v->data, &v->byte_size);
    if (err) break;
    v->shm_region = inferd_response_output_shm(response, i, &v->shm_offset, NULL);
    v->binary = !v->shm_region && output_is_binary(&ex->decoded, v->name);
    any_binary |= v->binary;
  }
  struct evbuffer *body = err ? NULL : evbuffer_new();
  if (!err && !body) err = err_new(INFERD_ERROR_NO_MEMORY, "out of memory");
  if (err) {
    free(views);
    inferd_response_delete(response);
    http_exchange_send_error(ex, err);
    return;
  }
  response_hold *hold = mem_alloc(sizeof(*hold));
  *hold = (response_hold){.response = response, .refs = 1};
  size_t json_len;
  int refs;
  err =
      http_infer_response_encode(inferd_response_model(response), inferd_response_model_version(response),
                                 inferd_response_id(response), views, n, body, on_output_sent, hold, &json_len, &refs);
  free(views);
  hold->refs += refs;
  if (err) {
    evbuffer_free(body);
    hold_unref(hold);
    http_exchange_send_error(ex, err);
    return;
  }
  http_exchange_send(ex, 200, body, any_binary ? "application/octet-stream" : "application/json",
                     any_binary ? json_len : 0, true);
  hold_unref(hold);
}

/* Server threads: release and respond each count down; the last one hands
 * the exchange back to its loop. */
static void on_release(inferd_request *request, void *userp) {
  (void)request;
  http_exchange *ex = userp;
  if (atomic_fetch_sub(&ex->callbacks_left, 1) == 1) http_exchange_post(ex);
}

static void on_response(inferd_response *response, uint32_t flags, void *userp) {
  (void)flags; /* one response per request, FINAL */
  http_exchange *ex = userp;
  ex->response = response;
  if (atomic_fetch_sub(&ex->callbacks_left, 1) == 1) http_exchange_post(ex);
}

static inferd_error *build_request(http_exchange *ex, inferd_request **out) {
  const http_infer_request *d = &ex->decoded;
  return frontend_request_new(ex->server, ex->route.model, ex->route.version, d->id, d->priority, d->timeout_us,
                              d->inputs, d->input_count, d->outputs, d->output_count, out);
}

static void handle_infer(http_exchange *ex) {
  http_encoding encoding;
  const char *content_encoding = ex->headers.content_encoding;
  if (!http_encoding_from_header(content_encoding, &encoding)) {
    http_exchange_send_error(ex, err_new(INFERD_ERROR_UNSUPPORTED,
                                         "unsupported Content-Encoding '%s' (gzip and deflate are)", content_encoding));
    return;
  }
  ex->response_encoding = http_encoding_accepted(ex->headers.accept_encoding);
  size_t size;
  const char *body = take_body(ex, &size);
  if (!body) {
    http_exchange_send_error(ex, err_new(INFERD_ERROR_NO_MEMORY, "out of memory"));
    return;
  }
  inferd_error *err = NULL;
  if (encoding != HTTP_ENCODING_IDENTITY) {
    err = http_inflate(body, size, encoding, ex->max_input_size, &ex->inflated, &size);
    body = ex->inflated;
    if (err) {
      http_exchange_send_error(ex, err);
      return;
    }
  }
  err = http_infer_request_decode(body, size, ex->headers.header_length,
                                  &ex->decoded);
  if (!err) err = build_request(ex, &ex->request);
  if (err) {
    http_exchange_send_error(ex, err);
    return;
  }
  inferd_request *r = ex->request;
  atomic_store(&ex->callbacks_left, 2);
  ex->complete = infer_complete;
  ex->state = HTTP_EXCHANGE_AWAITING;
  inferd_request_set_callbacks(r, on_release, ex, on_response, ex);
  inferd_request_set_cancel_flag(r, &ex->cancelled);
  /* From here the server owns the request (it frees it after responding). */
  ex->request = NULL;
  err = inferd_server_infer(ex->server, r);
  if (err) {
    /* Nothing was taken: the request is still ours. */
    ex->state = HTTP_EXCHANGE_HANDLING;
    inferd_request_delete(r);
    http_exchange_send_error(ex, err);
    return;
  }
  /* The answer comes back through this loop, so ex is still here. */
  http_exchange_watch_departure(ex);
}

/* ---- routing -------------------------------------------------------------- */

/* --http-restricted-api: a request to a restricted category goes on only
 * with the category's header and value; else 403 (the message names the
 * category and the header, never the value). */
static bool restriction_allows(http_exchange *ex) {
  const frontend_api api = frontend_api_of_http_route(ex->route.kind);
  const frontend_restriction *restriction = frontend_restriction_of(ex->restricted, api);
  if (!restriction) return true;
  const char *given = evhttp_find_header(evhttp_request_get_input_headers(ex->req), restriction->key);
  if (frontend_restriction_matches(restriction, given, given ? strlen(given) : 0)) return true;
  http_exchange_send_error(ex, frontend_restriction_denied(restriction, api, "header"));
  return false;
}

static const char *method_name(enum evhttp_cmd_type m) {
  switch (m) {
    case EVHTTP_REQ_GET:
      return "GET";
    case EVHTTP_REQ_POST:
      return "POST";
    case EVHTTP_REQ_HEAD:
      return "HEAD";
    case EVHTTP_REQ_PUT:
      return "PUT";
    case EVHTTP_REQ_DELETE:
      return "DELETE";
    case EVHTTP_REQ_OPTIONS:
      return "OPTIONS";
    case EVHTTP_REQ_PATCH:
      return "PATCH";
    default:
      return "this method";
  }
}

void http_handle_request(http_exchange *ex, enum evhttp_cmd_type method) {
  const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ex->req);
  const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
  http_route_parse(path, &ex->route);
  http_route *route = &ex->route;
  if (route->kind == HTTP_ROUTE_NOT_FOUND) {
    http_exchange_send_error(
        ex, err_new(INFERD_ERROR_NOT_FOUND, "no endpoint at %s %s", method_name(method), path ? path : "(no path)"));
    return;
  }
  if (route->kind == HTTP_ROUTE_BAD_VERSION) {
    http_exchange_send_error(ex, err_new(INFERD_ERROR_INVALID_ARG, "invalid model version in '%s'", path));
    return;
  }
  if (!restriction_allows(ex)) return;
  const enum evhttp_cmd_type want = route->method == HTTP_METHOD_POST ? EVHTTP_REQ_POST : EVHTTP_REQ_GET;
  if (method != want) {
    evhttp_add_header(evhttp_request_get_output_headers(ex->req), "Allow", method_name(want));
    inferd_error *e = err_new(INFERD_ERROR_INVALID_ARG, "%s is not allowed on %s (use %s)", method_name(method), path,
                              method_name(want));
    size_t len = 0;
    char *body = http_error_json(inferd_error_message(e), &len);
    inferd_error_delete(e);
    http_exchange_send_json(ex, 405, body, len);
    return;
  }
  char *json = NULL;
  inferd_error *err;
  bool flag = false;
  switch (route->kind) {
    case HTTP_ROUTE_SERVER_METADATA:
      err = inferd_server_metadata(ex->server, &json);
      send_json_result(ex, err, json);
      return;
    case HTTP_ROUTE_HEALTH_LIVE:
      http_exchange_send_empty(ex, inferd_server_is_live(ex->server) ? 200 : 400);
      return;
    case HTTP_ROUTE_HEALTH_READY:
      http_exchange_send_empty(ex, inferd_server_is_ready(ex->server) ? 200 : 400);
      return;
    case HTTP_ROUTE_MODEL_METADATA:
      err = inferd_server_model_metadata(ex->server, route->model, route->version, &json);
      send_json_result(ex, err, json);
      return;
    case HTTP_ROUTE_MODEL_READY:
      err = inferd_server_model_ready(ex->server, route->model, route->version, &flag);
      if (err)
        http_exchange_send_error(ex, err);
      else
        http_exchange_send_empty(ex, flag ? 200 : 400);
      return;
    case HTTP_ROUTE_MODEL_CONFIG:
      err = inferd_server_model_config(ex->server, route->model, route->version, &json);
      send_json_result(ex, err, json);
      return;
    case HTTP_ROUTE_MODEL_STATS:
      err = inferd_server_model_statistics(ex->server, route->model, route->version, &json);
      send_json_result(ex, err, json);
      return;
    case HTTP_ROUTE_INFER:
      handle_infer(ex);
      return;
    case HTTP_ROUTE_REPOSITORY_INDEX:
      handle_repository_index(ex);
      return;
    case HTTP_ROUTE_MODEL_LOAD:
    case HTTP_ROUTE_MODEL_UNLOAD:
      handle_load_unload(ex);
      return;
    case HTTP_ROUTE_SHM_STATUS:
    case HTTP_ROUTE_SHM_REGISTER:
    case HTTP_ROUTE_SHM_UNREGISTER:
      handle_shm(ex);
      return;
    default:
      http_exchange_send_error(ex, err_new(INFERD_ERROR_NOT_FOUND, "no endpoint at %s", path));
      return;
  }
}
