/*
 * Pieces the ONNX importer, exporter and tensor reader share; not for use
 * outside src/engine/onnx.
 */
#ifndef INFERD_ENGINE_ONNX_ONNX_INTERNAL_H
#define INFERD_ENGINE_ONNX_ONNX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/onnx/onnx.h"
#include "engine/onnx/onnx.pb-c.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ONNX raw_data is little-endian; inferd reads it in place and so needs a little-endian host"
#endif

/* ---- wire format (onnx_wire.c) ------------------------------------------ */

/* Where one initializer's raw_data lies in the model file. */
typedef struct onnx_raw_ref {
  size_t offset, length;
  bool present;
} onnx_raw_ref;

/*
 * A ModelProto with every graph initializer's raw_data field taken out, so
 * that protobuf-c (which copies bytes fields when unpacking) does not copy the
 * weights. refs[i] tells where the raw_data of the i-th initializer (in wire
 * order, which is also protobuf-c's order) lies in the original bytes.
 */
typedef struct onnx_stripped {
  uint8_t *data;
  size_t size;
  onnx_raw_ref *refs;
  size_t n_refs;
} onnx_stripped;

/* `label` names the file in error messages. */
inferd_error *onnx_strip_model(const uint8_t *file, size_t size, const char *label, onnx_stripped *out);
void onnx_stripped_free(onnx_stripped *stripped);

/* Bytes a varint takes, and writes one; returns the bytes written. */
size_t onnx_varint_size(uint64_t v);
size_t onnx_varint_put(uint8_t *out, uint64_t v);

/* ---- tensors (onnx_tensor.c) --------------------------------------------- */

/* Maps the regular file `path` read-only; *map is NULL when it is empty.
 * Errors name the file. */
inferd_error *onnx_map_file(const char *path, void **map, size_t *size);
/* The folder holding `path` ("." when it names none), malloc'd: external
 * data paths are relative to it. */
char *onnx_dir_of(const char *path);

/* TensorProto.DataType to inferd; INFERD_TYPE_INVALID for UNDEFINED, COMPLEX*
 * and numbers ONNX does not define. STRING maps to BYTES. */
inferd_datatype onnx_to_datatype(int32_t onnx_type);
/* The reverse; 0 (UNDEFINED) for INVALID. */
int32_t onnx_from_datatype(inferd_datatype type);
/* ONNX's name of a data type, for messages ("FLOAT", "COMPLEX64", "#99"). */
const char *onnx_type_name(int32_t onnx_type);

/* Who owns a decoded tensor's bytes. */
typedef enum onnx_data_owner {
  ONNX_DATA_BORROWED = 0, /* points into the model file mapping */
  ONNX_DATA_HEAP,         /* `block` is a mem_try_aligned block */
  ONNX_DATA_MAPPED,       /* `block`/`map_length` is a mapping of an external data file */
} onnx_data_owner;

typedef struct onnx_tensor_data {
  inferd_datatype dtype;
  ir_shape shape;
  const void *data; /* dense row-major, aligned to the element size */
  size_t nbytes;
  onnx_data_owner owner;
  void *block;
  size_t map_length;
} onnx_tensor_data;

/* Where a TensorProto's raw bytes are and what may be done with them. */
typedef struct onnx_tensor_source {
  const char *what; /* "initializer 'w'", for messages */
  /* raw_data taken out by onnx_strip_model (has_raw) or left in the message. */
  bool has_raw;
  const uint8_t *raw;
  size_t raw_len;
  /* The raw bytes outlive the graph (they are in the model mapping), so an
   * aligned tensor may point at them instead of being copied. */
  bool raw_borrowable;
  /* Folder external data paths are relative to; NULL forbids external data. */
  const char *model_dir;
} onnx_tensor_source;

/* Decodes a TensorProto's dtype, dims and data (raw, typed fields or
 * external). On success the caller owns `out` and must give it to a graph
 * (onnx_tensor_data_give) or release it. */
inferd_error *onnx_tensor_decode(const Onnx__TensorProto *tensor, const onnx_tensor_source *src,
                                 onnx_tensor_data *out);
/* Hands the bytes' owner to the graph (a borrowed pointer needs nothing). */
void onnx_tensor_data_give(ir_graph *g, onnx_tensor_data *data);
void onnx_tensor_data_release(onnx_tensor_data *data);

#endif
