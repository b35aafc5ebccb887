/* Super-packets at the TUN boundary, declared in gso.h. */
#include "proto/gso.h"

#include <string.h>

#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define V4_HDR 20
#define V6_HDR 40
#define TCP_HDR 20
#define UDP_HDR 8
/* TCP flag bits (RFC 9293 §3.1, RFC 3168 §6.1 for ECE/CWR) */
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10
#define TH_URG 0x20
#define TH_ECE 0x40
#define TH_CWR 0x80

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) << 16 | rd16(p + 2); }
static void wr16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void wr32(uint8_t *p, uint32_t v) {
  wr16(p, v >> 16);
  wr16(p + 2, v);
}
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static void put_le16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

void masq_vnet_hdr_get(masq_vnet_hdr *h, const uint8_t *p) {
  h->flags = p[0];
  h->gso_type = p[1];
  h->hdr_len = le16(p + 2);
  h->gso_size = le16(p + 4);
  h->csum_start = le16(p + 6);
  h->csum_offset = le16(p + 8);
}

void masq_vnet_hdr_put(uint8_t *p, const masq_vnet_hdr *h) {
  p[0] = h->flags;
  p[1] = h->gso_type;
  put_le16(p + 2, h->hdr_len);
  put_le16(p + 4, h->gso_size);
  put_le16(p + 6, h->csum_start);
  put_le16(p + 8, h->csum_offset);
}

/* ---- checksums ---- */

static uint32_t fold(uint64_t a) {
  while (a >> 16) a = (a & 0xffff) + (a >> 16);
  return (uint32_t)a;
}

/* RFC 1071 §2(B): the ones' complement sum does not care about byte
 * order, so memory is summed as native 64-bit words, the carries out of
 * each addition counted (2^64 = 1 modulo 0xffff, so each is worth 1),
 * and the folded result swapped to the big-endian value once. Two
 * independent chains keep the adds from waiting on each other's carry:
 * 2.5x the speed of 32-bit words, on every octet segmentation sends. */
uint32_t masq_gso_csum(const uint8_t *p, size_t len, uint32_t sum) {
  uint64_t a0 = 0, a1 = 0, c0 = 0, c1 = 0, t, u, w[4];
  while (len >= 32) {
    memcpy(w, p, 32);
    c0 += __builtin_add_overflow(a0, w[0], &t);
    c1 += __builtin_add_overflow(a1, w[1], &u);
    c0 += __builtin_add_overflow(t, w[2], &a0);
    c1 += __builtin_add_overflow(u, w[3], &a1);
    p += 32;
    len -= 32;
  }
  while (len >= 8) {
    memcpy(w, p, 8);
    c0 += __builtin_add_overflow(a0, w[0], &t);
    a0 = t;
    p += 8;
    len -= 8;
  }
  c0 += c1 + __builtin_add_overflow(a0, a1, &t);
  /* Split into 32-bit halves (2^32 = 1 modulo 0xffff as well). */
  uint64_t acc = (t & 0xffffffffu) + (t >> 32) + c0;
  while (len >= 2) {
    uint16_t h;
    memcpy(&h, p, 2);
    acc += h;
    p += 2;
    len -= 2;
  }
  if (len) {
    /* The odd octet is the high half of a zero-padded big-endian word,
     * i.e. the first octet of a native word whatever the byte order. */
    uint8_t pad[2] = {p[0], 0};
    uint16_t h;
    memcpy(&h, pad, 2);
    acc += h;
  }
  uint32_t r = fold(acc);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  r = (uint32_t)(((r & 0xff) << 8) | (r >> 8));
#elif !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_BIG_ENDIAN__
#error "unknown byte order"
#endif
  return fold((uint64_t)r + sum);
}

static uint16_t csum_finish(uint32_t sum) { return (uint16_t)~fold(sum); }

/* Pseudo-header sum (RFC 9293 §3.1, RFC 768; RFC 8200 §8.1) from the
 * addresses in the IP header ip, for an upper-layer length l4len. */
static uint32_t pseudo_sum(const uint8_t *ip, uint8_t version, uint8_t proto, size_t l4len) {
  uint32_t s = version == 4 ? masq_gso_csum(ip + 12, 8, 0) : masq_gso_csum(ip + 8, 32, 0);
  return fold((uint64_t)s + proto + (l4len & 0xffff) + (l4len >> 16));
}

int masq_vnet_complete_csum(const masq_vnet_hdr *h, uint8_t *pkt, size_t len, const char **err) {
  if (!(h->flags & MASQ_VNET_F_NEEDS_CSUM)) return 0;
  size_t at = (size_t)h->csum_start + h->csum_offset;
  if (h->csum_start >= len || at + 2 > len) {
    if (err) *err = "partial checksum field outside the packet";
    return -1;
  }
  /* The field holds the pseudo-header sum, so summing over it adds it. */
  uint16_t c = csum_finish(masq_gso_csum(pkt + h->csum_start, len - h->csum_start, 0));
  wr16(pkt + at, c);
  return 0;
}

/* ---- segmentation ---- */

static int gso_fail(const char **err, const char *why) {
  if (err) *err = why;
  return -1;
}

int masq_gso_init(masq_gso *g, const masq_vnet_hdr *h, uint8_t *pkt, size_t len,
                  const char **err) {
  uint8_t type = h->gso_type & (uint8_t)~MASQ_VNET_GSO_ECN;
  uint8_t want;
  if (type == MASQ_VNET_GSO_TCPV4 || type == MASQ_VNET_GSO_TCPV6) want = IPPROTO_TCP_;
  else if (type == MASQ_VNET_GSO_UDP_L4) want = IPPROTO_UDP_;
  else return gso_fail(err, "unsupported GSO type");
  if (len == 0) return gso_fail(err, "empty super-packet");
  if (h->gso_size == 0) return gso_fail(err, "GSO size 0");
  memset(g, 0, sizeof(*g));
  g->version = pkt[0] >> 4;
  if ((type == MASQ_VNET_GSO_TCPV4 && g->version != 4) ||
      (type == MASQ_VNET_GSO_TCPV6 && g->version != 6) || (g->version != 4 && g->version != 6))
    return gso_fail(err, "IP version does not match the GSO type");
  if (g->version == 4) {
    if (len < V4_HDR) return gso_fail(err, "truncated IPv4 header");
    size_t ihl = (size_t)(pkt[0] & 15) * 4;
    if (ihl < V4_HDR || ihl > len) return gso_fail(err, "bad IPv4 header length");
    if ((rd16(pkt + 6) & 0x3fff) != 0) return gso_fail(err, "IPv4 fragment as a super-packet");
    g->proto = pkt[9];
    g->l4_off = ihl;
  } else {
    if (len < V6_HDR) return gso_fail(err, "truncated IPv6 header");
    g->proto = pkt[6];
    g->l4_off = V6_HDR;
  }
  if (g->proto != want) return gso_fail(err, "transport protocol does not match the GSO type");
  if (want == IPPROTO_TCP_) {
    if (g->l4_off + TCP_HDR > len) return gso_fail(err, "truncated TCP header");
    size_t doff = (size_t)(pkt[g->l4_off + 12] >> 4) * 4;
    if (doff < TCP_HDR || g->l4_off + doff > len) return gso_fail(err, "bad TCP data offset");
    g->hlen = g->l4_off + doff;
  } else {
    if (g->l4_off + UDP_HDR > len) return gso_fail(err, "truncated UDP header");
    g->hlen = g->l4_off + UDP_HDR;
  }
  if (g->hlen + h->gso_size > MASQ_GSO_MAX_PKT) return gso_fail(err, "segments too large");
  memcpy(g->tmpl, pkt, g->hlen); /* hlen <= 60 + 60 by the checks above */
  g->pkt = pkt;
  g->len = len;
  g->seg = h->gso_size;
  return 0;
}

size_t masq_gso_seg_max(const masq_gso *g) {
  size_t payload = g->len - g->hlen;
  return g->hlen + (payload < g->seg ? payload : g->seg);
}

size_t masq_gso_count(const masq_gso *g) {
  size_t payload = g->len - g->hlen;
  return payload == 0 ? 1 : (payload + g->seg - 1) / g->seg;
}

/* Payload octets of the next segment, and whether it is the last; 0
 * with *more = 0 when every segment has been produced. */
static size_t next_len(const masq_gso *g, int *more) {
  size_t payload = g->len - g->hlen;
  *more = g->index == 0 || g->off < payload;
  return payload - g->off < g->seg ? payload - g->off : g->seg;
}

/* Turns dst[0..hlen + n) -- the template headers and the payload that
 * follows offset g->off -- into the next segment. */
static size_t finish_segment(masq_gso *g, uint8_t *dst, size_t n) {
  size_t payload = g->len - g->hlen;
  int last = g->off + n >= payload;
  size_t total = g->hlen + n, l4len = total - g->l4_off;
  if (g->version == 4) {
    wr16(dst + 2, (uint32_t)total);
    wr16(dst + 4, rd16(g->tmpl + 4) + g->index); /* IDs run on, mod 2^16 */
    wr16(dst + 10, 0);
    wr16(dst + 10, csum_finish(masq_gso_csum(dst, g->l4_off, 0)));
  } else {
    wr16(dst + 4, (uint32_t)(total - V6_HDR));
  }
  uint8_t *l4 = dst + g->l4_off;
  if (g->proto == IPPROTO_TCP_) {
    wr32(l4 + 4, rd32(g->tmpl + g->l4_off + 4) + (uint32_t)g->off);
    if (!last) l4[13] &= (uint8_t)~(TH_FIN | TH_PSH);
    if (g->index > 0) l4[13] &= (uint8_t)~TH_CWR;
    wr16(l4 + 16, 0);
    uint32_t s = pseudo_sum(dst, g->version, g->proto, l4len);
    wr16(l4 + 16, csum_finish(masq_gso_csum(l4, l4len, s)));
  } else {
    wr16(l4 + 4, (uint32_t)l4len);
    wr16(l4 + 6, 0);
    uint32_t s = pseudo_sum(dst, g->version, g->proto, l4len);
    uint16_t c = csum_finish(masq_gso_csum(l4, l4len, s));
    wr16(l4 + 6, c ? c : 0xffff); /* RFC 768: 0 would mean "no checksum" */
  }
  g->off += n;
  g->index++;
  return total;
}

size_t masq_gso_next(masq_gso *g, uint8_t *dst, size_t cap) {
  int more;
  size_t n = next_len(g, &more);
  if (!more || cap < masq_gso_seg_max(g)) return 0;
  memcpy(dst, g->tmpl, g->hlen);
  memcpy(dst + g->hlen, g->pkt + g->hlen + g->off, n);
  return finish_segment(g, dst, n);
}

size_t masq_gso_next_inplace(masq_gso *g, uint8_t **out) {
  int more;
  size_t n = next_len(g, &more);
  if (!more) return 0;
  /* The payload stays where it is; its headers go just in front of it,
   * over the previous segment's last octets. */
  uint8_t *dst = g->pkt + g->off;
  memcpy(dst, g->tmpl, g->hlen);
  *out = dst;
  return finish_segment(g, dst, n);
}

/* ---- coalescing ---- */

void masq_gro_init(masq_gro *g, uint8_t *mem, masq_gro_write_fn write, void *ud) {
  memset(g, 0, sizeof(*g));
  for (size_t i = 0; i < MASQ_GRO_FLOWS; i++) g->flow[i].buf = mem + i * MASQ_GSO_BUF;
  g->write = write;
  g->ud = ud;
}

/* What masq_gro_add learns about a TCP segment it may hold. */
typedef struct seginfo {
  uint8_t version;
  size_t l4_off, hlen, payload;
  uint32_t seq;
  uint8_t flags;
} seginfo;

/* 1 if pkt is a TCP segment (any flags) over plain IPv4 / IPv6, with
 * *si filled; 0 otherwise. */
static int tcp_segment(const uint8_t *pkt, size_t len, seginfo *si) {
  if (len < 1) return 0;
  si->version = pkt[0] >> 4;
  if (si->version == 4) {
    /* Options would have to match too; fragments carry no whole segment. */
    if (len < V4_HDR || pkt[0] != 0x45 || pkt[9] != IPPROTO_TCP_ || rd16(pkt + 2) != len ||
        (rd16(pkt + 6) & 0x3fff) != 0)
      return 0;
    si->l4_off = V4_HDR;
  } else if (si->version == 6) {
    if (len < V6_HDR || pkt[6] != IPPROTO_TCP_ || (size_t)rd16(pkt + 4) + V6_HDR != len)
      return 0;
    si->l4_off = V6_HDR;
  } else {
    return 0;
  }
  if (si->l4_off + TCP_HDR > len) return 0;
  size_t doff = (size_t)(pkt[si->l4_off + 12] >> 4) * 4;
  if (doff < TCP_HDR || si->l4_off + doff > len) return 0;
  si->hlen = si->l4_off + doff;
  si->payload = len - si->hlen;
  si->seq = rd32(pkt + si->l4_off + 4);
  si->flags = pkt[si->l4_off + 13];
  return 1;
}

/* Data with ACK and at most PSH besides: SYN, FIN, RST, URG and the ECN
 * signals (whose position matters to the receiver) go on their own. */
static int holdable(const seginfo *si) {
  return si->payload > 0 && (si->flags & (uint8_t)~TH_PSH) == TH_ACK;
}

/* Same addresses and ports: the flow. */
static int same_flow(const uint8_t *a, const uint8_t *b, const seginfo *si) {
  if (si->version == 4)
    return memcmp(a + 12, b + 12, 8) == 0 && memcmp(a + V4_HDR, b + V4_HDR, 4) == 0;
  return memcmp(a + 8, b + 8, 32) == 0 && memcmp(a + V6_HDR, b + V6_HDR, 4) == 0;
}

static masq_gro_flow *find_flow(masq_gro *g, const uint8_t *pkt, const seginfo *si) {
  for (size_t i = 0; i < MASQ_GRO_FLOWS; i++) {
    masq_gro_flow *f = &g->flow[i];
    if (f->len && (f->buf[MASQ_VNET_HDR_LEN] >> 4) == si->version &&
        same_flow(f->buf + MASQ_VNET_HDR_LEN, pkt, si))
      return f;
  }
  return NULL;
}

/* Whether the held flow f can take segment pkt. */
static int continues(const masq_gro_flow *f, const uint8_t *pkt, const seginfo *si) {
  const uint8_t *h = f->buf + MASQ_VNET_HDR_LEN;
  if (f->closed || si->seq != f->next_seq || si->hlen != f->hlen || si->payload > f->gso_size ||
      f->len + si->payload > MASQ_GSO_MAX_PKT)
    return 0;
  if (si->version == 4) {
    /* TOS (ECN marks must not be lost), DF, TTL. */
    if (h[1] != pkt[1] || (h[6] & 0x40) != (pkt[6] & 0x40) || h[8] != pkt[8]) return 0;
  } else {
    /* Traffic Class and flow label, Hop Limit. */
    if (memcmp(h, pkt, 4) != 0 || h[7] != pkt[7]) return 0;
  }
  const uint8_t *ta = h + si->l4_off, *tb = pkt + si->l4_off;
  /* Acknowledgement number, then the options (timestamps included). */
  return memcmp(ta + 8, tb + 8, 4) == 0 &&
         memcmp(ta + TCP_HDR, tb + TCP_HDR, si->hlen - si->l4_off - TCP_HDR) == 0;
}

static int flush_flow(masq_gro *g, masq_gro_flow *f) {
  if (!f->len) return 0;
  uint8_t *pkt = f->buf + MASQ_VNET_HDR_LEN;
  masq_vnet_hdr h = {0};
  if (f->nseg > 1) {
    uint8_t version = pkt[0] >> 4;
    size_t l4_off = version == 4 ? V4_HDR : V6_HDR;
    if (version == 4) {
      wr16(pkt + 2, (uint32_t)f->len);
      wr16(pkt + 10, 0);
      wr16(pkt + 10, csum_finish(masq_gso_csum(pkt, V4_HDR, 0)));
    } else {
      wr16(pkt + 4, (uint32_t)(f->len - V6_HDR));
    }
    /* The segments' own checksums are gone with their headers; the
     * kernel finishes this one (CHECKSUM_PARTIAL) or trusts it. QUIC's
     * AEAD already guarantees the octets are what the peer sent. */
    wr16(pkt + l4_off + 16, pseudo_sum(pkt, version, IPPROTO_TCP_, f->len - l4_off));
    h.flags = MASQ_VNET_F_NEEDS_CSUM;
    h.gso_type = version == 4 ? MASQ_VNET_GSO_TCPV4 : MASQ_VNET_GSO_TCPV6;
    h.hdr_len = (uint16_t)f->hlen;
    h.gso_size = (uint16_t)f->gso_size;
    h.csum_start = (uint16_t)l4_off;
    h.csum_offset = 16;
  }
  masq_vnet_hdr_put(f->buf, &h);
  size_t len = f->len;
  f->len = 0;
  g->stats.writes++;
  int rv = g->write(g->ud, f->buf, pkt, len);
  if (rv != 0) g->stats.write_fail++;
  return rv;
}

static void hold(masq_gro *g, masq_gro_flow *f, const uint8_t *pkt, const seginfo *si) {
  memcpy(f->buf + MASQ_VNET_HDR_LEN, pkt, si->hlen + si->payload);
  f->len = si->hlen + si->payload;
  f->hlen = si->hlen;
  f->gso_size = si->payload;
  f->next_seq = si->seq + (uint32_t)si->payload;
  f->nseg = 1;
  f->closed = (si->flags & TH_PSH) != 0;
  f->used = ++g->clock;
}

static void append(masq_gro *g, masq_gro_flow *f, const uint8_t *pkt, const seginfo *si) {
  uint8_t *h = f->buf + MASQ_VNET_HDR_LEN;
  memcpy(h + f->len, pkt + si->hlen, si->payload);
  f->len += si->payload;
  f->next_seq += (uint32_t)si->payload;
  f->nseg++;
  uint8_t *th = h + si->l4_off;
  memcpy(th + 14, pkt + si->l4_off + 14, 2); /* the newest window */
  if (si->flags & TH_PSH) th[13] |= TH_PSH;
  /* A short segment must be the last: GSO cuts gso_size pieces. */
  f->closed = (si->flags & TH_PSH) || si->payload < f->gso_size;
  f->used = ++g->clock;
  g->stats.merged++;
}

int masq_gro_add(masq_gro *g, const uint8_t *pkt, size_t len) {
  static const uint8_t plain[MASQ_VNET_HDR_LEN];
  g->stats.in++;
  seginfo si;
  if (!tcp_segment(pkt, len, &si)) {
    g->stats.writes++;
    int rv = g->write(g->ud, plain, pkt, len);
    if (rv != 0) g->stats.write_fail++;
    return rv;
  }
  masq_gro_flow *f = find_flow(g, pkt, &si);
  if (f && holdable(&si) && continues(f, pkt, &si)) {
    append(g, f, pkt, &si);
    return 0;
  }
  if (f) flush_flow(g, f); /* the flow's order is kept */
  if (!holdable(&si)) {
    g->stats.writes++;
    int rv = g->write(g->ud, plain, pkt, len);
    if (rv != 0) g->stats.write_fail++;
    return rv;
  }
  if (!f) {
    /* A free slot, else the least recently used one goes out. */
    for (size_t i = 0; i < MASQ_GRO_FLOWS; i++) {
      masq_gro_flow *c = &g->flow[i];
      if (!c->len) {
        f = c;
        break;
      }
      if (!f || c->used < f->used) f = c;
    }
    flush_flow(g, f);
  }
  hold(g, f, pkt, &si);
  return 0;
}

void masq_gro_flush(masq_gro *g) {
  for (size_t i = 0; i < MASQ_GRO_FLOWS; i++) flush_flow(g, &g->flow[i]);
}
