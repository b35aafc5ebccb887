/* masq connect: the CONNECT-IP client (RFC 9484), a VPN through a TUN
 * device. One QUIC connection carries one IP proxying request; the proxy
 * assigns addresses and advertises routes in capsules, and the client
 * turns them into the TUN device's configuration (client/ipconf.c) and a
 * packet filter that keeps what enters the tunnel within what the proxy
 * agreed to carry. The QUIC connection itself (socket, TLS, timer, write
 * pass) is client/proxyconn.c's, set up not to reconnect; the request
 * is its one masq_pc_req.
 *
 * Lifecycle: connect -> request + ADDRESS_REQUEST -> 2xx -> wait for an
 * address and for path MTU discovery to make room for 1280-byte packets
 * (RFC 9484 §10.1) -> "up" (device configured, packets flow). Losing the
 * proxy ends the run (exit 1); a signal ends it cleanly (exit 0). The
 * host's configuration is restored either way. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/connect.h"
#include "client/ipconf.h"
#include "client/proxy_url.h"
#include "client/proxyconn.h"
#include "io/log.h"
#include "io/loop.h"
#include "io/netlink.h"
#include "io/tun.h"
#include "proto/gso.h"
#include "proto/ipcapsule.h"
#include "proto/iprange.h"
#include "proto/ippkt.h"
#include "proto/uritemplate.h"
#include "proto/wire.h"
#include "session/session.h"

#define NS (1000000000ull)
/* How long after the 2xx path MTU discovery may take to reach 1280
 * (it needs a round trip or two), and how long routes may lag behind. */
#define MTU_WAIT_NS (3 * NS)
#define ADDR_WAIT_NS (10 * NS)
/* Device MTU ceiling: what a 1500-byte Ethernet path carries. */
#define TUN_MTU_MAX 1500
/* Capsule entries at most (MASQ_SESS_CAPSULE_MAX over the smallest entry). */
#define ASSIGN_CAP (MASQ_SESS_CAPSULE_MAX / MASQ_IPCAP_ASSIGN_MIN_ENTRY + 1)
#define ROUTE_CAP (MASQ_SESS_CAPSULE_MAX / MASQ_IPCAP_ROUTE_MIN_ENTRY + 1)
#define RANGE_CAP (ROUTE_CAP + 2 * MASQ_MAX_ROUTES + 8)
/* Packets taken from the TUN per wakeup, counting every segment of a
 * super-packet: below the datagram queue (CLIENT_DGRAM_QUEUE), so one
 * wakeup's reads fit it, and bounded so the proxy socket (ACKs) gets its
 * turn. */
#define TUN_BUDGET 512
/* Datagram send queue: one super-packet is up to ~48 packets, and the
 * queue absorbs the bursts TSO reads produce until the connection's
 * congestion window lets them out (1024 x ~1.45 KB). */
#define CLIENT_DGRAM_QUEUE 1024

typedef enum { P_CONNECTING, P_REQUESTED, P_OPEN, P_UP } phase;

typedef struct counters {
  uint64_t tx, rx, bad, link_local, bad_src, no_route, too_big, send_fail, in_not_ours,
      tun_write_fail;
  uint64_t tun_reads; /* read calls that returned a packet or super-packet */
} counters;

typedef struct cip {
  const masq_opts *o;
  masq_loop *loop;
  masq_pc *pc;
  masq_pc_req req; /* the CONNECT-IP request; req.sid is its stream */
  masq_timer wait;
  char authority[MASQ_MAX_HOST + 16], path[2048];
  char note[2048 + 16]; /* "requesting PATH", for the "connected to" line */
  phase ph;
  uint64_t open_at;
  uint64_t next_req_id;
  int tunfd;
  masq_io tio;
  char tun[16];
  masq_ipconf ic;
  int ic_init;
  size_t mtu;
  /* What the proxy gave: assigned prefixes (rejections left out) and the
   * latest ROUTE_ADVERTISEMENT. */
  masq_cidr assigned[MASQ_IPCONF_MAX_ADDRS];
  size_t nassigned;
  int have_assign, have_routes;
  masq_ip_route adv[ROUTE_CAP];
  size_t nadv;
  counters cnt;
  struct masq_ratelimit icmp_rl;
  /* Scratch for capsules and route computation (setup-time work). */
  masq_ip_assignment asg[ASSIGN_CAP];
  masq_iprange ra[RANGE_CAP], rb[RANGE_CAP], rc[RANGE_CAP];
  masq_cidr cidrs[MASQ_IPCONF_MAX_ROUTES];
  /* Largest entry: 8-byte request ID, version, IPv6 address, prefix. */
  uint8_t capbuf[ASSIGN_CAP * 26];
  uint8_t icmp[MASQ_ICMP_ERROR_MAX];
  /* The TUN carries a virtio-net header with TSO/USO (proto/gso.h): a
   * read brings up to 64 KiB, cut into packets in place; packets for the
   * TUN are coalesced per flow in gro and written at the end of each
   * loop iteration. */
  int offloads; /* MASQ_TUN_F_* in effect */
  uint8_t tunbuf[MASQ_GSO_BUF];
  masq_gro gro;
  uint8_t gromem[MASQ_GRO_MEM];
} cip;

static void cip_fail(cip *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Ends the run with status 1. proxyconn closes the connection from its
 * loop hook: this may be called from inside the session's callbacks. */
static void cip_fail(cip *s, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  masq_log(MASQ_LOG_ERR, "%s", msg);
  masq_pc_stop(s->pc, 1);
}

static cip *cip_of(masq_pc_req *r) { return (cip *)(void *)((char *)r - offsetof(cip, req)); }

static const char *cidr_str(const masq_cidr *c, char *out, size_t cap) {
  char ip[64];
  if (!masq_ip_format(&c->ip, ip, sizeof(ip))) snprintf(ip, sizeof(ip), "?");
  snprintf(out, cap, "%s/%u", ip, c->plen);
  return out;
}

/* ---- the request ------------------------------------------------------------ */

/* "{proxy}" is masq's placeholder for the proxy's authority, not an RFC
 * 6570 variable: it is substituted verbatim. */
static int put_authority(const char *tmpl, const char *authority, char *out, size_t cap) {
  size_t o = 0, alen = strlen(authority);
  for (const char *p = tmpl; *p;) {
    int var = strncmp(p, "{proxy}", 7) == 0;
    const char *from = var ? authority : p;
    size_t take = var ? alen : 1;
    if (o + take >= cap) return -1;
    memcpy(out + o, from, take);
    o += take;
    p += var ? 7 : 1;
  }
  out[o] = 0;
  return 0;
}

/* Expands the template for --target / --ipproto (RFC 9484 §4.6: the
 * percent-encoding of ':' and '/' comes from the expansion). The
 * wildcard "*" is sent literally, as in RFC 9484's examples; RFC 6570
 * would encode it as %2A, which a proxy comparing the path to "*"
 * without decoding would not recognise. Only a "*" value can produce
 * %2A here (hosts, addresses and protocol numbers contain none). */
static int build_path(cip *s, const masq_proxy_url *url) {
  char t[2048], uri[2048];
  masq_tvar vars[] = {{"target", s->o->target}, {"ipproto", s->o->ipproto}};
  if (put_authority(s->o->ip_template, url->authority, t, sizeof(t)) != 0 ||
      masq_uritemplate_expand(t, vars, 2, uri, sizeof(uri)) < 0 ||
      masq_uri_split(uri, s->authority, sizeof(s->authority), s->path, sizeof(s->path)) != 0)
    return -1;
  char *w = s->path;
  for (const char *r = s->path; *r;) {
    if (strncmp(r, "%2A", 3) == 0) {
      *w++ = '*';
      r += 3;
    } else {
      *w++ = *r++;
    }
  }
  *w = 0;
  return 0;
}

/* RFC 9484 §4.7.2: whoever expects an assignment MUST ask for it. One
 * entry per family: the --request-address preference, or "any" (the
 * all-zero address with the full prefix length, i.e. one address). */
static int send_address_request(cip *s, masq_conn *c, int64_t sid) {
  masq_ip_assignment req[2];
  memset(req, 0, sizeof(req));
  for (int i = 0; i < 2; i++) {
    int fam = i == 0 ? 4 : 6;
    req[i].request_id = s->next_req_id++;
    req[i].prefix.ip.family = (uint8_t)fam;
    req[i].prefix.plen = fam == 4 ? 32 : 128;
    for (size_t j = 0; j < s->o->nrequest_addr; j++)
      if (s->o->request_addr[j].ip.family == fam) req[i].prefix = s->o->request_addr[j];
  }
  size_t n = masq_address_request_encode(s->capbuf, req, 2);
  if (n == MASQ_IPCAP_INVALID) return -1;
  return masq_conn_send_capsule(c, sid, MASQ_CAPSULE_ADDRESS_REQUEST, s->capbuf, n);
}

/* proxyconn's submit: the connection is up (and again after
 * MASQ_SESS_ERR_BLOCKED, from on_streams). The answer is awaited from
 * the first attempt on. */
static int64_t ip_submit(masq_pc_req *r, masq_conn *c, const char *token) {
  cip *s = cip_of(r);
  if (!masq_timer_armed(&s->wait)) masq_timer_set(s->loop, &s->wait, masq_now() + ADDR_WAIT_NS);
  int64_t sid = masq_conn_submit_connect(c, s->authority, s->path, MASQ_PROTO_CONNECT_IP, token,
                                         r);
  if (sid == MASQ_SESS_ERR_BLOCKED) return sid;
  if (sid < 0) {
    cip_fail(s, "cannot send the CONNECT-IP request to %s (session error %lld)", s->o->proxy,
             (long long)sid);
    return sid;
  }
  s->ph = P_REQUESTED;
  if (send_address_request(s, c, sid) != 0)
    cip_fail(s, "cannot send the ADDRESS_REQUEST capsule (check --request-address)");
  return sid;
}

/* ---- host configuration ------------------------------------------------------ */

/* The address configured on the device for an assigned prefix: the
 * prefix itself when it is one address, else its first host (the
 * all-zero "subnet" address would be an odd source). */
static masq_cidr device_addr(const masq_cidr *p) {
  masq_cidr d = *p;
  unsigned bits = p->ip.family == 4 ? 32 : 128;
  if (p->plen + 1u < bits) d.ip.a[bits / 8 - 1] |= 1;
  return d;
}

static int family_assigned(const cip *s, int fam) {
  for (size_t i = 0; i < s->nassigned; i++)
    if (s->assigned[i].ip.family == fam) return 1;
  return 0;
}

/* A list of --route / --exclude prefixes as normalized ranges. */
static size_t ranges_of(const masq_cidr *c, size_t n, masq_iprange *out) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (masq_iprange_from_cidr(&c[i], &out[k]) == 0) k++;
  return masq_iprange_normalize(out, k);
}

/* Kernel routes: the advertised ranges (any protocol: the filter
 * handles per-protocol limits), limited to --route, minus --exclude,
 * for families that have an address. Returns the count or -1. */
static long compute_routes(cip *s) {
  size_t n = 0;
  for (size_t i = 0; i < s->nadv; i++) {
    if (!family_assigned(s, s->adv[i].start.family)) continue;
    s->ra[n].start = s->adv[i].start;
    s->ra[n].end = s->adv[i].end;
    n++;
  }
  n = masq_iprange_normalize(s->ra, n);
  masq_iprange *cur = s->ra, *spare = s->rc;
  if (s->o->nroutes) {
    size_t nb = ranges_of(s->o->routes, s->o->nroutes, s->rb);
    n = masq_iprange_intersect(cur, n, s->rb, nb, spare, RANGE_CAP);
    if (n == MASQ_IPRANGE_TOO_MANY) return -1;
    masq_iprange *t = cur;
    cur = spare;
    spare = t;
  }
  if (s->o->nexcludes) {
    size_t nb = ranges_of(s->o->excludes, s->o->nexcludes, s->rb);
    n = masq_iprange_subtract(cur, n, s->rb, nb, spare, RANGE_CAP);
    if (n == MASQ_IPRANGE_TOO_MANY) return -1;
    cur = spare;
  }
  n = masq_iprange_to_cidrs(cur, n, s->cidrs, MASQ_IPCONF_MAX_ROUTES);
  return n == MASQ_IPRANGE_TOO_MANY ? -1 : (long)n;
}

static int apply_routes(cip *s) {
  char err[512];
  long n = compute_routes(s);
  if (n < 0) {
    masq_log(MASQ_LOG_ERR, "the advertised routes need more than %d kernel routes; keeping the "
             "previous ones (narrow them with --route)", MASQ_IPCONF_MAX_ROUTES);
    return 0;
  }
  if (masq_ipconf_set_routes(&s->ic, s->cidrs, (size_t)n, err, sizeof(err)) != 0) {
    cip_fail(s, "%s", err);
    return -1;
  }
  return 0;
}

static int apply_addrs(cip *s) {
  char err[512];
  masq_cidr dev[MASQ_IPCONF_MAX_ADDRS];
  for (size_t i = 0; i < s->nassigned; i++) dev[i] = device_addr(&s->assigned[i]);
  if (masq_ipconf_set_addrs(&s->ic, dev, s->nassigned, err, sizeof(err)) != 0) {
    cip_fail(s, "%s", err);
    return -1;
  }
  return 0;
}

/* One line with the addresses, the routes and the MTU. */
static void report(cip *s, const char *what) {
  char line[1024], c[80];
  size_t n = (size_t)snprintf(line, sizeof(line), "masq connect: %s on %s: mtu %zu, address",
                              what, s->tun, s->mtu);
  for (size_t i = 0; i < s->nassigned && n < sizeof(line); i++)
    n += (size_t)snprintf(line + n, sizeof(line) - n, " %s",
                          cidr_str(&s->assigned[i], c, sizeof(c)));
  if (s->nassigned == 0 && n < sizeof(line))
    n += (size_t)snprintf(line + n, sizeof(line) - n, " (none)");
  if (n < sizeof(line))
    n += (size_t)snprintf(line + n, sizeof(line) - n, ", routes (table %u)",
                          (unsigned)s->o->fwmark);
  for (size_t i = 0; i < s->ic.nroutes && n < sizeof(line); i++)
    n += (size_t)snprintf(line + n, sizeof(line) - n, " %s",
                          cidr_str(&s->ic.routes[i], c, sizeof(c)));
  if (s->ic.nroutes == 0 && n < sizeof(line))
    n += (size_t)snprintf(line + n, sizeof(line) - n, " (none)");
  fprintf(stderr, "%s\n", line);
}

static void on_tun(masq_loop *loop, masq_io *io, uint32_t events);

static void go_up(cip *s, masq_conn *c) {
  char err[512];
  size_t md = masq_conn_max_datagram(c, s->req.sid);
  s->mtu = md > TUN_MTU_MAX ? TUN_MTU_MAX : md;
  if (masq_ipconf_link_up(&s->ic, (int)s->mtu, err, sizeof(err)) != 0) {
    cip_fail(s, "%s", err);
    return;
  }
  if (apply_addrs(s) != 0 || apply_routes(s) != 0) return;
  if (s->o->ndns && masq_ipconf_set_dns(&s->ic, s->o->dns, s->o->ndns, err, sizeof(err)) != 0) {
    cip_fail(s, "%s", err);
    return;
  }
  if (masq_io_start(s->loop, &s->tio, s->tunfd, MASQ_EV_READ, on_tun, s) != 0) {
    cip_fail(s, "cannot watch %s: %s", s->tun, strerror(errno));
    return;
  }
  s->ph = P_UP;
  masq_timer_stop(s->loop, &s->wait);
  if (!s->have_routes)
    masq_log(MASQ_LOG_WARN, "the proxy advertised no routes: nothing is sent into the tunnel "
             "until it does");
  report(s, "up");
}

/* Runs each loop iteration between the 2xx and "up". */
static void check_up(cip *s, masq_conn *c) {
  uint64_t now = masq_now();
  size_t md = masq_conn_max_datagram(c, s->req.sid);
  if (md < MASQ_IPV6_MIN_MTU) {
    if (now >= s->open_at + MTU_WAIT_NS)
      cip_fail(s, "the path to the proxy carries only %zu-byte IP packets inside QUIC, below the "
               "1280 bytes IPv6 needs (RFC 9484 §10.1): the outer path MTU is too small (below "
               "about 1400); raise it or use a path without the bottleneck", md);
    return;
  }
  if (s->nassigned == 0) {
    if (now >= s->open_at + ADDR_WAIT_NS)
      cip_fail(s, "the proxy assigned no address within %llu s (%s); it may have none left, or "
               "refused --request-address", (unsigned long long)(ADDR_WAIT_NS / NS),
               s->have_assign ? "it rejected the request" : "no ADDRESS_ASSIGN");
    return;
  }
  if (!s->have_routes && now < s->open_at + MTU_WAIT_NS) return;
  go_up(s, c);
}

/* While up: follow path MTU discovery upwards. */
static void follow_mtu(cip *s, masq_conn *c) {
  size_t md = masq_conn_max_datagram(c, s->req.sid);
  if (md > TUN_MTU_MAX) md = TUN_MTU_MAX;
  if (md <= s->mtu) return;
  char err[512];
  if (masq_ipconf_link_up(&s->ic, (int)md, err, sizeof(err)) != 0) {
    masq_log_rl(MASQ_LOG_WARN, "%s", err);
    return;
  }
  masq_log(MASQ_LOG_INFO, "%s: mtu %zu -> %zu (path MTU discovery)", s->tun, s->mtu, md);
  s->mtu = md;
}

static void on_wait(masq_loop *loop, masq_timer *t) {
  cip *s = t->ud;
  masq_conn *c = masq_pc_conn(s->pc);
  masq_pc_touch(s->pc);
  if (s->ph == P_OPEN) {
    if (c) check_up(s, c); /* c is kept to the end: no reconnection */
    if (s->ph == P_OPEN && !masq_pc_stopping(s->pc))
      masq_timer_set(loop, t, s->open_at + ADDR_WAIT_NS);
  } else if (s->ph != P_UP) {
    cip_fail(s, "no answer from %s to the CONNECT-IP request within %llu s", s->o->proxy,
             (unsigned long long)(ADDR_WAIT_NS / NS));
  }
}

/* ---- packets --------------------------------------------------------------------- */

static int assigned_src(const cip *s, const masq_ip *ip) {
  for (size_t i = 0; i < s->nassigned; i++)
    if (masq_cidr_contains(&s->assigned[i], ip)) return 1;
  return 0;
}

/* Link-local destinations (and link-scope multicast: the device's own
 * router solicitations and MLD reports) belong to the TUN link, which
 * ends here: RFC 9484 §4.7.3 routes never cover them. */
static int link_local(const masq_ip *d) {
  if (d->family == 4) return (d->a[0] == 169 && d->a[1] == 254) ||
                             (d->a[0] == 224 && d->a[1] == 0 && d->a[2] == 0);
  return (d->a[0] == 0xfe && (d->a[1] & 0xc0) == 0x80) ||
         (d->a[0] == 0xff && (d->a[1] & 0x0f) <= 2);
}

/* RFC 9484 §4.7.3: a range allows its protocol, or all with 0; ICMP is
 * always allowed. */
static int routed(const cip *s, const masq_ippkt *p) {
  int icmp = p->proto == MASQ_IPPROTO_ICMP || p->proto == MASQ_IPPROTO_ICMPV6;
  for (size_t i = 0; i < s->nadv; i++) {
    const masq_ip_route *r = &s->adv[i];
    if (r->ipproto && r->ipproto != p->proto && !icmp) continue;
    if (masq_iprange_ipcmp(&p->dst, &r->start) >= 0 && masq_iprange_ipcmp(&p->dst, &r->end) <= 0)
      return 1;
  }
  return 0;
}

/* Answers a refused packet with an ICMP error into the TUN. The error
 * comes from the packet's destination: a source reached through the
 * tunnel passes reverse-path checks, whereas one of our own addresses
 * would be a martian to the kernel. */
static void icmp_back(cip *s, const uint8_t *pkt, size_t n, const masq_ippkt *p, int kind,
                      size_t mtu) {
  if (!masq_ratelimit_ok(&s->icmp_rl)) return;
  size_t len = masq_icmp_error_build(s->icmp, sizeof(s->icmp), pkt, n, &p->dst, kind,
                                     (uint32_t)mtu);
  if (len) masq_gro_add(&s->gro, s->icmp, len); /* not TCP: written at once */
}

/* Checks a packet about to enter the tunnel: 0 if it may go (*p parsed),
 * else -1 with the refusal counted `count` times (a super-packet's
 * segments share their headers, so one check speaks for all of them)
 * and answered where RFC 9484 §7.2.1 suggests it. */
static int outbound_check(cip *s, masq_conn *c, const uint8_t *pkt, size_t n, size_t count,
                          masq_ippkt *p) {
  if (masq_ippkt_parse(pkt, n, p, NULL) != 0) {
    s->cnt.bad += count;
    return -1;
  }
  if (link_local(&p->dst)) {
    s->cnt.link_local += count;
    return -1;
  }
  if (!assigned_src(s, &p->src)) {
    s->cnt.bad_src += count;
    return -1;
  }
  if (!routed(s, p)) {
    s->cnt.no_route += count;
    icmp_back(s, pkt, n, p, MASQ_ICMP_DEST_UNREACH_ADMIN, 0);
    return -1;
  }
  size_t max = masq_conn_max_datagram(c, s->req.sid);
  if (p->len > max) {
    /* Only reachable if the datagram limit fell below the device MTU;
     * the error lets PMTUD inside the tunnel adapt (IPv4 without DF
     * cannot be told and is just dropped). A segment is checked, never
     * a super-packet, so this is the size the packets really have. */
    s->cnt.too_big += count;
    if (p->version == 6 || p->df) icmp_back(s, pkt, n, p, MASQ_ICMP_PACKET_TOO_BIG, max);
    return -1;
  }
  return 0;
}

/* RFC 9484 §11: one IP packet per HTTP datagram, never several. The
 * datagram waits in the session's queue for the loop's write pass. */
static void outbound_send(cip *s, masq_conn *c, const uint8_t *pkt, size_t len) {
  if (masq_conn_send_datagram(c, s->req.sid, pkt, len) != 0) {
    s->cnt.send_fail++;
    return;
  }
  s->cnt.tx++;
}

/* One packet or super-packet read from the TUN. Returns the packets it
 * stood for. */
static size_t outbound(cip *s, masq_conn *c, const masq_vnet_hdr *h, uint8_t *pkt, size_t n) {
  masq_ippkt p;
  if (h->gso_type == MASQ_VNET_GSO_NONE) {
    if (masq_vnet_complete_csum(h, pkt, n, NULL) != 0) {
      s->cnt.bad++;
      return 1;
    }
    if (outbound_check(s, c, pkt, n, 1, &p) == 0) outbound_send(s, c, pkt, p.len);
    return 1;
  }
  masq_gso g;
  if (masq_gso_init(&g, h, pkt, n, NULL) != 0) {
    s->cnt.bad++;
    return 1;
  }
  size_t count = masq_gso_count(&g);
  /* The first segment is the largest: it stands for all in the checks.
   * Each is built in place and copied into the datagram queue before
   * the next one overwrites it. */
  uint8_t *seg;
  size_t len = masq_gso_next_inplace(&g, &seg);
  if (outbound_check(s, c, seg, len, count, &p) != 0) return count;
  do outbound_send(s, c, seg, len);
  while ((len = masq_gso_next_inplace(&g, &seg)) > 0);
  return count;
}

static void on_tun(masq_loop *loop, masq_io *io, uint32_t events) {
  cip *s = io->ud;
  masq_conn *c = masq_pc_conn(s->pc);
  if (!c) return; /* cannot happen while up: the connection is never dropped */
  uint64_t tx = s->cnt.tx;
  for (size_t done = 0; done < TUN_BUDGET && s->ph == P_UP;) {
    ssize_t n = masq_tun_read(s->tunfd, s->tunbuf, sizeof(s->tunbuf));
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      s->cnt.bad++;
      done++;
      continue;
    }
    s->cnt.tun_reads++;
    if ((size_t)n < MASQ_VNET_HDR_LEN) {
      s->cnt.bad++;
      done++;
      continue;
    }
    masq_vnet_hdr h;
    masq_vnet_hdr_get(&h, s->tunbuf);
    done += outbound(s, c, &h, s->tunbuf + MASQ_VNET_HDR_LEN, (size_t)n - MASQ_VNET_HDR_LEN);
  }
  if (s->cnt.tx != tx) masq_pc_touch(s->pc); /* one write pass for the whole batch */
}

/* The coalescer's output (proto/gso.h): one TUN write. */
static int tun_out(void *ud, const uint8_t *hdr, const uint8_t *pkt, size_t len) {
  cip *s = ud;
  if (masq_tun_writev(s->tunfd, hdr, MASQ_VNET_HDR_LEN, pkt, len) == 0) return 0;
  s->cnt.tun_write_fail++;
  return -1;
}

/* proxyconn's on_datagram: a packet from the tunnel, for the TUN. */
static void ip_on_datagram(masq_pc_req *r, const uint8_t *pkt, size_t n) {
  cip *s = cip_of(r);
  masq_ippkt p;
  if (s->ph != P_UP) return;
  if (masq_ippkt_parse(pkt, n, &p, NULL) != 0) {
    s->cnt.bad++;
    return;
  }
  if (!assigned_src(s, &p.dst)) {
    s->cnt.in_not_ours++;
    return;
  }
  /* Held and coalesced with its flow's next segments until the loop
   * iteration ends (flush_hook), then written in one go. */
  masq_gro_add(&s->gro, pkt, p.len);
  s->cnt.rx++;
}

/* ---- capsules -------------------------------------------------------------------- */

static int on_address_assign(cip *s, const uint8_t *p, size_t n) {
  size_t k;
  const char *why;
  if (masq_address_assign_decode(p, n, s->asg, ASSIGN_CAP, &k, &why) != 0) {
    masq_log_rl(MASQ_LOG_WARN, "malformed ADDRESS_ASSIGN from the proxy: %s", why);
    return -1;
  }
  /* RFC 9484 §4.7.1: each capsule is the whole set. */
  s->nassigned = 0;
  for (size_t i = 0; i < k; i++) {
    if (masq_ip_assignment_is_rejection(&s->asg[i])) {
      masq_log(MASQ_LOG_INFO, "the proxy assigns no IPv%d address", s->asg[i].prefix.ip.family);
      continue;
    }
    if (s->nassigned == MASQ_IPCONF_MAX_ADDRS) {
      masq_log_rl(MASQ_LOG_WARN, "the proxy assigned more than %d prefixes; using the first %d",
                  MASQ_IPCONF_MAX_ADDRS, MASQ_IPCONF_MAX_ADDRS);
      break;
    }
    s->assigned[s->nassigned++] = s->asg[i].prefix;
  }
  s->have_assign = 1;
  if (s->ph == P_UP) {
    if (apply_addrs(s) != 0 || apply_routes(s) != 0) return 0;
    if (s->nassigned == 0)
      masq_log(MASQ_LOG_WARN, "the proxy withdrew every address: nothing can be sent");
    report(s, "addresses changed");
  }
  return 0;
}

static int on_routes(cip *s, const uint8_t *p, size_t n) {
  size_t k;
  const char *why;
  if (masq_route_advertisement_decode(p, n, s->adv, ROUTE_CAP, &k, &why) != 0) {
    masq_log_rl(MASQ_LOG_WARN, "malformed ROUTE_ADVERTISEMENT from the proxy: %s", why);
    s->nadv = 0; /* the stream is aborted; no stale half-decoded list */
    return -1;
  }
  s->nadv = k; /* §4.7.3: each advertisement supersedes the previous */
  s->have_routes = 1;
  if (s->ph == P_UP) {
    if (apply_routes(s) != 0) return 0;
    report(s, "routes changed");
  }
  return 0;
}

/* The proxy asked us for addresses; we assign none, so each request
 * gets the §4.7.2 rejection (all-zero address, full prefix length). */
static int on_peer_request(cip *s, masq_conn *c, const uint8_t *p, size_t n) {
  size_t k;
  const char *why;
  if (masq_address_request_decode(p, n, s->asg, ASSIGN_CAP, &k, &why) != 0) {
    masq_log_rl(MASQ_LOG_WARN, "malformed ADDRESS_REQUEST from the proxy: %s", why);
    return -1;
  }
  for (size_t i = 0; i < k; i++) {
    int fam = s->asg[i].prefix.ip.family;
    memset(&s->asg[i].prefix, 0, sizeof(s->asg[i].prefix));
    s->asg[i].prefix.ip.family = (uint8_t)fam;
    s->asg[i].prefix.plen = fam == 4 ? 32 : 128;
  }
  size_t len = masq_address_assign_encode(s->capbuf, s->asg, k);
  if (len == MASQ_IPCAP_INVALID ||
      masq_conn_send_capsule(c, s->req.sid, MASQ_CAPSULE_ADDRESS_ASSIGN, s->capbuf, len) != 0)
    masq_log_rl(MASQ_LOG_WARN, "cannot answer the proxy's ADDRESS_REQUEST");
  masq_pc_touch(s->pc);
  return 0;
}

static int ip_on_capsule(masq_pc_req *r, masq_conn *c, uint64_t type, const uint8_t *p,
                         size_t n) {
  cip *s = cip_of(r);
  switch (type) {
  case MASQ_CAPSULE_ADDRESS_ASSIGN: return on_address_assign(s, p, n);
  case MASQ_CAPSULE_ROUTE_ADVERTISEMENT: return on_routes(s, p, n);
  case MASQ_CAPSULE_ADDRESS_REQUEST: return on_peer_request(s, c, p, n);
  default: return 0;
  }
}

/* ---- the request's events (proxyconn ops) ----------------------------------------- */

static void ip_on_response(masq_pc_req *r, masq_conn *c, int status, const masq_reqhdrs *h) {
  cip *s = cip_of(r);
  if (status < 200 || status >= 300) {
    cip_fail(s, "the proxy refused the CONNECT-IP request for %s: status %d%s%s", s->path, status,
             h->proxy_status.present ? ", Proxy-Status: " : "",
             h->proxy_status.present ? h->proxy_status.v : "");
    return;
  }
  /* RFC 9484 §11: IP only over QUIC DATAGRAM frames, never capsules. */
  if (!masq_conn_peer_datagrams(c)) {
    cip_fail(s, "the proxy does not support HTTP/3 datagrams (RFC 9297), which CONNECT-IP "
             "needs to carry packets");
    return;
  }
  if (masq_conn_stream_set_tunnel(c, r->sid) != 0 || masq_conn_stream_set_ip(c, r->sid) != 0) {
    cip_fail(s, "cannot mark stream %lld as an IP tunnel", (long long)r->sid);
    return;
  }
  s->ph = P_OPEN;
  s->open_at = masq_now();
  masq_timer_set(s->loop, &s->wait, s->open_at + MTU_WAIT_NS);
  masq_log(MASQ_LOG_INFO, "IP tunnel open (stream %lld, status %d)", (long long)r->sid, status);
}

static void ip_on_end(masq_pc_req *r) {
  cip *s = cip_of(r);
  if (masq_pc_stopping(s->pc)) return;
  cip_fail(s, "the proxy ended the IP tunnel");
}

/* Also reached when the request could not be sent (ip_submit said why
 * and stopped the run) and when masq_pc_free frees the connection. */
static void ip_on_close(masq_pc_req *r, uint64_t err) {
  cip *s = cip_of(r);
  if (masq_pc_stopping(s->pc)) return;
  cip_fail(s, "the IP tunnel was closed (HTTP/3 error 0x%llx)", (unsigned long long)err);
}

static const masq_pc_req_ops ip_ops = {
    .submit = ip_submit,
    .on_response = ip_on_response,
    .on_datagram = ip_on_datagram,
    .on_end = ip_on_end,
    .on_close = ip_on_close,
    .on_capsule = ip_on_capsule,
};

/* Once per loop iteration, before proxyconn's write pass: what this
 * iteration brought for the TUN goes in now (coalescing never waits for
 * a later packet), then the wait for "up" or the MTU follows the path. */
static void flush_hook(void *ud) {
  cip *s = ud;
  masq_gro_flush(&s->gro);
  masq_conn *c = masq_pc_conn(s->pc);
  if (!c || masq_conn_is_dead(c) || masq_pc_stopping(s->pc)) return;
  if (s->ph == P_OPEN) check_up(s, c);
  else if (s->ph == P_UP) follow_mtu(s, c);
}

/* ---- setup ------------------------------------------------------------------------- */

/* The connection to the proxy, queued with the request: its socket
 * carries the fwmark so the policy rules route it past the tunnel (see
 * ipconf.h), and losing it ends the run instead of reconnecting (the
 * proxy would assign other addresses to a new connection). */
static int pc_setup(cip *s) {
  s->pc = masq_pc_new(s->loop, s->o);
  if (!s->pc) return -1;
  snprintf(s->note, sizeof(s->note), "requesting %s", s->path);
  masq_pc_settings set = {
      .set_mark = 1,
      .fwmark = s->o->fwmark,
      .dgram_queue = CLIENT_DGRAM_QUEUE,
      .capsules = 1,
      .once = 1,
      .ready_note = s->note,
      .closing = "tunnel",
  };
  masq_pc_configure(s->pc, &set);
  if (masq_pc_add_flush(s->pc, flush_hook, s) != 0) {
    masq_log(MASQ_LOG_ERR, "cannot set up the event loop: too many hooks");
    return -1;
  }
  masq_pc_req_init(&s->req, &ip_ops);
  masq_pc_request(s->pc, &s->req); /* submitted once the connection is up */
  return 0;
}

/* Creates the device, then undoes a crashed run's leftovers: in that
 * order, because a run still alive holds the device (EBUSY) and its
 * configuration must not be "recovered" from under it. */
static int tun_setup(cip *s) {
  char err[512];
  s->tunfd = masq_tun_open(s->o->tun, 1, s->tun, sizeof(s->tun));
  if (s->tunfd < 0) {
    masq_log(MASQ_LOG_ERR, "cannot create TUN device %s: %s%s", s->o->tun, strerror(errno),
             errno == EPERM ? " (run as root or with CAP_NET_ADMIN)"
             : errno == EBUSY ? " (another program uses it; pick another --tun)"
                              : "");
    return -1;
  }
  /* Offloads are an optimisation: without them (an old kernel) the
   * header still comes, describing plain packets. */
  s->offloads = masq_tun_offload_all(s->tunfd);
  if (s->offloads < 0) {
    masq_log(MASQ_LOG_WARN, "%s: no TUN offloads (%s); one packet per read", s->tun,
             strerror(errno));
    s->offloads = 0;
  }
  masq_gro_init(&s->gro, s->gromem, tun_out, s);
  int r = masq_ipconf_recover(s->tun, err, sizeof(err));
  if (r < 0) {
    masq_log(MASQ_LOG_ERR, "cannot undo a previous run's configuration: %s; fix it by hand and "
             "remove the state file", err);
    return -1;
  }
  if (r > 0)
    masq_log(MASQ_LOG_WARN, "undid the rules and resolv.conf changes a previous masq connect "
             "on %s left behind", s->tun);
  int ifindex = masq_nl_ifindex(s->tun);
  if (ifindex < 0) {
    masq_log(MASQ_LOG_ERR, "cannot find the index of %s: %s", s->tun, strerror(errno));
    return -1;
  }
  if (masq_ipconf_init(&s->ic, s->tun, ifindex, s->o->fwmark, err, sizeof(err)) != 0) {
    masq_log(MASQ_LOG_ERR, "%s", err);
    return -1;
  }
  s->ic_init = 1;
  return 0;
}

static void log_totals(cip *s) {
  const counters *k = &s->cnt;
  const masq_gro_stats *g = &s->gro.stats;
  masq_log(MASQ_LOG_INFO,
           "packets out %llu in %llu; dropped: malformed %llu, link-local %llu, foreign source "
           "%llu, not routed %llu, too big %llu, unsendable %llu, not for us %llu, TUN write "
           "%llu",
           (unsigned long long)k->tx, (unsigned long long)k->rx, (unsigned long long)k->bad,
           (unsigned long long)k->link_local, (unsigned long long)k->bad_src,
           (unsigned long long)k->no_route, (unsigned long long)k->too_big,
           (unsigned long long)k->send_fail, (unsigned long long)k->in_not_ours,
           (unsigned long long)k->tun_write_fail);
  masq_conn_stats cs;
  masq_pc_stats(s->pc, &cs);
  masq_log(MASQ_LOG_INFO,
           "TUN %s: %llu reads, %llu writes for %llu packets (%llu coalesced); datagram "
           "queue full %llu, too big %llu",
           s->offloads ? "with offloads" : "without offloads", (unsigned long long)k->tun_reads,
           (unsigned long long)g->writes, (unsigned long long)g->in,
           (unsigned long long)g->merged, (unsigned long long)cs.drop_queue_full,
           (unsigned long long)cs.drop_too_big);
}

/* The connection goes first (its stream's on_close finds the run
 * stopping and says nothing), then the host's configuration. */
static void teardown(cip *s) {
  if (s->loop) {
    masq_timer_stop(s->loop, &s->wait);
    masq_io_stop(s->loop, &s->tio); /* a no-op for one never started */
  }
  masq_pc_free(s->pc);
  s->pc = NULL;
  if (s->ic_init) masq_ipconf_restore(&s->ic);
  if (s->tunfd >= 0) close(s->tunfd);
  if (s->loop) masq_loop_free(s->loop);
}

int masq_connect_run(const masq_opts *o) {
  static cip s;
  memset(&s, 0, sizeof(s));
  s.o = o;
  s.tunfd = -1;
  s.tio.fd = -1;
  s.next_req_id = 1;
  int rc = 1;
  char err[256];
  /* Checked here too (proxyconn parses it again) for the usage status
   * 2, and for the request's authority. */
  masq_proxy_url url;
  if (masq_proxy_url_parse(o->proxy, &url, err, sizeof(err)) != 0) {
    masq_log(MASQ_LOG_ERR, "--proxy %s: %s", o->proxy, err);
    return 2;
  }
  if (build_path(&s, &url) != 0) {
    masq_log(MASQ_LOG_ERR, "--ip-template %s: cannot expand it for target %s, ipproto %s",
             o->ip_template, o->target, o->ipproto);
    return 2;
  }
  s.loop = masq_loop_new();
  if (!s.loop) {
    masq_log(MASQ_LOG_ERR, "cannot create the event loop: %s", strerror(errno));
    return 1;
  }
  masq_timer_init(&s.wait, on_wait, &s);
  if (tun_setup(&s) != 0 || pc_setup(&s) != 0 || masq_pc_start(s.pc) != 0) goto out;
  rc = masq_pc_loop(s.pc);
  log_totals(&s);
out:
  teardown(&s);
  fprintf(stderr, "masq connect: down (exit %d)\n", rc);
  return rc;
}
