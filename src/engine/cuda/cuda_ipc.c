/*
 * See cuda_ipc.h. The allocation's size comes from the driver's
 * cuMemGetAddressRange, reached through the runtime's entry-point query so
 * that the build links only the static runtime, as the rest of the CUDA
 * code does.
 */
#include "engine/cuda/cuda_ipc.h"

#include <cuda_runtime_api.h>
#include <stdint.h>
#include <string.h>

#include "base/error.h"

_Static_assert(sizeof(cudaIpcMemHandle_t) == CUDA_IPC_HANDLE_SIZE, "cudaIpcMemHandle_t is 64 bytes");

/* CUresult cuMemGetAddressRange(CUdeviceptr *base, size_t *size, CUdeviceptr ptr), in plain C types. */
typedef int (*address_range_fn)(unsigned long long *base, size_t *size, unsigned long long ptr);

static address_range_fn address_range(void) {
  void *fn = NULL;
  enum cudaDriverEntryPointQueryResult found;
  if (cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &fn, 3020, cudaEnableDefault, &found) != cudaSuccess ||
      found != cudaDriverEntryPointSuccess)
    return NULL;
  return (address_range_fn)fn;
}

inferd_error *cuda_ipc_open(int device, const void *handle64, size_t byte_size, void **device_ptr) {
  *device_ptr = NULL;
  int count = 0;
  cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    cudaGetLastError(); /* clear the sticky status for the next caller */
    return err_new(INFERD_ERROR_UNSUPPORTED, "no GPU: cudaGetDeviceCount failed: %s", cudaGetErrorString(rc));
  }
  if (device < 0 || device >= count)
    return err_new(INFERD_ERROR_INVALID_ARG, "device_id %d: this machine has %d GPU%s", device, count,
                   count == 1 ? "" : "s");
  int previous = 0;
  cudaGetDevice(&previous);
  if ((rc = cudaSetDevice(device)) != cudaSuccess)
    return err_new(INFERD_ERROR_UNSUPPORTED, "no GPU: cudaSetDevice(%d) failed: %s", device, cudaGetErrorString(rc));
  cudaIpcMemHandle_t handle;
  memcpy(&handle, handle64, sizeof(handle));
  void *ptr = NULL;
  inferd_error *err = NULL;
  rc = cudaIpcOpenMemHandle(&ptr, handle, cudaIpcMemLazyEnablePeerAccess);
  if (rc != cudaSuccess) {
    cudaGetLastError();
    err = err_new(INFERD_ERROR_INVALID_ARG, "cudaIpcOpenMemHandle failed on GPU %d: %s", device,
                  cudaGetErrorString(rc));
  } else {
    address_range_fn range = address_range();
    unsigned long long base = 0;
    size_t size = 0;
    if (range && range(&base, &size, (unsigned long long)(uintptr_t)ptr) == 0) {
      const size_t usable = size - (size_t)((uintptr_t)ptr - (uintptr_t)base);
      if (byte_size > usable)
        err = err_new(INFERD_ERROR_INVALID_ARG,
                      "byte_size %zu is larger than the %zu bytes of the GPU allocation the handle names", byte_size,
                      usable);
    }
    if (err) cudaIpcCloseMemHandle(ptr);
  }
  cudaSetDevice(previous);
  if (!err) *device_ptr = ptr;
  return err;
}

void cuda_ipc_close(void *device_ptr) {
  if (device_ptr) cudaIpcCloseMemHandle(device_ptr);
}
