/* h3probe's request streams: opening them and checking the answer. */
#include "request.h"

#include <stdio.h>

pstream *req_new(probe *p) {
  if (p->nst == MAX_PSTREAMS) {
    hp_fail(p, "probe bug: more than %d streams", MAX_PSTREAMS);
    hp_finish(p, 2);
  }
  pstream *s = &p->st[p->nst++];
  memset(s, 0, sizeof(*s));
  s->sid = -1;
  return s;
}

static int streams_left(probe *p, void *arg) {
  return ngtcp2_conn_get_streams_bidi_left(p->c->qc) > 0;
}

void req_wait_credit(probe *p) {
  hp_await(p, "stream credit", streams_left, NULL, hp_forever());
}

pstream *req_submitted(probe *p, pstream *s, int64_t sid, const char *noun, const char *verb,
                       const char *target) {
  if (sid < 0) {
    hp_fail(p, "cannot submit a %s: %lld", noun, (long long)sid);
    hp_finish(p, 1);
  }
  s->sid = sid;
  hp_vlog(p, "stream %lld: %s %s", (long long)sid, verb, target);
  return s;
}

/* Registers stream sid with the session as a CONNECT stream carrying
 * capsules, so its events reach the callbacks with ps. */
static masq_stream *attach(probe *p, int64_t sid, pstream *ps) {
  masq_stream *s = masq_stream_new(p->c, sid);
  if (!s) {
    hp_fail(p, "out of memory");
    hp_finish(p, 2);
  }
  s->sud = ps;
  s->capsules = 1;
  s->has_body = 1;
  masq_tunnel_init_parser(p->c, s);
  return s;
}

pstream *req_open_raw(probe *p, const nghttp3_nv *nva, size_t nvlen) {
  pstream *ps = req_new(p);
  int64_t sid;
  while (ngtcp2_conn_open_bidi_stream(p->c->qc, &sid, NULL) != 0) req_wait_credit(p);
  masq_stream *s = attach(p, sid, ps);
  nghttp3_data_reader dr = {masq_h3_read_body};
  int rv = nghttp3_conn_submit_request(p->c->h3, sid, nva, nvlen, &dr, s);
  if (rv != 0) {
    hp_fail(p, "nghttp3 refused to submit the request: %s", nghttp3_strerror(rv));
    hp_finish(p, 2);
  }
  ps->sid = sid;
  hp_vlog(p, "stream %lld: raw request with %zu fields", (long long)sid, nvlen);
  return ps;
}

void req_bearer(const probe *p, char *buf, size_t cap) {
  snprintf(buf, cap, "Bearer %s", p->token ? p->token : "");
}

int req_answered(probe *p, void *arg) {
  pstream *s = arg;
  return s->status != 0 || s->closed;
}

int req_closed(probe *p, void *arg) { return ((pstream *)arg)->closed; }

void req_wait_answer(probe *p, pstream *s) {
  hp_await(p, "the response", req_answered, s, hp_forever());
}

const char *req_answer_str(const pstream *s, char *buf, size_t cap) {
  if (s->status) snprintf(buf, cap, "%d", s->status);
  else snprintf(buf, cap, "no response (stream closed, app error 0x%llx)",
                (unsigned long long)s->app_error);
  return buf;
}

int req_expect_tunnel(probe *p, pstream *s, int want_capsule_protocol) {
  char a[96];
  req_wait_answer(p, s);
  if (s->status != 200)
    return hp_fail(p, "expected 200, saw %s%s%s", req_answer_str(s, a, sizeof(a)),
                   s->proxy_status[0] ? ", proxy-status: " : "", s->proxy_status);
  /* RFC 9297 §3.4 / RFC 9298 §3: the 2xx says the capsule protocol is in
   * use. */
  if (want_capsule_protocol && !s->capsule_protocol)
    return hp_fail(p, "200 without capsule-protocol: ?1");
  masq_conn_stream_set_tunnel(p->c, s->sid);
  return 0;
}

int req_expect_refusal(probe *p, pstream *s, int status, const char *ps_has) {
  char a[96];
  req_wait_answer(p, s);
  if (s->status != status)
    return hp_fail(p, "stream %lld: expected %d, saw %s%s%s", (long long)s->sid, status,
                   req_answer_str(s, a, sizeof(a)), s->proxy_status[0] ? ", proxy-status: " : "",
                   s->proxy_status);
  if (ps_has && !strstr(s->proxy_status, ps_has))
    return hp_fail(p, "stream %lld: %d as expected but proxy-status \"%s\" lacks \"%s\"",
                   (long long)s->sid, status, s->proxy_status, ps_has);
  return 0;
}
