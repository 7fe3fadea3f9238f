#include "base/files.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/mem.h"

inferd_error *files_make_dirs(const char *path) {
  if (!path[0]) return err_new(INFERD_ERROR_INVALID_ARG, "empty folder name");
  char *buf = mem_strdup(path);
  inferd_error *e = NULL;
  for (char *p = buf + 1; !e; p++) {
    const bool end = !*p;
    if (*p != '/' && !end) continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      e = err_new(INFERD_ERROR_IO, "cannot create folder '%s': %s", buf, strerror(errno));
    if (end) break;
    *p = '/';
  }
  free(buf);
  struct stat st;
  if (!e && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)))
    e = err_new(INFERD_ERROR_IO, "'%s' is not a folder", path);
  return e;
}
