#include "server/batcher.h"

static bool is_preferred(const batch_rules *r, int items) {
  for (int i = 0; i < r->n_preferred; i++)
    if (r->preferred[i] == items) return true;
  return false;
}

int batcher_pick(const batch_rules *r, const int *sizes, int n, bool due) {
  if (n <= 0) return 0;
  int run = 0, items = 0, preferred_run = 0;
  while (run < n && (run == 0 || items + sizes[run] <= r->max_batch_size)) {
    items += sizes[run++];
    if (is_preferred(r, items)) preferred_run = run;
  }
  bool full = items >= r->max_batch_size;
  bool cannot_grow = run < n;
  bool queue_is_preferred = run == n && preferred_run == run;
  if (full || queue_is_preferred) return run;
  if (!cannot_grow && !due) return 0;
  return preferred_run ? preferred_run : run;
}
