/*
 * inferd calibrate: runs a model's FP32 plan on the CPU over calibration
 * data (.npy batches of its input) and writes the INT8 calibration cache:
 * one threshold for the input and for every activation a convolution or a
 * matrix product reads, by the method asked for (engine/quant/calibration.h).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cli/cli.h"
#include "engine/quant/calibration.h"
#include "tools/npy.h"

static const cli_option calibrate_options[] = {
    {"model", "PATH", "ONNX model (required)"},
    {"data", "DIR", "calibration data: every *.npy file in DIR is one batch of the model's input (required)"},
    {"output", "PATH", "calibration cache to write (required)"},
    {"method", "M", "entropy (default), percentile or max"},
    {"percentile", "P", "the percentile method's P, in (0, 100] (default 99.99)"},
    {"threads", "N", "CPU threads (default: all cores)"},
    {NULL, NULL, NULL},
};

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The *.npy files of dir, sorted (so runs are reproducible). */
static inferd_error *list_npy(const char *dir, char ***out, int *count) {
  DIR *d = opendir(dir);
  if (!d) return err_new(INFERD_ERROR_NOT_FOUND, "cannot open the calibration data folder '%s'", dir);
  char **files = NULL;
  size_t cap = 0;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) {
    const size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".npy") != 0) continue;
    MEM_GROW(files, cap, (size_t)n + 1);
    files[n] = mem_alloc(strlen(dir) + len + 2);
    sprintf(files[n++], "%s/%s", dir, e->d_name);
  }
  closedir(d);
  if (n == 0) {
    free(files);
    return err_new(INFERD_ERROR_INVALID_ARG, "no .npy files in the calibration data folder '%s'", dir);
  }
  qsort(files, (size_t)n, sizeof(*files), by_name);
  *out = files;
  *count = n;
  return NULL;
}

typedef struct calibrate_args {
  const char *model, *data, *output;
  calib_method method;
  double percentile;
  long threads;
} calibrate_args;

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
  ERR_TRY(list_npy(a->data, &files, &n_files));
  inferd_error *e = NULL;
  npy_array *batches = mem_zalloc((size_t)n_files * sizeof(*batches));
  int64_t largest = 1;
  for (int i = 0; i < n_files && !e; i++) {
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
  for (int i = 0; i < n_files && !e; i++) {
    const npy_array *x = &batches[i];
    const int batch = batched && x->rank > 0 ? (int)x->dims[0] : 1;
    bool fits = x->rank == in_info.rank;
    for (int d = 0; fits && d < x->rank; d++) fits = in_info.dims[d] < 0 || in_info.dims[d] == x->dims[d];
    if (!fits || batch < 1) {
      e = err_new(INFERD_ERROR_INVALID_ARG, "'%s' does not have the shape of input '%s'", files[i], in_info.name);
      break;
    }
    inferd_tensor in = {.name = in_info.name, .datatype = INFERD_TYPE_FP32, .rank = x->rank, .data = x->data,
                        .byte_size = x->nbytes};
    memcpy(in.dims, x->dims, sizeof(in.dims));
    for (int k = 0; k < n_out; k++) outs[k].byte_size = item_floats[k] * (size_t)batch * sizeof(float);
    e = inferd_context_run(ctx, batch, &in, 1, outs, n_out);
    if (e) {
      e = err_wrap(e, "running '%s'", files[i]);
      break;
    }
    calib_collector_add(&col, in_info.name, x->data, x->nbytes / sizeof(float));
    for (int k = model_outputs; k < n_out; k++)
      calib_collector_add(&col, outs[k].name, outs[k].data, outs[k].byte_size / sizeof(float));
    *samples += batch;
    (*files_used)++;
  }
  if (!e) {
    char checksum[96];
    e = calib_file_checksum(a->model, checksum, sizeof(checksum));
    calib_cache cache;
    if (!e) {
      calib_collector_thresholds(&col, a->method, a->percentile, checksum, &cache);
      *tensors = cache.n;
      e = calib_cache_write(&cache, a->output);
      calib_cache_free(&cache);
    }
  }
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

int cmd_calibrate(int argc, char **argv) {
  cli_parser p;
  cli_parser_init(&p, "calibrate", calibrate_options, argc, argv);
  calibrate_args a = {.method = CALIB_ENTROPY, .percentile = 99.99};
  const char *name, *value;
  int r;
  while ((r = cli_next(&p, &name, &value)) > 0) {
    if (strcmp(name, "help") == 0) {
      cli_print_help(stdout, "inferd calibrate --model M.onnx --data DIR --output FILE [options]",
                     "Runs the model in FP32 on the CPU over the calibration batches in DIR and writes the INT8\n"
                     "calibration cache: one threshold (scale = threshold / 127) for the input and for every\n"
                     "activation a convolution or matrix product reads, by the entropy (KL divergence), percentile\n"
                     "or max method, with the model file's SHA-256.",
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
