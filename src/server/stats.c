#include "server/stats.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

void stats_init(model_stats *s, int max_batch) {
  memset(s, 0, sizeof(*s));
  s->max_batch = max_batch > 0 ? max_batch : 1;
  s->batch_stats = mem_zalloc(((size_t)s->max_batch + 1) * sizeof(batch_stat));
}

void stats_free(model_stats *s) {
  free(s->batch_stats);
  s->batch_stats = NULL;
}
