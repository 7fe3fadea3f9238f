#include "metrics/cpu_proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cpu_parse_stat(const char *text, cpu_times *out) {
  /* "cpu  user nice system idle iowait irq softirq steal guest guest_nice" */
  if (strncmp(text, "cpu ", 4) != 0) return false;
  const char *p = text + 4;
  uint64_t field[10] = {0};
  int n = 0;
  while (n < 10) {
    char *end;
    while (*p == ' ') p++;
    if (*p < '0' || *p > '9') break;
    field[n++] = strtoull(p, &end, 10);
    p = end;
  }
  if (n < 4) return false;
  uint64_t total = 0;
  for (int i = 0; i < n && i < 8; i++) total += field[i]; /* guest fields are inside user/nice */
  uint64_t idle = field[3] + field[4];
  out->total = total;
  out->busy = total - idle;
  return true;
}

static bool meminfo_field(const char *text, const char *key, uint64_t *bytes) {
  size_t klen = strlen(key);
  const char *line = text;
  while (line && *line) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
      char *end;
      unsigned long long kib = strtoull(line + klen + 1, &end, 10);
      if (end == line + klen + 1) return false;
      *bytes = (uint64_t)kib * 1024;
      return true;
    }
    line = strchr(line, '\n');
    if (line) line++;
  }
  return false;
}

bool cpu_parse_meminfo(const char *text, uint64_t *total_bytes, uint64_t *used_bytes) {
  uint64_t total, available;
  if (!meminfo_field(text, "MemTotal", &total) || !meminfo_field(text, "MemAvailable", &available)) return false;
  *total_bytes = total;
  *used_bytes = available < total ? total - available : 0;
  return true;
}

double cpu_utilization(const cpu_times *before, const cpu_times *after) {
  if (after->total <= before->total || after->busy < before->busy) return 0;
  double u = (double)(after->busy - before->busy) / (double)(after->total - before->total);
  return u > 1 ? 1 : u;
}

bool cpu_read_proc_file(const char *path, char *buf, size_t size) {
  FILE *f = fopen(path, "r");
  if (!f) return false;
  size_t n = fread(buf, 1, size - 1, f);
  fclose(f);
  buf[n] = '\0';
  return n > 0;
}
