/* See ipc.h. */
#include "engine/ipc.h"

#include "base/error.h"

#ifdef INFERD_HAVE_CUDA_IPC
#include "engine/cuda/cuda_ipc.h"
#endif

/* Without CUDA in the build every call is refused the same way. */
#ifndef INFERD_HAVE_CUDA_IPC
static inferd_error *built_without_cuda(void) {
  return err_new(INFERD_ERROR_UNSUPPORTED, "this inferd was built without CUDA");
}
#endif

inferd_error *engine_cuda_ipc_open(int device, const void *handle, size_t handle_size, size_t byte_size,
                                   void **device_ptr) {
  *device_ptr = NULL;
  if (handle_size != ENGINE_CUDA_IPC_HANDLE_SIZE)
    return err_new(INFERD_ERROR_INVALID_ARG, "a CUDA IPC handle is %d bytes, %zu given", ENGINE_CUDA_IPC_HANDLE_SIZE,
                   handle_size);
#ifdef INFERD_HAVE_CUDA_IPC
  return cuda_ipc_open(device, handle, byte_size, device_ptr);
#else
  (void)device;
  (void)handle;
  (void)byte_size;
  return built_without_cuda();
#endif
}

void engine_cuda_ipc_close(void *device_ptr) {
#ifdef INFERD_HAVE_CUDA_IPC
  cuda_ipc_close(device_ptr);
#else
  (void)device_ptr;
#endif
}

inferd_error *inferd_cuda_ipc_export(int device, size_t size, void **device_ptr, void *handle) {
  *device_ptr = NULL;
#ifdef INFERD_HAVE_CUDA_IPC
  return cuda_ipc_export(device, size, device_ptr, handle);
#else
  (void)device;
  (void)size;
  (void)handle;
  return built_without_cuda();
#endif
}

inferd_error *inferd_cuda_ipc_upload(void *device_ptr, const void *src, size_t size) {
#ifdef INFERD_HAVE_CUDA_IPC
  return cuda_ipc_upload(device_ptr, src, size);
#else
  (void)device_ptr;
  (void)src;
  (void)size;
  return built_without_cuda();
#endif
}

void inferd_cuda_ipc_free(void *device_ptr) {
#ifdef INFERD_HAVE_CUDA_IPC
  cuda_ipc_free(device_ptr);
#else
  (void)device_ptr;
#endif
}
