/*
 * Request bodies sent with Content-Encoding: gzip or deflate (zlib or raw),
 * inflated under a size limit as handle_infer does, so that no stream, bomb
 * or truncation gets past the limit or out of its buffer.
 *
 * Input: byte 0 chooses the encoding (bit 0: gzip, else deflate) and the
 * limit (1 << (bits 1-5 mod 21) bytes, 1 B to 1 MiB); the stream follows.
 */
#include "frontends/http/http_compress.h"
#include "fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const http_encoding encoding = data[0] & 1 ? HTTP_ENCODING_GZIP : HTTP_ENCODING_DEFLATE;
  const size_t limit = (size_t)1 << ((data[0] >> 1) % 21);
  void *out = NULL;
  size_t out_size = 0;
  inferd_error *err = http_inflate(data + 1, size - 1, encoding, limit, &out, &out_size);
  if (err) {
    const inferd_error_code code = inferd_error_code_of(err);
    FUZZ_CHECK(code == INFERD_ERROR_INVALID_ARG || code == INFERD_ERROR_TOO_LARGE);
    inferd_error_delete(err);
    return 0;
  }
  FUZZ_CHECK(out_size <= limit);
  FUZZ_CHECK(out != NULL || out_size == 0);
  if (out_size) fuzz_touch(out, out_size);
  free(out);
  return 0;
}
