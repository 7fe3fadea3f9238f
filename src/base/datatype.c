/* KServe datatype names and sizes. */
#include <string.h>

#include "inferd.h"

static const struct {
  const char *name;
  size_t size;
} datatype_table[INFERD_TYPE_COUNT_] = {
    [INFERD_TYPE_INVALID] = {"INVALID", 0}, [INFERD_TYPE_BOOL] = {"BOOL", 1},   [INFERD_TYPE_UINT8] = {"UINT8", 1},
    [INFERD_TYPE_UINT16] = {"UINT16", 2},   [INFERD_TYPE_UINT32] = {"UINT32", 4}, [INFERD_TYPE_UINT64] = {"UINT64", 8},
    [INFERD_TYPE_INT8] = {"INT8", 1},       [INFERD_TYPE_INT16] = {"INT16", 2},   [INFERD_TYPE_INT32] = {"INT32", 4},
    [INFERD_TYPE_INT64] = {"INT64", 8},     [INFERD_TYPE_FP16] = {"FP16", 2},     [INFERD_TYPE_FP32] = {"FP32", 4},
    [INFERD_TYPE_FP64] = {"FP64", 8},       [INFERD_TYPE_BYTES] = {"BYTES", 0},   [INFERD_TYPE_BF16] = {"BF16", 2},
};

const char *inferd_datatype_name(inferd_datatype type) {
  if (type <= INFERD_TYPE_INVALID || type >= INFERD_TYPE_COUNT_) return "INVALID";
  return datatype_table[type].name;
}

inferd_datatype inferd_datatype_from_name(const char *name) {
  if (!name) return INFERD_TYPE_INVALID;
  for (int t = INFERD_TYPE_INVALID + 1; t < INFERD_TYPE_COUNT_; t++)
    if (strcmp(datatype_table[t].name, name) == 0) return (inferd_datatype)t;
  return INFERD_TYPE_INVALID;
}

size_t inferd_datatype_size(inferd_datatype type) {
  if (type <= INFERD_TYPE_INVALID || type >= INFERD_TYPE_COUNT_) return 0;
  return datatype_table[type].size;
}
