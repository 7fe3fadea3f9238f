/*
 * INT8 calibration: per-tensor activation thresholds from the values a
 * model's tensors take on calibration data, and the calibration cache file
 * that keeps them so a later load needs no data.
 *
 * Each tensor's |x| is gathered into a histogram of CALIB_BINS bins over
 * [0, range), where range is a power of two that doubles (merging pairs of
 * bins) whenever a larger value comes, so one pass over the data suffices
 * and the result does not depend on the order the batches came in. The
 * threshold T then gives the symmetric scale T / 127 and is chosen by:
 *   - max: the largest |x| seen;
 *   - percentile p: the upper edge of the bin where p% of the values lie
 *     below (capped at the max);
 *   - entropy: the clipping point whose 128-level quantization of the
 *     clipped distribution loses the least information (smallest KL
 *     divergence from the clipped histogram), as TensorRT's entropy
 *     calibrator does; values past the point count in its last bin.
 *
 * The cache is text, one tensor a line:
 *
 *   # inferd calibration cache v1
 *   model <checksum of the model file>
 *   method entropy            (or max, or percentile 99.99)
 *   keep <names>              (optional: the convolutions an INT8 plan keeps in
 *                              FP32 when it is given no list of its own)
 *   <tensor name><TAB><threshold>
 *
 * A name is everything before the line's last tab (it may hold spaces and
 * tabs, and begin with '#': comments are the lines that begin with '#' and
 * hold no tab; no name holds a newline or a NUL); thresholds are finite
 * and non-negative, each name once. Errors name the line and column.
 */
#ifndef INFERD_ENGINE_QUANT_CALIBRATION_H
#define INFERD_ENGINE_QUANT_CALIBRATION_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

enum { CALIB_BINS = 2048, CALIB_LEVELS = 128 };

typedef enum calib_method { CALIB_MAX = 0, CALIB_PERCENTILE, CALIB_ENTROPY } calib_method;

typedef struct calib_histogram {
  double range;              /* bins cover [0, range); 0 until a nonzero value came */
  uint64_t bins[CALIB_BINS];
  uint64_t count;            /* finite values seen */
  uint64_t non_finite;       /* NaN and infinities, left out */
  uint64_t zeros;            /* exact zeros (in bin 0; the entropy method leaves them out) */
  float max_abs;
} calib_histogram;

void calib_histogram_init(calib_histogram *h);
void calib_histogram_add(calib_histogram *h, const float *x, size_t n);
/* The threshold by `method` (percentile in (0, 100] for CALIB_PERCENTILE);
 * 0 for a histogram of zeros or of nothing. */
double calib_threshold(const calib_histogram *h, calib_method method, double percentile);

/* "max", "entropy", "percentile"; calib_method_parse accepts these. */
const char *calib_method_name(calib_method m);
inferd_error *calib_method_parse(const char *name, calib_method *out);

typedef struct calib_entry {
  char *name;
  double threshold;
} calib_entry;

typedef struct calib_cache {
  char *checksum;
  calib_method method;
  double percentile; /* CALIB_PERCENTILE */
  char *keep;        /* convolutions to keep in FP32 (comma-separated), or NULL */
  calib_entry *entries;
  int n;
  size_t cap;
} calib_cache;

/* Parses a cache's text (len bytes, no terminator needed). */
inferd_error *calib_cache_parse(const char *text, size_t len, calib_cache *out);
inferd_error *calib_cache_read(const char *path, calib_cache *out);
/* The cache's text (malloc'd, NUL-terminated), which parses back to it. */
char *calib_cache_format(const calib_cache *c, size_t *len);
/* Writes it to a temporary file renamed over path, so a crash leaves the old one. */
inferd_error *calib_cache_write(const calib_cache *c, const char *path);
/* Adds or replaces a tensor's threshold. */
void calib_cache_set(calib_cache *c, const char *name, double threshold);
/* The threshold of `name`, or a negative value when it has none. */
double calib_cache_find(const calib_cache *c, const char *name);
void calib_cache_free(calib_cache *c);

/* "sha256:<hex>" of a file's bytes into out (size >= 72 holds it), the
 * checksum a cache names its model by. */
inferd_error *calib_file_checksum(const char *path, char *out, size_t size);

/* The symmetric INT8 scale of a threshold (T / 127; 1 for T == 0, so a
 * tensor of zeros quantizes to zeros). */
float calib_scale(double threshold);

/* Histograms by tensor name, filled batch by batch during calibration runs,
 * then turned into a cache. */
typedef struct calib_tensor {
  char *name;
  calib_histogram *hist;
} calib_tensor;

typedef struct calib_collector {
  calib_tensor *tensors;
  int n;
  size_t cap;
} calib_collector;

void calib_collector_add(calib_collector *c, const char *name, const float *x, size_t n);
/* The histogram of `name`, or NULL. */
const calib_histogram *calib_collector_find(const calib_collector *c, const char *name);
/* One threshold per tensor seen, by `method`, into a new cache (checksum
 * copied, may be NULL). */
void calib_collector_thresholds(const calib_collector *c, calib_method method, double percentile,
                                const char *checksum, calib_cache *out);
void calib_collector_free(calib_collector *c);

#endif
