/* udpprobe: the UDP measurements of bench/compare.sh, one program at both
 * ends so that every system is measured the same way.
 *
 *   udpprobe serve PORT
 *       echoes pings, counts data per (run, step) and answers reports
 *   udpprobe ping HOST PORT [--interval MS] [--seconds S] [--after S] [--size B]
 *       round trips: prints "ping sent N received M loss% p50 p99 min max" (ms)
 *   udpprobe first HOST PORT [--timeout S]
 *       pings every 2 ms until the first answer; prints its CLOCK_REALTIME
 *       in ns ("first NS"), so a caller can time a tunnel coming up
 *   udpprobe settle HOST PORT [--timeout S]
 *       the same, silently: exit 0 once the path answers (queues drained)
 *   udpprobe rate HOST PORT [--size B] [--step S] [--max-loss PCT]
 *                 [--start MBIT] [--max MBIT] [--grow F] [--drain MS] [--bisect N]
 *                 [--tries N] [--settle S]
 *       highest paced rate whose loss stays under --max-loss: multiplies
 *       by --grow (default 2) from --start, or halves if that fails, until
 *       a rate loses too much in two tries, then bisects N times
 *   udpprobe load HOST PORT --mbit R --seconds S [--size B]
 *       one paced step at R (background load), reports like rate
 *
 * Every client subcommand also takes --socks HOST:PORT: the datagrams
 * then go through a SOCKS5 proxy's UDP ASSOCIATE (RFC 1928 §7, no
 * authentication), each behind the relay header, which replies must carry
 * too (replies with a bad header are dropped and counted on stderr). The
 * sizes and rates printed are the payload's alone, as without a proxy.
 *
 * Send errors are counted as losses and never stop the sender (a tunnel
 * that is still coming up refuses packets). Both ends run on the same
 * machine, so the header is in host byte order. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#define MAGIC 0x4d515042u /* "MQPB" */
enum { T_PING = 1, T_DATA = 2, T_REPORT = 3, T_REPORT_REPLY = 4 };

struct hdr {
  uint32_t magic;
  uint8_t type, pad[3];
  uint32_t run, step, seq;
  uint64_t t_ns, count, bytes;
};

#define BATCH 64
#define MAX_SIZE 65000

static uint64_t mono_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
    perror("udpprobe: clock_gettime");
    exit(1);
  }
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t real_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
    perror("udpprobe: clock_gettime");
    exit(1);
  }
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double arg_num(const char *what, const char *s, double lo, double hi) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) {
    fprintf(stderr, "udpprobe: %s wants a number in %g..%g, not \"%s\"\n", what, lo, hi, s);
    exit(2);
  }
  return v;
}

static void sleep_until(uint64_t t) {
  struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull), .tv_nsec = (long)(t % 1000000000ull)};
  int r;
  while ((r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR) {
  }
  if (r != 0) {
    fprintf(stderr, "udpprobe: clock_nanosleep: %s\n", strerror(r));
    exit(1);
  }
}

/* ---- server ------------------------------------------------------------- */

struct tally {
  uint32_t run, step;
  uint64_t count, bytes;
};

static int serve(int port) {
  int fd = socket(AF_INET6, SOCK_DGRAM, 0);
  if (fd < 0) {
    perror("udpprobe serve: socket");
    return 1;
  }
  int off = 0, buf = 16 << 20;
  if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)) != 0) {
    perror("udpprobe serve: setsockopt");
    return 1;
  }
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    perror("udpprobe serve: bind");
    return 1;
  }
  static struct tally tallies[4096];
  static uint8_t bufs[BATCH][2048];
  static struct sockaddr_storage from[BATCH];
  static struct iovec iov[BATCH];
  static struct mmsghdr msg[BATCH];
  printf("ready\n");
  if (fflush(stdout) != 0) return 1;
  for (;;) {
    for (int i = 0; i < BATCH; i++) {
      iov[i] = (struct iovec){bufs[i], sizeof(bufs[i])};
      memset(&msg[i], 0, sizeof(msg[i]));
      msg[i].msg_hdr.msg_iov = &iov[i];
      msg[i].msg_hdr.msg_iovlen = 1;
      msg[i].msg_hdr.msg_name = &from[i];
      msg[i].msg_hdr.msg_namelen = sizeof(from[i]);
    }
    int n = recvmmsg(fd, msg, BATCH, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("udpprobe serve: recvmmsg");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      size_t len = msg[i].msg_len;
      struct hdr h;
      if (len < sizeof(h)) continue;
      memcpy(&h, bufs[i], sizeof(h));
      if (h.magic != MAGIC) continue;
      struct tally *t = &tallies[(h.run * 31u + h.step) & 4095u];
      if (h.type == T_DATA) {
        if (t->run != h.run || t->step != h.step) *t = (struct tally){h.run, h.step, 0, 0};
        t->count++;
        t->bytes += len;
        continue;
      }
      if (h.type == T_REPORT) {
        h.type = T_REPORT_REPLY;
        if (t->run == h.run && t->step == h.step) {
          h.count = t->count;
          h.bytes = t->bytes;
        } else {
          h.count = h.bytes = 0;
        }
        memcpy(bufs[i], &h, sizeof(h));
        len = sizeof(h);
      } else if (h.type != T_PING) {
        continue;
      }
      /* Errors answering are the client's loss, which it measures. */
      (void)!sendto(fd, bufs[i], len, MSG_DONTWAIT, (struct sockaddr *)&from[i],
                    msg[i].msg_hdr.msg_namelen);
    }
  }
}

/* ---- client side -------------------------------------------------------- */

/* Where datagrams go: the target itself, or the SOCKS5 relay. */
static struct sockaddr_storage peer;
static socklen_t peer_len;

/* With --socks: the RFC 1928 §7 header in front of every datagram to the
 * target (RSV RSV FRAG ATYP DST.ADDR DST.PORT), built once since there is
 * one target; replies carry the same one, the target being their origin.
 * s5_len is 0 without a proxy. */
#define S5_HDR_MAX 22 /* 4 + an IPv6 address + 2 */
static uint8_t s5_hdr[S5_HDR_MAX];
static size_t s5_len;
static int s5_ctl = -1; /* the association lasts as long as this connection */
static uint64_t s5_frag, s5_bad, s5_foreign; /* replies dropped, by reason */

static void resolve(const char *host, const char *port, int socktype, struct sockaddr_storage *ss,
                    socklen_t *len) {
  struct addrinfo hints = {.ai_socktype = socktype, .ai_flags = AI_NUMERICHOST}, *res;
  int r = getaddrinfo(host, port, &hints, &res);
  if (r != 0) {
    fprintf(stderr, "udpprobe: %s port %s: %s\n", host, port, gai_strerror(r));
    exit(2);
  }
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
}

static int udp_socket(int family) {
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    perror("udpprobe: socket");
    exit(1);
  }
  int buf = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) != 0) {
    perror("udpprobe: setsockopt");
    exit(1);
  }
  return fd;
}

static int client_socket(const char *host, const char *port) {
  resolve(host, port, SOCK_DGRAM, &peer, &peer_len);
  return udp_socket(peer.ss_family);
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family) return 0;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
  return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, 16);
}

/* ---- SOCKS5 UDP ASSOCIATE (RFC 1928, no authentication) ----------------- */

static const char *s5_rep_name(unsigned rep) {
  static const char *const names[] = {"succeeded", "general SOCKS server failure",
                                      "connection not allowed by ruleset", "network unreachable",
                                      "host unreachable", "connection refused", "TTL expired",
                                      "command not supported", "address type not supported"};
  return rep < sizeof(names) / sizeof(names[0]) ? names[rep] : "unassigned";
}

/* Reads or writes exactly len bytes of the control connection, or exits
 * saying which step failed: nothing can be measured without it. */
static void ctl_io(void *p, size_t len, int rd, const char *what) {
  uint8_t *b = p;
  while (len) {
    ssize_t r = rd ? recv(s5_ctl, b, len, 0) : send(s5_ctl, b, len, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      const char *why = r == 0 ? "the proxy closed the connection"
                        : errno == EAGAIN || errno == EWOULDBLOCK ? "no answer within 10 s"
                        : strerror(errno);
      fprintf(stderr, "udpprobe: SOCKS5 %s: %s\n", what, why);
      exit(1);
    }
    b += r;
    len -= (size_t)r;
  }
}

/* Writes ATYP ADDR PORT, the address form that requests (§4) and UDP
 * headers (§7) share; returns its length. */
static size_t s5_put_addr(uint8_t *out, const struct sockaddr_storage *a) {
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const void *)a;
    out[0] = 1;
    memcpy(out + 1, &in->sin_addr, 4);
    memcpy(out + 5, &in->sin_port, 2); /* both already in network order */
    return 7;
  }
  const struct sockaddr_in6 *in6 = (const void *)a;
  out[0] = 4;
  memcpy(out + 1, &in6->sin6_addr, 16);
  memcpy(out + 17, &in6->sin6_port, 2);
  return 19;
}

/* Connects the control connection to HOST:PORT (an IPv6 HOST may be in
 * brackets), with 10 s limits so that a silent proxy cannot hang a
 * benchmark. */
static void s5_dial(const char *socks) {
  char host[64];
  const char *colon = strrchr(socks, ':');
  size_t hl = colon ? (size_t)(colon - socks) : 0;
  if (!colon || hl == 0 || hl >= sizeof(host) || !colon[1]) {
    fprintf(stderr, "udpprobe: --socks wants HOST:PORT, not \"%s\"\n", socks);
    exit(2);
  }
  memcpy(host, socks, hl);
  host[hl] = 0;
  char *h = host;
  if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
    host[hl - 1] = 0;
    h++;
  }
  struct sockaddr_storage a;
  socklen_t alen;
  resolve(h, colon + 1, SOCK_STREAM, &a, &alen);
  struct timeval tv = {.tv_sec = 10};
  s5_ctl = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s5_ctl < 0 || setsockopt(s5_ctl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
      setsockopt(s5_ctl, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
      connect(s5_ctl, (struct sockaddr *)&a, alen) != 0) {
    fprintf(stderr, "udpprobe: SOCKS5 proxy %s: %s\n", socks, strerror(errno));
    exit(1);
  }
}

/* The probe's UDP socket, on the address the control connection comes
 * from, so that the address given in the request is the one the relay
 * will see (a strict proxy admits only that). */
static int s5_udp_socket(struct sockaddr_storage *local, socklen_t *len) {
  *len = sizeof(*local);
  if (getsockname(s5_ctl, (struct sockaddr *)local, len) != 0) {
    perror("udpprobe: getsockname");
    exit(1);
  }
  if (local->ss_family == AF_INET) ((struct sockaddr_in *)local)->sin_port = 0;
  else ((struct sockaddr_in6 *)local)->sin6_port = 0;
  int fd = udp_socket(local->ss_family);
  if (bind(fd, (struct sockaddr *)local, *len) != 0 ||
      getsockname(fd, (struct sockaddr *)local, len) != 0) {
    perror("udpprobe: bind");
    exit(1);
  }
  return fd;
}

/* Reads BND.ADDR and BND.PORT of the reply into peer: the relay. An
 * unspecified BND.ADDR (0.0.0.0 or ::) means the proxy's own address. */
static void s5_read_relay(unsigned atyp) {
  uint8_t b[18];
  int unspecified;
  memset(&peer, 0, sizeof(peer));
  if (atyp == 1) {
    struct sockaddr_in *in = (struct sockaddr_in *)&peer;
    ctl_io(b, 6, 1, "UDP ASSOCIATE reply");
    in->sin_family = AF_INET;
    memcpy(&in->sin_addr, b, 4);
    memcpy(&in->sin_port, b + 4, 2);
    peer_len = sizeof(*in);
    unspecified = in->sin_addr.s_addr == htonl(INADDR_ANY);
  } else if (atyp == 4) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&peer;
    ctl_io(b, 18, 1, "UDP ASSOCIATE reply");
    in6->sin6_family = AF_INET6;
    memcpy(&in6->sin6_addr, b, 16);
    memcpy(&in6->sin6_port, b + 16, 2);
    peer_len = sizeof(*in6);
    unspecified = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
  } else {
    fprintf(stderr, "udpprobe: the SOCKS5 relay's address has type %u; only IPv4 (1) and "
                    "IPv6 (4) are supported\n", atyp);
    exit(1);
  }
  in_port_t port = atyp == 1 ? ((struct sockaddr_in *)&peer)->sin_port
                             : ((struct sockaddr_in6 *)&peer)->sin6_port;
  if (port == 0) {
    fprintf(stderr, "udpprobe: the SOCKS5 proxy gave its relay port 0\n");
    exit(1);
  }
  if (!unspecified) return;
  peer_len = sizeof(peer);
  if (getpeername(s5_ctl, (struct sockaddr *)&peer, &peer_len) != 0) {
    perror("udpprobe: getpeername");
    exit(1);
  }
  if (peer.ss_family == AF_INET) ((struct sockaddr_in *)&peer)->sin_port = port;
  else ((struct sockaddr_in6 *)&peer)->sin6_port = port;
}

/* Greeting, UDP ASSOCIATE for the probe's socket fd (bound at local),
 * and the relay from the reply in peer. */
static void s5_associate(int fd, const struct sockaddr_storage *local) {
  uint8_t msg[4 + 19] = {5, 1, 0}; /* VER, one method: no authentication */
  ctl_io(msg, 3, 0, "greeting");
  ctl_io(msg, 2, 1, "greeting reply");
  if (msg[0] != 5) {
    fprintf(stderr, "udpprobe: --socks: not a SOCKS5 proxy (version %u)\n", msg[0]);
    exit(1);
  }
  if (msg[1] != 0) {
    fprintf(stderr, "udpprobe: the SOCKS5 proxy refused no authentication (method 0x%02x)\n",
            msg[1]);
    exit(1);
  }
  msg[0] = 5, msg[1] = 3, msg[2] = 0; /* VER, CMD UDP ASSOCIATE, RSV */
  ctl_io(msg, 3 + s5_put_addr(msg + 3, local), 0, "UDP ASSOCIATE");
  ctl_io(msg, 4, 1, "UDP ASSOCIATE reply");
  if (msg[0] != 5) {
    fprintf(stderr, "udpprobe: bad SOCKS5 reply (version %u)\n", msg[0]);
    exit(1);
  }
  if (msg[1] != 0) {
    fprintf(stderr, "udpprobe: the SOCKS5 proxy refused UDP ASSOCIATE: REP %u (%s)\n", msg[1],
            s5_rep_name(msg[1]));
    exit(1);
  }
  s5_read_relay(msg[3]);
  if (peer.ss_family != local->ss_family) {
    fprintf(stderr, "udpprobe: the SOCKS5 relay is %s, the control connection %s\n",
            peer.ss_family == AF_INET ? "IPv4" : "IPv6",
            local->ss_family == AF_INET ? "IPv4" : "IPv6");
    exit(1);
  }
}

static void s5_report(void) {
  if (s5_frag + s5_bad + s5_foreign == 0) return;
  fprintf(stderr, "udpprobe: SOCKS5: dropped %llu replies with FRAG != 0, %llu with a malformed "
                  "header, %llu not from the target through the relay\n",
          (unsigned long long)s5_frag, (unsigned long long)s5_bad, (unsigned long long)s5_foreign);
}

/* The probe's socket with --socks: datagrams to the target at host:port
 * go to the proxy's relay behind the header. */
static int socks_socket(const char *host, const char *port, const char *socks) {
  struct sockaddr_storage target, local;
  socklen_t tlen, llen;
  resolve(host, port, SOCK_DGRAM, &target, &tlen);
  s5_hdr[0] = s5_hdr[1] = s5_hdr[2] = 0; /* RSV RSV FRAG: never fragmented */
  s5_len = 3 + s5_put_addr(s5_hdr + 3, &target);
  s5_dial(socks);
  int fd = s5_udp_socket(&local, &llen);
  s5_associate(fd, &local);
  if (atexit(s5_report) != 0) {
    fprintf(stderr, "udpprobe: atexit failed\n");
    exit(1);
  }
  return fd;
}

/* Checks the relay header of a reply and returns its length, or 0 (and
 * counts why) if the reply is to be dropped: RSV not zero or a header cut
 * short, a fragment (RFC 1928 §7 lets a client that does not reassemble
 * drop them), or an origin other than the target. */
static size_t s5_strip(const uint8_t *b, size_t n) {
  if (n < 4 || b[0] || b[1]) {
    s5_bad++;
    return 0;
  }
  if (b[2]) {
    s5_frag++;
    return 0;
  }
  size_t len = b[3] == 1 ? 10 : b[3] == 4 ? 22 : b[3] == 3 && n > 4 ? 7 + (size_t)b[4] : 0;
  if (len == 0 || n < len) {
    s5_bad++;
    return 0;
  }
  if (len != s5_len || memcmp(b, s5_hdr, len) != 0) {
    s5_foreign++;
    return 0;
  }
  return len;
}

/* The proxy ends the association by closing the control connection
 * (anything it sends there means nothing); without it every later
 * datagram would be a loss, so stop and say why. */
static void s5_check_ctl(void) {
  uint8_t junk[64];
  ssize_t r = recv(s5_ctl, junk, sizeof(junk), MSG_DONTWAIT);
  if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) return;
  fprintf(stderr, "udpprobe: the SOCKS5 proxy closed the control connection: %s\n",
          r == 0 ? "the UDP association is over" : strerror(errno));
  exit(1);
}

/* ---- datagrams ---------------------------------------------------------- */

/* Fills v with the pieces of one datagram, the relay header if any and
 * then the payload (never copied); returns how many. */
static size_t dgram_iov(struct iovec *v, void *payload, size_t len) {
  size_t n = 0;
  if (s5_len) v[n++] = (struct iovec){s5_hdr, s5_len};
  v[n++] = (struct iovec){payload, len};
  return n;
}

static void send_dgram(int fd, void *payload, size_t len) {
  struct iovec v[2];
  struct msghdr m = {.msg_name = &peer, .msg_namelen = peer_len, .msg_iov = v};
  m.msg_iovlen = dgram_iov(v, payload, len);
  /* A refused datagram is a loss, which the caller measures. */
  (void)!sendmsg(fd, &m, 0);
}

/* Receives one probe header (waiting at most timeout_ms); 1 if one came. */
static int recv_hdr(int fd, struct hdr *h, int timeout_ms) {
  struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = s5_ctl, .events = POLLIN}};
  int r = poll(p, 2, timeout_ms); /* poll skips the -1 of no proxy */
  if (r < 0 && errno != EINTR) {
    perror("udpprobe: poll");
    exit(1);
  }
  if (r <= 0) return 0;
  if (p[1].revents) s5_check_ctl();
  uint8_t b[2048];
  struct sockaddr_storage from;
  socklen_t flen = sizeof(from);
  ssize_t n = recvfrom(fd, b, sizeof(b), MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
  if (n < 0) return 0;
  size_t off = 0;
  if (s5_len) {
    if (!same_addr(&from, &peer)) {
      s5_foreign++;
      return 0;
    }
    if ((off = s5_strip(b, (size_t)n)) == 0) return 0;
  }
  if ((size_t)n - off < sizeof(*h)) return 0;
  memcpy(h, b + off, sizeof(*h));
  return h->magic == MAGIC;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int ping(int fd, double interval_ms, double seconds, double after, long size) {
  if (after > 0) sleep_until(mono_ns() + (uint64_t)(after * 1e9));
  uint64_t step = (uint64_t)(interval_ms * 1e6);
  uint32_t total = (uint32_t)(seconds * 1e3 / interval_ms);
  if (total < 1) total = 1;
  uint64_t *rtt = calloc(total, sizeof(*rtt));
  uint8_t *seen = calloc(total, 1);
  uint8_t buf[MAX_SIZE];
  if (!rtt || !seen) {
    fprintf(stderr, "udpprobe: out of memory\n");
    return 1;
  }
  memset(buf, 0x5a, (size_t)size);
  uint32_t sent = 0, got = 0;
  uint64_t start = mono_ns(), maxrtt = 0, end_wait = 0;
  for (;;) {
    uint64_t now = mono_ns();
    if (sent < total && now >= start + sent * step) {
      struct hdr h = {.magic = MAGIC, .type = T_PING, .seq = sent, .t_ns = now};
      memcpy(buf, &h, sizeof(h));
      send_dgram(fd, buf, (size_t)size);
      if (++sent == total) end_wait = now + 1000000000ull;
      continue;
    }
    if (sent == total && (got == total || now >= end_wait)) break;
    uint64_t next = sent < total ? start + sent * step : end_wait;
    int wait_ms = next > now ? (int)((next - now + 999999) / 1000000) : 0;
    struct hdr h;
    if (!recv_hdr(fd, &h, wait_ms)) continue;
    now = mono_ns();
    if (h.type != T_PING || h.seq >= sent || seen[h.seq]) continue;
    seen[h.seq] = 1;
    rtt[got++] = now - h.t_ns;
    if (now - h.t_ns > maxrtt) {
      maxrtt = now - h.t_ns;
      /* Stragglers: wait three times the worst round trip seen, >= 1 s. */
      if (sent == total && now + 3 * maxrtt > end_wait) end_wait = now + 3 * maxrtt;
    }
  }
  qsort(rtt, got, sizeof(*rtt), cmp_u64);
  double p50 = got ? (double)rtt[(got - 1) / 2] / 1e6 : -1;
  double p99 = got ? (double)rtt[(size_t)((got - 1) * 0.99)] / 1e6 : -1;
  printf("ping sent %u received %u loss %.2f%% p50 %.3f p99 %.3f min %.3f max %.3f ms\n", sent, got,
         100.0 * (sent - got) / sent, p50, p99, got ? (double)rtt[0] / 1e6 : -1,
         got ? (double)rtt[got - 1] / 1e6 : -1);
  free(rtt);
  free(seen);
  return got ? 0 : 1;
}

/* Pings every 2 ms until one comes back: 1 if one did within timeout. */
static int answered(int fd, double timeout) {
  uint64_t deadline = mono_ns() + (uint64_t)(timeout * 1e9);
  uint32_t seq = 0;
  while (mono_ns() < deadline) {
    struct hdr h = {.magic = MAGIC, .type = T_PING, .seq = seq++, .t_ns = mono_ns()};
    send_dgram(fd, &h, sizeof(h));
    struct hdr r;
    uint64_t until = mono_ns() + 2000000ull;
    while (mono_ns() < until)
      if (recv_hdr(fd, &r, 1) && r.type == T_PING) return 1;
  }
  return 0;
}

static int first(int fd, double timeout) {
  uint64_t start = mono_ns(), deadline = start + (uint64_t)(timeout * 1e9);
  uint32_t seq = 0;
  while (mono_ns() < deadline) {
    struct hdr h = {.magic = MAGIC, .type = T_PING, .seq = seq++, .t_ns = mono_ns()};
    send_dgram(fd, &h, sizeof(h));
    struct hdr r;
    uint64_t until = mono_ns() + 2000000ull;
    while (mono_ns() < until) {
      if (recv_hdr(fd, &r, 1) && r.type == T_PING) {
        printf("first %llu\n", (unsigned long long)real_ns());
        return 0;
      }
    }
  }
  fprintf(stderr, "udpprobe first: no answer within %.0f s\n", timeout);
  return 1;
}

/* ---- paced data --------------------------------------------------------- */

struct step_result {
  double offered_mbit, goodput_mbit, loss_pct;
  uint64_t sent, received, bytes;
  int reported;
};

static uint32_t g_run;
static long g_size = 1200;
static double g_drain_ms = 400, g_settle_s = 10;
static int g_tries = 2;

/* Sends at mbit for seconds as step `step`, then asks the server how much
 * arrived (retrying, since the report may be lost too). */
static struct step_result run_step(int fd, uint32_t step, double mbit, double seconds) {
  static uint8_t bufs[BATCH][MAX_SIZE];
  static struct iovec iov[BATCH][2]; /* the relay header, if any, then the payload */
  static struct mmsghdr msg[BATCH];
  struct step_result res = {0};
  double pps = mbit * 1e6 / 8 / (double)g_size;
  uint64_t start = mono_ns(), dur = (uint64_t)(seconds * 1e9), tick = 1000000ull;
  uint64_t seq = 0;
  for (int i = 0; i < BATCH; i++) memset(bufs[i], 0xa5, (size_t)g_size);
  for (uint64_t t = start;; t += tick) {
    uint64_t now = mono_ns();
    if (now - start >= dur) break;
    uint64_t due = (uint64_t)((double)(now - start) / 1e9 * pps) + 1;
    while (seq < due) {
      int n = (int)(due - seq < BATCH ? due - seq : BATCH);
      for (int i = 0; i < n; i++) {
        struct hdr h = {.magic = MAGIC, .type = T_DATA, .run = g_run, .step = step,
                        .seq = (uint32_t)(seq + (uint64_t)i)};
        memcpy(bufs[i], &h, sizeof(h));
        memset(&msg[i], 0, sizeof(msg[i]));
        msg[i].msg_hdr.msg_iov = iov[i];
        msg[i].msg_hdr.msg_iovlen = dgram_iov(iov[i], bufs[i], (size_t)g_size);
        msg[i].msg_hdr.msg_name = &peer;
        msg[i].msg_hdr.msg_namelen = peer_len;
      }
      int r = sendmmsg(fd, msg, (unsigned)n, 0);
      /* A refused batch counts as sent and lost: skip one datagram. */
      seq += r > 0 ? (uint64_t)r : 1;
    }
    if (t + tick > mono_ns()) sleep_until(t + tick);
  }
  double real = (double)(mono_ns() - start) / 1e9;
  res.sent = seq;
  res.offered_mbit = (double)seq * (double)g_size * 8 / real / 1e6;
  sleep_until(mono_ns() + (uint64_t)(g_drain_ms * 1e6));
  for (int attempt = 0; attempt < 20 && !res.reported; attempt++) {
    struct hdr h = {.magic = MAGIC, .type = T_REPORT, .run = g_run, .step = step};
    send_dgram(fd, &h, sizeof(h));
    uint64_t until = mono_ns() + 150000000ull;
    struct hdr r;
    while (mono_ns() < until) {
      if (recv_hdr(fd, &r, 20) && r.type == T_REPORT_REPLY && r.run == g_run && r.step == step) {
        res.reported = 1;
        res.received = r.count;
        res.bytes = r.bytes;
        break;
      }
    }
  }
  res.goodput_mbit = (double)res.bytes * 8 / real / 1e6;
  res.loss_pct = seq ? 100.0 * (double)(seq > res.received ? seq - res.received : 0) / (double)seq : 100;
  printf("step %u: target %.1f Mbit/s, offered %.1f, goodput %.1f Mbit/s, loss %.2f%% (%llu/%llu)%s\n",
         step, mbit, res.offered_mbit, res.goodput_mbit, res.loss_pct,
         (unsigned long long)res.received, (unsigned long long)seq,
         res.reported ? "" : ", no report");
  if (fflush(stdout) != 0) exit(1);
  return res;
}

/* A rate passes if one of --tries tries (default 2) stays under the loss
 * limit, so that a moment of CPU contention on a shared machine does not
 * end the search. A try starts once the path answers a ping again (up to
 * --settle seconds, default 10), so one that clogged a tunnel's queues
 * does not spoil the next. */
static struct step_result try_rate(int fd, uint32_t *step, double r, double step_s, double max_loss,
                                   uint64_t *bytes) {
  struct step_result s = {0};
  for (int attempt = 0; attempt < g_tries; attempt++) {
    if (!answered(fd, g_settle_s)) printf("the path did not answer within %.0f s\n", g_settle_s);
    s = run_step(fd, (*step)++, r, step_s);
    *bytes += s.bytes;
    if (s.reported && s.loss_pct < max_loss) break;
  }
  return s;
}

static int rate_search(int fd, double step_s, double max_loss, double start, double max,
                       double grow, int bisect) {
  struct step_result best = {0};
  double lo = 0, hi = 0, r = start;
  uint32_t step = 0;
  uint64_t bytes = 0;
  for (;;) { /* expand (or shrink, if the first rate already fails) */
    struct step_result s = try_rate(fd, &step, r, step_s, max_loss, &bytes);
    if (s.reported && s.loss_pct < max_loss) {
      lo = r;
      best = s;
      if (hi > 0 || r * grow > max || s.offered_mbit < 0.8 * r) break; /* sender-limited */
      r *= grow;
    } else {
      hi = r;
      if (lo > 0 || r / 2 < 0.25) break;
      r /= 2;
    }
  }
  for (int i = 0; i < bisect && lo > 0 && hi > 0; i++) {
    double mid = (lo + hi) / 2;
    struct step_result s = try_rate(fd, &step, mid, step_s, max_loss, &bytes);
    if (s.reported && s.loss_pct < max_loss) {
      lo = mid;
      best = s;
    } else {
      hi = mid;
    }
  }
  printf("result offered %.1f goodput %.1f loss %.2f bytes %llu steps %u\n", best.offered_mbit,
         best.goodput_mbit, best.loss_pct, (unsigned long long)bytes, step);
  return lo > 0 ? 0 : 1;
}

static void usage(void) {
  fprintf(stderr,
          "usage: udpprobe serve PORT\n"
          "       udpprobe ping HOST PORT [--interval MS] [--seconds S] [--after S] [--size B]\n"
          "       udpprobe first HOST PORT [--timeout S]\n"
          "       udpprobe settle HOST PORT [--timeout S]\n"
          "       udpprobe rate HOST PORT [--size B] [--step S] [--max-loss PCT] [--start MBIT]\n"
          "                     [--max MBIT] [--grow F] [--drain MS] [--bisect N]\n"
          "                     [--tries N] [--settle S]\n"
          "       udpprobe load HOST PORT --mbit R --seconds S [--size B]\n"
          "       every client subcommand also takes [--socks HOST:PORT] (UDP ASSOCIATE)\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "serve")) return serve((int)arg_num("PORT", argv[2], 1, 65535));
  if (argc < 4) usage();
  const char *mode = argv[1];
  double interval = 10, seconds = 5, after = 0, timeout = 20, step = 1, max_loss = 1, start = 25,
         max = 6400, mbit = 0, grow = 2;
  int bisect = 2;
  long size = 0;
  const char *socks = NULL;
  for (int i = 4; i < argc; i += 2) {
    if (i + 1 >= argc) usage();
    const char *o = argv[i], *v = argv[i + 1];
    if (!strcmp(o, "--interval")) interval = arg_num(o, v, 0.1, 10000);
    else if (!strcmp(o, "--seconds")) seconds = arg_num(o, v, 0.01, 3600);
    else if (!strcmp(o, "--after")) after = arg_num(o, v, 0, 3600);
    else if (!strcmp(o, "--timeout")) timeout = arg_num(o, v, 0.01, 3600);
    else if (!strcmp(o, "--step")) step = arg_num(o, v, 0.05, 600);
    else if (!strcmp(o, "--max-loss")) max_loss = arg_num(o, v, 0, 100);
    else if (!strcmp(o, "--start")) start = arg_num(o, v, 0.1, 100000);
    else if (!strcmp(o, "--max")) max = arg_num(o, v, 0.1, 100000);
    else if (!strcmp(o, "--grow")) grow = arg_num(o, v, 1.1, 100);
    else if (!strcmp(o, "--tries")) g_tries = (int)arg_num(o, v, 1, 10);
    else if (!strcmp(o, "--settle")) g_settle_s = arg_num(o, v, 0.01, 600);
    else if (!strcmp(o, "--mbit")) mbit = arg_num(o, v, 0.1, 100000);
    else if (!strcmp(o, "--drain")) g_drain_ms = arg_num(o, v, 0, 60000);
    else if (!strcmp(o, "--bisect")) bisect = (int)arg_num(o, v, 0, 20);
    else if (!strcmp(o, "--socks")) socks = v;
    else if (!strcmp(o, "--size")) size = (long)arg_num(o, v, (double)sizeof(struct hdr), MAX_SIZE);
    else usage();
  }
  int fd = socks ? socks_socket(argv[2], argv[3], socks) : client_socket(argv[2], argv[3]);
  g_run = (uint32_t)(real_ns() ^ ((uint64_t)getpid() << 16));
  if (!strcmp(mode, "ping")) return ping(fd, interval, seconds, after, size ? size : 64);
  if (!strcmp(mode, "first")) return first(fd, timeout);
  if (!strcmp(mode, "settle")) return answered(fd, timeout) ? 0 : 1;
  if (size) g_size = size;
  if (!strcmp(mode, "rate")) return rate_search(fd, step, max_loss, start, max, grow, bisect);
  if (!strcmp(mode, "load")) {
    if (mbit <= 0) usage();
    struct step_result s = run_step(fd, 0, mbit, seconds);
    printf("result offered %.1f goodput %.1f loss %.2f bytes %llu steps 1\n", s.offered_mbit,
           s.goodput_mbit, s.loss_pct, (unsigned long long)s.bytes);
    return s.reported ? 0 : 1;
  }
  usage();
  return 2;
}
