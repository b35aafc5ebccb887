/* rtnetlink configuration (netlink.h) in a private network namespace:
 * links, addresses, routes and policy rules, their kernel errors, and
 * their effect checked through independent interfaces (ioctl, getifaddrs,
 * route lookups by connect()).
 *
 * Needs root (unshare(CLONE_NEWNET) and /dev/net/tun for a device to
 * configure); without it every test is skipped and the program exits 0.
 * The host's network is never touched. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/net.h"
#include "io/netlink.h"
#include "netns_env.h"
#include "io/tun.h"

#define TABLE 51820
#define MARK 0xca6cu

static int g_ready;       /* root, inside a private network namespace */
static int g_tun_fd = -1; /* the current test's TUN, closed by teardown */
static char g_name[IFNAMSIZ];
static int g_ifindex;
static int g_main_rule_removed;

/* ---- environment ---- */

static int group_setup(void **state) {
  (void)state;
  if (g_ready && masq_test_lo_up() != 0) return -1;
  return 0;
}

/* Each test gets a fresh TUN (down, no addresses); closing its fd
 * removes everything configured on it, routes in other tables too. */
static int setup(void **state) {
  (void)state;
  if (!g_ready) return 0;
  g_tun_fd = masq_tun_open("", 0, g_name, sizeof(g_name));
  if (g_tun_fd < 0) return -1;
  g_ifindex = masq_nl_ifindex(g_name);
  return g_ifindex > 0 ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  if (g_tun_fd >= 0) close(g_tun_fd);
  g_tun_fd = -1;
  /* test_rule_suppress removes main's rule; put it back if it failed
   * midway. (Not blindly: the kernel's own rule has protocol "kernel",
   * so an identical-looking one would be a duplicate, not EEXIST.) */
  if (g_main_rule_removed) (void)masq_nl_rule(4, 0, 0, 32766, 0, 1);
  g_main_rule_removed = 0;
  return 0;
}

static masq_cidr cidr_of(const char *s, uint8_t plen) {
  masq_cidr c;
  memset(&c, 0, sizeof(c));
  assert_int_equal(masq_ip_parse(s, &c.ip), 0);
  c.plen = plen;
  return c;
}

static void expect_fail(int r, int err) {
  assert_int_equal(r, -1);
  assert_int_equal(errno, err);
}

/* ---- independent observers ---- */

static int ioctl_sock(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_true(s >= 0);
  return s;
}

static int link_flags(void) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, g_name, strlen(g_name));
  int s = ioctl_sock();
  assert_int_equal(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
  close(s);
  return ifr.ifr_flags;
}

static int link_mtu(void) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, g_name, strlen(g_name));
  int s = ioctl_sock();
  assert_int_equal(ioctl(s, SIOCGIFMTU, &ifr), 0);
  close(s);
  return ifr.ifr_mtu;
}

/* 1 if getifaddrs lists ip on the test device. */
static int has_addr(const masq_ip *ip) {
  struct ifaddrs *ifa;
  assert_int_equal(getifaddrs(&ifa), 0);
  int found = 0;
  for (struct ifaddrs *i = ifa; i && !found; i = i->ifa_next) {
    if (!i->ifa_addr || strcmp(i->ifa_name, g_name) != 0) continue;
    if (ip->family == 4 && i->ifa_addr->sa_family == AF_INET)
      found = !memcmp(&((struct sockaddr_in *)i->ifa_addr)->sin_addr, ip->a, 4);
    if (ip->family == 6 && i->ifa_addr->sa_family == AF_INET6)
      found = !memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, ip->a, 16);
  }
  freeifaddrs(ifa);
  return found;
}

/* connect() of a UDP socket does a route lookup and nothing else:
 * 0 if there is a route to ip (for packets with mark), else errno. */
static int route_lookup(const char *ip, uint32_t mark) {
  masq_ip a;
  assert_int_equal(masq_ip_parse(ip, &a), 0);
  masq_sockaddr sa;
  masq_sockaddr_from_ip(&sa, &a, 9);
  int s = socket(sa.u.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_true(s >= 0);
  if (mark) assert_int_equal(setsockopt(s, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)), 0);
  int r = connect(s, &sa.u.sa, sa.len) < 0 ? errno : 0;
  close(s);
  return r;
}

/* ---- interfaces and links ---- */

static void test_ifindex(void **state) {
  (void)state;
  if (!g_ready) skip();
  assert_int_equal(masq_nl_ifindex("lo"), (int)if_nametoindex("lo"));
  assert_int_equal(masq_nl_ifindex(g_name), g_ifindex);
  expect_fail(masq_nl_ifindex("nosuch0"), ENODEV);
  expect_fail(masq_nl_ifindex("0123456789abcdefghij"), ENODEV);
}

static void test_link(void **state) {
  (void)state;
  if (!g_ready) skip();
  assert_false(link_flags() & IFF_UP);
  assert_int_equal(masq_nl_link_set(g_ifindex, 1, 0), 0);
  assert_true(link_flags() & IFF_UP);
  assert_int_equal(masq_nl_link_set(g_ifindex, -1, 1400), 0);
  assert_int_equal(link_mtu(), 1400);
  assert_true(link_flags() & IFF_UP); /* up < 0 left it alone */
  assert_int_equal(masq_nl_link_set(g_ifindex, 0, 1280), 0);
  assert_false(link_flags() & IFF_UP);
  assert_int_equal(link_mtu(), 1280);
  assert_int_equal(masq_nl_link_set(g_ifindex, 1, 0), 0); /* mtu 0: unchanged */
  assert_int_equal(link_mtu(), 1280);
  assert_true(link_flags() & IFF_UP);
  assert_int_equal(masq_nl_link_set(g_ifindex, 1, 0), 0); /* idempotent */

  /* Kernel errors, with its explanation. */
  expect_fail(masq_nl_link_set(g_ifindex, -1, 10), EINVAL);
  assert_true(masq_nl_errmsg()[0] != '\0');
  assert_int_equal(link_mtu(), 1280);
  expect_fail(masq_nl_link_set(0x7fffff00, 1, 0), ENODEV);
  /* Local checks. */
  expect_fail(masq_nl_link_set(0, 1, 0), ENODEV);
  expect_fail(masq_nl_link_set(-3, 1, 0), ENODEV);
  /* A success clears the previous message. */
  assert_int_equal(masq_nl_link_set(g_ifindex, 1, 0), 0);
  assert_string_equal(masq_nl_errmsg(), "");
}

/* ---- addresses ---- */

static void addr_roundtrip(const char *ip, uint8_t plen) {
  masq_cidr c = cidr_of(ip, plen);
  assert_int_equal(masq_nl_addr(g_ifindex, &c, 1), 0);
  assert_true(has_addr(&c.ip));
  expect_fail(masq_nl_addr(g_ifindex, &c, 1), EEXIST);
  assert_int_equal(masq_nl_addr(g_ifindex, &c, 0), 0);
  assert_false(has_addr(&c.ip));
  expect_fail(masq_nl_addr(g_ifindex, &c, 0), EADDRNOTAVAIL);
}

static void test_addr(void **state) {
  (void)state;
  if (!g_ready) skip();
  /* Addresses can be added before the link is up... */
  addr_roundtrip("10.99.0.1", 24);
  addr_roundtrip("fd99::1", 64);
  /* ...and after. */
  assert_int_equal(masq_nl_link_set(g_ifindex, 1, 0), 0);
  addr_roundtrip("10.99.0.1", 24);
  addr_roundtrip("fd99::1", 64);
  addr_roundtrip("192.0.2.7", 32);
  addr_roundtrip("2001:db8::7", 128);
}

/* The addition returns once the address is usable: a socket binds to it
 * and the prefix route is in place. */
static void test_addr_usable(void **state) {
  (void)state;
  if (!g_ready) skip();
  assert_int_equal(masq_nl_link_set(g_ifindex, 1, 0), 0);
  masq_cidr c = cidr_of("fd99::1", 64);
  assert_int_equal(masq_nl_addr(g_ifindex, &c, 1), 0);
  int s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_true(s >= 0);
  struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
  memcpy(&sa.sin6_addr, c.ip.a, 16);
  /* No DAD: never "tentative", which bind() would refuse. */
  assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
  close(s);
  assert_int_equal(route_lookup("fd99::2", 0), 0);
  c = cidr_of("10.99.0.1", 24);
  assert_int_equal(masq_nl_addr(g_ifindex, &c, 1), 0);
  assert_int_equal(route_lookup("10.99.0.2", 0), 0);
}

static void test_addr_errors(void **state) {
  (void)state;
  if (!g_ready) skip();
  masq_cidr c = cidr_of("10.99.0.1", 24);
  expect_fail(masq_nl_addr(0x7fffff00, &c, 1), ENODEV);
  expect_fail(masq_nl_addr(0, &c, 1), ENODEV);
  c.plen = 33;
  expect_fail(masq_nl_addr(g_ifindex, &c, 1), EINVAL);
  c = cidr_of("fd99::1", 64);
  expect_fail(masq_nl_addr(0x7fffff00, &c, 1), ENODEV);
  c.plen = 129;
  expect_fail(masq_nl_addr(g_ifindex, &c, 1), EINVAL);
  c.ip.family = 5;
  c.plen = 8;
  expect_fail(masq_nl_addr(g_ifindex, &c, 1), EAFNOSUPPORT);
}

/* ---- routes ---- */

static void route_roundtrip(const char *dst, uint8_t plen, uint32_t table, const char *probe) {
  masq_cidr c = cidr_of(dst, plen);
  if (!table) assert_int_not_equal(route_lookup(probe, 0), 0);
  assert_int_equal(masq_nl_route(&c, g_ifindex, table, 1), 0);
  if (!table) assert_int_equal(route_lookup(probe, 0), 0);
  expect_fail(masq_nl_route(&c, g_ifindex, table, 1), EEXIST);
  assert_int_equal(masq_nl_route(&c, g_ifindex, table, 0), 0);
  if (!table) assert_int_equal(route_lookup(probe, 0), ENETUNREACH);
  expect_fail(masq_nl_route(&c, g_ifindex, table, 0), ESRCH);
}

static void test_route(void **state) {
  (void)state;
  if (!g_ready) skip();
  assert_int_equal(masq_nl_link_set(g_ifindex, 1, 0), 0);
  route_roundtrip("10.98.0.0", 16, 0, "10.98.0.5");
  route_roundtrip("fd98::", 64, 0, "fd98::5");
  route_roundtrip("10.98.0.0", 16, 254, "10.98.0.5"); /* main, by number */
  route_roundtrip("10.98.0.0", 16, 100, NULL);
  route_roundtrip("fd98::", 64, 100, NULL);
  route_roundtrip("10.98.0.0", 16, TABLE, NULL); /* > 255: the attribute */
  route_roundtrip("0.0.0.0", 0, TABLE, NULL);    /* default routes */
  route_roundtrip("::", 0, TABLE, NULL);
  route_roundtrip("0.0.0.0", 0, 0, "192.0.2.1");
  route_roundtrip("::", 0, 0, "2001:db8::1");
  /* The same prefix in two tables is two routes. */
  masq_cidr c = cidr_of("10.98.0.0", 16);
  assert_int_equal(masq_nl_route(&c, g_ifindex, 0, 1), 0);
  assert_int_equal(masq_nl_route(&c, g_ifindex, 100, 1), 0);
  assert_int_equal(masq_nl_route(&c, g_ifindex, 100, 0), 0);
  assert_int_equal(route_lookup("10.98.0.5", 0), 0);
  expect_fail(masq_nl_route(&c, g_ifindex, 100, 0), ESRCH);
}

static void test_route_errors(void **state) {
  (void)state;
  if (!g_ready) skip();
  masq_cidr c = cidr_of("10.98.0.0", 16);
  /* IPv4 refuses a device route through a down device. */
  expect_fail(masq_nl_route(&c, g_ifindex, 0, 1), ENETDOWN);
  assert_int_equal(masq_nl_link_set(g_ifindex, 1, 0), 0);
  expect_fail(masq_nl_route(&c, 0x7fffff00, 0, 1), ENODEV);
  masq_cidr v6 = cidr_of("fd98::", 64);
  expect_fail(masq_nl_route(&v6, 0x7fffff00, 0, 1), ENODEV);
  /* Host bits below the prefix. */
  c = cidr_of("10.98.0.1", 16);
  expect_fail(masq_nl_route(&c, g_ifindex, 0, 1), EINVAL);
  assert_true(masq_nl_errmsg()[0] != '\0');
  /* Local checks. */
  c.plen = 40;
  expect_fail(masq_nl_route(&c, g_ifindex, 0, 1), EINVAL);
  c = cidr_of("10.98.0.0", 16);
  expect_fail(masq_nl_route(&c, 0, 0, 1), ENODEV);
  c.ip.family = 0;
  expect_fail(masq_nl_route(&c, g_ifindex, 0, 1), EAFNOSUPPORT);
}

/* Routes go with their device. */
static void test_route_dies_with_device(void **state) {
  (void)state;
  if (!g_ready) skip();
  assert_int_equal(masq_nl_link_set(g_ifindex, 1, 0), 0);
  masq_cidr c = cidr_of("10.98.0.0", 16);
  assert_int_equal(masq_nl_route(&c, g_ifindex, 0, 1), 0);
  assert_int_equal(close(g_tun_fd), 0);
  g_tun_fd = -1;
  assert_int_equal(route_lookup("10.98.0.5", 0), ENETUNREACH);
  expect_fail(masq_nl_route(&c, g_ifindex, 0, 0), ESRCH);
}

/* ---- policy rules ---- */

/* wg-quick: everything without the tunnel's mark looks up the tunnel's
 * table, whose default route goes into the TUN; the marked tunnel
 * transport falls through to main (here: no route at all). */
static void rule_family(int family, const char *any, const char *probe) {
  masq_cidr def = cidr_of(any, 0);
  assert_int_equal(masq_nl_route(&def, g_ifindex, TABLE, 1), 0);
  assert_int_equal(route_lookup(probe, 0), ENETUNREACH);

  assert_int_equal(masq_nl_rule(family, MARK, TABLE, 1000, 1, 1), 0);
  assert_int_equal(route_lookup(probe, 0), 0);
  assert_int_equal(route_lookup(probe, MARK), ENETUNREACH);
  expect_fail(masq_nl_rule(family, MARK, TABLE, 1000, 1, 1), EEXIST);
  assert_int_equal(masq_nl_rule(family, MARK, TABLE, 1000, 1, 0), 0);
  assert_int_equal(route_lookup(probe, 0), ENETUNREACH);
  expect_fail(masq_nl_rule(family, MARK, TABLE, 1000, 1, 0), ENOENT);

  /* Not inverted: only marked packets use the table. */
  assert_int_equal(masq_nl_rule(family, MARK, TABLE, 1001, 0, 1), 0);
  assert_int_equal(route_lookup(probe, MARK), 0);
  assert_int_equal(route_lookup(probe, 0), ENETUNREACH);
  assert_int_equal(masq_nl_rule(family, MARK, TABLE, 1001, 0, 0), 0);
  assert_int_equal(route_lookup(probe, MARK), ENETUNREACH);

  /* No mark: every packet; priority 0: the kernel picks one, and a
   * deletion without priority matches any. */
  assert_int_equal(masq_nl_rule(family, 0, TABLE, 0, 0, 1), 0);
  assert_int_equal(route_lookup(probe, MARK), 0);
  assert_int_equal(masq_nl_rule(family, 0, TABLE, 0, 0, 0), 0);
  assert_int_equal(route_lookup(probe, MARK), ENETUNREACH);

  /* wg-quick's companion rule. */
  assert_int_equal(masq_nl_rule_suppress(family, 0, 999, 0, 1), 0);
  expect_fail(masq_nl_rule_suppress(family, 0, 999, 0, 1), EEXIST);
  assert_int_equal(masq_nl_rule_suppress(family, 0, 999, 0, 0), 0);
  expect_fail(masq_nl_rule_suppress(family, 0, 999, 0, 0), ENOENT);
}

static void test_rule(void **state) {
  (void)state;
  if (!g_ready) skip();
  assert_int_equal(masq_nl_link_set(g_ifindex, 1, 0), 0);
  rule_family(4, "0.0.0.0", "192.0.2.1");
  rule_family(6, "::", "2001:db8::1");
}

/* The suppressing rule hides main's default route but not the more
 * specific ones. Main's own rule (32766) would find the default again, so
 * it is removed for the test (this namespace's, restored by teardown). */
static void test_rule_suppress(void **state) {
  (void)state;
  if (!g_ready) skip();
  assert_int_equal(masq_nl_link_set(g_ifindex, 1, 0), 0);
  masq_cidr def = cidr_of("0.0.0.0", 0), net = cidr_of("10.98.0.0", 16);
  assert_int_equal(masq_nl_route(&def, g_ifindex, 0, 1), 0);
  assert_int_equal(masq_nl_route(&net, g_ifindex, 0, 1), 0);
  assert_int_equal(masq_nl_rule(4, 0, 0, 32766, 0, 0), 0); /* table 0 is main */
  g_main_rule_removed = 1;
  assert_int_equal(route_lookup("192.0.2.1", 0), ENETUNREACH);
  assert_int_equal(masq_nl_rule_suppress(4, 0, 100, 0, 1), 0);
  assert_int_equal(route_lookup("10.98.0.5", 0), 0);
  assert_int_equal(route_lookup("192.0.2.1", 0), ENETUNREACH);
  /* Suppressing only prefixes of length <= 15 keeps main's /16. */
  assert_int_equal(masq_nl_rule_suppress(4, 0, 100, 0, 0), 0);
  assert_int_equal(masq_nl_rule_suppress(4, 0, 100, 15, 1), 0);
  assert_int_equal(route_lookup("10.98.0.5", 0), 0);
  assert_int_equal(masq_nl_rule_suppress(4, 0, 100, 15, 0), 0);
  /* ...and <= 16 hides it. */
  assert_int_equal(masq_nl_rule_suppress(4, 0, 100, 16, 1), 0);
  assert_int_equal(route_lookup("10.98.0.5", 0), ENETUNREACH);
  assert_int_equal(masq_nl_rule_suppress(4, 0, 100, 16, 0), 0);
  assert_int_equal(masq_nl_rule(4, 0, 0, 32766, 0, 1), 0);
  g_main_rule_removed = 0;
  assert_int_equal(route_lookup("192.0.2.1", 0), 0);
  expect_fail(masq_nl_rule_suppress(4, 0, 100, 129, 1), EINVAL);
}

static void test_rule_errors(void **state) {
  (void)state;
  if (!g_ready) skip();
  expect_fail(masq_nl_rule(AF_INET, MARK, TABLE, 1000, 1, 1), EAFNOSUPPORT);
  expect_fail(masq_nl_rule(0, MARK, TABLE, 1000, 1, 1), EAFNOSUPPORT);
  expect_fail(masq_nl_rule_suppress(5, 0, 1000, 0, 1), EAFNOSUPPORT);
  expect_fail(masq_nl_rule(4, MARK, TABLE, 1000, 1, 0), ENOENT);
}

int main(void) {
  g_ready = masq_test_enter_netns();
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_ifindex),     T(test_link),        T(test_addr),
      T(test_addr_usable), T(test_addr_errors), T(test_route),
      T(test_route_errors), T(test_route_dies_with_device), T(test_rule),
      T(test_rule_suppress), T(test_rule_errors),
  };
#undef T
  return cmocka_run_group_tests(tests, group_setup, NULL);
}
