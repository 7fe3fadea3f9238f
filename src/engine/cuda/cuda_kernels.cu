/*
 * Kernels of the CUDA backend (see cuda_kernels.h). Written for clarity
 * first: grid-stride loops over an index space, conversions through float,
 * and the few places where layout matters for speed (pooling and the
 * epilogue walk channels innermost, so a warp touches consecutive bytes).
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "engine/cuda/cuda_kernels.h"

namespace {

__device__ __forceinline__ float load_as_float(const void *p, int64_t i, int dtype) {
  switch (dtype) {
    case CUDA_F16: return __half2float(static_cast<const __half *>(p)[i]);
    case CUDA_BF16: return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
    default: return static_cast<const float *>(p)[i];
  }
}

__device__ __forceinline__ void store_from_float(void *p, int64_t i, int dtype, float v) {
  switch (dtype) {
    case CUDA_F16: static_cast<__half *>(p)[i] = __float2half_rn(v); break;
    case CUDA_BF16: static_cast<__nv_bfloat16 *>(p)[i] = __float2bfloat16_rn(v); break;
    default: static_cast<float *>(p)[i] = v; break;
  }
}

template <typename T> __device__ __forceinline__ float to_f(T v);
template <> __device__ __forceinline__ float to_f<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ float activate(cuda_act act, float x, float alpha, float beta) {
  switch (act) {
    case CUDA_ACT_RELU: return x > 0.f ? x : 0.f;
    case CUDA_ACT_LEAKY_RELU: return x >= 0.f ? x : alpha * x;
    case CUDA_ACT_CLIP: return fminf(fmaxf(x, alpha), beta);
    case CUDA_ACT_SIGMOID: return 1.f / (1.f + __expf(-x));
    case CUDA_ACT_HARD_SIGMOID: return fminf(fmaxf(alpha * x + beta, 0.f), 1.f);
    case CUDA_ACT_HARD_SWISH: return x * fminf(fmaxf(x / 6.f + 0.5f, 0.f), 1.f);
    case CUDA_ACT_TANH: return tanhf(x);
    default: return x;
  }
}

/* Epilogue ops passed by value: the whole struct is a kernel parameter. */
__device__ __forceinline__ float apply_epilogue(const cuda_epilogue &e, float x, float sum) {
  for (int i = 0; i < e.n_ops; i++) {
    const cuda_epilogue_op &op = e.ops[i];
    x = op.is_sum ? x + sum : activate(op.act, x, op.alpha, op.beta);
  }
  return x;
}

struct strided3 {
  int rank;
  int64_t dims[CUDA_MAX_DIMS];
  int64_t s0[CUDA_MAX_DIMS], s1[CUDA_MAX_DIMS], s2[CUDA_MAX_DIMS];
};

__device__ __forceinline__ void offsets_of(const strided3 &d, int64_t linear, int64_t *o0, int64_t *o1, int64_t *o2) {
  int64_t a = 0, b = 0, c = 0;
  for (int k = d.rank - 1; k >= 0; k--) {
    const int64_t extent = d.dims[k];
    const int64_t i = linear % extent;
    linear /= extent;
    a += i * d.s0[k];
    b += i * d.s1[k];
    c += i * d.s2[k];
  }
  *o0 = a;
  *o1 = b;
  *o2 = c;
}

__global__ void copy_kernel(strided3 d, int64_t total, void *out, int out_t, const void *in, int in_t,
                            cuda_epilogue e) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t o, a, unused;
    offsets_of(d, i, &o, &a, &unused);
    store_from_float(out, o, out_t, apply_epilogue(e, load_as_float(in, a, in_t), 0.f));
  }
}

__global__ void binary_kernel(strided3 d, int64_t total, int op, void *out, int out_t, const void *x, int x_t,
                              const void *y, int y_t, cuda_epilogue e) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t o, a, b;
    offsets_of(d, i, &o, &a, &b);
    const float u = load_as_float(x, a, x_t), v = load_as_float(y, b, y_t);
    float r;
    switch (op) {
      case CUDA_BIN_SUB: r = u - v; break;
      case CUDA_BIN_MUL: r = u * v; break;
      case CUDA_BIN_DIV: r = u / v; break;
      case CUDA_BIN_MAX: r = fmaxf(u, v); break;
      case CUDA_BIN_MIN: r = fminf(u, v); break;
      default: r = u + v; break;
    }
    store_from_float(out, o, out_t, apply_epilogue(e, r, 0.f));
  }
}

template <typename T>
__global__ void bias_epilogue_kernel(T *y, int64_t total, int64_t c, const T *bias, const T *sum, cuda_epilogue e) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    float v = to_f(y[i]);
    if (bias) v += to_f(bias[i % c]);
    y[i] = from_f<T>(apply_epilogue(e, v, sum ? to_f(sum[i]) : 0.f));
  }
}

template <typename T>
__global__ void pool_kernel(cuda_pool_desc d, const T *x, T *y) {
  const int64_t total = d.n * d.oh * d.ow * d.c;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t ch = i % d.c;
    int64_t rest = i / d.c;
    const int64_t ox = rest % d.ow;
    rest /= d.ow;
    const int64_t oy = rest % d.oh;
    const int64_t n = rest / d.oh;
    float acc = d.is_max ? -INFINITY : 0.f;
    int count = 0;
    for (int ky = 0; ky < d.kh; ky++) {
      const int64_t iy = oy * d.sh - d.pad_t + (int64_t)ky * d.dh;
      for (int kx = 0; kx < d.kw; kx++) {
        const int64_t ix = ox * d.sw - d.pad_l + (int64_t)kx * d.dw;
        const bool inside = iy >= 0 && iy < d.h && ix >= 0 && ix < d.w;
        if (inside) {
          const float v = to_f(x[((n * d.h + iy) * d.w + ix) * d.c + ch]);
          acc = d.is_max ? fmaxf(acc, v) : acc + v;
          count++;
        } else if (d.count_include_pad && iy >= -d.pad_t && iy < d.h + d.pad_b && ix >= -d.pad_l &&
                   ix < d.w + d.pad_r) {
          count++;
        }
      }
    }
    if (!d.is_max) acc = count ? acc / (float)count : 0.f;
    y[i] = from_f<T>(acc);
  }
}

/* Pooling of 2-byte types, eight channels per thread: each window element
 * is one 16-byte load, and the index arithmetic is paid once per eight. */
template <typename T>
__global__ void pool8_kernel(cuda_pool_desc d, const T *x, T *y) {
  const int c8 = (int)(d.c / 8);
  const int64_t total = d.n * d.oh * d.ow * c8;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int cg = (int)(i % c8);
    int64_t rest = i / c8;
    const int ox = (int)(rest % d.ow);
    rest /= d.ow;
    const int oy = (int)(rest % d.oh);
    const int64_t n = rest / d.oh;
    float acc[8];
    for (int k = 0; k < 8; k++) acc[k] = d.is_max ? -INFINITY : 0.f;
    int count = 0;
    for (int ky = 0; ky < d.kh; ky++) {
      const int iy = oy * d.sh - d.pad_t + ky * d.dh;
      for (int kx = 0; kx < d.kw; kx++) {
        const int ix = ox * d.sw - d.pad_l + kx * d.dw;
        if (iy < 0 || iy >= d.h || ix < 0 || ix >= d.w) {
          if (d.count_include_pad && iy >= -d.pad_t && iy < d.h + d.pad_b && ix >= -d.pad_l && ix < d.w + d.pad_r)
            count++;
          continue;
        }
        const uint4 raw = *reinterpret_cast<const uint4 *>(x + ((n * d.h + iy) * d.w + ix) * d.c + cg * 8);
        const T *v = reinterpret_cast<const T *>(&raw);
        for (int k = 0; k < 8; k++) acc[k] = d.is_max ? fmaxf(acc[k], to_f(v[k])) : acc[k] + to_f(v[k]);
        count++;
      }
    }
    uint4 out;
    T *o = reinterpret_cast<T *>(&out);
    for (int k = 0; k < 8; k++) o[k] = from_f<T>(d.is_max ? acc[k] : (count ? acc[k] / (float)count : 0.f));
    *reinterpret_cast<uint4 *>(y + i * 8) = out;
  }
}

/* NCHW fp32 (a model's input) to NHWC in the compute type with channels
 * padded to cp, one thread per pixel: the reads of a warp are consecutive
 * pixels of one channel plane, and its writes one contiguous run. */
template <typename T>
__global__ void nchw_to_nhwc_kernel(int64_t n, int64_t c, int64_t hw, int64_t cp, const float *x, T *y) {
  const int64_t total = n * hw;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = i / hw, pix = i % hw;
    const float *src = x + b * c * hw + pix;
    T *dst = y + i * cp;
    for (int64_t k = 0; k < cp; k++) dst[k] = from_f<T>(k < c ? src[k * hw] : 0.f);
  }
}

/* Global pooling: one thread per (n, c), walking the H*W positions; threads
 * of a warp take consecutive channels, so each step reads one coalesced row. */
template <typename T>
__global__ void global_pool_kernel(int64_t n, int64_t hw, int64_t c, int is_max, const T *x, T *y) {
  const int64_t total = n * c;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t ch = i % c, b = i / c;
    const T *p = x + b * hw * c + ch;
    float acc = is_max ? -INFINITY : 0.f;
    for (int64_t k = 0; k < hw; k++) {
      const float v = to_f(p[k * c]);
      acc = is_max ? fmaxf(acc, v) : acc + v;
    }
    y[i] = from_f<T>(is_max ? acc : acc / (float)hw);
  }
}

template <typename T>
__global__ void softmax_kernel(int64_t cols, const T *x, T *y, int log) {
  __shared__ float red[32];
  const T *row = x + blockIdx.x * cols;
  T *out = y + blockIdx.x * cols;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, to_f(row[j]));
  for (int o = 16; o; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if (lane == 0) red[warp] = m;
  __syncthreads();
  m = -INFINITY;
  for (int k = 0; k < warps; k++) m = fmaxf(m, red[k]);
  __syncthreads();
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += __expf(to_f(row[j]) - m);
  for (int o = 16; o; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) red[warp] = s;
  __syncthreads();
  s = 0.f;
  for (int k = 0; k < warps; k++) s += red[k];
  const float ls = logf(s), inv = 1.f / s;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const float v = to_f(row[j]) - m;
    out[j] = from_f<T>(log ? v - ls : __expf(v) * inv);
  }
}

/* One thread per row; the threads of a warp take neighbouring rows, so
 * each step along the axis reads consecutive elements. */
__global__ void softmax_strided_kernel(int64_t outer, int64_t cols, int64_t inner, const void *x, void *y, int dtype,
                                       int log) {
  const int64_t rows = outer * inner;
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < rows; r += (int64_t)gridDim.x * blockDim.x) {
    const int64_t base = (r / inner) * cols * inner + r % inner;
    float m = -INFINITY;
    for (int64_t j = 0; j < cols; j++) m = fmaxf(m, load_as_float(x, base + j * inner, dtype));
    float sum = 0.f;
    for (int64_t j = 0; j < cols; j++) sum += __expf(load_as_float(x, base + j * inner, dtype) - m);
    const float ls = logf(sum), inv = 1.f / sum;
    for (int64_t j = 0; j < cols; j++) {
      const float v = load_as_float(x, base + j * inner, dtype) - m;
      store_from_float(y, base + j * inner, dtype, log ? v - ls : __expf(v) * inv);
    }
  }
}

__global__ void batchnorm_kernel(int64_t total, int64_t c, int64_t inner, const void *x, void *y, const void *scale,
                                 const void *bias, const void *mean, const void *var, float eps, int dtype) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t ch = (i / inner) % c;
    const float inv = rsqrtf(load_as_float(var, ch, dtype) + eps) * load_as_float(scale, ch, dtype);
    const float v = (load_as_float(x, i, dtype) - load_as_float(mean, ch, dtype)) * inv + load_as_float(bias, ch, dtype);
    store_from_float(y, i, dtype, v);
  }
}

__device__ __forceinline__ int64_t offset_in(const cuda_index_space &s, const int64_t *strides, int64_t linear) {
  int64_t off = 0;
  for (int k = s.rank - 1; k >= 0; k--) {
    off += (linear % s.dims[k]) * strides[k];
    linear /= s.dims[k];
  }
  return off;
}

/* One thread per output element, walking its reduced elements in fp32. */
__global__ void reduce_kernel(cuda_reduce_desc d, int64_t n_out, int64_t n_red, const void *x, void *y, int dtype) {
  for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < n_out; o += (int64_t)gridDim.x * blockDim.x) {
    const int64_t base = offset_in(d.kept, d.kept_strides, o);
    float acc = 0.f;
    for (int64_t j = 0; j < n_red; j++) acc += load_as_float(x, base + offset_in(d.reduced, d.reduced_strides, j), dtype);
    store_from_float(y, o, dtype, d.mean && n_red ? acc / (float)n_red : acc);
  }
}

__device__ __forceinline__ int64_t reflect_index(int64_t i, int64_t size) {
  if (size == 1) return 0;
  const int64_t period = 2 * (size - 1);
  int64_t m = i % period;
  if (m < 0) m += period;
  return m < size ? m : period - m;
}

__global__ void pad_kernel(cuda_pad_desc d, int64_t total, const void *x, void *y, const void *value_ptr, int dtype) {
  const float fill = value_ptr ? load_as_float(value_ptr, 0, dtype) : d.value;
  for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < total; o += (int64_t)gridDim.x * blockDim.x) {
    int64_t rest = o, off = 0, stride = 1;
    bool inside = true;
    for (int k = d.rank - 1; k >= 0; k--) {
      int64_t i = rest % d.out_dims[k] - d.pad_begin[k];
      rest /= d.out_dims[k];
      if (i < 0 || i >= d.in_dims[k]) {
        if (d.mode == CUDA_PAD_CONSTANT) inside = false;
        else i = d.mode == CUDA_PAD_EDGE ? (i < 0 ? 0 : d.in_dims[k] - 1) : reflect_index(i, d.in_dims[k]);
      }
      off += i * stride;
      stride *= d.in_dims[k];
    }
    store_from_float(y, o, dtype, inside ? load_as_float(x, off, dtype) : fill);
  }
}

template <typename T>
__global__ void conv_direct_kernel(cuda_conv_desc d, const T *x, const T *w, const T *bias, const T *sum, T *y,
                                   cuda_epilogue e) {
  const int64_t total = d.n * d.oh * d.ow * d.k;
  const int64_t cg = d.c / d.groups, kg = d.k / d.groups;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t k = i % d.k;
    int64_t rest = i / d.k;
    const int64_t ox = rest % d.ow;
    rest /= d.ow;
    const int64_t oy = rest % d.oh;
    const int64_t n = rest / d.oh;
    const int64_t c0 = (k / kg) * cg;
    float acc = bias ? to_f(bias[k]) : 0.f;
    for (int ry = 0; ry < d.r; ry++) {
      const int64_t iy = oy * d.sh - d.pad_t + (int64_t)ry * d.dh;
      if (iy < 0 || iy >= d.h) continue;
      for (int sx = 0; sx < d.s; sx++) {
        const int64_t ix = ox * d.sw - d.pad_l + (int64_t)sx * d.dw;
        if (ix < 0 || ix >= d.w) continue;
        const T *xp = x + ((n * d.h + iy) * d.w + ix) * d.c + c0;
        const T *wp = w + ((k * d.r + ry) * d.s + sx) * cg;
        for (int64_t c = 0; c < cg; c++) acc += to_f(xp[c]) * to_f(wp[c]);
      }
    }
    y[i] = from_f<T>(apply_epilogue(e, acc, sum ? to_f(sum[i]) : 0.f));
  }
}

__global__ void fill_kernel(void *data, int dtype, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    uint32_t h = (uint32_t)i * 2654435761u ^ seed;
    h ^= h >> 16;
    h *= 2246822519u;
    h ^= h >> 13;
    store_from_float(data, i, dtype, (float)(h & 0xffffu) / 32767.5f - 1.f);
  }
}

/* Entry blockIdx.y of the table, its bytes shared by gridDim.x blocks: 16
 * at a time where both ends are 16-byte aligned, then byte by byte. */
__global__ void copies_kernel(const cuda_copy_entry *table) {
  const cuda_copy_entry e = table[blockIdx.y];
  const uint64_t tid = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x, step = (uint64_t)gridDim.x * blockDim.x;
  uint64_t done = 0;
  if ((((uintptr_t)e.dst | (uintptr_t)e.src) & 15) == 0) {
    const uint64_t n16 = e.size / 16;
    const uint4 *src = (const uint4 *)e.src;
    uint4 *dst = (uint4 *)e.dst;
    for (uint64_t i = tid; i < n16; i += step) dst[i] = src[i];
    done = n16 * 16;
  }
  const unsigned char *src = (const unsigned char *)e.src;
  unsigned char *dst = (unsigned char *)e.dst;
  for (uint64_t i = done + tid; i < e.size; i += step) dst[i] = src[i];
}

unsigned grid_for(int64_t total, int threads) {
  int64_t blocks = (total + threads - 1) / threads;
  if (blocks > 65536) blocks = 65536;
  return (unsigned)(blocks > 0 ? blocks : 1);
}

strided3 make_strided(const cuda_index_space *s, const cuda_operand *a, const cuda_operand *b,
                      const cuda_operand *c) {
  strided3 d = {};
  d.rank = s->rank;
  for (int k = 0; k < s->rank; k++) {
    d.dims[k] = s->dims[k];
    d.s0[k] = a ? a->strides[k] : 0;
    d.s1[k] = b ? b->strides[k] : 0;
    d.s2[k] = c ? c->strides[k] : 0;
  }
  return d;
}

int64_t space_total(const cuda_index_space *s) {
  int64_t t = 1;
  for (int k = 0; k < s->rank; k++) t *= s->dims[k];
  return t;
}

int last_error() { return (int)cudaGetLastError(); }

}  // namespace

extern "C" {

int cuda_launch_copy(cuda_stream_t stream, const cuda_index_space *space, const cuda_operand *out,
                     const cuda_operand *in, const cuda_epilogue *epilogue) {
  const int64_t total = space_total(space);
  if (total == 0) return 0;
  cuda_epilogue e = epilogue ? *epilogue : cuda_epilogue{};
  copy_kernel<<<grid_for(total, 256), 256, 0, stream>>>(make_strided(space, out, in, nullptr), total, out->data,
                                                        out->dtype, in->data, in->dtype, e);
  return last_error();
}

int cuda_launch_binary(cuda_stream_t stream, cuda_binary_op op, const cuda_index_space *space,
                       const cuda_operand *out, const cuda_operand *a, const cuda_operand *b,
                       const cuda_epilogue *epilogue) {
  const int64_t total = space_total(space);
  if (total == 0) return 0;
  cuda_epilogue e = epilogue ? *epilogue : cuda_epilogue{};
  binary_kernel<<<grid_for(total, 256), 256, 0, stream>>>(make_strided(space, out, a, b), total, (int)op, out->data,
                                                          out->dtype, a->data, a->dtype, b->data, b->dtype, e);
  return last_error();
}

int cuda_launch_bias_epilogue(cuda_stream_t stream, cuda_dtype dtype, void *y, int64_t n_rows, int64_t c,
                              const void *bias, const void *sum, const cuda_epilogue *epilogue) {
  const int64_t total = n_rows * c;
  if (total == 0) return 0;
  cuda_epilogue e = epilogue ? *epilogue : cuda_epilogue{};
  const unsigned g = grid_for(total, 256);
  switch (dtype) {
    case CUDA_F16:
      bias_epilogue_kernel<<<g, 256, 0, stream>>>(static_cast<__half *>(y), total, c, static_cast<const __half *>(bias),
                                                  static_cast<const __half *>(sum), e);
      break;
    case CUDA_BF16:
      bias_epilogue_kernel<<<g, 256, 0, stream>>>(static_cast<__nv_bfloat16 *>(y), total, c,
                                                  static_cast<const __nv_bfloat16 *>(bias),
                                                  static_cast<const __nv_bfloat16 *>(sum), e);
      break;
    default:
      bias_epilogue_kernel<<<g, 256, 0, stream>>>(static_cast<float *>(y), total, c, static_cast<const float *>(bias),
                                                  static_cast<const float *>(sum), e);
      break;
  }
  return last_error();
}

int cuda_launch_pool(cuda_stream_t stream, cuda_dtype dtype, const cuda_pool_desc *d, const void *x, void *y) {
  const bool global = d->oh == 1 && d->ow == 1 && d->kh == d->h && d->kw == d->w && d->pad_t == 0 && d->pad_l == 0 &&
                      d->pad_b == 0 && d->pad_r == 0;
  const int64_t total = global ? d->n * d->c : d->n * d->oh * d->ow * d->c;
  if (total == 0) return 0;
  const unsigned g = grid_for(total, 256);
  const int64_t hw = d->h * d->w;
  switch (dtype) {
    case CUDA_F16:
      if (global)
        global_pool_kernel<<<g, 256, 0, stream>>>(d->n, hw, d->c, d->is_max, static_cast<const __half *>(x),
                                                  static_cast<__half *>(y));
      else if (d->c % 8 == 0)
        pool8_kernel<<<grid_for(total / 8, 256), 256, 0, stream>>>(*d, static_cast<const __half *>(x),
                                                                   static_cast<__half *>(y));
      else
        pool_kernel<<<g, 256, 0, stream>>>(*d, static_cast<const __half *>(x), static_cast<__half *>(y));
      break;
    case CUDA_BF16:
      if (global)
        global_pool_kernel<<<g, 256, 0, stream>>>(d->n, hw, d->c, d->is_max, static_cast<const __nv_bfloat16 *>(x),
                                                  static_cast<__nv_bfloat16 *>(y));
      else if (d->c % 8 == 0)
        pool8_kernel<<<grid_for(total / 8, 256), 256, 0, stream>>>(*d, static_cast<const __nv_bfloat16 *>(x),
                                                                   static_cast<__nv_bfloat16 *>(y));
      else
        pool_kernel<<<g, 256, 0, stream>>>(*d, static_cast<const __nv_bfloat16 *>(x), static_cast<__nv_bfloat16 *>(y));
      break;
    default:
      if (global)
        global_pool_kernel<<<g, 256, 0, stream>>>(d->n, hw, d->c, d->is_max, static_cast<const float *>(x),
                                                  static_cast<float *>(y));
      else
        pool_kernel<<<g, 256, 0, stream>>>(*d, static_cast<const float *>(x), static_cast<float *>(y));
      break;
  }
  return last_error();
}

int cuda_launch_nchw_to_nhwc(cuda_stream_t stream, cuda_dtype dtype, int64_t n, int64_t c, int64_t hw, int64_t cp,
                             const float *x, void *y) {
  const int64_t total = n * hw;
  if (total == 0) return 0;
  const unsigned g = grid_for(total, 256);
  switch (dtype) {
    case CUDA_F16: nchw_to_nhwc_kernel<<<g, 256, 0, stream>>>(n, c, hw, cp, x, static_cast<__half *>(y)); break;
    case CUDA_BF16:
      nchw_to_nhwc_kernel<<<g, 256, 0, stream>>>(n, c, hw, cp, x, static_cast<__nv_bfloat16 *>(y));
      break;
    default: nchw_to_nhwc_kernel<<<g, 256, 0, stream>>>(n, c, hw, cp, x, static_cast<float *>(y)); break;
  }
  return last_error();
}

int cuda_launch_softmax(cuda_stream_t stream, cuda_dtype dtype, int64_t rows, int64_t cols, const void *x, void *y,
                        int log) {
  if (rows == 0 || cols == 0) return 0;
  if (rows > 2147483647) return (int)cudaErrorInvalidValue;
  const unsigned g = (unsigned)rows;
  switch (dtype) {
    case CUDA_F16:
      softmax_kernel<<<g, 256, 0, stream>>>(cols, static_cast<const __half *>(x), static_cast<__half *>(y), log);
      break;
    case CUDA_BF16:
      softmax_kernel<<<g, 256, 0, stream>>>(cols, static_cast<const __nv_bfloat16 *>(x),
                                            static_cast<__nv_bfloat16 *>(y), log);
      break;
    default:
      softmax_kernel<<<g, 256, 0, stream>>>(cols, static_cast<const float *>(x), static_cast<float *>(y), log);
      break;
  }
  return last_error();
}

int cuda_launch_softmax_strided(cuda_stream_t stream, cuda_dtype dtype, int64_t outer, int64_t cols, int64_t inner,
                                const void *x, void *y, int log) {
  const int64_t rows = outer * inner;
  if (rows == 0 || cols == 0) return 0;
  softmax_strided_kernel<<<grid_for(rows, 128), 128, 0, stream>>>(outer, cols, inner, x, y, (int)dtype, log);
  return last_error();
}

int cuda_launch_batchnorm(cuda_stream_t stream, cuda_dtype dtype, int64_t total, int64_t c, int64_t inner,
                          const void *x, void *y, const void *scale, const void *bias, const void *mean,
                          const void *var, float epsilon) {
  if (total == 0) return 0;
  batchnorm_kernel<<<grid_for(total, 256), 256, 0, stream>>>(total, c, inner, x, y, scale, bias, mean, var, epsilon,
                                                             (int)dtype);
  return last_error();
}

int cuda_launch_reduce(cuda_stream_t stream, cuda_dtype dtype, const cuda_reduce_desc *d, const void *x, void *y) {
  const int64_t n_out = space_total(&d->kept), n_red = space_total(&d->reduced);
  if (n_out == 0) return 0;
  reduce_kernel<<<grid_for(n_out, 128), 128, 0, stream>>>(*d, n_out, n_red, x, y, (int)dtype);
  return last_error();
}

int cuda_launch_pad(cuda_stream_t stream, cuda_dtype dtype, const cuda_pad_desc *d, const void *x, void *y,
                    const void *value_ptr) {
  int64_t total = 1;
  for (int k = 0; k < d->rank; k++) total *= d->out_dims[k];
  if (total == 0) return 0;
  pad_kernel<<<grid_for(total, 256), 256, 0, stream>>>(*d, total, x, y, value_ptr, (int)dtype);
  return last_error();
}

int cuda_launch_conv_direct(cuda_stream_t stream, cuda_dtype dtype, const cuda_conv_desc *d, const void *x,
                            const void *w, const void *bias, const void *sum, void *y, const cuda_epilogue *epilogue) {
  const int64_t total = d->n * d->oh * d->ow * d->k;
  if (total == 0) return 0;
  cuda_epilogue e = epilogue ? *epilogue : cuda_epilogue{};
  const unsigned g = grid_for(total, 128);
  switch (dtype) {
    case CUDA_F16:
      conv_direct_kernel<<<g, 128, 0, stream>>>(*d, static_cast<const __half *>(x), static_cast<const __half *>(w),
                                                static_cast<const __half *>(bias), static_cast<const __half *>(sum), static_cast<__half *>(y), e);
      break;
    case CUDA_BF16:
      conv_direct_kernel<<<g, 128, 0, stream>>>(*d, static_cast<const __nv_bfloat16 *>(x),
                                                static_cast<const __nv_bfloat16 *>(w), static_cast<const __nv_bfloat16 *>(bias),
                                                static_cast<const __nv_bfloat16 *>(sum),
                                                static_cast<__nv_bfloat16 *>(y), e);
      break;
    default:
      conv_direct_kernel<<<g, 128, 0, stream>>>(*d, static_cast<const float *>(x), static_cast<const float *>(w), static_cast<const float *>(bias),
                                                static_cast<const float *>(sum), static_cast<float *>(y), e);
      break;
  }
  return last_error();
}

int cuda_launch_fill_random(cuda_stream_t stream, cuda_dtype dtype, void *data, int64_t n, uint32_t seed) {
  if (n == 0) return 0;
  fill_kernel<<<grid_for(n, 256), 256, 0, stream>>>(data, (int)dtype, n, seed);
  return last_error();
}

int cuda_launch_copies(cuda_stream_t stream, const cuda_copy_entry *table, int count, uint64_t max_size) {
  if (count <= 0) return 0;
  /* 4 KiB per block and pass (256 threads x 16 bytes), up to 64 blocks an entry. */
  uint64_t blocks = (max_size + 4095) / 4096;
  if (blocks > 64) blocks = 64;
  if (blocks < 1) blocks = 1;
  for (int first = 0; first < count; first += 65535) {
    const int n = count - first < 65535 ? count - first : 65535;
    copies_kernel<<<dim3((unsigned)blocks, (unsigned)n), 256, 0, stream>>>(table + first);
  }
  return last_error();
}

const char *cuda_kernel_error_string(int code) { return cudaGetErrorString((cudaError_t)code); }

}  // extern "C"
