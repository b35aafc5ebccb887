/* SOCKS5 server-side codec (RFC 1928, RFC 1929): the same events and
 * values however the client's bytes are split, every malformed field
 * refused with the reply RFC 1928 §6 names for it, and byte-exact
 * encoders. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "proto/socks5.h"

/* Everything a run of the parser reported, so runs can be compared. */
typedef struct {
  int ev[8];
  size_t nev;
  uint8_t method;
  uint8_t user[256], pass[256];
  size_t ulen, plen;
  masq_socks5_request req;
  masq_socks5_err error;
  size_t end; /* bytes consumed in all */
  uint8_t reply[MASQ_SOCKS5_REPLY_MAX];
  size_t nreply;
} trace;

/* Feeds data[off..off+n) until it is used up or negotiation ends.
 * Returns 1 once a final event (REQUEST, ERROR) was seen. */
static int feed_piece(masq_socks5_parser *p, trace *t, const uint8_t *data, size_t n) {
  while (1) {
    size_t used = 0;
    masq_socks5_event ev = masq_socks5_parser_feed(p, data, n, &used);
    assert_true(used <= n);
    t->end += used;
    data += used;
    n -= used;
    if (ev == MASQ_SOCKS5_NEED_MORE) {
      assert_int_equal(n, 0);
      return 0;
    }
    assert_true(t->nev < 8);
    t->ev[t->nev++] = ev;
    if (ev == MASQ_SOCKS5_METHOD) t->method = p->method;
    if (ev == MASQ_SOCKS5_AUTH) {
      /* Copied now: the next feed wipes them. */
      t->ulen = p->auth.ulen;
      t->plen = p->auth.plen;
      memcpy(t->user, p->auth.user, t->ulen);
      memcpy(t->pass, p->auth.pass, t->plen);
    }
    if (ev == MASQ_SOCKS5_REQUEST) {
      t->req = p->req;
      return 1;
    }
    if (ev == MASQ_SOCKS5_ERROR) {
      t->error = p->error;
      t->nreply = masq_socks5_error_reply(p, t->reply, sizeof(t->reply));
      return 1;
    }
  }
}

/* Runs the parser over data cut at the given points (ascending). */
static void run_cuts(int auth, const uint8_t *data, size_t len, const size_t *cuts, size_t ncuts,
                     trace *t) {
  masq_socks5_parser p;
  masq_socks5_parser_init(&p, auth);
  memset(t, 0, sizeof(*t));
  size_t prev = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t c = i < ncuts ? cuts[i] : len;
    if (feed_piece(&p, t, data + prev, c - prev)) return;
    prev = c;
  }
}

static void run(int auth, const uint8_t *data, size_t len, trace *t) {
  run_cuts(auth, data, len, NULL, 0, t);
}

static void assert_same(const trace *a, const trace *b) {
  assert_int_equal(a->nev, b->nev);
  assert_memory_equal(a->ev, b->ev, sizeof(a->ev));
  assert_int_equal(a->method, b->method);
  assert_int_equal(a->ulen, b->ulen);
  assert_int_equal(a->plen, b->plen);
  assert_memory_equal(a->user, b->user, a->ulen + 1);
  assert_memory_equal(a->pass, b->pass, a->plen + 1);
  assert_int_equal(a->req.cmd, b->req.cmd);
  assert_memory_equal(&a->req.dst, &b->req.dst, sizeof(a->req.dst));
  assert_int_equal(a->error, b->error);
  /* After an error how much was consumed is left open. */
  if (a->nev == 0 || a->ev[a->nev - 1] != MASQ_SOCKS5_ERROR) assert_int_equal(a->end, b->end);
  assert_int_equal(a->nreply, b->nreply);
  assert_memory_equal(a->reply, b->reply, a->nreply + 1);
}

/* Every one and every two cut points, and one byte at a time, give what
 * one piece gives. */
static void assert_split_invariant(int auth, const uint8_t *data, size_t len) {
  trace whole, t;
  run(auth, data, len, &whole);
  for (size_t k = 0; k <= len; k++) {
    run_cuts(auth, data, len, &k, 1, &t);
    assert_same(&whole, &t);
    for (size_t j = k; j <= len && len <= 64; j++) {
      size_t cuts[2] = {k, j};
      run_cuts(auth, data, len, cuts, 2, &t);
      assert_same(&whole, &t);
    }
  }
  size_t cuts[1024];
  assert_true(len <= 1024);
  for (size_t i = 0; i < len; i++) cuts[i] = i;
  run_cuts(auth, data, len, cuts, len, &t);
  assert_same(&whole, &t);
}

/* Greeting (no auth), CONNECT to 192.0.2.1:80, then tunnel data. */
static const uint8_t connect_v4[] = {
    0x05, 0x01, 0x00,                                       /* greeting */
    0x05, 0x01, 0x00, 0x01, 192, 0, 2, 1, 0x00, 0x50,       /* request */
    'h',  'i'};

static void test_connect_ipv4(void **state) {
  (void)state;
  trace t;
  run(0, connect_v4, sizeof(connect_v4), &t);
  assert_int_equal(t.nev, 2);
  assert_int_equal(t.ev[0], MASQ_SOCKS5_METHOD);
  assert_int_equal(t.method, MASQ_SOCKS5_METHOD_NOAUTH);
  assert_int_equal(t.ev[1], MASQ_SOCKS5_REQUEST);
  assert_int_equal(t.req.cmd, MASQ_SOCKS5_CMD_CONNECT);
  assert_int_equal(t.req.dst.atyp, MASQ_SOCKS5_ATYP_IPV4);
  assert_int_equal(t.req.dst.ip.family, 4);
  const uint8_t want[4] = {192, 0, 2, 1};
  assert_memory_equal(t.req.dst.ip.a, want, 4);
  assert_int_equal(t.req.dst.port, 80);
  /* The tunnel's first bytes are left to the caller. */
  assert_int_equal(t.end, sizeof(connect_v4) - 2);
  assert_split_invariant(0, connect_v4, sizeof(connect_v4));
}

/* Greeting offering no-auth and user/pass, RFC 1929 credentials, then a
 * CONNECT to a domain. */
static size_t build_userpass_domain(uint8_t *b, const char *user, const char *pass,
                                    const char *host, uint16_t port) {
  size_t n = 0;
  const uint8_t greet[] = {0x05, 0x02, 0x00, 0x02};
  memcpy(b, greet, sizeof(greet));
  n += sizeof(greet);
  b[n++] = 0x01;
  b[n++] = (uint8_t)strlen(user);
  memcpy(b + n, user, strlen(user));
  n += strlen(user);
  b[n++] = (uint8_t)strlen(pass);
  memcpy(b + n, pass, strlen(pass));
  n += strlen(pass);
  const uint8_t req[] = {0x05, 0x01, 0x00, 0x03};
  memcpy(b + n, req, sizeof(req));
  n += sizeof(req);
  b[n++] = (uint8_t)strlen(host);
  memcpy(b + n, host, strlen(host));
  n += strlen(host);
  b[n++] = (uint8_t)(port >> 8);
  b[n++] = (uint8_t)port;
  return n;
}

static void test_userpass_domain(void **state) {
  (void)state;
  uint8_t b[1024];
  size_t n = build_userpass_domain(b, "user", "secret", "example.com", 443);
  trace t;
  run(1, b, n, &t);
  assert_int_equal(t.nev, 3);
  assert_int_equal(t.ev[0], MASQ_SOCKS5_METHOD);
  assert_int_equal(t.method, MASQ_SOCKS5_METHOD_USERPASS);
  assert_int_equal(t.ev[1], MASQ_SOCKS5_AUTH);
  assert_int_equal(t.ulen, 4);
  assert_memory_equal(t.user, "user", 4);
  assert_int_equal(t.plen, 6);
  assert_memory_equal(t.pass, "secret", 6);
  assert_int_equal(t.ev[2], MASQ_SOCKS5_REQUEST);
  assert_int_equal(t.req.dst.atyp, MASQ_SOCKS5_ATYP_DOMAIN);
  assert_int_equal(t.req.dst.hostlen, 11);
  assert_string_equal(t.req.dst.host, "example.com");
  assert_int_equal(t.req.dst.port, 443);
  assert_int_equal(t.end, n);
  assert_split_invariant(1, b, n);
  /* Without credentials configured the same greeting gets 0x00, and the
   * RFC 1929 message is then read as a (bad) request. */
  run(0, b, n, &t);
  assert_int_equal(t.method, MASQ_SOCKS5_METHOD_NOAUTH);
  assert_int_equal(t.ev[1], MASQ_SOCKS5_ERROR);
  assert_int_equal(t.error, MASQ_SOCKS5_ERR_REQUEST_VERSION);
}

/* Longest messages: 255-byte name and password, 255-byte domain. */
static void test_longest_messages(void **state) {
  (void)state;
  char user[256], pass[256], host[256];
  memset(user, 'u', 255);
  memset(pass, 'p', 255);
  memset(host, 'h', 255);
  user[255] = pass[255] = host[255] = '\0';
  uint8_t b[1100];
  size_t n = build_userpass_domain(b, user, pass, host, 65535);
  assert_int_equal(n, 4 + MASQ_SOCKS5_AUTH_MAX + MASQ_SOCKS5_REQUEST_MAX);
  trace t;
  run(1, b, n, &t);
  assert_int_equal(t.nev, 3);
  assert_int_equal(t.ulen, 255);
  assert_int_equal(t.plen, 255);
  assert_int_equal(t.req.dst.hostlen, 255);
  assert_int_equal(strlen(t.req.dst.host), 255);
  assert_int_equal(t.req.dst.port, 65535);
  assert_split_invariant(1, b, 4 + MASQ_SOCKS5_AUTH_MAX);
  assert_split_invariant(1, b, n);
}

static void test_empty_credentials(void **state) {
  (void)state;
  const uint8_t b[] = {0x05, 0x01, 0x02, 0x01, 0x00, 0x00};
  trace t;
  run(1, b, sizeof(b), &t);
  assert_int_equal(t.nev, 2);
  assert_int_equal(t.ev[1], MASQ_SOCKS5_AUTH);
  assert_int_equal(t.ulen, 0);
  assert_int_equal(t.plen, 0);
}

static void test_ipv6_udp_associate_and_bind(void **state) {
  (void)state;
  /* UDP ASSOCIATE commonly names 0.0.0.0:0 or ::/0: port 0 is valid. */
  uint8_t b[] = {0x05, 0x01, 0x00, 0x05, 0x03, 0x00, 0x04, 0x20, 0x01, 0x0d, 0xb8, 0, 0,
                 0,    0,    0,    0,    0,    0,    0,    0,    0,    0x01, 0x00, 0x00};
  trace t;
  run(0, b, sizeof(b), &t);
  assert_int_equal(t.ev[1], MASQ_SOCKS5_REQUEST);
  assert_int_equal(t.req.cmd, MASQ_SOCKS5_CMD_UDP_ASSOCIATE);
  assert_int_equal(t.req.dst.atyp, MASQ_SOCKS5_ATYP_IPV6);
  assert_int_equal(t.req.dst.ip.family, 6);
  assert_int_equal(t.req.dst.ip.a[0], 0x20);
  assert_int_equal(t.req.dst.ip.a[15], 0x01);
  assert_int_equal(t.req.dst.port, 0);
  assert_split_invariant(0, b, sizeof(b));
  b[4] = MASQ_SOCKS5_CMD_BIND;
  run(0, b, sizeof(b), &t);
  assert_int_equal(t.req.cmd, MASQ_SOCKS5_CMD_BIND);
}

static void test_method_selection(void **state) {
  (void)state;
  trace t;
  const uint8_t many[] = {0x05, 0x03, 0x01, 0x02, 0x00};
  run(0, many, sizeof(many), &t);
  assert_int_equal(t.method, MASQ_SOCKS5_METHOD_NOAUTH);
  run(1, many, sizeof(many), &t);
  assert_int_equal(t.method, MASQ_SOCKS5_METHOD_USERPASS);
  /* No acceptable method: X'FF', and auth cannot be skipped. */
  const uint8_t only_up[] = {0x05, 0x01, 0x02};
  const uint8_t only_none[] = {0x05, 0x01, 0x00};
  const uint8_t zero[] = {0x05, 0x00};
  const uint8_t ff[] = {0x05, 0xff};
  run(0, only_up, sizeof(only_up), &t);
  assert_int_equal(t.ev[0], MASQ_SOCKS5_ERROR);
  assert_int_equal(t.error, MASQ_SOCKS5_ERR_NO_METHOD);
  assert_int_equal(t.nreply, 2);
  assert_memory_equal(t.reply, ff, 2);
  run(1, only_none, sizeof(only_none), &t);
  assert_int_equal(t.error, MASQ_SOCKS5_ERR_NO_METHOD);
  assert_memory_equal(t.reply, ff, 2);
  run(0, zero, sizeof(zero), &t);
  assert_int_equal(t.error, MASQ_SOCKS5_ERR_NO_METHOD);
  assert_memory_equal(t.reply, ff, 2);
  assert_split_invariant(1, only_none, sizeof(only_none));
}

typedef struct {
  int auth;
  uint8_t in[16];
  size_t len;
  masq_socks5_err err;
  uint8_t reply[16];
  size_t nreply;
} bad_case;

#define REQ_REPLY(rep) {0x05, rep, 0x00, 0x01, 0, 0, 0, 0, 0, 0}, 10

static const bad_case bad_cases[] = {
    /* Greeting VER 4 (SOCKS4) or 'C' (HTTP CONNECT): nothing is sent. */
    {0, {0x04}, 1, MASQ_SOCKS5_ERR_GREETING_VERSION, {0}, 0},
    {0, {'C'}, 1, MASQ_SOCKS5_ERR_GREETING_VERSION, {0}, 0},
    /* RFC 1929 VER must be 1. */
    {1, {0x05, 0x01, 0x02, 0x05}, 4, MASQ_SOCKS5_ERR_AUTH_VERSION,
     {0x01, 0x01}, 2},
    {0, {0x05, 0x01, 0x00, 0x04}, 4, MASQ_SOCKS5_ERR_REQUEST_VERSION,
     REQ_REPLY(0x01)},
    {0, {0x05, 0x01, 0x00, 0x05, 0x04}, 5, MASQ_SOCKS5_ERR_CMD, REQ_REPLY(0x07)},
    {0, {0x05, 0x01, 0x00, 0x05, 0x00}, 5, MASQ_SOCKS5_ERR_CMD, REQ_REPLY(0x07)},
    {0, {0x05, 0x01, 0x00, 0x05, 0xff}, 5, MASQ_SOCKS5_ERR_CMD, REQ_REPLY(0x07)},
    {0, {0x05, 0x01, 0x00, 0x05, 0x01, 0x01}, 6, MASQ_SOCKS5_ERR_RSV, REQ_REPLY(0x01)},
    {0, {0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x02}, 7, MASQ_SOCKS5_ERR_ATYP, REQ_REPLY(0x08)},
    {0, {0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00}, 7, MASQ_SOCKS5_ERR_ATYP, REQ_REPLY(0x08)},
    {0, {0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x05}, 7, MASQ_SOCKS5_ERR_ATYP, REQ_REPLY(0x08)},
    /* Empty domain, NUL inside a domain. */
    {0, {0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, 0x00}, 8, MASQ_SOCKS5_ERR_DOMAIN,
     REQ_REPLY(0x01)},
    {0, {0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, 0x03, 'a', 0x00, 'b', 0x00, 0x50}, 13,
     MASQ_SOCKS5_ERR_DOMAIN, REQ_REPLY(0x01)},
};

static void test_malformed(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
    const bad_case *c = &bad_cases[i];
    trace t;
    run(c->auth, c->in, c->len, &t);
    assert_int_equal(t.ev[t.nev - 1], MASQ_SOCKS5_ERROR);
    assert_int_equal(t.error, c->err);
    assert_int_equal(t.nreply, c->nreply);
    assert_memory_equal(t.reply, c->reply, c->nreply);
    /* Each input ends at the offending byte: nothing after it is
     * waited for. */
    assert_split_invariant(c->auth, c->in, c->len);
  }
}

static void test_final_states(void **state) {
  (void)state;
  masq_socks5_parser p;
  size_t used = 99;
  masq_socks5_parser_init(&p, 0);
  assert_int_equal(masq_socks5_parser_feed(&p, NULL, 0, &used), MASQ_SOCKS5_NEED_MORE);
  assert_int_equal(used, 0);
  assert_int_equal(masq_socks5_parser_feed(&p, connect_v4, sizeof(connect_v4), &used),
                   MASQ_SOCKS5_METHOD);
  assert_int_equal(used, 3);
  uint8_t out[16];
  assert_int_equal(masq_socks5_error_reply(&p, out, sizeof(out)), 0);
  assert_int_equal(masq_socks5_parser_feed(&p, connect_v4 + 3, sizeof(connect_v4) - 3, &used),
                   MASQ_SOCKS5_REQUEST);
  assert_int_equal(used, 10);
  assert_int_equal(masq_socks5_parser_feed(&p, connect_v4 + 13, 2, &used), MASQ_SOCKS5_DONE);
  assert_int_equal(used, 0);
  /* After an error, nothing more is read. */
  const uint8_t bad[] = {0x04, 0x05, 0x01, 0x00};
  masq_socks5_parser_init(&p, 0);
  assert_int_equal(masq_socks5_parser_feed(&p, bad, sizeof(bad), &used), MASQ_SOCKS5_ERROR);
  assert_int_equal(masq_socks5_parser_feed(&p, bad + 1, 3, &used), MASQ_SOCKS5_ERROR);
  assert_int_equal(used, 0);
  assert_int_equal(p.error, MASQ_SOCKS5_ERR_GREETING_VERSION);
}

static void test_credentials_wiped(void **state) {
  (void)state;
  uint8_t b[1024];
  size_t n = build_userpass_domain(b, "alice", "hunter2", "a.example", 80);
  masq_socks5_parser p;
  size_t used, off = 0;
  masq_socks5_parser_init(&p, 1);
  assert_int_equal(masq_socks5_parser_feed(&p, b, n, &used), MASQ_SOCKS5_METHOD);
  off += used;
  assert_int_equal(masq_socks5_parser_feed(&p, b + off, n - off, &used), MASQ_SOCKS5_AUTH);
  off += used;
  assert_memory_equal(p.auth.pass, "hunter2", 7);
  assert_int_equal(masq_socks5_parser_feed(&p, b + off, 0, &used), MASQ_SOCKS5_NEED_MORE);
  assert_null(p.auth.pass);
  assert_null(memmem(p.buf, sizeof(p.buf), "hunter2", 7));
  assert_int_equal(masq_socks5_parser_feed(&p, b + off, n - off, &used), MASQ_SOCKS5_REQUEST);
  assert_string_equal(p.req.dst.host, "a.example");
}

static masq_socks5_addr v4addr(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port) {
  masq_socks5_addr x;
  memset(&x, 0, sizeof(x));
  x.atyp = MASQ_SOCKS5_ATYP_IPV4;
  x.ip.family = 4;
  x.ip.a[0] = a;
  x.ip.a[1] = b;
  x.ip.a[2] = c;
  x.ip.a[3] = d;
  x.port = port;
  return x;
}

static masq_socks5_addr name_addr(const char *host, uint16_t port) {
  masq_socks5_addr x;
  memset(&x, 0, sizeof(x));
  x.atyp = MASQ_SOCKS5_ATYP_DOMAIN;
  x.hostlen = (uint8_t)strlen(host);
  memcpy(x.host, host, strlen(host));
  x.port = port;
  return x;
}

/* The encoder writes want exactly and refuses every smaller buffer. */
static void assert_exact(size_t (*enc)(const masq_socks5_addr *, uint8_t, uint8_t *, size_t),
                         const masq_socks5_addr *a, uint8_t rep, const uint8_t *want,
                         size_t wlen) {
  uint8_t out[MASQ_SOCKS5_REPLY_MAX + 8];
  assert_int_equal(enc(a, rep, out, sizeof(out)), wlen);
  assert_memory_equal(out, want, wlen);
  for (size_t cap = 0; cap < wlen; cap++) assert_int_equal(enc(a, rep, out, cap), 0);
  assert_int_equal(enc(a, rep, out, wlen), wlen);
}

static size_t reply_enc(const masq_socks5_addr *a, uint8_t rep, uint8_t *out, size_t cap) {
  return masq_socks5_reply_encode(rep, a, out, cap);
}

static size_t udp_enc(const masq_socks5_addr *a, uint8_t rep, uint8_t *out, size_t cap) {
  (void)rep;
  return masq_socks5_udp_encode(a, out, cap);
}

static void test_reply_encoders(void **state) {
  (void)state;
  uint8_t out[8];
  const uint8_t m[] = {0x05, 0x02}, ok[] = {0x01, 0x00}, no[] = {0x01, 0x01};
  assert_int_equal(masq_socks5_method_reply_encode(0x02, out, sizeof(out)), 2);
  assert_memory_equal(out, m, 2);
  assert_int_equal(masq_socks5_method_reply_encode(0x02, out, 1), 0);
  assert_int_equal(masq_socks5_auth_reply_encode(1, out, sizeof(out)), 2);
  assert_memory_equal(out, ok, 2);
  assert_int_equal(masq_socks5_auth_reply_encode(0, out, sizeof(out)), 2);
  assert_memory_equal(out, no, 2);
  assert_int_equal(masq_socks5_auth_reply_encode(1, out, 1), 0);

  masq_socks5_addr a = v4addr(203, 0, 113, 5, 1080);
  const uint8_t r4[] = {0x05, 0x00, 0x00, 0x01, 203, 0, 113, 5, 0x04, 0x38};
  assert_exact(reply_enc, &a, 0x00, r4, sizeof(r4));
  const uint8_t fail[] = {0x05, 0x05, 0x00, 0x01, 0, 0, 0, 0, 0, 0};
  assert_exact(reply_enc, NULL, 0x05, fail, sizeof(fail));
  masq_socks5_addr n = name_addr("proxy.example", 443);
  const uint8_t rn[] = {0x05, 0x00, 0x00, 0x03, 13,  'p', 'r', 'o', 'x', 'y', '.',
                        'e',  'x',  'a',  'm',  'p', 'l', 'e', 0x01, 0xbb};
  assert_exact(reply_enc, &n, 0x00, rn, sizeof(rn));
  masq_socks5_addr six;
  memset(&six, 0, sizeof(six));
  six.atyp = MASQ_SOCKS5_ATYP_IPV6;
  six.ip.family = 6;
  six.ip.a[15] = 1;
  six.port = 53;
  const uint8_t r6[] = {0x05, 0x00, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0,
                        0,    0,    0,    0,    0, 0, 0, 0, 1, 0, 53};
  assert_exact(reply_enc, &six, 0x00, r6, sizeof(r6));
  /* Inconsistent addresses are refused, not sent half-right. */
  uint8_t big[MASQ_SOCKS5_REPLY_MAX];
  six.ip.family = 4;
  assert_int_equal(masq_socks5_reply_encode(0, &six, big, sizeof(big)), 0);
  n.hostlen = 0;
  assert_int_equal(masq_socks5_reply_encode(0, &n, big, sizeof(big)), 0);
  n = name_addr("a", 1);
  n.host[0] = '\0';
  assert_int_equal(masq_socks5_reply_encode(0, &n, big, sizeof(big)), 0);
  n.atyp = 2;
  assert_int_equal(masq_socks5_reply_encode(0, &n, big, sizeof(big)), 0);
}

/* A reply has the request's layout (REP where CMD was), so encoding a
 * parsed request's address as a reply and reading it back as a request
 * must give the same request. */
static void test_request_roundtrip(void **state) {
  (void)state;
  char host[256];
  memset(host, 'x', 255);
  host[255] = '\0';
  masq_socks5_addr addrs[] = {v4addr(10, 1, 2, 3, 8080), name_addr(host, 7), name_addr("a", 65535)};
  for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
    uint8_t b[3 + MASQ_SOCKS5_REPLY_MAX] = {0x05, 0x01, 0x00};
    size_t n = masq_socks5_reply_encode(MASQ_SOCKS5_CMD_CONNECT, &addrs[i], b + 3, sizeof(b) - 3);
    assert_true(n > 0);
    trace t;
    run(0, b, 3 + n, &t);
    assert_int_equal(t.ev[1], MASQ_SOCKS5_REQUEST);
    assert_memory_equal(&t.req.dst, &addrs[i], sizeof(addrs[i]));
  }
}

static void test_udp_header(void **state) {
  (void)state;
  /* A DNS query to 192.0.2.53:53 (RFC 1928 §7 layout). */
  const uint8_t d[] = {0x00, 0x00, 0x00, 0x01, 192, 0, 2, 53, 0x00, 0x35, 'q', 'r', 'y'};
  masq_socks5_addr a;
  size_t hl = 0;
  assert_int_equal(masq_socks5_udp_decode(d, sizeof(d), &a, &hl), 0);
  assert_int_equal(hl, 10);
  assert_int_equal(a.atyp, MASQ_SOCKS5_ATYP_IPV4);
  assert_int_equal(a.ip.a[3], 53);
  assert_int_equal(a.port, 53);
  /* Empty DATA is a valid datagram. */
  assert_int_equal(masq_socks5_udp_decode(d, 10, &a, &hl), 0);
  for (size_t n = 0; n < 10; n++)
    assert_int_equal(masq_socks5_udp_decode(d, n, &a, &hl), MASQ_SOCKS5_UDP_TRUNCATED);
  assert_exact(udp_enc, &a, 0, d, 10);

  uint8_t x[sizeof(d)];
  memcpy(x, d, sizeof(d));
  x[2] = 0x01; /* a fragment: MUST drop */
  assert_int_equal(masq_socks5_udp_decode(x, sizeof(x), &a, &hl), MASQ_SOCKS5_UDP_FRAG);
  x[2] = 0x80; /* "end of fragment sequence" flag alone */
  assert_int_equal(masq_socks5_udp_decode(x, sizeof(x), &a, &hl), MASQ_SOCKS5_UDP_FRAG);
  memcpy(x, d, sizeof(d));
  x[1] = 0x01;
  assert_int_equal(masq_socks5_udp_decode(x, sizeof(x), &a, &hl), MASQ_SOCKS5_UDP_RSV);
  memcpy(x, d, sizeof(d));
  x[3] = 0x02;
  assert_int_equal(masq_socks5_udp_decode(x, sizeof(x), &a, &hl), MASQ_SOCKS5_UDP_ATYP);
  const uint8_t empty_name[] = {0, 0, 0, 0x03, 0x00, 0x00, 0x35};
  assert_int_equal(masq_socks5_udp_decode(empty_name, sizeof(empty_name), &a, &hl),
                   MASQ_SOCKS5_UDP_DOMAIN);
  const uint8_t nul_name[] = {0, 0, 0, 0x03, 0x02, 'a', 0x00, 0x00, 0x35};
  assert_int_equal(masq_socks5_udp_decode(nul_name, sizeof(nul_name), &a, &hl),
                   MASQ_SOCKS5_UDP_DOMAIN);
  const uint8_t name[] = {0, 0, 0, 0x03, 0x03, 'a', '.', 'b', 0x01, 0xbb, 'z'};
  assert_int_equal(masq_socks5_udp_decode(name, sizeof(name), &a, &hl), 0);
  assert_int_equal(hl, 10);
  assert_string_equal(a.host, "a.b");
  assert_exact(udp_enc, &a, 0, name, 10);
  for (size_t n = 0; n < 10; n++)
    assert_int_equal(masq_socks5_udp_decode(name, n, &a, &hl), MASQ_SOCKS5_UDP_TRUNCATED);
}

static void test_rep_mapping(void **state) {
  (void)state;
  static const struct {
    int status;
    const char *type;
    uint8_t rep;
  } m[] = {
      {200, NULL, 0x00},
      {299, NULL, 0x00},
      {403, "destination_ip_prohibited", 0x02},
      {403, "http_request_denied", 0x02},
      {502, "destination_ip_unroutable", 0x03},
      {502, "dns_error", 0x04},
      {504, "dns_timeout", 0x04},
      {502, "destination_not_found", 0x04},
      {503, "destination_unavailable", 0x04},
      {502, "connection_refused", 0x05},
      {504, "connection_timeout", 0x06},
      {502, "proxy_internal_error", 0x01},
      {502, "DNS_ERROR", 0x01}, /* types are exact tokens */
      {200, "dns_error", 0x04},
      {200, "connection_terminated", 0x01},
      {401, NULL, 0x02},
      {403, NULL, 0x02},
      {407, NULL, 0x02},
      {501, NULL, 0x07},
      {504, NULL, 0x06},
      {400, NULL, 0x01},
      {502, NULL, 0x01},
      {503, NULL, 0x01},
      {0, NULL, 0x01},
  };
  for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
    assert_int_equal(masq_socks5_rep_from_proxy_status(m[i].status, m[i].type), m[i].rep);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_connect_ipv4),
      cmocka_unit_test(test_userpass_domain),
      cmocka_unit_test(test_longest_messages),
      cmocka_unit_test(test_empty_credentials),
      cmocka_unit_test(test_ipv6_udp_associate_and_bind),
      cmocka_unit_test(test_method_selection),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_final_states),
      cmocka_unit_test(test_credentials_wiped),
      cmocka_unit_test(test_reply_encoders),
      cmocka_unit_test(test_request_roundtrip),
      cmocka_unit_test(test_udp_header),
      cmocka_unit_test(test_rep_mapping),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
