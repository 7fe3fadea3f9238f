/*
 * `inferd run`: one inference of a model on inputs from .npy files (or
 * deterministic random ones), outputs saved as .npy. It is how other
 * runtimes' results are compared with ours: the tests feed ONNX Runtime and
 * `inferd run` the same files and compare what comes back, so the command
 * goes through the public engine API only, as an embedder would.
 *
 * Exit status: 0 on success; 2 when the command line is wrong (unknown or
 * malformed options, an input the model does not have or that is not given);
 * 1 for everything else (a model that does not load, a file that does not
 * read or does not fit the model, a failed run).
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/clock.h"
#include "base/files.h"
#include "base/float16.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "inferd.h"
#include "tools/npy.h"

enum { EXIT_USAGE = 2 };

static const cli_option run_options[] = {
    {"model", "PATH", "ONNX model to run (required)"},
    {"input", "NAME=FILE.npy", "data for input NAME; repeat for each input"},
    {"random-input", NULL, "generate every input not given by --input (see above)"},
    {"seed", "S", "seed of --random-input (default 1)"},
    {"batch", "N", "batch size (default: the .npy files' first dimension, or 1)"},
    {"output-dir", "DIR", "save outputs and generated inputs there as .npy (see above)"},
    {"backend", "NAME", "engine backend: cpu (default) or ref; --device picks the backend of a GPU"},
    {"device", "DEVICE", "where the plan runs: cpu (default), cuda (GPU 0) or cuda:N"},
    {"precision", "P", "fp32, tf32, fp16, bf16 or int8 (CPU: fp32, bf16, int8; default: fp32 on the CPU, tf32 on a GPU)"},
    {"calibration-cache", "FILE", "INT8 activation thresholds from `inferd calibrate` (needed by --precision int8)"},
    {"int8-keep", "LIST", "INT8: convolutions kept in FP32, comma-separated node names; 'first' is the one reading the input"},
    {"threads", "N", "threads the run uses (default: all cores)"},
    {"no-opt", "PASS[,PASS]", "optimization passes to leave out (see `inferd bench --help`)"},
    {NULL, NULL, NULL},
};

static const char run_usage[] =
    "inferd run --model PATH (--input NAME=FILE.npy ... | --random-input) [--output-dir DIR] [options]";
static const char run_summary[] =
    "Runs one inference of an ONNX model with the inferd engine and saves the outputs as .npy files, so\n"
    "that they can be compared with another runtime's.\n"
    "\n"
    "Inputs come from .npy files (little-endian, C order, with the dtype and shape the model declares and\n"
    "the batch first when the model's batch is dynamic) or, with --random-input, are generated from the\n"
    "seed: floats uniform in [0,1), integers in [0,10), bools 0/1; the same seed gives the same data.\n"
    "With --output-dir DIR, output X is written to DIR/X.npy and a generated input Y to DIR/input_Y.npy\n"
    "(characters other than letters, digits, '.', '-' and '_' become '_'); DIR is created when missing.\n"
    "\n"
    "Exit status: 0 success; 1 failure (model, data or engine), with the error; 2 wrong usage.";

/* One model input as the run will feed it. */
typedef struct run_input {
  const char *name; /* from the command line, or the plan's */
  const char *file; /* NULL when generated */
  npy_array array;  /* data owned here (from the file or generated) */
} run_input;

typedef struct run_args {
  const char *model;
  const char *output_dir;
  const char *backend;
  inferd_device device;
  inferd_precision precision;
  const char *calibration_cache;
  const char *int8_keep;
  const char *disabled_passes;
  bool random_input;
  uint64_t seed;
  long batch; /* 0 when not given */
  long threads;
  run_input *inputs;
  int n_inputs, cap_inputs;
} run_args;

static void run_args_free(run_args *a) {
  for (int i = 0; i < a->n_inputs; i++) npy_free(&a->inputs[i].array);
  free(a->inputs);
}

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "inferd run: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (see inferd run --help)\n");
  return EXIT_USAGE;
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, run_args *a) {
  cli_parser p;
  cli_parser_init(&p, "run", run_options, argc, argv);
  const char *name, *value;
  int r;
  a->seed = 1;
  while ((r = cli_next(&p, &name, &value)) > 0) {
    long v;
    if (strcmp(name, "help") == 0) {
      cli_print_help(stdout, run_usage, run_summary, run_options);
      return 0;
    } else if (strcmp(name, "model") == 0) {
      a->model = value;
    } else if (strcmp(name, "input") == 0) {
      const char *eq = strchr(value, '=');
      if (!eq || eq == value || !eq[1]) return usage_error("--input '%s' is not NAME=FILE.npy", value);
      for (int i = 0; i < a->n_inputs; i++)
        if (strlen(a->inputs[i].name) == (size_t)(eq - value) &&
            strncmp(a->inputs[i].name, value, (size_t)(eq - value)) == 0)
          return usage_error("input '%s' is given twice", a->inputs[i].name);
      MEM_GROW(a->inputs, a->cap_inputs, a->n_inputs + 1);
      /* The name points into argv; it is cut at '=' in place so that no copy
       * has to be kept. */
      ((char *)value)[eq - value] = 0;
      a->inputs[a->n_inputs++] = (run_input){.name = value, .file = eq + 1};
    } else if (strcmp(name, "random-input") == 0) {
      a->random_input = true;
    } else if (strcmp(name, "seed") == 0) {
      if (!cli_parse_int(name, value, 0, LONG_MAX, &v)) return EXIT_USAGE;
      a->seed = (uint64_t)v;
    } else if (strcmp(name, "batch") == 0) {
      if (!cli_parse_int(name, value, 1, 1 << 20, &a->batch)) return EXIT_USAGE;
    } else if (strcmp(name, "output-dir") == 0) {
      a->output_dir = value;
    } else if (strcmp(name, "backend") == 0) {
      a->backend = value;
    } else if (strcmp(name, "device") == 0) {
      if (!cli_parse_device(value, &a->device)) return EXIT_USAGE;
    } else if (strcmp(name, "precision") == 0) {
      if (!cli_parse_precision(value, &a->precision)) return EXIT_USAGE;
    } else if (strcmp(name, "calibration-cache") == 0) {
      a->calibration_cache = value;
    } else if (strcmp(name, "int8-keep") == 0) {
      a->int8_keep = value;
    } else if (strcmp(name, "threads") == 0) {
      if (!cli_parse_int(name, value, 1, 4096, &a->threads)) return EXIT_USAGE;
    } else if (strcmp(name, "no-opt") == 0) {
      a->disabled_passes = value;
    }
  }
  if (r < 0) return EXIT_USAGE;
  if (!a->model) return usage_error("%s", "--model is required");
  if (!cli_device_fits_backend("run", a->device, a->backend)) return EXIT_USAGE;
  if (!a->n_inputs && !a->random_input)
    return usage_error("%s", "give the inputs with --input NAME=FILE.npy or ask for --random-input");
  return -1;
}

/* ---- formatting ----------------------------------------------------------- */

static const char *numpy_name(inferd_datatype t) {
  switch (t) {
  case INFERD_TYPE_BOOL: return "bool";
  case INFERD_TYPE_UINT8: return "uint8";
  case INFERD_TYPE_UINT16: return "uint16";
  case INFERD_TYPE_UINT32: return "uint32";
  case INFERD_TYPE_UINT64: return "uint64";
  case INFERD_TYPE_INT8: return "int8";
  case INFERD_TYPE_INT16: return "int16";
  case INFERD_TYPE_INT32: return "int32";
  case INFERD_TYPE_INT64: return "int64";
  case INFERD_TYPE_FP16: return "float16";
  case INFERD_TYPE_FP32: return "float32";
  case INFERD_TYPE_FP64: return "float64";
  default: return "?";
  }
}

/* "[8,3,224,224]"; `batch_dim` shows the dynamic batch as "N=8" when >= 0,
 * and a dimension not known yet prints as "N". */
static const char *shape_text(char *buf, size_t cap, int rank, const int64_t *dims, long batch_dim) {
  size_t n = (size_t)snprintf(buf, cap, "[");
  for (int d = 0; d < rank && n < cap; d++) {
    if (d == 0 && batch_dim >= 0)
      n += (size_t)snprintf(buf + n, cap - n, "N=%ld", batch_dim);
    else
      n += dims[d] < 0 ? (size_t)snprintf(buf + n, cap - n, "%sN", d ? "," : "")
                       : (size_t)snprintf(buf + n, cap - n, "%s%lld", d ? "," : "", (long long)dims[d]);
  }
  if (n < cap) snprintf(buf + n, cap - n, "]");
  return buf;
}

/* ---- random inputs -------------------------------------------------------- */

/* splitmix64: tiny, fast, and fully determined by the seed on every platform,
 * which is all that reproducible test data needs. */
static uint64_t next_random(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Fills `count` elements of type `t`. Floats are k / 2^bits with as many bits
 * as the type holds exactly, so the same value reaches every runtime. */
static void fill_random(inferd_datatype t, void *data, size_t count, uint64_t *state) {
  for (size_t i = 0; i < count; i++) {
    uint64_t r = next_random(state);
    uint64_t small = (r >> 32) % 10;
    switch (t) {
    case INFERD_TYPE_FP32: ((float *)data)[i] = (float)(r >> 40) * 0x1p-24f; break;
    case INFERD_TYPE_FP64: ((double *)data)[i] = (double)(r >> 11) * 0x1p-53; break;
    case INFERD_TYPE_FP16: ((uint16_t *)data)[i] = f16_from_f64((double)(r >> 53) * 0x1p-11); break;
    case INFERD_TYPE_BF16: ((uint16_t *)data)[i] = bf16_from_f64((double)(r >> 56) * 0x1p-8); break;
    case INFERD_TYPE_BOOL: ((uint8_t *)data)[i] = (uint8_t)(r >> 63); break;
    case INFERD_TYPE_UINT8:
    case INFERD_TYPE_INT8: ((uint8_t *)data)[i] = (uint8_t)small; break;
    case INFERD_TYPE_UINT16:
    case INFERD_TYPE_INT16: ((uint16_t *)data)[i] = (uint16_t)small; break;
    case INFERD_TYPE_UINT32:
    case INFERD_TYPE_INT32: ((uint32_t *)data)[i] = (uint32_t)small; break;
    case INFERD_TYPE_UINT64:
    case INFERD_TYPE_INT64: ((uint64_t *)data)[i] = small; break;
    default: break;
    }
  }
}

/* Bytes of a tensor of `info` at `batch`, or false on overflow or a
 * dimension that is still unknown. */
static bool tensor_bytes(const inferd_tensor_info *info, long batch, bool dynamic, int64_t *dims, size_t *out) {
  size_t n = inferd_datatype_size(info->datatype);
  for (int d = 0; d < info->rank; d++) {
    int64_t extent = info->dims[d];
    if (d == 0 && (dynamic || extent < 0)) extent = batch;
    if (extent < 0 || (uint64_t)extent > SIZE_MAX || !mem_mul_ok(n, (size_t)extent, &n)) return false;
    dims[d] = extent;
  }
  *out = n;
  return true;
}

/* ---- output files --------------------------------------------------------- */

/* File-system-safe name: letters, digits, '.', '-', '_' kept, anything else
 * (a '/' in a TensorFlow-style name, spaces, ':') becomes '_'; a name that
 * would be hidden or empty gets a leading '_'. */
static void sanitize_name(const char *name, char *out, size_t cap) {
  size_t n = 0;
  if (!name[0] || name[0] == '.') out[n++] = '_';
  for (const char *s = name; *s && n + 1 < cap; s++) {
    char c = *s;
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                c == '-' || c == '_';
    out[n++] = keep ? c : '_';
  }
  out[n] = 0;
}

/* Paths already written by this run, so that two tensors whose names
 * sanitize alike do not overwrite each other. */
typedef struct path_set {
  char **paths;
  int n, cap;
} path_set;

static bool path_set_has(const path_set *s, const char *path) {
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->paths[i], path) == 0) return true;
  return false;
}

static void path_set_free(path_set *s) {
  for (int i = 0; i < s->n; i++) free(s->paths[i]);
  free(s->paths);
}

/* Makes "<dir>/<prefix><sanitized name>.npy", unique within this run. */
static char *output_path(path_set *used, const char *dir, const char *prefix, const char *name) {
  size_t cap = strlen(dir) + strlen(prefix) + strlen(name) + 32;
  char *safe = mem_alloc(strlen(name) + 2);
  sanitize_name(name, safe, strlen(name) + 2);
  char *path = mem_alloc(cap);
  snprintf(path, cap, "%s/%s%s.npy", dir, prefix, safe);
  for (int k = 2; path_set_has(used, path); k++) snprintf(path, cap, "%s/%s%s_%d.npy", dir, prefix, safe, k);
  free(safe);
  MEM_GROW(used->paths, used->cap, used->n + 1);
  used->paths[used->n++] = mem_strdup(path);
  return path;
}

/* Saves a tensor as .npy; BF16, which NumPy has no dtype for, is widened to
 * float32 (exactly) first. */
static inferd_error *save_tensor(const char *path, inferd_datatype type, int rank, const int64_t *dims,
                                 const void *data, size_t bytes) {
  if (type != INFERD_TYPE_BF16) return npy_write(path, type, rank, dims, data);
  size_t count = bytes / 2;
  float *wide = mem_try_alloc(count, sizeof(float));
  if (!wide) return inferd_error_create(INFERD_ERROR_NO_MEMORY, "no memory to widen a BF16 output to float32");
  for (size_t i = 0; i < count; i++) {
    uint32_t bits = (uint32_t)((const uint16_t *)data)[i] << 16;
    memcpy(&wide[i], &bits, sizeof(bits));
  }
  inferd_error *e = npy_write(path, INFERD_TYPE_FP32, rank, dims, wide);
  free(wide);
  return e;
}

/* min / max / mean of a float tensor, for the summary. */
static void print_float_stats(inferd_datatype t, const void *data, size_t count) {
  if (!count || (t != INFERD_TYPE_FP32 && t != INFERD_TYPE_FP64)) return;
  double lo = 0, hi = 0, sum = 0;
  for (size_t i = 0; i < count; i++) {
    double v = t == INFERD_TYPE_FP32 ? ((const float *)data)[i] : ((const double *)data)[i];
    if (i == 0 || v < lo) lo = v;
    if (i == 0 || v > hi) hi = v;
    sum += v;
  }
  printf("  min %.6g max %.6g mean %.6g", lo, hi, sum / (double)count);
}

/* ---- the command ---------------------------------------------------------- */

static int engine_failure(inferd_error *e, const char *what) {
  fprintf(stderr, "inferd run: %s%s%s\n", what ? what : "", what ? ": " : "", inferd_error_message(e));
  inferd_error_delete(e);
  return EXIT_FAILURE;
}

static int find_input_name(const inferd_plan *plan, const char *name) {
  for (int i = 0; i < inferd_plan_input_count(plan); i++) {
    inferd_tensor_info info;
    inferd_error *e = inferd_plan_input(plan, i, &info);
    if (e) {
      inferd_error_delete(e);
      continue;
    }
    if (strcmp(info.name, name) == 0) return i;
  }
  return -1;
}

static void print_input_names(const inferd_plan *plan) {
  fprintf(stderr, "  the model's inputs:");
  for (int i = 0; i < inferd_plan_input_count(plan); i++) {
    inferd_tensor_info info;
    inferd_error *e = inferd_plan_input(plan, i, &info);
    if (e) {
      inferd_error_delete(e);
      continue;
    }
    char shape[128];
    fprintf(stderr, " %s (%s %s)", info.name, inferd_datatype_name(info.datatype),
            shape_text(shape, sizeof(shape), info.rank, info.dims, -1));
  }
  fprintf(stderr, "\n");
}

/* Checks a file's array against the model's input; the message says which
 * input, which file, and what differs. */
static int check_file_input(const run_input *in, const inferd_tensor_info *info, bool dynamic, long batch) {
  const npy_array *a = &in->array;
  if (a->dtype != info->datatype) {
    fprintf(stderr, "inferd run: input '%s': %s has dtype %s (%s), the model expects %s (%s)\n", in->name, in->file,
            numpy_name(a->dtype), inferd_datatype_name(a->dtype), inferd_datatype_name(info->datatype),
            numpy_name(info->datatype));
    return EXIT_FAILURE;
  }
  bool same = a->rank == info->rank;
  for (int d = 0; same && d < a->rank; d++) same = a->dims[d] == ((d == 0 && dynamic) ? batch : info->dims[d]);
  if (!same) {
    char got[160], want[160];
    shape_text(got, sizeof(got), a->rank, a->dims, -1);
    shape_text(want, sizeof(want), info->rank, info->dims, dynamic ? batch : -1);
    const char *why = "";
    if (dynamic && a->rank == info->rank && a->dims[0] != batch) {
      bool rest_same = true;
      for (int d = 1; d < a->rank; d++) rest_same = rest_same && a->dims[d] == info->dims[d];
      if (rest_same) why = " (its first dimension is the batch, which differs from the run's batch)";
    }
    fprintf(stderr, "inferd run: input '%s': %s has shape %s, the model expects %s%s\n", in->name, in->file, got,
            want, why);
    return EXIT_FAILURE;
  }
  return 0;
}

/* Loads the plan for `batch` (0: the model's own). A model whose batch is not
 * dynamic refuses a max_batch_size above 1, and whether it is dynamic is only
 * known once it is loaded; so a batch guessed from the files (not asked for
 * with --batch) is retried as 0 when the first load refuses it. */
static inferd_error *load_plan(const run_args *a, long batch, bool guessed, inferd_plan **plan) {
  inferd_plan_options options = {
      .backend = a->backend,
      .max_batch_size = (int)batch,
      .disabled_passes = a->disabled_passes,
      .threads = (int)a->threads,
      .device = a->device,
      .precision = a->precision,
      .calibration_cache = a->calibration_cache,
      .int8_keep = a->int8_keep,
  };
  inferd_error *e = cli_check_device(a->device);
  if (e) return e;
  e = inferd_plan_load(a->model, &options, plan);
  if (e && guessed && batch > 1 && inferd_error_code_of(e) == INFERD_ERROR_INVALID_ARG) {
    inferd_error *retry;
    options.max_batch_size = 0;
    retry = inferd_plan_load(a->model, &options, plan);
    if (!retry && !inferd_plan_has_dynamic_batch(*plan)) {
      inferd_error_delete(e);
      return NULL;
    }
    if (!retry) {
      inferd_plan_delete(*plan);
      *plan = NULL;
    } else {
      inferd_error_delete(retry);
    }
  }
  if (!e && *plan && (e = cli_check_numeric(*plan))) {
    inferd_plan_delete(*plan);
    *plan = NULL;
  }
  return e;
}

typedef struct run_outputs {
  inferd_tensor *tensors;
  int count;
} run_outputs;

static void run_outputs_free(run_outputs *o) {
  for (int i = 0; i < o->count; i++) free(o->tensors[i].data);
  free(o->tensors);
}

static int run_model(run_args *a) {
  /* Files first: a batch not given comes from them. */
  long batch = a->batch;
  bool guessed = false;
  for (int i = 0; i < a->n_inputs; i++) {
    inferd_error *e = npy_read(a->inputs[i].file, &a->inputs[i].array);
    if (e) {
      char what[256];
      snprintf(what, sizeof(what), "input '%s'", a->inputs[i].name);
      return engine_failure(e, what);
    }
    if (!batch && a->inputs[i].array.rank > 0) {
      batch = (long)a->inputs[i].array.dims[0];
      guessed = true;
    }
  }
  if (guessed && batch < 1) batch = 1;

  inferd_plan *plan = NULL;
  uint64_t t0 = clock_now_ns();
  inferd_error *e = load_plan(a, guessed ? batch : a->batch, guessed, &plan);
  if (e) return engine_failure(e, NULL);
  uint64_t t1 = clock_now_ns();
  bool dynamic = inferd_plan_has_dynamic_batch(plan);
  if (!dynamic) batch = 1;
  else if (!batch) batch = inferd_plan_max_batch_size(plan);

  int status = 0;
  int n_model_inputs = inferd_plan_input_count(plan);
  int n_model_outputs = inferd_plan_output_count(plan);
  inferd_tensor *inputs = mem_zalloc((size_t)(n_model_inputs + 1) * sizeof(*inputs));
  run_input *generated = mem_zalloc((size_t)(n_model_inputs + 1) * sizeof(*generated));
  int n_generated = 0;
  run_outputs outputs = {.tensors = mem_zalloc((size_t)(n_model_outputs + 1) * sizeof(inferd_tensor))};
  path_set used = {0};
  inferd_context *ctx = NULL;

  for (int i = 0; i < a->n_inputs && !status; i++) {
    int k = find_input_name(plan, a->inputs[i].name);
    if (k < 0) {
      fprintf(stderr, "inferd run: the model has no input named '%s'\n", a->inputs[i].name);
      print_input_names(plan);
      status = EXIT_USAGE;
    }
  }
  /* Every model input in the model's order, from a file or generated. */
  uint64_t rng = a->seed;
  for (int k = 0; k < n_model_inputs && !status; k++) {
    inferd_tensor_info info;
    if ((e = inferd_plan_input(plan, k, &info))) {
      status = engine_failure(e, NULL);
      break;
    }
    run_input *in = NULL;
    for (int i = 0; i < a->n_inputs; i++)
      if (strcmp(a->inputs[i].name, info.name) == 0) in = &a->inputs[i];
    if (in) {
      if ((status = check_file_input(in, &info, dynamic, batch))) break;
    } else if (a->random_input) {
      in = &generated[n_generated++];
      in->name = info.name;
      size_t bytes;
      if (!tensor_bytes(&info, batch, dynamic, in->array.dims, &bytes) ||
          !(in->array.data = mem_try_alloc(bytes, 1))) {
        fprintf(stderr, "inferd run: input '%s' is too large to generate at batch %ld\n", info.name, batch);
        status = EXIT_FAILURE;
        break;
      }
      in->array.dtype = info.datatype;
      in->array.rank = info.rank;
      in->array.nbytes = bytes;
      fill_random(info.datatype, in->array.data, bytes / inferd_datatype_size(info.datatype), &rng);
    } else {
      fprintf(stderr, "inferd run: input '%s' is missing: give --input %s=FILE.npy or ask for --random-input\n",
              info.name, info.name);
      print_input_names(plan);
      status = EXIT_USAGE;
      break;
    }
    inputs[k] = (inferd_tensor){
        .name = info.name,
        .datatype = in->array.dtype,
        .rank = in->array.rank,
        .data = in->array.data,
        .byte_size = in->array.nbytes,
    };
    memcpy(inputs[k].dims, in->array.dims, sizeof(inputs[k].dims));
  }

  for (int k = 0; k < n_model_outputs && !status; k++) {
    inferd_tensor_info info;
    if ((e = inferd_plan_output(plan, k, &info))) {
      status = engine_failure(e, NULL);
      break;
    }
    inferd_tensor *t = &outputs.tensors[outputs.count++];
    int64_t dims[INFERD_MAX_RANK];
    size_t bytes;
    if (!tensor_bytes(&info, batch, dynamic, dims, &bytes) || !(t->data = mem_try_aligned(bytes))) {
      fprintf(stderr, "inferd run: output '%s' is too large at batch %ld\n", info.name, batch);
      status = EXIT_FAILURE;
      break;
    }
    t->name = info.name;
    t->byte_size = bytes;
  }

  uint64_t t2 = 0, t3 = 0;
  if (!status) {
    inferd_context_options copts = {.threads = (int)a->threads};
    if ((e = inferd_context_create(plan, &copts, &ctx))) status = engine_failure(e, NULL);
  }
  if (!status) {
    t2 = clock_now_ns();
    e = inferd_context_run(ctx, (int)batch, inputs, n_model_inputs, outputs.tensors, outputs.count);
    t3 = clock_now_ns();
    if (e) status = engine_failure(e, NULL);
  }
  if (!status && a->output_dir) {
    inferd_error *made = files_make_dirs(a->output_dir);
    if (made) {
      fprintf(stderr, "inferd run: %s\n", inferd_error_message(made));
      inferd_error_delete(made);
      status = EXIT_FAILURE;
    }
  }

  if (!status) {
    printf("model    %s\n", a->model);
    char where[32];
    printf("backend  %s on %s, %s, batch %ld%s, load %.1f ms, run %.2f ms\n", inferd_plan_backend_name(plan),
           cli_device_name(inferd_plan_device(plan), where, sizeof(where)),
           inferd_precision_name(inferd_plan_precision(plan)), batch, dynamic ? "" : " (no batch dimension)",
           (double)(t1 - t0) / 1e6, (double)(t3 - t2) / 1e6);
    for (int k = 0; k < n_model_inputs && !status; k++) {
      char shape[160];
      const char *source = "random";
      for (int i = 0; i < a->n_inputs; i++)
        if (strcmp(a->inputs[i].name, inputs[k].name) == 0) source = a->inputs[i].file;
      printf("input    %s %s %s from %s", inputs[k].name, inferd_datatype_name(inputs[k].datatype),
             shape_text(shape, sizeof(shape), inputs[k].rank, inputs[k].dims, -1), source);
      if (a->output_dir && strcmp(source, "random") == 0) {
        char *path = output_path(&used, a->output_dir, "input_", inputs[k].name);
        if ((e = save_tensor(path, inputs[k].datatype, inputs[k].rank, inputs[k].dims, inputs[k].data,
                             inputs[k].byte_size)))
          status = engine_failure(e, "saving a random input");
        else
          printf(", saved to %s", path);
        free(path);
      }
      printf("\n");
    }
    for (int k = 0; k < outputs.count && !status; k++) {
      inferd_tensor *t = &outputs.tensors[k];
      char shape[160];
      printf("output   %s %s %s", t->name, inferd_datatype_name(t->datatype),
             shape_text(shape, sizeof(shape), t->rank, t->dims, -1));
      size_t esize = inferd_datatype_size(t->datatype);
      print_float_stats(t->datatype, t->data, esize ? t->byte_size / esize : 0);
      if (a->output_dir) {
        char *path = output_path(&used, a->output_dir, "", t->name);
        if ((e = save_tensor(path, t->datatype, t->rank, t->dims, t->data, t->byte_size)))
          status = engine_failure(e, "saving an output");
        else
          printf(" -> %s%s", path, t->datatype == INFERD_TYPE_BF16 ? " (as float32)" : "");
        free(path);
      }
      printf("\n");
    }
  }

  inferd_context_delete(ctx);
  run_outputs_free(&outputs);
  for (int i = 0; i < n_generated; i++) npy_free(&generated[i].array);
  free(generated);
  free(inputs);
  path_set_free(&used);
  inferd_plan_delete(plan);
  return status;
}

int cmd_run(int argc, char **argv) {
  run_args a = {0};
  int status = parse_args(argc, argv, &a);
  if (status < 0) status = run_model(&a);
  run_args_free(&a);
  return status;
}
