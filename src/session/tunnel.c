/* MASQUE tunnels over a request stream: HTTP Datagrams in QUIC DATAGRAM
 * frames (RFC 9297 §2.1), DATAGRAM capsules on the stream (RFC 9297
 * §3.5), and the Context ID of RFC 9298 §4 / RFC 9484 §6. */
#include <string.h>

#include "proto/capsule.h"
#include "proto/h3dgram.h"
#include "proto/wire.h"
#include "session/internal.h"

/* Delivers one UDP payload (Context ID already known to be 0). */
static void deliver(masq_conn *c, masq_stream *s, const uint8_t *p, size_t n) {
  c->stats.dgram_rx++;
  if (c->cb.on_datagram) c->cb.on_datagram(c, c->ud, s->id, s->sud, p, n);
}

/* Parses the Context ID and hands on a context-0 payload. Returns 0, or -1
 * after aborting the stream for a malformed payload. */
static int on_payload(masq_conn *c, masq_stream *s, const uint8_t *p, size_t n) {
  uint64_t ctx;
  size_t off;
  const char *err;
  if (masq_context_decode(p, n, &ctx, &off, &err) != 0) {
    /* An HTTP Datagram too short to hold a Context ID cannot be a valid
     * CONNECT-UDP payload; treat it like RFC 9298 §5's oversize case. */
    masq_conn_reset_stream(c, s->id, MASQ_H3_DATAGRAM_ERROR);
    return -1;
  }
  if (ctx != MASQ_CONTEXT_ID_UDP) {
    c->stats.drop_unknown_context++; /* RFC 9298 §4: drop unregistered */
    return 0;
  }
  if (!s->ip && n - off > MASQ_UDP_PAYLOAD_MAX) { /* RFC 9298 §5: MUST abort */
    masq_conn_reset_stream(c, s->id, MASQ_H3_DATAGRAM_ERROR);
    return -1;
  }
  if (!s->tunnel) {
    c->stats.drop_unknown_stream++; /* before the 2xx, or after close */
    return 0;
  }
  deliver(c, s, p + off, n - off);
  return 0;
}

int masq_tunnel_on_quic_datagram(masq_conn *c, const uint8_t *p, size_t n) {
  int64_t sid;
  size_t off;
  const char *err;
  if (masq_h3dgram_decode(p, n, &sid, &off, &err) != 0) {
    /* RFC 9297 §2.1: a missing or oversized Quarter Stream ID is a
     * connection error. */
    masq_conn_fail(c, "malformed HTTP/3 datagram: %s", err);
    masq_conn_set_app_error(c, MASQ_H3_DATAGRAM_ERROR);
    return -1;
  }
  masq_stream *s = masq_stream_get(c, sid);
  if (!s) {
    /* Not open (yet or any more): RFC 9297 §2.1 lets us drop it. */
    c->stats.drop_unknown_stream++;
    return 0;
  }
  if (c->is_server && !s->responded) {
    c->stats.drop_unknown_stream++;
    return 0;
  }
  on_payload(c, s, p + off, n - off);
  return 0;
}

/* ---- capsules on the stream ------------------------------------------ */

/* Parser callback results beyond the capsule parser's own: stop parsing
 * (the stream was reset already, or must be with H3_EXCESSIVE_LOAD). */
#define STOP_RESET (-100)
#define STOP_TOO_BIG (-101)

static int is_ip_capsule(uint64_t type) {
  return type == MASQ_CAPSULE_ADDRESS_ASSIGN || type == MASQ_CAPSULE_ADDRESS_REQUEST ||
         type == MASQ_CAPSULE_ROUTE_ADVERTISEMENT;
}

static int on_capsule_begin(void *user, uint64_t type, uint64_t len) {
  masq_stream *s = user;
  masq_conn *c = s->parser_conn;
  if (is_ip_capsule(type) && c->cb.on_capsule) {
    /* Dropping one would leave the two ends disagreeing on addresses
     * or routes, so a capsule too big to hold ends the stream. */
    return len > MASQ_CAPSULE_BUF ? STOP_TOO_BIG : MASQ_CAPSULE_DELIVER;
  }
  if (type != MASQ_CAPSULE_DATAGRAM) {
    c->stats.capsules_skipped++; /* RFC 9297 §3.2: ignore unknown types */
    return MASQ_CAPSULE_SKIP;
  }
  if (len > MASQ_CAPSULE_BUF) {
    /* RFC 9298 §5: discard an unsendable payload without buffering. */
    c->stats.drop_capsule_too_big++;
    return MASQ_CAPSULE_SKIP;
  }
  return MASQ_CAPSULE_DELIVER;
}

static int on_capsule(void *user, uint64_t type, const uint8_t *p, size_t n) {
  masq_stream *s = user;
  masq_conn *c = s->parser_conn;
  if (type != MASQ_CAPSULE_DATAGRAM) {
    if (c->cb.on_capsule(c, c->ud, s->id, s->sud, type, p, n) == 0) return 0;
    /* RFC 9484 §4.7 defers to RFC 9297 §3.3: a malformed message, which
     * RFC 9114 §4.1.2 answers with H3_MESSAGE_ERROR. */
    masq_conn_reset_stream(c, s->id, MASQ_H3_MESSAGE_ERROR);
    return STOP_RESET;
  }
  c->stats.capsule_dgram_rx++;
  if (s->ip) return 0; /* masq never sends IP in capsules; take none */
  return on_payload(c, s, p, n) == 0 ? 0 : STOP_RESET;
}

static const masq_capsule_callbacks capsule_cb = {on_capsule_begin, on_capsule};

void masq_tunnel_init_parser(masq_conn *c, masq_stream *s) {
  s->parser_conn = c;
  masq_capsule_parser_init(&s->parser, &capsule_cb, s, s->pbuf, sizeof(s->pbuf));
}

int masq_tunnel_on_body(masq_conn *c, masq_stream *s, const uint8_t *p, size_t n) {
  int rv = masq_capsule_parser_feed(&s->parser, p, n);
  if (rv == 0) return 0;
  s->capsules = 0;
  if (rv == STOP_TOO_BIG) {
    masq_conn_reset_stream(c, s->id, MASQ_H3_EXCESSIVE_LOAD);
  } else if (rv != STOP_RESET) {
    /* RFC 9297 §3.3: a capsule error makes the message malformed, which
     * RFC 9114 §4.1.2 answers with H3_MESSAGE_ERROR on the stream. */
    masq_conn_reset_stream(c, s->id, MASQ_H3_MESSAGE_ERROR);
  }
  return -1;
}

int masq_tunnel_on_end(masq_conn *c, masq_stream *s) {
  if (masq_capsule_parser_finish(&s->parser) == 0) return 0;
  s->capsules = 0;
  masq_conn_reset_stream(c, s->id, MASQ_H3_MESSAGE_ERROR); /* RFC 9297 §3.3 */
  return -1;
}

/* ---- sending ---------------------------------------------------------- */

static int send_capsule(masq_conn *c, masq_stream *s, const uint8_t *p, size_t n) {
  uint8_t hdr[32];
  size_t plen = n + 1; /* Context ID 0 is one byte */
  size_t hl = masq_capsule_header_encode(hdr, MASQ_CAPSULE_DATAGRAM, plen);
  hdr[hl++] = MASQ_CONTEXT_ID_UDP;
  if (hl + n > masq_sbuf_room(&s->sbuf)) {
    c->stats.drop_queue_full++;
    return MASQ_SESS_ERR_QUEUE_FULL;
  }
  int rv = masq_stream_write(c, s, hdr, hl, 0);
  if (rv == 0) rv = masq_stream_write(c, s, p, n, 0);
  if (rv == 0) {
    c->stats.capsule_dgram_tx++;
    c->stats.dgram_tx++;
  }
  return rv;
}

int masq_conn_send_capsule(masq_conn *c, int64_t sid, uint64_t type, const uint8_t *p,
                           size_t n) {
  masq_stream *s = masq_stream_get(c, sid);
  if (!s || !s->has_body) return MASQ_SESS_ERR_STREAM;
  uint8_t hdr[16];
  size_t hl = masq_capsule_header_encode(hdr, type, n);
  /* All or nothing: half a capsule would corrupt the stream. */
  if (hl + n > masq_sbuf_room(&s->sbuf)) return MASQ_SESS_ERR_QUEUE_FULL;
  int rv = masq_stream_write(c, s, hdr, hl, 0);
  if (rv == 0 && n) rv = masq_stream_write(c, s, p, n, 0);
  return rv;
}

int masq_conn_stream_set_ip(masq_conn *c, int64_t sid) {
  masq_stream *s = masq_stream_get(c, sid);
  if (!s) return MASQ_SESS_ERR_STREAM;
  s->ip = 1;
  return 0;
}

int masq_conn_peer_datagrams(masq_conn *c) { return masq_conn_datagrams_enabled(c); }

int masq_conn_send_datagram(masq_conn *c, int64_t sid, const uint8_t *p, size_t n) {
  masq_stream *s = masq_stream_get(c, sid);
  if (!s || !s->tunnel) return MASQ_SESS_ERR_STREAM;
  if (s->ip) {
    if (!masq_conn_datagrams_enabled(c)) return MASQ_SESS_ERR_STREAM;
    return masq_conn_queue_datagram(c, sid, p, n);
  }
  if (n > MASQ_UDP_PAYLOAD_MAX) { /* RFC 9298 §5: MUST NOT send */
    c->stats.drop_too_big++;
    return MASQ_SESS_ERR_TOO_BIG;
  }
  /* RFC 9298 §5: a payload too big for a QUIC DATAGRAM is dropped rather
   * than moved to a capsule, so only a peer without HTTP/3 datagrams
   * gets capsules. */
  if (!masq_conn_datagrams_enabled(c)) return send_capsule(c, s, p, n);
  return masq_conn_queue_datagram(c, sid, p, n);
}
