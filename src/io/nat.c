/* Forwarding sysctls and an nftables masquerade table, declared in nat.h.
 *
 * nftables rather than iptables: one table of our own, replaced or
 * deleted in one atomic transaction, cannot disturb (or be disturbed by)
 * other tools' rules, and teardown needs no bookkeeping of rule handles.
 * The commands go through libnftables in nft's own syntax, which keeps
 * them readable and identical to what an administrator would type. */
#include "io/nat.h"

#include <errno.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/log.h"

#define SYSCTL_FWD4 "/proc/sys/net/ipv4/ip_forward"
#define SYSCTL_FWD6 "/proc/sys/net/ipv6/conf/all/forwarding"
#define KEY_FWD4 "net.ipv4.ip_forward"
#define KEY_FWD6 "net.ipv6.conf.all.forwarding"

static const char *g_state_dir = MASQ_NAT_STATE_DIR;

void masq_nat_set_state_dir(const char *dir) { g_state_dir = dir ? dir : MASQ_NAT_STATE_DIR; }

/* ---- names ---- */

/* Linux allows almost any octet in an interface name, but the name ends
 * up inside an nft string and a file name: a conservative set keeps both
 * free of quoting problems. */
static int tun_name_ok(const char *tun) {
  size_t n = tun ? strlen(tun) : 0;
  if (n == 0 || n > 15 || !strcmp(tun, ".") || !strcmp(tun, "..")) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = tun[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '.' || c == '-'))
      return 0;
  }
  return 1;
}

/* nft identifiers allow [A-Za-z0-9_/.] after a letter; escaping '_'
 * too makes the mapping one-to-one ("a-b" and "a_b" stay apart). */
static void table_name(const char *tun, char *out, size_t cap) {
  static const char hex[] = "0123456789abcdef";
  size_t o = (size_t)snprintf(out, cap, "masq_");
  for (const char *p = tun; *p && o + 4 < cap; p++) {
    unsigned char c = (unsigned char)*p;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      out[o++] = (char)c;
    } else {
      out[o++] = '_';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  out[o] = '\0';
}

static int state_path(const char *tun, char *out, size_t cap, char *err, size_t errcap) {
  struct stat st;
  /* thread-self: the namespace of this thread, which is what /proc/sys/net
   * and the nftables socket act on (a thread may have called setns). */
  if (stat("/proc/thread-self/ns/net", &st) < 0)
    return masq_errf(err, errcap,
                     "cannot identify the network namespace (/proc/thread-self/ns/net: %s); "
                     "is /proc mounted?",
                     strerror(errno));
  int r = snprintf(out, cap, "%s/nat-%s.%llu.state", g_state_dir, tun,
                   (unsigned long long)st.st_ino);
  if (r < 0 || (size_t)r >= cap)
    return masq_errf(err, errcap, "state directory path too long: %s", g_state_dir);
  return 0;
}

/* ---- nftables ---- */

/* Runs an nft command batch (one kernel transaction: all or nothing).
 * On failure err gets nft's first error line, which names the cause
 * ("Could not process rule: Operation not permitted"); the rest of its
 * message is the command echoed back with carets. */
static int nft_run(const char *cmds, char *err, size_t errcap) {
  struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!ctx) return masq_errf(err, errcap, "nftables: cannot create a context (out of memory?)");
  if (nft_ctx_buffer_output(ctx) != 0 || nft_ctx_buffer_error(ctx) != 0) {
    nft_ctx_free(ctx);
    return masq_errf(err, errcap, "nftables: cannot buffer output (out of memory?)");
  }
  int rc = 0;
  if (nft_run_cmd_from_buffer(ctx, cmds) != 0) {
    const char *e = nft_ctx_get_error_buffer(ctx);
    if (!e || !*e) e = "unknown error";
    size_t len = strcspn(e, "\n");
    rc = masq_errf(err, errcap, "%.*s", (int)len, e);
  }
  nft_ctx_free(ctx);
  return rc;
}

/* Deleting a table that may not exist: "add" (a no-op if it exists)
 * then "delete", in one transaction, works on every nft version (the
 * "destroy" command needs nft 1.0.8 and Linux 6.3). */
static int table_delete_if_present(const char *table, char *err, size_t errcap) {
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "add table inet %s\ndelete table inet %s\n", table, table);
  return nft_run(cmd, err, errcap);
}

static int pool_rule(char *out, size_t cap, const char *tun, const masq_cidr *pool) {
  masq_cidr c = *pool;
  size_t bytes = c.ip.family == 4 ? 4 : 16;
  /* nft refuses a prefix with host bits set; the pool's gateway address
   * is a natural thing to pass here. */
  for (size_t i = 0; i < bytes; i++) {
    int keep = (int)c.plen - (int)(i * 8);
    if (keep <= 0) c.ip.a[i] = 0;
    else if (keep < 8) c.ip.a[i] &= (uint8_t)(0xff00u >> keep);
  }
  char ip[64];
  if (!masq_ip_format(&c.ip, ip, sizeof(ip))) return -1;
  int r = snprintf(out, cap, "    %s saddr %s/%u oifname != \"%s\" masquerade\n",
                   c.ip.family == 4 ? "ip" : "ip6", ip, (unsigned)c.plen, tun);
  return r < 0 || (size_t)r >= cap ? -1 : 0;
}

/* ---- sysctls ---- */

static int value_ok(const char *v) {
  size_t n = strlen(v);
  return n > 0 && n < 16 && strspn(v, "0123456789") == n;
}

static int sysctl_read(const char *path, char *out, size_t cap, char *err, size_t errcap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return masq_errf(err, errcap, "cannot read %s: %s%s", path, strerror(errno),
                     errno == ENOENT ? " (is that IP version disabled in this kernel?)" : "");
  ssize_t r;
  do r = read(fd, out, cap - 1);
  while (r < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  if (r < 0) return masq_errf(err, errcap, "cannot read %s: %s", path, strerror(e));
  out[r] = '\0';
  out[strcspn(out, "\n")] = '\0';
  if (!value_ok(out)) return masq_errf(err, errcap, "unexpected value \"%s\" in %s", out, path);
  return 0;
}

static int sysctl_write(const char *path, const char *val, char *err, size_t errcap) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return masq_errf(err, errcap, "cannot open %s for writing: %s%s", path, strerror(errno),
                     errno == EACCES || errno == EROFS || errno == EPERM
                         ? " (needs root with a writable /proc/sys)"
                         : "");
  size_t n = strlen(val);
  ssize_t w;
  do w = write(fd, val, n);
  while (w < 0 && errno == EINTR);
  int e = errno;
  /* /proc/sys applies a write at once; close cannot fail on it. */
  close(fd);
  if (w < 0) return masq_errf(err, errcap, "cannot write %s to %s: %s", val, path, strerror(e));
  if ((size_t)w != n) return masq_errf(err, errcap, "short write of %s to %s", val, path);
  return 0;
}

/* ---- state file ---- */

static int state_write(const char *path, const char *prev4, const char *prev6, char *err,
                       size_t errcap) {
  if (mkdir(g_state_dir, 0755) < 0 && errno != EEXIST)
    return masq_errf(err, errcap, "cannot create %s: %s (needs root, or a writable /run)",
                     g_state_dir, strerror(errno));
  char text[256];
  int len = snprintf(text, sizeof(text),
                     "# masq server --nat: the values to put back if masq dies (see nat.h)\n"
                     "%s%s%s%s%s%s",
                     *prev4 ? KEY_FWD4 "=" : "", prev4, *prev4 ? "\n" : "",
                     *prev6 ? KEY_FWD6 "=" : "", prev6, *prev6 ? "\n" : "");
  char tmp[300];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  /* Written aside and renamed, so a crash mid-write never leaves a
   * half file that the next start would misread. */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return masq_errf(err, errcap, "cannot create %s: %s", tmp, strerror(errno));
  ssize_t w = write(fd, text, (size_t)len);
  int e = errno;
  if (w == len && fsync(fd) < 0) { e = errno; w = -1; }
  if (close(fd) < 0 && w == len) { e = errno; w = -1; }
  if (w != len) {
    unlink(tmp);
    return masq_errf(err, errcap, "cannot write %s: %s", tmp, w < 0 ? strerror(e) : "short write");
  }
  if (rename(tmp, path) < 0) {
    e = errno;
    unlink(tmp);
    return masq_errf(err, errcap, "cannot rename %s to %s: %s", tmp, path, strerror(e));
  }
  return 0;
}

/* Reads a state file into prev4 / prev6 ("" where absent). Returns 1 if
 * it was there, 0 if not, -1 on error. */
static int state_read(const char *path, char *prev4, char *prev6, char *err, size_t errcap) {
  prev4[0] = prev6[0] = '\0';
  FILE *f = fopen(path, "re");
  if (!f) {
    if (errno == ENOENT) return 0;
    return masq_errf(err, errcap, "cannot read %s: %s", path, strerror(errno));
  }
  char line[128];
  int bad = 0;
  while (!bad && fgets(line, sizeof(line), f)) {
    line[strcspn(line, "\n")] = '\0';
    if (line[0] == '#' || line[0] == '\0') continue;
    char *eq = strchr(line, '=');
    if (!eq || !value_ok(eq + 1)) { bad = 1; break; }
    *eq = '\0';
    if (!strcmp(line, KEY_FWD4)) snprintf(prev4, 16, "%s", eq + 1);
    else if (!strcmp(line, KEY_FWD6)) snprintf(prev6, 16, "%s", eq + 1);
    else bad = 1;
  }
  if (ferror(f)) bad = 1;
  fclose(f);
  if (bad)
    return masq_errf(err, errcap,
                     "state file %s is damaged: set " KEY_FWD4 " and " KEY_FWD6
                     " to what they should be, then remove the file",
                     path);
  return 1;
}

/* ---- API ---- */

int masq_nat_recover(const char *tun, char *err, size_t errcap) {
  if (!tun_name_ok(tun))
    return masq_errf(err, errcap, "NAT: bad interface name \"%s\" (1-15 of [A-Za-z0-9_.-])",
                     tun ? tun : "");
  char path[256], table[64], prev4[16], prev6[16], e[256];
  if (state_path(tun, path, sizeof(path), err, errcap) < 0) return -1;
  table_name(tun, table, sizeof(table));
  int have = state_read(path, prev4, prev6, err, errcap);
  if (have < 0) return -1;
  if (have) {
    if (*prev4 && sysctl_write(SYSCTL_FWD4, prev4, e, sizeof(e)) < 0)
      return masq_errf(err, errcap, "NAT recovery from %s: %s", path, e);
    if (*prev6 && sysctl_write(SYSCTL_FWD6, prev6, e, sizeof(e)) < 0)
      return masq_errf(err, errcap, "NAT recovery from %s: %s", path, e);
    if (unlink(path) < 0 && errno != ENOENT)
      return masq_errf(err, errcap, "cannot remove %s: %s (remove it by hand)", path,
                       strerror(errno));
    masq_log(MASQ_LOG_WARN, "NAT: restored forwarding settings left by an earlier run (%s)",
             path);
  }
  if (table_delete_if_present(table, e, sizeof(e)) < 0)
    return masq_errf(err, errcap,
                     "NAT: cannot check for (and remove) a leftover table inet %s: %s (needs "
                     "CAP_NET_ADMIN and nf_tables in the kernel)",
                     table, e);
  return 0;
}

/* Puts back the sysctls recorded in n (those changed so far) and then
 * forgets the state file; a failure keeps the file for the next start. */
static int restore_sysctls(masq_nat *n, char *err, size_t errcap) {
  char e[256];
  int rc = 0;
  if (*n->prev4 && sysctl_write(SYSCTL_FWD4, n->prev4, e, sizeof(e)) < 0)
    rc = masq_errf(err, errcap, "%s", e);
  if (*n->prev6 && sysctl_write(SYSCTL_FWD6, n->prev6, e, sizeof(e)) < 0)
    rc = masq_errf(err, errcap, "%s", e);
  if (rc == 0 && (*n->prev4 || *n->prev6) && unlink(n->state_path) < 0 && errno != ENOENT)
    rc = masq_errf(err, errcap, "cannot remove %s: %s", n->state_path, strerror(errno));
  if (rc == 0) n->prev4[0] = n->prev6[0] = '\0';
  return rc;
}

int masq_nat_up(masq_nat *n, const char *tun, const masq_cidr *pool4, const masq_cidr *pool6,
                char *err, size_t errcap) {
  memset(n, 0, sizeof(*n));
  if (!pool4 && !pool6) return masq_errf(err, errcap, "NAT: no address pool to masquerade");
  if ((pool4 && pool4->ip.family != 4) || (pool4 && pool4->plen > 32) ||
      (pool6 && pool6->ip.family != 6) || (pool6 && pool6->plen > 128))
    return masq_errf(err, errcap, "NAT: pool4 must be an IPv4 prefix and pool6 an IPv6 one");
  if (masq_nat_recover(tun, err, errcap) < 0) return -1;
  snprintf(n->tun, sizeof(n->tun), "%s", tun);
  table_name(tun, n->table, sizeof(n->table));
  if (state_path(tun, n->state_path, sizeof(n->state_path), err, errcap) < 0) return -1;

  char cur4[16] = "", cur6[16] = "", e[256];
  if (pool4 && sysctl_read(SYSCTL_FWD4, cur4, sizeof(cur4), e, sizeof(e)) < 0)
    return masq_errf(err, errcap, "NAT: %s", e);
  if (pool6 && sysctl_read(SYSCTL_FWD6, cur6, sizeof(cur6), e, sizeof(e)) < 0)
    return masq_errf(err, errcap, "NAT: %s (or run without --pool6)", e);
  /* Only what changes is recorded: rewriting a global forwarding value
   * resets every interface's own, so an unneeded restore is not free. */
  char want4[16], want6[16];
  snprintf(want4, sizeof(want4), "%s", pool4 && strcmp(cur4, "1") ? cur4 : "");
  snprintf(want6, sizeof(want6), "%s", pool6 && strcmp(cur6, "1") ? cur6 : "");
  if ((*want4 || *want6) && state_write(n->state_path, want4, want6, e, sizeof(e)) < 0)
    return masq_errf(err, errcap, "NAT: %s", e);

  char rb[256];
  if (*want4) {
    if (sysctl_write(SYSCTL_FWD4, "1", e, sizeof(e)) < 0) goto fail_sysctl;
    memcpy(n->prev4, want4, sizeof(n->prev4));
  }
  if (*want6) {
    if (sysctl_write(SYSCTL_FWD6, "1", e, sizeof(e)) < 0) goto fail_sysctl;
    memcpy(n->prev6, want6, sizeof(n->prev6));
  }

  char cmds[1024], r4[256] = "", r6[256] = "";
  if ((pool4 && pool_rule(r4, sizeof(r4), tun, pool4) < 0) ||
      (pool6 && pool_rule(r6, sizeof(r6), tun, pool6) < 0)) {
    snprintf(e, sizeof(e), "cannot format the pool prefixes");
    goto fail_nft;
  }
  /* Replaced, not added, in the same transaction: a table that appeared
   * since recovery (another masq racing us) cannot end up doubled. */
  snprintf(cmds, sizeof(cmds),
           "add table inet %s\n"
           "delete table inet %s\n"
           "table inet %s {\n"
           "  chain postrouting {\n"
           "    type nat hook postrouting priority srcnat; policy accept;\n"
           "%s%s"
           "  }\n"
           "}\n",
           n->table, n->table, n->table, r4, r6);
  if (nft_run(cmds, e, sizeof(e)) < 0) goto fail_nft;
  n->active = 1;
  masq_log(MASQ_LOG_INFO, "NAT: forwarding on, masquerading the pools in table inet %s",
           n->table);
  return 0;

fail_nft:
  if (restore_sysctls(n, rb, sizeof(rb)) < 0)
    masq_log(MASQ_LOG_ERR, "NAT: rollback: %s; the next start restores from %s", rb,
             n->state_path);
  return masq_errf(err, errcap,
                   "NAT: cannot install the masquerade table inet %s: %s (needs CAP_NET_ADMIN "
                   "and the nf_tables and nft_masq kernel modules)",
                   n->table, e);

fail_sysctl:
  if (restore_sysctls(n, rb, sizeof(rb)) < 0)
    masq_log(MASQ_LOG_ERR, "NAT: rollback: %s; the next start restores from %s", rb,
             n->state_path);
  /* Nothing changed yet if the first write failed: drop the file too. */
  if (!*n->prev4 && !*n->prev6) (void)unlink(n->state_path);
  return masq_errf(err, errcap, "NAT: %s", e);
}

void masq_nat_down(masq_nat *n) {
  if (!n->active) return;
  char e[256];
  char cmd[160];
  snprintf(cmd, sizeof(cmd), "delete table inet %s\n", n->table);
  if (nft_run(cmd, e, sizeof(e)) < 0)
    masq_log(MASQ_LOG_ERR, "NAT: cannot delete table inet %s: %s; remove it with "
             "`nft delete table inet %s`", n->table, e, n->table);
  if (restore_sysctls(n, e, sizeof(e)) < 0)
    masq_log(MASQ_LOG_ERR, "NAT: cannot restore forwarding: %s; the next start restores it "
             "from %s", e, n->state_path);
  n->active = 0;
}
