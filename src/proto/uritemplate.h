/* URI templates for MASQUE (RFC 9298 §2, RFC 9484 §4.1, RFC 6570).
 *
 * Supported operators: simple string expansion {var} (level 1) and
 * form-style query expansion {?a,b} (level 3), which together cover every
 * template RFC 9298 and RFC 9484 show. Values are percent-encoded so that
 * only RFC 3986 unreserved characters stay literal (":" of an IPv6
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
 * {var} expression is undefined. */
int masq_uritemplate_expand(const char *tmpl, const masq_tvar *vars, size_t nvars, char *out,
                            size_t outcap);

/* Splits an absolute https URI into its authority and its path+query
 * (":authority" and ":path" of the request, RFC 9114 §4.3.1). An empty
 * path becomes "/". Returns 0, or -1 if the scheme is not https or the
 * authority is empty or a buffer is too small. */
int masq_uri_split(const char *uri, char *authority, size_t acap, char *path, size_t pcap);

/* The result of matching a request path against a template. */
typedef struct masq_tmatch {
  const char *name; /* template variable to capture */
  char *value;      /* out: percent-decoded value, NUL-terminated */
  size_t cap;
  int found; /* out: 1 if the variable was present */
} masq_tmatch;

/* Server side: matches path (a ":path", including any query) against the
 * path+query part of template tmpl (an absolute URI template or just its
 * path). Fills each vars[i] that appears. Returns 0 on a match, -1 if the
 * path does not fit the template or a value is too long or decodes to a
 * NUL or an invalid %-escape. */
int masq_uritemplate_match(const char *tmpl, const char *path, masq_tmatch *vars, size_t nvars);

#endif
