/* QUIC variable-length integers (RFC 9000 §16), used by HTTP/3 datagrams
 * and capsules. */
#ifndef MASQ_PROTO_VARINT_H
#define MASQ_PROTO_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* Bytes needed to encode v: 1, 2, 4 or 8; 0 if v > MASQ_VARINT_MAX. */
size_t masq_varint_len(uint64_t v);

/* Writes v (<= MASQ_VARINT_MAX) in its shortest form at p, which must have
 * masq_varint_len(v) bytes. Returns the byte after the last one written
 * (p itself, with nothing written, if v is too large). */
uint8_t *masq_varint_encode(uint8_t *p, uint64_t v);

/* Reads one varint from p[0..len). Returns the bytes it used (1..8) and
 * stores the value in *v, or 0 if len is too short to hold it. Non-minimal
 * encodings are accepted, as RFC 9000 §16 allows. */
size_t masq_varint_decode(const uint8_t *p, size_t len, uint64_t *v);

#endif
