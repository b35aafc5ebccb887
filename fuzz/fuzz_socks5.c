/* Fuzzes the SOCKS5 server codec. Byte 0 picks where the rest is split
 * in two; both parser modes (no auth, username/password) read it whole
 * and split and must report the same events. Every value reported must
 * be in range, a parsed request must encode back to the very bytes it
 * was read from, and the same bytes read as a UDP ASSOCIATE datagram
 * must re-encode to its header. Inputs are copied into buffers of their
 * exact size so that ASan sees any over-read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/socks5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok) abort();
}

typedef struct {
  int ev[8];
  size_t nev;
  uint8_t method;
  size_t ulen, plen;
  uint8_t cred[512];
  masq_socks5_request req;
  masq_socks5_err error;
  size_t end;
  size_t req_start; /* offset of the request's first byte */
  uint8_t reply[MASQ_SOCKS5_REPLY_MAX];
  size_t nreply;
} trace;

static void check_addr(const masq_socks5_addr *a) {
  if (a->atyp == MASQ_SOCKS5_ATYP_DOMAIN) {
    check(a->hostlen >= 1 && strlen(a->host) == a->hostlen);
  } else {
    check(a->atyp == MASQ_SOCKS5_ATYP_IPV4 || a->atyp == MASQ_SOCKS5_ATYP_IPV6);
    check(a->ip.family == (a->atyp == MASQ_SOCKS5_ATYP_IPV4 ? 4 : 6));
  }
}

/* Records one event with its values, checking them on the way. */
static void record(masq_socks5_parser *p, masq_socks5_event ev, trace *t) {
  check(t->nev < 8);
  t->ev[t->nev++] = ev;
  if (ev == MASQ_SOCKS5_METHOD) {
    t->method = p->method;
    check(p->method == (p->require_auth ? MASQ_SOCKS5_METHOD_USERPASS : MASQ_SOCKS5_METHOD_NOAUTH));
    t->req_start = t->end;
  } else if (ev == MASQ_SOCKS5_AUTH) {
    const uint8_t *lo = p->buf, *hi = p->buf + sizeof(p->buf);
    check(p->auth.ulen <= 255 && p->auth.plen <= 255);
    check(p->auth.user >= lo && p->auth.user + p->auth.ulen <= hi);
    check(p->auth.pass >= lo && p->auth.pass + p->auth.plen <= hi);
    t->ulen = p->auth.ulen;
    t->plen = p->auth.plen;
    memcpy(t->cred, p->auth.user, t->ulen);
    memcpy(t->cred + 256, p->auth.pass, t->plen);
    t->req_start = t->end;
  } else if (ev == MASQ_SOCKS5_REQUEST) {
    check(p->req.cmd >= 1 && p->req.cmd <= 3);
    check_addr(&p->req.dst);
    t->req = p->req;
  } else if (ev == MASQ_SOCKS5_ERROR) {
    t->error = p->error;
    t->nreply = masq_socks5_error_reply(p, t->reply, sizeof(t->reply));
    check(t->nreply == 0 || t->nreply == 2 || t->nreply == 10);
  }
}

/* Feeds d[0..n) until used up or negotiation is over; 1 when over. */
static int feed(masq_socks5_parser *p, const uint8_t *d, size_t n, trace *t) {
  for (;;) {
    size_t used = 12345;
    masq_socks5_event ev = masq_socks5_parser_feed(p, d, n, &used);
    check(used <= n);
    t->end += used;
    d += used;
    n -= used;
    if (ev == MASQ_SOCKS5_NEED_MORE) {
      check(n == 0);
      return 0;
    }
    check(ev != MASQ_SOCKS5_DONE);
    record(p, ev, t);
    if (ev == MASQ_SOCKS5_REQUEST || ev == MASQ_SOCKS5_ERROR) {
      /* Final: nothing more is ever consumed. */
      check(masq_socks5_parser_feed(p, d, n, &used) != MASQ_SOCKS5_NEED_MORE && used == 0);
      return 1;
    }
  }
}

/* Runs one mode over in[0..n) split at k, each part in its own buffer. */
static void run(int auth, const uint8_t *in, size_t n, size_t k, trace *t) {
  masq_socks5_parser p;
  masq_socks5_parser_init(&p, auth);
  memset(t, 0, sizeof(*t));
  uint8_t *a = malloc(k ? k : 1), *b = malloc(n - k ? n - k : 1);
  if (a == NULL || b == NULL) abort();
  memcpy(a, in, k);
  memcpy(b, in + k, n - k);
  if (!feed(&p, a, k, t)) feed(&p, b, n - k, t);
  free(a);
  free(b);
}

static void same(const trace *x, const trace *y) {
  check(x->nev == y->nev && memcmp(x->ev, y->ev, sizeof(x->ev)) == 0);
  check(x->method == y->method && x->ulen == y->ulen && x->plen == y->plen);
  check(memcmp(x->cred, y->cred, sizeof(x->cred)) == 0);
  check(x->req.cmd == y->req.cmd && memcmp(&x->req.dst, &y->req.dst, sizeof(x->req.dst)) == 0);
  check(x->error == y->error && x->nreply == y->nreply);
  check(memcmp(x->reply, y->reply, x->nreply) == 0);
  int failed = x->nev > 0 && x->ev[x->nev - 1] == MASQ_SOCKS5_ERROR;
  if (!failed) check(x->end == y->end);
}

/* A request has a reply's layout with CMD for REP, and its encoding is
 * unique: encoding the parsed address must give back the input bytes. */
static void check_request_bytes(const trace *t, const uint8_t *in) {
  if (t->nev == 0 || t->ev[t->nev - 1] != MASQ_SOCKS5_REQUEST) return;
  uint8_t enc[MASQ_SOCKS5_REPLY_MAX];
  size_t n = masq_socks5_reply_encode(t->req.cmd, &t->req.dst, enc, sizeof(enc));
  check(n > 0 && n == t->end - t->req_start);
  check(memcmp(enc, in + t->req_start, n) == 0);
}

static void fuzz_udp(const uint8_t *in, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  if (d == NULL) abort();
  memcpy(d, in, n);
  masq_socks5_addr a;
  size_t hl = 0;
  int rc = masq_socks5_udp_decode(d, n, &a, &hl);
  check(rc <= 0 && rc >= MASQ_SOCKS5_UDP_DOMAIN);
  if (rc == 0) {
    uint8_t enc[MASQ_SOCKS5_UDP_HDR_MAX];
    check_addr(&a);
    check(hl <= n && hl <= MASQ_SOCKS5_UDP_HDR_MAX);
    check(masq_socks5_udp_encode(&a, enc, sizeof(enc)) == hl && memcmp(enc, d, hl) == 0);
  }
  free(d);
}

static void fuzz_mapping(const uint8_t *in, size_t n) {
  char type[40];
  size_t m = n < sizeof(type) - 1 ? n : sizeof(type) - 1;
  memcpy(type, in, m);
  type[m] = '\0';
  int status = n >= 2 ? (in[0] << 8 | in[1]) % 700 : 0;
  check(masq_socks5_rep_from_proxy_status(status, type) <= MASQ_SOCKS5_REP_ATYP_NOT_SUPPORTED);
  check(masq_socks5_rep_from_proxy_status(status, NULL) <= MASQ_SOCKS5_REP_ATYP_NOT_SUPPORTED);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 4096) return 0;
  const uint8_t *in = data + 1;
  size_t n = size - 1;
  size_t k = n == 0 ? 0 : (size_t)data[0] % (n + 1);
  for (int auth = 0; auth <= 1; auth++) {
    trace whole, split;
    run(auth, in, n, n, &whole);
    run(auth, in, n, k, &split);
    same(&whole, &split);
    check_request_bytes(&whole, in);
  }
  fuzz_udp(in, n);
  fuzz_mapping(in, n);
  return 0;
}
