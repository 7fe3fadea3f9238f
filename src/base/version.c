#include "inferd.h"

const char *inferd_version(void) { return INFERD_VERSION; }
