/* impair: a user-space link emulator for bench/compare.sh (there is no
 * tc netem on the benchmark machines).
 *
 * It creates a TUN device and relays every IP packet it reads back into
 * the same device after impairing it. bench/compare.sh routes a "link"
 * namespace's forwarding path through that TUN both ways (packets from
 * the veths go into the TUN; packets coming out of it are routed by the
 * main table to the veths), so everything between the client and the
 * server namespaces crosses it, tunnelled or not.
 *
 *   impair --tun NAME --side-a CIDR [options]
 *
 * Packets whose IPv4 destination lies in --side-a travel "towards A",
 * all others "towards B"; each direction is impaired on its own with the
 * same settings, in this order:
 *   --loss PCT        random (Bernoulli) loss on arrival
 *   --rate MBIT       serialisation at this rate (0: unlimited) behind a
 *   --buffer-ms MS    tail-drop queue holding at most MS of backlog
 *   --delay MS        one-way propagation delay; with --delay-max MS it
 *   --period S        swings between the two and back (linearly) every S
 *                     seconds (default 10)
 *   --jitter MS       plus a uniform random 0..MS per packet, never
 *                     reordering (a packet leaves no earlier than the one
 *                     before it in the same direction, so dense traffic
 *                     sees delays skewed towards delay + MS), unless
 *   --reorder PCT     that share of packets is held --reorder-gap MS
 *                     longer (default 5) and overtaken by later ones
 *   --slots N         packets held at once, both directions (default 32768)
 *   --seed N          random seed (default 1)
 *
 * Held packets live in a pool of fixed-size slots allocated once; a
 * binary min-heap orders them by due time (ties in arrival order). On
 * SIGUSR1 it prints its counters; SIGUSR2 restarts the delay swing at its
 * minimum (so that each measurement sees the same delay course); on
 * SIGINT/SIGTERM it prints the counters and exits 0. Linux only; needs
 * CAP_NET_ADMIN for the TUN. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define SLOT_BYTES 2048 /* the TUN's MTU must stay below this */
#define READ_BATCH 64   /* packets read per wakeup before releasing due ones */

enum { TO_A, TO_B };

struct dir_stats {
  uint64_t in, lost, queue_drop, overflow, reordered, out, write_err, bytes_out;
};

struct slot_meta {
  uint64_t due_ns, order;
  uint16_t len;
  uint8_t dir;
};

static struct {
  double loss, reorder;             /* probabilities 0..1 */
  double rate_bps;                  /* 0: unlimited */
  uint64_t buffer_ns, delay_ns, delay_max_ns, period_ns, jitter_ns, reorder_gap_ns;
  uint32_t slots;
  uint32_t a_net, a_mask;           /* host order */
} cfg = {.buffer_ns = 50000000ull, .reorder_gap_ns = 5000000ull, .slots = 32768};

static uint8_t *pool;            /* slots * SLOT_BYTES */
static struct slot_meta *meta;   /* slots */
static uint32_t *free_stack, free_top;
static uint32_t *heap, heap_n;
static uint64_t order_seq, start_ns;
static uint64_t link_free_ns[2], last_due_ns[2];
static struct dir_stats st[2];
static volatile sig_atomic_t got_term, got_usr1, got_usr2;

static uint64_t now_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
    perror("impair: clock_gettime");
    exit(1);
  }
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xoshiro256** seeded through splitmix64. */
static uint64_t rng_s[4];
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static void rng_seed(uint64_t seed) {
  for (int i = 0; i < 4; i++) {
    uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    rng_s[i] = z ^ (z >> 31);
  }
}
static uint64_t rng_next(void) {
  uint64_t r = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;
  rng_s[2] ^= rng_s[0];
  rng_s[3] ^= rng_s[1];
  rng_s[1] ^= rng_s[2];
  rng_s[0] ^= rng_s[3];
  rng_s[2] ^= t;
  rng_s[3] = rotl(rng_s[3], 45);
  return r;
}
static double rng_unit(void) { return (double)(rng_next() >> 11) * 0x1.0p-53; } /* [0,1) */

/* ---- the heap of held slots, ordered by (due_ns, order) ---------------- */

static int before(uint32_t a, uint32_t b) {
  if (meta[a].due_ns != meta[b].due_ns) return meta[a].due_ns < meta[b].due_ns;
  return meta[a].order < meta[b].order;
}

static void heap_push(uint32_t s) {
  uint32_t i = heap_n++;
  heap[i] = s;
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (!before(heap[i], heap[p])) break;
    uint32_t t = heap[i];
    heap[i] = heap[p];
    heap[p] = t;
    i = p;
  }
}

static uint32_t heap_pop(void) {
  uint32_t top = heap[0];
  heap[0] = heap[--heap_n];
  uint32_t i = 0;
  for (;;) {
    uint32_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < heap_n && before(heap[l], heap[m])) m = l;
    if (r < heap_n && before(heap[r], heap[m])) m = r;
    if (m == i) break;
    uint32_t t = heap[i];
    heap[i] = heap[m];
    heap[m] = t;
    i = m;
  }
  return top;
}

/* ---- impairment --------------------------------------------------------- */

static uint64_t delay_at(uint64_t now) {
  if (cfg.delay_max_ns <= cfg.delay_ns || !cfg.period_ns) return cfg.delay_ns;
  double phase = (double)((now - start_ns) % cfg.period_ns) / (double)cfg.period_ns;
  double swing = phase < 0.5 ? 2.0 * phase : 2.0 * (1.0 - phase); /* 0 -> 1 -> 0 */
  return cfg.delay_ns + (uint64_t)(swing * (double)(cfg.delay_max_ns - cfg.delay_ns));
}

static int packet_dir(const uint8_t *p, size_t n) {
  if (n >= 20 && (p[0] >> 4) == 4) {
    uint32_t dst;
    memcpy(&dst, p + 16, 4);
    if ((ntohl(dst) & cfg.a_mask) == cfg.a_net) return TO_A;
  }
  return TO_B;
}

/* Takes the packet just read into slot s (len bytes) at time now: either
 * holds it (heap) or drops it and returns the slot to the free stack. */
static void admit(uint32_t s, size_t len, uint64_t now) {
  int d = packet_dir(pool + (size_t)s * SLOT_BYTES, len);
  struct dir_stats *ds = &st[d];
  ds->in++;
  if (cfg.loss > 0 && rng_unit() < cfg.loss) {
    ds->lost++;
    free_stack[free_top++] = s;
    return;
  }
  uint64_t t = now;
  if (cfg.rate_bps > 0) {
    uint64_t begin = link_free_ns[d] > now ? link_free_ns[d] : now;
    if (begin - now > cfg.buffer_ns) {
      ds->queue_drop++;
      free_stack[free_top++] = s;
      return;
    }
    link_free_ns[d] = begin + (uint64_t)((double)len * 8.0 * 1e9 / cfg.rate_bps);
    t = link_free_ns[d];
  }
  uint64_t due = t + delay_at(now);
  if (cfg.jitter_ns) due += (uint64_t)(rng_unit() * (double)cfg.jitter_ns);
  if (cfg.reorder > 0 && rng_unit() < cfg.reorder) {
    due += cfg.reorder_gap_ns; /* later packets may overtake this one */
    ds->reordered++;
  } else {
    if (due < last_due_ns[d]) due = last_due_ns[d];
    last_due_ns[d] = due;
  }
  meta[s].due_ns = due;
  meta[s].order = order_seq++;
  meta[s].len = (uint16_t)len;
  meta[s].dir = (uint8_t)d;
  heap_push(s);
}

static void release_due(int fd, uint64_t now) {
  while (heap_n && meta[heap[0]].due_ns <= now) {
    uint32_t s = heap_pop();
    struct dir_stats *ds = &st[meta[s].dir];
    ssize_t w = write(fd, pool + (size_t)s * SLOT_BYTES, meta[s].len);
    if (w == (ssize_t)meta[s].len) {
      ds->out++;
      ds->bytes_out += (uint64_t)w;
    } else {
      ds->write_err++;
    }
    free_stack[free_top++] = s;
  }
}

static void print_stats(void) {
  static const char *name[2] = {"towards A", "towards B"};
  for (int d = 0; d < 2; d++)
    printf("impair: %s: in %llu lost %llu queue-drop %llu overflow %llu reordered %llu out %llu "
           "(%llu bytes) write-errors %llu\n",
           name[d], (unsigned long long)st[d].in, (unsigned long long)st[d].lost,
           (unsigned long long)st[d].queue_drop, (unsigned long long)st[d].overflow,
           (unsigned long long)st[d].reordered, (unsigned long long)st[d].out,
           (unsigned long long)st[d].bytes_out, (unsigned long long)st[d].write_err);
  if (fflush(stdout) != 0) perror("impair: stdout");
}

static void on_signal(int sig) {
  if (sig == SIGUSR1)
    got_usr1 = 1;
  else if (sig == SIGUSR2)
    got_usr2 = 1;
  else
    got_term = 1;
}

/* ---- options ------------------------------------------------------------ */

static double arg_num(const char *opt, const char *s, double lo, double hi) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) {
    fprintf(stderr, "impair: %s wants a number in %g..%g, not \"%s\"\n", opt, lo, hi, s);
    exit(2);
  }
  return v;
}

static uint64_t ms_ns(double ms) { return (uint64_t)(ms * 1e6 + 0.5); }

static void parse_cidr(const char *s) {
  char buf[64];
  const char *slash = strchr(s, '/');
  size_t n = slash ? (size_t)(slash - s) : strlen(s);
  if (n >= sizeof(buf)) goto bad;
  memcpy(buf, s, n);
  buf[n] = 0;
  struct in_addr a;
  if (inet_pton(AF_INET, buf, &a) != 1) goto bad;
  int len = slash ? (int)arg_num("--side-a", slash + 1, 0, 32) : 32;
  cfg.a_mask = len ? 0xffffffffu << (32 - len) : 0;
  cfg.a_net = ntohl(a.s_addr) & cfg.a_mask;
  return;
bad:
  fprintf(stderr, "impair: --side-a wants an IPv4 CIDR, not \"%s\"\n", s);
  exit(2);
}

static void usage(void) {
  fprintf(stderr,
          "usage: impair --tun NAME --side-a CIDR [--loss PCT] [--delay MS [--delay-max MS "
          "--period S]]\n"
          "              [--jitter MS] [--reorder PCT [--reorder-gap MS]] [--rate MBIT "
          "[--buffer-ms MS]]\n"
          "              [--slots N] [--seed N]\n");
  exit(2);
}

static int open_tun(const char *name) {
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    perror("impair: /dev/net/tun");
    return -1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (strlen(name) >= IFNAMSIZ) {
    fprintf(stderr, "impair: TUN name too long: %s\n", name);
    close(fd);
    return -1;
  }
  memcpy(ifr.ifr_name, name, strlen(name) + 1);
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    perror("impair: TUNSETIFF");
    close(fd);
    return -1;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
    perror("impair: O_NONBLOCK");
    close(fd);
    return -1;
  }
  return fd;
}

int main(int argc, char **argv) {
  const char *tun = NULL;
  int have_side = 0;
  uint64_t seed = 1;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "-h") || !strcmp(o, "--help")) usage();
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (!strcmp(o, "--tun")) tun = v;
    else if (!strcmp(o, "--side-a")) parse_cidr(v), have_side = 1;
    else if (!strcmp(o, "--loss")) cfg.loss = arg_num(o, v, 0, 100) / 100;
    else if (!strcmp(o, "--reorder")) cfg.reorder = arg_num(o, v, 0, 100) / 100;
    else if (!strcmp(o, "--reorder-gap")) cfg.reorder_gap_ns = ms_ns(arg_num(o, v, 0, 10000));
    else if (!strcmp(o, "--delay")) cfg.delay_ns = ms_ns(arg_num(o, v, 0, 10000));
    else if (!strcmp(o, "--delay-max")) cfg.delay_max_ns = ms_ns(arg_num(o, v, 0, 10000));
    else if (!strcmp(o, "--period")) cfg.period_ns = ms_ns(arg_num(o, v, 0.001, 3600) * 1000);
    else if (!strcmp(o, "--jitter")) cfg.jitter_ns = ms_ns(arg_num(o, v, 0, 10000));
    else if (!strcmp(o, "--rate")) cfg.rate_bps = arg_num(o, v, 0, 1e6) * 1e6;
    else if (!strcmp(o, "--buffer-ms")) cfg.buffer_ns = ms_ns(arg_num(o, v, 0, 100000));
    else if (!strcmp(o, "--slots")) cfg.slots = (uint32_t)arg_num(o, v, 16, 1 << 22);
    else if (!strcmp(o, "--seed")) seed = (uint64_t)arg_num(o, v, 0, 1e15);
    else usage();
  }
  if (!tun || !have_side) usage();
  if (cfg.delay_max_ns > cfg.delay_ns && !cfg.period_ns) cfg.period_ns = 10000000000ull;
  rng_seed(seed);

  pool = malloc((size_t)cfg.slots * SLOT_BYTES);
  meta = calloc(cfg.slots, sizeof(*meta));
  free_stack = calloc(cfg.slots, sizeof(*free_stack));
  heap = calloc(cfg.slots, sizeof(*heap));
  if (!pool || !meta || !free_stack || !heap) {
    fprintf(stderr, "impair: cannot allocate %u slots\n", cfg.slots);
    return 1;
  }
  for (uint32_t i = 0; i < cfg.slots; i++) free_stack[i] = cfg.slots - 1 - i;
  free_top = cfg.slots;

  int fd = open_tun(tun);
  if (fd < 0) return 1;

  /* Signals stay blocked except inside ppoll, so none is lost between
   * checking the flags and going to sleep. */
  sigset_t block, waitmask;
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
      sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGUSR1, &sa, NULL) != 0 || sigaction(SIGUSR2, &sa, NULL) != 0 ||
      sigemptyset(&block) != 0 || sigaddset(&block, SIGTERM) != 0 ||
      sigaddset(&block, SIGINT) != 0 || sigaddset(&block, SIGUSR1) != 0 || sigaddset(&block, SIGUSR2) != 0 ||
      sigprocmask(SIG_BLOCK, &block, &waitmask) != 0) {
    perror("impair: signals");
    return 1;
  }

  start_ns = now_ns();
  printf("impair: ready on %s: loss %.2f%%, delay %.1f ms (max %.1f, period %.1f s), jitter %.1f "
         "ms, reorder %.2f%% (+%.1f ms), rate %.1f Mbit/s (buffer %.1f ms), %u slots\n",
         tun, cfg.loss * 100, (double)cfg.delay_ns / 1e6,
         (double)(cfg.delay_max_ns > cfg.delay_ns ? cfg.delay_max_ns : cfg.delay_ns) / 1e6,
         (double)cfg.period_ns / 1e9, (double)cfg.jitter_ns / 1e6, cfg.reorder * 100,
         (double)cfg.reorder_gap_ns / 1e6, cfg.rate_bps / 1e6, (double)cfg.buffer_ns / 1e6,
         cfg.slots);
  if (fflush(stdout) != 0) return 1;

  while (!got_term) {
    if (got_usr1) {
      got_usr1 = 0;
      print_stats();
    }
    if (got_usr2) {
      got_usr2 = 0;
      start_ns = now_ns();
    }
    struct timespec ts, *tsp = NULL;
    if (heap_n) {
      uint64_t now = now_ns(), due = meta[heap[0]].due_ns;
      uint64_t wait = due > now ? due - now : 0;
      ts.tv_sec = (time_t)(wait / 1000000000ull);
      ts.tv_nsec = (long)(wait % 1000000000ull);
      tsp = &ts;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = ppoll(&p, 1, tsp, &waitmask);
    if (r < 0) {
      if (errno == EINTR) continue;
      perror("impair: ppoll");
      return 1;
    }
    if (r > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL))) {
      fprintf(stderr, "impair: the TUN device failed\n");
      return 1;
    }
    if (r > 0) {
      for (int i = 0; i < READ_BATCH; i++) {
        if (!free_top) {
          /* Pool exhausted: read and discard so the TUN does not stall. */
          static uint8_t scratch[SLOT_BYTES];
          ssize_t n = read(fd, scratch, sizeof(scratch));
          if (n <= 0) break;
          st[packet_dir(scratch, (size_t)n)].in++;
          st[packet_dir(scratch, (size_t)n)].overflow++;
          continue;
        }
        uint32_t s = free_stack[--free_top];
        ssize_t n = read(fd, pool + (size_t)s * SLOT_BYTES, SLOT_BYTES);
        if (n <= 0) {
          free_top++;
          if (n < 0 && errno != EAGAIN && errno != EINTR) {
            perror("impair: read");
            return 1;
          }
          break;
        }
        admit(s, (size_t)n, now_ns());
      }
    }
    release_due(fd, now_ns());
  }
  print_stats();
  return 0;
}
