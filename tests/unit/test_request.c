#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proto/request.h"

static void add(masq_reqhdrs *h, const char *n, const char *v) {
  masq_reqhdrs_add(h, (const uint8_t *)n, strlen(n), (const uint8_t *)v, strlen(v));
}

/* The RFC 9298 §3.4 example request. */
static masq_reqhdrs *valid_request(void) {
  masq_reqhdrs *h = malloc(sizeof(*h));
  assert_non_null(h);
  masq_reqhdrs_init(h);
  add(h, ":method", "CONNECT");
  add(h, ":protocol", "connect-udp");
  add(h, ":scheme", "https");
  add(h, ":path", "/.well-known/masque/udp/192.0.2.6/443/");
  add(h, ":authority", "example.org");
  return h;
}

static masq_reqcheck check(const masq_reqhdrs *h) {
  masq_reqcheck r;
  memset(&r, 0x5a, sizeof(r));
  masq_reqcheck_connect(h, "connect-udp", &r);
  if (r.status != 0) {
    assert_non_null(r.detail);
    assert_non_null(r.error);
  }
  return r;
}

static void test_add_records(void **state) {
  (void)state;
  masq_reqhdrs *h = valid_request();
  add(h, "capsule-protocol", "?1");
  add(h, "user-agent", "x");
  add(h, "proxy-authorization", "Bearer abc");
  assert_true(h->method.present);
  assert_string_equal(h->method.v, "CONNECT");
  assert_int_equal(h->method.len, 7);
  assert_string_equal(h->path.v, "/.well-known/masque/udp/192.0.2.6/443/");
  assert_string_equal(h->capsule_protocol.v, "?1");
  assert_string_equal(h->proxy_authorization.v, "Bearer abc");
  assert_false(h->authorization.present);
  assert_true(h->seen_regular);
  assert_false(h->bad_pseudo || h->too_long || h->bad_field || h->method.dup);
  /* Names compare exactly: HTTP/3 names are lower case. */
  add(h, "Authorization", "Bearer x");
  assert_false(h->authorization.present);
  assert_true(h->bad_field);
  free(h);
}

static void test_add_flags(void **state) {
  (void)state;
  masq_reqhdrs *h = valid_request();
  add(h, ":method", "GET");
  assert_true(h->method.dup);
  assert_string_equal(h->method.v, "CONNECT"); /* the first copy is kept */
  free(h);

  h = valid_request();
  add(h, ":foo", "x");
  assert_true(h->bad_pseudo);
  free(h);

  h = valid_request();
  add(h, "x-a", "1");
  add(h, ":path", "/other");
  assert_true(h->bad_pseudo);
  free(h);

  /* Too long: flagged, present, value not kept. */
  h = valid_request();
  char *big = malloc(MASQ_MAX_HEADER_VALUE + 2);
  memset(big, 'a', MASQ_MAX_HEADER_VALUE + 1);
  big[MASQ_MAX_HEADER_VALUE + 1] = '\0';
  add(h, "authorization", big);
  assert_true(h->too_long);
  assert_true(h->authorization.present);
  assert_int_equal(h->authorization.len, 0);
  assert_string_equal(h->authorization.v, "");
  /* Exactly the limit is kept. */
  big[MASQ_MAX_HEADER_VALUE] = '\0';
  add(h, "proxy-authorization", big);
  assert_int_equal(h->proxy_authorization.len, MASQ_MAX_HEADER_VALUE);
  free(big);
  free(h);

  /* Unknown regular fields are never length-checked. */
  h = valid_request();
  static char huge[8000];
  memset(huge, 'b', sizeof(huge) - 1);
  add(h, "cookie", huge);
  assert_false(h->too_long);
  free(h);

  /* NUL / CR / LF in a kept value make the request malformed. */
  h = valid_request();
  masq_reqhdrs_add(h, (const uint8_t *)"authorization", 13, (const uint8_t *)"a\0b", 3);
  assert_true(h->bad_field);
  free(h);
  h = valid_request();
  add(h, "capsule-protocol", "?1\r\nx: y");
  assert_true(h->bad_field);
  free(h);
  h = valid_request();
  masq_reqhdrs_add(h, (const uint8_t *)"", 0, (const uint8_t *)"v", 1);
  assert_true(h->bad_field);
  free(h);
}

static void test_check_valid(void **state) {
  (void)state;
  masq_reqhdrs *h = valid_request();
  masq_reqcheck r = check(h);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.capsule_protocol, 0);
  assert_null(r.error);
  add(h, "capsule-protocol", "?1");
  r = check(h);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.capsule_protocol, 1);
  free(h);

  h = valid_request();
  add(h, "capsule-protocol", "?0");
  r = check(h);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.capsule_protocol, 0);
  free(h);

  /* Parameters are ignored (RFC 9297 §3.4). */
  h = valid_request();
  add(h, "capsule-protocol", "?1;foo=bar;n=1.5");
  r = check(h);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.capsule_protocol, 1);
  free(h);

  /* :scheme is case-insensitive. */
  masq_reqhdrs *h2 = malloc(sizeof(*h2));
  masq_reqhdrs_init(h2);
  add(h2, ":method", "CONNECT");
  add(h2, ":protocol", "connect-udp");
  add(h2, ":scheme", "HTTPS");
  add(h2, ":authority", "p:443");
  add(h2, ":path", "/x");
  assert_int_equal(check(h2).status, 0);
  free(h2);
}

static void test_check_capsule_protocol_invalid(void **state) {
  (void)state;
  /* RFC 9297 §3.4: a non-Boolean value, or a repeated field, is handled
   * as if absent: no error, no capsule protocol signalled. */
  const char *vals[] = {"1", "?2", "true", "?1, ?1", "", "?1;", "?1;Foo=1"};
  for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
    masq_reqhdrs *h = valid_request();
    add(h, "capsule-protocol", vals[i]);
    masq_reqcheck r = check(h);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.capsule_protocol, 0);
    free(h);
  }
  masq_reqhdrs *h = valid_request();
  add(h, "capsule-protocol", "?1");
  add(h, "capsule-protocol", "?1");
  masq_reqcheck r = check(h);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.capsule_protocol, 0);
  free(h);
}

typedef struct bad_case {
  const char *name, *value; /* added to the valid request; NULL name: drop */
  const char *drop;         /* pseudo-header to leave out */
  int status;
} bad_case;

static masq_reqhdrs *build(const bad_case *c) {
  static const char *const base[][2] = {{":method", "CONNECT"},
                                        {":protocol", "connect-udp"},
                                        {":scheme", "https"},
                                        {":path", "/p/"},
                                        {":authority", "example.org"}};
  masq_reqhdrs *h = malloc(sizeof(*h));
  assert_non_null(h);
  masq_reqhdrs_init(h);
  for (size_t i = 0; i < 5; i++) {
    const char *n = base[i][0], *v = base[i][1];
    if (c->drop && strcmp(c->drop, n) == 0) continue;
    if (c->name && strcmp(c->name, n) == 0 && c->name[0] == ':' && c->drop == NULL) {
      v = c->value; /* replace rather than duplicate */
    }
    add(h, n, v);
  }
  if (c->name && (c->name[0] != ':' || c->drop != NULL)) add(h, c->name, c->value);
  return h;
}

static void test_check_rejects(void **state) {
  (void)state;
  const bad_case cases[] = {
      {":method", "GET", NULL, 405},
      {":method", "connect", NULL, 405}, /* methods are case-sensitive */
      {":method", "", NULL, 400},
      {NULL, NULL, ":method", 400},
      {NULL, NULL, ":protocol", 400}, /* classic CONNECT */
      {":protocol", "", NULL, 400},
      {":protocol", "connect-ip", NULL, 501},
      {":protocol", "websocket", NULL, 501},
      {":protocol", "CONNECT-UDP", NULL, 501},
      {NULL, NULL, ":scheme", 400},
      {":scheme", "", NULL, 400},
      {":scheme", "http", NULL, 400},
      {NULL, NULL, ":authority", 400},
      {":authority", "", NULL, 400},
      {NULL, NULL, ":path", 400},
      {":path", "", NULL, 400},
      {":path", "*", NULL, 400},
      {":path", "p/", NULL, 400},
      {":status", "200", ":none", 400},
      {":foo", "x", ":none", 400},
      {":method", "CONNECT", ":none", 400}, /* duplicate pseudo-header */
      {":path", "/p/", ":none", 400},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    masq_reqhdrs *h = build(&cases[i]);
    masq_reqcheck r = check(h);
    if (r.status != cases[i].status)
      fail_msg("case %zu (%s=%s drop %s): got %d want %d", i, cases[i].name ? cases[i].name : "-",
               cases[i].value ? cases[i].value : "-", cases[i].drop ? cases[i].drop : "-",
               r.status, cases[i].status);
    if (r.status == 400 || r.status == 405) assert_string_equal(r.error, "http_request_error");
    if (r.status == 501) assert_string_equal(r.error, "proxy_internal_response");
    free(h);
  }
}

static void test_check_order(void **state) {
  (void)state;
  /* Malformed beats a wrong method, which beats a wrong protocol. */
  masq_reqhdrs *h = valid_request();
  add(h, ":method", "GET");
  assert_int_equal(check(h).status, 400);
  free(h);
  h = malloc(sizeof(*h));
  masq_reqhdrs_init(h);
  add(h, ":method", "GET");
  add(h, ":protocol", "websocket");
  add(h, ":scheme", "https");
  add(h, ":authority", "h");
  add(h, ":path", "/");
  assert_int_equal(check(h).status, 405);
  free(h);
  /* Missing pseudo-headers are malformed before the protocol matters. */
  h = malloc(sizeof(*h));
  masq_reqhdrs_init(h);
  add(h, ":method", "CONNECT");
  add(h, ":protocol", "websocket");
  assert_int_equal(check(h).status, 400);
  free(h);
  /* The expected protocol may be NULL: never accepted. */
  h = valid_request();
  masq_reqcheck r;
  masq_reqcheck_connect(h, NULL, &r);
  assert_int_equal(r.status, 501);
  masq_reqcheck_connect(h, "connect-ip", &r);
  assert_int_equal(r.status, 501);
  free(h);
  /* too_long is malformed. */
  h = valid_request();
  char big[MASQ_MAX_HEADER_VALUE + 2];
  memset(big, 'a', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  add(h, "proxy-status", big);
  assert_int_equal(check(h).status, 400);
  free(h);
}

static const char *bearer(const char *field, const char *value, size_t *len) {
  static masq_reqhdrs h;
  masq_reqhdrs_init(&h);
  add(&h, field, value);
  return masq_reqhdrs_bearer(&h, len);
}

static void test_bearer(void **state) {
  (void)state;
  size_t n = 0;
  const char *t = bearer("proxy-authorization", "Bearer mF_9.B5f-4.1JqM", &n);
  assert_non_null(t);
  assert_int_equal(n, strlen("mF_9.B5f-4.1JqM"));
  assert_memory_equal(t, "mF_9.B5f-4.1JqM", n);
  t = bearer("authorization", "bEaReR   abc+/~==", &n);
  assert_non_null(t);
  assert_int_equal(n, 8);
  assert_memory_equal(t, "abc+/~==", 8);
  t = bearer("authorization", "  Bearer tok  ", &n);
  assert_non_null(t);
  assert_int_equal(n, 3);
  assert_memory_equal(t, "tok", 3);
  const char *bad[] = {"Bearer",          "Bearer ",     "Bearer  ",       "Basic dXNlcjpw",
                       "Bearertok",       "Bearer\ttok", "Bearer a b",     "Bearer =abc",
                       "Bearer ab=c",     "Bearer a,b",  "Bearer tok\"",   "Bear tok",
                       "Bearer tök",      ""};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (bearer("authorization", bad[i], &n) != NULL) fail_msg("'%s' is no bearer", bad[i]);
  }
  /* Proxy-Authorization is preferred; Authorization is the fallback. */
  masq_reqhdrs *h = malloc(sizeof(*h));
  masq_reqhdrs_init(h);
  add(h, "authorization", "Bearer second");
  add(h, "proxy-authorization", "Bearer first");
  t = masq_reqhdrs_bearer(h, &n);
  assert_non_null(t);
  assert_memory_equal(t, "first", n);
  masq_reqhdrs_init(h);
  add(h, "proxy-authorization", "Basic abc");
  add(h, "authorization", "Bearer second");
  t = masq_reqhdrs_bearer(h, &n);
  assert_non_null(t);
  assert_int_equal(n, 6);
  assert_memory_equal(t, "second", n);
  masq_reqhdrs_init(h);
  assert_null(masq_reqhdrs_bearer(h, &n));
  free(h);
}

static void test_sf_boolean(void **state) {
  (void)state;
  struct {
    const char *v;
    int want;
  } cases[] = {
      {"?1", 1},
      {"?0", 0},
      {"  ?1  ", 1},
      {"\t?0", 0},
      {"?1;a", 1},
      {"?1;a=1;b=?0", 1},
      {"?1; a=1", 1},
      {"?1;a=-1.25", 1},
      {"?1;a=\"x\\\"y\\\\\"", 1},
      {"?1;a=tok/en:x", 1},
      {"?1;a=*t", 1},
      {"?1;a=:aGk=:", 1},
      {"?1;*k-_.9=1", 1},
      {"?0;a=999999999999999", 0},
      {"", -1},
      {"?", -1},
      {"1", -1},
      {"?2", -1},
      {"?11", -1},
      {"? 1", -1},
      {"?1 ;a", -1},
      {"?1;", -1},
      {"?1;A=1", -1},
      {"?1;1a=1", -1},
      {"?1;a=", -1},
      {"?1;a=\"x", -1},
      {"?1;a=\"\\x\"", -1},
      {"?1;a=1.", -1},
      {"?1;a=1.2345", -1},
      {"?1;a=1234567890123.1", -1},
      {"?1;a=9999999999999999", -1},
      {"?1;a=-", -1},
      {"?1;a=:a!:", -1},
      {"?1;a=:ab", -1},
      {"?1;a=?", -1},
      {"?1,?1", -1},
      {"?1 x", -1},
      {"true", -1},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int got = masq_sf_boolean_parse(cases[i].v, strlen(cases[i].v));
    if (got != cases[i].want) fail_msg("'%s': got %d want %d", cases[i].v, got, cases[i].want);
  }
  /* Length bounds the parse, not a NUL. */
  assert_int_equal(masq_sf_boolean_parse("?1xyz", 2), 1);
  assert_int_equal(masq_sf_boolean_parse("?", 1), -1);
  assert_int_equal(masq_sf_boolean_parse(NULL, 0), -1);
}

static void test_proxy_status(void **state) {
  (void)state;
  char out[128];
  int n = masq_proxy_status_format(out, sizeof(out), "dns_error", NULL);
  assert_string_equal(out, "masq; error=dns_error");
  assert_int_equal(n, (int)strlen(out));
  n = masq_proxy_status_format(out, sizeof(out), "destination_ip_prohibited",
                               "say \"no\" to \\ and\x01\n\xff ok");
  assert_string_equal(out,
                      "masq; error=destination_ip_prohibited; details=\"say \\\"no\\\" to \\\\ "
                      "and ok\"");
  assert_int_equal(n, (int)strlen(out));
  n = masq_proxy_status_format(out, sizeof(out), NULL, NULL);
  assert_string_equal(out, "masq");
  assert_int_equal(n, 4);
  n = masq_proxy_status_format(out, sizeof(out), "http_request_error", "");
  assert_string_equal(out, "masq; error=http_request_error; details=\"\"");
  /* RFC 9209 types are tokens; other strings are refused. */
  assert_int_equal(masq_proxy_status_format(out, sizeof(out), "bad error", NULL), -1);
  assert_int_equal(masq_proxy_status_format(out, sizeof(out), "", NULL), -1);
  assert_int_equal(masq_proxy_status_format(out, sizeof(out), "1abc", NULL), -1);
  assert_int_equal(masq_proxy_status_format(out, sizeof(out), "x;y", NULL), -1);
  /* Exact fit, then one byte short. */
  const char *want = "masq; error=dns_timeout";
  assert_int_equal(masq_proxy_status_format(out, strlen(want) + 1, "dns_timeout", NULL),
                   (int)strlen(want));
  assert_int_equal(masq_proxy_status_format(out, strlen(want), "dns_timeout", NULL), -1);
  assert_int_equal(masq_proxy_status_format(out, 0, "dns_timeout", NULL), -1);
  /* The details grow by their escapes. */
  assert_int_equal(masq_proxy_status_format(out, 32, "e", "\"\"\"\"\"\"\"\""), -1);
}

static void test_ct_equal(void **state) {
  (void)state;
  assert_true(masq_ct_equal("abc", 3, "abc", 3));
  assert_false(masq_ct_equal("abc", 3, "abd", 3));
  assert_false(masq_ct_equal("abc", 3, "ab", 2));
  assert_false(masq_ct_equal("ab", 2, "abc", 3));
  /* Trailing NULs do not make different lengths equal. */
  assert_false(masq_ct_equal("ab\0", 3, "ab", 2));
  assert_true(masq_ct_equal("", 0, "", 0));
  assert_false(masq_ct_equal("", 0, "a", 1));
  assert_false(masq_ct_equal("\x80", 1, "\x00", 1));
  unsigned char a[300], b[300];
  for (int i = 0; i < 300; i++) a[i] = b[i] = (unsigned char)i;
  assert_true(masq_ct_equal(a, 300, b, 300));
  b[299] ^= 1;
  assert_false(masq_ct_equal(a, 300, b, 300));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_add_records),
      cmocka_unit_test(test_add_flags),
      cmocka_unit_test(test_check_valid),
      cmocka_unit_test(test_check_capsule_protocol_invalid),
      cmocka_unit_test(test_check_rejects),
      cmocka_unit_test(test_check_order),
      cmocka_unit_test(test_bearer),
      cmocka_unit_test(test_sf_boolean),
      cmocka_unit_test(test_proxy_status),
      cmocka_unit_test(test_ct_equal),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
