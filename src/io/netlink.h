/* Interface, address, route and policy-rule configuration over
 * rtnetlink (libmnl), for the TUN device of tun.h: what `ip link`,
 * `ip addr`, `ip route` and `ip rule` do, without running them.
 *
 * Every call is a synchronous request on its own short-lived
 * NETLINK_ROUTE socket: these run a handful of times at tunnel setup and
 * teardown, so a shared socket (and its sequence numbers, stale replies
 * and thread-safety) is not worth keeping. Every request asks for an
 * acknowledgement (NLM_F_ACK) and waits for it, so a return of 0 means
 * the kernel has applied the change. On failure the functions return -1
 * with errno set to the kernel's error (or to a local one, listed below,
 * for arguments refused before asking), and the kernel's extended-ack
 * text, when it gives one, is kept for masq_nl_errmsg().
 *
 * Common kernel errors: EPERM (no CAP_NET_ADMIN in this network
 * namespace), ENODEV (no interface with that index), EINVAL (malformed
 * request, e.g. an MTU out of the device's range or a route prefix with
 * host bits set), EEXIST (adding what exists), and for deletions of what
 * does not exist: EADDRNOTAVAIL (address), ESRCH (route), ENOENT (rule).
 *
 * Families are masq_ip's: 4 or 6 (EAFNOSUPPORT otherwise). Tables are
 * 32-bit routing table ids; 0 means the main table (254).
 *
 * Order matters on Linux: setting a link down deletes its IPv6 addresses
 * (unless net.ipv6.conf.*.keep_addr_on_down) and every route through it
 * (IPv4 addresses stay and get their prefix route back on up), and an
 * IPv4 route needs the link up. So: link up, then addresses, then
 * routes, then rules. */
#ifndef MASQ_IO_NETLINK_H
#define MASQ_IO_NETLINK_H

#include <stdint.h>

#include "proto/addr.h"

/* The index of interface `name`, or -1 with errno (ENODEV if there is no
 * such interface, name NULL or too long included). */
int masq_nl_ifindex(const char *name);

/* Sets interface ifindex up (up > 0), down (up == 0) or leaves its state
 * (up < 0), and its MTU when mtu > 0 (the MTU is applied first, so a
 * device comes up with it). Returns 0 or -1 with errno (ENODEV for
 * ifindex <= 0 or unknown; EINVAL for an MTU outside the device's
 * range, e.g. below 68 on a TUN). */
int masq_nl_link_set(int ifindex, int up, int mtu);

/* Adds (add != 0) or deletes the address c->ip with on-link prefix length
 * c->plen on interface ifindex, like `ip addr add 10.0.0.1/24 dev X`:
 * unlike masq_cidr_parse's output, host bits are expected here. The
 * kernel adds the prefix route itself (once the link is up). IPv6
 * addresses are added with IFA_F_NODAD: the tunnel's addresses are
 * assigned by the peer (RFC 9484 ADDRESS_ASSIGN), so Duplicate Address
 * Detection has nobody to ask, and without NODAD the address would stay
 * "tentative" (unusable as a source) for about a second. The kernel
 * installs an IPv6 address's local route (what delivers packets to it)
 * asynchronously after acknowledging the request, so an IPv6 addition
 * waits (at most 2 s, in practice microseconds) for that route and only
 * then returns 0: -1 with ETIMEDOUT means the address exists but is not
 * yet reachable. IPv4 needs no wait. Adding an existing address fails
 * with EEXIST; deleting a missing one with EADDRNOTAVAIL. Local errors:
 * EAFNOSUPPORT (family), EINVAL (plen > 32 or 128), ENODEV (ifindex <=
 * 0). */
int masq_nl_addr(int ifindex, const masq_cidr *c, int add);

/* Adds (add != 0) or deletes the route to dst through interface ifindex
 * (a device route: no gateway, as on a point-to-point TUN) in `table`,
 * like `ip route add 10.0.0.0/8 dev X table T`. dst->plen 0 is a default
 * route. Adding an existing route fails with EEXIST (never replaces);
 * deleting a missing one with ESRCH. An IPv4 route needs the device up
 * (ENETDOWN otherwise) and host bits clear (EINVAL). Deletion matches
 * dst, table and device (a vanished device: ESRCH). Local errors as for
 * masq_nl_addr. */
int masq_nl_route(const masq_cidr *dst, int ifindex, uint32_t table, int add);

/* Adds (add != 0) or deletes a policy rule "lookup table" for the family,
 * matching packets whose firewall mark is fwmark (all 32 bits), or, with
 * not_fwmark, whose mark is NOT fwmark (FIB_RULE_INVERT): wg-quick's
 * `ip rule add not fwmark 51820 table 51820`, which sends everything but
 * the tunnel's own marked UDP into the tunnel's table. fwmark 0 matches
 * every packet (no FRA_FWMARK). priority 0 lets the kernel choose (one
 * below the rule after "local", e.g. 32765) when adding, and matches any
 * priority when deleting; otherwise it is the rule's preference. Adding
 * an identical rule fails with EEXIST; deleting a missing one with
 * ENOENT. The kernel ignores the invert flag when comparing rules: with
 * the same mark, table and priority, "fwmark X" and "not fwmark X" count
 * as duplicates, and deleting either may remove the other. It does
 * compare the rule's protocol, so the kernel's own default rules
 * (protocol "kernel") can be duplicated by an add here. */
int masq_nl_rule(int family, uint32_t fwmark, uint32_t table, uint32_t priority,
                 int not_fwmark, int add);

/* Adds (add != 0) or deletes the rule "lookup table
 * suppress_prefixlength plen": a route found there is ignored if its
 * prefix is plen bits or shorter. wg-quick pairs the rule above with
 * `ip rule add table main suppress_prefixlength 0`, so the main table
 * still serves everything but its default route (LAN and host routes
 * keep working) while the default comes from the tunnel's table. Errors
 * as for masq_nl_rule; EINVAL for plen > 128. */
int masq_nl_rule_suppress(int family, uint32_t table, uint32_t priority, uint32_t plen, int add);

/* The kernel's extended-ack message (e.g. "Invalid prefix for given
 * prefix length") if the last request this thread sent to the kernel
 * failed and the kernel explained why, else "". Valid until the next
 * request (a call refused by the local checks sends none). */
const char *masq_nl_errmsg(void);

#endif
