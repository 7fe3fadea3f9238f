/*
 * Inference response encoding; see http_infer_response.h.
 *
 * The JSON is written into one buffer sized up front for the numbers it will
 * hold (every element prints in at most HTTP_NUMBER_MAX_CHARS), then handed
 * to the evbuffer without a copy. Binary outputs are referenced in place: the
 * response object keeps owning them until the bytes are on the wire.
 */
#include "frontends/http/http_infer_response.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/mem.h"
#include "frontends/http/http_numbers.h"
#include "frontends/http/http_text.h"

static void free_text(const void *data, size_t len, void *arg) {
  (void)len;
  (void)arg;
  free((void *)data);
}

/* Writes a BYTES tensor as an array of JSON strings, checking its layout. */
static inferd_error *write_bytes_data(http_text *t, const http_output_view *o, size_t count) {
  const unsigned char *p = o->data;
  size_t off = 0;
  http_text_putc(t, '[');
  for (size_t i = 0; i < count; i++) {
    uint32_t len;
    if (o->byte_size - off < 4) goto bad;
    memcpy(&len, p + off, 4);
    off += 4;
    if (o->byte_size - off < len) goto bad;
    if (i) http_text_putc(t, ',');
    http_text_json_string(t, (const char *)p + off, len);
    off += len;
  }
  if (off != o->byte_size) goto bad;
  http_text_putc(t, ']');
  return NULL;
bad:
  return err_new(INFERD_ERROR_INTERNAL, "output '%s': BYTES data does not match its shape", o->name);
}

static inferd_error *write_numeric_data(http_text *t, const http_output_view *o, size_t count) {
  const size_t elem = inferd_datatype_size(o->datatype);
  size_t need;
  if (!elem) return err_new(INFERD_ERROR_INTERNAL, "output '%s': invalid datatype", o->name);
  if (!mem_mul_ok(count, elem, &need) || need != o->byte_size)
    return err_new(INFERD_ERROR_INTERNAL, "output '%s': %zu bytes do not match its shape", o->name, o->byte_size);
  if (!mem_mul_ok(count, HTTP_NUMBER_MAX_CHARS + 1, &need) || !http_text_reserve(t, need + 2))
    return err_new(INFERD_ERROR_NO_MEMORY, "output '%s': cannot allocate its JSON", o->name);
  char *w = t->data + t->len;
  *w++ = '[';
  const unsigned char *p = o->data;
  for (size_t i = 0; i < count; i++) {
    if (i) *w++ = ',';
    w += http_format_element(o->datatype, p + i * elem, w);
  }
  *w++ = ']';
  t->len = (size_t)(w - t->data);
  t->data[t->len] = '\0';
  return NULL;
}

static inferd_error *write_output(http_text *t, const http_output_view *o) {
  http_text_puts(t, "{\"name\":");
  http_text_json_string(t, o->name, strlen(o->name));
  http_text_puts(t, ",\"datatype\":\"");
  http_text_puts(t, inferd_datatype_name(o->datatype));
  http_text_puts(t, "\",\"shape\":[");
  size_t count = 1;
  for (int d = 0; d < o->rank; d++) {
    char num[HTTP_NUMBER_MAX_CHARS];
    if (d) http_text_putc(t, ',');
    http_text_append(t, num, http_format_i64(o->shape[d], num));
    if (o->shape[d] < 0 || !mem_mul_ok(count, (size_t)o->shape[d], &count))
      return err_new(INFERD_ERROR_INTERNAL, "output '%s': invalid shape", o->name);
  }
  http_text_putc(t, ']');
  if (o->shm_region) {
    char num[HTTP_NUMBER_MAX_CHARS];
    http_text_puts(t, ",\"parameters\":{\"shared_memory_region\":");
    http_text_json_string(t, o->shm_region, strlen(o->shm_region));
    http_text_puts(t, ",\"shared_memory_byte_size\":");
    http_text_append(t, num, http_format_i64((int64_t)o->byte_size, num));
    if (o->shm_offset) {
      http_text_puts(t, ",\"shared_memory_offset\":");
      http_text_append(t, num, http_format_i64((int64_t)o->shm_offset, num));
    }
    http_text_puts(t, "}}");
    return NULL;
  }
  if (o->binary) {
    char num[HTTP_NUMBER_MAX_CHARS];
    http_text_puts(t, ",\"parameters\":{\"binary_data_size\":");
    http_text_append(t, num, http_format_i64((int64_t)o->byte_size, num));
    http_text_puts(t, "}}");
    return NULL;
  }
  http_text_puts(t, ",\"data\":");
  if (o->datatype == INFERD_TYPE_BYTES) {
    ERR_TRY(write_bytes_data(t, o, count));
  } else {
    ERR_TRY(write_numeric_data(t, o, count));
  }
  http_text_putc(t, '}');
  return NULL;
}

inferd_error *http_infer_response_encode(const char *model, int64_t version, const char *id,
                                         const http_output_view *outputs, int count, struct evbuffer *out,
                                         evbuffer_ref_cleanup_cb cleanup, void *arg, size_t *json_length,
                                         int *references) {
  *references = 0;
  *json_length = 0;
  http_text t = {0};
  http_text_puts(&t, "{\"model_name\":");
  http_text_json_string(&t, model ? model : "", model ? strlen(model) : 0);
  char num[HTTP_NUMBER_MAX_CHARS];
  http_text_puts(&t, ",\"model_version\":\"");
  http_text_append(&t, num, http_format_i64(version, num));
  http_text_putc(&t, '"');
  if (id && *id) {
    http_text_puts(&t, ",\"id\":");
    http_text_json_string(&t, id, strlen(id));
  }
  http_text_puts(&t, ",\"outputs\":[");
  for (int i = 0; i < count; i++) {
    if (i) http_text_putc(&t, ',');
    inferd_error *err = write_output(&t, &outputs[i]);
    if (err) {
      http_text_free(&t);
      return err;
    }
  }
  http_text_puts(&t, "]}");
  if (t.failed) {
    http_text_free(&t);
    return err_new(INFERD_ERROR_NO_MEMORY, "cannot allocate the response JSON");
  }
  size_t len;
  char *json = http_text_take(&t, &len);
  if (evbuffer_add_reference(out, json, len, free_text, NULL) != 0) {
    free(json);
    return err_new(INFERD_ERROR_NO_MEMORY, "cannot queue the response");
  }
  *json_length = len;
  for (int i = 0; i < count; i++) {
    const http_output_view *o = &outputs[i];
    if (!o->binary || o->byte_size == 0) continue;
    if (evbuffer_add_reference(out, o->data, o->byte_size, cleanup, arg) != 0) {
      /* What was added stays referenced; the caller's count covers it. */
      return err_new(INFERD_ERROR_NO_MEMORY, "cannot queue output '%s'", o->name);
    }
    (*references)++;
  }
  return NULL;
}

char *http_error_json(const char *message, size_t *len) {
  http_text t = {0};
  http_text_puts(&t, "{\"error\":");
  http_text_json_string(&t, message, strlen(message));
  http_text_putc(&t, '}');
  if (t.failed) {
    http_text_free(&t);
    return NULL;
  }
  return http_text_take(&t, len);
}
