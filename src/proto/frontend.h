/* Pure helpers for the client's local proxy front ends (masq socks,
 * masq http-proxy, masq forward --tcp): reading the proxy's answer to a
 * CONNECT and naming targets the way a plain CONNECT's :authority wants
 * them (RFC 9114 §4.4, RFC 9110 §7.2: host:port, IPv6 in brackets).
 * Nothing here does I/O. */
#ifndef MASQ_PROTO_FRONTEND_H
#define MASQ_PROTO_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#include "proto/socks5.h"

/* Longest authority: a 255-byte name, ':' and five digits (brackets
 * only ever wrap a 45-byte IPv6 literal). */
#define MASQ_FE_AUTHORITY_MAX (MASQ_MAX_HOST + 7)

/* The error type of a Proxy-Status field value (RFC 9209 §2: a list
 * of intermediaries, each with parameters; the first member is the one
 * nearest the origin, so the first member carrying an error is the one
 * that failed): the value of its "error" parameter, an sf-token, copied
 * NUL-terminated into out. Returns 0, or -1 if no member has an error
 * parameter that is a token or it does not fit in cap. */
int masq_fe_proxy_status_error(const char *v, size_t len, char *out, size_t cap);

/* The status masq http-proxy answers with when the proxy refused the
 * CONNECT for a request: 504 (Gateway Timeout) for a timeout — status
 * 504, or error type connection_timeout or dns_timeout — and 502 (Bad
 * Gateway) for anything else, including a missing response (status 0). */
int masq_fe_gateway_status(int status, const char *error_type);

/* Writes "host:port", or "[host]:port" when host holds a ':' (an IPv6
 * literal). Returns the length, or -1 if host is empty or it does not
 * fit. */
int masq_fe_authority(const char *host, uint16_t port, char *out, size_t cap);

/* The authority for a SOCKS5 request's DST.ADDR/DST.PORT: IPv4 and IPv6
 * addresses formatted (IPv6 per RFC 5952, bracketed), a domain name sent
 * as it is, unresolved, for the proxy to resolve. A domain that is not
 * a valid host name (masq_target_host_parse) is refused: -1, as is a
 * port of 0 (nothing listens there; RFC 1928 gives no other meaning to
 * it in a CONNECT). Returns the length or -1. */
int masq_fe_socks_authority(const masq_socks5_addr *a, char *out, size_t cap);

#endif
