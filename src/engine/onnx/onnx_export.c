/*
 * ir_graph -> ONNX ModelProto file.
 *
 * The small parts of the model (opset, nodes with their attributes, input
 * and output declarations) are packed with protobuf-c into memory. The
 * initializers, which hold the weights, are written by hand, field by field,
 * straight from the constants' memory to the file, so a 100 MB model is never
 * copied: the file is
 *
 *   ModelProto fields except graph | graph tag, length |
 *   GraphProto fields except initializers | initializer fields
 *
 * (protobuf does not care about field order, and repeated fields may be
 * split). Writing initializers by hand has a second use: each one gets a
 * doc_string of padding before its raw_data so that the data lies at a
 * 64-byte aligned offset in the file (element-size aligned for small
 * tensors). The importer uses aligned data in place, so models inferd writes
 * load without copying a single weight.
 *
 * The padding depends on the absolute file offset, which depends on the
 * width of the graph's length prefix, which depends on the padding; the
 * layout is therefore computed for each possible prefix width until one is
 * consistent (the first guess practically always is).
 *
 * The file is written under a temporary name and renamed into place, so a
 * failed export never leaves a half-written model behind.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/mem.h"
#include "engine/onnx/onnx_internal.h"

enum {
  TAG_MODEL_GRAPH = (7 << 3) | 2,
  TAG_GRAPH_INITIALIZER = (5 << 3) | 2,
  TAG_TENSOR_RAW_DATA = (9 << 3) | 2,
  TAG_TENSOR_DOC_STRING = (12 << 3) | 2,
  ALIGN_LARGE = 64,
  MAX_PAD = 127, /* so the padding's length prefix is one byte */
};

/* One initializer as laid out in the file. */
typedef struct init_layout {
  int value;
  uint8_t *header; /* packed TensorProto fields: dims, data_type, name */
  size_t header_len;
  int pad; /* bytes of doc_string payload, or -1 for no padding field */
  size_t tensor_len;
} init_layout;

typedef struct exporter {
  const ir_graph *g;
  mem_pool *pool; /* the protobuf-c structs, freed together */
  init_layout *inits;
  int n_inits;
} exporter;

static void *pool_new(exporter *x, size_t size) { return mem_pool_alloc(x->pool, size); }

static uint8_t *pack_message(exporter *x, const ProtobufCMessage *m, size_t *len) {
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *out = pool_new(x, *len ? *len : 1);
  protobuf_c_message_pack(m, out);
  return out;
}

static inferd_error *make_tensor(exporter *x, int value, bool with_data, Onnx__TensorProto **out) {
  const ir_value *v = &x->g->values[value];
  int32_t onnx_type = onnx_from_datatype(v->dtype);
  if (v->kind != IR_VALUE_CONST || !onnx_type || v->dtype == INFERD_TYPE_BYTES)
    return err_new(INFERD_ERROR_UNSUPPORTED, "constant '%s' of type %s cannot be written to ONNX", v->name,
                   inferd_datatype_name(v->dtype));
  Onnx__TensorProto *t = pool_new(x, sizeof(*t));
  onnx__tensor_proto__init(t);
  t->name = (char *)v->name;
  t->has_data_type = 1;
  t->data_type = onnx_type;
  t->n_dims = (size_t)v->shape.rank;
  t->dims = pool_new(x, (size_t)(v->shape.rank + 1) * sizeof(int64_t));
  for (int d = 0; d < v->shape.rank; d++) {
    if (v->shape.dims[d] < 0)
      return err_new(INFERD_ERROR_INVALID_ARG, "constant '%s' has a batch-dependent shape", v->name);
    t->dims[d] = v->shape.dims[d];
  }
  if (with_data) {
    t->has_raw_data = 1;
    t->raw_data = (ProtobufCBinaryData){.len = v->nbytes, .data = (uint8_t *)v->data};
  }
  *out = t;
  return NULL;
}

static inferd_error *make_attr(exporter *x, const ir_node *n, const ir_attr *a, Onnx__AttributeProto **out) {
  Onnx__AttributeProto *p = pool_new(x, sizeof(*p));
  onnx__attribute_proto__init(p);
  p->name = (char *)a->name;
  p->has_type = 1;
  p->type = (Onnx__AttributeProto__AttributeType)a->type;
  switch (a->type) {
  case IR_ATTR_FLOAT:
    p->has_f = 1, p->f = a->f;
    break;
  case IR_ATTR_INT:
    p->has_i = 1, p->i = a->i;
    break;
  case IR_ATTR_STRING:
    p->has_s = 1, p->s = (ProtobufCBinaryData){.len = a->s_len, .data = (uint8_t *)a->s};
    break;
  case IR_ATTR_FLOATS:
    p->n_floats = (size_t)a->n, p->floats = (float *)a->floats;
    break;
  case IR_ATTR_INTS:
    p->n_ints = (size_t)a->n, p->ints = (int64_t *)a->ints;
    break;
  case IR_ATTR_STRINGS:
    p->n_strings = (size_t)a->n;
    p->strings = pool_new(x, (size_t)(a->n + 1) * sizeof(ProtobufCBinaryData));
    for (int k = 0; k < a->n; k++)
      p->strings[k] = (ProtobufCBinaryData){.len = strlen(a->strings[k]), .data = (uint8_t *)a->strings[k]};
    break;
  case IR_ATTR_TENSOR:
    if (a->tensor < 0 || a->tensor >= x->g->n_values)
      return ir_node_error(x->g, n, INFERD_ERROR_INTERNAL, "attribute '%s' refers to no tensor", a->name);
    ERR_TRY(make_tensor(x, a->tensor, true, &p->t));
    p->t->name = NULL; /* the generated value name means nothing outside inferd */
    break;
  default:
    return ir_node_error(x->g, n, INFERD_ERROR_UNSUPPORTED, "attribute '%s' of type %d cannot be written", a->name,
                         (int)a->type);
  }
  *out = p;
  return NULL;
}

static inferd_error *make_node(exporter *x, const ir_node *n, Onnx__NodeProto **out) {
  if (n->n_post_ops || n->sum_input >= 0)
    return ir_node_error(x->g, n, INFERD_ERROR_UNSUPPORTED,
                         "has fused post-ops, which ONNX cannot express (export before optimizing)");
  Onnx__NodeProto *p = pool_new(x, sizeof(*p));
  onnx__node_proto__init(p);
  p->name = (char *)n->name;
  p->op_type = (char *)ir_op_name(n->op);
  if (n->domain && *n->domain) p->domain = (char *)n->domain;
  p->n_input = (size_t)n->n_inputs;
  p->input = pool_new(x, (size_t)(n->n_inputs + 1) * sizeof(char *));
  for (int k = 0; k < n->n_inputs; k++) p->input[k] = n->inputs[k] >= 0 ? (char *)x->g->values[n->inputs[k]].name : "";
  p->n_output = (size_t)n->n_outputs;
  p->output = pool_new(x, (size_t)(n->n_outputs + 1) * sizeof(char *));
  for (int k = 0; k < n->n_outputs; k++)
    p->output[k] = n->outputs[k] >= 0 ? (char *)x->g->values[n->outputs[k]].name : "";
  p->n_attribute = (size_t)n->n_attrs;
  p->attribute = pool_new(x, (size_t)(n->n_attrs + 1) * sizeof(Onnx__AttributeProto *));
  for (int k = 0; k < n->n_attrs; k++) ERR_TRY(make_attr(x, n, &n->attrs[k], &p->attribute[k]));
  *out = p;
  return NULL;
}

/* A graph input or output declaration. The batch dimension is written as
 * dim_param "N"; a dimension that is a multiple of the batch (outputs only)
 * is written as unknown. */
static inferd_error *make_value_info(exporter *x, int value, bool is_input, Onnx__ValueInfoProto **out) {
  const ir_value *v = &x->g->values[value];
  Onnx__ValueInfoProto *p = pool_new(x, sizeof(*p));
  onnx__value_info_proto__init(p);
  p->name = (char *)v->name;
  *out = p;
  if (is_input && !v->has_shape)
    return err_new(INFERD_ERROR_INVALID_ARG, "graph input '%s' has no shape", v->name);
  if (v->dtype == INFERD_TYPE_INVALID) return NULL;
  Onnx__TypeProto *tp = pool_new(x, sizeof(*tp));
  onnx__type_proto__init(tp);
  Onnx__TypeProto__Tensor *tt = pool_new(x, sizeof(*tt));
  onnx__type_proto__tensor__init(tt);
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  tt->has_elem_type = 1;
  tt->elem_type = onnx_from_datatype(v->dtype);
  p->type = tp;
  if (!v->has_shape) return NULL;
  Onnx__TensorShapeProto *sp = pool_new(x, sizeof(*sp));
  onnx__tensor_shape_proto__init(sp);
  sp->n_dim = (size_t)v->shape.rank;
  sp->dim = pool_new(x, (size_t)(v->shape.rank + 1) * sizeof(*sp->dim));
  for (int d = 0; d < v->shape.rank; d++) {
    Onnx__TensorShapeProto__Dimension *dim = pool_new(x, sizeof(*dim));
    onnx__tensor_shape_proto__dimension__init(dim);
    ir_dim value = v->shape.dims[d];
    if (value >= 0) {
      dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      dim->dim_value = value;
    } else if (value == IR_DIM_BATCH) {
      dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      dim->dim_param = "N";
    } else if (is_input) {
      return err_new(INFERD_ERROR_INVALID_ARG, "graph input '%s' dimension %d is a multiple of the batch, which ONNX "
                                               "inputs cannot express",
                     v->name, d);
    }
    sp->dim[d] = dim;
  }
  tt->shape = sp;
  return NULL;
}

/* The graph without its initializers. */
static inferd_error *pack_graph_head(exporter *x, uint8_t **out, size_t *len) {
  const ir_graph *g = x->g;
  Onnx__GraphProto *gp = pool_new(x, sizeof(*gp));
  onnx__graph_proto__init(gp);
  gp->name = (char *)(g->name && *g->name ? g->name : "main_graph");
  gp->node = pool_new(x, (size_t)(g->n_nodes + 1) * sizeof(*gp->node));
  for (int i = 0; i < g->n_nodes; i++)
    if (!g->nodes[i].dead) ERR_TRY(make_node(x, &g->nodes[i], &gp->node[gp->n_node++]));
  gp->input = pool_new(x, (size_t)(g->n_inputs + 1) * sizeof(*gp->input));
  for (int i = 0; i < g->n_inputs; i++) ERR_TRY(make_value_info(x, g->inputs[i], true, &gp->input[gp->n_input++]));
  gp->output = pool_new(x, (size_t)(g->n_outputs + 1) * sizeof(*gp->output));
  for (int i = 0; i < g->n_outputs; i++)
    ERR_TRY(make_value_info(x, g->outputs[i], false, &gp->output[gp->n_output++]));
  *out = pack_message(x, &gp->base, len);
  return NULL;
}

/* Constants that live nodes read or that are graph outputs, in value order. */
static inferd_error *collect_initializers(exporter *x) {
  const ir_graph *g = x->g;
  bool *used = mem_zalloc((size_t)g->n_values + 1);
  for (int i = 0; i < g->n_nodes; i++) {
    const ir_node *n = &g->nodes[i];
    if (n->dead) continue;
    for (int k = 0; k < n->n_inputs; k++)
      if (n->inputs[k] >= 0) used[n->inputs[k]] = true;
  }
  for (int i = 0; i < g->n_outputs; i++) used[g->outputs[i]] = true;
  x->inits = pool_new(x, ((size_t)g->n_values + 1) * sizeof(init_layout));
  inferd_error *e = NULL;
  for (int v = 0; v < g->n_values && !e; v++) {
    if (!used[v] || g->values[v].kind != IR_VALUE_CONST) continue;
    Onnx__TensorProto *t;
    e = make_tensor(x, v, false, &t);
    if (e) break;
    init_layout *il = &x->inits[x->n_inits++];
    il->value = v;
    il->header = pack_message(x, &t->base, &il->header_len);
  }
  free(used);
  return e;
}

static size_t pad_field_size(int pad) { return pad < 0 ? 0 : 2 + (size_t)pad; }

/* Chooses each initializer's padding for graph content starting at file
 * offset `start`; returns the graph content's length. */
static size_t layout_initializers(exporter *x, size_t start, size_t head_len, bool align) {
  size_t pos = start + head_len;
  for (int i = 0; i < x->n_inits; i++) {
    init_layout *il = &x->inits[i];
    const ir_value *v = &x->g->values[il->value];
    size_t raw_prefix = 1 + onnx_varint_size(v->nbytes);
    size_t want = v->nbytes >= ALIGN_LARGE ? ALIGN_LARGE : inferd_datatype_size(v->dtype);
    il->pad = -1;
    for (int pad = -1; pad <= MAX_PAD; pad++) {
      il->pad = pad;
      il->tensor_len = il->header_len + pad_field_size(pad) + raw_prefix + v->nbytes;
      size_t raw_at = pos + 1 + onnx_varint_size(il->tensor_len) + il->header_len + pad_field_size(pad) + raw_prefix;
      if (!align || want <= 1 || raw_at % want == 0) break;
      if (pad == MAX_PAD) il->pad = -1; /* cannot happen: 128 pads cover every residue */
    }
    il->tensor_len = il->header_len + pad_field_size(il->pad) + raw_prefix + v->nbytes;
    pos += 1 + onnx_varint_size(il->tensor_len) + il->tensor_len;
  }
  return pos - start;
}

static bool put(FILE *f, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, f) == n; }

static bool put_varint(FILE *f, uint64_t v) {
  uint8_t buf[10];
  return put(f, buf, onnx_varint_put(buf, v));
}

static bool write_model(exporter *x, FILE *f, const uint8_t *prefix, size_t prefix_len, const uint8_t *head,
                        size_t head_len, size_t graph_len) {
  char spaces[MAX_PAD];
  memset(spaces, ' ', sizeof(spaces));
  bool ok = put(f, prefix, prefix_len) && put_varint(f, TAG_MODEL_GRAPH) && put_varint(f, graph_len) &&
            put(f, head, head_len);
  for (int i = 0; i < x->n_inits && ok; i++) {
    const init_layout *il = &x->inits[i];
    const ir_value *v = &x->g->values[il->value];
    ok = put_varint(f, TAG_GRAPH_INITIALIZER) && put_varint(f, il->tensor_len) && put(f, il->header, il->header_len);
    if (ok && il->pad >= 0) ok = put_varint(f, TAG_TENSOR_DOC_STRING) && put_varint(f, (uint64_t)il->pad) &&
                                 put(f, spaces, (size_t)il->pad);
    ok = ok && put_varint(f, TAG_TENSOR_RAW_DATA) && put_varint(f, v->nbytes) && put(f, v->data, v->nbytes);
  }
  return ok;
}

static inferd_error *export_to(exporter *x, const char *path) {
  Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
  opset.domain = "";
  opset.has_version = 1;
  opset.version = x->g->opset;
  Onnx__OperatorSetIdProto *opsets[] = {&opset};
  Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
  model.has_ir_version = 1;
  model.ir_version = 8;
  model.producer_name = "inferd";
  model.producer_version = (char *)inferd_version();
  model.n_opset_import = 1;
  model.opset_import = opsets;
  size_t prefix_len, head_len;
  uint8_t *prefix = pack_message(x, &model.base, &prefix_len);
  uint8_t *head;
  ERR_TRY(pack_graph_head(x, &head, &head_len));
  ERR_TRY(collect_initializers(x));

  size_t graph_len = 0;
  bool consistent = false;
  for (size_t width = 1; width <= 10 && !consistent; width++) {
    graph_len = layout_initializers(x, prefix_len + 1 + width, head_len, true);
    consistent = onnx_varint_size(graph_len) == width;
  }
  if (!consistent) graph_len = layout_initializers(x, 0, head_len, false);

  size_t tmp_len = strlen(path) + 16;
  char *tmp = mem_alloc(tmp_len);
  snprintf(tmp, tmp_len, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    inferd_error *e = err_new(INFERD_ERROR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    free(tmp);
    return e;
  }
  fchmod(fd, 0644); /* mkstemp makes it 0600; a model is meant to be shared */
  FILE *f = fdopen(fd, "wb");
  bool ok = f && write_model(x, f, prefix, prefix_len, head, head_len, graph_len);
  int saved = ok ? 0 : errno;
  if (!f) {
    close(fd);
  } else if (fclose(f) != 0 && ok) {
    ok = false;
    saved = errno;
  }
  if (ok && rename(tmp, path) != 0) {
    ok = false;
    saved = errno;
  }
  if (!ok) unlink(tmp);
  free(tmp);
  if (ok) return NULL;
  return err_new(INFERD_ERROR_IO, "writing '%s': %s", path, strerror(saved ? saved : EIO));
}

inferd_error *onnx_export_file(const ir_graph *graph, const char *path) {
  exporter x = {.g = graph, .pool = mem_pool_new()};
  inferd_error *e = export_to(&x, path);
  mem_pool_delete(x.pool);
  return e;
}
