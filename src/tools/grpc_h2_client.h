/*
 * A small gRPC client on libnghttp2 for the load generator: a few HTTP/2
 * connections to one host:port over plain non-blocking TCP, one epoll loop,
 * one thread, no gRPC library. gRPC per call costs little here: a call is
 * one HTTP/2 stream (HEADERS, DATA, trailers), and every connection's
 * frames for one pass of the loop leave in one write.
 *
 * Calls are asynchronous: grpc_h2_call_start queues the request headers,
 * grpc_h2_call_send queues messages (already framed, see grpc_h2_frame),
 * grpc_h2_call_close_send ends the client's side, and grpc_h2_client_poll
 * moves bytes and runs the callbacks. Everything runs on the thread that
 * polls; the callbacks may start, feed and close calls but not delete the
 * client.
 */
#ifndef INFERD_TOOLS_GRPC_H2_CLIENT_H
#define INFERD_TOOLS_GRPC_H2_CLIENT_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inferd.h"

typedef struct grpc_h2_client grpc_h2_client;
typedef struct grpc_h2_call grpc_h2_call;

/* gRPC status codes this client reports for failures of its own. */
enum { GRPC_H2_STATUS_UNKNOWN = 2, GRPC_H2_STATUS_RESOURCE_EXHAUSTED = 8, GRPC_H2_STATUS_INTERNAL = 13,
       GRPC_H2_STATUS_UNAVAILABLE = 14 };

typedef struct grpc_h2_call_handlers {
  /* Each whole response message, borrowed for the length of the callback.
   * NULL: the messages are not reassembled, only the status counts. */
  void (*on_message)(void *user, const uint8_t *message, size_t size);
  /* The end of the call, exactly once: the server's grpc-status (0 is OK) and
   * its decoded grpc-message ("" when none), or a failure of the transport
   * as UNAVAILABLE or INTERNAL with a message that says what happened. The
   * call is freed when this returns. */
  void (*on_close)(void *user, int status, const char *message);
} grpc_h2_call_handlers;

/* Opens `connections` HTTP/2 connections to `target` ("host:port",
 * "[v6]:port"), each with large flow-control windows, and waits until all
 * are connected. The error names the target when one cannot be. */
inferd_error *grpc_h2_client_connect(const char *target, int connections, grpc_h2_client **client);

/* Closes the connections (a GOAWAY is sent where the socket takes it) and
 * frees every call still open without calling its handlers. */
void grpc_h2_client_delete(grpc_h2_client *client);

/* Writes what the calls queued, waits up to `timeout_ms` (-1: without limit)
 * for the network, and handles what came: the callbacks run in here, and
 * what they queue is written before it returns. */
void grpc_h2_client_poll(grpc_h2_client *client, int timeout_ms);

/* Starts a call to `path` ("/package.Service/Method", which must outlive the
 * call) on connection `connection` (0 to connections-1). `handlers` and
 * `user` are borrowed until on_close. NULL when that connection has failed:
 * then no handler is ever called. */
grpc_h2_call *grpc_h2_call_start(grpc_h2_client *client, int connection, const char *path,
                                 const grpc_h2_call_handlers *handlers, void *user);

/* Queues one framed message (grpc_h2_frame) on the call. The bytes are
 * borrowed until on_close; the same bytes may be queued on many calls. */
void grpc_h2_call_send(grpc_h2_call *call, const uint8_t *framed, size_t size);

/* Ends the client's side of the call (END_STREAM after what is queued). */
void grpc_h2_call_close_send(grpc_h2_call *call);

/* `message` serialized behind gRPC's 5-byte prefix (not compressed, 32-bit
 * big-endian length), malloc'd; free() it. NULL when the message is larger
 * than a gRPC message can be. */
uint8_t *grpc_h2_frame(const ProtobufCMessage *message, size_t *size);

/* One call on connection 0 that sends `framed` and polls until its answer
 * or `timeout_s`: *reply is the response message, malloc'd (free() it).
 * A status other than OK is UNAVAILABLE with the path, the status and the
 * server's message. TIMEOUT: the call stays open, pointing at `framed` and
 * at this function's frame, so the caller must not poll the client again:
 * it deletes the client (which drops the call unanswered), then frees
 * `framed`. */
inferd_error *grpc_h2_unary(grpc_h2_client *client, const char *path, const uint8_t *framed, size_t size,
                           int timeout_s, uint8_t **reply, size_t *reply_size);

#endif
