/*
 * Internal helpers around the public error type: printf-style construction and
 * the short-circuit macro used by every layer.
 */
#ifndef INFERD_BASE_ERROR_H
#define INFERD_BASE_ERROR_H

#include "inferd.h"

/* Formats a new error. Never returns NULL: when memory is short it returns a
 * static out-of-memory error that inferd_error_delete() knows not to free. */
inferd_error *err_new(inferd_error_code code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes an existing error's message with context ("loading x: ...") and
 * returns it. */
inferd_error *err_wrap(inferd_error *error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ERR_TRY(expr)                                                                                   \
  do {                                                                                                  \
    inferd_error *err_try_ = (expr);                                                                    \
    if (err_try_) return err_try_;                                                                      \
  } while (0)

#endif
