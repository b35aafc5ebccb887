/* Fuzzes request header handling. Input: lines "NAME VALUE" separated by
 * '\n' (NAME up to the first space), fed to masq_reqhdrs_add; then the
 * request is checked and the bearer, boolean and Proxy-Status codecs run
 * on what was gathered, with invariants asserted. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok) abort();
}

static masq_reqhdrs hdrs;

static void feed(const uint8_t *data, size_t size) {
  size_t i = 0;
  while (i < size) {
    const uint8_t *line = data + i;
    const uint8_t *nl = memchr(line, '\n', size - i);
    size_t len = nl ? (size_t)(nl - line) : size - i;
    const uint8_t *sp = memchr(line, ' ', len);
    size_t nlen = sp ? (size_t)(sp - line) : len;
    const uint8_t *val = sp ? sp + 1 : line + len;
    masq_reqhdrs_add(&hdrs, line, nlen, val, len - nlen - (sp ? 1 : 0));
    i += len + 1;
  }
}

static void check_request(void) {
  masq_reqcheck r;
  masq_reqcheck_connect(&hdrs, "connect-udp", &r);
  check(r.status == 0 || r.status == 400 || r.status == 405 || r.status == 501);
  if (r.status == 0) {
    check(r.error == NULL);
    check(strcmp(hdrs.method.v, "CONNECT") == 0 && strcmp(hdrs.protocol.v, "connect-udp") == 0);
    check(hdrs.path.v[0] == '/' && hdrs.authority.len > 0 && hdrs.scheme.len == 5);
    check(!hdrs.too_long && !hdrs.bad_pseudo && !hdrs.bad_field && !hdrs.method.dup);
    check(r.capsule_protocol == 0 || r.capsule_protocol == 1);
  } else {
    check(r.error != NULL && r.detail != NULL && r.capsule_protocol == 0);
  }
}

static int b64tok(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         strchr("-._~+/=", c) != NULL;
}

static void check_bearer(void) {
  size_t n = 0;
  const char *t = masq_reqhdrs_bearer(&hdrs, &n);
  if (t == NULL) return;
  const char *lo = (const char *)&hdrs, *hi = lo + sizeof(hdrs);
  check(t >= lo && t + n <= hi && n > 0);
  for (size_t i = 0; i < n; i++) check(t[i] != 0 && b64tok(t[i]));
  check(t[0] != '=');
  check(masq_ct_equal(t, n, t, n) == 1);
}

static void check_codecs(const uint8_t *data, size_t size) {
  int b = masq_sf_boolean_parse((const char *)data, size);
  check(b >= -1 && b <= 1);
  /* ct_equal agrees with memcmp on the two halves of the input. */
  size_t h = size / 2;
  int eq = masq_ct_equal(data, h, data + h, size - h);
  check(eq == (h == size - h && memcmp(data, data + h, h) == 0));
  /* Proxy-Status from whatever was gathered: printable, quotes balanced. */
  char out[256];
  const char *err = hdrs.method.present && hdrs.method.len > 0 ? hdrs.method.v : "dns_error";
  int n = masq_proxy_status_format(out, sizeof(out), err, hdrs.path.v);
  if (n < 0) return;
  check((size_t)n == strlen(out) && strncmp(out, "masq; error=", 12) == 0);
  int quoted = 0;
  for (int i = 0; i < n; i++) {
    check(out[i] >= 0x20 && out[i] < 0x7f);
    if (out[i] == '\\') {
      check(quoted && (out[i + 1] == '"' || out[i + 1] == '\\'));
      i++;
    } else if (out[i] == '"') {
      quoted = !quoted;
    }
  }
  check(!quoted);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 16384) return 0;
  masq_reqhdrs_init(&hdrs);
  feed(data, size);
  check_request();
  check_bearer();
  check_codecs(data, size);
  return 0;
}
