/* Capsule parser (RFC 9297 §3.2-3.3): every way of splitting the input
 * must give the same callbacks, unknown capsules are skipped whatever
 * their length, and errors stop the parser for good. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "proto/capsule.h"
#include "proto/varint.h"
#include "proto/wire.h"

#define MAX_EVENTS 64
#define MAX_SAVED 64

/* One callback as the test saw it. */
typedef struct {
  int kind; /* 'B' on_begin, 'C' on_capsule */
  uint64_t type;
  uint64_t len;
  uint8_t payload[MAX_SAVED];
  const uint8_t *ptr;
} event;

typedef struct {
  event ev[MAX_EVENTS];
  size_t n;
  uint64_t deliver_type; /* on_begin delivers this type, skips the rest */
  int deliver_all;
  size_t fail_begin_at;   /* 1-based index of on_begin call to fail, 0 = never */
  size_t fail_capsule_at; /* same for on_capsule */
  int fail_code;
  size_t begins, capsules;
} recorder;

static int rec_begin(void *user, uint64_t type, uint64_t len) {
  recorder *r = user;
  assert_true(r->n < MAX_EVENTS);
  event *e = &r->ev[r->n++];
  memset(e, 0, sizeof(*e));
  e->kind = 'B';
  e->type = type;
  e->len = len;
  if (++r->begins == r->fail_begin_at) return r->fail_code;
  return r->deliver_all || type == r->deliver_type ? MASQ_CAPSULE_DELIVER : MASQ_CAPSULE_SKIP;
}

static int rec_capsule(void *user, uint64_t type, const uint8_t *payload, size_t len) {
  recorder *r = user;
  assert_true(r->n < MAX_EVENTS);
  assert_non_null(payload);
  event *e = &r->ev[r->n++];
  memset(e, 0, sizeof(*e));
  e->kind = 'C';
  e->type = type;
  e->len = len;
  e->ptr = payload;
  memcpy(e->payload, payload, len < MAX_SAVED ? len : MAX_SAVED);
  if (++r->capsules == r->fail_capsule_at) return r->fail_code;
  return 0;
}

static const masq_capsule_callbacks rec_cb = {rec_begin, rec_capsule};

static void rec_init(recorder *r) {
  memset(r, 0, sizeof(*r));
  r->deliver_type = MASQ_CAPSULE_DATAGRAM;
}

/* Same callbacks in the same order with the same payload bytes; where the
 * payload pointer came from is allowed to differ. */
static void assert_same_events(const recorder *a, const recorder *b) {
  assert_int_equal(a->n, b->n);
  for (size_t i = 0; i < a->n; i++) {
    assert_int_equal(a->ev[i].kind, b->ev[i].kind);
    assert_true(a->ev[i].type == b->ev[i].type);
    assert_true(a->ev[i].len == b->ev[i].len);
    assert_memory_equal(a->ev[i].payload, b->ev[i].payload, MAX_SAVED);
  }
}

static size_t put_capsule(uint8_t *dst, uint64_t type, const void *payload, size_t len) {
  size_t h = masq_capsule_header_encode(dst, type, len);
  assert_true(h > 0);
  if (len) memcpy(dst + h, payload, len);
  return h + len;
}

/* A stream exercising most header shapes: a DATAGRAM capsule, an unknown
 * type with an 8-byte type varint, zero-length capsules of both kinds, a
 * non-minimal 8-byte length, a 2-byte length and a 4-byte type. */
static size_t build_stream(uint8_t *s) {
  size_t n = 0;
  n += put_capsule(s + n, MASQ_CAPSULE_DATAGRAM, "\x00hello", 6);
  n += put_capsule(s + n, UINT64_C(0x2c7cf000deadbeef), "ignore me", 9);
  n += put_capsule(s + n, MASQ_CAPSULE_DATAGRAM, NULL, 0);
  n += put_capsule(s + n, 0x17, NULL, 0);
  /* DATAGRAM with length 3 written as 8 bytes (RFC 9000 §16 allows it). */
  s[n++] = 0x00;
  const uint8_t len8[] = {0xc0, 0, 0, 0, 0, 0, 0, 3};
  memcpy(s + n, len8, sizeof(len8));
  n += sizeof(len8);
  memcpy(s + n, "\x00xy", 3);
  n += 3;
  uint8_t big[100];
  for (size_t i = 0; i < sizeof(big); i++) big[i] = (uint8_t)(i * 7);
  n += put_capsule(s + n, 0x40000000, big, sizeof(big)); /* 8-byte type, 2-byte length */
  n += put_capsule(s + n, 0x3fff, "z", 1);                /* 2-byte type */
  n += put_capsule(s + n, MASQ_CAPSULE_DATAGRAM, big, 64); /* 2-byte length */
  return n;
}

/* Feeds s in pieces ending at each offset in cuts[], then FIN. */
static int feed_cuts(recorder *r, const uint8_t *s, size_t n, const size_t *cuts, size_t ncuts,
                     uint8_t *buf, size_t cap) {
  masq_capsule_parser p;
  masq_capsule_parser_init(&p, &rec_cb, r, buf, cap);
  size_t at = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t end = i < ncuts ? cuts[i] : n;
    int rc = masq_capsule_parser_feed(&p, s + at, end - at);
    if (rc) return rc;
    at = end;
  }
  return masq_capsule_parser_finish(&p);
}

static void test_whole_stream(void **state) {
  uint8_t s[512], buf[128];
  size_t n = build_stream(s);
  recorder r;
  rec_init(&r);
  assert_int_equal(feed_cuts(&r, s, n, NULL, 0, buf, sizeof(buf)), 0);
  /* 8 capsules: 8 begins, 4 DATAGRAM deliveries. */
  assert_int_equal(r.begins, 8);
  assert_int_equal(r.capsules, 4);
  assert_int_equal(r.ev[0].kind, 'B');
  assert_true(r.ev[0].len == 6);
  assert_int_equal(r.ev[1].kind, 'C');
  assert_memory_equal(r.ev[1].payload, "\x00hello", 6);
  /* Whole payload in one feed: delivered from the input, not copied. */
  assert_ptr_equal(r.ev[1].ptr, s + 2);
  assert_int_equal(r.ev[2].kind, 'B');
  assert_true(r.ev[2].type == UINT64_C(0x2c7cf000deadbeef));
  assert_true(r.ev[2].len == 9);
  /* Zero-length DATAGRAM: both callbacks; zero-length unknown: begin only. */
  assert_int_equal(r.ev[3].kind, 'B');
  assert_int_equal(r.ev[4].kind, 'C');
  assert_true(r.ev[4].len == 0);
  assert_int_equal(r.ev[5].kind, 'B');
  assert_true(r.ev[5].type == 0x17 && r.ev[5].len == 0);
  assert_int_equal(r.ev[6].kind, 'B');
  assert_true(r.ev[6].len == 3);
  assert_int_equal(r.ev[7].kind, 'C');
  assert_memory_equal(r.ev[7].payload, "\x00xy", 3);
  assert_true(r.ev[8].type == 0x40000000 && r.ev[8].len == 100);
  assert_true(r.ev[9].type == 0x3fff && r.ev[9].len == 1);
  assert_true(r.ev[10].len == 64);
  assert_int_equal(r.ev[11].kind, 'C');
  assert_true(r.ev[11].len == 64);
  assert_int_equal(r.n, 12);
}

static void test_one_byte_at_a_time(void **state) {
  uint8_t s[512], buf[128];
  size_t n = build_stream(s);
  recorder whole, bytes;
  rec_init(&whole);
  rec_init(&bytes);
  assert_int_equal(feed_cuts(&whole, s, n, NULL, 0, buf, sizeof(buf)), 0);
  masq_capsule_parser p;
  masq_capsule_parser_init(&p, &rec_cb, &bytes, buf, sizeof(buf));
  for (size_t i = 0; i < n; i++) assert_int_equal(masq_capsule_parser_feed(&p, s + i, 1), 0);
  assert_int_equal(masq_capsule_parser_finish(&p), 0);
  assert_same_events(&whole, &bytes);
  /* Non-empty payloads arrived in pieces, so they came from buf. */
  for (size_t i = 0; i < bytes.n; i++)
    if (bytes.ev[i].kind == 'C' && bytes.ev[i].len > 0) assert_ptr_equal(bytes.ev[i].ptr, buf);
}

static void test_every_split_point(void **state) {
  uint8_t s[512], buf[128];
  size_t n = build_stream(s);
  recorder whole;
  rec_init(&whole);
  assert_int_equal(feed_cuts(&whole, s, n, NULL, 0, buf, sizeof(buf)), 0);
  for (size_t a = 0; a <= n; a++) {
    recorder r;
    rec_init(&r);
    assert_int_equal(feed_cuts(&r, s, n, &a, 1, buf, sizeof(buf)), 0);
    assert_same_events(&whole, &r);
  }
}

static void test_every_pair_of_split_points(void **state) {
  uint8_t s[512], buf[128];
  size_t n = build_stream(s);
  recorder whole;
  rec_init(&whole);
  assert_int_equal(feed_cuts(&whole, s, n, NULL, 0, buf, sizeof(buf)), 0);
  for (size_t a = 0; a <= n; a++) {
    for (size_t b = a; b <= n; b++) {
      size_t cuts[2] = {a, b};
      recorder r;
      rec_init(&r);
      assert_int_equal(feed_cuts(&r, s, n, cuts, 2, buf, sizeof(buf)), 0);
      assert_same_events(&whole, &r);
    }
  }
}

static void test_empty_feed(void **state) {
  recorder r;
  rec_init(&r);
  masq_capsule_parser p;
  masq_capsule_parser_init(&p, &rec_cb, &r, NULL, 0);
  assert_int_equal(masq_capsule_parser_feed(&p, NULL, 0), 0);
  assert_int_equal(masq_capsule_parser_finish(&p), 0);
  assert_int_equal(r.n, 0);
}

/* A zero-length DATAGRAM needs no buffer at all. */
static void test_zero_length_deliver_without_buffer(void **state) {
  recorder r;
  rec_init(&r);
  masq_capsule_parser p;
  masq_capsule_parser_init(&p, &rec_cb, &r, NULL, 0);
  const uint8_t s[] = {0x00, 0x00};
  assert_int_equal(masq_capsule_parser_feed(&p, s, 1), 0);
  assert_int_equal(r.n, 0);
  assert_int_equal(masq_capsule_parser_feed(&p, s + 1, 1), 0);
  assert_int_equal(r.n, 2);
  assert_int_equal(r.ev[1].kind, 'C');
  assert_true(r.ev[1].len == 0);
  assert_int_equal(masq_capsule_parser_finish(&p), 0);
}

/* An unknown capsule is streamed past whatever its length: a 10 MiB one
 * in 64 KiB pieces with an 8-byte buffer, then the next capsule. */
static void test_skip_large_unknown(void **state) {
  static uint8_t chunk[65536];
  uint8_t buf[8];
  recorder r;
  rec_init(&r);
  masq_capsule_parser p;
  masq_capsule_parser_init(&p, &rec_cb, &r, buf, sizeof(buf));
  const uint64_t big = UINT64_C(10) << 20;
  uint8_t h[16];
  size_t hl = masq_capsule_header_encode(h, 0x1234, big);
  assert_int_equal(masq_capsule_parser_feed(&p, h, hl), 0);
  assert_int_equal(r.n, 1);
  assert_true(r.ev[0].type == 0x1234 && r.ev[0].len == big);
  memset(chunk, 0xee, sizeof(chunk));
  for (uint64_t left = big; left > 0; left -= sizeof(chunk)) {
    assert_int_equal(masq_capsule_parser_feed(&p, chunk, sizeof(chunk)), 0);
    /* A FIN anywhere before the end would be a truncation (on a copy,
     * since finish fails the parser). */
    masq_capsule_parser probe = p;
    int want = left > sizeof(chunk) ? MASQ_CAPSULE_ERR_TRUNCATED : 0;
    assert_int_equal(masq_capsule_parser_finish(&probe), want);
  }
  assert_int_equal(r.n, 1);
  uint8_t next[16];
  size_t nl = put_capsule(next, MASQ_CAPSULE_DATAGRAM, "\x00" "abc", 4);
  assert_int_equal(masq_capsule_parser_feed(&p, next, nl), 0);
  assert_int_equal(r.n, 3);
  assert_int_equal(r.ev[2].kind, 'C');
  assert_memory_equal(r.ev[2].payload, "\x00" "abc", 4);
  assert_int_equal(masq_capsule_parser_finish(&p), 0);
}

/* The largest length a varint holds is accepted and skipped without
 * overflow; the stream then ends inside it. */
static void test_skip_max_length(void **state) {
  static uint8_t chunk[65536];
  recorder r;
  rec_init(&r);
  masq_capsule_parser p;
  masq_capsule_parser_init(&p, &rec_cb, &r, NULL, 0);
  uint8_t h[16];
  size_t hl = masq_capsule_header_encode(h, MASQ_VARINT_MAX, MASQ_VARINT_MAX);
  assert_int_equal(hl, 16);
  /* Header straddling feeds: split inside both varints. */
  assert_int_equal(masq_capsule_parser_feed(&p, h, 5), 0);
  assert_int_equal(masq_capsule_parser_feed(&p, h + 5, 6), 0);
  assert_int_equal(r.n, 0);
  assert_int_equal(masq_capsule_parser_feed(&p, h + 11, hl - 11), 0);
  assert_int_equal(r.n, 1);
  assert_true(r.ev[0].type == MASQ_VARINT_MAX && r.ev[0].len == MASQ_VARINT_MAX);
  for (int i = 0; i < 64; i++)
    assert_int_equal(masq_capsule_parser_feed(&p, chunk, sizeof(chunk)), 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(masq_capsule_parser_finish(&p), MASQ_CAPSULE_ERR_TRUNCATED);
}

static void test_too_long(void **state) {
  uint8_t buf[16];
  uint8_t s[64];
  /* Exactly cap bytes is fine. */
  recorder r;
  rec_init(&r);
  masq_capsule_parser p;
  masq_capsule_parser_init(&p, &rec_cb, &r, buf, sizeof(buf));
  uint8_t pay[17];
  memset(pay, 'q', sizeof(pay));
  size_t n = put_capsule(s, MASQ_CAPSULE_DATAGRAM, pay, 16);
  assert_int_equal(masq_capsule_parser_feed(&p, s, n), 0);
  assert_int_equal(r.capsules, 1);
  /* cap + 1 fails on the header alone, before any payload arrives. */
  rec_init(&r);
  masq_capsule_parser_init(&p, &rec_cb, &r, buf, sizeof(buf));
  n = put_capsule(s, MASQ_CAPSULE_DATAGRAM, pay, 17);
  assert_int_equal(masq_capsule_parser_feed(&p, s, 2), MASQ_CAPSULE_ERR_TOO_LONG);
  assert_int_equal(r.begins, 1);
  assert_int_equal(r.capsules, 0);
  assert_int_equal(masq_capsule_parser_feed(&p, s + 2, n - 2), MASQ_CAPSULE_ERR_FAILED);
  assert_int_equal(masq_capsule_parser_finish(&p), MASQ_CAPSULE_ERR_FAILED);
  assert_int_equal(r.capsules, 0);
  /* Same when the whole oversized payload is already in the feed. */
  rec_init(&r);
  masq_capsule_parser_init(&p, &rec_cb, &r, buf, sizeof(buf));
  assert_int_equal(masq_capsule_parser_feed(&p, s, n), MASQ_CAPSULE_ERR_TOO_LONG);
  assert_int_equal(r.capsules, 0);
  /* A skipped capsule may be longer than the buffer. */
  rec_init(&r);
  masq_capsule_parser_init(&p, &rec_cb, &r, buf, sizeof(buf));
  n = put_capsule(s, 0x99, pay, 17);
  assert_int_equal(masq_capsule_parser_feed(&p, s, n), 0);
  assert_int_equal(masq_capsule_parser_finish(&p), 0);
}

static void test_begin_error_propagates(void **state) {
  uint8_t s[512], buf[128];
  size_t n = build_stream(s);
  for (size_t k = 1; k <= 8; k++) {
    recorder r;
    rec_init(&r);
    r.fail_begin_at = k;
    r.fail_code = -1000 - (int)k;
    masq_capsule_parser p;
    masq_capsule_parser_init(&p, &rec_cb, &r, buf, sizeof(buf));
    assert_int_equal(masq_capsule_parser_feed(&p, s, n), -1000 - (int)k);
    /* Nothing after the failing on_begin, not even its payload. */
    assert_int_equal(r.begins, k);
    assert_int_equal(r.ev[r.n - 1].kind, 'B');
    size_t events = r.n;
    assert_int_equal(masq_capsule_parser_feed(&p, s, n), MASQ_CAPSULE_ERR_FAILED);
    assert_int_equal(masq_capsule_parser_finish(&p), MASQ_CAPSULE_ERR_FAILED);
    assert_int_equal(r.n, events);
  }
}

static void test_capsule_error_propagates(void **state) {
  uint8_t s[512], buf[128];
  size_t n = build_stream(s);
  /* Whole feed (zero-copy path) and byte by byte (copy path). */
  for (int bytewise = 0; bytewise <= 1; bytewise++) {
    for (size_t k = 1; k <= 4; k++) {
      recorder r;
      rec_init(&r);
      r.fail_capsule_at = k;
      r.fail_code = -7;
      masq_capsule_parser p;
      masq_capsule_parser_init(&p, &rec_cb, &r, buf, sizeof(buf));
      int rc = 0;
      if (bytewise) {
        for (size_t i = 0; i < n && rc == 0; i++) rc = masq_capsule_parser_feed(&p, s + i, 1);
      } else {
        rc = masq_capsule_parser_feed(&p, s, n);
      }
      assert_int_equal(rc, -7);
      assert_int_equal(r.capsules, k);
      assert_int_equal(r.ev[r.n - 1].kind, 'C');
      assert_int_equal(masq_capsule_parser_feed(&p, s, 1), MASQ_CAPSULE_ERR_FAILED);
      assert_int_equal(masq_capsule_parser_finish(&p), MASQ_CAPSULE_ERR_FAILED);
    }
  }
}

/* FIN between capsules is clean; anywhere inside one is TRUNCATED. */
static void test_finish_truncated(void **state) {
  uint8_t s[512], buf[128];
  size_t n = build_stream(s);
  /* Offsets where a capsule ends, found by walking the headers. */
  uint8_t boundary[512] = {0};
  size_t at = 0;
  boundary[0] = 1;
  while (at < n) {
    uint64_t type, len;
    size_t tl = masq_varint_decode(s + at, n - at, &type);
    size_t ll = masq_varint_decode(s + at + tl, n - at - tl, &len);
    at += tl + ll + (size_t)len;
    boundary[at] = 1;
  }
  assert_int_equal(at, n);
  for (size_t cut = 0; cut <= n; cut++) {
    recorder r;
    rec_init(&r);
    masq_capsule_parser p;
    masq_capsule_parser_init(&p, &rec_cb, &r, buf, sizeof(buf));
    assert_int_equal(masq_capsule_parser_feed(&p, s, cut), 0);
    int want = boundary[cut] ? 0 : MASQ_CAPSULE_ERR_TRUNCATED;
    assert_int_equal(masq_capsule_parser_finish(&p), want);
  }
}

static void test_finish_mid_header(void **state) {
  recorder r;
  masq_capsule_parser p;
  const uint8_t type_half[] = {0x40};             /* 2-byte type, 1 byte in */
  const uint8_t len_half[] = {0x00, 0x80, 0x00};  /* 4-byte length, 2 in */
  const uint8_t no_payload[] = {0x00, 0x05};      /* header whole, no payload */
  const uint8_t some_payload[] = {0x00, 0x05, 1}; /* 1 of 5 payload bytes */
  const struct {
    const uint8_t *b;
    size_t n;
  } cases[] = {{type_half, 1}, {len_half, 3}, {no_payload, 2}, {some_payload, 3}};
  uint8_t buf[8];
  for (size_t i = 0; i < 4; i++) {
    rec_init(&r);
    masq_capsule_parser_init(&p, &rec_cb, &r, buf, sizeof(buf));
    assert_int_equal(masq_capsule_parser_feed(&p, cases[i].b, cases[i].n), 0);
    assert_int_equal(masq_capsule_parser_finish(&p), MASQ_CAPSULE_ERR_TRUNCATED);
    assert_int_equal(r.capsules, 0);
  }
}

static void test_header_encode(void **state) {
  uint8_t out[16];
  assert_int_equal(masq_capsule_header_len(0, 0), 2);
  assert_int_equal(masq_capsule_header_encode(out, 0, 0), 2);
  assert_memory_equal(out, "\x00\x00", 2);
  assert_int_equal(masq_capsule_header_len(MASQ_CAPSULE_DATAGRAM, 1200), 3);
  assert_int_equal(masq_capsule_header_encode(out, MASQ_CAPSULE_DATAGRAM, 1200), 3);
  assert_memory_equal(out, "\x00\x44\xb0", 3);
  assert_int_equal(masq_capsule_header_len(64, 16384), 6);
  assert_int_equal(masq_capsule_header_len(MASQ_VARINT_MAX, MASQ_VARINT_MAX), 16);
  /* Unencodable values give 0 and write nothing. */
  memset(out, 0xaa, sizeof(out));
  assert_int_equal(masq_capsule_header_len(MASQ_VARINT_MAX + 1, 0), 0);
  assert_int_equal(masq_capsule_header_len(0, MASQ_VARINT_MAX + 1), 0);
  assert_int_equal(masq_capsule_header_encode(out, 0, MASQ_VARINT_MAX + 1), 0);
  assert_int_equal(masq_capsule_header_encode(out, UINT64_MAX, 0), 0);
  for (size_t i = 0; i < sizeof(out); i++) assert_int_equal(out[i], 0xaa);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_whole_stream),
      cmocka_unit_test(test_one_byte_at_a_time),
      cmocka_unit_test(test_every_split_point),
      cmocka_unit_test(test_every_pair_of_split_points),
      cmocka_unit_test(test_empty_feed),
      cmocka_unit_test(test_zero_length_deliver_without_buffer),
      cmocka_unit_test(test_skip_large_unknown),
      cmocka_unit_test(test_skip_max_length),
      cmocka_unit_test(test_too_long),
      cmocka_unit_test(test_begin_error_propagates),
      cmocka_unit_test(test_capsule_error_propagates),
      cmocka_unit_test(test_finish_truncated),
      cmocka_unit_test(test_finish_mid_header),
      cmocka_unit_test(test_header_encode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
