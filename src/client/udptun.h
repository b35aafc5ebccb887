/* One CONNECT-UDP tunnel (RFC 9298) to one target on the shared proxy
 * connection, as the client sees it: requested on the first datagram,
 * datagrams held (a few) while the request is in flight, sent as HTTP
 * Datagrams once it is open, and reopened on demand after the proxy
 * ends it. Used by masq forward --udp (one per local source) and by
 * masq socks' UDP ASSOCIATE (one per target of an association). */
#ifndef MASQ_CLIENT_UDPTUN_H
#define MASQ_CLIENT_UDPTUN_H

#include <stddef.h>
#include <stdint.h>

#include "client/proxyconn.h"

/* Datagrams held while a request is in flight. */
#define MASQ_UT_PENDING 8

typedef struct masq_ut masq_ut;

typedef struct masq_ut_ops {
  /* A datagram from the target. */
  void (*on_datagram)(masq_ut *t, const uint8_t *p, size_t n);
} masq_ut_ops;

/* Embedded in its owner; the fields belong to udptun.c. */
struct masq_ut {
  masq_pc_req req;
  masq_pc *pc;
  const masq_ut_ops *ops;
  /* The request; "host:port" of the target and the local source (or
   * NULL) for logs: the owner's strings, which must outlive the tunnel. */
  const char *authority, *path, *target, *src;
  int state;
  uint64_t failed_at; /* after a refusal, no new request for a while */
  size_t npending;
  uint16_t pending_len[MASQ_UT_PENDING];
  uint8_t *pending; /* MASQ_UT_PENDING x MASQ_OUTER_UDP_PAYLOAD */
};

/* Allocates the hold buffer. 0, or -1 (out of memory). */
int masq_ut_init(masq_ut *t, masq_pc *pc, const masq_ut_ops *ops, const char *authority,
                 const char *path, const char *target, const char *src);
/* Sends a datagram to the target: at once when the tunnel is open, else
 * held and the tunnel requested. Drops (counted) what cannot go. */
void masq_ut_send(masq_ut *t, const uint8_t *p, size_t n);
/* Ends the tunnel (FIN) and frees the hold buffer; t may then be freed. */
void masq_ut_close(masq_ut *t);

#endif
