/* HTTP/3 Datagram prefix (RFC 9297 §2.1) and Context ID (RFC 9298 §5).
 * Outputs are written only on success, so a caller's variables are never
 * left half-updated by a malformed datagram. */
#include "proto/h3dgram.h"

#include "proto/varint.h"
#include "proto/wire.h"

int masq_h3dgram_decode(const uint8_t *p, size_t len, int64_t *stream_id, size_t *off,
                        const char **err) {
  uint64_t qsid;
  size_t n = masq_varint_decode(p, len, &qsid);
  /* RFC 9297 §2.1: too short to hold the Quarter Stream ID is an
   * H3_DATAGRAM_ERROR; the caller decides how to react. */
  if (n == 0) {
    if (err) *err = len == 0 ? "empty HTTP/3 datagram" : "truncated quarter stream ID";
    return -1;
  }
  /* Stream IDs stop at 2^62-1, so a larger quarter cannot name a stream. */
  if (qsid > MASQ_QSID_MAX) {
    if (err) *err = "quarter stream ID above 2^60-1";
    return -1;
  }
  *stream_id = (int64_t)(qsid * 4);
  *off = n;
  return 0;
}

int masq_context_decode(const uint8_t *p, size_t len, uint64_t *context_id, size_t *off,
                        const char **err) {
  uint64_t id;
  size_t n = masq_varint_decode(p, len, &id);
  /* Every varint value is a legal Context ID (0..2^62-1), so only a
   * missing or cut field is an error. */
  if (n == 0) {
    if (err) *err = len == 0 ? "missing context ID" : "truncated context ID";
    return -1;
  }
  *context_id = id;
  *off = n;
  return 0;
}

/* HTTP requests only run on client-initiated bidirectional streams, whose
 * IDs are multiples of 4 (RFC 9000 §2.1); nothing else has a quarter. */
static int stream_ok(int64_t stream_id) {
  return stream_id >= 0 && (uint64_t)stream_id <= MASQ_VARINT_MAX && stream_id % 4 == 0;
}

size_t masq_h3dgram_prefix_len(int64_t stream_id, uint64_t context_id) {
  size_t clen = masq_varint_len(context_id);
  if (!stream_ok(stream_id) || clen == 0) return 0;
  return masq_varint_len((uint64_t)stream_id / 4) + clen;
}

size_t masq_h3dgram_prefix_encode(uint8_t *dst, int64_t stream_id, uint64_t context_id) {
  if (masq_h3dgram_prefix_len(stream_id, context_id) == 0) return 0;
  uint8_t *q = masq_varint_encode(dst, (uint64_t)stream_id / 4);
  q = masq_varint_encode(q, context_id);
  return (size_t)(q - dst);
}
