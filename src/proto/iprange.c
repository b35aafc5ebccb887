/* Range arithmetic on big-endian byte strings: an address is compared
 * with memcmp and stepped with a carry, so IPv4 and IPv6 share one code
 * path and nothing needs 128-bit integers. */
#include "proto/iprange.h"

#include <stdlib.h>
#include <string.h>

static size_t ip_len(int family) { return family == 4 ? 4 : family == 6 ? 16 : 0; }

int masq_iprange_ipcmp(const masq_ip *x, const masq_ip *y) {
  if (x->family != y->family) return x->family < y->family ? -1 : 1;
  return memcmp(x->a, y->a, ip_len(x->family));
}

/* Sets (one != 0) or clears the k lowest bits of x. */
static void low_bits(masq_ip *x, unsigned k, int one) {
  size_t len = ip_len(x->family);
  for (unsigned i = 0; i < k; i++) {
    uint8_t bit = (uint8_t)(1u << (i % 8));
    uint8_t *b = &x->a[len - 1 - i / 8];
    *b = one ? (uint8_t)(*b | bit) : (uint8_t)(*b & ~bit);
  }
}

static int is_all(const masq_ip *x, uint8_t v) {
  for (size_t i = 0; i < ip_len(x->family); i++)
    if (x->a[i] != v) return 0;
  return 1;
}

/* x + 1; the caller makes sure x is not the family's last address. */
static void ip_inc(masq_ip *x) {
  for (size_t i = ip_len(x->family); i-- > 0;)
    if (++x->a[i] != 0) return;
}

/* x - 1; the caller makes sure x is not all zeros. */
static void ip_dec(masq_ip *x) {
  for (size_t i = ip_len(x->family); i-- > 0;)
    if (x->a[i]-- != 0) return;
}

int masq_iprange_from_cidr(const masq_cidr *c, masq_iprange *out) {
  size_t len = ip_len(c->ip.family);
  if (len == 0 || c->plen > len * 8) return -1;
  masq_iprange r;
  memset(&r, 0, sizeof(r));
  r.start.family = r.end.family = c->ip.family;
  memcpy(r.start.a, c->ip.a, len);
  low_bits(&r.start, (unsigned)(len * 8 - c->plen), 0);
  r.end = r.start;
  low_bits(&r.end, (unsigned)(len * 8 - c->plen), 1);
  *out = r;
  return 0;
}

int masq_iprange_full(int family, masq_iprange *out) {
  masq_cidr all;
  memset(&all, 0, sizeof(all));
  all.ip.family = (uint8_t)family;
  return masq_iprange_from_cidr(&all, out);
}

static int range_cmp(const void *x, const void *y) {
  return masq_iprange_ipcmp(&((const masq_iprange *)x)->start, &((const masq_iprange *)y)->start);
}

static int range_valid(const masq_iprange *r) {
  return ip_len(r->start.family) && r->start.family == r->end.family &&
         masq_iprange_ipcmp(&r->start, &r->end) <= 0;
}

/* 1 if b starts inside a or right after it (so the two can merge). */
static int touches(const masq_iprange *a, const masq_iprange *b) {
  if (a->end.family != b->start.family) return 0;
  if (masq_iprange_ipcmp(&b->start, &a->end) <= 0) return 1;
  if (is_all(&a->end, 0xff)) return 1;
  masq_ip next = a->end;
  ip_inc(&next);
  return masq_iprange_ipcmp(&b->start, &next) == 0;
}

size_t masq_iprange_normalize(masq_iprange *r, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (range_valid(&r[i])) r[k++] = r[i];
  if (k == 0) return 0;
  qsort(r, k, sizeof(*r), range_cmp);
  size_t out = 0;
  for (size_t i = 1; i < k; i++) {
    if (touches(&r[out], &r[i])) {
      if (masq_iprange_ipcmp(&r[i].end, &r[out].end) > 0) r[out].end = r[i].end;
    } else {
      r[++out] = r[i];
    }
  }
  return out + 1;
}

int masq_iprange_contains(const masq_iprange *r, size_t n, const masq_ip *ip) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (masq_iprange_ipcmp(ip, &r[mid].start) < 0) hi = mid;
    else if (masq_iprange_ipcmp(ip, &r[mid].end) > 0) lo = mid + 1;
    else return 1;
  }
  return 0;
}

static int put(masq_iprange *out, size_t cap, size_t *k, const masq_ip *s, const masq_ip *e) {
  if (*k >= cap) return -1;
  out[*k].start = *s;
  out[*k].end = *e;
  (*k)++;
  return 0;
}

size_t masq_iprange_intersect(const masq_iprange *a, size_t na, const masq_iprange *b, size_t nb,
                              masq_iprange *out, size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < na; i++) {
    for (size_t j = 0; j < nb; j++) {
      const masq_ip *s = masq_iprange_ipcmp(&a[i].start, &b[j].start) > 0 ? &a[i].start
                                                                          : &b[j].start;
      const masq_ip *e = masq_iprange_ipcmp(&a[i].end, &b[j].end) < 0 ? &a[i].end : &b[j].end;
      if (s->family != e->family || masq_iprange_ipcmp(s, e) > 0) continue;
      if (put(out, cap, &k, s, e) != 0) return MASQ_IPRANGE_TOO_MANY;
    }
  }
  return k;
}

/* Emits what is left of one range after cutting out every range of b. */
static int subtract_one(const masq_iprange *r, const masq_iprange *b, size_t nb,
                        masq_iprange *out, size_t cap, size_t *k) {
  masq_ip cur = r->start;
  for (size_t j = 0; j < nb; j++) {
    if (masq_iprange_ipcmp(&b[j].end, &cur) < 0) continue;
    if (masq_iprange_ipcmp(&b[j].start, &r->end) > 0) break;
    if (masq_iprange_ipcmp(&b[j].start, &cur) > 0) {
      masq_ip last = b[j].start;
      ip_dec(&last); /* b[j].start > cur >= 0: no underflow */
      if (put(out, cap, k, &cur, &last) != 0) return -1;
    }
    if (masq_iprange_ipcmp(&b[j].end, &r->end) >= 0) return 0; /* the rest is cut */
    cur = b[j].end;
    ip_inc(&cur); /* b[j].end < r->end: no overflow */
  }
  return put(out, cap, k, &cur, &r->end);
}

size_t masq_iprange_subtract(const masq_iprange *a, size_t na, const masq_iprange *b, size_t nb,
                             masq_iprange *out, size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < na; i++)
    if (subtract_one(&a[i], b, nb, out, cap, &k) != 0) return MASQ_IPRANGE_TOO_MANY;
  return k;
}

/* Trailing zero bits of x, at most its width. */
static unsigned trailing_zeros(const masq_ip *x) {
  size_t len = ip_len(x->family);
  unsigned n = 0;
  for (size_t i = len; i-- > 0;) {
    if (x->a[i] == 0) {
      n += 8;
      continue;
    }
    for (uint8_t v = x->a[i]; !(v & 1); v >>= 1) n++;
    break;
  }
  return n;
}

/* Splits one range greedily: at each step the largest aligned block
 * that starts at the cursor and stays inside the range. */
static int range_to_cidrs(const masq_iprange *r, masq_cidr *out, size_t cap, size_t *k) {
  unsigned bits = (unsigned)ip_len(r->start.family) * 8;
  masq_ip cur = r->start;
  for (;;) {
    unsigned host = trailing_zeros(&cur);
    masq_ip last;
    for (;; host--) {
      last = cur;
      low_bits(&last, host, 1);
      if (masq_iprange_ipcmp(&last, &r->end) <= 0) break;
    }
    if (*k >= cap) return -1;
    memset(&out[*k], 0, sizeof(out[*k]));
    out[*k].ip = cur;
    out[*k].plen = (uint8_t)(bits - host);
    (*k)++;
    if (masq_iprange_ipcmp(&last, &r->end) == 0) return 0;
    cur = last;
    ip_inc(&cur); /* last < r->end: no overflow */
  }
}

size_t masq_iprange_to_cidrs(const masq_iprange *r, size_t n, masq_cidr *out, size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (!range_valid(&r[i])) continue;
    if (range_to_cidrs(&r[i], out, cap, &k) != 0) return MASQ_IPRANGE_TOO_MANY;
  }
  return k;
}
