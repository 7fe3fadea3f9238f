/* bench_conv_layers: the convolution layers of a model alone, through oneDNN.
 *
 * bench/precision_cpu.sh sets the whole network next to this figure: a
 * network that spends most of its time in convolutions can at best run them
 * as fast as oneDNN does with nothing around them, so "whole network >= 80% of
 * the convolution-only figure of the same precision" measures what the rest of
 * inferd (other ops, reorders, quantization, scheduling) costs.
 *
 * What is timed is only the convolution primitives, each with the layouts it
 * asked for (format `any`), its bias and its fused ReLU: weights are reordered
 * once and no reorder runs inside the timed loop. Each layer reads what the
 * layer before it wrote, as in the network (two buffers in turn), so its
 * source is as warm in the caches as there; measured, a separate cold source
 * per layer costs about 5% on AMX. Where consecutive layers' layouts differ,
 * the bytes are simply read in the next layer's layout: the values are
 * meaningless but finite, which is all a timing needs. The first layer's
 * source is filled once. The layers come from bench/conv_layers.py, one per
 * line:
 *   name N C H W OC KH KW SH SW PT PL PB PR DH DW G relu
 *
 * usage: bench_conv_layers --layers FILE --precision fp32|bf16|int8
 *                          --threads T --duration S [--json]
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

enum precision { PRECISION_FP32, PRECISION_BF16, PRECISION_INT8 };

typedef struct {
  char name[256];
  int64_t n, c, h, w, oc, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, g;
  bool relu;
} conv_layer;

typedef struct {
  dnnl_primitive_desc_t pd;
  dnnl_primitive_t prim;
  dnnl_memory_t src, weights, bias, dst, scratch;
  const char *impl; /* owned by pd */
} conv_run;

typedef struct {
  const char *layers_path;
  enum precision precision;
  bool have_precision;
  int threads;
  double duration;
  bool json;
} options;

static const char *const precision_names[] = {"fp32", "bf16", "int8"};

/* Reports a failed oneDNN call with what was being done; false so callers
 * can `return dnnl_failed(...)`. */
static bool dnnl_failed(dnnl_status_t st, const char *what, const char *layer) {
  fprintf(stderr, "bench_conv_layers: %s%s%s failed: %s\n", layer ? layer : "", layer ? ": " : "", what,
          dnnl_status2str(st));
  return false;
}

#define DNNL_TRY(call, what, layer)                                \
  do {                                                             \
    dnnl_status_t st_ = (call);                                    \
    if (st_ != dnnl_success) return dnnl_failed(st_, what, layer); \
  } while (0)

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_conv_layers --layers FILE --precision fp32|bf16|int8 --threads T --duration S [--json]\n"
          "  FILE comes from bench/conv_layers.py (one Conv layer per line).\n");
}

static bool parse_positive(const char *flag, const char *text, double *out) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (errno || end == text || *end || !(v > 0)) {
    fprintf(stderr, "bench_conv_layers: %s wants a positive number, not '%s'\n", flag, text);
    return false;
  }
  *out = v;
  return true;
}

static bool options_parse(int argc, char **argv, options *o) {
  *o = (options){0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--json")) {
      o->json = true;
      continue;
    }
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      exit(0);
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "bench_conv_layers: %s needs a value\n", a);
      return false;
    }
    const char *v = argv[++i];
    if (!strcmp(a, "--layers")) {
      o->layers_path = v;
    } else if (!strcmp(a, "--precision")) {
      o->have_precision = false;
      for (int p = PRECISION_FP32; p <= PRECISION_INT8; p++)
        if (!strcmp(v, precision_names[p])) {
          o->precision = p;
          o->have_precision = true;
        }
      if (!o->have_precision) {
        fprintf(stderr, "bench_conv_layers: --precision is fp32, bf16 or int8, not '%s'\n", v);
        return false;
      }
    } else if (!strcmp(a, "--threads")) {
      double t;
      if (!parse_positive(a, v, &t)) return false;
      if (t != (int)t || t > 4096) {
        fprintf(stderr, "bench_conv_layers: --threads wants a whole number up to 4096, not '%s'\n", v);
        return false;
      }
      o->threads = (int)t;
    } else if (!strcmp(a, "--duration")) {
      if (!parse_positive(a, v, &o->duration)) return false;
    } else {
      fprintf(stderr, "bench_conv_layers: unknown option '%s'\n", a);
      usage(stderr);
      return false;
    }
  }
  if (!o->layers_path || !o->have_precision || !o->threads || !o->duration) {
    fprintf(stderr, "bench_conv_layers: --layers, --precision, --threads and --duration are all needed\n");
    usage(stderr);
    return false;
  }
  return true;
}

/* Reads every layer line; blank lines and '#' comments are skipped so a file
 * can be annotated by hand. */
static bool layers_read(const char *path, conv_layer **out, int *count) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "bench_conv_layers: cannot open '%s': %s\n", path, strerror(errno));
    return false;
  }
  conv_layer *layers = NULL;
  int n = 0, cap = 0, lineno = 0;
  char line[1024];
  bool ok = true;
  while (ok && fgets(line, sizeof line, f)) {
    lineno++;
    char *p = line + strspn(line, " \t\r\n");
    if (!*p || *p == '#') continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      conv_layer *grown = cap < 1 << 20 ? realloc(layers, (size_t)cap * sizeof *layers) : NULL;
      if (!grown) {
        fprintf(stderr, "bench_conv_layers: %s: too many layers\n", path);
        ok = false;
        break;
      }
      layers = grown;
    }
    conv_layer *l = &layers[n];
    int relu, end = 0;
    int got = sscanf(p,
                     "%255s %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64
                     " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64
                     " %" SCNd64 " %" SCNd64 " %d %n",
                     l->name, &l->n, &l->c, &l->h, &l->w, &l->oc, &l->kh, &l->kw, &l->sh, &l->sw, &l->pt, &l->pl,
                     &l->pb, &l->pr, &l->dh, &l->dw, &l->g, &relu, &end);
    bool sane = got == 18 && !p[end] && l->n > 0 && l->c > 0 && l->h > 0 && l->w > 0 && l->oc > 0 && l->kh > 0 &&
                l->kw > 0 && l->sh > 0 && l->sw > 0 && l->pt >= 0 && l->pl >= 0 && l->pb >= 0 && l->pr >= 0 &&
                l->dh > 0 && l->dw > 0 && l->g > 0 && l->c % l->g == 0 && l->oc % l->g == 0 &&
                (relu == 0 || relu == 1);
    if (!sane) {
      fprintf(stderr,
              "bench_conv_layers: %s:%d: not a layer line (want: name N C H W OC KH KW SH SW PT PL PB PR DH DW G "
              "relu, all positive, groups dividing C and OC)\n",
              path, lineno);
      ok = false;
      break;
    }
    l->relu = relu;
    if (n && l->n != layers[0].n) {
      fprintf(stderr, "bench_conv_layers: %s:%d: batch %" PRId64 " differs from the first layer's %" PRId64 "\n",
              path, lineno, l->n, layers[0].n);
      ok = false;
      break;
    }
    n++;
  }
  if (ok && ferror(f)) {
    fprintf(stderr, "bench_conv_layers: reading '%s' failed\n", path);
    ok = false;
  }
  fclose(f);
  if (ok && !n) {
    fprintf(stderr, "bench_conv_layers: '%s' has no layers\n", path);
    ok = false;
  }
  if (!ok) {
    free(layers);
    return false;
  }
  *out = layers;
  *count = n;
  return true;
}

/* A fixed-seed generator: every run times the same numbers. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static float rng_uniform(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (float)(rng_state >> 40) / (float)(1u << 24);
}

/* Fills `target` (any layout, any data type) with values from [lo, hi), whole
 * numbers when `whole` (rounded down, so that each is as likely). They are
 * written as plain f32 and converted by a reorder, so blocked layouts get
 * their padding zeroed the way oneDNN expects and no data type needs code of
 * its own here. */
static bool memory_fill(dnnl_engine_t engine, dnnl_stream_t stream, dnnl_memory_t target, int ndims,
                        const dnnl_dims_t dims, dnnl_format_tag_t plain_tag, float lo, float hi, bool whole,
                        const char *layer) {
  dnnl_memory_desc_t plain_md;
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&plain_md, ndims, dims, dnnl_f32, plain_tag), "plain descriptor", layer);
  dnnl_memory_t plain = NULL;
  DNNL_TRY(dnnl_memory_create(&plain, &plain_md, engine, DNNL_MEMORY_ALLOCATE), "plain memory", layer);
  float *data = NULL;
  bool ok = dnnl_memory_get_data_handle(plain, (void **)&data) == dnnl_success && data;
  size_t count = dnnl_memory_desc_get_size(&plain_md) / sizeof(float);
  for (size_t i = 0; ok && i < count; i++) {
    float v = lo + (hi - lo) * rng_uniform();
    data[i] = whole ? floorf(v) : v;
  }
  const dnnl_memory_desc_t *target_md = NULL;
  dnnl_primitive_desc_t rpd = NULL;
  dnnl_primitive_t reorder = NULL;
  dnnl_status_t st = dnnl_success;
  const char *what = "data handle";
  if (ok) {
    what = "target descriptor";
    st = dnnl_memory_get_memory_desc(target, &target_md);
  }
  if (ok && st == dnnl_success) {
    what = "reorder descriptor";
    st = dnnl_reorder_primitive_desc_create(&rpd, &plain_md, engine, target_md, engine, NULL);
  }
  if (ok && st == dnnl_success) {
    what = "reorder primitive";
    st = dnnl_primitive_create(&reorder, rpd);
  }
  if (ok && st == dnnl_success) {
    what = "reorder";
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, plain}, {DNNL_ARG_TO, target}};
    st = dnnl_primitive_execute(reorder, stream, 2, args);
    if (st == dnnl_success) st = dnnl_stream_wait(stream);
  }
  if (reorder) dnnl_primitive_destroy(reorder);
  if (rpd) dnnl_primitive_desc_destroy(rpd);
  dnnl_memory_destroy(plain);
  if (!ok) st = dnnl_runtime_error;
  return st == dnnl_success ? true : dnnl_failed(st, what, layer);
}

static size_t query_size(dnnl_primitive_desc_t pd, dnnl_query_t what) {
  const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, what, 0);
  return md ? dnnl_memory_desc_get_size(md) : 0;
}

/* Chooses the primitive for one layer: data types as oneDNN's fastest kernels
 * for each precision want them, every layout left to oneDNN, and the
 * scratchpad handed in by us so that it is one buffer shared by all layers, as
 * in the server, rather than whatever the library does per primitive. */
static bool conv_choose(dnnl_engine_t engine, enum precision prec, const conv_layer *l, conv_run *r) {
  const dnnl_data_type_t src_dt = prec == PRECISION_INT8 ? dnnl_u8 : prec == PRECISION_BF16 ? dnnl_bf16 : dnnl_f32;
  const dnnl_data_type_t w_dt = prec == PRECISION_INT8 ? dnnl_s8 : src_dt;
  const dnnl_data_type_t dst_dt = src_dt;
  const int64_t oh = (l->h + l->pt + l->pb - ((l->kh - 1) * l->dh + 1)) / l->sh + 1;
  const int64_t ow = (l->w + l->pl + l->pr - ((l->kw - 1) * l->dw + 1)) / l->sw + 1;
  if (oh <= 0 || ow <= 0) {
    fprintf(stderr, "bench_conv_layers: %s: the kernel does not fit the padded input\n", l->name);
    return false;
  }
  dnnl_memory_desc_t src_md, w_md, bias_md, dst_md;
  const dnnl_dims_t src_dims = {l->n, l->c, l->h, l->w}, dst_dims = {l->n, l->oc, oh, ow}, bias_dims = {l->oc};
  const dnnl_dims_t w_dims = {l->oc, l->c, l->kh, l->kw};
  const dnnl_dims_t gw_dims = {l->g, l->oc / l->g, l->c / l->g, l->kh, l->kw};
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&src_md, 4, src_dims, src_dt, dnnl_format_tag_any), "source descriptor",
           l->name);
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_md, l->g > 1 ? 5 : 4, l->g > 1 ? gw_dims : w_dims, w_dt,
                                        dnnl_format_tag_any),
           "weights descriptor", l->name);
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&bias_md, 1, bias_dims, dnnl_f32, dnnl_a), "bias descriptor", l->name);
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&dst_md, 4, dst_dims, dst_dt, dnnl_format_tag_any), "destination descriptor",
           l->name);
  /* oneDNN counts dilation from 0 (no gap), ONNX from 1. */
  const dnnl_dims_t strides = {l->sh, l->sw}, dilates = {l->dh - 1, l->dw - 1};
  const dnnl_dims_t pad_l = {l->pt, l->pl}, pad_r = {l->pb, l->pr};
  dnnl_convolution_desc_t cd;
  DNNL_TRY(dnnl_dilated_convolution_forward_desc_init(
               &cd, dnnl_forward_inference, prec == PRECISION_INT8 ? dnnl_convolution_direct : dnnl_convolution_auto,
               &src_md, &w_md, &bias_md, &dst_md, strides, dilates, pad_l, pad_r),
           "convolution descriptor", l->name);

  dnnl_primitive_attr_t attr = NULL;
  DNNL_TRY(dnnl_primitive_attr_create(&attr), "attributes", l->name);
  dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
  const char *what = "user scratchpad";
  float *scales = NULL;
  if (st == dnnl_success && prec == PRECISION_INT8) {
    /* Per-output-channel scales as a quantized model has them. Sized to the
     * reduction (weights in [-8, 8], about 5 r.m.s.) so that, with half the
     * sums cut by the ReLU, the u8 activations keep about the same spread
     * along the chain of layers (checked: half zeros, a fifth at 255) rather
     * than all saturating or all fading to 0. */
    scales = malloc((size_t)l->oc * sizeof *scales);
    if (!scales) {
      fprintf(stderr, "bench_conv_layers: %s: out of memory for %" PRId64 " scales\n", l->name, l->oc);
      dnnl_primitive_attr_destroy(attr);
      return false;
    }
    const float k = (float)(l->c / l->g * l->kh * l->kw);
    for (int64_t i = 0; i < l->oc; i++) scales[i] = (0.5f + rng_uniform()) / (2.5f * sqrtf(k));
    what = "output scales";
    st = dnnl_primitive_attr_set_output_scales(attr, l->oc, 1 << 1, scales);
  }
  if (st == dnnl_success && l->relu) {
    dnnl_post_ops_t po = NULL;
    what = "ReLU post-op";
    st = dnnl_post_ops_create(&po);
    if (st == dnnl_success) st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
    if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, po);
    if (po) dnnl_post_ops_destroy(po);
  }
  if (st == dnnl_success) {
    what = "convolution primitive descriptor (no implementation for these types and shapes)";
    st = dnnl_primitive_desc_create(&r->pd, &cd, attr, engine, NULL);
  }
  free(scales);
  dnnl_primitive_attr_destroy(attr);
  if (st != dnnl_success) {
    r->pd = NULL;
    return dnnl_failed(st, what, l->name);
  }
  DNNL_TRY(dnnl_primitive_desc_query(r->pd, dnnl_query_impl_info_str, 0, &r->impl), "implementation name",
           l->name);
  DNNL_TRY(dnnl_primitive_create(&r->prim, r->pd), "convolution primitive", l->name);
  return true;
}

/* Gives the chosen primitive its memories: weights and bias filled once, the
 * source its own filled memory when `src_buf` is NULL (the first layer) or the
 * previous layer's output buffer, the destination and scratchpad the buffers
 * shared by all layers. */
static bool conv_bind(dnnl_engine_t engine, dnnl_stream_t stream, enum precision prec, const conv_layer *l,
                      conv_run *r, void *src_buf, void *dst_buf, void *scratch_buf) {
  const dnnl_memory_desc_t *src_md = dnnl_primitive_desc_query_md(r->pd, dnnl_query_src_md, 0);
  const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(r->pd, dnnl_query_weights_md, 0);
  const dnnl_memory_desc_t *b_md = dnnl_primitive_desc_query_md(r->pd, dnnl_query_weights_md, 1);
  const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(r->pd, dnnl_query_dst_md, 0);
  const dnnl_memory_desc_t *sp_md = dnnl_primitive_desc_query_md(r->pd, dnnl_query_scratchpad_md, 0);
  DNNL_TRY(dnnl_memory_create(&r->src, src_md, engine, src_buf ? src_buf : DNNL_MEMORY_ALLOCATE), "source memory",
           l->name);
  DNNL_TRY(dnnl_memory_create(&r->weights, w_md, engine, DNNL_MEMORY_ALLOCATE), "weights memory", l->name);
  DNNL_TRY(dnnl_memory_create(&r->bias, b_md, engine, DNNL_MEMORY_ALLOCATE), "bias memory", l->name);
  DNNL_TRY(dnnl_memory_create(&r->dst, dst_md, engine, dst_buf), "destination memory", l->name);
  if (sp_md && dnnl_memory_desc_get_size(sp_md))
    DNNL_TRY(dnnl_memory_create(&r->scratch, sp_md, engine, scratch_buf), "scratchpad memory", l->name);

  /* Values of the kind a trained model has: an image-like first input, and
   * weights scaled to the reduction (He's uniform range) so that activations
   * neither grow to infinity nor fade to denormals, which are slow in FP32,
   * along the chain of layers; whole numbers where they become u8/s8. */
  const bool whole = prec == PRECISION_INT8;
  const float w_range = whole ? 8.0f : sqrtf(6.0f / (float)(l->c / l->g * l->kh * l->kw));
  const dnnl_dims_t src_dims = {l->n, l->c, l->h, l->w}, bias_dims = {l->oc};
  const dnnl_dims_t w_dims = {l->oc, l->c, l->kh, l->kw};
  const dnnl_dims_t gw_dims = {l->g, l->oc / l->g, l->c / l->g, l->kh, l->kw};
  if (!src_buf &&
      !memory_fill(engine, stream, r->src, 4, src_dims, dnnl_nchw, 0.0f, whole ? 256.0f : 1.0f, whole, l->name))
    return false;
  const bool w_ok = l->g > 1 ? memory_fill(engine, stream, r->weights, 5, gw_dims, dnnl_goihw, -w_range,
                                           w_range + (whole ? 1.0f : 0.0f), whole, l->name)
                             : memory_fill(engine, stream, r->weights, 4, w_dims, dnnl_oihw, -w_range,
                                           w_range + (whole ? 1.0f : 0.0f), whole, l->name);
  return w_ok && memory_fill(engine, stream, r->bias, 1, bias_dims, dnnl_a, -0.1f, 0.1f, false, l->name);
}

static void conv_release(conv_run *r) {
  if (r->prim) dnnl_primitive_destroy(r->prim);
  if (r->pd) dnnl_primitive_desc_destroy(r->pd);
  dnnl_memory_t mems[] = {r->src, r->weights, r->bias, r->dst, r->scratch};
  for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
    if (mems[i]) dnnl_memory_destroy(mems[i]);
}

/* One pass: every layer once, in model order, then a wait so the pass is over
 * when the clock is read. */
static bool pass_run(dnnl_stream_t stream, const conv_layer *layers, const conv_run *runs, int n) {
  for (int i = 0; i < n; i++) {
    const conv_run *r = &runs[i];
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, r->src},
                              {DNNL_ARG_WEIGHTS, r->weights},
                              {DNNL_ARG_BIAS, r->bias},
                              {DNNL_ARG_DST, r->dst},
                              {DNNL_ARG_SCRATCHPAD, r->scratch}};
    DNNL_TRY(dnnl_primitive_execute(r->prim, stream, r->scratch ? 5 : 4, args), "execution", layers[i].name);
  }
  DNNL_TRY(dnnl_stream_wait(stream), "stream wait", NULL);
  return true;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Implementation names are oneDNN's own short strings, but they are quoted
 * properly all the same. */
static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      printf("\\u%04x", (unsigned char)*s);
    else
      putchar(*s);
  }
  putchar('"');
}

/* oneDNN names its portable C++ kernels "ref:..." (and gemm's "ref" flavour);
 * one of them here means this CPU has no instructions for the precision. */
static bool is_reference(const char *impl) { return strstr(impl, "ref") != NULL; }

static void report_text(const options *o, const conv_layer *layers, const conv_run *runs, int n, int ref_layers,
                        double images_per_sec, double ms_per_pass, long passes) {
  printf("precision %s  batch %" PRId64 "  threads %d  layers %d  ref layers %d\n", precision_names[o->precision],
         layers[0].n, o->threads, n, ref_layers);
  printf("%.1f images/s  %.3f ms/pass  (%ld passes)\n", images_per_sec, ms_per_pass, passes);
  printf("first layer: %s\n", runs[0].impl);
  /* Every distinct implementation with its count: whether the hardware's
   * fast path (AMX, VNNI) was taken shows here at a glance. */
  for (int i = 0; i < n; i++) {
    bool seen = false;
    for (int j = 0; j < i && !seen; j++) seen = !strcmp(runs[j].impl, runs[i].impl);
    if (seen) continue;
    int count = 0;
    for (int j = i; j < n; j++) count += !strcmp(runs[j].impl, runs[i].impl);
    printf("  %3d x %s\n", count, runs[i].impl);
  }
}

int main(int argc, char **argv) {
  options o;
  if (!options_parse(argc, argv, &o)) return 1;
  conv_layer *layers = NULL;
  int n = 0;
  if (!layers_read(o.layers_path, &layers, &n)) return 1;

  /* oneDNN's CPU runtime here is OpenMP; the server sets the same count the
   * same way before it executes. */
  omp_set_num_threads(o.threads);

  int rc = 1;
  dnnl_engine_t engine = NULL;
  dnnl_stream_t stream = NULL;
  conv_run *runs = calloc((size_t)n, sizeof *runs);
  void *chain_buf[2] = {NULL, NULL}, *scratch_buf = NULL;
  if (!runs) {
    fprintf(stderr, "bench_conv_layers: out of memory for %d layers\n", n);
    goto done;
  }
  dnnl_status_t st = dnnl_engine_create(&engine, dnnl_cpu, 0);
  if (st != dnnl_success) {
    dnnl_failed(st, "CPU engine", NULL);
    goto done;
  }
  st = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags);
  if (st != dnnl_success) {
    dnnl_failed(st, "stream", NULL);
    goto done;
  }

  /* The chain buffers hold every output and every source after the first. */
  size_t chain_max = 0, scratch_max = 0;
  for (int i = 0; i < n; i++) {
    if (!conv_choose(engine, o.precision, &layers[i], &runs[i])) goto done;
    size_t d = query_size(runs[i].pd, dnnl_query_dst_md), s = query_size(runs[i].pd, dnnl_query_scratchpad_md);
    size_t src = i ? query_size(runs[i].pd, dnnl_query_src_md) : 0;
    chain_max = d > chain_max ? d : chain_max;
    chain_max = src > chain_max ? src : chain_max;
    scratch_max = s > scratch_max ? s : scratch_max;
  }
  /* Page-aligned, rounded up to a whole page as aligned_alloc wants; zeroed,
   * so that a source larger than what was written before it reads zeros, not
   * whatever bit patterns (NaN, denormals) the allocator left. */
  const size_t chain_bytes = (chain_max + 4095) / 4096 * 4096, scratch_bytes = (scratch_max + 4095) / 4096 * 4096;
  for (int k = 0; k < 2; k++) {
    chain_buf[k] = aligned_alloc(4096, chain_bytes);
    if (chain_buf[k]) memset(chain_buf[k], 0, chain_bytes);
  }
  scratch_buf = scratch_max ? aligned_alloc(4096, scratch_bytes) : NULL;
  if (!chain_buf[0] || !chain_buf[1] || (scratch_max && !scratch_buf)) {
    fprintf(stderr, "bench_conv_layers: out of memory for 2 x %zu bytes of activations and %zu of scratchpad\n",
            chain_bytes, scratch_bytes);
    goto done;
  }
  int ref_layers = 0;
  for (int i = 0; i < n; i++) {
    void *src_buf = i ? chain_buf[(i - 1) % 2] : NULL;
    if (!conv_bind(engine, stream, o.precision, &layers[i], &runs[i], src_buf, chain_buf[i % 2], scratch_buf))
      goto done;
    if (is_reference(runs[i].impl)) {
      ref_layers++;
      fprintf(stderr,
              "bench_conv_layers: warning: %s runs oneDNN's reference kernel '%s' in %s: this CPU has no fast "
              "path for it\n",
              layers[i].name, runs[i].impl, precision_names[o.precision]);
    }
  }

  /* Two passes first: the first execution touches the shared activation
   * and scratchpad pages for the first time and finds no weights in the caches,
   * which no steady state does. */
  for (int w = 0; w < 2; w++)
    if (!pass_run(stream, layers, runs, n)) goto done;
  long passes = 0;
  const double t0 = now_s();
  double elapsed = 0;
  do {
    if (!pass_run(stream, layers, runs, n)) goto done;
    passes++;
    elapsed = now_s() - t0;
  } while (elapsed < o.duration);

  const double images_per_sec = (double)passes * (double)layers[0].n / elapsed;
  const double ms_per_pass = elapsed * 1e3 / (double)passes;
  if (o.json) {
    printf("{\"precision\": \"%s\", \"batch\": %" PRId64 ", \"threads\": %d, \"images_per_sec\": %.3f, "
           "\"ms_per_pass\": %.4f, \"layers\": %d, \"ref_layers\": %d, \"impl\": ",
           precision_names[o.precision], layers[0].n, o.threads, images_per_sec, ms_per_pass, n, ref_layers);
    json_string(runs[0].impl);
    printf("}\n");
  } else {
    report_text(&o, layers, runs, n, ref_layers, images_per_sec, ms_per_pass, passes);
  }
  rc = 0;

done:
  for (int i = 0; runs && i < n; i++) conv_release(&runs[i]);
  free(runs);
  free(chain_buf[0]);
  free(chain_buf[1]);
  free(scratch_buf);
  if (stream) dnnl_stream_destroy(stream);
  if (engine) dnnl_engine_destroy(engine);
  free(layers);
  return rc;
}
