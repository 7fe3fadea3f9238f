/*
 * Photos as `inferd calibrate` (and, later, image requests) decode them:
 * JPEG through libturbojpeg and PNG through libpng, behind inferd's size
 * limits, then the evaluation transform on whatever decoded. A decoded
 * image must have the size it claims and pixels that can all be read.
 */
#include "fuzz/fuzz_util.h"
#include "tools/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  image im;
  inferd_error *err = image_decode(data, size, &im);
  if (err) {
    FUZZ_CHECK(im.rgb == NULL);
    inferd_error_delete(err);
    return 0;
  }
  FUZZ_CHECK(im.width >= 1 && im.height >= 1 && im.width <= IMAGE_MAX_SIDE && im.height <= IMAGE_MAX_SIDE);
  FUZZ_CHECK((size_t)im.width * (size_t)im.height <= IMAGE_MAX_PIXELS);
  fuzz_touch(im.rgb, (size_t)im.width * (size_t)im.height * 3);
  /* A small crop keeps each run short whatever the image's size. */
  image_transform t = image_transform_imagenet();
  t.size = 8;
  t.resize_shorter = 9;
  float out[3 * 8 * 8];
  image_preprocess(&im, &t, out);
  fuzz_touch(out, sizeof(out));
  image_free(&im);
  return 0;
}
