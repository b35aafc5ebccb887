/* The client's view of the proxy: "--proxy https://HOST[:PORT]" and the
 * request each tunnel sends, expanded from the URI template. */
#ifndef MASQ_CLIENT_PROXY_URL_H
#define MASQ_CLIENT_PROXY_URL_H

#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

typedef struct masq_proxy_url {
  char host[MASQ_MAX_HOST + 1]; /* name or IP literal, no brackets */
  uint16_t port;                /* 443 unless given */
  char authority[MASQ_MAX_HOST + 9]; /* "host:port" / "[v6]:port" */
} masq_proxy_url;

/* Parses "https://HOST[:PORT][/]". Returns 0, or -1 with a reason. */
int masq_proxy_url_parse(const char *s, masq_proxy_url *u, char *err, size_t errcap);

/* Expands tmpl for one target: "{proxy}" becomes the proxy's authority,
 * {target_host} / {target_port} are percent-encoded (RFC 9298 §2), then
 * the URI is split into :authority and :path. Returns 0 or -1. */
int masq_proxy_url_target(const masq_proxy_url *u, const char *tmpl, const char *host,
                          const char *port, char *authority, size_t acap, char *path,
                          size_t pcap);

#endif
