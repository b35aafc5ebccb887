/* libFuzzer harness for super-packet segmentation and coalescing
 * (proto/gso.h). The input is a 10-octet virtio-net header and the
 * packet it describes. Whatever masq_gso_init accepts must come out as
 * valid IP packets (ippkt.h parses them, their checksums verify, their
 * payloads put together are the super-packet's), the same octets from
 * the copying and the in-place iterator; and those packets, fed to the
 * coalescer, must come back out -- each write expanded again by
 * segmentation -- exactly as they went in. Partial checksum completion
 * and the coalescer must take any input without harm. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/gso.h"
#include "proto/ippkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok) abort();
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

#define MAX_SEGS 2048
#define FLAT (1u << 20)

static uint8_t sp[MASQ_GSO_MAX_PKT], sp2[MASQ_GSO_MAX_PKT], seg[MASQ_GSO_MAX_PKT];
static uint8_t mem[MASQ_GRO_MEM];

/* Segments as produced, one after another in flat. */
typedef struct run {
  uint8_t flat[FLAT];
  size_t off[MAX_SEGS + 1];
  size_t n;
} run;
static run in, out;

static void push(run *r, const uint8_t *p, size_t len) {
  check(r->n < MAX_SEGS && r->off[r->n] + len <= FLAT);
  memcpy(r->flat + r->off[r->n], p, len);
  r->off[r->n + 1] = r->off[r->n] + len;
  r->n++;
}

/* Coalescer output: plain packets as they are, super-packets segmented. */
static int expand(void *ud, const uint8_t *hdr, const uint8_t *pkt, size_t len) {
  (void)ud;
  masq_vnet_hdr h;
  masq_vnet_hdr_get(&h, hdr);
  if (h.gso_type == MASQ_VNET_GSO_NONE) {
    check(h.flags == 0);
    push(&out, pkt, len);
    return 0;
  }
  static uint8_t copy[MASQ_GSO_MAX_PKT];
  check(len <= sizeof(copy));
  memcpy(copy, pkt, len);
  masq_gso g;
  check(masq_gso_init(&g, &h, copy, len, NULL) == 0);
  check(masq_gso_count(&g) >= 2);
  size_t n;
  while ((n = masq_gso_next(&g, seg, sizeof(seg))) > 0) push(&out, seg, n);
  return 0;
}

static void check_segment(const uint8_t *p, size_t n, const masq_gso *g) {
  masq_ippkt k;
  check(masq_ippkt_parse(p, n, &k, NULL) == 0);
  check(k.len == n && k.l4_off == g->l4_off && k.proto == g->proto && !k.fragment);
  if (k.version == 4) check(masq_inet_checksum(p, k.l4_off) == 0);
  uint32_t ps = masq_pseudo_header_sum(&k.src, &k.dst, k.proto, (uint32_t)(n - k.l4_off));
  check(masq_csum_finish(masq_csum_partial(p + k.l4_off, n - k.l4_off, ps)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < MASQ_VNET_HDR_LEN) return 0;
  masq_vnet_hdr h;
  masq_vnet_hdr_get(&h, data);
  const uint8_t *pkt = data + MASQ_VNET_HDR_LEN;
  size_t len = size - MASQ_VNET_HDR_LEN;
  if (len > sizeof(sp)) return 0;

  /* Partial checksums: only the field changes, and to the value that
   * makes the region plus the field's old content (the pseudo-header
   * sum the kernel leaves there) sum to 0xffff; refused if it is not
   * wholly inside the packet. */
  memcpy(sp, pkt, len);
  if (masq_vnet_complete_csum(&h, sp, len, NULL) == 0 && (h.flags & MASQ_VNET_F_NEEDS_CSUM)) {
    size_t at = (size_t)h.csum_start + h.csum_offset;
    check(at + 2 <= len);
    check(memcmp(sp, pkt, at) == 0 && memcmp(sp + at + 2, pkt + at + 2, len - at - 2) == 0);
    if (h.csum_offset % 2 == 0)
      check(masq_csum_partial(sp + h.csum_start, len - h.csum_start, rd16(pkt + at)) == 0xffff);
  } else if (h.flags & MASQ_VNET_F_NEEDS_CSUM) {
    check((size_t)h.csum_start + h.csum_offset + 2 > len);
  }
  /* The word-wise checksum agrees with the byte-wise one. */
  check(masq_gso_csum(pkt, len, h.csum_start) == masq_csum_partial(pkt, len, h.csum_start));

  /* Any packet through the coalescer: plain ones come out untouched. */
  masq_gro gro;
  out.n = 0;
  masq_gro_init(&gro, mem, expand, NULL);
  masq_gro_add(&gro, pkt, len);
  masq_gro_flush(&gro);
  check(out.n == 1 && out.off[1] == len && memcmp(out.flat, pkt, len) == 0);

  memcpy(sp, pkt, len);
  memcpy(sp2, pkt, len);
  masq_gso g, g2;
  const char *err = NULL;
  if (masq_gso_init(&g, &h, sp, len, &err) != 0) {
    check(err != NULL);
    return 0;
  }
  check(masq_gso_init(&g2, &h, sp2, len, NULL) == 0);
  size_t count = masq_gso_count(&g), max = masq_gso_seg_max(&g);
  if (count > MAX_SEGS) return 0; /* tiny segments: slow, nothing new */
  size_t payload = len - g.hlen, got = 0, n;
  in.n = 0;
  while ((n = masq_gso_next(&g, seg, sizeof(seg))) > 0) {
    uint8_t *ip;
    check(masq_gso_next_inplace(&g2, &ip) == n);
    check(memcmp(ip, seg, n) == 0);
    check(n <= max && n >= g.hlen);
    check_segment(seg, n, &g);
    check(memcmp(seg + g.hlen, pkt + g.hlen + got, n - g.hlen) == 0);
    got += n - g.hlen;
    push(&in, seg, n);
  }
  uint8_t *ip;
  check(masq_gso_next_inplace(&g2, &ip) == 0);
  check(got == payload && in.n == count);
  /* The copying iterator left the super-packet as it was. */
  check(memcmp(sp, pkt, len) == 0);

  /* Round trip through the coalescer. */
  out.n = 0;
  masq_gro_init(&gro, mem, expand, NULL);
  for (size_t i = 0; i < in.n; i++)
    masq_gro_add(&gro, in.flat + in.off[i], in.off[i + 1] - in.off[i]);
  masq_gro_flush(&gro);
  check(out.n == in.n && out.off[out.n] == in.off[in.n]);
  check(memcmp(out.flat, in.flat, in.off[in.n]) == 0);
  return 0;
}
