#include "base/bytes_tensor.h"

#include "base/error.h"

/* Reads the element at *off: its view, *off moved past it. False when the
 * data ends in its length or its bytes. */
static bool next_element(const uint8_t *p, size_t size, size_t *off, bytes_view *v, uint32_t *claimed) {
  if (size - *off < 4) return false;
  const uint32_t len = (uint32_t)p[*off] | (uint32_t)p[*off + 1] << 8 | (uint32_t)p[*off + 2] << 16 |
                       (uint32_t)p[*off + 3] << 24;
  *claimed = len;
  if (len > size - *off - 4) return false;
  *v = (bytes_view){.data = p + *off + 4, .len = len};
  *off += 4 + (size_t)len;
  return true;
}

size_t bytes_tensor_span(const void *data, size_t size, size_t count) {
  size_t off = 0;
  bytes_view v;
  uint32_t claimed;
  for (size_t i = 0; i < count; i++)
    if (!next_element(data, size, &off, &v, &claimed)) return SIZE_MAX;
  return off;
}

inferd_error *bytes_tensor_read(const char *name, const char *what, const void *data, size_t size, size_t count,
                                bytes_view *views) {
  size_t off = 0;
  for (size_t i = 0; i < count; i++) {
    bytes_view v;
    uint32_t claimed = 0;
    const size_t at = off;
    if (!next_element(data, size, &off, &v, &claimed)) {
      if (size - at < 4)
        return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': BYTES %s ends in element %zu's length (needs %zu elements)",
                       name, what, i, count);
      return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': BYTES element %zu claims %u bytes but only %zu remain", name,
                     i, claimed, size - at - 4);
    }
    if (views) views[i] = v;
  }
  if (off != size)
    return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': BYTES %s has %zu bytes after its %zu elements", name, what,
                   size - off, count);
  return NULL;
}
