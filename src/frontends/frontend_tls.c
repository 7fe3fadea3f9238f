/* TLS contexts and bufferevents for the frontends; see frontend_tls.h. */
#include "frontends/frontend_tls.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"

static inferd_error *check_pem(const char *what, const char *flag, const char *path) {
  if (!path || !*path) return err_new(INFERD_ERROR_INVALID_ARG, "%s TLS needs %s (a PEM file)", what, flag);
  FILE *fp = fopen(path, "rb");
  if (!fp) return err_new(INFERD_ERROR_IO, "%s TLS: cannot open %s '%s': %s", what, flag, path, strerror(errno));
  fclose(fp);
  return NULL;
}

/* OpenSSL's reason for the last failure, for the message; its queue is
 * cleared, so that it cannot leak into a later connection's diagnosis. */
static const char *openssl_reason(char *buf, size_t size) {
  const unsigned long code = ERR_peek_last_error();
  const char *reason = code ? ERR_reason_error_string(code) : NULL;
  snprintf(buf, size, "%s", reason ? reason : "unknown OpenSSL error");
  ERR_clear_error();
  return buf;
}

inferd_error *frontend_tls_context(const char *what, const frontend_tls_options *o, SSL_CTX **out) {
  *out = NULL;
  if (!o->use_ssl) return NULL;
  ERR_TRY(check_pem(what, o->cert_flag, o->server_cert));
  ERR_TRY(check_pem(what, o->key_flag, o->server_key));
  if (o->use_ssl_mutual) ERR_TRY(check_pem(what, o->root_flag, o->root_cert));
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return err_new(INFERD_ERROR_INTERNAL, "%s TLS: cannot create an OpenSSL context", what);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  inferd_error *err = NULL;
  char reason[160];
  if (SSL_CTX_use_certificate_chain_file(ctx, o->server_cert) != 1)
    err = err_new(INFERD_ERROR_INVALID_ARG, "%s TLS: %s '%s' is not a usable PEM certificate: %s", what, o->cert_flag,
                  o->server_cert, openssl_reason(reason, sizeof(reason)));
  else if (SSL_CTX_use_PrivateKey_file(ctx, o->server_key, SSL_FILETYPE_PEM) != 1 &&
           ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH)
    err = err_new(INFERD_ERROR_INVALID_ARG, "%s TLS: %s '%s' is not a usable PEM private key: %s", what, o->key_flag,
                  o->server_key, openssl_reason(reason, sizeof(reason)));
  else if (SSL_CTX_check_private_key(ctx) != 1)
    err = err_new(INFERD_ERROR_INVALID_ARG, "%s TLS: the key of %s does not match the certificate of %s", what,
                  o->key_flag, o->cert_flag);
  if (!err && o->use_ssl_mutual) {
    if (SSL_CTX_load_verify_locations(ctx, o->root_cert, NULL) != 1)
      err = err_new(INFERD_ERROR_INVALID_ARG, "%s TLS: %s '%s' is not a usable PEM CA certificate: %s", what,
                    o->root_flag, o->root_cert, openssl_reason(reason, sizeof(reason)));
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  }
  ERR_clear_error();
  if (err) {
    SSL_CTX_free(ctx);
    return err;
  }
  *out = ctx;
  return NULL;
}

struct bufferevent *frontend_tls_bufferevent(struct event_base *base, SSL_CTX *ctx, evutil_socket_t fd) {
  SSL *ssl = SSL_new(ctx);
  if (!ssl) return NULL;
  /* libevent may or may not have freed the SSL object when this fails
   * (it depends on how far it got), so a failure leaks it rather than
   * risk freeing it twice; it happens only when memory is exhausted. */
  return bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

struct bufferevent *frontend_tls_evhttp_bufferevent(struct event_base *base, void *ctx) {
  struct bufferevent *bev = frontend_tls_bufferevent(base, ctx, -1);
  if (bev) return bev;
  bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  /* A frozen end makes every read fail, which evhttp answers by closing. */
  if (bev) evbuffer_freeze(bufferevent_get_input(bev), 0);
  return bev;
}
