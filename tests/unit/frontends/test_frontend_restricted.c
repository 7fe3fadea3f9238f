/* Restricted APIs without a server: every HTTP route and gRPC RPC has a
 * category, the flag syntax and its errors (which never repeat the value),
 * duplicates across flags, and the comparison of values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "frontends/frontend_restricted.h"
#include "frontends/grpc/grpc_internal.h"
#include "frontends/http/http_route.h"

static void test_every_endpoint_has_a_category(void **state) {
  (void)state;
  for (int kind = 0; kind < HTTP_ROUTE_KIND_COUNT_; kind++) {
    const frontend_api api = frontend_api_of_http_route(kind);
    if (kind == HTTP_ROUTE_NOT_FOUND || kind == HTTP_ROUTE_BAD_VERSION)
      assert_int_equal(api, FRONTEND_API_NONE);
    else if (api == FRONTEND_API_NONE)
      fail_msg("HTTP route kind %d has no category", kind);
  }
  for (int m = 0; m < grpc_method_count; m++)
    if (frontend_api_of_grpc_method(grpc_methods[m].path) == FRONTEND_API_NONE)
      fail_msg("gRPC method %s has no category", grpc_methods[m].path);
  assert_int_equal(frontend_api_of_grpc_method("/inference.GRPCInferenceService/Nope"), FRONTEND_API_NONE);
  assert_int_equal(frontend_api_of_grpc_method("/other.Service/ModelInfer"), FRONTEND_API_NONE);
}

/* Spot checks against Triton's grouping. */
static void test_categories_are_tritons(void **state) {
  (void)state;
  const struct {
    const char *path;
    int route;
    frontend_api api;
  } cases[] = {
      {"/v2/health/live", HTTP_ROUTE_HEALTH_LIVE, FRONTEND_API_HEALTH},
      {"/v2/models/m/ready", HTTP_ROUTE_MODEL_READY, FRONTEND_API_HEALTH},
      {"/v2", HTTP_ROUTE_SERVER_METADATA, FRONTEND_API_METADATA},
      {"/v2/models/m", HTTP_ROUTE_MODEL_METADATA, FRONTEND_API_METADATA},
      {"/v2/models/m/infer", HTTP_ROUTE_INFER, FRONTEND_API_INFERENCE},
      {"/v2/models/m/config", HTTP_ROUTE_MODEL_CONFIG, FRONTEND_API_MODEL_CONFIG},
      {"/v2/models/m/stats", HTTP_ROUTE_MODEL_STATS, FRONTEND_API_STATISTICS},
      {"/v2/repository/index", HTTP_ROUTE_REPOSITORY_INDEX, FRONTEND_API_MODEL_REPOSITORY},
      {"/v2/repository/models/m/load", HTTP_ROUTE_MODEL_LOAD, FRONTEND_API_MODEL_REPOSITORY},
      {"/v2/cudasharedmemory/status", HTTP_ROUTE_SHM_STATUS, FRONTEND_API_SHARED_MEMORY},
      {"/v2/systemsharedmemory/region/r/register", HTTP_ROUTE_SHM_REGISTER, FRONTEND_API_SHARED_MEMORY},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    http_route r;
    http_route_parse(cases[i].path, &r);
    assert_int_equal(r.kind, cases[i].route);
    if (frontend_api_of_http_route(r.kind) != cases[i].api) fail_msg("%s: wrong category", cases[i].path);
    http_route_free(&r);
  }
  assert_int_equal(frontend_api_of_grpc_method("/inference.GRPCInferenceService/ModelStreamInfer"),
                   FRONTEND_API_INFERENCE);
  assert_int_equal(frontend_api_of_grpc_method("/inference.GRPCInferenceService/ModelReady"), FRONTEND_API_HEALTH);
  assert_int_equal(frontend_api_of_grpc_method("/inference.GRPCInferenceService/CudaSharedMemoryRegister"),
                   FRONTEND_API_SHARED_MEMORY);
  assert_string_equal(frontend_api_name(FRONTEND_API_MODEL_REPOSITORY), "model-repository");
}

static void test_flags(void **state) {
  (void)state;
  frontend_restrictions r = {0};
  assert_null(frontend_restrictions_add(&r, "--http-restricted-api", "inference,model-repository:Admin-Key=s3=cr:t"));
  assert_null(frontend_restrictions_add(&r, "--http-restricted-api", "health:probe=p"));
  const frontend_restriction *inference = frontend_restriction_of(&r, FRONTEND_API_INFERENCE);
  assert_non_null(inference);
  assert_string_equal(inference->key, "Admin-Key");
  assert_string_equal(inference->value, "s3=cr:t"); /* after the first '=', '=' and ':' are the value's */
  assert_non_null(frontend_restriction_of(&r, FRONTEND_API_MODEL_REPOSITORY));
  assert_string_equal(frontend_restriction_of(&r, FRONTEND_API_HEALTH)->value, "p");
  assert_null(frontend_restriction_of(&r, FRONTEND_API_METADATA));
  assert_null(frontend_restriction_of(&r, FRONTEND_API_NONE));
  assert_null(frontend_restriction_of(NULL, FRONTEND_API_INFERENCE));
  frontend_restrictions_free(&r);
  assert_null(frontend_restriction_of(&r, FRONTEND_API_INFERENCE));
}

/* Every bad flag is refused with a message naming the flag and the
 * problem, never the value, and leaves the restrictions as they were. */
static void test_bad_flags(void **state) {
  (void)state;
  frontend_restrictions r = {0};
  assert_null(frontend_restrictions_add(&r, "--f", "health:k=v"));
  const struct {
    const char *text, *message;
  } cases[] = {
      {"inference", "no ':'"},
      {"k=TOPSECRET", "no ':'"},
      {"inference:kTOPSECRET", "no '='"},
      {"inference:=TOPSECRET", "header name is empty"},
      {"inference:bad key=TOPSECRET", "a header name may not have"},
      {"inference:k=", "value is empty"},
      {"inference:k= TOPSECRET", "starts or ends with a space"},
      {"inference:k=TOP\nSECRET", "not printable ASCII"},
      {"inferenc:k=TOPSECRET", "'inferenc' is not a category"},
      {"infer ence:k=TOPSECRET", "is not one of health"},
      {":k=TOPSECRET", "an empty category"},
      {"inference,:k=TOPSECRET", "an empty category"},
      {"inference,,metadata:k=TOPSECRET", "an empty category"},
      {"metadata,metadata:k=TOPSECRET", "category 'metadata' is restricted twice"},
      {"inference,health:k=TOPSECRET", "category 'health' is restricted twice"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    inferd_error *e = frontend_restrictions_add(&r, "--f", cases[i].text);
    if (!e) fail_msg("'%s' was accepted", cases[i].text);
    const char *m = inferd_error_message(e);
    if (strncmp(m, "--f: ", 5) != 0 || !strstr(m, cases[i].message))
      fail_msg("'%s': got '%s', want '%s'", cases[i].text, m, cases[i].message);
    if (strstr(m, "SECRET")) fail_msg("'%s': the message repeats the value: %s", cases[i].text, m);
    inferd_error_delete(e);
  }
  /* Nothing of the refused flags was kept. */
  assert_null(frontend_restriction_of(&r, FRONTEND_API_INFERENCE));
  assert_null(frontend_restriction_of(&r, FRONTEND_API_METADATA));
  assert_string_equal(frontend_restriction_of(&r, FRONTEND_API_HEALTH)->value, "v");
  frontend_restrictions_free(&r);
}

static void test_matching_and_denial(void **state) {
  (void)state;
  frontend_restrictions r = {0};
  assert_null(frontend_restrictions_add(&r, "--grpc-restricted-protocol", "inference:infer-key=letmein"));
  const frontend_restriction *x = frontend_restriction_of(&r, FRONTEND_API_INFERENCE);
  assert_true(frontend_restriction_matches(x, "letmein", 7));
  assert_true(frontend_restriction_matches(x, "letmein and more", 7)); /* a length-delimited value */
  assert_false(frontend_restriction_matches(x, NULL, 0));
  assert_false(frontend_restriction_matches(x, "", 0));
  assert_false(frontend_restriction_matches(x, "letmei", 6));
  assert_false(frontend_restriction_matches(x, "letmein!", 8));
  assert_false(frontend_restriction_matches(x, "letmeIn", 7));
  assert_false(frontend_restriction_matches(x, "Letmein", 7));
  inferd_error *e = frontend_restriction_denied(x, FRONTEND_API_INFERENCE, "metadata key");
  assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_PERMISSION_DENIED);
  assert_int_equal(inferd_error_code_http_status(INFERD_ERROR_PERMISSION_DENIED), 403);
  assert_int_equal(inferd_error_code_grpc_status(INFERD_ERROR_PERMISSION_DENIED), 7);
  const char *m = inferd_error_message(e);
  assert_non_null(strstr(m, "'inference'"));
  assert_non_null(strstr(m, "'infer-key'"));
  assert_null(strstr(m, "letmein"));
  inferd_error_delete(e);
  frontend_restrictions_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_endpoint_has_a_category),
      cmocka_unit_test(test_categories_are_tritons),
      cmocka_unit_test(test_flags),
      cmocka_unit_test(test_bad_flags),
      cmocka_unit_test(test_matching_and_denial),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
