/*
 * Memory shared with other processes, for the server's shared-memory
 * regions: GPU memory exported with a CUDA IPC handle. This wrapper is what
 * the server calls whether or not the build has CUDA, so nothing above the
 * engine knows the CUDA runtime. The exporting side, for clients, is public
 * (inferd_cuda_ipc_export in inferd.h) and is implemented here too.
 */
#ifndef INFERD_ENGINE_IPC_H
#define INFERD_ENGINE_IPC_H

#include <stddef.h>

#include "inferd.h"

/* Bytes of a CUDA IPC memory handle (cudaIpcMemHandle_t). */
#define ENGINE_CUDA_IPC_HANDLE_SIZE INFERD_CUDA_IPC_HANDLE_SIZE

/* Opens a CUDA IPC handle of `handle_size` bytes (which must be
 * ENGINE_CUDA_IPC_HANDLE_SIZE) on GPU `device`, for byte_size bytes. The
 * device pointer is closed with engine_cuda_ipc_close. UNSUPPORTED when the
 * build has no CUDA or no GPU can be used, INVALID_ARG for a bad handle,
 * device or size; every message says which. */
inferd_error *engine_cuda_ipc_open(int device, const void *handle, size_t handle_size, size_t byte_size,
                                   void **device_ptr);
void engine_cuda_ipc_close(void *device_ptr);

#endif
