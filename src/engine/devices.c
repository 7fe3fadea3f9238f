#include "engine/devices.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <unistd.h>

#include "inferd.h"

static const char *isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_sse41: return "SSE4.1";
    case dnnl_cpu_isa_avx: return "AVX";
    case dnnl_cpu_isa_avx2: return "AVX2";
    case dnnl_cpu_isa_avx2_vnni: return "AVX2+VNNI";
    case dnnl_cpu_isa_avx512_core: return "AVX-512";
    case dnnl_cpu_isa_avx512_core_vnni: return "AVX-512+VNNI";
    case dnnl_cpu_isa_avx512_core_bf16: return "AVX-512+BF16";
    case dnnl_cpu_isa_avx512_core_amx: return "AVX-512+AMX";
    default: return "baseline";
  }
}

size_t devices_describe_cpu(char *buf, size_t size) {
  const dnnl_version_t *v = dnnl_version();
  return (size_t)snprintf(buf, size, "oneDNN %d.%d.%d on %ld cores, %s", v->major, v->minor, v->patch,
                          sysconf(_SC_NPROCESSORS_ONLN), isa_name(dnnl_get_effective_cpu_isa()));
}

const char *inferd_build_info(void) {
  static char info[1024];
  if (info[0]) return info;
  size_t n = (size_t)snprintf(info, sizeof(info), "inferd %s\ncpu: ", inferd_version());
  n += devices_describe_cpu(info + n, sizeof(info) - n);
#ifdef INFERD_HAVE_CUDA
  n += (size_t)snprintf(info + n, n < sizeof(info) ? sizeof(info) - n : 0, "\ngpu: ");
  if (n < sizeof(info)) n += devices_describe_cuda(info + n, sizeof(info) - n);
#else
  n += (size_t)snprintf(info + n, n < sizeof(info) ? sizeof(info) - n : 0, "\ngpu: not built (no CUDA toolkit)");
#endif
  return info;
}
