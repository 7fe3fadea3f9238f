/*
 * The optimizer passes on small hand-built graphs: each pass does its
 * rewrite when it applies, leaves the graph alone when it does not, and the
 * numbers it computes (folded BatchNorm weights) are right.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "engine/ir.h"
#include "engine/passes.h"

static int act(ir_graph *g, const char *name, int64_t c) {
  int v = ir_graph_add_value(g, name, INFERD_TYPE_FP32);
  g->values[v].has_shape = true;
  g->values[v].shape = (ir_shape){.rank = 4, .dims = {IR_DIM_BATCH, c, 4, 4}};
  return v;
}

static int cst(ir_graph *g, const char *name, int rank, const int64_t *dims, const float *data) {
  ir_shape s = {.rank = rank};
  for (int i = 0; i < rank; i++) s.dims[i] = dims[i];
  int id;
  inferd_error *e = ir_graph_add_const_copy(g, name, INFERD_TYPE_FP32, &s, data, &id);
  assert_null(e);
  return id;
}

/* conv(x) -> y, 1x1 conv with 2 in and 2 out channels. */
static int add_conv(ir_graph *g, int x, int y, const char *name) {
  static const float w[4] = {1, 2, 3, 4};
  char wname[64];
  snprintf(wname, sizeof(wname), "%s_w", name);
  int wid = cst(g, wname, 4, (int64_t[]){2, 2, 1, 1}, w);
  return ir_graph_add_node(g, IR_OP_Conv, name, 2, (int[]){x, wid}, 1, &y);
}

static void test_fold_batchnorm(void **state) {
  (void)state;
  ir_graph *g = ir_graph_new();
  int x = act(g, "x", 2), y = act(g, "y", 2), z = act(g, "z", 2);
  ir_graph_add_input(g, x);
  add_conv(g, x, y, "conv");
  float scale[2] = {2, 3}, bias[2] = {0.5f, -1}, mean[2] = {1, 2}, var[2] = {4, 9};
  int ins[5] = {y, cst(g, "s", 1, (int64_t[]){2}, scale), cst(g, "b", 1, (int64_t[]){2}, bias),
                cst(g, "m", 1, (int64_t[]){2}, mean), cst(g, "v", 1, (int64_t[]){2}, var)};
  int bn = ir_graph_add_node(g, IR_OP_BatchNormalization, "bn", 5, ins, 1, &z);
  ir_node_add_attr(g, bn, "epsilon", IR_ATTR_FLOAT)->f = 0.0f;
  ir_graph_add_output(g, z);
  ir_graph_update_uses(g);
  int changes = 0;
  assert_null(pass_fold_batchnorm(g, &changes));
  assert_int_equal(changes, 1);
  assert_true(g->nodes[1].dead);
  const ir_node *conv = &g->nodes[0];
  assert_int_equal(conv->outputs[0], z);
  assert_int_equal(conv->n_inputs, 3);
  const float *w = g->values[conv->inputs[1]].data, *b = g->values[conv->inputs[2]].data;
  /* s = scale / sqrt(var) = {1, 1}; w rows scaled by s; b = -mean*s + bias */
  assert_float_equal(w[0], 1.0f, 1e-6);
  assert_float_equal(w[2], 3.0f, 1e-6);
  assert_float_equal(b[0], -0.5f, 1e-6);
  assert_float_equal(b[1], -3.0f, 1e-6);
  ir_graph_delete(g);
}

static void test_batchnorm_not_folded_when_conv_output_shared(void **state) {
  (void)state;
  ir_graph *g = ir_graph_new();
  int x = act(g, "x", 2), y = act(g, "y", 2), z = act(g, "z", 2);
  ir_graph_add_input(g, x);
  add_conv(g, x, y, "conv");
  float one[2] = {1, 1}, zero[2] = {0, 0};
  int ins[5] = {y, cst(g, "s", 1, (int64_t[]){2}, one), cst(g, "b", 1, (int64_t[]){2}, zero),
                cst(g, "m", 1, (int64_t[]){2}, zero), cst(g, "v", 1, (int64_t[]){2}, one)};
  ir_graph_add_node(g, IR_OP_BatchNormalization, "bn", 5, ins, 1, &z);
  ir_graph_add_output(g, z);
  ir_graph_add_output(g, y); /* the conv result is also wanted */
  ir_graph_update_uses(g);
  int changes = 0;
  assert_null(pass_fold_batchnorm(g, &changes));
  assert_int_equal(changes, 0);
  ir_graph_delete(g);
}

static void test_fuse_activation_and_residual(void **state) {
  (void)state;
  /* r = input; y = conv(x); s = y + r; z = relu(s) */
  ir_graph *g = ir_graph_new();
  int x = act(g, "x", 2), y = act(g, "y", 2), s = act(g, "s", 2), z = act(g, "z", 2);
  ir_graph_add_input(g, x);
  add_conv(g, x, y, "conv");
  ir_graph_add_node(g, IR_OP_Add, "add", 2, (int[]){y, x}, 1, &s);
  ir_graph_add_node(g, IR_OP_Relu, "relu", 1, &s, 1, &z);
  ir_graph_add_output(g, z);
  ir_graph_update_uses(g);
  int changes = 0;
  assert_null(pass_fuse_residual(g, &changes));
  assert_int_equal(changes, 1);
  const ir_node *conv = &g->nodes[0];
  assert_int_equal(conv->n_post_ops, 2);
  assert_int_equal(conv->post_ops[0].kind, IR_POST_SUM);
  assert_int_equal(conv->post_ops[1].kind, IR_POST_ELTWISE);
  assert_int_equal(conv->post_ops[1].alg, IR_ELTWISE_RELU);
  assert_int_equal(conv->inputs[conv->sum_input], x);
  assert_int_equal(conv->outputs[0], z);
  assert_true(g->nodes[1].dead && g->nodes[2].dead);
  ir_graph_delete(g);
}

static void test_residual_takes_the_later_conv(void **state) {
  (void)state;
  /* Both Add operands come from convolutions; the later one must take the
   * sum, since the earlier one's result exists by then. */
  ir_graph *g = ir_graph_new();
  int x = act(g, "x", 2), a = act(g, "a", 2), b = act(g, "b", 2), s = act(g, "s", 2);
  ir_graph_add_input(g, x);
  add_conv(g, x, a, "first");
  add_conv(g, x, b, "second");
  ir_graph_add_node(g, IR_OP_Add, "add", 2, (int[]){a, b}, 1, &s);
  ir_graph_add_output(g, s);
  ir_graph_update_uses(g);
  int changes = 0;
  assert_null(pass_fuse_residual(g, &changes));
  assert_int_equal(changes, 1);
  assert_int_equal(g->nodes[0].n_post_ops, 0);
  assert_int_equal(g->nodes[1].n_post_ops, 1);
  assert_int_equal(g->nodes[1].inputs[g->nodes[1].sum_input], a);
  ir_graph_delete(g);
}

static void test_clip_becomes_relu6_post_op(void **state) {
  (void)state;
  ir_graph *g = ir_graph_new();
  g->opset = 13;
  int x = act(g, "x", 2), y = act(g, "y", 2), z = act(g, "z", 2);
  ir_graph_add_input(g, x);
  add_conv(g, x, y, "conv");
  float lo = 0, hi = 6;
  int lo_id = cst(g, "lo", 0, NULL, &lo), hi_id = cst(g, "hi", 0, NULL, &hi);
  ir_graph_add_node(g, IR_OP_Clip, "clip", 3, (int[]){y, lo_id, hi_id}, 1, &z);
  ir_graph_add_output(g, z);
  ir_graph_update_uses(g);
  int changes = 0;
  assert_null(pass_fuse_activation(g, &changes));
  assert_int_equal(changes, 1);
  assert_int_equal(g->nodes[0].post_ops[0].alg, IR_ELTWISE_CLIP);
  assert_float_equal(g->nodes[0].post_ops[0].beta, 6.0f, 0);
  ir_graph_delete(g);
}

static void test_activation_not_fused_into_graph_output(void **state) {
  (void)state;
  ir_graph *g = ir_graph_new();
  int x = act(g, "x", 2), y = act(g, "y", 2), z = act(g, "z", 2);
  ir_graph_add_input(g, x);
  add_conv(g, x, y, "conv");
  ir_graph_add_node(g, IR_OP_Relu, "relu", 1, &y, 1, &z);
  ir_graph_add_output(g, y);
  ir_graph_add_output(g, z);
  ir_graph_update_uses(g);
  int changes = 0;
  assert_null(pass_fuse_activation(g, &changes));
  assert_int_equal(changes, 0);
  ir_graph_delete(g);
}

static void test_matmul_add_becomes_gemm(void **state) {
  (void)state;
  ir_graph *g = ir_graph_new();
  int a = ir_graph_add_value(g, "a", INFERD_TYPE_FP32), y = ir_graph_add_value(g, "y", INFERD_TYPE_FP32),
      z = ir_graph_add_value(g, "z", INFERD_TYPE_FP32);
  ir_shape s2 = {.rank = 2, .dims = {IR_DIM_BATCH, 3}};
  g->values[a].has_shape = g->values[y].has_shape = g->values[z].has_shape = true;
  g->values[a].shape = (ir_shape){.rank = 2, .dims = {IR_DIM_BATCH, 4}};
  g->values[y].shape = g->values[z].shape = s2;
  float w[12] = {0}, bias[3] = {1, 2, 3};
  int wid = cst(g, "w", 2, (int64_t[]){4, 3}, w), bid = cst(g, "bias", 1, (int64_t[]){3}, bias);
  ir_graph_add_input(g, a);
  ir_graph_add_node(g, IR_OP_MatMul, "mm", 2, (int[]){a, wid}, 1, &y);
  ir_graph_add_node(g, IR_OP_Add, "add", 2, (int[]){bid, y}, 1, &z);
  ir_graph_add_output(g, z);
  ir_graph_update_uses(g);
  int changes = 0;
  assert_null(pass_fuse_gemm_bias(g, &changes));
  assert_int_equal(changes, 1);
  assert_int_equal(g->nodes[0].op, IR_OP_Gemm);
  assert_int_equal(g->nodes[0].inputs[2], bid);
  assert_int_equal(g->nodes[0].outputs[0], z);
  ir_graph_delete(g);
}

static void test_dead_nodes_and_disabled_passes(void **state) {
  (void)state;
  ir_graph *g = ir_graph_new();
  int x = act(g, "x", 2), y = act(g, "y", 2), unused = act(g, "unused", 2), z = act(g, "z", 2);
  ir_graph_add_input(g, x);
  ir_graph_add_node(g, IR_OP_Relu, "r1", 1, &x, 1, &y);
  ir_graph_add_node(g, IR_OP_Relu, "dead", 1, &y, 1, &unused);
  ir_graph_add_node(g, IR_OP_Sigmoid, "r2", 1, &y, 1, &z);
  ir_graph_add_output(g, z);
  ir_graph_update_uses(g);
  int changes = 0;
  assert_null(pass_eliminate_dead(g, &changes));
  assert_int_equal(changes, 1);
  assert_true(g->nodes[1].dead);
  assert_int_equal(ir_graph_live_nodes(g), 2);

  inferd_error *e = passes_validate("fold-batchnorm,no-such-pass");
  assert_non_null(e);
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_INVALID_ARG);
  assert_non_null(strstr(inferd_error_message(e), "no-such-pass"));
  inferd_error_delete(e);
  assert_null(passes_validate("fold-batchnorm,fuse-residual"));
  ir_graph_delete(g);
}

static void test_reshape_target_from_symbolic_shape(void **state) {
  (void)state;
  /* shape = [N*1, 32] known symbolically: Reshape gets a constant [-1, 32]. */
  ir_graph *g = ir_graph_new();
  int x = act(g, "x", 2), shape = ir_graph_add_value(g, "shape", INFERD_TYPE_INT64),
      y = ir_graph_add_value(g, "y", INFERD_TYPE_FP32);
  ir_value *sv = &g->values[shape];
  sv->has_shape = true;
  sv->shape = (ir_shape){.rank = 1, .dims = {2}};
  static ir_symint sym[2] = {{.value = 0, .coef = 1}, {.value = 32, .coef = 0}};
  sv->sym = sym;
  sv->sym_len = 2;
  g->values[y].has_shape = true;
  g->values[y].shape = (ir_shape){.rank = 2, .dims = {IR_DIM_BATCH, 32}};
  ir_graph_add_input(g, x);
  ir_graph_add_node(g, IR_OP_Shape, "shape_of", 1, &x, 1, &shape); /* stands for the chain */
  ir_graph_add_node(g, IR_OP_Reshape, "reshape", 2, (int[]){x, shape}, 1, &y);
  ir_graph_add_output(g, y);
  ir_graph_update_uses(g);
  int changes = 0;
  assert_null(pass_simplify_shapes(g, &changes));
  assert_int_equal(changes, 1);
  int target = g->nodes[1].inputs[1];
  assert_int_equal(g->values[target].kind, IR_VALUE_CONST);
  const int64_t *t = g->values[target].data;
  assert_int_equal(t[0], -1);
  assert_int_equal(t[1], 32);
  changes = 0;
  assert_null(pass_eliminate_dead(g, &changes));
  assert_true(g->nodes[0].dead);
  ir_graph_delete(g);
}

static void test_fold_constants(void **state) {
  (void)state;
  /* y = x * (a + b) with a, b constants: the Add is computed at load. */
  ir_graph *g = ir_graph_new();
  int x = act(g, "x", 2), sum = ir_graph_add_value(g, "sum", INFERD_TYPE_FP32), y = act(g, "y", 2);
  float a[2] = {1, 2}, bb[2] = {10, 20};
  int a_id = cst(g, "a", 4, (int64_t[]){1, 2, 1, 1}, a), b_id = cst(g, "b", 4, (int64_t[]){1, 2, 1, 1}, bb);
  ir_graph_add_input(g, x);
  ir_graph_add_node(g, IR_OP_Add, "add", 2, (int[]){a_id, b_id}, 1, &sum);
  ir_graph_add_node(g, IR_OP_Mul, "mul", 2, (int[]){x, sum}, 1, &y);
  ir_graph_add_output(g, y);
  assert_null(ir_infer_shapes(g));
  ir_graph_update_uses(g);
  int changes = 0;
  assert_null(pass_fold_constants(g, &changes));
  assert_int_equal(changes, 1);
  assert_true(g->nodes[0].dead);
  int folded = g->nodes[1].inputs[1];
  assert_int_equal(g->values[folded].kind, IR_VALUE_CONST);
  const float *f = g->values[folded].data;
  assert_float_equal(f[0], 11.0f, 0);
  assert_float_equal(f[1], 22.0f, 0);
  /* A node reading the graph input is not folded. */
  assert_false(g->nodes[1].dead);
  ir_graph_delete(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fold_batchnorm),
      cmocka_unit_test(test_batchnorm_not_folded_when_conv_output_shared),
      cmocka_unit_test(test_fuse_activation_and_residual),
      cmocka_unit_test(test_residual_takes_the_later_conv),
      cmocka_unit_test(test_clip_becomes_relu6_post_op),
      cmocka_unit_test(test_activation_not_fused_into_graph_output),
      cmocka_unit_test(test_matmul_add_becomes_gemm),
      cmocka_unit_test(test_dead_nodes_and_disabled_passes),
      cmocka_unit_test(test_reshape_target_from_symbolic_shape),
      cmocka_unit_test(test_fold_constants),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
