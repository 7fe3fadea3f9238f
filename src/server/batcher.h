/*
 * The dynamic batcher's rule: which of the queued requests form the next
 * batch. Kept apart from the scheduler's threads, locks and clocks so that
 * tests can check the rule on its own.
 *
 * The queue is seen in the order batches take requests (priority level, then
 * arrival), and a batch is always a run of whole requests from its head:
 *
 *   - the longest such run that fits max_batch_size is the candidate; the
 *     first request always belongs to it (admission checks that it fits);
 *   - the batch is ready now when the candidate is full (max_batch_size
 *     items), when it cannot grow (the next request does not fit), or when
 *     the whole queue adds up to a preferred size;
 *   - otherwise it is ready once the oldest request has waited
 *     max_queue_delay, or when the scheduler stops;
 *   - a ready batch is the longest run whose item count is a preferred size,
 *     or, when no run is one (or the candidate is full), the candidate.
 *
 * So a ready batch never comes out empty: a queue whose sizes cannot make a
 * preferred size (a request of 3 with preferred sizes 2 and 6) still runs
 * once its delay is over.
 */
#ifndef INFERD_SERVER_BATCHER_H
#define INFERD_SERVER_BATCHER_H

#include <stdbool.h>

typedef struct batch_rules {
  int max_batch_size; /* >= 1 */
  const int *preferred;
  int n_preferred;
} batch_rules;

/* sizes[0..n): the items of the queued requests, in take order (the caller
 * may stop listing once they add up past max_batch_size). due: the oldest
 * request waited long enough, or the scheduler stops. Returns how many of
 * the first requests to take now (>= 1 when due and n > 0), or 0 to wait. */
int batcher_pick(const batch_rules *rules, const int *sizes, int n, bool due);

#endif
