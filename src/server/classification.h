/*
 * Triton's classification extension: an output asked for with a
 * classification count k is answered with the k highest scores of each
 * item instead of the tensor, as BYTES elements "score:index[:label]"
 * (KServe layout: each a 4-byte little-endian length, then the text),
 * highest first, the lower index first among equal scores.
 */
#ifndef INFERD_SERVER_CLASSIFICATION_H
#define INFERD_SERVER_CLASSIFICATION_H

#include <stddef.h>
#include <stdint.h>

/* Writes the elements of one item's `count` scores into `out` (NULL: only
 * counts) and returns their bytes. k above count gives count elements;
 * labels[i] (i < n_labels, labels may be NULL) names class i. */
size_t classification_write(const float *scores, int64_t count, int k, char *const *labels, int n_labels, char *out);

#endif
