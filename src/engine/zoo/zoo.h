/*
 * The model zoo: well-known architectures built in C, with deterministic
 * weights from a seeded generator, written as a Triton model repository
 * entry (DIR/<id>/1/model.onnx and DIR/<id>/config.pbtxt). It gives tests,
 * benchmarks and demos real-sized models without downloads or Python. The
 * weights are not trained: they are scaled so that activations stay in a
 * sane range through the whole network and different inputs give different
 * outputs, which is what performance and consistency tests need.
 */
#ifndef INFERD_ENGINE_ZOO_ZOO_H
#define INFERD_ENGINE_ZOO_ZOO_H

#include <stdint.h>

#include "engine/ir.h"

typedef struct zoo_model {
  const char *id;
  const char *summary;
  inferd_error *(*build)(uint64_t seed, ir_graph **graph);
} zoo_model;

/* NULL-terminated by id. */
extern const zoo_model zoo_models[];

/* The model with this id, or NULL. */
const zoo_model *zoo_find(const char *id);

/* torchvision's ResNet-50 v1.5 (stride on the 3x3 convolutions): input
 * "input" FP32 [N,3,224,224], output "output" FP32 [N,1000] (logits), opset
 * 13, BatchNormalization kept as separate nodes as in a training-mode export. */
inferd_error *zoo_resnet50_build(uint64_t seed, ir_graph **graph);

typedef struct zoo_write_result {
  char model_path[4096];
  size_t model_bytes;
  int64_t parameters;
} zoo_write_result;

/* Builds model `id` and writes it under `dir` (created as needed) with a
 * config.pbtxt for the onnxruntime platform. max_batch_size 0 means no
 * batching (Triton's meaning): dims then include the batch as -1. */
inferd_error *zoo_write(const zoo_model *model, const char *dir, int max_batch_size, uint64_t seed,
                        zoo_write_result *result);

#endif
