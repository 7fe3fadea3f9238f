#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static log_level current_level = LOG_INFO;
static log_format current_format = LOG_FORMAT_DEFAULT;

void log_configure(log_level level, log_format format) {
  current_level = level;
  current_format = format;
}

log_level log_current_level(void) { return current_level; }

void log_write(log_level level, const char *fmt, ...) {
  if (level > current_level) return;
  static const char letters[] = "EWIV";
  char line[4096];
  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  size_t n;
  if (current_format == LOG_FORMAT_ISO8601) {
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, " %c ", letters[level]);
  } else {
    localtime_r(&tv.tv_sec, &tm);
    n = (size_t)snprintf(line, sizeof(line), "%c%02d%02d %02d:%02d:%02d.%06ld ", letters[level], tm.tm_mon + 1,
                         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec);
  }
  va_list ap;
  va_start(ap, fmt);
  if (n < sizeof(line)) vsnprintf(line + n, sizeof(line) - n, fmt, ap);
  va_end(ap);
  /* One fputs per line keeps lines from different threads whole. */
  fprintf(stderr, "%s\n", line);
}
