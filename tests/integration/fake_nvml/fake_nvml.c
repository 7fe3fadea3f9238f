/*
 * A stand-in for libnvidia-ml.so.1 with one GPU, for the metrics tests on
 * machines without a GPU: test_metrics.py builds it as a shared library
 * named libnvidia-ml.so.1 and puts its folder on LD_LIBRARY_PATH, so inferd
 * loads it with dlopen exactly as it loads the driver's. Only the calls
 * inferd makes are here, with NVML's C signatures (return 0 = success).
 * Energy grows by 1.5 J per reading, so nv_energy_consumption moves.
 */
#include <stdio.h>

typedef struct fake_device *device;
typedef struct {
  unsigned int gpu, memory;
} utilization;
typedef struct {
  unsigned long long total, free, used;
} memory;

static struct fake_device {
  int index;
} gpu0 = {0};
static unsigned long long energy_mj = 1000000;

int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
const char *nvmlErrorString(int code) { return code ? "fake NVML error" : "Success"; }
int nvmlDeviceGetCount_v2(unsigned int *count) {
  *count = 1;
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int index, device *out) {
  if (index != 0) return 2; /* invalid argument */
  *out = &gpu0;
  return 0;
}
int nvmlDeviceGetUUID(device d, char *uuid, unsigned int size) {
  snprintf(uuid, size, "GPU-fake-%d", d->index);
  return 0;
}
int nvmlDeviceGetUtilizationRates(device d, utilization *u) {
  (void)d;
  u->gpu = 55;
  u->memory = 20;
  return 0;
}
int nvmlDeviceGetMemoryInfo(device d, memory *m) {
  (void)d;
  m->total = 16ull << 30;
  m->used = 4ull << 30;
  m->free = m->total - m->used;
  return 0;
}
int nvmlDeviceGetPowerUsage(device d, unsigned int *milliwatts) {
  (void)d;
  *milliwatts = 123456;
  return 0;
}
int nvmlDeviceGetPowerManagementLimit(device d, unsigned int *milliwatts) {
  (void)d;
  *milliwatts = 300000;
  return 0;
}
int nvmlDeviceGetTotalEnergyConsumption(device d, unsigned long long *millijoules) {
  (void)d;
  energy_mj += 1500;
  *millijoules = energy_mj;
  return 0;
}
