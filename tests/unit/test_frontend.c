/* The front ends' pure helpers: Proxy-Status error types, the HTTP
 * proxy's 502/504 choice and CONNECT authorities from SOCKS addresses. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/frontend.h"

static int perr(const char *v, char *out, size_t cap) {
  return masq_fe_proxy_status_error(v, strlen(v), out, cap);
}

static void test_proxy_status_error(void **state) {
  (void)state;
  char e[64];
  assert_int_equal(perr("masq; error=dns_error; details=\"x\"", e, sizeof(e)), 0);
  assert_string_equal(e, "dns_error");
  assert_int_equal(perr("masq;error=connection_refused", e, sizeof(e)), 0);
  assert_string_equal(e, "connection_refused");
  /* The first member with an error is the one nearest the origin. */
  assert_int_equal(perr("origin-side; error=connection_timeout, edge; error=http_request_error",
                        e, sizeof(e)),
                   0);
  assert_string_equal(e, "connection_timeout");
  assert_int_equal(perr("a; received-status=503, b;  error=destination_ip_prohibited", e,
                        sizeof(e)),
                   0);
  assert_string_equal(e, "destination_ip_prohibited");
  /* "error=" inside a string or in a key that only ends so is not it. */
  assert_int_equal(perr("masq; details=\"; error=fake\"", e, sizeof(e)), -1);
  assert_int_equal(perr("masq; xerror=dns_error", e, sizeof(e)), -1);
  assert_int_equal(perr("masq", e, sizeof(e)), -1);
  assert_int_equal(perr("", e, sizeof(e)), -1);
  /* Not a token, or no room. */
  assert_int_equal(perr("masq; error=\"dns_error\"", e, sizeof(e)), -1);
  assert_int_equal(perr("masq; error=9x", e, sizeof(e)), -1);
  assert_int_equal(perr("masq; error=dns_error", e, 9), -1);
  assert_int_equal(perr("masq; error=dns_error", e, 10), 0);
  assert_string_equal(e, "dns_error");
  /* Stops at the end of the token. */
  assert_int_equal(perr("m; error=dns_timeout;details=\"a\"", e, sizeof(e)), 0);
  assert_string_equal(e, "dns_timeout");
}

static void test_gateway_status(void **state) {
  (void)state;
  assert_int_equal(masq_fe_gateway_status(504, NULL), 504);
  assert_int_equal(masq_fe_gateway_status(502, "connection_timeout"), 504);
  assert_int_equal(masq_fe_gateway_status(502, "dns_timeout"), 504);
  assert_int_equal(masq_fe_gateway_status(502, "dns_error"), 502);
  assert_int_equal(masq_fe_gateway_status(403, "destination_ip_prohibited"), 502);
  assert_int_equal(masq_fe_gateway_status(407, NULL), 502);
  assert_int_equal(masq_fe_gateway_status(0, NULL), 502);
}

static void test_authority(void **state) {
  (void)state;
  char out[MASQ_FE_AUTHORITY_MAX + 1];
  assert_int_equal(masq_fe_authority("example.com", 443, out, sizeof(out)), 15);
  assert_string_equal(out, "example.com:443");
  assert_int_equal(masq_fe_authority("2001:db8::1", 80, out, sizeof(out)), 16);
  assert_string_equal(out, "[2001:db8::1]:80");
  assert_int_equal(masq_fe_authority("", 80, out, sizeof(out)), -1);
  assert_int_equal(masq_fe_authority("example.com", 443, out, 15), -1);
  assert_int_equal(masq_fe_authority("example.com", 443, out, 16), 15);
}

static void test_socks_authority(void **state) {
  (void)state;
  char out[MASQ_FE_AUTHORITY_MAX + 1];
  masq_socks5_addr a;
  memset(&a, 0, sizeof(a));
  a.atyp = MASQ_SOCKS5_ATYP_IPV4;
  a.ip.family = 4;
  memcpy(a.ip.a, "\xc0\x00\x02\x02", 4);
  a.port = 8000;
  assert_true(masq_fe_socks_authority(&a, out, sizeof(out)) > 0);
  assert_string_equal(out, "192.0.2.2:8000");
  a.atyp = MASQ_SOCKS5_ATYP_IPV6;
  a.ip.family = 6;
  memset(a.ip.a, 0, 16);
  memcpy(a.ip.a, "\x20\x01\x0d\xb8\x00\x02", 6);
  a.ip.a[15] = 2;
  assert_true(masq_fe_socks_authority(&a, out, sizeof(out)) > 0);
  assert_string_equal(out, "[2001:db8:2::2]:8000");
  a.ip.family = 4; /* ATYP and family disagree */
  assert_int_equal(masq_fe_socks_authority(&a, out, sizeof(out)), -1);
  /* Names go unresolved, as they are. */
  a.atyp = MASQ_SOCKS5_ATYP_DOMAIN;
  snprintf(a.host, sizeof(a.host), "%s", "target.masq.test");
  a.hostlen = (uint8_t)strlen(a.host);
  assert_true(masq_fe_socks_authority(&a, out, sizeof(out)) > 0);
  assert_string_equal(out, "target.masq.test:8000");
  /* A name holding an IPv6 literal still gets brackets. */
  snprintf(a.host, sizeof(a.host), "%s", "::1");
  a.hostlen = 3;
  assert_true(masq_fe_socks_authority(&a, out, sizeof(out)) > 0);
  assert_string_equal(out, "[::1]:8000");
  /* Not a host name: spaces, a colon list, empty; and port 0. */
  snprintf(a.host, sizeof(a.host), "%s", "bad host");
  a.hostlen = (uint8_t)strlen(a.host);
  assert_int_equal(masq_fe_socks_authority(&a, out, sizeof(out)), -1);
  snprintf(a.host, sizeof(a.host), "%s", "a:b");
  a.hostlen = 3;
  assert_int_equal(masq_fe_socks_authority(&a, out, sizeof(out)), -1);
  a.hostlen = 0;
  a.host[0] = '\0';
  assert_int_equal(masq_fe_socks_authority(&a, out, sizeof(out)), -1);
  snprintf(a.host, sizeof(a.host), "%s", "ok.example");
  a.hostlen = (uint8_t)strlen(a.host);
  a.port = 0;
  assert_int_equal(masq_fe_socks_authority(&a, out, sizeof(out)), -1);
  a.port = 1;
  a.atyp = 9;
  assert_int_equal(masq_fe_socks_authority(&a, out, sizeof(out)), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_proxy_status_error),
      cmocka_unit_test(test_gateway_status),
      cmocka_unit_test(test_authority),
      cmocka_unit_test(test_socks_authority),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
