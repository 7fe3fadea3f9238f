/* The reference backend: a small network run at several batch sizes, with
 * and without fused post-ops, memory reuse, outputs that are inputs or
 * constants, and kernel errors surfacing from execute(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/backend.h"
#include "unit/engine/ops_test.h"

typedef struct net {
  ir_graph *g;
  int x, conv, relu, add, out;
} net;

/*
 * x [N,2,3,3] -> Conv 1x1 (w = diag(1, -1), b = (0, 1)) -> Relu -> Add x
 * -> GlobalAveragePool -> Flatten -> Gemm ([[1,0,1],[0,1,1]], (0,0,10)).
 * With `fused`, Relu and the Add are post-ops of the Conv, as the
 * optimizer makes them.
 */
static net build_net(bool fused) {
  net m = {.g = t_graph(13)};
  ir_graph *g = m.g;
  m.x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 2, 3, 3));
  int w = t_const(g, "w", INFERD_TYPE_FP32, DIMS(2, 2, 1, 1), (float[]){1, 0, 0, -1});
  int b = t_const(g, "b", INFERD_TYPE_FP32, DIMS(2), (float[]){0, 1});
  int wg = t_const(g, "wg", INFERD_TYPE_FP32, DIMS(2, 3), (float[]){1, 0, 1, 0, 1, 1});
  int bg = t_const(g, "bg", INFERD_TYPE_FP32, DIMS(3), (float[]){0, 0, 10});
  m.conv = t_node(g, IR_OP_Conv, "conv", INS(m.x, w, b), 1);
  m.relu = t_node(g, IR_OP_Relu, "relu", INS(t_out(g, m.conv, 0)), 1);
  m.add = t_node(g, IR_OP_Add, "add", INS(t_out(g, m.relu, 0), m.x), 1);
  int gap = t_node(g, IR_OP_GlobalAveragePool, "gap", INS(t_out(g, m.add, 0)), 1);
  int flat = t_node(g, IR_OP_Flatten, "flatten", INS(t_out(g, gap, 0)), 1);
  m.out = t_node(g, IR_OP_Gemm, "gemm", INS(t_out(g, flat, 0), wg, bg), 1);
  ir_graph_add_output(g, t_out(g, m.out, 0));
  assert_null(ir_infer_shapes(g));
  if (fused) {
    ir_node *c = &g->nodes[m.conv];
    ir_node_set_inputs(g, m.conv, 4, (int[]){m.x, w, b, m.x});
    c->sum_input = 3;
    c->post_ops[c->n_post_ops++] = (ir_post_op){.kind = IR_POST_ELTWISE, .alg = IR_ELTWISE_RELU};
    c->post_ops[c->n_post_ops++] = (ir_post_op){.kind = IR_POST_SUM};
    g->nodes[m.relu].dead = g->nodes[m.add].dead = true;
    ir_graph_replace_uses(g, t_out(g, m.add, 0), t_out(g, m.conv, 0));
  }
  ir_graph_update_uses(g);
  return m;
}

static const float batch2_input[36] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  2,    2,    2,    2,    2,    2,    2,    2,    2,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f,
};

static void run_net(bool fused) {
  net m = build_net(fused);
  const inferd_backend_ops *ops = &backend_ref_ops;
  backend_plan *plan;
  backend_context *ctx;
  assert_null(ops->plan_create(m.g, &(backend_plan_config){.max_batch_size = 4, .threads = 1}, &plan));
  assert_null(ops->context_create(plan, 1, &ctx));
  assert_true(ops->context_memory_bytes(ctx) > 0);
  float y[12];
  assert_null(ops->execute(ctx, 2, &(backend_io){.inputs = (const void *[]){batch2_input}, .outputs = (void *[]){y}}));
  const float want[] = {8, 2, 20, -1, 1, 10};
  for (int i = 0; i < 6; i++) assert_float_equal(y[i], want[i], 1e-5);
  /* Batch 1 on the same context: the first item alone. */
  memset(y, 0, sizeof(y));
  assert_null(ops->execute(ctx, 1, &(backend_io){.inputs = (const void *[]){batch2_input}, .outputs = (void *[]){y}}));
  for (int i = 0; i < 3; i++) assert_float_equal(y[i], want[i], 1e-5);
  assert_float_equal(y[3], 0, 0);
  /* Outputs not asked for are fine; batches past the plan are not. */
  assert_null(ops->execute(ctx, 2, &(backend_io){.inputs = (const void *[]){batch2_input}, .outputs = (void *[]){NULL}}));
  inferd_error *e = ops->execute(ctx, 5, &(backend_io){.inputs = (const void *[]){batch2_input}, .outputs = (void *[]){y}});
  assert_non_null(e);
  inferd_error_delete(e);

  ops->set_profiling(ctx, true);
  assert_null(ops->execute(ctx, 1, &(backend_io){.inputs = (const void *[]){batch2_input}, .outputs = (void *[]){y}}));
  inferd_profile_entry entries[16];
  int steps = ops->profile(ctx, entries, 16);
  assert_int_equal(steps, fused ? 4 : 6);
  assert_string_equal(entries[0].name, "conv");
  ops->context_delete(ctx);
  ops->plan_delete(plan);
  ir_graph_delete(m.g);
}

static void test_network_unfused(void **state) {
  (void)state;
  run_net(false);
}

static void test_network_fused(void **state) {
  (void)state;
  run_net(true);
}

/* Activations whose consumers are done give their memory to later ones. */
static void test_memory_reuse(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 1024));
  int v = x;
  for (int i = 0; i < 8; i++) {
    char name[16];
    snprintf(name, sizeof(name), "relu%d", i);
    v = t_out(g, t_node(g, IR_OP_Relu, name, INS(v), 1), 0);
  }
  ir_graph_add_output(g, v);
  assert_null(ir_infer_shapes(g));
  ir_graph_update_uses(g);
  backend_plan *plan;
  backend_context *ctx;
  assert_null(backend_ref_ops.plan_create(g, &(backend_plan_config){.max_batch_size = 2, .threads = 1}, &plan));
  assert_null(backend_ref_ops.context_create(plan, 1, &ctx));
  /* A chain needs two buffers at a time (input and output of a step), and
   * the last one is the graph output: three at most, not eight. */
  assert_true(backend_ref_ops.context_memory_bytes(ctx) <= 3 * 2 * 1024 * sizeof(float));
  static float in[2048], out[2048];
  for (int i = 0; i < 2048; i++) in[i] = (float)(i % 7) - 3;
  assert_null(backend_ref_ops.execute(ctx, 2, &(backend_io){.inputs = (const void *[]){in}, .outputs = (void *[]){out}}));
  for (int i = 0; i < 2048; i++) assert_float_equal(out[i], in[i] > 0 ? in[i] : 0, 0);
  backend_ref_ops.context_delete(ctx);
  backend_ref_ops.plan_delete(plan);
  ir_graph_delete(g);
}

/* Graph outputs that no node produces (an input, a constant) are copied. */
static void test_passthrough_outputs_and_errors(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_INT64, DIMS(3));
  int data = t_const(g, "data", INFERD_TYPE_FP32, DIMS(4), (float[]){1, 2, 3, 4});
  int gather = t_node(g, IR_OP_Gather, "gather", INS(data, x), 1);
  ir_graph_add_output(g, t_out(g, gather, 0));
  ir_graph_add_output(g, x);
  ir_graph_add_output(g, data);
  assert_null(ir_infer_shapes(g));
  ir_graph_update_uses(g);
  backend_plan *plan;
  backend_context *ctx;
  assert_null(backend_ref_ops.plan_create(g, &(backend_plan_config){.max_batch_size = 1, .threads = 1}, &plan));
  assert_null(backend_ref_ops.context_create(plan, 1, &ctx));
  float gathered[3], constant[4];
  int64_t echoed[3];
  assert_null(
      backend_ref_ops.execute(ctx, 1, &(backend_io){.inputs = (const void *[]){(int64_t[]){3, -4, 1}}, .outputs = (void *[]){gathered, echoed, constant}}));
  assert_memory_equal(gathered, ((float[]){4, 1, 2}), sizeof(gathered));
  assert_memory_equal(echoed, ((int64_t[]){3, -4, 1}), sizeof(echoed));
  assert_memory_equal(constant, ((float[]){1, 2, 3, 4}), sizeof(constant));
  inferd_error *e =
      backend_ref_ops.execute(ctx, 1, &(backend_io){.inputs = (const void *[]){(int64_t[]){0, 4, 0}}, .outputs = (void *[]){gathered, echoed, constant}});
  assert_non_null(e);
  assert_non_null(strstr(inferd_error_message(e), "node 'gather'"));
  inferd_error_delete(e);
  backend_ref_ops.context_delete(ctx);
  backend_ref_ops.plan_delete(plan);
  ir_graph_delete(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_network_unfused),
      cmocka_unit_test(test_network_fused),
      cmocka_unit_test(test_memory_reuse),
      cmocka_unit_test(test_passthrough_outputs_and_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
