/* URI templates for MASQUE (RFC 9298 §2, RFC 9484 §4.1, RFC 6570).
 *
 * Supported operators: simple string expansion {var} / {a,b} (levels 1
 * and 3) and form-style query expansion {?a,b} and continuation {&a,b}
 * (level 3), which together cover every template RFC 9298 and RFC 9484
 * show. The operators RFC 9298 §2 forbids (+ # . / ;), the reserved ones
 * and level-4 modifiers (:N, *) make a template malformed, as do literal
 * characters outside 0x21-0x7E or those RFC 6570 §2.1 excludes, and more
 * than 16 variables in one expression. Values are percent-encoded so
 * that only RFC 3986 unreserved characters stay literal (":" of an IPv6
 * literal becomes %3A as RFC 9298 §2 requires). */
#ifndef MASQ_PROTO_URITEMPLATE_H
#define MASQ_PROTO_URITEMPLATE_H

#include <stddef.h>

typedef struct masq_tvar {
  const char *name;
  const char *value; /* NULL: undefined (omitted from {?...}) */
} masq_tvar;

/* Expands tmpl with vars into out (NUL-terminated). Returns the length
 * written, or -1 if out is too small, the template is malformed
 * (unbalanced braces, an unsupported operator) or a variable used in a
 * {var} expression is undefined. In {?a,b} undefined variables are
 * omitted and a defined empty one gives "a=" (RFC 6570 §3.2.8). */
int masq_uritemplate_expand(const char *tmpl, const masq_tvar *vars, size_t nvars, char *out,
                            size_t outcap);

/* Splits an absolute https URI into its authority and its path+query
 * (":authority" and ":path" of the request, RFC 9114 §4.3.1). An empty
 * path becomes "/" ("https://h?q" gives "/?q"); a fragment is dropped.
 * Returns 0, or -1 if the scheme is not https (case-insensitive), the
 * authority is empty or has userinfo, the URI holds a character outside
 * 0x21-0x7E, or a buffer is too small. */
int masq_uri_split(const char *uri, char *authority, size_t acap, char *path, size_t pcap);

/* The result of matching a request path against a template. */
typedef struct masq_tmatch {
  const char *name; /* template variable to capture */
  char *value;      /* out: percent-decoded value, NUL-terminated */
  size_t cap;
  int found; /* out: 1 if the variable was present */
} masq_tmatch;

/* Server side: matches path (a ":path", including any query) against the
 * path+query part of template tmpl (an absolute URI template, whose
 * scheme and authority are skipped, or just its path starting with '/').
 * Literals must match byte for byte. A {var} value runs up to the literal
 * character that follows the expression in the template, and never past
 * '/', '?', '&' or '#' (which expansion would have encoded); {a,b} values
 * are separated by ','. {?a,b} / {&a,b} take "name=value" pairs in any
 * order, each optional, and leave unknown names to the rest of the
 * template (so an unexpected query parameter makes the match fail).
 * Fills each vars[i] that appears (found=1, value percent-decoded; an
 * empty value is found with "" and the caller must reject it, RFC 9298
 * §3); vars whose name is not in the template get found=0. Returns 0 on a
 * match, -1 if the path does not fit the template, the template is
 * malformed, or a value is too long for its cap (with the NUL), has a raw
 * character outside 0x21-0x7E, or has %00 or an invalid %-escape; on -1
 * every found is 0. */
int masq_uritemplate_match(const char *tmpl, const char *path, masq_tmatch *vars, size_t nvars);

#endif
