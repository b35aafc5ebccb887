#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proto/pool.h"

/* Big enough for every pool below; of the lease type so it is aligned. */
#define STORE_SLOTS ((size_t)1 << 18)
static masq_pool_lease store[STORE_SLOTS];

static masq_cidr cidr_of(const char *s) {
  masq_cidr c;
  assert_int_equal(masq_cidr_parse(s, &c), 0);
  return c;
}

static masq_ip ip_of(const char *s) {
  masq_ip ip;
  assert_int_equal(masq_ip_parse(s, &ip), 0);
  return ip;
}

static int same_cidr(const masq_cidr *a, const masq_cidr *b) {
  return a->plen == b->plen && a->ip.family == b->ip.family && memcmp(a->ip.a, b->ip.a, 16) == 0;
}

static void assert_cidr(const masq_cidr *got, const char *want) {
  masq_cidr w = cidr_of(want);
  if (!same_cidr(got, &w)) {
    char buf[64];
    fail_msg("got %s/%u, want %s", masq_ip_format(&got->ip, buf, sizeof(buf)),
             (unsigned)got->plen, want);
  }
}

/* A pool over range with leases of assign_plen, bounded by max (0: by
 * storage); returns the limit in force. */
static size_t pool_of(masq_pool *p, const char *range, uint8_t assign_plen, size_t max) {
  masq_cidr r = cidr_of(range);
  size_t lim = max;
  assert_int_equal(masq_pool_init(p, &r, assign_plen, store, sizeof(store), &lim), 0);
  assert_int_equal(masq_pool_limit(p), lim);
  assert_int_equal(masq_pool_count(p), 0);
  return lim;
}

static masq_cidr take(masq_pool *p, const char *req, uint64_t owner) {
  masq_cidr r, out;
  if (req != NULL) r = cidr_of(req);
  assert_int_equal(masq_pool_assign(p, req ? &r : NULL, owner, &out), 0);
  return out;
}

static uint64_t owner_at(const masq_pool *p, const char *ip) {
  masq_ip a = ip_of(ip);
  return masq_pool_owner(p, &a);
}

static void test_storage_sizing(void **state) {
  (void)state;
  size_t l = sizeof(masq_pool_lease);
  assert_int_equal(masq_pool_storage_bytes(0), 0);
  assert_int_equal(masq_pool_storage_bytes(SIZE_MAX), 0);
  assert_int_equal(masq_pool_storage_bytes(SIZE_MAX / 2), 0);
  assert_int_equal(masq_pool_storage_bytes(1), 2 * l);
  assert_int_equal(masq_pool_storage_bytes(2), 4 * l);
  assert_int_equal(masq_pool_storage_bytes(3), 8 * l);
  assert_int_equal(masq_pool_storage_bytes(253), 512 * l);

  /* Exactly the advertised bytes hold the bound; one byte less does not. */
  masq_pool p;
  masq_cidr r = cidr_of("10.0.0.0/16");
  size_t need = masq_pool_storage_bytes(100), lim = 100;
  masq_pool_lease *buf = malloc(need);
  assert_non_null(buf);
  assert_int_equal(masq_pool_init(&p, &r, 32, buf, need, &lim), 0);
  assert_int_equal(lim, 100);
  lim = 100;
  assert_int_equal(masq_pool_init(&p, &r, 32, buf, need - 1, &lim), MASQ_POOL_ERR_INVAL);
  /* Bound 0: as many as storage holds (half its slots). */
  lim = 0;
  assert_int_equal(masq_pool_init(&p, &r, 32, buf, need, &lim), 0);
  assert_int_equal(lim, need / l / 2);
  assert_int_equal(masq_pool_init(&p, &r, 32, buf, need, NULL), 0);
  assert_int_equal(masq_pool_limit(&p), need / l / 2);
  /* The range lowers the bound: a /29 holds 5. */
  r = cidr_of("10.0.0.0/29");
  lim = 100;
  assert_int_equal(masq_pool_init(&p, &r, 32, buf, need, &lim), 0);
  assert_int_equal(lim, 5);
  /* The pool stops at the caller's bound, not at the storage's. */
  r = cidr_of("10.0.0.0/16");
  lim = 3;
  assert_int_equal(masq_pool_init(&p, &r, 32, buf, need, &lim), 0);
  masq_cidr out;
  for (uint64_t o = 1; o <= 3; o++) assert_int_equal(masq_pool_assign(&p, NULL, o, &out), 0);
  assert_int_equal(masq_pool_assign(&p, NULL, 4, &out), MASQ_POOL_ERR_FULL);
  /* Too small for two slots, misaligned. */
  assert_int_equal(masq_pool_init(&p, &r, 32, buf, l, NULL), MASQ_POOL_ERR_INVAL);
  assert_int_equal(masq_pool_init(&p, &r, 32, (char *)buf + 1, need - l, NULL),
                   MASQ_POOL_ERR_INVAL);
  free(buf);
}

static void test_init_invalid(void **state) {
  (void)state;
  masq_pool p;
  masq_cidr r = cidr_of("10.0.0.0/24");
  assert_int_equal(masq_pool_init(&p, &r, 23, store, sizeof(store), NULL), MASQ_POOL_ERR_INVAL);
  assert_int_equal(masq_pool_init(&p, &r, 33, store, sizeof(store), NULL), MASQ_POOL_ERR_INVAL);
  assert_int_equal(masq_pool_init(&p, NULL, 32, store, sizeof(store), NULL), MASQ_POOL_ERR_INVAL);
  assert_int_equal(masq_pool_init(&p, &r, 32, NULL, sizeof(store), NULL), MASQ_POOL_ERR_INVAL);
  assert_int_equal(masq_pool_init(NULL, &r, 32, store, sizeof(store), NULL), MASQ_POOL_ERR_INVAL);
  r.ip.a[3] = 1; /* host bits */
  assert_int_equal(masq_pool_init(&p, &r, 32, store, sizeof(store), NULL), MASQ_POOL_ERR_INVAL);
  r = cidr_of("10.0.0.0/24");
  r.ip.a[7] = 1; /* garbage past an IPv4 address */
  assert_int_equal(masq_pool_init(&p, &r, 32, store, sizeof(store), NULL), MASQ_POOL_ERR_INVAL);
  r = cidr_of("10.0.0.0/24");
  r.ip.family = 5;
  assert_int_equal(masq_pool_init(&p, &r, 32, store, sizeof(store), NULL), MASQ_POOL_ERR_INVAL);
  r = cidr_of("10.0.0.0/24");
  r.plen = 33;
  assert_int_equal(masq_pool_init(&p, &r, 33, store, sizeof(store), NULL), MASQ_POOL_ERR_INVAL);
  /* Nothing to hand out: a single address, a lone block, the gateway's. */
  const char *empty[][2] = {{"10.0.0.7/32", "32"}, {"2001:db8::1/128", "128"},
                            {"10.0.0.0/24", "24"}, {"2001:db8::/64", "64"}};
  for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
    r = cidr_of(empty[i][0]);
    uint8_t len = (uint8_t)strtoul(empty[i][1], NULL, 10);
    assert_int_equal(masq_pool_init(&p, &r, len, store, sizeof(store), NULL), MASQ_POOL_ERR_INVAL);
  }
  /* A failed init leaves a pool that refuses everything. */
  masq_cidr out;
  masq_ip a = ip_of("10.0.0.5");
  assert_int_equal(masq_pool_assign(&p, NULL, 1, &out), MASQ_POOL_ERR_BAD_REQUEST);
  assert_int_equal(masq_pool_owner(&p, &a), 0);
}

static void test_v4_24_exhaust(void **state) {
  (void)state;
  masq_pool p;
  assert_int_equal(pool_of(&p, "192.0.2.0/24", 32, 0), 253);
  masq_ip gw;
  masq_pool_gateway(&p, &gw);
  assert_memory_equal(gw.a, ip_of("192.0.2.1").a, 16);
  assert_int_equal(gw.family, 4);
  int seen[256] = {0};
  masq_cidr first = take(&p, NULL, 1000);
  assert_cidr(&first, "192.0.2.2/32"); /* lowest free after .0 and .1 */
  seen[2] = 1;
  for (uint64_t o = 1; o < 253; o++) {
    masq_cidr c = take(&p, NULL, o);
    assert_int_equal(c.plen, 32);
    assert_int_equal(c.ip.family, 4);
    assert_memory_equal(c.ip.a, "\xc0\x00\x02", 3);
    assert_false(seen[c.ip.a[3]]);
    seen[c.ip.a[3]] = 1;
    assert_int_equal(masq_pool_owner(&p, &c.ip), o);
  }
  assert_int_equal(masq_pool_count(&p), 253);
  assert_false(seen[0] || seen[1] || seen[255]);
  masq_cidr out;
  assert_int_equal(masq_pool_assign(&p, NULL, 999, &out), MASQ_POOL_ERR_FULL);
  masq_cidr req = cidr_of("192.0.2.77/32");
  assert_int_equal(masq_pool_assign(&p, &req, 999, &out), MASQ_POOL_ERR_FULL);
  /* A re-request by the holder is still answered when full. */
  uint64_t holder = owner_at(&p, "192.0.2.77");
  assert_int_not_equal(holder, 0);
  assert_int_equal(masq_pool_assign(&p, &req, holder, &out), 0);
  assert_cidr(&out, "192.0.2.77/32");
  assert_int_equal(masq_pool_count(&p), 253);
  /* Reserved addresses have no owner. */
  assert_int_equal(owner_at(&p, "192.0.2.0"), 0);
  assert_int_equal(owner_at(&p, "192.0.2.1"), 0);
  assert_int_equal(owner_at(&p, "192.0.2.255"), 0);
  assert_int_equal(owner_at(&p, "192.0.3.2"), 0);
  assert_int_equal(owner_at(&p, "::ffff:192.0.2.2"), 0);
}

static void test_release_reassign(void **state) {
  (void)state;
  masq_pool p;
  pool_of(&p, "10.9.0.0/24", 32, 0);
  masq_cidr a = take(&p, NULL, 1), b = take(&p, NULL, 2);
  assert_cidr(&a, "10.9.0.2/32");
  assert_cidr(&b, "10.9.0.3/32");
  /* Only the holder releases. */
  assert_int_equal(masq_pool_release(&p, &a, 2), -1);
  assert_int_equal(masq_pool_release(&p, &a, 0), -1);
  assert_int_equal(owner_at(&p, "10.9.0.2"), 1);
  masq_cidr wide = a;
  wide.plen = 31;
  assert_int_equal(masq_pool_release(&p, &wide, 1), -1);
  assert_int_equal(masq_pool_release(&p, &a, 1), 0);
  assert_int_equal(masq_pool_release(&p, &a, 1), -1); /* already free */
  assert_int_equal(owner_at(&p, "10.9.0.2"), 0);
  assert_int_equal(masq_pool_count(&p), 1);
  /* No immediate reuse: the next client gets .4, not the released .2. */
  masq_cidr c = take(&p, NULL, 3);
  assert_cidr(&c, "10.9.0.4/32");
  /* After the cursor goes round, .2 comes back. */
  for (uint64_t o = 4; o < 4 + 251; o++) take(&p, NULL, o);
  assert_int_equal(owner_at(&p, "10.9.0.2"), 254);
  assert_int_equal(masq_pool_count(&p), 253);
  /* But it may be requested back at once. */
  assert_int_equal(masq_pool_release(&p, &b, 2), 0);
  c = take(&p, "10.9.0.3", 77);
  assert_cidr(&c, "10.9.0.3/32");
  assert_int_equal(owner_at(&p, "10.9.0.3"), 77);
}

static void test_request(void **state) {
  (void)state;
  masq_pool p;
  pool_of(&p, "10.1.0.0/16", 32, 100);
  masq_cidr c = take(&p, "10.1.7.9", 1);
  assert_cidr(&c, "10.1.7.9/32");
  /* Taken by another owner: an alternative from the cursor. */
  c = take(&p, "10.1.7.9/32", 2);
  assert_cidr(&c, "10.1.0.2/32");
  /* Same owner again: the same lease, nothing new taken. */
  c = take(&p, "10.1.7.9/32", 1);
  assert_cidr(&c, "10.1.7.9/32");
  assert_int_equal(masq_pool_count(&p), 2);
  /* Outside, reserved or no preference: the cursor's next. */
  c = take(&p, "10.2.0.5", 3);
  assert_cidr(&c, "10.1.0.3/32");
  c = take(&p, "10.1.0.1", 4); /* the gateway */
  assert_cidr(&c, "10.1.0.4/32");
  c = take(&p, "10.1.0.0", 5); /* network */
  assert_cidr(&c, "10.1.0.5/32");
  c = take(&p, "10.1.255.255", 6); /* broadcast */
  assert_cidr(&c, "10.1.0.6/32");
  c = take(&p, "0.0.0.0/32", 7); /* §4.7.2 any address */
  assert_cidr(&c, "10.1.0.7/32");
  c = take(&p, "0.0.0.0/0", 8);
  assert_cidr(&c, "10.1.0.8/32");
  /* A different length: the /32 block holding its address, or none. */
  c = take(&p, "10.1.9.0/24", 9);
  assert_cidr(&c, "10.1.9.0/32");
  c = take(&p, "10.1.8.0/31", 10);
  assert_cidr(&c, "10.1.8.0/32");
  c = take(&p, "10.0.0.0/8", 11); /* wider than the range: its base is outside */
  assert_cidr(&c, "10.1.0.9/32");
  /* Malformed or of the other family. */
  masq_cidr out, bad[5];
  bad[0] = cidr_of("2001:db8::1");
  bad[1] = cidr_of("10.1.3.0/24");
  bad[1].ip.a[3] = 1; /* host bits */
  bad[2] = cidr_of("10.1.3.3");
  bad[2].plen = 33;
  bad[3] = cidr_of("10.1.3.3");
  bad[3].ip.a[9] = 1;
  bad[4] = cidr_of("::ffff:10.1.3.3"); /* mapped: still IPv6 */
  for (int i = 0; i < 5; i++) {
    assert_int_equal(masq_pool_assign(&p, &bad[i], 20, &out), MASQ_POOL_ERR_BAD_REQUEST);
  }
  assert_int_equal(masq_pool_assign(&p, NULL, 0, &out), MASQ_POOL_ERR_BAD_REQUEST);
  assert_int_equal(masq_pool_assign(&p, NULL, 1, NULL), MASQ_POOL_ERR_BAD_REQUEST);
  assert_int_equal(masq_pool_count(&p), 11);
  /* The cursor is not moved by honoured requests. */
  c = take(&p, NULL, 12);
  assert_cidr(&c, "10.1.0.10/32");
}

static void test_owner_lookup(void **state) {
  (void)state;
  masq_pool p;
  pool_of(&p, "172.16.0.0/12", 32, 1001);
  for (uint64_t o = 1; o <= 1000; o++) {
    masq_cidr c = take(&p, NULL, o * 7919);
    assert_int_equal(masq_pool_owner(&p, &c.ip), o * 7919);
  }
  assert_int_equal(masq_pool_count(&p), 1000);
  assert_int_equal(owner_at(&p, "172.16.0.2"), 7919);
  assert_int_equal(owner_at(&p, "172.16.3.233"), 7919 * 1000); /* 2 + 999 */
  assert_int_equal(owner_at(&p, "172.16.3.234"), 0);
  assert_int_equal(owner_at(&p, "172.32.0.2"), 0);
  masq_ip odd = {9, {0}};
  assert_int_equal(masq_pool_owner(&p, &odd), 0);
  assert_int_equal(masq_pool_owner(&p, NULL), 0);
  /* Owners' leases all go at once; others stay. */
  masq_cidr extra = take(&p, NULL, 7919);
  assert_int_equal(masq_pool_release_owner(&p, 7919), 2);
  assert_int_equal(masq_pool_owner(&p, &extra.ip), 0);
  assert_int_equal(owner_at(&p, "172.16.0.2"), 0);
  assert_int_equal(owner_at(&p, "172.16.0.3"), 7919 * 2);
  assert_int_equal(masq_pool_release_owner(&p, 7919), 0);
  assert_int_equal(masq_pool_release_owner(&p, 0), 0);
  assert_int_equal(masq_pool_count(&p), 999);
}

static void test_v6_64_of_128(void **state) {
  (void)state;
  masq_pool p;
  assert_int_equal(pool_of(&p, "2001:db8:1:2::/64", 128, 0), STORE_SLOTS / 2);
  masq_ip gw;
  masq_pool_gateway(&p, &gw);
  assert_memory_equal(gw.a, ip_of("2001:db8:1:2::1").a, 16);
  masq_cidr c = take(&p, NULL, 1);
  assert_cidr(&c, "2001:db8:1:2::2/128"); /* ::0 is Subnet-Router anycast */
  c = take(&p, "::/128", 2);
  assert_cidr(&c, "2001:db8:1:2::3/128");
  c = take(&p, "::/64", 2);
  assert_cidr(&c, "2001:db8:1:2::4/128");
  c = take(&p, "2001:db8:1:2:dead:beef:0:1", 3);
  assert_cidr(&c, "2001:db8:1:2:dead:beef:0:1/128");
  c = take(&p, "2001:db8:1:2:dead:beef:0:1", 4);
  assert_cidr(&c, "2001:db8:1:2::5/128");
  c = take(&p, "2001:db8:1:2::1", 5);
  assert_cidr(&c, "2001:db8:1:2::6/128");
  c = take(&p, "2001:db8:1:2::/64", 6); /* its first address is reserved */
  assert_cidr(&c, "2001:db8:1:2::7/128");
  c = take(&p, "2001:db8:1:3::9", 7);
  assert_cidr(&c, "2001:db8:1:2::8/128");
  c = take(&p, "2001:db8:1:2:ffff:ffff:ffff:ffff", 8); /* no broadcast in IPv6 */
  assert_cidr(&c, "2001:db8:1:2:ffff:ffff:ffff:ffff/128");
  /* Many clients: all distinct (the owner lookup proves it), found in O(1). */
  for (uint64_t o = 100; o < 100 + 20000; o++) {
    c = take(&p, NULL, o);
    assert_int_equal(masq_pool_owner(&p, &c.ip), o);
  }
  assert_int_equal(masq_pool_count(&p), 20009);
  assert_int_equal(owner_at(&p, "2001:db8:1:2::1"), 0);
  assert_int_equal(owner_at(&p, "10.0.0.1"), 0);
  assert_int_equal(owner_at(&p, "2001:db8:1:2::4e20"), 100 + 0x4e20 - 9);
}

static void test_v6_48_of_64(void **state) {
  (void)state;
  masq_pool p;
  assert_int_equal(pool_of(&p, "2001:db8:aa::/48", 64, 0), 65535);
  masq_ip gw;
  masq_pool_gateway(&p, &gw);
  assert_memory_equal(gw.a, ip_of("2001:db8:aa::1").a, 16);
  masq_cidr c = take(&p, NULL, 1);
  assert_cidr(&c, "2001:db8:aa:1::/64"); /* block 0 holds the gateway */
  /* The owner covers the whole /64. */
  assert_int_equal(owner_at(&p, "2001:db8:aa:1::"), 1);
  assert_int_equal(owner_at(&p, "2001:db8:aa:1:1234:5678:9abc:def0"), 1);
  assert_int_equal(owner_at(&p, "2001:db8:aa:2::1"), 0);
  assert_int_equal(owner_at(&p, "2001:db8:aa::2"), 0);
  /* Requests of other lengths map to the /64 holding them. */
  c = take(&p, "2001:db8:aa:5::7", 2);
  assert_cidr(&c, "2001:db8:aa:5::/64");
  c = take(&p, "2001:db8:aa:5:1::/80", 2);
  assert_cidr(&c, "2001:db8:aa:5::/64");
  c = take(&p, "2001:db8:aa:100::/56", 3);
  assert_cidr(&c, "2001:db8:aa:100::/64");
  c = take(&p, "2001:db8:aa::/48", 4); /* block 0: reserved */
  assert_cidr(&c, "2001:db8:aa:2::/64");
  c = take(&p, "2001:db8:aa:ffff::/64", 5);
  assert_cidr(&c, "2001:db8:aa:ffff::/64");
  assert_int_equal(masq_pool_count(&p), 5);
  /* Fill it: the cursor skips the requested ones and finds every block. */
  for (uint64_t o = 10; masq_pool_count(&p) < 65535; o++) take(&p, NULL, o);
  masq_cidr out;
  assert_int_equal(masq_pool_assign(&p, NULL, 9, &out), MASQ_POOL_ERR_FULL);
  c = cidr_of("2001:db8:aa:1234::/64");
  uint64_t holder = owner_at(&p, "2001:db8:aa:1234::99");
  assert_int_equal(masq_pool_release(&p, &c, holder), 0);
  c = take(&p, NULL, 9);
  assert_cidr(&c, "2001:db8:aa:1234::/64");
}

static void test_v4_small(void **state) {
  (void)state;
  masq_pool p;
  masq_cidr c, out;
  masq_ip gw;
  /* /30: network, gateway, one client, broadcast. */
  assert_int_equal(pool_of(&p, "192.0.2.4/30", 32, 0), 1);
  masq_pool_gateway(&p, &gw);
  assert_memory_equal(gw.a, ip_of("192.0.2.5").a, 16);
  for (int round = 0; round < 3; round++) {
    c = take(&p, NULL, 1);
    assert_cidr(&c, "192.0.2.6/32");
    assert_int_equal(masq_pool_assign(&p, NULL, 2, &out), MASQ_POOL_ERR_FULL);
    assert_int_equal(masq_pool_release(&p, &c, 1), 0);
  }
  /* /31 (RFC 3021): no network or broadcast; the gateway is .0. */
  assert_int_equal(pool_of(&p, "192.0.2.8/31", 32, 0), 1);
  masq_pool_gateway(&p, &gw);
  assert_memory_equal(gw.a, ip_of("192.0.2.8").a, 16);
  c = take(&p, "192.0.2.8", 1);
  assert_cidr(&c, "192.0.2.9/32");
  assert_int_equal(masq_pool_assign(&p, NULL, 2, &out), MASQ_POOL_ERR_FULL);
  /* /29: five; the last free one is found wherever the cursor stands. */
  assert_int_equal(pool_of(&p, "192.0.2.16/29", 32, 0), 5);
  for (uint64_t o = 1; o <= 5; o++) take(&p, NULL, o);
  assert_int_equal(masq_pool_assign(&p, NULL, 6, &out), MASQ_POOL_ERR_FULL);
  for (int ip = 18; ip <= 22; ip++) {
    char s[32] = "192.0.2.";
    s[8] = (char)('0' + ip / 10);
    s[9] = (char)('0' + ip % 10);
    s[10] = '\0';
    uint64_t holder = owner_at(&p, s);
    c = cidr_of(s);
    assert_int_equal(masq_pool_release(&p, &c, holder), 0);
    c = take(&p, NULL, 100 + (uint64_t)ip);
    assert_cidr(&c, s);
  }
  /* IPv4 prefixes: a /24 of /26s has three (block 0 holds the gateway). */
  assert_int_equal(pool_of(&p, "198.51.100.0/24", 26, 0), 3);
  c = take(&p, NULL, 1);
  assert_cidr(&c, "198.51.100.64/26");
  c = take(&p, NULL, 2);
  assert_cidr(&c, "198.51.100.128/26");
  c = take(&p, NULL, 3);
  assert_cidr(&c, "198.51.100.192/26"); /* its top is not a reserved broadcast */
  assert_int_equal(owner_at(&p, "198.51.100.255"), 3);
}

static void test_v6_small(void **state) {
  (void)state;
  masq_pool p;
  masq_cidr c, out;
  masq_ip gw;
  /* /127 (RFC 6164): gateway ::0, client ::1. */
  assert_int_equal(pool_of(&p, "2001:db8::/127", 128, 0), 1);
  masq_pool_gateway(&p, &gw);
  assert_memory_equal(gw.a, ip_of("2001:db8::").a, 16);
  c = take(&p, NULL, 1);
  assert_cidr(&c, "2001:db8::1/128");
  assert_int_equal(masq_pool_assign(&p, NULL, 2, &out), MASQ_POOL_ERR_FULL);
  /* /126: ::0 and ::1 reserved, ::2 and ::3 handed out, then wrap. */
  assert_int_equal(pool_of(&p, "2001:db8::/126", 128, 0), 2);
  c = take(&p, NULL, 1);
  assert_cidr(&c, "2001:db8::2/128");
  c = take(&p, NULL, 2);
  assert_cidr(&c, "2001:db8::3/128");
  assert_int_equal(masq_pool_release(&p, &c, 2), 0);
  c = take(&p, NULL, 3);
  assert_cidr(&c, "2001:db8::3/128");
  /* A range whose block count overflows 64 bits still works. */
  assert_int_equal(pool_of(&p, "2001:db8::/32", 128, 10), 10);
  c = take(&p, NULL, 1);
  assert_cidr(&c, "2001:db8::2/128");
  c = take(&p, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 1);
  assert_cidr(&c, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/128");
  /* The cursor wraps: a /124 handed out round and round. */
  assert_int_equal(pool_of(&p, "2001:db8::/124", 128, 0), 14);
  for (unsigned i = 0; i < 100; i++) {
    c = take(&p, NULL, 1);
    assert_int_equal(c.ip.a[15], 2 + i % 14);
    assert_int_equal(masq_pool_release(&p, &c, 1), 0);
  }
}

static void test_seed(void **state) {
  (void)state;
  masq_pool p;
  pool_of(&p, "10.0.0.0/8", 32, 5000);
  assert_int_equal(masq_pool_set_seed(&p, 0x0123456789abcdefULL), 0);
  masq_cidr c = take(&p, NULL, 1);
  assert_int_equal(masq_pool_set_seed(&p, 42), -1);
  assert_int_equal(masq_pool_owner(&p, &c.ip), 1);
  for (uint64_t o = 2; o <= 5000; o++) take(&p, NULL, o);
  assert_int_equal(owner_at(&p, "10.0.19.137"), 5000);
  assert_int_equal(masq_pool_release_owner(&p, 1), 1);
  assert_int_equal(masq_pool_set_seed(&p, 42), -1);
}

/* --- randomized, against a reference model ------------------------------ */

#define MODEL_MAX 300

typedef struct model {
  masq_cidr lease[MODEL_MAX];
  uint64_t owner[MODEL_MAX];
  size_t n;
} model;

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void) { /* xorshift64*: reproducible, no libc state */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dULL;
}

static size_t model_find(const model *m, const masq_cidr *c) {
  for (size_t i = 0; i < m->n; i++) {
    if (same_cidr(&m->lease[i], c)) return i;
  }
  return SIZE_MAX;
}

/* A random address in or near the range: base plus a few random low or
 * lease-level bits, sometimes outside. */
static masq_cidr random_near(const masq_cidr *range, uint8_t assign_plen) {
  masq_cidr c = *range;
  unsigned bits = range->ip.family == 4 ? 32 : 128;
  unsigned at = (rnd() & 1) ? bits : assign_plen; /* vary host or block bits */
  for (unsigned k = 0; k < 4 && at > 0; k++) {
    unsigned b = at - 1 - (unsigned)(rnd() % 4);
    if (b < bits) c.ip.a[b / 8] ^= (uint8_t)(0x80 >> (b % 8));
  }
  if (rnd() % 8 == 0) c.ip.a[0] ^= 0x40; /* outside */
  c.plen = (uint8_t)bits;
  return c;
}

static void check_pool(const masq_pool *p, const model *m) {
  assert_int_equal(masq_pool_count(p), m->n);
  for (size_t i = 0; i < m->n; i++) {
    assert_int_equal(masq_pool_owner(p, &m->lease[i].ip), m->owner[i]);
  }
}

/* The independent statement of pool.h's rules: the blocks never handed
 * out, and the block a request prefers. */
static int model_reserved(const masq_pool *p, const masq_cidr *range, const masq_cidr *blk) {
  unsigned bits = range->ip.family == 4 ? 32 : 128;
  masq_ip gw, top = range->ip;
  masq_pool_gateway(p, &gw);
  if (masq_cidr_contains(blk, &gw)) return 1;
  if (blk->plen != bits || range->plen + 1u >= bits) return 0;
  if (memcmp(blk->ip.a, range->ip.a, 16) == 0) return 1; /* network / anycast */
  for (unsigned b = range->plen; b < bits; b++) top.a[b / 8] |= (uint8_t)(0x80 >> (b % 8));
  return bits == 32 && memcmp(blk->ip.a, top.a, 16) == 0; /* broadcast */
}

static masq_cidr block_around(const masq_ip *ip, uint8_t plen) {
  masq_cidr c = {.ip = *ip, .plen = plen};
  for (unsigned b = plen; b < 128; b++) c.ip.a[b / 8] &= (uint8_t)~(0x80 >> (b % 8));
  return c;
}

static void model_assign(masq_pool *p, model *m, const masq_cidr *range, uint8_t plen) {
  masq_cidr req, out;
  int with_req = rnd() % 2;
  if (with_req) req = random_near(range, plen);
  uint64_t owner = 1 + rnd() % 8;
  int rc = masq_pool_assign(p, with_req ? &req : NULL, owner, &out);
  masq_cidr want = with_req ? block_around(&req.ip, plen) : *range;
  size_t held = with_req ? model_find(m, &want) : SIZE_MAX;
  int prefer = with_req && masq_cidr_contains(range, &req.ip) && !model_reserved(p, range, &want);
  if (rc == MASQ_POOL_ERR_FULL) {
    assert_int_equal(m->n, masq_pool_limit(p));
    assert_false(prefer && held != SIZE_MAX && m->owner[held] == owner);
    return;
  }
  assert_int_equal(rc, 0);
  assert_int_equal(out.plen, plen);
  assert_true(masq_cidr_contains(range, &out.ip));
  assert_false(model_reserved(p, range, &out));
  /* A free or own preferred block is honoured; a taken one is not. */
  if (prefer && (held == SIZE_MAX || m->owner[held] == owner)) assert_true(same_cidr(&out, &want));
  if (prefer && held != SIZE_MAX && m->owner[held] != owner) assert_false(same_cidr(&out, &want));
  size_t at = model_find(m, &out);
  if (at != SIZE_MAX) { /* only the same owner's re-request returns a live lease */
    assert_true(prefer);
    assert_int_equal(m->owner[at], owner);
    return;
  }
  assert_true(m->n < masq_pool_limit(p));
  m->lease[m->n] = out;
  m->owner[m->n++] = owner;
}

static void model_release(masq_pool *p, model *m) {
  if (m->n == 0) return;
  size_t i = rnd() % m->n;
  uint64_t who = rnd() % 4 == 0 ? 1 + rnd() % 8 : m->owner[i];
  if (rnd() % 5 == 0) {
    size_t want = 0;
    for (size_t k = 0; k < m->n; k++) want += m->owner[k] == who;
    assert_int_equal(masq_pool_release_owner(p, who), want);
    for (size_t k = 0; k < m->n;) {
      if (m->owner[k] == who) {
        m->lease[k] = m->lease[m->n - 1];
        m->owner[k] = m->owner[--m->n];
      } else {
        k++;
      }
    }
    return;
  }
  int rc = masq_pool_release(p, &m->lease[i], who);
  assert_int_equal(rc, who == m->owner[i] ? 0 : -1);
  if (rc == 0) {
    m->lease[i] = m->lease[m->n - 1];
    m->owner[i] = m->owner[--m->n];
  }
}

static void run_model(const char *range, uint8_t plen, size_t bound, size_t bytes) {
  static uint64_t buf[(512 * sizeof(masq_pool_lease)) / sizeof(uint64_t)];
  assert_true(bytes <= sizeof(buf));
  masq_cidr r = cidr_of(range);
  masq_pool p;
  size_t lim = bound;
  assert_int_equal(masq_pool_init(&p, &r, plen, buf, bytes, &lim), 0);
  assert_true(lim <= MODEL_MAX);
  model m = {.n = 0};
  for (int step = 0; step < 20000; step++) {
    if (rnd() % 3 != 0) model_assign(&p, &m, &r, plen);
    else model_release(&p, &m);
    if (step % 97 == 0) check_pool(&p, &m);
  }
  check_pool(&p, &m);
}

static void test_random_model(void **state) {
  (void)state;
  /* Small tables (two to eight slots) wrap probe runs round the end. */
  run_model("10.0.0.0/29", 32, 0, 4 * sizeof(masq_pool_lease));
  run_model("10.0.0.0/28", 32, 0, 8 * sizeof(masq_pool_lease));
  run_model("10.0.0.0/24", 32, 253, masq_pool_storage_bytes(253));
  run_model("10.0.0.0/22", 32, 200, masq_pool_storage_bytes(200));
  run_model("10.0.0.0/16", 28, 0, masq_pool_storage_bytes(100));
  run_model("2001:db8::/120", 128, 0, 512 * sizeof(masq_pool_lease));
  run_model("2001:db8::/64", 128, 250, masq_pool_storage_bytes(250));
  run_model("2001:db8::/48", 64, 64, masq_pool_storage_bytes(64));
  run_model("2001:db8::/58", 64, 0, masq_pool_storage_bytes(63));
  run_model("2001:db8::/127", 128, 0, 2 * sizeof(masq_pool_lease));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_storage_sizing), cmocka_unit_test(test_init_invalid),
      cmocka_unit_test(test_v4_24_exhaust),  cmocka_unit_test(test_release_reassign),
      cmocka_unit_test(test_request),        cmocka_unit_test(test_owner_lookup),
      cmocka_unit_test(test_v6_64_of_128),   cmocka_unit_test(test_v6_48_of_64),
      cmocka_unit_test(test_v4_small),       cmocka_unit_test(test_v6_small),
      cmocka_unit_test(test_seed),           cmocka_unit_test(test_random_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
