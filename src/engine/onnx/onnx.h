/*
 * ONNX files in and out of the IR.
 *
 * Import maps the file into memory and points initializer constants straight
 * at their bytes (raw_data inside the file, or external data files mapped
 * too), so weights are not copied at load. The graph owns the mappings.
 * Every malformed file is an error that says what is wrong: not ONNX, cut
 * short, an op the engine does not know (naming op and node), a tensor whose
 * data does not match its dims.
 */
#ifndef INFERD_ENGINE_ONNX_ONNX_H
#define INFERD_ENGINE_ONNX_ONNX_H

#include "engine/ir.h"

/* Reads an ONNX model. External data paths are relative to the model's folder. */
inferd_error *onnx_import_file(const char *path, ir_graph **graph);
/* Same from memory (no external data); the bytes are copied when needed. */
inferd_error *onnx_import_buffer(const void *data, size_t size, ir_graph **graph);

/* Reads a serialized TensorProto (the .pb files of the ONNX test suites).
 * *tensor's data is malloc'd and owned by the caller; its name, when the
 * file has one, is malloc'd into *name (may be NULL to ignore). */
inferd_error *onnx_read_tensor_file(const char *path, ir_tensor *tensor, char **name);

/* Writes a graph as an ONNX model (opset g->opset, IR version 8) with all
 * constants as initializers in raw_data. */
inferd_error *onnx_export_file(const ir_graph *graph, const char *path);

#endif
