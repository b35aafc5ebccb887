/* A client-side CONNECT-UDP tunnel: see udptun.h. */
#include "client/udptun.h"

#include <stdlib.h>
#include <string.h>

#include "io/log.h"
#include "io/loop.h"
#include "proto/wire.h"

/* After a refusal, a source waits this long before a new request, so a
 * chatty application cannot turn into a request storm. */
#define RETRY_NS (5ull * 1000000000ull)

enum { UT_IDLE, UT_REQUESTED, UT_OPEN, UT_FAILED };

static masq_ut *ut_of(masq_pc_req *r) { return (masq_ut *)r; }

static int64_t ut_submit(masq_pc_req *r, masq_conn *c, const char *token) {
  masq_ut *t = ut_of(r);
  return masq_conn_submit_connect(c, t->authority, t->path, MASQ_PROTO_CONNECT_UDP, token, r);
}

static void ut_transmit(masq_ut *t, masq_conn *c, const uint8_t *p, size_t n) {
  int rv = masq_conn_send_datagram(c, t->req.sid, p, n);
  /* The session counts its own refusals (too big, queue full); the
   * front end's count is for what never reached it. */
  if (rv != 0 && rv != MASQ_SESS_ERR_TOO_BIG && rv != MASQ_SESS_ERR_QUEUE_FULL)
    masq_pc_count_drop(t->pc);
  if (rv == MASQ_SESS_ERR_TOO_BIG)
    masq_log_rl(MASQ_LOG_WARN, "dropped a %zu-byte datagram: the tunnel carries at most %zu", n,
                masq_conn_max_datagram(c, t->req.sid));
  masq_pc_touch(t->pc);
}

static void ut_on_response(masq_pc_req *r, masq_conn *c, int status, const masq_reqhdrs *h) {
  masq_ut *t = ut_of(r);
  if (status >= 200 && status < 300) {
    t->state = UT_OPEN;
    masq_conn_stream_set_tunnel(c, r->sid);
    for (size_t i = 0; i < t->npending; i++)
      ut_transmit(t, c, t->pending + i * MASQ_OUTER_UDP_PAYLOAD, t->pending_len[i]);
    t->npending = 0;
    masq_log(MASQ_LOG_DEBUG, "tunnel for %s to %s open (stream %lld)", t->src ? t->src : "socks",
             t->target, (long long)r->sid);
    return;
  }
  /* RFC 9298 §3: anything but 2xx means the request failed; abort it. */
  masq_log_rl(MASQ_LOG_WARN, "proxy refused the tunnel to %s: status %d%s%s", t->target, status,
              h->proxy_status.present ? ", Proxy-Status: " : "",
              h->proxy_status.present ? h->proxy_status.v : "");
  t->state = UT_FAILED;
  t->failed_at = masq_now();
  t->npending = 0;
  masq_pc_release(t->pc, r, MASQ_H3_REQUEST_CANCELLED);
}

static void ut_on_datagram(masq_pc_req *r, const uint8_t *p, size_t n) {
  masq_ut *t = ut_of(r);
  if (t->state == UT_OPEN) t->ops->on_datagram(t, p, n);
}

/* The proxy ended the tunnel (idle, or the target is unreachable): end
 * ours too; the next datagram asks for a new one at once. */
static void ut_on_end(masq_pc_req *r) {
  masq_ut *t = ut_of(r);
  masq_pc_release(t->pc, r, MASQ_PC_FIN);
  t->state = UT_IDLE;
  t->npending = 0;
}

static void ut_on_close(masq_pc_req *r, uint64_t err) {
  masq_ut *t = ut_of(r);
  /* A lost connection or a reset: a later datagram may try again. */
  t->state = err == MASQ_PC_ERR_SUBMIT ? UT_FAILED : UT_IDLE;
  t->failed_at = masq_now();
  t->npending = 0;
}

static const masq_pc_req_ops ut_ops = {
    .submit = ut_submit,
    .on_response = ut_on_response,
    .on_datagram = ut_on_datagram,
    .on_end = ut_on_end,
    .on_close = ut_on_close,
};

int masq_ut_init(masq_ut *t, masq_pc *pc, const masq_ut_ops *ops, const char *authority,
                 const char *path, const char *target, const char *src) {
  memset(t, 0, sizeof(*t));
  masq_pc_req_init(&t->req, &ut_ops);
  t->pc = pc;
  t->ops = ops;
  t->authority = authority;
  t->path = path;
  t->target = target;
  t->src = src;
  t->state = UT_IDLE;
  t->pending = malloc((size_t)MASQ_UT_PENDING * MASQ_OUTER_UDP_PAYLOAD);
  return t->pending ? 0 : -1;
}

static void ut_hold(masq_ut *t, const uint8_t *p, size_t n) {
  if (t->npending == MASQ_UT_PENDING || n > MASQ_OUTER_UDP_PAYLOAD) {
    masq_pc_count_drop(t->pc);
    return;
  }
  memcpy(t->pending + t->npending * MASQ_OUTER_UDP_PAYLOAD, p, n);
  t->pending_len[t->npending++] = (uint16_t)n;
}

void masq_ut_send(masq_ut *t, const uint8_t *p, size_t n) {
  masq_conn *c = masq_pc_conn(t->pc);
  switch (t->state) {
    case UT_OPEN:
      if (c) ut_transmit(t, c, p, n);
      else masq_pc_count_drop(t->pc);
      return;
    case UT_FAILED:
      if (masq_now() - t->failed_at < RETRY_NS) {
        masq_pc_count_drop(t->pc);
        return;
      }
      t->state = UT_IDLE;
      break;
    default:
      break;
  }
  ut_hold(t, p, n);
  if (t->state == UT_IDLE) {
    t->state = UT_REQUESTED;
    masq_pc_request(t->pc, &t->req); /* may complete (and fail) at once */
  }
}

void masq_ut_close(masq_ut *t) {
  masq_pc_release(t->pc, &t->req, MASQ_PC_FIN);
  free(t->pending);
  t->pending = NULL;
}
