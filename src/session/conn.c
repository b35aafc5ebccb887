/* QUIC transport for one masq connection: ngtcp2 with GnuTLS, the packet
 * write loop with GSO batching, the datagram send queue and timers. The
 * HTTP/3 mapping lives in h3.c and MASQUE datagrams in tunnel.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "proto/addr.h"
#include "proto/h3dgram.h"
#include "proto/wire.h"
#include "session/internal.h"

#define DEFAULT_DGRAM_QUEUE 256

/* One GSO send is one UDP datagram for the kernel: at most 65507 octets
 * of payload (IPv4's 65535 less its headers). */
_Static_assert(MASQ_TX_BATCH * MASQ_OUTER_UDP_PAYLOAD <= 65507, "GSO batch over 64 KB");

/* TLS 1.3 only (QUIC requires it), AES-128-GCM first: on this class of
 * machine it costs ~0.5 µs per packet against 8x that for ChaCha20. */
static const char tls_priority[] =
    "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:"
    "+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:-GROUP-ALL:"
    "+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1";
static const gnutls_datum_t alpn_h3 = {(unsigned char *)"h3", 2};

void masq_conn_fail(masq_conn *c, const char *fmt, ...) {
  if (c->why[0]) return; /* keep the first reason: later ones are fallout */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->why, sizeof(c->why), fmt, ap);
  va_end(ap);
}

void masq_conn_set_app_error(masq_conn *c, uint64_t h3_error) {
  ngtcp2_ccerr_set_application_error(&c->ccerr, h3_error, NULL, 0);
}

/* Returns flow-control credit for n bytes the application has consumed. */
void masq_conn_consume(masq_conn *c, int64_t sid, size_t n) {
  ngtcp2_conn_extend_max_stream_offset(c->qc, sid, n);
  ngtcp2_conn_extend_max_offset(c->qc, n);
}

/* ---- ngtcp2 callbacks ------------------------------------------------ */

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) {
  return ((masq_conn *)ref->user_data)->qc;
}

static void on_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx) {
  (void)ctx;
  /* GNUTLS_RND_RANDOM is the non-key grade; ngtcp2 uses this for packet
   * padding and the like, not secrets. */
  if (gnutls_rnd(GNUTLS_RND_RANDOM, dest, len) != 0) memset(dest, 0, len);
}

static int on_new_cid(ngtcp2_conn *qc, ngtcp2_cid *cid, uint8_t *token, size_t cidlen,
                      void *ud) {
  masq_conn *c = ud;
  if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  cid->datalen = cidlen;
  /* The stateless reset token only has to be unguessable; masq does not
   * send stateless resets yet, so a random one per CID is enough. */
  if (gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  if (c->cidcb) c->cidcb(c, c->ud, cid->data, cid->datalen, 1);
  return 0;
}

static int on_remove_cid(ngtcp2_conn *qc, const ngtcp2_cid *cid, void *ud) {
  masq_conn *c = ud;
  if (c->cidcb) c->cidcb(c, c->ud, cid->data, cid->datalen, 0);
  return 0;
}

/* A client with no traffic must not lose its connection to the idle
 * timeout: PING at half the timeout both ends agreed on (RFC 9000
 * §10.1.2), which the server may have set lower than ours. */
static void set_keep_alive(masq_conn *c) {
  const ngtcp2_transport_params *lp = ngtcp2_conn_get_local_transport_params(c->qc);
  const ngtcp2_transport_params *rp = ngtcp2_conn_get_remote_transport_params(c->qc);
  uint64_t idle = lp->max_idle_timeout;
  if (rp && rp->max_idle_timeout && (!idle || rp->max_idle_timeout < idle))
    idle = rp->max_idle_timeout;
  if (idle) ngtcp2_conn_set_keep_alive_timeout(c->qc, idle / 2);
}

static int on_handshake_completed(ngtcp2_conn *qc, void *ud) {
  masq_conn *c = ud;
  c->handshake_done = 1;
  if (!c->is_server) set_keep_alive(c);
  if (!c->h3 && masq_h3_setup(c) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int on_recv_stream_data(ngtcp2_conn *qc, uint32_t flags, int64_t sid, uint64_t offset,
                               const uint8_t *data, size_t len, void *ud, void *sud) {
  masq_conn *c = ud;
  if (!c->h3 && masq_h3_setup(c) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  nghttp3_ssize n =
      nghttp3_conn_read_stream(c->h3, sid, data, len, (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0);
  if (n < 0) {
    masq_conn_fail(c, "HTTP/3 error on stream %lld: %s", (long long)sid,
                   nghttp3_strerror((int)n));
    masq_conn_set_app_error(c, nghttp3_err_infer_quic_app_error_code((int)n));
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  masq_conn_consume(c, sid, (size_t)n);
  return 0;
}

static int on_acked_stream_data(ngtcp2_conn *qc, int64_t sid, uint64_t offset, uint64_t len,
                                void *ud, void *sud) {
  masq_conn *c = ud;
  if (c->h3 && nghttp3_conn_add_ack_offset(c->h3, sid, len) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int on_stream_close(ngtcp2_conn *qc, uint32_t flags, int64_t sid, uint64_t app_error,
                           void *ud, void *sud) {
  masq_conn *c = ud;
  if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET)) app_error = NGHTTP3_H3_NO_ERROR;
  if (!c->h3) return 0;
  int rv = nghttp3_conn_close_stream(c->h3, sid, app_error);
  if (rv != 0 && rv != NGHTTP3_ERR_STREAM_NOT_FOUND) {
    masq_conn_set_app_error(c, nghttp3_err_infer_quic_app_error_code(rv));
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

static int on_stream_reset(ngtcp2_conn *qc, int64_t sid, uint64_t final_size,
                           uint64_t app_error, void *ud, void *sud) {
  masq_conn *c = ud;
  if (c->h3 && nghttp3_conn_shutdown_stream_read(c->h3, sid) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int on_stream_stop_sending(ngtcp2_conn *qc, int64_t sid, uint64_t app_error, void *ud,
                                  void *sud) {
  masq_conn *c = ud;
  if (c->h3 && nghttp3_conn_shutdown_stream_read(c->h3, sid) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int on_extend_max_remote_bidi(ngtcp2_conn *qc, uint64_t max, void *ud) {
  masq_conn *c = ud;
  if (c->h3) nghttp3_conn_set_max_client_streams_bidi(c->h3, max);
  return 0;
}

static int on_extend_max_local_bidi(ngtcp2_conn *qc, uint64_t max, void *ud) {
  masq_conn *c = ud;
  if (c->cb.on_streams && c->ready_told) c->cb.on_streams(c, c->ud);
  return 0;
}

static int on_extend_max_stream_data(ngtcp2_conn *qc, int64_t sid, uint64_t max, void *ud,
                                     void *sud) {
  masq_conn *c = ud;
  if (c->h3 && nghttp3_conn_unblock_stream(c->h3, sid) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int on_recv_datagram(ngtcp2_conn *qc, uint32_t flags, const uint8_t *data, size_t len,
                            void *ud) {
  return masq_tunnel_on_quic_datagram(ud, data, len) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}

static void fill_callbacks(ngtcp2_callbacks *cb, int is_server) {
  memset(cb, 0, sizeof(*cb));
  if (is_server) {
    cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  } else {
    cb->client_initial = ngtcp2_crypto_client_initial_cb;
    cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
    cb->extend_max_local_streams_bidi = on_extend_max_local_bidi;
  }
  cb->recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
  cb->encrypt = ngtcp2_crypto_encrypt_cb;
  cb->decrypt = ngtcp2_crypto_decrypt_cb;
  cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb->update_key = ngtcp2_crypto_update_key_cb;
  cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
  cb->rand = on_rand;
  cb->get_new_connection_id = on_new_cid;
  cb->remove_connection_id = on_remove_cid;
  cb->handshake_completed = on_handshake_completed;
  cb->recv_stream_data = on_recv_stream_data;
  cb->acked_stream_data_offset = on_acked_stream_data;
  cb->stream_close = on_stream_close;
  cb->stream_reset = on_stream_reset;
  cb->stream_stop_sending = on_stream_stop_sending;
  cb->extend_max_remote_streams_bidi = on_extend_max_remote_bidi;
  cb->extend_max_stream_data = on_extend_max_stream_data;
  cb->recv_datagram = on_recv_datagram;
}

static void fill_settings(ngtcp2_settings *s, const masq_conn_config *cfg, uint64_t now) {
  ngtcp2_settings_default(s);
  s->initial_ts = now;
  /* Start at QUIC's 1200 bytes and let DPLPMTUD (RFC 8899, which RFC 9298
   * §5 relies on) raise the packet size to what the path really carries,
   * up to a 1500-byte MTU's worth. Assuming 1452 outright would black-hole
   * full-size packets on smaller paths — a masq connection nested inside
   * another tunnel, say — because the handshake's 1200-byte packets do
   * not prove the path. */
  static const uint16_t probes[] = {MASQ_OUTER_UDP_PAYLOAD, 1420, 1400, 1380, 1350,
                                    1320, 1300, 1280, 1250};
  s->max_tx_udp_payload_size = MASQ_OUTER_UDP_PAYLOAD;
  s->pmtud_probes = probes;
  s->pmtud_probeslen = sizeof(probes) / sizeof(probes[0]);
  /* CUBIC by default; BBR on request (cc_bbr), which does not read every
   * loss as congestion -- worth comparing for a tunnel whose inner TCP
   * already reacts to loss itself (BENCHMARKS.md). */
  s->cc_algo = cfg->cc_bbr ? NGTCP2_CC_ALGO_BBR : NGTCP2_CC_ALGO_CUBIC;
  s->max_window = 24 * 1024 * 1024;
  s->max_stream_window = 16 * 1024 * 1024;
  s->handshake_timeout = 10 * NGTCP2_SECONDS;
}

static void fill_params(ngtcp2_transport_params *p, const masq_conn_config *cfg, int is_server) {
  ngtcp2_transport_params_default(p);
  p->initial_max_stream_data_bidi_local = 1024 * 1024;
  p->initial_max_stream_data_bidi_remote = 1024 * 1024;
  p->initial_max_stream_data_uni = 256 * 1024;
  p->initial_max_data = 16 * 1024 * 1024;
  p->initial_max_streams_bidi = is_server ? cfg->max_streams_bidi : 0;
  p->initial_max_streams_uni = 3; /* control + QPACK encoder/decoder */
  p->max_idle_timeout = cfg->idle_timeout;
  /* Accept any DATAGRAM frame the peer can send (RFC 9221 §3). */
  p->max_datagram_frame_size = cfg->no_h3_datagram ? 0 : 65535;
  p->active_connection_id_limit = 8;
}

/* ---- TLS ------------------------------------------------------------- */

static int tls_init(masq_conn *c, const masq_conn_config *cfg, char *err, size_t errcap) {
  unsigned flags = (c->is_server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_ENABLE_EARLY_DATA |
                   GNUTLS_NO_END_OF_EARLY_DATA;
  int rv = gnutls_init(&c->tls, flags);
  if (rv != 0) goto fail;
  rv = c->is_server ? ngtcp2_crypto_gnutls_configure_server_session(c->tls)
                    : ngtcp2_crypto_gnutls_configure_client_session(c->tls);
  if (rv != 0) {
    snprintf(err, errcap, "cannot set up QUIC TLS session");
    return -1;
  }
  if ((rv = gnutls_priority_set_direct(c->tls, tls_priority, NULL)) != 0) goto fail;
  if ((rv = gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, cfg->creds)) != 0) goto fail;
  /* The server insists on h3: a peer speaking anything else is refused
   * at the TLS layer (RFC 9114 §3.1). */
  rv = gnutls_alpn_set_protocols(c->tls, &alpn_h3, 1, c->is_server ? GNUTLS_ALPN_MANDATORY : 0);
  if (rv != 0) goto fail;
  if (!c->is_server) {
    /* RFC 6066 §3: SNI carries host names only, never IP literals (a
     * server may reject the handshake for one); the certificate is still
     * checked against the address. */
    masq_ip lit;
    if (cfg->sni && cfg->sni[0] && masq_ip_parse(cfg->sni, &lit) != 0 &&
        (rv = gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, cfg->sni, strlen(cfg->sni))) != 0)
      goto fail;
    if (!cfg->insecure) gnutls_session_set_verify_cert(c->tls, cfg->sni, 0);
  }
  c->ref.get_conn = get_conn;
  c->ref.user_data = c;
  gnutls_session_set_ptr(c->tls, &c->ref);
  ngtcp2_conn_set_tls_native_handle(c->qc, c->tls);
  return 0;
fail:
  snprintf(err, errcap, "TLS setup failed: %s", gnutls_strerror(rv));
  return -1;
}

/* ---- construction ---------------------------------------------------- */

static masq_conn *conn_alloc(const masq_conn_config *cfg, const masq_conn_callbacks *cb,
                             void *ud, int is_server) {
  masq_conn *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->is_server = is_server;
  c->cb = *cb;
  c->ud = ud;
  c->max_streams_bidi = cfg->max_streams_bidi;
  c->no_h3_datagram = cfg->no_h3_datagram != 0;
  c->dqcap = cfg->dgram_queue ? cfg->dgram_queue : DEFAULT_DGRAM_QUEUE;
  c->dq = calloc(c->dqcap, sizeof(*c->dq));
  /* One spare slot: see masq_conn_write. */
  c->tx = malloc((size_t)(MASQ_TX_BATCH + 1) * MASQ_OUTER_UDP_PAYLOAD);
  ngtcp2_ccerr_default(&c->ccerr);
  ngtcp2_path_storage_zero(&c->path);
  ngtcp2_path_storage_zero(&c->txpath);
  if (!c->dq || !c->tx) {
    free(c->dq);
    free(c->tx);
    free(c);
    return NULL;
  }
  return c;
}

/* What both constructors do once ngtcp2_conn_*_new has run: report its
 * failure, or attach TLS. Frees c on failure. */
static masq_conn *conn_finish(masq_conn *c, int rv, const masq_conn_config *cfg, char *err,
                              size_t errcap) {
  if (rv != 0) {
    snprintf(err, errcap, "QUIC %s setup failed: %s", c->is_server ? "server" : "client",
             ngtcp2_strerror(rv));
  } else if (tls_init(c, cfg, err, errcap) == 0) {
    return c;
  }
  masq_conn_free(c);
  return NULL;
}

static int random_cid(ngtcp2_cid *cid, size_t len) {
  cid->datalen = len;
  return gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, len);
}

masq_conn *masq_conn_client_new(const masq_conn_config *cfg, const masq_conn_callbacks *cb,
                                void *ud, const ngtcp2_addr *local, const ngtcp2_addr *remote,
                                uint64_t now, char *err, size_t errcap) {
  masq_conn *c = conn_alloc(cfg, cb, ud, 0);
  if (!c) {
    snprintf(err, errcap, "out of memory");
    return NULL;
  }
  ngtcp2_path_storage_init(&c->path, local->addr, local->addrlen, remote->addr, remote->addrlen,
                           NULL);
  ngtcp2_cid dcid, scid;
  ngtcp2_callbacks callbacks;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  if (random_cid(&dcid, 18) != 0 || random_cid(&scid, MASQ_CID_LEN) != 0) {
    snprintf(err, errcap, "no randomness for connection IDs");
    goto fail;
  }
  fill_callbacks(&callbacks, 0);
  fill_settings(&settings, cfg, now);
  fill_params(&params, cfg, 0);
  int rv = ngtcp2_conn_client_new(&c->qc, &dcid, &scid, &c->path.path, NGTCP2_PROTO_VER_V1,
                                  &callbacks, &settings, &params, NULL, c);
  return conn_finish(c, rv, cfg, err, errcap);
fail:
  masq_conn_free(c);
  return NULL;
}

masq_conn *masq_conn_server_new(const masq_conn_config *cfg, const masq_conn_callbacks *cb,
                                void *ud, const ngtcp2_path *path, const uint8_t *pkt,
                                size_t len, const ngtcp2_cid *retry_odcid, uint64_t now,
                                char *err, size_t errcap) {
  ngtcp2_pkt_hd hd;
  if (ngtcp2_accept(&hd, pkt, len) != 0) {
    snprintf(err, errcap, "not a QUIC Initial packet");
    return NULL;
  }
  masq_conn *c = conn_alloc(cfg, cb, ud, 1);
  if (!c) {
    snprintf(err, errcap, "out of memory");
    return NULL;
  }
  ngtcp2_path_storage_init(&c->path, path->local.addr, path->local.addrlen, path->remote.addr,
                           path->remote.addrlen, NULL);
  ngtcp2_cid scid;
  ngtcp2_callbacks callbacks;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  if (random_cid(&scid, MASQ_CID_LEN) != 0) {
    snprintf(err, errcap, "no randomness for connection IDs");
    goto fail;
  }
  fill_callbacks(&callbacks, 1);
  fill_settings(&settings, cfg, now);
  settings.token = hd.token;
  settings.tokenlen = hd.tokenlen;
  fill_params(&params, cfg, 1);
  params.original_dcid = hd.dcid;
  params.original_dcid_present = 1;
  if (retry_odcid) {
    /* RFC 9000 §7.3: after a Retry, the transport parameters name the
     * client's first DCID and the SCID of our Retry packet. */
    settings.token_type = NGTCP2_TOKEN_TYPE_RETRY;
    params.original_dcid = *retry_odcid;
    params.retry_scid = hd.dcid;
    params.retry_scid_present = 1;
  }
  if (gnutls_rnd(GNUTLS_RND_RANDOM, params.stateless_reset_token,
                 sizeof(params.stateless_reset_token)) != 0) {
    snprintf(err, errcap, "no randomness for the stateless reset token");
    goto fail;
  }
  params.stateless_reset_token_present = 1;
  int rv = ngtcp2_conn_server_new(&c->qc, &hd.scid, &scid, &c->path.path, hd.version,
                                  &callbacks, &settings, &params, NULL, c);
  /* The owner learns the IDs to route by from masq_conn_set_cid_cb. */
  return conn_finish(c, rv, cfg, err, errcap);
fail:
  masq_conn_free(c);
  return NULL;
}

void masq_conn_set_cid_cb(masq_conn *c, masq_cid_cb cb) {
  c->cidcb = cb;
  if (!cb || !c->qc) return;
  ngtcp2_cid ids[16];
  size_t n = ngtcp2_conn_get_scid(c->qc, NULL);
  if (n > 16) n = 16;
  ngtcp2_conn_get_scid(c->qc, ids);
  for (size_t i = 0; i < n; i++) cb(c, c->ud, ids[i].data, ids[i].datalen, 1);
  if (c->is_server) {
    const ngtcp2_cid *odcid = ngtcp2_conn_get_client_initial_dcid(c->qc);
    cb(c, c->ud, odcid->data, odcid->datalen, 1);
  }
}

void masq_conn_free(masq_conn *c) {
  if (!c) return;
  if (c->cidcb && c->qc) {
    ngtcp2_cid ids[16];
    size_t n = ngtcp2_conn_get_scid(c->qc, NULL);
    if (n > 16) n = 16;
    ngtcp2_conn_get_scid(c->qc, ids);
    for (size_t i = 0; i < n; i++) c->cidcb(c, c->ud, ids[i].data, ids[i].datalen, 0);
    if (c->is_server) {
      const ngtcp2_cid *odcid = ngtcp2_conn_get_client_initial_dcid(c->qc);
      c->cidcb(c, c->ud, odcid->data, odcid->datalen, 0);
    }
  }
  /* nghttp3 frees stream user data through stream_close only when the
   * stream closes normally; free what is left (h3.c owns masq_stream). */
  /* Tell the owner about streams still open, so it can release what it
   * tied to them, then free them (nghttp3_conn_del does not). */
  while (c->streams) {
    masq_stream *s = c->streams;
    if (c->cb.on_stream_close)
      c->cb.on_stream_close(c, c->ud, s->id, s->sud, NGHTTP3_H3_REQUEST_CANCELLED);
    masq_stream_free(c, s);
  }
  free(c->buckets);
  if (c->h3) nghttp3_conn_del(c->h3);
  if (c->qc) ngtcp2_conn_del(c->qc);
  if (c->tls) gnutls_deinit(c->tls);
  free(c->dq);
  free(c->tx);
  free(c);
}

/* ---- packet output --------------------------------------------------- */

static int tx_flush(masq_conn *c) {
  if (!c->txlen) return 0;
  if (c->cb.send(c, c->ud, &c->txpath.path, c->tx, c->txlen, c->txseg) != 0) {
    c->tx_pending = 1; /* socket full: keep the batch for the next try */
    return -1;
  }
  c->tx_pending = 0;
  c->txlen = 0;
  return 0;
}

static void dq_pop(masq_conn *c) {
  c->dqhead = (c->dqhead + 1) % c->dqcap;
  c->dqcount--;
}

/* Writes one packet into dst, packing queued datagrams and stream data.
 * Returns its length, 0 when nothing more can be sent, or < 0 (fatal). */
static ngtcp2_ssize write_packet(masq_conn *c, ngtcp2_path *path, uint8_t *dst, size_t cap,
                                 uint64_t now) {
  ngtcp2_pkt_info pi;
  for (;;) {
    if (c->dqcount && c->handshake_done) {
      masq_dgram_slot *s = &c->dq[c->dqhead];
      int accepted = 0;
      ngtcp2_ssize n =
          ngtcp2_conn_write_datagram(c->qc, path, &pi, dst, cap, &accepted,
                                     NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, s->data, s->len, now);
      if (n == NGTCP2_ERR_WRITE_MORE) {
        c->stats.dgram_tx++;
        dq_pop(c);
        continue;
      }
      if (n == NGTCP2_ERR_INVALID_ARGUMENT) { /* larger than the peer accepts */
        c->stats.drop_too_big++;
        dq_pop(c);
        continue;
      }
      if (n < 0) return n;
      if (accepted) {
        c->stats.dgram_tx++;
        dq_pop(c);
      }
      if (n > 0 || !accepted) return n;
      continue;
    }
    int64_t sid = -1;
    int fin = 0;
    nghttp3_vec vec[16];
    nghttp3_ssize nv = 0;
    if (c->h3 && ngtcp2_conn_get_max_data_left(c->qc)) {
      nv = nghttp3_conn_writev_stream(c->h3, &sid, &fin, vec, 16);
      if (nv < 0) {
        masq_conn_fail(c, "HTTP/3 write failed: %s", nghttp3_strerror((int)nv));
        masq_conn_set_app_error(c, nghttp3_err_infer_quic_app_error_code((int)nv));
        return NGTCP2_ERR_CALLBACK_FAILURE;
      }
    }
    uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
    ngtcp2_ssize ndata = -1;
    ngtcp2_ssize n = ngtcp2_conn_writev_stream(c->qc, path, &pi, dst, cap, &ndata, flags, sid,
                                               (const ngtcp2_vec *)vec, (size_t)nv, now);
    if (n < 0) {
      if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
        nghttp3_conn_block_stream(c->h3, sid);
        continue;
      }
      if (n == NGTCP2_ERR_STREAM_SHUT_WR) {
        nghttp3_conn_shutdown_stream_write(c->h3, sid);
        continue;
      }
      if (n == NGTCP2_ERR_WRITE_MORE) {
        if (nghttp3_conn_add_write_offset(c->h3, sid, (size_t)ndata) != 0) return -1;
        continue;
      }
      return n;
    }
    if (ndata >= 0 && nghttp3_conn_add_write_offset(c->h3, sid, (size_t)ndata) != 0) return -1;
    return n;
  }
}

static int same_path(const ngtcp2_path *a, const ngtcp2_path *b) {
  return a->remote.addrlen == b->remote.addrlen && a->local.addrlen == b->local.addrlen &&
         memcmp(a->remote.addr, b->remote.addr, a->remote.addrlen) == 0 &&
         memcmp(a->local.addr, b->local.addr, a->local.addrlen) == 0;
}

static int send_close(masq_conn *c, uint64_t now);

/* Whether the packet just written at the end of the batch may join it:
 * GSO sends equal-sized segments with only the last one shorter, all on
 * one path. */
static int joins_batch(const masq_conn *c, const ngtcp2_path *path, size_t n) {
  return c->txlen == 0 || (n <= c->txseg && same_path(path, &c->txpath.path));
}

int masq_conn_write(masq_conn *c, uint64_t now) {
  if (c->dead) return MASQ_SESS_ERR_FATAL;
  if (c->tx_pending && tx_flush(c) != 0) return 0;
  /* Room for the largest packet we may send: PMTUD probes exceed the
   * path's current size. ngtcp2 keeps ordinary packets to that size. */
  size_t mtu = ngtcp2_conn_get_max_tx_udp_payload_size(c->qc);
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  size_t npkts = 0;
  for (;;) {
    /* The batch buffer has room for one more full packet past the last
     * batch slot, so a packet that cannot join is written there first. */
    uint8_t *dst = c->tx + c->txlen;
    ngtcp2_ssize n = write_packet(c, &ps.path, dst, mtu, now);
    if (n < 0) {
      if (!c->why[0]) masq_conn_fail(c, "QUIC write failed: %s", ngtcp2_strerror((int)n));
      if (n != NGTCP2_ERR_CALLBACK_FAILURE) ngtcp2_ccerr_set_liberr(&c->ccerr, (int)n, NULL, 0);
      send_close(c, now);
      return MASQ_SESS_ERR_FATAL;
    }
    if (n == 0) break;
    if (!joins_batch(c, &ps.path, (size_t)n)) {
      /* Send what came before, then start a new batch with this packet. */
      size_t keep = c->txlen;
      if (tx_flush(c) != 0) {
        c->txlen = keep; /* the new packet waits in the spare slot: drop it */
        break;
      }
      memmove(c->tx, dst, (size_t)n);
      npkts = 0;
    }
    if (c->txlen == 0) {
      ngtcp2_path_copy(&c->txpath.path, &ps.path);
      c->txseg = (size_t)n;
    }
    c->txlen += (size_t)n;
    npkts++;
    /* A shorter packet must be the batch's last. */
    if ((size_t)n < c->txseg || npkts == MASQ_TX_BATCH) {
      npkts = 0;
      if (tx_flush(c) != 0) break;
    }
  }
  if (!c->tx_pending) tx_flush(c);
  ngtcp2_conn_update_pkt_tx_time(c->qc, now);
  return 0;
}

static int send_close(masq_conn *c, uint64_t now) {
  if (c->dead) return 0;
  c->dead = 1;
  if (!c->qc || ngtcp2_conn_in_closing_period(c->qc) || ngtcp2_conn_in_draining_period(c->qc))
    return 0;
  uint8_t buf[MASQ_OUTER_UDP_PAYLOAD];
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi;
  ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c->qc, &ps.path, &pi, buf, sizeof(buf),
                                                      &c->ccerr, now);
  if (n <= 0) return -1;
  /* Best effort: a lost CONNECTION_CLOSE ends in the peer's idle timeout. */
  return c->cb.send(c, c->ud, &ps.path, buf, (size_t)n, (size_t)n);
}

void masq_conn_close(masq_conn *c, uint64_t h3_error, uint64_t now) {
  if (c->dead) return;
  if (!c->why[0]) masq_conn_fail(c, "closed locally");
  masq_conn_set_app_error(c, h3_error);
  if (c->h3) nghttp3_conn_submit_shutdown_notice(c->h3);
  send_close(c, now);
}

/* ---- packet input and timers ----------------------------------------- */

static int read_error(masq_conn *c, int rv, uint64_t now) {
  switch (rv) {
  case NGTCP2_ERR_DRAINING:
    masq_conn_fail(c, "peer closed the connection");
    c->dead = 1;
    return MASQ_SESS_ERR_FATAL;
  case NGTCP2_ERR_DROP_CONN:
    masq_conn_fail(c, "connection dropped");
    c->dead = 1;
    return MASQ_SESS_ERR_FATAL;
  case NGTCP2_ERR_CRYPTO:
    masq_conn_fail(c, "TLS handshake failed: %s",
                   gnutls_alert_get_name(ngtcp2_conn_get_tls_alert(c->qc)));
    ngtcp2_ccerr_set_tls_alert(&c->ccerr, ngtcp2_conn_get_tls_alert(c->qc), NULL, 0);
    break;
  case NGTCP2_ERR_CALLBACK_FAILURE:
    break; /* the callback set ccerr and the reason */
  default:
    masq_conn_fail(c, "QUIC error: %s", ngtcp2_strerror(rv));
    ngtcp2_ccerr_set_liberr(&c->ccerr, rv, NULL, 0);
  }
  send_close(c, now);
  return MASQ_SESS_ERR_FATAL;
}

int masq_conn_read(masq_conn *c, const ngtcp2_path *path, const uint8_t *pkt, size_t len,
                   uint64_t now) {
  if (c->dead) return MASQ_SESS_ERR_FATAL;
  ngtcp2_pkt_info pi = {0};
  int rv = ngtcp2_conn_read_pkt(c->qc, path, &pi, pkt, len, now);
  if (rv != 0) return read_error(c, rv, now);
  return 0;
}

uint64_t masq_conn_expiry(masq_conn *c) {
  if (c->dead) return UINT64_MAX;
  return ngtcp2_conn_get_expiry(c->qc);
}

int masq_conn_on_timer(masq_conn *c, uint64_t now) {
  if (c->dead) return MASQ_SESS_ERR_FATAL;
  int rv = ngtcp2_conn_handle_expiry(c->qc, now);
  if (rv == NGTCP2_ERR_IDLE_CLOSE || rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
    masq_conn_fail(c, rv == NGTCP2_ERR_IDLE_CLOSE ? "idle timeout" : "handshake timeout");
    c->dead = 1;
    return MASQ_SESS_ERR_FATAL;
  }
  if (rv != 0) return read_error(c, rv, now);
  return masq_conn_write(c, now);
}

int masq_conn_is_dead(const masq_conn *c) { return c->dead; }

const char *masq_conn_error_str(const masq_conn *c) {
  return c->why[0] ? c->why : "no error";
}

const masq_conn_stats *masq_conn_get_stats(const masq_conn *c) { return &c->stats; }

/* ---- datagrams out --------------------------------------------------- */

size_t masq_conn_max_datagram(masq_conn *c, int64_t sid) {
  const ngtcp2_transport_params *rp = ngtcp2_conn_get_remote_transport_params(c->qc);
  if (!rp || !rp->max_datagram_frame_size) return 0;
  size_t udp = ngtcp2_conn_get_path_max_tx_udp_payload_size(c->qc);
  size_t dcid = ngtcp2_conn_get_dcid(c->qc)->datalen;
  /* Worst case short header (RFC 9000 §17.3.1): flags, DCID, 4-byte
   * packet number; then the AEAD tag and a DATAGRAM frame type with a
   * 2-byte length (RFC 9221 §4). */
  size_t overhead = 1 + dcid + 4 + 16 /* AEAD tag: AES-GCM, ChaCha20-Poly1305 */ + 1 + 2;
  size_t frame_max = rp->max_datagram_frame_size > 3 ? (size_t)rp->max_datagram_frame_size - 3 : 0;
  size_t room = udp > overhead ? udp - overhead : 0;
  if (room > frame_max) room = frame_max;
  if (room > sizeof(c->dq[0].data)) room = sizeof(c->dq[0].data);
  size_t prefix = masq_h3dgram_prefix_len(sid, MASQ_CONTEXT_ID_UDP);
  return room > prefix ? room - prefix : 0;
}

int masq_conn_datagrams_enabled(masq_conn *c) {
  const ngtcp2_transport_params *rp = ngtcp2_conn_get_remote_transport_params(c->qc);
  return !c->no_h3_datagram && c->settings_rcvd && c->peer_h3_datagram && rp &&
         rp->max_datagram_frame_size > 0;
}

int masq_conn_queue_datagram(masq_conn *c, int64_t sid, const uint8_t *p, size_t n) {
  if (n > masq_conn_max_datagram(c, sid)) {
    c->stats.drop_too_big++;
    return MASQ_SESS_ERR_TOO_BIG;
  }
  if (c->dqcount == c->dqcap) {
    c->stats.drop_queue_full++;
    return MASQ_SESS_ERR_QUEUE_FULL;
  }
  masq_dgram_slot *s = &c->dq[(c->dqhead + c->dqcount) % c->dqcap];
  size_t off = masq_h3dgram_prefix_encode(s->data, sid, MASQ_CONTEXT_ID_UDP);
  memcpy(s->data + off, p, n);
  s->len = (uint16_t)(off + n);
  c->dqcount++;
  return 0;
}
