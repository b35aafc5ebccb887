/* HTTP/1.1 proxy request heads (RFC 9112), forwarding (RFC 9110 §7.6)
 * and the front end's own responses.
 *
 * The parser reads whole lines: each time the caller's buffer grows it
 * looks for LF only in the bytes it has not searched yet, reads every
 * line that is now complete and remembers where the next one starts. So
 * a head fed one byte at a time costs no more than one fed at once, and
 * the checks run in the same order whatever the split. The head is a
 * proxy's input from an application that may be hostile to the origin
 * (request smuggling), so anything ambiguous is refused, not repaired. */
#include "proto/http1.h"

#include <string.h>

#include "proto/addr.h"

enum { ST_START = 0, ST_FIELDS, ST_DONE, ST_FAILED };

/* Spans hold offsets below the head cap. */
_Static_assert(MASQ_HTTP1_HEAD_MAX <= UINT16_MAX, "spans are 16-bit");

void masq_http1_parser_init(masq_http1_parser *p) {
  memset(p, 0, sizeof(*p));
  p->state = ST_START;
  p->req.host_field = -1;
  p->req.proxy_auth = -1;
  p->req.content_length = -1;
  p->req.max_forwards = -1;
}

/* ---- character classes (RFC 9110 §5.6.2, §5.5) ---- */

static int is_tchar(uint8_t c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_token(const uint8_t *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_tchar(s[i])) return 0;
  }
  return 1;
}

static int is_ows(uint8_t c) { return c == ' ' || c == '\t'; }

/* field-vchar / SP / HTAB: every byte but the controls (and DEL). */
static int is_value_char(uint8_t c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static uint8_t lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c; }

static int mem_ieq(const uint8_t *a, size_t n, const char *lit) {
  if (strlen(lit) != n) return 0;
  for (size_t i = 0; i < n; i++) {
    if (lower(a[i]) != lower((uint8_t)lit[i])) return 0;
  }
  return 1;
}

int masq_http1_span_ieq(const uint8_t *buf, masq_http1_span s, const char *lit) {
  return mem_ieq(buf + s.off, s.len, lit);
}

static int span_span_ieq(const uint8_t *buf, masq_http1_span a, masq_http1_span b) {
  if (a.len != b.len) return 0;
  for (size_t i = 0; i < a.len; i++) {
    if (lower(buf[a.off + i]) != lower(buf[b.off + i])) return 0;
  }
  return 1;
}

static masq_http1_span mkspan(size_t off, size_t len) {
  masq_http1_span s = {(uint16_t)off, (uint16_t)len};
  return s;
}

/* 1*DIGIT with value at most max (checked digit by digit, so no
 * overflow); clamp != 0 saturates at max instead of failing. */
static int parse_digits(const uint8_t *s, size_t n, int64_t max, int clamp, int64_t *out) {
  if (n == 0) return -1;
  int64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    int d = s[i] - '0';
    if (v > (max - d) / 10) {
      if (!clamp) return -1;
      v = max;
    } else {
      v = v * 10 + d;
    }
  }
  *out = v;
  return 0;
}

/* ---- request line (RFC 9112 §3) ---- */

/* "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3). */
static masq_http1_err parse_version(masq_http1_request *r, const uint8_t *v, size_t n) {
  if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.') return MASQ_HTTP1_ERR_VERSION;
  if (v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9') return MASQ_HTTP1_ERR_VERSION;
  if (v[5] != '1') return MASQ_HTTP1_ERR_VERSION_UNSUPPORTED;
  r->version_minor = v[7] == '0' ? 0 : 1;
  return MASQ_HTTP1_OK;
}

/* Splits host[:port] with masq_hostport_parse, which wants a C string. */
static int hostport(masq_http1_request *r, const uint8_t *s, size_t n, int default_port) {
  char tmp[MASQ_MAX_HOST + 16];
  if (n >= sizeof(tmp)) return -1;
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  return masq_hostport_parse(tmp, r->host, sizeof(r->host), &r->port, default_port, 0);
}

/* authority-form (RFC 9112 §3.2.3): uri-host ":" port, port required. */
static masq_http1_err authority_form(masq_http1_request *r, const uint8_t *buf) {
  masq_http1_span t = r->target;
  if (hostport(r, buf + t.off, t.len, -1) != 0) return MASQ_HTTP1_ERR_TARGET;
  r->authority = t;
  return MASQ_HTTP1_OK;
}

/* Length of the URI scheme at s (RFC 3986 §3.1) up to its ':', or 0. */
static size_t scheme_len(const uint8_t *s, size_t n) {
  if (n == 0 || !((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z')) return 0;
  for (size_t i = 1; i < n; i++) {
    uint8_t c = s[i];
    if (c == ':') return i;
    int ok = ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
             c == '-' || c == '.';
    if (!ok) return 0;
  }
  return 0;
}

/* The authority of an http URI: no userinfo (RFC 9110 §4.2.4: refused
 * rather than risk it being taken for the host), an empty port means
 * the default (RFC 3986 §3.2.3), and the host must not be empty (RFC
 * 9110 §4.2.1 MUST reject). */
static masq_http1_err http_authority(masq_http1_request *r, size_t off, size_t n,
                                     const uint8_t *buf) {
  const uint8_t *a = buf + off;
  if (memchr(a, '@', n) != NULL) return MASQ_HTTP1_ERR_TARGET;
  if (n > 0 && a[n - 1] == ':') n--;
  if (hostport(r, a, n, 80) != 0) return MASQ_HTTP1_ERR_TARGET;
  r->authority = mkspan(off, n);
  return MASQ_HTTP1_OK;
}

/* absolute-form (RFC 9112 §3.2.2): "http://" authority path-abempty
 * ["?" query]; absolute-URI has no fragment. */
static masq_http1_err absolute_form(masq_http1_request *r, const uint8_t *buf) {
  masq_http1_span t = r->target;
  const uint8_t *s = buf + t.off;
  if (s[0] == '/' || (t.len == 1 && s[0] == '*')) return MASQ_HTTP1_ERR_TARGET_FORM;
  size_t sl = scheme_len(s, t.len);
  if (sl == 0) return MASQ_HTTP1_ERR_TARGET_FORM;
  int http = mem_ieq(s, sl, "http"), https = mem_ieq(s, sl, "https");
  if (t.len < sl + 3 || s[sl + 1] != '/' || s[sl + 2] != '/')
    return http || https ? MASQ_HTTP1_ERR_TARGET : MASQ_HTTP1_ERR_TARGET_FORM;
  if (https) return MASQ_HTTP1_ERR_SCHEME_HTTPS;
  if (!http) return MASQ_HTTP1_ERR_SCHEME;
  if (memchr(s, '#', t.len) != NULL) return MASQ_HTTP1_ERR_TARGET;
  size_t a = sl + 3, e = a;
  while (e < t.len && s[e] != '/' && s[e] != '?') e++;
  masq_http1_err err = http_authority(r, t.off + a, e - a, buf);
  if (err != MASQ_HTTP1_OK) return err;
  r->path = mkspan(t.off + e, t.len - e);
  return MASQ_HTTP1_OK;
}

static masq_http1_err parse_target(masq_http1_request *r, const uint8_t *buf) {
  for (size_t i = 0; i < r->target.len; i++) {
    uint8_t c = buf[r->target.off + i];
    if (c <= 0x20 || c >= 0x7f) return MASQ_HTTP1_ERR_TARGET;
  }
  return r->is_connect ? authority_form(r, buf) : absolute_form(r, buf);
}

/* method SP request-target SP HTTP-version, single spaces (RFC 9112 §3:
 * masq does not take the MAY of splitting on any whitespace). */
static masq_http1_err request_line(masq_http1_parser *p, const uint8_t *buf, size_t off,
                                   size_t n) {
  masq_http1_request *r = &p->req;
  const uint8_t *s = buf + off;
  const uint8_t *sp1 = memchr(s, ' ', n);
  if (sp1 == NULL) return MASQ_HTTP1_ERR_REQUEST_LINE;
  size_t m = (size_t)(sp1 - s);
  const uint8_t *sp2 = memchr(sp1 + 1, ' ', n - m - 1);
  if (sp2 == NULL) return MASQ_HTTP1_ERR_REQUEST_LINE;
  size_t t = (size_t)(sp2 - sp1) - 1, v = n - m - t - 2;
  if (!is_token(s, m) || t == 0 || memchr(sp2 + 1, ' ', v) != NULL)
    return MASQ_HTTP1_ERR_REQUEST_LINE;
  masq_http1_err e = parse_version(r, sp2 + 1, v);
  if (e != MASQ_HTTP1_OK) return e;
  r->method = mkspan(off, m);
  r->is_connect = m == 7 && memcmp(s, "CONNECT", 7) == 0;
  r->target = mkspan(off + m + 1, t);
  return parse_target(r, buf);
}

/* ---- field lines (RFC 9112 §5) ---- */

/* Content-Length (RFC 9112 §6.3 item 5): one field, one value. */
static masq_http1_err field_content_length(masq_http1_request *r, const uint8_t *v, size_t n) {
  if (r->content_length >= 0) return MASQ_HTTP1_ERR_CONTENT_LENGTH;
  if (parse_digits(v, n, INT64_MAX, 0, &r->content_length) != 0)
    return MASQ_HTTP1_ERR_CONTENT_LENGTH;
  return MASQ_HTTP1_OK;
}

/* Calls fn on each non-empty element of a comma-separated list with its
 * OWS trimmed (RFC 9110 §5.6.1: empty elements are allowed and ignored).
 * Stops at the first error. */
typedef masq_http1_err (*list_fn)(masq_http1_parser *p, size_t off, size_t n,
                                  const uint8_t *buf);

static masq_http1_err each_element(masq_http1_parser *p, const uint8_t *buf, masq_http1_span v,
                                   list_fn fn) {
  size_t i = v.off, end = (size_t)v.off + v.len;
  while (i <= end) {
    const uint8_t *comma = memchr(buf + i, ',', end - i);
    size_t e = comma ? (size_t)(comma - buf) : end;
    size_t a = i, b = e;
    while (a < b && is_ows(buf[a])) a++;
    while (b > a && is_ows(buf[b - 1])) b--;
    if (b > a) {
      masq_http1_err err = fn(p, a, b - a, buf);
      if (err != MASQ_HTTP1_OK) return err;
    }
    i = e + 1;
  }
  return MASQ_HTTP1_OK;
}

/* One transfer coding: chunked must be the last one, once (RFC 9112
 * §6.1), so nothing may follow it, even in a later field line. */
static masq_http1_err te_element(masq_http1_parser *p, size_t off, size_t n,
                                 const uint8_t *buf) {
  if (!is_token(buf + off, n) || p->te_chunked) return MASQ_HTTP1_ERR_TRANSFER_ENCODING;
  p->te_chunked = mem_ieq(buf + off, n, "chunked");
  return MASQ_HTTP1_OK;
}

static masq_http1_err conn_element(masq_http1_parser *p, size_t off, size_t n,
                                   const uint8_t *buf) {
  masq_http1_request *r = &p->req;
  if (!is_token(buf + off, n) || r->nconn == MASQ_HTTP1_MAX_CONN_OPTIONS)
    return MASQ_HTTP1_ERR_CONNECTION;
  r->conn[r->nconn++] = mkspan(off, n);
  if (mem_ieq(buf + off, n, "close")) r->conn_close = 1;
  if (mem_ieq(buf + off, n, "keep-alive")) r->conn_keep_alive = 1;
  if (mem_ieq(buf + off, n, "upgrade")) r->conn_upgrade = 1;
  return MASQ_HTTP1_OK;
}

/* Host = uri-host [":" port] (RFC 9112 §3.2), possibly empty: only the
 * characters of reg-name, IP-literal and port are allowed. Its value is
 * not otherwise used: a proxy replaces it (§3.2.2). */
static int host_value_ok(const uint8_t *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint8_t c = v[i];
    int ok = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
             strchr("-._~%!$&'()*+,;=:[]", c) != NULL;
    if (c == 0 || !ok) return 0;
  }
  return 1;
}

static masq_http1_err field_host(masq_http1_request *r, size_t idx, const uint8_t *v,
                                 size_t n) {
  if (r->host_field >= 0 || !host_value_ok(v, n)) return MASQ_HTTP1_ERR_HOST;
  r->host_field = (int)idx;
  return MASQ_HTTP1_OK;
}

static masq_http1_err field_max_forwards(masq_http1_request *r, const uint8_t *v, size_t n) {
  int64_t mf;
  if (r->max_forwards >= 0 || parse_digits(v, n, INT32_MAX, 1, &mf) != 0)
    return MASQ_HTTP1_ERR_MAX_FORWARDS;
  r->max_forwards = (int32_t)mf;
  return MASQ_HTTP1_OK;
}

/* Applies what masq needs to know from the field just stored. */
static masq_http1_err field_meaning(masq_http1_parser *p, const uint8_t *buf, size_t idx) {
  masq_http1_request *r = &p->req;
  masq_http1_span name = r->fields[idx].name, value = r->fields[idx].value;
  const uint8_t *v = buf + value.off;
  if (masq_http1_span_ieq(buf, name, "content-length"))
    return field_content_length(r, v, value.len);
  if (masq_http1_span_ieq(buf, name, "transfer-encoding")) {
    p->te_seen = 1;
    return each_element(p, buf, value, te_element);
  }
  if (masq_http1_span_ieq(buf, name, "connection"))
    return each_element(p, buf, value, conn_element);
  if (masq_http1_span_ieq(buf, name, "host")) return field_host(r, idx, v, value.len);
  if (masq_http1_span_ieq(buf, name, "max-forwards")) return field_max_forwards(r, v, value.len);
  if (masq_http1_span_ieq(buf, name, "proxy-authorization")) {
    if (r->proxy_auth >= 0) return MASQ_HTTP1_ERR_PROXY_AUTHORIZATION;
    r->proxy_auth = (int)idx;
  }
  return MASQ_HTTP1_OK;
}

/* field-name ":" OWS field-value OWS (RFC 9112 §5.1). */
static masq_http1_err field_line(masq_http1_parser *p, const uint8_t *buf, size_t off,
                                 size_t n) {
  masq_http1_request *r = &p->req;
  const uint8_t *s = buf + off;
  if (is_ows(s[0])) return MASQ_HTTP1_ERR_OBS_FOLD;
  const uint8_t *colon = memchr(s, ':', n);
  if (colon == NULL || colon == s) return MASQ_HTTP1_ERR_FIELD_NAME;
  size_t nl = (size_t)(colon - s);
  if (is_ows(s[nl - 1])) return MASQ_HTTP1_ERR_SPACE_BEFORE_COLON;
  if (!is_token(s, nl)) return MASQ_HTTP1_ERR_FIELD_NAME;
  size_t a = nl + 1, b = n;
  while (a < b && is_ows(s[a])) a++;
  while (b > a && is_ows(s[b - 1])) b--;
  for (size_t i = a; i < b; i++) {
    if (!is_value_char(s[i])) return MASQ_HTTP1_ERR_FIELD_VALUE;
  }
  if (r->nfields == MASQ_HTTP1_MAX_FIELDS) return MASQ_HTTP1_ERR_TOO_MANY_FIELDS;
  masq_http1_field *f = &r->fields[r->nfields];
  f->name = mkspan(off, nl);
  f->value = mkspan(off + a, b - a);
  return field_meaning(p, buf, r->nfields++);
}

/* ---- end of head ---- */

/* Checks that need the whole head: Host (RFC 9112 §3.2) and framing
 * (§6.1, §6.3), which several fields decide together. */
static masq_http1_err head_end(masq_http1_parser *p) {
  masq_http1_request *r = &p->req;
  if (r->version_minor == 1 && r->host_field < 0) return MASQ_HTTP1_ERR_HOST;
  if (p->te_seen) {
    if (r->content_length >= 0) return MASQ_HTTP1_ERR_TE_WITH_CL;
    if (!p->te_chunked || r->version_minor == 0) return MASQ_HTTP1_ERR_TRANSFER_ENCODING;
    r->chunked = 1;
  }
  if (r->is_connect && (r->chunked || r->content_length > 0))
    return MASQ_HTTP1_ERR_CONNECT_CONTENT;
  r->persistent = r->version_minor == 1 && !r->conn_close;
  return MASQ_HTTP1_OK;
}

int masq_http1_error_status(masq_http1_err e) {
  switch (e) {
  case MASQ_HTTP1_OK: return 0;
  case MASQ_HTTP1_ERR_LINE_TOO_LONG: return 414;
  case MASQ_HTTP1_ERR_HEAD_TOO_LARGE:
  case MASQ_HTTP1_ERR_TOO_MANY_FIELDS: return 431;
  case MASQ_HTTP1_ERR_VERSION_UNSUPPORTED: return 505;
  default: return 400;
  }
}

const char *masq_http1_strerror(masq_http1_err e) {
  static const char *const text[] = {
      [MASQ_HTTP1_OK] = "ok",
      [MASQ_HTTP1_ERR_LINE_TOO_LONG] = "request line too long",
      [MASQ_HTTP1_ERR_HEAD_TOO_LARGE] = "request head too large",
      [MASQ_HTTP1_ERR_TOO_MANY_FIELDS] = "too many header fields",
      [MASQ_HTTP1_ERR_NUL] = "NUL in request head",
      [MASQ_HTTP1_ERR_BARE_CR] = "bare CR in request head",
      [MASQ_HTTP1_ERR_REQUEST_LINE] = "malformed request line",
      [MASQ_HTTP1_ERR_VERSION] = "malformed HTTP version",
      [MASQ_HTTP1_ERR_VERSION_UNSUPPORTED] = "HTTP version not supported",
      [MASQ_HTTP1_ERR_TARGET] = "invalid request target",
      [MASQ_HTTP1_ERR_TARGET_FORM] = "request target not in absolute-form (authority for CONNECT)",
      [MASQ_HTTP1_ERR_SCHEME_HTTPS] = "https URIs need CONNECT",
      [MASQ_HTTP1_ERR_SCHEME] = "unsupported URI scheme",
      [MASQ_HTTP1_ERR_OBS_FOLD] = "obsolete line folding",
      [MASQ_HTTP1_ERR_FIELD_NAME] = "malformed header field name",
      [MASQ_HTTP1_ERR_SPACE_BEFORE_COLON] = "whitespace before colon",
      [MASQ_HTTP1_ERR_FIELD_VALUE] = "control character in header field value",
      [MASQ_HTTP1_ERR_CONTENT_LENGTH] = "invalid or repeated Content-Length",
      [MASQ_HTTP1_ERR_TE_WITH_CL] = "Transfer-Encoding with Content-Length",
      [MASQ_HTTP1_ERR_TRANSFER_ENCODING] = "invalid Transfer-Encoding",
      [MASQ_HTTP1_ERR_HOST] = "missing, repeated or invalid Host",
      [MASQ_HTTP1_ERR_PROXY_AUTHORIZATION] = "repeated Proxy-Authorization",
      [MASQ_HTTP1_ERR_CONNECTION] = "invalid Connection options",
      [MASQ_HTTP1_ERR_MAX_FORWARDS] = "invalid Max-Forwards",
      [MASQ_HTTP1_ERR_CONNECT_CONTENT] = "CONNECT with content",
  };
  if ((size_t)e >= sizeof(text) / sizeof(text[0]) || text[e] == NULL) return "unknown error";
  return text[e];
}

static masq_http1_result fail(masq_http1_parser *p, masq_http1_err e) {
  p->state = ST_FAILED;
  p->error = e;
  p->status = masq_http1_error_status(e);
  return MASQ_HTTP1_ERROR;
}

/* One complete line buf[off..off+n), its line ending removed. */
static masq_http1_err line(masq_http1_parser *p, const uint8_t *buf, size_t off, size_t n,
                           size_t next) {
  if (memchr(buf + off, '\0', n) != NULL) return MASQ_HTTP1_ERR_NUL;
  if (memchr(buf + off, '\r', n) != NULL) return MASQ_HTTP1_ERR_BARE_CR;
  if (p->state == ST_START) {
    /* RFC 9112 §2.2: empty lines before the request line are ignored. */
    if (n == 0) return MASQ_HTTP1_OK;
    p->state = ST_FIELDS;
    return request_line(p, buf, off, n);
  }
  if (n > 0) return field_line(p, buf, off, n);
  masq_http1_err e = head_end(p);
  if (e != MASQ_HTTP1_OK) return e;
  p->req.head_len = next;
  p->state = ST_DONE;
  return MASQ_HTTP1_OK;
}

masq_http1_result masq_http1_parse(masq_http1_parser *p, const uint8_t *buf, size_t len) {
  if (p->state == ST_DONE) return MASQ_HTTP1_DONE;
  if (p->state == ST_FAILED) return MASQ_HTTP1_ERROR;
  /* Lines are only looked for inside the cap, so a head that would end
   * beyond it fails the same way however it was split. */
  size_t lim = len < MASQ_HTTP1_HEAD_MAX ? len : MASQ_HTTP1_HEAD_MAX;
  while (p->scan < lim) {
    const uint8_t *lf = memchr(buf + p->scan, '\n', lim - p->scan);
    if (lf == NULL) {
      p->scan = lim;
      break;
    }
    size_t end = (size_t)(lf - buf), n = end - p->pos;
    if (n > 0 && buf[end - 1] == '\r') n--;
    size_t start = p->pos;
    p->pos = p->scan = end + 1;
    masq_http1_err e = line(p, buf, start, n, end + 1);
    if (e != MASQ_HTTP1_OK) return fail(p, e);
    if (p->state == ST_DONE) return MASQ_HTTP1_DONE;
  }
  if (len >= MASQ_HTTP1_HEAD_MAX)
    return fail(p, p->state == ST_START ? MASQ_HTTP1_ERR_LINE_TOO_LONG
                                        : MASQ_HTTP1_ERR_HEAD_TOO_LARGE);
  return MASQ_HTTP1_NEED_MORE;
}

/* ---- output ---- */

/* An output cursor that stops writing, but keeps counting, once full. */
typedef struct {
  uint8_t *p;
  size_t cap, len;
} writer;

static void put(writer *w, const void *s, size_t n) {
  if (w->len <= w->cap && n <= w->cap - w->len) memcpy(w->p + w->len, s, n);
  w->len += n;
}

static void put_str(writer *w, const char *s) { put(w, s, strlen(s)); }

static void put_span(writer *w, const uint8_t *buf, masq_http1_span s) {
  put(w, buf + s.off, s.len);
}

static int finish(const writer *w) {
  return w->len <= w->cap && w->len <= (size_t)INT32_MAX ? (int)w->len : -1;
}

static void put_uint(writer *w, uint32_t v) {
  char d[10];
  size_t n = 0;
  do {
    d[sizeof(d) - 1 - n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  put(w, d + sizeof(d) - n, n);
}

/* The fields RFC 9110 §7.6.1 names for removal, plus Connection itself,
 * Proxy-Authorization (consumed by masq) and Host (regenerated). */
static int always_dropped(const uint8_t *buf, masq_http1_span name) {
  static const char *const hop[] = {"connection", "proxy-connection", "keep-alive", "te",
                                    "upgrade",    "proxy-authorization", "host"};
  for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
    if (masq_http1_span_ieq(buf, name, hop[i])) return 1;
  }
  return 0;
}

/* Framing fields describe the bytes masq relays; they stay whatever a
 * Connection option says. */
static int is_framing(const uint8_t *buf, masq_http1_span name) {
  return masq_http1_span_ieq(buf, name, "content-length") ||
         masq_http1_span_ieq(buf, name, "transfer-encoding");
}

static int named_by_connection(const masq_http1_request *r, const uint8_t *buf,
                               masq_http1_span name) {
  for (size_t i = 0; i < r->nconn; i++) {
    if (span_span_ieq(buf, r->conn[i], name)) return 1;
  }
  return 0;
}

static void put_request_line(writer *w, const masq_http1_request *r, const uint8_t *buf) {
  put_span(w, buf, r->method);
  put_str(w, " ");
  if (r->path.len == 0 && r->method.len == 7 && memcmp(buf + r->method.off, "OPTIONS", 7) == 0) {
    put_str(w, "*");
  } else {
    if (r->path.len == 0 || buf[r->path.off] == '?') put_str(w, "/");
    put_span(w, buf, r->path);
  }
  put_str(w, " HTTP/1.1\r\n");
}

static int is_options_or_trace(const masq_http1_request *r, const uint8_t *buf) {
  const uint8_t *m = buf + r->method.off;
  return (r->method.len == 7 && memcmp(m, "OPTIONS", 7) == 0) ||
         (r->method.len == 5 && memcmp(m, "TRACE", 5) == 0);
}

static void put_fields(writer *w, const masq_http1_request *r, const uint8_t *buf) {
  int mf = is_options_or_trace(r, buf);
  for (size_t i = 0; i < r->nfields; i++) {
    const masq_http1_field *f = &r->fields[i];
    if (always_dropped(buf, f->name)) continue;
    if (!is_framing(buf, f->name) && named_by_connection(r, buf, f->name)) continue;
    put_span(w, buf, f->name);
    put_str(w, ": ");
    if (mf && masq_http1_span_ieq(buf, f->name, "max-forwards"))
      put_uint(w, (uint32_t)r->max_forwards - 1);
    else
      put_span(w, buf, f->value);
    put_str(w, "\r\n");
  }
}

int masq_http1_forward_head(const masq_http1_request *r, const uint8_t *buf,
                            const masq_http1_forward_opts *opts, uint8_t *out, size_t cap) {
  if (r->is_connect) return MASQ_HTTP1_FWD_CONNECT;
  if (is_options_or_trace(r, buf) && r->max_forwards == 0) return MASQ_HTTP1_FWD_MAX_FORWARDS;
  const char *via = opts ? opts->via : NULL;
  if (via != NULL && !is_token((const uint8_t *)via, strlen(via))) return MASQ_HTTP1_FWD_NOSPACE;
  writer w = {out, cap, 0};
  put_request_line(&w, r, buf);
  put_str(&w, "Host: ");
  put_span(&w, buf, r->authority);
  put_str(&w, "\r\n");
  put_fields(&w, r, buf);
  if (via != NULL) {
    /* received-protocol is the version this hop received (§7.6.3). */
    put_str(&w, r->version_minor == 0 ? "Via: 1.0 " : "Via: 1.1 ");
    put_str(&w, via);
    put_str(&w, "\r\n");
  }
  if (opts != NULL && opts->close) put_str(&w, "Connection: close\r\n");
  put_str(&w, "\r\n");
  int n = finish(&w);
  return n < 0 ? MASQ_HTTP1_FWD_NOSPACE : n;
}

/* Reason phrases of RFC 9110 §15 for the statuses a proxy front end
 * sends itself. */
static const char *default_reason(int status) {
  switch (status) {
  case 200: return "Connection Established";
  case 400: return "Bad Request";
  case 403: return "Forbidden";
  case 405: return "Method Not Allowed";
  case 407: return "Proxy Authentication Required";
  case 408: return "Request Timeout";
  case 414: return "URI Too Long";
  case 421: return "Misdirected Request";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return "";
  }
}

static int text_ok(const char *s) {
  for (; *s != '\0'; s++) {
    if (!is_value_char((uint8_t)*s)) return 0;
  }
  return 1;
}

/* An extra field masq can write without breaking the head or its
 * framing (which is the encoder's to decide). */
static int extra_ok(const masq_http1_header *h) {
  if (h->name == NULL || h->value == NULL) return 0;
  size_t n = strlen(h->name);
  const uint8_t *name = (const uint8_t *)h->name;
  if (!is_token(name, n) || !text_ok(h->value)) return 0;
  return !mem_ieq(name, n, "content-length") && !mem_ieq(name, n, "transfer-encoding");
}

static void put_field(writer *w, const char *name, const char *value) {
  put_str(w, name);
  put_str(w, ": ");
  put_str(w, value);
  put_str(w, "\r\n");
}

int masq_http1_response_encode(uint8_t *out, size_t cap, int status, const char *reason,
                               const char *proxy_status, const masq_http1_header *extra,
                               size_t nextra) {
  if (status < 100 || status > 599) return -1;
  if (reason == NULL) reason = default_reason(status);
  if (!text_ok(reason) || (proxy_status != NULL && !text_ok(proxy_status))) return -1;
  for (size_t i = 0; i < nextra; i++) {
    if (!extra_ok(&extra[i])) return -1;
  }
  writer w = {out, cap, 0};
  put_str(&w, "HTTP/1.1 ");
  put_uint(&w, (uint32_t)status);
  put_str(&w, " ");
  put_str(&w, reason);
  put_str(&w, "\r\n");
  if (proxy_status != NULL) put_field(&w, "Proxy-Status", proxy_status);
  for (size_t i = 0; i < nextra; i++) put_field(&w, extra[i].name, extra[i].value);
  if (status >= 300 && status != 304) put_str(&w, "Content-Length: 0\r\n");
  put_str(&w, "\r\n");
  return finish(&w);
}
