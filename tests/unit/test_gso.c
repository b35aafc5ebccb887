/* Super-packets at the TUN boundary (proto/gso.h): the virtio-net header,
 * the word-wise checksum against ippkt.h's byte-wise one, completing
 * partial checksums, cutting TCP (TSO) and UDP (USO) super-packets into
 * packets, and coalescing TCP segments back (GRO) -- including the round
 * trip: what the coalescer writes, segmented again, gives back exactly
 * the packets it was fed. Every packet is built here and checked with
 * ippkt.h's independent parser and checksum code. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proto/addr.h"
#include "proto/gso.h"
#include "proto/ippkt.h"

#define ACK 0x10
#define PSH 0x08
#define FIN 0x01
#define SYN 0x02
#define RST 0x04
#define CWR 0x80

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) << 16 | rd16(p + 2); }
static void wr16(uint8_t *p, unsigned v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void wr32(uint8_t *p, uint32_t v) {
  wr16(p, v >> 16);
  wr16(p + 2, v & 0xffff);
}

static masq_ip ip_of(const char *s) {
  masq_ip ip;
  assert_int_equal(masq_ip_parse(s, &ip), 0);
  return ip;
}

/* ---- packet builders ---- */

typedef struct tcpspec {
  const char *src, *dst;
  uint16_t sport, dport;
  uint32_t seq, ack;
  uint8_t flags;
  uint16_t win;
  uint8_t tos, ttl;
  uint16_t id; /* IPv4 */
  const uint8_t *opt;
  size_t optlen; /* multiple of 4 */
} tcpspec;

static const uint8_t ts_opt[12] = {1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78};

static tcpspec spec4(void) {
  tcpspec t = {"192.0.2.1", "198.51.100.7", 40000, 5201, 1000, 77, ACK, 512, 0, 64, 100,
               ts_opt, sizeof(ts_opt)};
  return t;
}

static tcpspec spec6(void) {
  tcpspec t = spec4();
  t.src = "2001:db8::1";
  t.dst = "2001:db8:2::7";
  return t;
}

/* An IP + TCP packet with payload pay[0..n) and correct checksums; the
 * IP length fields say what the packet holds. Returns its length. */
static size_t build_tcp(uint8_t *b, const tcpspec *t, const uint8_t *pay, size_t n) {
  masq_ip s = ip_of(t->src), d = ip_of(t->dst);
  size_t ihl = s.family == 4 ? 20 : 40, thl = 20 + t->optlen, total = ihl + thl + n;
  memset(b, 0, ihl + thl);
  if (s.family == 4) {
    b[0] = 0x45;
    b[1] = t->tos;
    wr16(b + 2, (unsigned)total);
    wr16(b + 4, t->id);
    b[6] = 0x40; /* DF */
    b[8] = t->ttl;
    b[9] = MASQ_IPPROTO_TCP;
    memcpy(b + 12, s.a, 4);
    memcpy(b + 16, d.a, 4);
    wr16(b + 10, masq_inet_checksum(b, 20));
  } else {
    b[0] = (uint8_t)(0x60 | t->tos >> 4);
    b[1] = (uint8_t)(t->tos << 4 | 0x0a); /* flow label 0xa1234 */
    b[2] = 0x12;
    b[3] = 0x34;
    wr16(b + 4, (unsigned)(thl + n));
    b[6] = MASQ_IPPROTO_TCP;
    b[7] = t->ttl;
    memcpy(b + 8, s.a, 16);
    memcpy(b + 24, d.a, 16);
  }
  uint8_t *th = b + ihl;
  wr16(th, t->sport);
  wr16(th + 2, t->dport);
  wr32(th + 4, t->seq);
  wr32(th + 8, t->ack);
  th[12] = (uint8_t)((thl / 4) << 4);
  th[13] = t->flags;
  wr16(th + 14, t->win);
  if (t->optlen) memcpy(th + 20, t->opt, t->optlen);
  if (n) memcpy(th + thl, pay, n); /* memcpy from NULL is undefined even for 0 bytes */
  wr16(th + 16, masq_l4_checksum(&s, &d, MASQ_IPPROTO_TCP, th, thl + n));
  return total;
}

static size_t build_udp(uint8_t *b, const char *src, const char *dst, const uint8_t *pay,
                        size_t n) {
  masq_ip s = ip_of(src), d = ip_of(dst);
  size_t ihl = s.family == 4 ? 20 : 40, total = ihl + 8 + n;
  memset(b, 0, ihl + 8);
  if (s.family == 4) {
    b[0] = 0x45;
    wr16(b + 2, (unsigned)total);
    wr16(b + 4, 0xfffe);
    b[8] = 64;
    b[9] = MASQ_IPPROTO_UDP;
    memcpy(b + 12, s.a, 4);
    memcpy(b + 16, d.a, 4);
    wr16(b + 10, masq_inet_checksum(b, 20));
  } else {
    b[0] = 0x60;
    wr16(b + 4, (unsigned)(8 + n));
    b[6] = MASQ_IPPROTO_UDP;
    b[7] = 64;
    memcpy(b + 8, s.a, 16);
    memcpy(b + 24, d.a, 16);
  }
  uint8_t *u = b + ihl;
  wr16(u, 4433);
  wr16(u + 2, 443);
  wr16(u + 4, (unsigned)(8 + n));
  memcpy(u + 8, pay, n);
  wr16(u + 6, masq_l4_checksum(&s, &d, MASQ_IPPROTO_UDP, u, 8 + n));
  return total;
}

/* Payload octets that tell their own offset. */
static void fill(uint8_t *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 7 + seed + (i >> 8));
}

/* A packet that ippkt.h parses and whose checksums verify. */
static void check_valid(const uint8_t *b, size_t len, masq_ippkt *p) {
  assert_int_equal(masq_ippkt_parse(b, len, p, NULL), 0);
  assert_int_equal(p->len, len);
  if (p->version == 4) assert_int_equal(masq_inet_checksum(b, p->l4_off), 0);
  uint32_t ps = masq_pseudo_header_sum(&p->src, &p->dst, p->proto, (uint32_t)(len - p->l4_off));
  assert_int_equal(masq_csum_finish(masq_csum_partial(b + p->l4_off, len - p->l4_off, ps)), 0);
}

/* ---- checksum and header ---- */

static void test_csum(void **state) {
  (void)state;
  static uint8_t buf[70000];
  srand(5);
  for (size_t i = 0; i < sizeof(buf); i++) buf[i] = (uint8_t)rand();
  for (size_t off = 0; off < 8; off++)
    for (size_t len = 0; len < 300; len++)
      for (uint32_t start = 0; start < 0x10000; start += 0x3fff)
        assert_int_equal(masq_gso_csum(buf + off, len, start),
                         masq_csum_partial(buf + off, len, start));
  assert_int_equal(masq_gso_csum(buf + 1, 65535, 0), masq_csum_partial(buf + 1, 65535, 0));
  /* All ones: the sum saturates at 0xffff, never wraps to 0. */
  memset(buf, 0xff, sizeof(buf));
  assert_int_equal(masq_gso_csum(buf, 65536, 0xffff), 0xffff);
  assert_int_equal(masq_gso_csum(buf, 65536, 0), masq_csum_partial(buf, 65536, 0));
}

static void test_vnet_hdr(void **state) {
  (void)state;
  const uint8_t raw[10] = {1, 4, 0x42, 0, 0xa8, 0x05, 40, 0, 16, 0};
  masq_vnet_hdr h;
  masq_vnet_hdr_get(&h, raw);
  assert_int_equal(h.flags, MASQ_VNET_F_NEEDS_CSUM);
  assert_int_equal(h.gso_type, MASQ_VNET_GSO_TCPV6);
  assert_int_equal(h.hdr_len, 0x42);
  assert_int_equal(h.gso_size, 1448); /* little-endian */
  assert_int_equal(h.csum_start, 40);
  assert_int_equal(h.csum_offset, 16);
  uint8_t out[10];
  masq_vnet_hdr_put(out, &h);
  assert_memory_equal(out, raw, 10);
}

static void test_complete_csum(void **state) {
  (void)state;
  uint8_t b[300], pay[101];
  fill(pay, sizeof(pay), 3);
  size_t n = build_udp(b, "192.0.2.1", "198.51.100.7", pay, sizeof(pay));
  masq_ippkt p;
  check_valid(b, n, &p);
  /* What the kernel hands over with TUN_F_CSUM: the pseudo-header sum in
   * the field, the rest left to the reader. */
  uint32_t ps = masq_pseudo_header_sum(&p.src, &p.dst, MASQ_IPPROTO_UDP, (uint32_t)(n - 20));
  wr16(b + 26, ps);
  masq_vnet_hdr h = {MASQ_VNET_F_NEEDS_CSUM, 0, 0, 0, 20, 6};
  assert_int_equal(masq_vnet_complete_csum(&h, b, n, NULL), 0);
  check_valid(b, n, &p);
  /* Without the flag nothing changes. */
  uint8_t copy[300];
  memcpy(copy, b, n);
  h.flags = 0;
  assert_int_equal(masq_vnet_complete_csum(&h, b, n, NULL), 0);
  assert_memory_equal(copy, b, n);
  /* The field must lie inside the packet. */
  const char *err = NULL;
  h.flags = MASQ_VNET_F_NEEDS_CSUM;
  h.csum_start = (uint16_t)(n - 1);
  h.csum_offset = 0;
  assert_int_equal(masq_vnet_complete_csum(&h, b, n, &err), -1);
  assert_non_null(err);
  h.csum_start = (uint16_t)n;
  assert_int_equal(masq_vnet_complete_csum(&h, b, n, NULL), -1);
  assert_memory_equal(copy, b, n);
}

/* ---- segmentation ---- */

static masq_vnet_hdr tso_hdr(int v6, uint16_t gso_size) {
  masq_vnet_hdr h = {MASQ_VNET_F_NEEDS_CSUM, v6 ? MASQ_VNET_GSO_TCPV6 : MASQ_VNET_GSO_TCPV4, 0,
                     gso_size, v6 ? 40 : 20, 16};
  return h;
}

/* A kernel-like super-packet: the TCP checksum field holds a partial sum
 * (here garbage, which segmentation must not depend on). */
static size_t super_tcp(uint8_t *b, const tcpspec *t, const uint8_t *pay, size_t n) {
  size_t len = build_tcp(b, t, pay, n);
  size_t l4 = (b[0] >> 4) == 4 ? 20 : 40;
  wr16(b + l4 + 16, 0xbeef);
  return len;
}

static void check_tso(int v6) {
  static uint8_t sp[MASQ_GSO_MAX_PKT], sp2[MASQ_GSO_MAX_PKT], pay[10000], seg[2000];
  fill(pay, sizeof(pay), 1);
  tcpspec t = v6 ? spec6() : spec4();
  t.flags = ACK | PSH | FIN | CWR;
  t.seq = 0xfffff000; /* wraps inside the packet */
  t.id = 0xfffe;      /* so do the IPv4 IDs */
  size_t len = super_tcp(sp, &t, pay, sizeof(pay));
  memcpy(sp2, sp, len);
  masq_vnet_hdr h = tso_hdr(v6, 1448);
  masq_gso g, g2;
  assert_int_equal(masq_gso_init(&g, &h, sp, len, NULL), 0);
  assert_int_equal(masq_gso_init(&g2, &h, sp2, len, NULL), 0);
  size_t hl = (v6 ? 40 : 20) + 20 + sizeof(ts_opt);
  assert_int_equal(masq_gso_count(&g), 7); /* 6 x 1448 + 1312 */
  assert_int_equal(masq_gso_seg_max(&g), hl + 1448);
  size_t off = 0;
  for (unsigned i = 0;; i++) {
    size_t n = masq_gso_next(&g, seg, sizeof(seg));
    uint8_t *ip;
    size_t n2 = masq_gso_next_inplace(&g2, &ip);
    assert_int_equal(n, n2);
    if (!n) {
      assert_int_equal(i, 7);
      break;
    }
    /* Copy and in-place produce the same octets. */
    assert_memory_equal(seg, ip, n);
    masq_ippkt p;
    check_valid(seg, n, &p);
    size_t pl = i < 6 ? 1448 : 1312;
    assert_int_equal(n, hl + pl);
    assert_int_equal(p.proto, MASQ_IPPROTO_TCP);
    const uint8_t *th = seg + p.l4_off;
    assert_int_equal(rd32(th + 4), (uint32_t)(0xfffff000u + off));
    assert_int_equal(rd32(th + 8), 77);
    assert_int_equal(rd16(th + 14), 512);
    uint8_t want = ACK | (i == 6 ? PSH | FIN : 0) | (i == 0 ? CWR : 0);
    assert_int_equal(th[13], want);
    assert_memory_equal(th + 20, ts_opt, sizeof(ts_opt));
    assert_memory_equal(seg + hl, pay + off, pl);
    if (!v6) {
      assert_int_equal(rd16(seg + 4), (0xfffe + i) & 0xffff);
      assert_int_equal(seg[6], 0x40);
    } else {
      assert_int_equal(rd32(seg) & 0x000fffff, 0xa1234); /* the flow label stays */
    }
    off += pl;
  }
  assert_int_equal(off, sizeof(pay));
  /* The copying iterator leaves the super-packet alone. */
  uint8_t again[MASQ_GSO_MAX_PKT];
  assert_int_equal(super_tcp(again, &t, pay, sizeof(pay)), len);
  assert_memory_equal(again, sp, len);
}

static void test_tso4(void **state) {
  (void)state;
  check_tso(0);
}

static void test_tso6(void **state) {
  (void)state;
  check_tso(1);
}

static void check_uso(const char *src, const char *dst) {
  static uint8_t sp[4000], pay[3000], seg[1100];
  fill(pay, sizeof(pay), 9);
  size_t len = build_udp(sp, src, dst, pay, sizeof(pay));
  int v6 = sp[0] >> 4 == 6;
  size_t ihl = v6 ? 40 : 20;
  masq_vnet_hdr h = {MASQ_VNET_F_NEEDS_CSUM, MASQ_VNET_GSO_UDP_L4, (uint16_t)(ihl + 8), 1000,
                     (uint16_t)ihl, 6};
  masq_gso g;
  assert_int_equal(masq_gso_init(&g, &h, sp, len, NULL), 0);
  assert_int_equal(masq_gso_count(&g), 3);
  for (unsigned i = 0; i < 3; i++) {
    size_t n = masq_gso_next(&g, seg, sizeof(seg));
    assert_int_equal(n, ihl + 8 + 1000);
    masq_ippkt p;
    check_valid(seg, n, &p);
    assert_int_equal(rd16(seg + ihl + 4), 1008);
    assert_int_equal(rd16(seg + ihl), 4433);
    assert_memory_equal(seg + ihl + 8, pay + i * 1000, 1000);
    if (!v6) assert_int_equal(rd16(seg + 4), (0xfffe + i) & 0xffff);
  }
  assert_int_equal(masq_gso_next(&g, seg, sizeof(seg)), 0);
}

static void test_uso(void **state) {
  (void)state;
  check_uso("192.0.2.1", "198.51.100.7");
  check_uso("2001:db8::1", "2001:db8:2::7");
}

static void test_gso_small(void **state) {
  (void)state;
  uint8_t sp[200], pay[50], seg[200];
  fill(pay, sizeof(pay), 0);
  tcpspec t = spec4();
  /* Less than one segment: one packet, as it was (checksum redone). */
  size_t len = build_tcp(sp, &t, pay, sizeof(pay));
  uint8_t orig[200];
  memcpy(orig, sp, len);
  masq_vnet_hdr h = tso_hdr(0, 1448);
  masq_gso g;
  assert_int_equal(masq_gso_init(&g, &h, sp, len, NULL), 0);
  assert_int_equal(masq_gso_count(&g), 1);
  assert_int_equal(masq_gso_seg_max(&g), len);
  assert_int_equal(masq_gso_next(&g, seg, len - 1), 0); /* too small a buffer */
  assert_int_equal(masq_gso_next(&g, seg, sizeof(seg)), len);
  assert_memory_equal(seg, orig, len);
  assert_int_equal(masq_gso_next(&g, seg, sizeof(seg)), 0);
  /* No payload at all: the headers once. */
  len = build_tcp(sp, &t, pay, 0);
  assert_int_equal(masq_gso_init(&g, &h, sp, len, NULL), 0);
  assert_int_equal(masq_gso_count(&g), 1);
  uint8_t *ip;
  assert_int_equal(masq_gso_next_inplace(&g, &ip), len);
  masq_ippkt p;
  check_valid(ip, len, &p);
  assert_int_equal(masq_gso_next_inplace(&g, &ip), 0);
}

static void test_gso_errors(void **state) {
  (void)state;
  uint8_t sp[300], pay[100];
  fill(pay, sizeof(pay), 0);
  tcpspec t4 = spec4(), t6 = spec6();
  masq_gso g;
  const char *err;
  masq_vnet_hdr h = tso_hdr(0, 40);
  size_t len = build_tcp(sp, &t4, pay, sizeof(pay));
#define REFUSED(hdr, b, n)                                           \
  do {                                                               \
    err = NULL;                                                      \
    assert_int_equal(masq_gso_init(&g, &(hdr), (b), (n), &err), -1); \
    assert_non_null(err);                                            \
  } while (0)
  /* Type against version and protocol. */
  masq_vnet_hdr bad = tso_hdr(1, 40);
  REFUSED(bad, sp, len);
  bad.gso_type = MASQ_VNET_GSO_UDP_L4;
  REFUSED(bad, sp, len);
  bad.gso_type = MASQ_VNET_GSO_UDP; /* UFO: never enabled */
  REFUSED(bad, sp, len);
  bad.gso_type = MASQ_VNET_GSO_NONE;
  REFUSED(bad, sp, len);
  bad = h;
  bad.gso_size = 0;
  REFUSED(bad, sp, len);
  bad.gso_size = 65535; /* headers + 65535 > 64 KiB */
  REFUSED(bad, sp, len);
  REFUSED(h, sp, 0);
  REFUSED(h, sp, 19);
  /* The ECN bit is no type of its own. */
  bad = h;
  bad.gso_type |= MASQ_VNET_GSO_ECN;
  assert_int_equal(masq_gso_init(&g, &bad, sp, len, NULL), 0);
  /* IPv4 header length and fragments. */
  uint8_t c[300];
  memcpy(c, sp, len);
  c[0] = 0x44;
  REFUSED(h, c, len);
  c[0] = 0x4f;
  REFUSED(h, c, 50);
  memcpy(c, sp, len);
  c[6] = 0x20; /* MF */
  REFUSED(h, c, len);
  memcpy(c, sp, len);
  c[7] = 1; /* offset 8 */
  REFUSED(h, c, len);
  /* TCP header: truncated, bad data offset, past the end. */
  REFUSED(h, sp, 20 + 19);
  memcpy(c, sp, len);
  c[32] = 0x40;
  REFUSED(h, c, len);
  REFUSED(h, sp, 20 + 20 + 11);
  /* Not TCP. */
  memcpy(c, sp, len);
  c[9] = MASQ_IPPROTO_UDP;
  REFUSED(h, c, len);
  /* IPv6: extension headers, truncation. */
  len = build_tcp(sp, &t6, pay, sizeof(pay));
  masq_vnet_hdr h6 = tso_hdr(1, 40);
  assert_int_equal(masq_gso_init(&g, &h6, sp, len, NULL), 0);
  memcpy(c, sp, len);
  c[6] = MASQ_IPPROTO_DSTOPTS;
  REFUSED(h6, c, len);
  REFUSED(h6, sp, 39);
  REFUSED(h6, sp, 59);
  /* A version that is neither. */
  memcpy(c, sp, len);
  c[0] = 0x50;
  bad.gso_type = MASQ_VNET_GSO_UDP_L4;
  REFUSED(bad, c, len);
  /* UDP too short for its header. */
  len = build_udp(sp, "192.0.2.1", "198.51.100.7", pay, 10);
  REFUSED(bad, sp, 27);
  assert_int_equal(masq_gso_init(&g, &bad, sp, 28, NULL), 0);
#undef REFUSED
}

/* ---- coalescing ---- */

#define CAP_MAX 64
typedef struct captured {
  masq_vnet_hdr h;
  size_t len;
  uint8_t pkt[MASQ_GSO_MAX_PKT];
} captured;

typedef struct capture {
  captured w[CAP_MAX];
  size_t n;
  int fail; /* make writes fail */
} capture;

static int cap_write(void *ud, const uint8_t *hdr, const uint8_t *pkt, size_t len) {
  capture *c = ud;
  assert_true(c->n < CAP_MAX);
  masq_vnet_hdr_get(&c->w[c->n].h, hdr);
  memcpy(c->w[c->n].pkt, pkt, len);
  c->w[c->n].len = len;
  c->n++;
  return c->fail ? -1 : 0;
}

static uint8_t g_mem[MASQ_GRO_MEM];
static capture g_cap;

static void gro_setup(masq_gro *g) {
  memset(&g_cap, 0, sizeof(g_cap));
  masq_gro_init(g, g_mem, cap_write, &g_cap);
}

/* n segments of t's flow, of `each` octets (the last `last`), from seq
 * t->seq on; PSH on the last if psh. Returns them in segs/lens. */
static size_t make_segments(uint8_t segs[][2000], size_t *lens, tcpspec t, size_t n, size_t each,
                            size_t last, int psh) {
  static uint8_t pay[2000];
  for (size_t i = 0; i < n; i++) {
    size_t pl = i + 1 == n ? last : each;
    fill(pay, pl, (unsigned)i);
    t.flags = (uint8_t)(ACK | (psh && i + 1 == n ? PSH : 0));
    t.id = (uint16_t)(100 + i);
    lens[i] = build_tcp(segs[i], &t, pay, pl);
    t.seq += (uint32_t)pl;
  }
  return n;
}

/* What a super-packet the coalescer wrote must be, and its segments must
 * be exactly the packets that went in. */
static void check_roundtrip(const captured *w, uint8_t segs[][2000], const size_t *lens, size_t n) {
  int v6 = w->pkt[0] >> 4 == 6;
  size_t l4 = v6 ? 40 : 20;
  if (n == 1) {
    masq_vnet_hdr zero = {0};
    assert_memory_equal(&w->h, &zero, sizeof(zero));
    assert_int_equal(w->len, lens[0]);
    assert_memory_equal(w->pkt, segs[0], lens[0]);
    return;
  }
  assert_int_equal(w->h.flags, MASQ_VNET_F_NEEDS_CSUM);
  assert_int_equal(w->h.gso_type, v6 ? MASQ_VNET_GSO_TCPV6 : MASQ_VNET_GSO_TCPV4);
  assert_int_equal(w->h.csum_start, l4);
  assert_int_equal(w->h.csum_offset, 16);
  assert_int_equal(w->h.hdr_len, l4 + 20 + sizeof(ts_opt));
  assert_int_equal(w->h.gso_size, lens[0] - w->h.hdr_len);
  /* The IP header is valid for the whole; the TCP checksum field holds
   * the pseudo-header sum (CHECKSUM_PARTIAL), so completing it must give
   * a valid packet. */
  masq_ippkt p;
  assert_int_equal(masq_ippkt_parse(w->pkt, w->len, &p, NULL), 0);
  assert_int_equal(p.len, w->len);
  if (!v6) assert_int_equal(masq_inet_checksum(w->pkt, 20), 0);
  uint32_t ps = masq_pseudo_header_sum(&p.src, &p.dst, MASQ_IPPROTO_TCP, (uint32_t)(w->len - l4));
  assert_int_equal(rd16(w->pkt + l4 + 16), ps);
  static uint8_t whole[MASQ_GSO_MAX_PKT];
  memcpy(whole, w->pkt, w->len);
  assert_int_equal(masq_vnet_complete_csum(&w->h, whole, w->len, NULL), 0);
  check_valid(whole, w->len, &p);
  /* Segmented again: the packets that went in, octet for octet. */
  masq_gso g;
  static uint8_t copy[MASQ_GSO_MAX_PKT];
  memcpy(copy, w->pkt, w->len);
  assert_int_equal(masq_gso_init(&g, &w->h, copy, w->len, NULL), 0);
  assert_int_equal(masq_gso_count(&g), n);
  uint8_t seg[2000];
  for (size_t i = 0; i < n; i++) {
    size_t len = masq_gso_next(&g, seg, sizeof(seg));
    assert_int_equal(len, lens[i]);
    if (!v6) wr16(seg + 4, 100 + (unsigned)i); /* IDs: the kernel counts on from the first */
    assert_memory_equal(seg, segs[i], len);
  }
}

static uint8_t g_segs[80][2000];
static size_t g_lens[80];

static void roundtrip(tcpspec t) {
  masq_gro g;
  gro_setup(&g);
  size_t n = make_segments(g_segs, g_lens, t, 20, 1400, 600, 1);
  for (size_t i = 0; i < n; i++) assert_int_equal(masq_gro_add(&g, g_segs[i], g_lens[i]), 0);
  assert_int_equal(g_cap.n, 0); /* all held */
  masq_gro_flush(&g);
  assert_int_equal(g_cap.n, 1);
  check_roundtrip(&g_cap.w[0], g_segs, g_lens, n);
  assert_int_equal(g.stats.in, 20);
  assert_int_equal(g.stats.merged, 19);
  assert_int_equal(g.stats.writes, 1);
  /* Nothing is left for a second flush. */
  masq_gro_flush(&g);
  assert_int_equal(g_cap.n, 1);
}

static void test_gro_roundtrip(void **state) {
  (void)state;
  roundtrip(spec4());
  roundtrip(spec6());
  /* One segment alone goes out as it came, with a plain header. */
  masq_gro g;
  gro_setup(&g);
  make_segments(g_segs, g_lens, spec4(), 1, 0, 700, 0);
  assert_int_equal(masq_gro_add(&g, g_segs[0], g_lens[0]), 0);
  masq_gro_flush(&g);
  assert_int_equal(g_cap.n, 1);
  check_roundtrip(&g_cap.w[0], g_segs, g_lens, 1);
}

/* Not TCP data: written at once, held flows of other flows stay held. */
static void test_gro_passthrough(void **state) {
  (void)state;
  masq_gro g;
  gro_setup(&g);
  make_segments(g_segs, g_lens, spec4(), 2, 1000, 1000, 0);
  assert_int_equal(masq_gro_add(&g, g_segs[0], g_lens[0]), 0);
  uint8_t u[200], pay[20] = {0};
  size_t n = build_udp(u, "192.0.2.1", "198.51.100.7", pay, sizeof(pay));
  assert_int_equal(masq_gro_add(&g, u, n), 0);
  assert_int_equal(g_cap.n, 1);
  assert_int_equal(g_cap.w[0].len, n);
  assert_memory_equal(g_cap.w[0].pkt, u, n);
  assert_int_equal(g_cap.w[0].h.gso_type, 0);
  /* Junk too (the stack will judge it). */
  uint8_t junk[3] = {0x12, 0x34, 0x56};
  assert_int_equal(masq_gro_add(&g, junk, sizeof(junk)), 0);
  assert_int_equal(g_cap.n, 2);
  assert_int_equal(masq_gro_add(&g, g_segs[1], g_lens[1]), 0);
  masq_gro_flush(&g);
  assert_int_equal(g_cap.n, 3);
  check_roundtrip(&g_cap.w[2], g_segs, g_lens, 2);
  /* A failing write is reported and counted. */
  g_cap.fail = 1;
  assert_int_equal(masq_gro_add(&g, u, n), -1);
  assert_int_equal(g.stats.write_fail, 1);
}

/* Segments of one flow that must not be merged: the held one goes out
 * first, then the newcomer (held or written), so the order holds. */
static void check_breaks(tcpspec t2, int held_after) {
  masq_gro g;
  gro_setup(&g);
  tcpspec t = spec4();
  make_segments(g_segs, g_lens, t, 2, 1000, 1000, 0);
  assert_int_equal(masq_gro_add(&g, g_segs[0], g_lens[0]), 0);
  assert_int_equal(masq_gro_add(&g, g_segs[1], g_lens[1]), 0);
  static uint8_t pay[1000];
  fill(pay, sizeof(pay), 5);
  uint8_t b[1200];
  size_t n = build_tcp(b, &t2, pay, t2.flags & (SYN | RST) ? 0 : sizeof(pay));
  assert_int_equal(masq_gro_add(&g, b, n), 0);
  assert_int_equal(g_cap.n, held_after ? 1 : 2);
  check_roundtrip(&g_cap.w[0], g_segs, g_lens, 2);
  masq_gro_flush(&g);
  assert_int_equal(g_cap.n, 2);
  assert_int_equal(g_cap.w[1].len, n);
  assert_memory_equal(g_cap.w[1].pkt, b, n);
  assert_int_equal(g_cap.w[1].h.gso_type, 0);
}

static void test_gro_breaks(void **state) {
  (void)state;
  tcpspec t = spec4();
  t.seq += 2000;
  tcpspec x = t;
  x.seq += 1; /* a gap */
  check_breaks(x, 1);
  x = t;
  x.seq -= 1000; /* a retransmission */
  check_breaks(x, 1);
  x = t;
  x.ack += 1;
  check_breaks(x, 1);
  x = t;
  x.tos = 3; /* CE: the mark must not vanish into a merged packet */
  check_breaks(x, 1);
  x = t;
  x.ttl = 63;
  check_breaks(x, 1);
  uint8_t other_ts[12];
  memcpy(other_ts, ts_opt, 12);
  other_ts[7]++;
  x = t;
  x.opt = other_ts;
  check_breaks(x, 1);
  x = t;
  x.optlen = 0;
  check_breaks(x, 1);
  /* Flags that travel alone: written at once, after the held data. */
  x = t;
  x.flags = ACK | FIN;
  check_breaks(x, 0);
  x = t;
  x.flags = ACK | CWR;
  check_breaks(x, 0);
  x = t;
  x.flags = RST;
  check_breaks(x, 0);
  x = t;
  x.flags = 0; /* no ACK */
  check_breaks(x, 0);
}

/* A pure ACK of the flow is written after its held data. */
static void test_gro_pure_ack(void **state) {
  (void)state;
  masq_gro g;
  gro_setup(&g);
  tcpspec t = spec4();
  make_segments(g_segs, g_lens, t, 3, 1000, 1000, 0);
  for (int i = 0; i < 3; i++) masq_gro_add(&g, g_segs[i], g_lens[i]);
  t.seq += 3000;
  uint8_t a[100];
  size_t n = build_tcp(a, &t, NULL, 0);
  assert_int_equal(masq_gro_add(&g, a, n), 0);
  assert_int_equal(g_cap.n, 2);
  check_roundtrip(&g_cap.w[0], g_segs, g_lens, 3);
  assert_memory_equal(g_cap.w[1].pkt, a, n);
  /* A pure ACK of another flow leaves this one held. */
  gro_setup(&g);
  masq_gro_add(&g, g_segs[0], g_lens[0]);
  t = spec4();
  t.sport++;
  n = build_tcp(a, &t, NULL, 0);
  masq_gro_add(&g, a, n);
  assert_int_equal(g_cap.n, 1);
  assert_memory_equal(g_cap.w[0].pkt, a, n);
  masq_gro_flush(&g);
  assert_int_equal(g_cap.n, 2);
}

/* Sizes: a shorter segment or PSH ends a super-packet; a larger one
 * cannot join; 64 KiB is the most. */
static void test_gro_sizes(void **state) {
  (void)state;
  masq_gro g;
  gro_setup(&g);
  tcpspec t = spec4();
  /* 1000, 1000, 500 | 1000 (new) */
  make_segments(g_segs, g_lens, t, 3, 1000, 500, 0);
  for (int i = 0; i < 3; i++) masq_gro_add(&g, g_segs[i], g_lens[i]);
  t.seq += 2500;
  make_segments(g_segs + 3, g_lens + 3, t, 1, 0, 1000, 0);
  masq_gro_add(&g, g_segs[3], g_lens[3]);
  assert_int_equal(g_cap.n, 1);
  check_roundtrip(&g_cap.w[0], g_segs, g_lens, 3);
  masq_gro_flush(&g);
  check_roundtrip(&g_cap.w[1], g_segs + 3, g_lens + 3, 1);
  /* 1000 then 1200: the larger starts anew. */
  gro_setup(&g);
  t = spec4();
  make_segments(g_segs, g_lens, t, 1, 0, 1000, 0);
  t.seq += 1000;
  make_segments(g_segs + 1, g_lens + 1, t, 1, 0, 1200, 0);
  masq_gro_add(&g, g_segs[0], g_lens[0]);
  masq_gro_add(&g, g_segs[1], g_lens[1]);
  masq_gro_flush(&g);
  assert_int_equal(g_cap.n, 2);
  /* PSH ends it: the next in-order segment starts a new one. */
  gro_setup(&g);
  t = spec4();
  make_segments(g_segs, g_lens, t, 2, 1000, 1000, 1);
  t.seq += 2000;
  make_segments(g_segs + 2, g_lens + 2, t, 1, 0, 1000, 0);
  for (int i = 0; i < 3; i++) masq_gro_add(&g, g_segs[i], g_lens[i]);
  masq_gro_flush(&g);
  assert_int_equal(g_cap.n, 2);
  check_roundtrip(&g_cap.w[0], g_segs, g_lens, 2);
  assert_int_equal(g_cap.w[0].pkt[20 + 13], ACK | PSH);
  /* 70 x 1400 octets: never more than 64 KiB in one. */
  gro_setup(&g);
  make_segments(g_segs, g_lens, spec6(), 70, 1400, 1400, 0);
  for (int i = 0; i < 70; i++) assert_int_equal(masq_gro_add(&g, g_segs[i], g_lens[i]), 0);
  masq_gro_flush(&g);
  assert_int_equal(g_cap.n, 2);
  size_t first = (MASQ_GSO_MAX_PKT - 40 - 32) / 1400; /* segments that fit */
  check_roundtrip(&g_cap.w[0], g_segs, g_lens, first);
  check_roundtrip(&g_cap.w[1], g_segs + first, g_lens + first, 70 - first);
  assert_true(g_cap.w[0].len <= MASQ_GSO_MAX_PKT);
}

/* The receive window moves on while data flows: the newest one wins. */
static void test_gro_window(void **state) {
  (void)state;
  masq_gro g;
  gro_setup(&g);
  tcpspec t = spec4();
  static uint8_t pay[1000];
  uint8_t b[3][1200];
  size_t n[3];
  for (int i = 0; i < 3; i++) {
    t.win = (uint16_t)(512 + 100 * i);
    n[i] = build_tcp(b[i], &t, pay, sizeof(pay));
    t.seq += sizeof(pay);
    assert_int_equal(masq_gro_add(&g, b[i], n[i]), 0);
  }
  masq_gro_flush(&g);
  assert_int_equal(g_cap.n, 1);
  assert_int_equal(g.stats.merged, 2);
  assert_int_equal(rd16(g_cap.w[0].pkt + 20 + 14), 712);
}

/* Flows interleaved are held apart; a ninth evicts the least recent. */
static void test_gro_flows(void **state) {
  (void)state;
  masq_gro g;
  gro_setup(&g);
  static uint8_t segs[9][4][2000];
  static size_t lens[9][4];
  for (int f = 0; f < 9; f++) {
    tcpspec t = f % 2 ? spec6() : spec4();
    t.sport = (uint16_t)(1000 + f);
    make_segments(segs[f], lens[f], t, 4, 1000, 1000, 0);
  }
  for (int i = 0; i < 4; i++)
    for (int f = 0; f < 8; f++) assert_int_equal(masq_gro_add(&g, segs[f][i], lens[f][i]), 0);
  assert_int_equal(g_cap.n, 0);
  /* Flow 8's first segment: flow 0 was used least recently. */
  masq_gro_add(&g, segs[8][0], lens[8][0]);
  assert_int_equal(g_cap.n, 1);
  check_roundtrip(&g_cap.w[0], segs[0], lens[0], 4);
  for (int i = 1; i < 4; i++) masq_gro_add(&g, segs[8][i], lens[8][i]);
  masq_gro_flush(&g);
  assert_int_equal(g_cap.n, 9);
  for (size_t w = 1; w < 9; w++) {
    int f = (int)(rd16(g_cap.w[w].pkt + (g_cap.w[w].pkt[0] >> 4 == 4 ? 20 : 40)) - 1000);
    assert_true(f >= 1 && f <= 8);
    check_roundtrip(&g_cap.w[w], segs[f], lens[f], 4);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_csum),
      cmocka_unit_test(test_vnet_hdr),
      cmocka_unit_test(test_complete_csum),
      cmocka_unit_test(test_tso4),
      cmocka_unit_test(test_tso6),
      cmocka_unit_test(test_uso),
      cmocka_unit_test(test_gso_small),
      cmocka_unit_test(test_gso_errors),
      cmocka_unit_test(test_gro_roundtrip),
      cmocka_unit_test(test_gro_passthrough),
      cmocka_unit_test(test_gro_breaks),
      cmocka_unit_test(test_gro_pure_ack),
      cmocka_unit_test(test_gro_sizes),
      cmocka_unit_test(test_gro_window),
      cmocka_unit_test(test_gro_flows),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
