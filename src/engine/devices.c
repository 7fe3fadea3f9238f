/*
 * Devices through the backend table: names parsed, counted and described by
 * whichever backend serves that kind, so nothing here knows a device
 * library.
 */
#include "inferd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"

const char *inferd_precision_name(inferd_precision p) {
  switch (p) {
    case INFERD_PRECISION_FP32: return "fp32";
    case INFERD_PRECISION_TF32: return "tf32";
    case INFERD_PRECISION_FP16: return "fp16";
    case INFERD_PRECISION_BF16: return "bf16";
    case INFERD_PRECISION_INT8: return "int8";
    default: return "default";
  }
}

bool inferd_precision_from_name(const char *name, inferd_precision *out) {
  static const char *const names[] = {"default", "fp32", "tf32", "fp16", "bf16", "int8"};
  for (int i = 0; name && i < (int)(sizeof(names) / sizeof(names[0])); i++)
    if (strcmp(name, names[i]) == 0) {
      *out = (inferd_precision)i;
      return true;
    }
  return false;
}

bool inferd_device_from_name(const char *name, inferd_device *out) {
  if (!name) return false;
  if (strcmp(name, "cpu") == 0) {
    *out = (inferd_device){.kind = INFERD_DEVICE_CPU};
    return true;
  }
  if (strncmp(name, "cuda", 4) != 0 && strncmp(name, "gpu", 3) != 0) return false;
  const char *rest = name + (name[0] == 'c' ? 4 : 3);
  long ordinal = 0;
  if (*rest == ':') {
    char *end;
    if (rest[1] < '0' || rest[1] > '9') return false;
    ordinal = strtol(rest + 1, &end, 10);
    if (*end || ordinal > 1023) return false;
  } else if (*rest) {
    return false;
  }
  *out = (inferd_device){.kind = INFERD_DEVICE_CUDA, .ordinal = (int)ordinal};
  return true;
}

int inferd_device_count(inferd_device_kind kind) {
  const inferd_backend_ops *b = backend_for_device(kind);
  if (!b) return 0;
  return b->device_count ? b->device_count() : 1;
}

size_t inferd_device_describe(inferd_device device, char *buf, size_t size) {
  const inferd_backend_ops *b = backend_for_device(device.kind);
  if (!b || !b->describe) {
    int n = snprintf(buf, size, "%s", device.kind == INFERD_DEVICE_CUDA ? "not built (no CUDA toolkit)" : "none");
    return n > 0 ? (size_t)n : 0;
  }
  return b->describe(device.ordinal, buf, size);
}

bool inferd_device_compute_capability(int ordinal, int *major, int *minor) {
  const inferd_backend_ops *b = backend_for_device(INFERD_DEVICE_CUDA);
  if (!b || !b->compute_capability || ordinal < 0 || ordinal >= inferd_device_count(INFERD_DEVICE_CUDA)) return false;
  return b->compute_capability(ordinal, major, minor);
}

const char *inferd_build_info(void) {
  static char info[2048];
  if (info[0]) return info;
  size_t n = (size_t)snprintf(info, sizeof(info), "inferd %s\ncpu: ", inferd_version());
  n += inferd_device_describe((inferd_device){.kind = INFERD_DEVICE_CPU}, info + n, sizeof(info) - n);
  if (n < sizeof(info)) n += (size_t)snprintf(info + n, sizeof(info) - n, "\ngpu: ");
  if (n < sizeof(info))
    n += inferd_device_describe((inferd_device){.kind = INFERD_DEVICE_CUDA, .ordinal = -1}, info + n,
                                sizeof(info) - n);
  return info;
}
