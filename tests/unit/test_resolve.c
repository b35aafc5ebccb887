/* The threaded resolver. Nothing here sends a packet: "localhost" comes
 * from /etc/hosts, literals and "*.invalid" never reach getaddrinfo, and
 * the over-long label fails inside glibc before any query is built. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <netdb.h>
#include <string.h>

#include "io/resolve.h"

struct result {
  int calls;
  int status;
  size_t naddrs;
  masq_ip addrs[MASQ_RESOLVE_MAX_ADDRS];
  int stop_when_done;        /* stop the loop from this callback */
  masq_loop *loop;
  masq_resolve_req *cancel;  /* cancelled from this callback */
};

static void on_result(void *ud, int status, const masq_ip *addrs, size_t naddrs) {
  struct result *r = ud;
  r->calls++;
  r->status = status;
  r->naddrs = naddrs;
  assert_true(naddrs <= MASQ_RESOLVE_MAX_ADDRS);
  if (naddrs) memcpy(r->addrs, addrs, naddrs * sizeof(*addrs));
  if (r->cancel) masq_resolve_cancel(r->cancel);
  if (r->stop_when_done) masq_loop_stop(r->loop);
}

static void on_watchdog(masq_loop *loop, masq_timer *t) {
  int *fired = t->ud;
  *fired = 1;
  masq_loop_stop(loop);
}

/* Runs the loop until a callback stops it, failing after 5 s. */
static void run_until_stopped(masq_loop *loop) {
  int fired = 0;
  masq_timer w;
  masq_timer_init(&w, on_watchdog, &fired);
  assert_int_equal(masq_timer_set(loop, &w, masq_now() + 5000000000ull), 0);
  assert_int_equal(masq_loop_run(loop), 0);
  masq_timer_stop(loop, &w);
  assert_false(fired);
}

struct fixture {
  masq_loop *loop;
  masq_resolver *res;
};

static int setup(void **state) {
  static struct fixture f;
  f.loop = masq_loop_new();
  if (!f.loop) return -1;
  f.res = masq_resolver_new(f.loop, 2);
  if (!f.res) return -1;
  *state = &f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  masq_resolver_free(f->res);
  masq_loop_free(f->loop);
  return 0;
}

static int is_loopback(const masq_ip *ip) {
  static const uint8_t v6_lo[16] = {[15] = 1};
  if (ip->family == 4) return ip->a[0] == 127;
  return ip->family == 6 && memcmp(ip->a, v6_lo, 16) == 0;
}

static void test_localhost(void **state) {
  struct fixture *f = *state;
  struct result r = {.stop_when_done = 1, .loop = f->loop};
  assert_non_null(masq_resolve(f->res, "localhost", on_result, &r));
  run_until_stopped(f->loop);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, 0);
  assert_true(r.naddrs >= 1);
  for (size_t i = 0; i < r.naddrs; i++) assert_true(is_loopback(&r.addrs[i]));
}

static void test_literals(void **state) {
  struct fixture *f = *state;
  struct result r4 = {0}, r6 = {.stop_when_done = 1, .loop = f->loop};
  assert_non_null(masq_resolve(f->res, "192.0.2.1", on_result, &r4));
  assert_non_null(masq_resolve(f->res, "2001:db8::5", on_result, &r6));
  /* Never called back from inside masq_resolve. */
  assert_int_equal(r4.calls, 0);
  assert_int_equal(r6.calls, 0);
  run_until_stopped(f->loop);
  assert_int_equal(r4.calls, 1);
  assert_int_equal(r4.status, 0);
  assert_int_equal(r4.naddrs, 1);
  assert_int_equal(r4.addrs[0].family, 4);
  static const uint8_t a4[4] = {192, 0, 2, 1};
  assert_memory_equal(r4.addrs[0].a, a4, 4);
  assert_int_equal(r6.calls, 1);
  assert_int_equal(r6.naddrs, 1);
  assert_int_equal(r6.addrs[0].family, 6);
  static const uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 5};
  assert_memory_equal(r6.addrs[0].a, a6, 16);
}

static void test_invalid_tld(void **state) {
  /* RFC 6761 §6.4: answered locally, no query leaves the host. */
  struct fixture *f = *state;
  struct result r = {0}, r2 = {0}, ok = {.stop_when_done = 1, .loop = f->loop};
  assert_non_null(masq_resolve(f->res, "nonexistent.invalid", on_result, &r));
  assert_non_null(masq_resolve(f->res, "X.INVALID.", on_result, &r2));
  assert_non_null(masq_resolve(f->res, "127.0.0.1", on_result, &ok));
  run_until_stopped(f->loop);
  assert_int_equal(r.calls, 1);
  assert_int_not_equal(r.status, 0);
  assert_int_equal(r.status, EAI_NONAME);
  assert_int_equal(r.naddrs, 0);
  assert_int_equal(r2.calls, 1);
  assert_int_equal(r2.status, EAI_NONAME);
}

static void test_failure_from_worker(void **state) {
  /* A 64-byte label cannot be encoded in a DNS query (RFC 1035 §2.3.4),
   * so getaddrinfo fails without sending anything. */
  struct fixture *f = *state;
  char name[128];
  memset(name, 'a', 64);
  memcpy(name + 64, ".example", sizeof(".example"));
  struct result r = {.stop_when_done = 1, .loop = f->loop};
  assert_non_null(masq_resolve(f->res, name, on_result, &r));
  run_until_stopped(f->loop);
  assert_int_equal(r.calls, 1);
  assert_int_not_equal(r.status, 0);
  assert_int_equal(r.naddrs, 0);
}

static void test_cancel(void **state) {
  /* One worker, so requests finish in FIFO order: by the time the last
   * one is delivered, every cancelled one has been dealt with. */
  masq_loop *loop = masq_loop_new();
  assert_non_null(loop);
  masq_resolver *res = masq_resolver_new(loop, 1);
  assert_non_null(res);
  struct result never = {0}, last = {.stop_when_done = 1, .loop = loop};
  masq_resolve_req *q1 = masq_resolve(res, "localhost", on_result, &never); /* queued or running */
  masq_resolve_req *q2 = masq_resolve(res, "localhost", on_result, &never); /* queued */
  masq_resolve_req *q3 = masq_resolve(res, "198.51.100.1", on_result, &never); /* done */
  assert_non_null(q1);
  assert_non_null(q2);
  assert_non_null(q3);
  masq_resolve_cancel(q1);
  masq_resolve_cancel(q2);
  masq_resolve_cancel(q3);
  assert_non_null(masq_resolve(res, "localhost", on_result, &last));
  run_until_stopped(loop);
  assert_int_equal(last.calls, 1);
  assert_int_equal(never.calls, 0);
  masq_resolver_free(res);
  masq_loop_free(loop);
}

static void test_cancel_from_callback(void **state) {
  /* Both complete in the same delivery batch; the first cancels the
   * second, which must then not be called. */
  struct fixture *f = *state;
  struct result victim = {0}, first = {0}, last = {.stop_when_done = 1, .loop = f->loop};
  assert_non_null(masq_resolve(f->res, "192.0.2.1", on_result, &first));
  first.cancel = masq_resolve(f->res, "192.0.2.2", on_result, &victim);
  assert_non_null(first.cancel);
  assert_non_null(masq_resolve(f->res, "192.0.2.3", on_result, &last));
  run_until_stopped(f->loop);
  assert_int_equal(first.calls, 1);
  assert_int_equal(victim.calls, 0);
  assert_int_equal(last.calls, 1);
}

static void test_free_with_pending(void **state) {
  /* Queued, running and done requests are all released by free (the
   * sanitizer build checks for leaks). */
  masq_loop *loop = masq_loop_new();
  assert_non_null(loop);
  masq_resolver *res = masq_resolver_new(loop, 2);
  assert_non_null(res);
  struct result never = {0};
  for (int i = 0; i < 8; i++) {
    assert_non_null(masq_resolve(res, "localhost", on_result, &never));
    assert_non_null(masq_resolve(res, "::1", on_result, &never));
  }
  masq_resolve_cancel(masq_resolve(res, "localhost", on_result, &never));
  masq_resolver_free(res);
  masq_loop_free(loop);
  assert_int_equal(never.calls, 0);
}

static void test_pending_limit(void **state) {
  masq_loop *loop = masq_loop_new();
  assert_non_null(loop);
  masq_resolver *res = masq_resolver_new(loop, 1);
  assert_non_null(res);
  struct result r = {0};
  /* Literals: no worker involved, they stay pending until delivered. */
  for (int i = 0; i < 1024; i++) assert_non_null(masq_resolve(res, "10.0.0.1", on_result, &r));
  errno = 0;
  assert_null(masq_resolve(res, "10.0.0.1", on_result, &r));
  assert_int_equal(errno, EAGAIN);
  masq_resolver_free(res);
  masq_loop_free(loop);
  assert_int_equal(r.calls, 0);
}

static void test_bad_arguments(void **state) {
  struct fixture *f = *state;
  struct result r = {0};
  errno = 0;
  assert_null(masq_resolve(f->res, "", on_result, &r));
  assert_int_equal(errno, EINVAL);
  char longname[300];
  memset(longname, 'a', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  assert_null(masq_resolve(f->res, longname, on_result, &r));
  assert_null(masq_resolver_new(f->loop, 0));
  assert_int_equal(errno, EINVAL);
  assert_null(masq_resolver_new(f->loop, 17));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_localhost, setup, teardown),
      cmocka_unit_test_setup_teardown(test_literals, setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid_tld, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failure_from_worker, setup, teardown),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test_setup_teardown(test_cancel_from_callback, setup, teardown),
      cmocka_unit_test(test_free_with_pending),
      cmocka_unit_test(test_pending_limit),
      cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
