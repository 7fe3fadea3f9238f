/*
 * GPU figures from NVML, the driver's management library, loaded with dlopen
 * so that the binary starts (and serves without GPU metrics) where there is
 * no driver. Every NVML call goes through a table of function pointers:
 * gpu_monitor_open fills it from libnvidia-ml.so.1, and tests hand it a fake
 * one. The types below mirror NVML's C ABI (nvmlReturn_t is an int-sized
 * enum, 0 meaning success; devices are opaque pointers).
 */
#ifndef INFERD_METRICS_GPU_NVML_H
#define INFERD_METRICS_GPU_NVML_H

#include <stdbool.h>
#include <stdint.h>

#include "inferd.h"

typedef int nvml_return;
enum { NVML_OK = 0, GPU_UUID_SIZE = 96 };
typedef struct nvml_device_opaque *nvml_device;
typedef struct nvml_utilization {
  unsigned int gpu, memory; /* percent */
} nvml_utilization;
typedef struct nvml_memory {
  unsigned long long total, free, used; /* bytes */
} nvml_memory;

typedef struct nvml_api {
  nvml_return (*init)(void);                                 /* nvmlInit_v2 */
  nvml_return (*shutdown)(void);                             /* nvmlShutdown */
  nvml_return (*device_count)(unsigned int *count);          /* nvmlDeviceGetCount_v2 */
  nvml_return (*device_by_index)(unsigned int index, nvml_device *device); /* nvmlDeviceGetHandleByIndex_v2 */
  nvml_return (*device_uuid)(nvml_device device, char *uuid, unsigned int size); /* nvmlDeviceGetUUID */
  nvml_return (*utilization)(nvml_device device, nvml_utilization *out);    /* nvmlDeviceGetUtilizationRates */
  nvml_return (*memory)(nvml_device device, nvml_memory *out);              /* nvmlDeviceGetMemoryInfo */
  nvml_return (*power_usage)(nvml_device device, unsigned int *milliwatts); /* nvmlDeviceGetPowerUsage */
  nvml_return (*power_limit)(nvml_device device, unsigned int *milliwatts); /* nvmlDeviceGetPowerManagementLimit */
  nvml_return (*total_energy)(nvml_device device, unsigned long long *millijoules); /* nvmlDeviceGetTotalEnergyConsumption */
  const char *(*error_string)(nvml_return code);             /* nvmlErrorString */
} nvml_api;

/* One GPU's figures at one poll. A figure the device does not report (a
 * call that failed) has its flag false and is left out of the exposition. */
typedef struct gpu_sample {
  char uuid[GPU_UUID_SIZE];
  bool has_utilization, has_memory, has_power, has_power_limit, has_energy;
  double utilization; /* 0..1 */
  uint64_t memory_total, memory_used;
  double power_watts, power_limit_watts;
  double energy_joules; /* since the monitor opened */
} gpu_sample;

typedef struct gpu_monitor gpu_monitor;

/* Opens NVML through `api`, or, when api is NULL, through
 * libnvidia-ml.so.1. An error (no library, a missing symbol, init failing,
 * no device) says why there are no GPU metrics. */
inferd_error *gpu_monitor_open(const nvml_api *api, gpu_monitor **out);
int gpu_monitor_count(const gpu_monitor *monitor);
/* Fills samples[0 .. count) with each device's figures now. */
void gpu_monitor_poll(gpu_monitor *monitor, gpu_sample *samples);
/* Shuts NVML down (and unloads it when it was loaded here). */
void gpu_monitor_close(gpu_monitor *monitor);

#endif
