/*
 * Process-wide logging to stderr. The level and format are set once at start
 * (from --log-verbose / --log-format) and read without locks afterwards.
 */
#ifndef INFERD_BASE_LOG_H
#define INFERD_BASE_LOG_H

typedef enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_VERBOSE } log_level;
typedef enum log_format { LOG_FORMAT_DEFAULT = 0, LOG_FORMAT_ISO8601 } log_format;

void log_configure(log_level level, log_format format);
log_level log_current_level(void);
void log_write(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_verbose(...)                                                                                \
  do {                                                                                                  \
    if (log_current_level() >= LOG_VERBOSE) log_write(LOG_VERBOSE, __VA_ARGS__);                        \
  } while (0)

#endif
