/* One QUIC connection from a client to its MASQUE proxy, shared by every
 * flow of every front end in the process (forward --udp/--tcp, socks,
 * http-proxy): the UDP socket, TLS, the session, its timer and write
 * pass, reconnection with backoff, and a queue of requests waiting for
 * the connection or for stream credit.
 *
 * Each flow embeds a masq_pc_req and hands it to masq_pc_request; the
 * req is the session's stream user pointer, so every stream event finds
 * its flow in O(1) through ops. A flow that goes away calls
 * masq_pc_release: its stream is detached (and ended or reset), and
 * whatever still arrives for it is dropped here, with the flow-control
 * credit of byte-stream data returned.
 *
 * masq connect drives its one CONNECT-IP request through the same
 * connection, with masq_pc_configure: a marked socket, a deeper datagram
 * queue, RFC 9484 capsules delivered, and no reconnection (a VPN whose
 * proxy is gone ends, so the host's configuration is restored). */
#ifndef MASQ_CLIENT_PROXYCONN_H
#define MASQ_CLIENT_PROXYCONN_H

#include <stddef.h>
#include <stdint.h>

#include "app/options.h"
#include "client/proxy_url.h"
#include "io/loop.h"
#include "session/session.h"

typedef struct masq_pc masq_pc;
typedef struct masq_pc_req masq_pc_req;

/* on_close's err when the request never reached the proxy (stream setup
 * failed); the connection's loss is reported as H3_REQUEST_CANCELLED. */
#define MASQ_PC_ERR_SUBMIT UINT64_MAX
/* masq_pc_release's how: end the stream with FIN instead of a reset. */
#define MASQ_PC_FIN 0

typedef struct masq_pc_req_ops {
  /* The connection can take the request now: submit it with
   * masq_conn_submit_* and r as the stream user pointer, return the
   * result (the stream ID, or MASQ_SESS_ERR_BLOCKED to wait for credit,
   * or another error). token is NULL without --token. */
  int64_t (*submit)(masq_pc_req *r, masq_conn *c, const char *token);
  /* The response's header section; status is 0 if :status is absent or
   * malformed. */
  void (*on_response)(masq_pc_req *r, masq_conn *c, int status, const masq_reqhdrs *h);
  void (*on_datagram)(masq_pc_req *r, const uint8_t *p, size_t n); /* may be NULL */
  void (*on_data)(masq_pc_req *r, const uint8_t *p, size_t n);     /* may be NULL */
  void (*on_writable)(masq_pc_req *r);                            /* may be NULL */
  void (*on_end)(masq_pc_req *r);                                 /* peer's FIN */
  /* An RFC 9484 capsule (ADDRESS_ASSIGN, ADDRESS_REQUEST,
   * ROUTE_ADVERTISEMENT) and its payload, with masq_pc_settings.capsules
   * only (else the session skips them). 0, or -1 if it is malformed: the
   * session then aborts the stream. May be NULL (ignored). */
  int (*on_capsule)(masq_pc_req *r, masq_conn *c, uint64_t type, const uint8_t *p, size_t n);
  /* The stream is gone (r->sid is already -1) with the H3 error code
   * (NO_ERROR on a clean close), or MASQ_PC_ERR_SUBMIT. r may be freed
   * here. */
  void (*on_close)(masq_pc_req *r, uint64_t err);
} masq_pc_req_ops;

/* Embedded in a flow; the fields belong to proxyconn.c. */
struct masq_pc_req {
  const masq_pc_req_ops *ops;
  int64_t sid; /* -1 when no stream */
  masq_pc_req *qnext, *qprev;
  int queued;
};

void masq_pc_req_init(masq_pc_req *r, const masq_pc_req_ops *ops);

/* What a front end may change from the defaults, which are a zeroed
 * struct (what forward, socks and http-proxy use). */
typedef struct masq_pc_settings {
  int set_mark;       /* put fwmark on the socket (SO_MARK, CAP_NET_ADMIN) */
  uint32_t fwmark;    /* so that policy routing sends it past a VPN */
  size_t dgram_queue; /* datagram send queue slots; 0 for the session's */
  int capsules;       /* deliver RFC 9484 capsules to ops->on_capsule */
  int once;           /* a lost connection ends the run (status 1) */
  /* Appended to the "connected to" line after "; " (or NULL), and what
   * a signal's line says it closes (NULL: "connection"). */
  const char *ready_note, *closing;
} masq_pc_settings;

/* Parses --proxy, loads the trust anchors, and prepares (but does not
 * start) the connection. Returns NULL after logging why. */
masq_pc *masq_pc_new(masq_loop *loop, const masq_opts *o);
/* Replaces the settings (copied; the strings must outlive pc). Before
 * masq_pc_start. */
void masq_pc_configure(masq_pc *pc, const masq_pc_settings *s);
/* Resolves the proxy and starts the handshake. 0, or -1 after logging. */
int masq_pc_start(masq_pc *pc);
/* Runs the loop until SIGINT/SIGTERM (exit status 0), until the first
 * connection attempt fails (1), until a connection is lost with
 * settings.once (1), or until masq_pc_stop. Returns the exit status. */
int masq_pc_loop(masq_pc *pc);
/* masq_pc_loop, then a log line with the datagram totals. */
int masq_pc_run(masq_pc *pc);
/* Ends the run with exit status `status` (the first call's counts):
 * the loop stops after this iteration, whose write pass closes the
 * connection (H3_NO_ERROR). Safe inside any callback of pc's. */
void masq_pc_stop(masq_pc *pc, int status);
/* 1 once the run is ending (masq_pc_stop, a signal, a fatal loss). */
int masq_pc_stopping(const masq_pc *pc);
/* The session counters summed over every connection so far. */
void masq_pc_stats(const masq_pc *pc, masq_conn_stats *out);
/* Frees the connection first (its streams' on_close still run: owners
 * must be alive), then the rest. The loop is the caller's. */
void masq_pc_free(masq_pc *pc);

const masq_proxy_url *masq_pc_url(const masq_pc *pc);
/* The live session, or NULL while (re)connecting. */
masq_conn *masq_pc_conn(masq_pc *pc);

/* Queues r (not already queued or holding a stream); it is submitted as
 * soon as the connection is up and the proxy allows another stream, in
 * order. Requests wait across reconnections. */
void masq_pc_request(masq_pc *pc, masq_pc_req *r);
/* Forgets r: takes it off the queue, or detaches its stream and ends it
 * (how == MASQ_PC_FIN) or resets it with the H3 error code how. No
 * callback for r runs after this. */
void masq_pc_release(masq_pc *pc, masq_pc_req *r, uint64_t how);

/* Work is pending for the write pass (data queued, credit returned). */
void masq_pc_touch(masq_pc *pc);
/* Registers fn to run once per loop iteration just before the write
 * pass (flushing local sockets returns credit the pass then sends). At
 * most 4. 0 or -1. */
int masq_pc_add_flush(masq_pc *pc, void (*fn)(void *ud), void *ud);
/* Counts a datagram dropped on the client side (in the exit totals). */
void masq_pc_count_drop(masq_pc *pc);

/* Raises the soft limit on open files to the hard one: each TCP flow
 * holds a socket, and thousands of flows are normal. Logs if it cannot. */
void masq_pc_raise_nofile(void);

#endif
