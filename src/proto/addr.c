/* IP literals, prefixes, host:port and forward specs, and the target
 * policy. The parsers are written out by hand rather than taken from
 * inet_pton so that what is accepted is spelled out here (and the fuzzer
 * checks it against inet_pton); inet_ntop is used only for RFC 5952
 * output. */
#include "proto/addr.h"

#include <arpa/inet.h>
#include <string.h>

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int hex_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Parses s[0..n) as digits only (no sign or space, unlike strtoul) whose
 * value is at most max; stopping as soon as it exceeds max also rules
 * out overflow. Leading zeros are fine here (RFC 3986 port = *DIGIT). */
static int parse_dec(const char *s, size_t n, unsigned long max, unsigned long *out) {
  if (n == 0) return -1;
  unsigned long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_digit(s[i])) return -1;
    v = v * 10 + (unsigned long)(s[i] - '0');
    if (v > max) return -1;
  }
  *out = v;
  return 0;
}

/* Dotted quad s[0..n): exactly four decimal octets. Leading zeros are
 * refused because inet_aton would read "010" as octal 8 (inet_pton
 * refuses them too). */
static int parse_v4(const char *s, size_t n, uint8_t out[4]) {
  size_t i = 0;
  for (int part = 0; part < 4; part++) {
    size_t start = i;
    while (i < n && is_digit(s[i])) i++;
    unsigned long v;
    if (i - start > 1 && s[start] == '0') return -1;
    if (parse_dec(s + start, i - start, 255, &v) != 0) return -1;
    out[part] = (uint8_t)v;
    if (part < 3) {
      if (i >= n || s[i] != '.') return -1;
      i++;
    }
  }
  return i == n ? 0 : -1;
}

/* One IPv6 group of 1..4 hex digits at s[*i..n), advancing *i. */
static int parse_group(const char *s, size_t n, size_t *i, unsigned *out) {
  unsigned v = 0;
  size_t k = 0;
  while (*i < n && k < 5 && hex_val(s[*i]) >= 0) {
    v = (v << 4) | (unsigned)hex_val(s[*i]);
    (*i)++;
    k++;
  }
  if (k == 0 || k > 4) return -1;
  *out = v;
  return 0;
}

/* IPv6 text form of RFC 4291 §2.2: up to eight groups, at most one "::"
 * standing for one or more zero groups, and optionally a dotted quad in
 * the last 32 bits. No zone (RFC 9298 §3 does not support them). */
static int parse_v6(const char *s, size_t n, uint8_t out[16]) {
  uint8_t b[16] = {0};
  size_t nb = 0, i = 0;
  long gap = -1; /* byte offset of "::" */
  if (n >= 2 && s[0] == ':' && s[1] == ':') {
    gap = 0;
    i = 2;
  } else if (n >= 1 && s[0] == ':') {
    return -1;
  }
  while (i < n) {
    if (nb == 16) return -1;
    size_t start = i;
    unsigned g;
    if (parse_group(s, n, &i, &g) != 0) return -1;
    if (i < n && s[i] == '.') {
      /* Embedded IPv4: must be the last thing and fit in 4 bytes. */
      if (nb + 4 > 16 || parse_v4(s + start, n - start, b + nb) != 0) return -1;
      nb += 4;
      i = n;
      break;
    }
    b[nb++] = (uint8_t)(g >> 8);
    b[nb++] = (uint8_t)g;
    if (i == n) break;
    if (s[i] != ':') return -1;
    i++;
    if (i < n && s[i] == ':') {
      if (gap >= 0) return -1; /* a second "::" */
      gap = (long)nb;
      i++;
    } else if (i == n) {
      return -1; /* a trailing single ':' */
    }
  }
  if (gap < 0) {
    if (nb != 16) return -1;
  } else {
    if (nb == 16) return -1; /* "::" must stand for at least one group */
    size_t tail = nb - (size_t)gap;
    memmove(b + 16 - tail, b + gap, tail);
    memset(b + gap, 0, 16 - nb);
  }
  memcpy(out, b, 16);
  return 0;
}

static int ip_parse_n(const char *s, size_t n, masq_ip *out) {
  masq_ip ip;
  memset(&ip, 0, sizeof(ip));
  if (memchr(s, ':', n) != NULL) {
    if (parse_v6(s, n, ip.a) != 0) return -1;
    ip.family = 6;
  } else {
    if (parse_v4(s, n, ip.a) != 0) return -1;
    ip.family = 4;
  }
  *out = ip;
  return 0;
}

int masq_ip_parse(const char *s, masq_ip *out) {
  if (s == NULL) return -1;
  return ip_parse_n(s, strlen(s), out);
}

char *masq_ip_format(const masq_ip *ip, char *out, size_t cap) {
  /* 46 = INET6_ADDRSTRLEN, enough for either family. */
  if (cap < 46 || (ip->family != 4 && ip->family != 6)) return NULL;
  int af = ip->family == 4 ? AF_INET : AF_INET6;
  /* inet_ntop writes RFC 5952 form for IPv6 (lower case, longest zero run
   * compressed, ::ffff:a.b.c.d for mapped addresses). */
  if (inet_ntop(af, ip->a, out, (socklen_t)cap) == NULL) return NULL;
  return out;
}

/* 1 if the first plen bits of x and y agree. */
static int prefix_eq(const uint8_t *x, const uint8_t *y, unsigned plen) {
  unsigned full = plen / 8, rem = plen % 8;
  if (memcmp(x, y, full) != 0) return 0;
  if (rem == 0) return 1;
  uint8_t mask = (uint8_t)(0xff << (8 - rem));
  return (x[full] & mask) == (y[full] & mask);
}

int masq_cidr_parse(const char *s, masq_cidr *out) {
  if (s == NULL) return -1;
  size_t n = strlen(s);
  const char *slash = memchr(s, '/', n);
  size_t alen = slash ? (size_t)(slash - s) : n;
  masq_cidr c;
  memset(&c, 0, sizeof(c));
  if (ip_parse_n(s, alen, &c.ip) != 0) return -1;
  unsigned long max = c.ip.family == 4 ? 32 : 128;
  unsigned long plen = max;
  if (slash && parse_dec(slash + 1, n - alen - 1, max, &plen) != 0) return -1;
  c.plen = (uint8_t)plen;
  /* Host bits set ("10.0.0.1/8") usually mean a typo in the config, so
   * refuse rather than silently widen or narrow the rule. */
  for (unsigned b = (unsigned)plen; b < max; b++) {
    if (c.ip.a[b / 8] & (0x80 >> (b % 8))) return -1;
  }
  *out = c;
  return 0;
}

/* ::ffff:0:0/96 (RFC 4291 §2.5.5.2): the IPv4 address a dual-stack socket
 * really sends to. */
static int v4_mapped(const masq_ip *ip) {
  static const uint8_t pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return ip->family == 6 && memcmp(ip->a, pfx, 12) == 0;
}

int masq_cidr_contains(const masq_cidr *c, const masq_ip *ip) {
  /* A hand-built prefix longer than its family would compare past the
   * address: it contains nothing. */
  if (c->plen > (c->ip.family == 4 ? 32 : 128)) return 0;
  if (c->ip.family == 4 && v4_mapped(ip)) return prefix_eq(c->ip.a, ip->a + 12, c->plen);
  if (c->ip.family != ip->family) return 0;
  return prefix_eq(c->ip.a, ip->a, c->plen);
}

/* Port s[0..n): 1..65535, or 0 too when allow_zero. */
static int port_parse(const char *s, size_t n, int allow_zero, uint16_t *port) {
  unsigned long v;
  if (parse_dec(s, n, 65535, &v) != 0) return -1;
  if (v == 0 && !allow_zero) return -1;
  *port = (uint16_t)v;
  return 0;
}

int masq_port_parse(const char *s, size_t n, int allow_zero, uint16_t *port) {
  if (s == NULL) return -1;
  return port_parse(s, n, allow_zero, port);
}

/* A host name as masq accepts it in configuration: letters, digits, '-',
 * '_' and '.', which covers DNS names and IPv4 literals and keeps out
 * anything a shell, a log or a URI would treat specially. */
static int name_chars_ok(const char *s, size_t n) {
  if (n == 0 || n > MASQ_MAX_HOST) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' ||
             c == '_' || c == '.';
    if (!ok) return 0;
  }
  return 1;
}

/* Copies a host field s[0..n) into host: "[v6]" loses its brackets and
 * must be an IPv6 literal; anything else must be a plain name. */
static int host_field(const char *s, size_t n, char *host, size_t hcap) {
  if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
    masq_ip ip;
    s++;
    n -= 2;
    if (ip_parse_n(s, n, &ip) != 0 || ip.family != 6) return -1;
  } else if (!name_chars_ok(s, n)) {
    return -1;
  }
  if (n == 0 || n > MASQ_MAX_HOST || n >= hcap) return -1;
  memcpy(host, s, n);
  host[n] = '\0';
  return 0;
}

int masq_hostport_parse(const char *s, char *host, size_t hcap, uint16_t *port,
                        int default_port, int allow_zero) {
  if (s == NULL || host == NULL || port == NULL) return -1;
  size_t n = strlen(s);
  size_t hlen; /* host part, brackets included */
  if (n > 0 && s[0] == '[') {
    const char *rb = memchr(s, ']', n);
    if (rb == NULL) return -1;
    hlen = (size_t)(rb - s) + 1;
  } else {
    const char *colon = memchr(s, ':', n);
    hlen = colon ? (size_t)(colon - s) : n;
    /* A second colon means an unbracketed IPv6 literal, whose last group
     * could be read as the port: refuse rather than guess. */
    if (colon && memchr(colon + 1, ':', n - hlen - 1) != NULL) return -1;
  }
  uint16_t p;
  if (hlen == n) {
    if (default_port < 0 || default_port > 65535) return -1;
    if (default_port == 0 && !allow_zero) return -1;
    p = (uint16_t)default_port;
  } else {
    if (s[hlen] != ':') return -1;
    if (port_parse(s + hlen + 1, n - hlen - 1, allow_zero, &p) != 0) return -1;
  }
  if (host_field(s, hlen, host, hcap) != 0) return -1;
  *port = p;
  return 0;
}

/* Splits s at ':' outside brackets into at most max fields. Returns the
 * number of fields, or -1 on too many fields or unbalanced brackets. */
static int split_colons(const char *s, size_t n, const char **f, size_t *flen, int max) {
  int nf = 0, depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    char c = i < n ? s[i] : ':';
    if (c == '[') {
      if (depth++ != 0) return -1;
    } else if (c == ']') {
      if (depth-- != 1) return -1;
    } else if (c == ':' && depth == 0) {
      if (nf == max) return -1;
      f[nf] = s + start;
      flen[nf] = i - start;
      nf++;
      start = i + 1;
    }
  }
  return depth == 0 ? nf : -1;
}

/* The bind field: an IP literal (IPv6 in brackets), stored bare. A name
 * is refused so that what gets bound never depends on DNS. */
static int bind_field(const char *s, size_t n, char *out, size_t cap) {
  masq_ip ip;
  if (host_field(s, n, out, cap) != 0) return -1;
  if (masq_ip_parse(out, &ip) != 0) return -1;
  return 0;
}

int masq_fwdspec_parse(const char *s, masq_fwdspec *out) {
  if (s == NULL || out == NULL) return -1;
  const char *f[4];
  size_t fl[4];
  int nf = split_colons(s, strlen(s), f, fl, 4);
  if (nf != 3 && nf != 4) return -1;
  masq_fwdspec r;
  memset(&r, 0, sizeof(r));
  int k = 0;
  if (nf == 4) {
    if (bind_field(f[0], fl[0], r.bind, sizeof(r.bind)) != 0) return -1;
    k = 1;
  } else {
    memcpy(r.bind, "127.0.0.1", sizeof("127.0.0.1"));
  }
  if (port_parse(f[k], fl[k], 0, &r.port) != 0) return -1;
  if (host_field(f[k + 1], fl[k + 1], r.host, sizeof(r.host)) != 0) return -1;
  if (port_parse(f[k + 2], fl[k + 2], 0, &r.hostport) != 0) return -1;
  *out = r;
  return 0;
}

int masq_target_host_parse(const char *s, masq_ip *ip) {
  if (s == NULL) return -1;
  size_t n = strlen(s);
  masq_ip tmp;
  if (ip_parse_n(s, n, &tmp) == 0) {
    if (ip) *ip = tmp;
    return 1;
  }
  /* Not a literal: it must be a DNS name (RFC 1035 §2.3.1 letters,
   * digits and hyphens, plus '_' which real names use), labels of 1..63
   * octets, at most 253 characters plus an optional final dot. */
  if (n > 0 && s[n - 1] == '.') n--;
  if (n == 0 || n > 253) return -1;
  size_t label = 0, last = 0;
  int all_digits = 1;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || s[i] == '.') {
      if (label == 0 || label > 63) return -1;
      if (s[i - label] == '-' || s[i - 1] == '-') return -1;
      last = label;
      label = 0;
      continue;
    }
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '_'))
      return -1;
    label++;
  }
  /* A numeric last label (RFC 3696 §2) means a malformed IPv4 literal
   * such as "127.1" or "1.2.3.4.5", which resolvers may still turn into
   * an address; refuse it instead. */
  for (size_t i = n - last; i < n; i++) {
    if (!is_digit(s[i])) all_digits = 0;
  }
  return all_digits ? -1 : 0;
}

/* ---- target policy ---- */

/* The default deny list: destinations a public proxy must not reach on a
 * client's behalf (RFC 9298 §7 on access control; the IANA special-purpose
 * registries of RFC 6890). */
static const char *const default_deny[] = {
    "0.0.0.0/8",      /* "this network", RFC 791 / RFC 1122 §3.2.1.3 */
    "127.0.0.0/8",    /* loopback, RFC 1122 §3.2.1.3 */
    "10.0.0.0/8",     /* private, RFC 1918 */
    "172.16.0.0/12",  /* private, RFC 1918 */
    "192.168.0.0/16", /* private, RFC 1918 */
    "100.64.0.0/10",  /* shared address space (CGN), RFC 6598 */
    "169.254.0.0/16", /* link-local incl. cloud metadata, RFC 3927 */
    "192.0.0.0/24",   /* IETF protocol assignments, RFC 6890 §2.2.2 */
    "198.18.0.0/15",  /* benchmarking, RFC 2544 */
    "224.0.0.0/4",    /* multicast, RFC 5771 */
    "240.0.0.0/4",    /* reserved, RFC 1112 §4; holds 255.255.255.255
                         limited broadcast, RFC 919 */
    "::/128",         /* unspecified, RFC 4291 §2.5.2 */
    "::1/128",        /* loopback, RFC 4291 §2.5.3 */
    "fe80::/10",      /* link-local, RFC 4291 §2.5.6 */
    "fec0::/10",      /* deprecated site-local, RFC 3879; still routed
                         inside some networks */
    "fc00::/7",       /* unique local, RFC 4193 */
    "ff00::/8",       /* multicast, RFC 4291 §2.7 */
    /* IPv4-mapped forms (::ffff:10.0.0.1) are covered by the IPv4 rules
     * through masq_cidr_contains. */
};

void masq_policy_init_default(masq_policy *p) {
  memset(p, 0, sizeof(*p));
  for (size_t i = 0; i < sizeof(default_deny) / sizeof(default_deny[0]); i++) {
    masq_cidr c;
    if (masq_cidr_parse(default_deny[i], &c) == 0) p->deny[p->ndeny++] = c;
  }
}

int masq_policy_allow(masq_policy *p, const masq_cidr *c) {
  if (p->nallow >= MASQ_POLICY_MAX) return -1;
  p->allow[p->nallow++] = *c;
  return 0;
}

int masq_policy_deny(masq_policy *p, const masq_cidr *c) {
  if (p->ndeny >= MASQ_POLICY_MAX) return -1;
  p->deny[p->ndeny++] = *c;
  return 0;
}

static int list_contains(const masq_cidr *list, size_t n, const masq_ip *ip) {
  for (size_t i = 0; i < n && i < MASQ_POLICY_MAX; i++) {
    if (masq_cidr_contains(&list[i], ip)) return 1;
  }
  return 0;
}

int masq_policy_check(const masq_policy *p, const masq_ip *ip) {
  if (ip->family != 4 && ip->family != 6) return 0;
  /* The allow list wins so an operator can open one internal service
   * without dropping a whole deny rule. */
  if (list_contains(p->allow, p->nallow, ip)) return 1;
  return !list_contains(p->deny, p->ndeny, ip);
}
