/* Usable GPUs and their descriptions, through the public engine API. */
#include "server/gpus.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"

/* Capabilities compared in tenths (8.6 is 86), so 8.6 given on the command
 * line and the device's 8.6 agree whatever the float rounding. */
static int tenths(double cc) { return (int)lround(cc * 10); }

static void append(char *buf, size_t size, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t size, size_t *len, const char *fmt, ...) {
  if (*len >= size) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *len, size - *len, fmt, ap);
  va_end(ap);
  if (n > 0) *len += (size_t)n;
}

void server_gpus_find(double min_cc, server_gpus *g) {
  *g = (server_gpus){.min_compute_capability = min_cc > 0 ? min_cc : SERVER_DEFAULT_MIN_COMPUTE_CAPABILITY};
  g->visible = inferd_device_count(INFERD_DEVICE_CUDA);
  if (g->visible < 0) g->visible = 0;
  g->ordinals = mem_zalloc((size_t)(g->visible + 1) * sizeof(int));
  char below[512] = "";
  size_t below_len = 0;
  for (int i = 0; i < g->visible; i++) {
    int major, minor;
    if (inferd_device_compute_capability(i, &major, &minor) && major * 10 + minor < tenths(g->min_compute_capability)) {
      append(below, sizeof(below), &below_len, "%sGPU %d (%d.%d)", below_len ? ", " : "", i, major, minor);
      log_warn("GPU %d has compute capability %d.%d, below the minimum %.1f: it is not used", i, major, minor,
               g->min_compute_capability);
      continue;
    }
    g->ordinals[g->count++] = i;
  }
  char text[1024];
  size_t len = 0;
  if (g->visible == 0) {
    char why[512];
    inferd_device_describe((inferd_device){.kind = INFERD_DEVICE_CUDA, .ordinal = -1}, why, sizeof(why));
    append(text, sizeof(text), &len, "no GPU is visible (gpu: %s)", why);
  } else if (g->count == 0) {
    append(text, sizeof(text), &len, "no GPU has compute capability >= %.1f (%s)", g->min_compute_capability, below);
  } else {
    append(text, sizeof(text), &len, "usable GPUs%s:", below_len ? " (compute capability >= the minimum)" : "");
    for (int i = 0; i < g->count; i++) append(text, sizeof(text), &len, "%s %d", i ? "," : "", g->ordinals[i]);
    if (below_len)
      append(text, sizeof(text), &len, "; below the minimum %.1f: %s", g->min_compute_capability, below);
  }
  g->description = mem_strdup(text);
}

void server_gpus_free(server_gpus *g) {
  free(g->ordinals);
  free(g->description);
  *g = (server_gpus){0};
}

model_gpu_set server_gpus_set(const server_gpus *g) {
  return (model_gpu_set){.ordinals = g->ordinals, .count = g->count, .description = g->description};
}

static bool is_usable(const server_gpus *g, int ordinal) {
  for (int i = 0; i < g->count; i++)
    if (g->ordinals[i] == ordinal) return true;
  return false;
}

json_t *server_gpus_devices_json(const server_gpus *g) {
  json_t *devices = json_array();
  char text[512];
  inferd_device_describe((inferd_device){.kind = INFERD_DEVICE_CPU}, text, sizeof(text));
  json_array_append_new(devices, json_pack("{s:s, s:s, s:s}", "name", "cpu", "kind", "CPU", "description", text));
  for (int i = 0; i < g->visible; i++) {
    char name[32], cc[32] = "";
    snprintf(name, sizeof(name), "cuda:%d", i);
    inferd_device_describe((inferd_device){.kind = INFERD_DEVICE_CUDA, .ordinal = i}, text, sizeof(text));
    int major, minor;
    if (inferd_device_compute_capability(i, &major, &minor)) snprintf(cc, sizeof(cc), "%d.%d", major, minor);
    json_array_append_new(devices, json_pack("{s:s, s:s, s:s, s:s, s:b}", "name", name, "kind", "GPU", "description",
                                             text, "compute_capability", cc, "usable", is_usable(g, i)));
  }
  return devices;
}
