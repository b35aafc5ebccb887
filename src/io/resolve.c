/* Threaded getaddrinfo, declared in resolve.h.
 *
 * A request lives in exactly one place at a time:
 *   QUEUED   on r->queue, waiting for a worker;
 *   RUNNING  owned by a worker, inside getaddrinfo (no lock held);
 *   DONE     on r->done, waiting for the loop thread to deliver it.
 * All transitions happen under r->lock. Workers only ever move requests
 * QUEUED -> RUNNING -> DONE and never free them; freeing happens on the
 * loop thread only (delivery, cancel of a queued request, resolver free),
 * which is what makes cancel safe in every state:
 *   QUEUED  unlinked and freed at once;
 *   RUNNING / DONE  flagged; delivery frees it without calling back.
 * After a worker moves a request to DONE it writes the eventfd, whose loop
 * callback takes the whole done list and delivers it.
 *
 * Literals skip the workers: they are DONE at birth and delivered through
 * the same done list + eventfd, i.e. on a later loop iteration and never
 * from inside masq_resolve (callers need not be re-entrant). Names in the
 * special-use domain "invalid." fail the same way without a lookup, as
 * RFC 6761 §6.4 asks of resolver libraries (glibc would send a query).
 *
 * Every function except the workers runs on the loop thread. */
#include "io/resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/log.h"

#define MAX_PENDING 1024
#define MAX_THREADS 16
#define HOST_MAX 255 /* RFC 1035 §2.3.4, textual form */

enum req_state { REQ_QUEUED, REQ_RUNNING, REQ_DONE };

struct masq_resolve_req {
  masq_resolve_req *next;
  masq_resolver *r;
  masq_resolve_cb cb;
  void *ud;
  enum req_state state;
  int cancelled;
  int status;
  size_t naddrs;
  masq_ip addrs[MASQ_RESOLVE_MAX_ADDRS];
  char host[HOST_MAX + 1];
};

/* Singly linked FIFO. */
struct req_list {
  masq_resolve_req *head;
  masq_resolve_req *tail;
};

struct masq_resolver {
  masq_loop *loop;
  int efd;
  masq_io io;
  pthread_mutex_t lock;
  pthread_cond_t cond; /* signalled when queue grows or stopping is set */
  struct req_list queue;
  struct req_list done;
  size_t pending; /* created and not yet freed; loop thread only */
  int stopping;
  int nthreads;
  pthread_t threads[MAX_THREADS];
};

static void list_push(struct req_list *l, masq_resolve_req *q) {
  q->next = NULL;
  if (l->tail)
    l->tail->next = q;
  else
    l->head = q;
  l->tail = q;
}

static masq_resolve_req *list_pop(struct req_list *l) {
  masq_resolve_req *q = l->head;
  if (!q) return NULL;
  l->head = q->next;
  if (!l->head) l->tail = NULL;
  q->next = NULL;
  return q;
}

/* O(n) with n <= MAX_PENDING, and only on cancel. Returns 1 if found. */
static int list_unlink(struct req_list *l, masq_resolve_req *q) {
  masq_resolve_req *prev = NULL;
  for (masq_resolve_req *p = l->head; p; prev = p, p = p->next) {
    if (p != q) continue;
    if (prev)
      prev->next = p->next;
    else
      l->head = p->next;
    if (l->tail == p) l->tail = prev;
    p->next = NULL;
    return 1;
  }
  return 0;
}

static void req_free(masq_resolve_req *q) {
  q->r->pending--;
  free(q);
}

/* Wakes the loop. An eventfd counter only overflows after 2^64-2 writes;
 * EAGAIN would mean it is already readable, which is all we need. */
static void notify_loop(masq_resolver *r) {
  uint64_t one = 1;
  ssize_t n;
  do n = write(r->efd, &one, sizeof(one));
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN)
    masq_log(MASQ_LOG_ERR, "resolver eventfd write: %s", strerror(errno));
}

/* Called with r->lock held. */
static void finish_locked(masq_resolver *r, masq_resolve_req *q) {
  q->state = REQ_DONE;
  list_push(&r->done, q);
}

/* ---- workers ---- */

static void add_addr(masq_resolve_req *q, const masq_ip *ip) {
  for (size_t i = 0; i < q->naddrs; i++)
    if (q->addrs[i].family == ip->family && memcmp(q->addrs[i].a, ip->a, 16) == 0) return;
  if (q->naddrs < MASQ_RESOLVE_MAX_ADDRS) q->addrs[q->naddrs++] = *ip;
}

static void run_getaddrinfo(masq_resolve_req *q) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  /* One entry per address instead of one per socket type. */
  hints.ai_socktype = SOCK_DGRAM;
  int rc = getaddrinfo(q->host, NULL, &hints, &res);
  if (rc != 0) {
    q->status = rc;
    return;
  }
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    masq_ip ip;
    memset(&ip, 0, sizeof(ip));
    if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in)) {
      ip.family = 4;
      memcpy(ip.a, &((const struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
    } else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6)) {
      ip.family = 6;
      memcpy(ip.a, &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
    } else {
      continue;
    }
    add_addr(q, &ip);
  }
  freeaddrinfo(res);
  q->status = q->naddrs ? 0 : EAI_NONAME;
}

static void *worker_main(void *arg) {
  masq_resolver *r = arg;
  pthread_mutex_lock(&r->lock);
  for (;;) {
    while (!r->stopping && !r->queue.head) pthread_cond_wait(&r->cond, &r->lock);
    if (r->stopping) break;
    masq_resolve_req *q = list_pop(&r->queue);
    q->state = REQ_RUNNING;
    pthread_mutex_unlock(&r->lock);
    /* q is ours until it is on the done list: cancel only flags it. */
    run_getaddrinfo(q);
    pthread_mutex_lock(&r->lock);
    finish_locked(r, q);
    pthread_mutex_unlock(&r->lock);
    notify_loop(r);
    pthread_mutex_lock(&r->lock);
  }
  pthread_mutex_unlock(&r->lock);
  return NULL;
}

/* ---- loop side ---- */

static void on_done(masq_loop *loop, masq_io *io, uint32_t events) {
  masq_resolver *r = io->ud;
  uint64_t count;
  /* Reset the counter before taking the list: a completion after the take
   * writes it again and is delivered next iteration. */
  if (read(r->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
    masq_log(MASQ_LOG_ERR, "resolver eventfd read: %s", strerror(errno));
  pthread_mutex_lock(&r->lock);
  masq_resolve_req *q = r->done.head;
  r->done.head = r->done.tail = NULL;
  pthread_mutex_unlock(&r->lock);
  while (q) {
    masq_resolve_req *next = q->next;
    /* cancelled is re-read here: an earlier callback may have cancelled
     * this one. */
    if (!q->cancelled) q->cb(q->ud, q->status, q->addrs, q->naddrs);
    req_free(q);
    q = next;
  }
}

/* Blocks every signal in the workers (they inherit the creating thread's
 * mask), so process signals reach the loop's signalfd, never a worker. */
static int start_workers(masq_resolver *r, int nthreads) {
  sigset_t all, old;
  sigfillset(&all);
  int rc = pthread_sigmask(SIG_SETMASK, &all, &old);
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  for (r->nthreads = 0; r->nthreads < nthreads; r->nthreads++) {
    rc = pthread_create(&r->threads[r->nthreads], NULL, worker_main, r);
    if (rc != 0) break;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  return 0;
}

static void stop_workers(masq_resolver *r) {
  pthread_mutex_lock(&r->lock);
  r->stopping = 1;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
  for (int i = 0; i < r->nthreads; i++) pthread_join(r->threads[i], NULL);
  r->nthreads = 0;
}

static void free_list(struct req_list *l) {
  masq_resolve_req *q;
  while ((q = list_pop(l))) req_free(q);
}

void masq_resolver_free(masq_resolver *r) {
  if (!r) return;
  /* Joining waits for lookups in progress; afterwards every request is on
   * the queue or the done list and no other thread touches them. */
  stop_workers(r);
  free_list(&r->queue);
  free_list(&r->done);
  if (r->efd >= 0) {
    masq_io_stop(r->loop, &r->io);
    close(r->efd);
  }
  pthread_cond_destroy(&r->cond);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

masq_resolver *masq_resolver_new(masq_loop *loop, int nthreads) {
  if (nthreads < 1 || nthreads > MAX_THREADS) {
    errno = EINVAL;
    return NULL;
  }
  masq_resolver *r = calloc(1, sizeof(*r));
  if (!r) return NULL;
  r->loop = loop;
  r->io.fd = -1;
  int rc = pthread_mutex_init(&r->lock, NULL);
  if (rc != 0) {
    free(r);
    errno = rc;
    return NULL;
  }
  rc = pthread_cond_init(&r->cond, NULL);
  if (rc != 0) {
    pthread_mutex_destroy(&r->lock);
    free(r);
    errno = rc;
    return NULL;
  }
  r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (r->efd < 0 || masq_io_start(loop, &r->io, r->efd, MASQ_EV_READ, on_done, r) < 0 ||
      start_workers(r, nthreads) < 0) {
    int e = errno;
    if (r->efd >= 0 && r->io.fd < 0) {
      close(r->efd);
      r->efd = -1;
    }
    masq_resolver_free(r);
    errno = e;
    return NULL;
  }
  return r;
}

/* 1 if host is "invalid" or ends in ".invalid" (a trailing dot allowed). */
static int is_invalid_tld(const char *host, size_t len) {
  static const char tld[] = "invalid";
  const size_t tlen = sizeof(tld) - 1;
  if (len > 0 && host[len - 1] == '.') len--;
  if (len < tlen || strncasecmp(host + len - tlen, tld, tlen) != 0) return 0;
  return len == tlen || host[len - tlen - 1] == '.';
}

/* Completes q without a worker if the answer needs no lookup. */
static int try_immediate(masq_resolve_req *q, size_t len) {
  masq_ip ip;
  memset(&ip, 0, sizeof(ip));
  if (inet_pton(AF_INET, q->host, ip.a) == 1) {
    ip.family = 4;
  } else if (inet_pton(AF_INET6, q->host, ip.a) == 1) {
    ip.family = 6;
  } else if (is_invalid_tld(q->host, len)) {
    q->status = EAI_NONAME;
    return 1;
  } else {
    return 0;
  }
  q->addrs[0] = ip;
  q->naddrs = 1;
  q->status = 0;
  return 1;
}

masq_resolve_req *masq_resolve(masq_resolver *r, const char *host, masq_resolve_cb cb, void *ud) {
  size_t len = strlen(host);
  if (len == 0 || len > HOST_MAX) {
    errno = EINVAL;
    return NULL;
  }
  if (r->pending >= MAX_PENDING) {
    errno = EAGAIN;
    return NULL;
  }
  masq_resolve_req *q = calloc(1, sizeof(*q));
  if (!q) return NULL;
  q->r = r;
  q->cb = cb;
  q->ud = ud;
  memcpy(q->host, host, len + 1);
  r->pending++;
  int immediate = try_immediate(q, len);
  pthread_mutex_lock(&r->lock);
  if (immediate) {
    finish_locked(r, q);
  } else {
    q->state = REQ_QUEUED;
    list_push(&r->queue, q);
    pthread_cond_signal(&r->cond);
  }
  pthread_mutex_unlock(&r->lock);
  if (immediate) notify_loop(r);
  return q;
}

void masq_resolve_cancel(masq_resolve_req *q) {
  if (!q) return;
  masq_resolver *r = q->r;
  pthread_mutex_lock(&r->lock);
  int unlinked = q->state == REQ_QUEUED && list_unlink(&r->queue, q);
  if (!unlinked) q->cancelled = 1; /* a worker or the done list has it */
  pthread_mutex_unlock(&r->lock);
  if (unlinked) req_free(q);
}
