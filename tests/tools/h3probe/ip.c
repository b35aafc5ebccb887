/* h3probe's CONNECT-IP cases (RFC 9484): addresses and routes,
 * ADDRESS_REQUEST, scoping, anti-spoofing and malformed capsules. */
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "cases.h"
#include "proto/ippkt.h"
#include "request.h"

/* :path for the default CONNECT-IP template, percent-encoding what
 * RFC 9484 §4.6 says must be (IPv6 colons, the prefix slash). */
static void ip_path(const char *target, const char *proto, char *path, size_t cap) {
  char enc[300];
  size_t k = 0;
  for (const char *c = target; *c && k + 4 < sizeof(enc); c++) {
    if (*c == ':' || *c == '/' || *c == '%')
      k += (size_t)snprintf(enc + k, sizeof(enc) - k, "%%%02X", (unsigned char)*c);
    else
      enc[k++] = *c;
  }
  enc[k] = '\0';
  snprintf(path, cap, "/.well-known/masque/ip/%s/%s/", enc, proto);
}

static pstream *open_ip(probe *p, const char *target, const char *proto) {
  char path[512];
  ip_path(target, proto, path, sizeof(path));
  pstream *s = req_new(p);
  int64_t sid =
      masq_conn_submit_connect(p->c, p->authority, path, MASQ_PROTO_CONNECT_IP, p->token, s);
  return req_submitted(p, s, sid, "CONNECT-IP request", "CONNECT-IP", path);
}

static int got_setup(probe *p, void *arg) {
  pstream *s = arg;
  return (s->assigns && s->route_ads) || s->closed;
}

/* 200, then the unsolicited ADDRESS_ASSIGN and ROUTE_ADVERTISEMENT. */
static int expect_ip_tunnel(probe *p, pstream *s) {
  if (req_expect_tunnel(p, s, 1) != 0) return 1;
  masq_conn_stream_set_ip(p->c, s->sid);
  hp_await(p, "ADDRESS_ASSIGN and ROUTE_ADVERTISEMENT", got_setup, s, hp_forever());
  if (s->closed)
    return hp_fail(p, "stream closed (0x%llx) before addresses and routes came",
                   (unsigned long long)s->app_error);
  return 0;
}

/* A tunnel for all of IPv4 and IPv6, or NULL (hp_fail() has said why). */
static pstream *open_full_tunnel(probe *p) {
  pstream *s = open_ip(p, "*", "*");
  return expect_ip_tunnel(p, s) == 0 ? s : NULL;
}

static const masq_ip *assigned(const pstream *s, int family) {
  for (size_t i = 0; i < s->nassign; i++)
    if (s->assign[i].prefix.ip.family == family && !masq_ip_assignment_is_rejection(&s->assign[i]))
      return &s->assign[i].prefix.ip;
  return NULL;
}

static size_t ip_header(uint8_t *b, const masq_ip *src, const masq_ip *dst, uint8_t proto,
                        size_t l4len) {
  if (src->family == 4) {
    memset(b, 0, 20);
    b[0] = 0x45;
    b[2] = (uint8_t)((20 + l4len) >> 8);
    b[3] = (uint8_t)(20 + l4len);
    b[6] = 0x40; /* DF */
    b[8] = 64;
    b[9] = proto;
    memcpy(b + 12, src->a, 4);
    memcpy(b + 16, dst->a, 4);
    uint16_t c = masq_inet_checksum(b, 20);
    b[10] = (uint8_t)(c >> 8);
    b[11] = (uint8_t)c;
    return 20;
  }
  memset(b, 0, 40);
  b[0] = 0x60;
  b[4] = (uint8_t)(l4len >> 8);
  b[5] = (uint8_t)l4len;
  b[6] = proto;
  b[7] = 64;
  memcpy(b + 8, src->a, 16);
  memcpy(b + 24, dst->a, 16);
  return 40;
}

/* An ICMP(v6) Echo Request of datalen bytes; returns its length. */
static size_t icmp_echo(uint8_t *b, const masq_ip *src, const masq_ip *dst, size_t datalen) {
  int v4 = src->family == 4;
  uint8_t proto = v4 ? MASQ_IPPROTO_ICMP : MASQ_IPPROTO_ICMPV6;
  size_t h = ip_header(b, src, dst, proto, 8 + datalen);
  uint8_t *m = b + h;
  memset(m, 0, 8 + datalen);
  m[0] = v4 ? 8 : 128;
  m[4] = 0x6d;
  m[5] = 0x71;
  m[7] = 1;
  for (size_t i = 0; i < datalen; i++) m[8 + i] = (uint8_t)i;
  uint16_t c = v4 ? masq_inet_checksum(m, 8 + datalen)
                  : masq_l4_checksum(src, dst, proto, m, 8 + datalen);
  m[2] = (uint8_t)(c >> 8);
  m[3] = (uint8_t)c;
  return h + 8 + datalen;
}

static size_t udp_packet(uint8_t *b, const masq_ip *src, const masq_ip *dst, uint16_t port) {
  size_t h = ip_header(b, src, dst, MASQ_IPPROTO_UDP, 8 + 4);
  uint8_t *u = b + h;
  memset(u, 0, 12);
  u[0] = 0x6d;
  u[1] = 0x71;
  u[2] = (uint8_t)(port >> 8);
  u[3] = (uint8_t)port;
  u[5] = 12;
  memcpy(u + 8, "ping", 4);
  uint16_t c = masq_l4_checksum(src, dst, MASQ_IPPROTO_UDP, u, 12);
  u[6] = (uint8_t)(c >> 8);
  u[7] = (uint8_t)c;
  return h + 12;
}

typedef struct icmp_want {
  pstream *s;
  unsigned after; /* datagrams seen before sending */
  uint8_t type, code;
  masq_ippkt got;
} icmp_want;

static int got_icmp(probe *p, void *arg) {
  icmp_want *w = arg;
  if (w->s->ndgrams <= w->after) return 0;
  w->after = w->s->ndgrams;
  masq_ippkt k;
  if (masq_ippkt_parse(w->s->last, w->s->lastlen, &k, NULL) != 0 || !k.has_icmp) return 0;
  w->got = k;
  return k.icmp_type == w->type && k.icmp_code == w->code;
}

/* Sends pkt on s (resending, datagrams may be lost) until an ICMP
 * message of type/code comes back. */
static int send_expect_icmp(probe *p, pstream *s, const uint8_t *pkt, size_t n, uint8_t type,
                            uint8_t code, const char *what) {
  icmp_want w;
  memset(&w, 0, sizeof(w));
  w.s = s;
  w.after = s->ndgrams;
  w.type = type;
  w.code = code;
  for (int i = 0; i < ECHO_TRIES; i++) {
    int rv = masq_conn_send_datagram(p->c, s->sid, pkt, n);
    if (rv != 0) return hp_fail(p, "%s: cannot send the packet: %d", what, rv);
    rv = hp_await(p, what, got_icmp, &w, hp_now_ns() + ECHO_RETRY_NS);
    if (rv == 1) return 0;
    if (s->closed)
      return hp_fail(p, "%s: stream closed (0x%llx)", what, (unsigned long long)s->app_error);
  }
  return hp_fail(p, "%s: no ICMP type %u code %u after %d tries (%u datagrams came back)", what,
                 type, code, ECHO_TRIES, s->ndgrams);
}

/* --target's host as an address; a name is resolved here the way the
 * server resolves it (both namespaces share the test's hosts file). */
static int target_ip(probe *p, masq_ip *ip) {
  if (masq_ip_parse(p->thost, ip) == 0) return 0;
  struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res = NULL;
  if (getaddrinfo(p->thost, NULL, &hints, &res) != 0 || !res)
    return hp_fail(p, "--target %s: neither an address nor a name that resolves", p->thost);
  masq_sockaddr sa;
  memset(&sa, 0, sizeof(sa));
  memcpy(&sa.u.ss, res->ai_addr, res->ai_addrlen);
  sa.len = res->ai_addrlen;
  uint16_t port;
  int rv = masq_sockaddr_to_ip(&sa, ip, &port);
  freeaddrinfo(res);
  return rv == 0 ? 0 : hp_fail(p, "--target %s resolved to an unusable address", p->thost);
}

static int ping_through(probe *p, pstream *s, const masq_ip *dst, const char *what) {
  const masq_ip *src = assigned(s, dst->family);
  if (!src) return hp_fail(p, "%s: no address of the target's family assigned", what);
  uint8_t pkt[128];
  size_t n = icmp_echo(pkt, src, dst, 32);
  return send_expect_icmp(p, s, pkt, n, dst->family == 4 ? 0 : 129, 0, what);
}

static int case_ip_ok(probe *p) {
  masq_ip dst;
  if (target_ip(p, &dst) != 0) return 1;
  pstream *s = open_full_tunnel(p);
  if (!s) return 1;
  const masq_ip *a4 = assigned(s, 4), *a6 = assigned(s, 6);
  if (!a4 || !a6)
    return hp_fail(p, "expected one IPv4 and one IPv6 address, got %zu entries", s->nassign);
  /* Full tunnel (RFC 9484 §8.1): all of IPv4, then all of IPv6. */
  if (s->nroutes != 2 || s->routes[0].start.family != 4 || s->routes[1].start.family != 6 ||
      s->routes[0].ipproto || s->routes[1].ipproto || s->routes[0].end.a[0] != 0xff ||
      s->routes[1].end.a[15] != 0xff)
    return hp_fail(p, "expected the two full-range routes, got %zu ranges", s->nroutes);
  if (ping_through(p, s, &dst, "an echo reply from the target") != 0) return 1;
  char b4[64], b6[64];
  return hp_pass(p, "assigned %s and %s, full routes; %s answers pings through the tunnel",
                 masq_ip_format(a4, b4, sizeof(b4)), masq_ip_format(a6, b6, sizeof(b6)), p->thost);
}

static int got_assigns(probe *p, void *arg) {
  pstream *s = arg;
  return s->assigns >= 2 || s->closed;
}

static int send_request(probe *p, pstream *s, uint64_t id, const masq_cidr *want) {
  masq_ip_assignment r = {id, *want};
  uint8_t buf[64];
  size_t n = masq_address_request_encode(buf, &r, 1);
  if (n == MASQ_IPCAP_INVALID) return hp_fail(p, "probe bug: bad ADDRESS_REQUEST");
  int rv = masq_conn_send_capsule(p->c, s->sid, MASQ_CAPSULE_ADDRESS_REQUEST, buf, n);
  return rv == 0 ? 0 : hp_fail(p, "cannot send ADDRESS_REQUEST: %d", rv);
}

static const masq_ip_assignment *answer_for(const pstream *s, uint64_t id) {
  for (size_t i = 0; i < s->nassign; i++)
    if (s->assign[i].request_id == id) return &s->assign[i];
  return NULL;
}

static int case_ip_request(probe *p) {
  pstream *s = open_full_tunnel(p);
  if (!s) return 1;
  const masq_ip *a4 = assigned(s, 4);
  if (!a4) return hp_fail(p, "no IPv4 address assigned");
  /* Another address of the same /24 pool: RFC 9484 §4.7.2 says the
   * proxy honours a preference it can. */
  masq_cidr want = {*a4, 32};
  want.ip.a[3] ^= 0x40;
  s->assigns = 1; /* the next ADDRESS_ASSIGN makes 2 */
  if (send_request(p, s, 7, &want) != 0) return 1;
  hp_await(p, "the ADDRESS_ASSIGN answer", got_assigns, s, hp_forever());
  const masq_ip_assignment *a = answer_for(s, 7);
  char b[64], w[64];
  masq_ip_format(&want.ip, w, sizeof(w));
  if (!a || memcmp(a->prefix.ip.a, want.ip.a, 4) != 0 || a->prefix.plen != 32)
    return hp_fail(p, "request 7 for %s not honoured (%s)", w,
                   a ? masq_ip_format(&a->prefix.ip, b, sizeof(b)) : "no entry with ID 7");
  /* Outside every pool: answered, but not with the address asked for. */
  masq_cidr out = {{.family = 4, .a = {198, 18, 0, 1}}, 32};
  s->assigns = 1;
  if (send_request(p, s, 8, &out) != 0) return 1;
  hp_await(p, "the second answer", got_assigns, s, hp_forever());
  a = answer_for(s, 8);
  if (!a || a->prefix.ip.a[0] == 198)
    return hp_fail(p, "request 8 for 198.18.0.1 not answered properly");
  masq_ip_format(&a->prefix.ip, b, sizeof(b));
  /* RFC 9484 §4.7.2: Request IDs MUST NOT be reused: the stream aborts. */
  if (send_request(p, s, 7, &want) != 0) return 1;
  hp_await(p, "the stream reset", req_closed, s, hp_forever());
  if (s->app_error != MASQ_H3_MESSAGE_ERROR)
    return hp_fail(p, "reused request ID: expected H3_MESSAGE_ERROR, saw 0x%llx",
                   (unsigned long long)s->app_error);
  return hp_pass(p, "request for %s honoured; 198.18.0.1 answered with %s; reused ID aborts the "
                 "stream", w, b);
}

static int case_ip_spoof(probe *p) {
  pstream *s = open_full_tunnel(p);
  if (!s) return 1;
  masq_ip src4 = {.family = 4, .a = {203, 0, 113, 9}}, dst4 = {.family = 4, .a = {192, 0, 2, 2}};
  masq_ip src6, dst6;
  masq_ip_parse("2001:db8:ffff::9", &src6);
  masq_ip_parse("2001:db8:2::2", &dst6);
  uint8_t pkt[128];
  size_t n = icmp_echo(pkt, &src6, &dst6, 16);
  /* RFC 9484 §7.2.1: ICMPv6 Destination Unreachable code 5. */
  if (send_expect_icmp(p, s, pkt, n, 1, 5, "ICMPv6 source-policy error") != 0) return 1;
  n = icmp_echo(pkt, &src4, &dst4, 16);
  if (send_expect_icmp(p, s, pkt, n, 3, 13, "ICMPv4 administratively prohibited") != 0) return 1;
  return hp_pass(p, "spoofed sources refused with ICMPv6 1/5 and ICMPv4 3/13");
}

static int case_ip_scope(probe *p) {
  masq_ip dst;
  if (target_ip(p, &dst) != 0) return 1;
  /* ICMP for IPv4, ICMPv6 for IPv6. */
  uint8_t proto = dst.family == 4 ? MASQ_IPPROTO_ICMP : MASQ_IPPROTO_ICMPV6;
  pstream *s = open_ip(p, p->thost, dst.family == 4 ? "1" : "58");
  if (expect_ip_tunnel(p, s) != 0) return 1;
  if (s->nroutes != 1 || s->routes[0].ipproto != proto ||
      memcmp(s->routes[0].start.a, dst.a, 16) != 0 || memcmp(s->routes[0].end.a, dst.a, 16) != 0)
    return hp_fail(p, "expected one route: %s..%s protocol %u, got %zu ranges", p->thost, p->thost,
                   proto, s->nroutes);
  if (ping_through(p, s, &dst, "an echo reply inside the scope") != 0) return 1;
  const masq_ip *src = assigned(s, dst.family);
  uint8_t pkt[128];
  size_t n = udp_packet(pkt, src, &dst, 9);
  uint8_t t = dst.family == 4 ? 3 : 1, c = dst.family == 4 ? 13 : 1;
  if (send_expect_icmp(p, s, pkt, n, t, c, "UDP outside the scope's protocol refused") != 0)
    return 1;
  masq_ip other = dst;
  other.a[dst.family == 4 ? 3 : 15] ^= 1;
  n = icmp_echo(pkt, src, &other, 16);
  if (send_expect_icmp(p, s, pkt, n, t, c, "another destination refused") != 0) return 1;
  return hp_pass(p, "scope %s/%u: one route, pings pass, UDP and other hosts refused with ICMP",
                 p->thost, proto);
}

static int case_ip_bad_scope(probe *p) {
  static const char *const bad[][2] = {
      {"192.0.2.1/24", "*"}, {"*", "256"}, {"*", "-1"}, {"2001:db8::1/129", "*"}, {"bad..name", "*"}};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    pstream *s = open_ip(p, bad[i][0], bad[i][1]);
    if (req_expect_refusal(p, s, 400, NULL) != 0) return 1;
  }
  pstream *s = open_full_tunnel(p);
  if (!s) return 1;
  return hp_pass(p, "5 malformed scopes answered 400; the connection still opens tunnels");
}

static int abort_with(probe *p, uint64_t type, const uint8_t *d, size_t n, const char *what) {
  pstream *s = open_full_tunnel(p);
  if (!s) return 1;
  int rv = masq_conn_send_capsule(p->c, s->sid, type, d, n);
  if (rv != 0) return hp_fail(p, "cannot send %s: %d", what, rv);
  hp_await(p, "the stream reset", req_closed, s, hp_forever());
  if (s->app_error != MASQ_H3_MESSAGE_ERROR)
    return hp_fail(p, "%s: expected H3_MESSAGE_ERROR, saw 0x%llx", what,
                   (unsigned long long)s->app_error);
  return 0;
}

static int case_ip_bad_capsule(probe *p) {
  /* RFC 9484 §4.7.2: an ADDRESS_REQUEST without entries aborts. */
  if (abort_with(p, MASQ_CAPSULE_ADDRESS_REQUEST, NULL, 0, "empty ADDRESS_REQUEST") != 0) return 1;
  /* §4.7.3: an IPv6 range before an IPv4 one is out of order. */
  const uint8_t routes[] = {6, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                            0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0,
                            4, 10, 0, 0, 0, 10, 0, 0, 255, 0};
  if (abort_with(p, MASQ_CAPSULE_ROUTE_ADVERTISEMENT, routes, sizeof(routes),
                 "ill-ordered ROUTE_ADVERTISEMENT") != 0)
    return 1;
  /* §4.7.1: host bits set beyond the prefix length. */
  const uint8_t assign[] = {0, 4, 10, 0, 0, 1, 24};
  if (abort_with(p, MASQ_CAPSULE_ADDRESS_ASSIGN, assign, sizeof(assign),
                 "ADDRESS_ASSIGN with host bits") != 0)
    return 1;
  pstream *s = open_full_tunnel(p);
  if (!s) return 1;
  return hp_pass(p, "3 malformed capsules each aborted only their stream (H3_MESSAGE_ERROR)");
}

static int case_ip_two(probe *p) {
  pstream *a = open_ip(p, "*", "*"), *b = open_ip(p, "*", "*");
  if (expect_ip_tunnel(p, a) != 0 || expect_ip_tunnel(p, b) != 0) return 1;
  const masq_ip *a4 = assigned(a, 4), *b4 = assigned(b, 4), *a6 = assigned(a, 6),
                *b6 = assigned(b, 6);
  if (!a4 || !b4 || !a6 || !b6) return hp_fail(p, "both tunnels need both families");
  if (!memcmp(a4->a, b4->a, 4) || !memcmp(a6->a, b6->a, 16))
    return hp_fail(p, "two tunnels got the same address");
  /* Client-to-client traffic is refused unless the server allows it. */
  uint8_t pkt[128];
  size_t n = icmp_echo(pkt, a4, b4, 16);
  if (send_expect_icmp(p, a, pkt, n, 3, 13, "client-to-client refused") != 0) return 1;
  return hp_pass(p, "two tunnels, distinct addresses; client-to-client refused with ICMP 3/13");
}

static const pcase cases[] = {
    {"ip-ok", case_ip_ok, CASE_NEEDS_TARGET},
    {"ip-request", case_ip_request, 0},
    {"ip-spoof", case_ip_spoof, 0},
    {"ip-scope", case_ip_scope, CASE_NEEDS_TARGET},
    {"ip-bad-scope", case_ip_bad_scope, 0},
    {"ip-bad-capsule", case_ip_bad_capsule, 0},
    {"ip-two", case_ip_two, 0},
};

const pcase_list ip_cases = PCASE_LIST(cases);
