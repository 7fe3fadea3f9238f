/* What the CPU backend runs on: oneDNN's version and the instruction set it
 * uses on this CPU, for `inferd --version`, metadata and benchmarks. */
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <unistd.h>

#include "engine/cpu/cpu.h"

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

bool cpu_has_int8_dot(void) {
  switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_avx2_vnni:
    case dnnl_cpu_isa_avx512_core_vnni:
    case dnnl_cpu_isa_avx512_core_bf16:
    case dnnl_cpu_isa_avx512_core_amx: return true;
    default: return false;
  }
}

bool cpu_has_bf16_dot(void) {
  const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
  return isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx;
}

const char *cpu_isa_name(void) { return isa_name(dnnl_get_effective_cpu_isa()); }

size_t cpu_describe(int ordinal, char *buf, size_t size) {
  (void)ordinal;
  const dnnl_version_t *v = dnnl_version();
  int n = snprintf(buf, size, "oneDNN %d.%d.%d on %ld cores, %s", v->major, v->minor, v->patch,
                   sysconf(_SC_NPROCESSORS_ONLN), isa_name(dnnl_get_effective_cpu_isa()));
  return n > 0 ? (size_t)n : 0;
}
