/* CONNECT-IP capsule payloads (RFC 9484 §4.7.1-§4.7.3).
 *
 * Decoders walk the payload once. Each rule lives in one small function
 * shared by the decoder and by the sender-side _check, so what masq sends
 * and what it accepts cannot drift apart. IPv4 addresses sit in a[0..3]
 * of masq_ip, so byte-wise memcmp over the address length orders
 * addresses numerically for either family. */
#include "proto/ipcapsule.h"

#include <string.h>

#include "proto/varint.h"
#include "proto/wire.h"

/* Reason strings, indexed by -code. */
static const char *const reasons[] = {
    "ok",
    "truncated entry",
    "IP version is not 4 or 6",
    "prefix length exceeds address length",
    "address bits beyond the prefix length are not zero",
    "request ID is zero in ADDRESS_REQUEST",
    "request ID repeated in ADDRESS_REQUEST",
    "ADDRESS_REQUEST without any requested address",
    "route start address above end address",
    "routes not ordered by IP version then IP protocol",
    "routes of the same version and protocol overlap or are unsorted",
    "protocol-0 route overlaps a route with a specific protocol",
    "more entries than the output array holds",
    "request ID above 2^62-1",
    "route start and end address families differ",
};

#define NREASONS (sizeof(reasons) / sizeof(reasons[0]))

const char *masq_ipcapsule_strerror(int code) {
  if (code > 0 || code < -(int)(NREASONS - 1)) return "unknown error";
  return reasons[-code];
}

const char *masq_ipcapsule_name(uint64_t type) {
  switch (type) {
    case MASQ_CAPSULE_ADDRESS_ASSIGN: return "ADDRESS_ASSIGN";
    case MASQ_CAPSULE_ADDRESS_REQUEST: return "ADDRESS_REQUEST";
    case MASQ_CAPSULE_ROUTE_ADVERTISEMENT: return "ROUTE_ADVERTISEMENT";
    default: return NULL;
  }
}

/* Reports code through err (if wanted) and returns it, so every failure
 * path is a single `return fail(err, X)`. */
static int fail(const char **err, int code) {
  if (err && code != MASQ_IPCAP_OK) *err = masq_ipcapsule_strerror(code);
  return code;
}

/* §4.7.1-§4.7.3: "It MUST be either 4 or 6", and the version alone fixes
 * the address field: 32 bits for 4, 128 for 6. 0 for any other value. */
static size_t addr_len(uint8_t version) {
  return version == 4 ? 4 : version == 6 ? 16 : 0;
}

/* §4.7.1 / §4.7.2: "the lower bits of the IP Address field that are not
 * covered by the prefix length MUST all be set to 0". plen <= alen * 8. */
static int host_bits_zero(const uint8_t *a, size_t alen, unsigned plen) {
  for (size_t i = plen / 8; i < alen; i++) {
    unsigned kept = i == plen / 8 ? plen % 8 : 0; /* prefix bits in this byte */
    if (a[i] & (0xffu >> kept)) return 0;
  }
  return 1;
}

/* A small read cursor over the payload: every read either fits or fails,
 * so no caller does its own length arithmetic. */
typedef struct {
  const uint8_t *p;
  size_t left;
} cursor;

static int take(cursor *c, void *dst, size_t n) {
  if (c->left < n) return 0;
  memcpy(dst, c->p, n);
  c->p += n;
  c->left -= n;
  return 1;
}

static int take_varint(cursor *c, uint64_t *v) {
  size_t used = masq_varint_decode(c->p, c->left, v);
  c->p += used;
  c->left -= used;
  return used != 0;
}

/* ---- Assigned / Requested Address (shared layout) ---------------------- */

/* Rules on one entry's values (not its layout), in the order the header
 * documents. is_request adds §4.7.2: "Request IDs ... MUST NOT be zero". */
static int assignment_values(const masq_ip_assignment *e, int is_request) {
  size_t alen = addr_len(e->prefix.ip.family);
  if (alen == 0) return MASQ_IPCAP_ERR_VERSION;
  if (is_request && e->request_id == 0) return MASQ_IPCAP_ERR_REQUEST_ID_ZERO;
  if (e->request_id > MASQ_VARINT_MAX) return MASQ_IPCAP_ERR_REQUEST_ID_RANGE;
  /* "This MUST be less than or equal to the length of the IP Address
   * field in bits." */
  if (e->prefix.plen > alen * 8) return MASQ_IPCAP_ERR_PREFIX_LEN;
  if (!host_bits_zero(e->prefix.ip.a, alen, e->prefix.plen)) return MASQ_IPCAP_ERR_HOST_BITS;
  return MASQ_IPCAP_OK;
}

/* §4.7.2: "Each request from a given endpoint carries a different
 * identifier" holds within one capsule at least; earlier[0..n) are the
 * entries before e. Linear scan: no allocation, O(n) per entry. */
static int request_id_unique(const masq_ip_assignment *earlier, size_t n, uint64_t id) {
  for (size_t i = 0; i < n; i++)
    if (earlier[i].request_id == id) return 0;
  return 1;
}

/* Reads one entry's layout: Request ID (i), IP Version (8), IP Address
 * (32 or 128), IP Prefix Length (8). The version is tested here because
 * the entry's length depends on it. */
static int assignment_read(cursor *c, masq_ip_assignment *e) {
  uint8_t version;
  memset(e, 0, sizeof(*e));
  if (!take_varint(c, &e->request_id) || !take(c, &version, 1)) return MASQ_IPCAP_ERR_TRUNCATED;
  size_t alen = addr_len(version);
  if (alen == 0) return MASQ_IPCAP_ERR_VERSION;
  e->prefix.ip.family = version;
  if (!take(c, e->prefix.ip.a, alen) || !take(c, &e->prefix.plen, 1))
    return MASQ_IPCAP_ERR_TRUNCATED;
  return MASQ_IPCAP_OK;
}

static int assignments_decode(const uint8_t *p, size_t len, masq_ip_assignment *out, size_t cap,
                              size_t *n, const char **err, int is_request) {
  /* §4.7.2: "If an endpoint receives an ADDRESS_REQUEST capsule that
   * contains zero Requested Addresses, it MUST abort". */
  if (is_request && len == 0) return fail(err, MASQ_IPCAP_ERR_EMPTY);
  cursor c = {p, len};
  size_t count = 0;
  while (c.left > 0) {
    masq_ip_assignment e;
    int rc = assignment_read(&c, &e);
    if (rc == MASQ_IPCAP_OK) rc = assignment_values(&e, is_request);
    if (rc == MASQ_IPCAP_OK && is_request && !request_id_unique(out, count, e.request_id))
      rc = MASQ_IPCAP_ERR_REQUEST_ID_DUP;
    if (rc == MASQ_IPCAP_OK && count == cap) rc = MASQ_IPCAP_ERR_TOO_MANY;
    if (rc != MASQ_IPCAP_OK) return fail(err, rc);
    out[count++] = e;
  }
  *n = count;
  return MASQ_IPCAP_OK;
}

static int assignments_check(const masq_ip_assignment *a, size_t n, const char **err,
                             int is_request) {
  if (is_request && n == 0) return fail(err, MASQ_IPCAP_ERR_EMPTY);
  for (size_t i = 0; i < n; i++) {
    int rc = assignment_values(&a[i], is_request);
    if (rc == MASQ_IPCAP_OK && is_request && !request_id_unique(a, i, a[i].request_id))
      rc = MASQ_IPCAP_ERR_REQUEST_ID_DUP;
    if (rc != MASQ_IPCAP_OK) return fail(err, rc);
  }
  return MASQ_IPCAP_OK;
}

/* Bytes of one valid entry: varint ID, version, address, prefix length. */
static size_t assignment_wire_len(const masq_ip_assignment *e) {
  return masq_varint_len(e->request_id) + 1 + addr_len(e->prefix.ip.family) + 1;
}

static size_t assignments_len(const masq_ip_assignment *a, size_t n, int is_request) {
  if (assignments_check(a, n, NULL, is_request) != MASQ_IPCAP_OK) return MASQ_IPCAP_INVALID;
  size_t total = 0;
  /* At most 8 + 1 + 16 + 1 = 26 bytes each; an array that large cannot
   * exist in memory, but the bound keeps the sum obviously in range. */
  if (n > (MASQ_IPCAP_INVALID - 1) / 26) return MASQ_IPCAP_INVALID;
  for (size_t i = 0; i < n; i++) total += assignment_wire_len(&a[i]);
  return total;
}

static size_t assignments_encode(uint8_t *dst, const masq_ip_assignment *a, size_t n,
                                 int is_request) {
  if (assignments_len(a, n, is_request) == MASQ_IPCAP_INVALID) return MASQ_IPCAP_INVALID;
  uint8_t *q = dst;
  for (size_t i = 0; i < n; i++) {
    size_t alen = addr_len(a[i].prefix.ip.family);
    q = masq_varint_encode(q, a[i].request_id);
    *q++ = a[i].prefix.ip.family;
    memcpy(q, a[i].prefix.ip.a, alen);
    q += alen;
    *q++ = a[i].prefix.plen;
  }
  return (size_t)(q - dst);
}

int masq_address_assign_decode(const uint8_t *p, size_t len, masq_ip_assignment *out,
                               size_t cap, size_t *n, const char **err) {
  return assignments_decode(p, len, out, cap, n, err, 0);
}

int masq_address_assign_check(const masq_ip_assignment *a, size_t n, const char **err) {
  return assignments_check(a, n, err, 0);
}

size_t masq_address_assign_len(const masq_ip_assignment *a, size_t n) {
  return assignments_len(a, n, 0);
}

size_t masq_address_assign_encode(uint8_t *dst, const masq_ip_assignment *a, size_t n) {
  return assignments_encode(dst, a, n, 0);
}

int masq_ip_assignment_is_rejection(const masq_ip_assignment *a) {
  static const uint8_t zero[16];
  size_t alen = addr_len(a->prefix.ip.family);
  return alen != 0 && a->prefix.plen == alen * 8 && memcmp(a->prefix.ip.a, zero, alen) == 0;
}

int masq_address_request_decode(const uint8_t *p, size_t len, masq_ip_assignment *out,
                                size_t cap, size_t *n, const char **err) {
  return assignments_decode(p, len, out, cap, n, err, 1);
}

int masq_address_request_check(const masq_ip_assignment *a, size_t n, const char **err) {
  return assignments_check(a, n, err, 1);
}

size_t masq_address_request_len(const masq_ip_assignment *a, size_t n) {
  return assignments_len(a, n, 1);
}

size_t masq_address_request_encode(uint8_t *dst, const masq_ip_assignment *a, size_t n) {
  return assignments_encode(dst, a, n, 1);
}

/* ---- IP Address Range ------------------------------------------------ */

/* Numeric order of two addresses of the same family. */
static int ip_cmp(const masq_ip *x, const masq_ip *y) {
  return memcmp(x->a, y->a, addr_len(x->family));
}

/* Rules on one range's own values. "The Start IP Address MUST be less
 * than or equal to the End IP Address." */
static int route_values(const masq_ip_route *r) {
  if (addr_len(r->start.family) == 0) return MASQ_IPCAP_ERR_VERSION;
  if (r->end.family != r->start.family) return MASQ_IPCAP_ERR_FAMILY_MISMATCH;
  if (ip_cmp(&r->start, &r->end) > 0) return MASQ_IPCAP_ERR_RANGE;
  return MASQ_IPCAP_OK;
}

/* §4.7.3 ordering of range a, which precedes b: version non-decreasing,
 * then protocol non-decreasing, then "the End IP Address of A MUST be
 * strictly less than the Start IP Address of B". Checking neighbours is
 * enough: with start <= end in every range the rules chain transitively. */
static int route_follows(const masq_ip_route *a, const masq_ip_route *b) {
  if (a->start.family != b->start.family)
    return a->start.family < b->start.family ? MASQ_IPCAP_OK : MASQ_IPCAP_ERR_ORDER;
  if (a->ipproto != b->ipproto)
    return a->ipproto < b->ipproto ? MASQ_IPCAP_OK : MASQ_IPCAP_ERR_ORDER;
  return ip_cmp(&a->end, &b->start) < 0 ? MASQ_IPCAP_OK : MASQ_IPCAP_ERR_OVERLAP;
}

/* In a sorted list, zero[0..nz) are one version's protocol-0 ranges:
 * sorted and disjoint, so their ends ascend too. 1 if any of them shares
 * an address with r, found by binary search for the last one starting at
 * or below r's end. */
static int meets_any(const masq_ip_route *zero, size_t nz, const masq_ip_route *r) {
  size_t lo = 0, hi = nz; /* first index whose start is above r->end */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (ip_cmp(&zero[mid].start, &r->end) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 && ip_cmp(&zero[lo - 1].end, &r->start) >= 0;
}

/* §4.7.3: "Endpoints MUST NOT send a ROUTE_ADVERTISEMENT capsule with
 * routes that overlap in such a way" (protocol 0 against another
 * protocol). r[0..n) already passed route_follows, so each version's
 * protocol-0 ranges come first in its run. */
static int routes_proto_disjoint(const masq_ip_route *r, size_t n) {
  size_t zstart = 0, zlen = 0;
  for (size_t i = 0; i < n; i++) {
    if (i == 0 || r[i].start.family != r[i - 1].start.family) {
      zstart = i; /* a new version's run starts here */
      zlen = 0;
    }
    if (r[i].ipproto == 0) zlen++;
    else if (meets_any(r + zstart, zlen, &r[i])) return 0;
  }
  return 1;
}

/* Reads one range's layout: IP Version (8), Start and End IP Address
 * (32 or 128 each), IP Protocol (8). */
static int route_read(cursor *c, masq_ip_route *r) {
  uint8_t version;
  memset(r, 0, sizeof(*r));
  if (!take(c, &version, 1)) return MASQ_IPCAP_ERR_TRUNCATED;
  size_t alen = addr_len(version);
  if (alen == 0) return MASQ_IPCAP_ERR_VERSION;
  r->start.family = r->end.family = version;
  if (!take(c, r->start.a, alen) || !take(c, r->end.a, alen) || !take(c, &r->ipproto, 1))
    return MASQ_IPCAP_ERR_TRUNCATED;
  return MASQ_IPCAP_OK;
}

int masq_route_advertisement_decode(const uint8_t *p, size_t len, masq_ip_route *out,
                                    size_t cap, size_t *n, const char **err) {
  cursor c = {p, len};
  size_t count = 0;
  while (c.left > 0) {
    masq_ip_route r;
    int rc = route_read(&c, &r);
    if (rc == MASQ_IPCAP_OK) rc = route_values(&r);
    if (rc == MASQ_IPCAP_OK && count > 0) rc = route_follows(&out[count - 1], &r);
    if (rc == MASQ_IPCAP_OK && count == cap) rc = MASQ_IPCAP_ERR_TOO_MANY;
    if (rc != MASQ_IPCAP_OK) return fail(err, rc);
    out[count++] = r;
  }
  if (!routes_proto_disjoint(out, count)) return fail(err, MASQ_IPCAP_ERR_PROTO_OVERLAP);
  *n = count;
  return MASQ_IPCAP_OK;
}

int masq_route_advertisement_check(const masq_ip_route *r, size_t n, const char **err) {
  for (size_t i = 0; i < n; i++) {
    int rc = route_values(&r[i]);
    if (rc == MASQ_IPCAP_OK && i > 0) rc = route_follows(&r[i - 1], &r[i]);
    if (rc != MASQ_IPCAP_OK) return fail(err, rc);
  }
  if (!routes_proto_disjoint(r, n)) return fail(err, MASQ_IPCAP_ERR_PROTO_OVERLAP);
  return MASQ_IPCAP_OK;
}

size_t masq_route_advertisement_len(const masq_ip_route *r, size_t n) {
  if (masq_route_advertisement_check(r, n, NULL) != MASQ_IPCAP_OK) return MASQ_IPCAP_INVALID;
  /* At most 1 + 16 + 16 + 1 = 34 bytes each (see assignments_len). */
  if (n > (MASQ_IPCAP_INVALID - 1) / 34) return MASQ_IPCAP_INVALID;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += 2 + 2 * addr_len(r[i].start.family);
  return total;
}

size_t masq_route_advertisement_encode(uint8_t *dst, const masq_ip_route *r, size_t n) {
  if (masq_route_advertisement_len(r, n) == MASQ_IPCAP_INVALID) return MASQ_IPCAP_INVALID;
  uint8_t *q = dst;
  for (size_t i = 0; i < n; i++) {
    size_t alen = addr_len(r[i].start.family);
    *q++ = r[i].start.family;
    memcpy(q, r[i].start.a, alen);
    memcpy(q + alen, r[i].end.a, alen);
    q += 2 * alen;
    *q++ = r[i].ipproto;
  }
  return (size_t)(q - dst);
}
