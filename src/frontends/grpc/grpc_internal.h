/*
 * What the gRPC frontend's transport (grpc_server.c: threads, completion
 * queues, call lifecycles, the stream) and its unary endpoints
 * (grpc_handlers.c) share.
 *
 * Every completion-queue operation carries a grpc_tag; the thread that takes
 * the event off its queue calls tag->done. A unary call's handler runs on
 * that thread and ends the call with grpc_unary_reply or grpc_unary_fail,
 * from any thread (inference answers come back on server threads).
 */
#ifndef INFERD_FRONTENDS_GRPC_INTERNAL_H
#define INFERD_FRONTENDS_GRPC_INTERNAL_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "frontends/grpc/grpc_infer.h"
#include "inferd.h"

typedef struct grpc_tag grpc_tag;
struct grpc_tag {
  void (*done)(grpc_tag *tag, bool ok);
};

typedef struct grpc_unary grpc_unary;
typedef void (*grpc_unary_handler)(grpc_unary *call);

struct grpc_unary {
  grpc_tag tag;
  struct grpc_frontend *frontend;
  struct grpc_worker *worker;
  inferd_server *server;
  int method;
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array metadata;
  grpc_byte_buffer *payload;
  grpc_byte_buffer *reply;
  grpc_slice details;
  int cancelled;
  /* Inference: released by the final batch and the request's release. */
  atomic_int refs;
  grpc_infer_decoded decoded;
  /* Load and unload, done on a worker thread. */
  char *model;
  char *config_json;
  bool load;
};

/* The request message, unpacked into a new message of `descriptor` (freed
 * with protobuf_c_message_free_unpacked(m, NULL)); on error the call is
 * already answered (INVALID_ARGUMENT) and NULL returned. */
ProtobufCMessage *grpc_unary_request(grpc_unary *call, const ProtobufCMessageDescriptor *descriptor);
/* The request payload as contiguous bytes (a slice the caller unrefs). */
bool grpc_unary_payload(grpc_unary *call, grpc_slice *out);
/* Ends the call with OK and `reply` serialized (borrowed). */
void grpc_unary_reply(grpc_unary *call, const ProtobufCMessage *reply);
/* Ends the call with OK and an already serialized reply (malloc'd, taken). */
void grpc_unary_reply_bytes(grpc_unary *call, uint8_t *bytes, size_t size);
/* Ends the call with the error's gRPC status and message (takes the error). */
void grpc_unary_fail(grpc_unary *call, inferd_error *error);

/* Drops a reference to the call; the last one frees it (its final batch
 * holds one, an inference's release callback another). */
void grpc_unary_unref(grpc_unary *call);

/* The endpoints (grpc_handlers.c), by method index. */
typedef struct grpc_method_info {
  const char *path; /* "/inference.GRPCInferenceService/..." */
  bool streaming;
  grpc_unary_handler handle; /* NULL for the stream */
} grpc_method_info;
extern const grpc_method_info grpc_methods[];
extern const int grpc_method_count;

#endif
