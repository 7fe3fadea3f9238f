/*
 * IEEE half precision (FP16) and bfloat16: from a double rounded to nearest
 * even in one step, straight from its bits (no double rounding through
 * float), with subnormals, overflow to infinity and NaN kept quiet; and back
 * to float, exactly. One implementation for the engine, the frontends and
 * the CLI.
 */
#ifndef INFERD_BASE_FLOAT16_H
#define INFERD_BASE_FLOAT16_H

#include <stdint.h>

uint16_t f16_from_f64(double value);
uint16_t bf16_from_f64(double value);
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t b);

#endif
