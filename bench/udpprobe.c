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
 * Send errors are counted as losses and never stop the sender (a tunnel
 * that is still coming up refuses packets). Both ends run on the same
 * machine, so the header is in host byte order. */
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

static struct sockaddr_storage peer;
static socklen_t peer_len;

static int client_socket(const char *host, const char *port) {
  struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICHOST}, *res;
  int r = getaddrinfo(host, port, &hints, &res);
  if (r != 0) {
    fprintf(stderr, "udpprobe: %s port %s: %s\n", host, port, gai_strerror(r));
    exit(2);
  }
  memcpy(&peer, res->ai_addr, res->ai_addrlen);
  peer_len = res->ai_addrlen;
  int fd = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  freeaddrinfo(res);
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

/* Receives one probe header (waiting at most timeout_ms); 1 if one came. */
static int recv_hdr(int fd, struct hdr *h, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r = poll(&p, 1, timeout_ms);
  if (r < 0 && errno != EINTR) {
    perror("udpprobe: poll");
    exit(1);
  }
  if (r <= 0) return 0;
  uint8_t b[2048];
  ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
  if (n < (ssize_t)sizeof(*h)) return 0;
  memcpy(h, b, sizeof(*h));
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
      (void)!sendto(fd, buf, (size_t)size, 0, (struct sockaddr *)&peer, peer_len);
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
    (void)!sendto(fd, &h, sizeof(h), 0, (struct sockaddr *)&peer, peer_len);
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
    (void)!sendto(fd, &h, sizeof(h), 0, (struct sockaddr *)&peer, peer_len);
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
  static struct iovec iov[BATCH];
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
        iov[i] = (struct iovec){bufs[i], (size_t)g_size};
        memset(&msg[i], 0, sizeof(msg[i]));
        msg[i].msg_hdr.msg_iov = &iov[i];
        msg[i].msg_hdr.msg_iovlen = 1;
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
    (void)!sendto(fd, &h, sizeof(h), 0, (struct sockaddr *)&peer, peer_len);
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
          "       udpprobe load HOST PORT --mbit R --seconds S [--size B]\n");
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
    else if (!strcmp(o, "--size")) size = (long)arg_num(o, v, (double)sizeof(struct hdr), MAX_SIZE);
    else usage();
  }
  int fd = client_socket(argv[2], argv[3]);
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
