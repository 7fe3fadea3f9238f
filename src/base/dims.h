/* A shape as text, "[1,3,224,224]", for messages. */
#ifndef INFERD_BASE_DIMS_H
#define INFERD_BASE_DIMS_H

#include <stddef.h>
#include <stdint.h>

/* Writes the rank dims into buf (cut to size, always terminated when
 * size > 0) and returns buf. */
const char *dims_text(const int64_t *dims, int rank, char *buf, size_t size);

#endif
