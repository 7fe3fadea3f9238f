#include "base/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *mem_check(void *p, size_t size) {
  if (!p && size) {
    fprintf(stderr, "inferd: out of memory allocating %zu bytes\n", size);
    abort();
  }
  return p;
}

void *mem_alloc(size_t size) { return mem_check(malloc(size ? size : 1), size); }
void *mem_zalloc(size_t size) { return mem_check(calloc(1, size ? size : 1), size); }
void *mem_realloc(void *p, size_t size) { return mem_check(realloc(p, size ? size : 1), size); }

char *mem_strdup(const char *s) { return mem_strndup(s, strlen(s)); }

char *mem_strndup(const char *s, size_t n) {
  char *d = mem_alloc(n + 1);
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}

void *mem_try_alloc(size_t n, size_t size) {
  size_t total;
  if (!mem_mul_ok(n, size, &total)) return NULL;
  return malloc(total ? total : 1);
}

void *mem_try_zalloc(size_t n, size_t size) {
  size_t total;
  if (!mem_mul_ok(n, size, &total)) return NULL;
  return calloc(1, total ? total : 1);
}

void *mem_try_realloc(void *p, size_t n, size_t size) {
  size_t total;
  if (!mem_mul_ok(n, size, &total)) return NULL;
  return realloc(p, total ? total : 1);
}

void *mem_try_grow(void *p, size_t *cap, size_t need, size_t size, size_t first, size_t most) {
  size_t n = *cap ? *cap : (first ? first : 1);
  while (n < need && n < most)
    if (!mem_mul_ok(n, 2, &n)) n = need;
  if (n > most) n = most;
  if (n < need) n = need;
  if (n <= *cap) return p;
  void *grown = mem_try_realloc(p, n, size);
  if (!grown) return NULL;
  *cap = n;
  return grown;
}

void *mem_try_aligned(size_t size) {
  size_t rounded;
  if (!mem_add_ok(size, 63, &rounded)) return NULL;
  rounded &= ~(size_t)63;
  return aligned_alloc(64, rounded ? rounded : 64);
}

/* Blocks are chained; a request larger than the block size gets a block of
 * its own so that big attribute arrays do not waste the tail of a block. */
typedef struct pool_block {
  struct pool_block *next;
  size_t size, used;
  _Alignas(16) unsigned char data[];
} pool_block;

struct mem_pool {
  pool_block *head;
};

enum { POOL_BLOCK_SIZE = 16384 };

mem_pool *mem_pool_new(void) { return mem_zalloc(sizeof(mem_pool)); }

void mem_pool_delete(mem_pool *pool) {
  if (!pool) return;
  for (pool_block *b = pool->head, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  free(pool);
}

void *mem_pool_alloc(mem_pool *pool, size_t size) {
  size = (size + 15) & ~(size_t)15;
  pool_block *b = pool->head;
  if (!b || b->size - b->used < size) {
    size_t bsize = size > POOL_BLOCK_SIZE / 4 ? size : POOL_BLOCK_SIZE;
    b = mem_alloc(sizeof(pool_block) + bsize);
    b->size = bsize;
    b->used = 0;
    if (bsize == size && pool->head) {
      /* Keep the partly used head block current. */
      b->next = pool->head->next;
      pool->head->next = b;
    } else {
      b->next = pool->head;
      pool->head = b;
    }
  }
  void *p = b->data + b->used;
  b->used += size;
  memset(p, 0, size);
  return p;
}

char *mem_pool_strndup(mem_pool *pool, const char *s, size_t n) {
  char *d = mem_pool_alloc(pool, n + 1);
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}

char *mem_pool_strdup(mem_pool *pool, const char *s) { return s ? mem_pool_strndup(pool, s, strlen(s)) : NULL; }

void *mem_pool_memdup(mem_pool *pool, const void *p, size_t size) {
  void *d = mem_pool_alloc(pool, size);
  if (size) memcpy(d, p, size);
  return d;
}

