#include "client/proxy_url.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proto/addr.h"
#include "proto/uritemplate.h"

int masq_proxy_url_parse(const char *s, masq_proxy_url *u, char *err, size_t errcap) {
  memset(u, 0, sizeof(*u));
  if (strncasecmp(s, "https://", 8) != 0) {
    snprintf(err, errcap, "must start with https://");
    return -1;
  }
  char hp[MASQ_MAX_HOST + 16];
  size_t n = strcspn(s + 8, "/?#");
  if (n == 0 || n >= sizeof(hp)) {
    snprintf(err, errcap, "needs a host, as in https://proxy.example:443");
    return -1;
  }
  if (s[8 + n] && strcmp(s + 8 + n, "/") != 0) {
    snprintf(err, errcap, "give only https://HOST[:PORT]; set paths with --udp-template");
    return -1;
  }
  memcpy(hp, s + 8, n);
  hp[n] = 0;
  if (masq_hostport_parse(hp, u->host, sizeof(u->host), &u->port, 443, 0) != 0) {
    snprintf(err, errcap, "\"%s\" is not HOST[:PORT] (IPv6 literals go in brackets)", hp);
    return -1;
  }
  int v6 = strchr(u->host, ':') != NULL;
  snprintf(u->authority, sizeof(u->authority), v6 ? "[%s]:%u" : "%s:%u", u->host, u->port);
  return 0;
}

/* Replaces each "{proxy}" with the authority: it is not a template
 * variable of RFC 9298 but masq's placeholder for the proxy itself, and it
 * must not be percent-encoded. */
static int put_proxy(const char *tmpl, const char *authority, char *out, size_t cap) {
  size_t o = 0, alen = strlen(authority);
  for (const char *p = tmpl; *p;) {
    if (strncmp(p, "{proxy}", 7) == 0) {
      if (o + alen >= cap) return -1;
      memcpy(out + o, authority, alen);
      o += alen;
      p += 7;
    } else {
      if (o + 1 >= cap) return -1;
      out[o++] = *p++;
    }
  }
  out[o] = 0;
  return 0;
}

int masq_proxy_url_target(const masq_proxy_url *u, const char *tmpl, const char *host,
                          const char *port, char *authority, size_t acap, char *path,
                          size_t pcap) {
  char t[2048], uri[2048];
  if (put_proxy(tmpl, u->authority, t, sizeof(t)) != 0) return -1;
  masq_tvar vars[] = {{"target_host", host}, {"target_port", port}};
  if (masq_uritemplate_expand(t, vars, 2, uri, sizeof(uri)) < 0) return -1;
  return masq_uri_split(uri, authority, acap, path, pcap);
}
