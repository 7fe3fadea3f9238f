/* inferd serve's security flags; see serve_security.h. */
#include "cli/serve_security.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

void serve_security_init(serve_security *s) {
  *s = (serve_security){
      .http_tls = {.cert_flag = "--http-server-cert", .key_flag = "--http-server-key", .root_flag = "--http-root-cert"},
      .metrics_tls = {.cert_flag = "--metrics-server-cert", .key_flag = "--metrics-server-key"},
  };
}

static int restricted(frontend_restrictions *r, const char *name, const char *value) {
  char flag[64];
  snprintf(flag, sizeof(flag), "--%s", name);
  inferd_error *e = frontend_restrictions_add(r, flag, value);
  if (!e) return 1;
  fprintf(stderr, "inferd serve: %s\n", inferd_error_message(e));
  inferd_error_delete(e);
  return -1;
}

int serve_security_option(serve_security *s, const char *name, const char *value) {
  bool ok = true;
  if (!strcmp(name, "http-restricted-api")) return restricted(&s->http_restricted, name, value);
  if (!strcmp(name, "grpc-restricted-protocol")) return restricted(&s->grpc_restricted, name, value);
  if (!strcmp(name, "http-use-ssl")) ok = cli_parse_bool(name, value, &s->http_tls.use_ssl);
  else if (!strcmp(name, "http-use-ssl-mutual")) ok = cli_parse_bool(name, value, &s->http_tls.use_ssl_mutual);
  else if (!strcmp(name, "http-server-cert")) s->http_tls.server_cert = value;
  else if (!strcmp(name, "http-server-key")) s->http_tls.server_key = value;
  else if (!strcmp(name, "http-root-cert")) s->http_tls.root_cert = value;
  else if (!strcmp(name, "metrics-use-ssl")) ok = cli_parse_bool(name, value, &s->metrics_tls.use_ssl);
  else if (!strcmp(name, "metrics-server-cert")) s->metrics_tls.server_cert = value;
  else if (!strcmp(name, "metrics-server-key")) s->metrics_tls.server_key = value;
  else return 0;
  return ok ? 1 : -1;
}

void serve_security_finish(serve_security *s) {
  /* As --grpc-use-ssl-mutual does, --http-use-ssl-mutual implies TLS. */
  if (s->http_tls.use_ssl_mutual) s->http_tls.use_ssl = true;
  /* The metrics endpoint uses the HTTP certificate and key unless it has
   * its own (both, or the one given with HTTP's other); errors then name
   * the HTTP flag the file came from. */
  if (!s->metrics_tls.server_cert) {
    s->metrics_tls.server_cert = s->http_tls.server_cert;
    s->metrics_tls.cert_flag = "--http-server-cert (--metrics-server-cert not given)";
  }
  if (!s->metrics_tls.server_key) {
    s->metrics_tls.server_key = s->http_tls.server_key;
    s->metrics_tls.key_flag = "--http-server-key (--metrics-server-key not given)";
  }
}

void serve_security_free(serve_security *s) {
  frontend_restrictions_free(&s->http_restricted);
  frontend_restrictions_free(&s->grpc_restricted);
}
