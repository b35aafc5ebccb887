/* h3probe: a deliberately misbehaving MASQUE client for the netns tests.
 *
 *   h3probe --proxy IP:PORT --ca CERT --sni NAME [--token T] --case NAME
 *           [--target HOST:PORT] [-v]
 *
 * It opens one QUIC/HTTP/3 connection to a masq server with the session
 * layer, runs one scenario (valid or malformed requests, capsules and
 * datagrams), checks the server's reaction against what RFC 9297 / 9298 /
 * 9220 require, prints one result line and exits 0 (as expected), 1 (not
 * as expected, or the 10 s budget ran out) or 2 (could not set up).
 *
 * It reaches below the public session API (session/internal.h) on
 * purpose: a well-behaved client cannot send the broken input the server
 * must survive.
 *
 * The harness (harness.c, request.c) is shared; the cases come in
 * families: CONNECT-UDP (udp.c), CONNECT-IP (ip.c, "ip-*") and plain
 * CONNECT (tcp.c, "tcp-*"). This file reads the command line, picks the
 * case and runs it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cases.h"
#include "proto/addr.h"

/* Every family, in the order the usage lists them. */
static const pcase_list *const families[] = {&udp_cases, &ip_cases, &tcp_cases};
#define NFAMILIES (sizeof(families) / sizeof(families[0]))

/* Static, so everything stays reachable for LeakSanitizer on any exit. */
static probe P;

static void usage(void) {
  fprintf(stderr, "usage: h3probe --proxy IP:PORT --ca CERT --sni NAME [--token T] --case NAME "
                  "[--target HOST:PORT] [-v]\ncases:");
  for (size_t f = 0; f < NFAMILIES; f++)
    for (size_t i = 0; i < families[f]->n; i++) fprintf(stderr, " %s", families[f]->v[i].name);
  fputc('\n', stderr);
  exit(2);
}

static void parse_args(probe *p, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-v") == 0) {
      p->verbose = 1;
      continue;
    }
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (strcmp(a, "--proxy") == 0) p->proxy = v;
    else if (strcmp(a, "--ca") == 0) p->ca = v;
    else if (strcmp(a, "--sni") == 0) p->sni = v;
    else if (strcmp(a, "--token") == 0) p->token = v;
    else if (strcmp(a, "--case") == 0) p->casename = v;
    else if (strcmp(a, "--target") == 0) p->target = v;
    else usage();
  }
  if (!p->proxy || !p->ca || !p->sni || !p->casename) usage();
}

static const pcase *find_case(probe *p) {
  for (size_t f = 0; f < NFAMILIES; f++)
    for (size_t i = 0; i < families[f]->n; i++)
      if (strcmp(families[f]->v[i].name, p->casename) == 0) return &families[f]->v[i];
  hp_fail(p, "unknown case");
  hp_finish(p, 2);
}

static void setup_target(probe *p, const pcase *pc) {
  if (!p->target) {
    if (!(pc->flags & CASE_NEEDS_TARGET)) return;
    hp_fail(p, "this case needs --target HOST:PORT");
    hp_finish(p, 2);
  }
  uint16_t port;
  if (masq_hostport_parse(p->target, p->thost, sizeof(p->thost), &port, -1, 0) != 0) {
    hp_fail(p, "--target %s is not HOST:PORT", p->target);
    hp_finish(p, 2);
  }
  snprintf(p->tport, sizeof(p->tport), "%u", port);
}

int main(int argc, char **argv) {
  probe *p = &P;
  p->fd = -1;
  setvbuf(stdout, NULL, _IOLBF, 0);
  parse_args(p, argc, argv);
  const pcase *pc = find_case(p);
  setup_target(p, pc);
  p->deadline = hp_now_ns() + PROBE_BUDGET_NS;
  p->cfg.no_h3_datagram = (pc->flags & CASE_NO_H3_DATAGRAM) != 0;
  hp_connect(p);
  hp_vlog(p, "connected; running case %s", pc->name);
  hp_finish(p, pc->run(p));
}
