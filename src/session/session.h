/* The QUIC + HTTP/3 session layer: one masq_conn per QUIC connection,
 * driven by its owner. The owner hands in UDP payloads and the time and
 * gets UDP payloads back through a callback; nothing here touches a
 * socket or reads a clock (timestamps are ngtcp2 nanoseconds).
 *
 * On top of ngtcp2/nghttp3 it adds what MASQUE tunnels need (RFC 9297):
 * HTTP Datagrams routed by Quarter Stream ID, DATAGRAM capsules on the
 * request stream when the peer has not enabled HTTP/3 datagrams, and a
 * bounded, counted datagram send queue. */
#ifndef MASQ_SESSION_SESSION_H
#define MASQ_SESSION_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>

#include "proto/request.h"

typedef struct masq_conn masq_conn;

/* Length of the connection IDs masq issues: 64 random bits, short to
 * leave room for datagrams; the server needs it to parse short headers. */
#define MASQ_CID_LEN 8

/* Errors (negative) returned by masq_conn_* calls. */
#define MASQ_SESS_ERR_FATAL (-1)     /* connection is closing; drop it */
#define MASQ_SESS_ERR_NOMEM (-2)
#define MASQ_SESS_ERR_BLOCKED (-3)   /* stream limit reached; retry on on_streams */
#define MASQ_SESS_ERR_TOO_BIG (-4)   /* datagram cannot fit a QUIC packet */
#define MASQ_SESS_ERR_QUEUE_FULL (-5)/* bounded queue full; datagram dropped */
#define MASQ_SESS_ERR_STREAM (-6)    /* no such stream / not open for this */
#define MASQ_SESS_ERR_INVALID (-7)

typedef struct masq_conn_stats {
  uint64_t dgram_tx, dgram_rx;           /* HTTP datagrams sent / delivered */
  uint64_t capsule_dgram_tx, capsule_dgram_rx; /* of those, as DATAGRAM capsules */
  uint64_t drop_too_big;                 /* could not fit one QUIC packet */
  uint64_t drop_queue_full;              /* send queue full */
  uint64_t drop_unknown_context;         /* Context ID other than 0 */
  uint64_t drop_unknown_stream;          /* no open tunnel for the stream */
  uint64_t drop_capsule_too_big;         /* DATAGRAM capsule over the limit */
  uint64_t capsules_skipped;             /* unknown capsule types ignored */
} masq_conn_stats;

typedef struct masq_conn_callbacks {
  /* Send len bytes of UDP payload to path->remote from path->local: one
   * datagram, or several of seg bytes each (GSO) when seg < len. Return 0,
   * or -1 if the socket is full (the session keeps the data and retries on
   * the next masq_conn_write). */
  int (*send)(masq_conn *c, void *ud, const ngtcp2_path *path, const uint8_t *data, size_t len,
              size_t seg);
  /* Handshake done and the peer's SETTINGS read: a client may now send
   * (Extended CONNECT needs SETTINGS_ENABLE_CONNECT_PROTOCOL first). */
  void (*on_ready)(masq_conn *c, void *ud);
  /* Server: a request's header section is complete. h lives for the call. */
  void (*on_request)(masq_conn *c, void *ud, int64_t sid, const masq_reqhdrs *h);
  /* Client: the response's header section for a request. */
  void (*on_response)(masq_conn *c, void *ud, int64_t sid, void *sud, const masq_reqhdrs *h);
  /* An HTTP Datagram with Context ID 0 (QUIC DATAGRAM or DATAGRAM capsule)
   * for a stream marked as a tunnel. */
  void (*on_datagram)(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *p, size_t n);
  /* The peer ended its side of the stream (FIN). */
  void (*on_stream_end)(masq_conn *c, void *ud, int64_t sid, void *sud);
  /* The stream is gone (both sides closed or reset). app_error is the H3
   * error code, NO_ERROR on a clean close. Forget sid after this. */
  void (*on_stream_close)(masq_conn *c, void *ud, int64_t sid, void *sud, uint64_t app_error);
  /* More client bidi streams may be opened (after MASQ_SESS_ERR_BLOCKED). */
  void (*on_streams)(masq_conn *c, void *ud);
  /* A whole CONNECT-IP capsule (RFC 9484 §4.7: ADDRESS_ASSIGN,
   * ADDRESS_REQUEST, ROUTE_ADVERTISEMENT) arrived on sid; p[0..n) is its
   * payload. Return 0, or -1 if it is malformed or breaks the RFC's
   * rules: the session then aborts the stream with H3_MESSAGE_ERROR
   * (RFC 9297 §3.3). Without this callback such capsules are skipped
   * like any unknown type. A payload over MASQ_SESS_CAPSULE_MAX aborts
   * the stream with H3_EXCESSIVE_LOAD. */
  int (*on_capsule)(masq_conn *c, void *ud, int64_t sid, void *sud, uint64_t type,
                    const uint8_t *p, size_t n);
  /* Bytes arriving on a byte stream (see "Byte streams" below). The
   * owner passes them on and calls masq_conn_stream_consume once they are
   * gone: until then they count against the peer's flow-control window,
   * which is what slows a sender down when the reader is slow. */
  void (*on_data)(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *p, size_t n);
  /* Room freed in a byte stream's send buffer after masq_conn_stream_send
   * took less than it was offered. */
  void (*on_writable)(masq_conn *c, void *ud, int64_t sid, void *sud);
} masq_conn_callbacks;

/* Largest capsule payload (CONNECT-IP control capsule or DATAGRAM capsule)
 * the session buffers per stream: about 120 IPv6 route ranges. */
#define MASQ_SESS_CAPSULE_MAX 4096

typedef struct masq_conn_config {
  gnutls_certificate_credentials_t creds;
  const char *sni;          /* client: server name for SNI and verification */
  int insecure;             /* client: skip certificate verification */
  uint64_t idle_timeout;    /* ns; QUIC idle timeout */
  uint64_t max_streams_bidi;/* server: concurrent tunnels per connection */
  size_t dgram_queue;       /* slots in the datagram send queue */
  int no_h3_datagram;       /* act as a peer without HTTP/3 datagrams: no
                               max_datagram_frame_size, SETTINGS_H3_DATAGRAM=0,
                               capsules only (for tests of the fallback) */
  int cc_bbr;               /* congestion control: BBR instead of CUBIC */
} masq_conn_config;

/* Client: starts a connection from local to remote. err gets a one-line
 * reason on failure. */
masq_conn *masq_conn_client_new(const masq_conn_config *cfg, const masq_conn_callbacks *cb,
                                void *ud, const ngtcp2_addr *local, const ngtcp2_addr *remote,
                                uint64_t now, char *err, size_t errcap);

/* Server: accepts a connection from the first packet of a client (which
 * must be a valid Initial). retry_odcid is the original Destination
 * Connection ID recovered from a Retry token the owner verified (the
 * client's address is then validated, RFC 9000 §8.1.2), or NULL. Returns
 * NULL if the packet is not an Initial (the caller drops it) or on
 * failure (err says which). */
masq_conn *masq_conn_server_new(const masq_conn_config *cfg, const masq_conn_callbacks *cb,
                                void *ud, const ngtcp2_path *path, const uint8_t *pkt,
                                size_t len, const ngtcp2_cid *retry_odcid, uint64_t now,
                                char *err, size_t errcap);

void masq_conn_free(masq_conn *c);

/* Feeds one received UDP payload. Returns 0 or MASQ_SESS_ERR_FATAL. */
int masq_conn_read(masq_conn *c, const ngtcp2_path *path, const uint8_t *pkt, size_t len,
                   uint64_t now);

/* Writes every packet that can be sent now through cb->send. Returns 0 or
 * MASQ_SESS_ERR_FATAL. */
int masq_conn_write(masq_conn *c, uint64_t now);

/* When masq_conn_on_timer must next run (ngtcp2 expiry), UINT64_MAX if
 * never. */
uint64_t masq_conn_expiry(masq_conn *c);
int masq_conn_on_timer(masq_conn *c, uint64_t now); /* 0 or FATAL */

/* Closes the connection with an HTTP/3 error code (NO_ERROR for a clean
 * shutdown) and sends CONNECTION_CLOSE. */
void masq_conn_close(masq_conn *c, uint64_t h3_error, uint64_t now);

/* 1 once the connection is closed or draining and can be freed. */
int masq_conn_is_dead(const masq_conn *c);
const char *masq_conn_error_str(const masq_conn *c); /* why it died */

/* Client: sends an Extended CONNECT (RFC 9220) for `protocol` with
 * capsule-protocol: ?1 and, if token is non-NULL, a bearer
 * Proxy-Authorization. Returns the stream ID (>= 0) or a MASQ_SESS_ERR. */
int64_t masq_conn_submit_connect(masq_conn *c, const char *authority, const char *path,
                                 const char *protocol, const char *token, void *sud);

/* Server: answers the request on sid. A 2xx response carries
 * capsule-protocol: ?1 and keeps the stream open as a tunnel (datagrams
 * flow); any other status ends it with FIN after the headers.
 * proxy_status (RFC 9209) may be NULL; extra_name/extra_value add one
 * more field (a 407's Proxy-Authenticate, a 405's Allow) or are NULL. */
int masq_conn_submit_response(masq_conn *c, int64_t sid, int status, const char *proxy_status,
                              const char *extra_name, const char *extra_value, void *sud);

/* Attaches the owner's pointer to sid; it comes back in every callback. */
int masq_conn_stream_set_user(masq_conn *c, int64_t sid, void *sud);

/* Client: mark sid as an established tunnel after a 2xx response. */
int masq_conn_stream_set_tunnel(masq_conn *c, int64_t sid);

/* Sends a UDP payload (Context ID 0) on the tunnel sid: as a QUIC DATAGRAM
 * when the peer enabled HTTP/3 datagrams, else as a DATAGRAM capsule.
 * Never truncates: returns 0, MASQ_SESS_ERR_TOO_BIG or _QUEUE_FULL (both
 * counted in stats) or _STREAM. */
int masq_conn_send_datagram(masq_conn *c, int64_t sid, const uint8_t *p, size_t n);

/* Marks sid as an IP tunnel (RFC 9484): its datagrams are whole IP
 * packets (up to 65535 bytes) and travel only as QUIC DATAGRAM frames;
 * never as DATAGRAM capsules, since IP over a reliable stream would
 * stack congestion control and retransmission (RFC 9484 §11), so
 * masq_conn_send_datagram fails with MASQ_SESS_ERR_STREAM when the
 * peer has not enabled HTTP/3 datagrams. */
int masq_conn_stream_set_ip(masq_conn *c, int64_t sid);

/* 1 if the peer enabled HTTP/3 datagrams (SETTINGS_H3_DATAGRAM=1 and a
 * max_datagram_frame_size transport parameter), else 0. */
int masq_conn_peer_datagrams(masq_conn *c);

/* Sends one capsule of `type` with payload p[0..n) on sid's body (a
 * request stream opened by masq_conn_submit_connect, or one answered
 * with a 2xx). Returns 0, MASQ_SESS_ERR_QUEUE_FULL (nothing written;
 * the stream's send buffer is full), or MASQ_SESS_ERR_STREAM. */
int masq_conn_send_capsule(masq_conn *c, int64_t sid, uint64_t type, const uint8_t *p,
                           size_t n);

/* Largest payload masq_conn_send_datagram can carry as a QUIC DATAGRAM on
 * sid right now. */
size_t masq_conn_max_datagram(masq_conn *c, int64_t sid);

/* Ends our side of sid with FIN (clean tunnel close). */
int masq_conn_end_stream(masq_conn *c, int64_t sid);

/* Aborts sid in both directions with an HTTP/3 error code. */
int masq_conn_reset_stream(masq_conn *c, int64_t sid, uint64_t h3_error);

/* ---- Byte streams: plain CONNECT for TCP (RFC 9114 §4.4) ----------------
 * After a 2xx the request stream's DATA frames carry the TCP bytes both
 * ways, with nothing else (no capsules). Memory stays bounded by the
 * windows: what a peer sends is limited by the stream's flow-control
 * window (returned only as the owner consumes), what the owner sends by
 * the stream's send buffer (MASQ_STREAM_SBUF, freed as the peer
 * acknowledges). FIN maps to masq_conn_end_stream / on_stream_end, and
 * an abort to masq_conn_reset_stream / on_stream_close's error code. */

/* Client: a plain CONNECT to authority "host:port" (RFC 9114 §4.4: no
 * :protocol, :scheme or :path) with a bearer Proxy-Authorization if token
 * is non-NULL. The response comes to on_response; after a 2xx, bytes
 * flow. Returns the stream ID or a MASQ_SESS_ERR. */
int64_t masq_conn_submit_tcp_connect(masq_conn *c, const char *authority, const char *token,
                                     void *sud);

/* Server: answers a plain CONNECT with 200 and makes sid a byte stream. */
int masq_conn_accept_stream(masq_conn *c, int64_t sid, void *sud);

/* Queues up to n bytes on byte stream sid. Returns how many it took
 * (possibly 0: wait for on_writable), or MASQ_SESS_ERR_STREAM. */
long masq_conn_stream_send(masq_conn *c, int64_t sid, const uint8_t *p, size_t n);

/* Bytes masq_conn_stream_send would take now (0 for a stream that is
 * not an open byte stream). Reading at most this much from a socket
 * means nothing is left over to hold. */
size_t masq_conn_stream_room(masq_conn *c, int64_t sid);

/* Returns flow-control credit for n bytes delivered by on_data. */
void masq_conn_stream_consume(masq_conn *c, int64_t sid, size_t n);

const masq_conn_stats *masq_conn_get_stats(const masq_conn *c);

/* Server: the connection IDs this connection answers to, for the owner's
 * lookup table. The callback is called when a CID is added or retired. */
typedef void (*masq_cid_cb)(masq_conn *c, void *ud, const uint8_t *cid, size_t len, int added);
void masq_conn_set_cid_cb(masq_conn *c, masq_cid_cb cb);

#endif
