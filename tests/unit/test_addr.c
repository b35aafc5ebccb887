#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "proto/addr.h"

static masq_ip ip_of(const char *s) {
  masq_ip ip;
  assert_int_equal(masq_ip_parse(s, &ip), 0);
  return ip;
}

static void assert_ip_roundtrip(const char *in, const char *want) {
  masq_ip ip;
  char buf[64];
  assert_int_equal(masq_ip_parse(in, &ip), 0);
  assert_non_null(masq_ip_format(&ip, buf, sizeof(buf)));
  assert_string_equal(buf, want);
}

static void test_ipv4_parse(void **state) {
  (void)state;
  masq_ip ip = ip_of("192.0.2.6");
  assert_int_equal(ip.family, 4);
  assert_int_equal(ip.a[0], 192);
  assert_int_equal(ip.a[3], 6);
  assert_ip_roundtrip("0.0.0.0", "0.0.0.0");
  assert_ip_roundtrip("255.255.255.255", "255.255.255.255");
  const char *bad[] = {"",        "1.2.3",   "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4 ",
                       " 1.2.3.4", "1..3.4", "1.2.3.",    "+1.2.3.4",  "1.2.3.0x4", "1.2.3.-4",
                       "1.2.3.4/8", "a.b.c.d", "1.2.3.4444"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    masq_ip x;
    assert_int_equal(masq_ip_parse(bad[i], &x), -1);
  }
}

static void test_ipv6_parse_format(void **state) {
  (void)state;
  /* RFC 5952 §4: lower case, leading zeros dropped, longest run of zero
   * groups compressed (the first on a tie), one zero group not compressed. */
  assert_ip_roundtrip("2001:DB8:0:0:0:0:0:42", "2001:db8::42");
  assert_ip_roundtrip("2001:0db8::0001", "2001:db8::1");
  assert_ip_roundtrip("::", "::");
  assert_ip_roundtrip("::1", "::1");
  assert_ip_roundtrip("1::", "1::");
  assert_ip_roundtrip("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1");
  assert_ip_roundtrip("2001:0:0:1:0:0:0:1", "2001:0:0:1::1");
  assert_ip_roundtrip("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0");
  assert_ip_roundtrip("::ffff:192.0.2.1", "::ffff:192.0.2.1");
  assert_ip_roundtrip("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304");
  masq_ip ip = ip_of("fe80::1");
  assert_int_equal(ip.family, 6);
  assert_int_equal(ip.a[0], 0xfe);
  assert_int_equal(ip.a[1], 0x80);
  assert_int_equal(ip.a[15], 1);
  const char *bad[] = {":",          ":::",           "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7",
                       "1::2::3",    "12345::",       "g::1",              ":1::",
                       "1:",         "fe80::1%eth0",  "[::1]",             "::1.2.3",
                       "1.2.3.4::",  "::1.2.3.4:5",   "1:2:3:4:5:6:7:8::", "::ffff:01.2.3.4",
                       "1:2:3:4:5:6:7:1.2.3.4", " ::1", "::1 "};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    masq_ip x;
    assert_int_equal(masq_ip_parse(bad[i], &x), -1);
  }
}

static void test_ip_format_small_buffer(void **state) {
  (void)state;
  masq_ip ip = ip_of("1.2.3.4");
  char buf[64];
  assert_null(masq_ip_format(&ip, buf, 45));
  ip.family = 5;
  assert_null(masq_ip_format(&ip, buf, sizeof(buf)));
}

static void test_cidr_parse(void **state) {
  (void)state;
  masq_cidr c;
  assert_int_equal(masq_cidr_parse("10.0.0.0/8", &c), 0);
  assert_int_equal(c.ip.family, 4);
  assert_int_equal(c.plen, 8);
  assert_int_equal(masq_cidr_parse("1.2.3.4", &c), 0);
  assert_int_equal(c.plen, 32);
  assert_int_equal(masq_cidr_parse("::1", &c), 0);
  assert_int_equal(c.plen, 128);
  assert_int_equal(masq_cidr_parse("0.0.0.0/0", &c), 0);
  assert_int_equal(c.plen, 0);
  assert_int_equal(masq_cidr_parse("fe80::/10", &c), 0);
  assert_int_equal(c.plen, 10);
  assert_int_equal(masq_cidr_parse("100.64.0.0/10", &c), 0);
  assert_int_equal(masq_cidr_parse("10.0.0.0/08", &c), 0);
  assert_int_equal(c.plen, 8);
  assert_int_equal(masq_cidr_parse("010.0.0.0/8", &c), -1);
  const char *bad[] = {"10.0.0.1/8",  "10.0.0.0/33", "::/129",   "10.0.0.0/",  "10.0.0.0/-1",
                       "10.0.0.0/+8", "10.0.0.0/ 8", "10.0.0.0/8/8", "10.0.0.0/8 ", "/8",
                       "fe80::1/10",  "100.64.0.0/9", "10.0.0.0/a", "", "10.0.0.0/4294967304"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(masq_cidr_parse(bad[i], &c), -1);
}

static int contains(const char *cidr, const char *ip) {
  masq_cidr c;
  assert_int_equal(masq_cidr_parse(cidr, &c), 0);
  masq_ip x = ip_of(ip);
  return masq_cidr_contains(&c, &x);
}

static void test_cidr_contains(void **state) {
  (void)state;
  assert_true(contains("10.0.0.0/8", "10.255.1.2"));
  assert_false(contains("10.0.0.0/8", "11.0.0.0"));
  assert_true(contains("172.16.0.0/12", "172.31.255.255"));
  assert_false(contains("172.16.0.0/12", "172.32.0.0"));
  assert_true(contains("0.0.0.0/0", "8.8.8.8"));
  assert_true(contains("fe80::/10", "febf::1"));
  assert_false(contains("fe80::/10", "fec0::1"));
  assert_true(contains("::/0", "2001:db8::1"));
  /* Families never mix, except IPv4-mapped IPv6 against IPv4 rules. */
  assert_false(contains("0.0.0.0/0", "2001:db8::1"));
  assert_false(contains("::/0", "1.2.3.4"));
  assert_true(contains("127.0.0.0/8", "::ffff:127.0.0.1"));
  assert_true(contains("10.0.0.0/8", "::ffff:a00:1"));
  assert_false(contains("10.0.0.0/8", "::ffff:b00:1"));
  assert_false(contains("127.0.0.0/8", "::127.0.0.1")); /* not mapped */
  assert_true(contains("::ffff:0:0/96", "::ffff:1.2.3.4"));
  /* A prefix built by hand with an impossible length contains nothing. */
  masq_cidr odd = {ip_of("10.0.0.0"), 200};
  masq_ip m = ip_of("::ffff:10.0.0.0");
  assert_false(masq_cidr_contains(&odd, &m));
  odd.plen = 33;
  masq_ip v4 = ip_of("10.0.0.0");
  assert_false(masq_cidr_contains(&odd, &v4));
}

static void test_hostport(void **state) {
  (void)state;
  char host[MASQ_FWD_HOST_MAX];
  uint16_t port = 0;
  assert_int_equal(masq_hostport_parse("proxy.example:443", host, sizeof(host), &port, -1, 0), 0);
  assert_string_equal(host, "proxy.example");
  assert_int_equal(port, 443);
  assert_int_equal(masq_hostport_parse("[::1]:443", host, sizeof(host), &port, -1, 0), 0);
  assert_string_equal(host, "::1");
  assert_int_equal(port, 443);
  assert_int_equal(masq_hostport_parse("1.2.3.4:80", host, sizeof(host), &port, -1, 0), 0);
  assert_string_equal(host, "1.2.3.4");
  assert_int_equal(port, 80);
  assert_int_equal(masq_hostport_parse("host", host, sizeof(host), &port, 4433, 0), 0);
  assert_string_equal(host, "host");
  assert_int_equal(port, 4433);
  assert_int_equal(masq_hostport_parse("[2001:db8::1]", host, sizeof(host), &port, 443, 0), 0);
  assert_string_equal(host, "2001:db8::1");
  assert_int_equal(port, 443);
  assert_int_equal(masq_hostport_parse("0.0.0.0:0", host, sizeof(host), &port, -1, 1), 0);
  assert_int_equal(port, 0);
  assert_int_equal(masq_hostport_parse("h:65535", host, sizeof(host), &port, -1, 0), 0);
  assert_int_equal(port, 65535);

  const char *bad[] = {"host",     "host:",   ":443",     "host:0",    "host:65536",
                       "host:-1",  "host:+1", "host:1x",  "host: 443", "::1:443",
                       "[::1]443", "[::1",    "[1.2.3.4]:1", "[]:1",   "a b:1",
                       "h@x:1",    "h/x:1",   "[::1]:",   "host:99999999999999999999"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(masq_hostport_parse(bad[i], host, sizeof(host), &port, -1, 0), -1);
  assert_int_equal(masq_hostport_parse("host", host, sizeof(host), &port, 0, 0), -1);
  assert_int_equal(masq_hostport_parse("host", host, sizeof(host), &port, 70000, 0), -1);
  /* The host must fit hcap and MASQ_MAX_HOST. */
  assert_int_equal(masq_hostport_parse("abcd:1", host, 4, &port, -1, 0), -1);
  assert_int_equal(masq_hostport_parse("abc:1", host, 4, &port, -1, 0), 0);
  char longname[MASQ_MAX_HOST + 8];
  memset(longname, 'a', MASQ_MAX_HOST + 1);
  memcpy(longname + MASQ_MAX_HOST + 1, ":1", 3);
  char big[512];
  assert_int_equal(masq_hostport_parse(longname, big, sizeof(big), &port, -1, 0), -1);
  memcpy(longname + MASQ_MAX_HOST, ":1", 3);
  assert_int_equal(masq_hostport_parse(longname, big, sizeof(big), &port, -1, 0), 0);
  assert_int_equal(strlen(big), MASQ_MAX_HOST);
}

static void test_fwdspec(void **state) {
  (void)state;
  masq_fwdspec f;
  assert_int_equal(masq_fwdspec_parse("5353:dns.example:53", &f), 0);
  assert_string_equal(f.bind, "127.0.0.1");
  assert_int_equal(f.port, 5353);
  assert_string_equal(f.host, "dns.example");
  assert_int_equal(f.hostport, 53);
  assert_int_equal(masq_fwdspec_parse("0.0.0.0:5353:192.0.2.1:53", &f), 0);
  assert_string_equal(f.bind, "0.0.0.0");
  assert_string_equal(f.host, "192.0.2.1");
  assert_int_equal(masq_fwdspec_parse("[::1]:5353:[2001:db8::1]:53", &f), 0);
  assert_string_equal(f.bind, "::1");
  assert_int_equal(f.port, 5353);
  assert_string_equal(f.host, "2001:db8::1");
  assert_int_equal(f.hostport, 53);
  assert_int_equal(masq_fwdspec_parse("1:[::]:65535", &f), 0);
  assert_string_equal(f.host, "::");

  const char *bad[] = {"",          "5353",           "5353:host",        "a:b:c:d:e",
                       "0:host:53", "5353:host:0",    "5353:host:65536",  "x:5353:host:53",
                       "localhost:5353:host:53",      "5353:2001:db8::1:53", "[::1:5353:h:53",
                       "::1]:5353:h:53", "[[::1]]:1:h:2", "5353::53",   "5353:h:53:",
                       ":5353:h:53", "5353:[1.2.3.4]:53", "5353:h o:53", "5353:h:0x35"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(masq_fwdspec_parse(bad[i], &f), -1);
}

static void test_port_parse(void **state) {
  (void)state;
  uint16_t p;
  assert_int_equal(masq_port_parse("443", 3, 0, &p), 0);
  assert_int_equal(p, 443);
  assert_int_equal(masq_port_parse("4430", 3, 0, &p), 0); /* length counts */
  assert_int_equal(p, 443);
  assert_int_equal(masq_port_parse("0", 1, 0, &p), -1);
  assert_int_equal(masq_port_parse("0", 1, 1, &p), 0);
  assert_int_equal(masq_port_parse("65536", 5, 0, &p), -1);
  assert_int_equal(masq_port_parse("", 0, 0, &p), -1);
  assert_int_equal(masq_port_parse("44 ", 3, 0, &p), -1);
  assert_int_equal(masq_port_parse("-1", 2, 0, &p), -1);
  assert_int_equal(masq_port_parse("+1", 2, 0, &p), -1);
  /* Leading zeros are allowed (RFC 3986 port = *DIGIT). */
  assert_int_equal(masq_port_parse("000443", 6, 0, &p), 0);
  assert_int_equal(p, 443);
  assert_int_equal(masq_port_parse("00000000000000000000065535", 26, 0, &p), 0);
  assert_int_equal(p, 65535);
  assert_int_equal(masq_port_parse("000", 3, 0, &p), -1);
  assert_int_equal(masq_port_parse("99999999999999999999999", 23, 0, &p), -1);
}

static void test_target_host(void **state) {
  (void)state;
  masq_ip ip;
  assert_int_equal(masq_target_host_parse("192.0.2.6", &ip), 1);
  assert_int_equal(ip.family, 4);
  assert_int_equal(masq_target_host_parse("2001:db8::42", &ip), 1);
  assert_int_equal(ip.family, 6);
  assert_int_equal(masq_target_host_parse("example.org", &ip), 0);
  assert_int_equal(masq_target_host_parse("example.org.", NULL), 0);
  assert_int_equal(masq_target_host_parse("_dns.x-y.example", NULL), 0);
  assert_int_equal(masq_target_host_parse("localhost", NULL), 0);
  const char *bad[] = {"",         ".",           "a..b",          "-a.example", "a-.example",
                       "a b",      "a/b",         "fe80::1%eth0",  "[::1]",      "127.1",
                       "1.2.3.4.5", "256.0.0.1",  "example..",     "ex%41mple",  "a.b:80"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(masq_target_host_parse(bad[i], NULL), -1);
  char name[300];
  memset(name, 'a', 64);
  name[64] = '\0';
  assert_int_equal(masq_target_host_parse(name, NULL), -1); /* label > 63 */
  name[63] = '\0';
  assert_int_equal(masq_target_host_parse(name, NULL), 0);
  /* 254 characters without a final dot is too long. */
  for (int i = 0; i < 254; i++) name[i] = (i % 2) ? '.' : 'a';
  name[254] = '\0';
  name[253] = 'a';
  assert_int_equal(masq_target_host_parse(name, NULL), -1);
  name[253] = '\0';
  assert_int_equal(masq_target_host_parse(name, NULL), 0);
}

static int allowed(const masq_policy *p, const char *s) {
  masq_ip ip = ip_of(s);
  return masq_policy_check(p, &ip);
}

static void test_policy_default(void **state) {
  (void)state;
  masq_policy p;
  masq_policy_init_default(&p);
  const char *deny[] = {"0.0.0.0",        "0.1.2.3",         "127.0.0.1",       "127.255.255.254",
                        "10.1.2.3",       "100.64.0.1",      "100.127.255.255", "169.254.169.254",
                        "172.16.0.1",     "172.31.0.1",      "192.168.1.1",     "192.0.0.8",
                        "198.18.0.1",     "198.19.255.255",  "224.0.0.1",       "239.255.255.250",
                        "240.0.0.1",      "255.255.255.255", "::",              "::1",
                        "fe80::1",        "fc00::1",         "fd12:3456::1",    "ff02::1",
                        "fec0::1",        "::ffff:127.0.0.1", "::ffff:10.0.0.1",
                        "::ffff:169.254.169.254", "::ffff:0.0.0.0"};
  for (size_t i = 0; i < sizeof(deny) / sizeof(deny[0]); i++) {
    if (allowed(&p, deny[i])) fail_msg("%s should be denied", deny[i]);
  }
  /* Public and documentation addresses stay allowed. */
  const char *allow[] = {"8.8.8.8",       "1.1.1.1",       "192.0.2.6",      "198.51.100.1",
                         "203.0.113.1",   "100.63.255.255", "100.128.0.0",   "172.15.255.255",
                         "172.32.0.0",    "198.17.255.255", "198.20.0.0",    "192.0.1.255",
                         "223.255.255.255", "2001:db8::42", "2606:4700::1111", "::ffff:8.8.8.8",
                         "::2"};
  for (size_t i = 0; i < sizeof(allow) / sizeof(allow[0]); i++) {
    if (!allowed(&p, allow[i])) fail_msg("%s should be allowed", allow[i]);
  }
  masq_ip bad = {0};
  assert_int_equal(masq_policy_check(&p, &bad), 0);
}

static void test_policy_allow_overrides(void **state) {
  (void)state;
  masq_policy p;
  masq_policy_init_default(&p);
  masq_cidr c;
  assert_int_equal(masq_cidr_parse("10.1.0.0/16", &c), 0);
  assert_int_equal(masq_policy_allow(&p, &c), 0);
  assert_true(allowed(&p, "10.1.2.3"));
  assert_true(allowed(&p, "::ffff:10.1.2.3"));
  assert_false(allowed(&p, "10.2.0.1"));
  assert_int_equal(masq_cidr_parse("8.8.8.0/24", &c), 0);
  assert_int_equal(masq_policy_deny(&p, &c), 0);
  assert_false(allowed(&p, "8.8.8.8"));
  assert_true(allowed(&p, "8.8.4.4"));
  /* Lists are bounded. */
  while (p.ndeny < MASQ_POLICY_MAX) assert_int_equal(masq_policy_deny(&p, &c), 0);
  assert_int_equal(masq_policy_deny(&p, &c), -1);
  while (p.nallow < MASQ_POLICY_MAX) assert_int_equal(masq_policy_allow(&p, &c), 0);
  assert_int_equal(masq_policy_allow(&p, &c), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ipv4_parse),
      cmocka_unit_test(test_ipv6_parse_format),
      cmocka_unit_test(test_ip_format_small_buffer),
      cmocka_unit_test(test_cidr_parse),
      cmocka_unit_test(test_cidr_contains),
      cmocka_unit_test(test_hostport),
      cmocka_unit_test(test_fwdspec),
      cmocka_unit_test(test_port_parse),
      cmocka_unit_test(test_target_host),
      cmocka_unit_test(test_policy_default),
      cmocka_unit_test(test_policy_allow_overrides),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
