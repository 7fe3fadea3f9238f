/*
 * TensorProto decoding: data types, dims, and the three places the data may
 * be (raw_data, the typed repeated fields, an external file), plus the reader
 * for the serialized tensors of the ONNX test suites.
 *
 * Alignment rule: consumers may read constant data through a pointer of its
 * element type, so data is always aligned to its element size. raw_data in a
 * protobuf lies wherever the encoder put it, so an unaligned tensor is copied
 * into an aligned heap block; an aligned one is used in place (zero-copy).
 * inferd's exporter pads tensors so their raw_data is 64-byte aligned in the
 * file, which makes every weight of a model it wrote zero-copy.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/mem.h"
#include "engine/onnx/onnx_internal.h"

static const struct {
  const char *name;
  inferd_datatype type;
} onnx_types[] = {
    [0] = {"UNDEFINED", INFERD_TYPE_INVALID},   [1] = {"FLOAT", INFERD_TYPE_FP32},
    [2] = {"UINT8", INFERD_TYPE_UINT8},         [3] = {"INT8", INFERD_TYPE_INT8},
    [4] = {"UINT16", INFERD_TYPE_UINT16},       [5] = {"INT16", INFERD_TYPE_INT16},
    [6] = {"INT32", INFERD_TYPE_INT32},         [7] = {"INT64", INFERD_TYPE_INT64},
    [8] = {"STRING", INFERD_TYPE_BYTES},        [9] = {"BOOL", INFERD_TYPE_BOOL},
    [10] = {"FLOAT16", INFERD_TYPE_FP16},       [11] = {"DOUBLE", INFERD_TYPE_FP64},
    [12] = {"UINT32", INFERD_TYPE_UINT32},      [13] = {"UINT64", INFERD_TYPE_UINT64},
    [14] = {"COMPLEX64", INFERD_TYPE_INVALID},  [15] = {"COMPLEX128", INFERD_TYPE_INVALID},
    [16] = {"BFLOAT16", INFERD_TYPE_BF16},      [17] = {"FLOAT8E4M3FN", INFERD_TYPE_INVALID},
    [18] = {"FLOAT8E4M3FNUZ", INFERD_TYPE_INVALID}, [19] = {"FLOAT8E5M2", INFERD_TYPE_INVALID},
    [20] = {"FLOAT8E5M2FNUZ", INFERD_TYPE_INVALID}, [21] = {"UINT4", INFERD_TYPE_INVALID},
    [22] = {"INT4", INFERD_TYPE_INVALID},
};
enum { ONNX_TYPE_COUNT = sizeof(onnx_types) / sizeof(onnx_types[0]) };

inferd_datatype onnx_to_datatype(int32_t onnx_type) {
  return onnx_type >= 0 && onnx_type < ONNX_TYPE_COUNT ? onnx_types[onnx_type].type : INFERD_TYPE_INVALID;
}

int32_t onnx_from_datatype(inferd_datatype type) {
  for (int32_t t = 1; t < ONNX_TYPE_COUNT; t++)
    if (onnx_types[t].type == type && type != INFERD_TYPE_INVALID) return t;
  return 0;
}

const char *onnx_type_name(int32_t onnx_type) {
  if (onnx_type >= 0 && onnx_type < ONNX_TYPE_COUNT) return onnx_types[onnx_type].name;
  static _Thread_local char buf[24];
  snprintf(buf, sizeof(buf), "#%" PRId32, onnx_type);
  return buf;
}

static bool is_aligned(const void *p, size_t align) { return align <= 1 || (uintptr_t)p % align == 0; }

/* A heap block of `nbytes` (at least one cache line, so never NULL for 0). */
static inferd_error *alloc_block(onnx_tensor_data *out, const char *what) {
  void *block = mem_try_aligned(out->nbytes);
  if (!block) return err_new(INFERD_ERROR_NO_MEMORY, "%s: allocating %zu bytes", what, out->nbytes);
  out->owner = ONNX_DATA_HEAP;
  out->block = block;
  out->data = block;
  return NULL;
}

static inferd_error *size_mismatch(const onnx_tensor_data *out, const char *what, const char *where, size_t have,
                                   const char *unit) {
  char shape[160];
  return err_new(INFERD_ERROR_INVALID_ARG, "%s has %zu %s in %s, but its type %s and dims %s need %zu", what, have,
                 unit, where, inferd_datatype_name(out->dtype), ir_shape_str(&out->shape, shape, sizeof(shape)),
                 unit[0] == 'b' ? out->nbytes : out->nbytes / inferd_datatype_size(out->dtype));
}

static inferd_error *decode_raw(const uint8_t *raw, size_t len, bool borrowable, const char *what,
                                onnx_tensor_data *out) {
  if (len != out->nbytes) return size_mismatch(out, what, "raw_data", len, "bytes");
  if (borrowable && is_aligned(raw, inferd_datatype_size(out->dtype)) && len) {
    out->owner = ONNX_DATA_BORROWED;
    out->data = raw;
    return NULL;
  }
  ERR_TRY(alloc_block(out, what));
  if (len) memcpy(out->block, raw, len);
  return NULL;
}

/*
 * The typed fields. ONNX keeps every type narrower than 32 bits (int8,
 * uint8, int16, uint16, bool, and the bit patterns of float16 and bfloat16)
 * in int32_data, one element per int32; uint32 and uint64 in uint64_data.
 */
static inferd_error *decode_typed(const Onnx__TensorProto *t, const char *what, onnx_tensor_data *out) {
  size_t esize = inferd_datatype_size(out->dtype);
  size_t numel = out->nbytes / esize;
  size_t have;
  const char *field;
  switch (out->dtype) {
  case INFERD_TYPE_FP32:
    have = t->n_float_data, field = "float_data";
    break;
  case INFERD_TYPE_FP64:
    have = t->n_double_data, field = "double_data";
    break;
  case INFERD_TYPE_INT64:
    have = t->n_int64_data, field = "int64_data";
    break;
  case INFERD_TYPE_UINT32:
  case INFERD_TYPE_UINT64:
    have = t->n_uint64_data, field = "uint64_data";
    break;
  default:
    have = t->n_int32_data, field = "int32_data";
    break;
  }
  if (have != numel) {
    size_t any = t->n_float_data + t->n_double_data + t->n_int64_data + t->n_uint64_data + t->n_int32_data;
    if (any == 0)
      return err_new(INFERD_ERROR_INVALID_ARG, "%s has no data (no raw_data, external data or %s)", what, field);
    return size_mismatch(out, what, field, have, "values");
  }
  ERR_TRY(alloc_block(out, what));
  if (numel == 0) return NULL; /* the fields' arrays are NULL then */
  uint8_t *dst = out->block;
  switch (out->dtype) {
  case INFERD_TYPE_FP32:
    memcpy(dst, t->float_data, out->nbytes);
    break;
  case INFERD_TYPE_FP64:
    memcpy(dst, t->double_data, out->nbytes);
    break;
  case INFERD_TYPE_INT64:
  case INFERD_TYPE_UINT64:
    memcpy(dst, out->dtype == INFERD_TYPE_INT64 ? (const void *)t->int64_data : (const void *)t->uint64_data,
           out->nbytes);
    break;
  case INFERD_TYPE_UINT32:
    for (size_t i = 0; i < numel; i++) ((uint32_t *)dst)[i] = (uint32_t)t->uint64_data[i];
    break;
  case INFERD_TYPE_INT32:
    memcpy(dst, t->int32_data, out->nbytes);
    break;
  case INFERD_TYPE_BOOL:
    for (size_t i = 0; i < numel; i++) dst[i] = t->int32_data[i] != 0;
    break;
  default:
    /* Two- and one-byte types: keep the low bits, little-endian. */
    for (size_t i = 0; i < numel; i++) {
      uint32_t v = (uint32_t)t->int32_data[i];
      if (esize == 2)
        ((uint16_t *)dst)[i] = (uint16_t)v;
      else
        dst[i] = (uint8_t)v;
    }
    break;
  }
  return NULL;
}

/* Strict unsigned decimal, as ONNX writes offset and length. */
static bool parse_size(const char *text, size_t *out) {
  if (!text || !*text) return false;
  size_t v = 0;
  for (const char *p = text; *p; p++) {
    if (*p < '0' || *p > '9') return false;
    if (!mem_mul_ok(v, 10, &v) || !mem_add_ok(v, (size_t)(*p - '0'), &v)) return false;
  }
  *out = v;
  return true;
}

/* External data must stay inside the model's folder: no absolute paths and
 * no ".." component (either separator, as Windows exporters write '\'). */
static inferd_error *check_external_path(const char *location, const char *what) {
  if (!*location) return err_new(INFERD_ERROR_INVALID_ARG, "%s has an empty external data location", what);
  if (location[0] == '/' || location[0] == '\\' || (location[0] && location[1] == ':'))
    return err_new(INFERD_ERROR_INVALID_ARG,
                   "%s: external data path '%s' is absolute; it must be relative to the model's folder", what,
                   location);
  for (const char *p = location; *p;) {
    size_t len = strcspn(p, "/\\");
    if (len == 2 && p[0] == '.' && p[1] == '.')
      return err_new(INFERD_ERROR_INVALID_ARG, "%s: external data path '%s' leaves the model's folder ('..')", what,
                     location);
    p += len;
    if (*p) p++;
  }
  return NULL;
}

static inferd_error *decode_external(const Onnx__TensorProto *t, const onnx_tensor_source *src,
                                     onnx_tensor_data *out) {
  const char *what = src->what;
  if (!src->model_dir)
    return err_new(INFERD_ERROR_INVALID_ARG, "%s keeps its data in an external file, which needs the model read "
                                             "from a file",
                   what);
  const char *location = NULL, *offset_text = NULL, *length_text = NULL;
  for (size_t i = 0; i < t->n_external_data; i++) {
    const Onnx__StringStringEntryProto *kv = t->external_data[i];
    if (!kv->key) continue;
    if (strcmp(kv->key, "location") == 0) location = kv->value ? kv->value : "";
    if (strcmp(kv->key, "offset") == 0) offset_text = kv->value;
    if (strcmp(kv->key, "length") == 0) length_text = kv->value;
  }
  if (!location) return err_new(INFERD_ERROR_INVALID_ARG, "%s has external data without a location", what);
  ERR_TRY(check_external_path(location, what));
  size_t offset = 0, length = out->nbytes;
  if (offset_text && !parse_size(offset_text, &offset))
    return err_new(INFERD_ERROR_INVALID_ARG, "%s: external data offset '%s' is not a number", what, offset_text);
  if (length_text && !parse_size(length_text, &length))
    return err_new(INFERD_ERROR_INVALID_ARG, "%s: external data length '%s' is not a number", what, length_text);
  if (length != out->nbytes) return size_mismatch(out, what, "its external data", length, "bytes");

  size_t path_len = strlen(src->model_dir) + strlen(location) + 2;
  char *path = mem_try_alloc(path_len, 1);
  if (!path) return err_new(INFERD_ERROR_NO_MEMORY, "%s: external data path", what);
  snprintf(path, path_len, "%s/%s", src->model_dir, location);
  inferd_error *e = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0) {
    e = err_new(errno == ENOENT ? INFERD_ERROR_NOT_FOUND : INFERD_ERROR_IO, "%s: cannot open external data '%s': %s",
                what, path, strerror(errno));
  } else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    e = err_new(INFERD_ERROR_IO, "%s: external data '%s' is not a regular file", what, path);
  } else if (offset > (size_t)st.st_size || length > (size_t)st.st_size - offset) {
    e = err_new(INFERD_ERROR_INVALID_ARG,
                "%s: external data (offset %zu, length %zu) lies beyond the end of '%s' (%jd bytes)", what, offset,
                length, path, (intmax_t)st.st_size);
  } else if (length == 0) {
    e = alloc_block(out, what);
  } else {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t map_offset = offset - offset % page;
    size_t map_length = offset - map_offset + length;
    void *base = mmap(NULL, map_length, PROT_READ, MAP_PRIVATE, fd, (off_t)map_offset);
    if (base == MAP_FAILED) {
      e = err_new(INFERD_ERROR_IO, "%s: mapping external data '%s': %s", what, path, strerror(errno));
    } else {
      const uint8_t *data = (const uint8_t *)base + (offset - map_offset);
      if (is_aligned(data, inferd_datatype_size(out->dtype))) {
        *out = (onnx_tensor_data){.dtype = out->dtype, .shape = out->shape, .nbytes = length, .data = data,
                                  .owner = ONNX_DATA_MAPPED, .block = base, .map_length = map_length};
      } else {
        e = alloc_block(out, what);
        if (!e) memcpy(out->block, data, length);
        munmap(base, map_length);
      }
    }
  }
  if (fd >= 0) close(fd);
  free(path);
  return e;
}

inferd_error *onnx_tensor_decode(const Onnx__TensorProto *t, const onnx_tensor_source *src,
                                 onnx_tensor_data *out) {
  *out = (onnx_tensor_data){0};
  const char *what = src->what;
  int32_t onnx_type = t->has_data_type ? t->data_type : 0;
  inferd_datatype dtype = onnx_to_datatype(onnx_type);
  if (onnx_type == 0) return err_new(INFERD_ERROR_INVALID_ARG, "%s has no data type", what);
  if (dtype == INFERD_TYPE_BYTES)
    return err_new(INFERD_ERROR_UNSUPPORTED, "%s holds strings (type STRING), which inferd does not support in "
                                             "constants",
                   what);
  if (dtype == INFERD_TYPE_INVALID)
    return err_new(INFERD_ERROR_UNSUPPORTED, "%s has data type %s, which inferd does not support", what,
                   onnx_type_name(onnx_type));
  if (t->segment) return err_new(INFERD_ERROR_UNSUPPORTED, "%s is a segment of a tensor, not supported", what);
  if (t->n_dims > IR_MAX_RANK)
    return err_new(INFERD_ERROR_UNSUPPORTED, "%s has %zu dimensions; at most %d are supported", what, t->n_dims,
                   IR_MAX_RANK);
  size_t numel = 1;
  out->dtype = dtype;
  out->shape.rank = (int)t->n_dims;
  for (size_t i = 0; i < t->n_dims; i++) {
    if (t->dims[i] < 0)
      return err_new(INFERD_ERROR_INVALID_ARG, "%s has a negative dimension (%" PRId64 ")", what, t->dims[i]);
    if (!mem_mul_ok(numel, (size_t)t->dims[i], &numel))
      return err_new(INFERD_ERROR_TOO_LARGE, "%s has too many elements", what);
    out->shape.dims[i] = t->dims[i];
  }
  if (!mem_mul_ok(numel, inferd_datatype_size(dtype), &out->nbytes))
    return err_new(INFERD_ERROR_TOO_LARGE, "%s is too large", what);

  inferd_error *e;
  if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
    e = decode_external(t, src, out);
  else if (src->has_raw)
    e = decode_raw(src->raw, src->raw_len, src->raw_borrowable, what, out);
  else if (t->has_raw_data)
    e = decode_raw(t->raw_data.data, t->raw_data.len, false, what, out);
  else
    e = decode_typed(t, what, out);
  if (e) onnx_tensor_data_release(out);
  return e;
}

void onnx_tensor_data_give(ir_graph *g, onnx_tensor_data *d) {
  if (d->owner == ONNX_DATA_HEAP)
    ir_graph_own_heap(g, d->block);
  else if (d->owner == ONNX_DATA_MAPPED)
    ir_graph_own_mapping(g, d->block, d->map_length);
  d->owner = ONNX_DATA_BORROWED;
  d->block = NULL;
}

void onnx_tensor_data_release(onnx_tensor_data *d) {
  if (d->owner == ONNX_DATA_HEAP)
    free(d->block);
  else if (d->owner == ONNX_DATA_MAPPED)
    munmap(d->block, d->map_length);
  d->owner = ONNX_DATA_BORROWED;
  d->block = NULL;
  d->data = NULL;
}

inferd_error *onnx_map_file(const char *path, void **map, size_t *size) {
  *map = NULL;
  *size = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return err_new(errno == ENOENT ? INFERD_ERROR_NOT_FOUND : INFERD_ERROR_IO, "cannot open '%s': %s", path,
                   strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return err_new(INFERD_ERROR_IO, "'%s' is not a regular file", path);
  }
  size_t n = (size_t)st.st_size;
  void *m = n ? mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
  close(fd);
  if (m == MAP_FAILED) return err_new(INFERD_ERROR_IO, "mapping '%s': %s", path, strerror(errno));
  *map = m;
  *size = n;
  return NULL;
}

char *onnx_dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return mem_strdup(".");
  return mem_strndup(path, slash == path ? 1 : (size_t)(slash - path));
}

inferd_error *onnx_read_tensor_file(const char *path, ir_tensor *tensor, char **name) {
  *tensor = (ir_tensor){0};
  if (name) *name = NULL;
  void *map;
  size_t size;
  ERR_TRY(onnx_map_file(path, &map, &size));
  Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, size, map);
  if (map) munmap(map, size);
  if (!t) return err_new(INFERD_ERROR_INVALID_ARG, "'%s' is not a serialized ONNX TensorProto", path);

  char *dir = onnx_dir_of(path);
  char what[512];
  snprintf(what, sizeof(what), "tensor '%s' in '%s'", t->name ? t->name : "", path);
  onnx_tensor_data d;
  inferd_error *e = onnx_tensor_decode(t, &(onnx_tensor_source){.what = what, .model_dir = dir}, &d);
  free(dir);
  if (!e && d.owner != ONNX_DATA_HEAP) {
    /* External data arrives mapped; the caller wants a block it can free. */
    void *block = mem_try_aligned(d.nbytes);
    if (block) memcpy(block, d.data, d.nbytes);
    onnx_tensor_data_release(&d);
    if (!block) e = err_new(INFERD_ERROR_NO_MEMORY, "%s: allocating %zu bytes", what, d.nbytes);
    d.block = block;
  }
  if (!e) {
    tensor->dtype = d.dtype;
    tensor->rank = d.shape.rank;
    for (int i = 0; i < d.shape.rank; i++) tensor->dims[i] = d.shape.dims[i];
    tensor->data = d.block;
    if (name && t->name && *t->name) *name = mem_strdup(t->name);
  }
  onnx__tensor_proto__free_unpacked(t, NULL);
  return e;
}
