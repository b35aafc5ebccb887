/* HTTP/3 over the QUIC connection with nghttp3: SETTINGS (H3_DATAGRAM and
 * Extended CONNECT), request/response headers, and request stream bodies
 * kept in a bounded ring until acknowledged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wire.h"
#include "session/internal.h"

/* ---- streams --------------------------------------------------------- */

/* Stream lookup for datagrams (by Quarter Stream ID) and the role's
 * calls. Request stream IDs are 4k, so k indexes the buckets. */
static size_t bucket_of(const masq_conn *c, int64_t sid) {
  return (size_t)((uint64_t)sid >> 2) & (c->nbuckets - 1);
}

masq_stream *masq_stream_get(masq_conn *c, int64_t sid) {
  if (!c->nbuckets) return NULL;
  for (masq_stream *s = c->buckets[bucket_of(c, sid)]; s; s = s->hnext)
    if (s->id == sid) return s;
  return NULL;
}

static int table_grow(masq_conn *c) {
  size_t nb = c->nbuckets ? c->nbuckets * 2 : 64;
  masq_stream **b = calloc(nb, sizeof(*b));
  if (!b) return -1;
  free(c->buckets);
  c->buckets = b;
  c->nbuckets = nb;
  for (masq_stream *s = c->streams; s; s = s->next) {
    size_t i = bucket_of(c, s->id);
    s->hnext = b[i];
    b[i] = s;
  }
  return 0;
}

static void table_remove(masq_conn *c, masq_stream *s) {
  for (masq_stream **pp = &c->buckets[bucket_of(c, s->id)]; *pp; pp = &(*pp)->hnext) {
    if (*pp == s) {
      *pp = s->hnext;
      return;
    }
  }
}

masq_stream *masq_stream_new(masq_conn *c, int64_t sid) {
  masq_stream *s = calloc(1, sizeof(*s));
  if (!s) return NULL;
  s->id = sid;
  s->sbuf.limit = MASQ_STREAM_SBUF;
  /* A client's stream enters nghttp3 only with its request, which takes
   * the pointer itself; a server's already exists there. */
  if (c->is_server && nghttp3_conn_set_stream_user_data(c->h3, sid, s) != 0) {
    free(s);
    return NULL;
  }
  if (c->nstreams + 1 > c->nbuckets && table_grow(c) != 0) {
    free(s);
    return NULL;
  }
  s->next = c->streams; /* kept on a list so masq_conn_free finds them all */
  if (s->next) s->next->prev = s;
  c->streams = s;
  size_t i = bucket_of(c, sid);
  s->hnext = c->buckets[i];
  c->buckets[i] = s;
  c->nstreams++;
  return s;
}

void masq_stream_free(masq_conn *c, masq_stream *s) {
  if (!s) return;
  /* Bytes the owner never consumed still hold connection-level credit. */
  if (s->unconsumed) ngtcp2_conn_extend_max_offset(c->qc, s->unconsumed);
  table_remove(c, s);
  c->nstreams--;
  if (s->prev) s->prev->next = s->next;
  else c->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  free(s->hdrs);
  masq_sbuf_free(&s->sbuf);
  free(s);
}

/* The block holding absolute offset off (which must be in [base, end]). */
static masq_sblock *sblock_at(const masq_sbuf *b, uint64_t off, size_t *pos) {
  masq_sblock *k = b->head;
  uint64_t rel = off - b->base;
  while (rel >= MASQ_SBLOCK && k) {
    k = k->next;
    rel -= MASQ_SBLOCK;
  }
  *pos = (size_t)rel;
  return k;
}

/* Drops the blocks whose every byte the peer has acknowledged. */
static void sbuf_trim(masq_sbuf *b) {
  while (b->head && b->acked - b->base >= MASQ_SBLOCK) {
    masq_sblock *k = b->head;
    b->head = k->next;
    if (!b->head) b->tail = NULL;
    b->base += MASQ_SBLOCK;
    free(k);
  }
}

void masq_sbuf_free(masq_sbuf *b) {
  while (b->head) {
    masq_sblock *k = b->head;
    b->head = k->next;
    free(k);
  }
  b->tail = NULL;
}

/* Appends to the stream's send buffer; all or nothing. FIN is sent once
 * the buffer drains. */
int masq_stream_write(masq_conn *c, masq_stream *s, const uint8_t *p, size_t n, int fin) {
  masq_sbuf *b = &s->sbuf;
  if (s->fin_pending || s->fin_sent || !s->has_body) return MASQ_SESS_ERR_STREAM;
  if (n > masq_sbuf_room(b)) return MASQ_SESS_ERR_QUEUE_FULL;
  while (n) {
    size_t used = (size_t)((b->end - b->base) % MASQ_SBLOCK);
    if (!b->tail || (used == 0 && b->end != b->base)) {
      masq_sblock *k = malloc(sizeof(*k)); /* one per 64 KiB, not per packet */
      if (!k) return MASQ_SESS_ERR_NOMEM;
      k->next = NULL;
      if (b->tail) b->tail->next = k;
      else b->head = k;
      b->tail = k;
      used = 0;
    }
    size_t take = MASQ_SBLOCK - used < n ? MASQ_SBLOCK - used : n;
    memcpy(b->tail->data + used, p, take);
    b->end += take;
    p += take;
    n -= take;
  }
  if (fin) s->fin_pending = 1;
  nghttp3_conn_resume_stream(c->h3, s->id);
  return 0;
}

nghttp3_ssize masq_h3_read_body(nghttp3_conn *h3, int64_t sid, nghttp3_vec *vec, size_t veccnt,
                                uint32_t *pflags, void *ud, void *sud) {
  masq_stream *s = sud;
  if (!s) return NGHTTP3_ERR_CALLBACK_FAILURE;
  masq_sbuf *b = &s->sbuf;
  size_t n = 0;
  uint64_t off = b->sent;
  size_t pos;
  masq_sblock *k = off < b->end ? sblock_at(b, off, &pos) : NULL;
  while (k && off < b->end && n < veccnt) {
    size_t len = MASQ_SBLOCK - pos;
    if (len > b->end - off) len = (size_t)(b->end - off);
    vec[n].base = k->data + pos;
    vec[n].len = len;
    off += len;
    n++;
    k = k->next;
    pos = 0;
  }
  b->sent = off;
  if (off == b->end && s->fin_pending) {
    *pflags |= NGHTTP3_DATA_FLAG_EOF;
    s->fin_pending = 0;
    s->fin_sent = 1;
  } else if (n == 0) {
    return NGHTTP3_ERR_WOULDBLOCK;
  }
  return (nghttp3_ssize)n;
}

/* ---- nghttp3 callbacks ----------------------------------------------- */

static int on_acked(nghttp3_conn *h3, int64_t sid, uint64_t len, void *ud, void *sud) {
  masq_conn *c = ud;
  masq_stream *s = sud;
  if (!s) return 0;
  s->sbuf.acked += len;
  sbuf_trim(&s->sbuf);
  /* Resume a reader that found the buffer full once a quarter is free,
   * not on every acknowledgement. */
  if (s->want_writable && masq_sbuf_room(&s->sbuf) >= s->sbuf.limit / 4) {
    s->want_writable = 0;
    if (c->cb.on_writable) c->cb.on_writable(c, c->ud, sid, s->sud);
  }
  return 0;
}

static int on_stream_close(nghttp3_conn *h3, int64_t sid, uint64_t app_error, void *ud,
                           void *sud) {
  masq_conn *c = ud;
  masq_stream *s = sud;
  if (s && c->cb.on_stream_close) c->cb.on_stream_close(c, c->ud, sid, s->sud, app_error);
  masq_stream_free(c, s);
  /* Each finished request frees a slot for a new one (server side). */
  if (c->is_server && ngtcp2_is_bidi_stream(sid)) ngtcp2_conn_extend_max_streams_bidi(c->qc, 1);
  return 0;
}

static int on_recv_data(nghttp3_conn *h3, int64_t sid, const uint8_t *data, size_t len,
                        void *ud, void *sud) {
  masq_conn *c = ud;
  masq_stream *s = sud;
  if (s && s->bytes) {
    /* TCP bytes: credit returns only as the owner passes them on. */
    s->unconsumed += len;
    if (c->cb.on_data) c->cb.on_data(c, c->ud, sid, s->sud, data, len);
    return 0;
  }
  /* Body bytes are consumed at once: capsules are parsed as they stream
   * past (RFC 9297 §3.3 warns against holding flow control). */
  masq_conn_consume(c, sid, len);
  if (s && s->capsules) masq_tunnel_on_body(c, s, data, len); /* errors reset only sid */
  return 0;
}

static int on_deferred_consume(nghttp3_conn *h3, int64_t sid, size_t n, void *ud, void *sud) {
  masq_conn_consume(ud, sid, n);
  return 0;
}

static int on_begin_headers(nghttp3_conn *h3, int64_t sid, void *ud, void *sud) {
  masq_conn *c = ud;
  masq_stream *s = sud;
  if (!s) {
    if (!c->is_server) return 0; /* a response for a stream we gave up */
    s = masq_stream_new(c, sid);
    if (!s) return NGHTTP3_ERR_CALLBACK_FAILURE;
    /* Capsules may follow the request before we answer it (RFC 9297
     * §3.2); a refusal turns parsing off again. */
    s->capsules = 1;
    masq_tunnel_init_parser(c, s);
  }
  free(s->hdrs);
  s->hdrs = malloc(sizeof(*s->hdrs));
  if (!s->hdrs) return NGHTTP3_ERR_CALLBACK_FAILURE;
  masq_reqhdrs_init(s->hdrs);
  return 0;
}

static int on_recv_header(nghttp3_conn *h3, int64_t sid, int32_t token, nghttp3_rcbuf *name,
                          nghttp3_rcbuf *value, uint8_t flags, void *ud, void *sud) {
  masq_stream *s = sud;
  if (!s || !s->hdrs) return 0;
  nghttp3_vec n = nghttp3_rcbuf_get_buf(name), v = nghttp3_rcbuf_get_buf(value);
  masq_reqhdrs_add(s->hdrs, n.base, n.len, v.base, v.len);
  return 0;
}

static int on_end_headers(nghttp3_conn *h3, int64_t sid, int fin, void *ud, void *sud) {
  masq_conn *c = ud;
  masq_stream *s = sud;
  if (!s || !s->hdrs) return 0;
  masq_reqhdrs *h = s->hdrs;
  s->hdrs = NULL;
  if (c->is_server && h->method.present && !strcmp(h->method.v, "CONNECT") &&
      !h->protocol.present) {
    /* A plain CONNECT (RFC 9114 §4.4): its body is TCP bytes, possibly
     * sent before our answer, never capsules. */
    s->capsules = 0;
    s->bytes = 1;
  }
  if (c->is_server) {
    if (c->cb.on_request) c->cb.on_request(c, c->ud, sid, h);
  } else if (c->cb.on_response) {
    c->cb.on_response(c, c->ud, sid, s->sud, h);
  }
  free(h);
  return 0;
}

static int on_end_stream(nghttp3_conn *h3, int64_t sid, void *ud, void *sud) {
  masq_conn *c = ud;
  masq_stream *s = sud;
  if (!s) return 0;
  if (s->capsules && masq_tunnel_on_end(c, s) != 0) return 0;
  if (c->cb.on_stream_end) c->cb.on_stream_end(c, c->ud, sid, s->sud);
  return 0;
}

static int on_stop_sending(nghttp3_conn *h3, int64_t sid, uint64_t app_error, void *ud,
                           void *sud) {
  masq_conn *c = ud;
  return ngtcp2_conn_shutdown_stream_read(c->qc, 0, sid, app_error) == 0
             ? 0
             : NGHTTP3_ERR_CALLBACK_FAILURE;
}

static int on_reset_stream(nghttp3_conn *h3, int64_t sid, uint64_t app_error, void *ud,
                           void *sud) {
  masq_conn *c = ud;
  return ngtcp2_conn_shutdown_stream_write(c->qc, 0, sid, app_error) == 0
             ? 0
             : NGHTTP3_ERR_CALLBACK_FAILURE;
}

static void maybe_ready(masq_conn *c) {
  if (c->ready_told || !c->handshake_done || !c->settings_rcvd) return;
  c->ready_told = 1;
  if (c->cb.on_ready) c->cb.on_ready(c, c->ud);
}

static int on_recv_settings(nghttp3_conn *h3, const nghttp3_settings *st, void *ud) {
  masq_conn *c = ud;
  c->settings_rcvd = 1;
  c->peer_h3_datagram = st->h3_datagram != 0;
  c->peer_connect_protocol = st->enable_connect_protocol != 0;
  maybe_ready(c);
  return 0;
}

static const nghttp3_callbacks h3_callbacks = {
    .acked_stream_data = on_acked,
    .stream_close = on_stream_close,
    .recv_data = on_recv_data,
    .deferred_consume = on_deferred_consume,
    .begin_headers = on_begin_headers,
    .recv_header = on_recv_header,
    .end_headers = on_end_headers,
    .stop_sending = on_stop_sending,
    .end_stream = on_end_stream,
    .reset_stream = on_reset_stream,
    .recv_settings = on_recv_settings,
};

const nghttp3_callbacks *masq_h3_callbacks(void) { return &h3_callbacks; }

/* Creates the HTTP/3 connection and its three unidirectional streams
 * (control, QPACK encoder, QPACK decoder; RFC 9114 §6.2). */
int masq_h3_setup(masq_conn *c) {
  nghttp3_settings st;
  nghttp3_settings_default(&st);
  st.h3_datagram = !c->no_h3_datagram;       /* RFC 9297 §2.1.1 */
  st.enable_connect_protocol = c->is_server; /* RFC 9220 */
  /* No QPACK dynamic table: a tunnel's few header fields compress well
   * enough with the static table and Huffman coding, and without it no
   * request ever waits on the encoder stream (RFC 9204 §2.1.2). With a
   * 4 KiB table, 1000 requests opened at once under ASan once ended the
   * connection with nghttp3's QPACK_FATAL on the server; cause not found. */
  st.qpack_max_dtable_capacity = 0;
  st.qpack_blocked_streams = 0;
  int rv = c->is_server ? nghttp3_conn_server_new(&c->h3, &h3_callbacks, &st, NULL, c)
                        : nghttp3_conn_client_new(&c->h3, &h3_callbacks, &st, NULL, c);
  if (rv != 0) {
    masq_conn_fail(c, "HTTP/3 setup failed: %s", nghttp3_strerror(rv));
    return -1;
  }
  if (c->is_server) {
    nghttp3_conn_set_max_client_streams_bidi(
        c->h3, ngtcp2_conn_get_streams_bidi_left(c->qc) + c->max_streams_bidi);
  }
  int64_t ctrl, enc, dec;
  if (ngtcp2_conn_open_uni_stream(c->qc, &ctrl, NULL) != 0 ||
      ngtcp2_conn_open_uni_stream(c->qc, &enc, NULL) != 0 ||
      ngtcp2_conn_open_uni_stream(c->qc, &dec, NULL) != 0) {
    masq_conn_fail(c, "peer allows too few unidirectional streams for HTTP/3");
    masq_conn_set_app_error(c, NGHTTP3_H3_STREAM_CREATION_ERROR);
    return -1;
  }
  if (nghttp3_conn_bind_control_stream(c->h3, ctrl) != 0 ||
      nghttp3_conn_bind_qpack_streams(c->h3, enc, dec) != 0) {
    masq_conn_fail(c, "HTTP/3 stream setup failed");
    return -1;
  }
  maybe_ready(c);
  return 0;
}

/* ---- requests and responses ------------------------------------------ */

#define NV(n, v) \
  { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP3_NV_FLAG_NONE }

/* Opens a client stream and submits nva[0..n) plus, with a token, a
 * bearer Proxy-Authorization (never indexed, to keep the secret out of
 * the QPACK tables). bytes picks the body: TCP bytes or capsules. */
static int64_t submit_request(masq_conn *c, nghttp3_nv *nva, size_t n, const char *token,
                              void *sud, int bytes) {
  int64_t sid;
  int rv = ngtcp2_conn_open_bidi_stream(c->qc, &sid, NULL);
  if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) return MASQ_SESS_ERR_BLOCKED;
  if (rv != 0) return MASQ_SESS_ERR_FATAL;
  char auth[MASQ_MAX_HEADER_VALUE + 8];
  if (token) {
    snprintf(auth, sizeof(auth), "Bearer %s", token);
    nghttp3_nv a = NV("proxy-authorization", auth);
    a.flags = NGHTTP3_NV_FLAG_NEVER_INDEX;
    nva[n++] = a;
  }
  masq_stream *s = masq_stream_new(c, sid);
  if (!s) return MASQ_SESS_ERR_NOMEM;
  s->sud = sud;
  s->has_body = 1;
  if (bytes) {
    s->bytes = 1;
    s->sbuf.limit = MASQ_STREAM_SBUF_BYTES;
  } else {
    s->capsules = 1;
    masq_tunnel_init_parser(c, s);
  }
  nghttp3_data_reader dr = {masq_h3_read_body};
  rv = nghttp3_conn_submit_request(c->h3, sid, nva, n, &dr, s);
  if (rv != 0) {
    masq_stream_free(c, s);
    ngtcp2_conn_shutdown_stream(c->qc, 0, sid, NGHTTP3_H3_INTERNAL_ERROR);
    return MASQ_SESS_ERR_FATAL;
  }
  return sid;
}

int64_t masq_conn_submit_connect(masq_conn *c, const char *authority, const char *path,
                                 const char *protocol, const char *token, void *sud) {
  nghttp3_nv nva[7] = {
      NV(":method", "CONNECT"),     NV(":protocol", protocol), NV(":scheme", "https"),
      NV(":authority", authority),  NV(":path", path),         NV("capsule-protocol", "?1"),
  };
  return submit_request(c, nva, 6, token, sud, 0);
}

int masq_conn_submit_response(masq_conn *c, int64_t sid, int status, const char *proxy_status,
                              const char *extra_name, const char *extra_value, void *sud) {
  masq_stream *s = masq_stream_get(c, sid);
  if (!s || s->responded) return MASQ_SESS_ERR_STREAM;
  char code[4];
  snprintf(code, sizeof(code), "%03d", status);
  int ok = status >= 200 && status < 300;
  nghttp3_nv nva[4] = {NV(":status", code)};
  size_t n = 1;
  /* RFC 9297 §3.4: capsule-protocol only on 2xx; Proxy-Status on errors. */
  if (ok) nva[n++] = (nghttp3_nv)NV("capsule-protocol", "?1");
  if (proxy_status) nva[n++] = (nghttp3_nv)NV("proxy-status", proxy_status);
  if (extra_name && extra_value) {
    nghttp3_nv x = {(uint8_t *)extra_name, (uint8_t *)extra_value, strlen(extra_name),
                    strlen(extra_value), NGHTTP3_NV_FLAG_NONE};
    nva[n++] = x;
  }
  s->responded = 1;
  if (sud) s->sud = sud;
  int rv;
  if (ok) {
    s->tunnel = 1;
    s->has_body = 1;
    nghttp3_data_reader dr = {masq_h3_read_body};
    rv = nghttp3_conn_submit_response(c->h3, sid, nva, n, &dr);
  } else {
    s->capsules = 0; /* the request failed: ignore whatever it sends */
    rv = nghttp3_conn_submit_response(c->h3, sid, nva, n, NULL);
    /* Nothing more is wanted from the client (RFC 9114 §4.1.1). */
    ngtcp2_conn_shutdown_stream_read(c->qc, 0, sid, NGHTTP3_H3_NO_ERROR);
  }
  return rv == 0 ? 0 : MASQ_SESS_ERR_FATAL;
}

int masq_conn_stream_set_user(masq_conn *c, int64_t sid, void *sud) {
  masq_stream *s = masq_stream_get(c, sid);
  if (!s) return MASQ_SESS_ERR_STREAM;
  s->sud = sud;
  return 0;
}

int masq_conn_stream_set_tunnel(masq_conn *c, int64_t sid) {
  masq_stream *s = masq_stream_get(c, sid);
  if (!s) return MASQ_SESS_ERR_STREAM;
  s->tunnel = 1;
  return 0;
}

int masq_conn_end_stream(masq_conn *c, int64_t sid) {
  masq_stream *s = masq_stream_get(c, sid);
  if (!s) return MASQ_SESS_ERR_STREAM;
  s->tunnel = 0;
  if (!s->has_body || s->fin_pending || s->fin_sent) return 0;
  return masq_stream_write(c, s, NULL, 0, 1);
}

int masq_conn_reset_stream(masq_conn *c, int64_t sid, uint64_t h3_error) {
  masq_stream *s = masq_stream_get(c, sid);
  if (s) s->tunnel = 0;
  int rv = ngtcp2_conn_shutdown_stream(c->qc, 0, sid, h3_error);
  return rv == 0 ? 0 : MASQ_SESS_ERR_STREAM;
}

/* ---- byte streams (plain CONNECT) -------------------------------------- */

int64_t masq_conn_submit_tcp_connect(masq_conn *c, const char *authority, const char *token,
                                     void *sud) {
  /* RFC 9114 §4.4: :method and :authority only. */
  nghttp3_nv nva[3] = {NV(":method", "CONNECT"), NV(":authority", authority)};
  return submit_request(c, nva, 2, token, sud, 1);
}

int masq_conn_accept_stream(masq_conn *c, int64_t sid, void *sud) {
  masq_stream *s = masq_stream_get(c, sid);
  if (!s || s->responded) return MASQ_SESS_ERR_STREAM;
  nghttp3_nv nva[1] = {NV(":status", "200")};
  s->responded = 1;
  s->capsules = 0;
  s->bytes = 1;
  s->sbuf.limit = MASQ_STREAM_SBUF_BYTES;
  s->has_body = 1;
  if (sud) s->sud = sud;
  nghttp3_data_reader dr = {masq_h3_read_body};
  return nghttp3_conn_submit_response(c->h3, sid, nva, 1, &dr) == 0 ? 0 : MASQ_SESS_ERR_FATAL;
}

size_t masq_conn_stream_room(masq_conn *c, int64_t sid) {
  masq_stream *s = masq_stream_get(c, sid);
  if (!s || !s->bytes || !s->has_body || s->fin_pending || s->fin_sent) return 0;
  size_t room = masq_sbuf_room(&s->sbuf);
  if (room == 0) s->want_writable = 1;
  return room;
}

long masq_conn_stream_send(masq_conn *c, int64_t sid, const uint8_t *p, size_t n) {
  masq_stream *s = masq_stream_get(c, sid);
  if (!s || !s->bytes || !s->has_body || s->fin_pending || s->fin_sent)
    return MASQ_SESS_ERR_STREAM;
  size_t room = masq_sbuf_room(&s->sbuf);
  if (n > room) {
    n = room;
    s->want_writable = 1; /* the rest waits for acknowledgements */
  }
  if (n == 0) return 0;
  int rv = masq_stream_write(c, s, p, n, 0);
  return rv == 0 ? (long)n : rv;
}

void masq_conn_stream_consume(masq_conn *c, int64_t sid, size_t n) {
  masq_stream *s = masq_stream_get(c, sid);
  if (!s || !s->bytes) return;
  if (n > s->unconsumed) n = (size_t)s->unconsumed;
  s->unconsumed -= n;
  masq_conn_consume(c, sid, n);
}
