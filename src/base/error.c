#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct inferd_error {
  inferd_error_code code;
  char message[];
};

/* Returned when the error itself cannot be allocated; never freed. */
static struct {
  inferd_error_code code;
  char message[32];
} out_of_memory_error = {INFERD_ERROR_NO_MEMORY, "out of memory"};

static const struct {
  const char *name;
  const char *text;
  int http;
  int grpc;
} error_table[] = {
#define ERROR_ROW_(name, text, http, grpc) {#name, text, http, grpc},
    INFERD_ERROR_MAP(ERROR_ROW_)
#undef ERROR_ROW_
};

static inferd_error *error_alloc(inferd_error_code code, size_t len) {
  inferd_error *e = malloc(sizeof(*e) + len + 1);
  if (!e) return (inferd_error *)&out_of_memory_error;
  e->code = (code >= 0 && code < INFERD_ERROR_CODE_COUNT_) ? code : INFERD_ERROR_UNKNOWN;
  return e;
}

inferd_error *inferd_error_create(inferd_error_code code, const char *message) {
  if (!message) message = "";
  size_t len = strlen(message);
  inferd_error *e = error_alloc(code, len);
  if (e != (inferd_error *)&out_of_memory_error) memcpy(e->message, message, len + 1);
  return e;
}

static inferd_error *error_vformat(inferd_error_code code, const char *prefix, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) n = 0;
  size_t plen = prefix ? strlen(prefix) : 0;
  inferd_error *e = error_alloc(code, (size_t)n + plen);
  if (e == (inferd_error *)&out_of_memory_error) return e;
  vsnprintf(e->message, (size_t)n + 1, fmt, ap);
  if (prefix) memcpy(e->message + n, prefix, plen + 1);
  return e;
}

inferd_error *err_new(inferd_error_code code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  inferd_error *e = error_vformat(code, NULL, fmt, ap);
  va_end(ap);
  return e;
}

inferd_error *err_wrap(inferd_error *error, const char *fmt, ...) {
  if (!error || error == (inferd_error *)&out_of_memory_error) return error;
  char sep[2048];
  snprintf(sep, sizeof(sep), ": %s", error->message);
  va_list ap;
  va_start(ap, fmt);
  inferd_error *e = error_vformat(error->code, sep, fmt, ap);
  va_end(ap);
  inferd_error_delete(error);
  return e;
}

inferd_error_code inferd_error_code_of(const inferd_error *error) {
  return error ? error->code : INFERD_ERROR_UNKNOWN;
}

const char *inferd_error_message(const inferd_error *error) { return error ? error->message : ""; }

const char *inferd_error_code_name(inferd_error_code code) {
  if (code < 0 || code >= INFERD_ERROR_CODE_COUNT_) return "UNKNOWN";
  return error_table[code].name;
}

int inferd_error_code_http_status(inferd_error_code code) {
  if (code < 0 || code >= INFERD_ERROR_CODE_COUNT_) return 500;
  return error_table[code].http;
}

int inferd_error_code_grpc_status(inferd_error_code code) {
  if (code < 0 || code >= INFERD_ERROR_CODE_COUNT_) return 2;
  return error_table[code].grpc;
}

/* One second: long enough for a full queue to move on, short enough not to
 * hold a client back much. */
enum { OVERLOAD_RETRY_AFTER_MS = 1000 };

int inferd_error_code_retry_after_ms(inferd_error_code code) {
  return code == INFERD_ERROR_OVERLOADED ? OVERLOAD_RETRY_AFTER_MS : 0;
}

void inferd_error_delete(inferd_error *error) {
  if (error && error != (inferd_error *)&out_of_memory_error) free(error);
}
