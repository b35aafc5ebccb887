#include "proto/frontend.h"

#include <stdio.h>
#include <string.h>

#include "proto/addr.h"

/* RFC 8941 §3.3.4: sf-token characters after the first. */
static int tchar(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch && strchr("!#$%&'*+-.^_`|~:/", ch) != NULL);
}

static int is_ows(char ch) { return ch == ' ' || ch == '\t'; }

/* Skips a quoted sf-string starting at v[i] == '"'; returns the index
 * after its closing quote (or len if unterminated). */
static size_t skip_string(const char *v, size_t len, size_t i) {
  for (i++; i < len; i++) {
    if (v[i] == '\\') i++;
    else if (v[i] == '"') return i + 1;
  }
  return len;
}

/* If a parameter "error=<token>" starts at v[i] (after its ';' and any
 * spaces), copies the token. Returns 1 if copied, 0 if not this
 * parameter, -1 if it does not fit. */
static int take_error(const char *v, size_t len, size_t i, char *out, size_t cap) {
  if (len - i < 6 || memcmp(v + i, "error=", 6) != 0) return 0;
  i += 6;
  size_t s = i;
  /* A token starts with ALPHA or '*' (RFC 8941 §3.3.4). */
  if (i >= len || !((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') || v[i] == '*'))
    return 0;
  while (i < len && tchar(v[i])) i++;
  if (i - s + 1 > cap) return -1;
  memcpy(out, v + s, i - s);
  out[i - s] = '\0';
  return 1;
}

int masq_fe_proxy_status_error(const char *v, size_t len, char *out, size_t cap) {
  for (size_t i = 0; i < len;) {
    char ch = v[i];
    if (ch == '"') {
      i = skip_string(v, len, i);
    } else if (ch == ';') {
      i++;
      while (i < len && is_ows(v[i])) i++;
      int r = take_error(v, len, i, out, cap);
      if (r != 0) return r > 0 ? 0 : -1;
    } else {
      i++;
    }
  }
  return -1;
}

int masq_fe_gateway_status(int status, const char *error_type) {
  if (status == 504) return 504;
  if (error_type &&
      (strcmp(error_type, "connection_timeout") == 0 || strcmp(error_type, "dns_timeout") == 0))
    return 504;
  return 502;
}

int masq_fe_authority(const char *host, uint16_t port, char *out, size_t cap) {
  if (!host[0]) return -1;
  int n = snprintf(out, cap, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
  return n > 0 && (size_t)n < cap ? n : -1;
}

int masq_fe_socks_authority(const masq_socks5_addr *a, char *out, size_t cap) {
  char host[MASQ_MAX_HOST + 1];
  if (a->port == 0) return -1;
  switch (a->atyp) {
    case MASQ_SOCKS5_ATYP_IPV4:
    case MASQ_SOCKS5_ATYP_IPV6:
      if (a->ip.family != (a->atyp == MASQ_SOCKS5_ATYP_IPV4 ? 4 : 6) ||
          !masq_ip_format(&a->ip, host, sizeof(host)))
        return -1;
      break;
    case MASQ_SOCKS5_ATYP_DOMAIN:
      if (a->hostlen == 0 || masq_target_host_parse(a->host, NULL) < 0)
        return -1;
      memcpy(host, a->host, a->hostlen);
      host[a->hostlen] = '\0';
      break;
    default:
      return -1;
  }
  return masq_fe_authority(host, a->port, out, cap);
}
