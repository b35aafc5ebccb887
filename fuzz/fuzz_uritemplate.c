/* Fuzzes URI template expansion and matching. Input: template, path and
 * up to four variable values, separated by '\n'. Besides running both on
 * arbitrary input, it checks that matching an expansion gives the values
 * back whenever the template is one where that is unambiguous. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/uritemplate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NVARS 4
static const char *const names[NVARS] = {"target_host", "target_port", "a", "b"};

static void check(int ok) {
  if (!ok) abort();
}

/* True if the template is a path (starts with '/') and every expression
 * is followed by the end or a literal that expansion always encodes in
 * values ("/", "#", and "?" or "&" after a simple expression), so where a
 * value ends is never in doubt. */
static int unambiguous(const char *t) {
  if (t[0] != '/') return 0;
  for (const char *p = t; (p = strchr(p, '}')) != NULL; p++) {
    const char *open = p;
    while (open > t && *open != '{') open--;
    int form = open[1] == '?' || open[1] == '&';
    char next = p[1];
    /* After {?a} a literal '?' or '&' could be read as more pairs. */
    if (!(next == '\0' || next == '/' || next == '#' || (!form && (next == '&' || next == '?'))))
      return 0;
  }
  return 1;
}

static void roundtrip(const char *tmpl, char *const vals[NVARS]) {
  masq_tvar tv[NVARS];
  for (int i = 0; i < NVARS; i++) tv[i] = (masq_tvar){names[i], vals[i]};
  char out[2048];
  int n = masq_uritemplate_expand(tmpl, tv, NVARS, out, sizeof(out));
  if (n < 0) return;
  check((size_t)n == strlen(out));
  /* Expansion output is visible ASCII only. */
  for (int i = 0; i < n; i++) check(out[i] > 0x20 && out[i] < 0x7f);
  if (!unambiguous(tmpl)) return;
  char got[NVARS][512];
  masq_tmatch m[NVARS];
  for (int i = 0; i < NVARS; i++) m[i] = (masq_tmatch){names[i], got[i], sizeof(got[i]), 0};
  int rc = masq_uritemplate_match(tmpl, out, m, NVARS);
  for (int i = 0; i < NVARS; i++) {
    /* Values longer than the capture buffer make a mismatch legitimately. */
    if (vals[i] && strlen(vals[i]) >= sizeof(got[i])) return;
  }
  check(rc == 0);
  for (int i = 0; i < NVARS; i++) {
    if (m[i].found) check(vals[i] != NULL && strcmp(got[i], vals[i]) == 0);
  }
}

static void match_any(const char *tmpl, const char *path) {
  char got[NVARS][16];
  masq_tmatch m[NVARS];
  for (int i = 0; i < NVARS; i++) m[i] = (masq_tmatch){names[i], got[i], sizeof(got[i]), 0};
  int rc = masq_uritemplate_match(tmpl, path, m, NVARS);
  for (int i = 0; i < NVARS; i++) {
    if (rc != 0) check(!m[i].found);
    if (m[i].found) check(strlen(got[i]) < sizeof(got[i]));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  char *buf = malloc(size + 1);
  if (buf == NULL) return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';
  char *part[2 + NVARS] = {0};
  char *p = buf;
  for (int i = 0; i < 2 + NVARS && p; i++) {
    part[i] = p;
    p = strchr(p, '\n');
    if (p) *p++ = '\0';
  }
  const char *tmpl = part[0], *path = part[1] ? part[1] : "";
  match_any(tmpl, path);
  roundtrip(tmpl, part + 2);
  char auth[256], pth[1024];
  if (masq_uri_split(path, auth, sizeof(auth), pth, sizeof(pth)) == 0)
    check(auth[0] != '\0' && pth[0] == '/');
  free(buf);
  return 0;
}
