/* SOCKS5 server-side codec (RFC 1928, RFC 1929).
 *
 * Every message the client sends has a length that its own first bytes
 * tell (NMETHODS, ULEN then PLEN, ATYP then the domain length), so the
 * parser is one loop: work out how many bytes the current message needs
 * from what it holds, copy at most that many, check the fields that have
 * arrived, and report the message once it is whole. Checking fields as
 * they arrive refuses garbage at its first byte instead of waiting for a
 * length it made up. */
#include "proto/socks5.h"

#include <string.h>

enum { ST_GREETING = 0, ST_AUTH, ST_REQUEST, ST_DONE, ST_FAILED };

void masq_socks5_parser_init(masq_socks5_parser *p, int require_auth) {
  memset(p, 0, sizeof(*p));
  p->state = ST_GREETING;
  p->require_auth = require_auth != 0;
}

/* Length of the address that starts at ATYP a[0] (ATYP, address, port),
 * as far as the n bytes held tell; 0 for an unknown ATYP. */
static size_t addr_need(const uint8_t *a, size_t n) {
  if (n < 1) return 1;
  switch (a[0]) {
  case MASQ_SOCKS5_ATYP_IPV4: return 1 + 4 + 2;
  case MASQ_SOCKS5_ATYP_IPV6: return 1 + 16 + 2;
  case MASQ_SOCKS5_ATYP_DOMAIN: return n < 2 ? 2 : 2 + (size_t)a[1] + 2;
  default: return 0;
  }
}

/* Bytes the current message needs, given the p->have bytes held. Never
 * more than sizeof(p->buf): each length field is one byte. */
static size_t message_need(const masq_socks5_parser *p) {
  const uint8_t *b = p->buf;
  size_t have = p->have;
  switch (p->state) {
  case ST_GREETING: return have < 2 ? 2 : 2 + (size_t)b[1];
  case ST_AUTH: {
    if (have < 2) return 2;
    size_t plen_at = 2 + (size_t)b[1];
    return have <= plen_at ? plen_at + 1 : plen_at + 1 + (size_t)b[plen_at];
  }
  default: /* ST_REQUEST: VER CMD RSV, then the address from ATYP */
    if (have < 4) return 4;
    return 3 + addr_need(b + 3, have - 3);
  }
}

static int atyp_known(uint8_t atyp) {
  return atyp == MASQ_SOCKS5_ATYP_IPV4 || atyp == MASQ_SOCKS5_ATYP_DOMAIN ||
         atyp == MASQ_SOCKS5_ATYP_IPV6;
}

/* Checks the request fields that have arrived, so the first bad byte is
 * refused; the REP that goes with each error is set in fail_request. */
static masq_socks5_err check_request(const uint8_t *b, size_t have) {
  if (have >= 1 && b[0] != MASQ_SOCKS5_VER) return MASQ_SOCKS5_ERR_REQUEST_VERSION;
  if (have >= 2 && (b[1] < MASQ_SOCKS5_CMD_CONNECT || b[1] > MASQ_SOCKS5_CMD_UDP_ASSOCIATE))
    return MASQ_SOCKS5_ERR_CMD;
  if (have >= 3 && b[2] != 0) return MASQ_SOCKS5_ERR_RSV;
  if (have >= 4 && !atyp_known(b[3])) return MASQ_SOCKS5_ERR_ATYP;
  if (have >= 5 && b[3] == MASQ_SOCKS5_ATYP_DOMAIN && b[4] == 0) return MASQ_SOCKS5_ERR_DOMAIN;
  return MASQ_SOCKS5_OK;
}

static masq_socks5_err check_fields(const masq_socks5_parser *p) {
  if (p->have == 0) return MASQ_SOCKS5_OK;
  switch (p->state) {
  case ST_GREETING:
    return p->buf[0] == MASQ_SOCKS5_VER ? MASQ_SOCKS5_OK : MASQ_SOCKS5_ERR_GREETING_VERSION;
  case ST_AUTH:
    return p->buf[0] == MASQ_SOCKS5_AUTH_VER ? MASQ_SOCKS5_OK : MASQ_SOCKS5_ERR_AUTH_VERSION;
  default: return check_request(p->buf, p->have);
  }
}

/* RFC 1928 §6 names a REP for two of the request errors; the others are
 * malformed requests, for which "general SOCKS server failure" is all
 * the client can be told. */
static uint8_t rep_for(masq_socks5_err e) {
  if (e == MASQ_SOCKS5_ERR_CMD) return MASQ_SOCKS5_REP_CMD_NOT_SUPPORTED;
  if (e == MASQ_SOCKS5_ERR_ATYP) return MASQ_SOCKS5_REP_ATYP_NOT_SUPPORTED;
  return MASQ_SOCKS5_REP_GENERAL_FAILURE;
}

static masq_socks5_event fail(masq_socks5_parser *p, masq_socks5_err e) {
  p->state = ST_FAILED;
  p->error = e;
  p->rep = rep_for(e);
  return MASQ_SOCKS5_ERROR;
}

/* Decodes ATYP DST.ADDR DST.PORT from a[0..n) into *out. Returns the
 * bytes used, or a negative MASQ_SOCKS5_UDP_* error. Shared by requests
 * and UDP headers, which carry the same address encoding. */
static int addr_decode(const uint8_t *a, size_t n, masq_socks5_addr *out) {
  size_t need = addr_need(a, n);
  if (n < 1) return MASQ_SOCKS5_UDP_TRUNCATED;
  if (need == 0) return MASQ_SOCKS5_UDP_ATYP;
  if (n < need) return MASQ_SOCKS5_UDP_TRUNCATED;
  masq_socks5_addr r;
  memset(&r, 0, sizeof(r));
  r.atyp = a[0];
  if (a[0] == MASQ_SOCKS5_ATYP_DOMAIN) {
    /* A NUL would cut the name short for every C string API downstream,
     * so what gets resolved would differ from what was policy-checked. */
    if (a[1] == 0 || memchr(a + 2, 0, a[1]) != NULL) return MASQ_SOCKS5_UDP_DOMAIN;
    r.hostlen = a[1];
    memcpy(r.host, a + 2, a[1]);
  } else {
    r.ip.family = a[0] == MASQ_SOCKS5_ATYP_IPV4 ? 4 : 6;
    memcpy(r.ip.a, a + 1, need - 3);
  }
  r.port = (uint16_t)((a[need - 2] << 8) | a[need - 1]);
  *out = r;
  return (int)need;
}

/* The method masq selects from the offered ones (RFC 1928 §3). With
 * credentials configured only 0x02 will do: accepting 0x00 as well would
 * let any client skip authentication. */
static uint8_t select_method(const masq_socks5_parser *p) {
  uint8_t want = p->require_auth ? MASQ_SOCKS5_METHOD_USERPASS : MASQ_SOCKS5_METHOD_NOAUTH;
  if (memchr(p->buf + 2, want, p->buf[1]) != NULL) return want;
  return MASQ_SOCKS5_METHOD_NONE;
}

/* A whole message is in buf: report it and move to the next phase. */
static masq_socks5_event complete(masq_socks5_parser *p) {
  switch (p->state) {
  case ST_GREETING:
    p->method = select_method(p);
    if (p->method == MASQ_SOCKS5_METHOD_NONE) return fail(p, MASQ_SOCKS5_ERR_NO_METHOD);
    p->state = p->method == MASQ_SOCKS5_METHOD_USERPASS ? ST_AUTH : ST_REQUEST;
    p->have = 0;
    return MASQ_SOCKS5_METHOD;
  case ST_AUTH: {
    size_t ulen = p->buf[1];
    p->auth.user = p->buf + 2;
    p->auth.ulen = ulen;
    p->auth.pass = p->buf + 3 + ulen;
    p->auth.plen = p->buf[2 + ulen];
    p->wipe = 1;
    p->state = ST_REQUEST;
    p->have = 0;
    return MASQ_SOCKS5_AUTH;
  }
  default: {
    int rc = addr_decode(p->buf + 3, p->have - 3, &p->req.dst);
    if (rc < 0) return fail(p, MASQ_SOCKS5_ERR_DOMAIN); /* the only error left */
    p->req.cmd = p->buf[1];
    p->state = ST_DONE;
    return MASQ_SOCKS5_REQUEST;
  }
  }
}

/* The password must not linger in memory longer than the caller needs
 * it, which is until it calls feed again. */
static void wipe_credentials(masq_socks5_parser *p) {
  if (!p->wipe) return;
  memset(p->buf, 0, sizeof(p->buf));
  memset(&p->auth, 0, sizeof(p->auth));
  p->wipe = 0;
}

masq_socks5_event masq_socks5_parser_feed(masq_socks5_parser *p, const uint8_t *data,
                                          size_t len, size_t *consumed) {
  size_t used = 0;
  *consumed = 0;
  if (p->state == ST_FAILED) return MASQ_SOCKS5_ERROR;
  if (p->state == ST_DONE) return MASQ_SOCKS5_DONE;
  wipe_credentials(p);
  for (;;) {
    size_t need = message_need(p);
    if (p->have >= need) break;
    if (used == len) {
      *consumed = used;
      return MASQ_SOCKS5_NEED_MORE;
    }
    size_t n = need - p->have < len - used ? need - p->have : len - used;
    memcpy(p->buf + p->have, data + used, n);
    p->have += n;
    used += n;
    masq_socks5_err e = check_fields(p);
    if (e != MASQ_SOCKS5_OK) {
      *consumed = used;
      return fail(p, e);
    }
  }
  *consumed = used;
  return complete(p);
}

size_t masq_socks5_error_reply(const masq_socks5_parser *p, uint8_t *out, size_t cap) {
  if (p->state != ST_FAILED) return 0;
  switch (p->error) {
  case MASQ_SOCKS5_ERR_GREETING_VERSION: return 0;
  case MASQ_SOCKS5_ERR_NO_METHOD:
    return masq_socks5_method_reply_encode(MASQ_SOCKS5_METHOD_NONE, out, cap);
  case MASQ_SOCKS5_ERR_AUTH_VERSION: return masq_socks5_auth_reply_encode(0, out, cap);
  default: return masq_socks5_reply_encode(p->rep, NULL, out, cap);
  }
}

size_t masq_socks5_method_reply_encode(uint8_t method, uint8_t *out, size_t cap) {
  if (cap < 2) return 0;
  out[0] = MASQ_SOCKS5_VER;
  out[1] = method;
  return 2;
}

size_t masq_socks5_auth_reply_encode(int ok, uint8_t *out, size_t cap) {
  if (cap < 2) return 0;
  out[0] = MASQ_SOCKS5_AUTH_VER;
  out[1] = ok ? MASQ_SOCKS5_AUTH_SUCCESS : MASQ_SOCKS5_AUTH_FAILURE;
  return 2;
}

/* Writes ATYP ADDR PORT for a at out. Returns the length, or 0 if it
 * does not fit or a is inconsistent (it would not decode back). */
static size_t addr_encode(const masq_socks5_addr *a, uint8_t *out, size_t cap) {
  size_t alen;
  if (a->atyp == MASQ_SOCKS5_ATYP_IPV4 && a->ip.family == 4) {
    alen = 4;
  } else if (a->atyp == MASQ_SOCKS5_ATYP_IPV6 && a->ip.family == 6) {
    alen = 16;
  } else if (a->atyp == MASQ_SOCKS5_ATYP_DOMAIN && a->hostlen > 0 &&
             memchr(a->host, 0, a->hostlen) == NULL) {
    alen = 1 + (size_t)a->hostlen;
  } else {
    return 0;
  }
  if (cap < 1 + alen + 2) return 0;
  out[0] = a->atyp;
  if (a->atyp == MASQ_SOCKS5_ATYP_DOMAIN) {
    out[1] = a->hostlen;
    memcpy(out + 2, a->host, a->hostlen);
  } else {
    memcpy(out + 1, a->ip.a, alen);
  }
  out[1 + alen] = (uint8_t)(a->port >> 8);
  out[2 + alen] = (uint8_t)a->port;
  return 1 + alen + 2;
}

size_t masq_socks5_reply_encode(uint8_t rep, const masq_socks5_addr *bnd, uint8_t *out,
                                size_t cap) {
  masq_socks5_addr zero;
  if (bnd == NULL) {
    memset(&zero, 0, sizeof(zero));
    zero.atyp = MASQ_SOCKS5_ATYP_IPV4;
    zero.ip.family = 4;
    bnd = &zero;
  }
  if (cap < 3) return 0;
  size_t n = addr_encode(bnd, out + 3, cap - 3);
  if (n == 0) return 0;
  out[0] = MASQ_SOCKS5_VER;
  out[1] = rep;
  out[2] = 0;
  return 3 + n;
}

int masq_socks5_udp_decode(const uint8_t *d, size_t len, masq_socks5_addr *dst,
                           size_t *hdrlen) {
  if (len < 4) return MASQ_SOCKS5_UDP_TRUNCATED;
  if (d[0] != 0 || d[1] != 0) return MASQ_SOCKS5_UDP_RSV;
  if (d[2] != 0) return MASQ_SOCKS5_UDP_FRAG;
  int rc = addr_decode(d + 3, len - 3, dst);
  if (rc < 0) return rc;
  *hdrlen = 3 + (size_t)rc;
  return 0;
}

size_t masq_socks5_udp_encode(const masq_socks5_addr *addr, uint8_t *out, size_t cap) {
  if (cap < 3) return 0;
  size_t n = addr_encode(addr, out + 3, cap - 3);
  if (n == 0) return 0;
  out[0] = 0;
  out[1] = 0;
  out[2] = 0;
  return 3 + n;
}

/* RFC 9209 §2.3 error types with a SOCKS5 counterpart; the rest (TLS,
 * proxy-internal, HTTP-level errors) are general failures. */
static const struct {
  const char *type;
  uint8_t rep;
} proxy_status_reps[] = {
    {"destination_ip_prohibited", MASQ_SOCKS5_REP_NOT_ALLOWED},
    {"http_request_denied", MASQ_SOCKS5_REP_NOT_ALLOWED},
    {"destination_ip_unroutable", MASQ_SOCKS5_REP_NET_UNREACHABLE},
    {"dns_error", MASQ_SOCKS5_REP_HOST_UNREACHABLE},
    {"dns_timeout", MASQ_SOCKS5_REP_HOST_UNREACHABLE},
    {"destination_not_found", MASQ_SOCKS5_REP_HOST_UNREACHABLE},
    {"destination_unavailable", MASQ_SOCKS5_REP_HOST_UNREACHABLE},
    {"connection_refused", MASQ_SOCKS5_REP_CONN_REFUSED},
    {"connection_timeout", MASQ_SOCKS5_REP_TTL_EXPIRED},
};

static uint8_t rep_from_status(int status) {
  if (status >= 200 && status <= 299) return MASQ_SOCKS5_REP_SUCCEEDED;
  if (status == 401 || status == 403 || status == 407) return MASQ_SOCKS5_REP_NOT_ALLOWED;
  if (status == 501) return MASQ_SOCKS5_REP_CMD_NOT_SUPPORTED;
  if (status == 504) return MASQ_SOCKS5_REP_TTL_EXPIRED;
  return MASQ_SOCKS5_REP_GENERAL_FAILURE;
}

uint8_t masq_socks5_rep_from_proxy_status(int http_status, const char *error_type) {
  if (error_type != NULL) {
    for (size_t i = 0; i < sizeof(proxy_status_reps) / sizeof(proxy_status_reps[0]); i++) {
      if (strcmp(error_type, proxy_status_reps[i].type) == 0) return proxy_status_reps[i].rep;
    }
    /* An error parameter contradicts a 2xx: trust the error. */
    if (http_status >= 200 && http_status <= 299) return MASQ_SOCKS5_REP_GENERAL_FAILURE;
  }
  return rep_from_status(http_status);
}
