/* TUN devices, declared in tun.h. */
#include "io/tun.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

/* UDP segmentation offload arrived in Linux 6.2 (if_tun.h there);
 * Debian 12's headers predate it. The values are kernel ABI. */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

_Static_assert(sizeof(struct virtio_net_hdr) == MASQ_TUN_VNET_HDR_LEN,
               "MASQ_TUN_VNET_HDR_LEN is the legacy virtio-net header");
_Static_assert(MASQ_TUN_F_CSUM == TUN_F_CSUM && MASQ_TUN_F_TSO4 == TUN_F_TSO4 &&
                   MASQ_TUN_F_TSO6 == TUN_F_TSO6 && MASQ_TUN_F_USO4 == TUN_F_USO4 &&
                   MASQ_TUN_F_USO6 == TUN_F_USO6,
               "MASQ_TUN_F_* mirror <linux/if_tun.h>");

static int fail_close(int fd) {
  int e = errno;
  close(fd);
  errno = e;
  return -1;
}

/* The header size is 10 by default, but another user of a persistent
 * device may have changed it, and the little-endian layout only becomes
 * the default on big-endian hosts with TUNSETVNETLE. */
static int setup_vnet_hdr(int fd) {
  int sz = (int)sizeof(struct virtio_net_hdr);
  if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) return -1;
  int le = 1;
  return ioctl(fd, TUNSETVNETLE, &le);
}

int masq_tun_open(const char *name_or_empty, int vnet_hdr, char *actual_name, size_t cap) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  size_t n = name_or_empty ? strlen(name_or_empty) : 0;
  if (n >= sizeof(ifr.ifr_name) || (actual_name && cap < IFNAMSIZ)) {
    errno = EINVAL;
    return -1;
  }
  if (n) memcpy(ifr.ifr_name, name_or_empty, n);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0);

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) return fail_close(fd);
  if (vnet_hdr && setup_vnet_hdr(fd) < 0) return fail_close(fd);
  if (actual_name) {
    /* The kernel NUL-terminates ifr_name (at most IFNAMSIZ - 1 chars). */
    size_t len = strnlen(ifr.ifr_name, sizeof(ifr.ifr_name) - 1);
    memcpy(actual_name, ifr.ifr_name, len);
    actual_name[len] = '\0';
  }
  return fd;
}

static int has_vnet_hdr(int fd) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  if (ioctl(fd, TUNGETIFF, &ifr) < 0) return -1;
  return (ifr.ifr_flags & IFF_VNET_HDR) != 0;
}

int masq_tun_set_offload(int fd, unsigned flags) {
  if (flags) {
    /* Without the header a super-packet would arrive as one oversized IP
     * packet with nothing to say how to split it. */
    int v = has_vnet_hdr(fd);
    if (v < 0) return -1;
    if (!v) {
      errno = EINVAL;
      return -1;
    }
  }
  return ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0 ? -1 : 0;
}

int masq_tun_offload_all(int fd) {
  unsigned all = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6;
  if (masq_tun_set_offload(fd, all) == 0) return (int)all;
  if (errno != EINVAL) return -1;
  unsigned tcp = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  return masq_tun_set_offload(fd, tcp) == 0 ? (int)tcp : -1;
}

/* A second, one-octet iovec catches packets longer than cap: TUN copies
 * as much as fits and drops the rest without a flag (IFF_NO_PI has no
 * TUN_PKT_STRIP), so "exactly cap" and "more than cap" are only told
 * apart by offering one octet more. */
ssize_t masq_tun_read(int fd, uint8_t *buf, size_t cap) {
  uint8_t extra;
  struct iovec iov[2] = {{.iov_base = buf, .iov_len = cap},
                         {.iov_base = &extra, .iov_len = 1}};
  ssize_t n;
  do n = readv(fd, iov, 2);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  if ((size_t)n > cap) {
    errno = EMSGSIZE;
    return -1;
  }
  return n;
}

int masq_tun_write(int fd, const uint8_t *buf, size_t len) {
  ssize_t n;
  do n = write(fd, buf, len);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  if ((size_t)n != len) {
    errno = EIO;
    return -1;
  }
  return 0;
}

int masq_tun_writev(int fd, const uint8_t *hdr, size_t hlen, const uint8_t *pkt, size_t len) {
  struct iovec iov[2] = {{.iov_base = (void *)(uintptr_t)hdr, .iov_len = hlen},
                         {.iov_base = (void *)(uintptr_t)pkt, .iov_len = len}};
  ssize_t n;
  do n = writev(fd, iov, 2);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  if ((size_t)n != hlen + len) {
    errno = EIO;
    return -1;
  }
  return 0;
}
