/*
 * What the model_config*.c files share and nobody else needs: the reader that
 * turns a pbtxt tree (from text or JSON) into a model_config, the table of
 * field locations used to point messages at file:line:column, and small
 * allocation helpers that turn exhaustion into errors.
 *
 * Locations are keyed by a field path as the reader walks it:
 * "max_batch_size", "input[1]", "input[1].dims", "input[1].dims[2]" (a list
 * element), "parameters[key]" and "model_warmup[0].inputs[x]" (map entries).
 */
#ifndef INFERD_SERVER_MODEL_CONFIG_INTERNAL_H
#define INFERD_SERVER_MODEL_CONFIG_INTERNAL_H

#include "server/model_config.h"
#include "server/pbtxt.h"

/* Reads a parsed tree into a new config and runs the partial validation
 * (everything that does not need the model). */
inferd_error *model_config__read(const pbtxt_doc *doc, model_config **config);

/* Validation; `completed` adds what completion must have settled: every
 * tensor has a data type and dims, and max_batch_size is known. */
inferd_error *model_config__validate(const model_config *config, bool completed);

void model_config__locate(model_config *config, const char *path, int line, int column);
/* False when the path was not read from text (JSON, or filled in by code). */
bool model_config__location(const model_config *config, const char *path, int *line, int *column);

/* An INVALID_ARG error "source:line:col: message" at `path`'s location, or
 * "source: message" when it has none. */
inferd_error *model_config__error(const model_config *config, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends a warning "source:line:col: message" (line 0: no location). */
void model_config__warn(model_config *config, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Adds the count of warnings past the listed maximum, if any. */
void model_config__finish_warnings(model_config *config);

/* malloc'd copy of s[0..len) or NULL when memory is short. */
char *model_config__strndup(const char *s, size_t len);
char *model_config__strdup(const char *s);
inferd_error *model_config__no_memory(const model_config *config);

/* The tensor list of one direction, so inputs and outputs share code. */
static inline model_tensor_config *model_config__tensors(const model_config *config, bool input, int *count) {
  *count = input ? config->input_count : config->output_count;
  return input ? config->inputs : config->outputs;
}

/* "[3,224,224]" into buf. */

#endif
