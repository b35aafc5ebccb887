/* The client's one QUIC connection to the proxy: see proxyconn.h. */
#include "client/proxyconn.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "io/log.h"
#include "io/net.h"
#include "io/tls.h"
#include "proto/wire.h"

/* Reconnect backoff after a lost connection. */
#define BACKOFF_MIN_NS (1ull * 1000000000ull)
#define BACKOFF_MAX_NS (30ull * 1000000000ull)
#define MAX_FLUSH 4

struct masq_pc {
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
  masq_pc_settings set;
  masq_conn_callbacks cb; /* callbacks, with on_capsule if set.capsules */
  int ready, ever_ready, exit_code, dirty, stopping;
  int closed; /* the close for a stop has been sent */
  masq_timer retry;      /* reconnect after a lost connection */
  uint64_t backoff;      /* ns until the next attempt; doubles to 30 s */
  masq_conn_stats total; /* of the connections already gone */
  uint64_t drops;
  masq_pc_req *qhead, *qtail; /* requests waiting to be submitted */
  struct {
    void (*fn)(void *ud);
    void *ud;
  } flush[MAX_FLUSH];
  size_t nflush;
  uint8_t buf[65536];
};

static void hangup(masq_pc *pc);

void masq_pc_raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rlim_t want = rl.rlim_max;
  rl.rlim_cur = want;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
    masq_log(MASQ_LOG_WARN, "cannot raise the open-file limit to %llu: %s (fewer flows fit)",
             (unsigned long long)want, strerror(errno));
}

void masq_pc_req_init(masq_pc_req *r, const masq_pc_req_ops *ops) {
  memset(r, 0, sizeof(*r));
  r->ops = ops;
  r->sid = -1;
}

const masq_proxy_url *masq_pc_url(const masq_pc *pc) { return &pc->url; }
masq_conn *masq_pc_conn(masq_pc *pc) { return pc->ready ? pc->c : NULL; }
void masq_pc_touch(masq_pc *pc) { pc->dirty = 1; }
int masq_pc_stopping(const masq_pc *pc) { return pc->stopping; }
void masq_pc_count_drop(masq_pc *pc) { pc->drops++; }

int masq_pc_add_flush(masq_pc *pc, void (*fn)(void *ud), void *ud) {
  if (pc->nflush == MAX_FLUSH) return -1;
  pc->flush[pc->nflush].fn = fn;
  pc->flush[pc->nflush].ud = ud;
  pc->nflush++;
  return 0;
}

/* ---- the request queue ------------------------------------------------- */

static void queue_remove(masq_pc *pc, masq_pc_req *r) {
  if (!r->queued) return;
  if (r->qprev) r->qprev->qnext = r->qnext;
  else pc->qhead = r->qnext;
  if (r->qnext) r->qnext->qprev = r->qprev;
  else pc->qtail = r->qprev;
  r->qnext = r->qprev = NULL;
  r->queued = 0;
}

/* Submits queued requests in order until the proxy's stream limit
 * blocks one (it stays first; on_streams resumes). */
static void drain(masq_pc *pc) {
  const char *tok = pc->o->token[0] ? pc->o->token : NULL;
  while (pc->ready && pc->qhead) {
    masq_pc_req *r = pc->qhead;
    int64_t sid = r->ops->submit(r, pc->c, tok);
    if (sid == MASQ_SESS_ERR_BLOCKED) return;
    queue_remove(pc, r);
    pc->dirty = 1;
    if (sid < 0) {
      masq_log_rl(MASQ_LOG_WARN, "cannot open a stream to the proxy (error %lld)",
                  (long long)sid);
      r->ops->on_close(r, MASQ_PC_ERR_SUBMIT);
      continue;
    }
    r->sid = sid;
  }
}

void masq_pc_request(masq_pc *pc, masq_pc_req *r) {
  if (r->queued || r->sid >= 0) return;
  r->queued = 1;
  r->qnext = NULL;
  r->qprev = pc->qtail;
  if (pc->qtail) pc->qtail->qnext = r;
  else pc->qhead = r;
  pc->qtail = r;
  /* Only the head may go now: later ones keep their place in line. */
  if (pc->qhead == r) drain(pc);
}

void masq_pc_release(masq_pc *pc, masq_pc_req *r, uint64_t how) {
  queue_remove(pc, r);
  if (r->sid < 0) return;
  if (pc->c) {
    masq_conn_stream_set_user(pc->c, r->sid, NULL);
    if (how == MASQ_PC_FIN) masq_conn_end_stream(pc->c, r->sid);
    else masq_conn_reset_stream(pc->c, r->sid, how);
    pc->dirty = 1;
  }
  r->sid = -1;
}

/* ---- session callbacks: dispatch to the flow behind the stream -------- */

static int on_send(masq_conn *c, void *ud, const ngtcp2_path *path, const uint8_t *data,
                   size_t len, size_t seg) {
  masq_pc *pc = ud;
  if (masq_udp_send(pc->fd, data, len, seg, NULL) == 0) return 0;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
    masq_io_update(pc->loop, &pc->io, MASQ_EV_READ | MASQ_EV_WRITE);
    return -1;
  }
  masq_log_rl(MASQ_LOG_DEBUG, "send to proxy failed: %s", strerror(errno));
  return 0; /* lost, as far as QUIC is concerned */
}

static void on_ready(masq_conn *c, void *ud) {
  masq_pc *pc = ud;
  pc->ready = 1;
  pc->ever_ready = 1;
  pc->backoff = BACKOFF_MIN_NS;
  const char *note = pc->set.ready_note;
  masq_log(MASQ_LOG_INFO, "connected to %s%s%s", pc->o->proxy, note ? "; " : "", note ? note : "");
  drain(pc);
}

static void on_streams(masq_conn *c, void *ud) { drain(ud); }

static int parse_status(const masq_hfield *f) {
  if (!f->present || f->len != 3) return 0;
  int v = 0;
  for (int i = 0; i < 3; i++) {
    if (f->v[i] < '0' || f->v[i] > '9') return 0;
    v = v * 10 + (f->v[i] - '0');
  }
  return v;
}

static void on_response(masq_conn *c, void *ud, int64_t sid, void *sud, const masq_reqhdrs *h) {
  masq_pc_req *r = sud;
  if (r) r->ops->on_response(r, c, parse_status(&h->status), h);
}

static void on_datagram(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *p,
                        size_t n) {
  masq_pc_req *r = sud;
  if (r && r->ops->on_datagram) r->ops->on_datagram(r, p, n);
}

static void on_data(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *p, size_t n) {
  masq_pc_req *r = sud;
  if (r && r->ops->on_data) {
    r->ops->on_data(r, p, n);
    return;
  }
  /* Nobody reads it: give the credit back so the connection's window
   * does not shrink by what a dead flow was sent. */
  masq_conn_stream_consume(c, sid, n);
  ((masq_pc *)ud)->dirty = 1;
}

static void on_writable(masq_conn *c, void *ud, int64_t sid, void *sud) {
  masq_pc_req *r = sud;
  if (r && r->ops->on_writable) r->ops->on_writable(r);
}

static void on_stream_end(masq_conn *c, void *ud, int64_t sid, void *sud) {
  masq_pc_req *r = sud;
  if (r) r->ops->on_end(r);
}

static void on_stream_close(masq_conn *c, void *ud, int64_t sid, void *sud, uint64_t err) {
  masq_pc_req *r = sud;
  if (!r) return;
  r->sid = -1;
  r->ops->on_close(r, err);
}

/* A released stream's capsules are ignored like unknown ones. */
static int on_capsule(masq_conn *c, void *ud, int64_t sid, void *sud, uint64_t type,
                      const uint8_t *p, size_t n) {
  masq_pc_req *r = sud;
  if (!r || !r->ops->on_capsule) return 0;
  return r->ops->on_capsule(r, c, type, p, n);
}

static const masq_conn_callbacks callbacks = {
    .send = on_send,
    .on_ready = on_ready,
    .on_response = on_response,
    .on_datagram = on_datagram,
    .on_stream_end = on_stream_end,
    .on_stream_close = on_stream_close,
    .on_streams = on_streams,
    .on_data = on_data,
    .on_writable = on_writable,
};

/* ---- the socket, the timer and the write pass ------------------------- */

static void on_socket(masq_loop *loop, masq_io *io, uint32_t events) {
  masq_pc *pc = io->ud;
  if (events & MASQ_EV_WRITE) masq_io_update(loop, io, MASQ_EV_READ);
  pc->dirty = 1;
  if (!(events & MASQ_EV_READ)) return;
  ngtcp2_path path = {{&pc->local.u.sa, pc->local.len}, {&pc->remote.u.sa, pc->remote.len}, NULL};
  /* Bounded in packets (a GRO read holds many) so acknowledgements go out
   * promptly in the write pass; see the server's on_socket. */
  for (size_t pkts = 0; pkts < 64;) {
    size_t seg;
    ssize_t n = masq_udp_recv(pc->fd, pc->buf, sizeof(pc->buf), NULL, &seg);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      continue; /* ICMP errors and the like: QUIC recovers or times out */
    }
    for (size_t off = 0; off < (size_t)n; off += seg, pkts++) {
      size_t len = (size_t)n - off < seg ? (size_t)n - off : seg;
      if (masq_conn_read(pc->c, &path, pc->buf + off, len, masq_now()) != 0) return;
      if (!pc->c) return; /* cannot happen today; a callback must not hang up */
    }
  }
}

static void on_timer(masq_loop *loop, masq_timer *t) {
  masq_pc *pc = t->ud;
  masq_conn_on_timer(pc->c, masq_now());
  pc->dirty = 1;
}

void masq_pc_stop(masq_pc *pc, int status) {
  if (pc->stopping) return;
  pc->stopping = 1; /* also keeps the last write pass from calling on_dead */
  pc->exit_code = status;
  masq_loop_stop(pc->loop);
}

/* A dead connection: exit if it never came up (a wrong address,
 * certificate or port, most likely: say so rather than retry blindly)
 * or if the owner cannot outlive it (settings.once), else drop it and
 * retry with backoff. A connection kept for once still has its
 * counters and streams until masq_pc_free. */
static void on_dead(masq_pc *pc) {
  if (pc->stopping) return; /* our own close */
  if (!pc->ever_ready) {
    masq_log(MASQ_LOG_ERR, "cannot connect to %s: %s", pc->o->proxy, masq_conn_error_str(pc->c));
    masq_pc_stop(pc, 1);
    return;
  }
  if (pc->set.once) {
    masq_log(MASQ_LOG_ERR, "connection to %s lost: %s", pc->o->proxy, masq_conn_error_str(pc->c));
    masq_pc_stop(pc, 1);
    return;
  }
  masq_log(MASQ_LOG_WARN, "connection to %s lost: %s; reconnecting in %llu s", pc->o->proxy,
           masq_conn_error_str(pc->c), (unsigned long long)(pc->backoff / 1000000000ull));
  hangup(pc);
  masq_timer_set(pc->loop, &pc->retry, masq_now() + pc->backoff);
}

/* Once per loop iteration: flush local sockets, write, re-arm the timer,
 * notice a dead connection. A stop closes the connection here, not
 * where it was asked for: that may be inside the session's callbacks. */
static void service(masq_loop *loop, void *ud) {
  masq_pc *pc = ud;
  for (size_t i = 0; i < pc->nflush; i++) pc->flush[i].fn(pc->flush[i].ud);
  if (!pc->c) return;
  if (pc->stopping) {
    if (!pc->closed && !masq_conn_is_dead(pc->c))
      masq_conn_close(pc->c, MASQ_H3_NO_ERROR, masq_now());
    pc->closed = 1;
    return;
  }
  if (!masq_conn_is_dead(pc->c) && pc->dirty) masq_conn_write(pc->c, masq_now());
  pc->dirty = 0;
  if (masq_conn_is_dead(pc->c)) {
    on_dead(pc);
    return;
  }
  uint64_t exp = masq_conn_expiry(pc->c);
  if (exp == UINT64_MAX) masq_timer_stop(loop, &pc->timer);
  else masq_timer_set(loop, &pc->timer, exp);
}

static void on_signal(masq_loop *loop, int signo, void *ud) {
  masq_pc *pc = ud;
  masq_log(MASQ_LOG_INFO, "%s: closing the %s", strsignal(signo),
           pc->set.closing ? pc->set.closing : "connection");
  masq_pc_stop(pc, 0);
}

/* ---- connecting ------------------------------------------------------- */

static int resolve_proxy(masq_pc *pc) {
  struct addrinfo hints = {0}, *res;
  hints.ai_socktype = SOCK_DGRAM;
  char port[8];
  snprintf(port, sizeof(port), "%u", pc->url.port);
  int rv = getaddrinfo(pc->url.host, port, &hints, &res);
  if (rv != 0) {
    masq_log(MASQ_LOG_ERR, "cannot resolve proxy host %s: %s", pc->url.host, gai_strerror(rv));
    return -1;
  }
  memcpy(&pc->remote.u.ss, res->ai_addr, res->ai_addrlen);
  pc->remote.len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

/* Opens a socket and a QUIC connection to the proxy. */
static int dial(masq_pc *pc) {
  char err[512];
  if (resolve_proxy(pc) != 0) return -1;
  pc->fd = masq_udp_connect(&pc->remote);
  if (pc->fd < 0) {
    masq_log(MASQ_LOG_ERR, "cannot open a UDP socket to the proxy: %s", strerror(errno));
    return -1;
  }
  /* Only masq connect marks its socket, hence its name in the hint. */
  if (pc->set.set_mark && masq_udp_set_mark(pc->fd, pc->set.fwmark) != 0) {
    masq_log(MASQ_LOG_ERR, "cannot set fwmark %u on the proxy socket: %s (masq connect needs "
             "CAP_NET_ADMIN)", pc->set.fwmark, strerror(errno));
    close(pc->fd);
    pc->fd = -1;
    return -1;
  }
  pc->local.len = sizeof(pc->local.u.ss);
  if (getsockname(pc->fd, &pc->local.u.sa, &pc->local.len) != 0 ||
      masq_io_start(pc->loop, &pc->io, pc->fd, MASQ_EV_READ, on_socket, pc) != 0) {
    masq_log(MASQ_LOG_ERR, "cannot watch the socket to the proxy: %s", strerror(errno));
    close(pc->fd);
    pc->fd = -1;
    return -1;
  }
  ngtcp2_addr la = {&pc->local.u.sa, pc->local.len}, ra = {&pc->remote.u.sa, pc->remote.len};
  pc->c = masq_conn_client_new(&pc->cfg, &pc->cb, pc, &la, &ra, masq_now(), err, sizeof(err));
  if (!pc->c) {
    masq_log(MASQ_LOG_ERR, "%s", err);
    masq_io_stop(pc->loop, &pc->io);
    close(pc->fd);
    pc->fd = -1;
    return -1;
  }
  pc->dirty = 1; /* the loop's write pass sends the first Initial */
  return 0;
}

static void add_stats(masq_conn_stats *t, const masq_conn_stats *s) {
  t->dgram_tx += s->dgram_tx;
  t->dgram_rx += s->dgram_rx;
  t->capsule_dgram_tx += s->capsule_dgram_tx;
  t->capsule_dgram_rx += s->capsule_dgram_rx;
  t->drop_too_big += s->drop_too_big;
  t->drop_queue_full += s->drop_queue_full;
  t->drop_unknown_context += s->drop_unknown_context;
  t->drop_unknown_stream += s->drop_unknown_stream;
  t->drop_capsule_too_big += s->drop_capsule_too_big;
  t->capsules_skipped += s->capsules_skipped;
}

void masq_pc_stats(const masq_pc *pc, masq_conn_stats *out) {
  *out = pc->total;
  if (pc->c) add_stats(out, masq_conn_get_stats(pc->c));
}

/* Drops a dead connection. Its open streams are reported closed, which
 * tells their flows (TCP flows end, UDP flows wait for a new tunnel). */
static void hangup(masq_pc *pc) {
  add_stats(&pc->total, masq_conn_get_stats(pc->c));
  masq_timer_stop(pc->loop, &pc->timer);
  pc->ready = 0;
  masq_conn *c = pc->c;
  pc->c = NULL; /* releases from on_close must not touch the dying session */
  masq_conn_free(c);
  masq_io_stop(pc->loop, &pc->io);
  close(pc->fd);
  pc->fd = -1;
}

static void on_retry(masq_loop *loop, masq_timer *t) {
  masq_pc *pc = t->ud;
  pc->backoff = pc->backoff * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : pc->backoff * 2;
  if (dial(pc) != 0) masq_timer_set(loop, t, masq_now() + pc->backoff);
}

masq_pc *masq_pc_new(masq_loop *loop, const masq_opts *o) {
  char err[512];
  masq_pc *pc = calloc(1, sizeof(*pc));
  if (!pc) {
    masq_log(MASQ_LOG_ERR, "out of memory");
    return NULL;
  }
  pc->o = o;
  pc->loop = loop;
  pc->fd = -1;
  pc->exit_code = 1;
  masq_timer_init(&pc->timer, on_timer, pc);
  masq_timer_init(&pc->retry, on_retry, pc);
  pc->cb = callbacks;
  if (masq_proxy_url_parse(o->proxy, &pc->url, err, sizeof(err)) != 0) {
    masq_log(MASQ_LOG_ERR, "--proxy %s: %s", o->proxy, err);
    free(pc);
    return NULL;
  }
  pc->creds = masq_tls_client_creds(o->ca[0] ? o->ca : NULL, o->insecure, err, sizeof(err));
  if (!pc->creds) {
    masq_log(MASQ_LOG_ERR, "%s", err);
    free(pc);
    return NULL;
  }
  if (o->insecure) masq_log(MASQ_LOG_WARN, "--insecure: the proxy's certificate is not verified");
  pc->cfg.creds = pc->creds;
  pc->cfg.sni = pc->url.host;
  pc->cfg.insecure = o->insecure;
  pc->cfg.idle_timeout = 30 * NGTCP2_SECONDS;
  pc->cfg.cc_bbr = strcmp(o->cc, "cubic") != 0; /* --cc, default bbr */
  pc->backoff = BACKOFF_MIN_NS;
  if (masq_loop_add_hook(loop, service, pc) != 0 ||
      masq_loop_add_signal(loop, SIGINT, on_signal, pc) != 0 ||
      masq_loop_add_signal(loop, SIGTERM, on_signal, pc) != 0) {
    masq_log(MASQ_LOG_ERR, "cannot set up the event loop: %s", strerror(errno));
    gnutls_certificate_free_credentials(pc->creds);
    free(pc);
    return NULL;
  }
  return pc;
}

void masq_pc_configure(masq_pc *pc, const masq_pc_settings *s) {
  pc->set = *s;
  pc->cfg.dgram_queue = s->dgram_queue;
  /* Only on request: a session with on_capsule aborts a stream whose
   * capsule is too big to hold, where one without skips it, as
   * CONNECT-UDP flows should. */
  pc->cb.on_capsule = s->capsules ? on_capsule : NULL;
}

int masq_pc_start(masq_pc *pc) { return dial(pc); }

int masq_pc_loop(masq_pc *pc) {
  if (masq_loop_run(pc->loop) != 0) {
    masq_log(MASQ_LOG_ERR, "event loop failed: %s", strerror(errno));
    pc->exit_code = 1;
    pc->stopping = 1; /* the streams' on_close in masq_pc_free: nothing new */
  }
  return pc->exit_code;
}

int masq_pc_run(masq_pc *pc) {
  int rc = masq_pc_loop(pc);
  masq_conn_stats total;
  masq_pc_stats(pc, &total);
  const masq_conn_stats *st = &total;
  masq_log(MASQ_LOG_INFO,
           "datagrams tx %llu rx %llu; dropped: %llu before the session (no tunnel, refused "
           "or malformed, or a local socket failed), %llu too big, %llu on a full send queue",
           (unsigned long long)st->dgram_tx, (unsigned long long)st->dgram_rx,
           (unsigned long long)pc->drops, (unsigned long long)st->drop_too_big,
           (unsigned long long)st->drop_queue_full);
  return rc;
}

void masq_pc_free(masq_pc *pc) {
  if (!pc) return;
  masq_timer_stop(pc->loop, &pc->retry);
  masq_timer_stop(pc->loop, &pc->timer);
  if (pc->c) {
    masq_conn *c = pc->c;
    pc->c = NULL;
    pc->ready = 0;
    masq_conn_free(c);
  }
  if (pc->fd >= 0) {
    masq_io_stop(pc->loop, &pc->io);
    close(pc->fd);
  }
  if (pc->creds) gnutls_certificate_free_credentials(pc->creds);
  free(pc);
}
