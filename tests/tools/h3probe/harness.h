/* h3probe's harness: the state of one run (one QUIC/HTTP/3 connection to
 * the server and what the probe saw on each request stream), the outcome
 * report, connection set-up and the event loop. See main.c for what
 * h3probe is. */
#ifndef H3PROBE_HARNESS_H
#define H3PROBE_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "client/proxy_url.h"
#include "io/net.h"
#include "proto/ipcapsule.h"
#include "proto/wire.h"
#include "session/internal.h"

#define NS_PER_MS 1000000ull
#define PROBE_BUDGET_NS (10000 * NS_PER_MS) /* whole run, connection included */
#define ECHO_RETRY_NS (400 * NS_PER_MS)     /* datagrams may be lost: resend */
#define ECHO_TRIES 6
#define MAX_PSTREAMS 128

/* What the probe saw on one request stream. */
typedef struct pstream {
  int64_t sid;
  int status;           /* response :status, 0 until the headers came */
  int capsule_protocol; /* response carried capsule-protocol: ?1 */
  char proxy_status[256];
  int ended;            /* peer FIN */
  int closed;           /* stream gone */
  uint64_t app_error;   /* H3 error code of the close */
  /* Datagrams: those equal to `expect` and any others (kept for the
   * report). */
  uint8_t expect[MASQ_OUTER_UDP_PAYLOAD];
  size_t expectlen;
  unsigned matched, mismatched;
  uint8_t odd[64];
  size_t oddlen;
  /* CONNECT-IP: the last datagram, and the last capsules of each kind. */
  uint8_t last[1500];
  size_t lastlen;
  unsigned ndgrams;
  masq_ip_assignment assign[8];
  size_t nassign;
  unsigned assigns; /* ADDRESS_ASSIGN capsules seen */
  masq_ip_route routes[8];
  size_t nroutes;
  unsigned route_ads;
  /* Plain CONNECT: bytes received (checked against the pattern sent). */
  uint64_t rx_bytes, rx_bad;
} pstream;

typedef struct probe {
  const char *proxy, *ca, *sni, *token, *target, *casename;
  int verbose;
  char authority[MASQ_MAX_HOST + 16];
  masq_proxy_url url;
  char thost[MASQ_MAX_HOST + 1], tport[8];
  int fd;
  masq_sockaddr local, remote;
  gnutls_certificate_credentials_t creds;
  masq_conn_config cfg;
  masq_conn *c;
  int ready;
  uint64_t deadline;
  const char *waiting; /* what the current pump waits for, for "timeout" */
  pstream st[MAX_PSTREAMS];
  size_t nst;
  char msg[768];
  uint8_t rxbuf[65536];
} probe;

/* A condition hp_pump_for() waits for. */
typedef int (*hp_cond_fn)(probe *p, void *arg);

uint64_t hp_now_ns(void);
/* Far enough in the future that only the run's budget ends a wait. */
uint64_t hp_forever(void);

/* Logs to stderr with -v. */
void hp_vlog(probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Case outcome helpers: fill p->msg and return the exit code (1, 0). */
int hp_fail(probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int hp_pass(probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints the result line, closes the connection cleanly and exits with
 * code: 0 as expected, 1 not as expected, 2 could not set up. */
void hp_finish(probe *p, int code) __attribute__((noreturn));

/* The byte each offset of a plain CONNECT's pattern holds. */
uint8_t hp_pattern_at(uint64_t off);

/* Opens the connection to --proxy and waits for the handshake and the
 * server's SETTINGS; ends the run with code 2 if that fails. */
void hp_connect(probe *p);

/* Runs the connection until cond holds (returns 1), the connection dies
 * (-1) or `until` passes (0). Past the overall budget it ends the run
 * with "timeout", naming `what` as what it was waiting for. */
int hp_pump_for(probe *p, const char *what, hp_cond_fn cond, void *arg, uint64_t until);

/* hp_pump_for() for a wait the connection must survive: ends the run
 * with code 1 if it dies, else returns 1 (cond held) or 0 (`until`
 * passed). */
int hp_await(probe *p, const char *what, hp_cond_fn cond, void *arg, uint64_t until);

#endif
