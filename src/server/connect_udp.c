/* CONNECT-UDP (RFC 9298) on the server: validate the request, check the
 * bearer token, resolve the target off the loop, apply the target policy
 * to the resolved address, open one connected UDP socket per tunnel, and
 * relay payloads both ways until either side ends it or it idles out. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/log.h"
#include "proto/request.h"
#include "proto/uritemplate.h"
#include "proto/wire.h"
#include "server/internal.h"

/* Reads per wakeup from one target socket, so one busy tunnel cannot
 * starve the others. */
#define UDP_READ_BATCH 32

typedef enum { T_RESOLVING, T_OPEN, T_CLOSING } tunnel_state;

typedef struct tunnel {
  int kind; /* SRV_TUNNEL_UDP: first, see srv_tunnel */
  sconn *sc;
  int64_t sid;
  tunnel_state state;
  masq_resolve_req *rreq;
  int fd;
  masq_io io;
  masq_timer idle;
  uint64_t last_active;
  char host[MASQ_MAX_HOST + 1];
  uint16_t port;
  masq_sockaddr target;
} tunnel;

static uint64_t idle_ns(const srv *s) { return (uint64_t)s->o->idle_timeout * 1000000000ull; }

/* RFC 9298 §3: target_host is a DNS name or an IP literal, target_port
 * an integer 1..65535. Returns NULL if fine, else why not. */
static const char *check_target(const char *host, const char *port, uint16_t *portnum) {
  masq_ip ip;
  if (!host[0] || !port[0]) return "empty target_host or target_port";
  if (masq_port_parse(port, strlen(port), 0, portnum) != 0)
    return "target_port is not a number 1-65535";
  if (masq_target_host_parse(host, &ip) < 0)
    return "target_host is neither a DNS name nor an IP literal";
  return NULL;
}

/* ---- the tunnel -------------------------------------------------------- */

static void txq_forget(srv *s, const tunnel *t);

static void tunnel_close_socket(tunnel *t) {
  srv *s = t->sc->s;
  masq_timer_stop(s->loop, &t->idle);
  if (t->fd >= 0) {
    txq_forget(s, t);
    masq_io_stop(s->loop, &t->io);
    close(t->fd);
    t->fd = -1;
  }
}

/* Ends the tunnel from our side: RFC 9298 §3 ties the socket to the
 * stream, so closing one closes the other. */
static void tunnel_end(tunnel *t, const char *why) {
  if (t->state == T_CLOSING) return;
  t->state = T_CLOSING;
  tunnel_close_socket(t);
  masq_log(MASQ_LOG_DEBUG, "tunnel to %s:%u on stream %lld ended: %s", t->host, t->port,
           (long long)t->sid, why);
  masq_conn_end_stream(t->sc->c, t->sid);
  masq_srv_mark_dirty(t->sc);
}

static void on_target_readable(masq_loop *loop, masq_io *io, uint32_t events) {
  tunnel *t = io->ud;
  srv *s = t->sc->s;
  for (int i = 0; i < UDP_READ_BATCH && t->fd >= 0; i++) {
    size_t seg;
    ssize_t n = masq_udp_recv(t->fd, s->rxbuf, sizeof(s->rxbuf), NULL, &seg);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EMSGSIZE) { /* cannot be carried whole: dropped, counted */
        s->stats.udp_rx_drop++;
        continue;
      }
      /* E.g. ECONNREFUSED from an ICMP port unreachable: RFC 9298 §3
       * says the stream must close when the socket is no longer usable. */
      tunnel_end(t, strerror(errno));
      return;
    }
    t->last_active = masq_now();
    for (size_t off = 0; off < (size_t)n; off += seg) {
      size_t len = (size_t)n - off < seg ? (size_t)n - off : seg;
      if (masq_conn_send_datagram(t->sc->c, t->sid, s->rxbuf + off, len) == 0)
        s->stats.udp_rx++;
      else
        s->stats.udp_rx_drop++;
    }
  }
  masq_srv_mark_dirty(t->sc);
}

static void on_idle(masq_loop *loop, masq_timer *tm) {
  tunnel *t = tm->ud;
  uint64_t deadline = t->last_active + idle_ns(t->sc->s);
  if (masq_now() < deadline) {
    masq_timer_set(loop, tm, deadline); /* activity since: look again later */
    return;
  }
  tunnel_end(t, "idle timeout");
}

/* Opens the tunnel's socket to the first allowed address that has a
 * route (a name may resolve to IPv6 on a host without IPv6, say), then
 * answers 2xx. */
static void tunnel_open(tunnel *t, const masq_ip *addrs, size_t n) {
  srv *s = t->sc->s;
  int err = 0, denied = 0;
  for (size_t i = 0; i < n && t->fd < 0; i++) {
    /* The policy applies to the addresses, not the name, so a name that
     * points inside the deny list cannot smuggle a request past it. */
    if (!masq_policy_check(&s->policy, &addrs[i])) {
      denied++;
      continue;
    }
    masq_sockaddr_from_ip(&t->target, &addrs[i], t->port);
    t->fd = masq_udp_connect(&t->target);
    if (t->fd < 0) err = errno;
  }
  t->state = T_CLOSING;
  if (t->fd < 0) {
    if (denied == (int)n)
      masq_srv_refuse(t->sc, t->sid, 403, "destination_ip_prohibited",
             "the target's addresses are not allowed by this proxy's policy");
    else if (err == ENETUNREACH || err == EHOSTUNREACH)
      masq_srv_refuse(t->sc, t->sid, 502, "destination_ip_unroutable", strerror(err));
    else
      masq_srv_refuse(t->sc, t->sid, 502, "proxy_internal_error", strerror(err));
    return;
  }
  if (masq_io_start(s->loop, &t->io, t->fd, MASQ_EV_READ, on_target_readable, t) != 0) {
    masq_srv_refuse(t->sc, t->sid, 500, "proxy_internal_error", "event loop registration failed");
    tunnel_close_socket(t);
    return;
  }
  t->state = T_OPEN;
  t->last_active = masq_now();
  masq_timer_set(s->loop, &t->idle, t->last_active + idle_ns(s));
  /* The 2xx goes out only now that the socket exists (RFC 9298 §3). */
  masq_conn_submit_response(t->sc->c, t->sid, 200, NULL, NULL, NULL, t);
  masq_srv_mark_dirty(t->sc);
  s->stats.tunnels_opened++;
  char a[64];
  masq_log(MASQ_LOG_DEBUG, "tunnel on stream %lld to %s (%s)", (long long)t->sid,
           masq_sockaddr_str(&t->target, a, sizeof(a)), t->host);
}

static void on_resolved(void *ud, int status, const masq_ip *addrs, size_t n) {
  tunnel *t = ud;
  t->rreq = NULL;
  if (t->state == T_CLOSING) {
    /* The client gave up (FIN) while we were resolving: no tunnel. */
    masq_conn_reset_stream(t->sc->c, t->sid, MASQ_H3_REQUEST_CANCELLED);
    masq_srv_mark_dirty(t->sc);
    return;
  }
  if (status != 0 || n == 0) {
    masq_srv_refuse_dns(t->sc, t->sid, status);
    t->state = T_CLOSING;
    return;
  }
  tunnel_open(t, addrs, n);
}

/* ---- session callbacks ------------------------------------------------ */

static int match_target(const srv *s, const masq_reqhdrs *h, char *host, size_t hcap,
                        char *port, size_t pcap) {
  masq_tmatch vars[2] = {{"target_host", host, hcap, 0}, {"target_port", port, pcap, 0}};
  if (masq_uritemplate_match(s->o->udp_template, h->path.v, vars, 2) != 0) return -1;
  return vars[0].found && vars[1].found ? 0 : -1;
}

void masq_udp_on_request(masq_conn *c, void *ud, int64_t sid, const masq_reqhdrs *h) {
  sconn *sc = ud;
  srv *s = sc->s;
  masq_reqcheck chk;
  masq_log(MASQ_LOG_DEBUG, "request on stream %lld: %s %s %s", (long long)sid, h->method.v,
           h->protocol.v, h->path.v);
  masq_reqcheck_connect(h, MASQ_PROTO_CONNECT_UDP, &chk);
  if (chk.status) {
    masq_srv_refuse(sc, sid, chk.status, chk.error, chk.detail);
    return;
  }
  if (!masq_srv_token_ok(s, h)) {
    s->stats.auth_failures++;
    masq_srv_refuse(sc, sid, 407, "http_request_denied", "missing or wrong bearer token");
    return;
  }
  char host[MASQ_MAX_HOST + 1], port[8];
  if (match_target(s, h, host, sizeof(host), port, sizeof(port)) != 0) {
    masq_srv_refuse(sc, sid, 404, "http_request_error", "path does not match the CONNECT-UDP template");
    return;
  }
  uint16_t portnum = 0;
  const char *bad = check_target(host, port, &portnum);
  if (bad) {
    masq_srv_refuse(sc, sid, 400, "http_request_error", bad);
    return;
  }
  tunnel *t = calloc(1, sizeof(*t));
  if (!t) {
    masq_srv_refuse(sc, sid, 503, "proxy_internal_error", "out of memory");
    return;
  }
  t->kind = SRV_TUNNEL_UDP;
  t->sc = sc;
  t->sid = sid;
  t->fd = -1;
  t->port = portnum;
  memcpy(t->host, host, strlen(host) + 1);
  masq_timer_init(&t->idle, on_idle, t);
  /* Own the stream now so a close during resolution frees t. */
  masq_conn_stream_set_user(c, sid, t);
  sc->ntunnels++;
  t->state = T_RESOLVING;
  t->rreq = masq_resolve(s->resolver, host, on_resolved, t);
  if (!t->rreq) {
    masq_srv_refuse(sc, sid, 503, "proxy_internal_error", "too many name lookups in progress");
    t->state = T_CLOSING;
  }
}

/* ---- datagrams to targets: staged, then sent in GSO runs --------------- */

/* Sends one run: n datagrams for t at buf[off..], all seg bytes but the
 * last, which may be shorter (what UDP_SEGMENT accepts). */
static void txq_send_run(srv *s, tunnel *t, uint32_t off, size_t len, size_t seg, size_t n) {
  /* DF is set on the socket, so an over-MTU payload fails with EMSGSIZE
   * and is dropped rather than fragmented (RFC 9298 §3). */
  if (masq_udp_send(t->fd, s->udp_txq.buf + off, len, n > 1 ? seg : 0, NULL) == 0) {
    s->stats.udp_tx += n;
    s->stats.udp_tx_sends++;
    return;
  }
  s->stats.udp_tx_drop += n;
  if (errno == ECONNREFUSED) tunnel_end(t, "target port unreachable");
}

void masq_udp_flush(srv *s) {
  srv_udp_txq *q = &s->udp_txq;
  q->flushing = 1;
  for (size_t i = 0; i < q->n;) {
    tunnel *t = q->ent[i].t;
    if (!t) {
      i++;
      continue;
    }
    uint32_t off = q->ent[i].off;
    size_t seg = q->ent[i].len, len = seg, j = i + 1;
    /* The kernel takes at most 64 segments per GSO send (UDP_MAX_SEGMENTS). */
    while (j < q->n && j - i < 64 && q->ent[j].t == t && q->ent[j - 1].len == seg &&
           q->ent[j].len <= seg && len + q->ent[j].len <= 65507) {
      len += q->ent[j].len;
      j++;
    }
    txq_send_run(s, t, off, len, seg, j - i);
    i = j;
  }
  q->n = q->used = 0;
  q->flushing = 0;
}

/* A tunnel about to close: what it staged goes out first, or, if it
 * closes during a flush (a refused send), is forgotten. */
static void txq_forget(srv *s, const tunnel *t) {
  srv_udp_txq *q = &s->udp_txq;
  size_t i;
  for (i = 0; i < q->n && q->ent[i].t != t; i++) {
  }
  if (i == q->n) return;
  if (!q->flushing) {
    masq_udp_flush(s);
    return;
  }
  for (; i < q->n; i++)
    if (q->ent[i].t == t) {
      q->ent[i].t = NULL;
      s->stats.udp_tx_drop++;
    }
}

void masq_udp_on_datagram(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *p,
                          size_t n) {
  tunnel *t = sud;
  srv *s = ((sconn *)ud)->s;
  srv_udp_txq *q = &s->udp_txq;
  if (!t || t->state != T_OPEN) return;
  t->last_active = masq_now();
  if (q->n == SRV_UDP_TXQ || q->used + n > sizeof(q->buf)) masq_udp_flush(s);
  if (n > sizeof(q->buf)) { /* cannot happen: QUIC packets are smaller */
    s->stats.udp_tx_drop++;
    return;
  }
  memcpy(q->buf + q->used, p, n);
  q->ent[q->n].t = t;
  q->ent[q->n].off = (uint32_t)q->used;
  q->ent[q->n].len = (uint32_t)n;
  q->n++;
  q->used += n;
}

void masq_udp_on_stream_end(masq_conn *c, void *ud, int64_t sid, void *sud) {
  tunnel *t = sud;
  if (t) tunnel_end(t, "client closed the stream");
}

void masq_udp_on_stream_close(masq_conn *c, void *ud, int64_t sid, void *sud,
                              uint64_t app_error) {
  tunnel *t = sud;
  if (!t) return;
  if (t->rreq) masq_resolve_cancel(t->rreq);
  tunnel_close_socket(t);
  t->sc->ntunnels--;
  free(t);
}
