/* Name resolution off the event loop: getaddrinfo runs on a small pool of
 * worker threads and results come back to the loop thread through an
 * eventfd, so a slow DNS server never stalls other tunnels. */
#ifndef MASQ_IO_RESOLVE_H
#define MASQ_IO_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

#include "io/loop.h"
#include "proto/addr.h"

#define MASQ_RESOLVE_MAX_ADDRS 16

typedef struct masq_resolver masq_resolver;
typedef struct masq_resolve_req masq_resolve_req;

/* status: 0 ok; otherwise the getaddrinfo EAI_* code (EAI_NONAME for
 * NXDOMAIN, EAI_AGAIN for timeouts/SERVFAIL...). addrs are in the order
 * getaddrinfo returned them. Called on the loop thread. */
typedef void (*masq_resolve_cb)(void *ud, int status, const masq_ip *addrs, size_t naddrs);

/* nthreads workers (1..16). NULL/errno on failure. */
masq_resolver *masq_resolver_new(masq_loop *loop, int nthreads);
void masq_resolver_free(masq_resolver *r); /* joins the workers */

/* Starts resolving host (a name or a literal; literals never reach the
 * workers and complete on the next loop iteration). Returns a handle or
 * NULL/errno (ENOMEM, or EAGAIN when more than 1024 are pending). */
masq_resolve_req *masq_resolve(masq_resolver *r, const char *host, masq_resolve_cb cb, void *ud);

/* The callback will not be called; the request is freed when its worker
 * is done with it. */
void masq_resolve_cancel(masq_resolve_req *req);

#endif
