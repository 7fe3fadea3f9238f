/*
 * What the network frontends (HTTP, gRPC) share around their libevent
 * loops: the listening socket the loop threads accept from, the process
 * settings loops need, and the mailbox through which other threads hand a
 * loop work (answers from server threads) and the order to stop.
 */
#ifndef INFERD_FRONTENDS_FRONTEND_LOOP_H
#define INFERD_FRONTENDS_FRONTEND_LOOP_H

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>

#include "inferd.h"

/* Binds and listens on address:port (port 0: any free one), non-blocking,
 * close-on-exec; *out_port is the port bound. The error names `what` (the
 * protocol), the address and the port. */
inferd_error *frontend_listen(const char *what, const char *address, int port, int *out_fd, int *out_port);

/* Once per process: libevent's locking (so that another thread may activate
 * a loop's wakeup event), and SIGPIPE ignored, because a write to a client
 * that has gone would otherwise kill the process instead of failing with
 * EPIPE. A handler the embedding program installed is left alone. */
void frontend_process_setup(void);

/* A loop's event base. With epoll's changelist, a connection's read event
 * turned off while its request is handled and on again once the answer is
 * queued costs no epoll_ctl: the changes of one pass are merged before the
 * wait. NULL when it cannot be made. */
struct event_base *frontend_loop_base(void);

/* An item handed to a loop; embedded in what is handed over. */
typedef struct frontend_post frontend_post;
struct frontend_post {
  frontend_post *next;
};

typedef struct frontend_mailbox {
  struct event *wake; /* the loop's event that takes the mail */
  pthread_mutex_t lock;
  /* Under lock: */
  frontend_post *head, *tail;
  bool stop_listening, stop;
} frontend_mailbox;

/* wake: an event of the loop (made with event_new(base, -1, 0, cb, arg))
 * whose callback calls frontend_mailbox_take. */
void frontend_mailbox_init(frontend_mailbox *m, struct event *wake);
void frontend_mailbox_destroy(frontend_mailbox *m);
/* From any thread: queues p and wakes the loop. */
void frontend_mailbox_post(frontend_mailbox *m, frontend_post *p);
/* From any thread: asks the loop to stop listening, and with `stop` to stop. */
void frontend_mailbox_signal(frontend_mailbox *m, bool stop);
/* On the loop: everything posted, in order, and the orders given. */
frontend_post *frontend_mailbox_take(frontend_mailbox *m, bool *stop_listening, bool *stop);

#endif
