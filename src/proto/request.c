/* Gathering and checking the header section of a MASQUE request, plus the
 * small Structured Fields pieces it needs (RFC 8941 booleans for
 * capsule-protocol, RFC 9209 Proxy-Status output). */
#include "proto/request.h"

#include <stddef.h>
#include <string.h>

typedef struct fielddef {
  const char *name;
  size_t off; /* offset of the masq_hfield in masq_reqhdrs */
} fielddef;

#define F(n, m) {n, offsetof(masq_reqhdrs, m)}
/* RFC 9114 §4.3.1/§4.3.2 pseudo-headers, RFC 8441 §4 ":protocol". */
static const fielddef pseudo_fields[] = {
    F(":method", method), F(":protocol", protocol), F(":scheme", scheme),
    F(":authority", authority), F(":path", path), F(":status", status),
};
static const fielddef regular_fields[] = {
    F("capsule-protocol", capsule_protocol),
    F("proxy-authorization", proxy_authorization),
    F("authorization", authorization),
    F("proxy-status", proxy_status),
};
#undef F

void masq_reqhdrs_init(masq_reqhdrs *h) { memset(h, 0, sizeof(*h)); }

static masq_hfield *lookup(masq_reqhdrs *h, const fielddef *defs, size_t ndefs,
                           const uint8_t *name, size_t nlen) {
  for (size_t i = 0; i < ndefs; i++) {
    if (strlen(defs[i].name) == nlen && memcmp(defs[i].name, name, nlen) == 0)
      return (masq_hfield *)((char *)h + defs[i].off);
  }
  return NULL;
}

/* RFC 9114 §4.2: field names are lower case; an upper-case one makes the
 * message malformed. */
static int name_ok(const uint8_t *name, size_t nlen) {
  if (nlen == 0) return 0;
  for (size_t i = 0; i < nlen; i++) {
    if (name[i] >= 'A' && name[i] <= 'Z') return 0;
  }
  return 1;
}

/* Keeps the first copy of a field; a later one only sets dup. */
static void record(masq_reqhdrs *h, masq_hfield *f, const uint8_t *value, size_t vlen) {
  if (vlen > MASQ_MAX_HEADER_VALUE) h->too_long = 1;
  if (f->present) {
    f->dup = 1;
    return;
  }
  f->present = 1;
  if (vlen > MASQ_MAX_HEADER_VALUE) return; /* present, but not kept */
  /* RFC 9114 §4.2: NUL, CR and LF are never valid in a value; a NUL
   * would also cut the C string short of len. */
  if (vlen > 0 &&
      (memchr(value, 0, vlen) || memchr(value, '\r', vlen) || memchr(value, '\n', vlen)))
    h->bad_field = 1;
  if (vlen > 0) memcpy(f->v, value, vlen);
  f->v[vlen] = '\0';
  f->len = (uint16_t)vlen;
}

void masq_reqhdrs_add(masq_reqhdrs *h, const uint8_t *name, size_t nlen, const uint8_t *value,
                      size_t vlen) {
  if (name == NULL || !name_ok(name, nlen)) {
    h->bad_field = 1;
    return;
  }
  if (value == NULL) vlen = 0;
  masq_hfield *f;
  if (name[0] == ':') {
    /* RFC 9114 §4.3: pseudo-headers come first and only the defined ones
     * may appear. */
    f = lookup(h, pseudo_fields, sizeof(pseudo_fields) / sizeof(pseudo_fields[0]), name, nlen);
    if (f == NULL || h->seen_regular) h->bad_pseudo = 1;
  } else {
    h->seen_regular = 1;
    f = lookup(h, regular_fields, sizeof(regular_fields) / sizeof(regular_fields[0]), name, nlen);
  }
  if (f != NULL) record(h, f, value, vlen);
}

/* Fills the rejection and returns 1, so checks read "return reject(...)". */
static int reject(masq_reqcheck *out, int status, const char *error, const char *detail) {
  out->status = status;
  out->error = error;
  out->detail = detail;
  return 1;
}

static int filled(const masq_hfield *f) { return f->present && f->len > 0; }

static int field_is(const masq_hfield *f, const char *s) {
  return f->present && strlen(s) == f->len && memcmp(f->v, s, f->len) == 0;
}

static int ascii_ieq(const char *a, size_t alen, const char *b) {
  if (alen != strlen(b)) return 0;
  for (size_t i = 0; i < alen; i++) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (c != b[i]) return 0;
  }
  return 1;
}

/* Checks that make the request malformed whatever its method
 * (RFC 9114 §4.1.2, §4.2, §4.3). Returns the reason, or NULL. */
static const char *malformed(const masq_reqhdrs *h) {
  if (h->too_long) return "header field value too long";
  if (h->bad_pseudo) return "unknown pseudo-header or pseudo-header after regular field";
  if (h->bad_field) return "invalid field name or value";
  if (h->method.dup || h->protocol.dup || h->scheme.dup || h->authority.dup || h->path.dup ||
      h->status.dup)
    return "duplicate pseudo-header";
  if (h->status.present) return ":status in a request";
  if (!filled(&h->method)) return "missing :method";
  return NULL;
}

/* RFC 8441 §4 / RFC 9220: Extended CONNECT carries non-empty :scheme,
 * :path and :authority; without them the request is malformed. */
static const char *missing_ext_connect(const masq_reqhdrs *h) {
  if (!h->protocol.present) return "CONNECT without :protocol (classic CONNECT not supported)";
  if (h->protocol.len == 0) return "empty :protocol";
  if (!filled(&h->scheme)) return "missing :scheme";
  if (!filled(&h->authority)) return "missing :authority";
  if (!filled(&h->path)) return "missing :path";
  return NULL;
}

/* Returns 1 after filling out with a rejection, 0 if h is acceptable. */
static int check(const masq_reqhdrs *h, const char *protocol, masq_reqcheck *out) {
  const char *why = malformed(h);
  if (why) return reject(out, 400, "http_request_error", why);
  /* A non-CONNECT request on a MASQUE resource: 405, and the caller adds
   * "allow: CONNECT" (RFC 9110 §15.5.6 requires Allow with 405). */
  if (!field_is(&h->method, "CONNECT"))
    return reject(out, 405, "http_request_error", "method not allowed, use CONNECT");
  why = missing_ext_connect(h);
  if (why) return reject(out, 400, "http_request_error", why);
  /* RFC 9220 (RFC 8441 §4): an Extended CONNECT for a protocol this
   * resource does not implement SHOULD get 501. The token is compared
   * exactly, as registered. */
  if (protocol == NULL || !field_is(&h->protocol, protocol))
    return reject(out, 501, "proxy_internal_response", "unsupported :protocol");
  /* RFC 9298 §3.4: :scheme is the template's, which is https (the scheme
   * itself is case-insensitive, RFC 3986 §3.1). */
  if (!ascii_ieq(h->scheme.v, h->scheme.len, "https"))
    return reject(out, 400, "http_request_error", ":scheme is not https");
  /* RFC 9114 §4.3.1: an https :path is in origin form. */
  if (h->path.v[0] != '/')
    return reject(out, 400, "http_request_error", ":path does not start with '/'");
  return 0;
}

void masq_reqcheck_connect(const masq_reqhdrs *h, const char *protocol, masq_reqcheck *out) {
  memset(out, 0, sizeof(*out));
  if (check(h, protocol, out)) return;
  /* RFC 9297 §3.4: a value that is not a Boolean, or a repeated field
   * (which makes it a List), is handled as if absent, and ?0 means the
   * same as absent; neither is an error. */
  if (h->capsule_protocol.present && !h->capsule_protocol.dup &&
      masq_sf_boolean_parse(h->capsule_protocol.v, h->capsule_protocol.len) == 1)
    out->capsule_protocol = 1;
}

/* RFC 9114 §4.4: a CONNECT without :protocol carries :authority (the
 * target's host:port) and omits :scheme and :path. */
void masq_reqcheck_tcp(const masq_reqhdrs *h, masq_reqcheck *out) {
  memset(out, 0, sizeof(*out));
  const char *why = malformed(h);
  if (why) {
    reject(out, 400, "http_request_error", why);
    return;
  }
  if (!field_is(&h->method, "CONNECT")) {
    reject(out, 405, "http_request_error", "method not allowed, use CONNECT");
    return;
  }
  if (h->protocol.present) {
    reject(out, 400, "http_request_error", "Extended CONNECT is not a plain CONNECT");
    return;
  }
  if (h->scheme.present || h->path.present) {
    reject(out, 400, "http_request_error", "CONNECT with :scheme or :path (RFC 9114 §4.4)");
    return;
  }
  if (!filled(&h->authority)) reject(out, 400, "http_request_error", "missing :authority");
}

/* ---- bearer tokens ---- */

static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
 * "+" / "/" ) *"=" (the token68 of RFC 9110 §11.2). */
static int b64tok_char(char c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' ||
         c == '/';
}

/* credentials = "Bearer" 1*SP b64token, with the OWS HTTP allows around
 * a field value (RFC 9110 §5.5). */
static const char *bearer_of(const masq_hfield *f, size_t *len) {
  if (!f->present || f->len == 0) return NULL;
  const char *s = f->v, *end = f->v + f->len;
  while (s < end && (*s == ' ' || *s == '\t')) s++;
  while (end > s && (end[-1] == ' ' || end[-1] == '\t')) end--;
  if (end - s < 8 || !ascii_ieq(s, 6, "bearer") || s[6] != ' ') return NULL;
  s += 6;
  while (s < end && *s == ' ') s++;
  const char *tok = s;
  while (s < end && b64tok_char(*s)) s++;
  if (s == tok) return NULL;
  while (s < end && *s == '=') s++;
  if (s != end) return NULL;
  *len = (size_t)(end - tok);
  return tok;
}

const char *masq_reqhdrs_bearer(const masq_reqhdrs *h, size_t *len) {
  size_t n = 0;
  const char *t = bearer_of(&h->proxy_authorization, &n);
  if (t == NULL) t = bearer_of(&h->authorization, &n);
  if (t != NULL && len != NULL) *len = n;
  return t;
}

/* ---- RFC 8941 items ---- */

typedef struct cur {
  const char *p, *end;
} cur;

static int peek(const cur *c) { return c->p < c->end ? (unsigned char)*c->p : -1; }

static int lcalpha(int c) { return c >= 'a' && c <= 'z'; }

/* RFC 9110 §5.6.2 tchar. */
static int tchar(int c) {
  return c > 0 && c < 0x7f &&
         (is_alpha((char)c) || is_digit((char)c) || strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* §4.2.4 Integer or Decimal: at most 15 digits, or 12 "." 1..3. */
static int sf_number(cur *c) {
  if (peek(c) == '-') c->p++;
  size_t ip = 0, fp = 0;
  int dot = 0;
  if (!is_digit((char)peek(c))) return -1;
  for (;;) {
    int ch = peek(c);
    if (is_digit((char)ch)) {
      if (dot) fp++;
      else ip++;
    } else if (ch == '.' && !dot) {
      if (ip > 12) return -1;
      dot = 1;
    } else {
      break;
    }
    c->p++;
    if (!dot && ip > 15) return -1;
  }
  if (dot && (fp == 0 || fp > 3)) return -1;
  return 0;
}

/* §4.2.5 String: printable ASCII, with \" and \\ the only escapes. */
static int sf_string(cur *c) {
  c->p++; /* opening quote */
  for (;;) {
    int ch = peek(c);
    if (ch < 0) return -1;
    c->p++;
    if (ch == '"') return 0;
    if (ch == '\\') {
      ch = peek(c);
      if (ch != '"' && ch != '\\') return -1;
      c->p++;
    } else if (ch < 0x20 || ch > 0x7e) {
      return -1;
    }
  }
}

/* §4.2.6 Token: ( ALPHA / "*" ) *( tchar / ":" / "/" ). */
static int sf_token(cur *c) {
  int ch = peek(c);
  if (!(is_alpha((char)ch) || ch == '*')) return -1;
  c->p++;
  while ((ch = peek(c)) >= 0 && (tchar(ch) || ch == ':' || ch == '/')) c->p++;
  return 0;
}

/* §4.2.7 Byte Sequence: ":" base64 ":". */
static int sf_bytes(cur *c) {
  c->p++;
  int ch;
  while ((ch = peek(c)) >= 0 && ch != ':') {
    if (!(is_alpha((char)ch) || is_digit((char)ch) || ch == '+' || ch == '/' || ch == '='))
      return -1;
    c->p++;
  }
  if (ch != ':') return -1;
  c->p++;
  return 0;
}

/* §4.2.8 Boolean. Returns 0/1, or -1. */
static int sf_bool(cur *c) {
  if (peek(c) != '?') return -1;
  c->p++;
  int ch = peek(c);
  if (ch != '0' && ch != '1') return -1;
  c->p++;
  return ch == '1';
}

static int sf_bare_item(cur *c) {
  int ch = peek(c);
  if (ch == '-' || is_digit((char)ch)) return sf_number(c);
  if (ch == '"') return sf_string(c);
  if (ch == ':') return sf_bytes(c);
  if (ch == '?') return sf_bool(c) < 0 ? -1 : 0;
  return sf_token(c);
}

/* §4.2.3 Parameters: *( ";" *SP key [ "=" bare-item ] ). Their meaning
 * is ignored, as RFC 9297 §3.4 requires for capsule-protocol. */
static int sf_params(cur *c) {
  while (peek(c) == ';') {
    c->p++;
    while (peek(c) == ' ') c->p++;
    int ch = peek(c);
    if (!(lcalpha(ch) || ch == '*')) return -1;
    while ((ch = peek(c)) >= 0 &&
           (lcalpha(ch) || is_digit((char)ch) || ch == '_' || ch == '-' || ch == '.' || ch == '*'))
      c->p++;
    if (peek(c) == '=') {
      c->p++;
      if (sf_bare_item(c) != 0) return -1;
    }
  }
  return 0;
}

int masq_sf_boolean_parse(const char *v, size_t len) {
  if (v == NULL) return -1;
  cur c = {v, v + len};
  /* §4.2: leading and trailing SP are discarded; HTAB too, as the OWS
   * around any field value (RFC 9110 §5.5). */
  while (c.p < c.end && (*c.p == ' ' || *c.p == '\t')) c.p++;
  while (c.end > c.p && (c.end[-1] == ' ' || c.end[-1] == '\t')) c.end--;
  int b = sf_bool(&c);
  if (b < 0 || sf_params(&c) != 0 || c.p != c.end) return -1;
  return b;
}

/* ---- Proxy-Status ---- */

typedef struct sbuf {
  char *p;
  size_t cap, len;
  int err;
} sbuf;

static void sput(sbuf *b, const char *s, size_t n) {
  if (b->err || n >= b->cap - b->len) {
    b->err = 1;
    return;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static int is_sf_token(const char *s) {
  cur c = {s, s + strlen(s)};
  return sf_token(&c) == 0 && c.p == c.end;
}

int masq_proxy_status_format(char *out, size_t cap, const char *error, const char *details) {
  if (out == NULL || cap == 0) return -1;
  /* RFC 9209 §2.1.1: error is a Token; refuse anything else rather than
   * emit a field the client cannot parse. */
  if (error != NULL && !is_sf_token(error)) return -1;
  sbuf b = {out, cap, 0, 0};
  sput(&b, "masq", 4);
  if (error != NULL) {
    sput(&b, "; error=", 8);
    sput(&b, error, strlen(error));
  }
  if (details != NULL) {
    /* RFC 9209 §2.1.5: details is a String (RFC 8941 §3.3.3): printable
     * ASCII with " and \ escaped; anything else is dropped. */
    sput(&b, "; details=\"", 11);
    for (const char *s = details; *s; s++) {
      unsigned char ch = (unsigned char)*s;
      if (ch < 0x20 || ch > 0x7e) continue;
      if (ch == '"' || ch == '\\') sput(&b, "\\", 1);
      sput(&b, (const char *)&ch, 1);
    }
    sput(&b, "\"", 1);
  }
  if (b.err || b.len > 0x7fffffff) return -1;
  out[b.len] = '\0';
  return (int)b.len;
}

int masq_ct_equal(const void *a, size_t alen, const void *b, size_t blen) {
  const unsigned char *x = a, *y = b;
  size_t n = alen > blen ? alen : blen;
  /* Every byte position up to the longer length is visited and folded
   * into acc, so the time depends on the lengths only, never on where
   * the first difference is. */
  volatile unsigned char acc = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char cx = i < alen ? x[i] : 0;
    unsigned char cy = i < blen ? y[i] : 0;
    acc |= (unsigned char)(cx ^ cy);
  }
  size_t d = alen ^ blen;
  /* (d | -d) has its top bit set exactly when d != 0. */
  acc |= (unsigned char)((d | (0 - d)) >> (sizeof(size_t) * 8 - 1));
  return acc == 0;
}
