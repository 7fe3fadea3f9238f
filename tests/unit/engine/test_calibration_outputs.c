/*
 * inferd_plan_options.calibration_outputs: Conv -> Relu -> Conv -> Flatten
 * -> Gemm, after optimization Conv+Relu and Conv (the Relu fused away): the
 * plan gains two outputs, the first Conv's (fused) output that the second
 * reads and the Flatten's output that the Gemm reads, named as the values
 * are; the graph input is not repeated. On the cpu and the reference
 * backends, the extra outputs hold what a model ending there computes, and
 * the model's own output is unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <unistd.h>

#include "engine/onnx/onnx.h"
#include "unit/engine/ops_test.h"

enum { BATCH = 2 };

static uint32_t rng = 99;
static float rnd(void) {
  rng = rng * 1664525u + 1013904223u;
  return (float)((rng >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static int rnd_const(ir_graph *g, const char *name, int rank, const int64_t *dims) {
  ir_shape s = t_shape(rank, dims);
  const int64_t count = ir_shape_numel(&s, 1);
  float *data = malloc((size_t)count * sizeof(float));
  for (int64_t i = 0; i < count; i++) data[i] = rnd();
  const int v = t_const(g, name, INFERD_TYPE_FP32, rank, dims, data);
  free(data);
  return v;
}

/* The model, written to `path`; `stop` 0: whole, 1: ending at the Relu,
 * 2: ending at the Flatten. */
static void write_model(const char *path, int stop) {
  rng = 99;
  ir_graph *g = t_graph(13);
  const int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 3, 6, 6));
  const int c1 = t_node(g, IR_OP_Conv, "conv1", INS(x, rnd_const(g, "w1", DIMS(4, 3, 3, 3)), rnd_const(g, "b1", DIMS(4))), 1);
  t_attr_ints(g, c1, "pads", 4, (int64_t[]){1, 1, 1, 1});
  const int r1 = t_node(g, IR_OP_Relu, "relu1", INS(t_out(g, c1, 0)), 1);
  const int c2 = t_node(g, IR_OP_Conv, "conv2", INS(t_out(g, r1, 0), rnd_const(g, "w2", DIMS(4, 4, 3, 3))), 1);
  const int fl = t_node(g, IR_OP_Flatten, "flat", INS(t_out(g, c2, 0)), 1);
  const int gm = t_node(g, IR_OP_Gemm, "fc", INS(t_out(g, fl, 0), rnd_const(g, "w3", DIMS(5, 64)), rnd_const(g, "b3", DIMS(5))), 1);
  t_attr_int(g, gm, "transB", 1);
  ir_graph_add_output(g, stop == 1 ? t_out(g, r1, 0) : stop == 2 ? t_out(g, fl, 0) : t_out(g, gm, 0));
  assert_null(ir_infer_shapes(g));
  ir_graph_update_uses(g);
  assert_null(onnx_export_file(g, path));
  ir_graph_delete(g);
}

/* Runs the plan at BATCH on `input`, every output into outs[k] (malloc'd). */
static int run_all(const char *path, const char *backend, bool calibration, const float *input, float **outs,
                   size_t *counts, const char **names) {
  inferd_plan *plan;
  const inferd_plan_options o = {.backend = backend, .max_batch_size = BATCH, .threads = 1,
                                 .calibration_outputs = calibration};
  assert_null(inferd_plan_load(path, &o, &plan));
  assert_true(inferd_plan_has_dynamic_batch(plan));
  inferd_context *ctx;
  assert_null(inferd_context_create(plan, NULL, &ctx));
  const int n = inferd_plan_output_count(plan);
  inferd_tensor in = {.name = "x", .datatype = INFERD_TYPE_FP32, .rank = 4, .dims = {BATCH, 3, 6, 6},
                      .data = (void *)input, .byte_size = BATCH * 3 * 36 * sizeof(float)};
  inferd_tensor ot[8];
  for (int k = 0; k < n; k++) {
    inferd_tensor_info info;
    assert_null(inferd_plan_output(plan, k, &info));
    size_t c = 1;
    for (int d = 0; d < info.rank; d++) c *= (size_t)(info.dims[d] < 0 ? BATCH : info.dims[d]);
    counts[k] = c;
    outs[k] = calloc(c, sizeof(float));
    names[k] = strdup(info.name);
    ot[k] = (inferd_tensor){.name = info.name, .data = outs[k], .byte_size = c * sizeof(float)};
  }
  inferd_error *e = inferd_context_run(ctx, BATCH, &in, 1, ot, n);
  if (e) {
    fprintf(stderr, "%s: %s\n", backend, inferd_error_message(e));
    fail();
  }
  inferd_context_delete(ctx);
  inferd_plan_delete(plan);
  return n;
}

static void same(const float *a, const float *b, size_t n, const char *what) {
  for (size_t i = 0; i < n; i++)
    if (!(fabsf(a[i] - b[i]) <= 1e-4f + 1e-4f * fabsf(b[i]))) {
      fprintf(stderr, "%s: element %zu: %.9g, want %.9g\n", what, i, a[i], b[i]);
      fail();
    }
}

static void test_calibration_outputs(void **state) {
  (void)state;
  char dir[] = "/tmp/inferd_calout_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char whole[4200], to_relu[4200], to_flat[4200];
  snprintf(whole, sizeof(whole), "%s/whole.onnx", dir);
  snprintf(to_relu, sizeof(to_relu), "%s/relu.onnx", dir);
  snprintf(to_flat, sizeof(to_flat), "%s/flat.onnx", dir);
  write_model(whole, 0);
  write_model(to_relu, 1);
  write_model(to_flat, 2);
  float input[BATCH * 3 * 36];
  for (size_t i = 0; i < sizeof(input) / sizeof(input[0]); i++) input[i] = rnd() * 2;
  const char *backends[] = {"cpu", "ref"};
  for (int b = 0; b < 2; b++) {
    float *outs[8], *plain[8], *relu[8], *flat[8];
    size_t counts[8], c_plain[8], c_relu[8], c_flat[8];
    const char *names[8], *n_plain[8], *n_relu[8], *n_flat[8];
    const int n = run_all(whole, backends[b], true, input, outs, counts, names);
    assert_int_equal(n, 3);
    assert_int_equal(run_all(whole, backends[b], false, input, plain, c_plain, n_plain), 1);
    assert_int_equal(run_all(to_relu, backends[b], false, input, relu, c_relu, n_relu), 1);
    assert_int_equal(run_all(to_flat, backends[b], false, input, flat, c_flat, n_flat), 1);
    /* The model's own output first and unchanged; then the activations in
     * the order of the nodes that read them. */
    assert_string_equal(names[0], n_plain[0]);
    same(outs[0], plain[0], counts[0], "the model's output");
    assert_int_equal(counts[1], c_relu[0]);
    same(outs[1], relu[0], counts[1], "the second convolution's input");
    assert_int_equal(counts[2], c_flat[0]);
    same(outs[2], flat[0], counts[2], "the product's input");
    assert_string_not_equal(names[1], "x");
    for (int k = 0; k < n; k++) free(outs[k]), free((void *)names[k]);
    free(plain[0]), free(relu[0]), free(flat[0]);
    free((void *)n_plain[0]), free((void *)n_relu[0]), free((void *)n_flat[0]);
  }
  unlink(whole);
  unlink(to_relu);
  unlink(to_flat);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_calibration_outputs)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
