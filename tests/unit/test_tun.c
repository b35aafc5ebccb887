/* TUN devices (tun.h), configured with netlink.h, in a private network
 * namespace: UDP packets leave the stack through the TUN fd and enter it
 * through writes, with and without the virtio-net header and offloads.
 *
 * Needs root (unshare(CLONE_NEWNET) and /dev/net/tun); without it every
 * test is skipped and the program exits 0. The host's network is never
 * touched. Waits are bounded poll()s, never sleeps. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/loop.h"
#include "io/net.h"
#include "io/netlink.h"
#include "netns_env.h"
#include "io/tun.h"
#include "proto/gso.h"
#include "proto/ippkt.h"

/* Linux 6.2 ABI, missing from older <linux/virtio_net.h>. */
#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5
#endif

#define WAIT_NS (2000ull * 1000 * 1000) /* longest wait for one packet */
#define PKT_MAX (65535 + MASQ_TUN_VNET_HDR_LEN)

static int g_ready;       /* root, inside a private network namespace */
static int g_tun_fd = -1; /* the current test's TUN, closed by teardown */

/* ---- environment ---- */

static int group_setup(void **state) {
  (void)state;
  if (g_ready && masq_test_lo_up() != 0) return -1;
  return 0;
}

static masq_ip ip_of(const char *s) {
  masq_ip ip;
  assert_int_equal(masq_ip_parse(s, &ip), 0);
  return ip;
}

static masq_cidr cidr_of(const char *s, uint8_t plen) {
  masq_cidr c = {.ip = ip_of(s), .plen = plen};
  return c;
}

typedef struct tun_env {
  int fd;
  int ifindex;
  int vnet;
  char name[IFNAMSIZ];
} tun_env;

/* Writes "1" to net.ipv6.conf.<dev>.disable_ipv6 (namespace-private). */
static void disable_ipv6(const char *dev) {
  char path[128];
  snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", dev);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return; /* no IPv6 at all: nothing to disable */
  assert_int_equal(write(fd, "1", 1), 1);
  close(fd);
}

/* A TUN that is up with 10.99.0.1/24 (and fd99::1/64 if v6) and routes
 * to 10.98.0.0/16 (and fd98::/64) through it. Without v6 IPv6 is
 * disabled on it, so the kernel's own IPv6 traffic (router
 * solicitations from the link-local address it generates) stays off the
 * fd. */
static void env_up(tun_env *t, int vnet, int v6) {
  t->vnet = vnet;
  t->fd = masq_tun_open("", vnet, t->name, sizeof(t->name));
  assert_true(t->fd >= 0);
  g_tun_fd = t->fd;
  t->ifindex = masq_nl_ifindex(t->name);
  assert_true(t->ifindex > 0);
  if (!v6) disable_ipv6(t->name);
  assert_int_equal(masq_nl_link_set(t->ifindex, 1, 0), 0);
  masq_cidr a4 = cidr_of("10.99.0.1", 24), r4 = cidr_of("10.98.0.0", 16);
  assert_int_equal(masq_nl_addr(t->ifindex, &a4, 1), 0);
  assert_int_equal(masq_nl_route(&r4, t->ifindex, 0, 1), 0);
  if (!v6) return;
  masq_cidr a6 = cidr_of("fd99::1", 64), r6 = cidr_of("fd98::", 64);
  assert_int_equal(masq_nl_addr(t->ifindex, &a6, 1), 0);
  assert_int_equal(masq_nl_route(&r6, t->ifindex, 0, 1), 0);
}

/* Closing the fd destroys the device with its addresses and routes. */
static void env_down(tun_env *t) {
  g_tun_fd = -1;
  assert_int_equal(close(t->fd), 0);
}

/* After a failed assertion too, so the next test starts clean. */
static int teardown(void **state) {
  (void)state;
  if (g_tun_fd >= 0) close(g_tun_fd);
  g_tun_fd = -1;
  return 0;
}

/* Waits until fd is readable or the deadline (masq_now scale) passes. */
static int wait_readable(int fd, uint64_t deadline) {
  uint64_t now = masq_now();
  if (now >= deadline) return 0;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int ms = (int)((deadline - now) / 1000000) + 1;
  int r = poll(&p, 1, ms);
  assert_true(r >= 0);
  return r > 0;
}

/* Reads packets off the TUN until a UDP one to dst; the kernel's own
 * traffic on an IPv6-enabled device is skipped. Returns the offset of
 * the IP packet in buf (past the virtio-net header) and its length in
 * *len; fails the test after WAIT_NS. */
static size_t read_udp_to(tun_env *t, uint8_t *buf, size_t cap, const masq_ip *dst,
                          masq_ippkt *pkt, size_t *len) {
  uint64_t deadline = masq_now() + WAIT_NS;
  size_t off = t->vnet ? MASQ_TUN_VNET_HDR_LEN : 0;
  while (wait_readable(t->fd, deadline)) {
    ssize_t n = masq_tun_read(t->fd, buf, cap);
    if (n < 0 && errno == EAGAIN) continue;
    assert_true(n >= (ssize_t)off);
    if (masq_ippkt_parse(buf + off, (size_t)n - off, pkt, NULL) < 0) continue;
    if (pkt->proto == MASQ_IPPROTO_UDP && pkt->dst.family == dst->family &&
        memcmp(pkt->dst.a, dst->a, 16) == 0) {
      *len = (size_t)n - off;
      return off;
    }
  }
  fail_msg("no UDP packet on %s within 2 s", t->name);
  return 0;
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

/* IPv4 (RFC 791) + UDP (RFC 768) with a correct header checksum and a
 * zero ("none") UDP checksum. Returns the packet length. */
static size_t build_udp4(uint8_t *p, const masq_ip *src, uint16_t sport, const masq_ip *dst,
                         uint16_t dport, const uint8_t *data, size_t n) {
  size_t total = MASQ_IPV4_HDR_LEN + 8 + n;
  memset(p, 0, MASQ_IPV4_HDR_LEN + 8);
  p[0] = 0x45;
  put16(p + 2, (uint16_t)total);
  p[6] = 0x40; /* DF */
  p[8] = 64;
  p[9] = MASQ_IPPROTO_UDP;
  memcpy(p + 12, src->a, 4);
  memcpy(p + 16, dst->a, 4);
  put16(p + 10, masq_inet_checksum(p, MASQ_IPV4_HDR_LEN));
  uint8_t *u = p + MASQ_IPV4_HDR_LEN;
  put16(u, sport);
  put16(u + 2, dport);
  put16(u + 4, (uint16_t)(8 + n));
  memcpy(u + 8, data, n);
  return total;
}

/* IPv6 (RFC 8200) + UDP with its mandatory checksum (RFC 8200 §8.1). */
static size_t build_udp6(uint8_t *p, const masq_ip *src, uint16_t sport, const masq_ip *dst,
                         uint16_t dport, const uint8_t *data, size_t n) {
  memset(p, 0, MASQ_IPV6_HDR_LEN + 8);
  p[0] = 0x60;
  put16(p + 4, (uint16_t)(8 + n));
  p[6] = MASQ_IPPROTO_UDP;
  p[7] = 64;
  memcpy(p + 8, src->a, 16);
  memcpy(p + 24, dst->a, 16);
  uint8_t *u = p + MASQ_IPV6_HDR_LEN;
  put16(u, sport);
  put16(u + 2, dport);
  put16(u + 4, (uint16_t)(8 + n));
  memcpy(u + 8, data, n);
  put16(u + 6, masq_l4_checksum(src, dst, MASQ_IPPROTO_UDP, u, 8 + n));
  return MASQ_IPV6_HDR_LEN + 8 + n;
}

/* A UDP socket bound to ip:port (port 0: any). */
static int udp_bound(const masq_ip *ip, uint16_t port) {
  masq_sockaddr sa;
  masq_sockaddr_from_ip(&sa, ip, port);
  int fd = socket(sa.u.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, &sa.u.sa, sa.len), 0);
  return fd;
}

static uint16_t local_port(int fd) {
  masq_sockaddr sa;
  sa.len = sizeof(sa.u);
  assert_int_equal(getsockname(fd, &sa.u.sa, &sa.len), 0);
  masq_ip ip;
  uint16_t port;
  assert_int_equal(masq_sockaddr_to_ip(&sa, &ip, &port), 0);
  return port;
}

/* Sends data to ip:port from an unbound socket (the kernel picks the
 * source address from the route); returns the socket. */
static int udp_send_to(const masq_ip *ip, uint16_t port, const uint8_t *data, size_t n) {
  masq_ip any = {.family = ip->family};
  int fd = udp_bound(&any, 0);
  masq_sockaddr to;
  masq_sockaddr_from_ip(&to, ip, port);
  assert_int_equal(sendto(fd, data, n, 0, &to.u.sa, to.len), (ssize_t)n);
  return fd;
}

/* Receives one datagram on fd within WAIT_NS. */
static ssize_t udp_recv_wait(int fd, uint8_t *buf, size_t cap) {
  assert_true(wait_readable(fd, masq_now() + WAIT_NS));
  ssize_t n = recv(fd, buf, cap, 0);
  assert_true(n >= 0);
  return n;
}

/* ---- opening ---- */

static void test_open(void **state) {
  (void)state;
  if (!g_ready) skip();
  char name[IFNAMSIZ];
  int fd = masq_tun_open("masqtest0", 0, name, sizeof(name));
  assert_true(fd >= 0);
  g_tun_fd = fd;
  assert_string_equal(name, "masqtest0");
  assert_true(masq_nl_ifindex("masqtest0") > 0);
  int fl = fcntl(fd, F_GETFL);
  assert_true(fl >= 0 && (fl & O_NONBLOCK));
  int fdfl = fcntl(fd, F_GETFD);
  assert_true(fdfl >= 0 && (fdfl & FD_CLOEXEC));
  /* Nothing to read yet (the device is down). */
  uint8_t buf[64];
  assert_int_equal(masq_tun_read(fd, buf, sizeof(buf)), -1);
  assert_int_equal(errno, EAGAIN);
  /* A TUN already attached to an fd cannot be opened twice. */
  assert_int_equal(masq_tun_open("masqtest0", 0, NULL, 0), -1);
  assert_int_equal(errno, EBUSY);
  /* Not a TUN. */
  assert_int_equal(masq_tun_open("lo", 0, NULL, 0), -1);
  assert_int_equal(errno, EINVAL);
  /* Writing into a down device is refused. */
  masq_ip a = ip_of("10.98.0.5"), b = ip_of("10.99.0.1");
  uint8_t pkt[64];
  size_t n = build_udp4(pkt, &a, 1, &b, 2, (const uint8_t *)"x", 1);
  assert_int_equal(masq_tun_write(fd, pkt, n), -1);
  assert_int_equal(errno, EIO);
  g_tun_fd = -1;
  assert_int_equal(close(fd), 0);
  /* Non-persistent: gone with its fd. */
  assert_int_equal(masq_nl_ifindex("masqtest0"), -1);

  /* The kernel numbers "tun%d" itself; NULL works like "". */
  fd = masq_tun_open(NULL, 1, name, sizeof(name));
  assert_true(fd >= 0);
  assert_int_equal(strncmp(name, "tun", 3), 0);
  assert_int_equal(close(fd), 0);
  fd = masq_tun_open("mq%d", 0, name, sizeof(name));
  assert_true(fd >= 0);
  assert_string_equal(name, "mq0");
  assert_int_equal(close(fd), 0);

  /* Local argument checks. */
  assert_int_equal(masq_tun_open("0123456789abcdef", 0, NULL, 0), -1);
  assert_int_equal(errno, EINVAL);
  assert_int_equal(masq_tun_open("", 0, name, IFNAMSIZ - 1), -1);
  assert_int_equal(errno, EINVAL);
}

/* ---- IPv4 and IPv6 through a plain TUN ---- */

static void check_out(tun_env *t, const char *src, const char *dst) {
  masq_ip s = ip_of(src), d = ip_of(dst);
  static const uint8_t data[] = "out through the tunnel";
  int fd = udp_send_to(&d, 9, data, sizeof(data));
  uint8_t buf[PKT_MAX];
  masq_ippkt pkt;
  size_t len;
  size_t off = read_udp_to(t, buf, sizeof(buf), &d, &pkt, &len);
  assert_int_equal(pkt.version, d.family);
  assert_memory_equal(pkt.src.a, s.a, 16);
  assert_true(pkt.has_ports);
  assert_int_equal(pkt.sport, local_port(fd));
  assert_int_equal(pkt.dport, 9);
  assert_int_equal(len, pkt.l4_off + 8 + sizeof(data));
  assert_memory_equal(buf + off + pkt.l4_off + 8, data, sizeof(data));
  assert_int_equal(close(fd), 0);
}

static void check_in(tun_env *t, const char *src, const char *dst) {
  masq_ip s = ip_of(src), d = ip_of(dst);
  int fd = udp_bound(&d, 0);
  uint16_t port = local_port(fd);
  static const uint8_t data[] = "in from the tunnel";
  uint8_t pkt[256];
  size_t off = t->vnet ? MASQ_TUN_VNET_HDR_LEN : 0;
  memset(pkt, 0, off); /* virtio-net header: no GSO, checksum complete */
  size_t n = d.family == 4 ? build_udp4(pkt + off, &s, 4242, &d, port, data, sizeof(data))
                           : build_udp6(pkt + off, &s, 4242, &d, port, data, sizeof(data));
  assert_int_equal(masq_tun_write(t->fd, pkt, off + n), 0);

  uint8_t buf[256];
  masq_sockaddr from;
  from.len = sizeof(from.u);
  assert_true(wait_readable(fd, masq_now() + WAIT_NS));
  ssize_t got = recvfrom(fd, buf, sizeof(buf), 0, &from.u.sa, &from.len);
  assert_int_equal(got, (ssize_t)sizeof(data));
  assert_memory_equal(buf, data, sizeof(data));
  masq_ip fip;
  uint16_t fport;
  assert_int_equal(masq_sockaddr_to_ip(&from, &fip, &fport), 0);
  assert_memory_equal(&fip, &s, sizeof(s));
  assert_int_equal(fport, 4242);
  assert_int_equal(close(fd), 0);
}

static void test_ipv4(void **state) {
  (void)state;
  if (!g_ready) skip();
  tun_env t;
  env_up(&t, 0, 0);
  check_out(&t, "10.99.0.1", "10.98.0.5");
  check_in(&t, "10.98.0.5", "10.99.0.1");
  env_down(&t);
}

static void test_ipv6(void **state) {
  (void)state;
  if (!g_ready) skip();
  tun_env t;
  env_up(&t, 0, 1);
  check_out(&t, "fd99::1", "fd98::5");
  check_in(&t, "fd98::5", "fd99::1");
  /* A wrong UDP checksum is dropped by the stack, not by the write. */
  masq_ip s = ip_of("fd98::5"), d = ip_of("fd99::1");
  int fd = udp_bound(&d, 0);
  uint8_t pkt[128];
  size_t n = build_udp6(pkt, &s, 1, &d, local_port(fd), (const uint8_t *)"bad", 3);
  pkt[MASQ_IPV6_HDR_LEN + 6] ^= 0x5a;
  assert_int_equal(masq_tun_write(t.fd, pkt, n), 0);
  /* ...and followed by a good one, which must be the first to arrive. */
  n = build_udp6(pkt, &s, 1, &d, local_port(fd), (const uint8_t *)"good", 4);
  assert_int_equal(masq_tun_write(t.fd, pkt, n), 0);
  uint8_t buf[64];
  assert_int_equal(udp_recv_wait(fd, buf, sizeof(buf)), 4);
  assert_memory_equal(buf, "good", 4);
  assert_int_equal(close(fd), 0);
  env_down(&t);
}

/* ---- reads and writes at the edges ---- */

static void test_read_too_big(void **state) {
  (void)state;
  if (!g_ready) skip();
  tun_env t;
  env_up(&t, 0, 0); /* IPv4 only: nothing else arrives on the fd */
  masq_ip d = ip_of("10.98.0.5");
  uint8_t big[1000];
  memset(big, 'b', sizeof(big));
  int fd = udp_send_to(&d, 9, big, sizeof(big));
  uint8_t buf[PKT_MAX];
  assert_true(wait_readable(t.fd, masq_now() + WAIT_NS));
  /* One octet short of the whole packet: refused, not truncated. */
  assert_int_equal(masq_tun_read(t.fd, buf, 20 + 8 + sizeof(big) - 1), -1);
  assert_int_equal(errno, EMSGSIZE);
  /* The packet was consumed. */
  assert_int_equal(masq_tun_read(t.fd, buf, sizeof(buf)), -1);
  assert_int_equal(errno, EAGAIN);
  /* A buffer of exactly the packet's size is enough. */
  assert_int_equal(close(fd), 0);
  fd = udp_send_to(&d, 9, big, sizeof(big));
  assert_true(wait_readable(t.fd, masq_now() + WAIT_NS));
  assert_int_equal(masq_tun_read(t.fd, buf, 20 + 8 + sizeof(big)), 20 + 8 + sizeof(big));
  assert_int_equal(close(fd), 0);
  env_down(&t);
}

static void test_write_errors(void **state) {
  (void)state;
  if (!g_ready) skip();
  tun_env t;
  env_up(&t, 0, 0);
  /* Neither IPv4 nor IPv6. */
  uint8_t junk[28] = {0};
  assert_int_equal(masq_tun_write(t.fd, junk, sizeof(junk)), -1);
  assert_int_equal(errno, EINVAL);
  env_down(&t);
  /* A vnet_hdr fd needs the whole header first. */
  env_up(&t, 1, 0);
  assert_int_equal(masq_tun_write(t.fd, junk, MASQ_TUN_VNET_HDR_LEN - 1), -1);
  assert_int_equal(errno, EINVAL);
  /* A header asking for an unknown GSO type. */
  masq_ip s = ip_of("10.98.0.5"), d = ip_of("10.99.0.1");
  uint8_t pkt[128];
  memset(pkt, 0, MASQ_TUN_VNET_HDR_LEN);
  pkt[1] = 0x42;
  size_t n = build_udp4(pkt + MASQ_TUN_VNET_HDR_LEN, &s, 1, &d, 2, (const uint8_t *)"x", 1);
  assert_int_equal(masq_tun_write(t.fd, pkt, MASQ_TUN_VNET_HDR_LEN + n), -1);
  assert_int_equal(errno, EINVAL);
  env_down(&t);
}

/* ---- virtio-net header and offloads ---- */

/* The legacy header's fields, little-endian (TUNSETVNETLE). */
typedef struct vnet_fields {
  uint8_t flags, gso_type;
  uint16_t hdr_len, gso_size, csum_start, csum_offset;
} vnet_fields;

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static vnet_fields vnet_parse(const uint8_t *p) {
  vnet_fields v = {p[0], p[1], le16(p + 2), le16(p + 4), le16(p + 6), le16(p + 8)};
  return v;
}

static void put_le16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void test_vnet_hdr(void **state) {
  (void)state;
  if (!g_ready) skip();
  tun_env t;
  env_up(&t, 1, 1);
  /* Without offloads a small packet comes whole: no GSO, full checksum. */
  masq_ip d = ip_of("10.98.0.5");
  int fd = udp_send_to(&d, 9, (const uint8_t *)"hello", 5);
  uint8_t buf[PKT_MAX];
  masq_ippkt pkt;
  size_t len;
  assert_int_equal(read_udp_to(&t, buf, sizeof(buf), &d, &pkt, &len), MASQ_TUN_VNET_HDR_LEN);
  vnet_fields v = vnet_parse(buf);
  assert_int_equal(v.gso_type, VIRTIO_NET_HDR_GSO_NONE);
  assert_int_equal(v.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM, 0);
  assert_int_equal(len, 20 + 8 + 5);
  assert_int_equal(close(fd), 0);
  /* Writes take the header first too. */
  check_in(&t, "10.98.0.5", "10.99.0.1");
  check_in(&t, "fd98::5", "fd99::1");
  check_out(&t, "fd99::1", "fd98::5");
  env_down(&t);
}

static void test_offload_flags(void **state) {
  (void)state;
  if (!g_ready) skip();
  tun_env t;
  env_up(&t, 0, 0);
  /* No header, no offloads (0 is always fine). */
  assert_int_equal(masq_tun_set_offload(t.fd, MASQ_TUN_F_CSUM), -1);
  assert_int_equal(errno, EINVAL);
  assert_int_equal(masq_tun_set_offload(t.fd, 0), 0);
  env_down(&t);

  env_up(&t, 1, 0);
  assert_int_equal(masq_tun_set_offload(t.fd, MASQ_TUN_F_CSUM), 0);
  assert_int_equal(
      masq_tun_set_offload(t.fd, MASQ_TUN_F_CSUM | MASQ_TUN_F_TSO4 | MASQ_TUN_F_TSO6), 0);
  /* Segmentation needs checksum offload. */
  assert_int_equal(masq_tun_set_offload(t.fd, MASQ_TUN_F_TSO4), -1);
  assert_int_equal(errno, EINVAL);
  /* Unknown bits. */
  assert_int_equal(masq_tun_set_offload(t.fd, MASQ_TUN_F_CSUM | 0x80), -1);
  assert_int_equal(errno, EINVAL);
  unsigned all = MASQ_TUN_F_CSUM | MASQ_TUN_F_TSO4 | MASQ_TUN_F_TSO6 | MASQ_TUN_F_USO4 |
                 MASQ_TUN_F_USO6;
  if (masq_tun_set_offload(t.fd, all) == 0) {
    /* USO comes in pairs: one NETIF_F_GSO_UDP_L4 serves both. */
    assert_int_equal(masq_tun_set_offload(t.fd, MASQ_TUN_F_CSUM | MASQ_TUN_F_USO4), -1);
    assert_int_equal(errno, EINVAL);
  } else {
    assert_int_equal(errno, EINVAL);
    fprintf(stderr, "note: this kernel has no USO on TUN (Linux < 6.2)\n");
  }
  assert_int_equal(masq_tun_set_offload(t.fd, 0), 0);
  env_down(&t);
}

/* With TUN_F_CSUM the stack leaves the UDP checksum to the reader. */
static void test_offload_csum(void **state) {
  (void)state;
  if (!g_ready) skip();
  tun_env t;
  env_up(&t, 1, 0);
  assert_int_equal(masq_tun_set_offload(t.fd, MASQ_TUN_F_CSUM), 0);
  masq_ip d = ip_of("10.98.0.5");
  int fd = udp_send_to(&d, 9, (const uint8_t *)"hello", 5);
  uint8_t buf[PKT_MAX];
  masq_ippkt pkt;
  size_t len;
  size_t off = read_udp_to(&t, buf, sizeof(buf), &d, &pkt, &len);
  vnet_fields v = vnet_parse(buf);
  assert_int_equal(v.gso_type, VIRTIO_NET_HDR_GSO_NONE);
  assert_int_equal(v.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_F_NEEDS_CSUM);
  assert_int_equal(v.csum_start, 20);
  assert_int_equal(v.csum_offset, 6);
  /* The field holds the pseudo-header sum; adding the UDP header and
   * data completes it. */
  uint8_t *u = buf + off + v.csum_start;
  uint32_t sum = masq_csum_partial(u, len - v.csum_start, 0);
  put16(u + v.csum_offset, masq_csum_finish(sum));
  assert_int_equal(masq_l4_checksum(&pkt.src, &pkt.dst, MASQ_IPPROTO_UDP, u, len - 20), 0xffff);
  assert_int_equal(close(fd), 0);
  env_down(&t);
}

/* UDP_SEGMENT (GSO) from a socket reaches a USO-enabled TUN as one
 * super-packet described by the header. */
static void test_offload_uso_read(void **state) {
  (void)state;
  if (!g_ready) skip();
  tun_env t;
  env_up(&t, 1, 0);
  if (masq_tun_set_offload(t.fd, MASQ_TUN_F_CSUM | MASQ_TUN_F_USO4 | MASQ_TUN_F_USO6) < 0) {
    env_down(&t);
    skip(); /* Linux < 6.2 */
  }
  masq_ip any = {.family = 4}, d = ip_of("10.98.0.5");
  int fd = udp_bound(&any, 0);
  int seg = 1000;
  assert_int_equal(setsockopt(fd, SOL_UDP, UDP_SEGMENT, &seg, sizeof(seg)), 0);
  static uint8_t data[3000];
  memset(data, 'u', sizeof(data));
  masq_sockaddr to;
  masq_sockaddr_from_ip(&to, &d, 9);
  assert_int_equal(sendto(fd, data, sizeof(data), 0, &to.u.sa, to.len), (ssize_t)sizeof(data));
  uint8_t buf[PKT_MAX];
  masq_ippkt pkt;
  size_t len;
  read_udp_to(&t, buf, sizeof(buf), &d, &pkt, &len);
  vnet_fields v = vnet_parse(buf);
  assert_int_equal(v.gso_type, VIRTIO_NET_HDR_GSO_UDP_L4);
  assert_int_equal(v.gso_size, 1000);
  assert_int_equal(v.hdr_len, 20 + 8);
  assert_int_equal(v.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_F_NEEDS_CSUM);
  assert_int_equal(v.csum_start, 20);
  assert_int_equal(v.csum_offset, 6);
  assert_int_equal(len, 20 + 8 + sizeof(data));
  assert_int_equal(close(fd), 0);
  env_down(&t);
}

/* A UDP super-packet written with a GSO header is split by the kernel
 * (a socket without UDP_GRO sees MSS-sized datagrams). */
static void test_gso_write(void **state) {
  (void)state;
  if (!g_ready) skip();
  tun_env t;
  env_up(&t, 1, 0);
  masq_ip s = ip_of("10.98.0.5"), d = ip_of("10.99.0.1");
  int fd = udp_bound(&d, 0);
  static uint8_t data[2500];
  for (size_t i = 0; i < sizeof(data); i++) data[i] = (uint8_t)i;
  static uint8_t pkt[MASQ_TUN_VNET_HDR_LEN + 28 + sizeof(data)];
  uint8_t *ip = pkt + MASQ_TUN_VNET_HDR_LEN;
  size_t n = build_udp4(ip, &s, 4242, &d, local_port(fd), data, sizeof(data));
  /* NEEDS_CSUM: the field holds the folded pseudo-header sum, which the
   * kernel adjusts per segment. */
  uint32_t ph = masq_pseudo_header_sum(&s, &d, MASQ_IPPROTO_UDP, (uint32_t)(8 + sizeof(data)));
  put16(ip + 20 + 6, (uint16_t)masq_csum_partial(NULL, 0, ph));
  memset(pkt, 0, MASQ_TUN_VNET_HDR_LEN);
  pkt[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  pkt[1] = VIRTIO_NET_HDR_GSO_UDP_L4;
  put_le16(pkt + 2, 28);   /* hdr_len */
  put_le16(pkt + 4, 1000); /* gso_size */
  put_le16(pkt + 6, 20);   /* csum_start */
  put_le16(pkt + 8, 6);    /* csum_offset */
  if (masq_tun_write(t.fd, pkt, MASQ_TUN_VNET_HDR_LEN + n) < 0) {
    assert_int_equal(errno, EINVAL); /* Linux < 6.2: no UDP_L4 on TUN */
    assert_int_equal(close(fd), 0);
    env_down(&t);
    skip();
  }
  uint8_t buf[2048];
  size_t got = 0;
  for (int i = 0; i < 3; i++) {
    ssize_t r = udp_recv_wait(fd, buf, sizeof(buf));
    assert_int_equal(r, i < 2 ? 1000 : 500);
    assert_memory_equal(buf, data + got, (size_t)r);
    got += (size_t)r;
  }
  assert_int_equal(got, sizeof(data));
  assert_int_equal(close(fd), 0);
  env_down(&t);
}

/* ---- TCP with TSO and GRO (proto/gso.h) ---- */

static void put32(uint8_t *p, uint32_t v) {
  put16(p, (uint16_t)(v >> 16));
  put16(p + 2, (uint16_t)v);
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* IPv4 + TCP (RFC 9293) with valid checksums; opt[0..optlen) is padded
 * to a multiple of 4 by the caller. Returns the packet length. */
static size_t build_tcp4(uint8_t *p, const masq_ip *src, uint16_t sport, const masq_ip *dst,
                         uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
                         const uint8_t *opt, size_t optlen, const uint8_t *data, size_t n) {
  size_t thl = 20 + optlen, total = MASQ_IPV4_HDR_LEN + thl + n;
  memset(p, 0, MASQ_IPV4_HDR_LEN + thl);
  p[0] = 0x45;
  put16(p + 2, (uint16_t)total);
  p[6] = 0x40;
  p[8] = 64;
  p[9] = MASQ_IPPROTO_TCP;
  memcpy(p + 12, src->a, 4);
  memcpy(p + 16, dst->a, 4);
  put16(p + 10, masq_inet_checksum(p, MASQ_IPV4_HDR_LEN));
  uint8_t *t = p + MASQ_IPV4_HDR_LEN;
  put16(t, sport);
  put16(t + 2, dport);
  put32(t + 4, seq);
  put32(t + 8, ack);
  t[12] = (uint8_t)((thl / 4) << 4);
  t[13] = flags;
  put16(t + 14, 65535);
  if (optlen) memcpy(t + 20, opt, optlen);
  if (n) memcpy(t + thl, data, n);
  put16(t + 16, masq_l4_checksum(src, dst, MASQ_IPPROTO_TCP, t, thl + n));
  return total;
}

/* Reads the next IPv4 TCP packet from the TUN (the kernel's IPv6 is off
 * on it): the header in *h, the packet at buf + 10, its length back. */
static size_t read_tcp(tun_env *t, uint8_t *buf, size_t cap, masq_vnet_hdr *h) {
  uint64_t deadline = masq_now() + WAIT_NS;
  while (wait_readable(t->fd, deadline)) {
    ssize_t n = masq_tun_read(t->fd, buf, cap);
    if (n < 0 && errno == EAGAIN) continue;
    assert_true(n > MASQ_TUN_VNET_HDR_LEN + MASQ_IPV4_HDR_LEN);
    if (buf[MASQ_TUN_VNET_HDR_LEN + 9] != MASQ_IPPROTO_TCP) continue;
    masq_vnet_hdr_get(h, buf);
    return (size_t)n - MASQ_TUN_VNET_HDR_LEN;
  }
  fail_msg("no TCP packet on %s within 2 s", t->name);
  return 0;
}

static int tun_gro_write(void *ud, const uint8_t *hdr, const uint8_t *pkt, size_t len) {
  return masq_tun_writev(*(int *)ud, hdr, MASQ_VNET_HDR_LEN, pkt, len);
}

/* A TCP connection from a peer "behind" the TUN (10.98.0.5, played here
 * packet by packet) to a local socket: the peer's data goes in as one
 * coalesced GSO super-packet, which the stack must take; the socket's
 * reply comes out of a TSO-enabled TUN as super-packets, which
 * segmentation must turn into valid segments of exactly the sent data. */
static void test_offload_tcp(void **state) {
  (void)state;
  if (!g_ready) skip();
  tun_env t;
  env_up(&t, 1, 0);
  int fl = masq_tun_offload_all(t.fd);
  assert_true(fl >= 0);
  assert_true(fl & MASQ_TUN_F_TSO4);
  masq_ip peer = ip_of("10.98.0.5"), me = ip_of("10.99.0.1");
  int ls = udp_bound(&me, 0); /* for a free port number only */
  uint16_t port = local_port(ls);
  assert_int_equal(close(ls), 0);
  masq_sockaddr sa;
  masq_sockaddr_from_ip(&sa, &me, port);
  ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  assert_true(ls >= 0);
  assert_int_equal(bind(ls, &sa.u.sa, sa.len), 0);
  assert_int_equal(listen(ls, 1), 0);

  /* Handshake, with MSS 1000 so the socket's segments are 1000 octets. */
  static uint8_t buf[PKT_MAX], pkt[PKT_MAX];
  static const uint8_t mss[4] = {2, 4, 0x03, 0xe8};
  uint32_t iss = 0x10000000;
  uint8_t *ip = pkt + MASQ_TUN_VNET_HDR_LEN;
  memset(pkt, 0, MASQ_TUN_VNET_HDR_LEN);
  size_t n = build_tcp4(ip, &peer, 4242, &me, port, iss, 0, 0x02, mss, 4, NULL, 0);
  assert_int_equal(masq_tun_write(t.fd, pkt, MASQ_TUN_VNET_HDR_LEN + n), 0);
  masq_vnet_hdr h;
  n = read_tcp(&t, buf, sizeof(buf), &h);
  const uint8_t *th = buf + MASQ_TUN_VNET_HDR_LEN + MASQ_IPV4_HDR_LEN;
  assert_int_equal(th[13], 0x12); /* SYN-ACK */
  uint32_t rcv = get32(th + 4) + 1;
  n = build_tcp4(ip, &peer, 4242, &me, port, iss + 1, rcv, 0x10, NULL, 0, NULL, 0);
  assert_int_equal(masq_tun_write(t.fd, pkt, MASQ_TUN_VNET_HDR_LEN + n), 0);
  assert_true(wait_readable(ls, masq_now() + WAIT_NS));
  int cs = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  assert_true(cs >= 0);

  /* In: 12 segments of 1000 octets coalesced into one GSO write. */
  static uint8_t data[12000], got[12000];
  for (size_t i = 0; i < sizeof(data); i++) data[i] = (uint8_t)(i * 13 + (i >> 9));
  static uint8_t mem[MASQ_GRO_MEM];
  masq_gro gro;
  masq_gro_init(&gro, mem, tun_gro_write, &t.fd);
  for (size_t off = 0; off < sizeof(data); off += 1000) {
    n = build_tcp4(buf, &peer, 4242, &me, port, iss + 1 + (uint32_t)off, rcv, 0x10, NULL, 0,
                   data + off, 1000);
    assert_int_equal(masq_gro_add(&gro, buf, n), 0);
  }
  masq_gro_flush(&gro);
  assert_int_equal(gro.stats.writes, 1);
  assert_int_equal(gro.stats.write_fail, 0);
  size_t have = 0;
  while (have < sizeof(got)) {
    assert_true(wait_readable(cs, masq_now() + WAIT_NS));
    ssize_t r = recv(cs, got + have, sizeof(got) - have, 0);
    assert_true(r > 0);
    have += (size_t)r;
  }
  assert_memory_equal(got, data, sizeof(data));

  /* Out: 9000 octets leave as super-packets of 1000-octet segments. */
  assert_int_equal(send(cs, data, 9000, 0), 9000);
  size_t off = 0;
  int supers = 0;
  while (off < 9000) {
    n = read_tcp(&t, buf, sizeof(buf), &h);
    uint8_t *sp = buf + MASQ_TUN_VNET_HDR_LEN;
    if (n == MASQ_IPV4_HDR_LEN + 20 + 12 || n == MASQ_IPV4_HDR_LEN + 20) continue; /* an ACK */
    if (h.gso_type == MASQ_VNET_GSO_NONE) {
      assert_int_equal(masq_vnet_complete_csum(&h, sp, n, NULL), 0);
      masq_ippkt p;
      assert_int_equal(masq_ippkt_parse(sp, n, &p, NULL), 0);
      size_t hl = p.l4_off + (size_t)(sp[p.l4_off + 12] >> 4) * 4;
      assert_memory_equal(sp + hl, data + off, n - hl);
      off += n - hl;
      continue;
    }
    supers++;
    assert_int_equal(h.gso_type, MASQ_VNET_GSO_TCPV4);
    assert_int_equal(h.gso_size, 1000);
    masq_gso g;
    assert_int_equal(masq_gso_init(&g, &h, sp, n, NULL), 0);
    assert_true(masq_gso_count(&g) >= 2);
    uint8_t *seg;
    size_t len;
    while ((len = masq_gso_next_inplace(&g, &seg)) > 0) {
      masq_ippkt p;
      assert_int_equal(masq_ippkt_parse(seg, len, &p, NULL), 0);
      assert_int_equal(p.len, len);
      assert_int_equal(masq_inet_checksum(seg, MASQ_IPV4_HDR_LEN), 0);
      assert_int_equal(masq_l4_checksum(&p.src, &p.dst, MASQ_IPPROTO_TCP, seg + p.l4_off,
                                        len - p.l4_off),
                       0);
      assert_true(len - g.hlen <= 1000);
      assert_int_equal(get32(seg + p.l4_off + 4), rcv + (uint32_t)off);
      assert_memory_equal(seg + g.hlen, data + off, len - g.hlen);
      off += len - g.hlen;
    }
  }
  assert_int_equal(off, 9000);
  assert_true(supers >= 1);
  assert_int_equal(close(cs), 0);
  assert_int_equal(close(ls), 0);
  env_down(&t);
}

int main(void) {
  g_ready = masq_test_enter_netns();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_open, teardown),
      cmocka_unit_test_teardown(test_ipv4, teardown),
      cmocka_unit_test_teardown(test_ipv6, teardown),
      cmocka_unit_test_teardown(test_read_too_big, teardown),
      cmocka_unit_test_teardown(test_write_errors, teardown),
      cmocka_unit_test_teardown(test_vnet_hdr, teardown),
      cmocka_unit_test_teardown(test_offload_flags, teardown),
      cmocka_unit_test_teardown(test_offload_csum, teardown),
      cmocka_unit_test_teardown(test_offload_uso_read, teardown),
      cmocka_unit_test_teardown(test_gso_write, teardown),
      cmocka_unit_test_teardown(test_offload_tcp, teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, NULL);
}
