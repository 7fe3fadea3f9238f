/* Export -> import round trips, and the zero-copy property of the importer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit/engine/onnx_test_util.h"

static const inferd_datatype all_types[] = {
    INFERD_TYPE_BOOL,  INFERD_TYPE_UINT8, INFERD_TYPE_UINT16, INFERD_TYPE_UINT32, INFERD_TYPE_UINT64,
    INFERD_TYPE_INT8,  INFERD_TYPE_INT16, INFERD_TYPE_INT32,  INFERD_TYPE_INT64,  INFERD_TYPE_FP16,
    INFERD_TYPE_FP32,  INFERD_TYPE_FP64,  INFERD_TYPE_BF16,
};
enum { N_TYPES = sizeof(all_types) / sizeof(all_types[0]) };

/* Deterministic bytes for constant number k (bools stay 0/1). */
static void fill_bytes(uint8_t *p, size_t n, int k, inferd_datatype type) {
  for (size_t i = 0; i < n; i++)
    p[i] = type == INFERD_TYPE_BOOL ? (uint8_t)((i + (size_t)k) & 1) : (uint8_t)(i * 7 + (size_t)k * 13 + 1);
}

static int add_const(ir_graph *g, const char *name, inferd_datatype type, int rank, const int64_t *dims, int k) {
  ir_shape shape = {.rank = rank};
  for (int i = 0; i < rank; i++) shape.dims[i] = dims[i];
  void *data;
  int id;
  inferd_error *e = ir_graph_add_const_alloc(g, name, type, &shape, &data, &id);
  assert_null(e);
  fill_bytes(data, g->values[id].nbytes, k, type);
  return id;
}

static int add_node1(ir_graph *g, ir_op op, const char *name, int n_in, const int *in, const char *out_name) {
  int out = ir_graph_add_value(g, out_name, INFERD_TYPE_INVALID);
  ir_graph_add_node(g, op, name, n_in, in, 1, &out);
  return out;
}

/* x[N,4] -> MatMul(w[4,16]) -> Add(b) -> Clip(,omitted min, max) -> Identity with every attribute type -> out;
 * plus a Concat reading one constant of every data type. */
static ir_graph *make_graph(void) {
  ir_graph *g = ir_graph_new();
  g->name = mem_pool_strdup(g->pool, "small");
  g->opset = 17;
  int x = ir_graph_add_value(g, "x", INFERD_TYPE_FP32);
  g->values[x].has_shape = true;
  g->values[x].shape = (ir_shape){.rank = 2, .dims = {IR_DIM_BATCH, 4}};
  ir_graph_add_input(g, x);
  int w = add_const(g, "w", INFERD_TYPE_FP32, 2, (const int64_t[]){4, 16}, 1);
  int b = add_const(g, "b", INFERD_TYPE_FP32, 1, (const int64_t[]){16}, 2);
  int hi = add_const(g, "hi", INFERD_TYPE_FP32, 0, NULL, 3);
  int y = add_node1(g, IR_OP_MatMul, "mm", 2, (const int[]){x, w}, "y");
  int z = add_node1(g, IR_OP_Add, "add", 2, (const int[]){y, b}, "z");
  int c = add_node1(g, IR_OP_Clip, "clip", 3, (const int[]){z, -1, hi}, "c");
  int out = add_node1(g, IR_OP_Identity, "attrs", 1, &c, "out");
  int node = g->n_nodes - 1;
  ir_node_add_attr(g, node, "f", IR_ATTR_FLOAT)->f = 0.5f;
  ir_node_add_attr(g, node, "i", IR_ATTR_INT)->i = -7;
  ir_attr *a = ir_node_add_attr(g, node, "s", IR_ATTR_STRING);
  a->s = "hello", a->s_len = 5;
  static const float floats[] = {1.5f, -2.0f};
  a = ir_node_add_attr(g, node, "fs", IR_ATTR_FLOATS);
  a->floats = floats, a->n = 2;
  static const int64_t ints[] = {1, 2, 3};
  a = ir_node_add_attr(g, node, "is", IR_ATTR_INTS);
  a->ints = ints, a->n = 3;
  static const char *strings[] = {"a", "bc"};
  a = ir_node_add_attr(g, node, "ss", IR_ATTR_STRINGS);
  a->strings = strings, a->n = 2;
  int t;
  assert_null(ir_graph_add_const_copy(g, NULL, INFERD_TYPE_INT64, &(ir_shape){.rank = 1, .dims = {2}},
                                      (const int64_t[]){5, 6}, &t));
  ir_node_add_attr(g, node, "t", IR_ATTR_TENSOR)->tensor = t;
  g->values[out].dtype = INFERD_TYPE_FP32;
  g->values[out].has_shape = true;
  g->values[out].shape = (ir_shape){.rank = 2, .dims = {IR_DIM_BATCH, 16}};
  ir_graph_add_output(g, out);

  int typed[N_TYPES];
  for (int k = 0; k < N_TYPES; k++) {
    char name[32];
    snprintf(name, sizeof(name), "typed_%s", inferd_datatype_name(all_types[k]));
    typed[k] = add_const(g, name, all_types[k], 2, (const int64_t[]){3, 5}, k);
  }
  add_node1(g, IR_OP_Concat, "many", N_TYPES, typed, "many_out");
  ir_graph_update_uses(g);
  return g;
}

static const ir_node *find_node(const ir_graph *g, const char *name) {
  for (int i = 0; i < g->n_nodes; i++)
    if (strcmp(g->nodes[i].name, name) == 0) return &g->nodes[i];
  fail_msg("no node '%s'", name);
  return NULL;
}

static const char *input_name(const ir_graph *g, const ir_node *n, int k) {
  return n->inputs[k] < 0 ? "" : g->values[n->inputs[k]].name;
}

/* Everything make_graph put in, compared against the original. */
static void check_same(const ir_graph *a, const ir_graph *b) {
  assert_string_equal(b->name, "small");
  assert_int_equal(b->opset, 17);
  assert_int_equal(b->n_inputs, 1);
  const ir_value *x = &b->values[b->inputs[0]];
  assert_string_equal(x->name, "x");
  assert_int_equal(x->dtype, INFERD_TYPE_FP32);
  assert_true(x->has_shape);
  assert_int_equal(x->shape.rank, 2);
  assert_int_equal(x->shape.dims[0], IR_DIM_BATCH);
  assert_int_equal(x->shape.dims[1], 4);
  assert_int_equal(ir_graph_live_nodes(b), ir_graph_live_nodes(a));
  for (int i = 0; i < a->n_nodes; i++) {
    const ir_node *na = &a->nodes[i], *nb = find_node(b, na->name);
    assert_int_equal(na->op, nb->op);
    assert_int_equal(na->n_inputs, nb->n_inputs);
    assert_int_equal(na->n_outputs, nb->n_outputs);
    for (int k = 0; k < na->n_inputs; k++) assert_string_equal(input_name(a, na, k), input_name(b, nb, k));
  }
  assert_int_equal(find_node(b, "clip")->inputs[1], -1);
  /* Every constant: type, shape, bytes. */
  for (int v = 0; v < a->n_values; v++) {
    const ir_value *va = &a->values[v];
    if (va->kind != IR_VALUE_CONST || va->use_count == 0) continue;
    int id = ir_graph_find_value(b, va->name);
    assert_true(id >= 0);
    const ir_value *vb = &b->values[id];
    assert_int_equal(vb->kind, IR_VALUE_CONST);
    assert_int_equal(vb->dtype, va->dtype);
    assert_true(ir_shape_equal(&va->shape, &vb->shape));
    assert_int_equal(vb->nbytes, va->nbytes);
    assert_memory_equal(vb->data, va->data, va->nbytes);
    assert_true((uintptr_t)vb->data % inferd_datatype_size(vb->dtype) == 0);
  }
  const ir_node *n = find_node(b, "attrs");
  assert_int_equal(n->n_attrs, 7);
  assert_true(ir_node_attr_float(n, "f", 0) == 0.5f);
  assert_int_equal(ir_node_attr_int(n, "i", 0), -7);
  assert_string_equal(ir_node_attr_string(n, "s", ""), "hello");
  assert_int_equal(ir_node_attr(n, "s")->s_len, 5);
  const ir_attr *fs = ir_node_attr(n, "fs");
  assert_int_equal(fs->type, IR_ATTR_FLOATS);
  assert_int_equal(fs->n, 2);
  assert_true(fs->floats[0] == 1.5f && fs->floats[1] == -2.0f);
  int count;
  const int64_t *is = ir_node_attr_ints(n, "is", &count);
  assert_int_equal(count, 3);
  assert_int_equal(is[2], 3);
  const ir_attr *ss = ir_node_attr(n, "ss");
  assert_int_equal(ss->type, IR_ATTR_STRINGS);
  assert_int_equal(ss->n, 2);
  assert_string_equal(ss->strings[1], "bc");
  const ir_attr *t = ir_node_attr(n, "t");
  assert_int_equal(t->type, IR_ATTR_TENSOR);
  const ir_value *tv = &b->values[t->tensor];
  assert_int_equal(tv->kind, IR_VALUE_CONST);
  assert_int_equal(tv->dtype, INFERD_TYPE_INT64);
  assert_int_equal(((const int64_t *)tv->data)[1], 6);
  assert_int_equal(b->n_outputs, 1);
  const ir_value *out = &b->values[b->outputs[0]];
  assert_string_equal(out->name, "out");
  assert_int_equal(out->dtype, INFERD_TYPE_FP32);
  assert_true(out->has_shape && out->shape.dims[0] == IR_DIM_BATCH && out->shape.dims[1] == 16);
}

static void test_round_trip_file_is_zero_copy(void **state) {
  (void)state;
  ir_graph *a = make_graph();
  const char *path = test_path("small.onnx");
  assert_null(onnx_export_file(a, path));
  ir_graph *b;
  inferd_error *e = onnx_import_file(path, &b);
  if (e) fail_msg("%s", inferd_error_message(e));
  check_same(a, b);
  /* The exporter aligns raw_data, so every initializer is used in place. */
  const ir_value *w = &b->values[ir_graph_find_value(b, "w")];
  assert_true(pointer_in_file_mapping(w->data, path));
  assert_true((uintptr_t)w->data % 64 == 0);
  for (int k = 0; k < N_TYPES; k++) {
    char name[32];
    snprintf(name, sizeof(name), "typed_%s", inferd_datatype_name(all_types[k]));
    assert_true(pointer_in_file_mapping(b->values[ir_graph_find_value(b, name)].data, path));
  }
  assert_int_equal(ir_graph_heap_bytes(b), 0);
  /* And a second export of the import gives the same bytes. */
  const char *path2 = test_path("small2.onnx");
  assert_null(onnx_export_file(b, path2));
  size_t len1, len2;
  uint8_t *bytes1 = read_bytes(path, &len1), *bytes2 = read_bytes(path2, &len2);
  assert_int_equal(len1, len2);
  assert_memory_equal(bytes1, bytes2, len1);
  free(bytes1);
  free(bytes2);
  ir_graph_delete(b);
  ir_graph_delete(a);
}

static void test_round_trip_buffer_copies(void **state) {
  (void)state;
  ir_graph *a = make_graph();
  const char *path = test_path("buffer.onnx");
  assert_null(onnx_export_file(a, path));
  size_t len;
  uint8_t *bytes = read_bytes(path, &len);
  ir_graph *b;
  assert_null(onnx_import_buffer(bytes, len, &b));
  /* The caller's buffer may go away: the graph must not point into it. */
  memset(bytes, 0xee, len);
  free(bytes);
  check_same(a, b);
  assert_true(ir_graph_heap_bytes(b) > 0);
  ir_graph_delete(b);
  ir_graph_delete(a);
}

static void test_unaligned_raw_data_is_copied_aligned(void **state) {
  (void)state;
  /* protobuf-c puts raw_data wherever it falls; make the name length shift
   * it so that it is odd, and check the importer copies it to an aligned block. */
  for (int shift = 0; shift < 8; shift++) {
    test_model m;
    tm_init(&m);
    char name[16] = "wwwwwwww";
    name[shift + 1] = 0;
    double data[5] = {1, 2, 3, 4, 5};
    tm_initializer(&m, name, ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE, 1, (const int64_t[]){5}, data, sizeof(data));
    tm_input(&m, "x", 11, 1, (const int64_t[]){5});
    const char *in[] = {"x", name}, *out[] = {"y"};
    tm_node(&m, "Add", "add", 2, in, 1, out);
    tm_output(&m, "y");
    const char *path = tm_write(&m, "shift.onnx");
    ir_graph *g;
    assert_null(onnx_import_file(path, &g));
    const ir_value *v = &g->values[ir_graph_find_value(g, name)];
    assert_true((uintptr_t)v->data % 8 == 0);
    assert_memory_equal(v->data, data, sizeof(data));
    ir_graph_delete(g);
    tm_free(&m);
  }
}

static void test_export_rejects_fused_nodes(void **state) {
  (void)state;
  ir_graph *g = make_graph();
  ir_node *n = &g->nodes[0];
  n->post_ops[n->n_post_ops++] = (ir_post_op){.kind = IR_POST_ELTWISE, .alg = IR_ELTWISE_RELU};
  inferd_error *e = onnx_export_file(g, test_path("fused.onnx"));
  assert_non_null(e);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_UNSUPPORTED);
  assert_contains(inferd_error_message(e), "mm");
  inferd_error_delete(e);
  assert_int_equal(access(test_path("fused.onnx"), F_OK), -1); /* nothing half-written left */
  ir_graph_delete(g);
}

static void test_export_unwritable_path(void **state) {
  (void)state;
  ir_graph *g = make_graph();
  inferd_error *e = onnx_export_file(g, test_path("no/such/folder/m.onnx"));
  assert_non_null(e);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_IO);
  inferd_error_delete(e);
  ir_graph_delete(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_file_is_zero_copy),
      cmocka_unit_test(test_round_trip_buffer_copies),
      cmocka_unit_test(test_unaligned_raw_data_is_copied_aligned),
      cmocka_unit_test(test_export_rejects_fused_nodes),
      cmocka_unit_test(test_export_unwritable_path),
  };
  return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
