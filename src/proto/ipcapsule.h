/* CONNECT-IP capsule payloads (RFC 9484 §4.7): ADDRESS_ASSIGN (0x01),
 * ADDRESS_REQUEST (0x02) and ROUTE_ADVERTISEMENT (0x03).
 *
 * Only the payload is handled here: the Type and Length in front of it
 * belong to the capsule layer (proto/capsule.h). One-shot decoders in
 * h2o's style take a whole payload and fill a caller-provided array; they
 * never allocate, never truncate (more entries than the array holds is an
 * error) and, on failure, return a negative MASQ_IPCAP_ERR_* code plus a
 * static reason string for rate-limited logs.
 *
 * Every error except MASQ_IPCAP_ERR_TOO_MANY means the capsule is
 * malformed, and RFC 9484 §4.7.1-§4.7.3 (via RFC 9297 §3.3) then require
 * the receiver to abort the IP proxying request stream. TOO_MANY is a
 * local limit on a possibly well-formed capsule; the caller picks cap
 * (a payload of len bytes holds at most len / MASQ_IPCAP_*_MIN_ENTRY
 * entries, so that many always suffices).
 *
 * Encoders apply the same rules as the decoders, since a sender MUST NOT
 * emit what the peer must reject: they refuse invalid input rather than
 * write it. Their output always uses the shortest varints, so it is the
 * canonical form of the entries. */
#ifndef MASQ_PROTO_IPCAPSULE_H
#define MASQ_PROTO_IPCAPSULE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"

/* Decoder / checker results. For each entry in turn a decoder tests its
 * layout (TRUNCATED, VERSION: the version fixes the entry's length), then
 * its values, then its relation to earlier entries, then whether it fits
 * the array; the first failure wins. The _check functions test the same
 * rules in the same order, so for entries they accept the decoder of
 * their encoding succeeds, and for entries they refuse they name the
 * error a receiver of such a payload would report. */
#define MASQ_IPCAP_OK 0
#define MASQ_IPCAP_ERR_TRUNCATED (-1)     /* payload ends inside an entry */
#define MASQ_IPCAP_ERR_VERSION (-2)       /* IP Version is not 4 or 6 */
#define MASQ_IPCAP_ERR_PREFIX_LEN (-3)    /* prefix longer than 32 / 128 */
#define MASQ_IPCAP_ERR_HOST_BITS (-4)     /* bits past the prefix not zero */
#define MASQ_IPCAP_ERR_REQUEST_ID_ZERO (-5) /* ADDRESS_REQUEST with ID 0 */
#define MASQ_IPCAP_ERR_REQUEST_ID_DUP (-6)  /* ID repeated in ADDRESS_REQUEST */
#define MASQ_IPCAP_ERR_EMPTY (-7)         /* ADDRESS_REQUEST with no entries */
#define MASQ_IPCAP_ERR_RANGE (-8)         /* route start above its end */
#define MASQ_IPCAP_ERR_ORDER (-9)         /* route version/protocol decreases */
#define MASQ_IPCAP_ERR_OVERLAP (-10)      /* same version+protocol not ascending */
#define MASQ_IPCAP_ERR_PROTO_OVERLAP (-11) /* protocol-0 range meets another */
#define MASQ_IPCAP_ERR_TOO_MANY (-12)     /* more entries than cap (local) */
/* Encoder-only: values the wire cannot carry at all. */
#define MASQ_IPCAP_ERR_REQUEST_ID_RANGE (-13) /* request ID above 2^62-1 */
#define MASQ_IPCAP_ERR_FAMILY_MISMATCH (-14)  /* route start/end families differ */

/* Returned by the _len and _encode functions for entries they refuse. */
#define MASQ_IPCAP_INVALID SIZE_MAX

/* Smallest wire entries: 1-byte ID + version + IPv4 + prefix length, and
 * version + two IPv4 addresses + protocol. */
#define MASQ_IPCAP_ASSIGN_MIN_ENTRY 7
#define MASQ_IPCAP_ROUTE_MIN_ENTRY 10

/* One Assigned Address (§4.7.1) or Requested Address (§4.7.2): the two
 * share a wire layout. prefix.ip.family is the IP Version; for IPv4 only
 * a[0..3] are used (decoders zero the rest, encoders ignore it). */
typedef struct masq_ip_assignment {
  uint64_t request_id;
  masq_cidr prefix;
} masq_ip_assignment;

/* One IP Address Range (§4.7.3): inclusive start..end of one family, and
 * the IP Protocol (0 = all protocols). */
typedef struct masq_ip_route {
  masq_ip start, end;
  uint8_t ipproto;
} masq_ip_route;

/* "ADDRESS_ASSIGN", "ADDRESS_REQUEST" or "ROUTE_ADVERTISEMENT" for the
 * MASQ_CAPSULE_* types of proto/wire.h, NULL for any other type. */
const char *masq_ipcapsule_name(uint64_t type);

/* The static reason string for a MASQ_IPCAP_ERR_* code ("unknown error"
 * for anything else). */
const char *masq_ipcapsule_strerror(int code);

/* --- ADDRESS_ASSIGN (RFC 9484 §4.7.1) --------------------------------- */

/* Decodes a payload p[0..len) of zero or more Assigned Addresses into
 * out[0..cap) and stores the count in *n. An empty payload is valid (all
 * addresses removed). Request IDs are taken as they come: 0 marks an
 * unsolicited assignment, and neither zero nor repeats are errors here
 * (matching IDs to requests is session state). 0.0.0.0/32 and ::/128 are
 * the §4.7.2 "not assigned" answers; see masq_ip_assignment_is_rejection.
 * Non-minimal varints are accepted (RFC 9000 §16).
 * Errors: TRUNCATED, VERSION, PREFIX_LEN, HOST_BITS, TOO_MANY.
 * On failure *n is not written and out[] holds unspecified entries.
 * out may be NULL when cap is 0. err may be NULL. */
int masq_address_assign_decode(const uint8_t *p, size_t len, masq_ip_assignment *out,
                               size_t cap, size_t *n, const char **err);

/* 0 if a[0..n) may be sent as an ADDRESS_ASSIGN, else the first error,
 * testing each entry for VERSION, REQUEST_ID_RANGE, PREFIX_LEN,
 * HOST_BITS in that order. */
int masq_address_assign_check(const masq_ip_assignment *a, size_t n, const char **err);

/* Payload bytes for a[0..n) (0 for n == 0), or MASQ_IPCAP_INVALID if the
 * check above fails. */
size_t masq_address_assign_len(const masq_ip_assignment *a, size_t n);

/* Writes the payload at dst, which must hold masq_address_assign_len
 * bytes. Returns the bytes written, or MASQ_IPCAP_INVALID, writing
 * nothing, if the check fails. */
size_t masq_address_assign_encode(uint8_t *dst, const masq_ip_assignment *a, size_t n);

/* 1 if a is the §4.7.2 rejection of a request: an all-zero address with
 * the full prefix length (0.0.0.0/32 or ::/128), else 0. */
int masq_ip_assignment_is_rejection(const masq_ip_assignment *a);

/* --- ADDRESS_REQUEST (RFC 9484 §4.7.2) -------------------------------- */

/* Decodes a payload of one or more Requested Addresses, as ADDRESS_ASSIGN
 * does, adding the §4.7.2 rules: no entries at all is EMPTY; a Request ID
 * of 0 is REQUEST_ID_ZERO; an ID already used earlier in the same capsule
 * is REQUEST_ID_DUP (reuse across capsules is for the session to catch).
 * An all-zero address means "any address of this family".
 * Errors: TRUNCATED, VERSION, PREFIX_LEN, HOST_BITS, REQUEST_ID_ZERO,
 * REQUEST_ID_DUP, EMPTY, TOO_MANY. The duplicate test compares each entry
 * with the earlier ones, so it costs O(cap^2) at worst: keep cap modest.
 * Same output and NULL rules as masq_address_assign_decode. */
int masq_address_request_decode(const uint8_t *p, size_t len, masq_ip_assignment *out,
                                size_t cap, size_t *n, const char **err);

/* 0 if a[0..n) may be sent as an ADDRESS_REQUEST, else the first error:
 * EMPTY if n == 0, then for each entry VERSION, REQUEST_ID_ZERO,
 * REQUEST_ID_RANGE, PREFIX_LEN, HOST_BITS, REQUEST_ID_DUP in that order. */
int masq_address_request_check(const masq_ip_assignment *a, size_t n, const char **err);

/* As masq_address_assign_len / _encode, with the ADDRESS_REQUEST check. */
size_t masq_address_request_len(const masq_ip_assignment *a, size_t n);
size_t masq_address_request_encode(uint8_t *dst, const masq_ip_assignment *a, size_t n);

/* --- ROUTE_ADVERTISEMENT (RFC 9484 §4.7.3) ---------------------------- */

/* Decodes a payload of zero or more IP Address Ranges into out[0..cap).
 * Each range: VERSION if not 4 or 6, RANGE if Start > End. Each range
 * against the one before it (enough, as the rules are transitive): ORDER
 * if the IP Version decreases, or the IP Protocol decreases within a
 * version; OVERLAP if version and protocol are equal and the previous End
 * is not strictly below this Start (overlapping, touching-equal or
 * unsorted ranges). Once all are read: PROTO_OVERLAP if a protocol-0
 * range shares any address with a range of the same version and another
 * protocol (the check §4.7.3 makes OPTIONAL; masq always does it,
 * in O(n log n)).
 * Errors: TRUNCATED, VERSION, RANGE, ORDER, OVERLAP, TOO_MANY,
 * PROTO_OVERLAP (only if every range fits in out).
 * Same output and NULL rules as masq_address_assign_decode. */
int masq_route_advertisement_decode(const uint8_t *p, size_t len, masq_ip_route *out,
                                    size_t cap, size_t *n, const char **err);

/* 0 if r[0..n) may be sent as a ROUTE_ADVERTISEMENT, else the first
 * error: for each range VERSION (of start), FAMILY_MISMATCH, RANGE, ORDER,
 * OVERLAP in that order, then PROTO_OVERLAP over the whole list. */
int masq_route_advertisement_check(const masq_ip_route *r, size_t n, const char **err);

/* As masq_address_assign_len / _encode, for ranges. */
size_t masq_route_advertisement_len(const masq_ip_route *r, size_t n);
size_t masq_route_advertisement_encode(uint8_t *dst, const masq_ip_route *r, size_t n);

#endif
