/*
 * JPEG and PNG decoding and the evaluation transform (image.h).
 *
 * The resize is separable with a triangle (bilinear) filter whose support
 * grows with the reduction, so a photo several times the model's size is
 * averaged rather than sampled: what image libraries call antialiased
 * bilinear resizing, the transform models are evaluated with.
 */
#include "tools/image.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <turbojpeg.h>

#include "base/error.h"
#include "base/mem.h"

image_transform image_transform_imagenet(void) {
  return (image_transform){.size = 224,
                           .resize_shorter = 256,
                           .scale = 255.0f,
                           .mean = {0.485f, 0.456f, 0.406f},
                           .std = {0.229f, 0.224f, 0.225f}};
}

static inferd_error *check_size(const char *kind, long long width, long long height) {
  if (width < 1 || height < 1 || width > IMAGE_MAX_SIDE || height > IMAGE_MAX_SIDE ||
      width * height > IMAGE_MAX_PIXELS)
    return err_new(INFERD_ERROR_INVALID_ARG, "%s image of %lldx%lld pixels is outside the limits (1 to %d a side, %d "
                   "megapixels)", kind, width, height, IMAGE_MAX_SIDE, IMAGE_MAX_PIXELS / (1024 * 1024));
  return NULL;
}

static inferd_error *decode_jpeg(const uint8_t *data, size_t size, image *out) {
  if (size > (size_t)0xffffffffu) return err_new(INFERD_ERROR_INVALID_ARG, "JPEG data of %zu bytes is too large", size);
  tjhandle tj = tjInitDecompress();
  if (!tj) return err_new(INFERD_ERROR_INTERNAL, "cannot start the JPEG decoder");
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  inferd_error *e = NULL;
  if (tjDecompressHeader3(tj, data, (unsigned long)size, &width, &height, &subsampling, &colorspace) != 0) {
    e = err_new(INFERD_ERROR_INVALID_ARG, "not a valid JPEG: %s", tjGetErrorStr2(tj));
  } else if (!(e = check_size("JPEG", width, height))) {
    out->width = width;
    out->height = height;
    out->rgb = mem_try_alloc((size_t)width * (size_t)height, 3);
    if (!out->rgb) {
      e = err_new(INFERD_ERROR_NO_MEMORY, "no memory for a %dx%d image", width, height);
    } else if (tjDecompress2(tj, data, (unsigned long)size, out->rgb, width, 0, height, TJPF_RGB,
                             TJFLAG_LIMITSCANS) != 0 &&
               tjGetErrorCode(tj) != TJERR_WARNING) {
      /* A warning (a truncated scan, extra bytes) still leaves the pixels
       * decoded; an error leaves none. */
      e = err_new(INFERD_ERROR_INVALID_ARG, "cannot decode the JPEG: %s", tjGetErrorStr2(tj));
    }
  }
  tjDestroy(tj);
  if (e) image_free(out);
  return e;
}

static inferd_error *decode_png(const uint8_t *data, size_t size, image *out) {
  png_image png;
  memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, data, size))
    return err_new(INFERD_ERROR_INVALID_ARG, "not a valid PNG: %s", png.message);
  inferd_error *e = check_size("PNG", png.width, png.height);
  if (e) {
    png_image_free(&png);
    return e;
  }
  png.format = PNG_FORMAT_RGB; /* grey, palette and 16-bit converted; alpha composited on black */
  out->width = (int)png.width;
  out->height = (int)png.height;
  out->rgb = mem_try_alloc(PNG_IMAGE_SIZE(png), 1);
  if (!out->rgb) {
    png_image_free(&png);
    return err_new(INFERD_ERROR_NO_MEMORY, "no memory for a %dx%d image", out->width, out->height);
  }
  if (!png_image_finish_read(&png, NULL, out->rgb, 0, NULL)) {
    e = err_new(INFERD_ERROR_INVALID_ARG, "cannot decode the PNG: %s", png.message);
    image_free(out);
  }
  png_image_free(&png);
  return e;
}

inferd_error *image_decode(const uint8_t *data, size_t size, image *out) {
  *out = (image){0};
  static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) return decode_jpeg(data, size, out);
  if (size >= 8 && memcmp(data, png_magic, 8) == 0) return decode_png(data, size, out);
  return err_new(INFERD_ERROR_INVALID_ARG, "not a JPEG or PNG image (its first bytes name neither)");
}

inferd_error *image_read(const char *path, image *out) {
  *out = (image){0};
  FILE *f = fopen(path, "rb");
  if (!f) return err_new(INFERD_ERROR_NOT_FOUND, "cannot open '%s'", path);
  inferd_error *e = NULL;
  long size = -1;
  if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
  if (size < 0 || fseek(f, 0, SEEK_SET) != 0) e = err_new(INFERD_ERROR_INVALID_ARG, "cannot read '%s'", path);
  else if (size > 256L * 1024 * 1024)
    e = err_new(INFERD_ERROR_TOO_LARGE, "'%s' is %ld bytes, over the 256 MiB an image may be", path, size);
  uint8_t *bytes = e ? NULL : mem_try_alloc((size_t)size + 1, 1);
  if (!e && !bytes) e = err_new(INFERD_ERROR_NO_MEMORY, "no memory to read '%s'", path);
  if (!e && fread(bytes, 1, (size_t)size, f) != (size_t)size) e = err_new(INFERD_ERROR_INVALID_ARG, "cannot read '%s'", path);
  fclose(f);
  if (!e) e = image_decode(bytes, (size_t)size, out);
  free(bytes);
  return e ? err_wrap(e, "'%s'", path) : NULL;
}

void image_free(image *im) {
  free(im->rgb);
  *im = (image){0};
}

bool image_path_is_image(const char *path) {
  const char *dot = strrchr(path, '.');
  return dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 || strcasecmp(dot, ".png") == 0);
}

/* The taps of a 1-D resize from `in` to `out` samples: for each output
 * sample, the first input it reads and its normalized weights. */
typedef struct taps {
  int width; /* weights per output sample */
  int *first;
  float *weights; /* out x width */
} taps;

static void taps_make(int in, int out, taps *t) {
  const double ratio = (double)in / out;
  const double support = ratio > 1 ? ratio : 1.0; /* the triangle's half-width, in input samples */
  t->width = (int)ceil(support) * 2 + 1;
  t->first = mem_alloc((size_t)out * sizeof(int));
  t->weights = mem_zalloc((size_t)out * (size_t)t->width * sizeof(float));
  for (int x = 0; x < out; x++) {
    const double center = (x + 0.5) * ratio;
    int lo = (int)floor(center - support), hi = (int)ceil(center + support);
    if (lo < 0) lo = 0;
    if (hi > in) hi = in;
    if (hi - lo > t->width) hi = lo + t->width;
    double sum = 0;
    float *w = &t->weights[(size_t)x * (size_t)t->width];
    for (int i = lo; i < hi; i++) {
      const double d = fabs(i + 0.5 - center) / support;
      w[i - lo] = d < 1 ? (float)(1 - d) : 0.0f;
      sum += w[i - lo];
    }
    for (int i = 0; i < hi - lo && sum > 0; i++) w[i] = (float)(w[i] / sum);
    t->first[x] = lo;
  }
}

static void taps_free(taps *t) {
  free(t->first);
  free(t->weights);
}

void image_preprocess(const image *im, const image_transform *t, float *out) {
  /* The resized image's size: shorter side resize_shorter, the other in
   * proportion, never under the crop. */
  const int shorter = im->width < im->height ? im->width : im->height;
  const double s = (double)t->resize_shorter / shorter;
  int rw = (int)lround(im->width * s), rh = (int)lround(im->height * s);
  if (rw < t->size) rw = t->size;
  if (rh < t->size) rh = t->size;
  const int left = (rw - t->size) / 2, top = (rh - t->size) / 2, n = t->size;
  /* Only the crop is computed: columns first (for the rows the crop's
   * rows read), then rows. */
  taps tx, ty;
  taps_make(im->width, rw, &tx);
  taps_make(im->height, rh, &ty);
  int row_lo = ty.first[top], row_hi = 0;
  for (int y = top; y < top + n; y++) {
    const int end = ty.first[y] + ty.width;
    if (end > row_hi) row_hi = end;
  }
  if (row_hi > im->height) row_hi = im->height;
  const int rows = row_hi - row_lo;
  float *mid = mem_alloc((size_t)rows * (size_t)n * 3 * sizeof(float));
  for (int r = 0; r < rows; r++) {
    const uint8_t *src = &im->rgb[(size_t)(row_lo + r) * (size_t)im->width * 3];
    for (int x = 0; x < n; x++) {
      const int first = tx.first[left + x];
      const float *w = &tx.weights[(size_t)(left + x) * (size_t)tx.width];
      float acc[3] = {0, 0, 0};
      for (int k = 0; k < tx.width && first + k < im->width; k++)
        for (int c = 0; c < 3; c++) acc[c] += w[k] * src[(size_t)(first + k) * 3 + (size_t)c];
      memcpy(&mid[((size_t)r * (size_t)n + (size_t)x) * 3], acc, sizeof(acc));
    }
  }
  for (int y = 0; y < n; y++) {
    const int first = ty.first[top + y];
    const float *w = &ty.weights[(size_t)(top + y) * (size_t)ty.width];
    for (int x = 0; x < n; x++) {
      float acc[3] = {0, 0, 0};
      for (int k = 0; k < ty.width && first + k < row_hi; k++)
        for (int c = 0; c < 3; c++) acc[c] += w[k] * mid[((size_t)(first + k - row_lo) * (size_t)n + (size_t)x) * 3 + (size_t)c];
      for (int c = 0; c < 3; c++) {
        /* Output channel c reads RGB channel c, or 2 - c in BGR order. */
        const int from = t->bgr ? 2 - c : c;
        const float v = (acc[from] / t->scale - t->mean[c]) / t->std[c];
        const size_t at = t->nhwc ? ((size_t)y * (size_t)n + (size_t)x) * 3 + (size_t)c
                                  : ((size_t)c * (size_t)n + (size_t)y) * (size_t)n + (size_t)x;
        out[at] = v;
      }
    }
  }
  free(mid);
  taps_free(&tx);
  taps_free(&ty);
}
