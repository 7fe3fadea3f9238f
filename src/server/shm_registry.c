/*
 * See shm_registry.h. A system region maps only the pages its range
 * touches: mmap needs a page-aligned file offset, so the mapping starts at
 * the page holding `offset` and the region's base is `offset`'s byte in it.
 */
#include "server/shm_registry.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/mem.h"
#include "engine/ipc.h"
#include "server/server.h"

struct shm_region {
  atomic_int refs;
  inferd_shm_kind kind;
  char *name;
  char *key;         /* system: the shared memory object's name */
  uint64_t offset;   /* system: where the region starts in the object */
  uint64_t byte_size;
  int device;        /* CUDA: the GPU */
  void *base;        /* the region's first byte (host or device address) */
  void *mapping;     /* system: what mmap returned, and its length */
  size_t mapping_size;
};

struct shm_registry {
  pthread_mutex_t lock;
  shm_region **regions;
  int count, max;
};

shm_registry *shm_registry_new(int max_regions) {
  shm_registry *reg = mem_zalloc(sizeof(*reg));
  pthread_mutex_init(&reg->lock, NULL);
  reg->max = max_regions > 0 ? max_regions : SHM_REGISTRY_DEFAULT_MAX_REGIONS;
  reg->regions = mem_zalloc((size_t)reg->max * sizeof(*reg->regions));
  return reg;
}

static void region_free(shm_region *r) {
  if (r->kind == INFERD_SHM_SYSTEM && r->mapping) munmap(r->mapping, r->mapping_size);
  if (r->kind == INFERD_SHM_CUDA && r->base) engine_cuda_ipc_close(r->base);
  free(r->name);
  free(r->key);
  free(r);
}

void shm_region_release(shm_region *r) {
  if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) region_free(r);
}

void shm_registry_delete(shm_registry *reg) {
  if (!reg) return;
  for (int i = 0; i < reg->count; i++) shm_region_release(reg->regions[i]);
  free(reg->regions);
  pthread_mutex_destroy(&reg->lock);
  free(reg);
}

inferd_error *shm_name_check(const char *name) {
  if (!name || !*name) return err_new(INFERD_ERROR_INVALID_ARG, "a shared memory region needs a name");
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++, n++) {
    if (n >= SHM_NAME_MAX)
      return err_new(INFERD_ERROR_INVALID_ARG, "shared memory region name '%.40s...' is longer than %d characters",
                     name, SHM_NAME_MAX);
    if (*p < 0x21 || *p > 0x7e || *p == '/')
      return err_new(INFERD_ERROR_INVALID_ARG,
                     "shared memory region name '%s' has character 0x%02x at %zu; names are printable ASCII "
                     "without spaces or '/'",
                     name, *p, n);
  }
  return NULL;
}

/* A POSIX shared memory object name: an optional leading '/', then 1 to
 * NAME_MAX printable characters without '/'. */
static inferd_error *key_check(const char *key) {
  if (!key || !*key) return err_new(INFERD_ERROR_INVALID_ARG, "a system shared memory region needs a key");
  const char *p = key[0] == '/' ? key + 1 : key;
  size_t n = strlen(p);
  if (n == 0 || n > NAME_MAX)
    return err_new(INFERD_ERROR_INVALID_ARG, "shared memory key '%.64s' must have 1 to %d characters after its '/'",
                   key, NAME_MAX);
  for (const unsigned char *c = (const unsigned char *)p; *c; c++)
    if (*c < 0x20 || *c == 0x7f || *c == '/')
      return err_new(INFERD_ERROR_INVALID_ARG,
                     "shared memory key '%s': a key is '/' and a name without further '/' or control characters",
                     key);
  return NULL;
}

static int find(const shm_registry *reg, const char *name) {
  for (int i = 0; i < reg->count; i++)
    if (strcmp(reg->regions[i]->name, name) == 0) return i;
  return -1;
}

/* Takes `r` into the table, or frees it and says why not. */
static inferd_error *insert(shm_registry *reg, shm_region *r) {
  inferd_error *err = NULL;
  pthread_mutex_lock(&reg->lock);
  if (find(reg, r->name) >= 0)
    err = err_new(INFERD_ERROR_ALREADY_EXISTS, "shared memory region '%s' is already registered", r->name);
  else if (reg->count >= reg->max)
    err = err_new(INFERD_ERROR_TOO_LARGE,
                  "cannot register shared memory region '%s': %d regions are registered, the most allowed; "
                  "unregister some first",
                  r->name, reg->max);
  else
    reg->regions[reg->count++] = r;
  pthread_mutex_unlock(&reg->lock);
  if (err) region_free(r);
  return err;
}

static bool name_taken(shm_registry *reg, const char *name) {
  pthread_mutex_lock(&reg->lock);
  const bool taken = find(reg, name) >= 0;
  pthread_mutex_unlock(&reg->lock);
  return taken;
}

inferd_error *shm_registry_add_system(shm_registry *reg, const char *name, const char *key, uint64_t offset,
                                      uint64_t byte_size) {
  ERR_TRY(shm_name_check(name));
  ERR_TRY(key_check(key));
  /* Checked before mapping so a duplicate costs nothing; insert checks
   * again under the lock for a register racing this one. */
  if (name_taken(reg, name))
    return err_new(INFERD_ERROR_ALREADY_EXISTS, "shared memory region '%s' is already registered", name);
  if (byte_size == 0) return err_new(INFERD_ERROR_INVALID_ARG, "shared memory region '%s': byte_size is 0", name);
  const int fd = shm_open(key, O_RDWR, 0);
  if (fd < 0)
    return err_new(INFERD_ERROR_INVALID_ARG, "shared memory region '%s': cannot open key '%s': %s", name, key,
                   strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    close(fd);
    return err_new(INFERD_ERROR_INVALID_ARG, "shared memory region '%s': cannot stat key '%s': %s", name, key,
                   strerror(e));
  }
  const uint64_t object_size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
  if (offset > object_size || byte_size > object_size - offset) {
    close(fd);
    return err_new(INFERD_ERROR_INVALID_ARG,
                   "shared memory region '%s': offset %llu + byte_size %llu is beyond the %llu bytes of key '%s'", name,
                   (unsigned long long)offset, (unsigned long long)byte_size, (unsigned long long)object_size, key);
  }
  const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  const uint64_t map_offset = offset - offset % page;
  const uint64_t map_size = offset - map_offset + byte_size; /* <= object_size: no overflow */
  if (map_size > SIZE_MAX) {
    close(fd);
    return err_new(INFERD_ERROR_INVALID_ARG, "shared memory region '%s' is too large to map", name);
  }
  void *mapping = mmap(NULL, (size_t)map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)map_offset);
  const int map_errno = errno;
  close(fd); /* the mapping keeps the object */
  if (mapping == MAP_FAILED)
    return err_new(INFERD_ERROR_INVALID_ARG, "shared memory region '%s': cannot map key '%s': %s", name, key,
                   strerror(map_errno));
  shm_region *r = mem_zalloc(sizeof(*r));
  atomic_init(&r->refs, 1);
  r->kind = INFERD_SHM_SYSTEM;
  r->name = mem_strdup(name);
  r->key = mem_strdup(key);
  r->offset = offset;
  r->byte_size = byte_size;
  r->mapping = mapping;
  r->mapping_size = (size_t)map_size;
  r->base = (char *)mapping + (offset - map_offset);
  return insert(reg, r);
}

inferd_error *shm_registry_add_cuda(shm_registry *reg, const char *name, const void *handle, size_t handle_size,
                                    int64_t device_id, uint64_t byte_size) {
  ERR_TRY(shm_name_check(name));
  if (name_taken(reg, name))
    return err_new(INFERD_ERROR_ALREADY_EXISTS, "shared memory region '%s' is already registered", name);
  if (device_id < 0 || device_id > 1023)
    return err_new(INFERD_ERROR_INVALID_ARG, "CUDA shared memory region '%s': device_id %lld is not a GPU index",
                   name, (long long)device_id);
  if (byte_size == 0)
    return err_new(INFERD_ERROR_INVALID_ARG, "CUDA shared memory region '%s': byte_size is 0", name);
  if (byte_size > SIZE_MAX)
    return err_new(INFERD_ERROR_INVALID_ARG, "CUDA shared memory region '%s' is too large", name);
  void *ptr = NULL;
  inferd_error *err = engine_cuda_ipc_open((int)device_id, handle, handle_size, (size_t)byte_size, &ptr);
  if (err) return err_wrap(err, "CUDA shared memory region '%s'", name);
  shm_region *r = mem_zalloc(sizeof(*r));
  atomic_init(&r->refs, 1);
  r->kind = INFERD_SHM_CUDA;
  r->name = mem_strdup(name);
  r->byte_size = byte_size;
  r->device = (int)device_id;
  r->base = ptr;
  return insert(reg, r);
}

void shm_registry_remove(shm_registry *reg, inferd_shm_kind kind, const char *name) {
  const bool all = !name || !*name;
  /* Taken out under the lock, released after it: the last release unmaps. */
  shm_region **removed = mem_zalloc((size_t)reg->max * sizeof(*removed));
  int n_removed = 0;
  pthread_mutex_lock(&reg->lock);
  int kept = 0;
  for (int i = 0; i < reg->count; i++) {
    shm_region *r = reg->regions[i];
    if (r->kind == kind && (all || strcmp(r->name, name) == 0))
      removed[n_removed++] = r;
    else
      reg->regions[kept++] = r;
  }
  reg->count = kept;
  pthread_mutex_unlock(&reg->lock);
  for (int i = 0; i < n_removed; i++) shm_region_release(removed[i]);
  free(removed);
}

static json_t *region_json(const shm_region *r) {
  if (r->kind == INFERD_SHM_SYSTEM)
    return json_pack("{s:s, s:s, s:I, s:I}", "name", r->name, "key", r->key, "offset", (json_int_t)r->offset,
                     "byte_size", (json_int_t)r->byte_size);
  return json_pack("{s:s, s:i, s:I}", "name", r->name, "device_id", r->device, "byte_size",
                   (json_int_t)r->byte_size);
}

inferd_error *shm_registry_status(shm_registry *reg, inferd_shm_kind kind, const char *name, char **json) {
  *json = NULL;
  const bool all = !name || !*name;
  json_t *list = json_array();
  bool found = false;
  pthread_mutex_lock(&reg->lock);
  for (int i = 0; i < reg->count; i++) {
    const shm_region *r = reg->regions[i];
    if (r->kind != kind || (!all && strcmp(r->name, name) != 0)) continue;
    json_array_append_new(list, region_json(r));
    found = true;
  }
  pthread_mutex_unlock(&reg->lock);
  if (!all && !found) {
    json_decref(list);
    return err_new(INFERD_ERROR_NOT_FOUND, "no %s shared memory region named '%s' is registered",
                   kind == INFERD_SHM_CUDA ? "CUDA" : "system", name);
  }
  *json = json_dumps(list, JSON_COMPACT);
  json_decref(list);
  return *json ? NULL : err_new(INFERD_ERROR_NO_MEMORY, "formatting the shared memory status");
}

int shm_registry_count(shm_registry *reg) {
  pthread_mutex_lock(&reg->lock);
  const int n = reg->count;
  pthread_mutex_unlock(&reg->lock);
  return n;
}

inferd_error *shm_registry_acquire(shm_registry *reg, const char *name, shm_region **out) {
  *out = NULL;
  if (!name || !*name) return err_new(INFERD_ERROR_INVALID_ARG, "the shared memory region name is empty");
  pthread_mutex_lock(&reg->lock);
  const int i = find(reg, name);
  if (i >= 0) {
    *out = reg->regions[i];
    atomic_fetch_add_explicit(&(*out)->refs, 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&reg->lock);
  if (!*out) return err_new(INFERD_ERROR_INVALID_ARG, "unknown shared memory region '%s'", name);
  return NULL;
}

inferd_error *shm_region_span(const shm_region *r, const char *what, uint64_t offset, uint64_t size, void **ptr) {
  *ptr = NULL;
  if (offset > r->byte_size || size > r->byte_size - offset)
    return err_new(INFERD_ERROR_INVALID_ARG,
                   "%s: shared_memory_offset %llu + shared_memory_byte_size %llu is beyond the %llu bytes of "
                   "shared memory region '%s'",
                   what, (unsigned long long)offset, (unsigned long long)size, (unsigned long long)r->byte_size,
                   r->name);
  *ptr = (char *)r->base + offset;
  return NULL;
}

const char *shm_region_name(const shm_region *r) { return r->name; }
inferd_shm_kind shm_region_kind(const shm_region *r) { return r->kind; }
int shm_region_device(const shm_region *r) { return r->kind == INFERD_SHM_CUDA ? r->device : 0; }
uint64_t shm_region_byte_size(const shm_region *r) { return r->byte_size; }

/* ---- the public API ---------------------------------------------------- */

inferd_error *inferd_server_shm_register_system(inferd_server *server, const char *name, const char *key,
                                                uint64_t offset, uint64_t byte_size) {
  return shm_registry_add_system(server->shm, name, key, offset, byte_size);
}

inferd_error *inferd_server_shm_register_cuda(inferd_server *server, const char *name, const void *raw_handle,
                                              size_t handle_size, int64_t device_id, uint64_t byte_size) {
  return shm_registry_add_cuda(server->shm, name, raw_handle, handle_size, device_id, byte_size);
}

inferd_error *inferd_server_shm_unregister(inferd_server *server, inferd_shm_kind kind, const char *name) {
  if (kind != INFERD_SHM_SYSTEM && kind != INFERD_SHM_CUDA)
    return err_new(INFERD_ERROR_INVALID_ARG, "unknown shared memory kind %d", (int)kind);
  shm_registry_remove(server->shm, kind, name);
  return NULL;
}

inferd_error *inferd_server_shm_status(inferd_server *server, inferd_shm_kind kind, const char *name, char **json) {
  *json = NULL;
  if (kind != INFERD_SHM_SYSTEM && kind != INFERD_SHM_CUDA)
    return err_new(INFERD_ERROR_INVALID_ARG, "unknown shared memory kind %d", (int)kind);
  return shm_registry_status(server->shm, kind, name, json);
}
