/*
 * CPU figures from /proc: utilization of all cores between two readings of
 * /proc/stat, and memory from /proc/meminfo (used = MemTotal - MemAvailable,
 * what the kernel could not hand out without swapping). The parsers take
 * the files' text so tests feed them fixtures.
 */
#ifndef INFERD_METRICS_CPU_PROC_H
#define INFERD_METRICS_CPU_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Jiffies of the aggregate "cpu" line: busy and total (idle and iowait
 * count as not busy; guest time is already inside user and nice). */
typedef struct cpu_times {
  uint64_t busy, total;
} cpu_times;

bool cpu_parse_stat(const char *text, cpu_times *out);
/* Bytes; false when MemTotal or MemAvailable is missing. */
bool cpu_parse_meminfo(const char *text, uint64_t *total_bytes, uint64_t *used_bytes);
/* Busy share (0..1) of the time between two readings; 0 when no time passed. */
double cpu_utilization(const cpu_times *before, const cpu_times *after);

/* Reads a /proc file into buf (NUL-terminated); false when it cannot. */
bool cpu_read_proc_file(const char *path, char *buf, size_t size);

#endif
