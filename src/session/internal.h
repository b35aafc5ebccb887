/* State shared by the session layer's files: conn.c (QUIC transport and
 * packet I/O), h3.c (HTTP/3 mapping) and tunnel.c (HTTP Datagrams and
 * capsules). Not for use above the session layer. */
#ifndef MASQ_SESSION_INTERNAL_H
#define MASQ_SESSION_INTERNAL_H

#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include "proto/capsule.h"
#include "session/session.h"

/* Largest capsule payload kept when it arrives split across reads:
 * larger DATAGRAM capsules are dropped unbuffered (RFC 9298 §5), larger
 * CONNECT-IP capsules abort the stream. */
#define MASQ_CAPSULE_BUF MASQ_SESS_CAPSULE_MAX
/* A stream's send buffer is a chain of blocks, so it can grow while
 * nghttp3 still points into the older blocks (it keeps references to
 * sent data until the peer acknowledges it, so nothing may move). */
#define MASQ_SBLOCK (64 * 1024)
/* What one stream may have waiting for acknowledgement: capsules (a
 * tunnel's control traffic) need little; a TCP byte stream needs about
 * a bandwidth-delay product (1 MiB is 800 Mbit/s at 10 ms). */
#define MASQ_STREAM_SBUF MASQ_SBLOCK
#define MASQ_STREAM_SBUF_BYTES (16 * MASQ_SBLOCK)
/* Packets per GSO batch: 40 full-size packets are 58 KB, within UDP's
 * 64 KB; fewer sendmsg calls per byte was worth ~5-10% of CPU per byte
 * over 16 in bench/ip_tcp.sh (BENCHMARKS.md). */
#define MASQ_TX_BATCH 40

typedef struct masq_sblock {
  struct masq_sblock *next;
  uint8_t data[MASQ_SBLOCK];
} masq_sblock;

/* Bytes queued for a stream body, kept until the peer acknowledges them
 * (nghttp3 asks for data again only after loss). Offsets are absolute;
 * head holds the bytes from base on. */
typedef struct masq_sbuf {
  masq_sblock *head, *tail;
  uint64_t base;             /* offset of head->data[0] */
  uint64_t acked, sent, end; /* base <= acked <= sent <= end */
  size_t limit;              /* most bytes end - acked may reach */
} masq_sbuf;

/* Bytes that may still be queued on b. */
static inline size_t masq_sbuf_room(const masq_sbuf *b) {
  return b->limit - (size_t)(b->end - b->acked);
}

typedef struct masq_stream {
  struct masq_stream *next, *prev; /* all streams of the connection */
  struct masq_stream *hnext;        /* stream-ID hash chain */
  int64_t id;
  void *sud;
  masq_reqhdrs *hdrs; /* only while a header section is being received */
  unsigned tunnel : 1;      /* datagrams flow */
  unsigned capsules : 1;    /* body is parsed as capsules */
  unsigned responded : 1;   /* server: response submitted */
  unsigned fin_pending : 1; /* send FIN once sbuf drains */
  unsigned fin_sent : 1;
  unsigned has_body : 1;    /* a data reader is attached */
  unsigned ip : 1;          /* RFC 9484 tunnel: IP packets, datagrams only */
  unsigned bytes : 1;       /* plain CONNECT: DATA carries TCP bytes */
  unsigned want_writable : 1; /* a send was cut short: tell on_writable */
  uint64_t unconsumed;      /* byte stream: delivered, not yet consumed */
  masq_conn *parser_conn; /* for the capsule callbacks */
  masq_capsule_parser parser;
  masq_sbuf sbuf;
  uint8_t pbuf[MASQ_CAPSULE_BUF];
} masq_stream;

typedef struct masq_dgram_slot {
  uint16_t len;
  uint8_t data[MASQ_OUTER_UDP_PAYLOAD];
} masq_dgram_slot;

struct masq_conn {
  ngtcp2_conn *qc;
  nghttp3_conn *h3;
  gnutls_session_t tls;
  ngtcp2_crypto_conn_ref ref;
  ngtcp2_path_storage path;
  ngtcp2_ccerr ccerr;
  int is_server;
  masq_conn_callbacks cb;
  void *ud;
  masq_cid_cb cidcb;
  uint64_t max_streams_bidi;

  unsigned handshake_done : 1;
  unsigned settings_rcvd : 1;
  unsigned ready_told : 1;
  unsigned peer_h3_datagram : 1;
  unsigned peer_connect_protocol : 1;
  unsigned dead : 1;
  unsigned no_h3_datagram : 1; /* local: capsules only */
  char why[160];

  /* Outgoing packets of one GSO batch, kept if the socket was full. */
  uint8_t *tx;
  size_t txlen, txseg;
  ngtcp2_path_storage txpath;
  int tx_pending;

  /* Bounded datagram queue (ring of preallocated slots). */
  masq_dgram_slot *dq;
  size_t dqcap, dqhead, dqcount;

  masq_conn_stats stats;
  masq_stream *streams;
  masq_stream **buckets; /* stream ID -> stream; power-of-two size */
  size_t nbuckets, nstreams;
};

/* conn.c */
void masq_conn_fail(masq_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void masq_conn_set_app_error(masq_conn *c, uint64_t h3_error);
void masq_conn_consume(masq_conn *c, int64_t sid, size_t n);
int masq_conn_datagrams_enabled(masq_conn *c);
int masq_conn_queue_datagram(masq_conn *c, int64_t sid, const uint8_t *p, size_t n);

/* h3.c */
int masq_h3_setup(masq_conn *c);
const nghttp3_callbacks *masq_h3_callbacks(void);
masq_stream *masq_stream_get(masq_conn *c, int64_t sid);
masq_stream *masq_stream_new(masq_conn *c, int64_t sid);
void masq_stream_free(masq_conn *c, masq_stream *s);
int masq_stream_write(masq_conn *c, masq_stream *s, const uint8_t *p, size_t n, int fin);
void masq_sbuf_free(masq_sbuf *b);
/* nghttp3 data reader serving a stream's send ring (its user data must be
 * the masq_stream). */
nghttp3_ssize masq_h3_read_body(nghttp3_conn *h3, int64_t sid, nghttp3_vec *vec, size_t veccnt,
                                uint32_t *pflags, void *ud, void *sud);

/* tunnel.c */
void masq_tunnel_init_parser(masq_conn *c, masq_stream *s);
int masq_tunnel_on_body(masq_conn *c, masq_stream *s, const uint8_t *p, size_t n);
int masq_tunnel_on_end(masq_conn *c, masq_stream *s);
int masq_tunnel_on_quic_datagram(masq_conn *c, const uint8_t *p, size_t n);

#endif
