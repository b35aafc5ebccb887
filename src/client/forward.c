/* masq forward: local UDP ports forwarded through a MASQUE proxy, ssh -L
 * style. Each local source address gets its own CONNECT-UDP request so
 * replies find their way back; all of them share one QUIC connection. */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/tls.h"
#include "client/forward.h"
#include "client/proxy_url.h"
#include "io/log.h"
#include "io/loop.h"
#include "io/net.h"
#include "proto/h3dgram.h"
#include "session/session.h"

/* Datagrams held per flow while its request is in flight. */
#define FLOW_PENDING 8
/* After a refusal, a source waits this long before a new request, so a
 * chatty application cannot turn into a request storm. */
#define FLOW_RETRY_NS (5ull * 1000000000ull)
#define MAX_FLOWS 4096
/* Reconnect backoff after a lost connection. */
#define BACKOFF_MIN_NS (1ull * 1000000000ull)
#define BACKOFF_MAX_NS (30ull * 1000000000ull)

typedef struct fwd fwd;
typedef struct listener listener;

typedef enum { F_WAITING, F_REQUESTED, F_OPEN, F_FAILED } flow_state;

typedef struct flow {
  listener *l;
  struct flow *next;
  masq_sockaddr src;
  int64_t sid;
  flow_state state;
  uint64_t last_active, failed_at;
  masq_timer idle;
  size_t npending;
  uint16_t pending_len[FLOW_PENDING];
  uint8_t *pending; /* FLOW_PENDING x MASQ_OUTER_UDP_PAYLOAD, only while waiting */
} flow;

struct listener {
  fwd *f;
  const masq_fwdspec *spec;
  int fd;
  masq_io io;
  char path[1024], authority[512];
  flow *flows;
};

struct fwd {
  const masq_opts *o;
  masq_loop *loop;
  masq_conn *c;
  int fd;
  masq_io io;
  masq_timer timer;
  masq_sockaddr local, remote;
  gnutls_certificate_credentials_t creds;
  masq_conn_config cfg;
  masq_proxy_url url;
  listener ls[MASQ_MAX_FORWARDS];
  size_t nls, nflows;
  int ready, ever_ready, exit_code, dirty, stopping;
  masq_timer retry;       /* reconnect after a lost connection */
  uint64_t backoff;       /* ns until the next attempt; doubles to 30 s */
  masq_conn_stats total;  /* of the connections already gone */
  uint64_t drops;
  uint8_t buf[65536];
};

static void fwd_service(masq_loop *loop, void *ud);
static void hangup(fwd *f);

/* ---- flows -------------------------------------------------------------- */

static flow *flow_find(listener *l, const masq_sockaddr *src) {
  for (flow *fl = l->flows; fl; fl = fl->next)
    if (fl->src.len == src->len && memcmp(&fl->src.u, &src->u, src->len) == 0) return fl;
  return NULL;
}

static void flow_free(flow *fl) {
  listener *l = fl->l;
  for (flow **pp = &l->flows; *pp; pp = &(*pp)->next) {
    if (*pp == fl) {
      *pp = fl->next;
      break;
    }
  }
  masq_timer_stop(l->f->loop, &fl->idle);
  l->f->nflows--;
  free(fl->pending);
  free(fl);
}

static void flow_submit(flow *fl) {
  fwd *f = fl->l->f;
  const char *tok = f->o->token[0] ? f->o->token : NULL;
  int64_t sid = masq_conn_submit_connect(f->c, fl->l->authority, fl->l->path, "connect-udp", tok,
                                         fl);
  if (sid == MASQ_SESS_ERR_BLOCKED) return; /* retried from on_streams */
  if (sid < 0) {
    fl->state = F_FAILED;
    fl->failed_at = masq_now();
    masq_log_rl(MASQ_LOG_WARN, "cannot open a tunnel: stream setup failed (%lld)", (long long)sid);
    return;
  }
  fl->sid = sid;
  fl->state = F_REQUESTED;
  f->dirty = 1;
}

static void on_flow_idle(masq_loop *loop, masq_timer *t) {
  flow *fl = t->ud;
  fwd *f = fl->l->f;
  uint64_t deadline = fl->last_active + (uint64_t)f->o->idle_timeout * 1000000000ull;
  if (masq_now() < deadline) {
    masq_timer_set(loop, t, deadline);
    return;
  }
  if (f->c && (fl->state == F_OPEN || fl->state == F_REQUESTED)) {
    /* The flow stays until the stream closes; only then is it freed. */
    masq_conn_end_stream(f->c, fl->sid);
    f->dirty = 1;
    fl->state = F_FAILED;
    fl->failed_at = 0;
    return;
  }
  flow_free(fl);
}

static flow *flow_new(listener *l, const masq_sockaddr *src) {
  fwd *f = l->f;
  if (f->nflows >= MAX_FLOWS) return NULL;
  flow *fl = calloc(1, sizeof(*fl));
  if (!fl) return NULL;
  fl->pending = malloc((size_t)FLOW_PENDING * MASQ_OUTER_UDP_PAYLOAD);
  if (!fl->pending) {
    free(fl);
    return NULL;
  }
  fl->l = l;
  fl->src = *src;
  fl->sid = -1;
  fl->state = F_WAITING;
  fl->last_active = masq_now();
  masq_timer_init(&fl->idle, on_flow_idle, fl);
  masq_timer_set(f->loop, &fl->idle, fl->last_active + (uint64_t)f->o->idle_timeout * 1000000000ull);
  fl->next = l->flows;
  l->flows = fl;
  f->nflows++;
  return fl;
}

static void flow_hold(flow *fl, const uint8_t *p, size_t n) {
  if (fl->npending == FLOW_PENDING || n > MASQ_OUTER_UDP_PAYLOAD) {
    fl->l->f->drops++;
    return;
  }
  memcpy(fl->pending + fl->npending * MASQ_OUTER_UDP_PAYLOAD, p, n);
  fl->pending_len[fl->npending++] = (uint16_t)n;
}

static void flow_send(flow *fl, const uint8_t *p, size_t n) {
  fwd *f = fl->l->f;
  int rv = masq_conn_send_datagram(f->c, fl->sid, p, n);
  if (rv != 0) f->drops++;
  if (rv == MASQ_SESS_ERR_TOO_BIG)
    masq_log_rl(MASQ_LOG_WARN, "dropped a %zu-byte datagram: the tunnel carries at most %zu", n,
                masq_conn_max_datagram(f->c, fl->sid));
  f->dirty = 1;
}

/* ---- local sockets -------------------------------------------------------- */

static void on_local(masq_loop *loop, masq_io *io, uint32_t events) {
  listener *l = io->ud;
  fwd *f = l->f;
  for (int i = 0; i < 64; i++) {
    masq_sockaddr src;
    size_t seg;
    ssize_t n = masq_udp_recv(l->fd, f->buf, sizeof(f->buf), &src, &seg);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EMSGSIZE) f->drops++;
      continue;
    }
    flow *fl = flow_find(l, &src);
    if (!fl && !(fl = flow_new(l, &src))) {
      f->drops++;
      continue;
    }
    fl->last_active = masq_now();
    if (fl->state == F_FAILED) {
      if (fl->failed_at && fl->last_active - fl->failed_at < FLOW_RETRY_NS) {
        f->drops++;
        continue;
      }
      if (fl->sid >= 0) continue; /* old stream still closing */
      fl->state = F_WAITING;
      fl->npending = 0;
    }
    for (size_t off = 0; off < (size_t)n; off += seg) {
      size_t len = (size_t)n - off < seg ? (size_t)n - off : seg;
      if (fl->state == F_OPEN) flow_send(fl, f->buf + off, len);
      else flow_hold(fl, f->buf + off, len);
    }
    if (fl->state == F_WAITING && f->ready) flow_submit(fl);
  }
}

/* ---- session callbacks ------------------------------------------------------ */

static int on_send(masq_conn *c, void *ud, const ngtcp2_path *path, const uint8_t *data,
                   size_t len, size_t seg) {
  fwd *f = ud;
  if (masq_udp_send(f->fd, data, len, seg, NULL) == 0) return 0;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
    masq_io_update(f->loop, &f->io, MASQ_EV_READ | MASQ_EV_WRITE);
    return -1;
  }
  masq_log_rl(MASQ_LOG_DEBUG, "send to proxy failed: %s", strerror(errno));
  return 0; /* lost, as far as QUIC is concerned */
}

static void submit_waiting(fwd *f) {
  for (size_t i = 0; i < f->nls; i++)
    for (flow *fl = f->ls[i].flows; fl; fl = fl->next)
      if (fl->state == F_WAITING) flow_submit(fl);
}

static void on_ready(masq_conn *c, void *ud) {
  fwd *f = ud;
  f->ready = 1;
  f->ever_ready = 1;
  f->backoff = BACKOFF_MIN_NS;
  masq_log(MASQ_LOG_INFO, "connected to %s", f->o->proxy);
  submit_waiting(f);
}

static void on_streams(masq_conn *c, void *ud) { submit_waiting(ud); }

static void on_response(masq_conn *c, void *ud, int64_t sid, void *sud, const masq_reqhdrs *h) {
  flow *fl = sud;
  if (!fl) return;
  fwd *f = fl->l->f;
  int status = 0;
  if (h->status.present && h->status.len == 3)
    for (int i = 0; i < 3; i++) status = status * 10 + (h->status.v[i] - '0');
  if (status >= 200 && status < 300) {
    fl->state = F_OPEN;
    masq_conn_stream_set_tunnel(c, sid);
    for (size_t i = 0; i < fl->npending; i++)
      flow_send(fl, fl->pending + i * MASQ_OUTER_UDP_PAYLOAD, fl->pending_len[i]);
    fl->npending = 0;
    char a[64];
    masq_log(MASQ_LOG_DEBUG, "tunnel for %s to %s:%u open (stream %lld)",
             masq_sockaddr_str(&fl->src, a, sizeof(a)), fl->l->spec->host, fl->l->spec->hostport,
             (long long)sid);
    return;
  }
  /* RFC 9298 §3: anything but 2xx means the request failed; abort it. */
  masq_log_rl(MASQ_LOG_WARN, "proxy refused the tunnel to %s:%u: status %d%s%s",
              fl->l->spec->host, fl->l->spec->hostport, status,
              h->proxy_status.present ? ", Proxy-Status: " : "",
              h->proxy_status.present ? h->proxy_status.v : "");
  fl->state = F_FAILED;
  fl->failed_at = masq_now();
  fl->npending = 0;
  masq_conn_reset_stream(c, sid, MASQ_H3_REQUEST_CANCELLED);
  f->dirty = 1;
}

static void on_datagram(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *p,
                        size_t n) {
  flow *fl = sud;
  fwd *f = ud;
  if (!fl || fl->state != F_OPEN) return;
  fl->last_active = masq_now();
  if (sendto(fl->l->fd, p, n, 0, &fl->src.u.sa, fl->src.len) < 0) f->drops++;
}

static void on_stream_end(masq_conn *c, void *ud, int64_t sid, void *sud) {
  flow *fl = sud;
  if (!fl) return;
  /* The proxy ended the tunnel (idle, or target unreachable): end ours. */
  masq_conn_end_stream(c, sid);
  ((fwd *)ud)->dirty = 1;
}

static void on_stream_close(masq_conn *c, void *ud, int64_t sid, void *sud, uint64_t err) {
  flow *fl = sud;
  if (!fl) return;
  fl->sid = -1;
  if (fl->state == F_OPEN || fl->state == F_REQUESTED) {
    fl->state = F_FAILED;
    fl->failed_at = 0; /* a later datagram may open a new tunnel at once */
  }
}

static const masq_conn_callbacks client_callbacks = {
    .send = on_send,
    .on_ready = on_ready,
    .on_response = on_response,
    .on_datagram = on_datagram,
    .on_stream_end = on_stream_end,
    .on_stream_close = on_stream_close,
    .on_streams = on_streams,
};

/* ---- the connection to the proxy ------------------------------------------ */

static void on_proxy_socket(masq_loop *loop, masq_io *io, uint32_t events) {
  fwd *f = io->ud;
  if (events & MASQ_EV_WRITE) masq_io_update(loop, io, MASQ_EV_READ);
  f->dirty = 1;
  if (!(events & MASQ_EV_READ)) return;
  ngtcp2_path path = {{&f->local.u.sa, f->local.len}, {&f->remote.u.sa, f->remote.len}, NULL};
  /* Bounded in packets (a GRO read holds many) so acknowledgements go out
   * promptly in the write pass; see the server's on_socket. */
  for (size_t pkts = 0; pkts < 64;) {
    size_t seg;
    ssize_t n = masq_udp_recv(f->fd, f->buf, sizeof(f->buf), NULL, &seg);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      continue; /* ICMP errors and the like: QUIC recovers or times out */
    }
    for (size_t off = 0; off < (size_t)n; off += seg, pkts++) {
      size_t len = (size_t)n - off < seg ? (size_t)n - off : seg;
      if (masq_conn_read(f->c, &path, f->buf + off, len, masq_now()) != 0) return;
    }
  }
}

static void on_timer(masq_loop *loop, masq_timer *t) {
  fwd *f = t->ud;
  masq_conn_on_timer(f->c, masq_now());
  f->dirty = 1;
}

/* Once per loop iteration: write, re-arm the timer, notice a dead
 * connection. */
static void fwd_service(masq_loop *loop, void *ud) {
  fwd *f = ud;
  if (!f->c) return;
  if (!masq_conn_is_dead(f->c) && f->dirty) masq_conn_write(f->c, masq_now());
  f->dirty = 0;
  if (masq_conn_is_dead(f->c)) {
    if (f->stopping) return; /* our own close, on a signal */
    if (!f->ever_ready) {
      /* Never connected: a wrong address, certificate or port, most
       * likely. Say so and stop rather than retry blindly. */
      masq_log(MASQ_LOG_ERR, "cannot connect to %s: %s", f->o->proxy, masq_conn_error_str(f->c));
      f->exit_code = 1;
      f->stopping = 1; /* the loop's last write pass must not say it again */
      masq_loop_stop(loop);
      return;
    }
    masq_log(MASQ_LOG_WARN, "connection to %s lost: %s; reconnecting in %llu s", f->o->proxy,
             masq_conn_error_str(f->c), (unsigned long long)(f->backoff / 1000000000ull));
    hangup(f);
    masq_timer_set(loop, &f->retry, masq_now() + f->backoff);
    return;
  }
  uint64_t exp = masq_conn_expiry(f->c);
  if (exp == UINT64_MAX) masq_timer_stop(loop, &f->timer);
  else masq_timer_set(loop, &f->timer, exp);
}

static void on_signal(masq_loop *loop, int signo, void *ud) {
  fwd *f = ud;
  masq_log(MASQ_LOG_INFO, "%s: closing the connection", strsignal(signo));
  f->stopping = 1;
  if (f->c) masq_conn_close(f->c, MASQ_H3_NO_ERROR, masq_now());
  f->exit_code = 0;
  masq_loop_stop(loop);
}

/* ---- setup ------------------------------------------------------------------ */

static int resolve_proxy(fwd *f) {
  struct addrinfo hints = {0}, *res;
  hints.ai_socktype = SOCK_DGRAM;
  char port[8];
  snprintf(port, sizeof(port), "%u", f->url.port);
  int rv = getaddrinfo(f->url.host, port, &hints, &res);
  if (rv != 0) {
    masq_log(MASQ_LOG_ERR, "cannot resolve proxy host %s: %s", f->url.host, gai_strerror(rv));
    return -1;
  }
  memcpy(&f->remote.u.ss, res->ai_addr, res->ai_addrlen);
  f->remote.len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

static int open_listener(fwd *f, listener *l, const masq_fwdspec *spec) {
  l->f = f;
  l->spec = spec;
  char hostport[16];
  snprintf(hostport, sizeof(hostport), "%u", spec->hostport);
  if (masq_proxy_url_target(&f->url, f->o->udp_template, spec->host, hostport, l->authority,
                            sizeof(l->authority), l->path, sizeof(l->path)) != 0) {
    masq_log(MASQ_LOG_ERR, "--udp-template %s: cannot expand it for %s:%u", f->o->udp_template,
             spec->host, spec->hostport);
    return -1;
  }
  char bind[128];
  int v6 = strchr(spec->bind, ':') != NULL;
  snprintf(bind, sizeof(bind), v6 ? "[%s]:%u" : "%s:%u", spec->bind, spec->port);
  masq_sockaddr sa;
  if (masq_sockaddr_parse(bind, &sa) != 0) {
    masq_log(MASQ_LOG_ERR, "--udp: bind address %s is not a numeric IP address", spec->bind);
    return -1;
  }
  l->fd = masq_udp_open(&sa, NULL);
  if (l->fd < 0) {
    masq_log(MASQ_LOG_ERR, "cannot listen on UDP %s: %s", bind, strerror(errno));
    return -1;
  }
  if (masq_io_start(f->loop, &l->io, l->fd, MASQ_EV_READ, on_local, l) != 0) return -1;
  int hv6 = strchr(spec->host, ':') != NULL;
  masq_log(MASQ_LOG_INFO, hv6 ? "forwarding udp %s -> [%s]:%u" : "forwarding udp %s -> %s:%u",
           bind, spec->host, spec->hostport);
  return 0;
}

/* Opens a socket and a QUIC connection to the proxy. */
static int dial(fwd *f) {
  char err[512];
  if (resolve_proxy(f) != 0) return -1;
  f->fd = masq_udp_connect(&f->remote);
  if (f->fd < 0) {
    masq_log(MASQ_LOG_ERR, "cannot open a UDP socket to the proxy: %s", strerror(errno));
    return -1;
  }
  f->local.len = sizeof(f->local.u.ss);
  if (getsockname(f->fd, &f->local.u.sa, &f->local.len) != 0 ||
      masq_io_start(f->loop, &f->io, f->fd, MASQ_EV_READ, on_proxy_socket, f) != 0) {
    close(f->fd);
    f->fd = -1;
    return -1;
  }
  ngtcp2_addr la = {&f->local.u.sa, f->local.len}, ra = {&f->remote.u.sa, f->remote.len};
  f->c = masq_conn_client_new(&f->cfg, &client_callbacks, f, &la, &ra, masq_now(), err,
                              sizeof(err));
  if (!f->c) {
    masq_log(MASQ_LOG_ERR, "%s", err);
    masq_io_stop(f->loop, &f->io);
    close(f->fd);
    f->fd = -1;
    return -1;
  }
  f->dirty = 1; /* the loop's write pass sends the first Initial */
  return 0;
}

static void add_stats(masq_conn_stats *t, const masq_conn_stats *s) {
  t->dgram_tx += s->dgram_tx;
  t->dgram_rx += s->dgram_rx;
  t->drop_too_big += s->drop_too_big;
  t->drop_queue_full += s->drop_queue_full;
}

/* Drops a dead connection. Its open streams are reported closed, which
 * puts their flows back to waiting for a new tunnel. */
static void hangup(fwd *f) {
  add_stats(&f->total, masq_conn_get_stats(f->c));
  masq_timer_stop(f->loop, &f->timer);
  masq_conn_free(f->c);
  f->c = NULL;
  f->ready = 0;
  masq_io_stop(f->loop, &f->io);
  close(f->fd);
  f->fd = -1;
}

static void on_retry(masq_loop *loop, masq_timer *t) {
  fwd *f = t->ud;
  f->backoff = f->backoff * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : f->backoff * 2;
  if (dial(f) != 0) masq_timer_set(loop, t, masq_now() + f->backoff);
}

static int connect_proxy(fwd *f) {
  char err[512];
  f->creds = masq_tls_client_creds(f->o->ca[0] ? f->o->ca : NULL, f->o->insecure, err,
                                   sizeof(err));
  if (!f->creds) {
    masq_log(MASQ_LOG_ERR, "%s", err);
    return -1;
  }
  if (f->o->insecure)
    masq_log(MASQ_LOG_WARN, "--insecure: the proxy's certificate is not verified");
  f->cfg.creds = f->creds;
  f->cfg.sni = f->url.host;
  f->cfg.insecure = f->o->insecure;
  f->cfg.idle_timeout = 30 * NGTCP2_SECONDS;
  f->backoff = BACKOFF_MIN_NS;
  return dial(f);
}

static void teardown(fwd *f) {
  /* The connection first: freeing it reports its open streams to
   * on_stream_close, which still touches their flows. */
  if (f->loop) masq_timer_stop(f->loop, &f->retry);
  if (f->c) masq_conn_free(f->c);
  f->c = NULL;
  for (size_t i = 0; i < f->nls; i++) {
    while (f->ls[i].flows) flow_free(f->ls[i].flows);
    if (f->ls[i].fd >= 0) close(f->ls[i].fd);
  }
  if (f->fd >= 0) close(f->fd);
  if (f->loop) masq_loop_free(f->loop);
  if (f->creds) gnutls_certificate_free_credentials(f->creds);
}

int masq_forward_run(const masq_opts *o) {
  static fwd f;
  memset(&f, 0, sizeof(f));
  f.o = o;
  f.fd = -1;
  f.exit_code = 1;
  char err[256];
  if (masq_proxy_url_parse(o->proxy, &f.url, err, sizeof(err)) != 0) {
    masq_log(MASQ_LOG_ERR, "--proxy %s: %s", o->proxy, err);
    return 2;
  }
  f.loop = masq_loop_new();
  if (!f.loop) goto out;
  masq_timer_init(&f.timer, on_timer, &f);
  masq_timer_init(&f.retry, on_retry, &f);
  for (size_t i = 0; i < o->nudp; i++) {
    f.ls[i].fd = -1;
    f.nls = i + 1;
    if (open_listener(&f, &f.ls[i], &o->udp[i]) != 0) goto out;
  }
  if (connect_proxy(&f) != 0 || masq_loop_add_hook(f.loop, fwd_service, &f) != 0 ||
      masq_loop_add_signal(f.loop, SIGINT, on_signal, &f) != 0 ||
      masq_loop_add_signal(f.loop, SIGTERM, on_signal, &f) != 0)
    goto out;
  if (masq_loop_run(f.loop) != 0) f.exit_code = 1;
  {
    if (f.c) add_stats(&f.total, masq_conn_get_stats(f.c));
    const masq_conn_stats *st = &f.total;
    masq_log(MASQ_LOG_INFO,
             "datagrams tx %llu rx %llu; dropped: %llu locally (unsendable or no tunnel), too big "
             "%llu, queue full %llu",
             (unsigned long long)st->dgram_tx, (unsigned long long)st->dgram_rx,
             (unsigned long long)f.drops, (unsigned long long)st->drop_too_big,
             (unsigned long long)st->drop_queue_full);
  }
out:
  teardown(&f);
  return f.exit_code;
}
