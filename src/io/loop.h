/* A small epoll event loop in the spirit of redis' ae.c: fd watchers,
 * one-shot timers on a min-heap, signals through signalfd, and "before
 * sleep" hooks that run once per iteration (flush writes, free doomed
 * objects). Single-threaded; nothing here allocates per event. */
#ifndef MASQ_IO_LOOP_H
#define MASQ_IO_LOOP_H

#include <stddef.h>
#include <stdint.h>

#define MASQ_EV_READ 0x1u
#define MASQ_EV_WRITE 0x4u /* same bits as EPOLLIN / EPOLLOUT */

typedef struct masq_loop masq_loop;
typedef struct masq_io masq_io;
typedef struct masq_timer masq_timer;

typedef void (*masq_io_cb)(masq_loop *loop, masq_io *io, uint32_t events);
typedef void (*masq_timer_cb)(masq_loop *loop, masq_timer *t);
typedef void (*masq_hook_cb)(masq_loop *loop, void *ud);
typedef void (*masq_signal_cb)(masq_loop *loop, int signo, void *ud);

/* Embedded in its owner; ud is the owner's pointer. */
struct masq_io {
  int fd;
  uint32_t events;
  masq_io_cb cb;
  void *ud;
};

struct masq_timer {
  uint64_t deadline; /* masq_now() nanoseconds */
  size_t heap_idx;   /* SIZE_MAX when not armed */
  masq_timer_cb cb;
  void *ud;
};

/* CLOCK_MONOTONIC in nanoseconds (the same clock ngtcp2 timestamps use). */
uint64_t masq_now(void);

/* Returns NULL and sets errno on failure. */
masq_loop *masq_loop_new(void);
/* Stop every io and timer first: armed timers are not touched. Signals
 * added with masq_loop_add_signal stay blocked. */
void masq_loop_free(masq_loop *loop);

/* Runs until masq_loop_stop. Returns 0, or -1 with errno on a failure of
 * epoll itself. Each iteration: hooks, wait, io callbacks, due timers.
 * Callbacks may stop, re-arm or free any io or timer, their own included. */
int masq_loop_run(masq_loop *loop);
/* No further io or timer callbacks in this iteration; the hooks still run
 * once, then masq_loop_run returns. */
void masq_loop_stop(masq_loop *loop);

/* Watch fd for events (MASQ_EV_*), level-triggered. start returns 0 or
 * -1/errno. An error or hang-up on fd is reported as the watched events,
 * so the next read/write returns the error. After stop (io->fd == -1) the
 * io gets no more callbacks, even for events already fetched, and may be
 * freed at once. */
int masq_io_start(masq_loop *loop, masq_io *io, int fd, uint32_t events, masq_io_cb cb,
                  void *ud);
int masq_io_update(masq_loop *loop, masq_io *io, uint32_t events);
void masq_io_stop(masq_loop *loop, masq_io *io); /* does not close fd */

void masq_timer_init(masq_timer *t, masq_timer_cb cb, void *ud);
/* (Re)arms t to fire once at deadline (masq_now() scale). A timer is
 * unarmed when its callback runs. */
int masq_timer_set(masq_loop *loop, masq_timer *t, uint64_t deadline);
void masq_timer_stop(masq_loop *loop, masq_timer *t);
int masq_timer_armed(const masq_timer *t);

/* Registers a hook run before every sleep (the first one included) and
 * once more when the loop stops.
 * At most 8 hooks. Returns 0 or -1. */
int masq_loop_add_hook(masq_loop *loop, masq_hook_cb cb, void *ud);

/* Delivers signo (blocked for the process) through the loop. Returns 0 or
 * -1/errno. */
int masq_loop_add_signal(masq_loop *loop, int signo, masq_signal_cb cb, void *ud);

#endif
