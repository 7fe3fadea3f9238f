/*
 * TLS for the network frontends (gRPC, HTTP, metrics): one OpenSSL server
 * context per endpoint, made once at start from PEM files, and a
 * bufferevent that speaks TLS on an accepted socket. Every connection gets
 * its own SSL object from the context; the context itself is only read
 * after start, so the endpoint's loop threads share it.
 */
#ifndef INFERD_FRONTENDS_FRONTEND_TLS_H
#define INFERD_FRONTENDS_FRONTEND_TLS_H

#include <event2/event.h>
#include <stdbool.h>

#include "inferd.h"

struct bufferevent;
typedef struct ssl_ctx_st SSL_CTX;

typedef struct frontend_tls_options {
  bool use_ssl;
  bool use_ssl_mutual;     /* require a client certificate chaining to root_cert */
  const char *server_cert; /* PEM certificate (chain) */
  const char *server_key;  /* PEM private key */
  const char *root_cert;   /* PEM CA of the clients, with use_ssl_mutual */
  /* The flags the files came from, named in errors (e.g. "--http-server-cert"). */
  const char *cert_flag, *key_flag, *root_flag;
} frontend_tls_options;

/* The context for `o`, or *out = NULL when o->use_ssl is false. `what`
 * names the endpoint in errors ("HTTP", "gRPC", "metrics"); an error names
 * the flag of the file that is missing, unreadable or unusable. At least
 * TLS 1.2, no compression, no renegotiation. Free with SSL_CTX_free. */
inferd_error *frontend_tls_context(const char *what, const frontend_tls_options *o, SSL_CTX **out);

/* A server-side TLS bufferevent on `fd` (-1: evhttp sets it later), closing
 * the socket when freed; NULL when it cannot be made. */
struct bufferevent *frontend_tls_bufferevent(struct event_base *base, SSL_CTX *ctx, evutil_socket_t fd);

/* evhttp's bufferevent callback (evhttp_set_bevcb) for a TLS endpoint; arg
 * is the SSL_CTX. evhttp makes a plain-text bufferevent itself when the
 * callback returns NULL, so when the TLS one cannot be made this returns
 * a socket bufferevent that takes no input instead: the connection fails
 * closed (it is dropped at its first byte) rather than open. */
struct bufferevent *frontend_tls_evhttp_bufferevent(struct event_base *base, void *ctx);

#endif
