/* Forwarding sysctls and the masquerade table (nat.h) in a private
 * network namespace: what masq_nat_up installs, that masq_nat_down and
 * masq_nat_recover remove exactly that and put back the previous values,
 * and that a crashed run leaves nothing doubled behind.
 *
 * /proc/sys/net and nftables act on the caller's network namespace, so
 * after unshare(CLONE_NEWNET) nothing here reaches the host; the host's
 * ip_forward is read through a file opened before unshare to prove it.
 * State files go to a temporary directory, not /run/masq. Needs root;
 * without it every test is skipped and the program exits 0. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/log.h"
#include "io/nat.h"
#include "netns_env.h"

#define FWD4 "/proc/sys/net/ipv4/ip_forward"
#define FWD6 "/proc/sys/net/ipv6/conf/all/forwarding"
#define TUN "masqt0"
#define TABLE "masq_masqt0"

static int g_ready;
static int g_host_fwd4 = -1; /* the host namespace's ip_forward, opened before unshare */
static char g_host_val[16];
static char g_dir[64];
static masq_cidr g_pool4, g_pool6;

/* ---- observers ---- */

static void read_fd(int fd, char *out, size_t cap) {
  ssize_t r = pread(fd, out, cap - 1, 0);
  assert_true(r > 0);
  out[r] = '\0';
  out[strcspn(out, "\n")] = '\0';
}

static void get(const char *path, char *out, size_t cap) {
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  read_fd(fd, out, cap);
  close(fd);
}

static void set(const char *path, const char *v) {
  int fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, v, strlen(v)), (ssize_t)strlen(v));
  close(fd);
}

static void expect_sysctls(const char *v4, const char *v6) {
  char b[16];
  get(FWD4, b, sizeof(b));
  assert_string_equal(b, v4);
  get(FWD6, b, sizeof(b));
  assert_string_equal(b, v6);
}

/* nft's listing of cmd, or NULL if the command failed (e.g. no table). */
static char *nft_list(const char *cmd) {
  struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  assert_non_null(ctx);
  assert_int_equal(nft_ctx_buffer_output(ctx), 0);
  assert_int_equal(nft_ctx_buffer_error(ctx), 0);
  char *out = NULL;
  if (nft_run_cmd_from_buffer(ctx, cmd) == 0) out = strdup(nft_ctx_get_output_buffer(ctx));
  nft_ctx_free(ctx);
  return out;
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

/* Tables in this namespace, of any family. */
static int n_tables(void) {
  char *s = nft_list("list tables");
  assert_non_null(s);
  int n = count(s, "table ");
  free(s);
  return n;
}

static int state_files(void) {
  DIR *d = opendir(g_dir);
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

/* ---- environment ---- */

static int group_setup(void **state) {
  (void)state;
  masq_log_level = MASQ_LOG_ERR; /* the info lines are expected here */
  if (geteuid() == 0) {
    g_host_fwd4 = open(FWD4, O_RDONLY);
    if (g_host_fwd4 < 0) return -1;
    read_fd(g_host_fwd4, g_host_val, sizeof(g_host_val));
  }
  g_ready = masq_test_enter_netns();
  if (!g_ready) return 0;
  snprintf(g_dir, sizeof(g_dir), "/tmp/masq-nat-test.XXXXXX");
  if (!mkdtemp(g_dir)) return -1;
  masq_nat_set_state_dir(g_dir);
  if (masq_cidr_parse("10.89.0.0/24", &g_pool4) < 0) return -1;
  if (masq_cidr_parse("fd6d:6173:7100::/64", &g_pool6) < 0) return -1;
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  if (g_ready) {
    char err[256];
    (void)masq_nat_recover(TUN, err, sizeof(err));
    DIR *d = opendir(g_dir);
    if (d) {
      char p[512];
      for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof(p), "%s/%s", g_dir, e->d_name);
        unlink(p);
      }
      closedir(d);
    }
    rmdir(g_dir);
  }
  if (g_host_fwd4 >= 0) {
    /* Whatever happened in here, the host's value is untouched. (Under
     * a user namespace's fake root the old namespace's file may not be
     * readable from the new one any more: nothing to compare then.) */
    char now[16];
    ssize_t r = pread(g_host_fwd4, now, sizeof(now) - 1, 0);
    close(g_host_fwd4);
    now[r > 0 ? r : 0] = '\0';
    now[strcspn(now, "\n")] = '\0';
    if (r > 0 && strcmp(now, g_host_val) != 0) {
      fprintf(stderr, "host ip_forward changed from %s to %s\n", g_host_val, now);
      return -1;
    }
  }
  return 0;
}

/* ---- tests ---- */

static void test_up_down(void **state) {
  (void)state;
  if (!g_ready) skip();
  /* IPv6 already on: it must be neither recorded nor rewritten. */
  set(FWD4, "0");
  set(FWD6, "1");
  masq_nat n;
  char err[256] = "";
  assert_int_equal(masq_nat_up(&n, TUN, &g_pool4, &g_pool6, err, sizeof(err)), 0);
  expect_sysctls("1", "1");
  assert_int_equal(state_files(), 1);

  char *s = nft_list("list table inet " TABLE);
  assert_non_null(s);
  assert_non_null(strstr(s, "type nat hook postrouting priority srcnat; policy accept;"));
  assert_non_null(strstr(s, "ip saddr 10.89.0.0/24 oifname != \"" TUN "\" masquerade"));
  assert_non_null(strstr(s, "ip6 saddr fd6d:6173:7100::/64 oifname != \"" TUN "\" masquerade"));
  assert_int_equal(count(s, "chain "), 1);
  assert_int_equal(count(s, "masquerade"), 2);
  free(s);
  assert_int_equal(n_tables(), 1);

  masq_nat_down(&n);
  expect_sysctls("0", "1");
  assert_int_equal(n_tables(), 0);
  assert_int_equal(state_files(), 0);
  masq_nat_down(&n); /* idempotent */
  expect_sysctls("0", "1");
}

static void test_one_family(void **state) {
  (void)state;
  if (!g_ready) skip();
  set(FWD4, "0");
  set(FWD6, "0");
  masq_nat n;
  char err[256] = "";
  /* A pool address with host bits (the gateway) is masked. */
  masq_cidr gw;
  assert_int_equal(masq_cidr_parse("10.89.0.0/24", &gw), 0);
  gw.ip.a[3] = 1;
  assert_int_equal(masq_nat_up(&n, TUN, &gw, NULL, err, sizeof(err)), 0);
  expect_sysctls("1", "0");
  char *s = nft_list("list table inet " TABLE);
  assert_non_null(s);
  assert_non_null(strstr(s, "ip saddr 10.89.0.0/24 oifname"));
  assert_null(strstr(s, "ip6"));
  free(s);
  masq_nat_down(&n);
  expect_sysctls("0", "0");
  assert_int_equal(n_tables(), 0);
}

/* A killed server: its struct is gone, the table, the sysctls and the
 * state file are not. */
static void test_crash_recover(void **state) {
  (void)state;
  if (!g_ready) skip();
  set(FWD4, "0");
  set(FWD6, "0");
  masq_nat n;
  char err[256] = "";
  assert_int_equal(masq_nat_up(&n, TUN, &g_pool4, &g_pool6, err, sizeof(err)), 0);
  memset(&n, 0, sizeof(n));
  expect_sysctls("1", "1");
  assert_int_equal(state_files(), 1);

  assert_int_equal(masq_nat_recover(TUN, err, sizeof(err)), 0);
  expect_sysctls("0", "0");
  assert_int_equal(n_tables(), 0);
  assert_int_equal(state_files(), 0);
  assert_int_equal(masq_nat_recover(TUN, err, sizeof(err)), 0); /* nothing to do */

  /* Crash, then simply start again: up recovers first, so the originals
   * (not the crashed run's 1s) are what the second run restores. */
  assert_int_equal(masq_nat_up(&n, TUN, &g_pool4, &g_pool6, err, sizeof(err)), 0);
  memset(&n, 0, sizeof(n));
  masq_nat n2;
  assert_int_equal(masq_nat_up(&n2, TUN, &g_pool4, &g_pool6, err, sizeof(err)), 0);
  assert_int_equal(n_tables(), 1);
  char *s = nft_list("list table inet " TABLE);
  assert_non_null(s);
  assert_int_equal(count(s, "masquerade"), 2);
  free(s);
  expect_sysctls("1", "1");
  assert_int_equal(state_files(), 1);
  masq_nat_down(&n2);
  expect_sysctls("0", "0");
  assert_int_equal(n_tables(), 0);
  assert_int_equal(state_files(), 0);
}

/* A table left behind without a state file (sysctls were already on). */
static void test_stale_table_only(void **state) {
  (void)state;
  if (!g_ready) skip();
  set(FWD4, "1");
  set(FWD6, "1");
  masq_nat n;
  char err[256] = "";
  assert_int_equal(masq_nat_up(&n, TUN, &g_pool4, &g_pool6, err, sizeof(err)), 0);
  assert_int_equal(state_files(), 0); /* nothing changed, nothing to restore */
  memset(&n, 0, sizeof(n));
  assert_int_equal(masq_nat_up(&n, TUN, &g_pool4, &g_pool6, err, sizeof(err)), 0);
  assert_int_equal(n_tables(), 1);
  masq_nat_down(&n);
  expect_sysctls("1", "1");
  assert_int_equal(n_tables(), 0);
}

/* Other tables are not ours to touch; names are escaped one-to-one. */
static void test_names(void **state) {
  (void)state;
  if (!g_ready) skip();
  set(FWD4, "0");
  set(FWD6, "0");
  char *s = nft_list("add table inet other\n");
  assert_non_null(s);
  free(s);
  masq_nat a, b;
  char err[256] = "";
  assert_int_equal(masq_nat_up(&a, "a-b", &g_pool4, NULL, err, sizeof(err)), 0);
  assert_int_equal(masq_nat_up(&b, "a_b", NULL, &g_pool6, err, sizeof(err)), 0);
  assert_string_equal(a.table, "masq_a_2db");
  assert_string_equal(b.table, "masq_a_5fb");
  assert_int_equal(n_tables(), 3);
  s = nft_list("list table inet masq_a_2db");
  assert_non_null(s);
  assert_non_null(strstr(s, "oifname != \"a-b\" masquerade"));
  free(s);
  masq_nat_down(&b);
  masq_nat_down(&a);
  assert_int_equal(n_tables(), 1);
  expect_sysctls("0", "0");
  s = nft_list("delete table inet other\n");
  assert_non_null(s);
  free(s);
}

static void test_errors(void **state) {
  (void)state;
  if (!g_ready) skip();
  set(FWD4, "0");
  set(FWD6, "0");
  masq_nat n;
  char err[256] = "";
  assert_int_equal(masq_nat_up(&n, "a\"b", &g_pool4, NULL, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "bad interface name"));
  masq_nat_down(&n); /* safe after a failed up */
  assert_int_equal(masq_nat_up(&n, "0123456789abcdef", &g_pool4, NULL, err, sizeof(err)), -1);
  assert_int_equal(masq_nat_up(&n, "", &g_pool4, NULL, err, sizeof(err)), -1);
  assert_int_equal(masq_nat_up(&n, TUN, NULL, NULL, err, sizeof(err)), -1);
  assert_int_equal(masq_nat_up(&n, TUN, &g_pool6, NULL, err, sizeof(err)), -1);
  assert_int_equal(masq_nat_up(&n, TUN, NULL, &g_pool4, err, sizeof(err)), -1);
  expect_sysctls("0", "0");
  assert_int_equal(n_tables(), 0);
  assert_int_equal(state_files(), 0);

  /* A damaged state file stops recovery (and so up), and stays. */
  assert_int_equal(masq_nat_up(&n, TUN, &g_pool4, NULL, err, sizeof(err)), 0);
  char path[256];
  snprintf(path, sizeof(path), "%s", n.state_path);
  memset(&n, 0, sizeof(n));
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("net.ipv4.ip_forward=0\nrm -rf /=1\n", f);
  fclose(f);
  assert_int_equal(masq_nat_up(&n, TUN, &g_pool4, NULL, err, sizeof(err)), -1);
  assert_non_null(strstr(err, "damaged"));
  assert_int_equal(access(path, F_OK), 0);
  expect_sysctls("1", "0"); /* nothing restored from a file it cannot trust */
  assert_int_equal(unlink(path), 0);
  assert_int_equal(masq_nat_recover(TUN, err, sizeof(err)), 0);
  assert_int_equal(n_tables(), 0);
  set(FWD4, "0");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_up_down),     cmocka_unit_test(test_one_family),
      cmocka_unit_test(test_crash_recover), cmocka_unit_test(test_stale_table_only),
      cmocka_unit_test(test_names),       cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
