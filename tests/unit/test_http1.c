/* HTTP/1.1 proxy request heads (RFC 9112, RFC 9110 §9.3.6): the same
 * result however the bytes arrive, the RFC examples, every refusal with
 * its status, and byte-exact forwarded heads and responses. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proto/http1.h"

/* Building blocks of the test heads. */
#define H "Host: a\r\n"
#define G "GET http://a/ HTTP/1.1\r\n"
#define P "POST http://a/ HTTP/1.1\r\n" H

static masq_http1_result parse_str(masq_http1_parser *p, const char *s) {
  masq_http1_parser_init(p);
  return masq_http1_parse(p, (const uint8_t *)s, strlen(s));
}

/* Feeds s[0..len) growing the buffer to each cut in turn, then whole. */
static masq_http1_result parse_cuts(masq_http1_parser *p, const uint8_t *s, size_t len,
                                    const size_t *cuts, size_t ncuts) {
  masq_http1_parser_init(p);
  for (size_t i = 0; i < ncuts; i++) {
    masq_http1_result r = masq_http1_parse(p, s, cuts[i]);
    if (r != MASQ_HTTP1_NEED_MORE) {
      /* Final results stay final. */
      assert_int_equal(masq_http1_parse(p, s, len), r);
      return r;
    }
  }
  return masq_http1_parse(p, s, len);
}

/* Every cut point, and one byte at a time, leave the parser exactly as
 * one call does (same result, status, spans and flags). */
static void assert_split_invariant(const uint8_t *s, size_t len) {
  masq_http1_parser whole, t;
  masq_http1_parser_init(&whole);
  masq_http1_result want = masq_http1_parse(&whole, s, len);
  for (size_t k = 0; k <= len; k++) {
    assert_int_equal(parse_cuts(&t, s, len, &k, 1), want);
    assert_memory_equal(&t, &whole, sizeof(t));
  }
  size_t *cuts = malloc((len + 1) * sizeof(*cuts));
  assert_non_null(cuts);
  for (size_t i = 0; i < len; i++) cuts[i] = i + 1;
  assert_int_equal(parse_cuts(&t, s, len, cuts, len), want);
  assert_memory_equal(&t, &whole, sizeof(t));
  free(cuts);
}

static void assert_split_invariant_str(const char *s) {
  assert_split_invariant((const uint8_t *)s, strlen(s));
}

static void assert_span(const char *buf, masq_http1_span sp, const char *want) {
  assert_int_equal(sp.len, strlen(want));
  assert_memory_equal(buf + sp.off, want, sp.len);
}

/* RFC 9110 §9.3.6 example, followed by the first tunnel bytes. */
static void test_connect_rfc_example(void **state) {
  (void)state;
  const char *s = "CONNECT server.example.com:80 HTTP/1.1\r\n"
                  "Host: server.example.com\r\n"
                  "\r\n"
                  "\x16\x03\x01";
  masq_http1_parser p;
  assert_int_equal(parse_str(&p, s), MASQ_HTTP1_DONE);
  const masq_http1_request *r = &p.req;
  assert_true(r->is_connect);
  assert_span(s, r->method, "CONNECT");
  assert_string_equal(r->host, "server.example.com");
  assert_int_equal(r->port, 80);
  assert_span(s, r->authority, "server.example.com:80");
  assert_int_equal(r->version_minor, 1);
  assert_int_equal(r->nfields, 1);
  assert_int_equal(r->host_field, 0);
  assert_span(s, r->fields[0].value, "server.example.com");
  assert_int_equal(r->proxy_auth, -1);
  assert_int_equal(r->content_length, -1);
  assert_false(r->chunked);
  assert_true(r->persistent);
  assert_int_equal(r->head_len, strlen(s) - 3);
  assert_int_equal(masq_http1_forward_head(r, (const uint8_t *)s, NULL, NULL, 0),
                   MASQ_HTTP1_FWD_CONNECT);
  assert_split_invariant_str(s);
}

static void test_connect_v6_and_auth(void **state) {
  (void)state;
  const char *s = "CONNECT [2001:db8::1]:443 HTTP/1.1\n"
                  "host: [2001:db8::1]:443\n"
                  "Proxy-Authorization:   Basic dXNlcjpwYXNz  \n"
                  "Content-Length: 0\n"
                  "Connection: Keep-Alive , ,close\n"
                  "\n";
  masq_http1_parser p;
  assert_int_equal(parse_str(&p, s), MASQ_HTTP1_DONE);
  const masq_http1_request *r = &p.req;
  assert_string_equal(r->host, "2001:db8::1");
  assert_int_equal(r->port, 443);
  assert_int_equal(r->proxy_auth, 1);
  assert_span(s, r->fields[1].name, "Proxy-Authorization");
  assert_span(s, r->fields[1].value, "Basic dXNlcjpwYXNz");
  assert_int_equal(r->content_length, 0);
  assert_int_equal(r->nconn, 2);
  assert_span(s, r->conn[0], "Keep-Alive");
  assert_span(s, r->conn[1], "close");
  assert_true(r->conn_close);
  assert_true(r->conn_keep_alive);
  assert_false(r->persistent);
  assert_int_equal(r->head_len, strlen(s));
  assert_split_invariant_str(s);
}

/* RFC 9112 §3.2.2 example of absolute-form, forwarded in origin-form. */
static void test_absolute_form_forward(void **state) {
  (void)state;
  const char *s = "GET http://www.example.org/pub/WWW/TheProject.html HTTP/1.1\r\n"
                  "Host: www.example.org\r\n"
                  "User-Agent: t\r\n"
                  "\r\n";
  masq_http1_parser p;
  assert_int_equal(parse_str(&p, s), MASQ_HTTP1_DONE);
  const masq_http1_request *r = &p.req;
  assert_false(r->is_connect);
  assert_string_equal(r->host, "www.example.org");
  assert_int_equal(r->port, 80);
  assert_span(s, r->path, "/pub/WWW/TheProject.html");
  uint8_t out[512];
  const char *want = "GET /pub/WWW/TheProject.html HTTP/1.1\r\n"
                     "Host: www.example.org\r\n"
                     "User-Agent: t\r\n"
                     "\r\n";
  int n = masq_http1_forward_head(r, (const uint8_t *)s, NULL, out, sizeof(out));
  assert_int_equal(n, strlen(want));
  assert_memory_equal(out, want, n);
  for (size_t cap = 0; cap < (size_t)n; cap++)
    assert_int_equal(masq_http1_forward_head(r, (const uint8_t *)s, NULL, out, cap),
                     MASQ_HTTP1_FWD_NOSPACE);
  assert_split_invariant_str(s);
}

static void assert_forward(const char *in, const masq_http1_forward_opts *o, const char *want) {
  masq_http1_parser p;
  assert_int_equal(parse_str(&p, in), MASQ_HTTP1_DONE);
  uint8_t out[2048];
  int n = masq_http1_forward_head(&p.req, (const uint8_t *)in, o, out, sizeof(out));
  assert_true(n > 0);
  out[n] = '\0';
  assert_string_equal((char *)out, want);
  assert_true((size_t)n <= p.req.head_len + MASQ_HTTP1_FORWARD_SLACK +
                               (o && o->via ? strlen(o->via) : 0));
}

static void test_forward_targets(void **state) {
  (void)state;
  /* Empty path becomes "/" (RFC 9112 §3.2.1), also before a query. */
  assert_forward("GET http://EXAMPLE.com HTTP/1.1\r\nHost: x\r\n\r\n", NULL,
                 "GET / HTTP/1.1\r\nHost: EXAMPLE.com\r\n\r\n");
  assert_forward("GET http://a.example:8080?q=1 HTTP/1.1\r\nHost: a\r\n\r\n", NULL,
                 "GET /?q=1 HTTP/1.1\r\nHost: a.example:8080\r\n\r\n");
  /* RFC 9112 §3.2.4 example: OPTIONS with an empty path goes out as "*". */
  assert_forward("OPTIONS http://www.example.org:8001 HTTP/1.1\r\n"
                 "Host: www.example.org:8001\r\n\r\n",
                 NULL, "OPTIONS * HTTP/1.1\r\nHost: www.example.org:8001\r\n\r\n");
  assert_forward("OPTIONS http://www.example.org:8001/ HTTP/1.1\r\nHost: h\r\n\r\n", NULL,
                 "OPTIONS / HTTP/1.1\r\nHost: www.example.org:8001\r\n\r\n");
  /* An empty port means the default (RFC 3986 §3.2.3). */
  assert_forward("GET http://[2001:db8::2]:/x HTTP/1.0\r\n\r\n", NULL,
                 "GET /x HTTP/1.1\r\nHost: [2001:db8::2]\r\n\r\n");
  masq_http1_parser p;
  assert_int_equal(parse_str(&p, "GET http://[2001:db8::2]:/x HTTP/1.0\r\n\r\n"), MASQ_HTTP1_DONE);
  assert_string_equal(p.req.host, "2001:db8::2");
  assert_int_equal(p.req.port, 80);
  assert_int_equal(p.req.version_minor, 0);
  assert_false(p.req.persistent);
}

/* RFC 9110 §7.6.1: Connection, what it names, and the listed hop-by-hop
 * fields go; framing fields stay even when named. */
static void test_forward_hop_by_hop(void **state) {
  (void)state;
  const char *in = "POST http://o.example/up HTTP/1.1\r\n"
                   "Host: ignored.example\r\n"
                   "Connection: X-Hop, keep-alive\r\n"
                   "X-Hop: 1\r\n"
                   "Keep-Alive: timeout=5\r\n"
                   "Proxy-Connection: keep-alive\r\n"
                   "TE: trailers\r\n"
                   "Upgrade: websocket\r\n"
                   "Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
                   "Trailer: X-Sum\r\n"
                   "Transfer-Encoding: gzip, chunked\r\n"
                   "connection: transfer-encoding, Host\r\n"
                   "x-end: \t v  \r\n"
                   "\r\n";
  const char *want = "POST /up HTTP/1.1\r\n"
                     "Host: o.example\r\n"
                     "Trailer: X-Sum\r\n"
                     "Transfer-Encoding: gzip, chunked\r\n"
                     "x-end: v\r\n"
                     "\r\n";
  assert_forward(in, NULL, want);
  masq_http1_parser p;
  assert_int_equal(parse_str(&p, in), MASQ_HTTP1_DONE);
  assert_true(p.req.chunked);
  assert_int_equal(p.req.content_length, -1);
  assert_true(p.req.conn_keep_alive);
  assert_int_equal(p.req.nconn, 4);

  const char *cl = "PUT http://o.example/ HTTP/1.1\r\nHost: o\r\nContent-Length: 5\r\n"
                   "Connection: content-length\r\n\r\nhello";
  masq_http1_forward_opts o = {"masq", 1};
  assert_forward(cl, &o,
                 "PUT / HTTP/1.1\r\nHost: o.example\r\nContent-Length: 5\r\n"
                 "Via: 1.1 masq\r\nConnection: close\r\n\r\n");
  o.via = "bad via";
  assert_int_equal(parse_str(&p, cl), MASQ_HTTP1_DONE);
  uint8_t out[512];
  assert_int_equal(masq_http1_forward_head(&p.req, (const uint8_t *)cl, &o, out, sizeof(out)),
                   MASQ_HTTP1_FWD_NOSPACE);
  /* Via names the protocol this hop received. */
  masq_http1_forward_opts v = {"p", 0};
  assert_forward("GET http://a/ HTTP/1.0\r\n\r\n", &v,
                 "GET / HTTP/1.1\r\nHost: a\r\nVia: 1.0 p\r\n\r\n");
}

/* RFC 9110 §7.6.2: OPTIONS and TRACE decrement Max-Forwards; at 0 they
 * are answered, not forwarded. Other methods pass it through. */
static void test_forward_max_forwards(void **state) {
  (void)state;
  assert_forward("TRACE http://a/ HTTP/1.1\r\nHost: a\r\nMax-Forwards: 10\r\n\r\n", NULL,
                 "TRACE / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 9\r\n\r\n");
  assert_forward("OPTIONS http://a/ HTTP/1.1\r\nHost: a\r\nMax-Forwards: 99999999999\r\n\r\n",
                 NULL, "OPTIONS / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 2147483646\r\n\r\n");
  assert_forward("GET http://a/ HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n", NULL,
                 "GET / HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n");
  const char *z = "TRACE http://a/ HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n";
  masq_http1_parser p;
  assert_int_equal(parse_str(&p, z), MASQ_HTTP1_DONE);
  assert_int_equal(p.req.max_forwards, 0);
  uint8_t out[256];
  assert_int_equal(masq_http1_forward_head(&p.req, (const uint8_t *)z, NULL, out, sizeof(out)),
                   MASQ_HTTP1_FWD_MAX_FORWARDS);
}

static void test_lenient_line_endings(void **state) {
  (void)state;
  /* Bare LF, mixed endings and empty lines before the request line
   * (RFC 9112 §2.2); obs-text in a value is kept (RFC 9110 §5.5). */
  const char *s = "\r\n\n"
                  "GET http://a.example/ HTTP/1.1\n"
                  "Host: a.example\r\n"
                  "X-Text: caf\xc3\xa9\n"
                  "\r\n";
  masq_http1_parser p;
  assert_int_equal(parse_str(&p, s), MASQ_HTTP1_DONE);
  assert_int_equal(p.req.nfields, 2);
  assert_span(s, p.req.fields[1].value, "caf\xc3\xa9");
  assert_int_equal(p.req.head_len, strlen(s));
  assert_split_invariant_str(s);
  /* A higher 1.x minor is read as 1.1 (RFC 9110 §2.5). */
  assert_int_equal(parse_str(&p, "GET http://a/ HTTP/1.7\r\nHost: a\r\n\r\n"), MASQ_HTTP1_DONE);
  assert_int_equal(p.req.version_minor, 1);
  /* Incomplete heads wait. */
  assert_int_equal(parse_str(&p, "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r"), MASQ_HTTP1_NEED_MORE);
  assert_int_equal(parse_str(&p, ""), MASQ_HTTP1_NEED_MORE);
}

static void test_framing_accepted(void **state) {
  (void)state;
  masq_http1_parser p;
  assert_int_equal(parse_str(&p, P "Content-Length: 0042\r\n\r\n"), MASQ_HTTP1_DONE);
  assert_int_equal(p.req.content_length, 42);
  assert_int_equal(parse_str(&p, "POST http://a/ HTTP/1.1\r\nHost: a\r\n"
                                 "Content-Length: 9223372036854775807\r\n\r\n"),
                   MASQ_HTTP1_DONE);
  assert_int_equal(p.req.content_length, INT64_MAX);
  assert_int_equal(parse_str(&p, "POST http://a/ HTTP/1.1\r\nHost: a\r\n"
                                 "Transfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED\r\n\r\n"),
                   MASQ_HTTP1_DONE);
  assert_true(p.req.chunked);
}

typedef struct {
  const char *in;
  masq_http1_err err;
  int status;
} bad_case;

static const bad_case bad_cases[] = {
    /* request-target forms (RFC 9112 §3.2) */
    {"GET /x HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET_FORM, 400},
    {"OPTIONS * HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET_FORM, 400},
    {"GET a.example:80 HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET_FORM, 400},
    {"GET https://a/ HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_SCHEME_HTTPS, 400},
    {"GET HTTPS://a/ HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_SCHEME_HTTPS, 400},
    {"GET ftp://a/ HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_SCHEME, 400},
    {"GET http:/a HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET, 400},
    {"GET http:///x HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET, 400},
    {"GET http://u:p@a/ HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET, 400},
    {"GET http://a/#f HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET, 400},
    {"GET http://a:65536/ HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET, 400},
    {"GET http://a:0/ HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET, 400},
    {"GET http://a/\x7f HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET, 400},
    {"GET http://a/\xc3\xa9 HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET, 400},
    {"CONNECT a HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET, 400},
    {"CONNECT a: HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET, 400},
    {"CONNECT a:0 HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET, 400},
    {"CONNECT [::1] HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET, 400},
    {"CONNECT ::1:443 HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET, 400},
    {"CONNECT u@a:443 HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET, 400},
    {"CONNECT http://a:80/ HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET, 400},
    {"CONNECT /x HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_TARGET, 400},
    /* request line (RFC 9112 §3) and version (§2.3) */
    {"GET  http://a/ HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_REQUEST_LINE, 400},
    {"GET http://a/ HTTP/1.1 \r\n" H "\r\n", MASQ_HTTP1_ERR_REQUEST_LINE, 400},
    {"GET http://a/\r\n" H "\r\n", MASQ_HTTP1_ERR_REQUEST_LINE, 400},
    {"GET\thttp://a/ HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_REQUEST_LINE, 400},
    {"G@T http://a/ HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_REQUEST_LINE, 400},
    {" GET http://a/ HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_REQUEST_LINE, 400},
    {"GET http://a/ http/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_VERSION, 400},
    {"GET http://a/ HTTP/1.10\r\n" H "\r\n", MASQ_HTTP1_ERR_VERSION, 400},
    {"GET http://a/ HTTP/1\r\n" H "\r\n", MASQ_HTTP1_ERR_VERSION, 400},
    {"GET http://a/ HTTP/2.0\r\n" H "\r\n", MASQ_HTTP1_ERR_VERSION_UNSUPPORTED, 505},
    {"GET http://a/ HTTP/0.9\r\n" H "\r\n", MASQ_HTTP1_ERR_VERSION_UNSUPPORTED, 505},
    /* characters (RFC 9112 §2.2, RFC 9110 §5.5) */
    {"GET http://a/ HTTP/1.1\r\nHost: a\0b\r\n\r\n", MASQ_HTTP1_ERR_NUL, 400},
    {"GET http://a/\0 HTTP/1.1\r\n" H "\r\n", MASQ_HTTP1_ERR_NUL, 400},
    {G H "X: a\rb\r\n\r\n", MASQ_HTTP1_ERR_BARE_CR, 400},
    {G H "X: a\r\r\n\r\n", MASQ_HTTP1_ERR_BARE_CR, 400},
    {G H "\r\r\n", MASQ_HTTP1_ERR_BARE_CR, 400},
    {G H "X: a\x01" "b\r\n\r\n", MASQ_HTTP1_ERR_FIELD_VALUE, 400},
    {G H "X: a\x7f\r\n\r\n", MASQ_HTTP1_ERR_FIELD_VALUE, 400},
    /* field lines (RFC 9112 §5) */
    {G H "X: a\r\n folded\r\n\r\n", MASQ_HTTP1_ERR_OBS_FOLD, 400},
    {G H "X: a\r\n\tfolded\r\n\r\n", MASQ_HTTP1_ERR_OBS_FOLD, 400},
    {G " Host: a\r\n\r\n", MASQ_HTTP1_ERR_OBS_FOLD, 400},
    {G "Host : a\r\n\r\n", MASQ_HTTP1_ERR_SPACE_BEFORE_COLON, 400},
    {G "Host\t: a\r\n\r\n", MASQ_HTTP1_ERR_SPACE_BEFORE_COLON, 400},
    {G H "Ho st: a\r\n\r\n", MASQ_HTTP1_ERR_FIELD_NAME, 400},
    {G H ": a\r\n\r\n", MASQ_HTTP1_ERR_FIELD_NAME, 400},
    {G H "NoColon\r\n\r\n", MASQ_HTTP1_ERR_FIELD_NAME, 400},
    {G H "X(y): a\r\n\r\n", MASQ_HTTP1_ERR_FIELD_NAME, 400},
    {G H "Caf\xc3\xa9: a\r\n\r\n", MASQ_HTTP1_ERR_FIELD_NAME, 400},
    /* framing (RFC 9112 §6) */
    {P "Content-Length: 1\r\nContent-Length: 1\r\n\r\n", MASQ_HTTP1_ERR_CONTENT_LENGTH, 400},
    {P "Content-Length: 1\r\nContent-Length: 2\r\n\r\n", MASQ_HTTP1_ERR_CONTENT_LENGTH, 400},
    {P "Content-Length: 1, 1\r\n\r\n", MASQ_HTTP1_ERR_CONTENT_LENGTH, 400},
    {P "Content-Length: -1\r\n\r\n", MASQ_HTTP1_ERR_CONTENT_LENGTH, 400},
    {P "Content-Length: +1\r\n\r\n", MASQ_HTTP1_ERR_CONTENT_LENGTH, 400},
    {P "Content-Length: 0x10\r\n\r\n", MASQ_HTTP1_ERR_CONTENT_LENGTH, 400},
    {P "Content-Length:\r\n\r\n", MASQ_HTTP1_ERR_CONTENT_LENGTH, 400},
    {P "Content-Length: 9223372036854775808\r\n\r\n", MASQ_HTTP1_ERR_CONTENT_LENGTH, 400},
    {P "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", MASQ_HTTP1_ERR_TE_WITH_CL, 400},
    {P "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", MASQ_HTTP1_ERR_TE_WITH_CL, 400},
    {P "Transfer-Encoding: gzip\r\n\r\n", MASQ_HTTP1_ERR_TRANSFER_ENCODING, 400},
    {P "Transfer-Encoding: chunked, gzip\r\n\r\n", MASQ_HTTP1_ERR_TRANSFER_ENCODING, 400},
    {P "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     MASQ_HTTP1_ERR_TRANSFER_ENCODING, 400},
    {P "Transfer-Encoding: chunked;x=1\r\n\r\n", MASQ_HTTP1_ERR_TRANSFER_ENCODING, 400},
    {P "Transfer-Encoding: ,\r\n\r\n", MASQ_HTTP1_ERR_TRANSFER_ENCODING, 400},
    {"POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
     MASQ_HTTP1_ERR_TRANSFER_ENCODING, 400},
    {"CONNECT a:443 HTTP/1.1\r\n" H "Content-Length: 1\r\n\r\n", MASQ_HTTP1_ERR_CONNECT_CONTENT,
     400},
    {"CONNECT a:443 HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n",
     MASQ_HTTP1_ERR_CONNECT_CONTENT, 400},
    /* Host (RFC 9112 §3.2) and other single fields */
    {G "\r\n", MASQ_HTTP1_ERR_HOST, 400},
    {"CONNECT a:443 HTTP/1.1\r\n\r\n", MASQ_HTTP1_ERR_HOST, 400},
    {G H H "\r\n", MASQ_HTTP1_ERR_HOST, 400},
    {G "Host: a b\r\n\r\n", MASQ_HTTP1_ERR_HOST, 400},
    {G "Host: u@a\r\n\r\n", MASQ_HTTP1_ERR_HOST, 400},
    {G H "Proxy-Authorization: a\r\nproxy-authorization: b\r\n\r\n",
     MASQ_HTTP1_ERR_PROXY_AUTHORIZATION, 400},
    {G H "Connection: close, a b\r\n\r\n", MASQ_HTTP1_ERR_CONNECTION, 400},
    {G H "Connection: a/b\r\n\r\n", MASQ_HTTP1_ERR_CONNECTION, 400},
    {G H "Max-Forwards: x\r\n\r\n", MASQ_HTTP1_ERR_MAX_FORWARDS, 400},
    {G H "Max-Forwards: 1\r\nMax-Forwards: 1\r\n\r\n", MASQ_HTTP1_ERR_MAX_FORWARDS, 400},
};

static void test_malformed(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
    const bad_case *c = &bad_cases[i];
    /* Cases holding a NUL are sized by their literal. */
    size_t len = strlen(c->in);
    if (c->err == MASQ_HTTP1_ERR_NUL) len += strlen(c->in + len + 1) + 1;
    masq_http1_parser p;
    masq_http1_parser_init(&p);
    masq_http1_result r = masq_http1_parse(&p, (const uint8_t *)c->in, len);
    if (r != MASQ_HTTP1_ERROR || p.error != c->err) print_error("case %zu: %s\n", i, c->in);
    assert_int_equal(r, MASQ_HTTP1_ERROR);
    assert_int_equal(p.error, c->err);
    assert_int_equal(p.status, c->status);
    assert_int_equal(masq_http1_error_status(c->err), c->status);
    assert_true(strlen(masq_http1_strerror(c->err)) > 0);
    assert_split_invariant((const uint8_t *)c->in, len);
  }
}

/* Fills b with a request head of exactly len bytes (len >= 64) whose one
 * long field pads it out. */
static void build_head(char *b, size_t len) {
  const char *start = G H "X: ";
  size_t n = strlen(start);
  memcpy(b, start, n);
  memset(b + n, 'a', len - n - 4);
  memcpy(b + len - 4, "\r\n\r\n", 4);
}

static void test_limits(void **state) {
  (void)state;
  size_t big = MASQ_HTTP1_HEAD_MAX + 64;
  char *b = malloc(big);
  assert_non_null(b);
  masq_http1_parser p;
  /* Exactly at the cap: accepted; one byte more: 431. */
  build_head(b, MASQ_HTTP1_HEAD_MAX);
  masq_http1_parser_init(&p);
  assert_int_equal(masq_http1_parse(&p, (uint8_t *)b, MASQ_HTTP1_HEAD_MAX), MASQ_HTTP1_DONE);
  assert_int_equal(p.req.head_len, MASQ_HTTP1_HEAD_MAX);
  build_head(b, MASQ_HTTP1_HEAD_MAX + 1);
  masq_http1_parser_init(&p);
  assert_int_equal(masq_http1_parse(&p, (uint8_t *)b, MASQ_HTTP1_HEAD_MAX + 1), MASQ_HTTP1_ERROR);
  assert_int_equal(p.error, MASQ_HTTP1_ERR_HEAD_TOO_LARGE);
  assert_int_equal(p.status, 431);
  /* Reaching the cap fails at once, without waiting for the line end. */
  masq_http1_parser_init(&p);
  assert_int_equal(masq_http1_parse(&p, (uint8_t *)b, MASQ_HTTP1_HEAD_MAX - 1),
                   MASQ_HTTP1_NEED_MORE);
  assert_int_equal(masq_http1_parse(&p, (uint8_t *)b, MASQ_HTTP1_HEAD_MAX), MASQ_HTTP1_ERROR);
  assert_split_invariant((uint8_t *)b, MASQ_HTTP1_HEAD_MAX + 1);
  /* A request line that never ends: 414. */
  memcpy(b, "GET http://a/", 13);
  memset(b + 13, 'x', big - 13);
  masq_http1_parser_init(&p);
  assert_int_equal(masq_http1_parse(&p, (uint8_t *)b, big), MASQ_HTTP1_ERROR);
  assert_int_equal(p.error, MASQ_HTTP1_ERR_LINE_TOO_LONG);
  assert_int_equal(p.status, 414);
  free(b);

  /* 100 field lines are fine, 101 are 431. */
  char h[4096];
  size_t n = 0;
  memcpy(h, G H, strlen(G H));
  n += strlen(G H);
  for (int i = 1; i < MASQ_HTTP1_MAX_FIELDS; i++) {
    memcpy(h + n, "X: 1\r\n", 6);
    n += 6;
  }
  memcpy(h + n, "\r\n", 2);
  masq_http1_parser_init(&p);
  assert_int_equal(masq_http1_parse(&p, (uint8_t *)h, n + 2), MASQ_HTTP1_DONE);
  assert_int_equal(p.req.nfields, MASQ_HTTP1_MAX_FIELDS);
  memcpy(h + n, "X: 1\r\n\r\n", 8);
  masq_http1_parser_init(&p);
  assert_int_equal(masq_http1_parse(&p, (uint8_t *)h, n + 8), MASQ_HTTP1_ERROR);
  assert_int_equal(p.error, MASQ_HTTP1_ERR_TOO_MANY_FIELDS);
  assert_int_equal(p.status, 431);

  /* 16 Connection options are fine, 17 are 400. */
  const char *c16 = G H "Connection: a,b,c,d,e,f,g,h\r\nConnection: i,j,k,l,m,n,o,p\r\n\r\n";
  assert_int_equal(parse_str(&p, c16), MASQ_HTTP1_DONE);
  assert_int_equal(p.req.nconn, MASQ_HTTP1_MAX_CONN_OPTIONS);
  const char *c17 = G H "Connection: a,b,c,d,e,f,g,h\r\nConnection: i,j,k,l,m,n,o,p,q\r\n\r\n";
  assert_int_equal(parse_str(&p, c17), MASQ_HTTP1_ERROR);
  assert_int_equal(p.error, MASQ_HTTP1_ERR_CONNECTION);
}

/* The parser only reads complete lines, so an error in a line that has
 * not ended yet is not reported early, and a bad first line is. */
static void test_error_timing(void **state) {
  (void)state;
  masq_http1_parser p;
  assert_int_equal(parse_str(&p, "GET /x HTTP/1.1\r\n"), MASQ_HTTP1_ERROR);
  assert_int_equal(p.error, MASQ_HTTP1_ERR_TARGET_FORM);
  assert_int_equal(parse_str(&p, "GET http://a/ HTTP/1.1\r\nHost : a"), MASQ_HTTP1_NEED_MORE);
  /* Later calls repeat the final result. */
  const char *ok = G H "\r\n";
  assert_int_equal(parse_str(&p, ok), MASQ_HTTP1_DONE);
  assert_int_equal(masq_http1_parse(&p, (const uint8_t *)ok, strlen(ok)), MASQ_HTTP1_DONE);
}

static void assert_response(int status, const char *reason, const char *ps,
                            const masq_http1_header *x, size_t nx, const char *want) {
  uint8_t out[1024];
  int n = masq_http1_response_encode(out, sizeof(out), status, reason, ps, x, nx);
  assert_int_equal(n, strlen(want));
  assert_memory_equal(out, want, n);
  for (size_t cap = 0; cap < (size_t)n; cap++)
    assert_int_equal(masq_http1_response_encode(out, cap, status, reason, ps, x, nx), -1);
}

static void test_response_encode(void **state) {
  (void)state;
  assert_response(200, NULL, NULL, NULL, 0, "HTTP/1.1 200 Connection Established\r\n\r\n");
  const masq_http1_header auth[] = {{"Proxy-Authenticate", "Basic realm=\"masq\""},
                                    {"Connection", "close"}};
  assert_response(407, NULL, NULL, auth, 2,
                  "HTTP/1.1 407 Proxy Authentication Required\r\n"
                  "Proxy-Authenticate: Basic realm=\"masq\"\r\n"
                  "Connection: close\r\n"
                  "Content-Length: 0\r\n\r\n");
  assert_response(502, NULL, "masq; error=dns_error", NULL, 0,
                  "HTTP/1.1 502 Bad Gateway\r\n"
                  "Proxy-Status: masq; error=dns_error\r\n"
                  "Content-Length: 0\r\n\r\n");
  assert_response(504, NULL, "masq; error=connection_timeout", NULL, 0,
                  "HTTP/1.1 504 Gateway Timeout\r\n"
                  "Proxy-Status: masq; error=connection_timeout\r\n"
                  "Content-Length: 0\r\n\r\n");
  assert_response(400, "Nope", "masq; error=http_request_error", NULL, 0,
                  "HTTP/1.1 400 Nope\r\n"
                  "Proxy-Status: masq; error=http_request_error\r\n"
                  "Content-Length: 0\r\n\r\n");
  assert_response(299, NULL, NULL, NULL, 0, "HTTP/1.1 299 \r\n\r\n");
  assert_response(431, NULL, NULL, NULL, 0,
                  "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n");
  /* Anything that could split or reframe the head is refused. */
  uint8_t out[256];
  const masq_http1_header bad[][1] = {{{"X Y", "v"}},
                                      {{"", "v"}},
                                      {{"X", "a\r\nInjected: 1"}},
                                      {{"X", "a\nb"}},
                                      {{"content-length", "5"}},
                                      {{"Transfer-Encoding", "chunked"}},
                                      {{NULL, "v"}},
                                      {{"X", NULL}}};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(masq_http1_response_encode(out, sizeof(out), 400, NULL, NULL, bad[i], 1), -1);
  assert_int_equal(masq_http1_response_encode(out, sizeof(out), 99, NULL, NULL, NULL, 0), -1);
  assert_int_equal(masq_http1_response_encode(out, sizeof(out), 600, NULL, NULL, NULL, 0), -1);
  assert_int_equal(masq_http1_response_encode(out, sizeof(out), 400, "a\r\n", NULL, NULL, 0), -1);
  assert_int_equal(masq_http1_response_encode(out, sizeof(out), 400, NULL, "x\n", NULL, 0), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_connect_rfc_example),
      cmocka_unit_test(test_connect_v6_and_auth),
      cmocka_unit_test(test_absolute_form_forward),
      cmocka_unit_test(test_forward_targets),
      cmocka_unit_test(test_forward_hop_by_hop),
      cmocka_unit_test(test_forward_max_forwards),
      cmocka_unit_test(test_lenient_line_endings),
      cmocka_unit_test(test_framing_accepted),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_error_timing),
      cmocka_unit_test(test_response_encode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
