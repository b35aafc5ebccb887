/* The command line and the config file of every subcommand, driven by one
 * table: each option's flag, config key, type, bounds and help live in a
 * single row, so the two ways of setting a value cannot drift apart and
 * the usage text is generated rather than maintained by hand. */
#include "app/options.h"

#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "io/log.h"
#include "proto/addr.h"
#include "proto/uritemplate.h"
#include "proto/wire.h"

enum opt_type {
  T_FLAG,    /* int set to 1 (a boolean in the config file) */
  T_COUNT,   /* int incremented each time (-v) */
  T_STR,     /* char[size], with an optional check */
  T_PATH,    /* char[size], non-empty */
  T_UINT,    /* unsigned in min..max */
  T_STRLIST, /* char[n][esize] with a count, each checked */
  T_CIDRS,   /* masq_cidr[n] with a count */
  T_CIDR,    /* one masq_cidr */
  T_ADDRS,   /* masq_cidr[n] with a count; a bare address is a full-length prefix */
  T_FWDS,    /* masq_fwdspec[n] with a count */
  T_CONFIG,  /* --config: handled before all other flags */
  T_HELP,
};

#define SRV (1u << MASQ_CMD_SERVER)
#define FWD (1u << MASQ_CMD_FORWARD)
#define GEN (1u << MASQ_CMD_GENCERT)
#define CON (1u << MASQ_CMD_CONNECT)
#define SOX (1u << MASQ_CMD_SOCKS)
#define HTP (1u << MASQ_CMD_HTTP_PROXY)
/* Every client that reaches the proxy. */
#define CLI (FWD | CON | SOX | HTP)

/* Writes a full one-line reason into err and returns 0 if val is bad. */
typedef int (*opt_check)(const char *label, const char *val, char *err, size_t cap);

struct opt {
  const char *name; /* long flag without "--" */
  char shortname;   /* 0 if none */
  const char *ini;  /* config key as documented; NULL: command line only */
  unsigned cmds;    /* subcommands that take it */
  enum opt_type type;
  size_t off;   /* field in masq_opts */
  size_t size;  /* whole field in bytes */
  size_t esize; /* lists: one element */
  size_t noff;  /* lists: the count field */
  unsigned min, max;
  opt_check check;
  const char *metavar;
  const char *help;
};

#define FIELD(f) .off = offsetof(masq_opts, f), .size = sizeof(((masq_opts *)0)->f)
#define LIST(f, n) \
  FIELD(f), .esize = sizeof(((masq_opts *)0)->f[0]), .noff = offsetof(masq_opts, n)

static int check_listen(const char *label, const char *val, char *err, size_t cap);
static int check_proxy(const char *label, const char *val, char *err, size_t cap);
static int check_template(const char *label, const char *val, char *err, size_t cap);
static int check_token(const char *label, const char *val, char *err, size_t cap);
static int check_name(const char *label, const char *val, char *err, size_t cap);
static int check_ip_template(const char *label, const char *val, char *err, size_t cap);
static int check_ifname(const char *label, const char *val, char *err, size_t cap);
static int check_ipproto(const char *label, const char *val, char *err, size_t cap);
static int check_cc(const char *label, const char *val, char *err, size_t cap);
static int parse_uint(const char *s, unsigned long *out);

static const struct opt opts[] = {
    {.name = "config", .cmds = SRV | CLI, .type = T_CONFIG, FIELD(config), .metavar = "FILE",
     .help = "read settings from an INI file first; flags given here override them"},
    {.name = "listen", .ini = "Listen", .cmds = SRV, .type = T_STR, FIELD(listen),
     .check = check_listen, .metavar = "ADDR:PORT",
     .help = "UDP address to serve HTTP/3 on (default [::]:443)"},
    {.name = "listen", .ini = "Listen", .cmds = SOX, .type = T_STR, FIELD(listen),
     .check = check_listen, .metavar = "ADDR:PORT",
     .help = "TCP address to serve SOCKS5 on (default 127.0.0.1:1080); UDP ASSOCIATE relays "
             "bind the same address"},
    {.name = "listen", .ini = "Listen", .cmds = HTP, .type = T_STR, FIELD(listen),
     .check = check_listen, .metavar = "ADDR:PORT",
     .help = "TCP address to serve the HTTP proxy on (default 127.0.0.1:8080)"},
    {.name = "cert", .ini = "Cert", .cmds = SRV, .type = T_PATH, FIELD(cert), .metavar = "FILE",
     .help = "PEM certificate chain (required)"},
    {.name = "key", .ini = "Key", .cmds = SRV, .type = T_PATH, FIELD(key), .metavar = "FILE",
     .help = "PEM private key of the certificate (required)"},
    {.name = "token", .ini = "Token", .cmds = SRV, .type = T_STRLIST, LIST(tokens, ntokens),
     .check = check_token, .metavar = "TOKEN",
     .help = "accept this bearer token; repeatable (prefer Token= in a mode 0600 config: "
             "command lines are visible to other users)"},
    {.name = "no-auth", .ini = "NoAuth", .cmds = SRV, .type = T_FLAG, FIELD(no_auth),
     .help = "accept clients without a token (an open proxy)"},
    {.name = "retry", .ini = "Retry", .cmds = SRV, .type = T_FLAG, FIELD(retry),
     .help = "check every client's address with a QUIC Retry before keeping state for it "
             "(one more round trip; without it, Retry starts when half of --max-connections "
             "are in use)"},
    {.name = "allow", .ini = "Allow", .cmds = SRV, .type = T_CIDRS, LIST(allow, nallow),
     .metavar = "CIDR",
     .help = "let clients reach this prefix although the default policy denies it "
             "(private, loopback, ...); repeatable"},
    {.name = "pool4", .ini = "Pool4", .cmds = SRV, .type = T_CIDR, FIELD(pool4),
     .metavar = "CIDR",
     .help = "IPv4 addresses for CONNECT-IP clients, one /32 each; the first is the "
             "server's (default 10.89.0.0/24)"},
    {.name = "pool6", .ini = "Pool6", .cmds = SRV, .type = T_CIDR, FIELD(pool6),
     .metavar = "CIDR",
     .help = "IPv6 addresses for CONNECT-IP clients, one /128 each (default "
             "fd6d:6173:7100::/64)"},
    {.name = "nat", .ini = "NAT", .cmds = SRV, .type = T_FLAG, FIELD(nat),
     .help = "enable IP forwarding and masquerade CONNECT-IP clients behind this host's "
             "addresses (nftables); undone on exit"},
    {.name = "client-to-client", .ini = "ClientToClient", .cmds = SRV, .type = T_FLAG,
     FIELD(client_to_client), .help = "let CONNECT-IP clients reach each other"},
    {.name = "route", .ini = "Route", .cmds = SRV, .type = T_CIDRS,
     LIST(advertise, nadvertise), .metavar = "CIDR",
     .help = "advertise this prefix to CONNECT-IP clients and forward only to it; repeatable "
             "(default everything, still subject to the target policy)"},
    {.name = "tun", .ini = "Tun", .cmds = SRV | CON, .type = T_STR, FIELD(tun),
     .check = check_ifname, .metavar = "NAME",
     .help = "name of the TUN device (default masq0; the server's is masqs0)"},
    {.name = "ip-template", .ini = "IPTemplate", .cmds = SRV | CON, .type = T_STR,
     FIELD(ip_template), .check = check_ip_template, .metavar = "URI",
     .help = "CONNECT-IP URI template (default " MASQ_DEFAULT_IP_TEMPLATE ")"},
    {.name = "proxy", .ini = "Proxy", .cmds = CLI, .type = T_STR, FIELD(proxy),
     .check = check_proxy, .metavar = "https://HOST[:PORT]",
     .help = "the MASQUE proxy to tunnel through (required)"},
    {.name = "token", .ini = "Token", .cmds = CLI, .type = T_STR, FIELD(token),
     .check = check_token, .metavar = "TOKEN",
     .help = "bearer token to present to the proxy (prefer Token= in a mode 0600 config)"},
    {.name = "ca", .ini = "CA", .cmds = CLI, .type = T_PATH, FIELD(ca), .metavar = "FILE",
     .help = "trust the proxy certificate if it chains to this PEM file instead of the "
             "system CAs"},
    {.name = "insecure", .ini = "Insecure", .cmds = CLI, .type = T_FLAG, FIELD(insecure),
     .help = "do not verify the proxy certificate (testing only)"},
    {.name = "udp", .ini = "UDP", .cmds = FWD, .type = T_FWDS, LIST(udp, nudp),
     .metavar = "[BIND:]PORT:HOST:HOSTPORT",
     .help = "listen on local UDP BIND:PORT (BIND defaults to 127.0.0.1) and relay to "
             "HOST:HOSTPORT through the proxy; repeatable (at least one --udp or --tcp)"},
    {.name = "tcp", .ini = "TCP", .cmds = FWD, .type = T_FWDS, LIST(tcp, ntcp),
     .metavar = "[BIND:]PORT:HOST:HOSTPORT",
     .help = "listen on local TCP BIND:PORT (BIND defaults to 127.0.0.1) and connect each "
             "accepted connection to HOST:HOSTPORT through the proxy; repeatable"},
    {.name = "user", .ini = "User", .cmds = SOX, .type = T_STR, FIELD(socks_user),
     .metavar = "NAME",
     .help = "require SOCKS5 username/password authentication (RFC 1929) with this name; "
             "needs --password"},
    {.name = "password", .ini = "Password", .cmds = SOX, .type = T_STR, FIELD(socks_password),
     .metavar = "PW",
     .help = "the password for --user (prefer Password= in a mode 0600 config)"},
    {.name = "route", .ini = "Route", .cmds = CON, .type = T_CIDRS, LIST(routes, nroutes),
     .metavar = "CIDR",
     .help = "send only this prefix through the tunnel; repeatable (default everything the "
             "proxy advertises)"},
    {.name = "exclude", .ini = "Exclude", .cmds = CON, .type = T_CIDRS,
     LIST(excludes, nexcludes), .metavar = "CIDR",
     .help = "keep this prefix out of the tunnel; repeatable"},
    {.name = "request-address", .ini = "RequestAddress", .cmds = CON, .type = T_ADDRS,
     LIST(request_addr, nrequest_addr), .metavar = "ADDR[/LEN]",
     .help = "ask the proxy for this address (one IPv4, one IPv6); it may assign another"},
    {.name = "dns", .ini = "DNS", .cmds = CON, .type = T_ADDRS, LIST(dns, ndns),
     .metavar = "ADDR", .help = "use this resolver while connected (rewrites /etc/resolv.conf, "
                                "restored on exit); repeatable"},
    {.name = "target", .ini = "Target", .cmds = CON, .type = T_STR, FIELD(target),
     .metavar = "HOST|ADDR|PREFIX",
     .help = "scope the tunnel to this target (default *: everything)"},
    {.name = "ipproto", .ini = "IPProto", .cmds = CON, .type = T_STR, FIELD(ipproto),
     .check = check_ipproto, .metavar = "N",
     .help = "scope the tunnel to this IP protocol number (default *: all)"},
    {.name = "fwmark", .ini = "FwMark", .cmds = CON, .type = T_UINT, FIELD(fwmark), .min = 1,
     .max = 0xffffffffu, .metavar = "N",
     .help = "firewall mark (and routing table) that keeps the tunnel's own packets out of "
             "it (default 28017)"},
    {.name = "cc", .ini = "CC", .cmds = SRV | CLI, .type = T_STR, FIELD(cc),
     .check = check_cc, .metavar = "bbr|cubic",
     .help = "congestion control of this end's QUIC sending (default bbr, which keeps a "
             "tunnel's rate on lossy links where cubic backs off at every loss)"},
    {.name = "udp-template", .ini = "UDPTemplate", .cmds = SRV | FWD | SOX, .type = T_STR,
     FIELD(udp_template), .check = check_template, .metavar = "URI",
     .help = "CONNECT-UDP URI template (default " MASQ_DEFAULT_UDP_TEMPLATE ")"},
    {.name = "idle-timeout", .ini = "IdleTimeout", .cmds = SRV, .type = T_UINT,
     FIELD(idle_timeout), .min = 1, .max = 86400, .metavar = "SECONDS",
     .help = "close a tunnel silent for this long (default 120)"},
    {.name = "max-tunnels", .ini = "MaxTunnels", .cmds = SRV, .type = T_UINT, FIELD(max_tunnels),
     .min = 1, .max = 65535, .metavar = "N", .help = "tunnels per QUIC connection (default 256)"},
    {.name = "connect-timeout", .ini = "ConnectTimeout", .cmds = SRV, .type = T_UINT,
     FIELD(connect_timeout), .min = 1, .max = 300, .metavar = "SECONDS",
     .help = "give up on a TCP target that has not answered in this long (default 10)"},
    {.name = "max-connections", .ini = "MaxConnections", .cmds = SRV, .type = T_UINT,
     FIELD(max_conns), .min = 1, .max = 1000000, .metavar = "N",
     .help = "QUIC connections at once (default 1024)"},
    {.name = "cert", .cmds = GEN, .type = T_PATH, FIELD(out_cert), .metavar = "FILE",
     .help = "where to write the certificate (default cert.pem)"},
    {.name = "key", .cmds = GEN, .type = T_PATH, FIELD(out_key), .metavar = "FILE",
     .help = "where to write the private key, mode 0600 (default key.pem)"},
    {.name = "name", .cmds = GEN, .type = T_STRLIST, LIST(names, nnames), .check = check_name,
     .metavar = "DNS-or-IP",
     .help = "subjectAltName the certificate is valid for; repeatable (default localhost)"},
    {.name = "days", .cmds = GEN, .type = T_UINT, FIELD(days), .min = 1, .max = 36500,
     .metavar = "N", .help = "validity in days (default 365)"},
    {.name = "verbose", .shortname = 'v', .cmds = SRV | CLI, .type = T_COUNT, FIELD(verbose),
     .help = "log more; repeat for debug output"},
    {.name = "help", .shortname = 'h', .cmds = SRV | GEN | CLI, .type = T_HELP,
     .help = "show this help"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const char *const cmd_names[MASQ_NCMDS] = {"server",  "forward", "gencert",
                                                  "connect", "socks",   "http-proxy"};
/* Config file sections; NULL for subcommands without a config file. */
static const char *const cmd_sections[MASQ_NCMDS] = {"Server",  "Forward", NULL,
                                                     "Connect", "Socks",   "HTTPProxy"};

static const char *cmd_name(masq_cmd cmd) {
  return (unsigned)cmd < MASQ_NCMDS ? cmd_names[cmd] : "?";
}

/* Renders a user-supplied value for an error line: control bytes become
 * \xNN so a hostile config cannot inject terminal escapes, and long values
 * are cut so the reason stays on one readable line. */
static const char *render(char *buf, size_t cap, const char *s, int quote) {
  static const char hex[] = "0123456789abcdef";
  size_t n = 0;
  if (cap < 8) return "";
  if (quote) buf[n++] = '"';
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (n + 8 >= cap) {
      memcpy(buf + n, "...", 3);
      n += 3;
      break;
    }
    if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' || ch == '\'') {
      buf[n++] = '\\';
      buf[n++] = 'x';
      buf[n++] = hex[ch >> 4];
      buf[n++] = hex[ch & 15];
    } else {
      buf[n++] = (char)ch;
    }
  }
  if (quote) buf[n++] = '"';
  buf[n] = '\0';
  return buf;
}

static const char *show(char *buf, size_t cap, const char *s) {
  return render(buf, cap, s, 1);
}

static const char *bare(char *buf, size_t cap, const char *s) {
  return render(buf, cap, s, 0);
}

#define SHOWCAP 96

static int has_ctl(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
  return 0;
}

/* ---- checks of single values ---- */

static int check_listen(const char *label, const char *val, char *err, size_t cap) {
  char host[MASQ_FWD_HOST_MAX];
  uint16_t port;
  char q[SHOWCAP];
  if (masq_hostport_parse(val, host, sizeof(host), &port, -1, 0) != 0 || host[0] == '\0') {
    masq_errf(err, cap, "%s needs ADDR:PORT (e.g. [::]:443 or 0.0.0.0:443), got %s", label,
         show(q, sizeof(q), val));
    return 0;
  }
  return 1;
}

/* "https://HOST[:PORT]" with at most a bare "/" after it: the path of
 * each request comes from the URI template, not from here. */
static int check_proxy(const char *label, const char *val, char *err, size_t cap) {
  char auth[MASQ_FWD_HOST_MAX + 16];
  char host[MASQ_FWD_HOST_MAX];
  uint16_t port;
  char q[SHOWCAP];
  size_t n;
  if (strncasecmp(val, "https://", 8) != 0) goto bad;
  n = strlen(val + 8);
  if (n > 0 && val[8 + n - 1] == '/') n--;
  if (n == 0 || n >= sizeof(auth)) goto bad;
  memcpy(auth, val + 8, n);
  auth[n] = '\0';
  if (strpbrk(auth, "/?#@") != NULL) goto bad;
  if (masq_hostport_parse(auth, host, sizeof(host), &port, 443, 0) != 0 || host[0] == '\0')
    goto bad;
  return 1;
bad:
  masq_errf(err, cap, "%s needs https://HOST[:PORT], got %s", label, show(q, sizeof(q), val));
  return 0;
}

/* The same expansion the client does, so a template that cannot work is
 * refused at startup instead of on the first tunnel. */
static int check_template(const char *label, const char *val, char *err, size_t cap) {
  static const masq_tvar vars[] = {
      {"proxy", "proxy.example"}, {"target_host", "192.0.2.1"}, {"target_port", "53"}};
  char out[2048];
  char q[SHOWCAP];
  if (strncasecmp(val, "https://", 8) != 0 || strstr(val, "target_host") == NULL ||
      strstr(val, "target_port") == NULL ||
      masq_uritemplate_expand(val, vars, sizeof(vars) / sizeof(vars[0]), out, sizeof(out)) < 0) {
    masq_errf(err, cap, "%s needs an https URI template with {target_host} and {target_port}, got %s",
         label, show(q, sizeof(q), val));
    return 0;
  }
  return 1;
}

static int check_ip_template(const char *label, const char *val, char *err, size_t cap) {
  static const masq_tvar vars[] = {{"proxy", "proxy.example"}, {"target", "*"}, {"ipproto", "*"}};
  char out[2048];
  char q[SHOWCAP];
  if (strncasecmp(val, "https://", 8) != 0 ||
      masq_uritemplate_expand(val, vars, sizeof(vars) / sizeof(vars[0]), out, sizeof(out)) < 0) {
    masq_errf(err, cap, "%s needs an https URI template (RFC 9484 §3), got %s", label,
              show(q, sizeof(q), val));
    return 0;
  }
  return 1;
}

static int check_ifname(const char *label, const char *val, char *err, size_t cap) {
  char q[SHOWCAP];
  size_t n = strlen(val);
  if (n == 0 || n > MASQ_IFNAME_MAX || strpbrk(val, "/: \t") != NULL || !strcmp(val, ".") ||
      !strcmp(val, "..")) {
    masq_errf(err, cap, "%s: %s is not an interface name (1-15 characters, no / : or spaces)",
              label, show(q, sizeof(q), val));
    return 0;
  }
  return 1;
}

/* RFC 9484 §4.6: "*" or a decimal integer 0..255. */
static int check_ipproto(const char *label, const char *val, char *err, size_t cap) {
  char q[SHOWCAP];
  if (!strcmp(val, "*")) return 1;
  size_t n = strspn(val, "0123456789");
  unsigned long v;
  if (n > 0 && n <= 3 && val[n] == '\0' && parse_uint(val, &v) == 0 && v <= 255) return 1;
  masq_errf(err, cap, "%s needs * or a protocol number 0..255, got %s", label,
            show(q, sizeof(q), val));
  return 0;
}

static int check_cc(const char *label, const char *val, char *err, size_t cap) {
  char q[SHOWCAP];
  if (!strcmp(val, "bbr") || !strcmp(val, "cubic")) return 1;
  masq_errf(err, cap, "%s needs bbr or cubic, got %s", label, show(q, sizeof(q), val));
  return 0;
}

/* RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
 * "+" / "/" ) *"=" -- anything else could not be sent as a Bearer
 * credential, so it is refused here rather than never matching. */
static int check_token(const char *label, const char *val, char *err, size_t cap) {
  const char *p = val;
  char q[SHOWCAP];
  while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
         (*p && strchr("-._~+/", *p) != NULL))
    p++;
  if (p == val) goto bad;
  while (*p == '=') p++;
  if (*p == '\0') return 1;
bad:
  masq_errf(err, cap,
       "%s: %s is not a valid token (use letters, digits and -._~+/ with optional trailing =)",
       label, show(q, sizeof(q), val));
  return 0;
}

static int dns_name_ok(const char *s) {
  size_t total = strlen(s), label = 0;
  if (total == 0 || total > 253) return 0;
  if (strncmp(s, "*.", 2) == 0) s += 2; /* a wildcard only as the whole leftmost label */
  if (*s == '\0') return 0;
  for (const char *p = s;; p++) {
    if (*p == '.' || *p == '\0') {
      if (label == 0 || label > 63 || p[-1] == '-' || p[-label] == '-') return 0;
      if (*p == '\0') return 1;
      label = 0;
    } else if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
               (*p >= '0' && *p <= '9') || *p == '-') {
      label++;
    } else {
      return 0;
    }
  }
}

static int check_name(const char *label, const char *val, char *err, size_t cap) {
  masq_ip ip;
  char q[SHOWCAP];
  if (masq_ip_parse(val, &ip) == 0 || dns_name_ok(val)) return 1;
  masq_errf(err, cap, "%s: %s is not a DNS name or IP address", label, show(q, sizeof(q), val));
  return 0;
}

/* ---- setters, shared by flags and config keys ---- */

static void *field(masq_opts *o, size_t off) {
  return (char *)o + off;
}

static int parse_uint(const char *s, unsigned long *out) {
  char *end;
  /* strtoul alone would take leading blanks, a sign and an empty string. */
  if (s[0] < '0' || s[0] > '9') return -1;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno != 0 || *end != '\0') return -1;
  *out = v;
  return 0;
}

static int set_string(char *dst, size_t size, const char *label, const char *val, char *err,
                      size_t cap) {
  size_t n = strlen(val);
  if (n >= size) return masq_errf(err, cap, "%s: value longer than %zu characters", label, size - 1);
  memcpy(dst, val, n + 1);
  return 0;
}

/* Says why s is not a prefix: most often host bits below the length, and
 * then the prefix that was probably meant. */
static int cidr_error(const char *label, const char *s, char *err, size_t cap) {
  char addr[64], q[SHOWCAP], fixed[64];
  const char *slash = strchr(s, '/');
  size_t alen = slash ? (size_t)(slash - s) : strlen(s);
  masq_ip ip;
  unsigned long plen;
  show(q, sizeof(q), s);
  if (alen >= sizeof(addr)) goto syntax;
  memcpy(addr, s, alen);
  addr[alen] = '\0';
  if (masq_ip_parse(addr, &ip) != 0)
    return masq_errf(err, cap, "%s: %s is not a CIDR prefix (bad address)", label, q);
  unsigned bits = ip.family == 4 ? 32 : 128;
  if (slash == NULL) goto syntax;
  if (parse_uint(slash + 1, &plen) != 0 || plen > bits)
    return masq_errf(err, cap, "%s: %s is not a CIDR prefix (length must be 0..%u)", label, q, bits);
  for (unsigned i = (unsigned)plen; i < bits; i++) ip.a[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
  if (masq_ip_format(&ip, fixed, sizeof(fixed)) != NULL)
    return masq_errf(err, cap, "%s: %s is not a CIDR prefix (host bits set; did you mean %s/%lu?)",
                label, q, fixed, plen);
syntax:
  return masq_errf(err, cap, "%s: %s is not a CIDR prefix (want ADDR/LEN, e.g. 10.0.0.0/8)", label, q);
}

/* Applies one value to the option d; label is how the user named it
 * ("--allow" or "Allow") so the error points at what they typed. */
static int opt_apply(masq_opts *o, const struct opt *d, const char *label, const char *val,
                     char *err, size_t cap) {
  char q[SHOWCAP];
  if (has_ctl(val)) return masq_errf(err, cap, "%s: value contains a control character", label);
  if (val[0] == '\0' && d->type != T_FLAG)
    return masq_errf(err, cap, "%s needs %s, got \"\"", label, d->metavar ? d->metavar : "a value");
  switch (d->type) {
    case T_STR:
    case T_PATH: {
      if (d->check && !d->check(label, val, err, cap)) return -1;
      return set_string(field(o, d->off), d->size, label, val, err, cap);
    }
    case T_UINT: {
      unsigned long v;
      if (parse_uint(val, &v) != 0 || v < d->min || v > d->max)
        return masq_errf(err, cap, "%s needs %s in %u..%u, got %s", label, d->metavar, d->min, d->max,
                    show(q, sizeof(q), val));
      *(unsigned *)field(o, d->off) = (unsigned)v;
      return 0;
    }
    case T_CIDR:
      if (masq_cidr_parse(val, field(o, d->off)) != 0) return cidr_error(label, val, err, cap);
      return 0;
    case T_STRLIST:
    case T_CIDRS:
    case T_ADDRS:
    case T_FWDS: {
      size_t *n = field(o, d->noff);
      if (*n >= d->size / d->esize)
        return masq_errf(err, cap, "%s: at most %zu allowed", label, d->size / d->esize);
      void *slot = (char *)field(o, d->off) + *n * d->esize;
      if (d->type == T_STRLIST) {
        if (d->check && !d->check(label, val, err, cap)) return -1;
        if (set_string(slot, d->esize, label, val, err, cap) != 0) return -1;
      } else if (d->type == T_CIDRS) {
        if (masq_cidr_parse(val, slot) != 0) return cidr_error(label, val, err, cap);
      } else if (d->type == T_ADDRS) {
        masq_cidr *c = slot;
        if (masq_ip_parse(val, &c->ip) == 0) {
          c->plen = c->ip.family == 4 ? 32 : 128;
        } else if (masq_cidr_parse(val, c) != 0) {
          return cidr_error(label, val, err, cap);
        }
      } else if (masq_fwdspec_parse(val, slot) != 0) {
        return masq_errf(err, cap, "%s needs %s, got %s", label, d->metavar, show(q, sizeof(q), val));
      }
      (*n)++;
      return 0;
    }
    case T_FLAG: /* only reached from the config file; flags set 1 directly */
      if (!strcasecmp(val, "true") || !strcasecmp(val, "yes") || !strcasecmp(val, "on") ||
          !strcmp(val, "1")) {
        *(int *)field(o, d->off) = 1;
      } else if (!strcasecmp(val, "false") || !strcasecmp(val, "no") ||
                 !strcasecmp(val, "off") || !strcmp(val, "0")) {
        *(int *)field(o, d->off) = 0;
      } else {
        return masq_errf(err, cap, "%s needs true or false, got %s", label, show(q, sizeof(q), val));
      }
      return 0;
    case T_COUNT:
    case T_CONFIG:
    case T_HELP:
      break;
  }
  return 0;
}

static int takes_value(const struct opt *d) {
  return d->type != T_FLAG && d->type != T_COUNT && d->type != T_HELP;
}

/* ---- lookups ---- */

static const struct opt *find_long(const char *name, size_t len, masq_cmd cmd, int *elsewhere) {
  *elsewhere = -1;
  for (size_t i = 0; i < NOPTS; i++) {
    if (strlen(opts[i].name) != len || memcmp(opts[i].name, name, len) != 0) continue;
    if (opts[i].cmds & (1u << cmd)) return &opts[i];
    for (int c = 0; c < MASQ_NCMDS && *elsewhere < 0; c++)
      if (opts[i].cmds & (1u << c)) *elsewhere = c;
  }
  return NULL;
}

static const struct opt *find_short(char ch, masq_cmd cmd) {
  for (size_t i = 0; i < NOPTS; i++)
    if (opts[i].shortname == ch && (opts[i].cmds & (1u << cmd))) return &opts[i];
  return NULL;
}

/* Config keys match the long name case-insensitively with or without its
 * dashes, so "UDPTemplate", "UdpTemplate" and "udp-template" all work. */
static int key_matches(const char *key, const char *name) {
  for (;;) {
    while (*key == '-' || *key == '_') key++;
    while (*name == '-') name++;
    if (*key == '\0' || *name == '\0') return *key == *name;
    char a = *key, b = *name;
    if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
    if (a != b) return 0;
    key++;
    name++;
  }
}

static const struct opt *find_key(const char *key, masq_cmd cmd) {
  for (size_t i = 0; i < NOPTS; i++)
    if (opts[i].ini && (opts[i].cmds & (1u << cmd)) && key_matches(key, opts[i].name))
      return &opts[i];
  return NULL;
}

/* ---- config file ---- */

/* inih hands each line to the handler through a fixed buffer (200 bytes
 * in the distribution builds), which is shorter than a path may be. The
 * reader below feeds inih one physical line at a time, so it also knows
 * the line number the handler is working on; a longer "Key = value" line
 * reaches inih as "Key = <LONG>" and the handler takes the real value from
 * the source text. The reader also drops leading blanks: inih would take
 * an indented line as the continuation of the previous value, so an
 * indented "Cert = x" would become part of the key above it. */
#define LONG_MARK "\x01"

struct ini_ctx {
  masq_opts *o;
  const char *p; /* next unread byte of the text */
  int line;      /* number of the line last handed to inih */
  const char *long_val; /* raw value of the current line if it was too long */
  size_t long_len;
  int errline; /* first line with an error we diagnosed, or 0 */
  char msg[512];
  char longbuf[MASQ_PATH_MAX + 1]; /* the value of an over-long line */
};

static int ctx_fail_line(struct ini_ctx *c, const char *why) {
  if (c->errline == 0) {
    c->errline = c->line;
    snprintf(c->msg, sizeof(c->msg), "%s", why);
  }
  return 0;
}

/* A line longer than inih's buffer (len > room, leading blanks gone). */
static char *shorten_line(struct ini_ctx *c, char *buf, size_t room, const char *s, size_t len) {
  const char *end = s + len;
  const char *eq = s;
  while (eq < end && *eq != '=' && *eq != ':' && *eq != '\n') eq++;
  size_t keylen = (size_t)(eq - s) + 1; /* with the '=' */
  if (*s == ';' || *s == '#') {
    snprintf(buf, room + 1, "%s", "#\n"); /* a comment: its text does not matter */
    return buf;
  }
  if (*s != '[' && eq < end && *eq != '\n' && keylen + sizeof(LONG_MARK) + 1 <= room) {
    memcpy(buf, s, keylen);
    memcpy(buf + keylen, LONG_MARK "\n", sizeof(LONG_MARK) + 1);
    c->long_val = eq + 1;
    c->long_len = (size_t)(end - (eq + 1));
    return buf;
  }
  ctx_fail_line(c, "line too long");
  snprintf(buf, room + 1, "%s", "# too long\n");
  return buf;
}

static char *ini_read_line(char *buf, int num, void *stream) {
  struct ini_ctx *c = stream;
  if (*c->p == '\0' || num < 16) return NULL;
  const char *s = c->p;
  const char *nl = strchr(s, '\n');
  size_t len = nl ? (size_t)(nl - s) + 1 : strlen(s);
  size_t room = (size_t)num - 1;
  c->p = s + len;
  while (len > 1 && (*s == ' ' || *s == '\t')) {
    s++;
    len--;
  }
  c->line++;
  c->long_val = NULL;
  if (len <= room) {
    memcpy(buf, s, len);
    buf[len] = '\0';
    return buf;
  }
  return shorten_line(c, buf, room, s, len);
}

/* What inih would have made of the value part of an over-long line:
 * blanks trimmed and a " ;comment" dropped. */
static int long_value(struct ini_ctx *c, char *out, size_t cap) {
  const char *v = c->long_val, *end = c->long_val + c->long_len;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  for (const char *p = v + 1; p < end; p++)
    if (*p == ';' && (p[-1] == ' ' || p[-1] == '\t')) {
      end = p;
      break;
    }
  while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
    end--;
  if ((size_t)(end - v) >= cap) return -1;
  memcpy(out, v, (size_t)(end - v));
  out[end - v] = '\0';
  return 0;
}

static int section_cmd(const char *section) {
  for (int i = 0; i < MASQ_NCMDS; i++)
    if (cmd_sections[i] && strcasecmp(section, cmd_sections[i]) == 0) return i;
  return -1;
}

static int ini_on_pair(void *user, const char *section, const char *name, const char *value) {
  struct ini_ctx *c = user;
  char why[sizeof(c->msg)], q[SHOWCAP], qs[SHOWCAP];
  if (c->errline) return 1; /* report only the first error */
  int scmd = section_cmd(section);
  if (section[0] == '\0') {
    snprintf(why, sizeof(why),
             "'%s' is outside a section; put it under [Server], [Forward] or [Connect]",
             bare(q, sizeof(q), name));
    return ctx_fail_line(c, why);
  }
  if (scmd < 0) {
    snprintf(why, sizeof(why), "unknown section [%s] (use [Server], [Forward] or [Connect])",
             bare(qs, sizeof(qs), section));
    return ctx_fail_line(c, why);
  }
  const char *canon = cmd_sections[scmd];
  const struct opt *d = find_key(name, (masq_cmd)scmd);
  if (d == NULL) {
    snprintf(why, sizeof(why), "unknown key '%s' in [%s]", bare(q, sizeof(q), name), canon);
    return ctx_fail_line(c, why);
  }
  if (c->long_val != NULL && strcmp(value, LONG_MARK) == 0) {
    if (long_value(c, c->longbuf, sizeof(c->longbuf)) != 0) {
      snprintf(why, sizeof(why), "%s: value longer than %d characters", d->ini, MASQ_PATH_MAX);
      return ctx_fail_line(c, why);
    }
    value = c->longbuf;
  }
  /* A file may hold both sections; only this subcommand's is applied,
   * the other's keys are still checked so a typo there is not silent. */
  if ((masq_cmd)scmd != c->o->cmd) return 1;
  if (opt_apply(c->o, d, d->ini, value, why, sizeof(why)) != 0) return ctx_fail_line(c, why);
  return 1;
}

static int load_text(masq_opts *o, const char *src, const char *text, char *err, size_t cap) {
  struct ini_ctx c = {.o = o, .p = text};
  int r = ini_parse_stream(ini_read_line, &c, ini_on_pair, &c);
  if (c.errline && (r <= 0 || r >= c.errline))
    return masq_errf(err, cap, "%s:%d: %s", src, c.errline, c.msg);
  if (r > 0) return masq_errf(err, cap, "%s:%d: expected [Section] or Key = Value", src, r);
  if (r < 0) return masq_errf(err, cap, "%s: cannot parse (out of memory)", src);
  return 0;
}

int masq_opts_load_string(masq_opts *o, const char *text, char *err, size_t errcap) {
  return load_text(o, "<config>", text, err, errcap);
}

#define CONFIG_MAX (1u << 20)

int masq_opts_load_file(masq_opts *o, const char *path, char *err, size_t errcap) {
  FILE *f = fopen(path, "re");
  if (f == NULL) return masq_errf(err, errcap, "%s: cannot open: %s", path, strerror(errno));
  char *text = malloc(CONFIG_MAX + 1);
  if (text == NULL) {
    fclose(f);
    return masq_errf(err, errcap, "%s: out of memory", path);
  }
  size_t n = fread(text, 1, CONFIG_MAX + 1, f);
  int rerr = ferror(f) ? (errno ? errno : EIO) : 0;
  fclose(f);
  int r;
  if (rerr != 0) {
    r = masq_errf(err, errcap, "%s: cannot read: %s", path, strerror(rerr));
  } else if (n > CONFIG_MAX) {
    r = masq_errf(err, errcap, "%s: larger than %u bytes; is it the right file?", path, CONFIG_MAX);
  } else if (memchr(text, '\0', n) != NULL) {
    r = masq_errf(err, errcap, "%s: contains a NUL byte; is it a text file?", path);
  } else {
    text[n] = '\0';
    r = load_text(o, path, text, err, errcap);
  }
  free(text);
  if (r == 0 && set_string(o->config, sizeof(o->config), "--config", path, err, errcap) != 0)
    r = -1;
  return r;
}

/* ---- command line ---- */

void masq_opts_init(masq_opts *o, masq_cmd cmd) {
  memset(o, 0, sizeof(*o));
  o->cmd = cmd;
  /* The local proxies listen on loopback only unless told otherwise:
   * anyone who can reach them can use the tunnel. */
  const char *listen = cmd == MASQ_CMD_SOCKS        ? "127.0.0.1:1080"
                       : cmd == MASQ_CMD_HTTP_PROXY ? "127.0.0.1:8080"
                                                    : "[::]:443";
  snprintf(o->listen, sizeof(o->listen), "%s", listen);
  snprintf(o->udp_template, sizeof(o->udp_template), "%s", MASQ_DEFAULT_UDP_TEMPLATE);
  snprintf(o->ip_template, sizeof(o->ip_template), "%s", MASQ_DEFAULT_IP_TEMPLATE);
  snprintf(o->tun, sizeof(o->tun), "%s", cmd == MASQ_CMD_SERVER ? "masqs0" : "masq0");
  masq_cidr_parse("10.89.0.0/24", &o->pool4);
  masq_cidr_parse("fd6d:6173:7100::/64", &o->pool6);
  snprintf(o->target, sizeof(o->target), "%s", "*");
  snprintf(o->ipproto, sizeof(o->ipproto), "%s", "*");
  snprintf(o->cc, sizeof(o->cc), "%s", "bbr");
  o->fwmark = 0x6d71;
  o->idle_timeout = 120;
  o->max_tunnels = 256;
  o->max_conns = 1024;
  o->connect_timeout = 10;
  snprintf(o->out_cert, sizeof(o->out_cert), "%s", "cert.pem");
  snprintf(o->out_key, sizeof(o->out_key), "%s", "key.pem");
  o->days = 365;
}

/* One step of the walk over argv: which option argv[*i] is and its value
 * (consuming the next argument if needed). Returns 0, 1 at a positional
 * argument, or -1 with err set. Bundled short flags ("-vv") are handled
 * by the caller through *bundle. */
struct argstep {
  const struct opt *d;
  const char *val;
  char label[64];
};

static int unknown(masq_cmd cmd, const char *what, size_t len, int elsewhere, char *err,
                   size_t cap) {
  char q[SHOWCAP], name[SHOWCAP];
  snprintf(name, sizeof(name), "%.*s", (int)(len < 64 ? len : 64), what);
  if (elsewhere >= 0)
    return masq_errf(err, cap, "%s is for masq %s, not masq %s", name, cmd_name((masq_cmd)elsewhere),
                cmd_name(cmd));
  return masq_errf(err, cap, "unknown option %s (see masq %s --help)", bare(q, sizeof(q), name),
              cmd_name(cmd));
}

static int step_long(masq_cmd cmd, int argc, char **argv, int *i, struct argstep *st, char *err,
                     size_t cap) {
  const char *a = argv[*i] + 2;
  const char *eq = strchr(a, '=');
  size_t len = eq ? (size_t)(eq - a) : strlen(a);
  int elsewhere;
  st->d = find_long(a, len, cmd, &elsewhere);
  if (st->d == NULL) return unknown(cmd, argv[*i], len + 2, elsewhere, err, cap);
  snprintf(st->label, sizeof(st->label), "--%s", st->d->name);
  st->val = NULL;
  if (!takes_value(st->d)) {
    if (eq) return masq_errf(err, cap, "%s takes no value", st->label);
    return 0;
  }
  if (eq) {
    st->val = eq + 1;
  } else if (*i + 1 < argc) {
    st->val = argv[++*i];
  } else {
    return masq_errf(err, cap, "%s needs a value (%s)", st->label, st->d->metavar);
  }
  return 0;
}

/* Short options: "-v", "-vv", "-h"; a short option taking a value would
 * take the rest of the word or the next argument. */
static int step_short(masq_cmd cmd, int argc, char **argv, int *i, size_t *pos,
                      struct argstep *st, char *err, size_t cap) {
  const char *a = argv[*i];
  char ch = a[*pos];
  st->d = find_short(ch, cmd);
  if (st->d == NULL) {
    char flag[3] = {'-', ch, '\0'};
    return unknown(cmd, flag, 2, -1, err, cap);
  }
  snprintf(st->label, sizeof(st->label), "-%c", ch);
  st->val = NULL;
  (*pos)++;
  if (!takes_value(st->d)) return 0;
  if (a[*pos] != '\0') {
    st->val = a + *pos;
  } else if (*i + 1 < argc) {
    st->val = argv[++*i];
  } else {
    return masq_errf(err, cap, "%s needs a value (%s)", st->label, st->d->metavar);
  }
  *pos = strlen(a);
  return 0;
}

/* The walk over argv, shared by both passes: the first (lenient) only
 * looks for --config and --help and skips anything wrong, which the
 * second pass then reports; the second applies everything else. */
typedef int (*step_fn)(masq_opts *o, const struct argstep *st, void *arg, char *err, size_t cap);

static int walk(masq_opts *o, int argc, char **argv, step_fn fn, void *arg, int lenient,
                char *err, size_t cap) {
  char q[SHOWCAP];
  int ddash = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    struct argstep st;
    if (!ddash && strcmp(a, "--") == 0) {
      ddash = 1;
      continue;
    }
    if (ddash || a[0] != '-' || a[1] == '\0') {
      if (lenient) continue;
      return masq_errf(err, cap, "unexpected argument %s (see masq %s --help)", show(q, sizeof(q), a),
                  cmd_name(o->cmd));
    }
    if (a[1] == '-') {
      if (step_long(o->cmd, argc, argv, &i, &st, err, cap) != 0) {
        if (lenient) continue;
        return -1;
      }
      if (fn(o, &st, arg, err, cap) != 0) return -1;
      continue;
    }
    size_t pos = 1;
    int at = i;
    while (i == at && a[pos] != '\0') {
      if (step_short(o->cmd, argc, argv, &i, &pos, &st, err, cap) != 0) {
        if (lenient) break;
        return -1;
      }
      if (fn(o, &st, arg, err, cap) != 0) return -1;
    }
  }
  return 0;
}

struct prescan {
  const char *config;
  int help, twice;
};

static int prescan_step(masq_opts *o, const struct argstep *st, void *arg, char *err,
                        size_t cap) {
  struct prescan *ps = arg;
  (void)o;
  (void)err;
  (void)cap;
  if (st->d->type == T_HELP) ps->help = 1;
  if (st->d->type == T_CONFIG) {
    if (ps->config) ps->twice = 1;
    ps->config = st->val;
  }
  return 0;
}

static int apply_step(masq_opts *o, const struct argstep *st, void *arg, char *err,
                      size_t cap) {
  (void)arg;
  switch (st->d->type) {
    case T_CONFIG:
    case T_HELP:
      return 0; /* done by the first pass */
    case T_FLAG:
      *(int *)field(o, st->d->off) = 1;
      return 0;
    case T_COUNT:
      (*(int *)field(o, st->d->off))++;
      return 0;
    default:
      return opt_apply(o, st->d, st->label, st->val, err, cap);
  }
}

static int check_server(masq_opts *o, char *err, size_t cap) {
  if (o->cert[0] == '\0' || o->key[0] == '\0')
    return masq_errf(err, cap, "server needs --cert and --key (masq gencert makes a test pair)");
  if (o->no_auth && o->ntokens > 0)
    return masq_errf(err, cap,
                "--no-auth conflicts with tokens (given by --token or Token=); drop one");
  if (!o->no_auth && o->ntokens == 0)
    return masq_errf(err, cap,
                "no tokens: give --token or Token= in the config, or --no-auth to run an open "
                "proxy");
  if (o->pool4.ip.family != 4 || o->pool4.plen > 30)
    return masq_errf(err, cap, "--pool4 needs an IPv4 prefix of /30 or shorter");
  if (o->pool6.ip.family != 6 || o->pool6.plen > 126)
    return masq_errf(err, cap, "--pool6 needs an IPv6 prefix of /126 or shorter");
  return 0;
}

static int check_connect(masq_opts *o, char *err, size_t cap) {
  if (o->proxy[0] == '\0') return masq_errf(err, cap, "connect needs --proxy https://HOST[:PORT]");
  if (o->ca[0] != '\0' && o->insecure)
    return masq_errf(err, cap,
                     "--ca and --insecure conflict: --ca verifies the proxy against FILE, "
                     "--insecure skips verification; give one");
  if (o->nrequest_addr == 2 && o->request_addr[0].ip.family == o->request_addr[1].ip.family)
    return masq_errf(err, cap, "--request-address: give at most one IPv4 and one IPv6 address");
  if (o->target[0] == '\0' || strpbrk(o->target, " \t"))
    return masq_errf(err, cap, "--target needs *, a host name, an address or a prefix");
  return 0;
}

/* What every client needs: a proxy, and a clear choice of trust. */
static int check_client(masq_opts *o, char *err, size_t cap) {
  if (o->proxy[0] == '\0')
    return masq_errf(err, cap, "%s needs --proxy https://HOST[:PORT]", cmd_name(o->cmd));
  if (o->ca[0] != '\0' && o->insecure)
    return masq_errf(err, cap,
                "--ca and --insecure conflict: --ca verifies the proxy against FILE, "
                "--insecure skips verification; give one");
  return 0;
}

static int check_dups(const masq_fwdspec *v, size_t n, const char *flag, char *err, size_t cap) {
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < i; j++)
      if (v[i].port == v[j].port && strcmp(v[i].bind, v[j].bind) == 0)
        return masq_errf(err, cap, "%s: local %s port %u is forwarded twice", flag, v[i].bind,
                    (unsigned)v[i].port);
  return 0;
}

static int check_forward(masq_opts *o, char *err, size_t cap) {
  if (check_client(o, err, cap) != 0) return -1;
  if (o->nudp == 0 && o->ntcp == 0)
    return masq_errf(err, cap,
                     "forward needs at least one --udp or --tcp [BIND:]PORT:HOST:HOSTPORT");
  if (check_dups(o->udp, o->nudp, "--udp", err, cap) != 0 ||
      check_dups(o->tcp, o->ntcp, "--tcp", err, cap) != 0)
    return -1;
  return 0;
}

static int check_socks(masq_opts *o, char *err, size_t cap) {
  if (check_client(o, err, cap) != 0) return -1;
  if ((o->socks_user[0] == '\0') != (o->socks_password[0] == '\0'))
    return masq_errf(err, cap, "--user and --password go together: give both or neither");
  /* RFC 1929 §2: each is sent with a one-byte length. */
  if (strlen(o->socks_user) > 255 || strlen(o->socks_password) > 255)
    return masq_errf(err, cap, "--user and --password: at most 255 bytes each (RFC 1929)");
  return 0;
}

int masq_opts_parse(masq_opts *o, int argc, char **argv, char *err, size_t errcap) {
  struct prescan ps = {0};
  char ignored[8];
  /* --help wins over any mistake elsewhere on the line, and the config
   * must be in place before flags override it. */
  if (walk(o, argc, argv, prescan_step, &ps, 1, ignored, sizeof(ignored)) != 0) return -1;
  if (ps.help) {
    masq_opts_usage(o->cmd, stdout);
    return 1;
  }
  if (ps.twice) return masq_errf(err, errcap, "--config given twice; give one file");
  if (ps.config && masq_opts_load_file(o, ps.config, err, errcap) != 0) return -1;
  if (walk(o, argc, argv, apply_step, NULL, 0, err, errcap) != 0) return -1;
  switch (o->cmd) {
    case MASQ_CMD_SERVER:
      return check_server(o, err, errcap);
    case MASQ_CMD_FORWARD:
      return check_forward(o, err, errcap);
    case MASQ_CMD_CONNECT:
      return check_connect(o, err, errcap);
    case MASQ_CMD_SOCKS:
      return check_socks(o, err, errcap);
    case MASQ_CMD_HTTP_PROXY:
      return check_client(o, err, errcap);
    case MASQ_CMD_GENCERT:
      if (o->nnames == 0) {
        snprintf(o->names[0], sizeof(o->names[0]), "%s", "localhost");
        o->nnames = 1;
      }
      return 0;
  }
  return masq_errf(err, errcap, "unknown subcommand");
}

/* ---- usage ---- */

/* Each entry is one string of several lines (parenthesised so the
 * concatenation is visibly on purpose). */
static const char *const synopsis[] = {
    ("masq server [options] --cert FILE --key FILE (--token T... | --no-auth)\n"
     "Runs a MASQUE proxy: HTTP/3 CONNECT-UDP (RFC 9298) to the targets clients\n"
     "ask for, and CONNECT-IP (RFC 9484): a VPN gateway with address pools."),
    ("masq forward [options] --proxy https://HOST[:PORT]\n"
     "                    (--udp | --tcp) [BIND:]PORT:HOST:HOSTPORT...\n"
     "Listens on local UDP and TCP ports and relays each one to its target through the\n"
     "proxy (CONNECT-UDP for UDP, a plain CONNECT per TCP connection)."),
    ("masq gencert [--cert FILE] [--key FILE] [--name DNS-or-IP]... [--days N]\n"
     "Writes a self-signed ECDSA P-256 certificate and key for testing."),
    ("masq connect [options] --proxy https://HOST[:PORT]\n"
     "Brings up a VPN: a TUN device whose IP packets travel through the proxy with\n"
     "CONNECT-IP (RFC 9484), with the addresses and routes the proxy assigns."),
    ("masq socks [options] --proxy https://HOST[:PORT]\n"
     "A local SOCKS5 proxy (RFC 1928): CONNECT through plain CONNECT streams and UDP\n"
     "ASSOCIATE through CONNECT-UDP, all over one QUIC connection to the proxy."),
    ("masq http-proxy [options] --proxy https://HOST[:PORT]\n"
     "A local HTTP/1.1 proxy: CONNECT tunnels and http:// requests, each carried by a\n"
     "plain CONNECT stream over one QUIC connection to the proxy."),
};

#define HELP_COL 34
#define HELP_WIDTH 79

/* Prints text word-wrapped to HELP_WIDTH, continuation lines indented to
 * col; the cursor is at column `at` on entry. */
static void wrap(FILE *f, const char *text, size_t at, size_t col) {
  while (*text) {
    size_t w = strcspn(text, " ");
    if (at > col && at + 1 + w > HELP_WIDTH) {
      fprintf(f, "\n%*s", (int)col, "");
      at = col;
    } else if (at > col) {
      fputc(' ', f);
      at++;
    }
    fprintf(f, "%.*s", (int)w, text);
    at += w;
    text += w;
    while (*text == ' ') text++;
  }
  fputc('\n', f);
}

static int is_list(const struct opt *d) {
  return d->type == T_STRLIST || d->type == T_CIDRS || d->type == T_ADDRS || d->type == T_FWDS;
}

void masq_opts_usage(masq_cmd cmd, FILE *f) {
  if ((unsigned)cmd >= MASQ_NCMDS) return;
  fprintf(f, "Usage: %s\n\nOptions:\n", synopsis[cmd]);
  for (size_t i = 0; i < NOPTS; i++) {
    const struct opt *d = &opts[i];
    if (!(d->cmds & (1u << cmd))) continue;
    char left[128];
    if (d->shortname)
      snprintf(left, sizeof(left), "  -%c, --%s%s%s", d->shortname, d->name,
               d->metavar ? " " : "", d->metavar ? d->metavar : "");
    else
      snprintf(left, sizeof(left), "      --%s%s%s", d->name, d->metavar ? " " : "",
               d->metavar ? d->metavar : "");
    if (strlen(left) + 2 > HELP_COL)
      fprintf(f, "%s\n%*s", left, HELP_COL, "");
    else
      fprintf(f, "%-*s", HELP_COL, left);
    wrap(f, d->help, HELP_COL, HELP_COL);
  }
  if (cmd == MASQ_CMD_GENCERT) return;
  /* The config keys, and which of them may repeat, from the same table. */
  char keys[1024], reps[512];
  size_t kn = 0, rn = 0;
  keys[0] = reps[0] = '\0';
  for (size_t i = 0; i < NOPTS; i++) {
    const struct opt *d = &opts[i];
    if (!d->ini || !(d->cmds & (1u << cmd))) continue;
    int w = snprintf(keys + kn, sizeof(keys) - kn, " %s", d->ini);
    if (w > 0 && (size_t)w < sizeof(keys) - kn) kn += (size_t)w;
    if (!is_list(d)) continue;
    w = snprintf(reps + rn, sizeof(reps) - rn, "%s%s", rn ? ", " : "", d->ini);
    if (w > 0 && (size_t)w < sizeof(reps) - rn) rn += (size_t)w;
  }
  char tail[2048];
  if (rn)
    snprintf(tail, sizeof(tail),
             "Config file keys, in section [%s]:%s. %s may repeat. Flags on the command line "
             "override single values and add to repeated ones.",
             cmd_sections[cmd], keys, reps);
  else
    snprintf(tail, sizeof(tail),
             "Config file keys, in section [%s]:%s. Flags on the command line override them.",
             cmd_sections[cmd], keys);
  fputc('\n', f);
  wrap(f, tail, 0, 0);
}
