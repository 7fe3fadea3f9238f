/*
 * inferd calibrate: runs a model's FP32 plan on the CPU over calibration
 * data (.npy batches of its input, or a folder of photos given the model's
 * preprocessing) and writes the INT8 calibration cache:
 * one threshold for the input and for every activation a convolution or a
 * matrix product reads, by the method asked for (engine/quant/calibration.h).
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cli/cli.h"
#include "engine/quant/calibration.h"
#include "tools/image.h"
#include "tools/npy.h"

static const cli_option calibrate_options[] = {
    {"model", "PATH", "ONNX model (required)"},
    {"data", "DIR",
     "calibration data (required): every *.npy file in DIR is one batch of the model's input; or DIR holds "
     "photos (*.jpg, *.jpeg, *.png), preprocessed as the options below say"},
    {"output", "PATH", "calibration cache to write (required)"},
    {"method", "M", "entropy (default), percentile or max"},
    {"percentile", "P", "the percentile method's P, in (0, 100] (default 99.99)"},
    {"threads", "N", "CPU threads (default: all cores)"},
    {"image-size", "S", "photos: side of the square crop (default: the model input's)"},
    {"resize-shorter", "R", "photos: the shorter side is resized to R before the centred crop (default: S*256/224)"},
    {"scale", "V", "photos: pixel values are divided by V (default 255)"},
    {"mean", "A,B,C", "photos: per-channel mean after the scale, in the model's channel order (default ImageNet's)"},
    {"std", "A,B,C", "photos: per-channel standard deviation (default ImageNet's)"},
    {"channel-order", "O", "photos: rgb (default) or bgr"},
    {"batch", "N", "photos: images per run (default 8)"},
    {"auto-keep", "E", "keep the INT8-sensitive convolutions in FP32 until the relative L2 error of the first output "
     "against FP32 on the calibration data is at most E (e.g. 0.05); the list goes in the cache"},
    {NULL, NULL, NULL},
};

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The calibration files of dir, sorted (so runs are reproducible): its
 * *.npy files, or else its photos (*images set). */
static inferd_error *list_data(const char *dir, char ***out, int *count, bool *images) {
  DIR *d = opendir(dir);
  if (!d) return err_new(INFERD_ERROR_NOT_FOUND, "cannot open the calibration data folder '%s'", dir);
  char **files = NULL;
  size_t cap = 0;
  int n = 0, n_npy = 0;
  for (struct dirent *e; (e = readdir(d));) {
    const size_t len = strlen(e->d_name);
    const bool npy = len >= 5 && strcmp(e->d_name + len - 4, ".npy") == 0;
    if (!npy && !image_path_is_image(e->d_name)) continue;
    n_npy += npy;
    MEM_GROW(files, cap, (size_t)n + 1);
    files[n] = mem_alloc(strlen(dir) + len + 2);
    sprintf(files[n++], "%s/%s", dir, e->d_name);
  }
  closedir(d);
  inferd_error *err = NULL;
  if (n == 0)
    err = err_new(INFERD_ERROR_INVALID_ARG, "no .npy files or photos (.jpg, .jpeg, .png) in the calibration data "
                  "folder '%s'", dir);
  else if (n_npy > 0 && n_npy < n)
    err = err_new(INFERD_ERROR_INVALID_ARG, "the calibration data folder '%s' holds both .npy files and photos; keep "
                  "one kind", dir);
  if (err) {
    for (int i = 0; i < n; i++) free(files[i]);
    free(files);
    return err;
  }
  qsort(files, (size_t)n, sizeof(*files), by_name);
  *out = files;
  *count = n;
  *images = n_npy == 0;
  return NULL;
}

typedef struct calibrate_args {
  const char *model, *data, *output;
  calib_method method;
  double percentile;
  long threads;
  image_transform transform; /* size 0: the model input's; resize_shorter 0: size*256/224 */
  long image_batch;
  double auto_keep; /* > 0: keep convolutions in FP32 until the error is at most this */
} calibrate_args;

/* What --auto-keep compares: the model's first output in FP32 for every
 * calibration batch, end to end. */
typedef struct reference {
  const npy_array *batches;
  int n_batches;
  bool batched;
  int64_t largest;
  const inferd_tensor_info *input;
  const char *output_name;
  size_t item_floats;
  float *fp32; /* every batch's output, one after the other */
  size_t floats;
} reference;

/* The relative L2 error, against FP32, of the first output of the INT8
 * plan keeping `keep` (NULL: none) in FP32; with `names`, also the INT8
 * convolutions' node names (malloc'd list, comma-separated). */
static inferd_error *int8_error(const calibrate_args *a, const reference *r, const char *keep, double *error,
                                char **names) {
  const inferd_plan_options o = {.backend = "cpu",
                                 .max_batch_size = r->batched ? (int)r->largest : 0,
                                 .threads = (int)a->threads,
                                 .precision = INFERD_PRECISION_INT8,
                                 .calibration_cache = a->output,
                                 .int8_keep = keep ? keep : ""};
  inferd_plan *plan = NULL;
  inferd_context *ctx = NULL;
  ERR_TRY(inferd_plan_load(a->model, &o, &plan));
  inferd_error *e = inferd_context_create(plan, NULL, &ctx);
  float *out = mem_alloc(r->item_floats * (size_t)r->largest * sizeof(float) + 1);
  double diff = 0, norm = 0;
  size_t at = 0;
  if (!e && names) inferd_context_set_profiling(ctx, true);
  for (int i = 0; i < r->n_batches && !e; i++) {
    const npy_array *x = &r->batches[i];
    const int batch = r->batched && x->rank > 0 ? (int)x->dims[0] : 1;
    inferd_tensor in = {.name = r->input->name, .datatype = INFERD_TYPE_FP32, .rank = x->rank, .data = x->data,
                        .byte_size = x->nbytes};
    memcpy(in.dims, x->dims, sizeof(in.dims));
    inferd_tensor y = {.name = r->output_name, .data = out, .byte_size = r->item_floats * (size_t)batch * sizeof(float)};
    e = inferd_context_run(ctx, batch, &in, 1, &y, 1);
    for (size_t k = 0; !e && k < r->item_floats * (size_t)batch; k++, at++) {
      const double d = (double)out[k] - r->fp32[at];
      diff += d * d;
      norm += (double)r->fp32[at] * r->fp32[at];
    }
  }
  if (!e && names) {
    inferd_profile_entry entries[4096];
    const int n = inferd_context_profile(ctx, entries, 4096);
    size_t len = 0, cap = 0;
    *names = NULL;
    for (int i = 0; i < n && i < 4096; i++) {
      if (strncmp(entries[i].kind, "conv", 4) != 0 || !strstr(entries[i].kind, " int8") || !entries[i].name) continue;
      const size_t add = strlen(entries[i].name) + 2;
      MEM_GROW(*names, cap, len + add);
      len += (size_t)snprintf(*names + len, cap - len, "%s%s", len ? "," : "", entries[i].name);
    }
  }
  *error = norm > 0 ? sqrt(diff / norm) : sqrt(diff);
  free(out);
  if (ctx) inferd_context_delete(ctx);
  inferd_plan_delete(plan);
  return e;
}

typedef struct layer_error {
  char *name;
  double error; /* with this layer alone kept in FP32 */
} layer_error;

static int by_error(const void *x, const void *y) {
  const double a = ((const layer_error *)x)->error, b = ((const layer_error *)y)->error;
  return a < b ? -1 : a > b;
}

/* --auto-keep: every INT8 convolution's sensitivity (the error with it
 * alone kept in FP32), then the most sensitive kept one by one until the
 * error is at most the target, at most half of them. Leaves the list (or
 * NULL) in *keep and the errors before and after. */
static inferd_error *choose_keep(const calibrate_args *a, const reference *r, char **keep, double *before,
                                 double *after, int *kept) {
  char *names = NULL;
  *keep = NULL;
  *kept = 0;
  ERR_TRY(int8_error(a, r, NULL, before, &names));
  *after = *before;
  if (*before <= a->auto_keep || !names) {
    free(names);
    return NULL;
  }
  layer_error *layers = NULL;
  size_t cap = 0;
  int n = 0;
  inferd_error *e = NULL;
  for (char *p = names, *save = NULL, *t = strtok_r(p, ",", &save); t && !e; t = strtok_r(NULL, ",", &save)) {
    MEM_GROW(layers, cap, (size_t)n + 1);
    layers[n] = (layer_error){.name = t};
    e = int8_error(a, r, t, &layers[n].error, NULL);
    n++;
  }
  if (!e) qsort(layers, (size_t)n, sizeof(*layers), by_error);
  size_t len = 0, kcap = 0;
  for (int i = 0; i < n && i < (n + 1) / 2 && !e && *after > a->auto_keep; i++) {
    const size_t add = strlen(layers[i].name) + 2;
    MEM_GROW(*keep, kcap, len + add);
    len += (size_t)snprintf(*keep + len, kcap - len, "%s%s", len ? "," : "", layers[i].name);
    e = int8_error(a, r, *keep, after, NULL);
    *kept = i + 1;
  }
  free(layers);
  free(names);
  if (e) {
    free(*keep);
    *keep = NULL;
  }
  return e;
}

/* The photos' transform completed from the model's input: its layout (3
 * channels first or last) and, unless given, its size. */
static inferd_error *photo_transform(const calibrate_args *a, const inferd_tensor_info *in, image_transform *t) {
  *t = a->transform;
  const bool nchw = in->rank == 4 && in->dims[1] == 3, nhwc = in->rank == 4 && in->dims[3] == 3 && !nchw;
  if (!nchw && !nhwc)
    return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' is not an image batch ([N,3,H,W] or [N,H,W,3]); give .npy "
                   "batches instead of photos", in->name);
  t->nhwc = nhwc;
  const int64_t h = in->dims[nchw ? 2 : 1], w = in->dims[nchw ? 3 : 2];
  if (t->size == 0) {
    if (h <= 0 || h != w || h > IMAGE_MAX_SIDE)
      return err_new(INFERD_ERROR_INVALID_ARG, "input '%s' has no fixed square size; give --image-size", in->name);
    t->size = (int)h;
  } else if ((h > 0 && h != t->size) || (w > 0 && w != t->size)) {
    return err_new(INFERD_ERROR_INVALID_ARG, "--image-size %d does not fit input '%s' (%lldx%lld)", t->size, in->name,
                   (long long)h, (long long)w);
  }
  if (t->resize_shorter == 0) t->resize_shorter = (int)((t->size * 256 + 112) / 224);
  if (t->resize_shorter < t->size)
    return err_new(INFERD_ERROR_INVALID_ARG, "--resize-shorter %d is under the crop's %d", t->resize_shorter, t->size);
  return NULL;
}

/* Batch `index` of the photos: files[index*per .. ] preprocessed. */
static inferd_error *photo_batch(char **files, int n_files, int index, int per, const image_transform *t,
                                 npy_array *out) {
  const int first = index * per, count = n_files - first < per ? n_files - first : per;
  const size_t floats = (size_t)t->size * (size_t)t->size * 3;
  *out = (npy_array){.dtype = INFERD_TYPE_FP32, .rank = 4, .nbytes = (size_t)count * floats * sizeof(float)};
  const int64_t dims[4] = {count, t->nhwc ? t->size : 3, t->size, t->nhwc ? 3 : t->size};
  memcpy(out->dims, dims, sizeof(dims));
  out->data = mem_alloc(out->nbytes);
  for (int k = 0; k < count; k++) {
    image im;
    ERR_TRY(image_read(files[first + k], &im));
    image_preprocess(&im, t, (float *)out->data + (size_t)k * floats);
    image_free(&im);
  }
  return NULL;
}

static inferd_error *calibrate(const calibrate_args *a, int *files_used, int64_t *samples, int *tensors) {
  inferd_model_info *info;
  ERR_TRY(inferd_model_inspect(a->model, &info));
  const int model_outputs = inferd_model_info_output_count(info);
  const bool batched = inferd_model_info_has_dynamic_batch(info);
  const int n_inputs = inferd_model_info_input_count(info);
  inferd_model_info_delete(info);
  if (n_inputs != 1)
    return err_new(INFERD_ERROR_UNSUPPORTED, "the model has %d inputs; calibration takes models of one input for now",
                   n_inputs);
  char **files = NULL;
  int n_files = 0;
  bool photos = false;
  ERR_TRY(list_data(a->data, &files, &n_files, &photos));
  inferd_error *e = NULL;
  /* .npy batches are all read first (their largest batch sizes the plan);
   * photos are decoded one batch at a time. */
  const int per = photos ? (int)a->image_batch : 1;
  const int n_batches = photos ? (n_files + per - 1) / per : n_files;
  npy_array *batches = mem_zalloc((size_t)n_files * sizeof(*batches));
  int64_t largest = photos ? per : 1;
  for (int i = 0; i < n_files && !e && !photos; i++) {
    e = npy_read(files[i], &batches[i]);
    if (!e && batches[i].dtype != INFERD_TYPE_FP32)
      e = err_new(INFERD_ERROR_INVALID_ARG, "'%s' holds %s; calibration data is FP32", files[i],
                  inferd_datatype_name(batches[i].dtype));
    if (!e && batches[i].rank > 0 && batches[i].dims[0] > largest) largest = batches[i].dims[0];
  }
  inferd_plan *plan = NULL;
  inferd_context *ctx = NULL;
  if (!e) {
    const inferd_plan_options o = {.backend = "cpu",
                                   .max_batch_size = batched ? (int)largest : 0,
                                   .threads = (int)a->threads,
                                   .calibration_outputs = true};
    e = inferd_plan_load(a->model, &o, &plan);
  }
  if (!e) e = inferd_context_create(plan, NULL, &ctx);
  calib_collector col = {0};
  const int n_out = plan ? inferd_plan_output_count(plan) : 0;
  inferd_tensor *outs = mem_zalloc((size_t)(n_out + 1) * sizeof(*outs));
  inferd_tensor_info in_info;
  if (!e) e = inferd_plan_input(plan, 0, &in_info);
  image_transform transform;
  if (!e && photos) e = photo_transform(a, &in_info, &transform);
  /* Output buffers for the largest batch, reused by every file. */
  size_t *item_floats = mem_zalloc((size_t)(n_out + 1) * sizeof(size_t));
  for (int k = 0; k < n_out && !e; k++) {
    inferd_tensor_info oi;
    e = inferd_plan_output(plan, k, &oi);
    size_t count = 1;
    for (int d = 0; !e && d < oi.rank; d++) count *= (size_t)(oi.dims[d] < 0 ? 1 : oi.dims[d]);
    item_floats[k] = count;
    outs[k] = (inferd_tensor){.name = oi.name, .data = mem_alloc(count * (size_t)largest * sizeof(float) + 1)};
  }
  reference ref = {0};
  size_t ref_cap = 0;
  for (int i = 0; i < n_batches && !e; i++) {
    if (photos && (e = photo_batch(files, n_files, i, per, &transform, &batches[i]))) break;
    const npy_array *x = &batches[i];
    const char *what = photos ? files[i * per] : files[i];
    const int batch = batched && x->rank > 0 ? (int)x->dims[0] : 1;
    bool fits = x->rank == in_info.rank;
    for (int d = 0; fits && d < x->rank; d++) fits = in_info.dims[d] < 0 || in_info.dims[d] == x->dims[d];
    if (!fits || batch < 1) {
      e = err_new(INFERD_ERROR_INVALID_ARG, "'%s' does not have the shape of input '%s'", what, in_info.name);
      break;
    }
    inferd_tensor in = {.name = in_info.name, .datatype = INFERD_TYPE_FP32, .rank = x->rank, .data = x->data,
                        .byte_size = x->nbytes};
    memcpy(in.dims, x->dims, sizeof(in.dims));
    for (int k = 0; k < n_out; k++) outs[k].byte_size = item_floats[k] * (size_t)batch * sizeof(float);
    e = inferd_context_run(ctx, batch, &in, 1, outs, n_out);
    if (e) {
      e = err_wrap(e, "running '%s'", what);
      break;
    }
    calib_collector_add(&col, in_info.name, x->data, x->nbytes / sizeof(float));
    for (int k = model_outputs; k < n_out; k++)
      calib_collector_add(&col, outs[k].name, outs[k].data, outs[k].byte_size / sizeof(float));
    *samples += batch;
    *files_used += photos ? (int)x->dims[0] : 1;
    if (a->auto_keep > 0) {
      const size_t add = item_floats[0] * (size_t)batch;
      MEM_GROW(ref.fp32, ref_cap, ref.floats + add);
      memcpy(ref.fp32 + ref.floats, outs[0].data, add * sizeof(float));
      ref.floats += add;
    } else if (photos) {
      npy_free(&batches[i]);
    }
  }
  if (!e) {
    char checksum[96];
    e = calib_file_checksum(a->model, checksum, sizeof(checksum));
    calib_cache cache;
    if (!e) {
      calib_collector_thresholds(&col, a->method, a->percentile, checksum, &cache);
      *tensors = cache.n;
      e = calib_cache_write(&cache, a->output);
      if (!e && a->auto_keep > 0) {
        ref.batches = batches;
        ref.n_batches = n_batches;
        ref.batched = batched;
        ref.largest = largest;
        ref.input = &in_info;
        ref.output_name = outs[0].name;
        ref.item_floats = item_floats[0];
        double before = 0, after = 0;
        int kept = 0;
        e = choose_keep(a, &ref, &cache.keep, &before, &after, &kept);
        if (!e) e = calib_cache_write(&cache, a->output);
        if (!e)
          printf("auto-keep: INT8 error against FP32 on the calibration data %.4f with no layer kept, %.4f with %d "
                 "kept in FP32%s%s\n",
                 before, after, kept, kept ? ": " : "", kept ? cache.keep : "");
      }
      calib_cache_free(&cache);
    }
  }
  free(ref.fp32);
  for (int k = 0; k < n_out; k++) free(outs[k].data);
  free(outs);
  free(item_floats);
  calib_collector_free(&col);
  if (ctx) inferd_context_delete(ctx);
  if (plan) inferd_plan_delete(plan);
  for (int i = 0; i < n_files; i++) {
    npy_free(&batches[i]);
    free(files[i]);
  }
  free(batches);
  free(files);
  return e;
}

/* `count` comma-separated numbers (positive ones where `positive`). */
static bool parse_floats(const char *flag, const char *text, int count, bool positive, float *out) {
  const char *p = text;
  for (int i = 0; i < count; i++) {
    char *end;
    const double v = strtod(p, &end);
    const bool last = i == count - 1;
    if (end == p || !isfinite(v) || (positive && !(v > 0)) || (last ? *end != 0 : *end != ',')) {
      fprintf(stderr, "inferd calibrate: --%s '%s' is not %d %snumber%s separated by commas\n", flag, text, count,
              positive ? "positive " : "", count > 1 ? "s" : "");
      return false;
    }
    out[i] = (float)v;
    p = end + 1;
  }
  return true;
}

int cmd_calibrate(int argc, char **argv) {
  cli_parser p;
  cli_parser_init(&p, "calibrate", calibrate_options, argc, argv);
  calibrate_args a = {.method = CALIB_ENTROPY, .percentile = 99.99, .transform = image_transform_imagenet(),
                      .image_batch = 8};
  a.transform.size = a.transform.resize_shorter = 0; /* from the model */
  long side;
  const char *name, *value;
  int r;
  while ((r = cli_next(&p, &name, &value)) > 0) {
    if (strcmp(name, "help") == 0) {
      cli_print_help(stdout, "inferd calibrate --model M.onnx --data DIR --output FILE [options]",
                     "Runs the model in FP32 on the CPU over the calibration batches in DIR and writes the INT8\n"
                     "calibration cache: one threshold (scale = threshold / 127) for the input and for every\n"
                     "activation a convolution or matrix product reads, by the entropy (KL divergence), percentile\n"
                     "or max method, with the model file's SHA-256. A folder of photos is decoded and preprocessed\n"
                     "as image models are evaluated: the shorter side resized (antialiased bilinear), a centred\n"
                     "square crop, values divided by --scale, then (v - mean) / std per channel, in the model\n"
                     "input's layout (NCHW or NHWC, from its shape).",
                     calibrate_options);
      return 0;
    } else if (strcmp(name, "model") == 0) {
      a.model = value;
    } else if (strcmp(name, "data") == 0) {
      a.data = value;
    } else if (strcmp(name, "output") == 0) {
      a.output = value;
    } else if (strcmp(name, "method") == 0) {
      inferd_error *e = calib_method_parse(value, &a.method);
      if (e) {
        fprintf(stderr, "inferd calibrate: --method: %s\n", inferd_error_message(e));
        inferd_error_delete(e);
        return 2;
      }
    } else if (strcmp(name, "percentile") == 0) {
      char *end;
      a.percentile = strtod(value, &end);
      if (*end || !(a.percentile > 0 && a.percentile <= 100)) {
        fprintf(stderr, "inferd calibrate: --percentile '%s' is not a number in (0, 100]\n", value);
        return 2;
      }
    } else if (strcmp(name, "threads") == 0) {
      if (!cli_parse_int(name, value, 1, 4096, &a.threads)) return 2;
    } else if (strcmp(name, "image-size") == 0) {
      if (!cli_parse_int(name, value, 1, IMAGE_MAX_SIDE, &side)) return 2;
      a.transform.size = (int)side;
    } else if (strcmp(name, "resize-shorter") == 0) {
      if (!cli_parse_int(name, value, 1, IMAGE_MAX_SIDE, &side)) return 2;
      a.transform.resize_shorter = (int)side;
    } else if (strcmp(name, "batch") == 0) {
      if (!cli_parse_int(name, value, 1, 4096, &a.image_batch)) return 2;
    } else if (strcmp(name, "scale") == 0 || strcmp(name, "mean") == 0 || strcmp(name, "std") == 0) {
      float *to = strcmp(name, "scale") == 0 ? &a.transform.scale
                  : strcmp(name, "mean") == 0 ? a.transform.mean
                                              : a.transform.std;
      if (!parse_floats(name, value, strcmp(name, "scale") == 0 ? 1 : 3, strcmp(name, "mean") != 0, to)) return 2;
    } else if (strcmp(name, "auto-keep") == 0) {
      char *end;
      a.auto_keep = strtod(value, &end);
      if (*end || !(a.auto_keep > 0 && a.auto_keep < 1)) {
        fprintf(stderr, "inferd calibrate: --auto-keep '%s' is not a relative error in (0, 1)\n", value);
        return 2;
      }
    } else if (strcmp(name, "channel-order") == 0) {
      if (strcmp(value, "rgb") != 0 && strcmp(value, "bgr") != 0) {
        fprintf(stderr, "inferd calibrate: --channel-order '%s' is not rgb or bgr\n", value);
        return 2;
      }
      a.transform.bgr = strcmp(value, "bgr") == 0;
    }
  }
  if (r < 0) return 2;
  if (!a.model || !a.data || !a.output) {
    fprintf(stderr, "inferd calibrate: --model, --data and --output are required (see inferd calibrate --help)\n");
    return 2;
  }
  int files = 0, tensors = 0;
  int64_t samples = 0;
  inferd_error *e = calibrate(&a, &files, &samples, &tensors);
  if (e) {
    fprintf(stderr, "inferd calibrate: %s\n", inferd_error_message(e));
    inferd_error_delete(e);
    return 1;
  }
  printf("calibrated %d tensors over %lld samples in %d files (%s", tensors, (long long)samples, files,
         calib_method_name(a.method));
  if (a.method == CALIB_PERCENTILE) printf(" %g", a.percentile);
  printf("); wrote %s\n", a.output);
  return 0;
}
