/*
 * GPU memory another process exported with cudaIpcGetMemHandle, opened in
 * this one: the CUDA runtime half of the CUDA shared-memory extension. The
 * engine's ipc.c is the only caller; it answers for builds without CUDA.
 */
#ifndef INFERD_ENGINE_CUDA_CUDA_IPC_H
#define INFERD_ENGINE_CUDA_CUDA_IPC_H

#include <stddef.h>

#include "inferd.h"

/* Bytes of a cudaIpcMemHandle_t. */
#define CUDA_IPC_HANDLE_SIZE 64

/* Opens the 64-byte handle on GPU `device` and checks that the allocation
 * behind it holds at least byte_size bytes; *device_ptr is the start of the
 * exporter's allocation, closed with cuda_ipc_close. UNSUPPORTED when no GPU
 * is usable (with CUDA's message), INVALID_ARG for a device that does not
 * exist, a handle CUDA refuses or a size larger than the allocation. The
 * calling thread's current device is left as it was. */
inferd_error *cuda_ipc_open(int device, const void *handle64, size_t byte_size, void **device_ptr);
void cuda_ipc_close(void *device_ptr);

#endif
