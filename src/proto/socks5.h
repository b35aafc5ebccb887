/* SOCKS Protocol Version 5 (RFC 1928) and its Username/Password
 * sub-negotiation (RFC 1929), server side: masq's client offers a local
 * SOCKS5 front end and the application is the SOCKS client.
 *
 * Like nghttp3's readers, the parser takes bytes as they arrive, split
 * anywhere, and says what happened: a whole greeting, a whole
 * username/password message, a whole request, or an error. It stops at the
 * end of each message so the caller can send its reply; bytes after the
 * request are never consumed (they are the application's first tunnel
 * data). It holds at most one message in a fixed buffer and never
 * allocates.
 *
 * The encoders write the server's replies and the UDP ASSOCIATE datagram
 * header (RFC 1928 §7). Nothing here does I/O. */
#ifndef MASQ_PROTO_SOCKS5_H
#define MASQ_PROTO_SOCKS5_H

#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"

/* RFC 1928 §3: protocol version; RFC 1929 §2: sub-negotiation version. */
#define MASQ_SOCKS5_VER 0x05
#define MASQ_SOCKS5_AUTH_VER 0x01

/* RFC 1928 §3: METHOD values masq selects. */
#define MASQ_SOCKS5_METHOD_NOAUTH 0x00
#define MASQ_SOCKS5_METHOD_USERPASS 0x02 /* RFC 1929 */
#define MASQ_SOCKS5_METHOD_NONE 0xff     /* "NO ACCEPTABLE METHODS" */

/* RFC 1928 §4: CMD. */
#define MASQ_SOCKS5_CMD_CONNECT 0x01
#define MASQ_SOCKS5_CMD_BIND 0x02
#define MASQ_SOCKS5_CMD_UDP_ASSOCIATE 0x03

/* RFC 1928 §4/§5: ATYP. */
#define MASQ_SOCKS5_ATYP_IPV4 0x01
#define MASQ_SOCKS5_ATYP_DOMAIN 0x03
#define MASQ_SOCKS5_ATYP_IPV6 0x04

/* RFC 1928 §6: REP. */
#define MASQ_SOCKS5_REP_SUCCEEDED 0x00
#define MASQ_SOCKS5_REP_GENERAL_FAILURE 0x01
#define MASQ_SOCKS5_REP_NOT_ALLOWED 0x02 /* "connection not allowed by ruleset" */
#define MASQ_SOCKS5_REP_NET_UNREACHABLE 0x03
#define MASQ_SOCKS5_REP_HOST_UNREACHABLE 0x04
#define MASQ_SOCKS5_REP_CONN_REFUSED 0x05
#define MASQ_SOCKS5_REP_TTL_EXPIRED 0x06
#define MASQ_SOCKS5_REP_CMD_NOT_SUPPORTED 0x07
#define MASQ_SOCKS5_REP_ATYP_NOT_SUPPORTED 0x08

/* RFC 1929 §2: STATUS; any value but 0x00 is a failure. */
#define MASQ_SOCKS5_AUTH_SUCCESS 0x00
#define MASQ_SOCKS5_AUTH_FAILURE 0x01

/* Longest messages, in bytes. Greeting: VER NMETHODS METHODS[255] (RFC
 * 1928 §3). Username/password: VER ULEN UNAME[255] PLEN PASSWD[255] (RFC
 * 1929 §2). Request and reply: VER CMD RSV ATYP LEN NAME[255] PORT[2]
 * (RFC 1928 §4, §6). UDP header: RSV[2] FRAG ATYP LEN NAME[255] PORT[2]
 * (RFC 1928 §7). */
#define MASQ_SOCKS5_GREETING_MAX 257
#define MASQ_SOCKS5_AUTH_MAX 513
#define MASQ_SOCKS5_REQUEST_MAX 262
#define MASQ_SOCKS5_REPLY_MAX 262
#define MASQ_SOCKS5_UDP_HDR_MAX 262

/* An address as it travels in a request, reply or UDP header: DST.ADDR /
 * BND.ADDR plus the port, in host byte order. */
typedef struct masq_socks5_addr {
  uint8_t atyp;    /* MASQ_SOCKS5_ATYP_* */
  masq_ip ip;      /* IPV4 / IPV6: family 4 or 6 */
  uint8_t hostlen; /* DOMAIN: 1..255 */
  char host[256];  /* DOMAIN: hostlen bytes, NUL-terminated, no NUL inside */
  uint16_t port;
} masq_socks5_addr;

/* A parsed request (RFC 1928 §4). cmd is CONNECT, BIND or UDP ASSOCIATE:
 * the parser accepts all three and the caller answers REP 0x07 to the
 * ones it does not serve. A DOMAIN host is only checked for length and
 * NUL; the caller must still check it as a host name (for instance with
 * masq_target_host_parse) before using it. */
typedef struct masq_socks5_request {
  uint8_t cmd;
  masq_socks5_addr dst;
} masq_socks5_request;

/* The RFC 1929 credentials, pointing into the parser's buffer: valid
 * until the next feed call, which wipes them. Not NUL-terminated; either
 * length may be 0 (RFC 1929 lists 1..255, but clients do send an empty
 * password, and an empty name simply never matches a configured one). */
typedef struct masq_socks5_auth {
  const uint8_t *user;
  size_t ulen;
  const uint8_t *pass;
  size_t plen;
} masq_socks5_auth;

/* What a feed call stopped on. */
typedef enum masq_socks5_event {
  /* Every byte was consumed and the current message is not whole yet. */
  MASQ_SOCKS5_NEED_MORE = 0,
  /* A greeting was read and p->method holds the selected method (0x00 or
   * 0x02): send masq_socks5_method_reply_encode(p->method). With 0x02 the
   * parser expects the username/password message next, else the request.
   * When no offered method is acceptable the result is MASQ_SOCKS5_ERROR
   * (MASQ_SOCKS5_ERR_NO_METHOD), not this. */
  MASQ_SOCKS5_METHOD = 1,
  /* A username/password message was read into p->auth. The caller checks
   * it and sends masq_socks5_auth_reply_encode(ok). On success the parser
   * expects the request next; on failure the server MUST close the
   * connection (RFC 1929 §2) and must not feed the parser again. */
  MASQ_SOCKS5_AUTH = 2,
  /* A request was read into p->req. The caller answers with
   * masq_socks5_reply_encode. Later feed calls consume nothing and return
   * MASQ_SOCKS5_DONE: what follows belongs to the tunnel. */
  MASQ_SOCKS5_REQUEST = 3,
  /* Negotiation already finished; nothing was consumed. */
  MASQ_SOCKS5_DONE = 4,
  /* The input was refused: p->error says why and
   * masq_socks5_error_reply writes what to send before closing. Every
   * later feed call returns MASQ_SOCKS5_ERROR again and consumes nothing. */
  MASQ_SOCKS5_ERROR = -1
} masq_socks5_event;

/* Why the parser failed, and the reply masq_socks5_error_reply writes. */
typedef enum masq_socks5_err {
  MASQ_SOCKS5_OK = 0,
  /* Greeting VER != 5 (RFC 1928 §3): not a SOCKS5 client (SOCKS4 sends
   * 4, an HTTP client 'G' or 'C'), so nothing is sent. */
  MASQ_SOCKS5_ERR_GREETING_VERSION,
  /* NMETHODS is 0 or no offered method is acceptable: reply METHOD X'FF'
   * (RFC 1928 §3; the client then closes). Without credentials
   * configured only 0x00 is acceptable; with them only 0x02, so
   * authentication cannot be skipped. */
  MASQ_SOCKS5_ERR_NO_METHOD,
  /* Sub-negotiation VER != 1 (RFC 1929 §2): STATUS X'01'. */
  MASQ_SOCKS5_ERR_AUTH_VERSION,
  /* Request VER != 5: REP X'01' (RFC 1928 §6). */
  MASQ_SOCKS5_ERR_REQUEST_VERSION,
  /* CMD other than 1, 2, 3: REP X'07' "Command not supported". */
  MASQ_SOCKS5_ERR_CMD,
  /* RSV != X'00' (RFC 1928 §4): REP X'01'. */
  MASQ_SOCKS5_ERR_RSV,
  /* ATYP other than 1, 3, 4: REP X'08' "Address type not supported". */
  MASQ_SOCKS5_ERR_ATYP,
  /* DOMAIN of length 0 or holding a NUL byte: REP X'01'. */
  MASQ_SOCKS5_ERR_DOMAIN
} masq_socks5_err;

typedef struct masq_socks5_parser {
  int state;
  int require_auth;      /* 1: only RFC 1929 username/password */
  masq_socks5_err error; /* valid after MASQ_SOCKS5_ERROR */
  uint8_t method;        /* valid after MASQ_SOCKS5_METHOD */
  uint8_t rep;           /* REP for a request-phase error */
  size_t have;           /* bytes of the current message in buf */
  int wipe;              /* buf holds credentials: clear on next feed */
  masq_socks5_auth auth; /* valid after MASQ_SOCKS5_AUTH */
  masq_socks5_request req; /* valid after MASQ_SOCKS5_REQUEST */
  uint8_t buf[MASQ_SOCKS5_AUTH_MAX];
} masq_socks5_parser;

/* Starts a parser waiting for the greeting. require_auth != 0: the
 * client must pick username/password (0x02); otherwise "no
 * authentication required" (0x00). */
void masq_socks5_parser_init(masq_socks5_parser *p, int require_auth);

/* Consumes bytes of data[0..len) up to the end of the next whole message
 * and stores how many in *consumed (always, also 0). Returns the event;
 * on MASQ_SOCKS5_NEED_MORE *consumed == len, and after any other event
 * data[*consumed..len) is still unread (a client may send its request
 * right behind its greeting). After MASQ_SOCKS5_ERROR *consumed is only
 * known to be <= len: the connection closes anyway. A field is refused
 * as soon as it arrives (a bad VER on the first byte, not after a whole
 * message; a NUL in a domain once the domain is whole), so garbage
 * never makes the parser wait for a length it made up. data may be NULL
 * when len is 0. */
masq_socks5_event masq_socks5_parser_feed(masq_socks5_parser *p, const uint8_t *data,
                                          size_t len, size_t *consumed);

/* After MASQ_SOCKS5_ERROR: writes the bytes to send before closing (see
 * masq_socks5_err: a method reply X'05 FF', an auth reply X'01 01', or a
 * request reply with REP and BND 0.0.0.0:0) and returns their count, or
 * 0 if nothing is to be sent (or cap is too small, or no error). */
size_t masq_socks5_error_reply(const masq_socks5_parser *p, uint8_t *out, size_t cap);

/* RFC 1928 §3 method selection: VER METHOD (2 bytes). Returns 2, or 0 if
 * cap < 2. */
size_t masq_socks5_method_reply_encode(uint8_t method, uint8_t *out, size_t cap);

/* RFC 1929 §2 status: VER X'01' and STATUS X'00' (ok != 0) or X'01'.
 * Returns 2, or 0 if cap < 2. */
size_t masq_socks5_auth_reply_encode(int ok, uint8_t *out, size_t cap);

/* RFC 1928 §6 reply: VER REP RSV ATYP BND.ADDR BND.PORT. bnd NULL means
 * 0.0.0.0:0 (what a failure reply carries: the fields are meaningless
 * then). Returns the length (at most MASQ_SOCKS5_REPLY_MAX), or 0 if cap
 * is too small or bnd is invalid (unknown atyp, IP family not matching
 * atyp, hostlen 0). */
size_t masq_socks5_reply_encode(uint8_t rep, const masq_socks5_addr *bnd, uint8_t *out,
                                size_t cap);

/* Errors of masq_socks5_udp_decode: the datagram must be dropped
 * silently (RFC 1928 §7 has no error reporting for UDP). */
#define MASQ_SOCKS5_UDP_TRUNCATED (-1) /* shorter than its header */
#define MASQ_SOCKS5_UDP_RSV (-2)       /* RSV != X'0000' */
#define MASQ_SOCKS5_UDP_FRAG (-3)      /* FRAG != X'00': RFC 1928 §7 MUST drop */
#define MASQ_SOCKS5_UDP_ATYP (-4)      /* unknown ATYP */
#define MASQ_SOCKS5_UDP_DOMAIN (-5)    /* empty DOMAIN or one holding NUL */

/* Decodes the header of a UDP ASSOCIATE datagram (RFC 1928 §7: RSV[2]
 * FRAG ATYP DST.ADDR DST.PORT DATA). On success stores the destination in
 * *dst and the header length in *hdrlen (DATA is d[*hdrlen..len), maybe
 * empty) and returns 0; else a MASQ_SOCKS5_UDP_* error. masq does not
 * reassemble, so any FRAG other than 0 is an error. */
int masq_socks5_udp_decode(const uint8_t *d, size_t len, masq_socks5_addr *dst,
                           size_t *hdrlen);

/* Writes that header with RSV 0 and FRAG 0 for addr (the source of a
 * datagram going back to the client). Returns its length (at most
 * MASQ_SOCKS5_UDP_HDR_MAX), or 0 if it does not fit or addr is invalid. */
size_t masq_socks5_udp_encode(const masq_socks5_addr *addr, uint8_t *out, size_t cap);

/* Maps how the proxy refused a tunnel to the REP an application sees.
 * http_status is the status of the proxy's response (0 if there was
 * none), error_type the RFC 9209 §2.3 Proxy-Status error type (NULL if
 * absent); a known error type decides over the status:
 *   2xx (and no error type)                  -> 0x00 succeeded
 *   destination_ip_prohibited,
 *   http_request_denied                      -> 0x02 not allowed by ruleset
 *   destination_ip_unroutable                -> 0x03 network unreachable
 *   dns_error, dns_timeout,
 *   destination_not_found,
 *   destination_unavailable                  -> 0x04 host unreachable
 *   connection_refused                       -> 0x05 connection refused
 *   connection_timeout                       -> 0x06 TTL expired (as Tor
 *                                               and Dante report timeouts)
 * otherwise, by status:
 *   401, 403, 407                            -> 0x02 (credentials or policy)
 *   501                                      -> 0x07 (the proxy does not
 *                                               serve this kind of tunnel)
 *   504                                      -> 0x06 (timed out)
 *   anything else (400, 502, 503, 0, ...),
 *   or 2xx with an unknown error type        -> 0x01 general failure.
 * Error types are compared exactly (they are lower-case sf-tokens). */
uint8_t masq_socks5_rep_from_proxy_status(int http_status, const char *error_type);

#endif
