/*
 * The bodies of the shared-memory register calls (Triton's system and CUDA
 * shared-memory extensions), parsed into plain values. Pure functions over
 * bytes, so a fuzzer or a unit test drives them without a server: every
 * field's JSON type is checked and every problem is an INVALID_ARG error
 * naming the field.
 *
 *   system: {"key": "/name", "offset": N, "byte_size": M}  (offset optional, 0)
 *   CUDA:   {"raw_handle": {"b64": "<base64 of the 64-byte handle>"},
 *            "device_id": D, "byte_size": M}
 */
#ifndef INFERD_FRONTENDS_HTTP_SHM_H
#define INFERD_FRONTENDS_HTTP_SHM_H

#include <stddef.h>
#include <stdint.h>

#include "inferd.h"

enum { HTTP_SHM_CUDA_HANDLE_SIZE = 64 };

typedef struct http_shm_system_register {
  char *key; /* malloc'd */
  uint64_t offset, byte_size;
} http_shm_system_register;

typedef struct http_shm_cuda_register {
  unsigned char raw_handle[HTTP_SHM_CUDA_HANDLE_SIZE];
  int64_t device_id;
  uint64_t byte_size;
} http_shm_cuda_register;

/* On error *out holds nothing to free. */
inferd_error *http_shm_parse_system_register(const char *body, size_t size, http_shm_system_register *out);
void http_shm_system_register_free(http_shm_system_register *r);
inferd_error *http_shm_parse_cuda_register(const char *body, size_t size, http_shm_cuda_register *out);

/* Decodes standard base64 (RFC 4648, '=' padding required when the length
 * is not a multiple of 4 characters; no whitespace) into at most `cap`
 * bytes; false when malformed or too long. */
bool http_base64_decode(const char *text, size_t len, unsigned char *out, size_t cap, size_t *out_len);

#endif
