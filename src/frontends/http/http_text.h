/*
 * A growable text buffer for the JSON the HTTP frontend writes. Sizes come
 * from model outputs and client ids, so growth goes through the `try`
 * allocator: a failed growth marks the buffer failed, later appends are
 * ignored, and the writer checks `failed` once at the end instead of after
 * every append.
 */
#ifndef INFERD_FRONTENDS_HTTP_TEXT_H
#define INFERD_FRONTENDS_HTTP_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct http_text {
  char *data;
  size_t len, cap;
  bool failed;
} http_text;

/* Makes room for `more` bytes after len; false (and failed set) when it
 * cannot. */
bool http_text_reserve(http_text *t, size_t more);
void http_text_append(http_text *t, const void *bytes, size_t n);
static inline void http_text_puts(http_text *t, const char *s) { http_text_append(t, s, strlen(s)); }
void http_text_putc(http_text *t, char c);
/* Appends `n` bytes of s as a quoted JSON string: quotes, backslashes and
 * control characters escaped, other bytes as they are. */
void http_text_json_string(http_text *t, const char *s, size_t n);
/* Gives the buffer's memory to the caller (free() it) and resets t. */
char *http_text_take(http_text *t, size_t *len);
void http_text_free(http_text *t);

#endif
