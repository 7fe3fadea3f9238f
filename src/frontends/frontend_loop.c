/* Listening sockets, process setup and mailboxes of the frontends' loops; see frontend_loop.h. */
#include "frontends/frontend_loop.h"

#include <errno.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/mem.h"

enum { LISTEN_BACKLOG = 1024 };

inferd_error *frontend_listen(const char *what, const char *address, int port, int *out_fd, int *out_port) {
  char port_text[16];
  snprintf(port_text, sizeof(port_text), "%d", port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
  const int gai = getaddrinfo(address, port_text, &hints, &res);
  if (gai != 0)
    return err_new(INFERD_ERROR_IO, "cannot listen for %s on %s:%d: %s", what, address, port, gai_strerror(gai));
  int last_errno = 0;
  int fd = -1;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_errno = errno;
      continue;
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0) break;
    last_errno = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0)
    return err_new(INFERD_ERROR_IO, "cannot listen for %s on %s:%d: %s", what, address, port, strerror(last_errno));
  evutil_make_socket_nonblocking(fd);
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  *out_port = port;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET) *out_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) *out_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  *out_fd = fd;
  return NULL;
}

static pthread_once_t process_once = PTHREAD_ONCE_INIT;

static void process_setup(void) {
  evthread_use_pthreads();
  struct sigaction old;
  if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
    struct sigaction ignore = {.sa_handler = SIG_IGN};
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, NULL);
  }
}

void frontend_process_setup(void) { pthread_once(&process_once, process_setup); }

void frontend_mailbox_init(frontend_mailbox *m, struct event *wake) {
  *m = (frontend_mailbox){.wake = wake};
  pthread_mutex_init(&m->lock, NULL);
}

void frontend_mailbox_destroy(frontend_mailbox *m) { pthread_mutex_destroy(&m->lock); }

void frontend_mailbox_post(frontend_mailbox *m, frontend_post *p) {
  p->next = NULL;
  pthread_mutex_lock(&m->lock);
  if (m->tail)
    m->tail->next = p;
  else
    m->head = p;
  m->tail = p;
  pthread_mutex_unlock(&m->lock);
  event_active(m->wake, EV_READ, 0);
}

void frontend_mailbox_signal(frontend_mailbox *m, bool stop) {
  pthread_mutex_lock(&m->lock);
  m->stop_listening = true;
  if (stop) m->stop = true;
  pthread_mutex_unlock(&m->lock);
  event_active(m->wake, EV_READ, 0);
}

frontend_post *frontend_mailbox_take(frontend_mailbox *m, bool *stop_listening, bool *stop) {
  pthread_mutex_lock(&m->lock);
  frontend_post *list = m->head;
  m->head = m->tail = NULL;
  *stop_listening = m->stop_listening;
  *stop = m->stop;
  pthread_mutex_unlock(&m->lock);
  return list;
}

struct event_base *frontend_loop_base(void) {
  struct event_config *cfg = event_config_new();
  if (!cfg) return NULL;
  event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  struct event_base *base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  return base;
}

bool frontend_ratelimit_allow(frontend_ratelimit *r, uint64_t now_ns, uint64_t *held_back) {
  if (r->last_ns && now_ns - r->last_ns < r->interval_ns) {
    r->held_back++;
    return false;
  }
  *held_back = r->held_back;
  r->held_back = 0;
  r->last_ns = now_ns ? now_ns : 1;
  return true;
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  frontend_acceptor *a = arg;
  if (a->listener) evconnlistener_enable(a->listener);
}

/* The error callback gets the listener's accept argument (evhttp's own
 * object for HTTP), so acceptors are found by listener; only on errors. */
static pthread_mutex_t acceptors_lock = PTHREAD_MUTEX_INITIALIZER;
static frontend_acceptor *acceptors;

static frontend_acceptor *acceptor_of(const struct evconnlistener *listener) {
  pthread_mutex_lock(&acceptors_lock);
  frontend_acceptor *a = acceptors;
  while (a && a->listener != listener) a = a->next;
  pthread_mutex_unlock(&acceptors_lock);
  return a;
}

/* libevent calls this for every accept error it does not retry itself (not
 * EAGAIN, EINTR or ECONNABORTED); without it, it logs and goes on at once. */
static void on_accept_error(struct evconnlistener *listener, void *arg) {
  (void)arg;
  frontend_acceptor *a = acceptor_of(listener);
  if (!a) return;
  const int err = EVUTIL_SOCKET_ERROR();
  evconnlistener_disable(listener);
  const struct timeval backoff = {0, FRONTEND_ACCEPT_BACKOFF_MS * 1000};
  evtimer_add(a->resume, &backoff);
  uint64_t held_back;
  if (frontend_ratelimit_allow(&a->error_log, clock_now_ns(), &held_back))
    log_warn("%s: cannot accept connections: %s; pausing %d ms (%llu more such errors since the last report)",
             a->what, evutil_socket_error_to_string(err), FRONTEND_ACCEPT_BACKOFF_MS, (unsigned long long)held_back);
}

bool frontend_acceptor_init(frontend_acceptor *a, const char *what, struct event_base *base,
                            struct evconnlistener *listener, atomic_int *connections, int max_connections) {
  *a = (frontend_acceptor){.what = what,
                           .listener = listener,
                           .connections = connections,
                           .max_connections = max_connections,
                           .error_log = {.interval_ns = 1000000000ull},
                           .refusal_log = {.interval_ns = 1000000000ull}};
  a->resume = evtimer_new(base, on_accept_resume, a);
  if (!a->resume) return false;
  pthread_mutex_lock(&acceptors_lock);
  a->next = acceptors;
  acceptors = a;
  pthread_mutex_unlock(&acceptors_lock);
  evconnlistener_set_error_cb(listener, on_accept_error);
  return true;
}

void frontend_acceptor_destroy(frontend_acceptor *a) {
  pthread_mutex_lock(&acceptors_lock);
  for (frontend_acceptor **link = &acceptors; *link; link = &(*link)->next)
    if (*link == a) {
      *link = a->next;
      break;
    }
  pthread_mutex_unlock(&acceptors_lock);
  if (a->resume) event_free(a->resume);
  a->resume = NULL;
  a->listener = NULL;
}

bool frontend_acceptor_admit(frontend_acceptor *a) {
  const int now = atomic_fetch_add(a->connections, 1) + 1;
  if (a->max_connections <= 0 || now <= a->max_connections) return true;
  atomic_fetch_sub(a->connections, 1);
  uint64_t held_back;
  if (frontend_ratelimit_allow(&a->refusal_log, clock_now_ns(), &held_back))
    log_warn("%s: connection refused: %d connections open (--max-connections); %llu more refused since the last "
             "report",
             a->what, a->max_connections, (unsigned long long)held_back);
  return false;
}

void frontend_acceptor_release(frontend_acceptor *a) { atomic_fetch_sub(a->connections, 1); }

typedef struct model_job {
  inferd_server *server;
  const char *model, *config_json;
  bool load;
  frontend_model_job_done done;
  void *arg;
} model_job;

static void *model_job_main(void *p) {
  model_job job = *(model_job *)p;
  free(p);
  inferd_error *err = job.load ? inferd_server_load_model(job.server, job.model, job.config_json)
                               : inferd_server_unload_model(job.server, job.model);
  job.done(job.arg, err);
  return NULL;
}

bool frontend_model_job(inferd_server *server, const char *model, bool load, const char *config_json,
                        frontend_model_job_done done, void *arg) {
  model_job *job = mem_alloc(sizeof(*job));
  *job = (model_job){.server = server, .model = model, .config_json = config_json, .load = load, .done = done,
                     .arg = arg};
  pthread_t tid;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  const int rc = pthread_create(&tid, &attr, model_job_main, job);
  pthread_attr_destroy(&attr);
  if (rc != 0) free(job);
  return rc == 0;
}
