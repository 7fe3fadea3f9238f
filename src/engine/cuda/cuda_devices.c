/*
 * GPU discovery through the CUDA runtime (linked statically, so inferd runs
 * on machines without the toolkit; the runtime finds the driver itself and
 * reports its absence as an error we turn into a sentence).
 */
#include <cuda_runtime_api.h>
#include <stdio.h>

#include "engine/devices.h"

size_t devices_describe_cuda(char *buf, size_t size) {
  int runtime = 0, driver = 0, count = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  cudaError_t err = cudaGetDeviceCount(&count);
  int n = snprintf(buf, size, "CUDA runtime %d.%d", runtime / 1000, (runtime % 1000) / 10);
  if (err != cudaSuccess || count == 0) {
    /* Without a driver the runtime says the driver is too old; say what it means. */
    const char *why = driver == 0 ? "no NVIDIA driver found" : err != cudaSuccess ? cudaGetErrorString(err) : "no devices";
    n += snprintf(buf + n, (size_t)n < size ? size - (size_t)n : 0, ", no GPU (%s)", why);
    return (size_t)n;
  }
  n += snprintf(buf + n, (size_t)n < size ? size - (size_t)n : 0, ", driver %d.%d, %d GPU%s:", driver / 1000,
                (driver % 1000) / 10, count, count > 1 ? "s" : "");
  for (int i = 0; i < count; i++) {
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    n += snprintf(buf + n, (size_t)n < size ? size - (size_t)n : 0, " [%d] %s (sm_%d%d, %.1f GiB)", i, prop.name,
                  prop.major, prop.minor, (double)prop.totalGlobalMem / (1 << 30));
  }
  return (size_t)n;
}
