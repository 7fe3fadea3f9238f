/* Growable text buffer; see http_text.h. */
#include "frontends/http/http_text.h"

#include <stdlib.h>

#include "base/mem.h"

bool http_text_reserve(http_text *t, size_t more) {
  if (t->failed) return false;
  size_t need;
  if (!mem_add_ok(t->len, more, &need) || !mem_add_ok(need, 1, &need)) {
    t->failed = true;
    return false;
  }
  if (need <= t->cap) return true;
  size_t cap = t->cap ? t->cap : 256;
  while (cap < need) {
    if (!mem_mul_ok(cap, 2, &cap)) {
      cap = need;
      break;
    }
  }
  char *p = mem_try_realloc(t->data, cap, 1);
  if (!p) {
    t->failed = true;
    return false;
  }
  t->data = p;
  t->cap = cap;
  return true;
}

void http_text_append(http_text *t, const void *bytes, size_t n) {
  if (!http_text_reserve(t, n)) return;
  if (n) memcpy(t->data + t->len, bytes, n);
  t->len += n;
  t->data[t->len] = '\0';
}

void http_text_putc(http_text *t, char c) {
  if (!http_text_reserve(t, 1)) return;
  t->data[t->len++] = c;
  t->data[t->len] = '\0';
}

void http_text_json_string(http_text *t, const char *s, size_t n) {
  /* Worst case every byte becomes \u00XX. */
  size_t room;
  if (!mem_mul_ok(n, 6, &room) || !mem_add_ok(room, 2, &room) || !http_text_reserve(t, room)) {
    t->failed = true;
    return;
  }
  static const char hex[] = "0123456789abcdef";
  char *o = t->data + t->len;
  *o++ = '"';
  for (size_t i = 0; i < n; i++) {
    const unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      *o++ = '\\';
      *o++ = (char)c;
    } else if (c >= 0x20) {
      *o++ = (char)c;
    } else if (c == '\n') {
      *o++ = '\\', *o++ = 'n';
    } else if (c == '\t') {
      *o++ = '\\', *o++ = 't';
    } else if (c == '\r') {
      *o++ = '\\', *o++ = 'r';
    } else {
      *o++ = '\\', *o++ = 'u', *o++ = '0', *o++ = '0';
      *o++ = hex[c >> 4], *o++ = hex[c & 15];
    }
  }
  *o++ = '"';
  t->len = (size_t)(o - t->data);
  t->data[t->len] = '\0';
}

char *http_text_take(http_text *t, size_t *len) {
  char *p = t->data;
  if (len) *len = t->len;
  *t = (http_text){0};
  return p;
}

void http_text_free(http_text *t) {
  free(t->data);
  *t = (http_text){0};
}
