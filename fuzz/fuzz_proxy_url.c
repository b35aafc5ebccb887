/* Fuzzes the client's --proxy parser and the per-target request
 * expansion: input is "URL\nTEMPLATE\nHOST". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/proxy_url.h"
#include "proto/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *buf = malloc(size + 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[size] = 0;
  char *tmpl = strchr(buf, '\n');
  char *host = NULL;
  if (tmpl) {
    *tmpl++ = 0;
    host = strchr(tmpl, '\n');
    if (host) *host++ = 0;
  }
  masq_proxy_url u;
  char err[256], auth[512], path[1024];
  if (masq_proxy_url_parse(buf, &u, err, sizeof(err)) == 0) {
    /* A parsed URL always has a host and a usable authority. */
    if (!u.host[0] || u.port == 0 || !strchr(u.authority, ':')) abort();
    const char *t = tmpl && *tmpl ? tmpl : MASQ_DEFAULT_UDP_TEMPLATE;
    if (masq_proxy_url_target(&u, t, host ? host : "192.0.2.1", "443", auth, sizeof(auth), path,
                              sizeof(path)) == 0) {
      if (strlen(auth) >= sizeof(auth) || path[0] != '/') abort();
    }
  } else if (!err[0]) {
    abort(); /* every refusal says why */
  }
  free(buf);
  return 0;
}
