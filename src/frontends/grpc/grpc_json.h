/*
 * JSON to protobuf-c messages, driven by the messages' descriptors. The
 * server API answers metadata, configuration, statistics and the repository
 * index in the JSON shapes of the KServe v2 / Triton HTTP protocol, which are
 * protobuf's JSON mapping of the gRPC messages with the same field names. One
 * walk over the descriptors therefore converts every such answer: objects
 * become messages, arrays repeated fields, objects under a map field map
 * entries (keys parsed as the entry's key type), strings under an enum field
 * the value of that name, and 64-bit integers may come as numbers or as
 * decimal strings. Members the message does not declare are skipped, as a
 * protobuf JSON parser told to ignore unknown fields does.
 */
#ifndef INFERD_FRONTENDS_GRPC_JSON_H
#define INFERD_FRONTENDS_GRPC_JSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "inferd.h"

/* Fills `message` (initialized with its descriptor's init, every field at
 * its default) from the JSON object `object`. Everything set is allocated
 * with malloc, so protobuf_c_message_free_unpacked(message, NULL) frees the
 * fields and, like for an unpacked message, the message itself. On error
 * (a member whose JSON type does not fit its field, an unknown enum name)
 * the message holds what was set so far and must still be freed that way. */
inferd_error *grpc_json_to_message(const json_t *object, ProtobufCMessage *message);

/* Parses `json` text and converts it into a new message of `descriptor`
 * (freed with protobuf_c_message_free_unpacked(*out, NULL)). When
 * `wrap_field` is not NULL, the parsed value is converted as the member of
 * that name (for answers that are a bare array, such as the repository
 * index, whose message is { models: [...] }). */
inferd_error *grpc_json_parse_message(const char *json, const ProtobufCMessageDescriptor *descriptor,
                                      const char *wrap_field, ProtobufCMessage **out);

#endif
