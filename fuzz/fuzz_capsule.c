/* libFuzzer harness for the capsule parser (RFC 9297 §3.2).
 *
 * Input: byte 0 picks a split point, byte 1 the payload buffer size (an
 * exact-size heap block, NULL when 0, so ASan sees any overflow), the
 * rest is a capsule stream. The stream is parsed four ways: by a simple whole-buffer reference parser,
 * fed whole, fed in two parts (each in its own exact-size allocation so
 * ASan sees any read across the split), and one byte at a time. All must
 * report the same callbacks and the same first error. The callbacks pick
 * DELIVER or SKIP from the type bits and sometimes fail. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/capsule.h"
#include "proto/varint.h"

typedef struct {
  uint64_t hash; /* FNV-1a over every callback and delivered byte */
  size_t cap;    /* payload buffer size */
  uint64_t type, declared;
  int pending; /* a DELIVER capsule has begun and not been delivered */
} run;

static void mix(run *r, uint64_t v) {
  for (int i = 0; i < 8; i++) {
    r->hash ^= (uint8_t)(v >> (8 * i));
    r->hash *= UINT64_C(0x100000001b3);
  }
}

/* Types ending in 0xf fail; even types (DATAGRAM included) are wanted. */
static int on_begin(void *user, uint64_t type, uint64_t len) {
  run *r = user;
  if (r->pending) abort(); /* previous DELIVER never completed */
  mix(r, 'B');
  mix(r, type);
  mix(r, len);
  if ((type & 0xf) == 0xf) return -100 - (int)((type >> 4) & 3);
  r->type = type;
  r->declared = len;
  r->pending = (type & 1) == 0;
  return r->pending ? MASQ_CAPSULE_DELIVER : MASQ_CAPSULE_SKIP;
}

static int on_capsule(void *user, uint64_t type, const uint8_t *payload, size_t len) {
  run *r = user;
  if (!r->pending || type != r->type || len != r->declared || len > r->cap) abort();
  if (len > 0 && payload == NULL) abort();
  r->pending = 0;
  mix(r, 'C');
  for (size_t i = 0; i < len; i++) mix(r, payload[i]);
  /* A payload starting 0xee fails, exercising on_capsule errors. */
  return len > 0 && payload[0] == 0xee ? -200 : 0;
}

static const masq_capsule_callbacks cb = {on_begin, on_capsule};

/* The same rules applied to the whole stream at once. */
static int reference(run *r, const uint8_t *s, size_t n) {
  size_t at = 0;
  while (at < n) {
    uint64_t type, len;
    size_t tl = masq_varint_decode(s + at, n - at, &type);
    if (tl == 0) return MASQ_CAPSULE_ERR_TRUNCATED;
    size_t ll = masq_varint_decode(s + at + tl, n - at - tl, &len);
    if (ll == 0) return MASQ_CAPSULE_ERR_TRUNCATED;
    at += tl + ll;
    int rc = on_begin(r, type, len);
    if (rc < 0) return rc;
    if (rc == MASQ_CAPSULE_DELIVER && len > r->cap) return MASQ_CAPSULE_ERR_TOO_LONG;
    if (len > n - at) return MASQ_CAPSULE_ERR_TRUNCATED;
    if (rc == MASQ_CAPSULE_DELIVER) {
      rc = on_capsule(r, type, s + at, (size_t)len);
      if (rc < 0) return rc;
    }
    at += (size_t)len;
  }
  return 0;
}

/* Feeds s in pieces of at most `step` bytes (0: all at once), then FIN.
 * Returns the first error; checks that errors are sticky. */
static int parse(run *r, const uint8_t *s, size_t n, size_t step, uint8_t *buf) {
  masq_capsule_parser p;
  masq_capsule_parser_init(&p, &cb, r, buf, r->cap);
  int first = 0;
  size_t at = 0;
  do {
    size_t k = step && n - at > step ? step : n - at;
    int rc = masq_capsule_parser_feed(&p, s + at, k);
    if (first && rc != MASQ_CAPSULE_ERR_FAILED) abort();
    if (!first) first = rc;
    at += k;
  } while (at < n);
  int rc = masq_capsule_parser_finish(&p);
  if (first && rc != MASQ_CAPSULE_ERR_FAILED) abort();
  return first ? first : rc;
}

/* Two feeds, each from its own exact-size heap copy. */
static int parse_split(run *r, const uint8_t *s, size_t n, size_t split, uint8_t *buf) {
  uint8_t *a = malloc(split ? split : 1), *b = malloc(n - split ? n - split : 1);
  if (!a || !b) abort();
  memcpy(a, s, split);
  memcpy(b, s + split, n - split);
  masq_capsule_parser p;
  masq_capsule_parser_init(&p, &cb, r, buf, r->cap);
  int rc1 = masq_capsule_parser_feed(&p, a, split);
  int rc2 = masq_capsule_parser_feed(&p, b, n - split);
  int rc3 = masq_capsule_parser_finish(&p);
  free(a);
  free(b);
  if (rc1 && (rc2 != MASQ_CAPSULE_ERR_FAILED || rc3 != MASQ_CAPSULE_ERR_FAILED)) abort();
  if (rc2 && rc3 != MASQ_CAPSULE_ERR_FAILED) abort();
  return rc1 ? rc1 : rc2 ? rc2 : rc3;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  const uint8_t *s = data + 2;
  size_t n = size - 2;
  size_t split = (size_t)data[0] * n / 255;
  size_t cap = data[1];
  uint8_t *buf = cap ? malloc(cap) : NULL;
  if (cap && !buf) abort();
  const run fresh = {UINT64_C(0xcbf29ce484222325), cap, 0, 0, 0};

  run ref = fresh;
  int want = reference(&ref, s, n);

  run whole = fresh;
  if (parse(&whole, s, n, 0, buf) != want || whole.hash != ref.hash) abort();

  run two = fresh;
  if (parse_split(&two, s, n, split, buf) != want || two.hash != ref.hash) abort();

  if (n <= 1024) {
    run bytes = fresh;
    if (parse(&bytes, s, n, 1, buf) != want || bytes.hash != ref.hash) abort();
  }
  free(buf);
  return 0;
}
