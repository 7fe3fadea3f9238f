/* IEEE half and bfloat16 conversions (float16.h). */
#include "base/float16.h"

#include <string.h>

/* Rounds a double to a narrower IEEE format with `exp_bits` exponent bits
 * and `mant_bits` stored mantissa bits, to nearest even, straight from the
 * double's bits so that there is one rounding only. */
static uint16_t round_double_to_narrow(double value, int exp_bits, int mant_bits) {
  uint64_t bits;
  memcpy(&bits, &value, sizeof(bits));
  const uint16_t sign = (uint16_t)((bits >> 63) << (exp_bits + mant_bits));
  const int exp_field = (int)((bits >> 52) & 0x7ff);
  const uint64_t mant = bits & ((UINT64_C(1) << 52) - 1);
  const int bias = (1 << (exp_bits - 1)) - 1;
  const uint16_t inf = (uint16_t)(((1u << exp_bits) - 1) << mant_bits);
  if (exp_field == 0x7ff) return mant ? (uint16_t)(sign | inf | (1u << (mant_bits - 1))) : (uint16_t)(sign | inf);
  if (exp_field == 0) return sign; /* double subnormals are far below any narrow subnormal */
  const int exponent = exp_field - 1023;
  if (exponent > bias) return (uint16_t)(sign | inf);
  const uint64_t full = mant | (UINT64_C(1) << 52);
  uint64_t q, rem, half;
  int shift;
  if (exponent >= 1 - bias) {
    /* Normal in the narrow format: keep mant_bits of the mantissa. */
    shift = 52 - mant_bits;
    q = ((uint64_t)(exponent + bias) << mant_bits) | (mant >> shift);
    rem = mant & ((UINT64_C(1) << shift) - 1);
  } else {
    /* Subnormal: count units of 2^(1 - bias - mant_bits). */
    shift = 52 - (exponent - (1 - bias - mant_bits));
    if (shift > 53) return sign;
    q = full >> shift;
    rem = full & ((UINT64_C(1) << shift) - 1);
  }
  half = UINT64_C(1) << (shift - 1);
  if (rem > half || (rem == half && (q & 1))) q++; /* a carry into the exponent is right, up to infinity */
  return (uint16_t)(sign | q);
}

uint16_t f16_from_f64(double value) { return round_double_to_narrow(value, 5, 10); }
uint16_t bf16_from_f64(double value) { return round_double_to_narrow(value, 8, 7); }

float f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else {
    /* Zero or subnormal: value = mant * 2^-24, exact in float. */
    float f = (float)mant * 0x1p-24f;
    return sign ? -f : f;
  }
  float f;
  memcpy(&f, &bits, sizeof(f));
  return f;
}

float bf16_to_f32(uint16_t b) {
  uint32_t bits = (uint32_t)b << 16;
  float f;
  memcpy(&f, &bits, sizeof(f));
  return f;
}
