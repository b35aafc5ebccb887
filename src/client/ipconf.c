/* Host network configuration for masq connect; see ipconf.h for the
 * routing design and the crash-recovery contract. */
#include "client/ipconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/log.h"
#include "io/netlink.h"

#define RULE_SUPPRESS 1u
#define RULE_TUNNEL 2u
#define RESOLV_MAX 65536
#define SVM_PATH "/proc/sys/net/ipv4/conf/all/src_valid_mark"

static int fam_idx(int family) { return family == 4 ? 0 : 1; }

static const char *nl_why(void) {
  const char *m = masq_nl_errmsg();
  return m[0] ? m : strerror(errno);
}

/* ---- small file helpers ------------------------------------------------- */

static ssize_t read_file(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = 0;
  while (n < cap) {
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fd);
  return (ssize_t)n;
}

/* Truncates and writes in place (no rename: see masq_ipconf_set_dns). */
static int write_file(const char *path, const char *buf, size_t len, int mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return -1;
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, buf + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    off += (size_t)w;
  }
  if (fsync(fd) != 0 && errno != EINVAL) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return close(fd);
}

/* The state file is named after the network namespace's inode so that
 * namespaces sharing /run never undo each other's configuration. */
static int state_paths(const char *tun, char *state, char *backup, size_t cap) {
  struct stat st;
  if (stat("/proc/self/ns/net", &st) != 0) return -1;
  unsigned long long ino = (unsigned long long)st.st_ino;
  int a = snprintf(state, cap, "%s/%s.%llu.state", MASQ_IPCONF_STATE_DIR, tun, ino);
  int b = snprintf(backup, cap, "%s/%s.%llu.resolv", MASQ_IPCONF_STATE_DIR, tun, ino);
  return a > 0 && (size_t)a < cap && b > 0 && (size_t)b < cap ? 0 : -1;
}

/* ---- the state file ------------------------------------------------------ */

/* Rewrites the state file from ic, or removes it when nothing needs
 * undoing. Written before the change it protects takes effect where
 * possible (see callers), so a crash in between leaves at worst an entry
 * whose undo fails harmlessly (ENOENT). */
static int state_save(const masq_ipconf *ic) {
  char buf[1024];
  size_t n = 0;
  for (int f = 0; f < 2; f++) {
    int fam = f == 0 ? 4 : 6;
    if (ic->rules[f] & RULE_SUPPRESS)
      n += (size_t)snprintf(buf + n, sizeof(buf) - n, "rule-suppress %d %u\n", fam,
                            MASQ_IPCONF_PRIO_SUPPRESS);
    if (ic->rules[f] & RULE_TUNNEL)
      n += (size_t)snprintf(buf + n, sizeof(buf) - n, "rule-tunnel %d %u %u\n", fam,
                            (unsigned)ic->fwmark, MASQ_IPCONF_PRIO_TUNNEL);
  }
  if (ic->resolv_saved)
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "resolv %s\n", ic->backup_path);
  if (ic->svm_old >= 0) n += (size_t)snprintf(buf + n, sizeof(buf) - n, "svm %d\n", ic->svm_old);
  if (n == 0) {
    if (unlink(ic->state_path) != 0 && errno != ENOENT) return -1;
    return 0;
  }
  if (mkdir(MASQ_IPCONF_STATE_DIR, 0700) != 0 && errno != EEXIST) return -1;
  return write_file(ic->state_path, buf, n, 0600);
}

/* Parses the unsigned decimal at *p and moves past it and one space. */
static int next_uint(const char **p, unsigned long *v) {
  char *end;
  errno = 0;
  *v = strtoul(*p, &end, 10);
  if (end == *p || errno != 0) return -1;
  *p = end;
  while (**p == ' ') (*p)++;
  return 0;
}

static int restore_resolv(const char *backup, char *err, size_t errcap) {
  static char buf[RESOLV_MAX];
  ssize_t n = read_file(backup, buf, sizeof(buf));
  if (n < 0)
    return masq_errf(err, errcap, "cannot read the resolv.conf backup %s: %s", backup,
                     strerror(errno));
  if (write_file(MASQ_IPCONF_RESOLV, buf, (size_t)n, 0644) != 0)
    return masq_errf(err, errcap, "cannot restore %s from %s: %s", MASQ_IPCONF_RESOLV, backup,
                     strerror(errno));
  if (unlink(backup) != 0 && errno != ENOENT)
    masq_log(MASQ_LOG_WARN, "cannot remove %s: %s", backup, strerror(errno));
  return 0;
}

static int write_svm(int v) {
  char s[4];
  int n = snprintf(s, sizeof(s), "%d\n", v);
  int fd = open(SVM_PATH, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t w = write(fd, s, (size_t)n);
  int e = errno;
  close(fd);
  errno = e;
  return w == n ? 0 : -1;
}

/* Undoes one state-file line. Missing rules count as undone. */
static int undo_line(const char *line, char *err, size_t errcap) {
  unsigned long fam, a, b;
  const char *p;
  if (strncmp(line, "rule-suppress ", 14) == 0) {
    p = line + 14;
    if (next_uint(&p, &fam) || next_uint(&p, &a)) goto bad;
    if (masq_nl_rule_suppress((int)fam, 0, (uint32_t)a, 0, 0) != 0 && errno != ENOENT)
      return masq_errf(err, errcap, "cannot delete the IPv%lu suppress rule: %s", fam, nl_why());
    return 0;
  }
  if (strncmp(line, "rule-tunnel ", 12) == 0) {
    p = line + 12;
    if (next_uint(&p, &fam) || next_uint(&p, &a) || next_uint(&p, &b)) goto bad;
    if (masq_nl_rule((int)fam, (uint32_t)a, (uint32_t)a, (uint32_t)b, 1, 0) != 0 &&
        errno != ENOENT)
      return masq_errf(err, errcap, "cannot delete the IPv%lu fwmark rule: %s", fam, nl_why());
    return 0;
  }
  if (strncmp(line, "resolv ", 7) == 0) return restore_resolv(line + 7, err, errcap);
  if (strncmp(line, "svm ", 4) == 0) {
    p = line + 4;
    if (next_uint(&p, &a) || a > 2) goto bad;
    if (write_svm((int)a) != 0)
      return masq_errf(err, errcap, "cannot restore %s: %s", SVM_PATH, strerror(errno));
    return 0;
  }
bad:
  return masq_errf(err, errcap, "unreadable line \"%s\"", line);
}

int masq_ipconf_recover(const char *tun, char *err, size_t errcap) {
  char state[192], backup[192], buf[2048];
  if (state_paths(tun, state, backup, sizeof(state)) != 0)
    return masq_errf(err, errcap, "cannot name the state file: /proc/self/ns/net: %s",
                     strerror(errno));
  ssize_t n = read_file(state, buf, sizeof(buf) - 1);
  if (n < 0) {
    if (errno == ENOENT) return 0;
    return masq_errf(err, errcap, "cannot read %s: %s", state, strerror(errno));
  }
  buf[n] = 0;
  int rc = 0;
  char why[256];
  for (char *line = buf; *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    if (*line && undo_line(line, why, sizeof(why)) != 0) {
      masq_errf(err, errcap, "%s: %s", state, why);
      rc = -1;
    }
    line = nl ? nl + 1 : line + strlen(line);
  }
  if (rc != 0) return rc;
  if (unlink(state) != 0 && errno != ENOENT)
    return masq_errf(err, errcap, "cannot remove %s: %s", state, strerror(errno));
  return 1;
}

/* ---- setup -------------------------------------------------------------- */

int masq_ipconf_init(masq_ipconf *ic, const char *tun, int ifindex, uint32_t fwmark, char *err,
                     size_t errcap) {
  memset(ic, 0, sizeof(*ic));
  ic->svm_old = -1;
  ic->ifindex = ifindex;
  ic->fwmark = fwmark;
  snprintf(ic->tun, sizeof(ic->tun), "%s", tun);
  if (state_paths(tun, ic->state_path, ic->backup_path, sizeof(ic->state_path)) != 0)
    return masq_errf(err, errcap, "cannot name the state file: /proc/self/ns/net: %s",
                     strerror(errno));
  ic->routes = calloc(MASQ_IPCONF_MAX_ROUTES, sizeof(*ic->routes));
  if (!ic->routes) return masq_errf(err, errcap, "out of memory for the route list");
  return 0;
}

int masq_ipconf_link_up(masq_ipconf *ic, int mtu, char *err, size_t errcap) {
  if (masq_nl_link_set(ic->ifindex, 1, mtu) != 0)
    return masq_errf(err, errcap, "cannot set %s up with MTU %d: %s", ic->tun, mtu, nl_why());
  return 0;
}

static int cidr_eq(const masq_cidr *x, const masq_cidr *y) {
  size_t len = x->ip.family == 4 ? 4 : 16;
  return x->ip.family == y->ip.family && x->plen == y->plen && memcmp(x->ip.a, y->ip.a, len) == 0;
}

static int cidr_in(const masq_cidr *c, const masq_cidr *set, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (cidr_eq(c, &set[i])) return 1;
  return 0;
}

static const char *cidr_str(const masq_cidr *c, char *out, size_t cap) {
  char ip[64];
  if (!masq_ip_format(&c->ip, ip, sizeof(ip))) snprintf(ip, sizeof(ip), "?");
  snprintf(out, cap, "%s/%u", ip, c->plen);
  return out;
}

int masq_ipconf_set_addrs(masq_ipconf *ic, const masq_cidr *a, size_t n, char *err,
                          size_t errcap) {
  char s[80];
  if (n > MASQ_IPCONF_MAX_ADDRS) n = MASQ_IPCONF_MAX_ADDRS;
  for (size_t i = 0; i < ic->naddrs;) {
    if (cidr_in(&ic->addrs[i], a, n)) {
      i++;
      continue;
    }
    if (masq_nl_addr(ic->ifindex, &ic->addrs[i], 0) != 0 && errno != EADDRNOTAVAIL)
      return masq_errf(err, errcap, "cannot remove address %s from %s: %s",
                       cidr_str(&ic->addrs[i], s, sizeof(s)), ic->tun, nl_why());
    ic->addrs[i] = ic->addrs[--ic->naddrs];
  }
  for (size_t i = 0; i < n; i++) {
    if (cidr_in(&a[i], ic->addrs, ic->naddrs)) continue;
    if (masq_nl_addr(ic->ifindex, &a[i], 1) != 0 && errno != EEXIST)
      return masq_errf(err, errcap, "cannot add address %s to %s: %s",
                       cidr_str(&a[i], s, sizeof(s)), ic->tun, nl_why());
    ic->addrs[ic->naddrs++] = a[i];
  }
  return 0;
}

/* ---- routes and rules ---------------------------------------------------- */

static int family_routes(const masq_cidr *r, size_t n, int family) {
  for (size_t i = 0; i < n; i++)
    if (r[i].ip.family == family) return 1;
  return 0;
}

/* The state file lists a rule before it exists, so a crash right after
 * adding it still leaves a record to undo. */
static int rules_add(masq_ipconf *ic, int family, char *err, size_t errcap) {
  uint8_t *bits = &ic->rules[fam_idx(family)];
  *bits |= RULE_SUPPRESS | RULE_TUNNEL;
  if (state_save(ic) != 0)
    return masq_errf(err, errcap, "cannot write %s: %s", ic->state_path, strerror(errno));
  if (masq_nl_rule_suppress(family, 0, MASQ_IPCONF_PRIO_SUPPRESS, 0, 1) != 0) {
    *bits &= (uint8_t)~RULE_SUPPRESS;
    /* EEXIST: another client owns an identical rule; it serves us too
     * and stays theirs to remove. */
    if (errno != EEXIST) {
      *bits &= (uint8_t)~RULE_TUNNEL;
      return masq_errf(err, errcap, "cannot add the IPv%d rule \"lookup main "
                       "suppress_prefixlength 0\": %s", family, nl_why());
    }
  }
  if (masq_nl_rule(family, ic->fwmark, ic->fwmark, MASQ_IPCONF_PRIO_TUNNEL, 1, 1) != 0) {
    *bits &= (uint8_t)~RULE_TUNNEL;
    if (errno != EEXIST)
      return masq_errf(err, errcap, "cannot add the IPv%d rule \"not fwmark %u lookup %u\": %s",
                       family, (unsigned)ic->fwmark, (unsigned)ic->fwmark, nl_why());
  }
  return state_save(ic) == 0 ? 0
                             : masq_errf(err, errcap, "cannot write %s: %s", ic->state_path,
                                         strerror(errno));
}

static void rules_del(masq_ipconf *ic, int family) {
  uint8_t *bits = &ic->rules[fam_idx(family)];
  if ((*bits & RULE_TUNNEL) &&
      masq_nl_rule(family, ic->fwmark, ic->fwmark, MASQ_IPCONF_PRIO_TUNNEL, 1, 0) != 0 &&
      errno != ENOENT)
    masq_log(MASQ_LOG_ERR, "cannot delete the IPv%d rule \"not fwmark %u lookup %u\": %s; "
             "delete it with: ip -%d rule del priority %u", family, (unsigned)ic->fwmark,
             (unsigned)ic->fwmark, nl_why(), family, MASQ_IPCONF_PRIO_TUNNEL);
  if ((*bits & RULE_SUPPRESS) &&
      masq_nl_rule_suppress(family, 0, MASQ_IPCONF_PRIO_SUPPRESS, 0, 0) != 0 && errno != ENOENT)
    masq_log(MASQ_LOG_ERR, "cannot delete the IPv%d suppress_prefixlength rule: %s; delete it "
             "with: ip -%d rule del priority %u", family, nl_why(), family,
             MASQ_IPCONF_PRIO_SUPPRESS);
  *bits = 0;
  if (state_save(ic) != 0)
    masq_log(MASQ_LOG_WARN, "cannot update %s: %s", ic->state_path, strerror(errno));
}

/* Reverse-path filtering would drop the proxy's replies (they arrive
 * outside the tunnel that the unmarked lookup points to) unless the
 * filter takes the socket's mark into account, as wg-quick arranges. */
static void enable_src_valid_mark(masq_ipconf *ic) {
  char v[8];
  ssize_t n = read_file(SVM_PATH, v, sizeof(v) - 1);
  if (n <= 0 || v[0] != '0' || ic->svm_old >= 0) return;
  ic->svm_old = 0;
  if (state_save(ic) != 0 || write_svm(1) != 0) {
    masq_log(MASQ_LOG_WARN, "cannot set %s to 1 (%s): with rp_filter on, replies from the proxy "
             "may be dropped", SVM_PATH, strerror(errno));
    ic->svm_old = -1;
    (void)state_save(ic);
  }
}

static int routes_remove_stale(masq_ipconf *ic, const masq_cidr *r, size_t n, char *err,
                               size_t errcap) {
  char s[80];
  for (size_t i = 0; i < ic->nroutes;) {
    if (cidr_in(&ic->routes[i], r, n)) {
      i++;
      continue;
    }
    if (masq_nl_route(&ic->routes[i], ic->ifindex, ic->fwmark, 0) != 0 && errno != ESRCH)
      return masq_errf(err, errcap, "cannot delete route %s from table %u: %s",
                       cidr_str(&ic->routes[i], s, sizeof(s)), (unsigned)ic->fwmark, nl_why());
    ic->routes[i] = ic->routes[--ic->nroutes];
  }
  return 0;
}

int masq_ipconf_set_routes(masq_ipconf *ic, const masq_cidr *r, size_t n, char *err,
                           size_t errcap) {
  char s[80];
  if (n > MASQ_IPCONF_MAX_ROUTES)
    return masq_errf(err, errcap, "%zu routes is more than the %d masq installs", n,
                     MASQ_IPCONF_MAX_ROUTES);
  if (routes_remove_stale(ic, r, n, err, errcap) != 0) return -1;
  for (size_t i = 0; i < n; i++) {
    if (cidr_in(&r[i], ic->routes, ic->nroutes)) continue;
    if (masq_nl_route(&r[i], ic->ifindex, ic->fwmark, 1) != 0 && errno != EEXIST)
      return masq_errf(err, errcap, "cannot add route %s dev %s table %u: %s",
                       cidr_str(&r[i], s, sizeof(s)), ic->tun, (unsigned)ic->fwmark, nl_why());
    ic->routes[ic->nroutes++] = r[i];
  }
  for (int fam = 4; fam <= 6; fam += 2) {
    int want = family_routes(ic->routes, ic->nroutes, fam);
    int have = ic->rules[fam_idx(fam)] != 0;
    if (want && !have) {
      if (fam == 4) enable_src_valid_mark(ic);
      if (rules_add(ic, fam, err, errcap) != 0) return -1;
    } else if (!want && have) {
      rules_del(ic, fam);
    }
  }
  return 0;
}

/* ---- resolv.conf ----------------------------------------------------------- */

static int save_resolv(masq_ipconf *ic, char *err, size_t errcap) {
  static char buf[RESOLV_MAX];
  ssize_t n = read_file(MASQ_IPCONF_RESOLV, buf, sizeof(buf));
  if (n < 0 && errno != ENOENT)
    return masq_errf(err, errcap, "cannot read %s to back it up: %s", MASQ_IPCONF_RESOLV,
                     strerror(errno));
  if (n < 0) n = 0;
  if (mkdir(MASQ_IPCONF_STATE_DIR, 0700) != 0 && errno != EEXIST)
    return masq_errf(err, errcap, "cannot create %s: %s", MASQ_IPCONF_STATE_DIR, strerror(errno));
  if (write_file(ic->backup_path, buf, (size_t)n, 0600) != 0)
    return masq_errf(err, errcap, "cannot back up %s to %s: %s", MASQ_IPCONF_RESOLV,
                     ic->backup_path, strerror(errno));
  ic->resolv_saved = 1;
  if (state_save(ic) != 0) {
    ic->resolv_saved = 0;
    return masq_errf(err, errcap, "cannot write %s: %s", ic->state_path, strerror(errno));
  }
  return 0;
}

int masq_ipconf_set_dns(masq_ipconf *ic, const masq_cidr *dns, size_t n, char *err,
                        size_t errcap) {
  char text[512], ip[64];
  size_t len = (size_t)snprintf(text, sizeof(text), "# written by masq connect (%s)\n", ic->tun);
  for (size_t i = 0; i < n && len < sizeof(text); i++) {
    if (!masq_ip_format(&dns[i].ip, ip, sizeof(ip))) continue;
    len += (size_t)snprintf(text + len, sizeof(text) - len, "nameserver %s\n", ip);
  }
  if (len >= sizeof(text)) return masq_errf(err, errcap, "too many --dns servers");
  if (!ic->resolv_saved && save_resolv(ic, err, errcap) != 0) return -1;
  if (write_file(MASQ_IPCONF_RESOLV, text, len, 0644) != 0)
    return masq_errf(err, errcap, "cannot write %s: %s", MASQ_IPCONF_RESOLV, strerror(errno));
  return 0;
}

/* ---- teardown ---------------------------------------------------------------- */

void masq_ipconf_restore(masq_ipconf *ic) {
  char err[512];
  for (int fam = 4; fam <= 6; fam += 2)
    if (ic->rules[fam_idx(fam)]) rules_del(ic, fam);
  if (ic->resolv_saved) {
    if (restore_resolv(ic->backup_path, err, sizeof(err)) != 0)
      masq_log(MASQ_LOG_ERR, "%s; the next masq connect on %s retries it", err, ic->tun);
    else ic->resolv_saved = 0;
  }
  if (ic->svm_old >= 0) {
    if (write_svm(ic->svm_old) != 0)
      masq_log(MASQ_LOG_WARN, "cannot restore %s to %d: %s", SVM_PATH, ic->svm_old,
               strerror(errno));
    ic->svm_old = -1;
  }
  if (ic->state_path[0] && state_save(ic) != 0)
    masq_log(MASQ_LOG_WARN, "cannot update %s: %s", ic->state_path, strerror(errno));
  free(ic->routes);
  ic->routes = NULL;
  ic->nroutes = 0;
  ic->naddrs = 0;
}
