/*
 * Activation memory planning: given the buffers a program needs and the
 * steps during which each is live, place them in one arena so buffers whose
 * lifetimes do not overlap share memory. Greedy by size (largest first, each
 * at the lowest offset that fits), which is what production engines use and
 * lands within a few percent of the lower bound for CNNs.
 */
#ifndef INFERD_ENGINE_MEMPLAN_H
#define INFERD_ENGINE_MEMPLAN_H

#include <stddef.h>

typedef struct memplan_buffer {
  size_t size;
  int first, last; /* steps, inclusive */
  size_t offset;   /* out */
} memplan_buffer;

/* Assigns offsets (multiples of `alignment`) and returns the arena size. */
size_t memplan_assign(memplan_buffer *buffers, int count, size_t alignment);
/* The largest sum of sizes of buffers live at one step: no placement can use
 * less, so it measures the planner. */
size_t memplan_lower_bound(const memplan_buffer *buffers, int count);

#endif
