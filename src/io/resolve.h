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
/* Joins the workers (waiting for lookups in progress) and frees every
 * request without calling back. Not from inside a resolve callback; before
 * masq_loop_free. */
void masq_resolver_free(masq_resolver *r);

/* Starts resolving host (a name or a literal; literals never reach the
 * workers and complete on the next loop iteration). Returns a handle or
 * NULL/errno (ENOMEM, EINVAL for an empty or over-long host, or EAGAIN
 * when 1024 are pending). Names under "invalid." fail with EAI_NONAME
 * without a lookup (RFC 6761 §6.4). */
masq_resolve_req *masq_resolve(masq_resolver *r, const char *host, masq_resolve_cb cb, void *ud);

/* The callback will not be called; the request is freed when its worker
 * is done with it. Valid until the callback has run (the handle is freed
 * right after it), including from another request's callback. */
void masq_resolve_cancel(masq_resolve_req *req);

#endif
