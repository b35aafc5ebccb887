/* udpbench: a one-way UDP load generator and sink for bench/udp_bulk.sh.
 *
 *   udpbench sink PORT SECONDS          count what arrives, print a summary
 *   udpbench send HOST PORT SIZE MBPS SECONDS
 *
 * The sender paces datagrams to MBPS (0 = as fast as the socket takes
 * them), each carrying a sequence number so the sink can count loss. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long arg_long(const char *s, long lo, long hi) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi) {
    fprintf(stderr, "udpbench: bad number \"%s\" (%ld..%ld)\n", s, lo, hi);
    exit(2);
  }
  return v;
}

static int sink(int port, double seconds) {
  int fd = socket(AF_INET6, SOCK_DGRAM, 0);
  int off = 0, rcvbuf = 8 << 20;
  setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    perror("udpbench sink: bind");
    return 1;
  }
  static uint8_t buf[65536];
  uint64_t pkts = 0, bytes = 0, maxseq = 0;
  double first = 0, last = 0, deadline = now_s() + seconds + 30;
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    /* Stop 1 s after the flow goes quiet, or at the hard deadline. */
    int r = poll(&p, 1, pkts ? 1000 : 100);
    if (r == 0 && (pkts || now_s() > deadline)) break;
    if (r <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 8) continue;
    uint64_t seq;
    memcpy(&seq, buf, 8);
    if (!pkts) first = now_s();
    last = now_s();
    pkts++;
    bytes += (uint64_t)n;
    if (seq + 1 > maxseq) maxseq = seq + 1;
  }
  double dur = last - first;
  double loss = maxseq ? 100.0 * (double)(maxseq - pkts) / (double)maxseq : 0;
  printf("received %llu datagrams, %llu bytes in %.3f s: %.1f Mbit/s goodput, %.2f%% lost\n",
         (unsigned long long)pkts, (unsigned long long)bytes, dur,
         dur > 0 ? (double)bytes * 8 / dur / 1e6 : 0, loss);
  return 0;
}

static int sender(const char *host, const char *port, long size, long mbps, double seconds) {
  struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res;
  if (getaddrinfo(host, port, &hints, &res) != 0) {
    fprintf(stderr, "udpbench send: cannot resolve %s\n", host);
    return 2;
  }
  int fd = socket(res->ai_family, SOCK_DGRAM, 0);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    perror("udpbench send: connect");
    return 2;
  }
  freeaddrinfo(res);
  static uint8_t buf[65536];
  memset(buf, 0xa5, sizeof(buf));
  double interval = mbps ? (double)size * 8 / ((double)mbps * 1e6) : 0;
  double start = now_s(), next = start;
  uint64_t seq = 0, failed = 0;
  while (now_s() - start < seconds) {
    if (interval) {
      while (now_s() < next) {
      }
      next += interval;
    }
    memcpy(buf, &seq, 8);
    if (send(fd, buf, (size_t)size, 0) < 0) failed++;
    seq++;
  }
  double dur = now_s() - start;
  printf("sent %llu datagrams of %ld bytes in %.3f s (%.1f Mbit/s offered), %llu send errors\n",
         (unsigned long long)seq, size, dur, (double)seq * (double)size * 8 / dur / 1e6,
         (unsigned long long)failed);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[1], "sink"))
    return sink((int)arg_long(argv[2], 1, 65535), (double)arg_long(argv[3], 1, 3600));
  if (argc == 7 && !strcmp(argv[1], "send"))
    return sender(argv[2], argv[3], arg_long(argv[4], 8, 65507), arg_long(argv[5], 0, 100000),
                  (double)arg_long(argv[6], 1, 3600));
  fprintf(stderr, "usage: udpbench sink PORT SECONDS | udpbench send HOST PORT SIZE MBPS SECONDS\n");
  return 2;
}
