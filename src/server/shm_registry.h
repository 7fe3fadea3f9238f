/*
 * Shared-memory regions registered by clients (Triton's system and CUDA
 * shared-memory extensions): a name for a span of a POSIX shared memory
 * object mapped into the server, or of GPU memory another process exported
 * with a CUDA IPC handle. Requests name a region, an offset and a size for
 * an input to read or an output to write.
 *
 * Names are one namespace over both kinds, as in Triton: a request does not
 * say which kind a region is. A region is reference-counted: the registry
 * holds one reference and every request using it holds one, so an
 * unregister while inferences use the region only removes the name; the
 * memory is unmapped when the last of them is done.
 *
 * Thread-safe: one mutex guards the table, held only to look up, add or
 * remove; mapping and unmapping happen outside it.
 */
#ifndef INFERD_SERVER_SHM_REGISTRY_H
#define INFERD_SERVER_SHM_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inferd.h"

enum { SHM_REGISTRY_DEFAULT_MAX_REGIONS = 256, SHM_NAME_MAX = 255 };

typedef struct shm_registry shm_registry;
typedef struct shm_region shm_region;

shm_registry *shm_registry_new(int max_regions);
/* Drops the registry's references; regions still used by requests stay
 * mapped until those release them. */
void shm_registry_delete(shm_registry *reg);

/* Checks a region name: 1 to SHM_NAME_MAX printable ASCII characters, no
 * '/' (names travel as one URL path segment). */
inferd_error *shm_name_check(const char *name);

/* Maps bytes [offset, offset + byte_size) of POSIX shared memory object
 * `key` (as shm_open names it) read-write as region `name`. The range must
 * lie within the object's size. */
inferd_error *shm_registry_add_system(shm_registry *reg, const char *name, const char *key, uint64_t offset,
                                      uint64_t byte_size);
/* Opens a CUDA IPC handle (handle_size bytes, 64 expected) on GPU
 * device_id as region `name` of byte_size bytes. */
inferd_error *shm_registry_add_cuda(shm_registry *reg, const char *name, const void *handle, size_t handle_size,
                                    int64_t device_id, uint64_t byte_size);
/* Removes region `name` of `kind`, or every region of that kind when name
 * is NULL or empty. A name that is not registered (or is of the other
 * kind) is no error, as in Triton. */
void shm_registry_remove(shm_registry *reg, inferd_shm_kind kind, const char *name);
/* The status of `kind`'s regions (name NULL or empty: all of them) as a
 * JSON array of {name, key, offset, byte_size} (system) or {name,
 * device_id, byte_size} (CUDA); *json is malloc'd. NOT_FOUND when a named
 * region of that kind is not registered. */
inferd_error *shm_registry_status(shm_registry *reg, inferd_shm_kind kind, const char *name, char **json);
int shm_registry_count(shm_registry *reg);

/* Region `name` with a reference taken for the caller (release it with
 * shm_region_release); INVALID_ARG naming it when unknown. */
inferd_error *shm_registry_acquire(shm_registry *reg, const char *name, shm_region **out);
void shm_region_release(shm_region *region);

/* The address of bytes [offset, offset + size) of the region (host memory
 * for a system region, device memory for a CUDA one), or INVALID_ARG when
 * they do not lie within it; `what` names the tensor in the message, e.g.
 * "input 'INPUT0'". */
inferd_error *shm_region_span(const shm_region *region, const char *what, uint64_t offset, uint64_t size,
                              void **ptr);
const char *shm_region_name(const shm_region *region);
inferd_shm_kind shm_region_kind(const shm_region *region);
int shm_region_device(const shm_region *region); /* CUDA: the GPU's ordinal; 0 for system regions */
uint64_t shm_region_byte_size(const shm_region *region);

#endif
