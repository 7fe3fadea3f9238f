/*
 * The shared memory of `inferd perf --shared-memory system|cuda`, as
 * perf_analyzer's flag of that name: the tensors of the calls live in
 * regions registered with the server instead of travelling in the requests.
 * A run has one input region and one output region; inside them every call
 * slot has spans of its own, its inputs (filled once with the run's data)
 * and the room for its outputs, so no two calls in flight share bytes.
 * Two regions rather than two per slot keeps the run within the server's
 * table of regions (256 in inferd) at any concurrency, and the server's
 * lookup of a region by name short.
 *
 * System regions are POSIX shared memory objects (shm_open keys named after
 * this process, so runs side by side do not collide); CUDA regions are GPU
 * memory on GPU 0 exported with a CUDA IPC handle (inferd_cuda_ipc_export),
 * as perf_analyzer's are.
 */
#ifndef INFERD_TOOLS_PERF_SHM_H
#define INFERD_TOOLS_PERF_SHM_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inferd.h"

typedef enum perf_shm_kind {
  PERF_SHM_NONE = 0,
  PERF_SHM_SYSTEM,
  PERF_SHM_CUDA,
} perf_shm_kind;

/* "none", "system", "cuda". Static storage. */
const char *perf_shm_kind_name(perf_shm_kind kind);
/* Parses those names; false when unknown. */
bool perf_shm_kind_from_name(const char *name, perf_shm_kind *kind);

typedef struct perf_shm perf_shm;

/* Where one tensor of one slot lives: the region's name (valid as long as
 * the perf_shm), the offset in it and the bytes. */
typedef struct perf_shm_span {
  const char *region;
  uint64_t offset, byte_size;
} perf_shm_span;

/* Makes the input and output regions of `kind` (SYSTEM or CUDA) for
 * `slots` slots, copies inputs[i] (the bytes of input i) into every slot's
 * span of input i, and registers both regions with the server at `target`
 * (host:port, on a connection of its own). Each slot has output_bytes[j]
 * bytes for output j. On an error nothing is left behind: what was
 * registered is unregistered and the memory freed; a region the server
 * refuses is named, with the server's message. */
inferd_error *perf_shm_create(perf_shm_kind kind, const char *target, int slots, const ProtobufCBinaryData *inputs,
                              size_t n_inputs, const size_t *output_bytes, size_t n_outputs, perf_shm **shm);

perf_shm_span perf_shm_input(const perf_shm *shm, int slot, size_t input);
perf_shm_span perf_shm_output(const perf_shm *shm, int slot, size_t output);

/* Unregisters the regions from the server at `target` (on a connection of
 * its own: the load's may still hold calls given up on) and frees the
 * memory, which happens even when the server cannot be reached. Returns
 * the first error; NULL is no shm and no error. */
inferd_error *perf_shm_destroy(perf_shm *shm, const char *target);

#endif
