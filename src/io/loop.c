/* The epoll event loop declared in loop.h.
 *
 * One iteration of masq_loop_run:
 *   1. run the hooks ("before sleep": flush writes, free doomed objects);
 *   2. compute the epoll timeout from the earliest armed timer (so timers
 *      the hooks armed count);
 *   3. epoll_wait for up to MAX_EVENTS events (level-triggered);
 *   4. dispatch them to their masq_io callbacks;
 *   5. fire every timer that is due.
 * masq_loop_stop skips the rest of steps 4 and 5 (no further io or timer
 * callbacks), runs the hooks once more, and returns.
 *
 * Callback safety. Any callback may stop, re-arm or free any io or timer,
 * including the one being dispatched:
 *   - ios: the events of the current epoll batch live in the loop
 *     (loop->batch). masq_io_stop scans the not-yet-dispatched part of the
 *     batch and clears the data.ptr of every entry that points at the io
 *     being stopped, so a stopped (and possibly freed) io is never touched
 *     again, and an io restarted in the same batch only sees events from
 *     the next epoll_wait. The scan is at most MAX_EVENTS entries and only
 *     happens while a batch is being dispatched.
 *   - timers: a due timer is removed from the heap before its callback
 *     runs, so the callback sees it unarmed and may re-arm or free it. The
 *     firing phase fires at most as many timers as were armed when it
 *     began, so a callback that keeps re-arming a timer at a deadline in
 *     the past cannot spin the phase forever; the leftovers fire in the
 *     next iteration (with a zero epoll timeout).
 *
 * Nothing here allocates per event: the heap array only grows when more
 * timers are armed at once than ever before. */
#include "io/loop.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "io/log.h"

#define MAX_EVENTS 64
#define MAX_HOOKS 8

struct hook {
  masq_hook_cb cb;
  void *ud;
};

struct sig_handler {
  masq_signal_cb cb;
  void *ud;
};

struct masq_loop {
  int epfd;
  int stopped;

  /* The batch being dispatched; batch_pos..batch_n are still pending. */
  struct epoll_event batch[MAX_EVENTS];
  int batch_n;
  int batch_pos;

  masq_timer **heap;
  size_t heap_len;
  size_t heap_cap;

  struct hook hooks[MAX_HOOKS];
  size_t nhooks;

  /* Signals: one signalfd whose mask grows with each add_signal. */
  int sigfd;
  sigset_t sigmask;
  masq_io sig_io;
  struct sig_handler sig[_NSIG];
};

uint64_t masq_now(void) {
  struct timespec ts;
  /* CLOCK_MONOTONIC cannot fail with a valid pointer; nothing to check. */
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

masq_loop *masq_loop_new(void) {
  masq_loop *loop = calloc(1, sizeof(*loop));
  if (!loop) return NULL;
  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (loop->epfd < 0) {
    int e = errno;
    free(loop);
    errno = e;
    return NULL;
  }
  loop->sigfd = -1;
  loop->sig_io.fd = -1;
  sigemptyset(&loop->sigmask);
  return loop;
}

void masq_loop_free(masq_loop *loop) {
  if (!loop) return;
  /* Signals stay blocked: unblocking would deliver any pending one with
   * its default action (usually killing the process) during shutdown. */
  if (loop->sigfd >= 0) close(loop->sigfd);
  close(loop->epfd);
  /* Timers still in the heap belong to their owners (who may already have
   * freed them), so they are not touched. */
  free(loop->heap);
  free(loop);
}

void masq_loop_stop(masq_loop *loop) { loop->stopped = 1; }

/* ---- timers: a binary min-heap ordered by deadline ---- */

static void heap_place(masq_loop *loop, size_t i, masq_timer *t) {
  loop->heap[i] = t;
  t->heap_idx = i;
}

static void heap_sift_up(masq_loop *loop, size_t i) {
  masq_timer *t = loop->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (loop->heap[parent]->deadline <= t->deadline) break;
    heap_place(loop, i, loop->heap[parent]);
    i = parent;
  }
  heap_place(loop, i, t);
}

static void heap_sift_down(masq_loop *loop, size_t i) {
  masq_timer *t = loop->heap[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= loop->heap_len) break;
    if (child + 1 < loop->heap_len &&
        loop->heap[child + 1]->deadline < loop->heap[child]->deadline)
      child++;
    if (t->deadline <= loop->heap[child]->deadline) break;
    heap_place(loop, i, loop->heap[child]);
    i = child;
  }
  heap_place(loop, i, t);
}

/* Removes the timer at index i and restores the heap property. */
static void heap_remove(masq_loop *loop, size_t i) {
  masq_timer *t = loop->heap[i];
  t->heap_idx = SIZE_MAX;
  loop->heap_len--;
  if (i == loop->heap_len) return;
  heap_place(loop, i, loop->heap[loop->heap_len]);
  /* The moved element may belong above or below its new slot. */
  if (i > 0 && loop->heap[(i - 1) / 2]->deadline > loop->heap[i]->deadline)
    heap_sift_up(loop, i);
  else
    heap_sift_down(loop, i);
}

static int heap_reserve(masq_loop *loop) {
  if (loop->heap_len < loop->heap_cap) return 0;
  size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 16;
  if (cap > SIZE_MAX / sizeof(*loop->heap)) {
    errno = ENOMEM;
    return -1;
  }
  masq_timer **h = realloc(loop->heap, cap * sizeof(*h));
  if (!h) return -1;
  loop->heap = h;
  loop->heap_cap = cap;
  return 0;
}

void masq_timer_init(masq_timer *t, masq_timer_cb cb, void *ud) {
  t->deadline = 0;
  t->heap_idx = SIZE_MAX;
  t->cb = cb;
  t->ud = ud;
}

int masq_timer_armed(const masq_timer *t) { return t->heap_idx != SIZE_MAX; }

int masq_timer_set(masq_loop *loop, masq_timer *t, uint64_t deadline) {
  if (masq_timer_armed(t)) {
    uint64_t old = t->deadline;
    t->deadline = deadline;
    if (deadline < old)
      heap_sift_up(loop, t->heap_idx);
    else
      heap_sift_down(loop, t->heap_idx);
    return 0;
  }
  if (heap_reserve(loop) < 0) return -1;
  t->deadline = deadline;
  loop->heap[loop->heap_len] = t;
  t->heap_idx = loop->heap_len++;
  heap_sift_up(loop, t->heap_idx);
  return 0;
}

void masq_timer_stop(masq_loop *loop, masq_timer *t) {
  if (!masq_timer_armed(t)) return;
  heap_remove(loop, t->heap_idx);
}

/* Time until the earliest deadline, or NULL (sleep until an event)
 * without timers. Nanosecond precision matters: QUIC pacing asks for
 * wake-ups a fraction of a millisecond apart, and rounding them up to
 * whole milliseconds would cap a tunnel's throughput. */
static struct timespec *next_timeout(const masq_loop *loop, struct timespec *ts) {
  if (loop->heap_len == 0) return NULL;
  uint64_t now = masq_now();
  uint64_t deadline = loop->heap[0]->deadline;
  uint64_t d = deadline > now ? deadline - now : 0;
  ts->tv_sec = (time_t)(d / 1000000000u);
  ts->tv_nsec = (long)(d % 1000000000u);
  return ts;
}

/* epoll_pwait2 (Linux 5.11) takes a timespec; older kernels get
 * epoll_wait with the timeout rounded up to whole milliseconds. */
static int wait_events(masq_loop *loop) {
  struct timespec ts, *t = next_timeout(loop, &ts);
  static int no_pwait2;
  if (!no_pwait2) {
    int n = epoll_pwait2(loop->epfd, loop->batch, MAX_EVENTS, t, NULL);
    if (n >= 0 || errno != ENOSYS) return n;
    no_pwait2 = 1;
  }
  int ms = -1;
  if (t) {
    uint64_t v = ((uint64_t)t->tv_sec * 1000000000u + (uint64_t)t->tv_nsec + 999999u) / 1000000u;
    ms = v > INT_MAX ? INT_MAX : (int)v;
  }
  return epoll_wait(loop->epfd, loop->batch, MAX_EVENTS, ms);
}

static void fire_timers(masq_loop *loop) {
  uint64_t now = masq_now();
  /* Bounded by the timers armed on entry: see the comment at the top. */
  size_t budget = loop->heap_len;
  while (budget-- > 0 && loop->heap_len > 0 && !loop->stopped) {
    masq_timer *t = loop->heap[0];
    if (t->deadline > now) break;
    heap_remove(loop, 0);
    t->cb(loop, t);
  }
}

/* ---- fd watchers ---- */

int masq_io_start(masq_loop *loop, masq_io *io, int fd, uint32_t events, masq_io_cb cb,
                  void *ud) {
  if (fd < 0) {
    errno = EBADF;
    return -1;
  }
  struct epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = events & (EPOLLIN | EPOLLOUT);
  ev.data.ptr = io;
  if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) return -1;
  io->fd = fd;
  io->events = events & (MASQ_EV_READ | MASQ_EV_WRITE);
  io->cb = cb;
  io->ud = ud;
  return 0;
}

int masq_io_update(masq_loop *loop, masq_io *io, uint32_t events) {
  events &= MASQ_EV_READ | MASQ_EV_WRITE;
  if (io->fd < 0) {
    errno = EBADF;
    return -1;
  }
  if (events == io->events) return 0; /* saves a syscall per flush */
  struct epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = events;
  ev.data.ptr = io;
  if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0) return -1;
  io->events = events;
  return 0;
}

void masq_io_stop(masq_loop *loop, masq_io *io) {
  if (io->fd < 0) return;
  /* ENOENT/EBADF mean the owner already closed the fd, which removed it
   * from the epoll set; nothing else can fail for a registered fd. */
  if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0 && errno != ENOENT &&
      errno != EBADF)
    masq_log(MASQ_LOG_WARN, "epoll_ctl(DEL, %d): %s", io->fd, strerror(errno));
  io->fd = -1;
  io->events = 0;
  /* Forget events of the current batch not yet dispatched to this io. */
  for (int i = loop->batch_pos; i < loop->batch_n; i++)
    if (loop->batch[i].data.ptr == io) loop->batch[i].data.ptr = NULL;
}

/* Translates epoll's bits into what the watcher asked for. Errors and
 * hang-ups are reported as the watched events so the owner's next read or
 * write returns the error (e.g. ECONNREFUSED on a connected UDP socket). */
static uint32_t io_events(const masq_io *io, uint32_t ep) {
  uint32_t ev = ep & io->events;
  if (ep & (EPOLLERR | EPOLLHUP)) ev |= io->events ? io->events : MASQ_EV_READ;
  return ev;
}

static void dispatch(masq_loop *loop) {
  for (loop->batch_pos = 0; loop->batch_pos < loop->batch_n;) {
    struct epoll_event *e = &loop->batch[loop->batch_pos++];
    masq_io *io = e->data.ptr;
    if (!io) continue; /* stopped earlier in this batch */
    uint32_t ev = io_events(io, e->events);
    if (ev) io->cb(loop, io, ev);
    if (loop->stopped) break;
  }
  loop->batch_n = 0;
  loop->batch_pos = 0;
}

/* ---- hooks and signals ---- */

int masq_loop_add_hook(masq_loop *loop, masq_hook_cb cb, void *ud) {
  if (loop->nhooks >= MAX_HOOKS) {
    errno = ENOSPC;
    return -1;
  }
  loop->hooks[loop->nhooks].cb = cb;
  loop->hooks[loop->nhooks].ud = ud;
  loop->nhooks++;
  return 0;
}

static void run_hooks(masq_loop *loop) {
  for (size_t i = 0; i < loop->nhooks; i++) loop->hooks[i].cb(loop, loop->hooks[i].ud);
}

static void on_signalfd(masq_loop *loop, masq_io *io, uint32_t events) {
  struct signalfd_siginfo si[8];
  for (;;) {
    ssize_t n = read(io->fd, si, sizeof(si));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN)
        masq_log(MASQ_LOG_WARN, "signalfd read: %s", strerror(errno));
      return;
    }
    size_t count = (size_t)n / sizeof(si[0]);
    for (size_t i = 0; i < count; i++) {
      uint32_t signo = si[i].ssi_signo;
      if (signo < _NSIG && loop->sig[signo].cb)
        loop->sig[signo].cb(loop, (int)signo, loop->sig[signo].ud);
    }
    if (count < sizeof(si) / sizeof(si[0])) return;
  }
}

int masq_loop_add_signal(masq_loop *loop, int signo, masq_signal_cb cb, void *ud) {
  if (signo <= 0 || signo >= _NSIG) {
    errno = EINVAL;
    return -1;
  }
  sigset_t mask = loop->sigmask;
  if (sigaddset(&mask, signo) < 0) return -1;
  /* Blocked first, so the signal is queued for the signalfd instead of
   * running its default action. */
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, signo);
  if (sigprocmask(SIG_BLOCK, &one, NULL) < 0) return -1;
  /* signalfd(existing fd, ...) replaces the mask of that fd in place. */
  int fd = signalfd(loop->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return -1;
  if (loop->sigfd < 0) {
    if (masq_io_start(loop, &loop->sig_io, fd, MASQ_EV_READ, on_signalfd, loop) < 0) {
      int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    loop->sigfd = fd;
  }
  loop->sigmask = mask;
  loop->sig[signo].cb = cb;
  loop->sig[signo].ud = ud;
  return 0;
}

/* ---- the loop ---- */

int masq_loop_run(masq_loop *loop) {
  /* A stop requested outside run (or by the previous run) is consumed. */
  loop->stopped = 0;
  while (!loop->stopped) {
    /* Hooks run before every sleep, the first included: work queued
     * before the loop started (a client's first Initial) goes out now,
     * and timers they arm count for this sleep. */
    run_hooks(loop);
    if (loop->stopped) break;
    int n = wait_events(loop);
    if (n < 0) {
      if (errno != EINTR) return -1;
      n = 0; /* a handled signal: still fire timers and hooks */
    }
    loop->batch_n = n;
    dispatch(loop);
    if (!loop->stopped) fire_timers(loop);
  }
  /* Once more in the iteration that stopped the loop, so writes queued by
   * the callbacks are flushed and doomed objects are freed. */
  run_hooks(loop);
  return 0;
}
