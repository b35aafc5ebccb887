/* The server: one UDP socket, QUIC connections routed to by connection
 * ID, writes batched once per loop iteration, clean shutdown on signals.
 * What a request asks for is handled in connect_udp.c. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include "io/tls.h"
#include "io/log.h"
#include "server/internal.h"
#include "server/server.h"

/* QUIC packets read per socket wakeup before the write pass. */
#define RX_BUDGET 64

/* ---- connection-ID table --------------------------------------------- */

struct cid_entry {
  struct cid_entry *next;
  sconn *sc;
  uint8_t len;
  uint8_t id[NGTCP2_MAX_CIDLEN];
};

static size_t cid_hash(const srv *s, const uint8_t *id, size_t len) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a: IDs are random already */
  for (size_t i = 0; i < len; i++) h = (h ^ id[i]) * 1099511628211ull;
  return (size_t)h & (s->ncidbuckets - 1);
}

static sconn *cid_find(const srv *s, const uint8_t *id, size_t len) {
  for (struct cid_entry *e = s->cids[cid_hash(s, id, len)]; e; e = e->next)
    if (e->len == len && memcmp(e->id, id, len) == 0) return e->sc;
  return NULL;
}

static void on_cid(masq_conn *c, void *ud, const uint8_t *id, size_t len, int added) {
  sconn *sc = ud;
  srv *s = sc->s;
  if (len > NGTCP2_MAX_CIDLEN) return;
  struct cid_entry **pp = &s->cids[cid_hash(s, id, len)];
  if (!added) {
    for (; *pp; pp = &(*pp)->next) {
      if ((*pp)->sc == sc && (*pp)->len == len && memcmp((*pp)->id, id, len) == 0) {
        struct cid_entry *e = *pp;
        *pp = e->next;
        free(e);
        return;
      }
    }
    return;
  }
  struct cid_entry *e = calloc(1, sizeof(*e));
  if (!e) return; /* the peer can still use the connection's other IDs */
  e->sc = sc;
  e->len = (uint8_t)len;
  memcpy(e->id, id, len);
  e->next = *pp;
  *pp = e;
}

/* ---- connections ------------------------------------------------------ */

void masq_srv_mark_dirty(sconn *sc) {
  if (sc->dirty) return;
  sc->dirty = 1;
  sc->dirty_next = sc->s->dirty;
  sc->s->dirty = sc;
}

static int on_send(masq_conn *c, void *ud, const ngtcp2_path *path, const uint8_t *data,
                   size_t len, size_t seg) {
  sconn *sc = ud;
  masq_sockaddr to;
  memcpy(&to.u.ss, path->remote.addr, path->remote.addrlen);
  to.len = path->remote.addrlen;
  if (masq_udp_send(sc->s->fd, data, len, seg, &to) == 0) return 0;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
    if (!sc->s->tx_blocked) {
      sc->s->tx_blocked = 1;
      masq_io_update(sc->s->loop, &sc->s->io, MASQ_EV_READ | MASQ_EV_WRITE);
    }
    return -1;
  }
  /* Anything else (a vanished route, say) is a lost packet to QUIC. */
  masq_log_rl(MASQ_LOG_DEBUG, "send to client failed: %s", strerror(errno));
  return 0;
}

static void conn_free(sconn *sc) {
  srv *s = sc->s;
  masq_timer_stop(s->loop, &sc->timer);
  if (sc->prev) sc->prev->next = sc->next;
  else s->conns = sc->next;
  if (sc->next) sc->next->prev = sc->prev;
  s->nconns--;
  masq_conn_free(sc->c); /* closes its tunnels through on_stream_close */
  free(sc);
}

static void conn_log_close(sconn *sc) {
  char a[64];
  const masq_conn_stats *st = masq_conn_get_stats(sc->c);
  masq_log(MASQ_LOG_INFO,
           "connection from %s closed (%s); datagrams tx %llu rx %llu, dropped: too big %llu, "
           "queue full %llu, unknown context %llu, unknown stream %llu",
           masq_sockaddr_str(&sc->remote, a, sizeof(a)), masq_conn_error_str(sc->c),
           (unsigned long long)st->dgram_tx, (unsigned long long)st->dgram_rx,
           (unsigned long long)st->drop_too_big, (unsigned long long)st->drop_queue_full,
           (unsigned long long)st->drop_unknown_context,
           (unsigned long long)st->drop_unknown_stream);
}

/* Writes what the connection has to send and re-arms its timer, or frees
 * it once dead. Runs once per loop iteration per dirty connection. */
static void conn_service(sconn *sc) {
  uint64_t now = masq_now();
  if (!masq_conn_is_dead(sc->c)) masq_conn_write(sc->c, now);
  if (masq_conn_is_dead(sc->c)) {
    conn_log_close(sc);
    conn_free(sc);
    return;
  }
  uint64_t exp = masq_conn_expiry(sc->c);
  if (exp == UINT64_MAX) masq_timer_stop(sc->s->loop, &sc->timer);
  else masq_timer_set(sc->s->loop, &sc->timer, exp);
}

static void on_conn_timer(masq_loop *loop, masq_timer *t) {
  sconn *sc = t->ud;
  masq_conn_on_timer(sc->c, masq_now());
  masq_srv_mark_dirty(sc);
}

static void flush_dirty(masq_loop *loop, void *ud) {
  srv *s = ud;
  masq_tcp_flush(s); /* first: the credit it returns goes out below */
  masq_udp_flush(s);
  while (s->dirty) {
    sconn *sc = s->dirty;
    s->dirty = sc->dirty_next;
    sc->dirty = 0;
    conn_service(sc);
  }
}

/* ---- requests and tunnels, routed to their handler ------------------- */

static void on_request(masq_conn *c, void *ud, int64_t sid, const masq_reqhdrs *h) {
  if (h->protocol.present && !strcmp(h->protocol.v, MASQ_PROTO_CONNECT_IP))
    masq_ip_on_request(c, ud, sid, h);
  else if (!h->protocol.present && h->method.present && !strcmp(h->method.v, "CONNECT"))
    masq_tcp_on_request(c, ud, sid, h);
  else
    masq_udp_on_request(c, ud, sid, h); /* also answers what no handler serves */
}

static int kind_of(void *sud) { return sud ? ((srv_tunnel *)sud)->kind : 0; }

static void on_datagram(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *p,
                        size_t n) {
  if (kind_of(sud) == SRV_TUNNEL_IP) masq_ip_on_datagram(c, ud, sid, sud, p, n);
  else if (kind_of(sud) == SRV_TUNNEL_UDP) masq_udp_on_datagram(c, ud, sid, sud, p, n);
}

static int on_capsule(masq_conn *c, void *ud, int64_t sid, void *sud, uint64_t type,
                      const uint8_t *p, size_t n) {
  /* CONNECT-IP capsules mean nothing on other streams: skipped there. */
  if (kind_of(sud) != SRV_TUNNEL_IP) return 0;
  return masq_ip_on_capsule(c, ud, sid, sud, type, p, n);
}

static void on_data(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *p,
                    size_t n) {
  if (kind_of(sud) == SRV_TUNNEL_TCP) masq_tcp_on_data(c, ud, sid, sud, p, n);
  else masq_conn_stream_consume(c, sid, n); /* a refused CONNECT's early bytes */
}

static void on_writable(masq_conn *c, void *ud, int64_t sid, void *sud) {
  if (kind_of(sud) == SRV_TUNNEL_TCP) masq_tcp_on_writable(c, ud, sid, sud);
}

static void on_stream_end(masq_conn *c, void *ud, int64_t sid, void *sud) {
  if (kind_of(sud) == SRV_TUNNEL_IP) masq_ip_on_stream_end(c, ud, sid, sud);
  else if (kind_of(sud) == SRV_TUNNEL_UDP) masq_udp_on_stream_end(c, ud, sid, sud);
  else if (kind_of(sud) == SRV_TUNNEL_TCP) masq_tcp_on_stream_end(c, ud, sid, sud);
}

static void on_stream_close(masq_conn *c, void *ud, int64_t sid, void *sud, uint64_t err) {
  if (kind_of(sud) == SRV_TUNNEL_IP) masq_ip_on_stream_close(c, ud, sid, sud, err);
  else if (kind_of(sud) == SRV_TUNNEL_UDP) masq_udp_on_stream_close(c, ud, sid, sud, err);
  else if (kind_of(sud) == SRV_TUNNEL_TCP) masq_tcp_on_stream_close(c, ud, sid, sud, err);
}

static const masq_conn_callbacks server_callbacks = {
    .send = on_send,
    .on_request = on_request,
    .on_datagram = on_datagram,
    .on_stream_end = on_stream_end,
    .on_stream_close = on_stream_close,
    .on_capsule = on_capsule,
    .on_data = on_data,
    .on_writable = on_writable,
};

static sconn *conn_accept(srv *s, const ngtcp2_path *path, const masq_sockaddr *from,
                          const uint8_t *pkt, size_t len, const ngtcp2_cid *retry_odcid) {
  if (s->nconns >= s->o->max_conns) {
    masq_log_rl(MASQ_LOG_WARN, "connection limit (%u) reached: dropping a new client",
                s->o->max_conns);
    return NULL;
  }
  sconn *sc = calloc(1, sizeof(*sc));
  if (!sc) return NULL;
  char err[256];
  sc->s = s;
  sc->remote = *from;
  sc->c = masq_conn_server_new(&s->cfg, &server_callbacks, sc, path, pkt, len, retry_odcid,
                               masq_now(), err, sizeof(err));
  if (!sc->c) {
    masq_log_rl(MASQ_LOG_DEBUG, "rejected a packet: %s", err);
    free(sc);
    return NULL;
  }
  masq_timer_init(&sc->timer, on_conn_timer, sc);
  sc->next = s->conns;
  if (sc->next) sc->next->prev = sc;
  s->conns = sc;
  s->nconns++;
  masq_conn_set_cid_cb(sc->c, on_cid);
  char a[64];
  masq_log(MASQ_LOG_DEBUG, "new connection from %s", masq_sockaddr_str(from, a, sizeof(a)));
  return sc;
}

/* ---- packet input ----------------------------------------------------- */

static void send_version_negotiation(srv *s, const masq_sockaddr *to, const uint8_t *dcid,
                                     size_t dcidlen, const uint8_t *scid, size_t scidlen) {
  uint8_t buf[256];
  uint8_t rnd;
  uint32_t versions[] = {NGTCP2_PROTO_VER_V1};
  if (gnutls_rnd(GNUTLS_RND_NONCE, &rnd, 1) != 0) rnd = 0;
  /* Our reply swaps the IDs: its DCID is the client's SCID. */
  ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(buf, sizeof(buf), rnd, scid, scidlen,
                                                        dcid, dcidlen, versions, 1);
  if (n > 0) masq_udp_send(s->fd, buf, (size_t)n, (size_t)n, to);
}

/* ---- address validation (RFC 9000 §8.1.2) ------------------------------ */

#define RETRY_TOKEN_TTL (10 * NGTCP2_SECONDS)

/* Answers an Initial with a Retry carrying a token bound to the client's
 * address: a client that cannot receive at that address never gets
 * connection state on this server. */
static void send_retry(srv *s, const masq_sockaddr *to, const ngtcp2_pkt_hd *hd) {
  uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN2], buf[MASQ_QUIC_MIN_UDP_PAYLOAD];
  ngtcp2_cid scid;
  scid.datalen = MASQ_CID_LEN;
  if (gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen) != 0) return;
  ngtcp2_ssize tl = ngtcp2_crypto_generate_retry_token2(
      token, s->token_secret, sizeof(s->token_secret), hd->version, &to->u.sa, to->len, &scid,
      &hd->dcid, masq_now());
  if (tl < 0) return;
  ngtcp2_ssize n = ngtcp2_crypto_write_retry(buf, sizeof(buf), hd->version, &hd->scid, &scid,
                                             &hd->dcid, token, (size_t)tl);
  if (n <= 0) return;
  masq_udp_send(s->fd, buf, (size_t)n, (size_t)n, to);
  s->stats.retries++;
  char a[64];
  masq_log_rl(MASQ_LOG_DEBUG, "sent a Retry to %s", masq_sockaddr_str(to, a, sizeof(a)));
}

/* Decides what a new client's Initial gets. Returns 1 to accept it (with
 * *odcid set if it carried a valid Retry token), 0 to drop it (a Retry
 * was sent, or its token is bad). */
static int validate_initial(srv *s, const masq_sockaddr *from, const uint8_t *pkt, size_t len,
                            ngtcp2_cid *odcid, int *retried) {
  ngtcp2_pkt_hd hd;
  *retried = 0;
  if (ngtcp2_accept(&hd, pkt, len) != 0) return 0;
  if (hd.tokenlen && hd.token[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY2) {
    if (ngtcp2_crypto_verify_retry_token2(odcid, hd.token, hd.tokenlen, s->token_secret,
                                          sizeof(s->token_secret), hd.version, &from->u.sa,
                                          from->len, &hd.dcid, RETRY_TOKEN_TTL, masq_now()) != 0) {
      masq_log_rl(MASQ_LOG_DEBUG, "dropped an Initial with an invalid or expired Retry token");
      return 0;
    }
    *retried = 1;
    return 1;
  }
  /* Under load — half the connection budget used — or when asked,
   * every new client proves its address first. */
  if (s->o->retry || s->nconns >= s->o->max_conns / 2) {
    send_retry(s, from, &hd);
    return 0;
  }
  return 1;
}

static void handle_packet(srv *s, const masq_sockaddr *from, uint8_t *pkt, size_t len) {
  ngtcp2_version_cid vc;
  int rv = ngtcp2_pkt_decode_version_cid(&vc, pkt, len, MASQ_CID_LEN);
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    send_version_negotiation(s, from, vc.dcid, vc.dcidlen, vc.scid, vc.scidlen);
    return;
  }
  if (rv != 0) return;
  ngtcp2_path path = {
      {(ngtcp2_sockaddr *)&s->local.u.sa, s->local.len},
      {(ngtcp2_sockaddr *)&from->u.sa, from->len},
      NULL,
  };
  sconn *sc = cid_find(s, vc.dcid, vc.dcidlen);
  if (!sc) {
    if (!vc.version) return; /* a short header for a connection we forgot */
    ngtcp2_cid odcid;
    int retried;
    if (!validate_initial(s, from, pkt, len, &odcid, &retried)) return;
    sc = conn_accept(s, &path, from, pkt, len, retried ? &odcid : NULL);
    if (!sc) return;
  }
  masq_conn_read(sc->c, &path, pkt, len, masq_now());
  masq_srv_mark_dirty(sc);
}

static void on_socket(masq_loop *loop, masq_io *io, uint32_t events) {
  srv *s = io->ud;
  if (events & MASQ_EV_WRITE) {
    s->tx_blocked = 0;
    masq_io_update(loop, io, MASQ_EV_READ);
    for (sconn *sc = s->conns; sc; sc = sc->next) masq_srv_mark_dirty(sc);
  }
  if (!(events & MASQ_EV_READ)) return;
  /* A bounded batch per wakeup (counted in packets: one GRO read can hold
   * dozens) keeps acknowledgements prompt — they go out in the write pass
   * after this — and keeps timers and other sockets served. Reading more
   * before writing inflates the peer's RTT estimate and with it caps its
   * sending rate. */
  for (size_t pkts = 0; pkts < RX_BUDGET;) {
    masq_sockaddr from;
    size_t seg;
    ssize_t n = masq_udp_recv(s->fd, s->rxbuf, sizeof(s->rxbuf), &from, &seg);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EMSGSIZE || errno == EINTR || errno == ECONNREFUSED) continue;
      masq_log_rl(MASQ_LOG_WARN, "receive failed: %s", strerror(errno));
      return;
    }
    /* GRO may hand over several datagrams of seg bytes each. */
    for (size_t off = 0; off < (size_t)n; off += seg, pkts++) {
      size_t len = (size_t)n - off < seg ? (size_t)n - off : seg;
      handle_packet(s, &from, s->rxbuf + off, len);
    }
  }
}

/* ---- setup and shutdown ----------------------------------------------- */

static void on_signal(masq_loop *loop, int signo, void *ud) {
  srv *s = ud;
  masq_log(MASQ_LOG_INFO, "%s: closing %zu connection(s)", strsignal(signo), s->nconns);
  uint64_t now = masq_now();
  for (sconn *sc = s->conns; sc; sc = sc->next) {
    masq_conn_close(sc->c, MASQ_H3_NO_ERROR, now);
    masq_srv_mark_dirty(sc);
  }
  flush_dirty(loop, s);
  masq_loop_stop(loop);
}

static int deny_own_addresses(srv *s) {
  masq_ip own[64];
  int n = masq_local_addresses(own, 64);
  if (n < 0) {
    masq_log(MASQ_LOG_ERR, "cannot list this host's addresses: %s", strerror(errno));
    return -1;
  }
  for (int i = 0; i < n; i++) {
    masq_cidr c = {own[i], (uint8_t)(own[i].family == 4 ? 32 : 128)};
    if (masq_policy_deny(&s->policy, &c) != 0) break;
  }
  return 0;
}

static int setup(srv *s, const masq_opts *o) {
  char err[512];
  s->o = o;
  s->fd = -1;
  if (o->no_auth)
    masq_log(MASQ_LOG_WARN, "--no-auth: anyone who can reach this server can use it as a proxy");
  masq_policy_init_default(&s->policy);
  if (deny_own_addresses(s) != 0) return -1;
  for (size_t i = 0; i < o->nallow; i++) masq_policy_allow(&s->policy, &o->allow[i]);
  s->creds = masq_tls_server_creds(o->cert, o->key, err, sizeof(err));
  if (!s->creds) {
    masq_log(MASQ_LOG_ERR, "%s", err);
    return -1;
  }
  if (masq_sockaddr_parse(o->listen, &s->local) != 0) {
    masq_log(MASQ_LOG_ERR, "--listen %s: not an ADDR:PORT with a numeric address", o->listen);
    return -1;
  }
  s->fd = masq_udp_open(&s->local, NULL);
  if (s->fd < 0) {
    masq_log(MASQ_LOG_ERR, "cannot listen on UDP %s: %s", o->listen, strerror(errno));
    return -1;
  }
  s->local.len = sizeof(s->local.u.ss);
  if (getsockname(s->fd, &s->local.u.sa, &s->local.len) != 0) return -1;
  if (gnutls_rnd(GNUTLS_RND_KEY, s->token_secret, sizeof(s->token_secret)) != 0) {
    masq_log(MASQ_LOG_ERR, "no randomness for the Retry token key");
    return -1;
  }
  s->ncidbuckets = 4096;
  s->cids = calloc(s->ncidbuckets, sizeof(*s->cids));
  s->loop = masq_loop_new();
  if (!s->cids || !s->loop) return -1;
  s->resolver = masq_resolver_new(s->loop, 4);
  if (!s->resolver) {
    masq_log(MASQ_LOG_ERR, "cannot start the resolver threads: %s", strerror(errno));
    return -1;
  }
  /* Without a TUN (no privileges) the server still serves CONNECT-UDP,
   * unless --nat said CONNECT-IP is what it is for. */
  if (masq_iptun_setup(s) != 0) {
    masq_iptun_teardown(s);
    if (o->nat) return -1;
  }
  s->cfg.creds = s->creds;
  /* The connection may idle as long as a tunnel may: RFC 9298 §3 asks
   * for at least two minutes before a silent socket is closed. */
  s->cfg.idle_timeout = (uint64_t)o->idle_timeout * NGTCP2_SECONDS;
  s->cfg.max_streams_bidi = o->max_tunnels;
  s->cfg.cc_bbr = strcmp(o->cc, "cubic") != 0;
  if (masq_io_start(s->loop, &s->io, s->fd, MASQ_EV_READ, on_socket, s) != 0 ||
      masq_loop_add_hook(s->loop, flush_dirty, s) != 0 ||
      masq_loop_add_signal(s->loop, SIGINT, on_signal, s) != 0 ||
      masq_loop_add_signal(s->loop, SIGTERM, on_signal, s) != 0)
    return -1;
  return 0;
}

static void teardown(srv *s) {
  while (s->conns) conn_free(s->conns);
  masq_iptun_teardown(s);
  if (s->resolver) masq_resolver_free(s->resolver);
  if (s->fd >= 0) {
    if (s->loop) masq_io_stop(s->loop, &s->io);
    close(s->fd);
  }
  if (s->loop) masq_loop_free(s->loop);
  if (s->cids) {
    for (size_t i = 0; i < s->ncidbuckets; i++) {
      while (s->cids[i]) {
        struct cid_entry *e = s->cids[i];
        s->cids[i] = e->next;
        free(e);
      }
    }
    free(s->cids);
  }
  if (s->creds) gnutls_certificate_free_credentials(s->creds);
}

/* log_stats: the exit totals, one line per handler, each starting
 * "stopped: HANDLER:" (quic, connect-udp, connect-ip, tcp) so that one
 * handler's counters can be grepped. The quic line is always there; a
 * handler whose counters are all zero was never used and is left out. */
static void log_stats(const srv_stats *st) {
  typedef unsigned long long ull;
  masq_log(MASQ_LOG_INFO,
           "stopped: quic: %llu tunnels opened, %llu refused (%llu auth failures), "
           "%llu Retry packets sent",
           (ull)st->tunnels_opened, (ull)st->tunnels_refused, (ull)st->auth_failures,
           (ull)st->retries);
  if (st->udp_tx | st->udp_tx_drop | st->udp_rx | st->udp_rx_drop)
    masq_log(MASQ_LOG_INFO,
             "stopped: connect-udp: datagrams to targets %llu in %llu sends (dropped %llu), "
             "from targets %llu (dropped %llu)",
             (ull)st->udp_tx, (ull)st->udp_tx_sends, (ull)st->udp_tx_drop, (ull)st->udp_rx,
             (ull)st->udp_rx_drop);
  if (st->ip_tx | st->ip_rx | st->ip_drop_malformed | st->ip_drop_spoofed | st->ip_drop_refused |
      st->ip_drop_too_big | st->ip_drop_no_owner | st->ip_drop_tun | st->icmp_sent)
    masq_log(MASQ_LOG_INFO,
             "stopped: connect-ip: packets to the TUN %llu, from it %llu; dropped %llu malformed, "
             "%llu spoofed, %llu refused, %llu too big, %llu for nobody, %llu TUN errors; "
             "%llu ICMP errors sent",
             (ull)st->ip_tx, (ull)st->ip_rx, (ull)st->ip_drop_malformed,
             (ull)st->ip_drop_spoofed, (ull)st->ip_drop_refused, (ull)st->ip_drop_too_big,
             (ull)st->ip_drop_no_owner, (ull)st->ip_drop_tun, (ull)st->icmp_sent);
  if (st->tcp_opened | st->tcp_failed | st->tcp_bytes_up | st->tcp_bytes_down)
    masq_log(MASQ_LOG_INFO, "stopped: tcp: flows %llu (failed %llu), bytes up %llu, down %llu",
             (ull)st->tcp_opened, (ull)st->tcp_failed, (ull)st->tcp_bytes_up,
             (ull)st->tcp_bytes_down);
}

int masq_server_run(const masq_opts *o) {
  static srv s; /* holds a 64 KiB receive buffer */
  memset(&s, 0, sizeof(s));
  int rv = 1;
  if (setup(&s, o) == 0) {
    char a[64];
    masq_log(MASQ_LOG_INFO, "listening on %s (UDP, HTTP/3, congestion control %s)",
             masq_sockaddr_str(&s.local, a, sizeof(a)), o->cc);
    rv = masq_loop_run(s.loop) == 0 ? 0 : 1;
    log_stats(&s.stats);
  }
  teardown(&s);
  return rv;
}
