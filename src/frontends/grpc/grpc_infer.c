/*
 * ModelInfer message decoding and encoding; see grpc_infer.h.
 *
 * A response's raw outputs are not copied into a message of their own: the
 * ModelInferResponse points at the server response's output buffers, and
 * protobuf-c packs them straight into the bytes that go on the wire.
 */
#include "frontends/grpc/grpc_infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes_tensor.h"
#include "base/dims.h"
#include "base/error.h"
#include "base/mem.h"

/* Every decoding problem is the client's. */
#define invalid(...) err_new(INFERD_ERROR_INVALID_ARG, __VA_ARGS__)

inferd_error *grpc_parse_version(const char *text, int64_t *version) {
  *version = -1;
  if (!text || !*text) return NULL;
  int64_t v = 0;
  for (const char *p = text; *p; p++) {
    if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10) return invalid("model version '%s' is not a number", text);
    v = v * 10 + (*p - '0');
  }
  *version = v;
  return NULL;
}

/* ---- typed contents --------------------------------------------------------- */

/* Packs `n` elements of a typed list into `dst` as type T, checking each fits. */
#define PACK_LIST(T, list, lo, hi)                                                                      \
  do {                                                                                                  \
    T *dst_ = out;                                                                                      \
    for (size_t i_ = 0; i_ < count; i_++) {                                                             \
      if ((list)[i_] < (lo) || (list)[i_] > (hi))                                                       \
        return invalid("input '%s': element %zu does not fit in %s", name, i_, inferd_datatype_name(datatype)); \
      dst_[i_] = (T)(list)[i_];                                                                         \
    }                                                                                                   \
  } while (0)

/* How many elements the list that holds `datatype` has, and the list's name. */
static size_t typed_count(const Inference__InferTensorContents *c, inferd_datatype datatype, const char **field) {
  switch (datatype) {
    case INFERD_TYPE_BOOL: *field = "bool_contents"; return c ? c->n_bool_contents : 0;
    case INFERD_TYPE_UINT8:
    case INFERD_TYPE_UINT16:
    case INFERD_TYPE_UINT32: *field = "uint_contents"; return c ? c->n_uint_contents : 0;
    case INFERD_TYPE_UINT64: *field = "uint64_contents"; return c ? c->n_uint64_contents : 0;
    case INFERD_TYPE_INT8:
    case INFERD_TYPE_INT16:
    case INFERD_TYPE_INT32: *field = "int_contents"; return c ? c->n_int_contents : 0;
    case INFERD_TYPE_INT64: *field = "int64_contents"; return c ? c->n_int64_contents : 0;
    case INFERD_TYPE_FP32: *field = "fp32_contents"; return c ? c->n_fp32_contents : 0;
    case INFERD_TYPE_FP64: *field = "fp64_contents"; return c ? c->n_fp64_contents : 0;
    case INFERD_TYPE_BYTES: *field = "bytes_contents"; return c ? c->n_bytes_contents : 0;
    default: *field = NULL; return 0;
  }
}

inferd_error *grpc_contents_to_buffer(const Inference__InferTensorContents *c, inferd_datatype datatype,
                                      size_t count, const char *name, void **buf, size_t *size) {
  *buf = NULL;
  *size = 0;
  const char *field;
  const size_t have = typed_count(c, datatype, &field);
  if (!field)
    return invalid("input '%s': %s tensors have no typed contents; send them in raw_input_contents", name,
                   inferd_datatype_name(datatype));
  if (have != count)
    return invalid("input '%s': %s holds %zu elements but the shape needs %zu", name, field, have, count);
  size_t bytes = 0;
  if (datatype == INFERD_TYPE_BYTES) {
    for (size_t i = 0; i < count; i++) {
      if (c->bytes_contents[i].len > UINT32_MAX) return invalid("input '%s': element %zu is too long", name, i);
      if (!mem_add_ok(bytes, 4 + c->bytes_contents[i].len, &bytes)) return invalid("input '%s' is too large", name);
    }
  } else if (!mem_mul_ok(count, inferd_datatype_size(datatype), &bytes)) {
    return invalid("input '%s' is too large", name);
  }
  void *out = mem_try_aligned(bytes ? bytes : 1);
  if (!out) return err_new(INFERD_ERROR_NO_MEMORY, "input '%s': cannot allocate %zu bytes", name, bytes);
  inferd_error *err = NULL;
  /* An empty tensor may come with no contents message at all (c NULL). */
  switch (count ? datatype : INFERD_TYPE_INVALID) {
    case INFERD_TYPE_BOOL:
      for (size_t i = 0; i < count; i++) ((uint8_t *)out)[i] = c->bool_contents[i] ? 1 : 0;
      break;
    case INFERD_TYPE_UINT8: {
      err = NULL;
      uint8_t *d = out;
      for (size_t i = 0; i < count && !err; i++) {
        if (c->uint_contents[i] > UINT8_MAX) err = invalid("input '%s': element %zu does not fit in UINT8", name, i);
        d[i] = (uint8_t)c->uint_contents[i];
      }
      break;
    }
    case INFERD_TYPE_UINT16: {
      uint16_t *d = out;
      for (size_t i = 0; i < count && !err; i++) {
        if (c->uint_contents[i] > UINT16_MAX) err = invalid("input '%s': element %zu does not fit in UINT16", name, i);
        d[i] = (uint16_t)c->uint_contents[i];
      }
      break;
    }
    case INFERD_TYPE_INT8: {
      int8_t *d = out;
      for (size_t i = 0; i < count && !err; i++) {
        if (c->int_contents[i] < INT8_MIN || c->int_contents[i] > INT8_MAX)
          err = invalid("input '%s': element %zu does not fit in INT8", name, i);
        d[i] = (int8_t)c->int_contents[i];
      }
      break;
    }
    case INFERD_TYPE_INT16: {
      int16_t *d = out;
      for (size_t i = 0; i < count && !err; i++) {
        if (c->int_contents[i] < INT16_MIN || c->int_contents[i] > INT16_MAX)
          err = invalid("input '%s': element %zu does not fit in INT16", name, i);
        d[i] = (int16_t)c->int_contents[i];
      }
      break;
    }
    case INFERD_TYPE_UINT32: memcpy(out, c->uint_contents, bytes); break;
    case INFERD_TYPE_UINT64: memcpy(out, c->uint64_contents, bytes); break;
    case INFERD_TYPE_INT32: memcpy(out, c->int_contents, bytes); break;
    case INFERD_TYPE_INT64: memcpy(out, c->int64_contents, bytes); break;
    case INFERD_TYPE_FP32: memcpy(out, c->fp32_contents, bytes); break;
    case INFERD_TYPE_FP64: memcpy(out, c->fp64_contents, bytes); break;
    case INFERD_TYPE_BYTES: {
      unsigned char *w = out;
      for (size_t i = 0; i < count; i++) {
        const uint32_t len = (uint32_t)c->bytes_contents[i].len;
        memcpy(w, &len, 4);
        if (len) memcpy(w + 4, c->bytes_contents[i].data, len);
        w += 4 + len;
      }
      break;
    }
    default: break;
  }
  if (err) {
    free(out);
    return err;
  }
  *buf = out;
  *size = bytes;
  return NULL;
}

void grpc_contents_clear(Inference__InferTensorContents *c) {
  free(c->bool_contents);
  free(c->int_contents);
  free(c->int64_contents);
  free(c->uint_contents);
  free(c->uint64_contents);
  free(c->fp32_contents);
  free(c->fp64_contents);
  free(c->bytes_contents);
  inference__infer_tensor_contents__init(c);
}

/* Widens `count` elements of type S at `src` into a new array of type D. */
#define WIDEN(D, S, dst, n_dst)                                                                         \
  do {                                                                                                  \
    D *w_ = mem_try_alloc(count ? count : 1, sizeof(D));                                                \
    if (!w_) goto oom;                                                                                  \
    const S *s_ = data;                                                                                 \
    for (size_t i_ = 0; i_ < count; i_++) w_[i_] = (D)s_[i_];                                           \
    (dst) = w_;                                                                                         \
    (n_dst) = count;                                                                                    \
  } while (0)

inferd_error *grpc_buffer_to_contents(const void *data, size_t size, inferd_datatype datatype, size_t count,
                                      const char *name, Inference__InferTensorContents *c) {
  inference__infer_tensor_contents__init(c);
  const size_t elem = inferd_datatype_size(datatype);
  if (datatype != INFERD_TYPE_BYTES && (!elem || size / elem != count || size % elem))
    return err_new(INFERD_ERROR_INTERNAL, "output '%s': %zu bytes do not match its shape", name, size);
  switch (datatype) {
    case INFERD_TYPE_BOOL: WIDEN(protobuf_c_boolean, uint8_t, c->bool_contents, c->n_bool_contents); break;
    case INFERD_TYPE_UINT8: WIDEN(uint32_t, uint8_t, c->uint_contents, c->n_uint_contents); break;
    case INFERD_TYPE_UINT16: WIDEN(uint32_t, uint16_t, c->uint_contents, c->n_uint_contents); break;
    case INFERD_TYPE_UINT32: WIDEN(uint32_t, uint32_t, c->uint_contents, c->n_uint_contents); break;
    case INFERD_TYPE_UINT64: WIDEN(uint64_t, uint64_t, c->uint64_contents, c->n_uint64_contents); break;
    case INFERD_TYPE_INT8: WIDEN(int32_t, int8_t, c->int_contents, c->n_int_contents); break;
    case INFERD_TYPE_INT16: WIDEN(int32_t, int16_t, c->int_contents, c->n_int_contents); break;
    case INFERD_TYPE_INT32: WIDEN(int32_t, int32_t, c->int_contents, c->n_int_contents); break;
    case INFERD_TYPE_INT64: WIDEN(int64_t, int64_t, c->int64_contents, c->n_int64_contents); break;
    case INFERD_TYPE_FP32: WIDEN(float, float, c->fp32_contents, c->n_fp32_contents); break;
    case INFERD_TYPE_FP64: WIDEN(double, double, c->fp64_contents, c->n_fp64_contents); break;
    case INFERD_TYPE_BYTES: {
      /* The elements point into the response's buffer. */
      ProtobufCBinaryData *items = mem_try_zalloc(count ? count : 1, sizeof(*items));
      if (!items) goto oom;
      c->bytes_contents = items;
      const unsigned char *p = data;
      size_t off = 0;
      for (size_t i = 0; i < count; i++) {
        uint32_t len;
        if (size - off < 4) goto bad_bytes;
        memcpy(&len, p + off, 4);
        off += 4;
        if (size - off < len) goto bad_bytes;
        items[i] = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)p + off};
        off += len;
      }
      if (off != size) goto bad_bytes;
      c->n_bytes_contents = count;
      break;
    }
    default:
      return err_new(INFERD_ERROR_UNSUPPORTED, "output '%s': %s tensors have no typed contents", name,
                     inferd_datatype_name(datatype));
  }
  return NULL;
bad_bytes:
  grpc_contents_clear(c);
  return err_new(INFERD_ERROR_INTERNAL, "output '%s': BYTES data does not match its shape", name);
oom:
  grpc_contents_clear(c);
  return err_new(INFERD_ERROR_NO_MEMORY, "output '%s': out of memory", name);
}

/* ---- requests --------------------------------------------------------------- */

/* The value of parameter `key` in a map of InferParameter (the request's
 * and each tensor's map entries are distinct C types of the same shape),
 * or NULL. */
#define FIND_PARAM(out, entries, n, wanted)                                                                \
  do {                                                                                                  \
    (out) = NULL;                                                                                       \
    for (size_t i_ = 0; i_ < (n); i_++)                                                                 \
      if ((entries)[i_]->key && strcmp((entries)[i_]->key, (wanted)) == 0) {                               \
        (out) = (entries)[i_]->value;                                                                   \
        break;                                                                                          \
      }                                                                                                 \
  } while (0)

/* A non-negative integer parameter (int64 or uint64). */
static inferd_error *param_uint(const Inference__InferParameter *p, const char *what, uint64_t *out) {
  if (p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM) {
    *out = p->uint64_param;
    return NULL;
  }
  if (p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM && p->int64_param >= 0) {
    *out = (uint64_t)p->int64_param;
    return NULL;
  }
  return invalid("%s must be a non-negative integer", what);
}

static inferd_error *param_bool(const Inference__InferParameter *p, const char *what, bool *out) {
  if (p->parameter_choice_case != INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM)
    return invalid("%s must be a boolean", what);
  *out = p->bool_param;
  return NULL;
}

static inferd_error *decode_parameters(grpc_infer_decoded *d) {
  const Inference__ModelInferRequest *m = d->message;
  const Inference__InferParameter *p;
  FIND_PARAM(p, m->parameters, m->n_parameters, "priority");
  if (p) ERR_TRY(param_uint(p, "request parameter 'priority'", &d->priority));
  FIND_PARAM(p, m->parameters, m->n_parameters, "timeout");
  if (p) ERR_TRY(param_uint(p, "request parameter 'timeout' (microseconds)", &d->timeout_us));
  FIND_PARAM(p, m->parameters, m->n_parameters, "binary_data_output");
  if (p) {
    bool binary = true;
    ERR_TRY(param_bool(p, "request parameter 'binary_data_output'", &binary));
    d->binary_outputs = binary;
  }
  FIND_PARAM(p, m->parameters, m->n_parameters, "sequence_id");
  if (p) {
    const bool zero = (p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM &&
                       p->int64_param == 0) ||
                      (p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM &&
                       p->uint64_param == 0) ||
                      (p->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM &&
                       !*p->string_param);
    if (!zero) return inferd_error_create(INFERD_ERROR_UNSUPPORTED, "sequence batching (sequence_id) is not supported");
  }
  return NULL;
}

/* A tensor's shared_memory_region (a string), _byte_size (required with
 * it) and _offset parameters; *region stays NULL without them. */
static inferd_error *decode_shm(const Inference__InferParameter *region, const Inference__InferParameter *size,
                                const Inference__InferParameter *offset, const char *what, const char **out_region,
                                uint64_t *out_offset, uint64_t *out_size) {
  *out_region = NULL;
  if (!region) {
    if (size || offset) return invalid("%s has shared_memory_byte_size or _offset but no shared_memory_region", what);
    return NULL;
  }
  if (region->parameter_choice_case != INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM ||
      !*region->string_param)
    return invalid("%s: parameter 'shared_memory_region' must be a non-empty string", what);
  if (!size)
    return invalid("%s: parameter 'shared_memory_byte_size' is missing (it goes with shared_memory_region)", what);
  char name[340];
  snprintf(name, sizeof(name), "%s: parameter 'shared_memory_byte_size'", what);
  ERR_TRY(param_uint(size, name, out_size));
  *out_offset = 0;
  snprintf(name, sizeof(name), "%s: parameter 'shared_memory_offset'", what);
  if (offset) ERR_TRY(param_uint(offset, name, out_offset));
  *out_region = region->string_param;
  return NULL;
}

static inferd_error *decode_input(grpc_infer_decoded *d, size_t index) {
  const Inference__ModelInferRequest__InferInputTensor *t = d->message->inputs[index];
  grpc_infer_input *in = &d->inputs[index];
  in->name = t->name;
  if (!*t->name) return invalid("inputs[%zu] has no name", index);
  in->datatype = inferd_datatype_from_name(t->datatype);
  if (in->datatype == INFERD_TYPE_INVALID) return invalid("input '%s': unknown datatype '%s'", t->name, t->datatype);
  if (t->n_shape > INFERD_MAX_RANK)
    return invalid("input '%s': shape has %zu dimensions, at most %d are supported", t->name, t->n_shape,
                   INFERD_MAX_RANK);
  in->rank = (int)t->n_shape;
  size_t count = 1;
  for (size_t k = 0; k < t->n_shape; k++) {
    if (t->shape[k] < 0) return invalid("input '%s': shape dimension %zu is negative", t->name, k);
    in->shape[k] = t->shape[k];
    if (!mem_mul_ok(count, (size_t)t->shape[k], &count)) return invalid("input '%s': shape is too large", t->name);
  }
  char what[300];
  snprintf(what, sizeof(what), "input '%s'", t->name);
  const Inference__InferParameter *shm_region, *shm_size, *shm_offset;
  FIND_PARAM(shm_region, t->parameters, t->n_parameters, "shared_memory_region");
  FIND_PARAM(shm_size, t->parameters, t->n_parameters, "shared_memory_byte_size");
  FIND_PARAM(shm_offset, t->parameters, t->n_parameters, "shared_memory_offset");
  ERR_TRY(decode_shm(shm_region, shm_size, shm_offset, what, &in->shm_region, &in->shm_offset, &in->shm_byte_size));
  const char *field;
  const bool typed = typed_count(t->contents, in->datatype, &field) || (t->contents && t->contents->n_bytes_contents);
  if (in->shm_region) {
    if (typed) return invalid("input '%s' has both contents and 'shared_memory_region'", t->name);
    return NULL; /* it has no entry in raw_input_contents */
  }
  const Inference__ModelInferRequest *m = d->message;
  if (m->n_raw_input_contents) {
    if (typed) return invalid("input '%s' has typed contents but the request uses raw_input_contents", t->name);
    const ProtobufCBinaryData *raw = &m->raw_input_contents[d->raw_used++];
    if (in->datatype == INFERD_TYPE_BYTES) {
      ERR_TRY(bytes_tensor_read(t->name, "raw contents", raw->data, raw->len, count, NULL));
    } else {
      size_t want;
      if (!mem_mul_ok(count, inferd_datatype_size(in->datatype), &want) || want != raw->len) {
        char shape[160];
        dims_text(in->shape, in->rank, shape, sizeof(shape));
        return invalid("input '%s': raw_input_contents has %zu bytes but shape %s of %s needs %zu", t->name, raw->len,
                       shape, inferd_datatype_name(in->datatype), count * inferd_datatype_size(in->datatype));
      }
    }
    /* protobuf-c gives every bytes field its own malloc'd block, aligned
     * for any element type. */
    in->data = raw->data;
    in->byte_size = raw->len;
    return NULL;
  }
  void *buf;
  size_t size;
  ERR_TRY(grpc_contents_to_buffer(t->contents, in->datatype, count, t->name, &buf, &size));
  if (!frontend_keep_owned(&d->owned, &d->owned_count, buf)) {
    free(buf);
    return err_new(INFERD_ERROR_NO_MEMORY, "input '%s': out of memory", t->name);
  }
  in->data = buf;
  in->byte_size = size;
  return NULL;
}

static inferd_error *decode_output(grpc_infer_decoded *d, size_t index) {
  const Inference__ModelInferRequest__InferRequestedOutputTensor *t = d->message->outputs[index];
  grpc_infer_output *out = &d->outputs[index];
  out->name = t->name;
  out->binary = d->binary_outputs;
  if (!*t->name) return invalid("outputs[%zu] has no name", index);
  const Inference__InferParameter *p;
  char what[300];
  FIND_PARAM(p, t->parameters, t->n_parameters, "classification");
  if (p) {
    uint64_t k = 0;
    snprintf(what, sizeof(what), "output '%s': parameter 'classification'", t->name);
    ERR_TRY(param_uint(p, what, &k));
    if (k > INT32_MAX) return invalid("%s is too large", what);
    out->classification = (int)k;
  }
  FIND_PARAM(p, t->parameters, t->n_parameters, "binary_data");
  if (p) {
    bool binary = true;
    snprintf(what, sizeof(what), "output '%s': parameter 'binary_data'", t->name);
    ERR_TRY(param_bool(p, what, &binary));
    out->binary = binary;
  }
  const Inference__InferParameter *shm_size, *shm_offset;
  FIND_PARAM(p, t->parameters, t->n_parameters, "shared_memory_region");
  FIND_PARAM(shm_size, t->parameters, t->n_parameters, "shared_memory_byte_size");
  FIND_PARAM(shm_offset, t->parameters, t->n_parameters, "shared_memory_offset");
  snprintf(what, sizeof(what), "output '%s'", t->name);
  return decode_shm(p, shm_size, shm_offset, what, &out->shm_region, &out->shm_offset, &out->shm_byte_size);
}

static inferd_error *decode(grpc_infer_decoded *d) {
  Inference__ModelInferRequest *m = d->message;
  if (!*m->model_name) return invalid("the request names no model (model_name is empty)");
  ERR_TRY(grpc_parse_version(m->model_version, &d->version));
  ERR_TRY(decode_parameters(d));
  /* Inputs in shared memory have no raw entry; the others one each. */
  size_t in_body = 0;
  for (size_t i = 0; i < m->n_inputs; i++) {
    const Inference__InferParameter *shm;
    FIND_PARAM(shm, m->inputs[i]->parameters, m->inputs[i]->n_parameters, "shared_memory_region");
    in_body += shm == NULL;
  }
  if (m->n_raw_input_contents && m->n_raw_input_contents != in_body)
    return invalid("raw_input_contents has %zu entries for %zu inputs not in shared memory (one per such input is "
                   "needed)",
                   m->n_raw_input_contents, in_body);
  if (m->n_inputs > INT32_MAX || m->n_outputs > INT32_MAX) return invalid("too many tensors");
  d->inputs = mem_try_zalloc(m->n_inputs ? m->n_inputs : 1, sizeof(*d->inputs));
  d->outputs = mem_try_zalloc(m->n_outputs ? m->n_outputs : 1, sizeof(*d->outputs));
  if (!d->inputs || !d->outputs) return err_new(INFERD_ERROR_NO_MEMORY, "out of memory for the request's tensors");
  d->input_count = (int)m->n_inputs;
  d->output_count = (int)m->n_outputs;
  for (size_t i = 0; i < m->n_inputs; i++) ERR_TRY(decode_input(d, i));
  for (size_t i = 0; i < m->n_outputs; i++) ERR_TRY(decode_output(d, i));
  return NULL;
}

inferd_error *grpc_infer_decode(const uint8_t *data, size_t size, grpc_infer_decoded *out) {
  *out = (grpc_infer_decoded){.version = -1, .binary_outputs = true};
  out->message = inference__model_infer_request__unpack(NULL, size, data);
  if (!out->message) return invalid("the ModelInferRequest message is malformed (%zu bytes)", size);
  return decode(out);
}

void grpc_infer_decoded_free(grpc_infer_decoded *d) {
  for (int i = 0; i < d->owned_count; i++) free(d->owned[i]);
  free(d->owned);
  free(d->inputs);
  free(d->outputs);
  if (d->message) inference__model_infer_request__free_unpacked(d->message, NULL);
  *d = (grpc_infer_decoded){.version = -1, .binary_outputs = true};
}

inferd_error *grpc_infer_build_request(inferd_server *server, const grpc_infer_decoded *d, inferd_request **out) {
  const Inference__ModelInferRequest *m = d->message;
  return frontend_request_new(server, m->model_name, d->version, m->id, d->priority, d->timeout_us, d->inputs,
                              d->input_count, d->outputs, d->output_count, out);
}

/* ---- responses -------------------------------------------------------------- */

static bool output_typed(const grpc_infer_decoded *d, const char *name) {
  for (int i = 0; i < d->output_count; i++)
    if (strcmp(d->outputs[i].name, name) == 0) return !d->outputs[i].binary;
  return !d->binary_outputs;
}

/* The parameters of an output written to shared memory, in storage of
 * their own (the message points at it while it is packed). */
typedef struct shm_params {
  Inference__ModelInferResponse__InferOutputTensor__ParametersEntry entries[3];
  Inference__ModelInferResponse__InferOutputTensor__ParametersEntry *entry_ptrs[3];
  Inference__InferParameter values[3];
} shm_params;

static void shm_params_fill(shm_params *p, const char *region, size_t byte_size, uint64_t offset) {
  static const char *const keys[3] = {"shared_memory_region", "shared_memory_byte_size", "shared_memory_offset"};
  for (int k = 0; k < 3; k++) {
    inference__model_infer_response__infer_output_tensor__parameters_entry__init(&p->entries[k]);
    inference__infer_parameter__init(&p->values[k]);
    p->entries[k].key = (char *)keys[k];
    p->entries[k].value = &p->values[k];
    p->entry_ptrs[k] = &p->entries[k];
  }
  p->values[0].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
  p->values[0].string_param = (char *)region;
  p->values[1].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
  p->values[1].int64_param = (int64_t)byte_size;
  p->values[2].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
  p->values[2].int64_param = (int64_t)offset;
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *size) {
  *size = protobuf_c_message_get_packed_size(m);
  uint8_t *bytes = mem_try_alloc(*size ? *size : 1, 1);
  if (bytes) protobuf_c_message_pack(m, bytes);
  return bytes;
}

inferd_error *grpc_infer_encode_response(const inferd_response *response, const grpc_infer_decoded *d, bool stream,
                                         uint8_t **bytes, size_t *size) {
  *bytes = NULL;
  *size = 0;
  const int n = inferd_response_output_count(response);
  const size_t cap = n > 0 ? (size_t)n : 1;
  Inference__ModelInferResponse msg = INFERENCE__MODEL_INFER_RESPONSE__INIT;
  Inference__ModelInferResponse__InferOutputTensor *tensors = mem_try_zalloc(cap, sizeof(*tensors));
  Inference__ModelInferResponse__InferOutputTensor **tensor_ptrs = mem_try_zalloc(cap, sizeof(*tensor_ptrs));
  Inference__InferTensorContents *contents = mem_try_zalloc(cap, sizeof(*contents));
  ProtobufCBinaryData *raw = mem_try_zalloc(cap, sizeof(*raw));
  shm_params *shm = mem_try_zalloc(cap, sizeof(*shm));
  char version[24];
  inferd_error *err = NULL;
  int built = 0;
  bool all_typed = n > 0;
  if (!tensors || !tensor_ptrs || !contents || !raw || !shm) {
    err = err_new(INFERD_ERROR_NO_MEMORY, "out of memory for the response");
    goto out;
  }
  for (int i = 0; i < n; i++) {
    const char *name;
    inferd_datatype datatype;
    const int64_t *shape;
    int rank;
    const void *data;
    size_t byte_size;
    if ((err = inferd_response_output(response, i, &name, &datatype, &shape, &rank, &data, &byte_size))) goto out;
    inference__infer_tensor_contents__init(&contents[i]);
    built = i + 1;
    Inference__ModelInferResponse__InferOutputTensor *t = &tensors[i];
    inference__model_infer_response__infer_output_tensor__init(t);
    t->name = (char *)name;
    t->datatype = (char *)inferd_datatype_name(datatype);
    t->n_shape = (size_t)rank;
    t->shape = (int64_t *)shape;
    tensor_ptrs[i] = t;
    raw[i] = (ProtobufCBinaryData){.len = byte_size, .data = (uint8_t *)data};
    uint64_t shm_offset;
    const char *shm_region = inferd_response_output_shm(response, i, &shm_offset, NULL);
    if (shm_region) {
      /* Its bytes are in the region: the parameters say where, and its
       * raw entry (kept so later outputs keep their index) is empty. */
      shm_params_fill(&shm[i], shm_region, byte_size, shm_offset);
      t->n_parameters = shm_offset ? 3 : 2;
      t->parameters = shm[i].entry_ptrs;
      raw[i] = (ProtobufCBinaryData){0};
      continue;
    }
    if (!output_typed(d, name)) {
      all_typed = false;
      continue;
    }
    size_t count = 1;
    for (int k = 0; k < rank; k++) count *= (size_t)(shape[k] > 0 ? shape[k] : 0);
    if ((err = grpc_buffer_to_contents(data, byte_size, datatype, count, name, &contents[i]))) goto out;
    t->contents = &contents[i];
    raw[i] = (ProtobufCBinaryData){0};
  }
  msg.model_name = (char *)(inferd_response_model(response) ? inferd_response_model(response) : "");
  snprintf(version, sizeof(version), "%lld", (long long)inferd_response_model_version(response));
  msg.model_version = version;
  msg.id = (char *)(inferd_response_id(response) ? inferd_response_id(response) : "");
  msg.n_outputs = (size_t)n;
  msg.outputs = tensor_ptrs;
  if (!all_typed) {
    msg.n_raw_output_contents = (size_t)n;
    msg.raw_output_contents = raw;
  }
  if (stream) {
    Inference__ModelStreamInferResponse wrap = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
    wrap.infer_response = &msg;
    *bytes = pack(&wrap.base, size);
  } else {
    *bytes = pack(&msg.base, size);
  }
  if (!*bytes) err = err_new(INFERD_ERROR_NO_MEMORY, "cannot allocate the %zu-byte response", *size);
out:
  for (int i = 0; i < built; i++) grpc_contents_clear(&contents[i]);
  free(tensors);
  free(tensor_ptrs);
  free(contents);
  free(raw);
  free(shm);
  return err;
}

uint8_t *grpc_stream_error_encode(const char *message, const char *model, const char *id, size_t *size) {
  Inference__ModelStreamInferResponse wrap = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
  Inference__ModelInferResponse response = INFERENCE__MODEL_INFER_RESPONSE__INIT;
  wrap.error_message = (char *)message;
  if ((model && *model) || (id && *id)) {
    response.model_name = (char *)(model ? model : "");
    response.id = (char *)(id ? id : "");
    wrap.infer_response = &response;
  }
  return pack(&wrap.base, size);
}
