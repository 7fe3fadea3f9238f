/*
 * The CUDA backend's own kernels, for what cuDNN and cuBLASLt do not fuse:
 * strided copies that convert layout and precision (model inputs and
 * outputs, NCHW <-> NHWC, Transpose, Concat), broadcasting binary ops,
 * activations, pooling in NHWC, softmax along any axis, inference batch
 * normalization, reductions, padding, the bias-and-activation epilogue
 * of a convolution that cuDNN runs unfused, and a direct convolution for
 * shapes no cuDNN engine takes. Every launcher queues its kernel on
 * `stream` and returns the launch's error code (0 is success).
 *
 * Tensors are described element-wise: a kernel walks an index space of up
 * to CUDA_MAX_DIMS dimensions, and each operand gives its element stride
 * per dimension (0 broadcasts). Storage types are fp32, fp16 and bf16.
 */
#ifndef INFERD_ENGINE_CUDA_KERNELS_H
#define INFERD_ENGINE_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st *cuda_stream_t;

enum { CUDA_MAX_DIMS = 6 };

typedef enum cuda_dtype { CUDA_F32 = 0, CUDA_F16, CUDA_BF16 } cuda_dtype;

/* Activations the kernels apply, in the IR's numbering (ir_eltwise_alg). */
typedef enum cuda_act {
  CUDA_ACT_NONE = 0,
  CUDA_ACT_RELU,
  CUDA_ACT_LEAKY_RELU, /* alpha */
  CUDA_ACT_CLIP,       /* alpha = min, beta = max */
  CUDA_ACT_SIGMOID,
  CUDA_ACT_HARD_SIGMOID, /* alpha, beta */
  CUDA_ACT_HARD_SWISH,
  CUDA_ACT_TANH,
} cuda_act;

/* One step of an epilogue: an activation, or adding the operand `sum`. */
typedef struct cuda_epilogue_op {
  int is_sum;
  cuda_act act;
  float alpha, beta;
} cuda_epilogue_op;

enum { CUDA_MAX_EPILOGUE = 4 };

typedef struct cuda_epilogue {
  int n_ops;
  cuda_epilogue_op ops[CUDA_MAX_EPILOGUE];
} cuda_epilogue;

typedef struct cuda_index_space {
  int rank;
  int64_t dims[CUDA_MAX_DIMS];
} cuda_index_space;

typedef struct cuda_operand {
  void *data; /* element 0 of the operand's view */
  cuda_dtype dtype;
  int64_t strides[CUDA_MAX_DIMS];
} cuda_operand;

/* MAX and MIN are Clip with bounds known only at run time. */
typedef enum cuda_binary_op {
  CUDA_BIN_ADD = 0,
  CUDA_BIN_SUB,
  CUDA_BIN_MUL,
  CUDA_BIN_DIV,
  CUDA_BIN_MAX,
  CUDA_BIN_MIN,
} cuda_binary_op;

/* out = convert(in), then the epilogue's activations (sums not allowed). */
int cuda_launch_copy(cuda_stream_t stream, const cuda_index_space *space, const cuda_operand *out,
                     const cuda_operand *in, const cuda_epilogue *epilogue);
/* out = a op b, then the epilogue's activations. */
int cuda_launch_binary(cuda_stream_t stream, cuda_binary_op op, const cuda_index_space *space,
                       const cuda_operand *out, const cuda_operand *a, const cuda_operand *b,
                       const cuda_epilogue *epilogue);
/* In place on a dense NHWC tensor of n_rows rows of c channels: y = y +
 * bias[c] (bias may be NULL), then the epilogue, whose sums read `sum`
 * (dense, same shape and type as y). */
int cuda_launch_bias_epilogue(cuda_stream_t stream, cuda_dtype dtype, void *y, int64_t n_rows, int64_t c,
                              const void *bias, const void *sum, const cuda_epilogue *epilogue);

typedef struct cuda_pool_desc {
  int64_t n, h, w, c;      /* input, NHWC; c is also the row stride */
  int64_t oh, ow;          /* output */
  int kh, kw, sh, sw, dh, dw;
  int pad_t, pad_l;
  int pad_b, pad_r;        /* end padding: taps past it (ceil_mode) never count */
  int is_max;
  int count_include_pad;   /* AveragePool */
} cuda_pool_desc;

/* 2-D max or average pooling over dense NHWC tensors. */
int cuda_launch_pool(cuda_stream_t stream, cuda_dtype dtype, const cuda_pool_desc *d, const void *x, void *y);

/* A model's NCHW fp32 input to NHWC in `dtype` with cp >= c channels, the
 * padding zero. */
int cuda_launch_nchw_to_nhwc(cuda_stream_t stream, cuda_dtype dtype, int64_t n, int64_t c, int64_t hw, int64_t cp,
                             const float *x, void *y);

/* Softmax (or LogSoftmax) over the last axis of rows x cols, dense. */
int cuda_launch_softmax(cuda_stream_t stream, cuda_dtype dtype, int64_t rows, int64_t cols, const void *x, void *y,
                        int log);

/* Softmax (or LogSoftmax) over the middle dim of a dense [outer, cols,
 * inner] tensor: rows whose elements lie `inner` apart (a non-last axis). */
int cuda_launch_softmax_strided(cuda_stream_t stream, cuda_dtype dtype, int64_t outer, int64_t cols, int64_t inner,
                                const void *x, void *y, int log);

/* Inference BatchNormalization over a dense tensor of `total` elements
 * whose channel index is (i / inner) % c (inner = 1 for NHWC):
 * y = (x - mean) / sqrt(var + epsilon) * scale + bias, the four vectors of c
 * elements in the tensor's type. */
int cuda_launch_batchnorm(cuda_stream_t stream, cuda_dtype dtype, int64_t total, int64_t c, int64_t inner,
                          const void *x, void *y, const void *scale, const void *bias, const void *mean,
                          const void *var, float epsilon);

/* A reduction: for each element of the (dense) output, indexed over `kept`
 * with the input strides `kept_strides`, the sum (or mean) of the input
 * over `reduced` with strides `reduced_strides`. */
typedef struct cuda_reduce_desc {
  cuda_index_space kept, reduced;
  int64_t kept_strides[CUDA_MAX_DIMS], reduced_strides[CUDA_MAX_DIMS];
  int mean;
} cuda_reduce_desc;
int cuda_launch_reduce(cuda_stream_t stream, cuda_dtype dtype, const cuda_reduce_desc *d, const void *x, void *y);

/* Pad of a dense tensor into a dense one: output position o reads input
 * o - pad_begin per dim; outside the input it takes `value` (or element 0
 * of `value_ptr`, in the tensors' type, when that is not NULL), the edge
 * element, or the element mirrored about the edges (repeatedly). */
typedef enum cuda_pad_mode { CUDA_PAD_CONSTANT = 0, CUDA_PAD_REFLECT, CUDA_PAD_EDGE } cuda_pad_mode;
typedef struct cuda_pad_desc {
  int rank;
  int64_t out_dims[CUDA_MAX_DIMS], in_dims[CUDA_MAX_DIMS], pad_begin[CUDA_MAX_DIMS];
  cuda_pad_mode mode;
  float value;
} cuda_pad_desc;
int cuda_launch_pad(cuda_stream_t stream, cuda_dtype dtype, const cuda_pad_desc *d, const void *x, void *y,
                    const void *value_ptr);

typedef struct cuda_conv_desc {
  int64_t n, h, w, c;   /* input NHWC, c = channels as stored */
  int64_t k, oh, ow;    /* output NHWC */
  int r, s;             /* kernel */
  int groups;           /* c and k divide by it */
  int sh, sw, dh, dw, pad_t, pad_l;
} cuda_conv_desc;

/* Direct convolution over NHWC x and KRSC weights (c/groups per filter),
 * bias (same type, per k) or NULL, then the epilogue (sums read `sum`, dense like y). */
int cuda_launch_conv_direct(cuda_stream_t stream, cuda_dtype dtype, const cuda_conv_desc *d, const void *x,
                            const void *w, const void *bias, const void *sum, void *y, const cuda_epilogue *epilogue);

/* Fills n elements with deterministic pseudo-random values in [-1, 1]
 * (buffers timed during autotuning hold data, not zeros). */
int cuda_launch_fill_random(cuda_stream_t stream, cuda_dtype dtype, void *data, int64_t n, uint32_t seed);

/* One copy of a gather: `size` bytes from src to dst. */
typedef struct cuda_copy_entry {
  void *dst;
  const void *src;
  uint64_t size;
} cuda_copy_entry;

/* Does `count` copies in one launch. `table` (count entries) and every
 * pointer in it must be readable from the device: GPU memory, or pinned
 * host memory mapped into it. `max_size` bounds the entries' sizes. */
int cuda_launch_copies(cuda_stream_t stream, const cuda_copy_entry *table, int count, uint64_t max_size);

/* The message for a launcher's error code. */
const char *cuda_kernel_error_string(int code);

#ifdef __cplusplus
}
#endif

#endif
