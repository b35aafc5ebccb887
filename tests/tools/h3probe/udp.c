/* h3probe's CONNECT-UDP cases (RFC 9298, with RFC 9297's HTTP Datagrams
 * and capsules): tunnels that must work, and requests, capsules and
 * datagrams the server must refuse or survive. */
#include <stdio.h>
#include <string.h>

#include "cases.h"
#include "proto/capsule.h"
#include "proto/h3dgram.h"
#include "request.h"

#define QUIET_NS (300 * NS_PER_MS) /* how long "nothing more arrives" is watched */
#define MANY_TUNNELS 100

/* ---- requests ------------------------------------------------------------ */

/* Builds :path for host/port with the default template (RFC 9298 §2),
 * percent-encoding the values as a client must. */
static void target_path(probe *p, const char *host, const char *port, char *path, size_t cap) {
  char authority[MASQ_MAX_HOST + 16];
  if (masq_proxy_url_target(&p->url, MASQ_DEFAULT_UDP_TEMPLATE, host, port, authority,
                            sizeof(authority), path, cap) != 0) {
    hp_fail(p, "cannot expand the URI template for %s:%s", host, port);
    hp_finish(p, 2);
  }
}

/* Opens a CONNECT-UDP request the way masq's own client does. */
static pstream *open_connect(probe *p, const char *path, const char *token) {
  pstream *s = req_new(p);
  int64_t sid;
  while ((sid = masq_conn_submit_connect(p->c, p->authority, path, MASQ_PROTO_CONNECT_UDP, token,
                                         s)) == MASQ_SESS_ERR_BLOCKED)
    req_wait_credit(p);
  return req_submitted(p, s, sid, "request", "CONNECT", path);
}

static void default_path(probe *p, char *path, size_t cap) {
  target_path(p, p->thost, p->tport, path, cap);
}

/* A CONNECT-UDP request to --target with this token. */
static pstream *connect_target(probe *p, const char *token) {
  char path[1024];
  default_path(p, path, sizeof(path));
  return open_connect(p, path, token);
}

/* A tunnel to --target, or NULL (hp_fail() has said why). */
static pstream *open_tunnel(probe *p) {
  pstream *s = connect_target(p, p->token);
  return req_expect_tunnel(p, s, 1) == 0 ? s : NULL;
}

/* ---- datagrams ---------------------------------------------------------- */

static int got_match(probe *p, void *arg) { return ((pstream *)arg)->matched > 0; }

/* Sends payload on tunnel s and waits for the echo server to send it
 * back, resending a few times (datagrams are unreliable). */
static int echo(probe *p, pstream *s, const uint8_t *d, size_t n) {
  memcpy(s->expect, d, n);
  s->expectlen = n;
  s->matched = 0;
  for (int i = 0; i < ECHO_TRIES; i++) {
    int rv = masq_conn_send_datagram(p->c, s->sid, d, n);
    if (rv != 0) return hp_fail(p, "stream %lld: cannot send a %zu-byte datagram: %d",
                                (long long)s->sid, n, rv);
    rv = hp_await(p, "an echoed datagram", got_match, s, hp_now_ns() + ECHO_RETRY_NS);
    if (rv == 1) return 0;
    if (s->closed)
      return hp_fail(p, "stream %lld closed (app error 0x%llx) before the echo came back",
                     (long long)s->sid, (unsigned long long)s->app_error);
  }
  return hp_fail(p, "stream %lld: %zu-byte datagram not echoed after %d tries (%u other datagrams)",
                 (long long)s->sid, n, ECHO_TRIES, s->mismatched);
}

static int echo_str(probe *p, pstream *s, const char *text) {
  return echo(p, s, (const uint8_t *)text, strlen(text));
}

/* Puts one QUIC DATAGRAM frame with exactly this payload on the wire,
 * bypassing the session's framing (no Quarter Stream ID is added). */
static int send_raw_quic_datagram(probe *p, const uint8_t *d, size_t n) {
  uint8_t buf[MASQ_OUTER_UDP_PAYLOAD];
  for (int i = 0; i < 50; i++) {
    /* Flush what the session has pending first, so ordering is sane. */
    masq_conn_write(p->c, hp_now_ns());
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    int accepted = 0;
    /* An empty payload goes as zero vectors: ngtcp2 asserts that no
     * vector is empty. */
    ngtcp2_vec v = {(uint8_t *)d, n};
    ngtcp2_ssize w = ngtcp2_conn_writev_datagram(p->c->qc, &ps.path, &pi, buf, sizeof(buf),
                                                 &accepted, 0, 0, &v, n ? 1 : 0, hp_now_ns());
    if (w < 0) return hp_fail(p, "ngtcp2 refused the datagram: %s", ngtcp2_strerror((int)w));
    if (w > 0) {
      masq_udp_send(p->fd, buf, (size_t)w, (size_t)w, NULL);
      ngtcp2_conn_update_pkt_tx_time(p->c->qc, hp_now_ns());
    }
    if (accepted) return 0;
    /* Congestion-limited: let acknowledgements arrive and try again. */
    hp_await(p, "congestion window", NULL, NULL, hp_now_ns() + 20 * NS_PER_MS);
  }
  return hp_fail(p, "could not put a raw datagram on the wire");
}

/* ---- cases -------------------------------------------------------------- */

/* A working tunnel to --target, echoing one datagram. */
static int tunnel_works(probe *p, const char *payload) {
  pstream *s = open_tunnel(p);
  return s ? echo_str(p, s, payload) : 1;
}

static int case_ok(probe *p) {
  if (tunnel_works(p, "h3probe ok") != 0) return 1;
  return hp_pass(p, "200 with capsule-protocol, datagram echoed");
}

static int case_no_token(probe *p) {
  pstream *s = connect_target(p, NULL);
  if (req_expect_refusal(p, s, 407, "error=http_request_denied") != 0) return 1;
  return hp_pass(p, "407, proxy-status: %s", s->proxy_status);
}

static int case_wrong_token(probe *p) {
  char tok[300];
  snprintf(tok, sizeof(tok), "%sx", p->token ? p->token : "none");
  pstream *s = connect_target(p, tok);
  if (req_expect_refusal(p, s, 407, "error=http_request_denied") != 0) return 1;
  return hp_pass(p, "407, proxy-status: %s", s->proxy_status);
}

enum {
  CUSTOM_PATH = 1,            /* :path, for --target */
  CUSTOM_CAPSULE_PROTOCOL = 2 /* capsule-protocol: ?1 */
};

/* An extended CONNECT built field by field: the usual pseudo-headers
 * (:path only with CUSTOM_PATH), capsule-protocol with
 * CUSTOM_CAPSULE_PROTOCOL, then the token as a Bearer credential in the
 * field auth_field. */
static pstream *open_custom(probe *p, const char *protocol, unsigned flags,
                            const char *auth_field) {
  char path[1024], auth[300];
  if (flags & CUSTOM_PATH) default_path(p, path, sizeof(path));
  req_bearer(p, auth, sizeof(auth));
  nghttp3_nv nva[7] = {NV(":method", "CONNECT"), NV(":protocol", protocol),
                       NV(":scheme", "https"), NV(":authority", p->authority)};
  size_t n = 4;
  if (flags & CUSTOM_PATH) nva[n++] = (nghttp3_nv)NV(":path", path);
  if (flags & CUSTOM_CAPSULE_PROTOCOL) nva[n++] = (nghttp3_nv)NV("capsule-protocol", "?1");
  nva[n++] = (nghttp3_nv)NV(auth_field, auth);
  return req_open_raw(p, nva, n);
}

static int case_auth_header(probe *p) {
  pstream *s = open_custom(p, MASQ_PROTO_CONNECT_UDP, CUSTOM_PATH | CUSTOM_CAPSULE_PROTOCOL,
                           "authorization");
  if (req_expect_tunnel(p, s, 1) != 0) return 1;
  if (echo_str(p, s, "h3probe auth-header") != 0) return 1;
  return hp_pass(p, "token in Authorization accepted: 200, datagram echoed");
}

static int case_wrong_protocol(probe *p) {
  pstream *s =
      open_custom(p, "connect-foo", CUSTOM_PATH | CUSTOM_CAPSULE_PROTOCOL, "proxy-authorization");
  if (req_expect_refusal(p, s, 501, NULL) != 0) return 1;
  return hp_pass(p, ":protocol connect-foo: 501");
}

/* A GET (no CONNECT) on the template's path: RFC 9110 §15.5.6's 405.
 * The request ends with its headers, so nghttp3 sends FIN at once. */
static int case_wrong_method(probe *p) {
  char path[1024], auth[300];
  default_path(p, path, sizeof(path));
  req_bearer(p, auth, sizeof(auth));
  nghttp3_nv nva[] = {NV(":method", "GET"), NV(":scheme", "https"),
                      NV(":authority", p->authority), NV(":path", path),
                      NV("proxy-authorization", auth)};
  pstream *s = req_open_raw(p, nva, sizeof(nva) / sizeof(nva[0]));
  masq_stream_write(p->c, masq_stream_get(p->c, s->sid), NULL, 0, 1);
  if (req_expect_refusal(p, s, 405, NULL) != 0) return 1;
  return hp_pass(p, "GET on the CONNECT-UDP path: 405");
}

static int case_no_capsule_protocol(probe *p) {
  pstream *s = open_custom(p, MASQ_PROTO_CONNECT_UDP, CUSTOM_PATH, "proxy-authorization");
  /* RFC 9298 §3: the client SHOULD send it; a server may still accept. */
  if (req_expect_tunnel(p, s, 0) != 0) return 1;
  if (echo_str(p, s, "h3probe no-capsule-protocol") != 0) return 1;
  return hp_pass(p, "200 without capsule-protocol in the request, datagram echoed");
}

/* Opens one request per path at once and expects `status` on each. */
static int expect_all(probe *p, const char *const *paths, size_t n, int status) {
  pstream *s[8];
  for (size_t i = 0; i < n && i < 8; i++) s[i] = open_connect(p, paths[i], p->token);
  for (size_t i = 0; i < n && i < 8; i++) {
    if (req_expect_refusal(p, s[i], status, NULL) != 0) {
      char m[sizeof(p->msg)];
      snprintf(m, sizeof(m), "%.500s (path %.200s)", p->msg, paths[i]);
      return hp_fail(p, "%s", m);
    }
  }
  return 0;
}

static int case_bad_port(probe *p) {
  char a[1024], b[1024], c[1024];
  target_path(p, p->thost, "0", a, sizeof(a));
  target_path(p, p->thost, "70000", b, sizeof(b));
  target_path(p, p->thost, "abc", c, sizeof(c));
  const char *paths[] = {a, b, c};
  if (expect_all(p, paths, 3, 400) != 0) return 1;
  return hp_pass(p, "target_port 0, 70000, abc: 400 each");
}

static int case_bad_host(probe *p) {
  char a[1024], b[1024], c[1024];
  target_path(p, "bad host!", p->tport, a, sizeof(a)); /* sent as bad%20host%21 */
  target_path(p, "", p->tport, b, sizeof(b));
  target_path(p, "bad..host", p->tport, c, sizeof(c));
  const char *paths[] = {a, b, c};
  if (expect_all(p, paths, 3, 400) != 0) return 1;
  return hp_pass(p, "target_host \"bad host!\", empty, \"bad..host\": 400 each");
}

static int case_wrong_path(probe *p) {
  const char *paths[] = {"/not/masque/udp/192.0.2.2/7/", "/.well-known/masque/udp/192.0.2.2/"};
  if (expect_all(p, paths, 2, 404) != 0) return 1;
  return hp_pass(p, "paths outside the template: 404");
}

static int case_missing_pseudo(probe *p) {
  pstream *s = open_custom(p, MASQ_PROTO_CONNECT_UDP, CUSTOM_CAPSULE_PROTOCOL,
                           "proxy-authorization");
  char a[96];
  req_wait_answer(p, s);
  const char *seen;
  if (s->status == 400) seen = "400 response";
  else if (!s->status && s->app_error == MASQ_H3_MESSAGE_ERROR)
    seen = "stream reset with H3_MESSAGE_ERROR";
  else
    return hp_fail(p, "expected 400 or a reset with H3_MESSAGE_ERROR (0x10e), saw %s",
                   req_answer_str(s, a, sizeof(a)));
  /* A malformed request is a stream error, not a connection error
   * (RFC 9114 §4.1.2): the connection must still carry a tunnel. */
  if (tunnel_works(p, "h3probe after missing-pseudo") != 0) return 1;
  return hp_pass(p, "no :path: %s; connection still usable", seen);
}

static int case_denied_target(probe *p) {
  pstream *s = connect_target(p, p->token);
  if (req_expect_refusal(p, s, 403, "destination_ip_prohibited") != 0) return 1;
  return hp_pass(p, "%s: 403, proxy-status: %s", p->target, s->proxy_status);
}

/* Writes raw bytes onto an open tunnel's request stream. */
static int stream_bytes(probe *p, pstream *ps, const uint8_t *d, size_t n, int fin) {
  masq_stream *s = masq_stream_get(p->c, ps->sid);
  if (!s) return hp_fail(p, "stream %lld vanished", (long long)ps->sid);
  int rv = masq_stream_write(p->c, s, d, n, fin);
  if (rv != 0) return hp_fail(p, "cannot write to stream %lld: %d", (long long)ps->sid, rv);
  return 0;
}

static int case_malformed_capsule(probe *p) {
  pstream *s = open_tunnel(p);
  if (!s) return 1;
  /* A DATAGRAM capsule announcing 100 bytes with 3 present, then FIN:
   * RFC 9297 §3.3 makes that a malformed message, answered with
   * H3_MESSAGE_ERROR on the stream (RFC 9114 §4.1.2). */
  const uint8_t truncated[] = {0x00, 0x40, 0x64, 0x00, 'h', 'i'};
  if (stream_bytes(p, s, truncated, sizeof(truncated), 1) != 0) return 1;
  hp_await(p, "the stream reset", req_closed, s, hp_forever());
  if (s->app_error != MASQ_H3_MESSAGE_ERROR)
    return hp_fail(p, "expected the stream reset with H3_MESSAGE_ERROR (0x10e), saw it closed with "
                   "0x%llx",
                   (unsigned long long)s->app_error);
  /* Only the stream was at fault: the connection must go on. */
  if (tunnel_works(p, "h3probe after malformed-capsule") != 0) return 1;
  return hp_pass(p, "truncated capsule: stream reset with H3_MESSAGE_ERROR; new tunnel echoes");
}

static size_t put_capsule(uint8_t *dst, uint64_t type, const uint8_t *d, size_t n) {
  size_t h = masq_capsule_header_encode(dst, type, n);
  memcpy(dst + h, d, n);
  return h + n;
}

static int case_unknown_capsule(probe *p) {
  pstream *s = open_tunnel(p);
  if (!s) return 1;
  /* RFC 9297 §3.2: unknown capsule types are skipped; then a DATAGRAM
   * capsule (Context ID 0 + payload) must be delivered like a QUIC
   * DATAGRAM. */
  uint8_t buf[128];
  size_t n = 0;
  const uint8_t ten[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, two[2] = {0xca, 0xfe};
  const uint8_t dgram[] = {0x00, 'h', 'e', 'l', 'l', 'o'};
  n += put_capsule(buf + n, 0x2a, ten, sizeof(ten));
  n += put_capsule(buf + n, 0x17cafe, two, sizeof(two));
  n += put_capsule(buf + n, MASQ_CAPSULE_DATAGRAM, dgram, sizeof(dgram));
  memcpy(s->expect, "hello", 5);
  s->expectlen = 5;
  if (stream_bytes(p, s, buf, n, 0) != 0) return 1;
  int rv = hp_await(p, "the echo of the capsule payload", got_match, s,
                    hp_now_ns() + ECHO_TRIES * ECHO_RETRY_NS);
  if (rv != 1)
    return hp_fail(p, "DATAGRAM capsule after unknown capsules not echoed (stream %s)",
                   s->closed ? "closed" : "open");
  return hp_pass(p, "unknown capsules 0x2a and 0x17cafe skipped, DATAGRAM capsule echoed");
}

/* One HTTP Datagram for stream sid: Quarter Stream ID, Context ID,
 * payload. */
static size_t h3_datagram(uint8_t *dst, int64_t sid, uint64_t ctx, const char *text) {
  size_t off = masq_h3dgram_prefix_encode(dst, sid, ctx);
  memcpy(dst + off, text, strlen(text));
  return off + strlen(text);
}

static int case_unknown_context(probe *p) {
  pstream *s = open_tunnel(p);
  if (!s) return 1;
  /* RFC 9298 §4: a datagram with an unknown Context ID is dropped; the
   * context-0 one right behind it is delivered. */
  uint8_t d[64];
  size_t n = h3_datagram(d, s->sid, 2, "context two");
  if (send_raw_quic_datagram(p, d, n) != 0) return 1;
  if (echo_str(p, s, "context zero") != 0) return 1;
  hp_await(p, "stray datagrams", NULL, NULL, hp_now_ns() + QUIET_NS);
  if (s->mismatched)
    return hp_fail(p, "the context-2 datagram was not dropped: %u unexpected datagram(s), e.g. "
                   "\"%.*s\"",
                   s->mismatched, (int)s->oddlen, (const char *)s->odd);
  if (echo_str(p, s, "context zero again") != 0) return 1;
  return hp_pass(p, "context 2 dropped, context 0 echoed, tunnel still works");
}

static int case_bad_datagram(probe *p) {
  /* RFC 9297 §2.1: a datagram without a Quarter Stream ID is a
   * connection error H3_DATAGRAM_ERROR. */
  if (send_raw_quic_datagram(p, NULL, 0) != 0) return 1;
  int rv = hp_pump_for(p, "the connection close", NULL, NULL, hp_now_ns() + 3000 * NS_PER_MS);
  if (rv != -1)
    return hp_fail(p, "expected the connection closed with H3_DATAGRAM_ERROR, still open");
  const ngtcp2_ccerr *e = ngtcp2_conn_get_ccerr(p->c->qc);
  if (e->type != NGTCP2_CCERR_TYPE_APPLICATION || e->error_code != MASQ_H3_DATAGRAM_ERROR)
    return hp_fail(p, "expected CONNECTION_CLOSE with application error H3_DATAGRAM_ERROR (0x33), "
                   "saw %s error 0x%llx (%s)",
                   e->type == NGTCP2_CCERR_TYPE_APPLICATION ? "application" : "transport",
                   (unsigned long long)e->error_code, masq_conn_error_str(p->c));
  return hp_pass(p, "empty datagram: connection closed with H3_DATAGRAM_ERROR (0x33)");
}

static int case_oversize(probe *p) {
  pstream *s = open_tunnel(p);
  if (!s) return 1;
  size_t max = masq_conn_max_datagram(p->c, s->sid);
  if (max < 1200) return hp_fail(p, "max datagram %zu is under 1200 bytes", max);
  static uint8_t big[MASQ_OUTER_UDP_PAYLOAD + 1];
  for (size_t i = 0; i < sizeof(big); i++) big[i] = (uint8_t)(i * 7 + 3);
  /* RFC 9298 §5: never truncate; an unsendable payload is refused and
   * counted. */
  uint64_t before = masq_conn_get_stats(p->c)->drop_too_big;
  int rv = masq_conn_send_datagram(p->c, s->sid, big, max + 1);
  if (rv != MASQ_SESS_ERR_TOO_BIG)
    return hp_fail(p, "a %zu-byte datagram (max %zu): expected MASQ_SESS_ERR_TOO_BIG, got %d",
                   max + 1, max, rv);
  if (masq_conn_get_stats(p->c)->drop_too_big != before + 1)
    return hp_fail(p, "drop_too_big did not count the refused datagram");
  if (echo(p, s, big, max) != 0) return 1;
  if (masq_conn_get_stats(p->c)->drop_too_big != before + 1)
    return hp_fail(p, "a %zu-byte datagram was dropped as too big on the way", max);
  return hp_pass(p, "%zu bytes refused (TOO_BIG, counted), %zu bytes echoed intact", max + 1, max);
}

static int all_answered(probe *p, void *arg) {
  for (size_t i = 0; i < p->nst; i++)
    if (!req_answered(p, &p->st[i])) return 0;
  return 1;
}

static int all_matched(probe *p, void *arg) {
  for (size_t i = 0; i < p->nst; i++)
    if (!p->st[i].matched) return 0;
  return 1;
}

static int case_many(probe *p) {
  for (int i = 0; i < MANY_TUNNELS; i++) connect_target(p, p->token);
  hp_await(p, "100 responses", all_answered, NULL, hp_forever());
  for (size_t i = 0; i < p->nst; i++) {
    pstream *s = &p->st[i];
    char a[96];
    if (s->status != 200)
      return hp_fail(p, "tunnel %zu (stream %lld): expected 200, saw %s", i, (long long)s->sid,
                     req_answer_str(s, a, sizeof(a)));
    masq_conn_stream_set_tunnel(p->c, s->sid);
    s->expectlen = (size_t)snprintf((char *)s->expect, sizeof(s->expect), "many %zu", i);
  }
  /* Each tunnel echoes its own payload; resend to the laggards. */
  for (int t = 0; t < ECHO_TRIES; t++) {
    for (size_t i = 0; i < p->nst; i++)
      if (!p->st[i].matched) masq_conn_send_datagram(p->c, p->st[i].sid, p->st[i].expect,
                                                     p->st[i].expectlen);
    int rv = hp_await(p, "100 echoes", all_matched, NULL, hp_now_ns() + ECHO_RETRY_NS);
    if (rv == 1) break;
  }
  unsigned missing = 0, odd = 0;
  for (size_t i = 0; i < p->nst; i++) {
    missing += !p->st[i].matched;
    odd += p->st[i].mismatched;
  }
  if (missing) return hp_fail(p, "%u of %d tunnels did not echo", missing, MANY_TUNNELS);
  if (odd) return hp_fail(p, "%u datagrams arrived on the wrong tunnel", odd);
  return hp_pass(p, "%d tunnels on one connection, each echoed its datagram", MANY_TUNNELS);
}

static int got_end(probe *p, void *arg) {
  pstream *s = arg;
  return s->ended || s->closed;
}

static int case_early_fin(probe *p) {
  char a[96];
  pstream *s = connect_target(p, p->token);
  /* FIN right behind the headers, before any answer: RFC 9298 §3 ties
   * the UDP socket to the stream, and masq ends a tunnel when the client
   * ends its side, so whatever the status, the server must end the
   * stream too rather than hold a half-closed tunnel until it idles
   * out. */
  if (stream_bytes(p, s, NULL, 0, 1) != 0) return 1;
  int rv =
      hp_await(p, "the server's end of the stream", got_end, s, hp_now_ns() + 3000 * NS_PER_MS);
  if (rv != 1)
    return hp_fail(p, "client FIN before the response: expected the server to end the stream, saw "
                   "%s and the stream still open after 3 s",
                   req_answer_str(s, a, sizeof(a)));
  return hp_pass(p, "client FIN before the response: %s, then the server ended the stream",
                 req_answer_str(s, a, sizeof(a)));
}

/* A client without HTTP/3 datagrams (no max_datagram_frame_size, no
 * SETTINGS_H3_DATAGRAM): RFC 9297 §3.5 has both sides carry the payloads
 * in DATAGRAM capsules on the request stream instead. */
static int case_capsule_fallback(probe *p) {
  pstream *s = open_tunnel(p);
  if (!s) return 1;
  if (echo_str(p, s, "h3probe via capsules") != 0) return 1;
  const masq_conn_stats *st = masq_conn_get_stats(p->c);
  if (st->capsule_dgram_tx == 0 || st->capsule_dgram_rx == 0)
    return hp_fail(p, "echo worked but not through capsules (sent %llu, received %llu)",
                   (unsigned long long)st->capsule_dgram_tx,
                   (unsigned long long)st->capsule_dgram_rx);
  return hp_pass(p, "without HTTP/3 datagrams both directions used DATAGRAM capsules");
}

static const pcase cases[] = {
    {"ok", case_ok, CASE_NEEDS_TARGET},
    {"no-token", case_no_token, CASE_NEEDS_TARGET},
    {"wrong-token", case_wrong_token, CASE_NEEDS_TARGET},
    {"auth-header", case_auth_header, CASE_NEEDS_TARGET},
    {"wrong-protocol", case_wrong_protocol, CASE_NEEDS_TARGET},
    {"wrong-method", case_wrong_method, CASE_NEEDS_TARGET},
    {"no-capsule-protocol", case_no_capsule_protocol, CASE_NEEDS_TARGET},
    {"bad-port", case_bad_port, CASE_NEEDS_TARGET},
    {"bad-host", case_bad_host, CASE_NEEDS_TARGET},
    {"wrong-path", case_wrong_path, 0},
    {"missing-pseudo", case_missing_pseudo, CASE_NEEDS_TARGET},
    {"denied-target", case_denied_target, CASE_NEEDS_TARGET},
    {"malformed-capsule", case_malformed_capsule, CASE_NEEDS_TARGET},
    {"unknown-capsule", case_unknown_capsule, CASE_NEEDS_TARGET},
    {"unknown-context", case_unknown_context, CASE_NEEDS_TARGET},
    {"bad-datagram", case_bad_datagram, 0},
    {"oversize", case_oversize, CASE_NEEDS_TARGET},
    {"many", case_many, CASE_NEEDS_TARGET},
    {"early-fin", case_early_fin, CASE_NEEDS_TARGET},
    {"capsule-fallback", case_capsule_fallback, CASE_NEEDS_TARGET | CASE_NO_H3_DATAGRAM},
};

const pcase_list udp_cases = PCASE_LIST(cases);
