/* The Linux socket layer: address conversion, UDP sockets with GSO/GRO,
 * and the host's own addresses. */
#ifndef MASQ_IO_NET_H
#define MASQ_IO_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "proto/addr.h"

typedef struct masq_sockaddr {
  union {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    struct sockaddr_storage ss;
  } u;
  socklen_t len;
} masq_sockaddr;

/* Conversions between masq_ip (+port) and socket addresses. */
void masq_sockaddr_from_ip(masq_sockaddr *sa, const masq_ip *ip, uint16_t port);
int masq_sockaddr_to_ip(const masq_sockaddr *sa, masq_ip *ip, uint16_t *port); /* -1 if not INET/6 */
/* "1.2.3.4:5" / "[::1]:5" into out (cap >= 64). Returns out. */
const char *masq_sockaddr_str(const masq_sockaddr *sa, char *out, size_t cap);

/* Resolves a numeric "HOST:PORT" / "[V6]:PORT" (no DNS). 0 or -1. */
int masq_sockaddr_parse(const char *hostport, masq_sockaddr *out);

/* A non-blocking UDP socket bound to local (IPv6 wildcard is dual-stack),
 * with UDP_GRO enabled when the kernel offers it. If remote is non-NULL
 * the socket is also connected to it. Returns the fd or -1 with errno. */
int masq_udp_open(const masq_sockaddr *local, const masq_sockaddr *remote);

/* Same, but picks the family from remote and binds an ephemeral port:
 * the "one connected UDP socket per tunnel" of the server. */
int masq_udp_connect(const masq_sockaddr *remote);

/* Sets SO_MARK on fd (needs CAP_NET_ADMIN): a VPN client marks its own
 * socket so that policy rules keep the path to the proxy out of the
 * tunnel (the kernel re-routes the socket with the new mark). Returns 0
 * or -1 with errno (EPERM without the capability). */
int masq_udp_set_mark(int fd, uint32_t mark);

/* Receives one datagram (or one GRO super-datagram of equal segments).
 * *seg gets the segment size (== return value when not coalesced).
 * from may be NULL. Returns the byte count, or -1 with errno (EAGAIN when
 * empty). MSG_TRUNC is reported as -1 with errno EMSGSIZE after the
 * datagram has been consumed, so oversized input is never truncated
 * silently. With GRO, cap should be 64 KiB to hold a whole train. */
ssize_t masq_udp_recv(int fd, uint8_t *buf, size_t cap, masq_sockaddr *from, size_t *seg);

/* Sends len bytes as one datagram, or, with seg < len, as a GSO batch of
 * seg-sized datagrams (last one may be shorter). to may be NULL for a
 * connected socket; otherwise it must be in the socket's family (an IPv4
 * peer of a dual-stack socket is v4-mapped, as masq_udp_recv reports it).
 * Returns 0 or -1 with errno (EAGAIN when full). Where the kernel refuses
 * GSO the segments go out one by one; if that fails midway the rest is
 * dropped (like network loss) and 0 is returned, never a duplicate. */
int masq_udp_send(int fd, const uint8_t *buf, size_t len, size_t seg, const masq_sockaddr *to);

/* Fills out with every address configured on this host's interfaces (the
 * server's "own addresses" for the target policy). Returns the count
 * (capped at cap) or -1. */
int masq_local_addresses(masq_ip *out, size_t cap);

#endif
