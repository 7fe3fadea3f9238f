/* Locates inputs[i].data arrays in an inference request; see http_json_scan.h. */
#include "frontends/http/http_json_scan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

typedef struct scanner {
  const char *p, *end, *text;
  http_data_span *spans;
  size_t span_count, span_cap;
  bool too_deep; /* the walk stopped at a container past HTTP_JSON_MAX_DEPTH */
} scanner;

static void skip_ws(scanner *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')) s->p++;
}

/* At '"': moves past the closing quote. */
static bool skip_string(scanner *s) {
  const char *p = s->p + 1;
  for (;;) {
    const char *q = memchr(p, '"', (size_t)(s->end - p));
    if (!q) return false;
    /* The quote is escaped when an odd number of backslashes precede it. */
    size_t slashes = 0;
    while (q - slashes > p && q[-1 - (ptrdiff_t)slashes] == '\\') slashes++;
    p = q + 1;
    if (slashes % 2 == 0) break;
  }
  s->p = p;
  return true;
}

/* Moves past one value of any kind, found inside containers `outer` deep.
 * Containers are skipped by counting brackets outside strings; whether they
 * match is jansson's to check, their depth is checked here. */
static bool skip_value(scanner *s, size_t outer) {
  skip_ws(s);
  if (s->p >= s->end) return false;
  if (*s->p == '"') return skip_string(s);
  if (*s->p == '[' || *s->p == '{') {
    size_t depth = 0;
    while (s->p < s->end) {
      const char c = *s->p;
      if (c == '"') {
        if (!skip_string(s)) return false;
        continue;
      }
      if (c == '[' || c == '{') {
        if (++depth + outer > HTTP_JSON_MAX_DEPTH) {
          s->too_deep = true;
          return false;
        }
      }
      if (c == ']' || c == '}') {
        if (--depth == 0) {
          s->p++;
          return true;
        }
      }
      s->p++;
    }
    return false;
  }
  const char *start = s->p;
  while (s->p < s->end && !strchr(",]} \n\r\t", *s->p)) s->p++;
  return s->p > start;
}

/* At a key: sets *key and *n to its raw text between the quotes and moves past
 * the ':'. */
static bool read_key(scanner *s, const char **key, size_t *n) {
  skip_ws(s);
  if (s->p >= s->end || *s->p != '"') return false;
  const char *start = s->p + 1;
  if (!skip_string(s)) return false;
  *key = start;
  *n = (size_t)(s->p - 1 - start);
  skip_ws(s);
  if (s->p >= s->end || *s->p != ':') return false;
  s->p++;
  skip_ws(s);
  return s->p < s->end;
}

static bool key_is(const char *key, size_t n, const char *want) { return n == strlen(want) && !memcmp(key, want, n); }

/* After a member: ',' (true, *more) or the closing bracket (true, !*more). */
static bool next_member(scanner *s, char close, bool *more) {
  skip_ws(s);
  if (s->p >= s->end) return false;
  if (*s->p == ',') {
    s->p++;
    *more = true;
    return true;
  }
  if (*s->p == close) {
    s->p++;
    *more = false;
    return true;
  }
  return false;
}

static bool scan_input(scanner *s, size_t index) {
  http_data_span *spans = mem_try_grow(s->spans, &s->span_cap, index + 1, sizeof(*spans), 8, SIZE_MAX);
  if (!spans) return false;
  s->spans = spans;
  /* Inputs that are not objects get no span (the decoder reports them):
   * their entries, between the last object and this one, are empty. */
  for (size_t i = s->span_count; i <= index; i++) s->spans[i] = (http_data_span){0};
  s->span_count = index + 1;
  s->p++; /* '{' */
  skip_ws(s);
  if (s->p < s->end && *s->p == '}') {
    s->p++;
    return true;
  }
  for (bool more = true; more;) {
    const char *key;
    size_t n;
    if (!read_key(s, &key, &n)) return false;
    const char *value = s->p;
    if (!skip_value(s, 3)) return false; /* root, inputs, this input */
    if (*value == '[' && key_is(key, n, "data"))
      s->spans[index] = (http_data_span){(size_t)(value - s->text), (size_t)(s->p - s->text)};
    if (!next_member(s, '}', &more)) return false;
  }
  return true;
}

static bool scan_inputs(scanner *s) {
  s->p++; /* '[' */
  skip_ws(s);
  if (s->p < s->end && *s->p == ']') {
    s->p++;
    return true;
  }
  size_t index = 0;
  for (bool more = true; more; index++) {
    skip_ws(s);
    if (s->p >= s->end) return false;
    if (*s->p == '{') {
      if (!scan_input(s, index)) return false;
    } else if (!skip_value(s, 2)) {
      return false;
    }
    if (!next_member(s, ']', &more)) return false;
  }
  return true;
}

static bool scan_root(scanner *s) {
  skip_ws(s);
  if (s->p >= s->end || *s->p != '{') return false;
  s->p++;
  skip_ws(s);
  if (s->p < s->end && *s->p == '}') return true;
  for (bool more = true; more;) {
    const char *key;
    size_t n;
    if (!read_key(s, &key, &n)) return false;
    if (*s->p == '[' && key_is(key, n, "inputs")) {
      if (!scan_inputs(s)) return false;
    } else if (!skip_value(s, 1)) {
      return false;
    }
    if (!next_member(s, '}', &more)) return false;
  }
  return true;
}

http_json_scan_result http_json_scan_data(const char *text, size_t len, http_json_scan *out) {
  *out = (http_json_scan){0};
  scanner s = {.p = text, .end = text + len, .text = text};
  if (!scan_root(&s)) {
    free(s.spans);
    return s.too_deep ? HTTP_JSON_TOO_DEEP : HTTP_JSON_UNSCANNABLE;
  }
  /* Each span is at least "[]", longer than its placeholder, so the copy
   * never outgrows the text. */
  char *env = mem_try_alloc(len + 1, 1);
  if (!env) {
    free(s.spans);
    return HTTP_JSON_UNSCANNABLE;
  }
  size_t from = 0, n = 0;
  for (size_t i = 0; i < s.span_count; i++) {
    const http_data_span sp = s.spans[i];
    if (sp.begin == sp.end) continue;
    memcpy(env + n, text + from, sp.begin - from);
    n += sp.begin - from;
    env[n++] = '0';
    from = sp.end;
  }
  memcpy(env + n, text + from, len - from);
  n += len - from;
  env[n] = '\0';
  *out = (http_json_scan){.envelope = env, .envelope_len = n, .spans = s.spans, .span_count = s.span_count};
  return HTTP_JSON_SCANNED;
}

void http_json_scan_free(http_json_scan *scan) {
  free(scan->envelope);
  free(scan->spans);
  *scan = (http_json_scan){0};
}

bool http_json_depth_over(const char *text, size_t len, int limit) {
  scanner s = {.p = text, .end = text + len, .text = text};
  int depth = 0;
  while (s.p < s.end) {
    const char c = *s.p;
    if (c == '"') {
      if (!skip_string(&s)) return false; /* unterminated: the parser refuses it */
      continue;
    }
    if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      depth--;
    }
    s.p++;
  }
  return false;
}
