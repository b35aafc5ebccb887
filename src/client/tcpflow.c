/* TCP flows over plain CONNECT streams: see tcpflow.h. */
#include "client/tcpflow.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "io/log.h"
#include "io/net.h"
#include "proto/wire.h"

#define NS_PER_S 1000000000ull
/* The proxy answers a CONNECT within its own connect timeout (10 s by
 * default); this only catches a proxy that never answers, or a request
 * queued behind streams that never end. */
#define CONNECT_TIMEOUT_S 60
/* After an error reply: how long to wait for the application to close
 * before the socket is closed anyway. */
#define LINGER_S 2
/* The output ring starts at this size when the tunnel opens and doubles
 * while the application reads slower than the proxy sends. The proxy can
 * never have more unconsumed bytes in flight than the stream's receive
 * window (at most 16 MiB with ngtcp2's auto-tuning), so the cap is a
 * safety net, not a policy. */
#define OUT_MIN (64 * 1024)
#define OUT_MAX (32 * 1024 * 1024)
/* Reads per wake-up, so one busy flow cannot starve the others. */
#define READS_PER_EVENT 8
#define ACCEPTS_PER_EVENT 64
#define ACCEPT_PAUSE_NS (100ull * 1000000ull)

enum { TF_NEGOTIATE, TF_CONNECTING, TF_OPEN, TF_HOLD, TF_CLOSING };

struct masq_tfs {
  masq_loop *loop;
  masq_pc *pc;
  masq_tf *flush; /* flows with output or state to push this iteration */
  masq_tf *all;
  uint64_t nflows, total, up, down;
};

static void tf_free(masq_tf *f);
static void tf_update_io(masq_tf *f);
static void tf_schedule(masq_tf *f);

static masq_tf *tf_of(masq_pc_req *r) { return (masq_tf *)r; }

masq_pc *masq_tfs_pc(masq_tfs *m) { return m->pc; }
masq_loop *masq_tfs_loop(masq_tfs *m) { return m->loop; }

/* ---- the output ring ---------------------------------------------------- */

static int ring_reserve(masq_tf *f, size_t n) {
  if (f->out_cap - f->out_len >= n) return 0;
  size_t need = f->out_len + n, cap = f->out_cap ? f->out_cap : OUT_MIN;
  while (cap < need) cap *= 2;
  if (cap > OUT_MAX) return -1;
  uint8_t *b = malloc(cap);
  if (!b) return -1;
  /* Linearise into the new buffer: the head moves to 0. */
  size_t first = f->out_cap - f->out_head < f->out_len ? f->out_cap - f->out_head : f->out_len;
  if (f->out_len) {
    memcpy(b, f->out + f->out_head, first);
    memcpy(b + first, f->out, f->out_len - first);
  }
  free(f->out);
  f->out = b;
  f->out_cap = cap;
  f->out_head = 0;
  return 0;
}

static int ring_append(masq_tf *f, const uint8_t *p, size_t n) {
  if (ring_reserve(f, n) != 0) return -1;
  size_t tail = (f->out_head + f->out_len) % f->out_cap;
  size_t first = f->out_cap - tail < n ? f->out_cap - tail : n;
  memcpy(f->out + tail, p, first);
  memcpy(f->out, p + first, n - first);
  f->out_len += n;
  return 0;
}

/* ---- closing ------------------------------------------------------------- */

static void set_linger0(int fd) {
  struct linger lg = {1, 0};
  /* Only makes close() send an RST; if it fails the close is a FIN. */
  (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void tf_free(masq_tf *f) {
  masq_tfs *m = f->m;
  if (f->ops->on_free) f->ops->on_free(f);
  masq_pc_release(m->pc, &f->req, MASQ_H3_REQUEST_CANCELLED);
  if (f->flushing) {
    if (f->fprev) f->fprev->fnext = f->fnext;
    else m->flush = f->fnext;
    if (f->fnext) f->fnext->fprev = f->fprev;
  }
  if (f->aprev) f->aprev->anext = f->anext;
  else m->all = f->anext;
  if (f->anext) f->anext->aprev = f->aprev;
  masq_timer_stop(m->loop, &f->timer);
  masq_io_stop(m->loop, &f->io);
  if (f->fd >= 0) close(f->fd);
  m->nflows--;
  m->up += f->up;
  m->down += f->down;
  if (f->authority[0])
    masq_log(MASQ_LOG_DEBUG, "tcp flow to %s closed: %llu bytes up, %llu down", f->authority,
             (unsigned long long)f->up, (unsigned long long)f->down);
  free(f->out);
  free(f);
}

void masq_tf_reset(masq_tf *f) {
  if (f->fd >= 0) set_linger0(f->fd);
  tf_free(f);
}

/* A local error: the application's connection is gone, so cancel the
 * request or tunnel (tf_free resets the stream). */
static void tf_local_error(masq_tf *f, const char *what, int err) {
  masq_log(MASQ_LOG_DEBUG, "tcp flow to %s: %s: %s", f->authority[0] ? f->authority : "(none)",
           what, strerror(err));
  tf_free(f);
}

void masq_tf_close(masq_tf *f) {
  masq_pc_release(f->m->pc, &f->req, MASQ_H3_REQUEST_CANCELLED);
  f->state = TF_CLOSING;
  masq_timer_set(f->m->loop, &f->timer, masq_now() + LINGER_S * NS_PER_S);
  tf_schedule(f);
}

/* ---- socket events ---------------------------------------------------- */

static void tf_update_io(masq_tf *f) {
  uint32_t ev = 0;
  int pending = f->in_off < f->in_len;
  switch (f->state) {
    case TF_NEGOTIATE:
      if (f->in_len < MASQ_TF_INBUF) ev |= MASQ_EV_READ;
      break;
    case TF_OPEN:
      if (!f->local_eof && !pending) ev |= MASQ_EV_READ;
      break;
    case TF_HOLD:
      ev |= MASQ_EV_READ;
      break;
    case TF_CLOSING:
      if (f->shut_wr) ev |= MASQ_EV_READ; /* drain until the application closes */
      break;
    default:
      break;
  }
  if (f->out_len) ev |= MASQ_EV_WRITE;
  /* Nothing wanted: leave the epoll set, or a hang-up would be reported
   * over and over while the flow waits (for the proxy, or for room). */
  if (ev == 0) {
    masq_io_stop(f->m->loop, &f->io);
    return;
  }
  if (f->io.fd < 0) {
    if (masq_io_start(f->m->loop, &f->io, f->fd, ev, f->io.cb, f) != 0) {
      masq_log_rl(MASQ_LOG_WARN, "cannot watch a local connection: %s", strerror(errno));
      masq_tf_reset(f);
    }
    return;
  }
  masq_io_update(f->m->loop, &f->io, ev);
}

static void tf_schedule(masq_tf *f) {
  if (f->flushing) return;
  masq_tfs *m = f->m;
  f->flushing = 1;
  f->fprev = NULL;
  f->fnext = m->flush;
  if (m->flush) m->flush->fprev = f;
  m->flush = f;
}

/* Both directions are done: the stream's FIN is queued (the session
 * delivers it after we let go) and the socket is shut for writing. */
static int tf_maybe_done(masq_tf *f) {
  if (f->state != TF_OPEN || !f->fin_sent || !f->shut_wr) return 0;
  masq_pc_release(f->m->pc, &f->req, MASQ_PC_FIN);
  tf_free(f);
  return 1;
}

/* Writes what the ring holds; returns stream credit for the tunnel's
 * bytes the socket took. Returns -1 if the flow was freed. */
static int tf_write(masq_tf *f) {
  while (f->out_len) {
    struct iovec iov[2];
    size_t first = f->out_cap - f->out_head < f->out_len ? f->out_cap - f->out_head : f->out_len;
    iov[0].iov_base = f->out + f->out_head;
    iov[0].iov_len = first;
    iov[1].iov_base = f->out;
    iov[1].iov_len = f->out_len - first;
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = iov[1].iov_len ? 2 : 1};
    ssize_t n = sendmsg(f->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      tf_local_error(f, "write", errno);
      return -1;
    }
    size_t w = (size_t)n, mine = w < f->out_local ? w : f->out_local;
    f->out_local -= mine;
    f->out_head = (f->out_head + w) % f->out_cap;
    f->out_len -= w;
    if (w > mine) {
      masq_conn *c = masq_pc_conn(f->m->pc);
      if (c && f->req.sid >= 0) masq_conn_stream_consume(c, f->req.sid, w - mine);
      masq_pc_touch(f->m->pc);
      f->down += w - mine;
    }
  }
  if (f->out_len == 0) f->out_head = 0;
  return 0;
}

/* One flush: write, then the half-close the state calls for. */
static void tf_flush(masq_tf *f) {
  if (tf_write(f) != 0) return;
  if (f->out_len == 0 && !f->shut_wr &&
      ((f->state == TF_OPEN && f->remote_eof) || f->state == TF_CLOSING)) {
    if (shutdown(f->fd, SHUT_WR) != 0 && errno != ENOTCONN) {
      tf_local_error(f, "shutdown", errno);
      return;
    }
    f->shut_wr = 1;
    if (tf_maybe_done(f)) return;
  }
  tf_update_io(f);
}

static void tfs_flush_all(void *ud) {
  masq_tfs *m = ud;
  while (m->flush) {
    masq_tf *f = m->flush;
    m->flush = f->fnext;
    if (m->flush) m->flush->fprev = NULL;
    f->flushing = 0;
    f->fnext = f->fprev = NULL;
    tf_flush(f);
  }
}

/* Offers the input not sent yet to the stream. Returns 1 if all of it
 * went, 0 if the stream is full (on_writable resumes), -1 if freed. */
static int tf_push(masq_tf *f) {
  masq_conn *c = masq_pc_conn(f->m->pc);
  if (f->in_off < f->in_len) {
    if (!c || f->req.sid < 0) return 0;
    long n = masq_conn_stream_send(c, f->req.sid, f->in + f->in_off, f->in_len - f->in_off);
    if (n < 0) {
      masq_log_rl(MASQ_LOG_WARN, "tcp flow to %s: the stream refused data (%ld)", f->authority, n);
      masq_tf_reset(f);
      return -1;
    }
    f->in_off += (size_t)n;
    f->up += (uint64_t)n;
    masq_pc_touch(f->m->pc);
    if (f->in_off < f->in_len) return 0;
  }
  f->in_off = f->in_len = 0;
  if (f->local_eof && !f->fin_sent && c && f->req.sid >= 0) {
    masq_conn_end_stream(c, f->req.sid);
    f->fin_sent = 1;
    masq_pc_touch(f->m->pc);
    if (tf_maybe_done(f)) return -1;
  }
  return 1;
}

/* Drops what is over the upload limit from the input just read. */
static void tf_clip(masq_tf *f) {
  if (f->upload_left < 0) return;
  size_t have = f->in_len - f->in_off;
  if (have > (uint64_t)f->upload_left) {
    f->in_len = f->in_off + (size_t)f->upload_left;
    have = (size_t)f->upload_left;
  }
  f->upload_left -= (int64_t)have;
}

/* Reads into the free tail of the input buffer. Returns bytes read, 0
 * at EOF, -1 on EAGAIN, -2 if the flow was freed. */
static ssize_t tf_read(masq_tf *f) {
  for (;;) {
    ssize_t n = recv(f->fd, f->in + f->in_len, MASQ_TF_INBUF - f->in_len, MSG_DONTWAIT);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
    tf_local_error(f, "read", errno);
    return -2;
  }
}

static void tf_read_open(masq_tf *f) {
  /* Always ends with a push, so nothing read is left unoffered. */
  for (int i = 0;; i++) {
    int r = tf_push(f);
    if (r < 0) return;
    if (r == 0 || f->local_eof || i == READS_PER_EVENT) break;
    ssize_t n = tf_read(f);
    if (n == -2) return;
    if (n == -1) break;
    if (n == 0) {
      f->local_eof = 1; /* the next push sends FIN */
    } else {
      f->in_len = (size_t)n;
      tf_clip(f);
    }
  }
  tf_update_io(f);
}

static void tf_read_negotiate(masq_tf *f) {
  if (f->in_len == MASQ_TF_INBUF) {
    /* The front end cannot make sense of a full buffer: give up. */
    masq_tf_reset(f);
    return;
  }
  ssize_t n = tf_read(f);
  if (n == -2) return;
  if (n == 0) {
    tf_free(f); /* gave up before asking for anything */
    return;
  }
  if (n > 0) {
    f->in_len += (size_t)n;
    f->ops->on_input(f); /* may free f */
    return;
  }
  tf_update_io(f);
}

/* Reads and drops: a held control connection, or the application's
 * last bytes after an error reply (closing with them unread would turn
 * the close into a reset that can destroy the reply). */
static void tf_read_discard(masq_tf *f) {
  for (int i = 0; i < READS_PER_EVENT; i++) {
    f->in_len = 0;
    ssize_t n = tf_read(f);
    if (n == -2) return;
    if (n == -1) return;
    if (n == 0) {
      tf_free(f);
      return;
    }
  }
}

static void on_socket(masq_loop *loop, masq_io *io, uint32_t events) {
  masq_tf *f = io->ud;
  if (events & MASQ_EV_WRITE) {
    if (tf_write(f) != 0) return;
    tf_schedule(f); /* the half-close and the io mask, in the flush pass */
  }
  if (!(events & MASQ_EV_READ)) return;
  switch (f->state) {
    case TF_NEGOTIATE:
      tf_read_negotiate(f);
      break;
    case TF_OPEN:
      tf_read_open(f);
      break;
    case TF_HOLD:
    case TF_CLOSING:
      tf_read_discard(f);
      break;
    default:
      break;
  }
}

static void on_timer(masq_loop *loop, masq_timer *t) {
  masq_tf *f = t->ud;
  switch (f->state) {
    case TF_NEGOTIATE:
      masq_log_rl(MASQ_LOG_INFO, "closing a local connection that sent no complete request");
      tf_free(f);
      return;
    case TF_CONNECTING: {
      masq_log_rl(MASQ_LOG_WARN, "tcp flow to %s: no answer from the proxy in %d s",
                  f->authority, CONNECT_TIMEOUT_S);
      masq_pc_release(f->m->pc, &f->req, MASQ_H3_REQUEST_CANCELLED);
      int v = f->ops->on_response(f, 504, "connection_timeout", NULL);
      if (v == MASQ_TF_RESET) masq_tf_reset(f);
      else masq_tf_close(f);
      return;
    }
    default:
      tf_free(f);
      return;
  }
}

/* ---- stream events -------------------------------------------------- */

static int64_t tf_submit(masq_pc_req *r, masq_conn *c, const char *token) {
  return masq_conn_submit_tcp_connect(c, tf_of(r)->authority, token, r);
}

static void tf_open(masq_tf *f) {
  f->state = TF_OPEN;
  masq_timer_stop(f->m->loop, &f->timer);
  if (ring_reserve(f, OUT_MIN) != 0) {
    masq_log_rl(MASQ_LOG_WARN, "tcp flow to %s: out of memory", f->authority);
    masq_tf_reset(f);
    return;
  }
  tf_clip(f);
  if (tf_push(f) < 0) return;
  tf_schedule(f);
}

static void tf_verdict(masq_tf *f, int status, const char *etype, const masq_reqhdrs *h) {
  int v = f->ops->on_response(f, status, etype, h);
  if (v == MASQ_TF_OPEN && status >= 200 && status < 300) {
    tf_open(f);
    return;
  }
  if (v == MASQ_TF_RESET) masq_tf_reset(f);
  else masq_tf_close(f);
}

static void tf_on_response(masq_pc_req *r, masq_conn *c, int status, const masq_reqhdrs *h) {
  masq_tf *f = tf_of(r);
  if (f->state != TF_CONNECTING) return;
  char etype[64];
  const char *e = NULL;
  if (h->proxy_status.present &&
      masq_fe_proxy_status_error(h->proxy_status.v, h->proxy_status.len, etype,
                                 sizeof(etype)) == 0)
    e = etype;
  if (status < 200 || status >= 300)
    masq_log_rl(MASQ_LOG_INFO, "proxy refused the tunnel to %s: status %d%s%s", f->authority,
                status, h->proxy_status.present ? ", Proxy-Status: " : "",
                h->proxy_status.present ? h->proxy_status.v : "");
  tf_verdict(f, status, e, h);
}

static void tf_on_data(masq_pc_req *r, const uint8_t *p, size_t n) {
  masq_tf *f = tf_of(r);
  if (ring_append(f, p, n) != 0) {
    /* More than the window allows, or no memory: give up on the flow. */
    masq_log_rl(MASQ_LOG_WARN, "tcp flow to %s: cannot buffer %zu more bytes; resetting",
                f->authority, n);
    masq_tf_reset(f);
    return;
  }
  tf_schedule(f);
}

static void tf_on_writable(masq_pc_req *r) {
  masq_tf *f = tf_of(r);
  if (f->state != TF_OPEN) return;
  if (tf_push(f) < 0) return;
  tf_update_io(f);
}

static void tf_on_end(masq_pc_req *r) {
  masq_tf *f = tf_of(r);
  f->remote_eof = 1;
  tf_schedule(f);
}

static void tf_on_close(masq_pc_req *r, uint64_t err) {
  masq_tf *f = tf_of(r);
  if (f->state == TF_CONNECTING) {
    tf_verdict(f, 0, NULL, NULL);
    return;
  }
  if (err != MASQ_H3_NO_ERROR) {
    masq_log(MASQ_LOG_DEBUG, "tcp flow to %s: stream reset (0x%llx)", f->authority,
             (unsigned long long)err);
    masq_tf_reset(f);
    return;
  }
  /* Closed cleanly: whatever the application still sends has nowhere to
   * go; deliver what arrived, then close. */
  f->state = TF_CLOSING;
  masq_timer_set(f->m->loop, &f->timer, masq_now() + LINGER_S * NS_PER_S);
  tf_schedule(f);
}

static const masq_pc_req_ops tf_req_ops = {
    .submit = tf_submit,
    .on_response = tf_on_response,
    .on_data = tf_on_data,
    .on_writable = tf_on_writable,
    .on_end = tf_on_end,
    .on_close = tf_on_close,
};

/* ---- the front ends' calls ------------------------------------------ */

masq_tf *masq_tf_new(masq_tfs *m, int fd, const masq_tf_ops *ops, size_t size,
                     unsigned negotiate_s) {
  masq_tf *f = calloc(1, size < sizeof(*f) ? sizeof(*f) : size);
  if (!f) {
    masq_log_rl(MASQ_LOG_WARN, "out of memory for a new local connection");
    close(fd);
    return NULL;
  }
  masq_pc_req_init(&f->req, &tf_req_ops);
  f->m = m;
  f->ops = ops;
  f->fd = fd;
  f->upload_left = -1;
  f->state = TF_NEGOTIATE;
  f->io.fd = -1;
  f->io.cb = on_socket;
  masq_timer_init(&f->timer, on_timer, f);
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* interactive traffic */
  if (masq_io_start(m->loop, &f->io, fd, MASQ_EV_READ, on_socket, f) != 0) {
    masq_log_rl(MASQ_LOG_WARN, "cannot watch a local connection: %s", strerror(errno));
    close(fd);
    free(f);
    return NULL;
  }
  f->anext = m->all;
  if (m->all) m->all->aprev = f;
  m->all = f;
  m->nflows++;
  m->total++;
  masq_timer_set(m->loop, &f->timer, masq_now() + (uint64_t)negotiate_s * NS_PER_S);
  return f;
}

const uint8_t *masq_tf_input(masq_tf *f, size_t *len) {
  *len = f->in_len - f->in_off;
  return f->in + f->in_off;
}

void masq_tf_consume(masq_tf *f, size_t n) {
  size_t have = f->in_len - f->in_off;
  if (n > have) n = have;
  f->in_off += n;
  if (f->in_off == f->in_len) {
    f->in_off = f->in_len = 0;
  } else if (f->state == TF_NEGOTIATE) {
    /* Keep the next message at the start (the HTTP parser wants it). */
    memmove(f->in, f->in + f->in_off, f->in_len - f->in_off);
    f->in_len -= f->in_off;
    f->in_off = 0;
  }
}

int masq_tf_reply(masq_tf *f, const uint8_t *p, size_t n) {
  if (ring_append(f, p, n) != 0) return -1;
  f->out_local += n;
  tf_schedule(f);
  return 0;
}

void masq_tf_connect(masq_tf *f, const char *authority) {
  snprintf(f->authority, sizeof(f->authority), "%s", authority);
  f->state = TF_CONNECTING;
  masq_timer_set(f->m->loop, &f->timer, masq_now() + CONNECT_TIMEOUT_S * NS_PER_S);
  tf_update_io(f);
  masq_pc_request(f->m->pc, &f->req); /* may fail at once and free f */
}

int masq_tf_send(masq_tf *f, const uint8_t *p, size_t n) {
  masq_conn *c = masq_pc_conn(f->m->pc);
  if (!c || f->req.sid < 0) return -1;
  long w = masq_conn_stream_send(c, f->req.sid, p, n);
  masq_pc_touch(f->m->pc);
  return w == (long)n ? 0 : -1;
}

void masq_tf_limit_upload(masq_tf *f, uint64_t n) {
  f->upload_left = n > INT64_MAX ? INT64_MAX : (int64_t)n;
}

void masq_tf_hold(masq_tf *f) {
  f->state = TF_HOLD;
  f->in_off = f->in_len = 0;
  masq_timer_stop(f->m->loop, &f->timer);
  tf_schedule(f);
}

/* ---- the set ---------------------------------------------------------- */

masq_tfs *masq_tfs_new(masq_loop *loop, masq_pc *pc) {
  masq_tfs *m = calloc(1, sizeof(*m));
  if (!m) {
    masq_log(MASQ_LOG_ERR, "out of memory");
    return NULL;
  }
  m->loop = loop;
  m->pc = pc;
  if (masq_pc_add_flush(pc, tfs_flush_all, m) != 0) {
    masq_log(MASQ_LOG_ERR, "internal error: too many flush hooks");
    free(m);
    return NULL;
  }
  return m;
}

void masq_tfs_free(masq_tfs *m) {
  if (!m) return;
  while (m->all) masq_tf_reset(m->all);
  if (m->total)
    masq_log(MASQ_LOG_INFO, "tcp flows: %llu in all; %llu bytes up, %llu down",
             (unsigned long long)m->total, (unsigned long long)m->up,
             (unsigned long long)m->down);
  free(m);
}

/* ---- listening ---------------------------------------------------- */

static void on_accept_ready(masq_loop *loop, masq_io *io, uint32_t events) {
  masq_tf_listener *l = io->ud;
  for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      l->on_accept(l, fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      /* Level-triggered: accepting again at once would spin. */
      masq_log_rl(MASQ_LOG_WARN, "cannot accept on %s: %s; pausing (raise ulimit -n?)", l->name,
                  strerror(errno));
      masq_io_update(loop, &l->io, 0);
      masq_timer_set(loop, &l->pause, masq_now() + ACCEPT_PAUSE_NS);
    }
    return;
  }
}

static void on_accept_pause(masq_loop *loop, masq_timer *t) {
  masq_tf_listener *l = t->ud;
  masq_io_update(loop, &l->io, MASQ_EV_READ);
}

int masq_tf_listen(masq_tfs *m, masq_tf_listener *l, const char *addrport,
                   void (*on_accept)(masq_tf_listener *l, int fd), void *ud) {
  memset(l, 0, sizeof(*l));
  l->m = m;
  l->fd = -1;
  l->io.fd = -1;
  l->on_accept = on_accept;
  l->ud = ud;
  snprintf(l->name, sizeof(l->name), "%s", addrport);
  masq_timer_init(&l->pause, on_accept_pause, l);
  masq_sockaddr sa;
  if (masq_sockaddr_parse(addrport, &sa) != 0) {
    masq_log(MASQ_LOG_ERR, "cannot listen on %s: not a numeric ADDR:PORT ([V6]:PORT for IPv6)",
             addrport);
    return -1;
  }
  int fd = socket(sa.u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(fd, &sa.u.sa, sa.len) != 0 || listen(fd, 4096) != 0) {
    masq_log(MASQ_LOG_ERR, "cannot listen on TCP %s: %s", addrport, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  if (masq_io_start(m->loop, &l->io, fd, MASQ_EV_READ, on_accept_ready, l) != 0) {
    masq_log(MASQ_LOG_ERR, "cannot watch TCP %s: %s", addrport, strerror(errno));
    close(fd);
    return -1;
  }
  l->fd = fd;
  return 0;
}

void masq_tf_unlisten(masq_tf_listener *l) {
  if (l->fd < 0) return;
  masq_timer_stop(masq_tfs_loop(l->m), &l->pause);
  masq_io_stop(masq_tfs_loop(l->m), &l->io);
  close(l->fd);
  l->fd = -1;
}
