/*
 * GPU memory shared between processes with CUDA IPC handles, the CUDA
 * runtime half of the CUDA shared-memory extension: the server opens what a
 * client exported (cuda_ipc_open), and a client (`inferd perf`) exports
 * memory it allocated (cuda_ipc_export). The engine's ipc.c is the only
 * caller; it answers for builds without CUDA.
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

/* Allocates `size` bytes on GPU `device` and writes the 64-byte IPC handle
 * of the allocation to handle64; *device_ptr is freed with cuda_ipc_free.
 * UNSUPPORTED when no GPU is usable, INVALID_ARG for a device that does not
 * exist, NO_MEMORY when the GPU has not the room. The calling thread's
 * current device is left as it was. */
inferd_error *cuda_ipc_export(int device, size_t size, void **device_ptr, void *handle64);
/* Copies `size` host bytes to device memory, returning when it is done. */
inferd_error *cuda_ipc_upload(void *device_ptr, const void *src, size_t size);
void cuda_ipc_free(void *device_ptr);

#endif
