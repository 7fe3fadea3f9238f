/*
 * Writing the Prometheus text exposition format 0.0.4: a growing buffer,
 * family headers (HELP and TYPE), label sets with escaped values, and
 * samples. All samples of a family must follow its header, so callers
 * snapshot first and write family by family.
 */
#ifndef INFERD_METRICS_EXPOSITION_H
#define INFERD_METRICS_EXPOSITION_H

#include <stddef.h>
#include <stdint.h>

typedef struct expo_buf {
  char *data; /* NUL-terminated */
  size_t len, cap;
} expo_buf;

void expo_printf(expo_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "# HELP name help\n# TYPE name type\n" */
void expo_family(expo_buf *b, const char *name, const char *type, const char *help);
/* Appends key="value" (value escaped: backslash, double quote, newline),
 * with a comma first when the buffer is not empty. */
void expo_label(expo_buf *b, const char *key, const char *value);
/* name[suffix]{labels} value, labels possibly empty. Doubles are written
 * as Prometheus reads them (NaN, +Inf, -Inf included). */
void expo_sample_u64(expo_buf *b, const char *name, const char *labels, uint64_t value);
void expo_sample_double(expo_buf *b, const char *name, const char *labels, double value);
/* Takes the text out of the buffer (the caller frees it). */
char *expo_take(expo_buf *b, size_t *length);
void expo_free(expo_buf *b);

#endif
