/*
 * A small walker over the protobuf wire format, used for one job: copying a
 * ModelProto without its initializers' raw_data.
 *
 * protobuf-c copies every bytes field while unpacking, which for ResNet-50
 * means 100 MB of weights copied for nothing, since the bytes are already in
 * the mapped file. So before unpacking we walk ModelProto -> graph (field 7)
 * -> initializer (field 5) -> raw_data (field 9), copy everything except the
 * raw_data fields into a new buffer (recomputing the length prefixes of the
 * graph and tensor messages, which shrink), and remember where each raw_data
 * lies in the file. Every other field is copied verbatim and left to
 * protobuf-c.
 *
 * Each message is walked twice, once to measure its stripped size (needed for
 * the length prefix, which comes first) and once to write it. The walk only
 * reads tags and lengths, so this costs nothing next to the copy. Every length
 * is checked against the end of its enclosing message, so a truncated or
 * corrupt file is reported with the offset where it goes wrong.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/mem.h"
#include "engine/onnx/onnx_internal.h"

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };
enum { LEVEL_MODEL = 0, LEVEL_GRAPH, LEVEL_TENSOR };
enum { FIELD_MODEL_GRAPH = 7, FIELD_GRAPH_INITIALIZER = 5, FIELD_TENSOR_RAW_DATA = 9 };

typedef struct strip_ctx {
  const uint8_t *file;
  size_t size;
  const char *label;
  onnx_raw_ref *refs;
  size_t n_refs, cap_refs;
} strip_ctx;

size_t onnx_varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

size_t onnx_varint_put(uint8_t *out, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

/* Something at `at` needs `need` bytes but its message ends at `end`. When
 * that end is the end of the file the file was cut short; otherwise a length
 * inside it is wrong. */
static inferd_error *overrun_error(const strip_ctx *c, const char *what, size_t at, uint64_t need, size_t end) {
  if (end == c->size)
    return err_new(INFERD_ERROR_INVALID_ARG,
                   "'%s' is truncated or not an ONNX model: %s at offset %zu needs %" PRIu64
                   " bytes, but the file ends at offset %zu",
                   c->label, what, at, need, c->size);
  return err_new(INFERD_ERROR_INVALID_ARG,
                 "'%s' is corrupt or not an ONNX model: %s at offset %zu needs %" PRIu64
                 " bytes, past the end of its enclosing message at offset %zu",
                 c->label, what, at, need, end);
}

static inferd_error *read_varint(const strip_ctx *c, size_t *pos, size_t end, uint64_t *value) {
  size_t start = *pos;
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*pos >= end) return overrun_error(c, "a varint", start, (uint64_t)(*pos - start) + 1, end);
    uint8_t b = c->file[(*pos)++];
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *value = v;
      return NULL;
    }
  }
  return err_new(INFERD_ERROR_INVALID_ARG, "'%s' is not an ONNX model: varint longer than 10 bytes at offset %zu",
                 c->label, start);
}

/* Records a new initializer; its raw_data, if any, is filled in later. */
static inferd_error *push_ref(strip_ctx *c) {
  if (c->n_refs == c->cap_refs) {
    size_t cap = c->cap_refs ? c->cap_refs * 2 : 64;
    onnx_raw_ref *refs = mem_try_realloc(c->refs, cap, sizeof(*refs));
    if (!refs) return err_new(INFERD_ERROR_NO_MEMORY, "'%s': too many initializers", c->label);
    c->refs = refs;
    c->cap_refs = cap;
  }
  c->refs[c->n_refs++] = (onnx_raw_ref){0};
  return NULL;
}

/*
 * Stripped copy of the message at file[begin, end) into `out`, or, when out
 * is NULL, only its size. *size gets the stripped size either way.
 */
static inferd_error *strip_message(strip_ctx *c, int level, size_t begin, size_t end, uint8_t *out,
                                   size_t *size) {
  size_t pos = begin, n = 0;
  while (pos < end) {
    size_t field_start = pos;
    uint64_t key;
    ERR_TRY(read_varint(c, &pos, end, &key));
    uint64_t number = key >> 3;
    unsigned wire = (unsigned)(key & 7);
    if (number == 0 || number > 536870911u)
      return err_new(INFERD_ERROR_INVALID_ARG, "'%s' is not an ONNX model: invalid field number at offset %zu",
                     c->label, field_start);
    size_t payload = pos, payload_end;
    switch (wire) {
    case WIRE_VARINT: {
      uint64_t ignored;
      ERR_TRY(read_varint(c, &pos, end, &ignored));
      payload_end = pos;
      break;
    }
    case WIRE_FIXED64:
    case WIRE_FIXED32: {
      size_t width = wire == WIRE_FIXED64 ? 8 : 4;
      if (end - pos < width) return overrun_error(c, "a fixed-size field", field_start, width, end);
      payload_end = pos + width;
      break;
    }
    case WIRE_LEN: {
      uint64_t len;
      ERR_TRY(read_varint(c, &pos, end, &len));
      payload = pos;
      if (len > end - pos) {
        char what[48];
        snprintf(what, sizeof(what), "field %" PRIu64, number);
        return overrun_error(c, what, field_start, len, end);
      }
      payload_end = pos + (size_t)len;
      break;
    }
    default:
      return err_new(INFERD_ERROR_INVALID_ARG, "'%s' is not an ONNX model: wire type %u at offset %zu", c->label,
                     wire, field_start);
    }
    pos = payload_end;

    if (level == LEVEL_TENSOR && wire == WIRE_LEN && number == FIELD_TENSOR_RAW_DATA) {
      /* Dropped from the copy. Protobuf says the last occurrence wins. */
      if (out) c->refs[c->n_refs - 1] = (onnx_raw_ref){payload, payload_end - payload, true};
      continue;
    }
    bool descend = wire == WIRE_LEN && ((level == LEVEL_MODEL && number == FIELD_MODEL_GRAPH) ||
                                        (level == LEVEL_GRAPH && number == FIELD_GRAPH_INITIALIZER));
    if (descend) {
      if (out && level == LEVEL_GRAPH) ERR_TRY(push_ref(c));
      size_t inner;
      ERR_TRY(strip_message(c, level + 1, payload, payload_end, NULL, &inner));
      if (out) {
        n += onnx_varint_put(out + n, key);
        n += onnx_varint_put(out + n, inner);
        size_t written;
        ERR_TRY(strip_message(c, level + 1, payload, payload_end, out + n, &written));
        n += written;
      } else {
        n += onnx_varint_size(key) + onnx_varint_size(inner) + inner;
      }
      continue;
    }
    if (out) memcpy(out + n, c->file + field_start, pos - field_start);
    n += pos - field_start;
  }
  *size = n;
  return NULL;
}

inferd_error *onnx_strip_model(const uint8_t *file, size_t size, const char *label, onnx_stripped *out) {
  *out = (onnx_stripped){0};
  strip_ctx c = {.file = file, .size = size, .label = label};
  size_t stripped_size;
  ERR_TRY(strip_message(&c, LEVEL_MODEL, 0, size, NULL, &stripped_size));
  uint8_t *data = mem_try_alloc(stripped_size ? stripped_size : 1, 1);
  if (!data) return err_new(INFERD_ERROR_NO_MEMORY, "'%s': allocating %zu bytes", label, stripped_size);
  size_t written;
  inferd_error *e = strip_message(&c, LEVEL_MODEL, 0, size, data, &written);
  if (e) {
    free(data);
    free(c.refs);
    return e;
  }
  *out = (onnx_stripped){.data = data, .size = written, .refs = c.refs, .n_refs = c.n_refs};
  return NULL;
}

void onnx_stripped_free(onnx_stripped *stripped) {
  free(stripped->data);
  free(stripped->refs);
  *stripped = (onnx_stripped){0};
}
