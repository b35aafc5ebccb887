/* IP range sets (proto/iprange.h): CIDR <-> range conversion at the
 * edges of both address spaces, normalization, intersection and
 * subtraction as used for advertised routes with --route / --exclude,
 * and a brute-force cross-check of the CIDR split on small IPv4 ranges. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/addr.h"
#include "proto/iprange.h"

static masq_ip ip(const char *s) {
  masq_ip x;
  memset(&x, 0, sizeof(x));
  assert_int_equal(masq_ip_parse(s, &x), 0);
  return x;
}

static masq_iprange rg(const char *s, const char *e) {
  masq_iprange r;
  r.start = ip(s);
  r.end = ip(e);
  return r;
}

static masq_iprange cidr_rg(const char *s) {
  masq_cidr c;
  masq_iprange r;
  assert_int_equal(masq_cidr_parse(s, &c), 0);
  assert_int_equal(masq_iprange_from_cidr(&c, &r), 0);
  return r;
}

static void assert_ip(const masq_ip *x, const char *s) {
  masq_ip y = ip(s);
  assert_int_equal(masq_iprange_ipcmp(x, &y), 0);
}

static void assert_cidr(const masq_cidr *c, const char *s) {
  char buf[64], out[80];
  assert_non_null(masq_ip_format(&c->ip, buf, sizeof(buf)));
  snprintf(out, sizeof(out), "%s/%u", buf, c->plen);
  assert_string_equal(out, s);
}

static void test_from_cidr(void **st) {
  (void)st;
  masq_iprange r = cidr_rg("10.1.0.0/16");
  assert_ip(&r.start, "10.1.0.0");
  assert_ip(&r.end, "10.1.255.255");
  r = cidr_rg("0.0.0.0/0");
  assert_ip(&r.start, "0.0.0.0");
  assert_ip(&r.end, "255.255.255.255");
  r = cidr_rg("2001:db8::/32");
  assert_ip(&r.end, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
  r = cidr_rg("2001:db8::1/128");
  assert_ip(&r.start, "2001:db8::1");
  assert_ip(&r.end, "2001:db8::1");
  masq_cidr bad = {.ip = ip("10.0.0.0"), .plen = 33};
  assert_int_equal(masq_iprange_from_cidr(&bad, &r), -1);
  bad.ip.family = 5;
  bad.plen = 8;
  assert_int_equal(masq_iprange_from_cidr(&bad, &r), -1);
  assert_int_equal(masq_iprange_full(6, &r), 0);
  assert_ip(&r.start, "::");
  assert_ip(&r.end, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  assert_int_equal(masq_iprange_full(0, &r), -1);
}

static void test_normalize(void **st) {
  (void)st;
  masq_iprange r[] = {
      rg("2001:db8::10", "2001:db8::20"), rg("10.0.0.5", "10.0.0.9"),
      rg("10.0.0.0", "10.0.0.4"), /* adjacent: merges */
      rg("10.0.0.7", "10.0.1.0"), /* overlaps */
      rg("192.0.2.9", "192.0.2.1"), /* start > end: dropped */
      rg("2001:db8::21", "2001:db8::22"), rg("255.255.255.255", "255.255.255.255"),
      rg("255.255.255.0", "255.255.255.254"),
  };
  size_t n = masq_iprange_normalize(r, sizeof(r) / sizeof(r[0]));
  assert_int_equal(n, 3);
  assert_ip(&r[0].start, "10.0.0.0");
  assert_ip(&r[0].end, "10.0.1.0");
  assert_ip(&r[1].start, "255.255.255.0");
  assert_ip(&r[1].end, "255.255.255.255");
  assert_ip(&r[2].start, "2001:db8::10");
  assert_ip(&r[2].end, "2001:db8::22");
  assert_int_equal(masq_iprange_normalize(r, 0), 0);
  /* The end of IPv4 does not touch the start of IPv6. */
  masq_iprange f[2];
  assert_int_equal(masq_iprange_full(4, &f[0]), 0);
  assert_int_equal(masq_iprange_full(6, &f[1]), 0);
  assert_int_equal(masq_iprange_normalize(f, 2), 2);
}

static void test_contains(void **st) {
  (void)st;
  masq_iprange r[] = {cidr_rg("10.0.0.0/8"), cidr_rg("192.0.2.0/24"), cidr_rg("2001:db8::/64")};
  size_t n = masq_iprange_normalize(r, 3);
  masq_ip in[] = {ip("10.0.0.0"), ip("10.255.255.255"), ip("192.0.2.77"), ip("2001:db8::1")};
  masq_ip out[] = {ip("9.255.255.255"), ip("11.0.0.0"), ip("192.0.3.0"), ip("2001:db8:0:1::"),
                   ip("::a00:1")};
  for (size_t i = 0; i < 4; i++) assert_true(masq_iprange_contains(r, n, &in[i]));
  for (size_t i = 0; i < 5; i++) assert_false(masq_iprange_contains(r, n, &out[i]));
  assert_false(masq_iprange_contains(r, 0, &in[0]));
}

static void test_intersect(void **st) {
  (void)st;
  masq_iprange a[] = {cidr_rg("0.0.0.0/0"), cidr_rg("::/0")};
  masq_iprange b[] = {cidr_rg("192.0.2.0/24"), cidr_rg("198.51.100.0/24"),
                      cidr_rg("2001:db8:2::/48")};
  masq_iprange out[8];
  size_t n = masq_iprange_intersect(a, 2, b, 3, out, 8);
  assert_int_equal(n, 3);
  assert_ip(&out[0].start, "192.0.2.0");
  assert_ip(&out[2].end, "2001:db8:2:ffff:ffff:ffff:ffff:ffff");
  /* Partial overlap, and families never mix. */
  masq_iprange c[] = {rg("10.0.0.5", "10.0.0.20")};
  masq_iprange d[] = {rg("10.0.0.0", "10.0.0.9"), rg("10.0.0.15", "10.0.0.30"), cidr_rg("::/0")};
  n = masq_iprange_intersect(c, 1, d, 3, out, 8);
  assert_int_equal(n, 2);
  assert_ip(&out[0].start, "10.0.0.5");
  assert_ip(&out[0].end, "10.0.0.9");
  assert_ip(&out[1].start, "10.0.0.15");
  assert_ip(&out[1].end, "10.0.0.20");
  assert_int_equal(masq_iprange_intersect(c, 1, d, 3, out, 1), MASQ_IPRANGE_TOO_MANY);
  assert_int_equal(masq_iprange_intersect(c, 1, d, 0, out, 8), 0);
}

static void test_subtract(void **st) {
  (void)st;
  masq_iprange a[] = {cidr_rg("0.0.0.0/0"), cidr_rg("::/0")};
  masq_iprange b[] = {cidr_rg("0.0.0.0/8"), cidr_rg("10.0.0.0/8"), cidr_rg("255.0.0.0/8"),
                      cidr_rg("fe80::/10")};
  masq_iprange out[8];
  size_t n = masq_iprange_subtract(a, 2, b, 4, out, 8);
  assert_int_equal(n, 4);
  assert_ip(&out[0].start, "1.0.0.0");
  assert_ip(&out[0].end, "9.255.255.255");
  assert_ip(&out[1].start, "11.0.0.0");
  assert_ip(&out[1].end, "254.255.255.255");
  assert_ip(&out[2].start, "::");
  assert_ip(&out[2].end, "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  assert_ip(&out[3].start, "fec0::");
  /* Everything cut away; nothing to cut. */
  masq_iprange all4 = cidr_rg("0.0.0.0/0");
  assert_int_equal(masq_iprange_subtract(b, 1, &all4, 1, out, 8), 0);
  assert_int_equal(masq_iprange_subtract(&all4, 1, b + 3, 1, out, 8), 1);
  assert_int_equal(masq_iprange_subtract(a, 2, b, 4, out, 3), MASQ_IPRANGE_TOO_MANY);
}

static void test_to_cidrs(void **st) {
  (void)st;
  masq_cidr c[300];
  masq_iprange r[] = {rg("10.0.0.1", "10.0.0.6")};
  size_t n = masq_iprange_to_cidrs(r, 1, c, 300);
  assert_int_equal(n, 4);
  assert_cidr(&c[0], "10.0.0.1/32");
  assert_cidr(&c[1], "10.0.0.2/31");
  assert_cidr(&c[2], "10.0.0.4/31");
  assert_cidr(&c[3], "10.0.0.6/32");
  masq_iprange f[2];
  masq_iprange_full(4, &f[0]);
  masq_iprange_full(6, &f[1]);
  assert_int_equal(masq_iprange_to_cidrs(f, 2, c, 300), 2);
  assert_cidr(&c[0], "0.0.0.0/0");
  assert_cidr(&c[1], "::/0");
  /* The worst case: ::1 to ffff...fffe needs 2 * 127 prefixes. */
  masq_iprange w = rg("::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
  assert_int_equal(masq_iprange_to_cidrs(&w, 1, c, 300), 254);
  assert_cidr(&c[0], "::1/128");
  assert_cidr(&c[1], "::2/127");
  assert_cidr(&c[127], "8000::/2");
  assert_cidr(&c[253], "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/128");
  assert_int_equal(masq_iprange_to_cidrs(&w, 1, c, 253), MASQ_IPRANGE_TOO_MANY);
  masq_iprange one = rg("255.255.255.255", "255.255.255.255");
  assert_int_equal(masq_iprange_to_cidrs(&one, 1, c, 1), 1);
  assert_cidr(&c[0], "255.255.255.255/32");
}

/* Every range inside 10.0.0.0..10.0.0.40: the prefixes are disjoint,
 * aligned, cover exactly the range, and no two neighbours could merge. */
static void test_to_cidrs_exhaustive(void **st) {
  (void)st;
  for (unsigned s = 0; s <= 40; s++) {
    for (unsigned e = s; e <= 40; e++) {
      masq_iprange r = rg("10.0.0.0", "10.0.0.0");
      r.start.a[3] = (uint8_t)s;
      r.end.a[3] = (uint8_t)e;
      masq_cidr c[64];
      size_t n = masq_iprange_to_cidrs(&r, 1, c, 64);
      assert_true(n >= 1 && n < 64);
      unsigned next = s;
      for (size_t i = 0; i < n; i++) {
        unsigned size = 1u << (32 - c[i].plen);
        assert_int_equal(c[i].ip.a[3], next);
        assert_int_equal(next % size, 0);
        next += size;
        if (i > 0 && c[i].plen == c[i - 1].plen) {
          unsigned prev = c[i - 1].ip.a[3];
          assert_false(prev % (2 * size) == 0); /* would have been one /plen-1 */
        }
      }
      assert_int_equal(next, e + 1);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_from_cidr),     cmocka_unit_test(test_normalize),
      cmocka_unit_test(test_contains),      cmocka_unit_test(test_intersect),
      cmocka_unit_test(test_subtract),      cmocka_unit_test(test_to_cidrs),
      cmocka_unit_test(test_to_cidrs_exhaustive),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
