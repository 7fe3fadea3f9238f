/*
 * ResNet-50 v1.5 as torchvision defines it, built node by node with the
 * names torch.onnx gives a torchvision export ("/layer1/layer1.0/conv1/Conv",
 * weights "layer1.0.conv1.weight"), except that BatchNormalization stays a
 * node of its own (an eval-mode export folds it into the convolution; the
 * optimizer's job here).
 *
 * Weights: convolutions use He-uniform initialization (variance 2/fan_in),
 * made zero-sum per filter (see zero_sum_rows), and the classifier
 * U(+-8/sqrt(fan_in)), also zero-sum per class. Random
 * BatchNormalization statistics would leave each channel with a bias that
 * comes from the weights, not the input, and after 16 blocks those biases
 * decide the logits: every input gets the same class. So the builder tracks
 * an estimate of each channel's mean and variance through the network
 * (input ~ N(0,1) as a normalized image; convolutions and sums propagate
 * mean and variance assuming independent terms; ReLU of a Gaussian in closed
 * form) and gives each BatchNormalization the statistics of its input, as
 * training would have: its output is then about N(beta, gamma^2) per channel,
 * as in a trained network. (The estimates ignore correlations; measured with
 * ONNX Runtime, the true standard deviations drift to about 2x the estimate
 * by the last stage, which keeps activations within single digits.) gamma is around 1, except on the last
 * BatchNormalization of each residual branch, where it is around 0.25, so
 * each block adds a fraction to the identity path (16 blocks would otherwise
 * grow activations 2^16-fold). The classifier's bias cancels the estimated
 * mean of its input, so logits are centered and differ from input to input.
 * All of it comes from splitmix64 seeded with the caller's seed, so a seed
 * always gives the same file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "engine/zoo/zoo.h"

/* Estimated per-channel mean and variance of an activation. */
typedef struct chan_stats {
  int channels;
  float *mean, *var;
} chan_stats;

typedef struct builder {
  ir_graph *g;
  uint64_t rng;
  inferd_error *err; /* first failure; later steps do nothing */
  mem_pool *scratch;  /* the statistics, freed after the build */
  chan_stats **stats; /* by value id; pointers, so they survive the array's growth */
  size_t cap_stats;
} builder;

static chan_stats *stats_of(builder *b, int value) { return b->stats[value]; }

static chan_stats *stats_new(builder *b, int value, int channels) {
  MEM_GROW(b->stats, b->cap_stats, (size_t)value + 1);
  chan_stats *s = b->stats[value] = mem_pool_alloc(b->scratch, sizeof(chan_stats));
  s->channels = channels;
  s->mean = mem_pool_alloc(b->scratch, (size_t)channels * sizeof(float));
  s->var = mem_pool_alloc(b->scratch, (size_t)channels * sizeof(float));
  return s;
}

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static float uniform(builder *b, float lo, float hi) {
  float unit = (float)(splitmix64(&b->rng) >> 40) * (1.0f / 16777216.0f);
  return lo + (hi - lo) * unit;
}

/* A new FP32 constant filled with U(lo, hi); -1 after a failure. */
static int weight(builder *b, const char *name, int rank, const int64_t *dims, float lo, float hi, float **out) {
  *out = NULL;
  if (b->err) return -1;
  ir_shape shape = {.rank = rank};
  for (int i = 0; i < rank; i++) shape.dims[i] = dims[i];
  void *data;
  int id;
  b->err = ir_graph_add_const_alloc(b->g, name, INFERD_TYPE_FP32, &shape, &data, &id);
  if (b->err) return -1;
  float *w = data;
  for (int64_t i = 0, n = ir_shape_numel(&shape, 1); i < n; i++) w[i] = uniform(b, lo, hi);
  *out = w;
  return id;
}

/* Makes each row of a [rows, n] matrix sum to zero, so that a bias common
 * to all input channels (post-ReLU activations are all positive) cancels
 * instead of becoming a per-channel offset that no input changes. */
static void zero_sum_rows(float *w, int rows, int n) {
  for (int r = 0; r < rows; r++) {
    float *row = w + (size_t)r * (size_t)n;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += row[i];
    float mean = (float)(sum / n);
    for (int i = 0; i < n; i++) row[i] -= mean;
  }
}

static int add_node(builder *b, ir_op op, const char *scope, int n_inputs, const int *inputs) {
  char name[160], out_name[192];
  snprintf(name, sizeof(name), "%s/%s", scope, ir_op_name(op));
  snprintf(out_name, sizeof(out_name), "%s_output_0", name);
  int out = ir_graph_add_value(b->g, out_name, INFERD_TYPE_FP32);
  ir_graph_add_node(b->g, op, name, n_inputs, inputs, 1, &out);
  return out;
}

static void attr_ints(builder *b, const char *name, int n, int64_t a, int64_t c) {
  int64_t values[4] = {a, c, a, c};
  ir_attr *attr = ir_node_add_attr(b->g, b->g->n_nodes - 1, name, IR_ATTR_INTS);
  attr->n = n;
  attr->ints = mem_pool_memdup(b->g->pool, values, (size_t)n * sizeof(int64_t));
}

static void attr_int(builder *b, const char *name, int64_t v) {
  ir_node_add_attr(b->g, b->g->n_nodes - 1, name, IR_ATTR_INT)->i = v;
}

static void attr_float(builder *b, const char *name, float v) {
  ir_node_add_attr(b->g, b->g->n_nodes - 1, name, IR_ATTR_FLOAT)->f = v;
}

/* Convolution without bias, as every ResNet convolution is. */
static int conv(builder *b, const char *scope, const char *module, int x, int cin, int cout, int k, int stride) {
  char wname[128];
  snprintf(wname, sizeof(wname), "%s.weight", module);
  float bound = sqrtf(6.0f / (float)(cin * k * k));
  float *wd;
  int w = weight(b, wname, 4, (const int64_t[]){cout, cin, k, k}, -bound, bound, &wd);
  if (b->err) return -1;
  zero_sum_rows(wd, cout, cin * k * k);
  int out = add_node(b, IR_OP_Conv, scope, 2, (const int[]){x, w});
  const chan_stats *in = stats_of(b, x);
  chan_stats *st = stats_new(b, out, cout);
  for (int o = 0; o < cout; o++) {
    double mean = 0, var = 0;
    for (int i = 0; i < cin; i++) {
      double sum = 0, sum2 = 0;
      for (int t = 0; t < k * k; t++) {
        float v = wd[((size_t)o * (size_t)cin + (size_t)i) * (size_t)(k * k) + (size_t)t];
        sum += v;
        sum2 += (double)v * v;
      }
      mean += sum * in->mean[i];
      var += sum2 * in->var[i];
    }
    st->mean[o] = (float)mean;
    st->var[o] = (float)var;
  }
  attr_ints(b, "dilations", 2, 1, 1);
  attr_int(b, "group", 1);
  attr_ints(b, "kernel_shape", 2, k, k);
  attr_ints(b, "pads", 4, k / 2, k / 2);
  attr_ints(b, "strides", 2, stride, stride);
  return out;
}

static int batchnorm(builder *b, const char *scope, const char *module, int x, int c, float gamma) {
  static const char *const params[] = {"weight", "bias", "running_mean", "running_var"};
  const float lo[] = {gamma * 0.8f, -0.1f, 0, 0};
  const float hi[] = {gamma * 1.2f, 0.1f, 0, 0};
  int inputs[5] = {x};
  float *p[4];
  for (int i = 0; i < 4; i++) {
    char name[128];
    snprintf(name, sizeof(name), "%s.%s", module, params[i]);
    inputs[i + 1] = weight(b, name, 1, (const int64_t[]){c}, lo[i], hi[i], &p[i]);
  }
  if (b->err) return -1;
  const chan_stats *in = stats_of(b, x);
  for (int i = 0; i < c; i++) {
    p[2][i] = in->mean[i];
    p[3][i] = fmaxf(in->var[i], 1e-4f);
  }
  int out = add_node(b, IR_OP_BatchNormalization, scope, 5, inputs);
  attr_float(b, "epsilon", 1e-5f);
  attr_float(b, "momentum", 0.9f);
  chan_stats *st = stats_new(b, out, c);
  for (int i = 0; i < c; i++) {
    st->mean[i] = p[1][i];
    st->var[i] = p[0][i] * p[0][i];
  }
  return out;
}

/* max(0, X) for X ~ N(m, s^2): mean m*Phi(m/s) + s*phi(m/s), second moment
 * (m^2 + s^2)*Phi(m/s) + m*s*phi(m/s). */
static int relu(builder *b, const char *scope, int x) {
  if (b->err) return -1;
  int out = add_node(b, IR_OP_Relu, scope, 1, &x);
  const chan_stats *in = stats_of(b, x);
  chan_stats *st = stats_new(b, out, in->channels);
  for (int i = 0; i < in->channels; i++) {
    double m = in->mean[i], s = sqrt(fmax(in->var[i], 1e-12)), z = m / s;
    double cdf = 0.5 * erfc(-z / sqrt(2.0)), pdf = exp(-0.5 * z * z) / sqrt(2.0 * M_PI);
    double mean = m * cdf + s * pdf, second = (m * m + s * s) * cdf + m * s * pdf;
    st->mean[i] = (float)mean;
    st->var[i] = (float)fmax(second - mean * mean, 1e-12);
  }
  return out;
}

/* conv + BN for one (scope, module) pair: ".../convK/Conv" and ".../bnK/..." */
static int conv_bn(builder *b, const char *block_scope, const char *block_module, int index, int x, int cin,
                   int cout, int k, int stride, float gamma) {
  char scope[128], module[128];
  snprintf(scope, sizeof(scope), "%s/conv%d", block_scope, index);
  snprintf(module, sizeof(module), "%s.conv%d", block_module, index);
  x = conv(b, scope, module, x, cin, cout, k, stride);
  snprintf(scope, sizeof(scope), "%s/bn%d", block_scope, index);
  snprintf(module, sizeof(module), "%s.bn%d", block_module, index);
  return batchnorm(b, scope, module, x, cout, gamma);
}

/* torchvision's Bottleneck: 1x1 reduce, 3x3 (with the stride, v1.5), 1x1
 * expand by 4, plus the identity or a 1x1 downsample. */
static int bottleneck(builder *b, int layer, int index, int x, int cin, int width, int stride) {
  char scope[64], module[64], name[128], mod[128];
  snprintf(scope, sizeof(scope), "/layer%d/layer%d.%d", layer, layer, index);
  snprintf(module, sizeof(module), "layer%d.%d", layer, index);
  int cout = width * 4;
  char relu_scope[96];
  int y = conv_bn(b, scope, module, 1, x, cin, width, 1, 1, 1.0f);
  snprintf(relu_scope, sizeof(relu_scope), "%s/relu", scope);
  y = relu(b, relu_scope, y);
  y = conv_bn(b, scope, module, 2, y, width, width, 3, stride, 1.0f);
  snprintf(relu_scope, sizeof(relu_scope), "%s/relu_1", scope);
  y = relu(b, relu_scope, y);
  y = conv_bn(b, scope, module, 3, y, width, cout, 1, 1, 0.25f);
  int identity = x;
  if (index == 0) {
    snprintf(name, sizeof(name), "%s/downsample/downsample.0", scope);
    snprintf(mod, sizeof(mod), "%s.downsample.0", module);
    identity = conv(b, name, mod, x, cin, cout, 1, stride);
    snprintf(name, sizeof(name), "%s/downsample/downsample.1", scope);
    snprintf(mod, sizeof(mod), "%s.downsample.1", module);
    identity = batchnorm(b, name, mod, identity, cout, 1.0f);
  }
  if (b->err) return -1;
  int sum = add_node(b, IR_OP_Add, scope, 2, (const int[]){y, identity});
  const chan_stats *sy = stats_of(b, y), *si = stats_of(b, identity);
  chan_stats *st = stats_new(b, sum, cout);
  for (int c = 0; c < cout; c++) {
    st->mean[c] = sy->mean[c] + si->mean[c];
    st->var[c] = sy->var[c] + si->var[c];
  }
  snprintf(relu_scope, sizeof(relu_scope), "%s/relu_2", scope);
  return relu(b, relu_scope, sum);
}

static int head(builder *b, int x) {
  if (b->err) return -1;
  const chan_stats *features = stats_of(b, x); /* pooling keeps the means */
  x = add_node(b, IR_OP_GlobalAveragePool, "/avgpool", 1, &x);
  x = add_node(b, IR_OP_Flatten, "", 1, &x);
  attr_int(b, "axis", 1);
  /* 8 times torch's default scale, so logits spread over a few units as a
   * trained classifier's do. */
  float bound = 8.0f / sqrtf(2048.0f);
  float *w, *bias;
  int wid = weight(b, "fc.weight", 2, (const int64_t[]){1000, 2048}, -bound, bound, &w);
  int bid = weight(b, "fc.bias", 1, (const int64_t[]){1000}, -0.01f, 0.01f, &bias);
  if (b->err) return -1;
  zero_sum_rows(w, 1000, 2048);
  for (int k = 0; k < 1000; k++) {
    double centered = 0;
    for (int j = 0; j < 2048; j++) centered += (double)w[(size_t)k * 2048 + (size_t)j] * features->mean[j];
    bias[k] -= (float)centered;
  }
  /* The classifier's output is the graph output, named as torchvision's
   * export names it. */
  int out = ir_graph_add_value(b->g, "output", INFERD_TYPE_FP32);
  ir_graph_add_node(b->g, IR_OP_Gemm, "/fc/Gemm", 3, (const int[]){x, wid, bid}, 1, &out);
  attr_float(b, "alpha", 1.0f);
  attr_float(b, "beta", 1.0f);
  attr_int(b, "transB", 1);
  return out;
}

inferd_error *zoo_resnet50_build(uint64_t seed, ir_graph **graph) {
  builder b = {.g = ir_graph_new(), .rng = seed, .scratch = mem_pool_new()};
  ir_graph *g = b.g;
  g->name = mem_pool_strdup(g->pool, "resnet50");
  g->opset = 13;
  int x = ir_graph_add_value(g, "input", INFERD_TYPE_FP32);
  g->values[x].has_shape = true;
  g->values[x].shape = (ir_shape){.rank = 4, .dims = {IR_DIM_BATCH, 3, 224, 224}};
  ir_graph_add_input(g, x);
  chan_stats *image = stats_new(&b, x, 3);
  for (int c = 0; c < 3; c++) image->mean[c] = 0, image->var[c] = 1;

  x = conv(&b, "/conv1", "conv1", x, 3, 64, 7, 2);
  x = batchnorm(&b, "/bn1", "bn1", x, 64, 1.0f);
  x = relu(&b, "/relu", x);
  if (!b.err) {
    int before = x;
    x = add_node(&b, IR_OP_MaxPool, "/maxpool", 1, &x);
    /* The max of 9 correlated neighbours: a rough estimate, measured
     * against ONNX Runtime (the zero-sum filters cancel most of the error
     * in the mean). */
    const chan_stats *in = stats_of(&b, before);
    chan_stats *st = stats_new(&b, x, 64);
    for (int c = 0; c < 64; c++) {
      st->mean[c] = in->mean[c] + sqrtf(in->var[c]);
      st->var[c] = in->var[c];
    }
    attr_int(&b, "ceil_mode", 0);
    attr_ints(&b, "kernel_shape", 2, 3, 3);
    attr_ints(&b, "pads", 4, 1, 1);
    attr_ints(&b, "strides", 2, 2, 2);
  }
  static const int blocks[4] = {3, 4, 6, 3};
  int cin = 64;
  for (int layer = 0; layer < 4; layer++) {
    int width = 64 << layer;
    for (int i = 0; i < blocks[layer]; i++) {
      x = bottleneck(&b, layer + 1, i, x, cin, width, i == 0 && layer > 0 ? 2 : 1);
      cin = width * 4;
    }
  }
  x = head(&b, x);
  mem_pool_delete(b.scratch);
  free(b.stats);
  if (b.err) {
    ir_graph_delete(g);
    return b.err;
  }
  g->values[x].has_shape = true;
  g->values[x].shape = (ir_shape){.rank = 2, .dims = {IR_DIM_BATCH, 1000}};
  ir_graph_add_output(g, x);
  ir_graph_update_uses(g);
  *graph = g;
  return NULL;
}
