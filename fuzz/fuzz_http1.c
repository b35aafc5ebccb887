/* Fuzzes the HTTP/1.1 proxy request parser. Byte 0 picks where the rest
 * is split; the head is parsed whole and in two calls (the first from a
 * buffer of exactly the prefix's size, so ASan sees any read past what
 * was given) and both must leave the parser identical. An accepted head
 * must hold only in-range spans and valid tokens; its forwarded head
 * must fit the documented bound, be well-formed and, read back as a
 * proxy request, forward to the very same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok) abort();
}

static int tchar(uint8_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void check_token(const uint8_t *b, masq_http1_span s) {
  check(s.len > 0);
  for (size_t i = 0; i < s.len; i++) check(tchar(b[s.off + i]));
}

static void check_span(const masq_http1_request *r, masq_http1_span s) {
  check((size_t)s.off + s.len <= r->head_len);
}

static void check_value(const uint8_t *b, masq_http1_span s) {
  for (size_t i = 0; i < s.len; i++) {
    uint8_t c = b[s.off + i];
    check(c == '\t' || (c >= 0x20 && c != 0x7f));
  }
  if (s.len > 0) {
    check(b[s.off] != ' ' && b[s.off] != '\t');
    check(b[s.off + s.len - 1] != ' ' && b[s.off + s.len - 1] != '\t');
  }
}

static void check_request(const masq_http1_request *r, const uint8_t *b, size_t n) {
  check(r->head_len > 0 && r->head_len <= n && r->head_len <= MASQ_HTTP1_HEAD_MAX);
  check(b[r->head_len - 1] == '\n');
  check_token(b, r->method);
  check_span(r, r->method);
  check_span(r, r->target);
  check_span(r, r->authority);
  check_span(r, r->path);
  check(r->is_connect == (r->method.len == 7 && memcmp(b + r->method.off, "CONNECT", 7) == 0));
  check(r->version_minor <= 1);
  check(strlen(r->host) > 0 && strlen(r->host) <= MASQ_MAX_HOST && r->port != 0);
  check(r->nfields <= MASQ_HTTP1_MAX_FIELDS && r->nconn <= MASQ_HTTP1_MAX_CONN_OPTIONS);
  for (size_t i = 0; i < r->nfields; i++) {
    check_span(r, r->fields[i].name);
    check_span(r, r->fields[i].value);
    check_token(b, r->fields[i].name);
    check_value(b, r->fields[i].value);
  }
  for (size_t i = 0; i < r->nconn; i++) check_token(b, r->conn[i]);
  check(r->host_field < (int)r->nfields && r->proxy_auth < (int)r->nfields);
  if (r->host_field >= 0) check(masq_http1_span_ieq(b, r->fields[r->host_field].name, "host"));
  if (r->proxy_auth >= 0)
    check(masq_http1_span_ieq(b, r->fields[r->proxy_auth].name, "proxy-authorization"));
  if (r->version_minor == 1) check(r->host_field >= 0);
  if (r->chunked) check(r->content_length == -1 && r->version_minor == 1);
  if (r->is_connect) check(!r->chunked && r->content_length <= 0);
  check(!r->persistent || (r->version_minor == 1 && !r->conn_close));
}

/* A forwarded head: CRLF lines only, no NUL, ends with the empty line,
 * and none of the fields RFC 9110 §7.6.1 removes. */
static void check_forwarded(const uint8_t *o, size_t n) {
  check(n >= 4 && memcmp(o + n - 4, "\r\n\r\n", 4) == 0);
  for (size_t i = 0; i < n; i++) {
    check(o[i] != 0);
    if (o[i] == '\r') check(i + 1 < n && o[i + 1] == '\n');
    if (o[i] == '\n') check(i > 0 && o[i - 1] == '\r');
  }
  static const char *const gone[] = {"\nconnection: keep", "\nproxy-connection:", "\nkeep-alive:",
                                     "\nte:", "\nupgrade:", "\nproxy-authorization:"};
  for (size_t g = 0; g < sizeof(gone) / sizeof(gone[0]); g++) {
    size_t gl = strlen(gone[g]);
    for (size_t i = 0; i + gl <= n; i++) {
      size_t j = 0;
      while (j < gl && (o[i + j] | (o[i + j] >= 'A' && o[i + j] <= 'Z' ? 0x20 : 0)) == gone[g][j])
        j++;
      check(j < gl);
    }
  }
}

/* Turns a forwarded head back into a proxy request ("M http://AUTH
 * path HTTP/1.1") in dst. Returns its length, or 0 if too long. */
static size_t to_absolute(const uint8_t *o, size_t n, const uint8_t *b,
                          const masq_http1_request *r, uint8_t *dst, size_t cap) {
  const uint8_t *sp = memchr(o, ' ', n);
  const uint8_t *sp2 = memchr(sp + 1, ' ', n - (size_t)(sp + 1 - o));
  size_t ml = (size_t)(sp - o), pl = (size_t)(sp2 - sp - 1);
  int star = pl == 1 && sp[1] == '*';
  size_t need = n + 7 + r->authority.len;
  if (need > cap) return 0;
  size_t k = 0;
  memcpy(dst, o, ml + 1);
  k += ml + 1;
  memcpy(dst + k, "http://", 7);
  k += 7;
  memcpy(dst + k, b + r->authority.off, r->authority.len);
  k += r->authority.len;
  if (!star) {
    memcpy(dst + k, sp + 1, pl);
    k += pl;
  }
  memcpy(dst + k, sp2, n - (size_t)(sp2 - o));
  return k + n - (size_t)(sp2 - o);
}

static int is_method(const masq_http1_request *r, const uint8_t *b, const char *m) {
  return r->method.len == strlen(m) && memcmp(b + r->method.off, m, r->method.len) == 0;
}

static void fuzz_forward(const masq_http1_request *r, const uint8_t *b) {
  static uint8_t out[MASQ_HTTP1_HEAD_MAX + MASQ_HTTP1_FORWARD_SLACK + 16];
  static uint8_t back[MASQ_HTTP1_HEAD_MAX * 2], out2[sizeof(out)];
  masq_http1_forward_opts via = {"masq", 1};
  size_t cap = r->head_len + MASQ_HTTP1_FORWARD_SLACK + 4;
  int n = masq_http1_forward_head(r, b, &via, out, cap);
  if (r->is_connect) {
    check(n == MASQ_HTTP1_FWD_CONNECT);
    return;
  }
  if (n == MASQ_HTTP1_FWD_MAX_FORWARDS) {
    check(r->max_forwards == 0 && (is_method(r, b, "OPTIONS") || is_method(r, b, "TRACE")));
    return;
  }
  check(n > 0);
  check_forwarded(out, (size_t)n);
  /* Without Via and close, forwarding what was forwarded changes
   * nothing (but Max-Forwards, which each hop decrements). */
  n = masq_http1_forward_head(r, b, NULL, out, cap);
  check(n > 0);
  size_t bl = to_absolute(out, (size_t)n, b, r, back, sizeof(back));
  if (bl == 0 || bl > MASQ_HTTP1_HEAD_MAX) return;
  masq_http1_parser q;
  masq_http1_parser_init(&q);
  masq_http1_result res = masq_http1_parse(&q, back, bl);
  if (res == MASQ_HTTP1_ERROR && q.error == MASQ_HTTP1_ERR_TOO_MANY_FIELDS) return;
  check(res == MASQ_HTTP1_DONE);
  check(strcmp(q.req.host, r->host) == 0 && q.req.port == r->port);
  check(q.req.chunked == r->chunked && q.req.content_length == r->content_length);
  if (r->max_forwards >= 0 && (is_method(r, b, "OPTIONS") || is_method(r, b, "TRACE"))) return;
  int n2 = masq_http1_forward_head(&q.req, back, NULL, out2, sizeof(out2));
  check(n2 == n && memcmp(out, out2, (size_t)n) == 0);
}

static void fuzz_response(const uint8_t *in, size_t n) {
  char reason[48];
  size_t m = n < sizeof(reason) - 1 ? n : sizeof(reason) - 1;
  memcpy(reason, in, m);
  reason[m] = '\0';
  masq_http1_header x = {"X", reason};
  uint8_t out[256];
  int status = n >= 2 ? 100 + (in[0] << 8 | in[1]) % 500 : 200;
  int len = masq_http1_response_encode(out, sizeof(out), status, reason, reason, &x, 1);
  if (len < 0) return;
  /* Exactly one empty line, at the end: nothing in reason broke the head. */
  for (int i = 0; i + 4 <= len; i++)
    check(memcmp(out + i, "\r\n\r\n", 4) != 0 || i + 4 == len);
  for (int i = 0; i < len; i++) check(out[i] != '\n' || (i > 0 && out[i - 1] == '\r'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > MASQ_HTTP1_HEAD_MAX + 256) return 0;
  const uint8_t *in = data + 1;
  size_t n = size - 1;
  size_t k = n * data[0] / 255;
  uint8_t *whole = malloc(n ? n : 1), *prefix = malloc(k ? k : 1);
  if (whole == NULL || prefix == NULL) abort();
  memcpy(whole, in, n);
  memcpy(prefix, in, k);
  masq_http1_parser a, b;
  masq_http1_parser_init(&a);
  masq_http1_parser_init(&b);
  masq_http1_result ra = masq_http1_parse(&a, whole, n);
  masq_http1_result rb = masq_http1_parse(&b, prefix, k);
  if (rb == MASQ_HTTP1_NEED_MORE) rb = masq_http1_parse(&b, whole, n);
  check(ra == rb && memcmp(&a, &b, sizeof(a)) == 0);
  if (ra == MASQ_HTTP1_DONE) {
    check_request(&a.req, whole, n);
    fuzz_forward(&a.req, whole);
  } else if (ra == MASQ_HTTP1_ERROR) {
    int s = a.status;
    check(s == 400 || s == 414 || s == 431 || s == 505);
    check(s == masq_http1_error_status(a.error));
  } else {
    check(n < MASQ_HTTP1_HEAD_MAX);
  }
  fuzz_response(in, n);
  free(whole);
  free(prefix);
  return 0;
}
