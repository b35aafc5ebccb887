/* tcpprobe: bulk TCP for bench/compare.sh where iperf3 cannot go: through
 * a SOCKS5 proxy (RFC 1928, no authentication).
 *
 *   tcpprobe sink PORT
 *       counts what each connection carries, sends the running count back
 *       (8 bytes) at most every 50 ms while data flows, and once more when
 *       the sender closes its side
 *   tcpprobe send HOST PORT [--streams N] [--seconds S] [--socks HOST:PORT]
 *       N connections (through the SOCKS5 proxy if given) write as fast as
 *       they can for S seconds; prints "result mbit M bytes B" with B the
 *       bytes the sink had reported receiving by then (receiver side, as
 *       iperf3 reports) and M = B over S. Data still queued is dropped.
 *   tcpprobe first HOST PORT [--socks HOST:PORT] [--timeout S]
 *       tries every 10 ms to send one byte and get its count back; prints
 *       the CLOCK_REALTIME in ns of the first success ("first NS")
 *
 * Both ends run on the same machine: the count is in host byte order. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 256
#define CHUNK (128 * 1024)

static double now_s(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
    perror("tcpprobe: clock_gettime");
    exit(1);
  }
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double arg_num(const char *what, const char *s, double lo, double hi) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) {
    fprintf(stderr, "tcpprobe: %s wants a number in %g..%g, not \"%s\"\n", what, lo, hi, s);
    exit(2);
  }
  return v;
}

static int set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* ---- sink --------------------------------------------------------------- */

static int sink(int port) {
  int lfd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), off = 0, on = 1;
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
  if (lfd < 0 || setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) != 0 ||
      setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
      bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 64) != 0 ||
      set_nonblock(lfd) != 0) {
    perror("tcpprobe sink: listen");
    return 1;
  }
  static struct pollfd pf[MAX_CONNS + 1];
  static uint64_t count[MAX_CONNS + 1];
  static double reported[MAX_CONNS + 1];
  static uint8_t buf[CHUNK];
  int n = 1;
  pf[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
  printf("ready\n");
  if (fflush(stdout) != 0) return 1;
  for (;;) {
    if (poll(pf, (nfds_t)n, -1) < 0) {
      if (errno == EINTR) continue;
      perror("tcpprobe sink: poll");
      return 1;
    }
    if (pf[0].revents & POLLIN) {
      int c;
      while (n <= MAX_CONNS && (c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        pf[n] = (struct pollfd){.fd = c, .events = POLLIN};
        reported[n] = now_s();
        count[n++] = 0;
      }
    }
    for (int i = 1; i < n; i++) {
      if (!pf[i].revents) continue;
      ssize_t r;
      while ((r = read(pf[i].fd, buf, sizeof(buf))) > 0) count[i] += (uint64_t)r;
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        /* A running count; a full socket just skips one. */
        if (now_s() - reported[i] >= 0.05) {
          reported[i] = now_s();
          (void)!write(pf[i].fd, &count[i], sizeof(count[i]));
        }
        continue;
      }
      if (r == 0) { /* the sender is done: answer with the count; if that
                     * fails, the sender reports the missing count */
        (void)!write(pf[i].fd, &count[i], sizeof(count[i]));
      }
      close(pf[i].fd);
      pf[i] = pf[n - 1];
      count[i] = count[n - 1];
      reported[i] = reported[n - 1];
      n--;
      i--;
    }
  }
}

/* ---- sender ------------------------------------------------------------- */

static int full_io(int fd, void *p, size_t len, int rd) {
  uint8_t *b = p;
  while (len) {
    ssize_t r = rd ? read(fd, b, len) : write(fd, b, len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    b += r;
    len -= (size_t)r;
  }
  return 0;
}

static int dial(const char *host, const char *port) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *res;
  int r = getaddrinfo(host, port, &hints, &res);
  if (r != 0) {
    fprintf(stderr, "tcpprobe: %s port %s: %s\n", host, port, gai_strerror(r));
    return -1;
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    fprintf(stderr, "tcpprobe: connect %s:%s: %s\n", host, port, strerror(errno));
    if (fd >= 0) close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd;
}

/* A SOCKS5 CONNECT to an IPv4 target, without authentication. */
static int socks_connect(int fd, const char *host, int port) {
  uint8_t hello[3] = {5, 1, 0}, rep[10];
  struct in_addr a;
  if (inet_pton(AF_INET, host, &a) != 1) {
    fprintf(stderr, "tcpprobe: SOCKS5 target must be an IPv4 address\n");
    return -1;
  }
  if (full_io(fd, hello, 3, 0) || full_io(fd, rep, 2, 1) || rep[0] != 5 || rep[1] != 0) {
    fprintf(stderr, "tcpprobe: the SOCKS5 proxy refused the greeting\n");
    return -1;
  }
  uint8_t req[10] = {5, 1, 0, 1};
  memcpy(req + 4, &a, 4);
  req[8] = (uint8_t)(port >> 8);
  req[9] = (uint8_t)port;
  if (full_io(fd, req, 10, 0) || full_io(fd, rep, 4, 1) || rep[0] != 5) {
    fprintf(stderr, "tcpprobe: no SOCKS5 reply\n");
    return -1;
  }
  if (rep[1] != 0) {
    fprintf(stderr, "tcpprobe: SOCKS5 CONNECT failed with reply %u\n", rep[1]);
    return -1;
  }
  size_t rest = rep[3] == 1 ? 6 : rep[3] == 4 ? 18 : 0;
  if (rep[3] == 3) {
    uint8_t l;
    if (full_io(fd, &l, 1, 1)) return -1;
    rest = (size_t)l + 2;
  }
  uint8_t skip[300];
  return rest && full_io(fd, skip, rest, 1) ? -1 : 0;
}

static int sender(const char *host, const char *port, int streams, double seconds,
                  const char *socks) {
  static int fds[MAX_CONNS];
  static uint8_t buf[CHUNK];
  memset(buf, 0x5a, sizeof(buf));
  for (int i = 0; i < streams; i++) {
    if (socks) {
      char sh[64];
      const char *colon = strrchr(socks, ':');
      if (!colon || (size_t)(colon - socks) >= sizeof(sh)) {
        fprintf(stderr, "tcpprobe: --socks wants HOST:PORT\n");
        return 2;
      }
      memcpy(sh, socks, (size_t)(colon - socks));
      sh[colon - socks] = 0;
      fds[i] = dial(sh, colon + 1);
      if (fds[i] < 0 || socks_connect(fds[i], host, atoi(port)) != 0) return 1;
    } else {
      fds[i] = dial(host, port);
      if (fds[i] < 0) return 1;
    }
    if (set_nonblock(fds[i]) != 0) {
      perror("tcpprobe: O_NONBLOCK");
      return 1;
    }
  }
  double start = now_s(), end = start + seconds;
  uint64_t sent = 0;
  static uint64_t last[MAX_CONNS];
  static uint8_t acc[MAX_CONNS][8];
  static size_t accn[MAX_CONNS];
  struct pollfd pf[MAX_CONNS];
  for (;;) {
    double left = end - now_s();
    if (left <= 0) break;
    for (int i = 0; i < streams; i++) pf[i] = (struct pollfd){.fd = fds[i], .events = POLLOUT | POLLIN};
    int r = poll(pf, (nfds_t)streams, (int)(left * 1000) + 1);
    if (r < 0 && errno != EINTR) {
      perror("tcpprobe: poll");
      return 1;
    }
    for (int i = 0; i < streams && r > 0; i++) {
      if (pf[i].revents & (POLLERR | POLLHUP)) {
        fprintf(stderr, "tcpprobe: stream %d failed\n", i);
        return 1;
      }
      if (pf[i].revents & POLLIN) { /* running counts, 8 bytes each */
        ssize_t g = read(fds[i], acc[i] + accn[i], 8 - accn[i]);
        if (g == 0) {
          fprintf(stderr, "tcpprobe: stream %d closed by the far end\n", i);
          return 1;
        }
        if (g > 0 && (accn[i] += (size_t)g) == 8) {
          memcpy(&last[i], acc[i], 8);
          accn[i] = 0;
        }
      }
      if (!(pf[i].revents & POLLOUT)) continue;
      ssize_t w = write(fds[i], buf, sizeof(buf));
      if (w > 0) sent += (uint64_t)w;
    }
  }
  uint64_t total = 0;
  for (int i = 0; i < streams; i++) {
    total += last[i];
    close(fds[i]);
  }
  double dur = seconds;
  printf("result mbit %.1f bytes %llu sent %llu seconds %.2f\n", (double)total * 8 / dur / 1e6,
         (unsigned long long)total, (unsigned long long)sent, dur);
  return 0;
}

/* One byte there and its count back, through the proxy if given. */
static int one_byte(const char *host, const char *port, const char *socks) {
  int fd;
  if (socks) {
    char sh[64];
    const char *colon = strrchr(socks, ':');
    if (!colon || (size_t)(colon - socks) >= sizeof(sh)) return -1;
    memcpy(sh, socks, (size_t)(colon - socks));
    sh[colon - socks] = 0;
    fd = dial(sh, colon + 1);
    if (fd >= 0 && socks_connect(fd, host, atoi(port)) != 0) {
      close(fd);
      return -1;
    }
  } else {
    fd = dial(host, port);
  }
  if (fd < 0) return -1;
  uint8_t b = 1;
  uint64_t c = 0;
  struct timeval tv = {.tv_sec = 5};
  int ok = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 && full_io(fd, &b, 1, 0) == 0 &&
           shutdown(fd, SHUT_WR) == 0 && full_io(fd, &c, sizeof(c), 1) == 0 && c == 1;
  close(fd);
  return ok ? 0 : -1;
}

static int first(const char *host, const char *port, const char *socks, double timeout) {
  double deadline = now_s() + timeout;
  while (now_s() < deadline) {
    if (one_byte(host, port, socks) == 0) {
      struct timespec ts;
      if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 1;
      printf("first %llu\n", (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec);
      return 0;
    }
    struct timespec pause = {0, 10000000};
    if (nanosleep(&pause, NULL) != 0 && errno != EINTR) {
      perror("tcpprobe: nanosleep");
      return 1;
    }
  }
  fprintf(stderr, "tcpprobe first: nothing came through within %.0f s\n", timeout);
  return 1;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "sink")) return sink((int)arg_num("PORT", argv[2], 1, 65535));
  if (argc >= 4 && (!strcmp(argv[1], "send") || !strcmp(argv[1], "first"))) {
    int streams = 1;
    double seconds = 5, timeout = 20;
    const char *socks = NULL;
    for (int i = 4; i + 1 < argc; i += 2) {
      if (!strcmp(argv[i], "--streams")) streams = (int)arg_num("--streams", argv[i + 1], 1, MAX_CONNS);
      else if (!strcmp(argv[i], "--seconds")) seconds = arg_num("--seconds", argv[i + 1], 0.1, 3600);
      else if (!strcmp(argv[i], "--socks")) socks = argv[i + 1];
      else if (!strcmp(argv[i], "--timeout")) timeout = arg_num("--timeout", argv[i + 1], 0.1, 3600);
      else goto usage;
    }
    if ((argc - 4) % 2) goto usage;
    if (!strcmp(argv[1], "first")) return first(argv[2], argv[3], socks, timeout);
    return sender(argv[2], argv[3], streams, seconds, socks);
  }
usage:
  fprintf(stderr, "usage: tcpprobe sink PORT\n"
                  "       tcpprobe send HOST PORT [--streams N] [--seconds S] [--socks HOST:PORT]\n"
                  "       tcpprobe first HOST PORT [--socks HOST:PORT] [--timeout S]\n");
  return 2;
}
