/* REST path routing of the HTTP frontend: every endpoint, versions, percent
 * decoding, and paths that must not match. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "frontends/http/http_route.h"

static void expect(const char *path, http_route_kind kind, http_method method, const char *model, int64_t version) {
  http_route r;
  http_route_parse(path, &r);
  if (r.kind != kind) fail_msg("%s: kind %d, want %d", path, r.kind, kind);
  if (kind != HTTP_ROUTE_NOT_FOUND && kind != HTTP_ROUTE_BAD_VERSION) assert_int_equal(r.method, method);
  if (model) {
    assert_non_null(r.model);
    assert_string_equal(r.model, model);
  } else {
    assert_null(r.model);
  }
  assert_int_equal(r.version, version);
  http_route_free(&r);
}

static void test_routes(void **state) {
  (void)state;
  const http_method G = HTTP_METHOD_GET, P = HTTP_METHOD_POST;
  expect("/v2", HTTP_ROUTE_SERVER_METADATA, G, NULL, -1);
  expect("/v2/", HTTP_ROUTE_SERVER_METADATA, G, NULL, -1);
  expect("/v2/health/live", HTTP_ROUTE_HEALTH_LIVE, G, NULL, -1);
  expect("/v2/health/ready", HTTP_ROUTE_HEALTH_READY, G, NULL, -1);
  expect("/v2/models/resnet", HTTP_ROUTE_MODEL_METADATA, G, "resnet", -1);
  expect("/v2/models/resnet/versions/3", HTTP_ROUTE_MODEL_METADATA, G, "resnet", 3);
  expect("/v2/models/resnet/ready", HTTP_ROUTE_MODEL_READY, G, "resnet", -1);
  expect("/v2/models/resnet/versions/12/ready", HTTP_ROUTE_MODEL_READY, G, "resnet", 12);
  expect("/v2/models/resnet/config", HTTP_ROUTE_MODEL_CONFIG, G, "resnet", -1);
  expect("/v2/models/resnet/versions/1/config", HTTP_ROUTE_MODEL_CONFIG, G, "resnet", 1);
  expect("/v2/models/stats", HTTP_ROUTE_MODEL_STATS, G, NULL, -1);
  expect("/v2/models/resnet/stats", HTTP_ROUTE_MODEL_STATS, G, "resnet", -1);
  expect("/v2/models/resnet/versions/2/stats", HTTP_ROUTE_MODEL_STATS, G, "resnet", 2);
  expect("/v2/models/resnet/infer", HTTP_ROUTE_INFER, P, "resnet", -1);
  expect("/v2/models/resnet/versions/2/infer", HTTP_ROUTE_INFER, P, "resnet", 2);
  expect("/v2/models/my%20model%2Fx/infer", HTTP_ROUTE_INFER, P, "my model/x", -1);
  expect("/v2/repository/index", HTTP_ROUTE_REPOSITORY_INDEX, P, NULL, -1);
  expect("/v2/repository/models/resnet/load", HTTP_ROUTE_MODEL_LOAD, P, "resnet", -1);
  expect("/v2/repository/models/resnet/unload", HTTP_ROUTE_MODEL_UNLOAD, P, "resnet", -1);
  expect("/v2/models/resnet/versions/abc", HTTP_ROUTE_BAD_VERSION, G, NULL, -1);
  expect("/v2/models/resnet/versions/-1/infer", HTTP_ROUTE_BAD_VERSION, G, NULL, -1);
}

static void test_not_found(void **state) {
  (void)state;
  const char *paths[] = {NULL,
                         "",
                         "/",
                         "/v1",
                         "/v2x",
                         "/v2/health",
                         "/v2/health/dead",
                         "/v2/models",
                         "/v2/models/m/infer/x",
                         "/v2/models/m/versions",
                         "/v2/models/m/other",
                         "/v2/repository",
                         "/v2/repository/models/m",
                         "/v2/repository/models/m/reload",
                         "/v2/models/%00/infer",
                         "/a/b/c/d/e/f/g/h/i/j"};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
    expect(paths[i], HTTP_ROUTE_NOT_FOUND, HTTP_METHOD_GET, NULL, -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_routes), cmocka_unit_test(test_not_found)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
