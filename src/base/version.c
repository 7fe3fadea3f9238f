#include "inferd.h"

const char *inferd_version(void) { return INFERD_VERSION; }

void inferd_api_version(int *major, int *minor) {
  if (major) *major = INFERD_API_VERSION_MAJOR;
  if (minor) *minor = INFERD_API_VERSION_MINOR;
}
