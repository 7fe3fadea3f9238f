/* What the engine can run on, in words, for `inferd --version` and logs. */
#ifndef INFERD_ENGINE_DEVICES_H
#define INFERD_ENGINE_DEVICES_H

#include <stddef.h>

/* oneDNN's version and the instruction set it uses on this CPU. */
size_t devices_describe_cpu(char *buf, size_t size);
#ifdef INFERD_HAVE_CUDA
/* CUDA runtime and driver versions and the GPUs found, or why none. */
size_t devices_describe_cuda(char *buf, size_t size);
#endif

#endif
