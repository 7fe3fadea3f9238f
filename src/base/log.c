#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "base/clock.h"
#include "inferd.h"

_Static_assert(LOG_ERROR == (int)INFERD_LOG_ERROR && LOG_WARN == (int)INFERD_LOG_WARN &&
                   LOG_INFO == (int)INFERD_LOG_INFO && LOG_VERBOSE == (int)INFERD_LOG_VERBOSE,
               "the public log levels are the internal ones");

static log_level current_level = LOG_INFO;
static log_format current_format = LOG_FORMAT_DEFAULT;
static FILE *output;                         /* NULL: stderr */
/* Triton's --log-error, --log-warning, --log-info: a level switched off is
 * not written even when current_level lets it through. */
static bool level_on[LOG_VERBOSE + 1] = {true, true, true, true};
static uint64_t (*clock_fn)(void) = clock_now_ns;
static inferd_log_fn sink; /* NULL: write to output */
static void *sink_userp;

/* Guards every site's limiter and the list of sites holding lines back;
 * taken only for errors and warnings, and never while writing. */
static pthread_mutex_t sites_lock = PTHREAD_MUTEX_INITIALIZER;
static log_site *held_sites;

void log_configure(log_level level, log_format format) {
  current_level = level;
  current_format = format;
}

log_level log_current_level(void) { return current_level; }

void log_enable(log_level level, bool on) {
  if (level >= LOG_ERROR && level <= LOG_VERBOSE) level_on[level] = on;
}

void log_set_output(FILE *out) { output = out; }

void inferd_log_set_level(inferd_log_level level) {
  const int l = (int)level;
  current_level = l < LOG_ERROR ? LOG_ERROR : l > LOG_VERBOSE ? LOG_VERBOSE : (log_level)l;
}

void inferd_log_set_sink(inferd_log_fn fn, void *userp) {
  sink_userp = userp;
  sink = fn;
}

void log_set_clock(uint64_t (*now_ns)(void)) { clock_fn = now_ns ? now_ns : clock_now_ns; }

bool log_limiter_allow(log_limiter *l, uint64_t now_ns, uint64_t *held, uint64_t *held_ns) {
  if (!l->open || now_ns - l->window_ns >= (uint64_t)LOG_WINDOW_SECS * 1000000000ull) {
    l->open = true;
    l->window_ns = now_ns;
    l->printed = 0;
  }
  if (l->printed >= LOG_BURST) {
    if (l->held == 0) l->first_held_ns = now_ns;
    l->held++;
    return false;
  }
  l->printed++;
  *held = l->held;
  *held_ns = l->held ? now_ns - l->first_held_ns : 0;
  l->held = 0;
  return true;
}

/* Whole seconds, rounded up: "in the last 0 s" would read as nothing. */
static unsigned long long seconds_up(uint64_t ns) { return (unsigned long long)((ns + 999999999ull) / 1000000000ull); }

/* One line: the prefix, the message, and `suffix` (may be NULL). */
static void write_line(log_level level, const char *suffix, const char *fmt, va_list ap) {
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
  const size_t prefix = n < sizeof(line) ? n : sizeof(line) - 1;
  if (n < sizeof(line)) {
    const int wrote = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (wrote > 0) n += (size_t)wrote;
  }
  if (suffix && n < sizeof(line)) snprintf(line + n, sizeof(line) - n, "%s", suffix);
  if (sink) {
    sink((inferd_log_level)level, line + prefix, sink_userp);
    return;
  }
  /* One fprintf per line keeps lines from different threads whole. */
  fprintf(output ? output : stderr, "%s\n", line);
}

void log_write(log_level level, const char *fmt, ...) {
  if (level > current_level || !level_on[level]) return;
  va_list ap;
  va_start(ap, fmt);
  write_line(level, NULL, fmt, ap);
  va_end(ap);
}

void log_write_site(log_site *site, log_level level, const char *fmt, ...) {
  if (level > current_level || !level_on[level]) return;
  uint64_t held = 0, held_ns = 0;
  pthread_mutex_lock(&sites_lock);
  const bool print = log_limiter_allow(&site->limiter, clock_fn(), &held, &held_ns);
  if (!print && !site->listed) {
    site->level = level;
    site->listed = true;
    site->next = held_sites;
    held_sites = site;
  }
  pthread_mutex_unlock(&sites_lock);
  if (!print) return;
  char suffix[128];
  if (held)
    snprintf(suffix, sizeof(suffix), " (%llu similar messages suppressed in the last %llu s)",
             (unsigned long long)held, seconds_up(held_ns));
  va_list ap;
  va_start(ap, fmt);
  write_line(level, held ? suffix : NULL, fmt, ap);
  va_end(ap);
}

/* write_line takes a va_list; this gives it one for a fixed text. */
static void write_fixed(log_level level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  write_line(level, NULL, fmt, ap);
  va_end(ap);
}

void log_flush_suppressed(void) {
  const uint64_t now = clock_fn();
  pthread_mutex_lock(&sites_lock);
  for (log_site *site = held_sites; site; site = site->next) {
    log_limiter *l = &site->limiter;
    if (!l->held) continue;
    const char *file = strrchr(site->file, '/');
    /* Written under the lock: at exit, and the summaries must not be
     * counted twice by a line of the same site coming meanwhile. */
    write_fixed(site->level, "%llu similar messages suppressed in the last %llu s (from %s:%d)",
                (unsigned long long)l->held, seconds_up(now - l->first_held_ns), file ? file + 1 : site->file,
                site->line);
    l->held = 0;
  }
  pthread_mutex_unlock(&sites_lock);
}
