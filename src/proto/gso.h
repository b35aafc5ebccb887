/* Offloaded packets at the TUN boundary: the virtio-net header that
 * describes them, segmentation of the "super-packets" a TUN with TSO/USO
 * hands over (TCP or UDP, up to 64 KiB), and the reverse, coalescing
 * in-order TCP segments of one flow into one super-packet for a single
 * TUN write (what a NIC's GRO does before the stack sees the packets).
 *
 * Why: without offloads every 1400-byte packet costs one read or write
 * system call, and every write runs the kernel's whole receive path;
 * that was most of CONNECT-IP's CPU time (BENCHMARKS.md). RFC 9484 §11
 * still wants one inner packet per HTTP datagram, so super-packets are
 * cut back into MTU-sized packets before they enter the tunnel and only
 * re-formed on the far side's TUN.
 *
 * Pure code: no I/O, clock or allocation; callers own every buffer. The
 * header is the legacy 10-octet struct virtio_net_hdr
 * (<linux/virtio_net.h>) with little-endian fields (tun.h forces
 * TUNSETVNETLE), so it is decoded octet by octet. */
#ifndef MASQ_PROTO_GSO_H
#define MASQ_PROTO_GSO_H

#include <stddef.h>
#include <stdint.h>

#define MASQ_VNET_HDR_LEN 10

/* virtio_net_hdr.flags (virtio 1.x §5.1.6) */
#define MASQ_VNET_F_NEEDS_CSUM 1 /* checksum from csum_start still to do */
#define MASQ_VNET_F_DATA_VALID 2 /* checksum already verified */
/* virtio_net_hdr.gso_type */
#define MASQ_VNET_GSO_NONE 0
#define MASQ_VNET_GSO_TCPV4 1
#define MASQ_VNET_GSO_UDP 3 /* UFO: IP fragmentation; never enabled by masq */
#define MASQ_VNET_GSO_TCPV6 4
#define MASQ_VNET_GSO_UDP_L4 5 /* USO (Linux 6.2): one UDP datagram per segment */
#define MASQ_VNET_GSO_ECN 0x80 /* the TCP flow uses ECN (CWR on the first segment) */

/* Largest IP packet (IPv4 Total Length, IPv6 Payload Length + 40 is
 * more, but the kernel's TUN GSO limit is 64 KiB) and a buffer for one
 * with its header. */
#define MASQ_GSO_MAX_PKT 65535
#define MASQ_GSO_BUF (MASQ_VNET_HDR_LEN + MASQ_GSO_MAX_PKT)
/* Longest IP + TCP header: a 60-octet IPv4 header (IHL 15) and a
 * 60-octet TCP header (data offset 15). */
#define MASQ_GSO_HDR_MAX 120

typedef struct masq_vnet_hdr {
  uint8_t flags, gso_type;
  uint16_t hdr_len, gso_size, csum_start, csum_offset;
} masq_vnet_hdr;

void masq_vnet_hdr_get(masq_vnet_hdr *h, const uint8_t *p);
void masq_vnet_hdr_put(uint8_t *p, const masq_vnet_hdr *h);

/* RFC 1071 ones' complement sum of p[0..len) added to sum, folded to
 * 0..0xffff: the same value as masq_csum_partial (ippkt.h), but summing
 * 64-bit words (about 10 GB/s against 1.2 here), since it runs over every
 * octet that is segmented. The same rule for odd lengths: only the last
 * piece of a chain may be odd. */
uint32_t masq_gso_csum(const uint8_t *p, size_t len, uint32_t sum);

/* ---- one packet with a partial checksum ---- */

/* Completes the checksum a NEEDS_CSUM packet leaves to the reader: sums
 * pkt[csum_start..len) -- whose checksum field already holds the
 * pseudo-header sum -- and stores the result at csum_start +
 * csum_offset. Returns 0, or -1 (*err set if err is non-NULL, pkt
 * untouched) if the field does not fit inside the packet. Without
 * NEEDS_CSUM it does nothing. */
int masq_vnet_complete_csum(const masq_vnet_hdr *h, uint8_t *pkt, size_t len, const char **err);

/* ---- segmentation ---- */

/* One super-packet being cut into packets of at most gso_size payload
 * octets each, every one a complete IP packet: for TCP (TSO) the IP
 * length, the IPv4 ID (+1 per segment, as the kernel's own TSO does),
 * the sequence number (+ payload offset), FIN and PSH only on the last
 * segment and CWR only on the first (RFC 3168 §6.1.2: once per window),
 * and the checksum; for UDP (USO) a datagram per segment with its own
 * length and checksum. */
typedef struct masq_gso {
  uint8_t *pkt;
  size_t len;     /* of the super-packet */
  size_t l4_off;  /* TCP / UDP header */
  size_t hlen;    /* IP + TCP/UDP headers, repeated in every segment */
  size_t seg;     /* payload octets per segment */
  size_t off;     /* payload octets already emitted */
  uint8_t version, proto;
  unsigned index; /* segments emitted */
  uint8_t tmpl[MASQ_GSO_HDR_MAX]; /* the super-packet's headers */
} masq_gso;

/* Starts segmenting the super-packet pkt[0..len) (IP header first) that
 * h describes; h->gso_type must be TCPV4, TCPV6 or UDP_L4 (with or
 * without the ECN bit). Everything is checked against the packet
 * itself, not the header's advisory hdr_len: the IP version matches the
 * type; IPv4 with a valid IHL, not a fragment; IPv6 with TCP or UDP
 * directly after its header (extension headers would need the pseudo-
 * header's final destination; the kernel's own TSO output has none);
 * the whole TCP header (data offset >= 5) or UDP header; a non-zero
 * gso_size; segments of at most MASQ_GSO_MAX_PKT octets. The IP and
 * UDP length fields of the super-packet are ignored (len is the truth).
 * Returns 0, or -1 with *err (if non-NULL) and *g unspecified. */
int masq_gso_init(masq_gso *g, const masq_vnet_hdr *h, uint8_t *pkt, size_t len,
                  const char **err);

/* Largest packet masq_gso_next produces (headers + gso_size): what a
 * tunnel MTU or Packet Too Big check must compare, not the super-packet. */
size_t masq_gso_seg_max(const masq_gso *g);
/* Packets the super-packet becomes (at least 1). */
size_t masq_gso_count(const masq_gso *g);

/* Writes the next packet into dst[0..cap) and returns its length; 0
 * when all have been produced, or if cap < masq_gso_seg_max(g). dst
 * must not overlap the super-packet, which stays as it was. */
size_t masq_gso_next(masq_gso *g, uint8_t *dst, size_t cap);

/* The same without copying the payload: the next packet is built inside
 * the super-packet's buffer, its headers written over the end of the
 * packet before it (the headers come from a copy taken by
 * masq_gso_init). *out points at it; returns its length, or 0 at the
 * end. Each call destroys the packet the previous one returned, so use
 * (or copy) it first; do not mix with masq_gso_next. */
size_t masq_gso_next_inplace(masq_gso *g, uint8_t **out);

/* ---- coalescing (GRO) ---- */

/* Flows held at once: bulk transfers are few at a time, and each held
 * flow costs a 64 KiB buffer. */
#define MASQ_GRO_FLOWS 8
/* Memory masq_gro_init needs. */
#define MASQ_GRO_MEM ((size_t)MASQ_GRO_FLOWS * MASQ_GSO_BUF)

/* Writes one packet: hdr is its 10-octet virtio-net header, pkt[0..len)
 * the IP packet. Returns 0 or -1; the coalescer only counts failures. */
typedef int (*masq_gro_write_fn)(void *ud, const uint8_t *hdr, const uint8_t *pkt, size_t len);

typedef struct masq_gro_flow {
  uint8_t *buf;       /* MASQ_GSO_BUF octets: the virtio-net header, then the packet */
  size_t len;         /* IP octets held; 0: the slot is free */
  size_t hlen;        /* IP + TCP headers */
  size_t gso_size;    /* payload of the first segment: every one but the last */
  uint32_t next_seq;  /* sequence number the next segment must have */
  unsigned nseg;
  unsigned closed : 1;/* a short or PSH segment ended it */
  uint64_t used;      /* last use, for eviction */
} masq_gro_flow;

typedef struct masq_gro_stats {
  uint64_t in;        /* packets offered */
  uint64_t merged;    /* of those, appended to a held one */
  uint64_t writes;    /* packets or super-packets written */
  uint64_t write_fail;/* of those, failed (the packets they held are lost) */
} masq_gro_stats;

typedef struct masq_gro {
  masq_gro_flow flow[MASQ_GRO_FLOWS];
  uint64_t clock;
  masq_gro_write_fn write;
  void *ud;
  masq_gro_stats stats;
} masq_gro;

/* mem: MASQ_GRO_MEM octets owned by the caller, for as long as g. */
void masq_gro_init(masq_gro *g, uint8_t *mem, masq_gro_write_fn write, void *ud);

/* Offers the IP packet pkt[0..len) (no virtio-net header; len is its IP
 * length). A TCP segment carrying data with ACK and no flags but PSH,
 * over IPv4 without options or fragmentation or IPv6 without extension
 * headers, is copied and held, appended to a held segment of its flow
 * when it continues it exactly: next sequence number; same addresses,
 * ports, TOS / Traffic Class and flow label, TTL / Hop Limit, DF,
 * acknowledgement number and TCP options; payload no larger than the
 * first's; the held one not ended by a shorter or PSH segment; the
 * result within 64 KiB. The window of the newest segment wins. A held
 * flow that cannot take it is written first. Anything else is written
 * at once with a plain header, after the held packets of its TCP flow
 * (so a flow's order is kept; different flows may pass each other, as
 * they may anywhere in a network). Returns what the write returned, or
 * 0 if the packet is held. */
int masq_gro_add(masq_gro *g, const uint8_t *pkt, size_t len);

/* Writes every held flow: one segment as a plain packet, several as a
 * GSO_TCPV4/TCPV6 super-packet with NEEDS_CSUM (the checksum field holds
 * the pseudo-header sum, as the kernel expects). Call it once the batch
 * of packets at hand is done, so holding adds no latency. */
void masq_gro_flush(masq_gro *g);

#endif
