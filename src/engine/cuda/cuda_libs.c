/*
 * cuDNN and cuBLASLt are loaded with dlopen on first use, so the inferd
 * binary starts (and serves on the CPU) on machines that have neither, and a
 * GPU plan on such a machine fails with a sentence naming the missing
 * library. The CUDA runtime itself is linked statically.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "engine/cuda/cuda.h"

static cuda_libs libs;
static char load_error[512];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void *open_first(const char *const *names, char *tried, size_t size) {
  size_t n = 0;
  for (int i = 0; names[i]; i++) {
    void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (h) return h;
    n += (size_t)snprintf(tried + n, n < size ? size - n : 0, "%s%s", n ? "; " : "", dlerror());
  }
  return NULL;
}

static void load(void) {
  static const char *const dnn_names[] = {"libcudnn.so.9", "libcudnn.so", NULL};
  static const char *const lt_names[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so", NULL};
  char tried[384];
  void *dnn = open_first(dnn_names, tried, sizeof(tried));
  if (!dnn) {
    snprintf(load_error, sizeof(load_error), "cuDNN 9 could not be loaded (%s)", tried);
    return;
  }
  void *lt = open_first(lt_names, tried, sizeof(tried));
  if (!lt) {
    snprintf(load_error, sizeof(load_error), "cuBLASLt could not be loaded (%s)", tried);
    return;
  }
#define CUDA_LIB_LOAD_(name)                                                               \
  *(void **)&libs.name = dlsym(handle, #name);                                              \
  if (!libs.name) {                                                                        \
    snprintf(load_error, sizeof(load_error), "%s lacks the function %s", lib_name, #name); \
    return;                                                                                \
  }
  {
    void *handle = dnn;
    const char *lib_name = "cuDNN";
    CUDA_CUDNN_FUNCS(CUDA_LIB_LOAD_)
  }
  {
    void *handle = lt;
    const char *lib_name = "cuBLASLt";
    CUDA_CUBLASLT_FUNCS(CUDA_LIB_LOAD_)
  }
#undef CUDA_LIB_LOAD_
  if (libs.cudnnGetVersion() < 90000) {
    snprintf(load_error, sizeof(load_error), "cuDNN %zu is too old: inferd needs cuDNN 9", libs.cudnnGetVersion());
    return;
  }
}

inferd_error *cuda_libs_get(const cuda_libs **out) {
  pthread_once(&once, load);
  *out = NULL;
  if (load_error[0]) return err_new(INFERD_ERROR_UNAVAILABLE, "%s", load_error);
  *out = &libs;
  return NULL;
}

inferd_error *cuda_rt_error(cudaError_t status, const char *what) {
  inferd_error_code code = status == cudaErrorMemoryAllocation ? INFERD_ERROR_NO_MEMORY : INFERD_ERROR_INTERNAL;
  return err_new(code, "%s: CUDA error %d (%s: %s)", what, (int)status, cudaGetErrorName(status),
                 cudaGetErrorString(status));
}

inferd_error *cuda_dnn_error(const cuda_libs *l, cudnnStatus_t status, const char *what) {
  char detail[512] = "";
  l->cudnnGetLastErrorString(detail, sizeof(detail));
  inferd_error_code code = status == CUDNN_STATUS_ALLOC_FAILED ? INFERD_ERROR_NO_MEMORY : INFERD_ERROR_INTERNAL;
  return err_new(code, "%s: cuDNN error %d (%s)%s%s", what, (int)status, l->cudnnGetErrorString(status),
                 detail[0] ? ": " : "", detail);
}

inferd_error *cuda_lt_error(cublasStatus_t status, const char *what) {
  static const struct {
    cublasStatus_t status;
    const char *name;
  } names[] = {
      {CUBLAS_STATUS_NOT_INITIALIZED, "not initialized"}, {CUBLAS_STATUS_ALLOC_FAILED, "allocation failed"},
      {CUBLAS_STATUS_INVALID_VALUE, "invalid value"},     {CUBLAS_STATUS_ARCH_MISMATCH, "architecture mismatch"},
      {CUBLAS_STATUS_EXECUTION_FAILED, "execution failed"}, {CUBLAS_STATUS_INTERNAL_ERROR, "internal error"},
      {CUBLAS_STATUS_NOT_SUPPORTED, "not supported"},
  };
  const char *name = "unknown status";
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (names[i].status == status) name = names[i].name;
  return err_new(status == CUBLAS_STATUS_ALLOC_FAILED ? INFERD_ERROR_NO_MEMORY : INFERD_ERROR_INTERNAL,
                 "%s: cuBLASLt error %d (%s)", what, (int)status, name);
}
