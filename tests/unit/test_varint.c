/* QUIC varints (RFC 9000 §16): the RFC's Appendix A.1 vectors, every
 * length boundary, out-of-range values and truncated input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "proto/varint.h"
#include "proto/wire.h"

/* RFC 9000 Appendix A.1 sample encodings (all shortest form). */
static const struct {
  uint8_t bytes[8];
  size_t n;
  uint64_t v;
} rfc_vectors[] = {
    {{0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c}, 8, UINT64_C(151288809941952652)},
    {{0x9d, 0x7f, 0x3e, 0x7d}, 4, 494878333},
    {{0x7b, 0xbd}, 2, 15293},
    {{0x25}, 1, 37},
};

static void test_rfc_vectors_decode(void **state) {
  for (size_t i = 0; i < sizeof(rfc_vectors) / sizeof(rfc_vectors[0]); i++) {
    uint64_t v = 0;
    assert_int_equal(masq_varint_decode(rfc_vectors[i].bytes, rfc_vectors[i].n, &v),
                     rfc_vectors[i].n);
    assert_true(v == rfc_vectors[i].v);
  }
}

static void test_rfc_vectors_encode(void **state) {
  for (size_t i = 0; i < sizeof(rfc_vectors) / sizeof(rfc_vectors[0]); i++) {
    uint8_t out[8] = {0};
    assert_int_equal(masq_varint_len(rfc_vectors[i].v), rfc_vectors[i].n);
    uint8_t *end = masq_varint_encode(out, rfc_vectors[i].v);
    assert_ptr_equal(end, out + rfc_vectors[i].n);
    assert_memory_equal(out, rfc_vectors[i].bytes, rfc_vectors[i].n);
  }
}

/* A.1: "the two-byte sequence 0x40 0x25 also decodes to 37". */
static void test_rfc_non_minimal(void **state) {
  const uint8_t two[] = {0x40, 0x25};
  uint64_t v = 0;
  assert_int_equal(masq_varint_decode(two, sizeof(two), &v), 2);
  assert_true(v == 37);
  const uint8_t zero4[] = {0x80, 0, 0, 0};
  const uint8_t zero8[] = {0xc0, 0, 0, 0, 0, 0, 0, 0};
  v = 99;
  assert_int_equal(masq_varint_decode(zero4, sizeof(zero4), &v), 4);
  assert_true(v == 0);
  v = 99;
  assert_int_equal(masq_varint_decode(zero8, sizeof(zero8), &v), 8);
  assert_true(v == 0);
}

static void test_len_boundaries(void **state) {
  assert_int_equal(masq_varint_len(0), 1);
  assert_int_equal(masq_varint_len(63), 1);
  assert_int_equal(masq_varint_len(64), 2);
  assert_int_equal(masq_varint_len(16383), 2);
  assert_int_equal(masq_varint_len(16384), 4);
  assert_int_equal(masq_varint_len((UINT64_C(1) << 30) - 1), 4);
  assert_int_equal(masq_varint_len(UINT64_C(1) << 30), 8);
  assert_int_equal(masq_varint_len(MASQ_VARINT_MAX), 8);
  assert_int_equal(masq_varint_len(MASQ_VARINT_MAX + 1), 0);
  assert_int_equal(masq_varint_len(UINT64_MAX), 0);
}

static void check_encoding(uint64_t v, const uint8_t *want, size_t n) {
  uint8_t out[9];
  memset(out, 0xaa, sizeof(out));
  assert_ptr_equal(masq_varint_encode(out, v), out + n);
  assert_memory_equal(out, want, n);
  assert_int_equal(out[n], 0xaa); /* nothing written past the varint */
  uint64_t back = ~v;
  assert_int_equal(masq_varint_decode(out, n, &back), n);
  assert_true(back == v);
}

static void test_encode_boundaries(void **state) {
  check_encoding(0, (const uint8_t[]){0x00}, 1);
  check_encoding(63, (const uint8_t[]){0x3f}, 1);
  check_encoding(64, (const uint8_t[]){0x40, 0x40}, 2);
  check_encoding(16383, (const uint8_t[]){0x7f, 0xff}, 2);
  check_encoding(16384, (const uint8_t[]){0x80, 0x00, 0x40, 0x00}, 4);
  check_encoding((UINT64_C(1) << 30) - 1, (const uint8_t[]){0xbf, 0xff, 0xff, 0xff}, 4);
  check_encoding(UINT64_C(1) << 30, (const uint8_t[]){0xc0, 0, 0, 0, 0x40, 0, 0, 0}, 8);
  check_encoding(MASQ_VARINT_MAX,
                 (const uint8_t[]){0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 8);
}

static void test_encode_out_of_range_writes_nothing(void **state) {
  uint8_t out[8];
  memset(out, 0xaa, sizeof(out));
  assert_ptr_equal(masq_varint_encode(out, MASQ_VARINT_MAX + 1), out);
  assert_ptr_equal(masq_varint_encode(out, UINT64_MAX), out);
  for (size_t i = 0; i < sizeof(out); i++) assert_int_equal(out[i], 0xaa);
}

static void test_decode_truncated(void **state) {
  const uint8_t b[8] = {0xc0, 1, 2, 3, 4, 5, 6, 7};
  uint64_t v = 12345;
  assert_int_equal(masq_varint_decode(b, 0, &v), 0);
  for (size_t n = 1; n < 8; n++) assert_int_equal(masq_varint_decode(b, n, &v), 0);
  const uint8_t two[] = {0x40};
  assert_int_equal(masq_varint_decode(two, 1, &v), 0);
  const uint8_t four[] = {0x80, 0, 0};
  assert_int_equal(masq_varint_decode(four, 3, &v), 0);
  assert_true(v == 12345); /* untouched on failure */
}

static void test_decode_ignores_trailing_bytes(void **state) {
  const uint8_t b[] = {0x7b, 0xbd, 0xff, 0xff};
  uint64_t v = 0;
  assert_int_equal(masq_varint_decode(b, sizeof(b), &v), 2);
  assert_true(v == 15293);
}

/* Round trip around each boundary and over pseudo-random 62-bit values. */
static void test_roundtrip(void **state) {
  const uint64_t edges[] = {0, 63, 16383, (UINT64_C(1) << 30) - 1, MASQ_VARINT_MAX};
  uint64_t x = UINT64_C(0x9e3779b97f4a7c15);
  for (int i = 0; i < 20000; i++) {
    uint64_t v;
    if (i < 15) {
      uint64_t e = edges[i / 3];
      v = e + (uint64_t)(i % 3) - 1; /* e-1, e, e+1 */
      if (v > MASQ_VARINT_MAX) continue;
    } else {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      v = (x & MASQ_VARINT_MAX) >> (x >> 58); /* spread over all lengths */
    }
    uint8_t out[8];
    size_t n = masq_varint_len(v);
    assert_true(n == 1 || n == 2 || n == 4 || n == 8);
    assert_ptr_equal(masq_varint_encode(out, v), out + n);
    uint64_t back = ~v;
    assert_int_equal(masq_varint_decode(out, n, &back), n);
    assert_true(back == v);
    assert_int_equal(masq_varint_decode(out, n - 1, &back), 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc_vectors_decode),
      cmocka_unit_test(test_rfc_vectors_encode),
      cmocka_unit_test(test_rfc_non_minimal),
      cmocka_unit_test(test_len_boundaries),
      cmocka_unit_test(test_encode_boundaries),
      cmocka_unit_test(test_encode_out_of_range_writes_nothing),
      cmocka_unit_test(test_decode_truncated),
      cmocka_unit_test(test_decode_ignores_trailing_bytes),
      cmocka_unit_test(test_roundtrip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
