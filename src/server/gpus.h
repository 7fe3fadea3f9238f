/*
 * The GPUs a server places instances on: those the engine sees whose compute
 * capability reaches the server's minimum (Triton's
 * --min-supported-compute-capability), found once when the server starts,
 * with a sentence saying what is usable for load errors, and the devices as
 * server metadata (GET /v2) lists them.
 */
#ifndef INFERD_SERVER_GPUS_H
#define INFERD_SERVER_GPUS_H

#include <jansson.h>

#include "server/model_config.h"

/* Triton's default --min-supported-compute-capability. */
#define SERVER_DEFAULT_MIN_COMPUTE_CAPABILITY 6.0

typedef struct server_gpus {
  int *ordinals; /* usable, ascending */
  int count;
  int visible; /* GPUs the engine sees, usable or not */
  double min_compute_capability;
  char *description; /* "usable GPUs: 0, 1", "no GPU is visible (...)", ... */
} server_gpus;

/* min_compute_capability 0 means SERVER_DEFAULT_MIN_COMPUTE_CAPABILITY. A
 * GPU whose capability the engine cannot tell is usable. */
void server_gpus_find(double min_compute_capability, server_gpus *gpus);
void server_gpus_free(server_gpus *gpus);
/* A view for model_config_place_instances, valid while gpus is. */
model_gpu_set server_gpus_set(const server_gpus *gpus);
/* [{"name": "cpu", "kind": "CPU", "description": ...}, {"name": "cuda:0",
 * "kind": "GPU", "description": ..., "compute_capability": "9.0",
 * "usable": true}, ...]: the CPU and every GPU the engine sees. */
json_t *server_gpus_devices_json(const server_gpus *gpus);

#endif
