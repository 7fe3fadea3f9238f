/*
 * NumPy .npy files: a 6-byte magic, a version, a header length, a Python dict
 * literal ({'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }) and
 * the raw C-order data. Format versions 1.0 (16-bit header length), 2.0
 * (32-bit) and 3.0 (32-bit, UTF-8 header) are read; 1.0 is written unless the
 * header does not fit, as numpy does.
 *
 * The header is parsed as the small grammar numpy writes (strings, True/False,
 * tuples of integers) rather than with a general Python-literal parser: a
 * file that needs more than that is not one of ours to read. Everything that
 * comes from the file (header length, dims, data size) is checked before it
 * sizes an allocation, and each rejection names the file and the problem.
 */
#include "tools/npy.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/error.h"
#include "base/mem.h"

/* The data is copied as it lies in memory, so the host must be little-endian
 * like every dtype this module accepts. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
/* numpy pads the header so data starts on a 64-byte boundary. */
enum { NPY_ALIGN = 64 };
/* Real headers are under a few hundred bytes; a larger claim is corruption,
 * and the cap keeps a hostile length from sizing a huge allocation. */
enum { NPY_MAX_HEADER = 1 << 20 };
#define NPY_STRINGIFY_(x) #x
#define NPY_STRINGIFY(x) NPY_STRINGIFY_(x)

/* The descr each dtype is written with, as numpy itself writes it. */
static const char *descr_of(inferd_datatype t) {
  switch (t) {
  case INFERD_TYPE_BOOL: return "|b1";
  case INFERD_TYPE_UINT8: return "|u1";
  case INFERD_TYPE_UINT16: return "<u2";
  case INFERD_TYPE_UINT32: return "<u4";
  case INFERD_TYPE_UINT64: return "<u8";
  case INFERD_TYPE_INT8: return "|i1";
  case INFERD_TYPE_INT16: return "<i2";
  case INFERD_TYPE_INT32: return "<i4";
  case INFERD_TYPE_INT64: return "<i8";
  case INFERD_TYPE_FP16: return "<f2";
  case INFERD_TYPE_FP32: return "<f4";
  case INFERD_TYPE_FP64: return "<f8";
  default: return NULL;
  }
}

/* Maps a descr string to a dtype. The byte-order character may be '<' or '='
 * (native, which is little here) for any type and also '|' or '>' for the
 * one-byte types, where order does not exist. Returns an error that says why
 * a descr is refused. */
static inferd_error *dtype_from_descr(const char *path, const char *descr, inferd_datatype *out) {
  static const struct {
    char kind;
    char size;
    inferd_datatype type;
  } table[] = {
      {'b', '1', INFERD_TYPE_BOOL},  {'u', '1', INFERD_TYPE_UINT8},  {'u', '2', INFERD_TYPE_UINT16},
      {'u', '4', INFERD_TYPE_UINT32}, {'u', '8', INFERD_TYPE_UINT64}, {'i', '1', INFERD_TYPE_INT8},
      {'i', '2', INFERD_TYPE_INT16}, {'i', '4', INFERD_TYPE_INT32},  {'i', '8', INFERD_TYPE_INT64},
      {'f', '2', INFERD_TYPE_FP16},  {'f', '4', INFERD_TYPE_FP32},   {'f', '8', INFERD_TYPE_FP64},
  };
  size_t len = strlen(descr);
  if (len == 3) {
    char order = descr[0];
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
      if (descr[1] != table[i].kind || descr[2] != table[i].size) continue;
      bool one_byte = table[i].size == '1';
      if (order == '<' || order == '=' || (one_byte && (order == '|' || order == '>'))) {
        *out = table[i].type;
        return NULL;
      }
      if (order == '>')
        return err_new(INFERD_ERROR_UNSUPPORTED,
                       "%s: dtype '%s' is big-endian; only little-endian data is read (use arr.astype('<%c%c'))",
                       path, descr, table[i].kind, table[i].size);
      break;
    }
  }
  return err_new(INFERD_ERROR_UNSUPPORTED,
                 "%s: dtype '%s' is not supported (bool, int8..int64, uint8..uint64, float16/32/64 are)", path,
                 descr);
}

/* ---- header parsing -------------------------------------------------------
 * A cursor over the header text; every function returns false on a syntax
 * error and leaves a description in `problem`.
 */
typedef struct header_cursor {
  const char *p, *end;
  const char *problem;
} header_cursor;

static void skip_space(header_cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static bool expect_char(header_cursor *c, char ch, const char *problem) {
  skip_space(c);
  if (c->p < c->end && *c->p == ch) {
    c->p++;
    return true;
  }
  c->problem = problem;
  return false;
}

/* A quoted string (either quote, no escapes: numpy's keys and descrs have
 * none) copied into buf. */
static bool parse_string(header_cursor *c, char *buf, size_t cap) {
  skip_space(c);
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) {
    c->problem = "expected a quoted string";
    return false;
  }
  char quote = *c->p++;
  size_t n = 0;
  while (c->p < c->end && *c->p != quote) {
    if (*c->p == '\\' || n + 1 >= cap) {
      c->problem = "string too long or with escapes";
      return false;
    }
    buf[n++] = *c->p++;
  }
  if (c->p >= c->end) {
    c->problem = "unterminated string";
    return false;
  }
  c->p++;
  buf[n] = 0;
  return true;
}

static bool parse_bool(header_cursor *c, bool *out) {
  skip_space(c);
  size_t left = (size_t)(c->end - c->p);
  if (left >= 4 && memcmp(c->p, "True", 4) == 0) {
    c->p += 4;
    *out = true;
    return true;
  }
  if (left >= 5 && memcmp(c->p, "False", 5) == 0) {
    c->p += 5;
    *out = false;
    return true;
  }
  c->problem = "'fortran_order' must be True or False";
  return false;
}

/* "(2, 3)", "(5,)", "()" — also accepts "5L", which numpy 1.x on Python 2
 * wrote for long integers. */
static bool parse_shape(header_cursor *c, int *rank, int64_t *dims) {
  if (!expect_char(c, '(', "'shape' must be a tuple")) return false;
  *rank = 0;
  for (;;) {
    skip_space(c);
    if (c->p < c->end && *c->p == ')') {
      c->p++;
      return true;
    }
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') {
      c->problem = "'shape' must hold non-negative integers";
      return false;
    }
    int64_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
      if (v > (INT64_MAX - 9) / 10) {
        c->problem = "a dimension in 'shape' is too large";
        return false;
      }
      v = v * 10 + (*c->p++ - '0');
    }
    if (c->p < c->end && *c->p == 'L') c->p++;
    if (*rank >= INFERD_MAX_RANK) {
      c->problem = "'shape' has more dimensions than the engine's limit of " NPY_STRINGIFY(INFERD_MAX_RANK);
      return false;
    }
    dims[(*rank)++] = v;
    skip_space(c);
    if (c->p < c->end && *c->p == ',') {
      c->p++;
      continue;
    }
    if (c->p < c->end && *c->p == ')') continue;
    c->problem = "'shape' is not a valid tuple";
    return false;
  }
}

typedef struct npy_header {
  char descr[32];
  bool fortran_order;
  int rank;
  int64_t dims[INFERD_MAX_RANK];
} npy_header;

static inferd_error *parse_header(const char *path, const char *text, size_t len, npy_header *h) {
  header_cursor c = {.p = text, .end = text + len};
  bool seen_descr = false, seen_fortran = false, seen_shape = false;
  if (!expect_char(&c, '{', "the header is not a dict")) goto syntax;
  for (;;) {
    skip_space(&c);
    if (c.p < c.end && *c.p == '}') {
      c.p++;
      break;
    }
    char key[32];
    if (!parse_string(&c, key, sizeof(key))) goto syntax;
    if (!expect_char(&c, ':', "expected ':' after a key")) goto syntax;
    if (strcmp(key, "descr") == 0 && !seen_descr) {
      skip_space(&c);
      if (c.p < c.end && *c.p == '[')
        return err_new(INFERD_ERROR_UNSUPPORTED, "%s: structured dtypes are not supported", path);
      if (!parse_string(&c, h->descr, sizeof(h->descr))) goto syntax;
      seen_descr = true;
    } else if (strcmp(key, "fortran_order") == 0 && !seen_fortran) {
      if (!parse_bool(&c, &h->fortran_order)) goto syntax;
      seen_fortran = true;
    } else if (strcmp(key, "shape") == 0 && !seen_shape) {
      if (!parse_shape(&c, &h->rank, h->dims)) goto syntax;
      seen_shape = true;
    } else {
      return err_new(INFERD_ERROR_INVALID_ARG, "%s: malformed .npy header: unexpected or repeated key '%s'", path,
                     key);
    }
    skip_space(&c);
    if (c.p < c.end && *c.p == ',') {
      c.p++;
      continue;
    }
    if (c.p < c.end && *c.p == '}') continue;
    c.problem = "expected ',' or '}' after a value";
    goto syntax;
  }
  /* numpy ends the header with spaces and a newline; nothing else may follow. */
  skip_space(&c);
  if (c.p != c.end) {
    c.problem = "text after the closing '}'";
    goto syntax;
  }
  if (!seen_descr || !seen_fortran || !seen_shape)
    return err_new(INFERD_ERROR_INVALID_ARG, "%s: malformed .npy header: missing '%s'", path,
                   !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape");
  return NULL;
syntax:
  return err_new(INFERD_ERROR_INVALID_ARG, "%s: malformed .npy header: %s", path, c.problem);
}

/* ---- reading -------------------------------------------------------------- */

static inferd_error *read_exact(FILE *f, const char *path, void *buf, size_t n, const char *what) {
  if (n && fread(buf, 1, n, f) != n) {
    if (ferror(f)) return err_new(INFERD_ERROR_IO, "%s: reading %s: %s", path, what, strerror(errno));
    return err_new(INFERD_ERROR_INVALID_ARG, "%s: file is truncated in the %s", path, what);
  }
  return NULL;
}

static inferd_error *read_file(FILE *f, const char *path, npy_array *array) {
  unsigned char prefix[8];
  struct stat st;
  if (fstat(fileno(f), &st) != 0) return err_new(INFERD_ERROR_IO, "%s: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode)) return err_new(INFERD_ERROR_INVALID_ARG, "%s: is a directory, not a .npy file", path);
  if (fread(prefix, 1, sizeof(prefix), f) != sizeof(prefix) || memcmp(prefix, npy_magic, 6) != 0)
    return err_new(INFERD_ERROR_INVALID_ARG, "%s: not a .npy file (no \\x93NUMPY magic at its start)", path);
  int major = prefix[6], minor = prefix[7];
  if (major < 1 || major > 3 || minor != 0)
    return err_new(INFERD_ERROR_UNSUPPORTED, "%s: .npy format version %d.%d is not supported (1.0 to 3.0 are)",
                   path, major, minor);
  size_t header_len;
  size_t preamble = 10; /* magic, version, 16-bit length */
  if (major == 1) {
    unsigned char b[2];
    ERR_TRY(read_exact(f, path, b, 2, "header length"));
    header_len = (size_t)b[0] | (size_t)b[1] << 8;
  } else {
    unsigned char b[4];
    ERR_TRY(read_exact(f, path, b, 4, "header length"));
    header_len = (size_t)b[0] | (size_t)b[1] << 8 | (size_t)b[2] << 16 | (size_t)b[3] << 24;
    preamble = 12;
  }
  if (header_len > NPY_MAX_HEADER)
    return err_new(INFERD_ERROR_INVALID_ARG, "%s: header length %zu is implausible (corrupt file?)", path,
                   header_len);
  char *text = mem_try_alloc(header_len + 1, 1);
  if (!text) return err_new(INFERD_ERROR_NO_MEMORY, "%s: no memory for the header", path);
  inferd_error *e = read_exact(f, path, text, header_len, "header");
  npy_header h = {0};
  if (!e) {
    text[header_len] = 0;
    e = parse_header(path, text, header_len, &h);
  }
  free(text);
  if (e) return e;

  inferd_datatype dtype = INFERD_TYPE_INVALID;
  ERR_TRY(dtype_from_descr(path, h.descr, &dtype));
  if (h.fortran_order)
    return err_new(INFERD_ERROR_UNSUPPORTED,
                   "%s: data is in Fortran (column-major) order; save it in C order (np.ascontiguousarray)", path);
  size_t nbytes = inferd_datatype_size(dtype);
  for (int d = 0; d < h.rank; d++) {
    if ((uint64_t)h.dims[d] > SIZE_MAX || !mem_mul_ok(nbytes, (size_t)h.dims[d], &nbytes))
      return err_new(INFERD_ERROR_TOO_LARGE, "%s: shape is too large to address", path);
  }
  /* Compare with the file's size before allocating, so a corrupt shape makes
   * a clear error rather than a huge allocation. */
  size_t data_offset = preamble + header_len;
  if (S_ISREG(st.st_mode)) {
    uint64_t file_size = (uint64_t)st.st_size;
    uint64_t have = file_size > data_offset ? file_size - data_offset : 0;
    if (have < nbytes)
      return err_new(INFERD_ERROR_INVALID_ARG, "%s: file is truncated: its shape needs %zu bytes of data, it has %llu",
                     path, nbytes, (unsigned long long)have);
    if (have > nbytes)
      return err_new(INFERD_ERROR_INVALID_ARG, "%s: %llu stray bytes after the %zu bytes of data", path,
                     (unsigned long long)(have - nbytes), nbytes);
  }
  void *data = mem_try_alloc(nbytes, 1);
  if (!data) return err_new(INFERD_ERROR_NO_MEMORY, "%s: no memory for %zu bytes of data", path, nbytes);
  e = read_exact(f, path, data, nbytes, "data");
  if (e) {
    free(data);
    return e;
  }
  if (dtype == INFERD_TYPE_BOOL) {
    /* Anything but 0 and 1 in a bool array would be undefined for consumers
     * that treat it as C bool. */
    const unsigned char *b = data;
    for (size_t i = 0; i < nbytes; i++)
      if (b[i] > 1) {
        unsigned value = b[i];
        free(data);
        return err_new(INFERD_ERROR_INVALID_ARG, "%s: bool element %zu has value %u, not 0 or 1", path, i, value);
      }
  }
  *array = (npy_array){.dtype = dtype, .rank = h.rank, .data = data, .nbytes = nbytes};
  memcpy(array->dims, h.dims, sizeof(h.dims));
  return NULL;
}

inferd_error *npy_read(const char *path, npy_array *array) {
  *array = (npy_array){0};
  if (!path) return err_new(INFERD_ERROR_INVALID_ARG, "no .npy path given");
  FILE *f = fopen(path, "rb");
  if (!f)
    return err_new(errno == ENOENT ? INFERD_ERROR_NOT_FOUND : INFERD_ERROR_IO, "%s: cannot open: %s", path,
                   strerror(errno));
  inferd_error *e = read_file(f, path, array);
  fclose(f);
  return e;
}

void npy_free(npy_array *array) {
  if (!array) return;
  free(array->data);
  *array = (npy_array){0};
}

/* ---- writing -------------------------------------------------------------- */

inferd_error *npy_write(const char *path, inferd_datatype dtype, int rank, const int64_t *dims, const void *data) {
  const char *descr = descr_of(dtype);
  if (!descr) {
    if (dtype == INFERD_TYPE_BF16)
      return err_new(INFERD_ERROR_UNSUPPORTED,
                     "%s: BF16 has no NumPy dtype; convert it to FP32 before saving it as .npy", path);
    return err_new(INFERD_ERROR_UNSUPPORTED, "%s: datatype %s cannot be saved as .npy", path,
                   inferd_datatype_name(dtype));
  }
  if (rank < 0 || rank > INFERD_MAX_RANK)
    return err_new(INFERD_ERROR_INVALID_ARG, "%s: rank %d is outside [0, %d]", path, rank, INFERD_MAX_RANK);

  /* The dict, then spaces and a newline up to the 64-byte boundary. */
  char header[512];
  int n = snprintf(header, sizeof(header), "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  size_t nbytes = inferd_datatype_size(dtype);
  for (int d = 0; d < rank; d++) {
    if (dims[d] < 0) return err_new(INFERD_ERROR_INVALID_ARG, "%s: dimension %d is negative", path, d);
    if ((uint64_t)dims[d] > SIZE_MAX || !mem_mul_ok(nbytes, (size_t)dims[d], &nbytes))
      return err_new(INFERD_ERROR_TOO_LARGE, "%s: shape is too large to address", path);
    n += snprintf(header + n, sizeof(header) - (size_t)n, "%s%lld", d ? ", " : "", (long long)dims[d]);
  }
  n += snprintf(header + n, sizeof(header) - (size_t)n, "%s), }", rank == 1 ? "," : "");
  if (!data && nbytes) return err_new(INFERD_ERROR_INVALID_ARG, "%s: no data to write", path);
  /* numpy (1.24 on) leaves room for the first dimension to grow to 21
   * digits, so that appending rows can rewrite the header in place; doing the
   * same makes our files byte-identical to numpy's. */
  size_t spare = 0;
  if (rank > 0) {
    char digits[24];
    int len = snprintf(digits, sizeof(digits), "%lld", (long long)dims[0]);
    spare = len < 21 ? (size_t)(21 - len) : 0;
  }
  size_t preamble = 10;
  size_t total = ((preamble + (size_t)n + spare + 1 + NPY_ALIGN - 1) / NPY_ALIGN) * NPY_ALIGN;
  size_t header_len = total - preamble;
  memset(header + n, ' ', header_len - 1 - (size_t)n);
  header[header_len - 1] = '\n';

  unsigned char prefix[10];
  memcpy(prefix, npy_magic, 6);
  prefix[6] = 1; /* version 1.0: the header is always far below 64 KiB here */
  prefix[7] = 0;
  prefix[8] = (unsigned char)(header_len & 0xff);
  prefix[9] = (unsigned char)(header_len >> 8);

  FILE *f = fopen(path, "wb");
  if (!f) return err_new(INFERD_ERROR_IO, "%s: cannot create: %s", path, strerror(errno));
  bool ok = fwrite(prefix, 1, sizeof(prefix), f) == sizeof(prefix) && fwrite(header, 1, header_len, f) == header_len &&
            (!nbytes || fwrite(data, 1, nbytes, f) == nbytes) && fflush(f) == 0;
  int saved = errno;
  struct stat st;
  bool regular = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
  if (fclose(f) != 0 && ok) {
    ok = false;
    saved = errno;
  }
  if (!ok) {
    /* A half-written file would later read as truncated; better none. Only a
     * regular file is removed: the path may name a device or a pipe. */
    if (regular) remove(path);
    return err_new(INFERD_ERROR_IO, "%s: writing failed: %s", path, strerror(saved));
  }
  return NULL;
}
