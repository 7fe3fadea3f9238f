/* A small deterministic generator (xorshift32) for the randomized unit
 * tests: the same seed gives the same cases on every machine, so a failure
 * names a round that reproduces. */
#ifndef INFERD_TESTS_TEST_RNG_H
#define INFERD_TESTS_TEST_RNG_H

#include <stdint.h>

static inline uint32_t test_rng_next(uint32_t *state) {
  uint32_t x = *state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *state = x;
}

#endif
