/*
 * .npy files as `inferd run --input` reads them: the magic and version, the
 * header's Python dict (descr, fortran_order, shape), and the data checked
 * against the shape and the file's size. The parser takes a path, so each
 * input is written to a memory file first.
 */
#include "fuzz/fuzz_util.h"
#include "tools/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_memfile(data, size);
  FUZZ_CHECK(path != NULL);
  npy_array a;
  inferd_error *err = npy_read(path, &a);
  if (err) {
    inferd_error_delete(err);
    return 0;
  }
  FUZZ_CHECK(a.rank >= 0 && a.rank <= INFERD_MAX_RANK);
  size_t count = 1;
  for (int d = 0; d < a.rank; d++) {
    FUZZ_CHECK(a.dims[d] >= 0);
    count *= (size_t)a.dims[d];
  }
  FUZZ_CHECK(count * inferd_datatype_size(a.dtype) == a.nbytes);
  FUZZ_CHECK(a.nbytes <= size);
  if (a.nbytes) fuzz_touch(a.data, a.nbytes);
  npy_free(&a);
  return 0;
}
