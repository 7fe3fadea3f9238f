/*
 * The fast number codec of the HTTP frontend: tensor data arrays in JSON
 * ("data": [1, 2.5, ...], flat or nested) parsed straight into a typed buffer,
 * and typed buffers printed back as JSON arrays. A long array never becomes a
 * DOM node per number: the parser walks the array text once, converting each
 * token in place, and the printer writes digits into the output buffer.
 *
 * Conversion rules (KServe v2 / Triton JSON tensors):
 *  - BOOL: true / false only.
 *  - integer types: JSON integers (no fraction or exponent) within the type's
 *    range; anything else is an error naming the element.
 *  - FP16, BF16, FP32, FP64: any JSON number, rounded to nearest even in the
 *    target type; NaN, Infinity and -Infinity are accepted (Python's json and
 *    rapidjson write them); a finite number too large for the type is an error.
 *  - BYTES: JSON strings, stored in the KServe layout (4-byte little-endian
 *    length, then the bytes).
 */
#ifndef INFERD_FRONTENDS_HTTP_NUMBERS_H
#define INFERD_FRONTENDS_HTTP_NUMBERS_H

#include <stddef.h>
#include <stdint.h>

#include "inferd.h"

/* Parses the JSON array text [text, text+len) as `expected_count` elements of
 * `type` for the input named `input` (used in error messages). On success
 * *data is a new 64-byte aligned buffer (free() it) of *byte_size bytes; on
 * error nothing is allocated. Element counts that do not match are errors
 * naming both counts. */
inferd_error *http_numbers_parse(const char *text, size_t len, inferd_datatype type, size_t expected_count,
                                 const char *input, void **data, size_t *byte_size);

/* Number of bytes at most that one element of `type` takes when printed
 * (BYTES excluded: strings are printed by the JSON writer). */
enum { HTTP_NUMBER_MAX_CHARS = 32 };

/* Prints one element; `out` has room for HTTP_NUMBER_MAX_CHARS. Returns the
 * length written (no terminating NUL). FP32 uses 9 significant digits and
 * FP64 17, so every value reads back exactly; FP16 and BF16 print their exact
 * float value the same way as FP32. Non-finite values print as NaN, Infinity,
 * -Infinity. */
size_t http_format_element(inferd_datatype type, const void *element, char *out);
size_t http_format_f32(float value, char *out);
size_t http_format_f64(double value, char *out);
size_t http_format_i64(int64_t value, char *out);
size_t http_format_u64(uint64_t value, char *out);


#endif
