/*
 * Conv: N-d convolution with groups, dilations, strides, explicit or
 * automatic (SAME_*, VALID) padding. FP32, one to three spatial dims.
 *
 * The reference kernel is a direct convolution ordered so that the innermost
 * loop runs along one output row with a unit-stride read of the input when
 * the stride is 1, which compilers vectorize; that keeps ResNet-50 at batch 1
 * to a few seconds without anything cleverer.
 */
#include <inttypes.h>
#include <string.h>

#include "engine/ops/op_util.h"

enum { CONV_MAX_SPATIAL = 3 };

inferd_error *op_infer_Conv(ir_graph *g, int node) {
  ir_node *n = &g->nodes[node];
  const ir_value *x = ops_input(g, n, 0), *w = ops_input(g, n, 1), *b = ops_input(g, n, 2);
  static const inferd_datatype fp32[] = {INFERD_TYPE_FP32};
  ERR_TRY(ops_check_dtype(g, n, 0, fp32, 1));
  ERR_TRY(ops_check_same_dtype(g, n, 0, 1));
  ERR_TRY(ops_check_same_dtype(g, n, 0, 2));
  int rank = x->shape.rank, nspatial = rank - 2;
  char sx[160], sw[160];
  if (nspatial < 1 || nspatial > CONV_MAX_SPATIAL)
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "input %s must have 1 to %d spatial dimensions",
                         ir_shape_str(&x->shape, sx, sizeof(sx)), CONV_MAX_SPATIAL);
  if (w->shape.rank != rank)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "weight %s and input %s differ in rank",
                         ir_shape_str(&w->shape, sw, sizeof(sw)), ir_shape_str(&x->shape, sx, sizeof(sx)));
  if (!ir_shape_is_static(&w->shape))
    return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED, "weight shape must not depend on the batch size");
  for (int d = 1; d < rank; d++)
    if (x->shape.dims[d] < 0)
      return ir_node_error(g, n, INFERD_ERROR_UNSUPPORTED,
                           "input %s: only the first dimension may depend on the batch size",
                           ir_shape_str(&x->shape, sx, sizeof(sx)));
  int64_t group = ir_node_attr_int(n, "group", 1);
  int64_t channels = x->shape.dims[1], out_channels = w->shape.dims[0];
  if (group < 1 || (channels > 0 && group > channels) || channels % group != 0 || out_channels % group != 0)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG,
                         "group %" PRId64 " must be positive and divide the input channels (%" PRId64
                         ") and output channels (%" PRId64 ")",
                         group, channels, out_channels);
  if (w->shape.dims[1] * group != channels)
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG,
                         "input has %" PRId64 " channels but weight %s with group %" PRId64 " expects %" PRId64,
                         channels, ir_shape_str(&w->shape, sw, sizeof(sw)), group, w->shape.dims[1] * group);
  int64_t kernel_attr[CONV_MAX_SPATIAL];
  if (ir_node_attr(n, "kernel_shape")) {
    ERR_TRY(ops_attr_ints(g, n, "kernel_shape", nspatial, 0, kernel_attr));
    for (int i = 0; i < nspatial; i++)
      if (kernel_attr[i] != w->shape.dims[2 + i])
        return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "kernel_shape does not match weight %s",
                             ir_shape_str(&w->shape, sw, sizeof(sw)));
  }
  if (b && (b->shape.rank != 1 || b->shape.dims[0] != out_channels))
    return ir_node_error(g, n, INFERD_ERROR_INVALID_ARG, "bias %s must be [%" PRId64 "]",
                         ir_shape_str(&b->shape, sx, sizeof(sx)), out_channels);
  ops_window win;
  ERR_TRY(ops_window_init(g, n, nspatial, &x->shape.dims[2], &w->shape.dims[2], false, &win));
  ir_shape out = {.rank = rank};
  out.dims[0] = x->shape.dims[0];
  out.dims[1] = out_channels;
  for (int i = 0; i < nspatial; i++) out.dims[2 + i] = win.out[i];
  ops_set_output(g, n, 0, INFERD_TYPE_FP32, &out);
  return NULL;
}

/* Adds weight * (one input channel, one kernel tap) into an output plane. */
static void conv_accumulate_tap(const ops_window3 *c, const float *x, float *o, float wv, int64_t kd, int64_t kh,
                                int64_t kw) {
  int64_t lo[3], hi[3], off[3];
  int64_t kk[3] = {kd, kh, kw};
  for (int i = 0; i < 3; i++) {
    off[i] = kk[i] * c->d[i] - c->p[i];
    ops_valid_range(off[i], c->s[i], c->in[i], c->out[i], &lo[i], &hi[i]);
  }
  /* A full-width unit-stride row whose neighbours are also consecutive in
   * the input (1x1 kernels, unpadded stride-1 taps): the rows merge into one
   * long run, which matters for the many 1x1 convolutions of ResNets. */
  if (c->s[2] == 1 && off[2] == 0 && c->in[2] == c->out[2] && c->s[1] == 1 && lo[0] < hi[0]) {
    int64_t run = (hi[1] - lo[1]) * c->out[2];
    for (int64_t od = lo[0]; od < hi[0]; od++) {
      int64_t id = od * c->s[0] + off[0];
      const float *src = x + (id * c->in[1] + lo[1] + off[1]) * c->in[2];
      float *dst = o + (od * c->out[1] + lo[1]) * c->out[2];
      for (int64_t i = 0; i < run; i++) dst[i] += wv * src[i];
    }
    return;
  }
  for (int64_t od = lo[0]; od < hi[0]; od++) {
    int64_t id = od * c->s[0] + off[0];
    for (int64_t oh = lo[1]; oh < hi[1]; oh++) {
      int64_t ih = oh * c->s[1] + off[1];
      const float *row = x + (id * c->in[1] + ih) * c->in[2];
      float *orow = o + (od * c->out[1] + oh) * c->out[2];
      if (c->s[2] == 1) {
        const float *src = row + lo[2] + off[2];
        float *dst = orow + lo[2];
        for (int64_t i = 0; i < hi[2] - lo[2]; i++) dst[i] += wv * src[i];
      } else {
        int64_t sw = c->s[2];
        for (int64_t ow = lo[2]; ow < hi[2]; ow++) orow[ow] += wv * row[ow * sw + off[2]];
      }
    }
  }
}

inferd_error *op_ref_Conv(const ir_graph *g, const ir_node *n, const ir_tensor *in, ir_tensor *out) {
  const ir_tensor *x = &in[0], *w = &in[1];
  int nspatial = x->rank - 2;
  ops_window win;
  ERR_TRY(ops_window_init(g, n, nspatial, &x->dims[2], &w->dims[2], false, &win));
  ops_window3 c;
  ops_window_pad3(&win, &c);
  int64_t group = ir_node_attr_int(n, "group", 1);
  int64_t batch = x->dims[0], channels = x->dims[1], out_channels = w->dims[0];
  int64_t cg = channels / group, mg = out_channels / group;
  int64_t in_plane = c.in[0] * c.in[1] * c.in[2], out_plane = c.out[0] * c.out[1] * c.out[2];
  int64_t taps = c.k[0] * c.k[1] * c.k[2];
  const float *xd = x->data, *wd = w->data, *bd = ops_in_data(n, in, 2);
  float *od = out[0].data;
  for (int64_t nb = 0; nb < batch; nb++) {
    for (int64_t oc = 0; oc < out_channels; oc++) {
      float *o = od + (nb * out_channels + oc) * out_plane;
      float bias = bd ? bd[oc] : 0.0f;
      for (int64_t i = 0; i < out_plane; i++) o[i] = bias;
      int64_t gi = oc / mg;
      for (int64_t ci = 0; ci < cg; ci++) {
        const float *xc = xd + (nb * channels + gi * cg + ci) * in_plane;
        const float *wt = wd + (oc * cg + ci) * taps;
        for (int64_t kd = 0; kd < c.k[0]; kd++)
          for (int64_t kh = 0; kh < c.k[1]; kh++)
            for (int64_t kw = 0; kw < c.k[2]; kw++) {
              float wv = wt[(kd * c.k[1] + kh) * c.k[2] + kw];
              conv_accumulate_tap(&c, xc, o, wv, kd, kh, kw);
            }
      }
    }
  }
  return NULL;
}
