/* Capsule Protocol parser and encoder (RFC 9297 §3.2).
 *
 * The parser is a two-state machine fed from a stream: HEADER collects
 * the Type and Length varints (at most 8 + 8 bytes, so they may straddle
 * any number of feed calls), PAYLOAD then either streams the value past
 * (SKIP) or hands it to on_capsule (DELIVER). Only a DELIVER payload that
 * arrives in pieces is copied; one that lies whole inside a single feed
 * is passed straight from the caller's data. */
#include "proto/capsule.h"

#include <string.h>

#include "proto/varint.h"

enum { ST_HEADER = 0, ST_PAYLOAD = 1, ST_FAILED = 2 };

void masq_capsule_parser_init(masq_capsule_parser *p, const masq_capsule_callbacks *cb,
                              void *user, uint8_t *buf, size_t cap) {
  memset(p, 0, sizeof(*p));
  p->cb = cb;
  p->user = user;
  p->buf = buf;
  p->cap = cap;
  p->state = ST_HEADER;
}

/* Records the error so every later call reports MASQ_CAPSULE_ERR_FAILED:
 * after a bad capsule the stream position is unknown and cannot recover. */
static int fail(masq_capsule_parser *p, int err) {
  p->state = ST_FAILED;
  p->err = err;
  return err;
}

static size_t varint_prefix_len(uint8_t first) { return (size_t)1 << (first >> 6); }

/* Header bytes needed as far as the bytes held so far tell: the first
 * byte of each varint fixes its length. Equals hdrlen once whole. */
static size_t header_need(const masq_capsule_parser *p) {
  if (p->hdrlen == 0) return 1;
  size_t tl = varint_prefix_len(p->hdr[0]);
  if (p->hdrlen <= tl) return tl + 1;
  return tl + varint_prefix_len(p->hdr[tl]);
}

/* Moves header bytes from the input into hdr, never past the header's
 * end. Returns 1 once the header is whole, 0 if the input ran out. */
static int header_take(masq_capsule_parser *p, const uint8_t **data, size_t *len) {
  size_t need;
  while ((need = header_need(p)) != p->hdrlen) {
    if (*len == 0) return 0;
    size_t n = need - p->hdrlen;
    if (n > *len) n = *len;
    memcpy(p->hdr + p->hdrlen, *data, n);
    p->hdrlen += n;
    *data += n;
    *len -= n;
  }
  return 1;
}

/* A capsule has been fully handled; the next byte starts a new header. */
static void next_capsule(masq_capsule_parser *p) {
  p->state = ST_HEADER;
  p->hdrlen = 0;
}

/* Calls on_capsule for a whole DELIVER payload and moves to the next
 * capsule. Positive returns mean nothing and are ignored. */
static int deliver(masq_capsule_parser *p, const uint8_t *payload) {
  next_capsule(p);
  int rc = p->cb->on_capsule(p->user, p->type, payload, (size_t)p->len);
  return rc < 0 ? fail(p, rc) : 0;
}

/* The header is whole: decode it, ask the caller what to do, and finish
 * zero-length capsules at once since no payload byte will trigger them.
 * `at` is where the payload starts, used as the (empty) payload pointer. */
static int header_done(masq_capsule_parser *p, const uint8_t *at) {
  size_t tl = masq_varint_decode(p->hdr, p->hdrlen, &p->type);
  masq_varint_decode(p->hdr + tl, p->hdrlen - tl, &p->len);
  p->done = 0;
  int rc = p->cb->on_begin(p->user, p->type, p->len);
  if (rc < 0) return fail(p, rc);
  p->action = rc == MASQ_CAPSULE_DELIVER ? MASQ_CAPSULE_DELIVER : MASQ_CAPSULE_SKIP;
  /* Refuse before reading any payload so an oversized capsule costs the
   * peer nothing to send and us nothing to hold. */
  if (p->action == MASQ_CAPSULE_DELIVER && p->len > p->cap)
    return fail(p, MASQ_CAPSULE_ERR_TOO_LONG);
  p->state = ST_PAYLOAD;
  if (p->len == 0) {
    if (p->action == MASQ_CAPSULE_DELIVER) return deliver(p, at);
    next_capsule(p);
  }
  return 0;
}

/* Consumes payload bytes of the current capsule from the input. */
static int payload_take(masq_capsule_parser *p, const uint8_t **data, size_t *len) {
  uint64_t left = p->len - p->done;
  size_t n = left < *len ? (size_t)left : *len;
  const uint8_t *src = *data;
  *data += n;
  *len -= n;
  p->done += n;
  if (p->action == MASQ_CAPSULE_DELIVER) {
    /* Whole payload in this feed: no copy. */
    if (n == p->len) return deliver(p, src);
    memcpy(p->buf + (p->done - n), src, n);
    if (p->done == p->len) return deliver(p, p->buf);
  } else if (p->done == p->len) {
    next_capsule(p);
  }
  return 0;
}

int masq_capsule_parser_feed(masq_capsule_parser *p, const uint8_t *data, size_t len) {
  if (p->state == ST_FAILED) return MASQ_CAPSULE_ERR_FAILED;
  while (len > 0) {
    int rc = 0;
    if (p->state == ST_HEADER) {
      if (!header_take(p, &data, &len)) break;
      rc = header_done(p, data);
    } else {
      rc = payload_take(p, &data, &len);
    }
    if (rc < 0) return rc;
  }
  return 0;
}

int masq_capsule_parser_finish(masq_capsule_parser *p) {
  if (p->state == ST_FAILED) return MASQ_CAPSULE_ERR_FAILED;
  /* RFC 9297 §3.3: a FIN inside a capsule makes the message malformed. */
  if (p->state != ST_HEADER || p->hdrlen != 0) return fail(p, MASQ_CAPSULE_ERR_TRUNCATED);
  return 0;
}

size_t masq_capsule_header_len(uint64_t type, uint64_t payload_len) {
  size_t tl = masq_varint_len(type), ll = masq_varint_len(payload_len);
  /* Either field past 2^62-1 cannot be sent at all. */
  if (tl == 0 || ll == 0) return 0;
  return tl + ll;
}

size_t masq_capsule_header_encode(uint8_t *dst, uint64_t type, uint64_t payload_len) {
  if (masq_capsule_header_len(type, payload_len) == 0) return 0;
  uint8_t *q = masq_varint_encode(dst, type);
  q = masq_varint_encode(q, payload_len);
  return (size_t)(q - dst);
}
