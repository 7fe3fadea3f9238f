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
 *
 * Nesting depth. Every JSON body the HTTP frontend reads may nest arrays and
 * objects HTTP_JSON_MAX_DEPTH levels deep at most (Triton's limit), so that
 * no client decides how deep a parser goes. The scanner counts the depth as
 * it walks (a data array's brackets included), so the check costs no pass of
 * its own on large bodies; http_json_depth_over is the same count for text
 * the scanner does not walk (small bodies, and text it could not scan).
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

enum { HTTP_JSON_MAX_DEPTH = 100 };

typedef enum http_json_scan_result {
  HTTP_JSON_SCANNED,     /* *out holds the envelope and the spans */
  HTTP_JSON_UNSCANNABLE, /* malformed text or out of memory; nothing allocated */
  HTTP_JSON_TOO_DEEP,    /* nested deeper than HTTP_JSON_MAX_DEPTH; nothing allocated */
} http_json_scan_result;

/* Scans text. */
http_json_scan_result http_json_scan_data(const char *text, size_t len, http_json_scan *out);
void http_json_scan_free(http_json_scan *scan);

/* Whether text nests arrays and objects (outside strings) more than `limit`
 * levels deep; a bracket that closes nothing counts as nothing (the parser
 * refuses the text anyway). */
bool http_json_depth_over(const char *text, size_t len, int limit);

#endif
