/* CONNECT-IP capsule payloads (RFC 9484 §4.7.1-§4.7.3): hand-built wire
 * bytes decode to the expected entries and encode back byte for byte,
 * every rule the RFC states rejects exactly the payloads it should with
 * the documented code, and the output array's cap is never exceeded. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "proto/addr.h"
#include "proto/ipcapsule.h"
#include "proto/varint.h"
#include "proto/wire.h"

#define MAXE 64

/* ---- helpers --------------------------------------------------------- */

static masq_ip ip(const char *s) {
  masq_ip x;
  memset(&x, 0, sizeof(x));
  assert_int_equal(masq_ip_parse(s, &x), 0);
  return x;
}

/* Not validated, so tests can build entries the codec must refuse. */
static masq_ip_assignment asg(uint64_t id, const char *addr, unsigned plen) {
  masq_ip_assignment a;
  memset(&a, 0, sizeof(a));
  a.request_id = id;
  a.prefix.ip = ip(addr);
  a.prefix.plen = (uint8_t)plen;
  return a;
}

static masq_ip_route rt(const char *start, const char *end, unsigned proto) {
  masq_ip_route r;
  memset(&r, 0, sizeof(r));
  r.start = ip(start);
  r.end = ip(end);
  r.ipproto = (uint8_t)proto;
  return r;
}

static int ip_eq(const masq_ip *x, const masq_ip *y) {
  return x->family == y->family && memcmp(x->a, y->a, sizeof(x->a)) == 0;
}

static void assert_asg_eq(const masq_ip_assignment *x, const masq_ip_assignment *y) {
  assert_true(x->request_id == y->request_id);
  assert_true(ip_eq(&x->prefix.ip, &y->prefix.ip));
  assert_int_equal(x->prefix.plen, y->prefix.plen);
}

static void assert_rt_eq(const masq_ip_route *x, const masq_ip_route *y) {
  assert_true(ip_eq(&x->start, &y->start));
  assert_true(ip_eq(&x->end, &y->end));
  assert_int_equal(x->ipproto, y->ipproto);
}

enum { ASSIGN, REQUEST };

static int dec_asg(int kind, const uint8_t *p, size_t len, masq_ip_assignment *out, size_t cap,
                   size_t *n, const char **err) {
  return kind == REQUEST ? masq_address_request_decode(p, len, out, cap, n, err)
                         : masq_address_assign_decode(p, len, out, cap, n, err);
}

static size_t enc_asg(int kind, uint8_t *dst, const masq_ip_assignment *a, size_t n) {
  return kind == REQUEST ? masq_address_request_encode(dst, a, n)
                         : masq_address_assign_encode(dst, a, n);
}

static size_t len_asg(int kind, const masq_ip_assignment *a, size_t n) {
  return kind == REQUEST ? masq_address_request_len(a, n) : masq_address_assign_len(a, n);
}

/* Decoding fails with `want`, says why, and leaves *n alone. */
static void expect_asg_fail(int kind, const uint8_t *p, size_t len, size_t cap, int want) {
  masq_ip_assignment out[MAXE];
  size_t n = 999;
  const char *err = NULL;
  assert_true(cap <= MAXE);
  assert_int_equal(dec_asg(kind, p, len, out, cap, &n, &err), want);
  assert_int_equal(n, 999);
  assert_non_null(err);
  assert_string_equal(err, masq_ipcapsule_strerror(want));
}

static void expect_rt_fail(const uint8_t *p, size_t len, size_t cap, int want) {
  masq_ip_route out[MAXE];
  size_t n = 999;
  const char *err = NULL;
  assert_true(cap <= MAXE);
  assert_int_equal(masq_route_advertisement_decode(p, len, out, cap, &n, &err), want);
  assert_int_equal(n, 999);
  assert_non_null(err);
  assert_string_equal(err, masq_ipcapsule_strerror(want));
}

/* Entries whose encoding must be exactly wire[0..wlen): decode gives
 * them back, len and encode reproduce the bytes, check accepts them. */
static void expect_asg_wire(int kind, const masq_ip_assignment *a, size_t n, const uint8_t *wire,
                            size_t wlen) {
  masq_ip_assignment out[MAXE];
  size_t got = 999;
  const char *err = NULL;
  assert_int_equal(dec_asg(kind, wire, wlen, out, MAXE, &got, &err), 0);
  assert_null(err);
  assert_int_equal(got, n);
  for (size_t i = 0; i < n; i++) assert_asg_eq(&out[i], &a[i]);
  uint8_t buf[MAXE * 26 + 1];
  memset(buf, 0xaa, sizeof(buf));
  assert_int_equal(len_asg(kind, a, n), wlen);
  assert_int_equal(enc_asg(kind, buf, a, n), wlen);
  assert_memory_equal(buf, wire, wlen);
  assert_int_equal(buf[wlen], 0xaa); /* nothing past the end */
}

static void expect_rt_wire(const masq_ip_route *r, size_t n, const uint8_t *wire, size_t wlen) {
  masq_ip_route out[MAXE];
  size_t got = 999;
  const char *err = NULL;
  assert_int_equal(masq_route_advertisement_decode(wire, wlen, out, MAXE, &got, &err), 0);
  assert_null(err);
  assert_int_equal(got, n);
  for (size_t i = 0; i < n; i++) assert_rt_eq(&out[i], &r[i]);
  uint8_t buf[MAXE * 34 + 1];
  memset(buf, 0xaa, sizeof(buf));
  assert_int_equal(masq_route_advertisement_len(r, n), wlen);
  assert_int_equal(masq_route_advertisement_encode(buf, r, n), wlen);
  assert_memory_equal(buf, wire, wlen);
  assert_int_equal(buf[wlen], 0xaa);
}

/* ---- names and reasons ----------------------------------------------- */

static void test_names_and_reasons(void **state) {
  assert_string_equal(masq_ipcapsule_name(MASQ_CAPSULE_ADDRESS_ASSIGN), "ADDRESS_ASSIGN");
  assert_string_equal(masq_ipcapsule_name(MASQ_CAPSULE_ADDRESS_REQUEST), "ADDRESS_REQUEST");
  assert_string_equal(masq_ipcapsule_name(MASQ_CAPSULE_ROUTE_ADVERTISEMENT),
                      "ROUTE_ADVERTISEMENT");
  assert_null(masq_ipcapsule_name(MASQ_CAPSULE_DATAGRAM));
  assert_null(masq_ipcapsule_name(4));
  assert_null(masq_ipcapsule_name(UINT64_C(0x100000001)));
  /* Each code has its own reason; anything else is "unknown error". */
  for (int c = MASQ_IPCAP_ERR_TRUNCATED; c >= MASQ_IPCAP_ERR_FAMILY_MISMATCH; c--) {
    const char *s = masq_ipcapsule_strerror(c);
    assert_true(strlen(s) > 0);
    assert_string_not_equal(s, "unknown error");
    for (int d = c + 1; d <= MASQ_IPCAP_ERR_TRUNCATED; d++)
      assert_string_not_equal(s, masq_ipcapsule_strerror(d));
  }
  assert_string_equal(masq_ipcapsule_strerror(MASQ_IPCAP_ERR_FAMILY_MISMATCH - 1),
                      "unknown error");
  assert_string_equal(masq_ipcapsule_strerror(1), "unknown error");
  assert_string_equal(masq_ipcapsule_strerror(-2147483647 - 1), "unknown error");
}

/* ---- ADDRESS_ASSIGN -------------------------------------------------- */

static void test_assign_roundtrip(void **state) {
  const masq_ip_assignment a[] = {
      asg(0, "192.0.2.0", 24),                     /* unsolicited, IPv4 */
      asg(7, "2001:db8::", 32),                    /* answers request 7 */
      asg(0, "198.51.100.5", 32),                  /* single address */
      asg(16384, "0.0.0.0", 32),                   /* rejection, 4-byte ID */
      asg(MASQ_VARINT_MAX, "2001:db8:1:2:3:4:5:6", 128), /* 8-byte ID */
      asg(63, "::", 0),                            /* everything */
  };
  const uint8_t wire[] = {
      0x00, 4, 192, 0, 2, 0, 24,
      0x07, 6, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32,
      0x00, 4, 198, 51, 100, 5, 32,
      0x80, 0x00, 0x40, 0x00, 4, 0, 0, 0, 0, 32,
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 6,
      0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 128,
      0x3f, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  };
  expect_asg_wire(ASSIGN, a, 6, wire, sizeof(wire));
  /* IPv4 addresses come back with a[4..15] zeroed. */
  masq_ip_assignment out[8];
  size_t n;
  memset(out, 0x5a, sizeof(out));
  assert_int_equal(masq_address_assign_decode(wire, sizeof(wire), out, 8, &n, NULL), 0);
  for (size_t i = 4; i < 16; i++) assert_int_equal(out[0].prefix.ip.a[i], 0);
}

/* §4.7.1: "An ADDRESS_ASSIGN capsule can also be empty". */
static void test_assign_empty(void **state) {
  size_t n = 999;
  const char *err = NULL;
  assert_int_equal(masq_address_assign_decode((const uint8_t *)"", 0, NULL, 0, &n, &err), 0);
  assert_int_equal(n, 0);
  assert_null(err);
  assert_int_equal(masq_address_assign_len(NULL, 0), 0);
  uint8_t b = 0xaa;
  assert_int_equal(masq_address_assign_encode(&b, NULL, 0), 0);
  assert_int_equal(b, 0xaa);
  assert_int_equal(masq_address_assign_check(NULL, 0, NULL), 0);
}

/* Request IDs 0 (unsolicited) may repeat, and so may others: one request
 * can be answered by several assignments. */
static void test_assign_ids_unrestricted(void **state) {
  const masq_ip_assignment a[] = {asg(0, "192.0.2.1", 32), asg(0, "192.0.2.2", 32),
                                  asg(3, "10.0.0.0", 8), asg(3, "2001:db8::", 64)};
  uint8_t buf[128];
  size_t len = masq_address_assign_encode(buf, a, 4);
  assert_true(len != MASQ_IPCAP_INVALID);
  masq_ip_assignment out[4];
  size_t n;
  assert_int_equal(masq_address_assign_decode(buf, len, out, 4, &n, NULL), 0);
  assert_int_equal(n, 4);
}

/* RFC 9000 §16 lets a varint use more bytes than it needs; the encoder
 * writes the shortest form back. */
static void test_assign_nonminimal_id(void **state) {
  const uint8_t wire[] = {0xc0, 0, 0, 0, 0, 0, 0, 5, 4, 10, 0, 0, 0, 8,
                          0x40, 0x00, 4, 10, 1, 0, 0, 16};
  masq_ip_assignment out[2];
  size_t n;
  assert_int_equal(masq_address_assign_decode(wire, sizeof(wire), out, 2, &n, NULL), 0);
  assert_int_equal(n, 2);
  assert_true(out[0].request_id == 5);
  assert_true(out[1].request_id == 0);
  const uint8_t canon[] = {0x05, 4, 10, 0, 0, 0, 8, 0x00, 4, 10, 1, 0, 0, 16};
  uint8_t buf[sizeof(canon)];
  assert_int_equal(masq_address_assign_encode(buf, out, 2), sizeof(canon));
  assert_memory_equal(buf, canon, sizeof(canon));
}

static void test_is_rejection(void **state) {
  masq_ip_assignment a = asg(1, "0.0.0.0", 32);
  assert_true(masq_ip_assignment_is_rejection(&a));
  a = asg(1, "::", 128);
  assert_true(masq_ip_assignment_is_rejection(&a));
  a = asg(1, "0.0.0.0", 0); /* all of IPv4, not a rejection */
  assert_false(masq_ip_assignment_is_rejection(&a));
  a = asg(1, "::", 127);
  assert_false(masq_ip_assignment_is_rejection(&a));
  a = asg(1, "0.0.0.1", 32);
  assert_false(masq_ip_assignment_is_rejection(&a));
  a = asg(1, "::1", 128);
  assert_false(masq_ip_assignment_is_rejection(&a));
  a.prefix.ip.family = 5;
  memset(a.prefix.ip.a, 0, 16);
  assert_false(masq_ip_assignment_is_rejection(&a));
}

/* ---- ADDRESS_REQUEST ------------------------------------------------- */

static void test_request_roundtrip(void **state) {
  const masq_ip_assignment a[] = {
      asg(1, "0.0.0.0", 32),      /* any IPv4 address (§4.7.2 all-zero) */
      asg(2, "::", 64),           /* any IPv6 /64 */
      asg(300, "2001:db8:1::", 48), /* a preferred prefix, 2-byte ID */
      asg(4, "203.0.113.7", 32),
  };
  const uint8_t wire[] = {
      0x01, 4, 0, 0, 0, 0, 32,
      0x02, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64,
      0x41, 0x2c, 6, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 48,
      0x04, 4, 203, 0, 113, 7, 32,
  };
  expect_asg_wire(REQUEST, a, 4, wire, sizeof(wire));
}

/* §4.7.2: a capsule "that contains zero Requested Addresses" aborts. */
static void test_request_empty(void **state) {
  expect_asg_fail(REQUEST, (const uint8_t *)"", 0, MAXE, MASQ_IPCAP_ERR_EMPTY);
  expect_asg_fail(REQUEST, (const uint8_t *)"", 0, 0, MASQ_IPCAP_ERR_EMPTY);
  const char *err = NULL;
  assert_int_equal(masq_address_request_check(NULL, 0, &err), MASQ_IPCAP_ERR_EMPTY);
  assert_non_null(err);
  assert_true(masq_address_request_len(NULL, 0) == MASQ_IPCAP_INVALID);
}

/* §4.7.2: "Request IDs ... MUST NOT be zero", and each request "carries a
 * different identifier". */
static void test_request_ids(void **state) {
  const uint8_t zero[] = {0x00, 4, 0, 0, 0, 0, 32};
  expect_asg_fail(REQUEST, zero, sizeof(zero), MAXE, MASQ_IPCAP_ERR_REQUEST_ID_ZERO);
  /* Zero written non-minimally is still zero. */
  const uint8_t zero2[] = {0x40, 0x00, 4, 0, 0, 0, 0, 32};
  expect_asg_fail(REQUEST, zero2, sizeof(zero2), MAXE, MASQ_IPCAP_ERR_REQUEST_ID_ZERO);
  /* Zero after a valid entry. */
  const uint8_t zero3[] = {0x01, 4, 0, 0, 0, 0, 32, 0x00, 6, 0, 0, 0, 0, 0, 0, 0, 0,
                           0, 0, 0, 0, 0, 0, 0, 0, 128};
  expect_asg_fail(REQUEST, zero3, sizeof(zero3), MAXE, MASQ_IPCAP_ERR_REQUEST_ID_ZERO);
  /* 1, 2, 1: the third repeats the first. */
  const uint8_t dup[] = {0x01, 4, 0, 0, 0, 0, 32, 0x02, 4, 0, 0, 0, 0, 32,
                         0x01, 4, 0, 0, 0, 0, 32};
  expect_asg_fail(REQUEST, dup, sizeof(dup), MAXE, MASQ_IPCAP_ERR_REQUEST_ID_DUP);
  /* Same value, different varint lengths, different families. */
  const uint8_t dup2[] = {0x09, 4, 0, 0, 0, 0, 32, 0x80, 0, 0, 9, 6, 0, 0, 0, 0, 0, 0,
                          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128};
  expect_asg_fail(REQUEST, dup2, sizeof(dup2), MAXE, MASQ_IPCAP_ERR_REQUEST_ID_DUP);

  /* The sender-side check refuses the same. */
  masq_ip_assignment a[3] = {asg(1, "0.0.0.0", 32), asg(2, "::", 128), asg(1, "::", 128)};
  const char *err = NULL;
  assert_int_equal(masq_address_request_check(a, 3, &err), MASQ_IPCAP_ERR_REQUEST_ID_DUP);
  assert_string_equal(err, masq_ipcapsule_strerror(MASQ_IPCAP_ERR_REQUEST_ID_DUP));
  a[2].request_id = 3;
  assert_int_equal(masq_address_request_check(a, 3, NULL), 0);
  a[1].request_id = 0;
  assert_int_equal(masq_address_request_check(a, 3, NULL), MASQ_IPCAP_ERR_REQUEST_ID_ZERO);
  /* ...but ADDRESS_ASSIGN takes 0. */
  assert_int_equal(masq_address_assign_check(a, 3, NULL), 0);
}

/* ---- rules shared by both address capsules --------------------------- */

static void test_bad_version(void **state) {
  const uint8_t versions[] = {0, 1, 5, 7, 0x40, 0x46, 255};
  for (int kind = ASSIGN; kind <= REQUEST; kind++) {
    for (size_t i = 0; i < sizeof(versions); i++) {
      /* A full-size entry behind the bad version still fails on it. */
      uint8_t e[] = {0x01, versions[i], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
      expect_asg_fail(kind, e, sizeof(e), MAXE, MASQ_IPCAP_ERR_VERSION);
      /* The version is judged before the missing address. */
      expect_asg_fail(kind, e, 2, MAXE, MASQ_IPCAP_ERR_VERSION);
    }
    /* Bad version after a good entry. */
    const uint8_t two[] = {0x01, 4, 1, 2, 3, 4, 32, 0x02, 8, 1, 2, 3, 4, 32};
    expect_asg_fail(kind, two, sizeof(two), MAXE, MASQ_IPCAP_ERR_VERSION);
    masq_ip_assignment a = asg(1, "1.2.3.4", 32);
    a.prefix.ip.family = 0;
    uint8_t buf[32];
    memset(buf, 0xaa, sizeof(buf));
    assert_true(len_asg(kind, &a, 1) == MASQ_IPCAP_INVALID);
    assert_true(enc_asg(kind, buf, &a, 1) == MASQ_IPCAP_INVALID);
    assert_int_equal(buf[0], 0xaa);
  }
}

/* "This MUST be less than or equal to the length of the IP Address field
 * in bits." */
static void test_prefix_too_long(void **state) {
  for (int kind = ASSIGN; kind <= REQUEST; kind++) {
    const uint8_t v4[][7] = {{1, 4, 0, 0, 0, 0, 33}, {1, 4, 0, 0, 0, 0, 128},
                             {1, 4, 0, 0, 0, 0, 255}};
    for (size_t i = 0; i < 3; i++) expect_asg_fail(kind, v4[i], 7, MAXE, MASQ_IPCAP_ERR_PREFIX_LEN);
    uint8_t v6[19] = {1, 6};
    v6[18] = 129;
    expect_asg_fail(kind, v6, sizeof(v6), MAXE, MASQ_IPCAP_ERR_PREFIX_LEN);
    v6[18] = 255;
    expect_asg_fail(kind, v6, sizeof(v6), MAXE, MASQ_IPCAP_ERR_PREFIX_LEN);
    /* The limits themselves are fine. */
    masq_ip_assignment out[1];
    size_t n;
    v6[18] = 128;
    assert_int_equal(dec_asg(kind, v6, sizeof(v6), out, 1, &n, NULL), 0);
    const uint8_t v4ok[] = {1, 4, 0, 0, 0, 0, 32};
    assert_int_equal(dec_asg(kind, v4ok, sizeof(v4ok), out, 1, &n, NULL), 0);
    masq_ip_assignment a = asg(1, "0.0.0.0", 33);
    assert_int_equal(kind == REQUEST ? masq_address_request_check(&a, 1, NULL)
                                     : masq_address_assign_check(&a, 1, NULL),
                     MASQ_IPCAP_ERR_PREFIX_LEN);
  }
}

/* Encodes one IPv4 (bits == 32) or IPv6 entry with only address bit
 * `bit` (0 = most significant) set and prefix length plen. */
static size_t one_bit_entry(uint8_t *e, unsigned bits, unsigned bit, unsigned plen) {
  size_t alen = bits / 8;
  memset(e, 0, 2 + alen + 1);
  e[0] = 0x01;
  e[1] = bits == 32 ? 4 : 6;
  e[2 + bit / 8] = (uint8_t)(0x80u >> (bit % 8));
  e[2 + alen] = (uint8_t)plen;
  return 2 + alen + 1;
}

/* §4.7.1 / §4.7.2: "the lower bits of the IP Address field that are not
 * covered by the prefix length MUST all be set to 0" -- tried for every
 * single set bit against every prefix length of both families. */
static void test_host_bits(void **state) {
  const unsigned widths[] = {32, 128};
  for (int kind = ASSIGN; kind <= REQUEST; kind++) {
    for (size_t w = 0; w < 2; w++) {
      for (unsigned bit = 0; bit < widths[w]; bit++) {
        for (unsigned plen = 0; plen <= widths[w]; plen++) {
          uint8_t e[19];
          size_t len = one_bit_entry(e, widths[w], bit, plen);
          masq_ip_assignment out[1];
          size_t n = 0;
          int rc = dec_asg(kind, e, len, out, 1, &n, NULL);
          assert_int_equal(rc, bit < plen ? 0 : MASQ_IPCAP_ERR_HOST_BITS);
        }
      }
    }
    const masq_ip_assignment bad[] = {asg(1, "192.0.2.1", 24), asg(1, "2001:db8::1", 64),
                                      asg(1, "128.0.0.0", 0), asg(1, "::1", 127)};
    for (size_t i = 0; i < 4; i++) {
      const char *err = NULL;
      int rc = kind == REQUEST ? masq_address_request_check(&bad[i], 1, &err)
                               : masq_address_assign_check(&bad[i], 1, &err);
      assert_int_equal(rc, MASQ_IPCAP_ERR_HOST_BITS);
      assert_non_null(err);
      assert_true(len_asg(kind, &bad[i], 1) == MASQ_IPCAP_INVALID);
    }
  }
}

/* The IP Version alone sets the address length (§4.7.1: "If the IP
 * Version field has value 4, the IP Address field SHALL have a length of
 * 32 bits"): an IPv6-sized address behind version 4, or the reverse,
 * mis-frames the payload and is refused. */
static void test_address_length_mismatch(void **state) {
  for (int kind = ASSIGN; kind <= REQUEST; kind++) {
    /* Version 4 + 16 bytes of 2001:db8::: reads 32.1.13.184 with prefix
     * length 0 (the next byte), whose host bits are set. */
    const uint8_t v4long[] = {0x01, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                              0, 0, 0, 0, 0, 0, 0, 0, 32};
    expect_asg_fail(kind, v4long, sizeof(v4long), MAXE, MASQ_IPCAP_ERR_HOST_BITS);
    /* Version 4 + 16 zero bytes: 0.0.0.0/0, then a 12-byte tail that
     * starts with ID 0 and version 0 (layout is judged before the ID). */
    const uint8_t v4zero[] = {0x01, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128};
    expect_asg_fail(kind, v4zero, sizeof(v4zero), MAXE, MASQ_IPCAP_ERR_VERSION);
    /* Version 6 + a 4-byte address: the entry is cut short. */
    const uint8_t v6short[] = {0x01, 6, 192, 0, 2, 0, 24};
    expect_asg_fail(kind, v6short, sizeof(v6short), MAXE, MASQ_IPCAP_ERR_TRUNCATED);
  }
}

/* Cutting a valid payload anywhere inside an entry is TRUNCATED; cutting
 * it between entries leaves a shorter valid payload (or, for
 * ADDRESS_REQUEST at 0 bytes, an empty one). */
static void check_asg_prefixes(int kind, const masq_ip_assignment *a, size_t n) {
  uint8_t wire[MAXE * 26];
  size_t len = enc_asg(kind, wire, a, n);
  assert_true(len != MASQ_IPCAP_INVALID);
  size_t bounds[MAXE + 1], nb = 0;
  for (size_t i = 0; i <= n; i++) bounds[nb++] = i == 0 ? 0 : len_asg(kind, a, i);
  for (size_t cut = 0; cut < len; cut++) {
    size_t entries = SIZE_MAX;
    for (size_t i = 0; i < nb; i++)
      if (bounds[i] == cut) entries = i;
    masq_ip_assignment out[MAXE];
    size_t got = 999;
    int rc = dec_asg(kind, wire, cut, out, MAXE, &got, NULL);
    if (entries == SIZE_MAX) {
      assert_int_equal(rc, MASQ_IPCAP_ERR_TRUNCATED);
      assert_int_equal(got, 999);
    } else if (kind == REQUEST && entries == 0) {
      assert_int_equal(rc, MASQ_IPCAP_ERR_EMPTY);
    } else {
      assert_int_equal(rc, 0);
      assert_int_equal(got, entries);
    }
  }
}

static void test_truncated_everywhere(void **state) {
  const masq_ip_assignment a[] = {
      asg(1, "192.0.2.0", 24), asg(MASQ_VARINT_MAX, "2001:db8::", 32),
      asg(70, "0.0.0.0", 32), asg(20000, "::", 128), asg(2, "10.0.0.1", 32),
  };
  check_asg_prefixes(ASSIGN, a, 5);
  check_asg_prefixes(REQUEST, a, 5);
  /* A lone first byte of a 2-, 4- or 8-byte varint. */
  const uint8_t lone[] = {0x40, 0x80, 0xc0};
  for (size_t i = 0; i < sizeof(lone); i++) {
    expect_asg_fail(ASSIGN, &lone[i], 1, MAXE, MASQ_IPCAP_ERR_TRUNCATED);
    expect_asg_fail(REQUEST, &lone[i], 1, MAXE, MASQ_IPCAP_ERR_TRUNCATED);
  }
}

/* More entries than cap is an error, never a silent truncation, and
 * nothing is written past out[cap - 1]. */
static void test_assign_cap(void **state) {
  const masq_ip_assignment a[] = {asg(1, "192.0.2.0", 24), asg(2, "2001:db8::", 32),
                                  asg(3, "10.0.0.1", 32)};
  for (int kind = ASSIGN; kind <= REQUEST; kind++) {
    uint8_t wire[128];
    size_t len = enc_asg(kind, wire, a, 3);
    assert_true(len != MASQ_IPCAP_INVALID);
    for (size_t cap = 0; cap <= 4; cap++) {
      masq_ip_assignment out[5];
      memset(out, 0x5a, sizeof(out));
      size_t n = 999;
      const char *err = NULL;
      int rc = dec_asg(kind, wire, len, cap ? out : NULL, cap, &n, &err);
      if (cap < 3) {
        assert_int_equal(rc, MASQ_IPCAP_ERR_TOO_MANY);
        assert_int_equal(n, 999);
        assert_non_null(err);
      } else {
        assert_int_equal(rc, 0);
        assert_int_equal(n, 3);
        for (size_t i = 0; i < 3; i++) assert_asg_eq(&out[i], &a[i]);
      }
      for (size_t i = cap; i < 5; i++) assert_int_equal(((uint8_t *)&out[i])[0], 0x5a);
    }
  }
  /* A protocol error in the entry past cap wins over TOO_MANY: the peer
   * broke a MUST, which matters more than a local limit. */
  const uint8_t dup[] = {0x01, 4, 0, 0, 0, 0, 32, 0x01, 4, 0, 0, 0, 0, 32};
  expect_asg_fail(REQUEST, dup, sizeof(dup), 1, MASQ_IPCAP_ERR_REQUEST_ID_DUP);
  const uint8_t bits[] = {0x01, 4, 0, 0, 0, 0, 32, 0x02, 4, 0, 0, 0, 1, 24};
  expect_asg_fail(ASSIGN, bits, sizeof(bits), 1, MASQ_IPCAP_ERR_HOST_BITS);
  /* The bound from the header always suffices. */
  const uint8_t min[] = {1, 4, 0, 0, 0, 0, 32, 2, 4, 0, 0, 0, 0, 32};
  masq_ip_assignment out[2];
  size_t n;
  assert_int_equal(masq_address_request_decode(min, sizeof(min), out,
                                               sizeof(min) / MASQ_IPCAP_ASSIGN_MIN_ENTRY, &n,
                                               NULL),
                   0);
}

static void test_request_id_range(void **state) {
  masq_ip_assignment a = asg(MASQ_VARINT_MAX + 1, "0.0.0.0", 32);
  const char *err = NULL;
  assert_int_equal(masq_address_assign_check(&a, 1, &err), MASQ_IPCAP_ERR_REQUEST_ID_RANGE);
  assert_non_null(err);
  assert_int_equal(masq_address_request_check(&a, 1, NULL), MASQ_IPCAP_ERR_REQUEST_ID_RANGE);
  uint8_t buf[32];
  assert_true(masq_address_assign_encode(buf, &a, 1) == MASQ_IPCAP_INVALID);
  a.request_id = UINT64_MAX;
  assert_true(masq_address_request_len(&a, 1) == MASQ_IPCAP_INVALID);
}

/* ---- ROUTE_ADVERTISEMENT --------------------------------------------- */

static void test_route_roundtrip(void **state) {
  const masq_ip_route r[] = {
      rt("10.0.0.0", "10.255.255.255", 0),
      rt("192.0.2.0", "192.0.2.255", 0),
      rt("0.0.0.0", "9.255.255.255", 6),       /* TCP only, beside 10/8 */
      rt("192.0.3.0", "192.0.3.0", 17),         /* single address, UDP */
      rt("198.51.100.0", "198.51.100.255", 17),
      rt("2001:db8::", "2001:db8::ffff", 0),
      rt("3000::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 58), /* ICMPv6 only */
  };
  uint8_t wire[256];
  size_t w = 0;
  const uint8_t v4[][10] = {
      {4, 10, 0, 0, 0, 10, 255, 255, 255, 0},  {4, 192, 0, 2, 0, 192, 0, 2, 255, 0},
      {4, 0, 0, 0, 0, 9, 255, 255, 255, 6},    {4, 192, 0, 3, 0, 192, 0, 3, 0, 17},
      {4, 198, 51, 100, 0, 198, 51, 100, 255, 17},
  };
  for (size_t i = 0; i < 5; i++, w += 10) memcpy(wire + w, v4[i], 10);
  uint8_t v6a[34] = {6, 0x20, 0x01, 0x0d, 0xb8};
  memcpy(v6a + 17, "\x20\x01\x0d\xb8", 4);
  v6a[31] = 0xff;
  v6a[32] = 0xff;
  v6a[33] = 0;
  memcpy(wire + w, v6a, 34);
  w += 34;
  uint8_t v6b[34] = {6, 0x30};
  memset(v6b + 17, 0xff, 16);
  v6b[33] = 58;
  memcpy(wire + w, v6b, 34);
  w += 34;
  expect_rt_wire(r, 7, wire, w);
}

static void test_route_empty(void **state) {
  size_t n = 999;
  assert_int_equal(masq_route_advertisement_decode((const uint8_t *)"", 0, NULL, 0, &n, NULL), 0);
  assert_int_equal(n, 0);
  assert_int_equal(masq_route_advertisement_len(NULL, 0), 0);
  assert_int_equal(masq_route_advertisement_check(NULL, 0, NULL), 0);
}

/* Checks r[0..n) with the sender-side check, and the decoder on a
 * hand-written encoding of it, for the same result. */
static void expect_routes(const masq_ip_route *r, size_t n, int want) {
  const char *err = NULL;
  assert_int_equal(masq_route_advertisement_check(r, n, &err), want);
  if (want) assert_string_equal(err, masq_ipcapsule_strerror(want));
  uint8_t wire[MAXE * 34];
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    size_t alen = r[i].start.family == 4 ? 4 : 16;
    wire[w++] = r[i].start.family;
    memcpy(wire + w, r[i].start.a, alen);
    memcpy(wire + w + alen, r[i].end.a, alen);
    w += 2 * alen;
    wire[w++] = r[i].ipproto;
  }
  if (want) {
    expect_rt_fail(wire, w, MAXE, want);
    uint8_t buf[8] = {0xaa};
    assert_true(masq_route_advertisement_len(r, n) == MASQ_IPCAP_INVALID);
    assert_true(masq_route_advertisement_encode(buf, r, n) == MASQ_IPCAP_INVALID);
    assert_int_equal(buf[0], 0xaa);
  } else {
    expect_rt_wire(r, n, wire, w);
  }
}

static void test_route_bad_version(void **state) {
  uint8_t e[34] = {5};
  expect_rt_fail(e, 10, MAXE, MASQ_IPCAP_ERR_VERSION);
  expect_rt_fail(e, 1, MAXE, MASQ_IPCAP_ERR_VERSION); /* before truncation */
  e[0] = 0;
  expect_rt_fail(e, 34, MAXE, MASQ_IPCAP_ERR_VERSION);
  masq_ip_route r[2] = {rt("10.0.0.0", "10.0.0.1", 0), rt("10.0.0.2", "10.0.0.3", 0)};
  r[1].start.family = r[1].end.family = 64;
  assert_int_equal(masq_route_advertisement_check(r, 2, NULL), MASQ_IPCAP_ERR_VERSION);
}

/* "The Start IP Address MUST be less than or equal to the End IP
 * Address." */
static void test_route_start_after_end(void **state) {
  masq_ip_route r[] = {rt("10.0.0.2", "10.0.0.1", 0)};
  expect_routes(r, 1, MASQ_IPCAP_ERR_RANGE);
  r[0] = rt("2001:db8::1", "2001:db8::", 6);
  expect_routes(r, 1, MASQ_IPCAP_ERR_RANGE);
  r[0] = rt("255.255.255.255", "0.0.0.0", 0);
  expect_routes(r, 1, MASQ_IPCAP_ERR_RANGE);
  r[0] = rt("10.0.0.1", "10.0.0.1", 0); /* equal is fine */
  expect_routes(r, 1, 0);
  r[0] = rt("::", "::", 0);
  expect_routes(r, 1, 0);
}

/* §4.7.3 ordering: version, then protocol, then strictly ascending and
 * disjoint addresses within one version + protocol. */
static void test_route_order(void **state) {
  masq_ip_route r[3];
  r[0] = rt("2001:db8::", "2001:db8::1", 0); /* IPv6 before IPv4 */
  r[1] = rt("10.0.0.0", "10.0.0.1", 0);
  expect_routes(r, 2, MASQ_IPCAP_ERR_ORDER);
  r[0] = rt("10.0.0.0", "10.0.0.1", 17); /* UDP before TCP */
  r[1] = rt("10.0.1.0", "10.0.1.1", 6);
  expect_routes(r, 2, MASQ_IPCAP_ERR_ORDER);
  r[0] = rt("10.0.0.0", "10.0.0.9", 6); /* overlapping */
  r[1] = rt("10.0.0.5", "10.0.0.20", 6);
  expect_routes(r, 2, MASQ_IPCAP_ERR_OVERLAP);
  r[1] = rt("10.0.0.9", "10.0.0.20", 6); /* touching: end == next start */
  expect_routes(r, 2, MASQ_IPCAP_ERR_OVERLAP);
  r[1] = rt("10.0.0.0", "10.0.0.9", 6); /* identical */
  expect_routes(r, 2, MASQ_IPCAP_ERR_OVERLAP);
  r[1] = rt("10.0.0.10", "10.0.0.20", 6); /* adjacent: fine */
  expect_routes(r, 2, 0);
  r[0] = rt("10.0.1.0", "10.0.1.9", 6); /* disjoint but unsorted */
  r[1] = rt("10.0.0.0", "10.0.0.9", 6);
  expect_routes(r, 2, MASQ_IPCAP_ERR_OVERLAP);
  r[0] = rt("2001:db8::", "2001:db8::ffff", 0); /* IPv6 overlapping */
  r[1] = rt("2001:db8::fff0", "2001:db8::1:0", 0);
  expect_routes(r, 2, MASQ_IPCAP_ERR_OVERLAP);
  /* Same addresses, different specific protocols: allowed (the rule
   * only orders ranges "using the same IP protocol"). */
  r[0] = rt("10.0.0.0", "10.255.255.255", 6);
  r[1] = rt("10.0.0.0", "10.255.255.255", 17);
  expect_routes(r, 2, 0);
  /* The same bytes as IPv4 and IPv6 ranges are different addresses. */
  r[0] = rt("0.0.0.0", "255.255.255.255", 0);
  r[1] = rt("::", "::ffff:ffff", 6);
  r[2] = rt("::", "::ffff:ffff", 0);
  expect_routes(r, 2, 0);
  expect_routes(r, 3, MASQ_IPCAP_ERR_ORDER); /* IPv6 proto 6 before proto 0 */
  /* Errors are found past the first pair too. */
  r[0] = rt("10.0.0.0", "10.0.0.1", 0);
  r[1] = rt("10.0.0.2", "10.0.0.3", 0);
  r[2] = rt("10.0.0.3", "10.0.0.4", 0);
  expect_routes(r, 3, MASQ_IPCAP_ERR_OVERLAP);
}

/* §4.7.3: a protocol-0 range must not overlap a range with a specific
 * protocol; validating is OPTIONAL and masq does. */
static void test_route_proto_overlap(void **state) {
  masq_ip_route r[6];
  r[0] = rt("10.0.0.0", "10.255.255.255", 0);
  r[1] = rt("10.1.0.0", "10.1.0.255", 6);
  expect_routes(r, 2, MASQ_IPCAP_ERR_PROTO_OVERLAP);
  r[1] = rt("10.255.255.255", "11.0.0.0", 6); /* shares one address */
  expect_routes(r, 2, MASQ_IPCAP_ERR_PROTO_OVERLAP);
  r[1] = rt("9.0.0.0", "10.0.0.0", 17);
  expect_routes(r, 2, MASQ_IPCAP_ERR_PROTO_OVERLAP);
  r[1] = rt("0.0.0.0", "255.255.255.255", 17); /* covers it */
  expect_routes(r, 2, MASQ_IPCAP_ERR_PROTO_OVERLAP);
  r[1] = rt("11.0.0.0", "11.0.0.255", 6); /* just past it */
  expect_routes(r, 2, 0);
  /* Several protocol-0 ranges with specific ones in, then across, gaps. */
  r[0] = rt("10.0.0.0", "10.0.0.9", 0);
  r[1] = rt("10.0.0.20", "10.0.0.29", 0);
  r[2] = rt("10.0.0.40", "10.0.0.49", 0);
  r[3] = rt("10.0.0.10", "10.0.0.19", 6);
  r[4] = rt("10.0.0.30", "10.0.0.39", 6);
  r[5] = rt("10.0.0.50", "10.0.0.255", 17);
  expect_routes(r, 6, 0);
  r[4] = rt("10.0.0.30", "10.0.0.40", 6);
  expect_routes(r, 6, MASQ_IPCAP_ERR_PROTO_OVERLAP);
  r[4] = rt("10.0.0.30", "10.0.0.39", 6);
  r[5] = rt("10.0.0.29", "10.0.0.30", 17);
  expect_routes(r, 6, MASQ_IPCAP_ERR_PROTO_OVERLAP);
  /* Protocol 0 in IPv4 does not cover IPv6 ranges. */
  r[0] = rt("0.0.0.0", "255.255.255.255", 0);
  r[1] = rt("::", "::1", 6);
  expect_routes(r, 2, 0);
  r[1] = rt("2001:db8::", "2001:db8::ffff", 0);
  r[2] = rt("2001:db8::ff", "2001:db8::ff", 58);
  expect_routes(r, 3, MASQ_IPCAP_ERR_PROTO_OVERLAP);
}

/* Naive reading of §4.7.3 over every pair, to compare with the codec. */
static int naive_routes_ok(const masq_ip_route *r, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (memcmp(r[i].start.a, r[i].end.a, 4) > 0) return 0;
    for (size_t j = i + 1; j < n; j++) {
      const masq_ip_route *a = &r[i], *b = &r[j];
      if (a->ipproto > b->ipproto) return 0;
      int overlap = memcmp(a->start.a, b->end.a, 4) <= 0 && memcmp(b->start.a, a->end.a, 4) <= 0;
      if (a->ipproto == b->ipproto && memcmp(a->end.a, b->start.a, 4) >= 0) return 0;
      if ((a->ipproto == 0) != (b->ipproto == 0) && overlap) return 0;
    }
  }
  return 1;
}

/* Random IPv4 lists over a tiny address space, sorted by protocol then
 * start so that every outcome is common, against the naive reading. */
static void test_route_random(void **state) {
  uint32_t seed = 12345;
  size_t valid = 0, invalid = 0;
  for (int iter = 0; iter < 20000; iter++) {
    masq_ip_route r[6];
    size_t n = 1 + (size_t)(iter % 6);
    for (size_t i = 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      static const uint8_t protos[] = {0, 6, 17};
      memset(&r[i], 0, sizeof(r[i]));
      r[i].start.family = r[i].end.family = 4;
      r[i].start.a[3] = (uint8_t)((seed >> 8) & 31);
      r[i].end.a[3] = (uint8_t)(r[i].start.a[3] + ((seed >> 16) & 7) - 1); /* may wrap: RANGE */
      r[i].ipproto = protos[(seed >> 24) % 3];
    }
    /* Insertion sort by (protocol, start): keeps ORDER errors rare. */
    for (size_t i = 1; i < n; i++)
      for (size_t j = i; j > 0; j--) {
        masq_ip_route *a = &r[j - 1], *b = &r[j];
        if (a->ipproto < b->ipproto || (a->ipproto == b->ipproto && a->start.a[3] <= b->start.a[3]))
          break;
        masq_ip_route t = *a;
        *a = *b;
        *b = t;
      }
    int ok = masq_route_advertisement_check(r, n, NULL) == 0;
    assert_int_equal(ok, naive_routes_ok(r, n));
    uint8_t wire[6 * 10];
    masq_ip_route out[6];
    size_t got;
    if (ok) {
      valid++;
      size_t len = masq_route_advertisement_encode(wire, r, n);
      assert_int_equal(len, n * 10);
      assert_int_equal(masq_route_advertisement_decode(wire, len, out, 6, &got, NULL), 0);
      assert_int_equal(got, n);
    } else {
      invalid++;
    }
  }
  assert_true(valid > 1000 && invalid > 1000);
}

/* Each range's Start and End share the one IP Version field, so a route
 * mixing families cannot be sent; an IPv6-sized body behind version 4
 * (or the reverse) mis-frames and is refused. */
static void test_route_family_mismatch(void **state) {
  masq_ip_route r = rt("10.0.0.0", "10.0.0.1", 0);
  r.end = ip("2001:db8::");
  const char *err = NULL;
  assert_int_equal(masq_route_advertisement_check(&r, 1, &err), MASQ_IPCAP_ERR_FAMILY_MISMATCH);
  assert_non_null(err);
  assert_true(masq_route_advertisement_len(&r, 1) == MASQ_IPCAP_INVALID);
  /* 04 + 2001:db8:: .. 2001:db8::ffff + proto: as IPv4 the start is
   * 32.1.13.184 and the end 0.0.0.0. */
  uint8_t w[34] = {4, 0x20, 0x01, 0x0d, 0xb8};
  memcpy(w + 17, "\x20\x01\x0d\xb8", 4);
  w[31] = w[32] = 0xff;
  expect_rt_fail(w, sizeof(w), MAXE, MASQ_IPCAP_ERR_RANGE);
  /* 06 + two IPv4 addresses + proto: cut short. */
  const uint8_t s[] = {6, 192, 0, 2, 0, 192, 0, 2, 255, 0};
  expect_rt_fail(s, sizeof(s), MAXE, MASQ_IPCAP_ERR_TRUNCATED);
}

static void test_route_truncated_everywhere(void **state) {
  const masq_ip_route r[] = {rt("10.0.0.0", "10.0.0.255", 0), rt("10.0.1.0", "10.0.1.255", 6),
                             rt("2001:db8::", "2001:db8::ff", 0),
                             rt("2001:db8::100", "2001:db8::1ff", 0)};
  uint8_t wire[256];
  size_t len = masq_route_advertisement_encode(wire, r, 4);
  assert_int_equal(len, 2 * 10 + 2 * 34);
  for (size_t cut = 0; cut < len; cut++) {
    masq_ip_route out[4];
    size_t n = 999;
    int rc = masq_route_advertisement_decode(wire, cut, out, 4, &n, NULL);
    size_t entries = cut == 0 ? 0 : cut == 10 ? 1 : cut == 20 ? 2 : cut == 54 ? 3 : SIZE_MAX;
    if (entries == SIZE_MAX) {
      assert_int_equal(rc, MASQ_IPCAP_ERR_TRUNCATED);
      assert_int_equal(n, 999);
    } else {
      assert_int_equal(rc, 0);
      assert_int_equal(n, entries);
    }
  }
}

static void test_route_cap(void **state) {
  const masq_ip_route r[] = {rt("10.0.0.0", "10.0.0.255", 0), rt("10.0.1.0", "10.0.1.255", 0),
                             rt("10.0.2.0", "10.0.2.255", 6)};
  uint8_t wire[64];
  size_t len = masq_route_advertisement_encode(wire, r, 3);
  assert_int_equal(len, 30);
  for (size_t cap = 0; cap <= 4; cap++) {
    masq_ip_route out[5];
    memset(out, 0x5a, sizeof(out));
    size_t n = 999;
    int rc = masq_route_advertisement_decode(wire, len, cap ? out : NULL, cap, &n, NULL);
    assert_int_equal(rc, cap < 3 ? MASQ_IPCAP_ERR_TOO_MANY : 0);
    assert_int_equal(n, cap < 3 ? 999 : 3);
    for (size_t i = cap; i < 5; i++) assert_int_equal(((uint8_t *)&out[i])[0], 0x5a);
  }
  /* An ordering error in the entry past cap wins over TOO_MANY... */
  const uint8_t bad[] = {4, 10, 0, 0, 0, 10, 0, 0, 9, 0, 4, 10, 0, 0, 5, 10, 0, 0, 20, 0};
  expect_rt_fail(bad, sizeof(bad), 1, MASQ_IPCAP_ERR_OVERLAP);
  /* ...while the whole-list protocol-0 test needs every range held. */
  const uint8_t po[] = {4, 10, 0, 0, 0, 10, 0, 0, 9, 0, 4, 10, 0, 0, 5, 10, 0, 0, 5, 6};
  expect_rt_fail(po, sizeof(po), 1, MASQ_IPCAP_ERR_TOO_MANY);
  expect_rt_fail(po, sizeof(po), 2, MASQ_IPCAP_ERR_PROTO_OVERLAP);
}

/* err may be NULL everywhere. */
static void test_err_may_be_null(void **state) {
  masq_ip_assignment a[1];
  masq_ip_route r[1];
  size_t n = 999;
  const uint8_t bad[] = {0x00, 9};
  assert_int_equal(masq_address_assign_decode(bad, 2, a, 1, &n, NULL), MASQ_IPCAP_ERR_VERSION);
  /* Layout (the version) is judged before the ID's value. */
  assert_int_equal(masq_address_request_decode(bad, 2, a, 1, &n, NULL), MASQ_IPCAP_ERR_VERSION);
  assert_int_equal(masq_route_advertisement_decode(bad, 2, r, 1, &n, NULL),
                   MASQ_IPCAP_ERR_VERSION);
  assert_int_equal(n, 999);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names_and_reasons),
      cmocka_unit_test(test_assign_roundtrip),
      cmocka_unit_test(test_assign_empty),
      cmocka_unit_test(test_assign_ids_unrestricted),
      cmocka_unit_test(test_assign_nonminimal_id),
      cmocka_unit_test(test_is_rejection),
      cmocka_unit_test(test_request_roundtrip),
      cmocka_unit_test(test_request_empty),
      cmocka_unit_test(test_request_ids),
      cmocka_unit_test(test_bad_version),
      cmocka_unit_test(test_prefix_too_long),
      cmocka_unit_test(test_host_bits),
      cmocka_unit_test(test_address_length_mismatch),
      cmocka_unit_test(test_truncated_everywhere),
      cmocka_unit_test(test_assign_cap),
      cmocka_unit_test(test_request_id_range),
      cmocka_unit_test(test_route_roundtrip),
      cmocka_unit_test(test_route_empty),
      cmocka_unit_test(test_route_bad_version),
      cmocka_unit_test(test_route_start_after_end),
      cmocka_unit_test(test_route_order),
      cmocka_unit_test(test_route_proto_overlap),
      cmocka_unit_test(test_route_random),
      cmocka_unit_test(test_route_family_mismatch),
      cmocka_unit_test(test_route_truncated_everywhere),
      cmocka_unit_test(test_route_cap),
      cmocka_unit_test(test_err_may_be_null),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
