/* h3probe's plain CONNECT cases (RFC 9114 §4.4): TCP flows through the
 * server, refusals, resets and backpressure. */
#include <stdio.h>
#include <string.h>

#include "cases.h"
#include "request.h"

static pstream *open_tcp(probe *p, const char *authority) {
  pstream *s = req_new(p);
  int64_t sid;
  while ((sid = masq_conn_submit_tcp_connect(p->c, authority, p->token, s)) ==
         MASQ_SESS_ERR_BLOCKED)
    req_wait_credit(p);
  return req_submitted(p, s, sid, "CONNECT", "CONNECT", authority);
}

/* A flow to --target that the server answered with 200, or NULL
 * (hp_fail() has said why). */
static pstream *open_flow(probe *p) {
  pstream *s = open_tcp(p, p->target);
  req_wait_answer(p, s);
  if (s->status == 200) return s;
  hp_fail(p, "expected 200, saw %d", s->status);
  return NULL;
}

static int got_bytes(probe *p, void *arg) {
  pstream *s = arg;
  return s->rx_bytes >= s->expectlen || s->closed;
}

#define TCP_ECHO_BYTES (4u << 20)

/* 4 MiB through an echo server: every byte back, in order, then FIN both
 * ways. The stream's send buffer is smaller, so this also exercises
 * waiting for room. */
static int case_tcp_echo(probe *p) {
  pstream *s = open_tcp(p, p->target);
  req_wait_answer(p, s);
  char a[96];
  if (s->status != 200) return hp_fail(p, "expected 200, saw %s", req_answer_str(s, a, sizeof(a)));
  if (s->capsule_protocol) return hp_fail(p, "a plain CONNECT's 200 carries capsule-protocol");
  uint8_t chunk[16384];
  uint64_t sent = 0;
  s->expectlen = TCP_ECHO_BYTES;
  while (sent < TCP_ECHO_BYTES) {
    size_t n = sizeof(chunk);
    if (n > TCP_ECHO_BYTES - sent) n = (size_t)(TCP_ECHO_BYTES - sent);
    for (size_t i = 0; i < n; i++) chunk[i] = hp_pattern_at(sent + i);
    long took = masq_conn_stream_send(p->c, s->sid, chunk, n);
    if (took < 0) return hp_fail(p, "stream send failed: %ld", took);
    sent += (uint64_t)took;
    if ((size_t)took < n) hp_await(p, "send room", NULL, NULL, hp_now_ns() + 2 * NS_PER_MS);
    if (s->closed)
      return hp_fail(p, "stream closed (0x%llx) while sending", (unsigned long long)s->app_error);
  }
  masq_conn_end_stream(p->c, s->sid);
  hp_await(p, "the echo", got_bytes, s, hp_forever());
  if (s->rx_bytes != TCP_ECHO_BYTES || s->rx_bad)
    return hp_fail(p, "echo: %llu bytes back, %llu wrong", (unsigned long long)s->rx_bytes,
                   (unsigned long long)s->rx_bad);
  hp_await(p, "the target's FIN", req_closed, s, hp_forever());
  if (!s->ended || s->app_error != MASQ_H3_NO_ERROR)
    return hp_fail(p, "expected a clean close after FIN, saw end=%d error 0x%llx", s->ended,
                   (unsigned long long)s->app_error);
  return hp_pass(p, "4 MiB echoed intact through a plain CONNECT; FIN both ways");
}

static int case_tcp_refused(probe *p) {
  pstream *s = open_tcp(p, p->target);
  if (req_expect_refusal(p, s, 502, "connection_refused") != 0) return 1;
  return hp_pass(p, "closed port: 502, proxy-status: %s", s->proxy_status);
}

static int case_tcp_timeout(probe *p) {
  pstream *s = open_tcp(p, p->target);
  if (req_expect_refusal(p, s, 504, "connection_timeout") != 0) return 1;
  return hp_pass(p, "silent target: 504, proxy-status: %s", s->proxy_status);
}

static int case_tcp_denied(probe *p) {
  pstream *s = open_tcp(p, p->target);
  if (req_expect_refusal(p, s, 403, "destination_ip_prohibited") != 0) return 1;
  return hp_pass(p, "%s: 403", p->target);
}

static int case_tcp_bad(probe *p) {
  pstream *s = open_tcp(p, "no-port-here");
  if (req_expect_refusal(p, s, 400, NULL) != 0) return 1;
  char auth[300];
  req_bearer(p, auth, sizeof(auth));
  /* RFC 9114 §4.4: :scheme and :path MUST be omitted from a CONNECT. */
  nghttp3_nv nva[] = {NV(":method", "CONNECT"), NV(":authority", p->target),
                      NV(":path", "/"), NV("proxy-authorization", auth)};
  pstream *r = req_open_raw(p, nva, sizeof(nva) / sizeof(nva[0]));
  req_wait_answer(p, r);
  /* Malformed (RFC 9114 §4.1.2): a 400, or nghttp3's own stream error. */
  if (r->status != 400 && !(r->status == 0 && r->app_error == MASQ_H3_MESSAGE_ERROR)) {
    char a[96];
    return hp_fail(p, ":path on a CONNECT: expected 400 or H3_MESSAGE_ERROR, saw %s",
                   req_answer_str(r, a, sizeof(a)));
  }
  pstream *t = open_tcp(p, p->target);
  req_wait_answer(p, t);
  if (t->status != 200) return hp_fail(p, "a good CONNECT after the bad ones got %d", t->status);
  return hp_pass(p, "no port: 400; :path on a CONNECT: %s; the connection still works",
                 r->status == 400 ? "400" : "H3_MESSAGE_ERROR");
}

/* The target resets the connection: the stream is reset with
 * H3_CONNECT_ERROR (RFC 9114 §4.4). */
static int case_tcp_reset(probe *p) {
  pstream *s = open_flow(p);
  if (!s) return 1;
  const uint8_t hello[] = "reset me";
  masq_conn_stream_send(p->c, s->sid, hello, sizeof(hello));
  hp_await(p, "the stream reset", req_closed, s, hp_forever());
  if (s->app_error != MASQ_H3_CONNECT_ERROR)
    return hp_fail(p, "expected H3_CONNECT_ERROR (0x10f), saw 0x%llx",
                   (unsigned long long)s->app_error);
  return hp_pass(p, "target RST: stream reset with H3_CONNECT_ERROR");
}

/* Uploads to a target that never reads: the proxy must stop taking bytes
 * once the stream window and socket buffers are full (nothing grows
 * without bound), and the connection must stay usable. */
static int case_tcp_stall(probe *p) {
  pstream *s = open_flow(p);
  if (!s) return 1;
  static uint8_t chunk[65536];
  uint64_t sent = 0, last_progress = hp_now_ns();
  while (hp_now_ns() - last_progress < 1500 * NS_PER_MS) {
    long took = masq_conn_stream_send(p->c, s->sid, chunk, sizeof(chunk));
    if (took < 0 || s->closed) return hp_fail(p, "stream failed while uploading");
    if (took > 0) {
      sent += (uint64_t)took;
      last_progress = hp_now_ns();
    }
    if (sent > (256ull << 20)) return hp_fail(p, "256 MiB taken by a target that never reads");
    hp_await(p, "upload progress", NULL, NULL, hp_now_ns() + 5 * NS_PER_MS);
  }
  if (sent == 0) return hp_fail(p, "nothing could be sent at all");
  masq_conn_reset_stream(p->c, s->sid, MASQ_H3_REQUEST_CANCELLED);
  pstream *t = open_tcp(p, p->target);
  req_wait_answer(p, t);
  if (t->status != 200) return hp_fail(p, "no new flow after the stall (%d)", t->status);
  return hp_pass(p, "upload stalled after %.1f MiB (window + socket buffers); connection usable",
                 (double)sent / (1 << 20));
}

static const pcase cases[] = {
    {"tcp-echo", case_tcp_echo, CASE_NEEDS_TARGET},
    {"tcp-refused", case_tcp_refused, CASE_NEEDS_TARGET},
    {"tcp-timeout", case_tcp_timeout, CASE_NEEDS_TARGET},
    {"tcp-denied", case_tcp_denied, CASE_NEEDS_TARGET},
    {"tcp-bad", case_tcp_bad, CASE_NEEDS_TARGET},
    {"tcp-reset", case_tcp_reset, CASE_NEEDS_TARGET},
    {"tcp-stall", case_tcp_stall, CASE_NEEDS_TARGET},
};

const pcase_list tcp_cases = PCASE_LIST(cases);
