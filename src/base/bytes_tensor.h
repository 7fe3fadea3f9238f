/*
 * BYTES tensors in their serialized form, as they cross the public API and
 * the wire: per element a 4-byte little-endian length, then its bytes.
 */
#ifndef INFERD_BASE_BYTES_TENSOR_H
#define INFERD_BASE_BYTES_TENSOR_H

#include <stddef.h>
#include <stdint.h>

/* Bytes the first `count` elements take at the start of data[0..size);
 * SIZE_MAX when the data ends before them. */
size_t bytes_tensor_span(const void *data, size_t size, size_t count);

#endif
