/* The host side of masq connect: the TUN device's addresses and routes,
 * the policy rules that send traffic into the tunnel, the resolvers in
 * /etc/resolv.conf, and a state file that lets the next start undo what
 * a crashed run left behind.
 *
 * Routing follows wg-quick: tunnel routes live in their own table (the
 * fwmark's number), and two rules per family make it count,
 *   priority 32760: lookup main suppress_prefixlength 0
 *   priority 32761: not fwmark M lookup M
 * so the main table still answers for everything but its default route,
 * everything else goes to the tunnel's table, and masq's own QUIC socket
 * (SO_MARK M) keeps using the main table to reach the proxy. The rules
 * of a family exist only while the tunnel table holds a route of that
 * family: a family the proxy gave no address gets no rules, and its
 * traffic keeps its usual path.
 *
 * What outlives the process (rules, resolv.conf, one sysctl) is listed in
 * /run/masq/<tun>.<netns inode>.state as it is added; the TUN device takes
 * its addresses and routes with it when its fd closes. The state file is
 * per network namespace, so a run in one namespace never "restores"
 * another's configuration. */
#ifndef MASQ_CLIENT_IPCONF_H
#define MASQ_CLIENT_IPCONF_H

#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"

#define MASQ_IPCONF_MAX_ADDRS 16
/* Kernel routes installed at most (a hostile route list could ask for
 * ~100 000 prefixes; this bounds the netlink work and the memory). */
#define MASQ_IPCONF_MAX_ROUTES 4096
#define MASQ_IPCONF_PRIO_SUPPRESS 32760
#define MASQ_IPCONF_PRIO_TUNNEL 32761
#define MASQ_IPCONF_STATE_DIR "/run/masq"
#define MASQ_IPCONF_RESOLV "/etc/resolv.conf"

typedef struct masq_ipconf {
  char tun[16];
  int ifindex;
  uint32_t fwmark; /* also the routing table's id */
  masq_cidr addrs[MASQ_IPCONF_MAX_ADDRS]; /* on the device, host bits kept */
  size_t naddrs;
  masq_cidr *routes; /* in the table; MASQ_IPCONF_MAX_ROUTES slots */
  size_t nroutes;
  uint8_t rules[2];   /* IPv4, IPv6: RULE_* bits of the rules we added */
  int resolv_saved;   /* resolv.conf backed up and overwritten */
  int svm_old;        /* src_valid_mark before we set it, or -1 */
  char state_path[192], backup_path[192];
} masq_ipconf;

/* Undoes what a previous run on device `tun` in this network namespace
 * recorded and did not undo (it was killed): deletes its rules, restores
 * resolv.conf and the sysctl, removes the state file. Returns 1 if there
 * was something to undo, 0 if not, -1 with a reason in err if the state
 * file exists but could not be read or acted on (it is then kept). */
int masq_ipconf_recover(const char *tun, char *err, size_t errcap);

/* Prepares ic for the device (already open) `tun` with index ifindex.
 * Allocates the route list once. Returns 0 or -1 with a reason. */
int masq_ipconf_init(masq_ipconf *ic, const char *tun, int ifindex, uint32_t fwmark, char *err,
                     size_t errcap);

/* Sets the device's MTU and brings it up. 0 or -1 with a reason. */
int masq_ipconf_link_up(masq_ipconf *ic, int mtu, char *err, size_t errcap);

/* Makes the device's addresses exactly a[0..n), adding and deleting only
 * the difference. 0 or -1 with a reason (what was done stays done). */
int masq_ipconf_set_addrs(masq_ipconf *ic, const masq_cidr *a, size_t n, char *err,
                          size_t errcap);

/* Makes the tunnel table's routes exactly r[0..n) (n <= MAX_ROUTES),
 * incrementally, and adds or removes each family's rules as it gains its
 * first or loses its last route. 0 or -1 with a reason. */
int masq_ipconf_set_routes(masq_ipconf *ic, const masq_cidr *r, size_t n, char *err,
                           size_t errcap);

/* Backs up resolv.conf (first call only) and rewrites it in place with
 * one "nameserver" line per entry: in place, since under `ip netns exec`
 * it is a bind mount that a rename would not replace. 0 or -1. */
int masq_ipconf_set_dns(masq_ipconf *ic, const masq_cidr *dns, size_t n, char *err,
                        size_t errcap);

/* Undoes everything above except what closing the TUN fd undoes
 * (addresses, routes): rules, resolv.conf, sysctl, state file. Logs what
 * fails; safe to call twice. Frees the route list. */
void masq_ipconf_restore(masq_ipconf *ic);

#endif
