/*
 * The metrics module: exposition formatting (escaping, NaN), the quantile
 * list parser, the /proc parsers on fixture text, the NVML monitor over a
 * fake function table (figures, a device that lacks power readings, NVML
 * failing to start), and a real server with a tiny model rendered end to
 * end (counters by exactly the requests sent, failure reasons, summaries,
 * fake GPU families), also through the /metrics endpoint over a socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontends/metrics/metrics_frontend.h"
#include "metrics/cpu_proc.h"
#include "metrics/exposition.h"
#include "metrics/gpu_nvml.h"
#include "metrics/metrics_internal.h"
#include "unit/server/tiny_model.h"

/* ---- exposition and parsers ---- */

static void test_exposition_format(void **state) {
  (void)state;
  expo_buf labels = {0};
  expo_label(&labels, "model", "we\"ird\\name\nx");
  expo_label(&labels, "version", "3");
  assert_string_equal(labels.data, "model=\"we\\\"ird\\\\name\\nx\",version=\"3\"");
  expo_buf b = {0};
  expo_family(&b, "nv_x", "counter", "An x");
  expo_sample_u64(&b, "nv_x", labels.data, 18446744073709551615ull);
  expo_sample_double(&b, "nv_y", "", NAN);
  expo_sample_double(&b, "nv_y", "", 0.35);
  expo_sample_double(&b, "nv_y", "", INFINITY);
  size_t len;
  char *text = expo_take(&b, &len);
  assert_string_equal(text, "# HELP nv_x An x\n# TYPE nv_x counter\n"
                            "nv_x{model=\"we\\\"ird\\\\name\\nx\",version=\"3\"} 18446744073709551615\n"
                            "nv_y NaN\nnv_y 0.35\nnv_y +Inf\n");
  assert_int_equal(len, strlen(text));
  free(text);
  expo_free(&labels);
}

static void test_quantile_lists(void **state) {
  (void)state;
  metrics_quantiles q;
  assert_null(metrics_parse_quantiles("0.5:0.05,0.9:0.01,0.99:0.001", &q));
  assert_int_equal(q.count, 3);
  assert_true(q.q[2] == 0.99 && q.error[2] == 0.001);
  const char *bad[] = {"", "0.5", "0.5:", "1.5:0.1", "0.5:0.1,", "x:0.1", "0.5:0.1;0.9:0.1", "0.5:2"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    inferd_error *e = metrics_parse_quantiles(bad[i], &q);
    assert_non_null(e);
    assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_INVALID_ARG);
    assert_non_null(strstr(inferd_error_message(e), "summary_quantiles"));
    inferd_error_delete(e);
  }
}

static void test_proc_parsers(void **state) {
  (void)state;
  cpu_times a, b;
  assert_true(cpu_parse_stat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n", &a));
  assert_int_equal(a.total, 1000);
  assert_int_equal(a.busy, 150);
  assert_true(cpu_parse_stat("cpu  400 0 150 1300 150 0 0 0 0 0\n", &b));
  assert_true(fabs(cpu_utilization(&a, &b) - 400.0 / 1000.0) < 1e-9);
  assert_true(cpu_utilization(&b, &b) == 0);
  assert_false(cpu_parse_stat("intr 1 2 3\n", &a));
  assert_false(cpu_parse_stat("cpu  1 2\n", &a));
  uint64_t total, used;
  assert_true(cpu_parse_meminfo("MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\n", &total,
                                &used));
  assert_int_equal(total, 1000 * 1024);
  assert_int_equal(used, 750 * 1024);
  assert_false(cpu_parse_meminfo("MemTotal:       1000 kB\nMemFree: 3 kB\n", &total, &used));
}

/* ---- a fake NVML: two GPUs, the second without power readings ---- */

static struct {
  int init_result;
  int shutdowns;
  unsigned long long energy_mj[2];
} fake;

static nvml_return fake_init(void) { return fake.init_result; }
static nvml_return fake_shutdown(void) {
  fake.shutdowns++;
  return NVML_OK;
}
static nvml_return fake_count(unsigned int *n) {
  *n = 2;
  return NVML_OK;
}
static nvml_return fake_by_index(unsigned int i, nvml_device *d) {
  *d = (nvml_device)(uintptr_t)(i + 1);
  return NVML_OK;
}
static int index_of(nvml_device d) { return (int)(uintptr_t)d - 1; }
static nvml_return fake_uuid(nvml_device d, char *uuid, unsigned int size) {
  snprintf(uuid, size, "GPU-fake-%d", index_of(d));
  return NVML_OK;
}
static nvml_return fake_utilization(nvml_device d, nvml_utilization *u) {
  *u = (nvml_utilization){.gpu = index_of(d) ? 97 : 42, .memory = 10};
  return NVML_OK;
}
static nvml_return fake_memory(nvml_device d, nvml_memory *m) {
  (void)d;
  *m = (nvml_memory){.total = 80ull << 30, .free = 60ull << 30, .used = 20ull << 30};
  return NVML_OK;
}
static nvml_return fake_power(nvml_device d, unsigned int *mw) {
  if (index_of(d)) return 3; /* NVML_ERROR_NOT_SUPPORTED */
  *mw = 250500;
  return NVML_OK;
}
static nvml_return fake_limit(nvml_device d, unsigned int *mw) {
  if (index_of(d)) return 3;
  *mw = 700000;
  return NVML_OK;
}
static nvml_return fake_energy(nvml_device d, unsigned long long *mj) {
  *mj = fake.energy_mj[index_of(d)];
  return NVML_OK;
}
static const char *fake_error(nvml_return code) { return code == 9 ? "Driver Not Loaded" : "Not Supported"; }

static const nvml_api fake_api = {
    .init = fake_init, .shutdown = fake_shutdown, .device_count = fake_count, .device_by_index = fake_by_index,
    .device_uuid = fake_uuid, .utilization = fake_utilization, .memory = fake_memory, .power_usage = fake_power,
    .power_limit = fake_limit, .total_energy = fake_energy, .error_string = fake_error,
};

static void test_gpu_monitor_over_fake_nvml(void **state) {
  (void)state;
  fake.init_result = NVML_OK;
  fake.shutdowns = 0;
  fake.energy_mj[0] = 1000000;
  fake.energy_mj[1] = 5000;
  gpu_monitor *m;
  assert_null(gpu_monitor_open(&fake_api, &m));
  assert_int_equal(gpu_monitor_count(m), 2);
  fake.energy_mj[0] += 123456; /* 123.456 J since the monitor opened */
  gpu_sample s[2];
  gpu_monitor_poll(m, s);
  assert_string_equal(s[0].uuid, "GPU-fake-0");
  assert_true(s[0].has_utilization && fabs(s[0].utilization - 0.42) < 1e-9);
  assert_true(s[0].has_memory && s[0].memory_total == 80ull << 30 && s[0].memory_used == 20ull << 30);
  assert_true(s[0].has_power && fabs(s[0].power_watts - 250.5) < 1e-9);
  assert_true(s[0].has_power_limit && fabs(s[0].power_limit_watts - 700) < 1e-9);
  assert_true(s[0].has_energy && fabs(s[0].energy_joules - 123.456) < 1e-9);
  assert_false(s[1].has_power);
  assert_false(s[1].has_power_limit);
  assert_true(s[1].has_energy && s[1].energy_joules == 0);
  gpu_monitor_close(m);
  assert_int_equal(fake.shutdowns, 1);

  fake.init_result = 9;
  inferd_error *e = gpu_monitor_open(&fake_api, &m);
  assert_non_null(e);
  assert_non_null(strstr(inferd_error_message(e), "Driver Not Loaded"));
  inferd_error_delete(e);
  assert_int_equal(fake.shutdowns, 1); /* NVML that did not start is not shut down */
  fake.init_result = NVML_OK;
}

static void test_gpu_monitor_without_library(void **state) {
  (void)state;
  /* This machine may or may not have a driver; either way the call answers. */
  gpu_monitor *m = NULL;
  inferd_error *e = gpu_monitor_open(NULL, &m);
  if (e) {
    assert_int_equal(inferd_error_code_of(e), INFERD_ERROR_UNAVAILABLE);
    assert_null(m);
    inferd_error_delete(e);
  } else {
    assert_true(gpu_monitor_count(m) > 0);
    gpu_monitor_close(m);
  }
}

/* ---- a real server rendered end to end ---- */

static char repo[256];
static inferd_server *server;

static int server_setup(void **state) {
  (void)state;
  snprintf(repo, sizeof(repo), "/tmp/inferd_test_metrics_%d", (int)getpid());
  char path[512];
  mkdir(repo, 0755);
  snprintf(path, sizeof(path), "%s/relu", repo);
  mkdir(path, 0755);
  snprintf(path, sizeof(path), "%s/relu/1", repo);
  mkdir(path, 0755);
  snprintf(path, sizeof(path), "%s/relu/1/model.onnx", repo);
  inferd_error *e = tiny_relu_model_write(path);
  if (e) {
    inferd_error_delete(e);
    return -1;
  }
  inferd_server_options o = {.model_repository = repo, .latency_summaries = true};
  e = inferd_server_create(&o, &server);
  if (e) {
    fprintf(stderr, "%s\n", inferd_error_message(e));
    inferd_error_delete(e);
    return -1;
  }
  return 0;
}

static int server_teardown(void **state) {
  (void)state;
  inferd_server_delete(server);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", repo);
  return system(cmd) == 0 ? 0 : -1;
}

typedef struct answers {
  pthread_mutex_t lock;
  int done, errors;
} answers;

static void on_answer(inferd_response *r, uint32_t flags, void *userp) {
  (void)flags;
  answers *a = userp;
  pthread_mutex_lock(&a->lock);
  a->done++;
  a->errors += inferd_response_error(r) != NULL;
  pthread_mutex_unlock(&a->lock);
  inferd_response_delete(r);
}

/* Sends one request of `cols` floats per row; returns the submit error, if any. */
static inferd_error *send_request(answers *a, const float *data, int cols) {
  inferd_request *r;
  assert_null(inferd_request_create(server, "relu", -1, &r));
  int64_t shape[2] = {1, cols};
  assert_null(inferd_request_add_input(r, "x", INFERD_TYPE_FP32, shape, 2, data, (size_t)cols * sizeof(float)));
  inferd_request_set_callbacks(r, NULL, NULL, on_answer, a);
  inferd_error *e = inferd_server_infer(server, r);
  if (e) inferd_request_delete(r);
  return e;
}

static char *render(inferd_metrics *m) {
  char *text;
  size_t len;
  assert_null(inferd_metrics_render(m, &text, &len));
  assert_int_equal(strlen(text), len);
  return text;
}

static void expect_line(const char *text, const char *line) {
  char *found = strstr(text, line);
  if (!found || (found != text && found[-1] != '\n') || found[strlen(line)] != '\n')
    fail_msg("no line '%s' in:\n%s", line, text);
}

static void test_render_server_counters(void **state) {
  (void)state;
  fake.init_result = NVML_OK;
  gpu_monitor *gpu;
  assert_null(gpu_monitor_open(&fake_api, &gpu));
  inferd_metrics *m;
  inferd_metrics_options o = {.cpu = true, .counter_latencies = true, .summary_quantiles = "0.5:0.05,0.99:0.001"};
  assert_null(metrics_create_with_gpu(server, &o, gpu, &m));
  answers a = {.lock = PTHREAD_MUTEX_INITIALIZER};
  const float good[4] = {1, -2, 3, -4}, bad[3] = {1, 2, 3};
  for (int i = 0; i < 5; i++) assert_null(send_request(&a, good, 4));
  inferd_error *e = send_request(&a, bad, 3);
  assert_non_null(e);
  inferd_error_delete(e);
  for (int spins = 0; spins < 5000 && a.done < 5; spins++) usleep(1000);
  assert_int_equal(a.done, 5);
  assert_int_equal(a.errors, 0);
  char *text = render(m);
  expect_line(text, "# TYPE nv_inference_request_success counter");
  expect_line(text, "nv_inference_request_success{model=\"relu\",version=\"1\"} 5");
  expect_line(text, "nv_inference_request_failure{model=\"relu\",version=\"1\",reason=\"OTHER\"} 1");
  expect_line(text, "nv_inference_request_failure{model=\"relu\",version=\"1\",reason=\"REJECTED\"} 0");
  expect_line(text, "nv_inference_request_failure{model=\"relu\",version=\"1\",reason=\"BACKEND\"} 0");
  expect_line(text, "nv_inference_count{model=\"relu\",version=\"1\"} 5");
  /* The requests may have been batched together. */
  const char *exec = strstr(text, "\nnv_inference_exec_count{model=\"relu\",version=\"1\"} ");
  assert_non_null(exec);
  long runs = strtol(strchr(exec, '}') + 2, NULL, 10);
  assert_true(runs >= 1 && runs <= 5);
  expect_line(text, "nv_inference_pending_request_count{model=\"relu\",version=\"1\"} 0");
  expect_line(text, "# TYPE nv_inference_request_summary_us summary");
  expect_line(text, "nv_inference_request_summary_us_count{model=\"relu\",version=\"1\"} 5");
  assert_non_null(strstr(text, "nv_inference_queue_summary_us{model=\"relu\",version=\"1\",quantile=\"0.99\"} "));
  assert_non_null(strstr(text, "nv_inference_compute_infer_duration_us{model=\"relu\",version=\"1\"} "));
  expect_line(text, "nv_gpu_utilization{gpu_uuid=\"GPU-fake-0\"} 0.42");
  expect_line(text, "nv_gpu_utilization{gpu_uuid=\"GPU-fake-1\"} 0.97");
  expect_line(text, "nv_gpu_memory_total_bytes{gpu_uuid=\"GPU-fake-1\"} 85899345920");
  expect_line(text, "nv_gpu_power_usage{gpu_uuid=\"GPU-fake-0\"} 250.5");
  expect_line(text, "nv_gpu_power_limit{gpu_uuid=\"GPU-fake-0\"} 700");
  assert_null(strstr(text, "nv_gpu_power_usage{gpu_uuid=\"GPU-fake-1\"}"));
  assert_non_null(strstr(text, "# TYPE nv_energy_consumption counter"));
  assert_non_null(strstr(text, "\nnv_cpu_utilization "));
  assert_non_null(strstr(text, "\nnv_cpu_memory_total_bytes "));
  free(text);
  inferd_metrics_delete(m);

  /* Without counter latencies, GPU or CPU: those families are absent. */
  o = (inferd_metrics_options){.counter_latencies = false};
  assert_null(inferd_metrics_create(server, &o, &m));
  text = render(m);
  assert_null(strstr(text, "_duration_us"));
  assert_null(strstr(text, "nv_gpu_"));
  assert_null(strstr(text, "nv_cpu_"));
  assert_non_null(strstr(text, "nv_inference_request_summary_us_count"));
  free(text);
  inferd_metrics_delete(m);

  o.summary_quantiles = "0.5";
  e = inferd_metrics_create(server, &o, &m);
  assert_non_null(e);
  inferd_error_delete(e);
}

/* One HTTP exchange on a fresh connection; returns the whole answer. */
static char *http_get(int port, const char *request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
  size_t cap = 1 << 16, len = 0;
  char *buf = calloc(1, cap);
  ssize_t n;
  while ((n = read(fd, buf + len, cap - 1 - len)) > 0) len += (size_t)n;
  close(fd);
  return buf;
}

static void test_metrics_endpoint(void **state) {
  (void)state;
  inferd_metrics *m;
  assert_null(inferd_metrics_create(server, &(inferd_metrics_options){.counter_latencies = true}, &m));
  metrics_frontend *f;
  assert_null(metrics_frontend_start(m, &(metrics_frontend_options){.address = "127.0.0.1", .port = 0}, &f));
  int port = metrics_frontend_port(f);
  assert_true(port > 0);
  char *answer = http_get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  assert_non_null(strstr(answer, "HTTP/1.1 200"));
  assert_non_null(strstr(answer, "Content-Type: text/plain; version=0.0.4"));
  assert_non_null(strstr(answer, "nv_inference_request_success{model=\"relu\",version=\"1\"} "));
  free(answer);
  answer = http_get(port, "GET /v2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  assert_non_null(strstr(answer, "HTTP/1.1 404"));
  free(answer);
  answer = http_get(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  assert_non_null(strstr(answer, "HTTP/1.1 405"));
  free(answer);
  /* The port is taken now: a second frontend on it says so. */
  metrics_frontend *g = NULL;
  inferd_error *e = metrics_frontend_start(m, &(metrics_frontend_options){.address = "127.0.0.1", .port = port}, &g);
  assert_non_null(e);
  assert_non_null(strstr(inferd_error_message(e), "cannot listen for metrics"));
  inferd_error_delete(e);
  metrics_frontend_delete(f);
  inferd_metrics_delete(m);
}

int main(void) {
  const struct CMUnitTest unit[] = {
      cmocka_unit_test(test_exposition_format),
      cmocka_unit_test(test_quantile_lists),
      cmocka_unit_test(test_proc_parsers),
      cmocka_unit_test(test_gpu_monitor_over_fake_nvml),
      cmocka_unit_test(test_gpu_monitor_without_library),
  };
  const struct CMUnitTest with_server[] = {
      cmocka_unit_test(test_render_server_counters),
      cmocka_unit_test(test_metrics_endpoint),
  };
  int failed = cmocka_run_group_tests(unit, NULL, NULL);
  return failed + cmocka_run_group_tests(with_server, server_setup, server_teardown);
}
