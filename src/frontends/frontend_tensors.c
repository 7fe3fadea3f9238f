/* See frontend_tensors.h. */
#include "frontends/frontend_tensors.h"

#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "base/mem.h"

bool frontend_keep_owned(void ***owned, int *count, void *p) {
  void **grown = mem_try_realloc(*owned, (size_t)*count + 1, sizeof(void *));
  if (!grown) return false;
  *owned = grown;
  grown[(*count)++] = p;
  return true;
}

inferd_error *frontend_request_new(inferd_server *server, const char *model, int64_t version, const char *id,
                                   uint64_t priority, uint64_t timeout_us, const frontend_input *inputs,
                                   int input_count, const frontend_output *outputs, int output_count,
                                   inferd_request **out) {
  inferd_request *r;
  ERR_TRY(inferd_request_create(server, model, version, &r));
  inferd_error *err = NULL;
  if (id && *id) err = inferd_request_set_id(r, id);
  if (!err && priority) err = inferd_request_set_priority(r, priority);
  if (!err && timeout_us) err = inferd_request_set_timeout_us(r, timeout_us);
  for (int i = 0; i < input_count && !err; i++) {
    const frontend_input *in = &inputs[i];
    err = in->shm_region ? inferd_request_add_input_shm(r, in->name, in->datatype, in->shape, in->rank, in->shm_region,
                                                        in->shm_offset, in->shm_byte_size)
                         : inferd_request_add_input(r, in->name, in->datatype, in->shape, in->rank, in->data,
                                                    in->byte_size);
  }
  for (int i = 0; i < output_count && !err; i++) {
    const frontend_output *o = &outputs[i];
    err = o->shm_region ? inferd_request_add_requested_output_shm(r, o->name, o->classification, o->shm_region,
                                                                  o->shm_offset, o->shm_byte_size)
                        : inferd_request_add_requested_output(r, o->name, o->classification);
  }
  if (err) {
    inferd_request_delete(r);
    return err;
  }
  *out = r;
  return NULL;
}
