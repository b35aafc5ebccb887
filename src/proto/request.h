/* The request and response headers of a MASQUE tunnel (RFC 9114 §4.3,
 * RFC 9220, RFC 9297 §3.4, RFC 9298 §3, RFC 9209), gathered field by field
 * as the HTTP/3 layer decodes them and then validated in one call. */
#ifndef MASQ_PROTO_REQUEST_H
#define MASQ_PROTO_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

typedef struct masq_hfield {
  char v[MASQ_MAX_HEADER_VALUE + 1];
  uint16_t len;
  uint8_t present; /* 1 once seen; a second copy sets dup */
  uint8_t dup;
} masq_hfield;

/* The fields masq looks at; everything else is ignored. */
typedef struct masq_reqhdrs {
  masq_hfield method, protocol, scheme, authority, path, status;
  masq_hfield capsule_protocol; /* RFC 9297 §3.4 */
  masq_hfield proxy_authorization, authorization;
  masq_hfield proxy_status; /* RFC 9209, in responses */
  uint8_t too_long; /* a kept field exceeded MASQ_MAX_HEADER_VALUE */
  uint8_t bad_pseudo; /* unknown pseudo-header, or pseudo after regular */
  uint8_t seen_regular;
  uint8_t bad_field; /* empty or upper-case name, or a kept value holding
                        NUL, CR or LF (RFC 9114 §4.2): malformed */
} masq_reqhdrs;

void masq_reqhdrs_init(masq_reqhdrs *h);

/* Records one decoded field (names arrive lower-case from HTTP/3 and are
 * compared exactly). The first copy of a field is kept; a second one
 * sets its dup. A value longer than MASQ_MAX_HEADER_VALUE sets too_long
 * and the field is marked present with an empty value. Fields not in the
 * struct are ignored (but still count as regular fields). */
void masq_reqhdrs_add(masq_reqhdrs *h, const uint8_t *name, size_t nlen, const uint8_t *value,
                      size_t vlen);

/* Result of checking an Extended CONNECT request. */
typedef struct masq_reqcheck {
  int status;             /* 0 if valid, else the HTTP status to answer */
  const char *error;      /* RFC 9209 error type for Proxy-Status, or NULL */
  const char *detail;     /* static human-readable reason */
  int capsule_protocol;   /* 1 if "capsule-protocol: ?1" was sent */
} masq_reqcheck;

/* Validates h as an Extended CONNECT request for upgrade token `protocol`
 * ("connect-udp"): :method CONNECT, :protocol present, :scheme https,
 * non-empty :authority and :path starting with '/', no duplicate or
 * unknown pseudo-headers, no :status. In order:
 *  - malformed (too_long, bad_pseudo, bad_field, duplicate pseudo-header,
 *    :status, no :method): 400, error "http_request_error";
 *  - method other than CONNECT: 405 ("http_request_error"); the caller
 *    must send "allow: CONNECT" with it (RFC 9110 §15.5.6);
 *  - CONNECT without :protocol (classic CONNECT, not served here) or
 *    without :scheme/:authority/:path: 400;
 *  - another :protocol (compared exactly): 501 (RFC 9220), error
 *    "proxy_internal_response";
 *  - :scheme not https (case-insensitive), :path not "/...": 400.
 * detail is always a static string. capsule-protocol is optional (RFC 9298
 * §3 SHOULD): capsule_protocol is 1 only for a single field that parses
 * as ?1; ?0, an unparsable value or a repeated field are treated as
 * absent, as RFC 9297 §3.4 requires, and are not errors. */
void masq_reqcheck_connect(const masq_reqhdrs *h, const char *protocol, masq_reqcheck *out);

/* Validates h as a plain CONNECT (RFC 9114 §4.4): well-formed as above,
 * :method CONNECT (else 405), no :protocol, :scheme or :path and a
 * non-empty :authority (else 400). The caller parses :authority as
 * host:port. */
void masq_reqcheck_tcp(const masq_reqhdrs *h, masq_reqcheck *out);

/* Extracts the bearer token from Proxy-Authorization, else Authorization
 * ("Bearer" is case-insensitive, then 1*SP and a b64token, RFC 6750 §2.1;
 * surrounding spaces are ignored). Returns a pointer into h (not
 * NUL-terminated at len: the value may go on with trailing spaces) and
 * its length, or NULL if neither carries a bearer token. */
const char *masq_reqhdrs_bearer(const masq_reqhdrs *h, size_t *len);

/* Parses a Structured Fields boolean (RFC 8941 §3.3.6) with optional
 * parameters (syntax-checked, meaning ignored), as used by
 * capsule-protocol. Leading/trailing SP and HTAB are ignored. Returns 1
 * (?1), 0 (?0) or -1 (not a boolean item). */
int masq_sf_boolean_parse(const char *v, size_t len);

/* Formats a Proxy-Status field value (RFC 9209 §2) into out
 * (NUL-terminated): `masq; error=TYPE` (just `masq` if error is NULL)
 * plus `; details="..."` if details is non-NULL (sf-string: " and \
 * escaped, characters outside 0x20-0x7E dropped). Returns the length, or
 * -1 if it does not fit or error is not an sf-token (RFC 9209 §2.3 types
 * such as "dns_error", "destination_ip_prohibited" all are). */
int masq_proxy_status_format(char *out, size_t cap, const char *error, const char *details);

/* Compares two byte strings in time that depends only on the lengths,
 * for tokens (issue: constant-time comparison). Returns 1 if equal (two
 * empty strings are equal: callers must refuse empty tokens). */
int masq_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
