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
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

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


/* A log line that could repeat without bound (an accept error for every
 * attempt, a refusal for every connection of a flood) is printed at most
 * once per interval; the lines held back in between are counted and said
 * with the next one printed. For one loop: no locking. */
typedef struct frontend_ratelimit {
  uint64_t interval_ns;
  uint64_t last_ns; /* when the last line was printed; 0: never */
  uint64_t held_back;
} frontend_ratelimit;

/* true: print the line now; *held_back gets the count of lines held back
 * since the last one printed. false: hold this one back (counted). */
bool frontend_ratelimit_allow(frontend_ratelimit *r, uint64_t now_ns, uint64_t *held_back);

/* How long a listener rests after an accept error that is not the client's
 * (descriptors or memory ran out): retrying at once would spin a core on a
 * connection that stays in the backlog. */
enum { FRONTEND_ACCEPT_BACKOFF_MS = 100 };

/* The accepting side of one loop: the listener's error handling (the back
 * off above, logged once a second at most) and the connection limit, whose
 * count `connections` the frontend's loops share. */
typedef struct frontend_acceptor frontend_acceptor;
struct frontend_acceptor {
  frontend_acceptor *next; /* every acceptor of the process (found by listener on an error) */
  const char *what; /* the protocol, for the log */
  struct evconnlistener *listener;
  struct event *resume;
  atomic_int *connections;
  int max_connections; /* 0: no limit */
  frontend_ratelimit error_log, refusal_log;
};

/* Takes over the listener's errors. false when the timer cannot be made. */
bool frontend_acceptor_init(frontend_acceptor *a, const char *what, struct event_base *base,
                            struct evconnlistener *listener, atomic_int *connections, int max_connections);
void frontend_acceptor_destroy(frontend_acceptor *a);
/* A new connection: counted and true, or false when the limit is reached
 * (the caller closes it at once; the refusal is logged, rate-limited). */
bool frontend_acceptor_admit(frontend_acceptor *a);
/* A connection admitted before is gone. */
void frontend_acceptor_release(frontend_acceptor *a);

/* A model load (config_json NULL: the repository's configuration) or
 * unload, run on a detached thread of its own, since loads take seconds and
 * the loop goes on meanwhile: done(arg, error) is called on that thread when
 * it ends (error NULL on success, else owned by done). false when no thread
 * could be started; done is not called then. */
typedef void (*frontend_model_job_done)(void *arg, inferd_error *error);
bool frontend_model_job(inferd_server *server, const char *model, bool load, const char *config_json,
                        frontend_model_job_done done, void *arg);

#endif
