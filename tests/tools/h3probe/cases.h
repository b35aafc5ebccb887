/* h3probe's cases: each family (udp.c, ip.c, tcp.c) exports a table of
 * them; main.c picks one by name. */
#ifndef H3PROBE_CASES_H
#define H3PROBE_CASES_H

#include <stddef.h>

#include "harness.h"

enum {
  CASE_NEEDS_TARGET = 1,  /* fails to set up without --target */
  CASE_NO_H3_DATAGRAM = 2 /* connects as a peer without HTTP/3 datagrams */
};

/* One scenario: runs on a connected probe and returns its exit code
 * (hp_pass() or hp_fail()). */
typedef struct pcase {
  const char *name;
  int (*run)(probe *p);
  unsigned flags;
} pcase;

typedef struct pcase_list {
  const pcase *v;
  size_t n;
} pcase_list;

#define PCASE_LIST(table) \
  { (table), sizeof(table) / sizeof((table)[0]) }

extern const pcase_list udp_cases; /* CONNECT-UDP (RFC 9298) */
extern const pcase_list ip_cases;  /* CONNECT-IP (RFC 9484) */
extern const pcase_list tcp_cases; /* plain CONNECT (RFC 9114 §4.4) */

#endif
