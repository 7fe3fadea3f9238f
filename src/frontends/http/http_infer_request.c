/*
 * Inference request decoding; see http_infer_request.h.
 *
 * The JSON part is split by http_json_scan: the envelope goes to jansson and
 * each input's "data" array to the fast number parser; the scan also refuses
 * text nested deeper than HTTP_JSON_MAX_DEPTH. Binary inputs are
 * taken from the bytes after the JSON header in input order, each exactly
 * its binary_data_size long; the sizes must add up to the bytes there.
 * Binary tensors are used in place when they are aligned for their element
 * type and copied to an aligned buffer when not, so kernels never see a
 * misaligned pointer.
 */
#include "frontends/http/http_infer_request.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes_tensor.h"
#include "base/dims.h"
#include "base/error.h"
#include "base/mem.h"
#include "frontends/http/http_json_scan.h"
#include "frontends/http/http_numbers.h"

bool http_parse_size(const char *text, size_t *value) {
  if (!text) return false;
  while (*text == ' ' || *text == '\t') text++;
  if (*text < '0' || *text > '9') return false;
  size_t v = 0;
  for (; *text >= '0' && *text <= '9'; text++)
    if (!mem_mul_ok(v, 10, &v) || !mem_add_ok(v, (size_t)(*text - '0'), &v)) return false;
  while (*text == ' ' || *text == '\t') text++;
  if (*text) return false;
  *value = v;
  return true;
}

static bool keep_owned(http_infer_request *r, void *p) { return frontend_keep_owned(&r->owned, &r->owned_count, p); }

void http_infer_request_free(http_infer_request *r) {
  for (int i = 0; i < r->owned_count; i++) free(r->owned[i]);
  free(r->owned);
  free(r->inputs);
  free(r->outputs);
  if (r->root) json_decref((json_t *)r->root);
  *r = (http_infer_request){0};
}

static inferd_error *invalid(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inferd_error *invalid(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return inferd_error_create(INFERD_ERROR_INVALID_ARG, msg);
}

/* A non-negative JSON integer; false when the value is anything else. */
static bool get_uint(const json_t *v, uint64_t *out) {
  if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
  *out = (uint64_t)json_integer_value(v);
  return true;
}

static inferd_error *decode_parameters(const json_t *params, http_infer_request *r) {
  if (!params) return NULL;
  if (!json_is_object(params)) return invalid("request 'parameters' must be an object");
  const json_t *v;
  if ((v = json_object_get(params, "priority")) && !get_uint(v, &r->priority))
    return invalid("request parameter 'priority' must be a non-negative integer");
  if ((v = json_object_get(params, "timeout")) && !get_uint(v, &r->timeout_us))
    return invalid("request parameter 'timeout' must be a non-negative integer (microseconds)");
  if ((v = json_object_get(params, "binary_data_output"))) {
    if (!json_is_boolean(v)) return invalid("request parameter 'binary_data_output' must be a boolean");
    r->binary_data_output = json_is_true(v);
  }
  return NULL;
}

/* A tensor's shared_memory_region, _byte_size and _offset parameters
 * (Triton's shared-memory extension): *region stays NULL without them. */
static inferd_error *decode_shm(const json_t *params, const char *what, const char **region, uint64_t *offset,
                                uint64_t *byte_size) {
  *region = NULL;
  const json_t *name = params ? json_object_get(params, "shared_memory_region") : NULL;
  const json_t *size = params ? json_object_get(params, "shared_memory_byte_size") : NULL;
  const json_t *off = params ? json_object_get(params, "shared_memory_offset") : NULL;
  if (!name) {
    if (size || off) return invalid("%s has shared_memory_byte_size or _offset but no shared_memory_region", what);
    return NULL;
  }
  if (!json_is_string(name) || !*json_string_value(name))
    return invalid("%s: parameter 'shared_memory_region' must be a non-empty string", what);
  if (!size) return invalid("%s: parameter 'shared_memory_byte_size' is missing (it goes with shared_memory_region)",
                            what);
  if (!get_uint(size, byte_size))
    return invalid("%s: parameter 'shared_memory_byte_size' must be a non-negative integer", what);
  *offset = 0;
  if (off && !get_uint(off, offset))
    return invalid("%s: parameter 'shared_memory_offset' must be a non-negative integer", what);
  *region = json_string_value(name);
  return NULL;
}

typedef struct binary_cursor {
  const unsigned char *p;
  size_t left;
  bool present; /* the request had Inference-Header-Content-Length */
} binary_cursor;

static inferd_error *decode_input(http_infer_request *r, const json_t *obj, size_t index, const char *json_text,
                                  const http_json_scan *scan, binary_cursor *bin) {
  http_infer_input *in = &r->inputs[index];
  if (!json_is_object(obj)) return invalid("inputs[%zu] must be an object", index);
  const json_t *name = json_object_get(obj, "name");
  if (!json_is_string(name)) return invalid("inputs[%zu] has no 'name' string", index);
  in->name = json_string_value(name);
  const json_t *dt = json_object_get(obj, "datatype");
  if (!json_is_string(dt)) return invalid("input '%s' has no 'datatype' string", in->name);
  in->datatype = inferd_datatype_from_name(json_string_value(dt));
  if (in->datatype == INFERD_TYPE_INVALID)
    return invalid("input '%s': unknown datatype '%s'", in->name, json_string_value(dt));
  const json_t *shape = json_object_get(obj, "shape");
  if (!json_is_array(shape)) return invalid("input '%s' has no 'shape' array", in->name);
  if (json_array_size(shape) > INFERD_MAX_RANK)
    return invalid("input '%s': shape has %zu dimensions, at most %d are supported", in->name, json_array_size(shape),
                   INFERD_MAX_RANK);
  in->rank = (int)json_array_size(shape);
  size_t count = 1;
  for (int d = 0; d < in->rank; d++) {
    const json_t *dim = json_array_get(shape, (size_t)d);
    uint64_t v;
    if (!get_uint(dim, &v)) return invalid("input '%s': shape dimension %d is not a non-negative integer", in->name, d);
    in->shape[d] = (int64_t)v;
    if (!mem_mul_ok(count, (size_t)v, &count)) return invalid("input '%s': shape is too large", in->name);
  }
  char shape_text[160];
  dims_text(in->shape, in->rank, shape_text, sizeof(shape_text));

  const json_t *params = json_object_get(obj, "parameters");
  if (params && !json_is_object(params)) return invalid("input '%s': 'parameters' must be an object", in->name);
  const json_t *bds = params ? json_object_get(params, "binary_data_size") : NULL;
  const json_t *data = json_object_get(obj, "data");
  const bool has_span = index < scan->span_count && scan->spans[index].begin != scan->spans[index].end;
  char what[300];
  snprintf(what, sizeof(what), "input '%s'", in->name);
  ERR_TRY(decode_shm(params, what, &in->shm_region, &in->shm_offset, &in->shm_byte_size));
  if (in->shm_region) {
    if (data || has_span) return invalid("input '%s' has both 'data' and 'shared_memory_region'", in->name);
    if (bds) return invalid("input '%s' has both 'binary_data_size' and 'shared_memory_region'", in->name);
    return NULL;
  }

  if (bds) {
    uint64_t size64;
    if (!get_uint(bds, &size64))
      return invalid("input '%s': 'binary_data_size' must be a non-negative integer", in->name);
    if (data || has_span) return invalid("input '%s' has both 'data' and 'binary_data_size'", in->name);
    if (!bin->present)
      return invalid("input '%s' has 'binary_data_size' but the request has no Inference-Header-Content-Length header",
                     in->name);
    if (size64 > bin->left)
      return invalid("input '%s': binary_data_size %llu exceeds the %zu bytes of binary data left", in->name,
                     (unsigned long long)size64, bin->left);
    const size_t size = (size_t)size64;
    const size_t elem = inferd_datatype_size(in->datatype);
    if (in->datatype == INFERD_TYPE_BYTES) {
      ERR_TRY(bytes_tensor_read(in->name, "binary data", bin->p, size, count, NULL));
    } else {
      size_t want;
      if (!mem_mul_ok(count, elem, &want) || want != size)
        return invalid("input '%s': binary_data_size is %zu bytes but shape %s of %s needs %zu", in->name, size,
                       shape_text, inferd_datatype_name(in->datatype), count * elem);
    }
    const size_t align = elem ? elem : 1;
    if ((uintptr_t)bin->p % align == 0) {
      in->data = bin->p;
    } else {
      void *copy = mem_try_aligned(size ? size : 1);
      if (!copy || !keep_owned(r, copy)) {
        free(copy);
        return err_new(INFERD_ERROR_NO_MEMORY, "input '%s': cannot allocate %zu bytes", in->name, size);
      }
      memcpy(copy, bin->p, size);
      in->data = copy;
    }
    in->byte_size = size;
    bin->p += size;
    bin->left -= size;
    return NULL;
  }

  /* JSON data: the scanned span, or (when the scanner did not see it, e.g. an
   * escaped key) the DOM value printed back to text for the same parser. */
  void *buf = NULL;
  size_t size = 0;
  inferd_error *err;
  if (has_span) {
    const http_data_span sp = scan->spans[index];
    err = http_numbers_parse(json_text + sp.begin, sp.end - sp.begin, in->datatype, count, in->name, &buf, &size);
  } else if (data) {
    if (!json_is_array(data)) return invalid("input '%s': 'data' must be an array", in->name);
    char *text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) return err_new(INFERD_ERROR_NO_MEMORY, "input '%s': out of memory", in->name);
    err = http_numbers_parse(text, strlen(text), in->datatype, count, in->name, &buf, &size);
    free(text);
  } else {
    return invalid("input '%s' has neither 'data' nor a 'binary_data_size' parameter", in->name);
  }
  if (err) return err;
  if (!keep_owned(r, buf)) {
    free(buf);
    return err_new(INFERD_ERROR_NO_MEMORY, "input '%s': out of memory", in->name);
  }
  in->data = buf;
  in->byte_size = size;
  return NULL;
}

static inferd_error *decode_output(http_infer_request *r, const json_t *obj, size_t index) {
  http_infer_output *out = &r->outputs[index];
  if (!json_is_object(obj)) return invalid("outputs[%zu] must be an object", index);
  const json_t *name = json_object_get(obj, "name");
  if (!json_is_string(name)) return invalid("outputs[%zu] has no 'name' string", index);
  out->name = json_string_value(name);
  out->binary = r->binary_data_output;
  const json_t *params = json_object_get(obj, "parameters");
  if (!params) return NULL;
  if (!json_is_object(params)) return invalid("output '%s': 'parameters' must be an object", out->name);
  const json_t *v;
  if ((v = json_object_get(params, "binary_data"))) {
    if (!json_is_boolean(v)) return invalid("output '%s': 'binary_data' must be a boolean", out->name);
    out->binary = json_is_true(v);
  }
  if ((v = json_object_get(params, "classification"))) {
    uint64_t k;
    if (!get_uint(v, &k) || k > INT32_MAX)
      return invalid("output '%s': 'classification' must be a non-negative integer", out->name);
    out->classification = (int)k;
  }
  char what[300];
  snprintf(what, sizeof(what), "output '%s'", out->name);
  return decode_shm(params, what, &out->shm_region, &out->shm_offset, &out->shm_byte_size);
}

static inferd_error *decode(const char *body, size_t size, const char *header_length, http_infer_request *r) {
  size_t json_len = size;
  binary_cursor bin = {0};
  if (header_length) {
    if (!http_parse_size(header_length, &json_len))
      return invalid("Inference-Header-Content-Length '%s' is not a number", header_length);
    if (json_len > size)
      return invalid("Inference-Header-Content-Length %zu is larger than the %zu-byte body", json_len, size);
    bin = (binary_cursor){.p = (const unsigned char *)body + json_len, .left = size - json_len, .present = true};
  }
  http_json_scan scan = {0};
  const http_json_scan_result scanning = http_json_scan_data(body, json_len, &scan);
  const bool scanned = scanning == HTTP_JSON_SCANNED;
  /* Text the scanner could not walk whole is counted before jansson reads it. */
  if (scanning == HTTP_JSON_TOO_DEEP ||
      (!scanned && http_json_depth_over(body, json_len, HTTP_JSON_MAX_DEPTH)))
    return invalid("request JSON nests arrays and objects more than %d levels deep (the limit)",
                   HTTP_JSON_MAX_DEPTH);
  json_error_t jerr;
  json_t *root = scanned ? json_loadb(scan.envelope, scan.envelope_len, JSON_REJECT_DUPLICATES, &jerr)
                         : json_loadb(body, json_len, JSON_REJECT_DUPLICATES, &jerr);
  inferd_error *err = NULL;
  if (!root) {
    /* Positions in the envelope differ from the body's, so report the
     * body's own error when the envelope is what failed. */
    if (scanned) {
      json_t *again = json_loadb(body, json_len, JSON_REJECT_DUPLICATES, &jerr);
      if (again) json_decref(again);
    }
    err = invalid("malformed request JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
    goto out;
  }
  r->root = root;
  if (!json_is_object(root)) {
    err = invalid("request JSON must be an object");
    goto out;
  }
  const json_t *id = json_object_get(root, "id");
  if (id) {
    if (!json_is_string(id)) {
      err = invalid("request 'id' must be a string");
      goto out;
    }
    r->id = json_string_value(id);
  }
  if ((err = decode_parameters(json_object_get(root, "parameters"), r))) goto out;
  const json_t *inputs = json_object_get(root, "inputs");
  if (!json_is_array(inputs)) {
    err = invalid("request has no 'inputs' array");
    goto out;
  }
  const size_t n_in = json_array_size(inputs);
  r->inputs = mem_try_zalloc(n_in ? n_in : 1, sizeof(*r->inputs));
  if (!r->inputs) {
    err = err_new(INFERD_ERROR_NO_MEMORY, "out of memory for %zu inputs", n_in);
    goto out;
  }
  r->input_count = (int)n_in;
  for (size_t i = 0; i < n_in; i++)
    if ((err = decode_input(r, json_array_get(inputs, i), i, body, &scan, &bin))) goto out;
  if (bin.left) {
    err = invalid("%zu bytes of binary data after the JSON header belong to no input", bin.left);
    goto out;
  }
  const json_t *outputs = json_object_get(root, "outputs");
  if (outputs) {
    if (!json_is_array(outputs)) {
      err = invalid("request 'outputs' must be an array");
      goto out;
    }
    const size_t n_out = json_array_size(outputs);
    r->outputs = mem_try_zalloc(n_out ? n_out : 1, sizeof(*r->outputs));
    if (!r->outputs) {
      err = err_new(INFERD_ERROR_NO_MEMORY, "out of memory for %zu outputs", n_out);
      goto out;
    }
    r->output_count = (int)n_out;
    for (size_t i = 0; i < n_out; i++)
      if ((err = decode_output(r, json_array_get(outputs, i), i))) goto out;
  }
out:
  http_json_scan_free(&scan);
  return err;
}

inferd_error *http_infer_request_decode(const void *body, size_t size, const char *header_length,
                                        http_infer_request *out) {
  *out = (http_infer_request){0};
  inferd_error *err = decode(body, size, header_length, out);
  if (err) http_infer_request_free(out);
  return err;
}
