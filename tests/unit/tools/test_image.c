/*
 * Images: PNG and JPEG made here with the encoders decode to their pixels
 * (PNG exactly, grey and alpha ones as RGB; JPEG within its loss), bad and
 * oversized images are errors naming the problem, and the transform gives
 * the normalized values in the layout and channel order asked for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <zlib.h>

#include "tools/image.h"

/* A PNG of w x h pixels in `format` (libpng's simplified writer). */
static uint8_t *png_of(int w, int h, png_uint_32 format, const uint8_t *pixels, size_t *size) {
  png_image png;
  memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = (png_uint_32)w;
  png.height = (png_uint_32)h;
  png.format = format;
  png_alloc_size_t n = 0;
  assert_true(png_image_write_to_memory(&png, NULL, &n, 0, pixels, 0, NULL));
  uint8_t *buf = malloc(n);
  assert_true(png_image_write_to_memory(&png, buf, &n, 0, pixels, 0, NULL));
  *size = n;
  return buf;
}

static void assert_decode_fails(const uint8_t *data, size_t size, const char *words) {
  image im;
  inferd_error *e = image_decode(data, size, &im);
  assert_non_null(e);
  if (!strstr(inferd_error_message(e), words)) fail_msg("'%s' does not say '%s'", inferd_error_message(e), words);
  assert_null(im.rgb);
  inferd_error_delete(e);
}

static void test_png_decodes_to_its_pixels(void **state) {
  (void)state;
  uint8_t px[5 * 3 * 3];
  for (size_t i = 0; i < sizeof(px); i++) px[i] = (uint8_t)(i * 17);
  size_t size;
  uint8_t *png = png_of(5, 3, PNG_FORMAT_RGB, px, &size);
  image im;
  assert_null(image_decode(png, size, &im));
  assert_int_equal(im.width, 5);
  assert_int_equal(im.height, 3);
  assert_memory_equal(im.rgb, px, sizeof(px));
  image_free(&im);
  /* Cut short: an error, no pixels. */
  assert_decode_fails(png, size / 2, "PNG");
  free(png);

  /* Grey becomes three equal channels; alpha is composited away. */
  const uint8_t grey[4] = {0, 80, 160, 255};
  png = png_of(2, 2, PNG_FORMAT_GRAY, grey, &size);
  assert_null(image_decode(png, size, &im));
  for (int i = 0; i < 4; i++)
    for (int c = 0; c < 3; c++) assert_int_equal(im.rgb[i * 3 + c], grey[i]);
  image_free(&im);
  free(png);
  const uint8_t rgba[2 * 4] = {10, 20, 30, 255, 200, 100, 50, 255};
  png = png_of(2, 1, PNG_FORMAT_RGBA, rgba, &size);
  assert_null(image_decode(png, size, &im));
  const uint8_t want[6] = {10, 20, 30, 200, 100, 50};
  assert_memory_equal(im.rgb, want, sizeof(want));
  image_free(&im);
  free(png);
}

static void test_jpeg_decodes_within_its_loss(void **state) {
  (void)state;
  enum { W = 32, H = 24 };
  uint8_t px[W * H * 3];
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      px[(y * W + x) * 3 + 0] = (uint8_t)(x * 8);
      px[(y * W + x) * 3 + 1] = (uint8_t)(y * 10);
      px[(y * W + x) * 3 + 2] = 128;
    }
  tjhandle tj = tjInitCompress();
  unsigned char *jpeg = NULL;
  unsigned long size = 0;
  assert_int_equal(tjCompress2(tj, px, W, 0, H, TJPF_RGB, &jpeg, &size, TJSAMP_444, 100, 0), 0);
  tjDestroy(tj);
  image im;
  assert_null(image_decode(jpeg, size, &im));
  assert_int_equal(im.width, W);
  assert_int_equal(im.height, H);
  int worst = 0;
  for (size_t i = 0; i < sizeof(px); i++) {
    const int d = abs((int)im.rgb[i] - (int)px[i]);
    if (d > worst) worst = d;
  }
  assert_true(worst <= 6);
  image_free(&im);
  /* Only the header: the decoder says what is missing. */
  assert_decode_fails(jpeg, 20, "JPEG");
  tjFree(jpeg);
}

static void test_bad_and_oversized_images_are_errors(void **state) {
  (void)state;
  assert_decode_fails((const uint8_t *)"", 0, "not a JPEG or PNG");
  assert_decode_fails((const uint8_t *)"GIF89a....", 10, "not a JPEG or PNG");
  const uint8_t jpeg_magic_only[4] = {0xff, 0xd8, 0xff, 0xe0};
  assert_decode_fails(jpeg_magic_only, sizeof(jpeg_magic_only), "JPEG");

  /* A 1x1 PNG whose header claims 20000 x 20000 pixels (its checksum
   * fixed): refused before anything that size is allocated. */
  const uint8_t px[3] = {1, 2, 3};
  size_t size;
  uint8_t *png = png_of(1, 1, PNG_FORMAT_RGB, px, &size);
  const uint8_t big[4] = {0, 0, 0x4e, 0x20};
  memcpy(png + 16, big, 4); /* width, after the signature, length and "IHDR" */
  memcpy(png + 20, big, 4); /* height */
  const uLong crc = crc32(0, png + 12, 17);
  const uint8_t crc_bytes[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
  memcpy(png + 29, crc_bytes, 4);
  assert_decode_fails(png, size, "outside the limits");
  free(png);

  image im;
  inferd_error *e = image_read("/nonexistent/photo.jpg", &im);
  assert_non_null(e);
  assert_non_null(strstr(inferd_error_message(e), "/nonexistent/photo.jpg"));
  inferd_error_delete(e);
}

static void test_transform_normalizes_in_the_layout_asked(void **state) {
  (void)state;
  /* 40 x 20: left half red (200, 0, 0), right half blue (0, 0, 100). */
  enum { W = 40, H = 20, N = 8 };
  image im = {.width = W, .height = H, .rgb = calloc(W * H * 3, 1)};
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      if (x < W / 2) im.rgb[(y * W + x) * 3 + 0] = 200;
      else im.rgb[(y * W + x) * 3 + 2] = 100;
    }
  image_transform t = {.size = N, .resize_shorter = N, .scale = 255, .mean = {0.5f, 0.25f, 0.125f},
                       .std = {0.5f, 0.25f, 2.0f}};
  /* Resized to 16 x 8, the crop is columns 4..11: 4 red, 4 blue, the two
   * middle columns mixed by the filter. */
  float chw[3 * N * N], hwc[3 * N * N], bgr[3 * N * N];
  image_preprocess(&im, &t, chw);
  const float red = (200.0f / 255 - 0.5f) / 0.5f, no_green = (0 - 0.25f) / 0.25f;
  const float blue = (100.0f / 255 - 0.125f) / 2.0f, no_red = (0 - 0.5f) / 0.5f;
  for (int y = 0; y < N; y++) {
    assert_float_equal(chw[0 * N * N + y * N + 0], red, 1e-5);
    assert_float_equal(chw[1 * N * N + y * N + 0], no_green, 1e-5);
    assert_float_equal(chw[0 * N * N + y * N + N - 1], no_red, 1e-5);
    assert_float_equal(chw[2 * N * N + y * N + N - 1], blue, 1e-5);
    /* Mirror symmetry of the filter around the edge. */
    const float l = chw[0 * N * N + y * N + 3], r = chw[0 * N * N + y * N + 4];
    assert_true(l > r && l < red && r > no_red);
  }
  t.nhwc = true;
  image_preprocess(&im, &t, hwc);
  for (int c = 0; c < 3; c++)
    for (int p = 0; p < N * N; p++) assert_float_equal(hwc[p * 3 + c], chw[c * N * N + p], 1e-6);
  t.nhwc = false;
  t.bgr = true;
  image_preprocess(&im, &t, bgr);
  /* Output channel 0 is blue now, normalized by the first mean and std. */
  assert_float_equal(bgr[0 * N * N + N - 1], (100.0f / 255 - 0.5f) / 0.5f, 1e-5);
  assert_float_equal(bgr[2 * N * N + 0], (200.0f / 255 - 0.125f) / 2.0f, 1e-5);
  image_free(&im);
}

static void test_a_large_photo_is_averaged_not_sampled(void **state) {
  (void)state;
  /* A 1-pixel checkerboard reduced 8 times is an even grey. */
  enum { W = 256, N = 32 };
  image im = {.width = W, .height = W, .rgb = malloc(W * W * 3)};
  for (int y = 0; y < W; y++)
    for (int x = 0; x < W; x++) memset(&im.rgb[(y * W + x) * 3], (x + y) % 2 ? 255 : 0, 3);
  const image_transform t = {.size = N, .resize_shorter = N, .scale = 255, .mean = {0, 0, 0}, .std = {1, 1, 1}};
  float out[3 * N * N];
  image_preprocess(&im, &t, out);
  for (int i = 0; i < 3 * N * N; i++) assert_float_equal(out[i], 0.5f, 0.02f);
  image_free(&im);
}

static void test_image_file_names(void **state) {
  (void)state;
  assert_true(image_path_is_image("a/b.jpg"));
  assert_true(image_path_is_image("B.JPEG"));
  assert_true(image_path_is_image("c.png"));
  assert_false(image_path_is_image("d.npy"));
  assert_false(image_path_is_image("jpg"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_png_decodes_to_its_pixels),
      cmocka_unit_test(test_jpeg_decodes_within_its_loss),
      cmocka_unit_test(test_bad_and_oversized_images_are_errors),
      cmocka_unit_test(test_transform_normalizes_in_the_layout_asked),
      cmocka_unit_test(test_a_large_photo_is_averaged_not_sampled),
      cmocka_unit_test(test_image_file_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
