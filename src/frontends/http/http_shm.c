/* See http_shm.h. */
#include "frontends/http/http_shm.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/mem.h"
#include "frontends/http/http_json_scan.h"

#define invalid(...) err_new(INFERD_ERROR_INVALID_ARG, __VA_ARGS__)

static inferd_error *load_object(const char *body, size_t size, json_t **out) {
  *out = NULL;
  if (size == 0) return invalid("the register request has no body (a JSON object is expected)");
  if (http_json_depth_over(body, size, HTTP_JSON_MAX_DEPTH))
    return invalid("register JSON nests arrays and objects more than %d levels deep (the limit)", HTTP_JSON_MAX_DEPTH);
  json_error_t jerr;
  json_t *root = json_loadb(body, size, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) return invalid("malformed register JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
  if (!json_is_object(root)) {
    json_decref(root);
    return invalid("the register request must be a JSON object");
  }
  *out = root;
  return NULL;
}

/* A non-negative integer member; when absent, 0 unless it is required. */
static inferd_error *get_size(const json_t *root, const char *field, bool required, uint64_t *out) {
  const json_t *v = json_object_get(root, field);
  if (!v) {
    if (required) return invalid("the register request has no '%s'", field);
    *out = 0;
    return NULL;
  }
  if (!json_is_integer(v) || json_integer_value(v) < 0)
    return invalid("'%s' must be a non-negative integer", field);
  *out = (uint64_t)json_integer_value(v);
  return NULL;
}

inferd_error *http_shm_parse_system_register(const char *body, size_t size, http_shm_system_register *out) {
  *out = (http_shm_system_register){0};
  json_t *root;
  ERR_TRY(load_object(body, size, &root));
  inferd_error *err = NULL;
  const json_t *key = json_object_get(root, "key");
  if (!key)
    err = invalid("the register request has no 'key'");
  else if (!json_is_string(key))
    err = invalid("'key' must be a string");
  else if (strlen(json_string_value(key)) != json_string_length(key))
    err = invalid("'key' holds a NUL character");
  if (!err) err = get_size(root, "offset", false, &out->offset);
  if (!err) err = get_size(root, "byte_size", true, &out->byte_size);
  if (!err) out->key = mem_strdup(json_string_value(key));
  json_decref(root);
  return err;
}

void http_shm_system_register_free(http_shm_system_register *r) {
  free(r->key);
  r->key = NULL;
}

inferd_error *http_shm_parse_cuda_register(const char *body, size_t size, http_shm_cuda_register *out) {
  *out = (http_shm_cuda_register){0};
  json_t *root;
  ERR_TRY(load_object(body, size, &root));
  inferd_error *err = NULL;
  const json_t *raw = json_object_get(root, "raw_handle");
  const json_t *b64 = json_is_object(raw) ? json_object_get(raw, "b64") : NULL;
  if (!raw)
    err = invalid("the register request has no 'raw_handle'");
  else if (!json_is_object(raw))
    err = invalid("'raw_handle' must be an object {\"b64\": \"...\"}");
  else if (!b64)
    err = invalid("'raw_handle' has no 'b64'");
  else if (!json_is_string(b64))
    err = invalid("'raw_handle.b64' must be a string");
  if (!err) {
    size_t n = 0;
    unsigned char decoded[HTTP_SHM_CUDA_HANDLE_SIZE + 3];
    if (!http_base64_decode(json_string_value(b64), json_string_length(b64), decoded, sizeof(decoded), &n))
      err = invalid("'raw_handle.b64' is not base64 of at most %d bytes", HTTP_SHM_CUDA_HANDLE_SIZE);
    else if (n != HTTP_SHM_CUDA_HANDLE_SIZE)
      err = invalid("'raw_handle.b64' decodes to %zu bytes; a CUDA IPC handle is %d", n, HTTP_SHM_CUDA_HANDLE_SIZE);
    else
      memcpy(out->raw_handle, decoded, HTTP_SHM_CUDA_HANDLE_SIZE);
  }
  const json_t *device = json_object_get(root, "device_id");
  if (!err && !device) err = invalid("the register request has no 'device_id'");
  if (!err && (!json_is_integer(device) || json_integer_value(device) < 0))
    err = invalid("'device_id' must be a non-negative integer");
  if (!err) out->device_id = json_integer_value(device);
  if (!err) err = get_size(root, "byte_size", true, &out->byte_size);
  json_decref(root);
  return err;
}

static int base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool http_base64_decode(const char *text, size_t len, unsigned char *out, size_t cap, size_t *out_len) {
  *out_len = 0;
  if (len % 4) return false;
  size_t n = 0;
  for (size_t i = 0; i < len; i += 4) {
    const bool last = i + 4 == len;
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; j++) {
      const unsigned char c = (unsigned char)text[i + j];
      if (c == '=' && last && j >= 2) {
        v[j] = 0;
        pad++;
        continue;
      }
      if (pad) return false; /* data after '=' */
      v[j] = base64_value(c);
      if (v[j] < 0) return false;
    }
    const uint32_t bits = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    const int bytes = 3 - pad;
    if (n + (size_t)bytes > cap) return false;
    out[n++] = (unsigned char)(bits >> 16);
    if (bytes > 1) out[n++] = (unsigned char)(bits >> 8);
    if (bytes > 2) out[n++] = (unsigned char)bits;
  }
  *out_len = n;
  return true;
}
