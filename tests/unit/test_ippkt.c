/* IP packet parsing (RFC 791, RFC 8200 and RFC 9484 §4.8's extension
 * header walk), ICMP error generation (RFC 792, RFC 4443, RFC 1191,
 * RFC 1812) and the Internet checksum (RFC 1071). Packets are built here
 * byte by byte, checksums are checked against an independent reference. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "proto/addr.h"
#include "proto/ippkt.h"

#define TOS 0xb9 /* DSCP 46 (EF), ECN ECT(1): both fields visible */

static masq_ip ip_of(const char *s) {
  masq_ip ip;
  assert_int_equal(masq_ip_parse(s, &ip), 0);
  return ip;
}

static uint16_t rd16(const uint8_t *p) {
  return (uint16_t)(p[0] << 8 | p[1]);
}

static void wr16(uint8_t *p, unsigned v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

/* Reference ones' complement sum, written the slow obvious way so it does
 * not share bugs with masq_csum_partial. */
static uint16_t ref_sum(const uint8_t *p, size_t len, uint32_t start) {
  uint32_t s = start;
  for (size_t i = 0; i < len; i++) {
    s += (i % 2 == 0) ? (uint32_t)p[i] << 8 : p[i];
    s = (s & 0xffff) + (s >> 16);
  }
  return (uint16_t)s;
}

static uint16_t ref_pseudo6(const masq_ip *s, const masq_ip *d, uint8_t nh, uint32_t len) {
  uint8_t ph[40] = {0};
  memcpy(ph, s->a, 16);
  memcpy(ph + 16, d->a, 16);
  ph[32] = (uint8_t)(len >> 24);
  ph[33] = (uint8_t)(len >> 16);
  ph[34] = (uint8_t)(len >> 8);
  ph[35] = (uint8_t)len;
  ph[39] = nh;
  return ref_sum(ph, sizeof(ph), 0);
}

/* ---- packet builders ---- */

/* IPv4 header + options + payload at b; frag is the flags/offset word. */
static size_t v4(uint8_t *b, uint8_t proto, const char *src, const char *dst, const uint8_t *opt,
                 size_t optlen, unsigned frag, const uint8_t *pay, size_t paylen) {
  size_t ihl = 20 + optlen;
  memset(b, 0, ihl);
  b[0] = (uint8_t)(0x40 | ihl / 4);
  b[1] = TOS;
  wr16(b + 2, (unsigned)(ihl + paylen));
  wr16(b + 4, 0x1234);
  wr16(b + 6, frag);
  b[8] = 63;
  b[9] = proto;
  masq_ip s = ip_of(src), d = ip_of(dst);
  memcpy(b + 12, s.a, 4);
  memcpy(b + 16, d.a, 4);
  if (optlen) memcpy(b + 20, opt, optlen);
  wr16(b + 10, (uint16_t)~ref_sum(b, ihl, 0));
  if (paylen) memcpy(b + ihl, pay, paylen);
  return ihl + paylen;
}

/* IPv6 header with first Next Header nh, then rest (extension headers
 * and upper layer) at b. */
static size_t v6(uint8_t *b, uint8_t nh, const char *src, const char *dst, const uint8_t *rest,
                 size_t restlen) {
  memset(b, 0, 40);
  b[0] = 0x60 | TOS >> 4;
  b[1] = (uint8_t)((TOS & 0x0f) << 4 | 0x01); /* and a flow label */
  b[3] = 0x23;
  wr16(b + 4, (unsigned)restlen);
  b[6] = nh;
  b[7] = 63;
  masq_ip s = ip_of(src), d = ip_of(dst);
  memcpy(b + 8, s.a, 16);
  memcpy(b + 24, d.a, 16);
  if (restlen) memcpy(b + 40, rest, restlen);
  return 40 + restlen;
}

/* Options-style extension header (HBH 0, Routing 43, DstOpts 60) of len
 * octets (a multiple of 8), padded with Pad1 options / zeros. */
static size_t ext(uint8_t *d, uint8_t nh, size_t len) {
  memset(d, 0, len);
  d[0] = nh;
  d[1] = (uint8_t)(len / 8 - 1);
  return len;
}

static size_t routing(uint8_t *d, uint8_t nh) {
  ext(d, nh, 24);
  d[2] = 4; /* Segment Routing Header type, RFC 8754 */
  d[3] = 0; /* Segments Left 0: a transit node ignores it */
  return 24;
}

static size_t frag6(uint8_t *d, uint8_t nh, unsigned offset, int m) {
  memset(d, 0, 8);
  d[0] = nh;
  wr16(d + 2, (offset & 0xfff8) | (m ? 1 : 0));
  d[4] = 0xde, d[5] = 0xad, d[6] = 0xbe, d[7] = 0xef;
  return 8;
}

static size_t ah(uint8_t *d, uint8_t nh) {
  memset(d, 0x5a, 24); /* SPI, sequence number, 96-bit ICV */
  d[0] = nh;
  d[1] = 24 / 4 - 2;
  d[2] = d[3] = 0;
  return 24;
}

static size_t udp(uint8_t *d, unsigned sport, unsigned dport, size_t paylen) {
  wr16(d, sport);
  wr16(d + 2, dport);
  wr16(d + 4, (unsigned)(8 + paylen));
  wr16(d + 6, 0);
  for (size_t i = 0; i < paylen; i++) d[8 + i] = (uint8_t)(i * 7);
  return 8 + paylen;
}

static size_t tcp(uint8_t *d, unsigned sport, unsigned dport) {
  memset(d, 0, 20);
  wr16(d, sport);
  wr16(d + 2, dport);
  d[12] = 5 << 4;
  d[13] = 0x02; /* SYN */
  return 20;
}

static size_t icmp(uint8_t *d, uint8_t type, uint8_t code, size_t paylen) {
  memset(d, 0, 8 + paylen);
  d[0] = type;
  d[1] = code;
  return 8 + paylen;
}

static masq_ippkt parse_ok(const uint8_t *b, size_t n) {
  masq_ippkt k;
  const char *err = NULL;
  int rc = masq_ippkt_parse(b, n, &k, &err);
  if (rc != 0) fail_msg("parse failed: %s", err);
  assert_null(err);
  return k;
}

/* Fails, says why, leaves *out alone. */
static void parse_bad(const uint8_t *b, size_t n) {
  masq_ippkt k;
  memset(&k, 0xa5, sizeof(k));
  masq_ippkt before = k;
  const char *err = NULL;
  assert_int_equal(masq_ippkt_parse(b, n, &k, &err), -1);
  assert_non_null(err);
  assert_true(strlen(err) > 0);
  assert_memory_equal(&k, &before, sizeof(k));
}

static void assert_ip(const masq_ip *ip, const char *s) {
  masq_ip want = ip_of(s);
  assert_int_equal(ip->family, want.family);
  assert_memory_equal(ip->a, want.a, 16);
}

/* ---- checksum ---- */

static void test_checksum_vectors(void **state) {
  /* RFC 1071 §3: these eight octets sum to ddf2. */
  const uint8_t v[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  assert_int_equal(masq_csum_partial(v, sizeof(v), 0), 0xddf2);
  assert_int_equal(masq_inet_checksum(v, sizeof(v)), 0x220d);
  /* Odd length: the last octet is the high half of a zero-padded word. */
  assert_int_equal(masq_csum_partial(v, 7, 0), ref_sum(v, 7, 0));
  assert_int_equal(masq_csum_partial(v, 1, 0), 0);
  assert_int_equal(masq_csum_partial((const uint8_t[]){0xab}, 1, 0), 0xab00);
  assert_int_equal(masq_csum_partial(v, 0, 0x1234), 0x1234);
  /* A well-known IPv4 header with checksum b861. */
  uint8_t h[] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  assert_int_equal(masq_csum_partial(h, sizeof(h), 0), 0xffff);
  assert_int_equal(masq_inet_checksum(h, sizeof(h)), 0);
  h[10] = h[11] = 0;
  assert_int_equal(masq_inet_checksum(h, sizeof(h)), 0xb861);
  /* Chaining even pieces equals one pass; big buffers do not overflow. */
  static uint8_t big[70000];
  for (size_t i = 0; i < sizeof(big); i++) big[i] = (uint8_t)(0xff - i % 3);
  uint32_t s = masq_csum_partial(big, 1000, 0);
  s = masq_csum_partial(big + 1000, sizeof(big) - 1000, s);
  assert_int_equal(s, masq_csum_partial(big, sizeof(big), 0));
  assert_int_equal(s, ref_sum(big, sizeof(big), 0));
  assert_int_equal(masq_csum_finish(0x1ffff), 0xfffe); /* folds its input */
}

static void test_l4_checksum(void **state) {
  uint8_t b[256];
  masq_ip s4 = ip_of("192.0.2.1"), d4 = ip_of("198.51.100.7");
  size_t n = udp(b, 5353, 53, 13);
  uint16_t c = masq_l4_checksum(&s4, &d4, MASQ_IPPROTO_UDP, b, n);
  /* RFC 768 pseudo-header: src, dst, 0, 17, UDP length. */
  uint8_t ph[12] = {192, 0, 2, 1, 198, 51, 100, 7, 0, 17, 0, (uint8_t)n};
  assert_int_equal(c, (uint16_t)~ref_sum(b, n, ref_sum(ph, 12, 0)));
  wr16(b + 6, c);
  assert_int_equal(masq_csum_partial(b, n, masq_pseudo_header_sum(&s4, &d4, 17, (uint32_t)n)),
                   0xffff);

  masq_ip s6 = ip_of("2001:db8::1"), d6 = ip_of("2001:db8:ffff::2");
  n = udp(b, 1, 2, 100);
  c = masq_l4_checksum(&s6, &d6, MASQ_IPPROTO_UDP, b, n);
  assert_int_equal(c, (uint16_t)~ref_sum(b, n, ref_pseudo6(&s6, &d6, 17, (uint32_t)n)));
  /* The IPv6 32-bit length carries its upper half into the sum. */
  assert_int_equal(masq_pseudo_header_sum(&s6, &d6, 58, 0x10000),
                   ref_pseudo6(&s6, &d6, 58, 0x10000));

  /* Make the UDP sum come out as 0: sent as 0xffff (RFC 768). */
  n = udp(b, 7, 9, 2);
  b[8] = b[9] = 0;
  uint16_t sum = ref_sum(b, n, ref_pseudo6(&s6, &d6, 17, (uint32_t)n));
  wr16(b + 8, (uint16_t)~sum);
  assert_int_equal(masq_l4_checksum(&s6, &d6, MASQ_IPPROTO_UDP, b, n), 0xffff);
  /* The pseudo-header's protocol counts: TCP's 6 instead of 17 leaves
   * 17 - 6 uncancelled. No 0xffff rewrite outside UDP either. */
  assert_int_equal(masq_l4_checksum(&s6, &d6, MASQ_IPPROTO_TCP, b, n), 11);
  assert_int_equal(masq_l4_checksum(&s6, &d6, MASQ_IPPROTO_UDP, b, n), 0xffff);
  b[8] = b[9] = 0; /* the same trick for TCP: 0 stays 0 */
  wr16(b + 8, (uint16_t)~ref_sum(b, n, ref_pseudo6(&s6, &d6, 6, (uint32_t)n)));
  assert_int_equal(masq_l4_checksum(&s6, &d6, MASQ_IPPROTO_TCP, b, n), 0);
  masq_ip bad = {5, {0}};
  assert_int_equal(masq_pseudo_header_sum(&bad, &d6, 17, 8), 0);
}

/* ---- IPv4 parsing ---- */

static void test_v4_udp(void **state) {
  uint8_t b[256], l4[64];
  size_t n = v4(b, MASQ_IPPROTO_UDP, "192.0.2.11", "203.0.113.5", NULL, 0, 0x4000, l4,
                udp(l4, 40000, 443, 12));
  masq_ippkt k = parse_ok(b, n);
  assert_int_equal(k.version, 4);
  assert_ip(&k.src, "192.0.2.11");
  assert_ip(&k.dst, "203.0.113.5");
  assert_int_equal(k.ttl, 63);
  assert_int_equal(k.dscp, 46);
  assert_int_equal(k.ecn, 1);
  assert_int_equal(k.proto, MASQ_IPPROTO_UDP);
  assert_int_equal(k.df, 1);
  assert_int_equal(k.fragment, 0);
  assert_int_equal(k.nonfirst, 0);
  assert_int_equal(k.has_ports, 1);
  assert_int_equal(k.sport, 40000);
  assert_int_equal(k.dport, 443);
  assert_int_equal(k.has_icmp, 0);
  assert_int_equal(k.l4_off, 20);
  assert_int_equal(k.len, n);
  /* err may be NULL. */
  assert_int_equal(masq_ippkt_parse(b, n, &k, NULL), 0);
  assert_int_equal(masq_ippkt_parse(b, 3, &k, NULL), -1);
}

static void test_v4_tcp_options(void **state) {
  uint8_t b[256], l4[64];
  /* Record Route-like 12 octets of options: IHL 8. */
  const uint8_t opt[12] = {7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  size_t n = v4(b, MASQ_IPPROTO_TCP, "10.1.2.3", "10.9.8.7", opt, sizeof(opt), 0, l4,
                tcp(l4, 12345, 22));
  masq_ippkt k = parse_ok(b, n);
  assert_int_equal(k.l4_off, 32);
  assert_int_equal(k.proto, MASQ_IPPROTO_TCP);
  assert_int_equal(k.df, 0);
  assert_int_equal(k.has_ports, 1);
  assert_int_equal(k.sport, 12345);
  assert_int_equal(k.dport, 22);
  /* Largest IHL (15 → 60 octets). */
  uint8_t opt40[40] = {0};
  n = v4(b, MASQ_IPPROTO_TCP, "10.1.2.3", "10.9.8.7", opt40, 40, 0, l4, tcp(l4, 1, 2));
  k = parse_ok(b, n);
  assert_int_equal(k.l4_off, 60);
  assert_int_equal(k.dport, 2);
}

static void test_v4_icmp(void **state) {
  uint8_t b[256], l4[64];
  size_t n = v4(b, MASQ_IPPROTO_ICMP, "192.0.2.11", "8.8.8.8", NULL, 0, 0, l4,
                icmp(l4, 8, 0, 16));
  masq_ippkt k = parse_ok(b, n);
  assert_int_equal(k.proto, MASQ_IPPROTO_ICMP);
  assert_int_equal(k.has_icmp, 1);
  assert_int_equal(k.icmp_type, 8);
  assert_int_equal(k.icmp_code, 0);
  assert_int_equal(k.has_ports, 0);
  /* ICMPv6's number inside IPv4 is just another protocol. */
  n = v4(b, MASQ_IPPROTO_ICMPV6, "192.0.2.11", "8.8.8.8", NULL, 0, 0, l4, icmp(l4, 8, 0, 0));
  k = parse_ok(b, n);
  assert_int_equal(k.has_icmp, 0);
}

static void test_v4_fragments(void **state) {
  uint8_t b[256], l4[128];
  /* First fragment: MF, offset 0, 24 octets of data, ports visible. */
  size_t n = v4(b, MASQ_IPPROTO_UDP, "192.0.2.1", "192.0.2.2", NULL, 0, 0x2000, l4,
                udp(l4, 53, 5353, 16));
  masq_ippkt k = parse_ok(b, n);
  assert_int_equal(k.fragment, 1);
  assert_int_equal(k.nonfirst, 0);
  assert_int_equal(k.has_ports, 1);
  assert_int_equal(k.sport, 53);
  /* Non-first (offset 185*8 = 1480), no ports even though bytes exist. */
  n = v4(b, MASQ_IPPROTO_UDP, "192.0.2.1", "192.0.2.2", NULL, 0, 185, l4, udp(l4, 1, 2, 8));
  k = parse_ok(b, n);
  assert_int_equal(k.fragment, 1);
  assert_int_equal(k.nonfirst, 1);
  assert_int_equal(k.has_ports, 0);
  assert_int_equal(k.proto, MASQ_IPPROTO_UDP);
  assert_int_equal(k.l4_off, 20);
  /* Middle fragment (MF and offset). */
  n = v4(b, MASQ_IPPROTO_TCP, "192.0.2.1", "192.0.2.2", NULL, 0, 0x2000 | 3, l4, 16);
  k = parse_ok(b, n);
  assert_int_equal(k.nonfirst, 1);
  /* MF with 12 octets of data: not 8-octet blocks (RFC 791 §3.2). */
  n = v4(b, MASQ_IPPROTO_UDP, "192.0.2.1", "192.0.2.2", NULL, 0, 0x2000, l4, udp(l4, 1, 2, 4));
  parse_bad(b, n);
  /* The last fragment may be any length. */
  n = v4(b, MASQ_IPPROTO_UDP, "192.0.2.1", "192.0.2.2", NULL, 0, 10, l4, 13);
  parse_ok(b, n);
  /* Reaching past 65535 once reassembled. */
  n = v4(b, MASQ_IPPROTO_UDP, "192.0.2.1", "192.0.2.2", NULL, 0, 0x1fff, l4, 8);
  parse_bad(b, n);
  n = v4(b, MASQ_IPPROTO_UDP, "192.0.2.1", "192.0.2.2", NULL, 0, 8186, l4, 27);
  parse_ok(b, n); /* 20 + 65488 + 27 = 65535 exactly */
  n = v4(b, MASQ_IPPROTO_UDP, "192.0.2.1", "192.0.2.2", NULL, 0, 8186, l4, 28);
  parse_bad(b, n);
  /* RFC 1858 §3.2: TCP at fragment offset 1 (8 octets). */
  n = v4(b, MASQ_IPPROTO_TCP, "192.0.2.1", "192.0.2.2", NULL, 0, 1, l4, 16);
  parse_bad(b, n);
  n = v4(b, MASQ_IPPROTO_UDP, "192.0.2.1", "192.0.2.2", NULL, 0, 1, l4, 16);
  parse_ok(b, n);
  /* First fragment too short for the TCP header (RFC 1858 §3.1). */
  tcp(l4, 1, 2);
  n = v4(b, MASQ_IPPROTO_TCP, "192.0.2.1", "192.0.2.2", NULL, 0, 0x2000, l4, 16);
  parse_bad(b, n);
  /* ...but an unfragmented short header is the receiver's problem. */
  n = v4(b, MASQ_IPPROTO_TCP, "192.0.2.1", "192.0.2.2", NULL, 0, 0x4000, l4, 16);
  k = parse_ok(b, n);
  assert_int_equal(k.has_ports, 0);
  icmp(l4, 8, 0, 0);
  n = v4(b, MASQ_IPPROTO_ICMP, "192.0.2.1", "192.0.2.2", NULL, 0, 0, l4, 3);
  k = parse_ok(b, n);
  assert_int_equal(k.has_icmp, 0);
}

static void test_v4_malformed(void **state) {
  uint8_t b[256], l4[64];
  size_t n = v4(b, MASQ_IPPROTO_UDP, "192.0.2.1", "192.0.2.2", NULL, 0, 0, l4, udp(l4, 1, 2, 4));
  uint8_t c[256];
  parse_bad(b, 0);
  memcpy(c, b, n);
  c[0] = 0x55; /* version 5 */
  parse_bad(c, n);
  memcpy(c, b, n);
  c[0] = 0x44; /* IHL 4 */
  parse_bad(c, n);
  memcpy(c, b, n);
  c[0] = 0x4f; /* IHL 15 = 60 > 32-octet packet */
  parse_bad(c, n);
  memcpy(c, b, n);
  wr16(c + 2, 19); /* total < header */
  parse_bad(c, n);
  memcpy(c, b, n);
  wr16(c + 2, (unsigned)n + 1); /* total > input */
  parse_bad(c, n);
  /* Trailing octets beyond Total Length are not part of the packet. */
  memcpy(c, b, n);
  memset(c + n, 0xee, 10);
  masq_ippkt k = parse_ok(c, n + 10);
  assert_int_equal(k.len, n);
  /* Total Length = header only: a valid empty datagram. */
  wr16(c + 2, 20);
  k = parse_ok(c, n);
  assert_int_equal(k.len, 20);
  assert_int_equal(k.has_ports, 0);
}

/* ---- IPv6 parsing ---- */

static void test_v6_udp(void **state) {
  uint8_t b[256], r[128];
  size_t n = v6(b, MASQ_IPPROTO_UDP, "2001:db8::11", "2001:db8:1::5", r, udp(r, 4433, 443, 20));
  masq_ippkt k = parse_ok(b, n);
  assert_int_equal(k.version, 6);
  assert_ip(&k.src, "2001:db8::11");
  assert_ip(&k.dst, "2001:db8:1::5");
  assert_int_equal(k.ttl, 63);
  assert_int_equal(k.dscp, 46);
  assert_int_equal(k.ecn, 1);
  assert_int_equal(k.proto, MASQ_IPPROTO_UDP);
  assert_int_equal(k.df, 0);
  assert_int_equal(k.l4_off, 40);
  assert_int_equal(k.has_ports, 1);
  assert_int_equal(k.sport, 4433);
  assert_int_equal(k.dport, 443);
  assert_int_equal(k.len, n);
  /* ICMPv6 echo. */
  n = v6(b, MASQ_IPPROTO_ICMPV6, "2001:db8::11", "2001:db8:1::5", r, icmp(r, 128, 0, 4));
  k = parse_ok(b, n);
  assert_int_equal(k.has_icmp, 1);
  assert_int_equal(k.icmp_type, 128);
  /* ICMP (1) inside IPv6 is not ICMPv6. */
  n = v6(b, MASQ_IPPROTO_ICMP, "2001:db8::11", "2001:db8:1::5", r, icmp(r, 8, 0, 4));
  k = parse_ok(b, n);
  assert_int_equal(k.has_icmp, 0);
}

/* One extension header of each kind in front of UDP: the reported
 * protocol is the upper layer, RFC 9484 §4.8. */
static void test_v6_each_extension(void **state) {
  uint8_t b[512], r[256];
  struct {
    uint8_t type;
    size_t len;
  } cases[] = {{MASQ_IPPROTO_HOPOPTS, 8},  {MASQ_IPPROTO_HOPOPTS, 16}, {MASQ_IPPROTO_ROUTING, 24},
               {MASQ_IPPROTO_FRAGMENT, 8}, {MASQ_IPPROTO_DSTOPTS, 8},  {MASQ_IPPROTO_AH, 24}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    size_t h;
    switch (cases[i].type) {
      case MASQ_IPPROTO_ROUTING: h = routing(r, MASQ_IPPROTO_UDP); break;
      case MASQ_IPPROTO_FRAGMENT: h = frag6(r, MASQ_IPPROTO_UDP, 0, 0); break; /* atomic */
      case MASQ_IPPROTO_AH: h = ah(r, MASQ_IPPROTO_UDP); break;
      default: h = ext(r, MASQ_IPPROTO_UDP, cases[i].len); break;
    }
    assert_int_equal(h, cases[i].len);
    size_t m = h + udp(r + h, 1000 + i, 2000, 5);
    size_t n = v6(b, cases[i].type, "2001:db8::1", "2001:db8::2", r, m);
    masq_ippkt k = parse_ok(b, n);
    assert_int_equal(k.proto, MASQ_IPPROTO_UDP);
    assert_int_equal(k.l4_off, 40 + h);
    assert_int_equal(k.has_ports, 1);
    assert_int_equal(k.sport, 1000 + i);
    assert_int_equal(k.fragment, 0); /* RFC 6946: atomic is not a fragment */
    /* Cutting the payload inside the header is refused. */
    for (size_t cut = 0; cut < h; cut++) {
      wr16(b + 4, (unsigned)cut);
      parse_bad(b, n);
    }
  }
}

/* Hop-by-Hop, Routing, Fragment (first), Destination Options, TCP. */
static size_t chain(uint8_t *b) {
  uint8_t r[256];
  size_t m = ext(r, MASQ_IPPROTO_ROUTING, 8);
  m += routing(r + m, MASQ_IPPROTO_FRAGMENT);
  m += frag6(r + m, MASQ_IPPROTO_DSTOPTS, 0, 1);
  m += ext(r + m, MASQ_IPPROTO_TCP, 16);
  m += tcp(r + m, 50000, 80);
  memset(r + m, 0x42, 12); /* data: fragment data must be 8-octet blocks */
  m += 12;
  return v6(b, MASQ_IPPROTO_HOPOPTS, "2001:db8::a", "2001:db8::b", r, m);
}

static void test_v6_chain(void **state) {
  uint8_t b[512];
  size_t n = chain(b);
  masq_ippkt k = parse_ok(b, n);
  assert_int_equal(k.proto, MASQ_IPPROTO_TCP);
  assert_int_equal(k.l4_off, 40 + 8 + 24 + 8 + 16);
  assert_int_equal(k.fragment, 1);
  assert_int_equal(k.nonfirst, 0);
  assert_int_equal(k.has_ports, 1);
  assert_int_equal(k.sport, 50000);
  assert_int_equal(k.dport, 80);
  /* Each truncation of the buffer is refused (the Payload Length says
   * more is coming). */
  for (size_t cut = 0; cut < n; cut++) parse_bad(b, cut);
  /* Each truncation of the Payload Length inside the chain or the TCP
   * header is refused too: a first fragment must hold them all. */
  for (size_t plen = 0; plen < 8 + 24 + 8 + 16 + 20; plen++) {
    wr16(b + 4, (unsigned)plen);
    parse_bad(b, n);
  }
  /* Destination Options may appear twice (RFC 8200 §4.1). */
  uint8_t r[128];
  size_t m = ext(r, MASQ_IPPROTO_DSTOPTS, 8);
  m += ext(r + m, MASQ_IPPROTO_NONE, 8);
  n = v6(b, MASQ_IPPROTO_DSTOPTS, "2001:db8::a", "2001:db8::b", r, m);
  k = parse_ok(b, n);
  assert_int_equal(k.proto, MASQ_IPPROTO_NONE);
  assert_int_equal(k.l4_off, 56);
}

static void test_v6_hbh_not_first(void **state) {
  uint8_t b[256], r[128];
  size_t m = ext(r, MASQ_IPPROTO_HOPOPTS, 8);
  m += ext(r + m, MASQ_IPPROTO_UDP, 8);
  m += udp(r + m, 1, 2, 0);
  size_t n = v6(b, MASQ_IPPROTO_DSTOPTS, "2001:db8::1", "2001:db8::2", r, m);
  parse_bad(b, n);
  /* And a second Hop-by-Hop after the first. */
  n = v6(b, MASQ_IPPROTO_HOPOPTS, "2001:db8::1", "2001:db8::2", r, m);
  parse_bad(b, n);
}

static void test_v6_truncated_chain(void **state) {
  uint8_t b[256], r[128];
  /* Hdr Ext Len claims 16 octets, only 8 + UDP's 8 remain... */
  size_t m = ext(r, MASQ_IPPROTO_UDP, 8);
  r[1] = 2; /* 24 octets */
  m += udp(r + m, 1, 2, 0);
  size_t n = v6(b, MASQ_IPPROTO_DSTOPTS, "2001:db8::1", "2001:db8::2", r, m);
  parse_bad(b, n);
  /* AH whose length runs past the end. */
  m = ah(r, MASQ_IPPROTO_UDP);
  r[1] = 20;
  n = v6(b, MASQ_IPPROTO_AH, "2001:db8::1", "2001:db8::2", r, m);
  parse_bad(b, n);
  /* Fragment header cut short. */
  m = frag6(r, MASQ_IPPROTO_UDP, 0, 0);
  n = v6(b, MASQ_IPPROTO_FRAGMENT, "2001:db8::1", "2001:db8::2", r, 7);
  parse_bad(b, n);
  /* Jumbogram marker: Payload Length 0 with a Hop-by-Hop header. */
  m = ext(r, MASQ_IPPROTO_UDP, 8);
  n = v6(b, MASQ_IPPROTO_HOPOPTS, "2001:db8::1", "2001:db8::2", r, m);
  wr16(b + 4, 0);
  parse_bad(b, n);
  /* 40 + Payload Length beyond the input; and a short header. */
  n = v6(b, MASQ_IPPROTO_NONE, "2001:db8::1", "2001:db8::2", r, 0);
  parse_ok(b, n);
  wr16(b + 4, 1);
  parse_bad(b, n);
  parse_bad(b, 39);
}

static void test_v6_fragments(void **state) {
  uint8_t b[256], r[128];
  /* Non-first: offset 1448, data is the middle of a UDP datagram. */
  size_t m = frag6(r, MASQ_IPPROTO_UDP, 1448, 1);
  memset(r + m, 0x11, 16);
  m += 16;
  size_t n = v6(b, MASQ_IPPROTO_FRAGMENT, "2001:db8::1", "2001:db8::2", r, m);
  masq_ippkt k = parse_ok(b, n);
  assert_int_equal(k.fragment, 1);
  assert_int_equal(k.nonfirst, 1);
  assert_int_equal(k.proto, MASQ_IPPROTO_UDP);
  assert_int_equal(k.has_ports, 0);
  assert_int_equal(k.l4_off, 48);
  /* After Hop-by-Hop, the Fragment header's Next Header is reported. */
  m = ext(r, MASQ_IPPROTO_FRAGMENT, 8);
  m += frag6(r + m, MASQ_IPPROTO_DSTOPTS, 8, 0);
  memset(r + m, 0x22, 5);
  m += 5;
  n = v6(b, MASQ_IPPROTO_HOPOPTS, "2001:db8::1", "2001:db8::2", r, m);
  k = parse_ok(b, n);
  assert_int_equal(k.nonfirst, 1);
  assert_int_equal(k.proto, MASQ_IPPROTO_DSTOPTS);
  assert_int_equal(k.l4_off, 56);
  /* M set with 12 octets of data. */
  m = frag6(r, MASQ_IPPROTO_UDP, 8, 1);
  m += 12;
  n = v6(b, MASQ_IPPROTO_FRAGMENT, "2001:db8::1", "2001:db8::2", r, m);
  parse_bad(b, n);
  /* Past 65535 once reassembled. */
  m = frag6(r, MASQ_IPPROTO_UDP, 65528, 0);
  m += 7;
  n = v6(b, MASQ_IPPROTO_FRAGMENT, "2001:db8::1", "2001:db8::2", r, m);
  parse_ok(b, n); /* 65528 + 7 = 65535 exactly */
  m += 1;
  n = v6(b, MASQ_IPPROTO_FRAGMENT, "2001:db8::1", "2001:db8::2", r, m);
  parse_bad(b, n);
  /* First fragment whose data ends before the UDP header (RFC 8200 §4.5). */
  m = frag6(r, MASQ_IPPROTO_DSTOPTS, 0, 1);
  m += ext(r + m, MASQ_IPPROTO_UDP, 8);
  n = v6(b, MASQ_IPPROTO_FRAGMENT, "2001:db8::1", "2001:db8::2", r, m);
  parse_bad(b, n);
  /* Non-UDP/TCP/ICMPv6 first fragments need no particular header. */
  m = frag6(r, 132 /* SCTP */, 0, 1);
  m += 8;
  n = v6(b, MASQ_IPPROTO_FRAGMENT, "2001:db8::1", "2001:db8::2", r, m);
  k = parse_ok(b, n);
  assert_int_equal(k.proto, 132);
  assert_int_equal(k.has_ports, 0);
}

static void test_v6_terminal_headers(void **state) {
  uint8_t b[256], r[128];
  /* ESP: encrypted, the walk stops and reports 50. */
  memset(r, 0x77, 32);
  size_t n = v6(b, MASQ_IPPROTO_ESP, "2001:db8::1", "2001:db8::2", r, 32);
  masq_ippkt k = parse_ok(b, n);
  assert_int_equal(k.proto, MASQ_IPPROTO_ESP);
  assert_int_equal(k.l4_off, 40);
  /* No Next Header: what follows is ignored (RFC 8200 §4.7). */
  size_t m = ext(r, MASQ_IPPROTO_NONE, 8);
  memset(r + m, 0x99, 3);
  n = v6(b, MASQ_IPPROTO_HOPOPTS, "2001:db8::1", "2001:db8::2", r, m + 3);
  k = parse_ok(b, n);
  assert_int_equal(k.proto, MASQ_IPPROTO_NONE);
  assert_int_equal(k.l4_off, 48);
  /* Mobility (135) is reported, not walked. */
  n = v6(b, 135, "2001:db8::1", "2001:db8::2", r, 8);
  k = parse_ok(b, n);
  assert_int_equal(k.proto, 135);
}

/* Every truncation of a set of valid packets is refused (the lengths in
 * the headers no longer fit), and extra octets change nothing. */
static void test_every_truncation(void **state) {
  uint8_t pk[6][512], l4[128];
  size_t len[6];
  len[0] = v4(pk[0], MASQ_IPPROTO_UDP, "192.0.2.1", "192.0.2.2", NULL, 0, 0, l4,
              udp(l4, 1, 2, 30));
  const uint8_t opt[4] = {1, 1, 1, 0};
  len[1] = v4(pk[1], MASQ_IPPROTO_TCP, "192.0.2.1", "192.0.2.2", opt, 4, 0x2000, l4,
              tcp(l4, 3, 4) + 4);
  len[2] = v4(pk[2], MASQ_IPPROTO_ICMP, "192.0.2.1", "192.0.2.2", NULL, 0, 0, l4,
              icmp(l4, 0, 0, 56));
  len[3] = chain(pk[3]);
  len[4] = v6(pk[4], MASQ_IPPROTO_UDP, "2001:db8::1", "2001:db8::2", l4, udp(l4, 5, 6, 64));
  size_t m = frag6(l4, MASQ_IPPROTO_TCP, 64, 0);
  len[5] = v6(pk[5], MASQ_IPPROTO_FRAGMENT, "2001:db8::1", "2001:db8::2", l4, m + 3);
  for (size_t i = 0; i < 6; i++) {
    masq_ippkt full = parse_ok(pk[i], len[i]);
    assert_int_equal(full.len, len[i]);
    for (size_t cut = 0; cut < len[i]; cut++) parse_bad(pk[i], cut);
    memset(pk[i] + len[i], 0xcc, 40);
    masq_ippkt more = parse_ok(pk[i], len[i] + 40);
    assert_memory_equal(&full, &more, sizeof(full));
  }
}

/* ---- ICMP errors ---- */

/* Checks an error field by field against the packet it answers. */
static void check_error(const uint8_t *e, size_t n, const uint8_t *orig, size_t origlen,
                        const masq_ip *from, uint8_t type, uint8_t code, uint32_t rest) {
  masq_ippkt o = parse_ok(orig, origlen);
  masq_ippkt k = parse_ok(e, n);
  int is4 = o.version == 4;
  size_t hl = is4 ? 20 : 40, max = is4 ? 576 : 1280;
  size_t quote = o.len < max - hl - 8 ? o.len : max - hl - 8;
  assert_int_equal(n, hl + 8 + quote);
  assert_true(n <= max);
  assert_int_equal(k.len, n);
  assert_int_equal(k.version, o.version);
  assert_memory_equal(&k.src, from, sizeof(*from));
  assert_memory_equal(&k.dst, &o.src, sizeof(o.src));
  assert_int_equal(k.ttl, 64);
  assert_int_equal(k.fragment, 0);
  assert_int_equal(k.l4_off, hl);
  assert_int_equal(k.has_icmp, 1);
  assert_int_equal(k.icmp_type, type);
  assert_int_equal(k.icmp_code, code);
  const uint8_t *m = e + hl;
  assert_int_equal(rd16(m + 4), rest >> 16);
  assert_int_equal(rd16(m + 6), rest & 0xffff);
  assert_memory_equal(m + 8, orig, quote);
  if (is4) {
    assert_int_equal(k.proto, MASQ_IPPROTO_ICMP);
    assert_int_equal(e[0], 0x45);
    assert_int_equal(e[1], 0xc0);
    assert_int_equal(rd16(e + 2), n);
    assert_int_equal(rd16(e + 4), 0);
    assert_int_equal(rd16(e + 6), 0x4000);
    assert_int_equal(ref_sum(e, 20, 0), 0xffff);
    assert_int_equal(ref_sum(m, n - 20, 0), 0xffff);
    /* RFC 792: at least the header and 64 bits of data are quoted. */
    assert_true(quote >= o.l4_off + 8 || quote == o.len);
  } else {
    assert_int_equal(k.proto, MASQ_IPPROTO_ICMPV6);
    assert_int_equal(e[0], 0x60);
    assert_int_equal(e[1] | e[2] | e[3], 0);
    assert_int_equal(rd16(e + 4), n - 40);
    assert_int_equal(e[6], 58);
    assert_int_equal(ref_sum(m, n - 40, ref_pseudo6(from, &o.src, 58, (uint32_t)(n - 40))),
                     0xffff);
  }
  /* Never an error about an error (RFC 4443 §2.4(e.1), RFC 1812). */
  uint8_t again[MASQ_ICMP_ERROR_MAX];
  for (int kind = 1; kind <= 4; kind++)
    assert_int_equal(masq_icmp_error_build(again, sizeof(again), e, n, from, kind, 1280), 0);
}

static void test_icmp6_errors(void **state) {
  static uint8_t b[2048], e[MASQ_ICMP_ERROR_MAX];
  uint8_t r[128];
  masq_ip from = ip_of("2001:db8:ffff::1");
  size_t n = v6(b, MASQ_IPPROTO_UDP, "2001:db8::11", "2001:db8:1::5", r, udp(r, 1, 2, 30));
  size_t en = masq_icmp_error_build(e, sizeof(e), b, n, &from, MASQ_ICMP_PACKET_TOO_BIG, 1280);
  check_error(e, en, b, n, &from, 2, 0, 1280);
  assert_int_equal(en, 40 + 8 + n);
  en = masq_icmp_error_build(e, sizeof(e), b, n, &from, MASQ_ICMP_PACKET_TOO_BIG, 70000);
  check_error(e, en, b, n, &from, 2, 0, 70000);
  en = masq_icmp_error_build(e, sizeof(e), b, n, &from, MASQ_ICMP_DEST_UNREACH_ADMIN, 0);
  check_error(e, en, b, n, &from, 1, 1, 0);
  en = masq_icmp_error_build(e, sizeof(e), b, n, &from, MASQ_ICMP_SOURCE_ADDR_FAILED, 0);
  check_error(e, en, b, n, &from, 1, 5, 0);
  en = masq_icmp_error_build(e, sizeof(e), b, n, &from, MASQ_ICMP_NO_ROUTE, 0);
  check_error(e, en, b, n, &from, 1, 0, 0);
  /* A 1500-octet packet: the error is exactly 1280 (RFC 4443 §2.4(c)). */
  static uint8_t big[2048];
  size_t nb = v6(big, MASQ_IPPROTO_NONE, "2001:db8::11", "2001:db8:1::5", b + 100, 1460);
  en = masq_icmp_error_build(e, sizeof(e), big, nb, &from, MASQ_ICMP_PACKET_TOO_BIG, 1400);
  assert_int_equal(en, 1280);
  check_error(e, en, big, nb, &from, 2, 0, 1400);
  /* Quoting stops at the IP-declared end, not at the buffer's. */
  n = v6(b, MASQ_IPPROTO_UDP, "2001:db8::11", "2001:db8:1::5", r, udp(r, 1, 2, 0));
  memset(b + n, 0xee, 100);
  en = masq_icmp_error_build(e, sizeof(e), b, n + 100, &from, MASQ_ICMP_NO_ROUTE, 0);
  assert_int_equal(en, 48 + n);
}

static void test_icmp4_errors(void **state) {
  static uint8_t b[2048], e[MASQ_ICMP_ERROR_MAX];
  uint8_t l4[64];
  const uint8_t opt[8] = {1, 1, 1, 1, 1, 1, 1, 0};
  masq_ip from = ip_of("198.51.100.1");
  size_t n = v4(b, MASQ_IPPROTO_TCP, "192.0.2.11", "203.0.113.5", opt, 8, 0x4000, l4,
                tcp(l4, 40000, 443));
  size_t en = masq_icmp_error_build(e, sizeof(e), b, n, &from, MASQ_ICMP_PACKET_TOO_BIG, 1400);
  /* RFC 1191 §4: unused 16 bits, then the next-hop MTU. */
  check_error(e, en, b, n, &from, 3, 4, 1400);
  assert_int_equal(en, 28 + n);
  en = masq_icmp_error_build(e, sizeof(e), b, n, &from, MASQ_ICMP_DEST_UNREACH_ADMIN, 0);
  check_error(e, en, b, n, &from, 3, 13, 0);
  en = masq_icmp_error_build(e, sizeof(e), b, n, &from, MASQ_ICMP_SOURCE_ADDR_FAILED, 0);
  check_error(e, en, b, n, &from, 3, 13, 0);
  en = masq_icmp_error_build(e, sizeof(e), b, n, &from, MASQ_ICMP_NO_ROUTE, 0);
  check_error(e, en, b, n, &from, 3, 0, 0);
  /* A 1500-octet datagram: the error stops at 576 (RFC 1812 §4.3.2.3). */
  static uint8_t big[2048], pay[1480];
  size_t nb = v4(big, MASQ_IPPROTO_UDP, "192.0.2.11", "203.0.113.5", NULL, 0, 0x4000, pay,
                 udp(pay, 9, 9, 1472));
  en = masq_icmp_error_build(e, sizeof(e), big, nb, &from, MASQ_ICMP_PACKET_TOO_BIG, 1280);
  assert_int_equal(en, 576);
  check_error(e, en, big, nb, &from, 3, 4, 1280);
  /* MTU bounds: 68..65535. */
  assert_int_equal(masq_icmp_error_build(e, sizeof(e), b, n, &from, MASQ_ICMP_PACKET_TOO_BIG, 67),
                   0);
  assert_int_equal(
      masq_icmp_error_build(e, sizeof(e), b, n, &from, MASQ_ICMP_PACKET_TOO_BIG, 65536), 0);
  en = masq_icmp_error_build(e, sizeof(e), b, n, &from, MASQ_ICMP_PACKET_TOO_BIG, 68);
  check_error(e, en, b, n, &from, 3, 4, 68);
}

static void test_icmp_build_in_place(void **state) {
  static uint8_t b[2048], copy[2048], e[MASQ_ICMP_ERROR_MAX];
  uint8_t r[128];
  masq_ip from = ip_of("2001:db8:ffff::1");
  size_t n = v6(b, MASQ_IPPROTO_UDP, "2001:db8::11", "2001:db8:1::5", r, udp(r, 1, 2, 30));
  memcpy(copy, b, n);
  size_t en = masq_icmp_error_build(e, sizeof(e), b, n, &from, MASQ_ICMP_NO_ROUTE, 0);
  size_t in = masq_icmp_error_build(b, sizeof(b), b, n, &from, MASQ_ICMP_NO_ROUTE, 0);
  assert_int_equal(in, en);
  assert_memory_equal(b, e, en);
  check_error(b, in, copy, n, &from, 1, 0, 0);
}

static size_t build(uint8_t *e, const uint8_t *b, size_t n, const char *from, int kind) {
  masq_ip f = ip_of(from);
  return masq_icmp_error_build(e, MASQ_ICMP_ERROR_MAX, b, n, &f, kind, 1280);
}

/* Agreement of build and allowed for one packet and every kind. */
static void expect_allowed(const uint8_t *b, size_t n, const char *from, const int want[4]) {
  uint8_t e[MASQ_ICMP_ERROR_MAX];
  masq_ippkt k = parse_ok(b, n);
  for (int kind = 1; kind <= 4; kind++) {
    assert_int_equal(masq_icmp_error_allowed(&k, kind), want[kind - 1]);
    assert_int_equal(build(e, b, n, from, kind) > 0, want[kind - 1]);
  }
}

static void test_icmp_never_reply(void **state) {
  uint8_t b[256], l4[64];
  const int none[4] = {0, 0, 0, 0}, all[4] = {1, 1, 1, 1}, ptb_only[4] = {1, 0, 0, 0};
  const char *f4 = "198.51.100.1", *f6 = "2001:db8::ff";
  /* ICMPv4 errors: Destination Unreachable, Source Quench, Redirect,
   * Time Exceeded, Parameter Problem, and an unknown type. */
  const uint8_t err4[] = {3, 4, 5, 11, 12, 99, 255};
  for (size_t i = 0; i < sizeof(err4); i++) {
    size_t n = v4(b, MASQ_IPPROTO_ICMP, "192.0.2.1", "192.0.2.2", NULL, 0, 0, l4,
                  icmp(l4, err4[i], 0, 8));
    expect_allowed(b, n, f4, none);
  }
  const uint8_t query4[] = {0, 8, 13, 14, 17, 18, 42, 43};
  for (size_t i = 0; i < sizeof(query4); i++) {
    size_t n = v4(b, MASQ_IPPROTO_ICMP, "192.0.2.1", "192.0.2.2", NULL, 0, 0, l4,
                  icmp(l4, query4[i], 0, 8));
    expect_allowed(b, n, f4, all);
  }
  /* ICMP without a readable type: silent. */
  size_t n = v4(b, MASQ_IPPROTO_ICMP, "192.0.2.1", "192.0.2.2", NULL, 0, 0, l4, 2);
  expect_allowed(b, n, f4, none);
  /* ICMPv6 errors (< 128) and Redirect; echo request / reply are fine. */
  const uint8_t err6[] = {1, 2, 3, 4, 100, 127, 137};
  for (size_t i = 0; i < sizeof(err6); i++) {
    n = v6(b, MASQ_IPPROTO_ICMPV6, "2001:db8::1", "2001:db8::2", l4, icmp(l4, err6[i], 0, 4));
    expect_allowed(b, n, f6, none);
  }
  const uint8_t info6[] = {128, 129, 135, 136};
  for (size_t i = 0; i < sizeof(info6); i++) {
    n = v6(b, MASQ_IPPROTO_ICMPV6, "2001:db8::1", "2001:db8::2", l4, icmp(l4, info6[i], 0, 4));
    expect_allowed(b, n, f6, all);
  }
  /* Multicast / broadcast destinations. */
  const char *mc4[] = {"224.0.0.1", "239.255.255.250", "255.255.255.255"};
  for (size_t i = 0; i < 3; i++) {
    n = v4(b, MASQ_IPPROTO_UDP, "192.0.2.1", mc4[i], NULL, 0, 0, l4, udp(l4, 1, 2, 0));
    expect_allowed(b, n, f4, none);
  }
  n = v4(b, MASQ_IPPROTO_UDP, "192.0.2.1", "240.0.0.1", NULL, 0, 0, l4, udp(l4, 1, 2, 0));
  expect_allowed(b, n, f4, all);
  /* IPv6 multicast: only Packet Too Big (RFC 4443 §2.4(e.3)). */
  n = v6(b, MASQ_IPPROTO_UDP, "2001:db8::1", "ff02::1", l4, udp(l4, 1, 2, 0));
  expect_allowed(b, n, f6, ptb_only);
  /* Non-first fragments, both families. */
  n = v4(b, MASQ_IPPROTO_UDP, "192.0.2.1", "192.0.2.2", NULL, 0, 0x2000 | 100, l4, 16);
  expect_allowed(b, n, f4, none);
  size_t m = frag6(l4, MASQ_IPPROTO_UDP, 800, 0);
  n = v6(b, MASQ_IPPROTO_FRAGMENT, "2001:db8::1", "2001:db8::2", l4, m + 4);
  expect_allowed(b, n, f6, none);
  /* ...but the first fragment gets one. */
  m = frag6(l4, MASQ_IPPROTO_UDP, 0, 1);
  m += udp(l4 + m, 1, 2, 0);
  n = v6(b, MASQ_IPPROTO_FRAGMENT, "2001:db8::1", "2001:db8::2", l4, m);
  expect_allowed(b, n, f6, all);
  /* Sources that name no single host. */
  const char *bad4[] = {"0.0.0.0", "0.1.2.3", "127.0.0.1", "224.0.0.5", "240.0.0.1",
                        "255.255.255.255"};
  for (size_t i = 0; i < 6; i++) {
    n = v4(b, MASQ_IPPROTO_UDP, bad4[i], "192.0.2.2", NULL, 0, 0, l4, udp(l4, 1, 2, 0));
    expect_allowed(b, n, f4, none);
  }
  const char *bad6[] = {"::", "::1", "ff02::1", "ff0e::1"};
  for (size_t i = 0; i < 4; i++) {
    n = v6(b, MASQ_IPPROTO_UDP, bad6[i], "2001:db8::2", l4, udp(l4, 1, 2, 0));
    expect_allowed(b, n, f6, none);
  }
  n = v6(b, MASQ_IPPROTO_UDP, "::2", "2001:db8::2", l4, udp(l4, 1, 2, 0));
  expect_allowed(b, n, f6, all);
}

static void test_icmp_bad_arguments(void **state) {
  static uint8_t b[256], e[MASQ_ICMP_ERROR_MAX];
  uint8_t l4[64];
  masq_ip f4 = ip_of("198.51.100.1"), f6 = ip_of("2001:db8::ff");
  size_t n = v4(b, MASQ_IPPROTO_UDP, "192.0.2.1", "192.0.2.2", NULL, 0, 0, l4, udp(l4, 1, 2, 4));
  size_t need = 28 + n;
  /* cap: one short fails, exact fits. */
  assert_int_equal(masq_icmp_error_build(e, need - 1, b, n, &f4, MASQ_ICMP_NO_ROUTE, 0), 0);
  assert_int_equal(masq_icmp_error_build(e, need, b, n, &f4, MASQ_ICMP_NO_ROUTE, 0), need);
  assert_int_equal(masq_icmp_error_build(e, 0, b, n, &f4, MASQ_ICMP_NO_ROUTE, 0), 0);
  /* Unknown kinds. */
  assert_int_equal(masq_icmp_error_build(e, sizeof(e), b, n, &f4, 0, 1280), 0);
  assert_int_equal(masq_icmp_error_build(e, sizeof(e), b, n, &f4, 5, 1280), 0);
  assert_int_equal(masq_icmp_error_build(e, sizeof(e), b, n, &f4, -1, 1280), 0);
  masq_ippkt k = parse_ok(b, n);
  assert_int_equal(masq_icmp_error_allowed(&k, 0), 0);
  assert_int_equal(masq_icmp_error_allowed(&k, 5), 0);
  /* from: missing, wrong family, not one host. */
  assert_int_equal(masq_icmp_error_build(e, sizeof(e), b, n, NULL, MASQ_ICMP_NO_ROUTE, 0), 0);
  assert_int_equal(masq_icmp_error_build(e, sizeof(e), b, n, &f6, MASQ_ICMP_NO_ROUTE, 0), 0);
  masq_ip mc = ip_of("224.0.0.1");
  assert_int_equal(masq_icmp_error_build(e, sizeof(e), b, n, &mc, MASQ_ICMP_NO_ROUTE, 0), 0);
  /* Unparseable original. */
  assert_int_equal(masq_icmp_error_build(e, sizeof(e), b, n - 1, &f4, MASQ_ICMP_NO_ROUTE, 0), 0);
  assert_int_equal(masq_icmp_error_build(e, sizeof(e), b, 0, &f4, MASQ_ICMP_NO_ROUTE, 0), 0);
  /* IPv6 Packet Too Big below the minimum MTU (RFC 8200 §5). */
  n = v6(b, MASQ_IPPROTO_UDP, "2001:db8::1", "2001:db8::2", l4, udp(l4, 1, 2, 0));
  assert_int_equal(
      masq_icmp_error_build(e, sizeof(e), b, n, &f6, MASQ_ICMP_PACKET_TOO_BIG, 1279), 0);
  assert_int_equal(masq_icmp_error_build(e, sizeof(e), b, n, &f6, MASQ_ICMP_PACKET_TOO_BIG, 0),
                   0);
  masq_ip un = ip_of("::");
  assert_int_equal(masq_icmp_error_build(e, sizeof(e), b, n, &un, MASQ_ICMP_NO_ROUTE, 0), 0);
  /* mtu is ignored for other kinds. */
  assert_int_equal(masq_icmp_error_build(e, sizeof(e), b, n, &f6, MASQ_ICMP_NO_ROUTE, 0), 48 + n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_checksum_vectors),
      cmocka_unit_test(test_l4_checksum),
      cmocka_unit_test(test_v4_udp),
      cmocka_unit_test(test_v4_tcp_options),
      cmocka_unit_test(test_v4_icmp),
      cmocka_unit_test(test_v4_fragments),
      cmocka_unit_test(test_v4_malformed),
      cmocka_unit_test(test_v6_udp),
      cmocka_unit_test(test_v6_each_extension),
      cmocka_unit_test(test_v6_chain),
      cmocka_unit_test(test_v6_hbh_not_first),
      cmocka_unit_test(test_v6_truncated_chain),
      cmocka_unit_test(test_v6_fragments),
      cmocka_unit_test(test_v6_terminal_headers),
      cmocka_unit_test(test_every_truncation),
      cmocka_unit_test(test_icmp6_errors),
      cmocka_unit_test(test_icmp4_errors),
      cmocka_unit_test(test_icmp_build_in_place),
      cmocka_unit_test(test_icmp_never_reply),
      cmocka_unit_test(test_icmp_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
