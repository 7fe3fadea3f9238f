/*
 * The scheduler of one model version: its request queues (one per priority
 * level), the dynamic batcher, and its instances. Each instance is a worker
 * thread with its own execution context (activation memory, threads), so
 * `count: 4` runs four batches at once.
 *
 * A worker takes a batch when one is worth running: the queue holds a
 * preferred batch size (or the maximum), or the oldest request has waited
 * max_queue_delay; requests whose queue timeout passed are answered with an
 * error instead of run. Inputs of the batch's requests are gathered into the
 * instance's staging buffers along the batch dimension, the context runs
 * once, and outputs are split back into one response per request.
 */
#ifndef INFERD_SERVER_SCHEDULER_H
#define INFERD_SERVER_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include "inferd.h"
#include "server/request.h"
#include "server/stats.h"

enum { SCHEDULER_MAX_PREFERRED = 16 };

typedef struct scheduler_config {
  int max_batch_size; /* 0: requests run one at a time with their own shapes */
  bool dynamic_batching;
  int preferred[SCHEDULER_MAX_PREFERRED];
  int n_preferred;
  uint64_t max_queue_delay_us;
  int priority_levels;        /* >= 1; level 1 is the highest */
  int default_priority_level; /* 1..priority_levels */
  uint64_t default_timeout_us; /* 0: none */
  bool allow_timeout_override;
  bool delay_on_timeout; /* timeout_action DELAY: an expired request is run last instead of rejected */
  uint32_t max_queue_size; /* 0: unbounded */
  bool preserve_ordering;
  int instance_count;
  int threads_per_instance;
  bool latency_summaries; /* the version's stats keep latency windows (stats_enable_summaries) */
} scheduler_config;

/* What the scheduler needs to know of each output to answer requests. */
typedef struct scheduler_output_info {
  char **labels; /* for classification, may be NULL */
  int n_labels;
  /* The configuration reshapes the output: clients see these dims (without
   * the batch dimension) instead of the model's. */
  bool reshaped;
  int rank;
  int64_t dims[INFERD_MAX_RANK];
} scheduler_output_info;

typedef struct scheduler scheduler;

/* Starts the instances: instance i runs on plans[i] (config->instance_count
 * of them, compiled from one model for each instance's device, so they share
 * inputs and outputs; instances on one device share its plan). Each gathers
 * batches in staging memory from its plan (page-locked on a GPU's) and runs
 * asynchronously on its own context. The plans, stats and output infos must
 * outlive the scheduler. version is reported in responses. */
inferd_error *scheduler_create(inferd_plan *const *plans, const scheduler_config *config,
                               const scheduler_output_info *outputs, model_stats *stats, int64_t version,
                               scheduler **out);
/* Queues a checked request (request->batch set). OVERLOADED when the queue
 * is full, UNAVAILABLE when the scheduler is stopping (its model is being
 * unloaded); the caller still owns the request then. */
inferd_error *scheduler_enqueue(scheduler *s, inferd_request *request);
/* The fast path for small models: when nothing is queued, an instance is
 * idle and the model's runs are known to take microseconds, runs the request
 * on the calling thread with that instance's context and answers it before
 * returning true. Saves the two thread hand-offs a queued request costs.
 * Batching is unaffected: it forms only when requests are queued, and a
 * model with max_queue_delay (which asks to wait for company) never runs
 * inline.
 * false: nothing happened, queue it. */
bool scheduler_try_inline(scheduler *s, inferd_request *request);
/* Requests queued, not yet taken by an instance (the metrics' pending count). */
int scheduler_queued(scheduler *s);
/* Answers every request still queued (not yet taken by an instance) with
 * OVERLOADED (the server is stopping: retry elsewhere), saying `why`; batches already running finish. Returns how
 * many were answered. */
int scheduler_cancel_queued(scheduler *s, const char *why);
/* No request will join a batch any more (the server stopped accepting):
 * what is queued runs now instead of waiting out max_queue_delay. */
void scheduler_flush(scheduler *s);
/* Wakes the idle instances, which answer the queued requests cancelled
 * meanwhile (inferd_request_cancel) before they look for work. */
void scheduler_wake(scheduler *s);
/* Answers CANCELLED every queued request whose cancel flag is set (its
 * client has gone, `why`), without running it; returns how many. */
int scheduler_cancel_flagged(scheduler *s, const char *why);
/* The queue bound of a model whose configuration sets none: a request past
 * it is refused OVERLOADED rather than queued without bound. */
enum { SCHEDULER_DEFAULT_MAX_QUEUE_SIZE = 4096 };
/* Refuses new requests, runs everything queued, joins the instances. */
void scheduler_delete(scheduler *s);

#endif
