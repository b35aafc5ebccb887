/* Address pools for the CONNECT-IP server (--pool4 / --pool6): hands out
 * addresses or prefixes of one length from a configured range, each to
 * one live owner (a tunnel) at a time, and maps a packet's destination
 * back to the owner holding it.
 *
 * No I/O, no clock, no allocation: the caller passes the lease table's
 * storage to masq_pool_init, sized with masq_pool_storage_bytes for its
 * bound on live leases, and the pool refuses (MASQ_POOL_ERR_FULL) beyond
 * it. Nothing persists: a released address is simply free again, so a
 * sticky per-client address, if configured, is the caller's to request.
 *
 * Layout. A range of prefix length P handing out leases of length L
 * (P <= L <= 32 or 128) holds 2^(L-P) blocks. Some are never handed out:
 *  - the gateway, the first host address, which the server puts on its
 *    own TUN (masq_pool_gateway): range+1, or range+0 for a /31 or /127
 *    range of single addresses (RFC 3021 / RFC 6164 point-to-point);
 *  - with single-address leases (L == 32 or 128) on a range shorter than
 *    /31 or /127: the network address (for IPv6, the Subnet-Router
 *    anycast address of RFC 4291 §2.6.1) and, for IPv4, the broadcast;
 *  - with prefix leases (L shorter than the address, e.g. /64s from a
 *    /48), only the block holding the gateway.
 * So a /24 gives 253 addresses, a /30 one, a /31 one, a /29 five, a /48
 * with /64 leases 65535 prefixes; a /32 or /128 range gives none (init
 * refuses it).
 *
 * Allocation. Leases live in an open-addressing hash table (linear
 * probing, at most half full, backward-shift deletion so no tombstones)
 * keyed by the block's address, so masq_pool_owner, which runs per
 * packet, costs O(1) expected whatever the range's size: no bitmap, which
 * a /64 of /128s could never have. A cursor walks the range: a new lease
 * goes to the first free block at or after the block after the last one
 * the cursor handed out, wrapping at the end, so a just-released address
 * is not given to the next client (whose peers could still be sending to
 * the previous holder) until the cursor has gone round the whole range.
 * The walk stops after at most min(2^(L-P), leases + reserved + 1)
 * candidates: any that many distinct blocks include a free one, so the
 * walk is exhaustive on a small range (the last free address of a /30 or
 * /29 is always found) and never reports FULL while a block is free, yet
 * costs O(1) expected on a sparse range (an IPv6 /64) and O(live leases)
 * hash probes at worst on a nearly full one. Assignment is per tunnel,
 * not per packet, so that worst case is acceptable.
 *
 * The hash is unkeyed until masq_pool_set_seed: a server should seed it
 * from a random source so clients choosing requested addresses cannot
 * pile leases into one probe run and slow the per-packet lookups. */
#ifndef MASQ_PROTO_POOL_H
#define MASQ_PROTO_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"

#define MASQ_POOL_ERR_INVAL (-1)       /* init: bad range, length or storage */
#define MASQ_POOL_ERR_FULL (-2)        /* every lease the pool may hold is live */
#define MASQ_POOL_ERR_BAD_REQUEST (-3) /* assign: request or arguments unusable */

/* One slot of the lease table; owner 0 marks an empty slot. Public only
 * so that its size and alignment are known: treat it as opaque. */
typedef struct masq_pool_lease {
  uint64_t owner;
  uint8_t key[16]; /* the block's address, host bits zero, IPv4 in key[0..3] */
} masq_pool_lease;

/* Treat as opaque; the fields are here so that it can live on the stack
 * or in a struct. */
typedef struct masq_pool {
  masq_pool_lease *slot;
  size_t mask;  /* slots - 1, slots a power of two */
  size_t count; /* live leases */
  size_t limit; /* most live leases allowed */
  masq_cidr range;
  uint8_t plen; /* length of each lease */
  uint8_t bits; /* 32 or 128 */
  uint8_t nresv;
  uint8_t resv[3][16];  /* blocks never handed out (gateway, network, broadcast) */
  uint8_t cursor[16];   /* the next block to try */
  uint64_t blocks;      /* 2^(plen - range.plen), saturated at UINT64_MAX */
  masq_ip gateway;
  uint64_t seed;
} masq_pool;

/* Bytes of storage a pool needs to hold max_leases live leases (a power
 * of two number of slots, at least twice max_leases, so probe runs stay
 * short). 0 if max_leases is 0 or the size would overflow. */
size_t masq_pool_storage_bytes(size_t max_leases);

/* Sets up p to hand out prefixes of length assign_plen from range, the
 * lease table in storage[0..storage_bytes), which must be aligned for
 * masq_pool_lease (malloc'd or static memory is) and stays the caller's;
 * the pool neither frees it nor keeps a pointer to range.
 *
 * range: family 4 or 6, plen within the family's length, host bits zero
 * (as masq_cidr_parse gives). assign_plen: range->plen <= assign_plen <=
 * 32 or 128.
 * max_leases, in: the caller's bound on live leases (e.g. clients times
 * addresses per client), which storage must hold; 0 or a NULL pointer
 * means as many as storage holds. Out (if non-NULL): the bound in force,
 * which the range may lower (a /24 of /32s holds 253).
 *
 * Returns 0, or MASQ_POOL_ERR_INVAL (p left unusable) for a NULL
 * argument, a malformed range or length, storage misaligned or too small
 * for the bound (fewer than 2 slots), or a range with nothing to hand
 * out. storage's contents are overwritten. */
int masq_pool_init(masq_pool *p, const masq_cidr *range, uint8_t assign_plen, void *storage,
                   size_t storage_bytes, size_t *max_leases);

/* Keys the lease table's hash with seed (take it from a random source).
 * Only while the pool is empty, since live leases sit where the old hash
 * put them: 0, or -1 if any lease is live. */
int masq_pool_set_seed(masq_pool *p, uint64_t seed);

/* The server's own address in the range (the first host address, see
 * above), which no lease ever covers. */
void masq_pool_gateway(const masq_pool *p, masq_ip *out);

/* Leases a block to owner (any nonzero tag, e.g. a tunnel id; one owner
 * may hold several) and writes it to *out (address, plen == the pool's
 * lease length).
 *
 * requested may be NULL, or an RFC 9484 §4.7.2 Requested Address of the
 * pool's family. Its preference is honoured if the block of the pool's
 * lease length holding its address is inside the range, not reserved and
 * free, or already leased to the same owner (then the same lease is
 * returned again and nothing new is taken, so a repeated request is
 * idempotent). A requested prefix of a different length from the pool's
 * is taken as a preference for that block, i.e. the pool's length wins,
 * as §4.7.2 allows the proxy ("the assigned values"): asking for one
 * address of a pool of /64s yields the /64 around it, asking for a /56
 * yields its first /64. An all-zero address means no preference (§4.7.2).
 * A preference that cannot be honoured (outside the range, reserved,
 * taken by another owner) falls back to the cursor's next free block, so
 * compare *out with the request to see whether it was honoured.
 *
 * Returns 0; MASQ_POOL_ERR_FULL when limit leases are live (nothing
 * written; the server answers with the §4.7.2 rejection, 0.0.0.0/32 or
 * ::/128); MASQ_POOL_ERR_BAD_REQUEST, writing nothing, when owner is 0,
 * p or out is NULL, or requested has another family, a prefix length
 * above 32 / 128 or nonzero bits past its prefix (malformed per §4.7.2;
 * the capsule decoder normally catches those first). The server picks
 * the pool by the request's family, so a family mismatch is its bug. */
int masq_pool_assign(masq_pool *p, const masq_cidr *requested, uint64_t owner, masq_cidr *out);

/* Returns lease c to the pool if it is live and held by owner: 0, or -1
 * (nothing changes) if c is not a lease of this pool (other family or
 * length, outside the range) or is free or held by someone else, so a
 * stale or forged release cannot take another tunnel's address. */
int masq_pool_release(masq_pool *p, const masq_cidr *c, uint64_t owner);

/* Releases every lease owner holds (the tunnel ended), returning how many.
 * O(table slots): once per tunnel, not per packet. 0 for owner 0. */
size_t masq_pool_release_owner(masq_pool *p, uint64_t owner);

/* The owner of the lease covering addr (for demultiplexing packets by
 * destination), or 0 if addr is free, reserved, outside the range or of
 * the other family (an IPv4-mapped IPv6 address is IPv6 here: a packet's
 * version decides). O(1) expected. */
uint64_t masq_pool_owner(const masq_pool *p, const masq_ip *addr);

/* Live leases, and the most the pool allows (as masq_pool_init reported). */
size_t masq_pool_count(const masq_pool *p);
size_t masq_pool_limit(const masq_pool *p);

#endif
