/* HTTP/3 Datagrams (RFC 9297 §2.1) and the CONNECT-UDP / CONNECT-IP
 * payload prefix (RFC 9298 §5, RFC 9484 §6): a Quarter Stream ID, then a
 * Context ID, then the payload. One-shot decoders in h2o's style: they
 * return 0 or -1 and, on failure, a static reason for rate-limited logs. */
#ifndef MASQ_PROTO_H3DGRAM_H
#define MASQ_PROTO_H3DGRAM_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the Quarter Stream ID that starts a QUIC DATAGRAM frame payload.
 * On success stores the request stream ID (qsid * 4) and the offset of
 * what follows. Fails (H3_DATAGRAM_ERROR territory, RFC 9297 §2.1) if the
 * field is missing/truncated or larger than 2^60-1; outputs are then left
 * untouched. err may be NULL (here and in masq_context_decode). */
int masq_h3dgram_decode(const uint8_t *p, size_t len, int64_t *stream_id, size_t *off,
                        const char **err);

/* Decodes the Context ID at the start of an HTTP Datagram payload (after
 * the Quarter Stream ID, or the payload of a DATAGRAM capsule). Fails if
 * truncated. */
int masq_context_decode(const uint8_t *p, size_t len, uint64_t *context_id, size_t *off,
                        const char **err);

/* Bytes of Quarter Stream ID + Context ID prefix for this stream/context;
 * 0 if stream_id is not a client-initiated bidirectional stream ID (see
 * below) or context_id exceeds MASQ_VARINT_MAX. */
size_t masq_h3dgram_prefix_len(int64_t stream_id, uint64_t context_id);

/* Writes Quarter Stream ID (stream_id / 4) and Context ID at dst; returns
 * bytes written. stream_id must be a client-initiated bidirectional
 * stream (0 <= stream_id <= 2^62-1, stream_id % 4 == 0); otherwise
 * nothing is written and it returns 0. */
size_t masq_h3dgram_prefix_encode(uint8_t *dst, int64_t stream_id, uint64_t context_id);

#endif
