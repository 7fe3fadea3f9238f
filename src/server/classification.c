#include "server/classification.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

size_t classification_write(const float *scores, int64_t count, int k, char *const *labels, int n_labels, char *out) {
  size_t n = 0;
  bool *taken = mem_zalloc((size_t)count + 1);
  for (int j = 0; j < k && j < count; j++) {
    int64_t best = -1;
    for (int64_t c = 0; c < count; c++)
      if (!taken[c] && (best < 0 || scores[c] > scores[best])) best = c;
    taken[best] = true;
    char text[512];
    int len = labels && best < n_labels
                  ? snprintf(text, sizeof(text), "%f:%lld:%s", scores[best], (long long)best, labels[best])
                  : snprintf(text, sizeof(text), "%f:%lld", scores[best], (long long)best);
    if (len < 0) len = 0;
    if (len >= (int)sizeof(text)) len = (int)sizeof(text) - 1;
    if (out) {
      const uint32_t l32 = (uint32_t)len;
      memcpy(out + n, &l32, 4);
      memcpy(out + n + 4, text, (size_t)len);
    }
    n += 4 + (size_t)len;
  }
  free(taken);
  return n;
}
