/* HTTP/3 Datagram Quarter Stream ID (RFC 9297 §2.1) and Context ID
 * (RFC 9298 §5) decoding and prefix encoding. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "proto/h3dgram.h"
#include "proto/varint.h"
#include "proto/wire.h"

static void expect_qsid(const uint8_t *b, size_t n, int64_t want_sid, size_t want_off) {
  int64_t sid = -1;
  size_t off = 999;
  const char *err = NULL;
  assert_int_equal(masq_h3dgram_decode(b, n, &sid, &off, &err), 0);
  assert_true(sid == want_sid);
  assert_int_equal(off, want_off);
  assert_null(err); /* untouched on success */
}

/* Fails, leaves the outputs alone and says why. */
static void expect_qsid_fail(const uint8_t *b, size_t n) {
  int64_t sid = -1;
  size_t off = 999;
  const char *err = NULL;
  assert_int_equal(masq_h3dgram_decode(b, n, &sid, &off, &err), -1);
  assert_non_null(err);
  assert_true(strlen(err) > 0);
  assert_true(sid == -1);
  assert_int_equal(off, 999);
}

static void test_decode_qsid(void **state) {
  expect_qsid((const uint8_t[]){0x00}, 1, 0, 1);
  expect_qsid((const uint8_t[]){0x01, 0x00, 0xab}, 3, 4, 1); /* payload follows */
  expect_qsid((const uint8_t[]){0x3f}, 1, 252, 1);
  expect_qsid((const uint8_t[]){0x40, 0x40}, 2, 256, 2);
  expect_qsid((const uint8_t[]){0x40, 0x01}, 2, 4, 2); /* non-minimal is fine */
  expect_qsid((const uint8_t[]){0x9d, 0x7f, 0x3e, 0x7d}, 4, INT64_C(494878333) * 4, 4);
  /* 2^60-1, the largest legal value: stream 2^62-4. */
  expect_qsid((const uint8_t[]){0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 8,
              (int64_t)(MASQ_VARINT_MAX - 3), 8);
}

static void test_decode_qsid_too_large(void **state) {
  /* 2^60 */
  expect_qsid_fail((const uint8_t[]){0xd0, 0, 0, 0, 0, 0, 0, 0}, 8);
  /* 2^62-1 */
  expect_qsid_fail((const uint8_t[]){0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 8);
}

static void test_decode_qsid_truncated(void **state) {
  expect_qsid_fail(NULL, 0);
  expect_qsid_fail((const uint8_t[]){0x40}, 1);
  expect_qsid_fail((const uint8_t[]){0x80, 0, 0}, 3);
  expect_qsid_fail((const uint8_t[]){0xc0, 0, 0, 0, 0, 0, 0}, 7);
}

static void test_decode_err_may_be_null(void **state) {
  int64_t sid;
  size_t off;
  uint64_t ctx;
  assert_int_equal(masq_h3dgram_decode((const uint8_t[]){0x40}, 1, &sid, &off, NULL), -1);
  assert_int_equal(masq_context_decode(NULL, 0, &ctx, &off, NULL), -1);
}

static void test_decode_context(void **state) {
  uint64_t ctx = 77;
  size_t off = 999;
  const char *err = NULL;
  const uint8_t zero[] = {0x00, 'u', 'd', 'p'};
  assert_int_equal(masq_context_decode(zero, sizeof(zero), &ctx, &off, &err), 0);
  assert_true(ctx == MASQ_CONTEXT_ID_UDP);
  assert_int_equal(off, 1);
  const uint8_t max[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  assert_int_equal(masq_context_decode(max, sizeof(max), &ctx, &off, &err), 0);
  assert_true(ctx == MASQ_VARINT_MAX);
  assert_int_equal(off, 8);
  assert_null(err);
  /* Missing or cut Context ID. */
  ctx = 77;
  off = 999;
  assert_int_equal(masq_context_decode(NULL, 0, &ctx, &off, &err), -1);
  assert_non_null(err);
  err = NULL;
  assert_int_equal(masq_context_decode(max, 7, &ctx, &off, &err), -1);
  assert_non_null(err);
  assert_true(ctx == 77);
  assert_int_equal(off, 999);
}

static void test_prefix_len(void **state) {
  assert_int_equal(masq_h3dgram_prefix_len(0, 0), 2);
  assert_int_equal(masq_h3dgram_prefix_len(4 * 63, 0), 2);
  assert_int_equal(masq_h3dgram_prefix_len(4 * 64, 0), 3);
  assert_int_equal(masq_h3dgram_prefix_len(4 * 16383, 63), 3);
  assert_int_equal(masq_h3dgram_prefix_len(4 * 16384, 64), 6);
  assert_int_equal(masq_h3dgram_prefix_len((int64_t)(MASQ_VARINT_MAX - 3), MASQ_VARINT_MAX),
                   16);
  /* Not a request stream, or not encodable: 0. */
  assert_int_equal(masq_h3dgram_prefix_len(-4, 0), 0);
  assert_int_equal(masq_h3dgram_prefix_len(1, 0), 0);
  assert_int_equal(masq_h3dgram_prefix_len(2, 0), 0);
  assert_int_equal(masq_h3dgram_prefix_len(3, 0), 0);
  assert_int_equal(masq_h3dgram_prefix_len((int64_t)(MASQ_VARINT_MAX + 1), 0), 0);
  assert_int_equal(masq_h3dgram_prefix_len(0, MASQ_VARINT_MAX + 1), 0);
}

static void test_prefix_encode(void **state) {
  uint8_t out[17];
  memset(out, 0xaa, sizeof(out));
  assert_int_equal(masq_h3dgram_prefix_encode(out, 0, 0), 2);
  assert_memory_equal(out, "\x00\x00", 2);
  assert_int_equal(out[2], 0xaa);
  assert_int_equal(masq_h3dgram_prefix_encode(out, 4 * 64, 2), 3);
  assert_memory_equal(out, "\x40\x40\x02", 3);
  memset(out, 0xaa, sizeof(out));
  assert_int_equal(masq_h3dgram_prefix_encode(out, 6, 0), 0);
  assert_int_equal(out[0], 0xaa);
}

/* Encode then decode recovers stream and context, and the offsets add up
 * to the prefix length. */
static void test_prefix_roundtrip(void **state) {
  const int64_t sids[] = {0, 4, 252, 256, 65532, 65536, INT64_C(4) << 30,
                          (int64_t)(MASQ_VARINT_MAX - 3)};
  const uint64_t ctxs[] = {0, 1, 63, 64, 16383, 16384, (UINT64_C(1) << 30), MASQ_VARINT_MAX};
  for (size_t i = 0; i < sizeof(sids) / sizeof(sids[0]); i++) {
    for (size_t j = 0; j < sizeof(ctxs) / sizeof(ctxs[0]); j++) {
      uint8_t out[16];
      size_t n = masq_h3dgram_prefix_encode(out, sids[i], ctxs[j]);
      assert_int_equal(n, masq_h3dgram_prefix_len(sids[i], ctxs[j]));
      int64_t sid;
      uint64_t ctx;
      size_t o1, o2;
      const char *err = NULL;
      assert_int_equal(masq_h3dgram_decode(out, n, &sid, &o1, &err), 0);
      assert_int_equal(masq_context_decode(out + o1, n - o1, &ctx, &o2, &err), 0);
      assert_true(sid == sids[i]);
      assert_true(ctx == ctxs[j]);
      assert_int_equal(o1 + o2, n);
      assert_int_equal(o1, masq_varint_len((uint64_t)sids[i] / 4));
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decode_qsid),
      cmocka_unit_test(test_decode_qsid_too_large),
      cmocka_unit_test(test_decode_qsid_truncated),
      cmocka_unit_test(test_decode_err_may_be_null),
      cmocka_unit_test(test_decode_context),
      cmocka_unit_test(test_prefix_len),
      cmocka_unit_test(test_prefix_encode),
      cmocka_unit_test(test_prefix_roundtrip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
