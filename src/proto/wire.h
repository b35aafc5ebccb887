/* Every codepoint and limit masq puts on or reads off the wire, each with
 * the section that defines it. Nothing here does I/O. */
#ifndef MASQ_PROTO_WIRE_H
#define MASQ_PROTO_WIRE_H

#include <stdint.h>

/* RFC 9000 §16: largest value a variable-length integer can hold. */
#define MASQ_VARINT_MAX ((UINT64_C(1) << 62) - 1)

/* RFC 9297 §2.1: Quarter Stream ID is stream ID / 4 and at most 2^60-1. */
#define MASQ_QSID_MAX ((UINT64_C(1) << 60) - 1)

/* RFC 9297 §3.5: the DATAGRAM capsule type. */
#define MASQ_CAPSULE_DATAGRAM 0x00
/* RFC 9484 §4.7: CONNECT-IP capsules. */
#define MASQ_CAPSULE_ADDRESS_ASSIGN 0x01
#define MASQ_CAPSULE_ADDRESS_REQUEST 0x02
#define MASQ_CAPSULE_ROUTE_ADVERTISEMENT 0x03

/* RFC 9297 §2.1.1 / §5.1: HTTP/3 setting and error code. */
#define MASQ_H3_SETTINGS_H3_DATAGRAM 0x33
#define MASQ_H3_DATAGRAM_ERROR 0x33
/* RFC 9220 §3 (RFC 8441 §3): SETTINGS_ENABLE_CONNECT_PROTOCOL. */
#define MASQ_H3_SETTINGS_ENABLE_CONNECT_PROTOCOL 0x08

/* RFC 9114 §8.1: HTTP/3 error codes masq sends. */
#define MASQ_H3_NO_ERROR 0x0100
#define MASQ_H3_GENERAL_PROTOCOL_ERROR 0x0101
#define MASQ_H3_INTERNAL_ERROR 0x0102
#define MASQ_H3_EXCESSIVE_LOAD 0x0107
#define MASQ_H3_REQUEST_REJECTED 0x010b
#define MASQ_H3_REQUEST_CANCELLED 0x010c
#define MASQ_H3_REQUEST_INCOMPLETE 0x010d
#define MASQ_H3_MESSAGE_ERROR 0x010e
#define MASQ_H3_CONNECT_ERROR 0x010f

/* RFC 9298 §4: the only Context ID this version of CONNECT-UDP defines;
 * its payload is a whole UDP payload. */
#define MASQ_CONTEXT_ID_UDP 0

/* RFC 9298 §2 / RFC 9484 §3: upgrade tokens and the default templates
 * (the well-known URI of RFC 9298 §2 and RFC 9484 §4.1). */
#define MASQ_PROTO_CONNECT_UDP "connect-udp"
#define MASQ_PROTO_CONNECT_IP "connect-ip"
#define MASQ_DEFAULT_UDP_TEMPLATE \
  "https://{proxy}/.well-known/masque/udp/{target_host}/{target_port}/"
#define MASQ_DEFAULT_IP_TEMPLATE \
  "https://{proxy}/.well-known/masque/ip/{target}/{ipproto}/"

/* RFC 9000 §14: every QUIC endpoint must handle 1200-byte UDP payloads. */
#define MASQ_QUIC_MIN_UDP_PAYLOAD 1200
/* Largest UDP payload masq sends on the outer path: a 1500-byte MTU less
 * 40 bytes of IPv6 and 8 of UDP, so it fits IPv4 and IPv6 paths alike. */
#define MASQ_OUTER_UDP_PAYLOAD 1452
/* Largest UDP payload (inner) masq can receive from a target: RFC 768
 * caps it at 65527 for IPv4; the datagram is then dropped if it does not
 * fit one QUIC packet. */
#define MASQ_UDP_PAYLOAD_MAX 65527

/* masq's own bounds (not protocol limits). */
#define MASQ_MAX_HEADER_VALUE 2048 /* longest header value kept */
#define MASQ_MAX_HOST 255          /* RFC 1035 §2.3.4 name length */
#define MASQ_MAX_CAPSULE 65535     /* largest capsule payload buffered */

#endif
