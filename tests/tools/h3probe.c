/* h3probe: a deliberately misbehaving MASQUE client for the netns tests.
 *
 *   h3probe --proxy IP:PORT --ca CERT --sni NAME [--token T] --case NAME
 *           [--target HOST:PORT] [-v]
 *
 * It opens one QUIC/HTTP/3 connection to a masq server with the session
 * layer, runs one scenario (valid or malformed requests, capsules and
 * datagrams), checks the server's reaction against what RFC 9297 / 9298 /
 * 9220 require, prints one result line and exits 0 (as expected), 1 (not
 * as expected, or the 10 s budget ran out) or 2 (could not set up).
 *
 * It reaches below the public session API (session/internal.h) on
 * purpose: a well-behaved client cannot send the broken input the server
 * must survive. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/tls.h"
#include "client/proxy_url.h"
#include "io/net.h"
#include "proto/addr.h"
#include "proto/capsule.h"
#include "proto/h3dgram.h"
#include "proto/ipcapsule.h"
#include "proto/ippkt.h"
#include "proto/wire.h"
#include "session/internal.h"

#define NS_PER_MS 1000000ull
#define PROBE_BUDGET_NS (10000 * NS_PER_MS) /* whole run, connection included */
#define ECHO_RETRY_NS (400 * NS_PER_MS)     /* datagrams may be lost: resend */
#define ECHO_TRIES 6
#define QUIET_NS (300 * NS_PER_MS) /* how long "nothing more arrives" is watched */
#define MAX_PSTREAMS 128
#define MANY_TUNNELS 100

/* What the probe saw on one request stream. */
typedef struct pstream {
  int64_t sid;
  int status;           /* response :status, 0 until the headers came */
  int capsule_protocol; /* response carried capsule-protocol: ?1 */
  char proxy_status[256];
  int ended;            /* peer FIN */
  int closed;           /* stream gone */
  uint64_t app_error;   /* H3 error code of the close */
  /* Datagrams: those equal to `expect` and any others (kept for the
   * report). */
  uint8_t expect[MASQ_OUTER_UDP_PAYLOAD];
  size_t expectlen;
  unsigned matched, mismatched;
  uint8_t odd[64];
  size_t oddlen;
  /* CONNECT-IP: the last datagram, and the last capsules of each kind. */
  uint8_t last[1500];
  size_t lastlen;
  unsigned ndgrams;
  masq_ip_assignment assign[8];
  size_t nassign;
  unsigned assigns; /* ADDRESS_ASSIGN capsules seen */
  masq_ip_route routes[8];
  size_t nroutes;
  unsigned route_ads;
  /* Plain CONNECT: bytes received (checked against the pattern sent). */
  uint64_t rx_bytes, rx_bad;
} pstream;

typedef struct probe {
  const char *proxy, *ca, *sni, *token, *target, *casename;
  int verbose;
  char authority[MASQ_MAX_HOST + 16];
  masq_proxy_url url;
  char thost[MASQ_MAX_HOST + 1], tport[8];
  int fd;
  masq_sockaddr local, remote;
  gnutls_certificate_credentials_t creds;
  masq_conn_config cfg;
  masq_conn *c;
  int ready;
  uint64_t deadline;
  const char *waiting; /* what the current pump waits for, for "timeout" */
  pstream st[MAX_PSTREAMS];
  size_t nst;
  char msg[768];
  uint8_t rxbuf[65536];
} probe;

/* Static, so everything stays reachable for LeakSanitizer on any exit. */
static probe P;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void vlog(probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vlog(probe *p, const char *fmt, ...) {
  if (!p->verbose) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "h3probe: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* Case outcome helpers: fill p->msg and return the exit code. */
static int fail(probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(probe *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
  va_end(ap);
  return 1;
}

static int pass(probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int pass(probe *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
  va_end(ap);
  return 0;
}

static void finish(probe *p, int code) __attribute__((noreturn));
static void finish(probe *p, int code) {
  printf("%s %s: %s\n", code == 0 ? "PASS" : code == 1 ? "FAIL" : "ERROR",
         p->casename ? p->casename : "?", p->msg);
  fflush(stdout);
  if (p->c) {
    /* A clean CONNECTION_CLOSE, so the server frees the connection now
     * rather than at its idle timeout. */
    masq_conn_close(p->c, MASQ_H3_NO_ERROR, now_ns());
    masq_conn_free(p->c);
  }
  if (p->creds) gnutls_certificate_free_credentials(p->creds);
  if (p->fd >= 0) close(p->fd);
  exit(code);
}

/* ---- session callbacks ------------------------------------------------ */

static int on_send(masq_conn *c, void *ud, const ngtcp2_path *path, const uint8_t *data,
                   size_t len, size_t seg) {
  probe *p = ud;
  if (masq_udp_send(p->fd, data, len, seg, NULL) == 0) return 0;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return -1;
  return 0; /* lost, as far as QUIC is concerned */
}

static void on_ready(masq_conn *c, void *ud) { ((probe *)ud)->ready = 1; }

static int parse_status(const masq_hfield *f) {
  if (!f->present || f->len != 3) return -1;
  int v = 0;
  for (int i = 0; i < 3; i++) {
    if (f->v[i] < '0' || f->v[i] > '9') return -1;
    v = v * 10 + (f->v[i] - '0');
  }
  return v;
}

static void on_response(masq_conn *c, void *ud, int64_t sid, void *sud, const masq_reqhdrs *h) {
  pstream *s = sud;
  if (!s) return;
  s->status = parse_status(&h->status);
  s->capsule_protocol = h->capsule_protocol.present &&
                        masq_sf_boolean_parse(h->capsule_protocol.v, h->capsule_protocol.len) == 1;
  if (h->proxy_status.present)
    snprintf(s->proxy_status, sizeof(s->proxy_status), "%.200s", h->proxy_status.v);
  vlog(ud, "stream %lld: status %d%s%s%s", (long long)sid, s->status,
       s->capsule_protocol ? ", capsule-protocol" : "", s->proxy_status[0] ? ", proxy-status: " : "",
       s->proxy_status);
}

static void on_datagram(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *d,
                        size_t n) {
  pstream *s = sud;
  if (!s) return;
  if (n == s->expectlen && memcmp(d, s->expect, n) == 0) {
    s->matched++;
  } else {
    s->mismatched++;
    s->oddlen = n < sizeof(s->odd) ? n : sizeof(s->odd);
    memcpy(s->odd, d, s->oddlen);
  }
  s->ndgrams++;
  s->lastlen = n < sizeof(s->last) ? n : sizeof(s->last);
  memcpy(s->last, d, s->lastlen);
  vlog(ud, "stream %lld: datagram of %zu bytes (%s)", (long long)sid, n,
       n == s->expectlen && memcmp(d, s->expect, n) == 0 ? "expected" : "unexpected");
}

static void on_stream_end(masq_conn *c, void *ud, int64_t sid, void *sud) {
  pstream *s = sud;
  if (s) s->ended = 1;
  vlog(ud, "stream %lld: peer FIN", (long long)sid);
}

static void on_stream_close(masq_conn *c, void *ud, int64_t sid, void *sud, uint64_t err) {
  pstream *s = sud;
  if (!s) return;
  s->closed = 1;
  s->app_error = err;
  vlog(ud, "stream %lld: closed, app error 0x%llx", (long long)sid, (unsigned long long)err);
}

/* CONNECT-IP capsules from the server must be well-formed: a decoding
 * error here fails the stream as the RFC says a client must. */
static int on_capsule(masq_conn *c, void *ud, int64_t sid, void *sud, uint64_t type,
                      const uint8_t *d, size_t n) {
  pstream *s = sud;
  const char *err = NULL;
  int rv = 0;
  if (!s) return 0;
  if (type == MASQ_CAPSULE_ADDRESS_ASSIGN) {
    rv = masq_address_assign_decode(d, n, s->assign, 8, &s->nassign, &err);
    if (rv == 0) s->assigns++;
  } else if (type == MASQ_CAPSULE_ROUTE_ADVERTISEMENT) {
    rv = masq_route_advertisement_decode(d, n, s->routes, 8, &s->nroutes, &err);
    if (rv == 0) s->route_ads++;
  }
  vlog(ud, "stream %lld: capsule 0x%llx of %zu bytes%s%s", (long long)sid,
       (unsigned long long)type, n, err ? ": " : "", err ? err : "");
  return rv == 0 ? 0 : -1;
}

/* The byte each offset of a plain CONNECT's pattern holds. */
static uint8_t pattern_at(uint64_t off) { return (uint8_t)((off * 7 + (off >> 11)) & 0xff); }

static void on_data(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *d, size_t n) {
  pstream *s = sud;
  if (s) {
    for (size_t i = 0; i < n; i++)
      if (d[i] != pattern_at(s->rx_bytes + i)) s->rx_bad++;
    s->rx_bytes += n;
  }
  masq_conn_stream_consume(c, sid, n);
}

static const masq_conn_callbacks probe_callbacks = {
    .on_data = on_data,
    .on_capsule = on_capsule,
    .send = on_send,
    .on_ready = on_ready,
    .on_response = on_response,
    .on_datagram = on_datagram,
    .on_stream_end = on_stream_end,
    .on_stream_close = on_stream_close,
};

/* ---- driving the connection ------------------------------------------- */

typedef int (*cond_fn)(probe *p, void *arg);

static void read_socket(probe *p) {
  ngtcp2_path path = {{&p->local.u.sa, p->local.len}, {&p->remote.u.sa, p->remote.len}, NULL};
  for (;;) {
    size_t seg;
    ssize_t n = masq_udp_recv(p->fd, p->rxbuf, sizeof(p->rxbuf), NULL, &seg);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      continue; /* ICMP errors: QUIC recovers or times out */
    }
    for (size_t off = 0; off < (size_t)n; off += seg) {
      size_t len = (size_t)n - off < seg ? (size_t)n - off : seg;
      if (masq_conn_read(p->c, &path, p->rxbuf + off, len, now_ns()) != 0) return;
    }
  }
}

/* Runs the connection until cond holds (returns 1), the connection dies
 * (-1) or `until` passes (0). Past the overall budget it ends the run with
 * "timeout", naming what it was waiting for. */
static int pump(probe *p, cond_fn cond, void *arg, uint64_t until) {
  for (;;) {
    if (cond && cond(p, arg)) return 1;
    if (masq_conn_is_dead(p->c)) return -1;
    uint64_t now = now_ns();
    if (now >= p->deadline) {
      fail(p, "timeout (waiting for %s)", p->waiting ? p->waiting : "?");
      finish(p, 1);
    }
    if (now >= until) return 0;
    if (masq_conn_write(p->c, now) != 0) continue;
    uint64_t wake = masq_conn_expiry(p->c);
    if (wake > until) wake = until;
    if (wake > p->deadline) wake = p->deadline;
    int ms = wake <= now ? 0 : (int)((wake - now + NS_PER_MS - 1) / NS_PER_MS);
    struct pollfd pfd = {p->fd, POLLIN, 0};
    if (poll(&pfd, 1, ms) > 0) read_socket(p);
    now = now_ns();
    if (!masq_conn_is_dead(p->c) && masq_conn_expiry(p->c) <= now) masq_conn_on_timer(p->c, now);
  }
}

/* pump() with a description for the timeout report; dies with the
 * connection unless the caller expects that. */
static int pump_for(probe *p, const char *what, cond_fn cond, void *arg, uint64_t until) {
  p->waiting = what;
  int rv = pump(p, cond, arg, until);
  p->waiting = NULL;
  return rv;
}

static void must_live(probe *p, int rv, const char *what) {
  if (rv >= 0) return;
  fail(p, "connection died while waiting for %s: %s (peer close: %s 0x%llx)", what,
       masq_conn_error_str(p->c),
       ngtcp2_conn_get_ccerr(p->c->qc)->type == NGTCP2_CCERR_TYPE_APPLICATION ? "application"
                                                                              : "transport",
       (unsigned long long)ngtcp2_conn_get_ccerr(p->c->qc)->error_code);
  finish(p, 1);
}

static uint64_t forever(void) { return UINT64_MAX; }

/* ---- streams ----------------------------------------------------------- */

static pstream *ps_new(probe *p) {
  if (p->nst == MAX_PSTREAMS) {
    fail(p, "probe bug: more than %d streams", MAX_PSTREAMS);
    finish(p, 2);
  }
  pstream *s = &p->st[p->nst++];
  memset(s, 0, sizeof(*s));
  s->sid = -1;
  return s;
}

static int streams_left(probe *p, void *arg) {
  return ngtcp2_conn_get_streams_bidi_left(p->c->qc) > 0;
}

/* Builds :path for host/port with the default template (RFC 9298 §2),
 * percent-encoding the values as a client must. */
static void target_path(probe *p, const char *host, const char *port, char *path, size_t cap) {
  char authority[MASQ_MAX_HOST + 16];
  if (masq_proxy_url_target(&p->url, MASQ_DEFAULT_UDP_TEMPLATE, host, port, authority,
                            sizeof(authority), path, cap) != 0) {
    fail(p, "cannot expand the URI template for %s:%s", host, port);
    finish(p, 2);
  }
}

/* Opens a CONNECT-UDP request the way masq's own client does. */
static pstream *open_connect(probe *p, const char *path, const char *token) {
  pstream *s = ps_new(p);
  for (;;) {
    int64_t sid = masq_conn_submit_connect(p->c, p->authority, path, MASQ_PROTO_CONNECT_UDP,
                                           token, s);
    if (sid >= 0) {
      s->sid = sid;
      vlog(p, "stream %lld: CONNECT %s", (long long)sid, path);
      return s;
    }
    if (sid != MASQ_SESS_ERR_BLOCKED) {
      fail(p, "cannot submit a request: %lld", (long long)sid);
      finish(p, 1);
    }
    must_live(p, pump_for(p, "stream credit", streams_left, NULL, forever()), "stream credit");
  }
}

#define NV(n, v) \
  { (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP3_NV_FLAG_NONE }

/* Submits a request with exactly the given header fields (well-formed or
 * not), through nghttp3 directly, keeping the stream open for a body as
 * a CONNECT does and registering it with the session so responses,
 * datagrams and capsules reach the callbacks. */
static pstream *open_raw(probe *p, const nghttp3_nv *nva, size_t nvlen) {
  masq_conn *c = p->c;
  pstream *ps = ps_new(p);
  int64_t sid;
  while (ngtcp2_conn_open_bidi_stream(c->qc, &sid, NULL) != 0)
    must_live(p, pump_for(p, "stream credit", streams_left, NULL, forever()), "stream credit");
  masq_stream *s = masq_stream_new(c, sid);
  if (!s) {
    fail(p, "out of memory");
    finish(p, 2);
  }
  s->sud = ps;
  s->capsules = 1;
  s->has_body = 1;
  masq_tunnel_init_parser(c, s);
  nghttp3_data_reader dr = {masq_h3_read_body};
  int rv = nghttp3_conn_submit_request(c->h3, sid, nva, nvlen, &dr, s);
  if (rv != 0) {
    fail(p, "nghttp3 refused to submit the request: %s", nghttp3_strerror(rv));
    finish(p, 2);
  }
  ps->sid = sid;
  vlog(p, "stream %lld: raw request with %zu fields", (long long)sid, nvlen);
  return ps;
}

static int got_answer(probe *p, void *arg) {
  pstream *s = arg;
  return s->status != 0 || s->closed;
}

/* Waits for the response (or the stream's end without one). */
static void wait_answer(probe *p, pstream *s) {
  must_live(p, pump_for(p, "the response", got_answer, s, forever()), "the response");
}

/* "200" or "no response (stream closed, app error 0x10e)". */
static const char *answer_str(const pstream *s, char *buf, size_t cap) {
  if (s->status) snprintf(buf, cap, "%d", s->status);
  else snprintf(buf, cap, "no response (stream closed, app error 0x%llx)",
                (unsigned long long)s->app_error);
  return buf;
}

/* Expects a 2xx that opens a tunnel; marks the stream as one. */
static int expect_tunnel(probe *p, pstream *s, int want_capsule_protocol) {
  char a[96];
  wait_answer(p, s);
  if (s->status != 200)
    return fail(p, "expected 200, saw %s%s%s", answer_str(s, a, sizeof(a)),
                s->proxy_status[0] ? ", proxy-status: " : "", s->proxy_status);
  /* RFC 9297 §3.4 / RFC 9298 §3: the 2xx says the capsule protocol is in
   * use. */
  if (want_capsule_protocol && !s->capsule_protocol)
    return fail(p, "200 without capsule-protocol: ?1");
  masq_conn_stream_set_tunnel(p->c, s->sid);
  return 0;
}

/* Expects an error status and, if ps_has is non-NULL, a Proxy-Status
 * containing it. */
static int expect_refusal(probe *p, pstream *s, int status, const char *ps_has) {
  char a[96];
  wait_answer(p, s);
  if (s->status != status)
    return fail(p, "stream %lld: expected %d, saw %s%s%s", (long long)s->sid, status,
                answer_str(s, a, sizeof(a)), s->proxy_status[0] ? ", proxy-status: " : "",
                s->proxy_status);
  if (ps_has && !strstr(s->proxy_status, ps_has))
    return fail(p, "stream %lld: %d as expected but proxy-status \"%s\" lacks \"%s\"",
                (long long)s->sid, status, s->proxy_status, ps_has);
  return 0;
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
    if (rv != 0) return fail(p, "stream %lld: cannot send a %zu-byte datagram: %d",
                             (long long)s->sid, n, rv);
    rv = pump_for(p, "an echoed datagram", got_match, s, now_ns() + ECHO_RETRY_NS);
    must_live(p, rv, "an echoed datagram");
    if (rv == 1) return 0;
    if (s->closed)
      return fail(p, "stream %lld closed (app error 0x%llx) before the echo came back",
                  (long long)s->sid, (unsigned long long)s->app_error);
  }
  return fail(p, "stream %lld: %zu-byte datagram not echoed after %d tries (%u other datagrams)",
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
    masq_conn_write(p->c, now_ns());
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    int accepted = 0;
    /* An empty payload goes as zero vectors: ngtcp2 asserts that no
     * vector is empty. */
    ngtcp2_vec v = {(uint8_t *)d, n};
    ngtcp2_ssize w = ngtcp2_conn_writev_datagram(p->c->qc, &ps.path, &pi, buf, sizeof(buf),
                                                 &accepted, 0, 0, &v, n ? 1 : 0, now_ns());
    if (w < 0) return fail(p, "ngtcp2 refused the datagram: %s", ngtcp2_strerror((int)w));
    if (w > 0) {
      masq_udp_send(p->fd, buf, (size_t)w, (size_t)w, NULL);
      ngtcp2_conn_update_pkt_tx_time(p->c->qc, now_ns());
    }
    if (accepted) return 0;
    /* Congestion-limited: let acknowledgements arrive and try again. */
    must_live(p, pump_for(p, "congestion window", NULL, NULL, now_ns() + 20 * NS_PER_MS),
              "congestion window");
  }
  return fail(p, "could not put a raw datagram on the wire");
}

/* ---- cases -------------------------------------------------------------- */

static void default_path(probe *p, char *path, size_t cap) {
  target_path(p, p->thost, p->tport, path, cap);
}

/* A working tunnel to --target, echoing one datagram. */
static int tunnel_works(probe *p, const char *payload) {
  char path[1024];
  default_path(p, path, sizeof(path));
  pstream *s = open_connect(p, path, p->token);
  if (expect_tunnel(p, s, 1) != 0) return 1;
  return echo_str(p, s, payload);
}

static int case_ok(probe *p) {
  if (tunnel_works(p, "h3probe ok") != 0) return 1;
  return pass(p, "200 with capsule-protocol, datagram echoed");
}

static int case_no_token(probe *p) {
  char path[1024];
  default_path(p, path, sizeof(path));
  pstream *s = open_connect(p, path, NULL);
  if (expect_refusal(p, s, 407, "error=http_request_denied") != 0) return 1;
  return pass(p, "407, proxy-status: %s", s->proxy_status);
}

static int case_wrong_token(probe *p) {
  char path[1024], tok[300];
  default_path(p, path, sizeof(path));
  snprintf(tok, sizeof(tok), "%sx", p->token ? p->token : "none");
  pstream *s = open_connect(p, path, tok);
  if (expect_refusal(p, s, 407, "error=http_request_denied") != 0) return 1;
  return pass(p, "407, proxy-status: %s", s->proxy_status);
}

/* A request with the usual pseudo-headers; `extra` fields follow. */
static pstream *open_custom(probe *p, const char *protocol, const char *path, int with_path,
                            const nghttp3_nv *extra, size_t nextra) {
  nghttp3_nv nva[12] = {NV(":method", "CONNECT"), NV(":protocol", protocol),
                        NV(":scheme", "https"), NV(":authority", p->authority)};
  size_t n = 4;
  if (with_path) nva[n++] = (nghttp3_nv)NV(":path", path);
  for (size_t i = 0; i < nextra && n < 12; i++) nva[n++] = extra[i];
  return open_raw(p, nva, n);
}

static int case_auth_header(probe *p) {
  char path[1024], auth[300];
  default_path(p, path, sizeof(path));
  snprintf(auth, sizeof(auth), "Bearer %s", p->token ? p->token : "");
  nghttp3_nv extra[] = {NV("capsule-protocol", "?1"), NV("authorization", auth)};
  pstream *s = open_custom(p, MASQ_PROTO_CONNECT_UDP, path, 1, extra, 2);
  if (expect_tunnel(p, s, 1) != 0) return 1;
  if (echo_str(p, s, "h3probe auth-header") != 0) return 1;
  return pass(p, "token in Authorization accepted: 200, datagram echoed");
}

static int case_wrong_protocol(probe *p) {
  char path[1024], auth[300];
  default_path(p, path, sizeof(path));
  snprintf(auth, sizeof(auth), "Bearer %s", p->token ? p->token : "");
  nghttp3_nv extra[] = {NV("capsule-protocol", "?1"), NV("proxy-authorization", auth)};
  pstream *s = open_custom(p, "connect-foo", path, 1, extra, 2);
  if (expect_refusal(p, s, 501, NULL) != 0) return 1;
  return pass(p, ":protocol connect-foo: 501");
}

/* A GET (no CONNECT) on the template's path: RFC 9110 §15.5.6's 405.
 * The request ends with its headers, so nghttp3 sends FIN at once. */
static int case_wrong_method(probe *p) {
  char path[1024], auth[300];
  default_path(p, path, sizeof(path));
  snprintf(auth, sizeof(auth), "Bearer %s", p->token ? p->token : "");
  nghttp3_nv nva[] = {NV(":method", "GET"), NV(":scheme", "https"),
                      NV(":authority", p->authority), NV(":path", path),
                      NV("proxy-authorization", auth)};
  pstream *s = open_raw(p, nva, sizeof(nva) / sizeof(nva[0]));
  masq_stream_write(p->c, masq_stream_get(p->c, s->sid), NULL, 0, 1);
  if (expect_refusal(p, s, 405, NULL) != 0) return 1;
  return pass(p, "GET on the CONNECT-UDP path: 405");
}

static int case_no_capsule_protocol(probe *p) {
  char path[1024], auth[300];
  default_path(p, path, sizeof(path));
  snprintf(auth, sizeof(auth), "Bearer %s", p->token ? p->token : "");
  nghttp3_nv extra[] = {NV("proxy-authorization", auth)};
  pstream *s = open_custom(p, MASQ_PROTO_CONNECT_UDP, path, 1, extra, 1);
  /* RFC 9298 §3: the client SHOULD send it; a server may still accept. */
  if (expect_tunnel(p, s, 0) != 0) return 1;
  if (echo_str(p, s, "h3probe no-capsule-protocol") != 0) return 1;
  return pass(p, "200 without capsule-protocol in the request, datagram echoed");
}

/* Opens one request per path at once and expects `status` on each. */
static int expect_all(probe *p, const char *const *paths, size_t n, int status) {
  pstream *s[8];
  for (size_t i = 0; i < n && i < 8; i++) s[i] = open_connect(p, paths[i], p->token);
  for (size_t i = 0; i < n && i < 8; i++) {
    if (expect_refusal(p, s[i], status, NULL) != 0) {
      char m[sizeof(p->msg)];
      snprintf(m, sizeof(m), "%.500s (path %.200s)", p->msg, paths[i]);
      return fail(p, "%s", m);
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
  return pass(p, "target_port 0, 70000, abc: 400 each");
}

static int case_bad_host(probe *p) {
  char a[1024], b[1024], c[1024];
  target_path(p, "bad host!", p->tport, a, sizeof(a)); /* sent as bad%20host%21 */
  target_path(p, "", p->tport, b, sizeof(b));
  target_path(p, "bad..host", p->tport, c, sizeof(c));
  const char *paths[] = {a, b, c};
  if (expect_all(p, paths, 3, 400) != 0) return 1;
  return pass(p, "target_host \"bad host!\", empty, \"bad..host\": 400 each");
}

static int case_wrong_path(probe *p) {
  const char *paths[] = {"/not/masque/udp/192.0.2.2/7/", "/.well-known/masque/udp/192.0.2.2/"};
  if (expect_all(p, paths, 2, 404) != 0) return 1;
  return pass(p, "paths outside the template: 404");
}

static int case_missing_pseudo(probe *p) {
  char auth[300];
  snprintf(auth, sizeof(auth), "Bearer %s", p->token ? p->token : "");
  nghttp3_nv extra[] = {NV("capsule-protocol", "?1"), NV("proxy-authorization", auth)};
  pstream *s = open_custom(p, MASQ_PROTO_CONNECT_UDP, NULL, 0, extra, 2);
  char a[96];
  wait_answer(p, s);
  const char *seen;
  if (s->status == 400) seen = "400 response";
  else if (!s->status && s->app_error == MASQ_H3_MESSAGE_ERROR)
    seen = "stream reset with H3_MESSAGE_ERROR";
  else
    return fail(p, "expected 400 or a reset with H3_MESSAGE_ERROR (0x10e), saw %s",
                answer_str(s, a, sizeof(a)));
  /* A malformed request is a stream error, not a connection error
   * (RFC 9114 §4.1.2): the connection must still carry a tunnel. */
  if (tunnel_works(p, "h3probe after missing-pseudo") != 0) return 1;
  return pass(p, "no :path: %s; connection still usable", seen);
}

static int case_denied_target(probe *p) {
  char path[1024];
  default_path(p, path, sizeof(path));
  pstream *s = open_connect(p, path, p->token);
  if (expect_refusal(p, s, 403, "destination_ip_prohibited") != 0) return 1;
  return pass(p, "%s: 403, proxy-status: %s", p->target, s->proxy_status);
}

static int got_close(probe *p, void *arg) { return ((pstream *)arg)->closed; }

/* Writes raw bytes onto an open tunnel's request stream. */
static int stream_bytes(probe *p, pstream *ps, const uint8_t *d, size_t n, int fin) {
  masq_stream *s = masq_stream_get(p->c, ps->sid);
  if (!s) return fail(p, "stream %lld vanished", (long long)ps->sid);
  int rv = masq_stream_write(p->c, s, d, n, fin);
  if (rv != 0) return fail(p, "cannot write to stream %lld: %d", (long long)ps->sid, rv);
  return 0;
}

static int case_malformed_capsule(probe *p) {
  char path[1024];
  default_path(p, path, sizeof(path));
  pstream *s = open_connect(p, path, p->token);
  if (expect_tunnel(p, s, 1) != 0) return 1;
  /* A DATAGRAM capsule announcing 100 bytes with 3 present, then FIN:
   * RFC 9297 §3.3 makes that a malformed message, answered with
   * H3_MESSAGE_ERROR on the stream (RFC 9114 §4.1.2). */
  const uint8_t truncated[] = {0x00, 0x40, 0x64, 0x00, 'h', 'i'};
  if (stream_bytes(p, s, truncated, sizeof(truncated), 1) != 0) return 1;
  must_live(p, pump_for(p, "the stream reset", got_close, s, forever()), "the stream reset");
  if (s->app_error != MASQ_H3_MESSAGE_ERROR)
    return fail(p, "expected the stream reset with H3_MESSAGE_ERROR (0x10e), saw it closed with "
                "0x%llx",
                (unsigned long long)s->app_error);
  /* Only the stream was at fault: the connection must go on. */
  if (tunnel_works(p, "h3probe after malformed-capsule") != 0) return 1;
  return pass(p, "truncated capsule: stream reset with H3_MESSAGE_ERROR; new tunnel echoes");
}

static size_t put_capsule(uint8_t *dst, uint64_t type, const uint8_t *d, size_t n) {
  size_t h = masq_capsule_header_encode(dst, type, n);
  memcpy(dst + h, d, n);
  return h + n;
}

static int case_unknown_capsule(probe *p) {
  char path[1024];
  default_path(p, path, sizeof(path));
  pstream *s = open_connect(p, path, p->token);
  if (expect_tunnel(p, s, 1) != 0) return 1;
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
  int rv = pump_for(p, "the echo of the capsule payload", got_match, s,
                    now_ns() + ECHO_TRIES * ECHO_RETRY_NS);
  must_live(p, rv, "the echo of the capsule payload");
  if (rv != 1)
    return fail(p, "DATAGRAM capsule after unknown capsules not echoed (stream %s)",
                s->closed ? "closed" : "open");
  return pass(p, "unknown capsules 0x2a and 0x17cafe skipped, DATAGRAM capsule echoed");
}

/* One HTTP Datagram for stream sid: Quarter Stream ID, Context ID,
 * payload. */
static size_t h3_datagram(uint8_t *dst, int64_t sid, uint64_t ctx, const char *text) {
  size_t off = masq_h3dgram_prefix_encode(dst, sid, ctx);
  memcpy(dst + off, text, strlen(text));
  return off + strlen(text);
}

static int case_unknown_context(probe *p) {
  char path[1024];
  default_path(p, path, sizeof(path));
  pstream *s = open_connect(p, path, p->token);
  if (expect_tunnel(p, s, 1) != 0) return 1;
  /* RFC 9298 §4: a datagram with an unknown Context ID is dropped; the
   * context-0 one right behind it is delivered. */
  uint8_t d[64];
  size_t n = h3_datagram(d, s->sid, 2, "context two");
  if (send_raw_quic_datagram(p, d, n) != 0) return 1;
  if (echo_str(p, s, "context zero") != 0) return 1;
  must_live(p, pump_for(p, "stray datagrams", NULL, NULL, now_ns() + QUIET_NS),
            "stray datagrams");
  if (s->mismatched)
    return fail(p, "the context-2 datagram was not dropped: %u unexpected datagram(s), e.g. "
                "\"%.*s\"",
                s->mismatched, (int)s->oddlen, (const char *)s->odd);
  if (echo_str(p, s, "context zero again") != 0) return 1;
  return pass(p, "context 2 dropped, context 0 echoed, tunnel still works");
}

static int case_bad_datagram(probe *p) {
  /* RFC 9297 §2.1: a datagram without a Quarter Stream ID is a
   * connection error H3_DATAGRAM_ERROR. */
  if (send_raw_quic_datagram(p, NULL, 0) != 0) return 1;
  int rv = pump_for(p, "the connection close", NULL, NULL, now_ns() + 3000 * NS_PER_MS);
  if (rv != -1) return fail(p, "expected the connection closed with H3_DATAGRAM_ERROR, still open");
  const ngtcp2_ccerr *e = ngtcp2_conn_get_ccerr(p->c->qc);
  if (e->type != NGTCP2_CCERR_TYPE_APPLICATION || e->error_code != MASQ_H3_DATAGRAM_ERROR)
    return fail(p, "expected CONNECTION_CLOSE with application error H3_DATAGRAM_ERROR (0x33), "
                "saw %s error 0x%llx (%s)",
                e->type == NGTCP2_CCERR_TYPE_APPLICATION ? "application" : "transport",
                (unsigned long long)e->error_code, masq_conn_error_str(p->c));
  return pass(p, "empty datagram: connection closed with H3_DATAGRAM_ERROR (0x33)");
}

static int case_oversize(probe *p) {
  char path[1024];
  default_path(p, path, sizeof(path));
  pstream *s = open_connect(p, path, p->token);
  if (expect_tunnel(p, s, 1) != 0) return 1;
  size_t max = masq_conn_max_datagram(p->c, s->sid);
  if (max < 1200) return fail(p, "max datagram %zu is under 1200 bytes", max);
  static uint8_t big[MASQ_OUTER_UDP_PAYLOAD + 1];
  for (size_t i = 0; i < sizeof(big); i++) big[i] = (uint8_t)(i * 7 + 3);
  /* RFC 9298 §5: never truncate; an unsendable payload is refused and
   * counted. */
  uint64_t before = masq_conn_get_stats(p->c)->drop_too_big;
  int rv = masq_conn_send_datagram(p->c, s->sid, big, max + 1);
  if (rv != MASQ_SESS_ERR_TOO_BIG)
    return fail(p, "a %zu-byte datagram (max %zu): expected MASQ_SESS_ERR_TOO_BIG, got %d",
                max + 1, max, rv);
  if (masq_conn_get_stats(p->c)->drop_too_big != before + 1)
    return fail(p, "drop_too_big did not count the refused datagram");
  if (echo(p, s, big, max) != 0) return 1;
  if (masq_conn_get_stats(p->c)->drop_too_big != before + 1)
    return fail(p, "a %zu-byte datagram was dropped as too big on the way", max);
  return pass(p, "%zu bytes refused (TOO_BIG, counted), %zu bytes echoed intact", max + 1, max);
}

static int all_answered(probe *p, void *arg) {
  for (size_t i = 0; i < p->nst; i++)
    if (!got_answer(p, &p->st[i])) return 0;
  return 1;
}

static int all_matched(probe *p, void *arg) {
  for (size_t i = 0; i < p->nst; i++)
    if (!p->st[i].matched) return 0;
  return 1;
}

static int case_many(probe *p) {
  char path[1024];
  default_path(p, path, sizeof(path));
  for (int i = 0; i < MANY_TUNNELS; i++) open_connect(p, path, p->token);
  must_live(p, pump_for(p, "100 responses", all_answered, NULL, forever()), "100 responses");
  for (size_t i = 0; i < p->nst; i++) {
    pstream *s = &p->st[i];
    char a[96];
    if (s->status != 200)
      return fail(p, "tunnel %zu (stream %lld): expected 200, saw %s", i, (long long)s->sid,
                  answer_str(s, a, sizeof(a)));
    masq_conn_stream_set_tunnel(p->c, s->sid);
    s->expectlen = (size_t)snprintf((char *)s->expect, sizeof(s->expect), "many %zu", i);
  }
  /* Each tunnel echoes its own payload; resend to the laggards. */
  for (int t = 0; t < ECHO_TRIES; t++) {
    for (size_t i = 0; i < p->nst; i++)
      if (!p->st[i].matched) masq_conn_send_datagram(p->c, p->st[i].sid, p->st[i].expect,
                                                     p->st[i].expectlen);
    int rv = pump_for(p, "100 echoes", all_matched, NULL, now_ns() + ECHO_RETRY_NS);
    must_live(p, rv, "100 echoes");
    if (rv == 1) break;
  }
  unsigned missing = 0, odd = 0;
  for (size_t i = 0; i < p->nst; i++) {
    missing += !p->st[i].matched;
    odd += p->st[i].mismatched;
  }
  if (missing) return fail(p, "%u of %d tunnels did not echo", missing, MANY_TUNNELS);
  if (odd) return fail(p, "%u datagrams arrived on the wrong tunnel", odd);
  return pass(p, "%d tunnels on one connection, each echoed its datagram", MANY_TUNNELS);
}

static int got_end(probe *p, void *arg) {
  pstream *s = arg;
  return s->ended || s->closed;
}

static int case_early_fin(probe *p) {
  char path[1024], a[96];
  default_path(p, path, sizeof(path));
  pstream *s = open_connect(p, path, p->token);
  /* FIN right behind the headers, before any answer: RFC 9298 §3 ties
   * the UDP socket to the stream, and masq ends a tunnel when the client
   * ends its side, so whatever the status, the server must end the
   * stream too rather than hold a half-closed tunnel until it idles
   * out. */
  if (stream_bytes(p, s, NULL, 0, 1) != 0) return 1;
  int rv = pump_for(p, "the server's end of the stream", got_end, s, now_ns() + 3000 * NS_PER_MS);
  must_live(p, rv, "the server's end of the stream");
  if (rv != 1)
    return fail(p, "client FIN before the response: expected the server to end the stream, saw "
                "%s and the stream still open after 3 s",
                answer_str(s, a, sizeof(a)));
  return pass(p, "client FIN before the response: %s, then the server ended the stream",
              answer_str(s, a, sizeof(a)));
}

/* A client without HTTP/3 datagrams (no max_datagram_frame_size, no
 * SETTINGS_H3_DATAGRAM): RFC 9297 §3.5 has both sides carry the payloads
 * in DATAGRAM capsules on the request stream instead. */
static int case_capsule_fallback(probe *p) {
  char path[1024];
  default_path(p, path, sizeof(path));
  pstream *s = open_connect(p, path, p->token);
  if (expect_tunnel(p, s, 1) != 0) return 1;
  if (echo_str(p, s, "h3probe via capsules") != 0) return 1;
  const masq_conn_stats *st = masq_conn_get_stats(p->c);
  if (st->capsule_dgram_tx == 0 || st->capsule_dgram_rx == 0)
    return fail(p, "echo worked but not through capsules (sent %llu, received %llu)",
                (unsigned long long)st->capsule_dgram_tx,
                (unsigned long long)st->capsule_dgram_rx);
  return pass(p, "without HTTP/3 datagrams both directions used DATAGRAM capsules");
}


/* ---- CONNECT-IP cases (RFC 9484) ------------------------------------------ */

/* :path for the default CONNECT-IP template, percent-encoding what
 * RFC 9484 §4.6 says must be (IPv6 colons, the prefix slash). */
static void ip_path(const char *target, const char *proto, char *path, size_t cap) {
  char enc[300];
  size_t k = 0;
  for (const char *c = target; *c && k + 4 < sizeof(enc); c++) {
    if (*c == ':' || *c == '/' || *c == '%')
      k += (size_t)snprintf(enc + k, sizeof(enc) - k, "%%%02X", (unsigned char)*c);
    else
      enc[k++] = *c;
  }
  enc[k] = '\0';
  snprintf(path, cap, "/.well-known/masque/ip/%s/%s/", enc, proto);
}

static pstream *open_ip(probe *p, const char *target, const char *proto) {
  char path[512];
  ip_path(target, proto, path, sizeof(path));
  pstream *s = ps_new(p);
  int64_t sid =
      masq_conn_submit_connect(p->c, p->authority, path, MASQ_PROTO_CONNECT_IP, p->token, s);
  if (sid < 0) {
    fail(p, "cannot submit a CONNECT-IP request: %lld", (long long)sid);
    finish(p, 1);
  }
  s->sid = sid;
  vlog(p, "stream %lld: CONNECT-IP %s", (long long)sid, path);
  return s;
}

static int got_setup(probe *p, void *arg) {
  pstream *s = arg;
  return (s->assigns && s->route_ads) || s->closed;
}

/* 200, then the unsolicited ADDRESS_ASSIGN and ROUTE_ADVERTISEMENT. */
static int expect_ip_tunnel(probe *p, pstream *s) {
  if (expect_tunnel(p, s, 1) != 0) return 1;
  masq_conn_stream_set_ip(p->c, s->sid);
  must_live(p, pump_for(p, "ADDRESS_ASSIGN and ROUTE_ADVERTISEMENT", got_setup, s, forever()),
            "ADDRESS_ASSIGN and ROUTE_ADVERTISEMENT");
  if (s->closed)
    return fail(p, "stream closed (0x%llx) before addresses and routes came",
                (unsigned long long)s->app_error);
  return 0;
}

static const masq_ip *assigned(const pstream *s, int family) {
  for (size_t i = 0; i < s->nassign; i++)
    if (s->assign[i].prefix.ip.family == family && !masq_ip_assignment_is_rejection(&s->assign[i]))
      return &s->assign[i].prefix.ip;
  return NULL;
}

static size_t ip_header(uint8_t *b, const masq_ip *src, const masq_ip *dst, uint8_t proto,
                        size_t l4len) {
  if (src->family == 4) {
    memset(b, 0, 20);
    b[0] = 0x45;
    b[2] = (uint8_t)((20 + l4len) >> 8);
    b[3] = (uint8_t)(20 + l4len);
    b[6] = 0x40; /* DF */
    b[8] = 64;
    b[9] = proto;
    memcpy(b + 12, src->a, 4);
    memcpy(b + 16, dst->a, 4);
    uint16_t c = masq_inet_checksum(b, 20);
    b[10] = (uint8_t)(c >> 8);
    b[11] = (uint8_t)c;
    return 20;
  }
  memset(b, 0, 40);
  b[0] = 0x60;
  b[4] = (uint8_t)(l4len >> 8);
  b[5] = (uint8_t)l4len;
  b[6] = proto;
  b[7] = 64;
  memcpy(b + 8, src->a, 16);
  memcpy(b + 24, dst->a, 16);
  return 40;
}

/* An ICMP(v6) Echo Request of datalen bytes; returns its length. */
static size_t icmp_echo(uint8_t *b, const masq_ip *src, const masq_ip *dst, size_t datalen) {
  int v4 = src->family == 4;
  uint8_t proto = v4 ? MASQ_IPPROTO_ICMP : MASQ_IPPROTO_ICMPV6;
  size_t h = ip_header(b, src, dst, proto, 8 + datalen);
  uint8_t *m = b + h;
  memset(m, 0, 8 + datalen);
  m[0] = v4 ? 8 : 128;
  m[4] = 0x6d;
  m[5] = 0x71;
  m[7] = 1;
  for (size_t i = 0; i < datalen; i++) m[8 + i] = (uint8_t)i;
  uint16_t c = v4 ? masq_inet_checksum(m, 8 + datalen)
                  : masq_l4_checksum(src, dst, proto, m, 8 + datalen);
  m[2] = (uint8_t)(c >> 8);
  m[3] = (uint8_t)c;
  return h + 8 + datalen;
}

static size_t udp_packet(uint8_t *b, const masq_ip *src, const masq_ip *dst, uint16_t port) {
  size_t h = ip_header(b, src, dst, MASQ_IPPROTO_UDP, 8 + 4);
  uint8_t *u = b + h;
  memset(u, 0, 12);
  u[0] = 0x6d;
  u[1] = 0x71;
  u[2] = (uint8_t)(port >> 8);
  u[3] = (uint8_t)port;
  u[5] = 12;
  memcpy(u + 8, "ping", 4);
  uint16_t c = masq_l4_checksum(src, dst, MASQ_IPPROTO_UDP, u, 12);
  u[6] = (uint8_t)(c >> 8);
  u[7] = (uint8_t)c;
  return h + 12;
}

typedef struct icmp_want {
  pstream *s;
  unsigned after; /* datagrams seen before sending */
  uint8_t type, code;
  masq_ippkt got;
} icmp_want;

static int got_icmp(probe *p, void *arg) {
  icmp_want *w = arg;
  if (w->s->ndgrams <= w->after) return 0;
  w->after = w->s->ndgrams;
  masq_ippkt k;
  if (masq_ippkt_parse(w->s->last, w->s->lastlen, &k, NULL) != 0 || !k.has_icmp) return 0;
  w->got = k;
  return k.icmp_type == w->type && k.icmp_code == w->code;
}

/* Sends pkt on s (resending, datagrams may be lost) until an ICMP
 * message of type/code comes back. */
static int send_expect_icmp(probe *p, pstream *s, const uint8_t *pkt, size_t n, uint8_t type,
                            uint8_t code, const char *what) {
  icmp_want w;
  memset(&w, 0, sizeof(w));
  w.s = s;
  w.after = s->ndgrams;
  w.type = type;
  w.code = code;
  for (int i = 0; i < ECHO_TRIES; i++) {
    int rv = masq_conn_send_datagram(p->c, s->sid, pkt, n);
    if (rv != 0) return fail(p, "%s: cannot send the packet: %d", what, rv);
    rv = pump_for(p, what, got_icmp, &w, now_ns() + ECHO_RETRY_NS);
    must_live(p, rv, what);
    if (rv == 1) return 0;
    if (s->closed) return fail(p, "%s: stream closed (0x%llx)", what, (unsigned long long)s->app_error);
  }
  return fail(p, "%s: no ICMP type %u code %u after %d tries (%u datagrams came back)", what,
              type, code, ECHO_TRIES, s->ndgrams);
}

/* --target's host as an address; a name is resolved here the way the
 * server resolves it (both namespaces share the test's hosts file). */
static int target_ip(probe *p, masq_ip *ip) {
  if (masq_ip_parse(p->thost, ip) == 0) return 0;
  struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res = NULL;
  if (getaddrinfo(p->thost, NULL, &hints, &res) != 0 || !res)
    return fail(p, "--target %s: neither an address nor a name that resolves", p->thost);
  masq_sockaddr sa;
  memset(&sa, 0, sizeof(sa));
  memcpy(&sa.u.ss, res->ai_addr, res->ai_addrlen);
  sa.len = res->ai_addrlen;
  uint16_t port;
  int rv = masq_sockaddr_to_ip(&sa, ip, &port);
  freeaddrinfo(res);
  return rv == 0 ? 0 : fail(p, "--target %s resolved to an unusable address", p->thost);
}

static int ping_through(probe *p, pstream *s, const masq_ip *dst, const char *what) {
  const masq_ip *src = assigned(s, dst->family);
  if (!src) return fail(p, "%s: no address of the target's family assigned", what);
  uint8_t pkt[128];
  size_t n = icmp_echo(pkt, src, dst, 32);
  return send_expect_icmp(p, s, pkt, n, dst->family == 4 ? 0 : 129, 0, what);
}

static int case_ip_ok(probe *p) {
  masq_ip dst;
  if (target_ip(p, &dst) != 0) return 1;
  pstream *s = open_ip(p, "*", "*");
  if (expect_ip_tunnel(p, s) != 0) return 1;
  const masq_ip *a4 = assigned(s, 4), *a6 = assigned(s, 6);
  if (!a4 || !a6) return fail(p, "expected one IPv4 and one IPv6 address, got %zu entries", s->nassign);
  /* Full tunnel (RFC 9484 §8.1): all of IPv4, then all of IPv6. */
  if (s->nroutes != 2 || s->routes[0].start.family != 4 || s->routes[1].start.family != 6 ||
      s->routes[0].ipproto || s->routes[1].ipproto || s->routes[0].end.a[0] != 0xff ||
      s->routes[1].end.a[15] != 0xff)
    return fail(p, "expected the two full-range routes, got %zu ranges", s->nroutes);
  if (ping_through(p, s, &dst, "an echo reply from the target") != 0) return 1;
  char b4[64], b6[64];
  return pass(p, "assigned %s and %s, full routes; %s answers pings through the tunnel",
              masq_ip_format(a4, b4, sizeof(b4)), masq_ip_format(a6, b6, sizeof(b6)), p->thost);
}

static int got_assigns(probe *p, void *arg) {
  pstream *s = arg;
  return s->assigns >= 2 || s->closed;
}

static int send_request(probe *p, pstream *s, uint64_t id, const masq_cidr *want) {
  masq_ip_assignment r = {id, *want};
  uint8_t buf[64];
  size_t n = masq_address_request_encode(buf, &r, 1);
  if (n == MASQ_IPCAP_INVALID) return fail(p, "probe bug: bad ADDRESS_REQUEST");
  int rv = masq_conn_send_capsule(p->c, s->sid, MASQ_CAPSULE_ADDRESS_REQUEST, buf, n);
  return rv == 0 ? 0 : fail(p, "cannot send ADDRESS_REQUEST: %d", rv);
}

static const masq_ip_assignment *answer_for(const pstream *s, uint64_t id) {
  for (size_t i = 0; i < s->nassign; i++)
    if (s->assign[i].request_id == id) return &s->assign[i];
  return NULL;
}

static int case_ip_request(probe *p) {
  pstream *s = open_ip(p, "*", "*");
  if (expect_ip_tunnel(p, s) != 0) return 1;
  const masq_ip *a4 = assigned(s, 4);
  if (!a4) return fail(p, "no IPv4 address assigned");
  /* Another address of the same /24 pool: RFC 9484 §4.7.2 says the
   * proxy honours a preference it can. */
  masq_cidr want = {*a4, 32};
  want.ip.a[3] ^= 0x40;
  s->assigns = 1; /* the next ADDRESS_ASSIGN makes 2 */
  if (send_request(p, s, 7, &want) != 0) return 1;
  must_live(p, pump_for(p, "the ADDRESS_ASSIGN answer", got_assigns, s, forever()),
            "the ADDRESS_ASSIGN answer");
  const masq_ip_assignment *a = answer_for(s, 7);
  char b[64], w[64];
  masq_ip_format(&want.ip, w, sizeof(w));
  if (!a || memcmp(a->prefix.ip.a, want.ip.a, 4) != 0 || a->prefix.plen != 32)
    return fail(p, "request 7 for %s not honoured (%s)", w,
                a ? masq_ip_format(&a->prefix.ip, b, sizeof(b)) : "no entry with ID 7");
  /* Outside every pool: answered, but not with the address asked for. */
  masq_cidr out = {{.family = 4, .a = {198, 18, 0, 1}}, 32};
  s->assigns = 1;
  if (send_request(p, s, 8, &out) != 0) return 1;
  must_live(p, pump_for(p, "the second answer", got_assigns, s, forever()), "the second answer");
  a = answer_for(s, 8);
  if (!a || a->prefix.ip.a[0] == 198)
    return fail(p, "request 8 for 198.18.0.1 not answered properly");
  masq_ip_format(&a->prefix.ip, b, sizeof(b));
  /* RFC 9484 §4.7.2: Request IDs MUST NOT be reused: the stream aborts. */
  if (send_request(p, s, 7, &want) != 0) return 1;
  must_live(p, pump_for(p, "the stream reset", got_close, s, forever()), "the stream reset");
  if (s->app_error != MASQ_H3_MESSAGE_ERROR)
    return fail(p, "reused request ID: expected H3_MESSAGE_ERROR, saw 0x%llx",
                (unsigned long long)s->app_error);
  return pass(p, "request for %s honoured; 198.18.0.1 answered with %s; reused ID aborts the "
              "stream", w, b);
}

static int case_ip_spoof(probe *p) {
  pstream *s = open_ip(p, "*", "*");
  if (expect_ip_tunnel(p, s) != 0) return 1;
  masq_ip src4 = {.family = 4, .a = {203, 0, 113, 9}}, dst4 = {.family = 4, .a = {192, 0, 2, 2}};
  masq_ip src6, dst6;
  masq_ip_parse("2001:db8:ffff::9", &src6);
  masq_ip_parse("2001:db8:2::2", &dst6);
  uint8_t pkt[128];
  size_t n = icmp_echo(pkt, &src6, &dst6, 16);
  /* RFC 9484 §7.2.1: ICMPv6 Destination Unreachable code 5. */
  if (send_expect_icmp(p, s, pkt, n, 1, 5, "ICMPv6 source-policy error") != 0) return 1;
  n = icmp_echo(pkt, &src4, &dst4, 16);
  if (send_expect_icmp(p, s, pkt, n, 3, 13, "ICMPv4 administratively prohibited") != 0) return 1;
  return pass(p, "spoofed sources refused with ICMPv6 1/5 and ICMPv4 3/13");
}

static int case_ip_scope(probe *p) {
  masq_ip dst;
  if (target_ip(p, &dst) != 0) return 1;
  /* ICMP for IPv4, ICMPv6 for IPv6. */
  uint8_t proto = dst.family == 4 ? MASQ_IPPROTO_ICMP : MASQ_IPPROTO_ICMPV6;
  pstream *s = open_ip(p, p->thost, dst.family == 4 ? "1" : "58");
  if (expect_ip_tunnel(p, s) != 0) return 1;
  if (s->nroutes != 1 || s->routes[0].ipproto != proto ||
      memcmp(s->routes[0].start.a, dst.a, 16) != 0 || memcmp(s->routes[0].end.a, dst.a, 16) != 0)
    return fail(p, "expected one route: %s..%s protocol %u, got %zu ranges", p->thost, p->thost,
                proto, s->nroutes);
  if (ping_through(p, s, &dst, "an echo reply inside the scope") != 0) return 1;
  const masq_ip *src = assigned(s, dst.family);
  uint8_t pkt[128];
  size_t n = udp_packet(pkt, src, &dst, 9);
  uint8_t t = dst.family == 4 ? 3 : 1, c = dst.family == 4 ? 13 : 1;
  if (send_expect_icmp(p, s, pkt, n, t, c, "UDP outside the scope's protocol refused") != 0)
    return 1;
  masq_ip other = dst;
  other.a[dst.family == 4 ? 3 : 15] ^= 1;
  n = icmp_echo(pkt, src, &other, 16);
  if (send_expect_icmp(p, s, pkt, n, t, c, "another destination refused") != 0) return 1;
  return pass(p, "scope %s/%u: one route, pings pass, UDP and other hosts refused with ICMP",
              p->thost, proto);
}

static int case_ip_bad_scope(probe *p) {
  static const char *const bad[][2] = {
      {"192.0.2.1/24", "*"}, {"*", "256"}, {"*", "-1"}, {"2001:db8::1/129", "*"}, {"bad..name", "*"}};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    pstream *s = open_ip(p, bad[i][0], bad[i][1]);
    if (expect_refusal(p, s, 400, NULL) != 0) return 1;
  }
  pstream *s = open_ip(p, "*", "*");
  if (expect_ip_tunnel(p, s) != 0) return 1;
  return pass(p, "5 malformed scopes answered 400; the connection still opens tunnels");
}

static int abort_with(probe *p, uint64_t type, const uint8_t *d, size_t n, const char *what) {
  pstream *s = open_ip(p, "*", "*");
  if (expect_ip_tunnel(p, s) != 0) return 1;
  int rv = masq_conn_send_capsule(p->c, s->sid, type, d, n);
  if (rv != 0) return fail(p, "cannot send %s: %d", what, rv);
  must_live(p, pump_for(p, "the stream reset", got_close, s, forever()), "the stream reset");
  if (s->app_error != MASQ_H3_MESSAGE_ERROR)
    return fail(p, "%s: expected H3_MESSAGE_ERROR, saw 0x%llx", what,
                (unsigned long long)s->app_error);
  return 0;
}

static int case_ip_bad_capsule(probe *p) {
  /* RFC 9484 §4.7.2: an ADDRESS_REQUEST without entries aborts. */
  if (abort_with(p, MASQ_CAPSULE_ADDRESS_REQUEST, NULL, 0, "empty ADDRESS_REQUEST") != 0) return 1;
  /* §4.7.3: an IPv6 range before an IPv4 one is out of order. */
  const uint8_t routes[] = {6, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                            0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0,
                            4, 10, 0, 0, 0, 10, 0, 0, 255, 0};
  if (abort_with(p, MASQ_CAPSULE_ROUTE_ADVERTISEMENT, routes, sizeof(routes),
                 "ill-ordered ROUTE_ADVERTISEMENT") != 0)
    return 1;
  /* §4.7.1: host bits set beyond the prefix length. */
  const uint8_t assign[] = {0, 4, 10, 0, 0, 1, 24};
  if (abort_with(p, MASQ_CAPSULE_ADDRESS_ASSIGN, assign, sizeof(assign),
                 "ADDRESS_ASSIGN with host bits") != 0)
    return 1;
  pstream *s = open_ip(p, "*", "*");
  if (expect_ip_tunnel(p, s) != 0) return 1;
  return pass(p, "3 malformed capsules each aborted only their stream (H3_MESSAGE_ERROR)");
}

static int case_ip_two(probe *p) {
  pstream *a = open_ip(p, "*", "*"), *b = open_ip(p, "*", "*");
  if (expect_ip_tunnel(p, a) != 0 || expect_ip_tunnel(p, b) != 0) return 1;
  const masq_ip *a4 = assigned(a, 4), *b4 = assigned(b, 4), *a6 = assigned(a, 6),
                *b6 = assigned(b, 6);
  if (!a4 || !b4 || !a6 || !b6) return fail(p, "both tunnels need both families");
  if (!memcmp(a4->a, b4->a, 4) || !memcmp(a6->a, b6->a, 16))
    return fail(p, "two tunnels got the same address");
  /* Client-to-client traffic is refused unless the server allows it. */
  uint8_t pkt[128];
  size_t n = icmp_echo(pkt, a4, b4, 16);
  if (send_expect_icmp(p, a, pkt, n, 3, 13, "client-to-client refused") != 0) return 1;
  return pass(p, "two tunnels, distinct addresses; client-to-client refused with ICMP 3/13");
}

/* ---- plain CONNECT cases (RFC 9114 §4.4) ----------------------------------- */

static pstream *open_tcp(probe *p, const char *authority) {
  pstream *s = ps_new(p);
  int64_t sid;
  while ((sid = masq_conn_submit_tcp_connect(p->c, authority, p->token, s)) ==
         MASQ_SESS_ERR_BLOCKED)
    must_live(p, pump_for(p, "stream credit", streams_left, NULL, forever()), "stream credit");
  if (sid < 0) {
    fail(p, "cannot submit a CONNECT: %lld", (long long)sid);
    finish(p, 1);
  }
  s->sid = sid;
  vlog(p, "stream %lld: CONNECT %s", (long long)sid, authority);
  return s;
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
  wait_answer(p, s);
  char a[96];
  if (s->status != 200) return fail(p, "expected 200, saw %s", answer_str(s, a, sizeof(a)));
  if (s->capsule_protocol) return fail(p, "a plain CONNECT's 200 carries capsule-protocol");
  uint8_t chunk[16384];
  uint64_t sent = 0;
  s->expectlen = TCP_ECHO_BYTES;
  while (sent < TCP_ECHO_BYTES) {
    size_t n = sizeof(chunk);
    if (n > TCP_ECHO_BYTES - sent) n = (size_t)(TCP_ECHO_BYTES - sent);
    for (size_t i = 0; i < n; i++) chunk[i] = pattern_at(sent + i);
    long took = masq_conn_stream_send(p->c, s->sid, chunk, n);
    if (took < 0) return fail(p, "stream send failed: %ld", took);
    sent += (uint64_t)took;
    if ((size_t)took < n)
      must_live(p, pump_for(p, "send room", NULL, NULL, now_ns() + 2 * NS_PER_MS), "send room");
    if (s->closed) return fail(p, "stream closed (0x%llx) while sending", (unsigned long long)s->app_error);
  }
  masq_conn_end_stream(p->c, s->sid);
  must_live(p, pump_for(p, "the echo", got_bytes, s, forever()), "the echo");
  if (s->rx_bytes != TCP_ECHO_BYTES || s->rx_bad)
    return fail(p, "echo: %llu bytes back, %llu wrong", (unsigned long long)s->rx_bytes,
                (unsigned long long)s->rx_bad);
  must_live(p, pump_for(p, "the target's FIN", got_close, s, forever()), "the target's FIN");
  if (!s->ended || s->app_error != MASQ_H3_NO_ERROR)
    return fail(p, "expected a clean close after FIN, saw end=%d error 0x%llx", s->ended,
                (unsigned long long)s->app_error);
  return pass(p, "4 MiB echoed intact through a plain CONNECT; FIN both ways");
}

static int case_tcp_refused(probe *p) {
  pstream *s = open_tcp(p, p->target);
  if (expect_refusal(p, s, 502, "connection_refused") != 0) return 1;
  return pass(p, "closed port: 502, proxy-status: %s", s->proxy_status);
}

static int case_tcp_timeout(probe *p) {
  pstream *s = open_tcp(p, p->target);
  if (expect_refusal(p, s, 504, "connection_timeout") != 0) return 1;
  return pass(p, "silent target: 504, proxy-status: %s", s->proxy_status);
}

static int case_tcp_denied(probe *p) {
  pstream *s = open_tcp(p, p->target);
  if (expect_refusal(p, s, 403, "destination_ip_prohibited") != 0) return 1;
  return pass(p, "%s: 403", p->target);
}

static int case_tcp_bad(probe *p) {
  pstream *s = open_tcp(p, "no-port-here");
  if (expect_refusal(p, s, 400, NULL) != 0) return 1;
  char auth[300];
  snprintf(auth, sizeof(auth), "Bearer %s", p->token ? p->token : "");
  /* RFC 9114 §4.4: :scheme and :path MUST be omitted from a CONNECT. */
  nghttp3_nv nva[] = {NV(":method", "CONNECT"), NV(":authority", p->target),
                      NV(":path", "/"), NV("proxy-authorization", auth)};
  pstream *r = open_raw(p, nva, sizeof(nva) / sizeof(nva[0]));
  wait_answer(p, r);
  /* Malformed (RFC 9114 §4.1.2): a 400, or nghttp3's own stream error. */
  if (r->status != 400 && !(r->status == 0 && r->app_error == MASQ_H3_MESSAGE_ERROR)) {
    char a[96];
    return fail(p, ":path on a CONNECT: expected 400 or H3_MESSAGE_ERROR, saw %s",
                answer_str(r, a, sizeof(a)));
  }
  pstream *t = open_tcp(p, p->target);
  wait_answer(p, t);
  if (t->status != 200) return fail(p, "a good CONNECT after the bad ones got %d", t->status);
  return pass(p, "no port: 400; :path on a CONNECT: %s; the connection still works",
              r->status == 400 ? "400" : "H3_MESSAGE_ERROR");
}

/* The target resets the connection: the stream is reset with
 * H3_CONNECT_ERROR (RFC 9114 §4.4). */
static int case_tcp_reset(probe *p) {
  pstream *s = open_tcp(p, p->target);
  wait_answer(p, s);
  if (s->status != 200) return fail(p, "expected 200, saw %d", s->status);
  const uint8_t hello[] = "reset me";
  masq_conn_stream_send(p->c, s->sid, hello, sizeof(hello));
  must_live(p, pump_for(p, "the stream reset", got_close, s, forever()), "the stream reset");
  if (s->app_error != MASQ_H3_CONNECT_ERROR)
    return fail(p, "expected H3_CONNECT_ERROR (0x10f), saw 0x%llx",
                (unsigned long long)s->app_error);
  return pass(p, "target RST: stream reset with H3_CONNECT_ERROR");
}

/* Uploads to a target that never reads: the proxy must stop taking bytes
 * once the stream window and socket buffers are full (nothing grows
 * without bound), and the connection must stay usable. */
static int case_tcp_stall(probe *p) {
  pstream *s = open_tcp(p, p->target);
  wait_answer(p, s);
  if (s->status != 200) return fail(p, "expected 200, saw %d", s->status);
  static uint8_t chunk[65536];
  uint64_t sent = 0, last_progress = now_ns();
  while (now_ns() - last_progress < 1500 * NS_PER_MS) {
    long took = masq_conn_stream_send(p->c, s->sid, chunk, sizeof(chunk));
    if (took < 0 || s->closed) return fail(p, "stream failed while uploading");
    if (took > 0) {
      sent += (uint64_t)took;
      last_progress = now_ns();
    }
    if (sent > (256ull << 20)) return fail(p, "256 MiB taken by a target that never reads");
    must_live(p, pump_for(p, "upload progress", NULL, NULL, now_ns() + 5 * NS_PER_MS),
              "upload progress");
  }
  if (sent == 0) return fail(p, "nothing could be sent at all");
  masq_conn_reset_stream(p->c, s->sid, MASQ_H3_REQUEST_CANCELLED);
  pstream *t = open_tcp(p, p->target);
  wait_answer(p, t);
  if (t->status != 200) return fail(p, "no new flow after the stall (%d)", t->status);
  return pass(p, "upload stalled after %.1f MiB (window + socket buffers); connection usable",
              (double)sent / (1 << 20));
}

typedef struct pcase {
  const char *name;
  int (*run)(probe *p);
  int needs_target;
} pcase;

static const pcase cases[] = {
    {"ok", case_ok, 1},
    {"no-token", case_no_token, 1},
    {"wrong-token", case_wrong_token, 1},
    {"auth-header", case_auth_header, 1},
    {"wrong-protocol", case_wrong_protocol, 1},
    {"wrong-method", case_wrong_method, 1},
    {"no-capsule-protocol", case_no_capsule_protocol, 1},
    {"bad-port", case_bad_port, 1},
    {"bad-host", case_bad_host, 1},
    {"wrong-path", case_wrong_path, 0},
    {"missing-pseudo", case_missing_pseudo, 1},
    {"denied-target", case_denied_target, 1},
    {"malformed-capsule", case_malformed_capsule, 1},
    {"unknown-capsule", case_unknown_capsule, 1},
    {"unknown-context", case_unknown_context, 1},
    {"bad-datagram", case_bad_datagram, 0},
    {"oversize", case_oversize, 1},
    {"many", case_many, 1},
    {"early-fin", case_early_fin, 1},
    {"capsule-fallback", case_capsule_fallback, 1},
    {"ip-ok", case_ip_ok, 1},
    {"ip-request", case_ip_request, 0},
    {"ip-spoof", case_ip_spoof, 0},
    {"ip-scope", case_ip_scope, 1},
    {"ip-bad-scope", case_ip_bad_scope, 0},
    {"ip-bad-capsule", case_ip_bad_capsule, 0},
    {"ip-two", case_ip_two, 0},
    {"tcp-echo", case_tcp_echo, 1},
    {"tcp-refused", case_tcp_refused, 1},
    {"tcp-timeout", case_tcp_timeout, 1},
    {"tcp-denied", case_tcp_denied, 1},
    {"tcp-bad", case_tcp_bad, 1},
    {"tcp-reset", case_tcp_reset, 1},
    {"tcp-stall", case_tcp_stall, 1},
};

/* ---- setup ---------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr, "usage: h3probe --proxy IP:PORT --ca CERT --sni NAME [--token T] --case NAME "
                  "[--target HOST:PORT] [-v]\ncases:");
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    fprintf(stderr, " %s", cases[i].name);
  fputc('\n', stderr);
  exit(2);
}

static void parse_args(probe *p, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-v") == 0) {
      p->verbose = 1;
      continue;
    }
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (strcmp(a, "--proxy") == 0) p->proxy = v;
    else if (strcmp(a, "--ca") == 0) p->ca = v;
    else if (strcmp(a, "--sni") == 0) p->sni = v;
    else if (strcmp(a, "--token") == 0) p->token = v;
    else if (strcmp(a, "--case") == 0) p->casename = v;
    else if (strcmp(a, "--target") == 0) p->target = v;
    else usage();
  }
  if (!p->proxy || !p->ca || !p->sni || !p->casename) usage();
}

static const pcase *find_case(probe *p) {
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    if (strcmp(cases[i].name, p->casename) == 0) return &cases[i];
  fail(p, "unknown case");
  finish(p, 2);
}

static void setup_target(probe *p, const pcase *pc) {
  if (!p->target) {
    if (!pc->needs_target) return;
    fail(p, "this case needs --target HOST:PORT");
    finish(p, 2);
  }
  uint16_t port;
  if (masq_hostport_parse(p->target, p->thost, sizeof(p->thost), &port, -1, 0) != 0) {
    fail(p, "--target %s is not HOST:PORT", p->target);
    finish(p, 2);
  }
  snprintf(p->tport, sizeof(p->tport), "%u", port);
}

static void setup_conn(probe *p) {
  char err[512], url[300];
  snprintf(url, sizeof(url), "https://%s", p->proxy);
  if (masq_sockaddr_parse(p->proxy, &p->remote) != 0 ||
      masq_proxy_url_parse(url, &p->url, err, sizeof(err)) != 0) {
    fail(p, "--proxy %s is not a numeric IP:PORT", p->proxy);
    finish(p, 2);
  }
  snprintf(p->authority, sizeof(p->authority), "%s", p->url.authority);
  p->creds = masq_tls_client_creds(p->ca, 0, err, sizeof(err));
  if (!p->creds) {
    fail(p, "%s", err);
    finish(p, 2);
  }
  p->fd = masq_udp_connect(&p->remote);
  p->local.len = sizeof(p->local.u.ss);
  if (p->fd < 0 || getsockname(p->fd, &p->local.u.sa, &p->local.len) != 0) {
    fail(p, "cannot open a UDP socket: %s", strerror(errno));
    finish(p, 2);
  }
  p->cfg.creds = p->creds;
  p->cfg.sni = p->sni;
  p->cfg.idle_timeout = 30 * NGTCP2_SECONDS;
  ngtcp2_addr la = {&p->local.u.sa, p->local.len}, ra = {&p->remote.u.sa, p->remote.len};
  p->c = masq_conn_client_new(&p->cfg, &probe_callbacks, p, &la, &ra, now_ns(), err,
                              sizeof(err));
  if (!p->c) {
    fail(p, "%s", err);
    finish(p, 2);
  }
}

static int is_ready(probe *p, void *arg) { return p->ready; }

int main(int argc, char **argv) {
  probe *p = &P;
  p->fd = -1;
  setvbuf(stdout, NULL, _IOLBF, 0);
  parse_args(p, argc, argv);
  const pcase *pc = find_case(p);
  setup_target(p, pc);
  p->deadline = now_ns() + PROBE_BUDGET_NS;
  p->cfg.no_h3_datagram = pc->run == case_capsule_fallback;
  setup_conn(p);
  if (pump_for(p, "the connection (handshake and SETTINGS)", is_ready, NULL, forever()) != 1) {
    fail(p, "cannot connect to %s: %s", p->proxy, masq_conn_error_str(p->c));
    finish(p, 2);
  }
  vlog(p, "connected; running case %s", pc->name);
  finish(p, pc->run(p));
}
