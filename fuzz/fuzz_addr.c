/* Fuzzes the address parsers: every accepted input must format and parse
 * back to the same value, and the hand-written IP parser must agree with
 * inet_pton on what is an address and what it means. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok) abort();
}

static void fuzz_ip(const char *s) {
  masq_ip ip, back;
  char buf[64];
  int rc = masq_ip_parse(s, &ip);
  /* inet_pton agrees with the parser (glibc refuses leading zeros in
   * IPv4 octets too, and takes no zone or brackets). */
  uint8_t ref[16];
  int v4 = inet_pton(AF_INET, s, ref) == 1;
  int v6 = !v4 && inet_pton(AF_INET6, s, ref) == 1;
  check((rc == 0) == (v4 || v6));
  if (rc != 0) return;
  check(ip.family == (v4 ? 4 : 6));
  check(memcmp(ip.a, ref, v4 ? 4 : 16) == 0);
  check(masq_ip_format(&ip, buf, sizeof(buf)) != NULL);
  check(masq_ip_parse(buf, &back) == 0);
  check(back.family == ip.family && memcmp(back.a, ip.a, 16) == 0);
  /* An IPv4 address and its mapped IPv6 form get the same verdict. */
  masq_policy p;
  masq_policy_init_default(&p);
  int verdict = masq_policy_check(&p, &ip);
  if (ip.family == 4) {
    masq_ip m = {6, {0}};
    m.a[10] = m.a[11] = 0xff;
    memcpy(m.a + 12, ip.a, 4);
    check(masq_policy_check(&p, &m) == verdict);
  }
  masq_cidr host;
  check(masq_cidr_parse(buf, &host) == 0);
  check(masq_cidr_contains(&host, &ip) == 1);
}

static void fuzz_cidr(const char *s) {
  masq_cidr c, back;
  char buf[64], txt[80];
  if (masq_cidr_parse(s, &c) != 0) return;
  check(c.plen <= (c.ip.family == 4 ? 32 : 128));
  check(masq_cidr_contains(&c, &c.ip) == 1);
  check(masq_ip_format(&c.ip, buf, sizeof(buf)) != NULL);
  snprintf(txt, sizeof(txt), "%s/%u", buf, (unsigned)c.plen);
  check(masq_cidr_parse(txt, &back) == 0);
  check(back.plen == c.plen && back.ip.family == c.ip.family &&
        memcmp(back.ip.a, c.ip.a, 16) == 0);
}

static void fuzz_hostport(const char *s) {
  char host[MASQ_FWD_HOST_MAX], host2[MASQ_FWD_HOST_MAX], txt[MASQ_FWD_HOST_MAX + 16];
  uint16_t port, port2;
  if (masq_hostport_parse(s, host, sizeof(host), &port, 443, 0) != 0) return;
  check(port != 0 && strlen(host) > 0 && strlen(host) <= MASQ_MAX_HOST);
  int v6 = strchr(host, ':') != NULL;
  snprintf(txt, sizeof(txt), v6 ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
  check(masq_hostport_parse(txt, host2, sizeof(host2), &port2, -1, 0) == 0);
  check(port2 == port && strcmp(host, host2) == 0);
}

static void fuzz_fwdspec(const char *s) {
  masq_fwdspec f, g;
  char txt[512];
  if (masq_fwdspec_parse(s, &f) != 0) return;
  check(f.port != 0 && f.hostport != 0);
  masq_ip ip;
  check(masq_ip_parse(f.bind, &ip) == 0);
  const char *bl = ip.family == 6 ? "[" : "", *br = ip.family == 6 ? "]" : "";
  int hv6 = strchr(f.host, ':') != NULL;
  snprintf(txt, sizeof(txt), "%s%s%s:%u:%s%s%s:%u", bl, f.bind, br, (unsigned)f.port,
           hv6 ? "[" : "", f.host, hv6 ? "]" : "", (unsigned)f.hostport);
  check(masq_fwdspec_parse(txt, &g) == 0);
  check(memcmp(&f, &g, sizeof(f)) == 0);
}

static void fuzz_target(const char *s) {
  masq_ip ip;
  int rc = masq_target_host_parse(s, &ip);
  check(rc >= -1 && rc <= 1);
  if (rc == 0) check(strlen(s) <= 254 && masq_ip_parse(s, &ip) != 0);
  uint16_t port;
  if (masq_port_parse(s, strlen(s), 0, &port) == 0) {
    char txt[8];
    snprintf(txt, sizeof(txt), "%u", (unsigned)port);
    /* Digits only, so the value printed back matches s but for zeros. */
    const char *z = s;
    while (z[0] == '0' && z[1] != '\0') z++;
    check(port != 0 && strcmp(txt, z) == 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1024) return 0;
  char *s = malloc(size + 1);
  if (s == NULL) return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  fuzz_ip(s);
  fuzz_cidr(s);
  fuzz_hostport(s);
  fuzz_fwdspec(s);
  fuzz_target(s);
  free(s);
  return 0;
}
