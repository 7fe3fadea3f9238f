/*
 * The gRPC ModelInfer request: protobuf-c's unpack of the generated
 * ModelInferRequest and the frontend's checks and conversions
 * (grpc_infer_decode), as a unary call and as the messages of an inference
 * stream taken off its input by the 5-byte framing (grpc_frame_take,
 * compressed messages included); and the unpack of every other request
 * message the service takes.
 *
 * Input: byte 0 chooses the mode (bits 0-1: 0 and 1 a unary ModelInfer
 * message, 2 a stream's input, 3 another request message) and its settings
 * (bits 2-7: the stream's grpc-encoding and message limit, or which message).
 * The rest is the payload.
 */
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

#include "frontends/grpc/grpc_frame.h"
#include "frontends/grpc/grpc_infer.h"
#include "fuzz/fuzz_util.h"

static void decode(const uint8_t *msg, size_t size) {
  grpc_infer_decoded d;
  inferd_error *err = grpc_infer_decode(msg, size, &d);
  if (!err) {
    FUZZ_CHECK(d.message != NULL);
    for (int i = 0; i < d.input_count; i++) {
      const grpc_infer_input *in = &d.inputs[i];
      fuzz_touch(in->name, strlen(in->name) + 1);
      FUZZ_CHECK(in->rank >= 0 && in->rank <= INFERD_MAX_RANK);
      if (in->shm_region) continue;
      FUZZ_CHECK(in->data != NULL || in->byte_size == 0);
      if (in->byte_size) fuzz_touch(in->data, in->byte_size);
    }
    for (int i = 0; i < d.output_count; i++) fuzz_touch(d.outputs[i].name, strlen(d.outputs[i].name) + 1);
  } else {
    inferd_error_delete(err);
  }
  grpc_infer_decoded_free(&d);
}

/* What stream_take_messages does with a stream's input. */
static void take_stream(const uint8_t *p, size_t avail, grpc_encoding encoding, size_t max) {
  for (;;) {
    size_t consumed = 0, size = 0;
    const uint8_t *msg = NULL;
    uint8_t *owned;
    inferd_error *err;
    if (!grpc_frame_take(p, avail, encoding, max, &consumed, &msg, &size, &owned, &err)) {
      FUZZ_CHECK(owned == NULL && err == NULL);
      return;
    }
    if (err) {
      free(owned);
      inferd_error_delete(err);
      return;
    }
    FUZZ_CHECK(consumed >= GRPC_FRAME_PREFIX && consumed <= avail && size <= max);
    decode(msg, size);
    free(owned);
    p += consumed;
    avail -= consumed;
  }
}

static const ProtobufCMessageDescriptor *const requests[] = {
    &inference__server_live_request__descriptor,
    &inference__server_ready_request__descriptor,
    &inference__model_ready_request__descriptor,
    &inference__server_metadata_request__descriptor,
    &inference__model_metadata_request__descriptor,
    &inference__model_config_request__descriptor,
    &inference__model_statistics_request__descriptor,
    &inference__repository_index_request__descriptor,
    &inference__repository_model_load_request__descriptor,
    &inference__repository_model_unload_request__descriptor,
    &inference__system_shared_memory_status_request__descriptor,
    &inference__system_shared_memory_register_request__descriptor,
    &inference__system_shared_memory_unregister_request__descriptor,
    &inference__cuda_shared_memory_status_request__descriptor,
    &inference__cuda_shared_memory_register_request__descriptor,
    &inference__cuda_shared_memory_unregister_request__descriptor,
};

/* Whether m or any message inside it (map entries included) kept unknown
 * fields. */
static bool has_unknown_fields(const ProtobufCMessage *m) {
  if (m->n_unknown_fields) return true;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    const char *at = (const char *)m + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      const size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
      ProtobufCMessage *const *items = *(ProtobufCMessage *const *const *)at;
      for (size_t k = 0; k < n; k++)
        if (items[k] && has_unknown_fields(items[k])) return true;
    } else {
      const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)at;
      if (sub && has_unknown_fields(sub)) return true;
    }
  }
  return false;
}

/* Unpacks a request message; what unpacks must pack back to bytes that
 * unpack again. Messages with unknown fields, at any depth, are left out
 * of the round trip: protobuf-c keeps a field numbered 0 it read (an
 * overlong tag) and then refuses it when it reads its own packing (found
 * in a map entry of a repository load request, kept as a seed). */
static void unpack_request(const ProtobufCMessageDescriptor *descriptor, const uint8_t *msg, size_t size) {
  ProtobufCMessage *m = protobuf_c_message_unpack(descriptor, NULL, size, msg);
  if (!m) return;
  if (has_unknown_fields(m)) {
    protobuf_c_message_free_unpacked(m, NULL);
    return;
  }
  const size_t packed_size = protobuf_c_message_get_packed_size(m);
  uint8_t *packed = malloc(packed_size ? packed_size : 1);
  FUZZ_CHECK(packed != NULL);
  FUZZ_CHECK(protobuf_c_message_pack(m, packed) == packed_size);
  ProtobufCMessage *again = protobuf_c_message_unpack(descriptor, NULL, packed_size, packed);
  FUZZ_CHECK(again != NULL);
  protobuf_c_message_free_unpacked(again, NULL);
  free(packed);
  protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const unsigned mode = data[0] & 3, setting = data[0] >> 2;
  data++;
  size--;
  switch (mode) {
    case 2: {
      static const size_t limits[] = {64, 4096, 1 << 20, 1 << 24};
      take_stream(data, size, (grpc_encoding)(setting & 3), limits[(setting >> 2) & 3]);
      break;
    }
    case 3:
      unpack_request(requests[setting % (sizeof(requests) / sizeof(requests[0]))], data, size);
      break;
    default:
      decode(data, size);
      break;
  }
  return 0;
}
