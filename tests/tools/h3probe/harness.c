/* h3probe's harness: outcome report, session callbacks that record what
 * each request stream sees, connection set-up and the event loop. */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/tls.h"

uint64_t hp_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t hp_forever(void) { return UINT64_MAX; }

void hp_vlog(probe *p, const char *fmt, ...) {
  if (!p->verbose) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "h3probe: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void set_msg(probe *p, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void set_msg(probe *p, const char *fmt, va_list ap) {
  vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
}

int hp_fail(probe *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_msg(p, fmt, ap);
  va_end(ap);
  return 1;
}

int hp_pass(probe *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_msg(p, fmt, ap);
  va_end(ap);
  return 0;
}

void hp_finish(probe *p, int code) {
  printf("%s %s: %s\n", code == 0 ? "PASS" : code == 1 ? "FAIL" : "ERROR",
         p->casename ? p->casename : "?", p->msg);
  fflush(stdout);
  if (p->c) {
    /* A clean CONNECTION_CLOSE, so the server frees the connection now
     * rather than at its idle timeout. */
    masq_conn_close(p->c, MASQ_H3_NO_ERROR, hp_now_ns());
    masq_conn_free(p->c);
  }
  if (p->creds) gnutls_certificate_free_credentials(p->creds);
  if (p->fd >= 0) close(p->fd);
  exit(code);
}

uint8_t hp_pattern_at(uint64_t off) { return (uint8_t)((off * 7 + (off >> 11)) & 0xff); }

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
  hp_vlog(ud, "stream %lld: status %d%s%s%s", (long long)sid, s->status,
          s->capsule_protocol ? ", capsule-protocol" : "",
          s->proxy_status[0] ? ", proxy-status: " : "", s->proxy_status);
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
  hp_vlog(ud, "stream %lld: datagram of %zu bytes (%s)", (long long)sid, n,
          n == s->expectlen && memcmp(d, s->expect, n) == 0 ? "expected" : "unexpected");
}

static void on_stream_end(masq_conn *c, void *ud, int64_t sid, void *sud) {
  pstream *s = sud;
  if (s) s->ended = 1;
  hp_vlog(ud, "stream %lld: peer FIN", (long long)sid);
}

static void on_stream_close(masq_conn *c, void *ud, int64_t sid, void *sud, uint64_t err) {
  pstream *s = sud;
  if (!s) return;
  s->closed = 1;
  s->app_error = err;
  hp_vlog(ud, "stream %lld: closed, app error 0x%llx", (long long)sid, (unsigned long long)err);
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
  hp_vlog(ud, "stream %lld: capsule 0x%llx of %zu bytes%s%s", (long long)sid,
          (unsigned long long)type, n, err ? ": " : "", err ? err : "");
  return rv == 0 ? 0 : -1;
}

/* Plain CONNECT bytes, checked against the pattern as they come. */
static void on_data(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *d, size_t n) {
  pstream *s = sud;
  if (s) {
    for (size_t i = 0; i < n; i++)
      if (d[i] != hp_pattern_at(s->rx_bytes + i)) s->rx_bad++;
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
      if (masq_conn_read(p->c, &path, p->rxbuf + off, len, hp_now_ns()) != 0) return;
    }
  }
}

/* Sends what is due, then sleeps in poll() until the socket is readable
 * or the next of the connection's timer, `until` and the budget; reads,
 * and runs the timer if it expired. */
static void step(probe *p, uint64_t until) {
  uint64_t now = hp_now_ns();
  if (masq_conn_write(p->c, now) != 0) return;
  uint64_t wake = masq_conn_expiry(p->c);
  if (wake > until) wake = until;
  if (wake > p->deadline) wake = p->deadline;
  int ms = wake <= now ? 0 : (int)((wake - now + NS_PER_MS - 1) / NS_PER_MS);
  struct pollfd pfd = {p->fd, POLLIN, 0};
  if (poll(&pfd, 1, ms) > 0) read_socket(p);
  now = hp_now_ns();
  if (!masq_conn_is_dead(p->c) && masq_conn_expiry(p->c) <= now) masq_conn_on_timer(p->c, now);
}

static int pump(probe *p, hp_cond_fn cond, void *arg, uint64_t until) {
  for (;;) {
    if (cond && cond(p, arg)) return 1;
    if (masq_conn_is_dead(p->c)) return -1;
    uint64_t now = hp_now_ns();
    if (now >= p->deadline) {
      hp_fail(p, "timeout (waiting for %s)", p->waiting ? p->waiting : "?");
      hp_finish(p, 1);
    }
    if (now >= until) return 0;
    step(p, until);
  }
}

int hp_pump_for(probe *p, const char *what, hp_cond_fn cond, void *arg, uint64_t until) {
  p->waiting = what;
  int rv = pump(p, cond, arg, until);
  p->waiting = NULL;
  return rv;
}

static void must_live(probe *p, int rv, const char *what) {
  if (rv >= 0) return;
  const ngtcp2_ccerr *e = ngtcp2_conn_get_ccerr(p->c->qc);
  hp_fail(p, "connection died while waiting for %s: %s (peer close: %s 0x%llx)", what,
          masq_conn_error_str(p->c),
          e->type == NGTCP2_CCERR_TYPE_APPLICATION ? "application" : "transport",
          (unsigned long long)e->error_code);
  hp_finish(p, 1);
}

int hp_await(probe *p, const char *what, hp_cond_fn cond, void *arg, uint64_t until) {
  int rv = hp_pump_for(p, what, cond, arg, until);
  must_live(p, rv, what);
  return rv;
}

/* ---- set-up --------------------------------------------------------------- */

static void setup_error(probe *p, const char *msg) {
  hp_fail(p, "%s", msg);
  hp_finish(p, 2);
}

static void parse_proxy(probe *p) {
  char err[512], url[300];
  snprintf(url, sizeof(url), "https://%s", p->proxy);
  if (masq_sockaddr_parse(p->proxy, &p->remote) != 0 ||
      masq_proxy_url_parse(url, &p->url, err, sizeof(err)) != 0) {
    hp_fail(p, "--proxy %s is not a numeric IP:PORT", p->proxy);
    hp_finish(p, 2);
  }
  snprintf(p->authority, sizeof(p->authority), "%s", p->url.authority);
}

static void open_socket(probe *p) {
  p->fd = masq_udp_connect(&p->remote);
  p->local.len = sizeof(p->local.u.ss);
  if (p->fd < 0 || getsockname(p->fd, &p->local.u.sa, &p->local.len) != 0) {
    hp_fail(p, "cannot open a UDP socket: %s", strerror(errno));
    hp_finish(p, 2);
  }
}

static void open_conn(probe *p) {
  char err[512];
  p->cfg.creds = p->creds;
  p->cfg.sni = p->sni;
  p->cfg.idle_timeout = 30 * NGTCP2_SECONDS;
  ngtcp2_addr la = {&p->local.u.sa, p->local.len}, ra = {&p->remote.u.sa, p->remote.len};
  p->c = masq_conn_client_new(&p->cfg, &probe_callbacks, p, &la, &ra, hp_now_ns(), err,
                              sizeof(err));
  if (!p->c) setup_error(p, err);
}

static int is_ready(probe *p, void *arg) { return p->ready; }

void hp_connect(probe *p) {
  char err[512];
  parse_proxy(p);
  p->creds = masq_tls_client_creds(p->ca, 0, err, sizeof(err));
  if (!p->creds) setup_error(p, err);
  open_socket(p);
  open_conn(p);
  if (hp_pump_for(p, "the connection (handshake and SETTINGS)", is_ready, NULL, hp_forever()) !=
      1) {
    hp_fail(p, "cannot connect to %s: %s", p->proxy, masq_conn_error_str(p->c));
    hp_finish(p, 2);
  }
}
