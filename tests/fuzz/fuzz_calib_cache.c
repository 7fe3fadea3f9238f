/*
 * The INT8 calibration cache (engine/quant/calibration.h): any bytes either
 * fail with a message naming a line and column, or parse to a cache whose
 * text parses back to the same cache (written out again, the same text).
 */
#include <string.h>

#include "engine/quant/calibration.h"
#include "fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  calib_cache c;
  inferd_error *err = calib_cache_parse((const char *)data, size, &c);
  if (err) {
    FUZZ_CHECK(strstr(inferd_error_message(err), "calibration cache line ") != NULL);
    inferd_error_delete(err);
    return 0;
  }
  size_t n1, n2;
  char *t1 = calib_cache_format(&c, &n1);
  calib_cache back;
  err = calib_cache_parse(t1, n1, &back);
  FUZZ_CHECK(err == NULL);
  FUZZ_CHECK(back.n == c.n && back.method == c.method && strcmp(back.checksum, c.checksum) == 0);
  FUZZ_CHECK((back.keep == NULL) == (c.keep == NULL) && (!c.keep || strcmp(back.keep, c.keep) == 0));
  for (int i = 0; i < c.n; i++) {
    FUZZ_CHECK(strcmp(back.entries[i].name, c.entries[i].name) == 0);
    FUZZ_CHECK(back.entries[i].threshold >= 0);
  }
  char *t2 = calib_cache_format(&back, &n2);
  FUZZ_CHECK(n1 == n2 && memcmp(t1, t2, n1) == 0);
  free(t1);
  free(t2);
  calib_cache_free(&back);
  calib_cache_free(&c);
  return 0;
}
