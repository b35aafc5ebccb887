/* HTTP/1.1 proxy requests (RFC 9112, RFC 9110): the request head an
 * application sends to masq's local HTTP proxy front end, the head masq
 * forwards to the origin for a plain http:// request, and the responses
 * the front end itself sends (200 Connection Established, 400, 407, 502,
 * 504, ...).
 *
 * The parser is incremental and keeps no copy: the caller accumulates
 * what arrives in one buffer and calls masq_http1_parse with all of it
 * after each read; the parser resumes at the first line it has not yet
 * read. Names, values and target pieces are spans (offset, length) into
 * that buffer, so they stay valid if the caller moves or reallocates it.
 * The head is capped at MASQ_HTTP1_HEAD_MAX bytes and
 * MASQ_HTTP1_MAX_FIELDS field lines; nothing is allocated. Nothing here
 * does I/O. */
#ifndef MASQ_PROTO_HTTP1_H
#define MASQ_PROTO_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

/* Largest request head accepted: request line, field lines and the empty
 * line, with their line endings (RFC 9110 §5.4 leaves the limit to the
 * recipient; 16 KiB is in line with common proxies). */
#define MASQ_HTTP1_HEAD_MAX 16384
/* Most field lines in one head. */
#define MASQ_HTTP1_MAX_FIELDS 100
/* Most Connection options (RFC 9110 §7.6.1) in one head, over all
 * Connection field lines. */
#define MASQ_HTTP1_MAX_CONN_OPTIONS 16
/* Extra room masq_http1_forward_head may need beyond the received head:
 * two bytes per field line (": " and CR where ":" and LF may have been),
 * a few for the request line and Host (which replace the scheme and
 * authority of the target), the empty line's CR, "Via: 1.1 " and
 * "Connection: close". The Via pseudonym itself comes on top. */
#define MASQ_HTTP1_FORWARD_SLACK (2 * MASQ_HTTP1_MAX_FIELDS + 64)

/* A piece of the caller's buffer: buf[off .. off + len). */
typedef struct masq_http1_span {
  uint16_t off;
  uint16_t len;
} masq_http1_span;

/* One field line: name as received (compare case-insensitively), value
 * without the leading and trailing whitespace (RFC 9112 §5.1 OWS). */
typedef struct masq_http1_field {
  masq_http1_span name;
  masq_http1_span value;
} masq_http1_field;

/* A parsed request head. Spans point into the buffer that was parsed. */
typedef struct masq_http1_request {
  masq_http1_span method;  /* case-sensitive token (RFC 9110 §9.1) */
  uint8_t is_connect;      /* method is exactly "CONNECT" */
  uint8_t version_minor;   /* 0 for HTTP/1.0, 1 for HTTP/1.1 (and 1.x > 1,
                              RFC 9110 §2.5: read as 1.1) */
  masq_http1_span target;  /* request-target as received */
  /* CONNECT (authority-form, RFC 9112 §3.2.3): host and port of the
   * target. Others (absolute-form, §3.2.2): host and port of the http
   * URI (port 80 if absent), authority is host[:port] as written (to be
   * the forwarded Host), path the path and query to forward (may be
   * empty or start with '?': see masq_http1_forward_head). */
  char host[MASQ_MAX_HOST + 1]; /* NUL-terminated, IPv6 without brackets */
  uint16_t port;
  masq_http1_span authority;
  masq_http1_span path;
  masq_http1_field fields[MASQ_HTTP1_MAX_FIELDS];
  size_t nfields;
  int host_field;      /* index in fields of Host, or -1 */
  int proxy_auth;      /* index in fields of Proxy-Authorization, or -1 */
  /* Connection options over all Connection lines (RFC 9110 §7.6.1),
   * and the three masq acts on (compared case-insensitively). */
  masq_http1_span conn[MASQ_HTTP1_MAX_CONN_OPTIONS];
  size_t nconn;
  uint8_t conn_close, conn_keep_alive, conn_upgrade;
  /* 1 if the connection may stay open after this exchange: HTTP/1.1
   * without "close" (RFC 9112 §9.3). Always 0 for HTTP/1.0: a proxy MUST
   * NOT keep a persistent connection with an HTTP/1.0 client (§9.3). */
  uint8_t persistent;
  /* Message body framing (RFC 9112 §6.3): chunked is 1 if
   * Transfer-Encoding ends in chunked; else content_length is the body
   * length (-1: no Content-Length, so no body for a request, item 7). */
  uint8_t chunked;
  int64_t content_length;
  /* Max-Forwards (RFC 9110 §7.6.2), -1 if absent; larger values are
   * clamped to INT32_MAX. */
  int32_t max_forwards;
  size_t head_len; /* bytes of the head, up to and including its empty line */
} masq_http1_request;

/* Why a head was refused, and the status masq_http1_error_status gives
 * it. Checks run line by line in order, then the end-of-head checks
 * (Host, framing, CONNECT content), so each input has one answer. */
typedef enum masq_http1_err {
  MASQ_HTTP1_OK = 0,
  /* 414: no complete request line within MASQ_HTTP1_HEAD_MAX (RFC 9112
   * §3: a request-target longer than the server wishes to parse). */
  MASQ_HTTP1_ERR_LINE_TOO_LONG,
  /* 431 (RFC 6585 §5): the head goes past MASQ_HTTP1_HEAD_MAX. */
  MASQ_HTTP1_ERR_HEAD_TOO_LARGE,
  /* 431: more than MASQ_HTTP1_MAX_FIELDS field lines. */
  MASQ_HTTP1_ERR_TOO_MANY_FIELDS,
  /* 400: a NUL byte anywhere in the head (RFC 9110 §5.5). */
  MASQ_HTTP1_ERR_NUL,
  /* 400: a CR not followed by LF (RFC 9112 §2.2: a bare CR is refused,
   * not turned into SP). A lone LF does end a line (§2.2 MAY). */
  MASQ_HTTP1_ERR_BARE_CR,
  /* 400: not "method SP request-target SP HTTP-version" with single
   * spaces, or a method that is not a token (RFC 9112 §3). */
  MASQ_HTTP1_ERR_REQUEST_LINE,
  /* 400: HTTP-version not "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3). */
  MASQ_HTTP1_ERR_VERSION,
  /* 505: a major version other than 1 (RFC 9110 §15.6.6). */
  MASQ_HTTP1_ERR_VERSION_UNSUPPORTED,
  /* 400: a request-target holding a byte outside VCHAR, or a CONNECT
   * target that is not uri-host ":" port with port 1..65535 (RFC 9112
   * §3.2.3; masq's hosts are names of letters, digits, '-', '_', '.' or
   * a bracketed IPv6 literal, see masq_hostport_parse), or an http URI
   * with userinfo, a fragment, an empty or invalid host, or an invalid
   * port (RFC 9110 §4.2.1, §4.2.4). */
  MASQ_HTTP1_ERR_TARGET,
  /* 400: origin-form ("/x") or asterisk-form ("*") sent to a proxy,
   * which needs absolute-form (RFC 9112 §3.2.2), or authority-form with
   * a method other than CONNECT. */
  MASQ_HTTP1_ERR_TARGET_FORM,
  /* 400: an https:// absolute-form target. A client asks a proxy for an
   * https URI this way only if it wants the proxy to make the TLS
   * connection, which masq does not do (clients use CONNECT for https);
   * forwarding it in clear text would be worse. */
  MASQ_HTTP1_ERR_SCHEME_HTTPS,
  /* 400: any other scheme (ftp://, ws://, ...). */
  MASQ_HTTP1_ERR_SCHEME,
  /* 400: a line starting with SP or HTAB: obs-fold (RFC 9112 §5.2), or
   * whitespace before the first field line (§2.2). */
  MASQ_HTTP1_ERR_OBS_FOLD,
  /* 400: a field line without ':' or with an empty or non-token name. */
  MASQ_HTTP1_ERR_FIELD_NAME,
  /* 400: whitespace between field name and colon (RFC 9112 §5.1 MUST). */
  MASQ_HTTP1_ERR_SPACE_BEFORE_COLON,
  /* 400: a control character other than HTAB in a field value (RFC
   * 9110 §5.5: masq refuses rather than forwards them). */
  MASQ_HTTP1_ERR_FIELD_VALUE,
  /* 400: Content-Length not 1*DIGIT, too large (beyond 2^63-1), a list
   * ("42, 42") or repeated: RFC 9112 §6.3 item 5. Identical repeats,
   * which RFC 9110 §8.6 lets a recipient accept, are refused as well: a
   * proxy that forwards a head others may read differently invites
   * request smuggling. */
  MASQ_HTTP1_ERR_CONTENT_LENGTH,
  /* 400: both Transfer-Encoding and Content-Length (RFC 9112 §6.1 lets a
   * server refuse these; masq always does, §6.3 item 3). */
  MASQ_HTTP1_ERR_TE_WITH_CL,
  /* 400: Transfer-Encoding whose final coding is not chunked (§6.3 item
   * 4), which applies chunked twice or has anything after it (§6.1), has
   * an element that is not a token, or in an HTTP/1.0 request (§6.1:
   * faulty framing). Other codings before chunked are allowed: the body
   * is relayed as it is. */
  MASQ_HTTP1_ERR_TRANSFER_ENCODING,
  /* 400: HTTP/1.1 without Host, more than one Host, or a Host value with
   * characters no uri-host [":" port] has (RFC 9112 §3.2). */
  MASQ_HTTP1_ERR_HOST,
  /* 400: Proxy-Authorization more than once (it is not a list). */
  MASQ_HTTP1_ERR_PROXY_AUTHORIZATION,
  /* 400: a Connection option that is not a token, or more than
   * MASQ_HTTP1_MAX_CONN_OPTIONS of them (RFC 9110 §7.6.1). */
  MASQ_HTTP1_ERR_CONNECTION,
  /* 400: Max-Forwards not 1*DIGIT, or repeated (RFC 9110 §7.6.2). */
  MASQ_HTTP1_ERR_MAX_FORWARDS,
  /* 400: CONNECT with Transfer-Encoding or a non-zero Content-Length
   * (RFC 9110 §9.3.6: a CONNECT request has no content, and bytes after
   * its head are tunnel data). */
  MASQ_HTTP1_ERR_CONNECT_CONTENT
} masq_http1_err;

typedef enum masq_http1_result {
  MASQ_HTTP1_NEED_MORE = 0, /* head not complete yet: read more */
  MASQ_HTTP1_DONE = 1,      /* p->req is valid; buf[head_len..) is body or
                               tunnel data */
  MASQ_HTTP1_ERROR = -1     /* p->error and p->status say what to answer */
} masq_http1_result;

typedef struct masq_http1_parser {
  int state;
  size_t pos;  /* start of the first line not yet read */
  size_t scan; /* bytes from pos already searched for LF */
  masq_http1_err error;
  int status; /* HTTP status for error, 0 if none */
  uint8_t te_seen, te_chunked;
  masq_http1_request req;
} masq_http1_parser;

void masq_http1_parser_init(masq_http1_parser *p);

/* Parses buf[0..len), which must begin with the bytes given to the
 * previous call (the same request, with anything new appended). Returns
 * MASQ_HTTP1_DONE once the head is complete (leading empty lines are
 * skipped, RFC 9112 §2.2; line endings are CRLF or a lone LF), else
 * MASQ_HTTP1_NEED_MORE, or MASQ_HTTP1_ERROR. DONE and ERROR are final:
 * later calls return them again. The result does not depend on how the
 * bytes were split between calls. */
masq_http1_result masq_http1_parse(masq_http1_parser *p, const uint8_t *buf, size_t len);

/* The status for an error (400, 414, 431 or 505; 0 for MASQ_HTTP1_OK),
 * and a short static description of it for Proxy-Status details. The
 * RFC 9209 error type to send with any of them is
 * "http_request_error". */
int masq_http1_error_status(masq_http1_err e);
const char *masq_http1_strerror(masq_http1_err e);

/* 1 if buf at span s equals the NUL-terminated lit, ignoring ASCII case. */
int masq_http1_span_ieq(const uint8_t *buf, masq_http1_span s, const char *lit);

/* Options for masq_http1_forward_head. */
typedef struct masq_http1_forward_opts {
  /* RFC 9110 §7.6.3: a proxy MUST send a Via entry; masq writes
   * "Via: 1.1 <via>" ("1.0" for an HTTP/1.0 request) if via is non-NULL (a token, the pseudonym of
   * §7.6.3) and none if NULL, for a deployment that hides the proxy. */
  const char *via;
  /* Add "Connection: close" (when masq uses the origin connection for
   * this one exchange). */
  int close;
} masq_http1_forward_opts;

/* Errors of masq_http1_forward_head. */
#define MASQ_HTTP1_FWD_NOSPACE (-1)     /* out too small, or bad opts */
#define MASQ_HTTP1_FWD_CONNECT (-2)     /* CONNECT is tunnelled, not forwarded */
#define MASQ_HTTP1_FWD_MAX_FORWARDS (-3) /* OPTIONS/TRACE with Max-Forwards 0:
                                            answer it instead (RFC 9110 §7.6.2) */

/* Writes the head to send to the origin for a DONE non-CONNECT request r
 * parsed from buf, with CRLF line endings:
 *  - request line "METHOD origin-form HTTP/1.1": the path and query of
 *    the target, "/" if the path is empty (RFC 9112 §3.2.1), and "*" for
 *    OPTIONS with an empty path and no query (§3.2.4); masq's own
 *    version, as an intermediary MUST send (RFC 9110 §2.5);
 *  - "Host: <authority of the target>" first, replacing any received
 *    Host (RFC 9112 §3.2.2 MUST);
 *  - every received field line in order, except the ones RFC 9110
 *    §7.6.1 has an intermediary remove: Connection, every field named by
 *    a Connection option, Proxy-Connection, Keep-Alive, TE and Upgrade
 *    (masq forwards no upgrade); and Proxy-Authorization, which is for
 *    masq itself (RFC 9110 §11.7.2). Trailer is end-to-end and kept.
 *    Transfer-Encoding is hop-by-hop, but masq relays the body bytes
 *    unchanged, so it "replaces" it with the same value: it is kept, as
 *    is Content-Length, even when a Connection option names them, since
 *    dropping either would make the origin frame the body differently
 *    (request smuggling);
 *  - Max-Forwards of OPTIONS and TRACE decremented (RFC 9110 §7.6.2);
 *  - the Via entry and "Connection: close" per opts (may be NULL);
 *  - the empty line.
 * Returns the length, or a MASQ_HTTP1_FWD_* error. out needs at most
 * r->head_len + MASQ_HTTP1_FORWARD_SLACK + strlen(opts->via) bytes. */
int masq_http1_forward_head(const masq_http1_request *r, const uint8_t *buf,
                            const masq_http1_forward_opts *opts, uint8_t *out, size_t cap);

/* An extra field for masq_http1_response_encode. */
typedef struct masq_http1_header {
  const char *name;
  const char *value;
} masq_http1_header;

/* Writes a response head without content:
 *   "HTTP/1.1 <status> <reason>" CRLF
 *   ["Proxy-Status: <proxy_status>" CRLF]       (RFC 9209, if non-NULL)
 *   *("<name>: <value>" CRLF)                     (extra[0..nextra))
 *   ["Content-Length: 0" CRLF]                    (unless 1xx, 2xx, 204, 304)
 *   CRLF
 * A 2xx gets no Content-Length: it answers CONNECT, where RFC 9110 §8.6
 * forbids one and the tunnel starts right after the head. Any other
 * status says its (empty) length so a persistent connection can carry
 * the next request, e.g. after 407. reason NULL means the usual phrase
 * ("Connection Established" for 200, "Bad Request", "Proxy
 * Authentication Required", "Bad Gateway", "Gateway Timeout", ...; empty
 * for an unknown status). proxy_status is a value formatted by
 * masq_proxy_status_format. Returns the length, or -1 if it does not fit
 * in cap or an argument could break the head: status outside 100..599, a
 * reason, value or Proxy-Status holding a control character other than
 * HTAB, a name that is not a token, or an extra Content-Length or
 * Transfer-Encoding. */
int masq_http1_response_encode(uint8_t *out, size_t cap, int status, const char *reason,
                               const char *proxy_status, const masq_http1_header *extra,
                               size_t nextra);

#endif
