/*
 * What the metrics object's tests reach beyond the public API: the quantile
 * list parser, and creation with a GPU monitor made by the caller (a fake
 * NVML table in tests).
 */
#ifndef INFERD_METRICS_INTERNAL_H
#define INFERD_METRICS_INTERNAL_H

#include "inferd.h"
#include "metrics/gpu_nvml.h"

enum { METRICS_MAX_QUANTILES = 16 };
#define METRICS_DEFAULT_QUANTILES "0.5:0.05,0.9:0.01,0.99:0.001"

typedef struct metrics_quantiles {
  int count;
  double q[METRICS_MAX_QUANTILES];
  double error[METRICS_MAX_QUANTILES]; /* accepted for Triton's syntax; the histogram's own error is about 3% */
} metrics_quantiles;

/* Parses "q:error,..." (quantiles and errors in [0, 1]). */
inferd_error *metrics_parse_quantiles(const char *text, metrics_quantiles *out);

/* inferd_metrics_create with `gpu` (taken, may be NULL) as the GPU source
 * instead of opening NVML. */
inferd_error *metrics_create_with_gpu(inferd_server *server, const inferd_metrics_options *options, gpu_monitor *gpu,
                                      inferd_metrics **out);

#endif
