/*
 * A model's configuration: Triton's ModelConfig (model_config.proto), read
 * from config.pbtxt (protobuf text format) or from its JSON form, validated,
 * completed from the model itself, and written back as the JSON that
 * /v2/models/{m}/config answers with.
 *
 * Lifecycle:
 *   model_config_load / _parse / _parse_json / _new   -> a config (caller owns)
 *   model_config_complete                             -> filled and checked
 *                                                        against the model
 *   model_config_to_json                              -> Triton's JSON form
 *   model_config_free
 *
 * The server core reads the structs below directly. Every string is non-NULL
 * ("" when absent, proto3 style) and every array is owned by the config; all
 * of it is freed by model_config_free. Code that edits a config should use
 * the same allocator (malloc), since model_config_free releases each piece.
 *
 * Fields of a valid Triton configuration that inferd does not implement
 * (sequence_batching, ensemble_scheduling, response_cache, the parts of
 * optimization other than the GPU accelerators' precision, ...) are skipped
 * whole and reported in `warnings`, as are field names Triton does
 * not know; neither is fatal. A malformed file, a wrong type, an unknown enum
 * value or an invalid value is an error naming file:line:column.
 */
#ifndef INFERD_SERVER_MODEL_CONFIG_H
#define INFERD_SERVER_MODEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inferd.h"

/* max_batch_size given to a model with a dynamic batch dimension when the
 * configuration leaves it out and is not strict. Triton's auto-complete uses
 * 4 too (its --backend-config=default-max-batch-size): large enough for the
 * dynamic batcher to pay off, small enough that the activation memory planned
 * for it stays modest on CPU. */
#define MODEL_CONFIG_DEFAULT_MAX_BATCH_SIZE 4

/* Bounds on what a configuration may ask for, so that counts and sizes taken
 * from a file or a client stay far from overflow in the arithmetic and
 * allocations they feed (staging buffers and per-batch tables of
 * max_batch_size items, one thread per instance, one queue per priority
 * level, nanosecond deadlines). Each is well beyond what a CPU serves. */
#define MODEL_CONFIG_MAX_BATCH_SIZE (1 << 16)
#define MODEL_CONFIG_MAX_INSTANCES 1024         /* over all instance groups */
#define MODEL_CONFIG_MAX_PREFERRED_SIZES 16     /* preferred_batch_size entries */
#define MODEL_CONFIG_MAX_PRIORITY_LEVELS 256
#define MODEL_CONFIG_MAX_DELAY_US 3600000000ull    /* max_queue_delay_microseconds: one hour */
#define MODEL_CONFIG_MAX_TIMEOUT_US 86400000000ull /* default_timeout_microseconds: one day */
#define MODEL_CONFIG_MAX_WARMUP_COUNT 10000     /* executions of one warmup sample */

/* Values as in model_config.proto, so JSON clients that send numbers agree. */
typedef enum model_format {
  MODEL_FORMAT_NONE = 0,
  MODEL_FORMAT_NHWC = 1,
  MODEL_FORMAT_NCHW = 2,
} model_format;

typedef enum model_instance_kind {
  MODEL_KIND_AUTO = 0, /* GPU when the listed GPUs exist, else CPU: the server decides */
  MODEL_KIND_GPU = 1,
  MODEL_KIND_CPU = 2,
  MODEL_KIND_MODEL = 3,
} model_instance_kind;

typedef enum model_timeout_action {
  MODEL_TIMEOUT_REJECT = 0,
  MODEL_TIMEOUT_DELAY = 1,
} model_timeout_action;

typedef enum model_version_policy_kind {
  MODEL_VERSIONS_LATEST = 0, /* the default: latest { num_versions: 1 } */
  MODEL_VERSIONS_ALL,
  MODEL_VERSIONS_SPECIFIC,
} model_version_policy_kind;

typedef enum model_warmup_source {
  MODEL_WARMUP_ZERO_DATA = 0,
  MODEL_WARMUP_RANDOM_DATA,
  MODEL_WARMUP_INPUT_DATA_FILE,
} model_warmup_source;

/* One input or output. dims exclude the batch dimension when the model
 * batches (max_batch_size > 0); -1 is a dimension of any size. rank 0 means
 * dims were not given (completion fills them; strict mode refuses). */
typedef struct model_tensor_config {
  char *name;
  inferd_datatype datatype; /* INFERD_TYPE_INVALID: not given; TYPE_STRING is BYTES */
  model_format format;      /* inputs only */
  int rank;
  int64_t dims[INFERD_MAX_RANK];
  /* The shape the model itself sees, when it differs from dims; element
   * counts must agree. reshape_rank 0 with has_reshape is a scalar. */
  bool has_reshape;
  int reshape_rank;
  int64_t reshape[INFERD_MAX_RANK];
  char *label_filename; /* outputs only; "" when none */
  bool is_shape_tensor;
  bool allow_ragged_batch; /* inputs only */
  bool optional;           /* inputs only */
} model_tensor_config;

typedef struct model_instance_group {
  char *name; /* "<model>_<index>" when not given (set by completion) */
  model_instance_kind kind;
  int count; /* >= 1; 1 when not given */
  int *gpus; /* device ids; empty means every GPU for KIND_GPU/AUTO */
  int gpu_count;
} model_instance_group;

typedef struct model_queue_policy {
  model_timeout_action timeout_action;
  uint64_t default_timeout_microseconds; /* 0: none */
  bool allow_timeout_override;
  uint32_t max_queue_size; /* 0: unbounded */
} model_queue_policy;

typedef struct model_priority_queue_policy {
  uint64_t priority_level; /* 1 .. priority_levels */
  model_queue_policy policy;
} model_priority_queue_policy;

typedef struct model_dynamic_batching {
  bool enabled; /* a dynamic_batching section was given (or completion added one) */
  int *preferred_batch_sizes;
  int preferred_batch_size_count;
  uint64_t max_queue_delay_microseconds;
  bool preserve_ordering;
  uint64_t priority_levels;        /* 0: priorities off */
  uint64_t default_priority_level; /* 1 .. priority_levels, or 0 when off */
  bool has_default_queue_policy;
  model_queue_policy default_queue_policy; /* defaults (REJECT, 0, false, 0) when not given */
  model_priority_queue_policy *priority_queue_policies;
  int priority_queue_policy_count;
} model_dynamic_batching;

typedef struct model_version_policy {
  model_version_policy_kind kind;
  uint32_t num_versions; /* latest: >= 1 */
  int64_t *versions;     /* specific: each >= 1 */
  int version_count;
} model_version_policy;

typedef struct model_parameter {
  char *key;
  char *string_value;
} model_parameter;

/* One entry of optimization.execution_accelerators.gpu_execution_accelerator
 * (Triton's ExecutionAccelerators.Accelerator): a name ("tensorrt") and its
 * string parameters ("precision_mode": "FP16"), kept to be written back. */
typedef struct model_accelerator {
  char *name;
  model_parameter *parameters;
  int parameter_count;
} model_accelerator;

typedef struct model_warmup_input {
  char *name; /* the model input it feeds (the map key) */
  inferd_datatype datatype;
  int rank;
  int64_t dims[INFERD_MAX_RANK]; /* without the batch dimension; all >= 1 */
  model_warmup_source source;
  char *input_data_file; /* MODEL_WARMUP_INPUT_DATA_FILE: under <model>/warmup/ */
} model_warmup_input;

typedef struct model_warmup {
  char *name;
  uint32_t batch_size; /* >= 1; 1 when the model does not batch */
  model_warmup_input *inputs;
  int input_count;
  uint32_t count; /* executions of this sample; 0 means once */
} model_warmup;

typedef struct model_config_private model_config_private;

typedef struct model_config {
  char *name;
  char *platform; /* "onnxruntime_onnx" after completion */
  char *backend;  /* "onnxruntime" after completion */
  model_version_policy version_policy;
  int max_batch_size;      /* 0: the model does not batch */
  bool has_max_batch_size; /* given explicitly (an explicit 0 is kept by completion) */
  model_tensor_config *inputs;
  int input_count;
  model_tensor_config *outputs;
  int output_count;
  model_instance_group *instance_groups;
  int instance_group_count;
  model_dynamic_batching dynamic_batching;
  model_parameter *parameters;
  int parameter_count;
  model_accelerator *gpu_accelerators;
  int gpu_accelerator_count;
  /* What GPU instances compute in, from the TensorRT accelerator's
   * precision_mode (FP16; FP32 is the GPU default, TF32) or the model
   * parameter `precision` / `inferd_precision` (fp32 strict, tf32, fp16,
   * bf16), which agree when both are given; DEFAULT when neither is. CPU
   * instances compute in FP32. */
  inferd_precision precision;
  /* optimization.execution_accelerators.cpu_execution_accelerator: only
   * "inferd", with parameters precision (fp32 or int8), calibration_cache
   * (a file under the model's directory, or absolute) and int8_keep.
   * cpu_precision is what CPU instances compute in (DEFAULT: FP32);
   * calibration_cache and int8_keep point into the entries (or are NULL). */
  /* The tensorrt accelerator's trt_engine_cache_path (a folder, relative
   * to the model's directory unless absolute; NULL: next to the model file)
   * and trt_engine_cache_enable false (tactic_cache_off: GPU plans time
   * their kernels at every load and keep nothing). Point into the entries. */
  const char *tactic_cache_dir;
  bool tactic_cache_off;
  model_accelerator *cpu_accelerators;
  int cpu_accelerator_count;
  inferd_precision cpu_precision;
  const char *calibration_cache;
  const char *int8_keep;
  /* optimization.graph.level: -1 turns inferd's graph optimizations off,
   * 0 (the default) and higher keep them all (inferd has one level). */
  int graph_level;
  bool has_graph_level;
  /* ONNX Runtime's intra_op_thread_count model parameter, as Triton users
   * set it for the onnxruntime backend: the CPU threads of each instance
   * (over the server's --instance-threads); 0: the server's choice. */
  int intra_op_threads;
  model_warmup *warmups;
  int warmup_count;
  char *default_model_filename;
  /* sequence_batching or ensemble_scheduling was given (and ignored): the
   * model asked for a scheduler other than dynamic batching, so completion
   * does not turn dynamic batching on for it. */
  bool has_other_scheduler;

  /* Messages about ignored fields, "file:line:col: field 'x' is ...", for the
   * caller to log; a file with very many gets the first few and a count. */
  char **warnings;
  int warning_count;

  /* Where things came from, for messages: the source name given to the
   * parser, and (private) the line:column of each field read. */
  char *source;
  model_config_private *private_data;
} model_config;

/* An empty configuration (as if config.pbtxt were absent); `source` names it
 * in messages (NULL: "config"). Never fails. */
model_config *model_config_new(const char *source);

/* Reads and parses a config.pbtxt file. NOT_FOUND when the file is absent,
 * IO when it cannot be read, TOO_LARGE past 1 MiB (PBTXT_MAX_INPUT_BYTES);
 * syntax, type and validation errors are INVALID_ARG "path:line:col: ...". */
inferd_error *model_config_load(const char *path, model_config **config);

/* Parses text format; `source` names the text in messages (e.g. its path). */
inferd_error *model_config_parse(const char *text, size_t len, const char *source, model_config **config);

/* Parses Triton's JSON form (the load-with-config-override API). Keys,
 * defaults and validation are those of the text form; int64 values may be
 * numbers or strings, enums names (any case) or numbers, as in protobuf's
 * JSON mapping. `source` names the text in messages (NULL: "config JSON");
 * JSON values carry no line numbers, so only syntax errors have them. */
inferd_error *model_config_parse_json(const char *json, size_t len, const char *source, model_config **config);

/* Checks a completed configuration: every rule that needs no model, and
 * every tensor has data_type and dims. Parsing runs the same rules except
 * those that wait for completion (missing data_type/dims, and the checks
 * against max_batch_size when it is absent); completion ends with this. */
inferd_error *model_config_validate(const model_config *config);

/* What the model says about itself, from its plan. */
typedef struct model_io_info {
  const inferd_tensor_info *inputs;
  int input_count;
  const inferd_tensor_info *outputs;
  int output_count;
  bool dynamic_batch; /* the first dimension of every input and output is -1 */
} model_io_info;

/* Fills what the configuration leaves out and checks it against the model.
 * Always: the name (model_name when absent; must equal it when given), the
 * platform and backend ("onnxruntime_onnx" / "onnxruntime"; others are
 * UNSUPPORTED), instance groups (one KIND_CPU group of count 1 when none,
 * and names "<model>_<index>"), then every input/output named in the config
 * must exist in the model with the same datatype and compatible dims
 * (reshape, when given, is what is compared; -1 in the model matches any
 * size), and every model input must be configured.
 * Not strict (--strict-model-config=false): max_batch_size when absent
 * (MODEL_CONFIG_DEFAULT_MAX_BATCH_SIZE for a dynamic batch, else 0), inputs
 * and outputs when the config has none, missing inputs, and missing
 * data_type/dims of listed ones; dynamic batching with default settings when
 * max_batch_size > 1 and no scheduler was given (as Triton does).
 * Strict: a config without inputs or outputs, or with an entry lacking
 * data_type or dims, is an error. */
/* UNSUPPORTED, at the field's line:column, for a platform or backend other
 * than ONNX Runtime's (naming what Triton's would hold: a TensorFlow
 * SavedModel, a TensorRT engine...); checked before any model file is read. */
inferd_error *model_config_check_platform(model_config *config);
inferd_error *model_config_complete(model_config *config, const char *model_name, const model_io_info *model,
                                    bool strict);

/* The GPUs instances may be placed on, for model_config_place_instances:
 * ordinals ascending, and a sentence on what is usable for messages ("no GPU
 * is visible (...)", "GPUs with compute capability >= 6.0: 0, 1"). */
typedef struct model_gpu_set {
  const int *ordinals;
  int count;
  const char *description;
} model_gpu_set;

/* Decides where each instance group runs, as Triton does: KIND_AUTO becomes
 * KIND_GPU when GPUs are usable and every listed one is (else KIND_CPU,
 * without gpus); KIND_GPU without gpus gets every usable GPU; a listed GPU
 * that is not usable, or KIND_GPU with none usable, is an INVALID_ARG error
 * naming the group and the GPU (at gpus[k]'s file:line:column when known).
 * KIND_CPU and KIND_MODEL groups run on the CPU. Run after completion. */
inferd_error *model_config_place_instances(model_config *config, const model_gpu_set *gpus);

/* Triton's JSON form of the configuration, as /v2/models/{m}/config returns
 * it (protobuf JSON with field names kept, default values printed, 64-bit
 * integers as numbers). *json is malloc'd; the caller frees it. */
inferd_error *model_config_to_json(const model_config *config, char **json);

const model_tensor_config *model_config_find_input(const model_config *config, const char *name);
const model_tensor_config *model_config_find_output(const model_config *config, const char *name);

/* Triton's enum names: "TYPE_FP32" (BYTES is "TYPE_STRING"), "KIND_CPU",
 * "FORMAT_NCHW". Static storage. */
const char *model_config_datatype_name(inferd_datatype type);
inferd_datatype model_config_datatype_from_name(const char *name); /* INFERD_TYPE_INVALID when unknown */
const char *model_config_kind_name(model_instance_kind kind);
const char *model_config_format_name(model_format format);

void model_config_free(model_config *config);

/* Reads a label file: one label per line, as Triton's label_filename. A
 * trailing newline does not make an empty last label; "\r\n" endings are
 * accepted. *labels (an array of *count strings) is owned by the caller and
 * freed with model_config_free_labels. */
inferd_error *model_config_load_labels(const char *path, char ***labels, int *count);
void model_config_free_labels(char **labels, int count);

#endif
