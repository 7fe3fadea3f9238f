/*
 * Products through cuBLASLt: y[M,N] = alpha * x[M,K] * w[N,K]^T (+ bias[N])
 * (+ beta * y), all row major. cuBLASLt is column-major, so it computes
 * y^T = w * x^T: matrix A is the weights read transposed (K x N, leading
 * dimension K; or N x K read as is when they are stored [K,N]), B the
 * activations (K x M; or M x K transposed for Gemm's transA), C = D the
 * result (N x M). A batch runs as one strided-batch product. The bias (and
 * a ReLU, when that is the node's only post-op) ride in the epilogue; other
 * post-ops run in the epilogue kernel. The heuristics' best candidates are
 * timed once.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda.h"

enum { MAX_ALGOS = 8 };

static cudaDataType_t lt_type(cuda_dtype t) {
  return t == CUDA_F16 ? CUDA_R_16F : t == CUDA_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

static bool relu_only(const cuda_epilogue *e) { return e->n_ops == 1 && !e->ops[0].is_sum && e->ops[0].act == CUDA_ACT_RELU; }

typedef struct timed_gemm {
  cuda_plan *plan;
  const cuda_tuner *tuner;
  const cuda_program *p;
  cuda_step *s;
  void *arena, *workspace;
} timed_gemm;

static inferd_error *run_timed(void *arg) {
  timed_gemm *t = arg;
  return cuda_gemm_run(t->tuner->lt, t->plan->libs, t->tuner->stream, t->p, t->s, t->arena, t->workspace);
}

inferd_error *cuda_gemm_prepare(cuda_plan *plan, const cuda_tuner *tuner, const cuda_program *p, cuda_step *s,
                                void *arena, void *workspace, size_t workspace_cap) {
  const cuda_libs *l = plan->libs;
  cuda_gemm *g = &s->gemm;
  const cudaDataType_t t = lt_type(plan->dtype);
  const cublasComputeType_t compute = plan->dtype == CUDA_F32 && plan->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                           : CUBLAS_COMPUTE_32F;
  CUBLASLT_TRY(l->cublasLtMatmulDescCreate(&g->op, compute, CUDA_R_32F), "creating a matmul descriptor");
  const cublasOperation_t ta = g->w_kn ? CUBLAS_OP_N : CUBLAS_OP_T, tb = g->x_km ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLASLT_TRY(l->cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "transa");
  CUBLASLT_TRY(l->cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "transb");
  if (s->bias >= 0) {
    const cublasLtEpilogue_t ep = relu_only(&s->epilogue) ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
    const void *bias = p->tensors[s->bias].const_ptr;
    CUBLASLT_TRY(l->cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof(ep)), "epilogue");
    CUBLASLT_TRY(l->cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)),
                 "bias pointer");
  } else if (relu_only(&s->epilogue)) {
    const cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_RELU;
    CUBLASLT_TRY(l->cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof(ep)), "epilogue");
  }
  if (g->w_kn) CUBLASLT_TRY(l->cublasLtMatrixLayoutCreate(&g->a, t, (uint64_t)g->n, (uint64_t)g->k, g->n), "layout A");
  else CUBLASLT_TRY(l->cublasLtMatrixLayoutCreate(&g->a, t, (uint64_t)g->k, (uint64_t)g->n, g->k), "layout A");
  if (g->x_km) CUBLASLT_TRY(l->cublasLtMatrixLayoutCreate(&g->b, t, (uint64_t)g->m, (uint64_t)g->k, g->m), "layout B");
  else CUBLASLT_TRY(l->cublasLtMatrixLayoutCreate(&g->b, t, (uint64_t)g->k, (uint64_t)g->m, g->k), "layout B");
  CUBLASLT_TRY(l->cublasLtMatrixLayoutCreate(&g->c, t, (uint64_t)g->n, (uint64_t)g->m, g->n), "layout C");
  if (g->batch > 1) {
    const int32_t count = g->batch;
    const cublasLtMatrixLayout_t layouts[3] = {g->a, g->b, g->c};
    const int64_t strides[3] = {g->stride_w, g->stride_x, g->stride_y};
    for (int i = 0; i < 3; i++) {
      CUBLASLT_TRY(l->cublasLtMatrixLayoutSetAttribute(layouts[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                       sizeof(count)),
                   "batch count");
      CUBLASLT_TRY(l->cublasLtMatrixLayoutSetAttribute(layouts[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                       &strides[i], sizeof(strides[i])),
                   "batch stride");
    }
  }
  cublasLtMatmulPreference_t pref;
  CUBLASLT_TRY(l->cublasLtMatmulPreferenceCreate(&pref), "matmul preference");
  const uint64_t cap = workspace_cap;
  l->cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &cap, sizeof(cap));
  /* Split-K partial sums are reduced in a step of their own, from the
   * workspace the call itself fills. The in-place scheme adds them up in
   * the output under counters kept in the workspace, which the context
   * shares with cuDNN's convolutions that run between two products; TF32
   * answers of the served ResNet-50 (whose FC layer is such a product, at
   * small batches a split-K one) were seen off now and then on the H200
   * while FP16 ones never were, and this is the suspected cause. */
  const uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE | CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
  /* Diagnostic: INFERD_CUDA_LT_ALL_SCHEMES=1 allows every scheme again. */
  if (!getenv("INFERD_CUDA_LT_ALL_SCHEMES"))
    l->cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes, sizeof(schemes));
  cublasLtMatmulHeuristicResult_t results[MAX_ALGOS];
  int found = 0;
  cublasStatus_t st = l->cublasLtMatmulAlgoGetHeuristic(tuner->lt, g->op, g->a, g->b, g->c, g->c, pref, MAX_ALGOS,
                                                        results, &found);
  l->cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0)
    return err_new(INFERD_ERROR_UNSUPPORTED, "node '%s': cuBLASLt has no algorithm for a %lldx%lldx%lld product (batch %d)",
                   s->name, (long long)g->m, (long long)g->n, (long long)g->k, g->batch);
  double best = -1;
  int best_i = -1;
  timed_gemm timed = {.plan = plan, .tuner = tuner, .p = p, .s = s, .arena = arena, .workspace = workspace};
  for (int i = 0; i < found; i++) {
    if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
    g->algo = results[i].algo;
    g->workspace = results[i].workspaceSize;
    double ms = found == 1 ? 0 : cuda_time_ms(tuner, run_timed, &timed);
    if (ms >= 0 && (best < 0 || ms < best)) best = ms, best_i = i;
  }
  if (best_i < 0)
    return err_new(INFERD_ERROR_INTERNAL, "node '%s': no cuBLASLt algorithm ran", s->name);
  g->algo = results[best_i].algo;
  g->workspace = results[best_i].workspaceSize;
  return NULL;
}

inferd_error *cuda_gemm_run(cublasLtHandle_t lt, const cuda_libs *l, cudaStream_t stream, const cuda_program *p,
                            const cuda_step *s, void *arena, void *workspace) {
  const cuda_gemm *g = &s->gemm;
  const float alpha = g->alpha, beta = g->beta;
  const void *w = cuda_tensor_ptr(p, s->w, arena), *x = cuda_tensor_ptr(p, s->x, arena);
  void *y = cuda_tensor_ptr(p, s->y, arena);
  CUBLASLT_TRY(l->cublasLtMatmul(lt, g->op, &alpha, w, g->a, x, g->b, &beta, y, g->c, y, g->c, &g->algo, workspace,
                                 g->workspace, stream),
               "running a matrix product");
  const bool in_epilogue = relu_only(&s->epilogue);
  if (s->epilogue.n_ops && !in_epilogue)
    KERNEL_TRY(cuda_launch_bias_epilogue((cuda_stream_t)stream, p->tensors[s->y].dtype, y, g->batch * g->m, g->n, NULL,
                                         s->sum >= 0 ? cuda_tensor_ptr(p, s->sum, arena) : NULL, &s->epilogue),
               "the product's epilogue kernel");
  return NULL;
}

void cuda_gemm_release(const cuda_libs *l, cuda_gemm *g) {
  if (g->op) l->cublasLtMatmulDescDestroy(g->op);
  if (g->a) l->cublasLtMatrixLayoutDestroy(g->a);
  if (g->b) l->cublasLtMatrixLayoutDestroy(g->b);
  if (g->c) l->cublasLtMatrixLayoutDestroy(g->c);
  memset(g, 0, sizeof(*g));
}
