/*
 * The tactic cache: which cuDNN engine configuration or cuBLASLt algorithm
 * won the timing for each layer signature, one "key<TAB>choice" line each,
 * under a header naming the GPU, its compute capability and the driver,
 * CUDA, cuDNN and cuBLASLt versions. A file whose header differs (another
 * GPU, an upgraded library) is ignored with a log line and rewritten, so a
 * stale choice is never trusted. Written to a temporary file and renamed,
 * so a crash mid-write leaves the old cache, after merging in what others
 * wrote to the file meanwhile, so plans that share one file keep each
 * other's choices.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "engine/cuda/cuda.h"

typedef struct tactic {
  char *key, *choice;
} tactic;

struct cuda_tactics {
  pthread_mutex_t lock;
  char *path;
  char header[512];
  tactic *items;
  size_t n, cap;
  bool dirty;
};

static void header_of(const cuda_plan *plan, char *buf, size_t size) {
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  snprintf(buf, size, "inferd tactics v3; %s; sm_%d%d; driver %d; cuda %d; cudnn %zu; cublasLt %zu", plan->prop.name,
           plan->prop.major, plan->prop.minor, driver, runtime, plan->libs->cudnnGetVersion(),
           plan->libs->cublasLtGetVersion());
}

/* Adds the choices of the file at t->path for keys t lacks (a file others
 * write too: models sharing a cache folder, other servers); false when the
 * file is missing or made for another GPU or library version. */
static bool read_locked(struct cuda_tactics *t) {
  FILE *f = fopen(t->path, "r");
  if (!f) return false;
  char line[1024];
  const size_t h = strlen(t->header);
  if (!fgets(line, sizeof(line), f) || strncmp(line, t->header, h) != 0 || (line[h] != '\n' && line[h] != 0)) {
    fclose(f);
    return false;
  }
  while (fgets(line, sizeof(line), f)) {
    char *tab = strchr(line, '\t'), *nl = strchr(line, '\n');
    if (!tab || !nl) continue;
    *tab = *nl = 0;
    bool known = false;
    for (size_t i = 0; i < t->n && !known; i++) known = strcmp(t->items[i].key, line) == 0;
    if (known) continue;
    MEM_GROW(t->items, t->cap, t->n + 1);
    t->items[t->n++] = (tactic){mem_strdup(line), mem_strdup(tab + 1)};
  }
  fclose(f);
  return true;
}

struct cuda_tactics *cuda_tactics_open(const cuda_plan *plan, const char *path) {
  struct cuda_tactics *t = mem_zalloc(sizeof(*t));
  pthread_mutex_init(&t->lock, NULL);
  header_of(plan, t->header, sizeof(t->header));
  if (!path) return t;
  t->path = mem_strdup(path);
  if (read_locked(t)) {
    log_info("tactic cache '%s': %zu choices", path, t->n);
  } else if (access(path, F_OK) == 0) {
    log_info("tactic cache '%s' was made for another GPU or library version; timing anew", path);
    t->dirty = true;
  }
  return t;
}

bool cuda_tactics_find(struct cuda_tactics *t, const char *key, char *out, size_t size) {
  if (!t) return false;
  bool found = false;
  pthread_mutex_lock(&t->lock);
  for (size_t i = 0; i < t->n && !found; i++)
    if (strcmp(t->items[i].key, key) == 0) {
      snprintf(out, size, "%s", t->items[i].choice);
      found = true;
    }
  pthread_mutex_unlock(&t->lock);
  return found;
}

static void put_locked(struct cuda_tactics *t, const char *key, const char *choice) {
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->items[i].key, key) == 0) {
      if (strcmp(t->items[i].choice, choice) == 0) return;
      free(t->items[i].choice);
      t->items[i].choice = mem_strdup(choice);
      t->dirty = true;
      return;
    }
  MEM_GROW(t->items, t->cap, t->n + 1);
  t->items[t->n++] = (tactic){mem_strdup(key), mem_strdup(choice)};
  t->dirty = true;
}

void cuda_tactics_put(struct cuda_tactics *t, const char *key, const char *choice) {
  if (!t) return;
  pthread_mutex_lock(&t->lock);
  put_locked(t, key, choice);
  pthread_mutex_unlock(&t->lock);
}

static void save_locked(struct cuda_tactics *t) {
  if (t->path && t->dirty) {
    /* What others wrote since it was read is kept (their choices for keys
     * this plan timed lose); the temporary name is this write's own. */
    read_locked(t);
    size_t len = strlen(t->path) + 32;
    char *tmp = mem_alloc(len);
    static atomic_uint writes;
    snprintf(tmp, len, "%s.%ld.%u.tmp", t->path, (long)getpid(), atomic_fetch_add(&writes, 1));
    FILE *f = fopen(tmp, "w");
    bool ok = f != NULL;
    if (f) {
      fprintf(f, "%s\n", t->header);
      for (size_t i = 0; i < t->n; i++) fprintf(f, "%s\t%s\n", t->items[i].key, t->items[i].choice);
      ok = fclose(f) == 0;
    }
    if (ok && rename(tmp, t->path) == 0) log_info("tactic cache '%s': %zu choices written", t->path, t->n);
    else log_warn("tactic cache '%s' could not be written", t->path);
    free(tmp);
    t->dirty = false;
  }
}

void cuda_tactics_save(struct cuda_tactics *t) {
  if (!t) return;
  pthread_mutex_lock(&t->lock);
  save_locked(t);
  pthread_mutex_unlock(&t->lock);
}

void cuda_tactics_close(struct cuda_tactics *t) {
  if (!t) return;
  cuda_tactics_save(t);
  for (size_t i = 0; i < t->n; i++) {
    free(t->items[i].key);
    free(t->items[i].choice);
  }
  free(t->items);
  free(t->path);
  pthread_mutex_destroy(&t->lock);
  free(t);
}
