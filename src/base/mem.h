/*
 * Allocation in two flavours (see STYLE.md): mem_alloc and friends are for
 * small, internally sized needs and cannot fail (they abort on exhaustion,
 * which only a broken machine reaches); mem_try_* are for any size that comes
 * from a model file or a client, check for overflow, and return NULL.
 *
 * A mem_pool is a bump allocator whose blocks are all freed together; graphs
 * keep their names and attribute arrays in one.
 */
#ifndef INFERD_BASE_MEM_H
#define INFERD_BASE_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *mem_alloc(size_t size);
void *mem_zalloc(size_t size);
void *mem_realloc(void *p, size_t size);
char *mem_strdup(const char *s);
char *mem_strndup(const char *s, size_t n);

/* n*size bytes, or NULL on overflow or exhaustion. */
__attribute__((warn_unused_result)) void *mem_try_alloc(size_t n, size_t size);
__attribute__((warn_unused_result)) void *mem_try_zalloc(size_t n, size_t size);
__attribute__((warn_unused_result)) void *mem_try_realloc(void *p, size_t n, size_t size);
/* Grows p, an array of *cap elements of `size` bytes, so that `need` elements
 * fit: the capacity doubles (from `first`) until it covers `need`, and never
 * goes past `most` unless `need` does (then it is `need`). Like realloc, it
 * leaves the elements gained uninitialized. Returns the new array and sets
 * *cap; NULL, with p and *cap untouched, on overflow or exhaustion. */
__attribute__((warn_unused_result)) void *mem_try_grow(void *p, size_t *cap, size_t need, size_t size, size_t first,
                                                       size_t most);
/* Cache-line aligned (64 bytes), for tensor data. Free with free(). */
__attribute__((warn_unused_result)) void *mem_try_aligned(size_t size);

/* a*b into *out; false on overflow. */
static inline bool mem_mul_ok(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool mem_add_ok(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }

/* Grows a dynamic array so that index `need-1` fits; doubles the capacity. */
#define MEM_GROW(ptr, cap, need)                                                                        \
  do {                                                                                                  \
    if ((size_t)(need) > (size_t)(cap)) {                                                               \
      size_t mem_grow_n_ = (cap) ? (size_t)(cap) * 2 : 8;                                               \
      while (mem_grow_n_ < (size_t)(need)) mem_grow_n_ *= 2;                                            \
      (ptr) = mem_realloc((ptr), mem_grow_n_ * sizeof(*(ptr)));                                         \
      (cap) = mem_grow_n_;                                                                              \
    }                                                                                                   \
  } while (0)

typedef struct mem_pool mem_pool;
mem_pool *mem_pool_new(void);
void mem_pool_delete(mem_pool *pool);
/* 16-byte aligned, zeroed memory that lives as long as the pool. */
void *mem_pool_alloc(mem_pool *pool, size_t size);
char *mem_pool_strdup(mem_pool *pool, const char *s);
char *mem_pool_strndup(mem_pool *pool, const char *s, size_t n);
void *mem_pool_memdup(mem_pool *pool, const void *p, size_t size);

#endif
