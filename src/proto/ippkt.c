/* IP packet parsing, ICMP error generation and the Internet checksum; see
 * ippkt.h for the contracts and the RFC behind each rule. */
#include "proto/ippkt.h"

#include <string.h>

static uint16_t rd16(const uint8_t *p) {
  return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static void wr16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v) {
  wr16(p, v >> 16);
  wr16(p + 2, v & 0xffff);
}

/* ---- Internet checksum (RFC 1071) ---- */

/* Folding the carries back in is what makes the sum ones' complement
 * (RFC 1071 §2, end-around carry); a 64-bit accumulator cannot overflow
 * on any buffer that fits in memory. */
static uint32_t fold(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return (uint32_t)acc;
}

uint32_t masq_csum_partial(const uint8_t *p, size_t len, uint32_t sum) {
  uint64_t acc = sum;
  size_t i = 0;
  for (; i + 1 < len; i += 2) acc += rd16(p + i);
  /* RFC 768, RFC 9293 §3.1: an odd final octet is padded on the right
   * with zeros to form a 16-bit word. */
  if (i < len) acc += (uint32_t)p[i] << 8;
  return fold(acc);
}

uint16_t masq_csum_finish(uint32_t sum) {
  return (uint16_t)~fold(sum);
}

uint16_t masq_inet_checksum(const uint8_t *p, size_t len) {
  return masq_csum_finish(masq_csum_partial(p, len, 0));
}

uint32_t masq_pseudo_header_sum(const masq_ip *src, const masq_ip *dst, uint8_t proto,
                                uint32_t len) {
  size_t alen = src->family == 4 ? 4 : src->family == 6 ? 16 : 0;
  if (alen == 0) return 0;
  uint32_t sum = masq_csum_partial(src->a, alen, 0);
  sum = masq_csum_partial(dst->a, alen, sum);
  /* The zero octets add nothing, so only protocol and length remain; the
   * IPv6 32-bit length is two 16-bit words (RFC 8200 §8.1). */
  uint64_t acc = (uint64_t)sum + proto + (len & 0xffff) + (alen == 16 ? len >> 16 : 0);
  return fold(acc);
}

uint16_t masq_l4_checksum(const masq_ip *src, const masq_ip *dst, uint8_t proto,
                          const uint8_t *p, size_t len) {
  uint32_t sum = masq_pseudo_header_sum(src, dst, proto, (uint32_t)len);
  uint16_t c = masq_csum_finish(masq_csum_partial(p, len, sum));
  /* RFC 768: a zero UDP checksum means "none sent", so 0 goes as 0xffff
   * (the same value in ones' complement). */
  if (c == 0 && proto == MASQ_IPPROTO_UDP) c = 0xffff;
  return c;
}

/* ---- Parsing ---- */

static void set_ip(masq_ip *ip, uint8_t family, const uint8_t *a) {
  memset(ip, 0, sizeof(*ip));
  ip->family = family;
  memcpy(ip->a, a, family == 4 ? 4 : 16);
}

static const char *parse_v4(const uint8_t *p, size_t len, masq_ippkt *k) {
  if (len < MASQ_IPV4_HDR_LEN) return "truncated IPv4 header";
  size_t ihl = (size_t)(p[0] & 0x0f) * 4;
  if (ihl < MASQ_IPV4_HDR_LEN) return "IPv4 IHL below 5 (RFC 791 3.1)";
  if (ihl > len) return "truncated IPv4 options";
  size_t total = rd16(p + 2);
  if (total < ihl) return "IPv4 total length shorter than its header";
  if (total > len) return "IPv4 total length beyond the packet";
  uint16_t ff = rd16(p + 6);
  size_t fo = (size_t)(ff & 0x1fff) * 8;
  int mf = (ff & 0x2000) != 0;
  k->version = 4;
  k->dscp = p[1] >> 2;
  k->ecn = p[1] & 3;
  k->ttl = p[8];
  k->proto = p[9];
  k->df = (ff & 0x4000) != 0;
  k->fragment = mf || fo != 0;
  k->nonfirst = fo != 0;
  k->l4_off = ihl;
  k->len = total;
  set_ip(&k->src, 4, p + 12);
  set_ip(&k->dst, 4, p + 16);
  /* Fragments other than the last carry whole 8-octet blocks (RFC 791
   * §3.2), and no fragment may reach past the largest datagram. */
  if (mf && (total - ihl) % 8 != 0) return "IPv4 fragment not a multiple of 8 octets";
  if (ihl + fo + (total - ihl) > 0xffff) return "IPv4 fragment ends beyond 65535 octets";
  /* RFC 1858 §3.2: a TCP fragment at offset 8 can only be an attempt to
   * rewrite the flags of a header a filter already judged (§4: it also
   * stops the overlapping-fragment attack). */
  if (fo == 8 && k->proto == MASQ_IPPROTO_TCP) return "IPv4 TCP fragment at offset 8";
  return NULL;
}

/* Fragment header (RFC 8200 §4.5) at p[off..end). Sets *stop when the
 * rest of the packet is fragment data rather than headers. */
static const char *v6_fragment(const uint8_t *p, size_t off, size_t end, masq_ippkt *k,
                               int *stop) {
  if (end - off < 8) return "truncated IPv6 fragment header";
  uint16_t w = rd16(p + off + 2);
  size_t fo = w & 0xfff8;
  int m = w & 1;
  *stop = 0;
  /* RFC 6946 §4: an atomic fragment (offset 0, M clear) is a whole packet
   * and processed in isolation, so the walk simply goes on. */
  if (fo == 0 && !m) return NULL;
  size_t data = end - off - 8;
  if (m && data % 8 != 0) return "IPv6 fragment not a multiple of 8 octets";
  /* The reassembled Payload Length counts the headers before this one. */
  if ((off - MASQ_IPV6_HDR_LEN) + fo + data > 0xffff)
    return "IPv6 fragment ends beyond 65535 octets";
  k->fragment = 1;
  if (fo == 0) return NULL;
  k->nonfirst = 1;
  k->proto = p[off];
  k->l4_off = off + 8;
  *stop = 1;
  return NULL;
}

/* Length of the extension header at p[off..end) of type nh, or 0 if nh
 * is not one masq walks through. Needs 2 readable octets. */
static size_t v6_ext_len(uint8_t nh, const uint8_t *p, size_t off) {
  switch (nh) {
    case MASQ_IPPROTO_HOPOPTS:
    case MASQ_IPPROTO_ROUTING:
    case MASQ_IPPROTO_DSTOPTS:
      /* RFC 8200 §4.3-4.6: Hdr Ext Len in 8-octet units past the first 8. */
      return ((size_t)p[off + 1] + 1) * 8;
    case MASQ_IPPROTO_AH:
      /* RFC 4302 §2.2: Payload Len in 4-octet units, minus 2. */
      return ((size_t)p[off + 1] + 2) * 4;
    default:
      return 0;
  }
}

/* Walks the extension header chain (RFC 8200 §4) of the packet's payload
 * p[40..end) to the upper-layer header, as RFC 9484 §4.8 asks. Every step
 * consumes at least 8 octets, so the loop ends. */
static const char *v6_walk(const uint8_t *p, size_t end, masq_ippkt *k) {
  size_t off = MASQ_IPV6_HDR_LEN;
  uint8_t nh = p[6];
  for (;;) {
    if (nh == MASQ_IPPROTO_FRAGMENT) {
      int stop;
      const char *why = v6_fragment(p, off, end, k, &stop);
      if (why || stop) return why;
      nh = p[off];
      off += 8;
      continue;
    }
    if (nh == MASQ_IPPROTO_HOPOPTS && off != MASQ_IPV6_HDR_LEN)
      return "IPv6 hop-by-hop header not first (RFC 8200 4.1)";
    int ext = nh == MASQ_IPPROTO_HOPOPTS || nh == MASQ_IPPROTO_ROUTING ||
              nh == MASQ_IPPROTO_DSTOPTS || nh == MASQ_IPPROTO_AH;
    if (!ext) break;
    if (end - off < 2) return "truncated IPv6 extension header";
    size_t hl = v6_ext_len(nh, p, off);
    if (hl > end - off) return "truncated IPv6 extension header";
    nh = p[off];
    off += hl;
  }
  k->proto = nh;
  k->l4_off = off;
  return NULL;
}

static const char *parse_v6(const uint8_t *p, size_t len, masq_ippkt *k) {
  if (len < MASQ_IPV6_HDR_LEN) return "truncated IPv6 header";
  size_t total = MASQ_IPV6_HDR_LEN + (size_t)rd16(p + 4);
  if (total > len) return "IPv6 payload length beyond the packet";
  uint8_t tc = (uint8_t)((p[0] & 0x0f) << 4 | p[1] >> 4);
  k->version = 6;
  k->dscp = tc >> 2;
  k->ecn = tc & 3;
  k->ttl = p[7];
  k->len = total;
  set_ip(&k->src, 6, p + 8);
  set_ip(&k->dst, 6, p + 24);
  return v6_walk(p, total, k);
}

/* Minimal upper-layer header length masq reads, 0 for other protocols. */
static size_t l4_min(const masq_ippkt *k) {
  if (k->proto == MASQ_IPPROTO_TCP) return 20;
  if (k->proto == MASQ_IPPROTO_UDP) return 8;
  if (k->proto == (k->version == 4 ? MASQ_IPPROTO_ICMP : MASQ_IPPROTO_ICMPV6)) return 4;
  return 0;
}

/* Ports or ICMP type/code, when the upper-layer header is in this packet. */
static const char *parse_l4(const uint8_t *p, masq_ippkt *k) {
  size_t need = l4_min(k);
  if (k->nonfirst || need == 0) return NULL;
  const uint8_t *h = p + k->l4_off;
  if (k->len - k->l4_off < need) {
    /* RFC 8200 §4.5 / RFC 7112 §5 / RFC 1858 §3.1: a first fragment must
     * carry the upper-layer header, or filters could be bypassed. */
    return k->fragment ? "first fragment without the upper-layer header" : NULL;
  }
  if (k->proto == MASQ_IPPROTO_TCP || k->proto == MASQ_IPPROTO_UDP) {
    k->has_ports = 1;
    k->sport = rd16(h);
    k->dport = rd16(h + 2);
  } else {
    k->has_icmp = 1;
    k->icmp_type = h[0];
    k->icmp_code = h[1];
  }
  return NULL;
}

int masq_ippkt_parse(const uint8_t *p, size_t len, masq_ippkt *out, const char **err) {
  masq_ippkt k;
  memset(&k, 0, sizeof(k));
  const char *why;
  if (len == 0)
    why = "empty packet";
  else if (p[0] >> 4 == 4)
    why = parse_v4(p, len, &k);
  else if (p[0] >> 4 == 6)
    why = parse_v6(p, len, &k);
  else
    why = "IP version neither 4 nor 6";
  if (!why) why = parse_l4(p, &k);
  if (why) {
    if (err) *err = why;
    return -1;
  }
  *out = k;
  return 0;
}

/* ---- ICMP errors ---- */

static int is_zero(const uint8_t *a, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (a[i]) return 0;
  return 1;
}

/* Whether ip can name one host (see masq_icmp_error_allowed for the RFC
 * lists): errors go to the source, and come from `from`. */
static int single_host(const masq_ip *ip) {
  if (ip->family == 4) {
    uint8_t b = ip->a[0];
    return b != 0 && b != 127 && b < 224;
  }
  if (ip->family != 6 || ip->a[0] == 0xff) return 0;
  if (is_zero(ip->a, 15)) return ip->a[15] > 1; /* not :: or ::1 */
  return 1;
}

static int multi_dest(const masq_ip *ip) {
  if (ip->family == 6) return ip->a[0] == 0xff;
  if (ip->a[0] >= 224 && ip->a[0] < 240) return 1;
  return ip->a[0] == 255 && ip->a[1] == 255 && ip->a[2] == 255 && ip->a[3] == 255;
}

/* RFC 1122 §3.2.2 splits ICMPv4 into errors and queries; anything not a
 * known query may be an error, and replying to errors can loop. */
static int icmp4_query(uint8_t type) {
  switch (type) {
    case 0:  /* echo reply */
    case 8:  /* echo */
    case 9:  /* router advertisement, RFC 1256 */
    case 10: /* router solicitation, RFC 1256 */
    case 13: case 14: /* timestamp */
    case 15: case 16: /* information */
    case 17: case 18: /* address mask, RFC 950 */
    case 42: case 43: /* extended echo, RFC 8335 */
      return 1;
    default:
      return 0;
  }
}

/* RFC 4443 §2.1: error types have the high bit clear; §2.4(e.2) adds
 * Redirect. */
static int icmp6_noreply(uint8_t type) {
  return type < 128 || type == 137;
}

static int is_icmp_error(const masq_ippkt *k) {
  uint8_t icmp = k->version == 4 ? MASQ_IPPROTO_ICMP : MASQ_IPPROTO_ICMPV6;
  if (k->proto != icmp) return 0;
  /* Without its type it might be an error: stay silent. */
  if (!k->has_icmp) return 1;
  return k->version == 4 ? !icmp4_query(k->icmp_type) : icmp6_noreply(k->icmp_type);
}

static int kind_known(int kind) {
  return kind >= MASQ_ICMP_PACKET_TOO_BIG && kind <= MASQ_ICMP_NO_ROUTE;
}

int masq_icmp_error_allowed(const masq_ippkt *pkt, int kind) {
  if (!kind_known(kind) || pkt->nonfirst) return 0;
  if (!single_host(&pkt->src) || is_icmp_error(pkt)) return 0;
  /* RFC 4443 §2.4(e.3): Packet Too Big may answer IPv6 multicast. */
  int ptb6 = kind == MASQ_ICMP_PACKET_TOO_BIG && pkt->version == 6;
  if (multi_dest(&pkt->dst) && !ptb6) return 0;
  return 1;
}

/* Type, code and the 4 octets after the checksum for kind. */
static void icmp_fields(int version, int kind, uint32_t mtu, uint8_t *type, uint8_t *code,
                        uint32_t *rest) {
  static const uint8_t code4[] = {0, 4, 13, 13, 0};
  static const uint8_t code6[] = {0, 0, 1, 5, 0};
  int ptb = kind == MASQ_ICMP_PACKET_TOO_BIG;
  *rest = ptb ? mtu : 0; /* RFC 1191 §4: MTU in the low 16 bits */
  if (version == 4) {
    *type = 3;
    *code = code4[kind];
  } else {
    *type = ptb ? 2 : 1;
    *code = code6[kind];
  }
}

static int mtu_ok(int version, int kind, uint32_t mtu) {
  if (kind != MASQ_ICMP_PACKET_TOO_BIG) return 1;
  if (version == 6) return mtu >= MASQ_IPV6_MIN_MTU;
  return mtu >= MASQ_IPV4_MIN_MTU && mtu <= 0xffff;
}

static void write_v4_header(uint8_t *d, size_t total, const masq_ip *from, const masq_ip *to) {
  d[0] = 0x45;
  d[1] = 0xc0; /* precedence 6, RFC 1812 §4.3.2.5; Not-ECT */
  wr16(d + 2, (uint32_t)total);
  wr16(d + 4, 0);      /* ID: free for atomic datagrams, RFC 6864 §4.1 */
  wr16(d + 6, 0x4000); /* DF, offset 0: never fragmented (<= 576) */
  d[8] = MASQ_ICMP_ERROR_TTL;
  d[9] = MASQ_IPPROTO_ICMP;
  wr16(d + 10, 0);
  memcpy(d + 12, from->a, 4);
  memcpy(d + 16, to->a, 4);
  wr16(d + 10, masq_inet_checksum(d, MASQ_IPV4_HDR_LEN));
}

static void write_v6_header(uint8_t *d, size_t plen, const masq_ip *from, const masq_ip *to) {
  wr32(d, 0x60000000u); /* version 6, Traffic Class 0, Flow Label 0 */
  wr16(d + 4, (uint32_t)plen);
  d[6] = MASQ_IPPROTO_ICMPV6;
  d[7] = MASQ_ICMP_ERROR_TTL;
  memcpy(d + 8, from->a, 16);
  memcpy(d + 24, to->a, 16);
}

size_t masq_icmp_error_build(uint8_t *dst, size_t cap, const uint8_t *orig, size_t origlen,
                             const masq_ip *from, int kind, uint32_t mtu) {
  masq_ippkt k;
  if (!kind_known(kind) || !from || masq_ippkt_parse(orig, origlen, &k, NULL) != 0) return 0;
  if (from->family != k.version || !single_host(from)) return 0;
  if (!mtu_ok(k.version, kind, mtu) || !masq_icmp_error_allowed(&k, kind)) return 0;
  int v4 = k.version == 4;
  size_t iphl = v4 ? MASQ_IPV4_HDR_LEN : MASQ_IPV6_HDR_LEN;
  size_t max = v4 ? MASQ_ICMP4_ERROR_MAX : MASQ_ICMP6_ERROR_MAX;
  size_t room = max - iphl - MASQ_ICMP_HDR_LEN;
  size_t quote = k.len < room ? k.len : room;
  size_t total = iphl + MASQ_ICMP_HDR_LEN + quote;
  if (cap < total) return 0;

  uint8_t type, code;
  uint32_t rest;
  icmp_fields(k.version, kind, mtu, &type, &code, &rest);
  uint8_t *m = dst + iphl; /* the ICMP message */
  size_t mlen = MASQ_ICMP_HDR_LEN + quote;
  /* The quote moves first: dst may overlap orig, and k already holds
   * every header field still needed. */
  memmove(m + MASQ_ICMP_HDR_LEN, orig, quote);
  m[0] = type;
  m[1] = code;
  wr16(m + 2, 0);
  wr32(m + 4, rest);
  if (v4) {
    write_v4_header(dst, total, from, &k.src);
    wr16(m + 2, masq_inet_checksum(m, mlen));
  } else {
    write_v6_header(dst, mlen, from, &k.src);
    wr16(m + 2, masq_l4_checksum(from, &k.src, MASQ_IPPROTO_ICMPV6, m, mlen));
  }
  return total;
}
