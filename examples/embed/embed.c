/*
 * embed: inferd inside another program, through include/inferd.h alone.
 *
 * Loads a model repository in-process, sends one request to Triton's
 * "simple" model (OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 over
 * [1,16] FP32), waits for its answer, prints it, and checks it.
 *
 *   embed <model repository> [model name, default "simple"]
 *
 * Build against an installed inferd with
 *   cc embed.c $(pkg-config --cflags --libs inferd) -o embed
 * (or --static with libinferd.a). Exit status 0 when the answer is right.
 */
#include <inferd.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

enum { N = 16 };

/* The answer, handed from the response callback (which may run on one of
 * the server's threads, or on this one before inferd_server_infer returns)
 * to main. */
typedef struct answer {
  pthread_mutex_t lock;
  pthread_cond_t done;
  inferd_response *response;
} answer;

static void on_response(inferd_response *response, uint32_t flags, void *userp) {
  (void)flags; /* FINAL: this request's one answer */
  answer *a = userp;
  pthread_mutex_lock(&a->lock);
  a->response = response; /* ours now: main deletes it */
  pthread_cond_signal(&a->done);
  pthread_mutex_unlock(&a->lock);
}

static int fail(const char *what, inferd_error *error) {
  fprintf(stderr, "embed: %s: %s\n", what, inferd_error_message(error));
  inferd_error_delete(error);
  return 1;
}

/* Prints the request's two outputs; returns how many values are wrong. */
static int print_outputs(const inferd_response *response, const float *in0, const float *in1) {
  int wrong = 0;
  for (int i = 0; i < inferd_response_output_count(response); i++) {
    const char *name;
    inferd_datatype type;
    const int64_t *shape;
    int rank;
    const void *data;
    size_t bytes;
    inferd_error *error = inferd_response_output(response, i, &name, &type, &shape, &rank, &data, &bytes);
    if (error) return fail("reading an output", error) + N;
    if (type != INFERD_TYPE_FP32 || bytes != N * sizeof(float)) {
      fprintf(stderr, "embed: %s is %s of %zu bytes, not FP32 [1,%d]\n", name, inferd_datatype_name(type), bytes, N);
      wrong += N;
      continue;
    }
    const bool sum = strcmp(name, "OUTPUT0") == 0;
    const float *out = data;
    for (int j = 0; j < N; j++) {
      const float want = sum ? in0[j] + in1[j] : in0[j] - in1[j];
      printf("%s[%d] = %g %s %g = %g%s\n", name, j, in0[j], sum ? "+" : "-", in1[j], out[j],
             out[j] == want ? "" : "  (wrong)");
      wrong += out[j] != want;
    }
  }
  return wrong;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: embed <model repository> [model name, default \"simple\"]\n");
    return 2;
  }
  const char *model = argc == 3 ? argv[2] : "simple";
  int major, minor;
  inferd_api_version(&major, &minor);
  if (major != INFERD_API_VERSION_MAJOR || minor < INFERD_API_VERSION_MINOR) {
    fprintf(stderr, "embed: built for inferd API %d.%d, the library is %d.%d\n", INFERD_API_VERSION_MAJOR,
            INFERD_API_VERSION_MINOR, major, minor);
    return 1;
  }
  printf("inferd %s (API %d.%d)\n", inferd_version(), major, minor);

  inferd_server *server;
  inferd_error *error = inferd_server_create(&(inferd_server_options){.model_repository = argv[1]}, &server);
  if (error) return fail("starting the server", error);
  bool ready = false;
  error = inferd_server_model_ready(server, model, -1, &ready);
  if (error || !ready) {
    if (!error) fprintf(stderr, "embed: model %s is not ready (see the log above)\n", model);
    inferd_server_delete(server);
    return error ? fail("model readiness", error) : 1;
  }

  float in0[N], in1[N];
  for (int j = 0; j < N; j++) {
    in0[j] = (float)j;
    in1[j] = 1.0f;
  }
  const int64_t shape[] = {1, N};
  answer a = {.lock = PTHREAD_MUTEX_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};
  inferd_request *request;
  error = inferd_request_create(server, model, -1, &request);
  if (!error) error = inferd_request_add_input(request, "INPUT0", INFERD_TYPE_FP32, shape, 2, in0, sizeof(in0));
  if (!error) error = inferd_request_add_input(request, "INPUT1", INFERD_TYPE_FP32, shape, 2, in1, sizeof(in1));
  if (!error) {
    /* The inputs are this function's arrays, alive until the answer: no release callback needed. */
    inferd_request_set_callbacks(request, NULL, NULL, on_response, &a);
    error = inferd_server_infer(server, request);
    if (error) inferd_request_delete(request); /* refused: still ours */
  } else if (request) {
    inferd_request_delete(request);
  }
  if (error) {
    inferd_server_delete(server);
    return fail("the request", error);
  }
  pthread_mutex_lock(&a.lock);
  while (!a.response) pthread_cond_wait(&a.done, &a.lock);
  pthread_mutex_unlock(&a.lock);

  int wrong = N;
  const inferd_error *failed = inferd_response_error(a.response);
  if (failed)
    fprintf(stderr, "embed: the inference failed: %s\n", inferd_error_message(failed));
  else
    wrong = print_outputs(a.response, in0, in1);
  inferd_response_delete(a.response);
  inferd_server_delete(server);
  printf("%s\n", wrong ? "wrong answer" : "ok");
  return wrong ? 1 : 0;
}
