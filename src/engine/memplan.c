#include "engine/memplan.h"

#include <stdlib.h>

#include "base/mem.h"

static int by_size_desc(const void *a, const void *b, void *ctx) {
  const memplan_buffer *bufs = ctx;
  size_t sa = bufs[*(const int *)a].size, sb = bufs[*(const int *)b].size;
  if (sa != sb) return sa < sb ? 1 : -1;
  return *(const int *)a - *(const int *)b;
}

static size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

size_t memplan_assign(memplan_buffer *buffers, int count, size_t alignment) {
  if (count <= 0) return 0;
  int *order = mem_alloc((size_t)count * sizeof(int));
  for (int i = 0; i < count; i++) order[i] = i;
  qsort_r(order, (size_t)count, sizeof(int), by_size_desc, buffers);
  /* Placed buffers overlapping in time, sorted by offset, are scanned for
   * the first gap big enough. */
  int *live = mem_alloc((size_t)count * sizeof(int));
  size_t total = 0;
  for (int k = 0; k < count; k++) {
    memplan_buffer *b = &buffers[order[k]];
    int n_live = 0;
    for (int j = 0; j < k; j++) {
      const memplan_buffer *o = &buffers[order[j]];
      if (o->first <= b->last && b->first <= o->last) {
        /* insertion sort by offset; counts are a few hundred */
        int pos = n_live++;
        while (pos > 0 && buffers[live[pos - 1]].offset > o->offset) {
          live[pos] = live[pos - 1];
          pos--;
        }
        live[pos] = order[j];
      }
    }
    size_t offset = 0;
    for (int j = 0; j < n_live; j++) {
      const memplan_buffer *o = &buffers[live[j]];
      if (o->offset >= offset + b->size) break;
      size_t end = align_up(o->offset + o->size, alignment);
      if (end > offset) offset = end;
    }
    b->offset = offset;
    if (offset + b->size > total) total = offset + b->size;
  }
  free(live);
  free(order);
  return align_up(total, alignment);
}

size_t memplan_lower_bound(const memplan_buffer *buffers, int count) {
  int last_step = 0;
  for (int i = 0; i < count; i++)
    if (buffers[i].last > last_step) last_step = buffers[i].last;
  size_t best = 0;
  for (int s = 0; s <= last_step; s++) {
    size_t sum = 0;
    for (int i = 0; i < count; i++)
      if (buffers[i].first <= s && s <= buffers[i].last) sum += buffers[i].size;
    if (sum > best) best = sum;
  }
  return best;
}
