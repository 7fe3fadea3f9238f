/*
 * What the repository needs from a model's configuration, in two steps:
 * read (config.pbtxt or a JSON override, before the model file is opened:
 * which versions to load, which file), then complete (from the model's
 * inputs and outputs: batching, scheduler settings, labels, the JSON that
 * /config returns). Built on model_config.c's parser.
 */
#ifndef INFERD_SERVER_MODEL_SETTINGS_H
#define INFERD_SERVER_MODEL_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>

#include "inferd.h"
#include "server/model.h"
#include "server/model_config.h"
#include "server/scheduler.h"

typedef enum version_policy_kind { VERSION_POLICY_LATEST = 0, VERSION_POLICY_ALL, VERSION_POLICY_SPECIFIC } version_policy_kind;

typedef struct model_settings model_settings;

/* Reads <model_dir>/config.pbtxt (absent: an empty configuration) or, when
 * config_json is not NULL, that instead. Warnings (ignored fields) are
 * logged. */
inferd_error *model_settings_read(const char *model_dir, const char *name, const char *config_json, bool strict,
                                  model_settings **out);
void model_settings_free(model_settings *settings);

version_policy_kind model_settings_version_policy(const model_settings *s, int *latest_n, const int64_t **versions,
                                                  int *n_versions);
/* The engine's optimization passes to leave out: "all" at
 * optimization.graph.level -1, else NULL. */
const char *model_settings_disabled_passes(const model_settings *s);
/* File name of the model in each version folder ("model.onnx" by default). */
const char *model_settings_model_filename(const model_settings *s);
/* Names of the inputs the configuration marks `optional` (a malloc'd array
 * of names the settings own; free the array only). Returns the count. */
int model_settings_optional_inputs(const model_settings *s, const char ***names);

/* Completes and checks the configuration against the model's tensors. */
inferd_error *model_settings_complete(model_settings *s, const inferd_tensor_info *inputs, int n_inputs,
                                      const inferd_tensor_info *outputs, int n_outputs, bool dynamic_batch);
/* After completion: places the instance groups on `gpus`
 * (model_config_place_instances: KIND_AUTO settled, KIND_GPU's GPUs filled
 * in or refused) and lists the version's instances in group order, `count`
 * per GPU of a GPU group. *instances is the caller's to free. */
inferd_error *model_settings_place(model_settings *s, const model_gpu_set *gpus, model_instance_spec **instances,
                                   int *count);
/* After completion (and placement, for the instance count): */
const char *model_settings_platform(const model_settings *s);
int model_settings_max_batch_size(const model_settings *s);
void model_settings_scheduler(const model_settings *s, int threads_per_instance, scheduler_config *config);
/* Resolves `relative` (a name, or "<version>/<name>", inside the model
 * folder) into out[PATH_MAX], every symlink followed, and checks that it
 * stays inside the model folder: a symlink in the folder may point only
 * within it. The model folder itself may be a symlink; the folder it points
 * to is the boundary. NOT_FOUND when the file is absent, INVALID_ARG when it
 * resolves outside; `what` names the file in the message. */
inferd_error *model_settings_path(const model_settings *s, const char *relative, const char *what, char *out);
/* Labels of output `name` (label_filename, read relative to the model
 * folder), or none. The caller owns the strings and the array. */
inferd_error *model_settings_labels(const model_settings *s, const char *output, char ***labels, int *count);
/* The dims clients use for tensor `name` (without the batch dimension),
 * when the configuration reshapes it for the model; false otherwise. */
bool model_settings_client_dims(const model_settings *s, const char *name, bool input, int *rank, int64_t *dims);
/* The parsed configuration itself, for what the repository reads directly
 * (warmup samples). */
const struct model_config *model_settings_config(const model_settings *s);
/* The completed configuration as /config returns it; caller frees. */
char *model_settings_json(const model_settings *s);

#endif
