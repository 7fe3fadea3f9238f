/*
 * Images as image models take them: JPEG (libturbojpeg) and PNG (libpng)
 * decoded to 8-bit RGB, then the usual evaluation transform: the shorter
 * side resized (bilinear), a centred square crop, pixel values scaled and
 * normalized per channel, in RGB or BGR order, as NCHW or NHWC floats.
 * `inferd calibrate --data DIR` reads folders of photos with it.
 *
 * Decoding takes bytes from anywhere (a client, a file): sizes are checked
 * before anything is allocated, and a file that is not a whole, valid image
 * is an error naming what is wrong, never a crash.
 */
#ifndef INFERD_TOOLS_IMAGE_H
#define INFERD_TOOLS_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inferd.h"

/* The largest image decoded: 16384 pixels a side and 64 megapixels. */
enum { IMAGE_MAX_SIDE = 16384, IMAGE_MAX_PIXELS = 64 * 1024 * 1024 };

typedef struct image {
  int width, height;
  uint8_t *rgb; /* height x width x 3, malloc'd, owned by the image */
} image;

/* What the model wants of an image. */
typedef struct image_transform {
  int size;           /* side of the square crop the model reads */
  int resize_shorter; /* the shorter side is resized to this first (>= size) */
  float scale;        /* pixel values are divided by this (255: values in [0, 1]) */
  float mean[3], std[3]; /* per output channel (in the output's order), after the scale */
  bool bgr;           /* output channels in BGR order */
  bool nhwc;          /* HWC per image instead of CHW */
} image_transform;

/* ImageNet's evaluation transform: 224 crop of a 256 resize, [0, 1], the
 * ImageNet mean and standard deviation, RGB, NCHW. */
image_transform image_transform_imagenet(void);

/* Decodes a JPEG or PNG held in memory (the kind from its first bytes). */
inferd_error *image_decode(const uint8_t *data, size_t size, image *out);
/* The same for a file (read whole; a file over 256 MiB is refused). */
inferd_error *image_read(const char *path, image *out);
void image_free(image *im);

/* Writes size x size x 3 floats into out (CHW or HWC, as t says). */
void image_preprocess(const image *im, const image_transform *t, float *out);

/* Whether a file name ends in .jpg, .jpeg or .png (any case). */
bool image_path_is_image(const char *path);

#endif
