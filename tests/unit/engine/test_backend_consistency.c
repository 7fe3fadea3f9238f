/*
 * Backend consistency, in the manner of ggml's test-backend-ops: small
 * graphs covering each op family are written as ONNX models, loaded through
 * the public API on the cpu (oneDNN) backend and on the reference backend,
 * and run at a dynamic batch of 3 on the same pseudo-random data; the outputs
 * must agree. The optimizer runs as it does in production, so fused forms
 * (BatchNormalization folded into Conv, activations and residual sums as
 * post-ops) are checked too. Where a GPU is present the cuda backend runs
 * every case as well, against the reference with tolerances for TF32 (its
 * default precision for fp32 models); without one those runs are skipped
 * with a message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "engine/onnx/onnx.h"
#include "unit/engine/ops_test.h"

enum { BATCH = 3 };

static uint32_t rng_state = 12345;
static float rnd(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return (float)((rng_state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static int rnd_const(ir_graph *g, const char *name, int rank, const int64_t *dims) {
  ir_shape s = t_shape(rank, dims);
  int64_t count = ir_shape_numel(&s, 1);
  float *data = malloc((size_t)count * sizeof(float));
  for (int64_t i = 0; i < count; i++) data[i] = rnd();
  int v = t_const(g, name, INFERD_TYPE_FP32, rank, dims, data);
  free(data);
  return v;
}

/* Positive values, for variances. */
static int rnd_positive(ir_graph *g, const char *name, int64_t n) {
  float *data = malloc((size_t)n * sizeof(float));
  for (int64_t i = 0; i < n; i++) data[i] = 0.5f + rnd() * rnd();
  int v = t_const(g, name, INFERD_TYPE_FP32, 1, (int64_t[]){n}, data);
  free(data);
  return v;
}

/* Runs the model on `backend` and returns output 0 (malloc'd). */
static float *run_model(const char *path, const char *backend, const float *input, size_t in_count, size_t *out_count) {
  inferd_plan *plan;
  inferd_plan_options o = {.backend = backend, .max_batch_size = BATCH, .threads = 1};
  inferd_error *e = inferd_plan_load(path, &o, &plan);
  if (e) {
    fprintf(stderr, "%s: %s\n", backend, inferd_error_message(e));
    fail();
  }
  assert_true(inferd_plan_has_dynamic_batch(plan));
  inferd_context *ctx;
  assert_null(inferd_context_create(plan, NULL, &ctx));
  inferd_tensor_info in_info, out_info;
  assert_null(inferd_plan_input(plan, 0, &in_info));
  assert_null(inferd_plan_output(plan, 0, &out_info));
  inferd_tensor in = {.name = in_info.name,
                      .datatype = in_info.datatype,
                      .rank = in_info.rank,
                      .data = (void *)input,
                      .byte_size = in_count * sizeof(float)};
  memcpy(in.dims, in_info.dims, sizeof(in.dims));
  in.dims[0] = BATCH;
  size_t n = 1;
  for (int d = 0; d < out_info.rank; d++) n *= (size_t)(out_info.dims[d] < 0 ? BATCH : out_info.dims[d]);
  float *out = calloc(n, sizeof(float));
  inferd_tensor ot = {.name = out_info.name, .data = out, .byte_size = n * sizeof(float)};
  e = inferd_context_run(ctx, BATCH, &in, 1, &ot, 1);
  if (e) {
    fprintf(stderr, "%s: %s\n", backend, inferd_error_message(e));
    fail();
  }
  inferd_context_delete(ctx);
  inferd_plan_delete(plan);
  *out_count = n;
  return out;
}

/* Whether the cuda backend can run here; says once when it cannot. */
static bool cuda_present(void) {
  static int present = -1;
  if (present < 0) {
    present = inferd_device_count(INFERD_DEVICE_CUDA) > 0;
    if (!present) fprintf(stderr, "no CUDA device: the cuda backend's runs are skipped\n");
  }
  return present;
}

/* Element by element within abs + rel * |ref|. */
static void compare(const char *what, const char *backend, const float *got, const float *ref, size_t n, float abs,
                    float rel) {
  for (size_t i = 0; i < n; i++) {
    if (!(fabsf(got[i] - ref[i]) <= abs + rel * fabsf(ref[i]))) {
      fprintf(stderr, "%s: element %zu: %s %.9g, ref %.9g\n", what, i, backend, got[i], ref[i]);
      fail();
    }
  }
}

/* Exports the graph (x is its input, y its output), runs it on the
 * backends and compares each with the reference. */
static void check(ir_graph *g, int x, int y, const char *what) {
  ir_graph_add_output(g, y);
  assert_null(ir_infer_shapes(g));
  ir_graph_update_uses(g);
  char path[] = "/tmp/inferd_consistency_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_null(onnx_export_file(g, path));
  size_t count = (size_t)ir_shape_numel(&g->values[x].shape, BATCH);
  float *input = malloc(count * sizeof(float));
  for (size_t i = 0; i < count; i++) input[i] = rnd() * 2;
  size_t n_cpu, n_ref;
  float *cpu = run_model(path, "cpu", input, count, &n_cpu);
  float *ref = run_model(path, "ref", input, count, &n_ref);
  assert_int_equal(n_cpu, n_ref);
  compare(what, "cpu", cpu, ref, n_cpu, 1e-4f, 1e-4f);
  if (cuda_present()) {
    size_t n_cuda;
    float *cuda = run_model(path, "cuda", input, count, &n_cuda);
    assert_int_equal(n_cuda, n_ref);
    compare(what, "cuda", cuda, ref, n_cuda, 1e-2f, 1e-2f);
    free(cuda);
  }
  unlink(path);
  free(input);
  free(cpu);
  free(ref);
  ir_graph_delete(g);
}

static void test_conv_variants(void **state) {
  (void)state;
  struct {
    int64_t group, kernel, stride, dilation, pad;
    const char *auto_pad;
  } cases[] = {
      {1, 3, 1, 1, 1, NULL}, {2, 3, 2, 1, 0, NULL},         {4, 3, 1, 2, 2, NULL},
      {1, 1, 1, 1, 0, NULL}, {1, 3, 2, 1, 0, "SAME_UPPER"}, {1, 2, 1, 1, 0, "SAME_LOWER"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    ir_graph *g = t_graph(13);
    int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 4, 9, 7));
    int64_t k = cases[i].kernel;
    int w = rnd_const(g, "w", DIMS(8, 4 / cases[i].group, k, k));
    int b = rnd_const(g, "b", DIMS(8));
    int n = t_node(g, IR_OP_Conv, "conv", INS(x, w, b), 1);
    t_attr_int(g, n, "group", cases[i].group);
    t_attr_ints(g, n, "strides", 2, (int64_t[]){cases[i].stride, cases[i].stride});
    t_attr_ints(g, n, "dilations", 2, (int64_t[]){cases[i].dilation, cases[i].dilation});
    if (cases[i].auto_pad)
      t_attr_string(g, n, "auto_pad", cases[i].auto_pad);
    else
      t_attr_ints(g, n, "pads", 4, (int64_t[]){cases[i].pad, cases[i].pad, cases[i].pad + 1, cases[i].pad});
    check(g, x, t_out(g, n, 0), "conv");
  }
}

/* Conv -> BatchNormalization -> Relu -> Add(residual) -> Relu: the
 * optimizer folds the BN and fuses the rest into the Conv. */
static void test_conv_block_fused(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 8, 6, 6));
  int w = rnd_const(g, "w", DIMS(8, 8, 3, 3));
  int conv = t_node(g, IR_OP_Conv, "conv", INS(x, w), 1);
  t_attr_ints(g, conv, "pads", 4, (int64_t[]){1, 1, 1, 1});
  int bn = t_node(g, IR_OP_BatchNormalization, "bn",
                  INS(t_out(g, conv, 0), rnd_const(g, "s", DIMS(8)), rnd_const(g, "bb", DIMS(8)),
                      rnd_const(g, "m", DIMS(8)), rnd_positive(g, "v", 8)),
                  1);
  int relu = t_node(g, IR_OP_Relu, "relu", INS(t_out(g, bn, 0)), 1);
  int add = t_node(g, IR_OP_Add, "add", INS(t_out(g, relu, 0), x), 1);
  int clip = t_node(g, IR_OP_Clip, "relu6",
                    INS(t_out(g, add, 0), t_const(g, "lo", INFERD_TYPE_FP32, SCALAR, (float[]){0}),
                        t_const(g, "hi", INFERD_TYPE_FP32, SCALAR, (float[]){6})),
                    1);
  check(g, x, t_out(g, clip, 0), "conv block");
}

static void test_pools(void **state) {
  (void)state;
  for (int kind = 0; kind < 4; kind++) {
    ir_graph *g = t_graph(12);
    int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 3, 8, 9));
    ir_op op = kind == 0   ? IR_OP_MaxPool
               : kind == 1 ? IR_OP_AveragePool
               : kind == 2 ? IR_OP_GlobalAveragePool
                           : IR_OP_GlobalMaxPool;
    int n = t_node(g, op, "pool", INS(x), 1);
    if (kind < 2) {
      t_attr_ints(g, n, "kernel_shape", 2, (int64_t[]){3, 3});
      t_attr_ints(g, n, "strides", 2, (int64_t[]){2, 2});
      t_attr_ints(g, n, "pads", 4, (int64_t[]){1, 1, 1, 1});
      t_attr_int(g, n, "ceil_mode", 1);
    }
    check(g, x, t_out(g, n, 0), ir_op_name(op));
  }
}

/* Flatten -> Gemm (transB, bias) -> Sigmoid -> MatMul -> Softmax. */
static void test_dense_head(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 4, 2, 2));
  int flat = t_node(g, IR_OP_Flatten, "flatten", INS(x), 1);
  int gemm = t_node(g, IR_OP_Gemm, "gemm",
                    INS(t_out(g, flat, 0), rnd_const(g, "w", DIMS(10, 16)), rnd_const(g, "b", DIMS(10))), 1);
  t_attr_int(g, gemm, "transB", 1);
  t_attr_float(g, gemm, "alpha", 0.5f);
  int sig = t_node(g, IR_OP_Sigmoid, "sigmoid", INS(t_out(g, gemm, 0)), 1);
  int mm = t_node(g, IR_OP_MatMul, "matmul", INS(t_out(g, sig, 0), rnd_const(g, "w2", DIMS(10, 5))), 1);
  int sm = t_node(g, IR_OP_Softmax, "softmax", INS(t_out(g, mm, 0)), 1);
  check(g, x, t_out(g, sm, 0), "dense head");
}

/* Transpose -> batched MatMul -> ReduceMean -> Concat -> activations. */
static void test_layout_and_reductions(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 3, 4, 5));
  int tr = t_node(g, IR_OP_Transpose, "transpose", INS(x), 1);
  t_attr_ints(g, tr, "perm", 4, (int64_t[]){0, 2, 1, 3});
  int mm = t_node(g, IR_OP_MatMul, "matmul", INS(t_out(g, tr, 0), rnd_const(g, "w", DIMS(4, 5, 6))), 1);
  int rm = t_node(g, IR_OP_ReduceMean, "mean", INS(t_out(g, mm, 0)), 1);
  t_attr_ints(g, rm, "axes", 1, (int64_t[]){-2});
  int leaky = t_node(g, IR_OP_LeakyRelu, "leaky", INS(t_out(g, rm, 0)), 1);
  int hs = t_node(g, IR_OP_HardSwish, "hardswish", INS(t_out(g, rm, 0)), 1);
  int cat = t_node(g, IR_OP_Concat, "concat", INS(t_out(g, leaky, 0), t_out(g, hs, 0)), 1);
  t_attr_int(g, cat, "axis", 1);
  int tanh_node = t_node(g, IR_OP_Tanh, "tanh", INS(t_out(g, cat, 0)), 1);
  int mul = t_node(g, IR_OP_Mul, "mul", INS(t_out(g, tanh_node, 0), rnd_const(g, "scale", DIMS(1, 6))), 1);
  check(g, x, t_out(g, mul, 0), "layout and reductions");
}

/* Softmax along a middle axis (the GPU's strided kernel), then Pad in each
 * mode. */
static void test_softmax_axis_and_pads(void **state) {
  (void)state;
  const char *modes[] = {"constant", "reflect", "edge"};
  for (int m = 0; m < 3; m++) {
    ir_graph *g = t_graph(13);
    int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 3, 4, 5));
    int sm = t_node(g, IR_OP_Softmax, "softmax", INS(x), 1);
    t_attr_int(g, sm, "axis", 1);
    int pad = t_node(g, IR_OP_Pad, "pad",
                     INS(t_out(g, sm, 0), t_const_i64(g, "pads", 8, (int64_t[]){0, 0, 1, 2, 0, 1, 2, 1})), 1);
    t_attr_string(g, pad, "mode", modes[m]);
    check(g, x, t_out(g, pad, 0), modes[m]);
  }
}

/* A BatchNormalization that follows no convolution (so nothing folds it),
 * then ReduceMean over two axes without keepdims. */
static void test_batchnorm_and_reduce(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 4, 3, 5));
  int bn = t_node(g, IR_OP_BatchNormalization, "bn",
                  INS(x, rnd_const(g, "s", DIMS(4)), rnd_const(g, "bb", DIMS(4)), rnd_const(g, "m", DIMS(4)),
                      rnd_positive(g, "v", 4)),
                  1);
  int rm = t_node(g, IR_OP_ReduceMean, "mean", INS(t_out(g, bn, 0)), 1);
  t_attr_ints(g, rm, "axes", 2, (int64_t[]){1, 3});
  t_attr_int(g, rm, "keepdims", 0);
  check(g, x, t_out(g, rm, 0), "batchnorm and reduce");
}

/* 1-D convolution and pools (the GPU runs them as 2-D with H = 1), the
 * average one with ceil_mode and count_include_pad. */
static void test_1d_windows(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 4, 11));
  int conv = t_node(g, IR_OP_Conv, "conv", INS(x, rnd_const(g, "w", DIMS(6, 4, 3)), rnd_const(g, "b", DIMS(6))), 1);
  t_attr_ints(g, conv, "pads", 2, (int64_t[]){1, 1});
  int mp = t_node(g, IR_OP_MaxPool, "maxpool", INS(t_out(g, conv, 0)), 1);
  t_attr_ints(g, mp, "kernel_shape", 1, (int64_t[]){2});
  int ap = t_node(g, IR_OP_AveragePool, "avgpool", INS(t_out(g, mp, 0)), 1);
  t_attr_ints(g, ap, "kernel_shape", 1, (int64_t[]){3});
  t_attr_ints(g, ap, "strides", 1, (int64_t[]){2});
  t_attr_ints(g, ap, "pads", 2, (int64_t[]){1, 1});
  t_attr_int(g, ap, "ceil_mode", 1);
  t_attr_int(g, ap, "count_include_pad", 1);
  check(g, x, t_out(g, ap, 0), "1-D windows");
}

/* Gemm with alpha and beta: a C row with beta 1 rides in the product's
 * bias epilogue, any other is copied into y and accumulated with beta. */
static void test_gemm_alpha_beta(void **state) {
  (void)state;
  const float betas[] = {1.0f, 2.0f, 2.0f};
  for (int i = 0; i < 3; i++) {
    ir_graph *g = t_graph(13);
    int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 6));
    int c = i == 2 ? rnd_const(g, "c", DIMS(1, 1)) : rnd_const(g, "c", DIMS(1, 5));
    int gemm = t_node(g, IR_OP_Gemm, "gemm", INS(x, rnd_const(g, "w", DIMS(6, 5)), c), 1);
    t_attr_float(g, gemm, "alpha", 0.75f);
    t_attr_float(g, gemm, "beta", betas[i]);
    check(g, x, t_out(g, gemm, 0), "gemm with alpha and beta");
  }
}

/* Serializes `count` strings as a BYTES tensor (4-byte length, bytes). */
static size_t serialize(const char *const *words, size_t count, uint8_t *out) {
  size_t off = 0;
  for (size_t i = 0; i < count; i++) {
    const uint32_t len = (uint32_t)strlen(words[i]);
    memcpy(out + off, &len, 4); /* little-endian host */
    memcpy(out + off + 4, words[i], len);
    off += 4 + len;
  }
  return off;
}

/* BYTES through data-movement ops on both backends: [N,2,3] -> Transpose
 * -> [N,3,2] -> Concat with the input reshaped -> [N,12]. */
static void test_bytes_data_movement(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_BYTES, DIMS(-1, 2, 3));
  int tr = t_node(g, IR_OP_Transpose, "transpose", INS(x), 1);
  t_attr_ints(g, tr, "perm", 3, (int64_t[]){0, 2, 1});
  int shape = t_const_i64(g, "shape", 2, (int64_t[]){0, 6});
  int r1 = t_node(g, IR_OP_Reshape, "r1", INS(t_out(g, tr, 0), shape), 1);
  int r2 = t_node(g, IR_OP_Reshape, "r2", INS(x, shape), 1);
  int cat = t_node(g, IR_OP_Concat, "concat", INS(t_out(g, r1, 0), t_out(g, r2, 0)), 1);
  t_attr_int(g, cat, "axis", 1);
  ir_graph_add_output(g, t_out(g, cat, 0));
  assert_null(ir_infer_shapes(g));
  ir_graph_update_uses(g);
  char path[] = "/tmp/inferd_bytes_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_null(onnx_export_file(g, path));
  ir_graph_delete(g);
  const char *words[BATCH * 6] = {"a", "", "ccc", "dd", "e", "ffffff", "g", "hh", "", "", "k", "l",
                                  "m", "nnnn", "o", "p", "q", "rr"};
  static uint8_t in[1024];
  const size_t in_size = serialize(words, BATCH * 6, in);
  const char *backends[] = {"cpu", "ref"};
  for (int b = 0; b < 2; b++) {
    inferd_plan *plan;
    assert_null(inferd_plan_load(path, &(inferd_plan_options){.backend = backends[b], .max_batch_size = BATCH}, &plan));
    inferd_context *ctx;
    assert_null(inferd_context_create(plan, NULL, &ctx));
    inferd_tensor it = {.name = "x", .datatype = INFERD_TYPE_BYTES, .rank = 3, .dims = {BATCH, 2, 3}, .data = in,
                        .byte_size = in_size};
    inferd_tensor ot = {0};
    inferd_tensor_info oi;
    assert_null(inferd_plan_output(plan, 0, &oi));
    ot.name = oi.name;
    assert_null(inferd_context_run(ctx, BATCH, &it, 1, &ot, 1));
    assert_int_equal(ot.datatype, INFERD_TYPE_BYTES);
    assert_int_equal(ot.rank, 2);
    assert_int_equal(ot.dims[1], 12);
    const char *want[BATCH * 12];
    for (int n = 0; n < BATCH; n++)
      for (int j = 0; j < 12; j++) {
        const int k = j < 6 ? (j % 2) * 3 + j / 2 : j - 6; /* transposed, then as given */
        want[n * 12 + j] = words[n * 6 + k];
      }
    static uint8_t expect[2048];
    const size_t want_size = serialize(want, BATCH * 12, expect);
    assert_int_equal(ot.byte_size, want_size);
    assert_memory_equal(ot.data, expect, want_size);
    /* Malformed serialized data is refused with the input's name. */
    it.byte_size = in_size - 1;
    inferd_error *e = inferd_context_run(ctx, BATCH, &it, 1, &ot, 1);
    assert_non_null(e);
    assert_non_null(strstr(inferd_error_message(e), "input 'x'"));
    inferd_error_delete(e);
    it.byte_size = in_size;
    uint8_t longer[1100];
    memcpy(longer, in, in_size);
    memset(longer + in_size, 0, 4);
    it.data = longer;
    it.byte_size = in_size + 4;
    e = inferd_context_run(ctx, BATCH, &it, 1, &ot, 1);
    assert_non_null(e);
    assert_non_null(strstr(inferd_error_message(e), "after its 18 elements"));
    inferd_error_delete(e);
    inferd_context_delete(ctx);
    inferd_plan_delete(plan);
  }
  unlink(path);
}

/* inferd_context_copy_async on every backend: many copies of odd sizes and
 * alignments (the GPU's copy kernel takes 16 bytes at a time where it can)
 * gathered into one buffer and scattered back, in order with a run, all
 * done by the wait. On the CPU the copies are plain; on the GPU they go
 * between GPU and pinned memory. */
static void test_copies_async(void **state) {
  (void)state;
  ir_graph *g = ir_graph_new();
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 4));
  int r = t_node(g, IR_OP_Relu, "relu", INS(x), 1);
  ir_graph_add_output(g, t_out(g, r, 0));
  assert_null(ir_infer_shapes(g));
  ir_graph_update_uses(g);
  char path[] = "/tmp/inferd_copies_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_null(onnx_export_file(g, path));
  ir_graph_delete(g);
  enum { PIECES = 9, TOTAL = 200000 };
  const size_t sizes[PIECES] = {1, 15, 16, 17, 4095, 4097, 65536, 100003, 0};
  const char *backends[] = {"cpu", "cuda"};
  for (int b = 0; b < 2; b++) {
    if (b == 1 && !cuda_present()) continue;
    inferd_plan *plan;
    const inferd_plan_options o = {.backend = backends[b], .max_batch_size = BATCH};
    assert_null(inferd_plan_load(path, &o, &plan));
    inferd_context *ctx;
    assert_null(inferd_context_create(plan, NULL, &ctx));
    const inferd_memory_kind dev = b == 1 ? INFERD_MEMORY_GPU : INFERD_MEMORY_CPU;
    void *host, *src, *mid, *back;
    assert_null(inferd_plan_memory_alloc(plan, INFERD_MEMORY_CPU_PINNED, TOTAL, &host));
    assert_null(inferd_plan_memory_alloc(plan, dev, TOTAL, &src));
    assert_null(inferd_plan_memory_alloc(plan, dev, TOTAL, &mid));
    assert_null(inferd_plan_memory_alloc(plan, INFERD_MEMORY_CPU_PINNED, TOTAL, &back));
    for (size_t i = 0; i < TOTAL; i++) ((uint8_t *)host)[i] = (uint8_t)(i * 7 + 3);
    assert_null(inferd_plan_memory_copy(plan, src, dev, host, INFERD_MEMORY_CPU_PINNED, TOTAL));
    memset(back, 0, TOTAL);
    /* Gather pieces from scattered (odd) offsets of src into mid, packed;
     * then, after a run, scatter mid back into `back` at the same offsets. */
    inferd_copy gather[PIECES], scatter[PIECES];
    size_t at = 3, packed = 0;
    for (int i = 0; i < PIECES; i++) {
      gather[i] = (inferd_copy){.dst = (char *)mid + packed, .src = (char *)src + at, .size = sizes[i]};
      scatter[i] = (inferd_copy){.dst = (char *)back + at, .src = (char *)mid + packed, .size = sizes[i]};
      packed += sizes[i];
      at += sizes[i] + 5;
    }
    assert_true(at < TOTAL);
    assert_null(inferd_context_copy_async(ctx, gather, PIECES));
    float in[BATCH * 4], out[BATCH * 4];
    for (int i = 0; i < BATCH * 4; i++) in[i] = (float)(i - 6);
    inferd_tensor it = {.name = "x", .datatype = INFERD_TYPE_FP32, .rank = 2, .dims = {BATCH, 4}, .data = in,
                        .byte_size = sizeof(in)};
    inferd_tensor ot = {.name = "relu_out0", .data = out, .byte_size = sizeof(out)};
    inferd_tensor_info oi;
    assert_null(inferd_plan_output(plan, 0, &oi));
    ot.name = oi.name;
    assert_null(inferd_context_run_async(ctx, BATCH, &it, 1, &ot, 1));
    assert_null(inferd_context_copy_async(ctx, scatter, PIECES));
    assert_null(inferd_context_wait(ctx));
    for (int i = 0; i < BATCH * 4; i++) assert_true(out[i] == (in[i] > 0 ? in[i] : 0));
    at = 3;
    for (int i = 0; i < PIECES; i++) {
      assert_memory_equal((char *)back + at, (char *)host + at, sizes[i]);
      if (sizes[i]) assert_int_equal(((uint8_t *)back)[at + sizes[i]], 0); /* nothing past the piece */
      at += sizes[i] + 5;
    }
    /* Copies alone, with no run, are done by the wait too. */
    memset(back, 0, TOTAL);
    assert_null(inferd_context_copy_async(ctx, scatter, 1));
    assert_null(inferd_context_copy_async(ctx, scatter + 1, PIECES - 1));
    assert_null(inferd_context_wait(ctx));
    assert_memory_equal((char *)back + 3, (char *)host + 3, 1);
    assert_memory_equal((char *)back + 9, (char *)host + 9, 15);
    inferd_error *e = inferd_context_copy_async(ctx, NULL, 2); /* no table */
    assert_non_null(e);
    inferd_error_delete(e);
    inferd_plan_memory_free(plan, INFERD_MEMORY_CPU_PINNED, host);
    inferd_plan_memory_free(plan, dev, src);
    inferd_plan_memory_free(plan, dev, mid);
    inferd_plan_memory_free(plan, INFERD_MEMORY_CPU_PINNED, back);
    inferd_context_delete(ctx);
    inferd_plan_delete(plan);
  }
  unlink(path);
}

/* Threads of this process now. */
static int thread_count(void) {
  DIR *d = opendir("/proc/self/task");
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

/* Waits until the process has `want` threads (workers that were told to end
 * leave /proc a moment after); false after a minute. */
static bool wait_threads(int want) {
  for (int i = 0; i < 60000 && thread_count() != want; i++) nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
  return thread_count() == want;
}

/* What a fresh thread saw running a context, resting it and running it
 * again (cmocka's checks belong to the test's own thread). */
typedef struct idle_probe {
  inferd_context *ctx;
  inferd_tensor in, out;
  float *again;
  int base, running, running_again;
  bool ran, rested, ran_again, rested_again;
} idle_probe;

static void *idle_probe_main(void *arg) {
  idle_probe *p = arg;
  p->base = thread_count();
  inferd_error *e = inferd_context_run(p->ctx, 1, &p->in, 1, &p->out, 1);
  p->ran = !e;
  inferd_error_delete(e);
  p->running = thread_count();
  inferd_context_idle(p->ctx);
  p->rested = wait_threads(p->base);
  inferd_tensor out = p->out;
  out.data = p->again;
  e = inferd_context_run(p->ctx, 1, &p->in, 1, &out, 1);
  p->ran_again = !e;
  inferd_error_delete(e);
  p->running_again = thread_count();
  inferd_context_idle(p->ctx);
  p->rested_again = wait_threads(p->base);
  return NULL;
}

/* The CPU backend keeps OpenMP workers only on threads that run contexts:
 * building a plan leaves none behind on the loading thread, a run makes
 * them, inferd_context_idle ends them, and the next run makes them again
 * with the same answers. (libgomp makes every team sleep between kernels
 * once more workers are kept than there are CPUs.) */
static void test_cpu_thread_idle(void **state) {
  (void)state;
  ir_graph *g = t_graph(13);
  int x = t_input(g, "x", INFERD_TYPE_FP32, DIMS(-1, 32, 56, 56));
  int w = rnd_const(g, "w", DIMS(32, 32, 3, 3));
  int n = t_node(g, IR_OP_Conv, "conv", INS(x, w), 1);
  t_attr_ints(g, n, "pads", 4, (int64_t[]){1, 1, 1, 1});
  ir_graph_add_output(g, t_out(g, n, 0));
  assert_null(ir_infer_shapes(g));
  ir_graph_update_uses(g);
  char path[] = "/tmp/inferd_idle_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_null(onnx_export_file(g, path));
  ir_graph_delete(g);

  const int base = thread_count();
  inferd_plan *plan;
  const inferd_plan_options o = {.backend = "cpu", .max_batch_size = 1, .threads = 3};
  assert_null(inferd_plan_load(path, &o, &plan));
  assert_true(wait_threads(base)); /* the builder and its workers are gone */
  enum { COUNT = 32 * 56 * 56 };
  float *in = malloc(COUNT * sizeof(float)), *first = malloc(COUNT * sizeof(float)),
        *again = malloc(COUNT * sizeof(float));
  for (int i = 0; i < COUNT; i++) in[i] = rnd();
  inferd_tensor_info oi;
  assert_null(inferd_plan_output(plan, 0, &oi));
  idle_probe p = {.in = {.name = "x", .datatype = INFERD_TYPE_FP32, .rank = 4, .dims = {1, 32, 56, 56}, .data = in,
                         .byte_size = COUNT * sizeof(float)},
                  .out = {.name = oi.name, .data = first, .byte_size = COUNT * sizeof(float)},
                  .again = again};
  assert_null(inferd_context_create(plan, NULL, &p.ctx));
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, idle_probe_main, &p), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_true(p.ran && p.ran_again);
  assert_true(p.running > p.base); /* the probe led a team */
  assert_true(p.rested);           /* ... which inferd_context_idle ended */
  assert_int_equal(p.running_again, p.running);
  assert_true(p.rested_again);
  assert_memory_equal(first, again, COUNT * sizeof(float));
  inferd_context_delete(p.ctx);
  inferd_plan_delete(plan);
  free(in);
  free(first);
  free(again);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conv_variants), cmocka_unit_test(test_conv_block_fused),      cmocka_unit_test(test_pools),
      cmocka_unit_test(test_dense_head),    cmocka_unit_test(test_layout_and_reductions),
      cmocka_unit_test(test_softmax_axis_and_pads), cmocka_unit_test(test_batchnorm_and_reduce),
      cmocka_unit_test(test_1d_windows),    cmocka_unit_test(test_gemm_alpha_beta),
      cmocka_unit_test(test_bytes_data_movement), cmocka_unit_test(test_copies_async),
      cmocka_unit_test(test_cpu_thread_idle),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
