/* Linux TUN devices: the client's (and server's) end of the tunnel where
 * IP packets enter and leave the kernel's stack (RFC 9484 §6: the
 * tunnelled payload is "a full IP packet", which is exactly what an
 * IFF_TUN | IFF_NO_PI device reads and writes).
 *
 * Offloads: with a virtio-net header (vnet_hdr) the kernel may hand over
 * one TCP/UDP "super-packet" of up to 64 KiB instead of many MTU-sized
 * ones (TSO/USO) and leave checksums to the reader (TUN_F_CSUM), the
 * device-side counterpart of UDP GSO/GRO in net.h. The header is the
 * plain 10-octet struct virtio_net_hdr (<linux/virtio_net.h>), not the
 * 12-octet _v1 / mrg_rxbuf one: its num_buffers field means nothing on a
 * TUN fd. Its 16-bit fields are little-endian on every host (forced with
 * TUNSETVNETLE, as in virtio 1.0). */
#ifndef MASQ_IO_TUN_H
#define MASQ_IO_TUN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Bytes of struct virtio_net_hdr in front of every packet read from or
 * written to a TUN opened with vnet_hdr. */
#define MASQ_TUN_VNET_HDR_LEN 10

/* TUNSETOFFLOAD flags (<linux/if_tun.h>). The USO ones (UDP segmentation,
 * Linux 6.2) are missing from older headers, so tun.c defines them when
 * absent; they are repeated here so callers need no kernel header. */
#define MASQ_TUN_F_CSUM 0x01 /* the reader completes partial checksums */
#define MASQ_TUN_F_TSO4 0x02 /* TCP super-packets (needs CSUM) */
#define MASQ_TUN_F_TSO6 0x04
#define MASQ_TUN_F_USO4 0x20 /* UDP super-packets (needs CSUM and USO6; 6.2+) */
#define MASQ_TUN_F_USO6 0x40

/* Creates a TUN device (IFF_TUN | IFF_NO_PI: bare IP packets, no
 * 4-octet packet-information prefix), with IFF_VNET_HDR if vnet_hdr is
 * non-zero. name_or_empty is the wanted name (< IFNAMSIZ = 16 octets; a
 * "%d" in it lets the kernel number it); NULL or "" lets the kernel pick
 * "tunN". The device is not persistent: it vanishes, with its addresses
 * and routes, when the fd is closed. It starts down, without addresses
 * (see netlink.h).
 *
 * The fd is non-blocking and close-on-exec. If actual_name is non-NULL
 * it receives the device's name and cap must be >= 16 (IFNAMSIZ).
 * Returns the fd, or -1 with errno:
 *   EINVAL        name too long or cap too small (checked first), or the
 *                 name belongs to an existing device that is not a TUN;
 *   EBUSY         a TUN of that name is already attached to another fd;
 *   EPERM         no CAP_NET_ADMIN (in the device's network namespace);
 *   ENOENT/ENODEV /dev/net/tun missing or the tun driver absent;
 *   others from open(2) / ioctl(2). */
int masq_tun_open(const char *name_or_empty, int vnet_hdr, char *actual_name, size_t cap);

/* TUNSETOFFLOAD: which offloads the kernel may use on packets it hands
 * to this fd (MASQ_TUN_F_* or 0 for none, the default). Non-zero flags
 * need a vnet_hdr fd, since the header is what describes a super-packet
 * or a partial checksum: without it this fails with EINVAL before asking
 * the kernel (which would accept them and then hand over super-packets
 * with nothing to describe them). The kernel refuses with EINVAL:
 * unknown flags; TSO4/TSO6/USO4/USO6 without CSUM; USO4 without USO6 or
 * the reverse (one device feature serves both); and, before Linux 6.2,
 * any USO flag -- so callers should retry without them. Packets written
 * to the fd may use GSO and partial checksums whatever is set here.
 * Returns 0 or -1 with errno. */
int masq_tun_set_offload(int fd, unsigned flags);

/* Asks for every offload masq can undo (CSUM, TSO4, TSO6, USO4, USO6)
 * and falls back to CSUM | TSO4 | TSO6 where the kernel refuses USO
 * (before Linux 6.2). Returns the flags now in effect, or -1 with errno
 * if even the fallback is refused (the fd then has none). */
int masq_tun_offload_all(int fd);

/* Reads one packet (preceded by the 10-octet virtio-net header on a
 * vnet_hdr fd). Returns its length, header included, or -1 with errno:
 * EAGAIN when there is none; EMSGSIZE when it is larger than cap -- the
 * packet is consumed and dropped, never truncated silently (cap should
 * be 10 + 65535 with TSO/USO, the device MTU (+ 10) otherwise); EINVAL
 * (packet dropped too) when cap + 1 is smaller than the header. EINTR
 * is retried. */
ssize_t masq_tun_read(int fd, uint8_t *buf, size_t cap);

/* Writes one packet (header first on a vnet_hdr fd) into the kernel as if
 * received on the device. Returns 0 or -1 with errno: EAGAIN if the
 * kernel cannot take it now; EIO if the device is down; EINVAL for what
 * the kernel cannot parse (first nibble neither 4 nor 6, a short or bad
 * virtio-net header, an unknown GSO type); EIO too for a short write,
 * which TUN never does. EINTR is retried. Like a UDP send, success does
 * not mean delivery: the stack may still drop the packet (bad checksum,
 * truncated IP header, no route, rp_filter). */
int masq_tun_write(int fd, const uint8_t *buf, size_t len);

/* masq_tun_write of a header hdr[0..hlen) followed by pkt[0..len) in one
 * write (writev), so a packet need not be copied behind its virtio-net
 * header. Same returns. */
int masq_tun_writev(int fd, const uint8_t *hdr, size_t hlen, const uint8_t *pkt, size_t len);

#endif
