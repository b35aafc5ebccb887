/* QUIC variable-length integers, RFC 9000 §16: the two most significant
 * bits of the first byte give the length (1, 2, 4 or 8 bytes), the other
 * bits hold the value in network byte order. */
#include "proto/varint.h"

#include "proto/wire.h"

size_t masq_varint_len(uint64_t v) {
  if (v <= 63) return 1;
  if (v <= 16383) return 2;
  if (v <= (UINT64_C(1) << 30) - 1) return 4;
  if (v <= MASQ_VARINT_MAX) return 8;
  return 0;
}

uint8_t *masq_varint_encode(uint8_t *p, uint64_t v) {
  size_t n = masq_varint_len(v);
  /* An unencodable value writes nothing rather than a truncated varint
   * that would desynchronise the peer's parser. */
  if (n == 0) return p;
  for (size_t i = n; i-- > 0;) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
  /* log2(n) is the 2-bit length prefix: 1->00, 2->01, 4->10, 8->11. */
  static const uint8_t prefix[9] = {0, 0x00, 0x40, 0, 0x80, 0, 0, 0, 0xc0};
  p[0] |= prefix[n];
  return p + n;
}

size_t masq_varint_decode(const uint8_t *p, size_t len, uint64_t *v) {
  if (len == 0) return 0;
  size_t n = (size_t)1 << (p[0] >> 6);
  if (len < n) return 0;
  uint64_t x = p[0] & 0x3f;
  for (size_t i = 1; i < n; i++) x = (x << 8) | p[i];
  *v = x;
  return n;
}
