/* Server-side forwarding and masquerading for CONNECT-IP (`masq server
 * --nat`): packets from the clients' address pools leave through this
 * host's other interfaces with the host's own source address, as
 * `iptables -t nat -A POSTROUTING -s POOL ! -o TUN -j MASQUERADE` plus
 * `sysctl net.ipv4.ip_forward=1` would do.
 *
 * What masq_nat_up changes, and masq_nat_down undoes exactly:
 *  - net.ipv4.ip_forward (if a pool4 is given) and
 *    net.ipv6.conf.all.forwarding (if a pool6 is given) are set to 1,
 *    only if they are not 1 already; the previous values are put back.
 *  - one nftables table of masq's own, "inet masq_<tun>" (the TUN name
 *    with every octet other than [A-Za-z0-9] written as _XX in hex, so
 *    distinct names give distinct tables), holding one postrouting nat
 *    chain with one masquerade rule per pool ("ip saddr POOL oifname !=
 *    TUN masquerade"). Nothing else: no filter rules. A host firewall
 *    whose forward chain drops by default (Docker's, for one) still
 *    drops the clients' traffic; allowing it is the administrator's call.
 *
 * Both are per network namespace: they apply to the namespace of the
 * calling thread.
 *
 * Side effects of the sysctls themselves, which Linux ties to them:
 * writing net.ipv4.ip_forward or net.ipv6.conf.all.forwarding rewrites
 * the per-interface "forwarding" of every interface, so restoring the
 * global value does not bring back per-interface values that differed
 * from it. With IPv6 forwarding on, interfaces with accept_ra = 1 stop
 * accepting Router Advertisements: a server that gets its IPv6 default
 * route from RAs must set accept_ra = 2 on that interface first.
 *
 * Crash recovery. Before changing a sysctl, masq_nat_up records its
 * previous value in a state file, DIR/nat-<tun>.<netns>.state (DIR is
 * /run/masq unless masq_nat_set_state_dir says otherwise; <netns> is the
 * inode number of the network namespace, since sysctls are per
 * namespace while the file system is not). masq_nat_recover (which
 * masq_nat_up also runs first) puts those values back, removes the file
 * and deletes a table left behind; so a server killed with SIGKILL
 * leaves the host as it found it once it is started again (or after
 * `masq_nat_recover`). One server per TUN name per namespace. */
#ifndef MASQ_IO_NAT_H
#define MASQ_IO_NAT_H

#include <stddef.h>

#include "proto/addr.h"

#define MASQ_NAT_STATE_DIR "/run/masq"

typedef struct masq_nat {
  int active; /* set by a successful masq_nat_up, cleared by masq_nat_down */
  char tun[16];
  char table[64];
  char state_path[256];
  /* Previous sysctl values, "" for one masq_nat_up did not change. */
  char prev4[16];
  char prev6[16];
} masq_nat;

/* Sets up forwarding and masquerading for the pools behind interface
 * `tun` (which need not exist yet: rules match it by name). pool4 must be
 * IPv4 and pool6 IPv6; either may be NULL (that family is then left
 * alone), not both. Host bits of the pools are ignored. The TUN name
 * must be 1..15 characters of [A-Za-z0-9_.-].
 *
 * Runs masq_nat_recover(tun) first. Then writes the state file, the
 * sysctls and the table, in that order; on failure undoes what it did.
 * Returns 0, or -1 with a message in err (what failed and what to do).
 * n need not be initialised; after any return masq_nat_down(n) is safe. */
int masq_nat_up(masq_nat *n, const char *tun, const masq_cidr *pool4, const masq_cidr *pool6,
                char *err, size_t errcap);

/* Deletes the table, restores the sysctls masq_nat_up changed and
 * removes the state file. Idempotent (a no-op on a zeroed struct, or
 * after a failed masq_nat_up). Failures are logged, not returned: at
 * teardown there is nothing better to do than say what is left over. */
void masq_nat_down(masq_nat *n);

/* Undoes what a crashed run for `tun` left in this network namespace:
 * restores the sysctl values from its state file (if any) and removes
 * the file, and deletes the table "inet masq_<tun>" (if any). Returns 0
 * (also when there was nothing to undo), or -1 with a message in err,
 * e.g. for a state file that cannot be read or parsed (it is then left
 * in place for the administrator to check). */
int masq_nat_recover(const char *tun, char *err, size_t errcap);

/* Where state files go (default MASQ_NAT_STATE_DIR); NULL restores the
 * default. Process-wide and not thread-safe: for tests and packagers,
 * called before any masq_nat_* function. The string must stay valid. */
void masq_nat_set_state_dir(const char *dir);

#endif
