/* Fuzzes the address pool: a sequence of assigns (with and without a
 * Requested Address, well-formed or not), releases, per-owner releases
 * and lookups decoded from the input runs against both the pool and a
 * naive model (an array of leases searched linearly, its own cursor and
 * reserved-block rules written from pool.h's contract). Each result must
 * match the model exactly, which implies the invariants: leases are
 * distinct, inside the range, never reserved, FULL only at the limit,
 * honoured requests honoured, and lookups agree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/pool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
  if (!ok) abort();
}

/* --- input reader --------------------------------------------------------- */

typedef struct input {
  const uint8_t *p;
  size_t n;
} input;

static uint8_t next(input *in) {
  if (in->n == 0) return 0;
  in->n--;
  return *in->p++;
}

/* --- the model ------------------------------------------------------------ */

#define MAX_SLOTS 128
#define MAX_LEASES (MAX_SLOTS / 2)

typedef struct model {
  masq_cidr range;
  unsigned plen, bits;
  size_t limit;
  uint8_t gw[16];
  uint8_t cursor[16];
  masq_cidr lease[MAX_LEASES];
  uint64_t owner[MAX_LEASES];
  size_t n;
} model;

static const struct {
  const char *range;
  uint8_t plen;
} configs[] = {
    {"10.0.0.0/29", 32},     {"10.0.0.4/30", 32},     {"10.0.0.2/31", 32},
    {"192.168.7.0/24", 32},  {"10.0.0.0/16", 32},     {"10.0.0.0/16", 24},
    {"10.0.0.0/8", 30},      {"0.0.0.0/0", 32},       {"172.16.0.0/26", 28},
    {"2001:db8::/126", 128}, {"2001:db8::/127", 128}, {"2001:db8::/120", 128},
    {"2001:db8::/64", 128},  {"2001:db8::/48", 64},   {"2001:db8::/32", 64},
    {"::/0", 128},           {"2001:db8::/56", 60},   {"2001:db8:0:ff00::/57", 64},
};

static int get_bit(const uint8_t *a, unsigned b) { return (a[b / 8] >> (7 - b % 8)) & 1; }

static void set_bit(uint8_t *a, unsigned b, int v) {
  uint8_t m = (uint8_t)(0x80 >> (b % 8));
  a[b / 8] = (uint8_t)(v ? a[b / 8] | m : a[b / 8] & ~m);
}

static int same_prefix(const uint8_t *a, const uint8_t *b, unsigned plen) {
  for (unsigned i = 0; i < plen; i++) {
    if (get_bit(a, i) != get_bit(b, i)) return 0;
  }
  return 1;
}

static int bits_past(const uint8_t *a, unsigned from) {
  for (unsigned i = from; i < 128; i++) {
    if (get_bit(a, i)) return 1;
  }
  return 0;
}

/* The block of the model's length holding a. */
static void blockify(const model *m, const uint8_t *a, uint8_t out[16]) {
  memcpy(out, a, 16);
  for (unsigned i = m->plen; i < 128; i++) set_bit(out, i, 0);
}

/* Adds one block as a big-endian integer sum; leaving the range (a carry
 * into its prefix, or off the top for /0) means back to its start. */
static void model_step(const model *m, uint8_t a[16]) {
  unsigned carry = 1;
  for (int b = (int)m->plen - 1; b >= 0 && carry; b--) {
    int v = get_bit(a, (unsigned)b) + (int)carry;
    set_bit(a, (unsigned)b, v & 1);
    carry = (unsigned)v >> 1;
  }
  if (carry || !same_prefix(a, m->range.ip.a, m->range.plen)) memcpy(a, m->range.ip.a, 16);
}

static int model_reserved(const model *m, const uint8_t blk[16]) {
  uint8_t g[16];
  blockify(m, m->gw, g);
  if (memcmp(g, blk, 16) == 0) return 1;
  if (m->plen != m->bits || m->range.plen + 1 >= m->bits) return 0;
  if (memcmp(blk, m->range.ip.a, 16) == 0) return 1;
  if (m->bits != 32) return 0;
  for (unsigned i = m->range.plen; i < 32; i++) {
    if (!get_bit(blk, i)) return 0;
  }
  return same_prefix(blk, m->range.ip.a, m->range.plen);
}

static size_t model_find(const model *m, const uint8_t blk[16]) {
  for (size_t i = 0; i < m->n; i++) {
    if (memcmp(m->lease[i].ip.a, blk, 16) == 0) return i;
  }
  return SIZE_MAX;
}

static void model_add(model *m, const uint8_t blk[16], uint64_t owner) {
  check(m->n < MAX_LEASES);
  memset(&m->lease[m->n], 0, sizeof(m->lease[m->n]));
  m->lease[m->n].ip.family = m->range.ip.family;
  memcpy(m->lease[m->n].ip.a, blk, 16);
  m->lease[m->n].plen = (uint8_t)m->plen;
  m->owner[m->n++] = owner;
}

static void model_drop(model *m, size_t i) {
  m->lease[i] = m->lease[m->n - 1];
  m->owner[i] = m->owner[--m->n];
}

/* Blocks in the range less the reserved ones, capped at what fits. */
static size_t model_capacity(const model *m) {
  unsigned span = m->plen - m->range.plen;
  if (span >= 16) return SIZE_MAX;
  size_t resv = 1; /* the gateway's block */
  if (m->plen == m->bits && m->range.plen + 1 < m->bits) resv += m->bits == 32 ? 2 : 1;
  return ((size_t)1 << span) - resv;
}

static void model_init(model *m, const masq_cidr *r, unsigned plen, size_t bound) {
  memset(m, 0, sizeof(*m));
  m->range = *r;
  m->plen = plen;
  m->bits = r->ip.family == 4 ? 32 : 128;
  memcpy(m->gw, r->ip.a, 16);
  int single = plen == m->bits, edges = single && r->plen + 1 < m->bits;
  if (!single || edges) set_bit(m->gw, m->bits - 1, 1);
  memcpy(m->cursor, r->ip.a, 16);
  m->limit = bound < model_capacity(m) ? bound : model_capacity(m);
}

/* --- operations ----------------------------------------------------------- */

static void check_lease(const masq_cidr *c, const model *m) {
  check(c->ip.family == m->range.ip.family && c->plen == m->plen);
  check(same_prefix(c->ip.a, m->range.ip.a, m->range.plen));
  check(!bits_past(c->ip.a, m->plen));
  check(!model_reserved(m, c->ip.a));
}

/* What the model's cursor walk hands out: the first free block at or
 * after the cursor. Walks at most limit + 4 blocks, enough to meet a
 * free one when one exists (at most limit - 1 leased, 3 reserved). */
static int model_walk(model *m, uint8_t out[16]) {
  uint8_t c[16];
  memcpy(c, m->cursor, 16);
  for (size_t k = 0; k < m->limit + 4; k++, model_step(m, c)) {
    if (model_reserved(m, c) || model_find(m, c) != SIZE_MAX) continue;
    memcpy(out, c, 16);
    model_step(m, c);
    memcpy(m->cursor, c, 16);
    return 0;
  }
  return -1;
}

/* Builds a Requested Address from the input: all-zero, near the range
 * (where leases collide), a live lease, or raw bytes (often malformed). */
static masq_cidr make_request(input *in, const model *m) {
  masq_cidr r;
  memset(&r, 0, sizeof(r));
  r.ip.family = m->range.ip.family;
  uint8_t kind = next(in);
  switch (kind % 4) {
  case 0: /* §4.7.2 "any", any length */
    r.plen = (uint8_t)(next(in) % (m->bits + 1));
    break;
  case 1: { /* base plus a small block number, maybe past the range */
    r.ip = m->range.ip;
    unsigned v = (unsigned)next(in) | (unsigned)next(in) << 8;
    for (unsigned i = 0; i < 16 && i < m->plen; i++) set_bit(r.ip.a, m->plen - 1 - i, (v >> i) & 1);
    r.plen = (kind & 0x20) ? (uint8_t)m->plen : (uint8_t)m->bits;
    if (kind & 0x40) set_bit(r.ip.a, m->bits - 1, 1); /* a host inside the block */
    break;
  }
  case 2: /* a live lease, perhaps someone else's */
    if (m->n > 0) r = m->lease[next(in) % m->n];
    break;
  default: /* raw */
    for (unsigned i = 0; i < m->bits / 8; i++) r.ip.a[i] = next(in);
    r.plen = next(in);
    if (r.plen > m->bits && (kind & 0x20)) r.plen = (uint8_t)(r.plen % (m->bits + 1));
    break;
  }
  if ((kind & 0x90) == 0x90) r.ip.family = (uint8_t)(r.ip.family == 4 ? 6 : 4);
  if ((kind & 0x88) == 0x88) r.ip.a[15] |= 1; /* stray bits, past IPv4 too */
  return r;
}

/* The model's verdict on a request: -1 malformed, 0 no preference,
 * 1 with the preferred block. */
static int model_prefer(const model *m, const masq_cidr *r, uint8_t blk[16]) {
  if (r->ip.family != m->range.ip.family || r->plen > m->bits) return -1;
  if (bits_past(r->ip.a, r->plen) || bits_past(r->ip.a, m->bits)) return -1;
  if (!bits_past(r->ip.a, 0)) return 0;
  if (!same_prefix(r->ip.a, m->range.ip.a, m->range.plen)) return 0;
  blockify(m, r->ip.a, blk);
  return !model_reserved(m, blk);
}

static void op_assign(masq_pool *p, model *m, input *in, int with_req) {
  masq_cidr req, out;
  uint8_t want[16];
  uint64_t owner = next(in) % 6; /* 0 is refused */
  int pref = 0;
  if (with_req) {
    req = make_request(in, m);
    pref = model_prefer(m, &req, want);
  }
  int rc = masq_pool_assign(p, with_req ? &req : NULL, owner, &out);
  if (owner == 0 || pref < 0) {
    check(rc == MASQ_POOL_ERR_BAD_REQUEST);
    return;
  }
  size_t held = pref > 0 ? model_find(m, want) : SIZE_MAX;
  if (pref > 0 && held != SIZE_MAX && m->owner[held] == owner) {
    check(rc == 0 && memcmp(out.ip.a, want, 16) == 0);
    check_lease(&out, m);
    return;
  }
  if (m->n >= m->limit) {
    check(rc == MASQ_POOL_ERR_FULL);
    return;
  }
  check(rc == 0);
  check_lease(&out, m);
  if (pref > 0 && held == SIZE_MAX) {
    check(memcmp(out.ip.a, want, 16) == 0);
  } else {
    uint8_t exp[16];
    check(model_walk(m, exp) == 0);
    check(memcmp(out.ip.a, exp, 16) == 0);
  }
  check(model_find(m, out.ip.a) == SIZE_MAX); /* distinct */
  model_add(m, out.ip.a, owner);
}

static void op_release(masq_pool *p, model *m, input *in) {
  uint8_t how = next(in);
  masq_cidr c;
  if (m->n > 0 && (how & 1)) c = m->lease[next(in) % m->n];
  else c = make_request(in, m);
  uint64_t owner = next(in) % 6;
  int rc = masq_pool_release(p, &c, owner);
  size_t at = SIZE_MAX;
  if (c.ip.family == m->range.ip.family && c.plen == m->plen && !bits_past(c.ip.a, m->plen))
    at = model_find(m, c.ip.a);
  int ok = at != SIZE_MAX && owner != 0 && m->owner[at] == owner;
  check(rc == (ok ? 0 : -1));
  if (ok) model_drop(m, at);
}

static void op_release_owner(masq_pool *p, model *m, input *in) {
  uint64_t owner = next(in) % 6;
  size_t want = 0;
  for (size_t i = 0; i < m->n;) {
    if (owner != 0 && m->owner[i] == owner) {
      model_drop(m, i);
      want++;
    } else {
      i++;
    }
  }
  check(masq_pool_release_owner(p, owner) == want);
}

static void op_lookup(const masq_pool *p, const model *m, input *in) {
  masq_cidr probe = make_request(in, m);
  uint64_t want = 0;
  for (size_t i = 0; i < m->n; i++) {
    if (probe.ip.family == m->range.ip.family && same_prefix(probe.ip.a, m->lease[i].ip.a, m->plen))
      want = m->owner[i];
  }
  check(masq_pool_owner(p, &probe.ip) == want);
}

static void check_all(const masq_pool *p, const model *m) {
  check(masq_pool_count(p) == m->n);
  for (size_t i = 0; i < m->n; i++) check(masq_pool_owner(p, &m->lease[i].ip) == m->owner[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static masq_pool_lease store[MAX_SLOTS];
  static model m;
  if (size < 3 || size > 4096) return 0;
  input in = {data, size};
  uint8_t cfg = next(&in), sz = next(&in), seeded = next(&in);
  masq_cidr range;
  check(masq_cidr_parse(configs[cfg % (sizeof(configs) / sizeof(configs[0]))].range, &range) == 0);
  uint8_t plen = configs[cfg % (sizeof(configs) / sizeof(configs[0]))].plen;
  size_t slots = (size_t)2 << (sz % 7); /* 2..128 */
  size_t bound = (sz & 0x80) ? slots / 2 : 1 + (sz >> 3) % (slots / 2);
  size_t lim = bound;
  masq_pool p;
  check(masq_pool_init(&p, &range, plen, store, slots * sizeof(masq_pool_lease), &lim) == 0);
  model_init(&m, &range, plen, bound);
  check(lim == m.limit && masq_pool_limit(&p) == lim);
  masq_ip gw;
  masq_pool_gateway(&p, &gw);
  check(gw.family == range.ip.family && memcmp(gw.a, m.gw, 16) == 0);
  if (seeded & 1) check(masq_pool_set_seed(&p, (uint64_t)seeded * 0x9e3779b97f4a7c15ULL) == 0);
  while (in.n > 0) {
    uint8_t op = next(&in);
    switch (op % 6) {
    case 0: op_assign(&p, &m, &in, 0); break;
    case 1:
    case 2: op_assign(&p, &m, &in, 1); break;
    case 3: op_release(&p, &m, &in); break;
    case 4: op_release_owner(&p, &m, &in); break;
    default: op_lookup(&p, &m, &in); break;
    }
    if (op & 0x80) check_all(&p, &m);
  }
  check_all(&p, &m);
  return 0;
}
