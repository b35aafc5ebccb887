/* URI templates (RFC 6570) restricted to what MASQUE uses: simple string
 * expansion {a} / {a,b} and form-style query {?a,b} / continuation {&a,b}
 * (levels 1 and 3). RFC 9298 §2 forbids the other level-2/3 operators
 * (+ # . / ;), and level-4 modifiers (:N, *) are not allowed, so both are
 * refused as malformed. Matching is the inverse, for the server. */
#include "proto/uritemplate.h"

#include <limits.h>
#include <string.h>

/* Most variables one expression may list: far more than MASQUE needs,
 * and it bounds the per-expression state of the matcher. */
#define MAX_EXPR_VARS 16

typedef struct expr {
  char op; /* 0, '?' or '&' */
  size_t nvars;
  const char *name[MAX_EXPR_VARS];
  size_t nlen[MAX_EXPR_VARS];
} expr;

static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int hex_val(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* RFC 3986 §2.3 unreserved: the only characters expansion leaves as is. */
static int is_unreserved(unsigned char c) {
  return is_alpha((char)c) || is_digit((char)c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 6570 §2.1 literals, further limited to 0x21-0x7E by RFC 9298 §2.
 * Returns how many bytes of s the literal uses (3 for a %XX triplet),
 * or 0 if s does not start with a valid literal. */
static size_t literal_len(const char *s) {
  unsigned char c = (unsigned char)s[0];
  if (c < 0x21 || c > 0x7e) return 0;
  if (strchr("\"'<>\\^`{|}", c) != NULL) return 0;
  if (c == '%') return hex_val(s[1]) >= 0 && hex_val(s[2]) >= 0 ? 3 : 0;
  return 1;
}

/* RFC 6570 §2.3: varname = varchar *( ["."] varchar ),
 * varchar = ALPHA / DIGIT / "_" / pct-encoded. */
static int varname_ok(const char *s, size_t n) {
  if (n == 0 || s[0] == '.' || s[n - 1] == '.') return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= n || hex_val(s[i + 1]) < 0 || hex_val(s[i + 2]) < 0) return 0;
      i += 2;
    } else if (c == '.') {
      if (s[i + 1] == '.') return 0;
    } else if (!is_alpha(c) && !is_digit(c) && c != '_') {
      return 0;
    }
  }
  return 1;
}

/* Parses the expression starting at s (which points at '{'). Returns the
 * number of template bytes it uses, or 0 if it is malformed or uses an
 * operator or modifier masq does not support. */
static size_t parse_expr(const char *s, expr *e) {
  const char *close = strchr(s + 1, '}');
  if (close == NULL) return 0;
  const char *p = s + 1;
  e->op = 0;
  e->nvars = 0;
  if (*p == '?' || *p == '&') e->op = *p++;
  while (p <= close) {
    const char *end = p;
    while (end < close && *end != ',') end++;
    if (e->nvars == MAX_EXPR_VARS || !varname_ok(p, (size_t)(end - p))) return 0;
    e->name[e->nvars] = p;
    e->nlen[e->nvars] = (size_t)(end - p);
    e->nvars++;
    p = end + 1;
  }
  return (size_t)(close - s) + 1;
}

static const masq_tvar *find_tvar(const masq_tvar *v, size_t n, const char *name, size_t len) {
  for (size_t i = 0; i < n; i++) {
    if (v[i].name && strlen(v[i].name) == len && memcmp(v[i].name, name, len) == 0)
      return &v[i];
  }
  return NULL;
}

/* Output cursor; one byte is always kept back for the NUL. */
typedef struct outbuf {
  char *p;
  size_t cap, len;
  int err;
} outbuf;

static void put(outbuf *o, const char *s, size_t n) {
  if (o->err || n >= o->cap - o->len) {
    o->err = 1;
    return;
  }
  memcpy(o->p + o->len, s, n);
  o->len += n;
}

static void put_encoded(outbuf *o, const char *v) {
  static const char hex[] = "0123456789ABCDEF";
  for (; *v; v++) {
    unsigned char c = (unsigned char)*v;
    if (is_unreserved(c)) {
      put(o, (const char *)&c, 1);
    } else {
      char t[3] = {'%', hex[c >> 4], hex[c & 15]};
      put(o, t, 3);
    }
  }
}

/* RFC 6570 §3.2.2 (simple: values joined by ',', all must be defined
 * here) and §3.2.8/§3.2.9 (form-style: "name=value" pairs, undefined
 * ones skipped, the first prefixed by the operator and the rest by '&'). */
static int expand_expr(outbuf *o, const expr *e, const masq_tvar *vars, size_t nvars) {
  int first = 1;
  for (size_t i = 0; i < e->nvars; i++) {
    const masq_tvar *t = find_tvar(vars, nvars, e->name[i], e->nlen[i]);
    const char *v = t ? t->value : NULL;
    if (e->op == 0) {
      if (v == NULL) return -1;
      if (!first) put(o, ",", 1);
    } else {
      if (v == NULL) continue;
      put(o, first ? &e->op : "&", 1);
      put(o, e->name[i], e->nlen[i]);
      put(o, "=", 1);
    }
    put_encoded(o, v);
    first = 0;
  }
  return 0;
}

int masq_uritemplate_expand(const char *tmpl, const masq_tvar *vars, size_t nvars, char *out,
                            size_t outcap) {
  if (tmpl == NULL || out == NULL || outcap == 0) return -1;
  outbuf o = {out, outcap, 0, 0};
  const char *s = tmpl;
  while (*s && !o.err) {
    size_t n;
    if (*s == '{') {
      expr e;
      n = parse_expr(s, &e);
      if (n == 0 || expand_expr(&o, &e, vars, nvars) != 0) return -1;
    } else {
      n = literal_len(s);
      if (n == 0) return -1;
      put(&o, s, n);
    }
    s += n;
  }
  if (o.err || o.len > INT_MAX) return -1;
  out[o.len] = '\0';
  return (int)o.len;
}

static int ieq(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
    if (x != y) return 0;
  }
  return 1;
}

static int copy_out(char *dst, size_t cap, const char *s, size_t n) {
  if (n >= cap) return -1;
  memcpy(dst, s, n);
  dst[n] = '\0';
  return 0;
}

int masq_uri_split(const char *uri, char *authority, size_t acap, char *path, size_t pcap) {
  if (uri == NULL || authority == NULL || path == NULL || pcap == 0) return -1;
  /* RFC 3986 §3.1: the scheme is case-insensitive. */
  if (strlen(uri) < 8 || !ieq(uri, "https://", 8)) return -1;
  const char *a = uri + 8;
  size_t alen = strcspn(a, "/?#");
  /* RFC 9114 §4.3.1: no empty authority and no userinfo in :authority. */
  if (alen == 0 || memchr(a, '@', alen) != NULL) return -1;
  for (size_t i = 0; i < alen; i++) {
    if ((unsigned char)a[i] <= 0x20 || (unsigned char)a[i] >= 0x7f) return -1;
  }
  const char *p = a + alen;
  size_t plen = strcspn(p, "#"); /* a fragment is never sent */
  for (size_t i = 0; i < plen; i++) {
    if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f) return -1;
  }
  if (copy_out(authority, acap, a, alen) != 0) return -1;
  if (plen == 0 || p[0] == '?') {
    /* RFC 9114 §4.3.1: :path is never empty; "/" stands for no path. */
    if (pcap < 2) return -1;
    path[0] = '/';
    return copy_out(path + 1, pcap - 1, p, plen);
  }
  return copy_out(path, pcap, p, plen);
}

/* ---- matching ---- */

/* Where the path part of a template starts: templates may be absolute
 * (RFC 9298 §2 requires it), and the authority may hold {proxy}, so the
 * path begins at the first '/' after "scheme://" that is outside braces. */
static const char *template_path(const char *t) {
  size_t i = 0;
  if (is_alpha(t[0])) {
    while (is_alpha(t[i]) || is_digit(t[i]) || t[i] == '+' || t[i] == '-' || t[i] == '.') i++;
  }
  if (i == 0 || strncmp(t + i, "://", 3) != 0) return t[0] == '/' ? t : NULL;
  int depth = 0;
  for (const char *p = t + i + 3; *p; p++) {
    if (*p == '{') depth++;
    if (*p == '}') depth--;
    if (*p == '/' && depth == 0) return p;
  }
  return NULL;
}

static masq_tmatch *find_match(masq_tmatch *v, size_t n, const char *name, size_t len) {
  for (size_t i = 0; i < n; i++) {
    if (v[i].name && strlen(v[i].name) == len && memcmp(v[i].name, name, len) == 0) return &v[i];
  }
  return NULL;
}

/* Percent-decodes s[0..n) into m (if non-NULL). Raw characters must be
 * visible ASCII; %00 and broken escapes are refused, as is a value that
 * does not fit m->cap with its NUL. */
static int capture(masq_tmatch *m, const char *s, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x21 || c > 0x7e) return -1;
    if (c == '%') {
      if (i + 2 >= n) return -1;
      int hi = hex_val(s[i + 1]), lo = hex_val(s[i + 2]);
      if (hi < 0 || lo < 0) return -1;
      c = (unsigned char)(hi << 4 | lo);
      if (c == 0) return -1;
      i += 2;
    }
    if (m) {
      if (m->value == NULL || k + 1 >= m->cap) return -1;
      m->value[k] = (char)c;
    }
    k++;
  }
  if (m) {
    if (m->value == NULL || k >= m->cap) return -1;
    m->value[k] = '\0';
    m->found = 1;
  }
  return 0;
}

/* Length of the value at p: it runs up to a URI delimiter that expansion
 * would have percent-encoded ('/', '?', '&', '#'), to stop (the literal
 * that follows in the template, or ','), or to the end. */
static size_t value_len(const char *p, char stop) {
  size_t n = 0;
  while (p[n] && p[n] != '/' && p[n] != '?' && p[n] != '&' && p[n] != '#' && p[n] != stop) n++;
  return n;
}

/* {a,b}: each value ends at ',' except the last, which ends at stop. */
static int match_simple(const expr *e, const char **pp, char stop, masq_tmatch *v, size_t nv) {
  const char *p = *pp;
  for (size_t i = 0; i < e->nvars; i++) {
    int last = i + 1 == e->nvars;
    size_t n = value_len(p, last ? stop : ',');
    if (capture(find_match(v, nv, e->name[i], e->nlen[i]), p, n) != 0) return -1;
    p += n;
    if (!last) {
      if (*p != ',') return -1;
      p++;
    }
  }
  *pp = p;
  return 0;
}

/* {?a,b} / {&a,b}: "name=value" pairs in any order, each name at most
 * once per place it is listed, all optional (expansion drops undefined
 * ones). Consumes pairs while the key is one still expected; whatever
 * follows is left for the rest of the template. */
static int match_form(const expr *e, const char **pp, char stop, masq_tmatch *v, size_t nv) {
  const char *p = *pp;
  char lead = e->op;
  unsigned char seen[MAX_EXPR_VARS] = {0};
  while (*p == lead) {
    const char *key = p + 1;
    size_t klen = strcspn(key, "=&#");
    size_t slot = e->nvars;
    for (size_t i = 0; i < e->nvars && slot == e->nvars; i++) {
      if (!seen[i] && e->nlen[i] == klen && memcmp(e->name[i], key, klen) == 0) slot = i;
    }
    if (slot == e->nvars || key[klen] != '=') break;
    const char *val = key + klen + 1;
    size_t n = value_len(val, stop);
    if (capture(find_match(v, nv, e->name[slot], e->nlen[slot]), val, n) != 0) return -1;
    seen[slot] = 1;
    p = val + n;
    lead = '&';
  }
  *pp = p;
  return 0;
}

static void reset_matches(masq_tmatch *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    v[i].found = 0;
    if (v[i].value && v[i].cap > 0) v[i].value[0] = '\0';
  }
}

static int match_all(const char *t, const char *p, masq_tmatch *v, size_t nv) {
  while (*t) {
    if (*t != '{') {
      size_t n = literal_len(t);
      if (n == 0 || strncmp(t, p, n) != 0) return -1;
      t += n;
      p += n;
      continue;
    }
    expr e;
    size_t n = parse_expr(t, &e);
    if (n == 0) return -1;
    t += n;
    /* The next literal character bounds the value (RFC 6570 §1.4: the
     * template tells where a value ends only through what follows it). */
    char stop = (*t && *t != '{') ? *t : '\0';
    int rc = e.op ? match_form(&e, &p, stop, v, nv) : match_simple(&e, &p, stop, v, nv);
    if (rc != 0) return -1;
  }
  return *p == '\0' ? 0 : -1;
}

int masq_uritemplate_match(const char *tmpl, const char *path, masq_tmatch *vars, size_t nvars) {
  if (tmpl == NULL || path == NULL || (vars == NULL && nvars > 0)) return -1;
  reset_matches(vars, nvars);
  const char *t = template_path(tmpl);
  if (t == NULL || path[0] != '/' || match_all(t, path, vars, nvars) != 0) {
    reset_matches(vars, nvars);
    return -1;
  }
  return 0;
}
