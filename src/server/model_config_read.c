/*
 * Reads a pbtxt tree (parsed from config.pbtxt, or converted from JSON) into
 * a model_config, message by message as model_config.proto lays them out.
 *
 * Each message reader walks its fields once. Known fields are type-checked:
 * a string where an integer belongs or an unknown enum value is an error at
 * the value's line:column, a field given twice or with a rival of its oneof
 * an error at the field's name;
 * a field this reader does not know is skipped with its whole subtree and
 * reported as a warning, worded differently for fields Triton has but inferd
 * ignores and for names Triton does not have at all. Range and consistency
 * checks are left to model_config_validate.c, which finds the line:column of
 * each field through the paths recorded here.
 *
 * On an error the reader stops and the half-read config is freed, so nothing
 * below needs to unwind its path or partial state.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "base/mem.h"
#include "server/model_config_internal.h"

typedef struct reader {
  const pbtxt_doc *doc;
  model_config *cfg;
  char path[512];
  size_t path_len;
} reader;

typedef struct enum_value {
  const char *name;
  int value; /* the number model_config.proto gives it */
  int ours;  /* what the struct stores */
} enum_value;

static const enum_value datatype_values[] = {
    {"TYPE_INVALID", 0, INFERD_TYPE_INVALID}, {"TYPE_BOOL", 1, INFERD_TYPE_BOOL},
    {"TYPE_UINT8", 2, INFERD_TYPE_UINT8},     {"TYPE_UINT16", 3, INFERD_TYPE_UINT16},
    {"TYPE_UINT32", 4, INFERD_TYPE_UINT32},   {"TYPE_UINT64", 5, INFERD_TYPE_UINT64},
    {"TYPE_INT8", 6, INFERD_TYPE_INT8},       {"TYPE_INT16", 7, INFERD_TYPE_INT16},
    {"TYPE_INT32", 8, INFERD_TYPE_INT32},     {"TYPE_INT64", 9, INFERD_TYPE_INT64},
    {"TYPE_FP16", 10, INFERD_TYPE_FP16},      {"TYPE_FP32", 11, INFERD_TYPE_FP32},
    {"TYPE_FP64", 12, INFERD_TYPE_FP64},      {"TYPE_STRING", 13, INFERD_TYPE_BYTES},
    {"TYPE_BF16", 14, INFERD_TYPE_BF16},      {NULL, 0, 0},
};
static const enum_value format_values[] = {
    {"FORMAT_NONE", 0, MODEL_FORMAT_NONE}, {"FORMAT_NHWC", 1, MODEL_FORMAT_NHWC},
    {"FORMAT_NCHW", 2, MODEL_FORMAT_NCHW}, {NULL, 0, 0}};
static const enum_value kind_values[] = {{"KIND_AUTO", 0, MODEL_KIND_AUTO}, {"KIND_GPU", 1, MODEL_KIND_GPU},
                                         {"KIND_CPU", 2, MODEL_KIND_CPU},   {"KIND_MODEL", 3, MODEL_KIND_MODEL},
                                         {NULL, 0, 0}};
static const enum_value timeout_action_values[] = {
    {"REJECT", 0, MODEL_TIMEOUT_REJECT}, {"DELAY", 1, MODEL_TIMEOUT_DELAY}, {NULL, 0, 0}};

/* Fields model_config.proto has and inferd ignores, per message. */
static const char *const config_ignored[] = {"runtime",
                                             "batch_input",
                                             "batch_output",
                                             "sequence_batching",
                                             "ensemble_scheduling",
                                             "cc_model_filenames",
                                             "metric_tags",
                                             "model_operations",
                                             "model_transaction_policy",
                                             "model_repository_agents",
                                             "response_cache",
                                             "model_metrics",
                                             NULL};
static const char *const tensor_ignored[] = {"is_non_linear_format_io", NULL};
static const char *const group_ignored[] = {"rate_limiter", "secondary_devices", "profile", "passive", "host_policy",
                                            NULL};
static const char *const none_ignored[] = {NULL};

/* ---- paths, locations, messages ---- */

static size_t path_push(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t path_push(reader *r, const char *fmt, ...) {
  size_t mark = r->path_len;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(r->path + r->path_len, sizeof(r->path) - r->path_len, fmt, ap);
  va_end(ap);
  if (n > 0) r->path_len += (size_t)n;
  if (r->path_len >= sizeof(r->path)) r->path_len = sizeof(r->path) - 1;
  return mark;
}

static void path_pop(reader *r, size_t mark) {
  r->path_len = mark;
  r->path[mark] = 0;
}

/* Enters field `n`: extends the path and records where the field is. */
static size_t enter_field(reader *r, const pbtxt_node *n) {
  size_t mark = path_push(r, r->path_len ? ".%.100s" : "%.100s", n->name);
  model_config__locate(r->cfg, r->path, n->line, n->column);
  return mark;
}

/* Where an element is: a scalar or a list element at its value, a message
 * written as `field { ... }` at its field name. */
static void locate_element(reader *r, const pbtxt_node *n) {
  if (n->kind != PBTXT_MESSAGE || n->in_list)
    model_config__locate(r->cfg, r->path, n->value_line, n->value_column);
  else
    model_config__locate(r->cfg, r->path, n->line, n->column);
}

/* Enters element `index` of a repeated field. */
static size_t enter_index(reader *r, const pbtxt_node *n, int index) {
  size_t mark = path_push(r, "[%d]", index);
  locate_element(r, n);
  return mark;
}

static inferd_error *located_error(const reader *r, int line, int column, const char *fmt, va_list ap) {
  char msg[1024];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  if (line > 0) return err_new(INFERD_ERROR_INVALID_ARG, "%s:%d:%d: %s", r->doc->source, line, column, msg);
  return err_new(INFERD_ERROR_INVALID_ARG, "%s: %s", r->doc->source, msg);
}

/* An error about a node's value (wrong type, out of range), at the value. */
static inferd_error *node_error(const reader *r, const pbtxt_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inferd_error *node_error(const reader *r, const pbtxt_node *n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  bool at_value = n->value_line > 0;
  inferd_error *e = located_error(r, at_value ? n->value_line : n->line, at_value ? n->value_column : n->column,
                                  fmt, ap);
  va_end(ap);
  return e;
}

/* An error about a field being there at all (twice, or with a rival), at
 * its name. */
static inferd_error *field_error(const reader *r, const pbtxt_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inferd_error *field_error(const reader *r, const pbtxt_node *n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  inferd_error *e = located_error(r, n->line, n->column, fmt, ap);
  va_end(ap);
  return e;
}

/* A value that sets nothing: skipping it loses nothing, so it is not worth a
 * warning. Triton's own JSON prints such defaults ("runtime": "") for every
 * field, and clients send that JSON back. */
static bool node_is_default(const pbtxt_node *n) {
  switch (n->kind) {
    case PBTXT_MESSAGE: return n->child_count == 0;
    case PBTXT_STRING: return n->text_len == 0;
    case PBTXT_NUMBER: return strtod(n->text, NULL) == 0.0;
    case PBTXT_IDENT: return strcmp(n->text, "false") == 0;
  }
  return false;
}

static bool name_in(const char *name, const char *const *list) {
  for (; *list; list++)
    if (strcmp(name, *list) == 0) return true;
  return false;
}

/* Skips field `n` (whose path is entered) with a warning. `last` avoids one
 * warning per element when a list of an ignored field is given. */
static void skip_field(reader *r, const pbtxt_node *n, const char *const *ignored, const char **last) {
  if (node_is_default(n) || (*last && strcmp(*last, n->name) == 0)) return;
  *last = n->name;
  if (name_in(n->name, ignored))
    model_config__warn(r->cfg, n->line, n->column, "field '%s' is not supported by inferd and is ignored", r->path);
  else
    model_config__warn(r->cfg, n->line, n->column,
                       "field '%s' is not a Triton model configuration field and is ignored", r->path);
}

/* ---- scalars ---- */

/* Integers: decimal with an optional '-', and in text format also 0x hex
 * and 0 octal (JSON is decimal only). Values beyond int64 are refused even
 * for uint64 fields: JSON output goes through int64, and no sensible setting
 * needs more. */
static bool parse_integer(const char *s, bool text_format, int64_t *out) {
  bool negative = *s == '-';
  if (negative) s++;
  unsigned base = 10;
  if (text_format && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s += 2;
  } else if (text_format && s[0] == '0' && s[1]) {
    base = 8;
    s++;
  }
  if (!*s) return false;
  uint64_t v = 0;
  for (; *s; s++) {
    unsigned d;
    if (*s >= '0' && *s <= '9')
      d = (unsigned)(*s - '0');
    else if (base == 16 && (*s | 0x20) >= 'a' && (*s | 0x20) <= 'f')
      d = (unsigned)((*s | 0x20) - 'a' + 10);
    else
      return false;
    if (d >= base || v > (UINT64_MAX - d) / base) return false;
    v = v * base + d;
  }
  if (negative) {
    if (v > (uint64_t)INT64_MAX + 1) return false;
    *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
  } else {
    if (v > (uint64_t)INT64_MAX) return false;
    *out = (int64_t)v;
  }
  return true;
}

static inferd_error *read_int(const reader *r, const pbtxt_node *n, int64_t min, int64_t max, int64_t *out) {
  bool textual = n->kind == PBTXT_NUMBER || (r->doc->json && n->kind == PBTXT_STRING);
  if (!textual)
    return node_error(r, n, "field '%s' expects an integer, got %s", r->path, pbtxt_kind_name(n->kind));
  int64_t v;
  bool ok = parse_integer(n->text, !r->doc->json, &v);
  if (!ok && r->doc->json) {
    /* Protobuf's JSON mapping takes integral reals such as 3.0 or 1e3. */
    char *end;
    double d = strtod(n->text, &end);
    ok = *end == 0 && end != n->text && d > -9e15 && d < 9e15 && d == (double)(int64_t)d;
    v = ok ? (int64_t)d : 0;
  }
  if (!ok) return node_error(r, n, "field '%s' expects an integer, got '%.64s'", r->path, n->text);
  if (v < min || v > max)
    return node_error(r, n, "field '%s' must be between %lld and %lld, got %lld", r->path, (long long)min,
                      (long long)max, (long long)v);
  *out = v;
  return NULL;
}

static inferd_error *read_int32(const reader *r, const pbtxt_node *n, int *out) {
  int64_t v;
  ERR_TRY(read_int(r, n, INT32_MIN, INT32_MAX, &v));
  *out = (int)v;
  return NULL;
}

static inferd_error *read_uint32(const reader *r, const pbtxt_node *n, uint32_t *out) {
  int64_t v;
  ERR_TRY(read_int(r, n, 0, UINT32_MAX, &v));
  *out = (uint32_t)v;
  return NULL;
}

static inferd_error *read_uint64(const reader *r, const pbtxt_node *n, uint64_t *out) {
  int64_t v;
  ERR_TRY(read_int(r, n, 0, INT64_MAX, &v));
  *out = (uint64_t)v;
  return NULL;
}

static inferd_error *read_bool(const reader *r, const pbtxt_node *n, bool *out) {
  static const char *const yes[] = {"true", "True", "t", "1", NULL};
  static const char *const no[] = {"false", "False", "f", "0", NULL};
  if (n->kind == PBTXT_IDENT || n->kind == PBTXT_NUMBER) {
    if (name_in(n->text, yes)) return *out = true, NULL;
    if (name_in(n->text, no)) return *out = false, NULL;
  }
  if (n->kind == PBTXT_MESSAGE) return node_error(r, n, "field '%s' expects true or false, got a message", r->path);
  return node_error(r, n, "field '%s' expects true or false, got '%.64s'", r->path, n->text);
}

/* Proto3 strings are UTF-8, and JSON output cannot carry anything else. */
static bool utf8_valid(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned char c = s[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > n) return false;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3Fu);
    }
    static const uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

/* Replaces *out (a malloc'd string) with the node's string. */
static inferd_error *read_string(const reader *r, const pbtxt_node *n, char **out) {
  if (n->kind != PBTXT_STRING)
    return node_error(r, n, "field '%s' expects a string, got %s", r->path, pbtxt_kind_name(n->kind));
  if (!utf8_valid((const unsigned char *)n->text, n->text_len))
    return node_error(r, n, "field '%s' is not valid UTF-8", r->path);
  char *s = model_config__strndup(n->text, n->text_len);
  if (!s) return model_config__no_memory(r->cfg);
  free(*out);
  *out = s;
  return NULL;
}

static inferd_error *read_enum(const reader *r, const pbtxt_node *n, const enum_value *values, int *out) {
  bool by_name = n->kind == PBTXT_IDENT || (r->doc->json && n->kind == PBTXT_STRING);
  if (by_name) {
    for (const enum_value *v = values; v->name; v++) {
      /* Triton parses JSON enums case-insensitively; text format is exact. */
      if (r->doc->json ? strcasecmp(v->name, n->text) == 0 : strcmp(v->name, n->text) == 0) {
        *out = v->ours;
        return NULL;
      }
    }
  } else if (n->kind == PBTXT_NUMBER) {
    int64_t number;
    if (parse_integer(n->text, !r->doc->json, &number))
      for (const enum_value *v = values; v->name; v++)
        if (v->value == number) {
          *out = v->ours;
          return NULL;
        }
  } else {
    return node_error(r, n, "field '%s' expects a name such as %s, got %s", r->path, values[1].name,
                      pbtxt_kind_name(n->kind));
  }
  char expected[512];
  size_t len = 0;
  for (const enum_value *v = values; v->name && len < sizeof(expected); v++)
    len += (size_t)snprintf(expected + len, sizeof(expected) - len, "%s%s", len ? ", " : "", v->name);
  return node_error(r, n, "unknown value '%.64s' for field '%s' (expected %s)", n->text, r->path, expected);
}

static inferd_error *expect_message(const reader *r, const pbtxt_node *n) {
  if (n->kind != PBTXT_MESSAGE)
    return node_error(r, n, "field '%s' expects a message { ... }, got %s", r->path, pbtxt_kind_name(n->kind));
  return NULL;
}

/* A singular field: not a list, and not given twice. `bit` is the field's
 * bit in the caller's `seen` mask. */
static inferd_error *once(const reader *r, const pbtxt_node *n, uint64_t *seen, uint64_t bit) {
  if (n->in_list) return node_error(r, n, "field '%s' takes a single value, not a list", r->path);
  if (*seen & bit) return field_error(r, n, "field '%s' is given more than once", r->path);
  *seen |= bit;
  return NULL;
}

/* One dims/shape/versions element: bounded by INFERD_MAX_RANK dims. */
static inferd_error *read_dim(reader *r, const pbtxt_node *n, int64_t *dims, int *rank) {
  if (*rank >= INFERD_MAX_RANK)
    return node_error(r, n, "field '%s' has more than %d dimensions, the most inferd supports", r->path,
                      INFERD_MAX_RANK);
  size_t mark = enter_index(r, n, *rank);
  ERR_TRY(read_int(r, n, INT64_MIN, INT64_MAX, &dims[*rank]));
  (*rank)++;
  path_pop(r, mark);
  return NULL;
}

/* ---- arrays sized up front ---- */

/* How many entries the fields named `name` of `msg` hold: one per node, or
 * for a map in JSON form, one per member of its object. */
static size_t count_entries(const reader *r, const pbtxt_node *msg, const char *name, bool map) {
  size_t n = 0;
  for (const pbtxt_node *c = msg->first_child; c; c = c->next)
    if (strcmp(c->name, name) == 0) n += (map && r->doc->json) ? (size_t)c->child_count : 1;
  return n;
}

static inferd_error *alloc_entries(const reader *r, const pbtxt_node *msg, const char *name, bool map,
                                   size_t elem_size, void **out) {
  size_t n = count_entries(r, msg, name, map);
  if (n == 0) return NULL;
  if (n > INT32_MAX) return model_config__no_memory(r->cfg);
  void *p = mem_try_zalloc(n, elem_size);
  if (!p) return model_config__no_memory(r->cfg);
  *out = p;
  return NULL;
}

static inferd_error *set_string(const reader *r, char **out, const char *s) {
  char *d = model_config__strdup(s);
  if (!d) return model_config__no_memory(r->cfg);
  free(*out);
  *out = d;
  return NULL;
}

/* ---- maps ----
 * Text form: each `field { key: K value { ... } }` is one entry. JSON form:
 * one object whose member names are the keys. The handler gets the key as
 * text (NULL when the entry has none: the key type's default), the key node
 * when there is one, and the value (NULL: an empty message). */
typedef inferd_error *(*map_entry_fn)(reader *r, const pbtxt_node *entry, const char *key,
                                      const pbtxt_node *key_node, const pbtxt_node *value, void *ctx);

static inferd_error *read_map(reader *r, const pbtxt_node *n, map_entry_fn fn, void *ctx) {
  ERR_TRY(expect_message(r, n));
  if (r->doc->json) {
    if (n->in_list) return node_error(r, n, "field '%s' is a map and expects an object", r->path);
    for (const pbtxt_node *c = n->first_child; c; c = c->next) ERR_TRY(fn(r, c, c->name, NULL, c, ctx));
    return NULL;
  }
  const pbtxt_node *key = NULL, *value = NULL;
  uint64_t seen = 0;
  for (const pbtxt_node *c = n->first_child; c; c = c->next) {
    if (strcmp(c->name, "key") != 0 && strcmp(c->name, "value") != 0)
      return field_error(r, c, "an entry of map '%s' has a field '%.64s'; only key and value are allowed", r->path,
                         c->name);
    size_t mark = enter_field(r, c);
    if (strcmp(c->name, "key") == 0) {
      ERR_TRY(once(r, c, &seen, 1));
      key = c;
    } else {
      ERR_TRY(once(r, c, &seen, 2));
      value = c;
    }
    path_pop(r, mark);
  }
  return fn(r, n, key ? key->text : NULL, key, value, ctx);
}

static inferd_error *map_string_key(reader *r, const pbtxt_node *key_node, const char **key) {
  if (key_node && key_node->kind != PBTXT_STRING)
    return node_error(r, key_node, "the key of map '%s' must be a string, got %s", r->path,
                      pbtxt_kind_name(key_node->kind));
  if (!*key) *key = "";
  if (!utf8_valid((const unsigned char *)*key, strlen(*key)))
    return key_node ? node_error(r, key_node, "a key of map '%s' is not valid UTF-8", r->path)
                    : model_config__error(r->cfg, NULL, "a key of map '%s' is not valid UTF-8", r->path);
  return NULL;
}

/* ---- repeated map keys ----
 * Protobuf keeps the last value given for a key. Entries are appended as
 * read and the overridden ones dropped afterwards, by sorting the keys once,
 * so a file of many entries costs n log n rather than n squared. */
typedef struct map_key {
  const char *text; /* string keys; NULL for numeric ones */
  uint64_t number;
  int index;
} map_key;

static int compare_map_keys(const void *a, const void *b) {
  const map_key *x = a, *y = b;
  int c = x->text ? strcmp(x->text, y->text) : (x->number > y->number) - (x->number < y->number);
  return c ? c : (x->index > y->index) - (x->index < y->index);
}

typedef map_key (*map_key_fn)(const void *item);
typedef void (*map_release_fn)(void *item);

/* Removes from items[0..*count) (each `size` bytes) every entry whose key
 * comes again later, releasing it; the others keep their order. */
static inferd_error *drop_overridden(const reader *r, void *items, int *count, size_t size, map_key_fn key_of,
                                     map_release_fn release) {
  int n = *count;
  if (n < 2) return NULL;
  map_key *keys = mem_try_alloc((size_t)n, sizeof(*keys));
  bool *drop = mem_try_zalloc((size_t)n, sizeof(bool));
  if (!keys || !drop) {
    free(keys);
    free(drop);
    return model_config__no_memory(r->cfg);
  }
  char *base = items;
  for (int i = 0; i < n; i++) {
    keys[i] = key_of(base + (size_t)i * size);
    keys[i].index = i;
  }
  qsort(keys, (size_t)n, sizeof(*keys), compare_map_keys);
  for (int i = 0; i + 1 < n; i++) {
    bool same = keys[i].text ? strcmp(keys[i].text, keys[i + 1].text) == 0 : keys[i].number == keys[i + 1].number;
    if (same) drop[keys[i].index] = true;
  }
  int kept = 0;
  for (int i = 0; i < n; i++) {
    if (drop[i])
      release(base + (size_t)i * size);
    else if (kept++ != i)
      memcpy(base + (size_t)(kept - 1) * size, base + (size_t)i * size, size);
  }
  *count = kept;
  free(keys);
  free(drop);
  return NULL;
}

static map_key parameter_key(const void *item) { return (map_key){.text = ((const model_parameter *)item)->key}; }
static void parameter_release(void *item) {
  model_parameter *p = item;
  free(p->key);
  free(p->string_value);
}

static map_key priority_policy_key(const void *item) {
  return (map_key){.number = ((const model_priority_queue_policy *)item)->priority_level};
}
static void priority_policy_release(void *item) { (void)item; }

static map_key warmup_input_key(const void *item) { return (map_key){.text = ((const model_warmup_input *)item)->name}; }
static void warmup_input_release(void *item) {
  model_warmup_input *in = item;
  free(in->name);
  free(in->input_data_file);
}

/* ---- fields by table ----
 * A message's known fields, a row each: the field's name, how its value is
 * read and where it goes (an offset into the message's struct, or a reader
 * of its own). Singular fields are checked against lists and repeats by
 * their row's place in the table; any other field of the message is
 * skipped with a warning (`ignored`: those Triton has and inferd does not
 * read). Adding a field is adding its row. */
typedef enum field_kind {
  FIELD_STRING, /* char *, owned */
  FIELD_BOOL,   /* bool */
  FIELD_INT32,  /* int */
  FIELD_UINT32, /* uint32_t */
  FIELD_UINT64, /* uint64_t */
  FIELD_ENUM,   /* an int-sized enum, from `values` */
  FIELD_READ,   /* singular, read by `read` */
  FIELD_EACH,   /* repeated (a list, or given many times): `read` for each element */
} field_kind;

/* Where a row applies: in every message of its table, or only in input or
 * output tensors. */
enum { IN_ANY = 0, IN_INPUT = 1, IN_OUTPUT = 2 };

typedef inferd_error *(*field_read_fn)(reader *r, const pbtxt_node *n, void *msg);

typedef struct field_rule {
  const char *name;
  field_kind kind;
  size_t offset;
  const enum_value *values;
  field_read_fn read; /* its path entered, as for every field */
  unsigned only;      /* IN_INPUT or IN_OUTPUT; IN_ANY: everywhere */
} field_rule;

#define SCALAR(T, field_name, member, field_kind_) \
  {.name = (field_name), .kind = (field_kind_), .offset = offsetof(T, member)}
#define ENUM(T, field_name, member, names) \
  {.name = (field_name), .kind = FIELD_ENUM, .offset = offsetof(T, member), .values = (names)}
#define READ(field_name, fn) {.name = (field_name), .kind = FIELD_READ, .read = (fn)}
#define EACH(field_name, fn) {.name = (field_name), .kind = FIELD_EACH, .read = (fn)}
#define N_RULES(rules) ((int)(sizeof(rules) / sizeof((rules)[0])))

/* Reads the fields of message `msg` into `target` by `rules` (at most 64
 * rows); `where` picks the rows marked IN_INPUT or IN_OUTPUT. */
static inferd_error *read_fields(reader *r, const pbtxt_node *msg, const field_rule *rules, int n_rules,
                                 void *target, unsigned where, const char *const *ignored) {
  uint64_t seen = 0;
  const char *last = NULL;
  for (const pbtxt_node *n = msg->first_child; n; n = n->next) {
    size_t mark = enter_field(r, n);
    int k = 0;
    while (k < n_rules && (strcmp(rules[k].name, n->name) != 0 || (rules[k].only && !(rules[k].only & where)))) k++;
    if (k == n_rules) {
      skip_field(r, n, ignored, &last);
      path_pop(r, mark);
      continue;
    }
    const field_rule *f = &rules[k];
    char *field = (char *)target + f->offset;
    if (f->kind != FIELD_EACH) ERR_TRY(once(r, n, &seen, 1ull << k));
    int v;
    switch (f->kind) {
      case FIELD_STRING: ERR_TRY(read_string(r, n, (char **)field)); break;
      case FIELD_BOOL: ERR_TRY(read_bool(r, n, (bool *)field)); break;
      case FIELD_INT32: ERR_TRY(read_int32(r, n, (int *)field)); break;
      case FIELD_UINT32: ERR_TRY(read_uint32(r, n, (uint32_t *)field)); break;
      case FIELD_UINT64: ERR_TRY(read_uint64(r, n, (uint64_t *)field)); break;
      case FIELD_ENUM:
        ERR_TRY(read_enum(r, n, f->values, &v));
        *(int *)field = v;
        break;
      case FIELD_READ:
      case FIELD_EACH: ERR_TRY(f->read(r, n, target)); break;
    }
    path_pop(r, mark);
  }
  return NULL;
}

/* ---- messages ---- */

static inferd_error *read_dims_message(reader *r, const pbtxt_node *msg, const char *field, int64_t *dims,
                                       int *rank) {
  ERR_TRY(expect_message(r, msg));
  const char *last = NULL;
  for (const pbtxt_node *n = msg->first_child; n; n = n->next) {
    size_t mark = enter_field(r, n);
    if (strcmp(n->name, field) == 0)
      ERR_TRY(read_dim(r, n, dims, rank));
    else
      skip_field(r, n, none_ignored, &last);
    path_pop(r, mark);
  }
  return NULL;
}

static inferd_error *tensor_dim(reader *r, const pbtxt_node *n, void *msg) {
  model_tensor_config *t = msg;
  return read_dim(r, n, t->dims, &t->rank);
}

static inferd_error *tensor_reshape(reader *r, const pbtxt_node *n, void *msg) {
  model_tensor_config *t = msg;
  t->has_reshape = true;
  return read_dims_message(r, n, "shape", t->reshape, &t->reshape_rank);
}

static const field_rule tensor_rules[] = {
    SCALAR(model_tensor_config, "name", name, FIELD_STRING),
    ENUM(model_tensor_config, "data_type", datatype, datatype_values),
    {.name = "format", .kind = FIELD_ENUM, .offset = offsetof(model_tensor_config, format), .values = format_values,
     .only = IN_INPUT},
    EACH("dims", tensor_dim),
    READ("reshape", tensor_reshape),
    {.name = "label_filename", .kind = FIELD_STRING, .offset = offsetof(model_tensor_config, label_filename),
     .only = IN_OUTPUT},
    SCALAR(model_tensor_config, "is_shape_tensor", is_shape_tensor, FIELD_BOOL),
    {.name = "allow_ragged_batch", .kind = FIELD_BOOL, .offset = offsetof(model_tensor_config, allow_ragged_batch),
     .only = IN_INPUT},
    {.name = "optional", .kind = FIELD_BOOL, .offset = offsetof(model_tensor_config, optional), .only = IN_INPUT},
};

static inferd_error *read_tensor(reader *r, const pbtxt_node *msg, model_tensor_config *t, bool input) {
  ERR_TRY(expect_message(r, msg));
  ERR_TRY(set_string(r, &t->name, ""));
  ERR_TRY(set_string(r, &t->label_filename, ""));
  return read_fields(r, msg, tensor_rules, N_RULES(tensor_rules), t, input ? IN_INPUT : IN_OUTPUT, tensor_ignored);
}

static inferd_error *read_version_policy(reader *r, const pbtxt_node *msg, model_version_policy *p) {
  ERR_TRY(expect_message(r, msg));
  const char *chosen = NULL;
  const char *last = NULL;
  for (const pbtxt_node *n = msg->first_child; n; n = n->next) {
    size_t mark = enter_field(r, n);
    bool known = !strcmp(n->name, "latest") || !strcmp(n->name, "all") || !strcmp(n->name, "specific");
    if (!known) {
      skip_field(r, n, none_ignored, &last);
      path_pop(r, mark);
      continue;
    }
    if (chosen) {
      if (strcmp(chosen, n->name) == 0) return field_error(r, n, "field '%s' is given more than once", r->path);
      return field_error(r, n, "version_policy takes one of latest, all or specific; '%s' is already given", chosen);
    }
    chosen = n->name;
    if (n->in_list) return node_error(r, n, "field '%s' takes a single value, not a list", r->path);
    ERR_TRY(expect_message(r, n));
    if (strcmp(n->name, "latest") == 0) {
      p->kind = MODEL_VERSIONS_LATEST;
      p->num_versions = 1;
      uint64_t seen = 0;
      for (const pbtxt_node *c = n->first_child; c; c = c->next) {
        size_t m2 = enter_field(r, c);
        if (strcmp(c->name, "num_versions") == 0) {
          ERR_TRY(once(r, c, &seen, 1));
          ERR_TRY(read_uint32(r, c, &p->num_versions));
        } else {
          skip_field(r, c, none_ignored, &last);
        }
        path_pop(r, m2);
      }
    } else if (strcmp(n->name, "all") == 0) {
      p->kind = MODEL_VERSIONS_ALL;
      for (const pbtxt_node *c = n->first_child; c; c = c->next) {
        size_t m2 = enter_field(r, c);
        skip_field(r, c, none_ignored, &last);
        path_pop(r, m2);
      }
    } else {
      p->kind = MODEL_VERSIONS_SPECIFIC;
      ERR_TRY(alloc_entries(r, n, "versions", false, sizeof(int64_t), (void **)&p->versions));
      for (const pbtxt_node *c = n->first_child; c; c = c->next) {
        size_t m2 = enter_field(r, c);
        if (strcmp(c->name, "versions") == 0) {
          size_t m3 = enter_index(r, c, p->version_count);
          ERR_TRY(read_int(r, c, INT64_MIN, INT64_MAX, &p->versions[p->version_count]));
          p->version_count++;
          path_pop(r, m3);
        } else {
          skip_field(r, c, none_ignored, &last);
        }
        path_pop(r, m2);
      }
    }
    path_pop(r, mark);
  }
  return NULL;
}

static inferd_error *group_gpu(reader *r, const pbtxt_node *n, void *msg) {
  model_instance_group *g = msg;
  size_t mark = enter_index(r, n, g->gpu_count);
  ERR_TRY(read_int32(r, n, &g->gpus[g->gpu_count]));
  g->gpu_count++;
  path_pop(r, mark);
  return NULL;
}

static const field_rule group_rules[] = {
    SCALAR(model_instance_group, "name", name, FIELD_STRING),
    ENUM(model_instance_group, "kind", kind, kind_values),
    SCALAR(model_instance_group, "count", count, FIELD_INT32),
    EACH("gpus", group_gpu),
};

static inferd_error *read_instance_group(reader *r, const pbtxt_node *msg, model_instance_group *g) {
  ERR_TRY(expect_message(r, msg));
  ERR_TRY(set_string(r, &g->name, ""));
  g->kind = MODEL_KIND_AUTO;
  g->count = 1;
  ERR_TRY(alloc_entries(r, msg, "gpus", false, sizeof(int), (void **)&g->gpus));
  return read_fields(r, msg, group_rules, N_RULES(group_rules), g, IN_ANY, group_ignored);
}

static const field_rule queue_policy_rules[] = {
    ENUM(model_queue_policy, "timeout_action", timeout_action, timeout_action_values),
    SCALAR(model_queue_policy, "default_timeout_microseconds", default_timeout_microseconds, FIELD_UINT64),
    SCALAR(model_queue_policy, "allow_timeout_override", allow_timeout_override, FIELD_BOOL),
    SCALAR(model_queue_policy, "max_queue_size", max_queue_size, FIELD_UINT32),
};

static inferd_error *read_queue_policy(reader *r, const pbtxt_node *msg, model_queue_policy *q) {
  *q = (model_queue_policy){0};
  if (!msg) return NULL;
  ERR_TRY(expect_message(r, msg));
  return read_fields(r, msg, queue_policy_rules, N_RULES(queue_policy_rules), q, IN_ANY, none_ignored);
}

static inferd_error *priority_policy_entry(reader *r, const pbtxt_node *entry, const char *key,
                                           const pbtxt_node *key_node, const pbtxt_node *value, void *ctx) {
  model_dynamic_batching *d = ctx;
  uint64_t level = 0;
  if (key_node) {
    ERR_TRY(read_uint64(r, key_node, &level));
  } else if (key) {
    int64_t v;
    if (!parse_integer(key, false, &v) || v < 0)
      return model_config__error(r->cfg, NULL, "the keys of '%s' must be priority levels, got '%.64s'", r->path, key);
    level = (uint64_t)v;
  }
  size_t mark = path_push(r, "[%llu]", (unsigned long long)level);
  locate_element(r, entry);
  model_priority_queue_policy *p = &d->priority_queue_policies[d->priority_queue_policy_count++];
  p->priority_level = level;
  ERR_TRY(read_queue_policy(r, value, &p->policy));
  path_pop(r, mark);
  return NULL;
}

static inferd_error *batching_preferred(reader *r, const pbtxt_node *n, void *msg) {
  model_dynamic_batching *d = msg;
  size_t mark = enter_index(r, n, d->preferred_batch_size_count);
  ERR_TRY(read_int32(r, n, &d->preferred_batch_sizes[d->preferred_batch_size_count]));
  d->preferred_batch_size_count++;
  path_pop(r, mark);
  return NULL;
}

static inferd_error *batching_default_queue_policy(reader *r, const pbtxt_node *n, void *msg) {
  model_dynamic_batching *d = msg;
  d->has_default_queue_policy = true;
  return read_queue_policy(r, n, &d->default_queue_policy);
}

static inferd_error *batching_priority_policy(reader *r, const pbtxt_node *n, void *msg) {
  return read_map(r, n, priority_policy_entry, msg);
}

static const field_rule batching_rules[] = {
    EACH("preferred_batch_size", batching_preferred),
    SCALAR(model_dynamic_batching, "max_queue_delay_microseconds", max_queue_delay_microseconds, FIELD_UINT64),
    SCALAR(model_dynamic_batching, "preserve_ordering", preserve_ordering, FIELD_BOOL),
    SCALAR(model_dynamic_batching, "priority_levels", priority_levels, FIELD_UINT64),
    SCALAR(model_dynamic_batching, "default_priority_level", default_priority_level, FIELD_UINT64),
    READ("default_queue_policy", batching_default_queue_policy),
    EACH("priority_queue_policy", batching_priority_policy),
};

static inferd_error *read_dynamic_batching(reader *r, const pbtxt_node *msg, model_dynamic_batching *d) {
  ERR_TRY(expect_message(r, msg));
  d->enabled = true;
  ERR_TRY(alloc_entries(r, msg, "preferred_batch_size", false, sizeof(int), (void **)&d->preferred_batch_sizes));
  ERR_TRY(alloc_entries(r, msg, "priority_queue_policy", true, sizeof(model_priority_queue_policy),
                        (void **)&d->priority_queue_policies));
  ERR_TRY(read_fields(r, msg, batching_rules, N_RULES(batching_rules), d, IN_ANY, none_ignored));
  return drop_overridden(r, d->priority_queue_policies, &d->priority_queue_policy_count,
                         sizeof(*d->priority_queue_policies), priority_policy_key, priority_policy_release);
}

/* A model parameter naming the GPU instances' precision (`precision`, or
 * `inferd_precision` for configurations that keep backend keys apart):
 * inferd's own names, lower case. */
static bool is_precision_parameter(const char *key) {
  return strcmp(key, "precision") == 0 || strcmp(key, "inferd_precision") == 0;
}

static inferd_error *check_precision_parameter(const reader *r, const pbtxt_node *n, const char *key,
                                               const char *value) {
  inferd_precision p;
  if (inferd_precision_from_name(value, &p) && p == INFERD_PRECISION_INT8)
    return node_error(r, n,
                      "parameter '%s': int8 is not served on GPUs yet (CPU instances take it from the "
                      "cpu_execution_accelerator named \"inferd\": precision int8 with a calibration_cache)",
                      key);
  if (!inferd_precision_from_name(value, &p) || p == INFERD_PRECISION_DEFAULT)
    return node_error(r, n, "parameter '%s': unknown precision '%.64s' (expected fp32, tf32, fp16 or bf16)", key,
                      value);
  return NULL;
}

/* Starts string-keyed map entry *key into *p (its key set, its value
 * empty) and enters its path, which the caller pops at *mark. */
static inferd_error *begin_string_entry(reader *r, const pbtxt_node *entry, const char **key,
                                        const pbtxt_node *key_node, model_parameter *p, size_t *mark) {
  ERR_TRY(map_string_key(r, key_node, key));
  *mark = path_push(r, "[%.100s]", *key);
  locate_element(r, entry);
  ERR_TRY(set_string(r, &p->key, *key));
  return set_string(r, &p->string_value, "");
}

/* The onnxruntime backend's session parameters, as Triton users set them:
 * intra_op_thread_count is the CPU threads of each instance (a number; 0 or
 * empty: the default); inter_op_thread_count and execution_mode have no meaning
 * for inferd's engine (it runs one operator at a time, each on the
 * instance's threads) and are warned about. */
static inferd_error *onnxruntime_parameter(reader *r, const pbtxt_node *n, const char *key, const char *value) {
  if (strcmp(key, "intra_op_thread_count") == 0) {
    int64_t v = 0; /* an empty value (or none) is the default, as for every parameter */
    if (value && *value && (!parse_integer(value, false, &v) || v < 0 || v > 1024))
      return node_error(r, n, "intra_op_thread_count is '%.64s' (expected a number of threads, 0 to 1024)", value);
    r->cfg->intra_op_threads = (int)v;
  } else if (strcmp(key, "inter_op_thread_count") == 0 || strcmp(key, "execution_mode") == 0) {
    model_config__warn(r->cfg, n->line, n->column,
                       "parameter '%s' is ignored by inferd (its engine runs one operator at a time, each on the "
                       "instance's intra_op_thread_count threads)", key);
  }
  return NULL;
}

static inferd_error *parameter_entry(reader *r, const pbtxt_node *entry, const char *key,
                                     const pbtxt_node *key_node, const pbtxt_node *value, void *ctx) {
  (void)ctx;
  model_config *c = r->cfg;
  model_parameter *p = &c->parameters[c->parameter_count++];
  size_t mark;
  ERR_TRY(begin_string_entry(r, entry, &key, key_node, p, &mark));
  uint64_t seen = 0;
  if (value) {
    ERR_TRY(expect_message(r, value));
    const char *last = NULL;
    for (const pbtxt_node *n = value->first_child; n; n = n->next) {
      size_t m2 = enter_field(r, n);
      if (strcmp(n->name, "string_value") == 0) {
        ERR_TRY(once(r, n, &seen, 1));
        ERR_TRY(read_string(r, n, &p->string_value));
        if (is_precision_parameter(key)) ERR_TRY(check_precision_parameter(r, n, key, p->string_value));
        ERR_TRY(onnxruntime_parameter(r, n, key, p->string_value));
      } else {
        skip_field(r, n, none_ignored, &last);
      }
      path_pop(r, m2);
    }
  }
  /* Without a string_value the precision is "", refused like any unknown
   * name (as the configuration's JSON, which prints it, would be). */
  if (!seen && is_precision_parameter(key))
    ERR_TRY(check_precision_parameter(r, value ? value : entry, key, p->string_value));
  path_pop(r, mark);
  return NULL;
}

static inferd_error *warmup_input_entry(reader *r, const pbtxt_node *entry, const char *key,
                                        const pbtxt_node *key_node, const pbtxt_node *value, void *ctx) {
  model_warmup *w = ctx;
  ERR_TRY(map_string_key(r, key_node, &key));
  size_t mark = path_push(r, "[%.100s]", key);
  locate_element(r, entry);
  model_warmup_input *in = &w->inputs[w->input_count++];
  ERR_TRY(set_string(r, &in->name, key));
  ERR_TRY(set_string(r, &in->input_data_file, ""));
  const char *source = NULL;
  if (value) {
    ERR_TRY(expect_message(r, value));
    uint64_t seen = 0;
    const char *last = NULL;
    for (const pbtxt_node *n = value->first_child; n; n = n->next) {
      size_t m2 = enter_field(r, n);
      const char *f = n->name;
      int v;
      bool is_source = !strcmp(f, "zero_data") || !strcmp(f, "random_data") || !strcmp(f, "input_data_file");
      if (is_source) {
        if (source)
          return field_error(r, n, "warmup input '%.64s' takes one of zero_data, random_data or input_data_file; "
                            "'%s' is already given", key, source);
        source = f;
        if (n->in_list) return node_error(r, n, "field '%s' takes a single value, not a list", r->path);
      }
      if (strcmp(f, "data_type") == 0) {
        ERR_TRY(once(r, n, &seen, 1));
        ERR_TRY(read_enum(r, n, datatype_values, &v));
        in->datatype = (inferd_datatype)v;
      } else if (strcmp(f, "dims") == 0) {
        ERR_TRY(read_dim(r, n, in->dims, &in->rank));
      } else if (strcmp(f, "zero_data") == 0 || strcmp(f, "random_data") == 0) {
        bool ignored; /* presence is what counts, as in Triton */
        ERR_TRY(read_bool(r, n, &ignored));
        in->source = f[0] == 'z' ? MODEL_WARMUP_ZERO_DATA : MODEL_WARMUP_RANDOM_DATA;
      } else if (strcmp(f, "input_data_file") == 0) {
        ERR_TRY(read_string(r, n, &in->input_data_file));
        in->source = MODEL_WARMUP_INPUT_DATA_FILE;
      } else {
        skip_field(r, n, none_ignored, &last);
      }
      path_pop(r, m2);
    }
  }
  if (!source)
    return model_config__error(r->cfg, r->path, "warmup input '%.64s' must give one of zero_data, random_data or "
                               "input_data_file", key);
  path_pop(r, mark);
  return NULL;
}

static inferd_error *warmup_inputs(reader *r, const pbtxt_node *n, void *msg) {
  return read_map(r, n, warmup_input_entry, msg);
}

static const field_rule warmup_rules[] = {
    SCALAR(model_warmup, "name", name, FIELD_STRING),
    SCALAR(model_warmup, "batch_size", batch_size, FIELD_UINT32),
    SCALAR(model_warmup, "count", count, FIELD_UINT32),
    EACH("inputs", warmup_inputs),
};

static inferd_error *read_warmup(reader *r, const pbtxt_node *msg, model_warmup *w) {
  ERR_TRY(expect_message(r, msg));
  ERR_TRY(set_string(r, &w->name, ""));
  ERR_TRY(alloc_entries(r, msg, "inputs", true, sizeof(model_warmup_input), (void **)&w->inputs));
  ERR_TRY(read_fields(r, msg, warmup_rules, N_RULES(warmup_rules), w, IN_ANY, none_ignored));
  return drop_overridden(r, w->inputs, &w->input_count, sizeof(*w->inputs), warmup_input_key,
                         warmup_input_release);
}

/* Enters entry `*count` of a repeated message field and advances *count. */
static size_t enter_entry(reader *r, const pbtxt_node *n, int *count, int *index) {
  *index = (*count)++;
  return enter_index(r, n, *index);
}

/* ---- optimization: the GPU accelerators' precision ----
 * TensorRT's precision_mode, as Triton users write it for the onnxruntime
 * backend, is what inferd's GPU plans compute in: FP16 is FP16, FP32 the GPU
 * default (TF32). Everything else of optimization is skipped with warnings. */

/* true/false as the accelerators' string parameters spell them (any case,
 * or 1/0); false when the text is neither, else *value is set. */
static bool bool_text(const char *text, bool *value) {
  bool v;
  if (!strcasecmp(text, "true") || !strcmp(text, "1")) v = true;
  else if (!strcasecmp(text, "false") || !strcmp(text, "0")) v = false;
  else return false;
  if (value) *value = v;
  return true;
}

static inferd_error *accelerator_parameter_entry(reader *r, const pbtxt_node *entry, const char *key,
                                                 const pbtxt_node *key_node, const pbtxt_node *value, void *ctx) {
  model_accelerator *a = ctx;
  model_parameter *p = &a->parameters[a->parameter_count++];
  size_t mark;
  ERR_TRY(begin_string_entry(r, entry, &key, key_node, p, &mark));
  if (value) ERR_TRY(read_string(r, value, &p->string_value)); /* map<string, string> */
  bool tensorrt = strcmp(a->name, "tensorrt") == 0;
  if (strcmp(a->name, "inferd") == 0) {
    /* The CPU accelerator: what it names must be right. */
    if (strcmp(key, "precision") == 0) {
      if (strcmp(p->string_value, "int8") != 0 && strcmp(p->string_value, "fp32") != 0 &&
          strcmp(p->string_value, "bf16") != 0)
        return node_error(r, value ? value : entry, "precision '%.64s' is not one the CPU runs (fp32, bf16 or int8)",
                          p->string_value);
    } else if (strcmp(key, "calibration_cache") == 0 || strcmp(key, "int8_keep") == 0) {
      if (!p->string_value[0]) return node_error(r, value ? value : entry, "parameter '%s' is empty", key);
    } else {
      return node_error(r, entry,
                        "unknown parameter '%.64s' of the inferd accelerator (precision, calibration_cache, "
                        "int8_keep)",
                        key);
    }
  } else if (tensorrt && strcmp(key, "precision_mode") == 0) {
    if (strcmp(p->string_value, "INT8") == 0)
      return node_error(r, value ? value : entry, "precision_mode INT8 is not supported by inferd yet (FP32 or FP16)");
    if (strcmp(p->string_value, "FP32") != 0 && strcmp(p->string_value, "FP16") != 0)
      return node_error(r, value ? value : entry, "unknown precision_mode '%.64s' (expected FP32 or FP16)",
                        p->string_value);
  } else if (tensorrt && strcmp(key, "trt_engine_cache_enable") == 0) {
    if (!bool_text(p->string_value, NULL))
      return node_error(r, value ? value : entry, "trt_engine_cache_enable is '%.64s' (expected true or false)",
                        p->string_value);
  } else if (tensorrt && strcmp(key, "trt_engine_cache_path") == 0) {
    if (!p->string_value[0]) return node_error(r, value ? value : entry, "parameter '%s' is empty", key);
  } else if (tensorrt) {
    model_config__warn(r->cfg, entry->line, entry->column,
                       "parameter '%s' of the tensorrt accelerator is ignored: inferd reads precision_mode, "
                       "trt_engine_cache_enable and trt_engine_cache_path",
                       r->path);
  }
  path_pop(r, mark);
  return NULL;
}

static inferd_error *read_accelerator(reader *r, const pbtxt_node *msg, model_accelerator *a, bool cpu) {
  ERR_TRY(expect_message(r, msg));
  ERR_TRY(set_string(r, &a->name, ""));
  ERR_TRY(alloc_entries(r, msg, "parameters", true, sizeof(*a->parameters), (void **)&a->parameters));
  /* The name decides how parameters are read, wherever it stands. */
  uint64_t seen = 0;
  for (const pbtxt_node *n = msg->first_child; n; n = n->next)
    if (strcmp(n->name, "name") == 0) {
      size_t mark = enter_field(r, n);
      ERR_TRY(once(r, n, &seen, 1));
      ERR_TRY(read_string(r, n, &a->name));
      path_pop(r, mark);
    }
  if (cpu && strcmp(a->name, "inferd") != 0)
    return node_error(r, msg, "CPU accelerator '%.64s' is not known to inferd (only 'inferd')", a->name);
  const char *last = NULL;
  for (const pbtxt_node *n = msg->first_child; n; n = n->next) {
    if (strcmp(n->name, "name") == 0) continue;
    size_t mark = enter_field(r, n);
    if (strcmp(n->name, "parameters") == 0)
      ERR_TRY(read_map(r, n, accelerator_parameter_entry, a));
    else
      skip_field(r, n, none_ignored, &last);
    path_pop(r, mark);
  }
  if (!cpu && strcmp(a->name, "tensorrt") != 0)
    model_config__warn(r->cfg, msg->line, msg->column,
                       "GPU accelerator '%.64s' is ignored by inferd (only tensorrt's precision_mode is read)",
                       a->name);
  return drop_overridden(r, a->parameters, &a->parameter_count, sizeof(*a->parameters), parameter_key,
                         parameter_release);
}

static inferd_error *read_execution_accelerators(reader *r, const pbtxt_node *msg) {
  ERR_TRY(expect_message(r, msg));
  model_config *c = r->cfg;
  ERR_TRY(alloc_entries(r, msg, "gpu_execution_accelerator", false, sizeof(*c->gpu_accelerators),
                        (void **)&c->gpu_accelerators));
  ERR_TRY(alloc_entries(r, msg, "cpu_execution_accelerator", false, sizeof(*c->cpu_accelerators),
                        (void **)&c->cpu_accelerators));
  const char *last = NULL;
  for (const pbtxt_node *n = msg->first_child; n; n = n->next) {
    size_t mark = enter_field(r, n);
    int i;
    if (strcmp(n->name, "gpu_execution_accelerator") == 0) {
      size_t m2 = enter_entry(r, n, &c->gpu_accelerator_count, &i);
      ERR_TRY(read_accelerator(r, n, &c->gpu_accelerators[i], false));
      path_pop(r, m2);
    } else if (strcmp(n->name, "cpu_execution_accelerator") == 0) {
      size_t m2 = enter_entry(r, n, &c->cpu_accelerator_count, &i);
      ERR_TRY(read_accelerator(r, n, &c->cpu_accelerators[i], true));
      path_pop(r, m2);
    } else {
      skip_field(r, n, none_ignored, &last);
    }
    path_pop(r, mark);
  }
  return NULL;
}

/* optimization.graph: its level, the one field it has. */
static inferd_error *graph_level(reader *r, const pbtxt_node *n, void *msg) {
  model_config *c = msg;
  ERR_TRY(read_int32(r, n, &c->graph_level));
  if (c->graph_level < -1)
    return node_error(r, n, "graph optimization level %d (expected -1 to turn optimizations off, or 0 and up)",
                      c->graph_level);
  c->has_graph_level = true;
  return NULL;
}

static const field_rule graph_rules[] = {READ("level", graph_level)};

static inferd_error *read_graph_optimization(reader *r, const pbtxt_node *msg) {
  ERR_TRY(expect_message(r, msg));
  return read_fields(r, msg, graph_rules, N_RULES(graph_rules), r->cfg, IN_ANY, none_ignored);
}

static inferd_error *optimization_accelerators(reader *r, const pbtxt_node *n, void *msg) {
  (void)msg;
  return read_execution_accelerators(r, n);
}

static inferd_error *optimization_graph(reader *r, const pbtxt_node *n, void *msg) {
  (void)msg;
  return read_graph_optimization(r, n);
}

static const field_rule optimization_rules[] = {
    READ("execution_accelerators", optimization_accelerators),
    READ("graph", optimization_graph),
};

static inferd_error *read_optimization(reader *r, const pbtxt_node *msg) {
  ERR_TRY(expect_message(r, msg));
  static const char *const ignored[] = {"priority", "cuda", "input_pinned_memory",
                                        "output_pinned_memory", "gather_kernel_buffer_threshold",
                                        "eager_batching",  NULL};
  return read_fields(r, msg, optimization_rules, N_RULES(optimization_rules), r->cfg, IN_ANY, ignored);
}

/* The last tensorrt accelerator's precision_mode, or NULL. */
static const char *tensorrt_precision_mode(const model_config *c, int *index) {
  for (int i = c->gpu_accelerator_count - 1; i >= 0; i--) {
    const model_accelerator *a = &c->gpu_accelerators[i];
    if (strcmp(a->name, "tensorrt") != 0) continue;
    for (int k = 0; k < a->parameter_count; k++)
      if (strcmp(a->parameters[k].key, "precision_mode") == 0) {
        *index = i;
        return a->parameters[k].string_value;
      }
  }
  return NULL;
}

/* Where GPU plans keep their autotuning choices, from the tensorrt
 * accelerators' trt_engine_cache_enable and trt_engine_cache_path (a later
 * entry's parameter wins): on by default, next to the model file. */
static inferd_error *resolve_tactic_cache(model_config *c) {
  bool enable = true, enable_given = false;
  c->tactic_cache_dir = NULL;
  for (int i = 0; i < c->gpu_accelerator_count; i++) {
    if (strcmp(c->gpu_accelerators[i].name, "tensorrt") != 0) continue;
    for (int k = 0; k < c->gpu_accelerators[i].parameter_count; k++) {
      const model_parameter *p = &c->gpu_accelerators[i].parameters[k];
      if (strcmp(p->key, "trt_engine_cache_enable") == 0) enable_given = bool_text(p->string_value, &enable);
      else if (strcmp(p->key, "trt_engine_cache_path") == 0) c->tactic_cache_dir = p->string_value;
    }
  }
  c->tactic_cache_off = enable_given && !enable;
  if (c->tactic_cache_off && c->tactic_cache_dir)
    return model_config__error(c, "optimization.execution_accelerators.gpu_execution_accelerator",
                               "trt_engine_cache_path is given but trt_engine_cache_enable is false; give one of "
                               "them");
  return NULL;
}

/* Settles what CPU instances compute in (fp32, bf16 or int8) from the
 * inferd CPU accelerators (a later entry's parameter wins): int8 needs its calibration cache, and
 * the cache and keep list are read only at int8. */
static inferd_error *resolve_cpu_precision(model_config *c) {
  const char *precision = NULL;
  c->calibration_cache = c->int8_keep = NULL;
  for (int i = 0; i < c->cpu_accelerator_count; i++)
    for (int k = 0; k < c->cpu_accelerators[i].parameter_count; k++) {
      const model_parameter *p = &c->cpu_accelerators[i].parameters[k];
      if (strcmp(p->key, "precision") == 0) precision = p->string_value;
      else if (strcmp(p->key, "calibration_cache") == 0) c->calibration_cache = p->string_value;
      else if (strcmp(p->key, "int8_keep") == 0) c->int8_keep = p->string_value;
    }
  const bool int8 = precision && strcmp(precision, "int8") == 0;
  c->cpu_precision = int8 ? INFERD_PRECISION_INT8
                     : precision && strcmp(precision, "bf16") == 0 ? INFERD_PRECISION_BF16
                                                                   : INFERD_PRECISION_DEFAULT;
  static const char path[] = "optimization.execution_accelerators.cpu_execution_accelerator";
  if (int8 && !c->calibration_cache)
    return model_config__error(c, path,
                               "precision int8 needs the parameter calibration_cache (a file made by `inferd "
                               "calibrate`)");
  if (!int8 && (c->calibration_cache || c->int8_keep))
    return model_config__error(c, path, "parameter '%s' is only read with precision int8",
                               c->calibration_cache ? "calibration_cache" : "int8_keep");
  return NULL;
}

/* Settles config->precision from precision_mode and the precision model
 * parameters (values were checked as they were read). */
static inferd_error *resolve_precision(model_config *c) {
  const model_parameter *param = NULL;
  for (int i = 0; i < c->parameter_count; i++) {
    const model_parameter *p = &c->parameters[i];
    if (!is_precision_parameter(p->key)) continue;
    if (param && strcmp(param->string_value, p->string_value) != 0) {
      char path[160];
      snprintf(path, sizeof(path), "parameters[%.100s]", p->key);
      return model_config__error(c, path, "parameters '%s' (%s) and '%s' (%s) disagree; give one of them",
                                 param->key, param->string_value, p->key, p->string_value);
    }
    param = p;
  }
  int at = 0;
  const char *mode = tensorrt_precision_mode(c, &at);
  inferd_precision from_param = INFERD_PRECISION_DEFAULT;
  if (param) inferd_precision_from_name(param->string_value, &from_param);
  if (mode && param) {
    bool fp16 = strcmp(mode, "FP16") == 0;
    bool agree = fp16 ? from_param == INFERD_PRECISION_FP16
                      : (from_param == INFERD_PRECISION_FP32 || from_param == INFERD_PRECISION_TF32);
    if (!agree) {
      char path[160];
      snprintf(path, sizeof(path), "parameters[%.100s]", param->key);
      return model_config__error(c, path,
                                 "parameter '%s' is %s but the tensorrt accelerator's precision_mode is %s; they "
                                 "must agree (FP16 with fp16, FP32 with fp32 or tf32)",
                                 param->key, param->string_value, mode);
    }
  }
  if (param)
    c->precision = from_param;
  else if (mode && strcmp(mode, "FP16") == 0)
    c->precision = INFERD_PRECISION_FP16;
  else
    c->precision = INFERD_PRECISION_DEFAULT; /* FP32 mode: the GPU default, TF32 */
  return NULL;
}

static inferd_error *config_version_policy(reader *r, const pbtxt_node *n, void *msg) {
  return read_version_policy(r, n, &((model_config *)msg)->version_policy);
}

static inferd_error *config_tensor(reader *r, const pbtxt_node *n, model_config *c, bool input) {
  int i;
  size_t mark = enter_entry(r, n, input ? &c->input_count : &c->output_count, &i);
  ERR_TRY(read_tensor(r, n, input ? &c->inputs[i] : &c->outputs[i], input));
  path_pop(r, mark);
  return NULL;
}

static inferd_error *config_input(reader *r, const pbtxt_node *n, void *msg) { return config_tensor(r, n, msg, true); }
static inferd_error *config_output(reader *r, const pbtxt_node *n, void *msg) { return config_tensor(r, n, msg, false); }

static inferd_error *config_group(reader *r, const pbtxt_node *n, void *msg) {
  model_config *c = msg;
  int i;
  size_t mark = enter_entry(r, n, &c->instance_group_count, &i);
  ERR_TRY(read_instance_group(r, n, &c->instance_groups[i]));
  path_pop(r, mark);
  return NULL;
}

static inferd_error *config_dynamic_batching(reader *r, const pbtxt_node *n, void *msg) {
  return read_dynamic_batching(r, n, &((model_config *)msg)->dynamic_batching);
}

static inferd_error *config_parameters(reader *r, const pbtxt_node *n, void *msg) {
  (void)msg;
  return read_map(r, n, parameter_entry, NULL);
}

static inferd_error *config_warmup(reader *r, const pbtxt_node *n, void *msg) {
  model_config *c = msg;
  int i;
  size_t mark = enter_entry(r, n, &c->warmup_count, &i);
  ERR_TRY(read_warmup(r, n, &c->warmups[i]));
  path_pop(r, mark);
  return NULL;
}

static inferd_error *config_optimization(reader *r, const pbtxt_node *n, void *msg) {
  (void)msg;
  return read_optimization(r, n);
}

static inferd_error *config_max_batch_size(reader *r, const pbtxt_node *n, void *msg) {
  model_config *c = msg;
  ERR_TRY(read_int32(r, n, &c->max_batch_size));
  c->has_max_batch_size = true;
  return NULL;
}

static const field_rule config_rules[] = {
    SCALAR(model_config, "name", name, FIELD_STRING),
    SCALAR(model_config, "platform", platform, FIELD_STRING),
    SCALAR(model_config, "backend", backend, FIELD_STRING),
    READ("max_batch_size", config_max_batch_size),
    READ("version_policy", config_version_policy),
    EACH("input", config_input),
    EACH("output", config_output),
    EACH("instance_group", config_group),
    READ("dynamic_batching", config_dynamic_batching),
    EACH("parameters", config_parameters),
    EACH("model_warmup", config_warmup),
    SCALAR(model_config, "default_model_filename", default_model_filename, FIELD_STRING),
    READ("optimization", config_optimization),
};

/* model_config.proto's oneof scheduling_choice: at most one of these, and
 * a model with one inferd does not run (sequence or ensemble) is marked. */
static inferd_error *check_scheduler(reader *r, const pbtxt_node *root) {
  const char *scheduler = NULL;
  for (const pbtxt_node *n = root->first_child; n; n = n->next) {
    const char *f = n->name;
    if (strcmp(f, "dynamic_batching") != 0 && strcmp(f, "sequence_batching") != 0 &&
        strcmp(f, "ensemble_scheduling") != 0)
      continue;
    if (scheduler && strcmp(scheduler, f) != 0) {
      enter_field(r, n);
      return field_error(r, n, "only one of dynamic_batching, sequence_batching and ensemble_scheduling may be "
                         "given; '%s' is already given", scheduler);
    }
    scheduler = f;
  }
  if (scheduler && strcmp(scheduler, "dynamic_batching") != 0) r->cfg->has_other_scheduler = true;
  return NULL;
}

static inferd_error *read_config(reader *r, const pbtxt_node *root) {
  model_config *c = r->cfg;
  ERR_TRY(alloc_entries(r, root, "input", false, sizeof(*c->inputs), (void **)&c->inputs));
  ERR_TRY(alloc_entries(r, root, "output", false, sizeof(*c->outputs), (void **)&c->outputs));
  ERR_TRY(alloc_entries(r, root, "instance_group", false, sizeof(*c->instance_groups), (void **)&c->instance_groups));
  ERR_TRY(alloc_entries(r, root, "parameters", true, sizeof(*c->parameters), (void **)&c->parameters));
  ERR_TRY(alloc_entries(r, root, "model_warmup", false, sizeof(*c->warmups), (void **)&c->warmups));
  ERR_TRY(check_scheduler(r, root));
  return read_fields(r, root, config_rules, N_RULES(config_rules), c, IN_ANY, config_ignored);
}

inferd_error *model_config__read(const pbtxt_doc *doc, model_config **config) {
  *config = NULL;
  model_config *c = model_config_new(doc->source);
  reader r = {.doc = doc, .cfg = c};
  inferd_error *err = read_config(&r, doc->root);
  model_config__finish_warnings(c);
  if (!err)
    err = drop_overridden(&r, c->parameters, &c->parameter_count, sizeof(*c->parameters), parameter_key,
                          parameter_release);
  if (!err) err = resolve_precision(c);
  if (!err) err = resolve_cpu_precision(c);
  if (!err) err = resolve_tactic_cache(c);
  if (!err) err = model_config__validate(c, false);
  if (err) {
    model_config_free(c);
    return err;
  }
  *config = c;
  return NULL;
}
