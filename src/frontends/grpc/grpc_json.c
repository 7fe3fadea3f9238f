/*
 * JSON to protobuf-c messages; see grpc_json.h.
 *
 * protobuf-c lays a message out as a struct whose fields the descriptor
 * locates by offset: a scalar or a pointer for a singular field, a count
 * (at quantifier_offset) and an array for a repeated one, and for a oneof
 * member the case number at quantifier_offset. Map fields are repeated
 * messages of key (field 1) and value (field 2).
 */
#include "frontends/grpc/grpc_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/mem.h"

enum { MAX_DEPTH = 32 };

static inferd_error *fill_message(const json_t *object, ProtobufCMessage *message, int depth);

static void *member_at(ProtobufCMessage *message, size_t offset) { return (char *)message + offset; }

static inferd_error *mismatch(const ProtobufCFieldDescriptor *f, const char *want) {
  return err_new(INFERD_ERROR_INTERNAL, "JSON member '%s' is not %s", f->name, want);
}

/* An integer from a JSON number or a decimal string (protobuf's JSON form of
 * 64-bit integers). */
static bool json_signed(const json_t *v, int64_t *out) {
  if (json_is_integer(v)) {
    *out = json_integer_value(v);
    return true;
  }
  if (!json_is_string(v)) return false;
  const char *s = json_string_value(v);
  char *end;
  errno = 0;
  long long x = strtoll(s, &end, 10);
  if (errno || end == s || *end) return false;
  *out = x;
  return true;
}

static bool json_unsigned(const json_t *v, uint64_t *out) {
  if (json_is_integer(v)) {
    if (json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
  }
  if (!json_is_string(v)) return false;
  const char *s = json_string_value(v);
  char *end;
  errno = 0;
  unsigned long long x = strtoull(s, &end, 10);
  if (errno || end == s || *end || *s == '-') return false;
  *out = x;
  return true;
}

static size_t element_size(const ProtobufCFieldDescriptor *f) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM: return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return 8;
    case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
  }
  return 0;
}

static ProtobufCMessage *new_message(const ProtobufCMessageDescriptor *d) {
  ProtobufCMessage *m = mem_alloc(d->sizeof_message);
  d->message_init(m);
  return m;
}

/* Stores one JSON value into the field's storage at `dst`. */
static inferd_error *set_value(const ProtobufCFieldDescriptor *f, void *dst, const json_t *v, int depth) {
  int64_t s;
  uint64_t u;
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      if (!json_signed(v, &s) || s < INT32_MIN || s > INT32_MAX) return mismatch(f, "a 32-bit integer");
      *(int32_t *)dst = (int32_t)s;
      return NULL;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      if (!json_unsigned(v, &u) || u > UINT32_MAX) return mismatch(f, "an unsigned 32-bit integer");
      *(uint32_t *)dst = (uint32_t)u;
      return NULL;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      if (!json_signed(v, &s)) return mismatch(f, "an integer");
      *(int64_t *)dst = s;
      return NULL;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      if (!json_unsigned(v, &u)) return mismatch(f, "an unsigned integer");
      *(uint64_t *)dst = u;
      return NULL;
    case PROTOBUF_C_TYPE_FLOAT:
      if (!json_is_number(v)) return mismatch(f, "a number");
      *(float *)dst = (float)json_number_value(v);
      return NULL;
    case PROTOBUF_C_TYPE_DOUBLE:
      if (!json_is_number(v)) return mismatch(f, "a number");
      *(double *)dst = json_number_value(v);
      return NULL;
    case PROTOBUF_C_TYPE_BOOL:
      if (!json_is_boolean(v)) return mismatch(f, "a boolean");
      *(protobuf_c_boolean *)dst = json_is_true(v);
      return NULL;
    case PROTOBUF_C_TYPE_ENUM: {
      const ProtobufCEnumDescriptor *ed = f->descriptor;
      if (json_is_integer(v)) {
        *(int32_t *)dst = (int32_t)json_integer_value(v);
        return NULL;
      }
      if (!json_is_string(v)) return mismatch(f, "an enum name");
      const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(v));
      if (!ev)
        return err_new(INFERD_ERROR_INTERNAL, "JSON member '%s': '%s' is not a value of %s", f->name,
                       json_string_value(v), ed->name);
      *(int32_t *)dst = ev->value;
      return NULL;
    }
    case PROTOBUF_C_TYPE_STRING:
      if (!json_is_string(v)) return mismatch(f, "a string");
      *(char **)dst = mem_strndup(json_string_value(v), json_string_length(v));
      return NULL;
    case PROTOBUF_C_TYPE_BYTES:
      /* No answer of the server carries bytes. */
      return err_new(INFERD_ERROR_INTERNAL, "JSON member '%s': bytes fields are not converted", f->name);
    case PROTOBUF_C_TYPE_MESSAGE: {
      if (!json_is_object(v)) return mismatch(f, "an object");
      ProtobufCMessage *m = new_message(f->descriptor);
      *(ProtobufCMessage **)dst = m;
      return fill_message(v, m, depth + 1);
    }
  }
  return err_new(INFERD_ERROR_INTERNAL, "JSON member '%s': unknown field type", f->name);
}

/* A map field's entries from a JSON object: one entry message per member. */
static inferd_error *set_map(const ProtobufCFieldDescriptor *f, ProtobufCMessage *message, const json_t *object,
                             int depth) {
  const ProtobufCMessageDescriptor *entry = f->descriptor;
  const ProtobufCFieldDescriptor *key_field = protobuf_c_message_descriptor_get_field(entry, 1);
  const ProtobufCFieldDescriptor *value_field = protobuf_c_message_descriptor_get_field(entry, 2);
  /* protoc makes a map's entry a message of exactly `key` = 1, `value` = 2;
   * any other repeated message wants an array. */
  if (entry->n_fields != 2 || !key_field || !value_field || strcmp(key_field->name, "key") != 0 ||
      strcmp(value_field->name, "value") != 0)
    return mismatch(f, "an array");
  const size_t n = json_object_size(object);
  ProtobufCMessage **entries = mem_zalloc((n ? n : 1) * sizeof(*entries));
  *(ProtobufCMessage ***)member_at(message, f->offset) = entries;
  size_t *count = member_at(message, f->quantifier_offset);
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)object, key, value) {
    ProtobufCMessage *e = new_message(entry);
    entries[(*count)++] = e;
    json_t *key_json = json_string(key);
    inferd_error *err = key_json ? set_value(key_field, member_at(e, key_field->offset), key_json, depth)
                                 : err_new(INFERD_ERROR_NO_MEMORY, "out of memory");
    json_decref(key_json);
    if (!err && !json_is_null(value)) err = set_value(value_field, member_at(e, value_field->offset), value, depth);
    if (err) return err;
  }
  return NULL;
}

static inferd_error *set_repeated(const ProtobufCFieldDescriptor *f, ProtobufCMessage *message, const json_t *v,
                                  int depth) {
  if (json_is_object(v) && f->type == PROTOBUF_C_TYPE_MESSAGE) return set_map(f, message, v, depth);
  if (!json_is_array(v)) return mismatch(f, "an array");
  const size_t n = json_array_size(v), elem = element_size(f);
  char *items = mem_zalloc((n ? n : 1) * elem);
  *(void **)member_at(message, f->offset) = items;
  size_t *count = member_at(message, f->quantifier_offset);
  for (size_t i = 0; i < n; i++) {
    /* Counted before it is set, so that a failure frees what it began. */
    (*count)++;
    ERR_TRY(set_value(f, items + i * elem, json_array_get(v, i), depth));
  }
  return NULL;
}

static inferd_error *fill_message(const json_t *object, ProtobufCMessage *message, int depth) {
  if (depth > MAX_DEPTH) return err_new(INFERD_ERROR_INTERNAL, "JSON nested deeper than %d levels", MAX_DEPTH);
  const ProtobufCMessageDescriptor *d = message->descriptor;
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)object, key, value) {
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);
    if (!f || json_is_null(value)) continue;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      ERR_TRY(set_repeated(f, message, value, depth));
      continue;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      /* A second member of the same oneof replaces the first. */
      uint32_t *which = member_at(message, f->quantifier_offset);
      if (*which) {
        const ProtobufCFieldDescriptor *old = protobuf_c_message_descriptor_get_field(d, (unsigned)*which);
        if (old && old->type == PROTOBUF_C_TYPE_MESSAGE)
          protobuf_c_message_free_unpacked(*(ProtobufCMessage **)member_at(message, old->offset), NULL);
        else if (old && old->type == PROTOBUF_C_TYPE_STRING)
          free(*(char **)member_at(message, old->offset));
        memset(member_at(message, f->offset), 0, element_size(f));
        *which = 0;
      }
      ERR_TRY(set_value(f, member_at(message, f->offset), value, depth));
      *which = f->id;
      continue;
    }
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
        f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
      *(protobuf_c_boolean *)member_at(message, f->quantifier_offset) = 1;
    ERR_TRY(set_value(f, member_at(message, f->offset), value, depth));
  }
  return NULL;
}

inferd_error *grpc_json_to_message(const json_t *object, ProtobufCMessage *message) {
  if (!json_is_object(object))
    return err_new(INFERD_ERROR_INTERNAL, "%s: JSON is not an object", message->descriptor->name);
  return fill_message(object, message, 0);
}

inferd_error *grpc_json_parse_message(const char *json, const ProtobufCMessageDescriptor *descriptor,
                                      const char *wrap_field, ProtobufCMessage **out) {
  *out = NULL;
  json_error_t jerr;
  json_t *root = json_loads(json, JSON_DECODE_ANY, &jerr);
  if (!root) return err_new(INFERD_ERROR_INTERNAL, "%s: malformed JSON: %s", descriptor->name, jerr.text);
  if (wrap_field) {
    json_t *wrapped = json_object();
    /* json_object_set_new takes root, even when it fails. */
    if (!wrapped || json_object_set_new(wrapped, wrap_field, root) != 0) {
      if (!wrapped) json_decref(root);
      json_decref(wrapped);
      return err_new(INFERD_ERROR_NO_MEMORY, "out of memory");
    }
    root = wrapped;
  }
  ProtobufCMessage *m = new_message(descriptor);
  inferd_error *err = grpc_json_to_message(root, m);
  json_decref(root);
  if (err) {
    protobuf_c_message_free_unpacked(m, NULL);
    return err;
  }
  *out = m;
  return NULL;
}
