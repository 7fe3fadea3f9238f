/* Listening sockets, process setup and mailboxes of the frontends' loops; see frontend_loop.h. */
#include "frontends/frontend_loop.h"

#include <errno.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/error.h"

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
