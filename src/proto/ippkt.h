/* Tunnelled IP packets (RFC 9484 §6: a Context ID 0 payload is "a full IP
 * packet"): header parsing for scoping and policy, ICMP error generation
 * for refused packets (RFC 9484 §7.2.1) and the Internet checksum.
 *
 * No I/O, clock or allocation: callers own every buffer. Parsers write
 * their outputs only on success and, on failure, hand back a static
 * reason suitable for rate-limited logs (err may be NULL). */
#ifndef MASQ_PROTO_IPPKT_H
#define MASQ_PROTO_IPPKT_H

#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"

/* IANA "Assigned Internet Protocol Numbers" used here. */
#define MASQ_IPPROTO_HOPOPTS 0   /* RFC 8200 §4.3 */
#define MASQ_IPPROTO_ICMP 1      /* RFC 792 */
#define MASQ_IPPROTO_TCP 6       /* RFC 9293 */
#define MASQ_IPPROTO_UDP 17      /* RFC 768 */
#define MASQ_IPPROTO_ROUTING 43  /* RFC 8200 §4.4 */
#define MASQ_IPPROTO_FRAGMENT 44 /* RFC 8200 §4.5 */
#define MASQ_IPPROTO_ESP 50      /* RFC 4303 */
#define MASQ_IPPROTO_AH 51       /* RFC 4302 */
#define MASQ_IPPROTO_ICMPV6 58   /* RFC 4443 */
#define MASQ_IPPROTO_NONE 59     /* RFC 8200 §4.7 */
#define MASQ_IPPROTO_DSTOPTS 60  /* RFC 8200 §4.6 */

#define MASQ_IPV4_HDR_LEN 20 /* RFC 791 §3.1, without options */
#define MASQ_IPV6_HDR_LEN 40 /* RFC 8200 §3 */
#define MASQ_ICMP_HDR_LEN 8  /* type, code, checksum, 4 more octets */
#define MASQ_IPV4_MIN_MTU 68   /* RFC 791 §3.1: every module forwards 68 */
#define MASQ_IPV6_MIN_MTU 1280 /* RFC 8200 §5 */
/* Largest ICMP error masq builds: 576 octets for IPv4 (RFC 1812
 * §4.3.2.3), the IPv6 minimum MTU for IPv6 (RFC 4443 §2.4(c)). A buffer
 * of MASQ_ICMP_ERROR_MAX always suffices for masq_icmp_error_build. */
#define MASQ_ICMP4_ERROR_MAX 576
#define MASQ_ICMP6_ERROR_MAX 1280
#define MASQ_ICMP_ERROR_MAX 1280
/* Default TTL / Hop Limit of errors masq originates (IANA's default
 * TTL, RFC 1700; RFC 9484 §7.2: hop count rules do not apply to packets
 * the endpoint generates itself). */
#define MASQ_ICMP_ERROR_TTL 64

/* What masq_ippkt_parse learned about one packet. */
typedef struct masq_ippkt {
  masq_ip src, dst;
  uint8_t version; /* 4 or 6 */
  uint8_t ttl;     /* IPv4 Time to Live or IPv6 Hop Limit */
  uint8_t dscp;    /* RFC 2474 §3: upper 6 bits of TOS / Traffic Class */
  uint8_t ecn;     /* RFC 3168 §5: lower 2 bits */
  /* Upper-layer protocol: for IPv4 the Protocol field; for IPv6 the first
   * Next Header after Hop-by-Hop, Routing, Fragment, Destination Options
   * and AH headers, i.e. RFC 9484 §4.8's "outermost non-extension
   * Internet Protocol Number". ESP (50) and No Next Header (59) end the
   * walk and are reported as such. In a non-first fragment it is the
   * Fragment header's Next Header (RFC 8200 §4.5), the best available. */
  uint8_t proto;
  uint8_t df;           /* IPv4 Don't Fragment flag; 0 for IPv6 */
  uint8_t fragment;     /* part of a fragmented datagram (MF/M or offset) */
  uint8_t nonfirst;     /* fragment offset != 0: no upper-layer header */
  uint8_t has_ports;    /* TCP/UDP header present: sport/dport valid */
  uint8_t has_icmp;     /* ICMP(v6) header present: icmp_type/code valid */
  uint8_t icmp_type, icmp_code;
  uint16_t sport, dport;
  size_t l4_off; /* offset of the upper-layer header (or fragment data) */
  size_t len;    /* IP-declared packet length; <= the input length */
} masq_ippkt;

/* Parses the IP packet p[0..len) (RFC 9484 §6, Context ID 0 payload).
 * Bytes after the IP-declared length are ignored (out->len says where the
 * packet ends; forward only that much). Returns 0, or -1 with *err set
 * (if err is non-NULL) and *out untouched. The errors:
 *  - empty input, or version neither 4 nor 6;
 *  - IPv4 (RFC 791 §3.1): fewer than 20 octets, IHL < 5, IHL*4 beyond
 *    the input, Total Length < IHL*4 or beyond the input;
 *  - IPv6 (RFC 8200 §3): fewer than 40 octets, 40 + Payload Length beyond
 *    the input (so jumbograms, RFC 2675, are refused: their Hop-by-Hop
 *    header sits outside a zero Payload Length);
 *  - IPv6 extension headers (RFC 8200 §4): Hop-by-Hop not directly after
 *    the IPv6 header (§4.1); any header running past the payload;
 *  - fragments: MF / M set with data not a multiple of 8 octets (RFC 791
 *    §3.2, RFC 8200 §4.5); a fragment reaching past 65535 octets once
 *    reassembled (RFC 791 §3.1 Total Length, RFC 8200 §4.5); an IPv4 TCP
 *    fragment at offset 8 (RFC 1858 §3.2: it rewrites a judged header);
 *    a first fragment (MF / M set, offset 0) without the whole TCP (20),
 *    UDP (8) or ICMP (4) header (RFC 8200 §4.5 and RFC 7112 §5 require
 *    the header chain through the upper-layer header in the first
 *    fragment; RFC 1858 §3.1 likewise for IPv4 tiny fragments), so port
 *    filters cannot be dodged by splitting a header.
 * An unfragmented packet with a short TCP/UDP/ICMP header still parses,
 * with has_ports / has_icmp left 0: it is malformed for its receiver, not
 * for the IP layer. The IPv4 header checksum is not verified (the kernel
 * checks it when the packet enters the TUN device, RFC 1812 §5.2.2).
 * IPv6 Mobility (135), HIP (139), Shim6 (140) and experimental (253, 254)
 * headers are reported as the protocol, like Linux's ipv6_ext_hdr(): their
 * Next Header is normally 59, so walking them would report nothing
 * useful. */
int masq_ippkt_parse(const uint8_t *p, size_t len, masq_ippkt *out, const char **err);

/* ICMP errors masq_icmp_error_build can send (RFC 9484 §7.2.1 lists the
 * ICMPv6 ones; the ICMPv4 code is the closest RFC 792 / RFC 1812 one). */
enum {
  /* ICMPv6 2/0 with the MTU (RFC 4443 §3.2); ICMPv4 3/4 "fragmentation
   * needed and DF set" with the next-hop MTU (RFC 1191 §4). */
  MASQ_ICMP_PACKET_TOO_BIG = 1,
  /* ICMPv6 1/1 "communication with destination administratively
   * prohibited" (RFC 4443 §3.1); ICMPv4 3/13 "communication
   * administratively prohibited" (RFC 1812 §5.2.7.1). */
  MASQ_ICMP_DEST_UNREACH_ADMIN = 2,
  /* ICMPv6 1/5 "source address failed ingress/egress policy" (RFC 4443
   * §3.1; RFC 9484 §7.2.1's choice for invalid source addresses); ICMPv4
   * has no such code, so 3/13 as above. */
  MASQ_ICMP_SOURCE_ADDR_FAILED = 3,
  /* ICMPv6 1/0 "no route to destination" (RFC 4443 §3.1); ICMPv4 3/0
   * "network unreachable" (RFC 1812 §5.2.7.1). */
  MASQ_ICMP_NO_ROUTE = 4,
};

/* 1 if the rules on when not to send ICMP errors let one of this kind
 * answer pkt, else 0. Refused (RFC 4443 §2.4(e) for IPv6, RFC 1812
 * §4.3.2.7 / RFC 1122 §3.2.2 for IPv4):
 *  - an ICMP error message: ICMPv6 types < 128 (RFC 4443 §2.1) and
 *    Redirect 137 (§2.4(e.2)); ICMPv4 every type but the queries 0, 8,
 *    9, 10, 13-18, 42 and 43 (unknown types count as errors, as in
 *    Linux, since their class cannot be known); an ICMP packet whose
 *    type is not present;
 *  - a destination that is multicast (224.0.0.0/4, ff00::/8) or the IPv4
 *    limited broadcast 255.255.255.255 -- except Packet Too Big to an IPv6
 *    multicast destination, which RFC 4443 §2.4(e.3) allows "to allow
 *    Path MTU discovery to work for IPv6 multicast". Directed broadcasts
 *    cannot be recognised here: callers that know their subnets check;
 *  - a source that is not one host: IPv4 0.0.0.0/8, 127.0.0.0/8,
 *    224.0.0.0/4, 240.0.0.0/4 (RFC 1812 §5.3.7); IPv6 ::, ::1 (RFC 4291
 *    §2.5.3: never a source off-node) and ff00::/8 (RFC 4443 §2.4(e.6));
 *  - a non-first fragment. RFC 1812 §4.3.2.7 forbids it for IPv4; for
 *    IPv6 it is masq's choice: the upper-layer header (so whether it is
 *    an ICMPv6 error, §2.4(e.1)) cannot be seen, and the first fragment,
 *    never smaller than later ones, gets the error anyway.
 * Callers MUST also rate-limit errors per source (RFC 4443 §2.4(f),
 * RFC 1812 §4.3.2.8); that needs a clock, so it is not done here. */
int masq_icmp_error_allowed(const masq_ippkt *pkt, int kind);

/* Builds in dst[0..cap) the ICMP error of `kind` answering the packet
 * orig[0..origlen), sent from `from` (a unicast address of this proxy, as
 * RFC 4443 §2.2 asks, of orig's family) to orig's source. mtu is used
 * only by MASQ_ICMP_PACKET_TOO_BIG: 1280..2^32-1 for IPv6 (RFC 8200 §5:
 * no link is smaller, RFC 9484 §10.1), 68..65535 for IPv4 (RFC 791 §3.1;
 * the field is 16 bits, RFC 1191 §4). For IPv4 the caller should send it
 * only for datagrams with DF set (masq_ippkt.df) and fragment the others.
 *
 * The error: IPv4 header (IHL 5, TOS 0xc0 = precedence 6 as RFC 1812
 * §4.3.2.5 asks, ID 0 with DF set -- an atomic datagram, RFC 6864 §4.1 --
 * TTL 64, header checksum) or IPv6 header (Traffic Class 0, Flow Label 0,
 * Hop Limit 64); then the 8-octet ICMP header (checksum per RFC 792; for
 * ICMPv6 over the RFC 8200 §8.1 pseudo-header); then as much of orig
 * (up to its IP-declared length) as fits in 576 octets for IPv4 (RFC 1812
 * §4.3.2.3; always at least the header + 8 octets RFC 792 asks for) or
 * 1280 for IPv6 (RFC 4443 §2.4(c)).
 *
 * Returns the error's length, or 0 (dst unspecified) if: kind is unknown;
 * orig does not parse (masq_ippkt_parse); from is NULL, of the other
 * family, or not a single host's address (as in masq_icmp_error_allowed);
 * mtu is out of range for Packet Too Big; masq_icmp_error_allowed says no;
 * or cap is smaller than the error (MASQ_ICMP_ERROR_MAX always fits).
 * dst may overlap orig (e.g. build in place in the refused packet's
 * buffer, if that holds MASQ_ICMP_ERROR_MAX octets). */
size_t masq_icmp_error_build(uint8_t *dst, size_t cap, const uint8_t *orig, size_t origlen,
                             const masq_ip *from, int kind, uint32_t mtu);

/* Internet checksum (RFC 1071), on 16-bit big-endian words.
 *
 * masq_csum_partial adds p[0..len) to a running sum and returns it folded
 * to 0..0xffff; an odd length is padded with a zero octet, so only the
 * last piece of a chain may be odd. Start from 0 (or a pseudo-header sum).
 * masq_csum_finish turns a running sum into the field value (its ones'
 * complement). Verification: a region holding a correct checksum sums to
 * 0xffff, i.e. masq_csum_finish(...) == 0.
 * Values are host integers for the big-endian field: store hi, then lo. */
uint32_t masq_csum_partial(const uint8_t *p, size_t len, uint32_t sum);
uint16_t masq_csum_finish(uint32_t sum);
/* The checksum of p[0..len) alone, e.g. the IPv4 header (RFC 791 §3.1)
 * or an ICMPv4 message (RFC 792). */
uint16_t masq_inet_checksum(const uint8_t *p, size_t len);

/* Sum of the pseudo-header for an upper-layer checksum: IPv4 (RFC 768,
 * RFC 9293 §3.1) source, destination, zero, protocol, 16-bit length; IPv6
 * (RFC 8200 §8.1) source, destination, 32-bit length, 3 zero octets, Next
 * Header. src's family decides; src and dst must share it, and for IPv4
 * len must be <= 65535. Returns 0 for a family that is neither 4 nor 6. */
uint32_t masq_pseudo_header_sum(const masq_ip *src, const masq_ip *dst, uint8_t proto,
                                uint32_t len);

/* Checksum field value for the upper-layer message p[0..len) of protocol
 * proto (TCP, UDP, ICMPv6...), pseudo-header included; the checksum field
 * inside p must be zero when building. For UDP a computed 0 is returned
 * as 0xffff (RFC 768; RFC 8200 §8.1), since 0 means "no checksum". */
uint16_t masq_l4_checksum(const masq_ip *src, const masq_ip *dst, uint8_t proto,
                          const uint8_t *p, size_t len);

#endif
