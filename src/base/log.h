/*
 * Process-wide logging to stderr. The level and format are set once at start
 * (from --log-verbose / --log-format) and read without locks afterwards.
 *
 * Errors and warnings are rate-limited by call site: each log_error or
 * log_warn in the source has its own limiter (a static object the macro
 * makes), which prints the first LOG_BURST lines of a window of
 * LOG_WINDOW_SECS seconds and holds back the rest. The next line printed
 * from that site says how many were held back and over how long, and
 * log_flush_suppressed says it for every site at exit, so a flood of bad
 * requests (or of anything else) costs a bounded number of lines, never
 * the disk. Info lines (start, stop, model loads) and verbose lines, which
 * an operator asks for, are not limited.
 */
#ifndef INFERD_BASE_LOG_H
#define INFERD_BASE_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_VERBOSE } log_level;
typedef enum log_format { LOG_FORMAT_DEFAULT = 0, LOG_FORMAT_ISO8601 } log_format;

void log_configure(log_level level, log_format format);
/* Switches one level's lines off (or on again) whatever the level set:
 * Triton's --log-error, --log-warning, --log-info. */
void log_enable(log_level level, bool on);
log_level log_current_level(void);
void log_write(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

enum { LOG_BURST = 10, LOG_WINDOW_SECS = 10 };

/* The limiter of one call site. A window opens with the first line after
 * the previous one closed; within it LOG_BURST lines pass. */
typedef struct log_limiter {
  bool open;            /* a window has begun */
  uint64_t window_ns;   /* when it began */
  uint32_t printed;     /* lines passed in it */
  uint64_t held;        /* lines held back since the last one passed */
  uint64_t first_held_ns; /* when the first of them came */
} log_limiter;

/* true: print the line that comes at now_ns; *held and *held_ns then say
 * how many lines were held back before it and the time from the first of
 * them to now (0, 0: none). false: it is held back (counted). Pure: the
 * caller serializes and supplies the clock. */
bool log_limiter_allow(log_limiter *l, uint64_t now_ns, uint64_t *held, uint64_t *held_ns);

/* One call site of log_error / log_warn (made by the macros). */
typedef struct log_site {
  log_limiter limiter;
  const char *file;
  int line;
  log_level level;
  struct log_site *next; /* in the list of sites that held lines back */
  bool listed;
} log_site;

void log_write_site(log_site *site, log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prints, for every site with lines held back, how many and over how long
 * (the summary its next line would have carried); at exit. */
void log_flush_suppressed(void);

/* For tests: where lines go (NULL: stderr) and the clock the limiters read
 * (NULL: the monotonic clock). */
void log_set_output(FILE *out);
void log_set_clock(uint64_t (*now_ns)(void));

#define LOG_AT_SITE_(level, ...)                                                                        \
  do {                                                                                                  \
    static log_site log_site_ = {.file = __FILE__, .line = __LINE__};                                   \
    log_write_site(&log_site_, level, __VA_ARGS__);                                                     \
  } while (0)

#define log_error(...) LOG_AT_SITE_(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) LOG_AT_SITE_(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_verbose(...)                                                                                \
  do {                                                                                                  \
    if (log_current_level() >= LOG_VERBOSE) log_write(LOG_VERBOSE, __VA_ARGS__);                        \
  } while (0)

#endif
