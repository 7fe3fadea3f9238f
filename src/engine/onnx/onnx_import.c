/*
 * ONNX ModelProto -> ir_graph.
 *
 * The file is mapped read-only; onnx_wire.c takes the initializers' raw_data
 * out before protobuf-c unpacks the rest, and each initializer constant then
 * points at its bytes in the mapping, which the graph owns from then on (see
 * onnx_tensor.c for the alignment rule). Everything else protobuf-c unpacked
 * is copied into the graph's pool, and the unpacked message is freed.
 *
 * What the importer checks is what it needs to build a well-formed graph:
 * the file parses, names are unique and every node input refers to something
 * defined before it (ONNX node order is topological), tensors hold as much
 * data as their dims say, and every op and attribute type is one inferd
 * knows. Whether shapes and attribute values make sense is left to the op
 * rules of shape inference.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/mem.h"
#include "engine/onnx/onnx_internal.h"

typedef struct importer {
  ir_graph *g;
  const char *label; /* the file, in messages */
  const uint8_t *file;
  size_t size;
  bool borrowable;    /* `file` is a mapping the graph may keep */
  bool mapping_used;  /* some constant points into it */
  bool has_opset;     /* opset_import names the default domain */
  const char *model_dir;
  const onnx_stripped *stripped;
  const char *const *defaults; /* initializers that stay inputs (their values the defaults) */
  int n_defaults;
} importer;

static const char *const attr_type_names[] = {
    "UNDEFINED", "FLOAT", "INT",           "STRING",         "TENSOR",     "GRAPH",      "FLOATS",     "INTS",
    "STRINGS",   "TENSORS", "GRAPHS", "SPARSE_TENSOR", "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS",
};

static const char *attr_type_name(int type) {
  return type >= 0 && type < (int)(sizeof(attr_type_names) / sizeof(attr_type_names[0])) ? attr_type_names[type]
                                                                                         : "unknown";
}

static bool is_default_domain(const char *domain) {
  return !domain || !*domain || strcmp(domain, "ai.onnx") == 0;
}

/* ---- constants -------------------------------------------------------------- */

/* Makes value `id` a constant from a decoded tensor, handing its bytes to the graph. */
static void set_const(importer *im, int id, onnx_tensor_data *d) {
  if (d->owner == ONNX_DATA_BORROWED && d->data) im->mapping_used = true;
  ir_value_set_const(im->g, id, d->dtype, &d->shape, d->data, d->nbytes);
  onnx_tensor_data_give(im->g, d);
}

static inferd_error *import_initializers(importer *im, const Onnx__GraphProto *graph) {
  if (graph->n_sparse_initializer)
    return err_new(INFERD_ERROR_UNSUPPORTED, "'%s' has sparse initializers, which inferd does not support",
                   im->label);
  if (graph->n_initializer != im->stripped->n_refs)
    return err_new(INFERD_ERROR_INTERNAL, "'%s': %zu initializers parsed but %zu found in the wire format",
                   im->label, graph->n_initializer, im->stripped->n_refs);
  for (size_t i = 0; i < graph->n_initializer; i++) {
    const Onnx__TensorProto *t = graph->initializer[i];
    if (!t->name || !*t->name) return err_new(INFERD_ERROR_INVALID_ARG, "initializer #%zu has no name", i);
    if (ir_graph_find_value(im->g, t->name) >= 0)
      return err_new(INFERD_ERROR_INVALID_ARG, "initializer '%s' is defined twice", t->name);
    char what[300];
    snprintf(what, sizeof(what), "initializer '%s'", t->name);
    const onnx_raw_ref *ref = &im->stripped->refs[i];
    onnx_tensor_source src = {.what = what,
                              .has_raw = ref->present,
                              .raw = im->file + ref->offset,
                              .raw_len = ref->length,
                              .raw_borrowable = im->borrowable,
                              .model_dir = im->model_dir};
    onnx_tensor_data d;
    ERR_TRY(onnx_tensor_decode(t, &src, &d));
    set_const(im, ir_graph_add_value(im->g, t->name, d.dtype), &d);
  }
  return NULL;
}

/* ---- graph inputs and outputs ------------------------------------------------ */

/*
 * Reads a ValueInfo's tensor type. A dim_param, or a dimension without a
 * value, on the first dimension is the dynamic batch. Elsewhere it is an
 * error for inputs (strict), and leaves the shape unknown for outputs, whose
 * shapes shape inference decides anyway.
 */
static inferd_error *read_value_type(const Onnx__ValueInfoProto *vi, const char *role, bool strict,
                                     inferd_datatype *dtype, ir_shape *shape, bool *has_shape) {
  *dtype = INFERD_TYPE_INVALID;
  *has_shape = false;
  const Onnx__TypeProto *tp = vi->type;
  if (!tp) {
    if (!strict) return NULL;
    return err_new(INFERD_ERROR_INVALID_ARG, "%s '%s' has no type", role, vi->name);
  }
  if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
    return err_new(INFERD_ERROR_UNSUPPORTED, "%s '%s' is not a tensor (sequences, maps and optionals are not "
                                             "supported)",
                   role, vi->name);
  const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
  int32_t elem = tt->has_elem_type ? tt->elem_type : 0;
  *dtype = onnx_to_datatype(elem);
  if (*dtype == INFERD_TYPE_INVALID && (strict || elem != 0))
    return err_new(INFERD_ERROR_UNSUPPORTED, "%s '%s' has data type %s, which inferd does not support", role,
                   vi->name, onnx_type_name(elem));
  const Onnx__TensorShapeProto *sp = tt->shape;
  if (!sp) {
    if (!strict) return NULL;
    return err_new(INFERD_ERROR_INVALID_ARG,
                   "%s '%s' has no shape; inferd needs input shapes (only the first dimension may be dynamic)", role,
                   vi->name);
  }
  if (sp->n_dim > IR_MAX_RANK) {
    if (!strict) return NULL;
    return err_new(INFERD_ERROR_UNSUPPORTED, "%s '%s' has %zu dimensions; at most %d are supported", role, vi->name,
                   sp->n_dim, IR_MAX_RANK);
  }
  shape->rank = (int)sp->n_dim;
  for (size_t d = 0; d < sp->n_dim; d++) {
    const Onnx__TensorShapeProto__Dimension *dim = sp->dim[d];
    bool known = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && dim->dim_value >= 0;
    if (known) {
      shape->dims[d] = dim->dim_value;
    } else if (d == 0) {
      shape->dims[d] = IR_DIM_BATCH;
    } else {
      if (!strict) return NULL;
      const char *param =
          dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ? dim->dim_param : "?";
      return err_new(INFERD_ERROR_UNSUPPORTED,
                     "%s '%s' dimension %zu is dynamic ('%s'): only the first dimension may be dynamic", role,
                     vi->name, d, param);
    }
  }
  *has_shape = true;
  return NULL;
}

static inferd_error *import_inputs(importer *im, const Onnx__GraphProto *graph) {
  for (size_t i = 0; i < graph->n_input; i++) {
    const Onnx__ValueInfoProto *vi = graph->input[i];
    if (!vi->name || !*vi->name) return err_new(INFERD_ERROR_INVALID_ARG, "graph input #%zu has no name", i);
    int existing = ir_graph_find_value(im->g, vi->name);
    bool keep = false;
    for (int k = 0; k < im->n_defaults && !keep; k++) keep = strcmp(im->defaults[k], vi->name) == 0;
    /* Before IR version 4 every initializer was listed as an input too;
     * since, an input that is also an initializer has a default value.
     * Only those asked for stay inputs: the others are weights to fold. */
    if (existing >= 0 && im->g->values[existing].kind == IR_VALUE_CONST && keep) {
      ir_value *v = &im->g->values[existing];
      inferd_datatype dtype;
      ir_shape shape = {0};
      bool has_shape;
      ERR_TRY(read_value_type(vi, "input", true, &dtype, &shape, &has_shape));
      if (dtype != v->dtype)
        return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' is %s but its default value (initializer) is %s",
                       vi->name, inferd_datatype_name(dtype), inferd_datatype_name(v->dtype));
      v->kind = IR_VALUE_INPUT;
      v->default_shape = v->shape;
      v->shape = shape;
      v->has_shape = has_shape;
      ir_graph_add_input(im->g, existing);
      continue;
    }
    if (existing >= 0 && im->g->values[existing].kind == IR_VALUE_CONST) continue;
    if (existing >= 0) return err_new(INFERD_ERROR_INVALID_ARG, "graph input '%s' is listed twice", vi->name);
    inferd_datatype dtype;
    ir_shape shape = {0};
    bool has_shape;
    ERR_TRY(read_value_type(vi, "input", true, &dtype, &shape, &has_shape));
    int id = ir_graph_add_value(im->g, vi->name, dtype);
    im->g->values[id].shape = shape;
    im->g->values[id].has_shape = has_shape;
    ir_graph_add_input(im->g, id);
  }
  return NULL;
}

static inferd_error *import_outputs(importer *im, const Onnx__GraphProto *graph) {
  for (size_t i = 0; i < graph->n_output; i++) {
    const Onnx__ValueInfoProto *vi = graph->output[i];
    if (!vi->name || !*vi->name) return err_new(INFERD_ERROR_INVALID_ARG, "graph output #%zu has no name", i);
    int id = ir_graph_find_value(im->g, vi->name);
    if (id < 0)
      return err_new(INFERD_ERROR_INVALID_ARG,
                     "graph output '%s' is not produced by any node, nor is it an input or initializer", vi->name);
    if (im->g->values[id].is_output)
      return err_new(INFERD_ERROR_INVALID_ARG, "graph output '%s' is listed twice", vi->name);
    ir_value *v = &im->g->values[id];
    if (v->kind == IR_VALUE_ACTIVATION) {
      /* The declared type is a hint; shape inference has the last word. */
      inferd_datatype dtype;
      ir_shape shape = {0};
      bool has_shape;
      ERR_TRY(read_value_type(vi, "output", false, &dtype, &shape, &has_shape));
      if (dtype != INFERD_TYPE_INVALID) v->dtype = dtype;
      if (has_shape) {
        v->shape = shape;
        v->has_shape = true;
      }
    }
    ir_graph_add_output(im->g, id);
  }
  return NULL;
}

/* ---- nodes --------------------------------------------------------------------- */

typedef struct node_ctx {
  const Onnx__NodeProto *proto;
  const char *label; /* name, or "#index" when the node has none */
  const char *op_type;
} node_ctx;

static ir_attr_type guess_attr_type(const Onnx__AttributeProto *a) {
  if (a->has_f) return IR_ATTR_FLOAT;
  if (a->has_i) return IR_ATTR_INT;
  if (a->has_s) return IR_ATTR_STRING;
  if (a->t) return IR_ATTR_TENSOR;
  if (a->g) return IR_ATTR_GRAPH;
  if (a->n_floats) return IR_ATTR_FLOATS;
  if (a->n_ints) return IR_ATTR_INTS;
  if (a->n_strings) return IR_ATTR_STRINGS;
  return IR_ATTR_UNDEFINED;
}

static inferd_error *decode_attr_tensor(importer *im, const node_ctx *n, const Onnx__AttributeProto *a,
                                        onnx_tensor_data *d) {
  if (!a->t)
    return err_new(INFERD_ERROR_INVALID_ARG, "node '%s' (%s): attribute '%s' has no tensor", n->label, n->op_type,
                   a->name);
  char what[600];
  snprintf(what, sizeof(what), "node '%s' (%s): attribute '%s'", n->label, n->op_type, a->name);
  return onnx_tensor_decode(a->t, &(onnx_tensor_source){.what = what, .model_dir = im->model_dir}, d);
}

static inferd_error *import_attr(importer *im, int node, const node_ctx *n, const Onnx__AttributeProto *a) {
  ir_graph *g = im->g;
  if (!a->name || !*a->name)
    return err_new(INFERD_ERROR_INVALID_ARG, "node '%s' (%s) has an attribute without a name", n->label, n->op_type);
  int type = a->has_type ? (int)a->type : (int)guess_attr_type(a);
  size_t count = type == IR_ATTR_FLOATS ? a->n_floats : type == IR_ATTR_INTS ? a->n_ints : a->n_strings;
  if (count > INT_MAX)
    return err_new(INFERD_ERROR_TOO_LARGE, "node '%s' (%s): attribute '%s' has too many values", n->label,
                   n->op_type, a->name);
  switch (type) {
  case IR_ATTR_FLOAT:
    ir_node_add_attr(g, node, a->name, IR_ATTR_FLOAT)->f = a->f;
    return NULL;
  case IR_ATTR_INT:
    ir_node_add_attr(g, node, a->name, IR_ATTR_INT)->i = a->i;
    return NULL;
  case IR_ATTR_STRING: {
    ir_attr *attr = ir_node_add_attr(g, node, a->name, IR_ATTR_STRING);
    attr->s = mem_pool_strndup(g->pool, a->s.data ? (const char *)a->s.data : "", a->s.len);
    attr->s_len = a->s.len;
    return NULL;
  }
  case IR_ATTR_FLOATS: {
    ir_attr *attr = ir_node_add_attr(g, node, a->name, IR_ATTR_FLOATS);
    attr->n = (int)count;
    attr->floats = mem_pool_memdup(g->pool, a->floats, count * sizeof(float));
    return NULL;
  }
  case IR_ATTR_INTS: {
    ir_attr *attr = ir_node_add_attr(g, node, a->name, IR_ATTR_INTS);
    attr->n = (int)count;
    attr->ints = mem_pool_memdup(g->pool, a->ints, count * sizeof(int64_t));
    return NULL;
  }
  case IR_ATTR_STRINGS: {
    const char **strings = mem_pool_alloc(g->pool, (count ? count : 1) * sizeof(char *));
    for (size_t k = 0; k < count; k++)
      strings[k] = mem_pool_strndup(g->pool, a->strings[k].data ? (const char *)a->strings[k].data : "",
                                    a->strings[k].len);
    ir_attr *attr = ir_node_add_attr(g, node, a->name, IR_ATTR_STRINGS);
    attr->n = (int)count;
    attr->strings = strings;
    return NULL;
  }
  case IR_ATTR_TENSOR: {
    onnx_tensor_data d;
    ERR_TRY(decode_attr_tensor(im, n, a, &d));
    int id = ir_graph_add_value(g, NULL, d.dtype);
    set_const(im, id, &d);
    ir_node_add_attr(g, node, a->name, IR_ATTR_TENSOR)->tensor = id;
    return NULL;
  }
  default:
    return err_new(INFERD_ERROR_UNSUPPORTED,
                   "node '%s' (%s): attribute '%s' has type %s, which inferd does not support", n->label,
                   n->op_type, a->name, attr_type_name(type));
  }
}

/* A Constant node becomes a constant value named as its output; no node is made. */
static inferd_error *import_constant(importer *im, const node_ctx *n) {
  const Onnx__NodeProto *np = n->proto;
  if (np->n_input != 0 || np->n_output != 1 || !np->output[0] || !*np->output[0])
    return err_new(INFERD_ERROR_INVALID_ARG, "Constant node '%s' must have no inputs and one output", n->label);
  if (np->n_attribute != 1 || !np->attribute[0]->name)
    return err_new(INFERD_ERROR_INVALID_ARG, "Constant node '%s' must have exactly one attribute", n->label);
  const char *name = np->output[0];
  if (ir_graph_find_value(im->g, name) >= 0)
    return err_new(INFERD_ERROR_INVALID_ARG, "Constant node '%s': output '%s' is already defined", n->label, name);
  const Onnx__AttributeProto *a = np->attribute[0];
  const char *attr = a->name;
  int id;
  if (strcmp(attr, "value") == 0) {
    onnx_tensor_data d;
    ERR_TRY(decode_attr_tensor(im, n, a, &d));
    set_const(im, ir_graph_add_value(im->g, name, d.dtype), &d);
    return NULL;
  }
  bool is_float = strcmp(attr, "value_float") == 0 || strcmp(attr, "value_floats") == 0;
  bool is_int = strcmp(attr, "value_int") == 0 || strcmp(attr, "value_ints") == 0;
  if (!is_float && !is_int) {
    bool known = strcmp(attr, "value_string") == 0 || strcmp(attr, "value_strings") == 0 ||
                 strcmp(attr, "sparse_value") == 0;
    return err_new(known ? INFERD_ERROR_UNSUPPORTED : INFERD_ERROR_INVALID_ARG,
                   "Constant node '%s': attribute '%s' is %s", n->label, attr,
                   known ? "not supported by inferd" : "not a Constant attribute");
  }
  bool scalar = attr[strlen(attr) - 1] != 's';
  size_t count = scalar ? 1 : is_float ? a->n_floats : a->n_ints;
  if (count > (size_t)INT64_MAX / 8)
    return err_new(INFERD_ERROR_TOO_LARGE, "Constant node '%s': too many values", n->label);
  ir_shape shape = {.rank = scalar ? 0 : 1, .dims = {(ir_dim)count}};
  inferd_datatype dtype = is_float ? INFERD_TYPE_FP32 : INFERD_TYPE_INT64;
  void *data;
  ERR_TRY(ir_graph_add_const_alloc(im->g, name, dtype, &shape, &data, &id));
  if (count && is_float)
    memcpy(data, scalar ? &a->f : a->floats, count * sizeof(float));
  else if (count)
    memcpy(data, scalar ? (const void *)&a->i : (const void *)a->ints, count * sizeof(int64_t));
  return NULL;
}

/* Value ids of a node's inputs (-1 for omitted ones) and new values for its outputs. */
static inferd_error *resolve_args(importer *im, const node_ctx *n, int *ins, int *outs) {
  const Onnx__NodeProto *np = n->proto;
  for (size_t k = 0; k < np->n_input; k++) {
    const char *name = np->input[k];
    if (!name || !*name) {
      ins[k] = -1;
      continue;
    }
    ins[k] = ir_graph_find_value(im->g, name);
    if (ins[k] < 0)
      return err_new(INFERD_ERROR_INVALID_ARG,
                     "node '%s' (%s) reads '%s', which is not a graph input, an initializer or the output of an "
                     "earlier node",
                     n->label, n->op_type, name);
  }
  for (size_t k = 0; k < np->n_output; k++) {
    const char *name = np->output[k];
    if (!name || !*name) {
      outs[k] = -1;
      continue;
    }
    if (ir_graph_find_value(im->g, name) >= 0)
      return err_new(INFERD_ERROR_INVALID_ARG, "node '%s' (%s): output '%s' is already defined (value names must be "
                                               "unique)",
                     n->label, n->op_type, name);
    outs[k] = ir_graph_add_value(im->g, name, INFERD_TYPE_INVALID);
  }
  return NULL;
}

static inferd_error *import_node(importer *im, const Onnx__NodeProto *np, size_t index) {
  char label[64];
  snprintf(label, sizeof(label), "#%zu", index);
  node_ctx n = {.proto = np, .label = np->name && *np->name ? np->name : label,
                .op_type = np->op_type ? np->op_type : ""};
  if (!is_default_domain(np->domain))
    return err_new(INFERD_ERROR_UNSUPPORTED,
                   "node '%s' uses operator '%s' from domain '%s', which inferd does not support", n.label, n.op_type,
                   np->domain);
  /* The spec requires opset_import since IR version 3; a model without it is
   * far more likely cut short than that old, and guessing opset 1 would give
   * ops the wrong semantics. */
  if (!im->has_opset)
    return err_new(INFERD_ERROR_INVALID_ARG,
                   "'%s' declares no opset for the default ONNX domain (opset_import), which node '%s' (%s) uses",
                   im->label, n.label, n.op_type);
  if (strcmp(n.op_type, "Constant") == 0) return import_constant(im, &n);
  ir_op op = ir_op_from_name(n.op_type);
  if (op == IR_OP_INVALID)
    return err_new(INFERD_ERROR_UNSUPPORTED, "node '%s' uses operator '%s', which inferd does not support", n.label,
                   n.op_type);
  if (np->n_input > INT_MAX || np->n_output > INT_MAX)
    return err_new(INFERD_ERROR_TOO_LARGE, "node '%s' (%s) has too many inputs or outputs", n.label, n.op_type);
  int *ins = mem_try_alloc(np->n_input + 1, sizeof(int));
  int *outs = mem_try_alloc(np->n_output + 1, sizeof(int));
  inferd_error *e = NULL;
  if (!ins || !outs)
    e = err_new(INFERD_ERROR_NO_MEMORY, "node '%s': argument lists", n.label);
  else
    e = resolve_args(im, &n, ins, outs);
  if (!e) {
    int id = ir_graph_add_node(im->g, op, np->name, (int)np->n_input, ins, (int)np->n_output, outs);
    for (size_t k = 0; k < np->n_attribute && !e; k++) e = import_attr(im, id, &n, np->attribute[k]);
  }
  free(ins);
  free(outs);
  return e;
}

/* ---- model ------------------------------------------------------------------- */

static inferd_error *import_model(importer *im, const Onnx__ModelProto *m) {
  int64_t opset = -1;
  for (size_t i = 0; i < m->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = m->opset_import[i];
    if (is_default_domain(o->domain) && o->has_version) opset = o->version;
  }
  /* Only needed when a node of the default domain is met (see import_node). */
  im->has_opset = opset >= 1;
  if (im->has_opset) im->g->opset = opset;
  const Onnx__GraphProto *graph = m->graph;
  im->g->name = mem_pool_strdup(im->g->pool, graph->name ? graph->name : "");
  ERR_TRY(import_initializers(im, graph));
  ERR_TRY(import_inputs(im, graph));
  for (size_t i = 0; i < graph->n_node; i++) ERR_TRY(import_node(im, graph->node[i], i));
  ERR_TRY(import_outputs(im, graph));
  ir_graph_update_uses(im->g);
  return NULL;
}

static inferd_error *import_bytes(importer *im, ir_graph **graph) {
  onnx_stripped stripped;
  ERR_TRY(onnx_strip_model(im->file, im->size, im->label, &stripped));
  im->stripped = &stripped;
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, stripped.size, stripped.data);
  /* protobuf-c copied what it needs; the stripped bytes can go now. */
  free(stripped.data);
  stripped.data = NULL;
  inferd_error *e = NULL;
  if (!m)
    e = err_new(INFERD_ERROR_INVALID_ARG, "'%s' is not an ONNX model (it does not parse as a ModelProto)", im->label);
  else if (!m->graph)
    e = err_new(INFERD_ERROR_INVALID_ARG, "'%s' is not an ONNX model (it has no graph)", im->label);
  if (!e) {
    im->g = ir_graph_new();
    e = import_model(im, m);
    if (e) {
      ir_graph_delete(im->g);
      im->g = NULL;
    }
  }
  if (m) onnx__model_proto__free_unpacked(m, NULL);
  onnx_stripped_free(&stripped);
  *graph = im->g;
  return e;
}

inferd_error *onnx_import_file(const char *path, ir_graph **graph) {
  return onnx_import_file_with_defaults(path, NULL, 0, graph);
}

inferd_error *onnx_import_file_with_defaults(const char *path, const char *const *inputs, int n_inputs,
                                             ir_graph **graph) {
  *graph = NULL;
  void *map;
  size_t size;
  ERR_TRY(onnx_map_file(path, &map, &size));
  if (!size) return err_new(INFERD_ERROR_INVALID_ARG, "'%s' is empty, not an ONNX model", path);
  char *dir = onnx_dir_of(path);
  importer im = {.label = path,
                 .file = map,
                 .size = size,
                 .borrowable = true,
                 .model_dir = dir,
                 .defaults = inputs,
                 .n_defaults = n_inputs};
  inferd_error *e = import_bytes(&im, graph);
  free(dir);
  if (!e && im.mapping_used)
    ir_graph_own_mapping(*graph, map, size);
  else
    munmap(map, size);
  return e;
}

inferd_error *onnx_import_buffer(const void *data, size_t size, ir_graph **graph) {
  *graph = NULL;
  if (!data && size) return err_new(INFERD_ERROR_INVALID_ARG, "ONNX buffer: NULL data");
  importer im = {.label = "ONNX buffer", .file = data ? data : (const uint8_t *)"", .size = size};
  return import_bytes(&im, graph);
}
