/* masq forward: local UDP and TCP ports forwarded through a MASQUE proxy,
 * ssh -L style. Each local UDP source address gets its own CONNECT-UDP
 * request so replies find their way back, each accepted TCP connection
 * its own plain CONNECT stream; all of them share one QUIC connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/forward.h"
#include "client/proxy_url.h"
#include "client/proxyconn.h"
#include "client/tcpflow.h"
#include "client/udptun.h"
#include "io/log.h"
#include "io/loop.h"
#include "io/net.h"
#include "proto/frontend.h"
#include "proto/wire.h"

#define MAX_FLOWS 4096
/* Per UDP listener: sources hash into this many chains. */
#define FLOW_BUCKETS 256
/* forward --tcp has no negotiation; the value only bounds the (never
 * used) wait for input. */
#define TCP_NEGOTIATE_S 30

typedef struct fwd fwd;
typedef struct listener listener;

typedef struct flow {
  masq_ut ut; /* first: the stream's user pointer */
  listener *l;
  struct flow *hnext;
  masq_sockaddr src;
  char srcname[64];
  uint64_t last_active;
  masq_timer idle;
} flow;

struct listener {
  fwd *f;
  const masq_fwdspec *spec;
  int fd;
  masq_io io;
  char path[1024], authority[512], target[MASQ_FE_AUTHORITY_MAX + 1];
  flow *buckets[FLOW_BUCKETS];
};

typedef struct tcp_listener {
  masq_tf_listener tl;
  char target[MASQ_FE_AUTHORITY_MAX + 1];
} tcp_listener;

struct fwd {
  const masq_opts *o;
  masq_loop *loop;
  masq_pc *pc;
  masq_tfs *tfs;
  listener ls[MASQ_MAX_FORWARDS];
  tcp_listener tls[MASQ_MAX_FORWARDS];
  size_t nls, ntls, nflows;
  uint8_t buf[65536];
};

/* ---- UDP flows: one per local source ------------------------------------ */

static size_t src_bucket(const masq_sockaddr *src) {
  /* FNV-1a over the address as the kernel reported it. */
  uint32_t h = 2166136261u;
  const uint8_t *p = (const uint8_t *)&src->u;
  for (socklen_t i = 0; i < src->len; i++) h = (h ^ p[i]) * 16777619u;
  return h % FLOW_BUCKETS;
}

static flow *flow_find(listener *l, const masq_sockaddr *src) {
  for (flow *fl = l->buckets[src_bucket(src)]; fl; fl = fl->hnext)
    if (fl->src.len == src->len && memcmp(&fl->src.u, &src->u, src->len) == 0) return fl;
  return NULL;
}

static void flow_free(flow *fl) {
  listener *l = fl->l;
  for (flow **pp = &l->buckets[src_bucket(&fl->src)]; *pp; pp = &(*pp)->hnext) {
    if (*pp == fl) {
      *pp = fl->hnext;
      break;
    }
  }
  masq_ut_close(&fl->ut);
  masq_timer_stop(l->f->loop, &fl->idle);
  l->f->nflows--;
  free(fl);
}

static void on_flow_idle(masq_loop *loop, masq_timer *t) {
  flow *fl = t->ud;
  uint64_t deadline = fl->last_active + (uint64_t)fl->l->f->o->idle_timeout * 1000000000ull;
  if (masq_now() < deadline) {
    masq_timer_set(loop, t, deadline);
    return;
  }
  flow_free(fl); /* ends its tunnel with FIN */
}

static void flow_on_datagram(masq_ut *t, const uint8_t *p, size_t n) {
  flow *fl = (flow *)t;
  fl->last_active = masq_now();
  if (sendto(fl->l->fd, p, n, 0, &fl->src.u.sa, fl->src.len) < 0) masq_pc_count_drop(t->pc);
}

static const masq_ut_ops flow_ut_ops = {.on_datagram = flow_on_datagram};

static flow *flow_new(listener *l, const masq_sockaddr *src) {
  fwd *f = l->f;
  if (f->nflows >= MAX_FLOWS) return NULL;
  flow *fl = calloc(1, sizeof(*fl));
  if (!fl) return NULL;
  fl->l = l;
  fl->src = *src;
  masq_sockaddr_str(src, fl->srcname, sizeof(fl->srcname));
  if (masq_ut_init(&fl->ut, f->pc, &flow_ut_ops, l->authority, l->path, l->target,
                   fl->srcname) != 0) {
    free(fl);
    return NULL;
  }
  fl->last_active = masq_now();
  masq_timer_init(&fl->idle, on_flow_idle, fl);
  masq_timer_set(f->loop, &fl->idle, fl->last_active + (uint64_t)f->o->idle_timeout * 1000000000ull);
  size_t b = src_bucket(src);
  fl->hnext = l->buckets[b];
  l->buckets[b] = fl;
  f->nflows++;
  return fl;
}

static void on_local_udp(masq_loop *loop, masq_io *io, uint32_t events) {
  listener *l = io->ud;
  fwd *f = l->f;
  for (int i = 0; i < 64; i++) {
    masq_sockaddr src;
    size_t seg;
    ssize_t n = masq_udp_recv(l->fd, f->buf, sizeof(f->buf), &src, &seg);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EMSGSIZE) masq_pc_count_drop(f->pc);
      continue;
    }
    flow *fl = flow_find(l, &src);
    if (!fl && !(fl = flow_new(l, &src))) {
      masq_pc_count_drop(f->pc);
      continue;
    }
    fl->last_active = masq_now();
    for (size_t off = 0; off < (size_t)n; off += seg) {
      size_t len = (size_t)n - off < seg ? (size_t)n - off : seg;
      masq_ut_send(&fl->ut, f->buf + off, len);
    }
  }
}

/* ---- TCP: one plain CONNECT per accepted connection --------------------- */

static void tcp_on_input(masq_tf *t) { (void)t; /* connected at once: never asked */ }

static int tcp_on_response(masq_tf *t, int status, const char *etype, const masq_reqhdrs *h) {
  /* A refusal resets the application's connection, the nearest thing
   * TCP has to "the far end refused". */
  return status >= 200 && status < 300 ? MASQ_TF_OPEN : MASQ_TF_RESET;
}

static const masq_tf_ops tcp_ops = {.on_input = tcp_on_input, .on_response = tcp_on_response};

static void on_tcp_accept(masq_tf_listener *tl, int fd) {
  tcp_listener *l = (tcp_listener *)tl;
  masq_tf *t = masq_tf_new(tl->m, fd, &tcp_ops, sizeof(masq_tf), TCP_NEGOTIATE_S);
  if (t) masq_tf_connect(t, l->target);
}

/* ---- setup ------------------------------------------------------------------ */

static int bind_name(const masq_fwdspec *spec, char *out, size_t cap) {
  int v6 = strchr(spec->bind, ':') != NULL;
  int n = snprintf(out, cap, v6 ? "[%s]:%u" : "%s:%u", spec->bind, spec->port);
  return n > 0 && (size_t)n < cap ? 0 : -1;
}

static int open_udp(fwd *f, listener *l, const masq_fwdspec *spec) {
  l->f = f;
  l->spec = spec;
  char hostport[16];
  snprintf(hostport, sizeof(hostport), "%u", spec->hostport);
  if (masq_proxy_url_target(masq_pc_url(f->pc), f->o->udp_template, spec->host, hostport,
                            l->authority, sizeof(l->authority), l->path, sizeof(l->path)) != 0) {
    masq_log(MASQ_LOG_ERR, "--udp-template %s: cannot expand it for %s:%u", f->o->udp_template,
             spec->host, spec->hostport);
    return -1;
  }
  masq_fe_authority(spec->host, spec->hostport, l->target, sizeof(l->target));
  char bind[128];
  masq_sockaddr sa;
  if (bind_name(spec, bind, sizeof(bind)) != 0 || masq_sockaddr_parse(bind, &sa) != 0) {
    masq_log(MASQ_LOG_ERR, "--udp: bind address %s is not a numeric IP address", spec->bind);
    return -1;
  }
  l->fd = masq_udp_open(&sa, NULL);
  if (l->fd < 0) {
    masq_log(MASQ_LOG_ERR, "cannot listen on UDP %s: %s", bind, strerror(errno));
    return -1;
  }
  if (masq_io_start(f->loop, &l->io, l->fd, MASQ_EV_READ, on_local_udp, l) != 0) {
    masq_log(MASQ_LOG_ERR, "cannot watch UDP %s: %s", bind, strerror(errno));
    return -1;
  }
  masq_log(MASQ_LOG_INFO, "forwarding udp %s -> %s", bind, l->target);
  return 0;
}

static int open_tcp(fwd *f, tcp_listener *l, const masq_fwdspec *spec) {
  char bind[128];
  if (bind_name(spec, bind, sizeof(bind)) != 0) return -1;
  if (masq_fe_authority(spec->host, spec->hostport, l->target, sizeof(l->target)) < 0) {
    masq_log(MASQ_LOG_ERR, "--tcp: target %s:%u is too long", spec->host, spec->hostport);
    return -1;
  }
  if (masq_tf_listen(f->tfs, &l->tl, bind, on_tcp_accept, f) != 0) return -1;
  masq_log(MASQ_LOG_INFO, "forwarding tcp %s -> %s", bind, l->target);
  return 0;
}

static void teardown(fwd *f) {
  /* Flows first, while the connection they release their streams on is
   * still there; then the connection, whose remaining streams have no
   * owners left to tell. */
  for (size_t i = 0; i < f->nls; i++) {
    listener *l = &f->ls[i];
    for (size_t b = 0; b < FLOW_BUCKETS; b++)
      while (l->buckets[b]) flow_free(l->buckets[b]);
    if (l->fd >= 0) {
      masq_io_stop(f->loop, &l->io);
      close(l->fd);
    }
  }
  for (size_t i = 0; i < f->ntls; i++) masq_tf_unlisten(&f->tls[i].tl);
  masq_tfs_free(f->tfs);
  masq_pc_free(f->pc);
  if (f->loop) masq_loop_free(f->loop);
}

int masq_forward_run(const masq_opts *o) {
  static fwd f;
  memset(&f, 0, sizeof(f));
  f.o = o;
  int rc = 1;
  if (o->ntcp) masq_pc_raise_nofile();
  f.loop = masq_loop_new();
  if (!f.loop) {
    masq_log(MASQ_LOG_ERR, "cannot create the event loop: %s", strerror(errno));
    return 1;
  }
  if (!(f.pc = masq_pc_new(f.loop, o))) goto out;
  if (!(f.tfs = masq_tfs_new(f.loop, f.pc))) goto out;
  for (size_t i = 0; i < o->nudp; i++) {
    f.ls[i].fd = -1;
    f.nls = i + 1;
    if (open_udp(&f, &f.ls[i], &o->udp[i]) != 0) goto out;
  }
  for (size_t i = 0; i < o->ntcp; i++) {
    f.tls[i].tl.fd = -1;
    f.ntls = i + 1;
    if (open_tcp(&f, &f.tls[i], &o->tcp[i]) != 0) goto out;
  }
  if (masq_pc_start(f.pc) != 0) goto out;
  rc = masq_pc_run(f.pc);
out:
  teardown(&f);
  return rc;
}
