/*
 * The HTTP inference request body, decoded as handle_infer decodes it: the
 * data-array scanner, jansson on the envelope, the fast number parser, and
 * the binary tensor extension's split at Inference-Header-Content-Length.
 *
 * Input: byte 0 chooses the header (0: none; 1: the little-endian 16-bit
 * number in bytes 1-2, which may be past the body; 2: bytes 1-2 as the
 * header's text); the body is everything from byte 3.
 */
#include <inttypes.h>
#include <jansson.h>

#include "frontends/http/http_infer_request.h"
#include "frontends/http/http_json_scan.h"
#include "fuzz/fuzz_util.h"

/* The scanner's spans must lie inside the text and start an array (it
 * counts brackets of both kinds, so a span may end with the wrong one: the
 * number parser refuses it). */
static void check_scan(const char *text, size_t len) {
  http_json_scan scan;
  if (http_json_scan_data(text, len, &scan) != HTTP_JSON_SCANNED) return;
  FUZZ_CHECK(scan.envelope[scan.envelope_len] == '\0');
  for (size_t i = 0; i < scan.span_count; i++) {
    const http_data_span sp = scan.spans[i];
    FUZZ_CHECK(sp.begin <= sp.end && sp.end <= len);
    if (sp.begin != sp.end) FUZZ_CHECK(text[sp.begin] == '[' && (text[sp.end - 1] == ']' || text[sp.end - 1] == '}'));
  }
  http_json_scan_free(&scan);
}

/* Whether bytes are well-formed UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF). */
static bool utf8_valid(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t c = p[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || i + len > n) return false;
    uint32_t cp = len == 1 ? c : c & (0x7f >> len);
    for (size_t k = 1; k < len; k++) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  const uint8_t *body = data + 3;
  const size_t body_size = size - 3;
  char header[16];
  const char *header_length = NULL;
  switch (data[0] % 3) {
    case 1:
      snprintf(header, sizeof(header), "%u", (unsigned)(data[1] | data[2] << 8));
      header_length = header;
      break;
    case 2:
      header[0] = (char)data[1];
      header[1] = (char)data[2];
      header[2] = '\0';
      header_length = header;
      break;
    default:
      break;
  }
  size_t json_len = body_size;
  if (header_length && !http_parse_size(header_length, &json_len)) json_len = body_size;
  if (json_len <= body_size) check_scan((const char *)body, json_len);

  http_infer_request r;
  inferd_error *err = http_infer_request_decode(body, body_size, header_length, &r);
  if (err) {
    FUZZ_CHECK(r.inputs == NULL && r.root == NULL && r.owned == NULL);
    inferd_error_delete(err);
    return 0;
  }
  /* What the scanner's envelope let through must be JSON in its own right
   * (but for NaN and Infinity, which the number parser takes and jansson
   * does not; integers past int64 are read as reals, as that parser does;
   * and for bytes that are not UTF-8, which BYTES strings carry as they
   * come while jansson refuses them). */
  if (!memmem(body, json_len, "NaN", 3) && !memmem(body, json_len, "Infinity", 8) && utf8_valid(body, json_len)) {
    json_t *whole = json_loadb((const char *)body, json_len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, NULL);
    if (!whole) fprintf(stderr, "decoded a body that is not JSON: %.*s\n", (int)json_len, (const char *)body);
    FUZZ_CHECK(whole != NULL);
    json_decref(whole);
  }
  if (r.id) fuzz_touch(r.id, strlen(r.id));
  for (int i = 0; i < r.input_count; i++) {
    const http_infer_input *in = &r.inputs[i];
    fuzz_touch(in->name, strlen(in->name) + 1);
    FUZZ_CHECK(in->rank >= 0 && in->rank <= INFERD_MAX_RANK);
    if (in->shm_region) {
      FUZZ_CHECK(in->data == NULL);
      continue;
    }
    FUZZ_CHECK(in->data != NULL || in->byte_size == 0);
    if (in->byte_size) fuzz_touch(in->data, in->byte_size);
    const size_t elem = inferd_datatype_size(in->datatype);
    if (elem > 1) FUZZ_CHECK((uintptr_t)in->data % elem == 0);
  }
  for (int i = 0; i < r.output_count; i++) fuzz_touch(r.outputs[i].name, strlen(r.outputs[i].name) + 1);
  http_infer_request_free(&r);
  return 0;
}
