#include "base/dims.h"

#include <stdio.h>

const char *dims_text(const int64_t *dims, int rank, char *buf, size_t size) {
  if (size == 0) return buf;
  size_t n = (size_t)snprintf(buf, size, "[");
  for (int d = 0; d < rank && n < size; d++) n += (size_t)snprintf(buf + n, size - n, "%s%lld", d ? "," : "", (long long)dims[d]);
  if (n < size) snprintf(buf + n, size - n, "]");
  return buf;
}
