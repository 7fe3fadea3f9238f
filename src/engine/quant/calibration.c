/*
 * Calibration histograms, thresholds and the cache file (calibration.h).
 */
#include "engine/quant/calibration.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"

#define CACHE_HEADER "# inferd calibration cache v1"

/* ---- histograms ---------------------------------------------------------- */

void calib_histogram_init(calib_histogram *h) { memset(h, 0, sizeof(*h)); }

/* Doubles the range until it holds v, merging pairs of bins: bin i of the
 * doubled range covers bins 2i and 2i+1 of the old one exactly. */
static void cover(calib_histogram *h, double v) {
  if (h->range == 0) {
    int e;
    frexp(v, &e); /* v < 2^e */
    h->range = ldexp(1.0, e);
    return;
  }
  while (v >= h->range) {
    for (int i = 0; i < CALIB_BINS / 2; i++) h->bins[i] = h->bins[2 * i] + h->bins[2 * i + 1];
    memset(h->bins + CALIB_BINS / 2, 0, sizeof(h->bins) / 2);
    h->range *= 2;
  }
}

void calib_histogram_add(calib_histogram *h, const float *x, size_t n) {
  float batch_max = 0;
  for (size_t i = 0; i < n; i++) {
    const float a = fabsf(x[i]);
    if (isfinite(a) && a > batch_max) batch_max = a;
  }
  if (batch_max > 0) cover(h, batch_max);
  if (batch_max > h->max_abs) h->max_abs = batch_max;
  const double per_bin = h->range > 0 ? CALIB_BINS / h->range : 0;
  for (size_t i = 0; i < n; i++) {
    const float a = fabsf(x[i]);
    if (!isfinite(a)) {
      h->non_finite++;
      continue;
    }
    size_t b = (size_t)((double)a * per_bin);
    if (b >= CALIB_BINS) b = CALIB_BINS - 1;
    h->bins[b]++;
    h->count++;
    h->zeros += a == 0;
  }
}

static double percentile_threshold(const calib_histogram *h, double percentile) {
  const double want = percentile / 100.0 * (double)h->count;
  const double width = h->range / CALIB_BINS;
  uint64_t below = 0;
  for (int b = 0; b < CALIB_BINS; b++) {
    below += h->bins[b];
    if ((double)below >= want) {
      const double edge = (b + 1) * width;
      return edge < h->max_abs ? edge : h->max_abs;
    }
  }
  return h->max_abs;
}

/* KL(P || Q) of the first `i` bins clipped there (the rest counted in bin
 * i-1) against their quantization into CALIB_LEVELS levels, each level's
 * mass spread evenly over its nonzero bins. Exact zeros are left out of
 * bin 0: zero is exact at every scale, and after a ReLU they are often half
 * the values, a spike that the quantization would smear over its level's
 * bins and that so pulled the choice towards the smallest clipping points
 * (seen: ReLU6 outputs clipped at 1 of 6). */
static double clipped_divergence(const calib_histogram *h, int i, double *p, double *q) {
  uint64_t outliers = 0;
  for (int b = i; b < CALIB_BINS; b++) outliers += h->bins[b];
  double total = 0;
  for (int b = 0; b < i; b++) total += (double)(p[b] = (double)h->bins[b]);
  p[0] -= (double)h->zeros;
  total -= (double)h->zeros;
  p[i - 1] += (double)outliers;
  total += (double)outliers;
  if (total <= 0) return INFINITY;
  /* Q quantizes the bins as they were, without the outliers (TensorRT's
   * published procedure): clipping mass shows as a divergence. */
  for (int j = 0; j < CALIB_LEVELS; j++) {
    const int start = (int)((int64_t)j * i / CALIB_LEVELS), end = (int)((int64_t)(j + 1) * i / CALIB_LEVELS);
    double mass = 0;
    int nonzero = 0;
    for (int b = start; b < end; b++) {
      const double v = (double)h->bins[b] - (b == 0 ? (double)h->zeros : 0);
      mass += v;
      nonzero += v != 0;
    }
    for (int b = start; b < end; b++) {
      const double v = (double)h->bins[b] - (b == 0 ? (double)h->zeros : 0);
      q[b] = v != 0 && nonzero ? mass / nonzero : 0;
    }
  }
  double q_total = 0;
  for (int b = 0; b < i; b++) q_total += q[b];
  double kl = 0;
  for (int b = 0; b < i; b++) {
    if (p[b] == 0) continue;
    /* A clipped-in outlier mass where the quantized form has none (the
     * last bin was empty before clipping) is smoothed, not infinite. */
    const double pb = p[b] / total, qb = (q[b] > 0 ? q[b] : 1e-4) / (q_total > 0 ? q_total : 1);
    kl += pb * log(pb / qb);
  }
  return kl;
}

static double entropy_threshold(const calib_histogram *h) {
  double *p = mem_alloc(CALIB_BINS * sizeof(double)), *q = mem_alloc(CALIB_BINS * sizeof(double));
  int last = CALIB_BINS;
  while (last > CALIB_LEVELS && h->bins[last - 1] == 0) last--;
  int best = last;
  double best_kl = INFINITY;
  for (int i = CALIB_LEVELS; i <= last; i++) {
    const double kl = clipped_divergence(h, i, p, q);
    if (kl < best_kl) best_kl = kl, best = i;
  }
  free(p);
  free(q);
  const double t = (best + 0.5) * (h->range / CALIB_BINS);
  return t < h->max_abs ? t : h->max_abs;
}

double calib_threshold(const calib_histogram *h, calib_method method, double percentile) {
  if (h->count == 0 || h->max_abs == 0) return 0;
  switch (method) {
    case CALIB_PERCENTILE: return percentile_threshold(h, percentile);
    case CALIB_ENTROPY: return entropy_threshold(h);
    default: return h->max_abs;
  }
}

const char *calib_method_name(calib_method m) {
  return m == CALIB_ENTROPY ? "entropy" : m == CALIB_PERCENTILE ? "percentile" : "max";
}

inferd_error *calib_method_parse(const char *name, calib_method *out) {
  if (strcmp(name, "max") == 0) *out = CALIB_MAX;
  else if (strcmp(name, "entropy") == 0) *out = CALIB_ENTROPY;
  else if (strcmp(name, "percentile") == 0) *out = CALIB_PERCENTILE;
  else
    return err_new(INFERD_ERROR_INVALID_ARG,
                   "unknown calibration method '%s' (expected entropy, percentile or max)", name);
  return NULL;
}

/* ---- the cache ------------------------------------------------------------- */

void calib_cache_set(calib_cache *c, const char *name, double threshold) {
  for (int i = 0; i < c->n; i++)
    if (strcmp(c->entries[i].name, name) == 0) {
      c->entries[i].threshold = threshold;
      return;
    }
  MEM_GROW(c->entries, c->cap, (size_t)c->n + 1);
  c->entries[c->n++] = (calib_entry){mem_strdup(name), threshold};
}

double calib_cache_find(const calib_cache *c, const char *name) {
  for (int i = 0; i < c->n; i++)
    if (strcmp(c->entries[i].name, name) == 0) return c->entries[i].threshold;
  return -1;
}

void calib_cache_free(calib_cache *c) {
  for (int i = 0; i < c->n; i++) free(c->entries[i].name);
  free(c->entries);
  free(c->checksum);
  free(c->keep);
  memset(c, 0, sizeof(*c));
}

static inferd_error *at(int line, size_t column, const char *what) {
  return err_new(INFERD_ERROR_INVALID_ARG, "calibration cache line %d, column %zu: %s", line, column, what);
}

/* A finite, non-negative number filling [s, s + n) exactly. */
static bool number(const char *s, size_t n, double *out) {
  if (n == 0 || n > 64) return false;
  char buf[65];
  memcpy(buf, s, n);
  buf[n] = 0;
  /* Only a digit or a point may start it: strtod would skip any white
   * space (a form feed, say) and take a sign after it. */
  if (!((buf[0] >= '0' && buf[0] <= '9') || buf[0] == '.')) return false;
  char *end;
  errno = 0;
  const double v = strtod(buf, &end);
  if (*end || errno == ERANGE || !isfinite(v) || v < 0) return false;
  *out = v;
  return true;
}

inferd_error *calib_cache_parse(const char *text, size_t len, calib_cache *out) {
  memset(out, 0, sizeof(*out));
  calib_cache c = {0};
  bool have_model = false, have_method = false;
  int line = 0;
  inferd_error *e = NULL;
  for (size_t pos = 0; pos < len && !e;) {
    line++;
    const char *s = text + pos;
    const char *nl = memchr(s, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - s) : len - pos;
    pos += n + (nl ? 1 : 0);
    if (n && s[n - 1] == '\r') n--;
    if (memchr(s, 0, n)) {
      e = at(line, (size_t)((const char *)memchr(s, 0, n) - s) + 1, "a NUL byte");
      break;
    }
    if (line == 1) {
      if (n != strlen(CACHE_HEADER) || memcmp(s, CACHE_HEADER, n) != 0)
        e = at(1, 1, "not an inferd calibration cache (the first line must be '" CACHE_HEADER "')");
      continue;
    }
    /* A comment has no tab: a tensor's line always does, whatever its name. */
    if (n == 0 || (s[0] == '#' && !memchr(s, '\t', n))) continue;
    if (n > 6 && memcmp(s, "model ", 6) == 0 && !memchr(s, '\t', n)) {
      if (have_model) e = at(line, 1, "a second 'model' line");
      else if (n - 6 > 128) e = at(line, 7, "the model checksum is longer than 128 characters");
      else {
        for (size_t k = 6; k < n && !e; k++)
          if ((unsigned char)s[k] < 0x20 || s[k] == 0x7f) e = at(line, k + 1, "a control character in the model checksum");
        if (!e) c.checksum = mem_strndup(s + 6, n - 6), have_model = true;
      }
      continue;
    }
    if (n > 5 && memcmp(s, "keep ", 5) == 0 && !memchr(s, '\t', n)) {
      if (c.keep) e = at(line, 1, "a second 'keep' line");
      for (size_t k = 5; k < n && !e; k++)
        if ((unsigned char)s[k] < 0x20 || s[k] == 0x7f) e = at(line, k + 1, "a control character in the keep list");
      if (!e) c.keep = mem_strndup(s + 5, n - 5);
      continue;
    }
    if (n > 7 && memcmp(s, "method ", 7) == 0 && !memchr(s, '\t', n)) {
      if (have_method) {
        e = at(line, 1, "a second 'method' line");
        continue;
      }
      have_method = true;
      const char *arg = s + 7;
      const size_t an = n - 7;
      if (an == 3 && memcmp(arg, "max", 3) == 0) c.method = CALIB_MAX;
      else if (an == 7 && memcmp(arg, "entropy", 7) == 0) c.method = CALIB_ENTROPY;
      else if (an > 11 && memcmp(arg, "percentile ", 11) == 0) {
        c.method = CALIB_PERCENTILE;
        if (!number(arg + 11, an - 11, &c.percentile) || c.percentile <= 0 || c.percentile > 100)
          e = at(line, 19, "the percentile must be a number in (0, 100]");
      } else {
        e = at(line, 8, "unknown method (expected entropy, max or percentile P)");
      }
      continue;
    }
    const char *tab = NULL;
    for (size_t k = n; k-- > 0;)
      if (s[k] == '\t') {
        tab = s + k;
        break;
      }
    if (!tab) {
      e = at(line, 1, "expected '<tensor name><TAB><threshold>', a 'model' or a 'method' line");
      continue;
    }
    const size_t name_len = (size_t)(tab - s);
    if (name_len == 0) {
      e = at(line, 1, "an empty tensor name");
      continue;
    }
    double t;
    if (!number(tab + 1, n - name_len - 1, &t)) {
      e = at(line, name_len + 2, "the threshold must be a finite number >= 0");
      continue;
    }
    char *name = mem_strndup(s, name_len);
    if (calib_cache_find(&c, name) >= 0) e = at(line, 1, "this tensor's threshold was given on an earlier line");
    else calib_cache_set(&c, name, t);
    free(name);
  }
  if (!e && line == 0) e = at(1, 1, "the file is empty");
  if (!e && !have_model) e = at(line, 1, "no 'model <checksum>' line");
  if (!e && !have_method) e = at(line, 1, "no 'method' line");
  if (e) {
    calib_cache_free(&c);
    return e;
  }
  *out = c;
  return NULL;
}

inferd_error *calib_cache_read(const char *path, calib_cache *out) {
  FILE *f = fopen(path, "rb");
  if (!f) return err_new(INFERD_ERROR_NOT_FOUND, "cannot open calibration cache '%s': %s", path, strerror(errno));
  size_t cap = 0, len = 0;
  char *buf = NULL;
  for (;;) {
    MEM_GROW(buf, cap, len + 65536);
    const size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) break;
  }
  const bool failed = ferror(f);
  fclose(f);
  inferd_error *e = failed ? err_new(INFERD_ERROR_IO, "cannot read calibration cache '%s'", path)
                           : calib_cache_parse(buf, len, out);
  free(buf);
  return e ? err_wrap(e, "%s", path) : NULL;
}

char *calib_cache_format(const calib_cache *c, size_t *len) {
  size_t cap = 256, n = 0;
  for (int i = 0; i < c->n; i++) cap += strlen(c->entries[i].name) + 40;
  cap += c->checksum ? strlen(c->checksum) : 0;
  cap += c->keep ? strlen(c->keep) + 8 : 0;
  char *out = mem_alloc(cap);
#define PUT(...) n += (size_t)snprintf(out + n, cap - n, __VA_ARGS__)
  PUT("%s\nmodel %s\n", CACHE_HEADER, c->checksum ? c->checksum : "-");
  if (c->method == CALIB_PERCENTILE) PUT("method percentile %.17g\n", c->percentile);
  else PUT("method %s\n", calib_method_name(c->method));
  if (c->keep) PUT("keep %s\n", c->keep);
  for (int i = 0; i < c->n; i++) PUT("%s\t%.9g\n", c->entries[i].name, c->entries[i].threshold);
#undef PUT
  if (len) *len = n;
  return out;
}

inferd_error *calib_cache_write(const calib_cache *c, const char *path) {
  size_t len;
  char *text = calib_cache_format(c, &len);
  char *tmp = mem_alloc(strlen(path) + 16);
  sprintf(tmp, "%s.tmp%d", path, (int)getpid());
  FILE *f = fopen(tmp, "wb");
  inferd_error *e = NULL;
  if (!f) e = err_new(INFERD_ERROR_IO, "cannot write calibration cache '%s': %s", tmp, strerror(errno));
  else {
    const bool ok = fwrite(text, 1, len, f) == len;
    if (fclose(f) != 0 || !ok) e = err_new(INFERD_ERROR_IO, "cannot write calibration cache '%s'", tmp);
    else if (rename(tmp, path) != 0)
      e = err_new(INFERD_ERROR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (e) unlink(tmp);
  }
  free(tmp);
  free(text);
  return e;
}

/* ---- scales and collectors ------------------------------------------------ */

float calib_scale(double threshold) { return threshold > 0 ? (float)(threshold / 127.0) : 1.0f; }

void calib_collector_add(calib_collector *c, const char *name, const float *x, size_t n) {
  int i = 0;
  while (i < c->n && strcmp(c->tensors[i].name, name) != 0) i++;
  if (i == c->n) {
    MEM_GROW(c->tensors, c->cap, (size_t)c->n + 1);
    c->tensors[c->n++] = (calib_tensor){mem_strdup(name), mem_alloc(sizeof(calib_histogram))};
    calib_histogram_init(c->tensors[i].hist);
  }
  calib_histogram_add(c->tensors[i].hist, x, n);
}

const calib_histogram *calib_collector_find(const calib_collector *c, const char *name) {
  for (int i = 0; i < c->n; i++)
    if (strcmp(c->tensors[i].name, name) == 0) return c->tensors[i].hist;
  return NULL;
}

void calib_collector_thresholds(const calib_collector *c, calib_method method, double percentile,
                                const char *checksum, calib_cache *out) {
  memset(out, 0, sizeof(*out));
  out->method = method;
  out->percentile = method == CALIB_PERCENTILE ? percentile : 0;
  out->checksum = mem_strdup(checksum ? checksum : "-");
  for (int i = 0; i < c->n; i++)
    calib_cache_set(out, c->tensors[i].name, calib_threshold(c->tensors[i].hist, method, percentile));
}

void calib_collector_free(calib_collector *c) {
  for (int i = 0; i < c->n; i++) {
    free(c->tensors[i].name);
    free(c->tensors[i].hist);
  }
  free(c->tensors);
  memset(c, 0, sizeof(*c));
}

inferd_error *calib_file_checksum(const char *path, char *out, size_t size) {
  FILE *f = fopen(path, "rb");
  if (!f) return err_new(INFERD_ERROR_NOT_FOUND, "cannot open '%s'", path);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  unsigned char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) EVP_DigestUpdate(md, buf, n);
  const bool failed = ferror(f);
  fclose(f);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(md, digest, &len);
  EVP_MD_CTX_free(md);
  if (failed) return err_new(INFERD_ERROR_IO, "cannot read '%s'", path);
  size_t at = (size_t)snprintf(out, size, "sha256:");
  for (unsigned i = 0; i < len && at + 3 <= size; i++) at += (size_t)snprintf(out + at, size - at, "%02x", digest[i]);
  return NULL;
}
