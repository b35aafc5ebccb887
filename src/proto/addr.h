/* IP addresses, prefixes, host:port specs and the target policy, without
 * any socket: addresses are plain bytes here and the io layer converts. */
#ifndef MASQ_PROTO_ADDR_H
#define MASQ_PROTO_ADDR_H

#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

#define MASQ_FWD_HOST_MAX (MASQ_MAX_HOST + 1)

typedef struct masq_ip {
  uint8_t family; /* 4 or 6 */
  uint8_t a[16];  /* IPv4 in a[0..3] */
} masq_ip;

typedef struct masq_cidr {
  masq_ip ip;
  uint8_t plen; /* prefix length */
} masq_cidr;

/* Parses an IPv4 dotted quad or an IPv6 literal (no brackets, no zone).
 * Returns 0 or -1. */
int masq_ip_parse(const char *s, masq_ip *out);

/* Formats ip (IPv6 in RFC 5952 form). Returns out, or NULL if cap < 46. */
char *masq_ip_format(const masq_ip *ip, char *out, size_t cap);

/* Parses "ADDR/LEN" or a bare address (full length). LEN is digits only,
 * at most 32 or 128. Host bits below the prefix must be zero. IPv4
 * octets take no leading zeros (they would read as octal elsewhere).
 * Returns 0 or -1. */
int masq_cidr_parse(const char *s, masq_cidr *out);

/* 1 if ip is inside c (same family; an IPv4-mapped IPv6 address
 * ::ffff:a.b.c.d is matched as its IPv4 address). */
int masq_cidr_contains(const masq_cidr *c, const masq_ip *ip);

/* Splits "HOST:PORT", "[V6]:PORT" or, with default_port >= 0, a bare
 * "HOST" / "[V6]". host gets the name or literal without brackets.
 * Port must be 1..65535 (0 allowed only if allow_zero), digits only (no
 * sign or space; leading zeros are fine). HOST is letters, digits, '-', '_', '.'
 * (at most MASQ_MAX_HOST); an unbracketed IPv6 literal is refused as
 * ambiguous. Returns 0 or -1. */
int masq_hostport_parse(const char *s, char *host, size_t hcap, uint16_t *port,
                        int default_port, int allow_zero);

/* Parses a port s[0..n): digits only, value 1..65535 (0 too if
 * allow_zero), e.g. RFC 9298 §3 target_port. Returns 0 or -1. */
int masq_port_parse(const char *s, size_t n, int allow_zero, uint16_t *port);

/* Classifies a decoded RFC 9298 §3 target_host: returns 1 if it is an IPv4
 * or IPv6 literal (stored in *ip if ip is non-NULL), 0 if it is a
 * syntactically valid DNS name (LDH labels plus '_', 1..63 octets each,
 * <= 253 characters, optional final dot, last label not all digits), or
 * -1 otherwise (empty, zone IDs, brackets, other characters): the server
 * answers 400 for -1. */
int masq_target_host_parse(const char *s, masq_ip *ip);

/* ssh -L style forward spec: "[BIND:]PORT:HOST:HOSTPORT", IPv6 literals in
 * brackets (stored without them). bind defaults to "127.0.0.1" when
 * omitted and must be an IP literal; ports must be 1..65535. 0 or -1. */
typedef struct masq_fwdspec {
  char bind[64];
  uint16_t port;
  char host[MASQ_FWD_HOST_MAX];
  uint16_t hostport;
} masq_fwdspec;
int masq_fwdspec_parse(const char *s, masq_fwdspec *out);

/* Target policy (issue 2 §3): a deny list checked against resolved
 * addresses, with an allow list that takes precedence. */
#define MASQ_POLICY_MAX 64
typedef struct masq_policy {
  masq_cidr deny[MASQ_POLICY_MAX];
  size_t ndeny;
  masq_cidr allow[MASQ_POLICY_MAX];
  size_t nallow;
} masq_policy;

/* Fills the default deny list (see addr.c for each prefix's RFC):
 * "this network", loopback, link-local, private (RFC 1918), shared
 * (RFC 6598), IETF protocol assignments (192.0.0.0/24), benchmarking
 * (198.18.0.0/15), multicast, reserved and broadcast (240.0.0.0/4),
 * IPv6 unspecified, loopback, link-local, site-local, unique-local and
 * multicast; IPv4-mapped IPv6 forms match the IPv4 rules. Documentation
 * prefixes are NOT included. Empties the allow list. */
void masq_policy_init_default(masq_policy *p);
int masq_policy_allow(masq_policy *p, const masq_cidr *c);  /* -1 if full */
int masq_policy_deny(masq_policy *p, const masq_cidr *c);   /* -1 if full */
/* 1 if ip may be a target: it is in the allow list, or in no deny rule.
 * 0 otherwise (also for a family other than 4 or 6). */
int masq_policy_check(const masq_policy *p, const masq_ip *ip);

#endif
