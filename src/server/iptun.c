/* The CONNECT-IP gateway: one TUN device shared by every CONNECT-IP
 * client, holding the first address of each pool, so the kernel routes
 * the pools to it and forwards clients' packets with its own routing
 * table. Packets read back from it are handed to the tunnel that leases
 * their destination (RFC 9484 §8.1's "remote access VPN"). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/log.h"
#include "io/nat.h"
#include "io/netlink.h"
#include "io/tun.h"
#include "proto/gso.h"
#include "proto/ippkt.h"
#include "server/internal.h"
#include "server/iptun.h"

/* Packets taken from the TUN per wakeup, each segment of a super-packet
 * counted, so the QUIC socket and other connections get their turn; and
 * below a connection's datagram queue (256 by default), so one wakeup
 * does not overflow it for a client that gets it all. */
#define TUN_BUDGET 192
/* The gateway's own MTU: what the kernel may hand it. A packet bigger
 * than its client's tunnel gets a Packet Too Big from masq_ip_from_tun. */
#define GATEWAY_MTU 1500
/* Most leases a pool keeps: bounds the lease table (one per client). */
#define POOL_MAX_LEASES 65536
/* ICMP errors the gateway may originate: a burst, refilled per second. */
#define ICMP_BURST 50
#define ICMP_PER_SEC 100

/* srv_ip (internal.h) with what only this file and connect_ip.c need:
 * the TUN runs with a virtio-net header and TSO/USO, so a read brings a
 * super-packet of up to 64 KiB (cut into packets in place), and packets
 * for the TUN are coalesced per TCP flow (gro) and written once per
 * loop iteration (flush_hook). */
typedef struct gateway {
  srv_ip pub; /* first: srv.ip points here */
  int offloads; /* MASQ_TUN_F_* in effect */
  uint64_t reads;
  masq_gro gro;
  uint8_t rbuf[MASQ_GSO_BUF];
  uint8_t gromem[MASQ_GRO_MEM];
} gateway;

static gateway *gw_of(srv *s) { return (gateway *)(void *)s->ip; }

static int pool_init(masq_pool *p, void **store, const masq_cidr *range, masq_ip *gw) {
  uint8_t plen = range->ip.family == 4 ? 32 : 128;
  size_t max = POOL_MAX_LEASES;
  size_t bytes = masq_pool_storage_bytes(max);
  *store = malloc(bytes);
  if (!*store) return -1;
  if (masq_pool_init(p, range, plen, *store, bytes, &max) != 0) return -1;
  uint64_t seed;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0 && read(fd, &seed, sizeof(seed)) == (ssize_t)sizeof(seed))
    masq_pool_set_seed(p, seed);
  if (fd >= 0) close(fd);
  masq_pool_gateway(p, gw);
  return 0;
}

/* Forwarding is the kernel's job; without it clients reach only this
 * host. --nat turns it on; otherwise say so once at startup. */
static void warn_if_not_forwarding(const char *path, const char *what) {
  char v = '0';
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  if (read(fd, &v, 1) != 1) v = '0';
  close(fd);
  if (v == '0')
    masq_log(MASQ_LOG_WARN,
             "%s forwarding is off (%s = 0): CONNECT-IP clients cannot reach beyond this "
             "host; use --nat or enable it",
             what, path);
}

static void on_tun_readable(masq_loop *loop, masq_io *io, uint32_t events) {
  srv *s = io->ud;
  gateway *gw = gw_of(s);
  srv_ip *g = &gw->pub;
  for (size_t done = 0; done < TUN_BUDGET;) {
    ssize_t r = masq_tun_read(g->fd, gw->rbuf, sizeof(gw->rbuf));
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      s->stats.ip_drop_tun++;
      done++;
      continue;
    }
    gw->reads++;
    done++;
    if ((size_t)r < MASQ_VNET_HDR_LEN) {
      s->stats.ip_drop_malformed++;
      continue;
    }
    masq_vnet_hdr h;
    masq_vnet_hdr_get(&h, gw->rbuf);
    uint8_t *pkt = gw->rbuf + MASQ_VNET_HDR_LEN;
    size_t n = (size_t)r - MASQ_VNET_HDR_LEN;
    masq_ip dst;
    uint8_t v = n > 0 ? pkt[0] >> 4 : 0;
    if (v == 4 && n >= MASQ_IPV4_HDR_LEN) {
      dst.family = 4;
      memset(dst.a, 0, sizeof(dst.a));
      memcpy(dst.a, pkt + 16, 4);
    } else if (v == 6 && n >= MASQ_IPV6_HDR_LEN) {
      dst.family = 6;
      memcpy(dst.a, pkt + 24, 16);
    } else {
      s->stats.ip_drop_malformed++;
      continue;
    }
    /* The destination names the tunnel: an O(1) lease lookup. Router
     * solicitations and other traffic for nobody end here. */
    uint64_t owner = masq_pool_owner(v == 4 ? &g->pool4 : &g->pool6, &dst);
    if (!owner) {
      s->stats.ip_drop_no_owner++;
      continue;
    }
    if (h.gso_type != MASQ_VNET_GSO_NONE) {
      /* Counted by its segments; the checks happen in connect_ip.c. */
      if (h.gso_size) done += (n + h.gso_size - 1) / h.gso_size - 1;
      masq_ip_from_tun_gso(s, owner, &h, pkt, n);
      continue;
    }
    if (masq_vnet_complete_csum(&h, pkt, n, NULL) != 0) {
      s->stats.ip_drop_malformed++;
      continue;
    }
    masq_ip_from_tun(s, owner, pkt, n);
  }
}

/* The coalescer's output (proto/gso.h): one TUN write. */
static int tun_out(void *ud, const uint8_t *hdr, const uint8_t *pkt, size_t len) {
  srv *s = ud;
  if (masq_tun_writev(s->ip->fd, hdr, MASQ_VNET_HDR_LEN, pkt, len) == 0) return 0;
  s->stats.ip_drop_tun++;
  return -1;
}

/* Runs once per loop iteration, after the packets it brought: held
 * segments never wait for a later iteration. */
static void flush_hook(masq_loop *loop, void *ud) {
  srv *s = ud;
  if (s->ip) masq_gro_flush(&gw_of(s)->gro);
}

static int add_gateway(srv_ip *g, const masq_ip *gw, uint8_t plen) {
  masq_cidr c = {*gw, plen};
  if (masq_nl_addr(g->ifindex, &c, 1) == 0) return 0;
  char a[64];
  masq_log(MASQ_LOG_ERR, "cannot add %s/%u to %s: %s %s", masq_ip_format(gw, a, sizeof(a)),
           (unsigned)plen, g->name, strerror(errno), masq_nl_errmsg());
  return -1;
}

int masq_iptun_setup(srv *s) {
  const masq_opts *o = s->o;
  gateway *gw = calloc(1, sizeof(*gw));
  if (!gw) return -1;
  srv_ip *g = &gw->pub;
  g->fd = -1;
  s->ip = g;
  if (pool_init(&g->pool4, &g->store4, &o->pool4, &g->gw4) != 0 ||
      pool_init(&g->pool6, &g->store6, &o->pool6, &g->gw6) != 0) {
    masq_log(MASQ_LOG_ERR, "CONNECT-IP: cannot set up the address pools");
    return -1;
  }
  g->fd = masq_tun_open(o->tun, 1, g->name, sizeof(g->name));
  if (g->fd < 0) {
    masq_log(MASQ_LOG_WARN,
             "CONNECT-IP disabled: cannot create TUN device %s: %s (needs root or "
             "CAP_NET_ADMIN, and /dev/net/tun)",
             o->tun, strerror(errno));
    return -1;
  }
  /* Offloads are an optimisation: without them (an old kernel) the
   * header still comes, describing plain packets. */
  gw->offloads = masq_tun_offload_all(g->fd);
  if (gw->offloads < 0) {
    masq_log(MASQ_LOG_WARN, "%s: no TUN offloads (%s); one packet per read", g->name,
             strerror(errno));
    gw->offloads = 0;
  }
  masq_gro_init(&gw->gro, gw->gromem, tun_out, s);
  g->ifindex = masq_nl_ifindex(g->name);
  if (g->ifindex < 0 || masq_nl_link_set(g->ifindex, 1, GATEWAY_MTU) != 0) {
    masq_log(MASQ_LOG_ERR, "cannot bring up %s: %s %s", g->name, strerror(errno),
             masq_nl_errmsg());
    return -1;
  }
  if (add_gateway(g, &g->gw4, o->pool4.plen) != 0 || add_gateway(g, &g->gw6, o->pool6.plen) != 0)
    return -1;
  /* The gateway addresses are this host's too: never targets. */
  masq_cidr c4 = {g->gw4, 32}, c6 = {g->gw6, 128};
  masq_policy_deny(&s->policy, &c4);
  masq_policy_deny(&s->policy, &c6);
  if (masq_io_start(s->loop, &g->io, g->fd, MASQ_EV_READ, on_tun_readable, s) != 0 ||
      masq_loop_add_hook(s->loop, flush_hook, s) != 0)
    return -1;
  g->icmp_tokens = ICMP_BURST;
  g->icmp_last = masq_now();
  if (o->nat) {
    char err[512];
    g->nat = calloc(1, sizeof(*g->nat));
    if (!g->nat || masq_nat_up(g->nat, g->name, &o->pool4, &o->pool6, err, sizeof(err)) != 0) {
      masq_log(MASQ_LOG_ERR, "--nat: %s", g->nat ? err : "out of memory");
      return -1;
    }
  } else {
    /* A crashed --nat run on this TUN name left rules and sysctls behind:
     * undo them even though this run does not want NAT. */
    char err[512];
    if (masq_nat_recover(g->name, err, sizeof(err)) != 0)
      masq_log(MASQ_LOG_WARN, "leftovers of an earlier --nat run: %s", err);
    warn_if_not_forwarding("/proc/sys/net/ipv4/ip_forward", "IPv4");
    warn_if_not_forwarding("/proc/sys/net/ipv6/conf/all/forwarding", "IPv6");
  }
  char a4[64], a6[64];
  masq_log(MASQ_LOG_INFO, "CONNECT-IP gateway %s: pools %s/%u and %s/%u", g->name,
           masq_ip_format(&o->pool4.ip, a4, sizeof(a4)), (unsigned)o->pool4.plen,
           masq_ip_format(&o->pool6.ip, a6, sizeof(a6)), (unsigned)o->pool6.plen);
  return 0;
}

void masq_iptun_teardown(srv *s) {
  srv_ip *g = s->ip;
  if (!g) return;
  gateway *gw = gw_of(s);
  if (gw->reads || gw->gro.stats.in)
    masq_log(MASQ_LOG_INFO,
             "TUN %s %s: %llu reads, %llu writes for %llu packets (%llu coalesced)", g->name,
             gw->offloads ? "with offloads" : "without offloads", (unsigned long long)gw->reads,
             (unsigned long long)gw->gro.stats.writes, (unsigned long long)gw->gro.stats.in,
             (unsigned long long)gw->gro.stats.merged);
  if (g->nat) {
    masq_nat_down(g->nat); /* exactly what masq_nat_up added */
    free(g->nat);
  }
  if (g->fd >= 0) {
    if (s->loop) masq_io_stop(s->loop, &g->io);
    close(g->fd); /* the device, its addresses and routes go with it */
  }
  free(g->store4);
  free(g->store6);
  free(gw);
  s->ip = NULL;
}

/* TCP data is held for coalescing (written by flush_hook at the latest;
 * a failed write is counted there), anything else written at once. */
int masq_iptun_write(srv *s, const uint8_t *pkt, size_t len) {
  return masq_gro_add(&gw_of(s)->gro, pkt, len) == 0 ? 0 : -1;
}

int masq_iptun_icmp_ok(srv *s) {
  srv_ip *g = s->ip;
  uint64_t now = masq_now();
  uint64_t add = (now - g->icmp_last) * ICMP_PER_SEC / 1000000000ull;
  if (add) {
    g->icmp_tokens = g->icmp_tokens + add > ICMP_BURST ? ICMP_BURST : g->icmp_tokens + add;
    g->icmp_last = now;
  }
  if (!g->icmp_tokens) return 0;
  g->icmp_tokens--;
  return 1;
}
