/* State shared by the server's files: server.c (listener, connections,
 * CID routing), admit.c (token and refusals), connect_udp.c (the
 * CONNECT-UDP handler), connect_ip.c (the CONNECT-IP handler) and
 * iptun.c (the CONNECT-IP gateway: TUN device, pools, NAT). */
#ifndef MASQ_SERVER_INTERNAL_H
#define MASQ_SERVER_INTERNAL_H

#include <gnutls/gnutls.h>

#include "app/options.h"
#include "io/loop.h"
#include "io/net.h"
#include "io/resolve.h"
#include "proto/addr.h"
#include "proto/pool.h"
#include "session/session.h"

typedef struct srv srv;
typedef struct sconn sconn;

typedef struct srv_stats {
  uint64_t tunnels_opened, tunnels_refused, auth_failures, retries;
  uint64_t udp_tx, udp_rx, udp_tx_drop, udp_rx_drop;
  uint64_t udp_tx_sends; /* sendmsg calls that carried udp_tx (GSO runs) */
  /* CONNECT-IP: packets to / from the TUN, and why others were dropped */
  uint64_t ip_tx, ip_rx;
  uint64_t ip_drop_malformed, ip_drop_spoofed, ip_drop_refused, ip_drop_too_big;
  uint64_t ip_drop_no_owner, ip_drop_tun, icmp_sent;
  /* plain CONNECT: TCP flows and their bytes */
  uint64_t tcp_opened, tcp_failed, tcp_bytes_up, tcp_bytes_down;
} srv_stats;

/* Every stream's user pointer starts with its handler's kind, so the
 * per-stream callbacks can be routed without a lookup. */
enum { SRV_TUNNEL_UDP = 1, SRV_TUNNEL_IP = 2, SRV_TUNNEL_TCP = 3 };
typedef struct srv_tunnel {
  int kind;
} srv_tunnel;

/* The CONNECT-IP gateway (iptun.c): one TUN device for every client,
 * whose addresses are the pools' first addresses, so the kernel routes
 * the pools to it; replies are handed to the tunnel leasing their
 * destination. */
typedef struct srv_ip {
  int fd;
  masq_io io;
  int ifindex;
  char name[16];
  masq_pool pool4, pool6;
  void *store4, *store6;
  masq_ip gw4, gw6;
  struct masq_nat *nat; /* --nat, NULL otherwise */
  /* ICMP errors the gateway originates: a token bucket (RFC 4443
   * §2.4(f) asks for a rate limit). */
  uint64_t icmp_tokens, icmp_last;
} srv_ip;

struct sconn {
  srv *s;
  masq_conn *c;
  masq_timer timer;
  masq_sockaddr remote;
  sconn *next, *prev;   /* all connections */
  sconn *dirty_next;    /* on srv.dirty: needs a write this iteration */
  unsigned dirty : 1;
  unsigned ntunnels;
};

/* Datagrams for CONNECT-UDP targets, staged during a loop iteration and
 * sent at its end (masq_udp_flush): a run of equal-sized datagrams for
 * one target leaves in one GSO sendmsg instead of one send each. */
#define SRV_UDP_TXQ 256
typedef struct srv_udp_txq {
  struct {
    struct tunnel *t; /* NULL: forgotten (its tunnel closed) */
    uint32_t off;
    uint32_t len;
  } ent[SRV_UDP_TXQ];
  size_t n, used;
  int flushing;
  uint8_t buf[65536];
} srv_udp_txq;

struct srv {
  const masq_opts *o;
  masq_loop *loop;
  int fd;
  masq_io io;
  masq_sockaddr local;
  gnutls_certificate_credentials_t creds;
  masq_conn_config cfg;
  masq_resolver *resolver;
  masq_policy policy;
  struct cid_entry **cids;
  size_t ncidbuckets;
  sconn *conns;
  size_t nconns;
  sconn *dirty;
  int tx_blocked;
  uint8_t token_secret[32]; /* keys Retry tokens; new every start */
  srv_ip *ip;               /* NULL: CONNECT-IP unavailable (no TUN) */
  struct tcpflow *tcp_pending; /* flows with client bytes to write out */
  srv_stats stats;
  srv_udp_txq udp_txq;
  uint8_t rxbuf[65536];
};

/* server.c */
void masq_srv_mark_dirty(sconn *sc);

/* admit.c: answers sid with a non-2xx status, Proxy-Status (RFC 9209)
 * naming error (may be NULL) with details, and the field the status
 * needs (a 407's challenge, a 405's Allow). */
void masq_srv_refuse(sconn *sc, int64_t sid, int status, const char *error, const char *details);
/* Refuses sid after a failed lookup (getaddrinfo status, 0 for a name
 * without addresses): 504 dns_timeout or 502 dns_error. */
void masq_srv_refuse_dns(sconn *sc, int64_t sid, int status);
/* 1 if h carries one of the configured bearer tokens (or --no-auth). */
int masq_srv_token_ok(const srv *s, const masq_reqhdrs *h);

/* connect_udp.c: the session callbacks for request streams. */
void masq_udp_on_request(masq_conn *c, void *ud, int64_t sid, const masq_reqhdrs *h);
void masq_udp_on_datagram(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *p,
                          size_t n);
void masq_udp_on_stream_end(masq_conn *c, void *ud, int64_t sid, void *sud);
void masq_udp_on_stream_close(masq_conn *c, void *ud, int64_t sid, void *sud,
                              uint64_t app_error);
/* Sends the datagrams staged for targets this iteration (srv_udp_txq). */
void masq_udp_flush(srv *s);

/* connect_ip.c: the CONNECT-IP handler (RFC 9484). */
void masq_ip_on_request(masq_conn *c, void *ud, int64_t sid, const masq_reqhdrs *h);
void masq_ip_on_datagram(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *p,
                         size_t n);
int masq_ip_on_capsule(masq_conn *c, void *ud, int64_t sid, void *sud, uint64_t type,
                       const uint8_t *p, size_t n);
void masq_ip_on_stream_end(masq_conn *c, void *ud, int64_t sid, void *sud);
void masq_ip_on_stream_close(masq_conn *c, void *ud, int64_t sid, void *sud,
                             uint64_t app_error);
/* A packet read from the gateway's TUN for the tunnel that leases its
 * destination (owner is the pool's owner tag). */
void masq_ip_from_tun(srv *s, uint64_t owner, uint8_t *pkt, size_t len);

/* connect_tcp.c: plain CONNECT to TCP targets (RFC 9114 §4.4). */
void masq_tcp_on_request(masq_conn *c, void *ud, int64_t sid, const masq_reqhdrs *h);
void masq_tcp_on_data(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *p,
                      size_t n);
void masq_tcp_on_writable(masq_conn *c, void *ud, int64_t sid, void *sud);
void masq_tcp_on_stream_end(masq_conn *c, void *ud, int64_t sid, void *sud);
void masq_tcp_on_stream_close(masq_conn *c, void *ud, int64_t sid, void *sud,
                              uint64_t app_error);
/* Writes what each flow received this loop iteration to its target: one
 * send per flow per iteration rather than one per QUIC packet. */
void masq_tcp_flush(srv *s);

/* iptun.c */
/* Creates the TUN, pools and (with --nat) NAT. Returns 0, or -1 after
 * logging why (the server then runs without CONNECT-IP). */
int masq_iptun_setup(srv *s);
void masq_iptun_teardown(srv *s);
/* Writes one IP packet into the kernel; 0 or -1 (counted). */
int masq_iptun_write(srv *s, const uint8_t *pkt, size_t len);
/* 1 if an ICMP error may be originated now (global rate limit). */
int masq_iptun_icmp_ok(srv *s);

#endif
