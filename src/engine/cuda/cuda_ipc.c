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

/* Checks that GPU `device` exists and makes it current, leaving the one
 * that was current in *previous for the caller to restore. `what` names the
 * device in messages as the caller's caller knows it ("device_id", "GPU"). */
static inferd_error *enter_device(int device, const char *what, int *previous) {
  int count = 0;
  cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    cudaGetLastError(); /* clear the sticky status for the next caller */
    return err_new(INFERD_ERROR_UNSUPPORTED, "no GPU: cudaGetDeviceCount failed: %s", cudaGetErrorString(rc));
  }
  if (device < 0 || device >= count)
    return err_new(INFERD_ERROR_INVALID_ARG, "%s %d: this machine has %d GPU%s", what, device, count,
                   count == 1 ? "" : "s");
  *previous = 0;
  cudaGetDevice(previous);
  if ((rc = cudaSetDevice(device)) != cudaSuccess)
    return err_new(INFERD_ERROR_UNSUPPORTED, "no GPU: cudaSetDevice(%d) failed: %s", device, cudaGetErrorString(rc));
  return NULL;
}

inferd_error *cuda_ipc_open(int device, const void *handle64, size_t byte_size, void **device_ptr) {
  *device_ptr = NULL;
  int previous;
  cudaError_t rc;
  ERR_TRY(enter_device(device, "device_id", &previous));
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

inferd_error *cuda_ipc_export(int device, size_t size, void **device_ptr, void *handle64) {
  *device_ptr = NULL;
  int previous;
  ERR_TRY(enter_device(device, "GPU", &previous));
  void *ptr = NULL;
  cudaIpcMemHandle_t handle;
  inferd_error *err = NULL;
  cudaError_t rc = cudaMalloc(&ptr, size ? size : 1);
  if (rc != cudaSuccess) {
    cudaGetLastError();
    err = err_new(INFERD_ERROR_NO_MEMORY, "cudaMalloc of %zu bytes failed on GPU %d: %s", size, device,
                  cudaGetErrorString(rc));
  } else if ((rc = cudaIpcGetMemHandle(&handle, ptr)) != cudaSuccess) {
    cudaGetLastError();
    err = err_new(INFERD_ERROR_UNSUPPORTED, "cudaIpcGetMemHandle failed on GPU %d: %s", device, cudaGetErrorString(rc));
    cudaFree(ptr);
  }
  cudaSetDevice(previous);
  if (err) return err;
  memcpy(handle64, &handle, sizeof(handle));
  *device_ptr = ptr;
  return NULL;
}

inferd_error *cuda_ipc_upload(void *device_ptr, const void *src, size_t size) {
  const cudaError_t rc = cudaMemcpy(device_ptr, src, size, cudaMemcpyHostToDevice);
  if (rc == cudaSuccess) return NULL;
  cudaGetLastError();
  return err_new(INFERD_ERROR_INTERNAL, "copying %zu bytes to the GPU failed: %s", size, cudaGetErrorString(rc));
}

void cuda_ipc_free(void *device_ptr) {
  if (device_ptr) cudaFree(device_ptr);
}
