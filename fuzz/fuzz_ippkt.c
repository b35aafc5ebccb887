/* libFuzzer harness for the IP packet parser and the ICMP error builder
 * (proto/ippkt.h): whatever parses must be self-consistent, and every
 * ICMP error built for it must parse back as a well-formed error --
 * right type/code, addressed to the original source, within 576 / 1280
 * octets, quoting the original, checksums correct -- that never draws an
 * error itself. Refusals must match masq_icmp_error_allowed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ippkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok) abort();
}

static uint16_t rd16(const uint8_t *p) {
  return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)rd16(p) << 16 | rd16(p + 2);
}

static int same_ip(const masq_ip *a, const masq_ip *b) {
  return a->family == b->family && memcmp(a->a, b->a, 16) == 0;
}

/* What a successful parse promises, checked against the raw octets. */
static void check_parsed(const uint8_t *p, size_t size, const masq_ippkt *k) {
  size_t hl = k->version == 4 ? MASQ_IPV4_HDR_LEN : MASQ_IPV6_HDR_LEN;
  check(k->version == 4 || k->version == 6);
  check(k->version == p[0] >> 4);
  check(k->src.family == k->version && k->dst.family == k->version);
  check(k->len <= size && k->len >= hl && k->l4_off >= hl && k->l4_off <= k->len);
  check(k->dscp < 64 && k->ecn < 4);
  check(!k->nonfirst || k->fragment);
  check(!(k->nonfirst && (k->has_ports || k->has_icmp)));
  check(!(k->has_ports && k->has_icmp));
  if (k->version == 4) {
    check(k->l4_off == (size_t)(p[0] & 15) * 4 && k->len == rd16(p + 2));
    check(k->proto == p[9] && k->ttl == p[8]);
  } else {
    check(k->len == MASQ_IPV6_HDR_LEN + rd16(p + 4) && k->df == 0 && k->ttl == p[7]);
  }
  if (k->has_ports) {
    check(k->proto == MASQ_IPPROTO_TCP || k->proto == MASQ_IPPROTO_UDP);
    check(k->sport == rd16(p + k->l4_off) && k->dport == rd16(p + k->l4_off + 2));
  }
  if (k->has_icmp) {
    check(k->proto == (k->version == 4 ? MASQ_IPPROTO_ICMP : MASQ_IPPROTO_ICMPV6));
    check(k->icmp_type == p[k->l4_off] && k->icmp_code == p[k->l4_off + 1]);
  }
  /* The octets past the IP-declared length play no part. */
  masq_ippkt again;
  check(masq_ippkt_parse(p, k->len, &again, NULL) == 0);
  check(memcmp(&again, k, sizeof(again)) == 0);
}

static void expected_code(int version, int kind, uint8_t *type, uint8_t *code) {
  static const uint8_t c4[] = {0, 4, 13, 13, 0}, c6[] = {0, 0, 1, 5, 0};
  *type = version == 4 ? 3 : kind == MASQ_ICMP_PACKET_TOO_BIG ? 2 : 1;
  *code = version == 4 ? c4[kind] : c6[kind];
}

/* Checks the error e[0..n) built for the parsed packet k = orig. */
static void check_error(const uint8_t *e, size_t n, const uint8_t *orig, const masq_ippkt *k,
                        const masq_ip *from, int kind, uint32_t mtu) {
  int v4 = k->version == 4;
  size_t hl = v4 ? MASQ_IPV4_HDR_LEN : MASQ_IPV6_HDR_LEN;
  size_t max = v4 ? MASQ_ICMP4_ERROR_MAX : MASQ_ICMP6_ERROR_MAX;
  size_t room = max - hl - MASQ_ICMP_HDR_LEN;
  size_t quote = k->len < room ? k->len : room;
  check(n == hl + MASQ_ICMP_HDR_LEN + quote && n <= max);
  masq_ippkt r;
  check(masq_ippkt_parse(e, n, &r, NULL) == 0);
  check(r.version == k->version && r.len == n && r.l4_off == hl && !r.fragment);
  check(r.proto == (v4 ? MASQ_IPPROTO_ICMP : MASQ_IPPROTO_ICMPV6) && r.ttl == 64);
  check(same_ip(&r.src, from) && same_ip(&r.dst, &k->src));
  uint8_t type, code;
  expected_code(k->version, kind, &type, &code);
  check(r.has_icmp && r.icmp_type == type && r.icmp_code == code);
  const uint8_t *m = e + hl;
  check(rd32(m + 4) == (kind == MASQ_ICMP_PACKET_TOO_BIG ? mtu : 0));
  check(memcmp(m + MASQ_ICMP_HDR_LEN, orig, quote) == 0);
  if (v4) {
    check(masq_csum_partial(e, hl, 0) == 0xffff);
    check(masq_csum_partial(m, n - hl, 0) == 0xffff);
    check(quote >= k->l4_off + 8 || quote == k->len); /* RFC 792 minimum */
  } else {
    uint32_t ph = masq_pseudo_header_sum(from, &k->src, MASQ_IPPROTO_ICMPV6, (uint32_t)(n - hl));
    check(masq_csum_partial(m, n - hl, ph) == 0xffff);
  }
  /* Never an error about an error. */
  for (int k2 = MASQ_ICMP_PACKET_TOO_BIG; k2 <= MASQ_ICMP_NO_ROUTE; k2++)
    check(!masq_icmp_error_allowed(&r, k2));
}

static uint8_t in_place[4096];

static void try_kind(const uint8_t *p, size_t size, const masq_ippkt *k, int kind) {
  static const masq_ip from4 = {4, {198, 51, 100, 1}};
  static const masq_ip from6 = {6, {0x20, 0x01, 0x0d, 0xb8, [15] = 1}};
  const masq_ip *from = k->version == 4 ? &from4 : &from6;
  /* Vary the MTU with the input, within each family's legal range. */
  uint32_t x = p[size - 1];
  uint32_t mtu = k->version == 4 ? MASQ_IPV4_MIN_MTU + x * 200 : MASQ_IPV6_MIN_MTU + x * 1000;
  uint8_t e[MASQ_ICMP_ERROR_MAX];
  size_t n = masq_icmp_error_build(e, sizeof(e), p, size, from, kind, mtu);
  check((n > 0) == masq_icmp_error_allowed(k, kind));
  if (n == 0) return;
  check_error(e, n, p, k, from, kind, mtu);
  uint8_t small[MASQ_ICMP_ERROR_MAX];
  check(masq_icmp_error_build(small, n - 1, p, size, from, kind, mtu) == 0);
  /* Building over the original gives the same octets. */
  if (size <= sizeof(in_place)) {
    memcpy(in_place, p, size);
    check(masq_icmp_error_build(in_place, sizeof(in_place), in_place, size, from, kind, mtu) == n);
    check(memcmp(in_place, e, n) == 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  masq_ippkt k;
  const char *err = NULL;
  memset(&k, 0x5a, sizeof(k));
  if (masq_ippkt_parse(data, size, &k, &err) != 0) {
    check(err != NULL && err[0] != '\0');
    for (int kind = MASQ_ICMP_PACKET_TOO_BIG; kind <= MASQ_ICMP_NO_ROUTE; kind++) {
      uint8_t e[MASQ_ICMP_ERROR_MAX];
      static const masq_ip any = {4, {192, 0, 2, 1}};
      check(masq_icmp_error_build(e, sizeof(e), data, size, &any, kind, 1280) == 0);
    }
    return 0;
  }
  check(err == NULL);
  check_parsed(data, size, &k);
  for (int kind = MASQ_ICMP_PACKET_TOO_BIG; kind <= MASQ_ICMP_NO_ROUTE; kind++)
    try_kind(data, size, &k, kind);
  return 0;
}
