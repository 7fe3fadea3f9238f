/*
 * The model repository on disk and the model lifecycle: which models exist
 * (one folder each), loading a model's versions (config.pbtxt parsed,
 * completed from the model, plan compiled, instances started), unloading,
 * and, in poll mode, reloading what changes without dropping requests in
 * flight (new versions start before old ones are released).
 */
#ifndef INFERD_SERVER_REPOSITORY_H
#define INFERD_SERVER_REPOSITORY_H

#include "server/server.h"

/* Loads the startup models for the control mode and starts the poll thread. */
inferd_error *repository_start(inferd_server *server, const inferd_server_options *options);
/* Stops the poll thread. */
void repository_stop(inferd_server *server);
/* Loads or reloads `name` (config_json: a configuration replacing
 * config.pbtxt, or NULL). */
inferd_error *repository_load(inferd_server *server, const char *name, const char *config_json);
inferd_error *repository_unload(inferd_server *server, const char *name);
/* Names of the model folders in the repository, sorted; caller frees. */
inferd_error *repository_list(const inferd_server *server, char ***names, int *count);

#endif
