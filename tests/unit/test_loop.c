/* The event loop: timer order and re-entrancy, io dispatch, hooks and
 * signals. Every test arms a watchdog timer so a bug ends the test with a
 * failure instead of a hang. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io/loop.h"

#define MS 1000000ull

/* ---- helpers ---- */

struct watchdog {
  masq_timer t;
  int fired;
};

static void on_watchdog(masq_loop *loop, masq_timer *t) {
  struct watchdog *w = t->ud;
  w->fired = 1;
  masq_loop_stop(loop);
}

static void watchdog_arm(masq_loop *loop, struct watchdog *w, uint64_t ms) {
  w->fired = 0;
  masq_timer_init(&w->t, on_watchdog, w);
  assert_int_equal(masq_timer_set(loop, &w->t, masq_now() + ms * MS), 0);
}

static void stop_loop_cb(masq_loop *loop, masq_timer *t) { masq_loop_stop(loop); }

/* ---- timers ---- */

struct order {
  int seen[16];
  int n;
  int stop_after;
};

struct tagged_timer {
  masq_timer t;
  int tag;
  struct order *order;
};

static void on_tagged(masq_loop *loop, masq_timer *t) {
  struct tagged_timer *tt = t->ud;
  struct order *o = tt->order;
  assert_false(masq_timer_armed(t)); /* unarmed before its callback */
  o->seen[o->n++] = tt->tag;
  if (o->n == o->stop_after) masq_loop_stop(loop);
}

static void test_timer_order(void **state) {
  masq_loop *loop = masq_loop_new();
  assert_non_null(loop);
  struct order o = {.n = 0, .stop_after = 5};
  struct tagged_timer tt[5];
  /* Armed out of order, with one re-armed later to check the sift. */
  static const int delay_ms[5] = {4, 1, 3, 0, 2};
  uint64_t now = masq_now();
  for (int i = 0; i < 5; i++) {
    tt[i].tag = delay_ms[i];
    tt[i].order = &o;
    masq_timer_init(&tt[i].t, on_tagged, &tt[i]);
    assert_false(masq_timer_armed(&tt[i].t));
    assert_int_equal(masq_timer_set(loop, &tt[i].t, now + 100 * MS), 0);
  }
  for (int i = 0; i < 5; i++) {
    assert_true(masq_timer_armed(&tt[i].t));
    assert_int_equal(masq_timer_set(loop, &tt[i].t, now + (uint64_t)delay_ms[i] * MS), 0);
  }
  struct watchdog w;
  watchdog_arm(loop, &w, 1000);
  assert_int_equal(masq_loop_run(loop), 0);
  assert_false(w.fired);
  assert_int_equal(o.n, 5);
  for (int i = 0; i < 5; i++) assert_int_equal(o.seen[i], i);
  assert_true(masq_now() >= now + 4 * MS);
  masq_timer_stop(loop, &w.t);
  masq_loop_free(loop);
}

static void test_timer_many(void **state) {
  /* More timers than the initial heap capacity, stopped in a scattered
   * order: exercises growth and removal from the middle. */
  masq_loop *loop = masq_loop_new();
  assert_non_null(loop);
  enum { N = 100 };
  struct order o = {.n = 0, .stop_after = -1};
  struct tagged_timer *tt = calloc(N, sizeof(*tt));
  assert_non_null(tt);
  uint64_t base = masq_now() + 1000 * MS;
  for (int i = 0; i < N; i++) {
    tt[i].tag = i;
    tt[i].order = &o;
    masq_timer_init(&tt[i].t, on_tagged, &tt[i]);
    /* Deadlines in a permuted order (37 is coprime with 100). */
    assert_int_equal(masq_timer_set(loop, &tt[i].t, base + (uint64_t)((i * 37) % N)), 0);
  }
  for (int i = 0; i < N; i += 3) masq_timer_stop(loop, &tt[i].t);
  for (int i = 0; i < N; i++) assert_int_equal(masq_timer_armed(&tt[i].t), i % 3 != 0);
  for (int i = 0; i < N; i++) masq_timer_stop(loop, &tt[i].t);
  for (int i = 0; i < N; i++) assert_false(masq_timer_armed(&tt[i].t));
  free(tt);
  masq_loop_free(loop);
}

struct rearm {
  masq_timer t;
  masq_timer *victim;
  int count;
};

static void on_rearm(masq_loop *loop, masq_timer *t) {
  struct rearm *r = t->ud;
  if (++r->count < 3) {
    /* Re-arm itself in the past: fires again, but never in a tight loop
     * within one firing phase. */
    assert_int_equal(masq_timer_set(loop, t, 0), 0);
  } else {
    masq_loop_stop(loop);
  }
}

static void test_timer_rearm_from_callback(void **state) {
  masq_loop *loop = masq_loop_new();
  assert_non_null(loop);
  struct rearm r = {.count = 0};
  masq_timer_init(&r.t, on_rearm, &r);
  assert_int_equal(masq_timer_set(loop, &r.t, masq_now() + 1 * MS), 0);
  struct watchdog w;
  watchdog_arm(loop, &w, 1000);
  assert_int_equal(masq_loop_run(loop), 0);
  assert_false(w.fired);
  assert_int_equal(r.count, 3);
  assert_false(masq_timer_armed(&r.t));
  masq_timer_stop(loop, &w.t);
  masq_loop_free(loop);
}

static void on_stop_victim(masq_loop *loop, masq_timer *t) {
  struct rearm *r = t->ud;
  r->count++;
  masq_timer_stop(loop, r->victim);
  masq_timer_stop(loop, t); /* stopping an unarmed timer is a no-op */
}

static void on_must_not_fire(masq_loop *loop, masq_timer *t) { fail_msg("stopped timer fired"); }

static void test_timer_stop_from_callback(void **state) {
  masq_loop *loop = masq_loop_new();
  assert_non_null(loop);
  /* Both due in the same firing phase; the first stops the second. */
  masq_timer victim;
  masq_timer_init(&victim, on_must_not_fire, NULL);
  struct rearm r = {.count = 0, .victim = &victim};
  masq_timer_init(&r.t, on_stop_victim, &r);
  uint64_t now = masq_now();
  assert_int_equal(masq_timer_set(loop, &r.t, now), 0);
  assert_int_equal(masq_timer_set(loop, &victim, now + 1), 0);
  masq_timer stopper;
  masq_timer_init(&stopper, stop_loop_cb, NULL);
  assert_int_equal(masq_timer_set(loop, &stopper, now + 5 * MS), 0);
  struct watchdog w;
  watchdog_arm(loop, &w, 1000);
  assert_int_equal(masq_loop_run(loop), 0);
  assert_false(w.fired);
  assert_int_equal(r.count, 1);
  assert_false(masq_timer_armed(&victim));
  masq_timer_stop(loop, &w.t);
  masq_loop_free(loop);
}

/* ---- ios ---- */

struct efd_watch {
  masq_io io;
  int calls;
  uint32_t last;
  struct efd_watch *victim; /* stopped (and poisoned) by this one's callback */
};

static void on_efd(masq_loop *loop, masq_io *io, uint32_t events) {
  struct efd_watch *e = io->ud;
  e->calls++;
  e->last = events;
  uint64_t v;
  assert_int_equal(read(io->fd, &v, sizeof(v)), (ssize_t)sizeof(v));
  if (e->victim) {
    masq_io_stop(loop, &e->victim->io);
    /* Poison it as a freed owner would: a stale event would crash. */
    e->victim->io.cb = NULL;
    e->victim->io.ud = NULL;
  }
  masq_loop_stop(loop);
}

static int make_ready_eventfd(void) {
  int fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
  assert_true(fd >= 0);
  return fd;
}

static void test_io_readiness(void **state) {
  masq_loop *loop = masq_loop_new();
  assert_non_null(loop);
  int p[2];
  assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  struct efd_watch e = {.calls = 0};
  assert_int_equal(masq_io_start(loop, &e.io, p[0], MASQ_EV_READ, on_efd, &e), 0);
  assert_int_equal(e.io.fd, p[0]);
  /* Not readable yet: only the stopper timer ends this run. */
  masq_timer stopper;
  masq_timer_init(&stopper, stop_loop_cb, NULL);
  assert_int_equal(masq_timer_set(loop, &stopper, masq_now() + 2 * MS), 0);
  assert_int_equal(masq_loop_run(loop), 0);
  assert_int_equal(e.calls, 0);
  /* Readable: the callback reads 8 bytes and stops the loop. */
  uint64_t one = 1;
  assert_int_equal(write(p[1], &one, sizeof(one)), (ssize_t)sizeof(one));
  struct watchdog w;
  watchdog_arm(loop, &w, 1000);
  assert_int_equal(masq_loop_run(loop), 0);
  assert_false(w.fired);
  assert_int_equal(e.calls, 1);
  assert_int_equal(e.last, MASQ_EV_READ);
  /* Write interest on a pipe's read end never fires; update keeps read. */
  assert_int_equal(masq_io_update(loop, &e.io, MASQ_EV_READ | MASQ_EV_WRITE), 0);
  assert_int_equal(masq_io_update(loop, &e.io, MASQ_EV_READ), 0);
  masq_io_stop(loop, &e.io);
  assert_int_equal(e.io.fd, -1);
  masq_io_stop(loop, &e.io); /* idempotent */
  masq_timer_stop(loop, &w.t);
  close(p[0]);
  close(p[1]);
  masq_loop_free(loop);
}

static void test_io_write_ready(void **state) {
  masq_loop *loop = masq_loop_new();
  assert_non_null(loop);
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  assert_true(fd >= 0);
  struct efd_watch e = {.calls = 0};
  /* Only write interest: readiness to read must not be reported. The
   * counter is made non-zero so on_efd's read succeeds. */
  assert_int_equal(masq_io_start(loop, &e.io, fd, MASQ_EV_WRITE, on_efd, &e), 0);
  assert_int_equal(write(fd, &(uint64_t){1}, 8), 8);
  struct watchdog w;
  watchdog_arm(loop, &w, 1000);
  assert_int_equal(masq_loop_run(loop), 0);
  assert_false(w.fired);
  assert_int_equal(e.calls, 1);
  assert_int_equal(e.last, MASQ_EV_WRITE);
  masq_io_stop(loop, &e.io);
  masq_timer_stop(loop, &w.t);
  close(fd);
  masq_loop_free(loop);
}

static void test_io_stop_other_in_same_batch(void **state) {
  masq_loop *loop = masq_loop_new();
  assert_non_null(loop);
  /* Two fds ready at once land in one epoll batch. Whichever callback runs
   * first stops the other; the other must then not be called. */
  struct efd_watch a = {.calls = 0}, b = {.calls = 0};
  a.victim = &b;
  b.victim = &a;
  int fa = make_ready_eventfd(), fb = make_ready_eventfd();
  assert_int_equal(masq_io_start(loop, &a.io, fa, MASQ_EV_READ, on_efd, &a), 0);
  assert_int_equal(masq_io_start(loop, &b.io, fb, MASQ_EV_READ, on_efd, &b), 0);
  struct watchdog w;
  watchdog_arm(loop, &w, 1000);
  assert_int_equal(masq_loop_run(loop), 0);
  assert_false(w.fired);
  assert_int_equal(a.calls + b.calls, 1);
  struct efd_watch *survivor = a.calls ? &a : &b;
  struct efd_watch *stopped = a.calls ? &b : &a;
  assert_int_equal(stopped->io.fd, -1);
  assert_int_equal(survivor->io.fd, survivor == &a ? fa : fb);
  masq_io_stop(loop, &survivor->io);
  masq_timer_stop(loop, &w.t);
  close(fa);
  close(fb);
  masq_loop_free(loop);
}

struct self_stop {
  masq_io io;
  int calls;
};

static void on_self_stop(masq_loop *loop, masq_io *io, uint32_t events) {
  struct self_stop *s = io->ud;
  s->calls++;
  masq_io_stop(loop, io);
}

static void test_io_stop_self_level_triggered(void **state) {
  /* Level-triggered: a still-readable fd whose callback stops its own
   * watcher is called exactly once. */
  masq_loop *loop = masq_loop_new();
  assert_non_null(loop);
  int fd = make_ready_eventfd();
  struct self_stop s = {.calls = 0};
  assert_int_equal(masq_io_start(loop, &s.io, fd, MASQ_EV_READ, on_self_stop, &s), 0);
  masq_timer stopper;
  masq_timer_init(&stopper, stop_loop_cb, NULL);
  assert_int_equal(masq_timer_set(loop, &stopper, masq_now() + 3 * MS), 0);
  assert_int_equal(masq_loop_run(loop), 0);
  assert_int_equal(s.calls, 1);
  close(fd);
  masq_loop_free(loop);
}

static void test_io_start_bad_fd(void **state) {
  masq_loop *loop = masq_loop_new();
  assert_non_null(loop);
  masq_io io;
  assert_int_equal(masq_io_start(loop, &io, -1, MASQ_EV_READ, on_self_stop, NULL), -1);
  assert_int_equal(errno, EBADF);
  masq_loop_free(loop);
}

/* ---- hooks ---- */

struct hook_count {
  int hooks;
  int ticks;
};

static void on_hook(masq_loop *loop, void *ud) {
  struct hook_count *h = ud;
  h->hooks++;
}

struct ticker {
  masq_timer t;
  struct hook_count *h;
};

static void on_tick(masq_loop *loop, masq_timer *t) {
  struct ticker *tk = t->ud;
  /* Hooks run before every sleep, the first one included. */
  assert_int_equal(tk->h->hooks, tk->h->ticks + 1);
  if (++tk->h->ticks == 4)
    masq_loop_stop(loop);
  else
    assert_int_equal(masq_timer_set(loop, t, masq_now()), 0);
}

static void test_hooks_per_iteration(void **state) {
  masq_loop *loop = masq_loop_new();
  assert_non_null(loop);
  struct hook_count h = {0, 0};
  assert_int_equal(masq_loop_add_hook(loop, on_hook, &h), 0);
  struct ticker tk = {.h = &h};
  masq_timer_init(&tk.t, on_tick, &tk);
  assert_int_equal(masq_timer_set(loop, &tk.t, masq_now()), 0);
  struct watchdog w;
  watchdog_arm(loop, &w, 1000);
  assert_int_equal(masq_loop_run(loop), 0);
  assert_false(w.fired);
  assert_int_equal(h.ticks, 4);
  /* One tick per iteration, and the hooks once more after the stop. */
  assert_int_equal(h.hooks, 5);
  masq_timer_stop(loop, &w.t);
  /* At most 8 hooks. */
  for (int i = 1; i < 8; i++) assert_int_equal(masq_loop_add_hook(loop, on_hook, &h), 0);
  assert_int_equal(masq_loop_add_hook(loop, on_hook, &h), -1);
  masq_loop_free(loop);
}

/* ---- signals ---- */

struct sig_seen {
  int signo;
  int count;
};

static void on_signal(masq_loop *loop, int signo, void *ud) {
  struct sig_seen *s = ud;
  s->signo = signo;
  s->count++;
  masq_loop_stop(loop);
}

static void test_signal_delivery(void **state) {
  masq_loop *loop = masq_loop_new();
  assert_non_null(loop);
  struct sig_seen s = {0, 0}, s2 = {0, 0};
  assert_int_equal(masq_loop_add_signal(loop, SIGUSR1, on_signal, &s), 0);
  assert_int_equal(masq_loop_add_signal(loop, SIGUSR2, on_signal, &s2), 0);
  assert_int_equal(masq_loop_add_signal(loop, 0, on_signal, &s), -1);
  /* Blocked, so raise() only queues it for the signalfd. */
  assert_int_equal(raise(SIGUSR2), 0);
  struct watchdog w;
  watchdog_arm(loop, &w, 1000);
  assert_int_equal(masq_loop_run(loop), 0);
  assert_false(w.fired);
  assert_int_equal(s2.count, 1);
  assert_int_equal(s2.signo, SIGUSR2);
  assert_int_equal(s.count, 0);
  assert_int_equal(raise(SIGUSR1), 0);
  assert_int_equal(masq_loop_run(loop), 0);
  assert_false(w.fired);
  assert_int_equal(s.count, 1);
  assert_int_equal(s.signo, SIGUSR1);
  masq_timer_stop(loop, &w.t);
  masq_loop_free(loop);
}

static void test_now_monotonic(void **state) {
  uint64_t a = masq_now(), b = masq_now();
  assert_true(a > 0);
  assert_true(b >= a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_now_monotonic),
      cmocka_unit_test(test_timer_order),
      cmocka_unit_test(test_timer_many),
      cmocka_unit_test(test_timer_rearm_from_callback),
      cmocka_unit_test(test_timer_stop_from_callback),
      cmocka_unit_test(test_io_readiness),
      cmocka_unit_test(test_io_write_ready),
      cmocka_unit_test(test_io_stop_other_in_same_batch),
      cmocka_unit_test(test_io_stop_self_level_triggered),
      cmocka_unit_test(test_io_start_bad_fd),
      cmocka_unit_test(test_hooks_per_iteration),
      cmocka_unit_test(test_signal_delivery),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
