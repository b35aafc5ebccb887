/* Shared by the unit tests that need the kernel (TUN, rtnetlink): a
 * private network namespace, so they never touch the host's network. */
#ifndef MASQ_TESTS_NETNS_ENV_H
#define MASQ_TESTS_NETNS_ENV_H

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "io/netlink.h"

/* Enters a new network namespace. Returns 1 inside it, 0 (after saying
 * why) when the tests must be skipped: not root, no unshare, no TUN. */
static inline int masq_test_enter_netns(void) {
  if (geteuid() != 0) {
    fprintf(stderr, "SKIP: needs root (private network namespace, TUN)\n");
    return 0;
  }
  if (unshare(CLONE_NEWNET) < 0) {
    fprintf(stderr, "SKIP: unshare(CLONE_NEWNET): %s\n", strerror(errno));
    return 0;
  }
  if (access("/dev/net/tun", R_OK | W_OK) < 0) {
    fprintf(stderr, "SKIP: /dev/net/tun: %s\n", strerror(errno));
    return 0;
  }
  return 1;
}

/* Local delivery and the loopback routes need lo up, as on any host. */
static inline int masq_test_lo_up(void) {
  return masq_nl_link_set(masq_nl_ifindex("lo"), 1, 0) < 0 ? -1 : 0;
}

#endif
