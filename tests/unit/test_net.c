/* Address conversion and UDP sockets (loopback only). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "io/net.h"

/* ---- addresses ---- */

static void roundtrip(const char *in, const char *expect) {
  masq_sockaddr sa;
  char buf[128];
  assert_int_equal(masq_sockaddr_parse(in, &sa), 0);
  assert_string_equal(masq_sockaddr_str(&sa, buf, sizeof(buf)), expect);
  /* The formatted form parses back to the same address. */
  masq_sockaddr again;
  assert_int_equal(masq_sockaddr_parse(buf, &again), 0);
  assert_int_equal(again.len, sa.len);
  assert_memory_equal(&again.u, &sa.u, sa.len);
}

static void test_parse_format(void **state) {
  roundtrip("1.2.3.4:5", "1.2.3.4:5");
  roundtrip("127.0.0.1:0", "127.0.0.1:0");
  roundtrip("255.255.255.255:65535", "255.255.255.255:65535");
  roundtrip("[::1]:5", "[::1]:5");
  roundtrip("[::]:443", "[::]:443");
  roundtrip("[2001:DB8:0:0:0:0:0:1]:80", "[2001:db8::1]:80");
  roundtrip("[::ffff:192.0.2.1]:53", "[::ffff:192.0.2.1]:53");
  roundtrip("[fe80::1%1]:9", "[fe80::1%1]:9");

  masq_sockaddr sa;
  assert_int_equal(masq_sockaddr_parse("1.2.3.4:5", &sa), 0);
  assert_int_equal(sa.u.sa.sa_family, AF_INET);
  assert_int_equal(sa.len, sizeof(struct sockaddr_in));
  assert_int_equal(ntohs(sa.u.in.sin_port), 5);
  assert_int_equal(masq_sockaddr_parse("[::]:443", &sa), 0);
  assert_int_equal(sa.u.sa.sa_family, AF_INET6);
  assert_int_equal(sa.len, sizeof(struct sockaddr_in6));
  assert_true(IN6_IS_ADDR_UNSPECIFIED(&sa.u.in6.sin6_addr));
  /* An interface name as zone. */
  assert_int_equal(masq_sockaddr_parse("[fe80::1%lo]:9", &sa), 0);
  assert_true(sa.u.in6.sin6_scope_id > 0);
}

static void test_parse_rejects(void **state) {
  static const char *const bad[] = {
      "",           "1.2.3.4",       "1.2.3.4:",      ":80",         "1.2.3.4:65536",
      "1.2.3.4:-1", "1.2.3.4:+1",    "1.2.3.4:8x",    "1.2.3:80",    "localhost:80",
      "::1:5",      "[::1]",         "[::1]5",        "[::1]:",      "[1.2.3.4]:5",
      "[::1:5",     "::1]:5",        "[]:5",          "[::1%]:5",    "[::1%nosuchif0]:5",
      " 1.2.3.4:5", "1.2.3.4:5 ",    "1.2.3.4:99999999999999999999",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    masq_sockaddr sa;
    if (masq_sockaddr_parse(bad[i], &sa) == 0) fail_msg("accepted \"%s\"", bad[i]);
  }
}

static void test_ip_conversion(void **state) {
  masq_ip ip4 = {.family = 4, .a = {192, 0, 2, 7}};
  masq_sockaddr sa;
  masq_sockaddr_from_ip(&sa, &ip4, 4433);
  char buf[128];
  assert_string_equal(masq_sockaddr_str(&sa, buf, sizeof(buf)), "192.0.2.7:4433");
  masq_ip back;
  uint16_t port = 0;
  assert_int_equal(masq_sockaddr_to_ip(&sa, &back, &port), 0);
  assert_int_equal(port, 4433);
  assert_int_equal(back.family, 4);
  assert_memory_equal(back.a, ip4.a, 4);

  masq_ip ip6 = {.family = 6};
  ip6.a[0] = 0x20;
  ip6.a[1] = 0x01;
  ip6.a[2] = 0x0d;
  ip6.a[3] = 0xb8;
  ip6.a[15] = 9;
  masq_sockaddr_from_ip(&sa, &ip6, 1);
  assert_string_equal(masq_sockaddr_str(&sa, buf, sizeof(buf)), "[2001:db8::9]:1");
  assert_int_equal(masq_sockaddr_to_ip(&sa, &back, NULL), 0);
  assert_int_equal(back.family, 6);
  assert_memory_equal(back.a, ip6.a, 16);

  memset(&sa, 0, sizeof(sa));
  sa.u.sa.sa_family = AF_UNIX;
  assert_int_equal(masq_sockaddr_to_ip(&sa, &back, &port), -1);
  assert_string_equal(masq_sockaddr_str(&sa, buf, sizeof(buf)), "?");
}

/* ---- UDP ---- */

static int open_bound(const char *spec, masq_sockaddr *bound) {
  masq_sockaddr local;
  assert_int_equal(masq_sockaddr_parse(spec, &local), 0);
  int fd = masq_udp_open(&local, NULL);
  assert_true(fd >= 0);
  bound->len = sizeof(bound->u.ss);
  assert_int_equal(getsockname(fd, &bound->u.sa, &bound->len), 0);
  return fd;
}

/* Waits (bounded) until fd is readable; loopback delivery is synchronous,
 * so this normally returns at once. */
static void wait_readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  assert_int_equal(poll(&p, 1, 1000), 1);
}

static void send_recv(const char *spec) {
  masq_sockaddr a_addr, b_addr, from;
  int a = open_bound(spec, &a_addr);
  int b = open_bound(spec, &b_addr);
  assert_int_not_equal(ntohs(b_addr.u.in.sin_port), 0);
  uint8_t buf[2048];
  size_t seg = 0;
  assert_int_equal(masq_udp_recv(b, buf, sizeof(buf), NULL, &seg), -1);
  assert_int_equal(errno, EAGAIN);

  static const uint8_t msg[] = "hello over udp";
  assert_int_equal(masq_udp_send(a, msg, sizeof(msg), 0, &b_addr), 0);
  wait_readable(b);
  assert_int_equal(masq_udp_recv(b, buf, sizeof(buf), &from, &seg), (ssize_t)sizeof(msg));
  assert_int_equal(seg, sizeof(msg));
  assert_memory_equal(buf, msg, sizeof(msg));
  assert_int_equal(from.len, a_addr.len);
  assert_memory_equal(&from.u, &a_addr.u, a_addr.len);

  /* Reply through a connected socket (to == NULL). */
  int c = masq_udp_connect(&a_addr);
  assert_true(c >= 0);
  assert_int_equal(masq_udp_send(c, msg, 5, 0, NULL), 0);
  wait_readable(a);
  assert_int_equal(masq_udp_recv(a, buf, sizeof(buf), NULL, &seg), 5);
  close(a);
  close(b);
  close(c);
}

static void test_udp_v4(void **state) { send_recv("127.0.0.1:0"); }
static void test_udp_v6(void **state) { send_recv("[::1]:0"); }

static void test_udp_dual_stack(void **state) {
  /* A [::] socket takes IPv4 too, and sees the peer v4-mapped. */
  masq_sockaddr any6, v4_dst, from;
  int s = open_bound("[::]:0", &any6);
  int v6only = -1;
  socklen_t len = sizeof(v6only);
  assert_int_equal(getsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len), 0);
  assert_int_equal(v6only, 0);
  assert_int_equal(masq_sockaddr_parse("127.0.0.1:1", &v4_dst), 0);
  v4_dst.u.in.sin_port = any6.u.in6.sin6_port;
  int c = masq_udp_connect(&v4_dst);
  assert_true(c >= 0);
  uint8_t buf[64];
  size_t seg;
  assert_int_equal(masq_udp_send(c, (const uint8_t *)"x", 1, 0, NULL), 0);
  wait_readable(s);
  assert_int_equal(masq_udp_recv(s, buf, sizeof(buf), &from, &seg), 1);
  assert_int_equal(from.u.sa.sa_family, AF_INET6);
  assert_true(IN6_IS_ADDR_V4MAPPED(&from.u.in6.sin6_addr));
  /* Replying to the mapped address reaches the IPv4 socket. */
  assert_int_equal(masq_udp_send(s, (const uint8_t *)"yz", 2, 0, &from), 0);
  wait_readable(c);
  assert_int_equal(masq_udp_recv(c, buf, sizeof(buf), NULL, &seg), 2);
  /* Connecting a dual-stack socket to an IPv4 remote maps it. */
  masq_sockaddr any_port;
  assert_int_equal(masq_sockaddr_parse("[::]:0", &any_port), 0);
  int d = masq_udp_open(&any_port, &v4_dst);
  assert_true(d >= 0);
  close(d);
  close(s);
  close(c);
}

static void test_udp_no_fragmentation(void **state) {
  masq_sockaddr a4, a6;
  int s4 = open_bound("127.0.0.1:0", &a4);
  int s6 = open_bound("[::1]:0", &a6);
  int v = -1;
  socklen_t len = sizeof(v);
  assert_int_equal(getsockopt(s4, IPPROTO_IP, IP_MTU_DISCOVER, &v, &len), 0);
  assert_int_equal(v, IP_PMTUDISC_PROBE);
  len = sizeof(v);
  assert_int_equal(getsockopt(s6, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v, &len), 0);
  assert_int_equal(v, IPV6_PMTUDISC_PROBE);
  close(s4);
  close(s6);
}

/* Receives until total bytes arrived; each chunk is either one datagram
 * or a GRO train of seg-sized datagrams. Checks every datagram boundary
 * against seg_size and returns the number of datagrams. */
static size_t recv_segments(int fd, const uint8_t *expect, size_t total, size_t seg_size) {
  static uint8_t buf[65536];
  size_t got = 0, datagrams = 0;
  while (got < total) {
    size_t seg = 0;
    ssize_t n = masq_udp_recv(fd, buf, sizeof(buf), NULL, &seg);
    if (n < 0 && errno == EAGAIN) {
      wait_readable(fd);
      continue;
    }
    assert_true(n > 0);
    assert_true(got + (size_t)n <= total);
    assert_memory_equal(buf, expect + got, (size_t)n);
    assert_true(seg > 0 && seg <= (size_t)n);
    if (seg < (size_t)n) assert_int_equal(seg, seg_size); /* a GRO train */
    else assert_true((size_t)n == seg_size || got + (size_t)n == total);
    datagrams += ((size_t)n + seg - 1) / seg;
    got += (size_t)n;
  }
  return datagrams;
}

static void test_udp_gso(void **state) {
  masq_sockaddr a_addr, b_addr;
  int a = open_bound("127.0.0.1:0", &a_addr);
  int b = open_bound("127.0.0.1:0", &b_addr);
  uint8_t out[250];
  for (size_t i = 0; i < sizeof(out); i++) out[i] = (uint8_t)(i * 7 + 1);
  /* 100 + 100 + 50. */
  assert_int_equal(masq_udp_send(a, out, sizeof(out), 100, &b_addr), 0);
  assert_int_equal(recv_segments(b, out, sizeof(out), 100), 3);
  uint8_t buf[16];
  assert_int_equal(masq_udp_recv(b, buf, sizeof(buf), NULL, NULL), -1);
  assert_int_equal(errno, EAGAIN);
  close(a);
  close(b);
}

static void test_udp_gso_fallback(void **state) {
  /* 300 one-byte segments exceed the kernel's GSO segment limit
   * (UDP_MAX_SEGMENTS), so sendmsg fails with EINVAL and the batch goes
   * out one datagram at a time. */
  masq_sockaddr a_addr, b_addr;
  int a = open_bound("127.0.0.1:0", &a_addr);
  int b = open_bound("127.0.0.1:0", &b_addr);
  uint8_t out[300];
  for (size_t i = 0; i < sizeof(out); i++) out[i] = (uint8_t)i;
  assert_int_equal(masq_udp_send(a, out, sizeof(out), 1, &b_addr), 0);
  assert_int_equal(recv_segments(b, out, sizeof(out), 1), 300);
  close(a);
  close(b);
}

static void test_udp_truncation(void **state) {
  masq_sockaddr a_addr, b_addr;
  int a = open_bound("127.0.0.1:0", &a_addr);
  int b = open_bound("127.0.0.1:0", &b_addr);
  uint8_t out[200], buf[100];
  memset(out, 0xab, sizeof(out));
  assert_int_equal(masq_udp_send(a, out, sizeof(out), 0, &b_addr), 0);
  assert_int_equal(masq_udp_send(a, out, 10, 0, &b_addr), 0);
  wait_readable(b);
  size_t seg = 0;
  assert_int_equal(masq_udp_recv(b, buf, sizeof(buf), NULL, &seg), -1);
  assert_int_equal(errno, EMSGSIZE);
  /* The oversized datagram was consumed; the next one is intact. */
  assert_int_equal(masq_udp_recv(b, buf, sizeof(buf), NULL, &seg), 10);
  assert_int_equal(masq_udp_recv(b, buf, sizeof(buf), NULL, &seg), -1);
  assert_int_equal(errno, EAGAIN);
  close(a);
  close(b);
}

static void test_udp_open_errors(void **state) {
  masq_sockaddr sa;
  memset(&sa, 0, sizeof(sa));
  sa.u.sa.sa_family = AF_UNIX;
  assert_int_equal(masq_udp_open(&sa, NULL), -1);
  assert_int_equal(errno, EAFNOSUPPORT);
  assert_int_equal(masq_udp_open(NULL, NULL), -1);
  /* Binding an address this host does not have. */
  assert_int_equal(masq_sockaddr_parse("198.51.100.1:0", &sa), 0);
  assert_int_equal(masq_udp_open(&sa, NULL), -1);
  assert_int_equal(errno, EADDRNOTAVAIL);
}

static void test_local_addresses(void **state) {
  masq_ip ips[64];
  int n = masq_local_addresses(ips, 64);
  assert_true(n > 0);
  int have_v4_lo = 0;
  for (int i = 0; i < n; i++) {
    assert_true(ips[i].family == 4 || ips[i].family == 6);
    if (ips[i].family == 4 && ips[i].a[0] == 127 && ips[i].a[1] == 0 && ips[i].a[2] == 0 &&
        ips[i].a[3] == 1)
      have_v4_lo = 1;
  }
  assert_true(have_v4_lo);
  /* The cap is honoured. */
  assert_int_equal(masq_local_addresses(ips, 1), 1);
  assert_int_equal(masq_local_addresses(ips, 0), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_format),
      cmocka_unit_test(test_parse_rejects),
      cmocka_unit_test(test_ip_conversion),
      cmocka_unit_test(test_udp_v4),
      cmocka_unit_test(test_udp_v6),
      cmocka_unit_test(test_udp_dual_stack),
      cmocka_unit_test(test_udp_no_fragmentation),
      cmocka_unit_test(test_udp_gso),
      cmocka_unit_test(test_udp_gso_fallback),
      cmocka_unit_test(test_udp_truncation),
      cmocka_unit_test(test_udp_open_errors),
      cmocka_unit_test(test_local_addresses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
