/* masq socks: SOCKS5 over the shared proxy connection; see socks.h. */
#include "client/socks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/proxyconn.h"
#include "client/tcpflow.h"
#include "client/udptun.h"
#include "io/log.h"
#include "io/loop.h"
#include "io/net.h"
#include "proto/frontend.h"
#include "proto/request.h"
#include "proto/socks5.h"

/* A client has this long to finish the greeting, authentication and
 * request (RFC 1928 has no limit; this keeps idle sockets from piling up). */
#define NEGOTIATE_S 30
/* Targets one UDP association may talk to, and their hash chains. */
#define ASSOC_TARGETS 64
#define ASSOC_BUCKETS 64

typedef struct socks socks;
typedef struct assoc assoc;

/* One SOCKS connection. */
typedef struct sconn {
  masq_tf tf; /* first */
  socks *s;
  masq_socks5_parser p;
  assoc *assoc; /* set once it became a UDP ASSOCIATE control connection */
} sconn;

/* One target of a UDP association: a CONNECT-UDP tunnel to it. */
typedef struct target {
  masq_ut ut; /* first */
  assoc *a;
  struct target *hnext;
  masq_socks5_addr dst;
  size_t hdrlen; /* the SOCKS UDP header replies carry (the target's address) */
  uint8_t hdr[MASQ_SOCKS5_UDP_HDR_MAX];
  char authority[512], path[1024], name[MASQ_FE_AUTHORITY_MAX + 1];
} target;

struct assoc {
  sconn *ctl;
  int fd;
  masq_io io;
  masq_ip client_ip;  /* only datagrams from the control connection's host */
  masq_sockaddr peer; /* the client's UDP address, learnt from its first datagram */
  int have_peer;
  size_t ntargets;
  target *buckets[ASSOC_BUCKETS];
};

struct socks {
  const masq_opts *o;
  masq_loop *loop;
  masq_pc *pc;
  masq_tfs *tfs;
  masq_tf_listener l;
  int require_auth;
  uint8_t buf[MASQ_SOCKS5_UDP_HDR_MAX + 65536];
};

static void reply(sconn *sc, uint8_t rep, const masq_socks5_addr *bnd) {
  uint8_t out[MASQ_SOCKS5_REPLY_MAX];
  size_t n = masq_socks5_reply_encode(rep, bnd, out, sizeof(out));
  if (n == 0 || masq_tf_reply(&sc->tf, out, n) != 0)
    masq_log_rl(MASQ_LOG_WARN, "socks: cannot queue a reply");
}

/* An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4
 * peer) becomes the IPv4 address, so comparisons and replies use one
 * form. */
static void unmap(masq_ip *ip) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (ip->family != 6 || memcmp(ip->a, prefix, 12) != 0) return;
  memmove(ip->a, ip->a + 12, 4);
  memset(ip->a + 4, 0, 12);
  ip->family = 4;
}

static int sockaddr_ip(const masq_sockaddr *sa, masq_ip *ip, uint16_t *port) {
  if (masq_sockaddr_to_ip(sa, ip, port) != 0) return -1;
  unmap(ip);
  return 0;
}

/* ---- UDP ASSOCIATE ---------------------------------------------------- */

static size_t addr_bucket(const masq_socks5_addr *a) {
  uint32_t h = 2166136261u;
  const uint8_t *p = a->atyp == MASQ_SOCKS5_ATYP_DOMAIN ? (const uint8_t *)a->host : a->ip.a;
  size_t n = a->atyp == MASQ_SOCKS5_ATYP_DOMAIN ? a->hostlen : (a->ip.family == 4 ? 4 : 16);
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  h = (h ^ (a->port & 0xff)) * 16777619u;
  h = (h ^ (a->port >> 8)) * 16777619u;
  return h % ASSOC_BUCKETS;
}

static int addr_eq(const masq_socks5_addr *x, const masq_socks5_addr *y) {
  if (x->atyp != y->atyp || x->port != y->port) return 0;
  if (x->atyp == MASQ_SOCKS5_ATYP_DOMAIN)
    return x->hostlen == y->hostlen && memcmp(x->host, y->host, x->hostlen) == 0;
  return x->ip.family == y->ip.family && memcmp(x->ip.a, y->ip.a, 16) == 0;
}

static void target_on_datagram(masq_ut *ut, const uint8_t *p, size_t n) {
  target *t = (target *)ut;
  assoc *a = t->a;
  socks *s = a->ctl->s;
  if (!a->have_peer || t->hdrlen + n > sizeof(s->buf)) {
    masq_pc_count_drop(s->pc);
    return;
  }
  memcpy(s->buf, t->hdr, t->hdrlen);
  memcpy(s->buf + t->hdrlen, p, n);
  if (sendto(a->fd, s->buf, t->hdrlen + n, 0, &a->peer.u.sa, a->peer.len) < 0)
    masq_pc_count_drop(s->pc);
}

static const masq_ut_ops target_ops = {.on_datagram = target_on_datagram};

static target *target_get(assoc *a, const masq_socks5_addr *dst) {
  size_t b = addr_bucket(dst);
  for (target *t = a->buckets[b]; t; t = t->hnext)
    if (addr_eq(&t->dst, dst)) return t;
  if (a->ntargets == ASSOC_TARGETS) return NULL;
  socks *s = a->ctl->s;
  target *t = calloc(1, sizeof(*t));
  if (!t) return NULL;
  t->a = a;
  t->dst = *dst;
  char host[MASQ_MAX_HOST + 1], port[8];
  if (dst->atyp == MASQ_SOCKS5_ATYP_DOMAIN) {
    if (masq_target_host_parse(dst->host, NULL) < 0) goto bad;
    snprintf(host, sizeof(host), "%s", dst->host);
  } else if (!masq_ip_format(&dst->ip, host, sizeof(host))) {
    goto bad;
  }
  snprintf(port, sizeof(port), "%u", dst->port);
  t->hdrlen = masq_socks5_udp_encode(dst, t->hdr, sizeof(t->hdr));
  if (t->hdrlen == 0 || dst->port == 0 ||
      masq_fe_authority(host, dst->port, t->name, sizeof(t->name)) < 0 ||
      masq_proxy_url_target(masq_pc_url(s->pc), s->o->udp_template, host, port, t->authority,
                            sizeof(t->authority), t->path, sizeof(t->path)) != 0 ||
      masq_ut_init(&t->ut, s->pc, &target_ops, t->authority, t->path, t->name, NULL) != 0)
    goto bad;
  t->hnext = a->buckets[b];
  a->buckets[b] = t;
  a->ntargets++;
  return t;
bad:
  free(t);
  return NULL;
}

/* Checks the sender and the header of one datagram from the client and
 * passes its payload on (RFC 1928 §7: anything wrong is dropped). */
static void assoc_datagram(assoc *a, const masq_sockaddr *from, const uint8_t *d, size_t n) {
  socks *s = a->ctl->s;
  masq_ip ip;
  uint16_t port;
  if (sockaddr_ip(from, &ip, &port) != 0 || ip.family != a->client_ip.family ||
      memcmp(ip.a, a->client_ip.a, 16) != 0) {
    masq_log_rl(MASQ_LOG_INFO, "socks: dropped a UDP datagram from a host other than the "
                               "association's client");
    masq_pc_count_drop(s->pc);
    return;
  }
  if (a->have_peer && (from->len != a->peer.len || memcmp(&from->u, &a->peer.u, from->len) != 0)) {
    masq_pc_count_drop(s->pc);
    return;
  }
  masq_socks5_addr dst;
  size_t hdrlen;
  if (masq_socks5_udp_decode(d, n, &dst, &hdrlen) != 0) {
    masq_pc_count_drop(s->pc);
    return;
  }
  target *t = target_get(a, &dst);
  if (!t) {
    masq_log_rl(MASQ_LOG_INFO, "socks: dropped a UDP datagram to a target refused locally "
                               "(bad address, or %d targets already)", ASSOC_TARGETS);
    masq_pc_count_drop(s->pc);
    return;
  }
  if (!a->have_peer) {
    a->peer = *from;
    a->have_peer = 1;
  }
  masq_ut_send(&t->ut, d + hdrlen, n - hdrlen);
}

static void on_assoc_socket(masq_loop *loop, masq_io *io, uint32_t events) {
  assoc *a = io->ud;
  socks *s = a->ctl->s;
  for (int i = 0; i < 64; i++) {
    masq_sockaddr from;
    size_t seg;
    ssize_t n = masq_udp_recv(a->fd, s->buf, sizeof(s->buf), &from, &seg);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      masq_pc_count_drop(s->pc);
      continue;
    }
    for (size_t off = 0; off < (size_t)n; off += seg) {
      size_t len = (size_t)n - off < seg ? (size_t)n - off : seg;
      assoc_datagram(a, &from, s->buf + off, len);
    }
  }
}

static void assoc_free(assoc *a) {
  for (size_t b = 0; b < ASSOC_BUCKETS; b++) {
    while (a->buckets[b]) {
      target *t = a->buckets[b];
      a->buckets[b] = t->hnext;
      masq_ut_close(&t->ut);
      free(t);
    }
  }
  if (a->fd >= 0) {
    masq_io_stop(a->ctl->s->loop, &a->io);
    close(a->fd);
  }
  free(a);
}

/* UDP ASSOCIATE: a relay socket on the address the client reached us
 * at, reported in the reply; the TCP connection then only says how long
 * the association lives (RFC 1928 §7). */
static void do_associate(sconn *sc) {
  socks *s = sc->s;
  masq_sockaddr local, peer;
  local.len = sizeof(local.u.ss);
  peer.len = sizeof(peer.u.ss);
  assoc *a = calloc(1, sizeof(*a));
  if (!a) goto fail;
  a->fd = -1;
  a->ctl = sc;
  if (getsockname(sc->tf.fd, &local.u.sa, &local.len) != 0 ||
      getpeername(sc->tf.fd, &peer.u.sa, &peer.len) != 0 ||
      sockaddr_ip(&peer, &a->client_ip, NULL) != 0)
    goto fail;
  if (local.u.sa.sa_family == AF_INET) local.u.in.sin_port = 0;
  else local.u.in6.sin6_port = 0;
  a->fd = masq_udp_open(&local, NULL);
  masq_sockaddr bound;
  bound.len = sizeof(bound.u.ss);
  masq_socks5_addr bnd = {0};
  if (a->fd < 0 || getsockname(a->fd, &bound.u.sa, &bound.len) != 0 ||
      sockaddr_ip(&bound, &bnd.ip, &bnd.port) != 0 ||
      masq_io_start(s->loop, &a->io, a->fd, MASQ_EV_READ, on_assoc_socket, a) != 0)
    goto fail;
  bnd.atyp = bnd.ip.family == 4 ? MASQ_SOCKS5_ATYP_IPV4 : MASQ_SOCKS5_ATYP_IPV6;
  sc->assoc = a;
  reply(sc, MASQ_SOCKS5_REP_SUCCEEDED, &bnd);
  masq_tf_hold(&sc->tf);
  char name[64];
  masq_log(MASQ_LOG_DEBUG, "socks: UDP association relaying on %s",
           masq_sockaddr_str(&bound, name, sizeof(name)));
  return;
fail:
  masq_log_rl(MASQ_LOG_WARN, "socks: cannot set up a UDP relay: %s", strerror(errno));
  if (a) assoc_free(a);
  reply(sc, MASQ_SOCKS5_REP_GENERAL_FAILURE, NULL);
  masq_tf_close(&sc->tf);
}

/* ---- the TCP side -------------------------------------------------------- */

static int creds_ok(const socks *s, const masq_socks5_auth *au) {
  const masq_opts *o = s->o;
  /* Both compared in full, so the time says nothing about which failed. */
  int u = masq_ct_equal(au->user, au->ulen, o->socks_user, strlen(o->socks_user));
  int p = masq_ct_equal(au->pass, au->plen, o->socks_password, strlen(o->socks_password));
  return u & p;
}

static void on_request(sconn *sc) {
  const masq_socks5_request *rq = &sc->p.req;
  char authority[MASQ_FE_AUTHORITY_MAX + 1];
  switch (rq->cmd) {
    case MASQ_SOCKS5_CMD_CONNECT:
      if (masq_fe_socks_authority(&rq->dst, authority, sizeof(authority)) < 0) {
        masq_log_rl(MASQ_LOG_INFO, "socks: refused a CONNECT to an invalid host name or port 0");
        reply(sc, MASQ_SOCKS5_REP_GENERAL_FAILURE, NULL);
        masq_tf_close(&sc->tf);
        return;
      }
      masq_tf_connect(&sc->tf, authority); /* sc may be gone after this */
      return;
    case MASQ_SOCKS5_CMD_UDP_ASSOCIATE:
      do_associate(sc);
      return;
    default: /* BIND: masq has no way to accept connections at the proxy */
      reply(sc, MASQ_SOCKS5_REP_CMD_NOT_SUPPORTED, NULL);
      masq_tf_close(&sc->tf);
      return;
  }
}

static void on_error(sconn *sc) {
  uint8_t out[MASQ_SOCKS5_REPLY_MAX];
  size_t n = masq_socks5_error_reply(&sc->p, out, sizeof(out));
  masq_log_rl(MASQ_LOG_INFO, "socks: malformed input from a client (error %d); closing",
              (int)sc->p.error);
  if (n == 0) { /* not SOCKS5 at all: nothing it would understand */
    masq_tf_reset(&sc->tf);
    return;
  }
  masq_tf_reply(&sc->tf, out, n);
  masq_tf_close(&sc->tf);
}

static void sconn_on_input(masq_tf *tf) {
  sconn *sc = (sconn *)tf;
  for (;;) {
    size_t len, used = 0;
    const uint8_t *in = masq_tf_input(tf, &len);
    masq_socks5_event ev = masq_socks5_parser_feed(&sc->p, in, len, &used);
    if (ev == MASQ_SOCKS5_ERROR) {
      on_error(sc);
      return;
    }
    masq_tf_consume(tf, used);
    uint8_t out[2];
    switch (ev) {
      case MASQ_SOCKS5_METHOD:
        masq_tf_reply(tf, out, masq_socks5_method_reply_encode(sc->p.method, out, sizeof(out)));
        continue;
      case MASQ_SOCKS5_AUTH: {
        int ok = creds_ok(sc->s, &sc->p.auth);
        masq_tf_reply(tf, out, masq_socks5_auth_reply_encode(ok, out, sizeof(out)));
        if (!ok) { /* RFC 1929 §2: the server MUST close the connection */
          masq_log_rl(MASQ_LOG_INFO, "socks: wrong username or password from a client");
          masq_tf_close(tf);
          return;
        }
        continue;
      }
      case MASQ_SOCKS5_REQUEST:
        on_request(sc);
        return;
      default: /* NEED_MORE, DONE */
        return;
    }
  }
}

static int sconn_on_response(masq_tf *tf, int status, const char *etype,
                             const masq_reqhdrs *h) {
  sconn *sc = (sconn *)tf;
  uint8_t rep = masq_socks5_rep_from_proxy_status(status, etype);
  if (rep != MASQ_SOCKS5_REP_SUCCEEDED)
    masq_log_rl(MASQ_LOG_INFO, "socks: CONNECT %s failed (status %d%s%s): reply 0x%02x",
                tf->authority, status, etype ? ", " : "", etype ? etype : "", rep);
  /* BND.ADDR/PORT: the proxy's address towards the target is not known
   * here; 0.0.0.0:0 is what clients expect then. */
  reply(sc, rep, NULL);
  return rep == MASQ_SOCKS5_REP_SUCCEEDED ? MASQ_TF_OPEN : MASQ_TF_CLOSE;
}

static void sconn_on_free(masq_tf *tf) {
  sconn *sc = (sconn *)tf;
  if (sc->assoc) assoc_free(sc->assoc);
  sc->assoc = NULL;
}

static const masq_tf_ops sconn_ops = {
    .on_input = sconn_on_input,
    .on_response = sconn_on_response,
    .on_free = sconn_on_free,
};

static void on_accept(masq_tf_listener *l, int fd) {
  socks *s = l->ud;
  sconn *sc = (sconn *)masq_tf_new(s->tfs, fd, &sconn_ops, sizeof(sconn), NEGOTIATE_S);
  if (!sc) return;
  sc->s = s;
  masq_socks5_parser_init(&sc->p, s->require_auth);
}

int masq_socks_run(const masq_opts *o) {
  static socks s;
  memset(&s, 0, sizeof(s));
  s.o = o;
  s.l.fd = -1;
  s.require_auth = o->socks_user[0] != '\0';
  int rc = 1;
  masq_pc_raise_nofile();
  s.loop = masq_loop_new();
  if (!s.loop) {
    masq_log(MASQ_LOG_ERR, "cannot create the event loop: %s", strerror(errno));
    return 1;
  }
  if (!(s.pc = masq_pc_new(s.loop, o)) || !(s.tfs = masq_tfs_new(s.loop, s.pc)) ||
      masq_tf_listen(s.tfs, &s.l, o->listen, on_accept, &s) != 0)
    goto out;
  masq_log(MASQ_LOG_INFO, "socks5 proxy listening on %s%s", o->listen,
           s.require_auth ? " (username/password required)" : "");
  if (masq_pc_start(s.pc) != 0) goto out;
  rc = masq_pc_run(s.pc);
out:
  masq_tf_unlisten(&s.l);
  masq_tfs_free(s.tfs);
  masq_pc_free(s.pc);
  masq_loop_free(s.loop);
  return rc;
}
