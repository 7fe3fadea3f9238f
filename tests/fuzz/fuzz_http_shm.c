/*
 * The bodies of the HTTP shared-memory register calls (system and CUDA) and
 * the base64 decoder of the CUDA handle.
 *
 * Input: byte 0 chooses the call (bit 0: CUDA, else system); the rest is
 * the body.
 */
#include "frontends/http/http_shm.h"
#include "fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *body = (const char *)data + 1;
  const size_t body_size = size - 1;
  inferd_error *err;
  if (data[0] & 1) {
    http_shm_cuda_register r;
    err = http_shm_parse_cuda_register(body, body_size, &r);
  } else {
    http_shm_system_register r;
    err = http_shm_parse_system_register(body, body_size, &r);
    if (!err) {
      FUZZ_CHECK(r.key != NULL);
      fuzz_touch(r.key, strlen(r.key) + 1);
      http_shm_system_register_free(&r);
    }
  }
  if (err) inferd_error_delete(err);
  unsigned char out[HTTP_SHM_CUDA_HANDLE_SIZE];
  size_t out_len = 0;
  if (http_base64_decode(body, body_size, out, sizeof(out), &out_len)) FUZZ_CHECK(out_len <= sizeof(out));
  return 0;
}
