/* State shared by the server's files: server.c (listener, connections,
 * CID routing) and connect_udp.c (the CONNECT-UDP handler). */
#ifndef MASQ_SERVER_INTERNAL_H
#define MASQ_SERVER_INTERNAL_H

#include <gnutls/gnutls.h>

#include "app/options.h"
#include "io/loop.h"
#include "io/net.h"
#include "io/resolve.h"
#include "proto/addr.h"
#include "session/session.h"

typedef struct srv srv;
typedef struct sconn sconn;

typedef struct srv_stats {
  uint64_t tunnels_opened, tunnels_refused, auth_failures, retries;
  uint64_t udp_tx, udp_rx, udp_tx_drop, udp_rx_drop;
} srv_stats;

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
  srv_stats stats;
  uint8_t rxbuf[65536];
};

/* server.c */
void masq_srv_mark_dirty(sconn *sc);

/* connect_udp.c: the session callbacks for request streams. */
void masq_udp_on_request(masq_conn *c, void *ud, int64_t sid, const masq_reqhdrs *h);
void masq_udp_on_datagram(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *p,
                          size_t n);
void masq_udp_on_stream_end(masq_conn *c, void *ud, int64_t sid, void *sud);
void masq_udp_on_stream_close(masq_conn *c, void *ud, int64_t sid, void *sud,
                              uint64_t app_error);

#endif
