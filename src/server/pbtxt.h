/*
 * Protocol-buffer text format (the syntax of Triton's config.pbtxt) read into
 * a schema-less tree.
 *
 * The parser knows the syntax only: fields `name: value`, `name { ... }`,
 * `name: { ... }`, `name < ... >`, lists `name: [a, b]` and `name [{...}]`,
 * strings in "..." or '...' with C escapes (adjacent strings join), integers
 * (decimal, hex, octal, negative), floats (incl. inf/nan), identifiers
 * (booleans, enum values), `#` comments and optional `,`/`;` separators.
 * What a field means is the caller's business (model_config_read.c), so a
 * field the caller does not know can be skipped whole, at any depth.
 *
 * A list is stored as one sibling node per element, each with in_list set, so
 * `dims: [1, 2]` and `dims: 1 dims: 2` read the same way. A JSON document can
 * be converted into the same tree (model_config_json.c), so one reader serves
 * both forms; `json` on the document says which form the tree came from.
 *
 * Every node and string lives in the document's pool and is freed with it.
 */
#ifndef INFERD_SERVER_PBTXT_H
#define INFERD_SERVER_PBTXT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/mem.h"
#include "inferd.h"

/* Inputs larger than this are refused (TOO_LARGE): real configurations are a
 * few kilobytes, and the tree takes up to ~100 bytes per value written, so
 * the bound also bounds its pool (which cannot fail) to about 100 MiB for
 * the worst file, e.g. a list of a million one-digit numbers. */
#define PBTXT_MAX_INPUT_BYTES (1u << 20)
/* Deeper nesting is refused rather than recursed into. */
#define PBTXT_MAX_DEPTH 64

typedef enum pbtxt_kind {
  PBTXT_MESSAGE = 0, /* `{ ... }`; children hold its fields */
  PBTXT_STRING,      /* text is the unescaped string */
  PBTXT_NUMBER,      /* text is the literal as written, sign included */
  PBTXT_IDENT,       /* true, false, TYPE_FP32, inf, ... */
} pbtxt_kind;

typedef struct pbtxt_node {
  const char *name; /* field name; NULL for the root */
  pbtxt_kind kind;
  const char *text; /* scalars: NUL-terminated; "" for messages */
  size_t text_len;
  struct pbtxt_node *first_child, *last_child, *next;
  int child_count;
  int line, column;             /* of the field name; 0 when unknown (JSON) */
  int value_line, value_column; /* of the value or list element */
  bool in_list;                 /* one element of a [ ... ] list */
} pbtxt_node;

typedef struct pbtxt_doc {
  mem_pool *pool;
  pbtxt_node *root; /* a PBTXT_MESSAGE */
  const char *source; /* name used in messages, e.g. the file path */
  bool json;          /* converted from JSON rather than parsed from text */
} pbtxt_doc;

/* Parses `len` bytes of text format. On success *doc is owned by the caller
 * (pbtxt_free). Errors are INVALID_ARG with "source:line:col: message". */
inferd_error *pbtxt_parse(const char *text, size_t len, const char *source, pbtxt_doc **doc);

/* Builds trees by hand (the JSON converter): an empty document, and a node
 * appended to `parent` (the root when NULL). Strings are copied. */
pbtxt_doc *pbtxt_doc_new(const char *source, bool json);
pbtxt_node *pbtxt_add(pbtxt_doc *doc, pbtxt_node *parent, const char *name, pbtxt_kind kind, const char *text,
                      size_t text_len);

void pbtxt_free(pbtxt_doc *doc);

/* "identifier 'foo'", "string", "message", ... for messages about a node. */
const char *pbtxt_kind_name(pbtxt_kind kind);

#endif
