/* Admission checks every proxy handler shares: the bearer token and the
 * shape of a refusal (status, Proxy-Status, the fields RFC 9110 asks
 * for with it). */
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "io/log.h"
#include "proto/request.h"
#include "server/internal.h"

void masq_srv_refuse(sconn *sc, int64_t sid, int status, const char *error, const char *details) {
  char ps[512];
  const char *ps_value = NULL;
  if (error && masq_proxy_status_format(ps, sizeof(ps), error, details) > 0) ps_value = ps;
  sc->s->stats.tunnels_refused++;
  /* RFC 9110 §15.5.8: a 407 carries a challenge; §15.5.6: a 405 MUST
   * list the allowed methods. */
  const char *xn = NULL, *xv = NULL;
  if (status == 407) {
    xn = "proxy-authenticate";
    xv = "Bearer realm=\"masq\"";
  } else if (status == 405) {
    xn = "allow";
    xv = "CONNECT";
  }
  masq_conn_submit_response(sc->c, sid, status, ps_value, xn, xv, NULL);
  masq_srv_mark_dirty(sc);
  masq_log_rl(MASQ_LOG_INFO, "refused a request on stream %lld: %d %s%s%s", (long long)sid,
              status, error ? error : "", details ? ": " : "", details ? details : "");
}

int masq_srv_token_ok(const srv *s, const masq_reqhdrs *h) {
  if (s->o->no_auth) return 1;
  size_t len;
  const char *tok = masq_reqhdrs_bearer(h, &len);
  if (!tok) return 0;
  int ok = 0;
  /* Compare against every token, without stopping at a match, so the
   * time taken does not tell which one (or whether one) matched. */
  for (size_t i = 0; i < s->o->ntokens; i++)
    ok |= masq_ct_equal(tok, len, s->o->tokens[i], strlen(s->o->tokens[i]));
  return ok;
}


void masq_srv_refuse_dns(sconn *sc, int64_t sid, int status) {
  /* RFC 9209 §2.3.2 dns_error; a timeout has its own type (§2.3.1). */
  int timeout = status == EAI_AGAIN;
  masq_srv_refuse(sc, sid, timeout ? 504 : 502, timeout ? "dns_timeout" : "dns_error",
                  status ? gai_strerror(status) : "no addresses");
}
