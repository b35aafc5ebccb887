/* Plain CONNECT (RFC 9114 §4.4) on the server: a TCP connection to the
 * :authority, under the same token and target policy as the MASQUE
 * handlers, and the bytes of the request stream relayed to and from it.
 *
 * Memory per flow stays bounded by the windows: bytes from the client
 * are consumed (returning QUIC flow-control credit) only once the target
 * socket took them, so a target that stops reading stops the client;
 * bytes from the target are read only as far as the stream's send
 * buffer has room, so a client that stops reading stops the target. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/log.h"
#include "proto/request.h"
#include "proto/wire.h"
#include "server/internal.h"

#define ADDRS_MAX 8
/* Socket reads per wakeup (each at most 64 KiB), so one fast target
 * cannot starve the others. */
#define READ_BATCH 4

typedef enum { F_RESOLVING, F_CONNECTING, F_OPEN, F_DONE } flow_state;

typedef struct tcpflow {
  int kind; /* SRV_TUNNEL_TCP: first, see srv_tunnel */
  sconn *sc;
  int64_t sid;
  flow_state state;
  masq_resolve_req *rreq;
  masq_ip addrs[ADDRS_MAX];
  size_t naddrs, next;
  int denied, last_err;
  int fd;
  masq_io io;
  uint32_t events;
  masq_timer timer; /* connect timeout, then idle timeout */
  uint64_t last_active;
  uint16_t port;
  /* Client bytes the target has not taken yet (unconsumed credit). */
  uint8_t *wbuf;
  size_t wcap, whead, wlen;
  unsigned client_fin : 1;   /* stream FIN seen: shut the socket's write side */
  unsigned target_eof : 1;   /* socket EOF: stream FIN sent */
  unsigned read_paused : 1;  /* stream send buffer full */
  unsigned shut_wr : 1;
  unsigned hup : 1;          /* hung up: no longer in epoll */
  unsigned pending : 1;      /* on srv.tcp_pending */
  struct tcpflow *pnext, *pprev;
  char host[MASQ_MAX_HOST + 1];
} tcpflow;

static uint64_t secs(unsigned s) { return (uint64_t)s * 1000000000ull; }

/* ---- socket events -------------------------------------------------------- */

static void set_events(tcpflow *f, uint32_t ev) {
  if (f->fd < 0 || f->hup || ev == f->events) return;
  if (masq_io_update(f->sc->s->loop, &f->io, ev) == 0) f->events = ev;
}

static void want(tcpflow *f) {
  uint32_t ev = 0;
  if (f->state == F_CONNECTING) ev = MASQ_EV_WRITE;
  else if (f->state == F_OPEN) {
    if (!f->target_eof && !f->read_paused) ev |= MASQ_EV_READ;
    if (f->wlen) ev |= MASQ_EV_WRITE;
  }
  set_events(f, ev);
}

static void close_socket(tcpflow *f, int rst) {
  if (f->fd < 0) return;
  if (rst) { /* an abort on the stream becomes an RST to the target */
    struct linger l = {1, 0};
    setsockopt(f->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  }
  if (!f->hup) masq_io_stop(f->sc->s->loop, &f->io);
  close(f->fd);
  f->fd = -1;
  f->events = 0;
}

/* Ends the flow after a TCP error: RFC 9114 §4.4 says H3_CONNECT_ERROR. */
static void flow_abort(tcpflow *f, const char *why) {
  masq_log(MASQ_LOG_DEBUG, "TCP flow to %s:%u on stream %lld aborted: %s", f->host,
           (unsigned)f->port, (long long)f->sid, why);
  close_socket(f, 1);
  f->state = F_DONE;
  masq_timer_stop(f->sc->s->loop, &f->timer);
  masq_conn_reset_stream(f->sc->c, f->sid, MASQ_H3_CONNECT_ERROR);
  masq_srv_mark_dirty(f->sc);
}

/* Writes buffered client bytes to the target and returns their credit. */
static void flush_to_target(tcpflow *f) {
  while (f->wlen && f->fd >= 0) {
    size_t chunk = f->wcap - f->whead < f->wlen ? f->wcap - f->whead : f->wlen;
    ssize_t n = send(f->fd, f->wbuf + f->whead, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      flow_abort(f, strerror(errno));
      return;
    }
    f->whead = (f->whead + (size_t)n) % f->wcap;
    f->wlen -= (size_t)n;
    f->sc->s->stats.tcp_bytes_up += (size_t)n;
    masq_conn_stream_consume(f->sc->c, f->sid, (size_t)n);
    masq_srv_mark_dirty(f->sc);
  }
  if (!f->wlen && f->client_fin && !f->shut_wr && f->fd >= 0) {
    shutdown(f->fd, SHUT_WR); /* FIN from the client becomes a FIN to the target */
    f->shut_wr = 1;
  }
  want(f);
}

/* Keeps n client bytes the target could not take yet. The buffer grows
 * as needed; the stream's flow-control window bounds it. */
static int buffer_up(tcpflow *f, const uint8_t *p, size_t n) {
  if (f->wlen + n > f->wcap) {
    size_t cap = f->wcap ? f->wcap : 64 * 1024;
    while (cap < f->wlen + n) cap *= 2;
    uint8_t *b = malloc(cap);
    if (!b) return -1;
    for (size_t i = 0; i < f->wlen; i++) b[i] = f->wbuf[(f->whead + i) % f->wcap];
    free(f->wbuf);
    f->wbuf = b;
    f->wcap = cap;
    f->whead = 0;
  }
  size_t tail = (f->whead + f->wlen) % f->wcap;
  size_t first = f->wcap - tail < n ? f->wcap - tail : n;
  memcpy(f->wbuf + tail, p, first);
  memcpy(f->wbuf, p + first, n - first);
  f->wlen += n;
  return 0;
}

static void read_from_target(tcpflow *f) {
  srv *s = f->sc->s;
  for (int i = 0; i < READ_BATCH && f->fd >= 0 && !f->target_eof; i++) {
    size_t room = masq_conn_stream_room(f->sc->c, f->sid);
    if (room == 0) {
      f->read_paused = 1; /* on_writable resumes it */
      break;
    }
    if (room > sizeof(s->rxbuf)) room = sizeof(s->rxbuf);
    ssize_t n = recv(f->fd, s->rxbuf, room, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      flow_abort(f, strerror(errno)); /* ECONNRESET and the like */
      return;
    }
    f->last_active = masq_now();
    if (n == 0) {
      f->target_eof = 1;
      masq_conn_end_stream(f->sc->c, f->sid);
    } else if (masq_conn_stream_send(f->sc->c, f->sid, s->rxbuf, (size_t)n) != n) {
      flow_abort(f, "stream refused bytes it had room for");
      return;
    } else {
      s->stats.tcp_bytes_down += (size_t)n;
    }
    masq_srv_mark_dirty(f->sc);
  }
  want(f);
}

/* ---- connecting ----------------------------------------------------------- */

static void try_next(tcpflow *f);

static void refuse_flow(tcpflow *f) {
  sconn *sc = f->sc;
  int e = f->last_err;
  f->state = F_DONE;
  masq_timer_stop(sc->s->loop, &f->timer);
  sc->s->stats.tcp_failed++;
  if (f->denied == (int)f->naddrs)
    masq_srv_refuse(sc, f->sid, 403, "destination_ip_prohibited",
                    "the target's addresses are not allowed by this proxy's policy");
  else if (e == ECONNREFUSED)
    masq_srv_refuse(sc, f->sid, 502, "connection_refused", "the target refused the connection");
  else if (e == ETIMEDOUT)
    masq_srv_refuse(sc, f->sid, 504, "connection_timeout", "the target did not answer");
  else if (e == ENETUNREACH || e == EHOSTUNREACH)
    masq_srv_refuse(sc, f->sid, 502, "destination_ip_unroutable", strerror(e));
  else
    masq_srv_refuse(sc, f->sid, 502, "proxy_internal_error", strerror(e ? e : EIO));
}

static void on_connected(tcpflow *f) {
  srv *s = f->sc->s;
  f->state = F_OPEN;
  f->last_active = masq_now();
  masq_timer_set(s->loop, &f->timer, f->last_active + secs(s->o->idle_timeout));
  /* The 2xx goes out only now that the target answered (RFC 9114 §4.4). */
  masq_conn_accept_stream(f->sc->c, f->sid, f);
  s->stats.tcp_opened++;
  masq_srv_mark_dirty(f->sc);
  masq_log(MASQ_LOG_DEBUG, "TCP flow on stream %lld to %s:%u", (long long)f->sid, f->host,
           (unsigned)f->port);
  flush_to_target(f); /* bytes the client sent before the answer */
}

static void on_socket(masq_loop *loop, masq_io *io, uint32_t events) {
  tcpflow *f = io->ud;
  if (f->state == F_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err) {
      f->last_err = err;
      close_socket(f, 0);
      try_next(f);
      return;
    }
    on_connected(f);
    return;
  }
  if (f->state != F_OPEN) return;
  if (events & EPOLLERR) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    flow_abort(f, strerror(err ? err : EIO));
    return;
  }
  if (events & MASQ_EV_WRITE) flush_to_target(f);
  if (f->state != F_OPEN) return;
  if (events & MASQ_EV_READ) read_from_target(f);
  if ((events & EPOLLHUP) && f->fd >= 0 && (f->read_paused || f->target_eof)) {
    /* epoll reports a hang-up even with no events asked for: stop
     * watching; what is left to read is read as the stream drains. */
    masq_io_stop(f->sc->s->loop, &f->io);
    f->hup = 1;
    f->events = 0;
  }
}

static int start_connect(tcpflow *f, const masq_ip *ip) {
  masq_sockaddr sa;
  masq_sockaddr_from_ip(&sa, ip, f->port);
  f->fd = socket(sa.u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (f->fd < 0) return -1;
  if (connect(f->fd, &sa.u.sa, sa.len) != 0 && errno != EINPROGRESS) {
    int e = errno;
    close(f->fd);
    f->fd = -1;
    errno = e;
    return -1;
  }
  if (masq_io_start(f->sc->s->loop, &f->io, f->fd, MASQ_EV_WRITE, on_socket, f) != 0) {
    close(f->fd);
    f->fd = -1;
    errno = ENOMEM;
    return -1;
  }
  f->events = MASQ_EV_WRITE;
  f->state = F_CONNECTING;
  return 0;
}

/* Tries the resolved addresses in turn; the policy applies to each. */
static void try_next(tcpflow *f) {
  srv *s = f->sc->s;
  while (f->next < f->naddrs) {
    const masq_ip *ip = &f->addrs[f->next++];
    if (!masq_policy_check(&s->policy, ip)) {
      f->denied++;
      continue;
    }
    if (start_connect(f, ip) == 0) return;
    f->last_err = errno;
  }
  refuse_flow(f);
}

static void on_timer(masq_loop *loop, masq_timer *t) {
  tcpflow *f = t->ud;
  if (f->state == F_CONNECTING) {
    f->last_err = ETIMEDOUT;
    close_socket(f, 0);
    f->next = f->naddrs; /* the budget covers all addresses */
    refuse_flow(f);
    return;
  }
  if (f->state != F_OPEN) return;
  uint64_t deadline = f->last_active + secs(f->sc->s->o->idle_timeout);
  if (masq_now() < deadline) {
    masq_timer_set(loop, t, deadline);
    return;
  }
  flow_abort(f, "idle timeout");
}

static void on_resolved(void *ud, int status, const masq_ip *addrs, size_t n) {
  tcpflow *f = ud;
  srv *s = f->sc->s;
  f->rreq = NULL;
  if (f->state == F_DONE) return; /* the stream closed meanwhile */
  if (status != 0 || n == 0) {
    f->state = F_DONE;
    s->stats.tcp_failed++;
    masq_srv_refuse_dns(f->sc, f->sid, status);
    return;
  }
  f->naddrs = n < ADDRS_MAX ? n : ADDRS_MAX;
  memcpy(f->addrs, addrs, f->naddrs * sizeof(addrs[0]));
  masq_timer_set(s->loop, &f->timer, masq_now() + secs(s->o->connect_timeout));
  try_next(f);
}

/* ---- session callbacks ------------------------------------------------------ */

void masq_tcp_on_request(masq_conn *c, void *ud, int64_t sid, const masq_reqhdrs *h) {
  sconn *sc = ud;
  srv *s = sc->s;
  masq_reqcheck chk;
  masq_reqcheck_tcp(h, &chk);
  if (chk.status) {
    masq_srv_refuse(sc, sid, chk.status, chk.error, chk.detail);
    return;
  }
  if (!masq_srv_token_ok(s, h)) {
    s->stats.auth_failures++;
    masq_srv_refuse(sc, sid, 407, "http_request_denied", "missing or wrong bearer token");
    return;
  }
  char host[MASQ_MAX_HOST + 1];
  uint16_t port;
  masq_ip ip;
  if (masq_hostport_parse(h->authority.v, host, sizeof(host), &port, -1, 0) != 0 ||
      masq_target_host_parse(host, &ip) < 0) {
    masq_srv_refuse(sc, sid, 400, "http_request_error", ":authority is not host:port");
    return;
  }
  tcpflow *f = calloc(1, sizeof(*f));
  if (!f) {
    masq_srv_refuse(sc, sid, 503, "proxy_internal_error", "out of memory");
    return;
  }
  f->kind = SRV_TUNNEL_TCP;
  f->sc = sc;
  f->sid = sid;
  f->fd = -1;
  f->port = port;
  snprintf(f->host, sizeof(f->host), "%s", host);
  masq_timer_init(&f->timer, on_timer, f);
  masq_conn_stream_set_user(c, sid, f); /* a close from now on frees f */
  sc->ntunnels++;
  f->state = F_RESOLVING;
  f->rreq = masq_resolve(s->resolver, host, on_resolved, f);
  if (!f->rreq) {
    f->state = F_DONE;
    masq_srv_refuse(sc, sid, 503, "proxy_internal_error", "too many name lookups in progress");
  }
}

static void pending_add(tcpflow *f) {
  srv *s = f->sc->s;
  if (f->pending) return;
  f->pending = 1;
  f->pprev = NULL;
  f->pnext = s->tcp_pending;
  if (f->pnext) f->pnext->pprev = f;
  s->tcp_pending = f;
}

static void pending_remove(tcpflow *f) {
  if (!f->pending) return;
  f->pending = 0;
  if (f->pprev) f->pprev->pnext = f->pnext;
  else f->sc->s->tcp_pending = f->pnext;
  if (f->pnext) f->pnext->pprev = f->pprev;
}

void masq_tcp_flush(srv *s) {
  while (s->tcp_pending) {
    tcpflow *f = s->tcp_pending;
    pending_remove(f);
    if (f->state == F_OPEN) flush_to_target(f);
  }
}

void masq_tcp_on_data(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *p,
                      size_t n) {
  tcpflow *f = sud;
  if (f->state == F_DONE) {
    masq_conn_stream_consume(c, sid, n); /* nowhere to go: let the credit return */
    return;
  }
  f->last_active = masq_now();
  /* A QUIC packet brings about a kilobyte: collect this iteration's and
   * write them with one send (masq_tcp_flush) instead of one each. */
  if (buffer_up(f, p, n) != 0) {
    flow_abort(f, "out of memory");
    return;
  }
  if (f->state == F_OPEN) pending_add(f);
}

void masq_tcp_on_writable(masq_conn *c, void *ud, int64_t sid, void *sud) {
  tcpflow *f = sud;
  if (f->state != F_OPEN || !f->read_paused) return;
  f->read_paused = 0;
  read_from_target(f);
  /* Hung up: nothing wakes us for the rest, so keep reading here. */
  for (int i = 0; i < 64 && f->hup && f->state == F_OPEN && !f->target_eof &&
                  !f->read_paused && f->fd >= 0;
       i++)
    read_from_target(f);
}

void masq_tcp_on_stream_end(masq_conn *c, void *ud, int64_t sid, void *sud) {
  tcpflow *f = sud;
  f->client_fin = 1;
  if (f->state == F_OPEN) flush_to_target(f);
}

void masq_tcp_on_stream_close(masq_conn *c, void *ud, int64_t sid, void *sud,
                              uint64_t app_error) {
  tcpflow *f = sud;
  srv *s = f->sc->s;
  pending_remove(f);
  if (f->rreq) masq_resolve_cancel(f->rreq);
  masq_timer_stop(s->loop, &f->timer);
  /* A reset stream (the client gave up) resets the TCP connection too. */
  close_socket(f, app_error != MASQ_H3_NO_ERROR);
  f->sc->ntunnels--;
  free(f->wbuf);
  free(f);
}
