/* The Linux socket layer declared in net.h.
 *
 * UDP sockets are tuned for QUIC:
 *   - UDP_GRO lets one recvmsg return a train of equal-sized datagrams
 *     from the same peer (the segment size comes back in a cmsg), and
 *     UDP_SEGMENT (GSO) lets one sendmsg emit a train of them: one syscall
 *     per burst instead of per packet.
 *   - IP_MTU_DISCOVER / IPV6_MTU_DISCOVER = *_PMTUDISC_PROBE sets DF on
 *     every IPv4 packet (IPv6 never fragments in transit anyway) and stops
 *     the kernel from fragmenting locally or shrinking its idea of the path
 *     MTU from ICMP. QUIC forbids fragmentation (RFC 9000 §14) and runs its
 *     own path MTU discovery (DPLPMTUD, RFC 8899): a probe larger than the
 *     interface MTU fails with EMSGSIZE instead of going out fragmented.
 *   - 4 MiB socket buffers absorb bursts between two loop iterations.
 * None of these is essential, so their failures are ignored. */
#include "io/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SOCKBUF_SIZE (4 * 1024 * 1024)

/* ---- address conversion ---- */

void masq_sockaddr_from_ip(masq_sockaddr *sa, const masq_ip *ip, uint16_t port) {
  memset(sa, 0, sizeof(*sa));
  if (ip->family == 4) {
    sa->u.in.sin_family = AF_INET;
    sa->u.in.sin_port = htons(port);
    memcpy(&sa->u.in.sin_addr, ip->a, 4);
    sa->len = sizeof(sa->u.in);
  } else {
    sa->u.in6.sin6_family = AF_INET6;
    sa->u.in6.sin6_port = htons(port);
    memcpy(&sa->u.in6.sin6_addr, ip->a, 16);
    sa->len = sizeof(sa->u.in6);
  }
}

/* An IPv4-mapped IPv6 address (from a dual-stack socket) stays an IPv6
 * masq_ip: the policy matches it as IPv4 (masq_cidr_contains) and replies
 * must go back in the socket's own family. */
int masq_sockaddr_to_ip(const masq_sockaddr *sa, masq_ip *ip, uint16_t *port) {
  memset(ip, 0, sizeof(*ip));
  switch (sa->u.sa.sa_family) {
  case AF_INET:
    ip->family = 4;
    memcpy(ip->a, &sa->u.in.sin_addr, 4);
    if (port) *port = ntohs(sa->u.in.sin_port);
    return 0;
  case AF_INET6:
    ip->family = 6;
    memcpy(ip->a, &sa->u.in6.sin6_addr, 16);
    if (port) *port = ntohs(sa->u.in6.sin6_port);
    return 0;
  default:
    return -1;
  }
}

const char *masq_sockaddr_str(const masq_sockaddr *sa, char *out, size_t cap) {
  char host[INET6_ADDRSTRLEN];
  if (cap == 0) return out;
  switch (sa->u.sa.sa_family) {
  case AF_INET:
    if (!inet_ntop(AF_INET, &sa->u.in.sin_addr, host, sizeof(host))) break;
    snprintf(out, cap, "%s:%u", host, (unsigned)ntohs(sa->u.in.sin_port));
    return out;
  case AF_INET6:
    if (!inet_ntop(AF_INET6, &sa->u.in6.sin6_addr, host, sizeof(host))) break;
    /* The scope (interface index) matters for link-local addresses. */
    if (sa->u.in6.sin6_scope_id)
      snprintf(out, cap, "[%s%%%u]:%u", host, (unsigned)sa->u.in6.sin6_scope_id,
               (unsigned)ntohs(sa->u.in6.sin6_port));
    else
      snprintf(out, cap, "[%s]:%u", host, (unsigned)ntohs(sa->u.in6.sin6_port));
    return out;
  default:
    break;
  }
  snprintf(out, cap, "?");
  return out;
}

/* Decimal 0..max from [s, end); -1 on anything else (empty, sign, junk,
 * overflow). */
static long parse_uint(const char *s, const char *end, long max) {
  if (s == end) return -1;
  long v = 0;
  for (; s < end; s++) {
    if (*s < '0' || *s > '9') return -1;
    v = v * 10 + (*s - '0');
    if (v > max) return -1;
  }
  return v;
}

/* Zone of "fe80::1%eth0" or "fe80::1%2": an interface name or index. */
static int parse_zone(const char *s, const char *end, uint32_t *scope) {
  char name[IF_NAMESIZE];
  long idx = parse_uint(s, end, UINT32_MAX);
  if (idx > 0) {
    *scope = (uint32_t)idx;
    return 0;
  }
  size_t n = (size_t)(end - s);
  if (n == 0 || n >= sizeof(name)) return -1;
  memcpy(name, s, n);
  name[n] = '\0';
  unsigned i = if_nametoindex(name);
  if (i == 0) return -1;
  *scope = i;
  return 0;
}

static int parse_v6(const char *s, const char *end, uint16_t port, masq_sockaddr *out) {
  char host[INET6_ADDRSTRLEN];
  const char *pct = memchr(s, '%', (size_t)(end - s));
  const char *hend = pct ? pct : end;
  size_t n = (size_t)(hend - s);
  if (n == 0 || n >= sizeof(host)) return -1;
  memcpy(host, s, n);
  host[n] = '\0';
  memset(out, 0, sizeof(*out));
  if (inet_pton(AF_INET6, host, &out->u.in6.sin6_addr) != 1) return -1;
  if (pct && parse_zone(pct + 1, end, &out->u.in6.sin6_scope_id) < 0) return -1;
  out->u.in6.sin6_family = AF_INET6;
  out->u.in6.sin6_port = htons(port);
  out->len = sizeof(out->u.in6);
  return 0;
}

static int parse_v4(const char *s, const char *end, uint16_t port, masq_sockaddr *out) {
  char host[INET_ADDRSTRLEN];
  size_t n = (size_t)(end - s);
  if (n == 0 || n >= sizeof(host)) return -1;
  memcpy(host, s, n);
  host[n] = '\0';
  memset(out, 0, sizeof(*out));
  if (inet_pton(AF_INET, host, &out->u.in.sin_addr) != 1) return -1;
  out->u.in.sin_family = AF_INET;
  out->u.in.sin_port = htons(port);
  out->len = sizeof(out->u.in);
  return 0;
}

int masq_sockaddr_parse(const char *hostport, masq_sockaddr *out) {
  const char *end = hostport + strlen(hostport);
  const char *colon = strrchr(hostport, ':');
  if (!colon) return -1;
  long port = parse_uint(colon + 1, end, 65535);
  if (port < 0) return -1;
  if (hostport[0] == '[') {
    /* "[V6]:PORT": the bracket must close right before the port colon. */
    if (colon == hostport || colon[-1] != ']') return -1;
    return parse_v6(hostport + 1, colon - 1, (uint16_t)port, out);
  }
  /* A bare IPv6 literal has several colons and is ambiguous: refuse it. */
  if (memchr(hostport, ':', (size_t)(colon - hostport))) return -1;
  return parse_v4(hostport, colon, (uint16_t)port, out);
}

/* ---- UDP sockets ---- */

static void set_int_opt(int fd, int level, int name, int value) {
  /* Callers only use this for optional tuning; failure is tolerated. */
  (void)setsockopt(fd, level, name, &value, sizeof(value));
}

/* SO_*BUFFORCE (root / CAP_NET_ADMIN) ignores net.core.[rw]mem_max; the
 * plain option is clamped to it, which is still better than the default. */
static void set_bufsize(int fd, int force_opt, int opt) {
  int v = SOCKBUF_SIZE;
  if (setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof(v)) == 0) return;
  set_int_opt(fd, SOL_SOCKET, opt, SOCKBUF_SIZE);
}

static void tune_udp(int fd, int family) {
  set_bufsize(fd, SO_RCVBUFFORCE, SO_RCVBUF);
  set_bufsize(fd, SO_SNDBUFFORCE, SO_SNDBUF);
  set_int_opt(fd, SOL_UDP, UDP_GRO, 1);
  /* On an IPv6 socket the IPv4 option still governs v4-mapped traffic. */
  set_int_opt(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE);
  if (family == AF_INET6) set_int_opt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE);
}

static int is_v6_wildcard(const masq_sockaddr *sa) {
  return sa->u.sa.sa_family == AF_INET6 &&
         IN6_IS_ADDR_UNSPECIFIED(&sa->u.in6.sin6_addr);
}

/* An IPv4 remote seen from an IPv6 socket must be written v4-mapped. */
static void map_v4(const masq_sockaddr *v4, masq_sockaddr *v6) {
  memset(v6, 0, sizeof(*v6));
  v6->u.in6.sin6_family = AF_INET6;
  v6->u.in6.sin6_port = v4->u.in.sin_port;
  v6->u.in6.sin6_addr.s6_addr[10] = 0xff;
  v6->u.in6.sin6_addr.s6_addr[11] = 0xff;
  memcpy(&v6->u.in6.sin6_addr.s6_addr[12], &v4->u.in.sin_addr, 4);
  v6->len = sizeof(v6->u.in6);
}

static int udp_connect_to(int fd, int family, const masq_sockaddr *remote) {
  masq_sockaddr mapped;
  if (family == AF_INET6 && remote->u.sa.sa_family == AF_INET) {
    map_v4(remote, &mapped);
    remote = &mapped;
  }
  return connect(fd, &remote->u.sa, remote->len);
}

int masq_udp_open(const masq_sockaddr *local, const masq_sockaddr *remote) {
  const masq_sockaddr *pick = local ? local : remote;
  if (!pick) {
    errno = EINVAL;
    return -1;
  }
  int family = pick->u.sa.sa_family;
  if (family != AF_INET && family != AF_INET6) {
    errno = EAFNOSUPPORT;
    return -1;
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  tune_udp(fd, family);
  /* Dual-stack whatever net.ipv6.bindv6only says: one listener for both. */
  if (local && is_v6_wildcard(local) &&
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){0}, sizeof(int)) < 0)
    goto fail;
  if (local && bind(fd, &local->u.sa, local->len) < 0) goto fail;
  if (remote && udp_connect_to(fd, family, remote) < 0) goto fail;
  return fd;
fail:;
  int e = errno;
  close(fd);
  errno = e;
  return -1;
}

/* connect() binds an ephemeral port and the right source address itself. */
int masq_udp_connect(const masq_sockaddr *remote) { return masq_udp_open(NULL, remote); }

int masq_udp_set_mark(int fd, uint32_t mark) {
  return setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
}

/* Room for the UDP_GRO cmsg (an int) with slack for others the kernel may
 * add; a too-small control buffer would only set MSG_CTRUNC. */
#define CMSG_BUF_SIZE (CMSG_SPACE(sizeof(int)) + CMSG_SPACE(64))

static size_t gro_segment(struct msghdr *msg) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO &&
        c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int seg;
      memcpy(&seg, CMSG_DATA(c), sizeof(seg));
      return seg > 0 ? (size_t)seg : 0;
    }
  }
  return 0;
}

/* With GRO the caller's buffer should hold a whole train (64 KiB): a
 * shorter one truncates it, which is reported as EMSGSIZE like any other
 * truncation. */
ssize_t masq_udp_recv(int fd, uint8_t *buf, size_t cap, masq_sockaddr *from, size_t *seg) {
  union {
    char buf[CMSG_BUF_SIZE];
    struct cmsghdr align;
  } control;
  struct iovec iov = {.iov_base = buf, .iov_len = cap};
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  if (from) {
    msg.msg_name = &from->u.ss;
    msg.msg_namelen = sizeof(from->u.ss);
  }
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof(control.buf);
  ssize_t n;
  do n = recvmsg(fd, &msg, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  if (msg.msg_flags & MSG_TRUNC) {
    errno = EMSGSIZE;
    return -1;
  }
  if (from) from->len = msg.msg_namelen;
  if (seg) {
    size_t s = gro_segment(&msg);
    *seg = (s == 0 || s > (size_t)n) ? (size_t)n : s;
  }
  return n;
}

static ssize_t send_one(int fd, const uint8_t *buf, size_t len, const masq_sockaddr *to,
                        uint16_t gso) {
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } control;
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  struct msghdr msg;
  memset(&msg, 0, sizeof(msg));
  if (to) {
    msg.msg_name = (void *)&to->u.sa;
    msg.msg_namelen = to->len;
  }
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (gso) {
    memset(&control, 0, sizeof(control));
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(gso));
    memcpy(CMSG_DATA(c), &gso, sizeof(gso));
  }
  ssize_t n;
  do n = sendmsg(fd, &msg, 0);
  while (n < 0 && errno == EINTR);
  return n;
}

/* Without GSO (old kernel, a device without checksum offload, too many
 * segments): one datagram per segment. If the socket fills up midway the
 * rest is dropped and the batch reported sent: UDP may lose packets and
 * QUIC recovers, whereas a retry of the whole batch would duplicate the
 * part already sent. */
static int send_segments(int fd, const uint8_t *buf, size_t len, size_t seg,
                         const masq_sockaddr *to) {
  for (size_t off = 0; off < len; off += seg) {
    size_t n = len - off < seg ? len - off : seg;
    if (send_one(fd, buf + off, n, to, 0) < 0) return off == 0 ? -1 : 0;
  }
  return 0;
}

int masq_udp_send(int fd, const uint8_t *buf, size_t len, size_t seg, const masq_sockaddr *to) {
  if (seg == 0 || seg >= len) return send_one(fd, buf, len, to, 0) < 0 ? -1 : 0;
  if (seg > UINT16_MAX) {
    errno = EINVAL;
    return -1;
  }
  if (send_one(fd, buf, len, to, (uint16_t)seg) >= 0) return 0;
  if (errno != EIO && errno != EINVAL) return -1;
  return send_segments(fd, buf, len, seg, to);
}

/* ---- local addresses ---- */

int masq_local_addresses(masq_ip *out, size_t cap) {
  struct ifaddrs *ifa;
  if (getifaddrs(&ifa) < 0) return -1;
  size_t n = 0;
  for (struct ifaddrs *i = ifa; i && n < cap; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    masq_sockaddr sa;
    memset(&sa, 0, sizeof(sa));
    if (i->ifa_addr->sa_family == AF_INET)
      memcpy(&sa.u.in, i->ifa_addr, sizeof(sa.u.in));
    else if (i->ifa_addr->sa_family == AF_INET6)
      memcpy(&sa.u.in6, i->ifa_addr, sizeof(sa.u.in6));
    else
      continue; /* AF_PACKET entries carry link-layer addresses */
    if (masq_sockaddr_to_ip(&sa, &out[n], NULL) == 0) n++;
  }
  freeifaddrs(ifa);
  return (int)n;
}
