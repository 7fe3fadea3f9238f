/* What the engine can run on, in words, for `inferd --version` and logs. */
#ifndef INFERD_ENGINE_DEVICES_H
#define INFERD_ENGINE_DEVICES_H

#include <stddef.h>

#include "inferd.h"

#endif
