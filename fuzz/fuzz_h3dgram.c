/* libFuzzer harness for the HTTP/3 Datagram prefix (RFC 9297 §2.1,
 * RFC 9298 §5): decode the Quarter Stream ID and Context ID, check every
 * result against the RFC rules, then re-encode and decode again. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/h3dgram.h"
#include "proto/varint.h"
#include "proto/wire.h"

static void check(int ok) {
  if (!ok) abort();
}

/* Whether p[0..len) is too short for the varint it starts. */
static int truncated(const uint8_t *p, size_t len) {
  return len == 0 || len < ((size_t)1 << (p[0] >> 6));
}

/* Encodes the pair, decodes it back and, when the input used shortest
 * forms, checks the bytes are the input's. */
static void roundtrip(const uint8_t *in, int64_t sid, size_t off, uint64_t ctx, size_t off2) {
  uint8_t out[16];
  size_t n = masq_h3dgram_prefix_encode(out, sid, ctx);
  check(n > 0 && n <= sizeof(out) && n == masq_h3dgram_prefix_len(sid, ctx));
  int64_t sid2;
  uint64_t ctx2;
  size_t o1, o2;
  const char *err = NULL;
  check(masq_h3dgram_decode(out, n, &sid2, &o1, &err) == 0 && sid2 == sid);
  check(masq_context_decode(out + o1, n - o1, &ctx2, &o2, &err) == 0 && ctx2 == ctx);
  check(o1 + o2 == n && err == NULL);
  int minimal = off == masq_varint_len((uint64_t)sid / 4) && off2 == masq_varint_len(ctx);
  if (minimal) check(n == off + off2 && memcmp(out, in, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int64_t sid = -1;
  size_t off = 0;
  const char *err = NULL;
  if (masq_h3dgram_decode(data, size, &sid, &off, &err) != 0) {
    check(err != NULL && sid == -1 && off == 0);
    uint64_t q;
    /* The only reasons to fail: too short, or beyond 2^60-1. */
    check(truncated(data, size) ||
          (masq_varint_decode(data, size, &q) > 0 && q > MASQ_QSID_MAX));
    return 0;
  }
  check(err == NULL && off >= 1 && off <= 8 && off <= size);
  check(sid >= 0 && sid % 4 == 0 && (uint64_t)sid <= MASQ_VARINT_MAX - 3);

  uint64_t ctx = 0;
  size_t off2 = 0;
  if (masq_context_decode(data + off, size - off, &ctx, &off2, &err) != 0) {
    check(err != NULL && off2 == 0 && truncated(data + off, size - off));
    return 0;
  }
  check(err == NULL && off2 >= 1 && off2 <= size - off && ctx <= MASQ_VARINT_MAX);
  roundtrip(data, sid, off, ctx, off2);
  return 0;
}
