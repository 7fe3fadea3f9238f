/* Folders on disk. */
#ifndef INFERD_BASE_FILES_H
#define INFERD_BASE_FILES_H

#include "base/error.h"

/* mkdir -p: creates path and every missing folder above it; an error names
 * the folder that could not be made (or the path that is not a folder). */
inferd_error *files_make_dirs(const char *path);

#endif
