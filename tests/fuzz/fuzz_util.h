/*
 * What the libFuzzer targets share: quiet logs, a check that a decoded
 * buffer is readable to its last byte (so ASan sees a pointer past its
 * allocation even when the code under test never reads it), and a memory
 * file for the parsers that take a path.
 *
 * Logs are quiet (errors only). A broken invariant is reported with FUZZ_CHECK, which aborts: libFuzzer
 * counts that as a finding and keeps the input.
 */
#ifndef INFERD_TESTS_FUZZ_FUZZ_UTIL_H
#define INFERD_TESTS_FUZZ_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/log.h"

#define FUZZ_CHECK(cond)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);         \
      abort();                                                                             \
    }                                                                                      \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static inline void fuzz_quiet_logs(void) { log_configure(LOG_ERROR, LOG_FORMAT_DEFAULT); }

/* Each target is one file: the setting up they all want is defined here,
 * unless the target defines FUZZ_OWN_INITIALIZE and its own. */
#ifndef FUZZ_OWN_INITIALIZE
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet_logs();
  return 0;
}
#endif

/* Reads every byte of [p, p+n): a decoded tensor that points outside its
 * buffer is a finding even when nothing downstream would read it here. */
static inline void fuzz_touch(const void *p, size_t n) {
  const volatile unsigned char *b = p;
  unsigned char sum = 0;
  for (size_t i = 0; i < n; i++) sum ^= b[i];
  (void)sum;
}

/* A NUL-terminated copy of data (free() it). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) abort();
  if (size) memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

/* Replaces the contents of one memory file (made on first use) with data and
 * returns a path that opens it; NULL when the file cannot be written. */
static inline const char *fuzz_memfile(const uint8_t *data, size_t size) {
  static int fd = -1;
  static char path[64];
  if (fd < 0) {
    fd = memfd_create("inferd-fuzz", 0);
    if (fd < 0) return NULL;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  }
  if (ftruncate(fd, 0) != 0) return NULL;
  for (size_t done = 0; done < size;) {
    const ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
    if (n <= 0) return NULL;
    done += (size_t)n;
  }
  return path;
}

#endif
