#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "proto/uritemplate.h"
#include "proto/wire.h"

#define T_PATH "https://example.org/.well-known/masque/udp/{target_host}/{target_port}/"
#define T_QUERY "https://proxy.example.org:4443/masque?h={target_host}&p={target_port}"
#define T_FORM "https://proxy.example.org:4443/masque{?target_host,target_port}"

static void expect_expand(const char *tmpl, const masq_tvar *v, size_t n, const char *want) {
  char out[512];
  int len = masq_uritemplate_expand(tmpl, v, n, out, sizeof(out));
  assert_int_equal(len, (int)strlen(want));
  assert_string_equal(out, want);
}

static void test_expand_rfc9298(void **state) {
  (void)state;
  masq_tvar v[] = {{"target_host", "192.0.2.6"}, {"target_port", "443"}};
  expect_expand(T_PATH, v, 2, "https://example.org/.well-known/masque/udp/192.0.2.6/443/");
  expect_expand(T_QUERY, v, 2, "https://proxy.example.org:4443/masque?h=192.0.2.6&p=443");
  expect_expand(T_FORM, v, 2,
                "https://proxy.example.org:4443/masque?target_host=192.0.2.6&target_port=443");
  /* RFC 9298 §3: the colons of an IPv6 literal are percent-encoded. */
  masq_tvar v6[] = {{"target_host", "2001:db8::42"}, {"target_port", "53"}};
  expect_expand(T_PATH, v6, 2,
                "https://example.org/.well-known/masque/udp/2001%3Adb8%3A%3A42/53/");
  masq_tvar dflt[] = {{"proxy", "proxy.example:4443"},
                      {"target_host", "dns.example"},
                      {"target_port", "53"}};
  expect_expand(MASQ_DEFAULT_UDP_TEMPLATE, dflt, 3,
                "https://proxy.example%3A4443/.well-known/masque/udp/dns.example/53/");
}

static void test_expand_encoding(void **state) {
  (void)state;
  /* Everything but unreserved is encoded, with upper-case hex. */
  masq_tvar v[] = {{"x", "a-b.c_d~e f/g?h&i=j%k+l\xc3\xa9"}};
  expect_expand("/{x}", v, 1, "/a-b.c_d~e%20f%2Fg%3Fh%26i%3Dj%25k%2Bl%C3%A9");
  masq_tvar e[] = {{"x", ""}};
  expect_expand("/a/{x}/b", e, 1, "/a//b");
}

static void test_expand_form(void **state) {
  (void)state;
  masq_tvar v[] = {{"a", "1"}, {"b", NULL}, {"c", ""}};
  expect_expand("/p{?a,b,c}", v, 3, "/p?a=1&c=");
  expect_expand("/p{?b}", v, 3, "/p");
  expect_expand("/p{?b,a}", v, 3, "/p?a=1");
  expect_expand("/p?x=1{&a,b}", v, 3, "/p?x=1&a=1");
  /* An undefined variable is omitted also when absent from vars. */
  expect_expand("/p{?zz,a}", v, 3, "/p?a=1");
  /* Simple expression with a list: values joined by ','. */
  masq_tvar l[] = {{"x", "1"}, {"y", "a,b"}};
  expect_expand("/{x,y}", l, 2, "/1,a%2Cb");
  expect_expand("literal-only/%20", NULL, 0, "literal-only/%20");
}

static void test_expand_errors(void **state) {
  (void)state;
  char out[64];
  masq_tvar v[] = {{"a", "1"}, {"u", NULL}};
  const char *bad[] = {"/{a",   "/a}",     "/{}",    "/{a,}",   "/{,a}",    "/{+a}",   "/{#a}",
                       "/{.a}", "/{/a}",   "/{;a}",  "/{=a}",   "/{a:3}",   "/{a*}",   "/{a b}",
                       "/{{a}}", "/a b",   "/a\"b",  "/%zz",    "/%4",      "/\x7f",   "/{u}",
                       "/{missing}", "/{a..b}", "/{.}", "/{a}\xc3\xa9", "/{?a,u,}"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (masq_uritemplate_expand(bad[i], v, 2, out, sizeof(out)) != -1)
      fail_msg("template %s should be refused", bad[i]);
  }
  /* Too many variables in one expression. */
  assert_int_equal(masq_uritemplate_expand("{?a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a}", v, 2, out,
                                           sizeof(out)),
                   -1);
  char big[128];
  /* Sixteen "a=1" pairs, each after '?' or '&'. */
  assert_int_equal(
      masq_uritemplate_expand("{?a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a}", v, 2, big, sizeof(big)),
      16 * 4);
  /* The output buffer must hold the result and its NUL. */
  assert_int_equal(masq_uritemplate_expand("/abc", NULL, 0, out, 4), -1);
  assert_int_equal(masq_uritemplate_expand("/abc", NULL, 0, out, 5), 4);
  assert_string_equal(out, "/abc");
  assert_int_equal(masq_uritemplate_expand("/{a}", v, 2, out, 3), 2);
  assert_int_equal(masq_uritemplate_expand("/{a}", v, 2, out, 2), -1);
  assert_int_equal(masq_uritemplate_expand("/", NULL, 0, out, 0), -1);
}

static void test_uri_split(void **state) {
  (void)state;
  char a[64], p[64];
  assert_int_equal(
      masq_uri_split("https://proxy.example:4443/path?x", a, sizeof(a), p, sizeof(p)), 0);
  assert_string_equal(a, "proxy.example:4443");
  assert_string_equal(p, "/path?x");
  assert_int_equal(masq_uri_split("HTTPS://h", a, sizeof(a), p, sizeof(p)), 0);
  assert_string_equal(a, "h");
  assert_string_equal(p, "/");
  assert_int_equal(masq_uri_split("https://h?q=1#frag", a, sizeof(a), p, sizeof(p)), 0);
  assert_string_equal(p, "/?q=1");
  assert_int_equal(masq_uri_split("https://[2001:db8::1]:443/x#f", a, sizeof(a), p, sizeof(p)), 0);
  assert_string_equal(a, "[2001:db8::1]:443");
  assert_string_equal(p, "/x");
  const char *bad[] = {"http://h/",  "https:/h/",  "https:///x", "https://",     "h/x",
                       "https://u@h/", "https://h/a b", "ftp://h/", "https://h\x01/"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(masq_uri_split(bad[i], a, sizeof(a), p, sizeof(p)), -1);
  /* Buffers too small for either part. */
  assert_int_equal(masq_uri_split("https://host/p", a, 4, p, sizeof(p)), -1);
  assert_int_equal(masq_uri_split("https://host/p", a, 5, p, 2), -1);
  assert_int_equal(masq_uri_split("https://host/p", a, 5, p, 3), 0);
  assert_int_equal(masq_uri_split("https://host", a, 5, p, 1), -1);
}

typedef struct target {
  char host[256], port[8];
  masq_tmatch m[2];
} target;

static void target_init(target *t) {
  memset(t, 0, sizeof(*t));
  t->m[0] = (masq_tmatch){"target_host", t->host, sizeof(t->host), 0};
  t->m[1] = (masq_tmatch){"target_port", t->port, sizeof(t->port), 0};
}

static int match(const char *tmpl, const char *path, target *t) {
  target_init(t);
  return masq_uritemplate_match(tmpl, path, t->m, 2);
}

static void test_match_rfc9298(void **state) {
  (void)state;
  target t;
  assert_int_equal(match(T_PATH, "/.well-known/masque/udp/192.0.2.6/443/", &t), 0);
  assert_true(t.m[0].found && t.m[1].found);
  assert_string_equal(t.host, "192.0.2.6");
  assert_string_equal(t.port, "443");
  assert_int_equal(match(T_PATH, "/.well-known/masque/udp/2001%3Adb8%3A%3A42/53/", &t), 0);
  assert_string_equal(t.host, "2001:db8::42");
  assert_string_equal(t.port, "53");
  /* Lower-case escapes decode too. */
  assert_int_equal(match(T_PATH, "/.well-known/masque/udp/2001%3adb8%3a%3a42/53/", &t), 0);
  assert_string_equal(t.host, "2001:db8::42");
  assert_int_equal(match(T_QUERY, "/masque?h=example.com&p=8443", &t), 0);
  assert_string_equal(t.host, "example.com");
  assert_string_equal(t.port, "8443");
  assert_int_equal(match(T_FORM, "/masque?target_host=example.com&target_port=53", &t), 0);
  assert_string_equal(t.host, "example.com");
  assert_string_equal(t.port, "53");
  /* Form-style pairs may come in any order. */
  assert_int_equal(match(T_FORM, "/masque?target_port=53&target_host=a.example", &t), 0);
  assert_string_equal(t.host, "a.example");
  assert_string_equal(t.port, "53");
  /* The default template, whose authority holds a variable. */
  assert_int_equal(match(MASQ_DEFAULT_UDP_TEMPLATE, "/.well-known/masque/udp/h.example/1/", &t),
                   0);
  assert_string_equal(t.host, "h.example");
  /* A template given as a bare path. */
  assert_int_equal(match("/u/{target_host}/{target_port}", "/u/x/9", &t), 0);
  assert_string_equal(t.port, "9");
}

static void test_match_form_optional(void **state) {
  (void)state;
  target t;
  /* Every form-style variable is optional; the caller checks found. */
  assert_int_equal(match(T_FORM, "/masque?target_host=h", &t), 0);
  assert_true(t.m[0].found);
  assert_false(t.m[1].found);
  assert_int_equal(match(T_FORM, "/masque", &t), 0);
  assert_false(t.m[0].found);
  assert_false(t.m[1].found);
  /* Empty values are found, empty; the caller answers 400. */
  assert_int_equal(match(T_FORM, "/masque?target_host=&target_port=1", &t), 0);
  assert_true(t.m[0].found);
  assert_string_equal(t.host, "");
  assert_int_equal(match(T_PATH, "/.well-known/masque/udp//443/", &t), 0);
  assert_true(t.m[0].found);
  assert_string_equal(t.host, "");
}

static void test_match_mismatch(void **state) {
  (void)state;
  target t;
  const char *bad_path[] = {
      "/.well-known/masque/udp/192.0.2.6/443",          /* trailing slash missing */
      "/.well-known/masque/udp/192.0.2.6/443/extra",    /* extra segment */
      "/.well-known/masque/udp/192.0.2.6/443/x/",       /* extra segment */
      "/.well-known/masque/udp/192.0.2.6/",             /* segment missing */
      "/.well-known/masque/udp/a/b/c/",                 /* '/' inside a value */
      "/.well-known/masque/udp/192.0.2.6/443/?q",       /* unexpected query */
      "/.well-known/masque/UDP/192.0.2.6/443/",         /* literals are exact */
      "/.well-known/masque/ip/192.0.2.6/443/",
      "",
      ".well-known/masque/udp/192.0.2.6/443/",
      "/.well-known/masque/udp/h%00x/443/",             /* %00 */
      "/.well-known/masque/udp/h%zzx/443/",             /* bad escape */
      "/.well-known/masque/udp/h%4/443/",               /* short escape */
      "/.well-known/masque/udp/h%/443/",
      "/.well-known/masque/udp/a b/443/",               /* raw space */
      "/.well-known/masque/udp/a\x80/443/",             /* raw non-ASCII */
  };
  for (size_t i = 0; i < sizeof(bad_path) / sizeof(bad_path[0]); i++) {
    if (match(T_PATH, bad_path[i], &t) != -1) fail_msg("%s should not match", bad_path[i]);
    assert_false(t.m[0].found || t.m[1].found);
  }
  assert_int_equal(match(T_QUERY, "/masque?h=a&p=1&x=2", &t), -1);
  assert_int_equal(match(T_QUERY, "/masque?p=1&h=a", &t), -1); /* literal order is fixed */
  assert_int_equal(match(T_QUERY, "/masque?h=a/b&p=1", &t), -1);
  assert_int_equal(match(T_FORM, "/masque?target_host=a&other=1", &t), -1);
  assert_int_equal(match(T_FORM, "/masque?target_host=a&target_host=b", &t), -1);
  assert_int_equal(match(T_FORM, "/masque?target_host", &t), -1);
  assert_int_equal(match(T_FORM, "/masque&target_host=a", &t), -1);
  assert_int_equal(match(T_FORM, "/masque?target_host=a?b", &t), -1);
  assert_int_equal(match(T_FORM, "/masqueX", &t), -1);
  /* Malformed or relative-less templates never match. */
  assert_int_equal(match("https://h", "/", &t), -1);
  assert_int_equal(match("relative/{target_host}", "relative/x", &t), -1);
  assert_int_equal(match("/{target_host", "/x", &t), -1);
  assert_int_equal(match("/{+target_host}", "/x", &t), -1);
  assert_int_equal(match("/a b/{target_host}", "/a b/x", &t), -1);
}

static void test_match_caps(void **state) {
  (void)state;
  char small[4];
  masq_tmatch m[] = {{"target_host", small, sizeof(small), 0}};
  assert_int_equal(masq_uritemplate_match("/{target_host}", "/abc", m, 1), 0);
  assert_string_equal(small, "abc");
  assert_int_equal(masq_uritemplate_match("/{target_host}", "/abcd", m, 1), -1);
  assert_false(m[0].found);
  /* The cap applies to the decoded length. */
  assert_int_equal(masq_uritemplate_match("/{target_host}", "/%41%42%43", m, 1), 0);
  assert_string_equal(small, "ABC");
  /* A variable not in the template is reported as not found. */
  char other[8] = "junk";
  masq_tmatch m2[] = {{"target_host", small, sizeof(small), 0}, {"nope", other, sizeof(other), 1}};
  assert_int_equal(masq_uritemplate_match("/{target_host}", "/a", m2, 2), 0);
  assert_false(m2[1].found);
  assert_string_equal(other, "");
  /* Variables the caller does not ask for are still checked. */
  assert_int_equal(masq_uritemplate_match("/{x}/{target_host}", "/%00/a", m, 1), -1);
  assert_int_equal(masq_uritemplate_match("/{x}/{target_host}", "/zz/a", m, 1), 0);
  assert_string_equal(small, "a");
}

static void test_match_lists_and_stops(void **state) {
  (void)state;
  char a[16], b[16];
  masq_tmatch m[] = {{"a", a, sizeof(a), 0}, {"b", b, sizeof(b), 0}};
  assert_int_equal(masq_uritemplate_match("/{a,b}", "/x,y", m, 2), 0);
  assert_string_equal(a, "x");
  assert_string_equal(b, "y");
  assert_int_equal(masq_uritemplate_match("/{a,b}", "/x", m, 2), -1);
  assert_int_equal(masq_uritemplate_match("/{a}-{b}", "/x-y", m, 2), 0);
  assert_string_equal(a, "x");
  assert_string_equal(b, "y");
  assert_int_equal(masq_uritemplate_match("/p?x=1{&a,b}", "/p?x=1&b=2&a=1", m, 2), 0);
  assert_string_equal(a, "1");
  assert_string_equal(b, "2");
  assert_int_equal(masq_uritemplate_match("/p{?a}/end", "/p?a=1/end", m, 2), 0);
  assert_string_equal(a, "1");
  /* An expression followed by a literal '&' and a known name. */
  assert_int_equal(masq_uritemplate_match("/p{?a}&a=z", "/p?a=1&a=z", m, 2), 0);
  assert_string_equal(a, "1");
}

/* Expanding and then matching gives the values back, including ones that
 * need escaping. */
static void test_roundtrip(void **state) {
  (void)state;
  const char *hosts[] = {"192.0.2.6", "2001:db8::42", "h.example", "we/ird?h&=#%"};
  const char *tmpls[] = {T_PATH, T_QUERY, T_FORM};
  for (size_t i = 0; i < sizeof(tmpls) / sizeof(tmpls[0]); i++) {
    for (size_t j = 0; j < sizeof(hosts) / sizeof(hosts[0]); j++) {
      masq_tvar v[] = {{"target_host", hosts[j]}, {"target_port", "65535"}};
      char uri[256], auth[128], path[256];
      assert_true(masq_uritemplate_expand(tmpls[i], v, 2, uri, sizeof(uri)) > 0);
      assert_int_equal(masq_uri_split(uri, auth, sizeof(auth), path, sizeof(path)), 0);
      target t;
      assert_int_equal(match(tmpls[i], path, &t), 0);
      assert_string_equal(t.host, hosts[j]);
      assert_string_equal(t.port, "65535");
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_expand_rfc9298),
      cmocka_unit_test(test_expand_encoding),
      cmocka_unit_test(test_expand_form),
      cmocka_unit_test(test_expand_errors),
      cmocka_unit_test(test_uri_split),
      cmocka_unit_test(test_match_rfc9298),
      cmocka_unit_test(test_match_form_optional),
      cmocka_unit_test(test_match_mismatch),
      cmocka_unit_test(test_match_caps),
      cmocka_unit_test(test_match_lists_and_stops),
      cmocka_unit_test(test_roundtrip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
