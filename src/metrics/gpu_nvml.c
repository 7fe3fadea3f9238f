#include "metrics/gpu_nvml.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/mem.h"

struct gpu_monitor {
  nvml_api api;
  void *library; /* from dlopen; NULL when the api was given */
  int count;
  nvml_device *devices;
  char (*uuids)[GPU_UUID_SIZE];
  unsigned long long *energy_start_mj; /* per device; has_energy_start says it was read */
  bool *has_energy_start;
};

/* dlsym gives an object pointer; C has no conversion to a function pointer,
 * so the address is copied into the slot, which has the same size on every
 * platform that has dlopen. */
static bool load_symbol(void *library, const char *name, void *slot, size_t slot_size) {
  void *address = dlsym(library, name);
  if (!address || slot_size != sizeof(address)) return false;
  memcpy(slot, &address, sizeof(address));
  return true;
}

static inferd_error *load_library(nvml_api *api, void **library) {
  static const char path[] = "libnvidia-ml.so.1";
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) return err_new(INFERD_ERROR_UNAVAILABLE, "cannot load %s (%s)", path, dlerror());
  const struct {
    const char *name;
    void *slot;
    size_t size;
  } symbols[] = {
      {"nvmlInit_v2", &api->init, sizeof(api->init)},
      {"nvmlShutdown", &api->shutdown, sizeof(api->shutdown)},
      {"nvmlDeviceGetCount_v2", &api->device_count, sizeof(api->device_count)},
      {"nvmlDeviceGetHandleByIndex_v2", &api->device_by_index, sizeof(api->device_by_index)},
      {"nvmlDeviceGetUUID", &api->device_uuid, sizeof(api->device_uuid)},
      {"nvmlDeviceGetUtilizationRates", &api->utilization, sizeof(api->utilization)},
      {"nvmlDeviceGetMemoryInfo", &api->memory, sizeof(api->memory)},
      {"nvmlDeviceGetPowerUsage", &api->power_usage, sizeof(api->power_usage)},
      {"nvmlDeviceGetPowerManagementLimit", &api->power_limit, sizeof(api->power_limit)},
      {"nvmlDeviceGetTotalEnergyConsumption", &api->total_energy, sizeof(api->total_energy)},
      {"nvmlErrorString", &api->error_string, sizeof(api->error_string)},
  };
  for (size_t i = 0; i < sizeof(symbols) / sizeof(symbols[0]); i++)
    if (!load_symbol(lib, symbols[i].name, symbols[i].slot, symbols[i].size)) {
      dlclose(lib);
      return err_new(INFERD_ERROR_UNAVAILABLE, "%s has no %s", path, symbols[i].name);
    }
  *library = lib;
  return NULL;
}

static const char *nvml_message(const nvml_api *api, nvml_return code) {
  const char *text = api->error_string ? api->error_string(code) : NULL;
  return text ? text : "unknown NVML error";
}

void gpu_monitor_close(gpu_monitor *m) {
  if (!m) return;
  if (m->api.shutdown) m->api.shutdown();
  if (m->library) dlclose(m->library);
  free(m->devices);
  free(m->uuids);
  free(m->energy_start_mj);
  free(m->has_energy_start);
  free(m);
}

inferd_error *gpu_monitor_open(const nvml_api *api, gpu_monitor **out) {
  *out = NULL;
  gpu_monitor *m = mem_zalloc(sizeof(*m));
  if (api) {
    m->api = *api;
  } else {
    inferd_error *e = load_library(&m->api, &m->library);
    if (e) {
      free(m);
      return e;
    }
  }
  nvml_return rc = m->api.init();
  if (rc != NVML_OK) {
    inferd_error *e = err_new(INFERD_ERROR_UNAVAILABLE, "NVML did not start: %s", nvml_message(&m->api, rc));
    m->api.shutdown = NULL; /* nothing to shut down */
    gpu_monitor_close(m);
    return e;
  }
  unsigned int count = 0;
  rc = m->api.device_count(&count);
  if (rc != NVML_OK || count == 0) {
    inferd_error *e = rc != NVML_OK ? err_new(INFERD_ERROR_UNAVAILABLE, "NVML cannot count GPUs: %s", nvml_message(&m->api, rc))
                                    : err_new(INFERD_ERROR_UNAVAILABLE, "NVML found no GPU");
    gpu_monitor_close(m);
    return e;
  }
  m->devices = mem_zalloc(count * sizeof(*m->devices));
  m->uuids = mem_zalloc(count * sizeof(*m->uuids));
  m->energy_start_mj = mem_zalloc(count * sizeof(*m->energy_start_mj));
  m->has_energy_start = mem_zalloc(count * sizeof(*m->has_energy_start));
  for (unsigned int i = 0; i < count; i++) {
    nvml_device d;
    rc = m->api.device_by_index(i, &d);
    if (rc != NVML_OK) continue; /* e.g. a GPU this process may not see */
    int k = m->count++;
    m->devices[k] = d;
    if (m->api.device_uuid(d, m->uuids[k], GPU_UUID_SIZE) != NVML_OK) snprintf(m->uuids[k], GPU_UUID_SIZE, "GPU-%u", i);
    m->uuids[k][GPU_UUID_SIZE - 1] = '\0';
    m->has_energy_start[k] = m->api.total_energy(d, &m->energy_start_mj[k]) == NVML_OK;
  }
  if (m->count == 0) {
    gpu_monitor_close(m);
    return err_new(INFERD_ERROR_UNAVAILABLE, "NVML lists %u GPUs but none can be opened", count);
  }
  *out = m;
  return NULL;
}

int gpu_monitor_count(const gpu_monitor *m) { return m->count; }

void gpu_monitor_poll(gpu_monitor *m, gpu_sample *samples) {
  for (int k = 0; k < m->count; k++) {
    nvml_device d = m->devices[k];
    gpu_sample *s = &samples[k];
    *s = (gpu_sample){0};
    memcpy(s->uuid, m->uuids[k], GPU_UUID_SIZE);
    nvml_utilization u;
    if (m->api.utilization(d, &u) == NVML_OK) {
      s->has_utilization = true;
      s->utilization = u.gpu / 100.0;
    }
    nvml_memory mem;
    if (m->api.memory(d, &mem) == NVML_OK) {
      s->has_memory = true;
      s->memory_total = mem.total;
      s->memory_used = mem.used;
    }
    unsigned int mw;
    if (m->api.power_usage(d, &mw) == NVML_OK) {
      s->has_power = true;
      s->power_watts = mw / 1000.0;
    }
    if (m->api.power_limit(d, &mw) == NVML_OK) {
      s->has_power_limit = true;
      s->power_limit_watts = mw / 1000.0;
    }
    unsigned long long mj;
    if (m->has_energy_start[k] && m->api.total_energy(d, &mj) == NVML_OK && mj >= m->energy_start_mj[k]) {
      s->has_energy = true;
      s->energy_joules = (double)(mj - m->energy_start_mj[k]) / 1000.0;
    }
  }
}
