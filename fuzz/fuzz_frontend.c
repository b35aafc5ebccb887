/* Fuzzes the front ends' helpers on proxy-supplied text: whatever the
 * Proxy-Status value, the error type found is a NUL-terminated token
 * that fits, and authorities built from any SOCKS address are well
 * formed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frontend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok) abort();
}

static void fuzz_status(const uint8_t *data, size_t size) {
  char out[32];
  size_t cap = size ? (size_t)data[0] % sizeof(out) + 1 : sizeof(out);
  memset(out, 0x55, sizeof(out));
  if (masq_fe_proxy_status_error((const char *)data, size, out, cap) != 0) return;
  size_t n = strnlen(out, cap);
  check(n > 0 && n < cap);
  for (size_t i = 0; i < n; i++) check(out[i] > 0x20 && out[i] < 0x7f && out[i] != ',' &&
                                       out[i] != ';' && out[i] != '"');
  masq_fe_gateway_status(size % 600, out);
}

static void fuzz_socks_addr(const uint8_t *data, size_t size) {
  masq_socks5_addr a;
  memset(&a, 0, sizeof(a));
  if (size < 4) return;
  a.atyp = data[0] % 5;
  a.port = (uint16_t)(data[1] << 8 | data[2]);
  size_t n = size - 3 > 255 ? 255 : size - 3;
  a.ip.family = (data[0] & 0x80) ? 6 : 4;
  memcpy(a.ip.a, data + 3, n < 16 ? n : 16);
  memcpy(a.host, data + 3, n);
  a.host[n] = '\0';
  a.hostlen = (uint8_t)strlen(a.host);
  char out[MASQ_FE_AUTHORITY_MAX + 1];
  int len = masq_fe_socks_authority(&a, out, sizeof(out));
  if (len < 0) return;
  check((size_t)len == strlen(out));
  check(strchr(out, ' ') == NULL && strrchr(out, ':') != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_status(data, size);
  fuzz_socks_addr(data, size);
  return 0;
}
