/* Sets of IP addresses as sorted lists of inclusive ranges, and the
 * conversions between them and CIDR prefixes: what turns an RFC 9484
 * ROUTE_ADVERTISEMENT (§4.7.3 speaks in start..end ranges) together with
 * --route / --exclude (CIDRs) into the prefixes a kernel routing table
 * takes, and what the per-packet route check searches.
 *
 * Pure: no I/O, no allocation; callers own every array. A list is
 * "normalized" when it is sorted (IPv4 before IPv6, then by start) and
 * no two ranges overlap or touch (adjacent ones are merged): the set
 * operations take and give normalized lists. Functions that produce a
 * list return its length, or MASQ_IPRANGE_TOO_MANY (leaving out[]
 * unspecified) when cap entries do not hold it. */
#ifndef MASQ_PROTO_IPRANGE_H
#define MASQ_PROTO_IPRANGE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"

#define MASQ_IPRANGE_TOO_MANY SIZE_MAX

/* start..end, both inclusive and of one family (4 or 6); for IPv4 only
 * a[0..3] count and the rest must be zero. */
typedef struct masq_iprange {
  masq_ip start, end;
} masq_iprange;

/* Orders addresses: by family (4 first), then numerically. <0, 0, >0. */
int masq_iprange_ipcmp(const masq_ip *x, const masq_ip *y);

/* The range a prefix covers. Returns 0, or -1 if the family is not 4 or
 * 6 or plen exceeds it (out untouched). Host bits are ignored. */
int masq_iprange_from_cidr(const masq_cidr *c, masq_iprange *out);

/* The whole address space of family 4 or 6 (0.0.0.0-255.255.255.255,
 * ::-ffff:...:ffff). Returns 0, or -1 for another family. */
int masq_iprange_full(int family, masq_iprange *out);

/* Sorts r[0..n) in place and merges overlapping and adjacent ranges.
 * Ranges with a bad family or start > end are dropped. Returns the new
 * count (<= n). */
size_t masq_iprange_normalize(masq_iprange *r, size_t n);

/* 1 if ip lies in the normalized list r[0..n) (binary search: cheap
 * enough per packet), else 0. */
int masq_iprange_contains(const masq_iprange *r, size_t n, const masq_ip *ip);

/* out = a ∩ b, for normalized a and b; out must not alias them. */
size_t masq_iprange_intersect(const masq_iprange *a, size_t na, const masq_iprange *b, size_t nb,
                              masq_iprange *out, size_t cap);

/* out = a − b, for normalized a and b; out must not alias them. */
size_t masq_iprange_subtract(const masq_iprange *a, size_t na, const masq_iprange *b, size_t nb,
                             masq_iprange *out, size_t cap);

/* The fewest CIDR prefixes covering exactly r[0..n) (normalized or not;
 * each range is split on its own), in order. One IPv6 range may need up
 * to 254 prefixes. Host bits of each prefix are zero. */
size_t masq_iprange_to_cidrs(const masq_iprange *r, size_t n, masq_cidr *out, size_t cap);

#endif
