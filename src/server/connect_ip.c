/* CONNECT-IP (RFC 9484) on the server: validate the request and its
 * scope, lease addresses from the pools, tell the client its addresses
 * and routes (ADDRESS_ASSIGN, ROUTE_ADVERTISEMENT), answer its
 * ADDRESS_REQUESTs, and move IP packets between the tunnel and the
 * gateway's TUN device (iptun.c), checking every packet's source,
 * destination, protocol and the target policy on the way. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/log.h"
#include "proto/ipcapsule.h"
#include "proto/ippkt.h"
#include "proto/request.h"
#include "proto/uritemplate.h"
#include "proto/wire.h"
#include "server/internal.h"
#include "server/iptun.h"

#define SCOPE_MAX 8     /* addresses a scoped target may resolve to */
#define REQ_MAX 16      /* Requested Addresses taken in one capsule */
#define PENDING_MAX 4   /* ADDRESS_REQUEST entries held while resolving */
#define SEEN_IDS 32     /* request IDs remembered to catch reuse */
#define ROUTES_MAX (2 * (MASQ_MAX_ROUTES + SCOPE_MAX))

typedef enum { IP_RESOLVING, IP_OPEN, IP_CLOSING } ip_state;

typedef struct iptunnel {
  int kind; /* SRV_TUNNEL_IP: first, see srv_tunnel */
  sconn *sc;
  int64_t sid;
  ip_state state;
  masq_resolve_req *rreq;
  /* Scope (RFC 9484 §4.6): everything, or these prefixes; ipproto -1 is
   * any protocol. */
  int full;
  int ipproto;
  masq_cidr scope[SCOPE_MAX];
  size_t nscope;
  char target[MASQ_MAX_HOST + 1];
  /* Leases (family 0: none) and the request IDs they answered. */
  masq_cidr addr4, addr6;
  uint64_t id4, id6;
  masq_ip_assignment pending[PENDING_MAX];
  size_t npending;
  uint64_t seen[SEEN_IDS];
  size_t nseen;
} iptunnel;

static uint64_t owner_of(iptunnel *t) { return (uint64_t)(uintptr_t)t; }

/* ---- addresses and ranges ----------------------------------------------- */

static size_t ip_len(const masq_ip *ip) { return ip->family == 4 ? 4 : 16; }

static int ip_cmp(const masq_ip *a, const masq_ip *b) {
  if (a->family != b->family) return a->family < b->family ? -1 : 1;
  return memcmp(a->a, b->a, ip_len(a));
}

static int ip_equal(const masq_ip *a, const masq_ip *b) { return ip_cmp(a, b) == 0; }

static masq_ip_route cidr_range(const masq_cidr *c, uint8_t proto) {
  masq_ip_route r = {c->ip, c->ip, proto};
  unsigned bits = c->ip.family == 4 ? 32 : 128;
  for (unsigned i = c->plen; i < bits; i++) r.end.a[i / 8] |= (uint8_t)(0x80u >> (i % 8));
  return r;
}

static int route_cmp(const void *pa, const void *pb) {
  const masq_ip_route *a = pa, *b = pb;
  if (a->start.family != b->start.family) return a->start.family < b->start.family ? -1 : 1;
  if (a->ipproto != b->ipproto) return a->ipproto < b->ipproto ? -1 : 1;
  return ip_cmp(&a->start, &b->start);
}

/* Sorts and merges r[0..n) into the order RFC 9484 §4.7.3 requires
 * (version, then protocol, then strictly ascending starts). */
static size_t routes_normalise(masq_ip_route *r, size_t n) {
  if (n == 0) return 0;
  qsort(r, n, sizeof(*r), route_cmp);
  size_t k = 0;
  for (size_t i = 1; i < n; i++) {
    masq_ip_route *cur = &r[k];
    if (r[i].start.family == cur->start.family && r[i].ipproto == cur->ipproto &&
        ip_cmp(&r[i].start, &cur->end) <= 0) {
      if (ip_cmp(&r[i].end, &cur->end) > 0) cur->end = r[i].end;
    } else {
      r[++k] = r[i];
    }
  }
  return k + 1;
}

static int in_any(const masq_cidr *list, size_t n, const masq_ip *ip) {
  for (size_t i = 0; i < n; i++)
    if (masq_cidr_contains(&list[i], ip)) return 1;
  return 0;
}

static int is_link_local(const masq_ip *ip) {
  if (ip->family == 4) return ip->a[0] == 169 && ip->a[1] == 254;
  return ip->a[0] == 0xfe && (ip->a[1] & 0xc0) == 0x80;
}

static int is_multicast(const masq_ip *ip) {
  if (ip->family == 4) return (ip->a[0] & 0xf0) == 0xe0 || (ip->a[0] == 255 && ip->a[1] == 255 &&
                                                            ip->a[2] == 255 && ip->a[3] == 255);
  return ip->a[0] == 0xff;
}

/* ICMP errors may come from anywhere on the path (RFC 9484 §7.2.1 notes
 * they can originate outside the scope). */
static int is_icmp_error(const masq_ippkt *p) {
  if (!p->has_icmp) return 0;
  if (p->version == 6) return p->proto == MASQ_IPPROTO_ICMPV6 && p->icmp_type < 128;
  return p->proto == MASQ_IPPROTO_ICMP &&
         (p->icmp_type == 3 || p->icmp_type == 11 || p->icmp_type == 12);
}

/* ---- capsules we send ----------------------------------------------------- */

static int send_routes(iptunnel *t) {
  const masq_opts *o = t->sc->s->o;
  masq_ip_route r[ROUTES_MAX];
  size_t n = 0;
  uint8_t proto = t->ipproto < 0 ? 0 : (uint8_t)t->ipproto;
  if (!t->full) {
    for (size_t i = 0; i < t->nscope; i++) r[n++] = cidr_range(&t->scope[i], proto);
  } else if (o->nadvertise) {
    for (size_t i = 0; i < o->nadvertise; i++) r[n++] = cidr_range(&o->advertise[i], proto);
  } else {
    masq_cidr all4 = {{.family = 4}, 0}, all6 = {{.family = 6}, 0};
    r[n++] = cidr_range(&all4, proto);
    r[n++] = cidr_range(&all6, proto);
  }
  n = routes_normalise(r, n);
  uint8_t buf[ROUTES_MAX * 36];
  size_t len = masq_route_advertisement_encode(buf, r, n);
  if (len == MASQ_IPCAP_INVALID) return -1;
  return masq_conn_send_capsule(t->sc->c, t->sid, MASQ_CAPSULE_ROUTE_ADVERTISEMENT, buf, len);
}

/* Sends the whole current assignment (RFC 9484 §4.7.1: each capsule
 * replaces the last), plus the rejections rej[0..nrej) of this answer. */
static int send_assign(iptunnel *t, const masq_ip_assignment *rej, size_t nrej) {
  masq_ip_assignment a[2 + REQ_MAX];
  size_t n = 0;
  if (t->addr4.ip.family) a[n++] = (masq_ip_assignment){t->id4, t->addr4};
  if (t->addr6.ip.family) a[n++] = (masq_ip_assignment){t->id6, t->addr6};
  for (size_t i = 0; i < nrej && n < sizeof(a) / sizeof(a[0]); i++) a[n++] = rej[i];
  uint8_t buf[(2 + REQ_MAX) * 32];
  size_t len = masq_address_assign_encode(buf, a, n);
  if (len == MASQ_IPCAP_INVALID) return -1;
  return masq_conn_send_capsule(t->sc->c, t->sid, MASQ_CAPSULE_ADDRESS_ASSIGN, buf, len);
}

/* ---- leases ----------------------------------------------------------------- */

static masq_pool *pool_for(srv *s, int family) {
  return family == 4 ? &s->ip->pool4 : &s->ip->pool6;
}

/* Leases an address of req's family for t, honouring req's preference
 * when the pool can (RFC 9484 §4.7.2). Returns 0 with the lease in
 * *held, or -1 (pool full) leaving *held as it was. */
static int lease(iptunnel *t, const masq_cidr *req, masq_cidr *held) {
  masq_pool *p = pool_for(t->sc->s, req->ip.family);
  static const uint8_t zero[16];
  int any = memcmp(req->ip.a, zero, ip_len(&req->ip)) == 0;
  if (held->ip.family && any) return 0; /* keep what it has */
  masq_cidr got;
  if (masq_pool_assign(p, any ? NULL : req, owner_of(t), &got) != 0) return -1;
  if (held->ip.family && !ip_equal(&got.ip, &held->ip)) {
    if (!masq_cidr_contains(req, &got.ip) && !masq_cidr_contains(&got, &req->ip)) {
      /* Not what was asked for: the address already held is as good. */
      masq_pool_release(p, &got, owner_of(t));
      return 0;
    }
    masq_pool_release(p, held, owner_of(t));
  }
  *held = got;
  return 0;
}

static int id_seen(iptunnel *t, uint64_t id) {
  for (size_t i = 0; i < t->nseen && i < SEEN_IDS; i++)
    if (t->seen[i] == id) return 1;
  t->seen[t->nseen++ % SEEN_IDS] = id;
  return 0;
}

/* Answers Requested Addresses (RFC 9484 §4.7.2): every Request ID gets
 * an Assigned Address, or the all-zero rejection of full length. */
static int answer_requests(iptunnel *t, const masq_ip_assignment *req, size_t n) {
  masq_ip_assignment rej[REQ_MAX];
  size_t nrej = 0;
  for (size_t i = 0; i < n; i++) {
    int v4 = req[i].prefix.ip.family == 4;
    masq_cidr *held = v4 ? &t->addr4 : &t->addr6;
    if (lease(t, &req[i].prefix, held) == 0) {
      *(v4 ? &t->id4 : &t->id6) = req[i].request_id;
    } else {
      masq_ip_assignment r = {req[i].request_id, {{.family = v4 ? 4 : 6}, v4 ? 32 : 128}};
      rej[nrej++] = r;
    }
  }
  return send_assign(t, rej, nrej);
}

/* ---- the tunnel --------------------------------------------------------- */

static void tunnel_end(iptunnel *t, const char *why) {
  if (t->state == IP_CLOSING) return;
  t->state = IP_CLOSING;
  masq_log(MASQ_LOG_DEBUG, "CONNECT-IP tunnel on stream %lld ended: %s", (long long)t->sid, why);
  masq_conn_end_stream(t->sc->c, t->sid);
  masq_srv_mark_dirty(t->sc);
}

static void log_open(iptunnel *t) {
  char a4[64] = "-", a6[64] = "-";
  if (t->addr4.ip.family) masq_ip_format(&t->addr4.ip, a4, sizeof(a4));
  if (t->addr6.ip.family) masq_ip_format(&t->addr6.ip, a6, sizeof(a6));
  masq_log(MASQ_LOG_INFO, "CONNECT-IP tunnel on stream %lld: %s %s, scope %s/%s",
           (long long)t->sid, a4, a6, t->full ? "*" : t->target,
           t->ipproto < 0 ? "*" : "proto");
}

/* Leases one address per family, answers 2xx and tells the client its
 * addresses and routes, then any requests that arrived meanwhile. */
static void tunnel_open(iptunnel *t) {
  sconn *sc = t->sc;
  masq_cidr any4 = {{.family = 4}, 32}, any6 = {{.family = 6}, 128};
  lease(t, &any4, &t->addr4);
  lease(t, &any6, &t->addr6);
  if (!t->addr4.ip.family && !t->addr6.ip.family) {
    masq_srv_refuse(sc, t->sid, 503, "proxy_internal_error", "address pools exhausted");
    t->state = IP_CLOSING;
    return;
  }
  t->state = IP_OPEN;
  masq_conn_submit_response(sc->c, t->sid, 200, NULL, NULL, NULL, t);
  masq_conn_stream_set_ip(sc->c, t->sid);
  if (send_assign(t, NULL, 0) != 0 || send_routes(t) != 0 ||
      (t->npending && answer_requests(t, t->pending, t->npending) != 0)) {
    masq_conn_reset_stream(sc->c, t->sid, MASQ_H3_INTERNAL_ERROR);
    t->state = IP_CLOSING;
  }
  t->npending = 0;
  sc->s->stats.tunnels_opened++;
  masq_srv_mark_dirty(sc);
  log_open(t);
}

static void on_resolved(void *ud, int status, const masq_ip *addrs, size_t n) {
  iptunnel *t = ud;
  srv *s = t->sc->s;
  t->rreq = NULL;
  if (t->state == IP_CLOSING) {
    masq_conn_reset_stream(t->sc->c, t->sid, MASQ_H3_REQUEST_CANCELLED);
    masq_srv_mark_dirty(t->sc);
    return;
  }
  if (status != 0 || n == 0) {
    masq_srv_refuse_dns(t->sc, t->sid, status); /* RFC 9484 §4.1 names dns_error */
    t->state = IP_CLOSING;
    return;
  }
  for (size_t i = 0; i < n && t->nscope < SCOPE_MAX; i++) {
    if (!masq_policy_check(&s->policy, &addrs[i])) continue;
    t->scope[t->nscope].ip = addrs[i];
    t->scope[t->nscope++].plen = addrs[i].family == 4 ? 32 : 128;
  }
  if (t->nscope == 0) {
    masq_srv_refuse(t->sc, t->sid, 403, "destination_ip_prohibited",
                    "the target's addresses are not allowed by this proxy's policy");
    t->state = IP_CLOSING;
    return;
  }
  tunnel_open(t);
}

/* ---- the request ---------------------------------------------------------- */

/* RFC 9484 §4.6: ipproto is "*" or a decimal 0..255. */
static int parse_ipproto(const char *v, int *out) {
  if (!strcmp(v, "*")) {
    *out = -1;
    return 0;
  }
  size_t n = strspn(v, "0123456789");
  if (n == 0 || n > 3 || v[n] != '\0') return -1;
  int x = 0;
  for (size_t i = 0; i < n; i++) x = x * 10 + (v[i] - '0');
  if (x > 255) return -1;
  *out = x;
  return 0;
}

/* RFC 9484 §4.6: target is "*", a DNS name, an IP address, or a prefix
 * "addr/len" with zero host bits. Returns NULL, or why it is malformed.
 * *resolve is set for a name. */
static const char *parse_target(iptunnel *t, const char *v, int *resolve) {
  *resolve = 0;
  if (!strcmp(v, "*")) {
    t->full = 1;
    return NULL;
  }
  masq_ip ip;
  if (strchr(v, '/')) {
    if (masq_cidr_parse(v, &t->scope[0]) != 0)
      return "target prefix is malformed or has host bits set";
    t->nscope = 1;
    return NULL;
  }
  int kind = masq_target_host_parse(v, &ip);
  if (kind < 0) return "target is neither *, a DNS name, an IP address nor a prefix";
  if (kind == 0) {
    *resolve = 1;
    return NULL;
  }
  t->scope[0].ip = ip;
  t->scope[0].plen = ip.family == 4 ? 32 : 128;
  t->nscope = 1;
  return NULL;
}

/* A scoped tunnel must stay inside the routes the operator serves. */
static int scope_within_routes(const iptunnel *t, const masq_opts *o) {
  if (t->full || !o->nadvertise) return 1;
  for (size_t i = 0; i < t->nscope; i++) {
    masq_ip_route r = cidr_range(&t->scope[i], 0);
    int inside = 0;
    for (size_t j = 0; j < o->nadvertise && !inside; j++)
      inside = masq_cidr_contains(&o->advertise[j], &r.start) &&
               masq_cidr_contains(&o->advertise[j], &r.end);
    if (!inside) return 0;
  }
  return 1;
}

static iptunnel *tunnel_new(sconn *sc, int64_t sid) {
  iptunnel *t = calloc(1, sizeof(*t));
  if (!t) return NULL;
  t->kind = SRV_TUNNEL_IP;
  t->sc = sc;
  t->sid = sid;
  t->ipproto = -1;
  return t;
}

/* Checks what every request needs; returns 0 or refuses and returns -1. */
static int admit(sconn *sc, int64_t sid, const masq_reqhdrs *h, char *target, size_t tcap,
                 char *proto, size_t pcap) {
  srv *s = sc->s;
  masq_reqcheck chk;
  masq_reqcheck_connect(h, MASQ_PROTO_CONNECT_IP, &chk);
  if (chk.status) {
    masq_srv_refuse(sc, sid, chk.status, chk.error, chk.detail);
    return -1;
  }
  if (!masq_srv_token_ok(s, h)) {
    s->stats.auth_failures++;
    masq_srv_refuse(sc, sid, 407, "http_request_denied", "missing or wrong bearer token");
    return -1;
  }
  if (!s->ip) {
    masq_srv_refuse(sc, sid, 501, "proxy_internal_response",
                    "CONNECT-IP is not available on this proxy (no TUN device)");
    return -1;
  }
  masq_tmatch vars[2] = {{"target", target, tcap, 0}, {"ipproto", proto, pcap, 0}};
  if (masq_uritemplate_match(s->o->ip_template, h->path.v, vars, 2) != 0) {
    masq_srv_refuse(sc, sid, 404, "http_request_error",
                    "path does not match the CONNECT-IP template");
    return -1;
  }
  /* A template without the variables serves full tunnels only. */
  if (!vars[0].found) snprintf(target, tcap, "*");
  if (!vars[1].found) snprintf(proto, pcap, "*");
  return 0;
}

void masq_ip_on_request(masq_conn *c, void *ud, int64_t sid, const masq_reqhdrs *h) {
  sconn *sc = ud;
  srv *s = sc->s;
  char target[MASQ_MAX_HOST + 1], proto[8];
  if (admit(sc, sid, h, target, sizeof(target), proto, sizeof(proto)) != 0) return;
  iptunnel *t = tunnel_new(sc, sid);
  if (!t) {
    masq_srv_refuse(sc, sid, 503, "proxy_internal_error", "out of memory");
    return;
  }
  int resolve;
  /* RFC 9484 §4.1: variables breaking §4.6 make the request malformed. */
  const char *bad = target[0] && proto[0] ? parse_target(t, target, &resolve)
                                          : "empty target or ipproto";
  if (!bad && parse_ipproto(proto, &t->ipproto) != 0) bad = "ipproto is not * or 0..255";
  if (bad) {
    masq_srv_refuse(sc, sid, 400, "http_request_error", bad);
    free(t);
    return;
  }
  if (!scope_within_routes(t, s->o)) {
    masq_srv_refuse(sc, sid, 403, "destination_ip_prohibited",
                    "the target is outside the routes this proxy serves");
    free(t);
    return;
  }
  snprintf(t->target, sizeof(t->target), "%s", target);
  masq_conn_stream_set_user(c, sid, t); /* a close from now on frees t */
  sc->ntunnels++;
  if (!resolve) {
    tunnel_open(t);
    return;
  }
  t->state = IP_RESOLVING;
  t->rreq = masq_resolve(s->resolver, target, on_resolved, t);
  if (!t->rreq) {
    masq_srv_refuse(sc, sid, 503, "proxy_internal_error", "too many name lookups in progress");
    t->state = IP_CLOSING;
  }
}

/* ---- capsules from the client ------------------------------------------- */

static int on_address_request(iptunnel *t, const uint8_t *p, size_t n) {
  masq_ip_assignment req[REQ_MAX];
  size_t cnt;
  const char *err;
  if (masq_address_request_decode(p, n, req, REQ_MAX, &cnt, &err) != 0) {
    masq_log_rl(MASQ_LOG_INFO, "stream %lld: bad ADDRESS_REQUEST: %s", (long long)t->sid, err);
    return -1;
  }
  for (size_t i = 0; i < cnt; i++) {
    if (id_seen(t, req[i].request_id)) { /* RFC 9484 §4.7.2: MUST NOT reuse */
      masq_log_rl(MASQ_LOG_INFO, "stream %lld: ADDRESS_REQUEST reuses a request ID",
                  (long long)t->sid);
      return -1;
    }
  }
  if (t->state == IP_OPEN) return answer_requests(t, req, cnt) == 0 ? 0 : -1;
  if (t->state != IP_RESOLVING) return 0;
  if (t->npending + cnt > PENDING_MAX) return -1; /* more than two families need */
  memcpy(t->pending + t->npending, req, cnt * sizeof(req[0]));
  t->npending += cnt;
  return 0;
}

int masq_ip_on_capsule(masq_conn *c, void *ud, int64_t sid, void *sud, uint64_t type,
                       const uint8_t *p, size_t n) {
  iptunnel *t = sud;
  const char *err = NULL;
  int rv = 0;
  size_t cnt;
  switch (type) {
    case MASQ_CAPSULE_ADDRESS_REQUEST:
      return on_address_request(t, p, n);
    case MASQ_CAPSULE_ADDRESS_ASSIGN: {
      /* The client offering us addresses (network-to-network, §8.3):
       * not a service masq provides, but malformed ones still abort. */
      masq_ip_assignment a[64];
      rv = masq_address_assign_decode(p, n, a, 64, &cnt, &err);
      break;
    }
    case MASQ_CAPSULE_ROUTE_ADVERTISEMENT: {
      masq_ip_route r[128];
      rv = masq_route_advertisement_decode(p, n, r, 128, &cnt, &err);
      break;
    }
  }
  if (rv != 0)
    masq_log_rl(MASQ_LOG_INFO, "stream %lld: bad %s: %s", (long long)t->sid,
                masq_ipcapsule_name(type), err);
  return rv == 0 ? 0 : -1;
}

/* ---- packets --------------------------------------------------------------- */

/* Sends an ICMP error about pkt to its source through the tunnel. */
static void icmp_to_client(iptunnel *t, const uint8_t *pkt, size_t len, int version, int kind) {
  srv *s = t->sc->s;
  if (!masq_iptun_icmp_ok(s)) return;
  uint8_t e[MASQ_ICMP_ERROR_MAX];
  const masq_ip *from = version == 4 ? &s->ip->gw4 : &s->ip->gw6;
  size_t n = masq_icmp_error_build(e, sizeof(e), pkt, len, from, kind, 0);
  if (n && masq_conn_send_datagram(t->sc->c, t->sid, e, n) == 0) s->stats.icmp_sent++;
}

/* What RFC 9484 §7.2.1 suggests answering a refused packet with, or 0
 * to drop it silently. */
static int check_outbound(iptunnel *t, const masq_ippkt *p) {
  srv *s = t->sc->s;
  const masq_cidr *own = p->version == 4 ? &t->addr4 : &t->addr6;
  if (!own->ip.family || !masq_cidr_contains(own, &p->src)) return MASQ_ICMP_SOURCE_ADDR_FAILED;
  /* Link-local and multicast traffic stays on the tunnel link (§7.2). */
  if (is_link_local(&p->dst) || is_multicast(&p->dst)) return -1;
  if (t->ipproto >= 0 && p->proto != t->ipproto) return MASQ_ICMP_DEST_UNREACH_ADMIN;
  if (!t->full && !in_any(t->scope, t->nscope, &p->dst)) return MASQ_ICMP_DEST_UNREACH_ADMIN;
  if (t->full && s->o->nadvertise && !in_any(s->o->advertise, s->o->nadvertise, &p->dst))
    return MASQ_ICMP_DEST_UNREACH_ADMIN;
  return 0;
}

/* Another client's address: delivered directly when allowed, since the
 * pools are this gateway's own link. Returns 1 if p was handled. */
static int client_to_client(iptunnel *t, const masq_ippkt *p, uint8_t *pkt, size_t len) {
  srv *s = t->sc->s;
  const masq_cidr *range = p->version == 4 ? &s->o->pool4 : &s->o->pool6;
  if (!masq_cidr_contains(range, &p->dst)) return 0;
  masq_pool *pool = pool_for(s, p->version);
  uint64_t owner = masq_pool_owner(pool, &p->dst);
  if (owner && s->o->client_to_client) {
    masq_ip_from_tun(s, owner, pkt, len);
    return 1;
  }
  if (ip_equal(&p->dst, p->version == 4 ? &s->ip->gw4 : &s->ip->gw6)) return 0;
  s->stats.ip_drop_refused++;
  icmp_to_client(t, pkt, len, p->version, MASQ_ICMP_DEST_UNREACH_ADMIN);
  return 1;
}

void masq_ip_on_datagram(masq_conn *c, void *ud, int64_t sid, void *sud, const uint8_t *p,
                         size_t n) {
  iptunnel *t = sud;
  srv *s = t->sc->s;
  if (t->state != IP_OPEN) return;
  masq_ippkt pkt;
  if (masq_ippkt_parse(p, n, &pkt, NULL) != 0) {
    s->stats.ip_drop_malformed++;
    return;
  }
  int verdict = check_outbound(t, &pkt);
  if (verdict) {
    if (verdict == MASQ_ICMP_SOURCE_ADDR_FAILED) s->stats.ip_drop_spoofed++;
    else s->stats.ip_drop_refused++;
    if (verdict > 0) icmp_to_client(t, p, pkt.len, pkt.version, verdict);
    return;
  }
  /* The session hands a const view; client_to_client forwards it as is. */
  if (client_to_client(t, &pkt, (uint8_t *)(uintptr_t)p, pkt.len)) return;
  if (!masq_policy_check(&s->policy, &pkt.dst)) { /* the same deny list as CONNECT-UDP */
    s->stats.ip_drop_refused++;
    icmp_to_client(t, p, pkt.len, pkt.version, MASQ_ICMP_DEST_UNREACH_ADMIN);
    return;
  }
  if (masq_iptun_write(s, p, pkt.len) == 0) s->stats.ip_tx++;
}

/* Packet Too Big / Fragmentation Needed back to the sender (RFC 9484
 * §10.2), through the kernel, which routes it (and un-NATs it). It
 * comes from the tunnel's far end, the packet's destination: the kernel
 * drops packets entering the TUN from one of its own addresses, such as
 * the gateway's. */
static void icmp_too_big(srv *s, const masq_ippkt *p, const uint8_t *pkt, size_t mtu) {
  if (!masq_iptun_icmp_ok(s)) return;
  uint8_t e[MASQ_ICMP_ERROR_MAX];
  const masq_ip *from = &p->dst;
  size_t len = p->len;
  size_t n = masq_icmp_error_build(e, sizeof(e), pkt, len, from, MASQ_ICMP_PACKET_TOO_BIG,
                                   (uint32_t)mtu);
  if (n && masq_iptun_write(s, e, n) == 0) s->stats.icmp_sent++;
}

/* Checks a packet from the TUN for tunnel t: 0 if it may go (*p parsed),
 * else -1 with the refusal counted `count` times (the segments of one
 * super-packet share their headers). */
static int from_tun_check(srv *s, iptunnel *t, const uint8_t *pkt, size_t len, size_t count,
                          masq_ippkt *p) {
  if (masq_ippkt_parse(pkt, len, p, NULL) != 0) {
    s->stats.ip_drop_malformed += count;
    return -1;
  }
  /* The scope binds both directions (RFC 9484 §4.6), ICMP errors aside. */
  if (!is_icmp_error(p) &&
      ((t->ipproto >= 0 && p->proto != t->ipproto) ||
       (!t->full && !in_any(t->scope, t->nscope, &p->src)) ||
       (t->full && s->o->nadvertise && !in_any(s->o->advertise, s->o->nadvertise, &p->src)))) {
    s->stats.ip_drop_refused += count;
    return -1;
  }
  /* A segment, never a super-packet, is compared: the size the packets
   * really have in the tunnel. */
  size_t max = masq_conn_max_datagram(t->sc->c, t->sid);
  if (p->len > max) {
    s->stats.ip_drop_too_big += count;
    if (p->version == 6 || p->df) icmp_too_big(s, p, pkt, max);
    return -1;
  }
  return 0;
}

static void to_client(srv *s, iptunnel *t, const uint8_t *pkt, size_t len) {
  if (masq_conn_send_datagram(t->sc->c, t->sid, pkt, len) == 0) s->stats.ip_rx++;
  else s->stats.ip_drop_too_big++;
}

void masq_ip_from_tun(srv *s, uint64_t owner, uint8_t *pkt, size_t len) {
  iptunnel *t = (iptunnel *)(uintptr_t)owner;
  if (t->state != IP_OPEN) return;
  masq_ippkt p;
  if (from_tun_check(s, t, pkt, len, 1, &p) != 0) return;
  to_client(s, t, pkt, p.len);
  masq_srv_mark_dirty(t->sc);
}

void masq_ip_from_tun_gso(srv *s, uint64_t owner, const masq_vnet_hdr *h, uint8_t *pkt,
                          size_t len) {
  iptunnel *t = (iptunnel *)(uintptr_t)owner;
  if (t->state != IP_OPEN) return;
  masq_gso g;
  if (masq_gso_init(&g, h, pkt, len, NULL) != 0) {
    s->stats.ip_drop_malformed++;
    return;
  }
  /* The first segment is the largest: it stands for all in the checks.
   * Each is built in place and copied into the datagram queue before
   * the next one overwrites it. */
  uint8_t *seg;
  size_t n = masq_gso_next_inplace(&g, &seg);
  masq_ippkt p;
  if (n == 0 || from_tun_check(s, t, seg, n, masq_gso_count(&g), &p) != 0) return;
  do to_client(s, t, seg, n);
  while ((n = masq_gso_next_inplace(&g, &seg)) > 0);
  masq_srv_mark_dirty(t->sc);
}

/* ---- stream ends ------------------------------------------------------------ */

void masq_ip_on_stream_end(masq_conn *c, void *ud, int64_t sid, void *sud) {
  tunnel_end(sud, "client closed the stream");
}

void masq_ip_on_stream_close(masq_conn *c, void *ud, int64_t sid, void *sud,
                             uint64_t app_error) {
  iptunnel *t = sud;
  srv *s = t->sc->s;
  if (t->rreq) masq_resolve_cancel(t->rreq);
  /* The addresses return to the pools with the stream (§4.1). */
  if (s->ip) {
    masq_pool_release_owner(&s->ip->pool4, owner_of(t));
    masq_pool_release_owner(&s->ip->pool6, owner_of(t));
  }
  t->sc->ntunnels--;
  free(t);
}
