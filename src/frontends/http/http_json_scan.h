/*
 * Finds the tensor data arrays of an inference request without parsing them.
 *
 * The request envelope (names, shapes, parameters) is small and goes to
 * jansson; the "data" arrays of inputs can hold millions of numbers and go to
 * the fast number parser instead. This scanner walks the JSON text once,
 * skipping strings and nested values by bracket counting, and records where
 * each `inputs[i].data` array lies. It then copies the text with every such
 * array replaced by the placeholder 0, which jansson parses in microseconds.
 *
 * The scanner validates nothing beyond what it needs to find the arrays:
 * jansson checks the envelope and the number parser checks each array. If
 * the text is too broken to scan, the caller hands the original text to
 * jansson, which reports the error with its position.
 */
#ifndef INFERD_FRONTENDS_HTTP_JSON_SCAN_H
#define INFERD_FRONTENDS_HTTP_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>

typedef struct http_data_span {
  size_t begin, end; /* offsets of '[' and one past the matching ']'; begin == end: no span */
} http_data_span;

typedef struct http_json_scan {
  char *envelope; /* NUL-terminated copy with data arrays replaced; free() */
  size_t envelope_len;
  http_data_span *spans; /* spans[i] belongs to inputs[i]; free() */
  size_t span_count;     /* number of entries (inputs seen) */
} http_json_scan;

/* Scans text; false when it cannot (malformed text or out of memory), with
 * nothing allocated. */
bool http_json_scan_data(const char *text, size_t len, http_json_scan *out);
void http_json_scan_free(http_json_scan *scan);

#endif
