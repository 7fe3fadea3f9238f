/* See ipc.h. */
#include "engine/ipc.h"

#include "base/error.h"

#ifdef INFERD_HAVE_CUDA_IPC
#include "engine/cuda/cuda_ipc.h"
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
  return err_new(INFERD_ERROR_UNSUPPORTED, "this inferd was built without CUDA");
#endif
}

void engine_cuda_ipc_close(void *device_ptr) {
#ifdef INFERD_HAVE_CUDA_IPC
  cuda_ipc_close(device_ptr);
#else
  (void)device_ptr;
#endif
}
