/* rtnetlink requests, declared in netlink.h.
 *
 * Each request is built in a stack buffer, sent on a fresh socket with
 * NLM_F_ACK, and the reply is read until the kernel's NLMSG_ERROR
 * message: error 0 is the acknowledgement, a negative one the failure.
 * The socket asks for NETLINK_CAP_ACK (the error need not echo our
 * request back) and NETLINK_EXT_ACK (a text reason); both are optional
 * (older kernels), so their failure is ignored. */
#include "io/netlink.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "io/loop.h"

/* Requests are a header plus at most five small attributes (under 100
 * octets: mnl_attr_put does not check room, so keep it ample). Replies
 * are capped acks with an extended-ack string, or one route. */
#define NL_REQ_SIZE 512
#define NL_RX_SIZE 8192

typedef union nl_buf {
  char b[NL_REQ_SIZE];
  struct nlmsghdr align;
} nl_buf;

typedef union nl_rxbuf {
  char b[NL_RX_SIZE];
  struct nlmsghdr align;
} nl_rxbuf;

static _Thread_local char nl_errmsg[256];

const char *masq_nl_errmsg(void) { return nl_errmsg; }

/* ---- request / acknowledgement ---- */

static int extack_attr(const struct nlattr *attr, void *data) {
  (void)data;
  if (mnl_attr_get_type(attr) != NLMSGERR_ATTR_MSG ||
      mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) < 0)
    return MNL_CB_OK;
  const char *s = mnl_attr_get_str(attr);
  size_t n = strnlen(s, sizeof(nl_errmsg) - 1);
  memcpy(nl_errmsg, s, n);
  nl_errmsg[n] = '\0';
  return MNL_CB_OK;
}

/* The TLVs follow struct nlmsgerr, whose embedded header is followed by
 * the rest of our request unless the kernel capped it. */
static void save_extack(const struct nlmsghdr *nlh, const struct nlmsgerr *err) {
  if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return;
  size_t off = sizeof(*err);
  if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
    if (err->msg.nlmsg_len < sizeof(struct nlmsghdr)) return;
    off += err->msg.nlmsg_len - sizeof(struct nlmsghdr);
  }
  if (off >= mnl_nlmsg_get_payload_len(nlh)) return;
  (void)mnl_attr_parse(nlh, (unsigned)off, extack_attr, NULL);
}

/* NLMSG_ERROR is only ever unicast, so it answers our request (a fresh
 * socket has sent nothing else). */
static int on_error(const struct nlmsghdr *nlh, void *data) {
  (void)data;
  const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);
  if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*err))) {
    errno = EBADMSG;
    return MNL_CB_ERROR;
  }
  if (err->error == 0) return MNL_CB_STOP; /* the acknowledgement */
  save_extack(nlh, err);
  errno = err->error < 0 ? -err->error : err->error;
  return MNL_CB_ERROR;
}

/* groups: RTMGRP_* notifications to receive besides the replies. */
static struct mnl_socket *nl_open(unsigned groups) {
  struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (!nl) return NULL;
  int one = 1;
  (void)mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof(one));
  (void)mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof(one));
  if (mnl_socket_bind(nl, groups, MNL_SOCKET_AUTOPID) < 0) {
    int e = errno;
    mnl_socket_close(nl);
    errno = e;
    return NULL;
  }
  return nl;
}

static void nl_close(struct mnl_socket *nl) {
  int e = errno;
  mnl_socket_close(nl);
  errno = e;
}

static int nl_send(struct mnl_socket *nl, const struct nlmsghdr *nlh) {
  nl_errmsg[0] = '\0';
  ssize_t sent = mnl_socket_sendto(nl, nlh, nlh->nlmsg_len);
  if (sent < 0) return -1;
  if ((size_t)sent != nlh->nlmsg_len) { /* netlink sends all or nothing */
    errno = EMSGSIZE;
    return -1;
  }
  return 0;
}

/* Reads one datagram and dispatches it: replies and notifications to
 * on_data (may be NULL), the ack or error to on_error. Returns 1 on the
 * ack, 0 if it was something else, -1 with errno on an error. mnl's
 * sequence and port checks are off (0, 0): notifications carry whatever
 * request caused them, another process's included. */
static int nl_recv(struct mnl_socket *nl, mnl_cb_t on_data, void *data) {
  nl_rxbuf rx;
  /* mnl_cb_run2 takes a non-const array, so it lives on the stack. */
  mnl_cb_t ctl[NLMSG_MIN_TYPE] = {[NLMSG_ERROR] = on_error};
  ssize_t n = mnl_socket_recvfrom(nl, rx.b, sizeof(rx.b));
  if (n < 0) return errno == EINTR ? 0 : -1;
  int r = mnl_cb_run2(rx.b, (size_t)n, 0, 0, on_data, data, ctl, NLMSG_MIN_TYPE);
  if (r == MNL_CB_ERROR) return -1;
  return r == MNL_CB_STOP;
}

/* Sends nlh on a fresh socket and waits for its acknowledgement. */
static int nl_request(struct nlmsghdr *nlh) {
  struct mnl_socket *nl = nl_open(0);
  if (!nl) return -1;
  int r = nl_send(nl, nlh);
  while (r == 0) r = nl_recv(nl, NULL, NULL);
  nl_close(nl);
  return r < 0 ? -1 : 0;
}

/* A fresh socket sees no other request, so any sequence number works. */
static struct nlmsghdr *nl_start(nl_buf *buf, uint16_t type, uint16_t flags) {
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf->b);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | NLM_F_ACK | flags);
  nlh->nlmsg_seq = 1;
  return nlh;
}

/* Additions must not silently replace: EEXIST tells the caller. */
static uint16_t create_flags(int add) { return add ? NLM_F_CREATE | NLM_F_EXCL : 0; }

/* ---- argument checks ---- */

static int family_af(int family) {
  switch (family) {
  case 4:
    return AF_INET;
  case 6:
    return AF_INET6;
  default:
    errno = EAFNOSUPPORT;
    return -1;
  }
}

/* The address family of c (AF_*) and its address length, or -1. */
static int check_cidr(const masq_cidr *c, size_t *alen) {
  int af = family_af(c->ip.family);
  if (af < 0) return -1;
  *alen = af == AF_INET ? 4 : 16;
  if (c->plen > *alen * 8) {
    errno = EINVAL;
    return -1;
  }
  return af;
}

static int check_ifindex(int ifindex) {
  if (ifindex > 0) return 0;
  errno = ENODEV;
  return -1;
}

/* Tables above 255 only fit the 32-bit attribute; the header's 8-bit
 * field then says "see the attribute". */
static uint32_t table_id(uint32_t table) { return table ? table : RT_TABLE_MAIN; }
static uint8_t table_u8(uint32_t table) {
  return table < 256 ? (uint8_t)table : (uint8_t)RT_TABLE_UNSPEC;
}

/* ---- interfaces and links ---- */

int masq_nl_ifindex(const char *name) {
  if (!name) {
    errno = ENODEV;
    return -1;
  }
  errno = 0;
  unsigned i = if_nametoindex(name);
  if (i == 0) {
    if (errno == 0) errno = ENODEV;
    return -1;
  }
  return (int)i;
}

int masq_nl_link_set(int ifindex, int up, int mtu) {
  if (check_ifindex(ifindex) < 0) return -1;
  nl_buf buf;
  struct nlmsghdr *nlh = nl_start(&buf, RTM_NEWLINK, 0);
  struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  if (up >= 0) {
    ifi->ifi_change = IFF_UP;
    ifi->ifi_flags = up ? IFF_UP : 0;
  }
  /* do_setlink applies IFLA_MTU before the flags. */
  if (mtu > 0) mnl_attr_put_u32(nlh, IFLA_MTU, (uint32_t)mtu);
  return nl_request(nlh);
}

/* ---- addresses ---- */

/* IPv6 installs an address's local route (the one that delivers packets
 * to it) from a workqueue after acknowledging RTM_NEWADDR, IFA_F_NODAD or
 * not (addrconf_dad_work); until then packets to the address are
 * dropped. So an IPv6 addition also waits for that route's RTM_NEWROUTE
 * notification, on a second socket subscribed before the request is sent
 * (the notification may come before the ack) and kept apart from the
 * request socket so a flood of notifications cannot crowd out the ack. */
#define LOCAL_ROUTE_WAIT_NS (2000ull * 1000 * 1000)

typedef struct local_route {
  const uint8_t *addr; /* 16 octets */
  int ifindex;         /* 0: any device (a route lookup answers "dev lo") */
  int seen;
} local_route;

static int route_attr(const struct nlattr *attr, void *data) {
  const struct nlattr **tb = data;
  int type = mnl_attr_get_type(attr);
  if (type == RTA_DST || type == RTA_OIF) tb[type] = attr;
  return MNL_CB_OK;
}

static int is_addr_attr(const struct nlattr *a, const uint8_t *addr) {
  return a && mnl_attr_get_payload_len(a) == 16 && memcmp(mnl_attr_get_payload(a), addr, 16) == 0;
}

static int is_oif_attr(const struct nlattr *a, int ifindex) {
  return a && mnl_attr_validate(a, MNL_TYPE_U32) == 0 && mnl_attr_get_u32(a) == (uint32_t)ifindex;
}

/* Data callback: sets w->seen on "local ADDR/128 [dev IFINDEX]". */
static int on_route(const struct nlmsghdr *nlh, void *data) {
  local_route *w = data;
  const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
  if (nlh->nlmsg_type != RTM_NEWROUTE || mnl_nlmsg_get_payload_len(nlh) < sizeof(*rtm))
    return MNL_CB_OK;
  if (rtm->rtm_family != AF_INET6 || rtm->rtm_type != RTN_LOCAL || rtm->rtm_dst_len != 128)
    return MNL_CB_OK;
  const struct nlattr *tb[RTA_MAX + 1] = {0};
  if (mnl_attr_parse(nlh, sizeof(*rtm), route_attr, tb) < 0) return MNL_CB_OK;
  if (is_addr_attr(tb[RTA_DST], w->addr) && (!w->ifindex || is_oif_attr(tb[RTA_OIF], w->ifindex)))
    w->seen = 1;
  return MNL_CB_OK;
}

/* 1 if the kernel routes addr locally now (`ip -6 route get ADDR` says
 * "local"), 0 if not, -1 with errno: the fallback when notifications
 * were lost. */
static int local_route_present(const uint8_t *addr) {
  nl_buf buf;
  struct nlmsghdr *nlh = nl_start(&buf, RTM_GETROUTE, 0);
  struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
  rtm->rtm_family = AF_INET6;
  rtm->rtm_dst_len = 128;
  mnl_attr_put(nlh, RTA_DST, 16, addr);
  struct mnl_socket *nl = nl_open(0);
  if (!nl) return -1;
  local_route w = {.addr = addr};
  int r = nl_send(nl, nlh);
  while (r == 0) r = nl_recv(nl, on_route, &w);
  nl_close(nl);
  if (r < 0) return errno == ENETUNREACH || errno == EHOSTUNREACH ? 0 : -1;
  return w.seen;
}

/* Reads notifications from mon until w is seen or the wait is over. */
static int wait_local_route(struct mnl_socket *mon, local_route *w) {
  uint64_t deadline = masq_now() + LOCAL_ROUTE_WAIT_NS;
  while (!w->seen) {
    uint64_t now = masq_now();
    if (now >= deadline) break;
    struct pollfd p = {.fd = mnl_socket_get_fd(mon), .events = POLLIN};
    int r = poll(&p, 1, (int)((deadline - now) / 1000000) + 1);
    if (r < 0 && errno != EINTR) return -1;
    if (r <= 0) continue;
    if (nl_recv(mon, on_route, w) >= 0) continue;
    if (errno != ENOBUFS) return -1;
    /* Notifications overflowed: perhaps ours among them. */
    int present = local_route_present(w->addr);
    if (present < 0) return -1;
    w->seen = present;
  }
  if (w->seen) return 0;
  int present = local_route_present(w->addr);
  if (present == 0) errno = ETIMEDOUT;
  return present > 0 ? 0 : -1;
}

static int addr6_add(struct nlmsghdr *nlh, const uint8_t *addr, int ifindex) {
  struct mnl_socket *mon = nl_open(RTMGRP_IPV6_ROUTE);
  if (!mon) return -1;
  local_route w = {.addr = addr, .ifindex = ifindex};
  int r = nl_request(nlh);
  if (r == 0) r = wait_local_route(mon, &w);
  nl_close(mon);
  return r;
}

int masq_nl_addr(int ifindex, const masq_cidr *c, int add) {
  size_t alen;
  int af = check_cidr(c, &alen);
  if (af < 0 || check_ifindex(ifindex) < 0) return -1;
  nl_buf buf;
  struct nlmsghdr *nlh = nl_start(&buf, add ? RTM_NEWADDR : RTM_DELADDR, create_flags(add));
  struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
  ifa->ifa_family = (uint8_t)af;
  ifa->ifa_prefixlen = c->plen;
  ifa->ifa_flags = (af == AF_INET6 && add) ? IFA_F_NODAD : 0;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = (uint32_t)ifindex;
  /* LOCAL is our address, ADDRESS the peer's on a point-to-point link;
   * equal values mean "no peer", so the kernel adds the prefix route. */
  mnl_attr_put(nlh, IFA_LOCAL, alen, c->ip.a);
  mnl_attr_put(nlh, IFA_ADDRESS, alen, c->ip.a);
  /* IPv4 inserts the local route synchronously (fib_add_ifaddr). */
  if (af == AF_INET6 && add) return addr6_add(nlh, c->ip.a, ifindex);
  return nl_request(nlh);
}

/* ---- routes ---- */

int masq_nl_route(const masq_cidr *dst, int ifindex, uint32_t table, int add) {
  size_t alen;
  int af = check_cidr(dst, &alen);
  if (af < 0 || check_ifindex(ifindex) < 0) return -1;
  table = table_id(table);
  nl_buf buf;
  struct nlmsghdr *nlh = nl_start(&buf, add ? RTM_NEWROUTE : RTM_DELROUTE, create_flags(add));
  struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
  rtm->rtm_family = (uint8_t)af;
  rtm->rtm_dst_len = dst->plen;
  rtm->rtm_table = table_u8(table);
  if (add) {
    rtm->rtm_protocol = RTPROT_STATIC;
    rtm->rtm_scope = RT_SCOPE_LINK; /* on-link: no gateway */
    rtm->rtm_type = RTN_UNICAST;
  } else {
    /* Zero protocol and type, and scope NOWHERE, match any (as `ip route
     * del` does). */
    rtm->rtm_scope = RT_SCOPE_NOWHERE;
  }
  if (dst->plen) mnl_attr_put(nlh, RTA_DST, alen, dst->ip.a);
  mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)ifindex);
  mnl_attr_put_u32(nlh, RTA_TABLE, table);
  return nl_request(nlh);
}

/* ---- policy rules ---- */

/* The part common to both rule kinds: "[pref P] lookup T". */
static struct nlmsghdr *rule_start(nl_buf *buf, int af, uint32_t table, uint32_t priority,
                                   int add) {
  table = table_id(table);
  struct nlmsghdr *nlh = nl_start(buf, add ? RTM_NEWRULE : RTM_DELRULE, create_flags(add));
  struct fib_rule_hdr *frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
  frh->family = (uint8_t)af;
  frh->table = table_u8(table);
  frh->action = FR_ACT_TO_TBL;
  mnl_attr_put_u32(nlh, FRA_TABLE, table);
  if (priority) mnl_attr_put_u32(nlh, FRA_PRIORITY, priority);
  return nlh;
}

int masq_nl_rule(int family, uint32_t fwmark, uint32_t table, uint32_t priority,
                 int not_fwmark, int add) {
  int af = family_af(family);
  if (af < 0) return -1;
  nl_buf buf;
  struct nlmsghdr *nlh = rule_start(&buf, af, table, priority, add);
  struct fib_rule_hdr *frh = mnl_nlmsg_get_payload(nlh);
  if (not_fwmark) frh->flags |= FIB_RULE_INVERT;
  if (fwmark) {
    mnl_attr_put_u32(nlh, FRA_FWMARK, fwmark);
    mnl_attr_put_u32(nlh, FRA_FWMASK, UINT32_MAX);
  }
  return nl_request(nlh);
}

int masq_nl_rule_suppress(int family, uint32_t table, uint32_t priority, uint32_t plen,
                          int add) {
  int af = family_af(family);
  if (af < 0) return -1;
  if (plen > 128) {
    errno = EINVAL;
    return -1;
  }
  nl_buf buf;
  struct nlmsghdr *nlh = rule_start(&buf, af, table, priority, add);
  mnl_attr_put_u32(nlh, FRA_SUPPRESS_PREFIXLEN, plen);
  return nl_request(nlh);
}
