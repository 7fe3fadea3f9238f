/*
 * See perf_shm.h. Spans start on 256-byte boundaries, which any kernel
 * reading a tensor in place is content with; a slot's spans follow one
 * another, and slots follow one another at the same stride.
 */
#include "tools/perf_shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/error.h"
#include "base/mem.h"
#include "frontends/grpc/grpc_service.pb-c.h"
#include "tools/grpc_h2_client.h"

#define SERVICE "/inference.GRPCInferenceService/"

enum { SPAN_ALIGN = 256, CALL_WAIT_S = 30, CUDA_DEVICE = 0 };

typedef struct region {
  char name[64]; /* also the system region's key, after a '/' */
  size_t size;
  void *host;    /* system: the mapping */
  void *device;  /* CUDA: the allocation */
  bool exists;   /* system: the object was created and must be unlinked */
  bool registered;
} region;

/* One direction's layout: the spans of a slot and the stride of slots. */
typedef struct layout {
  size_t n, *offsets, *sizes, stride;
} layout;

struct perf_shm {
  perf_shm_kind kind;
  int slots;
  region in, out;
  layout in_layout, out_layout;
};

const char *perf_shm_kind_name(perf_shm_kind kind) {
  return kind == PERF_SHM_SYSTEM ? "system" : kind == PERF_SHM_CUDA ? "cuda" : "none";
}

bool perf_shm_kind_from_name(const char *name, perf_shm_kind *kind) {
  for (perf_shm_kind k = PERF_SHM_NONE; k <= PERF_SHM_CUDA; k++)
    if (strcmp(name, perf_shm_kind_name(k)) == 0) {
      *kind = k;
      return true;
    }
  return false;
}

static bool align_up(size_t n, size_t *out) {
  return mem_add_ok(n, SPAN_ALIGN - 1, out) && ((*out &= ~(size_t)(SPAN_ALIGN - 1)), true);
}

/* Lays spans of `sizes` out in a slot; false when the total overflows. */
static bool layout_make(layout *l, const size_t *sizes, size_t n, int slots, size_t *total) {
  l->n = n;
  l->offsets = mem_zalloc((n ? n : 1) * sizeof(size_t));
  l->sizes = mem_zalloc((n ? n : 1) * sizeof(size_t));
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    l->offsets[i] = at;
    l->sizes[i] = sizes[i];
    size_t room;
    if (!align_up(sizes[i] ? sizes[i] : 1, &room) || !mem_add_ok(at, room, &at)) return false;
  }
  l->stride = at;
  return mem_mul_ok(at, (size_t)slots, total);
}

/* ---- memory ------------------------------------------------------------------- */

static inferd_error *system_create(region *r) {
  char key[sizeof(r->name) + 1];
  snprintf(key, sizeof(key), "/%s", r->name);
  int fd = shm_open(key, O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0 && errno == EEXIST) { /* left by an earlier process of this pid that did not finish */
    shm_unlink(key);
    fd = shm_open(key, O_CREAT | O_EXCL | O_RDWR, 0600);
  }
  if (fd < 0) return err_new(INFERD_ERROR_UNAVAILABLE, "shm_open(%s): %s", key, strerror(errno));
  r->exists = true;
  /* posix_fallocate reserves the pages now: a full /dev/shm is an error
   * here rather than a SIGBUS when the inputs are written. */
  int rc = ftruncate(fd, (off_t)r->size) != 0 ? errno : posix_fallocate(fd, 0, (off_t)r->size);
  if (rc == 0) {
    r->host = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (r->host == MAP_FAILED) {
      r->host = NULL;
      rc = errno;
    }
  }
  close(fd);
  if (rc)
    return err_new(INFERD_ERROR_NO_MEMORY, "%zu bytes of system shared memory for %s: %s", r->size, key,
                   strerror(rc));
  return NULL;
}

static void region_free(perf_shm_kind kind, region *r) {
  if (kind == PERF_SHM_SYSTEM) {
    if (r->host) munmap(r->host, r->size);
    if (r->exists) {
      char key[sizeof(r->name) + 1];
      snprintf(key, sizeof(key), "/%s", r->name);
      shm_unlink(key);
    }
  } else {
    inferd_cuda_ipc_free(r->device);
  }
  r->host = r->device = NULL;
  r->exists = false;
}

/* Copies `size` bytes to `offset` of the region. */
static inferd_error *region_write(perf_shm_kind kind, region *r, size_t offset, const void *src, size_t size) {
  if (kind == PERF_SHM_SYSTEM) {
    memcpy((char *)r->host + offset, src, size);
    return NULL;
  }
  return inferd_cuda_ipc_upload((char *)r->device + offset, src, size);
}

/* ---- the server's side -------------------------------------------------------- */

/* A connection of its own for the register and unregister calls. After a
 * call that timed out it takes no more calls (see grpc_h2_unary), and the
 * frame that call points at is freed only with the client. */
typedef struct control {
  grpc_h2_client *client;
  uint8_t *held;
} control;

static inferd_error *control_open(const char *target, control *c) {
  *c = (control){0};
  return grpc_h2_client_connect(target, 1, &c->client);
}

static void control_close(control *c) {
  if (c->client) grpc_h2_client_delete(c->client);
  free(c->held);
  *c = (control){0};
}

static inferd_error *call(control *c, const char *method, const ProtobufCMessage *message) {
  if (!c->client || c->held)
    return err_new(INFERD_ERROR_UNAVAILABLE, "%s: no connection to the server", method);
  size_t size = 0;
  uint8_t *framed = grpc_h2_frame(message, &size);
  if (!framed) return err_new(INFERD_ERROR_INTERNAL, "cannot frame a %s request", method);
  char path[128];
  snprintf(path, sizeof(path), SERVICE "%s", method);
  uint8_t *reply = NULL;
  size_t reply_size = 0;
  inferd_error *err = grpc_h2_unary(c->client, path, framed, size, CALL_WAIT_S, &reply, &reply_size);
  free(reply); /* the register and unregister answers are empty */
  if (err && inferd_error_code_of(err) == INFERD_ERROR_TIMEOUT) c->held = framed;
  else free(framed);
  return err;
}

static inferd_error *region_register(perf_shm_kind kind, control *c, region *r, const uint8_t *handle) {
  inferd_error *err;
  char key[sizeof(r->name) + 1];
  snprintf(key, sizeof(key), "/%s", r->name);
  if (kind == PERF_SHM_SYSTEM) {
    Inference__SystemSharedMemoryRegisterRequest m = INFERENCE__SYSTEM_SHARED_MEMORY_REGISTER_REQUEST__INIT;
    m.name = r->name;
    m.key = key;
    m.byte_size = r->size;
    err = call(c, "SystemSharedMemoryRegister", &m.base);
  } else {
    Inference__CudaSharedMemoryRegisterRequest m = INFERENCE__CUDA_SHARED_MEMORY_REGISTER_REQUEST__INIT;
    m.name = r->name;
    m.raw_handle = (ProtobufCBinaryData){.len = INFERD_CUDA_IPC_HANDLE_SIZE, .data = (uint8_t *)handle};
    m.device_id = CUDA_DEVICE;
    m.byte_size = r->size;
    err = call(c, "CudaSharedMemoryRegister", &m.base);
  }
  if (err)
    return err_wrap(err, "the server refused %s shared memory region '%s' (%zu bytes%s%s)", perf_shm_kind_name(kind),
                    r->name, r->size, kind == PERF_SHM_SYSTEM ? ", key " : "", kind == PERF_SHM_SYSTEM ? key : "");
  r->registered = true;
  return NULL;
}

static inferd_error *region_unregister(perf_shm_kind kind, control *c, region *r) {
  if (!r->registered) return NULL;
  inferd_error *err;
  if (kind == PERF_SHM_SYSTEM) {
    Inference__SystemSharedMemoryUnregisterRequest m = INFERENCE__SYSTEM_SHARED_MEMORY_UNREGISTER_REQUEST__INIT;
    m.name = r->name;
    err = call(c, "SystemSharedMemoryUnregister", &m.base);
  } else {
    Inference__CudaSharedMemoryUnregisterRequest m = INFERENCE__CUDA_SHARED_MEMORY_UNREGISTER_REQUEST__INIT;
    m.name = r->name;
    err = call(c, "CudaSharedMemoryUnregister", &m.base);
  }
  r->registered = false;
  return err ? err_wrap(err, "unregistering shared memory region '%s'", r->name) : NULL;
}

/* Unregisters what is registered, on a new connection to `target` (the
 * one that registered may have timed out), and frees everything, also when
 * the server cannot be reached. Returns the first error. */
static inferd_error *shm_free(perf_shm *shm, const char *target) {
  region *regions[] = {&shm->in, &shm->out};
  inferd_error *first = NULL;
  if (shm->in.registered || shm->out.registered) {
    control c;
    first = control_open(target, &c);
    if (first) first = err_wrap(first, "unregistering the shared memory regions");
    for (size_t i = 0; i < 2 && !first; i++) first = region_unregister(shm->kind, &c, regions[i]);
    control_close(&c);
  }
  for (size_t i = 0; i < 2; i++) region_free(shm->kind, regions[i]);
  free(shm->in_layout.offsets);
  free(shm->in_layout.sizes);
  free(shm->out_layout.offsets);
  free(shm->out_layout.sizes);
  free(shm);
  return first;
}

/* ---- the API -------------------------------------------------------------------- */

static inferd_error *region_make(perf_shm *shm, control *c, region *r) {
  uint8_t handle[INFERD_CUDA_IPC_HANDLE_SIZE];
  if (shm->kind == PERF_SHM_SYSTEM) ERR_TRY(system_create(r));
  else ERR_TRY(inferd_cuda_ipc_export(CUDA_DEVICE, r->size, &r->device, handle));
  return region_register(shm->kind, c, r, handle);
}

inferd_error *perf_shm_create(perf_shm_kind kind, const char *target, int slots, const ProtobufCBinaryData *inputs,
                              size_t n_inputs, const size_t *output_bytes, size_t n_outputs, perf_shm **out) {
  *out = NULL;
  perf_shm *shm = mem_zalloc(sizeof(*shm));
  shm->kind = kind;
  shm->slots = slots;
  const long pid = (long)getpid();
  snprintf(shm->in.name, sizeof(shm->in.name), "inferd_perf_%ld_input", pid);
  snprintf(shm->out.name, sizeof(shm->out.name), "inferd_perf_%ld_output", pid);
  size_t *input_bytes = mem_zalloc((n_inputs ? n_inputs : 1) * sizeof(size_t));
  for (size_t i = 0; i < n_inputs; i++) input_bytes[i] = inputs[i].len;
  const bool fits = layout_make(&shm->in_layout, input_bytes, n_inputs, slots, &shm->in.size) &&
                    layout_make(&shm->out_layout, output_bytes, n_outputs, slots, &shm->out.size);
  free(input_bytes);
  inferd_error *err =
      fits ? NULL : err_new(INFERD_ERROR_INVALID_ARG, "the shared memory of %d slots is too large", slots);
  control c = {0};
  if (!err) err = control_open(target, &c);
  if (!err) err = region_make(shm, &c, &shm->in);
  for (int s = 0; s < slots && !err; s++)
    for (size_t i = 0; i < n_inputs && !err; i++)
      err = region_write(kind, &shm->in, (size_t)s * shm->in_layout.stride + shm->in_layout.offsets[i],
                         inputs[i].data, inputs[i].len);
  if (!err) err = region_make(shm, &c, &shm->out);
  control_close(&c);
  if (err) {
    inferd_error_delete(shm_free(shm, target));
    return err_wrap(err, "--shared-memory %s", perf_shm_kind_name(kind));
  }
  *out = shm;
  return NULL;
}

static perf_shm_span span(const region *r, const layout *l, int slot, size_t index) {
  return (perf_shm_span){.region = r->name,
                         .offset = (uint64_t)((size_t)slot * l->stride + l->offsets[index]),
                         .byte_size = l->sizes[index]};
}

perf_shm_span perf_shm_input(const perf_shm *shm, int slot, size_t input) {
  return span(&shm->in, &shm->in_layout, slot, input);
}

perf_shm_span perf_shm_output(const perf_shm *shm, int slot, size_t output) {
  return span(&shm->out, &shm->out_layout, slot, output);
}

inferd_error *perf_shm_destroy(perf_shm *shm, const char *target) { return shm ? shm_free(shm, target) : NULL; }
