/* The client's --proxy parsing and per-target request expansion. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "client/proxy_url.h"
#include "proto/wire.h"

static void test_parse(void **state) {
  masq_proxy_url u;
  char err[128];
  assert_int_equal(masq_proxy_url_parse("https://proxy.example", &u, err, sizeof(err)), 0);
  assert_string_equal(u.host, "proxy.example");
  assert_int_equal(u.port, 443);
  assert_string_equal(u.authority, "proxy.example:443");
  assert_int_equal(masq_proxy_url_parse("https://[2001:db8::1]:8443/", &u, err, sizeof(err)), 0);
  assert_string_equal(u.host, "2001:db8::1");
  assert_int_equal(u.port, 8443);
  assert_string_equal(u.authority, "[2001:db8::1]:8443");
}

static void test_parse_errors(void **state) {
  masq_proxy_url u;
  char err[128];
  const char *bad[] = {"http://proxy", "https://", "https://p:0", "https://p:70000",
                       "https://p/path", "proxy.example", "https://2001:db8::1"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    err[0] = 0;
    assert_int_equal(masq_proxy_url_parse(bad[i], &u, err, sizeof(err)), -1);
    assert_true(err[0] != 0); /* every refusal says why */
  }
}

static void test_target_default_template(void **state) {
  masq_proxy_url u;
  char err[64], auth[256], path[512];
  assert_int_equal(masq_proxy_url_parse("https://proxy.example:4443", &u, err, sizeof(err)), 0);
  assert_int_equal(masq_proxy_url_target(&u, MASQ_DEFAULT_UDP_TEMPLATE, "192.0.2.6", "443", auth,
                                         sizeof(auth), path, sizeof(path)),
                   0);
  assert_string_equal(auth, "proxy.example:4443");
  assert_string_equal(path, "/.well-known/masque/udp/192.0.2.6/443/");
  /* RFC 9298 §2: the colons of an IPv6 target are percent-encoded. */
  assert_int_equal(masq_proxy_url_target(&u, MASQ_DEFAULT_UDP_TEMPLATE, "2001:db8::42", "53",
                                         auth, sizeof(auth), path, sizeof(path)),
                   0);
  assert_string_equal(path, "/.well-known/masque/udp/2001%3Adb8%3A%3A42/53/");
}

static void test_target_custom_template(void **state) {
  masq_proxy_url u;
  char err[64], auth[256], path[512];
  assert_int_equal(masq_proxy_url_parse("https://p.example", &u, err, sizeof(err)), 0);
  /* An RFC 9298 §2 example: a fixed authority and a query template. */
  assert_int_equal(masq_proxy_url_target(&u, "https://example.org:4443/masque{?target_host,target_port}",
                                         "target.example", "443", auth, sizeof(auth), path,
                                         sizeof(path)),
                   0);
  assert_string_equal(auth, "example.org:4443");
  assert_string_equal(path, "/masque?target_host=target.example&target_port=443");
  /* A template that does not fit the buffers is refused, not truncated. */
  assert_int_equal(masq_proxy_url_target(&u, MASQ_DEFAULT_UDP_TEMPLATE, "a.example", "1", auth,
                                         sizeof(auth), path, 10),
                   -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_target_default_template),
      cmocka_unit_test(test_target_custom_template),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
