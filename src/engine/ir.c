#include "engine/ir.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct ir_blob {
  ir_blob *next;
  void *addr;
  size_t length; /* 0 for heap blocks */
  bool mapped;
};

int64_t ir_shape_numel(const ir_shape *shape, int64_t batch) {
  int64_t n = 1;
  for (int i = 0; i < shape->rank; i++) n *= ir_dim_eval(shape->dims[i], batch);
  return n;
}

bool ir_shape_is_static(const ir_shape *shape) {
  for (int i = 0; i < shape->rank; i++)
    if (ir_dim_has_batch(shape->dims[i])) return false;
  return true;
}

bool ir_shape_equal(const ir_shape *a, const ir_shape *b) {
  if (a->rank != b->rank) return false;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i] != b->dims[i]) return false;
  return true;
}

const char *ir_shape_str(const ir_shape *shape, char *buf, size_t size) {
  size_t n = 0;
  n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "[");
  for (int i = 0; i < shape->rank; i++) {
    ir_dim d = shape->dims[i];
    const char *sep = i ? "," : "";
    if (d == IR_DIM_BATCH)
      n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "%sN", sep);
    else if (d < 0)
      n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "%s%" PRId64 "N", sep, -d);
    else
      n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "%s%" PRId64, sep, d);
  }
  snprintf(buf + n, n < size ? size - n : 0, "]");
  return buf;
}

int64_t ir_tensor_numel(const ir_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) n *= t->dims[i];
  return n;
}

ir_graph *ir_graph_new(void) {
  ir_graph *g = mem_zalloc(sizeof(*g));
  g->pool = mem_pool_new();
  g->opset = 13;
  return g;
}

void ir_graph_delete(ir_graph *g) {
  if (!g) return;
  for (ir_blob *b = g->blobs, *next; b; b = next) {
    next = b->next;
    if (b->mapped)
      munmap(b->addr, b->length);
    else
      free(b->addr);
    free(b);
  }
  free(g->values);
  free(g->nodes);
  free(g->inputs);
  free(g->outputs);
  free(g->name_index);
  mem_pool_delete(g->pool);
  free(g);
}

/* FNV-1a; names are short and this runs once per value at import. */
static uint64_t name_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static void name_index_insert(ir_graph *g, int id) {
  size_t mask = g->name_index_cap - 1;
  size_t i = name_hash(g->values[id].name) & mask;
  while (g->name_index[i] >= 0) i = (i + 1) & mask;
  g->name_index[i] = id;
}

static void name_index_grow(ir_graph *g) {
  size_t cap = g->name_index_cap ? g->name_index_cap * 2 : 64;
  free(g->name_index);
  g->name_index = mem_alloc(cap * sizeof(int));
  memset(g->name_index, 0xff, cap * sizeof(int));
  g->name_index_cap = cap;
  for (int v = 0; v < g->n_values; v++) name_index_insert(g, v);
}

int ir_graph_find_value(const ir_graph *g, const char *name) {
  if (!name || !g->name_index_cap) return -1;
  size_t mask = g->name_index_cap - 1;
  for (size_t i = name_hash(name) & mask; g->name_index[i] >= 0; i = (i + 1) & mask)
    if (strcmp(g->values[g->name_index[i]].name, name) == 0) return g->name_index[i];
  return -1;
}

int ir_graph_add_value(ir_graph *g, const char *name, inferd_datatype dtype) {
  char generated[48];
  if (!name || !*name) {
    do {
      snprintf(generated, sizeof(generated), "_inferd_%d", g->unique_counter++);
    } while (ir_graph_find_value(g, generated) >= 0);
    name = generated;
  }
  MEM_GROW(g->values, g->cap_values, (size_t)g->n_values + 1);
  int id = g->n_values++;
  g->values[id] = (ir_value){.name = mem_pool_strdup(g->pool, name), .dtype = dtype, .producer = -1};
  if ((size_t)g->n_values * 2 > g->name_index_cap)
    name_index_grow(g);
  else
    name_index_insert(g, id);
  return id;
}

void ir_graph_swap_value_names(ir_graph *g, int a, int b) {
  const char *name = g->values[a].name;
  g->values[a].name = g->values[b].name;
  g->values[b].name = name;
  g->name_index_cap /= 2;
  name_index_grow(g);
}

static void blob_push(ir_graph *g, void *addr, size_t length, bool mapped) {
  ir_blob *b = mem_alloc(sizeof(*b));
  *b = (ir_blob){.next = g->blobs, .addr = addr, .length = length, .mapped = mapped};
  g->blobs = b;
}

void ir_graph_own_heap(ir_graph *g, void *block) { blob_push(g, block, 0, false); }
void ir_graph_own_mapping(ir_graph *g, void *addr, size_t length) { blob_push(g, addr, length, true); }

size_t ir_graph_heap_bytes(const ir_graph *g) {
  /* Heap blobs do not record their size; sum the constants that point into
   * them instead, which is what callers want to know. */
  size_t total = 0;
  for (int v = 0; v < g->n_values; v++) {
    const ir_value *val = &g->values[v];
    if (val->kind != IR_VALUE_CONST || !val->data || val->use_count == 0) continue;
    bool mapped = false;
    for (const ir_blob *b = g->blobs; b; b = b->next)
      if (b->mapped && (const char *)val->data >= (const char *)b->addr &&
          (const char *)val->data < (const char *)b->addr + b->length)
        mapped = true;
    if (!mapped) total += val->nbytes;
  }
  return total;
}

/* Drops the whole pages inside [p, p+n) of a mapping: they were touched
 * (read) while folding and count as resident until given back. Partial
 * pages at the edges may hold neighbouring tensors and stay. */
static void mapping_drop_range(const void *p, size_t n) {
  size_t page = 4096;
  uintptr_t begin = ((uintptr_t)p + page - 1) & ~(uintptr_t)(page - 1);
  uintptr_t end = ((uintptr_t)p + n) & ~(uintptr_t)(page - 1);
  if (end > begin) madvise((void *)begin, end - begin, MADV_DONTNEED);
}

void ir_graph_release_const(ir_graph *g, int value) {
  ir_value *v = &g->values[value];
  if (v->kind != IR_VALUE_CONST || !v->data) return;
  /* Another constant may share the bytes (a folded output aliasing an
   * input); keep them then. */
  for (int o = 0; o < g->n_values; o++)
    if (o != value && g->values[o].kind == IR_VALUE_CONST && g->values[o].data == v->data) {
      v->data = NULL;
      return;
    }
  for (ir_blob **link = &g->blobs; *link; link = &(*link)->next) {
    ir_blob *b = *link;
    const char *lo = b->addr, *p = v->data;
    if (b->mapped) {
      if (p >= lo && p < lo + b->length) {
        mapping_drop_range(p, v->nbytes);
        break;
      }
    } else if (b->addr == v->data) {
      *link = b->next;
      free(b->addr);
      free(b);
      break;
    }
  }
  v->data = NULL;
}

void ir_graph_release_unused_consts(ir_graph *g) {
  ir_graph_update_uses(g);
  for (int v = 0; v < g->n_values; v++) {
    const ir_value *val = &g->values[v];
    if (val->kind == IR_VALUE_CONST && val->data && val->use_count == 0 && !val->is_output) ir_graph_release_const(g, v);
  }
}

void ir_value_set_const(ir_graph *g, int value, inferd_datatype dtype, const ir_shape *shape, const void *data,
                        size_t nbytes) {
  ir_value *v = &g->values[value];
  v->kind = IR_VALUE_CONST;
  v->dtype = dtype;
  v->shape = *shape;
  v->has_shape = true;
  v->data = data;
  v->nbytes = nbytes;
  v->producer = -1;
}

size_t ir_dtype_size(inferd_datatype t) {
  return t == INFERD_TYPE_BYTES ? sizeof(ir_bytes) : inferd_datatype_size(t);
}

inferd_error *ir_graph_add_const_alloc(ir_graph *g, const char *name, inferd_datatype dtype, const ir_shape *shape,
                                       void **data, int *value_id) {
  size_t esize = inferd_datatype_size(dtype);
  if (!esize) return err_new(INFERD_ERROR_UNSUPPORTED, "constant of type %s", inferd_datatype_name(dtype));
  size_t n = 1;
  for (int i = 0; i < shape->rank; i++) {
    if (shape->dims[i] < 0 || !mem_mul_ok(n, (size_t)shape->dims[i], &n))
      return err_new(INFERD_ERROR_INVALID_ARG, "constant '%s' has an invalid shape", name ? name : "");
  }
  size_t nbytes;
  if (!mem_mul_ok(n, esize, &nbytes)) return err_new(INFERD_ERROR_TOO_LARGE, "constant too large");
  void *block = mem_try_aligned(nbytes);
  if (!block) return err_new(INFERD_ERROR_NO_MEMORY, "allocating %zu bytes for constant", nbytes);
  memset(block, 0, nbytes);
  ir_graph_own_heap(g, block);
  /* Callers often pass another value's shape, which lives in g->values:
   * copy it before adding a value can move that array. */
  ir_shape copy = *shape;
  int id = ir_graph_add_value(g, name, dtype);
  ir_value_set_const(g, id, dtype, &copy, block, nbytes);
  *data = block;
  *value_id = id;
  return NULL;
}

inferd_error *ir_graph_add_const_copy(ir_graph *g, const char *name, inferd_datatype dtype, const ir_shape *shape,
                                      const void *data, int *value_id) {
  void *block = NULL;
  ERR_TRY(ir_graph_add_const_alloc(g, name, dtype, shape, &block, value_id));
  memcpy(block, data, g->values[*value_id].nbytes);
  return NULL;
}

void ir_graph_add_input(ir_graph *g, int value) {
  MEM_GROW(g->inputs, g->cap_inputs, (size_t)g->n_inputs + 1);
  g->inputs[g->n_inputs++] = value;
  g->values[value].kind = IR_VALUE_INPUT;
}

void ir_graph_add_output(ir_graph *g, int value) {
  MEM_GROW(g->outputs, g->cap_outputs, (size_t)g->n_outputs + 1);
  g->outputs[g->n_outputs++] = value;
  g->values[value].is_output = true;
}

int ir_graph_add_node(ir_graph *g, ir_op op, const char *name, int n_inputs, const int *inputs, int n_outputs,
                      const int *outputs) {
  MEM_GROW(g->nodes, g->cap_nodes, (size_t)g->n_nodes + 1);
  int id = g->n_nodes++;
  ir_node *n = &g->nodes[id];
  *n = (ir_node){.op = op, .sum_input = -1};
  char generated[48];
  if (!name || !*name) {
    snprintf(generated, sizeof(generated), "%s_%d", ir_op_name(op), id);
    name = generated;
  }
  n->name = mem_pool_strdup(g->pool, name);
  n->domain = "";
  n->n_inputs = n_inputs;
  n->inputs = mem_pool_memdup(g->pool, inputs, (size_t)n_inputs * sizeof(int));
  n->n_outputs = n_outputs;
  n->outputs = mem_pool_memdup(g->pool, outputs, (size_t)n_outputs * sizeof(int));
  for (int i = 0; i < n_outputs; i++)
    if (outputs[i] >= 0) g->values[outputs[i]].producer = id;
  return id;
}

void ir_node_set_inputs(ir_graph *g, int node, int n_inputs, const int *inputs) {
  ir_node *n = &g->nodes[node];
  n->n_inputs = n_inputs;
  n->inputs = mem_pool_memdup(g->pool, inputs, (size_t)n_inputs * sizeof(int));
}

ir_attr *ir_node_add_attr(ir_graph *g, int node, const char *name, ir_attr_type type) {
  ir_node *n = &g->nodes[node];
  /* Attributes are few per node; grow by copying into the pool. */
  ir_attr *attrs = mem_pool_alloc(g->pool, (size_t)(n->n_attrs + 1) * sizeof(ir_attr));
  if (n->n_attrs) memcpy(attrs, n->attrs, (size_t)n->n_attrs * sizeof(ir_attr));
  n->attrs = attrs;
  ir_attr *a = &attrs[n->n_attrs++];
  *a = (ir_attr){.name = mem_pool_strdup(g->pool, name), .type = type, .tensor = -1};
  return a;
}

const ir_attr *ir_node_attr(const ir_node *node, const char *name) {
  for (int i = 0; i < node->n_attrs; i++)
    if (strcmp(node->attrs[i].name, name) == 0) return &node->attrs[i];
  return NULL;
}

int64_t ir_node_attr_int(const ir_node *node, const char *name, int64_t fallback) {
  const ir_attr *a = ir_node_attr(node, name);
  return a && a->type == IR_ATTR_INT ? a->i : fallback;
}

float ir_node_attr_float(const ir_node *node, const char *name, float fallback) {
  const ir_attr *a = ir_node_attr(node, name);
  return a && a->type == IR_ATTR_FLOAT ? a->f : fallback;
}

const char *ir_node_attr_string(const ir_node *node, const char *name, const char *fallback) {
  const ir_attr *a = ir_node_attr(node, name);
  return a && a->type == IR_ATTR_STRING ? a->s : fallback;
}

const int64_t *ir_node_attr_ints(const ir_node *node, const char *name, int *n) {
  const ir_attr *a = ir_node_attr(node, name);
  if (!a || a->type != IR_ATTR_INTS) {
    *n = -1;
    return NULL;
  }
  *n = a->n;
  return a->ints;
}

inferd_error *ir_node_error(const ir_graph *g, const ir_node *node, inferd_error_code code, const char *fmt, ...) {
  (void)g;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return err_new(code, "node '%s' (%s): %s", node->name, ir_op_name(node->op), msg);
}

void ir_graph_update_uses(ir_graph *g) {
  for (int v = 0; v < g->n_values; v++) {
    g->values[v].use_count = 0;
    g->values[v].is_output = false;
    if (g->values[v].kind == IR_VALUE_ACTIVATION) g->values[v].producer = -1;
  }
  for (int i = 0; i < g->n_nodes; i++) {
    const ir_node *n = &g->nodes[i];
    if (n->dead) continue;
    for (int k = 0; k < n->n_inputs; k++)
      if (n->inputs[k] >= 0) g->values[n->inputs[k]].use_count++;
    for (int k = 0; k < n->n_outputs; k++)
      if (n->outputs[k] >= 0) g->values[n->outputs[k]].producer = i;
  }
  for (int i = 0; i < g->n_outputs; i++) {
    g->values[g->outputs[i]].use_count++;
    g->values[g->outputs[i]].is_output = true;
  }
}

void ir_graph_replace_uses(ir_graph *g, int from, int to) {
  for (int i = 0; i < g->n_nodes; i++) {
    ir_node *n = &g->nodes[i];
    if (n->dead) continue;
    for (int k = 0; k < n->n_inputs; k++)
      if (n->inputs[k] == from) n->inputs[k] = to;
  }
  for (int i = 0; i < g->n_outputs; i++)
    if (g->outputs[i] == from) g->outputs[i] = to;
}

void ir_graph_compact(ir_graph *g) {
  int live = 0;
  for (int i = 0; i < g->n_nodes; i++)
    if (!g->nodes[i].dead) g->nodes[live++] = g->nodes[i];
  g->n_nodes = live;
  ir_graph_update_uses(g);
}

int ir_graph_live_nodes(const ir_graph *g) {
  int live = 0;
  for (int i = 0; i < g->n_nodes; i++) live += !g->nodes[i].dead;
  return live;
}

void ir_uses_build(const ir_graph *g, ir_uses *uses) {
  uses->start = mem_zalloc(((size_t)g->n_values + 1) * sizeof(int));
  int total = 0;
  for (int i = 0; i < g->n_nodes; i++) {
    const ir_node *n = &g->nodes[i];
    if (n->dead) continue;
    for (int k = 0; k < n->n_inputs; k++)
      if (n->inputs[k] >= 0) {
        uses->start[n->inputs[k] + 1]++;
        total++;
      }
  }
  for (int v = 0; v < g->n_values; v++) uses->start[v + 1] += uses->start[v];
  uses->node = mem_alloc((size_t)(total ? total : 1) * sizeof(int));
  int *fill = mem_alloc(((size_t)g->n_values + 1) * sizeof(int));
  memcpy(fill, uses->start, ((size_t)g->n_values + 1) * sizeof(int));
  for (int i = 0; i < g->n_nodes; i++) {
    const ir_node *n = &g->nodes[i];
    if (n->dead) continue;
    for (int k = 0; k < n->n_inputs; k++)
      if (n->inputs[k] >= 0) uses->node[fill[n->inputs[k]]++] = i;
  }
  free(fill);
}

void ir_uses_free(ir_uses *uses) {
  free(uses->start);
  free(uses->node);
  uses->start = uses->node = NULL;
}

