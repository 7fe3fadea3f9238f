#ifndef INFERD_BASE_CLOCK_H
#define INFERD_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic nanoseconds, for durations. */
static inline uint64_t clock_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Wall-clock nanoseconds since the epoch, for timestamps. */
static inline uint64_t clock_wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Time arithmetic saturates: durations come from clients and configurations
 * (a timeout of 2^63 microseconds is valid input), and a sum that wrapped
 * would put a deadline in the past. UINT64_MAX nanoseconds, some 584 years,
 * stands for "never". */
static inline uint64_t clock_add_sat(uint64_t a, uint64_t b) {
  uint64_t sum;
  return __builtin_add_overflow(a, b, &sum) ? UINT64_MAX : sum;
}

static inline uint64_t clock_us_to_ns(uint64_t us) {
  uint64_t ns;
  return __builtin_mul_overflow(us, 1000u, &ns) ? UINT64_MAX : ns;
}

/* The CLOCK_REALTIME time `delta_ns` from now, as pthread_cond_timedwait
 * wants its deadline. */
static inline struct timespec clock_deadline_after(uint64_t delta_ns) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t wall = clock_add_sat((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec, delta_ns);
  ts.tv_sec = (time_t)(wall / 1000000000ull);
  ts.tv_nsec = (long)(wall % 1000000000ull);
  return ts;
}

#endif
