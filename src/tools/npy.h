/*
 * NumPy .npy files (format versions 1.0 to 3.0), little-endian, C order, the
 * numeric dtypes plus bool. Enough for `inferd run` and the tests that
 * compare its outputs with other runtimes.
 */
#ifndef INFERD_TOOLS_NPY_H
#define INFERD_TOOLS_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "inferd.h"

typedef struct npy_array {
  inferd_datatype dtype;
  int rank;
  int64_t dims[INFERD_MAX_RANK];
  void *data; /* malloc'd, owned by the array */
  size_t nbytes;
} npy_array;

inferd_error *npy_read(const char *path, npy_array *array);
inferd_error *npy_write(const char *path, inferd_datatype dtype, int rank, const int64_t *dims, const void *data);
void npy_free(npy_array *array);

#endif
