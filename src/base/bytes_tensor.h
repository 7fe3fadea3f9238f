/*
 * BYTES tensors in their serialized form, as they cross the public API and
 * the wire: per element a 4-byte little-endian length, then its bytes.
 * Frontends, the server and the engine all read them through here.
 */
#ifndef INFERD_BASE_BYTES_TENSOR_H
#define INFERD_BASE_BYTES_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "inferd.h"

/* One element, in place. */
typedef struct bytes_view {
  const uint8_t *data;
  uint64_t len;
} bytes_view;

/* Bytes the first `count` elements take at the start of data[0..size);
 * SIZE_MAX when the data ends before them. */
size_t bytes_tensor_span(const void *data, size_t size, size_t count);

/* Checks that data[0..size) holds exactly `count` elements, filling
 * views[0..count) when views is not NULL. The error (INVALID_ARG) names
 * input `name`, calling the bytes `what` ("data", "binary data"). */
inferd_error *bytes_tensor_read(const char *name, const char *what, const void *data, size_t size, size_t count,
                                bytes_view *views);

#endif
