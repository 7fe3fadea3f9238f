/*
 * ONNX files in and out of the IR.
 *
 * Import maps the file into memory and points initializer constants straight
 * at their bytes (raw_data inside the file, or external data files mapped
 * too), so weights are not copied at load. The graph owns the mappings.
 * Constant data is always aligned to its element size, so it may be read
 * through a pointer of its type: raw_data that an encoder left unaligned is
 * copied into an aligned block (files written by onnx_export_file are
 * aligned, so they load without copies).
 *
 * Every malformed file is an error that says what is wrong: not ONNX, cut
 * short (with the offset), an op the engine does not know (naming op and
 * node), a tensor whose data does not match its dims, a name defined twice
 * or used before it is defined. Shapes and attribute values are checked
 * later, by shape inference.
 *
 * Graph inputs need a declared shape; a dim_param (or missing value) on the
 * first dimension is the dynamic batch (IR_DIM_BATCH), anywhere else an
 * error. Declared output types and shapes are recorded as hints. Constant
 * nodes become constant values, not nodes.
 */
#ifndef INFERD_ENGINE_ONNX_ONNX_H
#define INFERD_ENGINE_ONNX_ONNX_H

#include "engine/ir.h"

/* Reads an ONNX model. External data paths are relative to the model's folder. */
inferd_error *onnx_import_file(const char *path, ir_graph **graph);
/* Same, and the initializers named in `inputs` that are graph inputs too
 * stay inputs: ONNX's inputs with a default value. Such an input's value
 * keeps the default in data/nbytes (and its shape in default_shape) until
 * the caller takes it. */
inferd_error *onnx_import_file_with_defaults(const char *path, const char *const *inputs, int n_inputs,
                                             ir_graph **graph);
/* Same from memory (no external data); the bytes are copied when needed. */
inferd_error *onnx_import_buffer(const void *data, size_t size, ir_graph **graph);

/* Reads a serialized TensorProto (the .pb files of the ONNX test suites).
 * *tensor's data is malloc'd and owned by the caller; its name, when the
 * file has one, is malloc'd into *name (may be NULL to ignore). */
inferd_error *onnx_read_tensor_file(const char *path, ir_tensor *tensor, char **name);

/* Writes a graph as an ONNX model (opset g->opset, IR version 8): its live
 * nodes, the constants they (or the graph outputs) use as initializers in
 * 64-byte aligned raw_data, inputs with IR_DIM_BATCH as dim_param "N". The
 * graph must not be optimized yet (fused post-ops have no ONNX form). The
 * file is written under a temporary name and renamed into place. */
inferd_error *onnx_export_file(const ir_graph *graph, const char *path);

#endif
