/*
 * Fast number codec; see http_numbers.h for the conversion rules.
 *
 * Parsing: each token is lexed once by hand. Integers accumulate in a
 * uint64 with overflow checks. Floating-point tokens keep up to 19
 * significant digits in a uint64 mantissa plus a decimal exponent; when the
 * mantissa and the power of ten are both exact in a double (Clinger's fast
 * path) one multiplication or division gives the correctly rounded double,
 * otherwise the product with a tabled power of ten is within a few ulps. For
 * FP64 anything off the exact path goes to strtod. For FP32 the double is
 * rounded to float, and if it lies within a few double ulps of the midpoint
 * between two floats (where the double's error could pick the wrong one)
 * strtof decides. Python clients print float32 values with 17 digits, which
 * miss the fast path but never land near a midpoint, so they stay fast.
 *
 * Printing: FP32 values print as printf's %.9g would, computed with one
 * double multiplication instead of printf's exact big-number arithmetic.
 * The double product may be off by one in the ninth digit in rare near-tie
 * cases; 1.5 units in the ninth digit is still under half an ulp of any
 * float, so the text always reads back as the same value.
 */
#include "frontends/http/http_numbers.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/float16.h"
#include "base/mem.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "http_numbers.c assumes a little-endian host"
#endif

/* 10^e for e in [-307, 308], each literal correctly rounded by the compiler. */
enum { POW10_MIN = -307, POW10_MAX = 308 };
static const double pow10_table[POW10_MAX - POW10_MIN + 1] = {
    1e-307, 1e-306, 1e-305, 1e-304, 1e-303, 1e-302, 1e-301, 1e-300, 1e-299, 1e-298, 1e-297, 1e-296, 1e-295, 1e-294,
    1e-293, 1e-292, 1e-291, 1e-290, 1e-289, 1e-288, 1e-287, 1e-286, 1e-285, 1e-284, 1e-283, 1e-282, 1e-281, 1e-280,
    1e-279, 1e-278, 1e-277, 1e-276, 1e-275, 1e-274, 1e-273, 1e-272, 1e-271, 1e-270, 1e-269, 1e-268, 1e-267, 1e-266,
    1e-265, 1e-264, 1e-263, 1e-262, 1e-261, 1e-260, 1e-259, 1e-258, 1e-257, 1e-256, 1e-255, 1e-254, 1e-253, 1e-252,
    1e-251, 1e-250, 1e-249, 1e-248, 1e-247, 1e-246, 1e-245, 1e-244, 1e-243, 1e-242, 1e-241, 1e-240, 1e-239, 1e-238,
    1e-237, 1e-236, 1e-235, 1e-234, 1e-233, 1e-232, 1e-231, 1e-230, 1e-229, 1e-228, 1e-227, 1e-226, 1e-225, 1e-224,
    1e-223, 1e-222, 1e-221, 1e-220, 1e-219, 1e-218, 1e-217, 1e-216, 1e-215, 1e-214, 1e-213, 1e-212, 1e-211, 1e-210,
    1e-209, 1e-208, 1e-207, 1e-206, 1e-205, 1e-204, 1e-203, 1e-202, 1e-201, 1e-200, 1e-199, 1e-198, 1e-197, 1e-196,
    1e-195, 1e-194, 1e-193, 1e-192, 1e-191, 1e-190, 1e-189, 1e-188, 1e-187, 1e-186, 1e-185, 1e-184, 1e-183, 1e-182,
    1e-181, 1e-180, 1e-179, 1e-178, 1e-177, 1e-176, 1e-175, 1e-174, 1e-173, 1e-172, 1e-171, 1e-170, 1e-169, 1e-168,
    1e-167, 1e-166, 1e-165, 1e-164, 1e-163, 1e-162, 1e-161, 1e-160, 1e-159, 1e-158, 1e-157, 1e-156, 1e-155, 1e-154,
    1e-153, 1e-152, 1e-151, 1e-150, 1e-149, 1e-148, 1e-147, 1e-146, 1e-145, 1e-144, 1e-143, 1e-142, 1e-141, 1e-140,
    1e-139, 1e-138, 1e-137, 1e-136, 1e-135, 1e-134, 1e-133, 1e-132, 1e-131, 1e-130, 1e-129, 1e-128, 1e-127, 1e-126,
    1e-125, 1e-124, 1e-123, 1e-122, 1e-121, 1e-120, 1e-119, 1e-118, 1e-117, 1e-116, 1e-115, 1e-114, 1e-113, 1e-112,
    1e-111, 1e-110, 1e-109, 1e-108, 1e-107, 1e-106, 1e-105, 1e-104, 1e-103, 1e-102, 1e-101, 1e-100, 1e-99,  1e-98,
    1e-97,  1e-96,  1e-95,  1e-94,  1e-93,  1e-92,  1e-91,  1e-90,  1e-89,  1e-88,  1e-87,  1e-86,  1e-85,  1e-84,
    1e-83,  1e-82,  1e-81,  1e-80,  1e-79,  1e-78,  1e-77,  1e-76,  1e-75,  1e-74,  1e-73,  1e-72,  1e-71,  1e-70,
    1e-69,  1e-68,  1e-67,  1e-66,  1e-65,  1e-64,  1e-63,  1e-62,  1e-61,  1e-60,  1e-59,  1e-58,  1e-57,  1e-56,
    1e-55,  1e-54,  1e-53,  1e-52,  1e-51,  1e-50,  1e-49,  1e-48,  1e-47,  1e-46,  1e-45,  1e-44,  1e-43,  1e-42,
    1e-41,  1e-40,  1e-39,  1e-38,  1e-37,  1e-36,  1e-35,  1e-34,  1e-33,  1e-32,  1e-31,  1e-30,  1e-29,  1e-28,
    1e-27,  1e-26,  1e-25,  1e-24,  1e-23,  1e-22,  1e-21,  1e-20,  1e-19,  1e-18,  1e-17,  1e-16,  1e-15,  1e-14,
    1e-13,  1e-12,  1e-11,  1e-10,  1e-9,   1e-8,   1e-7,   1e-6,   1e-5,   1e-4,   1e-3,   1e-2,   1e-1,   1e0,
    1e1,    1e2,    1e3,    1e4,    1e5,    1e6,    1e7,    1e8,    1e9,    1e10,   1e11,   1e12,   1e13,   1e14,
    1e15,   1e16,   1e17,   1e18,   1e19,   1e20,   1e21,   1e22,   1e23,   1e24,   1e25,   1e26,   1e27,   1e28,
    1e29,   1e30,   1e31,   1e32,   1e33,   1e34,   1e35,   1e36,   1e37,   1e38,   1e39,   1e40,   1e41,   1e42,
    1e43,   1e44,   1e45,   1e46,   1e47,   1e48,   1e49,   1e50,   1e51,   1e52,   1e53,   1e54,   1e55,   1e56,
    1e57,   1e58,   1e59,   1e60,   1e61,   1e62,   1e63,   1e64,   1e65,   1e66,   1e67,   1e68,   1e69,   1e70,
    1e71,   1e72,   1e73,   1e74,   1e75,   1e76,   1e77,   1e78,   1e79,   1e80,   1e81,   1e82,   1e83,   1e84,
    1e85,   1e86,   1e87,   1e88,   1e89,   1e90,   1e91,   1e92,   1e93,   1e94,   1e95,   1e96,   1e97,   1e98,
    1e99,   1e100,  1e101,  1e102,  1e103,  1e104,  1e105,  1e106,  1e107,  1e108,  1e109,  1e110,  1e111,  1e112,
    1e113,  1e114,  1e115,  1e116,  1e117,  1e118,  1e119,  1e120,  1e121,  1e122,  1e123,  1e124,  1e125,  1e126,
    1e127,  1e128,  1e129,  1e130,  1e131,  1e132,  1e133,  1e134,  1e135,  1e136,  1e137,  1e138,  1e139,  1e140,
    1e141,  1e142,  1e143,  1e144,  1e145,  1e146,  1e147,  1e148,  1e149,  1e150,  1e151,  1e152,  1e153,  1e154,
    1e155,  1e156,  1e157,  1e158,  1e159,  1e160,  1e161,  1e162,  1e163,  1e164,  1e165,  1e166,  1e167,  1e168,
    1e169,  1e170,  1e171,  1e172,  1e173,  1e174,  1e175,  1e176,  1e177,  1e178,  1e179,  1e180,  1e181,  1e182,
    1e183,  1e184,  1e185,  1e186,  1e187,  1e188,  1e189,  1e190,  1e191,  1e192,  1e193,  1e194,  1e195,  1e196,
    1e197,  1e198,  1e199,  1e200,  1e201,  1e202,  1e203,  1e204,  1e205,  1e206,  1e207,  1e208,  1e209,  1e210,
    1e211,  1e212,  1e213,  1e214,  1e215,  1e216,  1e217,  1e218,  1e219,  1e220,  1e221,  1e222,  1e223,  1e224,
    1e225,  1e226,  1e227,  1e228,  1e229,  1e230,  1e231,  1e232,  1e233,  1e234,  1e235,  1e236,  1e237,  1e238,
    1e239,  1e240,  1e241,  1e242,  1e243,  1e244,  1e245,  1e246,  1e247,  1e248,  1e249,  1e250,  1e251,  1e252,
    1e253,  1e254,  1e255,  1e256,  1e257,  1e258,  1e259,  1e260,  1e261,  1e262,  1e263,  1e264,  1e265,  1e266,
    1e267,  1e268,  1e269,  1e270,  1e271,  1e272,  1e273,  1e274,  1e275,  1e276,  1e277,  1e278,  1e279,  1e280,
    1e281,  1e282,  1e283,  1e284,  1e285,  1e286,  1e287,  1e288,  1e289,  1e290,  1e291,  1e292,  1e293,  1e294,
    1e295,  1e296,  1e297,  1e298,  1e299,  1e300,  1e301,  1e302,  1e303,  1e304,  1e305,  1e306,  1e307,  1e308,
};

static inline double pow10_of(int e) { return pow10_table[e - POW10_MIN]; }

/* ---- parsing --------------------------------------------------------------- */

typedef struct array_parser {
  const char *p, *end;
  const char *input; /* input name, for messages */
  inferd_datatype type;
  size_t expected;    /* elements the shape asks for */
  unsigned char *out; /* NULL: validate and count only */
  size_t bytes_total; /* BYTES: serialized size of what was seen */
} array_parser;

static inline bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static inline void skip_ws(array_parser *ps) {
  while (ps->p < ps->end && is_ws(*ps->p)) ps->p++;
}

/* What kind of text is at p, for error messages. The text itself is never
 * quoted: it is tensor data, and error messages reach the log. A single
 * character of JSON punctuation is syntax, not data, and is named. */
static const char *token_kind(const char *p, const char *end, char *buf, size_t size) {
  if (p >= end) return "the end of the data";
  const unsigned char c = (unsigned char)*p;
  if (c == '"') return "a string";
  if (c == '[') return "an array";
  if (c == '{') return "an object";
  if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.') return "a malformed number";
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return "a bare word (NaN, Infinity and names are not JSON values)";
  if (c > 0x20 && c < 0x7f)
    snprintf(buf, size, "'%c'", c);
  else
    snprintf(buf, size, "the byte 0x%02x", c);
  return buf;
}

static inferd_error *element_error(const array_parser *ps, size_t index, const char *what) {
  char buf[16];
  return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': element %zu: expected %s, got %s", ps->input, index, what,
                 token_kind(ps->p, ps->end, buf, sizeof(buf)));
}

/* A value that does not fit the tensor's type; not quoted, as above. */
static inferd_error *range_error(const array_parser *ps, size_t index) {
  return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': element %zu is out of range for %s", ps->input, index,
                 inferd_datatype_name(ps->type));
}

static bool match_literal(array_parser *ps, const char *lit, size_t n) {
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0) return false;
  ps->p += n;
  return true;
}

/* Lexes a JSON integer; false (p unmoved) when the token is not one. */
static inferd_error *lex_integer(array_parser *ps, size_t index, bool *negative, uint64_t *magnitude) {
  const char *p = ps->p, *end = ps->end;
  *negative = false;
  if (p < end && *p == '-') {
    *negative = true;
    p++;
  }
  if (p >= end || *p < '0' || *p > '9') return element_error(ps, index, "an integer");
  uint64_t v = 0;
  if (*p == '0') {
    p++;
  } else {
    while (p < end && *p >= '0' && *p <= '9') {
      if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
        return range_error(ps, index);
      p++;
    }
  }
  if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
    return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': element %zu: expected an integer, got a fraction or an exponent",
                   ps->input, index);
  if (p < end && *p >= '0' && *p <= '9') return element_error(ps, index, "an integer"); /* "01" */
  *magnitude = v;
  ps->p = p;
  return NULL;
}

static inferd_error *parse_integer(array_parser *ps, size_t index) {
  bool negative = false;
  uint64_t mag = 0;
  ERR_TRY(lex_integer(ps, index, &negative, &mag));
  int64_t lo;
  uint64_t hi;
  switch (ps->type) {
    case INFERD_TYPE_INT8:
      lo = INT8_MIN, hi = INT8_MAX;
      break;
    case INFERD_TYPE_INT16:
      lo = INT16_MIN, hi = INT16_MAX;
      break;
    case INFERD_TYPE_INT32:
      lo = INT32_MIN, hi = INT32_MAX;
      break;
    case INFERD_TYPE_INT64:
      lo = INT64_MIN, hi = INT64_MAX;
      break;
    case INFERD_TYPE_UINT8:
      lo = 0, hi = UINT8_MAX;
      break;
    case INFERD_TYPE_UINT16:
      lo = 0, hi = UINT16_MAX;
      break;
    case INFERD_TYPE_UINT32:
      lo = 0, hi = UINT32_MAX;
      break;
    default:
      lo = 0, hi = UINT64_MAX;
      break;
  }
  /* -0 is fine for unsigned types; other negatives must fit -lo. */
  const bool in_range = negative ? (mag == 0 || (lo < 0 && mag <= (uint64_t)(-(lo + 1)) + 1)) : mag <= hi;
  if (!in_range) return range_error(ps, index);
  if (!ps->out || index >= ps->expected) return NULL;
  /* Two's complement negation of the magnitude gives the value. */
  const uint64_t bits = negative ? (uint64_t)0 - mag : mag;
  switch (ps->type) {
    case INFERD_TYPE_INT8:
    case INFERD_TYPE_UINT8:
      ((uint8_t *)ps->out)[index] = (uint8_t)bits;
      break;
    case INFERD_TYPE_INT16:
    case INFERD_TYPE_UINT16:
      ((uint16_t *)ps->out)[index] = (uint16_t)bits;
      break;
    case INFERD_TYPE_INT32:
    case INFERD_TYPE_UINT32:
      ((uint32_t *)ps->out)[index] = (uint32_t)bits;
      break;
    default:
      ((uint64_t *)ps->out)[index] = bits;
      break;
  }
  return NULL;
}

/* A lexed decimal number: value = mantissa * 10^exponent (sign apart). */
typedef struct decimal {
  bool negative;
  uint64_t mantissa;
  int exponent;
  bool truncated; /* digits beyond the 19 kept were dropped */
  const char *begin, *end;
} decimal;

static inferd_error *lex_decimal(array_parser *ps, size_t index, decimal *d) {
  const char *p = ps->p, *end = ps->end;
  *d = (decimal){.begin = p};
  if (p < end && *p == '-') {
    d->negative = true;
    p++;
  }
  if (p >= end || *p < '0' || *p > '9') return element_error(ps, index, "a number");
  int kept = 0;
  long exponent = 0;
  if (*p == '0') {
    p++;
  } else {
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
      if (kept < 19) {
        d->mantissa = d->mantissa * 10 + (uint64_t)(*p - '0');
        kept++;
      } else {
        exponent++;
        d->truncated |= *p != '0';
      }
    }
  }
  if (p < end && *p == '.') {
    p++;
    if (p >= end || *p < '0' || *p > '9') return element_error(ps, index, "a number");
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
      if (d->mantissa == 0 && *p == '0') {
        exponent--; /* leading zeros are not significant */
      } else if (kept < 19) {
        d->mantissa = d->mantissa * 10 + (uint64_t)(*p - '0');
        kept++;
        exponent--;
      } else {
        d->truncated |= *p != '0';
      }
    }
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    bool neg = false;
    if (p < end && (*p == '+' || *p == '-')) neg = *p++ == '-';
    if (p >= end || *p < '0' || *p > '9') return element_error(ps, index, "a number");
    long e = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++)
      if (e < 100000) e = e * 10 + (*p - '0');
    exponent += neg ? -e : e;
  }
  if (p < end && *p >= '0' && *p <= '9') return element_error(ps, index, "a number"); /* "01" */
  if (exponent > 100000) exponent = 100000;
  if (exponent < -100000) exponent = -100000;
  d->exponent = (int)exponent;
  d->end = p;
  ps->p = p;
  return NULL;
}

/* The token's exact text as a C string for strtod/strtof; long tokens (a
 * thousand digits is still valid JSON) get a heap copy. */
static double token_to_double(const decimal *d, bool as_float, bool *ok) {
  char stack[128];
  const size_t n = (size_t)(d->end - d->begin);
  char *s = n < sizeof(stack) ? stack : mem_try_alloc(n + 1, 1);
  *ok = s != NULL;
  if (!s) return 0;
  memcpy(s, d->begin, n);
  s[n] = '\0';
  const double v = as_float ? (double)strtof(s, NULL) : strtod(s, NULL);
  if (s != stack) free(s);
  return v;
}

/* The decimal as a double; *exact when it is the correctly rounded value. */
static double decimal_to_double(const decimal *d, bool *exact) {
  double v;
  *exact = false;
  if (d->mantissa == 0) {
    *exact = true;
    v = 0.0;
  } else if (!d->truncated && d->mantissa <= (UINT64_C(1) << 53) && d->exponent >= -22 && d->exponent <= 22) {
    *exact = true;
    v = d->exponent >= 0 ? (double)d->mantissa * pow10_of(d->exponent) : (double)d->mantissa / pow10_of(-d->exponent);
  } else if (d->exponent >= POW10_MIN && d->exponent <= POW10_MAX) {
    v = (double)d->mantissa * pow10_of(d->exponent);
  } else if (d->exponent > POW10_MAX) {
    v = HUGE_VAL; /* the mantissa is at least 1 */
  } else if (d->exponent <= POW10_MIN - 36) {
    /* The mantissa is below 1e19, so the value is below 1e-324, under half
     * the smallest subnormal: it rounds to zero, and the table ends above. */
    *exact = true;
    v = 0.0;
  } else {
    /* Below 1e-307 times a 19-digit mantissa: scale in two steps. */
    v = (double)d->mantissa * pow10_of(d->exponent + 300) * 1e-300;
  }
  return d->negative ? -v : v;
}

static inferd_error *parse_float(array_parser *ps, size_t index) {
  double v;
  bool special = false;
  decimal d;
  if (match_literal(ps, "NaN", 3)) {
    v = NAN, special = true;
  } else if (match_literal(ps, "Infinity", 8)) {
    v = INFINITY, special = true;
  } else if (match_literal(ps, "-Infinity", 9)) {
    v = -INFINITY, special = true;
  } else {
    ERR_TRY(lex_decimal(ps, index, &d));
  }
  const bool store = ps->out && index < ps->expected;
  bool exact = true, ok = true;
  if (!special) v = decimal_to_double(&d, &exact);
  switch (ps->type) {
    case INFERD_TYPE_FP64:
      if (!exact) v = token_to_double(&d, false, &ok);
      if (!ok) return err_new(INFERD_ERROR_NO_MEMORY, "input '%s': out of memory", ps->input);
      if (!special && isinf(v)) return range_error(ps, index);
      if (store) ((double *)ps->out)[index] = v;
      return NULL;
    case INFERD_TYPE_FP32: {
      float f = (float)v;
      if (!special && !exact && isfinite(f) && f != 0.0f) {
        /* The double may be a few ulps off: near a float midpoint, ask strtof. */
        const double fd = f;
        const double other = v > fd ? nextafterf(f, INFINITY) : nextafterf(f, -INFINITY);
        if (fabs(v - (fd + other) / 2) <= fabs(v) * 1e-15) f = (float)token_to_double(&d, true, &ok);
        if (!ok) return err_new(INFERD_ERROR_NO_MEMORY, "input '%s': out of memory", ps->input);
      } else if (!special && !exact && !isfinite(f) && isfinite(v)) {
        f = (float)token_to_double(&d, true, &ok);
        if (!ok) return err_new(INFERD_ERROR_NO_MEMORY, "input '%s': out of memory", ps->input);
      }
      if (!special && isinf(f)) return range_error(ps, index);
      if (store) ((float *)ps->out)[index] = f;
      return NULL;
    }
    case INFERD_TYPE_FP16:
    case INFERD_TYPE_BF16: {
      const uint16_t h = ps->type == INFERD_TYPE_FP16 ? f16_from_f64(v) : bf16_from_f64(v);
      const uint16_t exp_mask = ps->type == INFERD_TYPE_FP16 ? 0x7c00 : 0x7f80;
      if (!special && (h & 0x7fff) == exp_mask) return range_error(ps, index);
      if (store) ((uint16_t *)ps->out)[index] = h;
      return NULL;
    }
    default:
      return err_new(INFERD_ERROR_INTERNAL, "parse_float: not a float type");
  }
}

static inferd_error *parse_bool(array_parser *ps, size_t index) {
  uint8_t v;
  if (match_literal(ps, "true", 4)) {
    v = 1;
  } else if (match_literal(ps, "false", 5)) {
    v = 0;
  } else {
    return element_error(ps, index, "true or false for BOOL");
  }
  if (ps->out && index < ps->expected) ps->out[index] = v;
  return NULL;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool read_hex4(const char *p, const char *end, uint32_t *out) {
  if (end - p < 4) return false;
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    const int h = hex_value(p[i]);
    if (h < 0) return false;
    v = v << 4 | (uint32_t)h;
  }
  *out = v;
  return true;
}

/* Decodes a JSON string at ps->p. With `out` NULL it only measures; else it
 * writes the bytes at out (which has room: the caller measured first).
 * *length is the decoded length either way. */
static inferd_error *decode_string(array_parser *ps, size_t index, unsigned char *out, size_t *length) {
  if (ps->p >= ps->end || *ps->p != '"') return element_error(ps, index, "a string for BYTES");
  const char *p = ps->p + 1, *end = ps->end;
  size_t n = 0;
  for (;;) {
    /* Copy the run of plain characters at once. */
    const char *run = p;
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) p++;
    if (out) memcpy(out + n, run, (size_t)(p - run));
    n += (size_t)(p - run);
    if (p >= end)
      return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': element %zu: unterminated string", ps->input, index);
    if (*p == '"') break;
    if (*p != '\\')
      return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': element %zu: control character 0x%02x in a string",
                     ps->input, index, (unsigned char)*p);
    if (++p >= end)
      return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': element %zu: unterminated string", ps->input, index);
    char c = *p++;
    uint32_t cp;
    switch (c) {
      case '"':
        cp = '"';
        break;
      case '\\':
        cp = '\\';
        break;
      case '/':
        cp = '/';
        break;
      case 'b':
        cp = '\b';
        break;
      case 'f':
        cp = '\f';
        break;
      case 'n':
        cp = '\n';
        break;
      case 'r':
        cp = '\r';
        break;
      case 't':
        cp = '\t';
        break;
      case 'u':
        if (!read_hex4(p, end, &cp)) goto bad_escape;
        p += 4;
        if (cp >= 0xdc00 && cp <= 0xdfff) goto bad_escape;
        if (cp >= 0xd800 && cp <= 0xdbff) {
          uint32_t low;
          if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !read_hex4(p + 2, end, &low) || low < 0xdc00 ||
              low > 0xdfff)
            goto bad_escape;
          p += 6;
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        }
        break;
      default:
        goto bad_escape;
    }
    unsigned char utf8[4];
    size_t k;
    if (cp < 0x80) {
      utf8[0] = (unsigned char)cp, k = 1;
    } else if (cp < 0x800) {
      utf8[0] = (unsigned char)(0xc0 | cp >> 6), utf8[1] = (unsigned char)(0x80 | (cp & 0x3f)), k = 2;
    } else if (cp < 0x10000) {
      utf8[0] = (unsigned char)(0xe0 | cp >> 12), utf8[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
      utf8[2] = (unsigned char)(0x80 | (cp & 0x3f)), k = 3;
    } else {
      utf8[0] = (unsigned char)(0xf0 | cp >> 18), utf8[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
      utf8[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)), utf8[3] = (unsigned char)(0x80 | (cp & 0x3f)), k = 4;
    }
    if (out) memcpy(out + n, utf8, k);
    n += k;
  }
  ps->p = p + 1;
  *length = n;
  return NULL;
bad_escape:
  return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': element %zu: invalid escape in a string", ps->input, index);
}

static inferd_error *parse_bytes(array_parser *ps, size_t index) {
  size_t n;
  if (ps->out && index < ps->expected) {
    unsigned char *dst = ps->out + ps->bytes_total;
    ERR_TRY(decode_string(ps, index, dst + 4, &n));
    if (n > UINT32_MAX)
      return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': element %zu: string longer than 4 GiB", ps->input, index);
    const uint32_t len32 = (uint32_t)n;
    memcpy(dst, &len32, 4);
  } else {
    ERR_TRY(decode_string(ps, index, NULL, &n));
  }
  if (!mem_add_ok(ps->bytes_total, n + 4, &ps->bytes_total))
    return err_new(INFERD_ERROR_TOO_LARGE, "input '%s': BYTES data too large", ps->input);
  return NULL;
}

static inline inferd_error *parse_element(array_parser *ps, size_t index) {
  switch (ps->type) {
    case INFERD_TYPE_FP32:
    case INFERD_TYPE_FP64:
    case INFERD_TYPE_FP16:
    case INFERD_TYPE_BF16:
      return parse_float(ps, index);
    case INFERD_TYPE_BOOL:
      return parse_bool(ps, index);
    case INFERD_TYPE_BYTES:
      return parse_bytes(ps, index);
    default:
      return parse_integer(ps, index);
  }
}

/* Walks the (possibly nested) array, parsing every element; returns the
 * element count in *count. Brackets only group: nesting is flattened in
 * row-major order, as the protocol allows. */
static inferd_error *walk_array(array_parser *ps, size_t *count) {
  enum { AFTER_OPEN, AFTER_COMMA, AFTER_VALUE } state = AFTER_OPEN;
  size_t n = 0, depth = 1;
  skip_ws(ps);
  if (ps->p >= ps->end || *ps->p != '[')
    return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': 'data' must be a JSON array", ps->input);
  ps->p++;
  for (;;) {
    skip_ws(ps);
    if (ps->p >= ps->end)
      return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': 'data' array is not terminated", ps->input);
    const char c = *ps->p;
    if (state != AFTER_VALUE) {
      if (c == '[') {
        depth++;
        ps->p++;
        state = AFTER_OPEN;
        continue;
      }
      if (!(c == ']' && state == AFTER_OPEN)) {
        ERR_TRY(parse_element(ps, n));
        n++;
        state = AFTER_VALUE;
        continue;
      }
    } else if (c == ',') {
      ps->p++;
      state = AFTER_COMMA;
      continue;
    } else if (c != ']') {
      char buf[16];
      return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': element %zu: expected ',' or ']' but got %s", ps->input,
                     n ? n - 1 : 0, token_kind(ps->p, ps->end, buf, sizeof(buf)));
    }
    ps->p++; /* ']' */
    state = AFTER_VALUE;
    if (--depth == 0) break;
  }
  skip_ws(ps);
  if (ps->p != ps->end)
    return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': unexpected text after the 'data' array", ps->input);
  *count = n;
  return NULL;
}

static inferd_error *count_mismatch(const char *input, size_t expected, size_t got) {
  return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': shape has %zu elements but 'data' has %zu", input, expected,
                 got);
}

inferd_error *http_numbers_parse(const char *text, size_t len, inferd_datatype type, size_t expected_count,
                                 const char *input, void **data, size_t *byte_size) {
  *data = NULL;
  *byte_size = 0;
  if (type <= INFERD_TYPE_INVALID || type >= INFERD_TYPE_COUNT_)
    return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': invalid datatype", input);
  array_parser ps = {.p = text, .end = text + len, .input = input, .type = type, .expected = expected_count};
  size_t count;
  /* Every element takes at least one character and a separator, so a shape
   * asking for more than that cannot match: count first, allocate nothing. */
  const bool plausible = expected_count <= len / 2 + 1;
  if (type == INFERD_TYPE_BYTES || !plausible) {
    ERR_TRY(walk_array(&ps, &count));
    if (count != expected_count) return count_mismatch(input, expected_count, count);
    if (type != INFERD_TYPE_BYTES) return NULL; /* unreachable: counts differ */
  }
  size_t size;
  if (type == INFERD_TYPE_BYTES) {
    size = ps.bytes_total;
  } else if (!mem_mul_ok(expected_count, inferd_datatype_size(type), &size)) {
    return err_new(INFERD_ERROR_INVALID_ARG, "input '%s': shape too large", input);
  }
  unsigned char *out = mem_try_aligned(size ? size : 1);
  if (!out) return err_new(INFERD_ERROR_NO_MEMORY, "input '%s': cannot allocate %zu bytes", input, size);
  ps = (array_parser){
      .p = text, .end = text + len, .input = input, .type = type, .expected = expected_count, .out = out};
  inferd_error *err = walk_array(&ps, &count);
  if (!err && count != expected_count) err = count_mismatch(input, expected_count, count);
  if (err) {
    free(out);
    return err;
  }
  *data = out;
  *byte_size = size;
  return NULL;
}

/* ---- printing --------------------------------------------------------------- */

size_t http_format_u64(uint64_t v, char *out) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return (size_t)n;
}

size_t http_format_i64(int64_t v, char *out) {
  if (v >= 0) return http_format_u64((uint64_t)v, out);
  out[0] = '-';
  return 1 + http_format_u64((uint64_t)0 - (uint64_t)v, out + 1);
}

static size_t format_special(double v, char *out) {
  const char *s = isnan(v) ? "NaN" : v < 0 ? "-Infinity" : "Infinity";
  const size_t n = strlen(s);
  memcpy(out, s, n);
  return n;
}

/* d * 10^(8 - e10) rounded half to even (as printf rounds exact ties), for a
 * positive finite float value d. */
static inline uint64_t scale_to_nine_digits(double d, int e10) { return (uint64_t)rint(d * pow10_of(8 - e10)); }

size_t http_format_f32(float value, char *out) {
  if (!isfinite(value)) return format_special(value, out);
  char *o = out;
  if (signbit(value)) *o++ = '-';
  const double d = fabs((double)value);
  if (d == 0) {
    *o++ = '0';
    return (size_t)(o - out);
  }
  int e2;
  frexp(d, &e2);
  /* floor((e2-1) log10 2) is floor(log10 d) or one less. */
  int e10 = (int)floor((e2 - 1) * 0.30102999566398120);
  uint64_t m = scale_to_nine_digits(d, e10);
  if (m >= 1000000000u) m = scale_to_nine_digits(d, ++e10);
  if (m >= 1000000000u) m = scale_to_nine_digits(d, ++e10);
  char dig[9];
  for (int i = 8; i >= 0; i--) {
    dig[i] = (char)('0' + m % 10);
    m /= 10;
  }
  int nd = 9;
  while (nd > 1 && dig[nd - 1] == '0') nd--;
  if (e10 < -4 || e10 >= 9) {
    *o++ = dig[0];
    if (nd > 1) {
      *o++ = '.';
      memcpy(o, dig + 1, (size_t)nd - 1);
      o += nd - 1;
    }
    *o++ = 'e';
    *o++ = e10 < 0 ? '-' : '+';
    const int ae = e10 < 0 ? -e10 : e10;
    if (ae < 10) *o++ = '0';
    o += http_format_u64((uint64_t)ae, o);
  } else if (e10 >= 0) {
    for (int i = 0; i <= e10; i++) *o++ = i < nd ? dig[i] : '0';
    if (nd > e10 + 1) {
      *o++ = '.';
      memcpy(o, dig + e10 + 1, (size_t)(nd - e10 - 1));
      o += nd - e10 - 1;
    }
  } else {
    *o++ = '0';
    *o++ = '.';
    for (int i = 0; i < -e10 - 1; i++) *o++ = '0';
    memcpy(o, dig, (size_t)nd);
    o += nd;
  }
  return (size_t)(o - out);
}

size_t http_format_f64(double value, char *out) {
  if (!isfinite(value)) return format_special(value, out);
  const int n = snprintf(out, HTTP_NUMBER_MAX_CHARS, "%.17g", value);
  return n > 0 ? (size_t)n : 0;
}

size_t http_format_element(inferd_datatype type, const void *element, char *out) {
  switch (type) {
    case INFERD_TYPE_BOOL: {
      const bool b = *(const uint8_t *)element != 0;
      memcpy(out, b ? "true" : "false", b ? 4 : 5);
      return b ? 4 : 5;
    }
    case INFERD_TYPE_UINT8:
      return http_format_u64(*(const uint8_t *)element, out);
    case INFERD_TYPE_UINT16:
      return http_format_u64(*(const uint16_t *)element, out);
    case INFERD_TYPE_UINT32:
      return http_format_u64(*(const uint32_t *)element, out);
    case INFERD_TYPE_UINT64:
      return http_format_u64(*(const uint64_t *)element, out);
    case INFERD_TYPE_INT8:
      return http_format_i64(*(const int8_t *)element, out);
    case INFERD_TYPE_INT16:
      return http_format_i64(*(const int16_t *)element, out);
    case INFERD_TYPE_INT32:
      return http_format_i64(*(const int32_t *)element, out);
    case INFERD_TYPE_INT64:
      return http_format_i64(*(const int64_t *)element, out);
    case INFERD_TYPE_FP16:
      return http_format_f32(f16_to_f32(*(const uint16_t *)element), out);
    case INFERD_TYPE_BF16:
      return http_format_f32(bf16_to_f32(*(const uint16_t *)element), out);
    case INFERD_TYPE_FP32:
      return http_format_f32(*(const float *)element, out);
    case INFERD_TYPE_FP64:
      return http_format_f64(*(const double *)element, out);
    default:
      return 0;
  }
}
