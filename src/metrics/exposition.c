#include "metrics/exposition.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/mem.h"

static void reserve(expo_buf *b, size_t more) {
  if (b->len + more + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + more + 1) cap *= 2;
  b->data = mem_realloc(b->data, cap);
  b->cap = cap;
  b->data[b->len] = '\0';
}

void expo_printf(expo_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n <= 0) return;
  reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

static void put_char(expo_buf *b, char c) {
  reserve(b, 1);
  b->data[b->len++] = c;
  b->data[b->len] = '\0';
}

void expo_family(expo_buf *b, const char *name, const char *type, const char *help) {
  expo_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void expo_label(expo_buf *b, const char *key, const char *value) {
  expo_printf(b, "%s%s=\"", b->len ? "," : "", key);
  for (const char *p = value; *p; p++) {
    if (*p == '\\' || *p == '"') {
      put_char(b, '\\');
      put_char(b, *p);
    } else if (*p == '\n') {
      put_char(b, '\\');
      put_char(b, 'n');
    } else {
      put_char(b, *p);
    }
  }
  put_char(b, '"');
}

static void sample_head(expo_buf *b, const char *name, const char *labels) {
  if (labels && *labels)
    expo_printf(b, "%s{%s} ", name, labels);
  else
    expo_printf(b, "%s ", name);
}

void expo_sample_u64(expo_buf *b, const char *name, const char *labels, uint64_t value) {
  sample_head(b, name, labels);
  expo_printf(b, "%llu\n", (unsigned long long)value);
}

void expo_sample_double(expo_buf *b, const char *name, const char *labels, double value) {
  sample_head(b, name, labels);
  if (isnan(value))
    expo_printf(b, "NaN\n");
  else if (isinf(value))
    expo_printf(b, "%s\n", value > 0 ? "+Inf" : "-Inf");
  else
    expo_printf(b, "%.15g\n", value);
}

char *expo_take(expo_buf *b, size_t *length) {
  reserve(b, 0);
  char *text = b->data;
  *length = b->len;
  *b = (expo_buf){0};
  return text;
}

void expo_free(expo_buf *b) {
  free(b->data);
  *b = (expo_buf){0};
}
