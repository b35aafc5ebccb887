/* libFuzzer harness for the CONNECT-IP capsule payload codecs (RFC 9484
 * §4.7.1-§4.7.3).
 *
 * Byte 0 picks the mode (low two bits) and byte 1 the output array's cap;
 * the rest is the input.
 *   Modes 0-2 decode the rest as ADDRESS_ASSIGN, ADDRESS_REQUEST or
 *   ROUTE_ADVERTISEMENT into an exact-size heap array (so ASan sees any
 *   write past cap). A success must pass the sender-side check, re-encode
 *   to at most the input's size -- byte-identical when the sizes match,
 *   since only varint length is free -- and decode back to equal entries.
 *   A failure must name its reason and not depend on cap, except for
 *   TOO_MANY, which a large enough cap must cure.
 *   Mode 3 builds entries from the bytes and runs the sender side: when
 *   _check accepts them they must round-trip through encode and decode;
 *   when it refuses them, encode must too, and the decoder fed a
 *   hand-made encoding must report the same error.
 * Every verdict is also compared with a naive pairwise reading of the
 * rules (naive_ok), so a mistake shared by decoder and checker shows. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ipcapsule.h"
#include "proto/varint.h"
#include "proto/wire.h"

enum { ASSIGN = 0, REQUEST = 1, ROUTE = 2 };

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) abort();
  return p;
}

static size_t alen_of(uint8_t family) { return family == 4 ? 4 : 16; }

static int ip_eq(const masq_ip *x, const masq_ip *y) {
  return x->family == y->family && memcmp(x->a, y->a, alen_of(x->family)) == 0;
}

static int asg_eq(const masq_ip_assignment *x, const masq_ip_assignment *y) {
  return x->request_id == y->request_id && ip_eq(&x->prefix.ip, &y->prefix.ip) &&
         x->prefix.plen == y->prefix.plen;
}

static int rt_eq(const masq_ip_route *x, const masq_ip_route *y) {
  return ip_eq(&x->start, &y->start) && ip_eq(&x->end, &y->end) && x->ipproto == y->ipproto;
}

/* ---- one interface over the three capsule kinds ------------------------ */

static size_t entry_size(int kind) {
  return kind == ROUTE ? sizeof(masq_ip_route) : sizeof(masq_ip_assignment);
}

static int decode(int kind, const uint8_t *p, size_t len, void *out, size_t cap, size_t *n,
                  const char **err) {
  if (kind == ASSIGN) return masq_address_assign_decode(p, len, out, cap, n, err);
  if (kind == REQUEST) return masq_address_request_decode(p, len, out, cap, n, err);
  return masq_route_advertisement_decode(p, len, out, cap, n, err);
}

static int check(int kind, const void *e, size_t n) {
  if (kind == ASSIGN) return masq_address_assign_check(e, n, NULL);
  if (kind == REQUEST) return masq_address_request_check(e, n, NULL);
  return masq_route_advertisement_check(e, n, NULL);
}

static size_t enc_len(int kind, const void *e, size_t n) {
  if (kind == ASSIGN) return masq_address_assign_len(e, n);
  if (kind == REQUEST) return masq_address_request_len(e, n);
  return masq_route_advertisement_len(e, n);
}

static size_t encode(int kind, uint8_t *dst, const void *e, size_t n) {
  if (kind == ASSIGN) return masq_address_assign_encode(dst, e, n);
  if (kind == REQUEST) return masq_address_request_encode(dst, e, n);
  return masq_route_advertisement_encode(dst, e, n);
}

static int entries_eq(int kind, const void *x, const void *y, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int eq = kind == ROUTE ? rt_eq((const masq_ip_route *)x + i, (const masq_ip_route *)y + i)
                           : asg_eq((const masq_ip_assignment *)x + i,
                                    (const masq_ip_assignment *)y + i);
    if (!eq) return 0;
  }
  return 1;
}

/* ---- an independent, naive reading of the rules -------------------------
 * Pairwise and bit by bit, sharing no code with the codec, so a rule
 * mistake in ipcapsule.c that decode and _check share still shows. */

static int bit_at(const uint8_t *a, unsigned i) { return (a[i / 8] >> (7 - i % 8)) & 1; }

static int naive_assignment_ok(const masq_ip_assignment *a, int request) {
  unsigned bits = a->prefix.ip.family == 4 ? 32 : a->prefix.ip.family == 6 ? 128 : 0;
  if (bits == 0 || a->request_id > MASQ_VARINT_MAX || (request && a->request_id == 0)) return 0;
  if (a->prefix.plen > bits) return 0;
  for (unsigned i = a->prefix.plen; i < bits; i++)
    if (bit_at(a->prefix.ip.a, i)) return 0;
  return 1;
}

static int ip_le(const masq_ip *x, const masq_ip *y) {
  return memcmp(x->a, y->a, alen_of(x->family)) <= 0;
}

static int naive_routes_pair_ok(const masq_ip_route *a, const masq_ip_route *b) {
  if (a->start.family != b->start.family) return a->start.family < b->start.family;
  int overlap = ip_le(&a->start, &b->end) && ip_le(&b->start, &a->end);
  if ((a->ipproto == 0) != (b->ipproto == 0) && overlap) return 0;
  if (a->ipproto != b->ipproto) return a->ipproto < b->ipproto;
  return !ip_le(&b->start, &a->end);
}

static int naive_ok(int kind, const void *e, size_t n) {
  if (kind == REQUEST && n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    if (kind == ROUTE) {
      const masq_ip_route *r = (const masq_ip_route *)e;
      uint8_t f = r[i].start.family;
      if ((f != 4 && f != 6) || r[i].end.family != f || !ip_le(&r[i].start, &r[i].end)) return 0;
      for (size_t j = 0; j < i; j++)
        if (!naive_routes_pair_ok(&r[j], &r[i])) return 0;
    } else {
      const masq_ip_assignment *a = (const masq_ip_assignment *)e;
      if (!naive_assignment_ok(&a[i], kind == REQUEST)) return 0;
      for (size_t j = 0; kind == REQUEST && j < i; j++)
        if (a[j].request_id == a[i].request_id) return 0;
    }
  }
  return 1;
}

/* Enough entries for any payload of len bytes. */
static size_t cap_for(int kind, size_t len) {
  return len / (kind == ROUTE ? MASQ_IPCAP_ROUTE_MIN_ENTRY : MASQ_IPCAP_ASSIGN_MIN_ENTRY) + 1;
}

/* Encodes e[0..n) (which check accepted) into an exact-size buffer and
 * decodes it back: same entries, same bytes again. Returns the length. */
static size_t roundtrip(int kind, const void *e, size_t n, uint8_t **wire_out) {
  size_t len = enc_len(kind, e, n);
  if (len == MASQ_IPCAP_INVALID) abort();
  uint8_t *wire = xmalloc(len);
  if (encode(kind, wire, e, n) != len) abort();
  void *back = xmalloc(n * entry_size(kind));
  size_t m = SIZE_MAX;
  if (decode(kind, wire, len, back, n, &m, NULL) != 0 || m != n) abort();
  if (!entries_eq(kind, e, back, n)) abort();
  uint8_t *again = xmalloc(len);
  if (encode(kind, again, back, n) != len || memcmp(again, wire, len) != 0) abort();
  free(again);
  free(back);
  *wire_out = wire;
  return len;
}

/* ---- modes 0-2: decoding arbitrary bytes ------------------------------- */

static void fuzz_decode(int kind, const uint8_t *p, size_t len, size_t cap) {
  void *out = cap ? xmalloc(cap * entry_size(kind)) : NULL;
  size_t n = SIZE_MAX;
  const char *err = NULL;
  int rc = decode(kind, p, len, out, cap, &n, &err);
  if (rc == 0) {
    if (n > cap || err != NULL || check(kind, out, n) != 0 || !naive_ok(kind, out, n)) abort();
    uint8_t *wire;
    size_t wlen = roundtrip(kind, out, n, &wire);
    /* Shortest varints can only shrink the payload, and routes have no
     * varints at all; equal sizes mean equal bytes. */
    if (wlen > len || (kind == ROUTE && wlen != len)) abort();
    if (wlen == len && memcmp(wire, p, len) != 0) abort();
    free(wire);
  } else {
    if (rc < MASQ_IPCAP_ERR_TOO_MANY || rc > MASQ_IPCAP_ERR_TRUNCATED) abort();
    if (n != SIZE_MAX || err == NULL || strcmp(err, masq_ipcapsule_strerror(rc)) != 0) abort();
    /* With room for any number of entries, only TOO_MANY changes. */
    size_t big = cap_for(kind, len);
    void *all = xmalloc(big * entry_size(kind));
    size_t m = SIZE_MAX;
    int rc2 = decode(kind, p, len, all, big, &m, NULL);
    if (rc2 == MASQ_IPCAP_ERR_TOO_MANY) abort();
    if (rc != MASQ_IPCAP_ERR_TOO_MANY && rc2 != rc) abort();
    if (rc2 == 0 && m <= cap) abort();
    free(all);
  }
  free(out);
}

/* ---- mode 3: the sender side ------------------------------------------- */

/* Takes up to n bytes from the input; missing ones read as zero. */
static void take(const uint8_t **p, size_t *len, void *dst, size_t n) {
  size_t k = n < *len ? n : *len;
  memset(dst, 0, n);
  memcpy(dst, *p, k);
  *p += k;
  *len -= k;
}

/* Flag bits let the fuzzer steer entries towards validity: a mostly-valid
 * family, host bits cleared, an in-range ID. */
static uint8_t family_of(uint8_t b) { return (b & 3) == 3 ? (uint8_t)(b >> 2) : (b & 1) ? 6 : 4; }

static void clear_host_bits(masq_cidr *c) {
  size_t alen = alen_of(c->ip.family);
  if (c->plen > alen * 8) return;
  for (size_t i = c->plen / 8; i < 16; i++) {
    unsigned kept = i == (size_t)c->plen / 8 ? c->plen % 8u : 0;
    c->ip.a[i] &= (uint8_t)~(0xffu >> kept);
  }
}

static void build_assignment(const uint8_t **p, size_t *len, masq_ip_assignment *e) {
  uint8_t flags, fam;
  uint64_t id;
  memset(e, 0, sizeof(*e));
  take(p, len, &flags, 1);
  take(p, len, &id, sizeof(id));
  take(p, len, &fam, 1);
  e->request_id = (flags & 1) ? id : (flags & 2) ? (id & 0xf) : (id & MASQ_VARINT_MAX);
  e->prefix.ip.family = family_of(fam);
  take(p, len, e->prefix.ip.a, alen_of(e->prefix.ip.family));
  take(p, len, &e->prefix.plen, 1);
  if (flags & 4) e->prefix.plen %= (uint8_t)(alen_of(e->prefix.ip.family) * 8 + 1);
  if (flags & 8) clear_host_bits(&e->prefix);
}

static void build_route(const uint8_t **p, size_t *len, masq_ip_route *r) {
  uint8_t flags, fam;
  memset(r, 0, sizeof(*r));
  take(p, len, &flags, 1);
  take(p, len, &fam, 1);
  r->start.family = r->end.family = family_of(fam);
  if (flags & 1) r->end.family = r->start.family == 4 ? 6 : 4;
  size_t alen = alen_of(r->start.family);
  take(p, len, r->start.a, alen);
  take(p, len, r->end.a, alen);
  take(p, len, &r->ipproto, 1);
  if (flags & 2) r->ipproto &= 1; /* protocol 0 vs 1: overlaps matter */
}

/* Strict (version, protocol, start) order, which the fuzzer can then
 * break again through the input. Insertion sort: n is small. */
static int route_before(const masq_ip_route *a, const masq_ip_route *b) {
  if (a->start.family != b->start.family) return a->start.family < b->start.family;
  if (a->ipproto != b->ipproto) return a->ipproto < b->ipproto;
  return memcmp(a->start.a, b->start.a, 16) < 0;
}

static void sort_routes(masq_ip_route *r, size_t n) {
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0 && route_before(&r[j], &r[j - 1]); j--) {
      masq_ip_route t = r[j];
      r[j] = r[j - 1];
      r[j - 1] = t;
    }
}

/* The wire form of e[0..n) without any validation, for entries the
 * encoder refuses. Only called when every family is 4 or 6 or an entry
 * before the bad one fails first, so the bytes written are what a peer
 * could send. Returns the length. */
static size_t raw_encode(int kind, uint8_t *dst, const void *e, size_t n) {
  uint8_t *q = dst;
  for (size_t i = 0; i < n; i++) {
    if (kind == ROUTE) {
      const masq_ip_route *r = (const masq_ip_route *)e + i;
      size_t alen = alen_of(r->start.family);
      *q++ = r->start.family;
      memcpy(q, r->start.a, alen);
      memcpy(q + alen, r->end.a, alen);
      q += 2 * alen;
      *q++ = r->ipproto;
    } else {
      const masq_ip_assignment *a = (const masq_ip_assignment *)e + i;
      size_t alen = alen_of(a->prefix.ip.family);
      q = masq_varint_encode(q, a->request_id & MASQ_VARINT_MAX);
      *q++ = a->prefix.ip.family;
      memcpy(q, a->prefix.ip.a, alen);
      q += alen;
      *q++ = a->prefix.plen;
    }
  }
  return (size_t)(q - dst);
}

static void fuzz_encode(int kind, const uint8_t *p, size_t len, uint8_t mode) {
  enum { MAXN = 32 };
  size_t n = mode % (MAXN + 1);
  void *e = xmalloc(n * entry_size(kind));
  for (size_t i = 0; i < n; i++) {
    if (kind == ROUTE) build_route(&p, &len, (masq_ip_route *)e + i);
    else build_assignment(&p, &len, (masq_ip_assignment *)e + i);
  }
  if (kind == ROUTE && (mode & 0x80)) sort_routes(e, n);
  int rc = check(kind, e, n);
  if ((rc == 0) != naive_ok(kind, e, n)) abort();
  if (rc == 0) {
    uint8_t *wire;
    roundtrip(kind, e, n, &wire);
    free(wire);
  } else if (rc != MASQ_IPCAP_ERR_REQUEST_ID_RANGE && rc != MASQ_IPCAP_ERR_FAMILY_MISMATCH) {
    uint8_t dummy = 0xaa;
    if (enc_len(kind, e, n) != MASQ_IPCAP_INVALID) abort();
    if (encode(kind, &dummy, e, n) != MASQ_IPCAP_INVALID || dummy != 0xaa) abort();
    /* Raw bytes of the same entries: the receiver's verdict must match. */
    uint8_t *wire = xmalloc(n * 34);
    size_t wlen = raw_encode(kind, wire, e, n);
    void *out = xmalloc(n * entry_size(kind));
    size_t m;
    if (decode(kind, wire, wlen, out, n, &m, NULL) != rc) abort();
    free(out);
    free(wire);
  }
  free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  int mode = data[0] & 3;
  if (mode < 3) {
    fuzz_decode(mode, data + 2, size - 2, data[1]);
  } else {
    /* data[0] bits 2-3 pick the kind; data[1] the count and sorting. */
    int kind = (data[0] >> 2) % 3;
    fuzz_encode(kind, data + 2, size - 2, data[1]);
  }
  return 0;
}
