/*
 * What the gRPC frontend's transport (grpc_server.c: loops, connections,
 * HTTP/2 streams, the inference stream) and its unary endpoints
 * (grpc_handlers.c) share.
 *
 * A unary call's handler runs on the connection's loop thread with the
 * request message in hand (valid until the handler returns) and ends the
 * call with grpc_unary_reply or grpc_unary_fail, from any thread (inference
 * answers come back on server threads); the answer is handed back to the
 * loop, which writes it.
 */
#ifndef INFERD_FRONTENDS_GRPC_INTERNAL_H
#define INFERD_FRONTENDS_GRPC_INTERNAL_H

#include <protobuf-c/protobuf-c.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frontends/frontend_loop.h"
#include "frontends/grpc/grpc_infer.h"
#include "inferd.h"

/* Work handed to a loop from any thread; `run` is called on the loop. */
typedef struct grpc_post grpc_post;
struct grpc_post {
  frontend_post base; /* first */
  void (*run)(grpc_post *post);
};

typedef struct grpc_unary grpc_unary;
typedef void (*grpc_unary_handler)(grpc_unary *call);

struct grpc_unary {
  grpc_post post; /* the answer, handed to the loop */
  struct grpc_frontend *frontend;
  struct h2_stream *stream; /* the HTTP/2 stream the call came on */
  inferd_server *server;
  const atomic_bool *cancel; /* the stream's: set once its client has gone (it outlives the call's request) */
  int method;
  /* The request message, valid while the handler runs. */
  const uint8_t *payload;
  size_t payload_size;
  /* The answer: a serialized reply (status 0) or a status and its message,
   * with a retry hint for an overload refusal (0: none). */
  int status;
  uint8_t *reply;
  size_t reply_size;
  char *details;
  int retry_ms;
  /* Inference: released by the answer and the request's release. */
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
/* Ends the call with OK and `reply` serialized (borrowed). */
void grpc_unary_reply(grpc_unary *call, const ProtobufCMessage *reply);
/* Ends the call with OK and an already serialized reply (malloc'd, taken). */
void grpc_unary_reply_bytes(grpc_unary *call, uint8_t *bytes, size_t size);
/* Ends the call with the error's gRPC status and message (takes the error). */
void grpc_unary_fail(grpc_unary *call, inferd_error *error);

/* Drops a reference to the call; the last one frees it (its answer holds
 * one, an inference's release callback another). */
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
