/* Address pools: see pool.h for the layout and the search's bounds. */
#include "proto/pool.h"

#include <string.h>

/* --- bit arithmetic on 16-byte big-endian addresses --------------------- */

/* Zeroes every bit from position plen on (bit 0 is the top of a[0]). */
static void mask_to(uint8_t a[16], unsigned plen) {
  for (unsigned i = 0; i < 16; i++) {
    unsigned lo = i * 8;
    if (lo >= plen) a[i] = 0;
    else if (plen - lo < 8) a[i] &= (uint8_t)(0xff << (8 - (plen - lo)));
  }
}

/* 1 if a and b agree on their first plen bits. */
static int prefix_eq(const uint8_t *a, const uint8_t *b, unsigned plen) {
  unsigned full = plen / 8, rest = plen % 8;
  if (memcmp(a, b, full) != 0) return 0;
  if (rest == 0) return 1;
  uint8_t m = (uint8_t)(0xff << (8 - rest));
  return (a[full] & m) == (b[full] & m);
}

/* 1 if a has a set bit at or past position plen (within bits). */
static int host_bits_set(const uint8_t a[16], unsigned plen) {
  uint8_t c[16];
  memcpy(c, a, 16);
  mask_to(c, plen);
  return memcmp(c, a, 16) != 0;
}

static int all_zero(const uint8_t a[16]) {
  static const uint8_t z[16];
  return memcmp(a, z, 16) == 0;
}

/* Steps a to the next block: adds one to its block number, the bits
 * [range plen, lease plen). A carry out of the top leaves those bits all
 * zero, which is block 0 again: the walk wraps within the range. */
static void block_next(const masq_pool *p, uint8_t a[16]) {
  for (unsigned b = p->plen; b-- > p->range.plen;) {
    uint8_t m = (uint8_t)(0x80 >> (b % 8));
    a[b / 8] ^= m;
    if (a[b / 8] & m) return; /* a 0 became 1: no carry */
  }
}

/* --- the lease table ---------------------------------------------------- */

/* MurmurHash3's finaliser: every input bit reaches every output bit, which
 * matters because consecutive leases differ only in a few low (IPv4) or
 * middle (IPv6 /64s) bits. */
static uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

static uint64_t load64(const uint8_t *b) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | b[i];
  return v;
}

static size_t home_slot(const masq_pool *p, const uint8_t key[16]) {
  uint64_t h = fmix64(load64(key) ^ p->seed);
  h = fmix64(h ^ load64(key + 8));
  return (size_t)h & p->mask;
}

/* The slot holding key, or the empty slot ending its probe run (where it
 * would be inserted). Terminates: at most half of the slots are in use. */
static size_t find_slot(const masq_pool *p, const uint8_t key[16]) {
  size_t i = home_slot(p, key);
  while (p->slot[i].owner != 0 && memcmp(p->slot[i].key, key, 16) != 0) i = (i + 1) & p->mask;
  return i;
}

/* Empties slot i by shifting later members of its probe run back (Knuth's
 * algorithm R), so no tombstones pile up to slow lookups. An entry at j
 * may fill the hole at i only if i lies cyclically within [home, j):
 * otherwise a lookup from its home would stop at the hole before it. */
static void slot_delete(masq_pool *p, size_t i) {
  for (size_t j = (i + 1) & p->mask; p->slot[j].owner != 0; j = (j + 1) & p->mask) {
    size_t home = home_slot(p, p->slot[j].key);
    if (((j - home) & p->mask) >= ((j - i) & p->mask)) {
      p->slot[i] = p->slot[j];
      i = j;
    }
  }
  memset(&p->slot[i], 0, sizeof(p->slot[i]));
  p->count--;
}

static void slot_fill(masq_pool *p, size_t i, const uint8_t key[16], uint64_t owner) {
  memcpy(p->slot[i].key, key, 16);
  p->slot[i].owner = owner;
  p->count++;
}

/* --- setup --------------------------------------------------------------- */

size_t masq_pool_storage_bytes(size_t max_leases) {
  if (max_leases == 0 || max_leases > SIZE_MAX / 2) return 0;
  size_t slots = 2;
  while (slots < max_leases * 2) {
    if (slots > SIZE_MAX / 2) return 0;
    slots *= 2;
  }
  if (slots > SIZE_MAX / sizeof(masq_pool_lease)) return 0;
  return slots * sizeof(masq_pool_lease);
}

/* Slots the storage holds, rounded down to a power of two (0 if < 2). */
static size_t slots_in(size_t storage_bytes) {
  size_t n = storage_bytes / sizeof(masq_pool_lease), slots = 2;
  if (n < 2) return 0;
  while (slots <= n / 2) slots *= 2;
  return slots;
}

static int range_ok(const masq_cidr *r, uint8_t assign_plen) {
  if (r->ip.family != 4 && r->ip.family != 6) return 0;
  unsigned bits = r->ip.family == 4 ? 32 : 128;
  if (r->plen > bits || assign_plen < r->plen || assign_plen > bits) return 0;
  /* IPv4 lives in a[0..3]; stray bytes past it would split one address
   * into several keys. */
  return !host_bits_set(r->ip.a, r->plen) && !host_bits_set(r->ip.a, bits);
}

static void add_reserved(masq_pool *p, const uint8_t a[16]) {
  uint8_t key[16];
  memcpy(key, a, 16);
  mask_to(key, p->plen);
  for (unsigned i = 0; i < p->nresv; i++) {
    if (memcmp(p->resv[i], key, 16) == 0) return; /* gateway's block == network's */
  }
  memcpy(p->resv[p->nresv++], key, 16);
}

/* The gateway and the blocks never handed out (see pool.h). */
static void set_reserved(masq_pool *p) {
  int single = p->plen == p->bits;
  int edges = single && p->range.plen + 1 < p->bits; /* not a /31, /127 or host */
  p->gateway = p->range.ip;
  if (!(single && !edges)) p->gateway.a[p->bits / 8 - 1] |= 1;
  p->nresv = 0;
  if (edges) add_reserved(p, p->range.ip.a);
  add_reserved(p, p->gateway.a);
  if (edges && p->bits == 32) {
    uint8_t bcast[16];
    memcpy(bcast, p->range.ip.a, 16);
    for (unsigned b = p->range.plen; b < 32; b++) bcast[b / 8] |= (uint8_t)(0x80 >> (b % 8));
    add_reserved(p, bcast);
  }
}

/* Leases the range can supply at all: its blocks less the reserved ones. */
static size_t range_capacity(const masq_pool *p) {
  if (p->blocks - p->nresv > SIZE_MAX) return SIZE_MAX;
  return (size_t)(p->blocks - p->nresv);
}

int masq_pool_init(masq_pool *p, const masq_cidr *range, uint8_t assign_plen, void *storage,
                   size_t storage_bytes, size_t *max_leases) {
  if (p == NULL) return MASQ_POOL_ERR_INVAL;
  memset(p, 0, sizeof(*p));
  if (range == NULL || storage == NULL || !range_ok(range, assign_plen)) return MASQ_POOL_ERR_INVAL;
  if ((uintptr_t)storage % _Alignof(masq_pool_lease) != 0) return MASQ_POOL_ERR_INVAL;
  size_t slots = slots_in(storage_bytes), want = max_leases ? *max_leases : 0;
  if (slots == 0 || want > slots / 2) return MASQ_POOL_ERR_INVAL;
  p->range = *range;
  p->plen = assign_plen;
  p->bits = range->ip.family == 4 ? 32 : 128;
  unsigned span = (unsigned)(assign_plen - range->plen);
  p->blocks = span >= 64 ? UINT64_MAX : (uint64_t)1 << span;
  set_reserved(p);
  if (p->blocks <= p->nresv) return MASQ_POOL_ERR_INVAL;
  p->limit = want ? want : slots / 2;
  if (p->limit > range_capacity(p)) p->limit = range_capacity(p);
  p->slot = storage;
  p->mask = slots - 1;
  memset(p->slot, 0, slots * sizeof(masq_pool_lease));
  memcpy(p->cursor, range->ip.a, 16);
  if (max_leases) *max_leases = p->limit;
  return 0;
}

int masq_pool_set_seed(masq_pool *p, uint64_t seed) {
  if (p->count != 0) return -1;
  p->seed = seed;
  return 0;
}

void masq_pool_gateway(const masq_pool *p, masq_ip *out) { *out = p->gateway; }

size_t masq_pool_count(const masq_pool *p) { return p->count; }
size_t masq_pool_limit(const masq_pool *p) { return p->limit; }

/* --- leases -------------------------------------------------------------- */

static int reserved(const masq_pool *p, const uint8_t key[16]) {
  for (unsigned i = 0; i < p->nresv; i++) {
    if (memcmp(p->resv[i], key, 16) == 0) return 1;
  }
  return 0;
}

/* The block of the pool's length holding ip, if ip is of the pool's
 * family and inside the range: 1 with *key set, else 0. */
static int block_of(const masq_pool *p, const masq_ip *ip, uint8_t key[16]) {
  if (ip->family != p->range.ip.family || !prefix_eq(ip->a, p->range.ip.a, p->range.plen)) return 0;
  memcpy(key, ip->a, 16);
  mask_to(key, p->plen);
  return 1;
}

/* Reads a Requested Address: -1 if malformed or of the wrong family, 0 if
 * there is no usable preference (none, all-zero, outside the range,
 * reserved), 1 with the preferred block in key. */
static int preferred_block(const masq_pool *p, const masq_cidr *req, uint8_t key[16]) {
  if (req == NULL) return 0;
  if (req->ip.family != p->range.ip.family || req->plen > p->bits) return -1;
  if (host_bits_set(req->ip.a, req->plen) || host_bits_set(req->ip.a, p->bits)) return -1;
  if (all_zero(req->ip.a)) return 0; /* §4.7.2: any address of the family */
  if (!block_of(p, &req->ip, key)) return 0;
  return !reserved(p, key);
}

static void emit(const masq_pool *p, const uint8_t key[16], masq_cidr *out) {
  memset(out, 0, sizeof(*out));
  out->ip.family = p->range.ip.family;
  memcpy(out->ip.a, key, 16);
  out->plen = p->plen;
}

/* Walks from the cursor to the first free block and leases it; see pool.h
 * for why the bound on candidates makes this exhaustive when it must be.
 * The caller has checked that count < limit, so a free block exists. */
static int take_next_free(masq_pool *p, uint64_t owner, masq_cidr *out) {
  uint64_t tries = (uint64_t)p->count + p->nresv + 1;
  if (tries > p->blocks) tries = p->blocks;
  uint8_t cand[16];
  memcpy(cand, p->cursor, 16);
  for (uint64_t t = 0; t < tries; t++, block_next(p, cand)) {
    if (reserved(p, cand)) continue;
    size_t i = find_slot(p, cand);
    if (p->slot[i].owner != 0) continue;
    slot_fill(p, i, cand, owner);
    emit(p, cand, out);
    memcpy(p->cursor, cand, 16);
    block_next(p, p->cursor);
    return 0;
  }
  return MASQ_POOL_ERR_FULL; /* unreachable while count < limit <= free blocks */
}

int masq_pool_assign(masq_pool *p, const masq_cidr *requested, uint64_t owner, masq_cidr *out) {
  if (p == NULL || out == NULL || owner == 0 || p->slot == NULL) return MASQ_POOL_ERR_BAD_REQUEST;
  uint8_t want[16];
  int pref = preferred_block(p, requested, want);
  if (pref < 0) return MASQ_POOL_ERR_BAD_REQUEST;
  if (pref > 0) {
    size_t i = find_slot(p, want);
    if (p->slot[i].owner == owner) { /* already this owner's: idempotent */
      emit(p, want, out);
      return 0;
    }
    if (p->slot[i].owner == 0 && p->count < p->limit) {
      slot_fill(p, i, want, owner);
      emit(p, want, out);
      return 0;
    }
  }
  if (p->count >= p->limit) return MASQ_POOL_ERR_FULL;
  return take_next_free(p, owner, out);
}

int masq_pool_release(masq_pool *p, const masq_cidr *c, uint64_t owner) {
  uint8_t key[16];
  if (p == NULL || c == NULL || owner == 0 || p->slot == NULL) return -1;
  if (c->plen != p->plen || !block_of(p, &c->ip, key)) return -1;
  if (memcmp(key, c->ip.a, 16) != 0) return -1; /* host bits set: not a lease */
  size_t i = find_slot(p, key);
  if (p->slot[i].owner != owner) return -1;
  slot_delete(p, i);
  return 0;
}

size_t masq_pool_release_owner(masq_pool *p, uint64_t owner) {
  size_t n = 0;
  if (p == NULL || owner == 0 || p->slot == NULL) return 0;
  /* A deletion may shift a later entry of the run into slot i, so slot i
   * is looked at again before moving on. Entries only ever move back
   * towards i, never behind it, except ones from the wrapped start of
   * the table, which were already looked at and kept. */
  for (size_t i = 0; i <= p->mask;) {
    if (p->slot[i].owner == owner) {
      slot_delete(p, i);
      n++;
    } else {
      i++;
    }
  }
  return n;
}

uint64_t masq_pool_owner(const masq_pool *p, const masq_ip *addr) {
  uint8_t key[16];
  if (p == NULL || addr == NULL || p->slot == NULL || !block_of(p, addr, key)) return 0;
  return p->slot[find_slot(p, key)].owner;
}
