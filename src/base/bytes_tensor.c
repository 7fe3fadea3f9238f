#include "base/bytes_tensor.h"

size_t bytes_tensor_span(const void *data, size_t size, size_t count) {
  const uint8_t *p = data;
  size_t off = 0;
  for (size_t i = 0; i < count; i++) {
    if (size - off < 4) return SIZE_MAX;
    const uint32_t len = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
                         (uint32_t)p[off + 3] << 24;
    off += 4;
    if (len > size - off) return SIZE_MAX;
    off += len;
  }
  return off;
}
